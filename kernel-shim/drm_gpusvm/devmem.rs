// SPDX-License-Identifier: GPL-2.0

//! [`CDevmem`]: the core's [`DevmemAllocation`] over upstream's `struct drm_pagemap_devmem`.
//!
//! The C structure is the driver's (Xe embeds it in its VRAM buffer object) and has no room for
//! the core's [`DevmemState`], so a handle points to a small shared block holding the state and a
//! count of handles. The block is created when the allocation is first handed to the core (a
//! migration), and the last handle going away is the moment upstream's zone-device data (`zdd`)
//! dies: the allocation is detached (`complete_all(&devmem->detached)`) and released
//! (`ops->devmem_release`), which is when the driver may free its memory; then the references
//! the block's state holds (upstream's `zdd->dpagemap`, and the mm and device) are dropped, in
//! upstream's order.
//!
//! The copy and pfn callbacks are the driver's `drm_pagemap_devmem_ops`, called with the arrays
//! upstream passes: a `struct page *` per device page, a `struct drm_pagemap_addr` per system
//! page (the core's planner hands over one device-contiguous run at a time).
//!
//! # From a C allocation to its block
//!
//! `drm_pagemap_evict_to_ram` receives only the C structure, and needs a handle. Every live block
//! is therefore linked, from its creation to the moment its last handle goes away, into a small
//! global hash table keyed by the C structure's address: [`BUCKETS`] singly linked chains whose
//! links are in the blocks themselves (no allocation to link or unlink), under one spinlock taken
//! with interrupts saved (`gs_abi_devmem_table_lock`). The choice:
//!
//! - the last handle may go away in `folio_free`, in atomic context (under a page-table lock, or
//!   wherever core mm drops the last page reference), so unlinking must neither sleep nor
//!   allocate, and must be safe against any context: `kernel::xarray::XArray` would allocate
//!   nodes on insertion (fine) but its Rust API takes `xa_lock` without disabling interrupts,
//!   and keys are 64-bit pointers (a deep, sparse tree); an intrusive chain needs neither;
//! - the C structure has no field for a back-pointer that C callers do not read (every field of
//!   `struct drm_pagemap_devmem` may be read by the driver), so the table is external;
//! - lookups (eviction) are rare and the chains short (live migrated allocations / 64), so one
//!   lock is enough.
//!
//! A lookup holds the lock while it reads a block's count and takes a new count only if the old
//! one is not zero; the last handle's drop unlinks its block under the lock before freeing it.
//! So a lookup never revives or touches a freed block; it may see one whose last handle is
//! being dropped ([`Lookup::Dying`]: every device page is gone, the detach is under way).

use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicPtr, AtomicUsize, Ordering};

use gpusvm_core::{code, CopyBatch, DevmemAllocation, DevmemState, Result};
use gpusvm_kshim::ext;
use kernel::alloc::{flags::GFP_KERNEL, KBox, KVec};
use kernel::bindings as k;
use kernel::ffi;

use crate::bindings as c;
use crate::driver::CAbi;
use crate::pagemap::c_addr;

/// What every handle of one allocation shares.
///
/// # Invariants
///
/// `c` is the driver's `struct drm_pagemap_devmem`, initialized by `drm_pagemap_devmem_init`,
/// alive until `ops->devmem_release` has been called on it (by the last handle's drop). While
/// `refs` is not zero the block is linked in the table, as the only block for `c`; `next` is
/// read and written only under the table lock.
struct Block {
    refs: AtomicUsize,
    c: NonNull<c::drm_pagemap_devmem>,
    next: AtomicPtr<Block>,
    state: DevmemState<CAbi>,
}

/// Number of chains of the table (a power of two).
const BUCKETS: usize = 64;

/// The chains of the table: the first block of each, linked through [`Block::next`]; read and
/// written only under the table lock.
static TABLE: [AtomicPtr<Block>; BUCKETS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; BUCKETS];

/// The table lock, held (with interrupts saved) while the guard lives.
///
/// # Invariants
///
/// `flags` was returned by `gs_abi_devmem_table_lock`, which took the lock this guard releases.
struct TableGuard {
    flags: ffi::c_ulong,
}

impl TableGuard {
    fn lock() -> Self {
        // SAFETY: A static spinlock; never held across anything that sleeps or takes it again.
        let flags = unsafe { c::gs_abi_devmem_table_lock() };
        // INVARIANT: just locked.
        Self { flags }
    }

    /// The chain of `devmem` (a multiplicative hash of its address: the structures are embedded
    /// in larger objects, so their low bits carry little information).
    fn chain(&self, devmem: *const c::drm_pagemap_devmem) -> &'static AtomicPtr<Block> {
        let h = (devmem as usize as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58;
        let [first, ..] = &TABLE;
        TABLE.get(h as usize % BUCKETS).unwrap_or(first)
    }

    /// The block linked for `devmem`, or NULL.
    fn find(&self, devmem: *const c::drm_pagemap_devmem) -> *mut Block {
        let mut p = self.chain(devmem).load(Ordering::Relaxed);
        // SAFETY: Linked blocks are alive (a block is unlinked under the lock before it is
        // freed), and we hold the lock.
        while let Some(b) = unsafe { p.as_ref() } {
            if core::ptr::eq(b.c.as_ptr(), devmem) {
                return p;
            }
            p = b.next.load(Ordering::Relaxed);
        }
        core::ptr::null_mut()
    }

    /// Links `block` at the head of its chain.
    ///
    /// # Safety
    ///
    /// `block` is alive, unlinked, and stays alive until [`TableGuard::unlink`] removes it.
    unsafe fn link(&self, block: NonNull<Block>) {
        // SAFETY: Alive (caller).
        let b = unsafe { block.as_ref() };
        let head = self.chain(b.c.as_ptr());
        b.next.store(head.load(Ordering::Relaxed), Ordering::Relaxed);
        head.store(block.as_ptr(), Ordering::Relaxed);
    }

    /// Unlinks `block` from its chain (no-op if it is not linked).
    ///
    /// # Safety
    ///
    /// `block` is alive.
    unsafe fn unlink(&self, block: NonNull<Block>) {
        // SAFETY: Alive (caller).
        let b = unsafe { block.as_ref() };
        let mut link = self.chain(b.c.as_ptr());
        loop {
            let p = link.load(Ordering::Relaxed);
            if p.is_null() {
                return;
            }
            if p == block.as_ptr() {
                link.store(b.next.load(Ordering::Relaxed), Ordering::Relaxed);
                b.next.store(core::ptr::null_mut(), Ordering::Relaxed);
                return;
            }
            // SAFETY: A linked block, alive (see `find`); the reference lives no longer than the
            // lock we hold.
            link = unsafe { &(*p).next };
        }
    }
}

impl Drop for TableGuard {
    fn drop(&mut self) {
        // SAFETY: We hold the lock, taken with these flags (type invariant).
        unsafe { c::gs_abi_devmem_table_unlock(self.flags) };
    }
}

/// What the table knows about a C allocation ([`CDevmem::lookup`]).
pub(crate) enum Lookup {
    /// A new handle of the allocation's block.
    Live(CDevmem),
    /// The block's last handle is being dropped: every device page of the allocation is gone,
    /// and `detached` is about to complete.
    Dying,
    /// No block: the allocation was never handed to a migration, or its block is gone
    /// (`detached` has completed).
    Absent,
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
    /// The first handle of the allocation `devmem`, with the core's state for it; the block is
    /// linked in the table.
    ///
    /// # Errors
    ///
    /// `ENOMEM`; `EBUSY` if `devmem` already has a block (a second migration into an allocation
    /// whose first one still owns it). `state` is dropped in both cases.
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
                next: AtomicPtr::new(core::ptr::null_mut()),
                state,
            },
            GFP_KERNEL,
        )
        .map_err(|_| code::ENOMEM)?;
        // SAFETY: `KBox::into_raw` never returns null.
        let block = unsafe { NonNull::new_unchecked(KBox::into_raw(block)) };
        let table = TableGuard::lock();
        if !table.find(devmem.as_ptr()).is_null() {
            drop(table);
            // SAFETY: Ours alone (never linked, no handle made).
            drop(unsafe { KBox::from_raw(block.as_ptr()) });
            return Err(code::EBUSY);
        }
        // SAFETY: Alive and unlinked; unlinked by the last handle's drop before it is freed.
        unsafe { table.link(block) };
        // INVARIANT: the one count of a fresh block, linked as the only block for `devmem`.
        Ok(Self { block })
    }

    /// A new handle of the block of the C allocation `devmem`, if it has a live one.
    pub(crate) fn lookup(devmem: NonNull<c::drm_pagemap_devmem>) -> Lookup {
        let table = TableGuard::lock();
        let Some(block) = NonNull::new(table.find(devmem.as_ptr())) else {
            return Lookup::Absent;
        };
        // SAFETY: A linked block is alive while we hold the lock (see `TableGuard::find`).
        let b = unsafe { block.as_ref() };
        let mut n = b.refs.load(Ordering::Relaxed);
        loop {
            if n == 0 {
                return Lookup::Dying;
            }
            match b
                .refs
                .compare_exchange_weak(n, n.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed)
            {
                // INVARIANT: the count just taken, from a block that had one (so its last
                // handle's drop has not started, and cannot finish before ours).
                Ok(_) => return Lookup::Live(Self { block }),
                Err(cur) => n = cur,
            }
        }
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

    /// After a migration that no longer needs the pre-migrate fence (the core dropped its
    /// flag), puts the fence and clears the C field, as upstream's `drm_pagemap_migrate_to_devmem`
    /// does on success (the driver's `devmem_release` then puts NULL).
    pub(crate) fn put_pre_migrate_fence(&self) {
        if self.state().has_pre_migrate_fence() {
            return;
        }
        let devmem = self.as_ptr();
        // SAFETY: Alive (block invariant: our handle keeps `devmem_release` from running). The
        // field is read only by migrations into this allocation (the core's flag is already
        // clear, so none reads it any more) and by `devmem_release`, which cannot run yet; there
        // is one migration per allocation, whose caller is the only writer.
        unsafe {
            let f = core::ptr::replace(
                core::ptr::addr_of_mut!((*devmem).pre_migrate_fence),
                core::ptr::null_mut(),
            );
            c::gs_abi_dma_fence_put(f);
        }
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

impl Clone for CDevmem {
    fn clone(&self) -> Self {
        self.block().refs.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: the count just taken.
        Self { block: self.block }
    }
}

impl Drop for CDevmem {
    /// The last handle (upstream's `drm_pagemap_zdd_destroy`): unlinks the block, completes
    /// `detached`, calls `devmem_release`, then drops the state's references (pagemap, mm,
    /// device). May run in `folio_free`, in atomic context: nothing here sleeps (see
    /// `migrate.rs`).
    fn drop(&mut self) {
        if self.block().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        {
            let table = TableGuard::lock();
            // SAFETY: The block is alive until we free it below.
            unsafe { table.unlink(self.block) };
        }
        // SAFETY: The last count, and unlinked: no handle exists and no lookup can reach the
        // block any more (lookups only reach linked blocks, under the lock).
        let block = unsafe { KBox::from_raw(self.block.as_ptr()) };
        let devmem = block.c.as_ptr();
        // Upstream's zdd destruction: detach, then release (the driver may free the memory,
        // possibly from this very context, which may be the page-free path: the op must not
        // sleep there, as upstream requires).
        // SAFETY: Alive until `devmem_release` (block invariant), which is called last.
        unsafe {
            k::complete_all(core::ptr::addr_of_mut!((*devmem).detached));
            if let Some(release) = (*devmem).ops.as_ref().and_then(|o| o.devmem_release) {
                release(devmem);
            }
        }
        // Then the references upstream's zdd drops after the release (`zdd->dpagemap`), and the
        // mm and device references of the core's state.
        drop(block);
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
