//! `vault ls SNAPSHOT[:PATH]`.

use anyhow::Result;
use vault_engine::browse::{self, EntryInfo, LsOptions};

use crate::args::{Cli, LsArgs};
use crate::convert;
use crate::exit;
use crate::output::{self, outln};

pub fn run(cli: &Cli, args: &LsArgs) -> Result<i32> {
    let repo = super::open(cli, false)?;
    let (wanted, path) = super::split_snapshot_arg(&args.snapshot);
    let snapshot = repo.find_snapshot(wanted, &convert::filter(&args.filter))?;
    let options = LsOptions {
        path: path.unwrap_or("/").to_string(),
        recursive: args.recursive,
    };
    let report = browse::ls(&repo, &snapshot, &options)?;
    if cli.json {
        output::print_report(&report)?;
        return Ok(exit::OK);
    }
    for entry in &report.entries {
        if args.long {
            outln!("{}", long_line(entry))?;
        } else {
            outln!("{}", entry.path)?;
        }
    }
    Ok(exit::OK)
}

/// `drwxr-xr-x  user  group  4096  2026-12-07 14:59:32  /path -> target`, as `ls -l` shows it.
pub fn long_line(entry: &EntryInfo) -> String {
    let target = entry
        .target
        .as_ref()
        .map(|t| format!(" -> {t}"))
        .unwrap_or_default();
    format!(
        "{}  {:>8} {:>8}  {:>12}  {}  {}{}",
        mode_string(entry.kind, entry.mode),
        owner(&entry.user, entry.uid),
        owner(&entry.group, entry.gid),
        entry.size,
        short_time(&entry.mtime),
        entry.path,
        target
    )
}

fn owner(name: &str, id: u32) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        name.to_string()
    }
}

/// An RFC 3339 time to the second, with a space for the `T`.
pub fn short_time(time: &str) -> String {
    time.get(..19).unwrap_or(time).replacen('T', " ", 1)
}

/// `ls -l`'s mode column: the type and the nine permission bits with setuid, setgid, sticky.
pub fn mode_string(kind: &str, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        "dir" => 'd',
        "symlink" => 'l',
        "fifo" => 'p',
        "chardev" => 'c',
        "blockdev" => 'b',
        _ => '-',
    });
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, (bit, set, unset)) in special.iter().enumerate() {
        let shift = 6 - 3 * i;
        let rwx = (mode >> shift) & 7;
        s.push(if rwx & 4 != 0 { 'r' } else { '-' });
        s.push(if rwx & 2 != 0 { 'w' } else { '-' });
        s.push(match (rwx & 1 != 0, mode & bit != 0) {
            (true, true) => *set,
            (false, true) => *unset,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}
