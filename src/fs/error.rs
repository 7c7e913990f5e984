//! The filesystem core's error type, and the one place errnos are chosen.

use tracing::Level;

use crate::store::StoreError;

/// Everything a filesystem operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("read-only file system")]
    ReadOnly,
    #[error("operation not supported")]
    NotSupported,
    #[error("unknown inode or handle")]
    BadHandle,
    #[error("invalid argument")]
    Invalid,
    #[error("directory not empty")]
    NotEmpty,
    #[error("file exists")]
    Exists,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("file name too long")]
    NameTooLong,
    /// A file the kernel holds as a regular file is a symlink, or the other way round.
    #[error("the file's type changed: look it up again")]
    TypeChanged,
    #[error("cross-device link")]
    CrossDevice,
    #[error("no such attribute")]
    NoData,
    #[error("busy: the file is being written")]
    Busy,
    #[error("value too large for S3's 2 KiB of user metadata")]
    TooBig,
    #[error("no room left in S3's 2 KiB of user metadata")]
    NoSpace,
    /// A file would grow past S3's largest object (5 TiB).
    #[error("file too large for S3 (5 TiB at most)")]
    FileTooLarge,
    /// Local I/O (the staging cache), with the errno it failed with (ENOSPC on a full disk).
    #[error("{msg}")]
    Io { errno: i32, msg: String },
}

impl Error {
    /// The errno a caller sees. No `_` arm: a new error kind forces a decision here.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Store(e) => match e {
                StoreError::NotFound | StoreError::NoSuchBucket => libc::ENOENT,
                StoreError::AccessDenied | StoreError::BadCredentials(_) | StoreError::NoCredentials(_) => libc::EACCES,
                // The object changed since open; the data read so far belongs to an older version.
                StoreError::PreconditionFailed => libc::ESTALE,
                StoreError::InvalidRange => libc::EINVAL,
                StoreError::BucketNotEmpty => libc::ENOTEMPTY,
                StoreError::BucketExists => libc::EEXIST,
                StoreError::MetadataTooLarge => libc::E2BIG,
                // As mountpoint-s3: the bytes may not be read until restored.
                StoreError::Archived => libc::EACCES,
                StoreError::Network(_) | StoreError::Tls(_) | StoreError::Server { .. } => libc::EIO,
            },
            Error::NotFound => libc::ENOENT,
            Error::NotDir => libc::ENOTDIR,
            Error::IsDir => libc::EISDIR,
            Error::ReadOnly => libc::EROFS,
            Error::NotSupported => libc::ENOTSUP,
            Error::BadHandle => libc::EBADF,
            Error::Invalid => libc::EINVAL,
            Error::NotEmpty => libc::ENOTEMPTY,
            Error::Exists => libc::EEXIST,
            Error::NotPermitted => libc::EPERM,
            Error::TypeChanged => libc::ESTALE,
            Error::NameTooLong => libc::ENAMETOOLONG,
            Error::CrossDevice => libc::EXDEV,
            Error::NoData => libc::ENODATA,
            Error::Busy => libc::EBUSY,
            Error::TooBig => libc::E2BIG,
            Error::NoSpace => libc::ENOSPC,
            Error::FileTooLarge => libc::EFBIG,
            Error::Io { errno, .. } => *errno,
        }
    }

    /// How loudly to log a failure: expected answers (a missing name) are debug, real trouble
    /// (the network, the server) is a warning.
    pub fn level(&self) -> Level {
        if self.errno() == libc::EIO {
            // An I/O error always says in the log what failed.
            return Level::WARN;
        }
        match self {
            Error::Store(
                StoreError::Network(_)
                | StoreError::Tls(_)
                | StoreError::Server { .. }
                | StoreError::BadCredentials(_)
                | StoreError::NoCredentials(_),
            ) => Level::WARN,
            Error::Store(StoreError::PreconditionFailed | StoreError::AccessDenied) => Level::INFO,
            Error::Io { .. } => Level::WARN,
            _ => Level::DEBUG,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos() {
        assert_eq!(Error::from(StoreError::NotFound).errno(), libc::ENOENT);
        assert_eq!(Error::from(StoreError::AccessDenied).errno(), libc::EACCES);
        assert_eq!(Error::from(StoreError::Network("refused".into())).errno(), libc::EIO);
        let e = StoreError::Server { status: Some(500), code: "InternalError".into(), message: String::new() };
        assert_eq!(Error::from(e).errno(), libc::EIO, "a 500 is a server error, never 'not found'");
    }
}
