//! Unit tests of the core against the mock backend (`mock.rs`).
//!
//! Each test states the upstream behaviour (or the deliberate deviation) it checks. Every test
//! ends by dropping the `Svm` and checking that nothing leaked: allocator, DMA mappings, mm user
//! references and read locks, device frames.

extern crate std;

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::vec::Vec;

use crate::mock::*;
use crate::*;

const K: u64 = 1024;
const M: u64 = 1024 * K;
const BASE: u64 = 0x4000_0000;
const RW_ANON: VmaFlags = VmaFlags::READ
    .union(VmaFlags::WRITE)
    .union(VmaFlags::ANONYMOUS);

fn gpuva() -> Span {
    Span::new(0, 1 << 47).unwrap()
}

fn ctx() -> Ctx {
    Ctx {
        devmem_possible: true,
        ..Ctx::default()
    }
}

fn config() -> SvmConfig<'static> {
    SvmConfig {
        name: "test",
        mm_start: 0,
        mm_range: 1 << 47,
        notifier_size: 512 * M,
        chunk_sizes: &[2 * M, 64 * K, 4 * K],
        page_shift: 12,
    }
}

fn svm(w: &World) -> Svm<MockDriver> {
    Svm::new(
        config(),
        w.driver(),
        Some(w.mm.clone()),
        w.alloc.clone(),
        w.clock.clone(),
    )
    .unwrap()
}

/// Drops the instance and checks that every resource came back.
fn teardown(w: World, s: Svm<MockDriver>) {
    drop(s);
    assert_eq!(w.alloc.live(), 0, "allocator leak");
    assert_eq!(w.dma_live(), 0, "DMA mapping leak");
    for d in &w.devs {
        assert!(d.errors().is_empty(), "bad unmaps: {:?}", d.errors());
    }
    assert_eq!(w.mm.users(), 0, "mm user reference leak");
    assert_eq!(w.mm.readers(), 0, "mmap read lock leak");
    assert_eq!(w.mm.registered_notifiers(), 0, "interval notifier leak");
    assert_eq!(w.stats.allocs_in_invalidate.load(Ordering::SeqCst), 0);
}

fn pages0(r: &Range<MockDriver>) -> &SvmPages<MockDriver> {
    &r.data().pages[0]
}

// ------------------------------------------------------------------------------------ main flow

#[test]
fn fault_commit_invalidate_gc_remove() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 2 * M, RW_ANON);
    let mut s = svm(&w);

    // GPU fault: find_or_insert picks the largest chunk, get_pages faults and maps.
    let r = s
        .range_find_or_insert(BASE + 0x1234, gpuva(), &ctx())
        .unwrap();
    assert_eq!((r.start(), r.end()), (BASE, BASE + 2 * M));
    assert!(r.flags().contains(RangeFlags::MIGRATE_DEVMEM));
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    assert_eq!(w.dma_live(), 512);
    assert_ne!(pages0(&r).notifier_seq(), pages::SEQ_NONE);

    // Commit under the notifier lock.
    {
        let nl = s.notifier_lock();
        assert!(s.range_pages_valid(&nl, &r));
        let n = s.pages_entries(&nl, pages0(&r), |e| e.len()).unwrap();
        assert_eq!(n, 512);
    }

    // A second fault on the range is served by the fast path (no HMM call).
    let hmm_before = w.mm.0.hmm_calls.load(Ordering::SeqCst);
    let again = s
        .range_find_or_insert(BASE + 5 * 4096, gpuva(), &ctx())
        .unwrap();
    assert!(RangeRef::ptr_eq(&r, &again));
    s.range_get_pages(&again, pages0(&again), &ctx()).unwrap();
    assert_eq!(w.mm.0.hmm_calls.load(Ordering::SeqCst), hmm_before);

    // A partial munmap: the driver's invalidate unmaps the pages and marks the range.
    w.mm.munmap(BASE + M, BASE + M + 4096);
    assert_eq!(w.dma_live(), 0);
    assert!(r.is_unmapped());
    assert!(r.flags().contains(RangeFlags::PARTIAL_UNMAP));
    assert_eq!(s.range_get_pages(&r, pages0(&r), &ctx()), Err(code::EFAULT));
    {
        let nl = s.notifier_lock();
        assert!(!s.range_pages_valid(&nl, &r));
        assert!(s.pages_entries(&nl, pages0(&r), |_| ()).is_none());
    }

    // The garbage collector removes it; the empty notifier goes with it.
    let gc = s.take_unmapped().unwrap();
    assert!(RangeRef::ptr_eq(&gc, &r));
    assert!(s.take_unmapped().is_none());
    s.range_remove(&gc);
    assert!(gc.is_removed());
    assert_eq!(s.num_ranges(), 0);
    assert_eq!(s.num_notifiers(), 0);
    assert_eq!(w.mm.registered_notifiers(), 0);
    // Removing twice is harmless; the references stay readable after removal.
    s.range_remove(&r);
    assert_eq!(again.size(), 2 * M);
    drop((r, again, gc));
    teardown(w, s);
}

#[test]
fn find_or_insert_ref_borrows_the_tree_range() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 4 * M, RW_ANON);
    let mut s = svm(&w);

    // A new range and the same range found again: one object, owned by the tree alone (the
    // borrowed form takes no count, so removing the range frees it).
    let first = NonNull::from(
        s.range_find_or_insert_ref(BASE + 0x10, gpuva(), &ctx())
            .unwrap(),
    );
    let again = NonNull::from(
        s.range_find_or_insert_ref(BASE + 0x2000, gpuva(), &ctx())
            .unwrap(),
    );
    assert_eq!(first, again);
    assert_eq!(s.num_ranges(), 1);
    let counted = s
        .range_find_or_insert(BASE + 0x3000, gpuva(), &ctx())
        .unwrap();
    assert_eq!(NonNull::from(&*counted), first);
    // The counted reference keeps the removed range alive (its empty notifier goes), and its
    // drop frees it.
    s.range_remove(&counted);
    assert_eq!(s.num_ranges(), 0);
    let live_with_ref = w.alloc.live();
    drop(counted);
    assert!(
        w.alloc.live() < live_with_ref,
        "the range was not freed with its last count"
    );

    // Errors are the counted form's.
    assert_eq!(
        s.range_find_or_insert_ref(BASE + 8 * M, gpuva(), &ctx())
            .err(),
        Some(code::ENOENT)
    );
    teardown(w, s);
}

#[test]
fn huge_mappings_map_as_one_entry() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 2 * M, RW_ANON);
    w.mm.populate_thp(BASE);
    let mut s = svm(&w);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    let nl = s.notifier_lock();
    assert_eq!(s.pages_mapped_counts(&nl, pages0(&r)), (512, 1));
    let orders = s
        .pages_entries(&nl, pages0(&r), |e| {
            e.iter().map(|e| e.order()).collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(orders, [9]);
    drop(nl);
    assert_eq!(w.dma_live(), 1);
    drop(r);
    teardown(w, s);
}

#[test]
fn read_only_faults_map_to_device_only() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, VmaFlags::READ | VmaFlags::ANONYMOUS);
    let mut s = svm(&w);
    assert_eq!(
        s.range_find_or_insert(BASE, gpuva(), &ctx()).err(),
        Some(code::EPERM)
    );
    let ro = Ctx {
        read_only: true,
        ..ctx()
    };
    let r = s.range_find_or_insert(BASE, gpuva(), &ro).unwrap();
    assert_eq!(r.size(), 64 * K);
    s.range_get_pages(&r, pages0(&r), &ro).unwrap();
    let nl = s.notifier_lock();
    let dirs = s
        .pages_entries(&nl, pages0(&r), |e| {
            e.iter().all(|e| e.dir() == DmaDirection::ToDevice)
        })
        .unwrap();
    assert!(dirs);
    drop(nl);
    // The existing range does not bypass the permission check (upstream order, kept).
    assert_eq!(
        s.range_find_or_insert(BASE, gpuva(), &ctx()).err(),
        Some(code::EPERM)
    );
    drop(r);
    teardown(w, s);
}

// --------------------------------------------------------------------------- find_or_insert errors

#[test]
fn find_or_insert_rejects_addresses_outside_the_window() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 2 * M, RW_ANON);
    let cfg = SvmConfig {
        mm_start: BASE,
        mm_range: M,
        ..config()
    };
    let mut s = Svm::new(
        cfg,
        w.driver(),
        Some(w.mm.clone()),
        w.alloc.clone(),
        w.clock.clone(),
    )
    .unwrap();
    assert_eq!(
        s.range_find_or_insert(BASE - 1, gpuva(), &ctx()).err(),
        Some(code::EINVAL)
    );
    // `fault == mm_start + mm_range` is outside (upstream's `>` lets it through).
    assert_eq!(
        s.range_find_or_insert(BASE + M, gpuva(), &ctx()).err(),
        Some(code::EINVAL)
    );
    assert_eq!(
        s.range_find_or_insert(u64::MAX, gpuva(), &ctx()).err(),
        Some(code::EINVAL)
    );
    teardown(w, s);
}

#[test]
fn find_or_insert_errors_leave_nothing_behind() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 2 * M, RW_ANON);
    let mut s = svm(&w);
    let baseline = w.alloc.live();

    // No VMA: ENOENT, and the notifier created for the fault is removed again.
    assert_eq!(
        s.range_find_or_insert(BASE + 4 * M, gpuva(), &ctx()).err(),
        Some(code::ENOENT)
    );
    assert_eq!(w.mm.registered_notifiers(), 0);
    assert_eq!(w.alloc.live(), baseline);

    // A VM_IO/VM_PFNMAP VMA (no struct pages): EIO, as upstream, after the write check.
    w.mm.mmap(BASE + 8 * M, BASE + 10 * M, RW_ANON | VmaFlags::PFNMAP);
    assert_eq!(
        s.range_find_or_insert(BASE + 8 * M, gpuva(), &ctx()).err(),
        Some(code::EIO)
    );
    w.mm.mmap(
        BASE + 12 * M,
        BASE + 14 * M,
        VmaFlags::READ | VmaFlags::PFNMAP,
    );
    assert_eq!(
        s.range_find_or_insert(BASE + 12 * M, gpuva(), &ctx()).err(),
        Some(code::EPERM)
    );
    assert_eq!(w.mm.registered_notifiers(), 0);
    assert_eq!(w.alloc.live(), baseline);

    // GPU VA window that excludes the fault: no chunk fits.
    let narrow = Span::new(0, BASE).unwrap();
    assert_eq!(
        s.range_find_or_insert(BASE, narrow, &ctx()).err(),
        Some(code::EINVAL)
    );
    assert_eq!(w.mm.registered_notifiers(), 0);

    // Allocation failures: the notifier (first allocation), then the range (second).
    w.alloc.fail_nth(1);
    assert_eq!(
        s.range_find_or_insert(BASE, gpuva(), &ctx()).err(),
        Some(code::ENOMEM)
    );
    w.alloc.fail_nth(2);
    assert_eq!(
        s.range_find_or_insert(BASE, gpuva(), &ctx()).err(),
        Some(code::ENOMEM)
    );
    assert_eq!(w.mm.registered_notifiers(), 0);
    assert_eq!(w.alloc.live(), baseline);
    assert_eq!(s.num_ranges(), 0);

    // An exiting mm: EFAULT.
    w.mm.kill();
    assert_eq!(
        s.range_find_or_insert(BASE, gpuva(), &ctx()).err(),
        Some(code::EFAULT)
    );
    teardown(w, s);
}

#[test]
fn pages_only_instance_has_no_ranges() {
    let w = World::new(1);
    let mut s = Svm::new(
        SvmConfig::pages_only("userptr", 12),
        w.driver(),
        None,
        w.alloc.clone(),
        w.clock.clone(),
    )
    .unwrap();
    assert_eq!(
        s.range_find_or_insert(BASE, gpuva(), &ctx()).err(),
        Some(code::EINVAL)
    );
    teardown(w, s);
}

#[test]
fn init_validates_parameters() {
    let w = World::new(1);
    let mk = |cfg: SvmConfig<'_>, mm: Option<MockMm>| {
        Svm::new(cfg, w.driver(), mm, w.alloc.clone(), w.clock.clone()).map(|_| ())
    };
    let mm = Some(w.mm.clone());
    assert_eq!(mk(config(), mm.clone()), Ok(()));
    let bad_notifier = SvmConfig {
        notifier_size: 3 * M,
        ..config()
    };
    assert_eq!(mk(bad_notifier, mm.clone()), Err(code::EINVAL));
    let bad_chunks = SvmConfig {
        chunk_sizes: &[64 * K, 2 * M],
        ..config()
    };
    assert_eq!(mk(bad_chunks, mm.clone()), Err(code::EINVAL));
    let no_chunks = SvmConfig {
        chunk_sizes: &[],
        ..config()
    };
    assert_eq!(mk(no_chunks, mm.clone()), Err(code::EINVAL));
    let overflow = SvmConfig {
        mm_start: u64::MAX - 10,
        mm_range: 100,
        ..config()
    };
    assert_eq!(mk(overflow, mm.clone()), Err(code::EINVAL));
    let empty = SvmConfig {
        mm_range: 0,
        ..config()
    };
    assert_eq!(mk(empty, mm.clone()), Err(code::EINVAL));
    let bad_page = SvmConfig {
        page_shift: 11,
        ..config()
    };
    assert_eq!(mk(bad_page, mm), Err(code::EINVAL));
    // Pages-only mode requires the range parameters to be zero.
    assert_eq!(mk(config(), None), Err(code::EINVAL));
    assert_eq!(mk(SvmConfig::pages_only("p", 12), None), Ok(()));
    w.alloc.0.fail_all.store(true, Ordering::SeqCst);
    assert_eq!(mk(SvmConfig::pages_only("p", 12), None), Err(code::ENOMEM));
    w.alloc.0.fail_all.store(false, Ordering::SeqCst);
    assert_eq!(w.alloc.live(), 0);
}

// ----------------------------------------------------------------------------------- chunk sizes

#[test]
fn chunks_fit_the_vma_and_avoid_existing_ranges() {
    let w = World::new(1);
    // A 128K VMA at an address that is 64K but not 2M aligned: 64K chunks.
    w.mm.mmap(BASE + 64 * K, BASE + 192 * K, RW_ANON);
    let mut s = svm(&w);
    let a = s
        .range_find_or_insert(BASE + 70 * K, gpuva(), &ctx())
        .unwrap();
    assert_eq!((a.start(), a.size()), (BASE + 64 * K, 64 * K));
    let b = s
        .range_find_or_insert(BASE + 130 * K, gpuva(), &ctx())
        .unwrap();
    assert_eq!((b.start(), b.size()), (BASE + 128 * K, 64 * K));
    assert_eq!(s.num_ranges(), 2);
    assert_eq!(s.num_notifiers(), 1);
    assert!(s.has_mapping(Span::new(BASE, BASE + 65 * K).unwrap()));
    assert!(!s.has_mapping(Span::new(BASE, BASE + 64 * K).unwrap()));
    let starts: Vec<u64> = s
        .ranges(Span::new(0, u64::MAX).unwrap())
        .map(|r| r.start())
        .collect();
    assert_eq!(starts, [BASE + 64 * K, BASE + 128 * K]);
    drop((a, b));
    teardown(w, s);
}

#[test]
fn check_pages_threshold_needs_present_pages() {
    let w = World::new(1);
    w.mm.mmap(BASE + 64 * K, BASE + 192 * K, RW_ANON);
    let mut s = svm(&w);
    let c = Ctx {
        check_pages_threshold: 64 * K,
        ..ctx()
    };
    // Untouched memory: the 64K candidate fails the page check, 4K is taken.
    let r = s.range_find_or_insert(BASE + 64 * K, gpuva(), &c).unwrap();
    assert_eq!(r.size(), 4 * K);
    // CPU-touched memory: 64K passes.
    for p in 0..16 {
        w.mm.cpu_write(BASE + 128 * K + p * 4096, p);
    }
    let r2 = s.range_find_or_insert(BASE + 128 * K, gpuva(), &c).unwrap();
    assert_eq!(r2.size(), 64 * K);
    drop((r, r2));
    teardown(w, s);
}

// ---------------------------------------------------------------------------------- get_pages

#[test]
fn collision_during_fault_retries() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 2 * M, RW_ANON);
    let mut s = svm(&w);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    // An invalidation elsewhere in the notifier collides with the first walk.
    w.mm.hook(HmmHook::Invalidate {
        start: BASE + 8 * M,
        end: BASE + 9 * M,
        event: MmuEvent::Clear,
    });
    let before = w.mm.0.hmm_calls.load(Ordering::SeqCst);
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    assert_eq!(w.mm.0.hmm_calls.load(Ordering::SeqCst) - before, 2);
    let nl = s.notifier_lock();
    assert!(s.range_pages_valid(&nl, &r));
    drop(nl);
    drop(r);
    teardown(w, s);
}

#[test]
fn persistent_collisions_end_in_ebusy_after_the_budget() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    let mut s = svm(&w);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    for _ in 0..3000 {
        w.mm.hook(HmmHook::Fail(code::EBUSY));
    }
    let t0 = w.clock.now_ms();
    assert_eq!(s.range_get_pages(&r, pages0(&r), &ctx()), Err(code::EBUSY));
    let spent = w.clock.now_ms() - t0;
    assert!((1000..1100).contains(&spent), "spent {spent} ms");
    drop(r);
    teardown(w, s);
}

#[test]
fn hmm_errors_pass_through() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    let mut s = svm(&w);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    for e in [code::EFAULT, code::EPERM, code::ENOMEM] {
        w.mm.hook(HmmHook::Fail(e));
        assert_eq!(s.range_get_pages(&r, pages0(&r), &ctx()), Err(e));
    }
    assert_eq!(w.dma_live(), 0);
    drop(r);
    teardown(w, s);
}

#[test]
fn dma_failure_unmaps_exactly_this_attempt() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 2 * M, RW_ANON);
    let mut s = svm(&w);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    w.devs[0].fail_nth(100);
    assert_eq!(s.range_get_pages(&r, pages0(&r), &ctx()), Err(code::EFAULT));
    // Upstream leaks the 99 mappings made before the failure (brief §9 item 11).
    assert_eq!(w.dma_live(), 0);
    assert!(w.devs[0].errors().is_empty());
    assert!(!pages0(&r).flags().is_valid());
    // The next attempt succeeds.
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    assert_eq!(w.dma_live(), 512);
    drop(r);
    teardown(w, s);
}

#[test]
fn allocation_failures_in_get_pages() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    let mut s = svm(&w);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    let baseline = w.alloc.live();
    w.alloc.fail_nth(1); // the pfn array
    assert_eq!(s.range_get_pages(&r, pages0(&r), &ctx()), Err(code::ENOMEM));
    w.alloc.fail_nth(2); // the DMA array
    assert_eq!(s.range_get_pages(&r, pages0(&r), &ctx()), Err(code::ENOMEM));
    assert_eq!(w.alloc.live(), baseline);
    assert_eq!(w.dma_live(), 0);
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    drop(r);
    teardown(w, s);
}

#[test]
fn devmem_only_refuses_system_pages_and_dead_mm_faults() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    let mut s = svm(&w);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    let only = Ctx {
        devmem_only: true,
        ..ctx()
    };
    assert_eq!(s.range_get_pages(&r, pages0(&r), &only), Err(code::EFAULT));
    assert_eq!(w.dma_live(), 0);
    w.mm.kill();
    assert_eq!(s.range_get_pages(&r, pages0(&r), &ctx()), Err(code::EFAULT));
    drop(r);
    teardown(w, s);
}

#[test]
fn userptr_pages_with_own_notifier() {
    // Pages-only mode: the driver owns the pages and the interval notifier.
    struct UserPtr {
        notifier: MockNotifier,
        pages: SvmPages<MockDriver>,
        svm: *const Svm<MockDriver>,
    }
    impl Subscriber for UserPtr {
        fn invalidate(&self, _range: &MmuRange, cur_seq: u64) -> bool {
            // SAFETY: The test keeps the instance alive while registered.
            let svm = unsafe { &*self.svm };
            let guard = svm.notifier_lock_write();
            self.notifier.set_seq(cur_seq);
            drop(guard);
            svm.unmap_pages(&self.pages);
            true
        }
    }
    // SAFETY: Test-only; the raw pointer is only used while `s` lives.
    unsafe impl Sync for UserPtr {}

    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    let s = Svm::new(
        SvmConfig::pages_only("userptr", 12),
        w.driver(),
        None,
        w.alloc.clone(),
        w.clock.clone(),
    )
    .unwrap();
    let up = std::boxed::Box::new(UserPtr {
        notifier: MockNotifier::new(),
        pages: SvmPages::new(w.devs[0].clone()),
        svm: &s,
    });
    let sub: &dyn Subscriber = &*up;
    // SAFETY: `up` is boxed (stable) and removed before it is dropped.
    unsafe {
        up.notifier
            .insert(&w.mm, BASE, 64 * K, core::ptr::NonNull::from(sub))
            .unwrap()
    };
    let span = Span::new(BASE, BASE + 64 * K).unwrap();
    s.get_pages(&up.pages, &w.mm, &up.notifier, span, &ctx())
        .unwrap();
    assert!(s.pages_valid(&s.notifier_lock(), &up.pages));
    assert_eq!(w.dma_live(), 16);
    // Unaligned spans are refused.
    let odd = Span::new(BASE + 1, BASE + 4096).unwrap();
    assert_eq!(
        s.get_pages(&up.pages, &w.mm, &up.notifier, odd, &ctx()),
        Err(code::EINVAL)
    );
    // A CPU change invalidates through the user's notifier.
    w.mm.invalidate(BASE, BASE + 4096, MmuEvent::ProtectionVma, None);
    assert!(!s.pages_valid(&s.notifier_lock(), &up.pages));
    assert_eq!(w.dma_live(), 0);
    s.get_pages(&up.pages, &w.mm, &up.notifier, span, &ctx())
        .unwrap();
    s.free_pages(&up.pages);
    assert_eq!(w.dma_live(), 0);
    // SAFETY: Registered above; not inside a callback.
    unsafe { up.notifier.remove() };
    drop(up);
    teardown(w, s);
}

/// The pages-only calls under a notifier lock the caller took itself (Xe's userptr notifier:
/// `down_write(notifier_lock)`, then `drm_gpusvm_unmap_pages` with `in_notifier`): a
/// `HeldWriteLock` proof lets `unmap_pages_locked`/`free_pages_locked` work without taking the
/// lock again, and a proof of another instance's lock changes nothing.
#[test]
fn pages_calls_under_a_lock_the_caller_holds() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    let mk = || {
        Svm::new(
            SvmConfig::pages_only("userptr", 12),
            w.driver(),
            None,
            w.alloc.clone(),
            w.clock.clone(),
        )
        .unwrap()
    };
    let (s, other) = (mk(), mk());
    let notifier = MockNotifier::new();
    struct Quiet;
    impl Subscriber for Quiet {
        fn invalidate(&self, _range: &MmuRange, _cur_seq: u64) -> bool {
            true
        }
    }
    let quiet = Quiet;
    let sub: &dyn Subscriber = &quiet;
    // SAFETY: `quiet` outlives the registration, removed below.
    unsafe {
        notifier
            .insert(&w.mm, BASE, 64 * K, core::ptr::NonNull::from(sub))
            .unwrap()
    };
    let pages = SvmPages::new(w.devs[0].clone());
    let span = Span::new(BASE, BASE + 64 * K).unwrap();
    let api = s.pages_api();
    api.get_pages(&pages, &w.mm, &notifier, span, &ctx())
        .unwrap();
    assert_eq!(w.dma_live(), 16);

    {
        // Another instance's lock: no effect.
        let _wg = other.notifier_lock_write();
        // SAFETY: `_wg` holds `other`'s lock for writing for this block.
        let foreign = unsafe { other.pages_api().assume_write_locked() };
        api.unmap_pages_locked(&foreign, &pages);
        api.free_pages_locked(&foreign, &pages);
    }
    assert!(api.pages_valid(&api.notifier_lock(), &pages));
    assert_eq!(w.dma_live(), 16);

    {
        let _wg = api.notifier_lock_write();
        // SAFETY: `_wg` holds this instance's lock for writing for this block.
        let held = unsafe { api.assume_write_locked() };
        // Under the caller's write lock: taking the lock again here would deadlock.
        api.unmap_pages_locked(&held, &pages);
        assert!(!api.pages_valid(&held, &pages));
        assert_eq!(w.dma_live(), 0);
    }
    api.get_pages(&pages, &w.mm, &notifier, span, &ctx())
        .unwrap();
    assert_eq!(w.dma_live(), 16);
    {
        let _wg = api.notifier_lock_write();
        // SAFETY: As above.
        let held = unsafe { api.assume_write_locked() };
        let before = w.alloc.live();
        api.free_pages_locked(&held, &pages);
        assert!(w.alloc.live() < before, "the DMA array is freed");
    }
    assert_eq!(w.dma_live(), 0);
    // SAFETY: Registered above; not inside a callback.
    unsafe { notifier.remove() };
    drop(pages);
    drop(other);
    teardown(w, s);
}

// ------------------------------------------------------------------------------- invalidation

#[test]
fn invalidation_does_not_allocate() {
    let w = World::new(2);
    w.mm.mmap(BASE, BASE + 8 * M, RW_ANON);
    let mut s = svm(&w);
    let mut ranges = Vec::new();
    for i in 0..4 {
        let r = s
            .range_find_or_insert(BASE + i * 2 * M, gpuva(), &ctx())
            .unwrap();
        for p in &r.data().pages {
            s.range_get_pages(&r, p, &ctx()).unwrap();
        }
        ranges.push(r);
    }
    assert!(w.alloc.calls() > 0);
    let calls = w.alloc.calls();
    w.mm.invalidate(BASE, BASE + 8 * M, MmuEvent::ProtectionVma, None);
    w.mm.invalidate(BASE + M, BASE + 3 * M, MmuEvent::Clear, None);
    w.mm.munmap(BASE + 6 * M, BASE + 8 * M);
    assert_eq!(w.alloc.calls(), calls, "the invalidation path allocated");
    assert!(w.stats.invalidations.load(Ordering::SeqCst) >= 3);
    assert_eq!(w.dma_live(), 0);
    drop(ranges);
    while let Some(r) = s.take_unmapped() {
        s.range_remove(&r);
    }
    assert_eq!(s.num_ranges(), 3);
    teardown(w, s);
}

#[test]
fn non_blockable_invalidation_is_best_effort() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    let mut s = svm(&w);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    // The lock is free: a non-blockable invalidation is carried out (upstream refuses it).
    assert!(w.mm.invalidate_nonblocking(BASE, BASE + 64 * K));
    assert_eq!(w.dma_live(), 0);
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    // The lock is held: it reports "would block" without touching anything.
    {
        let _nl = s.notifier_lock();
        assert!(!w.mm.invalidate_nonblocking(BASE, BASE + 64 * K));
    }
    assert_eq!(w.dma_live(), 16);
    // The driver may refuse too.
    w.stats.refuse_nonblocking.store(true, Ordering::SeqCst);
    assert!(!w.mm.invalidate_nonblocking(BASE, BASE + 64 * K));
    drop(r);
    teardown(w, s);
}

#[test]
fn multi_device_pages_per_range() {
    let w = World::new(2);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    let mut s = svm(&w);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    s.range_get_pages(&r, &r.data().pages[0], &ctx()).unwrap();
    {
        let nl = s.notifier_lock();
        // Device 1 has not mapped yet: the range as a whole is not valid.
        assert!(!s.range_pages_valid(&nl, &r));
    }
    s.range_get_pages(&r, &r.data().pages[1], &ctx()).unwrap();
    assert_eq!(w.devs[0].live(), 16);
    assert_eq!(w.devs[1].live(), 16);
    assert!(s.range_pages_valid(&s.notifier_lock(), &r));
    // Pages that do not belong to the range are refused.
    let stray = SvmPages::new(w.devs[0].clone());
    assert_eq!(s.range_get_pages(&r, &stray, &ctx()), Err(code::EINVAL));
    w.mm.invalidate(BASE, BASE + 4096, MmuEvent::Clear, None);
    assert_eq!(w.dma_live(), 0);
    drop((r, stray));
    teardown(w, s);
}

// ---------------------------------------------------------------------- iteration and teardown

#[test]
fn safe_iteration_removes_while_walking() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 8 * M, RW_ANON);
    w.mm.mmap(BASE + 600 * M, BASE + 602 * M, RW_ANON);
    let mut s = svm(&w);
    for a in [BASE, BASE + 2 * M, BASE + 4 * M, BASE + 600 * M] {
        drop(s.range_find_or_insert(a, gpuva(), &ctx()).unwrap());
    }
    assert_eq!(s.num_notifiers(), 2);
    let all = Span::new(0, u64::MAX).unwrap();
    let mut seen = Vec::new();
    s.for_each_range_safe(all, |s, r| {
        seen.push(r.start());
        s.range_remove(r);
        core::ops::ControlFlow::Continue(())
    });
    assert_eq!(seen, [BASE, BASE + 2 * M, BASE + 4 * M, BASE + 600 * M]);
    assert_eq!(s.num_ranges(), 0);
    assert_eq!(s.num_notifiers(), 0);
    assert_eq!(
        s.find_vma_start(Span::new(BASE + 9 * M, u64::MAX).unwrap()),
        Some(BASE + 600 * M)
    );
    assert_eq!(
        s.find_vma_start(Span::new(BASE + 700 * M, u64::MAX).unwrap()),
        None
    );
    teardown(w, s);
}

#[test]
fn fini_releases_live_ranges_and_references_outlive_it() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 4 * M, RW_ANON);
    let mut s = svm(&w);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    let r2 = s
        .range_find_or_insert(BASE + 2 * M, gpuva(), &ctx())
        .unwrap();
    drop(r2);
    drop(s);
    // The range was removed by fini but our reference keeps it readable.
    assert!(r.is_removed());
    assert_eq!(r.size(), 2 * M);
    assert_eq!(w.dma_live(), 0);
    assert_eq!(w.mm.registered_notifiers(), 0);
    drop(r);
    assert_eq!(w.alloc.live(), 0);
}

#[test]
fn range_evict_and_scan() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    let mut s = svm(&w);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    let pm = w.pagemap.0.pgmap;
    assert_eq!(s.scan_mm(&r, None, Some(pm)), ScanResult::Unpopulated);
    for p in 0..16 {
        w.mm.cpu_write(BASE + p * 4096, 100 + p);
    }
    assert_eq!(s.scan_mm(&r, None, Some(pm)), ScanResult::System);
    assert_eq!(s.scan_mm(&r, None, None), ScanResult::Equal);
    populate_mm::<MockDriver>(&w.pagemap, r.span(), &w.mm, 0).unwrap();
    let owner = Some(w.pagemap.owner());
    assert_eq!(s.scan_mm(&r, owner, Some(pm)), ScanResult::Equal);
    assert_eq!(s.scan_mm(&r, owner, Some(PgmapId(77))), ScanResult::Other);
    // A CPU touch moves the whole allocation back (the window is the allocation's size)...
    w.mm.cpu_write(BASE, 100);
    assert_eq!(s.scan_mm(&r, owner, Some(pm)), ScanResult::System);
    // ...so half the range on the device needs an allocation of half the size.
    populate_mm::<MockDriver>(
        &w.pagemap,
        Span::new(BASE, BASE + 32 * K).unwrap(),
        &w.mm,
        0,
    )
    .unwrap();
    assert_eq!(s.scan_mm(&r, owner, Some(pm)), ScanResult::Mixed);
    s.range_evict(&r).unwrap();
    assert_eq!(s.scan_mm(&r, owner, Some(pm)), ScanResult::System);
    assert_eq!(w.mm.cpu_read(BASE + 4096), Some(101));
    assert_eq!(w.phys.live_device_frames(), 0);
    w.mm.kill();
    assert_eq!(s.range_evict(&r), Err(code::EFAULT));
    drop(r);
    teardown(w, s);
}

// ------------------------------------------------------------------------------------- migration

fn device_accounting_is_zero(w: &World) {
    assert_eq!(
        w.phys.live_device_frames(),
        0,
        "device frames still allocated"
    );
    assert_eq!(
        w.pagemap.0.live_allocs.load(Ordering::SeqCst),
        0,
        "allocation leak"
    );
    assert_eq!(w.pagemap.free_frames(), 4096, "pool frames not returned");
    assert_eq!(w.pagemap.0.device_maps.load(Ordering::SeqCst), 0);
}

fn migrate(w: &World, span: Span, devmem: MockDevmem, details: &MigrateDetails) -> Result {
    let user = MmUser::get(&w.mm).unwrap();
    let lock = user.read_lock();
    migrate_to_devmem::<MockDriver>(devmem, &lock, span, details)
}

#[test]
fn migrate_map_fault_back_and_release() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    let mut s = svm(&w);
    for p in 0..16 {
        w.mm.cpu_write(BASE + p * 4096, 1000 + p);
    }
    let span = Span::new(BASE, BASE + 64 * K).unwrap();
    let devmem = w.pagemap.alloc_devmem(16, true).unwrap();
    let handle = devmem.clone();
    migrate(&w, span, devmem, &MigrateDetails::default()).unwrap();
    assert!(handle.state().is_attached());
    assert!(!handle.state().has_pre_migrate_fence());
    // One device-contiguous run: one copy call (the optimum).
    assert_eq!(w.pagemap.0.copies_to_dev.load(Ordering::SeqCst), 1);
    assert_eq!(w.phys.live_device_frames(), 16);

    // The GPU maps the device pages through the pagemap (owner matches).
    let c = Ctx {
        device_private_owner: Some(w.pagemap.owner()),
        devmem_only: true,
        ..ctx()
    };
    let r = s.range_find_or_insert(BASE, gpuva(), &c).unwrap();
    s.range_get_pages(&r, pages0(&r), &c).unwrap();
    assert!(pages0(&r).flags().contains(PagesFlags::HAS_DEVMEM_PAGES));
    assert_eq!(w.pagemap.0.device_maps.load(Ordering::SeqCst), 16);
    assert_eq!(w.dma_live(), 0);

    // A CPU read migrates the allocation's window back; data survives the round trip.
    assert_eq!(w.mm.cpu_read(BASE + 3 * 4096), Some(1003));
    assert!(!pages0(&r).flags().is_valid());
    assert_eq!(w.pagemap.0.copies_to_ram.load(Ordering::SeqCst), 1);
    for p in 0..16 {
        assert_eq!(w.mm.cpu_read(BASE + p * 4096), Some(1000 + p));
    }
    // Every device page is freed: the tracker dropped the allocation (detached).
    assert!(handle.state().is_detached());
    drop(handle);
    device_accounting_is_zero(&w);
    drop(r);
    teardown(w, s);
}

#[test]
fn timeslice_keeps_pages_on_the_device() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 16 * K, RW_ANON);
    w.mm.cpu_write(BASE, 9);
    let span = Span::new(BASE, BASE + 16 * K).unwrap();
    let details = MigrateDetails {
        timeslice_ms: 5,
        ..MigrateDetails::default()
    };
    let devmem = w.pagemap.alloc_devmem(4, false).unwrap();
    migrate(&w, span, devmem, &details).unwrap();
    let pfn = w.mm.pfn_at(BASE).unwrap();
    assert!(w.pagemap.owns_pfn(pfn));
    // The CPU read faults, but the timeslice has not expired: nothing moves. (The mock reads
    // the device frame directly afterwards, standing in for the re-fault loop.)
    let _ = w.mm.cpu_read(BASE);
    assert_eq!(w.mm.pfn_at(BASE), Some(pfn));
    w.clock.advance(5);
    assert_eq!(w.mm.cpu_read(BASE), Some(9));
    assert!(!w.pagemap.owns_pfn(w.mm.pfn_at(BASE).unwrap()));
    // The other pages of the allocation moved with it (window = allocation size).
    assert!(!w.pagemap.owns_pfn(w.mm.pfn_at(BASE + 12 * K).unwrap()));
    device_accounting_is_zero(&w);
}

/// `drm_pagemap_page_to_dpagemap` (through the zdd's `devmem_allocation`): the zone-device data
/// of a device page leads back to the allocation that owns it, for as long as the page lives.
#[test]
fn device_page_leads_to_its_allocation() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 16 * K, RW_ANON);
    let span = Span::new(BASE, BASE + 16 * K).unwrap();
    let devmem = w.pagemap.alloc_devmem(4, false).unwrap();
    let other = w.pagemap.alloc_devmem(4, false).unwrap();
    migrate(&w, span, devmem.clone(), &MigrateDetails::default()).unwrap();
    for p in 0..4 {
        let pfn = w.mm.pfn_at(BASE + p * 4096).unwrap();
        let PageKind::Device { zone_data, .. } = w.mm.classify_page(pfn) else {
            panic!("page {p} is not a device page of the core");
        };
        // SAFETY: The core's zone data of a page that nothing frees during the check.
        let found = unsafe { device_page_devmem::<MockDriver>(zone_data) }.unwrap();
        assert!(Arc::ptr_eq(&found.0, &devmem.0));
        assert!(!Arc::ptr_eq(&found.0, &other.0));
    }
    // SAFETY: Zero is never the core's zone data.
    assert!(unsafe { device_page_devmem::<MockDriver>(0) }.is_none());
    evict_to_ram::<MockDriver>(&devmem).unwrap();
    assert!(devmem.state().is_detached());
    drop((devmem, other));
    device_accounting_is_zero(&w);
}

#[test]
fn migration_error_codes_and_accounting() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    w.mm.mmap(
        BASE + 64 * K,
        BASE + 128 * K,
        VmaFlags::READ | VmaFlags::WRITE,
    );
    let d = MigrateDetails::default();
    let span = |a: u64, b: u64| Span::new(a, b).unwrap();
    let alloc = |n| w.pagemap.alloc_devmem(n, false).unwrap();

    // No VMA.
    assert_eq!(
        migrate(&w, span(BASE + M, BASE + M + 4096), alloc(1), &d),
        Err(code::ENOENT)
    );
    // Crosses a VMA boundary.
    assert_eq!(
        migrate(&w, span(BASE + 60 * K, BASE + 68 * K), alloc(2), &d),
        Err(code::EINVAL)
    );
    // Not anonymous.
    assert_eq!(
        migrate(&w, span(BASE + 64 * K, BASE + 68 * K), alloc(1), &d),
        Err(code::EBUSY)
    );
    // Unaligned, or larger than the allocation.
    assert_eq!(
        migrate(&w, span(BASE + 1, BASE + 4096), alloc(1), &d),
        Err(code::EINVAL)
    );
    assert_eq!(
        migrate(&w, span(BASE, BASE + 8192), alloc(1), &d),
        Err(code::EINVAL)
    );
    // Buffer allocation failure.
    w.alloc.fail_nth(1);
    assert_eq!(
        migrate(&w, span(BASE, BASE + 4096), alloc(1), &d),
        Err(code::ENOMEM)
    );
    // A copy failure unwinds: nothing stays on the device, the CPU data is intact.
    w.mm.cpu_write(BASE, 42);
    w.pagemap.0.fail_copy.store(true, Ordering::SeqCst);
    assert_eq!(
        migrate(&w, span(BASE, BASE + 4096), alloc(1), &d),
        Err(code::EFAULT)
    );
    w.pagemap.0.fail_copy.store(false, Ordering::SeqCst);
    assert_eq!(w.mm.cpu_read(BASE), Some(42));
    // Every early error consumed (released) the allocation.
    device_accounting_is_zero(&w);

    // An allocation can back one migration only.
    let a = alloc(1);
    migrate(&w, span(BASE, BASE + 4096), a.clone(), &d).unwrap();
    assert_eq!(
        migrate(&w, span(BASE + 4096, BASE + 8192), a.clone(), &d),
        Err(code::EBUSY)
    );
    // Pages already in this pagemap: EBUSY by default...
    assert_eq!(
        migrate(&w, span(BASE, BASE + 8192), alloc(2), &d),
        Err(code::EBUSY)
    );
    // ...nothing to do when all of them are...
    migrate(&w, span(BASE, BASE + 4096), alloc(1), &d).unwrap();
    // ...and only the missing ones move with the `only_missing` policy.
    let only = MigrateDetails {
        only_missing: true,
        ..d
    };
    let b = alloc(2);
    migrate(&w, span(BASE, BASE + 8192), b.clone(), &only).unwrap();
    let p0 = w.mm.pfn_at(BASE).unwrap();
    let p1 = w.mm.pfn_at(BASE + 4096).unwrap();
    assert!(
        a.0.pfns.contains(&p0),
        "the page in place stays in the first allocation"
    );
    assert!(b.0.pfns.contains(&p1));
    evict_to_ram::<MockDriver>(&a).unwrap();
    evict_to_ram::<MockDriver>(&b).unwrap();
    assert!(a.state().is_detached() && b.state().is_detached());
    assert_eq!(w.mm.cpu_read(BASE), Some(42));
    drop((a, b));
    device_accounting_is_zero(&w);
}

#[test]
fn holes_migrate_as_new_device_pages() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 16 * K, RW_ANON);
    // Pages 0 and 2 touched, 1 and 3 never: all four end on the device, with two copy calls
    // (the holes split the run).
    w.mm.cpu_write(BASE, 1);
    w.mm.cpu_write(BASE + 8 * K, 3);
    let span = Span::new(BASE, BASE + 16 * K).unwrap();
    let devmem = w.pagemap.alloc_devmem(4, false).unwrap();
    migrate(&w, span, devmem, &MigrateDetails::default()).unwrap();
    for p in 0..4 {
        assert!(w.pagemap.owns_pfn(w.mm.pfn_at(BASE + p * 4096).unwrap()));
    }
    assert_eq!(w.pagemap.0.copies_to_dev.load(Ordering::SeqCst), 2);
    assert_eq!(w.mm.cpu_read(BASE + 8 * K), Some(3));
    assert_eq!(w.mm.cpu_read(BASE + 4 * K), Some(0));
    device_accounting_is_zero(&w);
}

#[test]
fn mixing_rules_of_get_pages() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 16 * K, RW_ANON);
    let mut s = svm(&w);
    let owner = Some(w.pagemap.owner());
    let c = Ctx {
        device_private_owner: owner,
        ..ctx()
    };
    for p in 0..4 {
        w.mm.cpu_write(BASE + p * 4096, p);
    }
    // Device page first, system pages after it.
    let dm = w.pagemap.alloc_devmem(1, false).unwrap();
    migrate(
        &w,
        Span::new(BASE, BASE + 4096).unwrap(),
        dm,
        &MigrateDetails::default(),
    )
    .unwrap();
    let r = s.range_find_or_insert(BASE, gpuva(), &c).unwrap();
    assert_eq!(r.size(), 4 * K); // 16K VMA: 64K does not fit, and 4K is the next size
    let whole = Span::new(BASE, BASE + 16 * K).unwrap();
    let pages = SvmPages::<MockDriver>::new(w.devs[0].clone());
    let nref = s.notifier_find(whole).unwrap().mm_notifier();
    assert_eq!(
        s.get_pages(&pages, &w.mm, nref, whole, &c),
        Err(code::EOPNOTSUPP)
    );
    let mixed = Ctx {
        allow_mixed: true,
        ..c
    };
    s.get_pages(&pages, &w.mm, nref, whole, &mixed).unwrap();
    assert!(pages.flags().contains(PagesFlags::HAS_DEVMEM_PAGES));
    s.free_pages(&pages);
    // System page first, device page after it: accepted with allow_mixed (upstream refuses,
    // brief §9 item 17).
    let dm = w.pagemap.alloc_devmem(1, false).unwrap();
    let tail = Span::new(BASE + 12 * K, BASE + 16 * K).unwrap();
    migrate(&w, tail, dm, &MigrateDetails::default()).unwrap();
    let back = Span::new(BASE + 8 * K, BASE + 16 * K).unwrap();
    w.mm.cpu_write(BASE, 0); // bring page 0 back to RAM
    assert_eq!(
        s.get_pages(&pages, &w.mm, nref, back, &c),
        Err(code::EOPNOTSUPP)
    );
    s.get_pages(&pages, &w.mm, nref, back, &mixed).unwrap();
    s.free_pages(&pages);
    assert_eq!(w.pagemap.0.device_maps.load(Ordering::SeqCst), 0);
    drop((r, pages));
    drop(s);
    // Evict what is left on the device.
    for p in 0..4 {
        let _ = w.mm.cpu_read(BASE + p * 4096);
    }
    device_accounting_is_zero(&w);
}

#[test]
fn populate_mm_wrapper_errors() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 16 * K, RW_ANON);
    let span = Span::new(BASE, BASE + 16 * K).unwrap();
    populate_mm::<MockDriver>(&w.pagemap, span, &w.mm, 0).unwrap();
    w.pagemap.0.removed.store(true, Ordering::SeqCst);
    assert_eq!(
        populate_mm::<MockDriver>(&w.pagemap, span, &w.mm, 0),
        Err(code::ENODEV)
    );
    for p in 0..4 {
        let _ = w.mm.cpu_read(BASE + p * 4096);
    }
    w.mm.kill();
    assert_eq!(
        populate_mm::<MockDriver>(&w.pagemap, span, &w.mm, 0),
        Err(code::EFAULT)
    );
    device_accounting_is_zero(&w);
}

#[test]
fn eviction_needs_a_live_mm() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 16 * K, RW_ANON);
    let devmem = w.pagemap.alloc_devmem(4, false).unwrap();
    migrate(
        &w,
        Span::new(BASE, BASE + 16 * K).unwrap(),
        devmem.clone(),
        &MigrateDetails::default(),
    )
    .unwrap();
    w.mm.kill();
    assert_eq!(evict_to_ram::<MockDriver>(&devmem), Err(code::EFAULT));
    // A never-used allocation has nothing to evict.
    let fresh = w.pagemap.alloc_devmem(1, false).unwrap();
    assert_eq!(evict_to_ram::<MockDriver>(&fresh), Ok(()));
    drop(fresh);
    // Munmap frees the device pages; the allocation detaches.
    w.mm.munmap(BASE, BASE + 16 * K);
    assert!(devmem.state().is_detached());
    drop(devmem);
    device_accounting_is_zero(&w);
}

#[test]
fn range_evict_budget_errors() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    let mut s = svm(&w);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    // Collisions for the whole budget: the loop ends with the last error, EBUSY.
    for _ in 0..3000 {
        w.mm.hook(HmmHook::Fail(code::EBUSY));
    }
    assert_eq!(s.range_evict(&r), Err(code::EBUSY));
    // A pfn-array allocation failure is ENOMEM and leaks no mm reference (brief §9 item 12).
    w.alloc.fail_nth(1);
    assert_eq!(s.range_evict(&r), Err(code::ENOMEM));
    assert_eq!(w.mm.users(), 0);
    drop(r);
    teardown(w, s);
}

#[test]
fn migration_races_are_ebusy() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 16 * K, RW_ANON);
    for p in 0..4 {
        w.mm.cpu_write(BASE + p * 4096, p);
    }
    let span = Span::new(BASE, BASE + 16 * K).unwrap();
    // A page someone else is migrating cannot be collected: all or nothing.
    w.mm.set_migrating(BASE + 4096);
    let d = w.pagemap.alloc_devmem(4, false).unwrap();
    assert_eq!(
        migrate(&w, span, d, &MigrateDetails::default()),
        Err(code::EBUSY)
    );
    w.mm.clear_migrating(BASE + 4096);
    // A page lost between collection and `migrate_vma_pages` ("raced while finalizing").
    w.mm.0.race_pages.store(true, Ordering::SeqCst);
    let d = w.pagemap.alloc_devmem(4, false).unwrap();
    assert_eq!(
        migrate(&w, span, d, &MigrateDetails::default()),
        Err(code::EBUSY)
    );
    // The pages that did move come back on CPU access; nothing leaks.
    for p in 0..4 {
        assert_eq!(w.mm.cpu_read(BASE + p * 4096), Some(p));
    }
    device_accounting_is_zero(&w);
}

#[test]
fn eviction_gives_up_after_three_attempts() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 16 * K, RW_ANON);
    w.mm.cpu_write(BASE, 77);
    let d = w.pagemap.alloc_devmem(4, false).unwrap();
    migrate(
        &w,
        Span::new(BASE, BASE + 16 * K).unwrap(),
        d.clone(),
        &MigrateDetails::default(),
    )
    .unwrap();
    let copies = w.pagemap.0.copies_to_ram.load(Ordering::SeqCst);
    w.pagemap.0.fail_copy.store(true, Ordering::SeqCst);
    assert_eq!(evict_to_ram::<MockDriver>(&d), Err(code::EFAULT));
    assert!(!d.state().is_detached());
    assert_eq!(w.pagemap.0.copies_to_ram.load(Ordering::SeqCst), copies);
    w.pagemap.0.fail_copy.store(false, Ordering::SeqCst);
    // Nothing was lost: the pages are still on the device, and eviction now works.
    evict_to_ram::<MockDriver>(&d).unwrap();
    assert_eq!(w.mm.cpu_read(BASE), Some(77));
    drop(d);
    device_accounting_is_zero(&w);
}

#[test]
fn peer_pages_migrate_by_either_copier() {
    let w = World::new(2);
    w.mm.mmap(BASE, BASE + 16 * K, RW_ANON);
    for p in 0..4 {
        w.mm.cpu_write(BASE + p * 4096, 500 + p);
    }
    let span = Span::new(BASE, BASE + 16 * K).unwrap();
    let on_peer = w.peer.alloc_devmem(4, false).unwrap();
    migrate(&w, span, on_peer.clone(), &MigrateDetails::default()).unwrap();
    assert!(w.peer.owns_pfn(w.mm.pfn_at(BASE).unwrap()));

    // Destination-driven: we read the peer's pages over the interconnect (device_map).
    let local = w.pagemap.alloc_devmem(4, false).unwrap();
    migrate(&w, span, local.clone(), &MigrateDetails::default()).unwrap();
    assert!(w.pagemap.owns_pfn(w.mm.pfn_at(BASE).unwrap()));
    assert_eq!(w.pagemap.0.copies_to_dev.load(Ordering::SeqCst), 1);
    assert!(on_peer.state().is_detached());

    // Source-driven: the peer's copy engine writes into our pages.
    let back = w.peer.alloc_devmem(4, false).unwrap();
    let src = MigrateDetails {
        source_peer_migrates: true,
        ..MigrateDetails::default()
    };
    let before = w.pagemap.0.copies_to_ram.load(Ordering::SeqCst);
    migrate(&w, span, back.clone(), &src).unwrap();
    assert!(w.peer.owns_pfn(w.mm.pfn_at(BASE).unwrap()));
    assert_eq!(w.pagemap.0.copies_to_ram.load(Ordering::SeqCst), before + 1);
    for p in 0..4 {
        assert_eq!(w.mm.cpu_read(BASE + p * 4096), Some(500 + p));
    }
    drop((on_peer, local, back));
    assert_eq!(w.phys.live_device_frames(), 0);
    assert_eq!(w.peer.0.live_allocs.load(Ordering::SeqCst), 0);
    assert_eq!(w.peer.0.device_maps.load(Ordering::SeqCst), 0);
    device_accounting_is_zero(&w);
}

// -------------------------------------------------------------------------------- range split

fn mapped_2m(w: &World, s: &mut Svm<MockDriver>) -> RangeRef<MockDriver> {
    w.mm.mmap(BASE, BASE + 2 * M, RW_ANON);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    assert_eq!(w.dma_live(), 512);
    r
}

#[test]
fn partial_unmap_splits_and_survivors_stay_valid() {
    let w = World::new(1);
    let mut s = svm(&w);
    s.set_range_split(true);
    let r = mapped_2m(&w, &mut s);
    // Unmap one page in the middle: only that page is zapped.
    w.mm.munmap(BASE + M, BASE + M + 4096);
    assert_eq!(w.stats.zapped_bytes.load(Ordering::SeqCst), 4096);
    assert!(r.flags().contains(RangeFlags::SPLIT_PENDING));
    assert!(!r.is_unmapped());
    assert_eq!(w.dma_live(), 511, "only the unmapped page lost its mapping");
    // Pending: commits are refused and faults retry.
    assert!(!s.range_pages_valid(&s.notifier_lock(), &r));
    assert_eq!(s.range_get_pages(&r, pages0(&r), &ctx()), Err(code::EAGAIN));
    let pending = s.take_unmapped().unwrap();
    assert!(RangeRef::ptr_eq(&pending, &r));
    let pieces = s.split_range(&pending).unwrap();
    assert!(r.is_removed());
    assert_eq!(s.num_ranges(), pieces);
    // The pieces tile the survivors exactly, chunk-aligned, and are valid without a refault.
    let all = Span::new(0, u64::MAX).unwrap();
    let spans: Vec<(u64, u64)> = s.ranges(all).map(|p| (p.start(), p.end())).collect();
    let mut cursor = BASE;
    for &(a, b) in &spans {
        if cursor == BASE + M {
            cursor += 4096;
        }
        assert_eq!(a, cursor, "pieces must tile the survivors");
        assert_eq!(a % (b - a), 0, "pieces are aligned to their size");
        cursor = b;
    }
    assert_eq!(cursor, BASE + 2 * M);
    let hmm = w.mm.0.hmm_calls.load(Ordering::SeqCst);
    {
        let nl = s.notifier_lock();
        for p in s.ranges(all) {
            assert!(
                s.range_pages_valid(&nl, p),
                "piece {:#x} not valid",
                p.start()
            );
        }
    }
    let pieces_refs: Vec<_> = s.ranges(all).map(|p| p.get()).collect();
    for p in &pieces_refs {
        s.range_get_pages(p, pages0(p), &ctx()).unwrap();
    }
    assert_eq!(w.mm.0.hmm_calls.load(Ordering::SeqCst), hmm, "no refault");
    assert_eq!(w.dma_live(), 511);
    // Unmapping the rest leaves nothing behind.
    drop((r, pending, pieces_refs));
    w.mm.munmap(BASE, BASE + 2 * M);
    while let Some(r) = s.take_unmapped() {
        s.range_remove(&r);
    }
    assert_eq!(s.num_ranges(), 0);
    teardown(w, s);
}

#[test]
fn split_keeps_device_pages_in_place() {
    let w = World::new(1);
    let mut s = svm(&w);
    s.set_range_split(true);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    for p in 0..16 {
        w.mm.cpu_write(BASE + p * 4096, 40 + p);
    }
    let c = Ctx {
        device_private_owner: Some(w.pagemap.owner()),
        ..ctx()
    };
    let r = s.range_find_or_insert(BASE, gpuva(), &c).unwrap();
    let devmem = w.pagemap.alloc_devmem(16, false).unwrap();
    migrate(&w, r.span(), devmem.clone(), &MigrateDetails::default()).unwrap();
    s.range_get_pages(&r, pages0(&r), &c).unwrap();
    let copies = w.pagemap.0.copies_to_ram.load(Ordering::SeqCst);
    // Unmap the first quarter.
    w.mm.munmap(BASE, BASE + 16 * K);
    let pending = s.take_unmapped().unwrap();
    assert_eq!(s.split_range(&pending).unwrap(), 12);
    drop((r, pending));
    // Nothing was evicted or copied; the 12 surviving device pages are mapped and valid.
    assert_eq!(w.pagemap.0.copies_to_ram.load(Ordering::SeqCst), copies);
    assert_eq!(w.phys.live_device_frames(), 12);
    assert!(
        !devmem.state().is_detached(),
        "the pieces share the allocation"
    );
    assert_eq!(w.pagemap.0.device_maps.load(Ordering::SeqCst), 12);
    {
        let nl = s.notifier_lock();
        let all = Span::new(0, u64::MAX).unwrap();
        assert!(s.ranges(all).all(|p| s.range_pages_valid(&nl, p)));
        assert!(s
            .ranges(all)
            .all(|p| pages0(p).flags().contains(PagesFlags::HAS_DEVMEM_PAGES)));
    }
    assert_eq!(w.mm.cpu_read(BASE + 20 * K), Some(45));
    drop(s);
    w.mm.munmap(BASE, BASE + 64 * K);
    assert!(devmem.state().is_detached());
    drop(devmem);
    device_accounting_is_zero(&w);
    assert_eq!(w.alloc.live(), 0);
}

#[test]
fn split_failure_changes_nothing_and_upstream_mode_destroys() {
    let w = World::new(1);
    let mut s = svm(&w);
    s.set_range_split(true);
    let r = mapped_2m(&w, &mut s);
    w.mm.munmap(BASE + 2 * M - 4096, BASE + 2 * M);
    let pending = s.take_unmapped().unwrap();
    w.alloc.fail_nth(3);
    assert_eq!(s.split_range(&pending), Err(code::ENOMEM));
    assert_eq!(s.num_ranges(), 1);
    assert!(!r.is_removed());
    // The fallback is upstream's: remove it.
    s.range_remove(&pending);
    drop((r, pending));
    assert_eq!(w.dma_live(), 0);

    // Upstream mode: a partial unmap destroys the whole range.
    s.set_range_split(false);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    assert_eq!(r.size(), 64 * K, "the 2M chunk no longer fits the VMA");
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    let zapped = w.stats.zapped_bytes.load(Ordering::SeqCst);
    w.mm.munmap(BASE, BASE + 4096);
    assert!(r.is_unmapped() && r.flags().contains(RangeFlags::PARTIAL_UNMAP));
    // Upstream mode unmaps the whole range, so the whole range is zapped.
    assert_eq!(
        w.stats.zapped_bytes.load(Ordering::SeqCst) - zapped,
        64 * K as usize
    );
    assert_eq!(w.dma_live(), 0);
    let dead = s.take_unmapped().unwrap();
    assert_eq!(s.split_range(&dead), Err(code::EINVAL));
    s.range_remove(&dead);
    drop((r, dead));
    teardown(w, s);
}

#[test]
fn huge_entries_cut_by_a_split_refault() {
    let w = World::new(1);
    let mut s = svm(&w);
    s.set_range_split(true);
    w.mm.mmap(BASE, BASE + 2 * M, RW_ANON);
    w.mm.populate_thp(BASE);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    assert_eq!(w.dma_live(), 1);
    w.mm.munmap(BASE + M, BASE + 2 * M);
    // The one order-9 entry overlapped the unmapped half: it is gone, and the GPU must drop the
    // whole 2M it covered.
    assert_eq!(w.dma_live(), 0);
    assert_eq!(w.stats.zapped_bytes.load(Ordering::SeqCst), 2 * M as usize);
    let pending = s.take_unmapped().unwrap();
    assert_eq!(s.split_range(&pending).unwrap(), 16);
    let nl = s.notifier_lock();
    let all = Span::new(0, u64::MAX).unwrap();
    assert!(s.ranges(all).all(|p| !s.range_pages_valid(&nl, p)));
    drop(nl);
    drop((r, pending));
    teardown(w, s);
}

// ------------------------------------------------------------------ the notifier's block index

fn svm_with(w: &World, notifier_size: u64, chunk_sizes: &'static [u64]) -> Svm<MockDriver> {
    let config = SvmConfig {
        notifier_size,
        chunk_sizes,
        ..config()
    };
    Svm::new(
        config,
        w.driver(),
        Some(w.mm.clone()),
        w.alloc.clone(),
        w.clock.clone(),
    )
    .unwrap()
}

/// A 512 MiB window has `NOTIFIER_BLOCKS` blocks of 64 KiB; 1 MiB ranges at every other MiB
/// each span 16 blocks, so most lookups find their range by looking back over earlier blocks.
/// Point lookups, span walks across blocks and a whole-window invalidation agree with a
/// brute-force model.
#[test]
fn block_index_agrees_with_a_flat_model() {
    let block_size = 512 * M / notifier::NOTIFIER_BLOCKS as u64;
    assert_eq!(block_size, 64 * K);
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 512 * M, RW_ANON);
    let mut s = svm_with(&w, 512 * M, &[M, 64 * K, 4 * K]);
    let ctx = Ctx::default();
    let mut model: Vec<Span> = Vec::new();
    for i in (0..512u64).step_by(2) {
        // Fault anywhere inside: the range is the aligned MiB.
        let fault = BASE + i * M + (i * 37 * K) % M + 5;
        let r = s.range_find_or_insert(fault, gpuva(), &ctx).unwrap();
        assert_eq!(r.size(), M);
        model.push(r.span());
    }
    model.sort_by_key(Span::start);
    assert_eq!(s.num_ranges(), 256);
    assert_eq!(s.num_notifiers(), 1);

    // Point lookups: every block of every range, its last byte, and the gaps between.
    for r in &model {
        for a in (r.start()..r.end()).step_by(block_size as usize) {
            assert_eq!(s.range_at(a).map(|x| x.span()), Some(*r));
            assert_eq!(s.range_at(a + block_size - 1).map(|x| x.span()), Some(*r));
        }
        assert!(s.range_at(r.end()).is_none());
        assert!(s.range_at(r.end() + M - 1).is_none());
    }
    assert!(s.range_at(BASE - 1).is_none());
    assert!(s.range_at(BASE + 512 * M).is_none());

    // Span walks starting and ending anywhere.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = BASE - M + (x % (514 * M));
        let len = 1 + (x >> 40) % (5 * block_size);
        let span = Span::new(a, a + len).unwrap();
        let got: Vec<Span> = s.ranges(span).map(|r| r.span()).collect();
        let want: Vec<Span> = model
            .iter()
            .copied()
            .filter(|r| r.overlaps(&span))
            .collect();
        assert_eq!(got, want, "span {span:?}");
        assert_eq!(s.has_mapping(span), !want.is_empty());
    }

    // One invalidation of the whole window reaches every range, block after block.
    w.mm.munmap(BASE, BASE + 512 * M);
    let mut gone = 0;
    while let Some(r) = s.take_unmapped() {
        s.range_remove(&r);
        gone += 1;
    }
    assert_eq!(gone, 256);
    assert_eq!((s.num_ranges(), s.num_notifiers()), (0, 0));
    teardown(w, s);
}

/// Ranges far larger than a block (16 MiB ranges over 8 KiB blocks: 2048 blocks each) are
/// found from any address inside them; dropping the instance frees ranges of every block.
#[test]
fn ranges_much_larger_than_a_block() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * M, RW_ANON);
    let mut s = svm_with(&w, 64 * M, &[16 * M, 4 * K]);
    for i in 0..4u64 {
        let r = s
            .range_find_or_insert(BASE + i * 16 * M + 5 * M, gpuva(), &Ctx::default())
            .unwrap();
        assert_eq!(r.span(), Span::from_len(BASE + i * 16 * M, 16 * M).unwrap());
    }
    for a in (BASE..BASE + 64 * M).step_by((M + 4 * K) as usize) {
        let r = s.range_at(a).unwrap();
        assert!(r.span().contains(a));
    }
    let all: Vec<u64> = s
        .ranges(Span::new(BASE, BASE + 64 * M).unwrap())
        .map(|r| r.start())
        .collect();
    assert_eq!(all, [0, 16, 32, 48].map(|m| BASE + m * M));
    teardown(w, s);
}

// ------------------------------------------------------------- driver index hooks, with_lock

/// The notifier window of every test below (`BASE` is 512 MiB aligned).
const WINDOW: (u64, u64) = (BASE, BASE + 512 * M);

fn kinds(ev: &[HookEvent]) -> Vec<(HookKind, (u64, u64))> {
    ev.iter().map(|e| (e.kind, e.span)).collect()
}

fn addr_of<T>(x: &T) -> usize {
    x as *const T as usize
}

/// An instance whose driver records its hooks into the returned log.
fn hooked_svm(w: &World) -> (Svm<MockDriver>, Arc<HookLog>) {
    let log = HookLog::new();
    let s = Svm::new(
        config(),
        w.driver().with_hooks(&log),
        Some(w.mm.clone()),
        w.alloc.clone(),
        w.clock.clone(),
    )
    .unwrap();
    (s, log)
}

/// As [`hooked_svm`], built with `Svm::with_lock` and a lock the hooks can look at.
fn hooked_locked_svm(w: &World) -> (Svm<MockDriver>, Arc<HookLog>, MockLock) {
    let log = HookLog::new();
    let lock = MockLock::new();
    log.set_lock(&lock);
    let s = Svm::with_lock(
        config(),
        w.driver().with_hooks(&log),
        lock.clone(),
        Some(w.mm.clone()),
        w.alloc.clone(),
        w.clock.clone(),
    )
    .unwrap();
    (s, log, lock)
}

/// What a driver mirroring the index (the C ABI's lists) would hold.
#[derive(Default, Debug)]
struct IndexModel {
    /// Linked ranges: identity → (span, notifier identity).
    ranges: HashMap<usize, ((u64, u64), usize)>,
    /// Linked notifiers: identity → window.
    notifiers: HashMap<usize, (u64, u64)>,
    /// A new notifier whose first range was linked, which must be linked next.
    pending: Option<usize>,
    range_links: usize,
    range_unlinks: usize,
    notifier_links: usize,
    notifier_unlinks: usize,
}

impl IndexModel {
    /// Replays hook events, checking that each one is consistent with what came before: a range
    /// is linked once and unlinked once, inside its notifier's window, overlapping no linked
    /// range; a new notifier is linked right after its first range, and unlinked only once it
    /// holds none; the hooks see the index and the notifier's payload as the hook says.
    fn replay(&mut self, events: &[HookEvent]) {
        for e in events {
            assert_eq!(e.data_window, e.notifier, "notifier payload {e:?}");
            if let Some(p) = self.pending.take() {
                assert!(
                    e.kind == HookKind::NotifierLinked && e.notifier_addr == p,
                    "a new notifier must be linked right after its first range: {e:?}"
                );
            }
            match e.kind {
                HookKind::RangeLinked => {
                    assert!(e.in_index && !e.notifier_empty, "{e:?}");
                    assert!(
                        e.notifier.0 <= e.span.0 && e.span.1 <= e.notifier.1,
                        "{e:?}"
                    );
                    assert!(
                        self.ranges.values().all(|&((a, b), n)| n != e.notifier_addr
                            || b <= e.span.0
                            || e.span.1 <= a),
                        "overlapping link {e:?}"
                    );
                    let old = self.ranges.insert(e.range_addr, (e.span, e.notifier_addr));
                    assert!(old.is_none(), "range linked twice: {e:?}");
                    if !self.notifiers.contains_key(&e.notifier_addr) {
                        self.pending = Some(e.notifier_addr);
                    }
                    self.range_links += 1;
                }
                HookKind::RangeUnlinked => {
                    assert!(!e.in_index, "{e:?}");
                    assert!(self.notifiers.contains_key(&e.notifier_addr), "{e:?}");
                    let old = self.ranges.remove(&e.range_addr);
                    assert_eq!(old, Some((e.span, e.notifier_addr)), "unlink of {e:?}");
                    self.range_unlinks += 1;
                }
                HookKind::NotifierLinked => {
                    assert!(e.mmu_registered && !e.notifier_empty, "{e:?}");
                    let held = self
                        .ranges
                        .values()
                        .filter(|r| r.1 == e.notifier_addr)
                        .count();
                    assert_eq!(held, 1, "a new notifier holds its first range: {e:?}");
                    let old = self.notifiers.insert(e.notifier_addr, e.span);
                    assert!(old.is_none(), "notifier linked twice: {e:?}");
                    self.notifier_links += 1;
                }
                HookKind::NotifierUnlinked => {
                    assert!(!e.mmu_registered && e.notifier_empty, "{e:?}");
                    assert!(
                        self.ranges.values().all(|r| r.1 != e.notifier_addr),
                        "notifier unlinked with ranges: {e:?}"
                    );
                    assert_eq!(self.notifiers.remove(&e.notifier_addr), Some(e.span));
                    self.notifier_unlinks += 1;
                }
                HookKind::NotifierData => panic!("not a hook event: {e:?}"),
            }
        }
    }

    /// Everything linked was unlinked.
    fn assert_empty(&self) {
        assert!(self.pending.is_none(), "{self:?}");
        assert!(self.ranges.is_empty(), "ranges still linked: {self:?}");
        assert!(
            self.notifiers.is_empty(),
            "notifiers still linked: {self:?}"
        );
        assert_eq!(self.range_links, self.range_unlinks);
        assert_eq!(self.notifier_links, self.notifier_unlinks);
    }
}

/// The range hooks run under the notifier lock held for reading (exactly once: no writer can
/// get in); the notifier hooks under the driver lock only, as upstream changes its notifier
/// list without `notifier_lock`.
fn assert_hook_locks(events: &[HookEvent]) {
    for e in events {
        let want = match e.kind {
            HookKind::RangeLinked | HookKind::RangeUnlinked => LockSeen::READ_ONCE,
            _ => LockSeen::FREE,
        };
        assert_eq!(e.lock, Some(want), "lock state in {e:?}");
    }
}

/// `find_or_insert` of a range in a new notifier reports the range, then the notifier; a second
/// range of the same notifier only the range. Both run after every allocation of the call, with
/// the range in the index and the notifier registered and carrying its `notifier_data` payload.
/// Hits and failures report nothing.
#[test]
fn find_or_insert_links_the_range_then_the_new_notifier() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    w.mm.mmap(BASE + 64 * K, BASE + 128 * K, RW_ANON);
    let (mut s, log) = hooked_svm(&w);
    let mut model = IndexModel::default();

    let r1 = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    let calls = w.alloc.calls();
    let ev = log.take();
    assert_eq!(
        kinds(&ev),
        [
            (HookKind::RangeLinked, (BASE, BASE + 64 * K)),
            (HookKind::NotifierLinked, WINDOW),
        ]
    );
    let n = s.notifier_find(r1.span()).unwrap();
    assert_eq!(n.data().window, WINDOW, "the payload notifier_data built");
    assert_eq!(ev[0].range_addr, addr_of(&*r1));
    assert!(ev.iter().all(|e| e.notifier_addr == addr_of(n)));
    assert!(ev.iter().all(|e| e.notifier == WINDOW && e.lock.is_none()));
    assert!(
        ev.iter().all(|e| e.alloc_calls == calls),
        "nothing allocates from the first hook on: {ev:?}, {calls}"
    );
    assert!(ev[0].in_index && ev[1].mmu_registered);
    let data = log.data_calls();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].span, WINDOW);
    model.replay(&ev);

    let r2 = s
        .range_find_or_insert(BASE + 64 * K, gpuva(), &ctx())
        .unwrap();
    let calls = w.alloc.calls();
    let ev = log.take();
    assert_eq!(
        kinds(&ev),
        [(HookKind::RangeLinked, (BASE + 64 * K, BASE + 128 * K))]
    );
    assert_eq!(ev[0].range_addr, addr_of(&*r2));
    assert_eq!(
        ev[0].notifier_addr,
        addr_of(s.notifier_find(r1.span()).unwrap())
    );
    assert_eq!(ev[0].alloc_calls, calls);
    assert_eq!(
        log.data_calls().len(),
        1,
        "no payload for an existing notifier"
    );
    model.replay(&ev);

    // A hit, a failure in the existing notifier and one in a new notifier link nothing.
    let hit = s
        .range_find_or_insert(BASE + 4096, gpuva(), &ctx())
        .unwrap();
    assert!(RangeRef::ptr_eq(&hit, &r1));
    assert_eq!(
        s.range_find_or_insert(BASE + 4 * M, gpuva(), &ctx()).err(),
        Some(code::ENOENT)
    );
    assert_eq!(
        s.range_find_or_insert(BASE + 512 * M, gpuva(), &ctx())
            .err(),
        Some(code::ENOENT)
    );
    assert!(log.events().is_empty(), "{:?}", log.events());
    let data = log.data_calls();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1].span, (BASE + 512 * M, BASE + 1024 * M));
    assert_eq!((s.num_ranges(), s.num_notifiers()), (2, 1));

    drop((r1, r2, hit));
    teardown(w, s);
    model.replay(&log.take());
    model.assert_empty();
}

/// Removing a range that is not the last reports only its unlink; removing the last one
/// reports its unlink, then the notifier's, after the MMU notifier is gone. Removal allocates
/// nothing, and removing twice reports nothing.
#[test]
fn range_remove_unlinks_the_range_then_the_emptied_notifier() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 64 * K, RW_ANON);
    w.mm.mmap(BASE + 64 * K, BASE + 128 * K, RW_ANON);
    let (mut s, log) = hooked_svm(&w);
    let mut model = IndexModel::default();
    let r1 = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    let r2 = s
        .range_find_or_insert(BASE + 64 * K, gpuva(), &ctx())
        .unwrap();
    let linked = log.take();
    let notifier = linked[1].notifier_addr;
    model.replay(&linked);

    let calls = w.alloc.calls();
    s.range_remove(&r2);
    let ev = log.take();
    assert_eq!(
        kinds(&ev),
        [(HookKind::RangeUnlinked, (BASE + 64 * K, BASE + 128 * K))]
    );
    assert_eq!(ev[0].range_addr, addr_of(&*r2));
    assert_eq!(ev[0].notifier_addr, notifier);
    assert!(!ev[0].in_index && !ev[0].notifier_empty);
    assert_eq!(ev[0].alloc_calls, calls);
    assert_eq!((s.num_ranges(), s.num_notifiers()), (1, 1));
    model.replay(&ev);

    s.range_remove(&r2);
    assert!(log.events().is_empty(), "a second remove reports nothing");

    s.range_remove(&r1);
    let ev = log.take();
    assert_eq!(
        kinds(&ev),
        [
            (HookKind::RangeUnlinked, (BASE, BASE + 64 * K)),
            (HookKind::NotifierUnlinked, WINDOW),
        ]
    );
    assert_eq!(ev[0].range_addr, addr_of(&*r1));
    assert!(ev.iter().all(|e| e.notifier_addr == notifier));
    assert!(ev[0].notifier_empty && !ev[0].in_index);
    assert!(!ev[1].mmu_registered, "the MMU notifier goes first");
    assert!(ev.iter().all(|e| e.alloc_calls == calls));
    assert_eq!(w.alloc.calls(), calls, "removal allocates nothing");
    assert_eq!((s.num_ranges(), s.num_notifiers()), (0, 0));
    assert_eq!(w.mm.registered_notifiers(), 0);
    model.replay(&ev);
    model.assert_empty();

    drop((r1, r2));
    teardown(w, s);
    assert!(log.events().is_empty(), "nothing left to unlink at drop");
}

/// The range hooks run with the notifier lock held for reading — on insert, on removal, on a
/// split and at drop — so a writer (the invalidation) cannot get in while a driver updates its
/// mirror. The notifier hooks and `notifier_data` run without it.
#[test]
fn range_hooks_run_under_the_notifier_read_lock() {
    let w = World::new(1);
    let (mut s, log, lock) = hooked_locked_svm(&w);
    s.set_range_split(true);
    let a = mapped_2m(&w, &mut s);
    w.mm.mmap(BASE + 2 * M, BASE + 2 * M + 64 * K, RW_ANON);
    let b = s
        .range_find_or_insert(BASE + 2 * M, gpuva(), &ctx())
        .unwrap();
    assert_eq!(lock.seen(), LockSeen::FREE);
    w.mm.munmap(BASE + M, BASE + M + 4096);
    let pending = s.take_unmapped().unwrap();
    let pieces = s.split_range(&pending).unwrap();
    assert_eq!(lock.seen(), LockSeen::FREE);
    s.range_remove(&b);
    assert_eq!(lock.seen(), LockSeen::FREE);
    drop((a, b, pending));
    teardown(w, s);

    let ev = log.events();
    let count = |k: HookKind| ev.iter().filter(|e| e.kind == k).count();
    assert_eq!(count(HookKind::RangeLinked), 2 + pieces);
    assert_eq!(count(HookKind::RangeUnlinked), 2 + pieces);
    assert_eq!(count(HookKind::NotifierLinked), 1);
    assert_eq!(count(HookKind::NotifierUnlinked), 1);
    assert_hook_locks(&ev);
    let data = log.data_calls();
    assert_eq!(data.len(), 1);
    assert_eq!(
        data[0].lock,
        Some(LockSeen::FREE),
        "notifier_data takes no lock"
    );
    let mut model = IndexModel::default();
    model.replay(&ev);
    model.assert_empty();
}

/// A failing `notifier_data` fails `find_or_insert` with its error and creates nothing: no
/// range, no notifier, no MMU notifier, no leak, no hook. It is only asked for new notifiers.
#[test]
fn failing_notifier_data_creates_nothing() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 2 * M, RW_ANON);
    let (mut s, log) = hooked_svm(&w);
    let live = w.alloc.live();
    log.fail_notifier_data.store(true, Ordering::SeqCst);
    assert_eq!(
        s.range_find_or_insert(BASE, gpuva(), &ctx()).err(),
        Some(code::ENOMEM)
    );
    assert_eq!((s.num_ranges(), s.num_notifiers()), (0, 0));
    assert!(log.events().is_empty(), "{:?}", log.events());
    assert_eq!(log.data_calls().len(), 1);
    assert_eq!(log.data_calls()[0].span, WINDOW);
    assert_eq!(w.mm.registered_notifiers(), 0);
    assert_eq!(w.alloc.live(), live);
    assert_eq!((w.mm.users(), w.mm.readers()), (0, 0));
    assert!(s
        .notifier_find(Span::new(BASE, BASE + 1).unwrap())
        .is_none());

    // Once it succeeds, the same fault works.
    log.fail_notifier_data.store(false, Ordering::SeqCst);
    let r = s.range_find_or_insert(BASE, gpuva(), &ctx()).unwrap();
    assert_eq!(
        kinds(&log.take()),
        [
            (HookKind::RangeLinked, (BASE, BASE + 2 * M)),
            (HookKind::NotifierLinked, WINDOW),
        ]
    );

    // An existing notifier needs no payload; a new one still fails.
    log.fail_notifier_data.store(true, Ordering::SeqCst);
    w.mm.mmap(BASE + 2 * M, BASE + 2 * M + 64 * K, RW_ANON);
    let r2 = s
        .range_find_or_insert(BASE + 2 * M, gpuva(), &ctx())
        .unwrap();
    assert_eq!(
        kinds(&log.take()),
        [(HookKind::RangeLinked, (BASE + 2 * M, BASE + 2 * M + 64 * K))]
    );
    w.mm.mmap(BASE + 512 * M, BASE + 514 * M, RW_ANON);
    assert_eq!(
        s.range_find_or_insert(BASE + 512 * M, gpuva(), &ctx())
            .err(),
        Some(code::ENOMEM)
    );
    assert!(log.events().is_empty());
    assert_eq!(log.data_calls().len(), 3);
    assert_eq!((s.num_ranges(), s.num_notifiers()), (2, 1));
    assert_eq!(w.mm.registered_notifiers(), 1);
    drop((r, r2));
    teardown(w, s);
}

/// A split reports the old range unlinked, then each piece linked, in address order, all with
/// no allocation once the first hook ran (the pieces are allocated before the lock); a failed
/// split and the invalidations report nothing; removing everything unlinks every piece and the
/// notifier, once each.
#[test]
fn split_unlinks_the_old_range_and_links_each_piece() {
    let w = World::new(1);
    let (mut s, log, _lock) = hooked_locked_svm(&w);
    s.set_range_split(true);
    let r = mapped_2m(&w, &mut s);
    let mut model = IndexModel::default();
    let ev = log.take();
    assert_hook_locks(&ev);
    model.replay(&ev);

    w.mm.munmap(BASE + M, BASE + M + 4096);
    assert!(
        log.events().is_empty(),
        "invalidations do not touch the index"
    );
    let pending = s.take_unmapped().unwrap();
    w.alloc.fail_nth(3);
    assert_eq!(s.split_range(&pending), Err(code::ENOMEM));
    assert!(log.events().is_empty(), "a failed split changes nothing");

    let pieces = s.split_range(&pending).unwrap();
    let calls = w.alloc.calls();
    let ev = log.take();
    assert_eq!(ev.len(), 1 + pieces, "{:?}", kinds(&ev));
    assert_eq!(ev[0].kind, HookKind::RangeUnlinked);
    assert_eq!(ev[0].span, (BASE, BASE + 2 * M));
    assert_eq!(ev[0].range_addr, addr_of(&*r));
    let all = Span::new(0, u64::MAX).unwrap();
    let spans: Vec<(u64, u64)> = s.ranges(all).map(|p| (p.start(), p.end())).collect();
    let addrs: Vec<usize> = s.ranges(all).map(addr_of).collect();
    assert_eq!(spans.len(), pieces);
    assert!(ev[1..].iter().all(|e| e.kind == HookKind::RangeLinked));
    assert_eq!(
        ev[1..].iter().map(|e| e.span).collect::<Vec<_>>(),
        spans,
        "each piece, in address order"
    );
    assert_eq!(
        ev[1..].iter().map(|e| e.range_addr).collect::<Vec<_>>(),
        addrs
    );
    assert!(ev.iter().all(|e| e.notifier_addr == ev[0].notifier_addr));
    assert!(
        ev.iter().all(|e| e.alloc_calls == calls),
        "the pieces are allocated before the lock: {calls}, {ev:?}"
    );
    assert_hook_locks(&ev);
    model.replay(&ev);

    // The GC removes everything: each piece once, then the notifier.
    drop((r, pending));
    w.mm.munmap(BASE, BASE + 2 * M);
    assert!(log.events().is_empty());
    while let Some(r) = s.take_unmapped() {
        s.range_remove(&r);
    }
    let ev = log.take();
    assert_eq!(ev.len(), pieces + 1);
    assert_eq!(ev.last().map(|e| e.kind), Some(HookKind::NotifierUnlinked));
    model.replay(&ev);
    model.assert_empty();
    assert_eq!(model.range_links, 1 + pieces);
    teardown(w, s);
    assert!(log.events().is_empty());
}

/// Dropping the instance unlinks every range that is still linked — original ranges and split
/// pieces, in several notifiers — and then each notifier, once each.
#[test]
fn dropping_the_svm_unlinks_everything_that_was_linked() {
    let w = World::new(1);
    let (mut s, log, _lock) = hooked_locked_svm(&w);
    s.set_range_split(true);
    let r = mapped_2m(&w, &mut s);
    w.mm.mmap(BASE + 4 * M, BASE + 4 * M + 64 * K, RW_ANON);
    w.mm.mmap(BASE + 512 * M, BASE + 514 * M, RW_ANON);
    w.mm.mmap(BASE + 2048 * M, BASE + 2048 * M + 4 * K, RW_ANON);
    let others: Vec<_> = [BASE + 4 * M, BASE + 512 * M, BASE + 2048 * M]
        .map(|a| s.range_find_or_insert(a, gpuva(), &ctx()).unwrap())
        .into();
    w.mm.munmap(BASE + 2 * M - 4096, BASE + 2 * M);
    let pending = s.take_unmapped().unwrap();
    let pieces = s.split_range(&pending).unwrap();
    assert!(pieces > 1);
    assert_eq!(s.num_notifiers(), 3);
    let before = log.events().len();
    drop((r, pending, others));
    teardown(w, s);

    let ev = log.events();
    let dropped = &ev[before..];
    assert!(
        dropped
            .iter()
            .all(|e| matches!(e.kind, HookKind::RangeUnlinked | HookKind::NotifierUnlinked)),
        "drop only unlinks"
    );
    assert_eq!(
        dropped
            .iter()
            .filter(|e| e.kind == HookKind::NotifierUnlinked)
            .count(),
        3
    );
    assert_hook_locks(&ev);
    let mut model = IndexModel::default();
    model.replay(&ev);
    model.assert_empty();
    assert_eq!(model.range_links, 4 + pieces);
    assert_eq!(model.notifier_links, 3);
}

/// `Svm::with_lock` works like `Svm::new` (the fault flow), on the lock it was given: the
/// instance's read and write guards are holds of that lock, and a reader holding it from
/// outside keeps the invalidation out. On error, and when the instance goes, the lock is
/// dropped.
#[test]
fn with_lock_uses_the_callers_lock() {
    let w = World::new(1);
    w.mm.mmap(BASE, BASE + 2 * M, RW_ANON);
    let lock = MockLock::new();
    let bad = SvmConfig {
        notifier_size: 3 * M,
        ..config()
    };
    let err = Svm::with_lock(
        bad,
        w.driver(),
        lock.clone(),
        Some(w.mm.clone()),
        w.alloc.clone(),
        w.clock.clone(),
    )
    .err();
    assert_eq!(err, Some(code::EINVAL));
    assert_eq!(
        Arc::strong_count(&lock.0),
        1,
        "the lock is dropped on error"
    );

    let mut s = Svm::with_lock(
        config(),
        w.driver(),
        lock.clone(),
        Some(w.mm.clone()),
        w.alloc.clone(),
        w.clock.clone(),
    )
    .unwrap();
    assert_eq!(Arc::strong_count(&lock.0), 2);

    // The fault flow.
    let r = s
        .range_find_or_insert(BASE + 0x1234, gpuva(), &ctx())
        .unwrap();
    assert_eq!(r.span(), Span::new(BASE, BASE + 2 * M).unwrap());
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    assert_eq!(w.dma_live(), 512);
    assert_eq!(lock.seen(), LockSeen::FREE);
    {
        let nl = s.notifier_lock();
        assert_eq!(lock.seen(), LockSeen::READ_ONCE);
        assert!(s.range_pages_valid(&nl, &r));
        assert_eq!(s.pages_entries(&nl, pages0(&r), |e| e.len()), Some(512));
    }
    {
        let wg = s.notifier_lock_write();
        assert!(lock.write_held() && !lock.write_would_succeed());
        assert!(s.pages_valid(&wg, pages0(&r)));
    }
    assert_eq!(lock.seen(), LockSeen::FREE);

    // A reader of the caller's lock keeps the instance's writer out: the non-blockable
    // invalidation cannot take it, and the pages stay valid.
    lock.read_lock();
    assert!(!w.mm.invalidate_nonblocking(BASE, BASE + 2 * M));
    assert!(s.range_pages_valid(&s.notifier_lock(), &r));
    assert_eq!(w.dma_live(), 512);
    // SAFETY: Taken just above.
    unsafe { lock.read_unlock() };
    assert!(w.mm.invalidate_nonblocking(BASE, BASE + 2 * M));
    assert!(!s.range_pages_valid(&s.notifier_lock(), &r));
    assert_eq!(w.dma_live(), 0);
    // And the refault.
    s.range_get_pages(&r, pages0(&r), &ctx()).unwrap();
    assert!(s.range_pages_valid(&s.notifier_lock(), &r));

    drop(r);
    teardown(w, s);
    assert_eq!(
        Arc::strong_count(&lock.0),
        1,
        "the instance dropped its lock"
    );
    assert_eq!(lock.seen(), LockSeen::FREE);
}
