//! What the subcommands print: all of it at once, and a reader that stopped early (`| head`)
//! is no failure (no BrokenPipe panic, exit status 0).

use std::io::Write;
use std::process::ExitCode;

/// Writes `out` to stdout.
pub fn print_all(out: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3drive: {e}");
            ExitCode::FAILURE
        }
    }
}
