//! Device-memory allocations and the object that tracks their pages (upstream's zdd).
//!
//! C source: [`drivers/gpu/drm/drm_pagemap.c`] (`struct drm_pagemap_devmem`,
//! `struct drm_pagemap_zdd`, brief §6.7).
//!
//! # Lifetime of an allocation
//!
//! ```text
//!  driver allocates VRAM ──► DevmemState::new (Fresh)
//!          │ migrate_to_devmem(devmem) moves one handle into a Tracker (Attached)
//!          ▼
//!  Tracker refcount = 1 (the migration call)
//!          │ +1 per destination device page initialized (zone_device_data = tracker)
//!          │ −1 when the migration call ends (success or failure)
//!          │ −1 per device page freed by core mm (device_page_free: after migrate_to_ram,
//!          │    eviction, munmap, process exit)
//!          ▼ refcount reaches 0, in whatever context dropped the last reference
//!  phase = Detached ("detached" completion) ──► the tracker's handle is dropped (release)
//! ```
//!
//! The driver keeps its own handles (e.g. in TTM for eviction); they never keep the tracker
//! alive, so there is no cycle, and [`crate::migrate::evict_to_ram`] can tell from
//! [`DevmemState::is_detached`] that every device page is gone. Nothing outside this module can
//! touch a tracker's count: the only public entry is [`device_page_free`], which the mm backend
//! calls exactly once per page that [`crate::Mm::device_page_init`] initialized. Safe code can
//! therefore neither leak an allocation nor release it twice.

use core::ptr::NonNull;

use crate::addr::PageShift;
use crate::allocator::KBox;
use crate::driver::SvmDriver;
use crate::error::{code, Result};
use crate::sync::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// One run of pages copied by one call of the copy engine.
///
/// The device side is physically contiguous: `npages` pages from page frame `device_pfn`. The
/// system side has one slot per page: a DMA-mapped address, or [`crate::DmaEntry::NONE`] for a
/// tail page of a larger mapping whose head slot has `order > 0`.
#[derive(Debug)]
pub struct CopyBatch<'a> {
    /// First device page frame.
    pub device_pfn: u64,
    /// Number of pages.
    pub npages: usize,
    /// System-side DMA entries, `npages` slots.
    pub system: &'a [crate::DmaEntry],
    /// The copy must wait for (or pipeline behind) the allocation's pre-migrate fence.
    pub wait_fence: bool,
}

/// A device-memory allocation (`struct drm_pagemap_devmem` plus its ops), as a counted handle.
///
/// `Clone` takes a reference on the driver's object (its buffer object); dropping the last
/// handle frees the device memory (`devmem_release`). The core's bookkeeping lives in the
/// embedded [`DevmemState`].
pub trait DevmemAllocation<D: SvmDriver>: Clone + Send + Sync + 'static {
    /// The core's state embedded in the allocation.
    fn state(&self) -> &DevmemState<D>;

    /// `populate_devmem_pfn`: the device page frame of every page of the allocation, in order
    /// (`pfns.len()` = size / page size).
    ///
    /// # Errors
    ///
    /// Any failure; the migration fails with it.
    fn populate_pfns(&self, pfns: &mut [u64]) -> Result;

    /// `copy_to_devmem`: copies the system pages of `batch` into its device pages.
    ///
    /// # Errors
    ///
    /// Any failure; the migration is unwound.
    fn copy_to_devmem(&self, batch: &CopyBatch<'_>) -> Result;

    /// `copy_to_ram`: copies the device pages of `batch` out to its system pages.
    ///
    /// # Errors
    ///
    /// Any failure; the affected pages stay in device memory.
    fn copy_to_ram(&self, batch: &CopyBatch<'_>) -> Result;
}

const FRESH: usize = 0;
const ATTACHED: usize = 1;
const DETACHED: usize = 2;

/// What an allocation's migrations need, handed over once at creation.
pub struct DevmemEnv<D: SvmDriver> {
    /// The mm the allocation's pages belong to.
    pub mm: D::Mm,
    /// The pagemap providing the device pages.
    pub pagemap: D::Pagemap,
    /// The device whose copy engine moves the pages (and that DMA-maps system pages for it).
    pub dev: D::Dma,
    /// Where migration buffers come from.
    pub alloc: D::Alloc,
    /// The time source for the timeslice.
    pub clock: D::Clock,
    /// The base page size.
    pub page: PageShift,
}

/// The core's bookkeeping of one device-memory allocation (`drm_pagemap_devmem_init` fields).
///
/// # Invariants
///
/// `phase` only moves forward: `FRESH` → `ATTACHED` (a tracker owns a handle) → `DETACHED` (the
/// tracker is gone). `size` is a non-zero multiple of the page size.
pub struct DevmemState<D: SvmDriver> {
    env: DevmemEnv<D>,
    size: u64,
    phase: AtomicUsize,
    timeslice_expiration_ms: AtomicU64,
    pre_migrate_fence: AtomicBool,
}

impl<D: SvmDriver> DevmemState<D> {
    /// `drm_pagemap_devmem_init`: `size` bytes of device memory described by `env`.
    /// `pre_migrate_fence` says whether the first copies must wait for a fence the driver holds
    /// (e.g. a clear of the new memory).
    ///
    /// # Errors
    ///
    /// `EINVAL` if `size` is zero or not a multiple of the page size.
    pub fn new(env: DevmemEnv<D>, size: u64, pre_migrate_fence: bool) -> Result<Self> {
        if size == 0 || size % env.page.size() != 0 {
            return Err(code::EINVAL);
        }
        // INVARIANT: fresh, with a validated size.
        Ok(Self {
            env,
            size,
            phase: AtomicUsize::new(FRESH),
            timeslice_expiration_ms: AtomicU64::new(0),
            pre_migrate_fence: AtomicBool::new(pre_migrate_fence),
        })
    }

    /// The migration environment.
    pub fn env(&self) -> &DevmemEnv<D> {
        &self.env
    }

    /// The mm the allocation's pages belong to.
    pub fn mm(&self) -> &D::Mm {
        &self.env.mm
    }

    /// The pagemap providing the pages.
    pub fn pagemap(&self) -> &D::Pagemap {
        &self.env.pagemap
    }

    /// The device that copies.
    pub fn dev(&self) -> &D::Dma {
        &self.env.dev
    }

    /// Number of pages.
    pub fn npages(&self) -> u64 {
        self.env.page.pages(self.size)
    }

    /// Size in bytes (also the CPU-fault migration window).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether every device page of the allocation has been freed (`detached` completed).
    pub fn is_detached(&self) -> bool {
        self.phase.load(Ordering::Acquire) == DETACHED
    }

    /// Whether a migration has attached the allocation to device pages.
    pub fn is_attached(&self) -> bool {
        self.phase.load(Ordering::Acquire) == ATTACHED
    }

    /// Time before which CPU faults do not migrate the pages back.
    pub fn timeslice_expiration_ms(&self) -> u64 {
        self.timeslice_expiration_ms.load(Ordering::Acquire)
    }

    pub(crate) fn set_timeslice_expiration_ms(&self, t: u64) {
        self.timeslice_expiration_ms.store(t, Ordering::Release);
    }

    /// Whether copies must still wait for the pre-migrate fence.
    pub fn has_pre_migrate_fence(&self) -> bool {
        self.pre_migrate_fence.load(Ordering::Acquire)
    }

    pub(crate) fn drop_pre_migrate_fence(&self) {
        self.pre_migrate_fence.store(false, Ordering::Release);
    }

    fn attach(&self) -> bool {
        // INVARIANT: only FRESH → ATTACHED.
        self.phase
            .compare_exchange(FRESH, ATTACHED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn detach(&self) {
        // INVARIANT: ATTACHED → DETACHED, called once by the tracker's last reference.
        self.phase.store(DETACHED, Ordering::Release);
    }
}

/// The allocation-tracking object (upstream `drm_pagemap_zdd`), stored in the zone-device data
/// of every device page of one allocation.
///
/// # Invariants
///
/// `refcount` counts the migration call that created the tracker (while it runs) plus one per
/// initialized device page not yet freed. When it reaches zero the tracker is freed, and nothing
/// refers to it any more.
pub(crate) struct Tracker<D: SvmDriver> {
    refcount: AtomicUsize,
    devmem: D::Devmem,
    alloc: D::Alloc,
}

/// The migration call's reference on a tracker.
///
/// # Invariants
///
/// Owns one count of `tracker`, which was allocated through [`KBox`] with its own `alloc`.
pub(crate) struct TrackerRef<D: SvmDriver> {
    tracker: NonNull<Tracker<D>>,
}

// SAFETY: The tracker's fields are `Send + Sync` handles and an atomic count; the reference may
// be dropped on any thread.
unsafe impl<D: SvmDriver> Send for TrackerRef<D> {}
// SAFETY: Shared access only reads immutable fields or uses atomics.
unsafe impl<D: SvmDriver> Sync for TrackerRef<D> {}

impl<D: SvmDriver> TrackerRef<D> {
    /// Creates a tracker owning `devmem` (which must be fresh).
    ///
    /// # Errors
    ///
    /// `EBUSY` if the allocation was already used by a migration, `ENOMEM`. The handle is
    /// dropped (released) in both cases, as upstream documents: the call consumes it.
    pub(crate) fn new(devmem: D::Devmem) -> Result<Self> {
        if !devmem.state().attach() {
            return Err(code::EBUSY);
        }
        let alloc = devmem.state().env().alloc.clone();
        let tracker = Tracker {
            refcount: AtomicUsize::new(1),
            devmem,
            alloc: alloc.clone(),
        };
        match KBox::try_new(tracker, alloc) {
            Ok(b) => {
                let (tracker, _alloc) = KBox::into_raw(b);
                // INVARIANT: the new tracker starts with the one count we own; it was allocated
                // with a clone of the allocator it stores.
                Ok(Self { tracker })
            }
            Err((e, tracker)) => {
                // Nothing refers to the allocation: it is detached as soon as it is released.
                tracker.devmem.state().detach();
                Err(e)
            }
        }
    }

    fn tracker(&self) -> &Tracker<D> {
        // SAFETY: By the type invariant we own a count, so the tracker is alive.
        unsafe { self.tracker.as_ref() }
    }

    /// The allocation.
    pub(crate) fn devmem(&self) -> &D::Devmem {
        &self.tracker().devmem
    }

    /// The value stored in a device page's zone-device data.
    pub(crate) fn zone_data(&self) -> usize {
        self.tracker.as_ptr() as usize
    }

    /// Takes the count a newly initialized device page will own, returning its zone data.
    pub(crate) fn get_for_page(&self) -> usize {
        self.tracker().refcount.fetch_add(1, Ordering::Relaxed);
        self.zone_data()
    }
}

impl<D: SvmDriver> Drop for TrackerRef<D> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one count of a KBox-allocated tracker.
        unsafe { put(self.tracker) };
    }
}

/// Drops one count of `tracker`, freeing it at zero.
///
/// # Safety
///
/// The caller owns one count of `tracker`, which was allocated through `KBox` with a clone of
/// its own `alloc`.
unsafe fn put<D: SvmDriver>(tracker: NonNull<Tracker<D>>) {
    // SAFETY: The caller owns a count, so the tracker is alive.
    let t = unsafe { tracker.as_ref() };
    if t.refcount.fetch_sub(1, Ordering::Release) != 1 {
        return;
    }
    fence(Ordering::Acquire);
    t.devmem.state().detach();
    let alloc = t.alloc.clone();
    // SAFETY: The count reached zero, so we own the last reference; the tracker was allocated by
    // `KBox` with a clone of `alloc` (caller's guarantee) and nothing refers to it any more.
    drop(unsafe { KBox::from_raw(tracker, alloc) });
}

/// Resolves a device page's zone data to its tracker.
///
/// # Safety
///
/// `zone_data` was stored by the core through [`crate::Mm::device_page_init`] for a page that is
/// still allocated (so the page's count keeps the tracker alive) for all of `'a`.
pub(crate) unsafe fn tracker_of<'a, D: SvmDriver>(zone_data: usize) -> &'a Tracker<D> {
    // SAFETY: The caller guarantees the pointer refers to a live tracker.
    unsafe { &*(zone_data as *const Tracker<D>) }
}

impl<D: SvmDriver> Tracker<D> {
    /// The allocation.
    pub(crate) fn devmem(&self) -> &D::Devmem {
        &self.devmem
    }

    /// Takes a new reference for a call that is about to use the tracker.
    pub(crate) fn get(&self) -> TrackerRef<D> {
        self.refcount.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: we just took the count the new reference owns; trackers are only allocated
        // by `TrackerRef::new`.
        TrackerRef {
            tracker: NonNull::from(self),
        }
    }
}

/// The allocation a device page of the core belongs to, from the page's zone-device data: what
/// upstream reads as `drm_pagemap_page_zone_device_data(page)->devmem_allocation` (for
/// `drm_pagemap_page_to_dpagemap`, or a backend's CPU-fault op that needs the allocation before
/// calling [`crate::migrate::migrate_to_ram`]). `None` for a zero `zone_data`, which the core
/// never stores.
///
/// The handle is borrowed: it stays valid while the page is allocated, because the page owns a
/// count of the allocation's tracker, which owns the handle. Clone it to keep the allocation
/// (not its device pages) beyond that.
///
/// # Safety
///
/// `zone_data` is zero, or was passed to [`crate::Mm::device_page_init`] by the core for a
/// driver of type `D`, for a page that is not freed (whose free is not reported through
/// [`device_page_free`]) for all of `'a`: e.g. the caller holds a reference on the page, or the
/// page was returned by an HMM walk whose notifier sequence the caller validates before it uses
/// the result.
pub unsafe fn device_page_devmem<'a, D: SvmDriver>(zone_data: usize) -> Option<&'a D::Devmem> {
    if zone_data == 0 {
        return None;
    }
    // SAFETY: A non-zero `zone_data` is the core's tracker of a page that stays allocated for
    // `'a` (caller's guarantee), and the page's count keeps the tracker alive.
    Some(unsafe { tracker_of::<'a, D>(zone_data) }.devmem())
}

/// The page-free callback (`folio_free` in `dev_pagemap_ops`): core mm freed a device page whose
/// zone-device data the core set. Drops the page's reference on its allocation tracker, which
/// releases the allocation when it was the last page.
///
/// Callable from any context the backend frees pages in; it does not sleep or allocate (the
/// driver's `Drop` of its allocation handle must not either).
///
/// # Safety
///
/// `zone_data` was passed to [`crate::Mm::device_page_init`] by the core for a driver of type
/// `D`, and this is the one free of that page.
pub unsafe fn device_page_free<D: SvmDriver>(zone_data: usize) {
    if let Some(tracker) = NonNull::new(zone_data as *mut Tracker<D>) {
        // SAFETY: The page owned one count of this tracker (caller's guarantee), which we drop.
        unsafe { put(tracker) };
    }
}
