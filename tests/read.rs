//! Read-only behaviour of a real mount against a real S3-compatible server (moto) on loopback:
//! browsing with real tools, exact reads, request counts, errors, start-up checks, shutdown.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use common::*;

#[test]
fn browse_and_copy_a_tree_out_with_real_tools() {
    let c = client();
    let b = bucket("tree");
    create_bucket(&c, &b);
    put(&c, &b, "top.txt", "top\n");
    put(&c, &b, "empty-file", "");
    put(&c, &b, "docs/readme.md", "# readme\n");
    put(&c, &b, "docs/deep/er/file.bin", data(70_000, 1));
    put(&c, &b, "marker-only/", "");
    put(&c, &b, "implicit/child.txt", "child\n");
    // Odd keys: hidden, or shadowed by a directory of the same name.
    put(&c, &b, "x", "shadowed object\n");
    put(&c, &b, "x/y", "y\n");
    put(&c, &b, "odd//double", "hidden\n");
    put(&c, &b, &"n".repeat(256), "too long\n");
    put(&c, &b, "dots/./hidden", "hidden\n");
    put_meta(&c, &b, "stamped", "s\n", &[("mtime", "1600000000"), ("mode", "33216")]);

    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b]);
    let root = m.path();

    // Looked up first: HeadObject brings the mtime and mode metadata.
    let st = fs::metadata(root.join("stamped")).unwrap();
    assert_eq!(st.modified().unwrap(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000));
    assert_eq!(st.mode() & 0o7777, 0o700);

    assert_eq!(
        names_in(root),
        ["docs", "dots", "empty-file", "implicit", "marker-only", "odd", "stamped", "top.txt", "x"]
    );
    assert!(fs::metadata(root.join("x")).unwrap().is_dir(), "the directory x/ wins over the object x");
    assert_eq!(fs::read_dir(root.join("odd")).unwrap().count(), 0, "odd//double has an empty segment: hidden");
    assert_eq!(fs::read_dir(root.join("dots")).unwrap().count(), 0, "dots/./hidden is hidden");
    assert!(fs::read_dir(root.join("marker-only")).unwrap().next().is_none());

    // The listing did not undo what HeadObject taught about this version of the object.
    let st = fs::metadata(root.join("stamped")).unwrap();
    assert_eq!(st.modified().unwrap(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000));
    assert_eq!(st.mode() & 0o7777, 0o700);
    assert!(
        sh(&format!("ls -l --time-style=+%s {}", root.display()))
            .contains("-rwx------ 1 root root 2 1600000000 stamped")
    );
    assert_eq!(fs::metadata(root.join("top.txt")).unwrap().mode() & 0o7777, 0o644);
    assert_eq!(fs::metadata(root.join("docs")).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(fs::metadata(root.join("docs/deep/er/file.bin")).unwrap().len(), 70_000);

    let found = sh(&format!("cd {} && find . | sort", root.display()));
    let expect = ".\n./docs\n./docs/deep\n./docs/deep/er\n./docs/deep/er/file.bin\n./docs/readme.md\n./dots\n./empty-file\n\
                  ./implicit\n./implicit/child.txt\n./marker-only\n./odd\n./stamped\n./top.txt\n./x\n./x/y\n";
    assert_eq!(found, expect);
    let ls = sh(&format!("ls -l {}", root.join("docs").display()));
    assert!(ls.contains("readme.md") && ls.contains(" 9 "), "{ls}");
    let du = sh(&format!("du -sk {}", root.display()));
    let kib: u64 = du.split_whitespace().next().unwrap().parse().unwrap();
    assert!((69..=120).contains(&kib), "du says {kib} KiB");
    assert_eq!(sh(&format!("cat {}", root.join("docs/readme.md").display())), "# readme\n");
    assert_eq!(sh(&format!("stat -c %s {}", root.join("empty-file").display())), "0\n");

    // cp -r out, then diff -r against the same tree built locally.
    let out = tempfile::tempdir().unwrap();
    sh(&format!("cp -r {}/. {}/copy", root.display(), out.path().display()));
    let want = out.path().join("want");
    for (p, body) in [
        ("top.txt", b"top\n".to_vec()),
        ("empty-file", vec![]),
        ("docs/readme.md", b"# readme\n".to_vec()),
        ("docs/deep/er/file.bin", data(70_000, 1)),
        ("implicit/child.txt", b"child\n".to_vec()),
        ("x/y", b"y\n".to_vec()),
        ("stamped", b"s\n".to_vec()),
    ] {
        let f = want.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, body).unwrap();
    }
    for d in ["marker-only", "odd", "dots"] {
        fs::create_dir_all(want.join(d)).unwrap();
    }
    sh(&format!("diff -r {} {}/copy", want.display(), out.path().display()));
}

#[test]
fn bucket_list_root_and_named_buckets() {
    let c = client();
    let (b1, b2) = (bucket("one"), bucket("two"));
    create_bucket(&c, &b1);
    create_bucket(&c, &b2);
    put(&c, &b1, "a.txt", "from one\n");
    put(&c, &b2, "sub/b.txt", "from two\n");
    let proxy = Proxy::start();

    let all = mount(&proxy, &[]);
    let names = names_in(all.path());
    assert!(names.contains(&b1) && names.contains(&b2), "{names:?}");
    assert_eq!(fs::read_to_string(all.path().join(&b2).join("sub/b.txt")).unwrap(), "from two\n");
    drop(all);

    proxy.reset();
    let named = mount(&proxy, &["--bucket", &b1]);
    assert_eq!(names_in(named.path()), std::slice::from_ref(&b1));
    assert_eq!(fs::read_to_string(named.path().join(&b1).join("a.txt")).unwrap(), "from one\n");
    assert_eq!(proxy.count("ListBuckets"), 0, "named buckets need no ListBuckets");

    let prefix = mount(&proxy, &[&format!("s3://{b2}/sub/")]);
    assert_eq!(fs::read_to_string(prefix.path().join("b.txt")).unwrap(), "from two\n");
}

#[test]
fn ls_l_of_10000_objects_with_metadata_from_listings_sends_10_listings_and_no_head() {
    let c = client();
    let b = bucket("big-dir");
    create_bucket(&c, &b);
    put_many(&c, &b, (0..10_000).map(|i| format!("many/f{i:05}.txt")).collect(), b"0123456789");
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b, "--metadata-from", "listing"]);
    proxy.reset();
    let out = sh(&format!("ls -l {}", m.path().join("many").display()));
    assert_eq!(out.lines().filter(|l| l.ends_with(".txt")).count(), 10_000);
    assert!(out.lines().filter(|l| l.ends_with(".txt")).all(|l| l.contains(" 10 ")));
    assert_eq!(proxy.count("ListObjectsV2"), 10 + 1, "10 pages, plus the bucket's listing that looked up `many`");
    assert_eq!(proxy.count("HeadObject"), 0, "a directory found in a listing needs no HeadObject");
    // A second `ls -l` inside the metadata TTL costs nothing.
    proxy.reset();
    sh(&format!("ls -l {} > /dev/null", m.path().join("many").display()));
    assert_eq!(proxy.count("ListObjectsV2") + proxy.count("HeadObject"), 0, "{:?}", proxy.counts());
}

#[test]
fn find_over_50_folders_of_200_lists_each_folder_once_and_the_next_ones_ahead() {
    let c = client();
    let b = bucket("walk");
    create_bucket(&c, &b);
    put_many(&c, &b, (0..10_000).map(|i| format!("tree/d{:02}/f{:03}", i / 200, i % 200)).collect(), b"x");
    let proxy = Proxy::start();
    // The second find below must fall within the TTL also on a slow machine.
    let m = mount(&proxy, &[&b, "--metadata-ttl", "120"]);
    // Each listing takes a while to answer, as over a real network.
    proxy.delay("ListObjectsV2", 100);
    proxy.reset();
    let out = sh(&format!("find {}", m.path().join("tree").display()));
    assert_eq!(out.lines().count(), 1 + 50 + 10_000, "the tree, its folders and files");
    let lists = proxy.count("ListObjectsV2");
    // ceil(keys / 1,000) pages would do for a flat listing; by folder it is one page each, plus
    // the bucket's page that finds `tree`, and `tree`'s own.
    assert!(lists <= 50 + 2, "{lists} listings: a folder listed twice? {:?}", proxy.counts());
    assert!(lists > 50, "{lists}");
    assert!(
        proxy.peak("ListObjectsV2") >= 4,
        "the folders ahead were listed at once: peak {}",
        proxy.peak("ListObjectsV2")
    );
    assert_eq!(proxy.count("HeadObject"), 0, "find needs no file metadata");
    // Again within the TTL: nothing is sent.
    proxy.reset();
    sh(&format!("find {} > /dev/null", m.path().join("tree").display()));
    assert_eq!(proxy.count("ListObjectsV2"), 0, "{:?}", proxy.counts());
}

#[test]
fn a_walk_leaves_at_most_the_inode_budget_behind_and_everything_still_works() {
    let c = client();
    let b = bucket("budget");
    create_bucket(&c, &b);
    put_many(&c, &b, (0..1_000).map(|i| format!("t/d{}/f{:03}", i / 250, i % 250)).collect(), b"x");
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b, "--inode-budget", "100", "--metadata-ttl", "1"]);
    let keep = m.path().join("t/d0/f000");
    let mut open = fs::File::open(&keep).unwrap();
    let out = sh(&format!("find {} -type f", m.path().join("t").display()));
    assert_eq!(out.lines().count(), 1_000);
    let held = number_after(&status_of(m.path()), "inodes the kernel holds: ");
    assert!(held > 100, "find handed the kernel every name: {held}");
    // Unused for the TTL, the names find saw are forgotten: the kernel is asked to drop them,
    // and its FORGETs remove them from the table.
    if let Err(held) = inodes_fall_to(&m, 100, Duration::from_secs(30)) {
        panic!("still {held} inodes");
    }
    // The open file was left alone (a dropped entry would read "(deleted)" here); it reads on,
    // and what was forgotten is looked up again.
    use std::os::fd::AsRawFd;
    let link = fs::read_link(format!("/proc/self/fd/{}", open.as_raw_fd())).unwrap();
    assert_eq!(link, keep, "the open file's name");
    let mut s = String::new();
    open.read_to_string(&mut s).unwrap();
    assert_eq!(s, "x");
    assert_eq!(fs::read(m.path().join("t/d3/f249")).unwrap(), b"x");
    assert_eq!(sh(&format!("find {} -type f", m.path().join("t").display())).lines().count(), 1_000);
    assert_eq!(fs::metadata(&keep).unwrap().len(), 1);
}

#[test]
fn folders_count_in_the_inode_budget_but_a_working_directory_stays() {
    let c = client();
    let b = bucket("budgetdirs");
    create_bucket(&c, &b);
    put_many(&c, &b, (0..300).map(|i| format!("t/d{i:03}/f")).collect(), b"x");
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b, "--inode-budget", "100", "--metadata-ttl", "1"]);
    let t = m.path().join("t");
    assert_eq!(sh(&format!("find {} -type f", t.display())).lines().count(), 300);
    // A shell standing in one folder, and one folder open (as a file manager keeps it).
    let here = t.join("d007");
    let mut shell = std::process::Command::new("sleep").arg("120").current_dir(&here).spawn().unwrap();
    let open_dir = fs::File::open(t.join("d123")).unwrap();
    let held = number_after(&status_of(m.path()), "inodes the kernel holds: ");
    assert!(held > 100, "find handed the kernel files and folders: {held}");
    // Files go first; then the folders they emptied, but not the ones in use.
    if let Err(held) = inodes_fall_to(&m, 100, Duration::from_secs(40)) {
        shell.kill().unwrap();
        panic!("still {held} inodes");
    }
    let cwd = fs::read_link(format!("/proc/{}/cwd", shell.id())).unwrap();
    shell.kill().unwrap();
    shell.wait().unwrap();
    assert_eq!(cwd, here, "the shell's working directory was left in place");
    use std::os::fd::AsRawFd;
    let link = fs::read_link(format!("/proc/self/fd/{}", open_dir.as_raw_fd())).unwrap();
    assert_eq!(link, t.join("d123"), "the open folder was left in place");
    drop(open_dir);
    assert_eq!(sh(&format!("cd {} && pwd -P && ls", here.display())), format!("{}\nf\n", here.display()));
    assert_eq!(sh(&format!("find {} -type f", t.display())).lines().count(), 300);
}

#[test]
fn reads_are_exact_sequential_and_random_with_bounded_memory() {
    let c = client();
    let b = bucket("reads");
    create_bucket(&c, &b);
    // Larger than the daemon's whole peak may be: memory is bounded by the read-ahead budget
    // (16 MiB here), not by the file.
    let body = data(120 << 20, 7);
    put(&c, &b, "big.bin", body.clone());
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b, "--read-ahead-memory", "16"]);
    let path = m.path().join("big.bin");

    proxy.reset();
    let got = fs::read(&path).unwrap();
    assert!(got == body, "sequential read differs");
    let gets = proxy.count("GetObject");
    assert!(gets <= 24, "120 MiB read in {gets} GetObject requests (parts grow to 8 MiB)");
    assert_eq!(proxy.count("HeadObject"), 1, "the lookup's HeadObject; open uses its ETag");

    let mut f = fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; 100_000];
    for (i, off) in [30_000_000u64, 5, 39_000_000, 12_345_678, 41_943_000].into_iter().enumerate() {
        f.seek(SeekFrom::Start(off)).unwrap();
        let n = f.read(&mut buf).unwrap();
        let end = (off as usize + 100_000).min(body.len());
        assert_eq!(&buf[..n], &body[off as usize..end], "read {i} at {off}");
    }
    let kib = m.peak_rss_kib();
    assert!(kib < 100 * 1024, "daemon peak RSS {kib} KiB, for a file of 120 MiB");
}

#[test]
fn small_files_stay_in_the_page_cache_large_ones_are_read_past_it() {
    let c = client();
    let b = bucket("pagecache");
    create_bucket(&c, &b);
    let (small, large) = (data(512 << 10, 1), data(3 << 20, 2));
    put(&c, &b, "small", small.clone());
    put(&c, &b, "large", large.clone());
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b, "--direct-read-size", "1"]);
    let (sp, lp) = (m.path().join("small"), m.path().join("large"));
    assert!(fs::read(&sp).unwrap() == small);
    assert!(fs::read(&lp).unwrap() == large);

    proxy.reset();
    assert!(fs::read(&sp).unwrap() == small);
    assert_eq!(proxy.count("GetObject"), 0, "read again, a small file comes from the page cache");
    assert!(fs::read(&lp).unwrap() == large);
    let gets = proxy.count("GetObject");
    assert!(gets >= 1, "a file of --direct-read-size or more is read past the page cache: {gets} GetObject");

    // Shared read-only mmap of a file read directly still works (the kernel fills its pages).
    {
        use std::os::fd::AsRawFd;
        let f = fs::File::open(&lp).unwrap();
        let len = large.len();
        // SAFETY: a fresh read-only mapping of the whole file, read and unmapped here only.
        unsafe {
            let p = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0);
            assert_ne!(p, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
            let mapped = std::slice::from_raw_parts(p as *const u8, len);
            assert!(mapped == &large[..], "mmap of a directly read file differs");
            assert_eq!(libc::munmap(p, len), 0);
        }
    }
}

#[test]
fn an_open_after_another_client_overwrote_the_file_reads_the_new_bytes() {
    let c = client();
    let b = bucket("newer");
    create_bucket(&c, &b);
    put(&c, &b, "f.txt", "version one\n");
    put(&c, &b, "g.txt", "listed one\n");
    let proxy = Proxy::start();
    // Attributes (with the ETag) are trusted for ten minutes.
    let m = mount(&proxy, &[&b, "--metadata-ttl", "600"]);
    let path = m.path().join("f.txt");
    assert_eq!(fs::metadata(&path).unwrap().len(), 12);
    put(&c, &b, "f.txt", "version two\n");
    // The open trusts the old ETag; the first read finds the object changed, looks again and
    // reads the new version instead of failing with ESTALE.
    assert_eq!(fs::read_to_string(&path).unwrap(), "version two\n");
    assert_eq!(fs::read_to_string(&path).unwrap(), "version two\n", "and so does the next open");
    // The same when a listing came first (ls -l: the ETag from the listing).
    let names: Vec<_> = fs::read_dir(m.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.iter().any(|n| n == "g.txt"), "{names:?}");
    assert_eq!(fs::metadata(m.path().join("g.txt")).unwrap().len(), 11);
    put(&c, &b, "g.txt", "listed two\n");
    assert_eq!(fs::read_to_string(m.path().join("g.txt")).unwrap(), "listed two\n");
}

#[test]
fn a_slow_listing_is_fresh_for_the_ttl_after_its_answer_arrives() {
    let c = client();
    let b = bucket("slowlist");
    create_bucket(&c, &b);
    put(&c, &b, "a.txt", "a\n");
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b, "--metadata-ttl", "2", "--metadata-from", "listing"]);
    // Each listing answer takes 3 s, longer than the 2 s TTL.
    proxy.delay("ListObjectsV2", 3000);
    proxy.reset();
    let names = || fs::read_dir(m.path()).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>();
    assert_eq!(names(), ["a.txt"]);
    let first = proxy.count("ListObjectsV2");
    assert_eq!(names(), ["a.txt"]);
    assert_eq!(proxy.count("ListObjectsV2"), first, "the second ls right after is answered from the listing");
}

#[test]
fn object_replaced_while_open_gives_estale_not_mixed_bytes() {
    let c = client();
    let b = bucket("stale");
    create_bucket(&c, &b);
    put(&c, &b, "f", data(4 << 20, 3));
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b, "--read-part-size", "1"]);
    let mut f = fs::File::open(m.path().join("f")).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact(&mut buf).unwrap();
    put(&c, &b, "f", data(4 << 20, 4));
    f.seek(SeekFrom::Start(3 << 20)).unwrap();
    let err = f.read(&mut buf).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ESTALE), "{err}");
}

#[test]
fn server_errors_are_eio_and_a_denied_bucket_is_eacces() {
    let c = client();
    let (ok, denied) = (bucket("fine"), bucket("denied"));
    create_bucket(&c, &ok);
    create_bucket(&c, &denied);
    put(&c, &ok, "a.txt", "fine\n");
    put(&c, &ok, "broken.txt", "never read\n");
    put(&c, &ok, "unseen.txt", "listed, never looked up\n");
    put(&c, &ok, "sub/deep.txt", "in a folder not listed yet\n");
    put(&c, &denied, "secret.txt", "no\n");
    let proxy = Proxy::start();
    // Server errors are retried for the retry budget: a short one keeps the test short.
    let m = mount(&proxy, &["--bucket", &ok, "--bucket", &denied, "--retry-budget", "1"]);
    for op in ["ListObjectsV2", "HeadObject", "GetObject"] {
        proxy.fail(Fault { op, bucket: Some(denied.clone()), status: 403, code: "AccessDenied" });
    }
    let err = fs::read_dir(m.path().join(&denied)).and_then(|mut d| d.next().unwrap()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    assert_eq!(fs::read_to_string(m.path().join(&ok).join("a.txt")).unwrap(), "fine\n");

    let broken = m.path().join(&ok).join("broken.txt");
    assert!(fs::metadata(&broken).is_ok());
    proxy.fail(Fault { op: "GetObject", bucket: Some(ok.clone()), status: 500, code: "InternalError" });
    let err = fs::read(&broken).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "a 500 is EIO, never ENOENT: {err}");
    // A listed file's lookup needs its metadata: HeadObject fails.
    proxy.fail(Fault { op: "HeadObject", bucket: Some(ok.clone()), status: 500, code: "InternalError" });
    let err = fs::metadata(m.path().join(&ok).join("unseen.txt")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    proxy.clear_faults();
    // The listing that answers lookups in a folder fails.
    proxy.fail(Fault { op: "ListObjectsV2", bucket: Some(ok.clone()), status: 500, code: "InternalError" });
    let err = fs::metadata(m.path().join(&ok).join("sub/not-seen-before")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    proxy.clear_faults();
    assert_eq!(fs::read_to_string(&broken).unwrap(), "never read\n", "the mount keeps working");
}

fn run_fail(args: &[&str]) -> (i32, String) {
    let out = s3drive().args(args).stdin(Stdio::null()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn startup_errors_are_one_clear_line_and_mount_nothing() {
    let c = client();
    let b = bucket("startup");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let ep = proxy.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().to_str().unwrap();

    let dead = format!("http://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    // Start-up failures: exit 1 and one line that says why.
    let mut runs = Vec::new();
    let nonexistent: &[&str] = &["--endpoint-url", &ep, "--force-path-style", &b, "/nonexistent/mnt"];
    runs.push((run_fail(nonexistent), "mount point /nonexistent/mnt"));
    runs.push((run_fail(&["--endpoint-url", &dead, "--force-path-style", mp]), "cannot reach the S3 endpoint"));
    let missing: &[&str] = &["--endpoint-url", &ep, "--force-path-style", "no-such-bucket-here", mp];
    runs.push((run_fail(missing), "bucket \"no-such-bucket-here\" does not exist"));
    proxy.fail(Fault { op: "ListBuckets", bucket: None, status: 403, code: "InvalidAccessKeyId" });
    runs.push((run_fail(&["--endpoint-url", &ep, "--force-path-style", mp]), "credentials were rejected"));
    for ((code, err), says) in &runs {
        assert_eq!(*code, 1, "{says}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
        assert!(err.contains(says), "{says}: {err}");
    }
    // Usage errors: exit 2, and the first line names the problem: one line of ours, or clap's
    // "error:" line, which its usage hint follows.
    let usage = [(run_fail(&["--no-such-flag", mp]), "--no-such-flag"), (run_fail(&["--file-mode", "9", mp]), "octal")];
    for ((code, err), says) in &usage {
        assert_eq!(*code, 2, "{err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(says), "{says}: {err}");
        assert!(first.starts_with("error:") || err.trim_end().lines().count() == 1, "{err:?}");
    }
    assert!(!is_mounted(dir.path()), "nothing is left mounted");
    for ((_, err), _) in runs.iter().chain(&usage) {
        assert!(!err.contains("AWS_SECRET") && !err.contains("test:"), "no credential in output: {err}");
    }
}

#[test]
fn sigterm_and_sigint_unmount_cleanly() {
    let c = client();
    let b = bucket("signals");
    create_bucket(&c, &b);
    put(&c, &b, "f", "x");
    let proxy = Proxy::start();
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut m = mount(&proxy, &[&b]);
        assert_eq!(fs::read_to_string(m.path().join("f")).unwrap(), "x");
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(m.pid() as i32, sig) };
        let st = m.child.as_mut().unwrap().wait().unwrap();
        assert!(st.success(), "daemon exit after signal {sig}: {st}\n{}", m.log_text());
        assert!(!is_mounted(m.path()));
        m.child = None;
    }
}

#[test]
fn read_only_mount_refuses_changes_with_erofs() {
    let c = client();
    let b = bucket("ro");
    create_bucket(&c, &b);
    put(&c, &b, "f", "x");
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b, "--read-only"]);
    let err = fs::write(m.path().join("new"), "y").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let err = fs::remove_file(m.path().join("f")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    assert_eq!(get(&c, &b, "f"), b"x");
}
