//! The reference driver: an Xe-style GPU VM on top of `gpusvm-core`.
//!
//! One [`GpuVm`] per process mirrors the process's address space on every device. It owns the
//! core's [`Svm`] behind a simulated mutex — the driver lock (Xe's VM lock): structural changes
//! and faults serialize on it, invalidations never take it.
//!
//! - [`SimDriver`] is the core's `SvmDriver`: its invalidate op zaps the process's GPU PTEs in
//!   the span on every device (counting a TLB invalidation per device that had something
//!   mapped), unmaps the DMA mappings of every affected range, and marks ranges unmapped on
//!   `Unmap` (queuing them for the garbage collector). It allocates nothing from the core's
//!   allocator.
//! - [`fault`] is the GPU fault handler and the prefetch path (Xe's policy, brief and
//!   peers.md §3).
//! - [`attrs`] holds per-span attributes (madvise).
//!
//! Pages: each range carries one `SvmPages` per device, plus whether each was mapped read-only.

pub mod attrs;
pub mod fault;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gpusvm_core::{
    code, Invalidation, RangeFlags, Result, Span, Svm, SvmConfig, SvmDriver, SvmPages,
};

use crate::alloc::SimAlloc;
use crate::config::SimConfig;
use crate::dma::SimDma;
use crate::gpu::{SimDevmem, SimPagemap};
use crate::inject::SimClock;
use crate::mem::{Freed, Pid, PAGE};
use crate::mm::{SimMm, TASK_SIZE};
use crate::sched::{SimMutex, SimMutexGuard, SimRwLock};
use crate::shared::{lock, Shared};

pub use attrs::{AtomicMode, AttrMap, Attrs, Preferred};

/// Reports a freed device page to the core (`folio_free`).
pub fn device_page_freed(_shared: &Shared, freed: Freed) {
    // SAFETY: Device frames are only created by the core's `device_page_init` through
    // `SimMm`, which stores the core's zone data for the `SimDriver` instantiation; the frame
    // table hands each freed frame out exactly once.
    unsafe { gpusvm_core::device_page_free::<SimDriver>(freed.zone_data) };
}

/// The per-range payload: one pages object per device.
pub struct SimRangeData {
    /// DMA state per device.
    pub pages: Vec<SvmPages<SimDriver>>,
    /// Whether the device's mapping was made read-only.
    pub read_only: Vec<AtomicBool>,
}

/// The core-facing driver of one GPU VM.
pub struct SimDriver {
    pid: Pid,
    shared: Arc<Shared>,
}

impl SvmDriver for SimDriver {
    type Mm = SimMm;
    type Lock = SimRwLock;
    type Alloc = SimAlloc;
    type Clock = SimClock;
    type Dma = SimDma;
    type Pagemap = SimPagemap;
    type Devmem = SimDevmem;
    type RangeData = SimRangeData;
    type NotifierData = ();

    fn range_data(&self, _span: Span) -> Result<SimRangeData> {
        let devs = self.shared.devices();
        Ok(SimRangeData {
            pages: devs.iter().map(|d| SvmPages::new(d.dma.clone())).collect(),
            read_only: devs.iter().map(|_| AtomicBool::new(false)).collect(),
        })
    }

    fn for_each_pages<'a>(data: &'a SimRangeData, f: &mut dyn FnMut(&'a SvmPages<Self>)) {
        for p in &data.pages {
            f(p);
        }
    }

    fn split_data(&self, old: &SimRangeData, piece: Span) -> Result<SimRangeData> {
        let new = self.range_data(piece)?;
        // A piece keeps its GPU PTEs, so it keeps their permissions too.
        for (n, o) in new.read_only.iter().zip(old.read_only.iter()) {
            n.store(o.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        Ok(new)
    }

    fn invalidate(&self, inv: &Invalidation<'_, Self>) -> bool {
        // First the GPU loses access (Xe: zap PTEs, invalidate TLBs), then the DMA mappings go.
        // One bit per device (the configuration allows at most 8) that had PTEs to zap and so
        // needs a TLB invalidation; each range's zap span is computed once for all devices.
        let devices = self.shared.devices();
        let mut zapped = 0u64;
        for r in inv.ranges() {
            let span = inv.zap_span(r);
            for (i, d) in devices.iter().enumerate() {
                if zap(&d.pts, self.pid, span) {
                    zapped |= 1u64.checked_shl(i as u32).unwrap_or(0);
                }
            }
        }
        let tlb = u64::from(zapped.count_ones());
        for r in inv.ranges() {
            // For `Unmap`: marks the range unmapped, or (split mode, partial) pending a split.
            inv.unmap_range(r);
        }
        self.shared.stat(self.pid, |s| {
            s.invalidations += 1;
            s.tlb_invalidations += tlb;
        });
        true
    }
}

/// Removes `pid`'s GPU PTEs in `span`; true if there were any (a TLB flush is needed).
fn zap(
    pts: &Mutex<
        std::collections::BTreeMap<Pid, std::collections::BTreeMap<u64, crate::gpu::GpuPte>>,
    >,
    pid: Pid,
    span: Span,
) -> bool {
    let mut pts = lock(pts);
    let Some(pt) = pts.get_mut(&pid) else {
        return false;
    };
    let (a, b) = (span.start() / PAGE, span.end().div_ceil(PAGE));
    let mut any = false;
    while let Some((&k, _)) = pt.range(a..b).next() {
        pt.remove(&k);
        any = true;
    }
    any
}

/// The GPU VM of one process.
pub struct GpuVm {
    /// The process.
    pub pid: Pid,
    /// Its mm.
    pub mm: SimMm,
    /// The simulation.
    pub shared: Arc<Shared>,
    /// Parameters.
    pub cfg: Arc<SimConfig>,
    svm: SimMutex<Option<Svm<SimDriver>>>,
    /// Per-span attributes.
    pub attrs: Mutex<AttrMap>,
}

impl GpuVm {
    /// Creates the VM (`drm_gpusvm_init` over the whole user address space).
    ///
    /// # Errors
    ///
    /// The core's initialization error.
    pub fn new(mm: SimMm, shared: Arc<Shared>, cfg: Arc<SimConfig>) -> Result<Arc<Self>> {
        let pid = mm.0.pid;
        let svm = Svm::new(
            SvmConfig {
                name: "gpuvm",
                mm_start: 0,
                mm_range: TASK_SIZE,
                notifier_size: cfg.notifier,
                chunk_sizes: &cfg.chunks,
                page_shift: 12,
            },
            SimDriver {
                pid,
                shared: shared.clone(),
            },
            Some(mm.clone()),
            shared.alloc.clone(),
            shared.clock.clone(),
        )?;
        svm.set_range_split(cfg.range_split);
        Ok(Arc::new(GpuVm {
            pid,
            mm,
            shared,
            cfg,
            svm: SimMutex::new(Some(svm)),
            attrs: Mutex::new(AttrMap::default()),
        }))
    }

    /// Takes the VM lock (the driver lock).
    pub fn lock(&self) -> SimMutexGuard<'_, Option<Svm<SimDriver>>> {
        self.svm.lock()
    }

    /// Live ranges and notifiers (after running the garbage collector).
    pub fn counts(&self) -> (usize, usize) {
        let mut g = self.lock();
        match g.as_mut() {
            Some(svm) => {
                garbage_collect(svm, &self.cfg);
                (svm.num_ranges(), svm.num_notifiers())
            }
            None => (0, 0),
        }
    }

    /// Runs deferred work (the garbage collector).
    pub fn flush(&self) {
        if let Some(svm) = self.lock().as_mut() {
            garbage_collect(svm, &self.cfg);
        }
    }

    /// Live ranges by size (after running the garbage collector): size → count.
    pub fn range_sizes(&self) -> std::collections::BTreeMap<u64, usize> {
        let mut out = std::collections::BTreeMap::new();
        let mut g = self.lock();
        if let Some(svm) = g.as_mut() {
            garbage_collect(svm, &self.cfg);
            if let Ok(all) = Span::new(0, TASK_SIZE) {
                for r in svm.ranges(all) {
                    *out.entry(r.size()).or_insert(0) += 1;
                }
            }
        }
        out
    }

    /// The size of the range covering `addr`, if any.
    pub fn chunk_at(&self, addr: u64) -> Option<u64> {
        let mut g = self.lock();
        let svm = g.as_mut()?;
        garbage_collect(svm, &self.cfg);
        svm.range_at(addr).map(|r| r.size())
    }

    /// VM close (`xe_vm_close_and_put`): the GPU VM goes, with every range, notifier and GPU
    /// mapping of the process.
    pub fn close(&self) {
        let svm = self.lock().take();
        drop(svm);
        for d in self.shared.devices() {
            lock(&d.pts).remove(&self.pid);
            d.drop_bos(self.pid);
        }
    }

    /// `bind_bo`: binds a non-SVM buffer object over `span` of device `dev`.
    ///
    /// # Errors
    ///
    /// `EBUSY` if SVM ranges live in the span (`drm_gpusvm_has_mapping`), `ENODEV` for a removed
    /// device, `EINVAL` for an unknown device, `ENOMEM`.
    pub fn bind_bo(&self, dev: u32, span: Span) -> Result {
        let d = self.shared.device(dev).ok_or(code::EINVAL)?.clone();
        if d.removed.load(Ordering::SeqCst) {
            return Err(code::ENODEV);
        }
        let mut g = self.lock();
        let svm = g.as_mut().ok_or(code::ENODEV)?;
        garbage_collect(svm, &self.cfg);
        if svm.has_mapping(span) {
            return Err(code::EBUSY);
        }
        d.bind_bo(&self.shared, self.pid, span)
    }

    /// Attributes at `addr`.
    pub fn attrs_at(&self, addr: u64) -> Attrs {
        lock(&self.attrs).at(addr)
    }
}

/// Unbinds `range` from every GPU (zaps its PTEs, counting a TLB invalidation per device that
/// had any) and removes it (Xe's `xe_vm_range_unbind` + `drm_gpusvm_range_remove`). The GPU must
/// lose access before the core unmaps the range's DMA mappings.
pub fn unbind_and_remove(svm: &mut Svm<SimDriver>, range: &gpusvm_core::Range<SimDriver>) {
    let driver = svm.driver();
    let mut tlb = 0;
    for d in driver.shared.devices() {
        if zap(&d.pts, driver.pid, range.span()) {
            tlb += 1;
        }
    }
    if tlb > 0 {
        driver
            .shared
            .stat(driver.pid, |s| s.tlb_invalidations += tlb);
    }
    svm.range_remove(range);
}

/// The garbage collector (Xe's `xe_svm_garbage_collector`): splits ranges a partial `Unmap`
/// hit (split mode), and removes the others an `Unmap` hit, evicting the device pages of
/// partially unmapped ones first (upstream mode, or when a split cannot be done).
pub fn garbage_collect(svm: &mut Svm<SimDriver>, _cfg: &SimConfig) {
    while let Some(r) = svm.take_unmapped() {
        if r.flags().contains(RangeFlags::SPLIT_PENDING) && svm.split_range(&r).is_ok() {
            continue;
        }
        if r.flags()
            .intersects(RangeFlags::PARTIAL_UNMAP | RangeFlags::SPLIT_PENDING)
        {
            // Best effort: the unmapped part fails to fault, the rest comes back to RAM.
            let _ = svm.range_evict(&r);
        }
        unbind_and_remove(svm, &r);
    }
}
