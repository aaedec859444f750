//! Flag words of pages and ranges, published whole.
//!
//! Upstream overlays its flag bitfields with a `u16 __flags` so the whole word is read with one
//! `READ_ONCE` and written with one `WRITE_ONCE` (brief §1.5, §4.1). Writers hold the notifier
//! lock; lock-free readers use the word only as a hint ("opportunistic" checks, e.g. the GPU fault
//! fast path), and authoritative checks happen under the lock.
//!
//! Here each word is one atomic: writers compute the new word and store it with `Release`,
//! readers load it with `Acquire`, so a reader sees either the old or the new combination, never
//! a mixture. [`PagesFlags::is_consistent`] states which combinations are possible (loom model
//! 2 checks that no reader observes another).

use crate::sync::{AtomicU16, Ordering};

bitflags::bitflags! {
    /// State of a pages object (`drm_gpusvm_pages_flags`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PagesFlags: u16 {
        /// The span was unmapped from the CPU; terminal: `get_pages` returns `EFAULT`.
        const UNMAPPED = 1 << 0;
        /// At least one mapped page is device memory; implies `HAS_DMA_MAPPING`.
        const HAS_DEVMEM_PAGES = 1 << 1;
        /// The DMA mappings are current.
        const HAS_DMA_MAPPING = 1 << 2;
        /// Some live DMA entries are holes (a partial unmap in split mode): the rest of the
        /// mapping stays valid for the split, but nothing may be committed from it until the
        /// garbage collector has split the range. Implies `HAS_DMA_MAPPING`.
        const HOLES = 1 << 3;
    }
}

impl PagesFlags {
    /// Whether the pages are valid for a commit (upstream `pages_valid`).
    #[inline]
    pub fn is_valid(self) -> bool {
        self.intersects(PagesFlags::HAS_DMA_MAPPING | PagesFlags::HAS_DEVMEM_PAGES)
    }

    /// Whether this combination can exist (invariant 2 of brief §4.1: device pages are a kind of
    /// DMA mapping; so are holes).
    #[inline]
    pub fn is_consistent(self) -> bool {
        !self.intersects(PagesFlags::HAS_DEVMEM_PAGES | PagesFlags::HOLES)
            || self.contains(PagesFlags::HAS_DMA_MAPPING)
    }
}

bitflags::bitflags! {
    /// State of a range (`drm_gpusvm_range_flags`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct RangeFlags: u16 {
        /// Device memory may back this range (set at creation).
        const MIGRATE_DEVMEM = 1 << 0;
        /// An UNMAP invalidation hit the range; it waits for the garbage collector.
        const UNMAPPED = 1 << 1;
        /// The UNMAP covered only part of the range.
        const PARTIAL_UNMAP = 1 << 2;
        /// Removed from its notifier; no longer findable.
        const REMOVED = 1 << 3;
        /// An `Unmap` removed part of the range; the garbage collector splits off the rest
        /// ([`crate::Svm::split_range`]). Faults get `EAGAIN` meanwhile.
        const SPLIT_PENDING = 1 << 4;
    }
}

/// An atomically published flag word.
///
/// # Invariants
///
/// Writers hold the notifier lock (or own the object exclusively), so read-modify-write
/// sequences do not race with each other; readers never see a partially written word.
pub(crate) struct FlagWord(AtomicU16);

impl FlagWord {
    pub(crate) fn new(bits: u16) -> Self {
        Self(AtomicU16::new(bits))
    }

    /// The current word (`READ_ONCE`).
    #[inline]
    pub(crate) fn load(&self) -> u16 {
        self.0.load(Ordering::Acquire)
    }

    /// Publishes a whole new word (`WRITE_ONCE`). Callers hold the notifier lock.
    #[inline]
    pub(crate) fn publish(&self, bits: u16) {
        self.0.store(bits, Ordering::Release);
    }

    /// Sets bits with one atomic operation. Used where writers may not be serialized by the
    /// notifier lock alone (range removal bookkeeping).
    #[inline]
    pub(crate) fn set(&self, bits: u16) {
        self.0.fetch_or(bits, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_and_consistency() {
        assert!(!PagesFlags::empty().is_valid());
        assert!(PagesFlags::HAS_DMA_MAPPING.is_valid());
        assert!((PagesFlags::HAS_DMA_MAPPING | PagesFlags::HAS_DEVMEM_PAGES).is_valid());
        assert!(!PagesFlags::UNMAPPED.is_valid());
        assert!(!PagesFlags::HAS_DEVMEM_PAGES.is_consistent());
        assert!((PagesFlags::HAS_DEVMEM_PAGES | PagesFlags::HAS_DMA_MAPPING).is_consistent());
        assert!((PagesFlags::UNMAPPED | PagesFlags::HAS_DMA_MAPPING).is_consistent());
        assert!(!PagesFlags::HOLES.is_consistent());
        assert!((PagesFlags::HOLES | PagesFlags::HAS_DMA_MAPPING).is_consistent());
    }
}
