//! Model check of the embedded log store with a tiny index memtable (flushed every few
//! events), with reopens, so that every read path meets entries split between the index
//! file and the memtable.

mod common;

eventum_testkit::store_model_tests!(
    common::LogFactory {
        config: eventum_log::LogConfig {
            index_memtable_events_max: 2,
            ..eventum_log::LogConfig::default()
        },
    },
    cases = 64
);
