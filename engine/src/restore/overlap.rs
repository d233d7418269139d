//! Warnings for a restore target that lies inside a source of the snapshot (the next snapshot
//! of that source would hold the restored copy too) or inside the repository.

use std::fs;
use std::path::{Path, PathBuf};

use crate::repo::{Repository, SnapshotInfo};

/// `path` made absolute and lexically normal, with the longest existing prefix resolved
/// (symlinks included), so that two names of one directory compare equal.
fn resolved(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    let mut normal = PathBuf::from("/");
    for c in absolute.components() {
        match c {
            std::path::Component::Normal(n) => normal.push(n),
            std::path::Component::ParentDir => {
                normal.pop();
            }
            _ => {}
        }
    }
    let mut rest = Vec::new();
    let mut base = normal.as_path();
    loop {
        if let Ok(real) = fs::canonicalize(base) {
            let mut out = real;
            out.extend(rest.iter().rev());
            return Some(out);
        }
        rest.push(base.file_name()?.to_os_string());
        base = base.parent()?;
    }
}

/// Warnings for a target inside a source path of `snapshot` (when it was taken on this host:
/// the next snapshot would hold the restored copy too) or inside the repository.
pub(super) fn overlaps(repo: &Repository, snapshot: &SnapshotInfo, target: &Path) -> Vec<String> {
    let Some(target_real) = resolved(target) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if snapshot.manifest.host == crate::host::hostname() {
        for source in &snapshot.manifest.sources {
            if source.kind != "path" {
                continue;
            }
            let inside =
                resolved(Path::new(&source.path)).is_some_and(|s| target_real.starts_with(&s));
            if inside {
                out.push(format!(
                    "{}: the target is inside {}, a source of snapshot {}; the next snapshot of it will hold the restored copy too",
                    target.display(),
                    source.path,
                    snapshot.id.short()
                ));
            }
        }
    }
    let location = repo.location();
    if location.starts_with('/') {
        let inside = resolved(Path::new(&location)).is_some_and(|r| target_real.starts_with(&r));
        if inside {
            out.push(format!(
                "{}: the target is inside the repository {location}; restore somewhere else",
                target.display()
            ));
        }
    }
    out
}
