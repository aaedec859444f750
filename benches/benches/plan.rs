//! The copy planner (`gpusvm_core::plan`) for a 2 MiB and a 64 MiB migration.
//!
//! Three layouts of the destination device pages: contiguous, fragmented (64 KiB device blocks in
//! shuffled order), and with holes (every 8th page not migrated). Batches are capped at 2048
//! pages (Xe's 8 MiB per copy call). The setup prints and checks the calls issued against the
//! optimum, computed independently of the planner: for order-0 pages, each maximal run of
//! device-contiguous pages with one copier needs `ceil(len / max)` calls, and no plan needs
//! fewer. Timing baseline in the same run: a `memcpy` of the bytes the plan moves (the planner
//! should cost a vanishing fraction of the copy it plans). See docs/PERFORMANCE.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gpusvm_benches::{Rng, PAGE};
use gpusvm_core::plan::{plan, Copier, PageFact};

const MAX_PAGES: usize = 2048;

fn layout(npages: usize, kind: &str) -> Vec<PageFact> {
    let local = |pfn: u64| PageFact {
        copier: Copier::Local,
        device_pfn: pfn,
        order: 0,
    };
    match kind {
        "contiguous" => (0..npages as u64).map(|i| local(0x10_0000 + i)).collect(),
        "fragmented" => {
            // 16-page (64 KiB) device blocks, in shuffled order.
            let blocks = npages / 16;
            let mut order: Vec<u64> = (0..blocks as u64).collect();
            let mut rng = Rng::new(5);
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            (0..npages)
                .map(|i| local(0x10_0000 + order[i / 16] * 16 + (i % 16) as u64))
                .collect()
        }
        _ => (0..npages as u64)
            .map(|i| {
                if i % 8 == 7 {
                    PageFact::SKIP
                } else {
                    local(0x10_0000 + i)
                }
            })
            .collect(),
    }
}

/// The fewest calls any valid plan can use (order-0 facts): sum over maximal runs of
/// `ceil(len / max)`.
fn optimum(facts: &[PageFact], max: usize) -> usize {
    let mut calls = 0;
    let mut run = 0usize;
    let mut prev: Option<PageFact> = None;
    for f in facts {
        let continues = prev.is_some_and(|p| {
            p.copier == f.copier && f.copier != Copier::Skip && p.device_pfn + 1 == f.device_pfn
        });
        if !continues {
            calls += run.div_ceil(max);
            run = 0;
        }
        if f.copier != Copier::Skip {
            run += 1;
        }
        prev = Some(*f);
    }
    calls + run.div_ceil(max)
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("plan");
    for (size, label) in [(2usize << 20, "2M"), (64usize << 20, "64M")] {
        let npages = size / PAGE as usize;
        g.throughput(Throughput::Bytes(size as u64));
        for kind in ["contiguous", "fragmented", "holes"] {
            let facts = layout(npages, kind);
            let calls = plan(&facts, MAX_PAGES).count();
            let best = optimum(&facts, MAX_PAGES);
            let pages: usize = plan(&facts, MAX_PAGES).map(|b| b.npages).sum();
            println!(
                "plan {label} {kind}: {calls} copy calls issued, optimum {best}, {pages} pages \
                 copied"
            );
            assert_eq!(calls, best, "planner not optimal for {label} {kind}");
            let wanted = facts.iter().filter(|f| f.copier != Copier::Skip).count();
            assert_eq!(
                pages, wanted,
                "planner copies {pages} pages for {label} {kind}, not the {wanted} non-skipped"
            );
            g.bench_function(BenchmarkId::new(format!("planner/{kind}"), label), |b| {
                b.iter(|| plan(black_box(&facts), MAX_PAGES).count())
            });
        }
        let src = vec![0x5au8; size];
        let mut dst = vec![0u8; size];
        g.bench_function(BenchmarkId::new("memcpy", label), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = benches
}
criterion_main!(group);
