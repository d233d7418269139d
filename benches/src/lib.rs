//! Shared generators for vault benchmarks: plain-SQL dumps and their daily mutations
//! ([`dumpgen`]), seeded byte buffers ([`data`]) and a mixed-file asset store that changes a
//! little every day ([`blobstore`]).
pub mod blobstore;
pub mod data;
pub mod dumpgen;
