//! `vault schedule` (a submodule of `ops`): systemd units checked by `systemd-analyze verify`,
//! crontab lines through a stand-in `crontab` program, and `remove` deleting exactly what
//! `install` wrote. Everything goes to temp directories; the real system is never touched.
//!
//! systemd-analyze comes from Debian's `systemd` package, which `.ci/run` installs; under CI a
//! missing one fails the test, elsewhere it is skipped.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::*;

/// Three applications: two scheduled (one every two seconds), one not.
fn scheduled(ops: &Ops) {
    ops.write_config(
        "[applications.cms]\nrepository = \"main\"\nschedule = \"30 2 * * 1-5\"\n\n[[applications.cms.databases]]\nkind = \"command\"\nname = \"db\"\ndump_command = \"echo dump\"\n\n[applications.wiki]\nrepository = \"main\"\nschedule = \"0 */4 * * *\"\n\n[[applications.wiki.databases]]\nkind = \"command\"\nname = \"db\"\ndump_command = \"echo dump\"\n\n[applications.manual]\nrepository = \"main\"\n\n[[applications.manual.databases]]\nkind = \"command\"\nname = \"db\"\ndump_command = \"echo dump\"\n",
    );
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn systemd_units_pass_systemd_analyze_and_remove_deletes_exactly_them() {
    let ops = Ops::new();
    let Some(analyze) = required(
        "systemd-analyze",
        find_in_path("systemd-analyze")
            .ok_or_else(|| "systemd-analyze is not on PATH (Debian: systemd)".to_string()),
    ) else {
        return;
    };
    scheduled(&ops);
    let units = ops.env.path("units");
    fs::create_dir_all(&units).unwrap();
    fs::write(
        units.join("vault-other.timer"),
        "[Timer]\nOnCalendar=daily\n",
    )
    .unwrap();
    fs::write(
        units.join("unrelated.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .unwrap();

    let dry = ops.ops(
        &["schedule", "install"],
        &["--unit-dir", units.to_str().unwrap(), "--dry-run"],
    );
    dry.ok();
    assert!(
        dry.stdout_str()
            .contains("OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 02:30:00"),
        "{}",
        dry.stdout_str()
    );
    assert_eq!(names(&units), ["unrelated.service", "vault-other.timer"]);

    let out = ops.ops(
        &["schedule", "install"],
        &["--unit-dir", units.to_str().unwrap(), "--json"],
    );
    out.ok();
    let report = out.json();
    assert_eq!(report["unscheduled"], serde_json::json!(["manual"]));
    assert_eq!(
        report["commands"],
        serde_json::json!([]),
        "--unit-dir runs no systemctl"
    );
    assert_eq!(
        names(&units),
        [
            "unrelated.service",
            "vault-cms.service",
            "vault-cms.timer",
            "vault-other.timer",
            "vault-wiki.service",
            "vault-wiki.timer"
        ]
    );
    let timer = fs::read_to_string(units.join("vault-cms.timer")).unwrap();
    assert!(
        timer.contains("\nOnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 02:30:00\n"),
        "{timer}"
    );
    assert!(timer.contains("\nPersistent=true\n"), "{timer}");
    let service = fs::read_to_string(units.join("vault-wiki.service")).unwrap();
    let config = fs::canonicalize(&ops.config).unwrap();
    let exec = format!(
        "\nExecStart={} run --config {} --state-dir {} wiki\n",
        fs::canonicalize(env!("CARGO_BIN_EXE_vault"))
            .unwrap()
            .display(),
        config.display(),
        ops.state.display()
    );
    assert!(service.contains(&exec), "{service}\nwanted {exec}");
    assert!(service.contains("\nType=oneshot\n"), "{service}");

    let mut verify = Command::new(&analyze);
    verify.arg("verify");
    for name in [
        "vault-cms.service",
        "vault-cms.timer",
        "vault-wiki.service",
        "vault-wiki.timer",
    ] {
        verify.arg(units.join(name));
    }
    let verified = verify.output().unwrap();
    assert!(
        verified.status.success() && verified.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}",
        verified.status,
        String::from_utf8_lossy(&verified.stderr)
    );
    // The calendar means what the cron expression means: both list the same next runs.
    let jobs = report["jobs"].as_array().unwrap();
    for job in jobs {
        let on_calendar = job["on_calendar"].as_str().unwrap();
        let out = Command::new(&analyze)
            .args(["calendar", "--iterations=3", on_calendar])
            .env("TZ", "UTC")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let theirs: Vec<String> = text
            .lines()
            .filter(|l| l.contains("Next elapse:") || l.contains("Iter. #"))
            .map(|l| {
                l.split_whitespace()
                    .rev()
                    .skip(1)
                    .take(2)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("T")
            })
            .collect();
        let ours: Vec<String> = job["next_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().trim_end_matches('Z').to_string())
            .collect();
        assert_eq!(theirs, ours, "{on_calendar}: {text}");
    }

    let status = ops.ops(
        &["schedule", "status"],
        &["--unit-dir", units.to_str().unwrap(), "--json"],
    );
    status.ok();
    let status = status.json();
    assert!(
        status["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["installed"] == true),
        "{status:#}"
    );
    assert_eq!(status["jobs"][0]["next_runs"].as_array().unwrap().len(), 3);

    // An application loses its schedule: install again removes its units, and only them.
    ops.write_config(
        "[applications.cms]\nrepository = \"main\"\nschedule = \"30 2 * * 1-5\"\n\n[[applications.cms.databases]]\nkind = \"command\"\nname = \"db\"\ndump_command = \"echo dump\"\n",
    );
    ops.ops(
        &["schedule", "install"],
        &["--unit-dir", units.to_str().unwrap()],
    )
    .ok();
    assert_eq!(
        names(&units),
        [
            "unrelated.service",
            "vault-cms.service",
            "vault-cms.timer",
            "vault-other.timer"
        ]
    );
    ops.ops(
        &["schedule", "remove"],
        &["--unit-dir", units.to_str().unwrap()],
    )
    .ok();
    assert_eq!(names(&units), ["unrelated.service", "vault-other.timer"]);
}

#[test]
fn schedules_systemd_cannot_express_are_refused_not_approximated() {
    let ops = Ops::new();
    ops.write_config(
        "[applications.cms]\nrepository = \"main\"\nschedule = \"0 2 1 * 1\"\n\n[[applications.cms.databases]]\nkind = \"command\"\nname = \"db\"\ndump_command = \"echo dump\"\n",
    );
    let units = ops.env.path("units");
    let out = ops.ops(
        &["schedule", "install"],
        &["--unit-dir", units.to_str().unwrap()],
    );
    out.code(2);
    assert!(
        out.stderr.contains("applications.cms.schedule"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("OR"), "{}", out.stderr);
    assert!(!units.exists());
}

#[test]
fn crontab_lines_run_the_config_and_remove_deletes_exactly_the_block() {
    let ops = Ops::new();
    scheduled(&ops);
    // A stand-in for crontab(1): `-l` prints the file, `-` replaces it with standard input.
    let bin = ops.env.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let table = ops.env.path("crontab.txt");
    let fake = bin.join("crontab");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ \"$1\" = -l ]; then [ -f {0} ] || {{ echo 'no crontab for test' >&2; exit 1; }}; cat {0}; else cat > {0}; fi\n",
            table.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let schedule = |verb: &str| {
        let mut cmd = ops
            .env
            .cmd(["schedule", verb, "--cron", "--json", "--config"]);
        cmd.arg(&ops.config)
            .arg("--state-dir")
            .arg(&ops.state)
            .env("PATH", &path);
        run_cmd(cmd)
    };
    fs::write(
        &table,
        "MAILTO=ops@example.com\n15 3 * * * /usr/local/bin/other-job\n",
    )
    .unwrap();
    let out = schedule("install");
    out.ok();
    let text = fs::read_to_string(&table).unwrap();
    assert!(text.starts_with("MAILTO=ops@example.com\n15 3 * * * /usr/local/bin/other-job\n# BEGIN vault schedule for "), "{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(" run "))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let config = fs::canonicalize(&ops.config).unwrap();
    let binary = fs::canonicalize(env!("CARGO_BIN_EXE_vault")).unwrap();
    for (line, (app, schedule)) in lines
        .iter()
        .zip([("cms", "30 2 * * 1-5"), ("wiki", "0 */4 * * *")])
    {
        let fields: Vec<&str> = line.splitn(6, ' ').collect();
        assert_eq!(fields[..5].join(" "), schedule, "{line}");
        assert_eq!(
            fields[5],
            format!(
                "{} run --config {} --state-dir {} {app}",
                binary.display(),
                config.display(),
                ops.state.display()
            ),
        );
    }
    // Installing twice leaves one block; status finds the lines.
    schedule("install").ok();
    assert_eq!(fs::read_to_string(&table).unwrap(), text);
    let status = schedule("status");
    status.ok();
    let status = status.json();
    assert!(
        status["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["installed"] == true),
        "{status:#}"
    );
    schedule("remove").ok();
    assert_eq!(
        fs::read_to_string(&table).unwrap(),
        "MAILTO=ops@example.com\n15 3 * * * /usr/local/bin/other-job\n"
    );
}
