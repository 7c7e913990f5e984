//! The client: building the SDK's configuration, HTTPS and proxies, one client per region,
//! the retry wrapper every request goes through, and the bucket-level requests (ListBuckets,
//! HeadBucket, CreateBucket, DeleteBucket).

use super::*;

/// The SDK's default HTTPS client (rustls with aws-lc, the system's roots, which honour
/// SSL_CERT_FILE and SSL_CERT_DIR) plus what the AWS CLI and SDKs of other languages do and the
/// Rust SDK's default does not: the certificates of AWS_CA_BUNDLE (`--ca-bundle`), and proxies
/// from HTTPS_PROXY, HTTP_PROXY and NO_PROXY.
pub(super) fn http_client(tls: aws_smithy_http_client::tls::TlsContext) -> aws_sdk_s3::config::SharedHttpClient {
    // The builder's connector function (rather than build_https) is the one way to set a proxy;
    // connectors are still made once per set of settings and shared.
    aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        connector(&tls, settings.cloned(), components.and_then(|c| c.sleep_impl()))
    })
}

/// The TLS roots of [`http_client`]: the system's and AWS_CA_BUNDLE's.
pub(super) fn tls_context(ca_bundle: Option<Vec<u8>>) -> aws_smithy_http_client::tls::TlsContext {
    use aws_smithy_http_client::tls::{TlsContext, TrustStore};
    let mut roots = TrustStore::default();
    if let Some(pem) = ca_bundle {
        roots.add_pem_certificate(pem);
    }
    TlsContext::builder().with_trust_store(roots).build().expect("a trust store of PEM bytes")
}

/// One connection pool: rustls with aws-lc and `tls`'s roots, the proxy from the environment.
pub(super) fn connector(
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

    pub(super) fn retry_options(&self) -> RetryOptions {
        let ms = self.budget_ms.load(std::sync::atomic::Ordering::Relaxed);
        RetryOptions { budget: Duration::from_millis(ms), ..self.retry }
    }

    /// Sends one request with retries: `attempt` builds and sends it afresh each time, given
    /// the progress marker its body and response touch.
    pub(super) async fn call<T, F, Fut>(&self, op: &'static str, attempt: F) -> StoreResult<T>
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

    pub(super) fn client_in(&self, region: &str) -> Client {
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
    pub(super) async fn client(&self, bucket: &str) -> Client {
        self.client_in(&self.region_of(bucket).await)
    }

    /// A bucket's region: asked with HeadBucket the first time, against AWS.
    pub(super) async fn region_of(&self, bucket: &str) -> String {
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
    pub(super) async fn signing_credentials(&self) -> StoreResult<Credentials> {
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

    pub(super) fn remember_region(&self, bucket: &str, region: &str) {
        self.bucket_regions.lock().unwrap().insert(bucket.to_string(), region.to_string());
    }
}

impl Buckets for S3Store {
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
