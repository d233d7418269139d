//! `format::pack::decode_pack` on a whole pack file, then `format::pack::open_blob_append` on the
//! stored bytes of every entry it returns — a delta chunk (version 5) with the raw bytes of its
//! base when the base is an earlier blob of the same pack that opened, else without (which must
//! fail) — and the tree / chunk-list decoder on blobs that open.
//! Run on the input and on the input with its trailer checksum fixed.
//! Oracles: accepted entries lie inside the pack, in order; an opened blob has its raw length and
//! its id is its digest in its kind's domain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_engine::format::pack::{self, BlobKind};
use vault_engine::format::tree;

fn check(data: &[u8]) {
    let Ok(entries) = pack::decode_pack(&vault_engine::keys::Encryption::none(), data) else {
        return;
    };
    let range = vault_fuzz::trailer_range(data).expect("decode_pack accepted a bad footer");
    vault_fuzz::assert_entries_valid(&entries, range.len(), data.len() as u64);
    let mut opened: Vec<(vault_engine::id::BlobId, Vec<u8>)> = Vec::new();
    for e in &entries {
        let stored = vault_fuzz::stored_bytes(data, e);
        let base = e.encoding.base().and_then(|base| {
            opened
                .iter()
                .find(|(id, _)| *id == base)
                .map(|(_, raw)| raw.clone())
        });
        let mut raw = Vec::new();
        let result = pack::open_blob_append(
            &vault_engine::keys::Encryption::none(),
            e.id,
            e.kind,
            e.encoding,
            e.raw_len,
            stored,
            base.as_deref(),
            &mut raw,
        );
        if e.encoding.base().is_some() && base.is_none() {
            assert!(result.is_err(), "a delta opened without its base");
        }
        if result.is_err() {
            assert!(raw.is_empty(), "a failed open left bytes behind");
            continue;
        }
        assert_eq!(raw.len(), e.raw_len as usize);
        assert_eq!(e.kind.digest(&raw), e.id);
        match e.kind {
            BlobKind::Tree => {
                let _ = tree::decode_tree(&raw);
            }
            BlobKind::List => {
                let _ = tree::decode_list(&raw);
            }
            BlobKind::Chunk => {}
        }
        opened.push((e.id, raw));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = vault_fuzz::fix_pack_trailer(data) {
        check(&fixed);
    }
});
