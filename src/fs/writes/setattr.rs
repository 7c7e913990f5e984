//! Metadata changes: chmod, chown, utimens and truncate (setattr), and the coalesced
//! CopyObject that writes metadata changes of an uploaded object.

use crate::fs::writes::staged::others;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{debug, warn};

use super::pending_meta::PendingMeta;
use crate::fs::error::{Error, Result};
use crate::fs::inode::{Ino, Location};
use crate::fs::writes::staged::{FileMeta, Staged};
use crate::fs::{Fs, Stat};
use crate::store::{ObjectStore, PutMeta};

/// How long chmod/chown/utimens on an uploaded object wait for company before their CopyObject.
const META_DELAY: Duration = Duration::from_millis(1500);

/// Attribute changes from setattr.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub mtime: Option<SystemTime>,
    pub atime: Option<SystemTime>,
}

impl SetAttr {
    pub(in crate::fs) fn apply(&self, m: &mut FileMeta) {
        if let Some(mode) = self.mode {
            m.perm = (mode & 0o7777) as u16;
        }
        if let Some(uid) = self.uid {
            m.uid = uid;
        }
        if let Some(gid) = self.gid {
            m.gid = gid;
        }
        if let Some(t) = self.mtime {
            m.mtime = t;
            m.mtime_set = true;
        } else if self.size.is_some() {
            // truncate(2) and ftruncate(2) change the file: its mtime moves, as a write's does.
            m.touch();
        }
        if let Some(t) = self.atime {
            m.atime = Some(t);
        }
        if self.size.is_some() || self.changes_meta() {
            // Every change of the file or its attributes is a status change.
            m.ctime = SystemTime::now();
        }
    }

    pub(in crate::fs) fn changes_meta(&self) -> bool {
        self.mode.is_some() || self.uid.is_some() || self.gid.is_some() || self.mtime.is_some() || self.atime.is_some()
    }
}

impl<S: ObjectStore> Fs<S> {
    pub async fn setattr(&self, ino: Ino, set: SetAttr) -> Result<Stat> {
        if set.size.is_some() || set.changes_meta() {
            self.check_writable()?;
        }
        if set.size.is_some_and(|s| s > crate::fs::writes::staged::MAX_OBJECT) {
            return Err(Error::FileTooLarge);
        }
        if let Some(writer) = self.writer(ino) {
            let mut st = writer.staged.lock().await;
            if let Some(size) = set.size {
                if size > 0 {
                    st.materialize(&*self.store, self.config.read.part_size).await?;
                }
                st.truncate(&self.store, size).await?;
            }
            let before = st.meta;
            set.apply(&mut st.meta);
            if st.meta != before && !st.dirty {
                // Already uploaded and unchanged since: a metadata copy, not a re-upload.
                self.set_pending_meta(&st.bucket, &st.key, st.meta, None);
            }
            Self::sync_info(&writer, &st);
            let info = writer.info.lock().unwrap().clone();
            return Ok(self.stat_of(ino, &info.loc, &self.staged_attr(&info)));
        }
        let node = self.node(ino)?;
        if self.dir_has_meta(&node.loc) && set.changes_meta() {
            let attr = self.set_dir_attr(ino, &node, &set).await?;
            return Ok(self.stat_of(ino, &node.loc, &attr));
        }
        let Location::File { bucket, key } = &node.loc else {
            // A bucket's root keeps no metadata (nor does any directory with
            // `--metadata-from listing`): accepted for this mount's life only.
            let mut attr = node.attr.clone();
            if let Some(m) = set.mode {
                attr.perm = Some((m & 0o7777) as u16);
            }
            if let Some(t) = set.mtime {
                attr.mtime = t;
            }
            self.inodes.set_attr(ino, attr.clone(), node.fresh_until);
            return Ok(self.stat_of(ino, &node.loc, &attr));
        };
        let current = self.with_pending_meta(&node.loc, node.attr.clone());
        let mut meta = self.file_meta(&current);
        set.apply(&mut meta);
        if let Some(size) = set.size {
            // truncate(2) of a file nobody has open: stage, cut, upload now.
            let mut staged = Staged::create(&self.staging_dir, bucket.clone(), key, meta, current.etag.as_deref())?;
            staged.extra = self.extra_meta(bucket, key, current.etag.as_deref());
            let keep = size.min(current.size);
            let r = async {
                if keep > 0 {
                    let e = current.etag.as_deref();
                    staged.fill_from(&*self.store, keep, e, self.config.read.part_size).await?;
                }
                staged.truncate(&self.store, size).await?;
                self.upload(ino, &mut staged).await
            }
            .await;
            staged.discard();
            r?;
            return self.getattr(ino).await;
        }
        if set.changes_meta() {
            self.set_pending_meta(bucket, key, meta, None);
        }
        let mut attr = current;
        attr.perm = Some(meta.perm);
        attr.uid = Some(meta.uid);
        attr.gid = Some(meta.gid);
        attr.mtime = meta.mtime;
        attr.atime = meta.atime;
        attr.ctime = Some(meta.ctime);
        self.inodes.set_attr(ino, attr.clone(), node.fresh_until);
        Ok(self.stat_of(ino, &node.loc, &attr))
    }

    /// Records metadata to write with a CopyObject soon (or with the next rename's copy);
    /// `xattr` is a new `x-amz-meta-xattr` value ("" to remove it), `None` to keep the last one.
    pub(in crate::fs) fn set_pending_meta(&self, bucket: &Arc<str>, key: &str, meta: FileMeta, xattr: Option<String>) {
        let version = self.pending_meta.set(bucket, key, meta, xattr);
        let Some(me) = self.me.upgrade() else { return };
        let (bucket, key) = (bucket.clone(), key.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(META_DELAY).await;
            if let Err(e) = me.flush_meta(&bucket, &key, Some(version)).await {
                warn!(bucket = &*bucket, key, error = %e, "saving chmod/chown/utimens failed");
            }
        });
    }

    /// Writes pending metadata of `bucket/key` with a CopyObject onto itself (REPLACE). With
    /// `version`, only if no later change came (a later timer will handle that one).
    pub(in crate::fs) async fn flush_meta(&self, bucket: &Arc<str>, key: &str, version: Option<u64>) -> Result<()> {
        let pending = self.pending_meta.take_version(bucket, key, version);
        let Some(pending) = pending else { return Ok(()) };
        let put = self.full_put_meta(bucket, key, &pending).await?;
        let old = self.index.latest(bucket, key).map(|k| k.etag);
        let r = self.store.copy_object(bucket, key, bucket, key, Some(&put)).await?;
        if let (Some(old), Some(new)) = (old, r.etag.clone())
            && old != new
        {
            self.meta_copies.lock().unwrap().put((bucket.clone(), key.to_string(), old), new);
        }
        self.learn_meta(bucket, key, r.etag.as_deref(), &pending.meta, &put);
        debug!(bucket = &**bucket, key, "metadata saved");
        Ok(())
    }

    /// The complete metadata for a REPLACE: ours, plus the object's other user metadata (from
    /// what we know of it, else a HeadObject).
    pub(in crate::fs) async fn full_put_meta(
        &self,
        bucket: &Arc<str>,
        key: &str,
        pending: &PendingMeta,
    ) -> Result<PutMeta> {
        let known = self.index.latest(bucket, key).map(|k| k.put);
        let loc = Location::File { bucket: bucket.clone(), key: key.to_string() };
        // The copy keeps the object's storage class (a CopyObject without one makes it STANDARD).
        let class = self.inodes.find(&loc).and_then(|(_, n)| n.attr.class).map(str::to_string);
        let existing = match known {
            Some(p) => PutMeta { storage_class: class, ..p },
            None => {
                let m = self.store.head_object(bucket, key).await?;
                // Remembers the version's ETag and metadata too.
                let attr = self.attr_from_meta(&loc, &m);
                PutMeta {
                    metadata: m.metadata,
                    content_type: m.content_type,
                    storage_class: attr.class.map(str::to_string),
                }
            }
        };
        let mut extra = others(existing.metadata);
        match pending.xattr.as_deref() {
            Some("") => {
                extra.remove(crate::fs::writes::staged::XATTR_META);
            }
            Some(x) => {
                extra.insert(crate::fs::writes::staged::XATTR_META.into(), x.to_string());
            }
            None => {}
        }
        let mut put = pending.meta.to_put(key, &extra);
        if existing.content_type.is_some() {
            put.content_type = existing.content_type;
        }
        put.storage_class = existing.storage_class;
        Ok(put)
    }
}
