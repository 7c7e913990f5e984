//! The staging area on local disk, and what a crashed mount left in it.
//!
//! Owns: the cache directory's privacy (0700, fixed with a warning when it is open to others),
//! one staging directory per running mount (`mount-PID`, held with an flock on its `.lock` for
//! the life of the process), and a journal beside every staging file (`NAME.journal`) saying
//! where its bytes go: the service, bucket and key, the ETag of the object the file started
//! from, the multipart upload under way, the file's metadata, and the mount's request options
//! (encryption, storage class, ACL...: never a key, only an SSE-C key's MD5). A staging directory whose
//! lock is free belongs to a process that died: its files are *orphans*, found at the next
//! mount (reported, their multipart uploads aborted) and handled by `s3drive recover`.

use crate::util::private_dir::{create_private, secure_dir};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Suffix of a staging file's journal.
const JOURNAL: &str = "journal";
const LOCK: &str = ".lock";

/// This mount's staging directory, locked while the process lives.
#[derive(Debug)]
pub struct StageDir {
    pub path: PathBuf,
    /// The endpoint (or "aws") and addressing the journals record, so `s3drive recover` knows
    /// where a file goes.
    pub service: Arc<str>,
    pub path_style: bool,
    /// The request options new objects are written with, for the journals.
    pub request: RequestNote,
    _lock: Option<File>,
}

/// What a mount sends with the requests that create objects, as a journal records it so that
/// `s3drive recover` uploads a file the way the mount would have: a bucket policy that demands
/// SSE-KMS refuses anything else. The SSE-C key itself is never written down, only its MD5
/// (S3 keeps that too), to check the key recover is given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestNote {
    /// `AES256`, `aws:kms`, `aws:kms:dsse`, or `SSE-C`.
    pub sse: Option<String>,
    pub kms_key_id: Option<String>,
    pub sse_c_key_md5: Option<String>,
    pub storage_class: Option<String>,
    pub acl: Option<String>,
    pub requester_pays: bool,
    pub expected_bucket_owner: Option<String>,
}

impl StageDir {
    /// Creates (private) and locks `cache_dir/mount-PID`.
    pub fn open(cache_dir: &Path, service: &str, path_style: bool) -> std::io::Result<StageDir> {
        secure_dir(cache_dir)?;
        let path = cache_dir.join(format!("mount-{}", std::process::id()));
        create_private(&path)?;
        let lock =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(path.join(LOCK))?;
        // SAFETY: a valid descriptor.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(StageDir { path, service: service.into(), path_style, request: RequestNote::default(), _lock: Some(lock) })
    }

    /// A directory without a lock or the checks (unit tests, and a fallback when the cache
    /// directory cannot be set up: the first write then fails with the reason).
    pub fn unlocked(path: PathBuf) -> StageDir {
        StageDir { path, service: "memory".into(), path_style: false, request: RequestNote::default(), _lock: None }
    }

    /// Makes sure the directory is there (something may have removed it since the mount).
    pub fn ensure(&self) -> std::io::Result<()> {
        if self.path.is_dir() { Ok(()) } else { create_private(&self.path) }
    }

    /// At shutdown: removes the directory if nothing but its lock is in it (a file kept after
    /// a failed upload keeps it).
    pub fn remove_if_empty(&self) {
        remove_if_only_lock(&self.path);
    }

    /// A new journal for a staging file in this directory.
    pub fn journal(&self, bucket: &str, key: &str, base_etag: Option<&str>) -> Journal {
        Journal {
            service: self.service.to_string(),
            path_style: self.path_style,
            bucket: bucket.to_string(),
            key: key.to_string(),
            base_etag: base_etag.map(str::to_string),
            upload_id: None,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            mtime: String::new(),
            request: self.request.clone(),
        }
    }
}

/// Where a staging file's bytes go, written beside it (`NAME.journal`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Journal {
    pub service: String,
    pub path_style: bool,
    pub bucket: String,
    pub key: String,
    /// The ETag of the object the file was opened over (`None`: there was none, or it was
    /// created). `s3drive recover` uploads to the key only while this is still what S3 holds.
    pub base_etag: Option<String>,
    /// A multipart upload begun and not completed.
    pub upload_id: Option<String>,
    /// `st_mode` with the file type bits, uid, gid, and the mtime as stored in S3 metadata.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: String,
    pub request: RequestNote,
}

impl RequestNote {
    pub fn of(r: &crate::store::s3::RequestOptions) -> RequestNote {
        use crate::store::s3::Sse;
        let (kms_key_id, sse_c_key_md5) = match &r.sse {
            Some(Sse::Kms { key_id, .. }) => (key_id.clone(), None),
            Some(Sse::Customer { key_md5, .. }) => (None, Some(key_md5.clone())),
            _ => (None, None),
        };
        RequestNote {
            sse: r.sse.as_ref().map(|s| s.name().to_string()),
            kms_key_id,
            sse_c_key_md5,
            storage_class: r.storage_class.clone(),
            acl: r.acl.clone(),
            requester_pays: r.requester_pays,
            expected_bucket_owner: r.expected_bucket_owner.clone(),
        }
    }
}

impl Journal {
    pub fn path_for(data: &Path) -> PathBuf {
        let mut p = data.as_os_str().to_owned();
        p.push(".");
        p.push(JOURNAL);
        PathBuf::from(p)
    }

    fn render(&self) -> String {
        let mut out = String::from("s3drive-journal 1\n");
        let mut line = |k: &str, v: &str| {
            out.push_str(k);
            out.push(' ');
            out.push_str(&escape(v));
            out.push('\n');
        };
        line("service", &self.service);
        line("path_style", if self.path_style { "1" } else { "0" });
        line("bucket", &self.bucket);
        line("key", &self.key);
        if let Some(e) = &self.base_etag {
            line("base_etag", e);
        }
        if let Some(u) = &self.upload_id {
            line("upload_id", u);
        }
        line("mode", &format!("{:o}", self.mode));
        line("uid", &self.uid.to_string());
        line("gid", &self.gid.to_string());
        line("mtime", &self.mtime);
        let r = &self.request;
        for (k, v) in [
            ("sse", &r.sse),
            ("sse_kms_key_id", &r.kms_key_id),
            ("sse_c_key_md5", &r.sse_c_key_md5),
            ("storage_class", &r.storage_class),
            ("acl", &r.acl),
            ("expected_bucket_owner", &r.expected_bucket_owner),
        ] {
            if let Some(v) = v {
                line(k, v);
            }
        }
        if r.requester_pays {
            line("requester_pays", "1");
        }
        out
    }

    fn parse(text: &str) -> Option<Journal> {
        let mut lines = text.lines();
        if lines.next()? != "s3drive-journal 1" {
            return None;
        }
        let mut j = Journal::default();
        for l in lines {
            let (k, v) = l.split_once(' ')?;
            let v = crate::util::percent::decode(v)?;
            match k {
                "service" => j.service = v,
                "path_style" => j.path_style = v == "1",
                "bucket" => j.bucket = v,
                "key" => j.key = v,
                "base_etag" => j.base_etag = Some(v),
                "upload_id" => j.upload_id = Some(v),
                "mode" => j.mode = u32::from_str_radix(&v, 8).ok()?,
                "uid" => j.uid = v.parse().ok()?,
                "gid" => j.gid = v.parse().ok()?,
                "mtime" => j.mtime = v,
                "sse" => j.request.sse = Some(v),
                "sse_kms_key_id" => j.request.kms_key_id = Some(v),
                "sse_c_key_md5" => j.request.sse_c_key_md5 = Some(v),
                "storage_class" => j.request.storage_class = Some(v),
                "acl" => j.request.acl = Some(v),
                "expected_bucket_owner" => j.request.expected_bucket_owner = Some(v),
                "requester_pays" => j.request.requester_pays = v == "1",
                _ => {}
            }
        }
        (!j.bucket.is_empty() && !j.key.is_empty()).then_some(j)
    }

    /// Writes the journal of staging file `data` (replacing it whole: a crash leaves the old
    /// one or the new one). 0600, like the staging file.
    pub fn save(&self, data: &Path) -> std::io::Result<()> {
        let path = Self::path_for(data);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(self.render().as_bytes())?;
        std::fs::rename(&tmp, &path)
    }

    pub fn load(data: &Path) -> Option<Journal> {
        Journal::parse(&std::fs::read_to_string(Self::path_for(data)).ok()?)
    }
}

/// Percent-escapes what would break a line (keys may hold any character).
fn escape(s: &str) -> String {
    let mut bytes = Vec::with_capacity(s.len());
    for b in s.bytes() {
        if b == b'%' || b < 0x20 || b == 0x7f {
            bytes.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).expect("only ASCII bytes were replaced")
}

/// A staging file left by a process that died, with its journal.
#[derive(Debug, Clone)]
pub struct Orphan {
    /// The name `s3drive recover` knows it by (unique in the cache directory).
    pub id: String,
    pub data: PathBuf,
    pub size: u64,
    pub journal: Journal,
}

/// Every orphan under `cache_dir`: staging files in `mount-*` directories whose lock nobody
/// holds. Empty dead directories are removed. A staging file without a readable journal (from
/// an older s3drive) is listed with an empty journal, so nothing is ever silently dropped.
pub fn orphans(cache_dir: &Path) -> Vec<Orphan> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(cache_dir) else { return out };
    for d in dirs.flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        if !name.starts_with("mount-") || !d.path().is_dir() {
            continue;
        }
        if !dead(&d.path()) {
            continue;
        }
        let mut found = false;
        let Ok(files) = std::fs::read_dir(d.path()) else { continue };
        for f in files.flatten() {
            let fname = f.file_name().to_string_lossy().into_owned();
            if fname == LOCK || fname.ends_with(".journal") || fname.ends_with(".journal.tmp") {
                continue;
            }
            let data = f.path();
            let Ok(meta) = f.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            found = true;
            let journal = Journal::load(&data).unwrap_or_default();
            out.push(Orphan { id: fname, data, size: meta.len(), journal });
        }
        if !found {
            let _ = std::fs::remove_dir_all(d.path());
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The process that owned this staging directory is gone: its lock can be taken (or it never
/// had one and its PID is not running).
fn dead(dir: &Path) -> bool {
    match std::fs::OpenOptions::new().write(true).open(dir.join(LOCK)) {
        // SAFETY: a valid descriptor; the lock goes when `f` is dropped.
        Ok(f) => unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 },
        Err(_) => {
            let pid = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("mount-"));
            pid.is_none_or(|p| !Path::new("/proc").join(p).exists())
        }
    }
}

/// Removes an orphan's staging file and journal.
pub fn discard(o: &Orphan) {
    let _ = std::fs::remove_file(&o.data);
    let _ = std::fs::remove_file(Journal::path_for(&o.data));
    if let Some(dir) = o.data.parent() {
        remove_if_only_lock(dir);
    }
}

fn remove_if_only_lock(dir: &Path) {
    let only_lock = std::fs::read_dir(dir).map(|r| r.flatten().all(|e| e.file_name() == LOCK)).unwrap_or(false);
    if only_lock {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn journals_round_trip_odd_keys() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("f");
        let j = Journal {
            service: "http://127.0.0.1:9000".into(),
            path_style: true,
            bucket: "b".into(),
            key: "a dir/é 100%\nnew line".into(),
            base_etag: Some("\"abc\"".into()),
            upload_id: Some("u-1".into()),
            mode: 0o100600,
            uid: 1000,
            gid: 100,
            mtime: "1700000000".into(),
            request: RequestNote {
                sse: Some("aws:kms".into()),
                kms_key_id: Some("arn:aws:kms:us-east-1:123456789012:key/k 1".into()),
                sse_c_key_md5: None,
                storage_class: Some("STANDARD_IA".into()),
                acl: Some("bucket-owner-full-control".into()),
                requester_pays: true,
                expected_bucket_owner: Some("123456789012".into()),
            },
        };
        j.save(&data).unwrap();
        assert_eq!(Journal::load(&data).unwrap(), j);
        let mode = std::fs::metadata(Journal::path_for(&data)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_live_mount_has_no_orphans_and_a_dead_one_does() {
        let cache = tempfile::tempdir().unwrap();
        std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let stage = StageDir::open(cache.path(), "svc", false).unwrap();
        let mode = std::fs::metadata(cache.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "an open cache directory is made private");
        std::fs::write(stage.path.join("1-0-x"), b"data").unwrap();
        stage.journal("b", "k", None).save(&stage.path.join("1-0-x")).unwrap();
        assert!(orphans(cache.path()).is_empty(), "our own lock is held");
        // A directory a dead process left: a lock file nobody holds.
        let dead_dir = cache.path().join("mount-999999999");
        std::fs::create_dir(&dead_dir).unwrap();
        std::fs::write(dead_dir.join(LOCK), b"").unwrap();
        std::fs::write(dead_dir.join("9-0-y"), b"left").unwrap();
        stage.journal("b", "y", Some("\"e\"")).save(&dead_dir.join("9-0-y")).unwrap();
        let found = orphans(cache.path());
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].id.as_str(), found[0].size, found[0].journal.key.as_str()), ("9-0-y", 4, "y"));
        discard(&found[0]);
        assert!(!dead_dir.exists(), "an emptied dead directory goes");
        // An empty dead directory is removed by the scan.
        std::fs::create_dir(&dead_dir).unwrap();
        std::fs::write(dead_dir.join(LOCK), b"").unwrap();
        assert!(orphans(cache.path()).is_empty());
        assert!(!dead_dir.exists());
    }
}
