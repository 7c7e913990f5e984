//! `s3drive status MOUNTPOINT`: reads the `user.s3drive.status` attribute of a mount's root,
//! which the running daemon renders (see `fs::xattr`), and prints it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

/// The attribute on a mount's root that holds its status report.
pub const STATUS_XATTR: &str = "user.s3drive.status";

pub fn print(mountpoint: &Path) -> ExitCode {
    match read(mountpoint) {
        Ok(text) => crate::output::print_all(text.as_bytes()),
        Err(e) => {
            eprintln!("s3drive: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(mountpoint: &Path) -> Result<String, String> {
    let path = CString::new(mountpoint.as_os_str().as_bytes()).map_err(|_| "bad path".to_string())?;
    let name = CString::new(STATUS_XATTR).expect("no NUL");
    let mut buf = vec![0u8; 256 * 1024];
    // SAFETY: valid C strings and a buffer of the given length.
    let n = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => format!("{} is not an s3drive mount", mountpoint.display()),
            _ => format!("{}: {e}", mountpoint.display()),
        });
    }
    buf.truncate(n as usize);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}
