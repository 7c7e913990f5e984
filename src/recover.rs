//! `s3drive recover`: what a mount that died left in the cache directory (see
//! [`crate::fs::writes::staging`]): list it, upload one file (never over a newer object), or discard it.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use bytes::Bytes;

use crate::cli::RecoverAction;
use crate::fs::inode::Kind;
use crate::fs::writes::staged::FileMeta;
use crate::fs::writes::staging::{self, Orphan, RequestNote};
use crate::stats::human;
use crate::store::s3::{RequestOptions, S3Options, S3Store, Sse};
use crate::store::{ObjectStore, StoreError};

pub fn run(cache_dir: Option<PathBuf>, action: Option<RecoverAction>) -> ExitCode {
    let dir = cache_dir.unwrap_or_else(crate::config::default_cache_dir);
    let found = staging::orphans(&dir);
    let find = |id: &str| found.iter().find(|o| o.id == id).cloned();
    match action.unwrap_or(RecoverAction::List) {
        RecoverAction::List => {
            let mut out = String::new();
            if found.is_empty() {
                out += &format!("nothing to recover in {}\n", dir.display());
            }
            for o in &found {
                let j = &o.journal;
                let dest = if j.bucket.is_empty() {
                    "(no journal: destination unknown)".to_string()
                } else {
                    format!("s3://{}/{}", j.bucket, j.key)
                };
                out += &format!("{}  {}  {}  ({})\n", o.id, human(o.size), dest, o.data.display());
            }
            crate::output::print_all(out.as_bytes())
        }
        RecoverAction::Discard { id } => match find(&id) {
            Some(o) => {
                staging::discard(&o);
                println!("discarded {id} ({} for s3://{}/{})", human(o.size), o.journal.bucket, o.journal.key);
                ExitCode::SUCCESS
            }
            None => no_such(&id, &dir),
        },
        RecoverAction::Upload { id, endpoint_url, region, profile, force_path_style, sse_c_key_file } => {
            let Some(o) = find(&id) else { return no_such(&id, &dir) };
            if o.journal.bucket.is_empty() {
                eprintln!(
                    "s3drive: {id} has no journal, so where it goes is unknown; its bytes are in {}",
                    o.data.display()
                );
                return ExitCode::FAILURE;
            }
            let request = match request_options(&o.journal.request, sse_c_key_file.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("s3drive: {id}: {e}");
                    return ExitCode::from(2);
                }
            };
            let service = o.journal.service.clone();
            let opts = S3Options {
                endpoint_url: endpoint_url.or((service != "aws").then_some(service)),
                region,
                profile,
                force_path_style: force_path_style || o.journal.path_style,
                no_sign_request: false,
                retry: Default::default(),
                upload_checksum: true,
                ca_bundle: match std::env::var_os("AWS_CA_BUNDLE").map(|p| crate::config::read_ca_bundle(p.as_ref())) {
                    Some(Err(e)) => {
                        eprintln!("s3drive: {e}");
                        return ExitCode::FAILURE;
                    }
                    other => other.and_then(Result::ok),
                },
                request,
                version_at: None,
                head_via_sdk: false,
            };
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("s3drive: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(async {
                let store = S3Store::new(&opts).await;
                upload(&store, &o).await
            }) {
                Ok(key) => {
                    staging::discard(&o);
                    println!("uploaded {id} to s3://{}/{key}", o.journal.bucket);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("s3drive: uploading {id} failed: {e}; it stays in {}", o.data.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The request options the mount wrote with, from its journal (a journal of an older s3drive
/// has none: plain requests). An SSE-C key must be given again, and be the same.
fn request_options(note: &RequestNote, sse_c_key_file: Option<&std::path::Path>) -> Result<RequestOptions, String> {
    let sse = match (note.sse.as_deref(), sse_c_key_file) {
        (Some("SSE-C"), None) => {
            return Err("the mount encrypted with SSE-C: give its key with --sse-c-key-file".into());
        }
        (Some("SSE-C"), Some(file)) => {
            let sse = Sse::customer_key_file(file)?;
            match &sse {
                Sse::Customer { key_md5, .. } if Some(key_md5) == note.sse_c_key_md5.as_ref() => Some(sse),
                _ => return Err(format!("--sse-c-key-file {}: not the key the mount used", file.display())),
            }
        }
        (_, Some(_)) => return Err("the mount did not use SSE-C: leave out --sse-c-key-file".into()),
        (None, None) => None,
        (Some(name), None) => match Sse::named(name, note.kms_key_id.clone()) {
            Some(sse) => Some(sse),
            None => return Err(format!("the journal names an unknown encryption {name:?}")),
        },
    };
    Ok(RequestOptions {
        sse,
        storage_class: note.storage_class.clone(),
        acl: note.acl.clone(),
        requester_pays: note.requester_pays,
        expected_bucket_owner: note.expected_bucket_owner.clone(),
    })
}

fn no_such(id: &str, dir: &std::path::Path) -> ExitCode {
    eprintln!("s3drive: no file {id:?} to recover in {} (see `s3drive recover list`)", dir.display());
    ExitCode::from(2)
}

/// Uploads an orphan to its key, or beside it if the object changed since the file was opened;
/// returns the key used.
pub async fn upload<S: ObjectStore>(store: &S, o: &Orphan) -> Result<String, StoreError> {
    let j = &o.journal;
    let current = match store.head_object(&j.bucket, &j.key).await {
        Ok(m) => m.etag,
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e),
    };
    let key = if current == j.base_etag {
        j.key.clone()
    } else {
        let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        format!("{}.recovered-{secs}", j.key)
    };
    let meta = FileMeta {
        perm: (j.mode & 0o7777) as u16,
        uid: j.uid,
        gid: j.gid,
        mtime: crate::fs::parse_mtime(&j.mtime).unwrap_or_else(SystemTime::now),
        mtime_set: true,
        atime: None,
        ctime: SystemTime::now(),
        kind: Kind::from_mode(j.mode, 0),
    };
    let put = meta.to_put(&key, &HashMap::new());
    let file = std::fs::File::open(&o.data).map_err(|e| local(&o.data, e))?;
    let size = o.size;
    // Parts big enough that S3's 10,000 reach the file's size.
    let part = (8u64 << 20).max(size.div_ceil(10_000));
    let read = |start: u64, len: u64| -> Result<Bytes, StoreError> {
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, start).map_err(|e| local(&o.data, e))?;
        Ok(buf.into())
    };
    if size <= part {
        store.put_object(&j.bucket, &key, read(0, size)?, &put).await?;
        return Ok(key);
    }
    let id = store.create_multipart(&j.bucket, &key, &put).await?;
    let sent = async {
        let mut parts = Vec::new();
        let mut start = 0;
        while start < size {
            let len = part.min(size - start);
            let n = parts.len() as i32 + 1;
            parts.push((n, store.upload_part(&j.bucket, &key, &id, n, read(start, len)?).await?));
            start += len;
        }
        store.complete_multipart(&j.bucket, &key, &id, &parts).await
    }
    .await;
    if let Err(e) = sent {
        let _ = store.abort_multipart(&j.bucket, &key, &id).await;
        return Err(e);
    }
    Ok(key)
}

fn local(path: &std::path::Path, e: std::io::Error) -> StoreError {
    StoreError::Server { status: None, code: "LocalFile".into(), message: format!("{}: {e}", path.display()) }
}
