//! Shared generators for vault benchmarks.
pub mod dumpgen;
