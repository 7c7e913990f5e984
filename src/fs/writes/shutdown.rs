//! Unmount: the files still open for writing are uploaded, pending metadata and deletes sent.

use crate::fs::error::Error;
use crate::fs::inode::Ino;
use crate::fs::{Fs, Writer};
use crate::store::ObjectStore;
use std::sync::Arc;
use tracing::{info, warn};

impl<S: ObjectStore> Fs<S> {
    /// Unmount: saves pending metadata, sends queued deletes, and says what is left staged.
    pub async fn shutdown(&self) {
        if self.closing.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return; // already done (SIGTERM with files open, then the session's end)
        }
        let pending: Vec<(Arc<str>, String)> = self.pending_meta.keys();
        for (b, k) in pending {
            if let Err(e) = self.flush_meta(&b, &k, None).await {
                warn!(bucket = &*b, key = k, error = %e, "saving chmod/chown/utimens at unmount failed");
            }
        }
        self.deleter.let_go_all(None);
        self.deleter.flush().await;
        for f in self.deleter.take_failures() {
            warn!("{f}");
        }
        // Files still open for writing: upload what they hold now (their writers will get
        // ENOTCONN from here on), or say where the bytes are kept.
        let writers: Vec<(Ino, Arc<Writer>)> =
            self.writers.lock().unwrap().iter().map(|(i, w)| (*i, w.clone())).collect();
        for (ino, w) in writers {
            let mut st = w.staged.lock().await;
            if !st.dirty || st.unlinked {
                st.discard();
                continue;
            }
            let r = if st.failed {
                Err(Error::Io { errno: libc::EIO, msg: "an earlier upload failed".into() })
            } else {
                self.upload(ino, &mut st).await
            };
            match r {
                Ok(()) => {
                    info!(bucket = &*st.bucket, key = st.key, size = st.size, "uploaded a file still open at unmount");
                    st.discard();
                }
                Err(e) => warn!(
                    "s3://{}/{} was open at unmount and could not be uploaded ({e}); its data is kept in {}",
                    st.bucket,
                    st.key,
                    st.path.display()
                ),
            }
        }
        self.staging_dir.remove_if_empty();
        // What the index learned reaches its file (a blocking wait of at most a few seconds).
        if self.index.path().is_some() {
            tokio::task::block_in_place(|| self.index.sync());
        }
        // Blocks read or uploaded just before the unmount reach the data cache (a few seconds at
        // most: the queue holds 64 blocks).
        if let Some(cache) = &self.data_cache {
            tokio::task::block_in_place(|| cache.flush_within(std::time::Duration::from_secs(10)));
        }
    }
}
