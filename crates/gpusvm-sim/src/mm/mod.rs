//! A process address space: VMAs, page tables, and the operations that change them.
//!
//! This is the simulated CPU side of the world, modelled on what `drm_gpusvm` sees of a Linux
//! mm (and on `lib/test_hmm.c`'s needs, peers.md §3):
//!
//! - **VMAs** with a protection, a kind (private anonymous, transparent-huge-page backed,
//!   hugetlb, private file, shared anonymous) and a backing memory object (for the integrity
//!   oracle, which tracks contents per object page).
//! - **PTEs**: present (with the order of the mapping: 0, or 9 for a 2 MiB huge mapping, which
//!   HMM reports), device-private entries, and migration entries.
//! - **Operations** — `mmap`, `munmap` (partial, middle), `mprotect`, `madvise(DONTNEED)`,
//!   `mremap` (incl. `MREMAP_DONTUNMAP`), `fork` (private memory copy-on-write, device pages
//!   included), `exit` — each taking the mmap lock for writing and bracketing its page-table
//!   change with an interval-notifier invalidation of the right event, as the kernel does.
//!
//! CPU accesses and faults are in [`fault`], HMM and migration in [`migrate`] and the `Mm` trait
//! glue in `core_impl`.
//!
//! # Locks
//!
//! `mmap_lock` is a simulated rwlock (it is held across scheduling points). `st` is a plain
//! mutex playing the page-table lock: held only for short, non-blocking sections, never across a
//! scheduling point or a callback into the core. The frame table's mutex nests inside `st`.

pub mod core_impl;
pub mod fault;
pub mod migrate;
pub mod notifier;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use gpusvm_core::{code, Error, MmuEvent, VmaFlags, VmaInfo};

use crate::mem::{Freed, Pfn, Pid, Vpn, HUGE_PAGES, PAGE};
use crate::sched::{self, SimRwLock};
use crate::shared::{lock, Shared, ShmObject};

pub use notifier::SimNotifier;

/// Where `mmap` places regions without `at=`.
pub const MMAP_BASE: u64 = 0x10_0000_0000;
/// The top of the user address space.
pub const TASK_SIZE: u64 = 1 << 47;
/// 2 MiB.
pub const HUGE_SIZE: u64 = PAGE * HUGE_PAGES;

/// Protection of a VMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prot {
    /// No access.
    None,
    /// Read only.
    R,
    /// Read and write.
    Rw,
}

impl Prot {
    /// Whether reads are allowed.
    pub fn readable(self) -> bool {
        self != Prot::None
    }
    /// Whether writes are allowed.
    pub fn writable(self) -> bool {
        self == Prot::Rw
    }
}

/// What backs a VMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// Private anonymous memory.
    Anon,
    /// MAP_SHARED anonymous memory (shmem: not "anonymous" for migration).
    Shared,
    /// A private mapping of a (zero-filled) file.
    File,
    /// Private anonymous memory backed by 2 MiB pages where aligned.
    Thp,
    /// hugetlbfs: always 2 MiB pages; never migrated.
    Hugetlb,
}

impl MapKind {
    /// Whether the memory is private (copy-on-write after fork).
    pub fn private(self) -> bool {
        self != MapKind::Shared
    }
}

/// A virtual memory area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vma {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Protection.
    pub prot: Prot,
    /// Backing kind.
    pub kind: MapKind,
    /// Backing memory object.
    pub obj: u64,
    /// Page index in `obj` of `start`.
    pub pgoff: u64,
}

impl Vma {
    /// The facts the core sees.
    pub fn info(&self) -> VmaInfo {
        let mut flags = VmaFlags::empty();
        if self.prot.readable() {
            flags |= VmaFlags::READ;
        }
        if self.prot.writable() {
            flags |= VmaFlags::WRITE;
        }
        match self.kind {
            MapKind::Anon | MapKind::Thp => flags |= VmaFlags::ANONYMOUS,
            MapKind::Hugetlb => flags |= VmaFlags::ANONYMOUS | VmaFlags::HUGETLB,
            MapKind::Shared => flags |= VmaFlags::SHARED,
            MapKind::File => {}
        }
        VmaInfo {
            start: self.start,
            end: self.end,
            flags,
        }
    }

    /// Object page index of `addr`.
    pub fn obj_page(&self, addr: u64) -> u64 {
        self.pgoff + (addr - self.start) / PAGE
    }

    /// Whether anonymous faults use 2 MiB pages here.
    fn huge(&self) -> bool {
        matches!(self.kind, MapKind::Thp | MapKind::Hugetlb)
    }
}

/// A page-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pte {
    /// A present page; `order` 9 for a huge mapping.
    Present {
        /// The frame.
        pfn: Pfn,
        /// Writable (false for read-only and copy-on-write pages).
        write: bool,
        /// Mapping order.
        order: u8,
    },
    /// A device-private entry (the CPU faults on access).
    Device {
        /// The device frame.
        pfn: Pfn,
        /// Writable.
        write: bool,
    },
    /// The page is being migrated (accesses wait).
    Migration {
        /// The source frame.
        pfn: Pfn,
        /// Writable before the migration.
        write: bool,
    },
}

impl Pte {
    /// The frame the entry refers to.
    pub fn pfn(self) -> Pfn {
        match self {
            Pte::Present { pfn, .. } | Pte::Device { pfn, .. } | Pte::Migration { pfn, .. } => pfn,
        }
    }
}

/// VMAs and PTEs of one process.
#[derive(Default)]
pub struct MmState {
    /// VMAs by start address.
    pub vmas: BTreeMap<u64, Vma>,
    /// PTEs by virtual page.
    pub ptes: BTreeMap<Vpn, Pte>,
    /// Pages whose present PTE is a device-exclusive entry (`make_device_exclusive`): a CPU
    /// access first restores the normal mapping, with a `Clear` invalidation.
    pub exclusive: std::collections::BTreeSet<Vpn>,
}

impl MmState {
    /// The VMA containing `addr`.
    pub fn vma(&self, addr: u64) -> Option<Vma> {
        self.vmas
            .range(..=addr)
            .next_back()
            .map(|(_, v)| *v)
            .filter(|v| addr < v.end)
    }

    /// The first VMA intersecting `[start, end)`.
    pub fn vma_intersecting(&self, start: u64, end: u64) -> Option<Vma> {
        self.vma(start)
            .or_else(|| self.vmas.range(start..end).next().map(|(_, v)| *v))
    }
}

/// One process's address space.
pub struct ProcMm {
    /// Process id.
    pub pid: Pid,
    /// The simulation.
    pub shared: Arc<Shared>,
    /// The mmap lock.
    pub mmap_lock: SimRwLock,
    alive: AtomicBool,
    users: AtomicI64,
    st: Mutex<MmState>,
    /// Registered interval notifiers.
    pub notifiers: notifier::Registry,
}

/// The core's handle to a process mm (`Mm` implementation; cloning is `mmgrab`).
#[derive(Clone)]
pub struct SimMm(pub Arc<ProcMm>);

impl std::fmt::Debug for SimMm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimMm(pid {})", self.0.pid)
    }
}

/// A scenario-level error of an mm operation.
pub type MmResult<T = ()> = Result<T, Error>;

impl ProcMm {
    /// A new, empty address space registered with the simulation.
    pub fn new(pid: Pid, shared: Arc<Shared>) -> Arc<Self> {
        let mm = Arc::new(ProcMm {
            pid,
            shared: shared.clone(),
            mmap_lock: SimRwLock::new(),
            alive: AtomicBool::new(true),
            users: AtomicI64::new(0),
            st: Mutex::new(MmState::default()),
            notifiers: notifier::Registry::default(),
        });
        shared.register(&mm);
        mm
    }

    /// The page-table lock.
    pub fn st(&self) -> MutexGuard<'_, MmState> {
        lock(&self.st)
    }

    /// Whether the address space is still alive (not exited).
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// `mmget_not_zero`.
    pub fn get_user(&self) -> bool {
        if self.alive() {
            self.users.fetch_add(1, Ordering::SeqCst);
            // Re-check: exit may have started in between.
            if self.alive() {
                return true;
            }
            self.users.fetch_sub(1, Ordering::SeqCst);
        }
        false
    }

    /// `mmput`.
    pub fn put_user(&self) {
        self.users.fetch_sub(1, Ordering::SeqCst);
    }

    /// Outstanding user references.
    pub fn users(&self) -> i64 {
        self.users.load(Ordering::SeqCst)
    }

    /// The VMA containing `addr`.
    pub fn vma(&self, addr: u64) -> Option<Vma> {
        self.st().vma(addr)
    }

    /// All VMAs.
    pub fn vmas(&self) -> Vec<Vma> {
        self.st().vmas.values().copied().collect()
    }

    /// The PTE of `addr`.
    pub fn pte(&self, addr: u64) -> Option<Pte> {
        self.st().ptes.get(&(addr / PAGE)).copied()
    }

    /// Reports freed device pages to the core (call with no lock held).
    pub fn release(&self, freed: impl IntoIterator<Item = Freed>) {
        for f in freed {
            crate::driver::device_page_freed(&self.shared, f);
        }
    }

    /// Removes the PTEs of `[start_vpn, end_vpn)`, unmapping their frames.
    fn zap(&self, st: &mut MmState, start_vpn: Vpn, end_vpn: Vpn) -> Vec<Freed> {
        let excl: Vec<Vpn> = st.exclusive.range(start_vpn..end_vpn).copied().collect();
        for v in excl {
            st.exclusive.remove(&v);
        }
        let keys: Vec<Vpn> = st.ptes.range(start_vpn..end_vpn).map(|(k, _)| *k).collect();
        let mut freed = Vec::new();
        for vpn in keys {
            if let Some(pte) = st.ptes.remove(&vpn) {
                freed.extend(self.shared.frames.unmap(pte.pfn(), self.pid, vpn));
            }
        }
        freed
    }

    /// Splits huge mappings that straddle `vpn` (a boundary of an operation) into 4K entries.
    fn split_at(st: &mut MmState, vpn: Vpn) {
        let head = vpn - vpn % HUGE_PAGES;
        if head == vpn {
            return;
        }
        Self::split_folio(st, head);
    }

    /// Makes every entry of the huge mapping starting at `head` an order-0 entry.
    fn split_folio(st: &mut MmState, head: Vpn) {
        for v in head..head + HUGE_PAGES {
            if let Some(Pte::Present { order, .. }) = st.ptes.get_mut(&v) {
                *order = 0;
            }
        }
    }

    // ---------------------------------------------------------------------------- operations

    /// `mmap`: maps `size` bytes (rounded up to pages, or 2 MiB for hugetlb) at `at` (replacing
    /// what is there, as `MAP_FIXED`) or at the first free `align`-aligned gap.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a zero size, a bad alignment or address; `ENOMEM` when no gap fits.
    pub fn mmap(
        &self,
        size: u64,
        align: Option<u64>,
        at: Option<u64>,
        prot: Prot,
        kind: MapKind,
    ) -> MmResult<u64> {
        let unit = if kind == MapKind::Hugetlb {
            HUGE_SIZE
        } else {
            PAGE
        };
        if size == 0 {
            return Err(code::EINVAL);
        }
        let size = size.checked_next_multiple_of(unit).ok_or(code::ENOMEM)?;
        let align = align.unwrap_or(unit).max(unit);
        if !align.is_power_of_two() {
            return Err(code::EINVAL);
        }
        let _w = self.mmap_lock.write();
        let start = match at {
            Some(a) => {
                if a % align != 0 || a.checked_add(size).is_none_or(|e| e > TASK_SIZE) {
                    return Err(code::EINVAL);
                }
                // MAP_FIXED: whatever was there goes first.
                self.unmap_locked(a, a + size);
                a
            }
            None => self.find_gap(size, align).ok_or(code::ENOMEM)?,
        };
        let obj = self.shared.new_object();
        if kind == MapKind::Shared {
            lock(&self.shared.objects).insert(obj, ShmObject::default());
        }
        self.st().vmas.insert(
            start,
            Vma {
                start,
                end: start + size,
                prot,
                kind,
                obj,
                pgoff: 0,
            },
        );
        Ok(start)
    }

    fn find_gap(&self, size: u64, align: u64) -> Option<u64> {
        let st = self.st();
        let mut cand = MMAP_BASE.next_multiple_of(align);
        for v in st.vmas.values() {
            if v.end <= cand {
                continue;
            }
            if v.start >= cand.checked_add(size)? {
                break;
            }
            cand = v.end.checked_next_multiple_of(align)?;
        }
        (cand.checked_add(size)? <= TASK_SIZE).then_some(cand)
    }

    fn check_span(start: u64, len: u64) -> MmResult<u64> {
        if !start.is_multiple_of(PAGE) || len == 0 {
            return Err(code::EINVAL);
        }
        let end = start
            .checked_add(len.checked_next_multiple_of(PAGE).ok_or(code::EINVAL)?)
            .ok_or(code::EINVAL)?;
        if end > TASK_SIZE {
            return Err(code::EINVAL);
        }
        Ok(end)
    }

    /// `munmap`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unaligned or empty span.
    pub fn munmap(&self, start: u64, len: u64) -> MmResult {
        let end = Self::check_span(start, len)?;
        let _w = self.mmap_lock.write();
        self.unmap_locked(start, end);
        Ok(())
    }

    /// Unmaps `[start, end)` with the mmap lock held for writing.
    fn unmap_locked(&self, start: u64, end: u64) {
        if self.st().vma_intersecting(start, end).is_none() {
            return;
        }
        let inv = self.invalidate_start(start, end, MmuEvent::Unmap, None, true);
        let (freed, dropped_objects) = {
            let mut st = self.st();
            Self::split_at(&mut st, start / PAGE);
            Self::split_at(&mut st, end / PAGE);
            let freed = self.zap(&mut st, start / PAGE, end / PAGE);
            let dropped = Self::cut_vmas(&mut st, start, end, |_| None);
            (freed, dropped)
        };
        drop(inv);
        self.release(freed);
        self.drop_objects(dropped_objects);
    }

    /// Removes `[start, end)` from the VMA tree, keeping the outside parts. `replace` may give a
    /// new VMA for each removed piece. Returns the objects of removed shared pieces, which may
    /// have lost their last mapping.
    fn cut_vmas(
        st: &mut MmState,
        start: u64,
        end: u64,
        mut replace: impl FnMut(&Vma) -> Option<Vma>,
    ) -> Vec<u64> {
        let hit: Vec<Vma> = st
            .vmas
            .values()
            .filter(|v| v.start < end && start < v.end)
            .copied()
            .collect();
        let mut removed = Vec::new();
        for v in hit {
            st.vmas.remove(&v.start);
            if v.start < start {
                st.vmas.insert(v.start, Vma { end: start, ..v });
            }
            if v.end > end {
                let pgoff = v.obj_page(end);
                st.vmas.insert(
                    end,
                    Vma {
                        start: end,
                        pgoff,
                        ..v
                    },
                );
            }
            let mid = Vma {
                start: v.start.max(start),
                end: v.end.min(end),
                pgoff: v.obj_page(v.start.max(start)),
                ..v
            };
            match replace(&mid) {
                Some(n) => {
                    st.vmas.insert(n.start, n);
                }
                None if v.kind == MapKind::Shared => removed.push(v.obj),
                None => {}
            }
        }
        removed
    }

    /// Merges the VMAs on both sides of `at` when they continue each other (same protection,
    /// kind and object, contiguous object pages), as the kernel's `vma_merge` does.
    fn merge_at(st: &mut MmState, at: u64) {
        let Some(left) = st.vma(at.saturating_sub(1)).filter(|v| v.end == at) else {
            return;
        };
        let Some(right) = st.vmas.get(&at).copied() else {
            return;
        };
        let continues = left.prot == right.prot
            && left.kind == right.kind
            && left.obj == right.obj
            && left.obj_page(at) == right.pgoff;
        if continues {
            st.vmas.remove(&at);
            st.vmas.insert(
                left.start,
                Vma {
                    end: right.end,
                    ..left
                },
            );
        }
    }

    /// Frees the pages of shared objects that no VMA of any process maps any more.
    fn drop_objects(&self, candidates: Vec<u64>) {
        if candidates.is_empty() {
            return;
        }
        let procs = self.shared.procs_alive();
        let in_use = |obj: u64| {
            procs.iter().any(|p| {
                p.st()
                    .vmas
                    .values()
                    .any(|v| v.kind == MapKind::Shared && v.obj == obj)
            })
        };
        let mut freed = Vec::new();
        for obj in candidates {
            if in_use(obj) {
                continue;
            }
            if let Some(o) = lock(&self.shared.objects).remove(&obj) {
                for pfn in o.pages.into_values() {
                    freed.extend(self.shared.frames.put(pfn));
                }
            }
        }
        self.release(freed);
    }

    /// `mprotect`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a bad span; `ENOMEM` if part of the span is not mapped.
    pub fn mprotect(&self, start: u64, len: u64, prot: Prot) -> MmResult {
        let end = Self::check_span(start, len)?;
        let _w = self.mmap_lock.write();
        if !self.covered(start, end) {
            return Err(code::ENOMEM);
        }
        let inv = self.invalidate_start(start, end, MmuEvent::ProtectionVma, None, true);
        {
            let mut st = self.st();
            let removed = Self::cut_vmas(&mut st, start, end, |v| Some(Vma { prot, ..*v }));
            debug_assert!(removed.is_empty());
            Self::merge_at(&mut st, start);
            Self::merge_at(&mut st, end);
            if !prot.writable() {
                for (_, pte) in st.ptes.range_mut(start / PAGE..end / PAGE) {
                    match pte {
                        Pte::Present { write, .. } | Pte::Device { write, .. } => *write = false,
                        Pte::Migration { .. } => {}
                    }
                }
            }
        }
        drop(inv);
        Ok(())
    }

    fn covered(&self, start: u64, end: u64) -> bool {
        let st = self.st();
        let mut a = start;
        while a < end {
            match st.vma(a) {
                Some(v) => a = v.end,
                None => return false,
            }
        }
        true
    }

    /// `madvise(MADV_DONTNEED)`: drops the pages; private memory reads back as zeros, shared
    /// memory keeps its contents in the object.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a bad span; `ENOMEM` if part of the span is not mapped.
    pub fn madvise_dontneed(&self, start: u64, len: u64) -> MmResult {
        let end = Self::check_span(start, len)?;
        let _w = self.mmap_lock.read();
        if !self.covered(start, end) {
            return Err(code::ENOMEM);
        }
        let inv = self.invalidate_start(start, end, MmuEvent::Clear, None, true);
        let freed = {
            let mut st = self.st();
            Self::split_at(&mut st, start / PAGE);
            Self::split_at(&mut st, end / PAGE);
            self.zap(&mut st, start / PAGE, end / PAGE)
        };
        drop(inv);
        self.release(freed);
        Ok(())
    }

    /// `mremap(old, old_len, new_len, MREMAP_MAYMOVE [| MREMAP_DONTUNMAP])` to a new address.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a bad span, a span not inside one VMA, or `dontunmap` on memory that is not
    /// private anonymous; `EFAULT` if nothing is mapped there; `ENOMEM` if no gap fits.
    pub fn mremap(&self, old: u64, old_len: u64, new_len: u64, dontunmap: bool) -> MmResult<u64> {
        let old_end = Self::check_span(old, old_len)?;
        Self::check_span(0, new_len)?;
        let new_len = new_len.next_multiple_of(PAGE);
        let _w = self.mmap_lock.write();
        let v = self.st().vma(old).ok_or(code::EFAULT)?;
        if old_end > v.end {
            return Err(code::EINVAL);
        }
        if dontunmap && !matches!(v.kind, MapKind::Anon | MapKind::Thp) {
            return Err(code::EINVAL);
        }
        let align = if v.kind == MapKind::Hugetlb || v.kind == MapKind::Thp {
            HUGE_SIZE
        } else {
            PAGE
        };
        let new = self.find_gap(new_len, align).ok_or(code::ENOMEM)?;
        let moved = old_len.next_multiple_of(PAGE).min(new_len);
        let inv = self.invalidate_start(old, old_end, MmuEvent::Unmap, None, true);
        let (freed, objs) = {
            let mut st = self.st();
            Self::split_at(&mut st, old / PAGE);
            Self::split_at(&mut st, old_end / PAGE);
            // Move the PTEs of the part that moves; drop the rest.
            let keys: Vec<Vpn> = st
                .ptes
                .range(old / PAGE..(old + moved) / PAGE)
                .map(|(k, _)| *k)
                .collect();
            let shift = new / PAGE;
            for vpn in keys {
                if let Some(pte) = st.ptes.remove(&vpn) {
                    let to = vpn - old / PAGE + shift;
                    self.shared.frames.remap(pte.pfn(), self.pid, vpn, to);
                    st.ptes.insert(to, pte);
                }
            }
            let freed = self.zap(&mut st, (old + moved) / PAGE, old_end / PAGE);
            let new_vma = Vma {
                start: new,
                end: new + new_len,
                pgoff: v.obj_page(old),
                ..v
            };
            let fresh = self.shared.new_object();
            let objs = Self::cut_vmas(&mut st, old, old_end, |piece| {
                dontunmap.then_some(Vma {
                    obj: fresh,
                    pgoff: 0,
                    ..*piece
                })
            });
            st.vmas.insert(new, new_vma);
            (freed, objs)
        };
        drop(inv);
        self.release(freed);
        self.drop_objects(objs);
        Ok(new)
    }

    /// `fork`: the child gets a copy of every VMA; private pages become copy-on-write in both
    /// (device-private pages too: both map them read-only), shared pages stay shared. Returns
    /// the child and, for each private VMA, `(parent object, child object)` so the caller can
    /// copy the contents it tracks.
    pub fn fork(&self, child_pid: Pid) -> (Arc<ProcMm>, Vec<(u64, u64)>) {
        let child = ProcMm::new(child_pid, self.shared.clone());
        let _w = self.mmap_lock.write();
        let vmas = self.vmas();
        let mut objects = Vec::new();
        let mut guards = Vec::new();
        for v in &vmas {
            if v.kind.private() && v.prot.writable() {
                // Write-protecting the parent's pages is a protection change it must see.
                guards.push(self.invalidate_start(
                    v.start,
                    v.end,
                    MmuEvent::ProtectionPage,
                    None,
                    true,
                ));
            }
        }
        {
            let mut st = self.st();
            let mut cst = child.st();
            for v in &vmas {
                let cv = if v.kind.private() {
                    let obj = self.shared.new_object();
                    objects.push((v.obj, obj));
                    Vma { obj, ..*v }
                } else {
                    *v
                };
                cst.vmas.insert(cv.start, cv);
                let keys: Vec<Vpn> = st
                    .ptes
                    .range(v.start / PAGE..v.end / PAGE)
                    .map(|(k, _)| *k)
                    .collect();
                for vpn in keys {
                    let Some(pte) = st.ptes.get_mut(&vpn) else {
                        continue;
                    };
                    if v.kind.private() {
                        match pte {
                            Pte::Present { write, .. } | Pte::Device { write, .. } => {
                                *write = false
                            }
                            Pte::Migration { .. } => {}
                        }
                    }
                    let copy = *pte;
                    self.shared.frames.map(copy.pfn(), child_pid, vpn);
                    cst.ptes.insert(vpn, copy);
                }
            }
        }
        drop(guards);
        (child, objects)
    }

    /// `make_device_exclusive`: the present pages of `[start, end)` become device-exclusive for
    /// `owner` (an `Exclusive` invalidation, which the owner may recognise as its own). Returns
    /// the number of pages converted.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a bad span.
    pub fn make_device_exclusive(
        &self,
        start: u64,
        len: u64,
        owner: Option<gpusvm_core::Owner>,
    ) -> MmResult<u64> {
        let end = Self::check_span(start, len)?;
        let _r = self.mmap_lock.read();
        let inv = self.invalidate_start(start, end, MmuEvent::Exclusive, owner, true);
        let n = {
            let mut st = self.st();
            let present: Vec<Vpn> = st
                .ptes
                .range(start / PAGE..end / PAGE)
                .filter(|(_, p)| matches!(p, Pte::Present { .. }))
                .map(|(k, _)| *k)
                .collect();
            let n = present.len() as u64;
            st.exclusive.extend(present);
            n
        };
        drop(inv);
        Ok(n)
    }

    /// Restores a device-exclusive page on CPU access (`restore_exclusive_pte`): a `Clear`
    /// invalidation tells the exclusive owner it lost the page.
    pub(crate) fn restore_exclusive(&self, addr: u64) {
        let vpn = addr / PAGE;
        if !self.st().exclusive.contains(&vpn) {
            return;
        }
        let inv = self.invalidate_start(
            addr - addr % PAGE,
            addr - addr % PAGE + PAGE,
            MmuEvent::Clear,
            None,
            true,
        );
        self.st().exclusive.remove(&vpn);
        drop(inv);
    }

    /// Process exit: the mm stops accepting users, every notifier sees a `Release`
    /// invalidation, then every mapping goes. Waits for outstanding user references first.
    pub fn exit(&self) {
        self.alive.store(false, Ordering::SeqCst);
        sched::wait_until(|| self.users() == 0);
        let _w = self.mmap_lock.write();
        drop(self.invalidate_start(0, TASK_SIZE, MmuEvent::Release, None, true));
        let (freed, objs) = {
            let mut st = self.st();
            let freed = self.zap(&mut st, 0, TASK_SIZE / PAGE);
            let objs: Vec<u64> = st
                .vmas
                .values()
                .filter(|v| v.kind == MapKind::Shared)
                .map(|v| v.obj)
                .collect();
            st.vmas.clear();
            (freed, objs)
        };
        self.release(freed);
        self.drop_objects(objs);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::SimConfig;
    use crate::mm::{MapKind, Prot};
    use crate::world::World;

    #[test]
    fn device_exclusive_entries_fire_exclusive_and_restore_with_clear() {
        let w = World::new(SimConfig::default()).unwrap();
        let a = w
            .mmap("A", 64 * 1024, None, None, Prot::Rw, MapKind::Anon)
            .unwrap();
        w.cpu_write(a, &vec![7u8; 64 * 1024]).unwrap();
        // Keep the pages in system memory (exclusive entries replace present system pages).
        w.advise(a, 64 * 1024, Some(crate::driver::Preferred::Ram), None)
            .unwrap();
        let mut buf = vec![0u8; 4096];
        w.gpu_read(0, a, &mut buf).unwrap();
        let p = w.current().unwrap();
        let before = w.shared.stats(p.pid);
        let n =
            p.mm.make_device_exclusive(a, 8192, Some(gpusvm_core::Owner(0x777)))
                .unwrap();
        assert_eq!(n, 2);
        let after = w.shared.stats(p.pid);
        // The GPU VM saw the Exclusive invalidation and dropped its mapping.
        assert_eq!(after.invalidations, before.invalidations + 1);
        assert_eq!(after.tlb_invalidations, before.tlb_invalidations + 1);
        // A CPU access restores the page (a Clear invalidation) and sees the data.
        w.cpu_read(a, &mut buf).unwrap();
        assert!(buf.iter().all(|b| *b == 7));
        assert_eq!(w.shared.stats(p.pid).invalidations, after.invalidations + 1);
        assert!(!p.mm.st().exclusive.contains(&(a / super::PAGE)));
        // The GPU faults the second page back in through HMM, which restores it too.
        w.gpu_read(0, a + 4096, &mut buf).unwrap();
        assert!(buf.iter().all(|b| *b == 7));
        assert!(p.mm.st().exclusive.is_empty());
        assert!(w.teardown().is_empty());
    }
}
