//! Tests of the core over the in-memory store: what each operation answers and how many
//! requests it costs.

use std::sync::Arc;
use std::time::Duration;

use super::inode::{Kind, ROOT};
use super::writes::setattr::SetAttr;
use super::*;
use crate::store::Objects;
use crate::store::memory::MemoryStore;

fn fs_with(store: MemoryStore, mut config: Config) -> Arc<Fs<MemoryStore>> {
    if config.write.cache_dir == crate::config::WriteConfig::default().cache_dir {
        config.write.cache_dir = test_cache_dir().to_path_buf();
    }
    Fs::new(Arc::new(store), config)
}

/// The cache directory of this test process's cores, removed when the process exits: the
/// tests leave nothing behind in the temp dir.
fn test_cache_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    extern "C" fn remove() {
        if let Some(d) = DIR.get() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("s3drive-unit-{}", std::process::id()));
        // SAFETY: registers a plain function, run by exit(3) after the tests.
        unsafe { libc::atexit(remove) };
        d
    })
}

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// What stat(2) of a name makes the kernel send: a lookup, and a getattr when the lookup's
/// attributes are not known to be right.
async fn stat(fs: &Fs<MemoryStore>, parent: Ino, name: &Name) -> Result<Stat> {
    let st = fs.lookup(parent, name).await?;
    if st.known { Ok(st) } else { fs.getattr(st.ino).await }
}

async fn list_names(fs: &Fs<MemoryStore>, ino: Ino) -> Vec<String> {
    let fh = fs.opendir(ino).await.unwrap();
    let mut out = Vec::new();
    let mut off = 0;
    loop {
        let items = fs.readdir(fh, off, 100).await.unwrap();
        if items.is_empty() {
            break;
        }
        off = items.last().unwrap().next;
        for it in items {
            if let Some(e) = &it.entry {
                fs.remember_entry(ino, e, it.stat.known);
            }
            out.push(it.name);
        }
    }
    fs.releasedir(fh);
    out
}

#[tokio::test]
async fn ls_l_of_2500_objects_with_metadata_from_listings_is_three_listings_and_no_head() {
    let store = MemoryStore::new();
    for i in 0..2500 {
        store.put("b", &format!("dir/f{i:05}"), "x");
    }
    let fs = fs_with(
        store,
        Config {
            source: Source::Prefix { bucket: "b".into(), prefix: String::new() },
            metadata: crate::config::MetadataConfig { from_listing: true, index_entries: None },
            ..Default::default()
        },
    );
    let dir = stat(&fs, ROOT, &name("dir")).await.unwrap();
    assert!(dir.dir);
    fs.store.reset_counts();
    let names = list_names(&fs, dir.ino).await;
    assert_eq!(names.len(), 2502);
    // `ls -l` then stats every entry: answered by the listing.
    for n in &names[2..] {
        let st = stat(&fs, dir.ino, &name(n)).await.unwrap();
        assert_eq!(st.size, 1);
        fs.getattr(st.ino).await.unwrap();
    }
    assert_eq!(fs.store.count("ListObjectsV2"), 3);
    assert_eq!(fs.store.count("HeadObject"), 0);
    // A name absent from a fresh complete listing is missing without a request.
    assert_eq!(stat(&fs, dir.ino, &name("nope")).await, Err(Error::NotFound));
    assert_eq!(fs.store.count("ListObjectsV2") + fs.store.count("HeadObject"), 3);
}

#[tokio::test]
async fn a_listing_hands_the_kernel_no_attributes_it_does_not_know() {
    let store = MemoryStore::new();
    let md = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    store.put_with_meta("b", "d/private", "abc", md(&[("mtime", "1700000000"), ("mode", "33152")]));
    store.put("b", "d/plain", "abcd");
    let fs = fs_with(
        store,
        Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() },
    );
    let dir = stat(&fs, ROOT, &name("d")).await.unwrap();
    let fh = fs.opendir(dir.ino).await.unwrap();
    let items = fs.readdir(fh, 0, 100).await.unwrap();
    let files: Vec<_> = items.iter().filter(|i| i.entry.is_some()).collect();
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|i| !i.stat.known), "never looked at: unknown");
    // Handed over anyway (readdirplus counts it as a lookup), its node is stale: getattr asks.
    let st = fs.remember_entry(dir.ino, files[1].entry.as_ref().unwrap(), false);
    assert_eq!(fs.getattr(st.ino).await.unwrap().perm, 0o600);
    // A lookup alone does not fetch metadata (an unlink needs only the name)...
    let plain = fs.lookup(dir.ino, &name("plain")).await.unwrap();
    assert!(!plain.known);
    assert_eq!(fs.store.count("HeadObject"), 1);
    // ...a stat does; from then on listings know both.
    assert_eq!(stat(&fs, dir.ino, &name("plain")).await.unwrap().perm, 0o644);
    let items = fs.readdir(fh, 0, 100).await.unwrap();
    assert!(items.iter().all(|i| i.stat.known));
    let private = items.iter().find(|i| i.name == "private").unwrap();
    assert_eq!(
        (private.stat.perm, private.stat.mtime),
        (0o600, std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    );
    assert_eq!(fs.store.count("HeadObject"), 2, "one per object version");
}

#[tokio::test]
async fn a_listed_file_that_is_a_symlink_makes_the_kernel_look_again() {
    let store = MemoryStore::new();
    let md = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    store.put_with_meta("b", "d/link", "target", md(&[("mode", "41471")]));
    let fs = fs_with(
        store,
        Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() },
    );
    let dir = stat(&fs, ROOT, &name("d")).await.unwrap();
    // The kernel was given a regular file (from the listing, readdirplus or lookup alike).
    let st = fs.lookup(dir.ino, &name("link")).await.unwrap();
    assert!(!st.known && st.kind == Kind::File);
    // Its getattr finds a symlink: ESTALE, and the VFS looks the path up again.
    assert_eq!(fs.getattr(st.ino).await.unwrap_err().errno(), libc::ESTALE);
    let again = fs.lookup(dir.ino, &name("link")).await.unwrap();
    assert!(again.known && again.kind == Kind::Symlink, "{again:?}");
    assert_eq!(&fs.readlink(again.ino).await.unwrap()[..], b"target");
    assert_eq!(fs.store.count("HeadObject"), 1);
}

#[tokio::test]
async fn lookup_directory_wins_over_object_of_same_name() {
    let store = MemoryStore::new();
    store.put("b", "x", "file");
    store.put("b", "x/inner", "i");
    store.put("b", "empty/", "");
    let fs = fs_with(
        store,
        Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() },
    );
    // (Lookups only: a directory's own metadata is dir_meta's, tested on its own.)
    assert!(fs.lookup(ROOT, &name("x")).await.unwrap().dir);
    assert!(fs.lookup(ROOT, &name("empty")).await.unwrap().dir, "a marker object alone makes a directory");
    // The root fits in one listing page: it answers both lookups.
    assert_eq!(fs.store.count("HeadObject"), 0);
    assert_eq!(fs.store.count("ListObjectsV2"), 1);

    // A directory larger than a page: each lookup is a HeadObject and a one-key listing.
    let mut store = MemoryStore::new();
    store.page_size = 2;
    for k in ["x", "x/inner", "empty/", "y", "z"] {
        store.put("b", k, "1");
    }
    let fs = fs_with(
        store,
        Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() },
    );
    assert!(fs.lookup(ROOT, &name("x")).await.unwrap().dir);
    assert!(fs.lookup(ROOT, &name("empty")).await.unwrap().dir);
    assert!(!stat(&fs, ROOT, &name("y")).await.unwrap().dir);
    assert_eq!(fs.store.count("HeadObject"), 3);
    assert_eq!(fs.store.count("ListObjectsV2"), 1 + 3, "one page found the root large; then a probe per name");
}

#[tokio::test]
async fn negative_lookups_are_cached_for_their_ttl() {
    let store = MemoryStore::new();
    store.create_bucket("b");
    let config = Config {
        source: Source::Prefix { bucket: "b".into(), prefix: String::new() },
        negative_ttl: Duration::from_millis(200),
        ..Default::default()
    };
    let fs = fs_with(store, config);
    for _ in 0..3 {
        assert_eq!(stat(&fs, ROOT, &name("missing")).await, Err(Error::NotFound));
    }
    assert_eq!(fs.store.count("ListObjectsV2"), 1, "the root's one-page listing answers all three");
    assert_eq!(fs.store.count("HeadObject"), 0);
    tokio::time::sleep(Duration::from_millis(250)).await;
    fs.store.put("b", "missing", "now here");
    assert_eq!(stat(&fs, ROOT, &name("missing")).await.unwrap().size, 8);
}

#[tokio::test]
async fn server_error_is_eio_not_enoent() {
    let store = MemoryStore::new();
    store.create_bucket("b");
    let fs = fs_with(
        store,
        Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() },
    );
    fs.store.put("b", "f", "x");
    let e = StoreError::Server { status: Some(500), code: "InternalError".into(), message: String::new() };
    // The directory listing that would answer the lookup fails.
    fs.store.inject_fault("ListObjectsV2", e.clone());
    let err = stat(&fs, ROOT, &name("g")).await.unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    // The listing shows f; its HeadObject (for the metadata) fails.
    fs.store.inject_fault("HeadObject", e);
    let err = stat(&fs, ROOT, &name("f")).await.unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    assert_eq!(stat(&fs, ROOT, &name("g")).await, Err(Error::NotFound));
    assert_eq!(stat(&fs, ROOT, &name("f")).await.unwrap().size, 1);
}

#[tokio::test]
async fn denied_bucket_is_listed_but_gives_eacces_and_others_work() {
    let store = MemoryStore::new();
    store.put("open", "a.txt", "hello");
    store.deny_bucket("secret");
    let fs = fs_with(store, Config::default());
    assert_eq!(list_names(&fs, ROOT).await, vec![".", "..", "open", "secret"]);
    let secret = stat(&fs, ROOT, &name("secret")).await.unwrap();
    let fh = fs.opendir(secret.ino).await.unwrap();
    assert_eq!(fs.readdir(fh, 0, 100).await.unwrap_err().errno(), libc::EACCES);
    let open = stat(&fs, ROOT, &name("open")).await.unwrap();
    let f = stat(&fs, open.ino, &name("a.txt")).await.unwrap();
    let fh = fs.open(f.ino, false, false, 1).await.unwrap().fh;
    assert_eq!(&fs.read(fh, 0, 100).await.unwrap()[..], b"hello");
}

#[tokio::test]
async fn named_buckets_need_no_list_buckets() {
    let store = MemoryStore::new();
    store.put("one", "k", "v");
    store.put("two", "k", "v");
    let fs = fs_with(store, Config { source: Source::Buckets(vec!["two".into()]), ..Default::default() });
    assert_eq!(list_names(&fs, ROOT).await, vec![".", "..", "two"]);
    assert_eq!(stat(&fs, ROOT, &name("one")).await, Err(Error::NotFound));
    assert_eq!(fs.store.count("ListBuckets"), 0);
}

#[tokio::test]
async fn metadata_sets_mtime_mode_and_owner() {
    let store = MemoryStore::new();
    let md = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    store.put_with_meta(
        "b",
        "s3fs",
        "x",
        md(&[("mtime", "1700000000"), ("mode", "33216"), ("uid", "1234"), ("gid", "99")]),
    );
    store.put_with_meta("b", "rclone", "x", md(&[("mtime", "1700000000.5")]));
    let fs = fs_with(
        store,
        Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() },
    );
    let s = stat(&fs, ROOT, &name("s3fs")).await.unwrap();
    assert_eq!(s.mtime, SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    assert_eq!((s.perm, s.uid, s.gid), (0o700, 1234, 99));
    let r = stat(&fs, ROOT, &name("rclone")).await.unwrap();
    assert_eq!(r.mtime, SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500));
    assert_eq!(r.perm, 0o644);
}

#[tokio::test]
async fn forget_keeps_the_table_small() {
    let store = MemoryStore::new();
    for i in 0..500 {
        store.put("b", &format!("f{i}"), "x");
    }
    let fs = fs_with(
        store,
        Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() },
    );
    let mut inos = Vec::new();
    for i in 0..500 {
        inos.push(stat(&fs, ROOT, &name(&format!("f{i}"))).await.unwrap().ino);
    }
    assert_eq!(fs.inode_count(), 501);
    for ino in &inos {
        fs.forget(*ino, 1);
    }
    assert_eq!(fs.inode_count(), 1);
    assert_eq!(stat(&fs, ROOT, &name("f7")).await.unwrap().ino, inos[7], "stable number for a path");
}

#[test]
fn mtime_forms() {
    assert_eq!(parse_mtime("12"), Some(SystemTime::UNIX_EPOCH + Duration::from_secs(12)));
    assert_eq!(parse_mtime("12.25"), Some(SystemTime::UNIX_EPOCH + Duration::from_millis(12_250)));
    assert_eq!(parse_mtime("abc"), None);
    assert_eq!(parse_mtime("1.x"), None);
}

#[tokio::test]
async fn own_metadata_copies_do_not_break_open_files() {
    let store = MemoryStore::new();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    store.put("b", "f", body.clone());
    let config = Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() };
    let fs = fs_with(store, config);
    let f = stat(&fs, ROOT, &name("f")).await.unwrap();
    let fh = fs.open(f.ino, false, false, 1).await.unwrap().fh;
    assert_eq!(&fs.read(fh, 0, 10).await.unwrap()[..], &body[..10]);
    // chmod, saved with a CopyObject that gives the object a new ETag.
    fs.setattr(f.ino, SetAttr { mode: Some(0o600), ..Default::default() }).await.unwrap();
    let etag = fs.store.head_object("b", "f").await.unwrap().etag;
    fs.flush_meta(&"b".into(), "f", None).await.unwrap();
    assert_ne!(fs.store.head_object("b", "f").await.unwrap().etag, etag, "the copy changed the ETag");
    assert_eq!(&fs.read(fh, 50_000, 10).await.unwrap()[..], &body[50_000..50_010], "the reader follows");
    // Opening for writing with a chmod pending saves it before downloading.
    fs.setattr(f.ino, SetAttr { mode: Some(0o640), ..Default::default() }).await.unwrap();
    let wfh = fs.open(f.ino, true, false, 1).await.unwrap().fh;
    assert_eq!(&fs.read(wfh, 99_990, 10).await.unwrap()[..], &body[99_990..]);
    fs.release(wfh).await;
}

#[tokio::test]
async fn an_open_after_another_client_replaced_the_object_reads_the_new_version() {
    let store = MemoryStore::new();
    store.put("b", "f", "version one\n");
    let config = Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() };
    let fs = fs_with(store, config);
    let f = stat(&fs, ROOT, &name("f")).await.unwrap();
    // Another client replaces it while the attributes (and their ETag) are trusted.
    fs.store.put("b", "f", "version two, longer\n");
    let fh = fs.open(f.ino, false, false, 1).await.unwrap().fh;
    assert_eq!(
        &fs.read(fh, 0, 100).await.unwrap()[..],
        b"version two, longer\n",
        "not ESTALE: opened after the change"
    );
    // A reader that has returned bytes of one version never switches: ESTALE.
    fs.store.put("b", "f", "version three\n");
    match fs.read(fh, 0, 100).await {
        Err(e) => assert_eq!(e.errno(), libc::ESTALE, "{e:?}"),
        Ok(b) => assert_eq!(&b[..], b"version two, longer\n", "the pages it has already"),
    }
    // An open within the TTL trusts version two, whose pages the kernel keeps: the kernel may
    // hand those out without asking, so the change found at the first GET is ESTALE (reading
    // on would mix two versions), and it drops the old attributes and pages...
    let kept = fs.open(f.ino, false, false, 1).await.unwrap();
    assert!(kept.keep_cache, "the kernel keeps its pages of version two");
    let err = fs.read(kept.fh, 0, 100).await.unwrap_err();
    assert_eq!(err.errno(), libc::ESTALE, "{err:?}");
    // ...so the next open reads version three, from scratch.
    let fresh = fs.open(f.ino, false, false, 1).await.unwrap();
    assert!(!fresh.keep_cache, "the old pages are not kept");
    assert_eq!(&fs.read(fresh.fh, 0, 100).await.unwrap()[..], b"version three\n");
    fs.release(fh).await;
    fs.release(kept.fh).await;
    fs.release(fresh.fh).await;
}

#[tokio::test]
async fn truncate_and_o_trunc_move_the_mtime() {
    let store = MemoryStore::new();
    let old = std::collections::HashMap::from([("mtime".to_string(), "1000".to_string())]);
    store.put_with_meta("b", "cut", "some bytes", old.clone());
    store.put_with_meta("b", "emptied", "some bytes", old);
    let config = Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() };
    let fs = fs_with(store, config);
    let long_ago = std::time::UNIX_EPOCH + Duration::from_secs(1000);
    let cut = stat(&fs, ROOT, &name("cut")).await.unwrap();
    assert_eq!(cut.mtime, long_ago);
    let after = fs.setattr(cut.ino, SetAttr { size: Some(4), ..Default::default() }).await.unwrap();
    assert!(after.mtime > long_ago + Duration::from_secs(1_000_000), "truncate moved the mtime");
    let stored = fs.store.head_object("b", "cut").await.unwrap();
    assert_ne!(stored.metadata.get("mtime").map(String::as_str), Some("1000"));
    // utimens with the truncate keeps the time given.
    let set =
        fs.setattr(cut.ino, SetAttr { size: Some(2), mtime: Some(long_ago), ..Default::default() }).await.unwrap();
    assert_eq!(set.mtime, long_ago);
    // O_TRUNC with nothing written after it.
    let emptied = stat(&fs, ROOT, &name("emptied")).await.unwrap();
    let fh = fs.open(emptied.ino, true, true, 1).await.unwrap().fh;
    fs.flush(fh, None).await.unwrap();
    fs.release(fh).await;
    let stored = fs.store.head_object("b", "emptied").await.unwrap();
    assert_eq!(stored.size, 0);
    assert_ne!(stored.metadata.get("mtime").map(String::as_str), Some("1000"), "O_TRUNC moved the mtime");
}

#[tokio::test]
async fn share_links_die_with_temporary_credentials() {
    let store = MemoryStore::new();
    store.put("b", "f", "x");
    let expiry = std::time::SystemTime::now() + Duration::from_secs(600);
    store.set_credential_expiry(expiry);
    let config = Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() };
    let fs = fs_with(store, config);
    let f = stat(&fs, ROOT, &name("f")).await.unwrap();
    fs.store.reset_counts();
    let secs = |url: &str| -> u64 { url.split("X-Amz-Expires=").nth(1).unwrap().parse().unwrap() };
    let url = String::from_utf8(fs.getxattr(f.ino, "user.s3.presigned_url").await.unwrap()).unwrap();
    assert!((595..=600).contains(&secs(&url)), "an hour, capped at the credentials' 10 minutes: {url}");
    let long = String::from_utf8(fs.getxattr(f.ino, "user.s3.presigned_url.30d").await.unwrap()).unwrap();
    assert!((595..=600).contains(&secs(&long)), "{long}");
    let expires = String::from_utf8(fs.getxattr(f.ino, "user.s3.presigned_url_expires").await.unwrap()).unwrap();
    assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");
    assert_eq!(fs.store.total_count(), 0, "signed locally");
    let dir_err = fs.getxattr(ROOT, "user.s3.presigned_url").await.unwrap_err();
    assert_eq!(dir_err.errno(), libc::EISDIR);
}

#[tokio::test]
async fn a_small_directory_is_listed_once_for_lookups_and_kept_in_step_with_changes() {
    let store = MemoryStore::new();
    let md = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    store.put("b", "d/", "");
    store.put_with_meta("b", "d/old", "abc", md(&[("mtime", "1700000000"), ("mode", "33216")]));
    let config = Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() };
    let fs = fs_with(store, config);
    let d = stat(&fs, ROOT, &name("d")).await.unwrap().ino;
    fs.store.reset_counts();

    // `cp -r` into it: each name is looked up (missing), created, written and closed.
    let owner = crate::fs::writes::writing::Owner { uid: 0, gid: 0, pid: 1 };
    for i in 0..50 {
        let n = name(&format!("n{i}"));
        assert_eq!(stat(&fs, d, &n).await, Err(Error::NotFound));
        let (_, fh) = fs.create(d, &n, 0o644, owner).await.unwrap();
        fs.write(fh, 0, b"0123456789", false).await.unwrap();
        fs.flush(fh, None).await.unwrap();
        fs.release(fh).await;
    }
    // The page listed to read d's own metadata (its marker) answered all 50 lookups.
    assert_eq!(fs.store.count("ListObjectsV2"), 0, "one page answered all 50 lookups");
    assert_eq!(fs.store.count("HeadObject"), 0);
    assert_eq!(fs.store.count("PutObject"), 50);

    // A file the listing shows but whose metadata is unknown costs one HeadObject.
    let old = stat(&fs, d, &name("old")).await.unwrap();
    assert_eq!((old.perm, old.mtime), (0o700, SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
    assert_eq!(fs.store.count("HeadObject"), 1);

    // The listing kept up with the uploads: readdir needs no request and shows the sizes.
    let names = list_names(&fs, d).await;
    assert_eq!(names.len(), 2 + 1 + 50, "{names:?}");
    assert_eq!(stat(&fs, d, &name("n7")).await.unwrap().size, 10);
    assert_eq!(fs.store.count("ListObjectsV2"), 0);

    // Removed and renamed names are gone from it at once; the new name is there.
    fs.unlink(d, &name("n0")).await.unwrap();
    fs.rename(d, &name("n1"), d, &name("m1"), false).await.unwrap();
    assert_eq!(stat(&fs, d, &name("n0")).await, Err(Error::NotFound));
    assert_eq!(stat(&fs, d, &name("n1")).await, Err(Error::NotFound));
    assert_eq!(stat(&fs, d, &name("m1")).await.unwrap().size, 10);
    let names = list_names(&fs, d).await;
    assert!(!names.contains(&"n0".to_string()) && !names.contains(&"n1".to_string()) && names.contains(&"m1".into()));
    assert_eq!(fs.store.count("ListObjectsV2"), 0);
}

#[tokio::test]
async fn a_multipart_upload_needs_no_copy_for_the_mtime_of_its_writes() {
    let store = MemoryStore::new();
    store.create_bucket("b");
    let config = Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() };
    let fs = fs_with(store, config);
    let owner = crate::fs::writes::writing::Owner { uid: 0, gid: 0, pid: 1 };
    let chunk = vec![7u8; 1 << 20];
    let part = fs.config().write.part_size(0);
    let write_big = |n: &'static str| {
        let fs = fs.clone();
        let chunk = chunk.clone();
        async move {
            let (st, fh) = fs.create(ROOT, &name(n), 0o640, owner).await.unwrap();
            let mut off = 0;
            while off < 2 * part + (1 << 20) {
                fs.write(fh, off, &chunk, false).await.unwrap();
                off += chunk.len() as u64;
            }
            (st.ino, fh)
        }
    };

    // Plain writes, then close: the writes moved the mtime after the upload began; that alone
    // costs no CopyObject (the object's LastModified is its mtime).
    let (_, fh) = write_big("plain").await;
    fs.flush(fh, None).await.unwrap();
    fs.release(fh).await;
    assert!(fs.store.count("UploadPart") >= 3);
    assert_eq!(fs.store.count("CopyObject"), 0);
    let meta = fs.store.head_object("b", "plain").await.unwrap().metadata;
    assert_eq!(meta.get("mode").map(String::as_str), Some("33184"), "{meta:?}");
    assert!(!meta.contains_key("mtime"), "{meta:?}");

    // An mtime set after the last write (cp -p, rsync -t) is saved, with one CopyObject.
    let (ino, fh) = write_big("stamped").await;
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    fs.setattr(ino, SetAttr { mtime: Some(t), ..Default::default() }).await.unwrap();
    fs.flush(fh, None).await.unwrap();
    fs.release(fh).await;
    assert_eq!(fs.store.count("CopyObject"), 1);
    let meta = fs.store.head_object("b", "stamped").await.unwrap().metadata;
    assert_eq!(meta.get("mtime").map(String::as_str), Some("1600000000"));
}

#[tokio::test]
async fn lookups_walking_a_listing_in_order_fetch_metadata_ahead_without_extra_requests() {
    let store = MemoryStore::new();
    let md = |mode: &str| [("mode".to_string(), mode.to_string())].into_iter().collect();
    for dir in ["walk", "scattered", "stop", "rm"] {
        for i in 0..50 {
            store.put_with_meta("b", &format!("{dir}/f{i:02}"), "x", md("33216"));
        }
    }
    store.put("b", "walk/f20x/inner", "a directory among the files");
    let config = Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() };
    let fs = fs_with(store, config);
    let settle = || tokio::time::sleep(Duration::from_millis(50));

    // rsync's pattern: every name, in sorted order, one lookup at a time.
    let walk = stat(&fs, ROOT, &name("walk")).await.unwrap().ino;
    fs.store.reset_counts();
    for i in 0..3 {
        stat(&fs, walk, &name(&format!("f{i:02}"))).await.unwrap();
    }
    settle().await;
    assert_eq!(
        fs.store.count("HeadObject"),
        3 + listings::STAT_AHEAD_MIN as u64,
        "the third lookup in order fetched ahead"
    );
    for i in 3..3 + listings::STAT_AHEAD_MIN {
        let st = fs.lookup(walk, &name(&format!("f{i:02}"))).await.unwrap();
        assert!(st.known, "f{i:02} arrives known: no stat follows its lookup");
        assert_eq!(st.perm, 0o700, "metadata fetched ahead is the object's");
    }
    // Those lookups were steps of the walk too: the next name's stat goes on fetching ahead
    // (counting only stats, the walk seemed to jump from f02 to f11 and started over, one
    // HeadObject at a time: 22 s instead of 1.2 s for `ls -l` of 5,000 objects 10 ms away).
    let next = 3 + listings::STAT_AHEAD_MIN;
    stat(&fs, walk, &name(&format!("f{next:02}"))).await.unwrap();
    settle().await;
    assert!(fs.store.count("HeadObject") > next as u64 + 1, "the walk kept fetching ahead");
    for i in next + 1..50 {
        stat(&fs, walk, &name(&format!("f{i:02}"))).await.unwrap();
        if i == 20 {
            assert!(stat(&fs, walk, &name("f20x")).await.unwrap().dir);
        }
    }
    settle().await;
    assert_eq!(fs.store.count("HeadObject"), 50, "one HeadObject per file, none twice");
    assert_eq!(fs.store.count("ListObjectsV2"), 1);

    // A walk that only looks names up (rm -r, which needs no metadata) fetches nothing.
    let rm = stat(&fs, ROOT, &name("rm")).await.unwrap().ino;
    fs.store.reset_counts();
    for i in 0..50 {
        assert!(!fs.lookup(rm, &name(&format!("f{i:02}"))).await.unwrap().known);
    }
    settle().await;
    assert_eq!(fs.store.count("HeadObject"), 0, "lookups alone send no HeadObject");

    // Lookups out of order fetch nothing ahead.
    let scattered = stat(&fs, ROOT, &name("scattered")).await.unwrap().ino;
    fs.store.reset_counts();
    for i in [0, 9, 10, 30, 11, 12, 40, 41] {
        stat(&fs, scattered, &name(&format!("f{i:02}"))).await.unwrap();
    }
    settle().await;
    assert_eq!(fs.store.count("HeadObject"), 8);

    // A walk that stops early leaves a bounded number unused.
    let stop = stat(&fs, ROOT, &name("stop")).await.unwrap().ino;
    fs.store.reset_counts();
    for i in 0..5 {
        stat(&fs, stop, &name(&format!("f{i:02}"))).await.unwrap();
    }
    settle().await;
    assert_eq!(fs.store.count("HeadObject"), 5 + listings::STAT_AHEAD_MIN as u64);
}

#[tokio::test]
async fn metadata_fetched_ahead_serves_lookups_when_listings_carry_no_etags() {
    // Some servers list no ETags, so what a HeadObject learned cannot be matched to a listed
    // entry by ETag: the stat-ahead's answers go into the listing itself.
    let mut store = MemoryStore::new();
    store.list_without_etags = true;
    let md = |mode: &str| [("mode".to_string(), mode.to_string())].into_iter().collect();
    for i in 0..40 {
        store.put_with_meta("b", &format!("walk/f{i:02}"), "x", md("33216"));
    }
    let config = Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() };
    let fs = fs_with(store, config);
    let walk = stat(&fs, ROOT, &name("walk")).await.unwrap().ino;
    fs.store.reset_counts();
    for i in 0..40 {
        let st = stat(&fs, walk, &name(&format!("f{i:02}"))).await.unwrap();
        assert_eq!(st.perm, 0o700, "f{i:02}: the object's mode, from its HeadObject");
        if i % 7 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await; // let fetches ahead finish
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(fs.store.count("HeadObject"), 40, "one HeadObject per file, none twice");
}

mod large_dirs;
mod writes;
