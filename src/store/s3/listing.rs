//! Listings: ListObjectsV2 pages, object versions, and `--version-at`'s view of a bucket as it
//! was at a time (built from ListObjectVersions).

use super::*;

/// One page of ListObjectVersions: versions and delete markers merged, by key and newest first.
pub(super) struct VersionsPage {
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
pub(super) async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
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
pub(super) fn current_at<'a>(
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
    pub(super) async fn list_versions_page(
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
    pub(super) async fn list_at(&self, req: ListRequest<'_>, at: SystemTime) -> StoreResult<ListPage> {
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
    pub(super) async fn existed_at(&self, bucket: &str, prefix: &str, at: SystemTime) -> StoreResult<bool> {
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
    pub(super) async fn version_at(&self, bucket: &str, key: &str, at: SystemTime) -> StoreResult<Option<String>> {
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
    pub(super) async fn pinned_version(&self, bucket: &str, key: &str) -> StoreResult<Option<String>> {
        match self.version_at {
            None => Ok(None),
            Some(at) => self.version_at(bucket, key, at).await?.map(Some).ok_or(StoreError::NotFound),
        }
    }
}

impl Listings for S3Store {
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
}
