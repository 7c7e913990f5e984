//! An in-memory [`ObjectStore`] for unit tests of the core: buckets of keys in sorted maps, a
//! request counter per operation, and faults that can be queued per operation. It follows S3's
//! listing rules (sorted keys, common prefixes, pages of `max_keys`), not any server's quirks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::{
    BucketInfo, ListPage, ListRequest, ListedObject, MAX_PRESIGN, ObjectMeta, Presigned, PutMeta, PutResult,
    StoreError, StoreResult,
};
use super::{Buckets, CopyDelete, Listings, Objects};

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    etag: String,
    last_modified: SystemTime,
    metadata: HashMap<String, String>,
    content_type: Option<String>,
}

#[derive(Debug)]
struct Upload {
    bucket: String,
    key: String,
    meta: PutMeta,
    parts: BTreeMap<i32, Bytes>,
}

#[derive(Debug, Default)]
struct State {
    uploads: HashMap<String, Upload>,
    buckets: BTreeMap<String, BTreeMap<String, Object>>,
    /// Buckets that exist but whose contents the caller may not read.
    denied: Vec<String>,
    counts: HashMap<&'static str, u64>,
    faults: HashMap<&'static str, VecDeque<StoreError>>,
    next_etag: u64,
    /// When the (pretend) credentials expire, as temporary credentials do.
    credential_expiry: Option<SystemTime>,
}

/// See the module documentation. Everything sits behind one std `Mutex`: no request awaits while
/// holding it.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// Page size for listings when the request gives none (S3's is 1,000).
    pub page_size: usize,
    /// Listings leave out ETags, as some S3-compatible servers' do (s3s-fs).
    pub list_without_etags: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore { state: Mutex::default(), page_size: 1000, list_without_etags: false }
    }

    /// Pretends the credentials are temporary and expire at `t` (presigned links die with them).
    pub fn set_credential_expiry(&self, t: SystemTime) {
        self.state.lock().unwrap().credential_expiry = Some(t);
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.state.lock().unwrap().buckets.entry(bucket.to_string()).or_default();
    }

    /// The bucket is listed by ListBuckets but every other request on it is denied.
    pub fn deny_bucket(&self, bucket: &str) {
        let mut s = self.state.lock().unwrap();
        s.buckets.entry(bucket.to_string()).or_default();
        s.denied.push(bucket.to_string());
    }

    pub fn put(&self, bucket: &str, key: &str, data: impl Into<Bytes>) {
        self.put_with_meta(bucket, key, data, HashMap::new());
    }

    pub fn put_with_meta(&self, bucket: &str, key: &str, data: impl Into<Bytes>, metadata: HashMap<String, String>) {
        let mut s = self.state.lock().unwrap();
        s.buckets.entry(bucket.to_string()).or_default();
        s.store(bucket, key, data.into(), PutMeta { metadata, ..PutMeta::default() });
    }

    /// The stored bytes and user metadata of an object.
    pub fn object(&self, bucket: &str, key: &str) -> Option<(Bytes, HashMap<String, String>)> {
        let s = self.state.lock().unwrap();
        s.buckets.get(bucket)?.get(key).map(|o| (o.data.clone(), o.metadata.clone()))
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.state.lock().unwrap().uploads.len()
    }

    /// How many requests of `op` (e.g. "ListObjectsV2", "HeadObject", "GetObject") were made.
    pub fn count(&self, op: &str) -> u64 {
        self.state.lock().unwrap().counts.get(op).copied().unwrap_or(0)
    }

    /// Requests of every kind.
    pub fn total_count(&self) -> u64 {
        self.state.lock().unwrap().counts.values().sum()
    }

    pub fn reset_counts(&self) {
        self.state.lock().unwrap().counts.clear();
    }

    /// The next request of `op` fails with `err` (queue several to fail several).
    pub fn inject_fault(&self, op: &'static str, err: StoreError) {
        self.state.lock().unwrap().faults.entry(op).or_default().push_back(err);
    }

    /// Counts the request, pops a queued fault, and checks the bucket exists and is readable.
    fn begin(&self, op: &'static str, bucket: Option<&str>) -> StoreResult<std::sync::MutexGuard<'_, State>> {
        let mut s = self.state.lock().unwrap();
        *s.counts.entry(op).or_default() += 1;
        if let Some(err) = s.faults.get_mut(op).and_then(|q| q.pop_front()) {
            return Err(err);
        }
        if let Some(b) = bucket {
            if !s.buckets.contains_key(b) {
                return Err(StoreError::NoSuchBucket);
            }
            if s.denied.iter().any(|d| d == b) {
                return Err(StoreError::AccessDenied);
            }
        }
        Ok(s)
    }
}

impl State {
    fn store(&mut self, bucket: &str, key: &str, data: Bytes, meta: PutMeta) -> PutResult {
        self.next_etag += 1;
        let etag = format!("\"etag-{}\"", self.next_etag);
        let obj = Object {
            data,
            etag: etag.clone(),
            last_modified: SystemTime::now(),
            metadata: meta.metadata,
            content_type: meta.content_type,
        };
        self.buckets.get_mut(bucket).expect("checked").insert(key.to_string(), obj);
        PutResult { etag: Some(etag) }
    }
}

impl Buckets for MemoryStore {
    async fn list_buckets(&self) -> StoreResult<Vec<BucketInfo>> {
        let s = self.begin("ListBuckets", None)?;
        Ok(s.buckets.keys().map(|name| BucketInfo { name: name.clone(), created: None }).collect())
    }

    async fn head_bucket(&self, bucket: &str) -> StoreResult<String> {
        let _state = self.begin("HeadBucket", Some(bucket))?;
        Ok("us-east-1".to_string())
    }

    async fn create_bucket(&self, bucket: &str) -> StoreResult<()> {
        let mut s = self.begin("CreateBucket", None)?;
        if s.buckets.contains_key(bucket) {
            return Err(StoreError::BucketExists);
        }
        s.buckets.insert(bucket.to_string(), BTreeMap::new());
        Ok(())
    }

    async fn delete_bucket(&self, bucket: &str) -> StoreResult<()> {
        let mut s = self.begin("DeleteBucket", Some(bucket))?;
        if !s.buckets[bucket].is_empty() {
            return Err(StoreError::BucketNotEmpty);
        }
        s.buckets.remove(bucket);
        Ok(())
    }
}

impl Listings for MemoryStore {
    async fn list_objects(&self, req: ListRequest<'_>) -> StoreResult<ListPage> {
        let page_size = if self.page_size == 0 { 1000 } else { self.page_size };
        let mut s = self.begin("ListObjectsV2", Some(req.bucket))?;
        if req.max_keys.is_some_and(|m| m <= 2) {
            // Also counted apart: "is there anything under this prefix?"
            *s.counts.entry("ListObjectsV2 probe").or_default() += 1;
        }
        let max = req.max_keys.map(|m| m.max(0) as usize).unwrap_or(page_size).min(page_size);
        let objects = &s.buckets[req.bucket];
        let mut page = ListPage::default();
        let mut last: Option<String> = None;
        let mut count = 0;
        let mut truncated = false;
        // From the continuation token on (the checks below skip it and what it stands for).
        let from = req.continuation.filter(|t| *t > req.prefix).unwrap_or(req.prefix);
        for (key, obj) in objects.range(from.to_string()..) {
            if !key.starts_with(req.prefix) {
                break;
            }
            if let Some(token) = req.continuation
                && (key.as_str() <= token || (token.ends_with('/') && key.starts_with(token)))
            {
                continue;
            }
            let rest = &key[req.prefix.len()..];
            let item = match req.delimiter.and_then(|d| rest.find(d).map(|i| (i, d))) {
                Some((i, d)) => {
                    let p = format!("{}{}", req.prefix, &rest[..i + d.len()]);
                    if page.prefixes.last() == Some(&p) {
                        continue;
                    }
                    Err(p)
                }
                None => Ok(key),
            };
            if count == max {
                truncated = true;
                break;
            }
            count += 1;
            match item {
                Ok(key) => {
                    last = Some(key.clone());
                    page.objects.push(ListedObject {
                        key: key.clone(),
                        size: obj.data.len() as u64,
                        last_modified: Some(obj.last_modified),
                        etag: (!self.list_without_etags).then(|| obj.etag.clone()),
                        storage_class: Some("STANDARD".into()),
                    });
                }
                Err(p) => {
                    last = Some(p.clone());
                    page.prefixes.push(p);
                }
            }
        }
        if truncated {
            page.next = last;
        }
        Ok(page)
    }

    async fn list_versions_of(&self, bucket: &str, key: &str) -> StoreResult<Vec<crate::store::ListedVersion>> {
        // No versioning here: the one version there is.
        let s = self.begin("ListObjectVersions", Some(bucket))?;
        Ok(s.buckets[bucket]
            .get(key)
            .map(|o| crate::store::ListedVersion {
                key: key.to_string(),
                version_id: "null".into(),
                last_modified: Some(o.last_modified),
                size: o.data.len() as u64,
                etag: Some(o.etag.clone()),
                storage_class: Some("STANDARD".into()),
                is_latest: true,
                delete_marker: false,
            })
            .into_iter()
            .collect())
    }
}

impl Objects for MemoryStore {
    async fn head_object(&self, bucket: &str, key: &str) -> StoreResult<ObjectMeta> {
        let s = self.begin("HeadObject", Some(bucket))?;
        let obj = s.buckets[bucket].get(key).ok_or(StoreError::NotFound)?;
        Ok(ObjectMeta {
            size: obj.data.len() as u64,
            last_modified: Some(obj.last_modified),
            etag: Some(obj.etag.clone()),
            content_type: obj.content_type.clone(),
            storage_class: Some("STANDARD".into()),
            restore: None,
            archive_status: None,
            sse: None,
            metadata: obj.metadata.clone(),
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
        let s = self.begin("GetObject", Some(bucket))?;
        let obj = s.buckets[bucket].get(key).ok_or(StoreError::NotFound)?;
        if if_match.is_some_and(|e| e != obj.etag) {
            return Err(StoreError::PreconditionFailed);
        }
        let len = obj.data.len() as u64;
        if start >= len && !(start == 0 && len == 0) {
            return Err(StoreError::InvalidRange);
        }
        Ok(obj.data.slice(start as usize..end.min(len) as usize))
    }

    async fn put_object(&self, bucket: &str, key: &str, body: Bytes, meta: &PutMeta) -> StoreResult<PutResult> {
        let mut s = self.begin("PutObject", Some(bucket))?;
        Ok(s.store(bucket, key, body, meta.clone()))
    }

    async fn create_multipart(&self, bucket: &str, key: &str, meta: &PutMeta) -> StoreResult<String> {
        let mut s = self.begin("CreateMultipartUpload", Some(bucket))?;
        s.next_etag += 1;
        let id = format!("upload-{}", s.next_etag);
        let up = Upload { bucket: bucket.into(), key: key.into(), meta: meta.clone(), parts: BTreeMap::new() };
        s.uploads.insert(id.clone(), up);
        Ok(id)
    }

    async fn upload_part(
        &self,
        bucket: &str,
        _key: &str,
        upload_id: &str,
        part: i32,
        body: Bytes,
    ) -> StoreResult<String> {
        let mut s = self.begin("UploadPart", Some(bucket))?;
        let up = s.uploads.get_mut(upload_id).ok_or(StoreError::NotFound)?;
        up.parts.insert(part, body);
        Ok(format!("\"part-{part}\""))
    }

    async fn upload_part_copy(
        &self,
        src_bucket: &str,
        src_key: &str,
        start: u64,
        end: u64,
        bucket: &str,
        _key: &str,
        upload_id: &str,
        part: i32,
    ) -> StoreResult<String> {
        let mut s = self.begin("UploadPartCopy", Some(bucket))?;
        let src =
            s.buckets.get(src_bucket).ok_or(StoreError::NoSuchBucket)?.get(src_key).ok_or(StoreError::NotFound)?;
        let data = src.data.slice(start as usize..(end as usize).min(src.data.len()));
        let up = s.uploads.get_mut(upload_id).ok_or(StoreError::NotFound)?;
        up.parts.insert(part, data);
        Ok(format!("\"part-{part}\""))
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        _key: &str,
        upload_id: &str,
        parts: &[(i32, String)],
    ) -> StoreResult<PutResult> {
        let mut s = self.begin("CompleteMultipartUpload", Some(bucket))?;
        let up = s.uploads.remove(upload_id).ok_or(StoreError::NotFound)?;
        let mut data = Vec::new();
        for (n, _) in parts {
            data.extend_from_slice(up.parts.get(n).ok_or(StoreError::InvalidRange)?);
        }
        Ok(s.store(&up.bucket, &up.key, data.into(), up.meta))
    }

    async fn abort_multipart(&self, bucket: &str, _key: &str, upload_id: &str) -> StoreResult<()> {
        let mut s = self.begin("AbortMultipartUpload", Some(bucket))?;
        s.uploads.remove(upload_id);
        Ok(())
    }

    async fn restore_object(
        &self,
        bucket: &str,
        key: &str,
        _days: Option<i32>,
        _tier: Option<&str>,
    ) -> StoreResult<()> {
        let s = self.begin("RestoreObject", Some(bucket))?;
        if !s.buckets[bucket].contains_key(key) {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn presign_get(&self, bucket: &str, key: &str, lifetime: Duration) -> StoreResult<Presigned> {
        // Signed locally: not a request, not counted.
        let now = SystemTime::now();
        let mut lifetime = lifetime.min(MAX_PRESIGN);
        if let Some(end) = self.state.lock().unwrap().credential_expiry {
            lifetime = lifetime.min(end.duration_since(now).unwrap_or_default());
        }
        let secs = lifetime.as_secs();
        Ok(Presigned { url: format!("memory://{bucket}/{key}?X-Amz-Expires={secs}"), expires: now + lifetime })
    }
}

impl CopyDelete for MemoryStore {
    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        bucket: &str,
        key: &str,
        meta: Option<&PutMeta>,
    ) -> StoreResult<PutResult> {
        let mut s = self.begin("CopyObject", Some(bucket))?;
        let src =
            s.buckets.get(src_bucket).ok_or(StoreError::NoSuchBucket)?.get(src_key).ok_or(StoreError::NotFound)?;
        let meta = meta.cloned().unwrap_or_else(|| PutMeta {
            metadata: src.metadata.clone(),
            content_type: src.content_type.clone(),
            storage_class: None,
        });
        let data = src.data.clone();
        Ok(s.store(bucket, key, data, meta))
    }

    async fn delete_objects(&self, bucket: &str, keys: &[String]) -> StoreResult<Vec<(String, StoreError)>> {
        let mut s = self.begin("DeleteObjects", Some(bucket))?;
        let objects = s.buckets.get_mut(bucket).expect("checked");
        for k in keys {
            objects.remove(k);
        }
        Ok(Vec::new())
    }
}
