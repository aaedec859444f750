//! The fault-injection sweep: run a scenario once to count its fallible backend calls, then once
//! per call with exactly that call failing. Each run may take a different path (an error
//! surfaces, or the driver retries), but none may corrupt data, misuse DMA, or leak anything.
//!
//! Runs are independent (each has its own world), so they are spread over the machine's cores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::run::{run_scenario, RunOptions, ScenarioResult};
use crate::scenario::ast::Scenario;

/// Sweeps `sc`: one run per fallible backend call of the clean run.
pub fn sweep_scenario(file: &str, sc: &Scenario) -> ScenarioResult {
    sweep_scenario_every(file, sc, 1)
}

/// Sweeps `sc`, failing every `stride`-th call (1 = every call).
pub fn sweep_scenario_every(file: &str, sc: &Scenario, stride: u64) -> ScenarioResult {
    let clean = run_scenario(file, sc, &RunOptions::default());
    if !clean.passed {
        return clean;
    }
    let stride = stride.max(1);
    let next = AtomicU64::new(1);
    let merged = Mutex::new((Vec::new(), 0usize, 0u64, std::time::Duration::ZERO, 0usize));
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let n = next.fetch_add(stride, Ordering::SeqCst);
                if n > clean.backend_calls {
                    break;
                }
                let opts = RunOptions {
                    inject_nth: Some(n),
                    sweep: true,
                    ..RunOptions::default()
                };
                let r = run_scenario(file, sc, &opts);
                let mut m = crate::shared::lock(&merged);
                m.0.extend(r.failures);
                m.1 += r.tolerated;
                m.2 += 1;
                m.3 += r.elapsed;
                m.4 += r.injected;
            });
        }
    });
    let (mut failures, tolerated, runs, elapsed, injected) =
        merged.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort();
    let mut result = clean;
    result.failures = failures;
    result.tolerated = tolerated;
    result.injected = injected;
    result.statements = runs as usize;
    result.elapsed += elapsed;
    result.passed = result.failures.is_empty();
    result
}
