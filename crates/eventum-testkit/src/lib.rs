//! Test support shipped for users and backends: an in-memory model store, the contract
//! suite every backend runs, and model-based property tests against that model store.

pub mod contract;
pub mod crash;
pub mod memory;
pub mod model;

pub use contract::{MemoryFactory, StoreFactory, TestStore};
pub use memory::MemoryStore;
