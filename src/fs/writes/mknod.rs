//! Making nodes other than regular files: directories (and buckets at the root), FIFOs,
//! sockets, device nodes and symbolic links; reading a link.

use crate::fs::error::{Error, Result};
use crate::fs::inode::{Attr, Ino, Kind, Location};
use crate::fs::listings::Entry;
use crate::fs::names::Name;
use crate::fs::writes::staged::FileMeta;
use crate::fs::writes::writing::*;
use crate::fs::{Fs, Stat};
use crate::store::ObjectStore;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::SystemTime;
use tracing::{debug, info};

impl<S: ObjectStore> Fs<S> {
    pub async fn mkdir(&self, parent: Ino, name: &Name, mode: u32, owner: Owner) -> Result<Stat> {
        self.check_writable()?;
        if self.existing(parent, name, false).await?.is_some() {
            return Err(Error::Exists);
        }
        let pnode = self.node(parent)?;
        let now = SystemTime::now();
        let (loc, attr) = match &pnode.loc {
            Location::Buckets => {
                if !crate::config::valid_bucket_name(name.as_str()) {
                    debug!(name = name.as_str(), "mkdir at the root: not a valid bucket name");
                    return Err(Error::Invalid);
                }
                self.store.create_bucket(name.as_str()).await?;
                info!(bucket = name.as_str(), "bucket created");
                let mut attr = Attr::dir(now);
                attr.perm = Some((mode & 0o7777) as u16);
                (Location::Dir { bucket: name.as_str().into(), prefix: String::new() }, attr)
            }
            Location::Dir { bucket, .. } => {
                let loc = pnode.loc.child(name, true).expect("a directory");
                check_key_length(&loc)?;
                let Location::Dir { prefix, .. } = &loc else { unreachable!() };
                self.deleter.cancel(bucket, prefix).await;
                let meta = FileMeta {
                    perm: (mode & 0o7777) as u16,
                    uid: owner.uid,
                    gid: owner.gid,
                    mtime: now,
                    mtime_set: true,
                    atime: None,
                    ctime: now,
                    kind: Kind::File,
                };
                let attr = self.put_marker(bucket, prefix, &meta, &HashMap::new()).await?;
                (loc, attr)
            }
            Location::File { .. } => return Err(Error::NotDir),
        };
        let entry = Entry { name: name.clone(), loc, attr };
        self.entry_added(parent, entry.clone());
        Ok(self.remember(parent, &entry))
    }

    /// mknod(2): a regular file is created empty and uploaded; a FIFO, socket or device node
    /// is an empty object whose `mode` (and `rdev`) metadata says what it is, as s3fs stores
    /// them. The kernel serves FIFOs and devices itself: their contents never reach S3.
    pub async fn mknod(&self, parent: Ino, name: &Name, mode: u32, rdev: u32, owner: Owner) -> Result<Stat> {
        if mode & libc::S_IFMT == libc::S_IFREG || mode & libc::S_IFMT == 0 {
            let (stat, fh) = self.create(parent, name, mode, owner).await?;
            let r = self.flush(fh, None).await;
            self.release(fh).await;
            return r.map(|_| stat);
        }
        let kind = Kind::from_mode(mode, rdev);
        if !matches!(kind, Kind::Fifo | Kind::Socket | Kind::CharDev(_) | Kind::BlockDev(_)) {
            return Err(Error::Invalid);
        }
        self.make_node(parent, name, kind, (mode & 0o7777) as u16, &[], owner).await
    }

    pub async fn symlink(&self, parent: Ino, name: &Name, target: &[u8], owner: Owner) -> Result<Stat> {
        self.make_node(parent, name, Kind::Symlink, 0o777, target, owner).await
    }

    /// Makes an object that is not a regular file: a symlink (its body the target), a FIFO,
    /// socket or device node (empty), with one PutObject.
    pub(in crate::fs) async fn make_node(
        &self,
        parent: Ino,
        name: &Name,
        kind: Kind,
        perm: u16,
        body: &[u8],
        owner: Owner,
    ) -> Result<Stat> {
        self.check_writable()?;
        if self.existing(parent, name, false).await?.is_some() {
            return Err(Error::Exists);
        }
        let pnode = self.node(parent)?;
        let Some(loc @ Location::File { .. }) = pnode.loc.child(name, false) else { return Err(Error::NotPermitted) };
        check_key_length(&loc)?;
        let Location::File { bucket, key } = &loc else { unreachable!() };
        self.deleter.cancel(bucket, key).await;
        let now = SystemTime::now();
        let meta = FileMeta {
            perm,
            uid: owner.uid,
            gid: owner.gid,
            mtime: now,
            mtime_set: true,
            atime: None,
            ctime: now,
            kind,
        };
        let put = meta.to_put(key, &HashMap::new());
        let r = self.store.put_object(bucket, key, Bytes::copy_from_slice(body), &put).await?;
        self.learn_meta(bucket, key, r.etag.as_deref(), &meta, &put);
        let entry = Entry { name: name.clone(), loc, attr: meta.attr(body.len() as u64, r.etag) };
        self.entry_added(parent, entry.clone());
        Ok(self.remember(parent, &entry))
    }

    pub async fn readlink(&self, ino: Ino) -> Result<Bytes> {
        let node = self.node(ino)?;
        let Location::File { bucket, key } = &node.loc else { return Err(Error::Invalid) };
        if node.attr.kind != Kind::Symlink {
            return Err(Error::Invalid);
        }
        if node.attr.size == 0 {
            return Ok(Bytes::new());
        }
        Ok(self.store.get_range(bucket, key, 0, node.attr.size, None).await?)
    }
}
