//! Operations: the configuration layer over the engine (`vault config check`, `vault run`,
//! `vault status`, the Prometheus textfile).
//!
//! ```text
//! vault.toml ─► config (+ check) ─► run: per application, in order
//!                                     snapshot (databases ▸ dumps, paths) ─► forget ─► prune
//!                                     ─► copy ─► forget there ─► verify
//!                                   ─► state (history, summary) ─► metrics textfile
//!                         state ─► status
//! ```
//! A job calls the same engine operations as the CLI commands (snapshot, forget, prune, copy,
//! verify) with their own option and report types; this layer adds only ordering, locking,
//! history and the config. It sits above every operation and nothing below imports it.

pub mod check;
pub mod config;
pub mod daemon;
pub mod databases;
pub mod hooks;
pub mod metrics;
pub mod notify;
pub mod report;
pub mod run;
pub mod schedule;
pub mod state;
pub mod status;

pub use config::{ConfigError, LoadedConfig};
pub use run::{AppRunReport, RunOptions, RunReport};
pub use state::StateDir;
pub use status::StatusReport;
