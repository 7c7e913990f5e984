//! Removing names: unlink of a file and rmdir of a folder or a bucket, through the batched
//! deletes of `delete.rs`, and fsync of a directory (which sends them and reports failures).

use tracing::info;

use crate::fs::error::{Error, Result};
use crate::fs::inode::{Ino, Location};
use crate::fs::names::Name;
use crate::fs::{FileHandle, Fs};
use crate::store::ObjectStore;

impl<S: ObjectStore> Fs<S> {
    pub async fn unlink(&self, parent: Ino, name: &Name) -> Result<()> {
        self.check_writable()?;
        let Some((loc, _)) = self.existing(parent, name, false).await? else { return Err(Error::NotFound) };
        let Location::File { bucket, key } = &loc else { return Err(Error::IsDir) };
        let mut in_s3 = true;
        if let Some((ino, _)) = self.writer_at(&loc)
            && let Some(writer) = self.writer(ino)
        {
            let mut st = writer.staged.lock().await;
            st.unlinked = true;
            st.cancel_stream(&self.store);
            in_s3 = st.in_s3;
            Self::sync_info(&writer, &st);
        }
        if in_s3 {
            self.delete_after_readers(&loc);
        }
        self.pending_meta.take(bucket, key);
        self.index.forget(bucket, key);
        self.inodes.detach(&loc);
        self.entry_removed(parent, name);
        Ok(())
    }

    pub async fn rmdir(&self, parent: Ino, name: &Name) -> Result<()> {
        self.check_writable()?;
        let Some((loc, _)) = self.existing(parent, name, false).await? else { return Err(Error::NotFound) };
        let Location::Dir { bucket, prefix } = &loc else { return Err(Error::NotDir) };
        if prefix.is_empty() {
            // A bucket: every delete queued for it must be done before S3 sees it empty, also
            // of files still open for reading.
            self.deleter.let_go_all(Some(bucket));
            self.deleter.flush().await;
            self.store.delete_bucket(bucket).await?;
            info!(bucket = &**bucket, "bucket deleted");
        } else {
            if !self.writers_under(bucket, prefix).is_empty() || self.has_children(bucket, prefix).await? {
                return Err(Error::NotEmpty);
            }
            // Hides the prefix at once; the marker (if any) goes with the next batch.
            self.deleter.schedule(bucket, prefix.clone());
            self.index.forget(bucket, prefix);
        }
        self.inodes.detach(&loc);
        self.entry_removed(parent, name);
        Ok(())
    }

    /// Whether `prefix` holds any key other than its own marker that is not being deleted.
    pub(in crate::fs) async fn has_children(&self, bucket: &str, prefix: &str) -> Result<bool> {
        self.any_key_under(bucket, prefix, true).await
    }

    /// Deletes the object at `loc` (a file): at once (batched), or, when the kernel's node of it
    /// is open for reading, once the last of its readers closes. Readers read on to the end.
    pub(in crate::fs) fn delete_after_readers(&self, loc: &Location) {
        let Location::File { bucket, key } = loc else { return };
        match self.inodes.find(loc).map(|(ino, _)| ino).filter(|ino| self.has_reader(*ino)) {
            Some(ino) => {
                self.deleter.hold(bucket, key.clone());
                self.held_deletes.lock().unwrap().entry(ino).or_default().push((bucket.clone(), key.clone()));
            }
            None => self.deleter.schedule(bucket, key.clone()),
        }
    }

    /// Whether a handle open for reading (not a staged writer's) reads `ino`.
    fn has_reader(&self, ino: Ino) -> bool {
        self.file_handles.lock().unwrap().values().any(|h| matches!(&**h, FileHandle::Read(i, _) if *i == ino))
    }

    /// The last reader of `ino` closed: a delete held for it is queued now.
    pub(in crate::fs) fn reader_closed(&self, ino: Ino) {
        if self.has_reader(ino) {
            return;
        }
        let held = self.held_deletes.lock().unwrap().remove(&ino);
        for (bucket, key) in held.into_iter().flatten() {
            self.deleter.let_go(&bucket, &key);
        }
    }

    /// Sends queued deletes; reports batches that failed since the last call.
    pub async fn fsyncdir(&self) -> Result<()> {
        self.deleter.flush().await;
        let failures = self.deleter.take_failures();
        if failures.is_empty() { Ok(()) } else { Err(Error::Io { errno: libc::EIO, msg: failures.join("; ") }) }
    }
}
