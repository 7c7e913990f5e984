//! The metadata index: what s3drive knows of objects' user metadata (mode, owner, mtime,
//! symlink-ness, user xattrs, Content-Type), per object version, so that a listed file whose
//! version is known is shown right without a HeadObject.
//!
//! Two tiers. An LRU in memory holds what this mount learned or used. With a cache directory, a
//! SQLite file there (`metadata-v1.sqlite`) keeps it across mounts and is shared by every mount
//! on the host (WAL mode, a busy timeout; writes are batched on a thread of its own, so no FUSE
//! request waits for the disk to write). Entries come from HeadObject answers and from what
//! s3drive itself uploads or copies, never from listings, which carry no user metadata.
//!
//! An object version is its ETag together with its LastModified (to the second: listings give
//! milliseconds, HeadObject seconds). The ETag alone is not enough: S3 keeps a single-part
//! object's ETag through a metadata-replacing CopyObject, which is how s3drive, s3fs and rclone
//! change a mode, so another client's chmod would go unseen. An entry learned from our own
//! PutObject or CompleteMultipartUpload (whose answers carry no LastModified) matches by ETag
//! until a listing or HeadObject of that ETag shows its LastModified, which it then adopts.
//!
//! The file is a cache: bounded (past `max_entries` the least recently used go), and started
//! anew, with a log line, when it cannot be opened or read (corrupt, or another format).

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lru::LruCache;
use rusqlite::{Connection, params};
use tracing::{debug, warn};

use crate::fs::inode::Kind;
use crate::store::PutMeta;

/// Bucket and key.
pub type ObjectKey = (Arc<str>, String);

/// The file's name; a new layout gets a new name (and the old file is left to be removed).
const FILE_NAME: &str = "metadata-v1.sqlite";

/// Entries kept in memory.
const MEMORY_ENTRIES: usize = 256 * 1024;

/// Rows read from disk in one go when memory lacks a key: the key and those after it, the
/// order a listing's lookups come in. One query instead of one per file (a cold `ls -l` of a
/// folder the file does not know asked SQLite 5,000 times, for nothing).
const SCAN_ROWS: usize = 512;
/// How long a scan answers for its range (other mounts on the host may write rows meanwhile:
/// missing one costs a HeadObject, never a wrong answer), and how many are kept.
const SCAN_FOR: Duration = Duration::from_secs(5);
const SCANS_KEPT: usize = 16;
/// How long the writer gathers rows before one transaction writes them (each commit writes
/// whole pages: one row at a time cost a HeadObject's worth of CPU each).
const WRITE_GATHER: Duration = Duration::from_millis(50);

/// User metadata of one object version, learned from HeadObject or set by our own upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownMeta {
    pub etag: String,
    /// S3's LastModified of this version, when known (see the module doc).
    pub modified: Option<SystemTime>,
    pub kind: Kind,
    pub mtime: SystemTime,
    pub perm: Option<u16>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Every user metadata entry, and the Content-Type, when known exactly.
    pub put: PutMeta,
}

impl KnownMeta {
    /// What the index says of a directory without a marker object: it has no metadata (the
    /// mount's defaults are its truth). Kept in memory only.
    pub fn no_marker() -> KnownMeta {
        KnownMeta {
            etag: String::new(),
            modified: None,
            kind: Kind::File,
            mtime: UNIX_EPOCH,
            perm: None,
            uid: None,
            gid: None,
            put: PutMeta::default(),
        }
    }

    /// Whether this is [`KnownMeta::no_marker`].
    pub fn is_no_marker(&self) -> bool {
        self.etag.is_empty()
    }

    /// Whether this describes the version with `etag` and `modified` (`None`: not known).
    pub fn describes(&self, etag: &str, modified: Option<SystemTime>) -> bool {
        self.etag == etag
            && match (self.modified, modified) {
                (Some(a), Some(b)) => secs(a) == secs(b),
                _ => true,
            }
    }
}

fn secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    }
}

fn from_secs(s: i64) -> SystemTime {
    if s >= 0 { UNIX_EPOCH + Duration::from_secs(s as u64) } else { UNIX_EPOCH - Duration::from_secs(s.unsigned_abs()) }
}

/// Counters for `s3drive status` and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    /// Versions found on disk that memory did not hold.
    pub disk_hits: u64,
    /// Versions sent to the disk to be written.
    pub disk_entries_written: u64,
    /// Queries that read rows from the disk (each up to [`SCAN_ROWS`]).
    pub disk_reads: u64,
}

pub struct MetaIndex {
    memory: Mutex<LruCache<ObjectKey, KnownMeta>>,
    disk: Option<Disk>,
    stats: Mutex<IndexStats>,
    /// Recent reads of disk ranges, newest last (see [`SCAN_ROWS`]).
    scans: Mutex<VecDeque<Scan>>,
}

/// Rows of one bucket from `from` through `to` (`None`: to the end), as the disk had them at
/// `at`; a key in the range that `rows` lacks was not on disk.
struct Scan {
    bucket: Arc<str>,
    from: String,
    to: Option<String>,
    at: Instant,
    rows: HashMap<String, KnownMeta>,
}

impl Scan {
    fn covers(&self, bucket: &str, key: &str) -> bool {
        &*self.bucket == bucket
            && self.from.as_str() <= key
            && self.to.as_deref().is_none_or(|t| key <= t)
            && self.at.elapsed() < SCAN_FOR
    }
}

struct Disk {
    path: PathBuf,
    /// Which service the keys belong to (the endpoint), so two services' buckets of one name
    /// never share entries.
    service: String,
    reader: Mutex<Connection>,
    writes: Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

enum Op {
    Put(ObjectKey, KnownMeta),
    Remove(ObjectKey),
    /// A disk hit: the entry was used now (for LRU eviction).
    Touch(ObjectKey),
    /// Everything sent before is written once this is answered.
    Sync(mpsc::Sender<()>),
}

impl MetaIndex {
    /// An index for `service`, kept on disk in `dir` (created 0700 if missing) when given,
    /// bounded to `max_entries` there. A file that cannot be used is started anew; a directory
    /// that cannot be used leaves the index in memory only, with a warning.
    pub fn open(dir: Option<&Path>, service: &str, max_entries: usize) -> MetaIndex {
        let disk = dir.filter(|_| max_entries > 0).and_then(|d| match Disk::open(d, service, max_entries) {
            Ok(disk) => Some(disk),
            Err(e) => {
                warn!(dir = %d.display(), error = %e, "the metadata index cannot be kept on disk; it stays in memory");
                None
            }
        });
        MetaIndex {
            memory: Mutex::new(LruCache::new(NonZeroUsize::new(MEMORY_ENTRIES).unwrap())),
            disk,
            stats: Mutex::default(),
            scans: Mutex::default(),
        }
    }

    /// In memory only (unit tests, `--metadata-index-entries 0`).
    pub fn in_memory() -> MetaIndex {
        MetaIndex::open(None, "", 0)
    }

    pub fn path(&self) -> Option<&Path> {
        self.disk.as_ref().map(|d| d.path.as_path())
    }

    pub fn stats(&self) -> IndexStats {
        *self.stats.lock().unwrap()
    }

    /// What this mount last learned of `key`, whatever its version (memory only).
    pub fn latest(&self, bucket: &Arc<str>, key: &str) -> Option<KnownMeta> {
        self.memory.lock().unwrap().get(&(bucket.clone(), key.to_string())).cloned()
    }

    /// The metadata of the version of `key` with this ETag and LastModified, from memory or disk.
    pub fn version(&self, bucket: &Arc<str>, key: &str, etag: &str, modified: Option<SystemTime>) -> Option<KnownMeta> {
        let id = (bucket.clone(), key.to_string());
        let found = self.memory.lock().unwrap().get(&id).filter(|k| k.etag == etag).cloned();
        let mut k = match found {
            Some(k) => k,
            None => {
                let disk = self.disk.as_ref()?;
                let k = self.on_disk(disk, &id).filter(|k| k.etag == etag)?;
                disk.send(Op::Touch(id.clone()));
                self.stats.lock().unwrap().disk_hits += 1;
                self.memory.lock().unwrap().put(id.clone(), k.clone());
                k
            }
        };
        if !k.describes(etag, modified) {
            return None;
        }
        if k.modified.is_none() && modified.is_some() {
            k.modified = modified;
            self.learn(bucket, key, k.clone());
        }
        Some(k)
    }

    /// What the disk has of `id`: from a recent scan covering it, or from a new scan that
    /// starts at it.
    fn on_disk(&self, disk: &Disk, id: &ObjectKey) -> Option<KnownMeta> {
        {
            let mut scans = self.scans.lock().unwrap();
            if let Some(scan) = scans.iter_mut().rev().find(|s| s.covers(&id.0, &id.1)) {
                return scan.rows.remove(&id.1);
            }
        }
        self.stats.lock().unwrap().disk_reads += 1;
        let (mut rows, complete) = disk.scan(&id.0, &id.1, SCAN_ROWS)?;
        let to = if complete { None } else { rows.last().map(|(k, _)| k.clone()) };
        let found = rows.iter().position(|(k, _)| *k == id.1).map(|i| rows.swap_remove(i).1);
        let mut scans = self.scans.lock().unwrap();
        if scans.len() >= SCANS_KEPT {
            scans.pop_front();
        }
        let rows = rows.into_iter().filter_map(|(k, m)| Some((k, m?))).collect();
        scans.push_back(Scan { bucket: id.0.clone(), from: id.1.clone(), to, at: Instant::now(), rows });
        found.flatten()
    }

    /// Remembers what one object version carries.
    pub fn learn(&self, bucket: &Arc<str>, key: &str, k: KnownMeta) {
        let id = (bucket.clone(), key.to_string());
        self.memory.lock().unwrap().put(id.clone(), k.clone());
        if let Some(d) = self.disk.as_ref().filter(|_| !k.is_no_marker()) {
            d.send(Op::Put(id, k));
            self.stats.lock().unwrap().disk_entries_written += 1;
        }
    }

    /// `key` was deleted or renamed away through this mount: returns what was known of it.
    pub fn forget(&self, bucket: &Arc<str>, key: &str) -> Option<KnownMeta> {
        let id = (bucket.clone(), key.to_string());
        let k = self.memory.lock().unwrap().pop(&id);
        for scan in self.scans.lock().unwrap().iter_mut() {
            scan.rows.remove(key);
        }
        if let Some(d) = &self.disk {
            d.send(Op::Remove(id));
        }
        k
    }

    /// Waits until everything learned so far is on disk (unmount, tests).
    pub fn sync(&self) {
        let Some(d) = &self.disk else { return };
        let (tx, rx) = mpsc::channel();
        d.send(Op::Sync(tx));
        let _ = rx.recv_timeout(Duration::from_secs(10));
    }
}

impl Drop for MetaIndex {
    fn drop(&mut self) {
        if let Some(d) = &self.disk {
            d.writes.lock().unwrap().take(); // the writer drains what is queued and ends
            if let Some(h) = d.writer.lock().unwrap().take() {
                let _ = h.join();
            }
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    service TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    etag TEXT NOT NULL,
    modified INTEGER,
    meta BLOB NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (service, bucket, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS meta_used ON meta (used);
";

impl Disk {
    fn open(dir: &Path, service: &str, max_entries: usize) -> std::io::Result<Disk> {
        use std::os::unix::fs::OpenOptionsExt;
        crate::util::private_dir::create_private(dir)?;
        let path = dir.join(FILE_NAME);
        // Created private before SQLite opens it; its -wal and -shm files take its mode.
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
        let open = || -> rusqlite::Result<(Connection, Connection)> {
            let w = connect(&path)?;
            // Pages freed by a trim go back to the file system (`incremental_vacuum` after each
            // trim), so the file stays near its bound in bytes as well as in rows. Takes effect
            // on a new file only (a file from before keeps its pages for reuse).
            w.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
            w.execute_batch(SCHEMA)?;
            let _: i64 = w.query_row("SELECT count(*) FROM meta", [], |r| r.get(0))?;
            Ok((w, connect(&path)?))
        };
        let (writer, reader) = match open() {
            Ok(c) => c,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "the metadata index could not be read; starting a new one");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
                open().map_err(std::io::Error::other)?
            }
        };
        let (tx, rx) = mpsc::channel();
        let svc = service.to_string();
        let handle = std::thread::Builder::new()
            .name("s3drive-index".into())
            .spawn(move || write_loop(writer, rx, &svc, max_entries))?;
        Ok(Disk {
            path,
            service: service.to_string(),
            reader: Mutex::new(reader),
            writes: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        })
    }

    fn send(&self, op: Op) {
        if let Some(tx) = &*self.writes.lock().unwrap() {
            let _ = tx.send(op);
        }
    }

    /// Up to `limit` rows of `bucket` from `from` on, in key order (a row that does not decode
    /// is `None`), and whether they are all there are; `None` when the file cannot be read.
    #[allow(clippy::type_complexity)]
    fn scan(&self, bucket: &str, from: &str, limit: usize) -> Option<(Vec<(String, Option<KnownMeta>)>, bool)> {
        let conn = self.reader.lock().unwrap();
        let rows = conn
            .prepare_cached(
                "SELECT key, etag, modified, meta FROM meta WHERE service = ?1 AND bucket = ?2 AND key >= ?3
                 ORDER BY key LIMIT ?4",
            )
            .and_then(|mut s| {
                s.query_map(params![self.service, bucket, from, limit as i64], |r| {
                    let (etag, modified): (String, Option<i64>) = (r.get(1)?, r.get(2)?);
                    Ok((r.get::<_, String>(0)?, decode(&etag, modified.map(from_secs), &r.get::<_, Vec<u8>>(3)?)))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            });
        match rows {
            Ok(rows) => {
                let complete = rows.len() < limit;
                Some((rows, complete))
            }
            Err(e) => {
                debug!(error = %e, "metadata index read failed");
                None
            }
        }
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(5))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(c)
}

/// The writer thread: takes what is queued, writes it in one transaction, and keeps the file
/// near `max_entries` (trimmed whenever a tenth of it was written since the last count).
/// Ends when the sender is dropped, after writing what was queued.
fn write_loop(mut conn: Connection, rx: mpsc::Receiver<Op>, service: &str, max_entries: usize) {
    let trim_every = (max_entries / 10).clamp(1, 10_000);
    let mut since_count = trim_every; // count the rows after the first batch
    while let Ok(first) = rx.recv() {
        let mut ops = vec![first];
        let until = Instant::now() + WRITE_GATHER;
        // A Sync is answered without waiting for more.
        while ops.len() < 4096 && !matches!(ops.last(), Some(Op::Sync(_))) {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(op) => ops.push(op),
                Err(_) => break, // gathered long enough, or the index is closing
            }
        }
        let mut done = Vec::new();
        let mut written = 0;
        let r = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            // Distinct and increasing, so a trim removes exactly the oldest uses.
            let base = now_ms() * 10_000;
            for (i, op) in ops.into_iter().enumerate() {
                let now = base + i as i64;
                match op {
                    Op::Put(id, k) => {
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO meta (service, bucket, key, etag, modified, meta, used)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        )?
                        .execute(params![
                            service,
                            &*id.0,
                            id.1,
                            k.etag,
                            k.modified.map(secs),
                            encode(&k),
                            now
                        ])?;
                        written += 1;
                    }
                    Op::Remove(id) => {
                        tx.prepare_cached("DELETE FROM meta WHERE service = ?1 AND bucket = ?2 AND key = ?3")?
                            .execute(params![service, &*id.0, id.1])?;
                    }
                    Op::Touch(id) => {
                        tx.prepare_cached("UPDATE meta SET used = ?4 WHERE service = ?1 AND bucket = ?2 AND key = ?3")?
                            .execute(params![service, &*id.0, id.1, now])?;
                    }
                    Op::Sync(ack) => done.push(ack),
                }
            }
            tx.commit()
        })();
        if let Err(e) = r {
            debug!(error = %e, "metadata index write failed (the entries stay in memory)");
        }
        since_count += written;
        if since_count >= trim_every {
            since_count = 0;
            if let Err(e) = trim(&conn, max_entries) {
                debug!(error = %e, "metadata index trim failed");
            }
        }
        for ack in done {
            let _ = ack.send(());
        }
    }
}

/// Removes the least recently used rows beyond `max_entries`, down to nine tenths of it.
fn trim(conn: &Connection, max_entries: usize) -> rusqlite::Result<()> {
    let n: i64 = conn.query_row("SELECT count(*) FROM meta", [], |r| r.get(0))?;
    if n as usize > max_entries {
        let excess = n - (max_entries as i64 * 9 / 10);
        conn.execute(
            "DELETE FROM meta WHERE (service, bucket, key) IN
             (SELECT service, bucket, key FROM meta ORDER BY used LIMIT ?1)",
            params![excess],
        )?;
        conn.execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")?;
        debug!(removed = excess, "metadata index trimmed");
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

// ----- the row's blob: a versioned, length-prefixed layout -----

/// 2: the file kind (FIFOs, sockets, devices) replaced the symlink flag. Rows of another
/// version read as unknown (one HeadObject brings them back).
const BLOB_VERSION: u8 = 2;

fn encode(k: &KnownMeta) -> Vec<u8> {
    let mut b = vec![BLOB_VERSION];
    let flags = u8::from(k.perm.is_some()) << 1
        | u8::from(k.uid.is_some()) << 2
        | u8::from(k.gid.is_some()) << 3
        | u8::from(k.put.content_type.is_some()) << 4;
    b.push(flags);
    let (kind, rdev) = match k.kind {
        Kind::File => (0u8, 0),
        Kind::Symlink => (1, 0),
        Kind::Fifo => (2, 0),
        Kind::Socket => (3, 0),
        Kind::CharDev(d) => (4, d),
        Kind::BlockDev(d) => (5, d),
    };
    b.push(kind);
    b.extend_from_slice(&rdev.to_le_bytes());
    let (s, n) = match k.mtime.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(_) => (secs(k.mtime), 0),
    };
    b.extend_from_slice(&s.to_le_bytes());
    b.extend_from_slice(&n.to_le_bytes());
    b.extend_from_slice(&k.perm.unwrap_or(0).to_le_bytes());
    b.extend_from_slice(&k.uid.unwrap_or(0).to_le_bytes());
    b.extend_from_slice(&k.gid.unwrap_or(0).to_le_bytes());
    let put_str = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u32).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    put_str(&mut b, k.put.content_type.as_deref().unwrap_or(""));
    let mut md: Vec<_> = k.put.metadata.iter().collect();
    md.sort();
    b.extend_from_slice(&(md.len() as u32).to_le_bytes());
    for (name, value) in md {
        put_str(&mut b, name);
        put_str(&mut b, value);
    }
    b
}

fn decode(etag: &str, modified: Option<SystemTime>, b: &[u8]) -> Option<KnownMeta> {
    struct R<'a>(&'a [u8]);
    impl R<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(a)
        }
        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
        }
        fn str(&mut self) -> Option<String> {
            let n = self.u32()? as usize;
            String::from_utf8(self.take(n)?.to_vec()).ok()
        }
    }
    let mut r = R(b);
    if r.take(1)? != [BLOB_VERSION] {
        return None;
    }
    let flags = r.take(1)?[0];
    let kind = r.take(1)?[0];
    let rdev = r.u32()?;
    let kind = match kind {
        0 => Kind::File,
        1 => Kind::Symlink,
        2 => Kind::Fifo,
        3 => Kind::Socket,
        4 => Kind::CharDev(rdev),
        5 => Kind::BlockDev(rdev),
        _ => return None,
    };
    let s = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let n = r.u32()?;
    let perm = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
    let uid = r.u32()?;
    let gid = r.u32()?;
    let content_type = r.str()?;
    let count = r.u32()?;
    let mut metadata = HashMap::new();
    for _ in 0..count {
        let name = r.str()?;
        metadata.insert(name, r.str()?);
    }
    let mtime = if s >= 0 { UNIX_EPOCH + Duration::new(s as u64, n.min(999_999_999)) } else { from_secs(s) };
    Some(KnownMeta {
        etag: etag.to_string(),
        modified,
        kind,
        mtime,
        perm: (flags & 2 != 0).then_some(perm),
        uid: (flags & 4 != 0).then_some(uid),
        gid: (flags & 8 != 0).then_some(gid),
        put: PutMeta { metadata, content_type: (flags & 16 != 0).then_some(content_type), storage_class: None },
    })
}

#[cfg(test)]
mod tests;
