//! The metadata a file carries in S3, in s3fs's and rclone's names so that both can read it
//! (`mode`, `uid`, `gid`, `mtime`, `ctime`, `atime`, `rdev`, and user xattrs in `xattr`), and
//! how it is written into an upload's or a copy's user metadata.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::fs::inode::{Attr, Kind};
use crate::store::PutMeta;

/// The user metadata name that holds user xattrs (s3fs's name).
pub const XATTR_META: &str = "xattr";

/// The user metadata names s3drive writes itself (a file's mode, owner and mtime).
const OWN_META: [&str; 4] = ["mode", "uid", "gid", "mtime"];

/// User metadata other than the names s3drive writes itself.
pub(in crate::fs) fn others(metadata: HashMap<String, String>) -> HashMap<String, String> {
    metadata.into_iter().filter(|(n, _)| !OWN_META.contains(&n.as_str())).collect()
}

/// The metadata a file carries in S3: s3fs's and rclone's names, so both can read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    /// The mtime was set (utimens) or came from S3, rather than being the time of the last
    /// write. Only such an mtime goes into a multipart upload's metadata: that is fixed when
    /// the upload starts, and the writes after it would make it stale.
    pub mtime_set: bool,
    /// The last access time, when one was set (utimens); else the mtime stands for it (the
    /// mount is `noatime`: reads do not move it).
    pub atime: Option<SystemTime>,
    /// The last change of the file or its metadata: writes, truncate, chmod, chown, utimens,
    /// xattrs, rename.
    pub ctime: SystemTime,
    pub kind: Kind,
}

impl FileMeta {
    /// The attributes of a file with this metadata.
    pub fn attr(&self, size: u64, etag: Option<String>) -> Attr {
        Attr {
            kind: self.kind,
            size,
            mtime: self.mtime,
            atime: self.atime,
            ctime: Some(self.ctime),
            perm: Some(self.perm),
            uid: Some(self.uid),
            gid: Some(self.gid),
            etag,
            modified: None,
            class: None,
        }
    }

    /// `st_mode`: the permission bits with the file type (what the `mode` metadata holds).
    pub fn st_mode(&self) -> u32 {
        self.kind.type_bits() | u32::from(self.perm)
    }

    /// The file's bytes changed now (a write, a truncate): its mtime is now, and it is the
    /// time of the change rather than one that was set.
    pub fn touch(&mut self) {
        self.mtime = SystemTime::now();
        self.ctime = self.mtime;
        self.mtime_set = false;
    }

    /// The user metadata and Content-Type to upload for `key`; `extra` holds other user metadata
    /// of the object, kept as it is.
    pub fn to_put(&self, key: &str, extra: &HashMap<String, String>) -> PutMeta {
        let mut metadata = extra.clone();
        metadata.insert("mode".into(), self.st_mode().to_string());
        metadata.insert("uid".into(), self.uid.to_string());
        metadata.insert("gid".into(), self.gid.to_string());
        metadata.insert("mtime".into(), format_mtime(self.mtime));
        metadata.insert("ctime".into(), format_mtime(self.ctime));
        match self.atime {
            Some(t) => metadata.insert("atime".into(), format_mtime(t)),
            None => metadata.remove("atime"),
        };
        match self.kind {
            Kind::CharDev(d) | Kind::BlockDev(d) => metadata.insert("rdev".into(), d.to_string()),
            _ => metadata.remove("rdev"),
        };
        let content_type = if self.kind != Kind::File {
            "application/octet-stream".to_string()
        } else {
            mime_guess::from_path(key).first_or_octet_stream().essence_str().to_string()
        };
        PutMeta { metadata, content_type: Some(content_type), storage_class: None }
    }

    /// The metadata for a multipart upload, which starts while the file is still being
    /// written: without an mtime that later writes would change (S3's LastModified, the
    /// upload's completion, stands for it then).
    pub fn to_put_streaming(&self, key: &str, extra: &HashMap<String, String>) -> PutMeta {
        let mut put = self.to_put(key, extra);
        if !self.mtime_set {
            // Writes after the start move both: S3's LastModified stands for them.
            put.metadata.remove("mtime");
            put.metadata.remove("ctime");
        }
        put
    }

    /// Whether a multipart upload started with metadata `self` still carries `now`'s.
    pub fn streams_as(&self, now: &FileMeta) -> bool {
        let key = |m: &FileMeta| (m.perm, m.uid, m.gid, m.kind, m.atime, m.mtime_set.then_some(m.mtime));
        key(self) == key(now)
    }
}

/// Whether `mode` metadata (an `st_mode`) is that of a symbolic link.
pub fn mode_is_symlink(mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFLNK
}

/// Integer seconds when whole (what s3fs writes), else fractional seconds (what rclone writes).
pub fn format_mtime(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    if d.subsec_nanos() == 0 { d.as_secs().to_string() } else { format!("{}.{:09}", d.as_secs(), d.subsec_nanos()) }
}
