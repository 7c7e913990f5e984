//! [`ListingCache`]: the state behind the listing cache (see the folder's doc).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::Listing;
use crate::fs::inode::Ino;
use crate::fs::names::Name;

/// A cached listing, shared by the cache, directory handles and lookups.
pub type ListingRef = Arc<tokio::sync::Mutex<Listing>>;

/// Names in one page of a listing (ListObjectsV2's most).
pub const LIST_PAGE: usize = 1000;
/// A complete listing of more than one page is kept this many TTLs past its freshness, for what
/// it says of names while the directory is listed again (see `Fs::last_listed`).
pub const STALE_LISTING_TTLS: u32 = 10;
/// Names all cached listings hold together at most (about 300 bytes each), past which the least
/// recently used listings are dropped (see [`ListingCache::trim`]).
pub const LISTED_ENTRIES_BUDGET: usize = 400_000;

/// Directories whose listings are kept at once.
const LISTINGS: usize = 1024;
/// Names remembered missing at once.
const NEGATIVE: usize = 16 * 1024;

pub struct ListingCache {
    listings: Mutex<LruCache<Ino, ListingRef>>,
    negative: Mutex<LruCache<(Ino, Name), Instant>>,
    /// Directories found to need more than one listing page, until when, and how many lookups
    /// since: their lookups probe names rather than list the directory, until so many come that
    /// listing it whole costs less.
    large_dirs: Mutex<LruCache<Ino, (Instant, u32)>>,
    /// Bumped by every change to cached listings (edits, drops).
    changes: AtomicU64,
    /// Directories being listed whole in the background: `None` while on its way, then when it
    /// ended.
    whole: Mutex<HashMap<Ino, Option<Instant>>>,
    /// The deleter's failure epoch the cached listings were built in.
    epoch: AtomicU64,
}

impl Default for ListingCache {
    fn default() -> Self {
        ListingCache {
            listings: Mutex::new(LruCache::new(NonZeroUsize::new(LISTINGS).unwrap())),
            negative: Mutex::new(LruCache::new(NonZeroUsize::new(NEGATIVE).unwrap())),
            large_dirs: Mutex::new(LruCache::new(NonZeroUsize::new(LISTINGS).unwrap())),
            changes: AtomicU64::new(0),
            whole: Mutex::default(),
            epoch: AtomicU64::new(0),
        }
    }
}

impl ListingCache {
    /// The listing cached for directory `ino`, fresh or not. `deleter_epoch` is the delete
    /// batcher's failure count: when it moved, a failed batch made names reappear and every
    /// cached listing and missing name may be wrong, so all are dropped first.
    pub fn get(&self, ino: Ino, deleter_epoch: u64) -> Option<ListingRef> {
        if self.epoch.swap(deleter_epoch, Ordering::Relaxed) != deleter_epoch {
            self.drop_all();
            self.negative.lock().unwrap().clear();
        }
        self.listings.lock().unwrap().get(&ino).cloned()
    }

    pub fn put(&self, ino: Ino, listing: ListingRef) {
        self.listings.lock().unwrap().put(ino, listing);
    }

    /// Drops `ino`'s listing (it may be wrong).
    pub fn forget_dir(&self, ino: Ino) {
        self.listings.lock().unwrap().pop(&ino);
    }

    /// Drops every cached listing (a directory renamed: those below it name old keys).
    pub fn drop_all(&self) {
        self.changed();
        self.listings.lock().unwrap().clear();
    }

    /// Whether `ino`'s listing is cached (for tests).
    pub fn contains(&self, ino: Ino) -> bool {
        self.listings.lock().unwrap().contains(&ino)
    }

    /// A change was made to cached listings.
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes so far: a listing fetched in the background is kept only if none came meanwhile.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// Drops cached listings past their TTL (they answer nothing any more; a large complete
    /// one is kept [`STALE_LISTING_TTLS`] longer, for what it says of names, and one still
    /// being paged while its pages come), and the least
    /// recently used ones past [`LISTED_ENTRIES_BUDGET`] names in all. Listings in use (a page
    /// arriving) are left alone. Returns how many names the dropped listings held.
    pub fn trim(&self, ttl: Duration) -> usize {
        let mut cache = self.listings.lock().unwrap();
        let (mut gone, mut names) = (Vec::new(), 0usize);
        for (ino, l) in cache.iter() {
            let Ok(g) = l.try_lock() else { continue };
            let kept_stale = g.done && g.entries.len() > LIST_PAGE && g.fresh(ttl * STALE_LISTING_TTLS);
            // One a reader is still paging answers for the names of its recent pages.
            let paging = !g.done && g.paged_within(ttl);
            if !g.fresh(ttl) && !kept_stale && !paging {
                gone.push(*ino);
                continue;
            }
            names += g.entries.len();
            if names > LISTED_ENTRIES_BUDGET {
                gone.push(*ino);
            }
        }
        let mut dropped = 0;
        for ino in gone {
            if let Some(l) = cache.pop(&ino) {
                dropped += l.try_lock().map_or(0, |g| g.entries.len());
            }
        }
        dropped
    }

    /// Until when `name` in `dir` is known missing, if it is.
    pub fn missing_until(&self, dir: Ino, name: &Name) -> Option<Instant> {
        self.negative.lock().unwrap().get(&(dir, name.clone())).copied()
    }

    pub fn set_missing(&self, dir: Ino, name: Name, until: Instant) {
        self.negative.lock().unwrap().put((dir, name), until);
    }

    /// `name` in `dir` exists now (made through this mount).
    pub fn not_missing(&self, dir: Ino, name: &Name) {
        self.negative.lock().unwrap().pop(&(dir, name.clone()));
    }

    /// A lookup in `dir` while it is known to be large: the lookups counted so far, this one
    /// included; `None` when it is not known to be large (any more).
    pub fn large_dir_lookup(&self, dir: Ino) -> Option<u32> {
        let mut large = self.large_dirs.lock().unwrap();
        let (until, lookups) = large.get_mut(&dir)?;
        if *until <= Instant::now() {
            return None;
        }
        *lookups = lookups.saturating_add(1);
        Some(*lookups)
    }

    /// `dir` is large until `until`, with `lookups` counted (`u32::MAX`: do not list it whole).
    pub fn set_large(&self, dir: Ino, until: Instant, lookups: u32) {
        self.large_dirs.lock().unwrap().put(dir, (until, lookups));
    }

    /// Claims listing `dir` whole in the background: false when that is on its way, or ended
    /// less than `again_after` ago.
    pub fn start_whole(&self, dir: Ino, again_after: Duration) -> bool {
        let mut whole = self.whole.lock().unwrap();
        match whole.get(&dir) {
            Some(None) => return false,
            Some(Some(ended)) if ended.elapsed() < again_after => return false,
            _ => {}
        }
        whole.retain(|_, t| t.is_none_or(|t| t.elapsed() < again_after));
        whole.insert(dir, None);
        true
    }

    /// Listing `dir` whole ended (kept or not).
    pub fn whole_ended(&self, dir: Ino) {
        self.whole.lock().unwrap().insert(dir, Some(Instant::now()));
    }
}
