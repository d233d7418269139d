//! Phase 1 of a snapshot, prepare: options -> the run's sources. Input: [`SnapshotOptions`].
//! Output: [`Sources`] (absolute path sources, none inside another nor inside vault's own
//! directories; where each stream goes in the tree; the manifest's source records; the parent
//! snapshot for change detection). Reads the filesystem's metadata and the repository's
//! manifests; writes nothing.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::paths::{absolute_source, stream_components};
use super::walk::Excludes;
use super::{lossy, OwnDir, SnapshotOptions};
use crate::error::{Error, Result};
use crate::format::manifest::SourceRecord;
use crate::repo::{Repository, SnapshotInfo};

/// What a run takes, and from which parent.
pub(super) struct Sources {
    /// Absolute, sorted, none inside another.
    pub paths: Vec<PathBuf>,
    /// (device, inode, what) of vault's own directories, never backed up.
    pub own_dirs: Vec<(u64, u64, &'static str)>,
    /// Where each stream goes in the tree (components from the root), in stream order.
    pub stream_places: Vec<Vec<Vec<u8>>>,
    /// The manifest's source records: streams, then paths.
    pub records: Vec<SourceRecord>,
    /// The newest snapshot of the same host and the same path sources.
    pub parent: Option<SnapshotInfo>,
}

/// Checks what the options say on their own; returns the compiled excludes.
pub(super) fn check_options(options: &SnapshotOptions) -> Result<Excludes> {
    if options.paths.is_empty() && options.streams.is_empty() {
        return Err(Error::invalid(
            "snapshot",
            "nothing to back up: give paths, --stdin or --command",
        ));
    }
    for (key, _) in &options.labels {
        if key.is_empty() || key.contains('=') {
            return Err(Error::invalid(
                format!("label {key:?}"),
                "labels are KEY=VALUE with a non-empty KEY",
            ));
        }
    }
    let excludes = Excludes::new(&options.excludes).map_err(|e| Error::invalid("--exclude", e))?;
    Ok(excludes)
}

/// Resolves the sources of `options` and finds the parent snapshot of `host`.
pub(super) fn sources(repo: &Repository, options: &SnapshotOptions, host: &str) -> Result<Sources> {
    // Sources: absolute, existing, and none inside another.
    let mut paths: Vec<PathBuf> = Vec::new();
    for p in &options.paths {
        let abs = absolute_source(p)?;
        fs::symlink_metadata(&abs).map_err(|e| Error::io(&abs, e))?;
        paths.push(abs);
    }
    paths.sort();
    paths.dedup();
    let paths: Vec<PathBuf> = paths
        .iter()
        .filter(|p| !paths.iter().any(|q| q != *p && p.starts_with(q)))
        .cloned()
        .collect();
    let own_dirs: Vec<(u64, u64, &'static str)> = options
        .own_dirs
        .iter()
        .filter_map(|d| {
            let stat = fs::metadata(&d.path).ok()?;
            Some((stat.dev(), stat.ino(), d.what))
        })
        .collect();
    for p in &paths {
        refuse_source_inside_own_dir(p, &options.own_dirs, &own_dirs)?;
    }
    let mut stream_places = Vec::new();
    for s in &options.streams {
        stream_places.push(stream_components(&s.name)?);
    }

    let mut records: Vec<SourceRecord> = Vec::new();
    for (s, parts) in options.streams.iter().zip(&stream_places) {
        let path = format!(
            "/{}",
            parts
                .iter()
                .map(|p| String::from_utf8_lossy(p))
                .collect::<Vec<_>>()
                .join("/")
        );
        records.push(SourceRecord {
            kind: s.kind.into(),
            path,
            command: s.command.clone(),
        });
    }
    for p in &paths {
        records.push(SourceRecord {
            kind: "path".into(),
            path: lossy(p),
            command: None,
        });
    }
    let path_list: Vec<String> = paths.iter().map(|p| lossy(p)).collect();

    // Parent: the newest snapshot of the same host and the same path sources.
    let parent = if paths.is_empty() {
        None
    } else {
        let (all, _) = repo.snapshots()?;
        all.into_iter().rev().find(|s| {
            let mut theirs: Vec<&String> = s
                .manifest
                .sources
                .iter()
                .filter(|r| r.kind == "path")
                .map(|r| &r.path)
                .collect();
            theirs.sort();
            s.manifest.host == host && theirs == path_list.iter().collect::<Vec<_>>()
        })
    };
    Ok(Sources {
        paths,
        own_dirs,
        stream_places,
        records,
        parent,
    })
}

/// Refuses a source that lies inside one of vault's own directories (`own`, with their
/// `(device, inode)` in `stats`): a repository is never backed up into itself. The source
/// itself is compared by `lstat` (it is not followed), its ancestors by `stat`.
fn refuse_source_inside_own_dir(
    source: &Path,
    own: &[OwnDir],
    stats: &[(u64, u64, &'static str)],
) -> Result<()> {
    for (depth, dir) in source.ancestors().enumerate() {
        let stat = if depth == 0 {
            fs::symlink_metadata(dir)
        } else {
            fs::metadata(dir)
        };
        let Ok(stat) = stat else { continue };
        if depth == 0 && !stat.is_dir() {
            continue;
        }
        if let Some(&(_, _, what)) = stats
            .iter()
            .find(|&&(dev, ino, _)| (dev, ino) == (stat.dev(), stat.ino()))
        {
            if depth == 0 {
                // The directory itself is left out (and reported) by the walk.
                continue;
            }
            let path = own
                .iter()
                .find(|d| d.what == what)
                .map_or_else(|| dir.to_path_buf(), |d| d.path.clone());
            return Err(Error::invalid(
                format!("source {}", source.display()),
                format!(
                    "it lies inside the {what} {}, which vault never backs up; give a source outside it (`vault copy` replicates a repository)",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}
