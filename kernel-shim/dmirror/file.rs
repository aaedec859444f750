// SPDX-License-Identifier: GPL-2.0

//! The character device: one GPU VM ([`Mirror`]) per open file, bound to the opener's address
//! space, and the ioctls of `include/gpusvm_dmirror.h`.

use core::cell::UnsafeCell;
use core::mem::size_of;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use gpusvm_core::{
    code, HmmPfn, HmmRange, IntervalNotifier, KArray, KBox as CoreBox, Mm, MmUser, MmuRange, Owner,
    PageKind, Pagemap, Span, Subscriber, Svm,
};
use gpusvm_kshim::{ext, KAlloc, KMm, KNotifier, PAGE_SHIFT, PAGE_SIZE};
use kernel::bindings;
use kernel::ffi::{c_int, c_long, c_uint, c_ulong, c_void};
use kernel::prelude::*;
use kernel::sync::Mutex;
use kernel::uaccess::{UserPtr, UserSlice};

use crate::device::Device;
use crate::driver::{self, Drv};
use crate::pte::Pte;
use crate::uapi;

type CoreResult<T = ()> = gpusvm_core::Result<T>;

fn kerr(e: kernel::error::Error) -> gpusvm_core::Error {
    gpusvm_core::Error::from_errno(e.to_errno())
}

/// One open file: a GPU VM mirroring the opener's address space.
///
/// # Invariants
///
/// `dev` outlives the file (the file holds a module reference).
#[pin_data]
pub(crate) struct Mirror {
    dev: NonNull<Device>,
    mm: KMm,
    /// The driver lock (Xe: the VM lock): structural changes of the core need `&mut Svm`.
    #[pin]
    svm: Mutex<Svm<Drv>>,
}

// SAFETY: Only shared access to the device; the rest is the core's thread-safe state.
unsafe impl Send for Mirror {}
// SAFETY: As above.
unsafe impl Sync for Mirror {}

impl Mirror {
    fn dev(&self) -> &Device {
        // SAFETY: By the type invariant the device is alive.
        unsafe { self.dev.as_ref() }
    }
}

/// `file_operations::open`.
///
/// # Safety
///
/// Called by the VFS through `misc_open`, which stored our `miscdevice` in `private_data`.
pub(crate) unsafe extern "C" fn open(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `misc_open` set `private_data` to the registered miscdevice, embedded in a Device.
    let dev = unsafe {
        let misc = (*file).private_data.cast::<ext::miscdevice>();
        &*kernel::container_of!(misc.cast::<UnsafeCell<ext::miscdevice>>(), Device, misc)
    };
    if !dev.ready() {
        return ENODEV.to_errno();
    }
    let Some(mm) = KMm::current() else {
        return EINVAL.to_errno();
    };
    let svm = match driver::new_svm(dev, mm.clone()) {
        Ok(s) => s,
        Err(e) => return e.to_errno(),
    };
    let mirror = KBox::pin_init(
        pin_init!(Mirror {
            dev: NonNull::from(dev),
            mm,
            svm <- kernel::new_mutex!(svm, "gpusvm_dmirror_vm"),
        }),
        GFP_KERNEL,
    );
    match mirror {
        Ok(m) => {
            // SAFETY: The mirror is never moved out of its box; `release` rebuilds the pin.
            let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(m) });
            // SAFETY: We own the file's private data from now on.
            unsafe { (*file).private_data = raw.cast::<c_void>() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `file_operations::release`.
///
/// # Safety
///
/// Called once by the VFS for a file `open` succeeded on.
pub(crate) unsafe extern "C" fn release(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `open` stored a boxed Mirror; this is its last use.
    let mirror = unsafe { KBox::from_raw((*file).private_data.cast::<Mirror>()) };
    // Dropping the Svm removes its notifiers (waiting for running callbacks), unmaps and frees
    // every range.
    drop(mirror);
    0
}

/// `file_operations::unlocked_ioctl`.
///
/// # Safety
///
/// Called by the VFS for a file `open` succeeded on.
pub(crate) unsafe extern "C" fn ioctl(
    file: *mut bindings::file,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    // SAFETY: `open` stored a boxed Mirror, alive until `release`, which cannot run concurrently
    // with an ioctl on the same file.
    let mirror = unsafe { &*(*file).private_data.cast::<Mirror>() };
    let r = match cmd {
        uapi::READ => mirror.cmd_access(arg, false),
        uapi::WRITE => mirror.cmd_access(arg, true),
        uapi::MIGRATE_TO_DEV => mirror.cmd_migrate_to_dev(arg),
        uapi::MIGRATE_TO_SYS => mirror.cmd_migrate_to_sys(arg),
        uapi::RESIDENCY => mirror.cmd_residency(arg),
        uapi::STATS => mirror.cmd_stats(arg),
        uapi::EVICT => mirror.dev().evict_all(),
        _ => Err(gpusvm_core::Error::from_errno(bindings::ENOTTY as i32)),
    };
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno() as c_long,
    }
}

/// The command block of `arg`, validated.
fn read_cmd(arg: c_ulong) -> CoreResult<(uapi::gpusvm_dmirror_cmd, Span)> {
    let mut r = UserSlice::new(UserPtr::from_addr(arg as usize), size_of::<uapi::gpusvm_dmirror_cmd>()).reader();
    let cmd: uapi::gpusvm_dmirror_cmd = r.read().map_err(kerr)?;
    if cmd.flags != 0 || cmd.npages == 0 || cmd.npages > uapi::MAX_PAGES {
        return Err(code::EINVAL);
    }
    if cmd.addr % PAGE_SIZE as u64 != 0 {
        return Err(code::EINVAL);
    }
    let len = cmd.npages << PAGE_SHIFT;
    let span = Span::from_len(cmd.addr, len)?;
    if span.end() > driver::TASK_SIZE {
        return Err(code::EINVAL);
    }
    Ok((cmd, span))
}

fn write_back<T: kernel::transmute::AsBytes>(arg: c_ulong, v: &T) -> CoreResult {
    UserSlice::new(UserPtr::from_addr(arg as usize), size_of::<T>())
        .writer()
        .write(v)
        .map_err(kerr)
}

/// A temporary MMU interval notifier for an HMM walk outside the core's ranges (test_hmm's
/// snapshot does the same).
///
/// Its subscriber calls `set_seq` without a user lock, unlike what the core's `Subscriber`
/// contract asks (`set_seq` under the lock that also covers `read_retry`). That lock exists so
/// that a reader can validate its walk and use the result before the next invalidation
/// completes; nobody here does: `hmm_walk` only relies on `hmm_range_fault` itself, which
/// checks the sequence (and returns `EBUSY`) while it walks. So its results are unvalidated
/// snapshots: an invalidation may change or free a page right after the walk. The callers
/// treat them as such: RESIDENCY reports them to user space as advisory (the tests use them
/// only when nothing races), MIGRATE_TO_SYS only uses them to choose which runs to fault
/// again (a stale choice faults a page that is already in RAM, or leaves one that just moved),
/// and neither dereferences a page's zone-device data. `classify_page` only reads the struct
/// page, which exists as long as the frame is valid (the device's own pagemap cannot go away
/// while a file is open).
struct TempNotifier {
    n: KNotifier,
}

impl Subscriber for TempNotifier {
    fn invalidate(&self, _range: &MmuRange, cur_seq: u64) -> bool {
        self.n.set_seq(cur_seq);
        true
    }
}

/// Registration of a boxed [`TempNotifier`], removed on drop.
struct TempRegistration(CoreBox<TempNotifier, KAlloc>);

impl TempRegistration {
    fn new(mm: &KMm, span: Span) -> CoreResult<Self> {
        let b = CoreBox::try_new(
            TempNotifier {
                n: KNotifier::new(),
            },
            KAlloc,
        )
        .map_err(|(e, _)| e)?;
        let sub: &dyn Subscriber = &*b;
        let sub = NonNull::from(sub);
        // SAFETY: The box does not move and outlives the registration (removed in `drop`
        // before the box is freed); the caller holds no mmap lock.
        unsafe { b.n.insert(mm, span.start(), span.len(), sub)? };
        Ok(Self(b))
    }
}

impl Drop for TempRegistration {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`; not inside its callback.
        unsafe { self.0.n.remove() };
    }
}

/// An `hmm_range_fault` of `span` (snapshot when `default_flags` is 0).
fn hmm_walk(
    mm: &KMm,
    span: Span,
    default_flags: u64,
    owner: Option<Owner>,
    pfns: &mut [HmmPfn],
) -> CoreResult {
    let user = MmUser::get(mm).ok_or(code::EFAULT)?;
    let reg = TempRegistration::new(mm, span)?;
    for _ in 0..1000 {
        let seq = reg.0.n.read_begin();
        let lock = user.read_lock();
        let mut range = HmmRange {
            notifier: &reg.0.n,
            notifier_seq: seq,
            start: span.start(),
            end: span.end(),
            pfns: &mut *pfns,
            default_flags,
            dev_private_owner: owner,
        };
        let r = mm.hmm_range_fault(&lock, &mut range);
        drop(lock);
        if r != Err(code::EBUSY) {
            return r;
        }
        // SAFETY: Sleeping is allowed here (no lock held).
        unsafe { ext::gs_cond_resched() };
    }
    Err(code::EBUSY)
}

impl Mirror {
    /// READ / WRITE: the GPU accesses the range page by page through its page table, faulting
    /// through the core on a missing or read-only PTE.
    fn cmd_access(&self, arg: c_ulong, write: bool) -> CoreResult {
        let (mut cmd, span) = read_cmd(arg)?;
        let len = usize::try_from(span.len()).map_err(|_| code::EINVAL)?;
        let mut buf = KArray::try_new(len, 0u8, KAlloc)?;
        if write {
            UserSlice::new(UserPtr::from_addr(cmd.ptr as usize), len)
                .reader()
                .read_slice(&mut buf)
                .map_err(kerr)?;
        }
        let (faults, retries) = {
            let mut svm = self.svm.lock();
            driver::garbage_collect(&mut svm);
            self.gpu_access(&mut svm, span, &mut buf, write)?
        };
        if !write {
            UserSlice::new(UserPtr::from_addr(cmd.ptr as usize), len)
                .writer()
                .write_slice(&buf)
                .map_err(kerr)?;
        }
        cmd.faults = faults;
        cmd.retries = retries;
        write_back(arg, &cmd)
    }

    fn gpu_access(
        &self,
        svm: &mut Svm<Drv>,
        span: Span,
        buf: &mut [u8],
        write: bool,
    ) -> CoreResult<(u64, u64)> {
        let (mut faults, mut retries) = (0u64, 0u64);
        for (i, page) in buf.chunks_mut(PAGE_SIZE).enumerate() {
            let addr = span.start() + (i * PAGE_SIZE) as u64;
            let mut done = false;
            for _ in 0..driver::FAULT_ATTEMPTS {
                // The GPU's access: translate through the PTE under the notifier lock, which
                // keeps the mapping from being invalidated during the copy.
                {
                    let nl = svm.notifier_lock();
                    let pte = svm.range_at(addr).and_then(|r| {
                        let idx = usize::try_from((addr - r.start()) >> PAGE_SHIFT).ok()?;
                        if !svm.range_pages_valid(&nl, r) {
                            return None;
                        }
                        r.data().ptes.get(idx)
                    });
                    if let Some(pte) = pte.filter(|p: &Pte| p.writable || !write) {
                        self.dev().gpu_access(pte, page, write)?;
                        done = true;
                    }
                }
                if done {
                    break;
                }
                retries += driver::handle_gpu_fault(svm, addr, write)?;
                faults += 1;
            }
            if !done {
                return Err(code::EBUSY);
            }
        }
        Ok((faults, retries))
    }

    /// MIGRATE_TO_DEV: `drm_pagemap_populate_mm` of the range, in 2 MiB-aligned pieces that
    /// stay inside one VMA.
    fn cmd_migrate_to_dev(&self, arg: c_ulong) -> CoreResult {
        let (cmd, span) = read_cmd(arg)?;
        let mut svm = self.svm.lock();
        driver::garbage_collect(&mut svm);
        let pagemap = self.dev().pagemap();
        let user = MmUser::get(&self.mm).ok_or(code::EFAULT)?;
        let lock = user.read_lock();
        let mut addr = span.start();
        while addr < span.end() {
            let vma = self.mm.vma_lookup(&lock, addr).ok_or(code::EFAULT)?;
            let chunk = (addr & !((2 << 20) - 1)) + (2 << 20);
            let end = span.end().min(vma.end).min(chunk);
            pagemap.populate_mm(&lock, Span::new(addr, end)?, 0)?;
            addr = end;
        }
        drop(lock);
        drop(svm);
        write_back(arg, &cmd)
    }

    /// MIGRATE_TO_SYS: fault the device pages of the range with no device-private owner, so
    /// that core mm calls the pagemap's `migrate_to_ram` (the CPU-fault path of the core).
    fn cmd_migrate_to_sys(&self, arg: c_ulong) -> CoreResult {
        let (cmd, span) = read_cmd(arg)?;
        let n = usize::try_from(cmd.npages).map_err(|_| code::EINVAL)?;
        let mut pfns = KArray::try_new(n, HmmPfn(0), KAlloc)?;
        let owner = Some(self.dev().owner());
        hmm_walk(&self.mm, span, 0, owner, &mut pfns)?;
        let ours = self.dev().pgmap_id();
        let on_device = |p: &HmmPfn| {
            p.is_valid()
                && matches!(self.mm.classify_page(p.pfn()),
                    PageKind::Device { pgmap, .. } if Some(pgmap) == ours)
        };
        // Fault each run of device pages (only those: holes stay holes).
        let mut i = 0;
        while i < n {
            if !pfns.get(i).is_some_and(on_device) {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < n && pfns.get(j).is_some_and(on_device) {
                j += 1;
            }
            let run = Span::new(
                span.start() + (i * PAGE_SIZE) as u64,
                span.start() + (j * PAGE_SIZE) as u64,
            )?;
            let mut tmp = KArray::try_new(j - i, HmmPfn(0), KAlloc)?;
            hmm_walk(&self.mm, run, HmmPfn::REQ_FAULT, None, &mut tmp)?;
            i = j;
        }
        write_back(arg, &cmd)
    }

    /// RESIDENCY: an HMM snapshot (device pages reported in place) plus the GPU page table.
    fn cmd_residency(&self, arg: c_ulong) -> CoreResult {
        let (cmd, span) = read_cmd(arg)?;
        let n = usize::try_from(cmd.npages).map_err(|_| code::EINVAL)?;
        let mut pfns = KArray::try_new(n, HmmPfn(0), KAlloc)?;
        let mut out = KArray::try_new(n, 0u8, KAlloc)?;
        hmm_walk(&self.mm, span, 0, Some(self.dev().owner()), &mut pfns)?;
        let ours = self.dev().pgmap_id();
        for (o, p) in out.iter_mut().zip(pfns.iter()) {
            if p.is_error() {
                *o = uapi::PAGE_ERROR;
            } else if p.is_valid() {
                *o = uapi::PAGE_PRESENT;
                if p.is_writable() {
                    *o |= uapi::PAGE_WRITE;
                }
                if matches!(self.mm.classify_page(p.pfn()),
                    PageKind::Device { pgmap, .. } if Some(pgmap) == ours)
                {
                    *o |= uapi::PAGE_DEVICE;
                }
            }
        }
        {
            let mut svm = self.svm.lock();
            driver::garbage_collect(&mut svm);
            let nl = svm.notifier_lock();
            for (i, o) in out.iter_mut().enumerate() {
                let addr = span.start() + (i * PAGE_SIZE) as u64;
                let pte = svm.range_at(addr).and_then(|r| {
                    let idx = ((addr - r.start()) >> PAGE_SHIFT) as usize;
                    if !svm.range_pages_valid(&nl, r) {
                        return None;
                    }
                    r.data().ptes.get(idx)
                });
                if let Some(pte) = pte {
                    *o |= uapi::PAGE_GPU_MAPPED;
                    if pte.writable {
                        *o |= uapi::PAGE_GPU_WRITE;
                    }
                }
            }
        }
        UserSlice::new(UserPtr::from_addr(cmd.ptr as usize), n)
            .writer()
            .write_slice(&out)
            .map_err(kerr)?;
        write_back(arg, &cmd)
    }

    fn cmd_stats(&self, arg: c_ulong) -> CoreResult {
        let dev = self.dev();
        let mut st = uapi::gpusvm_dmirror_stats::default();
        {
            let mut svm = self.svm.lock();
            driver::garbage_collect(&mut svm);
            let d = &svm.driver().stats;
            st.ranges = svm.num_ranges() as u64;
            st.notifiers = svm.num_notifiers() as u64;
            st.invalidations = d.invalidations.load(Ordering::Relaxed);
            st.unmap_events = d.unmap_events.load(Ordering::Relaxed);
            st.gpu_faults = d.gpu_faults.load(Ordering::Relaxed);
            st.gc_removed = d.gc_removed.load(Ordering::Relaxed);
            let nl = svm.notifier_lock();
            for r in svm.ranges(Span::new(0, driver::TASK_SIZE)?) {
                let (pages, entries) = svm.pages_mapped_counts(&nl, &r.data().pages);
                st.mapped_pages += pages as u64;
                st.dma_entries += entries as u64;
            }
        }
        st.vram_pages = dev.vram_pages() as u64;
        st.vram_pages_used = dev.vram_used() as u64;
        st.devmem_live = dev.stats.devmem_live.load(Ordering::Relaxed) as u64;
        st.pages_to_device = dev.stats.pages_to_device.load(Ordering::Relaxed);
        st.pages_to_ram = dev.stats.pages_to_ram.load(Ordering::Relaxed);
        st.dma_mappings = gpusvm_kshim::dma::live_mappings() as u64;
        write_back(arg, &st)
    }
}
