//! Extended attributes through a real mount: share links fetched with curl (against moto, and
//! against s3s-fs, which checks signatures and expiry), information attributes, user attributes
//! that survive a remount and round-trip through cp -a and rsync -aX, and copy_file_range
//! becoming a server-side copy.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::*;

/// `getfattr -n NAME --only-values PATH`: the value, or getfattr's complaint.
fn getfattr(path: &Path, name: &str) -> Result<String, String> {
    let out = Command::new("getfattr").args(["-n", name, "--only-values"]).arg(path).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn setfattr(args: &[&str], path: &Path) -> Result<(), String> {
    let out = Command::new("setfattr").args(args).arg(path).output().unwrap();
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// GET with curl: (HTTP status, body).
fn curl(url: &str) -> (u16, Vec<u8>) {
    let body = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("curl")
        .args(["-s", "-o"])
        .arg(body.path())
        .args(["-w", "%{http_code}", url])
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    (code, fs::read(body.path()).unwrap())
}

/// Seconds from now until an RFC 3339 UTC time such as 2026-11-25T01:02:03Z.
fn secs_until(rfc3339: &str) -> i64 {
    let out = sh(&format!("date -u -d '{rfc3339}' +%s"));
    let t: i64 = out.trim().parse().unwrap();
    t - SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn share_link_fetches_the_object_follows_renames_and_is_signed_locally() {
    let c = client();
    let b = bucket("link");
    create_bucket(&c, &b);
    let body = data(300_000, 1);
    put(&c, &b, "docs/report 2026.pdf", body.clone());
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b, "--allow-other"]);
    let file = m.path().join("docs/report 2026.pdf");
    fs::metadata(&file).unwrap();
    proxy.reset();
    let url = getfattr(&file, "user.s3.presigned_url").unwrap();
    assert_eq!(proxy.counts().values().sum::<u64>(), 0, "signed locally: {:?}", proxy.counts());
    assert!(url.starts_with(&proxy.endpoint()), "{url}: the mount's endpoint and path style");
    assert!(url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=3600"), "{url}");
    assert!(!url.contains(' '), "{url}");
    assert_eq!(curl(&url), (200, body.clone()));

    let expires = getfattr(&file, "user.s3.presigned_url_expires").unwrap();
    let left = secs_until(&expires);
    assert!((3590..=3601).contains(&left), "{expires}: {left} s left");
    let short = getfattr(&file, "user.s3.presigned_url.15m").unwrap();
    assert!(short.contains("X-Amz-Expires=900"), "{short}");
    assert!(getfattr(&file, "user.s3.presigned_url.soon").unwrap_err().contains("Invalid argument"));

    // Information attributes.
    assert_eq!(getfattr(&file, "user.s3.uri").unwrap(), format!("s3://{b}/docs/report 2026.pdf"));
    let head = rt().block_on(c.head_object().bucket(&b).key("docs/report 2026.pdf").send()).unwrap();
    assert_eq!(getfattr(&file, "user.s3.etag").unwrap(), head.e_tag().unwrap());
    assert_eq!(getfattr(&file, "user.s3.storage_class").unwrap(), "STANDARD");
    assert!(getfattr(&file, "user.s3.content_type").is_ok());
    assert_eq!(getfattr(m.path(), "user.s3.region").unwrap(), "us-east-1");
    assert_eq!(getfattr(&m.path().join("docs"), "user.s3.uri").unwrap(), format!("s3://{b}/docs/"));
    assert!(getfattr(&file, "user.s3.nonsense").unwrap_err().contains("No such attribute"));

    // Not listed: cp -a and rsync -X must not carry links around.
    let listed = sh(&format!("getfattr -d -m - '{}'", file.display()));
    assert!(!listed.contains("user.s3."), "{listed}");
    // Read-only.
    assert!(setfattr(&["-n", "user.s3.uri", "-v", "x"], &file).unwrap_err().contains("Operation not permitted"));
    assert!(setfattr(&["-x", "user.s3.etag"], &file).unwrap_err().contains("Operation not permitted"));

    // A directory, and a file still being written, have no link.
    let e = getfattr(&m.path().join("docs"), "user.s3.presigned_url").unwrap_err();
    assert!(e.contains("Is a directory"), "{e}");
    let mut w = fs::File::create(m.path().join("docs/draft.txt")).unwrap();
    w.write_all(b"not yet").unwrap();
    let e = getfattr(&m.path().join("docs/draft.txt"), "user.s3.presigned_url").unwrap_err();
    assert!(e.contains("busy"), "{e}");
    drop(w);
    let draft = getfattr(&m.path().join("docs/draft.txt"), "user.s3.presigned_url").unwrap();
    assert_eq!(curl(&draft), (200, b"not yet".to_vec()));

    // Only someone who may read the file gets its link.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "getfattr", "-n", "user.s3.presigned_url"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{out:?}");

    // The link of a renamed file follows the new key.
    let moved = m.path().join("docs/final.pdf");
    fs::rename(&file, &moved).unwrap();
    let url = getfattr(&moved, "user.s3.presigned_url").unwrap();
    assert!(url.contains("/docs/final.pdf?"), "{url}");
    assert_eq!(curl(&url), (200, body));
}

#[test]
fn share_links_pass_signature_checks_and_expire() {
    // s3s-fs checks SigV4 signatures and the expiry of presigned URLs (moto checks neither).
    let (port, root) = s3s_fs();
    let b = bucket("expiry");
    fs::create_dir_all(root.join(&b)).unwrap();
    fs::write(root.join(&b).join("photo.jpg"), b"jpeg bytes").unwrap();
    let m = mount_endpoint(&format!("http://127.0.0.1:{port}"), &[&b]);
    let file = m.path().join("photo.jpg");
    let url = getfattr(&file, "user.s3.presigned_url").unwrap();
    assert_eq!(curl(&url), (200, b"jpeg bytes".to_vec()));
    let tampered = url.replace("photo.jpg", "photo.jpeg");
    assert_eq!(curl(&tampered).0, 403, "a link is good for its own key only");

    let short = getfattr(&file, "user.s3.presigned_url.1s").unwrap();
    assert!(short.contains("X-Amz-Expires=1&") || short.ends_with("X-Amz-Expires=1"), "{short}");
    std::thread::sleep(Duration::from_millis(2500));
    let (code, body) = curl(&short);
    assert_eq!(code, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("expired"));
}

#[test]
fn user_xattrs_persist_and_survive_cp_a_and_rsync_x_round_trips() {
    let c = client();
    let b = bucket("xattr");
    create_bucket(&c, &b);
    put(&c, &b, "tree/uploaded.txt", "already there\n");
    let proxy = Proxy::start();
    {
        let m = mount(&proxy, &[&b]);
        let up = m.path().join("tree/uploaded.txt");
        setfattr(&["-n", "user.color", "-v", "blue"], &up).unwrap();
        setfattr(&["-n", "user.bin", "-v", "0x00ff22"], &up).unwrap();
        assert_eq!(getfattr(&up, "user.color").unwrap(), "blue");
        // Set while the file is being written: goes up with the upload.
        let new = m.path().join("tree/new.txt");
        let mut w = fs::File::create(&new).unwrap();
        w.write_all(b"fresh\n").unwrap();
        setfattr(&["-n", "user.origin", "-v", "written here"], &new).unwrap();
        drop(w);
        setfattr(&["-n", "user.gone", "-v", "soon"], &new).unwrap();
        setfattr(&["-x", "user.gone"], &new).unwrap();
        assert!(getfattr(&new, "user.gone").unwrap_err().contains("No such attribute"));
        // S3 allows 2 KiB of user metadata.
        let big = "v".repeat(3000);
        let e = setfattr(&["-n", "user.big", "-v", &big], &up).unwrap_err();
        assert!(e.contains("Argument list too long"), "{e}");
        // Other namespaces are not supported, for reading either: `ls -l` then stops probing
        // the SELinux label and ACL of every file after the first.
        let e = setfattr(&["-n", "trusted.x", "-v", "1"], &up).unwrap_err();
        assert!(e.contains("Operation not supported"), "{e}");
        let e = setfattr(&["-x", "system.posix_acl_access"], &up).unwrap_err();
        assert!(e.contains("Operation not supported"), "{e}");
        for name in ["security.selinux", "system.posix_acl_access", "trusted.x"] {
            let e = getfattr(&up, name).unwrap_err();
            assert!(e.contains("Operation not supported"), "{name}: {e}");
        }
    }
    // Unmounting saved every change: they are in S3 now, in s3fs's metadata layout.
    let head = rt().block_on(c.head_object().bucket(&b).key("tree/uploaded.txt").send()).unwrap();
    assert!(head.metadata().unwrap().contains_key("xattr"), "{:?}", head.metadata());
    let m = mount(&proxy, &[&b]);
    let up = m.path().join("tree/uploaded.txt");
    assert_eq!(getfattr(&up, "user.color").unwrap(), "blue");
    assert_eq!(
        sh(&format!("getfattr -e hex -n user.bin --only-values '{}' | od -An -tx1", up.display())).trim(),
        "00 ff 22"
    );
    assert_eq!(getfattr(&m.path().join("tree/new.txt"), "user.origin").unwrap(), "written here");
    let listed = sh(&format!("getfattr -d '{}'", m.path().join("tree/new.txt").display()));
    assert!(listed.contains("user.origin=\"written here\"") && !listed.contains("user.gone"), "{listed}");
    assert_eq!(fs::read_to_string(&up).unwrap(), "already there\n");

    // Out of the mount and back in, with cp -a and with rsync -aX.
    let local = tempfile::tempdir().unwrap();
    sh(&format!("cp -a '{}' '{}/cp'", m.path().join("tree").display(), local.path().display()));
    assert_eq!(getfattr(&local.path().join("cp/uploaded.txt"), "user.color").unwrap(), "blue");
    sh(&format!("cp -a '{}/cp' '{}'", local.path().display(), m.path().join("back-cp").display()));
    sh(&format!("rsync -aX '{}/' '{}/rs/'", m.path().join("tree").display(), local.path().display()));
    assert_eq!(getfattr(&local.path().join("rs/new.txt"), "user.origin").unwrap(), "written here");
    sh(&format!("rsync -aX '{}/rs/' '{}/'", local.path().display(), m.path().join("back-rs").display()));
    drop(m);
    let m = mount(&proxy, &[&b]);
    for d in ["back-cp", "back-rs"] {
        assert_eq!(getfattr(&m.path().join(d).join("uploaded.txt"), "user.color").unwrap(), "blue", "{d}");
        assert_eq!(getfattr(&m.path().join(d).join("new.txt"), "user.origin").unwrap(), "written here", "{d}");
        let head = rt().block_on(c.head_object().bucket(&b).key(format!("{d}/uploaded.txt")).send()).unwrap();
        let xattr = head.metadata().unwrap().get("xattr").cloned().unwrap_or_default();
        assert!(!xattr.to_lowercase().contains("presigned"), "no link stored: {xattr}");
    }
}

#[test]
fn cp_between_buckets_is_one_server_side_copy() {
    let c = client();
    let (b1, b2) = (bucket("cfr1"), bucket("cfr2"));
    create_bucket(&c, &b1);
    create_bucket(&c, &b2);
    let body = data(256 << 20, 7);
    put(&c, &b1, "big.bin", body.clone());
    let proxy = Proxy::start();
    let m = mount(&proxy, &["--bucket", &b1, "--bucket", &b2]);
    let (src, dst) = (m.path().join(&b1).join("big.bin"), m.path().join(&b2).join("big.bin"));
    fs::metadata(&src).unwrap();
    proxy.reset();
    sh(&format!("cp '{}' '{}'", src.display(), dst.display()));
    let n = proxy.counts();
    assert_eq!(proxy.count("GetObject"), 0, "{n:?}");
    assert_eq!(proxy.count("PutObject") + proxy.count("UploadPart"), 0, "{n:?}");
    assert_eq!(proxy.count("CopyObject"), 1, "{n:?}");
    assert_eq!(fs::metadata(&dst).unwrap().len(), 256 << 20);
    assert!(get(&c, &b2, "big.bin") == body, "content identical");

    // cp -a: the copy carries mode and mtime, still one CopyObject.
    fs::set_permissions(&src, fs::Permissions::from_mode(0o640)).unwrap();
    sh(&format!("touch -m -d @1600000000 '{}'", src.display()));
    drop(m); // saves the chmod/utimens
    let m = mount(&proxy, &["--bucket", &b1, "--bucket", &b2]);
    let src = m.path().join(&b1).join("big.bin");
    let dst = m.path().join(&b1).join("copy.bin");
    fs::metadata(&src).unwrap();
    proxy.reset();
    sh(&format!("cp -a '{}' '{}'", src.display(), dst.display()));
    assert_eq!(proxy.count("CopyObject"), 1, "{:?}", proxy.counts());
    assert_eq!(proxy.count("GetObject") + proxy.count("PutObject") + proxy.count("UploadPart"), 0);
    drop(m);
    let m = mount(&proxy, &["--bucket", &b1]);
    let src = m.path().join(&b1).join("big.bin");
    let meta = fs::metadata(m.path().join(&b1).join("copy.bin")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(meta.modified().unwrap(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000));

    // A range that is not a whole object falls back to reads and writes, and is right.
    let part = m.path().join(&b1).join("part.bin");
    sh(&format!(
        "python3 -c 'import os; s=os.open(\"{}\", os.O_RDONLY); d=os.open(\"{}\", os.O_WRONLY|os.O_CREAT, 0o644); \
         n=os.copy_file_range(s, d, 100000, 5); os.close(d); print(n)'",
        src.display(),
        part.display()
    ));
    assert_eq!(fs::read(&part).unwrap(), &body[5..100_005]);
}
