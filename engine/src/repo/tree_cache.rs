//! Decoded trees and chunk lists of a remote repository, kept in the local cache directory
//! (`<cache>/<repository id>/trees/<xx>/<t|l>-<id>`): a snapshot reads its parent's trees, and
//! restore, verify and copy read every tree, and each is a network round trip otherwise.
//!
//! A file holds the blob's raw bytes; it is used only if those bytes hash to its name under the
//! repository's keys, so a damaged or planted file is never trusted (it is replaced). Written
//! through a temporary name and renamed, without fsync: the cache is rebuildable and safe to
//! delete.

use std::fs;
use std::path::PathBuf;

use crate::format::pack::BlobKind;
use crate::id::BlobId;
use crate::keys::Encryption;
use crate::storage::TEMP_PREFIX;

#[derive(Debug, Clone)]
pub struct TreeCache {
    dir: PathBuf,
}

impl TreeCache {
    pub fn new(dir: PathBuf) -> Self {
        TreeCache { dir }
    }

    fn path(&self, kind: BlobKind, id: &BlobId) -> PathBuf {
        let hex = id.to_hex();
        let prefix = match kind {
            BlobKind::Tree => "t",
            _ => "l",
        };
        self.dir.join(&hex[..2]).join(format!("{prefix}-{hex}"))
    }

    /// The raw bytes of blob `id`, if cached and intact.
    pub fn get(&self, encryption: &Encryption, kind: BlobKind, id: &BlobId) -> Option<Vec<u8>> {
        let path = self.path(kind, id);
        let raw = fs::read(&path).ok()?;
        if encryption.blob_id(kind, &raw) == *id {
            Some(raw)
        } else {
            let _ = fs::remove_file(&path);
            None
        }
    }

    /// Keeps `raw` (already checked against `id`); failures only cost a later network read.
    pub fn put(&self, kind: BlobKind, id: &BlobId, raw: &[u8]) {
        let path = self.path(kind, id);
        let Some(dir) = path.parent() else { return };
        if fs::create_dir_all(dir).is_err() {
            return;
        }
        let mut suffix = [0u8; 8];
        if getrandom::fill(&mut suffix).is_err() {
            return;
        }
        let temp = dir.join(format!("{TEMP_PREFIX}{}", hex::encode(suffix)));
        if fs::write(&temp, raw).is_ok() && fs::rename(&temp, &path).is_ok() {
            return;
        }
        let _ = fs::remove_file(&temp);
    }
}
