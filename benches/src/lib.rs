//! Zero-cost backends and helpers for the gpusvm benchmarks (`benches/benches/*.rs`, report in
//! `docs/PERFORMANCE.md`).
//!
//! The core's mock backend is for tests (it logs, checks and simulates), so it would measure
//! itself. The backends here do the least any backend could do, so that a benchmark measures the
//! core:
//!
//! - [`BenchMm`]: one VMA covering everything (or, for building trees of small ranges, one VMA
//!   per page), `hmm_range_fault` that fills the pfn array with an identity mapping reported as
//!   4 KiB pages or as 2 MiB mappings (map order 9), and MMU interval notifiers with the kernel's
//!   sequence protocol that [`BenchMm::invalidate`] calls without allocating;
//! - [`BenchDma`]: `dma_map_page` returns `pfn << 12`;
//! - [`BenchDevmem`] and [`BenchPagemap`]: device memory for migration benchmarks, copied by a
//!   `memcpy` engine over [`Memory`];
//! - [`CountingAlloc`]: the core's [`Allocator`], zero-sized like a kernel allocator, with
//!   kmalloc's size classes and object alignment, counting calls and live bytes in global
//!   counters; [`CountingGlobal`] does the same for the process
//!   heap when a benchmark installs it as `#[global_allocator]`;
//! - [`BenchDriver`]: the [`SvmDriver`] tying them together with the core's [`SpinRwLock`], one
//!   [`SvmPages`] per range, and the canonical invalidate op (unmap every affected range, mark
//!   unmapped on `Unmap`).
//!
//! Handles that a kernel driver would hold as pointers (the DMA device, the pagemap) are
//! pointer-sized here too, so the core's structures have their kernel sizes; the compile-time
//! assertions at the bottom pin them (see `docs/PERFORMANCE.md`, "Memory").

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicIsize, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use gpusvm_core::{
    code, device_page_free, AllocKind, Allocator, Clock, CopyBatch, Ctx, DevmemAllocation,
    DevmemEnv, DevmemState, DmaDevice, DmaDirection, DmaEntry, HmmPfn, HmmRange, IntervalNotifier,
    Invalidation, MigratePfn, MigrateVma, Mm, MmapReadGuard, MmuEvent, MmuRange, Notifier, Owner,
    PageKind, PageShift, Pagemap, PgmapId, Protocol, Range, RangeRef, Result, Span, SpinRwLock,
    Subscriber, Svm, SvmConfig, SvmDriver, SvmPages, VmaFlags, VmaInfo,
};

/// The base page size.
pub const PAGE: u64 = 4096;
/// 2 MiB.
pub const SZ_2M: u64 = 2 << 20;
/// The notifier window size used by every benchmark (upstream's recommended 512 MiB).
pub const NOTIFIER_SIZE: u64 = 512 << 20;
/// Where benchmark ranges start (512 MiB aligned, far from 0).
pub const BASE: u64 = 0x10_0000_0000;
/// The top of the mirrored window (x86-64 user space).
pub const TASK_SIZE: u64 = 1 << 47;
/// Device pages a [`BenchMm`] tracks at once (256 MiB of migrated memory).
pub const MAX_DEVICE_PAGES: usize = 1 << 16;

// ------------------------------------------------------------------------------ allocators

static CORE_CALLS: AtomicUsize = AtomicUsize::new(0);
static CORE_LIVE: AtomicIsize = AtomicIsize::new(0);
static CORE_LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static CORE_LIVE_SLAB_BYTES: AtomicIsize = AtomicIsize::new(0);

/// Counters of an allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Allocation calls so far.
    pub calls: usize,
    /// Allocations not yet freed.
    pub live: isize,
    /// Bytes requested by the live allocations.
    pub live_bytes: isize,
    /// Bytes the live allocations occupy after rounding to the allocator's size classes
    /// ([`CountingAlloc`]: kmalloc's; [`CountingGlobal`]: same as `live_bytes`).
    pub live_slab_bytes: isize,
}

impl AllocStats {
    /// `self - before`, counter by counter.
    pub fn since(self, before: AllocStats) -> AllocStats {
        AllocStats {
            calls: self.calls - before.calls,
            live: self.live - before.live,
            live_bytes: self.live_bytes - before.live_bytes,
            live_slab_bytes: self.live_slab_bytes - before.live_slab_bytes,
        }
    }
}

/// The size class `kmalloc` serves a request of `size` bytes from (x86-64 with 4 KiB pages:
/// 8, 16, 32, 64, 96, 128, 192, then powers of two; `kvmalloc` sizes above 8 KiB take whole
/// pages).
pub fn kmalloc_size(size: usize) -> usize {
    match size {
        0..=8 => 8,
        9..=16 => 16,
        17..=32 => 32,
        33..=64 => 64,
        65..=96 => 96,
        97..=128 => 128,
        129..=192 => 192,
        193..=8192 => size.next_power_of_two(),
        _ => size.next_multiple_of(4096),
    }
}

/// The layout the bench allocator really uses for `layout`: its kmalloc size class, aligned as
/// a slab object of that class is (the largest power of two dividing the class size, at most a
/// page: kmalloc-192 objects are 64-byte aligned, power-of-two classes naturally aligned).
fn slab_layout(layout: Layout) -> Layout {
    let size = kmalloc_size(layout.size());
    let align = (size & size.wrapping_neg()).min(4096).max(layout.align());
    Layout::from_size_align(size, align).unwrap_or(layout)
}

/// The core's allocator: the system heap, counted, with kmalloc's size classes and object
/// alignment (so that the core's objects sit in memory as they do in the kernel). Zero-sized
/// like the kernel's, so ranges and arrays carry no handle.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingAlloc;

impl CountingAlloc {
    /// The counters of every `CountingAlloc` (process-wide).
    pub fn stats() -> AllocStats {
        AllocStats {
            calls: CORE_CALLS.load(Ordering::Relaxed),
            live: CORE_LIVE.load(Ordering::Relaxed),
            live_bytes: CORE_LIVE_BYTES.load(Ordering::Relaxed),
            live_slab_bytes: CORE_LIVE_SLAB_BYTES.load(Ordering::Relaxed),
        }
    }
}

// SAFETY: Forwards to the system allocator with a layout at least as large and as aligned as
// the one asked for, and frees with the same derived layout.
unsafe impl Allocator for CountingAlloc {
    fn allocate(&self, layout: Layout, _kind: AllocKind) -> Result<NonNull<u8>> {
        let slab = slab_layout(layout);
        CORE_CALLS.fetch_add(1, Ordering::Relaxed);
        CORE_LIVE.fetch_add(1, Ordering::Relaxed);
        CORE_LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        CORE_LIVE_SLAB_BYTES.fetch_add(slab.size() as isize, Ordering::Relaxed);
        // SAFETY: The core never asks for zero bytes.
        NonNull::new(unsafe { System.alloc(slab) }).ok_or(code::ENOMEM)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout, _kind: AllocKind) {
        let slab = slab_layout(layout);
        CORE_LIVE.fetch_sub(1, Ordering::Relaxed);
        CORE_LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        CORE_LIVE_SLAB_BYTES.fetch_sub(slab.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `allocate` with this layout, hence this slab layout.
        unsafe { System.dealloc(ptr.as_ptr(), slab) };
    }
}

static HEAP_CALLS: AtomicUsize = AtomicUsize::new(0);
static HEAP_LIVE: AtomicIsize = AtomicIsize::new(0);
static HEAP_LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

/// A counting process allocator. A benchmark that wants heap counts installs it:
/// `#[global_allocator] static GLOBAL: CountingGlobal = CountingGlobal;`
#[derive(Debug)]
pub struct CountingGlobal;

impl CountingGlobal {
    /// The counters (all zero if no benchmark installed the allocator).
    pub fn stats() -> AllocStats {
        AllocStats {
            calls: HEAP_CALLS.load(Ordering::Relaxed),
            live: HEAP_LIVE.load(Ordering::Relaxed),
            live_bytes: HEAP_LIVE_BYTES.load(Ordering::Relaxed),
            live_slab_bytes: HEAP_LIVE_BYTES.load(Ordering::Relaxed),
        }
    }
}

// SAFETY: Forwards every call to `System` unchanged; the counters are side effects.
unsafe impl GlobalAlloc for CountingGlobal {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP_CALLS.fetch_add(1, Ordering::Relaxed);
        HEAP_LIVE.fetch_add(1, Ordering::Relaxed);
        HEAP_LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: Forwarded from the caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        HEAP_CALLS.fetch_add(1, Ordering::Relaxed);
        HEAP_LIVE.fetch_add(1, Ordering::Relaxed);
        HEAP_LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: Forwarded from the caller.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP_LIVE.fetch_sub(1, Ordering::Relaxed);
        HEAP_LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: Forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HEAP_CALLS.fetch_add(1, Ordering::Relaxed);
        HEAP_LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: Forwarded from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

// ------------------------------------------------------------------------------------ mm

/// How [`BenchMm`] reports VMAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum VmaMode {
    /// One read-write anonymous VMA covering `[0, TASK_SIZE)`.
    Everything = 0,
    /// One VMA per 4 KiB page: every new range is a single page, whatever the chunk sizes.
    PerPage = 1,
}

struct Reg {
    start: u64,
    end: u64,
    sub: NonNull<dyn Subscriber>,
    storage: *const BenchNotifier,
}

/// The state of a [`BenchMm`].
pub struct MmInner {
    map_order: AtomicU8,
    vma_mode: AtomicU8,
    /// Even while idle, odd during an invalidation (the kernel's `invalidate_seq`).
    seq: AtomicU64,
    regs: Mutex<Vec<Reg>>,
    /// Zone data of the device pages initialized by migrations, until freed: a preallocated
    /// log (`device_page_init` must cost next to nothing) of `device_count` entries.
    device_pages: Box<[AtomicUsize]>,
    device_count: AtomicUsize,
}

// SAFETY: The registrations' subscriber pointers are only dereferenced while registered (the
// core removes a notifier before freeing it), and subscribers are `Sync`.
unsafe impl Send for MmInner {}
// SAFETY: As above.
unsafe impl Sync for MmInner {}

/// A CPU memory manager that costs (almost) nothing: see the crate docs.
#[derive(Clone)]
pub struct BenchMm(Arc<MmInner>);

impl Default for BenchMm {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl BenchMm {
    /// An mm with one VMA covering everything, reporting 4 KiB pages.
    pub fn new() -> Self {
        BenchMm(Arc::new(MmInner {
            map_order: AtomicU8::new(0),
            vma_mode: AtomicU8::new(VmaMode::Everything as u8),
            seq: AtomicU64::new(2),
            regs: Mutex::new(Vec::new()),
            device_pages: (0..MAX_DEVICE_PAGES).map(|_| AtomicUsize::new(0)).collect(),
            device_count: AtomicUsize::new(0),
        }))
    }

    /// Makes `hmm_range_fault` report mappings of `1 << order` pages (0: 4 KiB, 9: 2 MiB).
    pub fn set_map_order(&self, order: u8) {
        self.0.map_order.store(order, Ordering::Relaxed);
    }

    /// Changes how VMAs are reported.
    pub fn set_vma_mode(&self, mode: VmaMode) {
        self.0.vma_mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Number of registered interval notifiers.
    pub fn notifiers(&self) -> usize {
        lock(&self.0.regs).len()
    }

    /// Frees every device page that migrations initialized, as core mm does when they are
    /// unmapped or migrated back: each drops its reference on its allocation's tracker, so the
    /// allocations detach. Returns how many pages were freed.
    pub fn free_device_pages(&self) -> usize {
        let n = self.0.device_count.swap(0, Ordering::AcqRel);
        for slot in self.0.device_pages.iter().take(n) {
            let zone_data = slot.swap(0, Ordering::AcqRel);
            // SAFETY: `zone_data` was passed to `device_page_init` by the core for a
            // `BenchDriver` page, and each page is freed once (its slot is cleared).
            unsafe { device_page_free::<BenchDriver>(zone_data) };
        }
        n
    }

    /// One whole invalidation of `[start, end)` (`invalidate_range_start` + `_end`): calls every
    /// intersecting notifier. Allocates nothing. Returns whether every callback accepted it.
    pub fn invalidate(&self, start: u64, end: u64, event: MmuEvent) -> bool {
        let cur = self.0.seq.fetch_add(1, Ordering::AcqRel) + 1; // odd
        let range = MmuRange {
            start,
            end,
            event,
            owner: None,
            blockable: true,
        };
        let mut ok = true;
        {
            // The callbacks never register or remove notifiers, so they may run under the lock.
            let regs = lock(&self.0.regs);
            for r in regs.iter().filter(|r| r.start < end && start < r.end) {
                // SAFETY: Registered subscribers are alive (the core removes before freeing).
                ok &= unsafe { r.sub.as_ref() }.invalidate(&range, cur);
            }
        }
        self.0.seq.fetch_add(1, Ordering::AcqRel); // even again
        ok
    }
}

/// Interval-notifier storage with the kernel's sequence protocol (single-threaded benchmarks:
/// `read_begin` never has to wait).
pub struct BenchNotifier {
    seq: AtomicU64,
    mm: AtomicPtr<MmInner>,
}

// SAFETY: `insert` sets an odd sequence below the mm's counter, `set_seq` stores the odd counter
// of the running invalidation, so `read_retry` is true exactly when an invalidation hit the
// notifier since `read_begin`. Invalidations run synchronously on the caller's thread and the
// benchmarks are single-threaded, so `read_begin` never observes one in progress; `remove`
// unregisters under the registry lock, which running callbacks hold.
unsafe impl IntervalNotifier for BenchNotifier {
    type Mm = BenchMm;

    fn new() -> Self {
        BenchNotifier {
            seq: AtomicU64::new(1),
            mm: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    unsafe fn insert(
        &self,
        mm: &BenchMm,
        start: u64,
        len: u64,
        subscriber: NonNull<dyn Subscriber>,
    ) -> Result {
        let mut regs = lock(&mm.0.regs);
        self.seq
            .store(mm.0.seq.load(Ordering::Acquire) - 1, Ordering::Release);
        regs.push(Reg {
            start,
            end: start.saturating_add(len),
            sub: subscriber,
            storage: self,
        });
        self.mm
            .store(Arc::as_ptr(&mm.0).cast_mut(), Ordering::Release);
        Ok(())
    }

    unsafe fn remove(&self) {
        let mm = self.mm.swap(std::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: The mm outlives its notifiers: the `Svm` holding them holds a clone of it.
        if let Some(mm) = unsafe { mm.as_ref() } {
            lock(&mm.regs).retain(|r| !std::ptr::eq(r.storage, self));
        }
    }

    fn read_begin(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    fn read_retry(&self, seq: u64) -> bool {
        self.seq.load(Ordering::Acquire) != seq
    }

    fn set_seq(&self, cur_seq: u64) {
        self.seq.store(cur_seq, Ordering::Release);
    }
}

const ALL: VmaInfo = VmaInfo {
    start: 0,
    end: TASK_SIZE,
    flags: VmaFlags::READ
        .union(VmaFlags::WRITE)
        .union(VmaFlags::ANONYMOUS),
};

// SAFETY: Never reports device pages (so the core never dereferences zone-device data); every
// page is "present" and stays so. `migrate_vma_*` collects every page of the span as a system
// page (identity pfns) and installs every destination; device pages initialized by the core are
// recorded and freed exactly once by `free_device_pages`. `migrate_device_*` refuses.
unsafe impl Mm for BenchMm {
    type Notifier = BenchNotifier;

    fn mmget_not_zero(&self) -> bool {
        true
    }

    unsafe fn mmput(&self) {}

    fn mmap_read_lock(&self) {}

    unsafe fn mmap_read_unlock(&self) {}

    fn vma_lookup(&self, _lock: &MmapReadGuard<'_, Self>, addr: u64) -> Option<VmaInfo> {
        if addr >= TASK_SIZE {
            return None;
        }
        if self.0.vma_mode.load(Ordering::Relaxed) == VmaMode::PerPage as u8 {
            let start = addr & !(PAGE - 1);
            return Some(VmaInfo {
                start,
                end: start + PAGE,
                ..ALL
            });
        }
        Some(ALL)
    }

    fn find_vma_intersection(
        &self,
        lock: &MmapReadGuard<'_, Self>,
        start: u64,
        end: u64,
    ) -> Option<VmaInfo> {
        (start < end)
            .then(|| self.vma_lookup(lock, start))
            .flatten()
    }

    fn hmm_range_fault(
        &self,
        _lock: &MmapReadGuard<'_, Self>,
        range: &mut HmmRange<'_, BenchNotifier>,
    ) -> Result {
        if range.notifier.read_retry(range.notifier_seq) {
            return Err(code::EBUSY);
        }
        let order = self.0.map_order.load(Ordering::Relaxed);
        let first = range.start / PAGE;
        for (pfn, slot) in (first..).zip(range.pfns.iter_mut()) {
            *slot = HmmPfn::present(pfn, true, order);
        }
        Ok(())
    }

    fn classify_page(&self, _pfn: u64) -> PageKind {
        PageKind::System
    }

    fn migrate_vma_setup(
        &self,
        _lock: &MmapReadGuard<'_, Self>,
        args: &mut MigrateVma<'_>,
    ) -> Result {
        // Core mm fires a Migrate invalidation over the span, then collects the pages.
        self.invalidate(args.start, args.end, MmuEvent::Migrate);
        let first = args.start / PAGE;
        let flags = MigratePfn::MIGRATE | MigratePfn::WRITE;
        for (pfn, slot) in (first..).zip(args.src.iter_mut()) {
            *slot = MigratePfn(MigratePfn::from_pfn(pfn).0 | flags);
        }
        args.cpages = args.src.len();
        Ok(())
    }

    fn migrate_vma_pages(&self, _args: &mut MigrateVma<'_>) {}

    fn migrate_vma_finalize(&self, _args: &mut MigrateVma<'_>) {}

    fn migrate_device_pfns(&self, _src: &mut [MigratePfn]) -> Result {
        Err(code::EOPNOTSUPP)
    }

    fn migrate_device_pages(&self, _src: &mut [MigratePfn], _dst: &mut [MigratePfn]) {}

    fn migrate_device_finalize(&self, _src: &mut [MigratePfn], _dst: &mut [MigratePfn]) {}

    fn device_page_init(&self, _pfn: u64, zone_data: usize) {
        // Load + store rather than an atomic add: migrations here run on one thread, and a
        // locked add per page would be a backend cost the kernel does not have.
        let i = self.0.device_count.load(Ordering::Relaxed);
        self.0.device_count.store(i + 1, Ordering::Relaxed);
        self.0
            .device_pages
            .get(i)
            .expect("more than MAX_DEVICE_PAGES device pages live")
            .store(zone_data, Ordering::Release);
    }

    fn alloc_system_page(&self, _addr: Option<u64>, _order: u32) -> Result<u64> {
        Err(code::ENOMEM)
    }

    fn put_locked_page(&self, _pfn: u64) {}
}

// ------------------------------------------------------------------------ driver pieces

/// A DMA device whose mapping is the physical address. Pointer-sized, like a kernel driver's
/// device reference, so that the core's structures have their kernel sizes.
#[derive(Clone, Copy, Debug, Default)]
pub struct BenchDma(pub usize);

impl DmaDevice for BenchDma {
    #[inline]
    fn map_page(&self, pfn: u64, _order: u32, _dir: DmaDirection) -> Result<u64> {
        Ok(pfn << 12)
    }

    #[inline]
    fn unmap_page(&self, _addr: u64, _order: u32, _dir: DmaDirection) {}
}

/// A clock that never advances (no benchmark runs into a retry budget).
#[derive(Clone, Copy, Debug, Default)]
pub struct ZeroClock;

impl Clock for ZeroClock {
    fn now_ms(&self) -> u64 {
        0
    }
}

/// First device page frame of the benchmarks' VRAM.
pub const VRAM_BASE_PFN: u64 = 0x8000_0000;

/// Memory that migrations copy between: `ram` backs the system pages of
/// `[ram_base, ram_base + ram.len())` (identity pfns), `vram` the device pages from
/// [`VRAM_BASE_PFN`].
pub struct Memory {
    ram_base: u64,
    ram: Mutex<Vec<u8>>,
    vram: Mutex<Vec<u8>>,
}

impl Memory {
    /// `bytes` of system memory at virtual (= physical) address `ram_base`, filled with `fill`,
    /// and as much VRAM.
    pub fn new(ram_base: u64, bytes: usize, fill: u8) -> Arc<Memory> {
        Arc::new(Memory {
            ram_base,
            ram: Mutex::new(vec![fill; bytes]),
            vram: Mutex::new(vec![0; bytes]),
        })
    }

    /// The byte at `offset` of VRAM.
    pub fn vram_byte(&self, offset: usize) -> Option<u8> {
        lock(&self.vram).get(offset).copied()
    }

    /// The copy engine: one `memcpy` per run of pages that are contiguous on both sides (a
    /// DMA engine copies a batch in one go; the planner makes the device side contiguous).
    ///
    /// # Errors
    ///
    /// `EFAULT` for pages outside the memory.
    pub fn copy(&self, batch: &CopyBatch<'_>, to_device: bool) -> Result {
        let (ram, vram) = (&mut *lock(&self.ram), &mut *lock(&self.vram));
        let mut i = 0;
        while let Some(first) = batch.system.get(i) {
            if first.is_none() {
                i += 1;
                continue;
            }
            // Extend the run while the system side stays contiguous.
            let mut n = 1;
            while batch
                .system
                .get(i + n)
                .is_some_and(|e| !e.is_none() && e.addr() == first.addr() + n as u64 * PAGE)
            {
                n += 1;
            }
            let len = n * PAGE as usize;
            let sys = first
                .addr()
                .checked_sub(self.ram_base)
                .ok_or(code::EFAULT)?;
            let dpfn = batch.device_pfn + i as u64;
            let dev = dpfn.checked_sub(VRAM_BASE_PFN).ok_or(code::EFAULT)? * PAGE;
            let (Ok(sys), Ok(dev)) = (usize::try_from(sys), usize::try_from(dev)) else {
                return Err(code::EFAULT);
            };
            let (Some(r), Some(v)) = (ram.get_mut(sys..sys + len), vram.get_mut(dev..dev + len))
            else {
                return Err(code::EFAULT);
            };
            if to_device {
                v.copy_from_slice(r);
            } else {
                r.copy_from_slice(v);
            }
            i += n;
        }
        Ok(())
    }
}

/// The benchmarks' device-memory pagemap: maps device pages at their physical address.
#[derive(Clone)]
pub struct BenchPagemap(pub Arc<Memory>);

impl Pagemap<BenchDriver> for BenchPagemap {
    fn pgmap(&self) -> PgmapId {
        PgmapId(1)
    }
    fn owner(&self) -> Owner {
        Owner(1)
    }
    fn device_map(
        &self,
        _dev: &BenchDma,
        pfn: u64,
        order: u32,
        dir: DmaDirection,
    ) -> Result<DmaEntry> {
        DmaEntry::encode(pfn << 12, Protocol::DRIVER, order, dir)
    }
    fn device_unmap(&self, _dev: &BenchDma, _entry: DmaEntry) {}
    fn populate_mm(
        &self,
        _lock: &MmapReadGuard<'_, BenchMm>,
        _span: Span,
        _timeslice_ms: u64,
    ) -> Result {
        Err(code::ENODEV)
    }
}

/// A device-memory allocation of the benchmarks: device pages from [`VRAM_BASE_PFN`], copied
/// by [`Memory`]'s `memcpy` engine.
#[derive(Clone)]
pub struct BenchDevmem(Arc<DevmemInner>);

struct DevmemInner {
    state: DevmemState<BenchDriver>,
    mem: Arc<Memory>,
}

impl BenchDevmem {
    /// A fresh allocation of `size` bytes for migrations in `mm`.
    ///
    /// # Panics
    ///
    /// If `size` is not a non-zero multiple of the page size.
    pub fn new(mm: &BenchMm, mem: &Arc<Memory>, size: u64) -> Self {
        let env = DevmemEnv {
            mm: mm.clone(),
            pagemap: BenchPagemap(mem.clone()),
            dev: BenchDma(1),
            alloc: CountingAlloc,
            clock: ZeroClock,
            page: PageShift::SZ_4K,
        };
        let state = DevmemState::new(env, size, false).expect("devmem size");
        BenchDevmem(Arc::new(DevmemInner {
            state,
            mem: mem.clone(),
        }))
    }
}

impl DevmemAllocation<BenchDriver> for BenchDevmem {
    fn state(&self) -> &DevmemState<BenchDriver> {
        &self.0.state
    }
    fn populate_pfns(&self, pfns: &mut [u64]) -> Result {
        for (pfn, slot) in (VRAM_BASE_PFN..).zip(pfns.iter_mut()) {
            *slot = pfn;
        }
        Ok(())
    }
    fn copy_to_devmem(&self, batch: &CopyBatch<'_>) -> Result {
        self.0.mem.copy(batch, true)
    }
    fn copy_to_ram(&self, batch: &CopyBatch<'_>) -> Result {
        self.0.mem.copy(batch, false)
    }
}

/// The driver's per-range payload: one pages object (one GPU).
pub struct BenchRange {
    /// The DMA view of the range for the GPU.
    pub pages: SvmPages<BenchDriver>,
}

static INVALIDATED: AtomicUsize = AtomicUsize::new(0);

/// The benchmark driver (zero-sized).
#[derive(Clone, Copy, Debug, Default)]
pub struct BenchDriver;

impl BenchDriver {
    /// Ranges the invalidate op has unmapped so far (process-wide).
    pub fn invalidated_ranges() -> usize {
        INVALIDATED.load(Ordering::Relaxed)
    }
}

impl SvmDriver for BenchDriver {
    type Mm = BenchMm;
    type Lock = SpinRwLock;
    type Alloc = CountingAlloc;
    type Clock = ZeroClock;
    type Dma = BenchDma;
    type Pagemap = BenchPagemap;
    type Devmem = BenchDevmem;
    type RangeData = BenchRange;
    type NotifierData = ();

    fn range_data(&self, _span: Span) -> Result<BenchRange> {
        Ok(BenchRange {
            pages: SvmPages::new(BenchDma(1)),
        })
    }

    #[inline]
    fn for_each_pages<'a>(data: &'a BenchRange, f: &mut dyn FnMut(&'a SvmPages<Self>)) {
        f(&data.pages);
    }

    fn invalidate(&self, inv: &Invalidation<'_, Self>) -> bool {
        let mut n = 0;
        for r in inv.ranges() {
            inv.unmap_range_pages(r);
            if inv.event() == MmuEvent::Unmap {
                inv.set_unmapped(r);
            }
            n += 1;
        }
        INVALIDATED.fetch_add(n, Ordering::Relaxed);
        true
    }
}

// ------------------------------------------------------------------------------ helpers

/// An `Svm` over `mm` with 512 MiB notifiers and the given chunk sizes.
///
/// # Panics
///
/// If the configuration is refused.
pub fn new_svm(mm: &BenchMm, chunk_sizes: &'static [u64]) -> Svm<BenchDriver> {
    let config = SvmConfig {
        name: "bench",
        mm_start: 0,
        mm_range: TASK_SIZE,
        notifier_size: NOTIFIER_SIZE,
        chunk_sizes,
        page_shift: 12,
    };
    Svm::new(
        config,
        BenchDriver,
        Some(mm.clone()),
        CountingAlloc,
        ZeroClock,
    )
    .expect("svm")
}

/// The GPU VA window of every benchmark.
pub fn gpuva() -> Span {
    Span::new(0, TASK_SIZE).expect("window")
}

/// The fault context of every benchmark (write faults, no page check).
pub fn ctx() -> Ctx {
    Ctx::default()
}

/// Chunk sizes of the Xe driver.
pub const XE_CHUNKS: &[u64] = &[2 << 20, 64 << 10, 4 << 10];

/// Address of the `i`-th range of a tree built by [`build_tree`].
#[inline]
pub fn range_addr(i: u64) -> u64 {
    BASE + i * 2 * PAGE
}

/// Creates `n` single-page ranges at [`range_addr`]`(0..n)` — every other page, so there are
/// gaps for new ranges — through `range_find_or_insert`, with one VMA per page so that chunk
/// selection yields single pages whatever the chunk sizes. Restores [`VmaMode::Everything`].
///
/// # Panics
///
/// If an insertion fails.
pub fn build_tree(svm: &mut Svm<BenchDriver>, mm: &BenchMm, n: u64) {
    mm.set_vma_mode(VmaMode::PerPage);
    let (gpuva, ctx) = (gpuva(), ctx());
    for i in 0..n {
        let r = svm
            .range_find_or_insert(range_addr(i), gpuva, &ctx)
            .expect("insert");
        debug_assert_eq!(r.size(), PAGE);
    }
    mm.set_vma_mode(VmaMode::Everything);
}

/// Like [`build_tree`], but creates the ranges [`range_addr`]`(i)` for `i` in `order` (for
/// example a random permutation of `0..n`, as faults arrive), so that the ranges are also
/// allocated in that order.
///
/// # Panics
///
/// If an insertion fails.
pub fn build_tree_in_order(svm: &mut Svm<BenchDriver>, mm: &BenchMm, order: &[u64]) {
    mm.set_vma_mode(VmaMode::PerPage);
    let (gpuva, ctx) = (gpuva(), ctx());
    for &i in order {
        let r = svm
            .range_find_or_insert(range_addr(i), gpuva, &ctx)
            .expect("insert");
        debug_assert_eq!(r.size(), PAGE);
    }
    mm.set_vma_mode(VmaMode::Everything);
}

/// A uniformly random permutation of `0..n` (Fisher–Yates with [`Rng`] seeded by `seed`).
pub fn shuffled(n: u64, seed: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    let mut rng = Rng::new(seed);
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
    v
}

/// DMA-maps the pages of the range at `addr`.
///
/// # Panics
///
/// If there is no range or `get_pages` fails.
pub fn map_range(svm: &Svm<BenchDriver>, addr: u64) {
    let r = svm.range_at(addr).expect("range");
    svm.range_get_pages(r, &r.data().pages, &ctx())
        .expect("get_pages");
}

/// The fault-hit check: the range containing `addr`, and whether its pages are valid for a
/// commit under the notifier lock.
#[inline]
pub fn fault_hit(svm: &Svm<BenchDriver>, addr: u64) -> bool {
    match svm.range_at(addr) {
        Some(r) => {
            let nl = svm.notifier_lock();
            svm.range_pages_valid(&nl, r)
        }
        None => false,
    }
}

/// The same check through `range_find_or_insert` (what a fault handler calls first).
#[inline]
pub fn fault_hit_find_or_insert(svm: &mut Svm<BenchDriver>, addr: u64, gpuva: Span) -> bool {
    match svm.range_find_or_insert(addr, gpuva, &Ctx::default()) {
        Ok(r) => {
            let nl = svm.notifier_lock();
            svm.range_pages_valid(&nl, &r)
        }
        Err(_) => false,
    }
}

/// A small, fast pseudo-random generator (SplitMix64), so that benchmarks need no `rand`.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform value in `[0, n)` (multiply-shift; `n > 0`).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// A counted reference to the range at `addr`, for benchmarks that hold ranges.
pub fn range_ref(svm: &Svm<BenchDriver>, addr: u64) -> Option<RangeRef<BenchDriver>> {
    svm.range_at(addr).map(Range::get)
}

/// Size report of the core's structures for this driver, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// `Range<BenchDriver>` (including the payload: one `SvmPages`).
    pub range: usize,
    /// `Notifier<BenchDriver>` (including the backend's interval-notifier storage).
    pub notifier: usize,
    /// The backend's interval-notifier storage inside `notifier`.
    pub notifier_backend: usize,
    /// `SvmPages<BenchDriver>`.
    pub pages: usize,
    /// `DmaEntry`.
    pub dma_entry: usize,
}

/// The sizes of the core's structures for [`BenchDriver`].
pub const SIZES: Sizes = Sizes {
    range: std::mem::size_of::<Range<BenchDriver>>(),
    notifier: std::mem::size_of::<Notifier<BenchDriver>>(),
    notifier_backend: std::mem::size_of::<BenchNotifier>(),
    pages: std::mem::size_of::<SvmPages<BenchDriver>>(),
    dma_entry: std::mem::size_of::<DmaEntry>(),
};

// Sizes, checked at compile time for equality: any change to a structure, growth or
// shrinkage, fails the build until docs/PERFORMANCE.md ("Memory") and these values are updated.
const _: () = assert!(
    SIZES.range == 152,
    "Range<BenchDriver> is no longer 152 bytes"
);
const _: () = assert!(
    SIZES.pages == 64,
    "SvmPages<BenchDriver> is no longer 64 bytes"
);
const _: () = assert!(
    SIZES.notifier - SIZES.notifier_backend == 88,
    "Notifier<BenchDriver> (without the backend's storage and its block array) is no longer 88 bytes"
);
const _: () = assert!(SIZES.dma_entry == 8, "DmaEntry is no longer 8 bytes");

/// The result of [`paired`].
#[derive(Clone, Copy, Debug)]
pub struct Paired {
    /// Median time of `a` per round.
    pub a: std::time::Duration,
    /// Median time of `b` per round.
    pub b: std::time::Duration,
    /// Median of the per-round ratios `a / b`.
    pub ratio: f64,
    /// First quartile of the ratios.
    pub q1: f64,
    /// Third quartile of the ratios.
    pub q3: f64,
    /// Ratio of the fastest `a` to the fastest `b`: the least disturbed runs, the best estimate
    /// on a machine that other jobs preempt.
    pub min_ratio: f64,
}

impl std::fmt::Display for Paired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ratio {:.3} (quartiles {:.3}–{:.3}), of minimums {:.3}; medians {:.2?} vs {:.2?}",
            self.ratio, self.q1, self.q3, self.min_ratio, self.a, self.b
        )
    }
}

/// A paired comparison that tolerates a machine whose load changes: after three warm-up rounds,
/// runs `a` and `b` back to back, `rounds` times, each returning the time of its own timed part,
/// and takes the median of the per-round ratios. Adjacent runs see the same load, so the ratio is
/// steadier than a ratio of two medians taken seconds apart. The order alternates: even rounds
/// run `a` first, odd rounds `b` first, so that neither side always inherits the other's cache
/// state or always runs first after a preemption.
pub fn paired(
    rounds: usize,
    mut a: impl FnMut() -> std::time::Duration,
    mut b: impl FnMut() -> std::time::Duration,
) -> Paired {
    // Warm-up: first touches of fresh memory, caches, frequency.
    for _ in 0..3 {
        a();
        b();
    }
    let mut ta = Vec::with_capacity(rounds);
    let mut tb = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds.max(1) {
        let (x, y) = if round % 2 == 0 {
            let x = a();
            (x, b())
        } else {
            let y = b();
            (a(), y)
        };
        ta.push(x);
        tb.push(y);
        ratios.push(x.as_secs_f64() / y.as_secs_f64().max(1e-12));
    }
    ta.sort();
    tb.sort();
    ratios.sort_by(f64::total_cmp);
    let q = |v: &[f64], num: usize| v[(v.len() - 1) * num / 4];
    Paired {
        min_ratio: ta[0].as_secs_f64() / tb[0].as_secs_f64().max(1e-12),
        a: ta[ta.len() / 2],
        b: tb[tb.len() / 2],
        ratio: q(&ratios, 2),
        q1: q(&ratios, 1),
        q3: q(&ratios, 3),
    }
}

impl Paired {
    /// Saves the result as `target/criterion/paired/NAME.json`, next to criterion's results,
    /// for `benches/report.py`. Best effort: a failure is printed, not fatal.
    pub fn save(&self, name: &str) {
        // The benchmark runs as target/<profile>/deps/<name>-<hash>.
        let Some(dir) = std::env::current_exe().ok().and_then(|exe| {
            exe.ancestors()
                .nth(3)
                .map(|t| t.join("criterion").join("paired"))
        }) else {
            return;
        };
        let json = format!(
            "{{\"ratio\":{},\"q1\":{},\"q3\":{},\"min_ratio\":{},\"a_ns\":{},\"b_ns\":{}}}\n",
            self.ratio,
            self.q1,
            self.q3,
            self.min_ratio,
            self.a.as_nanos(),
            self.b.as_nanos()
        );
        let r = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(format!("{name}.json")), json));
        if let Err(e) = r {
            eprintln!("could not save paired result {name}: {e}");
        }
    }
}
