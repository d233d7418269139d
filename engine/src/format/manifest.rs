//! Snapshot manifests: one small sealed file per snapshot, named by its own BLAKE3 digest.
//!
//! The manifest is written last, after every pack it reaches is durable (invariant I3 in
//! `format-spec/01-repository.md`), so a manifest's presence means the snapshot is whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{sealed, DecodeError, OBJECT_VERSION};
use crate::id::{SnapshotId, TreeId};
use crate::keys::{self, Encryption};

/// A problem with one source path, recorded in an incomplete snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceProblem {
    pub path: String,
    pub reason: String,
}

/// What a snapshot run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub files: u64,
    pub dirs: u64,
    /// Files taken from the parent snapshot without reading them (size, mtime, ctime, inode equal).
    pub files_unchanged: u64,
    /// Total size of all regular files and streams in the snapshot.
    pub bytes_total: u64,
    /// Bytes actually read from sources.
    pub bytes_read: u64,
    /// Bytes of new blobs written to packs (after dedup and compression).
    pub bytes_added: u64,
    pub chunks_total: u64,
    pub chunks_new: u64,
    pub trees_new: u64,
    pub duration_secs: f64,
    pub errors: Vec<SourceProblem>,
}

/// One source of a snapshot, in the order they were taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// `path`, `stdin` or `command`.
    pub kind: String,
    /// Where the source lives inside the snapshot (absolute, `/`-separated).
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// RFC 3339, UTC.
    pub time: String,
    pub host: String,
    /// Snapshot paths of all sources, as shown by `vault list`.
    pub paths: Vec<String>,
    pub sources: Vec<SourceRecord>,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Hex id of the root tree.
    pub tree: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// False when any source problem was recorded (`summary.errors` is then non-empty).
    pub complete: bool,
    /// Set by `vault copy` and by a label or tag edit: `<repository id>/<snapshot id>` (hex) of
    /// the snapshot whose content this one holds, where it was first taken (a copy of a copy,
    /// or an edit of an edit, names the original).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Set by a label or tag edit: hex id of the snapshot *in this repository* that this one
    /// replaces (its immediate predecessor). Readers hide a snapshot that an existing manifest
    /// replaces (format-spec/09-rotation.md §9.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// Set by a label or tag edit: when the tags and labels were last changed (RFC 3339, UTC).
    /// `vault copy` lets the later edit win (format-spec/11-remote.md §11.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<String>,
    pub summary: SnapshotSummary,
    pub program_version: String,
}

impl Manifest {
    pub fn root(&self) -> Option<TreeId> {
        TreeId::from_hex(&self.tree)
    }

    /// The snapshot this one replaces (a label or tag edit), when it names one.
    pub fn replaced(&self) -> Option<SnapshotId> {
        self.replaces.as_deref().and_then(SnapshotId::from_hex)
    }
}

/// Why a label key cannot be used, if it cannot: keys are non-empty and hold no `=` (a label
/// is written `KEY=VALUE` on the command line). Values may be anything, including empty.
pub fn label_key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("a label key cannot be empty")
    } else if key.contains('=') {
        Some("a label key cannot contain `=`")
    } else {
        None
    }
}

/// Returns the manifest file and its id.
/// In an encrypted repository the JSON payload is sealed (associated data: magic and version).
pub fn encode(encryption: &Encryption, manifest: &Manifest) -> (SnapshotId, Vec<u8>) {
    let payload = serde_json::to_vec(manifest).expect("manifest serializes");
    let ad = keys::file_ad(&sealed::SNAPSHOT_MAGIC, OBJECT_VERSION);
    let file = sealed::encode(
        sealed::SNAPSHOT_MAGIC,
        manifest.version,
        &encryption.seal(&ad, payload),
    );
    (SnapshotId::digest(&file), file)
}

pub fn decode(encryption: &Encryption, data: &[u8]) -> Result<Manifest, DecodeError> {
    let sealed_payload = sealed::decode(sealed::SNAPSHOT_MAGIC, OBJECT_VERSION, data)?;
    let ad = keys::file_ad(&sealed::SNAPSHOT_MAGIC, OBJECT_VERSION);
    let mut scratch = Vec::new();
    let payload = encryption.open(&ad, sealed_payload, &mut scratch)?;
    let manifest: Manifest = serde_json::from_slice(payload)
        .map_err(|e| DecodeError::invalid("manifest", e.to_string()))?;
    if manifest.version != OBJECT_VERSION {
        return Err(DecodeError::invalid(
            "manifest",
            "version field disagrees with envelope",
        ));
    }
    if manifest
        .parent
        .as_deref()
        .is_some_and(|p| SnapshotId::from_hex(p).is_none())
    {
        return Err(DecodeError::invalid(
            "manifest",
            "parent is not a snapshot id",
        ));
    }
    if manifest
        .replaces
        .as_deref()
        .is_some_and(|p| SnapshotId::from_hex(p).is_none())
    {
        return Err(DecodeError::invalid(
            "manifest",
            "replaces is not a snapshot id",
        ));
    }
    if manifest.root().is_none() {
        return Err(DecodeError::invalid(
            "manifest",
            "root tree id is not 64 hex characters",
        ));
    }
    Ok(manifest)
}
