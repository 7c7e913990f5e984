//! The real store: aws-sdk-s3. This is the only module that imports SDK types; it turns SDK
//! results into the plain types of [`super`] and SDK errors into [`StoreError`].
//!
//! Regions: each bucket is addressed in its own region. Against AWS (no custom endpoint) the first
//! request for a bucket whose region is unknown sends HeadBucket, which reports the region in the
//! `x-amz-bucket-region` header even when it answers 301 or 403; one client per region is kept.
//! With a custom endpoint the configured region is used for every bucket.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::DateTime;
use bytes::Bytes;
use tracing::{debug, warn};

use super::{
    BucketInfo, ListPage, ListRequest, ListedObject, ObjectMeta, ObjectStore, StoreError,
    StoreResult,
};

/// How to reach the service; built from the command line by `config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub force_path_style: bool,
    /// Send unsigned requests (public buckets); no credentials are looked up.
    pub no_sign_request: bool,
}

pub struct S3Store {
    base: aws_sdk_s3::config::Config,
    default_region: String,
    /// Region discovery only makes sense against AWS itself.
    discover_regions: bool,
    clients: Mutex<HashMap<String, Client>>,
    bucket_regions: Mutex<HashMap<String, String>>,
}

impl S3Store {
    pub async fn new(opts: &S3Options) -> S3Store {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(4))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(60))
                    .build(),
            );
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
        let sdk = loader.load().await;
        let default_region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_string());
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
        }
    }

    fn client_in(&self, region: &str) -> Client {
        let mut clients = self.clients.lock().unwrap();
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let conf = self
                    .base
                    .to_builder()
                    .region(Region::new(region.to_string()))
                    .build();
                Client::from_conf(conf)
            })
            .clone()
    }

    /// The client for a bucket's region, discovering the region first when needed.
    async fn client(&self, bucket: &str) -> Client {
        if !self.discover_regions {
            return self.client_in(&self.default_region);
        }
        let known = self.bucket_regions.lock().unwrap().get(bucket).cloned();
        match known {
            Some(r) => self.client_in(&r),
            None => {
                // Errors here surface again on the real request; the region is what matters.
                let _ = self.head_bucket(bucket).await;
                let r = self.bucket_regions.lock().unwrap().get(bucket).cloned();
                self.client_in(r.as_deref().unwrap_or(&self.default_region))
            }
        }
    }

    fn remember_region(&self, bucket: &str, region: &str) {
        self.bucket_regions
            .lock()
            .unwrap()
            .insert(bucket.to_string(), region.to_string());
    }
}

fn to_system_time(t: Option<&DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

/// Folds an SDK error into a [`StoreError`]. `not_found` is the store error a 404 means for this
/// operation (HeadObject's 404 has no body, so there is no code to tell key from bucket).
fn map_err<E>(
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    not_found: StoreError,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            return StoreError::Network(format!("{}", DisplayErrorContext(&err)));
        }
        SdkError::ConstructionFailure(_) => {
            // Most often: no credentials could be loaded, or they could not sign.
            return StoreError::BadCredentials(format!("{}", DisplayErrorContext(&err)));
        }
        _ => {}
    }
    let code = err.code().unwrap_or("").to_string();
    let message = err.message().unwrap_or("").to_string();
    match code.as_str() {
        "NoSuchKey" | "NotFound" => return not_found,
        "NoSuchBucket" => return StoreError::NoSuchBucket,
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => return StoreError::AccessDenied,
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "InvalidToken"
        | "TokenRefreshRequired" => {
            return StoreError::BadCredentials(if message.is_empty() {
                code
            } else {
                format!("{code}: {message}")
            });
        }
        "PreconditionFailed" => return StoreError::PreconditionFailed,
        "InvalidRange" => return StoreError::InvalidRange,
        _ => {}
    }
    match status {
        Some(404) => not_found,
        Some(403) => StoreError::AccessDenied,
        Some(412) => StoreError::PreconditionFailed,
        Some(416) => StoreError::InvalidRange,
        _ => StoreError::Server {
            status,
            code: if code.is_empty() {
                "Unknown".into()
            } else {
                code
            },
            message: if message.is_empty() {
                format!("{}", DisplayErrorContext(&err))
            } else {
                message
            },
        },
    }
}

impl ObjectStore for S3Store {
    async fn list_buckets(&self) -> StoreResult<Vec<BucketInfo>> {
        let client = self.client_in(&self.default_region);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = client
                .list_buckets()
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| map_err(e, StoreError::NotFound))?;
            for b in resp.buckets() {
                if let Some(name) = b.name() {
                    out.push(BucketInfo {
                        name: name.to_string(),
                        created: to_system_time(b.creation_date()),
                    });
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
        let known = self.bucket_regions.lock().unwrap().get(bucket).cloned();
        let client = self.client_in(known.as_deref().unwrap_or(&self.default_region));
        match client.head_bucket().bucket(bucket).send().await {
            Ok(out) => {
                let region = out
                    .bucket_region()
                    .unwrap_or(&self.default_region)
                    .to_string();
                if self.discover_regions {
                    self.remember_region(bucket, &region);
                }
                Ok(region)
            }
            Err(err) => {
                let header = err
                    .raw_response()
                    .and_then(|r| r.headers().get("x-amz-bucket-region"))
                    .map(str::to_string);
                let status = err.raw_response().map(|r| r.status().as_u16());
                if let (Some(region), true) = (&header, self.discover_regions) {
                    self.remember_region(bucket, region);
                    if status == Some(301) {
                        debug!(
                            bucket,
                            region, "bucket lives in another region; asking there"
                        );
                        let client = self.client_in(region);
                        return match client.head_bucket().bucket(bucket).send().await {
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
        let client = self.client(req.bucket).await;
        let resp = client
            .list_objects_v2()
            .bucket(req.bucket)
            .prefix(req.prefix)
            .set_delimiter(req.delimiter.map(str::to_string))
            .set_continuation_token(req.continuation.map(str::to_string))
            .set_max_keys(req.max_keys)
            .send()
            .await
            .map_err(|e| map_err(e, StoreError::NoSuchBucket))?;
        let objects = resp
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ListedObject {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    last_modified: to_system_time(o.last_modified()),
                    etag: o.e_tag().map(str::to_string),
                })
            })
            .collect();
        let prefixes = resp
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix().map(str::to_string))
            .collect();
        let next = if resp.is_truncated() == Some(true) {
            let t = resp.next_continuation_token().map(str::to_string);
            if t.is_none() {
                warn!(
                    bucket = req.bucket,
                    "truncated listing without a continuation token; stopping"
                );
            }
            t
        } else {
            None
        };
        Ok(ListPage {
            objects,
            prefixes,
            next,
        })
    }

    async fn head_object(&self, bucket: &str, key: &str) -> StoreResult<ObjectMeta> {
        let client = self.client(bucket).await;
        let resp = client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_err(e, StoreError::NotFound))?;
        Ok(ObjectMeta {
            size: resp.content_length().unwrap_or(0).max(0) as u64,
            last_modified: to_system_time(resp.last_modified()),
            etag: resp.e_tag().map(str::to_string),
            content_type: resp.content_type().map(str::to_string),
            storage_class: resp.storage_class().map(|s| s.as_str().to_string()),
            metadata: resp
                .metadata()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                        .collect()
                })
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
        debug_assert!(end > start);
        let client = self.client(bucket).await;
        let resp = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes={}-{}", start, end - 1))
            .set_if_match(if_match.map(str::to_string))
            .send()
            .await
            .map_err(|e| map_err(e, StoreError::NotFound))?;
        let body = resp.body.collect().await.map_err(|e| {
            StoreError::Network(format!(
                "reading response body: {}",
                DisplayErrorContext(&e)
            ))
        })?;
        Ok(body.into_bytes())
    }
}
