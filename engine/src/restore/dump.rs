//! `vault dump`: one file's content to a writer, in order, with bounded memory.

use std::io::Write;

use crate::error::{Error, Result};
use crate::format::tree::EntryKind;
use crate::repo::{content, lookup_path, Repository, SnapshotInfo};

/// Writes the content of the regular file at `path` in `snapshot` to `out`. Returns its size.
/// Each chunk's digest is checked before its bytes are written.
pub fn dump(
    repo: &Repository,
    snapshot: &SnapshotInfo,
    path: &str,
    out: &mut dyn Write,
) -> Result<u64> {
    let _reader = repo.register("dump", false)?;
    let entry = lookup_path(repo, snapshot, path)?;
    let EntryKind::File(data) = entry.kind else {
        return Err(Error::NotAFile {
            snapshot: snapshot.id.short(),
            path: path.into(),
        });
    };
    let mut written = 0u64;
    content::read_content(repo, &data, |piece| {
        out.write_all(piece)
            .map_err(|e| Error::io("standard output", e))?;
        written += piece.len() as u64;
        Ok(())
    })?;
    out.flush().map_err(|e| Error::io("standard output", e))?;
    Ok(written)
}
