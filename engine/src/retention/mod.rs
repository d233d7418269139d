//! Retention policies: which snapshots `vault forget` keeps, and why. Pure: no I/O, no clock.
//!
//! Input: a [`Policy`], the `--group-by` keys, the candidate snapshots and the time zone the
//! buckets are computed in. Output: one [`Group`] per distinct group key (sorted by key), each
//! listing every member snapshot newest first with its [`Decision`]: kept or not, and every
//! reason it is kept. The caller (`forget`) writes the markers; this module decides only.
//!
//! # Semantics (restic's `forget`, with the differences listed at the end)
//!
//! 1. **Groups.** Snapshots are partitioned by the [`GroupKey`]s: `host` (host name), `paths`
//!    (the sorted paths, shown joined with `,`), `tags` (the sorted tags, shown joined with `,`),
//!    `label:KEY` (the label's value, `""` when absent). No keys: one group. The policy is
//!    applied to each group on its own.
//! 2. **Order.** Within a group snapshots are walked newest first; equal times are ordered by
//!    id (ascending), so the result never depends on input order.
//! 3. **Buckets.** Each count policy has a bucket function, evaluated on the snapshot's civil
//!    time in the given zone:
//!    `last` — every snapshot is its own bucket; `hourly` — (date, hour); `daily` — date;
//!    `weekly` — ISO 8601 week (ISO week-year, week number), so 2024-12-31 is in 2025-W01 and
//!    2026-12-28..2027-01-03 is 2026-W53; `monthly` — (year, month); `yearly` — year.
//!    Across a fall-back transition the repeated local hour is one hourly bucket; a skipped
//!    (spring-forward) hour has no snapshots and so no bucket.
//! 4. **Counting.** Each count policy with N > 0 keeps a remaining count (initially N) and the
//!    bucket of the last snapshot it kept. A snapshot whose bucket differs from that bucket,
//!    while the count is above zero, is kept with reason `"<policy> #k"` (k = 1, 2, ...) and
//!    the count drops by one. Walking newest first, this keeps the newest snapshot of each of
//!    the N newest buckets *that contain a snapshot*: empty buckets do not use up the count.
//! 5. **`within`.** A snapshot is kept (reason `"within <text as given>"`) when its time is
//!    strictly after the cutoff: the group's newest snapshot time minus the duration, computed
//!    in the zone — years and months in the civil calendar (a day past the month's end is
//!    clamped: 2024-03-31 minus `1m` is 2024-02-29), then weeks and days as civil days (23 or
//!    25 hours across a DST change), then hours as elapsed hours. A cutoff before the
//!    representable range keeps every snapshot.
//! 6. **Tags.** A snapshot carrying any tag listed in the policy is kept, reason `"tag NAME"`
//!    for each listed tag it carries.
//! 7. **Protected.** A protected snapshot is always kept, reason `"protected"`, and is kept
//!    apart: it takes no part in rule 4, so it never fills a bucket slot (a protected manual
//!    backup does not push the newest daily out of `--keep-daily`).
//! 8. Tag-kept and within-kept snapshots still take part in rule 4 like any other snapshot:
//!    they can fill a bucket slot (as restic's `--keep-tag` does).
//! 9. A snapshot is kept if it has at least one reason; reasons are listed in the order
//!    protected, tags, within, last, hourly, daily, weekly, monthly, yearly.
//!
//! A count of 0 is the same as not giving the option; a [`Policy`] with no count, no `within`
//! and no tag [`is_empty`](Policy::is_empty) and `forget` must refuse it.
//!
//! Differences from restic (0.16+): restic also keeps the group's *oldest* snapshot while a
//! count has slots left, we do not (empty buckets simply do not count); restic takes the newest
//! snapshot not in the future as the `within` reference, we take the newest, full stop (no
//! clock); restic's month arithmetic overflows into the next month (March 31 minus 1 month is
//! March 2/3), ours clamps; restic computes buckets in each snapshot's recorded UTC offset, we
//! use one zone for all; `within` also accepts weeks (`w`); `--keep-tag a,b` (all of a list)
//! does not exist, each tag is its own reason.
//!
//! Invariant relied on: bucket values never decrease as time increases, as long as a
//! zone's backward transitions stay inside one date (ordinary DST: the repeated hour), so
//! "differs from the last kept bucket" is the same as "first snapshot of a new bucket".

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

/// One snapshot as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Hex snapshot id; also the tie-breaker between snapshots with equal times.
    pub id: String,
    pub time: Timestamp,
    pub host: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub protected: bool,
}

/// One component of `--group-by`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKey {
    Host,
    Paths,
    Tags,
    /// `label:KEY`: the value of label KEY, `""` when the snapshot has no such label.
    Label(String),
}

/// The `--group-by` value used when the option is not given.
pub const DEFAULT_GROUP_BY: &str = "host,paths";

const GROUP_BY_CHOICES: &str =
    "host, paths, tags, label:KEY, comma-separated (e.g. host,paths), or \"\" for one group";

impl GroupKey {
    /// The name shown in a [`Group`]'s key: `host`, `paths`, `tags` or `label:KEY`.
    pub fn name(&self) -> String {
        match self {
            GroupKey::Host => "host".to_string(),
            GroupKey::Paths => "paths".to_string(),
            GroupKey::Tags => "tags".to_string(),
            GroupKey::Label(key) => format!("label:{key}"),
        }
    }

    /// The structured value snapshots are grouped by (sorted lists stay lists, so a path that
    /// contains a comma cannot merge two groups).
    /// [`Self::value`] of a snapshot's manifest (`restore --latest-per`).
    pub fn value_of(&self, manifest: &crate::format::manifest::Manifest) -> Vec<String> {
        match self {
            GroupKey::Host => vec![manifest.host.clone()],
            GroupKey::Paths => sorted(&manifest.paths),
            GroupKey::Tags => sorted(&manifest.tags),
            GroupKey::Label(key) => vec![manifest.labels.get(key).cloned().unwrap_or_default()],
        }
    }

    fn value(&self, candidate: &Candidate) -> Vec<String> {
        match self {
            GroupKey::Host => vec![candidate.host.clone()],
            GroupKey::Paths => sorted(&candidate.paths),
            GroupKey::Tags => sorted(&candidate.tags),
            GroupKey::Label(key) => vec![candidate.labels.get(key).cloned().unwrap_or_default()],
        }
    }
}

fn sorted(list: &[String]) -> Vec<String> {
    let mut list = list.to_vec();
    list.sort();
    list
}

/// Parses `--group-by`: comma-separated `host`, `paths`, `tags`, `label:KEY`, in the order
/// given (the order of a [`Group`]'s key). Blank means one group for all snapshots.
/// Entries are trimmed; an unknown, empty or repeated entry is an error naming it.
pub fn parse_group_by(text: &str) -> Result<Vec<GroupKey>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut keys = Vec::new();
    for part in text.split(',').map(str::trim) {
        let key = match part {
            "host" => GroupKey::Host,
            "paths" => GroupKey::Paths,
            "tags" => GroupKey::Tags,
            "" => {
                return Err(format!(
                    "{text:?} has an empty entry; use {GROUP_BY_CHOICES}"
                ))
            }
            _ => match part.strip_prefix("label:").map(str::trim) {
                Some("") => {
                    return Err(format!(
                        "{part:?} names no label; write label:KEY, e.g. label:app"
                    ))
                }
                Some(label) => GroupKey::Label(label.to_string()),
                None => {
                    return Err(format!(
                        "{part:?} is not a group key; use {GROUP_BY_CHOICES}"
                    ))
                }
            },
        };
        if keys.contains(&key) {
            return Err(format!("{part:?} is given twice in {text:?}"));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// A `--keep-within` duration: the calendar span and the text the user wrote (echoed in
/// reasons). Only [`parse_within`] makes one, so it is never zero.
#[derive(Debug, Clone)]
pub struct Within {
    span: Span,
    text: String,
}

const WITHIN_UNITS: &str =
    "write NUMBER+UNIT pairs with units y (years), m (months), w (weeks), d (days), h (hours), e.g. 30d, 2w, 1y6m";

impl Within {
    pub fn span(&self) -> Span {
        self.span
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The exclusive lower bound for snapshots kept relative to `newest` (rule 5 of the
    /// module docs); `None` when it lies before the representable range (keep everything).
    pub fn cutoff(&self, newest: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        newest
            .to_zoned(tz.clone())
            .checked_sub(self.span)
            .ok()
            .map(|z| z.timestamp())
    }
}

impl fmt::Display for Within {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses `--keep-within`: one or more NUMBER+UNIT pairs, units `y m w d h` (m = months), each
/// unit at most once, e.g. `30d`, `2w`, `12h`, `1y6m`, `1y2m3d4h`. Empty, zero, signed,
/// fractional and unknown-unit durations are errors (one line, naming the valid units).
pub fn parse_within(text: &str) -> Result<Within, String> {
    if text.is_empty() {
        return Err(format!("empty duration; {WITHIN_UNITS}"));
    }
    let mut span = Span::new();
    let mut seen = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let Some(unit) = rest[digits..].chars().next() else {
            return Err(format!(
                "{text:?}: {:?} has no unit; {WITHIN_UNITS}",
                &rest[..digits]
            ));
        };
        if digits == 0 {
            return Err(format!(
                "{text:?}: expected a number before {unit:?}; {WITHIN_UNITS}"
            ));
        }
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: {} is too large", &rest[..digits]))?;
        if seen.contains(unit) {
            return Err(format!(
                "{text:?}: unit {unit:?} is given twice; {WITHIN_UNITS}"
            ));
        }
        span = match unit {
            'y' => span.try_years(number),
            'm' => span.try_months(number),
            'w' => span.try_weeks(number),
            'd' => span.try_days(number),
            'h' => span.try_hours(number),
            _ => return Err(format!("{text:?}: unknown unit {unit:?}; {WITHIN_UNITS}")),
        }
        .map_err(|_| format!("{text:?}: {number}{unit} is too large"))?;
        seen.push(unit);
        rest = &rest[digits + unit.len_utf8()..];
    }
    if span.is_zero() {
        return Err(format!(
            "{text:?} is zero, which keeps nothing; {WITHIN_UNITS}"
        ));
    }
    Ok(Within {
        span,
        text: text.to_string(),
    })
}

/// What `vault forget` keeps (see the module docs for the exact semantics).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    pub within: Option<Within>,
    pub tags: Vec<String>,
}

impl Policy {
    /// True when no `--keep-*` option would keep anything (counts absent or 0, no `within`,
    /// no tags): applying it would forget every unprotected snapshot, so `forget` refuses it.
    pub fn is_empty(&self) -> bool {
        Rule::ALL.iter().all(|&rule| self.count(rule) == 0)
            && self.within.is_none()
            && self.tags.is_empty()
    }

    fn count(&self, rule: Rule) -> u32 {
        let count = match rule {
            Rule::Last => self.last,
            Rule::Hourly => self.hourly,
            Rule::Daily => self.daily,
            Rule::Weekly => self.weekly,
            Rule::Monthly => self.monthly,
            Rule::Yearly => self.yearly,
        };
        count.unwrap_or(0)
    }
}

/// One snapshot's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: String,
    pub time: Timestamp,
    /// Whether any rule keeps it; always `!reasons.is_empty()`.
    pub keep: bool,
    /// Why it is kept, e.g. `protected`, `tag manual`, `within 30d`, `last #1`, `daily #3`.
    pub reasons: Vec<String>,
}

/// The snapshots sharing one group key, and their fates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// (key name, value) per `--group-by` key, in the order given, e.g.
    /// `[("host", "db1"), ("paths", "/srv/cms"), ("label:app", "website")]`; empty for one group.
    pub key: Vec<(String, String)>,
    /// Every member, newest first (ties by id).
    pub decisions: Vec<Decision>,
}

/// A [`Group`]'s key: (key name, value) pairs.
type ShownKey = Vec<(String, String)>;

/// Applies `policy` to each group of `snapshots` (grouped by `group_by`), with buckets in `tz`.
/// Groups come sorted by key; every input snapshot appears in exactly one group.
pub fn apply(
    policy: &Policy,
    group_by: &[GroupKey],
    snapshots: &[Candidate],
    tz: &TimeZone,
) -> Vec<Group> {
    // Sorted by the shown key first; the structured value only separates groups whose shown
    // keys coincide (a path containing a comma).
    let mut groups: BTreeMap<(ShownKey, Vec<Vec<String>>), Vec<&Candidate>> = BTreeMap::new();
    for candidate in snapshots {
        let values: Vec<Vec<String>> = group_by.iter().map(|k| k.value(candidate)).collect();
        let shown = group_by
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.name(), v.join(",")))
            .collect();
        groups.entry((shown, values)).or_default().push(candidate);
    }
    groups
        .into_iter()
        .map(|((key, _), mut members)| {
            members.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.id.cmp(&b.id)));
            Group {
                key,
                decisions: decide(policy, &members, tz),
            }
        })
        .collect()
}

/// The module docs' rules 4 to 9 for one group, `members` newest first.
fn decide(policy: &Policy, members: &[&Candidate], tz: &TimeZone) -> Vec<Decision> {
    let within = match (&policy.within, members.first()) {
        (Some(within), Some(newest)) => Some((within, within.cutoff(newest.time, tz))),
        _ => None,
    };
    let mut counters: Vec<Counter> = Rule::ALL
        .iter()
        .map(|&rule| Counter {
            rule,
            left: policy.count(rule),
            kept: 0,
            last: None,
        })
        .filter(|c| c.left > 0)
        .collect();
    let mut decisions = Vec::with_capacity(members.len());
    for (index, candidate) in members.iter().enumerate() {
        let mut reasons = Vec::new();
        if candidate.protected {
            reasons.push("protected".to_string());
        }
        for (i, tag) in policy.tags.iter().enumerate() {
            if candidate.tags.contains(tag) && !policy.tags[..i].contains(tag) {
                reasons.push(format!("tag {tag}"));
            }
        }
        if let Some((within, cutoff)) = within {
            if cutoff.is_none_or(|cutoff| candidate.time > cutoff) {
                reasons.push(format!("within {within}"));
            }
        }
        // Rule 7: a protected snapshot is kept apart from the counts.
        if !candidate.protected {
            let local = tz.to_datetime(candidate.time);
            for counter in counters.iter_mut().filter(|c| c.left > 0) {
                let bucket = counter.rule.bucket(index, local);
                if counter.last != Some(bucket) {
                    counter.last = Some(bucket);
                    counter.left -= 1;
                    counter.kept += 1;
                    reasons.push(format!("{} #{}", counter.rule.name(), counter.kept));
                }
            }
        }
        decisions.push(Decision {
            id: candidate.id.clone(),
            time: candidate.time,
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    decisions
}

/// A count policy (`--keep-last`, `--keep-hourly`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Rule {
    /// In reason order.
    const ALL: [Rule; 6] = [
        Rule::Last,
        Rule::Hourly,
        Rule::Daily,
        Rule::Weekly,
        Rule::Monthly,
        Rule::Yearly,
    ];

    fn name(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
        }
    }

    /// The bucket of the `index`-th newest snapshot of its group, whose civil time is `local`.
    fn bucket(self, index: usize, local: DateTime) -> Bucket {
        let date = local.date();
        match self {
            Rule::Last => Bucket::Snapshot(index),
            Rule::Hourly => Bucket::Hour(date, local.hour()),
            Rule::Daily => Bucket::Day(date),
            Rule::Weekly => {
                let week = date.iso_week_date();
                Bucket::Week(week.year(), week.week())
            }
            Rule::Monthly => Bucket::Month(date.year(), date.month()),
            Rule::Yearly => Bucket::Year(date.year()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Snapshot(usize),
    Hour(Date, i8),
    Day(Date),
    /// ISO week-year and week number (1..=53).
    Week(i16, i8),
    Month(i16, i8),
    Year(i16),
}

struct Counter {
    rule: Rule,
    left: u32,
    kept: u32,
    last: Option<Bucket>,
}

#[cfg(test)]
mod tests;
