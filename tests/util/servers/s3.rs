//! S3 over HTTP for the tests: signed requests with curl, and `s3s-fs` as a server.

use super::*;

// ------------------------------------------------------------------------------------------------
// S3 requests through curl (a client other than vault)
// ------------------------------------------------------------------------------------------------

/// An S3 endpoint and a key to sign requests to it with (`curl --aws-sigv4`, path-style).
pub struct S3Curl {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

/// `s` with every byte but the unreserved ones percent-encoded (as SigV4 wants a query value).
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The texts of every `<name>…</name>` in `xml`, in order, with the five XML entities undone.
fn xml_all(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(
            after[..j]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[j + close.len()..];
    }
    out
}

impl S3Curl {
    /// `curl --aws-sigv4 ... ARGS ENDPOINT/URL-PATH` (a signed request, failing on an HTTP
    /// error), when curl is installed. A query in `url_path` must be canonical already (keys
    /// sorted, values [`uri_encode`]d): curl signs it as written.
    pub fn run(
        &self,
        args: &[&str],
        url_path: &str,
        max_secs: u32,
    ) -> Option<std::process::Output> {
        let curl = find_in_path("curl")?;
        let out = Command::new(curl)
            .args(args)
            .arg("-sS")
            .arg("--max-time")
            .arg(max_secs.to_string())
            .arg("--fail-with-body")
            .arg("-H")
            .arg("x-amz-content-sha256: UNSIGNED-PAYLOAD")
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{}:s3", self.region))
            .arg("--user")
            .arg(format!("{}:{}", self.access_key, self.secret_key))
            .arg(format!("{}{url_path}", self.endpoint))
            .stdin(Stdio::null())
            .output()
            .expect("run curl");
        Some(out)
    }

    /// PUTs the file `body` as `/BUCKET/KEY` (`url_path`); `Ok(false)` without curl.
    pub fn put(&self, body: &Path, url_path: &str) -> Result<bool, String> {
        let Some(out) = self.run(&["-T", body.to_str().unwrap()], url_path, 60) else {
            return Ok(false);
        };
        if !out.status.success() {
            return Err(format!(
                "curl PUT {url_path}: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(true)
    }

    /// GETs `/BUCKET/KEY` into the file `into`: `Some(true)` with it written, `Some(false)`
    /// when there is no such object (404), `None` without curl; panics on any other answer.
    pub fn get(&self, url_path: &str, into: &Path) -> Option<bool> {
        let out = self.run(
            &["-o", into.to_str().unwrap(), "-w", "%{http_code}"],
            url_path,
            120,
        )?;
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match code.as_str() {
            "200" if out.status.success() => Some(true),
            "404" => Some(false),
            _ => panic!(
                "curl GET {url_path}: {} (HTTP {code}): {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&fs::read(into).unwrap_or_default())
            ),
        }
    }

    /// Every object of `bucket` whose key starts with `prefix`, as (key without the prefix,
    /// size), sorted (ListObjectsV2, every page); `None` without curl.
    pub fn list(&self, bucket: &str, prefix: &str) -> Option<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // Canonical order: continuation-token < list-type < max-keys < prefix.
            let mut query = String::new();
            if let Some(t) = &token {
                query.push_str(&format!("continuation-token={}&", uri_encode(t)));
            }
            query.push_str(&format!(
                "list-type=2&max-keys=1000&prefix={}",
                uri_encode(prefix)
            ));
            let url_path = format!("/{bucket}?{query}");
            let res = self.run(&[], &url_path, 30)?;
            let body = String::from_utf8_lossy(&res.stdout).into_owned();
            assert!(
                res.status.success() && body.contains("ListBucketResult"),
                "curl GET {url_path}: {}\n{body}{}",
                res.status,
                String::from_utf8_lossy(&res.stderr)
            );
            for contents in xml_all(&body, "Contents") {
                let key = xml_all(&contents, "Key").pop().expect("a Key in Contents");
                let size = xml_all(&contents, "Size")
                    .pop()
                    .and_then(|s| s.parse::<u64>().ok())
                    .expect("a Size in Contents");
                let name = key.strip_prefix(prefix).unwrap_or(&key).to_string();
                out.push((name, size));
            }
            token = xml_all(&body, "NextContinuationToken").pop();
            let truncated = xml_all(&body, "IsTruncated").pop().as_deref() == Some("true");
            if !truncated || token.is_none() {
                break;
            }
        }
        out.sort();
        Some(out)
    }

    /// Whether ListBuckets succeeds; `None` without curl.
    pub fn lists_buckets(&self) -> Option<bool> {
        let out = self.run(&[], "/", 5)?;
        Some(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains("ListAllMyBucketsResult"),
        )
    }
}

// ------------------------------------------------------------------------------------------------
// S3: s3s-fs
// ------------------------------------------------------------------------------------------------

/// Where `cargo install` put s3s-fs on the development machine this was written on.
const S3S_FS_FALLBACK: &str = "/work/bench/tools/s3s/bin/s3s-fs";

pub const S3_ACCESS_KEY: &str = "vault-test-access-key";
pub const S3_SECRET_KEY: &str = "vault-test-secret-key-0123456789";
pub const S3_REGION: &str = "us-east-1";

fn find_s3s_fs() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("VAULT_S3S_FS") {
        let p = PathBuf::from(p);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(format!("VAULT_S3S_FS={} is not an executable", p.display()))
        };
    }
    if let Some(p) = find_in_path("s3s-fs") {
        return Ok(p);
    }
    let fallback = Path::new(S3S_FS_FALLBACK);
    if is_executable(fallback) {
        return Ok(fallback.to_path_buf());
    }
    Err("s3s-fs is neither in VAULT_S3S_FS nor on PATH".into())
}

/// An S3 server (`s3s-fs`) on 127.0.0.1 serving the directory [`S3Server::root`], in which
/// each bucket is a directory and each object a file (`<root>/<bucket>/<key>`).
pub struct S3Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    /// The bucket [`Server::location`] uses; created at start.
    pub bucket: String,
}

impl S3Server {
    /// Starts a server with one empty bucket, `vault-test`. `None` when s3s-fs is missing
    /// outside CI.
    pub fn start() -> Option<S3Server> {
        let bin = required(
            "s3s-fs (an S3 server over a directory, from VAULT_S3S_FS or PATH)",
            "cargo install s3s-fs@0.14.1 --features binary --locked",
            find_s3s_fs(),
        )?;
        let dir = tempfile::Builder::new()
            .prefix("vault-s3-")
            .tempdir()
            .expect("temp dir");
        let mut server = S3Server {
            bin,
            port: 0,
            child: None,
            bucket: "vault-test".into(),
            dir,
        };
        fs::create_dir_all(server.root()).unwrap();
        server.create_bucket("vault-test");
        // Another process may take the port between free_port and the bind: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return Some(server),
                Err(e) => last = e,
            }
        }
        panic!("s3s-fs did not start: {last}");
    }

    /// The directory the server serves (one subdirectory per bucket).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates another (empty) bucket.
    pub fn create_bucket(&self, name: &str) {
        fs::create_dir_all(self.root().join(name)).unwrap();
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("s3s-fs.log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--access-key")
            .arg(S3_ACCESS_KEY)
            .arg("--secret-key")
            .arg(S3_SECRET_KEY)
            .arg(self.root())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let cmdline = cmdline_of(&cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {cmdline}: {e}"))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!(
                    "{cmdline} exited ({status}):\n{}",
                    read_log(&self.log())
                ));
            }
            if accepts_connections(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                kill_tree(&mut child);
                return Err(format!(
                    "{cmdline} did not accept connections within {START_TIMEOUT:?}:\n{}",
                    read_log(&self.log())
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A curl client for the server, with the test key.
    pub fn s3curl(&self) -> S3Curl {
        S3Curl {
            endpoint: self.endpoint(),
            region: S3_REGION.into(),
            access_key: S3_ACCESS_KEY.into(),
            secret_key: S3_SECRET_KEY.into(),
        }
    }

    /// `curl --aws-sigv4 ... ARGS ENDPOINT/URL-PATH` (a signed request), when curl is
    /// installed.
    pub fn curl(&self, args: &[&str], url_path: &str) -> Option<std::process::Output> {
        self.s3curl().run(args, url_path, 5)
    }
}

impl Server for S3Server {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn location(&self, path: &str) -> String {
        format!("s3:{}/{}/{path}", self.endpoint(), self.bucket)
    }

    fn disk_path(&self, path: &str) -> Option<PathBuf> {
        Some(self.root().join(&self.bucket).join(path))
    }

    fn envs(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), S3_ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), S3_SECRET_KEY.into()),
            ("AWS_REGION".into(), S3_REGION.into()),
        ]
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(&mut child);
        }
    }

    fn restart(&mut self) {
        self.kill();
        // The port was ours a moment ago; a client's connection in TIME_WAIT does not stop
        // the bind (SO_REUSEADDR), but retry for a while all the same.
        let started = Instant::now();
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if started.elapsed() > START_TIMEOUT => {
                    panic!("s3s-fs did not restart on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn client_put(&self, path: &str, data: &[u8]) -> Result<bool, String> {
        let file = self.dir.path().join("put-body");
        write(&file, data);
        self.s3curl()
            .put(&file, &format!("/{}/{path}", self.bucket))
    }

    fn hold_connection(&self) -> Child {
        hold_tcp(self.port, "a TCP client of s3s-fs")
    }

    fn is_up(&self) -> bool {
        self.s3curl()
            .lists_buckets()
            .unwrap_or_else(|| accepts_connections(self.port))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}
