//! Writes: every change made through the mount.
//!
//! Owns the staged files (`staged.rs`: a file being written, on local disk, uploaded with
//! PutObject or a multipart upload sent while writing), the staging area and its journals
//! (`staging.rs`, what a crashed mount left), the DeleteObjects batcher and held deletes
//! (`delete.rs`), and the operations that change things: create/write/flush/fsync/release
//! (`writing.rs`), mkdir/mknod/symlink (`mknod.rs`), rename (`rename.rs`), unlink/rmdir
//! (`unlink.rs`), chmod/chown/utimens/truncate (`setattr.rs`), and unmount (`shutdown.rs`).
//!
//! May call: the store, the inode table, the listing cache (to keep listings in step with the
//! changes), metadata (what is known of the objects changed). Called by `Fs`'s FUSE operations.
//! The writers table, pending metadata and held deletes are still fields of `Fs` (issue 29).

pub mod delete;
mod mknod;
pub mod pending_meta;
mod rename;
pub mod setattr;
mod shutdown;
pub mod staged;
pub mod staging;
mod unlink;
pub mod writing;
