//! Start-up and shutdown: checks that fail fast with one clear line (missing mount point,
//! unreachable endpoint, rejected credentials, missing bucket), the FUSE session, a clean
//! unmount on SIGINT/SIGTERM, and the auto_unmount guard (see [`run_guard`]).

use std::sync::Arc;

use anyhow::{Context, bail};
use fuser::{MountOption, SessionACL};
use tracing::{info, warn};

use crate::config::{Config, Source};
use crate::fs::Fs;
use crate::fuse::FuseFs;
use crate::store::s3::S3Store;
use crate::store::{ListRequest, ObjectStore, StoreError};

/// How long the start-up checks retry a failing request.
const STARTUP_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// What the user is told when the service cannot be used, in one line.
fn explain(err: &StoreError, endpoint: &str, what: &str) -> String {
    match err {
        StoreError::Network(m) => format!("cannot reach the S3 endpoint {endpoint}: {m}"),
        StoreError::Tls(m) => format!(
            "no TLS connection to {endpoint}: {m} (an endpoint that speaks plain HTTP needs an http:// URL; \
             a certificate from a private CA needs --ca-bundle FILE or AWS_CA_BUNDLE)"
        ),
        StoreError::BadCredentials(m) => {
            format!("the credentials were rejected by {endpoint}: {m}")
        }
        StoreError::NoCredentials(_) => "no AWS credentials were found (environment, ~/.aws profiles, SSO, \
            web identity, container or instance role): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
            choose a profile with --profile, or mount a public bucket with --no-sign-request"
            .to_string(),
        StoreError::NoSuchBucket | StoreError::NotFound => format!("{what} does not exist"),
        StoreError::AccessDenied => format!("access denied to {what}"),
        other => format!("{what}: {other}"),
    }
}

/// Checks that the configured buckets can be reached before anything is mounted.
/// A bucket that exists but may not be read is only a warning: it is shown and gives EACCES.
pub async fn check_source<S: ObjectStore>(store: &S, source: &Source, endpoint: &str) -> Result<(), String> {
    match source {
        Source::AllBuckets => match store.list_buckets().await {
            Ok(b) => {
                info!(buckets = b.len(), "listed buckets");
                Ok(())
            }
            Err(StoreError::AccessDenied) => Err(format!(
                "not allowed to list buckets at {endpoint}; name them with --bucket NAME or mount one as BUCKET[/PREFIX]"
            )),
            Err(e) => Err(explain(&e, endpoint, "the bucket list")),
        },
        Source::Buckets(names) => {
            for b in names {
                check_bucket(store, b, endpoint).await?;
            }
            Ok(())
        }
        Source::Prefix { bucket, .. } => check_bucket(store, bucket, endpoint).await,
    }
}

async fn check_bucket<S: ObjectStore>(store: &S, bucket: &str, endpoint: &str) -> Result<(), String> {
    match store.head_bucket(bucket).await {
        Ok(region) => {
            info!(bucket, region, "bucket found");
            Ok(())
        }
        Err(StoreError::AccessDenied) => {
            // A HEAD's 403 has no body: a wrong secret key looks like a denied bucket. A
            // listing's answer says which it is.
            let probe = ListRequest { bucket, prefix: "", delimiter: Some("/"), continuation: None, max_keys: Some(1) };
            match store.list_objects(probe).await {
                Err(e @ (StoreError::BadCredentials(_) | StoreError::NoCredentials(_))) => {
                    Err(explain(&e, endpoint, &format!("bucket {bucket:?}")))
                }
                _ => {
                    warn!(
                        bucket,
                        "HeadBucket was denied; the bucket is mounted and gives EACCES where it may not be read"
                    );
                    Ok(())
                }
            }
        }
        Err(e) => Err(explain(&e, endpoint, &format!("bucket {bucket:?}"))),
    }
}

/// The file system type mounted exactly at `dir`, if anything is (from /proc/self/mountinfo).
fn mounted_at(dir: &std::path::Path) -> Option<String> {
    mount_type(&std::fs::canonicalize(dir).ok()?)
}

/// The type of what is mounted at the canonical path `dir` (a dead FUSE mount cannot be
/// canonicalized: its root answers ENOTCONN).
fn mount_type(dir: &std::path::Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let fields: Vec<&str> = line.split(' ').collect();
        let point = unescape_mountinfo(fields.get(4)?);
        let dash = fields.iter().position(|f| *f == "-")?;
        (std::path::Path::new(&point) == dir).then(|| fields.get(dash + 1).map_or("?", |v| v).to_string())
    })
}

/// mountinfo writes space, tab, newline and backslash in paths as octal escapes (`\040`).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push(u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn source_name(config: &Config) -> String {
    match &config.source {
        Source::AllBuckets => "s3drive".into(),
        Source::Buckets(b) => format!("s3://{}", b.join(",")),
        Source::Prefix { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
    }
}

/// Mounts and serves until unmounted (by `umount`, `fusermount3 -u`, SIGINT or SIGTERM).
/// `on_ready` runs once the mount is in place.
pub fn run(mut config: Config, on_ready: impl FnOnce()) -> anyhow::Result<()> {
    let mp = &config.mountpoint;
    match std::fs::metadata(mp) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("mount point {} is not a directory", mp.display()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!(
            "mount point {0}: {e} (a FUSE daemon that mounted it has died; unmount it with `fusermount3 -u {0}`)",
            mp.display()
        ),
        Err(e) => bail!("mount point {}: {e}", mp.display()),
    }
    if let Some(fstype) = mounted_at(mp) {
        bail!(
            "{0} is already a mount point ({fstype}); unmount it first (`fusermount3 -u {0}` or `umount {0}`)",
            mp.display()
        );
    }
    if std::fs::read_dir(mp).is_ok_and(|mut d| d.next().is_some()) {
        if !config.nonempty {
            bail!(
                "mount point {} is not empty: its files would be hidden while mounted (add --nonempty, or -o nonempty, to mount over them)",
                mp.display()
            );
        }
        warn!(mount_point = %mp.display(), "the mount point is not empty: its files are hidden while s3drive is mounted");
    }
    // Absolute, and found before the mount (a path through a FUSE mount not yet served would
    // wait for it): the auto_unmount guard runs from another directory, and the inode budget
    // matches processes' working directories (/proc) against it.
    config.mountpoint = std::fs::canonicalize(&config.mountpoint)
        .with_context(|| format!("mount point {}", config.mountpoint.display()))?;
    crate::util::private_dir::secure_dir(&config.write.cache_dir)
        .with_context(|| format!("cache directory {}", config.write.cache_dir.display()))?;
    if let Some(c) = &config.data_cache {
        crate::util::private_dir::secure_dir(&c.dir).with_context(|| format!("data cache {}", c.dir.display()))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("s3drive").build()?;
    let endpoint = config.s3.endpoint_url.clone().unwrap_or_else(|| "AWS S3".into());
    let store = Arc::new(rt.block_on(S3Store::new(&config.s3)));
    // A wrong endpoint or a dead server is reported in seconds, not after the whole budget.
    store.cap_retry_budget(Some(STARTUP_RETRY_BUDGET));
    rt.block_on(check_source(&*store, &config.source, &endpoint)).map_err(anyhow::Error::msg)?;
    store.cap_retry_budget(None);
    let metrics = config.metrics_addr.map(crate::metrics::bind).transpose()?;

    let mut options = vec![
        MountOption::FSName(source_name(&config)),
        MountOption::Subtype("s3drive".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
    ];
    if config.read_only {
        options.push(MountOption::RO);
    }
    if config.auto_unmount {
        options.push(MountOption::AutoUnmount);
    }
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = options;
    // fusermount3's auto_unmount needs the kernel's allow_other; fuser then lets only the owner
    // and root in.
    fuse_config.acl = if config.allow_other {
        SessionACL::All
    } else if config.allow_root || config.auto_unmount {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };

    let mountpoint = config.mountpoint.clone();
    let guard_at = config.auto_unmount.then(|| mountpoint.clone());
    let fs = {
        let _rt = rt.enter();
        Fs::new(store, config)
    };
    // Buffers idle in the pool are freed, so an idle mount does not keep its peak memory.
    rt.spawn(async {
        let mut tick = tokio::time::interval(crate::buf::IDLE);
        loop {
            tick.tick().await;
            crate::buf::POOL.trim(crate::buf::IDLE);
        }
    });
    if let Some(listener) = metrics {
        let (_rt, fs) = (rt.enter(), fs.clone());
        crate::metrics::spawn(listener, move || fs.activity());
    }
    rt.block_on(fs.adopt_orphans());
    let adapter = FuseFs::new(fs.clone(), rt.handle().clone());
    let mut session = fuser::Session::new(adapter, &mountpoint, &fuse_config)
        .with_context(|| format!("cannot mount on {}", mountpoint.display()))?;
    match crate::fuse::KernelNotifier::start(session.notifier()) {
        Ok(k) => fs.set_kernel_cache(Box::new(k)),
        Err(e) => warn!(error = %e, "cannot start the kernel notifier thread; the kernel's caches expire by TTL only"),
    }
    let mut unmounter = session.unmount_callable();
    let (fs_for_signal, mp_for_signal) = (fs.clone(), mountpoint.clone());
    rt.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            warn!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = int.recv() => info!("SIGINT: unmounting"),
            _ = term.recv() => info!("SIGTERM: unmounting"),
        }
        match unmounter.unmount() {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                // Files are open: a plain unmount would wait for them forever. Save everything
                // now, detach the mount, and exit; the open descriptors get ENOTCONN.
                warn!("files are still open: saving them to S3, then detaching the mount");
                fs_for_signal.shutdown().await;
                detach(&mp_for_signal);
                info!("detached; exiting");
                std::process::exit(0);
            }
            Err(e) => warn!(error = %e, "unmount failed"),
        }
    });
    if let Some(path) = guard_at
        && let Err(e) = start_guard(&path)
    {
        warn!(error = %e, "cannot start the auto_unmount guard; fusermount3's own check remains");
    }
    info!(mountpoint = %mountpoint.display(), "mounted");
    on_ready();
    let served = session.run().context("FUSE session failed");
    info!("unmounted; sending what is still queued");
    rt.block_on(fs.shutdown());
    served?;
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(())
}

/// Detaches the mount at `mountpoint` (lazily: open files get ENOTCONN): with fusermount3, or
/// as root with umount2.
fn detach(mountpoint: &std::path::Path) {
    let detached = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(mountpoint)
        .stderr(std::process::Stdio::null())
        .status();
    if !detached.is_ok_and(|s| s.success()) {
        // SAFETY: a plain C call with a valid path.
        let path = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes()).unwrap_or_default();
        unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
    }
}

/// The first argument that makes the binary run as the guard of the mount point that follows.
pub const GUARD_ARG: &str = "__auto-unmount-guard";

/// How long the guard looks for the dead connection after the daemon is gone.
const GUARD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts the auto_unmount guard of `mountpoint`: this binary again, in a session of its own,
/// reading a pipe whose other end only this process holds, so the pipe closes when this process
/// ends, however it ends.
fn start_guard(mountpoint: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let (reader, writer) = std::io::pipe()?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg(GUARD_ARG)
        .arg(mountpoint)
        .stdin(reader)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec. Closing every other
    // descriptor matters: a guard holding /dev/fuse would keep a dead mount's connection alive.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    cmd.spawn()?;
    std::mem::forget(writer); // open until this process ends
    Ok(())
}

/// The auto_unmount guard. fusermount3's auto_unmount helper checks once, the moment the
/// daemon's socket to it closes, whether the mount is dead; the kernel may not have aborted the
/// FUSE connection yet (libfuse calls auto_unmount racy), and then the mount stays behind,
/// "Transport endpoint is not connected" (3 kills in 20 on a busy 2-core machine). The guard
/// waits for the daemon to end (its stdin closes), then looks for up to 10 s: a dead connection
/// (ENOTCONN, or ECONNABORTED for a request caught by the abort) is detached; a mount point that
/// is no FUSE mount any more, or answers (mounted again), is left alone.
pub fn run_guard(mountpoint: &std::path::Path) -> std::process::ExitCode {
    use std::io::Read;
    let mut buf = [0u8; 16];
    loop {
        match std::io::stdin().read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let until = std::time::Instant::now() + GUARD_PATIENCE;
    while std::time::Instant::now() < until {
        if !mount_type(mountpoint).is_some_and(|t| t.starts_with("fuse")) {
            break; // unmounted already (by fusermount3's helper, or a clean unmount)
        }
        match std::fs::read_dir(mountpoint) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTCONN | libc::ECONNABORTED)) => {
                detach(mountpoint);
                break;
            }
            Ok(_) => break, // a live mount: not the one that died
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[test]
    fn mount_points_are_found_with_odd_names() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b\134c"), "/tmp/a b\\c");
        assert!(mounted_at(std::path::Path::new("/")).is_some(), "/ is a mount point");
        let d = tempfile::tempdir().unwrap();
        assert_eq!(mounted_at(d.path()), None);
    }

    #[tokio::test]
    async fn startup_checks_name_the_cause() {
        let store = MemoryStore::new();
        store.create_bucket("here");
        let missing = Source::Prefix { bucket: "gone".into(), prefix: String::new() };
        assert_eq!(check_source(&store, &missing, "E").await.unwrap_err(), "bucket \"gone\" does not exist");
        store.inject_fault("ListBuckets", StoreError::Network("connection refused".into()));
        let err = check_source(&store, &Source::AllBuckets, "http://127.0.0.1:1").await.unwrap_err();
        assert!(err.starts_with("cannot reach the S3 endpoint http://127.0.0.1:1"), "{err}");
        store.inject_fault("ListBuckets", StoreError::BadCredentials("InvalidAccessKeyId".into()));
        let err = check_source(&store, &Source::AllBuckets, "E").await.unwrap_err();
        assert!(err.contains("credentials were rejected"), "{err}");
        store.inject_fault("ListBuckets", StoreError::AccessDenied);
        assert!(check_source(&store, &Source::AllBuckets, "E").await.unwrap_err().contains("--bucket"));
        store.deny_bucket("locked");
        assert!(check_source(&store, &Source::Buckets(vec!["here".into(), "locked".into()]), "E").await.is_ok());
    }
}
