//! The core's `Mm` trait on the simulated address space, including `hmm_range_fault`.
//!
//! Every method is a scheduling point (`sched::yield_now`), so concurrent scenarios interleave
//! at each backend call. `hmm_range_fault` follows `mm/hmm.c`: it fails with `EBUSY` when the
//! notifier's sequence moved (`mmu_interval_check_retry`) or a migration entry is in the way,
//! reports device-private pages in place only for the requested owner (others are faulted, which
//! migrates them to RAM through their pagemap), faults missing or read-only pages when asked,
//! and reports the order of huge mappings. Each call advances the virtual clock by a millisecond.

use gpusvm_core::{
    code, HmmPfn, HmmRange, IntervalNotifier, MigratePfn, MigrateVma, Mm, MmapReadGuard, PageKind,
    Result, VmaInfo,
};

use crate::inject::Site;
use crate::mem::{pgmap_of, FrameKind, PAGE};
use crate::mm::fault::CpuFault;
use crate::mm::{Pte, SimMm, SimNotifier};
use crate::sched;

/// Bound on faults per page inside one `hmm_range_fault` (each fault either resolves the page or
/// advances the clock).
const MAX_FAULTS_PER_PAGE: u32 = 10_000;

// SAFETY: Device frames are reported with the zone data given to `device_page_init` until their
// last reference goes (then the core's page-free entry is called and the frame disappears);
// pages reported by `hmm_range_fault` stay mapped until an invalidation of their address, since
// every PTE change is bracketed by one; migrations follow the kernel's protocol (destinations are
// installed or put by `finalize`).
unsafe impl Mm for SimMm {
    type Notifier = SimNotifier;

    fn mmget_not_zero(&self) -> bool {
        self.0.get_user()
    }

    unsafe fn mmput(&self) {
        self.0.put_user();
    }

    fn mmap_read_lock(&self) {
        sched::yield_now();
        gpusvm_core::RawRwLock::read_lock(&self.0.mmap_lock);
    }

    unsafe fn mmap_read_unlock(&self) {
        // SAFETY: The caller holds the read lock.
        unsafe { gpusvm_core::RawRwLock::read_unlock(&self.0.mmap_lock) };
    }

    fn vma_lookup(&self, _lock: &MmapReadGuard<'_, Self>, addr: u64) -> Option<VmaInfo> {
        self.0.vma(addr).map(|v| v.info())
    }

    fn find_vma_intersection(
        &self,
        _lock: &MmapReadGuard<'_, Self>,
        start: u64,
        end: u64,
    ) -> Option<VmaInfo> {
        self.0.st().vma_intersecting(start, end).map(|v| v.info())
    }

    fn hmm_range_fault(
        &self,
        _lock: &MmapReadGuard<'_, Self>,
        range: &mut HmmRange<'_, SimNotifier>,
    ) -> Result {
        sched::yield_now();
        let mm = &self.0;
        mm.shared.clock.advance(1);
        mm.shared.inject.check(Site::Hmm)?;
        let fault = range.default_flags & HmmPfn::REQ_FAULT != 0;
        let write = range.default_flags & HmmPfn::REQ_WRITE != 0;
        let mut addr = range.start;
        for slot in range.pfns.iter_mut() {
            let mut faults = 0;
            loop {
                if range.notifier.read_retry(range.notifier_seq) {
                    return Err(code::EBUSY);
                }
                // One look at the state for the VMA, the PTE and the exclusive mark.
                let (vma, pte, exclusive) = {
                    let st = mm.st();
                    let vpn = addr / PAGE;
                    (
                        st.vma(addr),
                        st.ptes.get(&vpn).copied(),
                        st.exclusive.contains(&vpn),
                    )
                };
                let Some(v) = vma.filter(|v| v.prot.readable()) else {
                    if fault {
                        return Err(code::EFAULT);
                    }
                    *slot = HmmPfn(HmmPfn::ERROR);
                    break;
                };
                if write && !v.prot.writable() {
                    return Err(code::EPERM);
                }
                let need_fault = match pte {
                    // A device-exclusive entry is restored by a fault; a snapshot sees nothing.
                    Some(Pte::Present { .. }) if exclusive => {
                        *slot = HmmPfn(0);
                        fault
                    }
                    Some(Pte::Present {
                        pfn,
                        write: w,
                        order,
                    }) => {
                        if write && !w {
                            true
                        } else {
                            *slot = HmmPfn::present(pfn, w, order);
                            false
                        }
                    }
                    Some(Pte::Device { pfn, write: w }) => {
                        let dev = crate::mem::device_of_pfn(pfn);
                        let owner = dev.and_then(|d| mm.shared.owner(d));
                        // As the kernel does: the caller's own device pages are reported, not
                        // faulted, even when a write is requested and the entry is read-only
                        // (copy-on-write after fork); the caller must check the WRITE bit.
                        if owner.is_some() && owner == range.dev_private_owner {
                            *slot = HmmPfn::present(pfn, w, 0);
                            false
                        } else if fault {
                            true
                        } else {
                            *slot = HmmPfn(0);
                            false
                        }
                    }
                    Some(Pte::Migration { .. }) => {
                        // migration_entry_wait, then let the caller retry.
                        sched::yield_now();
                        return Err(code::EBUSY);
                    }
                    None if fault => true,
                    None => {
                        *slot = HmmPfn(0);
                        false
                    }
                };
                if !need_fault {
                    break;
                }
                faults += 1;
                if faults > MAX_FAULTS_PER_PAGE {
                    return Err(code::EFAULT);
                }
                match mm.handle_fault(addr, write) {
                    Ok(()) => {}
                    Err(CpuFault::Segv) => return Err(code::EFAULT),
                    Err(CpuFault::Sigbus(_)) => return Err(code::EFAULT),
                }
            }
            addr += PAGE;
        }
        Ok(())
    }

    fn classify_page(&self, pfn: u64) -> PageKind {
        match self.0.shared.frames.kind(pfn) {
            Some(FrameKind::Device { dev, zone_data }) => PageKind::Device {
                pgmap: pgmap_of(dev),
                zone_data,
                coherent: false,
            },
            _ => PageKind::System,
        }
    }

    fn migrate_vma_setup(
        &self,
        _lock: &MmapReadGuard<'_, Self>,
        args: &mut MigrateVma<'_>,
    ) -> Result {
        self.0.migrate_vma_setup(args)
    }

    fn migrate_vma_pages(&self, args: &mut MigrateVma<'_>) {
        self.0.migrate_vma_pages(args);
    }

    fn migrate_vma_finalize(&self, args: &mut MigrateVma<'_>) {
        self.0.migrate_vma_finalize(args);
    }

    fn migrate_device_pfns(&self, src: &mut [MigratePfn]) -> Result {
        self.0.migrate_device_pfns(src)
    }

    fn migrate_device_pages(&self, src: &mut [MigratePfn], dst: &mut [MigratePfn]) {
        self.0.migrate_device_pages(src, dst);
    }

    fn migrate_device_finalize(&self, src: &mut [MigratePfn], dst: &mut [MigratePfn]) {
        self.0.migrate_device_finalize(src, dst);
    }

    fn device_page_init(&self, pfn: u64, zone_data: usize) {
        let dev = crate::mem::device_of_pfn(pfn).unwrap_or(0);
        self.0.shared.frames.init_device(pfn, dev, zone_data);
    }

    fn alloc_system_page(&self, _addr: Option<u64>, order: u32) -> Result<u64> {
        self.0.shared.inject.check(Site::AllocPage)?;
        let frames = &self.0.shared.frames;
        Ok(if order == 0 {
            frames.alloc_system()
        } else {
            frames.alloc_system_run(1 << order)
        })
    }

    fn put_locked_page(&self, pfn: u64) {
        let freed = self.0.shared.frames.put(pfn);
        self.0.release(freed);
    }
}
