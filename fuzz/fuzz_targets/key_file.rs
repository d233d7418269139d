//! `keys::keyfile::decode`, on the input and on the input with its sealed-file length field and
//! checksum fixed (so the JSON payload and its validation are reached).
//! Oracle: a key file that decodes has valid KDF parameters, a 32-byte salt and 104 bytes of
//! wrapped keys; when its parameters are cheap, unwrapping with a password it was not made with
//! finds no keys (and never panics).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_engine::id::RepositoryId;
use vault_engine::keys::keyfile;

fn check(data: &[u8]) {
    if let Ok(file) = keyfile::decode(data) {
        assert!(file.kdf.params.validate().is_ok());
        assert_eq!(file.kdf.salt.len(), 64);
        assert_eq!(file.keys.len(), 208);
        let p = file.kdf.params;
        if p.memory_kib <= 256 && p.passes <= 2 {
            assert!(file
                .unwrap(b"not the password", &RepositoryId([7; 32]))
                .is_none());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = vault_fuzz::fix_sealed(data) {
        check(&fixed);
    }
});
