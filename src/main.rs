//! The `s3drive` binary: expand `-o` options, parse the command line, then mount (in the
//! background unless `--foreground`), or run a subcommand (status, recover, completions, man).

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use s3drive::cli::{Args, Cli, Command};
use s3drive::config::Config;
use s3drive::daemon::{self, Notifier};
use s3drive::logging::{self, Target};

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
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.len() == 3 && args[1] == s3drive::mount::GUARD_ARG {
        return s3drive::mount::run_guard(std::path::Path::new(&args[2]));
    }
    let notifier = Notifier::from_env();
    let argv = match s3drive::options::expand(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("s3drive: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(argv.clone());
    match cli.command {
        Some(Command::Status { mountpoint }) => s3drive::status::print(&mountpoint),
        Some(Command::Recover { cache_dir, action }) => s3drive::recover::run(cache_dir, action),
        Some(Command::Completions { shell }) => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "s3drive", &mut out);
            s3drive::output::print_all(&out)
        }
        Some(Command::Man) => {
            let mut out = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut out) {
                Ok(()) => s3drive::output::print_all(&out),
                Err(e) => {
                    eprintln!("s3drive: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => mount(cli.mount, &argv, notifier),
    }
}

fn mount(args: Args, argv: &[OsString], mut notifier: Notifier) -> ExitCode {
    let config = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("s3drive: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = args
        .log
        .clone()
        .or_else(|| std::env::var("S3DRIVE_LOG").ok())
        .unwrap_or_else(|| logging::DEFAULT_FILTER.into());
    let background = !args.foreground && !notifier.is_daemon();
    if background {
        // Check the filter here, where the user can see the complaint.
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&filter) {
            eprintln!("s3drive: bad log filter {filter:?}: {e}");
            return ExitCode::from(2);
        }
        return daemon::start(&argv[1..], args.log_file.as_deref());
    }
    let target = match (&args.log_file, notifier.is_daemon()) {
        (Some(f), _) => Target::File(f.clone()),
        (None, false) => Target::Stderr,
        (None, true) if std::path::Path::new("/dev/log").exists() => Target::Syslog,
        (None, true) => Target::File(config.write.cache_dir.join("s3drive.log")),
    };
    if let Err(e) = logging::init(&filter, &target) {
        notifier.failed(&e);
        eprintln!("s3drive: {e}");
        return ExitCode::from(2);
    }
    match s3drive::mount::run(config, || notifier.ready()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let why = format!("{e:#}");
            tracing::error!("{why}");
            notifier.failed(&why);
            eprintln!("s3drive: {why}");
            ExitCode::FAILURE
        }
    }
}
