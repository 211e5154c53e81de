//! Model check of the in-memory store against itself: a smoke test of the harness (every
//! generated sequence must run to the end and agree).

eventum_testkit::store_model_tests!(eventum_testkit::MemoryFactory, cases = 128);
