//! DMA-address entries packed in 8 bytes, and the DMA mapper seam.
//!
//! C header: [`include/drm/drm_pagemap.h`] (`struct drm_pagemap_addr`).
//!
//! Upstream's `drm_pagemap_addr` is 16 bytes: a `dma_addr_t` plus `proto:54, order:8, dir:2`
//! bitfields, with a comment that it could be packed into 64 bits. Mappings of pages are page
//! aligned, so the low 12 bits of the address are free, and 12 bits hold everything else:
//!
//! | bits | field |
//! |---|---|
//! | 12..=63 | address >> 12 |
//! | 7..=11 | order (0..=31): the entry covers `PAGE_SIZE << order` bytes |
//! | 5..=6 | direction (`enum dma_data_direction`) |
//! | 0..=4 | interconnect protocol (0 = system DMA, 1.. = driver-defined) |
//!
//! A mapper that returns an address that is not 4 KiB aligned cannot be represented; the core
//! unmaps it again and fails the request with `EFAULT` (as upstream does for a mapping error).
//! The all-zero value is reserved to mean "no entry".

use crate::error::{code, Result};

/// `enum dma_data_direction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DmaDirection {
    /// `DMA_BIDIRECTIONAL`: GPU reads and writes.
    Bidirectional = 0,
    /// `DMA_TO_DEVICE`: the device only reads (read-only faults, migration sources).
    ToDevice = 1,
    /// `DMA_FROM_DEVICE`: the device only writes (migration destinations).
    FromDevice = 2,
    /// `DMA_NONE`.
    None = 3,
}

impl DmaDirection {
    fn from_bits(bits: u64) -> Self {
        match bits & 3 {
            0 => DmaDirection::Bidirectional,
            1 => DmaDirection::ToDevice,
            2 => DmaDirection::FromDevice,
            _ => DmaDirection::None,
        }
    }
}

/// `enum drm_interconnect_protocol`: how the device reaches the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Protocol(u8);

impl Protocol {
    /// `DRM_INTERCONNECT_SYSTEM`: a plain DMA mapping of a system page.
    pub const SYSTEM: Protocol = Protocol(0);
    /// `DRM_INTERCONNECT_DRIVER`: the first driver-defined protocol (local device memory).
    pub const DRIVER: Protocol = Protocol(1);
    /// The largest protocol value a driver may use (31 is reserved for holes).
    pub const MAX: u8 = 30;
    /// Reserved: a hole left by a partial unmap (no mapping behind the entry).
    pub const HOLE: Protocol = Protocol(31);

    /// A driver-defined protocol.
    ///
    /// # Errors
    ///
    /// `EINVAL` above [`Protocol::MAX`].
    #[inline]
    pub fn new(value: u8) -> Result<Self> {
        if value <= Self::MAX {
            Ok(Protocol(value))
        } else {
            Err(code::EINVAL)
        }
    }

    /// The raw value.
    #[inline]
    pub fn value(self) -> u8 {
        self.0
    }
}

/// One DMA mapping of `1 << order` pages, packed in 8 bytes (see the module docs).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct DmaEntry(u64);

const _: () = assert!(core::mem::size_of::<DmaEntry>() == 8);

impl DmaEntry {
    const ADDR_SHIFT: u32 = 12;
    const ORDER_SHIFT: u32 = 7;
    const DIR_SHIFT: u32 = 5;

    /// The "no entry" value.
    pub const NONE: DmaEntry = DmaEntry(0);

    /// Packs an entry (`drm_pagemap_addr_encode`).
    ///
    /// # Errors
    ///
    /// `EFAULT` if `addr` is not 4 KiB aligned, `EINVAL` if `order > 31`. The all-zero value
    /// means "no entry", so the one mapping that would encode to it (address 0, order 0,
    /// bidirectional, system) is refused with `EFAULT`; page frame 0 is never handed to user
    /// space and IOMMUs never return IOVA 0.
    #[inline]
    pub fn encode(addr: u64, proto: Protocol, order: u32, dir: DmaDirection) -> Result<Self> {
        if addr & ((1 << Self::ADDR_SHIFT) - 1) != 0 {
            return Err(code::EFAULT);
        }
        if order > 31 {
            return Err(code::EINVAL);
        }
        let raw = addr
            | (u64::from(order) << Self::ORDER_SHIFT)
            | ((dir as u64) << Self::DIR_SHIFT)
            | u64::from(proto.0);
        if raw == 0 {
            // Would read back as "no entry" (see above).
            return Err(code::EFAULT);
        }
        Ok(DmaEntry(raw))
    }

    /// Whether this is the "no entry" value.
    #[inline]
    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// A hole of `1 << order` pages: the place of a mapping a partial unmap removed, kept so
    /// that the page offsets of the following entries stay right (range splitting).
    #[inline]
    pub fn hole(order: u32) -> Self {
        DmaEntry((u64::from(order.min(31)) << Self::ORDER_SHIFT) | u64::from(Protocol::HOLE.0))
    }

    /// Whether this is a hole (see [`DmaEntry::hole`]).
    #[inline]
    pub fn is_hole(self) -> bool {
        self.proto() == Protocol::HOLE
    }

    /// Whether a live mapping is behind this entry.
    #[inline]
    pub fn is_mapped(self) -> bool {
        !self.is_none() && !self.is_hole()
    }

    /// The DMA (or device) address.
    #[inline]
    pub fn addr(self) -> u64 {
        self.0 & !((1 << Self::ADDR_SHIFT) - 1)
    }

    /// The order: the entry covers `PAGE_SIZE << order` bytes.
    #[inline]
    pub fn order(self) -> u32 {
        // Five bits, so the cast is lossless.
        ((self.0 >> Self::ORDER_SHIFT) & 0x1f) as u32
    }

    /// The direction the mapping was made for.
    #[inline]
    pub fn dir(self) -> DmaDirection {
        DmaDirection::from_bits(self.0 >> Self::DIR_SHIFT)
    }

    /// The interconnect protocol.
    #[inline]
    pub fn proto(self) -> Protocol {
        // Five bits, so the cast is lossless.
        Protocol((self.0 & 0x1f) as u8)
    }

    /// The raw 64-bit value.
    #[inline]
    pub fn to_bits(self) -> u64 {
        self.0
    }
}

impl core::fmt::Debug for DmaEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_none() {
            return f.write_str("DmaEntry(none)");
        }
        write!(
            f,
            "DmaEntry({:#x} proto={} order={} {:?})",
            self.addr(),
            self.proto().0,
            self.order(),
            self.dir()
        )
    }
}

/// A device that DMA-maps system pages (`dma_map_page` / `dma_unmap_page` on a `struct device`).
///
/// Implementations are cheap handles (the kernel's holds a `struct device` reference), stored in
/// every pages object so that unmapping always uses the device that mapped.
pub trait DmaDevice: Clone + Send + Sync {
    /// Maps `PAGE_SIZE << order` bytes starting at page frame `pfn` for `dir`; returns the bus
    /// address. Must not sleep in a way that needs the notifier lock.
    ///
    /// # Errors
    ///
    /// Any mapping failure (`dma_mapping_error`); the core reports it as `EFAULT`.
    fn map_page(&self, pfn: u64, order: u32, dir: DmaDirection) -> Result<u64>;

    /// Unmaps a mapping made by [`DmaDevice::map_page`] with the same size and direction.
    fn unmap_page(&self, addr: u64, order: u32, dir: DmaDirection);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let e = DmaEntry::encode(
            0xdead_b000,
            Protocol::new(3).unwrap(),
            9,
            DmaDirection::ToDevice,
        )
        .unwrap();
        assert_eq!(e.addr(), 0xdead_b000);
        assert_eq!(e.proto(), Protocol(3));
        assert_eq!(e.order(), 9);
        assert_eq!(e.dir(), DmaDirection::ToDevice);
        assert!(!e.is_none());
        let top = DmaEntry::encode(!0xfffu64, Protocol::SYSTEM, 31, DmaDirection::None).unwrap();
        assert_eq!(top.addr(), !0xfffu64);
        assert_eq!(top.order(), 31);
        assert_eq!(top.dir(), DmaDirection::None);
    }

    fn e_mapped() -> bool {
        DmaEntry::encode(0x1000, Protocol::SYSTEM, 0, DmaDirection::ToDevice)
            .is_ok_and(|e| e.is_mapped())
    }

    #[test]
    fn unrepresentable_entries_are_refused() {
        let sys = Protocol::SYSTEM;
        let bidi = DmaDirection::Bidirectional;
        assert_eq!(DmaEntry::encode(0x1001, sys, 0, bidi), Err(code::EFAULT));
        assert_eq!(DmaEntry::encode(0x1000, sys, 32, bidi), Err(code::EINVAL));
        assert_eq!(DmaEntry::encode(0, sys, 0, bidi), Err(code::EFAULT));
        assert!(DmaEntry::encode(0, sys, 1, bidi).is_ok());
        assert_eq!(Protocol::new(31), Err(code::EINVAL));
        let h = DmaEntry::hole(9);
        assert!(h.is_hole() && !h.is_none() && !h.is_mapped());
        assert_eq!(h.order(), 9);
        assert!(e_mapped());
    }
}
