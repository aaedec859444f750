//! Synthetic workloads (being written): the demo runs the example scenarios' building blocks.

use std::process::ExitCode;

/// The no-argument demo.
pub fn demo() -> ExitCode {
    eprintln!("gpusvm-sim: the demo is not written yet; use `gpusvm-sim run FILE...`");
    ExitCode::from(2)
}

/// `gpusvm-sim workload ...`.
pub fn cli(_args: &[String]) -> ExitCode {
    eprintln!("gpusvm-sim workload: not written yet");
    ExitCode::from(2)
}
