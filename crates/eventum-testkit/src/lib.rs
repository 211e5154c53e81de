//! Test support shipped for users and backends: an in-memory model store, the contract
//! suite every backend runs, and fault-injection helpers.

pub mod memory;

pub use memory::MemoryStore;
