//! Synthetic workloads: `gpusvm-sim workload NAME`, and the no-argument demo.
//!
//! A scenario file checks one behaviour in a few statements; a workload is a realistic access
//! pattern at scale — a STREAM triad, random touches, allocator churn, oversubscribed device
//! memory, CPU/GPU atomics, partial unmaps, several processes — that drives the [`World`] API
//! for many steps, deterministically from a seed. It serves three purposes: it exercises the
//! core and the driver along paths scenarios only sample, it reports what the SVM machinery did
//! (faults, migrations, evictions, ranges by size, time spent in the core), and it draws a
//! residency map people can look at.
//!
//! # Design
//!
//! - The seven workloads are entries of [`WORKLOADS`]: a name, documented defaults, and a
//!   function that drives a `Session` (see `session.rs`). A workload describes its work as
//!   *batches* of independent *lanes*; the session runs lanes one after the other, or with
//!   `--threads N` on `N` simulated threads of the deterministic scheduler
//!   ([`crate::sched::run_concurrent`]), and between batches it settles the world, advances the
//!   virtual clock, fails the run on DMA errors, and samples ranges and residency.
//! - Checking is layered: the world compares every read with its shadow copy (the integrity
//!   oracle), each workload additionally checks what it knows the data must be (the triad's
//!   result, exact counter values, SEGV in unmapped holes, no range over unmapped memory), and
//!   the run ends with [`World::teardown`], whose leak check must find nothing. Any of these is a
//!   failure: the report says what and where, and the command exits with status 1.
//! - The [`WorkloadReport`] aggregates the statistics of every process, live or exited, and is
//!   printed as text or JSON by [`crate::report`]; the residency map is rendered by
//!   [`crate::svg`] and written atomically.
//! - The demo (`gpusvm-sim` without arguments) runs a narrated mini-workload on the same
//!   session, printing what happens step by step, then the report.
//!
//! Wall-clock numbers (time in the core per GPU fault, faults per second) are measurements of
//! the simulator on this machine, never inputs: everything the simulation does depends only on
//! the parameters and the seed.

mod args;
mod atomics;
mod churn;
mod demo;
mod multiproc;
mod oversubscribe;
mod progress;
mod random;
mod session;
mod stream;
mod unmap_storm;

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::stats::ProcStats;
#[cfg(doc)]
use crate::world::World;

use session::{Checked, Collect, Failure, Session};

const K: u64 = 1 << 10;
const M: u64 = 1 << 20;

/// The parameters of one workload run (the command-line options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Bytes of memory the workload works on; each workload says how it uses them.
    pub size: u64,
    /// Device memory per GPU, bytes.
    pub vram: u64,
    /// Number of GPUs.
    pub devices: u32,
    /// Simulated threads running each batch.
    pub threads: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// Steps (passes, rounds, iterations).
    pub steps: u64,
}

/// A workload: its name, documentation, defaults and body.
pub struct Workload {
    /// Name on the command line.
    pub name: &'static str,
    /// One sentence on what it does (no final period).
    pub summary: &'static str,
    /// What `--size` means for it.
    pub size_means: &'static str,
    /// Default `--size`.
    pub default_size: u64,
    /// If set to `(n, d)`, a run given `--vram` but no `--size` uses `--size = vram × n / d`
    /// (`oversubscribe` keeps its data larger than device memory).
    pub size_per_vram: Option<(u64, u64)>,
    /// Default `--vram`.
    pub default_vram: u64,
    /// Default `--steps`.
    pub default_steps: u64,
    /// Smallest `--size` it can run with.
    pub min_size: u64,
    /// Checks constraints between parameters (e.g. `oversubscribe` needs more data than VRAM).
    pub validate: fn(&Params) -> Result<(), String>,
    body: fn(&mut Session) -> Checked,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workload({})", self.name)
    }
}

impl Workload {
    /// The parameters with every option at its default.
    pub fn default_params(&self) -> Params {
        Params {
            size: self.default_size,
            vram: self.default_vram,
            devices: 1,
            threads: 1,
            seed: 1,
            steps: self.default_steps,
        }
    }
}

fn no_constraints(_: &Params) -> Result<(), String> {
    Ok(())
}

/// Every workload, in the order `--help` lists them.
pub const WORKLOADS: [Workload; 7] = [
    Workload {
        name: "stream",
        summary: "STREAM triad a = b + k*c: the CPU writes three arrays, the GPU runs the \
                  triad --steps times in 2M slices, the CPU reads a back and checks it",
        size_means: "the three arrays together",
        default_size: 48 * M,
        size_per_vram: None,
        default_vram: 256 * M,
        default_steps: 8,
        min_size: 12 * K,
        validate: no_constraints,
        body: stream::run,
    },
    Workload {
        name: "random",
        summary: "seeded random page touches: GPU and CPU reads and writes over one buffer whose \
                  first quarter is advised preferred=ram",
        size_means: "the buffer",
        default_size: 32 * M,
        size_per_vram: None,
        default_vram: 256 * M,
        default_steps: 16,
        min_size: 64 * K,
        validate: no_constraints,
        body: random::run,
    },
    Workload {
        name: "churn",
        summary: "malloc/free churn: allocations of 4K to 2M carved first-fit from an arena \
                  (freed extents are reused), CPU- or GPU-initialized, checked, munmapped",
        size_means: "the allocator's arena (live allocations never exceed it)",
        default_size: 32 * M,
        size_per_vram: None,
        default_vram: 256 * M,
        default_steps: 32,
        min_size: M,
        validate: no_constraints,
        body: churn::run,
    },
    Workload {
        name: "oversubscribe",
        summary: "four buffers totalling more than VRAM; each step the GPU passes over all of \
                  them (prefetching on odd steps), so earlier ones are evicted",
        size_means: "the four buffers together; must exceed --vram (default: 2.5 x --vram)",
        default_size: 80 * M,
        size_per_vram: Some((5, 2)),
        default_vram: 32 * M,
        default_steps: 4,
        min_size: 4 * M,
        validate: oversubscribe::validate,
        body: oversubscribe::run,
    },
    Workload {
        name: "atomics",
        summary: "CPU/GPU ping-pong on 16 shared counters: GPU atomic adds (device memory), \
                  then CPU read and increment (after the atomic timeslice)",
        size_means: "the counters' buffer (one range)",
        default_size: 64 * K,
        size_per_vram: None,
        default_vram: 256 * M,
        default_steps: 32,
        min_size: 4 * K,
        validate: no_constraints,
        body: atomics::run,
    },
    Workload {
        name: "unmap-storm",
        summary: "eight GPU-faulted buffers lose heads, tails and middles to munmap; the CPU \
                  and GPU check the rest and the holes, then the buffers are replaced",
        size_means: "the eight buffers together",
        default_size: 32 * M,
        size_per_vram: None,
        default_vram: 256 * M,
        default_steps: 8,
        min_size: 512 * K,
        validate: no_constraints,
        body: unmap_storm::run,
    },
    Workload {
        name: "multiproc",
        summary: "a parent, two forked children and an unrelated process take turns on the GPU \
                  over private (copy-on-write) and MAP_SHARED memory; a child exits midway",
        size_means: "a quarter each for the shared buffer, the parent's private buffer \
                     (inherited by the children) and the peer's",
        default_size: 32 * M,
        size_per_vram: None,
        default_vram: 256 * M,
        default_steps: 8,
        min_size: 256 * K,
        validate: no_constraints,
        body: multiproc::run,
    },
];

/// The workload called `name`.
pub fn find(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

/// Everything a workload run reports.
#[derive(Clone, Debug)]
pub struct WorkloadReport {
    /// The workload's name.
    pub workload: String,
    /// Its parameters.
    pub params: Params,
    /// No corruption, DMA error, leak or unexpected error.
    pub passed: bool,
    /// What went wrong (empty when it passed).
    pub failures: Vec<String>,
    /// Workload-specific results (e.g. the final counter values).
    pub notes: Vec<String>,
    /// Steps completed.
    pub steps: u64,
    /// Batches of work executed.
    pub batches: u64,
    /// Statistics summed over every process.
    pub totals: ProcStats,
    /// Statistics per process (live and exited), by name.
    pub processes: Vec<(String, ProcStats)>,
    /// Live ranges by size (bytes → count) when their number peaked (sampled after each batch).
    pub ranges_peak: BTreeMap<u64, usize>,
    /// Live ranges by size at the end, before teardown.
    pub ranges_final: BTreeMap<u64, usize>,
    /// Copy-engine calls, all devices.
    pub copy_calls: u64,
    /// Bytes moved by the copy engines.
    pub copy_bytes: u64,
    /// DMA mappings made (not live: made over the run), all devices.
    pub dma_mappings: u64,
    /// Wall time of the run, teardown included.
    pub wall: Duration,
}

impl WorkloadReport {
    /// Mean wall time spent in the core per GPU fault, in nanoseconds (`None` without faults).
    pub fn core_ns_per_fault(&self) -> Option<f64> {
        (self.totals.gpu_faults > 0)
            .then(|| self.totals.core_ns as f64 / self.totals.gpu_faults as f64)
    }

    /// GPU faults per second of wall time.
    pub fn faults_per_second(&self) -> f64 {
        let s = self.wall.as_secs_f64();
        if s > 0.0 {
            self.totals.gpu_faults as f64 / s
        } else {
            0.0
        }
    }
}

/// What [`run`] collects besides the report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    /// Sample residency and render the SVG map.
    pub svg: bool,
    /// Draw the progress bar on stderr (callers pass true only for a terminal).
    pub progress: bool,
}

/// The result of [`run`].
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The report.
    pub report: WorkloadReport,
    /// The residency map, if asked for.
    pub svg: Option<String>,
}

/// Runs `workload` with `params` on a fresh world, tears it down, and reports.
///
/// # Errors
///
/// A configuration the simulator rejects (the caller validated the ranges of the parameters, so
/// this is unexpected).
pub fn run(workload: &Workload, params: &Params, settings: Settings) -> Result<Outcome, String> {
    let collect = Collect {
        svg: settings.svg,
        progress: settings.progress,
        narrate: false,
    };
    let mut s = Session::new(workload.name, params, collect)?;
    let result = (workload.body)(&mut s);
    Ok(s.finish(result))
}

/// A size as the command line writes it (`64K`, `2M`, `1G`, or bytes).
pub fn size_arg(bytes: u64) -> String {
    for (unit, shift) in [("G", 30), ("M", 20), ("K", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory, then a
/// rename, so readers never see a half-written file.
///
/// # Errors
///
/// A message naming the file and the I/O error.
pub fn write_atomically(path: &str, contents: &str) -> Result<(), String> {
    let target = Path::new(path);
    let file_name = target
        .file_name()
        .ok_or_else(|| format!("cannot write '{path}': not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = target.with_file_name(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write '{path}': {e}")
    })
}

/// `gpusvm-sim workload ...`: parses the arguments, runs the workload, prints the report and
/// writes the SVG. Exit status 0 if the run passed, 1 if it failed or the SVG could not be
/// written, 2 for bad arguments.
pub fn cli(args: &[String]) -> ExitCode {
    ExitCode::from(cli_status(args))
}

/// [`cli`], returning the exit status as a number.
fn cli_status(args: &[String]) -> u8 {
    let inv = match args::parse(args) {
        Ok(args::Command::Help) => {
            print!("{}", args::help());
            return 0;
        }
        Ok(args::Command::Run(inv)) => inv,
        Err(e) => {
            eprintln!(
                "gpusvm-sim workload: {e}\n\n{}\n(`gpusvm-sim workload --help` lists workloads and options)",
                args::help().lines().take(2).collect::<Vec<_>>().join("\n")
            );
            return 2;
        }
    };
    if let Some(path) = &inv.svg {
        if let Err(e) = check_writable_location(path) {
            eprintln!("gpusvm-sim workload: --svg: {e}");
            return 2;
        }
    }
    let settings = Settings {
        svg: inv.svg.is_some(),
        progress: !inv.no_progress && std::io::stderr().is_terminal(),
    };
    let outcome = match run(inv.workload, &inv.params, settings) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("gpusvm-sim workload: {e}");
            return 2;
        }
    };
    if inv.json {
        println!("{}", crate::report::workload_json(&outcome.report));
    } else {
        print!("{}", crate::report::workload_text(&outcome.report));
    }
    let mut ok = outcome.report.passed;
    if let (Some(path), Some(svg)) = (&inv.svg, &outcome.svg) {
        match write_atomically(path, svg) {
            Ok(()) => {
                if !inv.json {
                    println!("residency map written to {path}");
                }
            }
            Err(e) => {
                eprintln!("gpusvm-sim workload: {e}");
                ok = false;
            }
        }
    }
    if !outcome.report.passed {
        eprintln!(
            "gpusvm-sim workload {}: FAILED: {}",
            outcome.report.workload,
            outcome.report.failures.join("; ")
        );
    }
    u8::from(!ok)
}

/// Fails early, before a long run, if the SVG could obviously not be written there.
fn check_writable_location(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if p.is_dir() {
        return Err(format!("'{path}' is a directory"));
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!("directory '{}' does not exist", dir.display()));
    }
    Ok(())
}

/// The no-argument demo: a narrated mini-run and its report; exit status 0 iff nothing was
/// corrupted or leaked.
pub fn demo() -> ExitCode {
    match demo::run() {
        Ok(report) => {
            println!();
            print!("{}", crate::report::workload_text(&report));
            if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("gpusvm-sim: demo: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests;
