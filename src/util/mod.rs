//! Small helpers shared by several parts of s3drive, with no state and no knowledge of S3 or of
//! the filesystem core: percent-encoding, private directories, and a byte budget.
//!
//! A leaf: it imports nothing from the crate (only std, libc, tokio and tracing), so any module
//! may use it without making an import circle.

pub mod limiter;
pub mod percent;
pub mod private_dir;
