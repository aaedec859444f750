//! `gpusvm-sim`: run scenario files, synthetic workloads, or a short demo.

use std::process::ExitCode;

use gpusvm_sim::cli;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    cli::main(&args)
}
