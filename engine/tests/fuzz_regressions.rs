//! Every input in `fuzz/regressions/` (each a crash or a wrong answer a fuzz target once found)
//! is fed to its decoder on every `cargo test`, so a regression shows up without cargo-fuzz.
//! The part of the file name before the first `-` names the target (fuzz/README.md).

use std::path::Path;

use vault_engine::format::{config, manifest, pack, plan, sealed, tree};

fn decode(target: &str, data: &[u8]) -> Result<(), String> {
    let e = |e: vault_engine::format::DecodeError| e.to_string();
    match target {
        "config" => config::decode(data).map(drop).map_err(e),
        "manifest" => manifest::decode(&vault_engine::keys::Encryption::none(), data)
            .map(drop)
            .map_err(e),
        "plan" => plan::decode(&vault_engine::keys::Encryption::none(), data)
            .map(drop)
            .map_err(e),
        "sealed" => sealed::decode(
            sealed::SNAPSHOT_MAGIC,
            vault_engine::format::FORMAT_VERSION,
            data,
        )
        .map(drop)
        .map_err(e),
        "tree" => tree::decode_tree(data).map(drop).map_err(e),
        "chunk_list" => tree::decode_list(data).map(drop).map_err(e),
        "pack" => pack::decode_pack(&vault_engine::keys::Encryption::none(), data)
            .map(drop)
            .map_err(e),
        "pack_trailer" => pack::decode_trailer(data, data.len() as u64 + 12)
            .map(drop)
            .map_err(e),
        // The whole-repository target needs a repository; cargo-fuzz replays those.
        "repository" => Ok(()),
        other => panic!("regression input names no known target: {other}"),
    }
}

#[test]
fn every_fuzz_regression_input_decodes_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("bin") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let target = name.split('-').next().unwrap().to_string();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| decode(&target, &data));
        assert!(result.is_ok(), "{name}: the decoder panicked");
        seen += 1;
    }
    assert!(
        seen >= 2,
        "expected the regression inputs in {}",
        dir.display()
    );
}

#[test]
fn regression_manifest_version_field_disagrees_is_rejected() {
    let data = include_bytes!("../../fuzz/regressions/manifest-version-field-disagrees.bin");
    let err = manifest::decode(&vault_engine::keys::Encryption::none(), data)
        .expect_err("a manifest whose JSON version disagrees");
    assert!(err.to_string().contains("disagrees"), "{err}");
}

#[test]
fn regression_tree_fifo_entry_under_60_bytes_is_accepted() {
    let data = include_bytes!("../../fuzz/regressions/tree-fifo-entry-under-60-bytes-rejected.bin");
    let tree = tree::decode_tree(data).expect("a valid tree of one small fifo entry");
    assert_eq!(tree.entries.len(), 1);
}
