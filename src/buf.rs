//! Large buffers for part-sized data (read-ahead parts, write parts), reused through one pool.
//!
//! A fresh multi-MiB allocation costs a page fault and a zeroed page for every 4 KiB touched:
//! for a 1 GiB sequential read that was 262,144 faults, about a tenth of the daemon's CPU time.
//! A [`PoolBuf`] is handed out as `Bytes` (zero-copy slices for FUSE replies); when the last
//! slice is dropped its memory goes back to the pool, already faulted in. Buffers idle for
//! longer than [`IDLE`] are freed by [`trim`], so an idle mount does not hold its peak memory.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Alignment of every buffer: whole pages (what O_DIRECT needs, should the staging file be
/// written that way again; see docs/BENCHMARKS.md).
pub const ALIGN: usize = 4096;
/// Smaller buffers are not worth pooling: the allocator serves them without page faults.
pub const POOL_MIN: usize = 1 << 20;
/// At most this many idle buffers are kept.
const POOL_MAX: usize = 16;
/// Idle buffers older than this are freed by [`trim`].
pub const IDLE: Duration = Duration::from_secs(5);

/// Idle buffers, each with the time it came back.
pub struct Pool(Mutex<Vec<(Vec<u8>, Instant)>>);

/// The daemon's pool.
pub static POOL: Pool = Pool::new();

impl Pool {
    pub const fn new() -> Pool {
        Pool(Mutex::new(Vec::new()))
    }

    /// A buffer for `cap` bytes: an idle one when one fits (and is less than twice the size,
    /// so a small request does not pin a large buffer), else a new one.
    pub fn take(&'static self, cap: usize) -> PoolBuf {
        let need = cap + ALIGN;
        let reused = if cap >= POOL_MIN {
            let mut idle = self.0.lock().unwrap();
            idle.iter().position(|(v, _)| v.len() >= need && v.len() < need * 2).map(|i| idle.swap_remove(i).0)
        } else {
            None
        };
        let vec = reused.unwrap_or_else(|| vec![0u8; need]);
        let off = (ALIGN - vec.as_ptr() as usize % ALIGN) % ALIGN;
        PoolBuf { vec, off, len: 0, cap, pool: self }
    }

    /// Frees buffers idle for at least `idle`; returns how many bytes that released.
    pub fn trim(&self, idle: Duration) -> usize {
        let old: Vec<(Vec<u8>, Instant)> = {
            let mut pool = self.0.lock().unwrap();
            let (old, keep) = std::mem::take(&mut *pool).into_iter().partition(|(_, at)| at.elapsed() >= idle);
            *pool = keep;
            old
        };
        old.iter().map(|(v, _)| v.len()).sum()
    }

    /// Bytes held by idle buffers.
    pub fn idle_bytes(&self) -> usize {
        self.0.lock().unwrap().iter().map(|(v, _)| v.len()).sum()
    }
}

impl Default for Pool {
    fn default() -> Pool {
        Pool::new()
    }
}

/// A page-aligned buffer of fixed capacity, filled by [`PoolBuf::push`] and frozen into `Bytes`.
pub struct PoolBuf {
    vec: Vec<u8>,
    off: usize,
    len: usize,
    cap: usize,
    pool: &'static Pool,
}

impl PoolBuf {
    /// A buffer for `cap` bytes from the daemon's pool.
    pub fn new(cap: usize) -> PoolBuf {
        POOL.take(cap)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    pub fn spare(&self) -> usize {
        self.cap - self.len
    }

    /// Appends what fits of `data`; returns how much that was.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.spare());
        let at = self.off + self.len;
        self.vec[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    /// The room not filled yet, to be written in place; [`set_filled`](Self::set_filled) then
    /// says how much of the buffer holds data.
    pub fn spare_mut(&mut self) -> &mut [u8] {
        let at = self.off + self.len;
        &mut self.vec[at..self.off + self.cap]
    }

    /// The first `n` bytes hold data.
    pub fn set_filled(&mut self, n: usize) {
        assert!(n <= self.cap, "{n} bytes in a buffer of {}", self.cap);
        self.len = n;
    }

    /// The filled bytes as `Bytes`; the buffer returns to the pool when the last clone or slice
    /// of them is dropped.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PoolBuf {
    fn as_ref(&self) -> &[u8] {
        &self.vec[self.off..self.off + self.len]
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        if self.vec.len() < POOL_MIN {
            return;
        }
        let mut idle = self.pool.0.lock().unwrap();
        if idle.len() < POOL_MAX {
            idle.push((std::mem::take(&mut self.vec), Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> &'static Pool {
        Box::leak(Box::new(Pool::new()))
    }

    #[test]
    fn buffers_are_aligned_filled_to_capacity_and_reused_after_the_last_slice() {
        let pool = pool();
        let mut b = pool.take(POOL_MIN);
        assert_eq!(b.push(&[7u8; 10]), 10);
        assert_eq!(b.as_ref().as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.push(&vec![1u8; POOL_MIN]), POOL_MIN - 10, "push stops at capacity");
        assert_eq!(b.spare(), 0);
        let addr = b.as_ref().as_ptr() as usize;
        let bytes = b.freeze();
        let slice = bytes.slice(0..10);
        drop(bytes);
        assert_eq!(&slice[..], &[7u8; 10]);
        assert_eq!(pool.idle_bytes(), 0, "a live slice keeps the buffer");
        drop(slice);
        assert!(pool.idle_bytes() > POOL_MIN, "the last slice dropped returns the buffer");

        let again = pool.take(POOL_MIN);
        assert_eq!(again.as_ref().as_ptr() as usize, addr, "the same memory is handed out again");
        assert!(again.is_empty());
        assert_eq!(pool.idle_bytes(), 0);
    }

    #[test]
    fn small_requests_do_not_take_big_buffers_and_idle_ones_are_trimmed() {
        let pool = pool();
        drop(pool.take(4 * POOL_MIN));
        drop(pool.take(POOL_MIN / 2)); // too small to pool
        let held = pool.idle_bytes();
        assert!(held > 4 * POOL_MIN && held < 5 * POOL_MIN, "only the big one is kept: {held}");
        drop(pool.take(POOL_MIN));
        assert_eq!(pool.idle_bytes(), held + POOL_MIN + ALIGN, "a 1 MiB request got a new buffer");

        assert_eq!(pool.trim(Duration::from_secs(3600)), 0, "nothing is that old");
        assert_eq!(pool.trim(Duration::ZERO), held + POOL_MIN + ALIGN);
        assert_eq!(pool.idle_bytes(), 0);
    }
}
