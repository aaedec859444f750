// SPDX-License-Identifier: GPL-2.0

//! [`CDevmem`]: the core's [`DevmemAllocation`] over upstream's `struct drm_pagemap_devmem`.
//!
//! The C structure is the driver's (Xe embeds it in its VRAM buffer object) and has no room for
//! the core's [`DevmemState`], so a handle points to a small shared block holding the state and a
//! count of handles. The block is created when the allocation is first handed to the core (a
//! migration), and the last handle going away is the moment upstream's zone-device data (`zdd`)
//! dies: the allocation is detached (`complete_all(&devmem->detached)`) and released
//! (`ops->devmem_release`), which is when the driver may free its memory.
//!
//! The copy and pfn callbacks are the driver's `drm_pagemap_devmem_ops`, called with the arrays
//! upstream passes: a `struct page *` per device page, a `struct drm_pagemap_addr` per system
//! page (the core's planner hands over one device-contiguous run at a time).

use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicUsize, Ordering};

use gpusvm_core::{code, CopyBatch, DevmemAllocation, DevmemState, Result};
use gpusvm_kshim::ext;
use kernel::alloc::{flags::GFP_KERNEL, KBox, KVec};
use kernel::bindings as k;

use crate::bindings as c;
use crate::driver::CAbi;
use crate::pagemap::c_addr;

/// What every handle of one allocation shares.
///
/// # Invariants
///
/// `c` is the driver's `struct drm_pagemap_devmem`, initialized by `drm_pagemap_devmem_init`,
/// alive until `ops->devmem_release` has been called on it (by the last handle's drop).
struct Block {
    refs: AtomicUsize,
    c: NonNull<c::drm_pagemap_devmem>,
    state: DevmemState<CAbi>,
}

/// A counted handle to a device-memory allocation.
///
/// # Invariants
///
/// `block` was made by [`CDevmem::new`] and this value owns one of its `refs`.
pub(crate) struct CDevmem {
    block: NonNull<Block>,
}

// SAFETY: The block is shared through atomics; the C structure's ops may be called from any task
// (upstream calls them from the migration and page-free paths).
unsafe impl Send for CDevmem {}
// SAFETY: As above.
unsafe impl Sync for CDevmem {}

impl CDevmem {
    /// The first handle of the allocation `devmem`, with the core's state for it.
    ///
    /// # Safety
    ///
    /// `devmem` was initialized by `drm_pagemap_devmem_init` and stays alive until its
    /// `devmem_release` op is called.
    pub(crate) unsafe fn new(
        devmem: NonNull<c::drm_pagemap_devmem>,
        state: DevmemState<CAbi>,
    ) -> Result<Self> {
        let block = KBox::new(
            Block {
                refs: AtomicUsize::new(1),
                c: devmem,
                state,
            },
            GFP_KERNEL,
        )
        .map_err(|_| code::ENOMEM)?;
        // INVARIANT: the one count of a fresh block.
        Ok(Self {
            // SAFETY: `KBox::into_raw` never returns null.
            block: unsafe { NonNull::new_unchecked(KBox::into_raw(block)) },
        })
    }

    fn block(&self) -> &Block {
        // SAFETY: We own a count, so the block is alive (type invariant).
        unsafe { self.block.as_ref() }
    }

    /// The driver's structure.
    pub(crate) fn as_ptr(&self) -> *mut c::drm_pagemap_devmem {
        self.block().c.as_ptr()
    }

    fn ops(&self) -> Option<&c::drm_pagemap_devmem_ops> {
        // SAFETY: Alive (block invariant); `ops` is the driver's static table.
        unsafe { self.block().c.as_ref().ops.as_ref() }
    }

    fn fence(&self) -> *mut k::dma_fence {
        // SAFETY: Alive (block invariant).
        unsafe { self.block().c.as_ref().pre_migrate_fence.cast() }
    }

    /// One copy call: `pages` gets the device pages of the run, `addrs` the system side.
    fn copy(
        &self,
        batch: &CopyBatch<'_>,
        op: Option<
            unsafe extern "C" fn(
                *mut *mut k::page,
                *mut c::drm_pagemap_addr,
                ffi::c_ulong,
                *mut k::dma_fence,
            ) -> ffi::c_int,
        >,
    ) -> Result {
        let op = op.ok_or(code::EOPNOTSUPP)?;
        let n = batch.npages;
        if batch.system.len() < n {
            return Err(code::EINVAL);
        }
        let mut pages = KVec::with_capacity(n, GFP_KERNEL).map_err(|_| code::ENOMEM)?;
        let mut addrs = KVec::with_capacity(n, GFP_KERNEL).map_err(|_| code::ENOMEM)?;
        for (i, &entry) in batch.system.iter().take(n).enumerate() {
            let pfn = batch.device_pfn.checked_add(i as u64).ok_or(code::EINVAL)?;
            // SAFETY: The core's run lies inside the allocation's device pages.
            let page = unsafe { ext::gs_pfn_to_page(pfn as _) };
            pages.push(page, GFP_KERNEL).map_err(|_| code::ENOMEM)?;
            addrs.push(c_addr(entry), GFP_KERNEL).map_err(|_| code::ENOMEM)?;
        }
        let fence = if batch.wait_fence {
            self.fence()
        } else {
            core::ptr::null_mut()
        };
        // SAFETY: The driver's op with `n` pages and `n` addresses, as upstream's
        // `drm_pagemap_migrate_*` calls it.
        let ret = unsafe { op(pages.as_mut_ptr(), addrs.as_mut_ptr(), n as _, fence) };
        gpusvm_kshim::errno(ret)
    }
}

use kernel::ffi;

impl Clone for CDevmem {
    fn clone(&self) -> Self {
        self.block().refs.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: the count just taken.
        Self { block: self.block }
    }
}

impl Drop for CDevmem {
    fn drop(&mut self) {
        if self.block().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: The last count: nobody else refers to the block.
        let block = unsafe { KBox::from_raw(self.block.as_ptr()) };
        let devmem = block.c.as_ptr();
        drop(block);
        // Upstream's zdd destruction: detach, then release (the driver may free the memory,
        // possibly from this very context, which may be the page-free path: the op must not
        // sleep there, as upstream requires).
        // SAFETY: Alive until `devmem_release` (block invariant).
        unsafe {
            k::complete_all(core::ptr::addr_of_mut!((*devmem).detached));
            if let Some(release) = (*devmem).ops.as_ref().and_then(|o| o.devmem_release) {
                release(devmem);
            }
        }
    }
}

impl DevmemAllocation<CAbi> for CDevmem {
    fn state(&self) -> &DevmemState<CAbi> {
        &self.block().state
    }

    fn populate_pfns(&self, pfns: &mut [u64]) -> Result {
        let op = self
            .ops()
            .and_then(|o| o.populate_devmem_pfn)
            .ok_or(code::EOPNOTSUPP)?;
        // SAFETY: The driver's op fills `pfns.len()` entries (`unsigned long` = `u64` here).
        let ret = unsafe { op(self.as_ptr(), pfns.len() as _, pfns.as_mut_ptr().cast()) };
        gpusvm_kshim::errno(ret)
    }

    fn copy_to_devmem(&self, batch: &CopyBatch<'_>) -> Result {
        self.copy(batch, self.ops().and_then(|o| o.copy_to_devmem))
    }

    fn copy_to_ram(&self, batch: &CopyBatch<'_>) -> Result {
        self.copy(batch, self.ops().and_then(|o| o.copy_to_ram))
    }
}
