//! The Prometheus metrics endpoint (`--metrics-addr`): the counters of [`crate::stats`] and a
//! snapshot of [`crate::fs::Activity`] in the text exposition format, at `/metrics`. A plain
//! HTTP/1.1 answer per connection on the runtime; every read and write is bounded in time and
//! size, so a client that stalls or floods holds nothing for long.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info};

use crate::fs::Activity;

/// How long a client may take to send its request, and to take the answer.
const CLIENT_TIME: Duration = Duration::from_secs(5);
/// The largest request head read.
const MAX_REQUEST: usize = 8 << 10;

/// Binds the endpoint's socket (before the mount, so a taken port is a start-up error).
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("--metrics-addr {addr}: cannot listen there: {e}"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serves `/metrics` on `listener` from the current runtime until the process ends.
pub fn spawn(listener: std::net::TcpListener, activity: impl Fn() -> Activity + Send + Sync + 'static) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "metrics endpoint not started");
            return;
        }
    };
    if let Ok(a) = listener.local_addr() {
        info!(addr = %a, "metrics at http://{a}/metrics");
    }
    let activity = std::sync::Arc::new(activity);
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, peer)) = listener.accept().await else { continue };
            let activity = activity.clone();
            tokio::spawn(async move {
                if let Err(e) = tokio::time::timeout(CLIENT_TIME, answer(&mut conn, &*activity)).await {
                    debug!(%peer, error = %e, "metrics client too slow");
                }
            });
        }
    });
}

async fn answer(conn: &mut tokio::net::TcpStream, activity: &(dyn Fn() -> Activity + Send + Sync)) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or_default()).into_owned();
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics" | "/") => ("200 OK", render(&activity())),
        ("GET" | "HEAD", _) => ("404 Not Found", "only /metrics is served here\n".to_string()),
        _ => ("405 Method Not Allowed", "GET /metrics\n".to_string()),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        out.push_str(&body);
    }
    let _ = conn.write_all(out.as_bytes()).await;
    let _ = conn.shutdown().await;
}

/// The exposition text: process-wide counters and the snapshot given.
pub fn render(a: &Activity) -> String {
    let stats = crate::stats::get();
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP s3drive_{name} {help}\n# TYPE s3drive_{name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "s3drive_{name}{labels} {v}");
        }
    };
    let by_op = |v: Vec<(&'static str, u64)>| -> Vec<(String, u64)> {
        v.into_iter().map(|(op, n)| (format!("{{operation=\"{op}\"}}"), n)).collect()
    };
    let one = |v: u64| vec![(String::new(), v)];
    let started = stats.started.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let (up, down) = stats.bytes();
    family("start_time_seconds", "gauge", "When the daemon started (Unix time).", &one(started));
    family("requests_total", "counter", "S3 requests, by operation (retries not counted).", &by_op(stats.requests()));
    family(
        "request_retries_total",
        "counter",
        "S3 requests sent again after a failure, by operation.",
        &by_op(stats.retries()),
    );
    family("uploaded_bytes_total", "counter", "Bytes sent to S3 (PutObject, UploadPart).", &one(up));
    family("downloaded_bytes_total", "counter", "Bytes received from S3 (GetObject).", &one(down));
    family(
        "errors_total",
        "counter",
        "Failed operations and uploads (the recent ones are in s3drive status).",
        &one(stats.errors_total()),
    );
    family("files_open_for_writing", "gauge", "Files open for writing.", &one(a.files_open_for_writing));
    family("uploads_in_progress", "gauge", "Files being uploaded now.", &one(a.uploads_in_progress));
    family(
        "bytes_not_yet_in_s3",
        "gauge",
        "Bytes of files open for writing that S3 does not hold yet.",
        &one(a.bytes_not_yet_in_s3),
    );
    family("pending_deletes", "gauge", "Keys queued for DeleteObjects or in flight.", &one(a.pending_deletes));
    family("orphaned_files", "gauge", "Files a crashed mount left behind (s3drive recover).", &one(a.orphaned_files));
    family("read_ahead_bytes", "gauge", "Read-ahead memory in use.", &one(a.read_ahead_bytes));
    family(
        "metadata_index_disk_hits_total",
        "counter",
        "Object versions whose metadata came from the on-disk index.",
        &one(a.index_disk_hits),
    );
    if let Some(c) = &a.data_cache {
        family("data_cache_bytes", "gauge", "Bytes the data cache holds.", &one(c.bytes));
        family("data_cache_limit_bytes", "gauge", "The data cache's size limit.", &one(c.limit));
        family("data_cache_hits_total", "counter", "Blocks read from the data cache.", &one(c.hits));
        family(
            "data_cache_misses_total",
            "counter",
            "Blocks looked for in the data cache and fetched from S3.",
            &one(c.misses),
        );
        family("data_cache_served_bytes_total", "counter", "Bytes read from the data cache.", &one(c.bytes_served));
        family("data_cache_evicted_total", "counter", "Blocks evicted from the data cache.", &one(c.evicted));
        family(
            "data_cache_damaged_total",
            "counter",
            "Blocks that failed their check and were fetched again.",
            &one(c.corrupt),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scrape_answers_with_the_exposition_format() {
        crate::stats::request("PutObject");
        crate::stats::retry("PutObject");
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        spawn(l, || Activity { uploads_in_progress: 2, ..Activity::default() });
        let get = |req: &'static str| async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(req.as_bytes()).await.unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).await.unwrap();
            s
        };
        let ok = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("\ns3drive_uploads_in_progress 2\n"), "{ok}");
        assert!(ok.contains("# TYPE s3drive_requests_total counter\n"), "{ok}");
        let n = |text: &str, name: &str| -> u64 {
            text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
        };
        assert!(n(&ok, "s3drive_requests_total{operation=\"PutObject\"}") >= 1, "{ok}");
        assert!(n(&ok, "s3drive_request_retries_total{operation=\"PutObject\"}") >= 1, "{ok}");
        let body_len = ok.split("\r\n\r\n").nth(1).unwrap().len();
        assert!(ok.contains(&format!("Content-Length: {body_len}\r\n")), "{ok}");
        assert!(get("GET /other HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 404"));
        assert!(get("POST /metrics HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 405"));
        assert!(bind(addr).unwrap_err().to_string().contains("cannot listen there"), "a taken port is refused");
    }
}
