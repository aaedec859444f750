//! End to end on the simulator (`gpusvm_sim::world::World`, reference Xe-style driver), through
//! the `World` API directly.
//!
//! `faults/*`: one GPU access per range of a fresh 32 MiB region, so every access is a GPU page
//! fault. Workloads:
//! - `2m_ram`: 2 MiB ranges kept in system memory (`advise preferred=ram`): find_or_insert,
//!   get_pages of 512 CPU pages (faulted in by the simulated mm), commit of 512 GPU PTEs;
//! - `2m_vram`: the default policy, which migrates every 2 MiB range to VRAM on the fault;
//! - `4k_sparse`: 4 KiB chunks only, 1024 random pages of the region.
//!
//! Baseline in the same run, `zero_cost/2m`: the core's part of the `2m_ram` fault
//! (find_or_insert + get_pages + commit check) on the zero-cost backends of `gpusvm-benches`, so
//! `zero_cost / 2m_ram` is the share of a simulated fault spent in the core proper. The setup
//! also prints the simulator's own `core_ns` statistic (wall time of the fault handler).
//!
//! `migrate/*`: `prefetch` of a populated 32 MiB region to VRAM and back to RAM, against a
//! `memcpy` of the same bytes in the same run (goal: ≥ 80 % of memcpy's bytes per second).
//!
//! Only the GPU (or prefetch) phase is timed; creating the world and populating memory is not.
//! See docs/PERFORMANCE.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use gpusvm_benches::{ctx, gpuva, new_svm, BenchMm, Rng, BASE, SZ_2M};
use gpusvm_sim::config::SimConfig;
use gpusvm_sim::driver::Preferred;
use gpusvm_sim::mm::{MapKind, Prot};
use gpusvm_sim::world::World;

const REGION: u64 = 32 << 20;
const PAGE: u64 = 4096;

/// A fresh world with one populated (CPU-written) region; returns its start.
fn world(cfg: SimConfig, populate: bool) -> (World, u64) {
    let w = World::new(cfg).expect("world");
    let start = w
        .mmap("buf", REGION, Some(SZ_2M), None, Prot::Rw, MapKind::Anon)
        .expect("mmap");
    if populate {
        let chunk = vec![0xa5u8; SZ_2M as usize];
        for off in (0..REGION).step_by(SZ_2M as usize) {
            w.cpu_write(start + off, &chunk).expect("cpu_write");
        }
    }
    (w, start)
}

fn stat(w: &World, name: &str) -> u64 {
    w.stat(name).expect("stat")
}

fn core_ns(w: &World) -> u64 {
    w.all_stats().iter().map(|(_, s)| s.core_ns).sum()
}

fn finish(w: World) {
    let leaks = w.teardown();
    assert!(leaks.is_empty(), "simulator leaks: {leaks:?}");
}

#[derive(Clone, Copy)]
enum Workload {
    Ram2m,
    Vram2m,
    Sparse4k,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Ram2m => "2m_ram",
            Workload::Vram2m => "2m_vram",
            Workload::Sparse4k => "4k_sparse",
        }
    }

    fn config(self) -> SimConfig {
        let mut cfg = SimConfig::default();
        if let Workload::Sparse4k = self {
            cfg.chunks = vec![PAGE];
        }
        cfg
    }

    /// The addresses the GPU touches (one fault each).
    fn addrs(self, start: u64) -> Vec<u64> {
        match self {
            Workload::Ram2m | Workload::Vram2m => {
                (0..REGION / SZ_2M).map(|i| start + i * SZ_2M).collect()
            }
            Workload::Sparse4k => {
                let mut pages: Vec<u64> = (0..REGION / PAGE).collect();
                let mut rng = Rng::new(9);
                for i in (1..pages.len()).rev() {
                    pages.swap(i, rng.below(i as u64 + 1) as usize);
                }
                pages.truncate(1024);
                pages.iter().map(|p| start + p * PAGE).collect()
            }
        }
    }

    fn prepare(self) -> (World, Vec<u64>) {
        let (w, start) = world(self.config(), true);
        if let Workload::Ram2m = self {
            w.advise(start, REGION, Some(Preferred::Ram), None)
                .expect("advise");
        }
        let addrs = self.addrs(start);
        (w, addrs)
    }

    /// One pass; returns (elapsed, faults, core_ns).
    fn run(self) -> (Duration, u64, u64) {
        let (w, addrs) = self.prepare();
        let mut buf = [0u8; 8];
        let t = Instant::now();
        for &a in &addrs {
            w.gpu_read(0, a, &mut buf).expect("gpu_read");
        }
        let elapsed = t.elapsed();
        let faults = stat(&w, "gpu_faults");
        let ns = core_ns(&w);
        finish(w);
        (elapsed, faults, ns)
    }
}

fn faults(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim_faults");
    g.sampling_mode(SamplingMode::Flat);
    for wl in [Workload::Ram2m, Workload::Vram2m, Workload::Sparse4k] {
        let (t, faults, ns) = wl.run();
        let n = wl.addrs(BASE).len() as u64;
        assert_eq!(faults, n, "{}: one fault per access", wl.name());
        println!(
            "sim {}: {faults} faults in {t:.2?}; simulator core_ns/fault = {} ns",
            wl.name(),
            ns / faults
        );
        g.throughput(Throughput::Elements(n));
        g.bench_function(BenchmarkId::new("sim", wl.name()), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| wl.run().0).sum())
        });
    }

    // The core alone on zero-cost backends: the same 16 faults as `2m_ram`.
    let n = REGION / SZ_2M;
    g.throughput(Throughput::Elements(n));
    g.bench_function(BenchmarkId::new("zero_cost", "2m"), |b| {
        let mm = BenchMm::new();
        let mut svm = new_svm(&mm, gpusvm_benches::XE_CHUNKS);
        let (window, ctx) = (gpuva(), ctx());
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                for i in 0..n {
                    let r = svm
                        .range_find_or_insert(BASE + i * SZ_2M, window, &ctx)
                        .expect("range");
                    let pages = &r.data().pages;
                    svm.range_get_pages(&r, pages, &ctx).expect("get_pages");
                    let nl = svm.notifier_lock();
                    let ok = svm.pages_entries(&nl, pages, |e| e.len());
                    assert_eq!(black_box(ok), Some(512));
                }
                total += t.elapsed();
                for i in 0..n {
                    let r = svm.range_at(BASE + i * SZ_2M).map(|r| r.get());
                    if let Some(r) = r {
                        svm.range_remove(&r);
                    }
                }
            }
            total
        })
    });
    g.finish();
}

fn migrate(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim_migrate");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(REGION));
    let (w, start) = world(SimConfig::default(), true);
    // Sanity: both directions move every byte, and data survives.
    w.prefetch(0, start, REGION, true).expect("to vram");
    assert_eq!(stat(&w, "bytes_to_vram"), REGION);
    w.prefetch(0, start, REGION, false).expect("to ram");
    let mut probe = [0u8; 4];
    w.cpu_read(start + REGION - 4, &mut probe).expect("read");
    assert_eq!(probe, [0xa5; 4]);
    g.bench_function("to_vram", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                w.prefetch(0, start, REGION, true).expect("to vram");
                total += t.elapsed();
                w.prefetch(0, start, REGION, false).expect("to ram");
            }
            total
        })
    });
    g.bench_function("to_ram", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                w.prefetch(0, start, REGION, true).expect("to vram");
                let t = Instant::now();
                w.prefetch(0, start, REGION, false).expect("to ram");
                total += t.elapsed();
            }
            total
        })
    });
    let moved = stat(&w, "bytes_to_vram") + stat(&w, "bytes_to_ram");
    println!("sim migrate: {moved} bytes moved in total");
    finish(w);
    let src = vec![0x5au8; REGION as usize];
    let mut dst = vec![0u8; REGION as usize];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    g.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);
    targets = faults, migrate
}
criterion_main!(group);
