//! Table-driven tests of the retention policies over generated timelines.

use super::*;
use jiff::SignedDuration;

/// Europe/Berlin as its POSIX rule (CET/CEST, last Sunday of March 02:00 -> 03:00, last
/// Sunday of October 03:00 -> 02:00), in force since 1996: hermetic, unlike the system
/// tzdb, which a bare CI machine may lack. `posix_berlin_matches_the_tzdb` cross-checks it.
fn berlin() -> TimeZone {
    TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
}

fn utc() -> TimeZone {
    TimeZone::UTC
}

fn at(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("bad test time {text}: {e}"))
}

/// Generated snapshots are named by their UTC time, so expected lists read as times.
fn name(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%MZ").to_string()
}

fn candidate(id: &str, time: &str) -> Candidate {
    Candidate {
        id: id.to_string(),
        time: at(time),
        host: "db1".to_string(),
        paths: vec!["/srv".to_string()],
        tags: Vec::new(),
        labels: BTreeMap::new(),
        protected: false,
    }
}

fn snapshot(time: &str) -> Candidate {
    candidate(&name(at(time)), time)
}

/// One snapshot every `step` from `first` to `last` inclusive, OLDEST first (apply sorts).
fn series(first: &str, last: &str, step: SignedDuration) -> Vec<Candidate> {
    let (mut time, last) = (at(first), at(last));
    let mut list = Vec::new();
    while time <= last {
        list.push(snapshot(&time.to_string()));
        time = time.checked_add(step).unwrap();
    }
    list
}

fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

/// `"last=2 daily=3 within=30d tag=manual"`.
fn policy(spec: &str) -> Policy {
    let mut p = Policy::default();
    for item in spec.split_whitespace() {
        let (key, value) = item.split_once('=').unwrap();
        let count = || Some(value.parse::<u32>().unwrap());
        match key {
            "last" => p.last = count(),
            "hourly" => p.hourly = count(),
            "daily" => p.daily = count(),
            "weekly" => p.weekly = count(),
            "monthly" => p.monthly = count(),
            "yearly" => p.yearly = count(),
            "within" => p.within = Some(parse_within(value).unwrap()),
            "tag" => p.tags.push(value.to_string()),
            _ => panic!("bad policy item {item}"),
        }
    }
    p
}

/// The only group's decisions.
fn decide_one(spec: &str, snapshots: &[Candidate], tz: &TimeZone) -> Vec<Decision> {
    let mut groups = apply(&policy(spec), &[], snapshots, tz);
    assert_eq!(groups.len(), 1, "{spec}: expected one group");
    groups.remove(0).decisions
}

fn kept(spec: &str, snapshots: &[Candidate], tz: &TimeZone) -> Vec<String> {
    decide_one(spec, snapshots, tz)
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| d.id)
        .collect()
}

fn reasons(spec: &str, snapshots: &[Candidate], tz: &TimeZone, id: &str) -> Vec<String> {
    decide_one(spec, snapshots, tz)
        .into_iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("no snapshot {id}"))
        .reasons
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `"2025-12-31"` -> `"2025-12-31T23:00Z"`: the last hourly snapshot of a UTC day.
fn t23(dates: &[&str]) -> Vec<String> {
    dates.iter().map(|d| format!("{d}T23:00Z")).collect()
}

/// `"2024-03-02"` -> `"2024-03-02T12:00Z"`: a daily-at-noon snapshot.
fn noon(dates: &[&str]) -> Vec<String> {
    dates.iter().map(|d| format!("{d}T12:00Z")).collect()
}

fn check(cases: &[(&str, &TimeZone, Vec<String>)], timeline: &[Candidate]) {
    for (spec, tz, want) in cases {
        let tz_name = tz.iana_name().unwrap_or("posix");
        assert_eq!(
            &kept(spec, timeline, tz),
            want,
            "policy {spec:?} in {tz_name}"
        );
    }
}

#[test]
fn two_years_of_hourly_snapshots() {
    let timeline = series("2024-01-01T00:00Z", "2025-12-31T23:00Z", hours(1));
    assert_eq!(timeline.len(), 731 * 24);
    let (utc, berlin) = (&utc(), &berlin());
    let last_day: Vec<String> = (0..24)
        .rev()
        .map(|h| format!("2025-12-31T{h:02}:00Z"))
        .collect();
    let mut combo = last_day.clone();
    #[rustfmt::skip]
    combo.extend(t23(&[
        // daily #2..#7
        "2025-12-30", "2025-12-29", "2025-12-28", "2025-12-27", "2025-12-26", "2025-12-25",
        // weekly #3, #4 (#1 = 12-31 in 2026-W01, #2 = 12-28 in 2025-W52: daily already)
        "2025-12-21", "2025-12-14",
        // monthly #2..#12
        "2025-11-30", "2025-10-31", "2025-09-30", "2025-08-31", "2025-07-31", "2025-06-30",
        "2025-05-31", "2025-04-30", "2025-03-31", "2025-02-28", "2025-01-31",
        // yearly #2
        "2024-12-31",
    ]));
    assert_eq!(combo.len(), 24 + 6 + 2 + 11 + 1);
    #[rustfmt::skip]
    let cases = [
        ("hourly=3", utc, strings(&["2025-12-31T23:00Z", "2025-12-31T22:00Z", "2025-12-31T21:00Z"])),
        ("daily=3", utc, t23(&["2025-12-31", "2025-12-30", "2025-12-29"])),
        // 2025-12-31 is a Wednesday in ISO week 2026-W01.
        ("weekly=3", utc, t23(&["2025-12-31", "2025-12-28", "2025-12-21"])),
        ("monthly=3", utc, t23(&["2025-12-31", "2025-11-30", "2025-10-31"])),
        // Only two years have snapshots; the unused slots keep nothing.
        ("yearly=5", utc, t23(&["2025-12-31", "2024-12-31"])),
        ("monthly=30", utc, t23(&[
            "2025-12-31", "2025-11-30", "2025-10-31", "2025-09-30", "2025-08-31", "2025-07-31",
            "2025-06-30", "2025-05-31", "2025-04-30", "2025-03-31", "2025-02-28", "2025-01-31",
            "2024-12-31", "2024-11-30", "2024-10-31", "2024-09-30", "2024-08-31", "2024-07-31",
            "2024-06-30", "2024-05-31", "2024-04-30", "2024-03-31", "2024-02-29", "2024-01-31",
        ])),
        ("last=2 daily=2", utc, strings(&["2025-12-31T23:00Z", "2025-12-31T22:00Z", "2025-12-30T23:00Z"])),
        ("hourly=24 daily=7 weekly=4 monthly=12 yearly=3", utc, combo),
        // In Berlin (CET, UTC+1 in winter) 2025-12-31T23:00Z is already 2026-01-01 00:00.
        ("daily=2", berlin, strings(&["2025-12-31T23:00Z", "2025-12-31T22:00Z"])),
        ("yearly=3", berlin, strings(&["2025-12-31T23:00Z", "2025-12-31T22:00Z", "2024-12-31T22:00Z"])),
        ("weekly=3", berlin, strings(&["2025-12-31T23:00Z", "2025-12-28T22:00Z", "2025-12-21T22:00Z"])),
        // Month ends at 23:00 local: 22:00Z in winter (CET), 21:00Z in summer (CEST).
        ("monthly=7", berlin, strings(&[
            "2025-12-31T23:00Z", "2025-12-31T22:00Z", "2025-11-30T22:00Z", "2025-10-31T22:00Z",
            "2025-09-30T21:00Z", "2025-08-31T21:00Z", "2025-07-31T21:00Z",
        ])),
    ];
    check(&cases, &timeline);

    let spec = "hourly=24 daily=7 weekly=4 monthly=12 yearly=3";
    #[rustfmt::skip]
    let reason_cases = [
        ("2025-12-31T23:00Z", &["hourly #1", "daily #1", "weekly #1", "monthly #1", "yearly #1"][..]),
        ("2025-12-31T00:00Z", &["hourly #24"]),
        ("2025-12-28T23:00Z", &["daily #4", "weekly #2"]),
        ("2025-12-14T23:00Z", &["weekly #4"]),
        ("2025-01-31T23:00Z", &["monthly #12"]),
        ("2024-12-31T23:00Z", &["yearly #2"]),
        ("2024-12-31T22:00Z", &[]),
    ];
    for (id, want) in reason_cases {
        assert_eq!(reasons(spec, &timeline, utc, id), strings(want), "{id}");
    }
}

#[test]
fn empty_buckets_do_not_count() {
    #[rustfmt::skip]
    let timeline: Vec<Candidate> = [
        "2026-01-15T09:00Z", "2026-04-02T09:00Z", "2026-05-10T09:00Z",
        "2026-05-18T07:00Z", "2026-05-18T20:00Z", "2026-05-20T08:00Z",
    ].iter().map(|t| snapshot(t)).collect();
    let utc = &utc();
    #[rustfmt::skip]
    let cases = [
        ("hourly=3", utc, strings(&["2026-05-20T08:00Z", "2026-05-18T20:00Z", "2026-05-18T07:00Z"])),
        ("daily=4", utc, strings(&["2026-05-20T08:00Z", "2026-05-18T20:00Z", "2026-05-10T09:00Z", "2026-04-02T09:00Z"])),
        // Weeks 21 (May 18-24), 19 (May 4-10) and 14; week 20 has no snapshot.
        ("weekly=3", utc, strings(&["2026-05-20T08:00Z", "2026-05-10T09:00Z", "2026-04-02T09:00Z"])),
        ("monthly=2", utc, strings(&["2026-05-20T08:00Z", "2026-04-02T09:00Z"])),
        ("monthly=3", utc, strings(&["2026-05-20T08:00Z", "2026-04-02T09:00Z", "2026-01-15T09:00Z"])),
        ("yearly=3", utc, strings(&["2026-05-20T08:00Z"])),
    ];
    check(&cases, &timeline);
}

#[test]
fn dst_spring_forward_in_berlin() {
    // 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00Z; local hour 02 does not exist.
    // Local hours of the snapshots: 00 00:30 01 01:30 | 03 03:30 04 04:30 05 05:30.
    let timeline = series("2026-03-28T23:00Z", "2026-03-29T03:30Z", minutes(30));
    let (utc, berlin) = (&utc(), &berlin());
    #[rustfmt::skip]
    let cases = [
        ("hourly=10", berlin, strings(&[
            "2026-03-29T03:30Z", "2026-03-29T02:30Z", "2026-03-29T01:30Z", "2026-03-29T00:30Z",
            "2026-03-28T23:30Z",
        ])),
        // Local 05, 04, 03, 01: the missing hour 02 uses up no slot.
        ("hourly=4", berlin, strings(&[
            "2026-03-29T03:30Z", "2026-03-29T02:30Z", "2026-03-29T01:30Z", "2026-03-29T00:30Z",
        ])),
        // All ten are on local 2026-03-29; in UTC the first two are on the 28th.
        ("daily=2", berlin, strings(&["2026-03-29T03:30Z"])),
        ("daily=2", utc, strings(&["2026-03-29T03:30Z", "2026-03-28T23:30Z"])),
    ];
    check(&cases, &timeline);
    assert_eq!(
        reasons("hourly=10", &timeline, berlin, "2026-03-29T01:30Z"),
        ["hourly #3"]
    );
}

#[test]
fn dst_fall_back_in_berlin_is_one_hourly_bucket() {
    // 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00Z; local 02:00-02:59 happens twice
    // (00:00Z-00:59Z and 01:00Z-01:59Z) and is one bucket.
    let timeline = series("2026-10-24T23:00Z", "2026-10-25T03:30Z", minutes(30));
    let (utc, berlin) = (&utc(), &berlin());
    #[rustfmt::skip]
    let cases = [
        // Local 04:30, 03:30, 02:30 (second one, CET), 01:30.
        ("hourly=10", berlin, strings(&[
            "2026-10-25T03:30Z", "2026-10-25T02:30Z", "2026-10-25T01:30Z", "2026-10-24T23:30Z",
        ])),
        ("hourly=10", utc, strings(&[
            "2026-10-25T03:30Z", "2026-10-25T02:30Z", "2026-10-25T01:30Z", "2026-10-25T00:30Z",
            "2026-10-24T23:30Z",
        ])),
    ];
    check(&cases, &timeline);
    let decisions = decide_one("hourly=10", &timeline, berlin);
    let fate = |id: &str| decisions.iter().find(|d| d.id == id).unwrap().clone();
    assert_eq!(fate("2026-10-25T01:30Z").reasons, ["hourly #3"]);
    assert_eq!(fate("2026-10-24T23:30Z").reasons, ["hourly #4"]);
    assert!(
        !fate("2026-10-25T00:30Z").keep,
        "first 02:30 shares the bucket"
    );
}

#[test]
fn iso_weeks_53_and_week_1_across_new_year() {
    let (utc, berlin) = (&utc(), &berlin());
    let day = hours(24);
    // 2026-W53 is 2026-12-28 .. 2027-01-03; 2027-W01 starts 2027-01-04.
    let timeline = series("2026-12-14T12:00Z", "2027-01-12T12:00Z", day);
    let cases = [(
        "weekly=4",
        utc,
        noon(&["2027-01-12", "2027-01-10", "2027-01-03", "2026-12-27"]),
    )];
    check(&cases, &timeline);
    // 2020-W53 is 2020-12-28 .. 2021-01-03.
    let timeline = series("2020-12-20T12:00Z", "2021-01-05T12:00Z", day);
    let cases = [(
        "weekly=3",
        utc,
        noon(&["2021-01-05", "2021-01-03", "2020-12-27"]),
    )];
    check(&cases, &timeline);
    // 2024-12-31 (a Tuesday) is in 2025-W01, together with 2025-01-02; but in year 2024.
    let timeline = series("2024-12-20T12:00Z", "2025-01-02T12:00Z", day);
    let cases = [
        ("weekly=2", utc, noon(&["2025-01-02", "2024-12-29"])),
        ("yearly=2", utc, noon(&["2025-01-02", "2024-12-31"])),
    ];
    check(&cases, &timeline);
    // At 23:30Z Berlin is already the next day: 2027-01-03T23:30Z is Monday 2027-W01.
    let timeline = series("2026-12-20T23:30Z", "2027-01-05T23:30Z", day);
    #[rustfmt::skip]
    let cases = [
        ("weekly=3", berlin, strings(&["2027-01-05T23:30Z", "2027-01-02T23:30Z", "2026-12-26T23:30Z"])),
        ("weekly=3", utc, strings(&["2027-01-05T23:30Z", "2027-01-03T23:30Z", "2026-12-27T23:30Z"])),
    ];
    check(&cases, &timeline);
}

#[test]
fn leap_day() {
    let utc = &utc();
    let timeline = series("2024-02-27T00:00Z", "2024-03-01T23:00Z", hours(1));
    let cases = [(
        "daily=3",
        utc,
        t23(&["2024-03-01", "2024-02-29", "2024-02-28"]),
    )];
    check(&cases, &timeline);
    let mut timeline = series("2023-02-25T12:00Z", "2023-03-02T12:00Z", hours(24));
    timeline.extend(series("2024-02-25T12:00Z", "2024-03-02T12:00Z", hours(24)));
    #[rustfmt::skip]
    let cases = [
        ("monthly=4", utc, noon(&["2024-03-02", "2024-02-29", "2023-03-02", "2023-02-28"])),
        ("daily=4", utc, noon(&["2024-03-02", "2024-03-01", "2024-02-29", "2024-02-28"])),
    ];
    check(&cases, &timeline);
}

#[test]
fn month_and_year_ends_in_local_time() {
    // Berlin is UTC+1 in winter: 23:30Z is 00:30 the next day, 22:30Z is 23:30 the same day.
    #[rustfmt::skip]
    let timeline: Vec<Candidate> = [
        ("F", "2025-12-31T22:30Z"), // Berlin 2025-12-31 23:30
        ("E", "2025-12-31T23:30Z"), // Berlin 2026-01-01 00:30
        ("D", "2026-01-15T12:00Z"),
        ("C", "2026-01-31T22:30Z"), // Berlin 2026-01-31 23:30
        ("B", "2026-01-31T23:30Z"), // Berlin 2026-02-01 00:30
        ("A", "2026-02-01T10:00Z"),
    ].iter().map(|(id, t)| candidate(id, t)).collect();
    let (utc, berlin) = (&utc(), &berlin());
    let cases = [
        ("monthly=3", berlin, strings(&["A", "C", "F"])),
        ("monthly=3", utc, strings(&["A", "B", "E"])),
        ("daily=2", berlin, strings(&["A", "C"])),
        ("daily=2", utc, strings(&["A", "B"])),
        ("yearly=2", berlin, strings(&["A", "F"])),
        ("yearly=2", utc, strings(&["A", "E"])),
    ];
    check(&cases, &timeline);
}

#[test]
fn keep_within_is_calendar_arithmetic_before_the_newest() {
    let utc = &utc();
    // Daily at noon; the newest is 2024-03-31T12:00Z. Kept: strictly after the cutoff,
    // i.e. the suffix of the timeline starting at the oldest kept day.
    let timeline = series("2023-01-01T12:00Z", "2024-03-31T12:00Z", hours(24));
    let newest = "2024-03-31T12:00Z";
    #[rustfmt::skip]
    let cases = [
        // cutoff 2024-03-01T12:00Z exactly: that snapshot is not "within".
        ("30d", "2024-03-02T12:00Z", 30),
        ("2w", "2024-03-18T12:00Z", 14),
        // 2024-03-31 minus one month clamps to 2024-02-29.
        ("1m", "2024-03-01T12:00Z", 31),
        ("1y", "2023-04-01T12:00Z", 366),
        ("36h", "2024-03-30T12:00Z", 2),
        // 2024-03-31T12 - 1y2m = 2023-01-31T12, - 3d = 2023-01-28T12, - 4h = 2023-01-28T08.
        ("1y2m3d4h", "2023-01-28T12:00Z", 429),
    ];
    for (within, oldest, count) in cases {
        let spec = format!("within={within}");
        let want: Vec<String> = series(oldest, newest, hours(24))
            .into_iter()
            .rev()
            .map(|c| c.id)
            .collect();
        assert_eq!(want.len(), count, "{within}: test arithmetic");
        assert_eq!(kept(&spec, &timeline, utc), want, "within {within}");
        assert_eq!(
            reasons(&spec, &timeline, utc, newest),
            [format!("within {within}")]
        );
    }
}

#[test]
fn keep_within_days_are_civil_days_across_dst() {
    // Newest 2026-03-29T10:00Z = 12:00 CEST. One civil day back is 2026-03-28 12:00 CET
    // = 11:00Z (23 hours earlier); 24h back is 10:00Z.
    let timeline = series("2026-03-28T08:00Z", "2026-03-29T10:00Z", minutes(30));
    let newest = "2026-03-29T10:00Z";
    let (utc, berlin) = (&utc(), &berlin());
    let cases = [
        ("1d", berlin, "2026-03-28T11:30Z"),
        ("24h", berlin, "2026-03-28T10:30Z"),
        ("1d", utc, "2026-03-28T10:30Z"),
    ];
    for (within, tz, oldest) in cases {
        let want: Vec<String> = series(oldest, newest, minutes(30))
            .into_iter()
            .rev()
            .map(|c| c.id)
            .collect();
        assert_eq!(
            kept(&format!("within={within}"), &timeline, tz),
            want,
            "{within}"
        );
    }
}

#[test]
fn keep_last_alone_and_ties_by_id() {
    let timeline = vec![
        candidate("d", "2026-05-01T08:00Z"),
        candidate("b", "2026-05-01T12:00Z"),
        candidate("c", "2026-05-01T10:00Z"),
        candidate("a", "2026-05-01T12:00Z"),
    ];
    let utc = &utc();
    assert_eq!(kept("last=3", &timeline, utc), ["a", "b", "c"]);
    assert_eq!(kept("last=1", &timeline, utc), ["a"]);
    assert_eq!(kept("last=9", &timeline, utc), ["a", "b", "c", "d"]);
    let mut reversed = timeline.clone();
    reversed.reverse();
    assert_eq!(
        decide_one("last=2", &timeline, utc),
        decide_one("last=2", &reversed, utc)
    );
    let order: Vec<String> = decide_one("last=2", &timeline, utc)
        .into_iter()
        .map(|d| format!("{}:{}", d.id, d.reasons.join("+")))
        .collect();
    assert_eq!(order, ["a:last #1", "b:last #2", "c:", "d:"]);
}

#[test]
fn tags_and_protected_survive_every_policy() {
    let mut timeline = series("2026-01-01T12:00Z", "2026-03-31T12:00Z", hours(24));
    for c in &mut timeline {
        match c.id.as_str() {
            "2026-01-05T12:00Z" => c.tags = strings(&["x", "manual"]),
            "2026-01-10T12:00Z" => c.protected = true,
            "2026-01-20T12:00Z" => c.tags = strings(&["other"]),
            _ => {}
        }
    }
    let utc = &utc();
    let specs = [
        "last=1",
        "hourly=1",
        "daily=1",
        "weekly=1",
        "monthly=1",
        "yearly=1",
        "within=1d",
    ];
    for spec in specs {
        let spec = format!("{spec} tag=manual");
        let want = strings(&[
            "2026-03-31T12:00Z",
            "2026-01-10T12:00Z",
            "2026-01-05T12:00Z",
        ]);
        assert_eq!(kept(&spec, &timeline, utc), want, "{spec}");
        let why = |id| reasons(&spec, &timeline, utc, id);
        assert_eq!(why("2026-01-05T12:00Z"), ["tag manual"], "{spec}");
        assert_eq!(why("2026-01-10T12:00Z"), ["protected"], "{spec}");
    }
    // Tags alone; protected needs no policy entry at all.
    assert_eq!(
        kept("tag=manual", &timeline, utc),
        ["2026-01-10T12:00Z", "2026-01-05T12:00Z"]
    );
}

#[test]
fn tagged_snapshots_fill_bucket_slots_and_protected_ones_do_not() {
    let mut timeline = vec![
        candidate("P", "2026-03-10T10:00Z"),
        candidate("X", "2026-03-10T09:00Z"),
        candidate("Y", "2026-03-09T09:00Z"),
        candidate("Z", "2026-03-08T09:00Z"),
    ];
    timeline[0].protected = true;
    timeline[0].tags = strings(&["release", "manual"]);
    timeline[2].tags = strings(&["manual"]);
    let utc = &utc();
    let spec = "daily=2 tag=manual tag=release tag=manual within=1d last=1";
    let decisions: Vec<(String, Vec<String>)> = decide_one(spec, &timeline, utc)
        .into_iter()
        .map(|d| (d.id, d.reasons))
        .collect();
    #[rustfmt::skip]
    assert_eq!(decisions, [
        ("P".to_string(), strings(&["protected", "tag manual", "tag release", "within 1d"])),
        ("X".to_string(), strings(&["within 1d", "last #1", "daily #1"])),
        ("Y".to_string(), strings(&["tag manual", "daily #2"])),
        ("Z".to_string(), strings(&[])),
    ]);
}

/// Nightly snapshots at 00:30 UTC and a protected manual backup taken after the last one, as
/// in Magnolia's rotation (one daily, one weekly, one monthly, one manual kept apart).
#[test]
fn a_protected_manual_backup_fills_no_daily_weekly_or_monthly_slot() {
    let mut timeline = series("2026-01-01T00:30Z", "2026-03-10T00:30Z", hours(24));
    let mut manual = snapshot("2026-03-10T14:00Z");
    manual.protected = true;
    timeline.push(manual);
    let utc = &utc();
    // The newest nightly is the newest of its day, ISO week and month: it takes all three.
    assert_eq!(
        kept("daily=1 weekly=1 monthly=1", &timeline, utc),
        ["2026-03-10T14:00Z", "2026-03-10T00:30Z"]
    );
    assert_eq!(
        reasons(
            "daily=1 weekly=1 monthly=1",
            &timeline,
            utc,
            "2026-03-10T00:30Z"
        ),
        ["daily #1", "weekly #1", "monthly #1"]
    );
    assert_eq!(
        reasons(
            "daily=1 weekly=1 monthly=1",
            &timeline,
            utc,
            "2026-03-10T14:00Z"
        ),
        ["protected"]
    );
    // The README's recipe: Tuesday's nightly, the newest of last week (Sunday 8 March) and of
    // last month (28 February), and the manual backup beside them.
    assert_eq!(
        kept("daily=1 weekly=2 monthly=2", &timeline, utc),
        [
            "2026-03-10T14:00Z",
            "2026-03-10T00:30Z",
            "2026-03-08T00:30Z",
            "2026-02-28T00:30Z"
        ]
    );
    // Protection changes no other snapshot's fate: the same policy without the manual backup.
    let nightly = &timeline[..timeline.len() - 1];
    assert_eq!(
        kept("daily=1 weekly=2 monthly=2 last=3", &timeline, utc)[1..],
        kept("daily=1 weekly=2 monthly=2 last=3", nightly, utc)[..]
    );
}

/// (key, kept ids) per group.
fn kept_by_group(
    spec: &str,
    group_by: &str,
    snapshots: &[Candidate],
) -> Vec<(ShownKey, Vec<String>)> {
    let group_by = parse_group_by(group_by).unwrap();
    apply(&policy(spec), &group_by, snapshots, &utc())
        .into_iter()
        .map(|g| {
            let kept = g.decisions.iter().filter(|d| d.keep);
            (g.key, kept.map(|d| d.id.clone()).collect())
        })
        .collect()
}

fn key(pairs: &[(&str, &str)]) -> ShownKey {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn grouping_by_host_and_paths() {
    let with = |id, time, host: &str, paths: &[&str]| Candidate {
        host: host.to_string(),
        paths: strings(paths),
        ..candidate(id, time)
    };
    let timeline = vec![
        with("1", "2026-05-02T00:00Z", "db1", &["/srv/b", "/srv/a"]),
        with("2", "2026-05-01T00:00Z", "db1", &["/srv/a", "/srv/b"]),
        with("3", "2026-05-03T00:00Z", "web", &["/srv/a"]),
        with("4", "2026-05-04T00:00Z", "db1", &["/srv/a"]),
        // One path containing a comma: shown like group 1+2, but a group of its own.
        with("5", "2026-04-30T00:00Z", "db1", &["/srv/a,/srv/b"]),
    ];
    let groups = kept_by_group("last=1", DEFAULT_GROUP_BY, &timeline);
    #[rustfmt::skip]
    assert_eq!(groups, [
        (key(&[("host", "db1"), ("paths", "/srv/a")]), strings(&["4"])),
        (key(&[("host", "db1"), ("paths", "/srv/a,/srv/b")]), strings(&["1"])),
        (key(&[("host", "db1"), ("paths", "/srv/a,/srv/b")]), strings(&["5"])),
        (key(&[("host", "web"), ("paths", "/srv/a")]), strings(&["3"])),
    ]);
    let groups = kept_by_group("last=1", "host", &timeline);
    #[rustfmt::skip]
    assert_eq!(groups, [
        (key(&[("host", "db1")]), strings(&["4"])),
        (key(&[("host", "web")]), strings(&["3"])),
    ]);
    let groups = kept_by_group("last=1", "", &timeline);
    assert_eq!(groups, [(key(&[]), strings(&["4"]))]);
    // Every snapshot lands in exactly one group, newest first.
    let all = apply(&policy("last=1"), &[], &timeline, &utc());
    let ids: Vec<&str> = all[0].decisions.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["4", "3", "1", "2", "5"]);
}

#[test]
fn grouping_by_label_and_tags() {
    let with = |id, time, app: Option<&str>, tags: &[&str]| Candidate {
        labels: app
            .map(|v| BTreeMap::from([("app".to_string(), v.to_string())]))
            .unwrap_or_default(),
        tags: strings(tags),
        paths: strings(&["/srv/cms"]),
        ..candidate(id, time)
    };
    let timeline = vec![
        with("w1", "2026-05-01T00:00Z", Some("website"), &["b", "a"]),
        with("w2", "2026-05-02T00:00Z", Some("website"), &["a", "b"]),
        with("d1", "2026-05-03T00:00Z", Some("db"), &[]),
        with("n1", "2026-05-04T00:00Z", None, &["a"]),
        with("e1", "2026-05-05T00:00Z", Some(""), &[]),
    ];
    let groups = kept_by_group("last=1", "label:app", &timeline);
    #[rustfmt::skip]
    assert_eq!(groups, [
        (key(&[("label:app", "")]), strings(&["e1"])),
        (key(&[("label:app", "db")]), strings(&["d1"])),
        (key(&[("label:app", "website")]), strings(&["w2"])),
    ]);
    let groups = kept_by_group("last=2", "host,paths,label:app", &timeline);
    let website = key(&[
        ("host", "db1"),
        ("paths", "/srv/cms"),
        ("label:app", "website"),
    ]);
    assert_eq!(groups[2], (website, strings(&["w2", "w1"])));
    let groups = kept_by_group("last=1", "tags", &timeline);
    #[rustfmt::skip]
    assert_eq!(groups, [
        (key(&[("tags", "")]), strings(&["e1"])),
        (key(&[("tags", "a")]), strings(&["n1"])),
        (key(&[("tags", "a,b")]), strings(&["w2"])),
    ]);
}

#[test]
fn keep_within_is_relative_to_each_groups_newest() {
    let mut timeline = series("2026-05-01T12:00Z", "2026-05-10T12:00Z", hours(24));
    for mut c in series("2026-01-01T12:00Z", "2026-01-10T12:00Z", hours(24)) {
        c.host = "old".to_string();
        timeline.push(c);
    }
    let groups = kept_by_group("within=3d", "host", &timeline);
    #[rustfmt::skip]
    assert_eq!(groups, [
        (key(&[("host", "db1")]), noon(&["2026-05-10", "2026-05-09", "2026-05-08"])),
        (key(&[("host", "old")]), noon(&["2026-01-10", "2026-01-09", "2026-01-08"])),
    ]);
}

#[test]
fn empty_input_and_empty_policy() {
    assert!(apply(&policy("daily=3"), &[], &[], &utc()).is_empty());
    assert!(Policy::default().is_empty());
    assert!(policy("daily=0 last=0").is_empty());
    for spec in ["last=1", "yearly=1", "within=1h", "tag=manual"] {
        assert!(!policy(spec).is_empty(), "{spec}");
    }
    // An empty policy keeps only protected snapshots (forget refuses it before that).
    let mut timeline = vec![snapshot("2026-01-01T00:00Z"), snapshot("2026-01-02T00:00Z")];
    timeline[0].protected = true;
    assert_eq!(kept("", &timeline, &utc()), ["2026-01-01T00:00Z"]);
}

#[test]
fn parse_within_accepts() {
    let cases: &[(&str, [i64; 5])] = &[
        ("30d", [0, 0, 0, 30, 0]),
        ("2w", [0, 0, 2, 0, 0]),
        ("12h", [0, 0, 0, 0, 12]),
        ("1y6m", [1, 6, 0, 0, 0]),
        ("1y2m3d4h", [1, 2, 0, 3, 4]),
        ("4h3d", [0, 0, 0, 3, 4]),
        ("0y7d", [0, 0, 0, 7, 0]),
    ];
    for (text, [y, m, w, d, h]) in cases {
        let within = parse_within(text).unwrap();
        let span = within.span();
        let got: [i64; 5] = [
            span.get_years().into(),
            span.get_months().into(),
            span.get_weeks().into(),
            span.get_days().into(),
            span.get_hours().into(),
        ];
        assert_eq!(got, [*y, *m, *w, *d, *h], "{text}");
        assert_eq!(within.to_string(), *text);
    }
}

#[test]
fn parse_within_rejects() {
    let cases = [
        ("", "empty duration"),
        ("0d", "is zero"),
        ("0y0m", "is zero"),
        ("30", "\"30\" has no unit"),
        ("30x", "unknown unit 'x'"),
        ("30D", "unknown unit 'D'"),
        ("1.5d", "unknown unit '.'"),
        ("d", "expected a number before 'd'"),
        ("-1d", "expected a number before '-'"),
        (" 1d", "expected a number before ' '"),
        ("1d2d", "unit 'd' is given twice"),
        ("99999y", "99999y is too large"),
        ("99999999999999999999d", "is too large"),
    ];
    for (text, want) in cases {
        let error = parse_within(text).unwrap_err();
        assert!(error.contains(want), "{text:?}: {error}");
        assert!(!error.contains('\n'), "{text:?}: one line");
        if !want.contains("too large") {
            assert!(error.contains("y (years), m (months)"), "{text:?}: {error}");
        }
    }
}

#[test]
fn parse_group_by_accepts_and_rejects() {
    use GroupKey::*;
    let label = |k: &str| Label(k.to_string());
    assert_eq!(parse_group_by(DEFAULT_GROUP_BY), Ok(vec![Host, Paths]));
    assert_eq!(parse_group_by(""), Ok(vec![]));
    assert_eq!(
        parse_group_by("host,paths,tags,label:app"),
        Ok(vec![Host, Paths, Tags, label("app")])
    );
    assert_eq!(
        parse_group_by(" tags , label:app,label:env "),
        Ok(vec![Tags, label("app"), label("env")])
    );
    let cases = [
        ("hostname", "\"hostname\" is not a group key"),
        ("host,Paths", "\"Paths\" is not a group key"),
        ("host,,paths", "has an empty entry"),
        ("label:", "names no label"),
        ("host,host", "\"host\" is given twice"),
    ];
    for (text, want) in cases {
        let error = parse_group_by(text).unwrap_err();
        assert!(error.contains(want), "{text:?}: {error}");
        if want.contains("not a group key") || want.contains("empty") {
            assert!(error.contains("host, paths, tags, label:KEY"), "{error}");
        }
    }
    let names: Vec<String> = [Host, Paths, Tags, label("app")]
        .iter()
        .map(GroupKey::name)
        .collect();
    assert_eq!(names, ["host", "paths", "tags", "label:app"]);
}

/// The example table of the README's "Retention: vault forget" section, produced by
/// `readme_example` below. Keep the two identical.
const README_EXAMPLE: &str = "\
| ID       | Time (UTC)       | Action | Reasons                                  |
|----------|------------------|--------|------------------------------------------|
| 5e1c0a77 | 2026-03-10 09:00 | keep   | last #1, daily #1, weekly #1, monthly #1 |
| 9b3d42f0 | 2026-03-09 21:00 | keep   | last #2, daily #2                        |
| c4a8e615 | 2026-03-09 09:00 | forget |                                          |
| 17f2b9d3 | 2026-03-06 09:00 | keep   | daily #3, weekly #2                      |
| e08d6c21 | 2026-03-01 09:00 | forget |                                          |
| 3a9f5e48 | 2026-02-27 09:00 | keep   | monthly #2                               |
| b61e0d9c | 2026-02-20 09:00 | forget |                                          |
| 2dc47a13 | 2026-02-13 09:00 | forget |                                          |
| f7305b6e | 2026-01-30 09:00 | forget |                                          |
| 60be1f82 | 2026-01-16 09:00 | forget |                                          |
| 8e47c3a5 | 2025-12-31 09:00 | forget |                                          |
| 0c5ad9e7 | 2025-12-01 09:00 | forget |                                          |
";

#[test]
fn readme_example() {
    #[rustfmt::skip]
    let timeline: Vec<Candidate> = [
        ("0c5ad9e7", "2025-12-01T09:00Z"), ("8e47c3a5", "2025-12-31T09:00Z"),
        ("60be1f82", "2026-01-16T09:00Z"), ("f7305b6e", "2026-01-30T09:00Z"),
        ("2dc47a13", "2026-02-13T09:00Z"), ("b61e0d9c", "2026-02-20T09:00Z"),
        ("3a9f5e48", "2026-02-27T09:00Z"), ("e08d6c21", "2026-03-01T09:00Z"),
        ("17f2b9d3", "2026-03-06T09:00Z"), ("c4a8e615", "2026-03-09T09:00Z"),
        ("9b3d42f0", "2026-03-09T21:00Z"), ("5e1c0a77", "2026-03-10T09:00Z"),
    ].iter().map(|(id, t)| candidate(id, t)).collect();
    let decisions = decide_one("last=2 daily=3 weekly=2 monthly=2", &timeline, &utc());
    let mut table = String::new();
    table.push_str(&format!(
        "| {:<8} | {:<16} | {:<6} | {:<40} |\n",
        "ID", "Time (UTC)", "Action", "Reasons"
    ));
    table.push_str(&format!(
        "|{}|{}|{}|{}|\n",
        "-".repeat(10),
        "-".repeat(18),
        "-".repeat(8),
        "-".repeat(42)
    ));
    for d in &decisions {
        table.push_str(&format!(
            "| {:<8} | {:<16} | {:<6} | {:<40} |\n",
            d.id,
            d.time.strftime("%Y-%m-%d %H:%M").to_string(),
            if d.keep { "keep" } else { "forget" },
            d.reasons.join(", ")
        ));
    }
    assert_eq!(
        table, README_EXAMPLE,
        "update README_EXAMPLE and the README"
    );
    // Once the section is in the README, it must show this very table.
    let readme_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    if let Ok(readme) = std::fs::read_to_string(readme_path) {
        if readme.contains("## Retention: vault forget") {
            assert!(
                readme.contains(README_EXAMPLE),
                "README.md's retention example differs from README_EXAMPLE"
            );
        }
    }
}

#[test]
fn posix_berlin_matches_the_tzdb() {
    // Only where the system has a tzdb; the other tests never need one.
    let Ok(iana) = jiff::tz::db().get("Europe/Berlin") else {
        return;
    };
    let posix = berlin();
    let mut time = at("2020-01-01T00:00Z");
    while time < at("2028-01-01T00:00Z") {
        assert_eq!(
            posix.to_offset(time),
            iana.to_offset(time),
            "offset at {time}"
        );
        time = time.checked_add(minutes(30)).unwrap();
    }
}
