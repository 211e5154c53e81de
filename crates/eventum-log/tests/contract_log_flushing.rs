//! The store contract suite against the embedded log store with a tiny index memtable, so
//! that the index file is written every few events and reads straddle the file and the
//! memtable (the default memtable holds far more than any contract case writes).

mod common;

eventum_testkit::store_contract_tests!(common::LogFactory {
    config: eventum_log::LogConfig {
        index_memtable_events_max: 3,
        ..eventum_log::LogConfig::default()
    },
});
