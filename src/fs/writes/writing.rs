//! Files being written through the mount: create, write, flush (the upload on close), fsync,
//! copy_file_range, release; the writers table's lookups. Other nodes are made in `mknod.rs`,
//! renamed in `rename.rs`; metadata changes (setattr) are in `setattr.rs`, removing names in
//! `unlink.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::{debug, warn};

use crate::fs::error::{Error, Result};
use crate::fs::inode::{Attr, Ino, Kind, Location};
use crate::fs::listings::Entry;
use crate::fs::names::Name;
use crate::fs::writes::staged::{CopySource, FileMeta, Staged};
use crate::fs::{FileHandle, Fs, Resolved, Stat, Writer, WriterInfo};
use crate::store::{ObjectStore, PutMeta};

/// Server-side copies in flight during a directory rename.
pub(in crate::fs) const COPY_CONCURRENCY: usize = 8;

/// Who creates a new file or directory.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    /// The calling process.
    pub pid: u32,
}

impl<S: ObjectStore> Fs<S> {
    pub(in crate::fs) fn check_writable(&self) -> Result<()> {
        if self.config.read_only {
            return Err(Error::ReadOnly);
        }
        if self.closing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Io { errno: libc::EIO, msg: "s3drive is shutting down".into() });
        }
        Ok(())
    }

    pub(in crate::fs) fn writer(&self, ino: Ino) -> Option<Arc<Writer>> {
        self.writers.lock().unwrap().get(&ino).cloned()
    }

    pub(in crate::fs) fn writer_at(&self, loc: &Location) -> Option<(Ino, WriterInfo)> {
        let writers = self.writers.lock().unwrap();
        writers.iter().find_map(|(&ino, w)| {
            let info = w.info.lock().unwrap();
            (!info.unlinked && &info.loc == loc).then(|| (ino, info.clone()))
        })
    }

    pub(in crate::fs) fn writers_under(&self, bucket: &str, prefix: &str) -> Vec<(Ino, WriterInfo)> {
        let writers = self.writers.lock().unwrap();
        writers
            .iter()
            .filter_map(|(&ino, w)| {
                let info = w.info.lock().unwrap();
                match &info.loc {
                    Location::File { bucket: b, key }
                        if !info.unlinked && &**b == bucket && key.starts_with(prefix) =>
                    {
                        Some((ino, info.clone()))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    pub(in crate::fs) fn staged_attr(&self, info: &WriterInfo) -> Attr {
        info.meta.attr(info.size, None)
    }

    /// User metadata of the object other than s3drive's own, when known for this version.
    pub(in crate::fs) fn extra_meta(
        &self,
        bucket: &Arc<str>,
        key: &str,
        etag: Option<&str>,
    ) -> HashMap<String, String> {
        match self.index.latest(bucket, key) {
            Some(k) if etag.is_none() || Some(k.etag.as_str()) == etag => {
                crate::fs::writes::staged::others(k.put.metadata.clone())
            }
            _ => HashMap::new(),
        }
    }

    pub(in crate::fs) fn add_writer(&self, ino: Ino, staged: Staged) -> Arc<Writer> {
        let info = WriterInfo { loc: staged.location(), size: staged.size, meta: staged.meta, unlinked: false };
        let progress = staged.progress.clone();
        let w =
            Arc::new(Writer { staged: tokio::sync::Mutex::new(staged), info: std::sync::Mutex::new(info), progress });
        self.writers.lock().unwrap().insert(ino, w.clone());
        w
    }

    pub(in crate::fs) async fn add_staged_handle(&self, ino: Ino, writer: Arc<Writer>, pid: u32) -> u64 {
        writer.staged.lock().await.handles += 1;
        let fh = self.next_handle.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.file_handles.lock().unwrap().insert(fh, Arc::new(FileHandle::Staged { ino, writer, pid }));
        fh
    }

    pub(in crate::fs) fn sync_info(writer: &Writer, st: &Staged) {
        let mut info = writer.info.lock().unwrap();
        info.size = st.size;
        info.meta = st.meta;
        info.loc = st.location();
        info.unlinked = st.unlinked;
    }

    /// Resolves `name` in `parent` for a change: its location and attributes. With
    /// `want_meta`, a file's user metadata is fetched when unknown (see [`Fs::resolve`]).
    pub(in crate::fs) async fn existing(
        &self,
        parent: Ino,
        name: &Name,
        want_meta: bool,
    ) -> Result<Option<(Location, Attr)>> {
        let pnode = self.node(parent)?;
        Ok(match self.resolve(parent, &pnode, name, want_meta).await? {
            Some(Resolved::Entry(e)) => Some((e.loc.clone(), e.attr)),
            Some(Resolved::Staged(info)) => {
                let attr = self.staged_attr(&info);
                Some((info.loc, attr))
            }
            None => None,
        })
    }

    // ----- files -----

    pub async fn create(&self, parent: Ino, name: &Name, mode: u32, owner: Owner) -> Result<(Stat, u64)> {
        self.check_writable()?;
        let pnode = self.node(parent)?;
        let loc = match &pnode.loc {
            Location::Dir { .. } => pnode.loc.child(name, false).expect("a directory"),
            Location::Buckets => return Err(Error::NotPermitted), // files cannot live beside buckets
            Location::File { .. } => return Err(Error::NotDir),
        };
        check_key_length(&loc)?;
        let Location::File { bucket, key } = &loc else { unreachable!() };
        self.deleter.cancel(bucket, key).await;
        let meta = FileMeta {
            perm: (mode & 0o7777) as u16,
            uid: owner.uid,
            gid: owner.gid,
            mtime: SystemTime::now(),
            mtime_set: false,
            atime: None,
            ctime: SystemTime::now(),
            kind: Kind::File,
        };
        let mut staged = Staged::create(&self.staging_dir, bucket.clone(), key, meta, None)?;
        staged.dirty = true; // an empty new file is uploaded too
        let attr = meta.attr(0, None);
        let ino = self.inodes.remember(parent, loc.clone(), attr.clone(), self.fresh_until());
        let writer = self.add_writer(ino, staged);
        let fh = self.add_staged_handle(ino, writer, owner.pid).await;
        let stat = self.stat_of(ino, &loc, &attr);
        self.entry_added(parent, Entry { name: name.clone(), loc, attr });
        Ok((stat, fh))
    }

    /// write(2). `kill_suid`: the writer may not keep set-user-ID and set-group-ID bits (the
    /// kernel says so for a caller without CAP_FSETID), which the write then clears.
    pub async fn write(&self, fh: u64, offset: u64, data: &[u8], kill_suid: bool) -> Result<u32> {
        let handle = self.handle(fh)?;
        let FileHandle::Staged { writer, .. } = &*handle else { return Err(Error::BadHandle) };
        self.check_writable()?;
        let mut st = writer.staged.lock().await;
        st.materialize(&*self.store, self.config.read.part_size).await?;
        st.write(&self.store, &self.config.write, &self.upload_memory, offset, data).await?;
        st.meta.touch();
        if kill_suid {
            st.meta.perm = drop_suid(st.meta.perm);
        }
        Self::sync_info(writer, &st);
        Ok(data.len() as u32)
    }

    /// close(2): uploads what changed and returns the upload's outcome. The kernel also sends a
    /// flush when a forked child closes its copy of the descriptor (at exec, or exit): with
    /// `pid` given, a flush from another process than the opener uploads nothing while the
    /// opener lives, so a writer that runs a command does not upload a half-written file.
    pub async fn flush(&self, fh: u64, pid: Option<u32>) -> Result<()> {
        let handle = self.handle(fh)?;
        if let FileHandle::Staged { ino, writer, pid: opener } = &*handle {
            if pid.is_some_and(|p| p != *opener && process_of(p) != process_of(*opener) && process_alive(*opener)) {
                debug!(fh, pid, opener, "flush from another process: upload left to the opener");
                return Ok(());
            }
            let mut st = writer.staged.lock().await;
            self.upload(*ino, &mut st).await?;
        }
        Ok(())
    }

    /// fsync(2): the file's data and metadata are in S3 when this returns Ok.
    pub async fn fsync(&self, fh: u64) -> Result<()> {
        self.flush(fh, None).await?;
        let handle = self.handle(fh)?;
        let loc = match &*handle {
            FileHandle::Staged { writer, .. } => writer.info.lock().unwrap().loc.clone(),
            FileHandle::Read(..) => return Ok(()),
        };
        if let Location::File { bucket, key } = loc {
            self.flush_meta(&bucket, &key, None).await?;
        }
        Ok(())
    }

    pub(in crate::fs) async fn upload(&self, ino: Ino, st: &mut Staged) -> Result<()> {
        if !st.dirty || st.unlinked {
            return Ok(());
        }
        let progress = st.progress.clone();
        progress.uploading.store(true, std::sync::atomic::Ordering::Relaxed);
        let r = self.upload_now(ino, st).await;
        progress.uploading.store(false, std::sync::atomic::Ordering::Relaxed);
        r
    }

    async fn upload_now(&self, ino: Ino, st: &mut Staged) -> Result<()> {
        self.deleter.cancel(&st.bucket, &st.key).await;
        if let Some(src) = st.copied_from.clone() {
            if src.complete() {
                return self.upload_copy(ino, st, &src).await;
            }
            // Part of an object copied, then the writer stopped: upload it the ordinary way.
            st.materialize(&*self.store, self.config.read.part_size).await?;
        }
        let uploaded = match st.upload(&self.store, &self.config.write, &self.upload_memory).await {
            Ok((r, false)) => Ok(r),
            Ok((_, true)) => {
                // chmod/utimens came while the multipart upload was running: set them now
                // (a multipart copy above 5 GiB).
                let put = st.meta.to_put(&st.key, &st.extra);
                self.copy(&st.bucket, &st.key, &st.bucket, &st.key, st.size, Some(&put)).await
            }
            Err(e) => Err(e),
        };
        match uploaded {
            Ok(r) => {
                let put = st.meta.to_put(&st.key, &st.extra);
                if let (Some(cache), Some(etag)) = (&self.data_cache, &r.etag) {
                    // What was just uploaded is what a read of this version would fetch.
                    let (file, changes, seen) = st.contents();
                    cache.seed(cache.version(&st.bucket, &st.key, etag), file, changes, seen, st.size);
                }
                self.now_in_s3(ino, st, r.etag, &put);
                debug!(bucket = &*st.bucket, key = st.key, size = st.size, "uploaded");
                Ok(())
            }
            Err(e) if st.broken.is_some() => {
                warn!("s3://{}/{} is not uploaded: its staging file could not be written ({e})", st.bucket, st.key);
                Err(e)
            }
            Err(e) => {
                warn!(
                    "upload of s3://{}/{} failed: {e}; the data written is kept in {}",
                    st.bucket,
                    st.key,
                    st.path.display()
                );
                Err(e)
            }
        }
    }

    /// A staged file's bytes and metadata (`put`) are in S3 as version `etag`: remember its
    /// metadata, drop pending changes it carries, refresh the node and its parent's listing.
    fn now_in_s3(&self, ino: Ino, st: &Staged, etag: Option<String>, put: &PutMeta) {
        self.learn_meta(&st.bucket, &st.key, etag.as_deref(), &st.meta, put);
        self.pending_meta.take(&st.bucket, &st.key);
        let attr = st.meta.attr(st.size, etag);
        self.inodes.set_attr(ino, attr.clone(), self.fresh_until());
        if let Some(n) = self.inodes.get(ino)
            && let Some(entry) = self.file_entry(n.parent, &n.loc, attr)
        {
            self.entry_added(n.parent, entry);
        }
    }

    /// The last handle on a file whose upload failed closed: what S3 holds under its name (the
    /// old object, or nothing) is what the mount shows from now on, not the file as written.
    /// The cached attributes are expired (the next stat asks S3), the parent's cached listing
    /// is dropped (the next listing or lookup asks S3), and the kernel is told to forget the
    /// name and its attributes, which it would otherwise keep for the metadata TTL (it drops
    /// them itself after a write, but not for a file created and closed empty).
    fn not_in_s3(&self, ino: Ino) {
        let Some(n) = self.inodes.get(ino) else { return };
        self.inodes.expire(ino);
        self.listings.forget_dir(n.parent);
        if matches!(n.loc, Location::File { .. })
            && let Some(name) = n.loc.name()
        {
            self.kernel_forget(n.parent, &name, ino);
        }
    }

    /// Uploads a file filled by copy_file_range: a server-side copy with the file's metadata.
    async fn upload_copy(&self, ino: Ino, st: &mut Staged, src: &CopySource) -> Result<()> {
        let put = st.meta.to_put(&st.key, &st.extra);
        match self.copy(&src.bucket, &src.key, &st.bucket, &st.key, src.size, Some(&put)).await {
            Ok(r) => {
                st.dirty = false;
                st.failed = false;
                st.in_s3 = true;
                // Later local reads or writes start from the copy.
                st.copied_from = Some(CopySource {
                    bucket: st.bucket.clone(),
                    key: st.key.clone(),
                    etag: r.etag.clone(),
                    size: src.size,
                    len: src.size,
                });
                self.now_in_s3(ino, st, r.etag, &put);
                debug!(bucket = &*st.bucket, key = st.key, from = src.key, "copied server-side");
                Ok(())
            }
            Err(e) => {
                st.failed = true;
                warn!(
                    "server-side copy of s3://{}/{} to s3://{}/{} failed: {e}",
                    src.bucket, src.key, st.bucket, st.key
                );
                Err(e)
            }
        }
    }

    /// copy_file_range: a copy of a whole object from the start of a file just created (or
    /// truncated) becomes a server-side copy at close. Returns the bytes "copied"; the kernel
    /// caps one reply below 4 GiB, so a larger object takes several calls, each continuing where
    /// the last ended. Anything else is ENOTSUP, and the kernel or the caller falls back to
    /// reading and writing.
    pub async fn copy_range(&self, fh_in: u64, off_in: u64, fh_out: u64, off_out: u64, len: u64) -> Result<u64> {
        /// The most one FUSE reply can report, rounded down to a page.
        const MAX_REPLY: u64 = u32::MAX as u64 & !0xfff;
        self.check_writable()?;
        let src = self.handle(fh_in)?;
        let FileHandle::Read(_, reader) = &*src else { return Err(Error::NotSupported) };
        let (bucket, key, etag, size) = reader.lock().await.source();
        let dst = self.handle(fh_out)?;
        let FileHandle::Staged { writer, .. } = &*dst else { return Err(Error::BadHandle) };
        let mut st = writer.staged.lock().await;
        let start = match &st.copied_from {
            None if off_in == 0 && off_out == 0 && st.size == 0 && !st.streaming() => 0,
            Some(c)
                if c.bucket == bucket
                    && c.key == key
                    && c.etag == etag
                    && off_in == c.len
                    && off_out == c.len
                    && st.size == c.len =>
            {
                c.len
            }
            _ => return Err(Error::NotSupported),
        };
        if start >= size {
            return Ok(0);
        }
        let n = (size - start).min(MAX_REPLY);
        if len < n {
            return Err(Error::NotSupported); // not the whole rest of the object
        }
        st.copied_from = Some(CopySource { bucket, key, etag, size, len: start + n });
        st.size = start + n;
        st.dirty = true;
        st.meta.touch();
        Self::sync_info(writer, &st);
        Ok(n)
    }

    /// The last handle on a staged file closed: upload if still needed, then drop the staging
    /// file, unless an upload failed, in which case it stays in the cache directory.
    pub async fn release(&self, fh: u64) {
        let Some(handle) = self.file_handles.lock().unwrap().remove(&fh) else { return };
        let (ino, writer) = match &*handle {
            FileHandle::Staged { ino, writer, .. } => (ino, writer),
            FileHandle::Read(ino, _) => return self.reader_closed(*ino),
        };
        let mut st = writer.staged.lock().await;
        st.handles = st.handles.saturating_sub(1);
        if st.handles > 0 {
            return;
        }
        // No retry after a failure the caller was told about: the data stays in the cache.
        let kept =
            if st.dirty && !st.unlinked { st.failed || self.upload(*ino, &mut st).await.is_err() } else { false };
        if let Some(e) = st.broken.clone().filter(|_| st.dirty && !st.unlinked) {
            // The staging file misses bytes the writer was told failed: nothing to keep.
            warn!(
                "s3://{}/{} was not uploaded: writing its staging file failed ({e}); the object in S3 is unchanged",
                st.bucket, st.key
            );
            crate::stats::error(format!("s3://{}/{} not uploaded: staging failed: {e}", st.bucket, st.key));
            st.cancel_stream(&self.store);
            st.discard();
            self.not_in_s3(*ino);
        } else if kept {
            warn!("s3://{}/{} was not uploaded; its data is kept in {}", st.bucket, st.key, st.path.display());
            crate::stats::error(format!("s3://{}/{} not uploaded; kept in {}", st.bucket, st.key, st.path.display()));
            self.not_in_s3(*ino);
        } else {
            st.cancel_stream(&self.store);
            st.discard();
        }
        let mut writers = self.writers.lock().unwrap();
        if writers.get(ino).is_some_and(|w| Arc::ptr_eq(w, writer)) {
            writers.remove(ino);
        }
    }

    // ----- names -----

    // ----- rename -----

    // ----- shutdown -----
}

/// The permission bits after a write or chown by someone who may not keep set-user-ID and
/// set-group-ID: both go, set-group-ID only with group execute (without it, it marks mandatory
/// locking, which Linux keeps), as Linux's own filesystems do.
pub(in crate::fs) fn drop_suid(perm: u16) -> u16 {
    let (suid, sgid, gx) = (libc::S_ISUID as u16, libc::S_ISGID as u16, libc::S_IXGRP as u16);
    let mut p = perm & !suid;
    if p & gx != 0 {
        p &= !sgid;
    }
    p
}

/// S3's longest key, in bytes.
pub(in crate::fs) const MAX_KEY: usize = 1024;

/// ENAMETOOLONG for a path whose key S3 would refuse (over 1,024 bytes), before any request.
pub(in crate::fs) fn check_key_length(loc: &Location) -> Result<()> {
    let key = match loc {
        Location::File { key, .. } => key,
        Location::Dir { prefix, .. } => prefix,
        Location::Buckets => return Ok(()),
    };
    if key.len() > MAX_KEY {
        debug!(len = key.len(), "a key longer than S3's 1,024 bytes");
        return Err(Error::NameTooLong);
    }
    Ok(())
}

/// The process (thread group) a thread belongs to: FUSE requests carry thread ids.
pub(in crate::fs) fn process_of(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse().ok())
}

/// Whether process `pid` still exists.
pub(in crate::fs) fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
