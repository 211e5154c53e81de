//! Model check of the embedded log store against the in-memory reference model, with
//! reopens interleaved in the generated sequences (64 cases; `PROPTEST_CASES` overrides).

mod common;

eventum_testkit::store_model_tests!(common::LogFactory::default(), cases = 64);
