//! `migrate_vma_*` and `migrate_device_*` (`mm/migrate_device.c`).
//!
//! Collection pins each source page and turns **every** mapping of it — found through the reverse
//! map, so a page shared copy-on-write after `fork` moves for both processes — into a migration
//! entry, inside an invalidation of the mapping's process. Holes of anonymous VMAs are collected
//! too (they become new pages). `pages` drops the sources whose destination is missing or whose
//! hole was filled meanwhile. `finalize` points every migration entry that is still there at the
//! new page (or back at the old one), drops the pins, and frees whatever is left unmapped; a
//! device page freed that way reaches the core's page-free entry. Moved pages are counted per
//! process and direction for the statistics.

use std::collections::BTreeMap;
use std::sync::Arc;

use gpusvm_core::{code, MigratePfn, MigrateSelect, MigrateVma, MmuEvent, Owner, Result};

use crate::inject::Site;
use crate::mem::{device_of_pfn, FrameKind, Freed, Pfn, Pid, PAGE};
use crate::mm::{ProcMm, Pte};
use crate::sched;

/// Pages moved by one finalize: per process, (to device, to RAM).
type Moved = BTreeMap<Pid, (u64, u64)>;

/// Counts one page of `pid` moved to `new` (a device page if `device`) and returns the PTE
/// that maps it.
fn moved_pte(moved: &mut Moved, pid: Pid, new: Pfn, write: bool, device: bool) -> Pte {
    let e = moved.entry(pid).or_default();
    if device {
        e.0 += 1;
        Pte::Device { pfn: new, write }
    } else {
        e.1 += 1;
        Pte::Present {
            pfn: new,
            write,
            order: 0,
        }
    }
}

impl ProcMm {
    /// Turns every mapping of `pfn` into a migration entry. The caller already invalidated
    /// `[inv_start, inv_end)` of this process (which covers `self`'s mapping); other processes'
    /// mappings are invalidated here. Returns false (nothing changed) if some mapping is not a
    /// plain mapping of `pfn` any more.
    fn collect_mappings(self: &Arc<Self>, pfn: Pfn, covered: Option<(u64, u64)>) -> bool {
        let shared = &self.shared;
        let maps = shared.frames.rmap(pfn);
        if maps.is_empty() {
            return false;
        }
        for (pid, vpn) in &maps {
            let Some(p) = shared.proc(*pid) else {
                return false;
            };
            let addr = vpn * PAGE;
            let inside = *pid == self.pid && covered.is_some_and(|(s, e)| s <= addr && addr < e);
            let inv = (!inside)
                .then(|| p.invalidate_start(addr, addr + PAGE, MmuEvent::Migrate, None, true));
            let ok = {
                let mut st = p.st();
                match st.ptes.get(vpn).copied() {
                    Some(Pte::Present { pfn: q, order, .. }) if q == pfn => {
                        if order > 0 {
                            Self::split_folio(&mut st, vpn - vpn % crate::mem::HUGE_PAGES);
                        }
                        let write =
                            matches!(st.ptes.get(vpn), Some(Pte::Present { write: true, .. }));
                        st.ptes.insert(*vpn, Pte::Migration { pfn, write });
                        true
                    }
                    Some(Pte::Device { pfn: q, write }) if q == pfn => {
                        st.ptes.insert(*vpn, Pte::Migration { pfn, write });
                        true
                    }
                    _ => false,
                }
            };
            drop(inv);
            if !ok {
                // Undo what was converted so far.
                self.restore_mappings(pfn);
                return false;
            }
        }
        true
    }

    /// Points every migration entry of `old` back at it.
    fn restore_mappings(&self, old: Pfn) {
        let device = matches!(self.shared.frames.kind(old), Some(FrameKind::Device { .. }));
        for (pid, vpn) in self.shared.frames.rmap(old) {
            let Some(p) = self.shared.proc(pid) else {
                continue;
            };
            let mut st = p.st();
            if let Some(Pte::Migration { pfn, write }) = st.ptes.get(&vpn).copied() {
                if pfn == old {
                    let pte = if device {
                        Pte::Device { pfn, write }
                    } else {
                        Pte::Present {
                            pfn,
                            write,
                            order: 0,
                        }
                    };
                    st.ptes.insert(vpn, pte);
                }
            }
        }
    }

    /// Points every migration entry of `old` at `new`, moving the mappings' references.
    fn move_mappings(&self, old: Pfn, new: Pfn, freed: &mut Vec<Freed>, moved: &mut Moved) {
        let frames = &self.shared.frames;
        let device = matches!(frames.kind(new), Some(FrameKind::Device { .. }));
        for (pid, vpn) in frames.rmap(old) {
            let Some(p) = self.shared.proc(pid) else {
                continue;
            };
            let mut st = p.st();
            let Some(Pte::Migration { pfn, write }) = st.ptes.get(&vpn).copied() else {
                continue;
            };
            if pfn != old {
                continue;
            }
            st.ptes
                .insert(vpn, moved_pte(moved, pid, new, write, device));
            frames.map(new, pid, vpn);
            freed.extend(frames.unmap(old, pid, vpn));
        }
    }

    fn account(&self, moved: Moved) {
        for (pid, (to_dev, to_ram)) in moved {
            self.shared.stat(pid, |s| {
                if to_dev > 0 {
                    s.migrations_to_vram += 1;
                    s.bytes_to_vram += to_dev * PAGE;
                }
                if to_ram > 0 {
                    s.migrations_to_ram += 1;
                    s.bytes_to_ram += to_ram * PAGE;
                }
            });
        }
    }

    fn owner_of(&self, pfn: Pfn) -> Option<Owner> {
        device_of_pfn(pfn).and_then(|d| self.shared.owner(d))
    }

    /// `migrate_vma_setup`.
    pub(crate) fn migrate_vma_setup(self: &Arc<Self>, args: &mut MigrateVma<'_>) -> Result {
        sched::yield_now();
        self.shared.inject.check(Site::MigrateSetup)?;
        let v = self.vma(args.start).ok_or(code::EINVAL)?;
        let npages = ((args.end - args.start) / PAGE) as usize;
        if args.end > v.end || args.src.len() < npages || args.dst.len() < npages {
            return Err(code::EINVAL);
        }
        let anon = v.info().migratable();
        let inv = self.invalidate_start(
            args.start,
            args.end,
            MmuEvent::Migrate,
            args.pgmap_owner,
            true,
        );
        let mut cpages = 0;
        for (i, s) in args.src.iter_mut().enumerate().take(npages) {
            *s = MigratePfn(0);
            let addr = args.start + i as u64 * PAGE;
            let pte = self.pte(addr);
            let (pfn, write) = match pte {
                Some(Pte::Present { pfn, write, .. })
                    if args.select.contains(MigrateSelect::SYSTEM)
                        && self.shared.frames.kind(pfn) == Some(FrameKind::System) =>
                {
                    (pfn, write)
                }
                Some(Pte::Device { pfn, write })
                    if (args.select.contains(MigrateSelect::DEVICE_PRIVATE)
                        && self.owner_of(pfn).is_some()
                        && self.owner_of(pfn) == args.pgmap_owner) =>
                {
                    (pfn, write)
                }
                None if anon && args.select.contains(MigrateSelect::SYSTEM) => {
                    *s = MigratePfn(MigratePfn::MIGRATE);
                    cpages += 1;
                    continue;
                }
                _ => continue,
            };
            self.shared.frames.get(pfn);
            if !self.collect_mappings(pfn, Some((args.start, args.end))) {
                let freed = self.shared.frames.put(pfn);
                self.release(freed);
                continue;
            }
            let mut bits = MigratePfn::from_pfn(pfn).0 | MigratePfn::MIGRATE;
            if write {
                bits |= MigratePfn::WRITE;
            }
            *s = MigratePfn(bits);
            cpages += 1;
        }
        drop(inv);
        args.cpages = cpages;
        Ok(())
    }

    /// `migrate_vma_pages`.
    pub(crate) fn migrate_vma_pages(&self, args: &mut MigrateVma<'_>) {
        sched::yield_now();
        for (i, (s, d)) in args.src.iter_mut().zip(args.dst.iter()).enumerate() {
            if !s.is_migrating() {
                continue;
            }
            let addr = args.start + i as u64 * PAGE;
            let keep = d.pfn().is_some() && (s.pfn().is_some() || self.pte(addr).is_none());
            if !keep {
                *s = MigratePfn(s.0 & !MigratePfn::MIGRATE);
            }
        }
    }

    /// `migrate_vma_finalize`.
    pub(crate) fn migrate_vma_finalize(&self, args: &mut MigrateVma<'_>) {
        let frames = &self.shared.frames;
        let mut freed = Vec::new();
        let mut moved = Moved::new();
        for (i, (s, d)) in args.src.iter().zip(args.dst.iter()).enumerate() {
            let addr = args.start + i as u64 * PAGE;
            let go = s.is_migrating() && d.pfn().is_some();
            match (s.pfn(), d.pfn()) {
                (Some(old), new) => {
                    match new.filter(|_| go) {
                        Some(new) => self.move_mappings(old, new, &mut freed, &mut moved),
                        None => self.restore_mappings(old),
                    }
                    freed.extend(frames.put(old));
                }
                (None, Some(new)) if go => {
                    let write = self.vma(addr).is_some_and(|v| v.prot.writable());
                    let device = matches!(frames.kind(new), Some(FrameKind::Device { .. }));
                    let mut st = self.st();
                    if let std::collections::btree_map::Entry::Vacant(slot) =
                        st.ptes.entry(addr / PAGE)
                    {
                        slot.insert(moved_pte(&mut moved, self.pid, new, write, device));
                        frames.map(new, self.pid, addr / PAGE);
                    }
                }
                _ => {}
            }
            if let Some(new) = d.pfn() {
                // The destination's "locked" reference; mapped pages keep their mappings'.
                freed.extend(frames.put(new));
            }
        }
        self.account(moved);
        self.release(freed);
    }

    /// `migrate_device_pfns`: collects device pages by frame, in whichever processes map them.
    pub(crate) fn migrate_device_pfns(self: &Arc<Self>, src: &mut [MigratePfn]) -> Result {
        sched::yield_now();
        self.shared.inject.check(Site::MigrateSetup)?;
        for s in src.iter_mut() {
            let Some(pfn) = s.pfn() else { continue };
            // Like the kernel: an entry that is not collected is cleared, so `finalize` knows
            // that every entry with a frame holds a collection reference.
            *s = MigratePfn(0);
            if !matches!(self.shared.frames.kind(pfn), Some(FrameKind::Device { .. })) {
                continue;
            }
            self.shared.frames.get(pfn);
            if self.collect_mappings(pfn, None) {
                *s = MigratePfn(MigratePfn::from_pfn(pfn).0 | MigratePfn::MIGRATE);
            } else {
                let freed = self.shared.frames.put(pfn);
                self.release(freed);
            }
        }
        Ok(())
    }

    /// `migrate_device_pages`.
    pub(crate) fn migrate_device_pages(&self, src: &mut [MigratePfn], dst: &[MigratePfn]) {
        for (s, d) in src.iter_mut().zip(dst.iter()) {
            if s.is_migrating() && d.pfn().is_none() {
                *s = MigratePfn(s.0 & !MigratePfn::MIGRATE);
            }
        }
    }

    /// `migrate_device_finalize`.
    pub(crate) fn migrate_device_finalize(&self, src: &[MigratePfn], dst: &[MigratePfn]) {
        let frames = &self.shared.frames;
        let mut freed = Vec::new();
        let mut moved = Moved::new();
        for (s, d) in src.iter().zip(dst.iter()) {
            // Every entry with a frame was collected: move it if it migrates, else restore it;
            // either way drop the collection reference.
            if let Some(old) = s.pfn() {
                match d.pfn().filter(|_| s.is_migrating()) {
                    Some(new) => self.move_mappings(old, new, &mut freed, &mut moved),
                    None => self.restore_mappings(old),
                }
                freed.extend(frames.put(old));
            }
            if let Some(new) = d.pfn() {
                freed.extend(frames.put(new));
            }
        }
        self.account(moved);
        self.release(freed);
    }
}
