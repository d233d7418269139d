//! `format::pack::decode_footer` and `format::pack::decode_trailer` against an arbitrary pack size.
//!
//! Input: `pack_size u64 (LE) | trailer | footer (last 12 bytes)`, i.e. the size of a pack followed
//! by its tail. The trailer is decoded as given and with its checksum fixed.
//! Oracles: an accepted footer describes a trailer that fits the pack; accepted entries lie in the
//! blob area in order, and re-encode to exactly the trailer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_engine::format::pack::{self, FOOTER_LEN, HEADER_LEN};

fn check_trailer(trailer: &[u8], pack_size: u64) {
    if let Ok(entries) = pack::decode_trailer(trailer, pack_size) {
        vault_fuzz::assert_entries_valid(&entries, trailer.len(), pack_size);
        assert_eq!(pack::encode_trailer(&entries), trailer);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let pack_size = u64::from_le_bytes(data[..8].try_into().unwrap());
    let tail = &data[8..];
    let (trailer, footer) = tail.split_at(tail.len().saturating_sub(FOOTER_LEN));
    if let Ok(trailer_len) = pack::decode_footer(footer, pack_size) {
        assert!(trailer_len as u64 + (HEADER_LEN + FOOTER_LEN) as u64 <= pack_size);
        assert!(trailer_len as usize >= 4 + vault_fuzz::CHECKSUM_LEN);
    }
    check_trailer(trailer, pack_size);
    if let Some(fixed) = vault_fuzz::fix_trailer(trailer) {
        check_trailer(&fixed, pack_size);
    }
});
