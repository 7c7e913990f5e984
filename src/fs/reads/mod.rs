//! Reads: open files and their readers, and the local data cache.
//!
//! Owns the readers (`reader.rs`: sequential detection, a read-ahead window that grows, pinned
//! to the ETag seen at open, within the shared memory budget), the data cache (`data_cache.rs`:
//! checked 1 MiB blocks per object version on local disk, LRU, shared by mounts), and opening
//! and reading through `Fs` (`open.rs`: a reader per handle, following our own metadata copies).
//!
//! May call: the store (ranged GETs), the inode table and metadata (open's attributes), util's
//! MemoryLimiter. Called by `Fs::open`/`read`, and by uploads that seed the data cache.

pub mod data_cache;
mod open;
pub mod reader;

pub use reader::{MemoryLimiter, Reader};
