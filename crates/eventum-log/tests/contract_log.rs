//! Runs the store contract suite against the embedded log store (default config), with
//! reopen, so the durability case runs too.

mod common;

eventum_testkit::store_contract_tests!(common::LogFactory::default());
