// SPDX-License-Identifier: GPL-2.0

//! [`CPagemap`]: the core's [`Pagemap`] over upstream's `struct drm_pagemap` and its C ops.
//!
//! A handle is one reference on the C structure (`dpagemap->ref`, the kref that upstream's inline
//! `drm_pagemap_get` takes and `drm_pagemap_put` drops). Mapping a device page for a peer or for
//! the owning device, unmapping it and populating a range all go to the driver's
//! `drm_pagemap_ops`, exactly as upstream's `drm_gpusvm_get_pages`, `__drm_gpusvm_unmap_pages`
//! and `drm_pagemap_populate_mm` call them.

use core::ptr::NonNull;

use gpusvm_core::{
    code, DmaDirection, DmaEntry, MmapReadGuard, Owner, Pagemap, PgmapId, Protocol,
    Result, Span,
};
use gpusvm_kshim::{ext, KDma, KMm};
use kernel::bindings as k;
use kernel::ffi::c_int;

use crate::bindings as c;
use crate::driver::CAbi;

/// A counted reference to a `struct drm_pagemap`.
///
/// # Invariants
///
/// `ptr` is a live `struct drm_pagemap` on which this value owns one reference (`ref`).
pub(crate) struct CPagemap {
    ptr: NonNull<c::drm_pagemap>,
}

// SAFETY: A pagemap reference may be used and dropped from any task; its ops are the driver's,
// which upstream also calls from any task.
unsafe impl Send for CPagemap {}
// SAFETY: As above.
unsafe impl Sync for CPagemap {}

impl CPagemap {
    /// Takes a reference on `dpagemap` (`drm_pagemap_get`).
    ///
    /// # Safety
    ///
    /// `dpagemap` is NULL or a live `struct drm_pagemap` (its kref is not zero).
    pub(crate) unsafe fn get(dpagemap: *mut c::drm_pagemap) -> Option<Self> {
        let ptr = NonNull::new(dpagemap)?;
        // SAFETY: Live (caller): taking another reference is what `drm_pagemap_get` does.
        unsafe { k::refcount_inc(core::ptr::addr_of_mut!((*ptr.as_ptr()).ref_.refcount)) };
        // INVARIANT: the reference just taken.
        Some(Self { ptr })
    }

    /// The C structure.
    pub(crate) fn as_ptr(&self) -> *mut c::drm_pagemap {
        self.ptr.as_ptr()
    }

    /// Gives up the reference to a C owner (e.g. `svm_pages->dpagemap`).
    pub(crate) fn into_raw(self) -> *mut c::drm_pagemap {
        let p = self.ptr.as_ptr();
        core::mem::forget(self);
        p
    }

    fn ops(&self) -> Option<&c::drm_pagemap_ops> {
        // SAFETY: Live (type invariant); `ops` is set by `drm_pagemap_init` and points to the
        // driver's static table.
        unsafe { self.ptr.as_ref().ops.as_ref() }
    }

    fn dev_pagemap(&self) -> *mut k::dev_pagemap {
        // SAFETY: Live (type invariant).
        unsafe { self.ptr.as_ref().pagemap.cast() }
    }
}

impl Clone for CPagemap {
    fn clone(&self) -> Self {
        // SAFETY: We own a reference, so the kref is not zero.
        unsafe { k::refcount_inc(core::ptr::addr_of_mut!((*self.ptr.as_ptr()).ref_.refcount)) };
        // INVARIANT: the reference just taken.
        Self { ptr: self.ptr }
    }
}

impl Drop for CPagemap {
    fn drop(&mut self) {
        // SAFETY: We own one reference; `drm_pagemap_put` drops it as upstream's callers do.
        unsafe { c::drm_pagemap_put(self.ptr.as_ptr()) };
    }
}

/// The C direction of a core direction (the values are the kernel's `enum dma_data_direction`).
pub(crate) fn dma_dir(dir: DmaDirection) -> k::dma_data_direction {
    match dir {
        DmaDirection::Bidirectional => k::dma_data_direction_DMA_BIDIRECTIONAL,
        DmaDirection::ToDevice => k::dma_data_direction_DMA_TO_DEVICE,
        DmaDirection::FromDevice => k::dma_data_direction_DMA_FROM_DEVICE,
        DmaDirection::None => k::dma_data_direction_DMA_NONE,
    }
}

// The bitfield word of `struct drm_pagemap_addr` (`u64 proto : 54; u64 order : 8; u64 dir : 2;`
// after `dma_addr_t addr`), as the kernel's ABIs allocate it: from bit 0 of the second word.
// Packed by hand because bindgen's bitfield accessors move one bit at a time, which made
// copying a range's DMA addresses cost more than mapping them (docs/PERFORMANCE.md);
// `addr_layout_matches` checks the layout against those accessors once, at module load.
const PROTO_MASK: u64 = (1 << 54) - 1;
const ORDER_SHIFT: u32 = 54;
const ORDER_MASK: u64 = 0xff;
const DIR_SHIFT: u32 = 62;

const _: () = assert!(size_of::<c::drm_pagemap_addr>() == 2 * size_of::<u64>());
const _: () = assert!(align_of::<c::drm_pagemap_addr>() == align_of::<u64>());

fn pack_addr(addr: u64, proto: u64, order: u64, dir: u64) -> c::drm_pagemap_addr {
    let word = (proto & PROTO_MASK) | ((order & ORDER_MASK) << ORDER_SHIFT) | (dir << DIR_SHIFT);
    // SAFETY: `drm_pagemap_addr` is two `u64`s (asserted above): `addr`, then the bitfield
    // word, whose layout `addr_layout_matches` verified at module load; every bit pattern is
    // a valid value of both.
    unsafe { core::mem::transmute::<[u64; 2], c::drm_pagemap_addr>([addr, word]) }
}

/// The bitfield word of a C address.
fn addr_word(a: &c::drm_pagemap_addr) -> u64 {
    // SAFETY: As in `pack_addr`: two `u64`s (so the second is in bounds and aligned), plain
    // integers.
    unsafe { core::ptr::from_ref(a).cast::<u64>().add(1).read() }
}

/// The `proto` field of a C address.
pub(crate) fn addr_proto(a: &c::drm_pagemap_addr) -> u64 {
    addr_word(a) & PROTO_MASK
}

/// The C address of a core DMA entry.
pub(crate) fn c_addr(entry: DmaEntry) -> c::drm_pagemap_addr {
    pack_addr(
        entry.addr(),
        u64::from(entry.proto().value()),
        u64::from(entry.order()),
        dma_dir(entry.dir()) as u64,
    )
}

/// Whether the hand-packed layout is the compiler's (bindgen's accessors follow the C
/// compiler's bitfield allocation), for a few values of each field.
pub(crate) fn addr_layout_matches() -> bool {
    let samples: [(u64, u64, u64); 4] = [(0, 0, 0), (1, 9, 2), (PROTO_MASK, ORDER_MASK, 3), (0x2a, 0x81, 1)];
    samples.iter().all(|&(proto, order, dir)| {
        let mut want = c::drm_pagemap_addr {
            addr: 0x1234_5000,
            ..Default::default()
        };
        want.set_proto(proto);
        want.set_order(order);
        want.set_dir(dir);
        let got = pack_addr(0x1234_5000, proto, order, dir);
        addr_word(&got) == addr_word(&want)
            && got.proto() == proto
            && got.order() == order
            && got.dir() == dir
            && addr_proto(&want) == proto
    })
}

/// Module load: refuses to load if the C structures are not laid out as this crate packs them.
#[no_mangle]
pub(crate) extern "C" fn gs_abi_selftest() -> c_int {
    if addr_layout_matches() {
        0
    } else {
        kernel::pr_err!("struct drm_pagemap_addr is not laid out as expected\n");
        code::EINVAL.to_errno()
    }
}

impl Pagemap<CAbi> for CPagemap {
    fn pgmap(&self) -> PgmapId {
        PgmapId(self.dev_pagemap() as usize)
    }

    fn owner(&self) -> Owner {
        let pg = self.dev_pagemap();
        // SAFETY: A driver's pagemap points to its registered `dev_pagemap` (upstream's
        // `drm_pagemap_init` contract), which lives as long as the drm_pagemap.
        Owner(unsafe { pg.as_ref() }.map_or(0, |pg| pg.owner as usize))
    }

    fn device_map(&self, dev: &KDma, pfn: u64, order: u32, dir: DmaDirection) -> Result<DmaEntry> {
        let map = self.ops().and_then(|o| o.device_map).ok_or(code::EOPNOTSUPP)?;
        let pfn = usize::try_from(pfn).map_err(|_| code::EINVAL)?;
        // SAFETY: The core maps only pages it found in this pagemap (valid frames).
        let page = unsafe { ext::gs_pfn_to_page(pfn as _) };
        // SAFETY: The driver's op, with a device and a page of its pagemap, as upstream calls it.
        let a = unsafe { map(self.ptr.as_ptr(), dev.as_ptr(), page, order, dma_dir(dir)) };
        // SAFETY: `dev` is a valid device.
        if unsafe { ext::gs_dma_mapping_error(dev.as_ptr(), a.addr) } {
            return Err(code::EFAULT);
        }
        let proto = Protocol::new(u8::try_from(addr_proto(&a)).map_err(|_| code::EINVAL)?)?;
        DmaEntry::encode(a.addr, proto, order, dir)
    }

    fn device_unmap(&self, dev: &KDma, entry: DmaEntry) {
        let Some(unmap) = self.ops().and_then(|o| o.device_unmap) else {
            return;
        };
        let a = c_addr(entry);
        // SAFETY: The driver's op, with an address its `device_map` returned.
        unsafe { unmap(self.ptr.as_ptr(), dev.as_ptr(), &a) };
    }

    fn populate_mm(&self, lock: &MmapReadGuard<'_, KMm>, span: Span, timeslice_ms: u64) -> Result {
        let populate = self.ops().and_then(|o| o.populate_mm).ok_or(code::EOPNOTSUPP)?;
        let mm = lock.mm().as_ptr();
        // SAFETY: The driver's op, with the mmap lock held and a reference on the mm, as
        // upstream's `drm_pagemap_populate_mm` calls it.
        let ret = unsafe {
            populate(
                self.ptr.as_ptr(),
                span.start() as _,
                span.end() as _,
                mm,
                timeslice_ms as _,
            )
        };
        gpusvm_kshim::errno(ret)
    }
}
