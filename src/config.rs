//! Validated configuration, built from [`crate::cli::Args`] in one step. `Config: Default` so a
//! test writes `Config { read_only: true, ..Default::default() }`.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Args;
use crate::store::retry::RetryOptions;
use crate::store::s3::{RequestOptions, S3Options, Sse};

/// What the root of the mount shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Every bucket ListBuckets returns.
    AllBuckets,
    /// Exactly these buckets (no ListBuckets needed).
    Buckets(Vec<String>),
    /// One bucket, or a prefix in it (ending in '/', or empty), is the root.
    Prefix { bucket: String, prefix: String },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    pub mountpoint: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (no type bits).
    pub file_mode: u16,
    pub dir_mode: u16,
    pub allow_other: bool,
    /// Root may access the mount too (`--allow-root`).
    pub allow_root: bool,
    /// Bits cleared from every permission shown (`--umask`).
    pub umask: u16,
    /// The mount goes away when the daemon dies (`--auto-unmount`).
    pub auto_unmount: bool,
    /// Mount over a mount point that is not empty.
    pub nonempty: bool,
    pub read_only: bool,
    pub metadata_ttl: Duration,
    pub negative_ttl: Duration,
    pub read: ReadConfig,
    pub write: WriteConfig,
    pub s3: S3Options,
    /// Default lifetime of presigned links.
    pub presign_lifetime: Duration,
    pub metadata: MetadataConfig,
    /// Where the Prometheus metrics endpoint listens (`--metrics-addr`).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The local data cache (`--data-cache`), if any.
    pub data_cache: Option<DataCacheConfig>,
    /// File inodes the kernel may hold before the least recently used are forgotten.
    pub inode_budget: usize,
}

/// See `fs::reads::data_cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCacheConfig {
    pub dir: PathBuf,
    /// Bytes at most; `None`: a share of the free space (`data_cache::DEFAULT_SHARE_PERCENT`).
    pub size: Option<u64>,
}

/// `512` (MiB), `512M`, `20G`, `1.5T`, `800K`.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&s[..i], s[i..].trim_end_matches(['i', 'B', 'b'])),
        None => (s, "M"),
    };
    let shift = match unit {
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return None,
    };
    let n: f64 = num.trim().parse().ok().filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    Some((n * (1u64 << shift) as f64) as u64)
}

/// Where file metadata comes from; see `fs::metadata::index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetadataConfig {
    /// Take listings' attributes as they are (`--metadata-from listing`): no HeadObject for
    /// modes and times.
    pub from_listing: bool,
    /// Entries of the index kept in the cache directory; `None` keeps it in memory only.
    pub index_entries: Option<usize>,
}

/// Tuning for uploads and copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteConfig {
    /// Where staged files live.
    pub cache_dir: PathBuf,
    /// The first 1,000 parts' size; it doubles every 1,000 parts.
    pub part_size: u64,
    /// Parts in flight per upload.
    pub concurrency: usize,
    /// Upload buffers held across all uploads.
    pub memory_limit: u64,
    /// Objects larger than this are copied with UploadPartCopy (S3 allows CopyObject to 5 GiB).
    pub copy_threshold: u64,
    pub copy_part_size: u64,
}

impl Default for WriteConfig {
    fn default() -> Self {
        WriteConfig {
            cache_dir: std::env::temp_dir().join("s3drive-staging"),
            part_size: 8 << 20,
            concurrency: 8,
            memory_limit: 64 << 20,
            copy_threshold: 5 << 30,
            copy_part_size: 512 << 20,
        }
    }
}

impl WriteConfig {
    /// Size of part `n` (0-based).
    pub fn part_size(&self, n: i32) -> u64 {
        (self.part_size << (n / 1000).min(20)).min(crate::store::MAX_PART)
    }

    /// Offset where part `n` starts.
    pub fn part_start(&self, n: i32) -> u64 {
        (0..n).map(|i| self.part_size(i)).sum()
    }
}

/// Read-ahead tuning; see `fs::reads::reader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadConfig {
    /// Size of one ranged GET once a reader is sequential.
    pub part_size: u64,
    /// The first read-ahead window; it doubles while reads stay sequential.
    pub initial_window: u64,
    /// The largest read-ahead window of one reader.
    pub max_window: u64,
    /// Read-ahead bytes held across all readers.
    pub memory_limit: u64,
    /// Files at least this large are read with direct I/O, past the page cache (see `fuse`).
    pub direct_size: u64,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            part_size: 8 << 20,
            initial_window: 1 << 20,
            max_window: 64 << 20,
            memory_limit: 128 << 20,
            direct_size: 64 << 20,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: Source::AllBuckets,
            mountpoint: PathBuf::new(),
            uid: 0,
            gid: 0,
            file_mode: 0o644,
            dir_mode: 0o755,
            allow_other: false,
            allow_root: false,
            umask: 0,
            auto_unmount: false,
            nonempty: false,
            read_only: false,
            metadata_ttl: Duration::from_secs(10),
            negative_ttl: Duration::from_secs(10),
            read: ReadConfig::default(),
            write: WriteConfig::default(),
            s3: S3Options::default(),
            presign_lifetime: Duration::from_secs(3600),
            metadata: MetadataConfig::default(),
            metrics_addr: None,
            data_cache: None,
            inode_budget: 100_000,
        }
    }
}

/// A bad command line, with the sentence to show the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// A positive number of seconds from option `--what`.
fn seconds(what: &str, v: f64) -> Result<Duration, ConfigError> {
    if v.is_finite() && v > 0.0 && v < 1e9 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(bad(format!("--{what} {v} must be a positive number of seconds")))
    }
}

/// The certificates of `--ca-bundle` (AWS_CA_BUNDLE): a readable PEM file with at least one.
pub fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    let pem = std::fs::read(path).map_err(|e| bad(format!("--ca-bundle {}: {e}", path.display())))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(bad(format!(
            "--ca-bundle {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        )));
    }
    Ok(pem)
}

/// A point in time: RFC 3339 (`2026-12-01T10:00:00Z`, `2026-12-01T12:00:00+02:00`, fractions
/// of seconds allowed), a date (`2026-12-01`, midnight UTC), or Unix seconds (`@1796119200`).
pub fn parse_time(s: &str) -> Option<std::time::SystemTime> {
    let s = s.trim();
    let epoch = std::time::SystemTime::UNIX_EPOCH;
    if let Some(secs) = s.strip_prefix('@') {
        return Some(epoch + Duration::from_secs(secs.parse().ok()?));
    }
    let num = |t: &str| -> Option<i64> { t.bytes().all(|b| b.is_ascii_digit()).then(|| t.parse().ok()).flatten() };
    let (date, time) = match s.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (mut secs, offset) = match time {
        None => (0, 0),
        Some(t) => {
            let (clock, offset) = if let Some(c) = t.strip_suffix(['Z', 'z']) {
                (c, 0)
            } else if let Some(i) = t.rfind(['+', '-']) {
                let (c, o) = t.split_at(i);
                let (oh, om) = o[1..].split_once(':')?;
                let off = num(oh)? * 3600 + num(om)? * 60;
                (c, if o.starts_with('-') { -off } else { off })
            } else {
                (t, 0) // no zone: UTC
            };
            let clock = clock.split_once('.').map_or(clock, |(c, _)| c);
            let mut c = clock.split(':');
            let (h, mi, se) = (num(c.next()?)?, num(c.next()?)?, num(c.next().unwrap_or("0"))?);
            if h > 23 || mi > 59 || se > 60 {
                return None;
            }
            (h * 3600 + mi * 60 + se, offset)
        }
    };
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    secs += (era * 146_097 + doe - 719_468) * 86_400 - offset;
    (secs >= 0).then(|| epoch + Duration::from_secs(secs as u64))
}

/// Storage classes S3 knows (`--storage-class`).
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "OUTPOSTS",
    "SNOW",
    "EXPRESS_ONEZONE",
];

/// Canned ACLs (`--acl`).
const CANNED_ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

/// `--sse`, `--sse-kms-key-id`, `--sse-c-key-file`, `--storage-class`, `--acl`,
/// `--requester-pays`, `--expected-bucket-owner`, checked together.
fn request_options(args: &Args) -> Result<RequestOptions, ConfigError> {
    let sse = match (args.sse.as_deref(), &args.sse_c_key_file) {
        (Some(_), Some(_)) => return Err(bad("--sse and --sse-c-key-file exclude each other: choose one encryption")),
        (None, None) if args.sse_kms_key_id.is_some() => {
            return Err(bad("--sse-kms-key-id needs --sse aws:kms or --sse aws:kms:dsse"));
        }
        (None, None) => None,
        (Some(name), None) => match Sse::named(name, args.sse_kms_key_id.clone()) {
            Some(Sse::S3) if args.sse_kms_key_id.is_some() => {
                return Err(bad("--sse-kms-key-id needs --sse aws:kms or --sse aws:kms:dsse, not AES256"));
            }
            Some(sse) => Some(sse),
            None => return Err(bad(format!("--sse {name:?}: use AES256, aws:kms or aws:kms:dsse"))),
        },
        (None, Some(file)) => {
            if args.sse_kms_key_id.is_some() {
                return Err(bad("--sse-kms-key-id does not go with --sse-c-key-file"));
            }
            Some(Sse::customer_key_file(file).map_err(bad)?)
        }
    };
    if let Some(c) = &args.storage_class
        && !STORAGE_CLASSES.contains(&c.as_str())
    {
        return Err(bad(format!(
            "--storage-class {c:?} is not a storage class: one of {}",
            STORAGE_CLASSES.join(", ")
        )));
    }
    if let Some(a) = &args.acl
        && !CANNED_ACLS.contains(&a.as_str())
    {
        return Err(bad(format!("--acl {a:?} is not a canned ACL: one of {}", CANNED_ACLS.join(", "))));
    }
    if let Some(o) = &args.expected_bucket_owner
        && !(o.len() == 12 && o.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad(format!("--expected-bucket-owner {o:?} is not an AWS account id (12 digits)")));
    }
    Ok(RequestOptions {
        sse,
        storage_class: args.storage_class.clone(),
        acl: args.acl.clone(),
        requester_pays: args.requester_pays,
        expected_bucket_owner: args.expected_bucket_owner.clone(),
    })
}

fn parse_mode(what: &str, s: &str) -> Result<u16, ConfigError> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u16::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(bad(format!("--{what} {s:?} is not an octal mode such as 0644"))),
    }
}

/// A lifetime such as `3600`, `90s`, `15m`, `12h` or `7d`; at least one second.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86400)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn parse_ttl(what: &str, secs: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(secs).map_err(|_| bad(format!("--{what} {secs} is not a number of seconds >= 0")))
}

/// S3's bucket naming rules, loosely: 3-63 characters of lower-case letters, digits, '.', '-', '_'
/// (the last for older buckets and some S3-compatible services).
pub fn valid_bucket_name(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'_'))
}

/// Parses `BUCKET`, `BUCKET/PREFIX` or `s3://BUCKET/PREFIX`; a non-empty prefix gets a trailing '/'.
pub fn parse_source(s: &str) -> Result<Source, ConfigError> {
    let rest = s.strip_prefix("s3://").unwrap_or(s);
    let (bucket, prefix) = match rest.split_once('/') {
        Some((b, p)) => (b, p),
        None => (rest, ""),
    };
    if !valid_bucket_name(bucket) {
        return Err(bad(format!("{bucket:?} is not a valid bucket name (source {s:?})")));
    }
    let mut prefix = prefix.to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(Source::Prefix { bucket: bucket.to_string(), prefix })
}

/// `$XDG_CACHE_HOME/s3drive`, else `~/.cache/s3drive`, else a directory under /tmp.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("s3drive"))
        .unwrap_or_else(|| std::env::temp_dir().join("s3drive-cache"))
}

impl Config {
    pub fn from_args(args: &Args) -> Result<Config, ConfigError> {
        let (source, mountpoint) = match args.paths.as_slice() {
            [mp] => (None, mp),
            [src, mp] => (Some(src), mp),
            _ => return Err(bad("expected [SOURCE] MOUNTPOINT")),
        };
        let source = match (source, args.buckets.is_empty()) {
            (Some(_), false) => return Err(bad("give either SOURCE or --bucket, not both")),
            (Some(s), true) => parse_source(s)?,
            (None, false) => {
                for b in &args.buckets {
                    if !valid_bucket_name(b) {
                        return Err(bad(format!("--bucket {b:?} is not a valid bucket name")));
                    }
                }
                Source::Buckets(args.buckets.clone())
            }
            (None, true) => Source::AllBuckets,
        };
        if let Some(e) = &args.endpoint_url
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(bad(format!("--endpoint-url {e:?} must start with http:// or https://")));
        }
        if args.read_part_size == 0 || args.read_part_size > 1024 {
            return Err(bad("--read-part-size must be between 1 and 1024 MiB"));
        }
        if !(5..=5120).contains(&args.write_part_size) {
            return Err(bad("--write-part-size must be between 5 and 5120 MiB (S3's part limits)"));
        }
        if args.read_ahead_memory < 8 {
            return Err(bad("--read-ahead-memory must be at least 8 MiB"));
        }
        let presign_lifetime = parse_duration(&args.presign_lifetime).ok_or_else(|| {
            bad(format!(
                "--presign-lifetime {:?} is not a duration such as 3600, 30m, 12h or 7d",
                args.presign_lifetime
            ))
        })?;
        if presign_lifetime > crate::store::MAX_PRESIGN {
            return Err(bad("--presign-lifetime may be at most 7d (SigV4's limit)"));
        }
        let part_size = args.read_part_size << 20;
        let memory_limit = args.read_ahead_memory << 20;
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Ok(Config {
            source,
            mountpoint: PathBuf::from(mountpoint),
            uid: args.uid.unwrap_or(uid),
            gid: args.gid.unwrap_or(gid),
            file_mode: parse_mode("file-mode", &args.file_mode)?,
            dir_mode: parse_mode("dir-mode", &args.dir_mode)?,
            allow_other: args.allow_other,
            allow_root: args.allow_root,
            umask: parse_mode("umask", &args.umask)? & 0o777,
            auto_unmount: args.auto_unmount,
            metrics_addr: match &args.metrics_addr {
                None => None,
                Some(a) => Some(a.parse().map_err(|_| {
                    bad(format!("--metrics-addr {a:?} is not an address and port such as 127.0.0.1:9464"))
                })?),
            },
            data_cache: match &args.data_cache {
                None => None,
                Some(dir) => Some(DataCacheConfig {
                    dir: dir.clone(),
                    size: match &args.data_cache_size {
                        None => None,
                        Some(s) => Some(parse_size(s).filter(|&n| n >= 1 << 20).ok_or_else(|| {
                            bad(format!("--data-cache-size {s:?} is not a size of at least 1 MiB such as 512M, 20G or 1T"))
                        })?),
                    },
                }),
            },
            inode_budget: if args.inode_budget >= 100 {
                args.inode_budget
            } else {
                return Err(bad("--inode-budget must be at least 100"));
            },
            nonempty: args.nonempty,
            // A view of the past cannot be written to.
            read_only: args.read_only || args.version_at.is_some(),
            metadata_ttl: parse_ttl("metadata-ttl", args.metadata_ttl)?,
            negative_ttl: parse_ttl("negative-ttl", args.negative_ttl)?,
            read: ReadConfig {
                part_size,
                initial_window: (1 << 20).min(part_size),
                max_window: (part_size * 8).min(memory_limit / 2).max(part_size),
                memory_limit,
                direct_size: args.direct_read_size.saturating_mul(1 << 20),
            },
            write: WriteConfig {
                cache_dir: args.cache_dir.clone().unwrap_or_else(default_cache_dir),
                part_size: args.write_part_size << 20,
                memory_limit: (args.write_part_size << 20) * 8,
                ..WriteConfig::default()
            },
            s3: S3Options {
                endpoint_url: args.endpoint_url.clone(),
                region: args.region.clone(),
                profile: args.profile.clone(),
                force_path_style: args.force_path_style,
                no_sign_request: args.no_sign_request,
                retry: RetryOptions {
                    budget: seconds("retry-budget", args.retry_budget)?,
                    request_timeout: seconds("request-timeout", args.request_timeout)?,
                },
                upload_checksum: args.upload_checksum == "crc32c",
                ca_bundle: args.ca_bundle.as_deref().map(read_ca_bundle).transpose()?,
                request: request_options(args)?,
                version_at: args
                    .version_at
                    .as_deref()
                    .map(|t| {
                        parse_time(t).ok_or_else(|| {
                            bad(format!(
                                "--version-at {t:?} is not a time such as 2026-12-01T10:00:00Z, 2026-12-01 or @1796119200"
                            ))
                        })
                    })
                    .transpose()?,
                head_via_sdk: false,
            },
            presign_lifetime,
            metadata: MetadataConfig {
                from_listing: args.metadata_from == "listing",
                index_entries: (args.metadata_index_entries > 0).then_some(args.metadata_index_entries),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cfg(argv: &[&str]) -> Result<Config, ConfigError> {
        let mut v = vec!["s3drive"];
        v.extend_from_slice(argv);
        Config::from_args(&Args::try_parse_from(v).unwrap())
    }

    #[test]
    fn sources() {
        assert_eq!(cfg(&["/mnt"]).unwrap().source, Source::AllBuckets);
        assert_eq!(
            cfg(&["s3://my-bucket/photos", "/mnt"]).unwrap().source,
            Source::Prefix { bucket: "my-bucket".into(), prefix: "photos/".into() }
        );
        assert_eq!(
            cfg(&["my-bucket", "/mnt"]).unwrap().source,
            Source::Prefix { bucket: "my-bucket".into(), prefix: "".into() }
        );
        assert_eq!(
            cfg(&["--bucket", "aaa", "--bucket", "bbb", "/mnt"]).unwrap().source,
            Source::Buckets(vec!["aaa".into(), "bbb".into()])
        );
    }

    #[test]
    fn bad_input_is_explained() {
        assert!(cfg(&["Bad_Bucket!", "/mnt"]).unwrap_err().0.contains("not a valid bucket name"));
        assert!(cfg(&["--bucket", "aaa", "bbb", "/mnt"]).unwrap_err().0.contains("not both"));
        assert!(cfg(&["--file-mode", "999", "/mnt"]).unwrap_err().0.contains("octal"));
        assert!(cfg(&["--endpoint-url", "localhost:9000", "/mnt"]).unwrap_err().0.contains("http://"));
        assert!(cfg(&["--metadata-ttl=-1", "/mnt"]).unwrap_err().0.contains("seconds"));
        assert!(cfg(&["--presign-lifetime", "soon", "/mnt"]).unwrap_err().0.contains("duration"));
        assert!(cfg(&["--presign-lifetime", "8d", "/mnt"]).unwrap_err().0.contains("7d"));
    }

    #[test]
    fn times() {
        let at = |s: &str| parse_time(s).map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(at("2026-12-01T10:00:00Z"), Some(1_796_119_200));
        assert_eq!(at("2026-12-01T12:00:00+02:00"), Some(1_796_119_200));
        assert_eq!(at("2026-12-01 10:00:00.75"), Some(1_796_119_200));
        assert_eq!(at("2026-12-01"), Some(1_796_083_200));
        assert_eq!(at("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(at("@1796119200"), Some(1_796_119_200));
        for bad in ["yesterday", "2026-13-01", "2026-12-01T25:00:00Z", "2026-12", "@-5", "1960-01-01"] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43200)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604800)));
        for bad in ["", "0", "1w", "h", "-5", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(cfg(&["/mnt"]).unwrap().presign_lifetime, Duration::from_secs(3600));
    }

    #[test]
    fn modes_parse_as_octal() {
        let c = cfg(&["--file-mode", "600", "--dir-mode", "0o700", "/mnt"]).unwrap();
        assert_eq!((c.file_mode, c.dir_mode), (0o600, 0o700));
    }

    #[test]
    fn data_cache_sizes() {
        assert_eq!(parse_size("512"), Some(512 << 20));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("20G"), Some(20 << 30));
        assert_eq!(parse_size("20GiB"), Some(20 << 30));
        assert_eq!(parse_size("1.5T"), Some(3 << 39));
        assert_eq!(parse_size("800k"), Some(800 << 10));
        for bad in ["", "G", "5X", "-1G", "1..5G"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        let c = cfg(&["--data-cache", "/var/cache/d", "--data-cache-size", "20G", "/mnt"]).unwrap();
        assert_eq!(c.data_cache, Some(DataCacheConfig { dir: "/var/cache/d".into(), size: Some(20 << 30) }));
        assert_eq!(cfg(&["--data-cache", "/d", "/mnt"]).unwrap().data_cache.unwrap().size, None);
        assert!(cfg(&["--data-cache", "/d", "--data-cache-size", "100K", "/mnt"]).is_err());
        assert!(cfg(&["/mnt"]).unwrap().data_cache.is_none());
    }
}
