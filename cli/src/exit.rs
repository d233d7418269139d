//! Exit codes and the one-line rendering of errors.

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
    if engine.is_some_and(Error::is_no_space) {
        line.push_str(": no space left on the repository's device; free space and run the command again (the repository is unchanged)");
    }
    eprintln!("{line}");
    match engine.map(Error::kind) {
        Some(ErrorKind::Usage) => USAGE,
        Some(ErrorKind::Busy) => BUSY,
        _ => ERROR,
    }
}
