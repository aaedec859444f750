//! The invalidation context handed to the driver's invalidate op.
//!
//! C source: [`drivers/gpu/drm/drm_gpusvm.c`] (`drm_gpusvm_notifier_invalidate`,
//! `drm_gpusvm_range_unmap_pages` with `ctx.in_notifier`, `drm_gpusvm_range_set_unmapped`;
//! brief §5.2).
//!
//! An [`Invalidation`] owns the notifier lock held for writing. It is the type-level form of
//! upstream's `in_notifier` flag and of the rule that nothing in the invalidation path may
//! allocate: every method here works in place — unmapping DMA entries, publishing flag words,
//! linking a range on the garbage-collector list (an intrusive list, so queuing needs no
//! memory). `tests::invalidation_does_not_allocate` checks that the whole path makes zero
//! allocator calls.

use crate::addr::Span;
use crate::driver::SvmDriver;
use crate::flags::RangeFlags;
use crate::lock::WriteGuard;
use crate::mm::{MmuEvent, MmuRange, Owner};
use crate::notifier::{Notifier, RangeIter};
use crate::pages::SvmPages;
use crate::range::Range;
use crate::svm::SvmShared;

/// One invalidation, with the notifier lock held for writing.
pub struct Invalidation<'a, D: SvmDriver> {
    guard: WriteGuard<'a, D::Lock>,
    shared: &'a SvmShared<D>,
    notifier: &'a Notifier<D>,
    range: MmuRange,
}

impl<'a, D: SvmDriver> Invalidation<'a, D> {
    pub(crate) fn new(
        guard: WriteGuard<'a, D::Lock>,
        shared: &'a SvmShared<D>,
        notifier: &'a Notifier<D>,
        range: MmuRange,
    ) -> Self {
        Self {
            guard,
            shared,
            notifier,
            range,
        }
    }

    /// First invalidated address.
    pub fn start(&self) -> u64 {
        self.range.start
    }

    /// One past the last invalidated address.
    pub fn end(&self) -> u64 {
        self.range.end
    }

    /// The invalidated span clipped to the notifier window (`None` if they do not meet, which a
    /// correct mm never reports).
    pub fn span(&self) -> Option<Span> {
        Span::new(self.range.start, self.range.end)
            .ok()
            .and_then(|s| s.intersect(&self.notifier.span()))
    }

    /// Why the invalidation happens.
    pub fn event(&self) -> MmuEvent {
        self.range.event
    }

    /// The owner of a `Migrate`/`Exclusive` event.
    pub fn owner(&self) -> Option<Owner> {
        self.range.owner
    }

    /// Whether the op may sleep.
    pub fn blockable(&self) -> bool {
        self.range.blockable
    }

    /// The raw notifier range.
    pub fn mmu_range(&self) -> &MmuRange {
        &self.range
    }

    /// The notifier being invalidated.
    pub fn notifier(&self) -> &Notifier<D> {
        self.notifier
    }

    /// The driver.
    pub fn driver(&self) -> &D {
        self.shared.driver()
    }

    /// The lock guard, for calls that need proof of the notifier lock.
    pub fn guard(&self) -> &WriteGuard<'a, D::Lock> {
        &self.guard
    }

    /// The ranges of this notifier intersecting the invalidated span, in address order.
    pub fn ranges(&self) -> RangeIter<'_, D> {
        let span = self.span().unwrap_or(self.notifier.span());
        // SAFETY: We hold the notifier lock for writing (`self.guard`).
        unsafe { self.notifier.ranges_in(span) }
    }

    /// Unmaps one pages object (`drm_gpusvm_unmap_pages` with `in_notifier`). The pages must
    /// belong to this `Svm` (a range of it, or a userptr using its lock).
    pub fn unmap_pages(&self, pages: &SvmPages<D>) {
        let mut st = pages.lock_state(&self.guard);
        pages.unmap_locked(&mut st);
    }

    /// Unmaps every pages object of `range` (`drm_gpusvm_range_unmap_pages` with `in_notifier`).
    pub fn unmap_range_pages(&self, range: &Range<D>) {
        D::for_each_pages(range.data(), &mut |p| self.unmap_pages(p));
    }

    /// The span of `range` whose mappings [`Invalidation::unmap_range`] takes away: the GPU
    /// must stop using it (zap its PTEs, flush its TLB) first. The whole range, except for a
    /// partial `Unmap` in split mode, where it is the extent of the entries overlapping the
    /// unmapped pages (a huge entry straddling the boundary reaches beyond them).
    pub fn zap_span(&self, range: &Range<D>) -> Span {
        let Some((first, end)) = self.partial_split(range) else {
            return range.span();
        };
        let page = self.shared.page_shift();
        let (mut lo, mut hi) = (first, end);
        D::for_each_pages(range.data(), &mut |p| {
            let mut st = p.lock_state(&self.guard);
            if let Some((a, b)) = p.overlap_extent(&mut st, first, end) {
                lo = lo.min(a);
                hi = hi.max(b);
            }
        });
        let to_addr = |pages: usize| {
            range
                .start()
                .saturating_add((pages as u64).saturating_mul(page.size()))
                .min(range.end())
        };
        Span::new(to_addr(lo), to_addr(hi)).unwrap_or(range.span())
    }

    /// For a partial `Unmap` in split mode: the unmapped pages of `range`, as page offsets.
    fn partial_split(&self, range: &Range<D>) -> Option<(usize, usize)> {
        if self.range.event != MmuEvent::Unmap || !self.shared.range_split() {
            return None;
        }
        if range.svm_id() != self.shared.id() {
            return None;
        }
        let covered = self.range.start <= range.start() && range.end() <= self.range.end;
        if covered {
            return None;
        }
        let page = self.shared.page_shift();
        let first = page.pages(self.range.start.saturating_sub(range.start()));
        let end = page.pages(
            self.range
                .end
                .min(range.end())
                .saturating_sub(range.start()),
        );
        Some((
            usize::try_from(first).unwrap_or(usize::MAX),
            usize::try_from(end).unwrap_or(usize::MAX),
        ))
    }

    /// Does what an invalidation requires of `range`, in one call:
    /// - for any event but `Unmap`: unmaps its pages (they refault on the next GPU access);
    /// - for an `Unmap` covering the whole range, or any `Unmap` when range splitting is off:
    ///   unmaps its pages and marks it unmapped ([`Invalidation::set_unmapped`]);
    /// - for an `Unmap` covering part of it with range splitting on
    ///   ([`crate::Svm::set_range_split`]): unmaps only the DMA entries of the unmapped pages
    ///   (leaving holes), marks the range [`RangeFlags::SPLIT_PENDING`] and queues it; the
    ///   surviving pages stay mapped and valid, and the garbage collector splits them off into
    ///   new ranges ([`crate::Svm::split_range`]).
    ///
    /// The driver zaps its GPU PTEs for [`Invalidation::zap_span`] first.
    pub fn unmap_range(&self, range: &Range<D>) {
        if self.range.event != MmuEvent::Unmap {
            self.unmap_range_pages(range);
            return;
        }
        let Some((first, end)) = self.partial_split(range) else {
            self.unmap_range_pages(range);
            self.set_unmapped(range);
            return;
        };
        D::for_each_pages(range.data(), &mut |p| {
            let mut st = p.lock_state(&self.guard);
            p.hole_pages(&mut st, first, end);
        });
        range
            .flag_word()
            .publish((range.flags() | RangeFlags::SPLIT_PENDING).bits());
        // SAFETY: As in `set_unmapped`: write lock held, range of this instance, in its tree.
        unsafe { self.shared.gc_push(range) };
    }

    /// Marks `range` unmapped (`drm_gpusvm_range_set_unmapped`): sets `UNMAPPED`, and
    /// `PARTIAL_UNMAP` if the invalidation does not cover the whole range; marks its pages
    /// unmapped; queues the range for the garbage collector ([`crate::Svm::take_unmapped`]).
    pub fn set_unmapped(&self, range: &Range<D>) {
        if range.svm_id() != self.shared.id() {
            return;
        }
        let mut flags = range.flags() | RangeFlags::UNMAPPED;
        if range.start() < self.range.start || range.end() > self.range.end {
            flags |= RangeFlags::PARTIAL_UNMAP;
        }
        range.flag_word().publish(flags.bits());
        D::for_each_pages(range.data(), &mut |p| p.mark_unmapped());
        // SAFETY: We hold the notifier lock for writing, and `range` belongs to this Svm and is
        // in its tree (it was reached through the tree while we hold the lock, or the caller
        // holds it otherwise alive; a removed range is never queued).
        unsafe { self.shared.gc_push(range) };
    }
}
