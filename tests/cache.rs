//! The data cache (`--data-cache DIR`): a second read (a new process, another mount sharing the
//! directory, after a remount) sends no GetObject and returns the right bytes; an object replaced
//! by another client is read anew after the TTL; a block damaged on disk is detected and fetched
//! again, and cached data still reads while the server fails; the cache stays within its size.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const MIB: usize = 1 << 20;

/// Block files in the cache directory once there are at least `n` (written in the background).
fn wait_for_blocks(cache: &Path, n: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let files = files_under(&cache.join("blocks"));
        if files.len() >= n {
            return files;
        }
        assert!(Instant::now() < deadline, "{} of {n} blocks in the cache", files.len());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A mount reading through the data cache in `cache` (its own staging directory), with `extra`
/// arguments.
fn cached(proxy: &Proxy, b: &str, cache: &Path, extra: &[&str]) -> (Mount, tempfile::TempDir) {
    let staging = tempfile::tempdir().unwrap();
    let mut args = vec![b, "--data-cache", cache.to_str().unwrap(), "--cache-dir", staging.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    (mount(proxy, &args), staging)
}

/// `cmp` (a process of its own) of the mounted file with the bytes expected.
fn same(mounted: &Path, expected: &[u8]) {
    let want = tempfile::NamedTempFile::new().unwrap();
    fs::write(want.path(), expected).unwrap();
    sh(&format!("cmp '{}' '{}'", mounted.display(), want.path().display()));
}

#[test]
fn second_reads_send_no_get_in_a_new_process_another_mount_and_after_a_remount() {
    let c = client();
    let b = bucket("dcache");
    create_bucket(&c, &b);
    let big = data(3 * MIB + 100_000, 1);
    put(&c, &b, "big.bin", big.clone());
    let small: Vec<Vec<u8>> = (0..10).map(|i| data(10_000 + i, i as u64 + 10)).collect();
    for (i, d) in small.iter().enumerate() {
        put(&c, &b, &format!("small/{i}.txt"), d.clone());
    }
    let blocks = 4 + small.len();
    let proxy = Proxy::start();
    let cache = tempfile::tempdir().unwrap();
    // big.bin is read past the page cache (direct I/O), as every file of 64 MiB and more is by
    // default: each read reaches the daemon.
    let (mut a, _sa) = cached(&proxy, &b, cache.path(), &["--direct-read-size", "1"]);
    same(&a.path().join("big.bin"), &big);
    for (i, d) in small.iter().enumerate() {
        same(&a.path().join(format!("small/{i}.txt")), d);
    }
    assert!(proxy.count("GetObject") > small.len() as u64);
    let files = wait_for_blocks(cache.path(), blocks);
    assert_eq!(files.len(), blocks, "{files:?}");
    for f in &files {
        assert_eq!(fs::metadata(f).unwrap().mode() & 0o777, 0o600, "{}", f.display());
    }
    assert_eq!(fs::metadata(cache.path()).unwrap().mode() & 0o777, 0o700);

    // A new process on the same mount.
    proxy.reset();
    same(&a.path().join("big.bin"), &big);
    assert_eq!(proxy.count("GetObject"), 0);

    // Another mount sharing the directory, at the same time (its own daemon and index).
    let (mut other, _so) = cached(&proxy, &b, cache.path(), &[]);
    same(&other.path().join("big.bin"), &big);
    for (i, d) in small.iter().enumerate() {
        same(&other.path().join(format!("small/{i}.txt")), d);
    }
    assert_eq!(proxy.count("GetObject"), 0, "{:?}", proxy.counts());
    other.unmount();
    a.unmount();

    // After a remount.
    proxy.reset();
    let (m, _sm) = cached(&proxy, &b, cache.path(), &[]);
    same(&m.path().join("big.bin"), &big);
    for (i, d) in small.iter().enumerate() {
        same(&m.path().join(format!("small/{i}.txt")), d);
    }
    assert_eq!(proxy.count("GetObject"), 0, "{:?}", proxy.counts());
    let status = status_of(m.path());
    assert!(status.contains(&format!("data cache: {}", cache.path().display())), "{status}");
    assert!(status.contains(&format!("hits: {blocks} blocks of {blocks} looked for (100%)")), "{status}");
}

#[test]
fn an_object_replaced_by_another_client_is_read_anew_after_the_ttl() {
    let c = client();
    let b = bucket("dcache-new");
    create_bucket(&c, &b);
    let old = data(2 * MIB, 1);
    put(&c, &b, "f.bin", old.clone());
    let proxy = Proxy::start();
    let cache = tempfile::tempdir().unwrap();
    // Direct reads: every read reaches the daemon (the page cache would answer the last one).
    let (mut m, _s) = cached(&proxy, &b, cache.path(), &["--metadata-ttl", "1", "--direct-read-size", "1"]);
    same(&m.path().join("f.bin"), &old);
    wait_for_blocks(cache.path(), 2);

    // Same size, other bytes: only the ETag tells them apart.
    let new = data(2 * MIB, 2);
    put(&c, &b, "f.bin", new.clone());
    std::thread::sleep(Duration::from_millis(1500));
    proxy.reset();
    same(&m.path().join("f.bin"), &new);
    assert!(proxy.count("GetObject") >= 1);
    // Both versions' blocks are there now; the old ones are never served for the new ETag:
    // this read comes from the data cache (no GET) and has the new bytes.
    wait_for_blocks(cache.path(), 4);
    proxy.reset();
    same(&m.path().join("f.bin"), &new);
    assert_eq!(proxy.count("GetObject"), 0, "{:?}", proxy.counts());
    // Also in a new mount sharing the data cache (an empty page cache, its own index).
    m.unmount();
    let (m, _s) = cached(&proxy, &b, cache.path(), &["--direct-read-size", "1"]);
    proxy.reset();
    same(&m.path().join("f.bin"), &new);
    assert_eq!(proxy.count("GetObject"), 0, "{:?}", proxy.counts());
}

#[test]
fn a_damaged_block_is_detected_and_fetched_again() {
    let c = client();
    let b = bucket("dcache-bad");
    create_bucket(&c, &b);
    let body = data(3 * MIB, 3);
    put(&c, &b, "f.bin", body.clone());
    put(&c, &b, "other.bin", data(MIB, 9));
    let proxy = Proxy::start();
    let cache = tempfile::tempdir().unwrap();
    let (m, _s) = cached(&proxy, &b, cache.path(), &["--direct-read-size", "1", "--retry-budget", "2"]);
    same(&m.path().join("f.bin"), &body);
    let files = wait_for_blocks(cache.path(), 3);

    // One byte of every block's data changed on disk, as a failing disk would.
    for f in &files {
        let mut bytes = fs::read(f).unwrap();
        let at = bytes.len() - 1000;
        bytes[at] ^= 0x40;
        fs::write(f, bytes).unwrap();
    }
    proxy.reset();
    same(&m.path().join("f.bin"), &body);
    assert!(proxy.count("GetObject") >= 1);
    let status = status_of(m.path());
    assert!(status.contains("damaged and fetched again: 3"), "{status}");
    assert!(m.log_text().contains("failed its check"), "{}", m.log_text());

    // Cached again, whole: the next read is from the cache.
    let deadline = Instant::now() + Duration::from_secs(30);
    while number_after(&status_of(m.path()), "\n  written: ") < 6 {
        assert!(Instant::now() < deadline, "{}", status_of(m.path()));
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.reset();
    same(&m.path().join("f.bin"), &body);
    assert_eq!(proxy.count("GetObject"), 0);

    // The server now fails every GET: after a listing, what is cached still reads right; what
    // is not fails with EIO once the retry budget is spent, never with wrong bytes.
    proxy.fail(Fault { op: "GetObject", bucket: Some(b.clone()), status: 500, code: "InternalError" });
    sh(&format!("ls -l {} > /dev/null", m.path().display()));
    same(&m.path().join("f.bin"), &body);
    let err = fs::read(m.path().join("other.bin")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
}

#[test]
fn files_written_through_the_mount_are_read_back_from_the_cache() {
    let c = client();
    let b = bucket("dcache-write");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let cache = tempfile::tempdir().unwrap();
    let body = data(2 * MIB + 5, 4);
    let src = tempfile::NamedTempFile::new().unwrap();
    fs::write(src.path(), &body).unwrap();
    let (mut m, _s) = cached(&proxy, &b, cache.path(), &["--direct-read-size", "1"]);
    sh(&format!("cp '{}' '{}/w.bin'", src.path().display(), m.path().display()));
    // A file rewritten after its first upload, while still open: only what was uploaded last
    // is cached under its version.
    {
        use std::io::{Seek, Write};
        let mut f =
            fs::OpenOptions::new().write(true).create(true).truncate(true).open(m.path().join("r.bin")).unwrap();
        f.write_all(&data(MIB, 5)).unwrap();
        f.sync_all().unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.write_all(&data(MIB, 6)).unwrap();
        close(f).unwrap();
    }
    assert_eq!(get(&c, &b, "r.bin"), data(MIB, 6));
    wait_for_blocks(cache.path(), 4);
    m.unmount();

    proxy.reset();
    let (m, _s) = cached(&proxy, &b, cache.path(), &[]);
    same(&m.path().join("w.bin"), &body);
    same(&m.path().join("r.bin"), &data(MIB, 6));
    assert_eq!(proxy.count("GetObject"), 0, "{:?}", proxy.counts());
}

#[test]
fn the_cache_stays_within_its_size() {
    let c = client();
    let b = bucket("dcache-size");
    create_bucket(&c, &b);
    let files: Vec<Vec<u8>> = (0..8).map(|i| data(1_000_000, 20 + i)).collect();
    for (i, d) in files.iter().enumerate() {
        put(&c, &b, &format!("{i}.bin"), d.clone());
    }
    let proxy = Proxy::start();
    let cache = tempfile::tempdir().unwrap();
    let limit = 3 * MIB as u64;
    let (m, _s) = cached(&proxy, &b, cache.path(), &["--data-cache-size", "3M", "--direct-read-size", "0"]);
    let held = || {
        files_under(&cache.path().join("blocks"))
            .iter()
            .filter_map(|f| fs::metadata(f).ok())
            .map(|m| m.len())
            .sum::<u64>()
    };
    for (i, d) in files.iter().enumerate() {
        same(&m.path().join(format!("{i}.bin")), d);
        assert!(held() <= limit, "{} bytes cached after file {i}", held());
    }
    // Everything handed to the cache is written (or not cached) by now.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = status_of(m.path());
        if number_after(&s, "\n  written: ") + number_after(&s, "not cached: ") == 8 {
            break s;
        }
        assert!(Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(held() <= limit, "{} bytes cached", held());
    assert!(number_after(&status, "evicted: ") >= 5, "{status}");
    // The files read last are the ones kept.
    proxy.reset();
    same(&m.path().join("7.bin"), &files[7]);
    assert_eq!(proxy.count("GetObject"), 0);
}

#[test]
fn bad_data_cache_options_are_refused() {
    for args in [&["--data-cache-size", "5G"][..], &["--data-cache", "/tmp/x", "--data-cache-size", "10X"]] {
        let out = s3drive().args(args).args(["bucket", "/nonexistent-mnt"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("data-cache"), "{err}");
    }
}

#[test]
fn a_full_disk_under_the_cache_costs_caching_never_a_read() {
    let c = client();
    let b = bucket("dcfull");
    create_bucket(&c, &b);
    let body = data(12 * MIB, 41);
    put(&c, &b, "f.bin", body.clone());
    let more = data(8 * MIB, 42);
    put(&c, &b, "g.bin", more.clone());
    let cache = tempfile::tempdir().unwrap();
    let _tmpfs = Tmpfs::mount(cache.path(), "16m");
    let proxy = Proxy::start();
    // More than the disk holds is allowed; something else then fills the disk to its last MiB.
    // Read past the page cache, so that every read reaches the daemon.
    let (m, _staging) = cached(&proxy, &b, cache.path(), &["--data-cache-size", "64M", "--direct-read-size", "1"]);
    let filler = cache.path().join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let chunk = vec![7u8; 64 << 10];
    while free_bytes(cache.path()) > MIB as u64 {
        use std::io::Write;
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    drop(f);
    same(&m.path().join("f.bin"), &body);
    std::thread::sleep(Duration::from_millis(500)); // the cache's writer runs in the background
    let status = status_of(m.path());
    assert!(number_after(&status, "not cached: ") > 0, "{status}");
    assert!(!m.log_text().contains("ERROR"), "{}", m.log_text());
    // Room again: the next reads are cached, and read from the cache; 20 MiB read through a
    // cache on 16 MiB leave the disk's last 5% free.
    fs::remove_file(&filler).unwrap();
    same(&m.path().join("f.bin"), &body);
    same(&m.path().join("g.bin"), &more);
    wait_for_blocks(cache.path(), 8);
    std::thread::sleep(Duration::from_millis(500));
    let free = free_bytes(cache.path());
    assert!(free >= 16 * MIB as u64 * 5 / 100, "the cache left {free} bytes of 16 MiB free");
    proxy.reset();
    same(&m.path().join("g.bin"), &more);
    assert_eq!(proxy.count("GetObject"), 0, "the last file read comes from the cache: {:?}", proxy.counts());
    same(&m.path().join("f.bin"), &body);
}

/// Bytes free for an unprivileged user on the file system holding `p`.
fn free_bytes(p: &Path) -> u64 {
    let path = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}
