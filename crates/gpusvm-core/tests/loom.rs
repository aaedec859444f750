//! loom models of the core's concurrency (run with `RUSTFLAGS="--cfg loom"`).
//!
//! Under `cfg(loom)` every atomic and cell of the core (the notifier lock, flag words, the
//! per-pages state lock, reference counts) comes from loom through the `sync` facade, so loom
//! explores the interleavings of the threads below, up to `LOOM_MAX_PREEMPTIONS` preemptions.
//! The mock backend's own bookkeeping is ordinary std state touched only in short sections with
//! no loom operation inside; the models keep a second range alive so that no notifier is
//! removed while a callback may run (the mock's registry is not loom-aware).
//!
//! Each model states its property in its doc comment; docs/VERIFICATION.md lists them.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p gpusvm-core --release --test loom
//! ```

#![cfg(loom)]

use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use gpusvm_core::mock::{MockDriver, World};
use gpusvm_core::{
    Ctx, DevmemAllocation, MigrateDetails, MmUser, MmuEvent, Span, Svm, SvmConfig, VmaFlags,
};

const BASE: u64 = 0x4000_0000;
const PAGE: u64 = 4096;

fn rw() -> VmaFlags {
    VmaFlags::READ | VmaFlags::WRITE | VmaFlags::ANONYMOUS
}

fn small_svm(w: &World) -> Svm<MockDriver> {
    let cfg = SvmConfig {
        name: "loom",
        mm_start: 0,
        mm_range: 1 << 40,
        notifier_size: 1 << 20,
        chunk_sizes: &[8 * PAGE, PAGE],
        page_shift: 12,
    };
    Svm::new(
        cfg,
        w.driver(),
        Some(w.mm.clone()),
        w.alloc.clone(),
        w.clock.clone(),
    )
    .unwrap()
}

fn gpuva() -> Span {
    Span::new(0, 1 << 40).unwrap()
}

/// Model 1 — get_pages racing an invalidation: a commit under the notifier guard never uses
/// pages an invalidation has already torn down. The committing thread checks, while holding the
/// read guard and seeing the range valid, that every DMA address it would write into the GPU
/// page table is still a live mapping of the DMA device.
#[test]
fn commit_never_uses_torn_down_pages() {
    loom::model(|| {
        let w = World::new(1);
        w.mm.mmap(BASE, BASE + 16 * PAGE, rw());
        let mut svm = small_svm(&w);
        let ctx = Ctx::default();
        let r = svm.range_find_or_insert(BASE, gpuva(), &ctx).unwrap();
        let _keep = svm
            .range_find_or_insert(BASE + 8 * PAGE, gpuva(), &ctx)
            .unwrap();
        let svm = Arc::new(svm);
        let dma = w.devs[0].clone();
        let (s2, r2) = (svm.clone(), r.clone());
        let committed = Arc::new(AtomicUsize::new(0));
        let c2 = committed.clone();
        let t = thread::spawn(move || {
            let pages = &r2.data().pages[0];
            if s2.range_get_pages(&r2, pages, &ctx).is_ok() {
                let nl = s2.notifier_lock();
                if s2.range_pages_valid(&nl, &r2) {
                    s2.pages_entries(&nl, pages, |entries| {
                        for e in entries {
                            assert!(
                                dma.pfn_of(e.addr()).is_some(),
                                "committing a torn-down mapping {e:?}"
                            );
                        }
                    });
                    c2.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        w.mm.invalidate(BASE, BASE + PAGE, MmuEvent::Clear, None);
        t.join().unwrap();
        // Whatever the order, a valid mapping left behind is fully live.
        let nl = svm.notifier_lock();
        if svm.range_pages_valid(&nl, &r) {
            assert_eq!(w.dma_live(), 8);
        }
        drop(nl);
        let _ = committed.load(Ordering::SeqCst);
    });
}

/// Model 2 — opportunistic lock-free flag reads (upstream READ_ONCE/WRITE_ONCE): a reader
/// never sees an impossible combination (`HAS_DEVMEM_PAGES` without `HAS_DMA_MAPPING`) while a
/// mapper publishes and an invalidation clears the flag word.
#[test]
fn lock_free_flag_reads_are_consistent() {
    loom::model(|| {
        let w = World::new(1);
        w.mm.mmap(BASE, BASE + 8 * PAGE, rw());
        for p in 0..8 {
            w.mm.cpu_write(BASE + p * PAGE, p);
        }
        let mut svm = small_svm(&w);
        let owner = Some(w.pagemap.0.owner);
        let ctx = Ctx {
            device_private_owner: owner,
            ..Ctx::default()
        };
        let r = svm.range_find_or_insert(BASE, gpuva(), &ctx).unwrap();
        // Device pages, so that publishing sets both mapping flags at once.
        let devmem = w.pagemap.alloc_devmem(8, false).unwrap();
        {
            let user = MmUser::get(&w.mm).unwrap();
            let lock = user.read_lock();
            gpusvm_core::migrate_to_devmem::<MockDriver>(
                devmem,
                &lock,
                r.span(),
                &MigrateDetails::default(),
            )
            .unwrap();
        }
        let svm = Arc::new(svm);
        let (s2, r2) = (svm.clone(), r.clone());
        let mapper = thread::spawn(move || {
            let _ = s2.range_get_pages(&r2, &r2.data().pages[0], &ctx);
        });
        let r3 = r.clone();
        let reader = thread::spawn(move || {
            for _ in 0..2 {
                let f = r3.data().pages[0].flags();
                assert!(f.is_consistent(), "impossible flags {f:?}");
            }
        });
        svm.unmap_pages(&r.data().pages[0]);
        mapper.join().unwrap();
        reader.join().unwrap();
        assert!(r.data().pages[0].flags().is_consistent());
        drop((r, svm));
        w.mm.munmap(BASE, BASE + 8 * PAGE);
    });
}

/// Model 3 — range removal (driver lock) racing an `Unmap` invalidation: no lost UNMAP and no
/// use after removal. Whatever the interleaving, once both are done the range is removed or
/// queued for the garbage collector with `UNMAPPED` set, the invalidation only ever saw the
/// range while it was in the tree, and no DMA mapping survives.
#[test]
fn removal_racing_unmap_loses_nothing() {
    loom::model(|| {
        let w = World::new(1);
        w.mm.mmap(BASE, BASE + 16 * PAGE, rw());
        let mut svm = small_svm(&w);
        let ctx = Ctx::default();
        let r = svm.range_find_or_insert(BASE, gpuva(), &ctx).unwrap();
        let keep = svm
            .range_find_or_insert(BASE + 8 * PAGE, gpuva(), &ctx)
            .unwrap();
        svm.range_get_pages(&r, &r.data().pages[0], &ctx).unwrap();
        let mm = w.mm.clone();
        let unmapper = thread::spawn(move || {
            mm.invalidate(BASE, BASE + 8 * PAGE, MmuEvent::Unmap, None);
        });
        // The driver, holding `&mut svm` (its lock), removes the range meanwhile.
        let r2 = r.clone();
        let gc = thread::spawn(move || {
            svm.range_remove(&r2);
            svm
        });
        unmapper.join().unwrap();
        let mut svm = gc.join().unwrap();
        assert!(r.is_removed());
        // Queued by the invalidation before the removal, or never queued: either way the queue
        // holds no removed range.
        assert!(svm.take_unmapped().is_none());
        assert_eq!(w.dma_live(), 0);
        assert_eq!(svm.num_ranges(), 1);
        drop((r, keep, svm));
        assert_eq!(w.alloc.live(), 0);
    });
}

/// Model 4 — the interval-notifier sequence protocol (`read_begin` vs an invalidation in
/// progress), as the simulator and the kernel implement it: a reader that passes
/// `read_retry` under the user lock never uses data an invalidation changed after the reader's
/// `read_begin`. The mm counter is odd while an invalidation runs; the notifier's sequence is
/// set under the user lock.
#[test]
fn sequence_protocol_detects_collisions() {
    use gpusvm_core::lock::{RawRwLock, SpinRwLock};
    loom::model(|| {
        let mm_seq = Arc::new(AtomicU64::new(2));
        let sub_seq = Arc::new(AtomicU64::new(1));
        let data = Arc::new(AtomicU64::new(0));
        let lock = Arc::new(SpinRwLock::new());
        let (m2, s2, d2, l2) = (mm_seq.clone(), sub_seq.clone(), data.clone(), lock.clone());
        let invalidator = thread::spawn(move || {
            let cur = m2.fetch_add(1, Ordering::SeqCst) + 1; // start: odd
            l2.write_lock();
            // set_seq under the user lock.
            s2.store(cur, Ordering::SeqCst);
            // SAFETY: Taken just above.
            unsafe { l2.write_unlock() };
            d2.store(1, Ordering::SeqCst); // the page-table change
            m2.fetch_add(1, Ordering::SeqCst); // end: even
        });
        // The reader: read_begin (wait while the invalidation that hit us runs) ...
        let seq = loop {
            let s = sub_seq.load(Ordering::SeqCst);
            if s != mm_seq.load(Ordering::SeqCst) {
                break s;
            }
            thread::yield_now();
        };
        let seen = data.load(Ordering::SeqCst);
        // ... then read_retry under the lock.
        lock.read_lock();
        let retry = sub_seq.load(Ordering::SeqCst) != seq;
        if !retry {
            // Committing: the data seen must be the current data.
            assert_eq!(
                seen,
                data.load(Ordering::SeqCst),
                "used stale data without retry"
            );
        }
        // SAFETY: Taken just above.
        unsafe { lock.read_unlock() };
        invalidator.join().unwrap();
    });
}

/// Model 5 — the last device-page reference dropping (munmap) while a CPU fault migrates the
/// same allocation back to RAM: the allocation tracker is released exactly once, after both,
/// the allocation detaches, and device memory accounting returns to zero.
#[test]
fn last_page_free_vs_cpu_fault_migration() {
    loom::model(|| {
        let w = World::new(1);
        w.mm.mmap(BASE, BASE + 2 * PAGE, rw());
        w.mm.cpu_write(BASE, 11);
        w.mm.cpu_write(BASE + PAGE, 22);
        let devmem = w.pagemap.alloc_devmem(2, false).unwrap();
        let handle = devmem.clone();
        {
            let user = MmUser::get(&w.mm).unwrap();
            let lock = user.read_lock();
            let span = Span::new(BASE, BASE + 2 * PAGE).unwrap();
            gpusvm_core::migrate_to_devmem::<MockDriver>(
                devmem,
                &lock,
                span,
                &MigrateDetails::default(),
            )
            .unwrap();
        }
        let mm = w.mm.clone();
        let cpu = thread::spawn(move || mm.cpu_read(BASE));
        w.mm.munmap(BASE + PAGE, BASE + 2 * PAGE);
        let got = cpu.join().unwrap();
        assert_eq!(got, Some(11));
        w.mm.munmap(BASE, BASE + PAGE);
        assert!(handle.state().is_detached());
        drop(handle);
        assert_eq!(
            w.pagemap
                .0
                .live_allocs
                .load(std::sync::atomic::Ordering::SeqCst),
            0
        );
        assert_eq!(w.phys.live_device_frames(), 0);
    });
}

/// Model 6 — range splitting racing a fault (issue 7): a GPU fault commits while a partial
/// `Unmap` in split mode holes part of the range. The commit never writes a hole or a
/// torn-down mapping into the GPU page table (it either commits before the invalidation, or sees
/// the range pending a split and retries); after the garbage collector splits the range, the
/// surviving pieces are valid without a refault and map only live pages.
#[test]
fn split_racing_a_fault_never_maps_freed_pages() {
    loom::model(|| {
        let w = World::new(1);
        w.mm.mmap(BASE, BASE + 16 * PAGE, rw());
        let mut svm = small_svm(&w);
        svm.set_range_split(true);
        let ctx = Ctx::default();
        let r = svm.range_find_or_insert(BASE, gpuva(), &ctx).unwrap();
        let _keep = svm
            .range_find_or_insert(BASE + 8 * PAGE, gpuva(), &ctx)
            .unwrap();
        svm.range_get_pages(&r, &r.data().pages[0], &ctx).unwrap();
        let svm = Arc::new(svm);
        let dma = w.devs[0].clone();
        let (s2, r2) = (svm.clone(), r.clone());
        let fault = thread::spawn(move || {
            let pages = &r2.data().pages[0];
            let got = s2.range_get_pages(&r2, pages, &ctx);
            let nl = s2.notifier_lock();
            if got.is_ok() && s2.range_pages_valid(&nl, &r2) {
                s2.pages_entries(&nl, pages, |entries| {
                    for e in entries {
                        assert!(!e.is_hole(), "committing a hole");
                        assert!(dma.pfn_of(e.addr()).is_some(), "committing a freed page");
                    }
                });
            }
        });
        // Unmap the last two pages of the range.
        w.mm.munmap(BASE + 6 * PAGE, BASE + 8 * PAGE);
        fault.join().unwrap();
        let mut svm = Arc::try_unwrap(svm).ok().expect("the fault thread is done");
        while let Some(pending) = svm.take_unmapped() {
            svm.split_range(&pending).unwrap();
        }
        let nl = svm.notifier_lock();
        let all = Span::new(0, 1 << 40).unwrap();
        let mut live = 0;
        for piece in svm.ranges(all) {
            if piece.end() <= BASE + 8 * PAGE {
                assert!(
                    svm.range_pages_valid(&nl, piece),
                    "a survivor must stay valid"
                );
                live += piece.size() / PAGE;
            }
        }
        assert_eq!(live, 6);
        drop(nl);
        assert_eq!(w.dma_live(), 6);
        drop((r, svm));
        assert_eq!(w.dma_live(), 0);
    });
}
