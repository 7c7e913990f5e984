//! An in-memory [`ObjectStore`] for unit tests of the core: buckets of keys in sorted maps, a
//! request counter per operation, and faults that can be queued per operation. It follows S3's
//! listing rules (sorted keys, common prefixes, pages of `max_keys`), not any server's quirks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;

use super::{
    BucketInfo, ListPage, ListRequest, ListedObject, ObjectMeta, ObjectStore, StoreError,
    StoreResult,
};

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    etag: String,
    last_modified: SystemTime,
    metadata: HashMap<String, String>,
}

#[derive(Debug, Default)]
struct State {
    buckets: BTreeMap<String, BTreeMap<String, Object>>,
    /// Buckets that exist but whose contents the caller may not read.
    denied: Vec<String>,
    counts: HashMap<&'static str, u64>,
    faults: HashMap<&'static str, VecDeque<StoreError>>,
    next_etag: u64,
}

/// See the module documentation. Everything sits behind one std `Mutex`: no request awaits while
/// holding it.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// Page size for listings when the request gives none (S3's is 1,000).
    pub page_size: usize,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore {
            state: Mutex::default(),
            page_size: 1000,
        }
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.state
            .lock()
            .unwrap()
            .buckets
            .entry(bucket.to_string())
            .or_default();
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

    pub fn put_with_meta(
        &self,
        bucket: &str,
        key: &str,
        data: impl Into<Bytes>,
        metadata: HashMap<String, String>,
    ) {
        let mut s = self.state.lock().unwrap();
        s.next_etag += 1;
        let etag = format!("\"etag-{}\"", s.next_etag);
        let obj = Object {
            data: data.into(),
            etag,
            last_modified: SystemTime::now(),
            metadata,
        };
        s.buckets
            .entry(bucket.to_string())
            .or_default()
            .insert(key.to_string(), obj);
    }

    /// How many requests of `op` (e.g. "ListObjectsV2", "HeadObject", "GetObject") were made.
    pub fn count(&self, op: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .counts
            .get(op)
            .copied()
            .unwrap_or(0)
    }

    pub fn reset_counts(&self) {
        self.state.lock().unwrap().counts.clear();
    }

    /// The next request of `op` fails with `err` (queue several to fail several).
    pub fn inject_fault(&self, op: &'static str, err: StoreError) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(op)
            .or_default()
            .push_back(err);
    }

    /// Counts the request, pops a queued fault, and checks the bucket exists and is readable.
    fn begin(
        &self,
        op: &'static str,
        bucket: Option<&str>,
    ) -> StoreResult<std::sync::MutexGuard<'_, State>> {
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

impl ObjectStore for MemoryStore {
    async fn list_buckets(&self) -> StoreResult<Vec<BucketInfo>> {
        let s = self.begin("ListBuckets", None)?;
        Ok(s.buckets
            .keys()
            .map(|name| BucketInfo {
                name: name.clone(),
                created: None,
            })
            .collect())
    }

    async fn head_bucket(&self, bucket: &str) -> StoreResult<String> {
        let _state = self.begin("HeadBucket", Some(bucket))?;
        Ok("us-east-1".to_string())
    }

    async fn list_objects(&self, req: ListRequest<'_>) -> StoreResult<ListPage> {
        let page_size = if self.page_size == 0 {
            1000
        } else {
            self.page_size
        };
        let s = self.begin("ListObjectsV2", Some(req.bucket))?;
        let max = req
            .max_keys
            .map(|m| m.max(0) as usize)
            .unwrap_or(page_size)
            .min(page_size);
        let objects = &s.buckets[req.bucket];
        let mut page = ListPage::default();
        let mut last: Option<String> = None;
        let mut count = 0;
        let mut truncated = false;
        for (key, obj) in objects.range(req.prefix.to_string()..) {
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
                        etag: Some(obj.etag.clone()),
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

    async fn head_object(&self, bucket: &str, key: &str) -> StoreResult<ObjectMeta> {
        let s = self.begin("HeadObject", Some(bucket))?;
        let obj = s.buckets[bucket].get(key).ok_or(StoreError::NotFound)?;
        Ok(ObjectMeta {
            size: obj.data.len() as u64,
            last_modified: Some(obj.last_modified),
            etag: Some(obj.etag.clone()),
            content_type: None,
            storage_class: Some("STANDARD".into()),
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
}
