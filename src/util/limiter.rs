//! A byte budget shared by tasks: read-ahead and upload memory.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Permits are counted in pages so that a u32 covers any budget.
pub const PAGE: u64 = 4096;

/// A memory budget shared by many tasks (read-ahead parts, upload parts): permits of pages.
#[derive(Debug, Clone)]
pub struct MemoryLimiter {
    sem: Arc<Semaphore>,
    total_pages: u64,
}

impl MemoryLimiter {
    pub fn new(bytes: u64) -> MemoryLimiter {
        MemoryLimiter { sem: Arc::new(Semaphore::new((bytes / PAGE) as usize)), total_pages: bytes / PAGE }
    }

    pub fn try_take(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        self.sem.clone().try_acquire_many_owned(bytes.div_ceil(PAGE) as u32).ok()
    }

    /// Waits until `bytes` fit in the budget (a request larger than the whole budget waits for
    /// all of it).
    pub async fn take(&self, bytes: u64) -> OwnedSemaphorePermit {
        let pages = bytes.div_ceil(PAGE).min(self.total_pages) as u32;
        self.sem.clone().acquire_many_owned(pages).await.expect("never closed")
    }

    /// Bytes currently free in the budget.
    pub fn available(&self) -> u64 {
        self.sem.available_permits() as u64 * PAGE
    }
}
