//! Deletes, batched into DeleteObjects requests of up to 1,000 keys.
//!
//! `unlink` only queues the key and returns: from then on the name is hidden from lookups and
//! listings (`is_pending`). A bucket's queue is sent when it holds 1,000 keys, when no new key has
//! come for its idle window, or when its oldest key has waited `MAX_AGE`. The idle window is
//! `QUICK` (20 ms: `rm` of a few hundred files, or of one, reaches S3 at once), or `IDLE`
//! (200 ms) for keys that come within `WALK` of a batch sent for idleness: a tool walking a tree
//! (`rm -r`) pauses for a listing round trip between folders, and the longer window gathers
//! many folders into one batch at the cost of one early batch. One batch per bucket is in flight
//! at a time, so batches complete in the order keys were queued. A key that is written again
//! while queued is taken out of the queue (`cancel`); if its batch is already in flight the writer
//! waits for that batch first, so the new object is never deleted by the old unlink.
//!
//! A file open for reading when its name is removed keeps its object until the last
//! descriptor closes (`hold`, then `let_go`), as a local file keeps its data: the name is hidden
//! at once, and the key is queued when the reader is done (or at unmount). A crash in between
//! leaves the object in S3.
//!
//! A failed batch is not silent: the keys it could not delete become visible again, the failure is
//! logged with the keys, and the next `fsync` of a directory (or `take_failures`) reports EIO.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
// tokio's Instant is std's, except under a paused test clock, which the timing tests use.
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::store::{ObjectStore, StoreError};

pub const BATCH: usize = 1000;
const QUICK: Duration = Duration::from_millis(20);
const IDLE: Duration = Duration::from_millis(200);
const WALK: Duration = Duration::from_secs(1);
const MAX_AGE: Duration = Duration::from_secs(5);
const RECENT: Duration = Duration::from_secs(10);

impl Default for State {
    fn default() -> Self {
        State {
            queues: HashMap::new(),
            pending: HashSet::new(),
            held: HashSet::new(),
            in_flight: HashSet::new(),
            failures: Vec::new(),
            recent: lru::LruCache::new(std::num::NonZeroUsize::new(100_000).unwrap()),
            epoch: 0,
        }
    }
}

type Key = (Arc<str>, String);

#[derive(Default)]
struct Queue {
    keys: Vec<String>,
    first: Option<Instant>,
    last: Option<Instant>,
    sending: bool,
    /// The idle window of the keys queued now (`QUICK` or `IDLE`), chosen by the first of them.
    window: Duration,
    /// When the last batch sent for idleness (not full, not old) went out.
    idle_sent: Option<Instant>,
}

impl Queue {
    fn idle_since(&self, now: Instant) -> bool {
        self.last.is_some_and(|t| t + self.window <= now)
    }
}

struct State {
    queues: HashMap<Arc<str>, Queue>,
    /// Every key queued or in flight.
    pending: HashSet<Key>,
    /// Keys removed while a reader has them open: hidden, queued once let go.
    held: HashSet<Key>,
    /// Keys in the batch being sent now.
    in_flight: HashSet<Key>,
    failures: Vec<String>,
    /// Keys deleted in the last `RECENT`: a listing sent before their batch finished may still
    /// show them.
    recent: lru::LruCache<Key, Instant>,
    /// Bumped whenever a failed batch makes names reappear (listing caches must be dropped).
    epoch: u64,
}

pub struct Deleter<S: ObjectStore> {
    store: Arc<S>,
    state: Mutex<State>,
    /// Wakes the sender task (new keys) and waiters (a batch finished).
    wake: Notify,
    done: Notify,
}

impl<S: ObjectStore> Deleter<S> {
    /// Keys queued or in flight.
    pub fn pending_count(&self) -> usize {
        let s = self.state.lock().unwrap();
        s.pending.len() + s.held.len()
    }

    pub fn new(store: Arc<S>) -> Arc<Self> {
        let d = Arc::new(Deleter { store, state: Mutex::default(), wake: Notify::new(), done: Notify::new() });
        if tokio::runtime::Handle::try_current().is_ok() {
            let weak = Arc::downgrade(&d);
            tokio::spawn(async move {
                while let Some(d) = weak.upgrade() {
                    let wait = d.next_deadline();
                    tokio::select! {
                        _ = d.wake.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                    d.send_due(false).await;
                }
            });
        }
        d
    }

    /// Queues `key` for deletion; from now on it is hidden.
    pub fn schedule(&self, bucket: &Arc<str>, key: String) {
        let mut s = self.state.lock().unwrap();
        if !s.pending.insert((bucket.clone(), key.clone())) {
            return;
        }
        let q = s.queues.entry(bucket.clone()).or_default();
        let now = Instant::now();
        if q.keys.is_empty() {
            let walking = q.idle_sent.is_some_and(|t| now.saturating_duration_since(t) < WALK);
            q.window = if walking { IDLE } else { QUICK };
        }
        q.first.get_or_insert(now);
        q.last = Some(now);
        q.keys.push(key);
        // The sender sleeps until the earliest deadline: a queue that was empty has a new one.
        let wake = q.keys.len() == 1 || q.keys.len() >= BATCH;
        drop(s);
        if wake {
            self.wake.notify_one();
        }
    }

    /// `key` is to be deleted once its reader is done ([`Deleter::let_go`]); hidden from now on.
    pub fn hold(&self, bucket: &Arc<str>, key: String) {
        let mut s = self.state.lock().unwrap();
        let k = (bucket.clone(), key);
        if !s.pending.contains(&k) {
            s.held.insert(k);
        }
    }

    /// Queues a held key for deletion, unless it was written again since (`cancel`).
    pub fn let_go(&self, bucket: &Arc<str>, key: &str) {
        let k = (bucket.clone(), key.to_string());
        if self.state.lock().unwrap().held.remove(&k) {
            self.schedule(bucket, k.1);
        }
    }

    /// Queues every held key (of `bucket`, or all): unmount, or the bucket is to be removed.
    pub fn let_go_all(&self, bucket: Option<&str>) {
        let keys: Vec<Key> = {
            let mut s = self.state.lock().unwrap();
            let keys: Vec<Key> = s.held.iter().filter(|(b, _)| bucket.is_none_or(|x| **b == *x)).cloned().collect();
            for k in &keys {
                s.held.remove(k);
            }
            keys
        };
        for (b, k) in keys {
            self.schedule(&b, k);
        }
    }

    /// Deleted through this mount: queued, in flight, held for a reader, or done a moment ago.
    pub fn is_pending(&self, bucket: &str, key: &str) -> bool {
        let mut s = self.state.lock().unwrap();
        if s.pending.is_empty() && s.recent.is_empty() && s.held.is_empty() {
            return false;
        }
        let k = (Arc::from(bucket), key.to_string());
        s.pending.contains(&k) || s.held.contains(&k) || s.recent.get(&k).is_some_and(|t| t.elapsed() < RECENT)
    }

    pub fn epoch(&self) -> u64 {
        self.state.lock().unwrap().epoch
    }

    /// `key` is about to be written: take it out of the queue, and wait if it is being deleted now.
    pub async fn cancel(&self, bucket: &Arc<str>, key: &str) {
        let k: Key = (bucket.clone(), key.to_string());
        loop {
            let notified = self.done.notified();
            {
                let mut s = self.state.lock().unwrap();
                if !s.in_flight.contains(&k) {
                    s.recent.pop(&k);
                    s.held.remove(&k);
                    if s.pending.remove(&k)
                        && let Some(q) = s.queues.get_mut(bucket)
                    {
                        q.keys.retain(|x| x != key);
                    }
                    return;
                }
            }
            notified.await;
        }
    }

    /// Failures since the last call, for fsyncdir.
    pub fn take_failures(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().unwrap().failures)
    }

    fn next_deadline(&self) -> Duration {
        let s = self.state.lock().unwrap();
        let now = Instant::now();
        s.queues
            .values()
            .filter(|q| !q.keys.is_empty() && !q.sending)
            .map(|q| {
                let idle = q.last.map_or(now, |t| t + q.window);
                let age = q.first.map_or(now, |t| t + MAX_AGE);
                idle.min(age).saturating_duration_since(now)
            })
            .min()
            .unwrap_or(Duration::from_secs(3600))
    }

    /// Sends every due batch (all of them when `all`), each bucket's batches one after another.
    async fn send_due(&self, all: bool) {
        loop {
            let batch = {
                let mut s = self.state.lock().unwrap();
                let now = Instant::now();
                let due = s.queues.iter_mut().find(|(_, q)| {
                    !q.sending
                        && !q.keys.is_empty()
                        && (all
                            || q.keys.len() >= BATCH
                            || q.idle_since(now)
                            || q.first.is_some_and(|t| t + MAX_AGE <= now))
                });
                let Some((bucket, q)) = due else { return };
                let bucket = bucket.clone();
                if !all && q.keys.len() < BATCH && q.idle_since(now) {
                    q.idle_sent = Some(now);
                }
                let n = q.keys.len().min(BATCH);
                let keys: Vec<String> = q.keys.drain(..n).collect();
                q.sending = true;
                if q.keys.is_empty() {
                    q.first = None;
                } else {
                    q.first = Some(now);
                }
                for k in &keys {
                    s.in_flight.insert((bucket.clone(), k.clone()));
                }
                (bucket, keys)
            };
            let (bucket, keys) = batch;
            debug!(bucket = &*bucket, keys = keys.len(), "DeleteObjects");
            let result = self.store.delete_objects(&bucket, &keys).await;
            let failed: Vec<(String, StoreError)> = match result {
                Ok(f) => f,
                Err(e) => keys.iter().map(|k| (k.clone(), e.clone())).collect(),
            };
            {
                let mut s = self.state.lock().unwrap();
                let now = Instant::now();
                let failed_keys: HashSet<&String> = failed.iter().map(|(k, _)| k).collect();
                for k in &keys {
                    let key = (bucket.clone(), k.clone());
                    s.in_flight.remove(&key);
                    s.pending.remove(&key);
                    if !failed_keys.contains(k) {
                        s.recent.put(key, now);
                    }
                }
                if let Some(q) = s.queues.get_mut(&bucket) {
                    q.sending = false;
                }
                if !failed.is_empty() {
                    let first = &failed[0];
                    let msg = format!(
                        "deleting {} of {} keys in bucket {} failed ({}: {}, ...); they are visible again",
                        failed.len(),
                        keys.len(),
                        bucket,
                        first.0,
                        first.1
                    );
                    warn!("{msg}");
                    s.failures.push(msg);
                    s.epoch += 1;
                }
            }
            self.done.notify_waiters();
        }
    }

    /// Sends every queued key now and waits until all batches are done (unmount, fsyncdir, rmdir
    /// of a bucket).
    pub async fn flush(&self) {
        loop {
            self.send_due(true).await;
            let notified = self.done.notified();
            let wait = {
                let s = self.state.lock().unwrap();
                if s.pending.is_empty() {
                    return;
                }
                s.queues.values().all(|q| q.keys.is_empty() || q.sending) && !s.in_flight.is_empty()
            };
            if wait {
                notified.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn a_held_delete_waits_for_its_reader_and_a_new_write_cancels_it() {
        let store = Arc::new(MemoryStore::new());
        for k in ["read", "rewritten", "left"] {
            store.put("b", k, "x");
        }
        let d = Deleter::new(store.clone());
        let b: Arc<str> = "b".into();
        for k in ["read", "rewritten", "left"] {
            d.hold(&b, k.into());
            assert!(d.is_pending("b", k), "hidden at once");
        }
        assert_eq!(d.pending_count(), 3);
        d.flush().await;
        tokio::time::sleep(IDLE * 3).await;
        assert_eq!(store.count("DeleteObjects"), 0, "nothing is sent while held, not even by a flush");
        d.let_go(&b, "read");
        d.cancel(&b, "rewritten").await;
        d.let_go(&b, "rewritten");
        assert!(!d.is_pending("b", "rewritten"));
        d.flush().await;
        assert!(store.object("b", "read").is_none());
        assert!(store.object("b", "rewritten").is_some(), "written again: not deleted by the old unlink");
        assert!(store.object("b", "left").is_some());
        d.let_go_all(None);
        d.flush().await;
        assert!(store.object("b", "left").is_none(), "unmount lets go of every held key");
        assert_eq!(d.pending_count(), 0);
    }

    #[tokio::test]
    async fn a_lone_delete_goes_out_when_the_queue_is_idle_without_a_flush() {
        let store = Arc::new(MemoryStore::new());
        store.put("b", "k", "x");
        let d = Deleter::new(store.clone());
        tokio::time::sleep(Duration::from_millis(50)).await; // the sender sleeps on an empty queue
        d.schedule(&"b".into(), "k".into());
        tokio::time::sleep(IDLE * 3).await;
        assert_eq!(store.count("DeleteObjects"), 1);
        assert!(store.object("b", "k").is_none());
    }

    /// Deletes sent so far, after letting the virtual clock run for `d`.
    async fn sent_after(store: &MemoryStore, d: Duration) -> u64 {
        tokio::time::sleep(d).await;
        store.count("DeleteObjects")
    }

    #[tokio::test(start_paused = true)]
    async fn a_few_deletes_go_out_quickly_and_a_walk_waits_longer() {
        let store = Arc::new(MemoryStore::new());
        for k in ["a", "b", "c", "d", "e"] {
            store.put("b", k, "x");
        }
        let d = Deleter::new(store.clone());
        let b: Arc<str> = "b".into();
        sent_after(&store, Duration::from_millis(1)).await;
        // Two keys one after another: one batch, QUICK after the last.
        d.schedule(&b, "a".into());
        d.schedule(&b, "b".into());
        assert_eq!(sent_after(&store, QUICK / 2).await, 0);
        assert_eq!(sent_after(&store, QUICK).await, 1);
        assert!(store.object("b", "a").is_none() && store.object("b", "b").is_none());
        // More keys soon after (a tool walking folders): they wait for the longer window.
        d.schedule(&b, "c".into());
        assert_eq!(sent_after(&store, QUICK * 3).await, 1);
        d.schedule(&b, "d".into());
        assert_eq!(sent_after(&store, IDLE - QUICK).await, 1, "the window counts from the last key");
        assert_eq!(sent_after(&store, QUICK * 2).await, 2);
        // Once the walk has been quiet for WALK, a new key goes out quickly again.
        assert_eq!(sent_after(&store, WALK).await, 2);
        d.schedule(&b, "e".into());
        assert_eq!(sent_after(&store, QUICK * 2).await, 3);
        assert!(store.object("b", "e").is_none());
    }

    #[tokio::test]
    async fn batches_of_a_thousand_and_hidden_at_once() {
        let store = Arc::new(MemoryStore::new());
        for i in 0..2500 {
            store.put("b", &format!("k{i}"), "x");
        }
        let d = Deleter::new(store.clone());
        let b: Arc<str> = "b".into();
        for i in 0..2500 {
            d.schedule(&b, format!("k{i}"));
        }
        assert!(d.is_pending("b", "k7"));
        d.flush().await;
        assert!(d.is_pending("b", "k7"), "still hidden a moment after the delete");
        assert_eq!(store.count("DeleteObjects"), 3);
        assert!(store.object("b", "k2499").is_none());
    }

    #[tokio::test]
    async fn idle_queue_is_sent_without_flush() {
        let store = Arc::new(MemoryStore::new());
        store.put("b", "k", "x");
        let d = Deleter::new(store.clone());
        d.schedule(&"b".into(), "k".into());
        tokio::time::sleep(IDLE * 3).await;
        assert_eq!(store.count("DeleteObjects"), 1);
        assert!(store.object("b", "k").is_none());
    }

    #[tokio::test]
    async fn cancel_keeps_a_rewritten_key() {
        let store = Arc::new(MemoryStore::new());
        store.put("b", "k", "x");
        let d = Deleter::new(store.clone());
        let b: Arc<str> = "b".into();
        d.schedule(&b, "k".into());
        d.cancel(&b, "k").await;
        d.flush().await;
        assert!(store.object("b", "k").is_some());
    }

    #[tokio::test]
    async fn failed_batch_reappears_and_is_reported() {
        let store = Arc::new(MemoryStore::new());
        store.put("b", "k", "x");
        store.inject_fault("DeleteObjects", StoreError::AccessDenied);
        let d = Deleter::new(store.clone());
        d.schedule(&"b".into(), "k".into());
        let epoch = d.epoch();
        d.flush().await;
        assert!(!d.is_pending("b", "k"));
        assert_eq!(d.epoch(), epoch + 1);
        assert_eq!(d.take_failures().len(), 1);
        assert!(store.object("b", "k").is_some());
    }
}
