//! Model-based property tests: random operation sequences applied to the reference
//! [`crate::MemoryStore`] and to a store under test must give identical outcomes. A
//! backend runs them with `store_model_tests!` or [`run_model_tests`].

mod ops;
mod run;

pub use ops::{Op, STREAMS, ops};
pub use run::check_against_model;

use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Longest generated operation sequence.
pub const OPS_MAX: usize = 60;

/// Runs `cases` random sequences (or `PROPTEST_CASES` when set) through
/// [`check_against_model`], shrinking a failure to a minimal sequence before panicking.
pub fn run_model_tests(factory: &dyn crate::StoreFactory, cases: u32) {
    let cases = match std::env::var("PROPTEST_CASES") {
        Ok(_) => Config::default().cases,
        Err(_) => cases,
    };
    run_model_tests_with(
        factory,
        Config {
            cases,
            // Bounded so that a store that stalls (each stall costs a timeout) still
            // reports a reasonably small sequence in reasonable time.
            max_shrink_time: 120_000,
            ..Config::default()
        },
    );
}

/// [`run_model_tests`] with full control of the proptest configuration.
pub fn run_model_tests_with(factory: &dyn crate::StoreFactory, config: Config) {
    let config = Config {
        // Sequences are cheap to regenerate; persisting them would write into the source tree.
        failure_persistence: None,
        ..config
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&ops(OPS_MAX), |ops| {
        // A fresh runtime per case: a panicking case must not poison the next one.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(format!("runtime: {e}")))?;
        rt.block_on(check_against_model(factory, ops));
        Ok(())
    });
    if let Err(e) = result {
        panic!("store disagrees with the model: {e}");
    }
}

/// Expands to a `#[test]` named `model_check` that runs [`run_model_tests`] against
/// `$factory` (default 64 cases).
#[macro_export]
macro_rules! store_model_tests {
    ($factory:expr) => {
        $crate::store_model_tests!($factory, cases = 64);
    };
    ($factory:expr, cases = $cases:expr) => {
        #[test]
        fn model_check() {
            let factory = $factory;
            $crate::model::run_model_tests(&factory, $cases);
        }
    };
}
