// SPDX-License-Identifier: GPL-2.0

//! The virtual GPU: its "VRAM" (device-private pages backed by real system pages), its
//! device-memory allocations, its pagemap, its copy engine and the character device.
//!
//! - VRAM: [`VRAM_PAGES`] device-private pages registered with `memremap_pages`
//!   ([`DevicePrivate`]); page `i` of the region is backed by the system page `backing[i]`, which
//!   the "GPU" reads and writes.
//! - Allocations ([`DmirrorDevmem`], the core's [`DevmemAllocation`]): a set of VRAM pages,
//!   counted; the core's tracker owns one handle while any of its pages is in use, so the last
//!   device page freed by core mm releases the pages (Xe: a TTM buffer object).
//! - Copy engine: `copy_to_devmem`/`copy_to_ram` copy between backing pages and system pages
//!   addressed by the bus addresses the core mapped (the device uses direct DMA, so a bus
//!   address names a physical page).
//! - Pagemap ([`DmirrorPagemap`], the core's [`Pagemap`]): maps VRAM pages for the GPU as
//!   VRAM offsets and populates spans of an mm (allocate, then `migrate_to_devmem`).

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use gpusvm_core::{
    code, migrate_to_devmem, CopyBatch, DevmemAllocation, DevmemEnv, DevmemState, DmaDirection,
    DmaEntry, KArray, KBox as CoreBox, MigrateDetails, MmapReadGuard, Owner, PageShift, Pagemap,
    PgmapId, Protocol, Span,
};
use gpusvm_kshim::{ext, DevicePrivate, KAlloc, KClock, KDma, KMm, PAGE_SHIFT, PAGE_SIZE};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::SpinLock;

use crate::driver::Drv;
use crate::file;

/// VRAM size: 16 MiB.
pub(crate) const VRAM_PAGES: usize = 4096;
/// Largest allocation (one 2 MiB migration chunk).
pub(crate) const MAX_ALLOC_PAGES: usize = 512;

// VRAM page indices are stored as `u16` in [`DevmemInner`].
const _: () = assert!(VRAM_PAGES <= u16::MAX as usize + 1);

fn cerr(e: gpusvm_core::Error) -> kernel::error::Error {
    kernel::error::Error::from_errno(e.to_errno())
}

/// Which VRAM pages are in use, and by which allocation.
struct VramState {
    used: KArray<u64, KAlloc>,
    owners: KArray<usize, KAlloc>,
    nused: usize,
}

impl VramState {
    fn is_used(&self, i: usize) -> bool {
        self.used
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set_used(&mut self, i: usize, used: bool) {
        if let Some(w) = self.used.get_mut(i / 64) {
            if used {
                *w |= 1 << (i % 64);
            } else {
                *w &= !(1 << (i % 64));
            }
        }
    }
}

/// The backing pages of VRAM, freed on drop.
struct Backing(KArray<usize, KAlloc>);

impl Drop for Backing {
    fn drop(&mut self) {
        for &p in self.0.iter() {
            if p != 0 {
                // SAFETY: Allocated by `Device::create` with order 0 and owned here.
                unsafe { bindings::__free_pages(p as *mut bindings::page, 0) };
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct DeviceStats {
    pub(crate) devmem_live: AtomicI64,
    pub(crate) pagemap_refs: AtomicI64,
    pub(crate) pages_to_device: AtomicU64,
    pub(crate) pages_to_ram: AtomicU64,
}

/// The device.
///
/// # Invariants
///
/// `misc`, `fops`, `mem` and `dma` are written only by `create` before `ready` is set (and
/// before the device file exists, except `dma`, which `open` only reads after `ready`), and by
/// `destroy` after the last file is closed. The value is pinned in its box until `destroy`.
#[pin_data]
pub(crate) struct Device {
    pub(crate) misc: UnsafeCell<ext::miscdevice>,
    fops: UnsafeCell<bindings::file_operations>,
    mem: UnsafeCell<Option<CoreBox<DevicePrivate<Drv>, KAlloc>>>,
    dma: UnsafeCell<Option<KDma>>,
    backing: Backing,
    #[pin]
    vram: SpinLock<VramState>,
    ready: AtomicBool,
    removed: AtomicBool,
    pub(crate) stats: DeviceStats,
}

// SAFETY: Shared state is atomics, a spinlock, or written only while unshared (invariants).
unsafe impl Sync for Device {}
// SAFETY: As above.
unsafe impl Send for Device {}

impl Device {
    pub(crate) fn create(module: &'static ThisModule) -> Result<Pin<KBox<Device>>> {
        let mut backing = Backing(KArray::try_new(VRAM_PAGES, 0usize, KAlloc).map_err(cerr)?);
        for slot in backing.0.iter_mut() {
            // SAFETY: A plain page allocation.
            let page = unsafe { bindings::alloc_pages(bindings::GFP_KERNEL, 0) };
            if page.is_null() {
                return Err(ENOMEM);
            }
            *slot = page as usize;
        }
        let state = VramState {
            used: KArray::try_new(VRAM_PAGES / 64, 0u64, KAlloc).map_err(cerr)?,
            owners: KArray::try_new(VRAM_PAGES, 0usize, KAlloc).map_err(cerr)?,
            nused: 0,
        };
        let dev = KBox::pin_init(
            pin_init!(Device {
                // SAFETY: All-zero is the initial state of both C structs.
                misc: UnsafeCell::new(unsafe { core::mem::zeroed() }),
                // SAFETY: As above.
                fops: UnsafeCell::new(unsafe { core::mem::zeroed() }),
                mem: UnsafeCell::new(None),
                dma: UnsafeCell::new(None),
                backing,
                vram <- kernel::new_spinlock!(state, "gpusvm_dmirror_vram"),
                ready: AtomicBool::new(false),
                removed: AtomicBool::new(false),
                stats: DeviceStats::default(),
            }),
            GFP_KERNEL,
        )?;
        let owner = dev.owner();
        let mem =
            DevicePrivate::<Drv>::new((VRAM_PAGES * PAGE_SIZE) as u64, owner, c"gpusvm_dmirror")
                .map_err(cerr)?;
        let first_pfn = mem.first_pfn();
        // SAFETY: Not shared yet (no device file), so we have exclusive access to the cells.
        unsafe {
            *dev.mem.get() = Some(mem);
            let f = &mut *dev.fops.get();
            f.owner = module.as_ptr();
            f.open = Some(file::open);
            f.release = Some(file::release);
            f.unlocked_ioctl = Some(file::ioctl);
            f.compat_ioctl = Some(file::ioctl);
            f.llseek = Some(bindings::noop_llseek);
            let m = &mut *dev.misc.get();
            m.minor = ext::MISC_DYNAMIC_MINOR as _;
            m.name = c"gpusvm_dmirror".as_ptr().cast();
            m.fops = dev.fops.get();
            m.mode = 0o666;
        }
        // SAFETY: `misc` is set up and stays pinned until `destroy` deregisters it.
        let ret = unsafe { ext::misc_register(dev.misc.get()) };
        if ret != 0 {
            // SAFETY: Exclusive access (the registration failed).
            drop(unsafe { (*dev.mem.get()).take() });
            return Err(kernel::error::Error::from_errno(ret));
        }
        // SAFETY: Registered, so `this_device` is the misc device's `struct device`.
        let this_device = unsafe { (*dev.misc.get()).this_device };
        // SAFETY: A valid device; the virtual GPU addresses all of memory.
        let ret = unsafe { ext::gs_dma_coerce_mask_and_coherent(this_device, u64::MAX) };
        // SAFETY: As above.
        let direct = unsafe { ext::gs_dma_is_direct(this_device) };
        // SAFETY: As above, with the mask set.
        let dma = unsafe { KDma::new(this_device) };
        let (Some(dma), 0, true) = (dma, ret, direct) else {
            // SAFETY: Registered above; no file can be open (not ready).
            unsafe {
                ext::misc_deregister(dev.misc.get());
                drop((*dev.mem.get()).take());
            }
            pr_err!("no direct DMA for the virtual device\n");
            return Err(ENODEV);
        };
        // SAFETY: `open` reads `dma` only after `ready` (Acquire) is set below (Release).
        unsafe { *dev.dma.get() = Some(dma) };
        dev.ready.store(true, Ordering::Release);
        pr_info!(
            "{} MiB of device memory at pfn {:#x}, /dev/gpusvm_dmirror ready\n",
            (VRAM_PAGES * PAGE_SIZE) >> 20,
            first_pfn
        );
        Ok(dev)
    }

    /// Module exit: no file is open (each holds a module reference, and `open` cannot take one
    /// any more: the module is going).
    ///
    /// Device removal as `lib/test_hmm.c` does it: first move everything still in VRAM back to
    /// RAM (processes that closed the file may still have pages here), retrying until it is
    /// all out, because `memunmap_pages` waits for every device page to be freed; then remove
    /// the device file.
    pub(crate) fn destroy(dev: Pin<KBox<Device>>) {
        dev.removed.store(true, Ordering::Release);
        let mut tries = 0u64;
        while dev.vram_used() > 0 {
            let r = dev.evict_all();
            tries += 1;
            if dev.vram_used() == 0 {
                break;
            }
            if tries % 100 == 0 {
                pr_warn!(
                    "exit: {} vram pages still in use after {} eviction rounds ({:?}); retrying\n",
                    dev.vram_used(),
                    tries,
                    r
                );
            }
            // SAFETY: Sleeping is fine in module exit.
            unsafe { bindings::msleep(10) };
        }
        // SAFETY: Registered by `create`.
        unsafe { ext::misc_deregister(dev.misc.get()) };
        pr_info!(
            "exit: vram pages in use {}, device allocations {}, pagemap references {}, dma mappings {}\n",
            dev.vram_used(),
            dev.stats.devmem_live.load(Ordering::Relaxed),
            dev.stats.pagemap_refs.load(Ordering::Relaxed),
            gpusvm_kshim::dma::live_mappings()
        );
        // SAFETY: No file is open and every allocation is gone: nothing else uses the cells.
        unsafe {
            drop((*dev.mem.get()).take());
            drop((*dev.dma.get()).take());
        }
        drop(dev);
        pr_info!("unloaded cleanly\n");
    }

    pub(crate) fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The device-private owner cookie: the device's address.
    pub(crate) fn owner(&self) -> Owner {
        Owner(self as *const Self as usize)
    }

    fn mem(&self) -> Option<&DevicePrivate<Drv>> {
        // SAFETY: Written only while unshared (type invariant).
        unsafe { (*self.mem.get()).as_deref() }
    }

    pub(crate) fn dma(&self) -> Option<&KDma> {
        if !self.ready() {
            return None;
        }
        // SAFETY: Set before `ready`, cleared only after the last user is gone.
        unsafe { (*self.dma.get()).as_ref() }
    }

    pub(crate) fn pgmap_id(&self) -> Option<PgmapId> {
        self.mem().map(|m| m.pgmap_id())
    }

    pub(crate) fn pagemap(&self) -> DmirrorPagemap {
        self.stats.pagemap_refs.fetch_add(1, Ordering::Relaxed);
        DmirrorPagemap {
            dev: NonNull::from(self),
        }
    }

    pub(crate) fn vram_used(&self) -> usize {
        self.vram.lock().nused
    }

    pub(crate) fn vram_pages(&self) -> usize {
        VRAM_PAGES
    }

    /// The backing page of the VRAM page `pfn`.
    fn backing_page(&self, pfn: u64) -> Option<*mut bindings::page> {
        let mem = self.mem()?;
        if !mem.contains(pfn) {
            return None;
        }
        let idx = usize::try_from(pfn - mem.first_pfn()).ok()?;
        self.backing.0.get(idx).map(|&p| p as *mut bindings::page)
    }

    /// The backing page of a VRAM offset (a local PTE's address).
    fn backing_of_offset(&self, offset: u64) -> Option<*mut bindings::page> {
        let idx = usize::try_from(offset >> PAGE_SHIFT).ok()?;
        self.backing.0.get(idx).map(|&p| p as *mut bindings::page)
    }

    /// The system page a bus address of ours names.
    fn system_page(&self, bus: u64) -> Option<*mut bindings::page> {
        let pfn = self.dma()?.bus_to_pfn(bus)?;
        // SAFETY: Only inspects the memory map.
        if !unsafe { ext::gs_pfn_valid(pfn as _) } {
            return None;
        }
        // SAFETY: A valid frame has a struct page.
        Some(unsafe { ext::gs_pfn_to_page(pfn as _) })
    }

    /// The GPU's memory access through one valid PTE: reads the page into `buf`, or writes
    /// `buf` into it.
    pub(crate) fn gpu_access(
        &self,
        pte: crate::pte::Pte,
        buf: &mut [u8],
        write: bool,
    ) -> Result<(), gpusvm_core::Error> {
        let page = if pte.local {
            self.backing_of_offset(pte.addr)
        } else {
            self.system_page(pte.addr)
        }
        .ok_or(code::EFAULT)?;
        let n = buf.len().min(PAGE_SIZE);
        // SAFETY: `page` is a valid page: VRAM backing (owned by the device) or a system page
        // the GPU holds a DMA mapping of (valid while the PTE is, which the caller checked under
        // the notifier lock it still holds).
        unsafe {
            let va = bindings::kmap_local_page(page).cast::<u8>();
            if write {
                core::ptr::copy_nonoverlapping(buf.as_ptr(), va, n);
            } else {
                core::ptr::copy_nonoverlapping(va, buf.as_mut_ptr(), n);
            }
            bindings::kunmap_local(va.cast());
        }
        Ok(())
    }

    /// Allocates `npages` pages of VRAM for a migration of `mm`'s memory, cleared.
    pub(crate) fn alloc_devmem(
        &self,
        mm: KMm,
        npages: usize,
    ) -> gpusvm_core::Result<DmirrorDevmem> {
        if npages == 0 || npages > MAX_ALLOC_PAGES {
            return Err(code::EINVAL);
        }
        if self.removed.load(Ordering::Acquire) {
            return Err(code::ENODEV);
        }
        let dma = self.dma().ok_or(code::ENODEV)?.clone();
        let mut pages = [0u16; MAX_ALLOC_PAGES];
        let state = DevmemState::new(
            DevmemEnv {
                mm,
                pagemap: self.pagemap(),
                dev: dma,
                alloc: KAlloc,
                clock: KClock,
                page: PageShift::new(PAGE_SHIFT)?,
            },
            (npages * PAGE_SIZE) as u64,
            false,
        )?;
        // Pick the pages first (the list goes into the allocation before it is published).
        {
            let mut g = self.vram.lock();
            if VRAM_PAGES - g.nused < npages {
                return Err(code::ENOMEM);
            }
            let mut k = 0;
            for i in 0..VRAM_PAGES {
                if k == npages {
                    break;
                }
                if !g.is_used(i) {
                    g.set_used(i, true);
                    if let Some(p) = pages.get_mut(k) {
                        // `i < VRAM_PAGES`, which fits (const assertion above).
                        *p = i as u16;
                    }
                    k += 1;
                }
            }
            g.nused += npages;
        }
        for &i in pages.iter().take(npages) {
            if let Some(&p) = self.backing.0.get(usize::from(i)) {
                // SAFETY: A backing page owned by the device and now by this allocation only.
                unsafe {
                    let va = bindings::kmap_local_page(p as *mut bindings::page);
                    core::ptr::write_bytes(va.cast::<u8>(), 0, PAGE_SIZE);
                    bindings::kunmap_local(va);
                }
            }
        }
        let inner = DevmemInner {
            refcount: AtomicUsize::new(1),
            state,
            dev: NonNull::from(self),
            npages,
            pages,
        };
        let inner = match CoreBox::try_new(inner, KAlloc) {
            Ok(b) => b,
            Err((e, inner)) => {
                self.release_pages(inner.page_list());
                return Err(e);
            }
        };
        let (ptr, _) = CoreBox::into_raw(inner);
        {
            let mut g = self.vram.lock();
            // SAFETY: We own the only reference.
            for &i in unsafe { ptr.as_ref() }.page_list() {
                if let Some(o) = g.owners.get_mut(usize::from(i)) {
                    *o = ptr.as_ptr() as usize;
                }
            }
        }
        self.stats.devmem_live.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: one reference, ours.
        Ok(DmirrorDevmem(ptr))
    }

    fn release_pages(&self, pages: &[u16]) {
        let mut g = self.vram.lock();
        for &i in pages {
            g.set_used(usize::from(i), false);
            if let Some(o) = g.owners.get_mut(usize::from(i)) {
                *o = 0;
            }
        }
        g.nused = g.nused.saturating_sub(pages.len());
    }

    /// Moves every allocation back to system memory (`drm_pagemap_evict_to_ram` for each, as
    /// TTM eviction or device removal would).
    pub(crate) fn evict_all(&self) -> gpusvm_core::Result {
        const BATCH: usize = 32;
        let mut result = Ok(());
        for _ in 0..8 {
            let mut batch: [Option<DmirrorDevmem>; BATCH] = [const { None }; BATCH];
            let mut n = 0;
            {
                let g = self.vram.lock();
                let mut prev = 0usize;
                for &o in g.owners.iter() {
                    if n == BATCH {
                        break;
                    }
                    if o == 0 || o == prev {
                        continue;
                    }
                    prev = o;
                    if let Some(h) = DmirrorDevmem::try_get(o) {
                        if let Some(slot) = batch.get_mut(n) {
                            *slot = Some(h);
                            n += 1;
                        }
                    }
                }
            }
            if n == 0 {
                return result;
            }
            // Handles are dropped here, outside the lock (the last one releases the pages).
            result = gpusvm_core::evict_all::<Drv>(batch.iter_mut().filter_map(Option::take));
        }
        if self.vram_used() > 0 {
            Err(code::EBUSY)
        } else {
            result
        }
    }
}

/// One device-memory allocation.
///
/// # Invariants
///
/// `refcount` counts the [`DmirrorDevmem`] handles. The pages listed in
/// `pages[..npages]` are marked used, with this allocation as owner, until the count drops to
/// zero. `npages <= MAX_ALLOC_PAGES`. `dev` outlives it (module exit evicts every allocation
/// before freeing the device).
///
/// The page list is an inline array, not a separate heap array: the last handle may be
/// dropped in the page-free callback, under page-table locks, so everything this frees must
/// be slab memory (`kfree`, never `vfree`, which may sleep). The whole value is one core
/// `KBox`, an [`gpusvm_core::AllocKind::Object`] allocation (`kmalloc`).
pub(crate) struct DevmemInner {
    refcount: AtomicUsize,
    state: DevmemState<Drv>,
    dev: NonNull<Device>,
    npages: usize,
    pages: [u16; MAX_ALLOC_PAGES],
}

impl DevmemInner {
    /// The VRAM page indices of the allocation.
    fn page_list(&self) -> &[u16] {
        self.pages.get(..self.npages).unwrap_or(&[])
    }
}

/// A counted handle to a [`DevmemInner`] (Xe: a reference on a VRAM buffer object).
///
/// # Invariants
///
/// Owns one count of a `DevmemInner` allocated as a core `KBox` with [`KAlloc`].
pub(crate) struct DmirrorDevmem(NonNull<DevmemInner>);

// SAFETY: The allocation is shared through atomics and immutable fields.
unsafe impl Send for DmirrorDevmem {}
// SAFETY: As above.
unsafe impl Sync for DmirrorDevmem {}

impl DmirrorDevmem {
    fn inner(&self) -> &DevmemInner {
        // SAFETY: We own a count, so the allocation is alive.
        unsafe { self.0.as_ref() }
    }

    fn dev(&self) -> &Device {
        // SAFETY: The device outlives its allocations (invariant of `DevmemInner`).
        unsafe { self.inner().dev.as_ref() }
    }

    /// A new handle to the allocation at `addr` if it is still alive. Called with the VRAM lock
    /// held, which keeps a listed allocation from being freed.
    fn try_get(addr: usize) -> Option<Self> {
        let ptr = NonNull::new(addr as *mut DevmemInner)?;
        // SAFETY: Listed owners are alive while the VRAM lock is held: the release path unlists
        // them under the lock before freeing.
        let rc = unsafe { &ptr.as_ref().refcount };
        let mut c = rc.load(Ordering::Relaxed);
        loop {
            if c == 0 {
                return None;
            }
            match rc.compare_exchange_weak(c, c + 1, Ordering::Acquire, Ordering::Relaxed) {
                // INVARIANT: the count just taken.
                Ok(_) => return Some(Self(ptr)),
                Err(now) => c = now,
            }
        }
    }

    fn copy(&self, batch: &CopyBatch<'_>, to_device: bool) -> gpusvm_core::Result {
        let dev = self.dev();
        let mut head: Option<(u64, usize)> = None;
        for (i, e) in batch.system.iter().enumerate().take(batch.npages) {
            // A NONE slot is a tail page of the mapping in the last non-NONE slot.
            let bus = if e.is_none() {
                match head {
                    Some((addr, first)) => addr + ((i - first) * PAGE_SIZE) as u64,
                    None => continue,
                }
            } else {
                head = Some((e.addr(), i));
                e.addr()
            };
            let sys = dev.system_page(bus).ok_or(code::EFAULT)?;
            let vram = dev
                .backing_page(batch.device_pfn + i as u64)
                .ok_or(code::EFAULT)?;
            let (src, dst) = if to_device { (sys, vram) } else { (vram, sys) };
            // SAFETY: Both pages are valid: the system page is DMA-mapped by the core for this
            // copy, the VRAM backing page belongs to this allocation.
            unsafe {
                let s = bindings::kmap_local_page(src);
                let d = bindings::kmap_local_page(dst);
                core::ptr::copy_nonoverlapping(s.cast::<u8>(), d.cast::<u8>(), PAGE_SIZE);
                bindings::kunmap_local(d);
                bindings::kunmap_local(s);
            }
            let counter = if to_device {
                &dev.stats.pages_to_device
            } else {
                &dev.stats.pages_to_ram
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Clone for DmirrorDevmem {
    fn clone(&self) -> Self {
        self.inner().refcount.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: the count just taken.
        Self(self.0)
    }
}

impl Drop for DmirrorDevmem {
    /// The last handle releases the VRAM pages. Runs in whatever context dropped it (for the
    /// core's tracker: the page-free callback, possibly under a page-table lock), so it only
    /// takes a spinlock and frees slab memory.
    fn drop(&mut self) {
        if self.inner().refcount.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        core::sync::atomic::fence(Ordering::Acquire);
        let dev = self.dev();
        dev.release_pages(self.inner().page_list());
        dev.stats.devmem_live.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: The count reached zero and the allocation is unlisted: nothing refers to it.
        drop(unsafe { CoreBox::from_raw(self.0, KAlloc) });
    }
}

impl DevmemAllocation<Drv> for DmirrorDevmem {
    fn state(&self) -> &DevmemState<Drv> {
        &self.inner().state
    }

    fn populate_pfns(&self, pfns: &mut [u64]) -> gpusvm_core::Result {
        let first = self.dev().mem().ok_or(code::ENODEV)?.first_pfn();
        for (d, &i) in pfns.iter_mut().zip(self.inner().page_list()) {
            *d = first + u64::from(i);
        }
        Ok(())
    }

    fn copy_to_devmem(&self, batch: &CopyBatch<'_>) -> gpusvm_core::Result {
        self.copy(batch, true)
    }

    fn copy_to_ram(&self, batch: &CopyBatch<'_>) -> gpusvm_core::Result {
        self.copy(batch, false)
    }
}

/// A counted reference to the device's pagemap (`struct drm_pagemap`).
///
/// # Invariants
///
/// `dev` outlives every handle: handles live in allocations and pages objects, all gone
/// before module exit frees the device.
pub(crate) struct DmirrorPagemap {
    dev: NonNull<Device>,
}

// SAFETY: Only shared access to the device.
unsafe impl Send for DmirrorPagemap {}
// SAFETY: As above.
unsafe impl Sync for DmirrorPagemap {}

impl DmirrorPagemap {
    fn dev(&self) -> &Device {
        // SAFETY: By the type invariant the device is alive.
        unsafe { self.dev.as_ref() }
    }
}

impl Clone for DmirrorPagemap {
    fn clone(&self) -> Self {
        self.dev().pagemap()
    }
}

impl Drop for DmirrorPagemap {
    fn drop(&mut self) {
        self.dev()
            .stats
            .pagemap_refs
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pagemap<Drv> for DmirrorPagemap {
    fn pgmap(&self) -> PgmapId {
        self.dev().pgmap_id().unwrap_or(PgmapId(0))
    }

    fn owner(&self) -> Owner {
        self.dev().owner()
    }

    /// A VRAM page as the GPU sees it: its offset in VRAM, with the driver protocol.
    fn device_map(
        &self,
        _dev: &KDma,
        pfn: u64,
        order: u32,
        dir: DmaDirection,
    ) -> gpusvm_core::Result<DmaEntry> {
        let mem = self.dev().mem().ok_or(code::ENODEV)?;
        if !mem.contains(pfn) {
            return Err(code::EINVAL);
        }
        DmaEntry::encode(
            (pfn - mem.first_pfn()) << PAGE_SHIFT,
            Protocol::DRIVER,
            order,
            dir,
        )
    }

    fn device_unmap(&self, _dev: &KDma, _entry: DmaEntry) {}

    fn populate_mm(
        &self,
        lock: &MmapReadGuard<'_, KMm>,
        span: Span,
        timeslice_ms: u64,
    ) -> gpusvm_core::Result {
        let dev = self.dev();
        if dev.removed.load(Ordering::Acquire) {
            return Err(code::ENODEV);
        }
        let npages = usize::try_from(span.len() >> PAGE_SHIFT).map_err(|_| code::EINVAL)?;
        let devmem = dev.alloc_devmem(lock.mm().clone(), npages)?;
        let details = MigrateDetails {
            timeslice_ms,
            ..MigrateDetails::default()
        };
        migrate_to_devmem::<Drv>(devmem, lock, span, &details)
    }
}
