//! The fault-injection sweep: run a scenario once to count its fallible backend calls, then once
//! per call with exactly that call failing. Each run may take a different path (an error
//! surfaces, or the driver retries), but none may corrupt data or leak anything.

use crate::run::{run_scenario, RunOptions, ScenarioResult};
use crate::scenario::ast::Scenario;

/// Sweeps `sc`: one run per fallible backend call of the clean run.
pub fn sweep_scenario(file: &str, sc: &Scenario) -> ScenarioResult {
    let clean = run_scenario(file, sc, &RunOptions::default());
    if !clean.passed {
        return clean;
    }
    let mut result = clean.clone();
    let mut runs = 0u64;
    for n in 1..=clean.backend_calls {
        let opts = RunOptions {
            inject_nth: Some(n),
            sweep: true,
            ..RunOptions::default()
        };
        let r = run_scenario(file, sc, &opts);
        runs += 1;
        result.tolerated += r.tolerated;
        for f in r.failures {
            result.failures.push(format!("[call {n} failed] {f}"));
        }
        result.elapsed += r.elapsed;
    }
    result.statements = runs as usize;
    result.passed = result.failures.is_empty();
    result
}
