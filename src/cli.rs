//! Command-line arguments (clap derive). Doc comments are the `--help` text (and the man page).
//! Nothing here is validated beyond its type: `config::Config::from_args` does that in one step.
//! `-o` mount options (fstab) are turned into these flags by `options::expand` before parsing.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Mount Amazon S3 or an S3-compatible service (MinIO, Wasabi, DigitalOcean Spaces, Ceph) as a
/// local directory.
///
/// With only MOUNTPOINT, every bucket ListBuckets returns is a top-level directory. With
/// SOURCE (BUCKET, BUCKET/PREFIX/ or s3://BUCKET/PREFIX/) that bucket or prefix is the root.
/// s3drive returns once the mount is ready and serves it in the background (--foreground keeps
/// it attached). Mount options may also be given as `-o name[=value],...` (as in fstab:
/// `-o allow_other,region=eu-west-1,ro`), each the name of a long option below.
#[derive(Debug, Parser)]
#[command(name = "s3drive", version, about, args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub mount: Args,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a mount is doing: requests by kind, bytes up and down, uploads in flight,
    /// pending deletes, recent errors.
    Status {
        /// The mount point of a running s3drive.
        mountpoint: PathBuf,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), e.g. `s3drive man > /usr/local/share/man/man1/s3drive.1`.
    Man,
    /// List, upload or discard the files a mount that died (kill -9, out of memory, power
    /// loss) left in the cache directory without uploading them.
    Recover {
        /// The cache directory the mount used [default: $XDG_CACHE_HOME/s3drive or
        /// ~/.cache/s3drive].
        #[arg(long, value_name = "DIR", global = true)]
        cache_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: Option<RecoverAction>,
    },
}

/// What `s3drive recover` does (list by default).
#[derive(Debug, Subcommand)]
pub enum RecoverAction {
    /// List the files, with their ID, size and destination.
    List,
    /// Upload one to the key it was written to, if the object there is still the version the
    /// file started from (or still absent); else to KEY.recovered-TIME beside it, so nothing
    /// newer is overwritten. The file is removed once uploaded.
    Upload {
        /// The ID `list` shows.
        id: String,
        /// S3 endpoint URL [default: the one the mount used].
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        #[arg(long, env = "AWS_PROFILE", value_name = "NAME")]
        profile: Option<String>,
        /// Path-style addressing [default: as the mount had it].
        #[arg(long)]
        force_path_style: bool,
        /// The SSE-C key the mount used (its journal keeps only the key's MD5, to check it).
        #[arg(long, value_name = "FILE")]
        sse_c_key_file: Option<PathBuf>,
    },
    /// Delete one, with its bytes.
    Discard {
        /// The ID `list` shows.
        id: String,
    },
}

/// The options of a mount.
#[derive(Debug, Parser)]
#[command(name = "s3drive")]
pub struct Args {
    /// [SOURCE] MOUNTPOINT: an optional bucket or bucket/prefix to mount as the root, then the
    /// directory to mount on.
    #[arg(value_name = "[SOURCE] MOUNTPOINT", num_args = 1..=2, required = true)]
    pub paths: Vec<String>,

    /// Show only this bucket at the top level (repeatable); no ListBuckets is sent.
    #[arg(long = "bucket", value_name = "NAME", help_heading = "Buckets")]
    pub buckets: Vec<String>,

    /// S3 endpoint URL for S3-compatible services, e.g. http://127.0.0.1:9000.
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL", help_heading = "Service")]
    pub endpoint_url: Option<String>,

    /// Default region (buckets on AWS are addressed in their own region, found with HeadBucket).
    #[arg(long, value_name = "REGION", help_heading = "Service")]
    pub region: Option<String>,

    /// Use path-style addressing (http://host/bucket/key); most S3-compatible services need it.
    #[arg(long, help_heading = "Service")]
    pub force_path_style: bool,

    /// An S3 request that makes no progress (no bytes of its body taken, no answer, no bytes of
    /// the answer) for this long is abandoned and tried again.
    #[arg(long, value_name = "SECONDS", default_value = "30", help_heading = "Service")]
    pub request_timeout: f64,

    /// How long a failing request is retried (connection errors, stalls, 5xx, throttling such
    /// as 503 SlowDown), with exponential backoff and jitter, before the operation fails with
    /// EIO. A request fails at most about this plus --request-timeout after it began.
    #[arg(long, value_name = "SECONDS", default_value = "60", help_heading = "Service")]
    pub retry_budget: f64,

    /// PEM file of certificate authorities to trust besides the system's, for an endpoint or
    /// an HTTPS proxy with a certificate from a private CA. HTTPS_PROXY, HTTP_PROXY and
    /// NO_PROXY are honoured.
    #[arg(long, env = "AWS_CA_BUNDLE", value_name = "FILE", help_heading = "Service")]
    pub ca_bundle: Option<std::path::PathBuf>,

    /// Checksum sent with every upload (PutObject, UploadPart) so the service refuses bytes
    /// changed on the way (they are sent again): "crc32c" (the default), or "off" for a
    /// service that rejects the x-amz-checksum-crc32c header.
    #[arg(long, value_name = "ALGORITHM", default_value = "crc32c", value_parser = ["crc32c", "off"], help_heading = "Service")]
    pub upload_checksum: String,

    /// Server-side encryption of everything written (uploads, renames, metadata changes,
    /// server-side copies): AES256 (SSE-S3), aws:kms (SSE-KMS) or aws:kms:dsse (dual-layer).
    #[arg(long, value_name = "MODE", value_parser = ["AES256", "aws:kms", "aws:kms:dsse"], help_heading = "Company buckets")]
    pub sse: Option<String>,

    /// The KMS key for --sse aws:kms or aws:kms:dsse (key id, ARN or alias); without it the
    /// bucket's default KMS key.
    #[arg(long, value_name = "KEY", help_heading = "Company buckets")]
    pub sse_kms_key_id: Option<String>,

    /// SSE-C: a file holding the 32-byte key (raw, or base64) every object is encrypted with;
    /// reads, HEADs and copies send it too. The key is never taken on the command line and never
    /// logged.
    #[arg(long, value_name = "FILE", help_heading = "Company buckets")]
    pub sse_c_key_file: Option<PathBuf>,

    /// Storage class of new objects, e.g. STANDARD_IA, INTELLIGENT_TIERING, GLACIER_IR. A
    /// rename or metadata change keeps an object's own class.
    #[arg(long, value_name = "CLASS", help_heading = "Company buckets")]
    pub storage_class: Option<String>,

    /// Canned ACL of new objects and copies, e.g. bucket-owner-full-control (cross-account).
    #[arg(long, value_name = "ACL", help_heading = "Company buckets")]
    pub acl: Option<String>,

    /// Agree to pay for requests and transfer in requester-pays buckets.
    #[arg(long, help_heading = "Company buckets")]
    pub requester_pays: bool,

    /// Every request is refused unless the bucket belongs to this AWS account (12 digits).
    #[arg(long, value_name = "ACCOUNT", help_heading = "Company buckets")]
    pub expected_bucket_owner: Option<String>,

    /// A read-only view of the bucket as it was at this time (a bucket with versioning): each key
    /// shows the version that was current then (ListObjectVersions). 2026-12-01T10:00:00Z,
    /// 2026-12-01 (midnight UTC) or @UNIX-SECONDS.
    #[arg(long, value_name = "TIME", help_heading = "Company buckets")]
    pub version_at: Option<String>,

    /// Named profile from ~/.aws/config and ~/.aws/credentials.
    #[arg(long, env = "AWS_PROFILE", value_name = "NAME", help_heading = "Credentials")]
    pub profile: Option<String>,

    /// Send unsigned requests, for public buckets; no credentials are looked up.
    #[arg(long, help_heading = "Credentials")]
    pub no_sign_request: bool,

    /// Owner of every file and directory [default: the mounting user].
    #[arg(long, value_name = "UID", help_heading = "Ownership and permissions")]
    pub uid: Option<u32>,

    /// Group of every file and directory [default: the mounting user's group].
    #[arg(long, value_name = "GID", help_heading = "Ownership and permissions")]
    pub gid: Option<u32>,

    /// Permission bits of files, in octal.
    #[arg(long, value_name = "MODE", default_value = "0644", help_heading = "Ownership and permissions")]
    pub file_mode: String,

    /// Permission bits of directories, in octal.
    #[arg(long, value_name = "MODE", default_value = "0755", help_heading = "Ownership and permissions")]
    pub dir_mode: String,

    /// Let users other than the mounting user access the mount (needs user_allow_other in
    /// /etc/fuse.conf when not root).
    #[arg(long, help_heading = "Ownership and permissions", conflicts_with = "allow_root")]
    pub allow_other: bool,

    /// Let root access the mount besides the mounting user (for services running as root; needs
    /// user_allow_other in /etc/fuse.conf when not root).
    #[arg(long, help_heading = "Ownership and permissions")]
    pub allow_root: bool,

    /// Bits cleared from every permission shown (files and directories), in octal, e.g. 0077
    /// to keep everything private whatever modes the objects carry. Stored modes are unchanged.
    #[arg(long, value_name = "MASK", default_value = "0", help_heading = "Ownership and permissions")]
    pub umask: String,

    /// Mount over a directory that is not empty (its files are hidden while mounted); without
    /// it such a mount point is refused.
    #[arg(long, help_heading = "Running")]
    pub nonempty: bool,

    /// Unmount by itself when the daemon dies (killed, out of memory), instead of leaving
    /// "Transport endpoint is not connected" behind. fusermount3 then mounts with allow_other,
    /// so a user other than root needs user_allow_other in /etc/fuse.conf (s3drive itself still
    /// lets only the mounting user, and root, in unless --allow-other is given).
    #[arg(long, help_heading = "Running")]
    pub auto_unmount: bool,

    /// Mount read-only: every change fails with EROFS.
    #[arg(long, help_heading = "Ownership and permissions")]
    pub read_only: bool,

    /// How long metadata (attributes, directory listings) is trusted before S3 is asked again.
    #[arg(long, value_name = "SECONDS", default_value = "10", help_heading = "Caching")]
    pub metadata_ttl: f64,

    /// How long a name found missing stays missing before S3 is asked again.
    #[arg(long, value_name = "SECONDS", default_value = "10", help_heading = "Caching")]
    pub negative_ttl: f64,

    /// Where files' modes, owners, mtimes and symlink-ness come from. "head" (the default):
    /// from each object's user metadata, fetched with one HeadObject per object version the
    /// first time it is seen (many at once while a listing is walked) and kept in an index in
    /// the cache directory, so listings show only what is known to be right. "listing": from
    /// listings alone, no HeadObject for them: LastModified as mtime and the default modes and
    /// owner for objects not looked at before (symlinks show as small files until then).
    #[arg(long, value_name = "FROM", default_value = "head", value_parser = ["head", "listing"], help_heading = "Caching")]
    pub metadata_from: String,

    /// Object versions whose metadata the index in the cache directory keeps (the least
    /// recently used go first; about 200 bytes each). 0 keeps it in memory only.
    #[arg(long, value_name = "N", default_value = "1000000", help_heading = "Caching")]
    pub metadata_index_entries: usize,

    /// Keep the data of objects read in this directory, in 1 MiB blocks, so that reading them
    /// again (another process, after a remount, a large file) costs no GetObject. Blocks are
    /// kept per object version (ETag) and checked (CRC32C) on every read; the least recently
    /// used go first. Mounts may share the directory. Off by default: it puts object data on
    /// local disk.
    #[arg(long, value_name = "DIR", help_heading = "Caching")]
    pub data_cache: Option<std::path::PathBuf>,

    /// Most disk space the data cache uses: a number of MiB, or with K, M, G or T [default: half
    /// of the space free at start, counting what the cache holds as free]. It never fills the
    /// last 5% of its file system.
    #[arg(long, value_name = "SIZE", requires = "data_cache", help_heading = "Caching")]
    pub data_cache_size: Option<String>,

    /// Inodes (files and folders) the kernel may hold before s3drive asks it to forget the least
    /// recently used ones (those unused for --metadata-ttl; files first, then emptied folders,
    /// never open ones or a process's working directory): a walk of millions of names (`find`,
    /// `du`) keeps memory bounded. About 400 bytes each in s3drive.
    #[arg(long, value_name = "N", default_value = "100000", help_heading = "Caching")]
    pub inode_budget: usize,

    /// Most memory used for read-ahead across all open files, in MiB.
    #[arg(long, value_name = "MIB", default_value = "128", help_heading = "Performance")]
    pub read_ahead_memory: u64,

    /// Size of each ranged GetObject request while reading sequentially, in MiB.
    #[arg(long, value_name = "MIB", default_value = "8", help_heading = "Performance")]
    pub read_part_size: u64,

    /// Files of at least this size, in MiB, are read past the kernel's page cache (direct I/O):
    /// streaming a large file once neither pays for filling the cache nor pushes out what is in
    /// it, but reading it again fetches it again. Smaller files are cached by the kernel while
    /// their ETag is unchanged. 0 reads every file directly.
    #[arg(long, value_name = "MIB", default_value = "64", help_heading = "Performance")]
    pub direct_read_size: u64,

    /// Where files being written are staged before upload (and kept if an upload fails)
    /// [default: $XDG_CACHE_HOME/s3drive or ~/.cache/s3drive].
    #[arg(long, value_name = "DIR", help_heading = "Writing")]
    pub cache_dir: Option<std::path::PathBuf>,

    /// Size of the first 1,000 parts of a multipart upload, in MiB (it doubles every 1,000 parts,
    /// so files up to S3's 5 TiB limit can be written).
    #[arg(long, value_name = "MIB", default_value = "8", help_heading = "Writing")]
    pub write_part_size: u64,

    /// Lifetime of share links from the user.s3.presigned_url attribute: seconds, or a number
    /// with s, m, h or d (at most 7d; temporary credentials cap it at their expiry). One link
    /// can ask for another lifetime by name: user.s3.presigned_url.15m.
    #[arg(long, value_name = "DURATION", default_value = "1h", help_heading = "Share links")]
    pub presign_lifetime: String,

    /// Stay attached to the terminal (for systemd and debugging); logs go to stderr.
    #[arg(short, long, help_heading = "Running")]
    pub foreground: bool,

    /// Log filter, e.g. "info", "debug", "s3drive=debug,aws=warn" [env: S3DRIVE_LOG]
    /// [default: warn,fuser=error,s3drive=info].
    #[arg(long, value_name = "FILTER", help_heading = "Logging")]
    pub log: Option<String>,

    /// Write the log to this file (appending) instead of stderr (foreground) or syslog
    /// (background; a file in the cache directory when there is no syslog).
    #[arg(long, value_name = "PATH", help_heading = "Logging")]
    pub log_file: Option<PathBuf>,

    /// Serve Prometheus metrics (requests, retries, bytes, uploads and deletes in progress,
    /// errors) at http://ADDR:PORT/metrics, e.g. 127.0.0.1:9464. No authentication: keep it on
    /// loopback or a trusted network.
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Logging")]
    pub metrics_addr: Option<String>,
}
