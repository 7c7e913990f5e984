//! Running in the background: the command the user typed starts a copy of itself in a new
//! session with a pipe, and exits only when that copy says the mount is ready (status 0) or
//! why it failed (status 1, the cause on stderr), like mount(8) and sshfs.
//!
//! A re-executed copy rather than fork(): the daemon starts with no threads behind it, and tokio
//! and the SDK are only ever started in the process that uses them.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

/// The environment variable that tells the background copy where to report.
const NOTIFY_ENV: &str = "S3DRIVE_NOTIFY_FD";
const READY: &str = "ready";

/// Starts the background copy with `args` (without the program name) and waits for its word.
/// `log_file` gets the copy's stderr (panics) when given.
pub fn start(args: &[OsString], log_file: Option<&Path>) -> ExitCode {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        eprintln!("s3drive: cannot create a pipe: {}", std::io::Error::last_os_error());
        return ExitCode::FAILURE;
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("s3drive: cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let open_log = |p: &std::path::Path| {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(p)
    };
    let stderr = match log_file.map(open_log) {
        Some(Ok(f)) => Stdio::from(f),
        Some(Err(e)) => {
            eprintln!("s3drive: log file {}: {e}", log_file.unwrap().display());
            return ExitCode::from(2);
        }
        None => Stdio::null(),
    };
    let wfd = fds[1];
    let mut cmd = Command::new(exe);
    cmd.args(args).env(NOTIFY_ENV, wfd.to_string()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
    // SAFETY: setsid and fcntl are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            // Keep the report pipe open across exec.
            libc::fcntl(wfd, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let child = cmd.spawn();
    drop(write_end); // only the child holds it now: EOF when it exits
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("s3drive: cannot start the background process: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut word = String::new();
    let _ = File::from(read_end).read_to_string(&mut word);
    match word.trim() {
        READY => ExitCode::SUCCESS,
        "" => {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            eprintln!("s3drive: the background process ended before mounting ({status}); see its log");
            ExitCode::FAILURE
        }
        why => {
            let _ = child.wait();
            eprintln!("s3drive: {why}");
            ExitCode::FAILURE
        }
    }
}

/// In the background copy: the pipe to report on, taken from the environment.
pub struct Notifier(Option<File>);

impl Notifier {
    pub fn from_env() -> Notifier {
        let fd = std::env::var(NOTIFY_ENV).ok().and_then(|v| v.parse::<RawFd>().ok());
        // SAFETY: the parent put this descriptor there for us alone.
        let file = fd.filter(|fd| *fd > 2).map(|fd| unsafe { File::from_raw_fd(fd) });
        // SAFETY: removing a variable before any other thread exists.
        unsafe { std::env::remove_var(NOTIFY_ENV) };
        Notifier(file)
    }

    /// This process is the background copy.
    pub fn is_daemon(&self) -> bool {
        self.0.is_some()
    }

    pub fn ready(&mut self) {
        if let Some(mut f) = self.0.take() {
            let _ = f.write_all(READY.as_bytes());
        }
    }

    pub fn failed(&mut self, why: &str) {
        if let Some(mut f) = self.0.take() {
            let _ = f.write_all(why.as_bytes());
        }
    }
}
