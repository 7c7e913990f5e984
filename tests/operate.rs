//! Everyday operation: mounting in the background, fstab-style `mount -t fuse.s3drive`, SIGTERM
//! with work pending, `s3drive status`, logs without secrets, completions and the man page.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Waits until `p` is no longer a mount point.
fn wait_unmounted(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while is_mounted(p) {
        assert!(Instant::now() < deadline, "{} still mounted", p.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Unmounts `p` if mounted, also when a test fails.
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        if is_mounted(self.0) {
            let _ = Command::new("fusermount3").arg("-u").arg(self.0).status();
        }
    }
}

#[test]
fn background_mount_returns_once_ready_and_errors_say_why() {
    let c = client();
    let b = bucket("bg");
    create_bucket(&c, &b);
    put(&c, &b, "hello.txt", "hi\n");
    let proxy = Proxy::start();
    let dir = tempfile::tempdir().unwrap();
    let _guard = Unmount(dir.path());
    let logs = scratch_dir("bg-log");
    let log = logs.path().join("s3drive.log");
    let out = s3drive()
        .args(["--endpoint-url", &proxy.endpoint(), "--force-path-style", &b])
        .arg(dir.path())
        .arg("--log-file")
        .arg(&log)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(is_mounted(dir.path()), "mounted when the command returns");
    assert_eq!(fs::read_to_string(dir.path().join("hello.txt")).unwrap(), "hi\n");
    let status = status_of(dir.path());
    assert!(status.contains("GetObject") && status.contains("pending deletes: 0"), "{status}");
    // A second s3drive on the same mount point is refused, not stacked on the first.
    let again = s3drive()
        .args(["--endpoint-url", &proxy.endpoint(), "--force-path-style", &b])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.code() == Some(1) && err.contains("already a mount point"), "{again:?}");
    assert_eq!(fs::read_to_string(dir.path().join("hello.txt")).unwrap(), "hi\n", "the first mount serves on");
    sh(&format!("fusermount3 -u '{}'", dir.path().display()));
    wait_unmounted(dir.path());
    // The daemon logs its shutdown just after the kernel lets go of the mount.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = fs::read_to_string(&log).unwrap();
    while !text.contains("unmounted") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        text = fs::read_to_string(&log).unwrap();
    }
    assert!(text.contains("mounted") && text.contains("unmounted"), "{text}");

    // Failures: the cause on stderr, non-zero, nothing mounted.
    let fail = |args: &[&str]| {
        let out = s3drive().args(args).arg(dir.path()).stdin(Stdio::null()).output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = fail(&["--endpoint-url", "http://127.0.0.1:1", "--force-path-style", &b]);
    assert!(code == 1 && err.contains("cannot reach the S3 endpoint http://127.0.0.1:1"), "{code} {err}");
    let (code, err) = fail(&["--endpoint-url", &proxy.endpoint(), "--force-path-style", "no-such-bucket"]);
    assert!(code == 1 && err.contains("does not exist"), "{code} {err}");
    let (code, err) = fail(&["--bogus", &b]);
    assert!(code == 2 && err.contains("--bogus"), "{code} {err}");
    let (code, err) = fail(&[&b, "-o", "allow_other,bogus_option"]);
    assert!(code == 2 && err.contains("unknown mount option \"bogus_option\""), "{code} {err}");
    // No credentials anywhere: said so, not "cannot reach".
    let home = tempfile::tempdir().unwrap();
    let out = s3drive()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("HOME", home.path())
        .args(["--endpoint-url", &proxy.endpoint(), "--force-path-style", &b])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && err.contains("no AWS credentials were found"), "{out:?}");
    assert!(!err.contains("DispatchFailure") && !err.contains("cannot reach"), "{err}");
    // A wrong secret key with a named bucket (s3s-fs checks signatures; HeadBucket's 403 has no
    // body to tell it from a denied bucket): rejected, not mounted.
    let (port, root) = s3s_fs();
    fs::create_dir_all(root.join("signed")).unwrap();
    let out = s3drive()
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .args(["--endpoint-url", &format!("http://127.0.0.1:{port}"), "--force-path-style", "signed"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && err.contains("credentials were rejected"), "{out:?}");
    // A mount point with files in it is refused unless asked for (-o nonempty).
    let full = tempfile::tempdir().unwrap();
    fs::write(full.path().join("local.txt"), "mine\n").unwrap();
    let base = ["--endpoint-url", &proxy.endpoint(), "--force-path-style", &b];
    let out = s3drive().args(base).arg(full.path()).stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && err.contains("is not empty") && err.contains("nonempty"), "{out:?}");
    assert!(!is_mounted(full.path()));
    {
        let _guard = Unmount(full.path());
        let out = s3drive().args(base).arg(full.path()).args(["-o", "nonempty"]).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(fs::read_to_string(full.path().join("hello.txt")).unwrap(), "hi\n");
    }
    assert!(!is_mounted(dir.path()));
    let out = s3drive().arg("status").arg(dir.path()).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not an s3drive mount"));
}

#[test]
fn fstab_style_mount_with_o_options() {
    let c = client();
    let b = bucket("fstab");
    create_bucket(&c, &b);
    put(&c, &b, "data/a.txt", "from fstab\n");
    let proxy = Proxy::start();
    let dir = tempfile::tempdir().unwrap();
    let _guard = Unmount(dir.path());
    // For an fstab line of type fuse.s3drive, mount(8) runs `mount.fuse3 SOURCE DIR -t
    // fuse.s3drive -o OPTIONS` with the standard PATH, and mount.fuse3 runs `s3drive`: that is
    // why the README installs it there. The test runs mount.fuse3 itself, with the binary under
    // test first on PATH, and installs nothing outside its own directories.
    let bin = scratch_dir("bin");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_s3drive"), bin.path().join("s3drive")).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let opts = format!("_netdev,allow_other,endpoint_url={},force_path_style,region=us-east-1,ro", proxy.endpoint());
    let st = test_env(&mut Command::new("mount.fuse3"))
        .env("PATH", &path)
        .arg(format!("s3://{b}/data"))
        .arg(dir.path())
        .args(["-t", "fuse.s3drive", "-o", &opts])
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    assert_eq!(fs::read_to_string(dir.path().join("a.txt")).unwrap(), "from fstab\n");
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    let line = mounts.lines().find(|l| l.contains(dir.path().to_str().unwrap())).unwrap().to_string();
    assert!(line.starts_with(&format!("s3://{b}/data/ ")) && line.contains(" ro,"), "{line}");
    let err = fs::write(dir.path().join("new"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    sh(&format!("umount '{}'", dir.path().display()));
    wait_unmounted(dir.path());

    // As mount(8) runs a `mount.s3drive` helper (fstab type `s3drive`).
    let helper_dir = tempfile::tempdir().unwrap();
    let helper = helper_dir.path().join("mount.s3drive");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_s3drive"), &helper).unwrap();
    let st = test_env(&mut Command::new(&helper))
        .arg(&b)
        .arg(dir.path())
        .args(["-n", "-o", &format!("endpoint_url={},force_path_style", proxy.endpoint())])
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    assert_eq!(fs::read_to_string(dir.path().join("data/a.txt")).unwrap(), "from fstab\n");
    sh(&format!("umount '{}'", dir.path().display()));
    wait_unmounted(dir.path());
}

#[test]
fn sigterm_with_an_open_upload_and_pending_deletes_loses_nothing() {
    let c = client();
    let b = bucket("term");
    create_bucket(&c, &b);
    put_many(&c, &b, (0..300).map(|i| format!("junk/f{i:03}")).collect(), b"x");
    let proxy = Proxy::start();
    let mut m = mount(&proxy, &[&b]);
    sh(&format!("rm -r '{}'", m.path().join("junk").display()));
    // A file still open for writing, 20 MiB written, never closed.
    let body = data(20 << 20, 3);
    let mut open = fs::File::create(m.path().join("open.bin")).unwrap();
    open.write_all(&body).unwrap();
    // A file closed just now.
    fs::write(m.path().join("closed.txt"), "closed\n").unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(m.pid() as i32, libc::SIGTERM) };
    let st = m.child.as_mut().unwrap().wait().unwrap();
    m.child = None;
    let log = m.log_text();
    assert!(st.success(), "{st}\n{log}");
    assert!(log.contains("uploaded a file still open at unmount"), "{log}");
    drop(open); // its descriptor is dead now
    assert_eq!(get(&c, &b, "open.bin"), body, "the open file's bytes are in S3");
    assert_eq!(get(&c, &b, "closed.txt"), b"closed\n");
    let left = rt().block_on(c.list_objects_v2().bucket(&b).prefix("junk/").send()).unwrap();
    assert_eq!(left.key_count(), Some(0), "every pending delete was sent");
}

#[test]
fn status_shows_an_upload_in_progress_during_a_large_cp() {
    let c = client();
    let b = bucket("status");
    create_bucket(&c, &b);
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("big.bin"), data(96 << 20, 4)).unwrap();
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b]);
    let mut cp = Command::new("cp").arg(src.path().join("big.bin")).arg(m.path()).spawn().unwrap();
    let mut seen = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while cp.try_wait().unwrap().is_none() && Instant::now() < deadline {
        let s = status_of(m.path());
        if s.contains(&format!("s3://{b}/big.bin")) && s.contains("MiB in S3") {
            seen = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(cp.wait().unwrap().success());
    let seen = seen.expect("status never showed the upload");
    assert!(seen.contains("files open for writing: 1"), "{seen}");
    // The kernel releases the file just after cp's close returns.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = status_of(m.path());
    while !after.contains("files open for writing: 0") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = status_of(m.path());
    }
    assert!(after.contains("files open for writing: 0"), "{after}");
    assert!(after.contains("UploadPart") && after.contains("CompleteMultipartUpload"), "{after}");
    assert!(after.contains("96.0 MiB up"), "{after}");
}

#[test]
fn logs_never_hold_secrets_or_signatures() {
    let c = client();
    let b = bucket("logs");
    create_bucket(&c, &b);
    put(&c, &b, "f.txt", "x");
    let proxy = Proxy::start();
    // A secret that appears nowhere else, so finding it anywhere in the log is a leak.
    let secret = format!("s3cr3t-{}-{:016x}", std::process::id(), fastrand::u64(..));
    let mut m = mount_env(&proxy, &[&b, "--log", "trace"], &[("AWS_SECRET_ACCESS_KEY", &secret)]);
    let out = Command::new("getfattr")
        .args(["-n", "user.s3.presigned_url", "--only-values"])
        .arg(m.path().join("f.txt"))
        .output()
        .unwrap();
    let url = String::from_utf8(out.stdout).unwrap();
    let sig = url.split("X-Amz-Signature=").nth(1).expect("a signed link").to_string();
    fs::read(m.path().join("f.txt")).unwrap();
    m.unmount();
    let log = m.log_text();
    assert!(log.len() > 10_000, "trace logging is on");
    assert!(!log.contains(&sig), "the link's signature is not logged");
    assert!(!log.contains(&secret), "the secret key is not logged");
    // Every signature and every Authorization header that reaches the log is redacted, not
    // only the first: trace logging shows each request's headers.
    let lower = log.to_ascii_lowercase();
    for (i, _) in lower.match_indices("signature=") {
        let value = &log[i + "signature=".len()..];
        assert!(value.starts_with("[redacted]"), "an unredacted signature: {}", &log[i..(i + 80).min(log.len())]);
    }
    let mut headers = 0;
    for (i, _) in lower.match_indices("\"authorization\": ") {
        headers += 1;
        let value = &lower[i + "\"authorization\": ".len()..];
        assert!(
            value.starts_with("** redacted") || value.starts_with("[redacted]"),
            "an unredacted Authorization header: {}",
            &log[i..(i + 120).min(log.len())]
        );
    }
    assert!(headers > 0, "trace logging shows the requests' headers ({headers} Authorization headers)");
    assert!(!log.contains('\x1b'), "no colour codes in a log that is not a terminal");
}

#[test]
fn completions_and_man_page_come_from_the_cli() {
    let out = s3drive().args(["completions", "bash"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success() && text.contains("--endpoint-url") && text.contains("--presign-lifetime"));
    let out = s3drive().arg("man").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success() && text.contains(".TH s3drive") && text.contains("foreground"), "{text}");
    // `s3drive man | head`: a reader that is gone is no failure (and no BrokenPipe panic).
    let empty = tempfile::tempdir().unwrap();
    let cache = empty.path().to_str().unwrap();
    let c = client();
    let b = bucket("pipe");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b]);
    let mp = m.path().to_str().unwrap();
    for args in [
        &["completions", "bash"][..],
        &["completions", "zsh"][..],
        &["man"][..],
        &["--help"][..],
        &["--version"][..],
        &["status", mp][..],
        &["status", "--help"][..],
        &["recover", "--cache-dir", cache, "list"][..],
        &["recover", "--help"][..],
    ] {
        let mut fds = [0; 2];
        // SAFETY: a valid array for pipe(2); the read end is closed at once, so every write
        // to the other end fails with EPIPE.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::close(fds[0]);
        }
        use std::os::fd::FromRawFd;
        // SAFETY: we own the write end.
        let stdout = unsafe { std::process::Stdio::from_raw_fd(fds[1]) };
        let out = s3drive().args(args).stdout(stdout).stderr(std::process::Stdio::piped()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn an_https_endpoint_with_a_private_ca_is_trusted_with_ca_bundle_and_refused_without() {
    let (port, ca) = moto_tls();
    let ep = format!("https://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().to_str().unwrap();
    let run = |extra: &[&str], ca_env: Option<&Path>| {
        let mut cmd = s3drive();
        if let Some(p) = ca_env {
            cmd.env("AWS_CA_BUNDLE", p);
        }
        let out = cmd.args(["--endpoint-url", &ep, "--force-path-style"]).args(extra).arg(mp).output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };

    // Not trusted: a one-line cause that names the fix, no debug dump, nothing mounted.
    let (code, err) = run(&[], None);
    assert!(code != 0 && err.contains("no TLS connection") && err.contains("UnknownIssuer"), "{code} {err}");
    assert!(err.contains("--ca-bundle") && !err.contains("DispatchFailure {"), "{err}");
    // A bundle that is missing or holds no certificate is bad input.
    let missing = dir.path().with_extension("nope");
    let (code, err) = run(&["--ca-bundle", missing.to_str().unwrap()], None);
    assert!(code == 2 && err.contains("--ca-bundle") && err.contains("No such file"), "{code} {err}");
    let not_pem = tempfile::NamedTempFile::new().unwrap();
    fs::write(not_pem.path(), "hello").unwrap();
    let (code, err) = run(&[], Some(not_pem.path()));
    assert!(code == 2 && err.contains("no PEM certificate"), "{code} {err}");
    assert!(!is_mounted(dir.path()));

    // Trusted with --ca-bundle: a bucket made and a file written over TLS...
    let b = bucket("tls");
    {
        let m = mount_endpoint(&ep, &["--ca-bundle", ca.to_str().unwrap()]);
        fs::create_dir(m.path().join(&b)).unwrap();
        fs::write(m.path().join(&b).join("over-tls.txt"), "sealed\n").unwrap();
    }
    // ...and read back by a background mount that takes the CA from AWS_CA_BUNDLE.
    let (code, err) = run(&[], Some(&ca));
    let _u = Unmount(dir.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::read_to_string(dir.path().join(&b).join("over-tls.txt")).unwrap(), "sealed\n");
}

/// One scrape of the metrics endpoint (plain HTTP/1.1, as Prometheus sends it).
fn scrape(addr: &str) -> String {
    use std::io::Read;
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: s3drive\r\nAccept: text/plain\r\n\r\n").unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    assert!(s.starts_with("HTTP/1.1 200 OK\r\n"), "{s}");
    s
}

fn sample(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0)
}

#[test]
fn metrics_scraped_during_a_cp_show_the_upload_moving() {
    let c = client();
    let b = bucket("metrics");
    create_bucket(&c, &b);
    let src = tempfile::tempdir().unwrap();
    let size = 96u64 << 20;
    fs::write(src.path().join("big.bin"), data(size as usize, 9)).unwrap();
    let proxy = Proxy::start();
    // Each part waits a little, and 5 MiB parts go up 8 at a time (the upload budget): the
    // 20 parts complete in waves 300 ms apart, so the counter is seen at two plateaus at least
    // however the parts of one wave land (48 MiB in 8 MiB parts could all finish at once).
    proxy.delay("UploadPart", 300);
    let addr =
        format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let m = mount(&proxy, &["--metrics-addr", &addr, "--write-part-size", "5", &b]);
    let before = scrape(&addr);
    assert_eq!(sample(&before, "s3drive_uploaded_bytes_total"), 0, "{before}");
    let mut cp = Command::new("cp").arg(src.path().join("big.bin")).arg(m.path()).spawn().unwrap();
    let (mut moving, mut in_progress) = (Vec::new(), false);
    let deadline = Instant::now() + Duration::from_secs(120);
    while cp.try_wait().unwrap().is_none() && Instant::now() < deadline {
        let s = scrape(&addr);
        in_progress |= sample(&s, "s3drive_files_open_for_writing") == 1;
        let up = sample(&s, "s3drive_uploaded_bytes_total");
        if up > 0 && up < size && moving.last() != Some(&up) {
            moving.push(up);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(cp.wait().unwrap().success());
    assert!(in_progress, "the open file was never seen");
    assert!(moving.len() >= 2, "the upload counter was not seen moving during the cp: {moving:?}");
    // After the close: every byte counted once, the parts and the completion counted, nothing open.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = scrape(&addr);
    while sample(&after, "s3drive_files_open_for_writing") != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = scrape(&addr);
    }
    assert_eq!(sample(&after, "s3drive_files_open_for_writing"), 0, "{after}");
    assert_eq!(sample(&after, "s3drive_uploaded_bytes_total"), size, "{after}");
    assert_eq!(
        sample(&after, "s3drive_requests_total{operation=\"UploadPart\"}"),
        proxy.count("UploadPart"),
        "{after}"
    );
    assert_eq!(sample(&after, "s3drive_requests_total{operation=\"CompleteMultipartUpload\"}"), 1, "{after}");
    // A taken port is a start-up error, before anything is mounted.
    let dir = tempfile::tempdir().unwrap();
    let out = s3drive()
        .args(["--endpoint-url", &proxy.endpoint(), "--force-path-style", "--metrics-addr", &addr, &b])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--metrics-addr") && err.contains("in use"), "{err}");
    assert!(!is_mounted(dir.path()));
}

/// Runs `cmd` as the user nobody; its exit status and stderr.
/// SIGKILL to an auto_unmount mount's daemon: within 20 s the mount is gone and the mount
/// point is a plain directory again.
fn kill_and_see_unmounted(m: &mut Mount, what: &str) {
    unsafe { libc::kill(m.pid() as i32, libc::SIGKILL) };
    let _ = m.child.as_mut().unwrap().wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    while is_mounted(m.path()) {
        assert!(Instant::now() < deadline, "{what}: a dead mount stayed behind");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(fs::read_dir(m.path()).is_ok(), "{what}: the mount point is a plain directory again");
}

fn as_nobody(cmd: &str) -> (bool, String) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", cmd])
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn umask_hides_modes_access_is_the_owners_and_auto_unmount_cleans_up_after_a_kill() {
    let c = client();
    let b = bucket("umask");
    create_bucket(&c, &b);
    put_meta(&c, &b, "open.txt", "x", &[("mode", "33188")]); // 0644 stored
    put(&c, &b, "dir/plain.txt", "y");
    let proxy = Proxy::start();

    let mut m = mount(&proxy, &["-o", "umask=0077,auto_unmount", &b]);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&m.path().join("open.txt")), 0o600, "0644 stored, 0077 masked");
    assert_eq!(mode(&m.path().join("dir/plain.txt")), 0o600);
    assert_eq!(mode(&m.path().join("dir")), 0o700);
    fs::set_permissions(m.path().join("open.txt"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(mode(&m.path().join("open.txt")), 0o700, "a chmod is stored and shown masked");
    // auto_unmount makes the kernel let every user through to s3drive, which still lets only
    // the mounting user (and root) in.
    let (ok, err) = as_nobody(&format!("ls {}", m.path().display()));
    assert!(!ok && err.contains("Permission denied"), "{err}");

    // The daemon dies: the mount goes with it, no "Transport endpoint is not connected".
    kill_and_see_unmounted(&mut m, "the kill");
    drop(m);

    // --allow-other lets other users in, with the modes as stored (default_permissions).
    let m = mount(&proxy, &["--allow-other", &b]);
    let (ok, err) = as_nobody(&format!("cat {}/open.txt && ls {}/dir", m.path().display(), m.path().display()));
    assert!(ok, "{err}");
}

/// fusermount3's auto_unmount helper looks once, when the daemon's socket closes, and can look
/// before the kernel has cut the FUSE connection: then the dead mount stays (3 kills in 20 on a
/// busy machine). s3drive's guard looks again until it sees the connection dead. Kill after
/// kill, the mount goes every time, and no guard outlives its mount.
#[test]
fn auto_unmount_survives_repeated_kills_and_leaves_no_helper_behind() {
    let c = client();
    let b = bucket("kills");
    create_bucket(&c, &b);
    put(&c, &b, "f", "x");
    let proxy = Proxy::start();
    let mut points = Vec::new();
    for i in 0..8 {
        let mut m = mount(&proxy, &["-o", "auto_unmount", &b]);
        assert_eq!(fs::read(m.path().join("f")).unwrap(), b"x");
        kill_and_see_unmounted(&mut m, &format!("kill {i}"));
        points.push(m.path().display().to_string());
        drop(m);
    }
    // Each guard ends once its mount is gone.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ps = sh("ps -eo args");
        let left: Vec<&str> = ps.lines().filter(|l| points.iter().any(|p| l.contains(p.as_str()))).collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "helpers left: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
