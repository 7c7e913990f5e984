//! [`PendingMetaTable`]: chmod/chown/utimens and user xattrs of uploaded objects not yet
//! written to S3, coalesced so that a burst of changes (rsync's chmod + utimens + rename) costs
//! one CopyObject. The timers and the CopyObject are `Fs::set_pending_meta` / `flush_meta`
//! (setattr.rs); this owns only the table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::staged::FileMeta;

/// Metadata of one object waiting for its CopyObject.
#[derive(Clone)]
pub struct PendingMeta {
    pub meta: FileMeta,
    /// New `x-amz-meta-xattr` value ("" removes it), when user xattrs changed.
    pub xattr: Option<String>,
    /// Bumped by every change: a timer writes only the version it was started for.
    pub version: u64,
}

type ObjectKey = (Arc<str>, String);

#[derive(Default)]
pub struct PendingMetaTable {
    table: Mutex<HashMap<ObjectKey, PendingMeta>>,
}

impl PendingMetaTable {
    fn key(bucket: &Arc<str>, key: &str) -> ObjectKey {
        (bucket.clone(), key.to_string())
    }

    pub fn get(&self, bucket: &Arc<str>, key: &str) -> Option<PendingMeta> {
        self.table.lock().unwrap().get(&Self::key(bucket, key)).cloned()
    }

    pub fn contains(&self, bucket: &Arc<str>, key: &str) -> bool {
        self.table.lock().unwrap().contains_key(&Self::key(bucket, key))
    }

    /// Takes what waits for `bucket/key` (the object is replaced, removed, or its metadata is
    /// written another way).
    pub fn take(&self, bucket: &Arc<str>, key: &str) -> Option<PendingMeta> {
        self.table.lock().unwrap().remove(&Self::key(bucket, key))
    }

    /// Takes it only if it is still `version` (`None`: whatever it is).
    pub fn take_version(&self, bucket: &Arc<str>, key: &str, version: Option<u64>) -> Option<PendingMeta> {
        let mut t = self.table.lock().unwrap();
        let k = Self::key(bucket, key);
        match t.get(&k) {
            Some(e) if version.is_none_or(|v| v == e.version) => t.remove(&k),
            _ => None,
        }
    }

    /// Puts back what a failed copy had taken.
    pub fn restore(&self, bucket: &Arc<str>, key: &str, p: PendingMeta) {
        self.table.lock().unwrap().insert(Self::key(bucket, key), p);
    }

    /// Records `meta` (and `xattr`, when given) for `bucket/key`; returns its new version.
    pub fn set(&self, bucket: &Arc<str>, key: &str, meta: FileMeta, xattr: Option<String>) -> u64 {
        let mut t = self.table.lock().unwrap();
        let e = t.entry(Self::key(bucket, key)).or_insert(PendingMeta { meta, xattr: None, version: 0 });
        e.meta = meta;
        if xattr.is_some() {
            e.xattr = xattr;
        }
        e.version += 1;
        e.version
    }

    /// Every object with metadata waiting.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.table.lock().unwrap().keys().cloned().collect()
    }
}
