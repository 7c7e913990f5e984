//! Tests of what a failed upload leaves visible, and of directories' metadata on their markers.

use super::*;

#[tokio::test]
async fn after_a_failed_upload_the_mount_shows_what_s3_holds() {
    let store = MemoryStore::new();
    store.put("b", "d/", "");
    store.put("b", "d/old", "old bytes");
    let cache = tempfile::tempdir().unwrap();
    let mut config =
        Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() };
    config.write.cache_dir = cache.path().to_path_buf();
    let fs = fs_with(store, config);
    let told = Arc::new(Mutex::new(Vec::new()));
    fs.set_kernel_cache(Box::new(Recorder(told.clone())));
    let d = stat(&fs, ROOT, &name("d")).await.unwrap().ino;
    assert_eq!(list_names(&fs, d).await, [".", "..", "old"]);
    let owner = crate::fs::writes::writing::Owner { uid: 0, gid: 0, pid: 1 };
    let fail = || StoreError::Server { status: Some(500), code: "InternalError".into(), message: String::new() };

    // A new file whose upload fails: close reports it, and the name is gone once closed.
    let (new, fh) = fs.create(d, &name("new"), 0o644, owner).await.unwrap();
    fs.write(fh, 0, b"never uploaded", false).await.unwrap();
    fs.store.inject_fault("PutObject", fail());
    assert_eq!(fs.flush(fh, None).await.unwrap_err().errno(), libc::EIO);
    fs.release(fh).await;
    assert_eq!(list_names(&fs, d).await, [".", "..", "old"]);
    assert_eq!(stat(&fs, d, &name("new")).await, Err(Error::NotFound));
    assert_eq!(fs.getattr(new.ino).await.unwrap_err().errno(), libc::ENOENT);
    // And the kernel is told to forget the name, which it may otherwise answer for until the TTL.
    assert_eq!(*told.lock().unwrap(), [(d, name("new"), new.ino)]);

    // An object overwritten by a failed upload: its old size and bytes again.
    let old = stat(&fs, d, &name("old")).await.unwrap();
    let fh = fs.open(old.ino, true, true, 1).await.unwrap().fh;
    fs.write(fh, 0, b"new and longer bytes", false).await.unwrap();
    assert_eq!(fs.getattr(old.ino).await.unwrap().size, 20);
    fs.store.inject_fault("PutObject", fail());
    assert_eq!(fs.flush(fh, None).await.unwrap_err().errno(), libc::EIO);
    fs.release(fh).await;
    assert_eq!(fs.getattr(old.ino).await.unwrap().size, 9);
    assert_eq!(stat(&fs, d, &name("old")).await.unwrap().size, 9);
    assert_eq!(told.lock().unwrap().last(), Some(&(d, name("old"), old.ino)));
    // The written bytes are kept in the cache directory.
    let mut kept = Vec::new();
    let mut dirs = vec![cache.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { dirs.push(p) } else { kept.push(std::fs::read(p).unwrap()) }
        }
    }
    assert!(kept.contains(&b"never uploaded".to_vec()) && kept.contains(&b"new and longer bytes".to_vec()));
}

/// A kernel that records what it is told to forget.
struct Recorder(Arc<Mutex<Vec<(Ino, Name, Ino)>>>);

impl super::KernelCache for Recorder {
    fn forget(&self, parent: Ino, name: &Name, ino: Ino) {
        self.0.lock().unwrap().push((parent, name.clone(), ino));
    }

    fn invalidate(&self, _ino: Ino) {}
}

#[tokio::test]
async fn directory_modes_owners_and_times_live_on_the_marker() {
    let store = MemoryStore::new();
    let md = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    store.put_with_meta("b", "kept/", "", md(&[("mode", "16872"), ("uid", "7"), ("mtime", "1600000000")]));
    store.put("b", "kept/f", "x");
    store.put("b", "bare/f", "x");
    let config =
        || Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() };
    let fs = fs_with(store, config());
    // Looked up, the directory's attributes are not known yet (the kernel keeps none).
    assert!(!fs.lookup(ROOT, &name("kept")).await.unwrap().known);
    let kept = stat(&fs, ROOT, &name("kept")).await.unwrap();
    assert_eq!(
        (kept.perm, kept.uid, kept.mtime),
        (0o750, 7, SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000))
    );
    assert_eq!(fs.store.count("HeadObject"), 1, "the marker's metadata");
    // No marker: the defaults are the truth, and its listing said so (no HeadObject).
    let bare = stat(&fs, ROOT, &name("bare")).await.unwrap();
    assert_eq!(bare.perm, 0o755);
    assert_eq!(fs.store.count("HeadObject"), 1);
    // Known now: a lookup gives attributes the kernel may keep, at no cost.
    fs.store.reset_counts();
    assert!(fs.lookup(ROOT, &name("kept")).await.unwrap().known);
    assert_eq!(fs.store.count("HeadObject") + fs.store.count("ListObjectsV2"), 0);

    // chmod, chown, utimens: the marker is put again (one is made for a bare directory).
    let set = SetAttr {
        mode: Some(0o700),
        uid: Some(42),
        mtime: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000)),
        ..Default::default()
    };
    let st = fs.setattr(bare.ino, set).await.unwrap();
    assert_eq!((st.perm, st.uid), (0o700, 42));
    let (_, marker) = fs.store.object("b", "bare/").expect("a marker was made");
    assert_eq!(marker.get("mode").map(String::as_str), Some(&*(libc::S_IFDIR | 0o700).to_string()));
    assert_eq!(marker.get("mtime").map(String::as_str), Some("1000"));
    let st = fs.setattr(kept.ino, SetAttr { mode: Some(0o711), ..Default::default() }).await.unwrap();
    assert_eq!((st.perm, st.uid), (0o711, 7), "the owner stays");
    assert_eq!(fs.store.count("PutObject"), 2);
}
