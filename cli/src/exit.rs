//! Exit codes and the one-line rendering of errors.

use std::path::Path;

use vault_engine::{Error, ErrorKind};

pub const OK: i32 = 0;
pub const ERROR: i32 = 1;
pub const USAGE: i32 = 2;
pub const PROBLEMS: i32 = 3;
/// Another vault process holds a lock the command needs (a prune is running).
pub const BUSY: i32 = 4;

/// Whether the error is a closed output pipe (`vault dump ... | head`).
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(cause.downcast_ref::<Error>(), Some(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

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
    if is_broken_pipe(error) {
        return ERROR;
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
    eprintln!("{line}");
    match engine.map(Error::kind) {
        Some(ErrorKind::Usage) => USAGE,
        Some(ErrorKind::Busy) => BUSY,
        Some(ErrorKind::Damaged) => PROBLEMS,
        _ => ERROR,
    }
}
