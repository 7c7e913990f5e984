//! The inode table: inode number <-> where a node lives in S3, its cached attributes, and the
//! kernel's lookup count.
//!
//! Inode numbers are a hash of the node's location (bucket, key, kind), so a path keeps its number
//! for the life of the mount even after the kernel forgets it and looks it up again, and the table
//! only holds nodes the kernel still references: `forget` removes a node when its count reaches
//! zero, so a `find` over millions of keys does not grow the table without bound. On the rare hash
//! collision between two live nodes the later one takes the next free number (and that number is
//! then stable only while the node is referenced).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

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
            Location::Dir {
                bucket: bucket.clone(),
                prefix: key + "/",
            }
        } else {
            Location::File {
                bucket: bucket.clone(),
                key,
            }
        })
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

/// Attributes as S3 told them; the mount's defaults fill what is `None` (see `Fs::file_attr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub size: u64,
    pub mtime: SystemTime,
    pub perm: Option<u16>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub etag: Option<String>,
}

impl Attr {
    pub fn dir(mtime: SystemTime) -> Attr {
        Attr {
            size: 0,
            mtime,
            perm: None,
            uid: None,
            gid: None,
            etag: None,
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
    lookups: u64,
}

#[derive(Debug)]
pub struct InodeTable {
    nodes: Mutex<HashMap<Ino, Node>>,
}

impl InodeTable {
    pub fn new(root: Location, attr: Attr) -> InodeTable {
        let node = Node {
            parent: ROOT,
            loc: root,
            attr,
            fresh_until: far_future(),
            cached_etag: None,
            lookups: 1,
        };
        InodeTable {
            nodes: Mutex::new(HashMap::from([(ROOT, node)])),
        }
    }

    pub fn get(&self, ino: Ino) -> Option<Node> {
        self.nodes.lock().unwrap().get(&ino).cloned()
    }

    /// The node at `loc` if the kernel holds it.
    pub fn find(&self, loc: &Location) -> Option<(Ino, Node)> {
        let nodes = self.nodes.lock().unwrap();
        let mut ino = Self::home(loc);
        while let Some(n) = nodes.get(&ino) {
            if &n.loc == loc {
                return Some((ino, n.clone()));
            }
            ino = Self::next(ino);
        }
        None
    }

    /// The number a node at `loc` has, or would get if looked up now.
    pub fn ino_hint(&self, loc: &Location) -> Ino {
        self.find(loc)
            .map_or_else(|| Self::home(loc), |(ino, _)| ino)
    }

    /// Records one kernel lookup of the node at `loc` (creating it), with fresh attributes.
    pub fn remember(&self, parent: Ino, loc: Location, attr: Attr, fresh_until: Instant) -> Ino {
        let mut nodes = self.nodes.lock().unwrap();
        let mut ino = Self::home(&loc);
        loop {
            match nodes.get_mut(&ino) {
                Some(n) if n.loc == loc => {
                    n.lookups += 1;
                    n.parent = parent;
                    n.attr = attr;
                    n.fresh_until = fresh_until;
                    return ino;
                }
                Some(_) => ino = Self::next(ino),
                None => {
                    nodes.insert(
                        ino,
                        Node {
                            parent,
                            loc,
                            attr,
                            fresh_until,
                            cached_etag: None,
                            lookups: 1,
                        },
                    );
                    return ino;
                }
            }
        }
    }

    /// The kernel dropped `n` references; the node goes when none are left (never the root).
    pub fn forget(&self, ino: Ino, n: u64) {
        let mut nodes = self.nodes.lock().unwrap();
        if let Some(node) = nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(n);
            if node.lookups == 0 && ino != ROOT {
                nodes.remove(&ino);
            }
        }
    }

    pub fn set_attr(&self, ino: Ino, attr: Attr, fresh_until: Instant) {
        if let Some(n) = self.nodes.lock().unwrap().get_mut(&ino) {
            n.attr = attr;
            n.fresh_until = fresh_until;
        }
    }

    /// Records the ETag now in the page cache; returns whether it equals the one before.
    pub fn swap_cached_etag(&self, ino: Ino, etag: Option<String>) -> bool {
        let mut nodes = self.nodes.lock().unwrap();
        match nodes.get_mut(&ino) {
            Some(n) => {
                let same = etag.is_some() && n.cached_etag == etag;
                n.cached_etag = etag;
                same
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.lock().unwrap().len()
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

pub fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(100 * 365 * 86400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str) -> Location {
        Location::File {
            bucket: "b".into(),
            key: key.into(),
        }
    }

    #[test]
    fn numbers_are_stable_and_forget_frees() {
        let t = InodeTable::new(Location::Buckets, Attr::dir(SystemTime::UNIX_EPOCH));
        let a = t.remember(
            ROOT,
            file("a"),
            Attr::dir(SystemTime::UNIX_EPOCH),
            Instant::now(),
        );
        assert_eq!(
            t.remember(
                ROOT,
                file("a"),
                Attr::dir(SystemTime::UNIX_EPOCH),
                Instant::now()
            ),
            a
        );
        assert_eq!(t.len(), 2);
        t.forget(a, 1);
        assert!(t.get(a).is_some(), "one reference left");
        t.forget(a, 1);
        assert!(t.get(a).is_none());
        assert_eq!(t.len(), 1);
        let again = t.remember(
            ROOT,
            file("a"),
            Attr::dir(SystemTime::UNIX_EPOCH),
            Instant::now(),
        );
        assert_eq!(again, a, "same path, same number after forget");
        t.forget(ROOT, 5);
        assert!(t.get(ROOT).is_some(), "the root is never forgotten");
    }

    #[test]
    fn file_and_dir_of_one_name_differ() {
        let d = Location::Dir {
            bucket: "b".into(),
            prefix: "a/".into(),
        };
        assert_ne!(InodeTable::home(&d), InodeTable::home(&file("a")));
    }
}
