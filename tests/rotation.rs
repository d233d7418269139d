//! Rotation through the real binary: `forget` (policies, ids, protection, soft delete and
//! undelete), `prune` (space comes back, kept snapshots restore byte-exact, verify stays clean),
//! prune killed at random points, and snapshots running while a prune deletes.

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::history::*;
use crate::util::*;

#[test]
fn forget_refuses_without_a_policy_and_changes_nothing() {
    let env = Env::init();
    let mut days = Days::new(&env);
    days.snapshot(&env, 1, &[]);
    env.run(["forget"])
        .code(2)
        .stderr_has("no --keep-* option given");
    env.run(["forget", "--keep-daily", "1", "deadbeef"])
        .code(2)
        .stderr_has("not both");
    assert_eq!(env.list(Vec::<String>::new()).len(), 1);
}

#[test]
fn forget_then_prune_frees_the_space_of_forgotten_days_and_keeps_the_rest_exact() {
    let env = Env::init();
    let mut days = Days::new(&env);
    let snaps: Vec<String> = (1..=5).map(|d| days.snapshot(&env, d, &[])).collect();
    let repo_before = dir_bytes(&env.repo.join("packs"));

    // Dry run: says what it would do, changes nothing.
    let dry = env
        .run(["forget", "--keep-last", "2", "--dry-run", "--json"])
        .ok()
        .json();
    assert_eq!(dry["dry_run"], true);
    let would: Vec<&str> = dry["forgotten"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(would, vec![&snaps[2], &snaps[1], &snaps[0]]);
    assert_eq!(env.list(Vec::<String>::new()).len(), 5);

    // Forget: soft delete.
    env.run(["forget", "--keep-last", "2"]).ok();
    assert_eq!(
        ids(&env.list(Vec::<String>::new())),
        vec![snaps[3].clone(), snaps[4].clone()]
    );
    assert_eq!(
        ids(&env.list(["--forgotten"])),
        vec![snaps[0].clone(), snaps[1].clone(), snaps[2].clone()]
    );
    // A forgotten snapshot is gone for restore ...
    env.restore(&snaps[0], &env.path("gone"), Vec::<String>::new())
        .code(2);
    // ... until undeleted.
    env.run(["undelete", &snaps[0][..12]]).ok();
    days.check_restore(&env, &snaps[0]);
    env.run(["forget", &snaps[0]]).ok();

    // Prune: the three forgotten days' unique 2 MiB each come back.
    let report = env.run(["prune", "--json"]).ok().json();
    assert_eq!(report["snapshots_deleted"], 3, "{report}");
    assert_eq!(report["snapshots"], 2);
    assert!(report["packs_deleted"].as_u64().unwrap() >= 1, "{report}");
    let freed = report["bytes_freed"].as_u64().unwrap();
    let repo_after = dir_bytes(&env.repo.join("packs"));
    assert_eq!(repo_before - repo_after, freed, "{report}");
    assert!(
        (3 * (2 << 20)..3 * (2 << 20) + (1 << 20)).contains(&freed),
        "freed {freed} bytes, expected a little over 6 MiB: {report}"
    );
    assert!(env.list(["--forgotten"]).is_empty());
    // Undelete after prune: the snapshot is gone for good, and says so.
    env.run(["undelete", &snaps[1]]).code(2);

    verify_clean(&env);
    for id in &snaps[3..] {
        days.check_restore(&env, id);
    }
    // Nothing left to do: a second prune deletes nothing.
    let again = env.run(["prune", "--json"]).ok().json();
    assert_eq!(again["packs_deleted"], 0, "{again}");
    assert_eq!(again["packs_repacked"], 0, "{again}");
    // And new snapshots still work and deduplicate against what remains.
    let next = days.snapshot(&env, 6, &[]);
    days.check_restore(&env, &next);
}

#[test]
fn protected_snapshots_survive_every_policy_and_explicit_forget() {
    let env = Env::init();
    let mut days = Days::new(&env);
    let manual = days.snapshot(&env, 1, &["--protect", "--tag", "manual"]);
    let others: Vec<String> = (2..=4).map(|d| days.snapshot(&env, d, &[])).collect();
    let listed = env.list(Vec::<String>::new());
    assert_eq!(listed[0]["protected"], true);
    assert_eq!(listed[1]["protected"], false);

    let report = env
        .run(["forget", "--keep-last", "1", "--json"])
        .ok()
        .json();
    let fates = &report["groups"][0]["snapshots"];
    let fate_of = |id: &str| {
        fates
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {report}"))
            .clone()
    };
    assert_eq!(fate_of(&manual)["keep"], true);
    assert!(fate_of(&manual)["reasons"]
        .as_array()
        .unwrap()
        .contains(&Value::from("protected")));
    assert_eq!(
        fate_of(&others[2])["reasons"],
        serde_json::json!(["last #1"])
    );
    assert_eq!(fate_of(&others[0])["keep"], false);
    assert_eq!(
        ids(&env.list(Vec::<String>::new())),
        vec![manual.clone(), others[2].clone()]
    );

    // By id: refused while protected, exit 2, naming the fix.
    env.run(["forget", &manual])
        .code(2)
        .stderr_has("vault unprotect");
    env.run(["prune"]).ok();
    days.check_restore(&env, &manual);
    env.run(["unprotect", &manual]).ok();
    env.run(["forget", &manual]).ok();
    env.run(["prune"]).ok();
    assert_eq!(
        ids(&env.list(Vec::<String>::new())),
        vec![others[2].clone()]
    );
    verify_clean(&env);
    days.check_restore(&env, &others[2]);
}

/// A snapshot of a small source that changes every time, taken at `time` with `extra`
/// arguments; returns its id.
fn snapshot_at(env: &Env, time: &str, extra: &[&str]) -> String {
    let src = env.path("site");
    fs::create_dir_all(&src).unwrap();
    write(&src.join("content.txt"), time.as_bytes());
    let mut args = vec!["--time", time];
    args.extend_from_slice(extra);
    args.push(src.to_str().unwrap());
    id_of(&env.snapshot(&args))
}

/// Reasons of every snapshot in a `forget --json` report: id -> reasons (empty: forgotten).
fn fates(report: &Value) -> std::collections::BTreeMap<String, Vec<String>> {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["snapshots"].as_array().unwrap())
        .map(|f| {
            let reasons = f["reasons"].as_array().unwrap();
            let reasons = reasons.iter().map(|r| r.as_str().unwrap().to_string());
            (f["id"].as_str().unwrap().to_string(), reasons.collect())
        })
        .collect()
}

/// A protected manual backup taken after last night's backup is kept, but the nightly one
/// keeps its daily, weekly and monthly slots (it used to lose all three to the manual backup).
#[test]
fn a_protected_backup_takes_no_keep_slot() {
    let env = Env::init();
    let nights: Vec<String> = ["2026-03-08", "2026-03-09", "2026-03-10"]
        .iter()
        .map(|day| snapshot_at(&env, &format!("{day}T00:30:00Z"), &[]))
        .collect();
    let manual = snapshot_at(&env, "2026-03-10T14:00:00Z", &["--protect"]);
    let policy = [
        "--keep-daily",
        "1",
        "--keep-weekly",
        "1",
        "--keep-monthly",
        "1",
    ];
    let report = env
        .run(["forget", "--utc", "--json"].iter().chain(&policy))
        .ok()
        .json();
    let fates = fates(&report);
    assert_eq!(fates[&manual], ["protected"], "{report}");
    assert_eq!(
        fates[&nights[2]],
        ["daily #1", "weekly #1", "monthly #1"],
        "{report}"
    );
    assert!(fates[&nights[1]].is_empty() && fates[&nights[0]].is_empty());
    assert_eq!(
        ids(&env.list(Vec::<String>::new())),
        vec![nights[2].clone(), manual]
    );
}

/// The README's recipe for Magnolia's rotation, run night by night as cron would: one daily,
/// one weekly, one monthly, the latest manual backup, and a protected pre-upgrade backup.
#[test]
fn magnolia_rotation_recipe() {
    let env = Env::init();
    let nightly_forget = [
        "forget",
        "--tag",
        "nightly",
        "--keep-daily",
        "1",
        "--keep-weekly",
        "2",
        "--keep-monthly",
        "2",
        "--utc",
    ];
    let manual_forget = ["forget", "--tag", "manual", "--keep-last", "1", "--prune"];
    let mut day = jiff::civil::date(2026, 2, 20);
    let mut manual = Vec::new();
    let mut nightly = std::collections::BTreeMap::new();
    while day <= jiff::civil::date(2026, 3, 10) {
        let id = snapshot_at(&env, &format!("{day}T00:30:00Z"), &["--tag", "nightly"]);
        nightly.insert(day.to_string(), id);
        env.run(nightly_forget.iter().chain(&["--prune"])).ok();
        if day.day() == 3 || day.day() == 9 {
            manual.push(snapshot_at(
                &env,
                &format!("{day}T15:00:00Z"),
                &["--tag", "manual"],
            ));
            env.run(manual_forget).ok();
        }
        day = day.tomorrow().unwrap();
    }
    let upgrade = snapshot_at(
        &env,
        "2026-03-10T10:00:00Z",
        &["--tag", "nightly", "--protect"],
    );
    let report = env
        .run(nightly_forget.iter().chain(&["--json"]))
        .ok()
        .json();
    let fates = fates(&report);
    assert_eq!(fates[&upgrade], ["protected"], "{report}");
    assert_eq!(
        fates[&nightly["2026-03-10"]],
        ["daily #1", "weekly #1", "monthly #1"],
        "{report}"
    );
    assert_eq!(fates[&nightly["2026-03-08"]], ["weekly #2"], "{report}");
    assert_eq!(fates[&nightly["2026-02-28"]], ["monthly #2"], "{report}");
    env.run(["prune"]).ok();
    env.run(manual_forget).ok();

    // What is left, newest first: the README's table.
    let mut left = env.list(Vec::<String>::new());
    left.reverse();
    assert_eq!(
        ids(&left),
        vec![
            upgrade,
            nightly["2026-03-10"].clone(),
            manual[1].clone(),
            nightly["2026-03-08"].clone(),
            nightly["2026-02-28"].clone(),
        ]
    );
    verify_clean(&env);
}

#[test]
fn group_by_label_keeps_a_rotation_per_application() {
    let env = Env::init();
    let src = env.path("data");
    fs::create_dir_all(&src).unwrap();
    write(&src.join("f"), b"same data for every app");
    let mut made = Vec::new();
    for (i, app) in ["website", "shop", "website", "shop", "website"]
        .iter()
        .enumerate()
    {
        let time = format!("2026-11-0{}T03:00:00Z", i + 1);
        let label = format!("app={app}");
        let v = env.snapshot(["--time", &time, "--label", &label, src.to_str().unwrap()]);
        made.push(id_of(&v));
    }
    let report = env
        .run([
            "forget",
            "--group-by",
            "label:app",
            "--keep-last",
            "1",
            "--dry-run",
            "--json",
        ])
        .ok()
        .json();
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{report}");
    let kept: Vec<&str> = groups
        .iter()
        .flat_map(|g| g["snapshots"].as_array().unwrap())
        .filter(|f| f["keep"] == true)
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    // The newest of each app: shop (day 4) and website (day 5); groups sorted by key.
    assert_eq!(kept, vec![made[3].as_str(), made[4].as_str()], "{report}");
    // The default grouping (host, paths) puts all five in one group.
    let all = env
        .run(["forget", "--keep-last", "1", "--dry-run", "--json"])
        .ok()
        .json();
    assert_eq!(all["groups"].as_array().unwrap().len(), 1);
}

/// A snapshot that deduplicates against the data of a forgotten snapshot while a prune runs:
/// the prune waits for it and copies what it needs out of the packs it deletes.
#[test]
fn snapshot_running_during_prune_keeps_the_blobs_it_deduplicated_against() {
    let env = Env::init();
    let big = env.path("big.bin");
    write(&big, &random_bytes(7, 12 << 20));
    // Yesterday's snapshot holds the data; it is forgotten.
    let old = id_of(&env.snapshot(["--command", &format!("db.sql=cat {}", big.display())]));
    env.run(["forget", &old]).ok();

    // Today's snapshot streams the same data, then lingers (a slow pg_dump), so the prune runs
    // while it holds chunks that only the forgotten snapshot's packs contain.
    let mut today = env.cmd([
        "snapshot",
        "--json",
        "--command",
        &format!("db.sql=cat {} && sleep 3", big.display()),
    ]);
    today.stdout(Stdio::piped()).stderr(Stdio::piped());
    let today = today.spawn().unwrap();
    // Wait until it is registered (its registration file appears).
    wait_for_registration(&env);
    std::thread::sleep(Duration::from_millis(700)); // it has read (and deduplicated) the data

    let report = env.run(["prune", "--json"]).ok().json();
    let today = today.wait_with_output().unwrap();
    assert!(
        today.status.success(),
        "{}",
        String::from_utf8_lossy(&today.stderr)
    );
    let today: Value = serde_json::from_slice(&today.stdout).unwrap();
    let today_id = id_of(&today);
    assert_eq!(report["snapshots_deleted"], 1, "{report}");
    assert!(
        !report["waited_for"].as_array().unwrap().is_empty(),
        "prune did not wait for the running snapshot: {report}"
    );
    assert!(
        report["blobs_rescued"].as_u64().unwrap() > 0,
        "nothing rescued: {report}"
    );
    verify_clean(&env);
    let (code, digest, len, stderr) = env.dump_digest(&today_id, "/db.sql", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!((digest, len), file_digest(&big));
}

/// With --no-wait, a prune that meets a running snapshot leaves its plan; snapshots started
/// after the plan store the condemned data anew; the next prune finishes the job.
#[test]
fn prune_without_waiting_leaves_a_plan_that_new_snapshots_honour_and_the_next_prune_finishes() {
    let env = Env::init();
    let big = env.path("big.bin");
    write(&big, &random_bytes(8, 6 << 20));
    let old = id_of(&env.snapshot([big.to_str().unwrap()]));
    env.run(["forget", &old]).ok();

    // A long-running snapshot of something else holds a registration.
    let mut slow = env.cmd([
        "snapshot",
        "--json",
        "--command",
        "slow.sql=sleep 4; echo done",
    ]);
    slow.stdout(Stdio::piped()).stderr(Stdio::piped());
    let slow = slow.spawn().unwrap();
    wait_for_registration(&env);

    let first = env.run(["prune", "--no-wait", "--json"]).ok().json();
    assert_eq!(first["pending"], true, "{first}");
    assert_eq!(objects(&env.repo.join("prune")), 1);

    // Started after the plan: must not deduplicate against the condemned packs.
    let fresh = env.snapshot([big.to_str().unwrap()]);
    assert!(
        summary(&fresh, "chunks_new") > 0,
        "a snapshot after the plan reused condemned data: {fresh}"
    );

    let slow = slow.wait_with_output().unwrap();
    assert!(slow.status.success());
    let second = env.run(["prune", "--json"]).ok().json();
    assert_eq!(second["plans_finished"], 1, "{second}");
    assert_eq!(objects(&env.repo.join("prune")), 0);
    verify_clean(&env);
    let target = env.path("r");
    env.restore(&id_of(&fresh), &target, Vec::<String>::new())
        .ok();
    assert_eq!(
        file_digest(&Env::restored(&target, &big)),
        file_digest(&big)
    );
}

/// Two prunes at once: the second is refused with exit code 4 while the first holds the lock.
#[test]
fn a_second_prune_is_refused_while_one_runs() {
    let env = Env::init();
    let mut days = Days::new(&env);
    let a = days.snapshot(&env, 1, &[]);
    env.run(["forget", &a]).ok();
    let mut slow = env.cmd(["snapshot", "--command", "slow.sql=sleep 3"]);
    slow.stdout(Stdio::null()).stderr(Stdio::null());
    let mut slow = slow.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // The first prune waits for the slow snapshot while holding the lock.
    let mut first = env.cmd(["prune"]);
    first.stdout(Stdio::null()).stderr(Stdio::piped());
    let first = first.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    env.run(["prune"]).code(4).stderr_has("locks/prune");
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    slow.wait().unwrap();
    // The lock is gone with its holder.
    env.run(["prune"]).ok();
}

/// Waits until a running snapshot has registered itself (its `writers/` file appears).
fn wait_for_registration(env: &Env) {
    let started = Instant::now();
    while objects(&env.repo.join("writers")) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "snapshot never registered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
