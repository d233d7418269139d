//! This host and its processes: the host name, the boot, a process's start time, and whether a
//! process recorded earlier (in a lock, a writer registration or a temporary object's name)
//! certainly no longer runs.
//!
//! Only the host that recorded a process can judge it: a record from another host, or one made
//! where the boot could not be told, counts as alive.

/// The host name (the `nodename` of uname(2), which is what gethostname(2) returns).
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// `/proc/sys/kernel/random/boot_id` ("" where unknown).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Start time of process `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22), so that
/// a reused process id is not mistaken for the process recorded; `None` when no such process.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True only when the process recorded as (`host`, `boot`, `pid`, `ticks`) certainly no longer
/// runs: it was recorded on this host, and either the host has rebooted since or the process id
/// is gone (or belongs to another process now). `boot` "" and `ticks` 0 mean unknown.
pub fn is_dead(host: &str, boot: &str, pid: u32, ticks: u64) -> bool {
    dead(
        host == hostname(),
        (!boot.is_empty()).then(|| boot == boot_id()),
        pid,
        ticks,
    )
}

/// The judgement behind [`is_dead`] and [`ProcessTag::is_dead`]; `same_boot` is `None` when the
/// record's boot is unknown.
fn dead(same_host: bool, same_boot: Option<bool>, pid: u32, ticks: u64) -> bool {
    match (same_host, same_boot) {
        (false, _) | (_, None) => false,
        (true, Some(false)) => true,
        (true, Some(true)) => match start_ticks(pid) {
            None => true,
            Some(now) => ticks != 0 && now != ticks,
        },
    }
}

/// The part of a temporary object's name that tells which process made it:
/// `<host digest 8 hex><boot digest 8 hex>-<pid>-<start ticks>`. Digests, not the names, so that
/// the tag is short and always a valid file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessTag {
    host: String,
    boot: String,
    pid: u32,
    ticks: u64,
}

/// The boot part of a tag made where the boot id could not be read.
const UNKNOWN_BOOT: &str = "00000000";

fn digest8(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..8].to_string()
}

impl ProcessTag {
    /// The tag of this process.
    pub fn current() -> ProcessTag {
        let pid = std::process::id();
        let boot = boot_id();
        ProcessTag {
            host: digest8(&hostname()),
            boot: if boot.is_empty() {
                UNKNOWN_BOOT.into()
            } else {
                digest8(&boot)
            },
            pid,
            ticks: start_ticks(pid).unwrap_or(0),
        }
    }

    /// `<host><boot>-<pid>-<ticks>`.
    pub fn encode(&self) -> String {
        format!("{}{}-{}-{}", self.host, self.boot, self.pid, self.ticks)
    }

    /// Reads a tag from the start of `text` (the rest of a temporary name after the prefix).
    pub fn decode(text: &str) -> Option<ProcessTag> {
        let mut parts = text.splitn(4, '-');
        let ids = parts.next()?;
        let pid = parts.next()?.parse().ok()?;
        let ticks = parts.next()?.parse().ok()?;
        if ids.len() != 16 || !ids.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(ProcessTag {
            host: ids[..8].into(),
            boot: ids[8..].into(),
            pid,
            ticks,
        })
    }

    /// True only when the tagged process certainly no longer runs (see [`is_dead`]).
    pub fn is_dead(&self) -> bool {
        dead(
            self.host == digest8(&hostname()),
            (self.boot != UNKNOWN_BOOT).then(|| self.boot == digest8(&boot_id())),
            self.pid,
            self.ticks,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_round_trip_and_liveness() {
        let me = ProcessTag::current();
        let text = format!("{}-0123456789abcdef", me.encode());
        assert_eq!(ProcessTag::decode(&text), Some(me.clone()));
        assert!(!me.is_dead(), "this process is alive");
        let gone = ProcessTag {
            pid: u32::MAX - 1,
            ..me.clone()
        };
        if me.boot != UNKNOWN_BOOT {
            assert!(gone.is_dead(), "no process has that id");
        }
        let elsewhere = ProcessTag {
            host: "ffffffff".into(),
            pid: u32::MAX - 1,
            ..me
        };
        assert!(
            !elsewhere.is_dead(),
            "another host's process is never judged"
        );
        assert_eq!(ProcessTag::decode("0123456789abcdef"), None);
        assert_eq!(ProcessTag::decode("zz-1-2-x"), None);
    }
}
