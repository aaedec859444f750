//! Range-size (chunk) selection, as a pure function (brief §3).
//!
//! C source: [`drivers/gpu/drm/drm_gpusvm.c`] (`drm_gpusvm_range_chunk_size`).
//!
//! # Algorithm
//!
//! Candidate sizes are tried largest first. A candidate `s` gives the span
//! `[align_down(fault, s), align_down(fault, s) + s)`; it is accepted when the span lies inside
//! the VMA, the notifier window and the GPU VA window, and then:
//! - a single-page candidate is accepted at once (the caller has already checked that no range
//!   contains the fault, so one page cannot overlap anything);
//! - otherwise it must not overlap an existing range, and if it is no larger than
//!   `check_pages_threshold`, every CPU page in it must already be present (upstream's "XXX"
//!   workaround against large ranges over untouched memory, brief §3.2 b).
//!
//! If no candidate is accepted there is no chunk, and `find_or_insert` fails with `EINVAL`.
//! Upstream treats the literal 4 KiB as "single page" (brief §9 item 16); here the single page is
//! the configured page size. Span arithmetic is checked, so a fault near `u64::MAX` yields "no
//! chunk" instead of a wrapped span.

use crate::addr::{align_down, PageShift, Span};
use crate::error::{code, Result};

/// The candidate sizes of an `Svm`: powers of two, strictly descending, each at least a page and
/// at most the notifier size.
///
/// # Invariants
///
/// `sizes[..len]` satisfies the above and `1 <= len <= ChunkSizes::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSizes {
    sizes: [u64; ChunkSizes::MAX],
    len: usize,
}

impl ChunkSizes {
    /// At most this many candidate sizes.
    pub const MAX: usize = 8;

    /// Validates a driver's chunk list.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the list is empty or too long, or a size is not a power of two, not
    /// descending, smaller than a page or larger than `notifier_size`.
    pub fn new(sizes: &[u64], page: PageShift, notifier_size: u64) -> Result<Self> {
        if sizes.is_empty() || sizes.len() > Self::MAX {
            return Err(code::EINVAL);
        }
        let mut out = [0u64; Self::MAX];
        let mut prev = u64::MAX;
        for (slot, &s) in out.iter_mut().zip(sizes) {
            if !s.is_power_of_two() || s < page.size() || s > notifier_size || s >= prev {
                return Err(code::EINVAL);
            }
            *slot = s;
            prev = s;
        }
        // INVARIANT: every size was checked above.
        Ok(Self {
            sizes: out,
            len: sizes.len(),
        })
    }

    /// The sizes, largest first.
    pub fn as_slice(&self) -> &[u64] {
        self.sizes.get(..self.len).unwrap_or_default()
    }
}

/// The geometry a chunk must fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRequest {
    /// The faulting address.
    pub fault: u64,
    /// The CPU VMA containing the fault.
    pub vma: Span,
    /// The notifier window containing the fault.
    pub notifier: Span,
    /// The driver's GPU VA window.
    pub gpuva: Span,
    /// The base page size.
    pub page: PageShift,
    /// Candidates up to this size need every CPU page present.
    pub check_pages_threshold: u64,
}

/// The span of candidate size `size` around the fault, if it does not overflow.
pub fn candidate(fault: u64, size: u64) -> Option<Span> {
    let start = align_down(fault, size);
    Span::from_len(start, size).ok()
}

/// Chooses the range to create for a fault (see the module docs).
///
/// `overlaps(span)` says whether an existing range intersects `span`; `pages_present(span)`
/// says whether every CPU page of `span` is present (it is only asked for candidates within the
/// threshold).
pub fn select_chunk(
    req: &ChunkRequest,
    sizes: &[u64],
    mut overlaps: impl FnMut(Span) -> bool,
    mut pages_present: impl FnMut(Span) -> bool,
) -> Option<Span> {
    for &size in sizes {
        let Some(span) = candidate(req.fault, size) else {
            continue;
        };
        if !(req.vma.covers(&span) && req.notifier.covers(&span) && req.gpuva.covers(&span)) {
            continue;
        }
        if size == req.page.size() {
            return Some(span);
        }
        if overlaps(span) {
            continue;
        }
        if size <= req.check_pages_threshold && !pages_present(span) {
            continue;
        }
        return Some(span);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    const K: u64 = 1024;
    const M: u64 = 1024 * 1024;

    fn span(s: u64, e: u64) -> Span {
        Span::new(s, e).unwrap()
    }

    fn req(fault: u64, vma: Span) -> ChunkRequest {
        ChunkRequest {
            fault,
            vma,
            notifier: span(0, 512 * M),
            gpuva: span(0, 1 << 47),
            page: PageShift::SZ_4K,
            check_pages_threshold: 0,
        }
    }

    #[test]
    fn chunk_list_validation() {
        let p = PageShift::SZ_4K;
        assert!(ChunkSizes::new(&[2 * M, 64 * K, 4 * K], p, 512 * M).is_ok());
        assert_eq!(ChunkSizes::new(&[], p, 512 * M), Err(code::EINVAL));
        assert_eq!(ChunkSizes::new(&[3 * K], p, 512 * M), Err(code::EINVAL));
        assert_eq!(
            ChunkSizes::new(&[64 * K, 2 * M], p, 512 * M),
            Err(code::EINVAL)
        );
        assert_eq!(
            ChunkSizes::new(&[64 * K, 64 * K], p, 512 * M),
            Err(code::EINVAL)
        );
        assert_eq!(ChunkSizes::new(&[2 * K], p, 512 * M), Err(code::EINVAL));
        assert_eq!(ChunkSizes::new(&[1024 * M], p, 512 * M), Err(code::EINVAL));
        assert_eq!(ChunkSizes::new(&[4 * K; 9], p, 512 * M), Err(code::EINVAL));
    }

    #[test]
    fn largest_fitting_chunk_wins() {
        let sizes = [2 * M, 64 * K, 4 * K];
        let r = req(0x20_1234, span(0x20_0000, 0x40_0000));
        assert_eq!(
            select_chunk(&r, &sizes, |_| false, |_| true),
            Some(span(0x20_0000, 0x40_0000))
        );
        // A VMA of 128K only fits 64K chunks.
        let r = req(0x21_1234, span(0x21_0000, 0x23_0000));
        assert_eq!(
            select_chunk(&r, &sizes, |_| false, |_| true),
            Some(span(0x21_0000, 0x22_0000))
        );
    }

    #[test]
    fn overlap_falls_back_to_smaller_chunks() {
        let sizes = [2 * M, 64 * K, 4 * K];
        let r = req(0x20_1234, span(0x20_0000, 0x40_0000));
        let existing = span(0x20_8000, 0x20_9000);
        let got = select_chunk(&r, &sizes, |s| s.overlaps(&existing), |_| true);
        // 2M and 64K both contain the existing range; 4K is the first that does not.
        assert_eq!(got, Some(span(0x20_1000, 0x20_2000)));
    }

    #[test]
    fn page_check_applies_below_threshold_only() {
        let sizes = [2 * M, 64 * K, 4 * K];
        let mut r = req(0x20_1234, span(0x20_0000, 0x22_0000));
        r.check_pages_threshold = 64 * K;
        let mut asked = std::vec::Vec::new();
        let got = select_chunk(
            &r,
            &sizes,
            |_| false,
            |s| {
                asked.push(s);
                false
            },
        );
        // 2M does not fit the VMA; 64K fits but the page check fails; 4K needs no check.
        assert_eq!(got, Some(span(0x20_1000, 0x20_2000)));
        assert_eq!(asked, [span(0x20_0000, 0x21_0000)]);
    }

    #[test]
    fn single_page_is_the_configured_page_size() {
        let p16 = PageShift::new(14).unwrap();
        let sizes = [64 * K, 16 * K];
        let mut r = req(0x10_5000, span(0x10_4000, 0x10_8000));
        r.page = p16;
        // 16K is the single page here: accepted without the overlap check.
        assert_eq!(
            select_chunk(&r, &sizes, |_| true, |_| false),
            Some(span(0x10_4000, 0x10_8000))
        );
    }

    #[test]
    fn top_of_address_space_yields_no_chunk() {
        let sizes = [2 * M, 4 * K];
        let top = span(u64::MAX - 2 * M, u64::MAX);
        let mut r = req(u64::MAX - 10, top);
        r.notifier = top;
        r.gpuva = top;
        assert_eq!(select_chunk(&r, &sizes, |_| false, |_| true), None);
    }
}
