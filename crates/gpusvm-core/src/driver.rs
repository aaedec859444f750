//! What a driver plugs into the core: its backends, its per-range data, its invalidate callback.
//!
//! C header: [`include/drm/drm_gpusvm.h`] (`struct drm_gpusvm_ops`, `struct drm_gpusvm_ctx`).
//!
//! One trait, [`SvmDriver`], names every type the core is generic over — the mm, the notifier
//! lock, the allocator, the clock, the DMA device, the pagemap, the device-memory allocation, and
//! the driver's own per-range payload — and carries the only callbacks the core makes into the
//! driver. In the style of Tyr's `SlotOperations`, the driver supplies hooks and the core owns
//! the algorithm.
//!
//! The per-range payload replaces upstream's `range_alloc`/`range_free` ops and embedding: the
//! core allocates `Range<D>` (which holds `D::RangeData`) through `D::Alloc`, and the payload's
//! `Drop` is the driver's `range_free`. The payload embeds one [`crate::SvmPages`] per device
//! (the newest upstream model, brief §7); [`SvmDriver::for_each_pages`] lets the core find them
//! to unmap them when a range is removed.

use crate::addr::Span;
use crate::allocator::Allocator;
use crate::devmem::DevmemAllocation;
use crate::dma::DmaDevice;
use crate::error::Result;
use crate::invalidate::Invalidation;
use crate::lock::RawRwLock;
use crate::mm::{Clock, Mm, Owner};
use crate::notifier::Notifier;
use crate::pagemap::Pagemap;
use crate::pages::SvmPages;
use crate::range::Range;

/// The driver side of an [`crate::Svm`] instance (`drm_gpusvm_ops` and the types around it).
pub trait SvmDriver: Sized + Send + Sync + 'static {
    /// The CPU memory manager.
    type Mm: Mm;
    /// The notifier lock ([`crate::lock::SpinRwLock`], or a kernel rwsem).
    type Lock: RawRwLock;
    /// Where every allocation of the core comes from.
    type Alloc: Allocator;
    /// The time source for retry budgets and timeslices.
    type Clock: Clock;
    /// The device that DMA-maps pages for the GPU.
    type Dma: DmaDevice;
    /// A counted reference to a device-memory pagemap (`struct drm_pagemap`).
    type Pagemap: Pagemap<Self>;
    /// A counted reference to a device-memory allocation (a VRAM buffer object).
    type Devmem: DevmemAllocation<Self>;
    /// The driver's payload in every range; it embeds the range's [`SvmPages`].
    type RangeData: Send + Sync;
    /// The driver's payload in every notifier window (`()` for most drivers; the C ABI keeps
    /// upstream's `struct drm_gpusvm_notifier` here).
    type NotifierData: Default + Send + Sync;

    /// Builds the payload of a new range covering `span` (the `range_alloc` op). Called before
    /// any lock is taken; it may allocate.
    ///
    /// # Errors
    ///
    /// Whatever the driver reports; `find_or_insert` fails with it and creates nothing.
    fn range_data(&self, span: Span) -> Result<Self::RangeData>;

    /// Builds the payload of a new notifier window `span` (the `notifier_alloc` op). Called before
    /// any lock is taken; it may allocate.
    ///
    /// # Errors
    ///
    /// Whatever the driver reports; `find_or_insert` fails with it and creates nothing.
    fn notifier_data(&self, span: Span) -> Result<Self::NotifierData> {
        let _ = span;
        Ok(Self::NotifierData::default())
    }

    /// Called when `range` has just been linked into `notifier`'s index, with the driver lock and
    /// the notifier lock (read side) held: the point at which upstream links a range into its
    /// notifier's interval tree and `range_list`. A driver that mirrors the index (the C ABI's
    /// lists, which C callers walk themselves) updates its mirror here. It must not allocate,
    /// sleep or call back into the core. For the first range of a new notifier it runs before
    /// [`SvmDriver::notifier_linked`] (the notifier is not in the instance's index yet). The
    /// default does nothing.
    fn range_linked(&self, notifier: &Notifier<Self>, range: &Range<Self>) {
        let _ = (notifier, range);
    }

    /// Called when `range` has just been unlinked from `notifier`'s index, under the same locks
    /// and rules as [`SvmDriver::range_linked`]. The default does nothing.
    fn range_unlinked(&self, notifier: &Notifier<Self>, range: &Range<Self>) {
        let _ = (notifier, range);
    }

    /// Called when `notifier` has just been linked into the instance's notifier index (driver
    /// lock held; its MMU interval notifier is registered and it holds its first range). The
    /// default does nothing.
    fn notifier_linked(&self, notifier: &Notifier<Self>) {
        let _ = notifier;
    }

    /// Called when `notifier`, empty, is about to be unlinked from the instance's notifier index
    /// and freed (driver lock held, its MMU interval notifier already removed). The default does
    /// nothing.
    fn notifier_unlinked(&self, notifier: &Notifier<Self>) {
        let _ = notifier;
    }

    /// Calls `f` for each pages object embedded in `data`, always in the same order (one per
    /// device).
    fn for_each_pages<'a>(data: &'a Self::RangeData, f: &mut dyn FnMut(&'a SvmPages<Self>));

    /// Builds the payload of a piece split off `old` (range splitting): like
    /// [`SvmDriver::range_data`], but the driver may carry per-range state over (e.g. whether a
    /// device's mapping is read-only). Its pages objects must correspond, in order, to `old`'s.
    ///
    /// # Errors
    ///
    /// Whatever the driver reports; the split is abandoned and the range removed instead.
    fn split_data(&self, old: &Self::RangeData, piece: Span) -> Result<Self::RangeData> {
        let _ = old;
        self.range_data(piece)
    }

    /// The invalidate op: called with the notifier lock held for writing, inside the MMU
    /// notifier.
    ///
    /// The driver must stop the GPU from using `[inv.start(), inv.end())` (zap PTEs, invalidate
    /// TLBs), unmap the DMA mappings of every affected range ([`Invalidation::unmap_range_pages`])
    /// and, for [`crate::MmuEvent::Unmap`], mark the ranges unmapped
    /// ([`Invalidation::set_unmapped`], which queues them for [`crate::Svm::take_unmapped`]). It
    /// must not allocate, take the mmap lock, or remove ranges.
    ///
    /// Return `false` only if `inv.blockable()` is false and the work would have to sleep; the
    /// core then reports "would block" to the mm (upstream refuses every non-blockable
    /// invalidation outright, brief §9 item 19).
    fn invalidate(&self, inv: &Invalidation<'_, Self>) -> bool;
}

/// Per-call options (`struct drm_gpusvm_ctx`).
///
/// `in_notifier` has no counterpart: code inside the notifier holds an [`Invalidation`], whose
/// methods already know the lock is held for writing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ctx {
    /// Device-private pages of this owner are mapped in place; others are migrated to RAM by
    /// `hmm_range_fault`.
    pub device_private_owner: Option<Owner>,
    /// For candidate chunks up to this size, require every CPU page to be present already.
    pub check_pages_threshold: u64,
    /// Minimum device residency after a migration, in milliseconds.
    pub timeslice_ms: u64,
    /// Fault without write; DMA-map `ToDevice`; skip the VMA write check.
    pub read_only: bool,
    /// Allow `MIGRATE_DEVMEM` on new ranges.
    pub devmem_possible: bool,
    /// Fail with `EFAULT` if any page is in system memory (GPU atomics).
    pub devmem_only: bool,
    /// Allow system pages and pages of one pagemap (several allocations) in one pages object.
    pub allow_mixed: bool,
}
