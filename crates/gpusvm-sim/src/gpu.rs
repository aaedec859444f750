//! Simulated GPUs: VRAM with TTM-like eviction, a copy engine, GPU page tables, pagemaps.
//!
//! **VRAM** is a pool of device page frames. An allocation takes a contiguous run when one is
//! free (so a migration copies in one call) and any free pages otherwise. When the pool cannot
//! satisfy a request it evicts the oldest allocations first — SVM allocations through the core's
//! `evict_to_ram`, buffer objects by moving them to system memory — like TTM's unified LRU.
//!
//! **Addresses the GPU sees.** System pages through IOVAs of the device's DMA mapper
//! ([`crate::dma`]); its own VRAM as `VRAM_BAR + offset` with the driver protocol; a peer's
//! VRAM by its global frame with the peer-to-peer protocol. [`Device::resolve`] turns a GPU PTE
//! into the frame it reaches, and reports an access through a dead mapping as an IOMMU fault.
//!
//! **Pagemaps** (`Pagemap` of the core) map device pages for a GPU and implement
//! `populate_mm`: allocate VRAM (evicting if needed), then `migrate_to_devmem`. After device
//! removal they refuse with `ENODEV`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use gpusvm_core::{
    code, migrate_to_devmem, CopyBatch, DevmemAllocation, DevmemEnv, DevmemState, DmaDirection,
    DmaEntry, MigrateDetails, MmapReadGuard, Owner, PageShift, Pagemap, PgmapId, Protocol, Result,
    Span,
};

use crate::dma::SimDma;
use crate::driver::SimDriver;
use crate::inject::Site;
use crate::mem::{device_of_pfn, device_pfn_base, pgmap_of, Pfn, Pid, Vpn, PAGE};
use crate::mm::SimMm;
use crate::sched;
use crate::shared::{lock, Shared};

/// Where a device's own VRAM appears in its address space.
pub const VRAM_BAR: u64 = 1 << 44;
/// The peer-to-peer interconnect protocol.
pub const PROTO_P2P: u8 = 2;

/// A GPU page-table entry (one 4 KiB page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuPte {
    /// What the GPU accesses (an order-0 entry).
    pub entry: DmaEntry,
    /// Writes allowed.
    pub write: bool,
    /// Atomics allowed (device memory).
    pub atomic: bool,
}

/// An allocation on the VRAM LRU.
enum LruEntry {
    Svm(Weak<DevmemInner>),
    Bo(Weak<BoInner>),
}

#[derive(Default)]
struct VramState {
    /// One flag per page: allocated.
    used: Vec<bool>,
    free: u64,
    lru: VecDeque<LruEntry>,
}

/// The VRAM of one device.
pub struct Vram {
    /// The device.
    pub dev: u32,
    /// Size in pages.
    pub npages: u64,
    st: Mutex<VramState>,
}

impl Vram {
    fn new(dev: u32, npages: u64) -> Self {
        Vram {
            dev,
            npages,
            st: Mutex::new(VramState {
                used: vec![false; npages as usize],
                free: npages,
                lru: VecDeque::new(),
            }),
        }
    }

    /// Bytes allocated.
    pub fn used_bytes(&self) -> u64 {
        let st = lock(&self.st);
        (self.npages - st.free) * PAGE
    }

    /// Live allocations on the LRU (SVM allocations and buffer objects).
    pub fn live_allocations(&self) -> usize {
        let st = lock(&self.st);
        st.lru
            .iter()
            .filter(|e| match e {
                LruEntry::Svm(w) => w.strong_count() > 0,
                LruEntry::Bo(w) => w.strong_count() > 0,
            })
            .count()
    }

    /// Takes `n` pages if free, preferring a contiguous run.
    fn take(st: &mut VramState, base: Pfn, n: u64) -> Option<Vec<Pfn>> {
        if st.free < n || n == 0 {
            return None;
        }
        let mut run = 0u64;
        for (i, used) in st.used.iter().enumerate() {
            run = if *used { 0 } else { run + 1 };
            if run == n {
                let first = i as u64 + 1 - n;
                let pfns: Vec<Pfn> = (first..first + n).map(|p| base + p).collect();
                for p in first..first + n {
                    st.used[p as usize] = true;
                }
                st.free -= n;
                return Some(pfns);
            }
        }
        let mut pfns = Vec::with_capacity(n as usize);
        for (i, used) in st.used.iter_mut().enumerate() {
            if pfns.len() as u64 == n {
                break;
            }
            if !*used {
                *used = true;
                pfns.push(base + i as u64);
            }
        }
        st.free -= n;
        Some(pfns)
    }

    fn free(&self, pfns: &[Pfn]) {
        let base = device_pfn_base(self.dev);
        let mut st = lock(&self.st);
        for p in pfns {
            if let Some(u) = st.used.get_mut((p - base) as usize) {
                if *u {
                    *u = false;
                    st.free += 1;
                }
            }
        }
        st.lru.retain(|e| match e {
            LruEntry::Svm(w) => w.strong_count() > 0,
            LruEntry::Bo(w) => w.strong_count() > 0,
        });
    }

    /// Allocates `n` pages, evicting the oldest allocations while the pool is short.
    fn alloc(&self, shared: &Shared, n: u64) -> Result<Vec<Pfn>> {
        if n > self.npages {
            return Err(code::ENOMEM);
        }
        let base = device_pfn_base(self.dev);
        let mut tried = 0usize;
        loop {
            let victim = {
                let mut st = lock(&self.st);
                if let Some(p) = Self::take(&mut st, base, n) {
                    return Ok(p);
                }
                if tried >= st.lru.len() {
                    return Err(code::ENOMEM);
                }
                // Rotate: the oldest goes to the back whatever happens to it.
                let e = st.lru.pop_front();
                if let Some(e) = &e {
                    st.lru.push_back(match e {
                        LruEntry::Svm(w) => LruEntry::Svm(w.clone()),
                        LruEntry::Bo(w) => LruEntry::Bo(w.clone()),
                    });
                }
                tried += 1;
                e
            };
            match victim {
                Some(LruEntry::Svm(w)) => {
                    if let Some(inner) = w.upgrade() {
                        let devmem = SimDevmem(inner);
                        let pid = devmem.0.state.mm().0.pid;
                        if gpusvm_core::evict_to_ram::<SimDriver>(&devmem).is_ok() {
                            shared.stat(pid, |s| s.evictions += 1);
                        }
                    }
                }
                Some(LruEntry::Bo(w)) => {
                    if let Some(bo) = w.upgrade() {
                        bo.evict(self);
                        shared.stat(bo.pid, |s| s.evictions += 1);
                    }
                }
                None => return Err(code::ENOMEM),
            }
        }
    }
}

/// Shared state of a pagemap.
pub struct PagemapInner {
    /// The device.
    pub dev: u32,
    /// Its device-private owner.
    pub owner: Owner,
    vram: Arc<Vram>,
    dma: SimDma,
    shared: Weak<Shared>,
    /// Live `device_map` mappings.
    pub device_maps: AtomicI64,
    /// Set by device removal: population fails with `ENODEV`.
    pub removed: AtomicBool,
}

/// A counted reference to a device's pagemap.
#[derive(Clone)]
pub struct SimPagemap(pub Arc<PagemapInner>);

impl std::fmt::Debug for SimPagemap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimPagemap(dev {})", self.0.dev)
    }
}

impl SimPagemap {
    /// Allocates `npages` of VRAM as a device-memory allocation for `mm`.
    ///
    /// # Errors
    ///
    /// `ENODEV` after device removal, `ENOMEM` when VRAM cannot be found even by evicting.
    pub fn alloc_devmem(&self, mm: &SimMm, npages: u64) -> Result<SimDevmem> {
        let shared = self.0.shared.upgrade().ok_or(code::ENODEV)?;
        if self.0.removed.load(Ordering::SeqCst) {
            return Err(code::ENODEV);
        }
        shared.inject.check(Site::VramAlloc)?;
        let pfns = self.0.vram.alloc(&shared, npages)?;
        let env = DevmemEnv {
            mm: mm.clone(),
            pagemap: self.clone(),
            dev: self.0.dma.clone(),
            alloc: shared.alloc.clone(),
            clock: shared.clock.clone(),
            page: PageShift::SZ_4K,
        };
        let state = match DevmemState::new(env, npages * PAGE, false) {
            Ok(s) => s,
            Err(e) => {
                self.0.vram.free(&pfns);
                return Err(e);
            }
        };
        let inner = Arc::new(DevmemInner {
            state,
            pfns,
            vram: self.0.vram.clone(),
            shared: Arc::downgrade(&shared),
        });
        lock(&self.0.vram.st)
            .lru
            .push_back(LruEntry::Svm(Arc::downgrade(&inner)));
        Ok(SimDevmem(inner))
    }

    /// The device.
    pub fn dev(&self) -> u32 {
        self.0.dev
    }
}

impl Pagemap<SimDriver> for SimPagemap {
    fn pgmap(&self) -> PgmapId {
        pgmap_of(self.0.dev)
    }

    fn owner(&self) -> Owner {
        self.0.owner
    }

    fn device_map(
        &self,
        dev: &SimDma,
        pfn: u64,
        order: u32,
        dir: DmaDirection,
    ) -> Result<DmaEntry> {
        if let Some(s) = self.0.shared.upgrade() {
            s.inject.check(Site::DeviceMap)?;
        }
        if device_of_pfn(pfn) != Some(self.0.dev) {
            return Err(code::EFAULT);
        }
        let entry = if dev.0.dev == self.0.dev {
            let off = (pfn - device_pfn_base(self.0.dev)) * PAGE;
            DmaEntry::encode(VRAM_BAR + off, Protocol::DRIVER, order, dir)?
        } else {
            DmaEntry::encode(pfn * PAGE, Protocol::new(PROTO_P2P)?, order, dir)?
        };
        self.0.device_maps.fetch_add(1, Ordering::SeqCst);
        Ok(entry)
    }

    fn device_unmap(&self, _dev: &SimDma, _entry: DmaEntry) {
        self.0.device_maps.fetch_sub(1, Ordering::SeqCst);
    }

    fn populate_mm(
        &self,
        lock: &MmapReadGuard<'_, SimMm>,
        span: Span,
        timeslice_ms: u64,
    ) -> Result {
        sched::yield_now();
        let devmem = self.alloc_devmem(lock.mm(), span.len() / PAGE)?;
        let details = MigrateDetails {
            timeslice_ms,
            ..MigrateDetails::default()
        };
        migrate_to_devmem::<SimDriver>(devmem, lock, span, &details)
    }
}

/// A device-memory allocation (a VRAM buffer object backing SVM pages).
pub struct DevmemInner {
    state: DevmemState<SimDriver>,
    /// Its device frames.
    pub pfns: Vec<Pfn>,
    vram: Arc<Vram>,
    shared: Weak<Shared>,
}

impl Drop for DevmemInner {
    fn drop(&mut self) {
        // devmem_release: the memory goes back to the pool.
        self.vram.free(&self.pfns);
    }
}

/// A counted handle to a device-memory allocation.
#[derive(Clone)]
pub struct SimDevmem(pub Arc<DevmemInner>);

impl SimDevmem {
    /// The frame a DMA entry of the copy reaches.
    fn resolve(&self, e: DmaEntry, want: DmaDirection) -> Option<Pfn> {
        let dma = self.0.state.dev();
        if e.is_none() {
            return None;
        }
        match e.proto() {
            Protocol::SYSTEM => {
                let (pfn, dir) = dma.translate(e.addr())?;
                if dir != want && dir != DmaDirection::Bidirectional {
                    dma.record_error(format!("copy through a {dir:?} mapping for {want:?}"));
                }
                Some(pfn)
            }
            p if p.value() == PROTO_P2P => Some(e.addr() / PAGE),
            _ => {
                let dev = dma.0.dev;
                Some(device_pfn_base(dev) + (e.addr() - VRAM_BAR) / PAGE)
            }
        }
    }

    fn copy(&self, batch: &CopyBatch<'_>, to_device: bool) -> Result {
        sched::yield_now();
        let shared = self.0.shared.upgrade().ok_or(code::ENODEV)?;
        shared.inject.check(Site::Copy)?;
        let want = if to_device {
            DmaDirection::ToDevice
        } else {
            DmaDirection::FromDevice
        };
        for (i, e) in batch.system.iter().enumerate() {
            let Some(other) = self.resolve(*e, want) else {
                continue;
            };
            let dev_pfn = batch.device_pfn + i as u64;
            let (src, dst) = if to_device {
                (other, dev_pfn)
            } else {
                (dev_pfn, other)
            };
            if !shared.frames.copy_page(src, dst) {
                return Err(code::EFAULT);
            }
        }
        if let Some(d) = shared.device(self.0.state.dev().0.dev) {
            d.copy_calls.fetch_add(1, Ordering::SeqCst);
            d.copy_bytes
                .fetch_add(batch.npages as u64 * PAGE, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl DevmemAllocation<SimDriver> for SimDevmem {
    fn state(&self) -> &DevmemState<SimDriver> {
        &self.0.state
    }

    fn populate_pfns(&self, pfns: &mut [u64]) -> Result {
        if let Some(s) = self.0.shared.upgrade() {
            s.inject.check(Site::Populate)?;
        }
        for (d, s) in pfns.iter_mut().zip(self.0.pfns.iter()) {
            *d = *s;
        }
        Ok(())
    }

    fn copy_to_devmem(&self, batch: &CopyBatch<'_>) -> Result {
        self.copy(batch, true)
    }

    fn copy_to_ram(&self, batch: &CopyBatch<'_>) -> Result {
        self.copy(batch, false)
    }
}

/// A non-SVM buffer object bound into a GPU VM (it competes for VRAM).
pub struct BoInner {
    /// Owning process.
    pub pid: Pid,
    /// The GPU VA span it is bound at.
    pub span: Span,
    pages: Mutex<Option<Vec<Pfn>>>,
}

impl BoInner {
    fn evict(&self, vram: &Vram) {
        if let Some(p) = lock(&self.pages).take() {
            vram.free(&p);
        }
    }
}

/// One GPU.
pub struct Device {
    /// Index.
    pub id: u32,
    /// Its VRAM.
    pub vram: Arc<Vram>,
    /// Its DMA mapper.
    pub dma: SimDma,
    /// Its pagemap.
    pub pagemap: SimPagemap,
    /// GPU page tables, per process.
    pub pts: Mutex<BTreeMap<Pid, BTreeMap<Vpn, GpuPte>>>,
    /// Buffer objects bound on this device.
    pub bos: Mutex<Vec<Arc<BoInner>>>,
    /// Copy-engine calls.
    pub copy_calls: AtomicU64,
    /// Bytes copied.
    pub copy_bytes: AtomicU64,
    /// Set by `remove_device`.
    pub removed: AtomicBool,
}

impl Device {
    /// A device with `vram_bytes` of VRAM and device-private `owner`.
    pub fn new(id: u32, vram_bytes: u64, owner: Owner, shared: &Arc<Shared>) -> Arc<Self> {
        let vram = Arc::new(Vram::new(id, vram_bytes / PAGE));
        let dma = SimDma::new(id, &shared.inject);
        let pagemap = SimPagemap(Arc::new(PagemapInner {
            dev: id,
            owner,
            vram: vram.clone(),
            dma: dma.clone(),
            shared: Arc::downgrade(shared),
            device_maps: AtomicI64::new(0),
            removed: AtomicBool::new(false),
        }));
        Arc::new(Device {
            id,
            vram,
            dma,
            pagemap,
            pts: Mutex::new(BTreeMap::new()),
            bos: Mutex::new(Vec::new()),
            copy_calls: AtomicU64::new(0),
            copy_bytes: AtomicU64::new(0),
            removed: AtomicBool::new(false),
        })
    }

    /// The frame a GPU PTE reaches, checking that the mapping is live and allows `write`.
    /// `None` is an IOMMU fault (recorded as a DMA error).
    pub fn resolve(&self, shared: &Shared, pte: &GpuPte, write: bool) -> Option<Pfn> {
        let e = pte.entry;
        let pfn = match e.proto() {
            Protocol::SYSTEM => match self.dma.translate(e.addr()) {
                Some((pfn, dir)) => {
                    if write && dir == DmaDirection::ToDevice {
                        self.dma.record_error(format!(
                            "GPU write through read-only IOVA {:#x}",
                            e.addr()
                        ));
                        return None;
                    }
                    pfn
                }
                None => {
                    self.dma
                        .record_error(format!("IOMMU fault: IOVA {:#x} is not mapped", e.addr()));
                    return None;
                }
            },
            p if p.value() == PROTO_P2P => e.addr() / PAGE,
            _ => device_pfn_base(self.id) + (e.addr() - VRAM_BAR) / PAGE,
        };
        if !shared.frames.exists(pfn) {
            self.dma
                .record_error(format!("GPU access to freed frame {pfn:#x}"));
            return None;
        }
        Some(pfn)
    }

    /// Binds a buffer object of `span` for `pid` (allocating its VRAM, evicting if needed).
    ///
    /// # Errors
    ///
    /// `ENOMEM` if VRAM cannot be found.
    pub fn bind_bo(&self, shared: &Shared, pid: Pid, span: Span) -> Result {
        let pages = self.vram.alloc(shared, span.len() / PAGE)?;
        let bo = Arc::new(BoInner {
            pid,
            span,
            pages: Mutex::new(Some(pages)),
        });
        lock(&self.vram.st)
            .lru
            .push_back(LruEntry::Bo(Arc::downgrade(&bo)));
        lock(&self.bos).push(bo);
        Ok(())
    }

    /// Unbinds and frees the buffer objects of `pid`.
    pub fn drop_bos(&self, pid: Pid) {
        let gone: Vec<Arc<BoInner>> = {
            let mut bos = lock(&self.bos);
            let (gone, keep) = bos.drain(..).partition(|b| b.pid == pid);
            *bos = keep;
            gone
        };
        for bo in gone {
            bo.evict(&self.vram);
        }
    }

    /// Whether `pid` has a buffer object intersecting `span`.
    pub fn bo_overlaps(&self, pid: Pid, span: Span) -> bool {
        lock(&self.bos)
            .iter()
            .any(|b| b.pid == pid && b.span.overlaps(&span))
    }

    /// Live SVM allocations of this device.
    pub fn svm_allocations(&self) -> Vec<SimDevmem> {
        lock(&self.vram.st)
            .lru
            .iter()
            .filter_map(|e| match e {
                LruEntry::Svm(w) => w.upgrade().map(SimDevmem),
                LruEntry::Bo(_) => None,
            })
            .collect()
    }
}
