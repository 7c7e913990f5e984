//! Process-wide activity counters for `s3drive status` and the metrics endpoint: S3 requests by kind, bytes up and down,
//! and recent errors. Global, like a metrics registry: the store, the core and the adapter all
//! record into it without being wired together.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::SystemTime;

/// Errors kept for `status`.
const RECENT_ERRORS: usize = 20;

pub struct Stats {
    pub started: SystemTime,
    requests: Mutex<BTreeMap<&'static str, u64>>,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    retries: Mutex<BTreeMap<&'static str, u64>>,
    errors_total: AtomicU64,
    errors: Mutex<VecDeque<(SystemTime, String)>>,
}

static STATS: LazyLock<Stats> = LazyLock::new(|| Stats {
    started: SystemTime::now(),
    requests: Mutex::default(),
    bytes_up: AtomicU64::new(0),
    bytes_down: AtomicU64::new(0),
    retries: Mutex::default(),
    errors_total: AtomicU64::new(0),
    errors: Mutex::default(),
});

pub fn get() -> &'static Stats {
    &STATS
}

/// One S3 request of kind `op` was sent.
pub fn request(op: &'static str) {
    *STATS.requests.lock().unwrap().entry(op).or_default() += 1;
}

pub fn bytes_up(n: u64) {
    STATS.bytes_up.fetch_add(n, Ordering::Relaxed);
}

pub fn bytes_down(n: u64) {
    STATS.bytes_down.fetch_add(n, Ordering::Relaxed);
}

/// A request of kind `op` is sent again after a failure (see `store::retry`).
pub fn retry(op: &'static str) {
    *STATS.retries.lock().unwrap().entry(op).or_default() += 1;
}

/// Something failed that the user should be able to find later.
pub fn error(msg: String) {
    STATS.errors_total.fetch_add(1, Ordering::Relaxed);
    let mut e = STATS.errors.lock().unwrap();
    if e.len() == RECENT_ERRORS {
        e.pop_front();
    }
    e.push_back((SystemTime::now(), msg));
}

impl Stats {
    pub fn requests(&self) -> Vec<(&'static str, u64)> {
        self.requests.lock().unwrap().iter().map(|(k, v)| (*k, *v)).collect()
    }

    pub fn retries(&self) -> Vec<(&'static str, u64)> {
        self.retries.lock().unwrap().iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Failures recorded with [`error`] since start (the recent ones are kept in full).
    pub fn errors_total(&self) -> u64 {
        self.errors_total.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> (u64, u64) {
        (self.bytes_up.load(Ordering::Relaxed), self.bytes_down.load(Ordering::Relaxed))
    }

    pub fn errors(&self) -> Vec<(SystemTime, String)> {
        self.errors.lock().unwrap().iter().cloned().collect()
    }
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `7 B`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}
