//! CPU page faults and CPU accesses (`handle_mm_fault` and friends).
//!
//! A fault resolves one page for a read or a write:
//! - no PTE: a new zeroed page (a 2 MiB run for THP/hugetlb VMAs where the aligned block fits and
//!   is empty; the object's page for shared memory);
//! - a read-only PTE on a write: copy-on-write (or just make it writable when we are the only
//!   mapper), bracketed by a `Clear` invalidation when the page changes;
//! - a device-private entry: `do_swap_page`, which calls the core's `migrate_to_ram` through the
//!   page's pagemap; inside the allocation's timeslice nothing moves and the CPU re-faults — each
//!   re-fault advances the virtual clock by a millisecond, so the timeslice always ends;
//! - a migration entry: wait for the migration to finish.
//!
//! A CPU access checks the VMA and the PTE under the page-table lock and touches the frame's
//! bytes while still holding it, so a migration (which converts the PTE under the same lock
//! before copying) can never miss a write.

use std::sync::Arc;

use gpusvm_core::{code, Error, MmapReadGuard, MmuEvent};

use crate::mem::{FrameKind, Pfn, HUGE_PAGES, PAGE};
use crate::mm::{MapKind, ProcMm, Pte, SimMm, Vma};
use crate::sched;
use crate::shared::lock;

/// Why a CPU access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuFault {
    /// No VMA, or the VMA forbids the access.
    Segv,
    /// The fault handler failed (a device page could not be migrated back).
    Sigbus(Error),
}

/// Upper bound on fault retries for one page (a re-faulting CPU inside a timeslice advances the
/// clock each time, so this is only reached by a bug).
const MAX_REFAULTS: u32 = 100_000;

/// A CPU access buffer.
pub enum Buf<'a> {
    /// Read into.
    Read(&'a mut [u8]),
    /// Write from.
    Write(&'a [u8]),
}

impl ProcMm {
    /// Resolves one fault at `addr` for a read or a write. The caller holds the mmap lock for
    /// reading and re-checks the PTE afterwards (a fault may race and need another round).
    pub(crate) fn handle_fault(self: &Arc<Self>, addr: u64, write: bool) -> Result<(), CpuFault> {
        self.shared.stat(self.pid, |s| s.cpu_faults += 1);
        let v = self.vma(addr).ok_or(CpuFault::Segv)?;
        if !v.prot.readable() || (write && !v.prot.writable()) {
            return Err(CpuFault::Segv);
        }
        if self.st().exclusive.contains(&(addr / PAGE)) {
            self.restore_exclusive(addr);
            return Ok(());
        }
        match self.pte(addr) {
            None => {
                self.fault_new_page(&v, addr);
                Ok(())
            }
            Some(Pte::Present { write: false, .. }) if write => {
                self.fault_cow(&v, addr);
                Ok(())
            }
            Some(Pte::Present { .. }) => Ok(()),
            Some(Pte::Device { pfn, .. }) => self.fault_device(addr, pfn),
            Some(Pte::Migration { .. }) => {
                sched::yield_now();
                Ok(())
            }
        }
    }

    fn fault_new_page(&self, v: &Vma, addr: u64) {
        let frames = &self.shared.frames;
        let vpn = addr / PAGE;
        if v.kind == MapKind::Shared {
            let idx = v.obj_page(addr);
            let pfn = {
                let mut objs = lock(&self.shared.objects);
                let obj = objs.entry(v.obj).or_default();
                *obj.pages
                    .entry(idx)
                    .or_insert_with(|| frames.alloc_system())
            };
            self.map_if_vacant(pfn, vpn, v.prot.writable());
            return;
        }
        let block = addr - addr % (PAGE * HUGE_PAGES);
        let block_fits = v.huge() && block >= v.start && block + PAGE * HUGE_PAGES <= v.end;
        if block_fits {
            let first = block / PAGE;
            let empty = self
                .st()
                .ptes
                .range(first..first + HUGE_PAGES)
                .next()
                .is_none();
            if empty {
                let run = frames.alloc_system_run(HUGE_PAGES);
                let mut st = self.st();
                let still_empty = st.ptes.range(first..first + HUGE_PAGES).next().is_none();
                for i in 0..HUGE_PAGES {
                    if still_empty {
                        frames.map(run + i, self.pid, first + i);
                        st.ptes.insert(
                            first + i,
                            Pte::Present {
                                pfn: run + i,
                                write: v.prot.writable(),
                                order: 9,
                            },
                        );
                    }
                    // Drop the allocation's reference; the mapping holds the frame.
                    let freed = frames.put(run + i);
                    debug_assert!(freed.is_none());
                }
                return;
            }
        }
        let pfn = frames.alloc_system();
        self.map_if_vacant(pfn, vpn, v.prot.writable());
        let freed = frames.put(pfn);
        debug_assert!(freed.is_none());
    }

    /// Maps `pfn` at `vpn` with a 4 KiB PTE unless another fault mapped the page meanwhile.
    fn map_if_vacant(&self, pfn: Pfn, vpn: u64, write: bool) {
        let mut st = self.st();
        if let std::collections::btree_map::Entry::Vacant(e) = st.ptes.entry(vpn) {
            self.shared.frames.map(pfn, self.pid, vpn);
            e.insert(Pte::Present {
                pfn,
                write,
                order: 0,
            });
        }
    }

    fn fault_cow(&self, v: &Vma, addr: u64) {
        let frames = &self.shared.frames;
        let vpn = addr / PAGE;
        let Some(Pte::Present { pfn, order, .. }) = self.pte(addr) else {
            return;
        };
        if order > 0 {
            Self::split_folio(&mut self.st(), vpn - vpn % HUGE_PAGES);
        }
        // The only mapper, nothing pinned, or shared memory: reuse the page.
        if v.kind == MapKind::Shared || frames.refs(pfn) == 1 {
            if let Some(Pte::Present { write, pfn: p, .. }) = self.st().ptes.get_mut(&vpn) {
                if *p == pfn {
                    *write = true;
                }
            }
            return;
        }
        let inv = self.invalidate_start(addr, addr + PAGE, MmuEvent::Clear, None, true);
        let new = frames.alloc_system();
        let freed = {
            let mut st = self.st();
            let same = matches!(st.ptes.get(&vpn), Some(Pte::Present { pfn: p, .. }) if *p == pfn);
            if same && frames.copy_page(pfn, new) {
                frames.map(new, self.pid, vpn);
                st.ptes.insert(
                    vpn,
                    Pte::Present {
                        pfn: new,
                        write: true,
                        order: 0,
                    },
                );
                frames.unmap(pfn, self.pid, vpn)
            } else {
                None
            }
        };
        let dropped = frames.put(new);
        drop(inv);
        self.release(freed.into_iter().chain(dropped));
    }

    fn fault_device(self: &Arc<Self>, addr: u64, pfn: u64) -> Result<(), CpuFault> {
        let frames = &self.shared.frames;
        let Some(FrameKind::Device { zone_data, .. }) = frames.kind(pfn) else {
            return Ok(());
        };
        self.shared.stat(self.pid, |s| s.cpu_device_faults += 1);
        // do_swap_page holds a reference on the device page while its pagemap migrates it.
        frames.get(pfn);
        let mm = SimMm(self.clone());
        // SAFETY: Every caller of `handle_fault` holds this mm's mmap lock for reading, and does
        // so until after this call.
        let guard = unsafe { MmapReadGuard::assume_held(&mm) };
        // SAFETY: `zone_data` is the core's data for `pfn`, which we hold a reference on.
        let r = unsafe {
            gpusvm_core::migrate_to_ram::<crate::driver::SimDriver>(&guard, addr, pfn, zone_data)
        };
        drop(guard);
        let freed = frames.put(pfn);
        self.release(freed);
        r.map_err(CpuFault::Sigbus)?;
        if matches!(self.pte(addr), Some(Pte::Device { pfn: p, .. }) if p == pfn) {
            // Still on the device: the timeslice has not expired. Time passes while the CPU
            // re-faults.
            self.shared.clock.advance(1);
        }
        Ok(())
    }

    /// A CPU read or write of `buf.len()` bytes at `addr`, faulting pages in as needed.
    ///
    /// # Errors
    ///
    /// [`CpuFault::Segv`] where the CPU would fault fatally, [`CpuFault::Sigbus`] if a device
    /// page could not be migrated back.
    pub fn cpu_access(self: &Arc<Self>, addr: u64, mut buf: Buf<'_>) -> Result<(), CpuFault> {
        let len = match &buf {
            Buf::Read(b) => b.len(),
            Buf::Write(b) => b.len(),
        } as u64;
        let write = matches!(buf, Buf::Write(_));
        let mut done = 0u64;
        while done < len {
            let a = addr.checked_add(done).ok_or(CpuFault::Segv)?;
            let off = (a % PAGE) as usize;
            let n = (PAGE - a % PAGE).min(len - done) as usize;
            let range = done as usize..done as usize + n;
            sched::yield_now();
            let _r = self.mmap_lock.read();
            let mut ok = false;
            for _ in 0..MAX_REFAULTS {
                {
                    let st = self.st();
                    let v = st.vma(a).ok_or(CpuFault::Segv)?;
                    if !v.prot.readable() || (write && !v.prot.writable()) {
                        return Err(CpuFault::Segv);
                    }
                    let exclusive = st.exclusive.contains(&(a / PAGE));
                    if let Some(Pte::Present { pfn, write: w, .. }) = st.ptes.get(&(a / PAGE)) {
                        if (!write || *w) && !exclusive {
                            let frames = &self.shared.frames;
                            ok = match &mut buf {
                                Buf::Read(b) => frames.read(*pfn, off, &mut b[range.clone()]),
                                Buf::Write(b) => frames.write(*pfn, off, &b[range.clone()]),
                            };
                            if ok {
                                break;
                            }
                        }
                    }
                }
                self.handle_fault(a, write)?;
            }
            if !ok {
                return Err(CpuFault::Sigbus(code::EFAULT));
            }
            done += n as u64;
        }
        Ok(())
    }
}
