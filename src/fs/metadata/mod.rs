//! Metadata: what s3drive knows of objects' user metadata and how attributes are built from it.
//!
//! Owns the metadata index (`index.rs`: object version -> user metadata, in memory and in
//! SQLite), the layout of a file's metadata in S3 (`file_meta.rs`, s3fs's and rclone's names),
//! directories' metadata on their `dir/` markers (`dir_meta.rs`), the HeadObjects shared between
//! lookups and sent ahead of an in-order walk (`heads.rs`, `stat_ahead.rs`), and the attributes `stat` shows
//! (`attrs.rs`: from a HEAD, a listing and the index, or this mount's own writes).
//!
//! May call: the store (HeadObject, the markers' PutObject), the inode table, the listings it
//! writes HEAD answers into. Called by `Fs`'s lookups, getattr, readdir, setattr and uploads.

mod attrs;
mod dir_meta;
pub mod file_meta;
pub mod heads;
pub mod index;
mod stat_ahead;
