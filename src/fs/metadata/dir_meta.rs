//! Directory metadata: mode, owner and times of a directory live on its marker object
//! (`dir/`, an empty object with `mode`, `uid`, `gid`, `mtime`, `ctime` metadata, as s3fs keeps
//! them). This module owns how they are known and how they are stored.
//!
//! - Known: from the metadata index in memory (learned in this mount), else from the
//!   directory's own listing (which `ls -R`, `find`, rsync and lookups in it need anyway): no
//!   marker there means the mount's defaults are the truth; a marker whose version (ETag and
//!   LastModified) the index knows needs nothing more (also after a remount); an unknown
//!   marker costs one HeadObject. A fresh listing of the directory that shows another marker
//!   than the index remembers (another client changed it) makes it look again.
//! - Stored: chmod, chown and utimens of a directory put its marker again with the new
//!   metadata (creating one for a directory that had none), keeping the marker's other user
//!   metadata.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::fs::Fs;
use crate::fs::error::Result;
use crate::fs::inode::{self, Attr, Ino, Location};
use crate::fs::listings::Marker;
use crate::fs::metadata::index::KnownMeta;
use crate::fs::writes::setattr::SetAttr;
use crate::fs::writes::staged::FileMeta;
use crate::fs::writes::staged::others;
use crate::store::{ListRequest, ObjectStore, StoreError};

/// The Content-Type of directory markers (s3fs's).
const DIR_CONTENT_TYPE: &str = "application/x-directory";

/// Whether the index's `k` describes the marker a listing showed (or its absence).
fn same_marker(listed: &Option<Marker>, k: &KnownMeta) -> bool {
    match listed {
        None => k.is_no_marker(),
        Some(m) => !k.is_no_marker() && m.etag.as_deref().is_some_and(|e| k.describes(e, m.modified)),
    }
}

/// A directory's attributes with what its marker's metadata says filled in.
fn with_marker_meta(mut attr: Attr, k: &KnownMeta) -> Attr {
    if !k.is_no_marker() {
        k.fill(&mut attr);
    }
    attr
}

impl<S: ObjectStore> Fs<S> {
    /// Whether a directory's metadata is kept on a marker (not a bucket's root, not with
    /// `--metadata-from listing`).
    pub(in crate::fs) fn dir_has_meta(&self, loc: &Location) -> bool {
        matches!(loc, Location::Dir { prefix, .. } if !prefix.is_empty()) && !self.config.metadata.from_listing
    }

    /// A listed directory's attributes, if this mount knows its metadata (see the module doc).
    pub(in crate::fs) fn known_dir_attr(&self, loc: &Location, attr: &Attr) -> Option<Attr> {
        let Location::Dir { bucket, prefix } = loc else { return None };
        self.index.latest(bucket, prefix).map(|k| with_marker_meta(Attr::dir(attr.mtime), &k))
    }

    /// A directory's attributes now: from memory, checked against a fresh listing of it when
    /// there is one, else from its listing and, for an unknown marker, a HeadObject.
    pub(in crate::fs) async fn dir_attr(&self, ino: Ino, node: &inode::Node) -> Result<Attr> {
        let Location::Dir { bucket, prefix } = &node.loc else { unreachable!("called for directories") };
        let base = Attr::dir(self.mount_time);
        let listed = match self.fresh_listing(ino).await {
            Some(l) => Some(l.lock().await.marker.clone()),
            None => None,
        };
        if let Some(k) = self.index.latest(bucket, prefix)
            && listed.as_ref().is_none_or(|m| same_marker(m, &k))
        {
            return Ok(with_marker_meta(base, &k));
        }
        let marker = match listed {
            Some(m) => m,
            None => self.dir_marker(ino, bucket, prefix).await?,
        };
        let Some(m) = marker else {
            self.index.learn(bucket, prefix, KnownMeta::no_marker());
            return Ok(base);
        };
        if let Some(etag) = &m.etag
            && let Some(k) = self.index.version(bucket, prefix, etag, m.modified)
        {
            return Ok(with_marker_meta(base, &k));
        }
        match self.store.head_object(bucket, prefix).await {
            Ok(meta) => Ok(self.attr_from_meta(&node.loc, &meta)),
            Err(StoreError::NotFound) => {
                self.index.learn(bucket, prefix, KnownMeta::no_marker());
                Ok(base)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The directory's marker, from its listing (kept for the lookups and readdir that follow),
    /// or for a directory too large for one page, a one-key listing.
    async fn dir_marker(&self, ino: Ino, bucket: &Arc<str>, prefix: &str) -> Result<Option<Marker>> {
        if let Some(l) = self.listing_for_lookups(ino, bucket, prefix).await? {
            return Ok(l.lock().await.marker.clone());
        }
        let page = self
            .store
            .list_objects(ListRequest { bucket, prefix, delimiter: None, continuation: None, max_keys: Some(1) })
            .await?;
        Ok(page
            .objects
            .into_iter()
            .find(|o| o.key == prefix)
            .map(|o| Marker { etag: o.etag, modified: o.last_modified }))
    }

    /// chmod, chown, utimens of a directory: its marker is put again with the new metadata.
    pub(in crate::fs) async fn set_dir_attr(&self, ino: Ino, node: &inode::Node, set: &SetAttr) -> Result<Attr> {
        let Location::Dir { bucket, prefix } = &node.loc else { unreachable!("called for directories") };
        let current = self.dir_attr(ino, node).await?;
        let mut meta = FileMeta { perm: current.perm.unwrap_or(self.config.dir_mode), ..self.file_meta(&current) };
        set.apply(&mut meta);
        let extra = match self.index.latest(bucket, prefix) {
            Some(k) if !k.is_no_marker() => others(k.put.metadata),
            _ => HashMap::new(),
        };
        let attr = self.put_marker(bucket, prefix, &meta, &extra).await?;
        self.inodes.set_attr(ino, attr.clone(), self.fresh_until());
        Ok(attr)
    }

    /// Puts the marker of directory `prefix` with metadata `meta` (and the marker's other user
    /// metadata, `extra`), remembers what it carries, and returns the directory's attributes.
    pub(in crate::fs) async fn put_marker(
        &self,
        bucket: &Arc<str>,
        prefix: &str,
        meta: &FileMeta,
        extra: &HashMap<String, String>,
    ) -> Result<Attr> {
        let mut put = meta.to_put(prefix, extra);
        put.metadata.insert("mode".into(), (libc::S_IFDIR | u32::from(meta.perm)).to_string());
        put.content_type = Some(DIR_CONTENT_TYPE.into());
        let r = self.store.put_object(bucket, prefix, Bytes::new(), &put).await?;
        let attr = meta.attr(0, None);
        match r.etag.as_deref() {
            Some(etag) => self.index.learn(bucket, prefix, KnownMeta::new(etag, &attr, put)),
            // Without an ETag the version cannot be checked later: ask again when needed.
            None => {
                self.index.forget(bucket, prefix);
            }
        }
        Ok(attr)
    }
}
