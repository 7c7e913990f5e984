//! The filesystem core: one async method per FUSE operation, each returning `Result<_, Error>`.
//! It knows nothing of fuser: `crate::fuse` converts arguments and replies.
//!
//! Caches, all bounded by `metadata_ttl`/`negative_ttl`:
//! - node attributes in the inode table (filled by lookups and by listings);
//! - complete directory listings (an LRU of directories), which answer lookups, both positive and
//!   negative, without requests, so `ls -l` and `find` cost listings only;
//! - names found missing (an LRU), so repeated probes for absent files cost nothing.

pub mod error;
pub mod inode;
pub mod listings;
pub mod metadata;
pub mod names;
pub mod reads;
pub mod walk;
pub mod writes;
pub mod xattr;

mod listing_access;
mod lookup;
mod readdir;

use lookup::{LastListed, Resolved};

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;
use tracing::{debug, info, warn};

use crate::config::{Config, Source};
use crate::store::{ListRequest, ObjectMeta, ObjectStore, PutMeta, StoreError};
use error::{Error, Result};
use inode::{Attr, Ino, InodeTable, Kind, Location, ROOT};
use listings::{Entry, Listing};
use metadata::index::{KnownMeta, MetaIndex};
use names::Name;
use reads::{MemoryLimiter, Reader, data_cache};
use writes::delete::Deleter;
use writes::pending_meta::PendingMetaTable;
use writes::staged::{self, FileMeta, Staged};
use writes::staging;

/// Bucket, key and ETag of one object version.
type VersionKey = (Arc<str>, String, String);

/// Listings longer than this are not kept for lookups (they are still served to readdir).
const MAX_CACHED_LISTING: usize = 100_000;
/// Lookups in a directory of more than one page (each a HeadObject and a one-key listing)
/// after which it is listed whole in the background, to answer the rest from memory: a walk
/// through a large folder (`find`, `du`, `rsync`) that outlasts the TTL of its listing.
const LIST_WHOLE_AFTER: u32 = 64;
/// A directory too large to list whole for its lookups is not tried again for this many TTLs.
const TOO_LARGE_TTLS: u32 = 10;
/// A file inode unused this long (or the metadata TTL, if shorter) may be forgotten when the
/// table is over its budget. Forgetting costs a lookup later, answered from a listing while
/// that is fresh, never a request.
const SHRINK_IDLE: Duration = Duration::from_secs(2);
/// How often expired listings are dropped.
const TRIM_EVERY: Duration = Duration::from_secs(2);
/// Names (of dropped listings and forgotten inodes) after which freed memory is handed back to
/// the system.
const RELEASE_AFTER: usize = 20_000;

/// Hands memory malloc holds free back to the system: a walk's listings and nodes are many small
/// allocations that glibc otherwise keeps (the daemon's RSS would stay at the walk's peak).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a plain C call; glibc's malloc is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Bucket and key.
type ObjectKey = (Arc<str>, String);

/// A directory listing shared by readdir handles and lookups.
use listings::{LIST_PAGE, LISTED_ENTRIES_BUDGET, ListingCache, ListingRef};

/// The answer to one HeadObject, shared by whoever waits for it.
use metadata::heads::{HeadCell, HeadsInFlight};

/// An open file handle and how the kernel's page cache should treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub fh: u64,
    /// The page cache holds this object version already (same ETag as the last open): keep it.
    pub keep_cache: bool,
    /// A large object opened for reading: read it past the page cache (`ReadConfig::direct_size`).
    pub direct_read: bool,
}

impl Opened {
    /// A handle on a file being written through this mount: s3drive serves its bytes from the
    /// staging file, so pages the kernel cached of an earlier open are not kept.
    fn staged(fh: u64) -> Opened {
        Opened { fh, keep_cache: false, direct_read: false }
    }
}

/// What the adapter needs to build a `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ino: Ino,
    pub dir: bool,
    pub kind: Kind,
    pub size: u64,
    pub mtime: SystemTime,
    pub atime: SystemTime,
    pub ctime: SystemTime,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    /// Mode, owner, mtime and symlink-ness are known to be right. When not (a listed file whose
    /// user metadata was never fetched), the kernel may keep the name but not the attributes:
    /// its next `stat` is a getattr, which fetches them.
    pub known: bool,
    /// A file whose name was removed while it is open: its link count is 0 (`fstat`).
    pub unlinked: bool,
}

/// One directory entry handed to readdir; `next` is the offset of the entry after it.
#[derive(Debug, Clone)]
pub struct DirItem {
    pub next: u64,
    pub name: String,
    pub stat: Stat,
    /// The entry's node, with the attributes `stat` shows, for readdirplus (`None` for "." and
    /// ".."). When `stat.known` is false (a listed file whose user metadata was never fetched),
    /// readdirplus hands the kernel nothing it may keep, so that a `stat` asks s3drive.
    pub entry: Option<Entry>,
}

struct DirHandle {
    ino: Ino,
    listing: tokio::sync::Mutex<Arc<tokio::sync::Mutex<Listing>>>,
}

impl KnownMeta {
    /// Puts the times, mode and owner this version's user metadata says into `attr`.
    fn fill(&self, attr: &mut Attr) {
        attr.mtime = self.mtime;
        let md = |n: &str| self.put.metadata.get(n).and_then(|v| parse_mtime(v.trim()));
        (attr.atime, attr.ctime) = (md("atime"), md("ctime"));
        attr.perm = self.perm;
        attr.uid = self.uid;
        attr.gid = self.gid;
    }

    fn new(etag: &str, attr: &Attr, put: PutMeta) -> KnownMeta {
        KnownMeta {
            etag: etag.to_string(),
            modified: attr.modified,
            kind: attr.kind,
            mtime: attr.mtime,
            perm: attr.perm,
            uid: attr.uid,
            gid: attr.gid,
            put,
        }
    }
}

enum FileHandle {
    /// Open for reading (the inode, so that the inode budget leaves open files alone).
    Read(Ino, tokio::sync::Mutex<Reader>),
    /// Open for writing, or open while a writer has the file staged.
    Staged {
        ino: Ino,
        writer: Arc<Writer>,
        /// The process that opened it (see `flush`).
        pid: u32,
    },
}

/// A staged file and a snapshot of what lookups and getattr need, readable without waiting for
/// an upload that holds the staged file's lock.
struct Writer {
    staged: tokio::sync::Mutex<Staged>,
    info: Mutex<WriterInfo>,
    progress: Arc<staged::Progress>,
}

#[derive(Clone)]
struct WriterInfo {
    loc: Location,
    size: u64,
    meta: FileMeta,
    unlinked: bool,
}

/// The kernel's caches of entries and attributes (kept for the TTLs s3drive gives), for the
/// rare case where s3drive learns they are wrong before then. The FUSE adapter implements it
/// with the session's notifier; without one (unit tests) the kernel is simply not told.
pub trait KernelCache: Send + Sync {
    /// Drops the kernel's entry `name` in directory `parent`, and the attributes and cached
    /// pages of `ino`. Must not wait for the kernel: it may be called while serving a request.
    fn forget(&self, parent: Ino, name: &Name, ino: Ino);
    /// Drops the kernel's attributes and cached pages of `ino` (a new version of the object).
    fn invalidate(&self, ino: Ino);
}

pub struct Fs<S: ObjectStore> {
    store: Arc<S>,
    kernel: std::sync::OnceLock<Box<dyn KernelCache>>,
    config: Config,
    mount_time: SystemTime,
    inodes: InodeTable,
    /// Cached listings, names found missing, large directories (see [`listings`]).
    listings: ListingCache,
    /// User metadata of object versions (memory, and a file in the cache directory).
    index: MetaIndex,
    /// Object data kept on local disk (`--data-cache`).
    data_cache: Option<Arc<data_cache::DataCache>>,
    /// HeadObjects of listed files in flight, shared by a lookup and the stat-ahead.
    heads: HeadsInFlight,
    dir_handles: Mutex<HashMap<u64, Arc<DirHandle>>>,
    file_handles: Mutex<HashMap<u64, Arc<FileHandle>>>,
    next_handle: AtomicU64,
    memory: MemoryLimiter,
    upload_memory: MemoryLimiter,
    writers: Mutex<HashMap<Ino, Arc<Writer>>>,
    pending_meta: PendingMetaTable,
    deleter: Arc<Deleter<S>>,
    staging_dir: staging::StageDir,
    /// Our own metadata CopyObjects: (bucket, key, old ETag) -> new ETag of the same bytes, so
    /// that files open for reading follow them instead of failing with ESTALE.
    meta_copies: Mutex<LruCache<VersionKey, String>>,
    /// Set when shutdown starts: new writes are refused, so nothing arrives after the last upload.
    closing: std::sync::atomic::AtomicBool,
    /// The last status report and when it was made.
    status_cache: Mutex<Option<(Instant, Vec<u8>)>>,
    /// Presigned links recently handed out, by object and lifetime.
    recent_links: Mutex<LruCache<xattr::LinkKey, (Instant, crate::store::Presigned)>>,
    /// For tasks that outlive a call (metadata timers, directory-rename copies).
    me: std::sync::Weak<Fs<S>>,
    /// Staging files a crashed mount left, found at start-up (for status).
    orphans: Mutex<Vec<staging::Orphan>>,
    /// Files removed (or renamed away from) while open for reading, by inode: those objects are
    /// deleted when the last reader closes (see `Deleter::hold`).
    held_deletes: Mutex<HashMap<Ino, Vec<ObjectKey>>>,
    /// Walk-ahead listings in flight at once (see `walk`).
    walk_permits: Arc<tokio::sync::Semaphore>,
}

impl<S: ObjectStore> Fs<S> {
    /// Needs a tokio runtime (the delete batcher runs a task).
    pub fn new(store: Arc<S>, config: Config) -> Arc<Fs<S>> {
        let mount_time = SystemTime::now();
        let root = match &config.source {
            Source::AllBuckets | Source::Buckets(_) => Location::Buckets,
            Source::Prefix { bucket, prefix } => {
                Location::Dir { bucket: bucket.as_str().into(), prefix: prefix.clone() }
            }
        };
        let service = config.s3.endpoint_url.as_deref().unwrap_or("aws");
        let mut staging_dir = staging::StageDir::open(&config.write.cache_dir, service, config.s3.force_path_style)
            .unwrap_or_else(|e| {
                let path = config.write.cache_dir.join(format!("mount-{}", std::process::id()));
                warn!(dir = %path.display(), error = %e, "cannot set up the staging directory; writes will fail");
                staging::StageDir::unlocked(path)
            });
        staging_dir.request = staging::RequestNote::of(&config.s3.request);
        let index = MetaIndex::open(
            config.metadata.index_entries.map(|_| config.write.cache_dir.as_path()),
            service,
            config.metadata.index_entries.unwrap_or(0),
        );
        let data_cache = config.data_cache.as_ref().and_then(|c| {
            data_cache::DataCache::open(&c.dir, service, c.size)
                .map_err(
                    |e| warn!(dir = %c.dir.display(), error = %e, "cannot open the data cache; reading without it"),
                )
                .ok()
                .map(Arc::new)
        });
        let fs = Arc::new_cyclic(|me| Fs {
            data_cache,
            me: me.clone(),
            kernel: std::sync::OnceLock::new(),
            deleter: Deleter::new(store.clone()),
            store,
            memory: MemoryLimiter::new(config.read.memory_limit),
            upload_memory: MemoryLimiter::new(config.write.memory_limit),
            writers: Mutex::default(),
            pending_meta: PendingMetaTable::default(),
            staging_dir,
            config,
            mount_time,
            inodes: InodeTable::new(root, Attr::dir(mount_time)),
            listings: ListingCache::default(),
            index,
            heads: HeadsInFlight::default(),
            dir_handles: Mutex::default(),
            meta_copies: Mutex::new(LruCache::new(NonZeroUsize::new(4096).unwrap())),
            status_cache: Mutex::default(),
            closing: std::sync::atomic::AtomicBool::new(false),
            recent_links: Mutex::new(LruCache::new(NonZeroUsize::new(64).unwrap())),
            file_handles: Mutex::default(),
            next_handle: AtomicU64::new(1),
            orphans: Mutex::default(),
            held_deletes: Mutex::default(),
            walk_permits: walk::permits(),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            let me = Arc::downgrade(&fs);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(TRIM_EVERY);
                let (mut freed, mut nodes) = (0usize, 0usize);
                loop {
                    tick.tick().await;
                    let Some(fs) = me.upgrade() else { break };
                    freed += fs.trim_listings();
                    fs.shrink_nodes();
                    // Forgotten inodes count too.
                    let now = fs.inodes.len();
                    freed += nodes.saturating_sub(now);
                    nodes = now;
                    if freed >= RELEASE_AFTER {
                        fs.inodes.compact();
                        release_freed_memory();
                        freed = 0;
                    }
                }
            });
        }
        fs
    }

    /// Finds the staging files crashed mounts left in the cache directory, says so in the log
    /// and in status, and aborts the multipart uploads they began on this service (S3 bills
    /// their parts until then). Their bytes stay for `s3drive recover`; nothing is uploaded.
    pub async fn adopt_orphans(&self) {
        let mut found = staging::orphans(&self.config.write.cache_dir);
        for o in &mut found {
            let j = &mut o.journal;
            warn!(
                "a mount that ended without uploading it left s3://{}/{} ({} bytes) in {}; `s3drive recover` uploads or discards it",
                j.bucket,
                j.key,
                o.size,
                o.data.display()
            );
            if let Some(id) = j.upload_id.clone()
                && *j.service == *self.staging_dir.service
            {
                match self.store.abort_multipart(&j.bucket, &j.key, &id).await {
                    Ok(()) | Err(crate::store::StoreError::NotFound) => {
                        info!(
                            bucket = j.bucket,
                            key = j.key,
                            "aborted the multipart upload the crashed mount had begun"
                        );
                        j.upload_id = None;
                        if let Err(e) = j.save(&o.data) {
                            warn!(error = %e, "cannot update a journal");
                        }
                    }
                    Err(e) => {
                        warn!(bucket = j.bucket, key = j.key, error = %e, "cannot abort a crashed mount's multipart upload")
                    }
                }
            }
        }
        *self.orphans.lock().unwrap() = found;
    }

    /// What is going on now, for the metrics endpoint.
    pub fn activity(&self) -> Activity {
        use std::sync::atomic::Ordering::Relaxed;
        let mut a = Activity::default();
        for w in self.writers.lock().unwrap().values() {
            let size = w.info.lock().unwrap().size;
            a.files_open_for_writing += 1;
            if w.progress.uploading.load(Relaxed) {
                a.uploads_in_progress += 1;
            }
            a.bytes_not_yet_in_s3 += size - w.progress.sent.load(Relaxed).min(size);
        }
        a.pending_deletes = self.deleter.pending_count() as u64;
        a.orphaned_files = self.orphans.lock().unwrap().len() as u64;
        a.read_ahead_bytes = self.config.read.memory_limit.saturating_sub(self.memory.available());
        a.index_disk_hits = self.index.stats().disk_hits;
        a.data_cache = self.data_cache.as_ref().map(|c| c.report());
        a
    }

    /// What [`Fs::adopt_orphans`] found.
    pub fn orphans(&self) -> Vec<staging::Orphan> {
        self.orphans.lock().unwrap().clone()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Number of nodes the kernel holds references to (for tests of `forget`).
    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    /// Where to tell the kernel that what it caches is wrong (set once, after mounting).
    pub fn set_kernel_cache(&self, k: Box<dyn KernelCache>) {
        let _ = self.kernel.set(k);
    }

    /// Tells the kernel to forget `ino`, named `name` in `parent`, if a kernel is listening.
    fn kernel_forget(&self, parent: Ino, name: &Name, ino: Ino) {
        if let Some(k) = self.kernel.get() {
            k.forget(parent, name, ino);
        }
    }

    fn node(&self, ino: Ino) -> Result<inode::Node> {
        self.inodes.get(ino).ok_or(Error::BadHandle)
    }

    fn cached_listing(&self, ino: Ino) -> Option<ListingRef> {
        self.listings.get(ino, self.deleter.epoch())
    }

    // ----- operations -----
}

/// A snapshot of [`Fs::activity`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Activity {
    pub files_open_for_writing: u64,
    pub uploads_in_progress: u64,
    /// Bytes of files open for writing that S3 does not hold yet.
    pub bytes_not_yet_in_s3: u64,
    /// Keys queued for DeleteObjects or in flight.
    pub pending_deletes: u64,
    /// Files a crashed mount left in the cache directory.
    pub orphaned_files: u64,
    /// Read-ahead memory in use.
    pub read_ahead_bytes: u64,
    /// Object versions whose metadata came from the on-disk index rather than memory.
    pub index_disk_hits: u64,
    /// The data cache's figures, when there is one.
    pub data_cache: Option<data_cache::Report>,
}

/// `mtime` user metadata: integer seconds (s3fs) or fractional seconds (rclone).
pub fn parse_mtime(s: &str) -> Option<SystemTime> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: u64 = secs.parse().ok()?;
    let mut nanos = 0u32;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests;
