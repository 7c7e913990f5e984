//! Integration-test harness: a real S3-compatible server (moto) on 127.0.0.1, a counting and
//! fault-injecting HTTP proxy in front of it, the AWS SDK to fill buckets, and real mounts of
//! the s3drive binary that are always unmounted, also when a test fails.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// A directory of this test process's own (servers' logs and data, mounts, their cache
/// directories, HOME and XDG_CACHE_HOME of every s3drive the tests run), removed when the
/// process exits: the suite leaves the user's `~/.cache/s3drive` and the temp dir as they were.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    extern "C" fn remove() {
        if let Some(d) = DIR.get() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("s3drive-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("home")).unwrap();
        // SAFETY: registers a plain function, run by exit(3) after the tests.
        unsafe { libc::atexit(remove) };
        d
    })
}

/// A fresh directory under [`scratch`], removed on drop.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir_in(scratch()).unwrap()
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The moto server shared by the tests of one test binary.
pub fn moto_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let port = free_port();
        // scripts/setup.sh installs it in the project's virtualenv; else it is on PATH.
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
        let default = if venv.exists() { venv.display().to_string() } else { "moto_server".into() };
        let mut cmd = Command::new(std::env::var("MOTO_SERVER").unwrap_or(default));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        start_server(cmd, "moto", port, "start moto_server (run scripts/setup.sh)");
        port
    })
}

/// A second moto server that speaks only HTTPS, with a certificate for 127.0.0.1 signed by a
/// CA made for it (openssl). Returns the port and the CA's PEM file.
pub fn moto_tls() -> (u16, PathBuf) {
    static SERVER: OnceLock<(u16, PathBuf)> = OnceLock::new();
    let (port, ca) = SERVER.get_or_init(|| {
        let dir = scratch().join("tls");
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        sh(&format!(
            "cd {d} && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
               -subj '/CN=s3drive test CA' 2>/dev/null \
             && openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null \
             && printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext \
             && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 \
               -extfile ext 2>/dev/null"
        ));
        let port = free_port();
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
        let default = if venv.exists() { venv.display().to_string() } else { "moto_server".into() };
        let mut cmd = Command::new(std::env::var("MOTO_SERVER").unwrap_or(default));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .arg("-c")
            .arg(dir.join("srv.pem"))
            .arg("-k")
            .arg(dir.join("srv.key"));
        start_server(cmd, "moto-tls", port, "start moto_server (run scripts/setup.sh)");
        (port, dir.join("ca.pem"))
    });
    (*port, ca.clone())
}

/// s3s-fs (credentials test/test, buckets are directories under the returned path), shared by
/// the tests of one test binary. Unlike moto it checks signatures and the expiry of presigned
/// URLs; its listings are not S3's (see the README), so tests of listings use moto.
pub fn s3s_fs() -> (u16, &'static Path) {
    static SERVER: OnceLock<(u16, PathBuf)> = OnceLock::new();
    let (port, dir) = SERVER.get_or_init(|| {
        let port = free_port();
        let dir = scratch().join("s3s-fs");
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new("s3s-fs");
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", "test", "--secret-key", "test"])
            .arg(&dir);
        start_server(cmd, "s3s-fs", port, "start s3s-fs (run scripts/setup.sh)");
        (port, dir)
    });
    (*port, dir.as_path())
}

/// Starts a server from a thread that lives as long as the process, with PR_SET_PDEATHSIG so it
/// dies with the test process, and waits until it accepts connections.
fn start_server(mut cmd: Command, name: &str, port: u16, hint: &str) {
    let log = std::fs::File::create(scratch().join(format!("{name}-{port}.log"))).unwrap();
    cmd.stdout(Stdio::null()).stderr(log);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn();
        tx.send(child.as_ref().map(|_| ()).map_err(|e| e.to_string())).unwrap();
        let _keep = child;
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap().expect(hint);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{name} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An SDK client talking to moto directly (not through the proxy, so it is not counted).
pub fn client() -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{}", moto_port()))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

/// A bucket name no other test uses.
pub fn bucket(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t-{tag}-{}-{n}", std::process::id())
}

pub fn create_bucket(c: &Client, b: &str) {
    rt().block_on(c.create_bucket().bucket(b).send()).unwrap();
}

pub fn put(c: &Client, b: &str, key: &str, data: impl Into<Vec<u8>>) {
    let body = ByteStream::from(data.into());
    rt().block_on(c.put_object().bucket(b).key(key).body(body).send()).unwrap();
}

pub fn put_meta(c: &Client, b: &str, key: &str, data: impl Into<Vec<u8>>, meta: &[(&str, &str)]) {
    let mut req = c.put_object().bucket(b).key(key).body(ByteStream::from(data.into()));
    for (k, v) in meta {
        req = req.metadata(*k, *v);
    }
    rt().block_on(req.send()).unwrap();
}

/// Puts many objects, 16 at a time.
pub fn put_many(c: &Client, b: &str, keys: Vec<String>, data: &'static [u8]) {
    put_many_meta(c, b, keys, data, &[]);
}

/// [`put_many`] with user metadata (as another client such as s3fs writes it) on every object.
pub fn put_many_meta(c: &Client, b: &str, keys: Vec<String>, data: &'static [u8], meta: &'static [(&str, &str)]) {
    rt().block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(16));
        let mut tasks = Vec::new();
        for k in keys {
            let (c, b, sem) = (c.clone(), b.to_string(), sem.clone());
            tasks.push(tokio::spawn(async move {
                let _p = sem.acquire().await.unwrap();
                let mut req = c.put_object().bucket(b).key(k).body(ByteStream::from_static(data));
                for (name, value) in meta {
                    req = req.metadata(*name, *value);
                }
                req.send().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// Whether `key` is in the bucket (HeadObject).
pub fn exists(c: &Client, b: &str, key: &str) -> bool {
    rt().block_on(c.head_object().bucket(b).key(key).send()).is_ok()
}

pub fn get(c: &Client, b: &str, key: &str) -> Vec<u8> {
    rt().block_on(async {
        c.get_object().bucket(b).key(key).send().await.unwrap().body.collect().await.unwrap().to_vec()
    })
}

// ----- counting, fault-injecting proxy -----

/// A fault: requests of operation `op` (and, if set, for `bucket`) are answered with `status`
/// and S3 error `code` instead of reaching the server.
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: &'static str,
    pub bucket: Option<String>,
    pub status: u16,
    pub code: &'static str,
}

/// What a [`Rule`] does to a request.
#[derive(Debug, Clone)]
pub enum Trouble {
    /// Answer this status and S3 error code instead of the server.
    Error { status: u16, code: &'static str },
    /// Never answer (the request is read, nothing comes back; the connection stays open).
    Stall,
    /// Pass the request on, but close the connection after this many bytes of the response.
    CutResponse(u64),
    /// Pass the request on with one byte of its body changed.
    FlipBodyByte,
}

/// Trouble for the next `times` requests of operation `op`.
#[derive(Debug, Clone)]
struct Rule {
    op: &'static str,
    trouble: Trouble,
    times: u32,
}

#[derive(Default)]
struct ProxyState {
    rules: Vec<Rule>,
    counts: HashMap<String, u64>,
    /// Requests by operation and path (`/bucket/key`, query left off).
    by_path: HashMap<(String, String), u64>,
    faults: Vec<Fault>,
    /// Requests of these operations wait this long before going on (a distant server).
    delays: HashMap<String, std::time::Duration>,
    /// Delayed requests of each operation waiting now, and the most there ever were at once.
    waiting: HashMap<String, u64>,
    peak: HashMap<String, u64>,
    /// The `x-amz-*` headers of each request (signing headers left out), by operation.
    amz: Vec<(String, HashMap<String, String>)>,
}

/// An HTTP/1.1 proxy in front of moto that names and counts each S3 request, and can answer
/// chosen requests with an error. Clients use path-style addressing.
#[derive(Clone)]
pub struct Proxy {
    pub port: u16,
    state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    pub fn start() -> Proxy {
        Proxy::start_to(moto_port())
    }

    /// A proxy in front of the server on `upstream` (s3s-fs, say).
    pub fn start_to(upstream: u16) -> Proxy {
        let listener = rt().block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let st = state.clone();
        rt().spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, upstream, st).await;
                });
            }
        });
        Proxy { port, state }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn count(&self, op: &str) -> u64 {
        self.state.lock().unwrap().counts.get(op).copied().unwrap_or(0)
    }

    pub fn counts(&self) -> HashMap<String, u64> {
        self.state.lock().unwrap().counts.clone()
    }

    /// The most requests of `op` any one path received since the last reset.
    pub fn most_per_path(&self, op: &str) -> u64 {
        let s = self.state.lock().unwrap();
        s.by_path.iter().filter(|((o, _), _)| o == op).map(|(_, n)| *n).max().unwrap_or(0)
    }

    pub fn reset(&self) {
        let mut s = self.state.lock().unwrap();
        s.counts.clear();
        s.by_path.clear();
        s.amz.clear();
    }

    pub fn fail(&self, f: Fault) {
        self.state.lock().unwrap().faults.push(f);
    }

    /// Requests of `op` wait `ms` milliseconds before reaching the server, so that requests
    /// sent together are seen together ([`Proxy::peak`]).
    pub fn delay(&self, op: &str, ms: u64) {
        self.state.lock().unwrap().delays.insert(op.to_string(), std::time::Duration::from_millis(ms));
    }

    /// The most delayed requests of `op` that were waiting at the same time.
    /// The `x-amz-*` headers (but the signature's) of every request of `op` since the last reset.
    pub fn amz_headers(&self, op: &str) -> Vec<HashMap<String, String>> {
        self.state.lock().unwrap().amz.iter().filter(|(o, _)| o == op).map(|(_, h)| h.clone()).collect()
    }

    pub fn peak(&self, op: &str) -> u64 {
        self.state.lock().unwrap().peak.get(op).copied().unwrap_or(0)
    }

    pub fn clear_faults(&self) {
        let mut s = self.state.lock().unwrap();
        s.faults.clear();
        s.rules.clear();
    }

    /// The next `times` requests of `op` meet `trouble` (see [`Trouble`]).
    pub fn trouble(&self, op: &'static str, trouble: Trouble, times: u32) {
        self.state.lock().unwrap().rules.push(Rule { op, trouble, times });
    }

    /// How many requests are still to meet trouble.
    pub fn trouble_left(&self) -> u32 {
        self.state.lock().unwrap().rules.iter().map(|r| r.times).sum()
    }
}

/// Names the S3 operation of a path-style request.
pub fn classify(method: &str, target: &str, headers: &HashMap<String, String>) -> (String, Option<String>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params: Vec<&str> = query.split('&').map(|p| p.split('=').next().unwrap_or("")).collect();
    let has = |p: &str| params.contains(&p);
    let mut segs = path.trim_start_matches('/').splitn(2, '/');
    let bucket = segs.next().filter(|b| !b.is_empty()).map(str::to_string);
    let key = segs.next().filter(|k| !k.is_empty());
    let copy = headers.contains_key("x-amz-copy-source");
    let op = match (method, bucket.is_some(), key.is_some()) {
        ("GET", false, _) => "ListBuckets",
        ("HEAD", true, false) => "HeadBucket",
        ("GET", true, false) if has("list-type") => "ListObjectsV2",
        ("GET", true, false) if has("location") => "GetBucketLocation",
        ("GET", true, false) if has("versions") => "ListObjectVersions",
        ("GET", true, false) => "ListObjects",
        ("PUT", true, false) => "CreateBucket",
        ("DELETE", true, false) => "DeleteBucket",
        ("POST", true, false) if has("delete") => "DeleteObjects",
        ("HEAD", true, true) => "HeadObject",
        ("GET", true, true) => "GetObject",
        ("PUT", true, true) if has("partNumber") && copy => "UploadPartCopy",
        ("PUT", true, true) if has("partNumber") => "UploadPart",
        ("PUT", true, true) if copy => "CopyObject",
        ("PUT", true, true) => "PutObject",
        ("POST", true, true) if has("uploads") => "CreateMultipartUpload",
        ("POST", true, true) if has("uploadId") => "CompleteMultipartUpload",
        ("POST", true, true) if has("restore") => "RestoreObject",
        ("DELETE", true, true) if has("uploadId") => "AbortMultipartUpload",
        ("DELETE", true, true) => "DeleteObject",
        _ => "Other",
    };
    (op.to_string(), bucket)
}

async fn serve(client: TcpStream, upstream: u16, st: Arc<Mutex<ProxyState>>) -> std::io::Result<()> {
    let server = TcpStream::connect(("127.0.0.1", upstream)).await?;
    let (cr, cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut cr = BufReader::new(cr);
    let cw = Arc::new(tokio::sync::Mutex::new(cw));
    // Responses flow back untouched (unless a cut is set: then only that many more bytes, and
    // the connection is closed); the SDK sends one request at a time per connection, so when
    // a fault is answered here every earlier response has already gone back.
    let cut: Arc<Mutex<Option<u64>>> = Arc::default();
    let (cw2, cut2) = (cw.clone(), cut.clone());
    let back = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let allowed = cut2.lock().unwrap().map_or(n as u64, |left| left.min(n as u64)) as usize;
            let mut w = cw2.lock().await;
            if w.write_all(&buf[..allowed]).await.is_err() {
                break;
            }
            let done = {
                let mut c = cut2.lock().unwrap();
                if let Some(left) = c.as_mut() {
                    *left -= allowed as u64;
                    *left == 0
                } else {
                    false
                }
            };
            if done {
                let _ = w.shutdown().await;
                break;
            }
        }
    });
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if cr.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let end = line == "\r\n";
            head.push(line);
            if end {
                break;
            }
        }
        let mut parts = head[0].split_whitespace();
        let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let headers: HashMap<String, String> = head[1..]
            .iter()
            .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
            .collect();
        let (op, bucket) = classify(&method, &target, &headers);
        let fault = {
            let mut s = st.lock().unwrap();
            *s.counts.entry(op.clone()).or_default() += 1;
            let path = target.split_once('?').map_or(target.as_str(), |(p, _)| p).to_string();
            *s.by_path.entry((op.clone(), path)).or_default() += 1;
            let amz = headers
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("x-amz-")
                        && !matches!(k.as_str(), "x-amz-date" | "x-amz-content-sha256" | "x-amz-security-token")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            s.amz.push((op.clone(), amz));
            s.faults.iter().find(|f| f.op == op && (f.bucket.is_none() || f.bucket == bucket)).cloned()
        };
        let trouble = {
            let mut s = st.lock().unwrap();
            let rule = s.rules.iter_mut().find(|r| r.op == op && r.times > 0);
            rule.map(|r| {
                r.times -= 1;
                r.trouble.clone()
            })
        };
        let fault = fault.or(match &trouble {
            Some(Trouble::Error { status, code }) => Some(Fault { op: "", bucket: None, status: *status, code }),
            _ => None,
        });
        let delay = {
            let mut s = st.lock().unwrap();
            let d = s.delays.get(&op).copied();
            if d.is_some() {
                let now = {
                    let w = s.waiting.entry(op.clone()).or_default();
                    *w += 1;
                    *w
                };
                let p = s.peak.entry(op.clone()).or_default();
                *p = (*p).max(now);
            }
            d
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
            *st.lock().unwrap().waiting.entry(op.clone()).or_default() -= 1;
        }
        let len: u64 = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let chunked = headers.get("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        if let Some(Trouble::Stall) = trouble {
            // Swallow what comes and answer nothing, until the client gives up.
            back.abort();
            let _ = tokio::io::copy(&mut cr, &mut tokio::io::sink()).await;
            return Ok(());
        }
        if let Some(Trouble::CutResponse(n)) = trouble {
            *cut.lock().unwrap() = Some(n);
        }
        if let Some(f) = fault {
            // Swallow the body, answer the error, close the connection.
            back.abort();
            if !chunked {
                tokio::io::copy(&mut (&mut cr).take(len), &mut tokio::io::sink()).await?;
            }
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>injected by test proxy</Message></Error>",
                f.code
            );
            let shown = if method == "HEAD" { "" } else { body.as_str() };
            let resp = format!(
                "HTTP/1.1 {} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                f.status,
                shown.len(),
                shown
            );
            let mut w = cw.lock().await;
            w.write_all(resp.as_bytes()).await?;
            w.shutdown().await?;
            return Ok(());
        }
        sw.write_all(head.concat().as_bytes()).await?;
        if chunked {
            // Forward chunks until the last (zero-length) chunk and its trailers.
            loop {
                let mut size_line = String::new();
                cr.read_line(&mut size_line).await?;
                sw.write_all(size_line.as_bytes()).await?;
                let size = u64::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
                if size == 0 {
                    loop {
                        let mut t = String::new();
                        cr.read_line(&mut t).await?;
                        sw.write_all(t.as_bytes()).await?;
                        if t == "\r\n" || t.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                tokio::io::copy(&mut (&mut cr).take(size + 2), &mut sw).await?;
            }
        } else if len > 0 && matches!(trouble, Some(Trouble::FlipBodyByte)) {
            let mut body = vec![0u8; len as usize];
            cr.read_exact(&mut body).await?;
            body[len as usize / 2] ^= 0x01;
            sw.write_all(&body).await?;
        } else if len > 0 {
            tokio::io::copy(&mut (&mut cr).take(len), &mut sw).await?;
        }
    }
}

// ----- mounts -----

/// A running s3drive mount; unmounted (and the daemon reaped) on drop.
pub struct Mount {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub log: PathBuf,
    /// The mount's own cache directory (used unless the test passed `--cache-dir`) and the
    /// home of its log; dropped after the mount (fields drop in order).
    pub cache: tempfile::TempDir,
}

impl Mount {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The daemon's peak resident set (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Unmounts and waits for the daemon to exit; returns its exit status.
    pub fn unmount(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        if is_mounted(self.dir.path()) {
            let _ = Command::new("fusermount3").arg("-u").arg(self.dir.path()).status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = Command::new("fusermount3").arg("-uz").arg(self.dir.path()).status();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.unmount();
    }
}

pub fn is_mounted(p: &Path) -> bool {
    let p = p.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/mounts").unwrap_or_default().lines().any(|l| l.split(' ').nth(1) == Some(p.as_str()))
}

pub fn s3drive() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3drive"));
    test_env(&mut cmd);
    cmd
}

/// The environment s3drive runs with in tests: test credentials, no profile, no CA bundle, and
/// HOME and XDG_CACHE_HOME in this process's scratch directory, so nothing reaches the user's
/// own `~/.cache/s3drive` or `~/.aws`.
pub fn test_env(cmd: &mut Command) -> &mut Command {
    cmd.env("HOME", scratch().join("home"))
        .env("XDG_CACHE_HOME", scratch().join("home/.cache"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("S3DRIVE_LOG", "warn,fuser=error,s3drive=debug")
}

/// Mounts through `proxy` with the given extra arguments (before the mount point), and waits
/// until the mount is live.
pub fn mount(proxy: &Proxy, args: &[&str]) -> Mount {
    mount_endpoint(&proxy.endpoint(), args)
}

/// Mounts through `proxy` with the given extra arguments and environment variables.
pub fn mount_env(proxy: &Proxy, args: &[&str], env: &[(&str, &str)]) -> Mount {
    mount_with(&proxy.endpoint(), args, env)
}

/// Mounts against `endpoint` (path-style) with the given extra arguments.
pub fn mount_endpoint(endpoint: &str, args: &[&str]) -> Mount {
    mount_with(endpoint, args, &[])
}

/// Every test mount has a cache directory of its own (a fresh one unless the test passes
/// `--cache-dir`): staging, journals, the metadata index and the data cache never mix between
/// tests, and a remount sees only what reached S3 unless a test shares a directory on purpose.
fn mount_with(endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Mount {
    let dir = scratch_dir("mnt");
    let cache = scratch_dir("cache");
    let log = cache.path().join("s3drive-test.log");
    let logf = std::fs::File::create(&log).unwrap();
    let mut cmd = s3drive();
    cmd.arg("--foreground").arg("--endpoint-url").arg(endpoint).arg("--force-path-style").args(args);
    if !args.iter().any(|a| *a == "--cache-dir" || a.starts_with("--cache-dir=")) {
        cmd.arg("--cache-dir").arg(cache.path().join("cache"));
    }
    cmd.envs(env.iter().copied()).arg(dir.path());
    let child = cmd.stdout(Stdio::null()).stderr(logf).spawn().unwrap();
    let mut m = Mount { dir, child: Some(child), log, cache };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !is_mounted(m.path()) {
        if let Ok(Some(st)) = m.child.as_mut().unwrap().try_wait() {
            panic!("s3drive exited with {st} before mounting:\n{}", m.log_text());
        }
        assert!(Instant::now() < deadline, "not mounted in time:\n{}", m.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    m
}

/// Runs a command, asserts success, returns stdout.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// close(2) of `f`, with its result (dropping a `File` ignores it: close is where an upload's
/// outcome is reported).
pub fn close(f: std::fs::File) -> std::io::Result<()> {
    use std::os::fd::IntoRawFd;
    let fd = f.into_raw_fd();
    // SAFETY: we own fd.
    if unsafe { libc::close(fd) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// The names in directory `dir`, sorted (what `ls -A` shows).
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

/// Every file under `p`, recursively (nothing if `p` cannot be read).
pub fn files_under(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// What `s3drive status` prints for the mount at `mp`.
pub fn status_of(mp: &Path) -> String {
    let out = s3drive().arg("status").arg(mp).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A small tmpfs mounted on `dir` (a full disk on demand), unmounted when dropped. Needs root,
/// which the suite has.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a {size} tmpfs needs root (the suite runs as root)");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Waits until the mount's daemon holds at most `most` inodes; the count it still has after
/// `within` is the error.
pub fn inodes_fall_to(m: &Mount, most: u64, within: Duration) -> Result<(), u64> {
    let deadline = Instant::now() + within;
    loop {
        let held = number_after(&status_of(m.path()), "inodes the kernel holds: ");
        if held <= most {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(held);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The number after `label` in `text` (0 if none), e.g. a figure of `s3drive status`.
pub fn number_after(text: &str, label: &str) -> u64 {
    text.split(label)
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `len` pseudo-random bytes, the same for the same seed.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
