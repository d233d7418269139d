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

/// Reads `packs` in parallel (each whole, once) and checks each blob's digest.
pub fn check_packs(backend: &dyn Backend, packs: &[PackId]) -> Vec<PackCheck> {
    packs
        .par_iter()
        .with_max_len(1)
        .map(|id| check_pack(backend, *id))
        .collect()
}

fn check_pack(backend: &dyn Backend, id: PackId) -> PackCheck {
    let mut check = PackCheck {
        pack: id,
        bytes: 0,
        blobs: 0,
        content_mismatch: false,
        unreadable: None,
        damaged: HashMap::new(),
    };
    // Taken out of the thread's slot while in use: the blob checks below are parallel, and this
    // thread may start checking another pack meanwhile.
    let mut data = PACK_BUFFER.take();
    match backend.read_into(ObjectKind::Pack, &id.to_hex(), &mut data) {
        Ok(()) => check_bytes(&mut check, &data),
        Err(e) => check.unreadable = Some(e.to_string()),
    }
    PACK_BUFFER.set(data);
    check
}

thread_local! {
    /// Each worker reads its packs into one buffer, reused: a fresh 16 MiB allocation per pack
    /// would leave the allocator holding several of them.
    static PACK_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
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
