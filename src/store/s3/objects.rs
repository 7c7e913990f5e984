//! Object reads and writes: HeadObject, ranged GetObject (resumed when cut), PutObject,
//! multipart uploads, restores of archived objects and presigned links; request bodies that
//! report their progress and carry a CRC32C.

use super::*;

/// A request body that marks [`Progress`] each time the HTTP client takes a piece of it.
pub(super) struct Watched {
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
pub(super) fn crc32c(data: &[u8]) -> String {
    use base64::Engine;
    let v = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32;
    base64::engine::general_purpose::STANDARD.encode(v.to_be_bytes())
}

pub(super) fn watched_body(data: &Bytes, progress: &Arc<Progress>) -> ByteStream {
    ByteStream::from_body_1_x(Watched { data: data.clone(), progress: progress.clone() })
}

/// The ETag S3 gives an object completed from `parts` (number, ETag): the MD5 of the parts'
/// MD5s, then "-" and their count, quoted. `None` when a part's ETag is not an MD5 (SSE-KMS).
pub(super) fn multipart_etag(parts: &[(i32, String)]) -> Option<String> {
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

impl Objects for S3Store {
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
}
