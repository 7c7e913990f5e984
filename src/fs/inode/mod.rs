//! The inode table: inode number <-> where a node lives in S3, its cached attributes, and the
//! kernel's lookup count.
//!
//! Inode numbers are a hash of the node's location (bucket, key, kind), so a path keeps its number
//! for the life of the mount even after the kernel forgets it and looks it up again, and the table
//! only holds nodes the kernel still references: `forget` removes a node when its count reaches
//! zero, so a `find` over millions of keys does not grow the table without bound. On the rare hash
//! collision between two live nodes the later one takes the next free number (and that number is
//! then stable only while the node is referenced).

pub mod pinned;
mod shrink;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::names::Name;

pub type Ino = u64;
pub const ROOT: Ino = 1;

/// Where a node lives in S3.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// The root of a mount that shows buckets.
    Buckets,
    /// A directory: a bucket's root (`prefix` empty) or a prefix ending in '/'.
    Dir { bucket: Arc<str>, prefix: String },
    /// An object.
    File { bucket: Arc<str>, key: String },
}

impl Location {
    pub fn is_dir(&self) -> bool {
        !matches!(self, Location::File { .. })
    }

    /// The location of `name` inside this directory, as a file or as a directory.
    /// `None` for the bucket list root, whose children are buckets.
    pub fn child(&self, name: &Name, dir: bool) -> Option<Location> {
        let (bucket, prefix) = match self {
            Location::Dir { bucket, prefix } => (bucket, prefix),
            Location::Buckets | Location::File { .. } => return None,
        };
        let key = format!("{prefix}{name}");
        Some(if dir {
            Location::Dir { bucket: bucket.clone(), prefix: key + "/" }
        } else {
            Location::File { bucket: bucket.clone(), key }
        })
    }

    /// The name this node has in its parent: the last segment of its key or prefix, or its
    /// bucket for a bucket's root; `None` for the bucket-list root.
    pub fn name(&self) -> Option<Name> {
        match self {
            Location::Buckets => None,
            Location::Dir { bucket, prefix } if prefix.is_empty() => Name::new(bucket),
            Location::Dir { prefix, .. } => Name::new(prefix.trim_end_matches('/').rsplit('/').next()?),
            Location::File { key, .. } => Name::new(key.rsplit('/').next()?),
        }
    }

    fn hash(&self) -> u64 {
        // FNV-1a: stable across runs and Rust versions, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        match self {
            Location::Buckets => eat(b"R"),
            Location::Dir { bucket, prefix } => {
                eat(b"D");
                eat(bucket.as_bytes());
                eat(b"\0");
                eat(prefix.as_bytes());
            }
            Location::File { bucket, key } => {
                eat(b"F");
                eat(bucket.as_bytes());
                eat(b"\0");
                eat(key.as_bytes());
            }
        }
        h
    }
}

/// What kind of file an object is, from the file type in its `mode` metadata. s3fs stores
/// FIFOs, sockets and device nodes as empty objects with such a mode (and `rdev` for devices);
/// s3drive does the same, so `mkfifo`, `cp -a` and `rsync -a` of them work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    File,
    Symlink,
    Fifo,
    Socket,
    CharDev(u32),
    BlockDev(u32),
}

impl Kind {
    /// The kind an `st_mode` names (`rdev` for device nodes); a directory's or an unknown
    /// type's is a regular file.
    pub fn from_mode(mode: u32, rdev: u32) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::CharDev(rdev),
            libc::S_IFBLK => Kind::BlockDev(rdev),
            _ => Kind::File,
        }
    }

    /// The file type bits of `st_mode`.
    pub fn type_bits(self) -> u32 {
        match self {
            Kind::File => libc::S_IFREG,
            Kind::Symlink => libc::S_IFLNK,
            Kind::Fifo => libc::S_IFIFO,
            Kind::Socket => libc::S_IFSOCK,
            Kind::CharDev(_) => libc::S_IFCHR,
            Kind::BlockDev(_) => libc::S_IFBLK,
        }
    }

    /// The device number of a device node (0 otherwise).
    pub fn rdev(self) -> u32 {
        match self {
            Kind::CharDev(d) | Kind::BlockDev(d) => d,
            _ => 0,
        }
    }
}

/// Attributes as S3 told them; the mount's defaults fill what is `None` (see `Fs::stat_of`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// A symbolic link (an object whose `mode` metadata carries S_IFLNK, as s3fs writes them).
    pub kind: Kind,
    pub size: u64,
    pub mtime: SystemTime,
    /// From `atime` user metadata (or a utimens here); `None`: the mtime stands for it.
    pub atime: Option<SystemTime>,
    /// From `ctime` user metadata (or a change here); `None`: LastModified, else the mtime.
    pub ctime: Option<SystemTime>,
    pub perm: Option<u16>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub etag: Option<String>,
    /// S3's LastModified of the object version (with the ETag, what identifies the version).
    pub modified: Option<SystemTime>,
    /// The object's storage class, when a listing or HeadObject said (a copy keeps it).
    pub class: Option<&'static str>,
}

/// A storage class as one of the names S3 knows (`None` for one it does not).
pub fn storage_class(name: &str) -> Option<&'static str> {
    crate::config::STORAGE_CLASSES.iter().find(|c| **c == name).copied()
}

impl Attr {
    pub fn dir(mtime: SystemTime) -> Attr {
        Attr {
            kind: Kind::File,
            size: 0,
            mtime,
            atime: None,
            ctime: None,
            perm: None,
            uid: None,
            gid: None,
            etag: None,
            modified: None,
            class: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub parent: Ino,
    pub loc: Location,
    pub attr: Attr,
    /// Until when `attr` may be served without asking S3.
    pub fresh_until: Instant,
    /// ETag of the data the kernel's page cache holds, to keep that cache across opens.
    pub cached_etag: Option<String>,
    /// Its name was removed (unlink, or a rename over it) through this mount while the kernel
    /// still holds it (an open file): it has no links, and S3 no longer has it to ask.
    pub unlinked: bool,
    lookups: u64,
    /// When the kernel last looked it up or asked for it (seconds since the table began).
    used: u32,
}

#[derive(Debug, Default)]
struct Tables {
    /// Boxed: the map's spare capacity after a walk costs a pointer per slot, not a node.
    nodes: HashMap<Ino, Box<Node>>,
    /// Which live node a location finds, by the location's hash: the node holds the location,
    /// so a walk of a million names does not keep every key twice. Almost always one node per
    /// hash; a detached or replaced node is in no slot.
    by_loc: HashMap<u64, Slot>,
}

#[derive(Debug)]
enum Slot {
    One(Ino),
    Many(Vec<Ino>),
}

impl Tables {
    fn find(&self, loc: &Location) -> Option<Ino> {
        let at = |i: &Ino| self.nodes.get(i).is_some_and(|n| n.loc == *loc);
        match self.by_loc.get(&loc.hash())? {
            Slot::One(i) => at(i).then_some(*i),
            Slot::Many(v) => v.iter().find(|i| at(i)).copied(),
        }
    }

    /// `ino` is what `loc` finds from now on (the caller has unlinked any other).
    fn link(&mut self, loc: &Location, ino: Ino) {
        match self.by_loc.entry(loc.hash()) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Slot::One(ino));
            }
            std::collections::hash_map::Entry::Occupied(mut e) => match e.get_mut() {
                Slot::One(other) => {
                    let other = *other;
                    e.insert(Slot::Many(vec![other, ino]));
                }
                Slot::Many(v) => v.push(ino),
            },
        }
    }

    /// `loc` no longer finds `ino` (if it did).
    fn unlink(&mut self, loc: &Location, ino: Ino) {
        let h = loc.hash();
        let empty = match self.by_loc.get_mut(&h) {
            None => return,
            Some(Slot::One(i)) => *i == ino,
            Some(Slot::Many(v)) => {
                v.retain(|i| *i != ino);
                if let [only] = v[..] {
                    self.by_loc.insert(h, Slot::One(only));
                    return;
                }
                v.is_empty()
            }
        };
        if empty {
            self.by_loc.remove(&h);
        }
    }
}

#[derive(Debug)]
pub struct InodeTable {
    inner: Mutex<Tables>,
    began: Instant,
}

impl InodeTable {
    pub fn new(root: Location, attr: Attr) -> InodeTable {
        let node = Node {
            parent: ROOT,
            loc: root.clone(),
            attr,
            fresh_until: far_future(),
            cached_etag: None,
            unlinked: false,
            lookups: 1,
            used: 0,
        };
        let mut t = Tables { nodes: HashMap::from([(ROOT, Box::new(node))]), by_loc: HashMap::new() };
        t.link(&root, ROOT);
        InodeTable { inner: Mutex::new(t), began: Instant::now() }
    }

    fn now(&self) -> u32 {
        self.began.elapsed().as_secs() as u32
    }

    pub fn get(&self, ino: Ino) -> Option<Node> {
        let now = self.now();
        let mut t = self.inner.lock().unwrap();
        let n = t.nodes.get_mut(&ino)?;
        n.used = now;
        Some((**n).clone())
    }

    /// Up to `count` file nodes (not directories, not the root) unused for at least `idle`,
    /// least recently used first, as (number, parent, location). Each counts as used now, so
    /// that one the kernel keeps (an open file) is not offered again at once.
    pub fn coldest(&self, count: usize, idle: Duration) -> Vec<(Ino, Ino, Location)> {
        self.pick(count, idle, false)
    }

    /// Like [`InodeTable::coldest`], for directories no node lies in: what the kernel holds
    /// under them is gone, so dropping one drops nothing else. Never the root.
    pub fn coldest_dirs(&self, count: usize, idle: Duration) -> Vec<(Ino, Ino, Location)> {
        self.pick(count, idle, true)
    }

    fn pick(&self, count: usize, idle: Duration, dirs: bool) -> Vec<(Ino, Ino, Location)> {
        let now = self.now();
        let before = now.saturating_sub(idle.as_secs().max(1) as u32);
        let mut t = self.inner.lock().unwrap();
        // Directories with a node in them are not offered.
        let parents: std::collections::HashSet<Ino> = if dirs {
            t.nodes.iter().filter(|(i, _)| **i != ROOT).map(|(_, n)| n.parent).collect()
        } else {
            Default::default()
        };
        let mut cold: Vec<(u32, Ino)> = t
            .nodes
            .iter()
            .filter(|(i, n)| {
                **i != ROOT && !n.unlinked && n.used < before && n.loc.is_dir() == dirs && !parents.contains(i)
            })
            .map(|(i, n)| (n.used, *i))
            .collect();
        if cold.len() > count {
            cold.select_nth_unstable(count);
            cold.truncate(count);
        }
        cold.iter()
            .filter_map(|(_, i)| {
                let n = t.nodes.get_mut(i)?;
                n.used = now;
                Some((*i, n.parent, n.loc.clone()))
            })
            .collect()
    }

    /// The node at `loc` if the kernel holds it.
    pub fn find(&self, loc: &Location) -> Option<(Ino, Node)> {
        let t = self.inner.lock().unwrap();
        let ino = t.find(loc)?;
        t.nodes.get(&ino).map(|n| (ino, (**n).clone()))
    }

    /// The number a node at `loc` has, or would get if looked up now.
    pub fn ino_hint(&self, loc: &Location) -> Ino {
        self.inner.lock().unwrap().find(loc).unwrap_or_else(|| Self::home(loc))
    }

    /// Records one kernel lookup of the node at `loc` (creating it), with fresh attributes.
    pub fn remember(&self, parent: Ino, loc: Location, attr: Attr, fresh_until: Instant) -> Ino {
        let now = self.now();
        let mut t = self.inner.lock().unwrap();
        if let Some(ino) = t.find(&loc) {
            let n = t.nodes.get_mut(&ino).expect("found among the nodes");
            if !loc.is_dir() && n.attr.kind != attr.kind {
                // The kernel cannot change an inode's file type: one whose attributes come back
                // with another type becomes a bad inode, and every call on it EIO. The old
                // number stays with the node the kernel holds (no longer found by location,
                // no links) until it is forgotten; the location gets a number of its own.
                n.unlinked = true;
                t.unlink(&loc, ino);
                return Self::insert(&mut t, parent, loc, attr, fresh_until, now);
            }
            n.used = now;
            n.lookups += 1;
            n.parent = parent;
            n.attr = attr;
            n.fresh_until = fresh_until;
            return ino;
        }
        Self::insert(&mut t, parent, loc, attr, fresh_until, now)
    }

    fn insert(t: &mut Tables, parent: Ino, loc: Location, attr: Attr, fresh_until: Instant, now: u32) -> Ino {
        let mut ino = Self::home(&loc);
        while t.nodes.contains_key(&ino) {
            ino = Self::next(ino);
        }
        t.link(&loc, ino);
        t.nodes.insert(
            ino,
            Box::new(Node {
                parent,
                loc,
                attr,
                fresh_until,
                cached_etag: None,
                unlinked: false,
                lookups: 1,
                used: now,
            }),
        );
        ino
    }

    /// A rename moved the node `ino` (and, for a directory, every node under it) to `to`.
    /// Numbers stay: the kernel keeps its dentries for the moved nodes.
    pub fn relocate(&self, ino: Ino, to: Location) {
        let mut t = self.inner.lock().unwrap();
        let Some(from) = t.nodes.get(&ino).map(|n| n.loc.clone()) else { return };
        let moved: Vec<(Ino, Location)> =
            t.nodes.iter().filter_map(|(&i, n)| rebase(&n.loc, &from, &to).map(|l| (i, l))).collect();
        for (i, new_loc) in moved {
            let linked = t.find(&t.nodes[&i].loc) == Some(i);
            let old = std::mem::replace(&mut t.nodes.get_mut(&i).expect("listed").loc, new_loc.clone());
            if linked {
                t.unlink(&old, i);
            }
            // A node that was at the destination is replaced: it keeps its number until
            // forgotten but is no longer found by location.
            if let Some(there) = t.find(&new_loc).filter(|&x| x != i) {
                t.unlink(&new_loc, there);
            }
            if t.find(&new_loc) != Some(i) {
                t.link(&new_loc, i);
            }
        }
    }

    /// Nothing is at `loc` any more (deleted): later lookups make a new node.
    pub fn detach(&self, loc: &Location) {
        let mut t = self.inner.lock().unwrap();
        if let Some(ino) = t.find(loc) {
            t.unlink(loc, ino);
            if let Some(n) = t.nodes.get_mut(&ino) {
                n.unlinked = true;
            }
        }
    }

    /// The kernel dropped `n` references; the node goes when none are left (never the root).
    pub fn forget(&self, ino: Ino, n: u64) {
        let mut t = self.inner.lock().unwrap();
        if let Some(node) = t.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(n);
            if node.lookups == 0 && ino != ROOT {
                let loc = t.nodes.remove(&ino).expect("present").loc;
                t.unlink(&loc, ino);
            }
        }
    }

    pub fn set_attr(&self, ino: Ino, attr: Attr, fresh_until: Instant) {
        if let Some(n) = self.inner.lock().unwrap().nodes.get_mut(&ino) {
            if !n.loc.is_dir() && n.attr.kind != attr.kind {
                // Never another file type under a number the kernel holds (see `remember`):
                // the next getattr finds the change and sends the kernel to look the name up.
                n.fresh_until = Instant::now();
                return;
            }
            n.attr = attr;
            n.fresh_until = fresh_until;
        }
    }

    /// The node's attributes are no longer trusted: the next getattr asks S3.
    pub fn expire(&self, ino: Ino) {
        if let Some(n) = self.inner.lock().unwrap().nodes.get_mut(&ino) {
            n.fresh_until = Instant::now();
        }
    }

    /// Records the ETag now in the page cache; returns whether it equals the one before.
    pub fn swap_cached_etag(&self, ino: Ino, etag: Option<String>) -> bool {
        let mut t = self.inner.lock().unwrap();
        match t.nodes.get_mut(&ino) {
            Some(n) => {
                let same = etag.is_some() && n.cached_etag == etag;
                n.cached_etag = etag;
                same
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().nodes.len()
    }

    /// Gives back the tables' room when they hold a quarter of it or less (a walk's peak).
    pub fn compact(&self) {
        let mut t = self.inner.lock().unwrap();
        if t.nodes.capacity() > 4 * t.nodes.len().max(1024) {
            t.nodes.shrink_to_fit();
            t.by_loc.shrink_to_fit();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn home(loc: &Location) -> Ino {
        match loc.hash() {
            h if h <= ROOT => h + 2,
            h => h,
        }
    }

    fn next(ino: Ino) -> Ino {
        match ino.wrapping_add(1) {
            n if n <= ROOT => 2,
            n => n,
        }
    }
}

/// `loc` moved from under `from` to under `to`, if it is `from` or lies inside it.
fn rebase(loc: &Location, from: &Location, to: &Location) -> Option<Location> {
    if loc == from {
        return Some(to.clone());
    }
    let (Location::Dir { bucket: fb, prefix: fp }, Location::Dir { bucket: tb, prefix: tp }) = (from, to) else {
        return None;
    };
    match loc {
        Location::Dir { bucket, prefix } if bucket == fb && prefix.starts_with(fp.as_str()) => {
            Some(Location::Dir { bucket: tb.clone(), prefix: format!("{tp}{}", &prefix[fp.len()..]) })
        }
        Location::File { bucket, key } if bucket == fb && key.starts_with(fp.as_str()) => {
            Some(Location::File { bucket: tb.clone(), key: format!("{tp}{}", &key[fp.len()..]) })
        }
        _ => None,
    }
}

pub fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(100 * 365 * 86400)
}

#[cfg(test)]
mod tests;
