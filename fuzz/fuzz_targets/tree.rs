//! `format::tree::decode_tree`. Oracle: the encoding is canonical, so a tree that decodes
//! re-encodes (`encode_tree`) to exactly the input; and `Tree::find` finds every entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_engine::format::tree;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = tree::decode_tree(data) {
        assert_eq!(
            tree::encode_tree(&t),
            data,
            "tree encoding is not canonical"
        );
        for e in &t.entries {
            assert!(tree::valid_name(&e.name));
            assert_eq!(t.find(&e.name), Some(e));
        }
    }
});
