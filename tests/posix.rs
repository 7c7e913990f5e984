//! POSIX behaviour where S3 allows it, through a real mount against moto: times that move as
//! POSIX says and are stored, FIFOs and device nodes, set-user-ID cleared by others' writes,
//! links of unlinked open files, attribute names without a namespace. Each kept across a remount
//! with an empty cache directory (another host), with a listing first.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn ctime(p: &Path) -> (i64, i64) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.ctime(), m.ctime_nsec())
}

fn mtime(p: &Path) -> (i64, i64) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.mtime(), m.mtime_nsec())
}

fn atime(p: &Path) -> (i64, i64) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.atime(), m.atime_nsec())
}

/// Lets the clock move past what the last change recorded.
fn tick() {
    std::thread::sleep(Duration::from_millis(1100));
}

fn cache_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("s3drive-posix-cache").tempdir().unwrap()
}

#[test]
fn times_move_as_posix_says_and_are_stored() {
    let c = client();
    let b = bucket("times");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let cache = cache_dir();
    let mut m = mount(&proxy, &[&b, "--cache-dir", cache.path().to_str().unwrap()]);
    let f = m.path().join("f.txt");
    fs::write(&f, "hello\n").unwrap();
    let (m0, c0) = (mtime(&f), ctime(&f));
    assert_eq!(atime(&f), m0, "a new file's atime is its mtime (noatime)");

    // chmod, chown: ctime moves, mtime stays.
    tick();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    let c1 = ctime(&f);
    assert!(c1 > c0, "chmod moves ctime: {c0:?} -> {c1:?}");
    assert_eq!(mtime(&f), m0, "chmod leaves mtime");
    tick();
    std::os::unix::fs::chown(&f, Some(1234), None).unwrap();
    let c2 = ctime(&f);
    assert!(c2 > c1, "chown moves ctime");

    // utimens sets atime and mtime apart, and moves ctime.
    tick();
    let (a, mt) = (1_000_000_000i64, 1_100_000_000i64);
    sh(&format!("touch -a -d @{a}.5 {0} && touch -m -d @{mt}.25 {0}", f.display()));
    assert_eq!(atime(&f), (a, 500_000_000));
    assert_eq!(mtime(&f), (mt, 250_000_000));
    let c3 = ctime(&f);
    assert!(c3 > c2, "utimens moves ctime");

    // An xattr change moves ctime; a name without a namespace is stored, as s3fs does.
    tick();
    sh(&format!("setfattr -n key1 -v value1 {}", f.display()));
    let c4 = ctime(&f);
    assert!(c4 > c3, "setxattr moves ctime");
    assert_eq!(sh(&format!("getfattr --only-values -n key1 {}", f.display())), "value1");

    // A rename moves ctime and keeps mtime and atime.
    tick();
    let g = m.path().join("g.txt");
    fs::rename(&f, &g).unwrap();
    let c5 = ctime(&g);
    assert!(c5 > c4, "rename moves ctime");
    assert_eq!(mtime(&g), (mt, 250_000_000), "rename keeps mtime");
    assert_eq!(atime(&g), (a, 500_000_000), "rename keeps atime");

    // truncate moves mtime and ctime.
    tick();
    sh(&format!("truncate -s 3 {}", g.display()));
    let (m6, c6) = (mtime(&g), ctime(&g));
    assert!(m6.0 > mt && c6 > c5, "truncate moves mtime and ctime: {m6:?} {c6:?}");
    let want = (m6, c6, atime(&g), fs::metadata(&g).unwrap().mode(), fs::metadata(&g).unwrap().uid());
    m.unmount();

    // Another host (an empty cache directory), a listing first: the same times.
    let cache2 = cache_dir();
    let m = mount(&proxy, &[&b, "--cache-dir", cache2.path().to_str().unwrap()]);
    let g = m.path().join("g.txt");
    sh(&format!("ls -l {} >/dev/null", m.path().display()));
    let md = fs::metadata(&g).unwrap();
    assert_eq!((mtime(&g), ctime(&g), atime(&g), md.mode(), md.uid()), want);
    assert_eq!(md.len(), 3);
    assert_eq!(sh(&format!("getfattr --only-values -n key1 {}", g.display())), "value1");
    assert!(sh(&format!("getfattr -d -m - {}", g.display())).contains("key1=\"value1\""));
}

#[test]
fn fifos_and_device_nodes_are_stored_as_s3fs_stores_them() {
    let c = client();
    let b = bucket("special");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let cache = cache_dir();
    let mut m = mount(&proxy, &[&b, "--cache-dir", cache.path().to_str().unwrap()]);
    let dir = m.path().join("dev");
    fs::create_dir(&dir).unwrap();
    sh(&format!("mkfifo -m 0640 {0}/pipe && mknod -m 0600 {0}/null c 1 3", dir.display()));
    let pipe = dir.join("pipe");
    assert!(fs::symlink_metadata(&pipe).unwrap().file_type().is_fifo());

    // The kernel serves the FIFO: what one process writes another reads.
    let r = Command::new("cat").arg(&pipe).stdout(std::process::Stdio::piped()).spawn().unwrap();
    fs::OpenOptions::new().write(true).open(&pipe).unwrap().write_all(b"through the pipe\n").unwrap();
    let out = r.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"through the pipe\n");

    // rsync -a copies a FIFO in (its -D), as a FIFO.
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("plain"), "p\n").unwrap();
    sh(&format!("mkfifo {}/fifo", src.path().display()));
    sh(&format!("rsync -a {}/ {}/copied/", src.path().display(), m.path().display()));
    assert!(fs::symlink_metadata(m.path().join("copied/fifo")).unwrap().file_type().is_fifo());
    m.unmount();

    // In S3: empty objects whose mode says what they are (s3fs reads them so).
    let head = rt().block_on(c.head_object().bucket(&b).key("dev/null").send()).unwrap();
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("mode").map(String::as_str), Some(&*(libc::S_IFCHR | 0o600).to_string()), "{meta:?}");
    assert_eq!(meta.get("rdev").map(String::as_str), Some(&*libc::makedev(1, 3).to_string()), "{meta:?}");
    assert_eq!(head.content_length(), Some(0));

    // Another host, a listing first: the same types, modes and device numbers.
    let cache2 = cache_dir();
    let m = mount(&proxy, &[&b, "--cache-dir", cache2.path().to_str().unwrap()]);
    let ls = sh(&format!("ls -lR {}", m.path().display()));
    assert!(ls.lines().any(|l| l.starts_with("prw-r-----") && l.ends_with(" pipe")), "{ls}");
    assert!(ls.lines().any(|l| l.starts_with("crw-------") && l.ends_with(" null")), "{ls}");
    let null = fs::symlink_metadata(m.path().join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert!(fs::symlink_metadata(m.path().join("copied/fifo")).unwrap().file_type().is_fifo());
    // Removed like any file.
    fs::remove_file(m.path().join("dev/pipe")).unwrap();
    assert!(fs::symlink_metadata(m.path().join("dev/pipe")).is_err());
}

/// Runs `sh -c cmd` as the unprivileged user 65534.
fn as_nobody(cmd: &str) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", cmd])
        .output()
        .unwrap()
}

#[test]
fn others_writes_clear_set_id_bits_and_unlinked_open_files_have_no_links() {
    let c = client();
    let b = bucket("suid");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let cache = cache_dir();
    let mut m = mount(&proxy, &[&b, "--allow-other", "--cache-dir", cache.path().to_str().unwrap()]);
    let prog = m.path().join("prog");
    fs::write(&prog, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o6777)).unwrap();
    assert_eq!(fs::metadata(&prog).unwrap().mode() & 0o7777, 0o6777);
    // Someone else writes to it: set-user-ID and set-group-ID go (they could not keep them).
    let out = as_nobody(&format!("echo 'echo hi' >> {}", prog.display()));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(fs::metadata(&prog).unwrap().mode() & 0o7777, 0o777);
    // The owner's own write (root keeps them: CAP_FSETID) leaves them.
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o4755)).unwrap();
    fs::OpenOptions::new().append(true).open(&prog).unwrap().write_all(b"# root\n").unwrap();
    assert_eq!(fs::metadata(&prog).unwrap().mode() & 0o7777, 0o4755);
    // chown drops set-user-ID.
    std::os::unix::fs::chown(&prog, Some(1234), None).unwrap();
    assert_eq!(fs::metadata(&prog).unwrap().mode() & 0o7777, 0o755);

    // A file open for reading whose name is removed has no links.
    let doomed = m.path().join("doomed");
    fs::write(&doomed, "still readable\n").unwrap();
    let mut r = fs::File::open(&doomed).unwrap();
    let mut first = [0u8; 5];
    r.read_exact(&mut first).unwrap();
    assert_eq!(r.metadata().unwrap().nlink(), 1);
    fs::remove_file(&doomed).unwrap();
    assert_eq!(r.metadata().unwrap().nlink(), 0, "fstat of an unlinked file open for reading");
    drop(r);
    m.unmount();

    // Stored: another host sees the cleared bits.
    let cache2 = cache_dir();
    let m = mount(&proxy, &[&b, "--cache-dir", cache2.path().to_str().unwrap()]);
    sh(&format!("ls -l {} >/dev/null", m.path().display()));
    let md = fs::metadata(m.path().join("prog")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid()), (0o755, 1234));
    assert_eq!(fs::read_to_string(m.path().join("prog")).unwrap(), "#!/bin/sh\necho hi\n# root\n");
}

/// pjdfstest rename/09.t and 10.t: a file renamed by its (unprivileged) owner over a FIFO whose
/// chown had not been written yet, and back. The FIFO's waiting metadata had been written onto
/// the file moved over it, which the kernel then saw change type under one inode number: every
/// call on it EIO, and S3 held a regular file stored as a FIFO.
#[test]
fn a_file_renamed_over_a_fifo_and_back_by_its_owner_stays_a_file() {
    let c = client();
    let b = bucket("fifoswap");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let mut m = mount(&proxy, &[&b, "--allow-other"]);
    let (n0, n1) = (m.path().join("n0"), m.path().join("n1"));
    fs::create_dir(&n0).unwrap();
    fs::create_dir(&n1).unwrap();
    fs::write(n0.join("n2"), "").unwrap();
    let status = Command::new("mkfifo").arg(n1.join("n3")).status().unwrap();
    assert!(status.success());
    for p in [n0.join("n2"), n1.join("n3"), n0.clone(), n1.clone()] {
        std::os::unix::fs::lchown(&p, Some(65534), Some(65534)).unwrap();
    }
    let out = as_nobody(&format!("cd '{}' && mv -T n0/n2 n1/n3 && mv -T n1/n3 n0/n2", m.path().display()));
    assert!(out.status.success(), "{out:?}");
    let md = fs::symlink_metadata(n0.join("n2")).expect("lstat after the renames");
    assert!(md.file_type().is_file(), "{:?}", md.file_type());
    assert_eq!((md.uid(), md.gid()), (65534, 65534));
    assert!(fs::symlink_metadata(n1.join("n3")).is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT)));
    // Past the delay before waiting metadata is written, and after the unmount that writes
    // whatever still waits: S3 holds a regular file owned by 65534.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(fs::symlink_metadata(n0.join("n2")).unwrap().file_type().is_file());
    m.unmount();
    let head = rt().block_on(c.head_object().bucket(&b).key("n0/n2").send()).unwrap();
    let meta = head.metadata().unwrap();
    let mode: u32 = meta["mode"].parse().unwrap();
    assert_eq!(mode & libc::S_IFMT, libc::S_IFREG, "stored as a regular file: {meta:?}");
    assert_eq!(meta["uid"], "65534");
    assert!(!exists(&c, &b, "n1/n3"));
    let log = m.log_text();
    assert!(!log.contains(" WARN ") && !log.contains(" ERROR "), "{log}");
}
