//! Exit codes and the one-line rendering of errors.

use std::path::Path;

use vault_engine::{Error, ErrorKind};

use crate::output::errln;

pub const OK: i32 = 0;
pub const ERROR: i32 = 1;
pub const USAGE: i32 = 2;
pub const PROBLEMS: i32 = 3;
/// Another vault process holds a lock the command needs (a prune is running).
pub const BUSY: i32 = 4;
/// The reader of stdout closed the pipe (`vault list | head -1`): the command stopped quietly,
/// with the status a shell shows for a process killed by SIGPIPE (128 + 13).
pub const BROKEN_PIPE: i32 = 141;

/// The repository `path` is a file of: the nearest ancestor holding a `config` file and a
/// `packs` directory.
fn repository_of(path: &Path) -> Option<&Path> {
    path.ancestors()
        .skip(1)
        .find(|dir| dir.join("config").is_file() && dir.join("packs").is_dir())
}

/// What to do about a full disk, for the device that is full: the repository's (a failed write
/// commits nothing there) or another one (a restore target).
fn no_space_hint(path: &Path) -> String {
    match repository_of(path) {
        Some(repo) => format!(
            ": no space left on the device of repository {}; nothing was committed and its snapshots are intact; free space there (`vault prune` deletes data that failed runs left) and run the command again",
            repo.display()
        ),
        None => ": no space left on the device holding this path; free space there and run the command again".into(),
    }
}

/// Prints `vault: <what>` (with a hint where one helps) and returns the exit code.
pub fn report(error: &anyhow::Error) -> i32 {
    if crate::output::stdout_closed() {
        return BROKEN_PIPE;
    }
    let engine = error.chain().find_map(|c| c.downcast_ref::<Error>());
    // Engine errors already name their cause; anyhow's chain would repeat it.
    let mut line = match engine {
        Some(e) if error.downcast_ref::<Error>().is_some() => format!("vault: {e}"),
        _ => format!("vault: {error:#}"),
    };
    if let Some(Error::Io { path, .. }) = engine.filter(|e| e.is_no_space()) {
        line.push_str(&no_space_hint(path));
    }
    errln!("{line}");
    match engine.map(Error::kind) {
        Some(ErrorKind::Usage) => USAGE,
        Some(ErrorKind::Busy) => BUSY,
        Some(ErrorKind::Damaged) => PROBLEMS,
        _ => ERROR,
    }
}
