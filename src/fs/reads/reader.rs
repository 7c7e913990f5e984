//! Reads: ranged GetObject requests with sequential detection and a read-ahead window.
//!
//! Each open file handle has a [`Reader`]. A read that continues where the last one ended, or
//! falls inside data already requested, is sequential: the window of bytes requested ahead of
//! the reader doubles (up to `max_window`), split into parts of `part_size` fetched concurrently.
//! Any other read is a seek: everything in flight is dropped and the window starts small again.
//! One part behind the reader is kept, because the kernel's concurrent read-ahead requests can
//! arrive slightly out of order.
//!
//! Memory: read-ahead parts hold permits of one semaphore shared by every reader
//! (`memory_limit`). When none are left a reader fetches only what it was asked for, so a reader
//! always makes progress and the daemon's memory stays bounded whatever the number of readers
//! or the size of the files.
//!
//! Every request carries If-Match with the ETag seen at open, so a reader never mixes two
//! versions of an object: if the object changes, reads fail with ESTALE.
//!
//! With a data cache (`--data-cache`), parts are whole cache blocks: a part's blocks come from
//! the cache where it holds them (checked, for the ETag seen at open), the rest from S3 in one
//! ranged GET per run of missing blocks, which are then handed to the cache to write in the
//! background.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use crate::buf::PoolBuf;
use crate::config::ReadConfig;
use crate::fs::error::{Error, Result};
use crate::fs::reads::data_cache::{BLOCK, DataCache};
use crate::store::{ObjectStore, StoreError, StoreResult};
pub use crate::util::limiter::{MemoryLimiter, PAGE};

enum State {
    Pending(JoinHandle<StoreResult<Bytes>>),
    Ready(Bytes),
}

struct Part {
    start: u64,
    end: u64,
    state: State,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Part {
    fn drop(&mut self) {
        if let State::Pending(h) = &self.state {
            h.abort();
        }
    }
}

impl Part {
    async fn data(&mut self) -> Result<&Bytes> {
        if let State::Pending(h) = &mut self.state {
            let bytes = match h.await {
                Ok(r) => r?,
                Err(join) => {
                    return Err(Error::Store(crate::store::StoreError::Network(format!("read task failed: {join}"))));
                }
            };
            self.state = State::Ready(bytes);
        }
        match &self.state {
            State::Ready(b) => Ok(b),
            State::Pending(_) => unreachable!("just resolved"),
        }
    }
}

/// What a part read through the data cache needs.
struct Cached {
    cache: Arc<DataCache>,
    version: crate::fs::reads::data_cache::Version,
    /// The object's size (the last block is shorter).
    size: u64,
}

impl Cached {
    /// Bytes `start..end` (whole blocks): from the cache where it has them, read straight into
    /// one part-sized buffer, else from S3 (one GET per run of missing blocks), which the cache
    /// is then given.
    async fn fetch<S: ObjectStore>(
        self,
        store: &S,
        bucket: &str,
        key: &str,
        start: u64,
        end: u64,
        etag: Option<&str>,
    ) -> StoreResult<Bytes> {
        let (first, last, size) = (start / BLOCK, end.div_ceil(BLOCK), self.size);
        let block_len = move |i: u64| (((i + 1) * BLOCK).min(size) - i * BLOCK) as usize;
        let at = move |i: u64| ((i - first) * BLOCK) as usize;
        let total = (end - start) as usize;
        let (cache, version) = (self.cache.clone(), self.version.clone());
        let (mut buf, found) = tokio::task::spawn_blocking(move || {
            let mut buf = PoolBuf::new(total);
            let room = buf.spare_mut();
            let found: Vec<bool> =
                (first..last).map(|i| cache.read_into(&version, i, &mut room[at(i)..at(i) + block_len(i)])).collect();
            (buf, found)
        })
        .await
        .map_err(|e| StoreError::Network(format!("data cache read failed: {e}")))?;
        let put = |i: u64, data: &Bytes, from: usize| {
            if data.len() >= from + block_len(i) {
                self.cache.put(&self.version, i, data.slice(from..from + block_len(i)));
            }
        };
        if !found.contains(&true) {
            // Nothing cached (a first read): the GET's own buffer is the part.
            drop(buf);
            let data = store.get_range(bucket, key, start, end, etag).await?;
            (first..last).for_each(|i| put(i, &data, at(i)));
            return Ok(data);
        }
        // Runs of missing blocks (sent one after another: a part mixes cached and missing
        // blocks only when the cache lost some of an object).
        let mut filled = total;
        let mut i = first;
        while i < last {
            if found[(i - first) as usize] {
                i += 1;
                continue;
            }
            let run = i;
            while i < last && !found[(i - first) as usize] {
                i += 1;
            }
            let (from, to) = (at(run), at(i - 1) + block_len(i - 1));
            let data = store.get_range(bucket, key, start + from as u64, start + to as u64, etag).await?;
            (run..i).for_each(|b| put(b, &data, at(b) - from));
            let n = data.len().min(to - from);
            buf.spare_mut()[from..from + n].copy_from_slice(&data[..n]);
            if n < to - from {
                filled = from + n; // the object is shorter than it was at open
                break;
            }
        }
        buf.set_filled(filled);
        Ok(buf.freeze())
    }
}

/// Per-handle read state; see the module documentation.
pub struct Reader {
    bucket: Arc<str>,
    key: Arc<str>,
    etag: Option<Arc<str>>,
    size: u64,
    parts: VecDeque<Part>,
    /// End of the last part requested: the next part starts here.
    requested_to: u64,
    window: u64,
    /// Where a sequential reader reads next.
    next: u64,
    /// Bytes have been handed to the caller: the version may no longer change under it.
    served: bool,
    /// The data cache, and parts aligned to its blocks (`align` is 1 without one).
    cache: Option<Arc<DataCache>>,
    align: u64,
}

impl Reader {
    /// The object version this reader reads: bucket, key, ETag and size.
    pub fn source(&self) -> (Arc<str>, String, Option<String>, u64) {
        (self.bucket.clone(), self.key.to_string(), self.etag.as_deref().map(str::to_string), self.size)
    }

    pub fn new(bucket: Arc<str>, key: &str, etag: Option<&str>, size: u64, cfg: &ReadConfig) -> Reader {
        Reader {
            bucket,
            key: key.into(),
            etag: etag.map(Into::into),
            size,
            parts: VecDeque::new(),
            requested_to: 0,
            window: cfg.initial_window,
            next: 0,
            served: false,
            cache: None,
            align: 1,
        }
    }

    /// Reads through the data cache.
    pub fn with_data_cache(mut self, cache: Arc<DataCache>) -> Reader {
        self.cache = Some(cache);
        self.align = BLOCK;
        self
    }

    fn align_down(&self, at: u64) -> u64 {
        at / self.align * self.align
    }

    /// `at` rounded up to a block boundary, at most the object's end.
    fn align_up(&self, at: u64) -> u64 {
        (at.div_ceil(self.align) * self.align).min(self.size)
    }

    /// The kernel kept its page cache of this version at open: it may hand out bytes of it
    /// without asking, so bytes count as served from the start (another version is ESTALE,
    /// never read on into a mix).
    pub fn with_cache_kept(mut self) -> Reader {
        self.served = true;
        self
    }

    /// Whether any bytes were returned (after that, another version is ESTALE).
    pub fn served(&self) -> bool {
        self.served
    }

    /// Reads version `etag` (of `size` bytes) instead, from scratch: only before any bytes
    /// were returned.
    pub fn reset(&mut self, etag: Option<&str>, size: u64) {
        debug_assert!(!self.served);
        self.etag = etag.map(Into::into);
        self.size = size;
        self.parts.clear();
        self.requested_to = self.next;
    }

    /// Bytes requested by the parts held now (fetched or in flight).
    #[cfg(test)]
    fn held_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.end - p.start).sum()
    }

    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// Follows the object to a new ETag with the same bytes (s3drive's own metadata copy).
    pub fn repin(&mut self, etag: &str) {
        self.etag = Some(etag.into());
        self.parts.clear();
        self.requested_to = self.next;
    }

    fn spawn<S: ObjectStore>(&mut self, store: &Arc<S>, end: u64, permit: Option<OwnedSemaphorePermit>) {
        let start = self.requested_to;
        let (store, bucket, key, etag) = (store.clone(), self.bucket.clone(), self.key.clone(), self.etag.clone());
        let task = match (&self.cache, &self.etag) {
            (Some(cache), Some(tag)) => {
                let cached =
                    Cached { cache: cache.clone(), version: cache.version(&bucket, &key, tag), size: self.size };
                tokio::spawn(async move { cached.fetch(&*store, &bucket, &key, start, end, etag.as_deref()).await })
            }
            _ => tokio::spawn(async move { store.get_range(&bucket, &key, start, end, etag.as_deref()).await }),
        };
        self.parts.push_back(Part { start, end, state: State::Pending(task), _permit: permit });
        self.requested_to = end;
    }

    pub async fn read<S: ObjectStore>(
        &mut self,
        store: &Arc<S>,
        limiter: &MemoryLimiter,
        cfg: &ReadConfig,
        offset: u64,
        len: u32,
    ) -> Result<Bytes> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + u64::from(len)).min(self.size);

        let held = self.parts.front().is_some_and(|p| p.start <= offset) && offset < self.requested_to;
        if offset == self.next || held {
            self.window = (self.window * 2).min(cfg.max_window);
        } else {
            self.parts.clear();
            self.window = cfg.initial_window;
        }
        if self.parts.is_empty() {
            self.requested_to = self.align_down(offset);
        }
        // Keep at most one part wholly behind the reader.
        while self.parts.len() >= 2 && self.parts[1].end <= offset {
            self.parts.pop_front();
        }

        let part_size = cfg.part_size.min(self.window).max(PAGE);
        // What was asked for: a full part if the budget allows, else exactly the request.
        while self.requested_to < end {
            let full = self.align_up(self.requested_to + part_size);
            match limiter.try_take(full - self.requested_to) {
                Some(permit) => self.spawn(store, full, Some(permit)),
                None => self.spawn(store, self.align_up(end), None),
            }
        }
        // Read-ahead, while the budget allows.
        let ahead = (offset + self.window).min(self.size);
        while self.requested_to < ahead {
            let part_end = self.align_up(self.requested_to + part_size);
            match limiter.try_take(part_end - self.requested_to) {
                Some(permit) => self.spawn(store, part_end, Some(permit)),
                None => break,
            }
        }

        let result = self.gather(offset, end).await;
        match &result {
            Ok(b) => {
                self.next = offset + b.len() as u64;
                self.served |= !b.is_empty();
            }
            Err(_) => {
                self.parts.clear();
                self.requested_to = offset;
                self.window = cfg.initial_window;
            }
        }
        result
    }

    /// The bytes `offset..end` from the parts that cover them (fewer at the object's end).
    async fn gather(&mut self, offset: u64, end: u64) -> Result<Bytes> {
        let mut out: Option<BytesMut> = None;
        let mut pos = offset;
        for part in self.parts.iter_mut() {
            if part.end <= pos {
                continue;
            }
            if part.start > pos || pos >= end {
                break;
            }
            let (pstart, pend) = (part.start, part.end);
            let data = part.data().await?;
            let from = (pos - pstart) as usize;
            let to = ((end.min(pend) - pstart) as usize).min(data.len());
            if from >= to {
                break; // the object is shorter than it was at open
            }
            let slice = data.slice(from..to);
            pos += slice.len() as u64;
            if out.is_none() && pos >= end {
                return Ok(slice); // one part covers the whole read: no copy
            }
            out.get_or_insert_with(|| BytesMut::with_capacity((end - offset) as usize)).extend_from_slice(&slice);
            if to < (pend - pstart) as usize {
                break;
            }
        }
        Ok(out.map(BytesMut::freeze).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Objects;
    use crate::store::StoreError;
    use crate::store::memory::MemoryStore;

    fn setup(size: usize) -> (Arc<MemoryStore>, Vec<u8>) {
        let store = Arc::new(MemoryStore::new());
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        store.put("b", "k", data.clone());
        (store, data)
    }

    fn cfg() -> ReadConfig {
        ReadConfig {
            part_size: 64 << 10,
            initial_window: 16 << 10,
            max_window: 256 << 10,
            memory_limit: 1 << 20,
            ..ReadConfig::default()
        }
    }

    async fn reader(store: &MemoryStore, size: usize) -> Reader {
        let etag = store.head_object("b", "k").await.unwrap().etag;
        store.reset_counts();
        Reader::new("b".into(), "k", etag.as_deref(), size as u64, &cfg())
    }

    #[tokio::test]
    async fn sequential_read_is_exact_and_window_grows() {
        let (store, data) = setup(1 << 20);
        let mut r = reader(&store, data.len()).await;
        let lim = MemoryLimiter::new(cfg().memory_limit);
        let mut got = Vec::new();
        let mut off = 0u64;
        loop {
            let b = r.read(&store, &lim, &cfg(), off, 4096 * 3).await.unwrap();
            if b.is_empty() {
                break;
            }
            off += b.len() as u64;
            got.extend_from_slice(&b);
        }
        assert_eq!(got, data);
        // 1 MiB in parts that grow from 16 KiB to 64 KiB: far fewer requests than reads.
        let gets = store.count("GetObject");
        assert!(gets <= 1 + (1 << 20) / (64 << 10) + 4, "{gets} GetObject requests");
        assert_eq!(r.window, cfg().max_window);
    }

    #[tokio::test]
    async fn seek_resets_and_reads_right_bytes() {
        let (store, data) = setup(1 << 20);
        let mut r = reader(&store, data.len()).await;
        let lim = MemoryLimiter::new(cfg().memory_limit);
        for &(off, len) in &[(0u64, 100u32), (500_000, 1000), (10, 20), (1_048_000, 4096), (2_000_000, 10)] {
            let b = r.read(&store, &lim, &cfg(), off, len).await.unwrap();
            let s = (off as usize).min(data.len());
            let e = (off as usize + len as usize).min(data.len());
            assert_eq!(&b[..], &data[s..e], "read at {off}");
        }
        assert_eq!(r.window, cfg().initial_window, "the last read was a seek");
    }

    #[tokio::test]
    async fn memory_budget_bounds_read_ahead() {
        let (store, data) = setup(1 << 20);
        let lim = MemoryLimiter::new(64 << 10);
        let mut r = reader(&store, data.len()).await;
        let mut off = 0;
        let mut peak = 0;
        while off < data.len() as u64 {
            let b = r.read(&store, &lim, &cfg(), off, 32 << 10).await.unwrap();
            assert_eq!(&b[..], &data[off as usize..off as usize + b.len()]);
            off += b.len() as u64;
            peak = peak.max(r.held_bytes());
        }
        // The window would grow to 256 KiB; the budget holds what is fetched to 64 KiB, plus
        // what reads asked for beyond it (the current one, and the part just behind).
        assert!(peak <= (64 << 10) + 2 * (32 << 10), "{peak} bytes held at once");
        assert!(peak >= 64 << 10, "read-ahead used the budget: {peak}");
        drop(r);
        assert_eq!(lim.available(), 64 << 10, "every permit comes back");
    }

    #[tokio::test]
    async fn changed_object_gives_stale_not_mixed_data() {
        let (store, data) = setup(256 << 10);
        let mut r = reader(&store, data.len()).await;
        let lim = MemoryLimiter::new(cfg().memory_limit);
        r.read(&store, &lim, &cfg(), 0, 4096).await.unwrap();
        store.put("b", "k", vec![0u8; 256 << 10]);
        let err = r.read(&store, &lim, &cfg(), 200_000, 4096).await.unwrap_err();
        assert_eq!(err, Error::Store(StoreError::PreconditionFailed));
        assert_eq!(err.errno(), libc::ESTALE);
    }

    #[tokio::test]
    async fn server_error_surfaces_and_next_read_retries() {
        let (store, data) = setup(64 << 10);
        let mut r = reader(&store, data.len()).await;
        let lim = MemoryLimiter::new(cfg().memory_limit);
        store.inject_fault(
            "GetObject",
            StoreError::Server { status: Some(500), code: "InternalError".into(), message: "boom".into() },
        );
        let err = r.read(&store, &lim, &cfg(), 0, 4096).await.unwrap_err();
        assert_eq!(err.errno(), libc::EIO);
        let b = r.read(&store, &lim, &cfg(), 0, 4096).await.unwrap();
        assert_eq!(&b[..], &data[..4096]);
    }

    async fn read_all(r: &mut Reader, store: &Arc<MemoryStore>, lim: &MemoryLimiter, chunk: u32) -> Vec<u8> {
        let mut got = Vec::new();
        loop {
            let b = r.read(store, lim, &cfg(), got.len() as u64, chunk).await.unwrap();
            if b.is_empty() {
                return got;
            }
            got.extend_from_slice(&b);
        }
    }

    #[tokio::test]
    async fn data_cache_serves_a_second_reader_without_requests() {
        let size = 3 * BLOCK as usize + 12_345;
        let (store, data) = setup(size);
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(DataCache::open(dir.path(), "test", Some(64 << 20)).unwrap());
        let lim = MemoryLimiter::new(cfg().memory_limit);
        let mut first = reader(&store, size).await.with_data_cache(cache.clone());
        assert_eq!(read_all(&mut first, &store, &lim, 128 << 10).await, data);
        assert!(store.count("GetObject") > 0);
        cache.flush();
        assert_eq!(cache.report().blocks, 4, "three whole blocks and the short last one");

        // Another reader (another process): sequential and random reads, all from the cache.
        let mut second = reader(&store, size).await.with_data_cache(cache.clone());
        assert_eq!(read_all(&mut second, &store, &lim, 100_000).await, data);
        for &(off, len) in &[(BLOCK - 10, 20u32), (5, 4096), (3 * BLOCK + 12_000, 1000)] {
            let b = second.read(&store, &lim, &cfg(), off, len).await.unwrap();
            let e = (off as usize + len as usize).min(size);
            assert_eq!(&b[..], &data[off as usize..e]);
        }
        assert_eq!(store.count("GetObject"), 0);

        // A damaged block is fetched again (one GET, for that block alone), and right.
        let victim = {
            let mut files: Vec<_> = std::fs::read_dir(dir.path().join("blocks"))
                .unwrap()
                .flatten()
                .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten().map(|f| f.path()))
                .collect();
            files.sort();
            files.swap_remove(0)
        };
        let mut bytes = std::fs::read(&victim).unwrap();
        let mid = bytes.len() - 500;
        bytes[mid] ^= 0xff;
        std::fs::write(&victim, bytes).unwrap();
        let mut third = reader(&store, size).await.with_data_cache(cache.clone());
        assert_eq!(read_all(&mut third, &store, &lim, 128 << 10).await, data);
        assert_eq!(store.count("GetObject"), 1);
        assert_eq!(cache.report().corrupt, 1);

        // A new version of the object is never served from the old one's blocks.
        let new: Vec<u8> = data.iter().map(|b| b ^ 0x55).collect();
        store.put("b", "k", new.clone());
        let mut fourth = reader(&store, size).await.with_data_cache(cache.clone());
        assert_eq!(read_all(&mut fourth, &store, &lim, 128 << 10).await, new);
        assert!(store.count("GetObject") >= 1);
        // Its writer thread is done with the directory before the directory goes.
        cache.flush();
    }
}
