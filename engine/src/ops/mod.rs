//! Operations: the configuration layer over the engine (`vault config check`, `vault run`,
//! `vault status`, `vault schedule`, `vault daemon`, the Prometheus textfile).
//!
//! ```text
//! vault.toml ─► load (TOML ▸ config types ▸ check) ─► run: per application, in order
//!                                     ping start ─► hook before
//!                                     snapshot (databases ▸ dumps, paths) ─► forget ─► prune
//!                                     ─► copy ─► forget there ─► verify
//!                                     ─► hook after ─► hook on_failure (if failed)
//!                                     ─► notify (ping, webhook, command)
//!                                   ─► state (history, summary) ─► metrics textfile
//!                         state ─► status
//!            config ─► schedule (calendar; systemd units, crontab block)   config ─► daemon ─► run
//! report: the job's report types, and config: the file's types, its value parsers and the
//! choices derived from it (selected applications, staleness): leaves every module above imports
//! ```
//! A job calls the same engine operations as the CLI commands (snapshot, forget, prune, copy,
//! verify) with their own option and report types; this layer adds only ordering, locking,
//! history, hooks, notifications and the config. It sits above every operation and nothing
//! below imports it.

pub mod calendar;
pub mod check;
pub mod config;
pub mod daemon;
pub mod databases;
pub mod hooks;
pub mod load;
pub mod metrics;
pub mod notify;
pub mod report;
pub mod restore_app;
pub mod restore_db;
pub mod restore_test;
pub mod run;
pub mod schedule;
pub mod state;
pub mod status;
mod steps;

pub use config::{ConfigError, LoadedConfig};
pub use run::{AppRunReport, RunOptions, RunReport};
pub use state::StateDir;
pub use status::StatusReport;
