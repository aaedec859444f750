//! Notifiers: `notifier_size`-aligned windows, each with an MMU interval notifier and a tree of
//! ranges (`struct drm_gpusvm_notifier`, brief §1.3, §4.3, §5.2).
//!
//! A notifier is created on demand by `find_or_insert` for the aligned window around a fault and
//! removed when its last range goes.
//!
//! # The range index: a flat level of blocks, then red-black trees
//!
//! The window is cut into at most [`NOTIFIER_BLOCKS`] aligned blocks of
//! `max(window / NOTIFIER_BLOCKS, page)` bytes (64 KiB for a 512 MiB window), and each block has
//! its own intrusive red-black tree of the ranges *starting* in it, keyed by start address. The
//! array of tree roots is allocated with the notifier (8 bytes per block). A point lookup is an
//! array index and a walk of one small tree: with a million 4 KiB ranges, a few levels instead
//! of the ~20 of one tree per notifier, which is what brings a fault-hit lookup under a
//! `BTreeMap` floor lookup (`docs/PERFORMANCE.md`).
//!
//! A range may reach past the end of its block (a 2 MiB range starts in one 64 KiB block and
//! covers 31 more). Ranges never overlap, so the range containing `addr`, if any, is the *floor*
//! of `addr` — the last range starting at or before it — and that floor is the last range of the
//! nearest non-empty block at or before `addr`'s (in `addr`'s own block: the last one starting
//! at or before `addr`). A range is at most the largest chunk, so the floor search looks back
//! over at most `largest chunk / block` blocks: an empty block costs one 8-byte read. "Ranges
//! intersecting `[s, e)`" is the floor of `s` (if it reaches past `s`) followed by an in-order
//! walk across the blocks up to `e`: `O(log per-block + k + blocks spanned)`, no augmented
//! interval tree.
//!
//! The notifier is also the [`Subscriber`] the mm calls on invalidation: it takes the notifier
//! lock for writing (or tries to, for a non-blockable invalidation), records the sequence number
//! and hands the event to the driver's invalidate op.

use core::cell::Cell;
use core::ptr::NonNull;

use intrusive_collections::rbtree::Cursor;
use intrusive_collections::{intrusive_adapter, Bound, KeyAdapter, RBTree, RBTreeLink, UnsafeRef};

use crate::addr::Span;
use crate::allocator::KArray;
use crate::driver::SvmDriver;
use crate::error::code;
use crate::invalidate::Invalidation;
use crate::lock::WriteGuard;
use crate::mm::{IntervalNotifier, MmNotifier, MmuRange, Subscriber};
use crate::range::{Range, RangeTreeAdapter};
use crate::svm::SvmShared;
use crate::sync::UnsafeCell;

/// Maximum number of blocks (range trees) of a notifier window: the flat level of the range
/// index (see the module docs).
pub const NOTIFIER_BLOCKS: usize = 8192;

type Tree<D> = RBTree<RangeTreeAdapter<D>>;
type Blocks<D> = KArray<Tree<D>, <D as SvmDriver>::Alloc>;

/// One notifier window.
///
/// # Invariants
///
/// - `span` is `notifier_size`-aligned and never changes; so do `block_shift` and
///   `lookback`; `ranges` has exactly `span.len() >> block_shift` (at most [`NOTIFIER_BLOCKS`])
///   trees.
/// - `ranges[b]` holds the ranges that start in block `b` of `span` (the addresses whose offset
///   in the window, shifted right by `block_shift`, is `b`), each owning one tree count; all the
///   ranges of all blocks lie inside `span` and never overlap, and a range starting in block
///   `b` ends at or before the end of block `b + lookback`. `len` is their number. The trees and
///   `len` are modified only with the
///   driver lock and the notifier lock held for reading, and read with the driver lock or the
///   notifier lock held for writing (see [`Range`]).
/// - `shared` outlives the notifier: the `Svm` frees its shared state only after freeing every
///   notifier, and a notifier is freed only after its MMU notifier is removed.
/// - `registered` and `link` change only under the driver lock.
pub struct Notifier<D: SvmDriver> {
    span: Span,
    block_shift: u32,
    lookback: usize,
    len: Cell<usize>,
    pub(crate) link: RBTreeLink,
    ranges: UnsafeCell<Blocks<D>>,
    mm_notifier: MmNotifier<D::Mm>,
    shared: NonNull<SvmShared<D>>,
    registered: Cell<bool>,
    data: D::NotifierData,
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
    /// A notifier for the window `span` (a power of two), whose ranges are at most `max_chunk`
    /// bytes; blocks are never smaller than `min_block` (the page size). Allocates the block
    /// array from `alloc` (before any lock is taken: `find_or_insert` creates notifiers outside
    /// the notifier lock).
    ///
    /// # Errors
    ///
    /// The allocator's error.
    pub(crate) fn new(
        span: Span,
        max_chunk: u64,
        min_block: u64,
        shared: NonNull<SvmShared<D>>,
        alloc: D::Alloc,
        data: D::NotifierData,
    ) -> crate::Result<Self> {
        let len_shift = span.len().trailing_zeros();
        let block_shift = len_shift
            .saturating_sub(NOTIFIER_BLOCKS.trailing_zeros())
            .max(min_block.trailing_zeros())
            .min(len_shift);
        let nblocks = usize::try_from(span.len() >> block_shift).map_err(|_| code::ENOMEM)?;
        // A range of at most `max_chunk` bytes starting in block `b` ends in block
        // `b + lookback` at the latest.
        let lookback = usize::try_from(max_chunk.saturating_sub(1) >> block_shift)
            .unwrap_or(usize::MAX)
            .min(nblocks);
        let ranges = KArray::try_new_with(nblocks, || RBTree::new(RangeTreeAdapter::new()), alloc)?;
        // INVARIANT: no ranges; not registered; `shared` is the owning Svm's state; `nblocks`
        // trees, at most `NOTIFIER_BLOCKS` by the choice of `block_shift`.
        Ok(Self {
            span,
            block_shift,
            lookback,
            len: Cell::new(0),
            link: RBTreeLink::new(),
            ranges: UnsafeCell::new(ranges),
            mm_notifier: <MmNotifier<D::Mm> as IntervalNotifier>::new(),
            shared,
            registered: Cell::new(false),
            data,
        })
    }

    /// The driver's payload ([`SvmDriver::notifier_data`]).
    pub fn data(&self) -> &D::NotifierData {
        &self.data
    }

    fn driver(&self) -> &D {
        // SAFETY: `shared` outlives the notifier (type invariants).
        unsafe { self.shared.as_ref() }.driver()
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

    /// The block trees, for reading.
    ///
    /// # Safety
    ///
    /// The caller holds the driver lock or the notifier lock for writing, for the lifetime of
    /// the returned reference.
    unsafe fn blocks(&self) -> &[Tree<D>] {
        // SAFETY: The caller's lock excludes every writer of the trees.
        self.ranges.with(|p| unsafe { &**p })
    }

    /// The block containing `addr`, if `addr` is in the window.
    #[inline]
    fn block_of(&self, addr: u64) -> Option<usize> {
        let offset = addr.checked_sub(self.span.start())?;
        if offset >= self.span.len() {
            return None;
        }
        usize::try_from(offset >> self.block_shift).ok()
    }

    /// The tree of the block of `addr`, for modification.
    ///
    /// # Safety
    ///
    /// The caller holds the driver lock and the notifier lock (for reading or writing), and
    /// holds no other reference into the trees.
    #[allow(clippy::mut_from_ref)]
    unsafe fn tree_mut(&self, addr: u64) -> Option<&mut Tree<D>> {
        let block = self.block_of(addr)?;
        // SAFETY: The two locks exclude every other reader and writer of the trees.
        self.ranges.with_mut(|p| unsafe { (**p).get_mut(block) })
    }

    /// Links `range` (its tree reference) into the index.
    ///
    /// # Errors
    ///
    /// Hands the reference back if the range is not inside the window.
    ///
    /// # Safety
    ///
    /// As for [`Notifier::tree_mut`]; `range` overlaps no range of the notifier, is at most the
    /// largest chunk, and is linked in no tree.
    pub(crate) unsafe fn link_range(
        &self,
        range: UnsafeRef<Range<D>>,
    ) -> Result<(), UnsafeRef<Range<D>>> {
        if !self.span.covers(&range.span()) {
            return Err(range);
        }
        // SAFETY: Forwarded from the caller.
        let Some(tree) = (unsafe { self.tree_mut(range.start()) }) else {
            return Err(range);
        };
        let linked = NonNull::from(&*range);
        tree.insert(range);
        // INVARIANT: one more range in the trees.
        self.len.set(self.len.get().saturating_add(1));
        // SAFETY: The tree now holds a reference, so the range is alive.
        self.driver().range_linked(self, unsafe { linked.as_ref() });
        Ok(())
    }

    /// Unlinks `range` from the index and returns its tree reference (`None` if it was not
    /// linked here).
    ///
    /// # Safety
    ///
    /// As for [`Notifier::tree_mut`]; `range` is linked in this notifier's index or in none.
    pub(crate) unsafe fn unlink_range(&self, range: &Range<D>) -> Option<UnsafeRef<Range<D>>> {
        // SAFETY: Forwarded from the caller.
        let tree = unsafe { self.tree_mut(range.start()) }?;
        // SAFETY: The range is linked in the tree of the block of its start, if anywhere here.
        let removed = unsafe { tree.cursor_mut_from_ptr(range) }.remove();
        if removed.is_some() {
            // INVARIANT: one range fewer in the trees.
            self.len.set(self.len.get().saturating_sub(1));
            self.driver().range_unlinked(self, range);
        }
        removed
    }

    /// Whether the notifier has no ranges.
    ///
    /// # Safety
    ///
    /// As for [`Notifier::blocks`].
    pub(crate) unsafe fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    /// The range with the lowest start in block `*from` or later, if any; moves `*from` to its
    /// block. Teardown calls it repeatedly while removing what it returns, so resuming at
    /// `*from` keeps the whole teardown `O(blocks + ranges)` instead of rescanning the block
    /// array for every range.
    ///
    /// # Safety
    ///
    /// As for [`Notifier::blocks`].
    pub(crate) unsafe fn first_range_from(&self, from: &mut usize) -> Option<&Range<D>> {
        if self.len.get() == 0 {
            return None;
        }
        // SAFETY: Forwarded from the caller.
        let blocks = unsafe { self.blocks() };
        while let Some(tree) = blocks.get(*from) {
            if let Some(r) = tree.front().get() {
                return Some(r);
            }
            *from = from.saturating_add(1);
        }
        None
    }

    /// The floor of `addr` — the last range starting at or before it — as a cursor in its
    /// block's tree, with that block's index; `None` if no range starts in the `lookback`
    /// blocks before `addr`'s or at or before `addr` in its own (then no range contains `addr`).
    fn floor<'a>(
        &self,
        blocks: &'a [Tree<D>],
        addr: u64,
    ) -> Option<(usize, Cursor<'a, RangeTreeAdapter<D>>)> {
        let own = self.block_of(addr)?;
        let tree = blocks.get(own)?;
        let cursor = tree.upper_bound(Bound::Included(&addr));
        if cursor.get().is_some() {
            return Some((own, cursor));
        }
        // Nothing in `addr`'s block starts at or before it: the floor is the last range of the
        // nearest non-empty block before, if that is close enough to reach `addr`.
        let first = own.saturating_sub(self.lookback);
        let before = blocks.get(first..own)?;
        before
            .iter()
            .rposition(|t| !t.is_empty())
            .and_then(|i| Some((first + i, before.get(i)?.back())))
    }

    /// The first range intersecting `span` (`drm_gpusvm_range_find` on this notifier), for a
    /// caller that can prove the locking rule but not hold the [`crate::Svm`]: the C ABI, whose
    /// callers walk a notifier's ranges from inside the invalidate op or under their driver lock
    /// while another thread may hold the instance for a structural change of *other* notifiers.
    ///
    /// # Safety
    ///
    /// The caller holds the instance's driver lock or its notifier lock for writing (the rule
    /// under which this notifier's index may be read), for as long as it uses the result.
    pub unsafe fn range_find(&self, span: Span) -> Option<&Range<D>> {
        // SAFETY: Forwarded from the caller.
        unsafe { self.ranges_in(span) }.next()
    }

    /// Ranges intersecting `span`, in address order.
    ///
    /// # Safety
    ///
    /// As for [`Notifier::blocks`].
    pub(crate) unsafe fn ranges_in(&self, span: Span) -> RangeIter<'_, D> {
        // SAFETY: Forwarded from the caller.
        let blocks = unsafe { self.blocks() };
        let empty = RangeIter {
            cursor: None,
            rest: &[],
            end: 0,
        };
        let Some(span) = span.intersect(&self.span) else {
            return empty;
        };
        let (Some(own), Some(last)) = (
            self.block_of(span.start()),
            self.block_of(span.end().saturating_sub(1)),
        ) else {
            return empty;
        };
        // Start at the floor of `span.start` if it reaches into the span, else at the first
        // range starting after it (in its block, or in the blocks after: the iterator moves on).
        let (first, cursor) = match self.floor(blocks, span.start()) {
            Some((b, c)) if c.get().is_some_and(|r| r.end() > span.start()) => (b, c),
            Some((b, mut c)) if b == own => {
                c.move_next();
                (b, c)
            }
            _ => match blocks.get(own) {
                Some(tree) => (own, tree.lower_bound(Bound::Included(&span.start()))),
                None => return empty,
            },
        };
        RangeIter {
            cursor: Some(cursor),
            rest: blocks
                .get(first.saturating_add(1)..=last)
                .unwrap_or_default(),
            end: span.end(),
        }
    }

    /// The range containing `addr`, if any.
    ///
    /// # Safety
    ///
    /// As for [`Notifier::blocks`].
    #[inline]
    pub(crate) unsafe fn range_at(&self, addr: u64) -> Option<&Range<D>> {
        // SAFETY: Forwarded from the caller.
        let blocks = unsafe { self.blocks() };
        let (_, cursor) = self.floor(blocks, addr)?;
        cursor.get().filter(|r| r.span().contains(addr))
    }

    fn shared(&self) -> &SvmShared<D> {
        // SAFETY: By the type invariants the shared state outlives the notifier.
        unsafe { self.shared.as_ref() }
    }
}

/// Iterator over the ranges of one notifier intersecting a span.
pub struct RangeIter<'a, D: SvmDriver> {
    /// Position in the current block's tree; `None` for an empty iteration.
    cursor: Option<Cursor<'a, RangeTreeAdapter<D>>>,
    /// The trees of the blocks after the current one that the span reaches.
    rest: &'a [RBTree<RangeTreeAdapter<D>>],
    end: u64,
}

impl<'a, D: SvmDriver> Iterator for RangeIter<'a, D> {
    type Item = &'a Range<D>;
    fn next(&mut self) -> Option<&'a Range<D>> {
        loop {
            let cursor = self.cursor.as_mut()?;
            if let Some(r) = cursor.get() {
                if r.start() >= self.end {
                    return None;
                }
                cursor.move_next();
                return Some(r);
            }
            // This block is done: continue at the front of the next one.
            let (next, rest) = self.rest.split_first()?;
            self.rest = rest;
            *cursor = next.front();
        }
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
