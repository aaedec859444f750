//! Range lookup on a GPU fault hit, and `find_or_insert` of a new range, against n ranges.
//!
//! - `lookup/*`: find the range containing a random address and check that its pages are valid
//!   for a commit under the notifier lock. The core (`range_at` + `range_pages_valid`, and the
//!   fault handler's `range_find_or_insert` + `range_pages_valid`) against the same job done by
//!   `std::collections::BTreeMap` (floor lookup), `nonoverlapping_interval_tree` and `rangemap`,
//!   all holding the same notifier lock type for reading and reading the same validity word
//!   (stored in the map's values; `btreemap_boxed` stores it in separately allocated range
//!   objects, as a driver keeping refcounted ranges in a `BTreeMap` would).
//!   The core and these baselines are all built by inserting the same ranges in the same random
//!   order (faults arrive in arbitrary order), each in its own loop. `btreemap_packed` is the
//!   best case for the `BTreeMap`: bulk-built with `collect()` from sorted input, its nodes full
//!   (one-by-one inserts leave them partly empty). The goal's paired measurement compares the
//!   core with both.
//! - `insert/*`: `range_find_or_insert` of a new single-page range in a gap next to an existing
//!   range (chunk selection tries 2M and 64K, both overlapping, then takes 4K), against a
//!   `BTreeMap` insert.
//!
//! The trees hold n single-page ranges on every other page (so 1M ranges span 8 GiB and 16
//! notifiers), all DMA-mapped. See docs/PERFORMANCE.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gpusvm_benches::{
    build_tree_in_order, fault_hit, fault_hit_find_or_insert, gpuva, map_range, new_svm, paired,
    range_addr, shuffled, BenchDriver, BenchMm, CountingGlobal, Rng, PAGE, XE_CHUNKS,
};
use gpusvm_core::{RangeRef, RawRwLock, SpinRwLock, Svm};
use nonoverlapping_interval_tree::NonOverlappingIntervalTree;
use rangemap::RangeMap;

/// Counts the process heap, for the baselines' bytes per entry (allocations only; the timed
/// lookups do not allocate).
#[global_allocator]
static GLOBAL: CountingGlobal = CountingGlobal;

const SIZES: [u64; 4] = [1, 1_000, 100_000, 1_000_000];

/// What the baselines store per range: its end and a validity word (the pages' flag word).
#[derive(Debug)]
struct Slot {
    end: u64,
    valid: AtomicU16,
}

impl Slot {
    fn new(end: u64) -> Self {
        Slot {
            end,
            valid: AtomicU16::new(4),
        }
    }
}

impl Clone for Slot {
    fn clone(&self) -> Self {
        Slot::new(self.end)
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.end == other.end
    }
}

impl Eq for Slot {}

/// Runs `f` with the lock held for reading, as the core's commit check does.
#[inline]
fn read_locked<R>(lock: &SpinRwLock, f: impl FnOnce() -> R) -> R {
    lock.read_lock();
    let r = f();
    // SAFETY: Taken just above.
    unsafe { lock.read_unlock() };
    r
}

/// A range object as a driver would allocate it (the size of the core's `Range`, checked
/// below), for the `btreemap_boxed` baseline: a `BTreeMap` whose values point to separately
/// allocated ranges.
struct HeapRange {
    slot: Slot,
    _rest: [u8; HEAP_REST],
}

const HEAP_REST: usize = gpusvm_benches::SIZES.range - std::mem::size_of::<Slot>();
const _: () = assert!(std::mem::size_of::<HeapRange>() == gpusvm_benches::SIZES.range);

struct Fixture {
    n: u64,
    mm: BenchMm,
    svm: Svm<BenchDriver>,
    /// Filled by inserts in the same random order as the core's ranges.
    btree: BTreeMap<u64, Slot>,
    /// The best case: bulk-built by `collect()` from sorted input, nodes packed full.
    packed: BTreeMap<u64, Slot>,
    boxed: BTreeMap<u64, Box<HeapRange>>,
    nonoverlap: NonOverlappingIntervalTree<u64, Slot>,
    rangemap: RangeMap<u64, Slot>,
}

/// Heap bytes per entry allocated by `build` (the process heap is counted by `CountingGlobal`).
fn heap_per_entry<T>(n: u64, build: impl FnOnce() -> T) -> (T, f64) {
    let before = CountingGlobal::stats();
    let t = build();
    let bytes = CountingGlobal::stats().since(before).live_bytes;
    (t, bytes as f64 / n as f64)
}

fn fixture(n: u64) -> Fixture {
    // Faults arrive in arbitrary order: the core and every incremental baseline are built by
    // inserting the same ranges in the same random order, each structure in its own loop so
    // that its allocations are not interleaved with another's.
    let order = shuffled(n, 0x5eed_0000 + n);
    let span = |i: u64| (range_addr(i), range_addr(i) + PAGE);
    let t0 = Instant::now();
    let mm = BenchMm::new();
    let mut svm = new_svm(&mm, XE_CHUNKS);
    build_tree_in_order(&mut svm, &mm, &order);
    for &i in &order {
        map_range(&svm, range_addr(i));
    }
    let built = t0.elapsed();
    let (btree, btree_bytes) = heap_per_entry(n, || {
        let mut m = BTreeMap::new();
        for &i in &order {
            let (s, e) = span(i);
            m.insert(s, Slot::new(e));
        }
        m
    });
    let (boxed, _) = heap_per_entry(n, || {
        let mut m = BTreeMap::new();
        for &i in &order {
            let (s, e) = span(i);
            m.insert(
                s,
                Box::new(HeapRange {
                    slot: Slot::new(e),
                    _rest: [0; HEAP_REST],
                }),
            );
        }
        m
    });
    let (nonoverlap, _) = heap_per_entry(n, || {
        let mut m = NonOverlappingIntervalTree::new();
        for &i in &order {
            let (s, e) = span(i);
            m.insert(s..e, Slot::new(e));
        }
        m
    });
    let (rangemap, _) = heap_per_entry(n, || {
        let mut m = RangeMap::new();
        for &i in &order {
            let (s, e) = span(i);
            m.insert(s..e, Slot::new(e));
        }
        m
    });
    // The best case for the `BTreeMap`: built in one go from sorted input (bulk build).
    let (packed, packed_bytes) = heap_per_entry(n, || {
        (0..n)
            .map(|i| {
                let (s, e) = span(i);
                (s, Slot::new(e))
            })
            .collect::<BTreeMap<_, _>>()
    });
    println!(
        "fixture n={n}: core tree built (random order) and mapped in {:.2?} ({:.0} ns/range), \
         {} notifiers; BTreeMap heap bytes per entry: {btree_bytes:.1} (random-order inserts), \
         {packed_bytes:.1} (packed, collect() of sorted input)",
        built,
        built.as_nanos() as f64 / n as f64,
        svm.num_notifiers()
    );
    assert_eq!(svm.num_ranges() as u64, n);
    assert_eq!(rangemap.iter().count() as u64, n, "rangemap coalesced");
    assert_eq!(packed.len() as u64, n);
    Fixture {
        n,
        mm,
        svm,
        btree,
        packed,
        boxed,
        nonoverlap,
        rangemap,
    }
}

/// The `BTreeMap` fault-hit check: the floor entry, its end and its validity word, under the
/// lock held for reading.
#[inline]
fn btree_hit(lock: &SpinRwLock, map: &BTreeMap<u64, Slot>, a: u64) -> bool {
    read_locked(lock, || {
        map.range(..=a)
            .next_back()
            .is_some_and(|(_, s)| a < s.end && s.valid.load(Ordering::Acquire) != 0)
    })
}

fn addr_of(rng: &mut Rng, n: u64) -> u64 {
    range_addr(rng.below(n)) + 0x123
}

fn lookup(c: &mut Criterion, fixtures: &mut [Fixture]) {
    let mut g = c.benchmark_group("lookup");
    let lock = SpinRwLock::new();
    for f in fixtures.iter_mut() {
        let n = f.n;
        // Sanity: every variant finds a valid range.
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let a = addr_of(&mut rng, n);
            assert!(fault_hit(&f.svm, a));
            assert!(fault_hit_find_or_insert(&mut f.svm, a, gpuva()));
            assert!(btree_hit(&lock, &f.btree, a));
            assert!(btree_hit(&lock, &f.packed, a));
            assert!(f.nonoverlap.get(&a).is_some());
            assert!(f.rangemap.get(&a).is_some());
        }
        assert_eq!(f.svm.num_ranges() as u64, n);

        if n >= 100_000 {
            // Paired: 100K core lookups and 100K BTreeMap lookups of the same addresses, back to
            // back, against the same-order map and against the packed one.
            for (name, label, map) in [
                (
                    "sameorder",
                    "btreemap (same random insertion order)",
                    &f.btree,
                ),
                (
                    "packed",
                    "btreemap_packed (collect() of sorted input)",
                    &f.packed,
                ),
            ] {
                let seed = std::cell::Cell::new(100u64);
                let p = paired(
                    31,
                    || {
                        let mut rng = Rng::new(seed.get());
                        let t = Instant::now();
                        for _ in 0..100_000 {
                            black_box(fault_hit(&f.svm, addr_of(&mut rng, n)));
                        }
                        t.elapsed()
                    },
                    || {
                        let mut rng = Rng::new(seed.get());
                        seed.set(seed.get() + 1);
                        let t = Instant::now();
                        for _ in 0..100_000 {
                            black_box(btree_hit(&lock, map, addr_of(&mut rng, n)));
                        }
                        t.elapsed()
                    },
                );
                println!("paired lookup n={n}: core / {label}, time per 100K lookups {p}");
                p.save(&format!("lookup_{name}_{n}"));
            }
        }
        g.bench_function(BenchmarkId::new("core", n), |b| {
            let mut rng = Rng::new(7);
            b.iter(|| fault_hit(&f.svm, addr_of(&mut rng, n)))
        });
        let window = gpuva();
        g.bench_function(BenchmarkId::new("core_find_or_insert", n), |b| {
            let mut rng = Rng::new(7);
            b.iter(|| fault_hit_find_or_insert(&mut f.svm, addr_of(&mut rng, n), window))
        });
        g.bench_function(BenchmarkId::new("btreemap", n), |b| {
            let mut rng = Rng::new(7);
            b.iter(|| btree_hit(&lock, &f.btree, addr_of(&mut rng, n)))
        });
        g.bench_function(BenchmarkId::new("btreemap_packed", n), |b| {
            let mut rng = Rng::new(7);
            b.iter(|| btree_hit(&lock, &f.packed, addr_of(&mut rng, n)))
        });
        g.bench_function(BenchmarkId::new("btreemap_boxed", n), |b| {
            let mut rng = Rng::new(7);
            b.iter(|| {
                let a = addr_of(&mut rng, n);
                read_locked(&lock, || {
                    f.boxed.range(..=a).next_back().is_some_and(|(_, r)| {
                        a < r.slot.end && r.slot.valid.load(Ordering::Acquire) != 0
                    })
                })
            })
        });
        g.bench_function(BenchmarkId::new("nonoverlapping_interval_tree", n), |b| {
            let mut rng = Rng::new(7);
            b.iter(|| {
                let a = addr_of(&mut rng, n);
                read_locked(&lock, || {
                    f.nonoverlap
                        .get(&a)
                        .is_some_and(|s| s.valid.load(Ordering::Acquire) != 0)
                })
            })
        });
        g.bench_function(BenchmarkId::new("rangemap", n), |b| {
            let mut rng = Rng::new(7);
            b.iter(|| {
                let a = addr_of(&mut rng, n);
                read_locked(&lock, || {
                    f.rangemap
                        .get(&a)
                        .is_some_and(|s| s.valid.load(Ordering::Acquire) != 0)
                })
            })
        });
    }
    g.finish();
}

/// Inserts up to 64 new ranges per sample batch, in gaps next to distinct existing ranges;
/// only the inserts are timed, the removals are not.
fn insert(c: &mut Criterion, fixtures: &mut [Fixture]) {
    let mut g = c.benchmark_group("insert");
    for f in fixtures.iter_mut() {
        let n = f.n;
        let batch = n.min(64);
        let stride = n / batch;
        let window = gpuva();
        let ctx = gpusvm_benches::ctx();
        let gaps = move |rng: &mut Rng| {
            let first = rng.below(n);
            (0..batch).map(move |j| range_addr((first + j * stride) % n) + PAGE)
        };
        // Sanity: a new range in a gap is a single page, and removing it restores the tree.
        {
            let r = f
                .svm
                .range_find_or_insert(range_addr(0) + PAGE, window, &ctx)
                .expect("insert");
            assert_eq!(r.size(), PAGE);
            f.svm.range_remove(&r);
            assert_eq!(f.svm.num_ranges() as u64, n);
        }
        let _ = &f.mm;
        g.bench_function(BenchmarkId::new("core", n), |b| {
            let mut rng = Rng::new(11);
            let mut made: Vec<RangeRef<BenchDriver>> = Vec::with_capacity(64);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let t = Instant::now();
                    for a in gaps(&mut rng) {
                        made.push(f.svm.range_find_or_insert(a, window, &ctx).expect("insert"));
                    }
                    total += t.elapsed();
                    for r in made.drain(..) {
                        f.svm.range_remove(&r);
                    }
                    done += batch;
                }
                total.mul_f64(iters as f64 / done as f64)
            })
        });
        g.bench_function(BenchmarkId::new("btreemap", n), |b| {
            let mut rng = Rng::new(11);
            let mut made: Vec<u64> = Vec::with_capacity(64);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let t = Instant::now();
                    for a in gaps(&mut rng) {
                        black_box(f.btree.insert(a, Slot::new(a + PAGE)));
                        made.push(a);
                    }
                    total += t.elapsed();
                    for a in made.drain(..) {
                        f.btree.remove(&a);
                    }
                    done += batch;
                }
                total.mul_f64(iters as f64 / done as f64)
            })
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let mut fixtures: Vec<Fixture> = SIZES.iter().map(|&n| fixture(n)).collect();
    lookup(c, &mut fixtures);
    insert(c, &mut fixtures);
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = benches
}
criterion_main!(group);
