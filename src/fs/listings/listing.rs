//! Directory listings: the root's buckets, and ListObjectsV2 with delimiter '/' page by page.
//!
//! A listing turns objects and common prefixes into entries. Within a page S3 sorts them by key,
//! and the two kinds interleave: under `a/`, the object `a/x` sorts before `a/x-1` and the common
//! prefix `a/x/` after both, possibly on a later page. So a name seen as a file may later turn
//! out to also be a directory: the directory wins and replaces the file entry (the object is
//! shadowed, and logged).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::task::JoinHandle;
use tracing::info;

use crate::fs::error::Result;
use crate::fs::inode::{Attr, Kind, Location};
use crate::fs::names::{Child, Name, object_child, prefix_child};
use crate::store::{BucketInfo, ListPage, ListRequest, ObjectStore, StoreError, StoreResult};

/// One name in a directory, with the attributes the listing gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Name,
    pub loc: Location,
    pub attr: Attr,
}

/// A directory's entries, as far as they have been listed.
#[derive(Debug, Default)]
pub struct Listing {
    /// In listing order, then names added through this mount. Positions never move (readdir
    /// offsets are positions): a removed name leaves its slot, marked in `gone`.
    pub entries: Vec<Entry>,
    index: HashMap<Name, usize>,
    gone: HashSet<usize>,
    /// Continuation token of the next page; `None` with `done` at the end.
    token: Option<String>,
    pub done: bool,
    /// When the listing's freshness counts from: the arrival of its first page, and once it is
    /// complete, of its last (a listing of many pages that took longer than the TTL is fresh
    /// for the TTL after it ends, not stale on arrival).
    pub started: Option<Instant>,
    /// When its first page was asked for, and once it is complete, how long the whole listing
    /// took: a refresh of it is started that long before it expires.
    asked: Option<Instant>,
    pub took: std::time::Duration,
    /// When a HeadObject last answered for a file entry (by position; see `refresh_file`).
    headed: HashMap<usize, Instant>,
    /// Each page's arrival: (entries after it, when). A reader paging through a large folder
    /// (GNU `ls -l` stats each name as readdir hands it over) gets names from pages that
    /// arrived moments ago while the listing's first page is long past the TTL.
    pages: Vec<(usize, Instant)>,
    /// The next page, requested as soon as the previous one arrived, so that S3 lists it while
    /// the caller (`ls -l` stat'ing each name) works through the entries already here.
    prefetch: Option<Prefetch>,
    /// Lookups walking this listing in order, for fetching metadata ahead of them.
    ahead: StatAhead,
    /// The directory's own marker object (`prefix/`), as the first page showed it: it carries
    /// the directory's mode, owner and times.
    pub marker: Option<Marker>,
    /// A tree walk opening this directory's subdirectories in order (see `crate::fs::walk`).
    walk: WalkAhead,
}

/// Subdirectories opened in listing order: `find`, `du`, `rm -r`, `rsync` and `ls -R` open
/// them one after another, each waiting for its own listing. After two in order, the listings
/// of the next ones are requested ahead: 4, then 8, then up to [`WALK_AHEAD_MAX`]. Any other
/// open starts over.
#[derive(Debug, Default)]
struct WalkAhead {
    /// Position of the subdirectory opened last.
    last: Option<usize>,
    /// Subdirectories opened in order so far.
    streak: usize,
    /// Positions below this were already handed out.
    to: usize,
}

/// The most subdirectories whose listings are requested ahead of a walk.
pub const WALK_AHEAD_MAX: usize = 16;
/// How far past the opened subdirectory the next ones are looked for (a folder of many files
/// and few subdirectories is not scanned to its end at every open).
const WALK_AHEAD_SCAN: usize = 4096;

/// A directory's marker object as a listing shows it: which version it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub etag: Option<String>,
    pub modified: Option<SystemTime>,
}

/// Metadata read-ahead ("stat-ahead"): `rsync` and `ls -l` without readdirplus look names up one
/// at a time in sorted order, which is listing order. Listings carry no user metadata, so each
/// such lookup of a file would wait for its own HeadObject. After [`STAT_AHEAD_AFTER`] lookups
/// in order, the entries just ahead are handed out for fetching concurrently: as many as lookups
/// have come in order so far, from [`STAT_AHEAD_MIN`] up to [`STAT_AHEAD_MAX`], so that what a
/// walk that stops early leaves unused stays in proportion to what it used. Any other lookup
/// resets it.
#[derive(Debug, Default)]
struct StatAhead {
    /// Position of the last lookup.
    last: Option<usize>,
    /// Lookups in order so far.
    streak: usize,
    /// Positions below this were already handed out.
    to: usize,
    /// A lookup of this streak wanted metadata: the walk stats what it looks up (`ls -l`,
    /// rsync, du), so every step of it keeps the entries ahead coming, also a step whose own
    /// name arrived known. An `rm -r` never wants it and never fetches.
    fetching: bool,
}

/// Lookups in listing order before entries ahead are fetched.
pub const STAT_AHEAD_AFTER: usize = 3;
/// The fewest and the most entries fetched ahead of the last lookup.
pub const STAT_AHEAD_MIN: usize = 8;
pub const STAT_AHEAD_MAX: usize = 128;
/// A lookup at most this many positions after the last one still counts as in order (rsync
/// skips names that are excluded or are not in the source).
const STAT_AHEAD_GAP: usize = 4;

/// A page being listed in the background; dropped unused (`ls | head`), it is cancelled.
#[derive(Debug)]
struct Prefetch(JoinHandle<StoreResult<ListPage>>);

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Listing {
    /// Whether its answer (see `started`) arrived less than `ttl` ago.
    pub fn fresh(&self, ttl: std::time::Duration) -> bool {
        self.started.is_some_and(|t| t + ttl > Instant::now())
    }

    /// Whether a page of this listing arrived less than `ttl` ago (a reader is paging it).
    pub fn paged_within(&self, ttl: std::time::Duration) -> bool {
        self.pages.last().is_some_and(|(_, t)| t.elapsed() < ttl)
    }

    /// Whether `name` is here and was listed less than `ttl` ago: by the page that brought it
    /// (a listing still being paged), or by the complete listing's last page; a name added
    /// through this mount counts from the last page.
    pub fn has_fresh(&self, name: &Name, ttl: std::time::Duration) -> bool {
        let Some(&i) = self.index.get(name) else { return false };
        if self.done {
            return self.fresh(ttl);
        }
        let page = self.pages.iter().find(|(end, _)| i < *end).or(self.pages.last());
        page.is_some_and(|(_, t)| t.elapsed() < ttl)
    }

    pub fn get(&self, name: &Name) -> Option<&Entry> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    /// Notes a lookup of `name` answered by this listing; returns the entries after it whose
    /// metadata to fetch now, if lookups are walking the listing in order (see [`StatAhead`]).
    /// Every lookup is a step of the walk, but only a walk that wants the metadata (`fetch`: a
    /// `stat`, not an `rm -r`'s lookup) sends for the entries ahead (see
    /// [`StatAhead::fetching`]). The same name again (the `stat` after its lookup) is no step:
    /// a walk whose names are known by the time it gets there (fetched ahead) does only
    /// lookups, and must stay in order.
    pub fn stat_ahead(&mut self, name: &Name, fetch: bool) -> Vec<Entry> {
        let Some(&p) = self.index.get(name) else { return Vec::new() };
        let a = &mut self.ahead;
        if a.last != Some(p) {
            let in_order = a.last.is_some_and(|q| q < p && p <= q + STAT_AHEAD_GAP);
            a.last = Some(p);
            if !in_order {
                *a = StatAhead { last: Some(p), streak: 1, to: p + 1, fetching: fetch };
                return Vec::new();
            }
            a.streak += 1;
        }
        a.fetching |= fetch;
        if !a.fetching || a.streak < STAT_AHEAD_AFTER {
            return Vec::new();
        }
        let window = a.streak.clamp(STAT_AHEAD_MIN, STAT_AHEAD_MAX);
        let from = a.to.max(p + 1);
        let to = (p + 1 + window).min(self.entries.len());
        if from >= to {
            return Vec::new();
        }
        a.to = to;
        (from..to).filter(|i| !self.gone.contains(i)).map(|i| self.entries[i].clone()).collect()
    }

    /// Notes that subdirectory `name` is being opened; returns the subdirectories after it
    /// whose listings to request now, if a walk is opening them in order (see [`WalkAhead`]).
    pub fn walk_ahead(&mut self, name: &Name) -> Vec<Location> {
        let Some(&p) = self.index.get(name) else { return Vec::new() };
        let w = &mut self.walk;
        let in_order = w.last.is_some_and(|q| q < p);
        w.last = Some(p);
        if !in_order {
            *w = WalkAhead { last: Some(p), streak: 1, to: p + 1 };
            return Vec::new();
        }
        w.streak += 1;
        let window = (1 << w.streak.min(8)).min(WALK_AHEAD_MAX);
        let mut out = Vec::new();
        let mut dirs = 0;
        let end = (p + 1 + WALK_AHEAD_SCAN).min(self.entries.len());
        let mut i = p + 1;
        while i < end && dirs < window {
            if self.entries[i].loc.is_dir() && !self.gone.contains(&i) {
                dirs += 1;
                if i >= w.to {
                    out.push(self.entries[i].loc.clone());
                }
            }
            i += 1;
        }
        w.to = w.to.max(i);
        out
    }

    /// Whether the slot `i` of `entries` was removed.
    pub fn is_gone(&self, i: usize) -> bool {
        self.gone.contains(&i)
    }

    /// A name created or replaced through this mount.
    pub fn put(&mut self, entry: Entry) {
        match self.index.get(&entry.name) {
            Some(&i) => self.entries[i] = entry,
            None => {
                self.index.insert(entry.name.clone(), self.entries.len());
                self.entries.push(entry);
            }
        }
    }

    /// Metadata of a listed file read after the listing was made (a HeadObject): it replaces what
    /// the listing said, unless the name has since been removed or replaced by something else.
    pub fn refresh_file(&mut self, name: &Name, loc: &Location, attr: Attr) {
        if let Some(&i) = self.index.get(name)
            && !self.gone.contains(&i)
            && &self.entries[i].loc == loc
        {
            self.entries[i].attr = attr;
            self.headed.insert(i, Instant::now());
        }
    }

    /// `name`'s entry if it is a file whose HeadObject answered less than `ttl` ago (as fresh
    /// as a listing of that age, whether or not this listing still is).
    pub fn headed_file(&self, name: &Name, ttl: std::time::Duration) -> Option<&Entry> {
        let &i = self.index.get(name)?;
        let e = &self.entries[i];
        let fresh = self.headed.get(&i).is_some_and(|t| t.elapsed() < ttl);
        (fresh && !e.loc.is_dir() && !self.gone.contains(&i)).then_some(e)
    }

    /// A name removed through this mount.
    pub fn remove(&mut self, name: &Name) {
        if let Some(i) = self.index.remove(name) {
            self.gone.insert(i);
        }
    }

    fn push(&mut self, entry: Entry) {
        match self.index.get(&entry.name) {
            None => {
                self.index.insert(entry.name.clone(), self.entries.len());
                self.entries.push(entry);
            }
            Some(&i) => {
                if entry.loc.is_dir() && !self.entries[i].loc.is_dir() {
                    info!(shadowed = ?self.entries[i].loc, "an object and a directory share a name; the directory is shown");
                    self.entries[i] = entry;
                } else if !entry.loc.is_dir() && self.entries[i].loc.is_dir() {
                    info!(shadowed = ?entry.loc, "an object and a directory share a name; the directory is shown");
                }
            }
        }
    }

    /// Adds a file being written through this mount (it is not in S3 yet, or is changing).
    pub fn add_staged(&mut self, prefix: &str, loc: Location, attr: Attr) {
        let Location::File { key, .. } = &loc else { return };
        if let Child::File(name) = object_child(prefix, key) {
            match self.index.get(&name) {
                Some(&i) if !self.entries[i].loc.is_dir() => self.entries[i].attr = attr,
                Some(_) => {}
                None => self.push(Entry { name, loc, attr }),
            }
        }
    }

    /// A complete listing of the given buckets (the root of an all-buckets mount).
    pub fn of_buckets(buckets: &[BucketInfo], mount_time: SystemTime) -> Listing {
        let mut l = Listing { done: true, started: Some(Instant::now()), ..Listing::default() };
        for b in buckets {
            if let Some(name) = Name::new(&b.name) {
                let loc = Location::Dir { bucket: b.name.as_str().into(), prefix: String::new() };
                l.push(Entry { name, loc, attr: Attr::dir(b.created.unwrap_or(mount_time)) });
            }
        }
        l
    }

    /// Fetches the next page of a directory listing and adds its entries.
    /// With `prefetch`, the page after it is requested at once, in the background.
    pub async fn fetch_page<S: ObjectStore>(
        &mut self,
        store: &Arc<S>,
        bucket: &Arc<str>,
        prefix: &str,
        dir_mtime: SystemTime,
        hidden: &(dyn Fn(&str) -> bool + Sync),
        prefetch: bool,
    ) -> Result<()> {
        if self.done {
            return Ok(());
        }
        self.asked.get_or_insert_with(Instant::now);
        let page = match self.prefetch.take() {
            Some(mut task) => {
                (&mut task.0).await.map_err(|e| StoreError::Network(format!("listing task failed: {e}")))??
            }
            None => list_page(&**store, bucket, prefix, self.token.as_deref()).await?,
        };
        if let Some(token) = page.next.clone().filter(|_| prefetch) {
            let (store, bucket, prefix) = (store.clone(), bucket.clone(), prefix.to_string());
            self.prefetch =
                Some(Prefetch(tokio::spawn(async move { list_page(&*store, &bucket, &prefix, Some(&token)).await })));
        }
        // Merge the two sorted runs so entries come out in key order.
        let mut objects = page.objects.into_iter().peekable();
        let mut prefixes = page.prefixes.into_iter().peekable();
        loop {
            let take_object = match (objects.peek(), prefixes.peek()) {
                (Some(o), Some(p)) => o.key <= *p,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_object {
                let o = objects.next().expect("peeked");
                if hidden(&o.key) {
                    continue;
                }
                if o.key == prefix {
                    self.marker = Some(Marker { etag: o.etag.clone(), modified: o.last_modified });
                }
                if let Child::File(name) = object_child(prefix, &o.key) {
                    let attr = Attr {
                        kind: Kind::File,
                        size: o.size,
                        mtime: o.last_modified.unwrap_or(dir_mtime),
                        atime: None,
                        ctime: None,
                        perm: None,
                        uid: None,
                        gid: None,
                        etag: o.etag,
                        modified: o.last_modified,
                        class: o.storage_class.as_deref().and_then(crate::fs::inode::storage_class),
                    };
                    self.push(Entry { name, loc: Location::File { bucket: bucket.clone(), key: o.key }, attr });
                }
            } else {
                let p = prefixes.next().expect("peeked");
                if hidden(&p) {
                    continue; // removed with rmdir; its contents are being deleted
                }
                if let Child::Dir(name) = prefix_child(prefix, &p) {
                    let loc = Location::Dir { bucket: bucket.clone(), prefix: p };
                    self.push(Entry { name, loc, attr: Attr::dir(dir_mtime) });
                }
            }
        }
        self.token = page.next;
        self.done = self.token.is_none();
        if self.started.is_none() || self.done {
            self.started = Some(Instant::now());
        }
        self.pages.push((self.entries.len(), Instant::now()));
        if self.done {
            self.took = self.asked.map_or_else(Default::default, |t| t.elapsed());
        }
        Ok(())
    }
}

/// One page of a directory listing (delimiter '/').
async fn list_page<S: ObjectStore>(
    store: &S,
    bucket: &str,
    prefix: &str,
    token: Option<&str>,
) -> StoreResult<ListPage> {
    store.list_objects(ListRequest { bucket, prefix, delimiter: Some("/"), continuation: token, max_keys: None }).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    async fn list_all(store: &Arc<MemoryStore>, prefix: &str) -> Listing {
        let mut l = Listing::default();
        let b: Arc<str> = "b".into();
        while !l.done {
            l.fetch_page(store, &b, prefix, SystemTime::UNIX_EPOCH, &|_| false, true).await.unwrap();
        }
        l
    }

    fn names(l: &Listing) -> Vec<(String, bool)> {
        l.entries.iter().map(|e| (e.name.to_string(), e.loc.is_dir())).collect()
    }

    #[tokio::test]
    async fn pages_and_odd_keys() {
        let mut store = MemoryStore::new();
        store.page_size = 2;
        for k in ["d/", "d/x", "d/x-1", "d/x/y", "d//z", "d/./q", "d/y", "d/z/"] {
            store.put("b", k, "1");
        }
        let store = Arc::new(store);
        let l = list_all(&store, "d/").await;
        assert_eq!(
            names(&l),
            vec![("x".into(), true), ("x-1".into(), false), ("y".into(), false), ("z".into(), true)],
            "marker d/ hidden, d//z and d/./q hidden, x is a directory that shadows the object x"
        );
        assert!(store.count("ListObjectsV2") >= 4);
    }
}
