//! Ranges: chunk-aligned spans of a notifier that the GPU maps (`struct drm_gpusvm_range`).
//!
//! C source: [`drivers/gpu/drm/drm_gpusvm.c`] (brief §1.4, §2.7, §2.8, §4.2).
//!
//! A range is allocated by the core through the driver's allocator and lives in one notifier's
//! tree, keyed by its start. It is reference counted: the tree owns one count (dropped by
//! [`crate::Svm::range_remove`]) and every [`RangeRef`] owns one. The last count frees the range
//! and drops the driver's payload (upstream `range_free`). Upstream's `find_or_insert` returns an
//! existing range without a reference (brief §9 item 15); here every lookup that hands a range
//! out of a lock scope returns a [`RangeRef`].
//!
//! # Lifecycle
//!
//! `find_or_insert` → **Live** → an `Unmap` invalidation → **Unmapped** (queued for the garbage
//! collector) → `range_remove` → **Removed** (out of the tree, `REMOVED` set, pages unmapped)
//! → last `RangeRef` dropped → freed. Other invalidations take Live → Live with stale pages.

use core::ptr::NonNull;

use intrusive_collections::{intrusive_adapter, KeyAdapter, LinkedListLink, RBTreeLink, UnsafeRef};

use crate::addr::Span;
use crate::allocator::KBox;
use crate::driver::SvmDriver;
use crate::flags::{FlagWord, RangeFlags};
use crate::notifier::Notifier;
use crate::sync::{fence, AtomicUsize, Ordering, UnsafeCell};

/// One GPU-mapped span of CPU address space.
///
/// # Invariants
///
/// - `span` is aligned to its own size (a chunk size) and lies inside its notifier's window.
/// - `link` and `gc_link` are modified only with the driver lock (`&mut Svm`) and the notifier
///   lock held for reading, or with the notifier lock held for writing; they are read with the
///   driver lock or the notifier lock held for writing. These sets exclude each other.
/// - `notifier` is `Some` exactly while the range is in that notifier's tree; it changes only
///   under the driver lock and the notifier lock.
/// - `refcount` counts the tree's reference (while linked) and every [`RangeRef`].
///
/// The layout is fixed so that what a lookup reads at every level of the tree (the links and the
/// start) comes first, followed by what the commit check reads (the end, the flags and then the
/// payload, whose first pages object starts with its flag word): a GPU fault that hits a valid
/// range touches the first 50 bytes of the node only, instead of three cache lines spread over
/// it (`docs/PERFORMANCE.md`). A driver gets this by putting its pages objects first in its
/// payload.
#[repr(C)]
pub struct Range<D: SvmDriver> {
    pub(crate) link: RBTreeLink,
    span: Span,
    flags: FlagWord,
    data: D::RangeData,
    refcount: AtomicUsize,
    pub(crate) gc_link: LinkedListLink,
    notifier: UnsafeCell<Option<NonNull<Notifier<D>>>>,
    svm_id: usize,
    alloc: D::Alloc,
}

// SAFETY: Shared fields are atomics, immutable, or accessed under the locking discipline of the
// type invariants; the payload is `Send + Sync` by the trait bound.
unsafe impl<D: SvmDriver> Sync for Range<D> {}
// SAFETY: As above; a range may be freed on any thread.
unsafe impl<D: SvmDriver> Send for Range<D> {}

intrusive_adapter!(pub(crate) RangeTreeAdapter<D> = UnsafeRef<Range<D>>: Range<D> { link => RBTreeLink } where D: SvmDriver);
intrusive_adapter!(pub(crate) RangeGcAdapter<D> = UnsafeRef<Range<D>>: Range<D> { gc_link => LinkedListLink } where D: SvmDriver);

impl<'a, D: SvmDriver> KeyAdapter<'a> for RangeTreeAdapter<D> {
    type Key = u64;
    fn get_key(&self, r: &'a Range<D>) -> u64 {
        r.span.start()
    }
}

impl<D: SvmDriver> Range<D> {
    /// Allocates a range with two counts (the tree's and the caller's) and `REMOVED` clear.
    pub(crate) fn alloc(
        span: Span,
        flags: RangeFlags,
        notifier: NonNull<Notifier<D>>,
        svm_id: usize,
        data: D::RangeData,
        alloc: D::Alloc,
    ) -> crate::Result<RangeRef<D>> {
        let range = Range {
            span,
            refcount: AtomicUsize::new(1),
            flags: FlagWord::new(flags.bits()),
            link: RBTreeLink::new(),
            gc_link: LinkedListLink::new(),
            notifier: UnsafeCell::new(Some(notifier)),
            svm_id,
            alloc: alloc.clone(),
            data,
        };
        let boxed = KBox::try_new(range, alloc).map_err(|(e, _range)| e)?;
        let (ptr, _alloc) = KBox::into_raw(boxed);
        // INVARIANT: one count, owned by the returned reference; the caller adds the tree's.
        Ok(RangeRef { ptr })
    }

    /// First address.
    pub fn start(&self) -> u64 {
        self.span.start()
    }

    /// One past the last address.
    pub fn end(&self) -> u64 {
        self.span.end()
    }

    /// The span.
    pub fn span(&self) -> Span {
        self.span
    }

    /// Size in bytes (the chunk size chosen at creation).
    pub fn size(&self) -> u64 {
        self.span.len()
    }

    /// The flag word (a lock-free hint).
    pub fn flags(&self) -> RangeFlags {
        RangeFlags::from_bits_truncate(self.flags.load())
    }

    /// Whether an `Unmap` invalidation hit the range.
    pub fn is_unmapped(&self) -> bool {
        self.flags().contains(RangeFlags::UNMAPPED)
    }

    /// Whether the range has been removed from its notifier.
    pub fn is_removed(&self) -> bool {
        self.flags().contains(RangeFlags::REMOVED)
    }

    /// The driver's payload.
    pub fn data(&self) -> &D::RangeData {
        &self.data
    }

    /// Takes a counted reference (`drm_gpusvm_range_get`).
    pub fn get(&self) -> RangeRef<D> {
        self.refcount.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: we just took the count the reference owns; ranges are only allocated by
        // `Range::alloc` through `KBox`.
        RangeRef {
            ptr: NonNull::from(self),
        }
    }

    pub(crate) fn flag_word(&self) -> &FlagWord {
        &self.flags
    }

    pub(crate) fn svm_id(&self) -> usize {
        self.svm_id
    }

    /// The notifier holding the range, `None` once removed.
    ///
    /// # Safety
    ///
    /// The caller holds the driver lock or the notifier lock (type invariants).
    pub(crate) unsafe fn notifier(&self) -> Option<NonNull<Notifier<D>>> {
        // SAFETY: The caller holds a lock that excludes writers of this field.
        self.notifier.with(|p| unsafe { *p })
    }

    /// Clears the notifier pointer when the range leaves the tree.
    ///
    /// # Safety
    ///
    /// The caller holds the driver lock and the notifier lock.
    pub(crate) unsafe fn clear_notifier(&self) {
        // SAFETY: The caller holds both locks, which excludes every other accessor.
        self.notifier.with_mut(|p| unsafe { *p = None });
    }
}

/// A counted reference to a [`Range`] (`drm_gpusvm_range_get`/`put`).
///
/// # Invariants
///
/// Owns one count of a range allocated by [`Range::alloc`].
pub struct RangeRef<D: SvmDriver> {
    ptr: NonNull<Range<D>>,
}

// SAFETY: `Range` is `Send + Sync`; a reference may move between threads and drop anywhere.
unsafe impl<D: SvmDriver> Send for RangeRef<D> {}
// SAFETY: As above.
unsafe impl<D: SvmDriver> Sync for RangeRef<D> {}

impl<D: SvmDriver> RangeRef<D> {
    /// Whether two references name the same range.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.ptr == b.ptr
    }

    /// Gives up the count as a raw pointer, for an owner outside Rust (the C ABI keeps it in
    /// upstream's `struct drm_gpusvm_range`); [`RangeRef::from_raw`] takes it back.
    pub fn into_raw(self) -> NonNull<Range<D>> {
        let ptr = self.ptr;
        core::mem::forget(self);
        ptr
    }

    /// Takes back a count given up by [`RangeRef::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` came from [`RangeRef::into_raw`] and its count has not been taken back yet.
    pub unsafe fn from_raw(ptr: NonNull<Range<D>>) -> Self {
        // INVARIANT: the count given up by `into_raw` passes to the new reference.
        RangeRef { ptr }
    }

    /// Gives the count to the tree (as an `UnsafeRef`); [`RangeRef::from_tree`] takes it back.
    pub(crate) fn into_tree(self) -> UnsafeRef<Range<D>> {
        let ptr = self.ptr;
        core::mem::forget(self);
        // SAFETY: The range is alive while the tree owns its count.
        unsafe { UnsafeRef::from_raw(ptr.as_ptr()) }
    }

    /// Takes back the count the tree owned.
    ///
    /// # Safety
    ///
    /// `r` was produced by [`RangeRef::into_tree`] and has been unlinked from the tree.
    pub(crate) unsafe fn from_tree(r: UnsafeRef<Range<D>>) -> Self {
        let ptr = UnsafeRef::into_raw(r);
        // INVARIANT: the tree's count passes to the new reference.
        RangeRef {
            // SAFETY: `UnsafeRef` pointers are non-null.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
        }
    }
}

impl<D: SvmDriver> core::ops::Deref for RangeRef<D> {
    type Target = Range<D>;
    fn deref(&self) -> &Range<D> {
        // SAFETY: By the type invariant we own a count, so the range is alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl<D: SvmDriver> Clone for RangeRef<D> {
    fn clone(&self) -> Self {
        self.get()
    }
}

impl<D: SvmDriver> Drop for RangeRef<D> {
    fn drop(&mut self) {
        if self.refcount.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let alloc = self.alloc.clone();
        // SAFETY: This was the last count: the range is unlinked from every list (the tree and
        // the GC list each hold a count or are emptied by `range_remove`), it was allocated by
        // `KBox` with a clone of `alloc`, and nothing else refers to it.
        drop(unsafe { KBox::from_raw(self.ptr, alloc) });
    }
}

impl<D: SvmDriver> core::fmt::Debug for RangeRef<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Range[{:#x}, {:#x}) {:?}",
            self.start(),
            self.end(),
            self.flags()
        )
    }
}
