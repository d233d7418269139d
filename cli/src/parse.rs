//! Argument text -> values: the value parsers that `args.rs` names in its clap attributes.

use vault_engine::Compression;

/// Parses `4096`, `64KiB`, `1MiB`, `64K`, `1M`, `1G` (binary units).
pub fn parse_size(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 64KiB or 1MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    u32::try_from(number * factor).map_err(|_| format!("{text:?} is too large"))
}

pub fn parse_compression(text: &str) -> Result<Compression, String> {
    let compression = match text {
        "none" => Compression::None,
        _ => {
            let level = text
                .strip_prefix("zstd:")
                .or_else(|| (text == "zstd").then_some("3"))
                .ok_or_else(|| format!("{text:?}: use zstd:LEVEL or none"))?;
            Compression::Zstd {
                level: level
                    .parse()
                    .map_err(|_| format!("{level:?} is not a zstd level"))?,
            }
        }
    };
    compression.validate()?;
    Ok(compression)
}

pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?}: labels are KEY=VALUE")),
    }
}

/// A label key alone (`vault label --remove KEY`): what [`parse_label`] accepts before the `=`.
pub fn parse_label_key(text: &str) -> Result<String, String> {
    match vault_engine::format::manifest::label_key_problem(text) {
        None => Ok(text.to_string()),
        Some(problem) => Err(format!("{text:?}: {problem}; give the KEY of KEY=VALUE")),
    }
}

pub fn parse_command(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, command)) if !name.is_empty() && !command.trim().is_empty() => {
            Ok((name.to_string(), command.to_string()))
        }
        _ => Err(format!(
            "{text:?}: use NAME=COMMAND, e.g. db/website.sql='pg_dump website'"
        )),
    }
}

/// Parses `90s`, `30m`, `2h`, `1d`, `1h30m` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{text:?} is not a duration like 90s, 30m or 2h");
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
    }
    if !number.is_empty() {
        total += number.parse::<u64>().map_err(|_| bad())?;
    }
    if total == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// Parses `--read-data-subset`: `N/M` with 1 <= N <= M, or `P%` with 0 < P <= 100.
pub fn parse_subset(text: &str) -> Result<vault_engine::verify::ReadData, String> {
    use vault_engine::verify::ReadData;
    if let Some(p) = text.strip_suffix('%') {
        let p: f64 = p
            .parse()
            .map_err(|_| format!("{text:?}: use a percentage like 10%"))?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(format!("{text:?}: the percentage must be in (0, 100]"));
        }
        return Ok(ReadData::Percent(p));
    }
    let (n, m) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: use N/M (e.g. 2/7) or P% (e.g. 10%)"))?;
    let (n, m): (u64, u64) = (
        n.parse().map_err(|_| format!("{n:?} is not a number"))?,
        m.parse().map_err(|_| format!("{m:?} is not a number"))?,
    );
    if n == 0 || m == 0 || n > m {
        return Err(format!("{text:?}: need 1 <= N <= M"));
    }
    Ok(ReadData::Slice { n, m })
}

/// Parses `--read-data-budget`: a size with a byte unit (`20GiB`, `500M`, `1T`) or a duration
/// with a lower-case time unit (`90s`, `30m`, `2h`, `1d`).
pub fn parse_budget(text: &str) -> Result<vault_engine::verify::ReadData, String> {
    let t = text.trim();
    let is_duration = t.ends_with(['s', 'm', 'h', 'd']);
    if is_duration {
        return Ok(vault_engine::verify::ReadData::Budget {
            bytes: None,
            time: Some(parse_duration(t)?),
        });
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: use a size like 20GiB or a duration like 30m"))?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        "t" | "tib" | "tb" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?}: use a size like 20GiB or a duration like 30m"
            ))
        }
    };
    Ok(vault_engine::verify::ReadData::Budget {
        bytes: Some(number.saturating_mul(factor)),
        time: None,
    })
}

/// Parses a share such as `10%` (or `0.1`) into 0..=1.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("{text:?}: use a percentage like 10%"))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!(
            "{text:?}: the percentage must be between 0% and 100%"
        ));
    }
    Ok(value)
}

pub fn parse_time(text: &str) -> Result<jiff::Timestamp, String> {
    text.parse()
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))
}

/// Parses an RFC 3339 time or a date `YYYY-MM-DD` (its first instant, in UTC).
pub fn parse_time_or_date(text: &str) -> Result<jiff::Timestamp, String> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| format!("{text:?} is neither an RFC 3339 time nor a date YYYY-MM-DD"))
}

/// Parses `--size`: `+SIZE` (larger), `-SIZE` (smaller) or `SIZE` (exactly), SIZE as for
/// [`parse_size_u64`].
pub fn parse_size_filter(text: &str) -> Result<vault_engine::browse::SizeFilter, String> {
    use vault_engine::browse::SizeFilter;
    let t = text.trim();
    if let Some(rest) = t.strip_prefix('+') {
        Ok(SizeFilter::Larger(parse_size_u64(rest)?))
    } else if let Some(rest) = t.strip_prefix('-') {
        Ok(SizeFilter::Smaller(parse_size_u64(rest)?))
    } else {
        Ok(SizeFilter::Exactly(parse_size_u64(t)?))
    }
}

/// Parses `4096`, `64KiB`, `10MiB`, `2GiB`, `1TiB` (binary units) into bytes.
pub fn parse_size_u64(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 512, 64KiB or 10MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        "t" | "tib" | "tb" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use KiB, MiB, GiB or TiB)"
            ))
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("8GiB").is_err());
    }

    #[test]
    fn durations_and_commands() {
        assert_eq!(
            parse_duration("90s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("1h30m"),
            Ok(std::time::Duration::from_secs(5400))
        );
        assert_eq!(parse_duration("45"), Ok(std::time::Duration::from_secs(45)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(
            parse_command("db/x.sql=pg_dump -Fp x"),
            Ok(("db/x.sql".into(), "pg_dump -Fp x".into()))
        );
        assert!(parse_command("=true").is_err());
    }

    #[test]
    fn budgets() {
        use vault_engine::verify::ReadData;
        assert_eq!(
            parse_budget("20GiB"),
            Ok(ReadData::Budget {
                bytes: Some(20 << 30),
                time: None
            })
        );
        assert_eq!(
            parse_budget("500M"),
            Ok(ReadData::Budget {
                bytes: Some(500 << 20),
                time: None
            })
        );
        assert_eq!(
            parse_budget("30m"),
            Ok(ReadData::Budget {
                bytes: None,
                time: Some(std::time::Duration::from_secs(1800))
            })
        );
        assert!(parse_budget("lots").is_err());
    }

    #[test]
    fn size_filters_and_dates() {
        use vault_engine::browse::SizeFilter;
        assert_eq!(
            parse_size_filter("+10MiB"),
            Ok(SizeFilter::Larger(10 << 20))
        );
        assert_eq!(parse_size_filter("-1k"), Ok(SizeFilter::Smaller(1024)));
        assert_eq!(parse_size_filter("5"), Ok(SizeFilter::Exactly(5)));
        assert!(parse_size_filter("+lots").is_err());
        assert_eq!(
            parse_time_or_date("2026-12-01").map(|t| t.to_string()),
            Ok("2026-12-01T00:00:00Z".into())
        );
        assert!(parse_time_or_date("yesterday").is_err());
    }

    #[test]
    fn compression() {
        assert_eq!(
            parse_compression("zstd:3"),
            Ok(Compression::Zstd { level: 3 })
        );
        assert_eq!(parse_compression("none"), Ok(Compression::None));
        assert!(parse_compression("zstd:99").is_err());
        assert!(parse_compression("gzip").is_err());
    }
}
