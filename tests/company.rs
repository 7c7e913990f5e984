//! What company buckets require: server-side encryption (SSE-S3, SSE-KMS, SSE-C), storage
//! classes, canned ACLs, requester pays and the expected bucket owner, on every request that
//! takes them, as the proxy in front of the server records them; and bad values refused at start.

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::*;

/// What a company bucket asks of new objects: SSE-KMS with a chosen key, a storage class, a
/// canned ACL, the expected owner.
const COMPANY: &[&str] = &[
    "--sse",
    "aws:kms",
    "--sse-kms-key-id",
    "alias/s3drive-test",
    "--storage-class",
    "STANDARD_IA",
    "--acl",
    "bucket-owner-full-control",
    "--expected-bucket-owner",
    "123456789012",
];

/// The proxy's record of `op`'s requests: asserts there were some, returns their headers.
fn sent(proxy: &Proxy, op: &str) -> Vec<HashMap<String, String>> {
    let h = proxy.amz_headers(op);
    assert!(!h.is_empty(), "no {op} was sent: {:?}", proxy.counts());
    h
}

#[test]
fn every_upload_path_carries_the_encryption_class_and_acl_asked_for() {
    let c = client();
    let b = bucket("company");
    create_bucket(&c, &b);
    put(&c, &b, "old.txt", "written before\n");
    put(&c, &b, "sub/other.txt", "listed and stat'ed after the reset\n");
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&[b.as_str()], COMPANY, &["--requester-pays", "--write-part-size", "5"]].concat());
    let p = m.path();
    fs::metadata(p.join("old.txt")).unwrap();
    proxy.reset();
    // A small put, a multipart upload, a rename, a metadata copy and a server-side cp.
    fs::write(p.join("small.txt"), "small\n").unwrap();
    fs::write(p.join("big.bin"), data(12 << 20, 5)).unwrap();
    fs::rename(p.join("small.txt"), p.join("moved.txt")).unwrap();
    fs::set_permissions(p.join("old.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    sh(&format!("cp '{}' '{}'", p.join("big.bin").display(), p.join("copy.bin").display()));
    // A folder not listed before and a file whose metadata this mount does not know: a
    // listing and a HeadObject after the reset.
    sh(&format!("ls -l '{}' > /dev/null", p.join("sub").display()));
    drop(m); // the chmod's copy is sent by the unmount at the latest

    let creates: Vec<_> =
        ["PutObject", "CreateMultipartUpload", "CopyObject"].iter().flat_map(|op| sent(&proxy, op)).collect();
    assert!(creates.len() >= 5, "{:?}", proxy.counts());
    for h in &creates {
        assert_eq!(h.get("x-amz-server-side-encryption").map(String::as_str), Some("aws:kms"), "{h:?}");
        assert_eq!(
            h.get("x-amz-server-side-encryption-aws-kms-key-id").map(String::as_str),
            Some("alias/s3drive-test"),
            "{h:?}"
        );
        assert_eq!(h.get("x-amz-acl").map(String::as_str), Some("bucket-owner-full-control"), "{h:?}");
        assert!(h.contains_key("x-amz-storage-class"), "{h:?}");
    }
    // New objects get the class asked for; the copies of old.txt (STANDARD) keep its own.
    for h in sent(&proxy, "PutObject").iter().chain(&sent(&proxy, "CreateMultipartUpload")) {
        assert_eq!(h.get("x-amz-storage-class").map(String::as_str), Some("STANDARD_IA"), "{h:?}");
    }
    // Every object and listing request: requester pays and the expected owner.
    for op in ["PutObject", "UploadPart", "CompleteMultipartUpload", "CopyObject", "HeadObject", "ListObjectsV2"] {
        for h in sent(&proxy, op) {
            assert_eq!(h.get("x-amz-request-payer").map(String::as_str), Some("requester"), "{op}: {h:?}");
            assert_eq!(h.get("x-amz-expected-bucket-owner").map(String::as_str), Some("123456789012"), "{op}: {h:?}");
        }
    }
    // What the server kept.
    let head = |key: &str| rt().block_on(c.head_object().bucket(&b).key(key).send()).unwrap();
    for key in ["moved.txt", "big.bin", "copy.bin"] {
        let h = head(key);
        assert_eq!(h.server_side_encryption().map(|s| s.as_str()), Some("aws:kms"), "{key}");
        assert_eq!(h.storage_class().map(|s| s.as_str()), Some("STANDARD_IA"), "{key}");
    }
    assert_eq!(get(&c, &b, "copy.bin"), data(12 << 20, 5));
    // The chmod's metadata copy of old.txt kept its class (S3 would make it STANDARD anyway
    // without the header, but a STANDARD_IA object must not move, nor this one to STANDARD_IA).
    let old = head("old.txt");
    assert!(old.storage_class().is_none_or(|c| c.as_str() == "STANDARD"), "{:?}", old.storage_class());
    assert_eq!(old.metadata().and_then(|m| m.get("mode")).map(String::as_str), Some("33152"), "the chmod is stored");
    // user.s3.sse says how an object is encrypted.
    let m = mount(&proxy, &[&b]);
    let sse = |f: &str| sh(&format!("getfattr --only-values -n user.s3.sse '{}'", m.path().join(f).display()));
    assert!(sse("big.bin").starts_with("aws:kms") && sse("big.bin").contains("s3drive-test"), "{}", sse("big.bin"));
}

#[test]
fn sse_c_sends_the_key_with_every_request_on_an_object_and_never_logs_it() {
    let c = client();
    let b = bucket("ssec");
    create_bucket(&c, &b);
    let keyfile = tempfile::NamedTempFile::new().unwrap();
    let key: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(7).wrapping_add(3)).collect();
    fs::write(keyfile.path(), &key).unwrap();
    let proxy = Proxy::start();
    let args = [&b, "--sse-c-key-file", keyfile.path().to_str().unwrap(), "--write-part-size", "5"];
    let mut m = mount(&proxy, &args);
    fs::write(m.path().join("secret.txt"), "for our eyes\n").unwrap();
    fs::write(m.path().join("big.bin"), data(11 << 20, 8)).unwrap();
    fs::rename(m.path().join("secret.txt"), m.path().join("renamed.txt")).unwrap();
    let log = {
        m.unmount();
        m.log_text()
    };
    let m = mount(&proxy, &args);
    assert_eq!(fs::read_to_string(m.path().join("renamed.txt")).unwrap(), "for our eyes\n");
    assert_eq!(fs::read(m.path().join("big.bin")).unwrap(), data(11 << 20, 8));
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&key);
    // HeadObject too: the second mount has a cache directory of its own, so it knows nothing
    // of what the first one wrote.
    for op in ["PutObject", "CreateMultipartUpload", "UploadPart", "CopyObject", "GetObject", "HeadObject"] {
        for h in sent(&proxy, op) {
            assert_eq!(
                h.get("x-amz-server-side-encryption-customer-algorithm").map(String::as_str),
                Some("AES256"),
                "{op}: {h:?}"
            );
            assert_eq!(h.get("x-amz-server-side-encryption-customer-key"), Some(&b64), "{op}");
            assert!(h.contains_key("x-amz-server-side-encryption-customer-key-md5"), "{op}");
        }
    }
    for h in sent(&proxy, "CopyObject") {
        assert_eq!(h.get("x-amz-copy-source-server-side-encryption-customer-key"), Some(&b64), "{h:?}");
    }
    let log = log + &m.log_text();
    assert!(!log.contains(&b64), "the key reached the log");
}

#[test]
fn bad_company_options_are_refused_at_start_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let out = s3drive()
            .args(["--endpoint-url", "http://127.0.0.1:9", "--force-path-style"])
            .args(args)
            .arg(mp)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let short = tempfile::NamedTempFile::new().unwrap();
    fs::write(short.path(), b"0123456789").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--storage-class", "FROZEN"], "--storage-class \"FROZEN\" is not a storage class"),
        (&["--sse", "aes"], "aes"),
        (&["--acl", "everyone"], "--acl \"everyone\" is not a canned ACL"),
        (&["--sse-kms-key-id", "k"], "--sse-kms-key-id needs --sse aws:kms"),
        (&["--sse", "AES256", "--sse-kms-key-id", "k"], "not AES256"),
        (&["--sse-c-key-file", "/no/such/key"], "--sse-c-key-file /no/such/key"),
        (&["--sse-c-key-file", short.path().to_str().unwrap()], "an SSE-C key is 32 bytes"),
        (&["--sse", "AES256", "--sse-c-key-file", short.path().to_str().unwrap()], "exclude each other"),
        (&["--expected-bucket-owner", "12345"], "12 digits"),
    ];
    for (args, want) in cases {
        let (code, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(!is_mounted(dir.path()));
}

#[test]
fn an_archived_object_is_eacces_at_open_and_a_restore_request_reaches_the_server() {
    use aws_sdk_s3::primitives::ByteStream;
    let c = client();
    let b = bucket("glacier");
    create_bucket(&c, &b);
    rt().block_on(
        c.put_object()
            .bucket(&b)
            .key("cold.bin")
            .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
            .body(ByteStream::from_static(b"frozen bytes\n"))
            .send(),
    )
    .unwrap();
    put(&c, &b, "warm.txt", "warm\n");
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b]);
    let cold = m.path().join("cold.bin");
    // Listed as any file, with its size.
    let ls = sh(&format!("ls -l {}", m.path().display()));
    assert!(ls.contains("cold.bin") && ls.contains(" 13 "), "{ls}");
    // Opening it to read fails at once, with EACCES and a line in the log saying why.
    let err = fs::File::open(&cold).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    assert_eq!(proxy.count("GetObject"), 0, "no GET was tried");
    assert!(m.log_text().contains("archived: not readable until restored"), "{}", m.log_text());
    let xattr = |name: &str, f: &std::path::Path| sh(&format!("getfattr --only-values -n {name} '{}'", f.display()));
    assert_eq!(xattr("user.s3.storage_class", &cold), "GLACIER");
    assert_eq!(xattr("user.s3.restore", &cold), "archived");
    assert_eq!(xattr("user.s3.restore", &m.path().join("warm.txt")), "not archived");
    // Bad restore requests are EINVAL: a value that is no number of days, a file not archived.
    let setf = |v: &str, f: &std::path::Path| {
        std::process::Command::new("setfattr").args(["-n", "user.s3.restore", "-v", v]).arg(f).output().unwrap()
    };
    let out = setf("soon", &cold);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Invalid argument"));
    assert!(!setf("2d", &m.path().join("warm.txt")).status.success());
    assert_eq!(proxy.count("RestoreObject"), 0);
    // A restore: one RestoreObject, and the state shows it.
    let out = setf("2d,Bulk", &cold);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(proxy.count("RestoreObject"), 1);
    let state = xattr("user.s3.restore", &cold);
    assert!(state == "restoring" || state.starts_with("restored until "), "{state}");
    if state.starts_with("restored until ") {
        assert_eq!(fs::read_to_string(&cold).unwrap(), "frozen bytes\n", "readable once restored");
    }
}

#[test]
fn a_version_at_mount_shows_the_bucket_as_it_was_then() {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let c = client();
    let b = bucket("versions");
    create_bucket(&c, &b);
    let on = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    rt().block_on(c.put_bucket_versioning().bucket(&b).versioning_configuration(on).send()).unwrap();
    put(&c, &b, "f.txt", "first\n");
    put(&c, &b, "dir/g.txt", "g, the one\n");
    put(&c, &b, "gone.txt", "here then\n");
    put(&c, &b, "emptied/y.txt", "removed before\n");
    rt().block_on(c.delete_object().bucket(&b).key("emptied/y.txt").send()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let then = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    put(&c, &b, "f.txt", "second, and longer\n");
    put(&c, &b, "later.txt", "made after\n");
    put(&c, &b, "newdir/z.txt", "a folder made after\n");
    rt().block_on(c.delete_object().bucket(&b).key("gone.txt").send()).unwrap();

    let proxy = Proxy::start();
    let at = format!("@{then}");
    let m = mount(&proxy, &[&b, "--version-at", &at]);
    let p = m.path();
    assert_eq!(
        names_in(p),
        ["dir", "f.txt", "gone.txt"],
        "as it was: no later.txt, gone.txt still there, no folder made after or emptied before"
    );
    assert_eq!(fs::metadata(p.join("newdir")).unwrap_err().raw_os_error(), Some(libc::ENOENT));
    assert_eq!(fs::read_to_string(p.join("f.txt")).unwrap(), "first\n", "the earlier content");
    assert_eq!(fs::metadata(p.join("f.txt")).unwrap().len(), 6);
    assert_eq!(fs::read_to_string(p.join("gone.txt")).unwrap(), "here then\n");
    assert_eq!(fs::read_to_string(p.join("dir/g.txt")).unwrap(), "g, the one\n");
    assert_eq!(fs::metadata(p.join("later.txt")).unwrap_err().raw_os_error(), Some(libc::ENOENT));
    let err = fs::write(p.join("f.txt"), "no").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "a view of the past is read-only: {err}");
    assert_eq!(proxy.count("ListObjectsV2"), 0, "{:?}", proxy.counts());
    assert!(proxy.count("ListObjectVersions") > 0);
    drop(m);

    // In an ordinary mount: user.s3.versions lists a file's versions, newest first.
    let m = mount(&proxy, &[&b]);
    let v = sh(&format!("getfattr --only-values -n user.s3.versions '{}'", m.path().join("f.txt").display()));
    let lines: Vec<&str> = v.lines().collect();
    assert_eq!(lines.len(), 2, "{v}");
    assert!(lines[0].ends_with(" 19 latest") && lines[1].ends_with(" 6"), "{v}");
    assert_eq!(fs::read_to_string(m.path().join("f.txt")).unwrap(), "second, and longer\n");
}

/// Mounts with `args`, writes `body` to `name` without closing it, kills the daemon, and
/// returns the cache directory and the `s3drive recover` id of the file it left.
fn crash_mid_write(proxy: &Proxy, args: &[&str], name: &str, body: &[u8]) -> (tempfile::TempDir, String) {
    use std::io::Write;
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    let mut m = mount(proxy, &[args, &["--cache-dir", dir]].concat());
    let mut f = fs::File::create(m.path().join(name)).unwrap();
    f.write_all(body).unwrap();
    m.child.as_mut().unwrap().kill().unwrap();
    m.child.as_mut().unwrap().wait().unwrap();
    drop(f);
    let _ = std::process::Command::new("fusermount3").arg("-uz").arg(m.path()).status();
    let list = s3drive().args(["recover", "--cache-dir", dir]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let line = list.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{list}"));
    let id = line.split_whitespace().next().unwrap().to_string();
    (cache, id)
}

#[test]
fn recover_uploads_a_crashed_mounts_file_with_the_mounts_encryption_class_and_acl() {
    let c = client();
    let b = bucket("recoverco");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let body = data(1 << 20, 31);
    let (cache, id) = crash_mid_write(&proxy, &[&[b.as_str()], COMPANY].concat(), "kms.bin", &body);
    proxy.reset();
    let out =
        s3drive().args(["recover", "--cache-dir", cache.path().to_str().unwrap(), "upload", &id]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for h in sent(&proxy, "PutObject") {
        assert_eq!(h.get("x-amz-server-side-encryption").map(String::as_str), Some("aws:kms"), "{h:?}");
        assert_eq!(
            h.get("x-amz-server-side-encryption-aws-kms-key-id").map(String::as_str),
            Some("alias/s3drive-test"),
            "{h:?}"
        );
        assert_eq!(h.get("x-amz-storage-class").map(String::as_str), Some("STANDARD_IA"), "{h:?}");
        assert_eq!(h.get("x-amz-acl").map(String::as_str), Some("bucket-owner-full-control"), "{h:?}");
        assert_eq!(h.get("x-amz-expected-bucket-owner").map(String::as_str), Some("123456789012"), "{h:?}");
    }
    let head = rt().block_on(c.head_object().bucket(&b).key("kms.bin").send()).unwrap();
    assert_eq!(head.server_side_encryption().map(|s| s.as_str()), Some("aws:kms"));
    assert_eq!(head.storage_class().map(|s| s.as_str()), Some("STANDARD_IA"));
    assert!(get(&c, &b, "kms.bin") == body);

    // SSE-C: the journal keeps no key; recover wants the same one again.
    let keyfile = tempfile::NamedTempFile::new().unwrap();
    let key: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(5).wrapping_add(1)).collect();
    fs::write(keyfile.path(), &key).unwrap();
    let keyarg = keyfile.path().to_str().unwrap();
    let (cache, id) = crash_mid_write(&proxy, &[&b, "--sse-c-key-file", keyarg], "ssec.bin", &body);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&key);
    for f in files_under(cache.path()) {
        let text = fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&text);
        assert!(!text.contains(&b64), "{} holds the key", f.display());
    }
    let dir = cache.path().to_str().unwrap();
    let out = s3drive().args(["recover", "--cache-dir", dir, "upload", &id]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("--sse-c-key-file"), "{said}");
    let other = tempfile::NamedTempFile::new().unwrap();
    fs::write(other.path(), [9u8; 32]).unwrap();
    let out = s3drive()
        .args(["recover", "--cache-dir", dir, "upload", &id, "--sse-c-key-file", other.path().to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("not the key the mount used"), "{said}");
    proxy.reset();
    let out =
        s3drive().args(["recover", "--cache-dir", dir, "upload", &id, "--sse-c-key-file", keyarg]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for h in sent(&proxy, "PutObject") {
        assert_eq!(h.get("x-amz-server-side-encryption-customer-key"), Some(&b64), "{h:?}");
    }
    let got = rt()
        .block_on(
            c.get_object()
                .bucket(&b)
                .key("ssec.bin")
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&b64)
                .sse_customer_key_md5(
                    base64::engine::general_purpose::STANDARD.encode(<md5::Md5 as md5::Digest>::digest(&key)),
                )
                .send(),
        )
        .unwrap();
    let bytes = rt().block_on(got.body.collect()).unwrap().into_bytes();
    assert!(bytes.as_ref() == body.as_slice());
}
