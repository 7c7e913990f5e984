//! Opening files and reading them: readers pinned to a version, following our own metadata
//! copies.

use crate::fs::*;

impl<S: ObjectStore> Fs<S> {
    /// Opens a file. Returns the handle, whether the kernel's cached pages are still good (same
    /// ETag as at the last open), and whether to read it past the page cache (a large object).
    /// Opening for writing stages the file; without O_TRUNC the object's bytes are brought in
    /// first.
    pub async fn open(&self, ino: Ino, write: bool, truncate: bool, pid: u32) -> Result<Opened> {
        if let Some(writer) = self.writer(ino) {
            if truncate {
                self.check_writable()?;
                let mut st = writer.staged.lock().await;
                st.truncate(&self.store, 0).await?;
                st.meta.touch();
                Self::sync_info(&writer, &st);
            }
            return Ok(Opened::staged(self.add_staged_handle(ino, writer, pid).await));
        }
        let node = self.node(ino)?;
        let Location::File { bucket, key } = &node.loc else {
            return Err(Error::IsDir);
        };
        // A chmod/utimens still waiting for its CopyObject would change the ETag under the
        // download below: save it first.
        let pending = (write || truncate) && self.pending_meta.contains(bucket, key);
        if pending {
            self.flush_meta(bucket, key, None).await?;
        }
        let mut head = None;
        let attr = if !pending && node.fresh_until > Instant::now() && node.attr.etag.is_some() {
            self.with_pending_meta(&node.loc, node.attr.clone())
        } else {
            let meta = self.store.head_object(bucket, key).await?;
            let attr = self.attr_from_meta(&node.loc, &meta);
            self.inodes.set_attr(ino, attr.clone(), self.fresh_until());
            head = Some(meta);
            attr
        };
        // An archived object's bytes cannot be read until restored: say so at open (EACCES, as
        // mountpoint-s3 does), not with EIO in the middle of a read. Its restore state changes
        // by itself, so it is asked for now.
        if !truncate && attr.class.is_some_and(xattr::may_be_archived) {
            let meta = match head {
                Some(m) => m,
                None => self.store.head_object(bucket, key).await?,
            };
            if let xattr::Restore::Archived | xattr::Restore::Restoring = xattr::restore_state(&meta) {
                warn!(
                    bucket = &**bucket,
                    key = key.as_str(),
                    class = meta.storage_class.as_deref(),
                    "archived: not readable until restored (setfattr -n user.s3.restore -v 7d FILE)"
                );
                return Err(Error::Store(StoreError::Archived));
            }
        }
        if write || truncate {
            self.check_writable()?;
            let mut staged =
                Staged::create(&self.staging_dir, bucket.clone(), key, self.file_meta(&attr), attr.etag.as_deref())?;
            staged.in_s3 = true;
            staged.extra = self.extra_meta(bucket, key, attr.etag.as_deref());
            if truncate {
                // O_TRUNC changes the file even if nothing is written after it.
                staged.dirty = true;
                staged.meta.touch();
            } else if let Err(e) =
                staged.fill_from(&*self.store, attr.size, attr.etag.as_deref(), self.config.read.part_size).await
            {
                staged.discard();
                return Err(e);
            }
            let writer = self.add_writer(ino, staged);
            return Ok(Opened::staged(self.add_staged_handle(ino, writer, pid).await));
        }
        // The page cache holds bytes of this ETag at most: an open that does not keep it makes
        // the kernel drop it, a direct read adds nothing to it (but for mmap, of this ETag).
        let keep_cache = self.inodes.swap_cached_etag(ino, attr.etag.clone());
        let direct = attr.size >= self.config.read.direct_size;
        let mut reader = Reader::new(bucket.clone(), key, attr.etag.as_deref(), attr.size, &self.config.read);
        if keep_cache && !direct {
            reader = reader.with_cache_kept();
        }
        if let Some(cache) = &self.data_cache {
            reader = reader.with_data_cache(cache.clone());
        }
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.file_handles.lock().unwrap().insert(fh, Arc::new(FileHandle::Read(ino, tokio::sync::Mutex::new(reader))));
        Ok(Opened { fh, keep_cache, direct_read: direct })
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<bytes::Bytes> {
        let handle = self.handle(fh)?;
        match &*handle {
            FileHandle::Read(_, reader) => {
                let mut reader = reader.lock().await;
                let r = reader.read(&self.store, &self.memory, &self.config.read, offset, size).await;
                if let Err(Error::Store(StoreError::PreconditionFailed)) = &r
                    && self.follow_version(&mut reader).await?
                {
                    return reader.read(&self.store, &self.memory, &self.config.read, offset, size).await;
                }
                r
            }
            FileHandle::Staged { writer, .. } => {
                let mut st = writer.staged.lock().await;
                st.materialize(&*self.store, self.config.read.part_size).await?;
                st.read(offset, size).await
            }
        }
    }

    /// A reader's object is no longer the version it is pinned to: re-pins it (returning true)
    /// where reading on is right. After our own metadata CopyObject the bytes are the same. A
    /// reader that has returned nothing yet opened after another client's change (its open
    /// trusted an ETag within the TTL): it reads the new version, and the kernel drops what it
    /// holds of the old one. Otherwise the caller gets ESTALE.
    pub(in crate::fs) async fn follow_version(&self, reader: &mut Reader) -> Result<bool> {
        let (bucket, key, etag, _) = reader.source();
        let copied =
            etag.clone().and_then(|e| self.meta_copies.lock().unwrap().get(&(bucket.clone(), key.clone(), e)).cloned());
        if let Some(new) = copied {
            debug!(new, "the object's metadata was changed through this mount: reading on");
            reader.repin(&new);
            return Ok(true);
        }
        let meta = self.store.head_object(&bucket, &key).await?;
        if meta.etag.is_none() || meta.etag == etag {
            return Ok(false);
        }
        // Whatever this reader does next, the next open must see the new version: new
        // attributes, and the kernel's pages of the old one dropped.
        let loc = Location::File { bucket, key: key.clone() };
        if let Some((ino, _)) = self.inodes.find(&loc) {
            self.inodes.set_attr(ino, self.attr_from_meta(&loc, &meta), self.fresh_until());
            // Pages the kernel gets from here on are of the new version, unless this reader
            // stops with ESTALE (its pages then are of no version worth keeping).
            self.inodes.swap_cached_etag(ino, if reader.served() { None } else { meta.etag.clone() });
            if let Some(k) = self.kernel.get() {
                k.invalidate(ino);
            }
        }
        if reader.served() {
            debug!(key, old = ?etag, new = ?meta.etag, "the object changed under an open that returned bytes: ESTALE");
            return Ok(false);
        }
        debug!(key, old = ?etag, new = ?meta.etag, "opened on an old version: reading the new one");
        reader.reset(meta.etag.as_deref(), meta.size);
        Ok(true)
    }

    pub(in crate::fs) fn handle(&self, fh: u64) -> Result<Arc<FileHandle>> {
        self.file_handles.lock().unwrap().get(&fh).cloned().ok_or(Error::BadHandle)
    }
}
