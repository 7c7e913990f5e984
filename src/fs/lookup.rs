//! Lookups: what a name in a directory is, answered by a node the kernel holds, a listing, the
//! names known missing, or S3 (a HeadObject and a one-key listing).

use super::*;

/// A listed entry found by a lookup, with the HeadObject to wait for when its metadata is unknown.
/// What a large directory's last complete listing, expired, says of a name.
pub(super) enum LastListed {
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
pub(super) enum Probe {
    /// Both at once.
    Both,
    /// The object; the folder only if the object is gone.
    FileFirst,
    /// The folder; the object only if the folder is gone.
    DirFirst,
}

pub(super) struct Listed {
    entry: Entry,
    head: Option<(Arc<HeadCell>, ObjectKey)>,
}

/// What a name resolves to.
pub(super) enum Resolved {
    /// Something in S3 (or in a cached listing).
    Entry(Entry),
    /// A file being written through this mount.
    Staged(WriterInfo),
}

impl<S: ObjectStore> Fs<S> {
    /// Records a kernel lookup of a listed (or just made) entry, with its attributes as far as
    /// they are known (see [`Fs::listed_attr`]).
    pub(super) fn remember(&self, parent: Ino, entry: &Entry) -> Stat {
        let (attr, known) = self.listed_attr(entry);
        self.remember_entry(parent, &Entry { attr, ..entry.clone() }, known)
    }

    /// Buckets shown at the root of a bucket-list mount.
    pub(super) async fn root_listing(&self) -> Result<Listing> {
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
    pub(super) async fn resolve(
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
    pub(super) fn hidden(&self, bucket: &str, key: &str) -> bool {
        self.deleter.is_pending(bucket, key)
    }

    /// A node the kernel still holds with fresh attributes: it needs no request.
    pub(super) fn fresh_node(&self, dir: &Location, name: &Name) -> Option<Entry> {
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
    pub(super) fn find_listed(
        &self,
        listing: &ListingRef,
        l: &mut Listing,
        name: &Name,
        want_meta: bool,
    ) -> Option<Listed> {
        let e = l.get(name).cloned()?;
        self.fetch_meta_ahead(listing, l.stat_ahead(name, want_meta));
        if !want_meta {
            return Some(Listed { entry: e, head: None });
        }
        let head = match &e.loc {
            Location::File { bucket, key } if self.needs_meta(&e) => {
                let id = (bucket.clone(), key.clone());
                let cell = self.heads.join(&id);
                Some((cell, id))
            }
            _ => None,
        };
        Some(Listed { entry: e, head })
    }

    /// A lookup answered by a complete listing: a name it lacks does not exist, a directory is
    /// as listed, and a file is as listed once its metadata is known (see [`Fs::find_listed`]).
    pub(super) async fn listed_entry(&self, listing: &ListingRef, found: Option<Listed>) -> Result<Option<Entry>> {
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
    pub(super) fn needs_meta(&self, e: &Entry) -> bool {
        !self.listed_attr(e).1
    }

    /// Whether `prefix+name` is a folder (a one-key listing of `prefix+name/`: the folder wins
    /// when both exist) or a file (HeadObject on `prefix+name`): both concurrently, or, for a
    /// name the directory's last listing showed, what it showed first and the other only if
    /// that is gone.
    pub(super) async fn lookup_in_s3(
        &self,
        parent: Ino,
        dir: &Location,
        name: &Name,
        probe: Probe,
    ) -> Result<Option<Entry>> {
        let (Some(file_loc), Some(dir_loc)) = (dir.child(name, false), dir.child(name, true)) else {
            return Ok(None);
        };
        let (Location::File { bucket, key }, Location::Dir { prefix: dir_prefix, .. }) = (&file_loc, &dir_loc) else {
            unreachable!("child() builds these kinds");
        };
        if probe == Probe::DirFirst && self.dir_exists(bucket, dir_prefix).await? {
            return Ok(Some(Entry { name: name.clone(), loc: dir_loc, attr: Attr::dir(self.mount_time) }));
        }
        let (head, is_dir) = if probe != Probe::Both {
            // Shared with a stat-ahead's HeadObject of the same key still in flight. One that
            // answered since the listing was looked at has put its answer in the listing
            // before it stopped being shared: looked at again once this one is registered.
            let id = (bucket.clone(), key.clone());
            let cell = self.heads.join(&id);
            if cell.get().is_none()
                && let LastListed::Headed(e) = self.last_listed(parent, name).await
            {
                self.heads.withdraw(&id, &cell);
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
            match tokio::join!(self.store.head_object(bucket, key), self.dir_exists(bucket, dir_prefix)) {
                (Ok(_), is_dir) if self.hidden(bucket, key) => (Err(StoreError::NotFound), is_dir),
                both => both,
            }
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
    pub(super) async fn dir_exists(&self, bucket: &str, prefix: &str) -> Result<bool> {
        if self.hidden(bucket, prefix) {
            return Ok(false); // removed with rmdir
        }
        self.any_key_under(bucket, prefix, false).await
    }

    /// Whether `prefix` holds a key (other than its own marker, with `skip_marker`) that is not
    /// being deleted. The first page is as small as can answer; later pages are full.
    pub(super) async fn any_key_under(&self, bucket: &str, prefix: &str, skip_marker: bool) -> Result<bool> {
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
}
