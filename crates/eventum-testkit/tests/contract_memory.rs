//! Runs the store contract suite against the in-memory model store.

eventum_testkit::store_contract_tests!(eventum_testkit::MemoryFactory);
