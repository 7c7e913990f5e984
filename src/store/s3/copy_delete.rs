//! Server-side copies (CopyObject) and batched deletes (DeleteObjects).

use super::*;

/// `x-amz-copy-source`: bucket and key, URL-encoded except for '/'.
pub(super) fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 1);
    out.push_str(bucket);
    out.push('/');
    head::encode_into(&mut out, key, true);
    out
}

impl CopyDelete for S3Store {
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
}
