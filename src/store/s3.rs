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
    BucketInfo, ListPage, ListRequest, ListedObject, ListedVersion, MAX_PRESIGN, ObjectMeta, ObjectStore, Presigned,
    PutMeta, PutResult, StoreError, StoreResult,
};
use crate::buf::PoolBuf;

mod head;

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

/// A request body that marks [`Progress`] each time the HTTP client takes a piece of it.
struct Watched {
    data: Bytes,
    progress: Arc<Progress>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.data.len().min(64 << 10);
        let chunk = self.data.split_to(n);
        self.progress.touch();
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.len() as u64)
    }
}

/// `x-amz-checksum-crc32c` of a body: the CRC32C, big-endian, in base64.
fn crc32c(data: &[u8]) -> String {
    use base64::Engine;
    let v = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32;
    base64::engine::general_purpose::STANDARD.encode(v.to_be_bytes())
}

/// An upload refused over its checksum header by a service that does not support it (as
/// opposed to BadDigest: the bytes changed on the way, retried).
fn checksum_unsupported(e: StoreError) -> StoreError {
    match e {
        StoreError::Server { status, code, message }
            if matches!(status, Some(400) | Some(501))
                && matches!(code.as_str(), "InvalidArgument" | "NotImplemented" | "InvalidRequest")
                && message.to_ascii_lowercase().contains("checksum") =>
        {
            StoreError::Server {
                status,
                code,
                message: format!(
                    "{message} (the service does not take upload checksums: mount with --upload-checksum off)"
                ),
            }
        }
        other => other,
    }
}

fn watched_body(data: &Bytes, progress: &Arc<Progress>) -> ByteStream {
    ByteStream::from_body_1_x(Watched { data: data.clone(), progress: progress.clone() })
}

/// The SDK's default HTTPS client (rustls with aws-lc, the system's roots, which honour
/// SSL_CERT_FILE and SSL_CERT_DIR) plus what the AWS CLI and SDKs of other languages do and the
/// Rust SDK's default does not: the certificates of AWS_CA_BUNDLE (`--ca-bundle`), and proxies
/// from HTTPS_PROXY, HTTP_PROXY and NO_PROXY.
fn http_client(tls: aws_smithy_http_client::tls::TlsContext) -> aws_sdk_s3::config::SharedHttpClient {
    // The builder's connector function (rather than build_https) is the one way to set a proxy;
    // connectors are still made once per set of settings and shared.
    aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        connector(&tls, settings.cloned(), components.and_then(|c| c.sleep_impl()))
    })
}

/// The TLS roots of [`http_client`]: the system's and AWS_CA_BUNDLE's.
fn tls_context(ca_bundle: Option<Vec<u8>>) -> aws_smithy_http_client::tls::TlsContext {
    use aws_smithy_http_client::tls::{TlsContext, TrustStore};
    let mut roots = TrustStore::default();
    if let Some(pem) = ca_bundle {
        roots.add_pem_certificate(pem);
    }
    TlsContext::builder().with_trust_store(roots).build().expect("a trust store of PEM bytes")
}

/// One connection pool: rustls with aws-lc and `tls`'s roots, the proxy from the environment.
fn connector(
    tls: &aws_smithy_http_client::tls::TlsContext,
    settings: Option<aws_smithy_runtime_api::client::http::HttpConnectorSettings>,
    sleep: Option<aws_sdk_s3::config::SharedAsyncSleep>,
) -> aws_smithy_http_client::Connector {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let mut b = aws_smithy_http_client::Connector::builder()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls.clone());
    b.set_connector_settings(settings);
    b.set_sleep_impl(sleep);
    b.proxy_config(aws_smithy_http_client::proxy::ProxyConfig::from_env()).build()
}

/// An error and its causes, one line (`a: b: c`), without the debug dump DisplayErrorContext
/// ends with.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let m = e.to_string();
        if !m.is_empty() && !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        next = e.source();
    }
    out
}

impl S3Store {
    pub async fn new(opts: &S3Options) -> S3Store {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            // Retries and stall timeouts are ours (see `super::retry`).
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().connect_timeout(head::CONNECT_TIMEOUT).build());
        if let Some(p) = &opts.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &opts.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(e) = &opts.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        if opts.no_sign_request {
            loader = loader.no_credentials();
        }
        let tls = tls_context(opts.ca_bundle.clone());
        loader = loader.http_client(http_client(tls.clone()));
        let sdk = loader.load().await;
        let default_region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".to_string());
        // Third-party S3 services often reject the SDK's default CRC trailers; only send and
        // check checksums where S3 requires them.
        let base = aws_sdk_s3::config::Builder::from(&sdk)
            .region(Region::new(default_region.clone()))
            .force_path_style(opts.force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        S3Store {
            base,
            default_region,
            discover_regions: opts.endpoint_url.is_none(),
            clients: Mutex::new(HashMap::new()),
            bucket_regions: Mutex::new(HashMap::new()),
            credentials: if opts.no_sign_request { None } else { sdk.credentials_provider() },
            signing_credentials: tokio::sync::Mutex::new(None),
            retry: opts.retry,
            upload_checksum: opts.upload_checksum,
            request: opts.request.clone(),
            budget_ms: std::sync::atomic::AtomicU64::new(opts.retry.budget.as_millis() as u64),
            throttle: Throttle::default(),
            version_at: opts.version_at,
            versions_at: Mutex::new(HashMap::new()),
            lean_head: (!opts.head_via_sdk).then(|| {
                let settings = aws_smithy_runtime_api::client::http::HttpConnectorSettings::builder()
                    .connect_timeout(head::CONNECT_TIMEOUT)
                    .build();
                head::LeanHead::new(
                    connector(&tls, Some(settings), sdk.sleep_impl()),
                    head::EndpointConfig {
                        endpoint_url: sdk.endpoint_url().map(str::to_string),
                        force_path_style: opts.force_path_style,
                        use_fips: sdk.use_fips().unwrap_or(false),
                        use_dual_stack: sdk.use_dual_stack().unwrap_or(false),
                    },
                )
            }),
        }
    }

    /// Caps the retry budget (`None`: back to the configured one). The start-up checks use a
    /// short one, so a wrong endpoint is reported in seconds.
    pub fn cap_retry_budget(&self, cap: Option<Duration>) {
        let b = cap.map_or(self.retry.budget, |c| c.min(self.retry.budget));
        self.budget_ms.store(b.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn retry_options(&self) -> RetryOptions {
        let ms = self.budget_ms.load(std::sync::atomic::Ordering::Relaxed);
        RetryOptions { budget: Duration::from_millis(ms), ..self.retry }
    }

    /// Sends one request with retries: `attempt` builds and sends it afresh each time, given
    /// the progress marker its body and response touch.
    async fn call<T, F, Fut>(&self, op: &'static str, attempt: F) -> StoreResult<T>
    where
        F: Fn(Arc<Progress>) -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let mut attempts = Attempts::new(op, self.retry_options(), &self.throttle);
        loop {
            attempts.before().await;
            let progress = Progress::new();
            match watch(&progress, self.retry.request_timeout, attempt(progress.clone())).await {
                Ok(v) => {
                    attempts.succeeded();
                    return Ok(v);
                }
                Err(e) => {
                    if !attempts.again(&e).await {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn client_in(&self, region: &str) -> Client {
        let mut clients = self.clients.lock().unwrap();
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let conf = self.base.to_builder().region(Region::new(region.to_string())).build();
                Client::from_conf(conf)
            })
            .clone()
    }

    /// The client for a bucket's region, discovering the region first when needed.
    async fn client(&self, bucket: &str) -> Client {
        self.client_in(&self.region_of(bucket).await)
    }

    /// A bucket's region: asked with HeadBucket the first time, against AWS.
    async fn region_of(&self, bucket: &str) -> String {
        if !self.discover_regions {
            return self.default_region.clone();
        }
        if let Some(r) = self.bucket_regions.lock().unwrap().get(bucket) {
            return r.clone();
        }
        // Errors here surface again on the real request; the region is what matters.
        let _ = self.head_bucket(bucket).await;
        let r = self.bucket_regions.lock().unwrap().get(bucket).cloned();
        r.unwrap_or_else(|| self.default_region.clone())
    }

    /// Credentials for presigning: the chain's current ones, reused until five minutes before
    /// they expire (static keys never do).
    async fn signing_credentials(&self) -> StoreResult<Credentials> {
        let Some(provider) = &self.credentials else {
            return Err(StoreError::BadCredentials("an unsigned mount (--no-sign-request) cannot sign links".into()));
        };
        let mut cached = self.signing_credentials.lock().await;
        let fresh = |c: &Credentials| c.expiry().is_none_or(|e| e > SystemTime::now() + Duration::from_secs(300));
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let c = provider.provide_credentials().await.map_err(|e| StoreError::BadCredentials(causes(&e)))?;
        *cached = Some(c.clone());
        Ok(c)
    }

    fn remember_region(&self, bucket: &str, region: &str) {
        self.bucket_regions.lock().unwrap().insert(bucket.to_string(), region.to_string());
    }
}

/// A request that got no answer: a certificate not trusted, or an endpoint that does not speak
/// TLS (no retry helps), or else the network.
fn transport_error(text: String) -> StoreError {
    if text.contains("TLS") || text.contains("certificate") { StoreError::Tls(text) } else { StoreError::Network(text) }
}

/// The ETag S3 gives an object completed from `parts` (number, ETag): the MD5 of the parts'
/// MD5s, then "-" and their count, quoted. `None` when a part's ETag is not an MD5 (SSE-KMS).
fn multipart_etag(parts: &[(i32, String)]) -> Option<String> {
    use md5::{Digest, Md5};
    let mut all = Md5::new();
    for (_, etag) in parts {
        let hex = etag.trim_matches('"');
        if hex.len() != 32 {
            return None;
        }
        let mut digest = [0u8; 16];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        all.update(digest);
    }
    let sum: String = all.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("\"{sum}-{}\"", parts.len()))
}

/// `x-amz-copy-source`: bucket and key, URL-encoded except for '/'.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 1);
    out.push_str(bucket);
    out.push('/');
    head::encode_into(&mut out, key, true);
    out
}

fn to_system_time(t: Option<&DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

/// Whether a request failed before it was sent because the credential chain found nothing (the
/// SDK reports that as a dispatch failure, which is not the network's fault).
fn no_credentials<E: std::error::Error + 'static>(err: &E) -> bool {
    let text = format!("{}", DisplayErrorContext(err));
    text.contains("no credentials found in chain") || text.contains("the credential provider was not enabled")
}

/// A request the SDK's builders refused to build (a bug of ours, never the server's answer).
fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Server { status: None, code: "BuildError".into(), message: e.to_string() }
}

/// Folds an SDK error into a [`StoreError`]. `not_found` is the store error a 404 means for this
/// operation (HeadObject's 404 has no body, so there is no code to tell key from bucket).
fn map_err<E>(err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>, not_found: StoreError) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match &err {
        SdkError::DispatchFailure(d) if !d.is_io() && !d.is_timeout() && no_credentials(&err) => {
            return StoreError::NoCredentials(causes(&err));
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            return transport_error(causes(&err));
        }
        SdkError::ConstructionFailure(_) => {
            // Most often: no credentials could be loaded, or they could not sign.
            return StoreError::BadCredentials(causes(&err));
        }
        _ => {}
    }
    let code = err.code().unwrap_or("").to_string();
    let message = err.message().unwrap_or("").to_string();
    match code.as_str() {
        "NoSuchKey" | "NotFound" => return not_found,
        "NoSuchBucket" => return StoreError::NoSuchBucket,
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => return StoreError::AccessDenied,
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired" => {
            return StoreError::BadCredentials(if message.is_empty() { code } else { format!("{code}: {message}") });
        }
        "PreconditionFailed" => return StoreError::PreconditionFailed,
        "InvalidRange" => return StoreError::InvalidRange,
        "BucketNotEmpty" => return StoreError::BucketNotEmpty,
        "BucketAlreadyExists" | "BucketAlreadyOwnedByYou" => return StoreError::BucketExists,
        "MetadataTooLarge" => return StoreError::MetadataTooLarge,
        "InvalidObjectState" => return StoreError::Archived,
        _ => {}
    }
    match status {
        Some(404) => not_found,
        Some(403) => StoreError::AccessDenied,
        Some(412) => StoreError::PreconditionFailed,
        Some(416) => StoreError::InvalidRange,
        _ => StoreError::Server {
            status,
            code: if code.is_empty() { "Unknown".into() } else { code },
            message: if message.is_empty() { causes(&err) } else { message },
        },
    }
}

/// One page of ListObjectVersions: versions and delete markers merged, by key and newest first.
struct VersionsPage {
    versions: Vec<ListedVersion>,
    prefixes: Vec<String>,
    /// Key marker and version-id marker of the next page.
    next: Option<(String, String)>,
}

/// Folders of a `--version-at` listing page checked at once for having existed then.
const PREFIX_CHECKS: usize = 8;
/// Pages of versions read at most to decide whether a folder existed at that time.
const PREFIX_PAGES: usize = 5;

/// Runs `futs` at once on this task; their outputs in order.
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future finished")).collect()
}

/// The version of each key current at `at`, from versions sorted by key, newest first: the
/// first no later than `at` (absent when that is a delete marker, or when none is). `decided`
/// is a key already settled on an earlier page. Returns the keys' choices in order and the
/// last key settled.
fn current_at<'a>(
    versions: &'a [ListedVersion],
    at: SystemTime,
    decided: Option<&str>,
) -> (Vec<(&'a ListedVersion, bool)>, Option<String>) {
    let mut out = Vec::new();
    let mut settled = decided.map(str::to_string);
    for v in versions {
        if settled.as_deref() == Some(v.key.as_str()) {
            continue;
        }
        if v.last_modified.is_some_and(|t| t <= at) {
            settled = Some(v.key.clone());
            out.push((v, !v.delete_marker));
        }
    }
    (out, settled)
}

impl S3Store {
    async fn list_versions_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        marker: Option<(&str, &str)>,
    ) -> StoreResult<VersionsPage> {
        crate::stats::request("ListObjectVersions");
        let client = self.client(bucket).await;
        let resp = self
            .call("ListObjectVersions", |_| async {
                send_with!(
                    client
                        .list_object_versions()
                        .bucket(bucket)
                        .prefix(prefix)
                        .set_delimiter(delimiter.map(str::to_string))
                        .set_key_marker(marker.map(|m| m.0.to_string()))
                        .set_version_id_marker(marker.map(|m| m.1.to_string()).filter(|v| !v.is_empty())),
                    self.request.headers(Req::Keys, None)
                )
                .map_err(|e| map_err(e, StoreError::NoSuchBucket))
            })
            .await?;
        let mut versions: Vec<ListedVersion> = resp
            .versions()
            .iter()
            .filter_map(|v| {
                Some(ListedVersion {
                    key: v.key()?.to_string(),
                    version_id: v.version_id().unwrap_or("null").to_string(),
                    last_modified: to_system_time(v.last_modified()),
                    size: v.size().unwrap_or(0).max(0) as u64,
                    etag: v.e_tag().map(str::to_string),
                    storage_class: v.storage_class().map(|c| c.as_str().to_string()),
                    is_latest: v.is_latest() == Some(true),
                    delete_marker: false,
                })
            })
            .chain(resp.delete_markers().iter().filter_map(|d| {
                Some(ListedVersion {
                    key: d.key()?.to_string(),
                    version_id: d.version_id().unwrap_or("null").to_string(),
                    last_modified: to_system_time(d.last_modified()),
                    is_latest: d.is_latest() == Some(true),
                    delete_marker: true,
                    ..ListedVersion::default()
                })
            }))
            .collect();
        // S3 returns versions and delete markers in two lists; by key, newest first. Within one
        // LastModified (milliseconds: a put and a delete may share one) the latest goes first.
        versions.sort_by(|a, b| {
            a.key.cmp(&b.key).then(b.last_modified.cmp(&a.last_modified)).then(b.is_latest.cmp(&a.is_latest))
        });
        let prefixes = resp.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_string)).collect();
        let next = (resp.is_truncated() == Some(true)).then(|| {
            (
                resp.next_key_marker().unwrap_or_default().to_string(),
                resp.next_version_id_marker().unwrap_or_default().to_string(),
            )
        });
        Ok(VersionsPage { versions, prefixes, next })
    }

    /// A listing page of the bucket as it was at `at` (`--version-at`). The continuation
    /// token carries the markers and the key settled last (its older versions may follow).
    async fn list_at(&self, req: ListRequest<'_>, at: SystemTime) -> StoreResult<ListPage> {
        let mut parts = req.continuation.map(|t| t.splitn(3, '\n').collect::<Vec<_>>()).unwrap_or_default();
        parts.resize(3, "");
        let marker = req.continuation.map(|_| (parts[0], parts[1]));
        let decided = Some(parts[2]).filter(|d| !d.is_empty());
        let page = self.list_versions_page(req.bucket, req.prefix, req.delimiter, marker).await?;
        let (chosen, settled) = current_at(&page.versions, at, decided);
        let mut objects = Vec::new();
        {
            let mut known = self.versions_at.lock().unwrap();
            for (v, present) in chosen {
                known.insert((req.bucket.to_string(), v.key.clone()), present.then(|| v.version_id.clone()));
                if present {
                    objects.push(ListedObject {
                        key: v.key.clone(),
                        size: v.size,
                        last_modified: v.last_modified,
                        etag: v.etag.clone(),
                        storage_class: v.storage_class.clone(),
                    });
                }
            }
        }
        let next = page.next.map(|(k, v)| format!("{k}\n{v}\n{}", settled.unwrap_or_default()));
        // A folder is listed when anything in it has a version, whenever: only those with
        // something that existed at `at` were folders then.
        let mut prefixes = Vec::with_capacity(page.prefixes.len());
        for chunk in page.prefixes.chunks(PREFIX_CHECKS) {
            let found = join_all(chunk.iter().map(|p| self.existed_at(req.bucket, p, at)).collect()).await;
            for (p, existed) in chunk.iter().zip(found) {
                if existed? {
                    prefixes.push(p.clone());
                }
            }
        }
        Ok(ListPage { objects, prefixes, next })
    }

    /// Whether anything under `prefix` existed at `at`: a key whose version current then is
    /// not a delete marker. Pages of ListObjectVersions are read until one is found (usually
    /// the first page decides); past [`PREFIX_PAGES`] pages still undecided, it is taken as
    /// there (listed, perhaps empty when opened).
    async fn existed_at(&self, bucket: &str, prefix: &str, at: SystemTime) -> StoreResult<bool> {
        let (mut marker, mut decided) = (None::<(String, String)>, None::<String>);
        for _ in 0..PREFIX_PAGES {
            let at_marker = marker.as_ref().map(|(k, v)| (k.as_str(), v.as_str()));
            let page = self.list_versions_page(bucket, prefix, None, at_marker).await?;
            let (chosen, settled) = current_at(&page.versions, at, decided.as_deref());
            if chosen.iter().any(|(_, present)| *present) {
                return Ok(true);
            }
            decided = settled;
            match page.next {
                Some(next) => marker = Some(next),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// The version of `key` current at `at`: `None` if it did not exist then.
    async fn version_at(&self, bucket: &str, key: &str, at: SystemTime) -> StoreResult<Option<String>> {
        if let Some(v) = self.versions_at.lock().unwrap().get(&(bucket.to_string(), key.to_string())) {
            return Ok(v.clone());
        }
        let all = self.list_versions_of(bucket, key).await?;
        let (chosen, _) = current_at(&all, at, None);
        let v = chosen.first().and_then(|(v, present)| present.then(|| v.version_id.clone()));
        self.versions_at.lock().unwrap().insert((bucket.to_string(), key.to_string()), v.clone());
        Ok(v)
    }

    /// The version id a request on `key` names: none normally; with `--version-at` the one
    /// current then (NotFound if the key did not exist).
    async fn pinned_version(&self, bucket: &str, key: &str) -> StoreResult<Option<String>> {
        match self.version_at {
            None => Ok(None),
            Some(at) => self.version_at(bucket, key, at).await?.map(Some).ok_or(StoreError::NotFound),
        }
    }
}

impl ObjectStore for S3Store {
    async fn list_buckets(&self) -> StoreResult<Vec<BucketInfo>> {
        crate::stats::request("ListBuckets");
        let client = self.client_in(&self.default_region);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .call("ListBuckets", |_| async {
                    client
                        .list_buckets()
                        .set_continuation_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| map_err(e, StoreError::NotFound))
                })
                .await?;
            for b in resp.buckets() {
                if let Some(name) = b.name() {
                    out.push(BucketInfo { name: name.to_string(), created: to_system_time(b.creation_date()) });
                    if let Some(r) = b.bucket_region() {
                        self.remember_region(name, r);
                    }
                }
            }
            match resp.continuation_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn head_bucket(&self, bucket: &str) -> StoreResult<String> {
        crate::stats::request("HeadBucket");
        let known = self.bucket_regions.lock().unwrap().get(bucket).cloned();
        let client = self.client_in(known.as_deref().unwrap_or(&self.default_region));
        // Not retried (the 301 and 403 answers are read below), but bounded like every request.
        let bounded = |client: Client| async move {
            let send =
                async { Ok(send_with!(client.head_bucket().bucket(bucket), self.request.headers(Req::Bucket, None))) };
            watch(&Progress::new(), self.retry.request_timeout, send).await
        };
        match bounded(client).await? {
            Ok(out) => {
                let region = out.bucket_region().unwrap_or(&self.default_region).to_string();
                if self.discover_regions {
                    self.remember_region(bucket, &region);
                }
                Ok(region)
            }
            Err(err) => {
                let header =
                    err.raw_response().and_then(|r| r.headers().get("x-amz-bucket-region")).map(str::to_string);
                let status = err.raw_response().map(|r| r.status().as_u16());
                if let (Some(region), true) = (&header, self.discover_regions) {
                    self.remember_region(bucket, region);
                    if status == Some(301) {
                        debug!(bucket, region, "bucket lives in another region; asking there");
                        return match bounded(self.client_in(region)).await? {
                            Ok(_) => Ok(region.clone()),
                            Err(e) => Err(map_err(e, StoreError::NoSuchBucket)),
                        };
                    }
                }
                Err(map_err(err, StoreError::NoSuchBucket))
            }
        }
    }

    async fn list_objects(&self, req: ListRequest<'_>) -> StoreResult<ListPage> {
        if let Some(at) = self.version_at {
            return self.list_at(req, at).await;
        }
        crate::stats::request("ListObjectsV2");
        let client = self.client(req.bucket).await;
        let resp = self
            .call("ListObjectsV2", |_| async {
                send_with!(
                    client
                        .list_objects_v2()
                        .bucket(req.bucket)
                        .prefix(req.prefix)
                        .set_delimiter(req.delimiter.map(str::to_string))
                        .set_continuation_token(req.continuation.map(str::to_string))
                        .set_max_keys(req.max_keys),
                    self.request.headers(Req::Keys, None)
                )
                .map_err(|e| map_err(e, StoreError::NoSuchBucket))
            })
            .await?;
        let objects = resp
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ListedObject {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    last_modified: to_system_time(o.last_modified()),
                    etag: o.e_tag().map(str::to_string),
                    storage_class: o.storage_class().map(|c| c.as_str().to_string()),
                })
            })
            .collect();
        let prefixes = resp.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_string)).collect();
        let next = if resp.is_truncated() == Some(true) {
            let t = resp.next_continuation_token().map(str::to_string);
            if t.is_none() {
                warn!(bucket = req.bucket, "truncated listing without a continuation token; stopping");
            }
            t
        } else {
            None
        };
        Ok(ListPage { objects, prefixes, next })
    }

    async fn head_object(&self, bucket: &str, key: &str) -> StoreResult<ObjectMeta> {
        let version = self.pinned_version(bucket, key).await?;
        crate::stats::request("HeadObject");
        let region = self.region_of(bucket).await;
        if let Some(lean) = &self.lean_head
            && let Some(target) = lean.target(bucket, &region).await
        {
            let headers = self.request.headers(Req::Read, None);
            let creds = match self.credentials {
                Some(_) => Some(self.signing_credentials().await?),
                None => None,
            };
            return self
                .call("HeadObject", |_| lean.head(&target, key, version.as_deref(), &headers, creds.as_ref()))
                .await;
        }
        let client = self.client_in(&region);
        let resp = self
            .call("HeadObject", |_| async {
                send_with!(
                    client.head_object().bucket(bucket).key(key).set_version_id(version.clone()),
                    self.request.headers(Req::Read, None)
                )
                .map_err(|e| map_err(e, StoreError::NotFound))
            })
            .await?;
        Ok(ObjectMeta {
            size: resp.content_length().unwrap_or(0).max(0) as u64,
            last_modified: to_system_time(resp.last_modified()),
            etag: resp.e_tag().map(str::to_string),
            content_type: resp.content_type().map(str::to_string),
            storage_class: resp.storage_class().map(|s| s.as_str().to_string()),
            restore: resp.restore().map(str::to_string),
            archive_status: resp.archive_status().map(|s| s.as_str().to_string()),
            sse: match (resp.server_side_encryption(), resp.ssekms_key_id(), resp.sse_customer_algorithm()) {
                (_, _, Some(_)) => Some("SSE-C".to_string()),
                (Some(mode), Some(key), None) => Some(format!("{} {key}", mode.as_str())),
                (Some(mode), None, None) => Some(mode.as_str().to_string()),
                (None, _, None) => None,
            },
            metadata: resp
                .metadata()
                .map(|m| m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect())
                .unwrap_or_default(),
        })
    }

    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        end: u64,
        if_match: Option<&str>,
    ) -> StoreResult<Bytes> {
        let version = self.pinned_version(bucket, key).await?;
        let version = &version;
        crate::stats::request("GetObject");
        debug_assert!(end > start);
        let client = self.client(bucket).await;
        // Straight into one buffer of the range's size: collecting the chunks and then joining
        // them would hold each part twice (plus the chunks' slack) at the moment of the join.
        // Large buffers come from the pool, already faulted in.
        let want = (end - start) as usize;
        let got = Mutex::new(PoolBuf::new(want));
        // The version being read: the caller's, else the one the first answer was. A resumed
        // request asks for it with If-Match, and an answer of another version (a server that
        // ignores If-Match) is a precondition failure, never mixed into the bytes.
        let pinned = Mutex::new(if_match.map(str::to_string));
        // Each attempt borrows the state it carries on (`async move` takes the references).
        let (received, pinned, client) = (&got, &pinned, &client);
        self.call("GetObject", |progress| async move {
            let from = start + received.lock().unwrap().len() as u64;
            if from > start {
                debug!(key, got = from - start, want, "GET cut short; resuming from the first missing byte");
            }
            let pin = pinned.lock().unwrap().clone();
            let sent = send_with!(
                client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .range(format!("bytes={}-{}", from, end - 1))
                    .set_version_id(version.clone())
                    .set_if_match(pin.clone()),
                self.request.headers(Req::Read, None)
            );
            let resp = match sent.map_err(|e| map_err(e, StoreError::NotFound)) {
                Ok(r) => r,
                // A range past the end after a resume means the object is shorter than a
                // listing said: what arrived is all there is.
                Err(StoreError::InvalidRange) if from > start => return Ok(()),
                Err(e) => return Err(e),
            };
            let etag = resp.e_tag().map(str::to_string);
            match (&pin, &etag) {
                (Some(p), Some(e)) if p != e => {
                    debug!(key, pinned = p, got = e, "an answer of another version: precondition failed");
                    return Err(StoreError::PreconditionFailed);
                }
                (None, Some(e)) => *pinned.lock().unwrap() = Some(e.clone()),
                _ => {}
            }
            progress.touch();
            let mut body = resp.body;
            while let Some(chunk) = body
                .try_next()
                .await
                .map_err(|e| StoreError::Network(format!("reading response body: {}", causes(&e))))?
            {
                progress.touch();
                if received.lock().unwrap().push(&chunk) < chunk.len() {
                    return Err(StoreError::Server {
                        status: None,
                        code: "TooLong".into(),
                        message: format!(
                            "the server sent more than the {want} bytes of range {start}-{} of {key}",
                            end - 1
                        ),
                    });
                }
            }
            Ok(())
        })
        .await?;
        let buf = got.into_inner().unwrap();
        crate::stats::bytes_down(buf.len() as u64);
        Ok(buf.freeze())
    }

    async fn put_object(&self, bucket: &str, key: &str, body: Bytes, meta: &PutMeta) -> StoreResult<PutResult> {
        crate::stats::request("PutObject");
        let len = body.len() as u64;
        let client = self.client(bucket).await;
        let checksum = self.upload_checksum.then(|| crc32c(&body));
        let resp = self
            .call("PutObject", |progress| {
                let stream = watched_body(&body, &progress);
                async {
                    client
                        .put_object()
                        .bucket(bucket)
                        .key(key)
                        .content_length(len as i64)
                        .set_checksum_crc32_c(checksum.clone())
                        .body(stream)
                        .set_metadata(Some(meta.metadata.clone()))
                        .set_content_type(meta.content_type.clone())
                        .customize()
                        .disable_payload_signing()
                        .mutate_request(add_headers(self.request.headers(Req::Create, meta.storage_class.as_deref())))
                        .send()
                        .await
                        .map_err(|e| map_err(e, StoreError::NoSuchBucket))
                }
            })
            .await
            .map_err(checksum_unsupported)?;
        crate::stats::bytes_up(len);
        Ok(PutResult { etag: resp.e_tag().map(str::to_string) })
    }

    async fn create_multipart(&self, bucket: &str, key: &str, meta: &PutMeta) -> StoreResult<String> {
        crate::stats::request("CreateMultipartUpload");
        let client = self.client(bucket).await;
        let resp = self
            .call("CreateMultipartUpload", |_| async {
                send_with!(
                    client
                        .create_multipart_upload()
                        .bucket(bucket)
                        .key(key)
                        .set_metadata(Some(meta.metadata.clone()))
                        .set_content_type(meta.content_type.clone()),
                    self.request.headers(Req::Create, meta.storage_class.as_deref())
                )
                .map_err(|e| map_err(e, StoreError::NoSuchBucket))
            })
            .await?;
        resp.upload_id().map(str::to_string).ok_or_else(|| StoreError::Server {
            status: None,
            code: "NoUploadId".into(),
            message: "CreateMultipartUpload returned no upload id".into(),
        })
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: i32,
        body: Bytes,
    ) -> StoreResult<String> {
        crate::stats::request("UploadPart");
        let len = body.len() as u64;
        let client = self.client(bucket).await;
        let checksum = self.upload_checksum.then(|| crc32c(&body));
        let resp = self
            .call("UploadPart", |progress| {
                let stream = watched_body(&body, &progress);
                async {
                    client
                        .upload_part()
                        .bucket(bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(part)
                        .content_length(len as i64)
                        .set_checksum_crc32_c(checksum.clone())
                        .body(stream)
                        .customize()
                        .disable_payload_signing()
                        .mutate_request(add_headers(self.request.headers(Req::Part, None)))
                        .send()
                        .await
                        .map_err(|e| map_err(e, StoreError::NotFound))
                }
            })
            .await
            .map_err(checksum_unsupported)
            .map_err(upload_gone)?;
        crate::stats::bytes_up(len);
        Ok(resp.e_tag().unwrap_or_default().to_string())
    }

    async fn upload_part_copy(
        &self,
        src_bucket: &str,
        src_key: &str,
        start: u64,
        end: u64,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: i32,
    ) -> StoreResult<String> {
        crate::stats::request("UploadPartCopy");
        let client = self.client(bucket).await;
        let resp = self
            .call("UploadPartCopy", |_| async {
                send_with!(
                    client
                        .upload_part_copy()
                        .bucket(bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(part)
                        .copy_source(copy_source(src_bucket, src_key))
                        .copy_source_range(format!("bytes={}-{}", start, end - 1)),
                    self.request.headers(Req::PartCopy, None)
                )
                .map_err(|e| map_err(e, StoreError::NotFound))
            })
            .await?;
        Ok(resp.copy_part_result().and_then(|r| r.e_tag()).unwrap_or_default().to_string())
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> StoreResult<PutResult> {
        crate::stats::request("CompleteMultipartUpload");
        let client = self.client(bucket).await;
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts.iter().map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(etag).build()).collect(),
            ))
            .build();
        let tries = std::sync::atomic::AtomicU32::new(0);
        let resp = self
            .call("CompleteMultipartUpload", |_| async {
                tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                send_with!(
                    client
                        .complete_multipart_upload()
                        .bucket(bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .multipart_upload(done.clone()),
                    self.request.headers(Req::Part, None)
                )
                .map_err(|e| map_err(e, StoreError::NotFound))
            })
            .await;
        match resp {
            Ok(resp) => Ok(PutResult { etag: resp.e_tag().map(str::to_string) }),
            // NoSuchUpload on a retry: an earlier try may have completed the upload, its answer
            // lost (a reset, a stall). The object tells: it carries the ETag S3 gives exactly
            // these parts.
            Err(StoreError::NotFound) if tries.into_inner() > 1 => {
                let expect = multipart_etag(parts);
                match self.head_object(bucket, key).await {
                    Ok(meta) if expect.is_some() && meta.etag == expect => {
                        info!(key, "CompleteMultipartUpload: an earlier try completed it (its answer was lost)");
                        Ok(PutResult { etag: meta.etag })
                    }
                    _ => Err(upload_gone(StoreError::NotFound)),
                }
            }
            Err(e) => Err(upload_gone(e)),
        }
    }

    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> StoreResult<()> {
        crate::stats::request("AbortMultipartUpload");
        let client = self.client(bucket).await;
        self.call("AbortMultipartUpload", |_| async {
            send_with!(
                client.abort_multipart_upload().bucket(bucket).key(key).upload_id(upload_id),
                self.request.headers(Req::Keys, None)
            )
            .map_err(|e| map_err(e, StoreError::NotFound))
        })
        .await?;
        Ok(())
    }

    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        bucket: &str,
        key: &str,
        meta: Option<&PutMeta>,
    ) -> StoreResult<PutResult> {
        crate::stats::request("CopyObject");
        let client = self.client(bucket).await;
        let resp = self
            .call("CopyObject", |_| async {
                let mut req =
                    client.copy_object().bucket(bucket).key(key).copy_source(copy_source(src_bucket, src_key));
                if let Some(m) = meta {
                    req = req
                        .metadata_directive(MetadataDirective::Replace)
                        .set_metadata(Some(m.metadata.clone()))
                        .set_content_type(m.content_type.clone());
                }
                let class = meta.and_then(|m| m.storage_class.as_deref());
                send_with!(req, self.request.headers(Req::Copy, class)).map_err(|e| map_err(e, StoreError::NotFound))
            })
            .await?;
        Ok(PutResult { etag: resp.copy_object_result().and_then(|r| r.e_tag()).map(str::to_string) })
    }

    async fn delete_objects(&self, bucket: &str, keys: &[String]) -> StoreResult<Vec<(String, StoreError)>> {
        crate::stats::request("DeleteObjects");
        let client = self.client(bucket).await;
        let objects: Result<Vec<_>, _> = keys.iter().map(|k| ObjectIdentifier::builder().key(k).build()).collect();
        let delete = Delete::builder()
            .set_objects(Some(objects.map_err(build_error)?))
            .quiet(true)
            .build()
            .map_err(build_error)?;
        let resp = self
            .call("DeleteObjects", |_| async {
                send_with!(
                    client.delete_objects().bucket(bucket).delete(delete.clone()),
                    self.request.headers(Req::Keys, None)
                )
                .map_err(|e| map_err(e, StoreError::NoSuchBucket))
            })
            .await?;
        Ok(resp
            .errors()
            .iter()
            .map(|e| {
                let err = match e.code() {
                    Some("AccessDenied") => StoreError::AccessDenied,
                    code => StoreError::Server {
                        status: None,
                        code: code.unwrap_or("Unknown").to_string(),
                        message: e.message().unwrap_or_default().to_string(),
                    },
                };
                (e.key().unwrap_or_default().to_string(), err)
            })
            .collect())
    }

    async fn list_versions_of(&self, bucket: &str, key: &str) -> StoreResult<Vec<ListedVersion>> {
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        loop {
            let page = self
                .list_versions_page(bucket, key, None, marker.as_ref().map(|(k, v)| (k.as_str(), v.as_str())))
                .await?;
            // The prefix also matches longer keys (`key.bak`): they sort after `key`'s versions.
            let past = page.versions.iter().any(|v| v.key.as_str() > key);
            out.extend(page.versions.into_iter().filter(|v| v.key == key));
            match page.next {
                Some(m) if !past => marker = Some(m),
                _ => return Ok(out),
            }
        }
    }

    async fn restore_object(&self, bucket: &str, key: &str, days: Option<i32>, tier: Option<&str>) -> StoreResult<()> {
        use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, Tier};
        crate::stats::request("RestoreObject");
        let client = self.client(bucket).await;
        let job = match tier {
            Some(t) => Some(GlacierJobParameters::builder().tier(Tier::from(t)).build().map_err(build_error)?),
            None => None,
        };
        let request = RestoreRequest::builder().set_days(days).set_glacier_job_parameters(job).build();
        let sent = self
            .call("RestoreObject", |_| async {
                send_with!(
                    client.restore_object().bucket(bucket).key(key).restore_request(request.clone()),
                    self.request.headers(Req::Keys, None)
                )
                .map_err(|e| match e.code() {
                    Some("RestoreAlreadyInProgress") => StoreError::Server {
                        status: Some(409),
                        code: "RestoreAlreadyInProgress".into(),
                        message: String::new(),
                    },
                    _ => map_err(e, StoreError::NotFound),
                })
            })
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(StoreError::Server { code, .. }) if code == "RestoreAlreadyInProgress" => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn presign_get(&self, bucket: &str, key: &str, lifetime: Duration) -> StoreResult<Presigned> {
        let creds = self.signing_credentials().await?;
        // Whole seconds, as X-Amz-Date has them, so `expires` is exactly when the URL stops.
        let now = SystemTime::UNIX_EPOCH
            + Duration::from_secs(
                SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs(),
            );
        let mut lifetime = lifetime.min(MAX_PRESIGN);
        if let Some(end) = creds.expiry() {
            lifetime = lifetime.min(end.duration_since(now).unwrap_or_default());
        }
        let lifetime = Duration::from_secs(lifetime.as_secs());
        if lifetime.is_zero() {
            return Err(StoreError::BadCredentials("the credentials expire within a second".into()));
        }
        let conf = PresigningConfig::builder()
            .start_time(now)
            .expires_in(lifetime)
            .build()
            .map_err(|e| StoreError::Server { status: None, code: "Presign".into(), message: e.to_string() })?;
        let req = self
            .client(bucket)
            .await
            .get_object()
            .bucket(bucket)
            .key(key)
            .customize()
            .config_override(aws_sdk_s3::config::Builder::default().credentials_provider(creds))
            .presigned(conf)
            .await
            .map_err(|e| map_err(e, StoreError::NotFound))?;
        Ok(Presigned { url: req.uri().to_string(), expires: now + lifetime })
    }

    async fn create_bucket(&self, bucket: &str) -> StoreResult<()> {
        crate::stats::request("CreateBucket");
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let client = self.client_in(&self.default_region);
        let mut req = client.create_bucket().bucket(bucket);
        if self.default_region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.default_region.as_str()))
                    .build(),
            );
        }
        self.call("CreateBucket", |_| async { req.clone().send().await.map_err(|e| map_err(e, StoreError::NotFound)) })
            .await?;
        if self.discover_regions {
            self.remember_region(bucket, &self.default_region.clone());
        }
        Ok(())
    }

    async fn delete_bucket(&self, bucket: &str) -> StoreResult<()> {
        crate::stats::request("DeleteBucket");
        let client = self.client(bucket).await;
        self.call("DeleteBucket", |_| async {
            client.delete_bucket().bucket(bucket).send().await.map_err(|e| map_err(e, StoreError::NoSuchBucket))
        })
        .await?;
        Ok(())
    }
}

/// A 404 from UploadPart or CompleteMultipartUpload is NoSuchUpload: the upload is gone
/// (aborted by another client or a lifecycle rule), not the file. The write failed (EIO),
/// whatever the name's state.
fn upload_gone(e: StoreError) -> StoreError {
    match e {
        StoreError::NotFound => StoreError::Server {
            status: Some(404),
            code: "NoSuchUpload".into(),
            message: "the multipart upload no longer exists (aborted elsewhere?)".into(),
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
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
