//! Which cached listing answers for a directory (fresh, started, or holding a name), keeping
//! cached listings in step with the changes made through this mount, and listing a large
//! directory whole for its lookups.

use super::*;

impl<S: ObjectStore> Fs<S> {
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
    pub(super) fn edit_listing(&self, dir: Ino, edit: impl FnOnce(&mut Listing)) {
        self.listings.changed();
        let Some(l) = self.cached_listing(dir) else { return };
        match l.try_lock() {
            Ok(mut g) => edit(&mut g),
            Err(_) => self.listings.forget_dir(dir),
        }
    }

    /// `entry` now exists in directory `dir` (created or replaced through this mount).
    pub(super) fn entry_added(&self, dir: Ino, entry: Entry) {
        self.listings.not_missing(dir, &entry.name);
        self.edit_listing(dir, |l| l.put(entry));
    }

    /// `name` in directory `dir` was removed through this mount.
    pub(super) fn entry_removed(&self, dir: Ino, name: &Name) {
        self.edit_listing(dir, |l| l.remove(name));
    }

    /// The entry for file `loc` in directory `dir`, if `loc` lies directly in it.
    pub(super) fn file_entry(&self, dir: Ino, loc: &Location, attr: Attr) -> Option<Entry> {
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
    pub(super) async fn fresh_listing(&self, ino: Ino) -> Option<Arc<tokio::sync::Mutex<Listing>>> {
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
    pub(super) async fn started_listing(&self, ino: Ino) -> Option<Arc<tokio::sync::Mutex<Listing>>> {
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
    pub(super) async fn listing_having(&self, ino: Ino, name: &Name) -> Option<Arc<tokio::sync::Mutex<Listing>>> {
        let l = self.cached_listing(ino)?;
        let usable = {
            let g = l.lock().await;
            (g.done && g.fresh(self.config.metadata_ttl)) || g.has_fresh(name, self.config.metadata_ttl)
        };
        usable.then_some(l)
    }

    /// A listing of directory `dir` made to answer lookups: its first page, which, when it is
    /// the whole directory, is cached like a readdir's listing and returned. A larger
    /// directory is remembered as such for the metadata TTL and gives `None`: its lookups use
    /// HeadObject and a one-key listing instead (a page of 1,000 names per lookup costs more).
    pub(super) async fn listing_for_lookups(
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
    pub(super) fn list_whole(&self, dir: Ino, bucket: &Arc<str>, prefix: &str) {
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
    pub(super) fn add_writers(&self, listing: &mut Listing, bucket: &str, prefix: &str) {
        for (_, info) in self.writers_under(bucket, prefix) {
            let attr = self.staged_attr(&info);
            listing.add_staged(prefix, info.loc, attr);
        }
    }

    /// What the last complete listing of large directory `dir` still kept (expired: see
    /// [`listings::STALE_LISTING_TTLS`]) says of `name`.
    pub(super) async fn last_listed(&self, dir: Ino, name: &Name) -> LastListed {
        let Some(l) = self.cached_listing(dir) else { return LastListed::Unknown };
        let g = l.lock().await;
        // A listing a reader is still paging through holds the names listed so far: what it
        // shows of them holds, its silence about the others means nothing.
        if g.done && g.entries.len() <= LIST_PAGE {
            return LastListed::Unknown;
        }
        if g.done && g.fresh(self.config.metadata_ttl) {
            drop(g);
            return LastListed::Fresh(l);
        }
        if let Some(e) = g.headed_file(name, self.config.metadata_ttl) {
            return LastListed::Headed(Box::new(e.clone()));
        }
        match g.get(name) {
            Some(e) if e.loc.is_dir() => LastListed::Dir,
            Some(_) => LastListed::File,
            None if g.done => LastListed::Absent,
            None => LastListed::Unknown,
        }
    }
}
