//! `--read-data`: read whole packs and check every blob.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::format::pack;
use crate::id::{BlobId, PackId};
use crate::storage::{Backend, ObjectKind};

/// What reading one pack found.
pub struct PackCheck {
    pub pack: PackId,
    pub bytes: u64,
    pub blobs: u64,
    /// The file's digest differs from its name (some byte changed).
    pub content_mismatch: bool,
    /// The pack could not be read or its trailer not decoded: the reason.
    pub unreadable: Option<String>,
    /// Blobs whose bytes do not decode to their id: id -> reason.
    pub damaged: HashMap<BlobId, String>,
}

/// Reads `packs` one after another (each whole, once, into one reused buffer) and checks each
/// pack's blobs in parallel. One pack in memory at a time keeps the peak small (packs reach
/// ~20 MiB); reading from the page cache costs little beside decompressing and hashing.
pub fn check_packs(backend: &dyn Backend, packs: &[PackId]) -> Vec<PackCheck> {
    let mut buffer = Vec::new();
    packs
        .iter()
        .map(|id| check_pack(backend, *id, &mut buffer))
        .collect()
}

fn check_pack(backend: &dyn Backend, id: PackId, data: &mut Vec<u8>) -> PackCheck {
    let mut check = PackCheck {
        pack: id,
        bytes: 0,
        blobs: 0,
        content_mismatch: false,
        unreadable: None,
        damaged: HashMap::new(),
    };
    match backend.read_into(ObjectKind::Pack, &id.to_hex(), data) {
        Ok(()) => check_bytes(&mut check, data),
        Err(e) => check.unreadable = Some(e.to_string()),
    }
    check
}

fn check_bytes(check: &mut PackCheck, data: &[u8]) {
    let id = check.pack;
    check.bytes = data.len() as u64;
    check.content_mismatch = PackId::digest(data) != id;
    let entries = match pack::decode_pack(data) {
        Ok(entries) => entries,
        Err(e) => {
            check.unreadable = Some(format!("trailer: {e}"));
            return;
        }
    };
    let damaged: Vec<(BlobId, String)> = entries
        .par_iter()
        .filter_map(|e| {
            let stored = &data[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
            pack::check_blob(e.id, e.kind, e.encoding, e.raw_len, stored)
                .err()
                .map(|err| (e.id, format!("{} {}", e.kind.name(), err)))
        })
        .collect();
    check.blobs = entries.len() as u64;
    check.damaged = damaged.into_iter().collect();
}
