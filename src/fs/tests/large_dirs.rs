//! Tests of listings over the in-memory store: large directories, the walk-ahead, the listing
//! cache's TTLs and budget.

use super::*;

#[tokio::test]
async fn lookups_while_a_large_directory_is_being_read_use_the_pages_listed_so_far() {
    // `ls -l` stats each name as it reads it: before the last page has come.
    let mut store = MemoryStore::new();
    store.page_size = 2;
    for i in 0..6 {
        store.put("b", &format!("f{i}"), "x");
    }
    let config = Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() };
    let fs = fs_with(store, config);
    let fh = fs.opendir(ROOT).await.unwrap();
    let first = fs.readdir(fh, 0, 4).await.unwrap();
    assert!(first.iter().any(|it| it.name == "f1"));
    let lists = fs.store.count("ListObjectsV2");
    let f1 = stat(&fs, ROOT, &name("f1")).await.unwrap();
    assert_eq!(f1.size, 1);
    assert_eq!(fs.store.count("ListObjectsV2"), lists, "no probe listing: the pages read answer it");
    assert_eq!(fs.store.count("HeadObject"), 1, "one HeadObject for its metadata, no probe");
    // A name not listed yet is still looked up in S3 (absence from a partial listing proves nothing).
    assert!(stat(&fs, ROOT, &name("f5")).await.is_ok());
}

#[tokio::test]
async fn a_walk_lists_the_next_folders_ahead_and_none_twice() {
    let tree = || {
        let store = MemoryStore::new();
        for d in 0..20 {
            for f in 0..3 {
                store.put("b", &format!("top/d{d:02}/f{f}"), "x");
            }
        }
        store
    };
    let config = Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() };
    let fs = fs_with(tree(), config);
    let top = stat(&fs, ROOT, &name("top")).await.unwrap().ino;
    assert_eq!(list_names(&fs, top).await.len(), 22);
    let settle = || async {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    };
    let lists = || fs.store.count("ListObjectsV2");
    let before = lists();
    // `find` opens the folders in order: after two, the next four are listed ahead, then eight...
    let d = |i: usize| name(&format!("d{i:02}"));
    let mut inos = Vec::new();
    for i in 0..2 {
        let ino = fs.lookup(top, &d(i)).await.unwrap().ino;
        inos.push(ino);
        assert_eq!(list_names(&fs, ino).await.len(), 5);
        settle().await;
    }
    assert_eq!(lists() - before, 2 + 4, "d00 and d01 listed, d02..d05 listed ahead");
    for i in 2..20 {
        let ino = fs.lookup(top, &d(i)).await.unwrap().ino;
        assert_eq!(list_names(&fs, ino).await, [".", "..", "f0", "f1", "f2"]);
        settle().await;
    }
    assert_eq!(lists() - before, 20, "each folder listed once");
    // Opened out of order (a person clicking around, in a new mount): nothing is listed ahead.
    let fs = fs_with(
        tree(),
        Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() },
    );
    let lists = || fs.store.count("ListObjectsV2");
    let top = stat(&fs, ROOT, &name("top")).await.unwrap().ino;
    assert_eq!(list_names(&fs, top).await.len(), 22);
    let before = lists();
    for i in [10, 3] {
        let ino = fs.lookup(top, &d(i)).await.unwrap().ino;
        assert_eq!(list_names(&fs, ino).await.len(), 5);
        settle().await;
    }
    assert_eq!(lists() - before, 2, "d10 and d03 only");

    // A listing ahead that fails (the network) leaves nothing behind: the walk lists that
    // folder itself when it gets there, and every folder shows its names.
    let fs = fs_with(
        tree(),
        Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() },
    );
    let lists = || fs.store.count("ListObjectsV2");
    let top = stat(&fs, ROOT, &name("top")).await.unwrap().ino;
    list_names(&fs, top).await;
    let before = lists();
    for i in 0..20 {
        let ino = fs.lookup(top, &d(i)).await.unwrap().ino;
        assert_eq!(list_names(&fs, ino).await, [".", "..", "f0", "f1", "f2"], "d{i:02}");
        if i == 1 {
            // The first of the listings d01's open asked for ahead (d02's) fails.
            fs.store.inject_fault("ListObjectsV2", crate::store::StoreError::Network("reset".into()));
        }
        settle().await;
    }
    assert_eq!(lists() - before, 20 + 1, "the failed one is sent again by the walk itself");
}

#[tokio::test]
async fn listings_past_their_ttl_are_dropped_and_in_use_ones_kept() {
    let store = MemoryStore::new();
    for d in ["a", "b", "c"] {
        store.put("b", &format!("{d}/f"), "x");
    }
    let config = Config {
        source: Source::Prefix { bucket: "b".into(), prefix: String::new() },
        metadata_ttl: Duration::from_millis(300),
        ..Default::default()
    };
    let fs = fs_with(store, config);
    let mut inos = Vec::new();
    for d in ["a", "b"] {
        let ino = fs.lookup(ROOT, &name(d)).await.unwrap().ino;
        list_names(&fs, ino).await;
        inos.push(ino);
    }
    fs.trim_listings();
    assert!(inos.iter().all(|i| fs.listings.contains(*i)), "fresh listings stay");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let c = fs.lookup(ROOT, &name("c")).await.unwrap().ino;
    list_names(&fs, c).await;
    fs.trim_listings();
    assert!(!inos.iter().any(|i| fs.listings.contains(*i)), "expired listings are dropped");
    // A listing in use (a page arriving) is left alone, even past its TTL, until released.
    let busy = fs.cached_listing(c).unwrap();
    let held = busy.lock().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    fs.trim_listings();
    assert!(fs.listings.contains(c), "a listing in use is kept");
    drop(held);
    fs.trim_listings();
    assert!(!fs.listings.contains(c));
}

#[tokio::test]
async fn lookups_walking_a_large_directory_get_it_listed_whole_once_probes_cost_more() {
    let mut store = MemoryStore::new();
    store.page_size = 10;
    for i in 0..200 {
        store.put("b", &format!("d{i:03}/f"), "x");
    }
    let fs = fs_with(
        store,
        Config { source: Source::Prefix { bucket: "b".into(), prefix: String::new() }, ..Default::default() },
    );
    let requests = || fs.store.count("ListObjectsV2") + fs.store.count("HeadObject");
    // The first page shows the directory is large: lookups probe each name (a HeadObject and
    // a one-key listing), until so many came that the whole listing is fetched.
    let n = LIST_WHOLE_AFTER as usize + 1;
    for i in 0..n {
        assert!(fs.lookup(ROOT, &name(&format!("d{i:03}"))).await.unwrap().dir);
    }
    let probed = requests();
    assert!(probed >= 2 * LIST_WHOLE_AFTER as u64, "{probed}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let listed = requests() - probed;
    assert!((20..=21).contains(&listed), "the directory's 20 pages, once: {listed}");
    // The rest are answered from it: no request.
    for i in n..200 {
        assert!(fs.lookup(ROOT, &name(&format!("d{i:03}"))).await.unwrap().dir);
    }
    assert_eq!(requests(), probed + listed);
    assert_eq!(fs.lookup(ROOT, &name("nothing")).await.map(|s| s.dir), Err(Error::NotFound));
    assert_eq!(requests(), probed + listed, "a name it lacks is missing, also without a request");
}

/// A large listing a walk still uses is fetched again as it expires (as long before as the
/// last listing took, so at most once a TTL), and once it has expired, lookups in the meantime
/// cost one request each (a folder it showed: a one-key listing, never a HeadObject beside it).
#[tokio::test]
async fn a_large_listing_still_in_use_is_fetched_again_once_a_ttl_and_usable_meanwhile() {
    let mut store = MemoryStore::new();
    store.page_size = 10;
    for i in 0..LIST_PAGE + 50 {
        store.put("b", &format!("d{i:04}/f"), "x");
    }
    let ttl = Duration::from_secs(1);
    let fs = fs_with(
        store,
        Config {
            source: Source::Prefix { bucket: "b".into(), prefix: String::new() },
            metadata_ttl: ttl,
            ..Default::default()
        },
    );
    // A readdir lists it whole (106 pages); lookups within the TTL cost nothing.
    assert_eq!(list_names(&fs, ROOT).await.len(), LIST_PAGE + 52);
    let lists = || fs.store.count("ListObjectsV2");
    let listed = lists();
    assert!(fs.lookup(ROOT, &name("d0001")).await.unwrap().dir);
    tokio::time::sleep(ttl / 2 + Duration::from_millis(50)).await;
    assert!(fs.lookup(ROOT, &name("d0002")).await.unwrap().dir);
    assert_eq!(lists(), listed, "not fetched again half way: listing it takes far less");
    // Expired: a folder it showed costs a one-key listing, and the folder is listed again.
    tokio::time::sleep(ttl / 2).await;
    assert!(fs.lookup(ROOT, &name("d0003")).await.unwrap().dir);
    assert_eq!(fs.store.count("ListObjectsV2 probe"), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lists() < 2 * listed + 1 {
        assert!(std::time::Instant::now() < deadline, "the whole directory once more: {}", lists() - listed);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The new listing answers: no request.
    let now = lists();
    assert!(fs.lookup(ROOT, &name("d0004")).await.unwrap().dir);
    assert!(fs.lookup(ROOT, &name("d1049")).await.unwrap().dir);
    assert_eq!(fs.lookup(ROOT, &name("d9999")).await.map(|s| s.dir), Err(Error::NotFound));
    assert_eq!(lists(), now);
    assert_eq!(fs.store.count("HeadObject"), 0, "no HeadObject for a listed folder");
}

/// `ls -l` of a folder of 100,000 files whose walk outlasts its listing's TTL many times over:
/// one HeadObject per name at most, about one listing page per 1,000 names per TTL, and never a
/// one-key listing ("is this name also a folder?") for a name the last complete listing showed
/// as a file.
#[tokio::test]
async fn ls_l_of_a_large_folder_outlasting_its_ttl_costs_one_head_per_name() {
    const FILES: usize = 100_000;
    let ttl = Duration::from_secs(1);
    let (fs, dir) = flat_folder(FILES, ttl).await;
    let started = std::time::Instant::now();
    // readdir to the end, then a stat of every name in order (ls -l without readdirplus's
    // attributes: none are known). A pause now and then lets the TTL run out mid-walk; the
    // background trim drops what expired, as the daemon's timer does.
    let names = list_names(&fs, dir).await;
    assert_eq!(names.len(), FILES + 2);
    for (i, n) in names[2..].iter().enumerate() {
        let st = stat(&fs, dir, &name(n)).await.unwrap();
        assert!(!st.dir && st.known, "{n}");
        if i % 2_000 == 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            fs.trim_listings();
        }
        if i % 25_000 == 12_345 {
            // A pause longer than the TTL (the user looked at the screen): everything known
            // has expired, and the walk goes on while the folder is listed again.
            tokio::time::sleep(ttl + Duration::from_millis(200)).await;
        }
    }
    let ttls = (started.elapsed().as_secs_f64() / ttl.as_secs_f64()).ceil() as u64 + 1;
    let (heads, lists, probes) =
        (fs.store.count("HeadObject"), fs.store.count("ListObjectsV2"), fs.store.count("ListObjectsV2 probe"));
    assert!(ttls >= 3, "the walk outlasted the TTL ({ttls} TTLs)");
    assert_eq!(probes, 0, "no one-key listing for a listed file");
    // One HeadObject a name; again only for those fetched ahead before a pause longer than
    // the TTL (their answers expired before the walk came to them).
    let pauses = (FILES / 25_000) as u64;
    let bound = FILES as u64 + pauses * listings::STAT_AHEAD_MAX as u64;
    assert!(heads <= bound, "{heads} HeadObjects for {FILES} names ({pauses} pauses)");
    let pages = (FILES / LIST_PAGE) as u64 + 1;
    assert!(lists <= pages * ttls, "{lists} listing pages in {ttls} TTLs ({pages} pages a listing)");
}

/// GNU `ls -l` stats each name as readdir hands it over, so the walk pages through the folder
/// for longer than the TTL: names of recent pages are answered from the listing being paged
/// (its first page long expired), with one HeadObject each and no probe.
#[tokio::test]
async fn ls_l_stating_as_it_reads_a_large_folder_costs_one_head_per_name() {
    const FILES: usize = 30_000;
    let ttl = Duration::from_millis(500);
    let (fs, dir) = flat_folder(FILES, ttl).await;
    let started = std::time::Instant::now();
    let fh = fs.opendir(dir).await.unwrap();
    let (mut off, mut seen) = (0, 0);
    loop {
        let items = fs.readdir(fh, off, 200).await.unwrap();
        if items.is_empty() {
            break;
        }
        off = items.last().unwrap().next;
        for it in items.iter().filter(|it| it.entry.is_some()) {
            fs.remember_entry(dir, it.entry.as_ref().unwrap(), it.stat.known);
            let st = stat(&fs, dir, &name(&it.name)).await.unwrap();
            assert!(!st.dir && st.known);
            seen += 1;
        }
        if seen % 2_000 == 0 {
            tokio::time::sleep(Duration::from_millis(40)).await;
            fs.trim_listings();
        }
    }
    fs.releasedir(fh);
    assert_eq!(seen, FILES);
    let ttls = (started.elapsed().as_secs_f64() / ttl.as_secs_f64()).ceil() as u64 + 1;
    assert!(ttls >= 3, "the walk outlasted the TTL ({ttls} TTLs)");
    assert_eq!(fs.store.count("ListObjectsV2 probe"), 0, "no one-key listing");
    assert!(fs.store.count("HeadObject") <= FILES as u64, "{} HeadObjects", fs.store.count("HeadObject"));
    let lists = fs.store.count("ListObjectsV2");
    let pages = (FILES / LIST_PAGE) as u64 + 1;
    assert!(lists <= pages * ttls, "{lists} listing pages in {ttls} TTLs");
}

/// A core over a bucket whose folder `flat/` holds `files` objects, with `ttl` for listings and
/// missing names; the folder's inode, and the request counts reset.
async fn flat_folder(files: usize, ttl: Duration) -> (Arc<Fs<MemoryStore>>, Ino) {
    let store = MemoryStore::new();
    store.create_bucket("b");
    for i in 0..files {
        store.put("b", &format!("flat/f{i:06}"), "x");
    }
    let fs = fs_with(
        store,
        Config {
            source: Source::Prefix { bucket: "b".into(), prefix: String::new() },
            metadata_ttl: ttl,
            negative_ttl: ttl,
            ..Default::default()
        },
    );
    let dir = stat(&fs, ROOT, &name("flat")).await.unwrap().ino;
    fs.store.reset_counts();
    (fs, dir)
}
