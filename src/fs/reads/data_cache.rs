//! The local data cache (`--data-cache DIR`): blocks of object data on local disk, so that
//! reading an object version again (another process, after a remount, a file too large for the
//! page cache) costs no GetObject.
//!
//! What it owns: the `blocks/` and `tmp/` directories under DIR and the index of what is there.
//!
//! - A block is a [`BLOCK`]-aligned range of one object version, named by the MD5 of its
//!   identity: the service (endpoint), bucket, key, ETag and block number. A changed object has
//!   another ETag, so its old blocks can never be served for it. Which ETag is current is the
//!   reader's business: the one its open saw (a HeadObject or a listing within the TTL).
//! - A block file is a header (magic, data length, CRC32C of the data, the identity in full) and
//!   the data. A read checks all of it: a file damaged on disk, cut short by a crash or (should
//!   two identities share a hash) of another block is removed and counted, and the block is
//!   fetched from S3 again. A damaged disk never damages a read.
//! - Blocks are written by one thread, off the read path, from a bounded queue (when it is full
//!   the block is not cached: the cache is best effort, the read never waits for it). Each is
//!   written whole to `tmp/` and renamed into place, so a reader (of this mount or another one
//!   sharing the directory) finds a complete block or none.
//! - Bounded: before a write would take the cache past its size, or leave less than
//!   [`KEEP_FREE_PERCENT`] of its file system free, the least recently used blocks are removed
//!   (down to 90% of the size, so that eviction passes are rare). Last use is the file's mtime
//!   (set again when a hit finds it more than a minute old), so the order survives a remount;
//!   in memory it is kept to the nanosecond, so blocks read within one second are still evicted
//!   in the order they were used.
//! - The index in memory is compact (about 48 bytes a block: a million blocks, 1 TiB of data,
//!   take about 48 MiB) and rebuilt from the directory at start and every [`RESCAN_EVERY`],
//!   which also brings in what other mounts sharing the directory wrote. Each mount bounds what
//!   it knows of; between rescans, two mounts sharing a directory may together pass the size by
//!   what the other wrote since.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use md5::{Digest, Md5};
use tracing::{debug, info, warn};

use crate::util::private_dir::create_private;

/// Size of a block (the last block of an object is shorter).
pub const BLOCK: u64 = 1 << 20;
/// The file system holding the cache keeps at least this share free.
pub const KEEP_FREE_PERCENT: u64 = 5;
/// Without `--data-cache-size`, the cache takes at most this share of what its file system has
/// free at start (counting what the cache holds already as free).
pub const DEFAULT_SHARE_PERCENT: u64 = 50;
/// How often the index is rebuilt from the directory.
pub const RESCAN_EVERY: Duration = Duration::from_secs(600);

const MAGIC: &[u8; 8] = b"s3dblk1\n";
/// Magic, data length, CRC32C of the data, identity length.
const HEADER: usize = 8 + 4 + 4 + 4;
/// A hit sets the file's mtime again when it is older than this (seconds).
const TOUCH_AFTER: u32 = 60;
/// Blocks waiting to be written (each up to a BLOCK of memory).
const QUEUE: usize = 64;
/// Files in `tmp/` older than this were left by a crash.
const TMP_MAX_AGE: Duration = Duration::from_secs(3600);

type BlockId = [u8; 16];

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Bytes of the file (header and data).
    size: u32,
    /// Last use, in seconds since the Unix epoch (the file's mtime, moved at most once a
    /// [`TOUCH_AFTER`]).
    used: u32,
    /// Last use in this process, in nanoseconds since the Unix epoch (from the file's mtime
    /// when found by a scan): what eviction orders by, so that blocks read within the same
    /// second still go least recently used first.
    last: u64,
}

#[derive(Default)]
struct Index {
    blocks: HashMap<BlockId, Entry>,
    bytes: u64,
}

impl Index {
    fn insert(&mut self, id: BlockId, e: Entry) {
        if let Some(old) = self.blocks.insert(id, e) {
            self.bytes -= u64::from(old.size);
        }
        self.bytes += u64::from(e.size);
    }

    fn remove(&mut self, id: &BlockId) {
        if let Some(old) = self.blocks.remove(id) {
            self.bytes -= u64::from(old.size);
        }
    }
}

/// What `s3drive status` and the metrics show.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Bytes of block files the index knows of, and its limit.
    pub bytes: u64,
    pub limit: u64,
    pub blocks: u64,
    /// Blocks read from the cache, and their bytes.
    pub hits: u64,
    pub bytes_served: u64,
    /// Blocks looked for and not there (fetched from S3).
    pub misses: u64,
    pub blocks_written: u64,
    pub evicted: u64,
    /// Blocks that failed their check and were fetched again.
    pub corrupt: u64,
    /// Blocks not cached: the queue was full, or there was no room.
    pub skipped: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    bytes_served: AtomicU64,
    misses: AtomicU64,
    blocks_written: AtomicU64,
    evicted: AtomicU64,
    corrupt: AtomicU64,
    skipped: AtomicU64,
}

/// One object version whose blocks the cache may hold: the identity all its blocks share.
#[derive(Debug, Clone)]
pub struct Version(Arc<[u8]>);

enum Job {
    Put {
        ident: Vec<u8>,
        data: Bytes,
    },
    /// A file uploaded through the mount: its blocks are copied from `file` as long as `changes`
    /// still reads `seen` after each read.
    Seed {
        version: Version,
        file: Arc<File>,
        changes: Arc<AtomicU64>,
        seen: u64,
        size: u64,
    },
    /// Answered once every job before it is done (tests).
    Flush(SyncSender<()>),
}

struct Inner {
    dir: PathBuf,
    service: String,
    /// Bytes at most; without a configured size, 0 until the first scan (the default depends
    /// on what the cache holds), so nothing is written or seeded before it.
    limit: AtomicU64,
    configured_limit: Option<u64>,
    index: Mutex<Index>,
    counters: Counters,
    tmp_seq: AtomicU64,
}

/// The cache; see the module documentation.
pub struct DataCache {
    inner: Arc<Inner>,
    queue: SyncSender<Job>,
}

impl std::fmt::Debug for DataCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataCache").field("dir", &self.inner.dir).finish_non_exhaustive()
    }
}

fn now_secs() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn hex(id: &BlockId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<u8> {
    u8::from_str_radix(s, 16).ok()
}

/// Free and total bytes of the file system holding `dir`.
fn disk_space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a zeroed statvfs is a valid out-parameter; `c` is a NUL-terminated path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let frsize = s.f_frsize as u64;
    Some((s.f_bavail as u64 * frsize, s.f_blocks as u64 * frsize))
}

impl DataCache {
    /// Opens (creating, private) the cache in `dir` for the objects of `service`, at most
    /// `limit` bytes (default: see [`DEFAULT_SHARE_PERCENT`]). The index is built by the
    /// writer thread in the background; until then hits are served and nothing is written.
    pub fn open(dir: &Path, service: &str, limit: Option<u64>) -> std::io::Result<DataCache> {
        crate::util::private_dir::secure_dir(dir)?;
        create_private(&dir.join("blocks"))?;
        create_private(&dir.join("tmp"))?;
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            service: service.to_string(),
            limit: AtomicU64::new(limit.unwrap_or(0)),
            configured_limit: limit,
            index: Mutex::default(),
            counters: Counters::default(),
            tmp_seq: AtomicU64::new(0),
        });
        let (queue, jobs) = std::sync::mpsc::sync_channel(QUEUE);
        let writer = inner.clone();
        std::thread::Builder::new().name("s3drive-cache".into()).spawn(move || writer.run(jobs))?;
        Ok(DataCache { inner, queue })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The identity of one object version's blocks.
    pub fn version(&self, bucket: &str, key: &str, etag: &str) -> Version {
        let mut v = Vec::with_capacity(self.inner.service.len() + bucket.len() + key.len() + etag.len() + 16);
        for part in [self.inner.service.as_str(), bucket, key, etag] {
            v.extend_from_slice(&(part.len() as u32).to_le_bytes());
            v.extend_from_slice(part.as_bytes());
        }
        Version(v.into())
    }

    /// Block `index` of `version`, which holds `len` bytes, if the cache has it intact (tests;
    /// reads use `read_into`).
    #[cfg(test)]
    pub fn get(&self, version: &Version, index: u64, len: usize) -> Option<Bytes> {
        let mut out = vec![0u8; len];
        self.read_into(version, index, &mut out).then(|| out.into())
    }

    /// Reads block `index` of `version` into `out` (its length is the block's), and whether
    /// the cache had it intact (if not, `out` holds nothing of use). Blocking (file I/O): call
    /// it off the async threads.
    pub fn read_into(&self, version: &Version, index: u64, out: &mut [u8]) -> bool {
        self.inner.read_into(&block_ident(version, index), out)
    }

    /// Caches block `index` of `version` in the background (unless the queue is full).
    pub fn put(&self, version: &Version, index: u64, data: Bytes) {
        let job = Job::Put { ident: block_ident(version, index), data };
        if let Err(TrySendError::Full(_)) = self.queue.try_send(job) {
            self.inner.counters.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Caches the `size` bytes of `file`, just uploaded as `version`, in the background, unless
    /// they would take more than a quarter of the cache. Each block is copied only while
    /// `changes` still reads `seen` (nothing has written to the file since the upload).
    pub fn seed(&self, version: Version, file: Arc<File>, changes: Arc<AtomicU64>, seen: u64, size: u64) {
        if size == 0 || size > self.inner.limit.load(Ordering::Relaxed) / 4 {
            return;
        }
        if let Err(TrySendError::Full(_)) = self.queue.try_send(Job::Seed { version, file, changes, seen, size }) {
            self.inner.counters.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until every block handed to [`put`](Self::put) or [`seed`](Self::seed) so far is
    /// written (or skipped).
    pub fn flush(&self) {
        self.flush_within(Duration::MAX);
    }

    /// [`flush`](Self::flush), waiting at most about `limit`.
    pub fn flush_within(&self, limit: Duration) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let deadline = Instant::now().checked_add(limit);
        let mut job = Job::Flush(tx);
        // The queue may be full: wait for room, within the limit.
        loop {
            match self.queue.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(j)) if deadline.is_none_or(|d| Instant::now() < d) => {
                    job = j;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        match deadline {
            None => {
                let _ = rx.recv();
            }
            Some(d) => {
                let _ = rx.recv_timeout(d.saturating_duration_since(Instant::now()));
            }
        }
    }

    pub fn report(&self) -> Report {
        let c = &self.inner.counters;
        let (bytes, blocks) = {
            let idx = self.inner.index.lock().unwrap();
            (idx.bytes, idx.blocks.len() as u64)
        };
        Report {
            bytes,
            limit: self.inner.limit.load(Ordering::Relaxed),
            blocks,
            hits: c.hits.load(Ordering::Relaxed),
            bytes_served: c.bytes_served.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            blocks_written: c.blocks_written.load(Ordering::Relaxed),
            evicted: c.evicted.load(Ordering::Relaxed),
            corrupt: c.corrupt.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
        }
    }
}

/// A block's identity: its version's and the block number.
fn block_ident(version: &Version, index: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(version.0.len() + 8);
    v.extend_from_slice(&version.0);
    v.extend_from_slice(&index.to_le_bytes());
    v
}

fn block_id(ident: &[u8]) -> BlockId {
    Md5::digest(ident).into()
}

fn crc32c(data: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32
}

/// Whether a block file's header and identity (`head`) are those of block `ident` of `len` bytes.
fn check_header(head: &[u8], ident: &[u8], len: usize) -> bool {
    let word = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().unwrap()) as usize;
    &head[..8] == MAGIC && word(8) == len && word(16) == ident.len() && &head[HEADER..] == ident
}

impl Inner {
    fn block_path(&self, id: &BlockId) -> PathBuf {
        let h = hex(id);
        self.dir.join("blocks").join(&h[..2]).join(&h[2..])
    }

    fn read_into(&self, ident: &[u8], out: &mut [u8]) -> bool {
        let id = block_id(ident);
        let path = self.block_path(&id);
        let Ok(mut file) = File::open(&path) else {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        // The header and identity, then the data straight into `out`, then nothing more.
        let mut head = vec![0u8; HEADER + ident.len()];
        let intact = file.read_exact(&mut head).is_ok()
            && check_header(&head, ident, out.len())
            && file.read_exact(out).is_ok()
            && file.read(&mut [0u8; 1]).is_ok_and(|n| n == 0)
            && crc32c(out).to_le_bytes() == head[12..16];
        if !intact {
            warn!(file = %path.display(), "data cache: a block failed its check; removed, fetching it again");
            let _ = std::fs::remove_file(&path);
            self.index.lock().unwrap().remove(&id);
            self.counters.corrupt.fetch_add(1, Ordering::Relaxed);
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_served.fetch_add(out.len() as u64, Ordering::Relaxed);
        let now = now_secs();
        let touch = {
            let mut idx = self.index.lock().unwrap();
            let last = nanos(SystemTime::now());
            match idx.blocks.get_mut(&id) {
                Some(e) if now.saturating_sub(e.used) <= TOUCH_AFTER => {
                    e.last = last;
                    false
                }
                Some(e) => {
                    e.used = now;
                    e.last = last;
                    true
                }
                // Written by another mount sharing the directory since the last scan.
                None => {
                    idx.insert(id, Entry { size: (head.len() + out.len()) as u32, used: now, last });
                    true
                }
            }
        };
        if touch {
            let _ = file.set_modified(SystemTime::now());
        }
        true
    }

    /// The writer thread: builds the index, then writes blocks as they come.
    fn run(&self, jobs: Receiver<Job>) {
        self.rescan();
        if self.configured_limit.is_none() {
            let held = self.index.lock().unwrap().bytes;
            let free = disk_space(&self.dir).map_or(0, |(free, _)| free);
            self.limit.store((free + held) / 100 * DEFAULT_SHARE_PERCENT, Ordering::Relaxed);
        }
        let limit = self.limit.load(Ordering::Relaxed);
        let (bytes, blocks) = {
            let idx = self.index.lock().unwrap();
            (idx.bytes, idx.blocks.len())
        };
        info!(dir = %self.dir.display(), blocks, size = %crate::stats::human(bytes), limit = %crate::stats::human(limit), "data cache ready");
        self.make_room(0);
        let mut scanned = Instant::now();
        loop {
            match jobs.recv_timeout(RESCAN_EVERY) {
                Ok(Job::Put { ident, data }) => self.write(&ident, &data),
                Ok(Job::Seed { version, file, changes, seen, size }) => {
                    self.seed(&version, &file, &changes, seen, size)
                }
                Ok(Job::Flush(done)) => {
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if scanned.elapsed() >= RESCAN_EVERY {
                self.rescan();
                scanned = Instant::now();
            }
        }
    }

    fn seed(&self, version: &Version, file: &File, changes: &AtomicU64, seen: u64, size: u64) {
        use std::os::unix::fs::FileExt;
        let mut data = vec![0u8; BLOCK as usize];
        for i in 0..size.div_ceil(BLOCK) {
            let len = (size - i * BLOCK).min(BLOCK) as usize;
            if file.read_exact_at(&mut data[..len], i * BLOCK).is_err() || changes.load(Ordering::SeqCst) != seen {
                debug!("data cache: a file changed after its upload; not cached");
                return;
            }
            self.write(&block_ident(version, i), &data[..len]);
        }
    }

    fn write(&self, ident: &[u8], data: &[u8]) {
        let id = block_id(ident);
        if self.index.lock().unwrap().blocks.contains_key(&id) {
            return; // fetched twice, or written by another mount and found since
        }
        let size = (HEADER + ident.len() + data.len()) as u64;
        if !self.make_room(size) {
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join("tmp").join(format!("{}-{seq}", std::process::id()));
        let path = self.block_path(&id);
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            let mut header = Vec::with_capacity(HEADER + ident.len());
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&(data.len() as u32).to_le_bytes());
            header.extend_from_slice(&crc32c(data).to_le_bytes());
            header.extend_from_slice(&(ident.len() as u32).to_le_bytes());
            header.extend_from_slice(ident);
            f.write_all(&header)?;
            f.write_all(data)?;
            drop(f);
            if let Err(e) = std::fs::rename(&tmp, &path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(e);
                }
                create_private(path.parent().expect("blocks/xx/name"))?;
                std::fs::rename(&tmp, &path)?;
            }
            Ok::<_, std::io::Error>(())
        })();
        match written {
            Ok(()) => {
                let last = nanos(SystemTime::now());
                self.index.lock().unwrap().insert(id, Entry { size: size as u32, used: now_secs(), last });
                self.counters.blocks_written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                debug!(error = %e, "data cache: a block could not be written");
            }
        }
    }

    /// Evicts until `size` more bytes fit, within the limit and the disk's free share. False
    /// when they cannot fit.
    fn make_room(&self, size: u64) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        if size > limit {
            return false;
        }
        let bytes = self.index.lock().unwrap().bytes;
        if bytes + size > limit {
            self.evict_to((limit / 10 * 9).min(limit - size));
        }
        let Some((free, total)) = disk_space(&self.dir) else { return true };
        let floor = total / 100 * KEEP_FREE_PERCENT;
        if free >= floor + size {
            return true;
        }
        // Give back what the disk lacks, and a tenth of the cache more so that this is rare.
        let bytes = self.index.lock().unwrap().bytes;
        self.evict_to(bytes.saturating_sub(floor + size - free + bytes / 10));
        disk_space(&self.dir).is_some_and(|(free, _)| free >= floor + size)
    }

    /// Removes the least recently used blocks until the index holds at most `target` bytes.
    fn evict_to(&self, target: u64) {
        let victims: Vec<BlockId> = {
            let mut idx = self.index.lock().unwrap();
            if idx.bytes <= target {
                return;
            }
            let mut all: Vec<(u64, BlockId, u32)> = idx.blocks.iter().map(|(id, e)| (e.last, *id, e.size)).collect();
            all.sort_unstable();
            let mut over = idx.bytes - target;
            let mut victims = Vec::new();
            for (_, id, size) in all {
                if over == 0 {
                    break;
                }
                over = over.saturating_sub(u64::from(size));
                idx.remove(&id);
                victims.push(id);
            }
            victims
        };
        for id in &victims {
            let _ = std::fs::remove_file(self.block_path(id));
        }
        self.counters.evicted.fetch_add(victims.len() as u64, Ordering::Relaxed);
        debug!(blocks = victims.len(), "data cache: evicted");
    }

    /// Rebuilds the index from the directory, and removes what crashes left in `tmp/`.
    fn rescan(&self) {
        let mut found: HashMap<BlockId, Entry> = HashMap::new();
        let blocks = self.dir.join("blocks");
        for sub in std::fs::read_dir(&blocks).into_iter().flatten().flatten() {
            let name = sub.file_name();
            let Some(first) = name.to_str().filter(|n| n.len() == 2).and_then(unhex) else { continue };
            for file in std::fs::read_dir(sub.path()).into_iter().flatten().flatten() {
                let name = file.file_name();
                let Some(rest) = name.to_str().filter(|n| n.len() == 30) else { continue };
                let mut id = [first; 16];
                if !(0..15).all(|i| unhex(&rest[2 * i..2 * i + 2]).map(|b| id[i + 1] = b).is_some()) {
                    continue;
                }
                let Ok(meta) = file.metadata() else { continue };
                found.insert(
                    id,
                    Entry {
                        size: meta.len().min(u64::from(u32::MAX)) as u32,
                        used: meta.mtime().max(0) as u32,
                        last: meta.modified().map_or(0, nanos),
                    },
                );
            }
        }
        for f in std::fs::read_dir(self.dir.join("tmp")).into_iter().flatten().flatten() {
            let old =
                f.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().unwrap_or_default() > TMP_MAX_AGE);
            if old {
                let _ = std::fs::remove_file(f.path());
            }
        }
        let mut idx = self.index.lock().unwrap();
        let mut fresh = Index::default();
        for (id, mut e) in found {
            if let Some(known) = idx.blocks.get(&id) {
                e.used = e.used.max(known.used);
                e.last = e.last.max(known.last);
            }
            fresh.insert(id, e);
        }
        *idx = fresh;
    }
}

#[cfg(test)]
mod tests;
