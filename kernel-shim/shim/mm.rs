// SPDX-License-Identifier: GPL-2.0

//! [`gpusvm_core::Mm`] and [`gpusvm_core::IntervalNotifier`] over core mm: mm references, the
//! mmap lock, VMAs, MMU interval notifiers, HMM, `migrate_vma` and `migrate_device`.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::ffi::{c_ulong, c_void};

use gpusvm_core::{
    code, HmmPfn, HmmRange, IntervalNotifier, MigratePfn, MigrateSelect, MigrateVma, Mm,
    MmapReadGuard, MmuEvent, MmuRange, Owner, PageKind, PgmapId, Result, Subscriber, VmaFlags,
    VmaInfo,
};
use kernel::bindings;
use kernel::mm::virt::flags;
use kernel::sync::aref::ARef;

use crate::{errno, ext, pagemap, PAGE_SHIFT};

// The core's pfn encodings against this kernel's headers, checked at build time.
const _: () = {
    assert!(ext::MIGRATE_PFN_VALID as u64 == MigratePfn::VALID);
    assert!(ext::MIGRATE_PFN_MIGRATE as u64 == MigratePfn::MIGRATE);
    assert!(ext::MIGRATE_PFN_WRITE as u64 == MigratePfn::WRITE);
    assert!(ext::MIGRATE_PFN_SHIFT == MigratePfn::SHIFT);
    assert!(ext::migrate_vma_direction_MIGRATE_VMA_SELECT_SYSTEM == MigrateSelect::SYSTEM.bits());
    assert!(
        ext::migrate_vma_direction_MIGRATE_VMA_SELECT_DEVICE_PRIVATE
            == MigrateSelect::DEVICE_PRIVATE.bits()
    );
    assert!(
        ext::migrate_vma_direction_MIGRATE_VMA_SELECT_DEVICE_COHERENT
            == MigrateSelect::DEVICE_COHERENT.bits()
    );
    assert!(ext::hmm_pfn_flags_HMM_PFN_VALID as u64 == HmmPfn::VALID);
    assert!(ext::hmm_pfn_flags_HMM_PFN_WRITE as u64 == HmmPfn::WRITE);
    assert!(ext::hmm_pfn_flags_HMM_PFN_ERROR as u64 == HmmPfn::ERROR);
    assert!(ext::hmm_pfn_flags_HMM_PFN_REQ_FAULT as u64 == HmmPfn::REQ_FAULT);
    assert!(ext::hmm_pfn_flags_HMM_PFN_REQ_WRITE as u64 == HmmPfn::REQ_WRITE);
    assert!(core::mem::size_of::<HmmPfn>() == core::mem::size_of::<c_ulong>());
    assert!(core::mem::size_of::<MigratePfn>() == core::mem::size_of::<c_ulong>());
};

/// `MIGRATE_VMA_SELECT_*` bits the shim hands to the kernel: not `COMPOUND`, because the shim
/// converts migrate pfns page by page (compound migration arrived in 7.x; not used yet).
const KERNEL_SELECT: u32 = ext::migrate_vma_direction_MIGRATE_VMA_SELECT_SYSTEM
    | ext::migrate_vma_direction_MIGRATE_VMA_SELECT_DEVICE_PRIVATE
    | ext::migrate_vma_direction_MIGRATE_VMA_SELECT_DEVICE_COHERENT;

/// This kernel's `HMM_PFN_ORDER_SHIFT` and `HMM_PFN_FLAGS`.
///
/// The core's [`HmmPfn`] follows the layout of newer kernels (order at bit 53, with sticky
/// DMA/P2P bits at 58..=60); Linux 6.12 keeps the order at bit 56 and has no sticky bits. The
/// valid/write/error and request bits agree (checked above), so requests go to the kernel
/// unchanged and results are rewritten into the core's layout in place.
const KERNEL_ORDER_SHIFT: u32 = ext::hmm_pfn_flags_HMM_PFN_ORDER_SHIFT as u32;
const KERNEL_PFN_FLAGS: u64 = ext::hmm_pfn_flags_HMM_PFN_FLAGS as u64;

fn hmm_pfns_to_core_layout(pfns: &mut [HmmPfn]) {
    if KERNEL_ORDER_SHIFT == HmmPfn::ORDER_SHIFT && KERNEL_PFN_FLAGS == HmmPfn::FLAGS {
        return;
    }
    let keep = HmmPfn::VALID | HmmPfn::WRITE | HmmPfn::ERROR;
    for p in pfns.iter_mut() {
        let v = p.0;
        let pfn = v & !KERNEL_PFN_FLAGS;
        let order = (v >> KERNEL_ORDER_SHIFT) & HmmPfn::ORDER_MASK;
        let mut out = (v & keep) | (order << HmmPfn::ORDER_SHIFT) | (pfn & !HmmPfn::FLAGS);
        if pfn & HmmPfn::FLAGS != 0 {
            // A frame number the core's layout cannot hold: report the page as inaccessible.
            out |= HmmPfn::ERROR;
        }
        p.0 = out;
    }
}

fn owner_ptr(owner: Option<Owner>) -> *mut c_void {
    owner.map_or(core::ptr::null_mut(), |o| o.0 as *mut c_void)
}

/// The `struct page` of a valid page frame.
fn page_of(pfn: u64) -> Option<NonNull<bindings::page>> {
    let pfn = c_ulong::try_from(pfn).ok()?;
    // SAFETY: `pfn_valid` only inspects the memory map.
    if !unsafe { ext::gs_pfn_valid(pfn) } {
        return None;
    }
    // SAFETY: The frame is valid, so it has a struct page.
    NonNull::new(unsafe { ext::gs_pfn_to_page(pfn) })
}

/// A `WARN_ONCE` for a page frame the core passed that has no struct page (a core or driver
/// bug: the trait methods that cannot fail have no other way to report it).
fn warn_bad_pfn(what: &core::ffi::CStr, pfn: u64) {
    // SAFETY: `what` is a NUL-terminated string valid for the call.
    unsafe { ext::gs_warn_bad_pfn(what.as_ptr().cast(), pfn as c_ulong) };
}

fn npages(start: u64, end: u64) -> Result<usize> {
    let mask = (1u64 << PAGE_SHIFT) - 1;
    if start & mask != 0 || end & mask != 0 || end <= start {
        return Err(code::EINVAL);
    }
    usize::try_from((end - start) >> PAGE_SHIFT).map_err(|_| code::EINVAL)
}

/// A process address space: a counted reference to its `mm_struct`.
///
/// Cloning takes an `mm_count` reference (`mmgrab`), so the structure stays valid while the
/// address space may exit; the core takes `mm_users` (`mmget_not_zero`) around every use.
///
/// All pagemaps registered through [`crate::DevicePrivate`] in one module, and all pagemaps
/// using the ops table registered with [`crate::pagemap::register_core_ops`], belong to one
/// driver type: [`Mm::classify_page`] reports their pages as the core's.
///
/// The reference is the kernel's own [`kernel::mm::Mm`] (`ARef` = `mmgrab`/`mmdrop`); `mm_users`
/// is taken and dropped by the core through [`Mm::mmget_not_zero`]/[`Mm::mmput`], a split pair
/// that the kernel's RAII `MmWithUser` handle cannot express.
#[derive(Clone)]
pub struct KMm {
    mm: ARef<kernel::mm::Mm>,
}

// SAFETY: An mm reference may be used and dropped from any task.
unsafe impl Send for KMm {}
// SAFETY: Every operation goes through the kernel's own synchronization.
unsafe impl Sync for KMm {}

impl KMm {
    /// The current task's address space (`None` for kernel threads).
    pub fn current() -> Option<Self> {
        let task = kernel::current!();
        let mm: &kernel::mm::Mm = task.mm()?;
        Some(Self { mm: mm.into() })
    }

    /// Takes an `mmgrab` reference on `mm`.
    ///
    /// # Safety
    ///
    /// `mm` is NULL or a valid `mm_struct` for the duration of the call.
    pub unsafe fn grab(mm: *mut bindings::mm_struct) -> Option<Self> {
        if mm.is_null() {
            return None;
        }
        // SAFETY: Valid for the call by the caller's guarantee; `into` takes an `mmgrab`
        // reference that keeps it valid afterwards.
        let mm: &kernel::mm::Mm = unsafe { kernel::mm::Mm::from_raw(mm) };
        Some(Self { mm: mm.into() })
    }

    /// The `mm_struct`.
    pub fn as_ptr(&self) -> *mut bindings::mm_struct {
        self.mm.as_raw()
    }

    /// Whether this is the current task's address space.
    pub fn is_current(&self) -> bool {
        let task = kernel::current!();
        task.mm()
            .is_some_and(|mm| core::ptr::eq(mm.as_raw(), self.as_ptr()))
    }

    fn migrate_args(
        args: &mut MigrateVma<'_>,
        vma: *mut bindings::vm_area_struct,
        npages: usize,
    ) -> ext::migrate_vma {
        let fault_page = args
            .fault_page
            .and_then(page_of)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr);
        ext::migrate_vma {
            vma,
            dst: args.dst.as_mut_ptr().cast::<c_ulong>(),
            src: args.src.as_mut_ptr().cast::<c_ulong>(),
            cpages: args.cpages as c_ulong,
            npages: npages as c_ulong,
            start: args.start as c_ulong,
            end: args.end as c_ulong,
            pgmap_owner: owner_ptr(args.pgmap_owner),
            flags: (args.select.bits() & KERNEL_SELECT) as c_ulong,
            fault_page,
        }
    }
}

/// The facts the core uses about a VMA.
///
/// # Safety
///
/// `vma` is NULL or a VMA of an mm whose mmap lock the caller holds.
unsafe fn vma_info(vma: *mut bindings::vm_area_struct) -> Option<VmaInfo> {
    if vma.is_null() {
        return None;
    }
    // SAFETY: The VMA is valid and the mmap lock is held for this call (caller's guarantee),
    // which is what 7.2's `VmaRef` asks for.
    let v = unsafe { kernel::mm::virt::VmaRef::from_raw(vma) };
    let (start, end, f) = (v.start(), v.end(), v.flags() as u64);
    // SAFETY: As above (no Rust abstraction has these two facts).
    let (anon, huge) = unsafe { (ext::gs_vma_is_anonymous(vma), ext::gs_is_vm_hugetlb_page(vma)) };
    let mut flags = VmaFlags::empty();
    flags.set(VmaFlags::READ, f & (flags::READ as u64) != 0);
    flags.set(VmaFlags::WRITE, f & (flags::WRITE as u64) != 0);
    flags.set(VmaFlags::SHARED, f & (flags::SHARED as u64) != 0);
    flags.set(
        VmaFlags::PFNMAP,
        f & ((flags::IO | flags::PFNMAP) as u64) != 0,
    );
    flags.set(VmaFlags::ANONYMOUS, anon);
    flags.set(VmaFlags::HUGETLB, huge);
    Some(VmaInfo {
        start: start as u64,
        end: end as u64,
        flags,
    })
}

// SAFETY:
// - `classify_page` reports `Device` only for pages of pagemaps registered through
//   `DevicePrivate`, or using the ops table registered with `register_core_ops` (pages that only
//   the core initializes, via `device_page_init`), with a non-NULL zone-device data. Both ops'
//   `folio_free` clear that data before they call `device_page_free`, so a page whose free has
//   been reported is never classified as the core's again. That alone does not make a result
//   current: the read is not atomic with a concurrent free, so a page may be freed right after
//   it was classified. What keeps the page (and so its `zone_data`) alive while the core uses
//   it is the caller's side of the contract: either the core holds the page through a
//   migration (`migrate_vma_*` / `migrate_device_*` collected it, with a reference and the page
//   lock), or it classified a page of an HMM walk and validates the walk's notifier sequence
//   under its notifier lock (`read_retry`) before it dereferences `zone_data` (next point);
// - pages reported by `hmm_range_fault` stay allocated until an invalidation of their address
//   has called the interval notifier: that is core mm's contract for `hmm_range_fault`;
// - `migrate_vma_*`/`migrate_device_*` are the kernel's own, called with the arrays the core
//   passes (one entry per page, checked).
unsafe impl Mm for KMm {
    type Notifier = KNotifier;

    fn mmget_not_zero(&self) -> bool {
        // SAFETY: By the type invariant the mm struct is valid.
        unsafe { bindings::mmget_not_zero(self.as_ptr()) }
    }

    unsafe fn mmput(&self) {
        // SAFETY: The caller pairs this with a successful `mmget_not_zero`.
        unsafe { bindings::mmput(self.as_ptr()) };
    }

    fn mmap_read_lock(&self) {
        // SAFETY: By the type invariant the mm struct is valid.
        unsafe { bindings::mmap_read_lock(self.as_ptr()) };
    }

    unsafe fn mmap_read_unlock(&self) {
        // SAFETY: The caller holds the read lock.
        unsafe { bindings::mmap_read_unlock(self.as_ptr()) };
    }

    fn vma_lookup(&self, _lock: &MmapReadGuard<'_, Self>, addr: u64) -> Option<VmaInfo> {
        let addr = c_ulong::try_from(addr).ok()?;
        // SAFETY: The guard proves the mmap lock is held; the mm is valid.
        unsafe { vma_info(bindings::vma_lookup(self.as_ptr(), addr)) }
    }

    fn find_vma_intersection(
        &self,
        _lock: &MmapReadGuard<'_, Self>,
        start: u64,
        end: u64,
    ) -> Option<VmaInfo> {
        let (start, end) = (c_ulong::try_from(start).ok()?, c_ulong::try_from(end).ok()?);
        // SAFETY: The guard proves the mmap lock is held; the mm is valid.
        unsafe { vma_info(bindings::find_vma_intersection(self.as_ptr(), start, end)) }
    }

    fn hmm_range_fault(
        &self,
        _lock: &MmapReadGuard<'_, Self>,
        range: &mut HmmRange<'_, KNotifier>,
    ) -> Result {
        let n = npages(range.start, range.end)?;
        let pfns = range.pfns.get_mut(..n).ok_or(code::EINVAL)?;
        if !range.notifier.is_registered_on(self) {
            return Err(code::EINVAL);
        }
        let mut r = ext::hmm_range {
            notifier: range.notifier.raw(),
            notifier_seq: range.notifier_seq as c_ulong,
            start: range.start as c_ulong,
            end: range.end as c_ulong,
            hmm_pfns: pfns.as_mut_ptr().cast::<c_ulong>(),
            default_flags: range.default_flags as c_ulong,
            pfn_flags_mask: 0,
            dev_private_owner: owner_ptr(range.dev_private_owner),
        };
        // SAFETY: The guard proves the mmap lock of this mm is held; the notifier is registered
        // on this mm (checked); `hmm_pfns` has one `unsigned long` per page of the range
        // (`HmmPfn` is a transparent u64, checked above).
        let ret = unsafe { ext::hmm_range_fault(&mut r) };
        errno(ret)?;
        hmm_pfns_to_core_layout(pfns);
        Ok(())
    }

    // Once per page of get_pages, from another crate: inlined, and one C call
    // (`gs_classify_pfn`) instead of one per question.
    #[inline]
    fn classify_page(&self, pfn: u64) -> PageKind {
        let Ok(pfn) = c_ulong::try_from(pfn) else {
            return PageKind::OtherZoneDevice;
        };
        let mut pgmap = core::ptr::null_mut();
        let mut zone_data = core::ptr::null_mut();
        let mut coherent = false;
        // SAFETY: `pfn_valid` decides before the struct page is read; the out-pointers are
        // locals.
        let kind = unsafe { ext::gs_classify_pfn(pfn, &mut pgmap, &mut zone_data, &mut coherent) };
        match kind as u32 {
            ext::GS_CONST_PFN_SYSTEM => return PageKind::System,
            ext::GS_CONST_PFN_ZONE_DEVICE => {}
            _ => return PageKind::OtherZoneDevice,
        }
        // SAFETY: The pgmap of a ZONE_DEVICE page the caller holds or found under the mmap lock
        // (`Mm::classify_page` callers), valid while the page is.
        if !unsafe { pagemap::is_core_pgmap(pgmap) } {
            return PageKind::OtherZoneDevice;
        }
        // The data is only written by `device_page_init` and `page_free`.
        let zone_data = zone_data as usize;
        if zone_data == 0 {
            return PageKind::OtherZoneDevice;
        }
        PageKind::Device {
            pgmap: PgmapId(pgmap as usize),
            zone_data,
            coherent,
        }
    }

    fn migrate_vma_setup(
        &self,
        _lock: &MmapReadGuard<'_, Self>,
        args: &mut MigrateVma<'_>,
    ) -> Result {
        let n = npages(args.start, args.end)?;
        if args.src.len() < n || args.dst.len() < n {
            return Err(code::EINVAL);
        }
        let start = c_ulong::try_from(args.start).map_err(|_| code::EINVAL)?;
        // SAFETY: The guard proves the mmap lock is held.
        let vma = unsafe { bindings::vma_lookup(self.as_ptr(), start) };
        if vma.is_null() {
            return Err(code::EINVAL);
        }
        let mut m = Self::migrate_args(args, vma, n);
        // SAFETY: The mmap lock is held, `vma` is the VMA at `start`, and `src`/`dst` have one
        // entry per page (checked); the kernel validates the rest.
        errno(unsafe { ext::migrate_vma_setup(&mut m) })?;
        args.cpages = m.cpages as usize;
        // The VMA stays valid until `migrate_vma_finalize`: the caller holds the mmap lock
        // through all three calls.
        args.cookie = vma as usize;
        Ok(())
    }

    fn migrate_vma_pages(&self, args: &mut MigrateVma<'_>) {
        let Ok(n) = npages(args.start, args.end) else {
            return;
        };
        if args.cookie == 0 || args.src.len() < n || args.dst.len() < n {
            return;
        }
        let mut m = Self::migrate_args(args, args.cookie as *mut bindings::vm_area_struct, n);
        // SAFETY: A successful `migrate_vma_setup` on these arrays and this VMA preceded this
        // call, and the caller still holds the mmap lock.
        unsafe { ext::migrate_vma_pages(&mut m) };
    }

    fn migrate_vma_finalize(&self, args: &mut MigrateVma<'_>) {
        let Ok(n) = npages(args.start, args.end) else {
            return;
        };
        if args.cookie == 0 || args.src.len() < n || args.dst.len() < n {
            return;
        }
        let mut m = Self::migrate_args(args, args.cookie as *mut bindings::vm_area_struct, n);
        // SAFETY: As for `migrate_vma_pages`.
        unsafe { ext::migrate_vma_finalize(&mut m) };
        args.cookie = 0;
    }

    fn migrate_device_pfns(&self, src: &mut [MigratePfn]) -> Result {
        // 6.12 has `migrate_device_range` (contiguous frames) but not `migrate_device_pfns`:
        // collect each run of consecutive frames with one call.
        let mut i = 0usize;
        while let Some(first) = src.get(i).copied() {
            let Some(base) = first.pfn().filter(|&p| page_of(p).is_some()) else {
                if let Some(e) = src.get_mut(i) {
                    *e = MigratePfn(0);
                }
                i += 1;
                continue;
            };
            let mut len = 1usize;
            while src
                .get(i + len)
                .and_then(|e| e.pfn())
                .is_some_and(|p| Some(p) == base.checked_add(len as u64))
            {
                len += 1;
            }
            let Some(run) = src.get_mut(i..i + len) else {
                break;
            };
            // SAFETY: `run` holds `len` entries for the valid frames `base..base + len`;
            // `migrate_device_range` takes its own references and skips free pages.
            unsafe {
                ext::migrate_device_range(run.as_mut_ptr().cast(), base as c_ulong, len as c_ulong)
            };
            i += len;
        }
        Ok(())
    }

    fn migrate_device_pages(&self, src: &mut [MigratePfn], dst: &mut [MigratePfn]) {
        let n = src.len().min(dst.len());
        // SAFETY: Both arrays have at least `n` entries; `src` came from `migrate_device_pfns`.
        unsafe {
            ext::migrate_device_pages(
                src.as_mut_ptr().cast(),
                dst.as_mut_ptr().cast(),
                n as c_ulong,
            )
        };
    }

    fn migrate_device_finalize(&self, src: &mut [MigratePfn], dst: &mut [MigratePfn]) {
        let n = src.len().min(dst.len());
        // SAFETY: As for `migrate_device_pages`.
        unsafe {
            ext::migrate_device_finalize(
                src.as_mut_ptr().cast(),
                dst.as_mut_ptr().cast(),
                n as c_ulong,
            )
        };
    }

    fn device_page_init(&self, pfn: u64, zone_data: usize) {
        let Some(page) = page_of(pfn) else {
            warn_bad_pfn(c"device_page_init", pfn);
            return;
        };
        // SAFETY: The core passes a free page of a pagemap it manages (from the driver's
        // `populate_pfns`); initializing it takes a pgmap reference and the page lock.
        unsafe {
            ext::gs_page_set_zone_device_data(page.as_ptr(), zone_data as *mut c_void);
            bindings::zone_device_page_init(page.as_ptr(), ext::gs_page_pgmap(page.as_ptr()), 0);
        }
    }

    fn alloc_system_page(&self, _addr: Option<u64>, order: u32) -> Result<u64> {
        if order != 0 {
            return Err(code::ENOMEM);
        }
        // SAFETY: A plain page allocation.
        let page = unsafe { ext::gs_alloc_page_movable() };
        if page.is_null() {
            return Err(code::ENOMEM);
        }
        // SAFETY: `page` is a fresh page we own; the destination of a migration is locked.
        unsafe { ext::gs_lock_page(page) };
        // SAFETY: `page` is valid.
        Ok(unsafe { ext::gs_page_to_pfn(page) } as u64)
    }

    fn put_locked_page(&self, pfn: u64) {
        let Some(page) = page_of(pfn) else {
            warn_bad_pfn(c"put_locked_page", pfn);
            return;
        };
        // SAFETY: The core passes a destination page it allocated or initialized (locked, one
        // reference) and no longer uses.
        unsafe {
            ext::gs_unlock_page(page.as_ptr());
            ext::gs_put_page(page.as_ptr());
        }
    }
}

/// An MMU interval notifier (`struct mmu_interval_notifier`) whose invalidations go to a
/// [`Subscriber`] (the core's notifier window, or a driver's own), or a foreign one: a notifier
/// that its owner (C code) embeds, inserted with its own ops ([`KNotifier::foreign`]).
///
/// An embedded notifier is registered by [`IntervalNotifier::insert`] and unregistered by
/// [`IntervalNotifier::remove`] (or on drop). A foreign one is only used for its sequence
/// (`read_begin`, `read_retry`) and for `hmm_range_fault`: its owner registers and removes it
/// and its owner's ops set its sequence, so `insert` fails with `EINVAL`, and `remove`,
/// `set_seq` and drop do nothing.
///
/// # Invariants
///
/// - If `foreign` is `None`: while `registered` is true, `raw` is inserted with [`OPS`] on `mm`
///   and `sub` holds the subscriber passed to `insert`; both stay unchanged until `remove`.
/// - If `foreign` is `Some(p)`: `p` is inserted on `mm` by its owner, with its owner's ops, and
///   stays inserted and valid for the whole lifetime of this value; `registered` is true and
///   `sub` is `None` for that whole lifetime, and `raw` is never inserted.
/// - `sub` is written only while unregistered.
pub struct KNotifier {
    raw: UnsafeCell<bindings::mmu_interval_notifier>,
    foreign: Option<NonNull<bindings::mmu_interval_notifier>>,
    sub: UnsafeCell<Option<NonNull<dyn Subscriber>>>,
    mm: UnsafeCell<*mut bindings::mm_struct>,
    registered: AtomicBool,
}

// SAFETY: The kernel synchronizes access to the notifier (embedded or foreign); `sub` and `mm`
// are written only while unregistered, when no callback can run, and `foreign` never changes
// (type invariants).
unsafe impl Send for KNotifier {}
// SAFETY: As above.
unsafe impl Sync for KNotifier {}

impl KNotifier {
    /// A notifier for `raw`, which its owner has inserted on `mm` with its own ops
    /// (`mmu_interval_notifier_insert`): usable for `read_begin`, `read_retry` and
    /// `hmm_range_fault` (as the `HmmRange::notifier` of a walk of `mm`), never inserted or
    /// removed through this value.
    ///
    /// # Safety
    ///
    /// `raw` is inserted on `mm` and stays inserted, and valid, for the whole lifetime of the
    /// returned value (its owner removes it only after dropping that value).
    pub unsafe fn foreign(raw: NonNull<bindings::mmu_interval_notifier>, mm: &KMm) -> Self {
        // INVARIANT: `raw` is inserted on `mm` for our lifetime (caller's guarantee); registered
        // for good, no subscriber, the embedded notifier unused.
        Self {
            raw: UnsafeCell::new(bindings::mmu_interval_notifier::default()),
            foreign: Some(raw),
            sub: UnsafeCell::new(None),
            mm: UnsafeCell::new(mm.as_ptr()),
            registered: AtomicBool::new(true),
        }
    }

    /// The kernel's notifier: the embedded one, or the foreign one this value stands for.
    pub fn raw(&self) -> *mut bindings::mmu_interval_notifier {
        self.foreign.map_or(self.raw.get(), NonNull::as_ptr)
    }

    fn is_registered_on(&self, mm: &KMm) -> bool {
        // SAFETY: `mm` is only written while unregistered, by the thread that registers, or by
        // the constructor of a foreign notifier (type invariants).
        self.registered.load(Ordering::Acquire) && unsafe { *self.mm.get() } == mm.as_ptr()
    }
}

/// `mmu_interval_notifier_ops::invalidate`.
///
/// # Safety
///
/// Called by core mm for a notifier inserted by [`KNotifier::insert`], with a valid range.
unsafe extern "C" fn invalidate_cb(
    mni: *mut bindings::mmu_interval_notifier,
    range: *const bindings::mmu_notifier_range,
    cur_seq: c_ulong,
) -> bool {
    // SAFETY: Only notifiers embedded in a `KNotifier` are inserted with `OPS` (a foreign one
    // never is: `insert` refuses it, and its owner inserts it with its own ops), and they stay
    // alive until `remove` returns, which waits for running callbacks.
    let this = unsafe {
        &*kernel::container_of!(
            mni.cast::<UnsafeCell<bindings::mmu_interval_notifier>>(),
            KNotifier,
            raw
        )
    };
    // SAFETY: `sub` is constant while registered (type invariant).
    let Some(sub) = (unsafe { *this.sub.get() }) else {
        this.set_seq(cur_seq as u64);
        return true;
    };
    // SAFETY: Core mm passes a valid range for the duration of the call.
    let r = unsafe { &*range };
    let event = match r.event {
        bindings::mmu_notifier_event_MMU_NOTIFY_UNMAP => MmuEvent::Unmap,
        bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_VMA => MmuEvent::ProtectionVma,
        bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_PAGE => MmuEvent::ProtectionPage,
        bindings::mmu_notifier_event_MMU_NOTIFY_SOFT_DIRTY => MmuEvent::SoftDirty,
        bindings::mmu_notifier_event_MMU_NOTIFY_RELEASE => MmuEvent::Release,
        bindings::mmu_notifier_event_MMU_NOTIFY_MIGRATE => MmuEvent::Migrate,
        bindings::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE => MmuEvent::Exclusive,
        // MMU_NOTIFY_CLEAR, and anything newer: a plain invalidation.
        _ => MmuEvent::Clear,
    };
    let mmu_range = MmuRange {
        start: r.start as u64,
        end: r.end as u64,
        event,
        owner: NonNull::new(r.owner).map(|p| Owner(p.as_ptr() as usize)),
        // SAFETY: `range` is valid (see above).
        blockable: unsafe { ext::gs_mmu_notifier_range_blockable(range) },
    };
    // SAFETY: The subscriber outlives the registration (`insert`'s contract).
    unsafe { sub.as_ref() }.invalidate(&mmu_range, cur_seq as u64)
}

/// The ops of every [`KNotifier`].
static OPS: bindings::mmu_interval_notifier_ops = bindings::mmu_interval_notifier_ops {
    invalidate: Some(invalidate_cb),
    // The two-pass variant (7.x) is for notifiers that batch their TLB flushes; one pass is
    // what the core's protocol needs.
    invalidate_start: None,
    invalidate_finish: None,
};

// SAFETY: Registration, callbacks, sequence numbers and removal are core mm's
// (`mmu_interval_notifier_insert`, `mmu_interval_set_seq`, `mmu_interval_read_begin`,
// `mmu_interval_read_retry`, `mmu_interval_notifier_remove`), which implement the protocol
// the trait describes; `remove` waits for running callbacks.
unsafe impl IntervalNotifier for KNotifier {
    type Mm = KMm;

    fn new() -> Self {
        // INVARIANT: unregistered.
        Self {
            raw: UnsafeCell::new(bindings::mmu_interval_notifier::default()),
            foreign: None,
            sub: UnsafeCell::new(None),
            mm: UnsafeCell::new(core::ptr::null_mut()),
            registered: AtomicBool::new(false),
        }
    }

    unsafe fn insert(
        &self,
        mm: &KMm,
        start: u64,
        len: u64,
        subscriber: NonNull<dyn Subscriber>,
    ) -> Result {
        if self.foreign.is_some() {
            // Its owner registers it, with its own ops.
            return Err(code::EINVAL);
        }
        if self.registered.load(Ordering::Acquire) {
            return Err(code::EBUSY);
        }
        let (start, len) = (
            c_ulong::try_from(start).map_err(|_| code::EINVAL)?,
            c_ulong::try_from(len).map_err(|_| code::EINVAL)?,
        );
        // Registering the mm's first notifier needs a live address space.
        if !mm.mmget_not_zero() {
            return Err(code::EFAULT);
        }
        // SAFETY: Unregistered, so no callback reads these (type invariant).
        unsafe {
            *self.sub.get() = Some(subscriber);
            *self.mm.get() = mm.as_ptr();
        }
        // SAFETY: `raw` does not move until `remove` (caller's guarantee); the mm is live (user
        // reference above); the caller does not hold the mmap lock.
        let ret = unsafe {
            bindings::mmu_interval_notifier_insert(self.raw(), mm.as_ptr(), start, len, &OPS)
        };
        // SAFETY: Pairs with the `mmget_not_zero` above.
        unsafe { mm.mmput() };
        errno(ret)?;
        // INVARIANT: inserted with `OPS`; `sub` and `mm` set.
        self.registered.store(true, Ordering::Release);
        Ok(())
    }

    unsafe fn remove(&self) {
        if self.foreign.is_some() {
            // Its owner removes it.
            return;
        }
        if self.registered.swap(false, Ordering::AcqRel) {
            // SAFETY: The notifier was registered; the caller is not in one of its callbacks.
            // This waits for running callbacks.
            unsafe { bindings::mmu_interval_notifier_remove(self.raw()) };
        }
    }

    fn read_begin(&self) -> u64 {
        if !self.registered.load(Ordering::Acquire) {
            return 0;
        }
        // SAFETY: Registered, so the notifier (embedded, or foreign and inserted by its owner for
        // our whole lifetime) is inserted in a live subscription list.
        unsafe { bindings::mmu_interval_read_begin(self.raw()) as u64 }
    }

    fn read_retry(&self, seq: u64) -> bool {
        if !self.registered.load(Ordering::Acquire) {
            return true;
        }
        // SAFETY: Registered (see `read_begin`).
        unsafe { ext::gs_mmu_interval_read_retry(self.raw(), seq as c_ulong) }
    }

    fn set_seq(&self, cur_seq: u64) {
        if self.foreign.is_some() {
            // Its owner's ops set the sequence; nothing here calls its callbacks.
            return;
        }
        // SAFETY: Called from the invalidate callback of this registered notifier.
        unsafe { ext::gs_mmu_interval_set_seq(self.raw(), cur_seq as c_ulong) };
    }
}

impl Drop for KNotifier {
    /// Removes the notifier if its owner did not (`mmu_interval_notifier_remove` waits for
    /// running callbacks), so that core mm never keeps a pointer to freed memory. Owners are
    /// expected to remove it themselves, outside its callbacks and before the subscriber goes.
    fn drop(&mut self) {
        // A foreign notifier stays with its owner, who removes it.
        if self.foreign.is_none() && self.registered.load(Ordering::Acquire) {
            // SAFETY: Registered. As for `remove`, the owner must not drop the notifier from
            // inside one of its own callbacks; the subscriber outlives the registration by
            // `insert`'s contract, which extends to this removal.
            unsafe { IntervalNotifier::remove(self) };
        }
    }
}
