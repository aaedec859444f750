// SPDX-License-Identifier: GPL-2.0

//! The `drm_gpusvm_*` functions of `include/drm/drm_gpusvm.h`, on the core's [`Svm`].
//!
//! Each function validates what upstream validates (and, where upstream would dereference a bad
//! pointer or an instance after `drm_gpusvm_fini`, returns the errno upstream uses for bad
//! arguments, `-EINVAL`, or does nothing for a `void` function), converts the C arguments, calls
//! the core, and mirrors into the C structures the state that C callers read themselves:
//!
//! - `range->pages.flags` (`has_dma_mapping`, `has_devmem_pages`, `unmapped`, `partial_unmap`;
//!   `migrate_devmem` is set when the range is linked), `notifier_seq`, `dpagemap` and the
//!   `dma_addr` array (upstream's `struct drm_pagemap_addr`, one entry per mapping of
//!   `1 << order` pages, which Xe's page-table code walks) are written under the notifier lock,
//!   after the core's own state changed under that lock: a commit that checks
//!   `drm_gpusvm_range_pages_valid` under the lock sees the same answer the core would give.
//! - The `dma_addr` array is allocated before the lock is taken (once per range, as upstream
//!   keeps it until `free_pages`/`range_remove`), never under it.
//!
//! Locking follows upstream: structural calls (`range_find_or_insert`, `range_remove`, `fini`)
//! run under the caller's driver lock, which is what lets them take the core's `&mut Svm`;
//! everything else runs under `&Svm` and the core's own locking.

use core::ptr::NonNull;

use gpusvm_core::{
    PagesApi,
    code, Ctx, Error, NotifierLocked, Owner, PagesFlags, PgmapId, Range, RangeFlags, ReadGuard,
    ScanResult, Span, Svm, SvmConfig, SvmPages,
};
use gpusvm_kshim::{KAlloc, KClock, KDma, KMm};
use kernel::bindings as k;
use kernel::ffi::{c_char, c_int, c_ulong, c_void};

use crate::bindings as c;
use crate::driver::{self, AbiSvm, CAbi, CLock};
use crate::pagemap::{c_addr, CPagemap};

/// The span the core should search for upstream's `interval_tree_iter_first(root, start,
/// end - 1)`, and whether a hit must also contain `start` (see below).
///
/// Upstream queries an inclusive interval `[start, end - 1]`, computed with wrapping arithmetic:
/// a node matches if `node.start <= end - 1 && node.last >= start`. For a proper span that is the
/// ordinary overlap. For an empty or reversed one (`end - 1 < start`) it matches only a node that
/// contains both `end - 1` and `start`; nodes never overlap, so that is the node containing
/// `end - 1`, if it also reaches `start`. C callers see the same answers as from upstream, on
/// inputs upstream leaves unchecked.
fn upstream_query(start: u64, end: u64) -> Option<(Span, Option<u64>)> {
    let last = end.wrapping_sub(1);
    if last >= start {
        // `[start, last]`; the core's spans are half-open and cannot include `u64::MAX`, which
        // no page of a range can be anyway.
        Span::new(start, last.saturating_add(1)).ok().map(|s| (s, None))
    } else {
        Span::new(last, last.saturating_add(1)).ok().map(|s| (s, Some(start)))
    }
}

/// Whether a node `[node_start, node_end)` found for `upstream_query` matches.
fn upstream_match(node_end: u64, must_reach: Option<u64>) -> bool {
    must_reach.is_none_or(|start| node_end.saturating_sub(1) >= start)
}

/// `ERR_PTR(-err)`.
fn err_ptr<T>(e: Error) -> *mut T {
    (e.to_errno() as isize) as *mut T
}

/// The Rust state of an initialized instance (`None` before `init`, after `fini`, or for NULL).
///
/// # Safety
///
/// `gpusvm` is NULL or points to a `struct drm_gpusvm` that `drm_gpusvm_init` of this
/// implementation initialized (or that is zeroed).
pub(crate) unsafe fn state<'a>(gpusvm: *mut c::drm_gpusvm) -> Option<&'a AbiSvm> {
    // SAFETY: Caller; `root.rb_root.rb_node` holds our box (see `init`) or NULL.
    let p = unsafe { gpusvm.as_ref()? }.root.rb_root.rb_node.cast::<AbiSvm>();
    // SAFETY: Set by `init` to a live box, cleared by `fini` before freeing it.
    unsafe { p.as_ref() }
}

/// The core instance, shared.
pub(crate) fn svm(s: &AbiSvm) -> &Svm<CAbi> {
    // SAFETY: Shared access; exclusive access (`svm_mut`) only happens under the caller's driver
    // lock, which upstream's rules forbid to overlap with the calls that reach here without it
    // only for structural changes the core itself synchronizes (see module docs).
    unsafe { &*s.svm.get() }
}

/// The core instance, for a structural call.
///
/// # Safety
///
/// The caller holds the instance's driver lock (upstream's rule for the structural calls), so no
/// other structural call runs.
#[allow(clippy::mut_from_ref)]
unsafe fn svm_mut(s: &AbiSvm) -> &mut Svm<CAbi> {
    // Upstream's `drm_gpusvm_driver_lock_held`: with lockdep, the lock the driver named with
    // `drm_gpusvm_driver_set_lock` must be held for writing.
    // SAFETY: The instance's C structure is valid while its state exists.
    unsafe { c::gs_abi_assert_driver_lock_held(s.driver().gpusvm()) };
    // SAFETY: Caller.
    unsafe { &mut *s.svm.get() }
}

/// The core's view of a C `struct drm_gpusvm_ctx` (NULL: `None`), with its `in_notifier`.
///
/// # Safety
///
/// `ctx` is NULL or valid.
pub(crate) unsafe fn ctx_of(ctx: *const c::drm_gpusvm_ctx) -> Option<(Ctx, bool)> {
    // SAFETY: Caller.
    let c = unsafe { ctx.as_ref()? };
    let owner = c.device_private_page_owner;
    Some((
        Ctx {
            device_private_owner: (!owner.is_null()).then(|| Owner(owner as usize)),
            check_pages_threshold: c.check_pages_threshold as u64,
            timeslice_ms: c.timeslice_ms as u64,
            read_only: c.read_only() != 0,
            devmem_possible: c.devmem_possible() != 0,
            devmem_only: c.devmem_only() != 0,
            allow_mixed: c.allow_mixed() != 0,
        },
        c.in_notifier() != 0,
    ))
}

/// The C pages object of a range (`&range->pages`).
///
/// # Safety
///
/// `r` is a valid C range.
unsafe fn pages_of(r: *mut c::drm_gpusvm_range) -> *mut c::drm_gpusvm_pages {
    // SAFETY: Caller; a field address.
    unsafe { core::ptr::addr_of_mut!((*r).pages) }
}

/// Reads the flags of a C pages object (`READ_ONCE`).
///
/// # Safety
///
/// `p` is a valid C pages object.
pub(crate) unsafe fn read_flags(p: *const c::drm_gpusvm_pages) -> c::drm_gpusvm_pages_flags {
    // SAFETY: Caller.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*p).flags)) }
}

/// The C flags of a pages object, as upstream keeps them.
///
/// # Safety
///
/// `p` is a valid C pages object; the caller holds the notifier lock (or `p` is unreachable).
unsafe fn write_flags(
    p: *mut c::drm_gpusvm_pages,
    f: impl FnOnce(&mut c::drm_gpusvm_pages_flags),
) {
    // SAFETY: Caller.
    let mut flags = unsafe { read_flags(p) };
    f(&mut flags);
    // WRITE_ONCE, pairing with callers' READ_ONCE (`xe_svm_range_in_vram`).
    // SAFETY: Caller.
    unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!((*p).flags), flags) };
}

fn set_bits(f: &mut c::drm_gpusvm_pages_flags, dma: bool, devmem: bool) {
    // SAFETY: The union's only two views are the bitfield struct and its `u16`; both are plain
    // integers.
    let b = unsafe { f.__bindgen_anon_1.__bindgen_anon_1.as_mut() };
    b.set_has_dma_mapping(u16::from(dma));
    b.set_has_devmem_pages(u16::from(devmem));
}

/// Mirrors the core's state of `pages` into the C pages object `p`, under the notifier lock
/// `nl`: the DMA addresses (into `p->dma_addr`, if it has room for them: `cap` entries), the
/// pagemap of the device pages (`p->dpagemap`, holding one reference) and the flags. The C
/// pages are valid exactly when the core's pages are, `also_valid` agrees and the entries were
/// copied. Returns whether they are valid. The caller writes `p->notifier_seq` (see
/// [`mirror_seq`]) when its protocol says so.
///
/// # Safety
///
/// `p` is a valid C pages object whose `dma_addr`, if not NULL, has at least `cap` entries;
/// `nl` is the notifier lock of `s`, and `pages` is a pages object of `s`.
pub(crate) unsafe fn mirror_c_pages(
    s: PagesApi<'_, CAbi>,
    nl: &impl NotifierLocked,
    pages: &SvmPages<CAbi>,
    p: *mut c::drm_gpusvm_pages,
    cap: usize,
    also_valid: impl FnOnce() -> bool,
) -> bool {
    let flags = pages.flags();
    // SAFETY: Caller: a valid C pages object.
    let arr = unsafe { (*p).dma_addr };
    let copied = !arr.is_null()
        && s.pages_entries(nl, pages, |entries| {
            if entries.len() > cap {
                return false;
            }
            for (i, &e) in entries.iter().enumerate() {
                // SAFETY: `i < entries.len() <= cap`, and the array has `cap` entries (caller).
                unsafe { arr.add(i).write(c_addr(e)) };
            }
            true
        }) == Some(true);
    let valid = copied && also_valid();
    let dma = valid && flags.contains(PagesFlags::HAS_DMA_MAPPING);
    let devmem = valid && flags.contains(PagesFlags::HAS_DEVMEM_PAGES);
    let dpagemap = if devmem {
        // SAFETY: Caller: valid.
        let cur = unsafe { (*p).dpagemap };
        // Only a reference count is taken under the pages' state lock; a replaced pagemap is put
        // by `publish`, after it.
        pages.with_pagemap(nl, |pm| match pm {
            Some(pm) if pm.as_ptr() == cur => Dpagemap::Keep,
            pm => Dpagemap::Set(pm.cloned()),
        })
    } else {
        Dpagemap::Set(None)
    };
    // SAFETY: Caller: valid, lock held.
    unsafe { publish(p, dma, devmem, dpagemap) };
    valid
}

/// What `publish` does with `dpagemap`.
enum Dpagemap {
    /// It already names the right pagemap (and holds its reference).
    Keep,
    /// It becomes this one (NULL for `None`), holding the reference given here.
    Set(Option<CPagemap>),
}

/// Writes the C state of a pages object: its two mapping flags and `dpagemap`, whose replaced
/// value is put as upstream's `drm_pagemap_put(svm_pages->dpagemap)` does.
///
/// # Safety
///
/// `p` is a valid C pages object; the caller holds the notifier lock (or `p` is unreachable).
unsafe fn publish(p: *mut c::drm_gpusvm_pages, dma: bool, devmem: bool, dpagemap: Dpagemap) {
    // SAFETY: Caller.
    unsafe {
        write_flags(p, |f| set_bits(f, dma, devmem));
        let Dpagemap::Set(new) = dpagemap else {
            return;
        };
        let new = new.map_or(core::ptr::null_mut(), CPagemap::into_raw);
        let old = core::mem::replace(&mut (*p).dpagemap, new);
        if !old.is_null() {
            c::drm_pagemap_put(old);
        }
    }
}

/// Mirrors the core's pages state of `range` into its C `pages` (flags, sequence, pagemap and
/// DMA addresses), under the notifier lock `nl`. Returns whether the pages are valid.
///
/// # Safety
///
/// `r` is the C range of `range`; its `dma_addr` array, if any, has one entry per page.
unsafe fn mirror_pages(
    s: &Svm<CAbi>,
    nl: &ReadGuard<'_, CLock>,
    range: &Range<CAbi>,
    r: *mut c::drm_gpusvm_range,
) -> bool {
    // The core never has more entries than pages.
    let npages = usize::try_from(range.size() >> gpusvm_kshim::PAGE_SHIFT).unwrap_or(usize::MAX);
    // SAFETY: Caller: the C pages of the range, with one entry per page; `nl` and the range's
    // pages are the instance's.
    let valid = unsafe {
        mirror_c_pages(
            s.pages_api(),
            nl,
            &range.data().pages,
            pages_of(r),
            npages,
            || s.range_pages_valid(nl, range),
        )
    };
    // SAFETY: As above.
    unsafe { mirror_seq(&range.data().pages, pages_of(r)) };
    valid
}

/// Publishes the notifier sequence the core validated in its last successful `get_pages` of
/// `pages` (upstream's `svm_pages->notifier_seq = hmm_range.notifier_seq`).
///
/// # Safety
///
/// `p` is a valid C pages object; the caller holds the notifier lock.
pub(crate) unsafe fn mirror_seq(pages: &SvmPages<CAbi>, p: *mut c::drm_gpusvm_pages) {
    // SAFETY: Caller.
    unsafe { (*p).notifier_seq = pages.notifier_seq() as _ };
}

/// Marks the C pages unmapped after the core unmapped them (flags cleared, pagemap dropped).
///
/// # Safety
///
/// `p` is a valid C pages object; the caller holds the notifier lock (or `p` is unreachable).
pub(crate) unsafe fn mirror_unmapped(p: *mut c::drm_gpusvm_pages) {
    // SAFETY: Caller.
    unsafe { publish(p, false, false, Dpagemap::Set(None)) };
}

/// Detaches the C `dma_addr` array of a pages object (NULL if it has none), to be freed with
/// [`free_dma_array`].
///
/// # Safety
///
/// `p` is a valid C pages object; the caller holds the notifier lock (or `p` is unreachable).
pub(crate) unsafe fn take_dma_array(p: *mut c::drm_gpusvm_pages) -> *mut c::drm_pagemap_addr {
    // SAFETY: Caller.
    unsafe { core::mem::replace(&mut (*p).dma_addr, core::ptr::null_mut()) }
}

/// Frees a C `dma_addr` array (NULL: nothing).
///
/// # Safety
///
/// `arr` is NULL or an array from [`new_dma_array`] that nothing refers to any more.
pub(crate) unsafe fn free_dma_array(arr: *mut c::drm_pagemap_addr) {
    if !arr.is_null() {
        // SAFETY: Allocated by `kvmalloc` in `new_dma_array`, unreachable (caller).
        unsafe { k::kvfree(arr.cast()) };
    }
}

/// Allocates a C `dma_addr` array of `n` entries (`kvmalloc`: never with the notifier lock
/// held).
pub(crate) fn new_dma_array(n: usize) -> Result<NonNull<c::drm_pagemap_addr>, Error> {
    let bytes = n
        .checked_mul(size_of::<c::drm_pagemap_addr>())
        .ok_or(code::ENOMEM)?;
    // SAFETY: A plain allocation.
    let p = unsafe { k::__kvmalloc_node_noprof(bytes, 1, k::GFP_KERNEL, k::NUMA_NO_NODE) };
    NonNull::new(p.cast()).ok_or(code::ENOMEM)
}

/// Allocates the C `dma_addr` array of a range if it has none (before any lock: `kvmalloc`).
///
/// # Safety
///
/// `r` is a valid C range; the caller is the only one who may allocate its array (upstream's
/// rule: `get_pages` callers do not race on one range's pages).
unsafe fn alloc_dma_array(r: *mut c::drm_gpusvm_range, npages: usize) -> Result<(), Error> {
    // SAFETY: Caller.
    if !unsafe { (*r).pages.dma_addr }.is_null() {
        return Ok(());
    }
    let arr = new_dma_array(npages)?;
    // SAFETY: Caller; the array is published under the range's owner's rules.
    unsafe { (*r).pages.dma_addr = arr.as_ptr() };
    Ok(())
}

// ------------------------------------------------------------------------------ init / fini

/// `drm_gpusvm_init`.
///
/// # Safety
///
/// As upstream: `gpusvm` is writable memory for the structure, `name` a string that outlives it,
/// `drm` a live DRM device, `mm` NULL or a live mm, `ops` and `chunk_sizes` (with `num_chunks`
/// entries) static.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_init(
    gpusvm: *mut c::drm_gpusvm,
    name: *const c_char,
    drm: *mut k::drm_device,
    mm: *mut k::mm_struct,
    mm_start: c_ulong,
    mm_range: c_ulong,
    notifier_size: c_ulong,
    ops: *const c::drm_gpusvm_ops,
    chunk_sizes: *const c_ulong,
    num_chunks: c_int,
) -> c_int {
    match unsafe {
        init(
            gpusvm,
            name,
            drm,
            mm,
            [mm_start, mm_range, notifier_size],
            ops,
            chunk_sizes,
            num_chunks,
        )
    } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn init(
    gpusvm: *mut c::drm_gpusvm,
    name: *const c_char,
    drm: *mut k::drm_device,
    mm: *mut k::mm_struct,
    [mm_start, mm_range, notifier_size]: [c_ulong; 3],
    ops: *const c::drm_gpusvm_ops,
    chunk_sizes: *const c_ulong,
    num_chunks: c_int,
) -> Result<(), Error> {
    let g = NonNull::new(gpusvm).ok_or(code::EINVAL)?;
    // Upstream's checks: full mode needs an invalidate op and chunk sizes; pages-only mode (no
    // mm) takes none of the full-mode parameters.
    // SAFETY: `ops` is NULL or static (caller).
    let ops_ref = unsafe { ops.as_ref() };
    if mm.is_null() {
        if !ops.is_null() || num_chunks != 0 || mm_range != 0 || notifier_size != 0 {
            return Err(code::EINVAL);
        }
    } else if ops_ref.and_then(|o| o.invalidate).is_none() || num_chunks <= 0 || chunk_sizes.is_null() {
        return Err(code::EINVAL);
    }
    // SAFETY: A live DRM device (caller).
    let dev = unsafe { drm.as_ref() }.ok_or(code::EINVAL)?.dev;
    // SAFETY: The device of a live DRM device, set up for DMA by its driver.
    let dma = unsafe { KDma::new(dev) }.ok_or(code::EINVAL)?;
    let nchunks = usize::try_from(num_chunks).unwrap_or(0);
    let mut chunks = [0u64; 16];
    if nchunks > chunks.len() {
        return Err(code::EINVAL);
    }
    // Upstream tries the sizes in order and skips one that does not fit inside the notifier;
    // the core wants only sizes that can fit, so those are left out here, which selects the same
    // chunks.
    let mut nchunks_kept = 0usize;
    for i in 0..nchunks {
        // SAFETY: `num_chunks` entries (caller).
        let size = unsafe { *chunk_sizes.add(i) } as u64;
        if size > notifier_size as u64 {
            continue;
        }
        if let Some(slot) = chunks.get_mut(nchunks_kept) {
            *slot = size;
            nchunks_kept += 1;
        }
    }
    let nchunks = nchunks_kept;
    // The C fields, as upstream sets them, before the lock exists.
    // SAFETY: Writable (caller).
    unsafe {
        let p = g.as_ptr();
        (*p).name = name;
        (*p).drm = drm;
        (*p).mm = mm;
        (*p).mm_start = mm_start;
        (*p).mm_range = mm_range;
        (*p).notifier_size = notifier_size;
        (*p).ops = ops;
        (*p).chunk_sizes = chunk_sizes;
        (*p).num_chunks = num_chunks;
        (*p).root = k::rb_root_cached::default();
        driver::list_init(core::ptr::addr_of_mut!((*p).notifier_list));
        c::gs_abi_init_notifier_lock(core::ptr::addr_of_mut!((*p).notifier_lock));
        c::gs_abi_prime_notifier_lock(core::ptr::addr_of_mut!((*p).notifier_lock));
        c::gs_abi_clear_lock_dep_map(p);
    }
    let kmm = if mm.is_null() {
        None
    } else {
        // SAFETY: A live mm (caller); `grab` takes the `mmgrab` reference upstream takes.
        Some(unsafe { KMm::grab(mm) }.ok_or(code::EINVAL)?)
    };
    // The core's window must hold every fault upstream's check lets through,
    // `[mm_start, mm_start + mm_range]` inclusive; when that sum wraps, upstream lets nothing
    // through (`drm_gpusvm_range_find_or_insert` checks it first), so any window will do.
    // (Pages-only mode has no window: `mm_range` is 0 there, as the core requires.)
    let window_len = match (mm_start as u64).checked_add(mm_range as u64) {
        _ if mm.is_null() => 0,
        Some(last) => last.saturating_add(1).saturating_sub(mm_start as u64).max(1),
        None => gpusvm_kshim::PAGE_SIZE as u64,
    };
    let config = SvmConfig {
        name: "drm_gpusvm",
        mm_start: mm_start as u64,
        mm_range: window_len,
        notifier_size: notifier_size as u64,
        chunk_sizes: chunks.get(..nchunks).unwrap_or_default(),
        page_shift: gpusvm_kshim::PAGE_SHIFT,
    };
    // SAFETY: The lock was initialized above, inside the structure that outlives the instance.
    let lock = unsafe { CLock::borrowed(g) };
    // SAFETY: The structure outlives the instance (dropped by `fini`).
    let drv = unsafe { CAbi::new(g, dma) };
    let svm = Svm::with_lock(config, drv, lock, kmm, KAlloc, KClock)?;
    let boxed = kernel::alloc::KBox::new(AbiSvm::new(svm), kernel::alloc::flags::GFP_KERNEL)
    .map_err(|_| code::ENOMEM)?;
    // SAFETY: Writable; the root is ours (no C interval tree is kept here).
    unsafe {
        (*g.as_ptr()).root.rb_root.rb_node = kernel::alloc::KBox::into_raw(boxed).cast();
    }
    Ok(())
}

/// `drm_gpusvm_fini`: removes every range and notifier, drops the mm reference. Calls on the
/// instance afterwards fail with `-EINVAL` (or do nothing).
///
/// # Safety
///
/// `gpusvm` is NULL or an instance initialized by [`drm_gpusvm_init`]; the caller holds its
/// driver lock and no other call on it runs.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_fini(gpusvm: *mut c::drm_gpusvm) {
    // SAFETY: Caller.
    if unsafe { state(gpusvm) }.is_none() {
        return;
    }
    // Upstream removes every range (dropping the tree's kref) before the notifiers go, walking
    // the notifier and range lists with their `_safe` iterators: the next entry is read before
    // the current one is removed (removing a notifier's last range frees the notifier, so its
    // list head is then only compared with, never read).
    // SAFETY: The lists are this instance's, kept by the core's hooks; we hold the driver lock
    // (caller), and every entry is a linked C range or notifier of this instance.
    unsafe {
        let nhead = core::ptr::addr_of_mut!((*gpusvm).notifier_list);
        let mut n = (*nhead).next;
        while n != nhead {
            let next_n = (*n).next;
            let rhead = core::ptr::addr_of_mut!((*driver::notifier_of_entry(n)).range_list);
            let mut r = (*rhead).next;
            while r != rhead {
                let next_r = (*r).next;
                drm_gpusvm_range_remove(gpusvm, driver::range_of_entry(r));
                r = next_r;
            }
            n = next_n;
        }
    }
    // SAFETY: Cleared first so that nothing reaches the box while it is freed.
    let p = unsafe {
        core::mem::replace(&mut (*gpusvm).root.rb_root.rb_node, core::ptr::null_mut())
    };
    // SAFETY: Made by `KBox::into_raw` in `init`; dropping the instance unregisters what is
    // left and drops the mm reference (`mmdrop`).
    drop(unsafe { kernel::alloc::KBox::from_raw(p.cast::<AbiSvm>()) });
}

// ---------------------------------------------------------------------------- lookups

/// `drm_gpusvm_notifier_find`: the first notifier overlapping `[start, end)`.
///
/// # Safety
///
/// `gpusvm` is NULL or initialized; the caller holds the driver or the notifier lock.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_notifier_find(
    gpusvm: *mut c::drm_gpusvm,
    start: c_ulong,
    end: c_ulong,
) -> *mut c::drm_gpusvm_notifier {
    // SAFETY: Caller.
    let Some(s) = (unsafe { state(gpusvm) }) else {
        return core::ptr::null_mut();
    };
    let Some((span, reach)) = upstream_query(start as u64, end as u64) else {
        return core::ptr::null_mut();
    };
    svm(s)
        .notifier_find(span)
        .filter(|n| upstream_match(n.end(), reach))
        .map_or(core::ptr::null_mut(), |n| n.data().as_ptr())
}

/// `drm_gpusvm_range_find`: the first range of `notifier` overlapping `[start, end)`.
///
/// # Safety
///
/// `notifier` is NULL or a live notifier of an initialized instance; the caller holds the driver
/// or the notifier lock.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_range_find(
    notifier: *mut c::drm_gpusvm_notifier,
    start: c_ulong,
    end: c_ulong,
) -> *mut c::drm_gpusvm_range {
    // SAFETY: Caller.
    let Some(n) = (unsafe { notifier.as_ref() }) else {
        return core::ptr::null_mut();
    };
    // The instance itself is not touched: another thread may be changing its notifier index
    // under the driver lock while this runs inside the invalidate op.
    // SAFETY: A live notifier's instance is initialized (caller).
    if unsafe { state(n.gpusvm) }.is_none() {
        return core::ptr::null_mut();
    }
    let Some((span, reach)) = upstream_query(start as u64, end as u64) else {
        return core::ptr::null_mut();
    };
    // SAFETY: Set by `notifier_linked` to the core notifier, alive while linked.
    let core_n = unsafe {
        (*driver::core_notifier_slot(notifier)).cast::<gpusvm_core::Notifier<CAbi>>()
    };
    // SAFETY: As above.
    let Some(core_n) = (unsafe { core_n.as_ref() }) else {
        return core::ptr::null_mut();
    };
    // SAFETY: The caller holds the driver lock or is the invalidate op (upstream's rule for
    // walking a notifier's ranges).
    unsafe { core_n.range_find(span) }
        .filter(|r| upstream_match(r.end(), reach))
        .map_or(core::ptr::null_mut(), |r| r.data().as_ptr())
}

/// `drm_gpusvm_has_mapping`: whether any range overlaps `[start, end)`.
///
/// # Safety
///
/// `gpusvm` is NULL or initialized; the caller holds the driver lock.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_has_mapping(
    gpusvm: *mut c::drm_gpusvm,
    start: c_ulong,
    end: c_ulong,
) -> bool {
    // SAFETY: Caller.
    let Some(s) = (unsafe { state(gpusvm) }) else {
        return false;
    };
    // Upstream walks `drm_gpusvm_for_each_notifier` and `drm_gpusvm_for_each_range` over
    // `[start, end)` and answers on the first range whose start is below `end`.
    let (start, end) = (start as u64, end as u64);
    let Some((span, reach)) = upstream_query(start, end) else {
        return false;
    };
    let svm = svm(s);
    if reach.is_none() {
        // The loops stop at the first node that does not start below `end` (with `end == 0`,
        // at once): the first range of the span decides.
        return svm.ranges(span).next().is_some_and(|r| r.start() < end);
    }
    // An empty or reversed span: only the range containing `end - 1` and `start` can match
    // (its notifier contains both too), and it must start below `end`.
    svm.range_at(span.start())
        .is_some_and(|r| upstream_match(r.end(), reach) && r.start() < end)
}

/// `drm_gpusvm_find_vma_start`: the start of the first VMA overlapping `[start, end)`, or
/// `ULONG_MAX`.
///
/// # Safety
///
/// `gpusvm` is NULL or initialized.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_find_vma_start(
    gpusvm: *mut c::drm_gpusvm,
    start: c_ulong,
    end: c_ulong,
) -> c_ulong {
    // SAFETY: Caller.
    let Some(s) = (unsafe { state(gpusvm) }) else {
        return c_ulong::MAX;
    };
    // Upstream's `find_vma_intersection(mm, start, end)` searches the maple tree from `start` up
    // to `end - 1`: `end == 0` searches to the top of the address space, and a reversed or empty
    // span finds nothing.
    let (start, end) = (start as u64, end as u64);
    let end = if end == 0 { u64::MAX } else { end };
    Span::new(start, end)
        .ok()
        .and_then(|span| svm(s).find_vma_start(span))
        .map_or(c_ulong::MAX, |a| a as c_ulong)
}

// ------------------------------------------------------------------------------ ranges

/// `drm_gpusvm_range_find_or_insert`.
///
/// # Safety
///
/// `gpusvm` is NULL or initialized, `ctx` NULL or valid; the caller holds the driver lock.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_range_find_or_insert(
    gpusvm: *mut c::drm_gpusvm,
    fault_addr: c_ulong,
    gpuva_start: c_ulong,
    gpuva_end: c_ulong,
    ctx: *const c::drm_gpusvm_ctx,
) -> *mut c::drm_gpusvm_range {
    // SAFETY: Caller.
    let Some(s) = (unsafe { state(gpusvm) }) else {
        return err_ptr(code::EINVAL);
    };
    // SAFETY: Caller.
    let Some((ctx, _)) = (unsafe { ctx_of(ctx) }) else {
        return err_ptr(code::EINVAL);
    };
    // Upstream's window check, with its wrapping sum and inclusive end: the core's window
    // (see `init`) holds every address it lets through.
    // SAFETY: A live instance's C structure.
    let (mm_start, mm_range, nsize) =
        unsafe { ((*gpusvm).mm_start, (*gpusvm).mm_range, (*gpusvm).notifier_size) };
    if fault_addr < mm_start || fault_addr > mm_start.wrapping_add(mm_range) {
        return err_ptr(code::EINVAL);
    }
    let Ok(gpuva) = Span::new(gpuva_start as u64, gpuva_end as u64) else {
        return err_ptr(code::EINVAL);
    };
    // SAFETY: Driver lock held (caller).
    let svm = unsafe { svm_mut(s) };
    // The notifier window of a fault in the top window of the address space ends past
    // `u64::MAX`, which the core's spans cannot express; upstream's wraps, and its fault then
    // finds no VMA there (user space never reaches the top of the address space): `-ENOENT`.
    let nstart = fault_addr & !(nsize.wrapping_sub(1));
    if nsize.is_power_of_two() && nstart.checked_add(nsize).is_none() {
        let vma = Span::new(fault_addr as u64, u64::MAX)
            .ok()
            .and_then(|span| svm.find_vma_start(span));
        return err_ptr(if vma.is_some_and(|v| v <= fault_addr as u64) {
            code::EINVAL
        } else {
            code::ENOENT
        });
    }
    match svm.range_find_or_insert_ref(fault_addr as u64, gpuva, &ctx) {
        // The tree keeps the range alive; upstream returns it without a reference.
        Ok(r) => r.data().as_ptr(),
        Err(e) => err_ptr(e),
    }
}

/// `drm_gpusvm_range_remove`: unmaps and frees the range's pages, unlinks it, drops the tree's
/// reference, and removes its notifier if it became empty.
///
/// # Safety
///
/// `gpusvm` NULL or initialized, `range` NULL or one of its ranges (with a reference held by the
/// caller or the tree); the caller holds the driver lock.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_range_remove(
    gpusvm: *mut c::drm_gpusvm,
    range: *mut c::drm_gpusvm_range,
) {
    // SAFETY: Caller.
    let (Some(s), false) = (unsafe { state(gpusvm) }, range.is_null()) else {
        return;
    };
    // SAFETY: A range of this instance with a reference held.
    let Some(core) = (unsafe { driver::core_range(range) }) else {
        return;
    };
    if core.flags().contains(RangeFlags::REMOVED) {
        // Already removed: upstream warns (no notifier found) and returns.
        return;
    }
    // SAFETY: Driver lock held (caller).
    unsafe { svm_mut(s) }.range_remove(core);
    {
        let _nl = svm(s).notifier_lock();
        // SAFETY: Unlinked now; the notifier lock orders this after any reader.
        unsafe {
            mirror_unmapped(pages_of(range));
            free_dma_array(take_dma_array(pages_of(range)));
        }
    }
    // SAFETY: The tree's kref (taken at creation), dropped as upstream does.
    unsafe { drm_gpusvm_range_put(range) };
}

/// `drm_gpusvm_range_get`: takes a reference.
///
/// # Safety
///
/// `range` is NULL or a live range.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_range_get(
    range: *mut c::drm_gpusvm_range,
) -> *mut c::drm_gpusvm_range {
    if !range.is_null() {
        // SAFETY: Live (caller): `kref_get`.
        unsafe { k::refcount_inc(core::ptr::addr_of_mut!((*range).refcount.refcount)) };
    }
    range
}

/// `drm_gpusvm_range_put`: drops a reference; the last one frees the range (`range_free`).
///
/// # Safety
///
/// `range` is NULL or a range on which the caller owns a reference.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_range_put(range: *mut c::drm_gpusvm_range) {
    if range.is_null() {
        return;
    }
    // SAFETY: The caller owns a reference (`kref_put`).
    if !unsafe { k::refcount_dec_and_test(core::ptr::addr_of_mut!((*range).refcount.refcount)) } {
        return;
    }
    // SAFETY: The last reference.
    unsafe { range_release(range) };
}

/// Frees a C range whose kref dropped to zero: the count it held on the core range goes first
/// (the core range, unlinked by `range_remove`, may be freed with its pages), then the driver's
/// `range_free`.
///
/// # Safety
///
/// `range`'s kref has just dropped to zero.
pub(crate) unsafe fn range_release(range: *mut c::drm_gpusvm_range) {
    // SAFETY: Caller.
    let core = unsafe { driver::take_core_ref(range) };
    drop(core);
    // SAFETY: Caller; upstream's `drm_gpusvm_range_destroy`.
    unsafe {
        free_dma_array(take_dma_array(pages_of(range)));
        driver::free_c_range((*range).gpusvm, range);
    }
}

/// Upstream's `lockdep_assert_held_write(&gpusvm->notifier_lock)`; nothing (not even the call)
/// without lockdep.
///
/// # Safety
///
/// `gpusvm` is an initialized instance.
pub(crate) unsafe fn assert_notifier_write_held(gpusvm: *mut c::drm_gpusvm) {
    if c::GS_ABI_LOCKDEP != 0 {
        // SAFETY: Caller.
        unsafe { c::gs_abi_assert_notifier_lock_held_write(gpusvm) };
    }
}

/// Whether the C flags of a range's pages say valid (upstream's `drm_gpusvm_pages_valid`).
///
/// # Safety
///
/// `range` is a live range.
unsafe fn c_pages_valid(range: *const c::drm_gpusvm_range) -> bool {
    // SAFETY: Caller; the flags are plain integers.
    let b = unsafe { (*range).pages.flags.__bindgen_anon_1.__bindgen_anon_1.as_ref() };
    b.has_dma_mapping() != 0 || b.has_devmem_pages() != 0
}

/// `drm_gpusvm_range_pages_valid`: whether the range's pages may be committed (the caller
/// holds the notifier lock), read from the C flags as upstream does.
///
/// # Safety
///
/// `range` is NULL or a live range.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_range_pages_valid(
    _gpusvm: *mut c::drm_gpusvm,
    range: *mut c::drm_gpusvm_range,
) -> bool {
    if range.is_null() {
        return false;
    }
    // SAFETY: Caller: live.
    unsafe { c_pages_valid(range) }
}

/// `drm_gpusvm_range_get_pages`: faults and DMA-maps the range's pages, then publishes them in
/// the C `pages` under the notifier lock.
///
/// # Safety
///
/// `gpusvm` NULL or initialized, `range` NULL or one of its ranges with a reference held, `ctx`
/// NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_range_get_pages(
    gpusvm: *mut c::drm_gpusvm,
    range: *mut c::drm_gpusvm_range,
    ctx: *const c::drm_gpusvm_ctx,
) -> c_int {
    // SAFETY: Caller.
    let (Some(s), Some((ctx, _))) = (unsafe { state(gpusvm) }, unsafe { ctx_of(ctx) }) else {
        return code::EINVAL.to_errno();
    };
    if range.is_null() {
        return code::EINVAL.to_errno();
    }
    // SAFETY: A range of this instance with a reference held.
    let Some(core) = (unsafe { driver::core_range(range) }) else {
        return code::EINVAL.to_errno();
    };
    let svm = svm(s);
    let npages = usize::try_from(core.size() >> gpusvm_kshim::PAGE_SHIFT).unwrap_or(usize::MAX);
    // SAFETY: Callers do not race get_pages on one range (upstream's rule).
    if let Err(e) = unsafe { alloc_dma_array(range, npages) } {
        return e.to_errno();
    }
    // An invalidation between the core's commit and the mirror makes the C pages invalid; the
    // core's own retry covers the fault itself, and this loop the window after it.
    for _ in 0..8 {
        if let Err(e) = svm.range_get_pages(core, &core.data().pages, &ctx) {
            return e.to_errno();
        }
        let nl = svm.notifier_lock();
        // Upstream's fast path: the C pages are still valid from a previous call, so their
        // entries are the core's (every path that unmaps the core's pages clears the C flags
        // under this lock): only the sequence is new.
        // SAFETY: `range` is live (caller); lock held.
        if unsafe { c_pages_valid(range) } && svm.range_pages_valid(&nl, core) {
            // SAFETY: As above.
            unsafe { mirror_seq(&core.data().pages, pages_of(range)) };
            return 0;
        }
        // SAFETY: The C range of `core`, with an array of `npages` entries; lock held.
        if unsafe { mirror_pages(svm, &nl, core, range) } {
            return 0;
        }
    }
    code::EAGAIN.to_errno()
}

/// `drm_gpusvm_range_unmap_pages`: unmaps the range's pages (inside the invalidate op with
/// `ctx->in_notifier`, where the notifier lock is already held for writing).
///
/// # Safety
///
/// As for [`drm_gpusvm_range_get_pages`].
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_range_unmap_pages(
    gpusvm: *mut c::drm_gpusvm,
    range: *mut c::drm_gpusvm_range,
    ctx: *const c::drm_gpusvm_ctx,
) {
    // SAFETY: Caller.
    let (Some(s), Some((_, in_notifier)), false) =
        (unsafe { state(gpusvm) }, unsafe { ctx_of(ctx) }, range.is_null())
    else {
        return;
    };
    // SAFETY: A range of this instance with a reference held.
    let Some(core) = (unsafe { driver::core_range(range) }) else {
        return;
    };
    if in_notifier {
        // SAFETY: `gpusvm` is valid (it has a state).
        unsafe { assert_notifier_write_held(gpusvm) };
        // SAFETY: `in_notifier` means the caller is the invalidate op: the write lock is held.
        let Some(inv) = (unsafe { s.driver().current_invalidation() }) else {
            return;
        };
        inv.unmap_range_pages(core);
        // SAFETY: Write lock held.
        unsafe { mirror_unmapped(pages_of(range)) };
    } else {
        let svm = svm(s);
        // One lock round for the core's pages and their C mirror.
        let nl = svm.notifier_lock();
        svm.pages_api().unmap_pages_locked(&nl, &core.data().pages);
        // SAFETY: Lock held.
        unsafe { mirror_unmapped(pages_of(range)) };
    }
}

/// `drm_gpusvm_range_evict`: migrates the range's device pages back to RAM.
///
/// # Safety
///
/// As for [`drm_gpusvm_range_get_pages`].
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_range_evict(
    gpusvm: *mut c::drm_gpusvm,
    range: *mut c::drm_gpusvm_range,
) -> c_int {
    // SAFETY: Caller.
    let (Some(s), false) = (unsafe { state(gpusvm) }, range.is_null()) else {
        return code::EINVAL.to_errno();
    };
    // SAFETY: A range of this instance with a reference held.
    let Some(core) = (unsafe { driver::core_range(range) }) else {
        return code::EINVAL.to_errno();
    };
    match svm(s).range_evict(core) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `drm_gpusvm_range_set_unmapped`: marks the range unmapped (partially, if `mmu_range` does not
/// cover it) from the invalidate op.
///
/// # Safety
///
/// `range` NULL or a live range; called from the invalidate op (write lock held).
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_range_set_unmapped(
    range: *mut c::drm_gpusvm_range,
    mmu_range: *const k::mmu_notifier_range,
) {
    // SAFETY: Caller.
    let (Some(r), false) = (unsafe { range.as_ref() }, mmu_range.is_null()) else {
        return;
    };
    // SAFETY: A live range's instance.
    let Some(s) = (unsafe { state(r.gpusvm) }) else {
        return;
    };
    // SAFETY: A range of this instance with a reference held (the invalidate op's iteration).
    let Some(core) = (unsafe { driver::core_range(range) }) else {
        return;
    };
    // SAFETY: Called from the invalidate op: the write lock is held.
    let Some(inv) = (unsafe { s.driver().current_invalidation() }) else {
        return;
    };
    inv.set_unmapped(core);
    let f = core.flags();
    let set = |fl: &mut c::drm_gpusvm_pages_flags| {
        // SAFETY: The union's views are plain integers.
        let b = unsafe { fl.__bindgen_anon_1.__bindgen_anon_1.as_mut() };
        b.set_unmapped(u16::from(f.contains(RangeFlags::UNMAPPED)));
        b.set_partial_unmap(u16::from(f.contains(RangeFlags::PARTIAL_UNMAP)));
    };
    // SAFETY: Write lock held.
    unsafe { write_flags(pages_of(range), set) };
}

/// `drm_gpusvm_scan_mm`: where the range's pages live now.
///
/// # Safety
///
/// `range` NULL or a live range; `pagemap` NULL or a `dev_pagemap`.
#[no_mangle]
pub unsafe extern "C" fn drm_gpusvm_scan_mm(
    range: *mut c::drm_gpusvm_range,
    dev_private_owner: *mut c_void,
    pagemap: *const k::dev_pagemap,
) -> c::drm_gpusvm_scan_result {
    let unpopulated = c::drm_gpusvm_scan_result_DRM_GPUSVM_SCAN_UNPOPULATED;
    // SAFETY: Caller.
    let Some(r) = (unsafe { range.as_ref() }) else {
        return unpopulated;
    };
    // SAFETY: A live range's instance.
    let Some(s) = (unsafe { state(r.gpusvm) }) else {
        return unpopulated;
    };
    // SAFETY: A live range of this instance.
    let Some(core) = (unsafe { driver::core_range(range) }) else {
        return unpopulated;
    };
    let owner = (!dev_private_owner.is_null()).then(|| Owner(dev_private_owner as usize));
    let pgmap = (!pagemap.is_null()).then(|| PgmapId(pagemap as usize));
    match svm(s).scan_mm(core, owner, pgmap) {
        ScanResult::Unpopulated => unpopulated,
        ScanResult::Equal => c::drm_gpusvm_scan_result_DRM_GPUSVM_SCAN_EQUAL,
        ScanResult::Other => c::drm_gpusvm_scan_result_DRM_GPUSVM_SCAN_OTHER,
        ScanResult::System => c::drm_gpusvm_scan_result_DRM_GPUSVM_SCAN_SYSTEM,
        ScanResult::MixedDevice => c::drm_gpusvm_scan_result_DRM_GPUSVM_SCAN_MIXED_DEVICE,
        ScanResult::Mixed => c::drm_gpusvm_scan_result_DRM_GPUSVM_SCAN_MIXED,
    }
}

// Every function above has upstream's prototype: a mismatch fails the build here.
const _: () = {
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, *const c_char, *mut k::drm_device, *mut k::mm_struct, c_ulong, c_ulong, c_ulong, *const c::drm_gpusvm_ops, *const c_ulong, c_int) -> c_int; 2] =
        [drm_gpusvm_init, c::decl::drm_gpusvm_init];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm); 2] = [drm_gpusvm_fini, c::decl::drm_gpusvm_fini];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, c_ulong, c_ulong) -> *mut c::drm_gpusvm_notifier; 2] =
        [drm_gpusvm_notifier_find, c::decl::drm_gpusvm_notifier_find];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm_notifier, c_ulong, c_ulong) -> *mut c::drm_gpusvm_range; 2] =
        [drm_gpusvm_range_find, c::decl::drm_gpusvm_range_find];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, c_ulong, c_ulong) -> bool; 2] =
        [drm_gpusvm_has_mapping, c::decl::drm_gpusvm_has_mapping];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, c_ulong, c_ulong) -> c_ulong; 2] =
        [drm_gpusvm_find_vma_start, c::decl::drm_gpusvm_find_vma_start];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, c_ulong, c_ulong, c_ulong, *const c::drm_gpusvm_ctx) -> *mut c::drm_gpusvm_range; 2] =
        [drm_gpusvm_range_find_or_insert, c::decl::drm_gpusvm_range_find_or_insert];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, *mut c::drm_gpusvm_range); 2] =
        [drm_gpusvm_range_remove, c::decl::drm_gpusvm_range_remove];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm_range) -> *mut c::drm_gpusvm_range; 2] =
        [drm_gpusvm_range_get, c::decl::drm_gpusvm_range_get];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm_range); 2] =
        [drm_gpusvm_range_put, c::decl::drm_gpusvm_range_put];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, *mut c::drm_gpusvm_range) -> bool; 2] =
        [drm_gpusvm_range_pages_valid, c::decl::drm_gpusvm_range_pages_valid];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, *mut c::drm_gpusvm_range, *const c::drm_gpusvm_ctx) -> c_int; 2] =
        [drm_gpusvm_range_get_pages, c::decl::drm_gpusvm_range_get_pages];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, *mut c::drm_gpusvm_range, *const c::drm_gpusvm_ctx); 2] =
        [drm_gpusvm_range_unmap_pages, c::decl::drm_gpusvm_range_unmap_pages];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm, *mut c::drm_gpusvm_range) -> c_int; 2] =
        [drm_gpusvm_range_evict, c::decl::drm_gpusvm_range_evict];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm_range, *const k::mmu_notifier_range); 2] =
        [drm_gpusvm_range_set_unmapped, c::decl::drm_gpusvm_range_set_unmapped];
    let _: [unsafe extern "C" fn(*mut c::drm_gpusvm_range, *mut c_void, *const k::dev_pagemap) -> c::drm_gpusvm_scan_result; 2] =
        [drm_gpusvm_scan_mm, c::decl::drm_gpusvm_scan_mm];
};
