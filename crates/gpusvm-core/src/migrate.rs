//! Device-memory migration: to device, back on CPU fault, and eviction (`drm_pagemap`).
//!
//! C source: [`drivers/gpu/drm/drm_pagemap.c`] (brief §6.2–§6.5).
//!
//! # Migration to device ([`migrate_to_devmem`])
//!
//! ```text
//! check the VMA (ENOENT / EINVAL / EBUSY)          allocate buffers; the allocation gets a tracker
//! migrate_vma_setup (collect + isolate sources)   all collected? else EBUSY (all or nothing)
//! all sources already in this pagemap? ─► done     some? EBUSY, unless same-pagemap moves or the
//!                                                  "only missing" policy are enabled
//! populate_pfns; for each page choose a copier, initialize the destination device page
//! plan the copies (plan.rs) and run them: map sources, copy, unmap
//! migrate_vma_pages; every page moved? else EBUSY; migrate_vma_finalize
//! ```
//!
//! The allocation handle passed in is always consumed (upstream leaks it on one early error path
//! and releases it on others, brief §9 item 14): it is dropped on failure, or owned by the
//! tracker that its device pages keep alive.
//!
//! # State of a device page
//!
//! ```text
//!            device_page_init            migrate_vma_pages + finalize
//!  free ─────────────────────► locked dst ─────────────────────────► mapped (CPU: device-private
//!   ▲                              │ copy failed / not moved               entry; GPU: device_map)
//!   │ device_page_free             ▼                                        │ CPU fault after the
//!   └──────────────────────── put_locked_page / finalize frees it ◄─────────┘ timeslice, eviction,
//!                                                                            munmap, exit
//! ```
//!
//! # Back to RAM
//!
//! [`migrate_to_ram`] is the CPU-fault op: it respects the timeslice (returns without migrating
//! before it expires; the CPU re-faults), migrates the window of the allocation's size around the
//! fault (clamped to the VMA), and moves only pages of the faulting page's allocation. Partial
//! success is legal. [`evict_to_ram`] moves a whole allocation back without the mmap lock, up to
//! three attempts, and succeeds once the allocation is detached.

use crate::addr::{align_down, is_aligned, Span};
use crate::allocator::KArray;
use crate::devmem::{tracker_of, CopyBatch, DevmemAllocation, TrackerRef};
use crate::dma::{DmaDevice, DmaDirection, DmaEntry, Protocol};
use crate::driver::SvmDriver;
use crate::error::{code, Result};
use crate::mm::{
    Clock, MigratePfn, MigrateSelect, MigrateVma, Mm, MmUser, MmapReadGuard, PageKind,
};
use crate::pagemap::Pagemap;
use crate::plan::{plan, Copier, PageFact};

/// Xe's largest copy: 8 MiB.
pub const DEFAULT_MAX_COPY_BYTES: u64 = 8 << 20;

/// Attempts of [`evict_to_ram`].
pub const EVICT_ATTEMPTS: usize = 3;

/// Options of a migration to device memory (`struct drm_pagemap_migrate_details` and policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrateDetails {
    /// Minimum device residency after the migration, in milliseconds.
    pub timeslice_ms: u64,
    /// The copy engine can move pages within one pagemap.
    pub can_migrate_same_pagemap: bool,
    /// For pages on a peer device, the peer's `copy_to_ram` copies instead of our
    /// `copy_to_devmem`.
    pub source_peer_migrates: bool,
    /// Migrate only the pages not already in this pagemap, leaving those in place (upstream
    /// refuses with `EBUSY`). The pages then belong to several allocations, so `get_pages` needs
    /// `allow_mixed`.
    pub only_missing: bool,
    /// Largest copy call in bytes (split point of the planner).
    pub max_copy_bytes: u64,
}

impl Default for MigrateDetails {
    fn default() -> Self {
        Self {
            timeslice_ms: 0,
            can_migrate_same_pagemap: false,
            source_peer_migrates: false,
            only_missing: false,
            max_copy_bytes: DEFAULT_MAX_COPY_BYTES,
        }
    }
}

/// The per-page buffers of one migration (one `kvcalloc` upstream).
struct Buffers<D: SvmDriver> {
    src: KArray<MigratePfn, D::Alloc>,
    dst: KArray<MigratePfn, D::Alloc>,
    dma: KArray<DmaEntry, D::Alloc>,
    facts: KArray<PageFact, D::Alloc>,
    devpfn: KArray<u64, D::Alloc>,
}

impl<D: SvmDriver> Buffers<D> {
    fn new(npages: usize, alloc: &D::Alloc) -> Result<Self> {
        Ok(Self {
            src: KArray::try_new(npages, MigratePfn(0), alloc.clone())?,
            dst: KArray::try_new(npages, MigratePfn(0), alloc.clone())?,
            dma: KArray::try_new(npages, DmaEntry::NONE, alloc.clone())?,
            facts: KArray::try_new(npages, PageFact::SKIP, alloc.clone())?,
            devpfn: KArray::try_new(npages, 0, alloc.clone())?,
        })
    }
}

/// Unmaps the DMA entries `dma[first..first + n]`: system ones through `dev`, device ones through
/// `pagemap`.
fn unmap_slots<D: SvmDriver>(
    dma: &mut [DmaEntry],
    dev: &D::Dma,
    pagemap: Option<&D::Pagemap>,
    first: usize,
    n: usize,
) {
    let end = first.saturating_add(n);
    for e in dma.get_mut(first..end).unwrap_or_default() {
        if e.is_none() {
            continue;
        }
        if e.proto() == Protocol::SYSTEM {
            dev.unmap_page(e.addr(), e.order(), e.dir());
        } else if let Some(pm) = pagemap {
            pm.device_unmap(dev, *e);
        }
        *e = DmaEntry::NONE;
    }
}

/// DMA-maps a system page for `dev`.
fn map_system(dev: &impl DmaDevice, pfn: u64, dir: DmaDirection) -> Result<DmaEntry> {
    let addr = dev.map_page(pfn, 0, dir)?;
    DmaEntry::encode(addr, Protocol::SYSTEM, 0, dir).inspect_err(|_| dev.unmap_page(addr, 0, dir))
}

/// Puts every destination page prepared so far and clears the entries (error unwinding).
fn put_destinations<M: Mm>(mm: &M, dst: &mut [MigratePfn]) {
    for d in dst.iter_mut() {
        if let Some(pfn) = d.pfn() {
            mm.put_locked_page(pfn);
        }
        *d = MigratePfn(0);
    }
}

fn max_pages(details: &MigrateDetails, page_size: u64) -> usize {
    usize::try_from(details.max_copy_bytes / page_size.max(1))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// `drm_pagemap_migrate_to_devmem`: migrates `span` of the locked mm into `devmem`.
///
/// The allocation handle is consumed in every case. The caller holds the mmap lock (`lock`) and
/// a user reference on the mm.
///
/// # Errors
///
/// - `EINVAL`: `span` not page aligned, not inside one VMA, or larger than the allocation.
/// - `ENOENT`: no VMA at `span.start()`.
/// - `EBUSY`: the VMA is not anonymous (or is hugetlb); not every page could be collected; some
///   pages are already in this pagemap and neither same-pagemap moves nor `only_missing` are
///   enabled; the allocation was used by an earlier migration; pages raced away while
///   finalizing.
/// - `ENOMEM`, and errors of `populate_pfns`, the copies, and `migrate_vma_setup`.
pub fn migrate_to_devmem<D: SvmDriver>(
    devmem: D::Devmem,
    lock: &MmapReadGuard<'_, D::Mm>,
    span: Span,
    details: &MigrateDetails,
) -> Result {
    let mm = lock.mm();
    let (page, alloc) = {
        let env = devmem.state().env();
        (env.page, env.alloc.clone())
    };
    if !is_aligned(span.start(), page.size()) || !is_aligned(span.end(), page.size()) {
        return Err(code::EINVAL);
    }
    let vma = mm.vma_lookup(lock, span.start()).ok_or(code::ENOENT)?;
    if span.start() < vma.start || span.end() > vma.end {
        return Err(code::EINVAL);
    }
    if !vma.migratable() {
        return Err(code::EBUSY);
    }
    let npages = usize::try_from(page.pages(span.len())).map_err(|_| code::EINVAL)?;
    if page.pages(span.len()) > devmem.state().npages() {
        return Err(code::EINVAL);
    }
    let mut buf = Buffers::<D>::new(npages, &alloc)?;
    let tracker = TrackerRef::<D>::new(devmem)?;
    let devmem = tracker.devmem();
    let state = devmem.state();
    let pagemap = state.pagemap();
    let own = pagemap.pgmap();

    let Buffers {
        src,
        dst,
        dma,
        facts,
        devpfn,
    } = &mut buf;
    let mut args = MigrateVma {
        start: span.start(),
        end: span.end(),
        src,
        dst,
        cpages: 0,
        select: MigrateSelect::SYSTEM
            | MigrateSelect::DEVICE_PRIVATE
            | MigrateSelect::DEVICE_COHERENT,
        pgmap_owner: Some(pagemap.owner()),
        fault_page: None,
        cookie: 0,
    };
    mm.migrate_vma_setup(lock, &mut args)?;

    // Prepare destinations and copy. `Ok(n)`: `n` pages should move.
    let prepared = (|| -> Result<usize> {
        if args.cpages == 0 || args.cpages != npages {
            return Err(code::EBUSY);
        }
        let mut own_pages = 0usize;
        for s in args.src.iter() {
            if let Some(PageKind::Device { pgmap, .. }) = s.pfn().map(|p| mm.classify_page(p)) {
                if pgmap == own {
                    own_pages = own_pages.saturating_add(1);
                }
            }
        }
        if own_pages == npages {
            // Migration was not necessary.
            return Ok(0);
        }
        let same_allowed = details.can_migrate_same_pagemap && !details.only_missing;
        if own_pages > 0 && !same_allowed && !details.only_missing {
            return Err(code::EBUSY);
        }
        devmem.populate_pfns(devpfn)?;

        let mut expected = 0usize;
        for ((s, d), (fact, &dpfn)) in args
            .src
            .iter()
            .zip(args.dst.iter_mut())
            .zip(facts.iter_mut().zip(devpfn.iter()))
        {
            if !s.is_migrating() {
                continue;
            }
            let (copier, device_pfn) = match s.pfn().map(|p| (p, mm.classify_page(p))) {
                // A hole (never touched by the CPU) becomes a new device page without a copy:
                // the allocation's memory is cleared, which the pre-migrate fence orders.
                None => (Copier::Skip, dpfn),
                Some((_, PageKind::Device { pgmap, .. })) if pgmap == own && !same_allowed => {
                    continue
                }
                // A peer copies from its own (source) page into ours.
                Some((spfn, PageKind::Device { pgmap, .. }))
                    if pgmap != own && details.source_peer_migrates =>
                {
                    (Copier::Peer(pgmap.0), spfn)
                }
                Some((_, PageKind::OtherZoneDevice)) => return Err(code::EBUSY),
                Some(_) => (Copier::Local, dpfn),
            };
            mm.device_page_init(dpfn, tracker.get_for_page());
            *d = MigratePfn::from_pfn(dpfn);
            *fact = PageFact {
                copier,
                device_pfn,
                order: 0,
            };
            expected = expected.saturating_add(1);
        }

        let wait_fence = state.has_pre_migrate_fence();
        for batch in plan(facts, max_pages(details, page.size())) {
            let end = batch.first.saturating_add(batch.npages);
            let slots = batch.first..end;
            let result = match batch.copier {
                Copier::Skip => Ok(()),
                Copier::Local => {
                    // Map the sources for our device.
                    let mut mapped = Ok(());
                    for i in slots.clone() {
                        let (Some(s), Some(slot)) = (args.src.get(i), dma.get_mut(i)) else {
                            continue;
                        };
                        let Some(spfn) = s.pfn() else { continue };
                        let entry = match mm.classify_page(spfn) {
                            PageKind::Device { zone_data, .. } => {
                                // SAFETY: The source page is collected (isolated and locked) by
                                // migrate_vma_setup, so it and its tracker stay alive.
                                let peer = unsafe { tracker_of::<D>(zone_data) };
                                peer.devmem().state().pagemap().device_map(
                                    state.dev(),
                                    spfn,
                                    0,
                                    DmaDirection::ToDevice,
                                )
                            }
                            _ => map_system(state.dev(), spfn, DmaDirection::ToDevice),
                        };
                        match entry {
                            Ok(e) => *slot = e,
                            Err(e) => {
                                mapped = Err(e);
                                break;
                            }
                        }
                    }
                    let copied = mapped.and_then(|()| {
                        devmem.copy_to_devmem(&CopyBatch {
                            device_pfn: batch.device_pfn,
                            npages: batch.npages,
                            system: dma.get(slots.clone()).unwrap_or_default(),
                            wait_fence,
                        })
                    });
                    // Device-side source entries came from a peer pagemap; unmap each through
                    // the pagemap that mapped it.
                    for i in slots.clone() {
                        let pm = args.src.get(i).and_then(|s| s.pfn()).and_then(|p| {
                            match mm.classify_page(p) {
                                // SAFETY: As above: the source page is still collected.
                                PageKind::Device { zone_data, .. } => Some(
                                    unsafe { tracker_of::<D>(zone_data) }
                                        .devmem()
                                        .state()
                                        .pagemap()
                                        .clone(),
                                ),
                                _ => None,
                            }
                        });
                        unmap_slots::<D>(dma, state.dev(), pm.as_ref(), i, 1);
                    }
                    copied
                }
                Copier::Peer(_) => {
                    // The peer copies from its page into ours, which we map for the peer.
                    let peer = args
                        .src
                        .get(batch.first)
                        .and_then(|s| s.pfn())
                        .map(|p| mm.classify_page(p));
                    let Some(PageKind::Device { zone_data, .. }) = peer else {
                        return Err(code::EBUSY);
                    };
                    // SAFETY: The peer's source page is collected, keeping its tracker alive.
                    let peer = unsafe { tracker_of::<D>(zone_data) }.devmem();
                    let peer_dev = peer.state().dev();
                    let mut mapped = Ok(());
                    for i in slots.clone() {
                        let (Some(&dpfn), Some(slot)) = (devpfn.get(i), dma.get_mut(i)) else {
                            continue;
                        };
                        match pagemap.device_map(peer_dev, dpfn, 0, DmaDirection::FromDevice) {
                            Ok(e) => *slot = e,
                            Err(e) => {
                                mapped = Err(e);
                                break;
                            }
                        }
                    }
                    let copied = mapped.and_then(|()| {
                        peer.copy_to_ram(&CopyBatch {
                            device_pfn: batch.device_pfn,
                            npages: batch.npages,
                            system: dma.get(slots.clone()).unwrap_or_default(),
                            wait_fence,
                        })
                    });
                    unmap_slots::<D>(dma, peer_dev, Some(pagemap), batch.first, batch.npages);
                    copied
                }
            };
            result?;
        }
        Ok(expected)
    })();

    if prepared.is_err() {
        put_destinations(mm, args.dst);
    }
    mm.migrate_vma_pages(&mut args);
    let moved = args
        .src
        .iter()
        .zip(args.dst.iter())
        .filter(|(s, d)| s.is_migrating() && d.pfn().is_some())
        .count();
    mm.migrate_vma_finalize(&mut args);
    let expected = prepared?;
    if moved < expected {
        return Err(code::EBUSY);
    }
    if expected > 0 {
        state.drop_pre_migrate_fence();
        let now = state.env().clock.now_ms();
        state.set_timeslice_expiration_ms(now.saturating_add(details.timeslice_ms));
    }
    drop(tracker);
    Ok(())
}

/// The CPU-fault op (`migrate_to_ram` of `dev_pagemap_ops`): the CPU touched the device page
/// `fault_pfn` at `fault_addr`; `zone_data` is that page's zone-device data.
///
/// Before the allocation's timeslice expires this returns `Ok` without migrating (the CPU
/// re-faults). Otherwise it migrates the pages of the faulting page's allocation in the window
/// of the allocation's size (rounded up to a power of two) around the fault, clamped to the
/// VMA. Core mm only needs the faulting page to move; others may stay.
///
/// # Errors
///
/// `EFAULT` if there is no VMA at the address; `ENOMEM`; copy and `migrate_vma_setup` errors.
/// The backend reports any error as `VM_FAULT_SIGBUS`.
///
/// # Safety
///
/// `zone_data` is the zone-device data the core stored for the page `fault_pfn`, and the fault
/// handler holds a reference on that page for the duration of the call (which keeps the page,
/// and so its allocation tracker, from being freed). The page need not be locked: Linux 6.12's
/// `do_swap_page` only takes a reference, and the core never relies on the page lock here
/// (`migrate_vma_setup` locks the pages it collects itself; newer kernels that lock the
/// faulting page first tell it so through `fault_page`).
pub unsafe fn migrate_to_ram<D: SvmDriver>(
    lock: &MmapReadGuard<'_, D::Mm>,
    fault_addr: u64,
    fault_pfn: u64,
    zone_data: usize,
) -> Result {
    // SAFETY: The faulting page is held by the caller, and it keeps its tracker alive; the new
    // reference keeps it alive past the page's possible free during the migration.
    let tracker = unsafe { tracker_of::<D>(zone_data) }.get();
    let devmem = tracker.devmem();
    let state = devmem.state();
    let env = state.env();
    if env.clock.now_ms() < state.timeslice_expiration_ms() {
        return Ok(());
    }
    let mm = lock.mm();
    let page = env.page;
    let size = state
        .size()
        .checked_next_power_of_two()
        .unwrap_or(state.size());
    let vma = mm.vma_lookup(lock, fault_addr).ok_or(code::EFAULT)?;
    let start = align_down(fault_addr, size).max(vma.start);
    let end = align_down(fault_addr, size)
        .saturating_add(size)
        .min(vma.end);
    let span = Span::new(
        align_down(start, page.size()),
        crate::addr::align_up(end, page.size()).ok_or(code::EFAULT)?,
    )?;
    let npages = usize::try_from(page.pages(span.len())).map_err(|_| code::ENOMEM)?;
    let mut buf = Buffers::<D>::new(npages, &env.alloc)?;
    let Buffers {
        src,
        dst,
        dma,
        facts,
        ..
    } = &mut buf;
    let mut args = MigrateVma {
        start: span.start(),
        end: span.end(),
        src,
        dst,
        cpages: 0,
        select: MigrateSelect::DEVICE_PRIVATE | MigrateSelect::DEVICE_COHERENT,
        pgmap_owner: Some(state.pagemap().owner()),
        fault_page: Some(fault_pfn),
        cookie: 0,
    };
    mm.migrate_vma_setup(lock, &mut args)?;

    let result = (|| -> Result {
        if args.cpages == 0 {
            // Another CPU fault won the race.
            return Ok(());
        }
        let mut addr = span.start();
        for ((s, d), (slot, fact)) in args
            .src
            .iter()
            .zip(args.dst.iter_mut())
            .zip(dma.iter_mut().zip(facts.iter_mut()))
        {
            let this = addr;
            addr = addr.saturating_add(page.size());
            if !s.is_migrating() {
                continue;
            }
            let Some(spfn) = s.pfn() else { continue };
            match mm.classify_page(spfn) {
                PageKind::Device { zone_data: z, .. } if z == zone_data => {}
                _ => continue,
            }
            let sys = mm.alloc_system_page(Some(this), 0)?;
            *d = MigratePfn::from_pfn(sys);
            *slot = map_system(state.dev(), sys, DmaDirection::FromDevice)?;
            *fact = PageFact {
                copier: Copier::Local,
                device_pfn: spfn,
                order: 0,
            };
        }
        for batch in plan(facts, max_pages(&MigrateDetails::default(), page.size())) {
            let end = batch.first.saturating_add(batch.npages);
            devmem.copy_to_ram(&CopyBatch {
                device_pfn: batch.device_pfn,
                npages: batch.npages,
                system: dma.get(batch.first..end).unwrap_or_default(),
                wait_fence: false,
            })?;
        }
        Ok(())
    })();

    let n = dma.len();
    unmap_slots::<D>(dma, state.dev(), None, 0, n);
    if result.is_err() {
        put_destinations(mm, args.dst);
    }
    mm.migrate_vma_pages(&mut args);
    mm.migrate_vma_finalize(&mut args);
    drop(tracker);
    result
}

/// `drm_pagemap_evict_to_ram`: moves every page of `devmem` back to system memory, without the
/// mmap lock (collecting device pages by frame). Up to [`EVICT_ATTEMPTS`] attempts; succeeds as
/// soon as the allocation is detached (no device page left), ignoring the timeslice.
///
/// # Errors
///
/// `EFAULT` if the mm is exiting; the last attempt's error, or `EBUSY` if pages remain.
pub fn evict_to_ram<D: SvmDriver>(devmem: &D::Devmem) -> Result {
    let state = devmem.state();
    if !state.is_attached() {
        // Never attached (nothing to move) or already detached.
        return Ok(());
    }
    let env = state.env();
    let mm = &env.mm;
    let npages = usize::try_from(state.npages()).map_err(|_| code::ENOMEM)?;
    let mut last = Err(code::EBUSY);
    for _ in 0..EVICT_ATTEMPTS {
        let user = MmUser::get(mm).ok_or(code::EFAULT)?;
        let attempt = (|| -> Result {
            let mut buf = Buffers::<D>::new(npages, &env.alloc)?;
            let Buffers {
                src,
                dst,
                dma,
                facts,
                devpfn,
            } = &mut buf;
            devmem.populate_pfns(devpfn)?;
            for (s, &p) in src.iter_mut().zip(devpfn.iter()) {
                *s = MigratePfn::from_pfn(p);
            }
            mm.migrate_device_pfns(src)?;
            let copied = (|| -> Result {
                for ((s, d), (slot, fact)) in src
                    .iter()
                    .zip(dst.iter_mut())
                    .zip(dma.iter_mut().zip(facts.iter_mut()))
                {
                    if !s.is_migrating() {
                        continue;
                    }
                    let Some(spfn) = s.pfn() else { continue };
                    let sys = mm.alloc_system_page(None, 0)?;
                    *d = MigratePfn::from_pfn(sys);
                    *slot = map_system(state.dev(), sys, DmaDirection::FromDevice)?;
                    *fact = PageFact {
                        copier: Copier::Local,
                        device_pfn: spfn,
                        order: 0,
                    };
                }
                for batch in plan(
                    facts,
                    max_pages(&MigrateDetails::default(), env.page.size()),
                ) {
                    let end = batch.first.saturating_add(batch.npages);
                    devmem.copy_to_ram(&CopyBatch {
                        device_pfn: batch.device_pfn,
                        npages: batch.npages,
                        system: dma.get(batch.first..end).unwrap_or_default(),
                        wait_fence: false,
                    })?;
                }
                Ok(())
            })();
            let n = dma.len();
            unmap_slots::<D>(dma, state.dev(), None, 0, n);
            if copied.is_err() {
                put_destinations(mm, dst);
            }
            mm.migrate_device_pages(src, dst);
            mm.migrate_device_finalize(src, dst);
            copied
        })();
        drop(user);
        if state.is_detached() {
            return Ok(());
        }
        last = attempt.and(Err(code::EBUSY));
    }
    last
}

/// Device removal (brief §9 item 10): once the pagemap refuses new population (its
/// `populate_mm` returns `ENODEV`), move every allocation still on the device back to RAM.
/// Returns the first error, after trying every allocation.
///
/// # Errors
///
/// The first [`evict_to_ram`] error.
pub fn evict_all<D: SvmDriver>(allocations: impl IntoIterator<Item = D::Devmem>) -> Result {
    let mut first = Ok(());
    for devmem in allocations {
        let r = evict_to_ram::<D>(&devmem);
        if first.is_ok() {
            first = r;
        }
    }
    first
}
