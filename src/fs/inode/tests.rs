//! Unit tests of `inode.rs`.

use super::*;

fn file(key: &str) -> Location {
    Location::File { bucket: "b".into(), key: key.into() }
}

#[test]
fn numbers_are_stable_and_forget_frees() {
    let t = InodeTable::new(Location::Buckets, Attr::dir(SystemTime::UNIX_EPOCH));
    let a = t.remember(ROOT, file("a"), Attr::dir(SystemTime::UNIX_EPOCH), Instant::now());
    assert_eq!(t.remember(ROOT, file("a"), Attr::dir(SystemTime::UNIX_EPOCH), Instant::now()), a);
    assert_eq!(t.len(), 2);
    t.forget(a, 1);
    assert!(t.get(a).is_some(), "one reference left");
    t.forget(a, 1);
    assert!(t.get(a).is_none());
    assert_eq!(t.len(), 1);
    let again = t.remember(ROOT, file("a"), Attr::dir(SystemTime::UNIX_EPOCH), Instant::now());
    assert_eq!(again, a, "same path, same number after forget");
    t.forget(ROOT, 5);
    assert!(t.get(ROOT).is_some(), "the root is never forgotten");
}

#[test]
fn coldest_offers_unused_files_least_recently_used_first_once() {
    let mut t = InodeTable::new(Location::Buckets, Attr::dir(SystemTime::UNIX_EPOCH));
    t.began = Instant::now().checked_sub(Duration::from_secs(1000)).unwrap();
    let far = Instant::now() + Duration::from_secs(60);
    let files: Vec<Ino> =
        (0..5).map(|i| t.remember(ROOT, file(&format!("f{i}")), Attr::dir(SystemTime::UNIX_EPOCH), far)).collect();
    let dir = Location::Dir { bucket: "b".into(), prefix: "d/".into() };
    let d = t.remember(ROOT, dir, Attr::dir(SystemTime::UNIX_EPOCH), far);
    // Last used: f3 the longest ago, then f0, f1, f2; f4 now; the directory and the root
    // long ago (never offered).
    {
        let mut g = t.inner.lock().unwrap();
        for (at, ino) in [(700, files[3]), (800, files[0]), (850, files[1]), (900, files[2]), (100, d), (0, ROOT)] {
            g.nodes.get_mut(&ino).unwrap().used = at;
        }
    }
    let pick = |n| {
        let mut v: Vec<Ino> = t
            .coldest(n, Duration::from_secs(50))
            .into_iter()
            .map(|(i, p, _)| {
                assert_eq!(p, ROOT);
                i
            })
            .collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<Ino>| {
        v.sort();
        v
    };
    assert_eq!(pick(2), sorted(vec![files[3], files[0]]));
    assert_eq!(pick(5), sorted(vec![files[1], files[2]]), "not offered twice in a row");
    assert!(pick(5).is_empty());
    // A lookup makes a node recent.
    assert!(t.get(files[4]).is_some());
}

#[test]
fn directories_are_offered_from_the_leaves_once_nothing_lies_in_them() {
    let mut t = InodeTable::new(Location::Buckets, Attr::dir(SystemTime::UNIX_EPOCH));
    t.began = Instant::now().checked_sub(Duration::from_secs(1000)).unwrap();
    let far = Instant::now() + Duration::from_secs(60);
    let at = Attr::dir(SystemTime::UNIX_EPOCH);
    let dir = |p: &str| Location::Dir { bucket: "b".into(), prefix: p.into() };
    let top = t.remember(ROOT, dir(""), at.clone(), far);
    let a = t.remember(top, dir("a/"), at.clone(), far);
    let ab = t.remember(a, dir("a/b/"), at.clone(), far);
    let f = t.remember(ab, file("a/b/f"), at.clone(), far);
    let c = t.remember(top, dir("c/"), at.clone(), far);
    let idle = Duration::from_secs(50);
    let age = |t: &InodeTable| {
        let mut g = t.inner.lock().unwrap();
        for n in g.nodes.values_mut() {
            n.used = 0;
        }
    };
    age(&t);
    let offered = |t: &InodeTable| {
        let mut v: Vec<Ino> = t.coldest_dirs(10, idle).into_iter().map(|(i, _, _)| i).collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<Ino>| {
        v.sort();
        v
    };
    // Only c is empty; a/b holds a file, a holds a/b, the bucket holds both; the root never.
    assert_eq!(offered(&t), vec![c]);
    assert_eq!(t.coldest(10, idle).len(), 1, "files are offered by coldest alone");
    t.forget(f, 1);
    age(&t);
    assert_eq!(offered(&t), sorted(vec![ab, c]));
    t.forget(ab, 1);
    t.forget(c, 1);
    age(&t);
    assert_eq!(offered(&t), vec![a]);
    // One used within `idle` is not offered.
    t.get(a);
    assert!(offered(&t).is_empty());
}

#[test]
fn locations_share_a_slot_by_hash_and_are_told_apart_by_the_node() {
    let mut t = Tables::default();
    let node = |loc: &Location| Node {
        parent: ROOT,
        loc: loc.clone(),
        attr: Attr::dir(SystemTime::UNIX_EPOCH),
        fresh_until: Instant::now(),
        cached_etag: None,
        unlinked: false,
        lookups: 1,
        used: 0,
    };
    // Two locations in one slot (as two whose hashes collide would be).
    let (x, y) = (file("x"), file("y"));
    t.nodes.insert(10, Box::new(node(&x)));
    t.nodes.insert(11, Box::new(node(&y)));
    t.link(&x, 10);
    t.by_loc.insert(x.hash(), Slot::Many(vec![10, 11]));
    assert_eq!(t.find(&x), Some(10));
    assert_eq!(t.by_loc.get(&x.hash()).map(|s| matches!(s, Slot::Many(_))), Some(true));
    t.nodes.insert(11, Box::new(node(&x))); // 11 now also at x: the first linked wins
    assert_eq!(t.find(&x), Some(10));
    t.unlink(&x, 10);
    assert_eq!(t.find(&x), Some(11), "one left: back to a single slot");
    assert!(matches!(t.by_loc.get(&x.hash()), Some(Slot::One(11))));
    t.unlink(&x, 11);
    assert!(t.by_loc.is_empty() && t.find(&x).is_none() && t.find(&y).is_none());
    // Through the table: a walk leaves nothing behind once the kernel forgets.
    let table = InodeTable::new(Location::Buckets, Attr::dir(SystemTime::UNIX_EPOCH));
    let inos: Vec<_> = (0..1000)
        .map(|i| table.remember(ROOT, file(&format!("k{i}")), Attr::dir(SystemTime::UNIX_EPOCH), Instant::now()))
        .collect();
    table.detach(&file("k5"));
    assert!(table.find(&file("k5")).is_none(), "detached: not found, still there");
    assert!(table.get(inos[5]).unwrap().unlinked);
    for i in inos {
        table.forget(i, 1);
    }
    let t = table.inner.lock().unwrap();
    assert_eq!((t.nodes.len(), t.by_loc.len()), (1, 1), "only the root");
}

#[test]
fn relocate_moves_a_directory_and_its_children() {
    let t = InodeTable::new(Location::Buckets, Attr::dir(SystemTime::UNIX_EPOCH));
    let d = Location::Dir { bucket: "b".into(), prefix: "a/".into() };
    let now = Instant::now();
    let di = t.remember(ROOT, d, Attr::dir(SystemTime::UNIX_EPOCH), now);
    let fi = t.remember(di, file("a/f"), Attr::dir(SystemTime::UNIX_EPOCH), now);
    let other = t.remember(ROOT, file("ab"), Attr::dir(SystemTime::UNIX_EPOCH), now);
    t.relocate(di, Location::Dir { bucket: "c".into(), prefix: "z/".into() });
    assert_eq!(t.get(fi).unwrap().loc, Location::File { bucket: "c".into(), key: "z/f".into() });
    assert_eq!(t.find(&Location::File { bucket: "c".into(), key: "z/f".into() }).unwrap().0, fi);
    assert!(t.find(&file("a/f")).is_none());
    assert_eq!(t.get(other).unwrap().loc, file("ab"), "a sibling sharing the prefix text is not moved");
}

#[test]
fn a_number_never_changes_its_file_type() {
    let t = InodeTable::new(Location::Buckets, Attr::dir(SystemTime::UNIX_EPOCH));
    let now = Instant::now();
    let fifo = Attr { kind: Kind::Fifo, ..Attr::dir(SystemTime::UNIX_EPOCH) };
    let plain = Attr::dir(SystemTime::UNIX_EPOCH);
    let a = t.remember(ROOT, file("x"), fifo.clone(), now);
    assert_eq!(t.remember(ROOT, file("x"), fifo.clone(), now), a, "same type: same number");
    // set_attr with another type leaves the type and makes the attributes stale.
    t.set_attr(a, plain.clone(), far_future());
    assert_eq!(t.get(a).unwrap().attr.kind, Kind::Fifo);
    assert!(t.get(a).unwrap().fresh_until <= Instant::now());
    // A lookup that finds another type gets another number; the old one stays, unlinked.
    let b = t.remember(ROOT, file("x"), plain, now);
    assert_ne!(a, b);
    assert_eq!(t.get(b).unwrap().attr.kind, Kind::File);
    let old = t.get(a).unwrap();
    assert!(old.unlinked && old.attr.kind == Kind::Fifo);
    assert_eq!(t.find(&file("x")).unwrap().0, b);
    t.forget(a, 2);
    assert!(t.get(a).is_none() && t.get(b).is_some());
}

#[test]
fn file_and_dir_of_one_name_differ() {
    let d = Location::Dir { bucket: "b".into(), prefix: "a/".into() };
    assert_ne!(InodeTable::home(&d), InodeTable::home(&file("a")));
}
