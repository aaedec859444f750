//! The command line: `gpusvm-sim run FILE...`, `gpusvm-sim workload NAME ...`, and a demo.
//!
//! Bad input never panics: unknown commands and options, unreadable or non-UTF-8 files and
//! scenario syntax errors are reported with a clear message (file, line and column for scenario
//! errors) and a non-zero exit status.

use std::process::ExitCode;

use crate::run::{run_scenario, summary, RunOptions, ScenarioResult};
use crate::scenario::parse;

const USAGE: &str = "\
usage:
  gpusvm-sim                         run a short demo and print its report
  gpusvm-sim run FILE... [--json]    run scenario files (.svm); exit 0 only if all pass
      [--inject-nth N]               fail the N-th fallible backend call
      [--inject-probability P [--seed S]]
                                     fail each backend call with probability P (seeded);
                                     outcomes may change, integrity and leaks must hold
      [--sweep]                      fault-injection sweep: fail call N for every N
                                     (with --inject-nth N: just that run, as the sweep does it)
  gpusvm-sim workload NAME [options] run a synthetic workload (see `gpusvm-sim workload --help`)
  gpusvm-sim --help";

/// Runs the CLI; returns the process exit code.
pub fn main(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        None => crate::workload::demo(),
        Some("run") => run_files(args.get(1..).unwrap_or_default()),
        Some("workload") => crate::workload::cli(args.get(1..).unwrap_or_default()),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("gpusvm-sim: unknown command '{other}'\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run_files(args: &[String]) -> ExitCode {
    let mut files = Vec::new();
    let mut json = false;
    let mut opts = RunOptions::default();
    let mut sweep = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--sweep" => sweep = true,
            "--inject-probability" => {
                let p = it.next().and_then(|v| v.parse::<f64>().ok());
                match p.filter(|p| (0.0..=1.0).contains(p)) {
                    Some(p) => {
                        let seed = opts.inject_probability.map_or(1, |(_, s)| s);
                        opts.inject_probability = Some((p, seed));
                        // Failures change outcomes: judge like a sweep.
                        opts.sweep = true;
                    }
                    None => {
                        eprintln!("gpusvm-sim run: --inject-probability needs a number in 0..=1");
                        return ExitCode::from(2);
                    }
                }
            }
            "--seed" => match it.next().and_then(|v| v.parse::<u64>().ok()) {
                Some(seed) => {
                    let p = opts.inject_probability.map_or(0.0, |(p, _)| p);
                    opts.inject_probability = Some((p, seed));
                }
                None => {
                    eprintln!("gpusvm-sim run: --seed needs a number");
                    return ExitCode::from(2);
                }
            },
            "--inject-nth" => match it.next().and_then(|v| v.parse::<u64>().ok()) {
                Some(n) => opts.inject_nth = Some(n),
                None => {
                    eprintln!("gpusvm-sim run: --inject-nth needs a number");
                    return ExitCode::from(2);
                }
            },
            s if s.starts_with("--") => {
                eprintln!("gpusvm-sim run: unknown option '{s}'\n{USAGE}");
                return ExitCode::from(2);
            }
            f => files.push(f.to_string()),
        }
    }
    if files.is_empty() {
        eprintln!("gpusvm-sim run: no scenario files given\n{USAGE}");
        return ExitCode::from(2);
    }
    let mut results = Vec::new();
    for f in &files {
        let text = match std::fs::read(f) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(e) => {
                    results.push(failed(
                        f,
                        format!(
                            "{f}: not UTF-8 text (byte {})",
                            e.utf8_error().valid_up_to()
                        ),
                    ));
                    continue;
                }
            },
            Err(e) => {
                results.push(failed(f, format!("{f}: cannot read: {e}")));
                continue;
            }
        };
        let sc = match parse(f, &text) {
            Ok(sc) => sc,
            Err(e) => {
                results.push(failed(f, e.to_string()));
                continue;
            }
        };
        if sweep && opts.inject_nth.is_some() {
            // Reproduce one run of a sweep.
            let one = RunOptions {
                sweep: true,
                ..opts.clone()
            };
            results.push(run_scenario(f, &sc, &one));
        } else if sweep {
            results.push(crate::sweep::sweep_scenario(f, &sc));
        } else {
            results.push(run_scenario(f, &sc, &opts));
        }
    }
    if json {
        println!("{}", crate::report::results_json(&results));
    } else {
        print!("{}", summary(&results));
    }
    if results.iter().all(|r| r.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn failed(file: &str, msg: String) -> ScenarioResult {
    ScenarioResult {
        file: file.to_string(),
        passed: false,
        failures: vec![msg],
        statements: 0,
        stats: Vec::new(),
        backend_calls: 0,
        tolerated: 0,
        injected: 0,
        elapsed: std::time::Duration::ZERO,
    }
}
