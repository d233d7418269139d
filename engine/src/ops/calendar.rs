//! Cron expressions (the config's `schedule`) in the other schedule languages vault writes:
//! systemd's calendar syntax and crontab's five fields; and their next runs, with croner.
//!
//! Input: a cron expression that [`parse_schedule`] accepts. Output: the same schedule in the
//! other syntax, or one line saying why it cannot be written there with the same meaning
//! (never an approximation).

use std::process::{Command, Stdio};

use super::config::parse_schedule;
use crate::error::{Error, Result};

/// Translates a cron expression (5 fields, or 6 with seconds first; `@daily`-style names)
/// into systemd's calendar syntax with the same meaning.
pub fn to_on_calendar(expression: &str) -> std::result::Result<String, String> {
    parse_schedule(expression)?;
    let fields = fields(expression)?;
    let [second, minute, hour, day, month, weekday] = fields.each_ref();
    let cannot = |why: &str| {
        format!("{expression:?} cannot be written as a systemd calendar: {why}; write the schedule another way, or use `vault daemon` or --cron")
    };
    if day != "*" && day != "?" && weekday != "*" && weekday != "?" {
        return Err(cannot(
            "cron runs when the day of the month OR the day of the week matches, systemd when both do",
        ));
    }
    let numbers =
        |field: &str, first: u32, names: &[&str]| -> std::result::Result<String, String> {
            field
                .split(',')
                .map(|item| numeric_item(item, first, names).map_err(|e| cannot(&e)))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(|items| items.join(","))
        };
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    let date = format!(
        "*-{}-{}",
        numbers(month, 1, &MONTHS)?,
        numbers(day, 1, &[])?
    );
    let time = format!(
        "{}:{}:{}",
        numbers(hour, 0, &[])?,
        numbers(minute, 0, &[])?,
        numbers(second, 0, &[])?
    );
    let weekdays = weekdays(weekday).map_err(|e| cannot(&e))?;
    Ok(match weekdays {
        Some(days) => format!("{days} {date} {time}"),
        None => format!("{date} {time}"),
    })
}

/// The six fields (seconds first) of a cron expression.
fn fields(expression: &str) -> std::result::Result<[String; 6], String> {
    let expanded = match expression.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    let mut fields: Vec<String> = expanded
        .split_whitespace()
        .map(|f| f.to_ascii_uppercase())
        .collect();
    if fields.len() == 5 {
        fields.insert(0, "0".into());
    }
    fields
        .try_into()
        .map_err(|_| format!("{expression:?}: expected 5 or 6 fields"))
}

/// One item of a numeric field (`*`, `N`, `A-B`, `*/S`, `A/S`, `A-B/S`, or a name) in systemd
/// syntax. `first` is the field's lowest value (0 or 1).
fn numeric_item(item: &str, first: u32, names: &[&str]) -> std::result::Result<String, String> {
    let value = |text: &str| -> std::result::Result<u32, String> {
        if let Some(i) = names.iter().position(|n| *n == text) {
            return Ok(first + i as u32);
        }
        text.parse()
            .map_err(|_| format!("{item:?} is not a plain value, range or step"))
    };
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(value(step)?)),
        None => (item, None),
    };
    let range = match range {
        "*" | "?" if step.is_some() => format!("{first:02}"),
        "*" | "?" => "*".to_string(),
        _ => match range.split_once('-') {
            Some((a, b)) => format!("{:02}..{:02}", value(a)?, value(b)?),
            None => format!("{:02}", value(range)?),
        },
    };
    Ok(match step {
        Some(step) => format!("{range}/{step}"),
        None => range,
    })
}

/// The weekday field as systemd day names; `None` for every day.
fn weekdays(field: &str) -> std::result::Result<Option<String>, String> {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    if field == "*" || field == "?" {
        return Ok(None);
    }
    let day = |text: &str| -> std::result::Result<usize, String> {
        if let Some(i) = DAYS.iter().position(|d| d.eq_ignore_ascii_case(text)) {
            return Ok(i);
        }
        match text.parse::<usize>() {
            Ok(n) if n <= 7 => Ok(n % 7),
            _ => Err(format!(
                "{text:?} is not a day of the week (0-7 or SUN-SAT)"
            )),
        }
    };
    let mut chosen = [false; 7];
    for item in field.split(',') {
        if item.contains(['/', '#', 'L']) {
            return Err(format!(
                "the day-of-week item {item:?} (steps, L and # are not translated)"
            ));
        }
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, if b == "7" { 7 } else { day(b)? });
                if a > b {
                    return Err(format!("the day-of-week range {item:?} runs backwards"));
                }
                for d in a..=b {
                    chosen[d % 7] = true;
                }
            }
            None => chosen[day(item)?] = true,
        }
    }
    // systemd's week starts on Monday.
    let names: Vec<&str> = (1..=7)
        .map(|d| d % 7)
        .filter(|&d| chosen[d])
        .map(|d| DAYS[d])
        .collect();
    Ok(Some(names.join(",")))
}

/// The cron line's five fields: the expression without its seconds, which cron does not have.
pub fn to_cron_fields(expression: &str) -> std::result::Result<String, String> {
    parse_schedule(expression)?;
    let fields = fields(expression)?;
    if fields[0] != "0" {
        return Err(format!(
            "{expression:?} has a seconds field, which cron does not have; use a 5-field schedule, systemd timers, or `vault daemon`"
        ));
    }
    Ok(fields[1..].join(" ").to_ascii_lowercase())
}

/// The next `count` run times of `expression` after now (RFC 3339, local time zone).
pub fn next_runs(expression: &str, count: usize) -> Vec<String> {
    parse_schedule(expression)
        .map(|cron| {
            cron.iter_after(jiff::Zoned::now())
                .take(count)
                .map(|t| t.timestamp().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a translation with `systemd-analyze calendar` when it is installed: its next runs
/// must be croner's.
pub fn check_with_systemd(expression: &str, on_calendar: &str) -> Result<()> {
    let Ok(output) = Command::new("systemd-analyze")
        .args(["calendar", "--iterations=4", on_calendar])
        .stdin(Stdio::null())
        .output()
    else {
        return Ok(());
    };
    let failed = |reason: String| Error::ToolFailed {
        tool: "systemd-analyze calendar".into(),
        reason,
    };
    if !output.status.success() {
        return Err(failed(format!(
            "rejects OnCalendar={on_calendar} (from {expression:?}): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let theirs: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let (label, value) = l.split_once(": ")?;
            let label = label.trim();
            (label == "Next elapse" || label.starts_with("Iter.")).then(|| {
                // "Mon 2026-12-07 20:30:00 UTC": the date and time.
                value
                    .split_whitespace()
                    .skip(1)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
        .collect();
    let cron = parse_schedule(expression).map_err(|e| Error::invalid("schedule", e))?;
    let start = jiff::Zoned::now() - jiff::SignedDuration::from_secs(2);
    let ours: Vec<String> = cron
        .iter_after(start)
        .take(theirs.len() + 3)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .collect();
    let matches = (0..=3).any(|skip| {
        ours.len() >= skip + theirs.len() && ours[skip..skip + theirs.len()] == theirs[..]
    });
    if theirs.is_empty() || !matches {
        return Err(failed(format!(
            "OnCalendar={on_calendar} runs at {theirs:?}, but {expression:?} at {ours:?}; this is a bug in vault's translation: please report it, and use --cron or `vault daemon` meanwhile"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_expressions_become_systemd_calendars_with_the_same_meaning() {
        let cases = [
            ("0 2 * * *", "*-*-* 02:00:00"),
            ("30 1,13 * * 1-5", "Mon,Tue,Wed,Thu,Fri *-*-* 01,13:30:00"),
            ("*/15 * * * *", "*-*-* *:00/15:00"),
            ("0 3 1 */2 *", "*-01/2-01 03:00:00"),
            ("0 4 * * 0", "Sun *-*-* 04:00:00"),
            ("0 4 * * 7", "Sun *-*-* 04:00:00"),
            ("0 4 * * sat,sun", "Sat,Sun *-*-* 04:00:00"),
            ("*/2 * * * * *", "*-*-* *:*:00/2"),
            ("0 0 8-18/2 * * *", "*-*-* 08..18/2:00:00"),
            ("@daily", "*-*-* 00:00:00"),
            ("0 2 1 jan *", "*-01-01 02:00:00"),
        ];
        for (cron, systemd) in cases {
            assert_eq!(to_on_calendar(cron).as_deref(), Ok(systemd), "{cron}");
        }
        let error = to_on_calendar("0 2 1 * 1").unwrap_err();
        assert!(error.contains("OR"), "{error}");
        assert!(to_on_calendar("0 2 * * 5L").is_err());
    }
}
