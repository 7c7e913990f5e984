//! s3drive: a FUSE filesystem that mounts Amazon S3 and S3-compatible storage.
//!
//! # Layout
//!
//! - [`cli`]: command-line arguments; [`config`]: the validated [`config::Config`] built from them.
//! - [`fuse`]: the thin fuser adapter; every operation is spawned onto tokio and replied from there.
//! - [`fs`]: the filesystem core, one async method per operation:
//!   [`fs::inode`] (inode table), [`fs::listings`] (listings and their cache), [`fs::reads`] (readers, read-ahead, the data cache),
//!   [`fs::names`] (which keys can be names), [`fs::error`] (the one place errnos are chosen).
//! - [`store`]: the [`store::ObjectStore`] trait; [`store::s3`] is the only module that uses
//!   aws-sdk-s3, [`store::memory`] is an in-memory store for unit tests.
//! - [`mount`]: start-up checks, mounting, and clean unmount on signals; [`daemon`]: running in
//!   the background; [`options`]: fstab `-o` options; [`logging`]: log targets and redaction.
//! - [`buf`]: part-sized buffers reused through one pool; [`util`]: stateless helpers (a leaf).
//! - [`stats`] and [`status`]: activity counters and `s3drive status`; [`recover`]: `s3drive
//!   recover`, for what a crashed mount left in the cache directory ([`fs::writes::staging`]).
//!
//! docs/ARCHITECTURE.md follows a read through these modules.

// send_with! (store::s3) gives each request future both SDK send paths; clippy needs the room.
#![recursion_limit = "256"]
pub mod buf;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod fs;
pub mod fuse;
pub mod logging;
pub mod metrics;
pub mod mount;
pub mod options;
pub mod output;
pub mod recover;
pub mod stats;
pub mod status;
pub mod store;
pub mod util;
