//! The harness every workload runs in: a [`Session`] owns the world and executes the workload's
//! batches, checks after each one that nothing went wrong, samples what the report and the
//! residency map need, and at the end tears the world down and builds the report.
//!
//! # Batches and lanes
//!
//! A workload describes its work as *batches* of independent *lanes*. A lane is a closure over
//! the world that performs a short sequence of operations which must stay in order (write a
//! chunk, read it back); lanes of one batch must not depend on each other. With `--threads 1` a
//! batch runs its lanes one after the other; with `--threads N` the lanes are dealt round-robin
//! to `N` simulated threads run by [`crate::sched::run_concurrent`], seeded from `--seed` and the
//! batch number, so a run stays reproducible. Between batches the session settles the world
//! (runs the garbage collectors), advances the virtual clock by a millisecond, fails the run on
//! any DMA error, samples live ranges by size, and samples residency for the SVG.
//!
//! Operations outside lanes (process switches, forks, exits) happen between batches, on the
//! session's thread: the world's current process is global, so lanes of one batch all act on
//! the same process.
//!
//! # Failures
//!
//! Every check produces a [`Failure`] with a message that says what was being done. The first
//! failure stops the workload; the session still tears the world down, so leaks caused by the
//! failure are reported too.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::config::SimConfig;
use crate::mm::{MapKind, Prot};
use crate::scenario::pattern::seed_byte;
use crate::stats::ProcStats;
use crate::svg::ResidencyMap;
use crate::world::{OpError, OpResult, World};

use super::progress::Progress;
use super::{Params, WorkloadReport};

/// Why a workload run failed: data corruption, a DMA error, a leak, or an operation that
/// returned something the workload does not allow. The message says which and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The result of a workload's part.
pub type Checked<T = ()> = Result<T, Failure>;

/// Turns a world operation's error into a [`Failure`] naming the operation.
pub trait OrFail<T> {
    /// `Err(e)` becomes a failure `"{what}: {e}"`; corruption keeps its own wording.
    fn or_fail(self, what: impl FnOnce() -> String) -> Checked<T>;
}

impl<T> OrFail<T> for OpResult<T> {
    fn or_fail(self, what: impl FnOnce() -> String) -> Checked<T> {
        self.map_err(|e| match e {
            OpError::Corruption(m) => Failure(format!("data corruption during {}: {m}", what())),
            e => Failure(format!("{}: unexpected {e}", what())),
        })
    }
}

/// A CPU access that must fault fatally (SEGV): anything else is a failure.
pub fn expect_segv(r: OpResult, what: impl FnOnce() -> String) -> Checked {
    match r {
        Err(OpError::Segv) => Ok(()),
        Ok(()) => Err(Failure(format!("{}: succeeded, expected SEGV", what()))),
        Err(e) => Err(Failure(format!("{}: expected SEGV, got {e}", what()))),
    }
}

/// A GPU access that the driver must refuse with an errno (e.g. to unmapped memory): success
/// means the GPU reached memory it must not, which is a failure.
pub fn expect_gpu_refused(r: OpResult, what: impl FnOnce() -> String) -> Checked {
    match r {
        Err(OpError::Errno(_)) => Ok(()),
        Ok(()) => Err(Failure(format!(
            "{}: the GPU accessed memory that is not mapped (stale GPU mapping)",
            what()
        ))),
        Err(e) => Err(Failure(format!("{}: expected an errno, got {e}", what()))),
    }
}

/// The bytes `seed:N` puts at `[addr, addr + len)` (the scenario format's documented pattern,
/// [`seed_byte`]).
pub fn pattern(seed: u64, addr: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| seed_byte(seed, addr.wrapping_add(i)))
        .collect()
}

/// Checks that `data`, read at `addr`, holds `expected(addr + i)` at every `i`.
pub fn check_bytes(
    data: &[u8],
    addr: u64,
    expected: impl Fn(u64) -> u8,
    what: impl FnOnce() -> String,
) -> Checked {
    match (0..data.len()).find(|&i| data[i] != expected(addr + i as u64)) {
        None => Ok(()),
        Some(i) => Err(Failure(format!(
            "data corruption during {}: at {:#x} found {:#04x}, expected {:#04x}",
            what(),
            addr + i as u64,
            data[i],
            expected(addr + i as u64)
        ))),
    }
}

/// The CPU writes `seed:N` bytes over `[addr, addr + len)`.
///
/// # Errors
///
/// The world's error, as a failure.
pub fn cpu_fill(w: &World, addr: u64, len: u64, seed: u64) -> Checked {
    w.cpu_write(addr, &pattern(seed, addr, len as usize))
        .or_fail(|| format!("CPU write of {len:#x} bytes at {addr:#x}"))
}

/// The CPU reads `[addr, addr + len)` and checks it holds `seed:N` bytes.
///
/// # Errors
///
/// The world's error or a mismatch, as a failure.
pub fn cpu_check(w: &World, addr: u64, len: u64, seed: u64) -> Checked {
    let what = || format!("CPU read of {len:#x} bytes at {addr:#x}");
    let mut buf = vec![0u8; len as usize];
    w.cpu_read(addr, &mut buf).or_fail(what)?;
    check_bytes(&buf, addr, |a| seed_byte(seed, a), what)
}

/// GPU `dev` writes `seed:N` bytes over `[addr, addr + len)`.
///
/// # Errors
///
/// The world's error, as a failure.
pub fn gpu_fill(w: &World, dev: u32, addr: u64, len: u64, seed: u64) -> Checked {
    w.gpu_write(dev, addr, &pattern(seed, addr, len as usize))
        .or_fail(|| format!("GPU {dev} write of {len:#x} bytes at {addr:#x}"))
}

/// GPU `dev` reads `[addr, addr + len)` and checks it holds `seed:N` bytes.
///
/// # Errors
///
/// The world's error or a mismatch, as a failure.
pub fn gpu_check(w: &World, dev: u32, addr: u64, len: u64, seed: u64) -> Checked {
    let what = || format!("GPU {dev} read of {len:#x} bytes at {addr:#x}");
    let mut buf = vec![0u8; len as usize];
    w.gpu_read(dev, addr, &mut buf).or_fail(what)?;
    check_bytes(&buf, addr, |a| seed_byte(seed, a), what)
}

/// Splits `[0, len)` into pieces of at most `piece` bytes: `(offset, length)` pairs.
pub fn pieces(len: u64, piece: u64) -> Vec<(u64, u64)> {
    let piece = piece.max(1);
    (0..len.div_ceil(piece))
        .map(|i| (i * piece, piece.min(len - i * piece)))
        .collect()
}

/// A seed derived from the run's seed and a few coordinates (step, buffer, ...), so that every
/// write of a run has its own recognizable pattern.
pub fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    let mut r = Rng::new(seed);
    for &p in parts {
        r.0 ^= p.wrapping_mul(GOLDEN_GAMMA);
        r.next_u64();
    }
    r.next_u64()
}

/// A lane: operations that stay in order, independent of the other lanes of its batch.
pub type Lane<'a> = Box<dyn FnOnce(&World) -> Checked + Send + 'a>;

/// Boxes a closure as a [`Lane`].
pub fn lane<'a>(f: impl FnOnce(&World) -> Checked + Send + 'a) -> Lane<'a> {
    Box::new(f)
}

/// The SplitMix64 increment, used to derive independent seeds.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A small deterministic PRNG (SplitMix64): every random choice of a workload comes from one,
/// seeded by `--seed`, so runs are reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x2545_F491_4F6C_DD1D)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            // Multiply-shift: unbiased enough for workload choices, never panics.
            ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo).saturating_add(1))
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A buffer shown in the residency map.
struct Track {
    label: String,
    process: String,
    start: u64,
    len: u64,
}

/// What a session collects besides the report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Collect {
    /// Sample residency for the SVG map.
    pub svg: bool,
    /// Draw a progress bar on stderr (the caller checked it is a terminal).
    pub progress: bool,
    /// Print the demo's narration on stdout.
    pub narrate: bool,
}

/// A workload run in progress; see the module documentation.
pub struct Session {
    /// The simulated world.
    pub world: World,
    /// The run's parameters.
    pub params: Params,
    /// The workload's random choices.
    pub rng: Rng,
    name: String,
    collect: Collect,
    tracks: Vec<Track>,
    map: Option<ResidencyMap>,
    progress: Progress,
    steps_done: u64,
    batches: u64,
    dma_errors_seen: usize,
    peak_ranges: BTreeMap<u64, usize>,
    peak_total: usize,
    notes: Vec<String>,
    started: Instant,
}

impl Session {
    /// A fresh world for `params` (default simulation settings otherwise).
    ///
    /// # Errors
    ///
    /// The configuration's complaint (e.g. too many devices).
    pub fn new(name: &str, params: &Params, collect: Collect) -> Result<Self, String> {
        let cfg = SimConfig {
            vram: params.vram,
            devices: params.devices,
            seed: params.seed,
            ..SimConfig::default()
        };
        let world = World::new(cfg)?;
        Ok(Session {
            world,
            params: params.clone(),
            rng: Rng::new(params.seed),
            name: name.to_string(),
            collect,
            tracks: Vec::new(),
            map: None,
            progress: Progress::new(name, collect.progress),
            steps_done: 0,
            batches: 0,
            dma_errors_seen: 0,
            peak_ranges: BTreeMap::new(),
            peak_total: 0,
            notes: Vec::new(),
            started: Instant::now(),
        })
    }

    /// Number of GPUs.
    pub fn devices(&self) -> u32 {
        self.params.devices
    }

    /// `mmap NAME size=LEN align=ALIGN` of private anonymous read-write memory in the current
    /// process.
    ///
    /// # Errors
    ///
    /// The mm's error, as a failure.
    pub fn mmap(&self, name: &str, len: u64, align: u64) -> Checked<u64> {
        self.mmap_kind(name, len, align, MapKind::Anon)
    }

    /// `mmap` of a given kind, read-write.
    ///
    /// # Errors
    ///
    /// The mm's error, as a failure.
    pub fn mmap_kind(&self, name: &str, len: u64, align: u64, kind: MapKind) -> Checked<u64> {
        self.world
            .mmap(name, len, Some(align), None, Prot::Rw, kind)
            .or_fail(|| format!("mmap {name} size={len:#x}"))
    }

    /// Shows `[start, start + len)` of the current process as a labelled band of the residency
    /// map. Tracks must be declared before the first batch (the map's geometry is fixed then);
    /// later ones are ignored.
    pub fn track(&mut self, label: &str, start: u64, len: u64) {
        let process = self
            .world
            .current()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        self.track_process(label, &process, start, len);
    }

    /// [`Session::track`] for a span of process `process`, which need not exist yet (or any
    /// more): its pages show as unmapped while it does not.
    pub fn track_process(&mut self, label: &str, process: &str, start: u64, len: u64) {
        if self.map.is_none() {
            self.tracks.push(Track {
                label: label.to_string(),
                process: process.to_string(),
                start,
                len,
            });
        }
    }

    /// Prints a line of the demo's narration (nothing outside the demo).
    pub fn say(&self, line: &str) {
        if self.collect.narrate {
            println!("{line}");
        }
    }

    /// Records a workload-specific result line for the report (e.g. final counter values).
    pub fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    /// Runs one batch of lanes (see the module documentation), then settles, checks and
    /// samples.
    ///
    /// # Errors
    ///
    /// The first lane failure, or a DMA error.
    pub fn batch(&mut self, lanes: Vec<Lane<'_>>) -> Checked {
        let result = self.execute(lanes);
        self.end_batch(result)
    }

    /// Runs `f` on the world as a batch of one lane (on the session's thread) and returns its
    /// value.
    ///
    /// # Errors
    ///
    /// `f`'s failure, or a DMA error.
    pub fn run<T>(&mut self, f: impl FnOnce(&World) -> Checked<T>) -> Checked<T> {
        let result = f(&self.world);
        self.end_batch(result)
    }

    /// After a batch: settle the world (garbage collectors), let a millisecond of virtual time
    /// pass, then — unless the batch failed — check for DMA errors and sample.
    fn end_batch<T>(&mut self, result: Checked<T>) -> Checked<T> {
        self.batches += 1;
        self.world.settle();
        self.world.shared.clock.advance(1);
        let value = result?;
        self.check_dma()?;
        self.sample();
        Ok(value)
    }

    fn execute(&self, lanes: Vec<Lane<'_>>) -> Checked {
        let threads = (self.params.threads.max(1) as usize).min(lanes.len());
        let w = &self.world;
        if threads <= 1 {
            return lanes.into_iter().try_for_each(|l| l(w));
        }
        let mut groups: Vec<Vec<Lane<'_>>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, l) in lanes.into_iter().enumerate() {
            if let Some(g) = groups.get_mut(i % threads) {
                g.push(l);
            }
        }
        type Task<'t> = Box<dyn FnOnce() -> Checked + Send + 't>;
        let tasks: Vec<Task<'_>> = groups
            .into_iter()
            .map(|g| Box::new(move || g.into_iter().try_for_each(|l| l(w))) as Task<'_>)
            .collect();
        let seed = self.params.seed ^ (self.batches + 1).wrapping_mul(GOLDEN_GAMMA);
        crate::sched::run_concurrent(seed, tasks)
            .into_iter()
            .collect::<Checked<Vec<()>>>()
            .map(|_| ())
    }

    fn check_dma(&mut self) -> Checked {
        let errors = self.world.dma_errors();
        if errors.len() > self.dma_errors_seen {
            let new = errors[self.dma_errors_seen..].join("; ");
            self.dma_errors_seen = errors.len();
            return Err(Failure(format!(
                "DMA error (after batch {}): {new}",
                self.batches
            )));
        }
        Ok(())
    }

    /// Live ranges of every process by size.
    fn range_sizes(&self) -> BTreeMap<u64, usize> {
        let mut sizes = BTreeMap::new();
        for p in self.world.processes() {
            for (size, n) in p.vm.range_sizes() {
                *sizes.entry(size).or_insert(0) += n;
            }
        }
        sizes
    }

    fn sample(&mut self) {
        let sizes = self.range_sizes();
        let total: usize = sizes.values().sum();
        if total > self.peak_total {
            self.peak_total = total;
            self.peak_ranges = sizes;
        }
        if !self.collect.svg {
            return;
        }
        let map = self
            .map
            .get_or_insert_with(|| Self::empty_map(&self.tracks, self.params.devices));
        let procs = self.world.processes();
        let column: Vec<_> = self
            .tracks
            .iter()
            .map(|t| {
                procs
                    .iter()
                    .find(|p| p.name == t.process)
                    .map(|p| p.page_residency(t.start, t.len))
                    .unwrap_or_default()
            })
            .collect();
        map.push(&column);
    }

    /// A residency map with no column yet over `tracks`.
    fn empty_map(tracks: &[Track], devices: u32) -> ResidencyMap {
        let spec: Vec<(String, u64)> = tracks
            .iter()
            .map(|t| (t.label.clone(), t.len.div_ceil(crate::mem::PAGE)))
            .collect();
        ResidencyMap::new(&spec, devices)
    }

    /// Marks the end of one of the workload's `--steps` steps (progress bar, map ticks).
    pub fn end_step(&mut self) {
        self.steps_done += 1;
        if let Some(m) = &mut self.map {
            m.mark_step(self.steps_done);
        }
        self.progress.update(self.steps_done, self.params.steps);
    }

    /// Ends the run: samples the final ranges, tears the world down (every process exits) and
    /// checks for leaks, then builds the report and, if asked, the SVG.
    pub fn finish(mut self, result: Checked) -> super::Outcome {
        self.progress.clear();
        let ranges_final = self.range_sizes();
        let mut failures: Vec<String> = result.err().map(|f| f.0).into_iter().collect();
        let devices = self.world.shared.devices();
        let copy_calls = devices
            .iter()
            .map(|d| d.copy_calls.load(Ordering::SeqCst))
            .sum();
        let copy_bytes = devices
            .iter()
            .map(|d| d.copy_bytes.load(Ordering::SeqCst))
            .sum();
        let dma_mappings = devices.iter().map(|d| d.dma.total()).sum();
        let leaks = self.world.teardown();
        // The leak checker lists every DMA misuse ever recorded; report only those no batch
        // reported yet (e.g. made by the teardown itself), as DMA errors.
        if let Err(f) = self.check_dma() {
            failures.push(f.0);
        }
        failures.extend(
            leaks
                .into_iter()
                .filter(|l| !l.contains("DMA misuse"))
                .map(|l| format!("leak at teardown: {l}")),
        );
        let processes = self.world.all_stats();
        let mut totals = ProcStats::default();
        for (_, s) in &processes {
            totals.add(s);
        }
        let wall = self.started.elapsed();
        if self.collect.svg && self.map.is_none() {
            // The run stopped before its first batch: the map is empty, but it is written.
            self.map = Some(Self::empty_map(&self.tracks, self.params.devices));
        }
        let svg = self.map.as_ref().map(|m| {
            let p = &self.params;
            m.render(
                &format!(
                    "gpusvm-sim workload {}: page residency over time",
                    self.name
                ),
                &format!(
                    "size {}, VRAM {} × {} GPU{}, {} thread{}, seed {}, {} steps — {}",
                    super::size_arg(p.size),
                    super::size_arg(p.vram),
                    p.devices,
                    if p.devices == 1 { "" } else { "s" },
                    p.threads,
                    if p.threads == 1 { "" } else { "s" },
                    p.seed,
                    self.steps_done,
                    if failures.is_empty() {
                        "passed"
                    } else {
                        "FAILED"
                    }
                ),
            )
        });
        super::Outcome {
            report: WorkloadReport {
                workload: self.name.clone(),
                params: self.params.clone(),
                passed: failures.is_empty(),
                failures,
                notes: std::mem::take(&mut self.notes),
                steps: self.steps_done,
                batches: self.batches,
                totals,
                processes,
                ranges_peak: std::mem::take(&mut self.peak_ranges),
                ranges_final,
                copy_calls,
                copy_bytes,
                dma_mappings,
                wall,
            },
            svg,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_reproducible_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..100).map(|_| a.below(10)).collect();
        assert_eq!(xs, (0..100).map(|_| b.below(10)).collect::<Vec<_>>());
        assert!(xs.iter().all(|&x| x < 10));
        assert!(xs.iter().any(|&x| x != xs[0]));
        assert_eq!(a.below(0), 0);
        assert!((0..100).all(|_| (3..=5).contains(&a.between(3, 5))));
    }

    #[test]
    fn failures_name_the_operation() {
        let r: OpResult = Err(OpError::Segv);
        assert_eq!(
            r.or_fail(|| "cpu read A".into()).unwrap_err().0,
            "cpu read A: unexpected SEGV"
        );
        assert!(expect_segv(Err(OpError::Segv), String::new).is_ok());
        assert!(expect_segv(Ok(()), || "x".into()).is_err());
        assert!(expect_gpu_refused(Ok(()), || "x".into()).is_err());
        let data = pattern(3, 0x1000, 64);
        assert!(check_bytes(&data, 0x1000, |a| seed_byte(3, a), String::new).is_ok());
        let e = check_bytes(&data, 0x1001, |a| seed_byte(3, a), || "t".into());
        assert!(e.unwrap_err().0.contains("data corruption during t"));
    }
}
