//! A small, faithful mock of every backend, for the core's unit tests.
//!
//! The mock is single-process and synchronous, but keeps the kernel's rules that the core relies
//! on: interval-notifier sequence numbers (odd per-notifier values, a global counter that is odd
//! while an invalidation runs), `hmm_range_fault` failing with `EBUSY` on a collision, PTEs with
//! mapping orders, device-private pages with reference counts whose last put calls the core's
//! page-free entry, `migrate_vma` collect / pages / finalize, a counting allocator with failure
//! injection and a DMA mapper that tracks every mapping. The full simulator (`gpusvm-sim`) is the
//! larger harness; this one keeps the core testable on its own.

extern crate std;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::vec::Vec;

use core::alloc::Layout;
use core::ptr::NonNull;

use crate::addr::{PageShift, Span};
use crate::allocator::{AllocKind, Allocator};
use crate::devmem::{CopyBatch, DevmemAllocation, DevmemEnv, DevmemState};
use crate::dma::{DmaDevice, DmaDirection, DmaEntry, Protocol};
use crate::driver::SvmDriver;
use crate::error::{code, Error, Result};
use crate::hmm::HmmPfn;
use crate::invalidate::Invalidation;
use crate::lock::{RawRwLock, SpinRwLock};
use crate::migrate::{migrate_to_devmem, MigrateDetails};
use crate::mm::{
    Clock, HmmRange, IntervalNotifier, MigratePfn, MigrateSelect, MigrateVma, Mm, MmapReadGuard,
    MmuEvent, MmuRange, Owner, PageKind, PgmapId, Subscriber, VmaFlags, VmaInfo,
};
use crate::notifier::Notifier;
use crate::pagemap::Pagemap;
use crate::pages::SvmPages;
use crate::range::Range;

pub const PAGE: u64 = 4096;
pub const SHIFT: PageShift = PageShift::SZ_4K;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ------------------------------------------------------------------------------------------ clock

/// A virtual clock; every HMM call advances it by one millisecond so retry loops end.
#[derive(Clone, Default)]
pub struct MockClock(Arc<AtomicU64>);

impl MockClock {
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for MockClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

// ------------------------------------------------------------------------------------------ lock

pub struct LockInner {
    raw: SpinRwLock,
    readers: AtomicUsize,
    writer: AtomicBool,
}

/// The notifier lock: a [`SpinRwLock`] behind a shared handle, so a test (or the driver's hooks)
/// can hold a clone of the lock an `Svm` uses and see who holds it. The counters are updated
/// while the lock is held, so they are exact for whoever looks from inside or outside it.
#[derive(Clone)]
pub struct MockLock(pub Arc<LockInner>);

impl MockLock {
    /// Number of read holds.
    pub fn readers(&self) -> usize {
        self.0.readers.load(Ordering::SeqCst)
    }
    /// Whether the lock is held for writing.
    pub fn write_held(&self) -> bool {
        self.0.writer.load(Ordering::SeqCst)
    }
    /// Whether a writer could take the lock now (tries, and releases it again on success).
    pub fn write_would_succeed(&self) -> bool {
        let ok = self.try_write_lock();
        if ok {
            // SAFETY: Taken just above.
            unsafe { self.write_unlock() };
        }
        ok
    }
    /// What [`MockLock::readers`], [`MockLock::write_held`] and
    /// [`MockLock::write_would_succeed`] say now.
    pub fn seen(&self) -> LockSeen {
        LockSeen {
            readers: self.readers(),
            writer: self.write_held(),
            write_would_succeed: self.write_would_succeed(),
        }
    }
}

/// A snapshot of a [`MockLock`]'s state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockSeen {
    pub readers: usize,
    pub writer: bool,
    pub write_would_succeed: bool,
}

impl LockSeen {
    /// Held for reading by exactly one holder, not for writing.
    pub const READ_ONCE: LockSeen = LockSeen {
        readers: 1,
        writer: false,
        write_would_succeed: false,
    };
    /// Not held at all.
    pub const FREE: LockSeen = LockSeen {
        readers: 0,
        writer: false,
        write_would_succeed: true,
    };
}

// SAFETY: Delegates the protocol to `SpinRwLock`; the counters are only bookkeeping.
unsafe impl RawRwLock for MockLock {
    fn new() -> Self {
        MockLock(Arc::new(LockInner {
            raw: SpinRwLock::new(),
            readers: AtomicUsize::new(0),
            writer: AtomicBool::new(false),
        }))
    }

    fn read_lock(&self) {
        self.0.raw.read_lock();
        self.0.readers.fetch_add(1, Ordering::SeqCst);
    }

    unsafe fn read_unlock(&self) {
        self.0.readers.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: The caller holds the lock for reading.
        unsafe { self.0.raw.read_unlock() };
    }

    fn write_lock(&self) {
        self.0.raw.write_lock();
        self.0.writer.store(true, Ordering::SeqCst);
    }

    fn try_write_lock(&self) -> bool {
        let ok = self.0.raw.try_write_lock();
        if ok {
            self.0.writer.store(true, Ordering::SeqCst);
        }
        ok
    }

    unsafe fn write_unlock(&self) {
        self.0.writer.store(false, Ordering::SeqCst);
        // SAFETY: The caller holds the lock for writing.
        unsafe { self.0.raw.write_unlock() };
    }
}

// -------------------------------------------------------------------------------------- allocator

#[derive(Default)]
pub struct AllocStats {
    pub calls: AtomicUsize,
    pub live: AtomicIsize,
    /// Fail the call whose 1-based number equals this (0: never).
    pub fail_at: AtomicUsize,
    /// Fail every call while set.
    pub fail_all: AtomicBool,
}

/// A counting allocator over the system heap, with failure injection.
#[derive(Clone, Default)]
pub struct MockAlloc(pub Arc<AllocStats>);

impl MockAlloc {
    pub fn calls(&self) -> usize {
        self.0.calls.load(Ordering::SeqCst)
    }
    pub fn live(&self) -> isize {
        self.0.live.load(Ordering::SeqCst)
    }
    /// Makes the `n`-th allocation from now fail.
    pub fn fail_nth(&self, n: usize) {
        self.0.fail_at.store(self.calls() + n, Ordering::SeqCst);
    }
}

// SAFETY: Backed by the global allocator with the caller's layout.
unsafe impl Allocator for MockAlloc {
    fn allocate(&self, layout: Layout, _kind: AllocKind) -> Result<NonNull<u8>> {
        let n = self.0.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.0.fail_all.load(Ordering::SeqCst) || self.0.fail_at.load(Ordering::SeqCst) == n {
            return Err(code::ENOMEM);
        }
        // SAFETY: `layout` is non-zero-sized (trait contract).
        let p = unsafe { std::alloc::alloc(layout) };
        let p = NonNull::new(p).ok_or(code::ENOMEM)?;
        self.0.live.fetch_add(1, Ordering::SeqCst);
        Ok(p)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout, _kind: AllocKind) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: Allocated above with the same layout.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
    }
}

// -------------------------------------------------------------------------------- physical memory

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    System,
    Device { pgmap: PgmapId, zone_data: usize },
}

struct FrameInfo {
    kind: Frame,
    refs: usize,
    data: u64,
}

/// Page frames shared by the mm and the devices. Device frames start at `DEVICE_PFN_BASE`.
#[derive(Default)]
pub struct Phys {
    frames: Mutex<HashMap<u64, FrameInfo>>,
    next_sys: AtomicU64,
    /// Device pages whose last reference went (each must have called the core's free).
    pub device_frees: AtomicUsize,
}

pub const DEVICE_PFN_BASE: u64 = 1 << 40;

impl Phys {
    fn new_system(&self, data: u64) -> u64 {
        let pfn = 0x100 + self.next_sys.fetch_add(1, Ordering::SeqCst);
        lock(&self.frames).insert(
            pfn,
            FrameInfo {
                kind: Frame::System,
                refs: 1,
                data,
            },
        );
        pfn
    }

    /// A run of `n` consecutive system frames, aligned to `n` (for huge mappings).
    fn new_system_run(&self, n: u64) -> u64 {
        let base = loop {
            let cur = self.next_sys.load(Ordering::SeqCst) + 0x100;
            let aligned = cur.next_multiple_of(n);
            let next = aligned + n - 0x100;
            if self
                .next_sys
                .compare_exchange(cur - 0x100, next, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                break aligned;
            }
        };
        let mut f = lock(&self.frames);
        for i in 0..n {
            f.insert(
                base + i,
                FrameInfo {
                    kind: Frame::System,
                    refs: 1,
                    data: 0,
                },
            );
        }
        base
    }

    pub fn kind(&self, pfn: u64) -> Option<Frame> {
        lock(&self.frames).get(&pfn).map(|f| f.kind)
    }

    pub fn data(&self, pfn: u64) -> u64 {
        lock(&self.frames).get(&pfn).map_or(0, |f| f.data)
    }

    pub fn set_data(&self, pfn: u64, v: u64) {
        if let Some(f) = lock(&self.frames).get_mut(&pfn) {
            f.data = v;
        }
    }

    fn get(&self, pfn: u64) {
        if let Some(f) = lock(&self.frames).get_mut(&pfn) {
            f.refs += 1;
        }
    }

    /// Drops a reference; a device frame's last reference calls the core's page-free entry.
    fn put(&self, pfn: u64) {
        let freed = {
            let mut frames = lock(&self.frames);
            let Some(f) = frames.get_mut(&pfn) else {
                return;
            };
            f.refs = f.refs.saturating_sub(1);
            if f.refs > 0 {
                return;
            }
            let kind = f.kind;
            frames.remove(&pfn);
            kind
        };
        if let Frame::Device { zone_data, .. } = freed {
            self.device_frees.fetch_add(1, Ordering::SeqCst);
            // SAFETY: The core stored this zone data with `device_page_init` for `MockDriver`,
            // and the frame is removed, so this is its only free.
            unsafe { crate::devmem::device_page_free::<MockDriver>(zone_data) };
        }
    }

    fn init_device(&self, pfn: u64, pgmap: PgmapId, zone_data: usize) {
        lock(&self.frames).insert(
            pfn,
            FrameInfo {
                kind: Frame::Device { pgmap, zone_data },
                refs: 1,
                data: 0,
            },
        );
    }

    pub fn live_device_frames(&self) -> usize {
        lock(&self.frames)
            .values()
            .filter(|f| matches!(f.kind, Frame::Device { .. }))
            .count()
    }
}

// -------------------------------------------------------------------------------------------- mm

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pte {
    Present { pfn: u64, write: bool, order: u8 },
    Migrating { pfn: u64 },
}

struct NotifierReg {
    start: u64,
    end: u64,
    sub: NonNull<dyn Subscriber>,
    storage: *const MockNotifier,
}

/// One-shot behaviours injected into the next `hmm_range_fault` calls.
pub enum HmmHook {
    /// Return this error.
    Fail(Error),
    /// Run this invalidation before returning success (a collision `read_retry` will see).
    Invalidate {
        start: u64,
        end: u64,
        event: MmuEvent,
    },
}

pub struct MmInner {
    alive: AtomicBool,
    users: AtomicIsize,
    readers: AtomicIsize,
    vmas: Mutex<Vec<VmaInfo>>,
    ptes: Mutex<BTreeMap<u64, Pte>>,
    notifiers: Mutex<Vec<NotifierReg>>,
    invalidate_seq: AtomicU64,
    pub phys: Arc<Phys>,
    pub clock: MockClock,
    hooks: Mutex<VecDeque<HmmHook>>,
    pub hmm_calls: AtomicUsize,
    pub migrate_calls: AtomicUsize,
    /// Make `migrate_vma_pages` lose the first collected page (a racing unmap).
    pub race_pages: AtomicBool,
    /// The pagemaps whose device pages CPU faults migrate back (by pgmap).
    pagemaps: Mutex<Vec<MockPagemap>>,
}

// SAFETY: The raw subscriber pointers are only dereferenced while registered (the core keeps
// them alive until `remove`).
unsafe impl Send for MmInner {}
// SAFETY: As above; all other state is behind mutexes or atomics.
unsafe impl Sync for MmInner {}

/// A process address space.
#[derive(Clone)]
pub struct MockMm(pub Arc<MmInner>);

impl MockMm {
    pub fn new(phys: Arc<Phys>, clock: MockClock) -> Self {
        MockMm(Arc::new(MmInner {
            alive: AtomicBool::new(true),
            users: AtomicIsize::new(0),
            readers: AtomicIsize::new(0),
            vmas: Mutex::new(Vec::new()),
            ptes: Mutex::new(BTreeMap::new()),
            notifiers: Mutex::new(Vec::new()),
            invalidate_seq: AtomicU64::new(2),
            phys,
            clock,
            hooks: Mutex::new(VecDeque::new()),
            hmm_calls: AtomicUsize::new(0),
            migrate_calls: AtomicUsize::new(0),
            race_pages: AtomicBool::new(false),
            pagemaps: Mutex::new(Vec::new()),
        }))
    }

    pub fn add_pagemap(&self, pm: &MockPagemap) {
        lock(&self.0.pagemaps).push(pm.clone());
    }

    pub fn mmap(&self, start: u64, end: u64, flags: VmaFlags) {
        let mut v = lock(&self.0.vmas);
        v.push(VmaInfo { start, end, flags });
        v.sort_by_key(|v| v.start);
    }

    pub fn hook(&self, h: HmmHook) {
        lock(&self.0.hooks).push_back(h);
    }

    pub fn kill(&self) {
        self.0.alive.store(false, Ordering::SeqCst);
    }

    pub fn users(&self) -> isize {
        self.0.users.load(Ordering::SeqCst)
    }

    pub fn readers(&self) -> isize {
        self.0.readers.load(Ordering::SeqCst)
    }

    pub fn registered_notifiers(&self) -> usize {
        lock(&self.0.notifiers).len()
    }

    /// CPU touch: fault a page in (a fresh system page holding `data`, or `data` written to the
    /// existing page).
    pub fn cpu_write(&self, addr: u64, data: u64) {
        let vpn = addr / PAGE;
        let existing = lock(&self.0.ptes).get(&vpn).copied();
        match existing {
            Some(Pte::Present { pfn, .. }) if self.0.phys.kind(pfn) == Some(Frame::System) => {
                self.0.phys.set_data(pfn, data);
            }
            Some(Pte::Present { pfn, .. }) => {
                self.cpu_fault_device(addr, pfn);
                self.cpu_write(addr, data);
            }
            _ => {
                let pfn = self.0.phys.new_system(data);
                lock(&self.0.ptes).insert(
                    vpn,
                    Pte::Present {
                        pfn,
                        write: true,
                        order: 0,
                    },
                );
            }
        }
    }

    /// CPU read of the page at `addr` (faulting device pages back first).
    pub fn cpu_read(&self, addr: u64) -> Option<u64> {
        let pte = lock(&self.0.ptes).get(&(addr / PAGE)).copied();
        match pte {
            Some(Pte::Present { pfn, .. }) if self.0.phys.kind(pfn) == Some(Frame::System) => {
                Some(self.0.phys.data(pfn))
            }
            Some(Pte::Present { pfn, .. }) => {
                self.cpu_fault_device(addr, pfn);
                let again = lock(&self.0.ptes).get(&(addr / PAGE)).copied();
                match again {
                    Some(Pte::Present { pfn, .. }) => Some(self.0.phys.data(pfn)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The device-private CPU fault: calls the core's `migrate_to_ram` with the page's zone
    /// data, as `do_swap_page` does through the pagemap's ops.
    fn cpu_fault_device(&self, addr: u64, pfn: u64) {
        if let Some(Frame::Device { zone_data, .. }) = self.0.phys.kind(pfn) {
            self.0.phys.get(pfn);
            self.mmap_read_lock();
            // SAFETY: We hold the read lock until the guard drops (it does not unlock).
            let guard = unsafe { MmapReadGuard::assume_held(self) };
            // SAFETY: The zone data is the core's, and we hold a reference on the page.
            let _ = unsafe {
                crate::migrate::migrate_to_ram::<MockDriver>(&guard, addr, pfn, zone_data)
            };
            drop(guard);
            // SAFETY: Taken above.
            unsafe { self.mmap_read_unlock() };
            self.0.phys.put(pfn);
        }
    }

    /// Installs a 2M huge mapping at `start` (aligned): 512 PTEs of order 9.
    pub fn populate_thp(&self, start: u64) {
        let base = self.0.phys.new_system_run(512);
        let mut ptes = lock(&self.0.ptes);
        for i in 0..512 {
            ptes.insert(
                start / PAGE + i,
                Pte::Present {
                    pfn: base + i,
                    write: true,
                    order: 9,
                },
            );
        }
    }

    /// Marks the page at `addr` as being migrated by someone else (a migration entry).
    pub fn set_migrating(&self, addr: u64) {
        let mut ptes = lock(&self.0.ptes);
        if let Some(Pte::Present { pfn, .. }) = ptes.get(&(addr / PAGE)).copied() {
            ptes.insert(addr / PAGE, Pte::Migrating { pfn });
        }
    }

    /// Undoes [`MockMm::set_migrating`].
    pub fn clear_migrating(&self, addr: u64) {
        let mut ptes = lock(&self.0.ptes);
        if let Some(Pte::Migrating { pfn }) = ptes.get(&(addr / PAGE)).copied() {
            ptes.insert(
                addr / PAGE,
                Pte::Present {
                    pfn,
                    write: true,
                    order: 0,
                },
            );
        }
    }

    pub fn pfn_at(&self, addr: u64) -> Option<u64> {
        match lock(&self.0.ptes).get(&(addr / PAGE)) {
            Some(Pte::Present { pfn, .. }) => Some(*pfn),
            _ => None,
        }
    }

    /// Runs an invalidation of `[start, end)` through every intersecting notifier.
    pub fn invalidate(&self, start: u64, end: u64, event: MmuEvent, owner: Option<Owner>) -> bool {
        let cur = self.0.invalidate_seq.fetch_add(1, Ordering::SeqCst) + 1; // odd
        let targets: Vec<NonNull<dyn Subscriber>> = lock(&self.0.notifiers)
            .iter()
            .filter(|n| n.start < end && start < n.end)
            .map(|n| n.sub)
            .collect();
        let range = MmuRange {
            start,
            end,
            event,
            owner,
            blockable: true,
        };
        let mut ok = true;
        for sub in targets {
            // SAFETY: Registered subscribers stay valid until removed.
            ok &= unsafe { sub.as_ref() }.invalidate(&range, cur);
        }
        self.0.invalidate_seq.fetch_add(1, Ordering::SeqCst); // even
        ok
    }

    /// Non-blockable invalidation (OOM-reaper style) delivered to the subscribers.
    pub fn invalidate_nonblocking(&self, start: u64, end: u64) -> bool {
        let cur = self.0.invalidate_seq.fetch_add(1, Ordering::SeqCst) + 1;
        let targets: Vec<NonNull<dyn Subscriber>> = lock(&self.0.notifiers)
            .iter()
            .filter(|n| n.start < end && start < n.end)
            .map(|n| n.sub)
            .collect();
        let range = MmuRange {
            start,
            end,
            event: MmuEvent::Release,
            owner: None,
            blockable: false,
        };
        let mut ok = true;
        for sub in targets {
            // SAFETY: As in `invalidate`.
            ok &= unsafe { sub.as_ref() }.invalidate(&range, cur);
        }
        self.0.invalidate_seq.fetch_add(1, Ordering::SeqCst);
        ok
    }

    /// munmap: invalidate, then drop the VMAs and PTEs of `[start, end)`.
    pub fn munmap(&self, start: u64, end: u64) {
        self.invalidate(start, end, MmuEvent::Unmap, None);
        {
            let mut vmas = lock(&self.0.vmas);
            let mut out = Vec::new();
            for v in vmas.drain(..) {
                if v.end <= start || v.start >= end {
                    out.push(v);
                    continue;
                }
                if v.start < start {
                    out.push(VmaInfo { end: start, ..v });
                }
                if v.end > end {
                    out.push(VmaInfo { start: end, ..v });
                }
            }
            *vmas = out;
        }
        let dropped: Vec<u64> = {
            let mut ptes = lock(&self.0.ptes);
            let keys: Vec<u64> = ptes
                .range(start / PAGE..end / PAGE)
                .map(|(k, _)| *k)
                .collect();
            keys.iter()
                .filter_map(|k| match ptes.remove(k) {
                    Some(Pte::Present { pfn, .. }) => Some(pfn),
                    _ => None,
                })
                .collect()
        };
        for pfn in dropped {
            self.0.phys.put(pfn);
        }
    }

    fn notifier_seq_of(&self, n: &MockNotifier) -> u64 {
        n.seq.load(Ordering::SeqCst)
    }
}

/// Interval-notifier storage with the kernel's sequence protocol.
pub struct MockNotifier {
    seq: AtomicU64,
    mm: Mutex<Option<MockMm>>,
}

// SAFETY: Follows the protocol: per-notifier seqs are odd values set by `set_seq` inside the
// invalidation; `read_retry` compares them.
unsafe impl IntervalNotifier for MockNotifier {
    type Mm = MockMm;

    fn new() -> Self {
        MockNotifier {
            seq: AtomicU64::new(1),
            mm: Mutex::new(None),
        }
    }

    unsafe fn insert(
        &self,
        mm: &MockMm,
        start: u64,
        len: u64,
        subscriber: NonNull<dyn Subscriber>,
    ) -> Result {
        self.seq.store(
            mm.0.invalidate_seq.load(Ordering::SeqCst) - 1,
            Ordering::SeqCst,
        );
        lock(&mm.0.notifiers).push(NotifierReg {
            start,
            end: start + len,
            sub: subscriber,
            storage: self,
        });
        *lock(&self.mm) = Some(mm.clone());
        Ok(())
    }

    unsafe fn remove(&self) {
        if let Some(mm) = lock(&self.mm).take() {
            lock(&mm.0.notifiers).retain(|n| !core::ptr::eq(n.storage, self));
        }
    }

    fn read_begin(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    fn read_retry(&self, seq: u64) -> bool {
        self.seq.load(Ordering::SeqCst) != seq
    }

    fn set_seq(&self, cur_seq: u64) {
        self.seq.store(cur_seq, Ordering::SeqCst);
    }
}

// SAFETY: Device frames are reported with the zone data given to `device_page_init` until their
// last put calls the core's free; PTE-mapped frames keep a reference.
unsafe impl Mm for MockMm {
    type Notifier = MockNotifier;

    fn mmget_not_zero(&self) -> bool {
        if self.0.alive.load(Ordering::SeqCst) {
            self.0.users.fetch_add(1, Ordering::SeqCst);
            true
        } else {
            false
        }
    }

    unsafe fn mmput(&self) {
        self.0.users.fetch_sub(1, Ordering::SeqCst);
    }

    fn mmap_read_lock(&self) {
        self.0.readers.fetch_add(1, Ordering::SeqCst);
    }

    unsafe fn mmap_read_unlock(&self) {
        self.0.readers.fetch_sub(1, Ordering::SeqCst);
    }

    fn vma_lookup(&self, _lock: &MmapReadGuard<'_, Self>, addr: u64) -> Option<VmaInfo> {
        lock(&self.0.vmas)
            .iter()
            .find(|v| v.start <= addr && addr < v.end)
            .copied()
    }

    fn find_vma_intersection(
        &self,
        _lock: &MmapReadGuard<'_, Self>,
        start: u64,
        end: u64,
    ) -> Option<VmaInfo> {
        lock(&self.0.vmas)
            .iter()
            .find(|v| v.start < end && start < v.end)
            .copied()
    }

    fn hmm_range_fault(
        &self,
        lock_: &MmapReadGuard<'_, Self>,
        range: &mut HmmRange<'_, MockNotifier>,
    ) -> Result {
        self.0.hmm_calls.fetch_add(1, Ordering::SeqCst);
        self.0.clock.advance(1);
        let hook = lock(&self.0.hooks).pop_front();
        if let Some(HmmHook::Fail(e)) = hook {
            return Err(e);
        }
        if self.notifier_seq_of(range.notifier) != range.notifier_seq {
            return Err(code::EBUSY);
        }
        let fault = range.default_flags & HmmPfn::REQ_FAULT != 0;
        let write = range.default_flags & HmmPfn::REQ_WRITE != 0;
        let mut addr = range.start;
        for slot in range.pfns.iter_mut() {
            let vma = self.vma_lookup(lock_, addr);
            let Some(vma) = vma else {
                if fault {
                    return Err(code::EFAULT);
                }
                *slot = HmmPfn(HmmPfn::ERROR);
                addr += PAGE;
                continue;
            };
            if vma.flags.contains(VmaFlags::PFNMAP) {
                return Err(code::EINVAL);
            }
            if write && !vma.writable() {
                return Err(code::EPERM);
            }
            loop {
                let pte = lock(&self.0.ptes).get(&(addr / PAGE)).copied();
                match pte {
                    Some(Pte::Present {
                        pfn,
                        write: w,
                        order,
                    }) => match self.0.phys.kind(pfn) {
                        Some(Frame::Device { pgmap, .. }) => {
                            let owner = lock(&self.0.pagemaps)
                                .iter()
                                .find(|p| p.pgmap() == pgmap)
                                .map(|p| p.owner());
                            if owner.is_some() && owner == range.dev_private_owner {
                                *slot = HmmPfn::present(pfn, w, 0);
                            } else if fault {
                                self.cpu_fault_device(addr, pfn);
                                continue;
                            } else {
                                *slot = HmmPfn(0);
                            }
                        }
                        _ => *slot = HmmPfn::present(pfn, w && vma.writable(), order),
                    },
                    Some(Pte::Migrating { .. }) => return Err(code::EBUSY),
                    None if fault => {
                        let pfn = self.0.phys.new_system(0);
                        lock(&self.0.ptes).insert(
                            addr / PAGE,
                            Pte::Present {
                                pfn,
                                write: vma.writable(),
                                order: 0,
                            },
                        );
                        continue;
                    }
                    None => *slot = HmmPfn(0),
                }
                break;
            }
            addr += PAGE;
        }
        if let Some(HmmHook::Invalidate { start, end, event }) = hook {
            self.invalidate(start, end, event, None);
        }
        Ok(())
    }

    fn classify_page(&self, pfn: u64) -> PageKind {
        match self.0.phys.kind(pfn) {
            Some(Frame::Device { pgmap, zone_data }) => PageKind::Device {
                pgmap,
                zone_data,
                coherent: false,
            },
            _ => PageKind::System,
        }
    }

    fn migrate_vma_setup(
        &self,
        lock_: &MmapReadGuard<'_, Self>,
        args: &mut MigrateVma<'_>,
    ) -> Result {
        self.0.migrate_calls.fetch_add(1, Ordering::SeqCst);
        let Some(vma) = self.vma_lookup(lock_, args.start) else {
            return Err(code::EINVAL);
        };
        // Notifiers first (invalidate_range_start), then collect.
        self.invalidate(args.start, args.end, MmuEvent::Migrate, args.pgmap_owner);
        let mut cpages = 0;
        let mut addr = args.start;
        for s in args.src.iter_mut() {
            *s = MigratePfn(0);
            let vpn = addr / PAGE;
            addr += PAGE;
            let pte = lock(&self.0.ptes).get(&vpn).copied();
            match pte {
                Some(Pte::Present { pfn, write, .. }) => {
                    let select = match self.0.phys.kind(pfn) {
                        Some(Frame::Device { pgmap, .. }) => {
                            let owner = lock(&self.0.pagemaps)
                                .iter()
                                .find(|p| p.pgmap() == pgmap)
                                .map(|p| p.owner());
                            args.select.contains(MigrateSelect::DEVICE_PRIVATE)
                                && owner.is_some()
                                && owner == args.pgmap_owner
                        }
                        _ => args.select.contains(MigrateSelect::SYSTEM),
                    };
                    if !select {
                        continue;
                    }
                    let mut v = MigratePfn::from_pfn(pfn).0 | MigratePfn::MIGRATE;
                    if write {
                        v |= MigratePfn::WRITE;
                    }
                    *s = MigratePfn(v);
                    lock(&self.0.ptes).insert(vpn, Pte::Migrating { pfn });
                    cpages += 1;
                }
                None if args.select.contains(MigrateSelect::SYSTEM) && vma.migratable() => {
                    // A hole of an anonymous VMA migrates as a fresh page.
                    *s = MigratePfn(MigratePfn::MIGRATE);
                    cpages += 1;
                }
                _ => {}
            }
        }
        args.cpages = cpages;
        Ok(())
    }

    fn migrate_vma_pages(&self, args: &mut MigrateVma<'_>) {
        if self.0.race_pages.swap(false, Ordering::SeqCst) {
            if let Some(s) = args.src.iter_mut().find(|s| s.is_migrating()) {
                *s = MigratePfn(s.0 & !MigratePfn::MIGRATE);
            }
        }
        for (s, d) in args.src.iter_mut().zip(args.dst.iter()) {
            if s.is_migrating() && d.pfn().is_none() {
                *s = MigratePfn(s.0 & !MigratePfn::MIGRATE);
            }
        }
    }

    fn migrate_vma_finalize(&self, args: &mut MigrateVma<'_>) {
        let mut addr = args.start;
        for (s, d) in args.src.iter().zip(args.dst.iter()) {
            let vpn = addr / PAGE;
            addr += PAGE;
            let moved = s.is_migrating() && d.pfn().is_some();
            if moved {
                let new = d.pfn().unwrap_or(0);
                lock(&self.0.ptes).insert(
                    vpn,
                    Pte::Present {
                        pfn: new,
                        write: true,
                        order: 0,
                    },
                );
                if let Some(old) = s.pfn() {
                    self.0.phys.put(old);
                }
                // The destination's lock reference becomes the PTE's.
            } else {
                if let Some(old) = s.pfn() {
                    if s.0 & MigratePfn::VALID != 0 {
                        let cur = lock(&self.0.ptes).get(&vpn).copied();
                        if cur == Some(Pte::Migrating { pfn: old }) {
                            lock(&self.0.ptes).insert(
                                vpn,
                                Pte::Present {
                                    pfn: old,
                                    write: s.is_writable(),
                                    order: 0,
                                },
                            );
                        }
                    }
                }
                if let Some(dst) = d.pfn() {
                    self.0.phys.put(dst);
                }
            }
        }
    }

    fn migrate_device_pfns(&self, src: &mut [MigratePfn]) -> Result {
        for s in src.iter_mut() {
            let Some(pfn) = s.pfn() else { continue };
            let vpn = lock(&self.0.ptes)
                .iter()
                .find(|(_, p)| matches!(p, Pte::Present { pfn: q, .. } if *q == pfn))
                .map(|(k, _)| *k);
            match vpn {
                Some(vpn) => {
                    self.invalidate(vpn * PAGE, (vpn + 1) * PAGE, MmuEvent::Migrate, None);
                    lock(&self.0.ptes).insert(vpn, Pte::Migrating { pfn });
                    *s = MigratePfn(s.0 | MigratePfn::MIGRATE);
                }
                None => *s = MigratePfn(s.0 & !MigratePfn::MIGRATE),
            }
        }
        Ok(())
    }

    fn migrate_device_pages(&self, src: &mut [MigratePfn], dst: &mut [MigratePfn]) {
        for (s, d) in src.iter_mut().zip(dst.iter()) {
            if s.is_migrating() && d.pfn().is_none() {
                *s = MigratePfn(s.0 & !MigratePfn::MIGRATE);
            }
        }
    }

    fn migrate_device_finalize(&self, src: &mut [MigratePfn], dst: &mut [MigratePfn]) {
        for (s, d) in src.iter().zip(dst.iter()) {
            let Some(old) = s.pfn() else { continue };
            let vpn = lock(&self.0.ptes)
                .iter()
                .find(|(_, p)| **p == Pte::Migrating { pfn: old })
                .map(|(k, _)| *k);
            let Some(vpn) = vpn else {
                if let Some(dst) = d.pfn() {
                    self.0.phys.put(dst);
                }
                continue;
            };
            if s.is_migrating() && d.pfn().is_some() {
                let new = d.pfn().unwrap_or(0);
                lock(&self.0.ptes).insert(
                    vpn,
                    Pte::Present {
                        pfn: new,
                        write: true,
                        order: 0,
                    },
                );
                self.0.phys.put(old);
            } else {
                lock(&self.0.ptes).insert(
                    vpn,
                    Pte::Present {
                        pfn: old,
                        write: true,
                        order: 0,
                    },
                );
                if let Some(dst) = d.pfn() {
                    self.0.phys.put(dst);
                }
            }
        }
    }

    fn device_page_init(&self, pfn: u64, zone_data: usize) {
        let pgmap = lock(&self.0.pagemaps)
            .iter()
            .find(|p| p.owns_pfn(pfn))
            .map(|p| p.pgmap())
            .unwrap_or(PgmapId(0));
        self.0.phys.init_device(pfn, pgmap, zone_data);
    }

    fn alloc_system_page(&self, _addr: Option<u64>, _order: u32) -> Result<u64> {
        Ok(self.0.phys.new_system(0))
    }

    fn put_locked_page(&self, pfn: u64) {
        self.0.phys.put(pfn);
    }
}

// ------------------------------------------------------------------------------------------- DMA

pub struct DmaInner {
    /// Distinguishes devices in failure messages.
    pub id: u32,
    next: AtomicU64,
    pub mappings: Mutex<HashMap<u64, (u64, u32, DmaDirection)>>,
    /// Fail the map call whose 1-based number equals this (0: never).
    pub fail_at: AtomicUsize,
    pub map_calls: AtomicUsize,
    pub errors: Mutex<Vec<std::string::String>>,
}

/// A DMA device with an IOVA allocator that tracks every mapping.
#[derive(Clone)]
pub struct MockDma(pub Arc<DmaInner>);

impl MockDma {
    pub fn new(id: u32) -> Self {
        MockDma(Arc::new(DmaInner {
            id,
            next: AtomicU64::new(0x1000_0000),
            mappings: Mutex::new(HashMap::new()),
            fail_at: AtomicUsize::new(0),
            map_calls: AtomicUsize::new(0),
            errors: Mutex::new(Vec::new()),
        }))
    }
    pub fn live(&self) -> usize {
        lock(&self.0.mappings).len()
    }
    pub fn fail_nth(&self, n: usize) {
        self.0.fail_at.store(
            self.0.map_calls.load(Ordering::SeqCst) + n,
            Ordering::SeqCst,
        );
    }
    pub fn pfn_of(&self, addr: u64) -> Option<u64> {
        lock(&self.0.mappings).get(&addr).map(|m| m.0)
    }
    pub fn errors(&self) -> Vec<std::string::String> {
        lock(&self.0.errors).clone()
    }
}

impl DmaDevice for MockDma {
    fn map_page(&self, pfn: u64, order: u32, dir: DmaDirection) -> Result<u64> {
        let n = self.0.map_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.0.fail_at.load(Ordering::SeqCst) == n {
            return Err(code::ENOMEM);
        }
        let size = PAGE << order;
        let addr = self.0.next.fetch_add(size, Ordering::SeqCst);
        lock(&self.0.mappings).insert(addr, (pfn, order, dir));
        Ok(addr)
    }

    fn unmap_page(&self, addr: u64, order: u32, dir: DmaDirection) {
        match lock(&self.0.mappings).remove(&addr) {
            Some((_, o, d)) if o == order && d == dir => {}
            other => lock(&self.0.errors).push(std::format!(
                "dev {}: bad unmap {addr:#x} order {order} {dir:?}: {other:?}",
                self.0.id
            )),
        }
    }
}

// -------------------------------------------------------------------------------------- pagemaps

pub struct PagemapInner {
    pub pgmap: PgmapId,
    pub owner: Owner,
    pub base: u64,
    pub npages: u64,
    free: Mutex<Vec<u64>>,
    pub device_maps: AtomicIsize,
    pub live_allocs: AtomicIsize,
    pub env: Mutex<Option<(MockMm, MockDma, MockAlloc, MockClock)>>,
    pub removed: AtomicBool,
    pub fail_copy: AtomicBool,
    pub copies_to_dev: AtomicUsize,
    pub copies_to_ram: AtomicUsize,
}

/// A device-memory pool of `npages` frames.
#[derive(Clone)]
pub struct MockPagemap(pub Arc<PagemapInner>);

impl MockPagemap {
    pub fn new(id: usize, owner: Owner, npages: u64) -> Self {
        let base = DEVICE_PFN_BASE * (id as u64 + 1);
        MockPagemap(Arc::new(PagemapInner {
            pgmap: PgmapId(id),
            owner,
            base,
            npages,
            free: Mutex::new((0..npages).rev().map(|i| base + i).collect()),
            device_maps: AtomicIsize::new(0),
            live_allocs: AtomicIsize::new(0),
            env: Mutex::new(None),
            removed: AtomicBool::new(false),
            fail_copy: AtomicBool::new(false),
            copies_to_dev: AtomicUsize::new(0),
            copies_to_ram: AtomicUsize::new(0),
        }))
    }

    pub fn set_env(&self, mm: &MockMm, dev: &MockDma, alloc: &MockAlloc, clock: &MockClock) {
        *lock(&self.0.env) = Some((mm.clone(), dev.clone(), alloc.clone(), clock.clone()));
    }

    pub fn owns_pfn(&self, pfn: u64) -> bool {
        pfn >= self.0.base && pfn < self.0.base + self.0.npages
    }

    pub fn free_frames(&self) -> usize {
        lock(&self.0.free).len()
    }

    /// Allocates `npages` device frames (contiguous from the free list's top) as a devmem handle.
    pub fn alloc_devmem(&self, npages: u64, fence: bool) -> Result<MockDevmem> {
        let (mm, dev, alloc, clock) = lock(&self.0.env).clone().ok_or(code::EINVAL)?;
        let mut free = lock(&self.0.free);
        if (free.len() as u64) < npages {
            return Err(code::ENOMEM);
        }
        let mut pfns: Vec<u64> = (0..npages).filter_map(|_| free.pop()).collect();
        pfns.sort_unstable();
        drop(free);
        let state = DevmemState::new(
            DevmemEnv {
                mm,
                pagemap: self.clone(),
                dev,
                alloc,
                clock,
                page: SHIFT,
            },
            npages * PAGE,
            fence,
        )?;
        self.0.live_allocs.fetch_add(1, Ordering::SeqCst);
        Ok(MockDevmem(Arc::new(DevmemInner {
            state,
            pfns,
            pool: self.clone(),
        })))
    }
}

impl Pagemap<MockDriver> for MockPagemap {
    fn pgmap(&self) -> PgmapId {
        self.0.pgmap
    }

    fn owner(&self) -> Owner {
        self.0.owner
    }

    fn device_map(
        &self,
        _dev: &MockDma,
        pfn: u64,
        order: u32,
        dir: DmaDirection,
    ) -> Result<DmaEntry> {
        self.0.device_maps.fetch_add(1, Ordering::SeqCst);
        // Absolute frame addresses, so any pagemap's copier can decode any device entry.
        DmaEntry::encode(pfn * PAGE, Protocol::DRIVER, order, dir)
    }

    fn device_unmap(&self, _dev: &MockDma, _entry: DmaEntry) {
        self.0.device_maps.fetch_sub(1, Ordering::SeqCst);
    }

    fn populate_mm(
        &self,
        lock_: &MmapReadGuard<'_, MockMm>,
        span: Span,
        timeslice_ms: u64,
    ) -> Result {
        if self.0.removed.load(Ordering::SeqCst) {
            return Err(code::ENODEV);
        }
        let devmem = self.alloc_devmem(span.len() / PAGE, false)?;
        let details = MigrateDetails {
            timeslice_ms,
            ..MigrateDetails::default()
        };
        migrate_to_devmem::<MockDriver>(devmem, lock_, span, &details)
    }
}

pub struct DevmemInner {
    state: DevmemState<MockDriver>,
    pub pfns: Vec<u64>,
    pool: MockPagemap,
}

impl Drop for DevmemInner {
    fn drop(&mut self) {
        // devmem_release: the frames go back to the pool.
        lock(&self.pool.0.free).extend(self.pfns.iter().copied());
        self.pool.0.live_allocs.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A device-memory allocation handle.
#[derive(Clone)]
pub struct MockDevmem(pub Arc<DevmemInner>);

impl MockDevmem {
    fn phys(&self) -> Arc<Phys> {
        self.0.state.mm().0.phys.clone()
    }

    fn system_pfn(&self, e: DmaEntry) -> Option<u64> {
        if e.is_none() {
            return None;
        }
        if e.proto() == Protocol::SYSTEM {
            self.0.state.dev().pfn_of(e.addr())
        } else {
            Some(e.addr() / PAGE)
        }
    }
}

impl DevmemAllocation<MockDriver> for MockDevmem {
    fn state(&self) -> &DevmemState<MockDriver> {
        &self.0.state
    }

    fn populate_pfns(&self, pfns: &mut [u64]) -> Result {
        for (d, s) in pfns.iter_mut().zip(self.0.pfns.iter()) {
            *d = *s;
        }
        Ok(())
    }

    fn copy_to_devmem(&self, batch: &CopyBatch<'_>) -> Result {
        let pool = &self.0.pool.0;
        if pool.fail_copy.load(Ordering::SeqCst) {
            return Err(code::EFAULT);
        }
        pool.copies_to_dev.fetch_add(1, Ordering::SeqCst);
        let phys = self.phys();
        for (i, e) in batch.system.iter().enumerate() {
            if let Some(src) = self.system_pfn(*e) {
                phys.set_data(batch.device_pfn + i as u64, phys.data(src));
            }
        }
        Ok(())
    }

    fn copy_to_ram(&self, batch: &CopyBatch<'_>) -> Result {
        let pool = &self.0.pool.0;
        if pool.fail_copy.load(Ordering::SeqCst) {
            return Err(code::EFAULT);
        }
        pool.copies_to_ram.fetch_add(1, Ordering::SeqCst);
        let phys = self.phys();
        for (i, e) in batch.system.iter().enumerate() {
            if let Some(dst) = self.system_pfn(*e) {
                phys.set_data(dst, phys.data(batch.device_pfn + i as u64));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------- driver

/// Per-range payload: one pages object per device.
pub struct MockRangeData {
    pub pages: Vec<SvmPages<MockDriver>>,
}

#[derive(Default)]
pub struct DriverStats {
    pub invalidations: AtomicUsize,
    pub unmaps_seen: AtomicUsize,
    /// Allocator calls made during invalidate callbacks (must stay 0).
    pub allocs_in_invalidate: AtomicUsize,
    pub refuse_nonblocking: AtomicBool,
    /// Bytes of GPU mappings the invalidations asked to zap.
    pub zapped_bytes: AtomicUsize,
}

/// Per-notifier payload: the window `notifier_data` was asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MockNotifierData {
    pub window: (u64, u64),
}

/// Which driver hook ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    RangeLinked,
    RangeUnlinked,
    NotifierLinked,
    NotifierUnlinked,
    /// `notifier_data` (kept apart from the four hooks, in [`HookLog::data_calls`]).
    NotifierData,
}

/// One hook call, with what the hook could observe when it ran.
#[derive(Clone, Copy, Debug)]
pub struct HookEvent {
    pub kind: HookKind,
    /// The range's span (range hooks) or the notifier's window (notifier hooks, notifier_data).
    pub span: (u64, u64),
    /// The notifier's window.
    pub notifier: (u64, u64),
    /// Identity of the range (range hooks) or 0.
    pub range_addr: usize,
    /// Identity of the notifier, or 0 for `notifier_data`.
    pub notifier_addr: usize,
    /// `notifier.data().window`, or `(0, 0)` for `notifier_data`.
    pub data_window: (u64, u64),
    /// The driver allocator's call counter when the hook ran.
    pub alloc_calls: usize,
    /// The notifier lock's state, if the log knows the lock ([`HookLog::set_lock`]).
    pub lock: Option<LockSeen>,
    /// Range hooks: whether the notifier's index finds this range at its start.
    pub in_index: bool,
    /// Whether the notifier held no range.
    pub notifier_empty: bool,
    /// Whether the notifier's MMU interval notifier was registered.
    pub mmu_registered: bool,
}

/// A record of the driver hooks, with failure injection for `notifier_data`.
pub struct HookLog {
    events: Mutex<Vec<HookEvent>>,
    data_calls: Mutex<Vec<HookEvent>>,
    lock: Mutex<Option<MockLock>>,
    /// Make `notifier_data` fail with `ENOMEM` while set.
    pub fail_notifier_data: AtomicBool,
}

impl HookLog {
    pub fn new() -> Arc<Self> {
        // Reserved so that recording does not reach the heap in the common case.
        Arc::new(HookLog {
            events: Mutex::new(Vec::with_capacity(4096)),
            data_calls: Mutex::new(Vec::with_capacity(64)),
            lock: Mutex::new(None),
            fail_notifier_data: AtomicBool::new(false),
        })
    }
    /// Lets the hooks look at `lock` (the one given to `Svm::with_lock`).
    pub fn set_lock(&self, l: &MockLock) {
        *lock(&self.lock) = Some(l.clone());
    }
    /// Every hook event so far (the four hooks, not `notifier_data`).
    pub fn events(&self) -> Vec<HookEvent> {
        lock(&self.events).clone()
    }
    /// Removes and returns the hook events so far.
    pub fn take(&self) -> Vec<HookEvent> {
        core::mem::take(&mut *lock(&self.events))
    }
    /// The `notifier_data` calls so far.
    pub fn data_calls(&self) -> Vec<HookEvent> {
        lock(&self.data_calls).clone()
    }
    fn lock_seen(&self) -> Option<LockSeen> {
        lock(&self.lock).as_ref().map(MockLock::seen)
    }
}

/// The driver: unmaps every affected range, marks unmapped ranges on `Unmap`.
pub struct MockDriver {
    pub devs: Vec<MockDma>,
    pub alloc: MockAlloc,
    pub stats: Arc<DriverStats>,
    /// Where the index hooks are recorded (`None`: they do nothing, like the trait's defaults).
    pub hooks: Option<Arc<HookLog>>,
}

impl MockDriver {
    /// This driver, recording its hooks into `log`.
    pub fn with_hooks(self, log: &Arc<HookLog>) -> Self {
        MockDriver {
            hooks: Some(log.clone()),
            ..self
        }
    }

    fn notifier_event(&self, kind: HookKind, notifier: &Notifier<Self>) -> HookEvent {
        let window = (notifier.start(), notifier.end());
        HookEvent {
            kind,
            span: window,
            notifier: window,
            range_addr: 0,
            notifier_addr: notifier as *const Notifier<Self> as usize,
            data_window: notifier.data().window,
            alloc_calls: self.alloc.calls(),
            lock: self.hooks.as_ref().and_then(|l| l.lock_seen()),
            in_index: false,
            // SAFETY: The hooks run with the driver lock held (their contract).
            notifier_empty: unsafe { notifier.is_empty() },
            mmu_registered: lock(&notifier.mm_notifier().mm).is_some(),
        }
    }

    fn record_notifier(&self, kind: HookKind, notifier: &Notifier<Self>) {
        if let Some(log) = &self.hooks {
            let e = self.notifier_event(kind, notifier);
            lock(&log.events).push(e);
        }
    }

    fn record_range(&self, kind: HookKind, notifier: &Notifier<Self>, range: &Range<Self>) {
        if let Some(log) = &self.hooks {
            let mut e = self.notifier_event(kind, notifier);
            e.span = (range.start(), range.end());
            e.range_addr = range as *const Range<Self> as usize;
            // SAFETY: As above: the driver lock is held.
            e.in_index = unsafe { notifier.range_at(range.start()) }
                .is_some_and(|r| core::ptr::eq(r, range));
            lock(&log.events).push(e);
        }
    }
}

impl SvmDriver for MockDriver {
    type Mm = MockMm;
    type Lock = MockLock;
    type Alloc = MockAlloc;
    type Clock = MockClock;
    type Dma = MockDma;
    type Pagemap = MockPagemap;
    type Devmem = MockDevmem;
    type RangeData = MockRangeData;
    type NotifierData = MockNotifierData;

    fn range_data(&self, _span: Span) -> Result<MockRangeData> {
        Ok(MockRangeData {
            pages: self.devs.iter().map(|d| SvmPages::new(d.clone())).collect(),
        })
    }

    fn notifier_data(&self, span: Span) -> Result<MockNotifierData> {
        let window = (span.start(), span.end());
        if let Some(log) = &self.hooks {
            lock(&log.data_calls).push(HookEvent {
                kind: HookKind::NotifierData,
                span: window,
                notifier: window,
                range_addr: 0,
                notifier_addr: 0,
                data_window: (0, 0),
                alloc_calls: self.alloc.calls(),
                lock: log.lock_seen(),
                in_index: false,
                notifier_empty: true,
                mmu_registered: false,
            });
            if log.fail_notifier_data.load(Ordering::SeqCst) {
                return Err(code::ENOMEM);
            }
        }
        Ok(MockNotifierData { window })
    }

    fn range_linked(&self, notifier: &Notifier<Self>, range: &Range<Self>) {
        self.record_range(HookKind::RangeLinked, notifier, range);
    }

    fn range_unlinked(&self, notifier: &Notifier<Self>, range: &Range<Self>) {
        self.record_range(HookKind::RangeUnlinked, notifier, range);
    }

    fn notifier_linked(&self, notifier: &Notifier<Self>) {
        self.record_notifier(HookKind::NotifierLinked, notifier);
    }

    fn notifier_unlinked(&self, notifier: &Notifier<Self>) {
        self.record_notifier(HookKind::NotifierUnlinked, notifier);
    }

    fn for_each_pages<'a>(data: &'a MockRangeData, f: &mut dyn FnMut(&'a SvmPages<Self>)) {
        for p in &data.pages {
            f(p);
        }
    }

    fn invalidate(&self, inv: &Invalidation<'_, Self>) -> bool {
        if !inv.blockable() && self.stats.refuse_nonblocking.load(Ordering::SeqCst) {
            return false;
        }
        let before = self.alloc.calls();
        self.stats.invalidations.fetch_add(1, Ordering::SeqCst);
        for r in inv.ranges() {
            if inv.event() == MmuEvent::Unmap {
                self.stats.unmaps_seen.fetch_add(1, Ordering::SeqCst);
            }
            let zap = inv.zap_span(r);
            self.stats
                .zapped_bytes
                .fetch_add(zap.len() as usize, Ordering::SeqCst);
            // Splits partially unmapped ranges when the instance has splitting on.
            inv.unmap_range(r);
        }
        let during = self.alloc.calls() - before;
        self.stats
            .allocs_in_invalidate
            .fetch_add(during, Ordering::SeqCst);
        true
    }
}

/// Everything a test needs, wired together.
pub struct World {
    pub phys: Arc<Phys>,
    pub clock: MockClock,
    pub alloc: MockAlloc,
    pub mm: MockMm,
    pub devs: Vec<MockDma>,
    pub stats: Arc<DriverStats>,
    pub pagemap: MockPagemap,
    /// A peer device's pagemap (same owner: its pages are visible in place).
    pub peer: MockPagemap,
}

impl World {
    pub fn new(ndevs: u32) -> Self {
        let phys = Arc::new(Phys::default());
        let clock = MockClock::default();
        let alloc = MockAlloc::default();
        let mm = MockMm::new(phys.clone(), clock.clone());
        let devs: Vec<MockDma> = (0..ndevs).map(MockDma::new).collect();
        let pagemap = MockPagemap::new(0, Owner(0xd0d0), 4096);
        let peer = MockPagemap::new(1, Owner(0xd0d0), 4096);
        mm.add_pagemap(&pagemap);
        mm.add_pagemap(&peer);
        if let Some(d) = devs.first() {
            pagemap.set_env(&mm, d, &alloc, &clock);
        }
        let peer_dev = devs.get(1).cloned().unwrap_or_else(|| MockDma::new(99));
        peer.set_env(&mm, &peer_dev, &alloc, &clock);
        World {
            phys,
            clock,
            alloc,
            mm,
            devs,
            stats: Arc::new(DriverStats::default()),
            pagemap,
            peer,
        }
    }

    pub fn driver(&self) -> MockDriver {
        MockDriver {
            devs: self.devs.clone(),
            alloc: self.alloc.clone(),
            stats: self.stats.clone(),
            hooks: None,
        }
    }

    pub fn dma_live(&self) -> usize {
        self.devs.iter().map(|d| d.live()).sum()
    }
}
