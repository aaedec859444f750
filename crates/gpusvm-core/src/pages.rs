//! Pages objects: the DMA view of a CPU span, and `get_pages`, the fault-and-map routine.
//!
//! C source: [`drivers/gpu/drm/drm_gpusvm.c`] (`struct drm_gpusvm_pages`,
//! `drm_gpusvm_get_pages`, `drm_gpusvm_unmap_pages`, `drm_gpusvm_free_pages`; brief §1.6,
//! §2.10–§2.12, §4.1).
//!
//! # The algorithm of `get_pages`
//!
//! ```text
//! retry:   budget spent? ─► EBUSY
//!          seq = read_begin(notifier)
//!          fast path: array present and flags valid (under the lock) ─► done
//!          allocate the pfn array                       (no lock held)
//!          hmm_range_fault under the mmap read lock; EBUSY ─► new seq, fault again
//! map:     take the notifier lock (read) and the pages' state
//!          UNMAPPED ─► EFAULT;  read_retry(seq) ─► unlock, goto retry
//!          no DMA array? unlock, allocate it, goto map  (allocate, then lock, then re-check)
//!          walk the pfns by chunk order: map device pages through their pagemap, system pages
//!          through the DMA device, enforcing the mixing rules
//!          publish the flag word once, unlock
//! ```
//!
//! A failure after mapping started unmaps exactly the entries this attempt created (upstream
//! leaks them, brief §9 item 11). The retry budget is upstream's: 1000 ms from entry.
//!
//! # Validity
//!
//! After mapping, validity is the flag word, not the sequence number: the driver's invalidate
//! callback unmaps (clearing the flags under the lock held for writing) every pages object its
//! invalidation touches, so "flags valid under the notifier lock" means "no invalidation of this
//! span completed since the mapping was published" — the commit check
//! ([`crate::Svm::pages_valid`]).
//!
//! # Locking of the state
//!
//! The state (DMA array, pagemap reference) is written under the notifier lock. Upstream relies
//! on the driver lock to keep two mappers of one pages object apart; here a small per-object
//! state lock, only ever taken while the notifier lock is held, makes that safe even when a
//! driver lets faults run in parallel.

use crate::addr::{PageShift, Span};
use crate::allocator::KArray;
use crate::devmem::{tracker_of, DevmemAllocation};
use crate::dma::{DmaDevice, DmaDirection, DmaEntry, Protocol};
use crate::driver::{Ctx, SvmDriver};
use crate::error::{code, Result};
use crate::flags::{FlagWord, PagesFlags};
use crate::hmm::{chunk_order, HmmPfn};
use crate::lock::{NotifierLocked, RawRwLock, ReadGuard};
use crate::mm::{Clock, HmmRange, IntervalNotifier, Mm, MmNotifier, MmUser, PageKind};
use crate::pagemap::Pagemap;
use crate::svm::SvmShared;
use crate::sync::{AtomicBool, AtomicU64, Ordering, UnsafeCell};

/// `HMM_RANGE_DEFAULT_TIMEOUT`: the retry budget of `get_pages`, `range_evict` and `scan_mm`.
pub const HMM_RANGE_DEFAULT_TIMEOUT_MS: u64 = 1000;

/// The initial notifier sequence of a pages object (`LONG_MAX` upstream).
pub const SEQ_NONE: u64 = i64::MAX as u64;

/// The DMA view of a span of CPU memory for one device (`struct drm_gpusvm_pages`).
///
/// Embedded by the driver in its range payload (one per device), or used on its own for userptr
/// with the driver's own interval notifier.
///
/// # Invariants
///
/// - `state` is accessed only while `state_locked` is held by the accessor, and the state lock
///   is only taken with the notifier lock held (or with exclusive access, in `Drop`).
/// - `flags` satisfies [`PagesFlags::is_consistent`]; `HAS_DMA_MAPPING` is set exactly when
///   `state.nentries > 0`, and then `state.dma` holds `nentries` entries covering the span's
///   `[0, state.npages)` pages in order, each a live mapping or (only in a range pending a split)
///   a hole; `HOLES` is set exactly when one of them is a hole; `HAS_DEVMEM_PAGES` is set
///   exactly when `state.pagemap` is `Some`.
///
/// The flag word comes first: it is what a commit check reads (see [`crate::Range`]'s layout).
#[repr(C)]
pub struct SvmPages<D: SvmDriver> {
    flags: FlagWord,
    state_locked: AtomicBool,
    notifier_seq: AtomicU64,
    dev: D::Dma,
    state: UnsafeCell<PagesState<D>>,
}

pub(crate) struct PagesState<D: SvmDriver> {
    pub(crate) dma: Option<KArray<DmaEntry, D::Alloc>>,
    pub(crate) nentries: usize,
    pub(crate) npages: usize,
    pub(crate) pagemap: Option<D::Pagemap>,
}

// SAFETY: The state is only touched under the state lock (type invariants); the other fields
// are atomics or `Send + Sync` handles.
unsafe impl<D: SvmDriver> Sync for SvmPages<D> {}
// SAFETY: As above; the object owns its DMA array and pagemap reference.
unsafe impl<D: SvmDriver> Send for SvmPages<D> {}

/// Exclusive access to a pages object's state.
///
/// # Invariants
///
/// `pages.state_locked` is held by this guard.
pub(crate) struct StateGuard<'a, D: SvmDriver> {
    pages: &'a SvmPages<D>,
}

impl<D: SvmDriver> StateGuard<'_, D> {
    pub(crate) fn with<R>(&mut self, f: impl FnOnce(&mut PagesState<D>) -> R) -> R {
        // SAFETY: By the type invariant we hold the state lock, so nobody else accesses `state`.
        self.pages.state.with_mut(|p| f(unsafe { &mut *p }))
    }
}

impl<D: SvmDriver> Drop for StateGuard<'_, D> {
    fn drop(&mut self) {
        self.pages.state_locked.store(false, Ordering::Release);
    }
}

impl<D: SvmDriver> SvmPages<D> {
    /// An empty pages object mapping for `dev` (`drm_gpusvm_init_pages`).
    pub fn new(dev: D::Dma) -> Self {
        // INVARIANT: no mappings, no flags.
        Self {
            dev,
            flags: FlagWord::new(0),
            notifier_seq: AtomicU64::new(SEQ_NONE),
            state_locked: AtomicBool::new(false),
            state: UnsafeCell::new(PagesState {
                dma: None,
                nentries: 0,
                npages: 0,
                pagemap: None,
            }),
        }
    }

    /// The device the pages are mapped for.
    pub fn dev(&self) -> &D::Dma {
        &self.dev
    }

    /// The flag word, read without the lock (`READ_ONCE`): a hint only.
    pub fn flags(&self) -> PagesFlags {
        PagesFlags::from_bits_truncate(self.flags.load())
    }

    /// The notifier sequence of the last successful `get_pages` ([`SEQ_NONE`] before): a hint.
    pub fn notifier_seq(&self) -> u64 {
        self.notifier_seq.load(Ordering::Relaxed)
    }

    /// Takes the state lock. The caller holds the notifier lock (`_nl` proves it).
    pub(crate) fn lock_state(&self, _nl: &impl NotifierLocked) -> StateGuard<'_, D> {
        self.lock_state_unpublished()
    }

    /// Takes the state lock of a pages object nobody else can reach yet (a piece of a split
    /// before it enters the tree), without the notifier lock.
    pub(crate) fn lock_state_unpublished(&self) -> StateGuard<'_, D> {
        while self
            .state_locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            <D::Lock as RawRwLock>::relax();
        }
        // INVARIANT: the CAS above took the state lock.
        StateGuard { pages: self }
    }

    pub(crate) fn publish(&self, flags: PagesFlags) {
        self.flags.publish(flags.bits());
    }

    /// Sets `UNMAPPED` (from `set_unmapped`, with the lock held for writing).
    pub(crate) fn mark_unmapped(&self) {
        self.publish(self.flags() | PagesFlags::UNMAPPED);
    }

    /// Unmaps every live entry and clears the mapping flags; keeps the array (internal
    /// `__drm_gpusvm_unmap_pages`). Does not allocate.
    pub(crate) fn unmap_locked(&self, st: &mut StateGuard<'_, D>) {
        let dev = &self.dev;
        st.with(|s| {
            if let Some(dma) = s.dma.as_mut() {
                let live = dma.get_mut(..s.nentries).unwrap_or_default();
                unmap_entries::<D>(dev, s.pagemap.as_ref(), live);
            }
            s.nentries = 0;
            s.npages = 0;
            // Dropping the reference may release the pagemap; that only takes spinlocks upstream.
            s.pagemap = None;
        });
        // INVARIANT: nothing is mapped any more, so the mapping flags go, in one store.
        self.publish(
            self.flags()
                - (PagesFlags::HAS_DMA_MAPPING | PagesFlags::HAS_DEVMEM_PAGES | PagesFlags::HOLES),
        );
    }

    /// The page extent of the mapped entries overlapping pages `[first, end)`.
    pub(crate) fn overlap_extent(
        &self,
        st: &mut StateGuard<'_, D>,
        first: usize,
        end: usize,
    ) -> Option<(usize, usize)> {
        st.with(|s| {
            let dma = s.dma.as_ref()?;
            let mut offset = 0usize;
            let mut extent: Option<(usize, usize)> = None;
            for e in dma.iter().take(s.nentries) {
                let n = 1usize << e.order();
                let e_end = offset.saturating_add(n);
                if offset < end && first < e_end && e.is_mapped() {
                    extent = Some(match extent {
                        None => (offset, e_end),
                        Some((a, b)) => (a.min(offset), b.max(e_end)),
                    });
                }
                offset = e_end;
            }
            extent
        })
    }

    /// Unmaps the entries that overlap pages `[first, end)` of the span and leaves holes in
    /// their place (a partial unmap in split mode). Entries straddling the boundary go whole.
    pub(crate) fn hole_pages(&self, st: &mut StateGuard<'_, D>, first: usize, end: usize) {
        let dev = &self.dev;
        let holed = st.with(|s| {
            let pagemap = s.pagemap.as_ref();
            let Some(dma) = s.dma.as_mut() else {
                return false;
            };
            let mut holed = false;
            let mut offset = 0usize;
            for e in dma.iter_mut().take(s.nentries) {
                let n = 1usize << e.order();
                if offset < end && first < offset.saturating_add(n) && e.is_mapped() {
                    unmap_entries::<D>(dev, pagemap, core::slice::from_mut(e));
                    *e = DmaEntry::hole(e.order());
                    holed = true;
                }
                offset = offset.saturating_add(n);
            }
            holed
        });
        if holed {
            // INVARIANT: holes only replace mapped entries, so `HAS_DMA_MAPPING` is set.
            self.publish(self.flags() | PagesFlags::HOLES);
        }
    }

    /// Unmaps and frees the DMA array (`drm_gpusvm_free_pages` under the lock).
    pub(crate) fn free_locked(
        &self,
        st: &mut StateGuard<'_, D>,
    ) -> Option<KArray<DmaEntry, D::Alloc>> {
        self.unmap_locked(st);
        // The array is handed back so the caller can free it after dropping the lock.
        st.with(|s| s.dma.take())
    }

    /// Runs `f` on the live DMA entries if the pages are valid. The caller holds the notifier
    /// lock.
    pub(crate) fn with_entries<R>(
        &self,
        nl: &impl NotifierLocked,
        f: impl FnOnce(&[DmaEntry]) -> R,
    ) -> Option<R> {
        let mut st = self.lock_state(nl);
        let flags = self.flags();
        // Holes (a range pending a split) are not committable.
        if !flags.is_valid() || flags.contains(PagesFlags::HOLES) {
            return None;
        }
        st.with(|s| {
            let live = s
                .dma
                .as_ref()
                .and_then(|d| d.get(..s.nentries))
                .unwrap_or_default();
            Some(f(live))
        })
    }

    /// Runs `f` on the pagemap the device pages of the current mapping belong to (`None` without
    /// device pages): upstream's `svm_pages->dpagemap`. The caller holds the notifier lock.
    pub fn with_pagemap<R>(
        &self,
        nl: &impl NotifierLocked,
        f: impl FnOnce(Option<&D::Pagemap>) -> R,
    ) -> R {
        let mut st = self.lock_state(nl);
        st.with(|s| f(s.pagemap.as_ref()))
    }

    /// Number of pages covered by the current mapping, and the number of DMA entries.
    pub(crate) fn mapped_counts(&self, nl: &impl NotifierLocked) -> (usize, usize) {
        let mut st = self.lock_state(nl);
        st.with(|s| (s.npages, s.nentries))
    }
}

impl<D: SvmDriver> Drop for SvmPages<D> {
    fn drop(&mut self) {
        // Exclusive access: nobody else can hold the state lock or reach the object. Unmap what
        // is still mapped so that dropping never leaks a DMA mapping (the `range_free` backstop).
        let dev = &self.dev;
        self.state.with_mut(|p| {
            // SAFETY: `&mut self` gives exclusive access to the state.
            let s = unsafe { &mut *p };
            if let Some(dma) = s.dma.as_mut() {
                let live = dma.get_mut(..s.nentries).unwrap_or_default();
                unmap_entries::<D>(dev, s.pagemap.as_ref(), live);
            }
            s.nentries = 0;
        });
    }
}

/// Unmaps `entries` (system ones through `dev`, device ones through `pagemap`) and clears them.
/// Holes and empty entries have nothing behind them.
pub(crate) fn unmap_entries<D: SvmDriver>(
    dev: &D::Dma,
    pagemap: Option<&D::Pagemap>,
    entries: &mut [DmaEntry],
) {
    for e in entries.iter_mut() {
        if !e.is_mapped() {
            *e = DmaEntry::NONE;
            continue;
        }
        if e.proto() == Protocol::SYSTEM {
            dev.unmap_page(e.addr(), e.order(), e.dir());
        } else if let Some(pm) = pagemap {
            pm.device_unmap(dev, *e);
        }
        *e = DmaEntry::NONE;
    }
}

/// What one mapping attempt produced.
struct Mapped<D: SvmDriver> {
    nentries: usize,
    pagemap: Option<D::Pagemap>,
}

/// Maps the faulted `pfns` into `dma` (the walk of brief §2.10 step 8).
///
/// On error the entries created by this attempt are already unmapped and cleared.
fn map_pfns<D: SvmDriver>(
    mm: &D::Mm,
    dev: &D::Dma,
    pfns: &[HmmPfn],
    dma: &mut [DmaEntry],
    ctx: &Ctx,
) -> Result<Mapped<D>> {
    let dir = if ctx.read_only {
        DmaDirection::ToDevice
    } else {
        DmaDirection::Bidirectional
    };
    let npages = pfns.len();
    let mut i = 0usize;
    let mut j = 0usize;
    let mut pagemap: Option<D::Pagemap> = None;
    let mut last_zone_data: Option<usize> = None;
    let mut seen_system = false;

    let result = (|| -> Result {
        while i < npages {
            let pfn = *pfns.get(i).ok_or(code::EFAULT)?;
            if !pfn.is_valid() || pfn.is_error() {
                return Err(code::EFAULT);
            }
            let order = chunk_order(pfn, i, npages);
            let entry = match mm.classify_page(pfn.pfn()) {
                PageKind::Device {
                    pgmap, zone_data, ..
                } => {
                    // `hmm_range_fault` reports the caller's own device-private pages without
                    // faulting them, even for a write: after fork (copy-on-write) or a write
                    // protection they come back valid but not writable. Mapping them writable
                    // would let the GPU write a page another process shares; the driver evicts
                    // on EOPNOTSUPP, and the retry's write fault breaks the sharing in RAM.
                    if !ctx.read_only && !pfn.is_writable() {
                        return Err(code::EOPNOTSUPP);
                    }
                    if seen_system && !ctx.allow_mixed {
                        return Err(code::EOPNOTSUPP);
                    }
                    if !ctx.allow_mixed && last_zone_data.is_some_and(|z| z != zone_data) {
                        // Only one device-memory allocation per pages object.
                        return Err(code::EOPNOTSUPP);
                    }
                    let pm = match &pagemap {
                        Some(pm) if pm.pgmap() != pgmap => return Err(code::EOPNOTSUPP),
                        Some(pm) => pm,
                        None => {
                            // SAFETY: The notifier lock is held and `read_retry` passed, so no
                            // invalidation of this span has completed since the fault: the page
                            // is still mapped, its reference keeps its tracker alive, and its
                            // zone data is the tracker the core stored (`Mm` safety contract).
                            let tracker = unsafe { tracker_of::<D>(zone_data) };
                            let pm = tracker.devmem().state().pagemap();
                            if pm.pgmap() != pgmap {
                                return Err(code::EOPNOTSUPP);
                            }
                            pagemap.insert(pm.clone())
                        }
                    };
                    last_zone_data = Some(zone_data);
                    pm.device_map(dev, pfn.pfn(), order, dir)
                        .map_err(|_| code::EFAULT)?
                }
                PageKind::System => {
                    if pagemap.is_some() && !ctx.allow_mixed {
                        return Err(code::EOPNOTSUPP);
                    }
                    if ctx.devmem_only {
                        return Err(code::EFAULT);
                    }
                    seen_system = true;
                    let addr = dev
                        .map_page(pfn.pfn(), order, dir)
                        .map_err(|_| code::EFAULT)?;
                    match DmaEntry::encode(addr, Protocol::SYSTEM, order, dir) {
                        Ok(e) => e,
                        Err(e) => {
                            dev.unmap_page(addr, order, dir);
                            return Err(e);
                        }
                    }
                }
                PageKind::OtherZoneDevice => return Err(code::EOPNOTSUPP),
            };
            let slot = dma.get_mut(j).ok_or(code::EFAULT)?;
            *slot = entry;
            j += 1;
            i = i.saturating_add(1usize << order);
        }
        Ok(())
    })();

    match result {
        Ok(()) => Ok(Mapped {
            nentries: j,
            pagemap,
        }),
        Err(e) => {
            // Unmap exactly what this attempt mapped (brief §9 item 11).
            let created = dma.get_mut(..j).unwrap_or_default();
            unmap_entries::<D>(dev, pagemap.as_ref(), created);
            Err(e)
        }
    }
}

/// `drm_gpusvm_get_pages`: fault in `span` of `mm` and DMA-map it into `pages`.
pub(crate) fn get_pages<D: SvmDriver>(
    shared: &SvmShared<D>,
    pages: &SvmPages<D>,
    mm: &D::Mm,
    notifier: &MmNotifier<D::Mm>,
    span: Span,
    ctx: &Ctx,
) -> Result {
    let page: PageShift = shared.page_shift();
    if !crate::addr::is_aligned(span.start(), page.size())
        || !crate::addr::is_aligned(span.end(), page.size())
    {
        return Err(code::EINVAL);
    }
    let npages = usize::try_from(page.pages(span.len())).map_err(|_| code::ENOMEM)?;
    let clock = shared.clock();
    let deadline = clock.now_ms().saturating_add(HMM_RANGE_DEFAULT_TIMEOUT_MS);
    let mut default_flags = HmmPfn::REQ_FAULT;
    if !ctx.read_only {
        default_flags |= HmmPfn::REQ_WRITE;
    }

    // Allocated on the first slow-path pass and reused by every retry (a collision with an
    // invalidation must not cost another allocation).
    let mut pfn_array: Option<KArray<HmmPfn, D::Alloc>> = None;
    let mut spare: Option<KArray<DmaEntry, D::Alloc>> = None;
    'retry: loop {
        if clock.now_ms() > deadline {
            return Err(code::EBUSY);
        }
        let mut seq = notifier.read_begin();

        // Fast path: still valid from a previous call. The flags are published (Release) after
        // the entries, so this Acquire load needs no lock; the caller commits under the
        // notifier lock anyway, where an invalidation since `seq` shows.
        if pages.flags().is_valid() {
            pages.notifier_seq.store(seq, Ordering::Relaxed);
            return Ok(());
        }
        // Slow path only: a mapper may have published since the load above (then its mapping
        // is used, saving an HMM walk), and an array of the wrong size goes before the walk.
        {
            let nl = shared.read_lock();
            let mut st = pages.lock_state(&nl);
            if pages.flags().is_valid() {
                drop(st);
                drop(nl);
                pages.notifier_seq.store(seq, Ordering::Relaxed);
                return Ok(());
            }
            // Upstream frees a stale array here; we keep it when it fits the span (it is
            // reallocated at the same size anyway), and free it otherwise.
            if st.with(|s| s.dma.as_ref().is_some_and(|d| d.len() != npages)) {
                let stale = pages.free_locked(&mut st);
                drop(st);
                drop(nl);
                drop(stale);
            }
        }

        let pfns = match &mut pfn_array {
            Some(p) => {
                // Inputs of `hmm_range_fault` are request flags: start from none, as a fresh
                // array does.
                p.fill(HmmPfn(0));
                p
            }
            None => pfn_array.insert(KArray::try_new(npages, HmmPfn(0), shared.alloc().clone())?),
        };
        {
            let user = MmUser::get(mm).ok_or(code::EFAULT)?;
            loop {
                let lock = user.read_lock();
                let mut range = HmmRange {
                    notifier,
                    notifier_seq: seq,
                    start: span.start(),
                    end: span.end(),
                    pfns: &mut *pfns,
                    default_flags,
                    dev_private_owner: ctx.device_private_owner,
                };
                let r = mm.hmm_range_fault(&lock, &mut range);
                drop(lock);
                match r {
                    Ok(()) => break,
                    Err(e) if e == code::EBUSY => {
                        if clock.now_ms() > deadline {
                            return Err(code::EBUSY);
                        }
                        seq = notifier.read_begin();
                    }
                    Err(e) => return Err(e),
                }
            }
        }

        // map_pages:
        loop {
            let nl = shared.read_lock();
            if pages.flags().contains(PagesFlags::UNMAPPED) {
                return Err(code::EFAULT);
            }
            if notifier.read_retry(seq) {
                drop(nl);
                continue 'retry;
            }
            let mut st = pages.lock_state(&nl);
            if pages.flags().is_valid() {
                // A concurrent mapper published a mapping no invalidation has torn down.
                drop(st);
                drop(nl);
                pages.notifier_seq.store(seq, Ordering::Relaxed);
                return Ok(());
            }
            let need_array = st.with(|s| {
                // The pages are not valid, so nothing in an existing array is mapped (type
                // invariant): one sized for another span can simply go.
                if s.dma.as_ref().is_some_and(|d| d.len() < npages) {
                    s.dma = None;
                }
                if s.dma.is_none() {
                    s.dma = spare.take();
                }
                s.dma.is_none()
            });
            if need_array {
                // Allocate, then lock, then re-check everything.
                drop(st);
                drop(nl);
                spare = Some(KArray::try_new(
                    npages,
                    DmaEntry::NONE,
                    shared.alloc().clone(),
                )?);
                continue;
            }
            let outcome = st.with(|s| {
                let dma = s
                    .dma
                    .as_mut()
                    .filter(|d| d.len() >= npages)
                    .ok_or(code::EFAULT)?;
                let mapped = map_pfns::<D>(mm, &pages.dev, pfns, dma, ctx)?;
                s.nentries = mapped.nentries;
                s.npages = npages;
                let has_devmem = mapped.pagemap.is_some();
                s.pagemap = mapped.pagemap;
                Ok(has_devmem)
            });
            let has_devmem = outcome?;
            // Freshly mapped: no holes.
            let mut flags = (pages.flags() - PagesFlags::HOLES) | PagesFlags::HAS_DMA_MAPPING;
            flags.set(PagesFlags::HAS_DEVMEM_PAGES, has_devmem);
            // INVARIANT: entries and pagemap were stored above; publish them in one store.
            pages.publish(flags);
            drop(st);
            drop(nl);
            pages.notifier_seq.store(seq, Ordering::Relaxed);
            return Ok(());
        }
    }
}

impl<D: SvmDriver> SvmShared<D> {
    pub(crate) fn read_lock(&self) -> ReadGuard<'_, D::Lock> {
        ReadGuard::lock(self.lock())
    }
}
