//! `format::config::decode`, on the input and on the input with its sealed-file length field and
//! checksum fixed (so the JSON payload and the validation behind it are reached).
//! Oracle: a config that decodes is valid and survives encode -> decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_engine::format::{self, config};

fn check(data: &[u8]) {
    if let Ok(cfg) = config::decode(data) {
        assert!(format::supported(cfg.version), "version {}", cfg.version);
        if let Err(e) = cfg.validate() {
            panic!("decode accepted an invalid config: {e}");
        }
        assert!(cfg.repository_id().is_some());
        let again = config::decode(&config::encode(&cfg)).expect("a re-encoded config decodes");
        assert_eq!(again, cfg);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = vault_fuzz::fix_sealed(data) {
        check(&fixed);
    }
});
