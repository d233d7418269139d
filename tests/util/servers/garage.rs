//! A single-node Garage (opt-in: `VAULT_GARAGE`).

use super::*;

// ------------------------------------------------------------------------------------------------
// Garage: a real distributed object store, single node (opt-in)
// ------------------------------------------------------------------------------------------------

/// The variable naming the Garage binary; without it the Garage tests skip, under CI too.
pub const GARAGE_ENV: &str = "VAULT_GARAGE";
/// The region Garage is configured with (and that vault signs for, `AWS_REGION`).
pub const GARAGE_REGION: &str = "garage";

/// A single-node Garage (`garage server`) on two free 127.0.0.1 ports (RPC and the S3 API),
/// with its metadata (LMDB) and data blocks in a temp dir, a layout of one node in zone `dc1`,
/// one key and one bucket, both `vault-test`, the key owning the bucket. Garage keeps objects
/// as chunked, compressed blocks plus a metadata database, not as files, so
/// [`Server::disk_path`] is `None` and objects are listed and read through the S3 API (curl).
///
/// Opt-in: the binary comes from `VAULT_GARAGE` (`cargo install garage@2.5.0 --locked`);
/// without it [`GarageServer::start`] prints a skip and returns `None`, whether or not under CI.
pub struct GarageServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    rpc_port: u16,
    s3_port: u16,
    child: Option<Child>,
    key_id: String,
    secret: String,
    /// The bucket [`Server::location`] uses; created at start.
    pub bucket: String,
}

impl GarageServer {
    /// Starts a node, lays it out and creates the key and the bucket. `None` (and a printed
    /// skip) when `VAULT_GARAGE` is not set.
    pub fn start() -> Option<GarageServer> {
        let bin = match std::env::var_os(GARAGE_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                eprintln!("SKIPPED (opt-in: set {GARAGE_ENV}=/path/to/garage)");
                return None;
            }
        };
        assert!(
            is_executable(&bin),
            "{GARAGE_ENV}={} is not an executable",
            bin.display()
        );
        assert!(
            find_in_path("curl").is_some(),
            "the Garage tests need curl (to list and read objects through the S3 API)"
        );
        let dir = tempfile::Builder::new()
            .prefix("vault-garage-")
            .tempdir()
            .expect("temp dir");
        let mut server = GarageServer {
            dir,
            bin,
            rpc_port: 0,
            s3_port: 0,
            child: None,
            key_id: String::new(),
            secret: String::new(),
            bucket: "vault-test".into(),
        };
        let secret = random_hex(32);
        let mut last = String::new();
        for _ in 0..5 {
            server.rpc_port = free_port();
            server.s3_port = free_port();
            if server.rpc_port == server.s3_port {
                continue;
            }
            server.write_config(&secret);
            match server.spawn() {
                Ok(()) => {
                    last.clear();
                    break;
                }
                Err(e) => last = e,
            }
        }
        if server.child.is_none() {
            panic!("garage did not start: {last}");
        }
        server.set_up();
        Some(server)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> PathBuf {
        self.path("garage.toml")
    }

    fn log(&self) -> PathBuf {
        self.path("garage.log")
    }

    /// `http://127.0.0.1:PORT` (the S3 API).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// A curl client for the S3 API, with the test key.
    pub fn s3curl(&self) -> S3Curl {
        S3Curl {
            endpoint: self.endpoint(),
            region: GARAGE_REGION.into(),
            access_key: self.key_id.clone(),
            secret_key: self.secret.clone(),
        }
    }

    fn write_config(&self, rpc_secret: &str) {
        let d = self.dir.path().display();
        write(
            &self.config(),
            format!(
                "metadata_dir = \"{d}/meta\"\n\
                 data_dir = \"{d}/data\"\n\
                 db_engine = \"lmdb\"\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{rpc_secret}\"\n\
                 \n\
                 [s3_api]\n\
                 s3_region = \"{GARAGE_REGION}\"\n\
                 api_bind_addr = \"127.0.0.1:{s3}\"\n",
                rpc = self.rpc_port,
                s3 = self.s3_port,
            )
            .as_bytes(),
        );
    }

    /// `garage -c CONFIG ARGS`: its stdout on success, else an error with both outputs.
    pub fn garage(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(self.config())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "garage {}: {}\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `garage ARGS`, panicking (with the server's log) when it fails.
    #[track_caller]
    fn garage_ok(&self, args: &[&str]) -> String {
        self.garage(args)
            .unwrap_or_else(|e| panic!("{e}\n--- garage server log ---\n{}", read_log(&self.log())))
    }

    /// Starts `garage server` and waits for both ports.
    fn spawn(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c")
            .arg(self.config())
            .arg("server")
            .env("RUST_LOG", "garage=warn")
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
            if accepts_connections(self.rpc_port) && accepts_connections(self.s3_port) {
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

    /// The first boot's set-up: the node's id from `garage status`, a layout of that node
    /// alone, the key and the bucket; returns once the S3 API serves the key.
    fn set_up(&mut self) {
        let started = Instant::now();
        let status = loop {
            match self.garage(&["status"]) {
                Ok(out) => break out,
                Err(e) if started.elapsed() > START_TIMEOUT => {
                    panic!("{e}\n--- garage server log ---\n{}", read_log(&self.log()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        // ==== HEALTHY NODES ====
        // ID                Hostname  Address          Tags  Zone  Capacity          ...
        // 0123456789abcdef  host      127.0.0.1:PORT               NO ROLE ASSIGNED  ...
        let node = status
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .find(|w| w.len() >= 16 && w.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_else(|| panic!("no node id in `garage status`:\n{status}"))
            .to_string();
        self.garage_ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        self.garage_ok(&["layout", "apply", "--version", "1"]);
        let key = self.garage_ok(&["key", "create", "vault-test"]);
        // ==== ACCESS KEY INFORMATION ====
        // Key ID:      GK...
        // Secret key:  ...
        let field = |label: &str| {
            key.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(label))
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| panic!("no {label:?} in `garage key create`:\n{key}"))
        };
        self.key_id = field("Key ID");
        self.secret = field("Secret key");
        let bucket = self.bucket.clone();
        self.garage_ok(&["bucket", "create", &bucket]);
        self.garage_ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &bucket,
            "--key",
            "vault-test",
        ]);
        self.wait_for_s3("start");
    }

    /// Waits until the bucket can be listed with the key (the layout and the key and bucket
    /// tables are ready), or panics after [`START_TIMEOUT`] with the last answer.
    fn wait_for_s3(&self, what: &str) {
        let started = Instant::now();
        let url_path = format!("/{}?list-type=2&max-keys=1", self.bucket);
        loop {
            let out = self.s3curl().run(&[], &url_path, 5).expect("curl");
            if out.status.success() {
                return;
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "garage's S3 API does not serve the bucket {START_TIMEOUT:?} after {what}: \
                     {}\n{}{}\n--- garage server log ---\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    read_log(&self.log())
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `n` random bytes from the kernel, in hex.
fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Server for GarageServer {
    fn kind(&self) -> &'static str {
        "garage"
    }

    fn location(&self, path: &str) -> String {
        format!("s3:{}/{}/{path}", self.endpoint(), self.bucket)
    }

    fn disk_path(&self, _path: &str) -> Option<PathBuf> {
        None
    }

    fn list_objects(&self, path: &str) -> Vec<(String, u64)> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.s3curl()
            .list(&self.bucket, &prefix)
            .expect("curl is needed to list objects on Garage")
    }

    fn read_object(&self, path: &str) -> Option<Vec<u8>> {
        let into = self.path(&format!("get-{}", super::history::rand_suffix()));
        let found = self
            .s3curl()
            .get(&format!("/{}/{path}", self.bucket), &into)
            .expect("curl is needed to read objects on Garage");
        let data = found.then(|| fs::read(&into).unwrap());
        let _ = fs::remove_file(&into);
        data
    }

    fn envs(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret.clone()),
            ("AWS_REGION".into(), GARAGE_REGION.into()),
        ]
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(&mut child);
        }
    }

    fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        loop {
            match self.spawn() {
                Ok(()) => break,
                Err(e) if started.elapsed() > START_TIMEOUT => {
                    panic!("garage did not restart on port {}: {e}", self.s3_port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        self.wait_for_s3("a restart");
    }

    fn is_up(&self) -> bool {
        self.child.is_some()
            && self
                .s3curl()
                .lists_buckets()
                .unwrap_or_else(|| accepts_connections(self.s3_port))
    }

    fn client_put(&self, path: &str, data: &[u8]) -> Result<bool, String> {
        let file = self.path("put-body");
        write(&file, data);
        self.s3curl()
            .put(&file, &format!("/{}/{path}", self.bucket))
    }

    fn hold_connection(&self) -> Child {
        hold_tcp(self.s3_port, "a TCP client of garage")
    }
}

impl Drop for GarageServer {
    fn drop(&mut self) {
        self.kill();
    }
}
