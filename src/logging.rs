//! Logging: tracing to stderr (foreground), a file, or syslog (background; journald reads it
//! too). Every line passes through [`redact`], so secrets and presigned-URL signatures never reach
//! a log, whatever the filter lets through (the SDK logs requests at debug and trace).

use std::borrow::Cow;
use std::ffi::CString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The default filter.
pub const DEFAULT_FILTER: &str = "warn,fuser=error,s3drive=info";

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stderr,
    File(PathBuf),
    Syslog,
}

/// Names whose values are secret, as they appear in URLs, headers and debug output.
const SECRETS: &[&str] = &[
    "x-amz-signature=",
    "x-amz-security-token=",
    "x-amz-security-token: ",
    "signature=",
    "secret_access_key: \"",
    "secret_access_key=",
    "session_token: \"",
    "session_token=",
    "authorization: ",
];

/// Replaces secret values in a log line with `[redacted]`.
pub fn redact(line: &str) -> Cow<'_, str> {
    let lower = line.to_ascii_lowercase(); // same byte offsets as `line`
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for marker in SECRETS {
        let mut from = 0;
        while let Some(i) = lower[from..].find(marker) {
            let start = from + i + marker.len();
            let end =
                line[start..].find(['&', ' ', '"', '\'', ',', ')', '}', '\n', '\r']).map_or(line.len(), |e| start + e);
            let end = if *marker == "authorization: " {
                line[start..].find('\n').map_or(line.len(), |e| start + e)
            } else {
                end
            };
            if end > start
                && !line[start..end].starts_with("[redacted]")
                && !line[start..end].starts_with("** redacted")
            {
                cuts.push((start, end));
            }
            from = end.max(start);
        }
    }
    if cuts.is_empty() {
        return Cow::Borrowed(line);
    }
    cuts.sort();
    let mut out = String::with_capacity(line.len());
    let mut pos = 0;
    for (s, e) in cuts {
        if s < pos {
            continue;
        }
        out.push_str(&line[pos..s]);
        out.push_str("[redacted]");
        pos = e;
    }
    out.push_str(&line[pos..]);
    Cow::Owned(out)
}

/// Starts logging with `filter` (a tracing filter string) to `target`.
pub fn init(filter: &str, target: &Target) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter).map_err(|e| format!("bad log filter {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match target {
        Target::Stderr => builder.with_ansi(stderr_wants_colour()).with_writer(Redacting(Sink::Stderr)).init(),
        Target::File(path) => {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            // 0600: a log names the files being written.
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("log file {}: {e}", path.display()))?;
            builder.with_ansi(false).with_writer(Redacting(Sink::File(Arc::new(Mutex::new(file))))).init()
        }
        Target::Syslog => {
            // SAFETY: the identifier is a static C string that outlives every syslog call.
            unsafe { libc::openlog(c"s3drive".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
            builder.with_ansi(false).without_time().with_writer(Redacting(Sink::Syslog)).init()
        }
    }
    // A panic fails the operation it served with EIO (its reply is dropped): say so in the log,
    // wherever the log goes (stderr is /dev/null in the background with syslog).
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let backtrace = std::backtrace::Backtrace::capture();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            "internal error (a bug), the operation fails with EIO: {info}\n{backtrace}"
        );
    }));
    Ok(())
}

/// Colour codes only when stderr is a terminal and `NO_COLOR` (https://no-color.org) is unset or
/// empty: a pipe (`s3drive ... | tee log`) or a file gets plain text.
fn stderr_wants_colour() -> bool {
    use std::io::IsTerminal;
    colour_allowed(std::env::var_os("NO_COLOR").as_deref(), io::stderr().is_terminal())
}

fn colour_allowed(no_color: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[derive(Clone)]
enum Sink {
    Stderr,
    File(Arc<Mutex<std::fs::File>>),
    Syslog,
}

/// A `MakeWriter` that redacts each formatted event before it leaves the process.
#[derive(Clone)]
struct Redacting(Sink);

struct LineWriter {
    sink: Sink,
    priority: libc::c_int,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = redact(&text);
        match &self.sink {
            Sink::Stderr => io::stderr().write_all(clean.as_bytes())?,
            Sink::File(f) => f.lock().unwrap().write_all(clean.as_bytes())?,
            Sink::Syslog => {
                for line in clean.lines().filter(|l| !l.trim().is_empty()) {
                    if let Ok(c) = CString::new(line.replace('\0', " ")) {
                        // SAFETY: "%s" with one valid C string.
                        unsafe { libc::syslog(self.priority, c"%s".as_ptr(), c.as_ptr()) };
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Redacting {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { sink: self.0.clone(), priority: libc::LOG_INFO }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter {
        let priority = match *meta.level() {
            Level::ERROR => libc::LOG_ERR,
            Level::WARN => libc::LOG_WARNING,
            Level::INFO => libc::LOG_INFO,
            _ => libc::LOG_DEBUG,
        };
        LineWriter { sink: self.0.clone(), priority }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let url =
            "GET http://h/b/k?X-Amz-Credential=AK%2F2026&X-Amz-Signature=abc123def&X-Amz-Security-Token=tok%2Fen x";
        let r = redact(url);
        assert!(!r.contains("abc123def") && !r.contains("tok%2Fen"), "{r}");
        assert!(r.contains("X-Amz-Signature=[redacted]&X-Amz-Security-Token=[redacted] x"), "{r}");
        let h = "headers: authorization: AWS4-HMAC-SHA256 Credential=AK/..., Signature=ffff\nnext";
        let r = redact(h);
        assert!(!r.contains("ffff") && r.ends_with("\nnext"), "{r}");
        let d = r#"Credentials { access_key_id: "AK", secret_access_key: "s3cr3t", session_token: "zzz" }"#;
        let r = redact(d);
        assert!(!r.contains("s3cr3t") && !r.contains("zzz"), "{r}");
        assert_eq!(redact("nothing to see"), "nothing to see");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour_allowed(None, true));
        assert!(!colour_allowed(None, false), "a pipe or a file gets no escape codes");
        assert!(!colour_allowed(Some(OsStr::new("1")), true), "NO_COLOR set");
        assert!(colour_allowed(Some(OsStr::new("")), true), "an empty NO_COLOR is unset");
    }
}
