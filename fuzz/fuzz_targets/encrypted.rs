//! The decoders of an encrypted repository on arbitrary bytes, with a fixed repository key: a
//! whole pack (`pack::decode_pack`, then `pack::check_blob` on each entry), a manifest and a
//! prune plan (sealed payloads inside the sealed-file envelope, checksum fixed so the
//! authentication is reached), and a bare sealed message (`Encryption::open`).
//! Oracle: nothing panics; whatever authenticates opens to the same plaintext after sealing it
//! again (the seal/open round trip), and a blob that checks is one the key sealed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_engine::format::{manifest, pack, plan};
use vault_engine::keys::{Encryption, MasterKeys};

fn key() -> Encryption {
    Encryption::with_keys(MasterKeys::from_bytes(&[0x5a; 64]))
}

fuzz_target!(|data: &[u8]| {
    let enc = key();
    if let Ok(entries) = pack::decode_pack(&enc, data) {
        for e in entries {
            let end = (e.offset + e.stored_len as u64) as usize;
            let stored = &data[e.offset as usize..end];
            let _ = pack::check_blob(&enc, e.id, e.kind, e.encoding, e.raw_len, stored, None);
        }
    }
    let sealed = vault_fuzz::fix_sealed(data).unwrap_or_else(|| data.to_vec());
    let _ = manifest::decode(&enc, &sealed);
    let _ = plan::decode(&enc, &sealed);
    let mut scratch = Vec::new();
    if let Ok(plain) = enc.open(b"ad", data, &mut scratch) {
        let plain = plain.to_vec();
        let again = enc.seal(b"ad", plain.clone());
        assert_eq!(enc.open_owned(b"ad", &again).unwrap(), plain);
    }
});
