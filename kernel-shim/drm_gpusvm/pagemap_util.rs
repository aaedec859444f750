// SPDX-License-Identifier: GPL-2.0

//! Upstream's `drivers/gpu/drm/drm_pagemap_util.c`: the pagemap cache, the pagemap shrinker and
//! the interconnect owner list.
//!
//! # The pagemap cache and shrinker
//!
//! Creating a pagemap is expensive for a driver (Xe requests a physical address range and
//! `memremap_pages()` the whole VRAM region, which allocates and initializes a `struct page` for
//! every page), so a driver that creates its pagemaps on demand keeps an unused one around
//! instead of destroying it at once. A *cache* ([`Cache`], upstream's opaque
//! `struct drm_pagemap_cache`, one per VRAM region in Xe) holds at most one pagemap, which is
//! either
//!
//! - *active*: refcount above zero, in use; a lookup takes one more reference; or
//! - *inactive*: its refcount dropped to zero and its release put it on the *shrinker*'s list
//!   ([`Shrinker`], upstream's opaque `struct drm_pagemap_shrinker`, one per drm device) instead of
//!   destroying it. A lookup takes it off the list and revives it with
//!   [`drm_pagemap_reinit`]; under memory pressure the shrinker destroys the pagemaps on its list.
//!
//! The pagemap's release ([`drm_pagemap_shrinker_add`]) and a lookup race on the way from active to
//! inactive: after the refcount reaches zero and before the pagemap is on the shrinker list, a
//! lookup can neither take a reference nor take it off the list. The cache's `queued` completion
//! closes that window: [`drm_pagemap_cache_set_pagemap`] resets it when a pagemap enters the cache,
//! [`drm_pagemap_shrinker_add`] completes it once the pagemap is on the list, and a lookup that
//! finds a zero refcount waits for it (interruptibly) before it tries to cancel the shrinking. The
//! cancel itself can still fail, when the shrinker took the pagemap off its list first and is
//! destroying it: then the lookup forgets it and reports an empty cache.
//!
//! A lookup that finds no usable pagemap makes the caller create one and insert it with
//! [`drm_pagemap_cache_set_pagemap`]; the cache's lookup mutex, held by the caller across
//! [`drm_pagemap_get_from_cache`] and the insertion (see upstream's "Cache lookup" DOC), keeps
//! concurrent lookups from creating several.
//!
//! Both objects are device-managed: [`drm_pagemap_shrinker_create_devm`] and
//! [`drm_pagemap_cache_create_devm`] register a devres action that frees them when the device
//! unbinds (the cache's first, as devres runs in reverse order). Freeing a cache destroys its
//! pagemap if it is inactive; an active one is destroyed by its last put, directly, because once
//! the drm device is unplugged [`drm_pagemap_shrinker_add`] no longer uses the cache
//! (`drm_dev_enter` fails).
//!
//! # State and locking
//!
//! - `Cache::lookup_mutex`: serializes lookups with the insertion that follows a failed one. A C
//!   `struct mutex` driven through bindings rather than a [`kernel::sync::Mutex`], because C
//!   locks it (interruptibly, which the Rust mutex does not offer) and unlocks it in two separate
//!   calls, so no guard can span the critical section.
//! - `Cache::lock` (a [`kernel::sync::SpinLock`]): protects its data, the non-refcounted pointer
//!   to the cached pagemap ([`CacheSlot`]), and orders `queued`'s reset with it. Taken inside
//!   `lookup_mutex`, and outside the shrinker's lock (cache free, lookup).
//! - `Shrinker::lock` (a spinlock): protects the shrinker's list of inactive pagemaps (linked
//!   through `dpagemap->shrink_link`, which is empty while the pagemap is not on it) and the
//!   updates of its length, `num_dpagemaps`, which the shrinker's `count_objects` reads locklessly.
//! - `dpagemap->cache`: written under the cache's lock when the pagemap is inserted, immutable
//!   afterwards.
//! - The shrinker's scan drops its lock around each destroy (which may sleep or queue work).
//!
//! # Owners and peers
//!
//! Devices that have a fast interconnect to each other share a *pagemap owner* (the
//! `dev_pagemap` owner that HMM compares to decide whether device-private pages may be mapped
//! directly). A driver-wide owner list (`struct drm_pagemap_owner_list`, defined and
//! initialized by the driver with `DRM_PAGEMAP_OWNER_LIST_DEFINE`, so its mutex is a C mutex,
//! used here through [`kernel::sync::Mutex::from_raw`]) holds every participating peer, grouped
//! so that peers with the same owner are adjacent. [`drm_pagemap_acquire_owner`] walks the groups
//! and joins the first one all of whose members have an interconnect with the new peer (asking
//! the driver's `has_interconnect` callback for each member), inserting the peer at the end of
//! that group and taking a reference on the group's owner; if no group qualifies it allocates a
//! new owner ([`Owner`], upstream's opaque `struct drm_pagemap_owner`: just a refcount) and
//! appends the peer to the list. [`drm_pagemap_release_owner`] unlinks the peer and drops its
//! owner reference, freeing the owner with its last peer. The list mutex protects the list, each
//! peer's `owner` and every owner's refcount changes.

// The `#[no_mangle] pub extern "C"` functions are the C ABI: the linker sees them, whatever
// their Rust visibility, so `unreachable_pub` does not apply to them.
#![allow(unreachable_pub)]

use core::ptr;

use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::bindings as k;
use kernel::error::{code, Error};
use kernel::ffi::{c_int, c_ulong, c_void};
use kernel::prelude::{pin_data, pin_init, pinned_drop, Pin};
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::{new_spinlock, Mutex, Refcount, SpinLock};
use kernel::types::Opaque;
use kernel::{container_of, init::InPlaceInit};

use crate::bindings;
use crate::pagemap_ref::{drm_pagemap_destroy, drm_pagemap_reinit, same_prototype};

same_prototype!(
    drm_pagemap_cache_create_devm,
    drm_pagemap_cache_lock_lookup,
    drm_pagemap_cache_unlock_lookup,
    drm_pagemap_get_from_cache,
    drm_pagemap_cache_set_pagemap,
    drm_pagemap_get_from_cache_if_active,
    drm_pagemap_shrinker_create_devm,
    drm_pagemap_shrinker_add,
    drm_pagemap_release_owner,
    drm_pagemap_acquire_owner,
);
#[cfg(CONFIG_PROVE_LOCKING)]
same_prototype!(drm_pagemap_shrinker_might_lock);

/// `SHRINK_STOP` of `include/linux/shrinker.h`, `~0UL`: the scan could not make progress.
const SHRINK_STOP: c_ulong = !0;
/// `SHRINK_EMPTY` of `include/linux/shrinker.h`, `~0UL - 1`: nothing to shrink.
const SHRINK_EMPTY: c_ulong = !0 - 1;

/// The data of [`Cache::lock`]: upstream's `cache->dpagemap`, the non-refcounted pointer to the
/// cached pagemap (NULL when the cache is empty).
struct CacheSlot {
    dpagemap: *mut bindings::drm_pagemap,
}

// SAFETY: The pointer is only dereferenced under the rules of the cache (module docs), from
// whichever task holds the cache's lock; it carries no thread affinity.
unsafe impl Send for CacheSlot {}

/// A pagemap cache: upstream's `struct drm_pagemap_cache`, which C only sees as an opaque
/// pointer.
///
/// # Invariants
///
/// - `lookup_mutex` and `queued` are initialized (in place, at their final address).
/// - `shrinker` points to the [`Shrinker`] the cache was created with, which outlives the cache
///   (both are device-managed, the shrinker registered first, so freed last).
/// - The slot's pagemap, if any, has `cache` pointing to this cache; while its refcount is zero it
///   is on the shrinker's list or being destroyed.
#[pin_data(PinnedDrop)]
struct Cache {
    /// Upstream's `lookup_mutex`.
    #[pin]
    lookup_mutex: Opaque<k::mutex>,
    /// Upstream's `lock` and the `dpagemap` pointer it protects.
    #[pin]
    lock: SpinLock<CacheSlot>,
    /// Upstream's `shrinker`. Immutable.
    shrinker: *mut Shrinker,
    /// Upstream's `queued`: completed when the cached inactive pagemap is on the shrinker's list.
    #[pin]
    queued: Opaque<k::completion>,
}

#[pinned_drop]
impl PinnedDrop for Cache {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the mutex is initialized; it is dropped with the cache,
        // when nobody can hold it any more (device-managed free).
        unsafe { k::mutex_destroy(self.lookup_mutex.get()) };
    }
}

impl Cache {
    /// The cache behind C's opaque pointer.
    ///
    /// # Safety
    ///
    /// `cache` must come from [`drm_pagemap_cache_create_devm`] and not be freed yet, for `'a`.
    unsafe fn from_c<'a>(cache: *mut bindings::drm_pagemap_cache) -> &'a Cache {
        // SAFETY: Such a pointer is a `KBox<Cache>` turned into a raw pointer (caller).
        unsafe { &*cache.cast::<Cache>() }
    }

    /// The shrinker of the cache.
    fn shrinker(&self) -> &Shrinker {
        // SAFETY: By the type invariant the shrinker outlives the cache.
        unsafe { &*self.shrinker }
    }

    /// Upstream's `lockdep_assert_held(&cache->lookup_mutex)`.
    fn assert_lookup_held(&self) {
        // SAFETY: By the type invariant the mutex is initialized.
        unsafe { k::mutex_assert_is_held(self.lookup_mutex.get()) };
    }
}

/// A pagemap shrinker: upstream's `struct drm_pagemap_shrinker`, which C only sees as an opaque
/// pointer.
///
/// # Invariants
///
/// - `drm` is the device the shrinker was created for; it outlives the shrinker (device-managed).
/// - `dpagemaps` is an initialized list head (at its final address) of the inactive pagemaps,
///   linked through their `shrink_link`; it is only accessed with `lock` held.
/// - `num_dpagemaps` is the length of that list (changed with `lock` held).
/// - `shrink` is the registered `struct shrinker` whose `private_data` points here (or NULL
///   before it is set up).
#[pin_data]
struct Shrinker {
    /// Upstream's `drm`.
    drm: *mut k::drm_device,
    /// Upstream's `lock`. A `SpinLock<()>`, whose layout is exactly a `spinlock_t`
    /// ([`kernel::sync::lock::Lock::from_raw`]), for `might_lock()`.
    #[pin]
    lock: SpinLock<()>,
    /// Upstream's `dpagemaps`, protected by `lock`.
    #[pin]
    dpagemaps: Opaque<k::list_head>,
    /// Upstream's `num_dpagemaps`.
    num_dpagemaps: Atomic<i32>,
    /// Upstream's `shrink`.
    shrink: *mut k::shrinker,
}

impl Shrinker {
    /// The shrinker's lock as the C `spinlock_t` it wraps.
    #[cfg(CONFIG_PROVE_LOCKING)]
    fn raw_lock(&self) -> *mut k::spinlock {
        // `Lock<(), B>` has exactly the layout of `B::State` (the contract of `Lock::from_raw`).
        ptr::from_ref(&self.lock).cast_mut().cast::<k::spinlock>()
    }
}

/// A pagemap owner: upstream's `struct drm_pagemap_owner`, which C only sees as an opaque
/// pointer (and uses as the `dev_pagemap` owner token).
///
/// # Invariants
///
/// `refs` counts the peers whose `owner` points here; at zero the owner is freed.
struct Owner {
    refs: Refcount,
}

/// Takes `dpagemap` off its shrinker's list if it is on it: upstream's
/// `drm_pagemap_shrinker_cancel()`. Returns whether it was (and the caller now owns it).
///
/// # Safety
///
/// `dpagemap` must be a valid pagemap with a non-NULL `cache` from
/// [`drm_pagemap_cache_create_devm`] that is not freed.
unsafe fn shrinker_cancel(dpagemap: *mut bindings::drm_pagemap) -> bool {
    // SAFETY: `dpagemap` and its cache are valid (caller).
    let cache = unsafe { Cache::from_c((*dpagemap).cache) };
    let shrinker = cache.shrinker();
    let _guard = shrinker.lock.lock();
    // SAFETY: `dpagemap` is valid; its `shrink_link` is an initialized list node (or head) that
    // the shrinker's lock, held, protects.
    unsafe {
        let link = ptr::addr_of_mut!((*dpagemap).shrink_link);
        if bindings::gs_abi_list_empty(link) {
            return false;
        }
        bindings::gs_abi_list_del_init(link);
    }
    shrinker.num_dpagemaps.add(-1, Relaxed);
    true
}

/// The devres action of a cache: upstream's `drm_pagemap_cache_fini()`. Empties the cache,
/// destroys its pagemap if it is inactive (and still on the shrinker's list), frees the cache.
///
/// # Safety
///
/// `arg` is the cache from [`drm_pagemap_cache_create_devm`]; devres calls this once.
unsafe extern "C" fn cache_fini(arg: *mut c_void) {
    let raw = arg.cast::<Cache>();
    // SAFETY: `arg` is a live cache (devres calls this once, before freeing nothing else of it).
    let cache = unsafe { &*raw };
    // SAFETY: The shrinker outlives the cache, so its device is valid.
    unsafe {
        bindings::gs_abi_drm_dbg(
            cache.shrinker().drm,
            c"Destroying dpagemap cache.\n".as_ptr().cast(),
        )
    };
    let dpagemap = {
        let mut slot = cache.lock.lock();
        let dpagemap = core::mem::replace(&mut slot.dpagemap, ptr::null_mut());
        // SAFETY: A cached pagemap is valid and its `cache` is this cache (type invariant).
        if !dpagemap.is_null() && unsafe { shrinker_cancel(dpagemap) } {
            dpagemap
        } else {
            // Empty, active (its last put destroys it) or being destroyed by the shrinker.
            ptr::null_mut()
        }
    };
    if !dpagemap.is_null() {
        // SAFETY: The pagemap was inactive and is now off the shrinker's list: nobody else
        // references it.
        unsafe { drm_pagemap_destroy(dpagemap, false) };
    }
    // SAFETY: `raw` came from `KBox::into_raw` in `drm_pagemap_cache_create_devm`; this is its
    // last use (the `cache` reference is not used any more). Dropping destroys the mutex.
    drop(unsafe { KBox::from_raw(raw) });
}

/// Creates a device-managed pagemap cache for `shrinker`'s device: upstream's
/// `drm_pagemap_cache_create_devm()`. The cache is freed, and an inactive pagemap in it
/// destroyed, when the device unbinds.
///
/// Returns the cache, or an error pointer: `-ENOMEM`, or the error of `devm_add_action_or_reset`
/// (the cache is then already freed). A NULL or error-pointer `shrinker` (upstream oopses) gets
/// `-EINVAL`.
///
/// # Safety
///
/// `shrinker` must be NULL, an error pointer or a shrinker from
/// [`drm_pagemap_shrinker_create_devm`] whose device is bound.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_cache_create_devm(
    shrinker: *mut bindings::drm_pagemap_shrinker,
) -> *mut bindings::drm_pagemap_cache {
    // SAFETY: `IS_ERR` only looks at the pointer value.
    if shrinker.is_null() || unsafe { k::IS_ERR(shrinker.cast_const().cast::<c_void>()) } {
        return code::EINVAL.to_ptr();
    }
    let shrinker = shrinker.cast::<Shrinker>();
    let init = pin_init!(Cache {
        lookup_mutex <- Opaque::ffi_init(|slot: *mut k::mutex| {
            // SAFETY: `slot` is the mutex's final, writable address; the name and the lock class
            // are static. One class for every cache, as upstream's `mutex_init` call site.
            unsafe {
                k::__mutex_init(
                    slot,
                    c"&cache->lookup_mutex".as_ptr().cast(),
                    kernel::static_lock_class!().as_ptr(),
                )
            }
        }),
        lock <- new_spinlock!(CacheSlot { dpagemap: ptr::null_mut() }, "&cache->lock"),
        shrinker,
        queued <- Opaque::ffi_init(|slot: *mut k::completion| {
            // SAFETY: `slot` is the completion's final, writable address.
            unsafe { k::init_completion(slot) }
        }),
    });
    let Ok(cache) = KBox::pin_init(init, GFP_KERNEL) else {
        return code::ENOMEM.to_ptr();
    };
    // SAFETY: The cache stays at its address until `cache_fini` turns the pointer back into a
    // box; it is never moved out of.
    let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(cache) });
    // SAFETY: `shrinker` is a live shrinker (caller), whose device is bound; on failure
    // `devm_add_action_or_reset` runs `cache_fini`, which frees the cache.
    let err = unsafe {
        k::devm_add_action_or_reset(
            (*(*shrinker).drm).dev,
            Some(cache_fini),
            raw.cast::<c_void>(),
        )
    };
    if err != 0 {
        return Error::from_errno(err).to_ptr();
    }
    raw.cast::<bindings::drm_pagemap_cache>()
}

/// Locks a cache for a lookup (and the insertion that may follow): upstream's
/// `drm_pagemap_cache_lock_lookup()`, `mutex_lock_interruptible`. Returns 0, or `-EINTR` when a
/// signal interrupted the wait. A NULL `cache` (upstream oopses) gets `-EINVAL`.
///
/// # Safety
///
/// `cache` must be NULL or a live cache from [`drm_pagemap_cache_create_devm`].
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_cache_lock_lookup(
    cache: *mut bindings::drm_pagemap_cache,
) -> c_int {
    if cache.is_null() {
        return code::EINVAL.to_errno();
    }
    // SAFETY: A live cache (caller); its mutex is initialized (type invariant).
    unsafe { bindings::gs_abi_mutex_lock_interruptible(Cache::from_c(cache).lookup_mutex.get()) }
}

/// Unlocks a cache after a lookup: upstream's `drm_pagemap_cache_unlock_lookup()`. A NULL `cache`
/// (upstream oopses) does nothing.
///
/// # Safety
///
/// `cache` must be NULL or a live cache whose lookup mutex the caller holds.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_cache_unlock_lookup(cache: *mut bindings::drm_pagemap_cache) {
    if cache.is_null() {
        return;
    }
    // SAFETY: A live cache whose mutex the caller holds (caller).
    unsafe { k::mutex_unlock(Cache::from_c(cache).lookup_mutex.get()) };
}

/// Looks up the cache's pagemap, with the lookup mutex held: upstream's
/// `drm_pagemap_get_from_cache()`.
///
/// - An active pagemap: returned with a new reference.
/// - None: NULL (the caller creates one and inserts it with [`drm_pagemap_cache_set_pagemap`]).
/// - An inactive one: waits (interruptibly; `ERR_PTR(-ERESTARTSYS)` on a signal) until its
///   release has put it on the shrinker's list, then takes it off the list, re-initializes it
///   ([`drm_pagemap_reinit`]) and re-inserts it, and returns it with its new single reference. If
///   the re-initialization fails the pagemap is destroyed and the error returned. If the shrinker
///   was faster and is destroying it, the cache forgets it and NULL is returned.
///
/// A NULL `cache` (upstream oopses) gets `ERR_PTR(-EINVAL)`.
///
/// # Safety
///
/// `cache` must be NULL or a live cache whose lookup mutex the caller holds.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_get_from_cache(
    cache: *mut bindings::drm_pagemap_cache,
) -> *mut bindings::drm_pagemap {
    if cache.is_null() {
        return code::EINVAL.to_ptr();
    }
    // SAFETY: A live cache (caller).
    let c = unsafe { Cache::from_c(cache) };
    c.assert_lookup_held();
    loop {
        let mut slot = c.lock.lock();
        let dpagemap = slot.dpagemap;
        // SAFETY: The cached pointer is NULL or a pagemap that stays allocated while it is in
        // the cache (a destroy first clears it, under this lock).
        if !unsafe { bindings::gs_abi_drm_pagemap_get_unless_zero(dpagemap) }.is_null() {
            return dpagemap;
        }
        if dpagemap.is_null() {
            return ptr::null_mut();
        }
        // Inactive: is it on the shrinker's list yet?
        // SAFETY: `queued` is initialized (type invariant).
        if !unsafe { k::try_wait_for_completion(c.queued.get()) } {
            drop(slot);
            // SAFETY: As above; the wait happens without the spinlock.
            let err = unsafe { k::wait_for_completion_interruptible(c.queued.get()) };
            if err != 0 {
                return Error::from_errno(err).to_ptr();
            }
            continue;
        }
        // SAFETY: The cached pagemap is valid and its `cache` is `c` (type invariant).
        let cancelled = unsafe { shrinker_cancel(dpagemap) };
        slot.dpagemap = ptr::null_mut();
        drop(slot);
        if !cancelled {
            // The shrinker has it and destroys it.
            return ptr::null_mut();
        }
        // SAFETY: Off the list with a zero refcount: the pagemap is ours alone.
        let err = unsafe { drm_pagemap_reinit(dpagemap) };
        if err != 0 {
            // SAFETY: Still ours alone, and unreferenced.
            unsafe { drm_pagemap_destroy(dpagemap, false) };
            return Error::from_errno(err).to_ptr();
        }
        // SAFETY: The lookup mutex is held (caller) and the cache is empty.
        unsafe { drm_pagemap_cache_set_pagemap(cache, dpagemap) };
        return dpagemap;
    }
}

/// Inserts a pagemap into a cache, after [`drm_pagemap_get_from_cache`] returned NULL, with the
/// lookup mutex still held: upstream's `drm_pagemap_cache_set_pagemap()`. Sets
/// `dpagemap->cache`, stores the (non-refcounted) pointer, resets `queued`; warns
/// (`drm_WARN_ON`) if the cache was not empty. A NULL `cache` or `dpagemap` (upstream oopses)
/// does nothing.
///
/// # Safety
///
/// `cache` must be NULL or a live cache whose lookup mutex the caller holds; `dpagemap` NULL or
/// a pagemap on which the caller holds a reference.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_cache_set_pagemap(
    cache: *mut bindings::drm_pagemap_cache,
    dpagemap: *mut bindings::drm_pagemap,
) {
    if cache.is_null() || dpagemap.is_null() {
        return;
    }
    // SAFETY: A live cache (caller).
    let c = unsafe { Cache::from_c(cache) };
    // SAFETY: A referenced pagemap (caller).
    let drm = unsafe { (*dpagemap).drm };
    c.assert_lookup_held();
    let old = {
        let mut slot = c.lock.lock();
        // SAFETY: A referenced pagemap; its `cache` is written under the cache's lock.
        unsafe { (*dpagemap).cache = cache };
        let old = core::mem::replace(&mut slot.dpagemap, dpagemap);
        // SAFETY: `queued` is initialized (type invariant); reset under the lock, as upstream.
        unsafe { bindings::gs_abi_reinit_completion(c.queued.get()) };
        old
    };
    // SAFETY: `drm` is the pagemap's device, alive while the pagemap is; the text is static.
    unsafe {
        bindings::gs_abi_drm_warn(
            drm,
            !old.is_null(),
            c"drm_WARN_ON(!!dpagemap)".as_ptr().cast(),
        )
    };
}

/// Returns the cache's pagemap with a new reference if it is active, NULL otherwise (no waiting,
/// no revival): upstream's `drm_pagemap_get_from_cache_if_active()`. A NULL `cache` (upstream
/// oopses) gets NULL.
///
/// # Safety
///
/// `cache` must be NULL or a live cache from [`drm_pagemap_cache_create_devm`].
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_get_from_cache_if_active(
    cache: *mut bindings::drm_pagemap_cache,
) -> *mut bindings::drm_pagemap {
    if cache.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: A live cache (caller).
    let c = unsafe { Cache::from_c(cache) };
    let slot = c.lock.lock();
    // SAFETY: The cached pointer is NULL or an allocated pagemap (see `drm_pagemap_get_from_cache`).
    unsafe { bindings::gs_abi_drm_pagemap_get_unless_zero(slot.dpagemap) }
}

/// Lockdep annotation for the paths that may end in [`drm_pagemap_shrinker_add`]: upstream's
/// `drm_pagemap_shrinker_might_lock()` (`CONFIG_PROVE_LOCKING` only; the header has an empty
/// inline otherwise). If the device is still there and the pagemap is cached, tells lockdep that
/// the shrinker's lock may be taken here. A NULL `dpagemap` (upstream oopses) does nothing.
///
/// # Safety
///
/// `dpagemap` must be NULL or a pagemap on which the caller holds a reference.
#[cfg(CONFIG_PROVE_LOCKING)]
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_shrinker_might_lock(dpagemap: *mut bindings::drm_pagemap) {
    if dpagemap.is_null() {
        return;
    }
    let mut idx: c_int = 0;
    // SAFETY: A referenced pagemap; its device is alive (the dev hold pins it).
    if unsafe { k::drm_dev_enter((*dpagemap).drm, &mut idx) } {
        // SAFETY: A referenced pagemap.
        let cache = unsafe { (*dpagemap).cache };
        if !cache.is_null() {
            // SAFETY: While the device is entered its device-managed cache and shrinker are
            // alive; `might_lock` only annotates.
            unsafe { bindings::gs_abi_might_lock_spin(Cache::from_c(cache).shrinker().raw_lock()) };
        }
        // SAFETY: Pairs with the successful `drm_dev_enter` above.
        unsafe { k::drm_dev_exit(idx) };
    }
}

/// Called by the release of a pagemap whose refcount reached zero: upstream's
/// `drm_pagemap_shrinker_add()`. If the pagemap is cached and its device still there
/// (`drm_dev_enter`), puts it on the shrinker's list and completes the cache's `queued`;
/// otherwise destroys it (`drm_pagemap_destroy(dpagemap, true)`: the caller may be atomic or in
/// reclaim). A NULL `dpagemap` (upstream oopses) does nothing; a pagemap without a device is
/// destroyed.
///
/// # Safety
///
/// `dpagemap` must be NULL or a pagemap whose refcount is zero; the caller gives it up.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_shrinker_add(dpagemap: *mut bindings::drm_pagemap) {
    if dpagemap.is_null() {
        return;
    }
    // SAFETY: A valid pagemap, ours alone (caller).
    let drm = unsafe { (*dpagemap).drm };
    let mut idx: c_int = 0;
    // The cache and shrinker are disabled when the device is unplugged: after that, pagemaps are
    // destroyed directly.
    // SAFETY: `drm` is the pagemap's device, still pinned by its dev hold (the release detached
    // it but only queued its put).
    if drm.is_null() || !unsafe { k::drm_dev_enter(drm, &mut idx) } {
        // SAFETY: Ours alone and unreferenced.
        unsafe { drm_pagemap_destroy(dpagemap, true) };
        return;
    }
    // SAFETY: A valid pagemap.
    let cache = unsafe { (*dpagemap).cache };
    if cache.is_null() {
        // SAFETY: Pairs with the `drm_dev_enter` above.
        unsafe { k::drm_dev_exit(idx) };
        // SAFETY: Ours alone and unreferenced.
        unsafe { drm_pagemap_destroy(dpagemap, true) };
        return;
    }
    // SAFETY: The device is entered, so its device-managed cache is alive.
    let c = unsafe { Cache::from_c(cache) };
    let shrinker = c.shrinker();
    {
        let _guard = shrinker.lock.lock();
        // SAFETY: The list head and the pagemap's link are initialized; the shrinker's lock is
        // held; the link is empty (the pagemap is not on the list: it was active until now).
        unsafe {
            k::list_add_tail(
                ptr::addr_of_mut!((*dpagemap).shrink_link),
                shrinker.dpagemaps.get(),
            )
        };
        shrinker.num_dpagemaps.add(1, Relaxed);
    }
    // SAFETY: `queued` is initialized (type invariant).
    unsafe { k::complete_all(c.queued.get()) };
    // SAFETY: Pairs with the `drm_dev_enter` above.
    unsafe { k::drm_dev_exit(idx) };
}

/// The shrinker's `count_objects`: upstream's `drm_pagemap_shrinker_count()`, the number of
/// inactive pagemaps, or `SHRINK_EMPTY`.
///
/// # Safety
///
/// Called by the shrinker core for the registered shrinker of a [`Shrinker`].
unsafe extern "C" fn shrinker_count(
    shrink: *mut k::shrinker,
    _sc: *mut k::shrink_control,
) -> c_ulong {
    // SAFETY: The registered shrinker's `private_data` is its `Shrinker`, alive while registered.
    let shrinker = unsafe { &*(*shrink).private_data.cast::<Shrinker>() };
    match c_ulong::try_from(shrinker.num_dpagemaps.load(Relaxed)) {
        Ok(0) | Err(_) => SHRINK_EMPTY,
        Ok(count) => count,
    }
}

/// The shrinker's `scan_objects`: upstream's `drm_pagemap_shrinker_scan()`. Destroys inactive
/// pagemaps from the head of the list, at least one (if any) and then until `nr_to_scan` are
/// done, dropping the list lock around each destroy; clears each one from its cache. Returns the
/// number destroyed, or `SHRINK_STOP` if there was none.
///
/// Unlike upstream, which clears the cache's pointer unconditionally, the cache is only cleared
/// if it still points to the destroyed pagemap: a lookup that lost the race for it (its cancel
/// failed) may already have inserted a new pagemap, which upstream would then lose from the
/// cache.
///
/// # Safety
///
/// Called by the shrinker core for the registered shrinker of a [`Shrinker`], with a valid `sc`.
unsafe extern "C" fn shrinker_scan(
    shrink: *mut k::shrinker,
    sc: *mut k::shrink_control,
) -> c_ulong {
    // SAFETY: The registered shrinker's `private_data` is its `Shrinker`, alive while registered.
    let shrinker = unsafe { &*(*shrink).private_data.cast::<Shrinker>() };
    // SAFETY: `sc` is valid for the call (caller).
    let sc = unsafe { &mut *sc };
    sc.nr_scanned = 0;
    let mut nr_freed: c_ulong = 0;
    let head = shrinker.dpagemaps.get();
    let mut guard = shrinker.lock.lock();
    loop {
        // SAFETY: The list is initialized and the lock held.
        if unsafe { bindings::gs_abi_list_empty(head) } {
            break;
        }
        // SAFETY: A non-empty list: `next` is the `shrink_link` of a pagemap on it.
        let link = unsafe { (*head).next };
        // SAFETY: Every node on the list is the `shrink_link` of a `drm_pagemap`.
        let dpagemap = unsafe { container_of!(link, bindings::drm_pagemap, shrink_link) };
        shrinker.num_dpagemaps.add(-1, Relaxed);
        // SAFETY: `link` is on the list, whose lock is held.
        unsafe { bindings::gs_abi_list_del_init(link) };
        drop(guard);

        sc.nr_scanned = sc.nr_scanned.saturating_add(1);
        nr_freed = nr_freed.saturating_add(1);

        // SAFETY: Taken off the list with a zero refcount, the pagemap is ours alone (a lookup's
        // cancel now fails); its cache is alive while the shrinker is registered.
        let c = unsafe { Cache::from_c((*dpagemap).cache) };
        {
            let mut slot = c.lock.lock();
            if slot.dpagemap == dpagemap {
                slot.dpagemap = ptr::null_mut();
            }
        }
        // SAFETY: The pagemap's device outlives it; the text is static.
        unsafe {
            bindings::gs_abi_drm_dbg_ptr(
                (*dpagemap).drm,
                c"Shrinking dpagemap".as_ptr().cast(),
                dpagemap.cast_const().cast::<c_void>(),
            )
        };
        // SAFETY: Ours alone and unreferenced; reclaim context.
        unsafe { drm_pagemap_destroy(dpagemap, true) };
        guard = shrinker.lock.lock();
        if sc.nr_scanned >= sc.nr_to_scan {
            break;
        }
    }
    drop(guard);
    if sc.nr_scanned != 0 {
        nr_freed
    } else {
        SHRINK_STOP
    }
}

/// The devres action of a shrinker: upstream's `drm_pagemap_shrinker_fini()`. Warns if pagemaps
/// are still on its list, unregisters and frees the `struct shrinker`, frees the shrinker.
///
/// # Safety
///
/// `arg` is the shrinker from [`drm_pagemap_shrinker_create_devm`]; devres calls this once,
/// after the device's caches are gone.
unsafe extern "C" fn shrinker_fini(arg: *mut c_void) {
    let raw = arg.cast::<Shrinker>();
    // SAFETY: A live shrinker (caller).
    let shrinker = unsafe { &*raw };
    // SAFETY: The device outlives its device-managed shrinker; the texts are static.
    unsafe {
        bindings::gs_abi_drm_dbg(
            shrinker.drm,
            c"Destroying dpagemap shrinker.\n".as_ptr().cast(),
        );
        bindings::gs_abi_drm_warn(
            shrinker.drm,
            shrinker.num_dpagemaps.load(Relaxed) != 0,
            c"drm_WARN_ON(!!atomic_read(&shrinker->num_dpagemaps))"
                .as_ptr()
                .cast(),
        );
    }
    // SAFETY: `shrink` is the registered shrinker of this object (type invariant);
    // `shrinker_free` unregisters it and waits for running callbacks before freeing it.
    unsafe { k::shrinker_free(shrinker.shrink) };
    // SAFETY: `raw` came from `KBox::into_raw` in `drm_pagemap_shrinker_create_devm`; this is
    // its last use.
    drop(unsafe { KBox::from_raw(raw) });
}

/// Creates and registers a device-managed pagemap shrinker for `drm`: upstream's
/// `drm_pagemap_shrinker_create_devm()`. Its `struct shrinker` is named
/// `drm-drm_pagemap:<drm->unique>`; both are freed when the device unbinds.
///
/// Returns the shrinker, or an error pointer: `-ENOMEM`, or the error of
/// `devm_add_action_or_reset` (the shrinker is then already unregistered and freed). A NULL
/// `drm`, or one without a `dev` (upstream oopses), gets `-EINVAL`.
///
/// # Safety
///
/// `drm` must be NULL or a live drm device whose `dev` is bound.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_shrinker_create_devm(
    drm: *mut k::drm_device,
) -> *mut bindings::drm_pagemap_shrinker {
    // SAFETY: `drm` is NULL or a live device (caller).
    if drm.is_null() || unsafe { (*drm).dev.is_null() } {
        return code::EINVAL.to_ptr();
    }
    let init = pin_init!(Shrinker {
        drm,
        lock <- new_spinlock!((), "&shrinker->lock"),
        dpagemaps <- Opaque::ffi_init(|slot: *mut k::list_head| {
            // SAFETY: `slot` is the list head's final, writable address.
            unsafe { k::INIT_LIST_HEAD(slot) }
        }),
        num_dpagemaps: Atomic::new(0),
        shrink: ptr::null_mut(),
    });
    let Ok(shrinker) = KBox::pin_init(init, GFP_KERNEL) else {
        return code::ENOMEM.to_ptr();
    };
    // SAFETY: `drm` is live (caller); the format takes one string, `drm->unique` (printed as
    // "(null)" if NULL).
    let shrink =
        unsafe { k::shrinker_alloc(0, c"drm-drm_pagemap:%s".as_ptr().cast(), (*drm).unique) };
    if shrink.is_null() {
        return code::ENOMEM.to_ptr();
    }
    // SAFETY: The shrinker stays at its address until `shrinker_fini` turns the pointer back
    // into a box; it is never moved out of.
    let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(shrinker) });
    // SAFETY: `raw` is the live, not yet shared shrinker; `shrink` is a fresh, unregistered
    // `struct shrinker`, set up and then registered (after which the core may call it).
    unsafe {
        (*raw).shrink = shrink;
        (*shrink).count_objects = Some(shrinker_count);
        (*shrink).scan_objects = Some(shrinker_scan);
        (*shrink).private_data = raw.cast::<c_void>();
        k::shrinker_register(shrink);
    }
    // SAFETY: `drm->dev` is bound (caller); on failure `devm_add_action_or_reset` runs
    // `shrinker_fini`, which unregisters and frees everything.
    let err = unsafe {
        k::devm_add_action_or_reset((*drm).dev, Some(shrinker_fini), raw.cast::<c_void>())
    };
    if err != 0 {
        return Error::from_errno(err).to_ptr();
    }
    raw.cast::<bindings::drm_pagemap_shrinker>()
}

/// The owner list's C mutex (initialized by `DRM_PAGEMAP_OWNER_LIST_DEFINE`) as a kernel mutex.
///
/// # Safety
///
/// `list` must point to an initialized owner list that stays valid for `'a`.
unsafe fn owner_list_lock<'a>(list: *mut bindings::drm_pagemap_owner_list) -> &'a Mutex<()> {
    // SAFETY: The list's mutex is initialized and valid for `'a` (caller).
    unsafe { Mutex::<()>::from_raw(ptr::addr_of_mut!((*list).lock)) }
}

/// Leaves an interconnect group: upstream's `drm_pagemap_release_owner()`. Under the list's
/// mutex, unlinks `peer`, drops its owner reference (freeing the owner with its last peer) and
/// clears `peer->owner`. A peer that never joined (`peer->list` NULL) is left alone, as upstream.
///
/// `peer->list` stays set, as upstream leaves it. A NULL `peer`, or a second release of the same
/// peer (`peer->owner` already NULL: upstream unlinks the poisoned link again and oopses on the
/// NULL owner), does nothing.
///
/// # Safety
///
/// `peer` must be NULL or a valid peer whose `list`, if set, is a live owner list.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_release_owner(peer: *mut bindings::drm_pagemap_peer) {
    if peer.is_null() {
        return;
    }
    // SAFETY: A valid peer (caller).
    let list = unsafe { (*peer).list };
    if list.is_null() {
        return;
    }
    // SAFETY: A live owner list (caller).
    let _guard = unsafe { owner_list_lock(list) }.lock();
    // SAFETY: A valid peer; its `owner` is protected by the list's mutex, held.
    let owner = unsafe { (*peer).owner }.cast::<Owner>();
    if owner.is_null() {
        return;
    }
    // SAFETY: A peer with an owner is linked on the list, whose mutex is held. `owner` came from
    // `KBox::into_raw` in `drm_pagemap_acquire_owner` and the peer holds one of its references;
    // the last one frees it.
    unsafe {
        bindings::gs_abi_list_del(ptr::addr_of_mut!((*peer).link));
        if (*owner).refs.dec_and_test() {
            drop(KBox::from_raw(owner));
        }
        (*peer).owner = ptr::null_mut();
    }
}

/// Joins an interconnect group: upstream's `drm_pagemap_acquire_owner()` (see the module docs for
/// the walk). On success `peer->owner` holds a reference on the group's owner (shared, or a new
/// one), `peer->list` is `owner_list` and the peer is linked on it. Returns 0 or `-ENOMEM`.
///
/// A NULL `peer` or `owner_list` (upstream oopses) gets `-EINVAL`, as does a NULL
/// `has_interconnect` when there are peers to ask about (upstream oopses there too; with an empty
/// list it is never called, and a new owner is allocated as upstream).
///
/// # Safety
///
/// `peer` must be NULL or a valid peer that is not on a list; `owner_list` NULL or an initialized,
/// live owner list; `has_interconnect` callable on two peers under the list's mutex.
#[no_mangle]
pub unsafe extern "C" fn drm_pagemap_acquire_owner(
    peer: *mut bindings::drm_pagemap_peer,
    owner_list: *mut bindings::drm_pagemap_owner_list,
    has_interconnect: Option<
        unsafe extern "C" fn(
            *mut bindings::drm_pagemap_peer,
            *mut bindings::drm_pagemap_peer,
        ) -> bool,
    >,
) -> c_int {
    if peer.is_null() || owner_list.is_null() {
        return code::EINVAL.to_errno();
    }
    // SAFETY: A live, initialized owner list (caller).
    let _guard = unsafe { owner_list_lock(owner_list) }.lock();
    // SAFETY: A plain annotation, in a context that may sleep (a mutex is held).
    unsafe { bindings::gs_abi_might_alloc_gfp_kernel() };

    // SAFETY: A live owner list (caller).
    let head = unsafe { ptr::addr_of_mut!((*owner_list).peers) };
    // The owner of the group being examined, and whether `peer` has an interconnect with every
    // member of it seen so far.
    let mut owner: *mut bindings::drm_pagemap_owner = ptr::null_mut();
    let mut interconnect = false;
    // SAFETY: The list is initialized; the mutex, held, protects it.
    let mut pos = unsafe { (*head).next };
    while pos != head {
        // SAFETY: Every node on the list is the `link` of a registered peer.
        let cur = unsafe { container_of!(pos, bindings::drm_pagemap_peer, link) };
        // SAFETY: A registered peer; its `owner` is protected by the mutex.
        let cur_owner = unsafe { (*cur).owner };
        if cur_owner != owner {
            // The first member of the next group: the previous group qualifies if `peer` had an
            // interconnect with all of it.
            if !owner.is_null() && interconnect {
                break;
            }
            owner = cur_owner;
            interconnect = true;
        }
        if interconnect {
            let Some(has_interconnect) = has_interconnect else {
                return code::EINVAL.to_errno();
            };
            // SAFETY: The driver's callback, called as upstream calls it, on two valid peers.
            if !unsafe { has_interconnect(peer, cur) } {
                interconnect = false;
            }
        }
        // SAFETY: A node on the list, protected by the mutex.
        pos = unsafe { (*pos).next };
    }

    if !interconnect {
        let Ok(new) = KBox::new(
            Owner {
                refs: Refcount::new(1),
            },
            GFP_KERNEL,
        ) else {
            return code::ENOMEM.to_errno();
        };
        owner = KBox::into_raw(new).cast::<bindings::drm_pagemap_owner>();
        // SAFETY: `peer` is valid and not on a list (caller); the list's mutex is held.
        unsafe { k::list_add_tail(ptr::addr_of_mut!((*peer).link), head) };
    } else {
        // SAFETY: `owner` is the owner of a group on the list (non-NULL: `interconnect` is only
        // true after a member was seen), alive while that member is registered; its refcount is
        // changed under the mutex.
        unsafe { (*owner.cast::<Owner>()).refs.inc() };
        // Insert before `pos`: at the end of the qualifying group (the first member of the next
        // group, or the list head when the group was the last).
        // SAFETY: `peer` is valid and not on a list; `pos` is a node of the list (or its head);
        // the mutex is held.
        unsafe { k::list_add_tail(ptr::addr_of_mut!((*peer).link), pos) };
    }
    // SAFETY: A valid peer, now registered; its fields are protected by the mutex.
    unsafe {
        (*peer).owner = owner;
        (*peer).list = owner_list;
    }
    0
}
