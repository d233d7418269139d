//! Hooks and notifications of `vault run` (a submodule of `ops`): a webhook and a
//! healthchecks-style ping URL received by an HTTP server on loopback, the notify command, and
//! `before` / `after` / `on_failure` hooks, for a good run, a failed one and a failed `before`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;

/// One request the test server received.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} {}: body is not JSON: {e}", self.method, self.path))
    }
}

/// An HTTP/1.1 server on 127.0.0.1 that records every request and answers 200, or 500 for a
/// path under `/broken`.
struct Server {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let path = parts.next().unwrap_or("").to_string();
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let status = if path.starts_with("/broken") {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                recorded
                    .lock()
                    .unwrap()
                    .push(Request { method, path, body });
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"
                );
            }
        });
        Server { url, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

/// An application with an asset tree and, when `dump` is given, a command database.
fn application(ops: &Ops, dump: Option<&str>, extra: &str) -> String {
    let assets_dir = ops.env.path("assets");
    if !assets_dir.exists() {
        assets(&assets_dir, 5);
    }
    let mut text =
        format!("[applications.cms]\nrepository = \"main\"\npaths = [{assets_dir:?}]\n{extra}\n");
    if let Some(dump) = dump {
        text.push_str(&format!(
            "\n[[applications.cms.databases]]\nkind = \"command\"\nname = \"db\"\ndump_command = {dump:?}\n"
        ));
    }
    text
}

#[test]
fn a_good_run_posts_its_report_pings_start_then_success_and_runs_its_hooks() {
    let ops = Ops::new();
    let server = Server::start();
    let seen = ops.env.path("hooks.log");
    let notified = ops.env.path("notified.json");
    let log = |hook: &str| {
        format!(
            "echo {hook} $VAULT_APP $VAULT_HOOK result=$VAULT_RESULT report=$VAULT_REPORT >> {}",
            seen.display()
        )
    };
    ops.write_config(&application(
        &ops,
        Some("echo 'CREATE TABLE t (x int);'"),
        &format!(
            "hooks = {{ before = {:?}, after = {:?}, on_failure = {:?} }}\nnotify = {{ webhook = \"{}/hook\", ping = \"{}/ping/abc-123\", command = \"cat > {}\" }}",
            log("before"),
            log("after"),
            log("on_failure"),
            server.url,
            server.url,
            notified.display()
        ),
    ));
    let out = ops.ops(&["run"], &["--json"]);
    out.ok();
    let run = out.json();
    let cms = app(&run, "cms");
    assert_eq!(cms["result"], "ok", "{cms:#}");
    assert_eq!(step(cms, "before")["status"], "ok");
    assert_eq!(step(cms, "after")["status"], "ok");
    let kinds: Vec<_> = cms["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["kind"].as_str().unwrap(), n["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("ping", true),
            ("ping", true),
            ("webhook", true),
            ("command", true)
        ],
        "{cms:#}"
    );
    // The ping URL's secret path is not in the report.
    assert!(!cms.to_string().contains("abc-123"), "{cms:#}");

    assert_eq!(
        server.paths(),
        [
            "GET /ping/abc-123/start",
            "POST /ping/abc-123",
            "POST /hook"
        ]
    );
    let webhook = server.requests()[2].json();
    assert_eq!(webhook["app"], "cms");
    assert_eq!(webhook["result"], "ok");
    assert_eq!(step(&webhook, "snapshot")["status"], "ok");
    assert_eq!(server.requests()[1].json()["result"], "ok");
    let from_command: Value = serde_json::from_slice(&fs::read(&notified).unwrap()).unwrap();
    assert_eq!(from_command["app"], "cms");
    assert_eq!(from_command["result"], "ok");

    let log = fs::read_to_string(&seen).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert_eq!(lines[0], "before cms before result= report=");
    assert!(
        lines[1].starts_with("after cms after result=ok report="),
        "{log}"
    );
    let report_file = lines[1].split("report=").nth(1).unwrap();
    let report: Value = serde_json::from_slice(&fs::read(report_file).unwrap()).unwrap();
    assert_eq!(report["app"], "cms");
}

#[test]
fn a_failed_job_pings_fail_runs_on_failure_and_leaves_earlier_snapshots() {
    let ops = Ops::new();
    let server = Server::start();
    let seen = ops.env.path("failure.log");
    let extra = format!(
        "hooks = {{ on_failure = \"echo $VAULT_RESULT $VAULT_FAILED_STEP >> {}\" }}\nnotify = {{ webhook = \"{}/hook\", ping = \"{}/ping\" }}",
        seen.display(),
        server.url,
        server.url
    );
    ops.write_config(&application(&ops, Some("echo good dump"), &extra));
    ops.ops(&["run"], &[]).ok();
    let before = ops.env.snapshot_ids();
    assert_eq!(before.len(), 1);

    ops.write_config(&application(&ops, Some("echo partial; exit 1"), &extra));
    let out = ops.ops(&["run"], &["--json"]);
    out.code(1);
    let cms = app(&out.json(), "cms").clone();
    assert_eq!(cms["result"], "failed");
    assert_eq!(cms["failed_step"], "snapshot");
    assert_eq!(step(&cms, "on_failure")["status"], "ok", "{cms:#}");
    assert_eq!(fs::read_to_string(&seen).unwrap(), "failed snapshot\n");
    assert_eq!(
        ops.env.snapshot_ids(),
        before,
        "the failed run changed the snapshots"
    );

    let paths = server.paths();
    assert_eq!(
        paths[paths.len() - 3..],
        ["GET /ping/start", "POST /ping/fail", "POST /hook"]
    );
    let webhook = server.requests().last().unwrap().json();
    assert_eq!(webhook["app"], "cms");
    assert_eq!(webhook["result"], "failed");
    assert_eq!(webhook["failed_step"], "snapshot");
    let status = ops.ops(&["status"], &["--json"]);
    status.code(3);
    assert_eq!(app(&status.json(), "cms")["health"], "failed");
}

#[test]
fn a_failed_before_hook_writes_nothing_and_is_recorded() {
    let ops = Ops::new();
    let server = Server::start();
    let seen = ops.env.path("failure.log");
    ops.write_config(&application(
        &ops,
        None,
        &format!(
            "hooks = {{ before = \"exit 7\", after = \"touch {0}.after\", on_failure = \"echo $VAULT_FAILED_STEP > {0}\" }}\nnotify = {{ ping = \"{1}/ping\" }}",
            seen.display(),
            server.url
        ),
    ));
    let out = ops.ops(&["run"], &["--json"]);
    out.code(1);
    let cms = app(&out.json(), "cms").clone();
    assert_eq!(cms["failed_step"], "before", "{cms:#}");
    assert!(
        step(&cms, "before")["message"]
            .as_str()
            .unwrap()
            .contains("exit status: 7"),
        "{cms:#}"
    );
    assert_eq!(step(&cms, "snapshot")["status"], "skipped");
    assert!(ops.env.snapshot_ids().is_empty());
    assert_eq!(fs::read_to_string(&seen).unwrap(), "before\n");
    assert!(
        !ops.env.path("failure.log.after").exists(),
        "after ran without before"
    );
    assert_eq!(server.paths(), ["GET /ping/start", "POST /ping/fail"]);
    let status = ops.ops(&["status"], &["--json"]);
    let status = status.json();
    assert_eq!(app(&status, "cms")["last_run"]["failed_step"], "before");
}

#[test]
fn a_notification_that_fails_is_reported_but_the_backup_stands() {
    let ops = Ops::new();
    let server = Server::start();
    // A defaults table for every application: the webhook answers 500, the command fails.
    ops.write_config(&format!(
        "[notify]\nwebhook = \"{}/broken\"\ncommand = \"exit 1\"\ntimeout = \"10s\"\n\n{}",
        server.url,
        application(&ops, None, "")
    ));
    let out = ops.ops(&["run"], &["--json"]);
    out.code(1);
    let cms = app(&out.json(), "cms").clone();
    assert_eq!(cms["result"], "ok", "{cms:#}");
    let failed: Vec<_> = cms["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["ok"] == false)
        .map(|n| n["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(failed, ["webhook", "command"], "{cms:#}");
    assert_eq!(server.paths(), ["POST /broken"]);
    assert_eq!(ops.env.snapshot_ids().len(), 1);
    let out = ops.ops(&["run"], &[]);
    out.code(1);
    assert!(
        out.stdout_str().contains("notify-webhook"),
        "{}",
        out.stdout_str()
    );
    assert!(
        out.stdout_str().contains("HTTP 500"),
        "{}",
        out.stdout_str()
    );
    let status = ops.ops(&["status"], &["--json"]);
    status.ok();
}

#[test]
fn notification_urls_and_timeouts_are_checked_with_the_config() {
    let ops = Ops::new();
    ops.write_config(&application(
        &ops,
        None,
        "notify = { webhook = \"ftp://example.com/x\" }",
    ));
    let out = ops.ops(&["config", "check"], &[]);
    out.code(2);
    assert!(
        out.stderr.contains("not an http:// or https:// URL"),
        "{}",
        out.stderr
    );
    ops.write_config(&application(&ops, None, "hooks = { timeout = \"soon\" }"));
    let out = ops.ops(&["config", "check"], &[]);
    out.code(2);
    assert!(
        out.stderr.contains("\"soon\" is not a duration"),
        "{}",
        out.stderr
    );
    ops.write_config(&application(&ops, None, "hooks = { befor = \"true\" }"));
    let out = ops.ops(&["config", "check"], &[]);
    out.code(2);
    assert!(out.stderr.contains("befor"), "{}", out.stderr);
}
