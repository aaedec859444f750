//! Invalidation of k ranges among n: an MMU-notifier callback over k consecutive DMA-mapped
//! single-page ranges of a tree of n (`Clear` event: the ranges stay, their pages are unmapped).
//!
//! The cost must grow with k, not with n, and the callback must not allocate: the setup checks
//! that one invalidation makes zero calls to the core's allocator and to the process heap
//! (`CountingGlobal` is installed here). Each timed batch invalidates up to 32 *disjoint* groups
//! of k ranges at random places (3 when k = 256 in a window of 1000 ranges), all mapped just
//! before: only the invalidations are timed, mapping the pages is not. So every invalidation
//! unmaps k mapped ranges, at every n and k. `core_window1k` draws the groups from the first
//! 1000 ranges of the big trees, so that it touches as little memory as the n = 1000 case:
//! comparing it with n = 1000 isolates the effect of n from that of the cache. At n = 1M that
//! comparison is also measured paired (the same groups in the 1M tree and in a 1K tree, back to
//! back; `invalidate_1m_vs_1k_k*` in `target/criterion/paired/`).
//! Baseline in the same run: the same walk and flag updates over a `BTreeMap` of n entries
//! under the same lock type held for writing. See docs/PERFORMANCE.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gpusvm_benches::{
    build_tree, map_range, new_svm, paired, range_addr, BenchDriver, BenchMm, CountingAlloc,
    CountingGlobal, Rng, PAGE, XE_CHUNKS,
};
use gpusvm_core::{MmuEvent, RawRwLock, SpinRwLock, Svm};

#[global_allocator]
static GLOBAL: CountingGlobal = CountingGlobal;

const NS: [u64; 3] = [1_000, 100_000, 1_000_000];
const KS: [u64; 3] = [1, 16, 256];
/// Groups per timed batch, at most: fewer when the window cannot hold that many disjoint groups
/// (3 groups of 256 in a window of 1000 ranges).
const GROUPS: u64 = 32;
/// Batches per round of the paired 1M-vs-1K measurement.
const PAIRED_BATCHES: usize = 128;

/// The first ranges of up to [`GROUPS`] disjoint groups of `k` consecutive ranges, placed
/// uniformly at random among the first `window` ranges, in random order. Disjoint, so that
/// every invalidation of a batch finds its k ranges mapped and does the same work.
fn pick(rng: &mut Rng, window: u64, k: u64) -> Vec<u64> {
    let groups = GROUPS.min(window / k);
    let slack = window - groups * k;
    let mut firsts: Vec<u64> = (0..groups).map(|_| rng.below(slack + 1)).collect();
    firsts.sort_unstable();
    for (j, f) in firsts.iter_mut().enumerate() {
        *f += j as u64 * k;
    }
    for i in (1..firsts.len()).rev() {
        firsts.swap(i, rng.below(i as u64 + 1) as usize);
    }
    firsts
}

fn span_of(first: u64, k: u64) -> (u64, u64) {
    (range_addr(first), range_addr(first + k - 1) + PAGE)
}

/// One batch: maps the ranges of fresh disjoint groups (not timed), then invalidates each group
/// (timed). Returns the time and the number of invalidations.
fn core_batch(
    mm: &BenchMm,
    svm: &Svm<BenchDriver>,
    rng: &mut Rng,
    window: u64,
    k: u64,
) -> (Duration, u64) {
    let firsts = pick(rng, window, k);
    for &f in &firsts {
        for i in f..f + k {
            map_range(svm, range_addr(i));
        }
    }
    let t = Instant::now();
    for &f in &firsts {
        let (s, e) = span_of(f, k);
        black_box(mm.invalidate(s, e, MmuEvent::Clear));
    }
    (t.elapsed(), firsts.len() as u64)
}

fn tree(n: u64) -> (BenchMm, Svm<BenchDriver>) {
    let mm = BenchMm::new();
    let mut svm = new_svm(&mm, XE_CHUNKS);
    build_tree(&mut svm, &mm, n);
    (mm, svm)
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("invalidate");
    // The 1K tree stays alive for the paired 1M-vs-1K comparison.
    let (mm1k, svm1k) = tree(1_000);
    for &n in &NS {
        let big = (n != 1_000).then(|| tree(n));
        let (mm, svm) = match &big {
            Some((mm, svm)) => (mm, svm),
            None => (&mm1k, &svm1k),
        };
        let btree: BTreeMap<u64, (u64, AtomicU16)> = (0..n)
            .map(|i| (range_addr(i), (range_addr(i) + PAGE, AtomicU16::new(4))))
            .collect();
        let lock = SpinRwLock::new();
        for &k in KS.iter().filter(|&&k| k <= n) {
            // Setup check: one invalidation of k mapped ranges unmaps exactly them and allocates
            // nothing, neither through the core's allocator nor on the heap; a batch's groups
            // are disjoint.
            {
                for i in 0..k {
                    map_range(svm, range_addr(i));
                }
                let (s, e) = span_of(0, k);
                let (core0, heap0, inv0) = (
                    CountingAlloc::stats(),
                    CountingGlobal::stats(),
                    BenchDriver::invalidated_ranges(),
                );
                assert!(mm.invalidate(s, e, MmuEvent::Clear));
                assert_eq!(CountingAlloc::stats().since(core0).calls, 0);
                assert_eq!(CountingGlobal::stats().since(heap0).calls, 0);
                assert_eq!(BenchDriver::invalidated_ranges() - inv0, k as usize);
                assert!(!gpusvm_benches::fault_hit(svm, s));
                let mut rng = Rng::new(9);
                for window in [n.min(1_000), n] {
                    let mut firsts = pick(&mut rng, window, k);
                    firsts.sort_unstable();
                    assert!(firsts.windows(2).all(|w| w[0] + k <= w[1]));
                    assert!(firsts.last().is_some_and(|&l| l + k <= window));
                }
            }
            g.throughput(Throughput::Elements(k));
            // `core`: groups anywhere in the tree. `core_window1k`: groups among the first 1000
            // ranges of the same tree, so that the data touched is as cache-resident as with
            // n = 1000 and only n differs.
            let variants: &[(&str, u64)] = if n > 1_000 {
                &[("core", n), ("core_window1k", 1_000)]
            } else {
                &[("core", n)]
            };
            for &(name, window) in variants {
                g.bench_function(BenchmarkId::new(format!("{name}/k={k}"), n), |b| {
                    let mut rng = Rng::new(3);
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        let mut done = 0;
                        while done < iters {
                            let (t, groups) = core_batch(mm, svm, &mut rng, window, k);
                            total += t;
                            done += groups;
                        }
                        total.mul_f64(iters as f64 / done as f64)
                    })
                });
            }
            if n == 1_000_000 {
                // Paired: the same groups (same seeds, same 1000-range window) invalidated in
                // the 1M tree and in the 1K tree, back to back.
                let seed = std::cell::Cell::new(1_000u64);
                let round = |mm: &BenchMm, svm: &Svm<BenchDriver>, seed: u64| {
                    let mut rng = Rng::new(seed);
                    let mut total = Duration::ZERO;
                    for _ in 0..PAIRED_BATCHES {
                        total += core_batch(mm, svm, &mut rng, 1_000, k).0;
                    }
                    total
                };
                let p = paired(
                    31,
                    || round(mm, svm, seed.get()),
                    || {
                        let t = round(&mm1k, &svm1k, seed.get());
                        seed.set(seed.get() + 1);
                        t
                    },
                );
                println!(
                    "paired invalidate k={k}: 1M tree (groups in a 1K window) / 1K tree, \
                     same groups {p}"
                );
                p.save(&format!("invalidate_1m_vs_1k_k{k}"));
            }
            g.bench_function(BenchmarkId::new(format!("btreemap/k={k}"), n), |b| {
                let mut rng = Rng::new(3);
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let firsts = pick(&mut rng, n, k);
                        for &f in &firsts {
                            for i in f..f + k {
                                if let Some(v) = btree.get(&range_addr(i)) {
                                    v.1.store(4, Ordering::Relaxed);
                                }
                            }
                        }
                        let t = Instant::now();
                        for &f in &firsts {
                            let (s, e) = span_of(f, k);
                            lock.write_lock();
                            // The entries intersecting [s, e): walk down from e while they end
                            // after s, clearing the validity word (the "unmap").
                            for (_, (_, valid)) in
                                btree.range(..e).rev().take_while(|(_, (end, _))| *end > s)
                            {
                                valid.store(0, Ordering::Release);
                            }
                            // SAFETY: Taken above.
                            unsafe { lock.write_unlock() };
                        }
                        total += t.elapsed();
                        done += firsts.len() as u64;
                    }
                    total.mul_f64(iters as f64 / done as f64)
                })
            });
        }
        if let Some((mm, svm)) = big {
            drop(svm);
            assert_eq!(mm.notifiers(), 0);
        }
    }
    drop(svm1k);
    assert_eq!(mm1k.notifiers(), 0);
    g.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20);
    targets = benches
}
criterion_main!(group);
