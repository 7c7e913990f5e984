//! Rules between S3 keys and file names. A key segment becomes a file name only if it can be one:
//!
//! - empty segments (`a//b`, or a key that starts with `/`) cannot be named: hidden;
//! - `.` and `..` mean something else to every path walker: hidden;
//! - segments longer than 255 bytes exceed NAME_MAX: hidden;
//! - a segment with a NUL byte cannot reach the kernel: hidden.
//!
//! A directory's own marker object (`dir/` listed under prefix `dir/`) is not an entry of itself.
//! docs/SEMANTICS.md repeats these rules for users.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use super::error::{Error, Result};

/// NAME_MAX on Linux.
pub const NAME_MAX: usize = 255;

/// A name that can appear in the mount: valid UTF-8 (S3 keys are), non-empty, no '/', no NUL,
/// not `.` or `..`, at most NAME_MAX bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    pub fn new(s: &str) -> Option<Name> {
        let ok = !s.is_empty() && s.len() <= NAME_MAX && s != "." && s != ".." && !s.contains(['/', '\0']);
        ok.then(|| Name(s.to_string()))
    }

    /// A name from the kernel. One longer than NAME_MAX (255 bytes) is ENAMETOOLONG, as POSIX
    /// says; another that no key could produce does not exist: ENOENT.
    pub fn from_os(s: &OsStr) -> Result<Name> {
        if s.len() > NAME_MAX {
            return Err(Error::NameTooLong);
        }
        std::str::from_utf8(s.as_bytes()).ok().and_then(Name::new).ok_or(Error::NotFound)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a listing entry under `prefix` is, once the prefix is stripped.
#[derive(Debug, PartialEq, Eq)]
pub enum Child {
    File(Name),
    Dir(Name),
    /// The directory's own marker object, or a key segment that cannot be a name.
    Hidden,
}

/// Classifies an object key listed under `prefix` (with delimiter '/').
pub fn object_child(prefix: &str, key: &str) -> Child {
    match key.strip_prefix(prefix) {
        Some("") | None => Child::Hidden,
        Some(rest) => Name::new(rest).map_or(Child::Hidden, Child::File),
    }
}

/// Classifies a common prefix listed under `prefix` (it ends in '/').
pub fn prefix_child(prefix: &str, common: &str) -> Child {
    match common.strip_prefix(prefix).and_then(|r| r.strip_suffix('/')) {
        Some(seg) => Name::new(seg).map_or(Child::Hidden, Child::Dir),
        None => Child::Hidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_segments() {
        assert_eq!(object_child("a/", "a/"), Child::Hidden, "a directory's own marker");
        assert_eq!(prefix_child("a/", "a//"), Child::Hidden, "empty segment of a//b");
        assert_eq!(object_child("", "."), Child::Hidden);
        assert_eq!(prefix_child("", "../"), Child::Hidden);
        let long = "x".repeat(256);
        assert_eq!(object_child("", &long), Child::Hidden);
        assert_eq!(object_child("", &"x".repeat(255)), Child::File(Name::new(&"x".repeat(255)).unwrap()));
        assert_eq!(prefix_child("a/", "a/b/"), Child::Dir(Name::new("b").unwrap()));
        assert_eq!(object_child("a/", "a/b c.txt"), Child::File(Name::new("b c.txt").unwrap()));
    }

    #[test]
    fn kernel_names() {
        assert!(Name::from_os(OsStr::new("ok")).is_ok());
        assert_eq!(Name::from_os(OsStr::from_bytes(b"\xff")), Err(Error::NotFound));
        assert_eq!(Name::from_os(OsStr::new("..")), Err(Error::NotFound));
    }
}
