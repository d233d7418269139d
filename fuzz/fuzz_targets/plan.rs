//! `format::plan::decode`, on the input and on the input with its sealed-file length field and
//! checksum fixed (so the JSON payload behind it is reached).
//! Oracles: a plan that decodes has the plan layout version (4) and only pack ids among its condemned
//! packs, and survives encode -> decode; `encode` names the file by its BLAKE3.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_engine::format::{plan, OBJECT_VERSION};

fn check(data: &[u8]) {
    if let Ok(p) = plan::decode(&vault_engine::keys::Encryption::none(), data) {
        assert_eq!(p.version, OBJECT_VERSION);
        // Every condemned entry is a pack id: none is dropped on the way to the pack set.
        assert_eq!(p.condemned_packs().len(), p.condemned.len());
        let (id, file) = plan::encode(&vault_engine::keys::Encryption::none(), &p);
        assert_eq!(id, vault_fuzz::blake3(&file));
        let again = plan::decode(&vault_engine::keys::Encryption::none(), &file)
            .expect("a re-encoded plan decodes");
        assert_eq!(again, p);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = vault_fuzz::fix_sealed(data) {
        check(&fixed);
    }
});
