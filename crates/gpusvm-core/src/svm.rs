//! The SVM instance (`struct drm_gpusvm`): one GPU VM mirroring one process address space.
//!
//! C source: [`drivers/gpu/drm/drm_gpusvm.c`] (brief §1.1, §2).
//!
//! # Locks, and how they appear in types
//!
//! - **Driver lock (DL)**: upstream asserts a driver lock around structural changes
//!   (`find_or_insert`, `range_remove`, tree walks). Here it is Rust's borrow: structural changes
//!   take `&mut Svm`, tree walks take `&Svm`. A driver puts the `Svm` in its own mutex or rwlock
//!   (Xe: the VM lock), so the borrow checker enforces what upstream can only assert.
//! - **Notifier lock (NL)**: the `D::Lock` in the shared state, held for writing only by the
//!   invalidation callback ([`crate::Invalidation`]) and for reading everywhere else
//!   ([`Svm::notifier_lock`]). Commit checks take the read guard as proof.
//! - **mmap lock**: taken by the core around VMA lookups and `hmm_range_fault`, never by callers.
//!
//! The parts of the instance the invalidation callback needs (driver, lock, allocator, clock,
//! garbage-collector list) live in a separately allocated [`SvmShared`] whose address never
//! changes, so notifiers can point at it while the `Svm` itself moves and is borrowed mutably.
//!
//! # Allocation
//!
//! Notifiers, ranges, pfn arrays and DMA arrays are allocated through `D::Alloc`, always with no
//! notifier lock held: allocate first, then lock, then re-check.

use core::ops::ControlFlow;
use core::ptr::NonNull;

use intrusive_collections::{Bound, LinkedList, RBTree, UnsafeRef};

use crate::addr::{align_down, PageShift, Span};
use crate::allocator::{KArray, KBox};
use crate::chunk::{select_chunk, ChunkRequest, ChunkSizes};
use crate::dma::DmaEntry;
use crate::driver::{Ctx, SvmDriver};
use crate::error::{code, Result};
use crate::flags::RangeFlags;
use crate::hmm::{chunk_order, HmmPfn};
use crate::lock::{NotifierLocked, RawRwLock, ReadGuard};
use crate::mm::{
    Clock, HmmRange, IntervalNotifier, Mm, MmNotifier, MmUser, MmapReadGuard, Owner, PageKind,
    PgmapId, VmaFlags,
};
use crate::notifier::{Notifier, NotifierTreeAdapter};
use crate::pages::{self, SvmPages, HMM_RANGE_DEFAULT_TIMEOUT_MS};
use crate::pages_api::PagesApi;
use crate::range::{Range, RangeGcAdapter, RangeRef};
use crate::sync::{AtomicBool, Ordering, UnsafeCell};

/// Creation parameters of an [`Svm`] (the arguments of `drm_gpusvm_init`).
#[derive(Clone, Copy, Debug)]
pub struct SvmConfig<'a> {
    /// Debug name.
    pub name: &'static str,
    /// First CPU address ranges may cover.
    pub mm_start: u64,
    /// Size of the CPU window.
    pub mm_range: u64,
    /// Size and alignment of notifier windows (a power of two; 512 MiB recommended).
    pub notifier_size: u64,
    /// Candidate range sizes, largest first (e.g. 2M, 64K, 4K).
    pub chunk_sizes: &'a [u64],
    /// The base page shift (`PAGE_SHIFT`).
    pub page_shift: u32,
}

impl SvmConfig<'_> {
    /// Parameters for a pages-only instance (userptr): no mm window, no chunks.
    pub fn pages_only(name: &'static str, page_shift: u32) -> SvmConfig<'static> {
        SvmConfig {
            name,
            mm_start: 0,
            mm_range: 0,
            notifier_size: 0,
            chunk_sizes: &[],
            page_shift,
        }
    }
}

/// The state shared with invalidation callbacks.
///
/// # Invariants
///
/// Allocated once by [`Svm::new`] and freed by `Svm::drop` after every notifier is gone. `gc`
/// holds ranges that are in their notifier's tree (so the tree's count keeps them alive); it is
/// modified under the notifier lock held for writing, or under the driver lock with the notifier
/// lock held for reading.
pub(crate) struct SvmShared<D: SvmDriver> {
    name: &'static str,
    driver: D,
    lock: D::Lock,
    clock: D::Clock,
    alloc: D::Alloc,
    mm: Option<D::Mm>,
    page: PageShift,
    gc: UnsafeCell<LinkedList<RangeGcAdapter<D>>>,
    range_split: AtomicBool,
}

// SAFETY: All fields are `Send + Sync` except the GC list, which is accessed under the locking
// discipline of the type invariants.
unsafe impl<D: SvmDriver> Sync for SvmShared<D> {}
// SAFETY: As above.
unsafe impl<D: SvmDriver> Send for SvmShared<D> {}

impl<D: SvmDriver> SvmShared<D> {
    pub(crate) fn id(&self) -> usize {
        self as *const Self as usize
    }
    pub(crate) fn driver(&self) -> &D {
        &self.driver
    }
    pub(crate) fn lock(&self) -> &D::Lock {
        &self.lock
    }
    pub(crate) fn clock(&self) -> &D::Clock {
        &self.clock
    }
    pub(crate) fn mm(&self) -> Option<&D::Mm> {
        self.mm.as_ref()
    }

    pub(crate) fn alloc(&self) -> &D::Alloc {
        &self.alloc
    }
    pub(crate) fn page_shift(&self) -> PageShift {
        self.page
    }
    pub(crate) fn range_split(&self) -> bool {
        self.range_split.load(Ordering::Relaxed)
    }

    /// Queues `range` for the garbage collector unless it is queued or removed already.
    ///
    /// # Safety
    ///
    /// The caller holds the notifier lock for writing, and `range` belongs to this instance.
    pub(crate) unsafe fn gc_push(&self, range: &Range<D>) {
        if range.gc_link.is_linked() || range.is_removed() {
            return;
        }
        // SAFETY: The write lock excludes every other user of the list; the range is in its
        // tree (not removed), whose count keeps it alive while it is listed.
        self.gc.with_mut(|list| unsafe {
            (*list).push_back(UnsafeRef::from_raw(range as *const Range<D>))
        });
    }

    /// Unlinks `range` from the GC list if it is on it.
    ///
    /// # Safety
    ///
    /// The caller holds the driver lock and the notifier lock.
    unsafe fn gc_unlink(&self, range: &Range<D>) {
        if !range.gc_link.is_linked() {
            return;
        }
        // SAFETY: Both locks exclude every other user of the list; a linked range is on this
        // instance's list (ranges are only ever pushed to their own instance's list).
        self.gc.with_mut(|list| unsafe {
            let mut cursor = (*list).cursor_mut_from_ptr(range);
            cursor.remove();
        });
    }

    /// Pops the first queued range.
    ///
    /// # Safety
    ///
    /// The caller holds the driver lock and the notifier lock.
    unsafe fn gc_pop(&self) -> Option<RangeRef<D>> {
        // SAFETY: Both locks exclude every other user of the list; listed ranges are alive.
        self.gc
            .with_mut(|list| unsafe { (*list).pop_front() })
            .map(|r| r.get())
    }
}

/// Outcome of [`Svm::scan_mm`] (`enum drm_gpusvm_scan_result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanResult {
    /// At least one page is absent or inaccessible, or the scan failed.
    Unpopulated,
    /// Every page is in the given pagemap.
    Equal,
    /// Every page is in exactly one other pagemap.
    Other,
    /// Every page is a present system page.
    System,
    /// Device pages of two or more pagemaps.
    MixedDevice,
    /// System and device pages.
    Mixed,
}

/// One GPU VM's shared-virtual-memory state (`struct drm_gpusvm`).
///
/// # Invariants
///
/// - `shared` points to the `SvmShared` allocated by `new` and freed by `drop`.
/// - `notifiers` holds the notifiers of this instance, non-overlapping, each owning the memory
///   of its node (allocated by `KBox` with `shared.alloc`) and registered with the mm.
/// - `window` is `None` exactly in pages-only mode.
pub struct Svm<D: SvmDriver> {
    shared: NonNull<SvmShared<D>>,
    notifiers: RBTree<NotifierTreeAdapter<D>>,
    window: Option<Span>,
    notifier_size: u64,
    chunks: Option<ChunkSizes>,
    nranges: usize,
}

// SAFETY: The instance owns its notifiers and shared state; moving it to another thread moves
// that ownership (the driver lock travels with it).
unsafe impl<D: SvmDriver> Send for Svm<D> {}
// SAFETY: `&Svm` methods only read the trees (excluded from writers by `&mut Svm`) or use the
// notifier lock and per-pages state locks.
unsafe impl<D: SvmDriver> Sync for Svm<D> {}

impl<D: SvmDriver> Svm<D> {
    /// `drm_gpusvm_init`.
    ///
    /// With an mm, the window, notifier size and chunk sizes must be valid; without one (pages
    /// only, for userptr) they must all be zero or empty.
    ///
    /// # Errors
    ///
    /// `EINVAL` for bad parameters, `ENOMEM` if the shared state cannot be allocated.
    pub fn new(
        config: SvmConfig<'_>,
        driver: D,
        mm: Option<D::Mm>,
        alloc: D::Alloc,
        clock: D::Clock,
    ) -> Result<Self> {
        Self::with_lock(config, driver, D::Lock::new(), mm, alloc, clock)
    }

    /// [`Svm::new`] with a notifier lock the caller made: for a lock that lives outside the
    /// instance at a fixed address, such as the `notifier_lock` that C callers of upstream's API
    /// take themselves (`drm_gpusvm_notifier_lock`).
    ///
    /// # Errors
    ///
    /// As for [`Svm::new`]; the lock is dropped.
    pub fn with_lock(
        config: SvmConfig<'_>,
        driver: D,
        lock: D::Lock,
        mm: Option<D::Mm>,
        alloc: D::Alloc,
        clock: D::Clock,
    ) -> Result<Self> {
        let page = PageShift::new(config.page_shift)?;
        let (window, chunks) = if mm.is_some() {
            if !config.notifier_size.is_power_of_two() || config.notifier_size < page.size() {
                return Err(code::EINVAL);
            }
            let window =
                Span::from_len(config.mm_start, config.mm_range).map_err(|_| code::EINVAL)?;
            let chunks = ChunkSizes::new(config.chunk_sizes, page, config.notifier_size)?;
            (Some(window), Some(chunks))
        } else {
            if config.mm_range != 0 || config.notifier_size != 0 || !config.chunk_sizes.is_empty() {
                return Err(code::EINVAL);
            }
            (None, None)
        };
        let shared = SvmShared {
            name: config.name,
            driver,
            lock,
            clock,
            alloc: alloc.clone(),
            mm,
            page,
            gc: UnsafeCell::new(LinkedList::new(RangeGcAdapter::new())),
            range_split: AtomicBool::new(false),
        };
        let shared = KBox::try_new(shared, alloc).map_err(|(e, _)| e)?;
        let (shared, _alloc) = KBox::into_raw(shared);
        // INVARIANT: fresh shared state, no notifiers, window as validated.
        Ok(Self {
            shared,
            notifiers: RBTree::new(NotifierTreeAdapter::new()),
            window,
            notifier_size: config.notifier_size,
            chunks,
            nranges: 0,
        })
    }

    fn shared(&self) -> &SvmShared<D> {
        // SAFETY: By the type invariants `shared` is alive while `self` is.
        unsafe { self.shared.as_ref() }
    }

    /// The shared state, with a lifetime independent of `self`'s borrow (for `split.rs`, which
    /// mutates `self` while using it).
    ///
    /// # Safety
    ///
    /// The caller does not use the reference after `self` is dropped.
    pub(crate) unsafe fn shared_state<'a>(&self) -> &'a SvmShared<D> {
        // SAFETY: By the type invariants the shared state lives until `Svm::drop`; the caller
        // does not use it beyond that.
        unsafe { &*self.shared.as_ptr() }
    }

    /// The candidate chunk sizes (empty in pages-only mode).
    pub fn chunk_sizes(&self) -> &[u64] {
        self.chunks.as_ref().map_or(&[], |c| c.as_slice())
    }

    /// The debug name.
    pub fn name(&self) -> &'static str {
        self.shared().name
    }

    /// The driver.
    pub fn driver(&self) -> &D {
        &self.shared().driver
    }

    /// The mirrored mm (`None` in pages-only mode).
    pub fn mm(&self) -> Option<&D::Mm> {
        self.shared().mm()
    }

    /// The allocator.
    pub fn alloc(&self) -> &D::Alloc {
        &self.shared().alloc
    }

    /// The clock.
    pub fn clock(&self) -> &D::Clock {
        &self.shared().clock
    }

    /// The base page size.
    pub fn page_shift(&self) -> PageShift {
        self.shared().page
    }

    /// The CPU window ranges may cover (`None` in pages-only mode).
    pub fn window(&self) -> Option<Span> {
        self.window
    }

    /// Number of live ranges.
    pub fn num_ranges(&self) -> usize {
        self.nranges
    }

    /// Number of notifiers.
    pub fn num_notifiers(&self) -> usize {
        self.notifiers.iter().count()
    }

    /// Chooses what a partial `Unmap` does to a range ([`Invalidation::unmap_range`]): split off
    /// the surviving part (`true`), or upstream's destroy-the-whole-range (`false`, the
    /// default).
    pub fn set_range_split(&self, on: bool) {
        self.shared().range_split.store(on, Ordering::Relaxed);
    }

    /// Whether range splitting is on.
    pub fn range_split(&self) -> bool {
        self.shared().range_split()
    }

    /// Takes the notifier lock for reading (`drm_gpusvm_notifier_lock`): the proof commit
    /// checks need.
    pub fn notifier_lock(&self) -> ReadGuard<'_, D::Lock> {
        self.pages_api().notifier_lock()
    }

    /// Takes the notifier lock for writing, for a pages-only user's own invalidate callback.
    pub fn notifier_lock_write(&self) -> crate::lock::WriteGuard<'_, D::Lock> {
        self.pages_api().notifier_lock_write()
    }

    /// The pages-only operations, as a handle that does not borrow the instance's trees
    /// ([`PagesApi`]).
    pub fn pages_api(&self) -> PagesApi<'_, D> {
        PagesApi::new(self.shared())
    }

    /// [`Svm::pages_api`] with a lifetime chosen by the caller, for a handle kept next to the
    /// instance (the C ABI keeps one per `struct drm_gpusvm`).
    ///
    /// # Safety
    ///
    /// The handle is not used after the instance is dropped.
    pub unsafe fn pages_api_unbounded<'a>(&self) -> PagesApi<'a, D> {
        // SAFETY: Forwarded from the caller.
        PagesApi::new(unsafe { self.shared_state() })
    }

    fn owns(&self, nl: &impl NotifierLocked) -> bool {
        self.pages_api().owns(nl)
    }

    // ---------------------------------------------------------------- lookups (driver lock)

    /// Notifiers intersecting `span`, in address order.
    pub fn notifiers(&self, span: Span) -> impl Iterator<Item = &Notifier<D>> + '_ {
        let mut cursor = self.notifiers.upper_bound(Bound::Included(&span.start()));
        match cursor.get() {
            Some(n) if n.end() > span.start() => {}
            Some(_) => cursor.move_next(),
            None => cursor = self.notifiers.lower_bound(Bound::Included(&span.start())),
        }
        let end = span.end();
        core::iter::from_fn(move || {
            let n = cursor.get()?;
            if n.start() >= end {
                return None;
            }
            cursor.move_next();
            Some(n)
        })
    }

    /// The first notifier intersecting `span` (`drm_gpusvm_notifier_find`).
    pub fn notifier_find(&self, span: Span) -> Option<&Notifier<D>> {
        self.notifiers(span).next()
    }

    /// The first range of `notifier` intersecting `span` (`drm_gpusvm_range_find`). No
    /// reference is taken: the borrow of `self` keeps the range alive.
    pub fn range_find<'a>(&'a self, notifier: &'a Notifier<D>, span: Span) -> Option<&'a Range<D>> {
        if !self.owns_notifier(notifier) {
            return None;
        }
        // SAFETY: `&self` is the driver lock.
        unsafe { notifier.range_find(span) }
    }

    fn owns_notifier(&self, notifier: &Notifier<D>) -> bool {
        self.notifier_at(notifier.start())
            .is_some_and(|n| core::ptr::eq(n, notifier))
    }

    fn notifier_at(&self, addr: u64) -> Option<&Notifier<D>> {
        self.notifiers
            .upper_bound(Bound::Included(&addr))
            .get()
            .filter(|n| n.span().contains(addr))
    }

    /// The range containing `addr`, if any.
    pub fn range_at(&self, addr: u64) -> Option<&Range<D>> {
        let n = self.notifier_at(addr)?;
        // SAFETY: `&self` is the driver lock.
        unsafe { n.range_at(addr) }
    }

    /// Every range intersecting `span`, in address order (`drm_gpusvm_for_each_range` over the
    /// notifiers of the span).
    pub fn ranges(&self, span: Span) -> impl Iterator<Item = &Range<D>> + '_ {
        self.notifiers(span).flat_map(move |n| {
            // SAFETY: `&self` is the driver lock, held for the iterator's lifetime.
            unsafe { n.ranges_in(span) }
        })
    }

    /// Calls `f` on every range intersecting `span`, in address order, allowing `f` to remove
    /// the range it is given (or any other) — the `_safe` iterators of upstream. Each step looks
    /// the next range up by address, so any change `f` makes is seen.
    pub fn for_each_range_safe(
        &mut self,
        span: Span,
        mut f: impl FnMut(&mut Self, &RangeRef<D>) -> ControlFlow<()>,
    ) {
        let mut from = span.start();
        while let Ok(rest) = Span::new(from, span.end()) {
            let Some(range) = self.ranges(rest).next().map(|r| r.get()) else {
                return;
            };
            from = range.end();
            if f(self, &range).is_break() {
                return;
            }
        }
    }

    /// Whether any range intersects `span` (`drm_gpusvm_has_mapping`).
    pub fn has_mapping(&self, span: Span) -> bool {
        self.ranges(span).next().is_some()
    }

    /// The start of the first VMA intersecting `span` (`drm_gpusvm_find_vma_start`); `None`
    /// where upstream returns `ULONG_MAX`.
    pub fn find_vma_start(&self, span: Span) -> Option<u64> {
        let mm = self.mm()?;
        let user = MmUser::get(mm)?;
        let lock = user.read_lock();
        mm.find_vma_intersection(&lock, span.start(), span.end())
            .map(|v| v.start)
    }

    // ---------------------------------------------------------------- structure (driver lock)

    /// `drm_gpusvm_range_find_or_insert`: the range covering `fault_addr`, created if needed
    /// with the largest chunk that fits the VMA, the notifier window and `gpuva`.
    ///
    /// Returns a counted reference in both cases (upstream returns an existing range without
    /// one).
    ///
    /// # Errors
    ///
    /// - `EINVAL`: pages-only instance; `fault_addr` outside the window (`end` excluded, unlike
    ///   upstream's off-by-one); no chunk size fits.
    /// - `EFAULT`: the mm is exiting.
    /// - `ENOENT`: no VMA at `fault_addr`.
    /// - `EPERM`: a write fault (`!ctx.read_only`) on a VMA without write permission, whether or
    ///   not the range exists.
    /// - `EIO`: a `VM_IO`/`VM_PFNMAP` VMA (checked after `EPERM`, as upstream).
    /// - `ENOMEM`, or the mm's error registering a new notifier, or the driver's
    ///   [`SvmDriver::notifier_data`] or [`SvmDriver::range_data`] error.
    pub fn range_find_or_insert(
        &mut self,
        fault_addr: u64,
        gpuva: Span,
        ctx: &Ctx,
    ) -> Result<RangeRef<D>> {
        self.range_find_or_insert_ref(fault_addr, gpuva, ctx)
            .map(Range::get)
    }

    /// [`Svm::range_find_or_insert`] without taking a counted reference: the range, borrowed for
    /// as long as `self` is (the tree keeps it alive, and only structural calls, which need
    /// `&mut self`, remove it). Upstream returns its range this way; two atomic operations per
    /// fault cheaper than the counted form.
    ///
    /// # Errors
    ///
    /// As [`Svm::range_find_or_insert`].
    pub fn range_find_or_insert_ref(
        &mut self,
        fault_addr: u64,
        gpuva: Span,
        ctx: &Ctx,
    ) -> Result<&Range<D>> {
        let window = self.window.ok_or(code::EINVAL)?;
        if !window.contains(fault_addr) {
            return Err(code::EINVAL);
        }
        let shared = self.shared;
        // SAFETY: By the type invariants the shared state outlives `self`'s borrow here; a
        // separate reference lets us mutate `self.notifiers` below.
        let sh = unsafe { shared.as_ref() };
        let mm = sh.mm.as_ref().ok_or(code::EINVAL)?;
        let user = MmUser::get(mm).ok_or(code::EFAULT)?;

        let (notifier, is_new) = match self.notifier_at(fault_addr) {
            Some(n) => (NonNull::from(n), false),
            None => {
                let nspan = Span::from_len(
                    align_down(fault_addr, self.notifier_size),
                    self.notifier_size,
                )
                .map_err(|_| code::EINVAL)?;
                let max_chunk = self.chunk_sizes().first().copied().unwrap_or(0);
                let data = sh.driver.notifier_data(nspan)?;
                let notifier = Notifier::new(
                    nspan,
                    max_chunk,
                    sh.page.size(),
                    shared,
                    sh.alloc.clone(),
                    data,
                )?;
                let node = KBox::try_new(notifier, sh.alloc.clone()).map_err(|(e, _)| e)?;
                let (ptr, _alloc) = KBox::into_raw(node);
                // SAFETY: The node was just allocated and is never moved; it is freed only after
                // `unregister`. We hold the driver lock (`&mut self`) and not the mmap lock.
                if let Err(e) = unsafe { ptr.as_ref().register(mm) } {
                    // SAFETY: Registration failed, so nothing refers to the node.
                    drop(unsafe { KBox::from_raw(ptr, sh.alloc.clone()) });
                    return Err(e);
                }
                (ptr, true)
            }
        };

        let result = self.insert_range(&user, notifier, fault_addr, gpuva, ctx);
        drop(user);
        let result = result.map(|(range, created)| {
            if created {
                self.nranges += 1;
            }
            range
        });
        match (&result, is_new) {
            (Ok(_), true) => {
                // INVARIANT: the new notifier holds the new range and is registered.
                // SAFETY: The node is alive and linked nowhere else.
                self.notifiers
                    .insert(unsafe { UnsafeRef::from_raw(notifier.as_ptr()) });
                // SAFETY: Alive: the tree holds it.
                sh.driver.notifier_linked(unsafe { notifier.as_ref() });
            }
            (Err(_), true) => {
                // SAFETY: The node is registered, holds no range (insertion failed before
                // linking), and is referenced by no tree; we are not in a callback.
                unsafe {
                    notifier.as_ref().unregister();
                    drop(KBox::from_raw(notifier, sh.alloc.clone()));
                }
            }
            _ => {}
        }
        // SAFETY: The range is in its notifier's tree (linked by `insert_range`, or found there),
        // which keeps it alive; only structural calls remove it, and they need `&mut self`, which
        // the returned borrow holds.
        result.map(|r| unsafe { r.as_ref() })
    }

    fn insert_range(
        &self,
        user: &MmUser<'_, D::Mm>,
        notifier: NonNull<Notifier<D>>,
        fault_addr: u64,
        gpuva: Span,
        ctx: &Ctx,
    ) -> Result<(NonNull<Range<D>>, bool)> {
        let sh = self.shared();
        let mm = user.mm();
        let lock = user.read_lock();
        let vma = mm.vma_lookup(&lock, fault_addr).ok_or(code::ENOENT)?;
        // Kept before the existing-range lookup (upstream's order, brief §9 item 15): a write
        // fault on a read-only VMA must fail whether or not the range exists; returning the range
        // would only defer the same EPERM to get_pages after a wasted HMM walk.
        if !ctx.read_only && !vma.writable() {
            return Err(code::EPERM);
        }
        // Upstream's next check: a `VM_IO`/`VM_PFNMAP` VMA has no struct pages to mirror.
        if vma.flags.contains(VmaFlags::PFNMAP) {
            return Err(code::EIO);
        }
        // SAFETY: The node is alive (owned by us or by the tree).
        let n = unsafe { notifier.as_ref() };
        // SAFETY: The caller holds `&mut self`, the driver lock.
        if let Some(existing) = unsafe { n.range_at(fault_addr) } {
            return Ok((NonNull::from(existing), false));
        }
        let vma_span = Span::new(vma.start, vma.end).map_err(|_| code::EINVAL)?;
        let chunks = self.chunks.as_ref().ok_or(code::EINVAL)?;
        let req = ChunkRequest {
            fault: fault_addr,
            vma: vma_span,
            notifier: n.span(),
            gpuva,
            page: sh.page,
            check_pages_threshold: ctx.check_pages_threshold,
        };
        let chosen = select_chunk(
            &req,
            chunks.as_slice(),
            // SAFETY: `&mut self` is the driver lock.
            |span| unsafe { n.ranges_in(span) }.next().is_some(),
            |span| self.pages_present(&lock, n, span, ctx),
        )
        .ok_or(code::EINVAL)?;

        let data = sh.driver.range_data(chosen)?;
        let mut flags = RangeFlags::empty();
        if ctx.devmem_possible && vma.migratable() {
            flags |= RangeFlags::MIGRATE_DEVMEM;
        }
        let range = Range::alloc(chosen, flags, notifier, sh.id(), data, sh.alloc.clone())?;
        let ptr = NonNull::from(&*range);
        let linked = {
            let _nl = sh.read_lock();
            // SAFETY: We hold the driver lock and the notifier lock; no other reference into the
            // trees is live; `chosen` overlaps no range and is at most the largest chunk. The
            // tree takes the allocation's count.
            unsafe { n.link_range(range.into_tree()) }
        };
        if let Err(r) = linked {
            // Not inside the notifier's window (chunk selection rules this out). Dropped after
            // the notifier lock, as every free is.
            // SAFETY: `r` came from `into_tree` and was never linked.
            drop(unsafe { RangeRef::from_tree(r) });
            return Err(code::EINVAL);
        }
        Ok((ptr, true))
    }

    /// The page check of chunk selection (`drm_gpusvm_check_pages`): a snapshot fault of `span`
    /// in which every page must be present. Any failure counts as "not present".
    fn pages_present(
        &self,
        lock: &MmapReadGuard<'_, D::Mm>,
        notifier: &Notifier<D>,
        span: Span,
        ctx: &Ctx,
    ) -> bool {
        let sh = self.shared();
        let Ok(npages) = usize::try_from(sh.page.pages(span.len())) else {
            return false;
        };
        let Ok(mut pfns) = KArray::try_new(npages, HmmPfn(0), sh.alloc.clone()) else {
            return false;
        };
        let mm = lock.mm();
        let deadline = sh
            .clock
            .now_ms()
            .saturating_add(HMM_RANGE_DEFAULT_TIMEOUT_MS);
        loop {
            let seq = notifier.mm_notifier().read_begin();
            let mut range = HmmRange {
                notifier: notifier.mm_notifier(),
                notifier_seq: seq,
                start: span.start(),
                end: span.end(),
                pfns: &mut pfns,
                default_flags: 0,
                dev_private_owner: ctx.device_private_owner,
            };
            match mm.hmm_range_fault(lock, &mut range) {
                Ok(()) => break,
                Err(e) if e == code::EBUSY && sh.clock.now_ms() <= deadline => continue,
                Err(_) => return false,
            }
        }
        let mut i = 0usize;
        while let Some(&pfn) = pfns.get(i) {
            if !pfn.is_valid() {
                return false;
            }
            i = i.saturating_add(1usize << chunk_order(pfn, i, npages));
        }
        true
    }

    /// `drm_gpusvm_range_remove`: unmaps the range's pages, takes it out of its notifier and the
    /// garbage-collector queue, drops the tree's reference, and removes the notifier if it became
    /// empty. Removing a range twice, or a range of another instance, does nothing.
    ///
    /// The driver must have torn down the GPU page-table entries of the range first (Xe's
    /// `xe_svm_range_unbind` before `drm_gpusvm_range_remove`): this unmaps the DMA addresses the
    /// GPU would otherwise keep using, and nothing invalidates those entries afterwards. A range
    /// whose pages an invalidation already unmapped (the usual garbage-collector case) has no
    /// live GPU entries, but a range removed for any other reason (a failed split, a stale VMA)
    /// may.
    pub fn range_remove(&mut self, range: &Range<D>) {
        if let Some(empty) = self.unlink_range(range) {
            // SAFETY: `unlink_range` returns a notifier of our tree that holds no range.
            unsafe { self.free_notifier(empty) };
        }
    }

    /// The part of `range_remove` that keeps the notifier: returns it if it is now empty.
    fn unlink_range(&mut self, range: &Range<D>) -> Option<NonNull<Notifier<D>>> {
        let mut none = LinkedList::new(RangeGcAdapter::new());
        let (_, empty) = self.replace_range(range, &mut none, |nl, _| {
            D::for_each_pages(range.data(), &mut |p| {
                let mut st = p.lock_state(nl);
                drop(p.free_locked(&mut st));
            });
        });
        empty
    }

    /// The removal protocol, shared by `range_remove` and `split_range`: under the notifier lock,
    /// `pages_done` deals with the range's pages (it sees the pieces), then the range leaves its notifier's index and
    /// the GC queue and is marked `REMOVED`, and `pieces` (ranges inside it, linked nowhere) take
    /// its place. After the lock, the tree's reference and any piece that could not be linked
    /// are dropped. Returns the number of pieces linked, and the notifier if it is now empty (the
    /// caller frees it, or keeps iterating over it first). A foreign or already removed range is
    /// left alone; its pieces are dropped.
    pub(crate) fn replace_range(
        &mut self,
        range: &Range<D>,
        pieces: &mut LinkedList<RangeGcAdapter<D>>,
        pages_done: impl FnOnce(&ReadGuard<'_, D::Lock>, &LinkedList<RangeGcAdapter<D>>),
    ) -> (usize, Option<NonNull<Notifier<D>>>) {
        let sh = self.shared();
        // SAFETY: `&mut self` is the driver lock.
        let notifier = (range.svm_id() == sh.id())
            .then(|| unsafe { range.notifier() })
            .flatten();
        let mut linked = 0usize;
        let mut rejected = LinkedList::new(RangeGcAdapter::new());
        let tree_ref = notifier.and_then(|notifier| {
            // SAFETY: A range's notifier is alive while the range is in its tree.
            let n = unsafe { notifier.as_ref() };
            let nl = sh.read_lock();
            pages_done(&nl, pieces);
            // SAFETY: We hold the driver lock and the notifier lock; the range is linked in this
            // notifier's index (its notifier pointer is set) and is unlinked exactly once.
            let removed = unsafe { n.unlink_range(range) };
            if removed.is_some() {
                while let Some(p) = pieces.pop_front() {
                    // SAFETY: As above; a piece lies inside the range, so it overlaps nothing
                    // else and is smaller than it; it goes to the block of its own start.
                    match unsafe { n.link_range(p) } {
                        Ok(()) => linked += 1,
                        Err(p) => rejected.push_back(p),
                    }
                }
            }
            // SAFETY: Both locks are held.
            unsafe {
                sh.gc_unlink(range);
                range.clear_notifier();
            }
            range.flag_word().set(RangeFlags::REMOVED.bits());
            removed
        });
        // Frees happen after the notifier lock.
        while let Some(p) = pieces.pop_front().or_else(|| rejected.pop_front()) {
            // SAFETY: `p` came from `into_tree`, is in no tree and was unlinked by `pop_front`.
            drop(unsafe { RangeRef::from_tree(p) });
        }
        let Some(notifier) = notifier else {
            return (0, None);
        };
        self.nranges = self.nranges.saturating_add(linked).saturating_sub(1);
        if let Some(r) = tree_ref {
            // SAFETY: `r` came from `into_tree` and is unlinked.
            drop(unsafe { RangeRef::from_tree(r) });
        }
        // SAFETY: `&mut self` is the driver lock; the notifier is alive (in our tree).
        let empty = unsafe { notifier.as_ref().is_empty() };
        (linked, empty.then_some(notifier))
    }

    /// Unregisters, unlinks and frees an empty notifier.
    ///
    /// # Safety
    ///
    /// `notifier` is in `self.notifiers` and holds no range.
    pub(crate) unsafe fn free_notifier(&mut self, notifier: NonNull<Notifier<D>>) {
        // SAFETY: The node is alive; we hold the driver lock and are not in a callback.
        unsafe { notifier.as_ref().unregister() };
        // SAFETY: As above.
        self.shared()
            .driver
            .notifier_unlinked(unsafe { notifier.as_ref() });
        // SAFETY: The node is in this tree (caller's guarantee).
        let _unlinked = unsafe {
            self.notifiers
                .cursor_mut_from_ptr(notifier.as_ptr())
                .remove()
        };
        let alloc = self.shared().alloc.clone();
        // SAFETY: Unregistered and unlinked: nothing refers to the node any more.
        drop(unsafe { KBox::from_raw(notifier, alloc) });
    }

    /// Pops a range queued by [`crate::Invalidation::set_unmapped`], for the driver's garbage
    /// collector: evict it if [`RangeFlags::PARTIAL_UNMAP`] and device-backed, unbind it, then
    /// [`Svm::range_remove`] it.
    pub fn take_unmapped(&mut self) -> Option<RangeRef<D>> {
        let sh = self.shared();
        let _nl = sh.read_lock();
        // SAFETY: `&mut self` is the driver lock and `_nl` the notifier lock.
        unsafe { sh.gc_pop() }
    }

    // ---------------------------------------------------------------- pages

    /// Whether `pages` is valid for a commit (`drm_gpusvm_pages_valid`). `nl` must be this
    /// instance's notifier lock; a foreign guard yields `false`.
    pub fn pages_valid(&self, nl: &impl NotifierLocked, pages: &SvmPages<D>) -> bool {
        self.pages_api().pages_valid(nl, pages)
    }

    /// Whether every pages object of `range` is valid (`drm_gpusvm_range_pages_valid`), and the
    /// range is neither unmapped nor removed.
    pub fn range_pages_valid(&self, nl: &impl NotifierLocked, range: &Range<D>) -> bool {
        let dead = RangeFlags::UNMAPPED | RangeFlags::REMOVED | RangeFlags::SPLIT_PENDING;
        if !self.owns(nl) || range.flags().intersects(dead) {
            return false;
        }
        let mut all = true;
        D::for_each_pages(range.data(), &mut |p| all &= p.flags().is_valid());
        all
    }

    /// Runs `f` on the DMA entries of `pages` if they are valid: what a commit writes into GPU
    /// page tables. `None` if invalid (the commit must retry the fault) or `nl` is foreign.
    pub fn pages_entries<R>(
        &self,
        nl: &impl NotifierLocked,
        pages: &SvmPages<D>,
        f: impl FnOnce(&[DmaEntry]) -> R,
    ) -> Option<R> {
        self.pages_api().pages_entries(nl, pages, f)
    }

    /// Pages mapped and DMA entries used by `pages` (introspection).
    pub fn pages_mapped_counts(
        &self,
        nl: &impl NotifierLocked,
        pages: &SvmPages<D>,
    ) -> (usize, usize) {
        pages.mapped_counts(nl)
    }

    /// `drm_gpusvm_get_pages`: fault in `span` of `mm` and DMA-map it into `pages`, with the
    /// caller's own interval notifier (pages-only mode / userptr).
    ///
    /// # Errors
    ///
    /// - `EINVAL`: `span` not page aligned.
    /// - `EBUSY`: notifier collisions outlasted the 1000 ms budget.
    /// - `EFAULT`: the mm is exiting; a page could not be faulted; the pages are unmapped;
    ///   `devmem_only` with a system page; a DMA mapping failed.
    /// - `EPERM`: write fault on a read-only mapping (from HMM).
    /// - `EOPNOTSUPP`: disallowed mixing of system and device pages, of several allocations
    ///   (without `allow_mixed`) or of several pagemaps, or a foreign `ZONE_DEVICE` page: the
    ///   driver should evict and retry.
    /// - `ENOMEM`, and any other `hmm_range_fault` error.
    pub fn get_pages(
        &self,
        pages: &SvmPages<D>,
        mm: &D::Mm,
        notifier: &MmNotifier<D::Mm>,
        span: Span,
        ctx: &Ctx,
    ) -> Result {
        self.pages_api().get_pages(pages, mm, notifier, span, ctx)
    }

    /// `drm_gpusvm_get_pages` for one pages object of `range` (the range's span, notifier and
    /// mm).
    ///
    /// # Errors
    ///
    /// As [`Svm::get_pages`]; also `EFAULT` if the range is unmapped or removed, and `EINVAL` if
    /// `pages` is not one of the range's pages objects or the range is foreign.
    pub fn range_get_pages(&self, range: &Range<D>, pages: &SvmPages<D>, ctx: &Ctx) -> Result {
        let sh = self.shared();
        if range.svm_id() != sh.id() {
            return Err(code::EINVAL);
        }
        let mut member = false;
        D::for_each_pages(range.data(), &mut |p| member |= core::ptr::eq(p, pages));
        if !member {
            return Err(code::EINVAL);
        }
        if range
            .flags()
            .intersects(RangeFlags::UNMAPPED | RangeFlags::REMOVED)
        {
            return Err(code::EFAULT);
        }
        if range.flags().contains(RangeFlags::SPLIT_PENDING) {
            // The garbage collector has not split it yet: retry after it ran.
            return Err(code::EAGAIN);
        }
        // SAFETY: `&self` is the driver lock, so the range cannot be removed meanwhile.
        let notifier = unsafe { range.notifier() }.ok_or(code::EFAULT)?;
        // SAFETY: The range is in the notifier's tree, which keeps the notifier alive for the
        // duration of the `&self` borrow.
        let n = unsafe { notifier.as_ref() };
        let mm = sh.mm.as_ref().ok_or(code::EINVAL)?;
        pages::get_pages(sh, pages, mm, n.mm_notifier(), range.span(), ctx)
    }

    /// `drm_gpusvm_unmap_pages` outside the notifier: takes the notifier lock for reading.
    pub fn unmap_pages(&self, pages: &SvmPages<D>) {
        self.pages_api().unmap_pages(pages)
    }

    /// `drm_gpusvm_range_unmap_pages` outside the notifier.
    pub fn range_unmap_pages(&self, range: &Range<D>) {
        D::for_each_pages(range.data(), &mut |p| self.unmap_pages(p));
    }

    /// `drm_gpusvm_free_pages`: unmaps and frees the DMA array.
    pub fn free_pages(&self, pages: &SvmPages<D>) {
        self.pages_api().free_pages(pages)
    }

    /// Whether `range` still lies inside one VMA. After an `mprotect` or `mremap` split the VMA
    /// under a range, a fault on one part can fail because of another part (a write fault on a
    /// writable page with a read-only page elsewhere in the range gets `EPERM` from HMM);
    /// upstream then loops. A driver that sees `EPERM` or `EFAULT` from `get_pages` checks this,
    /// removes a range that no longer fits, and refaults, which creates a range that fits.
    pub fn range_within_vma(&self, range: &Range<D>) -> bool {
        let Some(mm) = self.mm() else {
            return false;
        };
        let Some(user) = MmUser::get(mm) else {
            return false;
        };
        let lock = user.read_lock();
        mm.vma_lookup(&lock, range.start())
            .is_some_and(|v| v.start <= range.start() && range.end() <= v.end)
    }

    /// `drm_gpusvm_range_evict`: faults every page of `range` to system memory (a read fault with
    /// no device-private owner, so HMM migrates device pages back). The resulting invalidations
    /// do the unmapping.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a removed or foreign range or a pages-only instance; `EFAULT` if the mm is
    /// exiting; `ENOMEM`; `ETIME` if the budget ran out before an attempt; `EBUSY` if collisions
    /// lasted the whole budget; any other fault error.
    pub fn range_evict(&self, range: &Range<D>) -> Result {
        let sh = self.shared();
        if range.svm_id() != sh.id() {
            return Err(code::EINVAL);
        }
        // SAFETY: `&self` is the driver lock.
        let notifier = unsafe { range.notifier() }.ok_or(code::EINVAL)?;
        // SAFETY: As in `range_get_pages`.
        let n = unsafe { notifier.as_ref() };
        let mm = sh.mm.as_ref().ok_or(code::EINVAL)?;
        let npages = usize::try_from(sh.page.pages(range.size())).map_err(|_| code::ENOMEM)?;
        let user = MmUser::get(mm).ok_or(code::EFAULT)?;
        // The user reference is a guard, so this early return cannot leak it (brief §9 item 12).
        let mut pfns = KArray::try_new(npages, HmmPfn(0), sh.alloc.clone())?;
        let deadline = sh
            .clock
            .now_ms()
            .saturating_add(HMM_RANGE_DEFAULT_TIMEOUT_MS);
        let mut last = Err(code::EBUSY);
        while sh.clock.now_ms() <= deadline {
            let seq = n.mm_notifier().read_begin();
            if sh.clock.now_ms() > deadline {
                return Err(code::ETIME);
            }
            let lock = user.read_lock();
            let mut hr = HmmRange {
                notifier: n.mm_notifier(),
                notifier_seq: seq,
                start: range.start(),
                end: range.end(),
                pfns: &mut pfns,
                default_flags: HmmPfn::REQ_FAULT,
                dev_private_owner: None,
            };
            last = mm.hmm_range_fault(&lock, &mut hr);
            drop(lock);
            if last != Err(code::EBUSY) {
                break;
            }
        }
        last
    }

    /// `drm_gpusvm_scan_mm`: an advisory snapshot of where the range's pages are, relative to
    /// `pagemap` (`None`: system memory is "equal").
    pub fn scan_mm(
        &self,
        range: &Range<D>,
        owner: Option<Owner>,
        pagemap: Option<PgmapId>,
    ) -> ScanResult {
        let sh = self.shared();
        if range.svm_id() != sh.id() {
            return ScanResult::Unpopulated;
        }
        // SAFETY: `&self` is the driver lock.
        let Some(notifier) = (unsafe { range.notifier() }) else {
            return ScanResult::Unpopulated;
        };
        // SAFETY: As in `range_get_pages`.
        let n = unsafe { notifier.as_ref() };
        let Some(mm) = sh.mm.as_ref() else {
            return ScanResult::Unpopulated;
        };
        let Ok(npages) = usize::try_from(sh.page.pages(range.size())) else {
            return ScanResult::Unpopulated;
        };
        let Ok(mut pfns) = KArray::try_new(npages, HmmPfn(0), sh.alloc.clone()) else {
            return ScanResult::Unpopulated;
        };
        let Some(user) = MmUser::get(mm) else {
            return ScanResult::Unpopulated;
        };
        let deadline = sh
            .clock
            .now_ms()
            .saturating_add(HMM_RANGE_DEFAULT_TIMEOUT_MS);
        loop {
            let seq = n.mm_notifier().read_begin();
            let r = {
                let lock = user.read_lock();
                let mut hr = HmmRange {
                    notifier: n.mm_notifier(),
                    notifier_seq: seq,
                    start: range.start(),
                    end: range.end(),
                    pfns: &mut pfns,
                    default_flags: 0,
                    dev_private_owner: owner,
                };
                mm.hmm_range_fault(&lock, &mut hr)
            };
            match r {
                Ok(()) => {}
                Err(e) if e == code::EBUSY && sh.clock.now_ms() <= deadline => continue,
                // The error path takes no lock, so it cannot unlock one it does not hold
                // (brief §9 item 13).
                Err(_) => return ScanResult::Unpopulated,
            }
            let nl = sh.read_lock();
            if n.mm_notifier().read_retry(seq) {
                drop(nl);
                if sh.clock.now_ms() > deadline {
                    return ScanResult::Unpopulated;
                }
                continue;
            }
            return classify_scan(mm, &pfns, pagemap);
        }
    }
}

/// Folds the page classes of a snapshot into a [`ScanResult`] (brief §2.16 step 4).
fn classify_scan<M: Mm>(mm: &M, pfns: &[HmmPfn], pagemap: Option<PgmapId>) -> ScanResult {
    let npages = pfns.len();
    let mut state: Option<ScanResult> = None;
    let mut other: Option<PgmapId> = None;
    let mut i = 0usize;
    while let Some(&pfn) = pfns.get(i) {
        if !pfn.is_valid() {
            return ScanResult::Unpopulated;
        }
        let class = match mm.classify_page(pfn.pfn()) {
            PageKind::Device { pgmap, .. } if Some(pgmap) == pagemap => ScanResult::Equal,
            PageKind::Device { pgmap, .. } => match other {
                None => {
                    other = Some(pgmap);
                    ScanResult::Other
                }
                Some(o) if o == pgmap => ScanResult::Other,
                Some(_) => ScanResult::MixedDevice,
            },
            PageKind::System | PageKind::OtherZoneDevice if pagemap.is_none() => ScanResult::Equal,
            PageKind::System | PageKind::OtherZoneDevice => ScanResult::System,
        };
        state = Some(match state {
            None => class,
            Some(s) if s == class => s,
            Some(ScanResult::Mixed) => ScanResult::Mixed,
            Some(s) if s == ScanResult::System || class == ScanResult::System => ScanResult::Mixed,
            Some(_) => ScanResult::MixedDevice,
        });
        i = i.saturating_add(1usize << chunk_order(pfn, i, npages));
    }
    state.unwrap_or(ScanResult::Unpopulated)
}

impl<D: SvmDriver> Drop for Svm<D> {
    /// `drm_gpusvm_fini`: for every notifier, remove the MMU notifier first (waiting for running
    /// callbacks), then remove its ranges; then free the shared state. Covers the whole address
    /// space (upstream stops at `LONG_MAX`, brief §9 item 18).
    fn drop(&mut self) {
        while let Some(notifier) = self.notifiers.front().get().map(NonNull::from) {
            // SAFETY: The node is in our tree; we own the driver lock; not in a callback. It is
            // unregistered first so no invalidation runs while its ranges go.
            unsafe { notifier.as_ref().unregister() };
            let mut block = 0usize;
            loop {
                // SAFETY: The node stays alive until `free_notifier` below; `&mut self` is the
                // driver lock. Nothing is inserted meanwhile, so resuming at `block` is exact.
                let first =
                    unsafe { notifier.as_ref().first_range_from(&mut block) }.map(NonNull::from);
                let Some(range) = first else { break };
                // SAFETY: The range is in the tree, so it is alive.
                self.unlink_range(unsafe { range.as_ref() });
            }
            // SAFETY: In our tree and now empty.
            unsafe { self.free_notifier(notifier) };
        }
        let alloc = self.shared().alloc.clone();
        // SAFETY: Every notifier is unregistered and freed, so nothing refers to the shared
        // state; it was allocated by `KBox` with a clone of `alloc`.
        drop(unsafe { KBox::from_raw(self.shared, alloc) });
    }
}
