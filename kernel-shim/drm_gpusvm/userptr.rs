// SPDX-License-Identifier: GPL-2.0

//! The pages API of `include/drm/drm_gpusvm.h` (`drm_gpusvm_get_pages`,
//! `drm_gpusvm_unmap_pages`, `drm_gpusvm_free_pages`) on the core's [`Svm::get_pages`],
//! [`Svm::unmap_pages`] and [`Svm::free_pages`]: what Xe's userptr uses, on a `struct
//! drm_gpusvm_pages` embedded in its own `xe_userptr`, with its own `mmu_interval_notifier`
//! (registered by Xe with Xe's ops), in either mode of `drm_gpusvm_init` (simple mode, `mm ==
//! NULL`, or full mode).
//!
//! # Where the core's pages object lives
//!
//! The C structure belongs to the caller. C reads `dma_addr`, `dpagemap`, `notifier_seq` and
//! `flags` itself; only upstream's own C touches `state` (the IOVA state) and `state_offset`.
//! So each C pages object that went through [`drm_gpusvm_get_pages`] owns one [`UserPages`]: a
//! `kmalloc`'ed Rust object holding the core's [`SvmPages`] (mapping for the instance's DMA
//! device), the instance it belongs to and the size of the C `dma_addr` array. Its pointer is
//! kept in `state.addr`, with [`TAG`] in `state.__size` to tell it from a zeroed (never used)
//! state. It is allocated by the first `get_pages`, before any lock, and published, with the C
//! `dma_addr` array, under the notifier lock held for writing; `free_pages` detaches both under
//! that lock and frees them. A C `dma_addr` array exists only together with a `UserPages`.
//!
//! # The caller's notifier
//!
//! The `mmu_interval_notifier` is the caller's, inserted by the caller with its own ops; the
//! core wants a [`KNotifier`]. [`KNotifier::foreign`] wraps the raw notifier for the duration
//! of one call: `read_begin`, `read_retry` and `hmm_range_fault` use it, while inserting,
//! removing and setting its sequence stay with its owner. The notifier must be registered on
//! `mm` (`notifier->mm == mm`: `hmm_range_fault` walks the notifier's mm) and its interval must
//! cover `[pages_start, pages_end)`, or the call fails with `-EINVAL`.
//!
//! # What C sees
//!
//! After each state change, under the notifier lock, the C fields are made to match the core's
//! pages object ([`crate::gpusvm::mirror_c_pages`], shared with the range functions):
//! `has_dma_mapping`/`has_devmem_pages`, `dpagemap` (one reference) and the `dma_addr` entries.
//! `notifier_seq` is written only after a successful `get_pages` whose pages are still valid
//! under the lock, and then it is exactly the sequence the core's walk was validated against
//! (or, on the fast path, the fresh `mmu_interval_read_begin` upstream also stores). Xe checks
//! that value with `mmu_interval_read_retry` on its own notifier, and lowers it by 2 to force a
//! repin: nothing else here writes it, so neither an unmap nor a failed `get_pages` undoes that.
//!
//! # Locking
//!
//! `drm_gpusvm_unmap_pages` with `ctx->in_notifier` runs inside the caller's notifier, with the
//! notifier lock held for writing by the caller (upstream asserts it, and so does this file,
//! with lockdep). The unmap then uses the core's `*_locked` functions with a [`HeldWriteLock`]
//! proof of that hold instead of taking the lock. Without `in_notifier`, and in `free_pages`, the
//! lock is taken here for writing (upstream takes it for reading) so that the core's unmap and
//! the C mirror form one critical section, as upstream's unmap and flag update do.
//!
//! An instance can be finalized while C pages objects still hold mappings (Xe frees a userptr
//! from a fence callback, possibly after `drm_gpusvm_fini`, and its notifier stays registered
//! until then). Upstream's functions keep working then; here, with no core instance left,
//! `unmap_pages` and `free_pages` tear the pages down directly: under the C notifier lock
//! (still a live rwsem) held for writing, the `UserPages` is detached and dropped, which unmaps
//! every mapping it holds, and the C array is freed. `get_pages` then fails with `-EINVAL`.
//!
//! # Deviations
//!
//! - `npages` of `unmap_pages`/`free_pages` is not used: the core knows what it mapped.
//! - NULL pointers, an uninitialized or finalized instance (for `get_pages`), `start >= end`,
//!   unaligned bounds, a notifier not registered on `mm` or not covering the span, and pages
//!   that belong to another instance, or already carry a `dma_addr` array not made here (a
//!   range's pages), fail with `-EINVAL` (upstream dereferences or misbehaves); the `void`
//!   functions then do nothing.
//! - If an invalidation keeps tearing the fresh mapping down between the core's commit and the
//!   mirror, `get_pages` retries (8 times) and then fails with `-EAGAIN`, as
//!   `drm_gpusvm_range_get_pages` does; upstream would return 0 with a stale sequence.
//! - `unmap_pages` without `in_notifier` and `free_pages` take the notifier lock for writing.
//! - The C `dma_addr` array is kept while the pages are invalid and only replaced by a larger
//!   one (before any lock) when a `get_pages` spans more pages; upstream frees it whenever it
//!   finds the pages invalid and allocates it again under the "unlock and restart" pattern.
//! - After `drm_gpusvm_fini`, `unmap_pages` frees what `free_pages` would (there is no core
//!   instance to keep a pages object for), and `free_pages` then has nothing left to do.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use gpusvm_core::{code, Error, HeldWriteLock, PagesApi, Span, SvmPages};
use gpusvm_kshim::{KMm, KNotifier, PAGE_SHIFT};
use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::bindings as k;
use kernel::ffi::{c_int, c_ulong};

use crate::bindings as c;
use crate::driver::{CAbi, CLock};
use crate::gpusvm::{
    ctx_of, free_dma_array, mirror_c_pages, mirror_seq, mirror_unmapped, new_dma_array,
    read_flags, state, take_dma_array,
};

/// The value of `state.__size` that marks `state.addr` as a pointer to a [`UserPages`].
const TAG: u64 = u64::from_be_bytes(*b"gsvmUPTR");

/// How often `get_pages` faults again when an invalidation tore the fresh mapping down before it
/// could be mirrored (see the module docs).
const MIRROR_ATTEMPTS: usize = 8;

/// The Rust state behind one C `struct drm_gpusvm_pages` (see the module docs).
///
/// # Invariants
///
/// - `gpusvm` is the instance whose `drm_gpusvm_get_pages` made this object; `pages` maps for
///   its DMA device and belongs to its core instance while that lives.
/// - While this object is attached to a C pages object, that object's `dma_addr` is NULL (and
///   `cap` 0) or an array from [`new_dma_array`] with `cap` entries, both changed only with the
///   notifier lock held for writing.
pub(crate) struct UserPages {
    gpusvm: *mut c::drm_gpusvm,
    pages: SvmPages<CAbi>,
    cap: AtomicUsize,
}

/// The [`UserPages`] attached to `p`, if any.
///
/// The reference is valid until the object is detached ([`detach`]), which only `free_pages`
/// and the teardown after `fini` do, with the notifier lock held for writing; callers follow
/// upstream's rule that `free_pages` does not race with the other calls on the same pages
/// (except the caller's notifier, which holds the lock while it uses the object).
///
/// # Safety
///
/// `p` is a valid C pages object.
unsafe fn user_pages<'a>(p: *const c::drm_gpusvm_pages) -> Option<&'a UserPages> {
    // SAFETY: Caller; field reads through the raw pointer.
    let (tag, addr) = unsafe { ((*p).state.__size, (*p).state.addr) };
    if tag != TAG {
        return None;
    }
    // SAFETY: Tagged by `attach`: the pointer of a live `KBox<UserPages>`, valid until `detach`.
    unsafe { (addr as usize as *const UserPages).as_ref() }
}

/// Attaches `obj` to `p`.
///
/// # Safety
///
/// `p` is a valid C pages object with no object attached; the caller holds the notifier lock for
/// writing.
unsafe fn attach(p: *mut c::drm_gpusvm_pages, obj: KBox<UserPages>) {
    let raw = KBox::into_raw(obj);
    // SAFETY: Caller.
    unsafe {
        (*p).state.addr = raw as usize as _;
        (*p).state.__size = TAG;
    }
}

/// Detaches the object attached to `p`, if any.
///
/// # Safety
///
/// `p` is a valid C pages object; the caller holds the notifier lock for writing, and no
/// reference from [`user_pages`] is used after this call.
unsafe fn detach(p: *mut c::drm_gpusvm_pages) -> Option<KBox<UserPages>> {
    // SAFETY: Caller.
    let st = unsafe { &mut (*p).state };
    if st.__size != TAG {
        return None;
    }
    let raw = st.addr as usize as *mut UserPages;
    *st = k::dma_iova_state::default();
    // SAFETY: Made by `KBox::into_raw` in `attach`, taken back once (the tag is gone now).
    NonNull::new(raw).map(|raw| unsafe { KBox::from_raw(raw.as_ptr()) })
}

/// Whether the C flags of `p` say the pages were unmapped (`flags.unmapped`).
///
/// # Safety
///
/// `p` is a valid C pages object.
unsafe fn c_unmapped(p: *const c::drm_gpusvm_pages) -> bool {
    // SAFETY: Caller.
    let f = unsafe { read_flags(p) };
    // SAFETY: The union's views are plain integers.
    unsafe { f.__bindgen_anon_1.__bindgen_anon_1.as_ref() }.unmapped() != 0
}

/// The object of `p` for a `get_pages` of `npages` pages, made or grown first: a new object
/// and a larger C `dma_addr` array are allocated before any lock and published under the
/// notifier lock held for writing (C reads `dma_addr` under the lock). A larger array takes over
/// the entries of the old one, so that a still-valid mapping stays readable.
///
/// # Safety
///
/// `gpusvm` is initialized and `svm` its core instance; `p` is a valid C pages object on which
/// the caller is the only one to call `get_pages` or `free_pages` (upstream's rule).
unsafe fn prepare<'a>(
    svm: PagesApi<'_, CAbi>,
    gpusvm: *mut c::drm_gpusvm,
    p: *mut c::drm_gpusvm_pages,
    npages: usize,
) -> Result<&'a UserPages, Error> {
    // SAFETY: Caller.
    let existing = unsafe { user_pages(p) };
    let fresh = match existing {
        Some(o) if o.gpusvm != gpusvm => return Err(code::EINVAL),
        Some(o) if o.cap.load(Ordering::Relaxed) >= npages => return Ok(o),
        Some(_) => None,
        None => {
            // SAFETY: Caller.
            if !unsafe { (*p).dma_addr }.is_null() {
                // An array this module did not make: a range's pages, or garbage.
                return Err(code::EINVAL);
            }
            let obj = UserPages {
                gpusvm,
                pages: SvmPages::new(svm.driver().dma().clone()),
                cap: AtomicUsize::new(0),
            };
            Some(KBox::new(obj, GFP_KERNEL).map_err(|_| code::ENOMEM)?)
        }
    };
    let old_cap = existing.map_or(0, |o| o.cap.load(Ordering::Relaxed));
    let arr = new_dma_array(npages)?;
    let old = {
        let _wg = svm.notifier_lock_write();
        if let Some(obj) = fresh {
            // SAFETY: Valid, nothing attached (checked above, and nobody else attaches: the
            // caller's rule); write lock held.
            unsafe { attach(p, obj) };
        }
        // SAFETY: Attached just now or before.
        let Some(obj) = (unsafe { user_pages(p) }) else {
            // SAFETY: Never published (freeing under the lock is allowed, allocating is not).
            unsafe { free_dma_array(arr.as_ptr()) };
            return Err(code::EINVAL);
        };
        // SAFETY: Write lock held, so no C reader uses the array; the old one has `old_cap`
        // entries, the new one `npages > old_cap` (type invariants of `UserPages`).
        let old = unsafe {
            let old = core::mem::replace(&mut (*p).dma_addr, arr.as_ptr());
            if !old.is_null() {
                core::ptr::copy_nonoverlapping(old, arr.as_ptr(), old_cap);
            }
            old
        };
        // INVARIANT: the array just published has `npages` entries.
        obj.cap.store(npages, Ordering::Relaxed);
        old
    };
    // SAFETY: Unpublished under the write lock above: nobody can reach it any more.
    unsafe { free_dma_array(old) };
    // SAFETY: Attached above; valid until `free_pages` (module docs).
    unsafe { user_pages(p) }.ok_or(code::EINVAL)
}

/// Tears down the pages of `p` whose instance is gone: detaches and drops the object (which
/// unmaps everything it still maps), clears the C flags, drops the C pagemap reference and frees
/// the C array.
///
/// # Safety
///
/// `p` is a valid C pages object; the caller holds the instance's notifier lock for writing; no
/// reference from [`user_pages`] is used afterwards.
unsafe fn teardown_locked(p: *mut c::drm_gpusvm_pages) {
    // SAFETY: Caller.
    unsafe {
        let obj = detach(p);
        mirror_unmapped(p);
        let arr = take_dma_array(p);
        // Unmapping and freeing, never allocating, under the lock (as upstream's
        // `__drm_gpusvm_unmap_pages` and `__drm_gpusvm_free_pages`).
        drop(obj);
        free_dma_array(arr);
    }
}

/// Runs `f` with a proof that the notifier lock of the instance is held for writing by the
/// current task: by the caller already (`held`, upstream's `in_notifier`, asserted with lockdep
/// as upstream's `lockdep_assert_held_write`), or taken here. `f` uses the core's `*_locked`
/// functions with the proof, so nothing takes the lock again.
///
/// # Safety
///
/// `gpusvm` is initialized and `svm` its core instance; if `held`, the current task holds the
/// lock for writing for the whole call.
unsafe fn write_locked<R>(
    svm: PagesApi<'_, CAbi>,
    gpusvm: *mut c::drm_gpusvm,
    held: bool,
    f: impl FnOnce(&HeldWriteLock<'_, CLock>) -> R,
) -> R {
    let _wg = if held {
        // SAFETY: Initialized (caller).
        unsafe { crate::gpusvm::assert_notifier_write_held(gpusvm) };
        None
    } else {
        Some(svm.notifier_lock_write())
    };
    // SAFETY: Held for writing for this whole function: by the caller, or by `_wg`.
    let held = unsafe { svm.assume_write_locked() };
    f(&held)
}

/// Runs `f` with the C notifier lock of a finalized instance held for writing (`held`: by the
/// caller already).
///
/// # Safety
///
/// `gpusvm` was initialized by this crate (its rwsem stays initialized after `fini`); if `held`,
/// the current task holds the lock for writing.
unsafe fn c_write_locked(gpusvm: *mut c::drm_gpusvm, held: bool, f: impl FnOnce()) {
    if held {
        f();
        return;
    }
    // SAFETY: Caller: a field of a structure initialized by `drm_gpusvm_init`.
    let sem = unsafe { core::ptr::addr_of_mut!((*gpusvm).notifier_lock) };
    // SAFETY: An initialized rwsem (caller).
    unsafe { k::down_write(sem) };
    f();
    // SAFETY: Taken just above.
    unsafe { k::up_write(sem) };
}

/// `drm_gpusvm_get_pages`: faults in `[pages_start, pages_end)` of `mm` through the caller's
/// `notifier`, DMA-maps it, and publishes the mapping in `svm_pages` under the notifier lock
/// (flags, `dpagemap`, `dma_addr`) with the walk's `notifier_seq`.
///
/// # Safety
///
/// As upstream: `gpusvm` NULL or initialized, `svm_pages` NULL or a C pages object (zeroed
/// before its first use) only used with this instance's pages functions, `mm` NULL or a live
/// mm, `notifier` NULL or an interval notifier that stays inserted for the call, `ctx` NULL or
/// valid; the caller does not race `get_pages` or `free_pages` on the same pages.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_get_pages(
    gpusvm: *mut c::drm_gpusvm,
    svm_pages: *mut c::drm_gpusvm_pages,
    mm: *mut k::mm_struct,
    notifier: *mut k::mmu_interval_notifier,
    pages_start: c_ulong,
    pages_end: c_ulong,
    ctx: *const c::drm_gpusvm_ctx,
) -> c_int {
    // SAFETY: Caller.
    match unsafe { get_pages(gpusvm, svm_pages, mm, notifier, pages_start, pages_end, ctx) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// [`drm_gpusvm_get_pages`] with a `Result`.
///
/// # Safety
///
/// As for [`drm_gpusvm_get_pages`].
unsafe fn get_pages(
    gpusvm: *mut c::drm_gpusvm,
    p: *mut c::drm_gpusvm_pages,
    mm: *mut k::mm_struct,
    notifier: *mut k::mmu_interval_notifier,
    start: c_ulong,
    end: c_ulong,
    ctx: *const c::drm_gpusvm_ctx,
) -> Result<(), Error> {
    // SAFETY: Caller.
    let s = unsafe { state(gpusvm) }.ok_or(code::EINVAL)?;
    // SAFETY: Caller.
    let (ctx, _) = unsafe { ctx_of(ctx) }.ok_or(code::EINVAL)?;
    let raw = NonNull::new(notifier).ok_or(code::EINVAL)?;
    if p.is_null() || mm.is_null() {
        return Err(code::EINVAL);
    }
    let span = Span::new(start as u64, end as u64)?;
    let page_mask = (1u64 << PAGE_SHIFT) - 1;
    if span.start() & page_mask != 0 || span.end() & page_mask != 0 {
        return Err(code::EINVAL);
    }
    let n = raw.as_ptr();
    // SAFETY: Inserted for the call (caller): `mm` and the interval are set by the insertion
    // and constant while inserted (field reads: core mm writes other fields meanwhile).
    let (nmm, first, last) = unsafe { ((*n).mm, (*n).interval_tree.start, (*n).interval_tree.last) };
    let (first, last) = (first as u64, last as u64);
    if nmm != mm || span.start() < first || span.end().saturating_sub(1) > last {
        return Err(code::EINVAL);
    }
    let npages = usize::try_from(span.len() >> PAGE_SHIFT).map_err(|_| code::EINVAL)?;
    // SAFETY: Valid (checked non-NULL; caller).
    if unsafe { c_unmapped(p) } {
        return Err(code::EFAULT);
    }
    // SAFETY: A live mm (caller); the handle takes an `mmgrab` reference for the call. Whether
    // its address space is still alive is the core's `mmget_not_zero` (`-EFAULT`).
    let kmm = unsafe { KMm::grab(mm) }.ok_or(code::EINVAL)?;
    let svm = s.pages();
    // SAFETY: Initialized, `svm` its instance; the caller's rule on `get_pages`/`free_pages`.
    let obj = unsafe { prepare(svm, gpusvm, p, npages)? };
    // SAFETY: `raw` is inserted on `mm` (checked: `notifier->mm == mm`) and stays inserted for
    // the call, which outlives `knot`.
    let knot = unsafe { KNotifier::foreign(raw, &kmm) };
    for _ in 0..MIRROR_ATTEMPTS {
        let r = svm.get_pages(&obj.pages, &kmm, &knot, span, &ctx);
        let nl = svm.notifier_lock();
        let cap = obj.cap.load(Ordering::Relaxed);
        // SAFETY: `p` is valid with an array of `cap` entries (type invariants of `UserPages`);
        // `nl` and `obj.pages` are the instance's; lock held.
        let valid = unsafe { mirror_c_pages(svm, &nl, &obj.pages, p, cap, || true) };
        if valid && r.is_ok() {
            // SAFETY: As above.
            unsafe { mirror_seq(&obj.pages, p) };
            return Ok(());
        }
        drop(nl);
        r?;
    }
    Err(code::EAGAIN)
}

/// `drm_gpusvm_unmap_pages`: unmaps the pages' DMA mappings and clears the C flags and
/// `dpagemap` (keeping the `dma_addr` array and `notifier_seq`). With `ctx->in_notifier`, the
/// caller holds the notifier lock for writing (its own notifier); otherwise it is taken here.
///
/// # Safety
///
/// `gpusvm` NULL or initialized (or finalized), `svm_pages` NULL or a C pages object of this
/// instance, `ctx` NULL or valid; with `ctx->in_notifier`, the caller holds
/// `gpusvm->notifier_lock` for writing; no `free_pages` on the same pages runs concurrently.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_unmap_pages(
    gpusvm: *mut c::drm_gpusvm,
    svm_pages: *mut c::drm_gpusvm_pages,
    _npages: c_ulong,
    ctx: *const c::drm_gpusvm_ctx,
) {
    // SAFETY: Caller.
    let Some((_, in_notifier)) = (unsafe { ctx_of(ctx) }) else {
        return;
    };
    if gpusvm.is_null() || svm_pages.is_null() {
        return;
    }
    let p = svm_pages;
    // SAFETY: Valid (caller); only `free_pages` detaches, and it does not run concurrently.
    match unsafe { user_pages(p) } {
        Some(o) if o.gpusvm == gpusvm => {}
        // Never mapped here, or another instance's.
        _ => return,
    }
    // SAFETY: Caller.
    let Some(s) = (unsafe { state(gpusvm) }) else {
        // Finalized: no core instance to unmap with.
        let teardown = || {
            // SAFETY: Valid; run with the write lock held; nothing uses the object after this.
            unsafe { teardown_locked(p) }
        };
        // SAFETY: The object's instance was initialized by this crate; with `in_notifier` the
        // caller holds the lock for writing.
        unsafe { c_write_locked(gpusvm, in_notifier, teardown) };
        return;
    };
    let svm = s.pages();
    let unmap = |held: &HeldWriteLock<'_, CLock>| {
        // SAFETY: Valid; under the write lock, which excludes `free_pages`'s detach.
        let Some(obj) = (unsafe { user_pages(p) }) else {
            return;
        };
        svm.unmap_pages_locked(held, &obj.pages);
        let cap = obj.cap.load(Ordering::Relaxed);
        // SAFETY: `p` is valid with an array of `cap` entries; `held` and `obj.pages` are the
        // instance's; lock held.
        unsafe { mirror_c_pages(svm, held, &obj.pages, p, cap, || true) };
    };
    // SAFETY: Initialized, `svm` its instance; with `in_notifier` the caller holds the lock for
    // writing (upstream's contract).
    unsafe { write_locked(svm, gpusvm, in_notifier, unmap) };
}

/// `drm_gpusvm_free_pages`: unmaps the pages and frees everything behind them (the C `dma_addr`
/// array, the `dpagemap` reference, the Rust object); the C pages object is as new afterwards,
/// except for `notifier_seq`.
///
/// # Safety
///
/// `gpusvm` NULL or initialized (or finalized), `svm_pages` NULL or a C pages object of this
/// instance; the caller does not hold the notifier lock, and runs no other call on the same
/// pages concurrently (its notifier may run).
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_free_pages(
    gpusvm: *mut c::drm_gpusvm,
    svm_pages: *mut c::drm_gpusvm_pages,
    _npages: c_ulong,
) {
    if gpusvm.is_null() || svm_pages.is_null() {
        return;
    }
    let p = svm_pages;
    // SAFETY: Valid (caller); nobody else detaches (caller's rule).
    let Some(obj) = (unsafe { user_pages(p) }) else {
        // Nothing was mapped through this API (and so there is no C array either).
        return;
    };
    if obj.gpusvm != gpusvm {
        return;
    }
    // SAFETY: Caller.
    let Some(s) = (unsafe { state(gpusvm) }) else {
        let teardown = || {
            // SAFETY: Valid; run with the write lock held; `obj` is not used after this.
            unsafe { teardown_locked(p) }
        };
        // SAFETY: The object's instance was initialized by this crate; the caller holds no lock.
        unsafe { c_write_locked(gpusvm, false, teardown) };
        return;
    };
    let svm = s.pages();
    let free = |held: &HeldWriteLock<'_, CLock>| {
        svm.free_pages_locked(held, &obj.pages);
        // SAFETY: Valid; write lock held; `obj` is not used after the detach.
        unsafe {
            mirror_unmapped(p);
            (detach(p), take_dma_array(p))
        }
    };
    // SAFETY: Initialized, `svm` its instance; the caller holds no lock, so it is taken here.
    let (boxed, arr) = unsafe { write_locked(svm, gpusvm, false, free) };
    // SAFETY: Unpublished under the write lock: nobody can reach the array any more.
    unsafe { free_dma_array(arr) };
    drop(boxed);
}

// Every function above has upstream's prototype: a mismatch fails the build here.
const _: () = {
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, *mut c::drm_gpusvm_pages, *mut k::mm_struct, *mut k::mmu_interval_notifier, c_ulong, c_ulong, *const c::drm_gpusvm_ctx) -> c_int; 2] =
        [drm_gpusvm_get_pages, c::decl::drm_gpusvm_get_pages];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, *mut c::drm_gpusvm_pages, c_ulong, *const c::drm_gpusvm_ctx); 2] =
        [drm_gpusvm_unmap_pages, c::decl::drm_gpusvm_unmap_pages];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, *mut c::drm_gpusvm_pages, c_ulong); 2] =
        [drm_gpusvm_free_pages, c::decl::drm_gpusvm_free_pages];
};
