//! The mm seam: what the core needs from the CPU memory manager.
//!
//! C headers: [`include/linux/mmu_notifier.h`], [`include/linux/hmm.h`],
//! [`include/linux/migrate.h`], [`include/linux/memremap.h`].
//!
//! The trait is consumer-side (rust-vmm style): it lists exactly the core-mm services `drm_gpusvm`
//! and `drm_pagemap` call, with the kernel's semantics, so that one implementation can sit on the
//! real kernel (`kernel-shim/`) and another on the simulator (`gpusvm-sim`):
//!
//! - liveness: `mmget_not_zero` / `mmput`, wrapped by the core into the [`MmUser`] guard;
//! - the mmap lock (read side), wrapped into [`MmapReadGuard`]; services that need it take the
//!   guard as proof;
//! - VMA lookup, returning the few facts the core uses ([`VmaInfo`]);
//! - MMU interval notifiers ([`IntervalNotifier`]) with the kernel's sequence protocol (§5.1);
//! - `hmm_range_fault` on an array of [`HmmPfn`];
//! - page classification (system / device page of a core pagemap / other `ZONE_DEVICE`);
//! - `migrate_vma_*` and `migrate_device_*` for device memory (brief §6), and the page-level
//!   helpers the migration code needs.
//!
//! Time comes from [`Clock`], not from `std`.

use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::error::Result;
use crate::hmm::HmmPfn;

/// Milliseconds from an arbitrary epoch (`jiffies` converted, or a simulator's virtual clock).
pub trait Clock: Clone + Send + Sync {
    /// The current time in milliseconds. Must never go backwards.
    fn now_ms(&self) -> u64;
}

/// The device-private page owner cookie (`dev_private_owner` / `pgmap->owner`).
///
/// Device-private pages whose pagemap has this owner are returned in place by `hmm_range_fault`;
/// others are migrated to RAM first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Owner(pub usize);

/// Identity of a `struct dev_pagemap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PgmapId(pub usize);

bitflags::bitflags! {
    /// The VMA facts the core uses.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct VmaFlags: u32 {
        /// `VM_READ`.
        const READ = 1 << 0;
        /// `VM_WRITE`.
        const WRITE = 1 << 1;
        /// `vma_is_anonymous()`: private anonymous memory (the only kind `migrate_vma` moves).
        const ANONYMOUS = 1 << 2;
        /// `is_vm_hugetlb_page()`.
        const HUGETLB = 1 << 3;
        /// `VM_SHARED`.
        const SHARED = 1 << 4;
        /// `VM_IO | VM_PFNMAP`: no struct pages; `hmm_range_fault` refuses it.
        const PFNMAP = 1 << 5;
    }
}

/// A VMA as the core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmaInfo {
    /// `vm_start`.
    pub start: u64,
    /// `vm_end` (exclusive).
    pub end: u64,
    /// Protection and kind.
    pub flags: VmaFlags,
}

impl VmaInfo {
    /// Whether the VMA allows writes.
    pub fn writable(&self) -> bool {
        self.flags.contains(VmaFlags::WRITE)
    }

    /// Whether `migrate_vma` can move pages of this VMA (anonymous, not hugetlb).
    pub fn migratable(&self) -> bool {
        self.flags.contains(VmaFlags::ANONYMOUS) && !self.flags.contains(VmaFlags::HUGETLB)
    }
}

/// `enum mmu_notifier_event`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MmuEvent {
    /// munmap, or the old range of an mremap move.
    Unmap,
    /// PTEs cleared for other reasons (madvise, page replacement, ...).
    Clear,
    /// mprotect: VMA-level protection change.
    ProtectionVma,
    /// Per-page protection change.
    ProtectionPage,
    /// Soft-dirty tracking.
    SoftDirty,
    /// The mm is exiting.
    Release,
    /// `migrate_vma_collect`; `owner` says who migrates.
    Migrate,
    /// Conversion to device-exclusive entries; `owner` says who asked.
    Exclusive,
}

/// `struct mmu_notifier_range`: one invalidation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmuRange {
    /// First address invalidated.
    pub start: u64,
    /// One past the last address invalidated.
    pub end: u64,
    /// Why.
    pub event: MmuEvent,
    /// The owner cookie for `Migrate`/`Exclusive` events.
    pub owner: Option<Owner>,
    /// `mmu_notifier_range_blockable()`: whether the callback may sleep.
    pub blockable: bool,
}

/// The receiver of an interval notifier's invalidations (`mmu_interval_notifier_ops`).
pub trait Subscriber: Sync {
    /// Called for each invalidation intersecting the notifier's interval. Must take the user lock
    /// that protects `read_retry`, call [`IntervalNotifier::set_seq`] with `cur_seq` under it, and
    /// return `false` only if `range.blockable` is false and it would have to sleep.
    fn invalidate(&self, range: &MmuRange, cur_seq: u64) -> bool;
}

/// Backend storage for one `mmu_interval_notifier`, embedded in a core object that never moves.
///
/// # Safety
///
/// Implementers follow the kernel's sequence protocol (brief §5.1): `read_begin` returns an even
/// sequence value and waits while an invalidation of this notifier is in progress; every
/// invalidation that intersects the interval calls the subscriber, whose `set_seq` stores an odd
/// value; `read_retry(seq)` is true if `set_seq` was called since `read_begin` returned `seq`.
/// After `remove` returns, the subscriber is never called again and no call is running.
pub unsafe trait IntervalNotifier: Send + Sync {
    /// The mm type this notifier registers with.
    type Mm;

    /// A new, unregistered notifier.
    fn new() -> Self
    where
        Self: Sized;

    /// Registers `[start, start + len)` of `mm` (`mmu_interval_notifier_insert`). May take the
    /// mmap lock for write, so the caller must not hold it.
    ///
    /// # Errors
    ///
    /// The backend's error (`ENOMEM`, ...); the notifier stays unregistered.
    ///
    /// # Safety
    ///
    /// `self` and `*subscriber` do not move and stay valid until [`IntervalNotifier::remove`]
    /// returns, and `self` is not registered already.
    unsafe fn insert(
        &self,
        mm: &Self::Mm,
        start: u64,
        len: u64,
        subscriber: NonNull<dyn Subscriber>,
    ) -> Result;

    /// Unregisters (`mmu_interval_notifier_remove`); waits for running callbacks to finish.
    ///
    /// # Safety
    ///
    /// The notifier is registered, and the caller is not inside one of its callbacks.
    unsafe fn remove(&self);

    /// `mmu_interval_read_begin`: an even sequence value, after any running invalidation of this
    /// notifier finished.
    fn read_begin(&self) -> u64;

    /// `mmu_interval_read_retry`: whether an invalidation happened since `read_begin` returned
    /// `seq`. Authoritative only under the user lock.
    fn read_retry(&self, seq: u64) -> bool;

    /// `mmu_interval_set_seq`: called from the subscriber under the user lock.
    fn set_seq(&self, cur_seq: u64);
}

/// An `hmm_range_fault` request (`struct hmm_range`).
pub struct HmmRange<'a, N: ?Sized> {
    /// The notifier whose sequence the walk checks for collisions.
    pub notifier: &'a N,
    /// The sequence value from `read_begin`.
    pub notifier_seq: u64,
    /// First address (page aligned).
    pub start: u64,
    /// One past the last address (page aligned).
    pub end: u64,
    /// One entry per page, filled by the walk.
    pub pfns: &'a mut [HmmPfn],
    /// `HmmPfn::REQ_FAULT` and/or `HmmPfn::REQ_WRITE` for every page, or 0 for a snapshot.
    pub default_flags: u64,
    /// Device-private pages of this owner are reported in place; others are migrated to RAM.
    pub dev_private_owner: Option<Owner>,
}

/// What a page frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// An ordinary system-memory page.
    System,
    /// A device-private or device-coherent page whose zone-device data was set by this core
    /// ([`Mm::device_page_init`]).
    Device {
        /// The page's `dev_pagemap`.
        pgmap: PgmapId,
        /// The value stored by `device_page_init` (the allocation-tracking object).
        zone_data: usize,
        /// `MEMORY_DEVICE_COHERENT` rather than `MEMORY_DEVICE_PRIVATE`.
        coherent: bool,
    },
    /// Any other `ZONE_DEVICE` page (P2PDMA, fsdax, another driver's device-private page).
    OtherZoneDevice,
}

/// `migrate_vma`/`migrate_device` pfn encoding (`include/linux/migrate.h`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct MigratePfn(pub u64);

impl MigratePfn {
    /// `MIGRATE_PFN_VALID`.
    pub const VALID: u64 = 1 << 0;
    /// `MIGRATE_PFN_MIGRATE`: the source page was collected and can move.
    pub const MIGRATE: u64 = 1 << 1;
    /// `MIGRATE_PFN_WRITE`.
    pub const WRITE: u64 = 1 << 3;
    /// `MIGRATE_PFN_COMPOUND`: the entry is the head of a large folio.
    pub const COMPOUND: u64 = 1 << 4;
    /// `MIGRATE_PFN_SHIFT`.
    pub const SHIFT: u32 = 6;

    /// `migrate_pfn(pfn)`: a valid entry for a destination page.
    pub fn from_pfn(pfn: u64) -> Self {
        MigratePfn((pfn << Self::SHIFT) | Self::VALID)
    }

    /// The page frame (`migrate_pfn_to_page`), if the entry is valid.
    pub fn pfn(self) -> Option<u64> {
        (self.0 & Self::VALID != 0).then_some(self.0 >> Self::SHIFT)
    }

    /// Whether the source was collected for migration.
    pub fn is_migrating(self) -> bool {
        self.0 & Self::MIGRATE != 0
    }

    /// Whether the source was mapped writable.
    pub fn is_writable(self) -> bool {
        self.0 & Self::WRITE != 0
    }
}

impl core::fmt::Debug for MigratePfn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.pfn() {
            None => write!(f, "MigratePfn(none {:#x})", self.0),
            Some(pfn) => write!(
                f,
                "MigratePfn({pfn:#x}{}{})",
                if self.is_migrating() { " M" } else { "" },
                if self.is_writable() { " W" } else { "" }
            ),
        }
    }
}

bitflags::bitflags! {
    /// `MIGRATE_VMA_SELECT_*`: which source pages `migrate_vma_setup` collects.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MigrateSelect: u32 {
        /// System pages.
        const SYSTEM = 1 << 0;
        /// Device-private pages of `pgmap_owner`.
        const DEVICE_PRIVATE = 1 << 1;
        /// Device-coherent pages of `pgmap_owner`.
        const DEVICE_COHERENT = 1 << 2;
        /// Collect whole large folios.
        const COMPOUND = 1 << 3;
    }
}

/// A `migrate_vma` request (`struct migrate_vma`). `src` and `dst` have one entry per page.
pub struct MigrateVma<'a> {
    /// First address (page aligned, inside one VMA).
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Source entries, filled by `setup`; `pages` clears `MIGRATE` on entries that failed.
    pub src: &'a mut [MigratePfn],
    /// Destination entries, filled by the caller between `setup` and `pages`.
    pub dst: &'a mut [MigratePfn],
    /// Number of source pages collected, set by `setup`.
    pub cpages: usize,
    /// Which source pages to collect.
    pub select: MigrateSelect,
    /// The owner whose device pages `DEVICE_*` selects, and the owner of the `Migrate` event.
    pub pgmap_owner: Option<Owner>,
    /// The page frame of the device page whose CPU fault started this migration.
    pub fault_page: Option<u64>,
    /// Backend state between `setup` and `finalize`.
    pub cookie: usize,
}

/// Proof that the caller holds a user reference on the mm (`mmget_not_zero` succeeded).
///
/// # Invariants
///
/// A successful `mmget_not_zero` on `mm` is owned by this value and released on drop.
pub struct MmUser<'a, M: Mm> {
    mm: &'a M,
}

impl<'a, M: Mm> MmUser<'a, M> {
    /// `mmget_not_zero`: `None` once the mm is exiting.
    pub fn get(mm: &'a M) -> Option<Self> {
        // INVARIANT: the guard is built only after a successful `mmget_not_zero`.
        // `then`, not `then_some`: an eagerly built guard would `mmput` on failure.
        mm.mmget_not_zero().then(|| MmUser { mm })
    }

    /// Takes the mmap lock for reading.
    pub fn read_lock(&self) -> MmapReadGuard<'_, M> {
        self.mm.mmap_read_lock();
        // INVARIANT: the read lock was just taken and will be released by the guard.
        MmapReadGuard {
            mm: self.mm,
            owned: true,
            _not_send: PhantomData,
        }
    }

    /// The mm.
    pub fn mm(&self) -> &'a M {
        self.mm
    }
}

impl<M: Mm> Drop for MmUser<'_, M> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one successful `mmget_not_zero`.
        unsafe { self.mm.mmput() };
    }
}

/// Proof that the mmap lock of `mm` is held for reading.
///
/// # Invariants
///
/// The mmap lock of `mm` is held for reading by this thread while the guard lives; if `owned`,
/// the guard took it and releases it on drop.
pub struct MmapReadGuard<'a, M: Mm> {
    mm: &'a M,
    owned: bool,
    _not_send: PhantomData<*mut ()>,
}

impl<'a, M: Mm> MmapReadGuard<'a, M> {
    /// A guard for a lock the caller already holds (the CPU fault path, `populate_mm`).
    ///
    /// # Safety
    ///
    /// The mmap lock of `mm` is held (for reading or writing) by this thread for all of `'a`.
    pub unsafe fn assume_held(mm: &'a M) -> Self {
        // INVARIANT: the caller guarantees the lock is held; we do not release it.
        MmapReadGuard {
            mm,
            owned: false,
            _not_send: PhantomData,
        }
    }

    /// The mm.
    pub fn mm(&self) -> &'a M {
        self.mm
    }
}

impl<M: Mm> Drop for MmapReadGuard<'_, M> {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: By the type invariant this guard took the read lock.
            unsafe { self.mm.mmap_read_unlock() };
        }
    }
}

/// The CPU memory manager of one process, as the core needs it.
///
/// The handle is cheap to clone; cloning takes an `mm_count` reference (`mmgrab`), so the mm
/// struct stays valid while its address space may exit.
///
/// # Safety
///
/// The core dereferences zone-device data it stored, trusting this implementation:
/// - [`Mm::classify_page`] reports [`PageKind::Device`] only for pages initialized by
///   [`Mm::device_page_init`] with that `zone_data`, and only until the backend has reported the
///   page freed through [`crate::devmem::device_page_free`];
/// - pages reported by `hmm_range_fault` stay allocated until an invalidation of their address
///   has called the interval notifier (the kernel's guarantee);
/// - `migrate_vma_*` and `migrate_device_*` follow the kernel's protocol (a destination page
///   given to `pages` is either installed or freed by `finalize`).
pub unsafe trait Mm: Clone + Send + Sync + Sized {
    /// The interval-notifier storage type for this mm.
    type Notifier: IntervalNotifier<Mm = Self>;

    /// `mmget_not_zero`.
    fn mmget_not_zero(&self) -> bool;

    /// `mmput`.
    ///
    /// # Safety
    ///
    /// Pairs with one successful `mmget_not_zero`.
    unsafe fn mmput(&self);

    /// `mmap_read_lock`.
    fn mmap_read_lock(&self);

    /// `mmap_read_unlock`.
    ///
    /// # Safety
    ///
    /// The caller holds the read lock.
    unsafe fn mmap_read_unlock(&self);

    /// `vma_lookup`: the VMA containing `addr`.
    fn vma_lookup(&self, lock: &MmapReadGuard<'_, Self>, addr: u64) -> Option<VmaInfo>;

    /// `find_vma_intersection`: the first VMA intersecting `[start, end)`.
    fn find_vma_intersection(
        &self,
        lock: &MmapReadGuard<'_, Self>,
        start: u64,
        end: u64,
    ) -> Option<VmaInfo>;

    /// `hmm_range_fault`.
    ///
    /// # Errors
    ///
    /// `EBUSY` on a notifier collision (re-read the sequence and retry), `EFAULT` if a required
    /// page cannot be made present, `EPERM` for a write request on a read-only mapping, `EINVAL`
    /// for a VMA without struct pages, `ENOMEM`.
    fn hmm_range_fault(
        &self,
        lock: &MmapReadGuard<'_, Self>,
        range: &mut HmmRange<'_, Self::Notifier>,
    ) -> Result;

    /// What the page frame `pfn` is.
    fn classify_page(&self, pfn: u64) -> PageKind;

    /// `migrate_vma_setup`: collects and isolates the source pages of `[start, end)`, replacing
    /// their CPU mappings with migration entries; fires a `Migrate` invalidation.
    ///
    /// # Errors
    ///
    /// `EINVAL` for bad arguments, `ENOMEM`.
    fn migrate_vma_setup(
        &self,
        lock: &MmapReadGuard<'_, Self>,
        args: &mut MigrateVma<'_>,
    ) -> Result;

    /// `migrate_vma_pages`: moves the mappings to the destination pages; clears `MIGRATE` on
    /// the source entries that could not move.
    fn migrate_vma_pages(&self, args: &mut MigrateVma<'_>);

    /// `migrate_vma_finalize`: restores the CPU mappings (to the new or the old page) and drops
    /// the isolation references.
    fn migrate_vma_finalize(&self, args: &mut MigrateVma<'_>);

    /// `migrate_device_pfns`: collects device pages by page frame, without the mmap lock
    /// (eviction). `src` holds `MigratePfn::from_pfn(device_pfn)` on entry.
    ///
    /// # Errors
    ///
    /// `ENOMEM` and similar; entries that could not be collected lack `MIGRATE`.
    fn migrate_device_pfns(&self, src: &mut [MigratePfn]) -> Result;

    /// `migrate_device_pages`.
    fn migrate_device_pages(&self, src: &mut [MigratePfn], dst: &mut [MigratePfn]);

    /// `migrate_device_finalize`.
    fn migrate_device_finalize(&self, src: &mut [MigratePfn], dst: &mut [MigratePfn]);

    /// Initializes a free device page as the destination of a migration: `zone_device_page_init`
    /// (one reference, locked) and `page->zone_device_data = zone_data`.
    fn device_page_init(&self, pfn: u64, zone_data: usize);

    /// Allocates a locked system page of `1 << order` pages to receive a device page
    /// (`vma_alloc_folio` near `addr`, or `alloc_pages` when there is no VMA).
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    fn alloc_system_page(&self, addr: Option<u64>, order: u32) -> Result<u64>;

    /// Unlocks and puts a destination page that will not be used (error paths).
    fn put_locked_page(&self, pfn: u64);
}

/// The `Mm` notifier storage type.
pub type MmNotifier<M> = <M as Mm>::Notifier;
