//! HMM pfn encoding, with the kernel's bit layout.
//!
//! C header: [`include/linux/hmm.h`].
//!
//! `hmm_range_fault` fills one `unsigned long` per page: the page frame number in the low bits,
//! flag bits at the top, and (since 5.x) the order of the CPU mapping that contains the page in a
//! 5-bit field. The core reads the kernel's array directly through [`HmmPfn`], so the layout
//! here must match 64-bit Linux exactly:
//!
//! | bit(s) | meaning |
//! |---|---|
//! | 63 | `HMM_PFN_VALID` (input: `HMM_PFN_REQ_FAULT`) |
//! | 62 | `HMM_PFN_WRITE` (input: `HMM_PFN_REQ_WRITE`) |
//! | 61 | `HMM_PFN_ERROR` |
//! | 60 | `HMM_PFN_DMA_MAPPED` (sticky) |
//! | 59 | `HMM_PFN_P2PDMA` (sticky) |
//! | 58 | `HMM_PFN_P2PDMA_BUS` (sticky) |
//! | 53..=57 | mapping order (`HMM_PFN_ORDER_SHIFT` = 64 − 11) |
//! | 0..=52 | pfn |
//!
//! An output of 0 means "not present, could be faulted".

/// One entry of an HMM pfn array.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct HmmPfn(pub u64);

impl HmmPfn {
    /// `HMM_PFN_VALID`: the pfn is present (output), or fault it in (input).
    pub const VALID: u64 = 1 << 63;
    /// `HMM_PFN_WRITE`: the CPU can write (output), or fault for write (input).
    pub const WRITE: u64 = 1 << 62;
    /// `HMM_PFN_ERROR`: the page cannot be accessed.
    pub const ERROR: u64 = 1 << 61;
    /// `HMM_PFN_DMA_MAPPED`: sticky marker for callers that DMA-map through HMM.
    pub const DMA_MAPPED: u64 = 1 << 60;
    /// `HMM_PFN_P2PDMA`: sticky P2PDMA marker.
    pub const P2PDMA: u64 = 1 << 59;
    /// `HMM_PFN_P2PDMA_BUS`: sticky P2PDMA bus-address marker.
    pub const P2PDMA_BUS: u64 = 1 << 58;
    /// `HMM_PFN_ORDER_SHIFT`.
    pub const ORDER_SHIFT: u32 = 53;
    /// Width of the order field.
    pub const ORDER_MASK: u64 = 0x1f;
    /// `HMM_PFN_FLAGS`: every bit that is not part of the pfn.
    pub const FLAGS: u64 = !((1 << Self::ORDER_SHIFT) - 1);
    /// `HMM_PFN_REQ_FAULT`.
    pub const REQ_FAULT: u64 = Self::VALID;
    /// `HMM_PFN_REQ_WRITE`.
    pub const REQ_WRITE: u64 = Self::WRITE;

    /// Encodes a present page (used by backends and tests).
    #[inline]
    pub fn present(pfn: u64, writable: bool, order: u8) -> Self {
        let mut v = (pfn & !Self::FLAGS) | Self::VALID;
        if writable {
            v |= Self::WRITE;
        }
        v |= (u64::from(order) & Self::ORDER_MASK) << Self::ORDER_SHIFT;
        HmmPfn(v)
    }

    /// The page frame number (`hmm_pfn_to_page`).
    #[inline]
    pub fn pfn(self) -> u64 {
        self.0 & !Self::FLAGS
    }

    /// Whether the page is present.
    #[inline]
    pub fn is_valid(self) -> bool {
        self.0 & Self::VALID != 0
    }

    /// Whether the CPU mapping is writable.
    #[inline]
    pub fn is_writable(self) -> bool {
        self.0 & Self::WRITE != 0
    }

    /// Whether HMM flagged the page as an error.
    #[inline]
    pub fn is_error(self) -> bool {
        self.0 & Self::ERROR != 0
    }

    /// The order of the CPU mapping containing the page (`hmm_pfn_to_map_order`).
    #[inline]
    pub fn map_order(self) -> u32 {
        // The mask keeps the value below 32, so the cast is lossless.
        ((self.0 >> Self::ORDER_SHIFT) & Self::ORDER_MASK) as u32
    }
}

impl core::fmt::Debug for HmmPfn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0 == 0 {
            return f.write_str("HmmPfn(none)");
        }
        write!(
            f,
            "HmmPfn(pfn={:#x}{}{}{} order={})",
            self.pfn(),
            if self.is_valid() { " V" } else { "" },
            if self.is_writable() { " W" } else { "" },
            if self.is_error() { " E" } else { "" },
            self.map_order()
        )
    }
}

/// The chunk order to use at position `index` of an `npages` request (upstream
/// `drm_gpusvm_hmm_pfn_to_order`, brief §3.3).
///
/// The CPU mapping containing the page has `1 << map_order` pages; the page sits at
/// `pfn % (1 << map_order)` inside it. The chunk is what remains of that mapping from this page,
/// clamped to the pages left in the request, rounded down to a power of two. The result is the
/// stride of the walk and the DMA-mapping granularity, so it is never 0 pages.
#[inline]
pub fn chunk_order(pfn: HmmPfn, index: usize, npages: usize) -> u32 {
    let order = pfn.map_order();
    let size = 1u64 << order;
    let offset_in_mapping = pfn.pfn() & (size - 1);
    let remaining_in_mapping = size - offset_in_mapping;
    let remaining_in_request = u64::try_from(npages.saturating_sub(index)).unwrap_or(u64::MAX);
    let pages = remaining_in_mapping.min(remaining_in_request).max(1);
    63 - pages.leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_64bit_linux() {
        assert_eq!(HmmPfn::VALID, 0x8000_0000_0000_0000);
        assert_eq!(HmmPfn::WRITE, 0x4000_0000_0000_0000);
        assert_eq!(HmmPfn::ERROR, 0x2000_0000_0000_0000);
        assert_eq!(HmmPfn::ORDER_SHIFT, 64 - 11);
        let p = HmmPfn::present(0x12345, true, 9);
        assert!(p.is_valid() && p.is_writable() && !p.is_error());
        assert_eq!(p.pfn(), 0x12345);
        assert_eq!(p.map_order(), 9);
        assert_eq!(HmmPfn(0).pfn(), 0);
        assert!(!HmmPfn(0).is_valid());
    }

    #[test]
    fn chunk_order_clamps_to_mapping_and_request() {
        // A 2M mapping (order 9) entered at its head with 512 pages requested: one order-9 chunk.
        let head = HmmPfn::present(0x200, true, 9);
        assert_eq!(chunk_order(head, 0, 512), 9);
        // Entered 256 pages in: 256 remain in the mapping.
        let mid = HmmPfn::present(0x200 + 256, true, 9);
        assert_eq!(chunk_order(mid, 0, 512), 8);
        // Request ends after 3 pages: floor(log2(3)) = 1.
        assert_eq!(chunk_order(head, 509, 512), 1);
        // Order-0 pages always step by one.
        assert_eq!(chunk_order(HmmPfn::present(7, false, 0), 0, 16), 0);
        // Past the end of the request still yields a valid stride.
        assert_eq!(chunk_order(head, 600, 512), 0);
    }
}
