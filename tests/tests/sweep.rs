//! The fault-injection sweep over the example scenarios: for every fallible backend call N a
//! scenario makes, a run with call N failing must end with the error surfaced or retried — no
//! corrupted byte (integrity oracle), no DMA misuse, no leak.
//!
//! Release builds sweep every call (CI: `cargo test --release -p gpusvm-tests --test sweep`);
//! debug builds sweep every 499th, so the default `cargo test` stays quick.

use gpusvm_sim::run::summary;
use gpusvm_sim::scenario::parse;
use gpusvm_sim::sweep::sweep_scenario_every;
use gpusvm_tests::{scenario_dir, svm_files};

#[test]
fn every_injected_failure_is_surfaced_or_retried_without_damage() {
    let stride = if cfg!(debug_assertions) { 499 } else { 1 };
    let mut results = Vec::new();
    for f in svm_files(&scenario_dir().join("examples")) {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(&f).expect("readable");
        let sc = parse(&name, &text).unwrap_or_else(|e| panic!("{e}"));
        let r = sweep_scenario_every(&name, &sc, stride);
        assert!(r.statements > 0, "{name}: no injected run");
        results.push(r);
    }
    assert_eq!(results.len(), 7);
    assert!(results.iter().all(|r| r.passed), "\n{}", summary(&results));
}
