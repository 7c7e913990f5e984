//! HeadObjects of listed files: shared by the lookups that need the same one, and sent ahead
//! of a walk that stats a listing in order (the stat-ahead).

use crate::fs::*;

impl<S: ObjectStore> Fs<S> {
    /// Waits for (or sends) the shared HeadObject and gives the attributes it answers. The
    /// one that sent it learns its metadata and, with a listing and a name, puts the answer in
    /// that listing before the request stops being shared, so a lookup arriving afterwards
    /// finds it there. That holds whether or not the server's listings carry ETags to match
    /// learned metadata by (s3s-fs's do not).
    pub(in crate::fs) async fn head_shared(
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
        self.heads.done(&id, cell);
        result
    }

    /// Fetches, concurrently and in the background, the metadata of the listed files that
    /// [`Listing::stat_ahead`] handed out and that is not known yet. Each is registered as in
    /// flight before this returns, so the next lookup waits for it instead of asking again.
    pub(in crate::fs) fn fetch_meta_ahead(&self, listing: &ListingRef, entries: Vec<Entry>) {
        let Some(me) = self.me.upgrade() else { return };
        for e in entries.into_iter().filter(|e| self.needs_meta(e)) {
            let Location::File { bucket, key } = &e.loc else { continue };
            let id = (bucket.clone(), key.clone());
            let Some(cell) = self.heads.start(&id) else { continue }; // already on its way
            let (me, listing) = (me.clone(), listing.clone());
            tokio::spawn(async move {
                // A failure is not kept: a lookup waiting meets it, a later one asks again.
                let _ = me.head_shared(&cell, id, &e.loc, Some((&listing, &e.name))).await;
            });
        }
    }
}
