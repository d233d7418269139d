//! `format::segment::decode` (index segments, format-spec/11-remote.md 11.4), on the input and on
//! the input with its sealed-file length field and checksum fixed (so the pack records and their
//! trailers behind them are reached).
//! Oracles: a segment that decodes holds at most MAX_SEGMENT_PACKS packs, every blob lies
//! inside its pack's blob area, and it survives encode -> decode unchanged; `encode` names the
//! file by its BLAKE3.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_engine::format::pack::{FOOTER_LEN, HEADER_LEN};
use vault_engine::format::segment::{self, MAX_SEGMENT_PACKS};
use vault_engine::keys::Encryption;

fn check(data: &[u8]) {
    let none = Encryption::none();
    if let Ok(packs) = segment::decode(&none, data) {
        assert!(packs.len() <= MAX_SEGMENT_PACKS as usize);
        for pack in &packs {
            for e in &pack.entries {
                assert!(e.offset >= HEADER_LEN as u64);
                assert!(e.offset + e.stored_len as u64 <= pack.size - FOOTER_LEN as u64);
            }
        }
        let (id, file) = segment::encode(&none, &packs);
        assert_eq!(id, vault_fuzz::blake3(&file));
        let again = segment::decode(&none, &file).expect("a re-encoded segment decodes");
        assert_eq!(again, packs);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = vault_fuzz::fix_sealed(data) {
        check(&fixed);
    }
});
