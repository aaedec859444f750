//! Migration to device memory (`migrate_to_devmem`) of 2 MiB and 32 MiB with zero-cost backends
//! and a `memcpy` copy engine, against a plain `memcpy` of the same bytes in the same run.
//!
//! The core's work per migration: its buffers from the allocator, the allocation tracker,
//! `migrate_vma_setup` (free here: every page collected), the per-page classification and
//! device-page initialization, the copy plan, DMA-mapping the sources, the copies (the engine
//! does one `memcpy` per contiguous run of a copy call; calls are at most 8 MiB, Xe's limit),
//! unmapping, `migrate_vma_pages`/`finalize`. Goal: at least 80 % of `memcpy`'s bytes per
//! second. Second baseline, `memcpy_8m_calls`: the same bytes copied in 8 MiB `memcpy` calls,
//! the floor of any engine bound by that limit. Creating the allocation and freeing the device
//! pages afterwards (the mm's job) are not timed. See docs/PERFORMANCE.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gpusvm_benches::{
    paired, BenchDevmem, BenchDriver, BenchMm, Memory, BASE, PAGE, VRAM_BASE_PFN,
};
use gpusvm_core::{
    migrate_to_devmem, CopyBatch, DevmemAllocation, DmaDirection, DmaEntry, MigrateDetails, MmUser,
    Protocol, Span,
};

fn migrate(mm: &BenchMm, devmem: BenchDevmem, span: Span) {
    let user = MmUser::get(mm).expect("mm alive");
    let lock = user.read_lock();
    migrate_to_devmem::<BenchDriver>(devmem, &lock, span, &MigrateDetails::default())
        .expect("migrate");
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("migrate");
    for (size, label) in [(2u64 << 20, "2M"), (32u64 << 20, "32M")] {
        let mm = BenchMm::new();
        let mem = Memory::new(BASE, size as usize, 0xa5);
        let span = Span::from_len(BASE, size).expect("span");
        // Sanity: every byte arrives, and freeing the device pages detaches the allocation.
        {
            let devmem = BenchDevmem::new(&mm, &mem, size);
            migrate(&mm, devmem.clone(), span);
            assert_eq!(mem.vram_byte(size as usize - 1), Some(0xa5));
            assert_eq!(mm.free_device_pages() as u64, size / PAGE);
            assert!(devmem.state().is_detached());
        }
        // Paired: migration against memcpy of the same bytes, back to back, which one runs first
        // alternating from round to round (`paired`).
        {
            let src = vec![0x5au8; size as usize];
            let mut dst = vec![0u8; size as usize];
            let p = paired(
                41,
                || {
                    let devmem = BenchDevmem::new(&mm, &mem, size);
                    let t = Instant::now();
                    migrate(&mm, devmem, span);
                    let e = t.elapsed();
                    mm.free_device_pages();
                    e
                },
                || {
                    let t = Instant::now();
                    dst.copy_from_slice(black_box(&src));
                    black_box(&dst);
                    t.elapsed()
                },
            );
            println!(
                "paired migrate {label}: core_to_vram / memcpy time {p}; bytes/s = {:.0} % of \
                 memcpy (median ratio), {:.0} % (minimums)",
                100.0 / p.ratio,
                100.0 / p.min_ratio
            );
            p.save(&format!("migrate_{label}"));
        }
        g.throughput(Throughput::Bytes(size));
        g.bench_function(BenchmarkId::new("core_to_vram", label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let devmem = BenchDevmem::new(&mm, &mem, size);
                    let t = Instant::now();
                    migrate(&mm, devmem, span);
                    total += t.elapsed();
                    mm.free_device_pages();
                }
                total
            })
        });
        let src = vec![0x5au8; size as usize];
        let mut dst = vec![0u8; size as usize];
        g.bench_function(BenchmarkId::new("memcpy", label), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            })
        });
        // The copy engine alone, on the batches the core issues (8 MiB calls of DMA entries).
        let entries: Vec<DmaEntry> = (0..size / PAGE)
            .map(|i| {
                DmaEntry::encode(BASE + i * PAGE, Protocol::SYSTEM, 0, DmaDirection::ToDevice)
                    .expect("entry")
            })
            .collect();
        g.bench_function(BenchmarkId::new("engine_only", label), |b| {
            b.iter(|| {
                for (k, chunk) in entries.chunks(2048).enumerate() {
                    let batch = CopyBatch {
                        device_pfn: VRAM_BASE_PFN + k as u64 * 2048,
                        npages: chunk.len(),
                        system: chunk,
                        wait_fence: false,
                    };
                    mem.copy(&batch, true).expect("copy");
                }
            })
        });
        g.bench_function(BenchmarkId::new("memcpy_8m_calls", label), |b| {
            b.iter(|| {
                for (d, s) in dst.chunks_mut(8 << 20).zip(black_box(&src).chunks(8 << 20)) {
                    d.copy_from_slice(s);
                }
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
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = benches
}
criterion_main!(group);
