//! `get_pages` of a 2 MiB range with zero-cost backends: the CPU mapping reported as 512 × 4 KiB
//! pages or as one 2 MiB mapping (map order 9).
//!
//! The core's work: the retry protocol, a pfn array from the allocator, the (free) HMM fault,
//! the notifier lock, and one DMA mapping + packed entry per chunk of the walk (512 or 1).
//! Baseline in the same run ("floor"): filling a pfn array and encoding the same number of DMA
//! entries into a preallocated array — the least any implementation must do. Each sample maps
//! 16 ranges; unmapping them between samples is not timed. See docs/PERFORMANCE.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gpusvm_benches::{ctx, gpuva, new_svm, BenchMm, BASE, SZ_2M};
use gpusvm_core::{DmaDirection, DmaEntry, HmmPfn, Protocol, RangeRef};

const RANGES: u64 = 16;

fn benches(c: &mut Criterion) {
    let mm = BenchMm::new();
    let mut svm = new_svm(&mm, &[SZ_2M]);
    let ranges: Vec<RangeRef<_>> = (0..RANGES)
        .map(|i| {
            let r = svm
                .range_find_or_insert(BASE + i * SZ_2M, gpuva(), &ctx())
                .expect("range");
            assert_eq!(r.size(), SZ_2M);
            r
        })
        .collect();
    let mut g = c.benchmark_group("get_pages_2m");
    g.throughput(Throughput::Bytes(SZ_2M));
    for (label, order) in [("4k_pages", 0u8), ("2m_mapping", 9u8)] {
        mm.set_map_order(order);
        let ctx = ctx();
        // Sanity: the mapping has 512 or 1 entries.
        {
            let r = &ranges[0];
            svm.range_get_pages(r, &r.data().pages, &ctx)
                .expect("get_pages");
            let nl = svm.notifier_lock();
            let n = svm
                .pages_entries(&nl, &r.data().pages, |e| e.len())
                .expect("valid");
            assert_eq!(n, if order == 0 { 512 } else { 1 });
            drop(nl);
            svm.unmap_pages(&r.data().pages);
        }
        g.bench_function(BenchmarkId::new("core", label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let t = Instant::now();
                    for r in &ranges {
                        svm.range_get_pages(r, &r.data().pages, &ctx)
                            .expect("get_pages");
                    }
                    total += t.elapsed();
                    for r in &ranges {
                        svm.unmap_pages(&r.data().pages);
                    }
                    done += RANGES;
                }
                total.mul_f64(iters as f64 / done as f64)
            })
        });
        let entries = if order == 0 { 512usize } else { 1 };
        let mut pfns = vec![HmmPfn(0); 512];
        let mut dma = vec![DmaEntry::NONE; 512];
        g.bench_function(BenchmarkId::new("floor", label), |b| {
            b.iter(|| {
                let first = black_box(BASE) >> 12;
                for (pfn, slot) in (first..).zip(pfns.iter_mut()) {
                    *slot = HmmPfn::present(pfn, true, order);
                }
                let step = 512 / entries;
                for (j, slot) in dma.iter_mut().take(entries).enumerate() {
                    let pfn = pfns[j * step].pfn();
                    *slot = DmaEntry::encode(
                        pfn << 12,
                        Protocol::SYSTEM,
                        u32::from(order),
                        DmaDirection::Bidirectional,
                    )
                    .expect("entry");
                }
                black_box(&dma);
            })
        });
    }
    g.finish();
    drop(ranges);
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
