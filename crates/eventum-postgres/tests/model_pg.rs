//! Model-based property tests: random operation sequences on `PgStore` must give the same
//! outcomes as the in-memory reference model.

mod common;

eventum_testkit::store_model_tests!(common::PgFactory, cases = 32);
