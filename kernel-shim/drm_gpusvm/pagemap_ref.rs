// SPDX-License-Identifier: GPL-2.0

//! The lifetime of a `struct drm_pagemap`: upstream's `drm_pagemap_init`, `drm_pagemap_reinit`,
//! `drm_pagemap_put`, `drm_pagemap_create`, `drm_pagemap_destroy`, the kref release function and
//! the private `struct drm_pagemap_dev_hold` (`drivers/gpu/drm/drm_pagemap.c`).
//!
//! # The algorithm
//!
//! A `struct drm_pagemap` is the driver's handle on a range of device-private memory. Its
//! lifetime is its `ref` kref: drivers take references with the header's inline
//! `drm_pagemap_get()` / `drm_pagemap_get_unless_zero()` and drop them with [`drm_pagemap_put`].
//! The structure itself usually lives inside a driver object (Xe's `struct xe_pagemap`), so
//! freeing it is the driver's business: [`drm_pagemap_destroy`] calls `ops->destroy`, or
//! `kfree()`s a pagemap that [`drm_pagemap_create`] allocated.
//!
//! While a pagemap has references it may be in use by somebody other than its provider (another
//! device's GPU SVM mapping its pages, a process holding an fd to it), so it pins its provider:
//! one reference on the `drm_device` (`drm_dev_get`) and one on the module that owns the driver
//! (`drm->driver->fops->owner`, `try_module_get`). Both references are owned by a small
//! separately allocated object, the *dev hold* ([`DevHold`], upstream's
//! `struct drm_pagemap_dev_hold`), stored in `dpagemap->dev_hold`. [`drm_pagemap_init`] sets up
//! the fields and calls [`drm_pagemap_reinit`], which allocates a fresh hold and sets the
//! refcount to one. Allocation happens here, in process context, because the release below must
//! not allocate.
//!
//! When the last reference goes, the release function ([`drm_pagemap_release`]):
//!
//! 1. detaches the hold (`dpagemap->dev_hold = NULL`);
//! 2. hands the pagemap to [`drm_pagemap_shrinker_add`], which either parks it, still allocated
//!    and with a zero refcount, on its cache's shrinker list (so that a later lookup can revive it
//!    with [`drm_pagemap_reinit`]) or destroys it;
//! 3. pushes the hold on a global lock-free list and schedules one global work item, which drops
//!    the device and module references of every hold on the list and frees the holds.
//!
//! The release is deferred because `drm_pagemap_put` can be called from any context: from the
//! mm's page-free path (`folio_free` of the last device page that referenced the pagemap through
//! its zone-device data), possibly atomic, from reclaim, from the provider's own code. The final
//! `drm_dev_put` runs the driver's release, which sleeps, and the final `module_put` lets the
//! provider's module be unloaded, which must not happen while the caller may still be running
//! the provider's code. The work item runs in process context with neither of those concerns.
//!
//! The work item itself is this module's code: module exit (`gs_pagemap_module_exit`, upstream's
//! `drm_pagemap_exit`) flushes it, so that it is never unloaded with the work pending; if the list
//! is still not empty afterwards (a release raced with module exit, which cannot happen while
//! any provider module, which links against this one, is loaded), it warns and disables the work.
//!
//! # State and locking
//!
//! - `dpagemap->ref`: the atomic refcount. [`drm_pagemap_reinit`] resets it to one; it is only
//!   called on a pagemap nobody else references (a new one, or one whose refcount reached zero and
//!   that the cache lookup has just taken off the shrinker list).
//! - `dpagemap->dev_hold`: written by [`drm_pagemap_reinit`] and by the release, both of which own
//!   the pagemap exclusively at that point (refcount zero, or one held by the caller that is
//!   initializing it), so no lock is needed.
//! - The unhold list, [`UNHOLD`]: a lock-free singly linked stack (upstream's `llist`), pushed by
//!   any number of releases with `cmpxchg`, emptied at once with `xchg` by the single work item.
//!   Because the consumer only ever takes the whole list, there is no ABA problem.
//! - The work item: a static `work_struct` in `abi_helpers.c` (a `DECLARE_WORK`, like upstream's,
//!   because that static initializer, lockdep map included, is C's), scheduled with
//!   `schedule_work`, which is safe in any context and a no-op while the item is already pending.
//!
//! The hold's references are dropped in [`DevHold`]'s `Drop`, so a hold must only ever be dropped
//! in process context: by the work item, and nowhere else.

// The `#[no_mangle] pub extern "C"` functions are the C ABI: the linker sees them, whatever
// their Rust visibility, so `unreachable_pub` does not apply to them.
#![allow(unreachable_pub)]

use core::ptr;

use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::bindings as k;
use kernel::error::{code, Error};
use kernel::ffi::c_int;
use kernel::sync::atomic::{Atomic, Full, Relaxed};
use kernel::sync::Refcount;

use crate::bindings;
use crate::pagemap_util::drm_pagemap_shrinker_add;

/// Checks at compile time that each definition has exactly the prototype that bindgen generated
/// from upstream's header (`bindings::decl`): both function items must coerce to one function
/// pointer type. Used by `pagemap_util` too.
macro_rules! same_prototype {
    ($($name:ident),* $(,)?) => {
        $(const _: () = {
            let _ = [$name, $crate::bindings::decl::$name];
        };)*
    };
}
pub(crate) use same_prototype;

same_prototype!(
    drm_pagemap_init,
    drm_pagemap_reinit,
    drm_pagemap_put,
    drm_pagemap_create,
    drm_pagemap_destroy,
);

/// The kernel's view of a `struct kref`'s counter.
///
/// # Safety
///
/// `kref` must point to a `struct kref` that stays valid (allocated) for `'a`.
unsafe fn kref_count<'a>(kref: *mut k::kref) -> &'a Refcount {
    // SAFETY: `struct kref` is `{ refcount_t refcount; }` and `Refcount` is a transparent wrapper
    // of an `Opaque<refcount_t>`, itself transparent over the `refcount_t`: the cast keeps the
    // layout, and the caller keeps the memory valid for `'a`. `Refcount` only accesses the
    // counter atomically, as every other user of the kref does.
    unsafe { &*ptr::addr_of_mut!((*kref).refcount).cast::<Refcount>() }
}

/// A reference on a pagemap provider's `drm_device` and module: upstream's
/// `struct drm_pagemap_dev_hold`, which C only sees as the opaque `dpagemap->dev_hold` pointer.
///
/// # Invariants
///
/// - `drm` points to a `drm_device` on which this hold owns one reference (`drm_dev_get`).
/// - If `module_ref`, this hold owns one reference on `module` (`try_module_get` succeeded).
/// - `next` is only meaningful while the hold is on [`UNHOLD`], where it links to the next hold
///   (or is NULL at the end of the list).
struct DevHold {
    next: *mut DevHold,
    drm: *mut k::drm_device,
    module: *mut k::module,
    module_ref: bool,
}

impl DevHold {
    /// Allocates a hold on `drm` and its driver's module: upstream's `drm_pagemap_dev_hold()`.
    ///
    /// A failed `try_module_get` (the provider's module is being unloaded) is ignored as
    /// upstream ignores it, but, unlike upstream, the hold then also does not drop a module
    /// reference it never had.
    ///
    /// # Safety
    ///
    /// `drm` must point to a live `drm_device` whose `driver` pointer is valid.
    unsafe fn new(drm: *mut k::drm_device) -> Result<KBox<Self>, Error> {
        // Allocate first: a failure must leave no reference behind.
        let mut hold = KBox::new(
            DevHold {
                next: ptr::null_mut(),
                drm,
                module: ptr::null_mut(),
                module_ref: false,
            },
            GFP_KERNEL,
        )
        .map_err(|_| code::ENOMEM)?;
        // Nothing below can fail (and drop the hold before it owns its references).
        // SAFETY: The caller guarantees `drm` and `drm->driver` are valid; `fops` is checked
        // before it is dereferenced (a driver without file operations has no module to pin; with
        // a NULL `fops` upstream would oops, this hold just pins no module).
        let module = unsafe {
            let fops = (*(*drm).driver).fops;
            if fops.is_null() {
                ptr::null_mut()
            } else {
                (*fops).owner
            }
        };
        hold.module = module;
        // SAFETY: `module` is NULL (built-in driver: always succeeds) or the live module that
        // owns the device's driver, which cannot be freed while its device exists.
        hold.module_ref = unsafe { k::try_module_get(module) };
        // SAFETY: `drm` is a live device (caller); the reference is the hold's from now on.
        unsafe { k::drm_dev_get(drm) };
        // INVARIANT: the hold owns one device reference and, if `module_ref`, one module
        // reference; it is not on the list.
        Ok(hold)
    }
}

impl Drop for DevHold {
    /// Drops the device and module references: upstream's body of
    /// `drm_pagemap_dev_unhold_work()` for one hold. Only the work item drops holds (process
    /// context, see the module docs).
    fn drop(&mut self) {
        // SAFETY: By the type invariant `drm` is a device this hold has a reference on, so it is
        // alive; the message is a NUL-terminated literal.
        unsafe {
            bindings::gs_abi_drm_dbg(
                self.drm,
                c"Releasing reference on provider device and module.\n"
                    .as_ptr()
                    .cast(),
            )
        };
        // SAFETY: By the type invariant the hold owns one reference on `drm`, given up here.
        unsafe { k::drm_dev_put(self.drm) };
        if self.module_ref {
            // SAFETY: By the type invariant the hold owns one reference on `module`.
            unsafe { k::module_put(self.module) };
        }
    }
}

/// The holds waiting for the work item: upstream's `drm_pagemap_unhold_list`, a lock-free stack
/// of [`DevHold`]s linked through their `next` field, each owned by the list (it came from
/// `KBox::into_raw`). NULL when empty.
static UNHOLD: Atomic<*mut DevHold> = Atomic::new(ptr::null_mut());

/// Puts `hold` on [`UNHOLD`] (upstream's `llist_add`). Lock-free, callable in any context.
fn unhold_push(hold: KBox<DevHold>) {
    let node = KBox::into_raw(hold);
    let mut head = UNHOLD.load(Relaxed);
    loop {
        // SAFETY: `node` came from `KBox::into_raw` and is not yet published, so this is its only
        // user.
        unsafe { (*node).next = head };
        // `Full` publishes the `next` store with the node, as `llist_add`'s `try_cmpxchg` does.
        match UNHOLD.cmpxchg(head, node, Full) {
            Ok(_) => break,
            Err(current) => head = current,
        }
    }
}

/// The work item's function: upstream's `drm_pagemap_dev_unhold_work()`. Takes every hold off
/// [`UNHOLD`] at once and drops them, which drops their device and module references.
///
/// This module's code stays loaded while it runs: module exit flushes the work item.
///
/// # Safety
///
/// Called by the workqueue for the static work item of `abi_helpers.c` (the argument is unused).
#[no_mangle]
pub unsafe extern "C" fn gs_pagemap_dev_unhold_work(_work: *mut k::work_struct) {
    let mut node = UNHOLD.xchg(ptr::null_mut(), Full);
    while !node.is_null() {
        // SAFETY: Every node on the list came from `KBox::into_raw` in `unhold_push` and is owned
        // by the list; `xchg` took the whole list, so these nodes are now ours alone.
        let hold = unsafe { KBox::from_raw(node) };
        node = hold.next;
        // Drops the references (process context: a work item) and frees the hold.
        drop(hold);
    }
}

/// Module exit: upstream's `drm_pagemap_exit()`. Waits for the work item; if releases are still
/// queued afterwards, warns and disables the work item, so that it cannot run once this module's
/// code is gone.
///
/// # Safety
///
/// Called once, by the module's exit function in `abi_helpers.c`.
#[no_mangle]
pub unsafe extern "C" fn gs_pagemap_module_exit() {
    // SAFETY: The static work item is initialized statically (DECLARE_WORK).
    unsafe { bindings::gs_abi_pagemap_work_flush() };
    // SAFETY: `WARN_ON` has no preconditions. (`kernel::warn_on!` needs the kernel tree's
    // `OBJTREE` at compile time, which an out-of-tree build does not have.)
    if unsafe { k::WARN_ON(!UNHOLD.load(Relaxed).is_null()) } {
        // SAFETY: As above.
        unsafe { bindings::gs_abi_pagemap_work_disable_sync() };
    }
}

/// The kref release function of `dpagemap->ref`: upstream's `drm_pagemap_release()`.
///
/// The provider is alive here: the hold still pins its device and module, and the caller is
/// either the provider's page-free path (which holds a reference on the `dev_pagemap`) or a
/// direct caller of [`drm_pagemap_put`], which keeps this module loaded too.
///
/// # Safety
///
/// `dpagemap` must point to a `drm_pagemap` whose refcount has just dropped to zero; the caller
/// gives up its last use of it (after [`drm_pagemap_shrinker_add`] it may be freed).
unsafe fn drm_pagemap_release(dpagemap: *mut bindings::drm_pagemap) {
    // SAFETY: The refcount is zero, so the caller owns the pagemap exclusively.
    let hold = unsafe { core::mem::replace(&mut (*dpagemap).dev_hold, ptr::null_mut()) };
    // SAFETY: A pagemap whose refcount dropped to zero is handed to the shrinker (or destroyed),
    // as upstream does; `dpagemap` is not touched afterwards.
    unsafe { drm_pagemap_shrinker_add(dpagemap) };
    // A NULL hold (a pagemap whose `drm_pagemap_init`/`_reinit` failed, but that was put anyway)
    // would oops upstream; there is just nothing to release.
    if !hold.is_null() {
        // SAFETY: Non-NULL `dev_hold` pointers are only ever set by `drm_pagemap_reinit`, from
        // `KBox::into_raw` of a `DevHold`, and cleared above, so this is the only owner.
        unhold_push(unsafe { KBox::from_raw(hold.cast::<DevHold>()) });
        // SAFETY: The static work item is initialized statically (DECLARE_WORK); scheduling it
        // is allowed in any context.
        unsafe { bindings::gs_abi_pagemap_work_schedule() };
    }
}

/// Reinitializes a pagemap whose refcount has dropped to zero (a cached, released pagemap): a new
/// dev hold on its device and module, and a refcount of one. Also the tail of
/// [`drm_pagemap_init`].
///
/// Returns 0 or `-ENOMEM`. On failure `dpagemap->dev_hold` is NULL (upstream leaves an error
/// pointer there; nothing reads it) and the refcount is untouched. A NULL `dpagemap` or a
/// pagemap without a `drm` device (upstream oopses) gets `-EINVAL`. Like upstream, calling it on
/// a pagemap that still has a hold leaks that hold.
///
/// # Safety
///
/// `dpagemap` must be NULL or point to a `drm_pagemap` that nobody else references, with `drm`
/// NULL or pointing to a live `drm_device`.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_reinit(dpagemap: *mut bindings::drm_pagemap) -> c_int {
    if dpagemap.is_null() {
        return code::EINVAL.to_errno();
    }
    // SAFETY: `dpagemap` is valid and exclusively ours (caller).
    let drm = unsafe { (*dpagemap).drm };
    // SAFETY: `drm` is NULL or a live device (caller); its `driver` is read only if non-NULL.
    if drm.is_null() || unsafe { (*drm).driver.is_null() } {
        return code::EINVAL.to_errno();
    }
    // SAFETY: `drm` is a live device with a driver (checked above, caller).
    let hold = match unsafe { DevHold::new(drm) } {
        Ok(hold) => hold,
        Err(e) => {
            // SAFETY: `dpagemap` is valid and exclusively ours.
            unsafe { (*dpagemap).dev_hold = ptr::null_mut() };
            return e.to_errno();
        }
    };
    // SAFETY: `dpagemap` is valid and exclusively ours; the hold is handed to the pagemap, whose
    // release takes it back with `KBox::from_raw`.
    unsafe {
        (*dpagemap).dev_hold = KBox::into_raw(hold).cast::<bindings::drm_pagemap_dev_hold>();
        kref_count(ptr::addr_of_mut!((*dpagemap).ref_)).set(1);
    }
    0
}

/// Initializes a pre-allocated pagemap with its `dev_pagemap`, device and ops, with one
/// reference: upstream's `drm_pagemap_init()`. Afterwards [`drm_pagemap_put`] releases it.
///
/// Sets `ref` to one, `ops`, `pagemap`, `drm`, `cache = NULL`, an empty `shrink_link`, then
/// [`drm_pagemap_reinit`] (the dev hold). Returns 0 or `-ENOMEM`. A NULL `dpagemap` or `drm`
/// (upstream oopses) gets `-EINVAL` with nothing written.
///
/// # Safety
///
/// `dpagemap` must be NULL or point to writable memory for a `drm_pagemap` that nobody else uses
/// yet; `drm` must be NULL or a live `drm_device`; `pagemap` and `ops` are stored as given.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_init(
    dpagemap: *mut bindings::drm_pagemap,
    pagemap: *mut k::dev_pagemap,
    drm: *mut k::drm_device,
    ops: *const bindings::drm_pagemap_ops,
) -> c_int {
    if dpagemap.is_null() || drm.is_null() {
        return code::EINVAL.to_errno();
    }
    // SAFETY: `dpagemap` points to writable memory that is exclusively ours (caller); the list
    // head is initialized in place, at its final address.
    unsafe {
        kref_count(ptr::addr_of_mut!((*dpagemap).ref_)).set(1);
        (*dpagemap).ops = ops;
        (*dpagemap).pagemap = pagemap;
        (*dpagemap).drm = drm;
        (*dpagemap).cache = ptr::null_mut();
        k::INIT_LIST_HEAD(ptr::addr_of_mut!((*dpagemap).shrink_link));
    }
    // SAFETY: `dpagemap` is initialized and still exclusively ours, `drm` is live (caller).
    unsafe { drm_pagemap_reinit(dpagemap) }
}

/// Allocates and initializes a pagemap (declared in upstream's header; upstream's definition of
/// 6.18, no longer exported in 7.2, and not exported here either): a zeroed `kmalloc` object,
/// [`drm_pagemap_init`]. Returns the pagemap with one reference, or an error pointer.
///
/// [`drm_pagemap_destroy`] frees it with `kfree()` when `ops->destroy` is NULL. Unlike upstream,
/// which leaks the allocation when `drm_pagemap_init` fails, the failure path frees it.
///
/// # Safety
///
/// As [`drm_pagemap_init`] for `drm`, `pagemap` and `ops`.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_create(
    drm: *mut k::drm_device,
    pagemap: *mut k::dev_pagemap,
    ops: *const bindings::drm_pagemap_ops,
) -> *mut bindings::drm_pagemap {
    let Ok(boxed) = KBox::<bindings::drm_pagemap>::zeroed(GFP_KERNEL) else {
        return code::ENOMEM.to_ptr();
    };
    let dpagemap = KBox::into_raw(boxed);
    // SAFETY: `dpagemap` is a fresh, zeroed, exclusively owned allocation; `drm`, `pagemap` and
    // `ops` satisfy `drm_pagemap_init`'s contract (caller).
    let err = unsafe { drm_pagemap_init(dpagemap, pagemap, drm, ops) };
    if err != 0 {
        // SAFETY: `dpagemap` came from `KBox::into_raw` above and nothing else references it (a
        // failed init takes no hold).
        drop(unsafe { KBox::from_raw(dpagemap) });
        return Error::from_errno(err).to_ptr();
    }
    dpagemap
}

/// Destroys a pagemap whose refcount is zero: `ops->destroy(dpagemap, is_atomic_or_reclaim)`, or
/// `kfree(dpagemap)` when the ops have no `destroy` (a pagemap from [`drm_pagemap_create`], a
/// `kmalloc` object). Upstream's `drm_pagemap_destroy()`, called by the cache and shrinker.
///
/// A NULL `dpagemap` or NULL `ops` (upstream oopses) does nothing: the memory is leaked rather
/// than freed with a guessed allocator.
///
/// # Safety
///
/// `dpagemap` must be NULL or a pagemap nobody references any more; the caller gives it up.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_destroy(
    dpagemap: *mut bindings::drm_pagemap,
    is_atomic_or_reclaim: bool,
) {
    if dpagemap.is_null() {
        return;
    }
    // SAFETY: `dpagemap` is a valid pagemap (caller).
    let ops = unsafe { (*dpagemap).ops };
    if ops.is_null() {
        return;
    }
    // SAFETY: `ops` is the pagemap's ops table, valid while the pagemap exists.
    match unsafe { (*ops).destroy } {
        // SAFETY: The driver's destroy callback, called as upstream calls it; the pagemap is
        // handed over to it.
        Some(destroy) => unsafe { destroy(dpagemap, is_atomic_or_reclaim) },
        // SAFETY: Without a destroy callback the pagemap is a `kmalloc` object (upstream's
        // contract; `KBox` allocations from `drm_pagemap_create` are `kmalloc` objects too).
        None => unsafe { k::kfree(dpagemap.cast::<core::ffi::c_void>().cast_const()) },
    }
}

/// Drops a reference on a pagemap: upstream's `drm_pagemap_put()`. When it was the last one, the
/// release runs (see the module docs). A NULL `dpagemap` does nothing, as upstream.
///
/// Under `CONFIG_PROVE_LOCKING` it first tells lockdep that the shrinker's spinlock may be taken
/// ([`drm_pagemap_shrinker_might_lock`]), so that lock-order problems of the release show up on
/// every put, not only on the last one.
///
/// # Safety
///
/// `dpagemap` must be NULL or a pagemap on which the caller owns a reference, given up here.
///
/// [`drm_pagemap_shrinker_might_lock`]: crate::pagemap_util::drm_pagemap_shrinker_might_lock
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_put(dpagemap: *mut bindings::drm_pagemap) {
    if dpagemap.is_null() {
        return;
    }
    #[cfg(CONFIG_PROVE_LOCKING)]
    // SAFETY: The caller's reference keeps `dpagemap` alive.
    unsafe {
        crate::pagemap_util::drm_pagemap_shrinker_might_lock(dpagemap)
    };
    // SAFETY: The caller's reference keeps `dpagemap` alive until it is dropped here.
    let last = unsafe { kref_count(ptr::addr_of_mut!((*dpagemap).ref_)) }.dec_and_test();
    if last {
        // SAFETY: The refcount just dropped to zero: nobody else references the pagemap.
        unsafe { drm_pagemap_release(dpagemap) };
    }
}
