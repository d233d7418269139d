//! `format::manifest::decode`, on the input and on the input with its sealed-file length field and
//! checksum fixed (so the JSON payload behind it is reached).
//! Oracles: a manifest that decodes has the manifest layout version (4), a root tree id, a valid or no
//! parent id and a valid or no `replaces` id (a label or tag edit), and survives encode -> decode
//! with every optional member (`origin`, `replaces`, `edited`) kept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_engine::format::{manifest, OBJECT_VERSION};
use vault_engine::id::SnapshotId;

fn check(data: &[u8]) {
    if let Ok(m) = manifest::decode(&vault_engine::keys::Encryption::none(), data) {
        assert!(m.root().is_some());
        // regressions/manifest-version-field-disagrees.bin: format v1 accepted a JSON version
        // other than the envelope's, and encode then sealed a file decode refused.
        assert_eq!(m.version, OBJECT_VERSION);
        if let Some(parent) = &m.parent {
            assert!(SnapshotId::from_hex(parent).is_some());
        }
        if let Some(replaces) = &m.replaces {
            assert_eq!(m.replaced().map(|id| id.to_hex()), Some(replaces.to_lowercase()));
        }
        let (_, file) = manifest::encode(&vault_engine::keys::Encryption::none(), &m);
        let mut again = manifest::decode(&vault_engine::keys::Encryption::none(), &file)
            .expect("a re-encoded manifest decodes");
        // serde_json's default float parser may be one ulp off; the duration is informational.
        again.summary.duration_secs = m.summary.duration_secs;
        assert_eq!(again, m);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = vault_fuzz::fix_sealed(data) {
        check(&fixed);
    }
});
