//! Walk-ahead: the listings of the next subdirectories, requested while a tree walk (`find`,
//! `du`, `rm -r`, `rsync -a`, `ls -R`) is still in the one before, as the stat-ahead does with
//! HeadObject for lookups.
//!
//! A walk opens a directory's subdirectories one after another in listing order, and each open
//! waits for that subdirectory's first ListObjectsV2 page: the walk runs at one listing round
//! trip per folder. When [`Listing::walk_ahead`](super::listings::Listing::walk_ahead) sees
//! subdirectories opened in order, the first pages of the next ones are requested at once
//! (at most [`WALK_AHEAD_TASKS`] in flight for the whole mount), each into a listing put in the
//! cache at the moment it is scheduled and locked until its page arrives: the walk's `opendir`
//! then waits for that request instead of sending its own, so no folder is listed twice. Such a
//! listing is fresh for the TTL from its answer's arrival, like any other; a walk that stops
//! early leaves at most [`super::listings::WALK_AHEAD_MAX`] listings per level unused.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tracing::debug;

use super::Fs;
use super::inode::{Location, Node};
use super::listings::Listing;
use crate::store::ObjectStore;

/// Listings requested ahead and in flight at once, for the whole mount.
pub const WALK_AHEAD_TASKS: usize = 8;

/// The permits of [`WALK_AHEAD_TASKS`].
pub fn permits() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(WALK_AHEAD_TASKS))
}

impl<S: ObjectStore> Fs<S> {
    /// Directory `node` (inode `ino`) is being opened: if its parent's listing shows a walk
    /// opening subdirectories in order, requests the listings of the next ones.
    pub(super) fn walk_ahead(&self, ino: u64, node: &Node) {
        if node.parent == ino {
            return;
        }
        let Some(name) = node.loc.name() else { return };
        let Some(parent) = self.cached_listing(node.parent) else { return };
        // A parent listing busy right now (a page arriving) is no walk to follow.
        let Ok(mut p) = parent.try_lock() else { return };
        if !p.done || !p.fresh(self.config.metadata_ttl) {
            return;
        }
        let ahead = p.walk_ahead(&name);
        drop(p);
        for loc in ahead {
            self.list_ahead(loc);
        }
    }

    /// Requests the first page of `loc`'s listing in the background, into the listing cache.
    fn list_ahead(&self, loc: Location) {
        let Location::Dir { bucket, prefix } = &loc else { return };
        let ino = self.inodes.ino_hint(&loc);
        if let Some(l) = self.cached_listing(ino) {
            // In flight already, or listed and still fresh: nothing to do.
            match l.try_lock() {
                Err(_) => return,
                Ok(g) if g.fresh(self.config.metadata_ttl) => return,
                Ok(_) => {}
            }
        }
        let listing = Arc::new(tokio::sync::Mutex::new(Listing::default()));
        let Ok(mut guard) = listing.clone().try_lock_owned() else { return };
        self.listings.put(ino, listing);
        let (store, deleter, permits) = (self.store.clone(), self.deleter.clone(), self.walk_permits.clone());
        let (bucket, prefix, mtime) = (bucket.clone(), prefix.clone(), self.mount_time);
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else { return };
            let hide = |key: &str| deleter.is_pending(&bucket, key);
            if let Err(e) = guard.fetch_page(&store, &bucket, &prefix, mtime, &hide, false).await {
                // The listing stays unstarted: the walk's own open lists the folder again.
                debug!(bucket = &*bucket, prefix, error = %e, "walk-ahead listing failed");
            }
        });
    }
}
