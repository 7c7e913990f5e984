//! File metadata through a real mount against moto: modes, owners, mtimes and symlinks are right
//! whatever ran first (a listing, a remount, an expired TTL, another host), served from the
//! metadata index in the cache directory or fetched with one HeadObject per object version.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;

/// Files in [`make_tree`].
const FILES: u64 = 6;
/// Directories that [`make_tree`] copied into the mount makes (with `archive` itself).
const DIRS: u64 = 5;

/// A local tree with private, executable and owned files, old mtimes with nanoseconds, and
/// symlinks, in nested folders with their own modes, owners and old mtimes.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("docs")).unwrap();
    fs::create_dir_all(root.join("nested/a/b")).unwrap();
    fs::write(root.join("docs/readme.txt"), "read me\n").unwrap();
    fs::write(root.join("docs/secret.key"), "secret\n").unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\n").unwrap();
    fs::write(root.join("nested/a/b/deep.bin"), data(10_000, 5)).unwrap();
    std::os::unix::fs::symlink("docs/readme.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink("../../../run.sh", root.join("nested/a/b/up")).unwrap();
    fs::set_permissions(root.join("docs/secret.key"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(root.join("docs/readme.txt"), Some(1234), Some(5678)).unwrap();
    for (i, f) in ["docs/readme.txt", "docs/secret.key", "run.sh", "nested/a/b/deep.bin"].iter().enumerate() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_500_000_000 + i as u64 * 1000, 250_000_000);
        fs::File::options().write(true).open(root.join(f)).unwrap().set_modified(t).unwrap();
    }
    fs::set_permissions(root.join("docs"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(root.join("nested/a"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(root.join("nested/a/b"), Some(4321), Some(8765)).unwrap();
    for (i, d) in ["docs", "nested", "nested/a", "nested/a/b"].iter().enumerate() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_400_000_000 + i as u64 * 1000, 125_000_000);
        fs::File::open(root.join(d)).unwrap().set_modified(t).unwrap();
    }
}

/// What `stat` says of every file, directory and symlink under `root`, sorted by path.
fn snapshot(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                let mode = m.mode() & 0o7777;
                out.push(format!("{rel}/ {mode:o} {}:{} {}.{:09}", m.uid(), m.gid(), m.mtime(), m.mtime_nsec()));
                stack.push(p);
            } else if m.file_type().is_symlink() {
                out.push(format!("{rel} -> {}", fs::read_link(&p).unwrap().display()));
            } else {
                out.push(format!(
                    "{rel} {:o} {}:{} {}.{:09} {}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.size()
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn cp_a_tree_keeps_modes_owners_times_and_symlinks_whatever_runs_first() {
    let c = client();
    let b = bucket("meta");
    create_bucket(&c, &b);
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let want = snapshot(src.path());
    let proxy = Proxy::start();
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    {
        let mut m = mount(&proxy, &[&b, "--cache-dir", cache_arg]);
        sh(&format!("cp -a {}/. {}/archive", src.path().display(), m.path().display()));
        assert!(m.unmount().unwrap().success(), "{}", m.log_text());
    }
    let index = cache.path().join("metadata-v1.sqlite");
    assert_eq!(fs::metadata(&index).unwrap().permissions().mode() & 0o777, 0o600, "the index is private");

    // The same host after a remount, a listing first: everything from the index, no HeadObject.
    {
        let m = mount(&proxy, &[&b, "--cache-dir", cache_arg]);
        let archive = m.path().join("archive");
        proxy.reset();
        let ls = sh(&format!("ls -lR --time-style=+%s {}", archive.display()));
        assert!(ls.contains("-rw------- 1 root root 7 1500001000 secret.key"), "{ls}");
        assert!(ls.contains("-rw-r--r-- 1 1234 5678 8 1500000000 readme.txt"), "{ls}");
        assert!(ls.contains("link -> docs/readme.txt"), "{ls}");
        assert!(ls.lines().any(|l| l.starts_with("drwxr-x--- ") && l.ends_with(" 1400000000 docs")), "{ls}");
        sh(&format!("diff -r --no-dereference {} {}", src.path().display(), archive.display()));
        assert_eq!(snapshot(&archive), want);
        assert_eq!(proxy.count("HeadObject"), 0, "the index knows every version: {:?}", proxy.counts());
    }

    // Another host (an empty cache directory), a listing first again: one HeadObject per file,
    // none twice, and what the kernel was given from the listing never shows.
    {
        let other = tempfile::tempdir().unwrap();
        let m = mount(&proxy, &[&b, "--cache-dir", other.path().to_str().unwrap(), "--metadata-ttl", "600"]);
        let archive = m.path().join("archive");
        proxy.reset();
        let ls = sh(&format!("ls -l --time-style=+%s {}", archive.join("docs").display()));
        assert!(ls.contains("-rw------- 1 root root 7 1500001000 secret.key"), "{ls}");
        sh(&format!("diff -r --no-dereference {} {}", src.path().display(), archive.display()));
        assert_eq!(snapshot(&archive), want);
        sh(&format!("ls -lR {} > /dev/null", archive.display()));
        // Directories' metadata is on their markers: one HeadObject each too.
        assert_eq!(proxy.count("HeadObject"), FILES + DIRS, "{:?}", proxy.counts());
        assert_eq!(proxy.most_per_path("HeadObject"), 1, "no metadata was fetched twice");
    }

    // A short TTL: listings and attributes expire between the tools, and are still right.
    {
        let other = tempfile::tempdir().unwrap();
        let m = mount(&proxy, &[&b, "--cache-dir", other.path().to_str().unwrap(), "--metadata-ttl", "1"]);
        let archive = m.path().join("archive");
        sh(&format!("ls -lR {} > /dev/null", archive.display()));
        std::thread::sleep(Duration::from_millis(1500));
        sh(&format!("find {} -newer {} > /dev/null", archive.display(), src.path().join("run.sh").display()));
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(snapshot(&archive), want);
    }

    // The opt-out: listings alone, no HeadObject, LastModified and the default mode.
    {
        let other = tempfile::tempdir().unwrap();
        let m = mount(&proxy, &[&b, "--cache-dir", other.path().to_str().unwrap(), "--metadata-from", "listing"]);
        proxy.reset();
        let ls = sh(&format!("ls -l {}", m.path().join("archive/docs").display()));
        assert!(ls.contains("-rw-r--r-- 1 root root 7 ") && ls.contains(" secret.key"), "{ls}");
        assert_eq!(proxy.count("HeadObject"), 0, "{:?}", proxy.counts());
    }
}

#[test]
fn objects_from_other_clients_cost_one_head_per_version_per_host() {
    let c = client();
    let b = bucket("foreign");
    create_bucket(&c, &b);
    // As s3fs writes them (0600, an old mtime), and as plain uploads with no metadata at all.
    put_many_meta(
        &c,
        &b,
        (0..200).map(|i| format!("s3fs/f{i:03}")).collect(),
        b"abc",
        &[("mode", "33152"), ("mtime", "1600000000"), ("uid", "42"), ("gid", "43")],
    );
    put_many(&c, &b, (0..200).map(|i| format!("plain/f{i:03}")).collect(), b"abcd");
    let proxy = Proxy::start();
    let cache = tempfile::tempdir().unwrap();
    let args = [b.as_str(), "--cache-dir", cache.path().to_str().unwrap(), "--metadata-ttl", "600"];
    {
        let m = mount(&proxy, &args);
        proxy.reset();
        // Long enough that requests sent together overlap also on a loaded machine.
        proxy.delay("HeadObject", 100);
        // Listed first: no line shows the listing's made-up mode, owner or time.
        let ls = sh(&format!("ls -ln --time-style=+%s {}", m.path().join("s3fs").display()));
        let files: Vec<&str> = ls.lines().filter(|l| l.contains(" f")).collect();
        assert_eq!(files.len(), 200);
        assert!(files.iter().all(|l| l.starts_with("-rw------- 1 42 43 3 1600000000 ")), "{ls}");
        assert_eq!(proxy.count("HeadObject"), 200, "{:?}", proxy.counts());
        // The stat-ahead's smallest window is 8 HeadObjects sent together.
        assert!(proxy.peak("HeadObject") >= 8, "HeadObjects of a walked listing go many at once");
        let ls = sh(&format!("ls -ln {}", m.path().join("plain").display()));
        assert_eq!(ls.lines().filter(|l| l.starts_with("-rw-r--r-- 1 0 0 4 ")).count(), 200, "{ls}");
        assert_eq!(proxy.count("HeadObject"), 400);
        assert_eq!(proxy.most_per_path("HeadObject"), 1);
        // Again, inside the TTL: nothing.
        proxy.reset();
        sh(&format!("ls -lR {} > /dev/null", m.path().display()));
        assert_eq!(proxy.count("HeadObject") + proxy.count("ListObjectsV2"), 0, "{:?}", proxy.counts());
    }
    // A remount on this host: objects without metadata are remembered as such too.
    let m = mount(&proxy, &args);
    proxy.reset();
    let ls = sh(&format!("ls -lnR --time-style=+%s {}", m.path().display()));
    assert_eq!(ls.lines().filter(|l| l.starts_with("-rw------- 1 42 43 3 1600000000 ")).count(), 200, "{ls}");
    assert_eq!(proxy.count("HeadObject"), 0, "{:?}", proxy.counts());

    // Another client changes a mode without changing the bytes (a metadata-replacing copy keeps
    // a single-part object's ETag on S3): its new LastModified tells this host to look again.
    std::thread::sleep(Duration::from_millis(1100)); // LastModified has one-second precision
    rt().block_on(
        c.copy_object()
            .bucket(&b)
            .key("s3fs/f007")
            .copy_source(format!("{b}/s3fs/f007"))
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .metadata("mode", "33261")
            .send(),
    )
    .unwrap();
    drop(m);
    let m = mount(&proxy, &args);
    let st = fs::symlink_metadata(m.path().join("s3fs/f007")).unwrap();
    assert_eq!(st.mode() & 0o7777, 0o755);
    let ls = sh(&format!("ls -l {}", m.path().join("s3fs").display()));
    assert!(ls.lines().any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(" f007")), "{ls}");
}
