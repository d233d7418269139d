//! End-to-end tests of the `vault` binary: real processes, real files, real repositories.
//!
//! Every test runs in its own temp dir with `VAULT_REPO`, `VAULT_CACHE_DIR` and `HOME` pointing
//! inside it (see `util::Env`), so the user's default repository is never touched. Run with
//! `cargo test --release -p vault-cli --test integration` (the tests move GiBs of data).

mod util;

mod app_backup;
mod concurrency;
mod dedup;
mod delta;
mod encryption;
mod errors;
mod export;
mod hostile;
mod labels;
mod mount;
mod ops;
mod reliability;
mod remote;
mod restore_bulk;
mod restore_delta;
mod restore_plan;
mod restore_safety;
mod rotation;
mod roundtrip;
mod select;
mod serve;
mod sources;
mod stdin;
mod verify;

mod browse;

mod json;
