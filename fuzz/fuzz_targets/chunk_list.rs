//! `format::tree::decode_list`. Oracle: a chunk list that decodes re-encodes (`encode_list`) to
//! exactly the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_engine::format::tree;
use vault_engine::limits::CHUNKS_PER_LIST;

fuzz_target!(|data: &[u8]| {
    if let Ok(chunks) = tree::decode_list(data) {
        assert!(chunks.len() <= CHUNKS_PER_LIST);
        assert_eq!(
            tree::encode_list(&chunks),
            data,
            "chunk-list encoding is not canonical"
        );
    }
});
