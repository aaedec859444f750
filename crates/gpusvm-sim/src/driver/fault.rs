//! The GPU fault handler and prefetch, following Xe's policy (`xe_svm_handle_pagefault`).
//!
//! ```text
//! take the VM lock; run the garbage collector
//! find_or_insert the range (EPERM on a read fault: retry read-only — a read fault on a
//!   read-only VMA maps read-only)
//! migrate to VRAM if the preferred location is device memory, the range may use it
//!   (MIGRATE_DEVMEM) and is at least `migrate_min` (atomics: always), once per fault, and not
//!   already there (scan_mm)
//! get_pages (devmem_only for atomics)
//!   EOPNOTSUPP      → evict the range, retry
//!   EFAULT (atomic) → migrate again with a doubled timeslice; after 3 tries EACCES
//!   EFAULT, EPERM, EBUSY → retry (the CPU side changed)
//! commit under the notifier lock: pages still valid? write the GPU PTEs : retry (EAGAIN)
//! ```
//!
//! Unlike Xe, the retry loop is bounded ([`MAX_ATTEMPTS`]); the last error surfaces.

use std::sync::atomic::Ordering;
use std::time::Instant;

use gpusvm_core::{
    code, populate_mm, Ctx, DmaEntry, Error, Pagemap, RangeFlags, RangeRef, Result, ScanResult,
    Span, Svm,
};

use crate::driver::{garbage_collect, AtomicMode, GpuVm, Preferred, SimDriver};
use crate::gpu::GpuPte;
use crate::mem::PAGE;
use crate::mm::TASK_SIZE;
use crate::shared::lock;

/// Attempts per fault before the last error is returned.
pub const MAX_ATTEMPTS: u32 = 16;
/// Migration attempts for an atomic fault before `EACCES`.
pub const ATOMIC_MIGRATE_ATTEMPTS: u32 = 3;

/// What the GPU tried to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read.
    Read,
    /// Write.
    Write,
    /// Atomic read-modify-write (needs device memory).
    Atomic,
}

/// What to do about placement while servicing a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// The fault policy (attributes, size threshold, atomics).
    Auto,
    /// Prefetch to VRAM of this device.
    Vram(u32),
    /// Prefetch to system memory.
    Ram,
}

/// The GPU VA window: the whole user address space.
fn gpuva() -> Span {
    Span::new(0, TASK_SIZE).expect("0 < TASK_SIZE")
}

/// Handles a GPU page fault of device `dev` at `addr`.
///
/// # Errors
///
/// `ENOENT` (no VMA), `EPERM` (write to read-only memory), `EACCES` (atomics where device memory
/// cannot be used), `ENODEV` (device removed or VM closed), `EINVAL` (unknown device), or the
/// last error after [`MAX_ATTEMPTS`].
pub fn handle_gpu_fault(vm: &GpuVm, dev: u32, addr: u64, access: Access) -> Result {
    let shared = &vm.shared;
    let d = shared.device(dev).ok_or(code::EINVAL)?;
    if d.removed.load(Ordering::SeqCst) {
        return Err(code::ENODEV);
    }
    shared.stat(vm.pid, |s| s.gpu_faults += 1);
    let mut g = vm.lock();
    let svm = g.as_mut().ok_or(code::ENODEV)?;
    let t0 = Instant::now();
    let r = service(vm, svm, dev, addr, access, Placement::Auto).map(|_| ());
    let ns = t0.elapsed().as_nanos() as u64;
    shared.stat(vm.pid, |s| s.core_ns += ns);
    r
}

/// Prefetch (Xe's prefetch bind): migrates `span` to VRAM of `dev` (or to RAM) and creates the
/// GPU mappings of device `dev`.
///
/// # Errors
///
/// As [`handle_gpu_fault`], for the first range that fails.
pub fn prefetch(vm: &GpuVm, dev: u32, span: Span, to_vram: bool) -> Result {
    let d = vm.shared.device(dev).ok_or(code::EINVAL)?;
    if d.removed.load(Ordering::SeqCst) {
        return Err(code::ENODEV);
    }
    let mut g = vm.lock();
    let svm = g.as_mut().ok_or(code::ENODEV)?;
    let placement = if to_vram {
        Placement::Vram(dev)
    } else {
        Placement::Ram
    };
    let mut addr = span.start();
    while addr < span.end() {
        let end = service(vm, svm, dev, addr, Access::Read, placement)?;
        addr = end.max(addr + PAGE);
    }
    Ok(())
}

/// Finds or creates the range at `addr`, places it, maps it and commits the GPU PTEs of `dev`.
/// Returns the range's end.
fn service(
    vm: &GpuVm,
    svm: &mut Svm<SimDriver>,
    dev: u32,
    addr: u64,
    access: Access,
    placement: Placement,
) -> Result<u64> {
    let shared = &vm.shared;
    let cfg = &vm.cfg;
    let attrs = vm.attrs_at(addr);
    let atomic = access == Access::Atomic;
    if atomic && attrs.atomic == AtomicMode::Cpu {
        return Err(code::EACCES);
    }
    let usable = |k: u32| {
        shared
            .device(k)
            .is_some_and(|d| !d.removed.load(Ordering::SeqCst))
    };
    let target = match (placement, attrs.preferred) {
        (Placement::Vram(k), _) => Some(k),
        (Placement::Ram, _) => None,
        (Placement::Auto, Preferred::Dev(k)) if usable(k) => Some(k),
        (Placement::Auto, Preferred::Ram) if !atomic => None,
        (Placement::Auto, _) => Some(dev),
    }
    .filter(|k| usable(*k));
    let mut ctx = Ctx {
        device_private_owner: shared.owner(dev),
        check_pages_threshold: cfg.check_pages_threshold,
        timeslice_ms: if atomic { cfg.atomic_timeslice_ms } else { 0 },
        read_only: false,
        devmem_possible: true,
        devmem_only: atomic,
        allow_mixed: false,
    };
    let mut migrate_attempts = 0;
    let mut migrated = false;
    let mut last: Error = code::EBUSY;
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            shared.stat(vm.pid, |s| s.retries += 1);
        }
        garbage_collect(svm, cfg);
        let before = svm.num_ranges();
        let range = match svm.range_find_or_insert(addr, gpuva(), &ctx) {
            Ok(r) => {
                if svm.num_ranges() > before {
                    shared.stat(vm.pid, |s| s.ranges_created += 1);
                }
                r
            }
            Err(e) if e == code::EPERM && access == Access::Read && !ctx.read_only => {
                ctx.read_only = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        if range
            .flags()
            .intersects(RangeFlags::UNMAPPED | RangeFlags::REMOVED)
        {
            last = code::EAGAIN;
            continue;
        }
        let devmem_ok = range.flags().contains(RangeFlags::MIGRATE_DEVMEM);
        if atomic && !devmem_ok {
            return Err(code::EACCES);
        }
        let data = range.data();
        let (Some(pages), Some(ro)) = (
            data.pages.get(dev as usize),
            data.read_only.get(dev as usize),
        ) else {
            return Err(code::EINVAL);
        };
        if !ctx.read_only && ro.load(Ordering::SeqCst) {
            // Upgrade a read-only mapping: remap for writing.
            svm.unmap_pages(pages);
            ro.store(false, Ordering::SeqCst);
        }

        if placement == Placement::Ram && !migrated {
            migrated = true;
            let _ = svm.range_evict(&range);
        }
        let big_enough = range.size() >= cfg.migrate_min || atomic || placement != Placement::Auto;
        if let (Some(t), false, true, true) = (target, migrated, devmem_ok, big_enough) {
            migrated = true;
            if let Err(e) = migrate(vm, svm, &range, t, ctx.timeslice_ms) {
                if e == code::ENODEV && placement != Placement::Auto {
                    return Err(e);
                }
                if atomic {
                    atomic_backoff(&mut migrate_attempts, &mut ctx)?;
                    migrated = false;
                    last = e;
                    continue;
                }
                // Otherwise fall back to system memory.
            }
        }

        match svm.range_get_pages(&range, pages, &ctx) {
            Ok(()) => {}
            Err(e) if e == code::EOPNOTSUPP => {
                let _ = svm.range_evict(&range);
                last = e;
                continue;
            }
            Err(e) if (e == code::EFAULT || e == code::EPERM) && !svm.range_within_vma(&range) => {
                // The VMA under the range changed shape (mprotect, mremap): the fault may have
                // failed on another part of it. Drop the range; the retry creates one that fits.
                crate::driver::unbind_and_remove(svm, &range);
                last = e;
                continue;
            }
            Err(e) if e == code::EFAULT && atomic => {
                atomic_backoff(&mut migrate_attempts, &mut ctx)?;
                migrated = false;
                last = e;
                continue;
            }
            Err(e)
                if e == code::EFAULT
                    || e == code::EPERM
                    || e == code::EBUSY
                    || e == code::EAGAIN =>
            {
                last = e;
                continue;
            }
            Err(e) => return Err(e),
        }

        // Commit under the notifier lock.
        let committed = {
            let nl = svm.notifier_lock();
            if !svm.pages_valid(&nl, pages)
                || range
                    .flags()
                    .intersects(RangeFlags::UNMAPPED | RangeFlags::REMOVED)
            {
                false
            } else {
                let d = shared.device(dev).ok_or(code::EINVAL)?;
                svm.pages_entries(&nl, pages, |entries| {
                    write_ptes(&d.pts, vm.pid, range.start(), entries, ctx.read_only)
                })
                .is_some()
            }
        };
        if !committed {
            last = code::EAGAIN;
            continue;
        }
        ro.store(ctx.read_only, Ordering::SeqCst);
        return Ok(range.end());
    }
    Err(last)
}

/// Counts one failed attempt to get an atomic range into device memory and doubles the
/// timeslice for the next; `EACCES` once `ATOMIC_MIGRATE_ATTEMPTS` are spent.
fn atomic_backoff(attempts: &mut u32, ctx: &mut Ctx) -> Result {
    *attempts += 1;
    if *attempts >= ATOMIC_MIGRATE_ATTEMPTS {
        return Err(code::EACCES);
    }
    ctx.timeslice_ms = ctx.timeslice_ms.saturating_mul(2).max(1);
    Ok(())
}

/// Migrates `range` to VRAM of `target` unless it is already there.
fn migrate(
    vm: &GpuVm,
    svm: &Svm<SimDriver>,
    range: &RangeRef<SimDriver>,
    target: u32,
    timeslice_ms: u64,
) -> Result {
    let d = vm.shared.device(target).ok_or(code::EINVAL)?;
    let pm = &d.pagemap;
    if svm.scan_mm(range, Some(pm.owner()), Some(pm.pgmap())) == ScanResult::Equal {
        return Ok(());
    }
    populate_mm::<SimDriver>(pm, range.span(), &vm.mm, timeslice_ms)
}

/// Writes one GPU PTE per page described by `entries` (packed by order) from `start`.
fn write_ptes(
    pts: &std::sync::Mutex<
        std::collections::BTreeMap<u32, std::collections::BTreeMap<u64, GpuPte>>,
    >,
    pid: u32,
    start: u64,
    entries: &[DmaEntry],
    read_only: bool,
) {
    let mut pts = lock(pts);
    let pt = pts.entry(pid).or_default();
    let mut vpn = start / PAGE;
    for e in entries {
        if e.is_hole() {
            vpn += 1u64 << e.order();
            continue;
        }
        let atomic = e.proto() != gpusvm_core::Protocol::SYSTEM;
        for k in 0..(1u64 << e.order()) {
            if let Ok(sub) = DmaEntry::encode(e.addr() + k * PAGE, e.proto(), 0, e.dir()) {
                pt.insert(
                    vpn,
                    GpuPte {
                        entry: sub,
                        write: !read_only,
                        atomic,
                    },
                );
            }
            vpn += 1;
        }
    }
}
