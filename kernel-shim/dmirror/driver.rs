// SPDX-License-Identifier: GPL-2.0

//! The driver side of the core: the [`SvmDriver`] impl (types, per-range data, the invalidate
//! op) and the GPU fault handler, following Xe's `xe_svm_handle_pagefault`:
//!
//! ```text
//! garbage-collect unmapped ranges
//! range_find_or_insert (a read fault on a read-only VMA retries read-only)
//! range_get_pages      (EOPNOTSUPP: mixed placement → range_evict, retry)
//! commit under the notifier lock: pages still valid? write the GPU PTEs : retry
//! ```

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gpusvm_core::{
    code, Ctx, Invalidation, MmuEvent, PagesFlags, RangeFlags, RangeRef, Result, Span, Svm,
    SvmConfig, SvmDriver, SvmPages,
};
use gpusvm_kshim::{KAlloc, KClock, KDma, KMm, KRwSem, PAGE_SHIFT};

use crate::device::{Device, DmirrorDevmem, DmirrorPagemap};
use crate::pte::PteTable;

/// Fault-loop rounds before giving up with `EBUSY` (Xe loops without bound).
pub(crate) const FAULT_ATTEMPTS: u32 = 32;

/// The GPU VA window: the whole user address space.
pub(crate) const TASK_SIZE: u64 = 1 << 47;

/// Range sizes, largest first (Xe's 2M/64K/4K).
const CHUNK_SIZES: [u64; 3] = [2 << 20, 64 << 10, 4 << 10];

/// Per-range driver data (Xe's `struct xe_svm_range`): the pages object for the one device,
/// the range's GPU page table, and whether the pages are mapped read-only.
pub(crate) struct RangeData {
    pub(crate) pages: SvmPages<Drv>,
    pub(crate) ptes: PteTable,
    pub(crate) read_only: AtomicBool,
}

#[derive(Default)]
pub(crate) struct DrvStats {
    pub(crate) invalidations: AtomicU64,
    pub(crate) unmap_events: AtomicU64,
    pub(crate) gpu_faults: AtomicU64,
    pub(crate) gc_removed: AtomicU64,
}

/// One GPU VM's driver (`drm_gpusvm_ops` plus the types).
///
/// # Invariants
///
/// `dev` outlives the driver (files hold a module reference; module exit frees the device).
pub(crate) struct Drv {
    dev: NonNull<Device>,
    pub(crate) stats: DrvStats,
}

// SAFETY: Only shared access to the device; the statistics are atomics.
unsafe impl Send for Drv {}
// SAFETY: As above.
unsafe impl Sync for Drv {}

impl Drv {
    pub(crate) fn dev(&self) -> &Device {
        // SAFETY: By the type invariant the device is alive.
        unsafe { self.dev.as_ref() }
    }
}

impl SvmDriver for Drv {
    type Mm = KMm;
    type Lock = KRwSem;
    type Alloc = KAlloc;
    type Clock = KClock;
    type Dma = KDma;
    type Pagemap = DmirrorPagemap;
    type Devmem = DmirrorDevmem;
    type RangeData = RangeData;
    type NotifierData = ();

    fn range_data(&self, span: Span) -> Result<RangeData> {
        let dma = self.dev().dma().ok_or(code::ENODEV)?.clone();
        let npages = usize::try_from(span.len() >> PAGE_SHIFT).map_err(|_| code::ENOMEM)?;
        Ok(RangeData {
            pages: SvmPages::new(dma),
            ptes: PteTable::new(npages)?,
            read_only: AtomicBool::new(false),
        })
    }

    fn for_each_pages<'a>(data: &'a RangeData, f: &mut dyn FnMut(&'a SvmPages<Self>)) {
        f(&data.pages);
    }

    /// Zap the GPU PTEs of every affected range (our GPU has no TLB to flush), unmap its
    /// pages, and on munmap hand it to the garbage collector. Never sleeps or allocates.
    fn invalidate(&self, inv: &Invalidation<'_, Self>) -> bool {
        self.stats.invalidations.fetch_add(1, Ordering::Relaxed);
        for r in inv.ranges() {
            r.data().ptes.zap();
            inv.unmap_range_pages(r);
            if inv.event() == MmuEvent::Unmap {
                inv.set_unmapped(r);
                self.stats.unmap_events.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }
}

/// A new GPU VM mirroring `mm`.
pub(crate) fn new_svm(dev: &Device, mm: KMm) -> Result<Svm<Drv>> {
    let config = SvmConfig {
        name: "gpusvm_dmirror",
        mm_start: 0,
        mm_range: TASK_SIZE,
        notifier_size: 512 << 20,
        chunk_sizes: &CHUNK_SIZES,
        page_shift: PAGE_SHIFT,
    };
    let driver = Drv {
        dev: NonNull::from(dev),
        stats: DrvStats::default(),
    };
    Svm::new(config, driver, Some(mm), KAlloc, KClock)
}

/// Xe's garbage collector: removes the ranges unmapped by munmap, evicting partially unmapped
/// ones from device memory first.
pub(crate) fn garbage_collect(svm: &mut Svm<Drv>) {
    while let Some(r) = svm.take_unmapped() {
        if r.flags().contains(RangeFlags::PARTIAL_UNMAP) {
            // Best effort, as upstream: the pages still mapped stay usable by the CPU either way.
            let _ = svm.range_evict(&r);
        }
        r.data().ptes.zap();
        svm.range_remove(&r);
        svm.driver()
            .stats
            .gc_removed
            .fetch_add(1, Ordering::Relaxed);
    }
}

fn gpuva() -> Result<Span> {
    Span::new(0, TASK_SIZE)
}

/// Services a GPU page fault at `addr`: on return the range's PTEs map it (writable if
/// `write`). Returns the number of retries.
///
/// # Errors
///
/// `EFAULT` (no VMA, or no access such as `PROT_NONE`), `EPERM` (write to a read-only
/// mapping), `ENOMEM`, `EBUSY` after [`FAULT_ATTEMPTS`] rounds.
pub(crate) fn handle_gpu_fault(svm: &mut Svm<Drv>, addr: u64, write: bool) -> Result<u64> {
    let dev = svm.driver().dev();
    svm.driver()
        .stats
        .gpu_faults
        .fetch_add(1, Ordering::Relaxed);
    let mut ctx = Ctx {
        device_private_owner: Some(dev.owner()),
        check_pages_threshold: 0,
        timeslice_ms: 0,
        read_only: false,
        devmem_possible: true,
        devmem_only: false,
        allow_mixed: false,
    };
    let mut last = code::EBUSY;
    for attempt in 0..u64::from(FAULT_ATTEMPTS) {
        garbage_collect(svm);
        let range: RangeRef<Drv> = match svm.range_find_or_insert(addr, gpuva()?, &ctx) {
            Ok(r) => r,
            // A read fault may map a read-only VMA read-only.
            Err(e) if e == code::EPERM && !write && !ctx.read_only => {
                ctx.read_only = true;
                continue;
            }
            Err(e) if e == code::ENOENT => return Err(code::EFAULT),
            Err(e) => return Err(e),
        };
        if range
            .flags()
            .intersects(RangeFlags::UNMAPPED | RangeFlags::REMOVED)
        {
            last = code::EAGAIN;
            continue;
        }
        let data = range.data();
        if !ctx.read_only && data.read_only.load(Ordering::Acquire) {
            // Upgrade a read-only mapping: zap, unmap, fault again for writing.
            data.ptes.zap();
            svm.unmap_pages(&data.pages);
            data.read_only.store(false, Ordering::Release);
        }
        match svm.range_get_pages(&range, &data.pages, &ctx) {
            Ok(()) => {}
            Err(e) if e == code::EOPNOTSUPP => {
                // Mixed or foreign placement: move it all to RAM and retry.
                let _ = svm.range_evict(&range);
                last = e;
                continue;
            }
            Err(e)
                if e == code::EBUSY
                    || (e == code::EFAULT
                        && (range
                            .flags()
                            .intersects(RangeFlags::UNMAPPED | RangeFlags::REMOVED)
                            || data.pages.flags().contains(PagesFlags::UNMAPPED))) =>
            {
                last = e;
                continue;
            }
            Err(e) => return Err(e),
        }
        // Commit: only pages no invalidation has touched since get_pages may be mapped.
        let nl = svm.notifier_lock();
        let committed = svm.range_pages_valid(&nl, &range)
            && svm
                .pages_entries(&nl, &data.pages, |entries| data.ptes.fill(entries))
                .is_some();
        if committed {
            data.read_only.store(ctx.read_only, Ordering::Release);
        }
        drop(nl);
        if committed {
            return Ok(attempt);
        }
        last = code::EAGAIN;
    }
    Err(last)
}
