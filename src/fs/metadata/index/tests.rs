//! Unit tests of `meta_index.rs`.

use super::*;

fn known(etag: &str, modified: Option<u64>, perm: u16) -> KnownMeta {
    KnownMeta {
        etag: etag.into(),
        modified: modified.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        kind: if perm == 0o777 { Kind::Symlink } else { Kind::CharDev(0x0501) },
        mtime: UNIX_EPOCH + Duration::new(1_500_000_000, 123_456_789),
        perm: Some(perm),
        uid: Some(1000),
        gid: None,
        put: PutMeta {
            metadata: HashMap::from([("mode".into(), format!("{}", 0o100000 | perm as u32)), ("x".into(), "é".into())]),
            content_type: Some("text/plain".into()),
            storage_class: None,
        },
    }
}

#[test]
fn the_blob_round_trips() {
    let k = known("e1", Some(7), 0o640);
    assert_eq!(decode("e1", k.modified, &encode(&k)), Some(k));
    assert_eq!(decode("e1", None, &[9, 9, 9]), None, "another layout is a miss");
    assert_eq!(decode("e1", None, &encode(&known("e1", None, 1))[..20]), None, "a short blob is a miss");
}

#[test]
fn a_version_is_its_etag_and_last_modified() {
    let idx = MetaIndex::in_memory();
    let b: Arc<str> = "b".into();
    idx.learn(&b, "k", known("e1", Some(100), 0o600));
    let at = |s| Some(UNIX_EPOCH + Duration::from_millis(s));
    assert!(idx.version(&b, "k", "e1", at(100_999)).is_some(), "same second (listings give milliseconds)");
    assert!(idx.version(&b, "k", "e1", at(101_000)).is_none(), "same ETag, rewritten (a metadata copy)");
    assert!(idx.version(&b, "k", "e2", at(100_000)).is_none());
    // Learned from an upload: no LastModified yet; the first sighting fixes it.
    idx.learn(&b, "u", known("e3", None, 0o600));
    assert!(idx.version(&b, "u", "e3", at(5_000)).is_some());
    assert!(idx.version(&b, "u", "e3", at(6_000)).is_none(), "adopted 5 s, so 6 s is another version");
}

#[test]
fn it_outlives_the_mount_is_shared_and_starts_anew_when_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let b: Arc<str> = "b".into();
    {
        let idx = MetaIndex::open(Some(dir.path()), "svc", 100);
        idx.learn(&b, "k", known("e1", Some(100), 0o600));
        idx.learn(&b, "gone", known("e1", Some(100), 0o600));
        idx.forget(&b, "gone");
    }
    let mode = |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions());
    assert_eq!(mode(&dir.path().join(FILE_NAME)) & 0o777, 0o600);
    let a = MetaIndex::open(Some(dir.path()), "svc", 100);
    let other_service = MetaIndex::open(Some(dir.path()), "other", 100);
    let t = Some(UNIX_EPOCH + Duration::from_secs(100));
    assert_eq!(a.version(&b, "k", "e1", t).map(|k| k.perm), Some(Some(0o600)));
    assert_eq!(a.stats().disk_hits, 1);
    assert!(a.version(&b, "gone", "e1", t).is_none());
    assert!(other_service.version(&b, "k", "e1", t).is_none(), "another endpoint's bucket of the same name");
    // Two indexes on one file: what one learns, the other finds.
    other_service.learn(&b, "k2", known("e5", Some(1), 0o644));
    other_service.sync();
    let c = MetaIndex::open(Some(dir.path()), "other", 100);
    assert!(c.version(&b, "k2", "e5", None).is_some());
    drop((a, other_service, c));

    std::fs::write(dir.path().join(FILE_NAME), b"this is not a database, just garbage bytes".repeat(200)).unwrap();
    let idx = MetaIndex::open(Some(dir.path()), "svc", 100);
    assert!(idx.path().is_some(), "started anew");
    assert!(idx.version(&b, "k", "e1", t).is_none());
    idx.learn(&b, "k", known("e1", Some(100), 0o600));
    idx.sync();
}

#[test]
fn lookups_in_key_order_read_the_disk_a_range_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let b: Arc<str> = "b".into();
    let n = 2 * SCAN_ROWS + 100;
    {
        let idx = MetaIndex::open(Some(dir.path()), "svc", 10_000);
        for i in (0..n).filter(|i| i % 10 != 3) {
            idx.learn(&b, &format!("k{i:05}"), known("e", Some(1), 0o600));
        }
        idx.learn(&b, "k00010", known("e", Some(1), 0o600));
        idx.sync();
    }
    let idx = MetaIndex::open(Some(dir.path()), "svc", 10_000);
    assert!(idx.version(&b, "k00000", "e", None).is_some()); // the first scan holds k00010 too
    idx.forget(&b, "k00010"); // gone since: the scan must not bring it back
    let found = (0..n).filter(|i| idx.version(&b, &format!("k{i:05}"), "e", None).is_some()).count();
    assert_eq!(found, n - n.div_ceil(10) - 1, "every row on disk, and none of the missing");
    let s = idx.stats();
    assert_eq!(s.disk_hits, found as u64);
    // A scan reads SCAN_ROWS rows; the last one starts the next. Misses in between
    // (every tenth key) cost nothing.
    assert!(s.disk_reads <= (n / (SCAN_ROWS - 1) + 1) as u64, "{} reads for {n} keys", s.disk_reads);
    assert!(idx.version(&b, "zz-after-the-last", "e", None).is_none());
    assert_eq!(idx.stats().disk_reads, s.disk_reads, "past the last row: covered by the last scan");
    // Another bucket is its own range.
    assert!(idx.version(&"c".into(), "k00001", "e", None).is_none());
    assert_eq!(idx.stats().disk_reads, s.disk_reads + 1);
}

#[test]
fn the_file_stays_within_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let b: Arc<str> = "b".into();
    let idx = MetaIndex::open(Some(dir.path()), "svc", 1000);
    for i in 0..12_000 {
        idx.learn(&b, &format!("k{i}"), known("e", Some(1), 0o600));
    }
    idx.sync();
    let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM meta", [], |r| r.get(0)).unwrap();
    assert!(n <= 1100 + 4096, "{n} rows (at most a tenth and one batch over the bound)");
    drop(idx);
    // And in bytes: the pages of trimmed rows are given back (about 200 bytes a row).
    let bytes: u64 = ["", "-wal"]
        .iter()
        .map(|s| std::fs::metadata(format!("{}{s}", dir.path().join(FILE_NAME).display())).map_or(0, |m| m.len()))
        .sum();
    eprintln!("index file: {bytes} bytes for {n} rows");
    assert!(bytes < (1100 + 4096) * 400, "{bytes} bytes for {n} rows");
    // The newest survive a trim (a new index: nothing in memory).
    let idx = MetaIndex::open(Some(dir.path()), "svc", 1000);
    assert!(idx.version(&b, "k11999", "e", None).is_some());
    assert!(idx.version(&b, "k0", "e", None).is_none(), "the oldest went");
}
