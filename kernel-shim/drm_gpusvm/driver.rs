// SPDX-License-Identifier: GPL-2.0

//! The core's driver for C callers: [`CAbi`], and the C structures it keeps in step.
//!
//! One `struct drm_gpusvm` (owned by the C driver, e.g. embedded in Xe's `xe_vm`) is one core
//! [`Svm<CAbi>`](gpusvm_core::Svm), boxed in an [`AbiSvm`] whose pointer lives in the
//! structure's interval-tree root (`gpusvm->root`, which only upstream's own C reads).
//!
//! | upstream (C) | here |
//! |---|---|
//! | `struct drm_gpusvm_notifier` (from `ops->notifier_alloc` or `kzalloc`) | [`CNotifier`], the core notifier's [`SvmDriver::NotifierData`]; `root.rb_root.rb_node` points back to the core notifier |
//! | `struct drm_gpusvm_range` (from `ops->range_alloc` or `kzalloc`, `kref` counted) | [`CRange`], the core range's [`SvmDriver::RangeData`]; the C range owns one count of the core range ([`RangeRef::into_raw`], in `itree.rb.rb_left`) until its kref drops to zero |
//! | `gpusvm->notifier_lock` | [`CLock`]: the core's notifier lock *is* that rwsem, so C callers' `drm_gpusvm_notifier_lock()` and lockdep assertions see the real lock |
//! | `notifier->range_list`, `gpusvm->notifier_list` (walked inline by C: `drm_gpusvm_for_each_range`, `__drm_gpusvm_range_next`) | kept sorted by the core's link/unlink hooks, inside the core's critical sections, exactly where upstream links and unlinks |
//! | `range->pages` (`flags`, `notifier_seq`, `dma_addr`, `dpagemap`, read by C) | mirrored from the core's [`SvmPages`] under the notifier lock after each state change (`gpusvm.rs`) |
//! | `ops->invalidate` | [`CAbi::invalidate`] calls it with the C notifier and a C `mmu_notifier_range`, and records the core's [`Invalidation`] so that the calls Xe makes from inside it (`range_unmap_pages` with `in_notifier`, `range_set_unmapped`) reach the core's write-locked path |

use core::cell::Cell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use gpusvm_core::{
    code, Invalidation, PagesApi, MmuEvent, Notifier, Range, RangeFlags, RangeRef, RawRwLock, Result,
    Span, Svm, SvmDriver, SvmPages,
};
use gpusvm_kshim::{KAlloc, KClock, KDma, KMm};
use kernel::bindings as k;

use crate::bindings as c;
use crate::devmem::CDevmem;
use crate::pagemap::CPagemap;

/// The core's driver type behind every `struct drm_gpusvm`.
///
/// # Invariants
///
/// - `gpusvm` is the C structure this instance serves; it outlives the instance (the C caller
///   keeps it until `drm_gpusvm_fini`, which drops the instance first).
/// - `inv` is non-null only while [`CAbi::invalidate`] runs, with the notifier lock held for
///   writing, and then points to the core's invalidation of that call.
pub(crate) struct CAbi {
    gpusvm: NonNull<c::drm_gpusvm>,
    dma: KDma,
    inv: Cell<*const ()>,
}

// SAFETY: The C structure is shared with C callers under upstream's locking rules, which the core
// follows; `inv` is written and read only with the notifier lock held for writing (type
// invariants), so no two threads touch it at once.
unsafe impl Send for CAbi {}
// SAFETY: As above.
unsafe impl Sync for CAbi {}

impl CAbi {
    /// A driver for `gpusvm`, mapping pages for `dma`.
    ///
    /// # Safety
    ///
    /// `gpusvm` outlives the returned value.
    pub(crate) unsafe fn new(gpusvm: NonNull<c::drm_gpusvm>, dma: KDma) -> Self {
        // INVARIANT: no invalidation is running.
        Self {
            gpusvm,
            dma,
            inv: Cell::new(core::ptr::null()),
        }
    }

    /// The C structure.
    pub(crate) fn gpusvm(&self) -> *mut c::drm_gpusvm {
        self.gpusvm.as_ptr()
    }

    /// The device that maps pages (`gpusvm->drm->dev`).
    pub(crate) fn dma(&self) -> &KDma {
        &self.dma
    }

    fn ops(&self) -> Option<&c::drm_gpusvm_ops> {
        // SAFETY: `gpusvm` is valid (type invariant); `ops` is constant after init and, when
        // non-null, points to the driver's static ops table.
        unsafe { self.gpusvm.as_ref().ops.as_ref() }
    }

    /// The invalidation running right now, if the caller is inside [`CAbi::invalidate`].
    ///
    /// # Safety
    ///
    /// The caller holds the notifier lock for writing (it is the invalidate op, or code it
    /// called), so that `inv` is not changing.
    pub(crate) unsafe fn current_invalidation(&self) -> Option<&Invalidation<'_, CAbi>> {
        let p = self.inv.get().cast::<Invalidation<'_, CAbi>>();
        // SAFETY: Non-null only during `invalidate`, pointing to its argument, which outlives
        // the op (type invariants).
        unsafe { p.as_ref() }
    }
}

/// The notifier lock: upstream's `gpusvm->notifier_lock`, or an owned rwsem for [`RawRwLock::new`].
///
/// A C caller may already hold the lock when it calls in: upstream's `drm_gpusvm_unmap_pages`
/// with `ctx->in_notifier` runs inside the caller's own notifier, which took the lock for
/// writing. Such calls use the core's `*_locked` functions with a
/// [`gpusvm_core::HeldWriteLock`] proof instead of taking the lock again (`userptr.rs`).
///
/// # Invariants
///
/// `sem` points to an initialized `rw_semaphore` that outlives this value; if `owned`, this value
/// allocated it and frees it on drop.
pub(crate) struct CLock {
    sem: NonNull<k::rw_semaphore>,
    owned: bool,
}

// SAFETY: An rwsem may be taken and released from any task.
unsafe impl Send for CLock {}
// SAFETY: All operations go through the rwsem's own synchronization.
unsafe impl Sync for CLock {}

impl CLock {
    /// The notifier lock of `gpusvm`, whose rwsem is initialized.
    ///
    /// # Safety
    ///
    /// `gpusvm` outlives the returned value and its `notifier_lock` is initialized.
    pub(crate) unsafe fn borrowed(gpusvm: NonNull<c::drm_gpusvm>) -> Self {
        let g = gpusvm.as_ptr();
        // SAFETY: A field address inside the live structure (caller).
        let sem = unsafe { NonNull::new_unchecked(core::ptr::addr_of_mut!((*g).notifier_lock)) };
        // INVARIANT: by the caller's guarantee.
        Self { sem, owned: false }
    }
}

// SAFETY: `down_read`/`down_write` exclude as an rwsem does, with acquire semantics; the ups
// release.
unsafe impl RawRwLock for CLock {
    fn new() -> Self {
        // Never used by this crate (every instance is built with `Svm::with_lock` on the C
        // structure's own lock), but the trait requires a way to make a fresh lock: an owned one,
        // like the shim's.
        let sem = loop {
            // SAFETY: A plain allocation that cannot fail (see `gpusvm_kshim::KRwSem`).
            let p = unsafe { gpusvm_kshim::ext::gs_kmalloc_nofail(size_of::<k::rw_semaphore>()) };
            if let Some(sem) = NonNull::new(p.cast::<k::rw_semaphore>()) {
                break sem;
            }
        };
        // SAFETY: A fresh allocation of the right size, initialized in place.
        unsafe { crate::bindings::gs_abi_init_notifier_lock(sem.as_ptr()) };
        // INVARIANT: initialized, owned.
        Self { sem, owned: true }
    }

    fn read_lock(&self) {
        // SAFETY: Initialized (type invariant).
        unsafe { k::down_read(self.sem.as_ptr()) };
    }

    unsafe fn read_unlock(&self) {
        // SAFETY: The caller holds the read side.
        unsafe { k::up_read(self.sem.as_ptr()) };
    }

    fn write_lock(&self) {
        // SAFETY: Initialized (type invariant).
        unsafe { k::down_write(self.sem.as_ptr()) };
    }

    fn try_write_lock(&self) -> bool {
        // SAFETY: Initialized (type invariant).
        unsafe { k::down_write_trylock(self.sem.as_ptr()) != 0 }
    }

    unsafe fn write_unlock(&self) {
        // SAFETY: The caller holds the write side.
        unsafe { k::up_write(self.sem.as_ptr()) };
    }
}

impl Drop for CLock {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: Owned and no longer locked (guards borrow the lock).
            unsafe { k::kfree(self.sem.as_ptr().cast()) };
        }
    }
}

/// The C notifier of a core notifier window.
///
/// # Invariants
///
/// `ptr` is `None` only for a default value that no notifier carries ([`CAbi::notifier_data`]
/// always allocates); otherwise it is a `struct drm_gpusvm_notifier` this value owns, allocated
/// by `free`'s counterpart (`ops->notifier_alloc`, or `kzalloc` when `free` is `None`).
#[derive(Default)]
pub(crate) struct CNotifier {
    ptr: Option<NonNull<c::drm_gpusvm_notifier>>,
    free: Option<unsafe extern "C" fn(*mut c::drm_gpusvm_notifier)>,
}

// SAFETY: The C structure is only touched under upstream's locking rules.
unsafe impl Send for CNotifier {}
// SAFETY: As above.
unsafe impl Sync for CNotifier {}

impl CNotifier {
    /// The C structure (null for a default value).
    pub(crate) fn as_ptr(&self) -> *mut c::drm_gpusvm_notifier {
        self.ptr.map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }
}

impl Drop for CNotifier {
    fn drop(&mut self) {
        let Some(p) = self.ptr else { return };
        match self.free {
            // SAFETY: Allocated by the driver's `notifier_alloc` (type invariant), unlinked from
            // every list (the core frees notifiers after `notifier_unlinked`).
            Some(free) => unsafe { free(p.as_ptr()) },
            // SAFETY: Allocated by `kzalloc` (type invariant), unlinked as above.
            None => unsafe { k::kfree(p.as_ptr().cast()) },
        }
    }
}

/// The C range of a core range, and the core's pages object for it.
///
/// # Invariants
///
/// - `ptr` is a `struct drm_gpusvm_range` whose `kref` was initialized here. Until the core links
///   the range (`owned_here`), this value owns it and frees it on drop; from then on the C range
///   owns one count of the core range (in `itree.rb.rb_left`) and frees itself when its kref
///   drops to zero ([`crate::gpusvm::range_release`]), after dropping that count, so this value
///   never outlives it in that state.
pub(crate) struct CRange {
    ptr: NonNull<c::drm_gpusvm_range>,
    owned_here: AtomicBool,
    /// The core's pages object of the range (upstream's `range->pages`, whose C fields are
    /// mirrored from it).
    pub(crate) pages: SvmPages<CAbi>,
}

// SAFETY: The C structure is only touched under upstream's locking rules.
unsafe impl Send for CRange {}
// SAFETY: As above.
unsafe impl Sync for CRange {}

impl CRange {
    /// The C structure.
    pub(crate) fn as_ptr(&self) -> *mut c::drm_gpusvm_range {
        self.ptr.as_ptr()
    }
}

impl Drop for CRange {
    fn drop(&mut self) {
        if !self.owned_here.load(Ordering::Acquire) {
            return;
        }
        // Never linked: nobody else knows the C range.
        // SAFETY: `gpusvm` was set by `range_data` and outlives its ranges.
        let gpusvm = unsafe { (*self.ptr.as_ptr()).gpusvm };
        // SAFETY: As above; allocated by `range_data` with the matching allocator.
        unsafe { free_c_range(gpusvm, self.ptr.as_ptr()) };
    }
}

/// Frees a C range with the driver's `range_free` op, or `kfree`.
///
/// # Safety
///
/// `range` was allocated for `gpusvm` by `range_alloc` (or `kzalloc` if the driver has no
/// `range_alloc`) and nothing refers to it any more.
pub(crate) unsafe fn free_c_range(gpusvm: *mut c::drm_gpusvm, range: *mut c::drm_gpusvm_range) {
    // SAFETY: `gpusvm` is valid (caller); `ops` is constant.
    let free = unsafe { gpusvm.as_ref().and_then(|g| g.ops.as_ref()).and_then(|o| o.range_free) };
    match free {
        // SAFETY: The driver's own object (caller).
        Some(free) => unsafe { free(range) },
        // SAFETY: A `kzalloc` allocation (caller).
        None => unsafe { k::kfree(range.cast()) },
    }
}

/// `INIT_LIST_HEAD`.
///
/// # Safety
///
/// `head` is valid for writes.
pub(crate) unsafe fn list_init(head: *mut k::list_head) {
    // SAFETY: Caller.
    unsafe {
        (*head).next = head;
        (*head).prev = head;
    }
}

/// `list_add(new, prev)`: links `new` right after `prev`.
///
/// # Safety
///
/// `prev` is on a valid list, `new` on none; the caller holds the lock that protects the list.
unsafe fn list_add_after(new: *mut k::list_head, prev: *mut k::list_head) {
    // SAFETY: Caller.
    unsafe {
        let next = (*prev).next;
        (*next).prev = new;
        (*new).next = next;
        (*new).prev = prev;
        // WRITE_ONCE in C: lockless readers of `next` exist in other lists; here readers hold
        // the same locks, but a volatile store costs nothing.
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*prev).next), new);
    }
}

/// `list_del_init`.
///
/// # Safety
///
/// `entry` is on a valid list (or initialized empty); the caller holds the list's lock.
unsafe fn list_del_init(entry: *mut k::list_head) {
    // SAFETY: Caller.
    unsafe {
        let (prev, next) = ((*entry).prev, (*entry).next);
        (*next).prev = prev;
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*prev).next), next);
        list_init(entry);
    }
}

/// The C range that owns `entry` (`list_entry(entry, struct drm_gpusvm_range, entry)`).
pub(crate) fn range_of_entry(entry: *mut k::list_head) -> *mut c::drm_gpusvm_range {
    entry
        .cast::<u8>()
        .wrapping_sub(core::mem::offset_of!(c::drm_gpusvm_range, entry))
        .cast()
}

/// The C notifier that owns `entry`.
pub(crate) fn notifier_of_entry(entry: *mut k::list_head) -> *mut c::drm_gpusvm_notifier {
    entry
        .cast::<u8>()
        .wrapping_sub(core::mem::offset_of!(c::drm_gpusvm_notifier, entry))
        .cast()
}

/// Where the C range keeps its count of the core range.
///
/// # Safety
///
/// `range` is a valid C range made by [`CAbi::range_data`].
pub(crate) unsafe fn core_ref_slot(range: *mut c::drm_gpusvm_range) -> *mut *mut k::rb_node {
    // SAFETY: Caller; a field address.
    unsafe { core::ptr::addr_of_mut!((*range).itree.rb.rb_left) }
}

/// The core range a linked C range stands for (`None` if it was never linked, e.g. not made by
/// this implementation).
///
/// # Safety
///
/// `range` is a valid C range made by [`CAbi::range_data`], with a kref held by the caller (so
/// the count it owns, and the core range, stay alive while the result is used).
pub(crate) unsafe fn core_range<'a>(range: *mut c::drm_gpusvm_range) -> Option<&'a Range<CAbi>> {
    // SAFETY: Caller.
    let p = unsafe { *core_ref_slot(range) }.cast::<Range<CAbi>>();
    // SAFETY: Set by `range_linked` from `RangeRef::into_raw`, cleared only when the C range is
    // released (caller holds a kref).
    unsafe { p.as_ref() }
}

/// Where the C notifier points back to its core notifier.
///
/// # Safety
///
/// `notifier` is a valid C notifier.
pub(crate) unsafe fn core_notifier_slot(
    notifier: *mut c::drm_gpusvm_notifier,
) -> *mut *mut k::rb_node {
    // SAFETY: Caller; a field address.
    unsafe { core::ptr::addr_of_mut!((*notifier).root.rb_root.rb_node) }
}

impl SvmDriver for CAbi {
    type Mm = KMm;
    type Lock = CLock;
    type Alloc = KAlloc;
    type Clock = KClock;
    type Dma = KDma;
    type Pagemap = CPagemap;
    type Devmem = CDevmem;
    type RangeData = CRange;
    type NotifierData = CNotifier;

    fn range_data(&self, span: Span) -> Result<CRange> {
        let gpusvm = self.gpusvm();
        let alloc = self.ops().and_then(|o| o.range_alloc);
        let ptr = match alloc {
            // SAFETY: The driver's op, called as upstream calls it.
            Some(f) => unsafe { f(gpusvm) },
            // SAFETY: A zeroed allocation of the C structure.
            None => unsafe {
                k::__kmalloc_noprof(
                    size_of::<c::drm_gpusvm_range>(),
                    k::GFP_KERNEL | k::__GFP_ZERO,
                )
            }
            .cast(),
        };
        let ptr = NonNull::new(ptr).ok_or(code::ENOMEM)?;
        let r = ptr.as_ptr();
        let last = span.end().checked_sub(1).ok_or(code::EINVAL)?;
        // SAFETY: A fresh C range we own; initialized as `drm_gpusvm_range_alloc` does.
        unsafe {
            (*r).refcount.refcount.refs.counter = 1;
            (*r).gpusvm = gpusvm;
            (*r).notifier = core::ptr::null_mut();
            (*r).itree.start = span.start() as _;
            (*r).itree.last = last as _;
            (*r).itree.rb = k::rb_node::default();
            list_init(core::ptr::addr_of_mut!((*r).entry));
            (*r).pages.notifier_seq = i64::MAX as _;
        }
        // INVARIANT: owned here until linked.
        Ok(CRange {
            ptr,
            owned_here: AtomicBool::new(true),
            pages: SvmPages::new(self.dma.clone()),
        })
    }

    // Inlined so that the core's closure is called directly (once per range of an invalidation).
    #[inline]
    fn for_each_pages<'a>(data: &'a CRange, f: &mut dyn FnMut(&'a SvmPages<Self>)) {
        f(&data.pages);
    }

    fn notifier_data(&self, span: Span) -> Result<CNotifier> {
        let ops = self.ops();
        let (alloc, free) = (ops.and_then(|o| o.notifier_alloc), ops.and_then(|o| o.notifier_free));
        let ptr = match alloc {
            // SAFETY: The driver's op.
            Some(f) => unsafe { f() },
            // SAFETY: A zeroed allocation of the C structure.
            None => unsafe {
                k::__kmalloc_noprof(
                    size_of::<c::drm_gpusvm_notifier>(),
                    k::GFP_KERNEL | k::__GFP_ZERO,
                )
            }
            .cast(),
        };
        let ptr = NonNull::new(ptr).ok_or(code::ENOMEM)?;
        let n = ptr.as_ptr();
        let last = span.end().checked_sub(1).ok_or(code::EINVAL)?;
        // SAFETY: A fresh C notifier we own; initialized as `drm_gpusvm_notifier_alloc` does.
        unsafe {
            (*n).gpusvm = self.gpusvm();
            (*n).itree.start = span.start() as _;
            (*n).itree.last = last as _;
            list_init(core::ptr::addr_of_mut!((*n).entry));
            (*n).root = k::rb_root_cached::default();
            list_init(core::ptr::addr_of_mut!((*n).range_list));
        }
        // INVARIANT: allocated above with the allocator `free` pairs with.
        Ok(CNotifier {
            ptr: Some(ptr),
            free: if alloc.is_some() { free } else { None },
        })
    }

    fn notifier_linked(&self, notifier: &Notifier<Self>) {
        let n = notifier.data().as_ptr();
        if n.is_null() {
            return;
        }
        let gpusvm = self.gpusvm();
        // SAFETY: We hold the driver lock (the core calls this from `&mut Svm`); the C notifier
        // is ours and the list is the instance's, both valid. The back-pointer is the core
        // notifier's stable address (it never moves while linked).
        unsafe {
            *core_notifier_slot(n) = core::ptr::from_ref(notifier).cast_mut().cast();
            let head = core::ptr::addr_of_mut!((*gpusvm).notifier_list);
            // Sorted by start, like upstream's insertion after `rb_prev`: after the last
            // notifier that starts below this one (searched from the tail, where new windows
            // usually go).
            let start = (*n).itree.start;
            let mut prev = (*head).prev;
            while prev != head && (*notifier_of_entry(prev)).itree.start > start {
                prev = (*prev).prev;
            }
            list_add_after(core::ptr::addr_of_mut!((*n).entry), prev);
        }
    }

    fn notifier_unlinked(&self, notifier: &Notifier<Self>) {
        let n = notifier.data().as_ptr();
        if n.is_null() {
            return;
        }
        // SAFETY: Driver lock held; the entry is on the instance's list (linked above).
        unsafe {
            list_del_init(core::ptr::addr_of_mut!((*n).entry));
            *core_notifier_slot(n) = core::ptr::null_mut();
        }
    }

    fn range_linked(&self, notifier: &Notifier<Self>, range: &Range<Self>) {
        let n = notifier.data().as_ptr();
        let r = range.data().as_ptr();
        if n.is_null() {
            return;
        }
        // The C range takes over its own lifetime and holds a count of the core range (no
        // allocation: a refcount increment).
        let first_link = range.data().owned_here.swap(false, Ordering::AcqRel);
        // SAFETY: The driver lock and the notifier lock (read) are held, as for upstream's
        // `drm_gpusvm_range_insert`; both C structures are valid and ours.
        unsafe {
            // The first range of a new notifier is linked before `notifier_linked` runs, and the
            // notifier is already registered: an invalidation in between must find this range
            // through `drm_gpusvm_range_find`, which needs the back-pointer. Invalidations read
            // it under the write lock; we hold the read lock.
            let back = core_notifier_slot(n);
            if (*back).is_null() {
                *back = core::ptr::from_ref(notifier).cast_mut().cast();
            }
            if first_link {
                *core_ref_slot(r) = range.get().into_raw().as_ptr().cast();
            }
            (*r).notifier = n;
            (*r).pages
                .flags
                .__bindgen_anon_1
                .__bindgen_anon_1
                .as_mut()
                .set_migrate_devmem(u16::from(range.flags().contains(RangeFlags::MIGRATE_DEVMEM)));
            let head = core::ptr::addr_of_mut!((*n).range_list);
            let start = (*r).itree.start;
            let mut prev = (*head).prev;
            while prev != head && (*range_of_entry(prev)).itree.start > start {
                prev = (*prev).prev;
            }
            list_add_after(core::ptr::addr_of_mut!((*r).entry), prev);
        }
    }

    fn range_unlinked(&self, _notifier: &Notifier<Self>, range: &Range<Self>) {
        let r = range.data().as_ptr();
        // SAFETY: The same locks as for linking; the entry is on its notifier's list.
        unsafe { list_del_init(core::ptr::addr_of_mut!((*r).entry)) };
    }

    fn invalidate(&self, inv: &Invalidation<'_, Self>) -> bool {
        // Upstream refuses non-blockable invalidations outright (the C op may sleep).
        if !inv.blockable() {
            return false;
        }
        let Some(op) = self.ops().and_then(|o| o.invalidate) else {
            return true;
        };
        let n = inv.notifier().data().as_ptr();
        let r = inv.mmu_range();
        let event = match r.event {
            MmuEvent::Unmap => k::mmu_notifier_event_MMU_NOTIFY_UNMAP,
            MmuEvent::Clear => k::mmu_notifier_event_MMU_NOTIFY_CLEAR,
            MmuEvent::ProtectionVma => k::mmu_notifier_event_MMU_NOTIFY_PROTECTION_VMA,
            MmuEvent::ProtectionPage => k::mmu_notifier_event_MMU_NOTIFY_PROTECTION_PAGE,
            MmuEvent::SoftDirty => k::mmu_notifier_event_MMU_NOTIFY_SOFT_DIRTY,
            MmuEvent::Release => k::mmu_notifier_event_MMU_NOTIFY_RELEASE,
            MmuEvent::Migrate => k::mmu_notifier_event_MMU_NOTIFY_MIGRATE,
            MmuEvent::Exclusive => k::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE,
        };
        // SAFETY: `gpusvm` is valid (type invariant).
        let mm = unsafe { self.gpusvm.as_ref().mm };
        let c_range = k::mmu_notifier_range {
            mm,
            start: r.start as _,
            end: r.end as _,
            flags: k::MMU_NOTIFIER_RANGE_BLOCKABLE,
            event,
            owner: r.owner.map_or(core::ptr::null_mut(), |o| o.0 as *mut _),
            ..Default::default()
        };
        // INVARIANT: set for the duration of the op, with the write lock held (the core calls
        // `invalidate` only so).
        self.inv.set(core::ptr::from_ref(inv).cast());
        // SAFETY: The driver's op with upstream's arguments: the instance, the C notifier of the
        // window being invalidated, and the range, with the notifier lock held for writing.
        unsafe { op(self.gpusvm(), n, &c_range) };
        self.inv.set(core::ptr::null());
        true
    }
}

/// The Rust state behind one `struct drm_gpusvm`.
///
/// # Invariants
///
/// `drv` points to the driver inside `svm`'s shared state (boxed by the core, so it does not move)
/// and lives as long as `svm`.
pub(crate) struct AbiSvm {
    /// The core instance. Structural calls (`&mut`) are serialized by the C caller's driver
    /// lock, as upstream requires (`drm_gpusvm_driver_set_lock`).
    pub(crate) svm: core::cell::UnsafeCell<Svm<CAbi>>,
    drv: NonNull<CAbi>,
    pages: PagesApi<'static, CAbi>,
}

impl AbiSvm {
    /// Wraps `svm`.
    pub(crate) fn new(svm: Svm<CAbi>) -> Self {
        let drv = NonNull::from(svm.driver());
        // SAFETY: The handle lives in `self` next to the instance and is never handed out beyond
        // a borrow of `self` (`pages`), so it is not used after the instance is dropped.
        let pages = unsafe { svm.pages_api_unbounded() };
        // INVARIANT: the core keeps its driver in a heap block that lives as long as `svm`.
        Self {
            svm: core::cell::UnsafeCell::new(svm),
            drv,
            pages,
        }
    }

    /// The pages-only operations, reached without borrowing the instance: the userptr functions
    /// run without the driver lock, while another thread may hold the instance for a structural
    /// change.
    pub(crate) fn pages(&self) -> PagesApi<'_, CAbi> {
        self.pages
    }

    /// The driver, reached without borrowing the instance: code inside the invalidate op must
    /// not, because another thread may hold the instance for a structural change.
    pub(crate) fn driver(&self) -> &CAbi {
        // SAFETY: Alive as long as `self` (type invariant).
        unsafe { self.drv.as_ref() }
    }
}

/// Takes back the count a C range owns on its core range and clears the slot (the C range is
/// being released).
///
/// # Safety
///
/// `range` is a C range made by [`CAbi::range_data`] whose kref has dropped to zero.
pub(crate) unsafe fn take_core_ref(range: *mut c::drm_gpusvm_range) -> Option<RangeRef<CAbi>> {
    // SAFETY: Caller.
    let slot = unsafe { core_ref_slot(range) };
    // SAFETY: As above.
    let p = NonNull::new(unsafe { *slot }.cast::<Range<CAbi>>())?;
    // SAFETY: As above; nobody else uses the slot of a released range.
    unsafe { *slot = core::ptr::null_mut() };
    // SAFETY: Stored by `range_linked` from `RangeRef::into_raw`, taken back once.
    Some(unsafe { RangeRef::from_raw(p) })
}
