//! Writing through a real mount against moto: cp, cp -a, rsync -a (twice), mv, rm -r, random
//! writes, truncate, append, and uploads that fail. Request counts are asserted through the
//! counting proxy.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::*;

fn write_requests(p: &Proxy) -> u64 {
    [
        "PutObject",
        "CopyObject",
        "DeleteObject",
        "DeleteObjects",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "UploadPartCopy",
    ]
    .iter()
    .map(|op| p.count(op))
    .sum()
}

/// A local tree with empty dirs, a symlink, a 0-byte file, a large file and set modes/mtimes.
fn make_tree(root: &Path, big: usize) {
    fs::create_dir_all(root.join("docs/empty")).unwrap();
    fs::create_dir_all(root.join("nested/a/b")).unwrap();
    fs::write(root.join("docs/readme.txt"), "read me\n").unwrap();
    fs::write(root.join("zero"), "").unwrap();
    fs::write(root.join("nested/a/b/deep.bin"), data(10_000, 5)).unwrap();
    fs::write(root.join("big.bin"), data(big, 9)).unwrap();
    std::os::unix::fs::symlink("docs/readme.txt", root.join("link")).unwrap();
    fs::set_permissions(root.join("docs/readme.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(root.join("zero"), fs::Permissions::from_mode(0o755)).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    for f in ["docs/readme.txt", "zero", "nested/a/b/deep.bin", "big.bin"] {
        fs::File::options().write(true).open(root.join(f)).unwrap().set_modified(t).unwrap();
    }
}

fn check_modes_and_times(root: &Path) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    assert_eq!(fs::metadata(root.join("docs/readme.txt")).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(fs::metadata(root.join("zero")).unwrap().mode() & 0o7777, 0o755);
    for f in ["docs/readme.txt", "zero", "nested/a/b/deep.bin", "big.bin"] {
        assert_eq!(fs::metadata(root.join(f)).unwrap().modified().unwrap(), t, "{f}");
    }
    let l = fs::symlink_metadata(root.join("link")).unwrap();
    assert!(l.file_type().is_symlink());
    assert_eq!(fs::read_link(root.join("link")).unwrap(), Path::new("docs/readme.txt"));
}

#[test]
fn cp_r_and_cp_a_of_a_tree_survive_a_remount() {
    let c = client();
    let b = bucket("cp");
    create_bucket(&c, &b);
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), 160 << 20);
    let proxy = Proxy::start();
    {
        // Parts of 5 MiB: the upload budget is 8 parts (40 MiB); diff reads within 16 MiB.
        let mut m = mount(&proxy, &[&b, "--write-part-size", "5", "--read-ahead-memory", "16"]);
        sh(&format!("cp -r {}/. {}/plain", src.path().display(), m.path().display()));
        sh(&format!("cp -a {}/. {}/archive", src.path().display(), m.path().display()));
        sh(&format!("diff -r {} {}/plain", src.path().display(), m.path().display()));
        sh(&format!("diff -r --no-dereference {} {}/archive", src.path().display(), m.path().display()));
        // Unmounted right after a large file is written: the kernel's release of that file may
        // still be in flight, and every answer must reach the kernel (no error in the log).
        sh(&format!("cp {}/big.bin {}/last.bin", src.path().display(), m.path().display()));
        // Three files of 160 MiB written: memory is bounded by the upload budget, not the file.
        let kib = m.peak_rss_kib();
        assert!(kib < 128 * 1024, "peak RSS {kib} KiB while writing files of 160 MiB");
        assert!(m.unmount().unwrap().success(), "{}", m.log_text());
        assert!(!m.log_text().contains("ERROR"), "{}", m.log_text());
    }
    // A cache directory of its own (the helper's default): what it shows reached S3.
    let m = mount(&proxy, &[&b, "--read-ahead-memory", "16"]);
    assert_eq!(get(&c, &b, "last.bin"), data(160 << 20, 9));
    // A listing first after a remount, then by path: modes, times and symlink-ness as written.
    sh(&format!("ls -lR {} > /dev/null", m.path().join("archive").display()));
    check_modes_and_times(&m.path().join("archive"));
    sh(&format!("diff -r --no-dereference {} {}/archive", src.path().display(), m.path().display()));
    assert!(m.path().join("archive/docs/empty").is_dir(), "empty directories persist");
    assert_eq!(get(&c, &b, "archive/big.bin"), data(160 << 20, 9));
    let kib = m.peak_rss_kib();
    assert!(kib < 128 * 1024, "peak RSS {kib} KiB while reading files of 160 MiB");
}

#[test]
fn rsync_twice_copies_nothing_the_second_time_with_three_writes_per_file() {
    let c = client();
    let b = bucket("rsync");
    create_bucket(&c, &b);
    let src = tempfile::tempdir().unwrap();
    for d in 0..10 {
        fs::create_dir_all(src.path().join(format!("d{d}"))).unwrap();
        for f in 0..100 {
            fs::write(src.path().join(format!("d{d}/f{f}.txt")), format!("file {d}/{f}\n")).unwrap();
        }
    }
    let proxy = Proxy::start();
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    let m = mount(&proxy, &[&b, "--cache-dir", cache_arg]);
    let dst = m.path().join("backup");
    proxy.reset();
    let out = sh(&format!("rsync -a --stats {}/ {}/", src.path().display(), dst.display()));
    assert!(
        out.contains("Number of regular files transferred: 1,000")
            || out.contains("Number of regular files transferred: 1000"),
        "{out}"
    );
    let writes = write_requests(&proxy);
    assert!(writes <= 3 * 1000 + 3 * 11, "{writes} write requests for 1,000 files: {:?}", proxy.counts());
    // One upload per file, and per directory its marker, put again for the mode and times
    // rsync sets on it.
    let puts = proxy.count("PutObject");
    assert!((1000 + 11..=1000 + 3 * 11).contains(&puts), "{:?}", proxy.counts());
    assert!(proxy.count("CopyObject") <= 1000, "{:?}", proxy.counts());
    assert_eq!(proxy.count("DeleteObject"), 0);
    sh(&format!("diff -r {} {}", src.path().display(), dst.display()));

    proxy.reset();
    let out = sh(&format!("rsync -a --stats {}/ {}/", src.path().display(), dst.display()));
    assert!(out.contains("Number of regular files transferred: 0"), "{out}");
    assert_eq!(proxy.count("PutObject") + proxy.count("CopyObject"), 0, "{:?}", proxy.counts());
    drop(m);

    // After a remount on the same host, a listing and a diff first: the metadata index in the
    // cache directory knows every file's version, so nothing but listings is sent.
    let m = mount(&proxy, &[&b, "--cache-dir", cache_arg]);
    let dst = m.path().join("backup");
    proxy.reset();
    sh(&format!("ls -lR {} > /dev/null", dst.display()));
    sh(&format!("diff -r {} {}", src.path().display(), dst.display()));
    let out = sh(&format!("rsync -a --stats {}/ {}/", src.path().display(), dst.display()));
    assert!(out.contains("Number of regular files transferred: 0"), "{out}");
    assert_eq!(proxy.count("HeadObject"), 0, "{:?}", proxy.counts());
    assert_eq!(proxy.count("PutObject") + proxy.count("CopyObject"), 0, "{:?}", proxy.counts());
    drop(m);

    // And as another host would (an empty cache directory): mtimes and sizes come from S3, one
    // HeadObject per file, sent ahead of rsync's lookups (which come one at a time, in listing
    // order) many at once. The TTL outlasts the run, so the listing count is the design's.
    let other = tempfile::tempdir().unwrap();
    let m = mount(&proxy, &[&b, "--cache-dir", other.path().to_str().unwrap(), "--metadata-ttl", "600"]);
    proxy.reset();
    proxy.delay("HeadObject", 10);
    let out = sh(&format!("rsync -a --stats {}/ {}/", src.path().display(), m.path().join("backup").display()));
    assert!(out.contains("Number of regular files transferred: 0"), "{out}");
    // Exactly one per file: a lookup joins the stat-ahead's request for its name, even when that
    // request completes on another thread at the same moment.
    // (And one per directory: its marker's mode and times.)
    assert_eq!(proxy.count("HeadObject"), 1000 + 11, "{:?}", proxy.counts());
    assert_eq!(proxy.most_per_path("HeadObject"), 1, "{:?}", proxy.counts());
    // And one listing per directory (the bucket, backup/ and its ten folders): a lookup that
    // meets a listing busy with a stat-ahead answer waits for it rather than listing again.
    assert_eq!(proxy.count("ListObjectsV2"), 12, "{:?}", proxy.counts());
    assert!(proxy.peak("HeadObject") > 1, "HeadObjects were sent one at a time: {:?}", proxy.counts());
    // A listing and a diff after it change nothing.
    proxy.reset();
    sh(&format!("ls -lR {} > /dev/null", m.path().join("backup").display()));
    sh(&format!("diff -r {} {}", src.path().display(), m.path().join("backup").display()));
    assert_eq!(proxy.count("HeadObject"), 0, "{:?}", proxy.counts());
}

#[test]
fn everyday_tools_work_while_the_inode_budget_forgets_files_and_folders() {
    let c = client();
    let b = bucket("tinybudget");
    create_bucket(&c, &b);
    let src = tempfile::tempdir().unwrap();
    for d in 0..30 {
        fs::create_dir_all(src.path().join(format!("d{d:02}/sub"))).unwrap();
        for f in 0..10 {
            fs::write(src.path().join(format!("d{d:02}/f{f}.txt")), format!("file {d}/{f}\n")).unwrap();
        }
        fs::write(src.path().join(format!("d{d:02}/sub/deep.txt")), format!("deep {d}\n")).unwrap();
    }
    let proxy = Proxy::start();
    // 30 folders of 11 files and a subfolder: far past a budget of 100, so nodes are forgotten
    // (files, then the folders they empty) between and during every step below.
    let m = mount(&proxy, &[&b, "--inode-budget", "100", "--metadata-ttl", "1"]);
    let (s, dst) = (src.path().display().to_string(), m.path().join("backup"));
    let d = dst.display().to_string();
    sh(&format!("rsync -a {s}/ {d}/"));
    let mut shell = std::process::Command::new("sleep").arg("120").current_dir(dst.join("d05/sub")).spawn().unwrap();
    if let Err(held) = inodes_fall_to(&m, 200, Duration::from_secs(30)) {
        panic!("rsync handed over about 400 names; the budget should let go of most: {held}");
    }
    sh(&format!("diff -r {s} {d}"));
    let out = sh(&format!("rsync -a --stats {s}/ {d}/"));
    assert!(out.contains("Number of regular files transferred: 0"), "{out}");
    std::thread::sleep(Duration::from_secs(3));
    sh(&format!("mv {d}/d01 {d}/moved && cp -r {d}/d02 {d}/copied"));
    std::thread::sleep(Duration::from_secs(3));
    sh(&format!("diff -r {s}/d01 {d}/moved && diff -r {s}/d02 {d}/copied"));
    assert_eq!(sh(&format!("find {d} -type f | wc -l")).trim(), (30 * 11 + 11).to_string());
    assert_eq!(sh(&format!("find {d} -type d | wc -l")).trim(), (1 + 31 * 2).to_string());
    let du: u64 = sh(&format!("du -s --apparent-size -B1 {d}")).split_whitespace().next().unwrap().parse().unwrap();
    assert!(du > 0);
    let cwd = fs::read_link(format!("/proc/{}/cwd", shell.id())).unwrap();
    assert_eq!(cwd, dst.join("d05/sub"), "the shell's folder was never dropped");
    assert_eq!(sh(&format!("cd {d}/d05/sub && pwd -P && cat deep.txt")), format!("{d}/d05/sub\ndeep 5\n"));
    shell.kill().unwrap();
    shell.wait().unwrap();
    sh(&format!("rm -r {d}"));
    assert!(!dst.exists());
    std::thread::sleep(Duration::from_millis(300));
    let left = rt().block_on(c.list_objects_v2().bucket(&b).send()).unwrap();
    assert_eq!(left.key_count(), Some(0), "{:?}", left.contents());
}

#[test]
fn rm_r_of_5000_files_sends_at_most_10_delete_batches() {
    let c = client();
    let b = bucket("rm");
    create_bucket(&c, &b);
    let mut keys: Vec<String> = (0..4000).map(|i| format!("junk/f{i:04}")).collect();
    keys.extend((0..1000).map(|i| format!("junk/sub/g{i:04}")));
    put_many(&c, &b, keys, b"x");
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b]);
    proxy.reset();
    sh(&format!("rm -r {}", m.path().join("junk").display()));
    assert!(!m.path().join("junk").exists());
    drop(m); // unmount sends what is still queued
    let batches = proxy.count("DeleteObjects");
    assert!(batches <= 10, "{batches} DeleteObjects");
    assert_eq!(proxy.count("DeleteObject"), 0);
    assert_eq!(proxy.count("HeadObject"), 0, "removing needs names, not metadata: {:?}", proxy.counts());
    let left = rt().block_on(c.list_objects_v2().bucket(&b).send()).unwrap();
    assert_eq!(left.key_count(), Some(0), "everything deleted");
}

#[test]
fn mv_files_and_directories_within_and_across_buckets() {
    let c = client();
    let (b1, b2) = (bucket("mv1"), bucket("mv2"));
    create_bucket(&c, &b1);
    create_bucket(&c, &b2);
    put(&c, &b1, "a.txt", "alpha\n");
    put(&c, &b1, "dir/x.txt", "x\n");
    put(&c, &b1, "dir/sub/y.txt", "y\n");
    put(&c, &b1, "over.txt", "old\n");
    let proxy = Proxy::start();
    let m = mount(&proxy, &["--bucket", &b1, "--bucket", &b2]);
    let (r1, r2) = (m.path().join(&b1), m.path().join(&b2));

    fs::rename(r1.join("a.txt"), r1.join("b.txt")).unwrap();
    assert_eq!(fs::read_to_string(r1.join("b.txt")).unwrap(), "alpha\n");
    assert!(!r1.join("a.txt").exists());
    fs::rename(r1.join("b.txt"), r1.join("over.txt")).unwrap();
    assert_eq!(fs::read_to_string(r1.join("over.txt")).unwrap(), "alpha\n", "rename replaces");
    sh(&format!("mv {} {}", r1.join("over.txt").display(), r2.join("moved.txt").display()));
    assert_eq!(fs::read_to_string(r2.join("moved.txt")).unwrap(), "alpha\n");
    // A multipart object (its copy gets a new ETag), read at once under its new name: reads
    // pin the copy's ETag, not the source's.
    let big = data(25 << 20, 3);
    fs::write(r1.join("big.bin"), &big).unwrap();
    assert_eq!(fs::metadata(r1.join("big.bin")).unwrap().len(), big.len() as u64);
    sh(&format!("mv {} {}", r1.join("big.bin").display(), r1.join("moved.bin").display()));
    assert!(fs::read(r1.join("moved.bin")).unwrap() == big, "moved.bin differs");
    fs::remove_file(r1.join("moved.bin")).unwrap();

    sh(&format!("mv {} {}", r1.join("dir").display(), r1.join("renamed").display()));
    assert_eq!(fs::read_to_string(r1.join("renamed/sub/y.txt")).unwrap(), "y\n");
    assert!(!r1.join("dir").exists());
    let listed: Vec<_> = fs::read_dir(&r1).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!listed.iter().any(|n| n == "dir"), "old name still listed: {listed:?}");
    sh(&format!("mv {} {}", r1.join("renamed").display(), r2.join("far").display()));
    assert_eq!(fs::read_to_string(r2.join("far/x.txt")).unwrap(), "x\n");

    // RENAME_NOREPLACE and RENAME_EXCHANGE, called as renameat2(2) (mv's options for them
    // depend on the coreutils version).
    fs::write(r2.join("keep.txt"), "keep\n").unwrap();
    let renameat2 = |from: &Path, to: &Path, flags: libc::c_uint| -> Option<i32> {
        let (from, to) = (cstr(from), cstr(to));
        // SAFETY: two valid C strings; AT_FDCWD with absolute paths.
        let r = unsafe {
            libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), flags)
        };
        (r != 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap())
    };
    assert_eq!(renameat2(&r2.join("moved.txt"), &r2.join("keep.txt"), libc::RENAME_NOREPLACE), Some(libc::EEXIST));
    assert_eq!(fs::read_to_string(r2.join("keep.txt")).unwrap(), "keep\n");
    assert!(r2.join("moved.txt").exists(), "the source stays");
    assert_eq!(renameat2(&r2.join("moved.txt"), &r2.join("keep.txt"), libc::RENAME_EXCHANGE), Some(libc::EINVAL));
    assert_eq!(fs::read_to_string(r2.join("keep.txt")).unwrap(), "keep\n", "nothing exchanged");
    // NOREPLACE onto a free name is a rename.
    assert_eq!(renameat2(&r2.join("moved.txt"), &r2.join("free.txt"), libc::RENAME_NOREPLACE), None);
    assert!(r2.join("free.txt").exists() && !r2.join("moved.txt").exists());
    fs::remove_file(r2.join("free.txt")).unwrap();
    fs::remove_file(r2.join("keep.txt")).unwrap();
    drop(m);
    assert_eq!(get(&c, &b2, "far/sub/y.txt"), b"y\n");
    let left = rt().block_on(c.list_objects_v2().bucket(&b1).send()).unwrap();
    assert_eq!(left.key_count(), Some(0), "{:?}", left.contents());
}

#[test]
fn random_writes_truncate_append_and_hard_links() {
    let c = client();
    let b = bucket("rw");
    create_bucket(&c, &b);
    let original = data(3 << 20, 1);
    put(&c, &b, "f.bin", original.clone());
    put(&c, &b, "log.txt", "line 1\n");
    put(&c, &b, "cut.txt", "0123456789");
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b]);

    let mut want = original.clone();
    {
        let mut f = fs::File::options().read(true).write(true).open(m.path().join("f.bin")).unwrap();
        for (off, byte) in [(2_000_000u64, 1u8), (10, 2), (3 << 20, 3), (1_048_576, 4)] {
            f.seek(SeekFrom::Start(off)).unwrap();
            f.write_all(&[byte; 1000]).unwrap();
            let end = off as usize + 1000;
            if want.len() < end {
                want.resize(end, 0);
            }
            want[off as usize..end].fill(byte);
        }
        let mut back = vec![0u8; 1000];
        f.seek(SeekFrom::Start(10)).unwrap();
        f.read_exact(&mut back).unwrap();
        assert_eq!(back, vec![2u8; 1000], "reads see the handle's own writes");
    }
    assert_eq!(get(&c, &b, "f.bin"), want);

    let mut f = fs::File::options().append(true).open(m.path().join("log.txt")).unwrap();
    f.write_all(b"line 2\n").unwrap();
    drop(f);
    assert_eq!(get(&c, &b, "log.txt"), b"line 1\nline 2\n");

    sh(&format!("truncate -s 4 {}", m.path().join("cut.txt").display()));
    assert_eq!(get(&c, &b, "cut.txt"), b"0123");
    let f = fs::File::options().write(true).open(m.path().join("cut.txt")).unwrap();
    f.set_len(6).unwrap();
    drop(f);
    assert_eq!(get(&c, &b, "cut.txt"), b"0123\0\0");
    fs::write(m.path().join("empty"), "").unwrap();
    assert_eq!(get(&c, &b, "empty"), b"");
    fs::write(m.path().join("photo.jpg"), "not really").unwrap();
    let head = rt().block_on(c.head_object().bucket(&b).key("photo.jpg").send()).unwrap();
    assert_eq!(head.content_type(), Some("image/jpeg"));

    // Files opened for writing bypass the page cache; shared mmap of them still works.
    {
        use std::os::fd::AsRawFd;
        let f = fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(m.path().join("mapped.bin"))
            .unwrap();
        f.set_len(3 * 4096).unwrap();
        // SAFETY: a fresh shared mapping of the whole file, written and unmapped here only.
        unsafe {
            let len = 3 * 4096;
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(p, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
            std::slice::from_raw_parts_mut(p as *mut u8, len).fill(b'm');
            assert_eq!(libc::msync(p, len, libc::MS_SYNC), 0);
            assert_eq!(libc::munmap(p, len), 0);
        }
        f.sync_all().unwrap();
    }
    assert_eq!(get(&c, &b, "mapped.bin"), vec![b'm'; 3 * 4096]);

    let err = fs::hard_link(m.path().join("log.txt"), m.path().join("hard")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    fs::create_dir(m.path().join("d")).unwrap();
    fs::write(m.path().join("d/f"), "x").unwrap();
    assert_eq!(fs::remove_dir(m.path().join("d")).unwrap_err().raw_os_error(), Some(libc::ENOTEMPTY));
    fs::remove_file(m.path().join("d/f")).unwrap();
    fs::remove_dir(m.path().join("d")).unwrap();
    assert!(!m.path().join("d").exists());
}

#[test]
fn a_failed_upload_is_an_error_from_close_and_loses_nothing() {
    let c = client();
    let b = bucket("fail");
    create_bucket(&c, &b);
    put(&c, &b, "small.txt", "old small\n");
    put(&c, &b, "large.bin", "old large\n");
    let proxy = Proxy::start();
    let cache = tempfile::tempdir().unwrap();
    // A metadata TTL far longer than the test: what the kernel caches is dropped on notice.
    // 500s are retried for the retry budget: one second keeps the test short.
    let cache_dir = cache.path().to_str().unwrap();
    let m = mount(&proxy, &[&b, "--cache-dir", cache_dir, "--metadata-ttl", "600", "--retry-budget", "1"]);
    assert_eq!(fs::read(m.path().join("small.txt")).unwrap(), b"old small\n");

    proxy.fail(Fault { op: "PutObject", bucket: None, status: 500, code: "InternalError" });
    let mut f = fs::File::create(m.path().join("small.txt")).unwrap();
    f.write_all(b"new small\n").unwrap();
    let err = close(f).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(get(&c, &b, "small.txt"), b"old small\n", "the old object is untouched");
    // A new file whose upload failed is not listed once closed: the listing shows what S3 holds.
    let mut f = fs::File::create(m.path().join("never.txt")).unwrap();
    f.write_all(b"never uploaded\n").unwrap();
    assert_eq!(close(f).unwrap_err().raw_os_error(), Some(libc::EIO));
    // (An empty file: no write makes the kernel drop the attributes the create gave it.)
    let err = close(fs::File::create(m.path().join("touched")).unwrap()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let names: Vec<_> = fs::read_dir(m.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!names.iter().any(|n| n == "never.txt"), "{names:?}");
    assert!(names.iter().any(|n| n == "small.txt"), "{names:?}");
    // Nor does the kernel keep answering for them from its caches (until the TTL): once the
    // last descriptor is closed (RELEASE comes after close returns), stat finds no new file and
    // a read gets the old object, not the pages written through the mount.
    let missing = |n: &str| fs::metadata(m.path().join(n)).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    let gone = || missing("never.txt") && missing("touched");
    let old = || fs::read(m.path().join("small.txt")).unwrap() == b"old small\n";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(gone() && old()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(missing("never.txt"), "{:?}", fs::metadata(m.path().join("never.txt")));
    assert!(missing("touched"), "{:?}", fs::metadata(m.path().join("touched")));
    assert_eq!(fs::read(m.path().join("small.txt")).unwrap(), b"old small\n");

    proxy.clear_faults();
    proxy.fail(Fault { op: "UploadPart", bucket: None, status: 503, code: "ServiceUnavailable" });
    let body = data(20 << 20, 3);
    let mut f = fs::File::create(m.path().join("large.bin")).unwrap();
    let r = f.write_all(&body).and_then(|_| close(f));
    let err = r.expect_err("close (or a write) reports the failed upload");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(get(&c, &b, "large.bin"), b"old large\n");
    let uploads = rt().block_on(c.list_multipart_uploads().bucket(&b).send()).unwrap();
    // The abort is sent in the background after the failure.
    std::thread::sleep(Duration::from_millis(500));
    let uploads2 = rt().block_on(c.list_multipart_uploads().bucket(&b).send()).unwrap();
    assert!(uploads2.uploads().is_empty(), "unfinished multipart upload aborted ({} before)", uploads.uploads().len());

    // The written bytes are kept in the cache directory, and the log says where.
    let kept: Vec<Vec<u8>> = files_under(cache.path()).into_iter().map(|p| fs::read(p).unwrap()).collect();
    assert!(kept.iter().any(|k| k == b"new small\n"), "small file kept");
    assert!(kept.iter().any(|k| k == b"never uploaded\n"), "new file kept");
    assert!(kept.contains(&body), "large file kept");
    assert!(m.log_text().contains("kept in"), "{}", m.log_text());
}

#[test]
fn buckets_at_the_root_and_a_name_recreated_while_its_delete_is_queued() {
    let c = client();
    let b = bucket("root");
    create_bucket(&c, &b);
    put(&c, &b, "again.txt", "first\n");
    let proxy = Proxy::start();
    let m = mount(&proxy, &[]);

    let newb = bucket("made");
    fs::create_dir(m.path().join(&newb)).unwrap();
    rt().block_on(c.head_bucket().bucket(&newb).send()).expect("mkdir at the root creates a bucket");
    fs::write(m.path().join(&newb).join("f"), "x").unwrap();
    assert_eq!(fs::remove_dir(m.path().join(&newb)).unwrap_err().raw_os_error(), Some(libc::ENOTEMPTY));
    fs::remove_file(m.path().join(&newb).join("f")).unwrap();
    fs::remove_dir(m.path().join(&newb)).unwrap();
    let gone = rt().block_on(c.head_bucket().bucket(&newb).send()).expect_err("rmdir at the root deletes the bucket");
    assert!(gone.into_service_error().is_not_found(), "the bucket is not found");

    // Delete, then write the same name before the batch goes out: the new file survives.
    let p = m.path().join(&b).join("again.txt");
    fs::remove_file(&p).unwrap();
    assert!(!p.exists(), "gone as soon as unlink returns");
    fs::write(&p, "second\n").unwrap();
    std::thread::sleep(Duration::from_millis(600)); // past the batcher's idle time
    assert_eq!(fs::read_to_string(&p).unwrap(), "second\n");
    drop(m);
    assert_eq!(get(&c, &b, "again.txt"), b"second\n");
}

#[test]
fn overwriting_an_object_does_not_download_it_first() {
    let c = client();
    let b = bucket("overwrite");
    create_bucket(&c, &b);
    put(&c, &b, "f.bin", data(3 << 20, 1));
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b]);
    let src = tempfile::NamedTempFile::new().unwrap();
    fs::write(src.path(), data(20 << 20, 2)).unwrap();
    fs::metadata(m.path().join("f.bin")).unwrap();
    proxy.reset();
    sh(&format!("cp {} {}", src.path().display(), m.path().join("f.bin").display()));
    assert_eq!(proxy.count("GetObject"), 0, "O_TRUNC reaches open: {:?}", proxy.counts());
    assert_eq!(proxy.count("PutObject"), 0, "no empty upload for the truncate: {:?}", proxy.counts());
    assert_eq!(proxy.count("CompleteMultipartUpload"), 1, "{:?}", proxy.counts());
    assert_eq!(proxy.count("CopyObject"), 0, "no copy to refresh the mtime afterwards: {:?}", proxy.counts());
    assert_eq!(get(&c, &b, "f.bin"), data(20 << 20, 2));
}

#[test]
fn names_s3_cannot_hold_get_posix_errnos_and_send_nothing() {
    let c = client();
    let b = bucket("names");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let m = mount(&proxy, &["--bucket", &b]);
    let root = m.path().join(&b);
    proxy.reset();
    let errno = |r: std::io::Result<()>| r.unwrap_err().raw_os_error();
    assert_eq!(errno(fs::write(root.join("n".repeat(256)), "x")), Some(libc::ENAMETOOLONG));
    assert_eq!(errno(fs::create_dir(root.join("d".repeat(256)))), Some(libc::ENAMETOOLONG));
    // 255 bytes is a name; a key past S3's 1,024 bytes is not.
    let mut deep = root.clone();
    for i in 0..4 {
        deep = deep.join(format!("{i}{}", "x".repeat(249)));
        fs::create_dir(&deep).unwrap();
    }
    fs::write(deep.join("y".repeat(20)), "fits: 1,020 bytes").unwrap();
    assert_eq!(errno(fs::write(deep.join("y".repeat(30)), "x")), Some(libc::ENAMETOOLONG));
    assert_eq!(errno(fs::create_dir(deep.join("z".repeat(30)))), Some(libc::ENAMETOOLONG));
    // At the bucket-list root a directory is a bucket: an invalid bucket name is EINVAL.
    assert_eq!(errno(fs::create_dir(m.path().join("ab"))), Some(libc::EINVAL));
    assert_eq!(errno(fs::create_dir(m.path().join("Upper_Case"))), Some(libc::EINVAL));
    assert_eq!(proxy.count("CreateBucket"), 0, "{:?}", proxy.counts());
    assert_eq!(proxy.count("PutObject"), 4 + 1, "the four markers and the file that fits: {:?}", proxy.counts());
    // Past S3's largest object (5 TiB): EFBIG, and no terabytes of zeros go up.
    let small = deep.join("y".repeat(20));
    proxy.reset();
    let f = fs::OpenOptions::new().write(true).open(&small).unwrap();
    assert_eq!(errno(f.set_len(6 << 40)), Some(libc::EFBIG));
    drop(f);
    let out = std::process::Command::new("truncate").arg("-s").arg("6T").arg(&small).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("too large"), "{out:?}");
    // (Opening for writing without O_TRUNC downloads the object; nothing goes up.)
    assert_eq!(proxy.count("PutObject") + proxy.count("UploadPart"), 0, "{:?}", proxy.counts());
    assert_eq!(fs::read_to_string(&small).unwrap(), "fits: 1,020 bytes");
}

#[test]
fn an_open_file_whose_name_is_removed_has_no_links_and_is_never_uploaded() {
    let c = client();
    let b = bucket("nlink");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b]);
    let path = m.path().join("tmpfile");
    let mut f = fs::File::create(&path).unwrap();
    f.write_all(b"scratch\n").unwrap();
    assert_eq!(f.metadata().unwrap().nlink(), 1);
    fs::remove_file(&path).unwrap();
    assert_eq!(f.metadata().unwrap().nlink(), 0, "fstat of an unlinked open file");
    f.write_all(b"more\n").unwrap();
    drop(f);
    let listed = rt().block_on(c.list_objects_v2().bucket(&b).send()).unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
    assert_eq!(proxy.count("PutObject"), 0, "{:?}", proxy.counts());
}

#[test]
fn a_file_removed_while_open_for_reading_reads_to_its_end_and_goes_at_close() {
    let c = client();
    let b = bucket("unlinkread");
    create_bucket(&c, &b);
    // Larger than the read-ahead window (8 parts), so most of it is fetched after the unlink.
    let body = data(24 << 20, 51);
    put(&c, &b, "movie.bin", body.clone());
    put(&c, &b, "again.bin", body.clone());
    put(&c, &b, "c.bin", body.clone());
    put(&c, &b, "dir/e.bin", body.clone());
    let proxy = Proxy::start();
    // Past the page cache, in 1 MiB parts: the reads after the unlink reach S3.
    let m = mount(&proxy, &[&b, "--direct-read-size", "1", "--read-part-size", "1"]);
    // Reads 1 MiB of `name`, makes `change`, waits past a delete batch, reads the rest, closes;
    // then S3 must lose `gone` (the object the reader read) within a bound.
    let read_across = |name: &str, gone: &str, change: &dyn Fn()| {
        let mut f = fs::File::open(m.path().join(name)).unwrap();
        let mut got = vec![0u8; 1 << 20];
        f.read_exact(&mut got).unwrap();
        change();
        std::thread::sleep(Duration::from_millis(300)); // a delete would have been sent by now
        assert!(exists(&c, &b, gone), "{gone}: kept while a reader has it open");
        f.read_to_end(&mut got).unwrap_or_else(|e| panic!("{name}: the reader reads on: {e}"));
        assert!(got == body, "{name}: the bytes are the object's");
        assert_eq!(f.metadata().unwrap().nlink(), if name == "movie.bin" { 0 } else { 1 });
        drop(f);
        let deadline = Instant::now() + Duration::from_secs(10);
        while exists(&c, &b, gone) {
            assert!(Instant::now() < deadline, "{gone}: deleted once the reader closed");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let path = m.path().join("movie.bin");
    read_across("movie.bin", "movie.bin", &|| {
        fs::remove_file(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert!(!names_in(m.path()).contains(&"movie.bin".to_string()));
    });
    // Renamed while open for reading, or its folder renamed: the reader reads on (from the
    // source, deleted at close).
    read_across("c.bin", "c.bin", &|| fs::rename(m.path().join("c.bin"), m.path().join("d.bin")).unwrap());
    assert!(fs::read(m.path().join("d.bin")).unwrap() == body);
    read_across("dir/e.bin", "dir/e.bin", &|| fs::rename(m.path().join("dir"), m.path().join("moved")).unwrap());
    assert!(fs::read(m.path().join("moved/e.bin")).unwrap() == body);

    // Removed while open, then written again under the same name: the reader's close leaves
    // the new object alone.
    let path = m.path().join("again.bin");
    let f = fs::File::open(&path).unwrap();
    fs::remove_file(&path).unwrap();
    fs::write(&path, "new\n").unwrap();
    drop(f);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&c, &b, "again.bin"), b"new\n");
    assert_eq!(fs::read(&path).unwrap(), b"new\n");
}

fn cstr(p: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}
