//! Attributes: what `stat` shows of a node, built from HeadObject metadata, from a listing
//! and the metadata index, or from this mount's own writes and pending changes; getattr.

use crate::fs::*;

impl<S: ObjectStore> Fs<S> {
    pub(in crate::fs) fn fresh_until(&self) -> Instant {
        Instant::now() + self.config.metadata_ttl
    }

    pub(in crate::fs) fn stat_of(&self, ino: Ino, loc: &Location, attr: &Attr) -> Stat {
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
    pub(in crate::fs) fn attr_from_meta(&self, loc: &Location, meta: &ObjectMeta) -> Attr {
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
    pub(in crate::fs) fn meta_attr(&self, meta: &ObjectMeta) -> Attr {
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
    pub(in crate::fs) fn learn_meta(
        &self,
        bucket: &Arc<str>,
        key: &str,
        etag: Option<&str>,
        meta: &FileMeta,
        put: &PutMeta,
    ) {
        if let Some(etag) = etag {
            // KnownMeta keeps no size: any will do. Our answers carry no LastModified: the
            // index takes it from the first listing or HeadObject of this ETag.
            let known = KnownMeta::new(etag, &meta.attr(0, None), put.clone());
            self.index.learn(bucket, key, known);
        }
    }

    /// Attribute changes not yet written to S3 override what S3 says.
    pub(in crate::fs) fn with_pending_meta(&self, loc: &Location, mut attr: Attr) -> Attr {
        if let Location::File { bucket, key } = loc
            && let Some(p) = self.pending_meta.get(bucket, key)
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
    pub(in crate::fs) fn file_meta(&self, attr: &Attr) -> FileMeta {
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
    pub(in crate::fs) fn known_version(&self, loc: &Location, attr: &Attr) -> Option<KnownMeta> {
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
    pub(in crate::fs) fn listed_attr(&self, e: &Entry) -> (Attr, bool) {
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
    pub(in crate::fs) async fn current_attr(&self, node: &inode::Node) -> Result<Attr> {
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
}
