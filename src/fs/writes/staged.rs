//! Writes: files are staged on local disk and uploaded when closed (flush) or fsynced.
//!
//! A `Staged` file is shared by every handle open for writing on one inode. Small files go up
//! with one PutObject. Larger ones use multipart upload: for a sequential writer, parts are sent
//! while the file is still being written (as soon as a part's bytes are all there), so `close`
//! only waits for the tail; any other write pattern (random writes, truncate, rename while open)
//! cancels that early upload and the whole file is sent at close. Parts go up concurrently, each
//! holding permits of the upload memory budget, so memory stays bounded whatever the file size.
//! Part sizes grow (8 MiB for the first 1,000 parts, doubling every 1,000) so that S3's 10,000
//! parts reach its 5 TiB object limit.
//!
//! The staging file is the truth: every write goes into it before write(2) returns (the page
//! cache keeps it through a crash of the daemon), and a staging write that fails (ENOSPC) is
//! the caller's error, from that write and from every later write and close of the file, which
//! is then never uploaded. Its journal (see [`crate::fs::writes::staging`]) says where the bytes go.
//!
//! If an upload fails the object in S3 is untouched (PutObject and CompleteMultipartUpload are
//! atomic; a failed multipart upload is aborted), the caller's close/fsync gets the error, and
//! the staged bytes stay in the cache directory with a log line naming the file.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::buf::PoolBuf;
use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::fs::error::{Error, Result};
use crate::fs::inode::Location;
use crate::fs::reads::MemoryLimiter;
use crate::fs::writes::staging::{Journal, StageDir};
use crate::store::{ObjectStore, PutResult, StoreError};

/// S3's smallest part (all but the last).
pub const MIN_PART: u64 = 5 << 20;
/// S3's largest part.
pub use crate::store::MAX_PART;
pub const MAX_PARTS: i32 = 10_000;
/// S3's largest object: a file may not grow past it (EFBIG).
pub const MAX_OBJECT: u64 = 5 << 40;

pub use crate::config::WriteConfig;

pub(in crate::fs) use crate::fs::metadata::file_meta::others;
pub use crate::fs::metadata::file_meta::{FileMeta, XATTR_META, format_mtime, mode_is_symlink};

/// A multipart upload started while a sequential writer is still writing.
struct Stream {
    bucket: Arc<str>,
    key: String,
    upload_id: String,
    next_part: i32,
    /// Bytes handed to part uploads so far.
    sent_to: u64,
    parts: JoinSet<std::result::Result<(i32, String), StoreError>>,
    /// Part numbers and ETags of finished parts.
    done: Vec<(i32, String)>,
    /// The metadata given to CreateMultipartUpload (chmod/utimens may come later).
    meta: FileMeta,
    extra: HashMap<String, String>,
}

/// A file whose bytes are, so far, the first `len` bytes of an object in S3 (copy_file_range):
/// nothing is in the staging file, and the upload is a server-side copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    pub bucket: Arc<str>,
    pub key: String,
    pub etag: Option<String>,
    /// The source object's size.
    pub size: u64,
    /// How much of it has been handed to the kernel as copied.
    pub len: u64,
}

impl CopySource {
    /// The whole object was copied: the upload can be a CopyObject.
    pub fn complete(&self) -> bool {
        self.len == self.size
    }
}

/// How far a file's upload has got, readable without the staged file's lock (for status).
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of the file in S3 or in finished parts of the upload under way.
    pub sent: AtomicU64,
    /// close/fsync is waiting for the upload.
    pub uploading: std::sync::atomic::AtomicBool,
}

/// A file being written; see the module documentation.
pub struct Staged {
    pub path: PathBuf,
    file: Arc<File>,
    pub size: u64,
    /// Written since the last successful upload.
    pub dirty: bool,
    /// Unlinked while open: never uploaded.
    pub unlinked: bool,
    /// Where the upload goes (a rename while open changes it).
    pub bucket: Arc<str>,
    pub key: String,
    /// An object exists at `key` in S3 (so a rename must move it and an unlink delete it).
    pub in_s3: bool,
    pub meta: FileMeta,
    /// Other user metadata of the object, kept on upload.
    pub extra: HashMap<String, String>,
    pub handles: usize,
    /// The last upload failed (and the caller was told): release keeps the file, no retry.
    pub failed: bool,
    /// A write to the staging file failed: the file is incomplete, every later write and
    /// upload fails with this, and it is never uploaded.
    pub broken: Option<Error>,
    /// Where the bytes go, kept beside the staging file for crash recovery.
    journal: Journal,
    /// End of the bytes written strictly in order from 0.
    seq_end: u64,
    /// The bytes just before `seq_end` not yet handed to a part upload (from `cur_start`), a
    /// copy of what is in the staging file, so a part goes up without reading the file back.
    cur: Option<PoolBuf>,
    cur_start: u64,
    stream: Option<Stream>,
    /// Set by copy_file_range; see [`CopySource`].
    pub copied_from: Option<CopySource>,
    pub progress: Arc<Progress>,
    /// Counts changes to the staging file (bumped before each), so that a copy taken in the
    /// background knows whether it still holds the bytes uploaded (see [`Staged::contents`]).
    changes: Arc<AtomicU64>,
}

static NEXT_STAGE: AtomicU64 = AtomicU64::new(0);

impl Staged {
    /// A new, empty staging file (0600) for `bucket/key` in `stage`, with its journal;
    /// `base_etag` is the object it replaces (see [`Journal::base_etag`]).
    pub fn create(
        stage: &StageDir,
        bucket: Arc<str>,
        key: &str,
        meta: FileMeta,
        base_etag: Option<&str>,
    ) -> Result<Staged> {
        let dir = &stage.path;
        stage.ensure().map_err(|e| io_err(e, &format!("cache directory {}", dir.display())))?;
        let n = NEXT_STAGE.fetch_add(1, Ordering::Relaxed);
        let tail: String = key
            .rsplit('/')
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .take(60)
            .collect();
        let path = dir.join(format!("{}-{n}-{tail}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_err(e, &format!("staging file {}", path.display())))?;
        let journal = stage.journal(&bucket, key, base_etag);
        let st = Staged {
            path,
            file: Arc::new(file),
            cur: None,
            cur_start: 0,
            size: 0,
            dirty: false,
            unlinked: false,
            bucket,
            key: key.to_string(),
            in_s3: false,
            meta,
            extra: HashMap::new(),
            handles: 0,
            failed: false,
            broken: None,
            journal,
            seq_end: 0,
            stream: None,
            copied_from: None,
            progress: Arc::default(),
            changes: Arc::default(),
        };
        if let Err(e) = st.save_journal() {
            st.discard();
            return Err(e);
        }
        Ok(st)
    }

    /// Writes the journal as things stand (where the file goes, the upload under way).
    pub fn save_journal(&self) -> Result<()> {
        let mut j = self.journal.clone();
        j.bucket = self.bucket.to_string();
        j.key = self.key.clone();
        j.upload_id = self.stream.as_ref().map(|s| s.upload_id.clone());
        j.mode = self.meta.st_mode();
        j.uid = self.meta.uid;
        j.gid = self.meta.gid;
        j.mtime = format_mtime(self.meta.mtime);
        j.save(&self.path).map_err(|e| io_err(e, &format!("journal of {}", self.path.display())))
    }

    /// [`Staged::save_journal`] where a failure only costs crash recovery: logged.
    pub fn update_journal(&self) {
        if let Err(e) = self.save_journal() {
            warn!(error = %e, "cannot update a staging journal");
        }
    }

    /// The object in S3 is now version `etag` of this file.
    fn based_on(&mut self, etag: Option<&str>) {
        self.journal.base_etag = etag.map(str::to_string);
    }

    /// Fails with the staging error, if there was one.
    pub fn check_broken(&self) -> Result<()> {
        match &self.broken {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// A staging write failed: remember it (see [`Staged::broken`]).
    fn staging_failed(&mut self, e: std::io::Error) -> Error {
        let err = io_err(e, &format!("staging file {}", self.path.display()));
        if self.broken.is_none() {
            warn!(bucket = &*self.bucket, key = self.key, error = %err, "writing the staging file failed; the file will not be uploaded");
            self.broken = Some(err.clone());
        }
        err
    }

    pub fn location(&self) -> Location {
        Location::File { bucket: self.bucket.clone(), key: self.key.clone() }
    }

    /// Fills the staging file with the object's current bytes (opening an object for writing
    /// without O_TRUNC), pinned to its ETag.
    pub async fn fill_from<S: ObjectStore>(
        &mut self,
        store: &S,
        size: u64,
        etag: Option<&str>,
        chunk: u64,
    ) -> Result<()> {
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        self.size = self.fill_range(store, &bucket, &key, size, etag, chunk).await?;
        self.in_s3 = true;
        Ok(())
    }

    /// Writes bytes `0..size` of `bucket/key` into the staging file; returns how many there were.
    async fn fill_range<S: ObjectStore>(
        &self,
        store: &S,
        bucket: &str,
        key: &str,
        size: u64,
        etag: Option<&str>,
        chunk: u64,
    ) -> Result<u64> {
        let mut off = 0;
        while off < size {
            let end = (off + chunk).min(size);
            let data = store.get_range(bucket, key, off, end, etag).await?;
            if data.is_empty() {
                break;
            }
            self.changes.fetch_add(1, Ordering::SeqCst);
            self.file.write_all_at(&data, off).map_err(local)?;
            off += data.len() as u64;
        }
        Ok(off)
    }

    /// Before local reads or writes of a file filled by copy_file_range: brings the copied
    /// bytes into the staging file.
    pub async fn materialize<S: ObjectStore>(&mut self, store: &S, chunk: u64) -> Result<()> {
        let Some(src) = self.copied_from.clone() else { return Ok(()) };
        let got = self.fill_range(store, &src.bucket, &src.key, src.len, src.etag.as_deref(), chunk).await?;
        if got != src.len {
            return Err(Error::Store(StoreError::PreconditionFailed));
        }
        self.copied_from = None;
        self.size = got;
        self.seq_end = 0;
        self.cur = None;
        Ok(())
    }

    /// A multipart upload is under way for a sequential writer.
    pub fn streaming(&self) -> bool {
        self.stream.is_some()
    }

    pub async fn read(&mut self, offset: u64, len: u32) -> Result<Bytes> {
        if offset >= self.size {
            return Ok(Bytes::new());
        }
        let n = (u64::from(len)).min(self.size - offset) as usize;
        let mut buf = vec![0u8; n];
        let mut done = 0;
        while done < n {
            let got = self.file.read_at(&mut buf[done..], offset + done as u64).map_err(local)?;
            if got == 0 {
                break;
            }
            done += got;
        }
        buf.truncate(done);
        Ok(buf.into())
    }

    /// Writes `data` at `offset`; a sequential writer's completed parts start uploading.
    pub async fn write<S: ObjectStore>(
        &mut self,
        store: &Arc<S>,
        cfg: &WriteConfig,
        memory: &MemoryLimiter,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        self.check_broken()?;
        let end = offset + data.len() as u64;
        if end > MAX_OBJECT {
            return Err(Error::FileTooLarge);
        }
        self.dirty = true;
        self.changes.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.file.write_all_at(data, offset) {
            return Err(self.staging_failed(e));
        }
        if offset != self.seq_end {
            // Random writes: whatever went up early is stale.
            self.cancel_stream(store);
            self.size = self.size.max(end);
            return Ok(());
        }
        let mut rest = data;
        while !rest.is_empty() {
            if self.cur.as_ref().is_some_and(|b| b.spare() == 0) {
                // More is coming: the full buffer is a part (this starts a multipart upload).
                self.hand_off(store, cfg, memory).await?;
            }
            if self.cur.is_none() {
                let n = self.stream.as_ref().map_or(0, |s| s.next_part);
                self.cur = Some(PoolBuf::new(cfg.part_size(n) as usize));
                self.cur_start = self.seq_end;
            }
            let n = self.cur.as_mut().expect("just set").push(rest);
            rest = &rest[n..];
            self.seq_end += n as u64;
        }
        self.size = self.size.max(end);
        Ok(())
    }

    /// The staging file, its change counter, and the counter's value now: bytes read from the
    /// file are the ones it holds now if the counter still has that value after the read.
    pub fn contents(&self) -> (Arc<File>, Arc<AtomicU64>, u64) {
        (self.file.clone(), self.changes.clone(), self.changes.load(Ordering::SeqCst))
    }

    /// Sets the size; a file filled by copy_file_range must be materialized first unless `size`
    /// is 0.
    pub async fn truncate<S: ObjectStore>(&mut self, store: &Arc<S>, size: u64) -> Result<()> {
        debug_assert!(self.copied_from.is_none() || size == 0);
        self.check_broken()?;
        if size > MAX_OBJECT {
            return Err(Error::FileTooLarge);
        }
        self.copied_from = None;
        self.changes.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.file.set_len(size) {
            return Err(self.staging_failed(e));
        }
        self.size = size;
        self.dirty = true;
        if size < self.seq_end || self.stream.as_ref().is_some_and(|s| s.sent_to > size) {
            self.cancel_stream(store);
        } else if size > self.seq_end {
            self.seq_end = 0; // a hole: no longer written in order
            self.cur = None;
        }
        Ok(())
    }

    /// Drops an early multipart upload (aborting it in the background) and leaves sequential
    /// mode (every byte is in the staging file already).
    pub fn cancel_stream<S: ObjectStore>(&mut self, store: &Arc<S>) {
        self.cur = None;
        let had_stream = self.stream.is_some();
        if let Some(mut s) = self.stream.take() {
            self.progress.sent.store(0, Ordering::Relaxed);
            s.parts.abort_all();
            let store = store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.abort_multipart(&s.bucket, &s.key, &s.upload_id).await {
                    warn!(bucket = &*s.bucket, key = s.key, error = %e, "aborting a cancelled multipart upload failed");
                }
            });
        }
        self.seq_end = 0;
        if had_stream {
            self.update_journal();
        }
    }

    /// Starts the multipart upload if there is none yet.
    async fn ensure_stream<S: ObjectStore>(&mut self, store: &Arc<S>) -> Result<()> {
        if self.stream.is_none() {
            let put = self.meta.to_put_streaming(&self.key, &self.extra);
            let upload_id = store.create_multipart(&self.bucket, &self.key, &put).await?;
            debug!(bucket = &*self.bucket, key = self.key, "started multipart upload");
            self.stream = Some(Stream {
                bucket: self.bucket.clone(),
                key: self.key.clone(),
                upload_id,
                next_part: 0,
                sent_to: 0,
                parts: JoinSet::new(),
                done: Vec::new(),
                meta: self.meta,
                extra: self.extra.clone(),
            });
            // A crash from here on leaves an upload to abort: the journal names it.
            self.update_journal();
        }
        Ok(())
    }

    /// Sends `data` (file bytes from `start`) as the next part, once fewer than
    /// `cfg.concurrency` parts are in flight and the upload memory budget allows.
    async fn send_part<S: ObjectStore>(
        &mut self,
        store: &Arc<S>,
        cfg: &WriteConfig,
        memory: &MemoryLimiter,
        start: u64,
        data: Bytes,
        guard: Option<Arc<OwnedSemaphorePermit>>,
    ) -> Result<()> {
        let len = data.len() as u64;
        let permit = match guard {
            Some(g) => g,
            None => Arc::new(memory.take(len).await),
        };
        let s = self.stream.as_mut().expect("a stream");
        if s.next_part >= MAX_PARTS {
            return Err(Error::Store(StoreError::Server {
                status: None,
                code: "TooLarge".into(),
                message: "file exceeds 10,000 parts".into(),
            }));
        }
        // Collect finished parts, and fail early if one failed.
        while s.parts.len() >= cfg.concurrency {
            match s.parts.join_next().await {
                Some(Ok(Ok(done))) => s.done.push(done),
                Some(Ok(Err(e))) => return Err(e.into()),
                Some(Err(e)) => return Err(Error::Io { errno: libc::EIO, msg: format!("upload task: {e}") }),
                None => break,
            }
        }
        let (store, bucket, key, id) = (store.clone(), s.bucket.clone(), s.key.clone(), s.upload_id.clone());
        let part = s.next_part + 1;
        let progress = self.progress.clone();
        s.parts.spawn(async move {
            let _permit = permit;
            let etag = store.upload_part(&bucket, &key, &id, part, data).await?;
            progress.sent.fetch_add(len, Ordering::Relaxed);
            Ok((part, etag))
        });
        s.next_part += 1;
        s.sent_to = start + len;
        Ok(())
    }

    /// Hands the sequential buffer to a part upload: its bytes go to the staging file, then up.
    async fn hand_off<S: ObjectStore>(
        &mut self,
        store: &Arc<S>,
        cfg: &WriteConfig,
        memory: &MemoryLimiter,
    ) -> Result<()> {
        let Some(buf) = self.cur.take() else { return Ok(()) };
        if buf.is_empty() {
            return Ok(());
        }
        let start = self.cur_start;
        let data = buf.freeze();
        // The bytes' budget, held until the upload is done.
        let guard = Arc::new(memory.take(data.len() as u64).await);
        self.ensure_stream(store).await?;
        self.send_part(store, cfg, memory, start, data, Some(guard)).await
    }

    /// Uploads the whole file from the staging file as a multipart upload (a file not written
    /// in order).
    async fn stream_from_file<S: ObjectStore>(
        &mut self,
        store: &Arc<S>,
        cfg: &WriteConfig,
        memory: &MemoryLimiter,
    ) -> Result<()> {
        self.ensure_stream(store).await?;
        loop {
            let s = self.stream.as_ref().expect("a stream");
            let (n, start) = (s.next_part, s.sent_to);
            if start >= self.size {
                return Ok(());
            }
            let len = cfg.part_size(n).min(self.size - start);
            let data = read_part(&self.file, start, len).await?;
            self.send_part(store, cfg, memory, start, data, None).await?;
        }
    }

    /// Uploads the file; returns the new object's ETag, and whether its metadata is older than
    /// the file's (a multipart upload takes its metadata when it starts; the caller fixes it with
    /// a CopyObject).
    pub async fn upload<S: ObjectStore>(
        &mut self,
        store: &Arc<S>,
        cfg: &WriteConfig,
        memory: &MemoryLimiter,
    ) -> Result<(PutResult, bool)> {
        self.check_broken()?;
        if self.stream.is_some() && self.seq_end != self.size {
            // Not all of the file was written in order after all (a hole from ftruncate).
            self.cancel_stream(store);
        }
        let put = self.meta.to_put(&self.key, &self.extra);
        let stale =
            |st: &Staged| st.stream.as_ref().is_some_and(|s| !s.meta.streams_as(&st.meta) || s.extra != st.extra);
        let mut stale_meta = stale(self);
        let result = if self.stream.is_some() {
            // Sequential: the buffered tail is the last part.
            match self.hand_off(store, cfg, memory).await {
                Ok(()) => self.finish_stream(store).await,
                Err(e) => Err(e),
            }
        } else if self.size <= cfg.part_size(0) {
            let whole = self.cur.as_ref().is_some_and(|b| self.cur_start == 0 && b.len() as u64 == self.size);
            let data = if whole {
                self.cur.take().expect("checked").freeze()
            } else {
                read_part(&self.file, 0, self.size).await?
            };
            store.put_object(&self.bucket, &self.key, data, &put).await.map_err(Error::from)
        } else {
            // Not written in order: send the whole file now from the staging file.
            self.cur = None;
            let sent = self.stream_from_file(store, cfg, memory).await;
            stale_meta = stale(self);
            match sent {
                Ok(()) => self.finish_stream(store).await,
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(r) => {
                self.progress.sent.store(self.size, Ordering::Relaxed);
                self.dirty = false;
                self.failed = false;
                self.in_s3 = true;
                self.seq_end = 0;
                self.cur = None;
                self.based_on(r.etag.as_deref());
                self.update_journal();
                Ok((r, stale_meta))
            }
            Err(e) => {
                // Every byte is in the staging file already; the journal loses the upload id
                // once the abort is sent.
                self.failed = true;
                self.cancel_stream(store);
                Err(e)
            }
        }
    }

    async fn finish_stream<S: ObjectStore>(&mut self, store: &Arc<S>) -> Result<PutResult> {
        let mut s = self.stream.take().expect("a stream");
        let result = async {
            while let Some(r) = s.parts.join_next().await {
                match r {
                    Ok(Ok(done)) => s.done.push(done),
                    Ok(Err(e)) => return Err(Error::from(e)),
                    Err(e) => return Err(Error::Io { errno: libc::EIO, msg: format!("upload task: {e}") }),
                }
            }
            if s.sent_to != self.size {
                return Err(Error::Io { errno: libc::EIO, msg: "file changed during upload".into() });
            }
            let mut parts = std::mem::take(&mut s.done);
            parts.sort();
            Ok(store.complete_multipart(&s.bucket, &s.key, &s.upload_id, &parts).await?)
        }
        .await;
        if result.is_err() {
            self.stream = Some(s);
        }
        result
    }

    /// Removes the staging file and its journal (after a successful upload, or when nothing
    /// is to be kept).
    pub fn discard(&self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(Journal::path_for(&self.path));
    }
}

async fn read_part(file: &Arc<File>, start: u64, len: u64) -> Result<Bytes> {
    let file = file.clone();
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, start).map(|_| Bytes::from(buf))
    })
    .await
    .map_err(|e| Error::Io { errno: libc::EIO, msg: format!("read task: {e}") })?
    .map_err(local)
}

fn io_err(e: std::io::Error, what: &str) -> Error {
    Error::Io { errno: e.raw_os_error().unwrap_or(libc::EIO), msg: format!("{what}: {e}") }
}

fn local(e: std::io::Error) -> Error {
    Error::Io { errno: e.raw_os_error().unwrap_or(libc::EIO), msg: e.to_string() }
}
