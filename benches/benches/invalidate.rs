//! Invalidation of k ranges among n: an MMU-notifier callback over k consecutive DMA-mapped
//! single-page ranges of a tree of n (`Clear` event: the ranges stay, their pages are unmapped).
//!
//! The cost must grow with k, not with n, and the callback must not allocate: the setup checks
//! that one invalidation makes zero calls to the core's allocator and to the process heap
//! (`CountingGlobal` is installed here). Each sample invalidates 32 groups of k ranges at
//! random places; only the invalidations are timed, re-mapping the pages in between is not.
//! `core_window1k` draws the groups from the first 1000 ranges of the big trees, so that it
//! touches as little memory as the n = 1000 case: comparing it with n = 1000 isolates the
//! effect of n from that of the cache.
//! Baseline in the same run: the same walk and flag updates over a `BTreeMap` of n entries
//! under the same lock type held for writing. See docs/PERFORMANCE.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gpusvm_benches::{
    build_tree, map_range, new_svm, range_addr, BenchDriver, BenchMm, CountingAlloc,
    CountingGlobal, Rng, PAGE, XE_CHUNKS,
};
use gpusvm_core::{MmuEvent, RawRwLock, SpinRwLock};

#[global_allocator]
static GLOBAL: CountingGlobal = CountingGlobal;

const NS: [u64; 3] = [1_000, 100_000, 1_000_000];
const KS: [u64; 3] = [1, 16, 256];
const GROUPS: u64 = 32;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("invalidate");
    for &n in &NS {
        let mm = BenchMm::new();
        let mut svm = new_svm(&mm, XE_CHUNKS);
        build_tree(&mut svm, &mm, n);
        let btree: BTreeMap<u64, (u64, AtomicU16)> = (0..n)
            .map(|i| (range_addr(i), (range_addr(i) + PAGE, AtomicU16::new(4))))
            .collect();
        let lock = SpinRwLock::new();
        for &k in KS.iter().filter(|&&k| k <= n) {
            let span_of = |first: u64| (range_addr(first), range_addr(first + k - 1) + PAGE);
            // Groups start anywhere in the first `window` ranges.
            let pick = |rng: &mut Rng, window: u64| -> Vec<u64> {
                (0..GROUPS)
                    .map(|_| rng.below(window - k + 1))
                    .collect::<Vec<_>>()
            };
            // Setup check: one invalidation of k mapped ranges unmaps exactly them and allocates
            // nothing, neither through the core's allocator nor on the heap.
            {
                for i in 0..k {
                    map_range(&svm, range_addr(i));
                }
                let (s, e) = span_of(0);
                let (core0, heap0, inv0) = (
                    CountingAlloc::stats(),
                    CountingGlobal::stats(),
                    BenchDriver::invalidated_ranges(),
                );
                assert!(mm.invalidate(s, e, MmuEvent::Clear));
                assert_eq!(CountingAlloc::stats().since(core0).calls, 0);
                assert_eq!(CountingGlobal::stats().since(heap0).calls, 0);
                assert_eq!(BenchDriver::invalidated_ranges() - inv0, k as usize);
                assert!(!gpusvm_benches::fault_hit(&svm, s));
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
                            let firsts = pick(&mut rng, window);
                            for &f in &firsts {
                                for i in f..f + k {
                                    map_range(&svm, range_addr(i));
                                }
                            }
                            let t = Instant::now();
                            for &f in &firsts {
                                let (s, e) = span_of(f);
                                black_box(mm.invalidate(s, e, MmuEvent::Clear));
                            }
                            total += t.elapsed();
                            done += GROUPS;
                        }
                        total.mul_f64(iters as f64 / done as f64)
                    })
                });
            }
            g.bench_function(BenchmarkId::new(format!("btreemap/k={k}"), n), |b| {
                let mut rng = Rng::new(3);
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let firsts = pick(&mut rng, n);
                        for &f in &firsts {
                            for i in f..f + k {
                                if let Some(v) = btree.get(&range_addr(i)) {
                                    v.1.store(4, Ordering::Relaxed);
                                }
                            }
                        }
                        let t = Instant::now();
                        for &f in &firsts {
                            let (s, e) = span_of(f);
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
                        done += GROUPS;
                    }
                    total.mul_f64(iters as f64 / done as f64)
                })
            });
        }
        drop(svm);
        assert_eq!(mm.notifiers(), 0);
    }
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
