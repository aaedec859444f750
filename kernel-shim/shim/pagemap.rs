// SPDX-License-Identifier: GPL-2.0

//! Device-private memory whose pages the core manages: `memremap_pages` and the
//! `dev_pagemap_ops` that route core mm's callbacks into the core.
//!
//! - `folio_free` (called when a device page's refcount drops to zero: after migration back to
//!   RAM, munmap, process exit, eviction) → [`gpusvm_core::device_page_free`], which drops the
//!   page's reference on its allocation tracker and releases the allocation with its last page;
//! - `migrate_to_ram` (the CPU touched a device-private page) → [`gpusvm_core::migrate_to_ram`].
//!
//! Pagemaps that a C driver creates itself, with an ops table of another crate that routes the
//! same callbacks into the core (`drm_gpusvm_helper`'s `drm_pagemap_pagemap_ops_get()`), are
//! made known to [`KMm`]'s page classification by [`register_core_ops`].

use core::cell::UnsafeCell;
use core::ffi::{c_void, CStr};
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};

use gpusvm_core::{code, Error, KBox, MmapReadGuard, Owner, PgmapId, Result, SvmDriver};
use kernel::bindings;

use crate::{ext, is_err_ptr, KAlloc, KMm, PAGE_SHIFT};

const MAX_PAGEMAPS: usize = 8;

/// The pagemaps whose pages the core manages (read by [`KMm`]'s page classification).
static REGISTRY: [AtomicPtr<bindings::dev_pagemap>; MAX_PAGEMAPS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_PAGEMAPS];

fn register(pgmap: *mut bindings::dev_pagemap) -> Result {
    for slot in REGISTRY.iter() {
        if slot
            .compare_exchange(
                core::ptr::null_mut(),
                pgmap,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(code::ENOMEM)
}

fn unregister(pgmap: *mut bindings::dev_pagemap) {
    for slot in REGISTRY.iter() {
        let _ = slot.compare_exchange(
            pgmap,
            core::ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// Whether `pgmap` belongs to a [`DevicePrivate`] region.
pub(crate) fn is_registered(pgmap: *const bindings::dev_pagemap) -> bool {
    !pgmap.is_null()
        && REGISTRY
            .iter()
            .any(|slot| core::ptr::eq(slot.load(Ordering::Acquire), pgmap))
}

/// The `dev_pagemap_ops` table registered by [`register_core_ops`] (NULL if none).
static CORE_OPS: AtomicPtr<bindings::dev_pagemap_ops> = AtomicPtr::new(core::ptr::null_mut());

/// Declares that every `dev_pagemap` whose `ops` is `ops` holds pages the core manages, for
/// pagemaps that this shim did not create: a C driver's own `dev_pagemap` set up with
/// `drm_pagemap_pagemap_ops_get()` (Xe's `xe_pagemap_create`), whose ops table the
/// `drm_gpusvm_helper` module owns. [`KMm`]'s page classification then reports their pages
/// like those of a [`DevicePrivate`] region: as the core's, with their zone-device data.
///
/// One table per module (the shim is linked into each module that uses it, with its own
/// registry); registering the same table again succeeds.
///
/// # Errors
///
/// `EBUSY` if another table is registered already.
///
/// # Safety
///
/// `ops` is the only way pages of such pagemaps are handed to core mm's callbacks, and:
/// - every page of a pagemap with these ops gets its zone-device data only from the core's
///   [`gpusvm_core::Mm::device_page_init`] (through [`KMm`]), for the one driver type `D` that
///   this module's other [`DevicePrivate`] regions (if any) also use;
/// - `ops.folio_free` clears the page's zone-device data, then passes the old value (if not
///   NULL) to [`gpusvm_core::device_page_free`]`::<D>`, exactly once per freed page — which is
///   what makes [`KMm`]'s classification sound (see the `Mm` impl).
pub unsafe fn register_core_ops(ops: &'static bindings::dev_pagemap_ops) -> Result {
    let p = core::ptr::from_ref(ops).cast_mut();
    match CORE_OPS.compare_exchange(core::ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => Ok(()),
        Err(cur) if cur == p => Ok(()),
        Err(_) => Err(code::EBUSY),
    }
}

/// Whether the pages of `pgmap` are the core's: `pgmap` is a [`DevicePrivate`] region of this
/// module, or uses the ops table registered with [`register_core_ops`].
///
/// # Safety
///
/// `pgmap` is NULL or a valid `dev_pagemap` (e.g. `page_pgmap()` of a `ZONE_DEVICE` page the
/// caller holds or found through a walk under the mmap lock).
pub unsafe fn is_core_pgmap(pgmap: *const bindings::dev_pagemap) -> bool {
    if pgmap.is_null() {
        return false;
    }
    if is_registered(pgmap) {
        return true;
    }
    let ops = CORE_OPS.load(Ordering::Acquire);
    // SAFETY: `pgmap` is valid (caller); its `ops` is set before the pagemap's pages exist
    // (`memremap_pages`) and never changes.
    !ops.is_null() && core::ptr::eq(unsafe { (*pgmap).ops }, ops)
}

/// `dev_pagemap_ops::folio_free` for a driver of type `D`: the one of [`DevicePrivate<D>`], and of
/// any pagemap whose pages the core initializes for `D` (the Rust DRM_GPUSVM's
/// `drm_pagemap_pagemap_ops_get`). Clears the zone-device data, then drops the page's reference
/// on its allocation tracker ([`gpusvm_core::device_page_free`]). Any context; never sleeps.
///
/// # Safety
///
/// Called by core mm with a folio of such a pagemap whose refcount reached zero, where every
/// page's zone-device data comes only from the core's `device_page_init` for `D`. The shim only
/// ever initializes order-0 device pages, so the folio is one page.
pub unsafe extern "C" fn folio_free<D: SvmDriver>(folio: *mut bindings::folio) {
    // A folio starts with its head page (`folio_page(folio, 0)` is `&folio->page`).
    let page = folio.cast::<bindings::page>();
    // SAFETY: `page` is valid (caller); we are its only user now that it is free.
    let zone_data = unsafe { ext::gs_page_zone_device_data(page) } as usize;
    // SAFETY: As above. Cleared first so that the page is never classified as the core's again
    // until `device_page_init` sets it.
    unsafe { ext::gs_page_set_zone_device_data(page, core::ptr::null_mut()) };
    if zone_data != 0 {
        // SAFETY: Pages of this region get their zone-device data only from the core's
        // `device_page_init` for driver type `D`, and this is the one free of that page.
        unsafe { gpusvm_core::device_page_free::<D>(zone_data) };
    }
}

/// `dev_pagemap_ops::migrate_to_ram` for a driver of type `D`: the CPU fault op, running the
/// core's [`gpusvm_core::migrate_to_ram`] (`VM_FAULT_OOM` for `ENOMEM`, `VM_FAULT_SIGBUS` for any
/// other error).
///
/// # Safety
///
/// Called by core mm's `do_swap_page` for a device-private page of a pagemap as for
/// [`folio_free`], with the mmap lock held for reading (core mm retries the fault under the mmap
/// lock when it arrives under a per-VMA lock) and a reference on the page.
pub unsafe extern "C" fn migrate_to_ram<D: SvmDriver<Mm = KMm>>(
    vmf: *mut bindings::vm_fault,
) -> bindings::vm_fault_t {
    // SAFETY: `vmf` is valid for the call.
    let (page, addr, mm) = unsafe {
        (
            ext::gs_vmf_page(vmf),
            ext::gs_vmf_address(vmf),
            ext::gs_vmf_mm(vmf),
        )
    };
    // SAFETY: The faulting task's mm is valid during the fault.
    let Some(mm) = (unsafe { KMm::grab(mm) }) else {
        return ext::GS_CONST_VM_FAULT_SIGBUS;
    };
    // SAFETY: The fault handler holds a reference on `page` (6.12's `do_swap_page` takes one
    // with `get_page` before calling us; it does not lock the page).
    let (zone_data, pfn) = unsafe {
        (
            ext::gs_page_zone_device_data(page) as usize,
            ext::gs_page_to_pfn(page) as u64,
        )
    };
    if zone_data == 0 {
        return ext::GS_CONST_VM_FAULT_SIGBUS;
    }
    // SAFETY: The fault handler holds the mmap lock for the whole call (see above).
    let lock = unsafe { MmapReadGuard::assume_held(&mm) };
    // SAFETY: `zone_data` is the core's data for `page` (set by `device_page_init`, cleared only
    // when the page is freed, which the fault handler's reference prevents), and that
    // reference is held for the whole call: what the core's contract asks. The page is not
    // locked here (6.12's `do_swap_page` only takes the reference); `migrate_vma_setup` locks
    // the pages it collects, this one included, with a trylock.
    let r = unsafe { gpusvm_core::migrate_to_ram::<D>(&lock, addr as u64, pfn, zone_data) };
    match r {
        Ok(()) => 0,
        Err(e) if e == code::ENOMEM => ext::GS_CONST_VM_FAULT_OOM,
        Err(_) => ext::GS_CONST_VM_FAULT_SIGBUS,
    }
}

/// A region of device-private memory (`MEMORY_DEVICE_PRIVATE`) registered with
/// `memremap_pages`: struct pages without CPU-addressable memory behind them, standing for a
/// device's memory. Its pages are handed out by the driver (`populate_pfns`) and managed by the
/// core.
///
/// # Invariants
///
/// `pgmap` was registered with `memremap_pages` (with [`DevicePrivate::OPS`]) and in the
/// registry, and `res` requested, for `size` bytes; all three are undone by drop. The value is
/// boxed and never moves.
pub struct DevicePrivate<D: SvmDriver> {
    pgmap: UnsafeCell<bindings::dev_pagemap>,
    res: NonNull<bindings::resource>,
    size: u64,
    _driver: PhantomData<fn() -> D>,
}

// SAFETY: After registration only core mm touches the pagemap; the fields we read are constant.
unsafe impl<D: SvmDriver> Send for DevicePrivate<D> {}
// SAFETY: As above.
unsafe impl<D: SvmDriver> Sync for DevicePrivate<D> {}

impl<D: SvmDriver<Mm = KMm>> DevicePrivate<D> {
    /// The ops core mm calls for pages of the region.
    pub const OPS: &'static bindings::dev_pagemap_ops = &bindings::dev_pagemap_ops {
        folio_free: Some(folio_free::<D>),
        migrate_to_ram: Some(migrate_to_ram::<D>),
        memory_failure: None,
        folio_split: None,
    };

    /// Requests a free physical range of at least `size` bytes (the kernel rounds the request up
    /// to a memory section) and creates struct pages for `size` bytes of it (a multiple of
    /// 2 MiB, the memory-hotplug subsection), with `owner` as the device-private owner
    /// cookie (`pgmap->owner`).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a bad size; `ENOMEM`; the kernel's errors.
    pub fn new(size: u64, owner: Owner, name: &'static CStr) -> Result<KBox<Self, KAlloc>> {
        if size == 0 || size % (2 << 20) != 0 {
            return Err(code::EINVAL);
        }
        let csize = kernel::ffi::c_ulong::try_from(size).map_err(|_| code::EINVAL)?;
        // SAFETY: `iomem_resource` is the kernel's root resource; the name is static.
        let res = unsafe {
            bindings::request_free_mem_region(
                core::ptr::addr_of_mut!(bindings::iomem_resource),
                csize,
                name.as_ptr().cast(),
            )
        };
        if res.is_null() {
            return Err(code::ENOMEM);
        }
        if is_err_ptr(res) {
            return Err(Error::from_errno(res as isize as i32));
        }
        // SAFETY: `res` was just returned by a successful request and is not shared yet. The
        // region is rounded up to the memory section size (128 MiB on x86_64); only `size`
        // bytes of it get struct pages.
        let (start, res_len) = unsafe { ((*res).start, (*res).end - (*res).start + 1) };
        let end = start + size - 1;
        let release = || {
            // SAFETY: Releases the whole region requested above.
            unsafe { bindings::release_mem_region(start, res_len) }
        };
        // SAFETY: An all-zero `dev_pagemap` is the initial state `memremap_pages` expects (C
        // drivers kzalloc it).
        let pgmap = unsafe { MaybeUninit::<bindings::dev_pagemap>::zeroed().assume_init() };
        let this = Self {
            pgmap: UnsafeCell::new(pgmap),
            // `res` is not NULL (checked above).
            res: NonNull::new(res).ok_or(code::ENOMEM)?,
            size,
            _driver: PhantomData,
        };
        let this = match KBox::try_new(this, KAlloc) {
            Ok(b) => b,
            Err((e, this)) => {
                core::mem::forget(this);
                release();
                return Err(e);
            }
        };
        let pg = this.pgmap.get();
        // SAFETY: `pg` points into the box, at its final address, not yet shared.
        unsafe {
            (*pg).type_ = bindings::memory_type_MEMORY_DEVICE_PRIVATE;
            (*pg).nr_range = 1;
            let range = (*pg).__bindgen_anon_1.range.as_mut();
            range.start = start;
            range.end = end;
            (*pg).ops = Self::OPS;
            (*pg).owner = owner.0 as *mut c_void;
        }
        if let Err(e) = register(pg) {
            // The registry is full: not registered with core mm either.
            Self::free_unregistered(this);
            release();
            return Err(e);
        }
        // SAFETY: `pg` is a fully set-up pagemap at its final address.
        let p = unsafe { bindings::memremap_pages(pg, ext::gs_numa_node_id()) };
        if p.is_null() || is_err_ptr(p) {
            unregister(pg);
            Self::free_unregistered(this);
            release();
            return Err(if p.is_null() {
                code::EFAULT
            } else {
                Error::from_errno(p as isize as i32)
            });
        }
        // INVARIANT: registered with memremap_pages and the registry, region requested.
        Ok(this)
    }

    /// Frees the box of a region `memremap_pages` did not register, without running `Drop`
    /// (which would `memunmap_pages` and release the region). The caller releases the region.
    fn free_unregistered(this: KBox<Self, KAlloc>) {
        let (raw, alloc) = KBox::into_raw(this);
        // SAFETY: `raw` came from a `KBox` allocated by `KAlloc` as an object of this layout and
        // is not used again; the fields need no drop glue (`UnsafeCell<dev_pagemap>`, a
        // pointer, an integer, `PhantomData`), and what `Drop` would undo was never done.
        unsafe {
            gpusvm_core::Allocator::free(
                &alloc,
                raw.cast(),
                core::alloc::Layout::new::<Self>(),
                gpusvm_core::AllocKind::Object,
            )
        };
    }

    /// The first page frame of the region.
    pub fn first_pfn(&self) -> u64 {
        // SAFETY: `res` stays valid until drop (type invariant).
        unsafe { self.res.as_ref().start >> PAGE_SHIFT }
    }

    /// Number of pages.
    pub fn npages(&self) -> u64 {
        self.size >> PAGE_SHIFT
    }

    /// Whether `pfn` is a page of the region.
    pub fn contains(&self, pfn: u64) -> bool {
        pfn >= self.first_pfn() && pfn - self.first_pfn() < self.npages()
    }

    /// The pagemap's identity as the core sees it.
    pub fn pgmap_id(&self) -> PgmapId {
        PgmapId(self.pgmap.get() as usize)
    }
}

impl<D: SvmDriver> Drop for DevicePrivate<D> {
    /// `memunmap_pages` waits until every page of the region is free: the driver must have
    /// evicted its allocations first.
    fn drop(&mut self) {
        let pg = self.pgmap.get();
        // SAFETY: Registered by `new` (type invariant).
        unsafe { bindings::memunmap_pages(pg) };
        unregister(pg);
        // SAFETY: `res` is valid until here (type invariant); this releases the whole region
        // (which may be larger than `size`, see `new`).
        unsafe {
            let res = self.res.as_ref();
            bindings::release_mem_region(res.start, res.end - res.start + 1);
        }
    }
}
