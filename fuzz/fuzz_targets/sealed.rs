//! `format::sealed::decode` with the three magics (config, snapshot, prune plan), expecting the
//! current format version, the object layout version and the version the input claims, on the input and on the input with
//! its length field and checksum fixed. Oracle: whatever decodes re-encodes to exactly the input
//! (the envelope has one encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_engine::format::plan::PLAN_MAGIC;
use vault_engine::format::sealed::{self, CONFIG_MAGIC, SNAPSHOT_MAGIC};
use vault_engine::format::{DecodeError, FORMAT_VERSION, OBJECT_VERSION};

fn check(data: &[u8]) {
    let claimed = data
        .get(8..12)
        .map(|v| u32::from_le_bytes(v.try_into().unwrap()));
    for magic in [CONFIG_MAGIC, SNAPSHOT_MAGIC, PLAN_MAGIC] {
        for version in [Some(FORMAT_VERSION), Some(OBJECT_VERSION), claimed].into_iter().flatten() {
            match sealed::decode(magic, version, data) {
                Ok(payload) => assert_eq!(sealed::encode(magic, version, payload), data),
                // The version is checked before anything else that could fail.
                Err(DecodeError::Version(found)) => assert_eq!(Some(found), claimed),
                Err(_) => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = vault_fuzz::fix_sealed(data) {
        check(&fixed);
    }
});
