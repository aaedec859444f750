// SPDX-License-Identifier: GPL-2.0

//! Upstream's `drm_pagemap.c` migration API on the core: `drm_pagemap_devmem_init`,
//! `drm_pagemap_migrate_to_devmem`, `drm_pagemap_evict_to_ram`, `drm_pagemap_populate_mm`,
//! `drm_pagemap_pagemap_ops_get` (the `dev_pagemap_ops` of every pagemap a C driver creates with
//! it: `folio_free` and `migrate_to_ram`) and `drm_pagemap_page_to_dpagemap`.
//!
//! # What upstream does
//!
//! A driver describes a device-memory allocation (Xe: a VRAM buffer object) with
//! `drm_pagemap_devmem_init` and hands it, with one reference the call consumes, to
//! `drm_pagemap_migrate_to_devmem`, under the mmap read lock. That function allocates a *zdd*
//! (zone-device data: a kref, the allocation, a `drm_pagemap` reference), collects the source
//! pages with `migrate_vma_setup`, takes the allocation's device frames
//! (`populate_devmem_pfn`), initializes each destination page with one zdd reference in its
//! `zone_device_data`, copies (`copy_to_devmem`, or a peer's `copy_to_ram` for pages on another
//! device), and finalizes. From then on every device page keeps the zdd alive; the pagemap's
//! `folio_free` drops a page's reference, and the zdd's last reference completes
//! `devmem->detached` and calls `devmem_release` (the moment the driver may reuse the memory).
//! A CPU fault on a device page (`migrate_to_ram`) moves the faulting page's allocation back
//! around the fault, once the allocation's timeslice has expired; `drm_pagemap_evict_to_ram`
//! (Xe's TTM eviction) moves a whole allocation back by device frame, without the mmap lock,
//! retrying until `detached` completes.
//!
//! # How it maps onto the core
//!
//! The algorithms are the core's ([`gpusvm_core::migrate_to_devmem`],
//! [`gpusvm_core::migrate_to_ram`], [`gpusvm_core::evict_to_ram`], [`gpusvm_core::populate_mm`]),
//! with [`CAbi`] as the driver type: [`CPagemap`] over `struct drm_pagemap` and its ops,
//! [`CDevmem`] over `struct drm_pagemap_devmem` and its ops.
//!
//! The core's allocation *tracker* replaces the zdd: the core allocates it when a migration
//! attaches the allocation, stores its address in the `zone_device_data` of every destination
//! page it initializes (`KMm::device_page_init`), counts one reference per such page plus one
//! for the running migration, and drops the allocation handle it owns with its last reference
//! ([`gpusvm_core::device_page_free`], called from our `folio_free`). The zdd's `dpagemap`
//! reference is the [`CPagemap`] inside the allocation's [`gpusvm_core::DevmemState`].
//!
//! # Who owns what
//!
//! - The C `struct drm_pagemap_devmem` is the driver's, alive until its `devmem_release`.
//!   `drm_pagemap_devmem_init` only fills it, exactly as upstream; it cannot fail, so the Rust
//!   side of the allocation (a [`CDevmem`] block with the core's state) is created by
//!   `drm_pagemap_migrate_to_devmem`, which can fail.
//! - `drm_pagemap_migrate_to_devmem` consumes the caller's reference in every case: failures
//!   before the block exists call `devmem_release` directly (upstream's `err_out`, including the
//!   missing-ops case that upstream leaks); afterwards the reference is the block's, released by
//!   its last handle. The tracker owns one handle (for as long as device pages exist); this file
//!   holds another for the duration of a call.
//! - `drm_pagemap_evict_to_ram` finds the block of a C allocation through the table described
//!   in `devmem.rs` and holds a new handle during the eviction. Driver-held handles never keep
//!   the tracker alive, so eviction can tell when every device page is gone.
//!
//! # `folio_free`: contexts, and why nothing there sleeps
//!
//! Core mm calls `folio_free` (through `free_zone_device_folio`) when the last reference to one
//! of our device pages goes away: in `migrate_vma_finalize`/`migrate_device_finalize` (the
//! migrating task), in the CPU-fault path's `put_page` after `migrate_to_ram`, in
//! `zap_pte_range` for munmap, `madvise` and process exit (under the page-table spinlock, with
//! preemption disabled), and wherever else a transient page reference is dropped, which
//! upstream's zdd documentation counts as possibly interrupt context. So it must not sleep.
//! What it does: clear the page's `zone_device_data` (a store) and drop the page's tracker
//! reference (an atomic decrement). The last one frees the tracker (`kfree`) and drops its
//! handle (an atomic decrement); the last handle unlinks its block under the table's spinlock
//! (taken with interrupts saved), `kfree`s it, calls `complete_all(&devmem->detached)` (a
//! spinlock), the driver's `devmem_release` (upstream calls it from the same place, so the
//! driver already defers sleeping work: Xe's `xe_bo_put_async`), then drops the pagemap
//! reference (`drm_pagemap_put`, as upstream's zdd does: its release defers to a worker), an
//! `mmgrab` reference (`mmdrop`, which does not sleep) and a device reference (`put_device`,
//! never the last one: the pagemap's provider device outlives its pages). No allocation, no
//! mutex, no wait.
//!
//! Our device pages are always order 0 (the core initializes them one by one, and the shim never
//! asks `migrate_vma` for compound pages), so a device folio is never split and the table needs
//! no `folio_split` (upstream's copies the zdd reference to the new folio).

use core::ptr::NonNull;

use gpusvm_core::{
    code, DevmemEnv, DevmemState, MigrateDetails, MmapReadGuard, PageShift, Result, Span,
};
use gpusvm_kshim::{ext, KAlloc, KClock, KDma, KMm, PAGE_SHIFT};
use kernel::bindings as k;
use kernel::ffi::{c_int, c_ulong};

use crate::bindings as c;
use crate::devmem::{CDevmem, Lookup};
use crate::driver::CAbi;
use crate::pagemap::CPagemap;

/// A core result as upstream's return value (0 or a negative errno).
fn ret(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `drm_pagemap_devmem_init`: fills the driver's allocation descriptor, as upstream (the
/// completion, the device, the mm, the ops, the pagemap, the size and the pre-migrate fence,
/// which the allocation now owns). Nothing else: the core's state for the allocation is created
/// when it is first migrated.
///
/// # Safety
///
/// `devmem_allocation` is NULL (ignored) or valid for writes and not in use by a migration; the
/// other arguments are what upstream documents (`dev` the device that copies, `mm` the address
/// space, `dpagemap` the pagemap the memory comes from, `size` in bytes).
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_devmem_init(
    devmem_allocation: *mut c::drm_pagemap_devmem,
    dev: *mut k::device,
    mm: *mut k::mm_struct,
    ops: *const c::drm_pagemap_devmem_ops,
    dpagemap: *mut c::drm_pagemap,
    size: usize,
    pre_migrate_fence: *mut k::dma_fence,
) {
    let d = devmem_allocation;
    if d.is_null() {
        return;
    }
    // SAFETY: Valid for writes (caller); field by field, as upstream.
    unsafe {
        k::init_completion(core::ptr::addr_of_mut!((*d).detached));
        (*d).dev = dev;
        (*d).mm = mm;
        (*d).ops = ops;
        (*d).dpagemap = dpagemap;
        (*d).size = size;
        (*d).pre_migrate_fence = pre_migrate_fence;
    }
}

/// Calls the allocation's `devmem_release` (upstream's `err_out`: a failure before anything
/// owns the caller's reference).
///
/// # Safety
///
/// `devmem` was initialized by `drm_pagemap_devmem_init` and the caller's reference is being
/// given up.
unsafe fn release_unattached(devmem: NonNull<c::drm_pagemap_devmem>) {
    let d = devmem.as_ptr();
    // SAFETY: Valid (caller); `ops` is NULL or the driver's static table.
    if let Some(release) = unsafe { (*d).ops.as_ref() }.and_then(|o| o.devmem_release) {
        // SAFETY: The driver's op on its own allocation, once for the reference given up.
        unsafe { release(d) };
    }
}

/// The core's options of a migration from upstream's `struct drm_pagemap_migrate_details`
/// (NULL: the defaults).
///
/// Device-private sources of a peer pagemap are copied by the peer (its `copy_to_ram` into our
/// pages, mapped for the peer), as upstream's `drm_pagemap_migrate_remote_to_local` does.
///
/// # Safety
///
/// `mdetails` is NULL or valid for reads.
unsafe fn details_of(mdetails: *const c::drm_pagemap_migrate_details) -> MigrateDetails {
    let mut details = MigrateDetails {
        source_peer_migrates: true,
        ..MigrateDetails::default()
    };
    // SAFETY: Caller.
    if let Some(m) = unsafe { mdetails.as_ref() } {
        details.timeslice_ms = m.timeslice_ms as u64;
        details.can_migrate_same_pagemap = m.can_migrate_same_pagemap() != 0;
    }
    details
}

/// The first handle of `devmem`: the core's state from the C descriptor's mm, pagemap, device,
/// size and fence, in a new block.
///
/// # Safety
///
/// `devmem` was initialized by `drm_pagemap_devmem_init` and stays alive until its
/// `devmem_release` op is called.
unsafe fn new_handle(devmem: NonNull<c::drm_pagemap_devmem>) -> Result<CDevmem> {
    let d = devmem.as_ptr();
    // SAFETY: Valid (caller); plain field reads through the raw pointer.
    let (ops, dev, mm, dpagemap, size, fence) = unsafe {
        (
            (*d).ops,
            (*d).dev,
            (*d).mm,
            (*d).dpagemap,
            (*d).size,
            (*d).pre_migrate_fence,
        )
    };
    // SAFETY: NULL or the driver's static table.
    let ops = unsafe { ops.as_ref() }.ok_or(code::EINVAL)?;
    if ops.populate_devmem_pfn.is_none() || ops.copy_to_devmem.is_none() || ops.copy_to_ram.is_none()
    {
        return Err(code::EOPNOTSUPP);
    }
    let env = DevmemEnv {
        // SAFETY: The allocation's mm, valid while the caller migrates into it (it holds its
        // mmap lock); `grab` takes the `mmgrab` reference the state keeps.
        mm: unsafe { KMm::grab(mm) }.ok_or(code::EINVAL)?,
        // SAFETY: The caller holds a reference on the allocation's pagemap (upstream's
        // `drm_pagemap_zdd_alloc` takes another one, as this does).
        pagemap: unsafe { CPagemap::get(dpagemap) }.ok_or(code::EINVAL)?,
        // SAFETY: The driver's registered device, set up for DMA (upstream maps system pages
        // for it in the same way).
        dev: unsafe { KDma::new(dev) }.ok_or(code::EINVAL)?,
        alloc: KAlloc,
        clock: KClock,
        page: PageShift::new(PAGE_SHIFT)?,
    };
    let state = DevmemState::new(env, size as u64, !fence.is_null())?;
    // SAFETY: Caller.
    unsafe { CDevmem::new(devmem, state) }
}

/// `drm_pagemap_migrate_to_devmem`: migrates `[start, end)` of `mm` into the allocation, with
/// the core's [`gpusvm_core::migrate_to_devmem`]. The caller's reference on the allocation is
/// consumed in every case.
///
/// Deviations from upstream (all on paths where upstream misbehaves or cannot be reached by Xe):
/// missing copy/pfn ops fail with `-EOPNOTSUPP` *and* release the reference (upstream leaks it);
/// NULL pointers fail with `-EINVAL` instead of crashing (NULL `mdetails`: the defaults); an
/// allocation whose block still exists (a second migration into an allocation a first one
/// attached) fails with `-EBUSY` (upstream would re-initialize device pages still in use); the
/// core refuses an allocation smaller than the range (`-EINVAL`). `timeslice_expiration` of the
/// C descriptor is not written: the core keeps the timeslice in its state (only upstream's own
/// C read the field).
///
/// # Safety
///
/// As upstream: `devmem_allocation` was initialized by `drm_pagemap_devmem_init` and the caller
/// gives up one reference on it; the caller holds the mmap lock of `mm` (at least for reading)
/// and a user reference on it (`mmget`) for the whole call; `mdetails` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_migrate_to_devmem(
    devmem_allocation: *mut c::drm_pagemap_devmem,
    mm: *mut k::mm_struct,
    start: c_ulong,
    end: c_ulong,
    mdetails: *const c::drm_pagemap_migrate_details,
) -> c_int {
    let Some(devmem) = NonNull::new(devmem_allocation) else {
        return code::EINVAL.to_errno();
    };
    // SAFETY: Caller.
    ret(unsafe { migrate_to_devmem(devmem, mm, start, end, mdetails) })
}

/// The body of [`drm_pagemap_migrate_to_devmem`].
///
/// # Safety
///
/// As for [`drm_pagemap_migrate_to_devmem`], with a non-NULL allocation.
unsafe fn migrate_to_devmem(
    devmem: NonNull<c::drm_pagemap_devmem>,
    mm: *mut k::mm_struct,
    start: c_ulong,
    end: c_ulong,
    mdetails: *const c::drm_pagemap_migrate_details,
) -> Result {
    let prepared = (|| {
        if mm.is_null() {
            return Err(code::EINVAL);
        }
        // SAFETY: A valid mm (caller), whose mmap lock the caller holds: upstream's assertion.
        unsafe { c::gs_abi_mmap_assert_locked(mm) };
        let span = Span::new(start as u64, end as u64)?;
        // SAFETY: Valid during the call (the caller holds its mmap lock and a user reference).
        let kmm = unsafe { KMm::grab(mm) }.ok_or(code::EINVAL)?;
        // SAFETY: Caller.
        let handle = unsafe { new_handle(devmem) }?;
        Ok((handle, kmm, span))
    })();
    let (handle, kmm, span) = match prepared {
        Ok(p) => p,
        Err(e) => {
            // SAFETY: Nothing owns the caller's reference yet: give it up as upstream's
            // `err_out` does.
            unsafe { release_unattached(devmem) };
            return Err(e);
        }
    };
    // SAFETY: Caller.
    let details = unsafe { details_of(mdetails) };
    // Our own handle for after the core's call, which consumes `handle` (into its tracker, or
    // dropping it on failure): it keeps the block, and so the C descriptor, from being released
    // while we finish, even if every new device page is freed right after finalization.
    let keep = handle.clone();
    let r = {
        // SAFETY: The caller holds the mmap lock of `mm` for the whole call.
        let lock = unsafe { MmapReadGuard::assume_held(&kmm) };
        gpusvm_core::migrate_to_devmem::<CAbi>(handle, &lock, span, &details)
    };
    if r.is_ok() {
        keep.put_pre_migrate_fence();
    }
    // The last handle if the migration failed or left no device page: the allocation is
    // detached and released here (upstream's final `drm_pagemap_zdd_put`).
    drop(keep);
    r
}

/// `drm_pagemap_evict_to_ram`: moves every device page of the allocation back to system memory
/// with the core's [`gpusvm_core::evict_to_ram`] (by device frame, without the mmap lock, up to
/// three attempts, `-EFAULT` if the mm is exiting), and succeeds once every device page is gone.
///
/// Deviations from upstream: an allocation that was never migrated, or whose device pages are
/// all gone already, has nothing to evict and returns 0 at once (upstream retries, and returns
/// `-EBUSY` for the former); if the last page is being freed concurrently, this waits for
/// `detached` (which completes without sleeping) and returns 0. The mm user reference of each
/// attempt is dropped with `mmput`, not `mmput_async` (the core's mm seam has only the one).
///
/// # Safety
///
/// `devmem_allocation` is NULL or an allocation initialized by `drm_pagemap_devmem_init` that
/// the caller keeps alive for the call (Xe: the buffer object being evicted); process context.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_evict_to_ram(
    devmem_allocation: *mut c::drm_pagemap_devmem,
) -> c_int {
    let Some(devmem) = NonNull::new(devmem_allocation) else {
        return code::EINVAL.to_errno();
    };
    match CDevmem::lookup(devmem) {
        // Dropping the handle may release the allocation, when every page went in the meantime.
        Lookup::Live(handle) => ret(gpusvm_core::evict_to_ram::<CAbi>(&handle)),
        Lookup::Dying => {
            // SAFETY: The caller keeps the descriptor alive; the dying block's drop completes
            // `detached` without sleeping or waiting for us.
            unsafe { k::wait_for_completion(core::ptr::addr_of_mut!((*devmem.as_ptr()).detached)) };
            0
        }
        Lookup::Absent => 0,
    }
}

/// `drm_pagemap_populate_mm`: takes a user reference on `mm` (`-EFAULT` if it is exiting) and
/// its mmap read lock, and calls the pagemap's `populate_mm` op, with the core's
/// [`gpusvm_core::populate_mm`]. An empty or reversed range fails with `-EINVAL`, a NULL
/// pagemap with `-EINVAL`, a NULL mm with `-EFAULT`, a pagemap without the op with
/// `-EOPNOTSUPP` (upstream would crash on each).
///
/// # Safety
///
/// `dpagemap` is NULL or a pagemap the caller holds a reference on; `mm` is NULL or a valid
/// `mm_struct` (the caller holds at least an `mmgrab` reference); the mmap lock is not held.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_populate_mm(
    dpagemap: *mut c::drm_pagemap,
    start: c_ulong,
    end: c_ulong,
    mm: *mut k::mm_struct,
    timeslice_ms: c_ulong,
) -> c_int {
    // SAFETY: NULL or referenced by the caller; the handle takes (and drops) another reference.
    let Some(pagemap) = (unsafe { CPagemap::get(dpagemap) }) else {
        return code::EINVAL.to_errno();
    };
    // SAFETY: NULL or valid for the call (caller).
    let Some(kmm) = (unsafe { KMm::grab(mm) }) else {
        return code::EFAULT.to_errno();
    };
    let r = Span::new(start as u64, end as u64)
        .and_then(|span| gpusvm_core::populate_mm::<CAbi>(&pagemap, span, &kmm, timeslice_ms as u64));
    ret(r)
}

// `folio_free` and `migrate_to_ram` are the shim's, for driver type `CAbi`
// (`gpusvm_kshim::pagemap`): the same ops a Rust driver's `DevicePrivate` region has. One
// difference from upstream's `drm_pagemap_migrate_to_ram`: `ENOMEM` is `VM_FAULT_OOM`, not
// `VM_FAULT_SIGBUS`.

/// The `dev_pagemap_ops` of every pagemap a C driver sets up with
/// [`drm_pagemap_pagemap_ops_get`] (upstream's `drm_pagemap_pagemap_ops`, without `folio_split`:
/// see the module docs).
static PAGEMAP_OPS: k::dev_pagemap_ops = k::dev_pagemap_ops {
    folio_free: Some(gpusvm_kshim::pagemap::folio_free::<CAbi>),
    migrate_to_ram: Some(gpusvm_kshim::pagemap::migrate_to_ram::<CAbi>),
    memory_failure: None,
    folio_split: None,
};

/// `drm_pagemap_pagemap_ops_get`: the `dev_pagemap_ops` for a driver's `dev_pagemap`. Also
/// registers the table with the shim ([`gpusvm_kshim::pagemap::register_core_ops`]), so that
/// [`KMm`]'s page classification reports pages of such pagemaps as the core's (their
/// zone-device data is the core's tracker); a driver gets the table only from here, before it
/// calls `memremap_pages`, so the registration precedes every page.
///
/// # Safety
///
/// None beyond the C ABI (no arguments); `unsafe` for upstream's prototype.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_pagemap_ops_get() -> *const k::dev_pagemap_ops {
    // SAFETY: `PAGEMAP_OPS` is the only way pages reach our callbacks; those pages get their
    // zone-device data only from the core's `device_page_init` for `CAbi`, the only driver type
    // of this module (it creates no `DevicePrivate` region), and `folio_free` clears it before
    // passing it, once per page, to `device_page_free::<CAbi>`.
    if unsafe { gpusvm_kshim::pagemap::register_core_ops(&PAGEMAP_OPS) }.is_err() {
        // Not reachable (no other table is registered in this module); the pages would then be
        // classified as foreign: migrations refuse them (EBUSY), nothing unsafe.
        kernel::pr_err!("drm_pagemap_pagemap_ops_get: another ops table is registered\n");
    }
    &PAGEMAP_OPS
}

/// `drm_pagemap_page_to_dpagemap`: the pagemap a device page was populated from (its
/// allocation's `dpagemap`, reached through the core's tracker in the page's zone-device data),
/// or NULL for a page that is not one of ours (upstream's result is undefined there).
///
/// # Safety
///
/// `page` is NULL or a valid page that the caller keeps from being freed during the call (a
/// reference, or an HMM walk the caller validates); the result is valid as long as the caller
/// holds such a guarantee or a reference on the pagemap.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_page_to_dpagemap(page: *mut k::page) -> *mut c::drm_pagemap {
    if page.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: A valid page (caller).
    if !unsafe { ext::gs_is_zone_device_page(page) } {
        return core::ptr::null_mut();
    }
    // SAFETY: A ZONE_DEVICE page has a pgmap, valid while the page is.
    let pgmap = unsafe { ext::gs_page_pgmap(page) };
    // SAFETY: As above; `ops` is constant once the pagemap has pages.
    if pgmap.is_null() || !core::ptr::eq(unsafe { (*pgmap).ops }, &PAGEMAP_OPS) {
        return core::ptr::null_mut();
    }
    // SAFETY: A valid page (caller).
    let zone_data = unsafe { ext::gs_page_zone_device_data(page) } as usize;
    // SAFETY: Pages of pagemaps with our ops carry the core's tracker for `CAbi` (or zero), and
    // the caller keeps the page from being freed during the call.
    let Some(devmem) = (unsafe { gpusvm_core::device_page_devmem::<CAbi>(zone_data) }) else {
        return core::ptr::null_mut();
    };
    // SAFETY: The page's tracker owns a handle, so the descriptor is alive (not released).
    unsafe { (*devmem.as_ptr()).dpagemap }
}

// Every function above has upstream's prototype: a mismatch fails the build here.
const _: () = {
    let _: [unsafe extern "C" fn(*mut c::drm_pagemap_devmem, *mut k::device, *mut k::mm_struct, *const c::drm_pagemap_devmem_ops, *mut c::drm_pagemap, usize, *mut k::dma_fence); 2] =
        [drm_pagemap_devmem_init, c::decl::drm_pagemap_devmem_init];
    let _: [unsafe extern "C" fn(*mut c::drm_pagemap_devmem, *mut k::mm_struct, c_ulong, c_ulong, *const c::drm_pagemap_migrate_details) -> c_int; 2] =
        [drm_pagemap_migrate_to_devmem, c::decl::drm_pagemap_migrate_to_devmem];
    let _: [unsafe extern "C" fn(*mut c::drm_pagemap_devmem) -> c_int; 2] =
        [drm_pagemap_evict_to_ram, c::decl::drm_pagemap_evict_to_ram];
    let _: [unsafe extern "C" fn(*mut c::drm_pagemap, c_ulong, c_ulong, *mut k::mm_struct, c_ulong) -> c_int; 2] =
        [drm_pagemap_populate_mm, c::decl::drm_pagemap_populate_mm];
    let _: [unsafe extern "C" fn() -> *const k::dev_pagemap_ops; 2] =
        [drm_pagemap_pagemap_ops_get, c::decl::drm_pagemap_pagemap_ops_get];
    let _: [unsafe extern "C" fn(*mut k::page) -> *mut c::drm_pagemap; 2] =
        [drm_pagemap_page_to_dpagemap, c::decl::drm_pagemap_page_to_dpagemap];
};
