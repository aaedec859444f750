//! Running scenario files.
//!
//! A scenario runs statement by statement on a fresh [`World`]: each action's actual outcome
//! must be one of the statement's listed alternatives, deferred driver work (the garbage
//! collector) runs to completion after every statement, and `expect` statements check the
//! settled state. A `concurrent` block runs its statements as simulated threads interleaved by
//! its seed. Independently of what the file expects, every read is checked by the integrity
//! oracle, and any DMA misuse or IOMMU fault fails the run. At the end every process exits and
//! the leak checker must find nothing held.
//!
//! In *sweep mode* (fault injection) an injected failure may change outcomes, so outcome
//! mismatches are tolerated; corruption and leaks are not.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::config::SimConfig;
use crate::driver::{AtomicMode as DrvAtomic, Preferred as DrvPreferred};
use crate::mm::{MapKind, Prot};
use crate::scenario::ast::{self, Address, Scenario, Span, Stmt, StmtKind};
use crate::scenario::pattern::{check_bytes, fill_bytes};
use crate::stats::ProcStats;
use crate::world::{OpError, Residency, World};

/// Options of a run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Fail the N-th fallible backend call (1-based).
    pub inject_nth: Option<u64>,
    /// Fail backend calls with this probability, seeded.
    pub inject_probability: Option<(f64, u64)>,
    /// Tolerate outcome mismatches (fault-injection sweeps).
    pub sweep: bool,
}

/// The result of one scenario.
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    /// The file.
    pub file: String,
    /// Whether it passed.
    pub passed: bool,
    /// What went wrong (empty when it passed).
    pub failures: Vec<String>,
    /// Statements executed.
    pub statements: usize,
    /// Statistics per process.
    pub stats: Vec<(String, ProcStats)>,
    /// Fallible backend calls made (the sweep's range).
    pub backend_calls: u64,
    /// Outcome mismatches tolerated in sweep mode.
    pub tolerated: usize,
    /// Backend calls made to fail by fault injection.
    pub injected: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// Builds the simulation parameters of a scenario.
///
/// # Errors
///
/// A message for values the simulator rejects.
pub fn config_of(sc: &Scenario) -> Result<SimConfig, String> {
    let c = &sc.config;
    let d = SimConfig::default();
    let cfg = SimConfig {
        page: c.page.unwrap_or(d.page),
        chunks: c.chunks.clone().unwrap_or(d.chunks),
        notifier: c.notifier.unwrap_or(d.notifier),
        vram: c.vram.unwrap_or(d.vram),
        devices: c.devices.unwrap_or(d.devices),
        check_pages_threshold: c.check_pages_threshold.unwrap_or(d.check_pages_threshold),
        migrate_min: c.migrate_min.unwrap_or(d.migrate_min),
        atomic_timeslice_ms: c.atomic_timeslice_ms.unwrap_or(d.atomic_timeslice_ms),
        seed: c.seed.unwrap_or(d.seed),
        range_split: c.range_split.unwrap_or(d.range_split),
        separate_owners: c.owners == Some(ast::Owners::Separate),
    };
    cfg.validate()?;
    Ok(cfg)
}

/// What a statement did.
enum Done {
    /// An action, with its outcome.
    Action(Result<(), OpError>),
    /// An expectation, with `Some(message)` if it does not hold.
    Expect(Option<String>),
}

/// Runs one parsed scenario.
pub fn run_scenario(file: &str, sc: &Scenario, opts: &RunOptions) -> ScenarioResult {
    let t0 = Instant::now();
    let mut result = ScenarioResult {
        file: file.to_string(),
        passed: false,
        failures: Vec::new(),
        statements: 0,
        stats: Vec::new(),
        backend_calls: 0,
        tolerated: 0,
        injected: 0,
        elapsed: Duration::ZERO,
    };
    let cfg = match config_of(sc) {
        Ok(c) => c,
        Err(e) => {
            result.failures.push(format!("{file}: config: {e}"));
            return result;
        }
    };
    let world = match World::new(cfg) {
        Ok(w) => w,
        Err(e) => {
            result.failures.push(format!("{file}: {e}"));
            return result;
        }
    };
    if let Some(n) = opts.inject_nth {
        world.shared.inject.fail_nth(n);
    }
    if let Some((p, seed)) = opts.inject_probability {
        world.shared.inject.fail_randomly(p, seed);
    }
    let dma_errors_seen = 0;
    'stmts: for stmt in &sc.stmts {
        let outcomes: Vec<(&Stmt, Done)> = match &stmt.kind {
            StmtKind::Concurrent { seed, body } => {
                let tasks: Vec<Box<dyn FnOnce() -> Done + Send + '_>> = body
                    .iter()
                    .map(|s| {
                        let w = &world;
                        Box::new(move || execute(w, s)) as Box<dyn FnOnce() -> Done + Send + '_>
                    })
                    .collect();
                let done = crate::sched::run_concurrent(*seed, tasks);
                body.iter().zip(done).collect()
            }
            _ => vec![(stmt, execute(&world, stmt))],
        };
        world.settle();
        for (s, done) in outcomes {
            result.statements += 1;
            if let Some(msg) = judge(s, done, opts, &mut result.tolerated) {
                result.failures.push(format!("{file}:{}: {msg}", s.line));
                break 'stmts;
            }
        }
        let errors = world.dma_errors();
        if errors.len() > dma_errors_seen {
            for e in &errors[dma_errors_seen..] {
                result.failures.push(format!(
                    "{file}:{}: DMA misuse after `{stmt}`: {e}",
                    stmt.line
                ));
            }
            break;
        }
    }
    result.backend_calls = world.shared.inject.calls();
    result.stats = world.all_stats();
    for leak in world.teardown() {
        result
            .failures
            .push(format!("{file}: leak at end of run: {leak}"));
    }
    let injected = world.shared.inject.injected();
    result.injected = injected.len();
    if !injected.is_empty() && !result.failures.is_empty() {
        let list: Vec<String> = injected
            .iter()
            .map(|(n, site)| format!("{n} ({})", site.name()))
            .collect();
        let what = format!("[injected failures: calls {}]", list.join(", "));
        for f in &mut result.failures {
            *f = format!("{what} {f}");
        }
    }
    result.passed = result.failures.is_empty();
    result.elapsed = t0.elapsed();
    result
}

/// Checks a statement's result; `Some(message)` on failure.
fn judge(s: &Stmt, done: Done, opts: &RunOptions, tolerated: &mut usize) -> Option<String> {
    match done {
        Done::Expect(None) => None,
        Done::Expect(Some(msg)) if opts.sweep => {
            *tolerated += 1;
            let _ = msg;
            None
        }
        Done::Expect(Some(msg)) => Some(format!("`{s}`: {msg}")),
        Done::Action(r) => {
            let allowed = match &r {
                Ok(()) => s.outcome.allows_ok(),
                Err(OpError::Errno(e)) => s.outcome.allows_errno(e.to_errno()),
                Err(OpError::Segv) => s.outcome.allows_segv(),
                Err(OpError::Corruption(m)) => return Some(format!("`{s}`: {m}")),
                Err(OpError::Usage(m)) => return Some(format!("`{s}`: {m}")),
                Err(OpError::Mismatch(m)) if !opts.sweep => return Some(format!("`{s}`: {m}")),
                Err(OpError::Mismatch(_)) | Err(OpError::Sigbus(_)) => false,
            };
            if allowed {
                return None;
            }
            if opts.sweep {
                *tolerated += 1;
                return None;
            }
            let actual = match &r {
                Ok(()) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            Some(format!("`{s}`: expected {}, got {actual}", s.outcome))
        }
    }
}

fn resolve(w: &World, a: &Address) -> Result<u64, OpError> {
    match a {
        Address::Absolute(v) => Ok(*v),
        Address::Named { name, offset } => {
            let r = w.region(name)?;
            r.start
                .checked_add(*offset)
                .ok_or_else(|| OpError::Usage(format!("{name}+{offset:#x} overflows")))
        }
    }
}

fn span_of(w: &World, s: &Span) -> Result<(u64, u64), OpError> {
    let start = resolve(w, &s.addr)?;
    let len = match (s.len, &s.addr) {
        (Some(l), _) => l,
        (None, Address::Named { name, .. }) => {
            let r = w.region(name)?;
            (r.start + r.len)
                .checked_sub(start)
                .filter(|l| *l > 0)
                .ok_or_else(|| {
                    OpError::Usage(format!("address is past the end of region '{name}'"))
                })?
        }
        (None, Address::Absolute(_)) => {
            return Err(OpError::Usage(
                "a span at an absolute address needs len=".into(),
            ))
        }
    };
    Ok((start, len))
}

fn buffer(len: u64) -> Result<Vec<u8>, OpError> {
    if len > 1 << 30 {
        return Err(OpError::Usage(format!(
            "access of {len} bytes is too large (max 1G)"
        )));
    }
    Ok(vec![0u8; len as usize])
}

fn prot(p: ast::Prot) -> Prot {
    match p {
        ast::Prot::Rw => Prot::Rw,
        ast::Prot::R => Prot::R,
        ast::Prot::None => Prot::None,
    }
}

fn kind(k: ast::MapKind) -> MapKind {
    match k {
        ast::MapKind::Anon => MapKind::Anon,
        ast::MapKind::Shared => MapKind::Shared,
        ast::MapKind::File => MapKind::File,
        ast::MapKind::Thp => MapKind::Thp,
        ast::MapKind::Hugetlb => MapKind::Hugetlb,
    }
}

/// Executes one statement (not a `concurrent` block).
fn execute(w: &World, s: &Stmt) -> Done {
    match &s.kind {
        StmtKind::ExpectResidency { span, loc, dev } => Done::Expect(
            span_of(w, span)
                .and_then(|(a, l)| w.residency(a, l, *dev))
                .map_or_else(
                    |e| Some(e.to_string()),
                    |got| {
                        let want = match loc {
                            ast::Residency::Vram => Residency::Vram,
                            ast::Residency::Ram => Residency::Ram,
                            ast::Residency::Mixed => Residency::Mixed,
                            ast::Residency::None => Residency::None,
                        };
                        (got != want).then(|| format!("pages are {got:?}"))
                    },
                ),
        ),
        StmtKind::ExpectRanges { op, value } => Done::Expect(match w.ranges() {
            Ok(n) => (!op.holds(n, *value)).then(|| format!("there are {n} ranges")),
            Err(e) => Some(e.to_string()),
        }),
        StmtKind::ExpectStat { name, op, value } => Done::Expect(match w.stat(name) {
            Ok(n) => (!op.holds(n, *value)).then(|| format!("{name} is {n}")),
            Err(e) => Some(e.to_string()),
        }),
        StmtKind::ExpectChunk { addr, size } => {
            Done::Expect(resolve(w, addr).and_then(|a| w.chunk(a)).map_or_else(
                |e| Some(e.to_string()),
                |got| match got {
                    Some(g) if g == *size => None,
                    Some(g) => Some(format!("the range there is {g:#x} bytes")),
                    None => Some("no range covers it".into()),
                },
            ))
        }
        _ => Done::Action(act(w, &s.kind)),
    }
}

fn act(w: &World, k: &StmtKind) -> Result<(), OpError> {
    match k {
        StmtKind::Process { name } => w.switch(name),
        StmtKind::Fork { child } => w.fork(child),
        StmtKind::Exit => w.exit(),
        StmtKind::Mmap {
            name,
            size,
            align,
            at,
            prot: p,
            kind: k,
        } => {
            let at = match at {
                Some(a) => Some(resolve(w, a)?),
                None => None,
            };
            w.mmap(name, *size, *align, at, prot(*p), kind(*k))
                .map(|_| ())
        }
        StmtKind::Munmap { span } => {
            let (a, l) = span_of(w, span)?;
            w.munmap(a, l)
        }
        StmtKind::Mremap {
            name,
            new_name,
            size,
            dontunmap,
        } => w.mremap(name, new_name, *size, *dontunmap),
        StmtKind::Mprotect { span, prot: p } => {
            let (a, l) = span_of(w, span)?;
            w.mprotect(a, l, prot(*p))
        }
        StmtKind::MadviseDontneed { span } => {
            let (a, l) = span_of(w, span)?;
            w.madvise_dontneed(a, l)
        }
        StmtKind::CpuWrite { span, fill } => {
            let (a, l) = span_of(w, span)?;
            let mut buf = buffer(l)?;
            fill_bytes(fill, a, &mut buf);
            w.cpu_write(a, &buf)
        }
        StmtKind::CpuRead { span, expect } => {
            let (a, l) = span_of(w, span)?;
            let mut buf = buffer(l)?;
            w.cpu_read(a, &mut buf)?;
            check_expect(expect.as_ref(), a, &buf)
        }
        StmtKind::GpuWrite { span, fill, dev } => {
            let (a, l) = span_of(w, span)?;
            let mut buf = buffer(l)?;
            fill_bytes(fill, a, &mut buf);
            w.gpu_write(dev.unwrap_or(0), a, &buf)
        }
        StmtKind::GpuRead { span, expect, dev } => {
            let (a, l) = span_of(w, span)?;
            let mut buf = buffer(l)?;
            w.gpu_read(dev.unwrap_or(0), a, &mut buf)?;
            check_expect(expect.as_ref(), a, &buf)
        }
        StmtKind::GpuAtomic { addr, count, dev } => {
            let a = resolve(w, addr)?;
            w.gpu_atomic(dev.unwrap_or(0), a, *count)
        }
        StmtKind::Prefetch { span, to, dev } => {
            let (a, l) = span_of(w, span)?;
            w.prefetch(dev.unwrap_or(0), a, l, *to == ast::Placement::Vram)
        }
        StmtKind::Advise {
            span,
            preferred,
            atomic,
        } => {
            let (a, l) = span_of(w, span)?;
            let preferred = preferred.map(|p| match p {
                ast::Preferred::Vram => DrvPreferred::Vram,
                ast::Preferred::Ram => DrvPreferred::Ram,
                ast::Preferred::Dev(k) => DrvPreferred::Dev(k),
            });
            let atomic = atomic.map(|m| match m {
                ast::AtomicMode::Device => DrvAtomic::Device,
                ast::AtomicMode::Global => DrvAtomic::Global,
                ast::AtomicMode::Cpu => DrvAtomic::Cpu,
                ast::AtomicMode::Default => DrvAtomic::Default,
            });
            w.advise(a, l, preferred, atomic)
        }
        StmtKind::Evict { dev, span } => {
            let span = match span {
                Some(s) => {
                    let (a, l) = span_of(w, s)?;
                    Some((a, a.saturating_add(l)))
                }
                None => None,
            };
            w.evict(*dev, span)
        }
        StmtKind::RemoveDevice { dev } => w.remove_device(*dev),
        StmtKind::BindBo { span, dev } => {
            let (a, l) = span_of(w, span)?;
            w.bind_bo(dev.unwrap_or(0), a, l)
        }
        StmtKind::Concurrent { .. }
        | StmtKind::ExpectResidency { .. }
        | StmtKind::ExpectRanges { .. }
        | StmtKind::ExpectStat { .. }
        | StmtKind::ExpectChunk { .. } => Err(OpError::Usage("not an action".into())),
    }
}

fn check_expect(expect: Option<&ast::Pattern>, addr: u64, data: &[u8]) -> Result<(), OpError> {
    match expect {
        None => Ok(()),
        Some(p) => check_bytes(p, addr, data)
            .map_err(|m| OpError::Mismatch(format!("read does not match expect=: {m}"))),
    }
}

/// One line per scenario, then a summary.
pub fn summary(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    for r in results {
        if r.passed {
            let _ = writeln!(
                out,
                "PASS {} ({} statements, {} backend calls, {:.1} ms)",
                r.file,
                r.statements,
                r.backend_calls,
                r.elapsed.as_secs_f64() * 1e3
            );
        } else {
            let _ = writeln!(out, "FAIL {}", r.file);
            for f in &r.failures {
                let _ = writeln!(out, "  {f}");
            }
        }
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let _ = writeln!(
        out,
        "{passed} of {} scenarios passed{}",
        results.len(),
        if passed == results.len() {
            ""
        } else {
            " — FAILED"
        }
    );
    out
}
