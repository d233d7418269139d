//! `vault serve`: the web dashboard through the real binary and a plain HTTP client (a
//! `TcpStream`): authentication off loopback, paths that try to leave the snapshot, Range
//! requests and downloads against the source bytes, `.tar.zst` archives unpacked by GNU tar,
//! memory while a large file streams, and (in `browser`) the pages in headless Chromium.
//! Run with `cargo test --release -p vault-cli --test integration serve::`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::util::*;

mod browser;

const MIB: u64 = 1 << 20;

/// A running `vault serve`, stopped (by its pid) when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `vault serve --listen 127.0.0.1:0 ARGS` and reads the bound address from its
    /// first line.
    #[track_caller]
    pub fn start(env: &Env, args: &[&str]) -> Server {
        let mut cmd = env.cmd(["serve"]);
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args);
        Server::spawn(cmd)
    }

    /// Starts `cmd` (a `vault serve` command line) and reads the bound address from its first
    /// line.
    #[track_caller]
    pub fn spawn(mut cmd: Command) -> Server {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start vault serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.strip_suffix('/'))
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("unexpected first line from vault serve: {line:?}")
            })
            .parse()
            .unwrap();
        Server { child, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], b"")
    }

    /// `GET path` that must answer 200; its body as text.
    #[track_caller]
    pub fn text(&self, path: &str, headers: &[(&str, &str)]) -> String {
        let r = request(self.addr, "GET", path, headers, b"");
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.text()
    }

    #[track_caller]
    pub fn json(&self, path: &str, headers: &[(&str, &str)]) -> Value {
        serde_json::from_str(&self.text(path, headers))
            .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on its own connection; `path` is sent exactly as given (no
/// normalisation of `..` or percent-escapes, unlike most clients).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, |chunk, out| out.extend_from_slice(chunk))
}

/// Reads a response; `sink` gets the body's pieces (decoded from chunked encoding).
pub fn read_response(
    reader: &mut impl BufRead,
    mut sink: impl FnMut(&[u8], &mut Vec<u8>),
) -> Response {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap();
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let mut body = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    if response
        .header("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                break;
            }
            let mut left = size;
            while left > 0 {
                let n = left.min(buf.len());
                reader.read_exact(&mut buf[..n]).unwrap();
                sink(&buf[..n], &mut body);
                left -= n;
            }
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
    } else {
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            sink(&buf[..n], &mut body);
        }
    }
    response.body = body;
    response
}

/// The snapshot path of `path` (a source path): the absolute path, as `vault snapshot` stores it.
pub fn in_snapshot(path: &Path) -> String {
    fs::canonicalize(path).unwrap().display().to_string()
}

/// The URL tail of a snapshot path (`/a/b` -> `a/b`, each segment percent-encoded).
pub fn url_tail(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A source tree for downloads: a multi-chunk random file, small files, a name with a space.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("site/uploads")).unwrap();
    write_generated(
        &src.join("site/uploads/big.bin"),
        41,
        9 * MIB + 321,
        random_bytes,
    );
    write(&src.join("site/index.html"), b"<h1>hello</h1>\n");
    write(&src.join("site/uploads/a name.txt"), b"spaced\n");
    write(&src.join("readme"), b"read me\n");
    src
}

fn snapshot_id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let env = Env::init();
    let out = env.run(["serve", "--listen", "0.0.0.0:0"]);
    out.code(2).no_panic();
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("--token-file"), "{}", out.stderr);
    // A token too short to be one is refused too.
    let short = env.path("short-token");
    write(&short, b"abc\n");
    env.run([
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--token-file",
        short.to_str().unwrap(),
    ])
    .code(2)
    .no_panic();
}

#[test]
fn serve_requires_the_token_off_loopback() {
    let env = Env::init();
    let src = source(&env);
    env.snapshot(["--label", "app=site", src.to_str().unwrap()]);
    let token = "0123456789abcdef0123456789abcdef";
    let file = env.path("token");
    write(&file, format!("{token}\n").as_bytes());
    let server = Server::start(
        &env,
        &[
            "--listen",
            "0.0.0.0:0",
            "--token-file",
            file.to_str().unwrap(),
        ],
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", server.addr.port()).parse().unwrap();
    let get = |path: &str, headers: &[(&str, &str)]| request(addr, "GET", path, headers, b"");

    for path in ["/", "/api/overview", "/verify", "/metrics", "/apps/site"] {
        assert_eq!(get(path, &[]).status, 401, "{path} without a token");
        let wrong = get(
            path,
            &[("Authorization", "Bearer 0123456789abcdef0123456789abcdeX")],
        );
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        let cookie = get(path, &[("Cookie", "vault_token=wrong-wrong-wrong-wrong")]);
        assert_eq!(cookie.status, 401, "{path} with a wrong cookie");
    }
    let bearer = format!("Bearer {token}");
    let overview = get("/api/overview", &[("Authorization", &bearer)]);
    assert_eq!(overview.status, 200, "{}", overview.text());
    // Assets carry no data and are served to the login page.
    assert_eq!(get("/assets/style.css", &[]).status, 200);

    // The login form: a wrong token is refused, the right one sets a strict cookie.
    let wrong = request(
        addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"token=nope-nope-nope-nope",
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let login = request(
        addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("token={token}").as_bytes(),
    );
    assert_eq!(login.status, 303, "{}", login.text());
    let cookie = login.header("set-cookie").unwrap().to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    let page = get("/", &[("Cookie", pair)]);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("data-app=\"site\""), "{}", page.text());

    // A login body beyond the limit is refused before it is read whole.
    let huge = vec![b'a'; 64 << 10];
    let big = request(
        addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &huge,
    );
    assert_eq!(big.status, 413);
}

#[test]
fn serve_refuses_paths_outside_the_snapshot_and_every_write() {
    let env = Env::init();
    let src = source(&env);
    let id = snapshot_id(&env.snapshot(["--label", "app=site", src.to_str().unwrap()]));
    let server = Server::start(&env, &[]);
    let inside = url_tail(&in_snapshot(&src.join("readme")));
    // The file itself is reachable ...
    assert_eq!(
        server.get(&format!("/download/{id}/file/{inside}")).status,
        200
    );
    // ... but no way around the snapshot's trees is.
    let attempts = [
        format!("/download/{id}/file/{inside}/../../../../etc/passwd"),
        format!("/download/{id}/file/../../../etc/passwd"),
        format!("/download/{id}/file/%2e%2e/%2e%2e/etc/passwd"),
        format!("/download/{id}/file/etc%2Fpasswd"),
        format!("/download/{id}/file//etc/passwd"),
        format!("/download/{id}/file/etc/passwd%00"),
        format!("/download/{id}/file/%2Fetc%2Fpasswd"),
        format!("/download/{id}/tar/%2e%2e"),
        format!("/download/{id}/tar//etc"),
        format!("/api/snapshots/{id}/tree/.."),
        format!("/api/snapshots/{id}/tree/a/..%2f..%2fetc"),
        format!("/api/snapshots/{id}/tree//etc"),
        format!("/snapshots/{id}/tree/%2e%2e"),
        "/download/..%2f..%2fetc/file/passwd".to_string(),
        "/download/latest/file/etc/passwd".to_string(),
        "/api/snapshots/../../etc/passwd/tree".to_string(),
    ];
    for path in &attempts {
        let r = server.get(path);
        assert!(
            r.status == 400 || r.status == 404,
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            !r.text().contains("root:x:0:0"),
            "{path} leaked /etc/passwd"
        );
    }
    // A path that does not exist in the snapshot is a 404 (it is looked up in its trees only).
    assert_eq!(
        server
            .get(&format!("/download/{id}/file/etc/passwd"))
            .status,
        404
    );
    // Nothing but GET (and the login form) is routed: no method writes or deletes.
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = request(
            server.addr,
            method,
            &format!("/api/snapshots/{id}"),
            &[],
            b"",
        );
        assert_eq!(r.status, 405, "{method}");
        let r = request(
            server.addr,
            method,
            &format!("/download/{id}/tar"),
            &[],
            b"",
        );
        assert_eq!(r.status, 405, "{method}");
    }
}

#[test]
fn serve_downloads_files_with_ranges_and_directories_as_tar_zst() {
    let env = Env::init();
    let src = source(&env);
    let id = snapshot_id(&env.snapshot(["--label", "app=site", src.to_str().unwrap()]));
    let server = Server::start(&env, &[]);
    let big = src.join("site/uploads/big.bin");
    let bytes = fs::read(&big).unwrap();
    let size = bytes.len() as u64;
    let path = format!("/download/{id}/file/{}", url_tail(&in_snapshot(&big)));

    let whole = server.get(&path);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        whole.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert!(whole.body == bytes, "the download differs from the source");

    // Ranges inside one chunk, across chunk boundaries, open-ended and suffixes.
    for (range, first, last) in [
        ("bytes=0-0", 0, 0),
        ("bytes=0-99", 0, 99),
        (
            &*format!("bytes={}-{}", MIB - 10, 3 * MIB + 10),
            MIB - 10,
            3 * MIB + 10,
        ),
        (&*format!("bytes={}-", size - 1000), size - 1000, size - 1),
        ("bytes=-777", size - 777, size - 1),
        (&*format!("bytes=5-{}", size + 100), 5, size - 1),
    ] {
        let r = request(server.addr, "GET", &path, &[("Range", range)], b"");
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {first}-{last}/{size}").as_str()),
            "{range}"
        );
        assert!(
            r.body == bytes[first as usize..=last as usize],
            "{range}: {} bytes differ from the source's",
            r.body.len()
        );
    }
    for range in [
        format!("bytes={size}-"),
        format!("bytes={}-{}", size + 5, size + 9),
    ] {
        let r = request(server.addr, "GET", &path, &[("Range", &range)], b"");
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{size}").as_str())
        );
    }

    // The snapshot, and one directory, as .tar.zst unpacked by GNU tar equal the source.
    let Some(tar) = required(
        "GNU tar with zstd",
        "apt-get install tar zstd",
        Command::new("tar")
            .arg("--version")
            .output()
            .map_err(|e| e.to_string())
            .and_then(|o| {
                Command::new("zstd")
                    .arg("--version")
                    .output()
                    .map(|_| o)
                    .map_err(|e| format!("zstd: {e}"))
            }),
    ) else {
        return;
    };
    drop(tar);
    let archive = server.get(&format!("/download/{id}/tar"));
    assert_eq!(archive.status, 200);
    assert_eq!(&archive.body[..4], &[0x28, 0xb5, 0x2f, 0xfd], "not zstd");
    let out = unpack(&env, "whole", &archive.body);
    let unpacked = out.join(in_snapshot(&src).trim_start_matches('/'));
    diff_r(&src, &unpacked);

    let dir = in_snapshot(&src.join("site/uploads"));
    let archive = server.get(&format!("/download/{id}/tar/{}", url_tail(&dir)));
    assert_eq!(archive.status, 200);
    let out = unpack(&env, "dir", &archive.body);
    diff_r(&src.join("site/uploads"), &out);
}

/// Unpacks a `.tar.zst` with GNU tar into a new directory `name`.
pub fn unpack(env: &Env, name: &str, archive: &[u8]) -> PathBuf {
    let file = env.path(format!("{name}.tar.zst"));
    fs::write(&file, archive).unwrap();
    let out = env.path(name);
    fs::create_dir_all(&out).unwrap();
    let status = Command::new("tar")
        .arg("--zstd")
        .arg("-xf")
        .arg(&file)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "tar --zstd -x failed on {}",
        file.display()
    );
    out
}

/// `diff -r a b` must find no difference.
#[track_caller]
pub fn diff_r(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "diff -r {} {}:\n{}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `VmHWM` (peak resident memory) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn serve_streams_a_large_file_and_its_archive_in_bounded_memory() {
    const SIZE: u64 = 256 * MIB + 12345;
    /// Far below the file's size, far above what the server needs (a batch of chunks is 32
    /// MiB, the channel a few 64 KiB pieces).
    const LIMIT: u64 = 160 * MIB;
    let env = Env::init();
    let src = env.path("large");
    fs::create_dir_all(&src).unwrap();
    let file = src.join("disk.img");
    write_generated(&file, 77, SIZE, random_bytes);
    let expected = blake3::hash(&fs::read(&file).unwrap());
    let id = snapshot_id(&env.snapshot(["--label", "app=vm", src.to_str().unwrap()]));
    let server = Server::start(&env, &[]);
    let before = peak_rss(server.pid());

    let path = format!("/download/{id}/file/{}", url_tail(&in_snapshot(&file)));
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut hasher = blake3::Hasher::new();
    let mut received = 0u64;
    let mut reader = BufReader::new(stream);
    let r = read_response(&mut reader, |piece, _| {
        hasher.update(piece);
        received += piece.len() as u64;
    });
    assert_eq!(r.status, 200);
    assert_eq!(received, SIZE);
    assert_eq!(
        hasher.finalize(),
        expected,
        "the download differs from the source"
    );
    let after_file = peak_rss(server.pid());

    // The snapshot as .tar.zst: streamed too (counted, not kept).
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "GET /download/{id}/tar HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut archive = 0u64;
    let r = read_response(&mut BufReader::new(stream), |piece, _| {
        archive += piece.len() as u64
    });
    assert_eq!(r.status, 200);
    assert!(
        archive > SIZE,
        "archive of {archive} bytes for {SIZE} of random data"
    );
    let after_tar = peak_rss(server.pid());
    eprintln!(
        "vault serve peak RSS: {} MiB at start, {} MiB after the file, {} MiB after the archive ({} MiB file)",
        before / MIB,
        after_file / MIB,
        after_tar / MIB,
        SIZE / MIB
    );
    assert!(
        after_file < LIMIT,
        "peak RSS {after_file} while serving {SIZE} bytes"
    );
    assert!(
        after_tar < LIMIT,
        "peak RSS {after_tar} while archiving {SIZE} bytes"
    );
}

#[test]
fn serve_api_reports_apps_snapshots_diff_and_verify() {
    let env = Env::init();
    let src = source(&env);
    let a1 = snapshot_id(&env.snapshot([
        "--label",
        "app=site",
        "--label",
        "release=1.0",
        src.to_str().unwrap(),
    ]));
    write(&src.join("site/index.html"), b"<h1>hello again</h1>\n");
    write(&src.join("site/new.css"), b"body{}\n");
    let a2 = snapshot_id(&env.snapshot([
        "--label",
        "app=site",
        "--label",
        "release=1.1",
        src.to_str().unwrap(),
    ]));
    let other = env.path("other");
    fs::create_dir_all(&other).unwrap();
    write(&other.join("db.sql"), b"create table t;\n");
    let b1 = snapshot_id(&env.snapshot(["--label", "app=shop", other.to_str().unwrap()]));
    let server = Server::start(&env, &[]);

    let overview = server.json("/api/overview", &[]);
    let apps: Vec<&str> = overview["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app"].as_str().unwrap())
        .collect();
    assert_eq!(apps, ["shop", "site"]);
    assert_eq!(overview["snapshots"], 3);
    assert_eq!(overview["verify_clean"], true);
    for app in overview["apps"].as_array().unwrap() {
        assert_eq!(app["health"], "green", "{app:#}");
    }
    assert_eq!(overview["apps"][1]["newest_complete"]["id"], a2.as_str());

    let site = server.json("/api/apps/site", &[]);
    let listed: Vec<&str> = site["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [a2.as_str(), a1.as_str()], "newest first");
    assert_eq!(site["list"][0]["labels"]["release"], "1.1");
    assert_eq!(site["bytes_added"].as_array().unwrap().len(), 2);
    assert_eq!(server.get("/api/apps/nope").status, 404);

    let snapshot = server.json(&format!("/api/snapshots/{a2}"), &[]);
    assert_eq!(snapshot["previous"], a1.as_str());
    assert_eq!(snapshot["app"], "site");
    let short = &b1[..8];
    assert_eq!(
        server.json(&format!("/api/snapshots/{short}"), &[])["id"],
        b1.as_str()
    );

    let diff = server.json(&format!("/api/snapshots/{a2}/diff"), &[]);
    let changes: Vec<(String, String)> = diff["diff"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let site_dir = in_snapshot(&src.join("site"));
    assert!(
        changes.contains(&(format!("{site_dir}/new.css"), "added".into()))
            && changes.contains(&(format!("{site_dir}/index.html"), "modified".into())),
        "{changes:?}"
    );
    assert_eq!(
        server.json(&format!("/api/snapshots/{a1}/diff"), &[])["previous"],
        Value::Null
    );

    let tree = server.json(
        &format!("/api/snapshots/{a1}/tree/{}", url_tail(&site_dir)),
        &[],
    );
    let names: Vec<&str> = tree["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["index.html", "uploads"]);

    let verify = server.json("/api/verify", &[]);
    assert_eq!(verify["clean"], true);
    assert_eq!(verify["report"]["snapshots"], 3);
    // Without --config there is no recorded state to export.
    assert_eq!(server.get("/metrics").status, 404);
    assert_eq!(
        server
            .get(&format!("/api/snapshots/{}", "f".repeat(64)))
            .status,
        404
    );
}

#[test]
fn serve_with_a_config_unlocks_its_encrypted_repository_and_shows_runs_retention_metrics() {
    let env0 = Env::new();
    let password_file = env0.path("main.pass");
    fs::write(&password_file, "correct horse battery staple\n").unwrap();
    let env = env0.with_envs([("VAULT_PASSWORD_FILE", password_file.as_os_str())]);
    env.run(["init", "--kdf-memory", "8MiB", "--kdf-passes", "1"])
        .ok();
    let src = source(&env);
    let config = env.path("vault.toml");
    let state = env.path("state");
    fs::write(
        &config,
        format!(
            "[repositories.main]\nlocation = {:?}\npassword_file = {:?}\n\n[applications.site]\nrepository = \"main\"\npaths = [{:?}]\n\n[applications.site.retention]\nkeep_last = 2\n",
            env.repo, password_file, src
        ),
    )
    .unwrap();
    let run = |n: u8| {
        write(&src.join("readme"), format!("run {n}\n").as_bytes());
        let mut cmd = env.cmd(["run", "--json"]);
        cmd.arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(&state);
        run_cmd(cmd).ok();
    };
    for n in 0..3 {
        run(n);
    }
    // The runs applied keep_last = 2 (the first snapshot is forgotten); one more by hand
    // makes the policy forget another next time.
    env.snapshot(["--label", "app=site", src.to_str().unwrap()]);
    // No --repo and no VAULT_PASSWORD_FILE: the config's one repository, its own password.
    let mut cmd = env.cmd(["serve", "--listen", "127.0.0.1:0"]);
    cmd.env_remove("VAULT_REPO")
        .env_remove("VAULT_PASSWORD_FILE")
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(&state);
    let server = Server::spawn(cmd);

    let site = server.json("/api/apps/site", &[]);
    assert_eq!(site["health"], "green", "{site:#}");
    assert_eq!(site["last_run"]["result"], "ok", "{site:#}");
    assert_eq!(site["history"].as_array().unwrap().len(), 3);
    let list = site["list"].as_array().unwrap();
    assert_eq!(list.len(), 4, "forgotten snapshots are listed too");
    assert_eq!(list[3]["forgotten"], true, "{site:#}");
    assert_eq!(site["snapshots"], 3, "forgotten snapshots are not counted");
    // keep_last = 2: the two newest are kept, the third goes next.
    let decisions = site["retention"]["decisions"].as_array().unwrap();
    let keep = |id: &Value| {
        decisions
            .iter()
            .find(|d| d["id"] == *id)
            .unwrap_or_else(|| panic!("no decision for {id}"))["keep"]
            .as_bool()
            .unwrap()
    };
    assert!(keep(&list[0]["id"]) && keep(&list[1]["id"]) && !keep(&list[2]["id"]));
    assert_eq!(decisions.len(), 3, "no decision for a forgotten snapshot");
    let page = server.text("/apps/site", &[]);
    assert!(page.contains("forget next"), "{page}");

    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let success = scrape
        .samples
        .iter()
        .find(|s| s.metric == "vault_last_run_success" && s.labels.get("app") == Some("site"))
        .unwrap_or_else(|| panic!("no vault_last_run_success for site in\n{text}"));
    assert!(
        matches!(
            success.value,
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) if v == 1.0
        ),
        "{text}"
    );
}

/// The row of `app` in an overview's HTML: from its `<tr` to its `</tr>`.
fn overview_row<'a>(page: &'a str, app: &str) -> &'a str {
    let at = page
        .find(&format!(r#"data-app="{app}""#))
        .unwrap_or_else(|| panic!("no row for {app} in {page}"));
    let start = page[..at].rfind("<tr").unwrap();
    let end = start + page[start..].find("</tr>").unwrap();
    &page[start..end]
}

#[track_caller]
fn overview_app(overview: &Value, app: &str) -> Value {
    overview["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == app)
        .unwrap_or_else(|| panic!("no app {app} in {overview:#}"))
        .clone()
}

/// Real `vault restore-test` runs of a sqlite application (a `query` check that finds its
/// row, then one that finds none) show in the overview's column, its health (red, with the
/// failed check in words) and `/metrics`; a second application whose newest snapshot is older
/// than its `stale_after` is amber on the page and in the API.
#[test]
fn serve_shows_the_last_restore_test_and_a_stale_app_amber() {
    let Some(sqlite3) = crate::app_backup::sqlite3() else {
        return;
    };
    let env = Env::init();
    let db = env.path("shop/shop.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    crate::app_backup::sqlite(
        &sqlite3,
        &db,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT); INSERT INTO orders (item) VALUES ('lamp'), ('desk');",
    );
    let blog = env.path("blog");
    write(&blog.join("post.md"), b"# first post\n");
    let config = env.path("vault.toml");
    let state = env.path("state");
    let write_config = |query: &str| {
        fs::write(
            &config,
            format!(
                "[repositories.main]\nlocation = {:?}\nencryption = \"none\"\n\n[applications.shop]\nrepository = \"main\"\n\n[[applications.shop.databases]]\nkind = \"sqlite\"\npath = {db:?}\n\n[applications.shop.restore_test]\nscratch_dir = {:?}\nchecks = [{{ query = \"{query}\" }}]\n\n[applications.blog]\nrepository = \"main\"\npaths = [{blog:?}]\nstale_after = \"1s\"\n",
                env.repo,
                env.path("scratch"),
            ),
        )
        .unwrap()
    };
    let ops = |command: &str| {
        let mut cmd = env.cmd([command]);
        cmd.arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(&state);
        run_cmd(cmd)
    };
    write_config("SELECT id FROM orders WHERE item = 'desk'");
    ops("run").ok();
    let mut cmd = env.cmd(["serve", "--config"]);
    cmd.env_remove("VAULT_REPO")
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .args(["--listen", "127.0.0.1:0"]);
    let server = Server::spawn(cmd);

    // Before any restore test: "never", and null in the API.
    let overview = server.json("/api/overview", &[]);
    let shop = overview_app(&overview, "shop");
    assert_eq!(shop["health"], "green", "{overview:#}");
    assert_eq!(shop["last_restore_test"], Value::Null, "{overview:#}");
    let page = server.text("/", &[]);
    assert!(
        overview_row(&page, "shop").contains("<td>never</td>"),
        "{page}"
    );

    // The blog's newest snapshot is older than its stale_after (1s): amber, not red.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let blog_row = overview_app(&server.json("/api/overview", &[]), "blog");
    assert_eq!(blog_row["health"], "amber", "{blog_row:#}");
    let reasons = blog_row["reasons"].to_string();
    assert!(reasons.contains("(stale after 1s)"), "{reasons}");
    let page = server.text("/", &[]);
    let row = overview_row(&page, "blog");
    assert!(row.contains(r#"class="app amber""#), "{row}");
    assert!(row.contains("stale after 1s"), "{row}");

    // A passing restore test: green, "passed", with when and how long.
    ops("restore-test").ok();
    let shop = overview_app(&server.json("/api/overview", &[]), "shop");
    assert_eq!(shop["health"], "green", "{shop:#}");
    let test = &shop["last_restore_test"];
    assert_eq!(test["ok"], true, "{shop:#}");
    assert!(test["duration_secs"].as_f64().unwrap() > 0.0, "{shop:#}");
    let started = test["started"].as_str().unwrap();
    assert!(shop["reasons"][0]
        .as_str()
        .unwrap()
        .ends_with("; restore test passed"));
    let page = server.text("/", &[]);
    let row = overview_row(&page, "shop");
    assert!(row.contains(r#"class="app green""#), "{row}");
    assert!(
        row.contains(&format!(
            r#"<span class="restore-test">passed</span> {}"#,
            &started[..19].replacen('T', " ", 1)
        )),
        "{row}"
    );

    // A query that returns no rows: red, the failed check in words, "FAILED" in the column.
    write_config("SELECT id FROM orders WHERE item = 'sofa'");
    ops("restore-test").code(1).no_panic();
    let shop = overview_app(&server.json("/api/overview", &[]), "shop");
    assert_eq!(shop["health"], "red", "{shop:#}");
    assert_eq!(shop["last_restore_test"]["ok"], false, "{shop:#}");
    let reason = shop["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with(
            "restore test failed: check query \"SELECT id FROM orders WHERE item = 'sofa'\""
        ) && reason.contains("returned no rows"),
        "{shop:#}"
    );
    let detail = server.json("/api/apps/shop", &[]);
    assert_eq!(detail["health"], "red", "{detail:#}");
    let page = server.text("/", &[]);
    let row = overview_row(&page, "shop");
    assert!(row.contains(r#"class="app red""#), "{row}");
    assert!(
        row.contains(r#"<span class="restore-test problem">FAILED</span>"#),
        "{row}"
    );
    assert!(row.contains("restore test failed: check query"), "{row}");
    assert!(row.contains("returned no rows"), "{row}");

    // /metrics: the engine's textfile metrics, the restore test's among them.
    let text = server.text("/metrics", &[]);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let success = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "vault_last_restore_test_success" && s.labels.get("app") == Some("shop")
        })
        .unwrap_or_else(|| panic!("no vault_last_restore_test_success for shop in\n{text}"));
    assert!(
        matches!(
            success.value,
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) if v == 0.0
        ),
        "{text}"
    );
}
