//! HeadObject sent without the SDK's orchestrator: the request is signed with aws-sigv4 and sent
//! through a connector built like the SDK's own (same TLS roots, proxy and connect timeout),
//! and the answer's headers are read here. A HeadObject through the orchestrator costs about
//! three times the CPU (interceptors, runtime components, serde), and HeadObject is what a cold
//! `ls -l`, `du` or `rsync` of a folder sends once per file: on a fast server that CPU was the
//! limit.
//!
//! Only the request is ours: where it goes comes from the SDK's own endpoint rules, resolved once
//! per bucket and region, and anything those rules do not answer with a plain SigV4 URL (access
//! point ARNs, S3 Express directory buckets, extra endpoint headers) goes through the SDK as
//! before. Errors come back as the same [`StoreError`]s the SDK path gives; retries, timeouts and
//! region discovery stay with the caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_s3::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_types::Document;
use aws_smithy_types::body::SdkBody;

use super::super::{ObjectMeta, StoreError, StoreResult};

/// Where a bucket's objects are and how requests to them are signed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Target {
    /// The bucket's URL, without a trailing '/': the key follows it.
    base: String,
    signing_region: String,
    signing_name: String,
}

/// What the endpoint rules need besides the bucket and region.
#[derive(Debug, Clone, Default)]
pub(super) struct EndpointConfig {
    pub endpoint_url: Option<String>,
    pub force_path_style: bool,
    pub use_fips: bool,
    pub use_dual_stack: bool,
}

/// Bucket and region.
type TargetId = (String, String);

pub(super) struct LeanHead {
    connector: aws_smithy_http_client::Connector,
    config: EndpointConfig,
    resolver: DefaultResolver,
    /// (bucket, region) -> its target; `None`: not a plain SigV4 URL, the SDK sends those.
    targets: Mutex<HashMap<TargetId, Option<Arc<Target>>>>,
    user_agent: String,
}

impl LeanHead {
    pub(super) fn new(connector: aws_smithy_http_client::Connector, config: EndpointConfig) -> LeanHead {
        LeanHead {
            connector,
            config,
            resolver: DefaultResolver::new(),
            targets: Mutex::new(HashMap::new()),
            user_agent: format!("s3drive/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// The bucket's target in `region`, or `None` when the SDK should send the request.
    pub(super) async fn target(&self, bucket: &str, region: &str) -> Option<Arc<Target>> {
        let id = (bucket.to_string(), region.to_string());
        if let Some(t) = self.targets.lock().unwrap().get(&id) {
            return t.clone();
        }
        let t = self.resolve(bucket, region).await.map(Arc::new);
        self.targets.lock().unwrap().insert(id, t.clone());
        t
    }

    async fn resolve(&self, bucket: &str, region: &str) -> Option<Target> {
        // ARNs (access points, Outposts, Object Lambda) and S3 Express directory buckets are
        // signed differently or per key: the SDK handles them.
        if bucket.starts_with("arn:") || bucket.ends_with("--x-s3") || bucket.ends_with("--xa-s3") {
            return None;
        }
        let mut p = Params::builder()
            .bucket(bucket)
            .region(region)
            .use_fips(self.config.use_fips)
            .use_dual_stack(self.config.use_dual_stack)
            .force_path_style(self.config.force_path_style);
        if let Some(e) = &self.config.endpoint_url {
            p = p.endpoint(e.clone());
        }
        let params = p.build().ok()?;
        let endpoint = self.resolver.resolve_endpoint(&params).await.ok()?;
        if endpoint.headers().next().is_some() {
            return None;
        }
        let mut target = Target {
            base: endpoint.url().trim_end_matches('/').to_string(),
            signing_region: region.to_string(),
            signing_name: "s3".to_string(),
        };
        if let Some(Document::Array(schemes)) = endpoint.properties().get("authSchemes") {
            let Some(Document::Object(scheme)) = schemes.first() else { return None };
            let text = |k: &str| match scheme.get(k) {
                Some(Document::String(s)) => Some(s.clone()),
                _ => None,
            };
            if text("name").as_deref() != Some("sigv4") {
                return None;
            }
            if let Some(r) = text("signingRegion") {
                target.signing_region = r;
            }
            if let Some(n) = text("signingName") {
                target.signing_name = n;
            }
        }
        Some(target)
    }

    /// One HeadObject attempt. `creds` is `None` for an unsigned mount; `headers` are the
    /// company options' (signed with the rest).
    pub(super) async fn head(
        &self,
        target: &Target,
        key: &str,
        version: Option<&str>,
        headers: &[(&'static str, String)],
        creds: Option<&Credentials>,
    ) -> StoreResult<ObjectMeta> {
        let url = object_url(&target.base, key, version);
        let mut req = http::Request::builder().method(http::Method::HEAD).uri(&url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(creds) = creds {
            let identity = creds.clone().into();
            let mut settings = SigningSettings::default();
            // S3's own rules: the path is encoded once and never normalized.
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            let params = aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&identity)
                .region(&target.signing_region)
                .name(&target.signing_name)
                .time(SystemTime::now())
                .settings(settings)
                .build()
                .map_err(|e| StoreError::BadCredentials(e.to_string()))?
                .into();
            let signable = SignableRequest::new(
                "HEAD",
                &url,
                headers.iter().map(|(k, v)| (*k, v.as_str())),
                SignableBody::Bytes(&[]),
            )
            .map_err(|e| StoreError::BadCredentials(super::causes(&e)))?;
            let (instructions, _) =
                sign(signable, &params).map_err(|e| StoreError::BadCredentials(super::causes(&e)))?.into_parts();
            for (k, v) in instructions.headers() {
                req = req.header(k, v);
            }
        }
        let req = req
            .header(http::header::USER_AGENT, &self.user_agent)
            .body(SdkBody::empty())
            .map_err(|e| StoreError::Server { status: None, code: "Request".into(), message: e.to_string() })?;
        let req = aws_smithy_runtime_api::http::Request::try_from(req).map_err(|e| StoreError::Server {
            status: None,
            code: "Request".into(),
            message: super::causes(&e),
        })?;
        let resp = self.connector.call(req).await.map_err(|e| {
            let text = super::causes(&e);
            if e.is_io() || e.is_timeout() { StoreError::Network(text) } else { super::transport_error(text) }
        })?;
        let status = resp.status().as_u16();
        meta_from_headers(status, resp.headers().iter())
    }
}

/// The connect timeout the SDK's clients use too.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `base/key?versionId=v`, the key URL-encoded except for '/' (S3's greedy label), the version
/// entirely.
pub(super) fn object_url(base: &str, key: &str, version: Option<&str>) -> String {
    let mut url = String::with_capacity(base.len() + key.len() * 3 / 2 + 2);
    url.push_str(base);
    url.push('/');
    encode_into(&mut url, key, true);
    if let Some(v) = version {
        url.push_str("?versionId=");
        encode_into(&mut url, v, false);
    }
    url
}

/// Percent-encodes all but RFC 3986's unreserved characters (and '/', when `slash`).
pub(super) fn encode_into(out: &mut String, s: &str, slash: bool) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// An answer to HeadObject: the object's metadata, or the error its status means (a HEAD
/// answer has no body, so no error code beyond what a server puts in `x-amz-error-code`).
pub(super) fn meta_from_headers<'a>(
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> StoreResult<ObjectMeta> {
    let mut meta = ObjectMeta::default();
    let mut error_code = None;
    let (mut sse_mode, mut sse_key, mut sse_c) = (None, None, false);
    for (name, value) in headers {
        // Header names arrive lower-cased (the http crate's rule).
        if let Some(m) = name.strip_prefix("x-amz-meta-") {
            meta.metadata.insert(m.to_ascii_lowercase(), value.to_string());
            continue;
        }
        match name {
            "content-length" => meta.size = value.trim().parse().unwrap_or(0),
            "last-modified" => {
                meta.last_modified = DateTime::from_str(value.trim(), DateTimeFormat::HttpDate)
                    .ok()
                    .and_then(|d| SystemTime::try_from(d).ok())
            }
            "etag" => meta.etag = Some(value.to_string()),
            "content-type" => meta.content_type = Some(value.to_string()),
            "x-amz-storage-class" => meta.storage_class = Some(value.to_string()),
            "x-amz-restore" => meta.restore = Some(value.to_string()),
            "x-amz-archive-status" => meta.archive_status = Some(value.to_string()),
            "x-amz-server-side-encryption" => sse_mode = Some(value.to_string()),
            "x-amz-server-side-encryption-aws-kms-key-id" => sse_key = Some(value.to_string()),
            "x-amz-server-side-encryption-customer-algorithm" => sse_c = true,
            "x-amz-error-code" => error_code = Some(value.to_string()),
            _ => {}
        }
    }
    meta.sse = match (sse_mode, sse_key, sse_c) {
        (_, _, true) => Some("SSE-C".to_string()),
        (Some(mode), Some(key), false) => Some(format!("{mode} {key}")),
        (Some(mode), None, false) => Some(mode),
        (None, _, false) => None,
    };
    match status {
        200..=299 => Ok(meta),
        404 => Err(StoreError::NotFound),
        403 => Err(StoreError::AccessDenied),
        412 => Err(StoreError::PreconditionFailed),
        400 if error_code.as_deref() == Some("InvalidObjectState") => Err(StoreError::Archived),
        _ => Err(StoreError::Server {
            status: Some(status),
            code: error_code.unwrap_or_else(|| "Unknown".to_string()),
            message: format!("HTTP {status} to HeadObject"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_keys_as_s3_wants() {
        assert_eq!(object_url("http://h:1/b", "a/b c+d", None), "http://h:1/b/a/b%20c%2Bd");
        assert_eq!(
            object_url("https://b.s3.amazonaws.com", "é?#%", None),
            "https://b.s3.amazonaws.com/%C3%A9%3F%23%25"
        );
        assert_eq!(object_url("http://h/b", "//x/./..", Some("v/1+2")), "http://h/b///x/./..?versionId=v%2F1%2B2");
        assert_eq!(object_url("http://h/b", "~a-b_c.d", None), "http://h/b/~a-b_c.d");
    }

    #[test]
    fn answers_are_read_from_the_headers() {
        let h = [
            ("content-length", "12"),
            ("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ("etag", "\"abc\""),
            ("content-type", "text/plain"),
            ("x-amz-meta-mode", "33152"),
            ("x-amz-meta-Mtime", "1600000000"),
            ("x-amz-storage-class", "GLACIER"),
            ("x-amz-restore", "ongoing-request=\"true\""),
            ("x-amz-server-side-encryption", "aws:kms"),
            ("x-amz-server-side-encryption-aws-kms-key-id", "k1"),
        ];
        let m = meta_from_headers(200, h.iter().copied()).unwrap();
        assert_eq!(m.size, 12);
        assert_eq!(m.last_modified, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1445412480)));
        assert_eq!(m.etag.as_deref(), Some("\"abc\""));
        assert_eq!(m.content_type.as_deref(), Some("text/plain"));
        assert_eq!(m.metadata.get("mode").map(String::as_str), Some("33152"));
        assert_eq!(m.metadata.get("mtime").map(String::as_str), Some("1600000000"));
        assert_eq!(m.storage_class.as_deref(), Some("GLACIER"));
        assert_eq!(m.restore.as_deref(), Some("ongoing-request=\"true\""));
        assert_eq!(m.sse.as_deref(), Some("aws:kms k1"));
        let c = meta_from_headers(200, [("x-amz-server-side-encryption-customer-algorithm", "AES256")].into_iter());
        assert_eq!(c.unwrap().sse.as_deref(), Some("SSE-C"));
    }

    #[test]
    fn statuses_become_the_errors_the_sdk_path_gives() {
        let none = std::iter::empty;
        assert!(matches!(meta_from_headers(404, none()), Err(StoreError::NotFound)));
        assert!(matches!(meta_from_headers(403, none()), Err(StoreError::AccessDenied)));
        assert!(matches!(meta_from_headers(412, none()), Err(StoreError::PreconditionFailed)));
        let e = meta_from_headers(503, [("x-amz-error-code", "SlowDown")].into_iter()).unwrap_err();
        assert!(crate::store::retry::throttled(&e) && crate::store::retry::retryable(&e), "{e:?}");
        let e = meta_from_headers(500, none()).unwrap_err();
        assert!(crate::store::retry::retryable(&e), "{e:?}");
        assert!(matches!(meta_from_headers(301, none()), Err(StoreError::Server { status: Some(301), .. })));
    }

    #[tokio::test]
    async fn targets_come_from_the_sdks_endpoint_rules() {
        let conn = aws_smithy_http_client::Connector::builder().build_http();
        let path = LeanHead::new(
            conn,
            EndpointConfig {
                endpoint_url: Some("http://127.0.0.1:9000".into()),
                force_path_style: true,
                ..Default::default()
            },
        );
        let t = path.target("bkt", "eu-west-1").await.unwrap();
        assert_eq!(
            *t,
            Target {
                base: "http://127.0.0.1:9000/bkt".into(),
                signing_region: "eu-west-1".into(),
                signing_name: "s3".into()
            }
        );
        let conn = aws_smithy_http_client::Connector::builder().build_http();
        let aws = LeanHead::new(conn, EndpointConfig::default());
        let t = aws.target("my-bucket", "us-west-2").await.unwrap();
        assert_eq!(t.base, "https://my-bucket.s3.us-west-2.amazonaws.com");
        // Dots in the name: path style over HTTPS (the certificate covers one label only).
        let t = aws.target("my.bucket", "us-west-2").await.unwrap();
        assert_eq!(t.base, "https://s3.us-west-2.amazonaws.com/my.bucket");
        assert!(aws.target("arn:aws:s3:us-west-2:123456789012:accesspoint/ap", "us-west-2").await.is_none());
        assert!(aws.target("b--usw2-az1--x-s3", "us-west-2").await.is_none());
    }
}
