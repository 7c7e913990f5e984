//! Unit tests of `data_cache.rs`.

use super::*;

fn block(len: usize, seed: u8) -> Bytes {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<u8>>().into()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir.join("blocks")).unwrap().flatten() {
        out.extend(std::fs::read_dir(sub.path()).unwrap().flatten().map(|f| f.path()));
    }
    out
}

#[test]
fn blocks_round_trip_and_are_keyed_by_version() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DataCache::open(dir.path(), "svc", Some(64 << 20)).unwrap();
    let v1 = cache.version("b", "k", "\"e1\"");
    let v2 = cache.version("b", "k", "\"e2\"");
    assert_eq!(cache.get(&v1, 0, 1000), None);
    cache.put(&v1, 0, block(1000, 1));
    cache.put(&v1, 1, block(10, 2));
    cache.flush();
    assert_eq!(cache.get(&v1, 0, 1000), Some(block(1000, 1)));
    assert_eq!(cache.get(&v1, 1, 10), Some(block(10, 2)));
    // Another ETag, another key, another service, another length: none of them is this block.
    assert_eq!(cache.get(&v2, 0, 1000), None);
    assert_eq!(cache.get(&cache.version("b", "k2", "\"e1\""), 0, 1000), None);
    let other = DataCache::open(dir.path(), "svc2", Some(64 << 20)).unwrap();
    assert_eq!(other.get(&other.version("b", "k", "\"e1\""), 0, 1000), None);
    let r = cache.report();
    assert_eq!((r.hits, r.blocks_written, r.corrupt), (2, 2, 0));
    // Private: files 0600, directories 0700.
    for f in files(dir.path()) {
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(f.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
    }
    // A second cache on the directory (a remount) finds them.
    drop(cache);
    let again = DataCache::open(dir.path(), "svc", Some(64 << 20)).unwrap();
    again.flush();
    assert_eq!(again.report().blocks, 2);
    assert_eq!(again.get(&again.version("b", "k", "\"e1\""), 0, 1000), Some(block(1000, 1)));
}

#[test]
fn damaged_blocks_are_dropped_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DataCache::open(dir.path(), "svc", Some(64 << 20)).unwrap();
    let v = cache.version("b", "k", "e");
    for i in 0..3 {
        cache.put(&v, i, block(4096, i as u8));
    }
    cache.flush();
    let mut f = files(dir.path());
    f.sort();
    // One byte of data flipped, a file cut short, a header scribbled over.
    let mut bytes = std::fs::read(&f[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&f[0], &bytes).unwrap();
    let bytes = std::fs::read(&f[1]).unwrap();
    std::fs::write(&f[1], &bytes[..bytes.len() - 100]).unwrap();
    let mut bytes = std::fs::read(&f[2]).unwrap();
    bytes[..8].copy_from_slice(b"garbage!");
    std::fs::write(&f[2], &bytes).unwrap();
    for i in 0..3 {
        assert_eq!(cache.get(&v, i, 4096), None, "block {i}");
    }
    let r = cache.report();
    assert_eq!((r.corrupt, r.hits, r.blocks), (3, 0, 0));
    assert!(files(dir.path()).is_empty(), "damaged files are removed");
    // Fetched and cached again.
    cache.put(&v, 0, block(4096, 0));
    cache.flush();
    assert_eq!(cache.get(&v, 0, 4096), Some(block(4096, 0)));
}

#[test]
fn size_is_bounded_least_recently_used_first() {
    let dir = tempfile::tempdir().unwrap();
    let each = (HEADER + 4 + 1 + 4 + 1 + 4 + 1 + 4 + 1 + 8 + 100_000) as u64;
    let cache = DataCache::open(dir.path(), "s", Some(each * 10)).unwrap();
    let v = cache.version("b", "k", "e");
    for i in 0..10 {
        cache.put(&v, i, block(100_000, i as u8));
    }
    cache.flush();
    assert_eq!(cache.report().blocks, 10);
    assert_eq!(cache.report().bytes, each * 10);
    // Written in order within the same second, then block 0 is used again: the order holds
    // below the mtime's seconds.
    assert!(cache.get(&v, 0, 100_000).is_some());
    cache.put(&v, 10, block(100_000, 10));
    cache.flush();
    let r = cache.report();
    assert!(r.bytes <= each * 10 && r.evicted >= 1, "{r:?}");
    let on_disk: u64 = files(dir.path()).iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    assert_eq!(on_disk, r.bytes);
    assert!(cache.get(&v, 0, 100_000).is_some(), "the block used last stays");
    assert!(cache.get(&v, 10, 100_000).is_some());
    assert!(cache.get(&v, 1, 100_000).is_none(), "the oldest went first");
    // A block larger than the whole cache is not written at all.
    cache.put(&v, 11, block(each as usize * 11, 1));
    cache.flush();
    assert!(cache.report().bytes <= each * 10);
}

#[test]
fn uploaded_files_seed_the_cache_unless_changed_since() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let cache = DataCache::open(dir.path(), "s", Some(64 << 20)).unwrap();
    cache.flush();
    let body = block(2 * BLOCK as usize + 10, 9);
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(&body).unwrap();
    let (file, changes) = (Arc::new(f), Arc::new(AtomicU64::new(5)));
    let v = cache.version("b", "k", "e1");
    cache.seed(v.clone(), file.clone(), changes.clone(), 5, body.len() as u64);
    cache.flush();
    assert_eq!(cache.get(&v, 0, BLOCK as usize).as_deref(), Some(&body[..BLOCK as usize]));
    assert_eq!(cache.get(&v, 2, 10).as_deref(), Some(&body[2 * BLOCK as usize..]));
    // Written since the upload: not a copy of version e2 any more.
    let v2 = cache.version("b", "k", "e2");
    changes.fetch_add(1, Ordering::SeqCst);
    cache.seed(v2.clone(), file, changes, 5, body.len() as u64);
    cache.flush();
    assert_eq!(cache.get(&v2, 0, BLOCK as usize), None);
    assert_eq!(cache.report().blocks, 3);
}

#[test]
fn leftovers_in_tmp_are_removed_and_default_limit_is_a_share_of_free_space() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let old = dir.path().join("tmp/999-1");
    std::fs::write(&old, b"half a block").unwrap();
    File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let young = dir.path().join("tmp/999-2");
    std::fs::write(&young, b"another mount is writing").unwrap();
    let cache = DataCache::open(dir.path(), "s", None).unwrap();
    cache.flush();
    assert!(!old.exists() && young.exists());
    let (free, _) = disk_space(dir.path()).unwrap();
    let limit = cache.report().limit;
    assert!(limit > 0 && limit <= free / 100 * (DEFAULT_SHARE_PERCENT + 5), "{limit} of {free}");
}
