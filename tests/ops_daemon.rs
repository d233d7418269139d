//! `vault daemon` (a submodule of `ops`): a schedule every two seconds (croner's seconds
//! field), driven for a few seconds, then SIGTERM. No timing is asserted beyond "it ran at
//! least twice within a generous wait".

use std::io::Read as _;

use super::*;

#[test]
fn the_daemon_runs_a_seconds_schedule_repeatedly_and_stops_cleanly_on_sigterm() {
    let ops = Ops::new();
    ops.write_config(
        "[applications.ticker]\nrepository = \"main\"\nschedule = \"*/2 * * * * *\"\nretention = { keep_last = 2 }\n\n[[applications.ticker.databases]]\nkind = \"command\"\nname = \"db\"\ndump_command = \"date +%s%N\"\n\n[applications.manual]\nrepository = \"main\"\n\n[[applications.manual.databases]]\nkind = \"command\"\nname = \"db\"\ndump_command = \"echo dump\"\n",
    );
    let mut cmd = ops.env.cmd(["daemon", "--config"]);
    cmd.arg(&ops.config).arg("--state-dir").arg(&ops.state);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut daemon = cmd.spawn().unwrap();
    let waited = Instant::now();
    let runs = loop {
        let out = ops.ops(&["status"], &["ticker", "--json"]);
        let status = out.json();
        let runs = app(&status, "ticker")["runs"].as_u64().unwrap_or(0);
        if runs >= 2 || waited.elapsed() > Duration::from_secs(90) {
            break runs;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    sigterm(daemon.id());
    let mut stdout = String::new();
    daemon
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = daemon.wait().unwrap();
    assert!(runs >= 2, "only {runs} run(s) in 90 s\n{stdout}\n{stderr}");
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("vault daemon: scheduling ticker (next "),
        "{stdout}"
    );
    assert!(stdout.contains(" ticker: ok in "), "{stdout}");
    assert!(
        stdout
            .trim_end()
            .ends_with("vault daemon: stopping (signal received)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("manual"),
        "an application without a schedule ran: {stdout}"
    );
    let status = ops.ops(&["status"], &["ticker", "--json"]).json();
    let ticker = app(&status, "ticker");
    assert_eq!(ticker["last_run"]["result"], "ok", "{ticker:#}");
    assert!(!ops.env.snapshot_ids().is_empty());
}

#[test]
fn the_daemon_refuses_a_config_that_schedules_nothing() {
    let ops = Ops::new();
    ops.write_config(
        "[applications.manual]\nrepository = \"main\"\n\n[[applications.manual.databases]]\nkind = \"command\"\nname = \"db\"\ndump_command = \"echo dump\"\n",
    );
    let out = ops.ops(&["daemon"], &[]);
    out.code(2);
    assert!(out.stderr.contains("has a schedule"), "{}", out.stderr);
}

fn sigterm(pid: u32) {
    // SAFETY: kill(2) on the pid of a child we spawned and have not waited for.
    let rc = unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}
