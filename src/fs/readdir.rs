//! Directory handles: opendir, readdir (pages listed as the kernel reads on), releasedir.

use super::*;

impl<S: ObjectStore> Fs<S> {
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
}
