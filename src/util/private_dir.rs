//! Directories private to the user running s3drive (cache, staging, data cache, index).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use tracing::warn;

/// Creates `dir` (and its parents) private to its owner, or makes it so: a cache directory
/// other local users can read would show them every file being written.
pub fn secure_dir(dir: &Path) -> std::io::Result<()> {
    create_private(dir)?;
    let meta = std::fs::metadata(dir)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(std::io::Error::other(format!(
            "{} belongs to uid {}, not to the user running s3drive (uid {me})",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        warn!(dir = %dir.display(), mode = format!("{:o}", meta.mode() & 0o777), "cache directory was open to other users; made it 0700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates `dir` and its parents, 0700.
pub fn create_private(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
