//! Address arithmetic that cannot overflow, and the page size.
//!
//! Every address the core computes with may be near `u64::MAX` (fault addresses come from a GPU,
//! spans from user space), so alignment and span arithmetic here is checked: a computation that
//! would wrap yields `None` or `ERANGE` instead of a wrong address. Upstream's `ALIGN` macros wrap
//! silently at the top of the address space.

use crate::error::{code, Result};

/// `addr` rounded down to a multiple of `size`, which must be a power of two.
#[inline]
pub fn align_down(addr: u64, size: u64) -> u64 {
    addr & !size.wrapping_sub(1)
}

/// `addr` rounded up to a multiple of `size` (a power of two), or `None` past `u64::MAX`.
#[inline]
pub fn align_up(addr: u64, size: u64) -> Option<u64> {
    let mask = size.checked_sub(1)?;
    Some(addr.checked_add(mask)? & !mask)
}

/// Whether `addr` is a multiple of `size` (a power of two).
#[inline]
pub fn is_aligned(addr: u64, size: u64) -> bool {
    addr & size.wrapping_sub(1) == 0
}

/// A non-empty half-open address span `[start, end)`.
///
/// # Invariants
///
/// `start < end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    start: u64,
    end: u64,
}

impl Span {
    /// The span `[start, end)`.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the span is empty or reversed.
    pub fn new(start: u64, end: u64) -> Result<Self> {
        if start < end {
            // INVARIANT: checked just above.
            Ok(Self { start, end })
        } else {
            Err(code::EINVAL)
        }
    }

    /// The span `[start, start + len)`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a zero length, `ERANGE` if the end does not fit in 64 bits.
    pub fn from_len(start: u64, len: u64) -> Result<Self> {
        let end = start.checked_add(len).ok_or(code::ERANGE)?;
        Self::new(start, end)
    }

    /// First address.
    #[inline]
    pub fn start(&self) -> u64 {
        self.start
    }

    /// One past the last address.
    #[inline]
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Length in bytes (never zero).
    #[inline]
    pub fn len(&self) -> u64 {
        // By the type invariant `start < end`, so this cannot underflow.
        self.end - self.start
    }

    /// Always false: spans are non-empty by construction.
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `addr` lies in the span.
    #[inline]
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether `other` lies entirely inside `self`.
    #[inline]
    pub fn covers(&self, other: &Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Whether the two spans share at least one address.
    #[inline]
    pub fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The common part of two spans, if any.
    pub fn intersect(&self, other: &Span) -> Option<Span> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        Span::new(start, end).ok()
    }
}

/// The base page size, as a shift (`PAGE_SHIFT`).
///
/// Upstream hard-codes 4 KiB in places (`SZ_4K` as "one page", brief §9 item 16); the core takes
/// the page size as a parameter so that 16 KiB and 64 KiB kernels work.
///
/// # Invariants
///
/// `12 <= shift <= 21` (4 KiB to 2 MiB pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageShift(u32);

impl PageShift {
    /// 4 KiB pages.
    pub const SZ_4K: PageShift = PageShift(12);

    /// Validates a page shift.
    ///
    /// # Errors
    ///
    /// `EINVAL` outside 4 KiB ..= 2 MiB.
    pub fn new(shift: u32) -> Result<Self> {
        if (12..=21).contains(&shift) {
            // INVARIANT: checked just above.
            Ok(Self(shift))
        } else {
            Err(code::EINVAL)
        }
    }

    /// The shift.
    #[inline]
    pub fn shift(self) -> u32 {
        self.0
    }

    /// The page size in bytes.
    #[inline]
    pub fn size(self) -> u64 {
        1u64 << self.0
    }

    /// Number of pages in `len` bytes (rounded down).
    #[inline]
    pub fn pages(self, len: u64) -> u64 {
        len >> self.0
    }

    /// The page frame number of an address.
    #[inline]
    pub fn pfn(self, addr: u64) -> u64 {
        addr >> self.0
    }

    /// Bytes in `1 << order` pages, or `None` if that overflows.
    #[inline]
    pub fn order_bytes(self, order: u32) -> Option<u64> {
        let shift = self.0.checked_add(order)?;
        1u64.checked_shl(shift).filter(|_| shift < 64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_at_the_top_of_the_address_space() {
        assert_eq!(align_down(u64::MAX, 1 << 21), u64::MAX - ((1 << 21) - 1));
        assert_eq!(align_up(u64::MAX, 4096), None);
        assert_eq!(align_up(u64::MAX - 4095, 4096), Some(u64::MAX - 4095));
        assert_eq!(align_up(5, 0), None);
        assert!(is_aligned(0x20_0000, 0x20_0000));
        assert!(!is_aligned(0x20_1000, 0x20_0000));
    }

    #[test]
    fn spans_reject_empty_and_overflowing_input() {
        assert_eq!(Span::new(5, 5), Err(code::EINVAL));
        assert_eq!(Span::new(6, 5), Err(code::EINVAL));
        assert_eq!(Span::from_len(u64::MAX, 1), Err(code::ERANGE));
        assert_eq!(Span::from_len(1, 0), Err(code::EINVAL));
        let a = Span::new(0x1000, 0x3000).unwrap();
        let b = Span::new(0x2000, 0x4000).unwrap();
        assert_eq!(a.intersect(&b), Some(Span::new(0x2000, 0x3000).unwrap()));
        assert!(a.overlaps(&b));
        assert!(!a.covers(&b));
        assert_eq!(a.len(), 0x2000);
        let c = Span::new(0x3000, 0x4000).unwrap();
        assert!(!a.overlaps(&c));
        assert_eq!(a.intersect(&c), None);
    }

    #[test]
    fn page_shift_bounds() {
        assert!(PageShift::new(11).is_err());
        assert!(PageShift::new(22).is_err());
        let p = PageShift::new(14).unwrap();
        assert_eq!(p.size(), 16384);
        assert_eq!(p.order_bytes(3), Some(16384 * 8));
        assert_eq!(p.order_bytes(60), None);
    }
}
