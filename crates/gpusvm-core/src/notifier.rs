//! Notifiers: `notifier_size`-aligned windows, each with an MMU interval notifier and a tree of
//! ranges (`struct drm_gpusvm_notifier`, brief §1.3, §4.3, §5.2).
//!
//! A notifier is created on demand by `find_or_insert` for the aligned window around a fault and
//! removed when its last range goes. Its ranges sit in an intrusive red-black tree keyed by start
//! address. Ranges never overlap, so "ranges intersecting `[s, e)`" is a floor lookup (the last
//! range starting at or before `s`; it intersects iff it ends after `s`) followed by an in-order
//! walk while `start < e`: O(log n + k) without an augmented interval tree.
//!
//! The notifier is also the [`Subscriber`] the mm calls on invalidation: it takes the notifier
//! lock for writing (or tries to, for a non-blockable invalidation), records the sequence number
//! and hands the event to the driver's invalidate op.

use core::cell::Cell;
use core::ptr::NonNull;

use intrusive_collections::{intrusive_adapter, Bound, KeyAdapter, RBTree, RBTreeLink, UnsafeRef};

use crate::addr::Span;
use crate::driver::SvmDriver;
use crate::invalidate::Invalidation;
use crate::lock::WriteGuard;
use crate::mm::{IntervalNotifier, MmNotifier, MmuRange, Subscriber};
use crate::range::{Range, RangeTreeAdapter};
use crate::svm::SvmShared;
use crate::sync::UnsafeCell;

/// One notifier window.
///
/// # Invariants
///
/// - `span` is `notifier_size`-aligned and never changes.
/// - `ranges` holds non-overlapping ranges inside `span`, each owning one tree count. It is
///   modified only with the driver lock and the notifier lock held for reading, and read with the
///   driver lock or the notifier lock held for writing (see [`Range`]).
/// - `shared` outlives the notifier: the `Svm` frees its shared state only after freeing every
///   notifier, and a notifier is freed only after its MMU notifier is removed.
/// - `registered` and `link` change only under the driver lock.
pub struct Notifier<D: SvmDriver> {
    span: Span,
    pub(crate) link: RBTreeLink,
    ranges: UnsafeCell<RBTree<RangeTreeAdapter<D>>>,
    mm_notifier: MmNotifier<D::Mm>,
    shared: NonNull<SvmShared<D>>,
    registered: Cell<bool>,
}

// SAFETY: Shared fields are immutable, backend objects that are `Send + Sync`, or accessed under
// the locking discipline of the type invariants.
unsafe impl<D: SvmDriver> Sync for Notifier<D> {}
// SAFETY: As above.
unsafe impl<D: SvmDriver> Send for Notifier<D> {}

intrusive_adapter!(pub(crate) NotifierTreeAdapter<D> = UnsafeRef<Notifier<D>>: Notifier<D> { link => RBTreeLink } where D: SvmDriver);

impl<'a, D: SvmDriver> KeyAdapter<'a> for NotifierTreeAdapter<D> {
    type Key = u64;
    fn get_key(&self, n: &'a Notifier<D>) -> u64 {
        n.span.start()
    }
}

impl<D: SvmDriver> Notifier<D> {
    pub(crate) fn new(span: Span, shared: NonNull<SvmShared<D>>) -> Self {
        // INVARIANT: no ranges; not registered; `shared` is the owning Svm's state.
        Self {
            span,
            link: RBTreeLink::new(),
            ranges: UnsafeCell::new(RBTree::new(RangeTreeAdapter::new())),
            mm_notifier: <MmNotifier<D::Mm> as IntervalNotifier>::new(),
            shared,
            registered: Cell::new(false),
        }
    }

    /// First address of the window (`drm_gpusvm_notifier_start`).
    pub fn start(&self) -> u64 {
        self.span.start()
    }

    /// One past the last address (`drm_gpusvm_notifier_end`).
    pub fn end(&self) -> u64 {
        self.span.end()
    }

    /// The window.
    pub fn span(&self) -> Span {
        self.span
    }

    /// The MMU interval notifier (for its sequence number).
    pub fn mm_notifier(&self) -> &MmNotifier<D::Mm> {
        &self.mm_notifier
    }

    /// Registers the MMU interval notifier for the window.
    ///
    /// # Safety
    ///
    /// `self` is at its final address (allocated, never moved) and is freed only after
    /// [`Notifier::unregister`]. The caller holds the driver lock and not the mmap lock.
    pub(crate) unsafe fn register(&self, mm: &D::Mm) -> crate::Result {
        let subscriber: &dyn Subscriber = self;
        // SAFETY: `self` does not move and outlives the registration (caller's guarantee).
        unsafe {
            self.mm_notifier.insert(
                mm,
                self.span.start(),
                self.span.len(),
                NonNull::from(subscriber),
            )?
        };
        self.registered.set(true);
        Ok(())
    }

    /// Unregisters the MMU interval notifier if registered (waits for running callbacks).
    ///
    /// # Safety
    ///
    /// The caller holds the driver lock and is not inside a callback of this notifier.
    pub(crate) unsafe fn unregister(&self) {
        if self.registered.replace(false) {
            // SAFETY: Registered (checked above); the caller is not in a callback.
            unsafe { self.mm_notifier.remove() };
        }
    }

    /// The range tree, for reading.
    ///
    /// # Safety
    ///
    /// The caller holds the driver lock or the notifier lock for writing, for the lifetime of
    /// the returned reference.
    pub(crate) unsafe fn ranges(&self) -> &RBTree<RangeTreeAdapter<D>> {
        // SAFETY: The caller's lock excludes every writer of the tree.
        self.ranges.with(|p| unsafe { &*p })
    }

    /// The range tree, for modification.
    ///
    /// # Safety
    ///
    /// The caller holds the driver lock and the notifier lock (for reading or writing), and
    /// holds no other reference into the tree.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn ranges_mut(&self) -> &mut RBTree<RangeTreeAdapter<D>> {
        // SAFETY: The two locks exclude every other reader and writer of the tree.
        self.ranges.with_mut(|p| unsafe { &mut *p })
    }

    /// Whether the notifier has no ranges.
    ///
    /// # Safety
    ///
    /// As for [`Notifier::ranges`].
    pub(crate) unsafe fn is_empty(&self) -> bool {
        // SAFETY: Forwarded from the caller.
        unsafe { self.ranges() }.is_empty()
    }

    /// Ranges intersecting `span`, in address order.
    ///
    /// # Safety
    ///
    /// As for [`Notifier::ranges`].
    pub(crate) unsafe fn ranges_in(&self, span: Span) -> RangeIter<'_, D> {
        // SAFETY: Forwarded from the caller.
        let tree = unsafe { self.ranges() };
        // Floor: the last range starting at or before `span.start`.
        let mut cursor = tree.upper_bound(Bound::Included(&span.start()));
        match cursor.get() {
            Some(r) if r.end() > span.start() => {}
            Some(_) => cursor.move_next(),
            None => cursor = tree.lower_bound(Bound::Included(&span.start())),
        }
        RangeIter {
            cursor,
            end: span.end(),
        }
    }

    /// The range containing `addr`, if any.
    ///
    /// # Safety
    ///
    /// As for [`Notifier::ranges`].
    pub(crate) unsafe fn range_at(&self, addr: u64) -> Option<&Range<D>> {
        // SAFETY: Forwarded from the caller.
        let tree = unsafe { self.ranges() };
        tree.upper_bound(Bound::Included(&addr))
            .get()
            .filter(|r| r.span().contains(addr))
    }

    fn shared(&self) -> &SvmShared<D> {
        // SAFETY: By the type invariants the shared state outlives the notifier.
        unsafe { self.shared.as_ref() }
    }
}

/// Iterator over the ranges of one notifier intersecting a span.
pub struct RangeIter<'a, D: SvmDriver> {
    cursor: intrusive_collections::rbtree::Cursor<'a, RangeTreeAdapter<D>>,
    end: u64,
}

impl<'a, D: SvmDriver> Iterator for RangeIter<'a, D> {
    type Item = &'a Range<D>;
    fn next(&mut self) -> Option<&'a Range<D>> {
        let r = self.cursor.get()?;
        if r.start() >= self.end {
            return None;
        }
        self.cursor.move_next();
        Some(r)
    }
}

impl<D: SvmDriver> Subscriber for Notifier<D> {
    /// `drm_gpusvm_notifier_invalidate`.
    fn invalidate(&self, range: &MmuRange, cur_seq: u64) -> bool {
        let shared = self.shared();
        let guard = if range.blockable {
            WriteGuard::lock(shared.lock())
        } else {
            // Best effort without sleeping: upstream refuses every non-blockable invalidation.
            match WriteGuard::try_lock(shared.lock()) {
                Some(g) => g,
                None => return false,
            }
        };
        self.mm_notifier.set_seq(cur_seq);
        let inv = Invalidation::new(guard, shared, self, *range);
        let ok = shared.driver().invalidate(&inv);
        drop(inv);
        ok
    }
}

impl<D: SvmDriver> core::fmt::Debug for Notifier<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Notifier[{:#x}, {:#x})", self.start(), self.end())
    }
}
