// SPDX-License-Identifier: GPL-2.0

//! [`gpusvm_core::DmaDevice`] over the DMA API of a `struct device`.

use core::ptr::NonNull;
#[cfg(gs_count_dma)]
use core::sync::atomic::{AtomicIsize, Ordering};

use gpusvm_core::{code, DmaDevice, DmaDirection, Result};
use kernel::bindings;

use crate::ext;

/// DMA mappings made through any [`KDma`] and not yet unmapped (a leak check for tests).
#[cfg(gs_count_dma)]
static LIVE_MAPPINGS: AtomicIsize = AtomicIsize::new(0);

/// Number of live DMA mappings made by the shim (built with `--cfg gs_count_dma`, see
/// `crates.mk`: the count costs an atomic per map and unmap).
#[cfg(gs_count_dma)]
pub fn live_mappings() -> isize {
    LIVE_MAPPINGS.load(Ordering::Relaxed)
}

#[inline]
fn count_mapping(delta: isize) {
    #[cfg(gs_count_dma)]
    LIVE_MAPPINGS.fetch_add(delta, Ordering::Relaxed);
    #[cfg(not(gs_count_dma))]
    let _ = delta;
}

/// A counted reference to a `struct device` that maps pages for DMA.
///
/// # Invariants
///
/// `dev` is a valid device on which this value owns one `get_device` reference.
pub struct KDma {
    dev: NonNull<bindings::device>,
}

// SAFETY: A device reference may be used and dropped from any thread.
unsafe impl Send for KDma {}
// SAFETY: The DMA API may be called concurrently on one device.
unsafe impl Sync for KDma {}

impl KDma {
    /// Takes a reference on `dev`.
    ///
    /// # Safety
    ///
    /// `dev` points to a valid, registered device with a DMA mask set up for the mappings the
    /// core will request (system pages anywhere in memory).
    pub unsafe fn new(dev: *mut bindings::device) -> Option<Self> {
        // SAFETY: The caller guarantees `dev` is valid.
        let dev = NonNull::new(unsafe { bindings::get_device(dev) })?;
        // INVARIANT: `get_device` took the reference we own.
        Some(Self { dev })
    }

    /// The device.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::device {
        self.dev.as_ptr()
    }

    /// The page frame a bus address returned by [`DmaDevice::map_page`] refers to, for a
    /// device using direct mapping (no IOMMU): what a virtual device's "DMA engine" reads.
    /// `None` when the device is behind DMA ops (an IOMMU), where bus addresses are not
    /// physical.
    pub fn bus_to_pfn(&self, addr: u64) -> Option<u64> {
        // SAFETY: By the type invariant the device is valid.
        if !unsafe { ext::gs_dma_is_direct(self.as_ptr()) } {
            return None;
        }
        // SAFETY: As above; `dma_to_phys` is a pure translation for a direct-mapped device.
        Some(unsafe { ext::gs_dma_to_pfn(self.as_ptr(), addr) } as u64)
    }
}

impl Clone for KDma {
    fn clone(&self) -> Self {
        // SAFETY: By the type invariant the device is valid; the new reference is the clone's.
        unsafe { bindings::get_device(self.as_ptr()) };
        // INVARIANT: the reference just taken.
        Self { dev: self.dev }
    }
}

impl Drop for KDma {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference.
        unsafe { bindings::put_device(self.as_ptr()) };
    }
}

#[inline]
fn dir(d: DmaDirection) -> bindings::dma_data_direction {
    match d {
        DmaDirection::Bidirectional => bindings::dma_data_direction_DMA_BIDIRECTIONAL,
        DmaDirection::ToDevice => bindings::dma_data_direction_DMA_TO_DEVICE,
        DmaDirection::FromDevice => bindings::dma_data_direction_DMA_FROM_DEVICE,
        DmaDirection::None => bindings::dma_data_direction_DMA_NONE,
    }
}

#[inline]
fn bytes(order: u32) -> Option<usize> {
    crate::PAGE_SIZE.checked_shl(order)
}

// `#[inline]`: the core's page loops call these once per page, from another crate.
impl DmaDevice for KDma {
    #[inline]
    fn map_page(&self, pfn: u64, order: u32, d: DmaDirection) -> Result<u64> {
        let size = bytes(order).ok_or(code::EINVAL)?;
        let pfn = kernel::ffi::c_ulong::try_from(pfn).map_err(|_| code::EINVAL)?;
        let mut addr = 0;
        // SAFETY: The device is valid (type invariant); the helper checks `pfn_valid` before
        // it takes the struct page, which is one the core holds through HMM (valid until the
        // next invalidation, which unmaps first) or a migration. `addr` is a local.
        if unsafe { ext::gs_dma_map_pfn(self.as_ptr(), pfn, size, dir(d), &mut addr) } != 0 {
            return Err(code::EFAULT);
        }
        count_mapping(1);
        Ok(addr)
    }

    #[inline]
    fn unmap_page(&self, addr: u64, order: u32, d: DmaDirection) {
        let Some(size) = bytes(order) else { return };
        // SAFETY: The core passes a mapping made by `map_page` on this device with the same
        // size and direction.
        unsafe { bindings::dma_unmap_page_attrs(self.as_ptr(), addr, size, dir(d), 0) };
        count_mapping(-1);
    }
}
