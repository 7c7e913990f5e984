//! The network and the disk going wrong, through a real mount against moto: bursts of 503
//! SlowDown, a connection cut mid-GET, a stalled server, kill -9 of the daemon mid-write (and
//! `s3drive recover`), a full cache directory, and who may read the staging files. The faults
//! are injected by the test proxy (`Trouble`), so each test names exactly what went wrong.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn open_uploads(c: &aws_sdk_s3::Client, b: &str) -> usize {
    rt().block_on(c.list_multipart_uploads().bucket(b).send()).unwrap().uploads().len()
}

#[test]
fn twenty_slowdowns_in_a_row_during_a_multipart_upload_and_a_read_are_ridden_out() {
    let c = client();
    let b = bucket("slowdown");
    create_bucket(&c, &b);
    let down = data(30 << 20, 21);
    put(&c, &b, "down.bin", down.clone());
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b]);

    proxy.trouble("UploadPart", Trouble::Error { status: 503, code: "SlowDown" }, 20);
    let up = data(30 << 20, 20);
    let mut f = fs::File::create(m.path().join("up.bin")).unwrap();
    f.write_all(&up).unwrap();
    close(f).expect("the upload rides out 20 SlowDowns");
    assert_eq!(proxy.trouble_left(), 0, "all 20 SlowDowns were answered");
    assert!(get(&c, &b, "up.bin") == up, "the object holds the bytes written");

    proxy.trouble("GetObject", Trouble::Error { status: 503, code: "SlowDown" }, 20);
    let got = fs::read(m.path().join("down.bin")).expect("the read rides out 20 SlowDowns");
    assert_eq!(proxy.trouble_left(), 0);
    assert!(got == down, "the bytes read are the object's");
    assert!(m.log_text().contains("retrying"), "retries are logged at debug level");
}

#[test]
fn a_lost_answer_to_complete_multipart_upload_is_not_an_error_when_the_upload_completed() {
    let c = client();
    let b = bucket("lostcomplete");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b]);
    // The server completes the upload, but the connection closes before its answer; the
    // retry meets NoSuchUpload, as on servers that forget a completed upload at once (moto
    // itself would complete it again).
    proxy.trouble("CompleteMultipartUpload", Trouble::CutResponse(0), 1);
    proxy.trouble("CompleteMultipartUpload", Trouble::Error { status: 404, code: "NoSuchUpload" }, 1);
    let body = data(20 << 20, 23);
    let mut f = fs::File::create(m.path().join("done.bin")).unwrap();
    f.write_all(&body).unwrap();
    close(f).expect("the upload completed: close succeeds");
    assert_eq!(proxy.trouble_left(), 0, "the answer was cut, and the retry met NoSuchUpload");
    assert!(proxy.count("CompleteMultipartUpload") >= 2, "{:?}", proxy.counts());
    assert!(get(&c, &b, "done.bin") == body);
    assert!(m.log_text().contains("an earlier try completed it"), "{}", m.log_text());
    assert_eq!(fs::metadata(m.path().join("done.bin")).unwrap().len(), body.len() as u64);

    // A retry that meets NoSuchUpload when no try completed it (the upload aborted by someone
    // else) stays an error: the object is not there.
    proxy.trouble("CompleteMultipartUpload", Trouble::Error { status: 500, code: "InternalError" }, 1);
    proxy.trouble("CompleteMultipartUpload", Trouble::Error { status: 404, code: "NoSuchUpload" }, 1);
    let mut f = fs::File::create(m.path().join("gone.bin")).unwrap();
    f.write_all(&body).unwrap();
    let err = close(f).expect_err("the upload is lost: close fails");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(proxy.trouble_left(), 0);
    assert!(!exists(&c, &b, "gone.bin"));
}

#[test]
fn a_connection_cut_after_1_mib_of_a_64_mib_read_resumes_with_the_right_bytes() {
    let c = client();
    let b = bucket("cut");
    create_bucket(&c, &b);
    let body = data(64 << 20, 22);
    put(&c, &b, "big.bin", body.clone());
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b]);
    // The first GetObject's connection is closed after 1 MiB of its answer.
    proxy.trouble("GetObject", Trouble::CutResponse(1 << 20), 1);
    let got = fs::read(m.path().join("big.bin")).expect("a cut costs a retry, not an EIO");
    assert_eq!(proxy.trouble_left(), 0, "the cut happened");
    assert_eq!(got.len(), body.len());
    assert!(got == body, "no wrong or missing bytes");
    assert!(m.log_text().contains("resuming from the first missing byte"), "{}", m.log_text());
}

#[test]
fn a_stalled_upload_fails_close_within_the_bound_and_the_mount_recovers() {
    let c = client();
    let b = bucket("stall");
    create_bucket(&c, &b);
    put(&c, &b, "f.bin", "old\n");
    let proxy = Proxy::start();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let m = mount(&proxy, &[&b, "--cache-dir", cache_dir, "--request-timeout", "2", "--retry-budget", "4"]);

    proxy.trouble("UploadPart", Trouble::Stall, 1000);
    let body = data(20 << 20, 23);
    let started = Instant::now();
    let mut f = fs::File::create(m.path().join("f.bin")).unwrap();
    let r = f.write_all(&body).and_then(|_| close(f));
    let took = started.elapsed();
    let err = r.expect_err("a server that never answers fails close");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // The bound: budget (4 s) + one stalled attempt (2 s); generous for a loaded machine.
    assert!(took < Duration::from_secs(30), "close failed after {took:?}");
    assert_eq!(get(&c, &b, "f.bin"), b"old\n", "the old object is intact");
    let kept = files_under(cache.path()).into_iter().any(|p| fs::read(p).is_ok_and(|k| k == body));
    assert!(kept, "the bytes are kept in the cache directory");

    proxy.clear_faults();
    fs::write(m.path().join("after.txt"), "the mount still works\n").unwrap();
    assert_eq!(get(&c, &b, "after.txt"), b"the mount still works\n");
}

#[test]
fn kill_9_mid_write_is_found_at_the_next_mount_and_recover_uploads_it_without_overwriting() {
    let c = client();
    let b = bucket("crash");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let mut m = mount(&proxy, &[&b, "--cache-dir", cache_dir]);

    // Two 8 MiB parts go up while the file is written; then the daemon dies.
    let body = data(20 << 20, 24);
    let mut f = fs::File::create(m.path().join("half.bin")).unwrap();
    f.write_all(&body).unwrap();
    assert_eq!(proxy.count("CreateMultipartUpload"), 1);
    m.child.as_mut().unwrap().kill().unwrap();
    m.child.as_mut().unwrap().wait().unwrap();
    drop(f);
    let _ = Command::new("fusermount3").arg("-uz").arg(m.path()).status();
    assert_eq!(open_uploads(&c, &b), 1, "the dead daemon's multipart upload is open");
    let staged: Vec<_> = files_under(cache.path())
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".journal") && fs::read(p).is_ok_and(|k| k == body))
        .collect();
    assert_eq!(staged.len(), 1, "every byte write(2) accepted is in the staging file");

    // The next mount reports it and aborts the orphaned upload.
    let m2 = mount(&proxy, &[&b, "--cache-dir", cache_dir]);
    assert!(m2.log_text().contains(&format!("left s3://{b}/half.bin")), "{}", m2.log_text());
    assert_eq!(proxy.count("AbortMultipartUpload"), 1);
    assert_eq!(open_uploads(&c, &b), 0, "the orphaned multipart upload was aborted");
    let status = status_of(m2.path());
    assert!(status.contains("left by a crashed mount: 1 files"), "{status}");
    assert!(!m2.path().join("half.bin").exists(), "nothing was uploaded on its own");

    // Another client writes the key meanwhile: recover must not overwrite it.
    put(&c, &b, "half.bin", "newer\n");
    let list = s3drive().args(["recover", "--cache-dir", cache_dir]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let line = list.lines().find(|l| l.contains(&format!("s3://{b}/half.bin"))).unwrap_or_else(|| panic!("{list}"));
    let id = line.split_whitespace().next().unwrap();
    let out = s3drive().args(["recover", "--cache-dir", cache_dir, "upload", id]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("half.bin.recovered-"), "{said}");
    assert_eq!(get(&c, &b, "half.bin"), b"newer\n", "the newer object is untouched");
    let keys = rt().block_on(c.list_objects_v2().bucket(&b).prefix("half.bin.recovered-").send()).unwrap();
    let key = keys.contents()[0].key().unwrap().to_string();
    assert!(get(&c, &b, &key) == body, "the recovered bytes are the ones written");
    let list = s3drive().args(["recover", "--cache-dir", cache_dir]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("nothing to recover"), "uploaded files leave the cache");
}

#[test]
fn a_full_cache_directory_fails_the_write_with_enospc_and_keeps_the_old_object() {
    let c = client();
    let b = bucket("full");
    create_bucket(&c, &b);
    put(&c, &b, "f.bin", "old\n");
    let cache = tempfile::tempdir().unwrap();
    let _tmpfs = Tmpfs::mount(cache.path(), "16m");
    let proxy = Proxy::start();
    let mut m = mount(&proxy, &[&b, "--cache-dir", cache.path().to_str().unwrap()]);

    let mut f = fs::File::create(m.path().join("f.bin")).unwrap();
    let wrote = f.write_all(&data(64 << 20, 25));
    let closed = close(f);
    let errno = wrote.err().or(closed.err()).expect("64 MiB cannot be staged in 16 MiB").raw_os_error();
    assert_eq!(errno, Some(libc::ENOSPC));
    assert_eq!(get(&c, &b, "f.bin"), b"old\n", "the old object is intact");
    std::thread::sleep(Duration::from_millis(500)); // the abort of the early upload is sent in the background
    assert_eq!(open_uploads(&c, &b), 0, "no multipart upload is left open");
    assert!(m.log_text().contains("staging file"), "{}", m.log_text());
    m.unmount();
}

#[test]
fn staging_files_and_the_cache_directory_are_private_while_a_file_is_written() {
    let c = client();
    let b = bucket("private");
    create_bucket(&c, &b);
    let proxy = Proxy::start();
    let cache = tempfile::tempdir().unwrap();
    fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let m = mount(&proxy, &[&b, "--cache-dir", cache.path().to_str().unwrap()]);
    assert_eq!(mode(cache.path()), 0o700, "a cache directory open to others is made private");

    let mut f = fs::File::create(m.path().join("secret.txt")).unwrap();
    f.write_all(b"not for other users\n").unwrap();
    let staged = files_under(cache.path());
    let data_files: Vec<_> =
        staged.iter().filter(|p| fs::read(p).is_ok_and(|k| k == b"not for other users\n")).collect();
    assert_eq!(data_files.len(), 1, "{staged:?}");
    for p in &staged {
        assert_eq!(mode(p) & 0o077, 0, "{} is {:o}", p.display(), mode(p));
    }
    assert_eq!(mode(data_files[0].parent().unwrap()), 0o700);
    close(f).unwrap();
    assert_eq!(get(&c, &b, "secret.txt"), b"not for other users\n");
}

#[test]
fn a_byte_changed_on_the_way_is_refused_by_the_checksum_and_sent_again() {
    // s3s-fs checks x-amz-checksum-crc32c against the bytes it receives (moto does not).
    let (port, root) = s3s_fs();
    let b = bucket("flip");
    fs::create_dir_all(root.join(&b)).unwrap();
    let stored = root.join(&b).join("f.bin");
    let proxy = Proxy::start_to(port);
    let m = mount(&proxy, &[&b, "--retry-budget", "3"]);

    // Once: the server refuses the changed body (BadDigest) and the upload is sent again.
    proxy.trouble("PutObject", Trouble::FlipBodyByte, 1);
    let body = data(1 << 20, 26);
    let mut f = fs::File::create(m.path().join("f.bin")).unwrap();
    f.write_all(&body).unwrap();
    close(f).expect("a second attempt carries the right bytes");
    assert_eq!(proxy.trouble_left(), 0, "one body was changed on the way");
    assert_eq!(proxy.count("PutObject"), 2, "refused once, sent again");
    assert!(fs::read(&stored).unwrap() == body, "the server holds the bytes written, not the changed ones");

    // Every time: close fails (S3 keeps the old object; s3s-fs stores the body before it checks
    // the checksum, so what it holds afterwards is not asserted here).
    proxy.reset();
    proxy.trouble("PutObject", Trouble::FlipBodyByte, 1000);
    let mut f = fs::File::create(m.path().join("f.bin")).unwrap();
    f.write_all(&data(1 << 20, 27)).unwrap();
    let err = close(f).expect_err("bytes the server never got right are not stored");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // Counted from the reset: this file's attempts only (three or more within a 3 s budget).
    assert!(proxy.count("PutObject") >= 3, "sent again until the budget was spent: {:?}", proxy.counts());
    assert!(m.log_text().contains("BadDigest"), "{}", m.log_text());
}

/// Every EIO says in the log what failed: a read the server keeps failing with 500.
#[test]
fn an_io_error_is_always_logged_with_what_failed() {
    let c = client();
    let b = bucket("eiolog");
    create_bucket(&c, &b);
    put(&c, &b, "f.txt", "hello\n");
    let proxy = Proxy::start();
    let m = mount(&proxy, &[&b, "--retry-budget", "1"]);
    assert!(fs::symlink_metadata(m.path().join("f.txt")).is_ok());
    proxy.trouble("GetObject", Trouble::Error { status: 500, code: "InternalError" }, 1000);
    let err = fs::read(m.path().join("f.txt")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let log = m.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(" WARN ") && l.contains("operation failed") && l.contains("InternalError"))
        .unwrap_or_else(|| panic!("no warning says what failed:\n{log}"));
    assert!(line.contains("op=\"read\"") || line.contains("op=\"open\""), "{line}");
}
