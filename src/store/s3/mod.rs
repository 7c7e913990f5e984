//! The real store: aws-sdk-s3. This is the only module (with its child [`head`], HeadObject
//! signed and sent without the SDK's orchestrator) that imports SDK types; it turns SDK results
//! into the plain types of [`super`] and SDK errors into [`StoreError`].
//!
//! Regions: each bucket is addressed in its own region. Against AWS (no custom endpoint) the first
//! request for a bucket whose region is unknown sends HeadBucket, which reports the region in the
//! `x-amz-bucket-region` header even when it answers 301 or 403; one client per region is kept.
//! With a custom endpoint the configured region is used for every bucket.
//!
//! Every request goes through [`super::retry`]: the SDK's own retries are off, each attempt is
//! watched for stalls (request bodies report the bytes hyper takes), and a GET cut mid-body
//! resumes from the first missing byte, pinned to the ETag its first answer had.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    Credentials, ProvideCredentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedCredentialsProvider,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, MetadataDirective, ObjectIdentifier};
use bytes::Bytes;
use tracing::{debug, info, warn};

use super::retry::{Attempts, Progress, RetryOptions, Throttle, watch};
use super::{
    BucketInfo, ListPage, ListRequest, ListedObject, ListedVersion, MAX_PRESIGN, ObjectMeta, Presigned, PutMeta,
    PutResult, StoreError, StoreResult,
};
use super::{Buckets, CopyDelete, Listings, Objects};
use crate::buf::PoolBuf;

/// Server-side encryption of everything s3drive writes (`--sse`, `--sse-c-key-file`).
#[derive(Clone, PartialEq, Eq)]
pub enum Sse {
    /// SSE-S3 (`AES256`).
    S3,
    /// SSE-KMS (`aws:kms`) or dual-layer SSE-KMS (`aws:kms:dsse`), with the bucket's default
    /// key or this one.
    Kms { dsse: bool, key_id: Option<String> },
    /// SSE-C: the key and its MD5, both base64, sent with every request that touches an
    /// object's bytes (and as the copy source's key on copies).
    Customer { key: String, key_md5: String },
}

impl std::fmt::Debug for Sse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sse::S3 => write!(f, "AES256"),
            Sse::Kms { key_id, .. } => write!(f, "{} {key_id:?}", self.name()),
            // The key never reaches a log.
            Sse::Customer { .. } => write!(f, "SSE-C (key not shown)"),
        }
    }
}

impl Sse {
    /// SSE-S3 or SSE-KMS by its `x-amz-server-side-encryption` value (`--sse`), with the KMS
    /// key if one is named; `None` for any other value.
    pub fn named(name: &str, kms_key_id: Option<String>) -> Option<Sse> {
        match name {
            "AES256" => Some(Sse::S3),
            "aws:kms" | "aws:kms:dsse" => Some(Sse::Kms { dsse: name == "aws:kms:dsse", key_id: kms_key_id }),
            _ => None,
        }
    }

    /// What [`Sse::named`] takes (the header's value), or `SSE-C` for a customer key.
    pub fn name(&self) -> &'static str {
        match self {
            Sse::S3 => "AES256",
            Sse::Kms { dsse: false, .. } => "aws:kms",
            Sse::Kms { dsse: true, .. } => "aws:kms:dsse",
            Sse::Customer { .. } => "SSE-C",
        }
    }

    /// The SSE-C key in key file `path` (`--sse-c-key-file`); the error names the option.
    pub fn customer_key_file(path: &std::path::Path) -> Result<Sse, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("--sse-c-key-file {}: {e}", path.display()))?;
        Sse::customer_key(&bytes).map_err(|e| format!("--sse-c-key-file {} {e}", path.display()))
    }

    /// The SSE-C key as S3 wants it, from a key file's bytes: 32 bytes, raw or base64.
    pub fn customer_key(file: &[u8]) -> Result<Sse, String> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw = if file.len() == 32 {
            file.to_vec()
        } else {
            match b64.decode(file.trim_ascii()) {
                Ok(k) if k.len() == 32 => k,
                _ => {
                    return Err(format!(
                        "holds {} bytes: an SSE-C key is 32 bytes, raw or base64 (e.g. `openssl rand 32 > FILE`)",
                        file.len()
                    ));
                }
            }
        };
        use md5::Digest;
        Ok(Sse::Customer { key: b64.encode(&raw), key_md5: b64.encode(md5::Md5::digest(&raw)) })
    }
}

/// What company buckets require of each request, from the command line (`--sse`,
/// `--storage-class`, `--acl`, `--requester-pays`, `--expected-bucket-owner`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOptions {
    pub sse: Option<Sse>,
    /// Storage class of new objects (a copy keeps its source's, when known).
    pub storage_class: Option<String>,
    /// Canned ACL of new objects and copies.
    pub acl: Option<String>,
    pub requester_pays: bool,
    pub expected_bucket_owner: Option<String>,
}

/// The kinds of requests, by which of [`RequestOptions`] they carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Req {
    /// HeadBucket.
    Bucket,
    /// ListObjectsV2, DeleteObjects, AbortMultipartUpload, RestoreObject.
    Keys,
    /// HeadObject, GetObject: reads of an object's bytes or metadata.
    Read,
    /// PutObject, CreateMultipartUpload: a new object.
    Create,
    /// UploadPart, CompleteMultipartUpload.
    Part,
    /// CopyObject: a new object from another.
    Copy,
    /// UploadPartCopy.
    PartCopy,
}

impl RequestOptions {
    /// The headers `req` carries; `class` is the storage class for a new object (a copy's
    /// source's, else the configured one).
    fn headers(&self, req: Req, class: Option<&str>) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(o) = &self.expected_bucket_owner {
            h.push(("x-amz-expected-bucket-owner", o.clone()));
        }
        if req == Req::Bucket {
            return h;
        }
        if self.requester_pays {
            h.push(("x-amz-request-payer", "requester".into()));
        }
        let creates = matches!(req, Req::Create | Req::Copy);
        match &self.sse {
            Some(sse @ Sse::S3) if creates => h.push(("x-amz-server-side-encryption", sse.name().into())),
            Some(sse @ Sse::Kms { key_id, .. }) if creates => {
                h.push(("x-amz-server-side-encryption", sse.name().into()));
                if let Some(k) = key_id {
                    h.push(("x-amz-server-side-encryption-aws-kms-key-id", k.clone()));
                }
            }
            Some(Sse::Customer { key, key_md5 }) if req != Req::Keys => {
                h.push(("x-amz-server-side-encryption-customer-algorithm", "AES256".into()));
                h.push(("x-amz-server-side-encryption-customer-key", key.clone()));
                h.push(("x-amz-server-side-encryption-customer-key-md5", key_md5.clone()));
                if matches!(req, Req::Copy | Req::PartCopy) {
                    h.push(("x-amz-copy-source-server-side-encryption-customer-algorithm", "AES256".into()));
                    h.push(("x-amz-copy-source-server-side-encryption-customer-key", key.clone()));
                    h.push(("x-amz-copy-source-server-side-encryption-customer-key-md5", key_md5.clone()));
                }
            }
            _ => {}
        }
        if creates {
            if let Some(c) = class.or(self.storage_class.as_deref()) {
                h.push(("x-amz-storage-class", c.to_string()));
            }
            if let Some(a) = &self.acl {
                h.push(("x-amz-acl", a.clone()));
            }
        }
        h
    }
}

/// Adds `headers` to a request before it is signed.
fn add_headers(
    headers: Vec<(&'static str, String)>,
) -> impl Fn(&mut aws_sdk_s3::config::http::HttpRequest) + Send + Sync + 'static {
    move |req| {
        for (k, v) in &headers {
            req.headers_mut().insert(*k, v.clone());
        }
    }
}

/// Sends a fluent request with `headers` added before signing. Without any (a mount without
/// the company options: the common case) the request is sent as built: a per-request
/// customization makes the SDK rebuild its runtime components, about 50 µs of CPU a request,
/// a third of a HeadObject's.
macro_rules! send_with {
    ($builder:expr, $headers:expr $(,)?) => {{
        let builder = $builder;
        let headers = $headers;
        if headers.is_empty() {
            builder.send().await
        } else {
            builder.customize().mutate_request(add_headers(headers)).send().await
        }
    }};
}

// The request families, after the macro they use (macros are in scope from their definition on).
mod client;
mod copy_delete;
mod errors;
mod head;
mod listing;
mod objects;

use copy_delete::*;
use errors::*;

/// How to reach the service; built from the command line by `config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub force_path_style: bool,
    /// Send unsigned requests (public buckets); no credentials are looked up.
    pub no_sign_request: bool,
    pub retry: RetryOptions,
    /// Send a CRC32C of every PutObject and UploadPart body (`x-amz-checksum-crc32c`), so the
    /// service refuses bytes changed on the way.
    pub upload_checksum: bool,
    /// PEM certificates trusted besides the system's (`--ca-bundle`, AWS_CA_BUNDLE).
    pub ca_bundle: Option<Vec<u8>>,
    pub request: RequestOptions,
    /// A view of the bucket as it was at this time (`--version-at`): listings, HEADs and GETs
    /// see the version of each key that was current then.
    pub version_at: Option<SystemTime>,
    /// Send HeadObject through the SDK's orchestrator rather than [`head`]'s lean path (tests
    /// compare the two).
    pub head_via_sdk: bool,
}

pub struct S3Store {
    base: aws_sdk_s3::config::Config,
    default_region: String,
    /// Region discovery only makes sense against AWS itself.
    discover_regions: bool,
    clients: Mutex<HashMap<String, Client>>,
    bucket_regions: Mutex<HashMap<String, String>>,
    /// The credential chain, for presigning with credentials whose expiry is known.
    credentials: Option<SharedCredentialsProvider>,
    signing_credentials: tokio::sync::Mutex<Option<Credentials>>,
    retry: RetryOptions,
    upload_checksum: bool,
    request: RequestOptions,
    /// The retry budget in force (milliseconds): shorter during the start-up checks.
    budget_ms: std::sync::atomic::AtomicU64,
    throttle: Throttle,
    version_at: Option<SystemTime>,
    /// With `version_at`: the version each key had then (`None`: it did not exist).
    versions_at: Mutex<HashMap<(String, String), Option<String>>>,
    /// HeadObject without the orchestrator (`None`: through the SDK).
    lean_head: Option<head::LeanHead>,
}

fn to_system_time(t: Option<&DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

#[cfg(test)]
mod tests {
    use super::listing::current_at;
    use super::objects::multipart_etag;
    use super::*;

    #[test]
    fn an_encryption_is_found_again_by_its_name() {
        for sse in [Sse::S3, Sse::Kms { dsse: false, key_id: Some("k".into()) }, Sse::Kms { dsse: true, key_id: None }]
        {
            let key_id = match &sse {
                Sse::Kms { key_id, .. } => key_id.clone(),
                _ => None,
            };
            assert_eq!(Sse::named(sse.name(), key_id), Some(sse));
        }
        assert_eq!(Sse::named("SSE-C", None), None, "a customer key needs the key");
        assert_eq!(Sse::named("aws:kms:x", None), None);
    }

    #[test]
    fn a_multipart_etag_is_the_md5_of_the_parts_md5s_and_their_count() {
        let parts =
            [(1, "\"594f803b380a41396ed63dca39503542\"".to_string()), (2, "08f8e0260c64418510cefb2b06eee5cd".into())];
        assert_eq!(multipart_etag(&parts).as_deref(), Some("\"72d27afac8e2fbd3662861b9d607a02c-2\""));
        assert_eq!(multipart_etag(&[(1, "\"kms-opaque\"".into())]), None);
        assert_eq!(multipart_etag(&[(1, "zz4f803b380a41396ed63dca39503542".into())]), None);
    }

    #[test]
    fn the_version_current_at_a_time_is_the_first_no_later_and_a_delete_marker_hides() {
        let t = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let v = |key: &str, id: &str, at: u64, del: bool| ListedVersion {
            key: key.into(),
            version_id: id.into(),
            last_modified: t(at),
            delete_marker: del,
            ..Default::default()
        };
        // By key, newest first, as list_versions_page sorts them.
        let page = [
            v("a", "a3", 300, false),
            v("a", "a2", 200, false),
            v("a", "a1", 100, false),
            v("b", "b2", 250, true),
            v("b", "b1", 50, false),
            v("c", "c1", 180, true),
            v("c", "c0", 120, false),
            v("d", "d1", 400, false),
        ];
        let at = t(200).unwrap();
        let (chosen, last) = current_at(&page, at, None);
        let got: Vec<_> = chosen.iter().map(|(v, present)| (v.version_id.as_str(), *present)).collect();
        assert_eq!(got, [("a2", true), ("b1", true), ("c1", false)], "d did not exist yet");
        assert_eq!(last.as_deref(), Some("c"));
        // A key settled on the page before: its older versions on this page are skipped.
        let (chosen, _) = current_at(&page[2..], at, Some("a"));
        assert_eq!(chosen.first().map(|(v, _)| v.version_id.as_str()), Some("b1"));
    }

    #[test]
    fn request_options_go_where_s3_takes_them_and_the_key_stays_out_of_debug() {
        let key = Sse::customer_key(&[7u8; 32]).unwrap();
        assert_eq!(Sse::customer_key(b"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n").unwrap(), key, "base64 too");
        assert!(Sse::customer_key(b"short").unwrap_err().contains("32 bytes"));
        let Sse::Customer { key: k, .. } = &key else { unreachable!() };
        assert!(!format!("{key:?}").contains(k.as_str()));
        let o = RequestOptions {
            sse: Some(key.clone()),
            storage_class: Some("GLACIER_IR".into()),
            acl: Some("private".into()),
            requester_pays: true,
            expected_bucket_owner: Some("123456789012".into()),
        };
        let names = |req, class| o.headers(req, class).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(names(Req::Bucket, None), ["x-amz-expected-bucket-owner"]);
        assert_eq!(names(Req::Keys, None), ["x-amz-expected-bucket-owner", "x-amz-request-payer"]);
        assert!(names(Req::Read, None).contains(&"x-amz-server-side-encryption-customer-key"));
        assert!(!names(Req::Read, None).contains(&"x-amz-storage-class"));
        let copy = o.headers(Req::Copy, Some("STANDARD_IA"));
        assert!(copy.contains(&("x-amz-storage-class", "STANDARD_IA".into())), "a copy keeps its source's class");
        assert!(copy.iter().any(|(k, _)| *k == "x-amz-copy-source-server-side-encryption-customer-key"));
        let create = o.headers(Req::Create, None);
        assert!(create.contains(&("x-amz-storage-class", "GLACIER_IR".into())));
        assert!(create.contains(&("x-amz-acl", "private".into())));
        let kms = RequestOptions { sse: Some(Sse::Kms { dsse: true, key_id: None }), ..Default::default() };
        assert_eq!(kms.headers(Req::Create, None), [("x-amz-server-side-encryption", "aws:kms:dsse".to_string())]);
        assert!(kms.headers(Req::Part, None).is_empty(), "SSE-KMS is set once, at creation");
    }
}
