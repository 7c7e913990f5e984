//! The filesystem core: one async method per FUSE operation, each returning `Result<_, Error>`.
//! It knows nothing of fuser: `crate::fuse` converts arguments and replies.
//!
//! Caches, all bounded by `metadata_ttl`/`negative_ttl`:
//! - node attributes in the inode table (filled by lookups and by listings);
//! - complete directory listings (an LRU of directories), which answer lookups, both positive and
//!   negative, without requests, so `ls -l` and `find` cost listings only;
//! - names found missing (an LRU), so repeated probes for absent files cost nothing.

pub mod data_cache;
pub mod delete;
pub mod dir;
pub mod dir_meta;
pub mod error;
pub mod inode;
pub mod listings;
pub mod meta_index;
pub mod mutate;
pub mod names;
pub mod pinned;
pub mod read;
pub mod setattr;
pub mod staging;
pub mod unlink;
pub mod walk;
pub mod write;
pub mod xattr;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;
use tracing::{debug, info, warn};

use crate::config::{Config, Source};
use crate::store::{ListRequest, ObjectMeta, ObjectStore, PutMeta, StoreError};
use delete::Deleter;
use dir::{Entry, Listing};
use error::{Error, Result};
use inode::{Attr, Ino, InodeTable, Kind, Location, ROOT};
use meta_index::{KnownMeta, MetaIndex};
use names::Name;
use read::{MemoryLimiter, Reader};
use write::{FileMeta, Staged};

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
type HeadCell = tokio::sync::OnceCell<crate::store::StoreResult<ObjectMeta>>;

/// A listed entry found by a lookup, with the HeadObject to wait for when its metadata is unknown.
/// What a large directory's last complete listing, expired, says of a name.
enum LastListed {
    /// A fresh complete listing (one came since the caller looked): it answers.
    Fresh(ListingRef),
    /// A file whose HeadObject answered within the TTL: as it is.
    Headed(Box<Entry>),
    /// A file (not a folder): a HeadObject alone tells whether it is still there.
    File,
    /// A folder: a one-key listing alone tells whether it is still there.
    Dir,
    /// Not in it (it may have come since).
    Absent,
    /// No complete listing of a large directory is kept.
    Unknown,
}

/// Which of a name's two possible forms [`Fs::lookup_in_s3`] asks about first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Both at once.
    Both,
    /// The object; the folder only if the object is gone.
    FileFirst,
    /// The folder; the object only if the folder is gone.
    DirFirst,
}

struct Listed {
    entry: Entry,
    head: Option<(Arc<HeadCell>, ObjectKey)>,
}

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

/// What a name resolves to.
enum Resolved {
    /// Something in S3 (or in a cached listing).
    Entry(Entry),
    /// A file being written through this mount.
    Staged(WriterInfo),
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
    progress: Arc<write::Progress>,
}

#[derive(Clone)]
struct WriterInfo {
    loc: Location,
    size: u64,
    meta: FileMeta,
    unlinked: bool,
}

/// chmod/chown/utimens on an uploaded object, not yet written to S3: coalesced so that a burst of
/// changes (rsync's chmod + utimens + rename) costs one CopyObject.
#[derive(Clone)]
struct PendingMeta {
    meta: FileMeta,
    /// New `x-amz-meta-xattr` value ("" removes it), when user xattrs changed.
    xattr: Option<String>,
    version: u64,
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
    heads: Mutex<HashMap<ObjectKey, Arc<HeadCell>>>,
    dir_handles: Mutex<HashMap<u64, Arc<DirHandle>>>,
    file_handles: Mutex<HashMap<u64, Arc<FileHandle>>>,
    next_handle: AtomicU64,
    memory: MemoryLimiter,
    upload_memory: MemoryLimiter,
    writers: Mutex<HashMap<Ino, Arc<Writer>>>,
    pending_meta: Mutex<HashMap<(Arc<str>, String), PendingMeta>>,
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
            pending_meta: Mutex::default(),
            staging_dir,
            config,
            mount_time,
            inodes: InodeTable::new(root, Attr::dir(mount_time)),
            listings: ListingCache::default(),
            index,
            heads: Mutex::default(),
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

    fn fresh_until(&self) -> Instant {
        Instant::now() + self.config.metadata_ttl
    }

    fn stat_of(&self, ino: Ino, loc: &Location, attr: &Attr) -> Stat {
        let dir = loc.is_dir();
        Stat {
            ino,
            dir,
            kind: if dir { Kind::File } else { attr.kind },
            size: attr.size,
            mtime: attr.mtime,
            atime: attr.atime.unwrap_or(attr.mtime),
            ctime: attr.ctime.or(attr.modified).unwrap_or(attr.mtime),
            perm: attr.perm.unwrap_or(if dir { self.config.dir_mode } else { self.config.file_mode })
                & !self.config.umask,
            uid: attr.uid.unwrap_or(self.config.uid),
            gid: attr.gid.unwrap_or(self.config.gid),
            known: true,
            unlinked: false,
        }
    }

    /// Attributes of an object from HeadObject: size, and mtime/mode/uid/gid from user metadata
    /// when present (s3fs writes integer seconds, rclone fractional seconds), else LastModified.
    /// Learns the metadata into the index too (see [`Fs::meta_attr`] for the attributes alone).
    fn attr_from_meta(&self, loc: &Location, meta: &ObjectMeta) -> Attr {
        let attr = self.meta_attr(meta);
        let key = match loc {
            Location::File { bucket, key } => Some((bucket, key)),
            Location::Dir { bucket, prefix } => Some((bucket, prefix)), // its marker
            Location::Buckets => None,
        };
        if let (Some((bucket, key)), Some(etag)) = (key, &meta.etag) {
            let put = PutMeta {
                metadata: meta.metadata.clone(),
                content_type: meta.content_type.clone(),
                storage_class: None,
            };
            self.index.learn(bucket, key, KnownMeta::new(etag, &attr, put));
        }
        self.with_pending_meta(loc, attr)
    }

    /// The attributes HeadObject's answer `meta` gives, before this mount's pending changes.
    fn meta_attr(&self, meta: &ObjectMeta) -> Attr {
        let md = |k: &str| meta.metadata.get(k).map(|v| v.trim());
        let mtime = md("mtime").and_then(parse_mtime).or(meta.last_modified).unwrap_or(self.mount_time);
        Attr {
            kind: md("mode")
                .and_then(|m| m.parse::<u32>().ok())
                .map_or(Kind::File, |m| Kind::from_mode(m, md("rdev").and_then(|v| v.parse().ok()).unwrap_or(0))),
            size: meta.size,
            mtime,
            atime: md("atime").and_then(parse_mtime),
            ctime: md("ctime").and_then(parse_mtime),
            perm: md("mode").and_then(|m| m.parse::<u32>().ok()).map(|m| (m & 0o7777) as u16),
            uid: md("uid").and_then(|v| v.parse().ok()),
            gid: md("gid").and_then(|v| v.parse().ok()),
            etag: meta.etag.clone(),
            modified: meta.last_modified,
            // S3 leaves the header out for STANDARD.
            class: inode::storage_class(meta.storage_class.as_deref().unwrap_or("STANDARD")),
        }
    }

    /// Remembers the metadata s3drive itself just gave an object version.
    fn learn_meta(&self, bucket: &Arc<str>, key: &str, etag: Option<&str>, meta: &FileMeta, put: &PutMeta) {
        if let Some(etag) = etag {
            // KnownMeta keeps no size: any will do. Our answers carry no LastModified: the
            // index takes it from the first listing or HeadObject of this ETag.
            let known = KnownMeta::new(etag, &meta.attr(0, None), put.clone());
            self.index.learn(bucket, key, known);
        }
    }

    /// Attribute changes not yet written to S3 override what S3 says.
    fn with_pending_meta(&self, loc: &Location, mut attr: Attr) -> Attr {
        if let Location::File { bucket, key } = loc
            && let Some(p) = self.pending_meta.lock().unwrap().get(&(bucket.clone(), key.clone()))
        {
            attr.mtime = p.meta.mtime;
            attr.atime = p.meta.atime;
            attr.ctime = Some(p.meta.ctime);
            attr.perm = Some(p.meta.perm);
            attr.uid = Some(p.meta.uid);
            attr.gid = Some(p.meta.gid);
        }
        attr
    }

    /// The metadata a file has now, with the mount's defaults filled in.
    fn file_meta(&self, attr: &Attr) -> FileMeta {
        FileMeta {
            perm: attr.perm.unwrap_or(self.config.file_mode),
            uid: attr.uid.unwrap_or(self.config.uid),
            gid: attr.gid.unwrap_or(self.config.gid),
            mtime: attr.mtime,
            mtime_set: true,
            atime: attr.atime,
            ctime: attr.ctime.or(attr.modified).unwrap_or(attr.mtime),
            kind: attr.kind,
        }
    }

    /// What the index knows of the user metadata of the object version a listed `attr` names.
    fn known_version(&self, loc: &Location, attr: &Attr) -> Option<KnownMeta> {
        let (Location::File { bucket, key }, Some(etag)) = (loc, &attr.etag) else { return None };
        self.index.version(bucket, key, etag, attr.modified)
    }

    /// A listed entry's attributes, and whether they are known to be right. Listings carry no
    /// user metadata: what a HeadObject of the same object version (same ETag and
    /// LastModified) told us earlier, here or in an earlier mount on this host, is filled in,
    /// so `ls -l` and `stat` agree without a request per entry. A file is known when that
    /// version is in the index, when its attributes came from a HeadObject or this mount
    /// (`perm` set), or with `--metadata-from listing`; a directory when its marker's
    /// metadata is known (see `dir_meta`), a bucket always.
    fn listed_attr(&self, e: &Entry) -> (Attr, bool) {
        if self.dir_has_meta(&e.loc) {
            return match self.known_dir_attr(&e.loc, &e.attr) {
                Some(attr) => (attr, true),
                None => (e.attr.clone(), false),
            };
        }
        let mut attr = e.attr.clone();
        let known = match self.known_version(&e.loc, &attr) {
            Some(k) => {
                attr.kind = k.kind;
                k.fill(&mut attr);
                true
            }
            None => !matches!(e.loc, Location::File { .. }) || self.config.metadata.from_listing || attr.perm.is_some(),
        };
        (self.with_pending_meta(&e.loc, attr), known)
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

    /// Keeps the inode table within `--inode-budget`: when the kernel holds more inodes, it is
    /// told to forget the least recently used (unused for the metadata TTL, at most
    /// [`SHRINK_IDLE`]: what a walk just handed over stays a moment), down to 80% of the
    /// budget. Files go first; directories only when files alone are not enough, and only
    /// those nothing the kernel holds lies in (so a tree empties from its leaves over a few
    /// rounds). Open files, open directories, and directories a process stands in (its working
    /// directory: see [`pinned`]) are not offered; the others come back as FORGETs, which
    /// remove their nodes. Returns how many the kernel was asked to forget.
    pub fn shrink_nodes(&self) -> usize {
        let n = self.inodes.len();
        let budget = self.config.inode_budget;
        let Some(kernel) = self.kernel.get() else { return 0 };
        if n <= budget {
            return 0;
        }
        let want = n - budget / 10 * 8;
        let idle = self.config.metadata_ttl.clamp(Duration::from_secs(1), SHRINK_IDLE);
        let victims = self.inodes.coldest(want, idle);
        // Open files are left alone: the kernel keeps their dentries anyway, and one it was
        // told to drop would show as "(deleted)" in /proc/PID/fd.
        let mut open: std::collections::HashSet<Ino> = self.writers.lock().unwrap().keys().copied().collect();
        open.extend(self.file_handles.lock().unwrap().values().map(|h| match &**h {
            FileHandle::Read(ino, _) | FileHandle::Staged { ino, .. } => *ino,
        }));
        // Asks the kernel to forget a node it may drop; whether it was asked.
        let forget = |open: &std::collections::HashSet<Ino>, (ino, parent, loc): &(Ino, Ino, Location)| {
            let name = loc.name().filter(|_| !open.contains(ino));
            name.map(|name| kernel.forget(*parent, &name, *ino)).is_some()
        };
        let mut asked = victims.iter().filter(|v| forget(&open, v)).count();
        let dirs = if asked < want { self.inodes.coldest_dirs(want - asked, idle) } else { Vec::new() };
        if !dirs.is_empty() {
            let who = if self.config.allow_other {
                pinned::Entrants::Anyone
            } else if self.config.allow_root || self.config.auto_unmount {
                pinned::Entrants::RootAndOwner
            } else {
                pinned::Entrants::Owner
            };
            // Unknown (another user's process may be in here): no directory is dropped.
            if let Some(paths) = pinned::standing_in(std::path::Path::new("/proc"), &self.config.mountpoint, who) {
                let standing: Vec<Location> = paths.iter().filter_map(|names| self.location_at(names)).collect();
                open.extend(self.dir_handles.lock().unwrap().values().map(|h| h.ino));
                asked += dirs.iter().filter(|v| !standing.contains(&v.2) && forget(&open, v)).count();
            }
        }
        debug!(nodes = n, asked, "asked the kernel to forget inodes it has not used");
        asked
    }

    /// The directory at `names` below the mount's root, as lookups would find it.
    fn location_at(&self, names: &[String]) -> Option<Location> {
        let mut loc = self.inodes.get(ROOT)?.loc;
        for n in names {
            let name = Name::new(n)?;
            loc = match loc {
                Location::Buckets => Location::Dir { bucket: n.as_str().into(), prefix: String::new() },
                dir => dir.child(&name, true)?,
            };
        }
        Some(loc)
    }

    /// Drops cached listings past their TTL (they answer nothing any more), and the least
    /// recently used ones past [`LISTED_ENTRIES_BUDGET`] names in all: what a walk of millions
    /// of names leaves behind is freed within [`TRIM_EVERY`] of its TTL. Listings in use (a
    /// page arriving) are left alone; a directory handle keeps its own listing.
    /// Returns how many names the dropped listings held.
    pub fn trim_listings(&self) -> usize {
        self.listings.trim(self.config.metadata_ttl)
    }

    /// Applies a change made through this mount to `dir`'s cached listing, which so stays
    /// good for answering lookups; a listing being filled right now is dropped instead.
    fn edit_listing(&self, dir: Ino, edit: impl FnOnce(&mut Listing)) {
        self.listings.changed();
        let Some(l) = self.cached_listing(dir) else { return };
        match l.try_lock() {
            Ok(mut g) => edit(&mut g),
            Err(_) => self.listings.forget_dir(dir),
        }
    }

    /// `entry` now exists in directory `dir` (created or replaced through this mount).
    fn entry_added(&self, dir: Ino, entry: Entry) {
        self.listings.not_missing(dir, &entry.name);
        self.edit_listing(dir, |l| l.put(entry));
    }

    /// `name` in directory `dir` was removed through this mount.
    fn entry_removed(&self, dir: Ino, name: &Name) {
        self.edit_listing(dir, |l| l.remove(name));
    }

    /// The entry for file `loc` in directory `dir`, if `loc` lies directly in it.
    fn file_entry(&self, dir: Ino, loc: &Location, attr: Attr) -> Option<Entry> {
        let (Some(inode::Node { loc: Location::Dir { bucket: db, prefix }, .. }), Location::File { bucket, key }) =
            (self.inodes.get(dir), loc)
        else {
            return None;
        };
        match (db == *bucket, names::object_child(&prefix, key)) {
            (true, names::Child::File(name)) => Some(Entry { name, loc: loc.clone(), attr }),
            _ => None,
        }
    }

    /// A listing that is complete and fresh, for answering lookups.
    /// Waits for the listing's lock: it is held only briefly (or across the fetch of a page,
    /// when the listing is not complete yet), and a listing merely busy is not stale.
    async fn fresh_listing(&self, ino: Ino) -> Option<Arc<tokio::sync::Mutex<Listing>>> {
        let l = self.cached_listing(ino)?;
        let fresh = {
            let g = l.lock().await;
            g.done && g.fresh(self.config.metadata_ttl)
        };
        fresh.then_some(l)
    }

    /// A listing of `ino` to read on from: fresh, complete or not (a reader that stopped early,
    /// or the walk-ahead's first page; readdir lists the rest). A complete one gets the files
    /// being written there, which it may have been listed without.
    async fn started_listing(&self, ino: Ino) -> Option<Arc<tokio::sync::Mutex<Listing>>> {
        let l = self.cached_listing(ino)?;
        let fresh = {
            let mut g = l.lock().await;
            let fresh = g.fresh(self.config.metadata_ttl);
            if fresh
                && g.done
                && let Some(Location::Dir { bucket, prefix }) = self.inodes.get(ino).map(|n| n.loc)
            {
                self.add_writers(&mut g, &bucket, &prefix);
            }
            fresh
        };
        fresh.then_some(l)
    }

    /// A listing of `ino` that can answer for `name`: a fresh complete one, or one a reader is
    /// still paging through (`ls -l` stats each name as it reads it) that holds `name` already.
    async fn listing_having(&self, ino: Ino, name: &Name) -> Option<Arc<tokio::sync::Mutex<Listing>>> {
        let l = self.cached_listing(ino)?;
        let usable = {
            let g = l.lock().await;
            g.fresh(self.config.metadata_ttl) && (g.done || g.get(name).is_some())
        };
        usable.then_some(l)
    }

    /// Records a kernel lookup of a listed (or just made) entry, with its attributes as far as
    /// they are known (see [`Fs::listed_attr`]).
    fn remember(&self, parent: Ino, entry: &Entry) -> Stat {
        let (attr, known) = self.listed_attr(entry);
        self.remember_entry(parent, &Entry { attr, ..entry.clone() }, known)
    }

    /// Buckets shown at the root of a bucket-list mount.
    async fn root_listing(&self) -> Result<Listing> {
        match &self.config.source {
            Source::Buckets(names) => {
                let infos: Vec<_> =
                    names.iter().map(|n| crate::store::BucketInfo { name: n.clone(), created: None }).collect();
                Ok(Listing::of_buckets(&infos, self.mount_time))
            }
            Source::AllBuckets => Ok(Listing::of_buckets(&self.store.list_buckets().await?, self.mount_time)),
            Source::Prefix { .. } => unreachable!("a prefix mount has no bucket-list root"),
        }
    }

    // ----- operations -----

    pub async fn lookup(&self, parent: Ino, name: &Name) -> Result<Stat> {
        let pnode = self.node(parent)?;
        match self.resolve(parent, &pnode, name, false).await? {
            Some(Resolved::Staged(info)) => {
                let attr = self.staged_attr(&info);
                let ino = self.inodes.remember(parent, info.loc.clone(), attr.clone(), self.fresh_until());
                Ok(self.stat_of(ino, &info.loc, &attr))
            }
            Some(Resolved::Entry(e)) => Ok(self.remember(parent, &e)),
            None => Err(Error::NotFound),
        }
    }

    /// What `name` in directory `parent` is, without counting a kernel lookup. With
    /// `want_meta`, a listed file's user metadata is fetched if unknown (a rename must carry it);
    /// without, a listed file may come back as listed (see [`Fs::needs_meta`]): a lookup or an
    /// unlink needs only the name, and a `stat` after it asks for the attributes (getattr).
    async fn resolve(
        &self,
        parent: Ino,
        pnode: &inode::Node,
        name: &Name,
        want_meta: bool,
    ) -> Result<Option<Resolved>> {
        if !pnode.loc.is_dir() {
            return Err(Error::NotDir);
        }
        // Files being written through this mount exist before they reach S3.
        if let Some(file_loc) = pnode.loc.child(name, false)
            && let Some((_, info)) = self.writer_at(&file_loc)
        {
            return Ok(Some(Resolved::Staged(info)));
        }
        if let Some(e) = self.fresh_node(&pnode.loc, name) {
            return Ok(Some(Resolved::Entry(e)));
        }
        if let Some(listing) = self.fresh_listing(parent).await {
            let (found, started) = {
                let mut l = listing.lock().await;
                // A large listing near the end of its TTL while lookups still come: the next
                // one is fetched now, to arrive as this one expires: as long before as the last
                // listing took, and no earlier than half way. So a listing is fetched at most
                // once a TTL (the next starts `took` before, and ends `took` after, the TTL).
                let ttl = self.config.metadata_ttl;
                let refresh_after = ttl.saturating_sub(l.took).max(ttl / 2);
                if l.entries.len() > LIST_PAGE
                    && l.started.is_some_and(|t| t + refresh_after < Instant::now())
                    && let Location::Dir { bucket, prefix } = &pnode.loc
                {
                    self.list_whole(parent, bucket, prefix);
                }
                (self.find_listed(&listing, &mut l, name, want_meta), l.started)
            };
            // A name the listing lacks is missing for `negative_ttl` only (it may be lower).
            if found.is_some() || started.is_some_and(|t| t + self.config.negative_ttl > Instant::now()) {
                return Ok(self.listed_entry(&listing, found).await?.map(Resolved::Entry));
            }
        } else if let Some(listing) = self.listing_having(parent, name).await {
            // Listed so far by a reader still paging: what it holds is good; absence is not.
            let found = self.find_listed(&listing, &mut *listing.lock().await, name, want_meta);
            if found.is_some() {
                return Ok(self.listed_entry(&listing, found).await?.map(Resolved::Entry));
            }
        }
        if self.listings.missing_until(parent, name).is_some_and(|until| until > Instant::now()) {
            return Ok(None);
        }
        let entry = match &pnode.loc {
            Location::Buckets => {
                let l = self.root_listing().await?;
                let found = l.get(name).cloned();
                self.listings.put(parent, Arc::new(tokio::sync::Mutex::new(l)));
                found
            }
            Location::Dir { bucket, prefix } => {
                let last = self.last_listed(parent, name).await;
                if !matches!(last, LastListed::Unknown | LastListed::Fresh(_)) {
                    // A large directory whose listing expired while lookups still come: it is
                    // listed again in the background, and meanwhile what the last listing
                    // showed makes each lookup one request (none for a file whose HeadObject
                    // answered within the TTL).
                    self.list_whole(parent, bucket, prefix);
                }
                match last {
                    // Listed again since the fresh listing was looked for.
                    LastListed::Fresh(listing) => {
                        let found = self.find_listed(&listing, &mut *listing.lock().await, name, want_meta);
                        self.listed_entry(&listing, found).await?
                    }
                    LastListed::Headed(e) => Some(*e),
                    LastListed::File => self.lookup_in_s3(parent, &pnode.loc, name, Probe::FileFirst).await?,
                    LastListed::Dir => self.lookup_in_s3(parent, &pnode.loc, name, Probe::DirFirst).await?,
                    LastListed::Absent => self.lookup_in_s3(parent, &pnode.loc, name, Probe::Both).await?,
                    LastListed::Unknown => match self.listing_for_lookups(parent, bucket, prefix).await? {
                        Some(listing) => {
                            let found = self.find_listed(&listing, &mut *listing.lock().await, name, want_meta);
                            self.listed_entry(&listing, found).await?
                        }
                        None => self.lookup_in_s3(parent, &pnode.loc, name, Probe::Both).await?,
                    },
                }
            }
            Location::File { .. } => unreachable!("checked is_dir"),
        };
        if entry.is_none() {
            let until = Instant::now() + self.config.negative_ttl;
            self.listings.set_missing(parent, name.clone(), until);
        }
        Ok(entry.map(Resolved::Entry))
    }

    /// Deleted through this mount (the DeleteObjects may not have been sent yet).
    fn hidden(&self, bucket: &str, key: &str) -> bool {
        self.deleter.is_pending(bucket, key)
    }

    /// A node the kernel still holds with fresh attributes: it needs no request.
    fn fresh_node(&self, dir: &Location, name: &Name) -> Option<Entry> {
        let locs = [dir.child(name, true)?, dir.child(name, false)?];
        locs.iter().find_map(|loc| {
            let (_, n) = self.inodes.find(loc)?;
            (n.fresh_until > Instant::now()).then(|| Entry { name: name.clone(), loc: n.loc, attr: n.attr })
        })
    }

    /// `name` in `listing` (locked by the caller as `l`), and, for a file whose metadata
    /// (mode, mtime, owner, symlink: listings do not carry it) is not known, the shared
    /// HeadObject that brings it. Taken under the listing's lock: a HeadObject puts its answer
    /// in the listing before it stops being shared, so an entry still without metadata here
    /// means its request, if one is in flight, is still registered, and it is joined rather
    /// than sent again. Also a step of the stat-ahead after `name`. Without `want_meta`, only
    /// the entry, and no HeadObject unless the walk stats what it looks up (an `rm -r` walking
    /// the listing needs no metadata; see [`Listing::stat_ahead`]).
    fn find_listed(&self, listing: &ListingRef, l: &mut Listing, name: &Name, want_meta: bool) -> Option<Listed> {
        let e = l.get(name).cloned()?;
        self.fetch_meta_ahead(listing, l.stat_ahead(name, want_meta));
        if !want_meta {
            return Some(Listed { entry: e, head: None });
        }
        let head = match &e.loc {
            Location::File { bucket, key } if self.needs_meta(&e) => {
                let id = (bucket.clone(), key.clone());
                let cell = self.heads.lock().unwrap().entry(id.clone()).or_default().clone();
                Some((cell, id))
            }
            _ => None,
        };
        Some(Listed { entry: e, head })
    }

    /// A lookup answered by a complete listing: a name it lacks does not exist, a directory is
    /// as listed, and a file is as listed once its metadata is known (see [`Fs::find_listed`]).
    async fn listed_entry(&self, listing: &ListingRef, found: Option<Listed>) -> Result<Option<Entry>> {
        let Some(Listed { entry: e, head }) = found else { return Ok(None) };
        let Some((cell, id)) = head else { return Ok(Some(e)) };
        match self.head_shared(&cell, id.clone(), &e.loc, Some((listing, &e.name))).await {
            Ok(_) if self.hidden(&id.0, &id.1) => Ok(None),
            Ok(attr) => Ok(Some(Entry { attr, ..e })),
            Err(StoreError::NotFound) => Ok(None), // deleted since it was listed
            Err(err) => Err(err.into()),
        }
    }

    /// Whether a listed file's user metadata is unknown: neither set by this mount nor learned
    /// from a HeadObject of the same version (here or in the index on disk). Never, with
    /// `--metadata-from listing`: the listing's attributes are taken as they are.
    fn needs_meta(&self, e: &Entry) -> bool {
        !self.listed_attr(e).1
    }

    /// Waits for (or sends) the shared HeadObject and gives the attributes it answers. The
    /// one that sent it learns its metadata and, with a listing and a name, puts the answer in
    /// that listing before the request stops being shared, so a lookup arriving afterwards
    /// finds it there. That holds whether or not the server's listings carry ETags to match
    /// learned metadata by (s3s-fs's do not).
    async fn head_shared(
        &self,
        cell: &Arc<HeadCell>,
        id: ObjectKey,
        loc: &Location,
        listed: Option<(&ListingRef, &Name)>,
    ) -> crate::store::StoreResult<Attr> {
        let mut sent = false;
        let result = cell
            .get_or_init(|| {
                sent = true;
                self.store.head_object(&id.0, &id.1)
            })
            .await;
        let result = match result {
            Ok(meta) if sent => {
                let attr = self.attr_from_meta(loc, meta);
                if let Some((listing, name)) = listed {
                    listing.lock().await.refresh_file(name, loc, attr.clone());
                }
                Ok(attr)
            }
            Ok(meta) => Ok(self.with_pending_meta(loc, self.meta_attr(meta))),
            Err(e) => Err(e.clone()),
        };
        let mut heads = self.heads.lock().unwrap();
        if heads.get(&id).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            heads.remove(&id);
        }
        result
    }

    /// Fetches, concurrently and in the background, the metadata of the listed files that
    /// [`Listing::stat_ahead`] handed out and that is not known yet. Each is registered as in
    /// flight before this returns, so the next lookup waits for it instead of asking again.
    fn fetch_meta_ahead(&self, listing: &ListingRef, entries: Vec<Entry>) {
        let Some(me) = self.me.upgrade() else { return };
        for e in entries.into_iter().filter(|e| self.needs_meta(e)) {
            let Location::File { bucket, key } = &e.loc else { continue };
            let id = (bucket.clone(), key.clone());
            let cell = {
                let mut heads = self.heads.lock().unwrap();
                if heads.contains_key(&id) {
                    continue; // already on its way
                }
                heads.entry(id.clone()).or_default().clone()
            };
            let (me, listing) = (me.clone(), listing.clone());
            tokio::spawn(async move {
                // A failure is not kept: a lookup waiting meets it, a later one asks again.
                let _ = me.head_shared(&cell, id, &e.loc, Some((&listing, &e.name))).await;
            });
        }
    }

    /// A listing of directory `dir` made to answer lookups: its first page, which, when it is
    /// the whole directory, is cached like a readdir's listing and returned. A larger
    /// directory is remembered as such for the metadata TTL and gives `None`: its lookups use
    /// HeadObject and a one-key listing instead (a page of 1,000 names per lookup costs more).
    async fn listing_for_lookups(
        &self,
        dir: Ino,
        bucket: &Arc<str>,
        prefix: &str,
    ) -> Result<Option<Arc<tokio::sync::Mutex<Listing>>>> {
        if let Some(lookups) = self.listings.large_dir_lookup(dir) {
            if lookups == LIST_WHOLE_AFTER {
                self.list_whole(dir, bucket, prefix);
            }
            return Ok(None);
        }
        let mut l = Listing::default();
        let hide = |key: &str| self.hidden(bucket, key);
        l.fetch_page(&self.store, bucket, prefix, self.mount_time, &hide, false).await?;
        if !l.done {
            self.listings.set_large(dir, Instant::now() + self.config.metadata_ttl, 0);
            return Ok(None);
        }
        self.add_writers(&mut l, bucket, prefix);
        let l = Arc::new(tokio::sync::Mutex::new(l));
        self.listings.put(dir, l.clone());
        Ok(Some(l))
    }

    /// Lists directory `dir` whole in the background (prefetching pages) and caches it for
    /// lookups, fresh for the TTL from its last page, as a readdir's listing is; unless a
    /// change to cached listings happened meanwhile (it might miss it), or it holds more than
    /// half the names all cached listings may (then it is not tried again for
    /// [`TOO_LARGE_TTLS`]).
    fn list_whole(&self, dir: Ino, bucket: &Arc<str>, prefix: &str) {
        let Some(me) = self.me.upgrade() else { return };
        // Not while on its way, nor within half a TTL after it ended (its result may have been
        // dropped because of a change made meanwhile: a listing that cannot keep up with
        // changes is not restarted at every lookup).
        if !self.listings.start_whole(dir, self.config.metadata_ttl / 2) {
            return;
        }
        let (bucket, prefix) = (bucket.clone(), prefix.to_string());
        tokio::spawn(async move {
            let changes = me.listings.changes();
            let mut l = Listing::default();
            let hide = |key: &str| me.hidden(&bucket, key);
            let mut failed = None;
            // At most half of what all cached listings may hold, so that it leaves room for
            // the small ones a walk through it lists.
            while !l.done && l.entries.len() <= LISTED_ENTRIES_BUDGET / 2 && failed.is_none() {
                failed = l.fetch_page(&me.store, &bucket, &prefix, me.mount_time, &hide, true).await.err();
            }
            if let Some(e) = failed {
                debug!(bucket = &*bucket, prefix, error = %e, "listing a large directory whole failed");
            } else if !l.done {
                // Too large to keep: not listed whole again for a while (it would be every TTL),
                // its lookups go on probing.
                let until = Instant::now() + me.config.metadata_ttl * TOO_LARGE_TTLS;
                me.listings.set_large(dir, until, u32::MAX);
            } else if me.listings.changes() == changes {
                me.add_writers(&mut l, &bucket, &prefix);
                debug!(bucket = &*bucket, prefix, names = l.entries.len(), "listed a large directory whole");
                me.listings.put(dir, Arc::new(tokio::sync::Mutex::new(l)));
            }
            me.listings.whole_ended(dir);
        });
    }

    /// Adds to a complete listing of `prefix` the files being written there (not in S3 yet).
    fn add_writers(&self, listing: &mut Listing, bucket: &str, prefix: &str) {
        for (_, info) in self.writers_under(bucket, prefix) {
            let attr = self.staged_attr(&info);
            listing.add_staged(prefix, info.loc, attr);
        }
    }

    /// What the last complete listing of large directory `dir` still kept (expired: see
    /// [`listings::STALE_LISTING_TTLS`]) says of `name`.
    async fn last_listed(&self, dir: Ino, name: &Name) -> LastListed {
        let Some(l) = self.cached_listing(dir) else { return LastListed::Unknown };
        let g = l.lock().await;
        if !g.done || g.entries.len() <= LIST_PAGE {
            return LastListed::Unknown;
        }
        if g.fresh(self.config.metadata_ttl) {
            drop(g);
            return LastListed::Fresh(l);
        }
        if let Some(e) = g.headed_file(name, self.config.metadata_ttl) {
            return LastListed::Headed(Box::new(e.clone()));
        }
        match g.get(name) {
            Some(e) if e.loc.is_dir() => LastListed::Dir,
            Some(_) => LastListed::File,
            None => LastListed::Absent,
        }
    }

    /// Whether `prefix+name` is a folder (a one-key listing of `prefix+name/`: the folder wins
    /// when both exist) or a file (HeadObject on `prefix+name`): both concurrently, or, for a
    /// name the directory's last listing showed, what it showed first and the other only if
    /// that is gone.
    async fn lookup_in_s3(&self, parent: Ino, dir: &Location, name: &Name, probe: Probe) -> Result<Option<Entry>> {
        let (Some(file_loc), Some(dir_loc)) = (dir.child(name, false), dir.child(name, true)) else {
            return Ok(None);
        };
        let (Location::File { bucket, key }, Location::Dir { prefix: dir_prefix, .. }) = (&file_loc, &dir_loc) else {
            unreachable!("child() builds these kinds");
        };
        let hidden = |head: std::result::Result<ObjectMeta, StoreError>| match head {
            Ok(_) if self.hidden(bucket, key) => Err(StoreError::NotFound),
            h => h,
        };
        if probe == Probe::DirFirst && self.dir_exists(bucket, dir_prefix).await? {
            return Ok(Some(Entry { name: name.clone(), loc: dir_loc, attr: Attr::dir(self.mount_time) }));
        }
        let (head, is_dir) = if probe != Probe::Both {
            // Shared with a stat-ahead's HeadObject of the same key still in flight. One that
            // answered since the listing was looked at has put its answer in the listing
            // before it stopped being shared: looked at again once this one is registered.
            let id = (bucket.clone(), key.clone());
            let cell = self.heads.lock().unwrap().entry(id.clone()).or_default().clone();
            if cell.get().is_none()
                && let LastListed::Headed(e) = self.last_listed(parent, name).await
            {
                let mut heads = self.heads.lock().unwrap();
                if heads.get(&id).is_some_and(|c| Arc::ptr_eq(c, &cell)) && cell.get().is_none() {
                    heads.remove(&id);
                }
                return Ok(Some(*e));
            }
            match self.head_shared(&cell, id, &file_loc, None).await {
                Ok(attr) if !self.hidden(bucket, key) => {
                    return Ok(Some(Entry { name: name.clone(), attr, loc: file_loc }));
                }
                Ok(_) | Err(StoreError::NotFound) if probe == Probe::DirFirst => return Ok(None),
                Ok(_) | Err(StoreError::NotFound) => {
                    (Err(StoreError::NotFound), self.dir_exists(bucket, dir_prefix).await)
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            let (head, is_dir) = tokio::join!(self.store.head_object(bucket, key), self.dir_exists(bucket, dir_prefix));
            (hidden(head), is_dir)
        };
        let is_dir = match is_dir {
            Ok(d) => d,
            Err(e) => {
                if head.is_ok() {
                    debug!(error = %e, key = dir_prefix.as_str(), "directory probe failed; using the object");
                    false
                } else {
                    return Err(e);
                }
            }
        };
        if is_dir {
            if head.is_ok() {
                info!(
                    bucket = &**bucket,
                    key = key.as_str(),
                    "an object and a directory share a name; the directory is shown"
                );
            }
            return Ok(Some(Entry { name: name.clone(), loc: dir_loc, attr: Attr::dir(self.mount_time) }));
        }
        match head {
            Ok(meta) => {
                Ok(Some(Entry { name: name.clone(), attr: self.attr_from_meta(&file_loc, &meta), loc: file_loc }))
            }
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether anything not deleted through this mount lies under `prefix`.
    async fn dir_exists(&self, bucket: &str, prefix: &str) -> Result<bool> {
        if self.hidden(bucket, prefix) {
            return Ok(false); // removed with rmdir
        }
        self.any_key_under(bucket, prefix, false).await
    }

    /// Whether `prefix` holds a key (other than its own marker, with `skip_marker`) that is not
    /// being deleted. The first page is as small as can answer; later pages are full.
    async fn any_key_under(&self, bucket: &str, prefix: &str, skip_marker: bool) -> Result<bool> {
        let mut token: Option<String> = None;
        let mut max_keys = if skip_marker { 2 } else { 1 };
        loop {
            let page = self
                .store
                .list_objects(ListRequest {
                    bucket,
                    prefix,
                    delimiter: None,
                    continuation: token.as_deref(),
                    max_keys: Some(max_keys),
                })
                .await?;
            if page.objects.iter().any(|o| !(self.hidden(bucket, &o.key) || skip_marker && o.key == prefix)) {
                return Ok(true);
            }
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(false),
            }
            max_keys = 1000;
        }
    }

    pub fn forget(&self, ino: Ino, n: u64) {
        self.inodes.forget(ino, n);
    }

    pub async fn getattr(&self, ino: Ino) -> Result<Stat> {
        if let Some(w) = self.writer(ino) {
            let info = w.info.lock().unwrap().clone();
            return Ok(Stat { unlinked: info.unlinked, ..self.stat_of(ino, &info.loc, &self.staged_attr(&info)) });
        }
        let node = self.node(ino)?;
        if node.unlinked {
            return Ok(Stat { unlinked: true, ..self.stat_of(ino, &node.loc, &node.attr) });
        }
        if self.dir_has_meta(&node.loc) {
            let attr = self.dir_attr(ino, &node).await?;
            return Ok(self.stat_of(ino, &node.loc, &attr));
        }
        if matches!(node.loc, Location::File { .. }) && node.fresh_until <= Instant::now() {
            let attr = self.current_attr(&node).await?;
            if attr.kind != node.attr.kind {
                // The kernel's inode has the other type (a listed file turned out to be a link,
                // or another client replaced one by the other): it cannot change, so the kernel
                // is sent to look the name up again (ESTALE makes the VFS retry the path walk
                // with revalidation), and that lookup gives the name a new number with the
                // right type (`InodeTable::remember`); this one keeps its old type.
                debug!(ino, kind = ?attr.kind, "the file's type changed: the kernel looks it up again");
                return Err(Error::TypeChanged);
            }
            self.inodes.set_attr(ino, attr.clone(), self.fresh_until());
            return Ok(self.stat_of(ino, &node.loc, &attr));
        }
        Ok(self.stat_of(ino, &node.loc, &self.with_pending_meta(&node.loc, node.attr.clone())))
    }

    /// The attributes of the object at file node `node` now: from its directory's fresh
    /// listing, whose HeadObjects are shared and fetched ahead while `ls -l` or rsync walks it
    /// (an entry whose version the index knows needs none), else from a HeadObject.
    async fn current_attr(&self, node: &inode::Node) -> Result<Attr> {
        let Location::File { bucket, key } = &node.loc else { unreachable!("called for files") };
        if let Some(name) = node.loc.name()
            && let Some(listing) = self.listing_having(node.parent, &name).await
        {
            let found = {
                let mut l = listing.lock().await;
                match l.get(&name) {
                    Some(e) if e.loc == node.loc => self.find_listed(&listing, &mut l, &name, true),
                    _ => None,
                }
            };
            if found.is_some() {
                return match self.listed_entry(&listing, found).await? {
                    Some(e) => Ok(self.listed_attr(&e).0),
                    None => Err(Error::NotFound),
                };
            }
        }
        let meta = self.store.head_object(bucket, key).await?;
        Ok(self.attr_from_meta(&node.loc, &meta))
    }

    pub async fn opendir(&self, ino: Ino) -> Result<u64> {
        let node = self.node(ino)?;
        if !node.loc.is_dir() {
            return Err(Error::NotDir);
        }
        self.walk_ahead(ino, &node);
        let listing = match self.started_listing(ino).await {
            Some(l) => l,
            None => Arc::new(tokio::sync::Mutex::new(Listing::default())),
        };
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(DirHandle { ino, listing: tokio::sync::Mutex::new(listing) });
        self.dir_handles.lock().unwrap().insert(fh, handle);
        Ok(fh)
    }

    /// Entries from `offset` on: "." and ".." are offsets 0 and 1, listing entry i is i + 2.
    /// Returns up to `max` items, listing more pages as needed; an empty result ends the stream.
    pub async fn readdir(&self, fh: u64, offset: u64, max: usize) -> Result<Vec<DirItem>> {
        let handle = self.dir_handles.lock().unwrap().get(&fh).cloned().ok_or(Error::BadHandle)?;
        let node = self.node(handle.ino)?;
        let mut slot = handle.listing.lock().await;
        if offset == 0 {
            // rewinddir: list afresh unless the listing is still fresh.
            let stale = slot.try_lock().map_or(true, |l| l.started.is_some() && !l.fresh(self.config.metadata_ttl));
            if stale {
                *slot = Arc::new(tokio::sync::Mutex::new(Listing::default()));
            }
        }
        let listing_arc = slot.clone();
        let mut listing = listing_arc.lock().await;
        let mut items = Vec::new();
        let me = self.stat_of(handle.ino, &node.loc, &node.attr);
        for (i, name) in [".", ".."].iter().enumerate() {
            if offset <= i as u64 {
                items.push(DirItem { next: i as u64 + 1, name: name.to_string(), stat: me, entry: None });
            }
        }
        let want = offset.saturating_sub(2) as usize + max;
        while listing.entries.len() < want && !listing.done {
            match &node.loc {
                Location::Buckets => *listing = self.root_listing().await?,
                Location::Dir { bucket, prefix } => {
                    let hide = |key: &str| self.hidden(bucket, key);
                    listing.fetch_page(&self.store, bucket, prefix, self.mount_time, &hide, true).await?;
                    if listing.done {
                        self.add_writers(&mut listing, bucket, prefix);
                    }
                }
                Location::File { .. } => return Err(Error::NotDir),
            }
        }
        let start = offset.saturating_sub(2) as usize;
        let live = listing.entries.iter().enumerate().skip(start).filter(|(i, _)| !listing.is_gone(*i));
        for (i, e) in live.take(max.saturating_sub(items.len())) {
            let ino = self.inodes.ino_hint(&e.loc);
            let mut e = e.clone();
            if let Some((_, info)) = self.writer_at(&e.loc) {
                e.attr = self.staged_attr(&info); // being written: size and times as they are now
            }
            let known;
            (e.attr, known) = self.listed_attr(&e);
            items.push(DirItem {
                next: i as u64 + 3,
                name: e.name.to_string(),
                stat: Stat { known, ..self.stat_of(ino, &e.loc, &e.attr) },
                entry: Some(e),
            });
        }
        // Also while pages are still coming: `ls -l` stats each name as it reads it, and the
        // names already listed answer those lookups (see `listing_having`).
        if listing.started.is_some() && listing.entries.len() <= MAX_CACHED_LISTING {
            self.listings.put(handle.ino, listing_arc.clone());
        }
        Ok(items)
    }

    /// The kernel was handed `entry` (by readdirplus, whose `DirItem::entry` carries the
    /// attributes `DirItem::stat` shows, or by a lookup): that counts as a lookup. An entry whose
    /// attributes are not `known` is remembered as stale, so that getattr asks S3.
    pub fn remember_entry(&self, parent: Ino, entry: &Entry, known: bool) -> Stat {
        let fresh_until = if known { self.fresh_until() } else { Instant::now() };
        let ino = self.inodes.remember(parent, entry.loc.clone(), entry.attr.clone(), fresh_until);
        Stat { known, ..self.stat_of(ino, &entry.loc, &entry.attr) }
    }

    pub fn releasedir(&self, fh: u64) {
        self.dir_handles.lock().unwrap().remove(&fh);
    }

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
        let pending =
            (write || truncate) && self.pending_meta.lock().unwrap().contains_key(&(bucket.clone(), key.clone()));
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
    async fn follow_version(&self, reader: &mut Reader) -> Result<bool> {
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

    fn handle(&self, fh: u64) -> Result<Arc<FileHandle>> {
        self.file_handles.lock().unwrap().get(&fh).cloned().ok_or(Error::BadHandle)
    }
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
