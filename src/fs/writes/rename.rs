//! rename: a file is copied server-side (or, being written, just given its new name) and its
//! source deleted through the batcher; a folder is copied key by key, then its sources deleted.

use super::pending_meta::PendingMeta;
use crate::fs::Fs;
use crate::fs::error::{Error, Result};
use crate::fs::inode::{Attr, Ino, Location};
use crate::fs::listings::Entry;
use crate::fs::names::Name;
use crate::fs::writes::staged::FileMeta;
use crate::fs::writes::writing::*;
use crate::store::{ListRequest, ObjectStore, PutMeta, PutResult};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::task::JoinSet;
use tracing::warn;

impl<S: ObjectStore> Fs<S> {
    pub async fn rename(
        &self,
        parent: Ino,
        name: &Name,
        newparent: Ino,
        newname: &Name,
        noreplace: bool,
    ) -> Result<()> {
        self.check_writable()?;
        let Some((src, src_attr)) = self.existing(parent, name, true).await? else { return Err(Error::NotFound) };
        let dst_parent = self.node(newparent)?;
        if matches!(dst_parent.loc, Location::Buckets)
            || matches!(&src, Location::Dir { prefix, .. } if prefix.is_empty())
        {
            return Err(Error::CrossDevice); // buckets cannot be renamed; mv falls back to copying
        }
        let dst = dst_parent.loc.child(newname, src.is_dir()).ok_or(Error::NotDir)?;
        check_key_length(&dst)?;
        if let Some((existing, _)) = self.existing(newparent, newname, false).await? {
            if noreplace {
                return Err(Error::Exists);
            }
            match (src.is_dir(), existing.is_dir()) {
                (false, true) => return Err(Error::IsDir),
                (true, false) => return Err(Error::NotDir),
                (true, true) => {
                    let Location::Dir { bucket, prefix } = &existing else { unreachable!() };
                    if !self.writers_under(bucket, prefix).is_empty() || self.has_children(bucket, prefix).await? {
                        return Err(Error::NotEmpty);
                    }
                }
                (false, false) => {}
            }
            if existing == src {
                return Ok(());
            }
        }
        let mut copied = None;
        match (&src, &dst) {
            (Location::File { bucket: sb, key: sk }, Location::File { bucket: db, key: dk }) => {
                copied = self.rename_file(sb, sk, db, dk, &src_attr).await?;
            }
            (Location::Dir { bucket: sb, prefix: sp }, Location::Dir { bucket: db, prefix: dp }) => {
                if sb == db && dp.starts_with(sp.as_str()) {
                    return Err(Error::Invalid); // into itself
                }
                self.rename_dir(sb, sp, db, dp).await?;
            }
            _ => unreachable!("dst has src's kind"),
        }
        self.inodes.detach(&dst);
        if let Some((ino, node)) = self.inodes.find(&src) {
            self.inodes.relocate(ino, dst.clone());
            // The copy is a new object version: reads of the new name pin its ETag, not the
            // source's (which would fail every If-Match with 412). Without one, ask S3.
            if let Some(attr) = copied.clone() {
                let fresh = if attr.etag.is_some() { node.fresh_until } else { Instant::now() };
                self.inodes.set_attr(ino, attr, fresh);
            }
        }
        if dst.is_dir() {
            // Cached listings under the moved directory name old keys.
            self.listings.drop_all();
            self.listings.not_missing(newparent, newname);
        } else {
            self.entry_removed(parent, name);
            let attr = self.inodes.find(&dst).map_or(copied.unwrap_or(src_attr), |(_, n)| n.attr);
            self.entry_added(newparent, Entry { name: newname.clone(), loc: dst, attr });
        }
        Ok(())
    }

    /// Moves one file; returns the attributes of the object copied to the destination (`None`
    /// for a file being written, which just changes where it will be uploaded).
    pub(in crate::fs) async fn rename_file(
        &self,
        sb: &Arc<str>,
        sk: &str,
        db: &Arc<str>,
        dk: &str,
        attr: &Attr,
    ) -> Result<Option<Attr>> {
        let src_loc = Location::File { bucket: sb.clone(), key: sk.to_string() };
        self.deleter.cancel(db, dk).await;
        // The object at the destination is replaced: a chmod/chown/utimens still waiting for its
        // CopyObject belongs to it, not to the file moved there (written onto the new object it
        // would, for one, make a regular file the FIFO it replaced).
        if (sb, sk) != (db, dk) {
            self.pending_meta.take(db, dk);
        }
        // A file being written just changes where it will go.
        if let Some((ino, _)) = self.writer_at(&src_loc)
            && let Some(writer) = self.writer(ino)
        {
            let mut st = writer.staged.lock().await;
            let was_in_s3 = st.in_s3;
            if st.dirty || !was_in_s3 {
                st.cancel_stream(&self.store);
                st.bucket = db.clone();
                st.key = dk.to_string();
                st.in_s3 = false;
                st.dirty = true;
                st.update_journal();
                Self::sync_info(&writer, &st);
                drop(st);
                if was_in_s3 {
                    self.deleter.schedule(sb, sk.to_string());
                }
                return Ok(None);
            }
            // Uploaded and unchanged since: move the object, and point the writer at it.
            st.bucket = db.clone();
            st.key = dk.to_string();
            if let Some(c) = st.copied_from.as_mut().filter(|c| &c.bucket == sb && c.key == sk) {
                (c.bucket, c.key, c.etag) = (db.clone(), dk.to_string(), None);
            }
            st.update_journal();
            Self::sync_info(&writer, &st);
        }
        let saved = self.pending_meta.take(sb, sk);
        // A rename is a status change: the copy carries the file's metadata (the rename asked
        // for it) with a new ctime, which also keeps its mtime when the object had none (the
        // copy's LastModified would be the rename's time). `--metadata-from listing` copies the
        // metadata as it is.
        let pending = match &saved {
            Some(p) => Some(PendingMeta { meta: FileMeta { ctime: SystemTime::now(), ..p.meta }, ..p.clone() }),
            None if self.config.metadata.from_listing => None,
            None => {
                let meta = FileMeta { ctime: SystemTime::now(), ..self.file_meta(attr) };
                Some(PendingMeta { meta, xattr: None, version: 0 })
            }
        };
        let copied = async {
            let put = match &pending {
                Some(p) => Some(self.full_put_meta(sb, sk, p).await?),
                None => None,
            };
            let r = self.copy(sb, sk, db, dk, attr.size, put.as_ref()).await?;
            Ok::<_, Error>((put, r))
        };
        let (put, r) = match copied.await {
            Ok(r) => r,
            Err(e) => {
                if let Some(p) = saved {
                    self.pending_meta.restore(sb, sk, p);
                }
                return Err(e);
            }
        };
        let meta = pending.map(|p| p.meta).unwrap_or_else(|| self.file_meta(attr));
        let known = self.index.forget(sb, sk);
        let put = put.or(known.map(|k| k.put)).unwrap_or_else(|| meta.to_put(dk, &HashMap::new()));
        self.learn_meta(db, dk, r.etag.as_deref(), &meta, &put);
        // A reader of the source reads on from it; it goes when the last reader closes.
        self.delete_after_readers(&src_loc);
        Ok(Some(meta.attr(attr.size, r.etag)))
    }

    /// Copies every object under `sp` to `dp`, then deletes the sources. Not atomic: on a failure
    /// no source is deleted (some copies may exist), and the error is returned.
    pub(in crate::fs) async fn rename_dir(&self, sb: &Arc<str>, sp: &str, db: &Arc<str>, dp: &str) -> Result<()> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .store
                .list_objects(ListRequest {
                    bucket: sb,
                    prefix: sp,
                    delimiter: None,
                    continuation: token.as_deref(),
                    max_keys: None,
                })
                .await?;
            keys.extend(page.objects.into_iter().filter(|o| !self.hidden(sb, &o.key)).map(|o| (o.key, o.size)));
            match page.next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        let mut tasks = JoinSet::new();
        let mut failed: Option<Error> = None;
        let me = self.me.upgrade().ok_or(Error::BadHandle)?;
        for (key, size) in keys.clone() {
            while tasks.len() >= COPY_CONCURRENCY {
                if let Some(Ok(Err(e))) = tasks.join_next().await {
                    failed.get_or_insert(e);
                }
            }
            if failed.is_some() {
                break;
            }
            let (me, sb, db) = (me.clone(), sb.clone(), db.clone());
            let dk = format!("{dp}{}", &key[sp.len()..]);
            tasks.spawn(async move {
                me.deleter.cancel(&db, &dk).await;
                let pending = me.pending_meta.get(&sb, &key);
                let put = match &pending {
                    Some(p) => Some(me.full_put_meta(&sb, &key, p).await?),
                    None => None,
                };
                me.copy(&sb, &key, &db, &dk, size, put.as_ref()).await.map(|_| ())
            });
        }
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Err(e)) => {
                    failed.get_or_insert(e);
                }
                Err(e) => {
                    failed.get_or_insert(Error::Io { errno: libc::EIO, msg: format!("copy task: {e}") });
                }
                Ok(Ok(())) => {}
            }
        }
        if let Some(e) = failed {
            warn!("renaming s3://{sb}/{sp} to s3://{db}/{dp} failed midway ({e}); no source was deleted");
            return Err(e);
        }
        let had_marker = keys.iter().any(|(k, _)| k == sp);
        self.index.forget(sb, sp);
        for (key, _) in keys {
            self.pending_meta.take(sb, &key);
            self.delete_after_readers(&Location::File { bucket: sb.clone(), key });
        }
        if !had_marker {
            // Hides the old name until its keys are deleted, as rmdir does (listings would show
            // the prefix until then). Deleting a key that is not there is no error in S3.
            self.deleter.schedule(sb, sp.to_string());
        }
        // Files being written under the directory go to the new place.
        for (ino, _) in self.writers_under(sb, sp) {
            if let Some(writer) = self.writer(ino) {
                let mut st = writer.staged.lock().await;
                st.cancel_stream(&self.store);
                st.key = format!("{dp}{}", &st.key[sp.len()..]);
                st.bucket = db.clone();
                st.dirty = true;
                st.update_journal();
                Self::sync_info(&writer, &st);
            }
        }
        Ok(())
    }

    /// A server-side copy: CopyObject, or UploadPartCopy parts above the copy threshold.
    pub(in crate::fs) async fn copy(
        &self,
        sb: &str,
        sk: &str,
        db: &str,
        dk: &str,
        size: u64,
        put: Option<&PutMeta>,
    ) -> Result<PutResult> {
        let cfg = &self.config.write;
        if size <= cfg.copy_threshold {
            return Ok(self.store.copy_object(sb, sk, db, dk, put).await?);
        }
        let meta = match put {
            Some(p) => p.clone(),
            None => {
                let m = self.store.head_object(sb, sk).await?;
                let class = m.storage_class.unwrap_or_else(|| "STANDARD".into());
                PutMeta { metadata: m.metadata, content_type: m.content_type, storage_class: Some(class) }
            }
        };
        let id = self.store.create_multipart(db, dk, &meta).await?;
        let part = cfg.copy_part_size.max(size.div_ceil(crate::fs::writes::staged::MAX_PARTS as u64));
        let result = async {
            let mut parts = Vec::new();
            let mut start = 0;
            let mut n = 1;
            while start < size {
                let end = (start + part).min(size);
                let etag = self.store.upload_part_copy(sb, sk, start, end, db, dk, &id, n).await?;
                parts.push((n, etag));
                start = end;
                n += 1;
            }
            self.store.complete_multipart(db, dk, &id, &parts).await
        }
        .await;
        match result {
            Ok(r) => Ok(r),
            Err(e) => {
                let _ = self.store.abort_multipart(db, dk, &id).await;
                Err(e.into())
            }
        }
    }
}
