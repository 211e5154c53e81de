//! Runs the store contract suite (the same 36 cases as the embedded store) against
//! `PgStore`, each case in its own schema, with reopen.

mod common;

eventum_testkit::store_contract_tests!(common::PgFactory);
