//! The object-store boundary: a trait with one async method per S3 request s3drive sends, and
//! the plain data types those methods exchange. Nothing outside `store::s3` sees an SDK type.
//!
//! Two implementations: [`s3::S3Store`] (the real thing, through aws-sdk-s3) and
//! [`memory::MemoryStore`] (an in-memory bucket set for unit tests that counts requests and
//! injects faults).

pub mod memory;
pub mod retry;
pub mod s3;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::SystemTime;

use bytes::Bytes;

/// Why a store request failed, in the terms the filesystem core needs to pick an errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The key (or, for HeadObject, anything at that key) does not exist.
    NotFound,
    /// The bucket does not exist.
    NoSuchBucket,
    /// The credentials may not do this (403 AccessDenied and its relatives).
    AccessDenied,
    /// The credentials themselves were rejected (unknown key id, bad signature, expired token).
    BadCredentials(String),
    /// No credentials could be found anywhere in the chain (environment, profiles, SSO, web
    /// identity, container and instance roles); what each link said.
    NoCredentials(String),
    /// An If-Match precondition failed: the object changed since it was opened.
    PreconditionFailed,
    /// A requested byte range starts past the end of the object.
    InvalidRange,
    /// The request never got an answer within the retry budget (DNS, refused, reset, stalled).
    Network(String),
    /// A TLS connection could not be set up: the endpoint's certificate is not trusted, or the
    /// endpoint does not speak TLS. Not retried.
    Tls(String),
    /// The bucket (on delete) still holds objects.
    BucketNotEmpty,
    /// The bucket (on create) exists already.
    BucketExists,
    /// Metadata too large for S3 (2 KiB of user metadata per object).
    MetadataTooLarge,
    /// The object is archived (GLACIER, DEEP_ARCHIVE, an archive tier of INTELLIGENT_TIERING)
    /// and not restored: its bytes cannot be read (InvalidObjectState).
    Archived,
    /// The server answered with an error we have no better name for (5xx, odd 4xx).
    Server { status: Option<u16>, code: String, message: String },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => write!(f, "no such key"),
            StoreError::NoSuchBucket => write!(f, "no such bucket"),
            StoreError::AccessDenied => write!(f, "access denied"),
            StoreError::BadCredentials(m) => write!(f, "credentials rejected: {m}"),
            StoreError::NoCredentials(_) => write!(f, "no AWS credentials found"),
            StoreError::PreconditionFailed => write!(f, "object changed (precondition failed)"),
            StoreError::InvalidRange => write!(f, "range not satisfiable"),
            StoreError::BucketNotEmpty => write!(f, "bucket not empty"),
            StoreError::BucketExists => write!(f, "bucket already exists"),
            StoreError::MetadataTooLarge => write!(f, "metadata too large"),
            StoreError::Archived => write!(f, "archived, not restored (InvalidObjectState)"),
            StoreError::Network(m) => write!(f, "network error: {m}"),
            StoreError::Tls(m) => write!(f, "TLS failed: {m}"),
            StoreError::Server { status, code, message } => match status {
                Some(s) => write!(f, "server error {s} {code}: {message}"),
                None => write!(f, "server error {code}: {message}"),
            },
        }
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// One bucket from ListBuckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created: Option<SystemTime>,
}

/// One object as a listing describes it (no user metadata: S3 listings do not carry it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub last_modified: Option<SystemTime>,
    pub etag: Option<String>,
    pub storage_class: Option<String>,
}

/// One version of an object (ListObjectVersions), or a delete marker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedVersion {
    pub key: String,
    pub version_id: String,
    pub last_modified: Option<SystemTime>,
    pub size: u64,
    pub etag: Option<String>,
    pub storage_class: Option<String>,
    pub is_latest: bool,
    pub delete_marker: bool,
}

/// One page of ListObjectsV2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    /// Common prefixes, each ending in the delimiter.
    pub prefixes: Vec<String>,
    /// Continuation token for the next page, `None` on the last page.
    pub next: Option<String>,
}

/// What HeadObject tells about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub last_modified: Option<SystemTime>,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub storage_class: Option<String>,
    /// `x-amz-restore`: a restore of an archived object, in progress (`ongoing-request="true"`)
    /// or done (`ongoing-request="false", expiry-date="..."`).
    pub restore: Option<String>,
    /// `x-amz-archive-status` of INTELLIGENT_TIERING objects in an archive tier.
    pub archive_status: Option<String>,
    /// Server-side encryption: `AES256`, `aws:kms`, `aws:kms:dsse` with the KMS key, or
    /// `SSE-C` (the customer's key); `None` when S3 does not say.
    pub sse: Option<String>,
    /// User metadata (`x-amz-meta-*`), names lower-cased without the prefix.
    pub metadata: HashMap<String, String>,
}

/// What an upload or a metadata-replacing copy sets besides the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutMeta {
    /// User metadata (`x-amz-meta-*`), names without the prefix.
    pub metadata: HashMap<String, String>,
    pub content_type: Option<String>,
    /// Storage class of the new object: a copy's source's (kept through renames and metadata
    /// copies); `None` for the configured one (`--storage-class`), else the bucket's default.
    pub storage_class: Option<String>,
}

/// The result of a write that created an object version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutResult {
    pub etag: Option<String>,
}

/// A presigned GET URL and the moment it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub url: String,
    pub expires: SystemTime,
}

/// SigV4's longest presigned-URL lifetime.
/// S3's largest part of a multipart upload.
pub const MAX_PART: u64 = 5 << 30;

pub const MAX_PRESIGN: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Parameters of one ListObjectsV2 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    /// `Some("/")` for a directory listing, `None` for a flat listing.
    pub delimiter: Option<&'a str>,
    pub continuation: Option<&'a str>,
    pub max_keys: Option<i32>,
}

/// The S3 requests s3drive sends, one trait a request family (each implemented in its own file
/// of `s3/`). Each method is one request (after the SDK's own retries), so request counts in
/// tests are counts of calls here.
pub trait ObjectStore: Buckets + Listings + Objects + CopyDelete {}

impl<T: Buckets + Listings + Objects + CopyDelete> ObjectStore for T {}

/// Bucket requests: ListBuckets, HeadBucket, CreateBucket, DeleteBucket.
pub trait Buckets: Send + Sync + 'static {
    fn list_buckets(&self) -> impl Future<Output = StoreResult<Vec<BucketInfo>>> + Send;

    /// HeadBucket: `Ok(region)` if the bucket exists and may be used. Also teaches the store the
    /// bucket's region, so later requests go to the right place.
    fn head_bucket(&self, bucket: &str) -> impl Future<Output = StoreResult<String>> + Send;

    fn create_bucket(&self, bucket: &str) -> impl Future<Output = StoreResult<()>> + Send;

    fn delete_bucket(&self, bucket: &str) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Listings: ListObjectsV2 pages and an object's versions.
pub trait Listings: Send + Sync + 'static {
    fn list_objects(&self, req: ListRequest<'_>) -> impl Future<Output = StoreResult<ListPage>> + Send;

    /// Every version of `key` (and its delete markers), newest first: ListObjectVersions pages.
    fn list_versions_of(&self, bucket: &str, key: &str)
    -> impl Future<Output = StoreResult<Vec<ListedVersion>>> + Send;
}

/// Object reads and writes: HeadObject, ranged GETs, PutObject, multipart uploads, restores
/// and presigned links.
pub trait Objects: Send + Sync + 'static {
    fn head_object(&self, bucket: &str, key: &str) -> impl Future<Output = StoreResult<ObjectMeta>> + Send;

    /// Ranged GetObject of `start..end` (end exclusive), pinned to `if_match` when given.
    /// Returns fewer bytes than asked only at the end of the object.
    fn get_range(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        end: u64,
        if_match: Option<&str>,
    ) -> impl Future<Output = StoreResult<Bytes>> + Send;

    fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        meta: &PutMeta,
    ) -> impl Future<Output = StoreResult<PutResult>> + Send;

    fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        meta: &PutMeta,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    /// Returns the part's ETag.
    fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: i32,
        body: Bytes,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    /// UploadPartCopy of `src_key` bytes `start..end` (end exclusive); returns the part's ETag.
    #[allow(clippy::too_many_arguments)]
    fn upload_part_copy(
        &self,
        src_bucket: &str,
        src_key: &str,
        start: u64,
        end: u64,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: i32,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> impl Future<Output = StoreResult<PutResult>> + Send;

    fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str)
    -> impl Future<Output = StoreResult<()>> + Send;

    /// RestoreObject of an archived object, for `days` (none for INTELLIGENT_TIERING's archive
    /// tiers) with retrieval tier `tier` (Standard, Bulk, Expedited). A restore already in
    /// progress is no error.
    fn restore_object(
        &self,
        bucket: &str,
        key: &str,
        days: Option<i32>,
        tier: Option<&str>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// A presigned GetObject URL, signed locally (no request is sent). The lifetime is capped at
    /// [`MAX_PRESIGN`] and at the expiry of temporary credentials; `expires` is the effective one.
    fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        lifetime: std::time::Duration,
    ) -> impl Future<Output = StoreResult<Presigned>> + Send;
}

/// Server-side copies and batched deletes.
pub trait CopyDelete: Send + Sync + 'static {
    /// CopyObject; `meta` given means metadata REPLACE, else the source's metadata is copied.
    fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        bucket: &str,
        key: &str,
        meta: Option<&PutMeta>,
    ) -> impl Future<Output = StoreResult<PutResult>> + Send;

    /// DeleteObjects of up to 1,000 keys; returns the keys that could not be deleted.
    fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> impl Future<Output = StoreResult<Vec<(String, StoreError)>>> + Send;
}
