//! The `s3drive` binary: parse the command line, start logging, mount. Nothing else.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use s3drive::cli::Args;
use s3drive::config::Config;

fn main() -> ExitCode {
    // Read-ahead parts and upload parts (MiBs, short-lived) get their own mappings, so freed
    // memory goes back to the system instead of staying in malloc's per-thread arenas; the 1 MiB
    // buffers of each FUSE write stay below the threshold and are reused from the heap (a fresh
    // mapping per write costs a page fault per 4 KiB).
    // SAFETY: called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
    let args = Args::parse();
    let filter = args
        .log
        .clone()
        .or_else(|| std::env::var("S3DRIVE_LOG").ok())
        .unwrap_or_else(|| "warn,fuser=error,s3drive=info".into());
    let filter = match EnvFilter::try_new(&filter) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("s3drive: bad log filter {filter:?}: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let config = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("s3drive: {e}");
            return ExitCode::from(2);
        }
    };
    match s3drive::mount::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3drive: {e:#}");
            ExitCode::FAILURE
        }
    }
}
