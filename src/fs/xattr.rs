//! Extended attributes.
//!
//! - `user.s3.*` are read-only information computed on demand, never stored and never listed by
//!   listxattr (so `cp -a` and `rsync -X` out of the mount do not copy a share link that will
//!   expire, and copying back in does not try to set them): `user.s3.presigned_url` (a GET link,
//!   signed locally), `user.s3.presigned_url_expires`, `user.s3.restore` (read: the restore state of
//!   an archived object; set to `7d[,tier]`: RestoreObject), `user.s3.versions` (a line per
//!   version: id, time, size), `user.s3.sse` (encryption and KMS key), `user.s3.uri`, `user.s3.etag`,
//!   `user.s3.storage_class`, `user.s3.content_type`, `user.s3.region`. A suffix asks for another
//!   link lifetime: `user.s3.presigned_url.15m`. Setting or removing any other `user.s3.*` name is
//!   EPERM.
//! - Other `user.*` attributes of files are stored in the object's `x-amz-meta-xattr` metadata in
//!   s3fs's layout (a URL-encoded `{"name":"base64 value",...}`), so s3fs sees them too. They are
//!   set with the upload of a file being written, or with a metadata CopyObject, coalesced with
//!   chmod/utimens like every metadata change.
//! - Names without a namespace (`key1`, as s3fs allows, and macOS-style `com.example.x`) are
//!   stored beside them, as s3fs does.
//! - The kernel's namespaces (`security.`, `trusted.`, `system.`, so POSIX ACLs) are not
//!   supported: reading, writing or removing one gives ENOTSUP (the adapter answers reads
//!   without reaching the core).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::{Error, Result};
use super::inode::{Ino, Location};
use super::{FileMeta, Fs};
use crate::store::{ObjectStore, Presigned};

pub use super::writes::staged::XATTR_META;
/// S3's limit on user metadata per object: the sum of names and values, in bytes.
pub const MAX_USER_META: usize = 2048;
/// How long a link handed out stays the answer for the same file and lifetime, so getxattr's
/// size probe and the read that follows see the same value.
const LINK_REUSE: Duration = Duration::from_secs(5);

/// How long a status report is reused: long enough for getxattr's size probe and read to agree,
/// short enough that `s3drive status` in a loop sees a short upload.
const STATUS_REUSE: Duration = Duration::from_millis(200);

const XATTR_CREATE: i32 = 1;
const XATTR_REPLACE: i32 = 2;

pub type Xattrs = BTreeMap<String, Vec<u8>>;

/// Bucket, key and lifetime of a presigned link.
pub type LinkKey = (String, String, Duration);

/// The read-only information attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Info {
    PresignedUrl(Option<Duration>),
    PresignedExpires(Option<Duration>),
    Uri,
    Etag,
    StorageClass,
    ContentType,
    Region,
    Restore,
    Versions,
    Sse,
}

/// Whether an object of this storage class may be archived (its bytes unreadable until
/// restored): GLACIER and DEEP_ARCHIVE always, INTELLIGENT_TIERING in its archive tiers.
pub fn may_be_archived(class: &str) -> bool {
    matches!(class, "GLACIER" | "DEEP_ARCHIVE" | "INTELLIGENT_TIERING")
}

/// Where an object stands with restores (`user.s3.restore`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// In a class or tier whose bytes are readable.
    NotArchived,
    Archived,
    Restoring,
    /// A restored copy is readable until this date (as S3 writes it).
    Restored(String),
}

pub fn restore_state(meta: &crate::store::ObjectMeta) -> Restore {
    let archived = matches!(meta.storage_class.as_deref(), Some("GLACIER" | "DEEP_ARCHIVE"))
        || matches!(meta.archive_status.as_deref(), Some("ARCHIVE_ACCESS" | "DEEP_ARCHIVE_ACCESS"));
    match meta.restore.as_deref() {
        Some(r) if r.contains("ongoing-request=\"true\"") => Restore::Restoring,
        Some(r) if r.contains("ongoing-request=\"false\"") => {
            let until = r.split_once("expiry-date=\"").and_then(|(_, d)| d.split('"').next()).unwrap_or("");
            Restore::Restored(until.to_string())
        }
        _ if archived => Restore::Archived,
        _ => Restore::NotArchived,
    }
}

/// `setfattr -n user.s3.restore -v VALUE`: `7d`, `7`, `7d,Bulk` (tiers: Standard, Bulk,
/// Expedited); the days from 1 to 10,000 (S3's limits are looser; ten thousand days is a lot).
fn parse_restore(value: &[u8]) -> Option<(i32, Option<&'static str>)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (days, tier) = match text.split_once(',') {
        Some((d, t)) => (d.trim(), Some(t.trim())),
        None => (text, None),
    };
    let days: i32 = days.strip_suffix('d').unwrap_or(days).parse().ok().filter(|d| (1..=10_000).contains(d))?;
    let tier = match tier.map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("standard") => Some("Standard"),
        Some("bulk") => Some("Bulk"),
        Some("expedited") => Some("Expedited"),
        Some(_) => return None,
    };
    Some((days, tier))
}

/// What a `user.s3.` name asks for; `Err` for a malformed lifetime suffix.
fn parse_info(rest: &str) -> Option<Result<Info>> {
    let with_lifetime = |base: &str, make: fn(Option<Duration>) -> Info| -> Option<Result<Info>> {
        let tail = rest.strip_prefix(base)?;
        if tail.is_empty() {
            return Some(Ok(make(None)));
        }
        let d = tail.strip_prefix('.')?;
        Some(crate::config::parse_duration(d).map(|d| make(Some(d))).ok_or(Error::Invalid))
    };
    match rest {
        "uri" => Some(Ok(Info::Uri)),
        "etag" => Some(Ok(Info::Etag)),
        "storage_class" => Some(Ok(Info::StorageClass)),
        "content_type" => Some(Ok(Info::ContentType)),
        "region" => Some(Ok(Info::Region)),
        "restore" => Some(Ok(Info::Restore)),
        "versions" => Some(Ok(Info::Versions)),
        "sse" => Some(Ok(Info::Sse)),
        _ => with_lifetime("presigned_url_expires", Info::PresignedExpires)
            .or_else(|| with_lifetime("presigned_url", Info::PresignedUrl)),
    }
}

/// Decodes `x-amz-meta-xattr` (s3fs's layout). Entries that do not parse are skipped.
pub fn decode(value: &str) -> Xattrs {
    let mut out = Xattrs::new();
    let Some(text) = crate::util::percent::decode(value) else { return out };
    let Some(body) = text.trim().strip_prefix('{').and_then(|t| t.strip_suffix('}')) else { return out };
    for pair in body.split(',') {
        let Some((k, v)) = pair.split_once(':') else { continue };
        let (k, v) = (k.trim().trim_matches('"'), v.trim().trim_matches('"'));
        if let Ok(bytes) = STANDARD.decode(v)
            && !k.is_empty()
        {
            out.insert(k.to_string(), bytes);
        }
    }
    out
}

/// Encodes user xattrs for `x-amz-meta-xattr`; `None` when there are none.
pub fn encode(x: &Xattrs) -> Option<String> {
    if x.is_empty() {
        return None;
    }
    let body: Vec<String> = x.iter().map(|(k, v)| format!("\"{k}\":\"{}\"", STANDARD.encode(v))).collect();
    Some(crate::util::percent::encode(&format!("{{{}}}", body.join(","))))
}

/// Bytes of user metadata as S3 counts them.
pub fn meta_size(m: &HashMap<String, String>) -> usize {
    m.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// `2026-11-25T01:02:03Z`.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Whether `name` is in a namespace the kernel gives a meaning to (security labels, trusted
/// attributes, POSIX ACLs): never stored.
pub fn kernel_namespace(name: &str) -> bool {
    ["security.", "trusted.", "system."].iter().any(|p| name.starts_with(p))
}

/// Checks a user attribute name for storage; `user.s3.*` is ours.
fn user_name(name: &str) -> Result<()> {
    if name.starts_with("user.s3.") || name.starts_with("user.s3drive.") {
        return Err(Error::NotPermitted);
    }
    if kernel_namespace(name) {
        return Err(Error::NotSupported);
    }
    if name.is_empty() || name == "user." || name.contains(['"', ',', ':', '{', '}']) {
        return Err(Error::Invalid); // s3fs's layout cannot hold these characters
    }
    Ok(())
}

impl<S: ObjectStore> Fs<S> {
    pub async fn getxattr(&self, ino: Ino, name: &str) -> Result<Vec<u8>> {
        if name == crate::status::STATUS_XATTR {
            return if ino == super::inode::ROOT { Ok(self.status_report()) } else { Err(Error::NoData) };
        }
        if let Some(rest) = name.strip_prefix("user.s3.") {
            return match parse_info(rest) {
                Some(info) => self.info(ino, info?).await,
                None => Err(Error::NoData),
            };
        }
        if kernel_namespace(name) {
            return Err(Error::NotSupported);
        }
        self.user_xattrs(ino).await?.remove(name).ok_or(Error::NoData)
    }

    /// The stored names, each followed by a NUL (listxattr's format).
    pub async fn listxattr(&self, ino: Ino) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        // Another client may have stored a kernel namespace's name: it cannot be read here.
        for name in self.user_xattrs(ino).await?.keys().filter(|n| !kernel_namespace(n)) {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        Ok(out)
    }

    pub async fn setxattr(&self, ino: Ino, name: &str, value: &[u8], flags: i32) -> Result<()> {
        if name == "user.s3.restore" {
            return self.restore(ino, value).await;
        }
        user_name(name)?;
        self.check_writable()?;
        self.change_xattrs(ino, |x| {
            let exists = x.contains_key(name);
            if flags & XATTR_CREATE != 0 && exists {
                return Err(Error::Exists);
            }
            if flags & XATTR_REPLACE != 0 && !exists {
                return Err(Error::NoData);
            }
            x.insert(name.to_string(), value.to_vec());
            Ok(())
        })
        .await
    }

    pub async fn removexattr(&self, ino: Ino, name: &str) -> Result<()> {
        // Other namespaces are ENOTSUP, as for get and set (and as the kernel answers for a
        // namespace a file system has no handler for).
        user_name(name)?;
        self.check_writable()?;
        self.change_xattrs(ino, |x| x.remove(name).map(|_| ()).ok_or(Error::NoData)).await
    }

    /// The user attributes a file has now: those of the file being written, pending changes, or
    /// the object's metadata (known for this version, else from a HeadObject).
    async fn user_xattrs(&self, ino: Ino) -> Result<Xattrs> {
        if let Some(w) = self.writer(ino) {
            let st = w.staged.lock().await;
            return Ok(xattrs_in(&st.extra));
        }
        let node = self.node(ino)?;
        let Location::File { bucket, key } = &node.loc else { return Ok(Xattrs::new()) };
        if let Some(p) = self.pending_meta.get(bucket, key)
            && let Some(x) = &p.xattr
        {
            return Ok(decode(x));
        }
        let metadata = self.object_metadata(ino).await?;
        Ok(xattrs_in(&metadata))
    }

    /// All user metadata of the object at `ino` (no pending changes applied).
    async fn object_metadata(&self, ino: Ino) -> Result<HashMap<String, String>> {
        let node = self.node(ino)?;
        let Location::File { bucket, key } = &node.loc else { return Ok(HashMap::new()) };
        if node.fresh_until > Instant::now()
            && let Some(etag) = &node.attr.etag
            && let Some(k) = self.index.latest(bucket, key)
            && &k.etag == etag
        {
            return Ok(k.put.metadata.clone());
        }
        let meta = self.store.head_object(bucket, key).await?;
        let attr = self.attr_from_meta(&node.loc, &meta);
        self.inodes.set_attr(ino, attr, self.fresh_until());
        Ok(meta.metadata)
    }

    /// Applies `change` to a file's user attributes and schedules them for S3.
    async fn change_xattrs(&self, ino: Ino, change: impl FnOnce(&mut Xattrs) -> Result<()>) -> Result<()> {
        if let Some(w) = self.writer(ino) {
            let mut st = w.staged.lock().await;
            let mut x = xattrs_in(&st.extra);
            change(&mut x)?;
            let mut extra = st.extra.clone();
            set_xattr_meta(&mut extra, &x);
            check_size(&st.meta, &st.key, &extra, &x)?;
            st.extra = extra;
            st.meta.ctime = std::time::SystemTime::now();
            Self::sync_info(&w, &st);
            if !st.dirty {
                // Uploaded and unchanged since: a metadata copy, not a re-upload.
                let value = extra_value(&st.extra);
                self.set_pending_meta(&st.bucket, &st.key, st.meta, Some(value));
            }
            return Ok(());
        }
        let node = self.node(ino)?;
        let Location::File { bucket, key } = &node.loc else { return Err(Error::NotSupported) };
        let mut metadata = self.object_metadata(ino).await?;
        let pending = self.pending_meta.get(bucket, key);
        if let Some(x) = pending.as_ref().and_then(|p| p.xattr.as_ref()) {
            metadata.insert(XATTR_META.into(), x.clone());
        }
        let mut x = xattrs_in(&metadata);
        change(&mut x)?;
        set_xattr_meta(&mut metadata, &x);
        let node = self.node(ino)?;
        let mut meta = pending.map(|p| p.meta).unwrap_or_else(|| self.file_meta(&node.attr));
        meta.ctime = std::time::SystemTime::now();
        check_size(&meta, key, &super::writes::staged::others(metadata.clone()), &x)?;
        self.set_pending_meta(bucket, key, meta, Some(extra_value(&metadata)));
        Ok(())
    }

    /// Asks S3 to restore an archived object (RestoreObject); its state is `user.s3.restore`.
    async fn restore(&self, ino: Ino, value: &[u8]) -> Result<()> {
        let (days, tier) = parse_restore(value).ok_or(Error::Invalid)?;
        let node = self.node(ino)?;
        let Location::File { bucket, key } = &node.loc else { return Err(Error::IsDir) };
        let meta = self.store.head_object(bucket, key).await?;
        if restore_state(&meta) == Restore::NotArchived {
            return Err(Error::Invalid); // nothing to restore
        }
        // INTELLIGENT_TIERING's archive tiers take no number of days: the object moves back.
        let days = (meta.storage_class.as_deref() != Some("INTELLIGENT_TIERING")).then_some(days);
        self.store.restore_object(bucket, key, days, tier).await?;
        tracing::info!(bucket = &**bucket, key = key.as_str(), days, tier, "restore requested");
        Ok(())
    }

    async fn info(&self, ino: Ino, info: Info) -> Result<Vec<u8>> {
        let node = self.node(ino)?;
        let (bucket, key) = match &node.loc {
            Location::Buckets => return Err(Error::NoData),
            Location::Dir { bucket, prefix } => (bucket.clone(), prefix.clone()),
            Location::File { bucket, key } => (bucket.clone(), key.clone()),
        };
        let file = !node.loc.is_dir();
        match info {
            Info::Uri => Ok(format!("s3://{bucket}/{key}").into_bytes()),
            Info::Region => Ok(self.store.head_bucket(&bucket).await?.into_bytes()),
            Info::PresignedUrl(life) | Info::PresignedExpires(life) => {
                if !file {
                    return Err(Error::IsDir);
                }
                if let Some(w) = self.writer(ino) {
                    let st = w.staged.lock().await;
                    if st.dirty || !st.in_s3 {
                        return Err(Error::Busy); // not in S3 yet: a link would fetch old bytes
                    }
                }
                let link = self.link(&bucket, &key, life.unwrap_or(self.config.presign_lifetime)).await?;
                Ok(match info {
                    Info::PresignedUrl(_) => link.url.into_bytes(),
                    _ => rfc3339(link.expires).into_bytes(),
                })
            }
            Info::Versions => {
                if !file {
                    return Err(Error::NoData);
                }
                // One line per version, newest first: id, time, size, and what it is.
                let mut out = String::new();
                for v in self.store.list_versions_of(&bucket, &key).await? {
                    let t = v.last_modified.map_or_else(|| "-".to_string(), rfc3339);
                    let what = match (v.delete_marker, v.is_latest) {
                        (true, true) => " delete-marker latest",
                        (true, false) => " delete-marker",
                        (false, true) => " latest",
                        (false, false) => "",
                    };
                    out.push_str(&format!("{} {t} {}{what}\n", v.version_id, v.size));
                }
                if out.is_empty() {
                    return Err(Error::NoData);
                }
                Ok(out.into_bytes())
            }
            Info::Restore => {
                if !file {
                    return Err(Error::NoData);
                }
                let meta = self.store.head_object(&bucket, &key).await?;
                Ok(match restore_state(&meta) {
                    Restore::NotArchived => "not archived".to_string(),
                    Restore::Archived => "archived".to_string(),
                    Restore::Restoring => "restoring".to_string(),
                    Restore::Restored(until) => format!("restored until {until}"),
                }
                .into_bytes())
            }
            Info::Etag | Info::StorageClass | Info::ContentType | Info::Sse => {
                if !file {
                    return Err(Error::NoData);
                }
                if let Some(w) = self.writer(ino)
                    && w.staged.lock().await.dirty
                {
                    return Err(Error::Busy);
                }
                let meta = self.store.head_object(&bucket, &key).await?;
                let value = match info {
                    Info::Etag => meta.etag,
                    // S3 leaves the header out for the default class.
                    Info::StorageClass => Some(meta.storage_class.unwrap_or_else(|| "STANDARD".into())),
                    // `aws:kms KEY-ARN`, `AES256`, `SSE-C`; `none` for an unencrypted object.
                    Info::Sse => Some(meta.sse.unwrap_or_else(|| "none".into())),
                    _ => meta.content_type,
                };
                value.map(String::into_bytes).ok_or(Error::NoData)
            }
        }
    }

    /// What `s3drive status` prints: requests, bytes, uploads in flight, pending deletes,
    /// recent errors. Reused for `STATUS_REUSE`, so getxattr's size probe and read agree.
    fn status_report(&self) -> Vec<u8> {
        use std::fmt::Write;
        let mut cached = self.status_cache.lock().unwrap();
        if let Some((at, text)) = cached.as_ref()
            && at.elapsed() < STATUS_REUSE
        {
            return text.clone();
        }
        let stats = crate::stats::get();
        let human = crate::stats::human;
        let mut out = String::new();
        let source = match &self.config.source {
            crate::config::Source::AllBuckets => "all buckets".to_string(),
            crate::config::Source::Buckets(b) => b.join(", "),
            crate::config::Source::Prefix { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        };
        let up = stats.started.elapsed().unwrap_or_default().as_secs();
        let _ = writeln!(out, "s3drive {} on {}", source, self.config.mountpoint.display());
        let _ = writeln!(out, "running for {}h {:02}m {:02}s", up / 3600, up / 60 % 60, up % 60);
        let requests = stats.requests();
        let total: u64 = requests.iter().map(|(_, n)| n).sum();
        let _ = writeln!(out, "\nrequests: {total}");
        for (op, n) in requests {
            let _ = writeln!(out, "  {op:<24} {n}");
        }
        let retries: u64 = stats.retries().iter().map(|(_, n)| n).sum();
        if retries > 0 {
            let _ = writeln!(out, "  {:<24} {retries}", "(retries)");
        }
        let (bytes_up, bytes_down) = stats.bytes();
        let _ = writeln!(out, "\ntransferred: {} up, {} down", human(bytes_up), human(bytes_down));
        let writers: Vec<_> = self.writers.lock().unwrap().values().cloned().collect();
        let _ = writeln!(out, "\nfiles open for writing: {}", writers.len());
        for w in writers {
            let info = w.info.lock().unwrap().clone();
            let sent = w.progress.sent.load(std::sync::atomic::Ordering::Relaxed).min(info.size);
            let state =
                if w.progress.uploading.load(std::sync::atomic::Ordering::Relaxed) { "uploading" } else { "writing" };
            let pct = (sent * 100).checked_div(info.size).unwrap_or(100);
            let name = match &info.loc {
                Location::File { bucket, key } => format!("s3://{bucket}/{key}"),
                other => format!("{other:?}"),
            };
            let _ = writeln!(out, "  {name}  {state}: {} of {} in S3 ({pct}%)", human(sent), human(info.size));
        }
        let _ = writeln!(out, "\npending deletes: {}", self.deleter.pending_count());
        let _ = writeln!(out, "inodes the kernel holds: {} (budget {})", self.inodes.len(), self.config.inode_budget);
        let orphans = self.orphans();
        if !orphans.is_empty() {
            let bytes = orphans.iter().map(|o| o.size).sum();
            let _ = writeln!(
                out,
                "\nleft by a crashed mount: {} files, {} (s3drive recover --cache-dir {})",
                orphans.len(),
                human(bytes),
                self.config.write.cache_dir.display()
            );
            for o in orphans.iter().take(20) {
                let _ = writeln!(
                    out,
                    "  s3://{}/{}  {}  {}",
                    o.journal.bucket,
                    o.journal.key,
                    human(o.size),
                    o.data.display()
                );
            }
        }
        let index = self.index.stats();
        let place = self.index.path().map_or("in memory only".to_string(), |p| p.display().to_string());
        let _ = writeln!(
            out,
            "\nmetadata index: {place}\n  versions found there, not in memory: {}\n  versions written: {}",
            index.disk_hits, index.disk_entries_written
        );
        match &self.data_cache {
            None => {
                let _ = writeln!(out, "\ndata cache: off (--data-cache DIR keeps read data on local disk)");
            }
            Some(cache) => {
                let r = cache.report();
                let looked = r.hits + r.misses;
                let ratio = (r.hits * 100).checked_div(looked).unwrap_or(0);
                let _ = writeln!(
                    out,
                    "\ndata cache: {}\n  size: {} of {} ({} blocks)\n  hits: {} blocks of {} looked for ({ratio}%), {} served from the cache\n  written: {} blocks; evicted: {}; damaged and fetched again: {}; not cached: {}",
                    cache.dir().display(),
                    human(r.bytes),
                    human(r.limit),
                    r.blocks,
                    r.hits,
                    looked,
                    human(r.bytes_served),
                    r.blocks_written,
                    r.evicted,
                    r.corrupt,
                    r.skipped,
                );
            }
        }
        let errors = stats.errors();
        let _ = writeln!(out, "\nrecent errors: {}", errors.len());
        for (t, e) in errors {
            let _ = writeln!(out, "  {} {e}", rfc3339(t));
        }
        let text = out.into_bytes();
        *cached = Some((Instant::now(), text.clone()));
        text
    }

    /// A presigned link, reused for a few seconds for the same file and lifetime.
    async fn link(&self, bucket: &str, key: &str, lifetime: Duration) -> Result<Presigned> {
        let k = (bucket.to_string(), key.to_string(), lifetime);
        if let Some((at, link)) = self.recent_links.lock().unwrap().get(&k)
            && at.elapsed() < LINK_REUSE
        {
            return Ok(link.clone());
        }
        let link = self.store.presign_get(bucket, key, lifetime).await?;
        self.recent_links.lock().unwrap().put(k, (Instant::now(), link.clone()));
        Ok(link)
    }
}

/// The user xattrs held in a set of user metadata.
fn xattrs_in(metadata: &HashMap<String, String>) -> Xattrs {
    metadata.get(XATTR_META).map(|v| decode(v)).unwrap_or_default()
}

/// Puts encoded `x` into `metadata` (or removes the entry when `x` is empty).
fn set_xattr_meta(metadata: &mut HashMap<String, String>, x: &Xattrs) {
    match encode(x) {
        Some(v) => metadata.insert(XATTR_META.into(), v),
        None => metadata.remove(XATTR_META),
    };
}

/// The pending-metadata form: the encoded value, or "" for "remove".
fn extra_value(metadata: &HashMap<String, String>) -> String {
    metadata.get(XATTR_META).cloned().unwrap_or_default()
}

/// S3 refuses more than 2 KiB of user metadata: E2BIG if this attribute set alone cannot fit,
/// ENOSPC if it only fails with the object's other metadata.
fn check_size(meta: &FileMeta, key: &str, extra: &HashMap<String, String>, x: &Xattrs) -> Result<()> {
    let total = meta_size(&meta.to_put(key, extra).metadata);
    if total <= MAX_USER_META {
        return Ok(());
    }
    let alone = XATTR_META.len() + encode(x).map_or(0, |v| v.len());
    Err(if alone > MAX_USER_META - meta_size(&meta.to_put(key, &HashMap::new()).metadata) {
        Error::TooBig
    } else {
        Error::NoSpace
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_values_and_states() {
        assert_eq!(parse_restore(b"7d"), Some((7, None)));
        assert_eq!(parse_restore(b"30,bulk\n"), Some((30, Some("Bulk"))));
        assert_eq!(parse_restore(b"1d, Expedited"), Some((1, Some("Expedited"))));
        for bad in [&b"0d"[..], b"soon", b"7d,fast", b"", b"-3"] {
            assert_eq!(parse_restore(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let meta = |class: &str, restore: Option<&str>, tier: Option<&str>| crate::store::ObjectMeta {
            storage_class: Some(class.into()),
            restore: restore.map(Into::into),
            archive_status: tier.map(Into::into),
            ..Default::default()
        };
        assert_eq!(restore_state(&meta("STANDARD_IA", None, None)), Restore::NotArchived);
        assert_eq!(restore_state(&meta("GLACIER", None, None)), Restore::Archived);
        assert_eq!(restore_state(&meta("DEEP_ARCHIVE", Some("ongoing-request=\"true\""), None)), Restore::Restoring);
        assert_eq!(
            restore_state(&meta(
                "GLACIER",
                Some("ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2012 00:00:00 GMT\""),
                None
            )),
            Restore::Restored("Fri, 21 Dec 2012 00:00:00 GMT".into())
        );
        assert_eq!(restore_state(&meta("INTELLIGENT_TIERING", None, None)), Restore::NotArchived);
        assert_eq!(restore_state(&meta("INTELLIGENT_TIERING", None, Some("DEEP_ARCHIVE_ACCESS"))), Restore::Archived);
    }

    #[test]
    fn xattrs_round_trip_in_s3fs_layout() {
        let mut x = Xattrs::new();
        x.insert("user.color".into(), b"blue".to_vec());
        x.insert("user.bin".into(), vec![0, 255, b'"', b',']);
        let v = encode(&x).unwrap();
        assert!(v.bytes().all(|b| b.is_ascii_alphanumeric() || b"%-_.~".contains(&b)), "{v}");
        assert_eq!(crate::util::percent::decode(&v).unwrap(), r#"{"user.bin":"AP8iLA==","user.color":"Ymx1ZQ=="}"#);
        assert_eq!(decode(&v), x);
        assert_eq!(encode(&Xattrs::new()), None);
        assert!(decode("%7Bgarbage").is_empty());
    }

    #[test]
    fn info_names() {
        assert_eq!(parse_info("uri").unwrap().unwrap(), Info::Uri);
        assert_eq!(parse_info("presigned_url").unwrap().unwrap(), Info::PresignedUrl(None));
        assert_eq!(
            parse_info("presigned_url.15m").unwrap().unwrap(),
            Info::PresignedUrl(Some(Duration::from_secs(900)))
        );
        assert_eq!(parse_info("presigned_url_expires").unwrap().unwrap(), Info::PresignedExpires(None));
        assert_eq!(parse_info("presigned_url.soon").unwrap(), Err(Error::Invalid));
        assert!(parse_info("presigned_urlx").is_none());
        assert!(parse_info("other").is_none());
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)), "2026-11-18T11:06:40Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }
}
