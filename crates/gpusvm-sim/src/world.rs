//! The simulated world: processes with their mm and GPU VM, the devices, and every operation a
//! scenario or workload can perform, checked by the integrity oracle and the leak checker.
//!
//! Operations take `&self`, so `concurrent` blocks can run several of them as simulated threads
//! (see [`crate::sched`]). A GPU access walks the process's GPU page table of the device; a
//! missing or insufficient entry raises a GPU page fault, served by the reference driver, and the
//! access is retried. Accesses touch real bytes — through the device's DMA mapper for system
//! memory, directly for VRAM — and every read is compared with the shadow copy.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use gpusvm_core::{code, Error, Owner, Span};

use crate::config::SimConfig;
use crate::driver::fault::{handle_gpu_fault, prefetch, Access};
use crate::driver::{AtomicMode, GpuVm, Preferred};
use crate::gpu::Device;
use crate::mem::{device_of_pfn, Pid, PAGE};
use crate::mm::fault::{Buf, CpuFault};
use crate::mm::{MapKind, ProcMm, Prot, Pte, SimMm};
use crate::oracle::{first_difference, Shadow};
use crate::shared::{lock, Shared};
use crate::stats::ProcStats;

/// Why an operation did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpError {
    /// An errno, as the kernel or driver reports it.
    Errno(Error),
    /// The CPU access would kill the process with SIGSEGV.
    Segv,
    /// The CPU access would kill the process with SIGBUS (a failed migration back to RAM).
    Sigbus(Error),
    /// A read returned bytes that differ from what was written: the simulation found a bug.
    Corruption(String),
    /// The operation refers to something that does not exist (a scenario mistake).
    Usage(String),
    /// A read succeeded and matched memory, but not the value the scenario's `expect=` names.
    Mismatch(String),
}

impl From<Error> for OpError {
    fn from(e: Error) -> Self {
        OpError::Errno(e)
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::Errno(e) => match e.name() {
                Some(n) => f.write_str(n),
                None => write!(f, "errno {}", -e.to_errno()),
            },
            OpError::Segv => f.write_str("SEGV"),
            OpError::Sigbus(e) => write!(f, "SIGBUS ({e})"),
            OpError::Corruption(m) => write!(f, "data corruption: {m}"),
            OpError::Usage(m) => f.write_str(m),
            OpError::Mismatch(m) => f.write_str(m),
        }
    }
}

/// The result of an operation.
pub type OpResult<T = ()> = Result<T, OpError>;

/// A named region of a process (`mmap NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Start address.
    pub start: u64,
    /// Length.
    pub len: u64,
}

/// One process.
pub struct Proc {
    /// Its name in the scenario.
    pub name: String,
    /// Process id.
    pub pid: Pid,
    /// Address space.
    pub mm: Arc<ProcMm>,
    /// GPU VM.
    pub vm: Arc<GpuVm>,
    /// Named regions.
    pub regions: Mutex<BTreeMap<String, Region>>,
}

/// Where one page is, as a residency map shows it ([`Proc::page_residency`]).
///
/// Unlike [`Residency`], which summarizes a whole span, this describes a single page and tells
/// an unmapped page from a mapped one that was never touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageResidency {
    /// No VMA covers the page.
    Unmapped,
    /// Mapped, but never populated (no PTE).
    Unpopulated,
    /// In system memory.
    Ram,
    /// In the device memory of this device.
    Vram(u32),
}

impl Proc {
    /// Where each page of `[start, start + len)` is: one entry per page, from the page holding
    /// `start` to the page holding the last byte. A page under migration counts where its data
    /// is until the migration completes (its source frame).
    ///
    /// Reads the page tables under the page-table lock, once for the whole span, so sampling a
    /// large buffer costs one pass over its populated pages.
    pub fn page_residency(&self, start: u64, len: u64) -> Vec<PageResidency> {
        let first = start / PAGE;
        let end = start.saturating_add(len).div_ceil(PAGE);
        let mut out = vec![PageResidency::Unmapped; end.saturating_sub(first) as usize];
        let st = self.mm.st();
        let (lo, hi) = (first * PAGE, end * PAGE);
        let vmas = st
            .vma(lo)
            .into_iter()
            .chain(st.vmas.range(lo..hi).map(|(_, v)| *v));
        for v in vmas {
            let (a, b) = (v.start.max(lo) / PAGE, v.end.min(hi) / PAGE);
            for slot in out
                .iter_mut()
                .take((b - first) as usize)
                .skip((a - first) as usize)
            {
                *slot = PageResidency::Unpopulated;
            }
        }
        for (vpn, pte) in st.ptes.range(first..end) {
            if let Some(slot) = out.get_mut((vpn - first) as usize) {
                *slot = match device_of_pfn(pte.pfn()) {
                    Some(d) => PageResidency::Vram(d),
                    None => PageResidency::Ram,
                };
            }
        }
        out
    }
}

/// What a GPU access does to one page.
enum GpuOp<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
    Atomic(u64),
}

/// Where a page lives, for `expect residency`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residency {
    /// Device memory.
    Vram,
    /// System memory.
    Ram,
    /// Both.
    Mixed,
    /// Not populated.
    None,
}

/// The world of one simulation.
pub struct World {
    /// Parameters.
    pub cfg: Arc<SimConfig>,
    /// Shared state.
    pub shared: Arc<Shared>,
    procs: Mutex<BTreeMap<String, Arc<Proc>>>,
    current: Mutex<Option<String>>,
    next_pid: Mutex<Pid>,
    shadow: Mutex<Shadow>,
    /// Exited processes' statistics (kept for reports).
    exited: Mutex<Vec<(String, ProcStats)>>,
}

impl World {
    /// A world with the devices of `cfg` and a first process `p0`.
    ///
    /// # Errors
    ///
    /// A description of an invalid configuration.
    pub fn new(cfg: SimConfig) -> Result<Self, String> {
        cfg.validate()?;
        let owners: Vec<Owner> = (0..cfg.devices)
            .map(|d| {
                Owner(if cfg.separate_owners {
                    0x100 + d as usize
                } else {
                    0x100
                })
            })
            .collect();
        let shared = Shared::new(owners.clone());
        let devices: Vec<Arc<Device>> = owners
            .iter()
            .enumerate()
            .map(|(i, o)| Device::new(i as u32, cfg.vram, *o, &shared))
            .collect();
        shared.set_devices(devices);
        let w = World {
            cfg: Arc::new(cfg),
            shared,
            procs: Mutex::new(BTreeMap::new()),
            current: Mutex::new(None),
            next_pid: Mutex::new(1),
            shadow: Mutex::new(Shadow::default()),
            exited: Mutex::new(Vec::new()),
        };
        w.switch("p0").map_err(|e| e.to_string())?;
        Ok(w)
    }

    fn new_proc(&self, name: &str, mm: Arc<ProcMm>) -> OpResult<Arc<Proc>> {
        let vm = GpuVm::new(SimMm(mm.clone()), self.shared.clone(), self.cfg.clone())?;
        Ok(Arc::new(Proc {
            name: name.to_string(),
            pid: mm.pid,
            mm,
            vm,
            regions: Mutex::new(BTreeMap::new()),
        }))
    }

    fn alloc_pid(&self) -> Pid {
        let mut n = lock(&self.next_pid);
        let p = *n;
        *n += 1;
        p
    }

    /// `process NAME`: makes `name` current, creating it on first use.
    ///
    /// # Errors
    ///
    /// If the VM cannot be created.
    pub fn switch(&self, name: &str) -> OpResult {
        let exists = lock(&self.procs).contains_key(name);
        if !exists {
            let mm = ProcMm::new(self.alloc_pid(), self.shared.clone());
            let p = self.new_proc(name, mm)?;
            lock(&self.procs).insert(name.to_string(), p);
        }
        *lock(&self.current) = Some(name.to_string());
        Ok(())
    }

    /// The current process.
    ///
    /// # Errors
    ///
    /// `Usage` if it has exited.
    pub fn current(&self) -> OpResult<Arc<Proc>> {
        let name = lock(&self.current)
            .clone()
            .ok_or_else(|| OpError::Usage("no current process (it exited)".into()))?;
        lock(&self.procs)
            .get(&name)
            .cloned()
            .ok_or_else(|| OpError::Usage(format!("process {name} has exited")))
    }

    /// Every live process.
    pub fn processes(&self) -> Vec<Arc<Proc>> {
        lock(&self.procs).values().cloned().collect()
    }

    /// A region of the current process.
    ///
    /// # Errors
    ///
    /// `Usage` for an unknown name.
    pub fn region(&self, name: &str) -> OpResult<Region> {
        let p = self.current()?;
        let r = lock(&p.regions).get(name).copied();
        r.ok_or_else(|| OpError::Usage(format!("unknown region '{name}' in process {}", p.name)))
    }

    // ------------------------------------------------------------------------------ memory map

    /// `mmap NAME ...`.
    ///
    /// # Errors
    ///
    /// The mm's error.
    pub fn mmap(
        &self,
        name: &str,
        size: u64,
        align: Option<u64>,
        at: Option<u64>,
        prot: Prot,
        kind: MapKind,
    ) -> OpResult<u64> {
        let p = self.current()?;
        let start = p.mm.mmap(size, align, at, prot, kind)?;
        let len = p.mm.vma(start).map_or(size, |v| v.end - v.start);
        lock(&p.regions).insert(name.to_string(), Region { start, len });
        Ok(start)
    }

    /// The private pages of `[start, end)`, rounded out to whole pages as the mm rounds spans,
    /// as `(object, first page, pages)`: the shadow to forget once an operation discarding them
    /// has succeeded ([`World::drop_shadow`]). Collected before the operation, since it may
    /// remove the VMAs.
    fn private_pages(p: &Proc, start: u64, end: u64) -> Vec<(u64, u64, u64)> {
        let start = start - start % PAGE;
        let end = end.checked_next_multiple_of(PAGE).unwrap_or(u64::MAX);
        p.mm.vmas()
            .into_iter()
            .filter(|v| v.kind.private() && v.start < end && start < v.end)
            .map(|v| {
                let s = v.start.max(start);
                let e = v.end.min(end);
                (v.obj, v.obj_page(s), (e - s).div_ceil(PAGE))
            })
            .collect()
    }

    /// Forgets the shadow of `pages` (from [`World::private_pages`]): their contents are gone.
    /// Only after the operation succeeded: a failed `munmap`, `madvise` or `mremap` (an
    /// unaligned span, say) leaves the memory as it was, and so must leave the shadow.
    fn drop_shadow(&self, pages: &[(u64, u64, u64)]) {
        let mut sh = lock(&self.shadow);
        for &(obj, first, n) in pages {
            sh.drop_pages(obj, first, n);
        }
    }

    /// `munmap SPAN`.
    ///
    /// # Errors
    ///
    /// The mm's error.
    pub fn munmap(&self, start: u64, len: u64) -> OpResult {
        let p = self.current()?;
        let end = start.saturating_add(len);
        let gone = Self::private_pages(&p, start, end);
        p.mm.munmap(start, len)?;
        self.drop_shadow(&gone);
        lock(&p.vm.attrs).clear(start, end);
        Ok(())
    }

    /// `mprotect SPAN prot=...`.
    ///
    /// # Errors
    ///
    /// The mm's error.
    pub fn mprotect(&self, start: u64, len: u64, prot: Prot) -> OpResult {
        Ok(self.current()?.mm.mprotect(start, len, prot)?)
    }

    /// `madvise SPAN dontneed`.
    ///
    /// # Errors
    ///
    /// The mm's error.
    pub fn madvise_dontneed(&self, start: u64, len: u64) -> OpResult {
        let p = self.current()?;
        let gone = Self::private_pages(&p, start, start.saturating_add(len));
        p.mm.madvise_dontneed(start, len)?;
        self.drop_shadow(&gone);
        Ok(())
    }

    /// `mremap NAME new=NAME2 [size=] [dontunmap]`.
    ///
    /// # Errors
    ///
    /// `Usage` for an unknown region; the mm's error.
    pub fn mremap(
        &self,
        name: &str,
        new_name: &str,
        size: Option<u64>,
        dontunmap: bool,
    ) -> OpResult {
        let p = self.current()?;
        let r = self.region(name)?;
        let new_len = size.unwrap_or(r.len);
        // The tail that does not move (from the first page past the new length) is unmapped.
        let kept = new_len.checked_next_multiple_of(PAGE).unwrap_or(u64::MAX);
        let gone = if kept < r.len {
            Self::private_pages(&p, r.start + kept, r.start + r.len)
        } else {
            Vec::new()
        };
        let new = p.mm.mremap(r.start, r.len, new_len, dontunmap)?;
        self.drop_shadow(&gone);
        let mut regions = lock(&p.regions);
        regions.insert(
            new_name.to_string(),
            Region {
                start: new,
                len: new_len.next_multiple_of(PAGE),
            },
        );
        Ok(())
    }

    /// `fork CHILD`.
    ///
    /// # Errors
    ///
    /// `Usage` if the child name is taken.
    pub fn fork(&self, child: &str) -> OpResult {
        let p = self.current()?;
        if lock(&self.procs).contains_key(child) {
            return Err(OpError::Usage(format!("process {child} already exists")));
        }
        let (mm, objects) = p.mm.fork(self.alloc_pid());
        {
            let mut sh = lock(&self.shadow);
            for (from, to) in objects {
                sh.copy_object(from, to);
            }
        }
        let c = self.new_proc(child, mm)?;
        *lock(&c.regions) = lock(&p.regions).clone();
        lock(&self.procs).insert(child.to_string(), c);
        Ok(())
    }

    /// `exit`: the current process's mm is torn down and its GPU VM closed.
    ///
    /// # Errors
    ///
    /// `Usage` if there is no current process.
    pub fn exit(&self) -> OpResult {
        let p = self.current()?;
        self.exit_proc(&p);
        *lock(&self.current) = None;
        Ok(())
    }

    fn exit_proc(&self, p: &Arc<Proc>) {
        p.mm.exit();
        p.vm.close();
        lock(&self.exited).push((p.name.clone(), self.shared.stats(p.pid)));
        lock(&self.procs).remove(&p.name);
    }

    // ----------------------------------------------------------------------------- CPU access

    fn obj_of(&self, p: &Proc, addr: u64) -> Option<(u64, u64)> {
        p.mm.vma(addr).map(|v| (v.obj, v.obj_page(addr)))
    }

    /// `cpu write`: writes `data` at `addr`, page by page.
    ///
    /// # Errors
    ///
    /// `Segv`/`Sigbus` at the first page that fails (earlier pages stay written).
    pub fn cpu_write(&self, addr: u64, data: &[u8]) -> OpResult {
        let p = self.current()?;
        for_each_page(addr, data.len() as u64, |a, off, n| {
            let chunk = &data[off..off + n];
            p.mm.cpu_access(a, Buf::Write(chunk)).map_err(cpu_err)?;
            if let Some((obj, idx)) = self.obj_of(&p, a) {
                lock(&self.shadow).write(obj, idx, (a % PAGE) as usize, chunk);
            }
            Ok(())
        })
    }

    /// `cpu read`: reads `out.len()` bytes at `addr`, checking each page against the shadow.
    ///
    /// # Errors
    ///
    /// `Segv`/`Sigbus`, or `Corruption` if a byte differs from the shadow.
    pub fn cpu_read(&self, addr: u64, out: &mut [u8]) -> OpResult {
        let p = self.current()?;
        for_each_page(addr, out.len() as u64, |a, off, n| {
            let chunk = &mut out[off..off + n];
            p.mm.cpu_access(a, Buf::Read(chunk)).map_err(cpu_err)?;
            self.verify(&p, a, chunk, "CPU read")
        })
    }

    fn verify(&self, p: &Proc, addr: u64, found: &[u8], what: &str) -> OpResult {
        let Some((obj, idx)) = self.obj_of(p, addr) else {
            return Ok(());
        };
        let mut expected = vec![0u8; found.len()];
        lock(&self.shadow).read(obj, idx, (addr % PAGE) as usize, &mut expected);
        if found == expected.as_slice() {
            return Ok(());
        }
        match first_difference(found, &expected) {
            None => Ok(()),
            Some((i, e, f)) => Err(OpError::Corruption(format!(
                "{what} of process {} at {:#x}: expected byte {e:#04x}, found {f:#04x}",
                p.name,
                addr + i as u64
            ))),
        }
    }

    // ----------------------------------------------------------------------------- GPU access

    fn gpu_page(&self, p: &Proc, dev: u32, addr: u64, mut op: GpuOp<'_>) -> OpResult {
        let d = self
            .shared
            .device(dev)
            .ok_or_else(|| OpError::Usage(format!("no device {dev}")))?
            .clone();
        let access = match op {
            GpuOp::Read(_) => Access::Read,
            GpuOp::Write(_) => Access::Write,
            GpuOp::Atomic(_) => Access::Atomic,
        };
        let vpn = addr / PAGE;
        let off = (addr % PAGE) as usize;
        for _ in 0..64 {
            crate::sched::yield_now();
            if d.removed.load(Ordering::SeqCst) {
                return Err(OpError::Errno(code::ENODEV));
            }
            {
                let pts = lock(&d.pts);
                let pte = pts.get(&p.pid).and_then(|pt| pt.get(&vpn)).copied();
                let allowed = pte.is_some_and(|e| match access {
                    Access::Read => true,
                    Access::Write => e.write,
                    Access::Atomic => e.write && e.atomic,
                });
                if let (Some(pte), true) = (pte, allowed) {
                    let pfn = d
                        .resolve(&self.shared, &pte, access != Access::Read)
                        .ok_or_else(|| {
                            OpError::Corruption(format!(
                                "GPU {dev} access at {addr:#x} through a dead mapping: {:?}",
                                d.dma.errors().last()
                            ))
                        })?;
                    let frames = &self.shared.frames;
                    match &mut op {
                        GpuOp::Read(buf) => {
                            frames.read(pfn, off, buf);
                        }
                        GpuOp::Write(buf) => {
                            frames.write(pfn, off, buf);
                        }
                        GpuOp::Atomic(count) => {
                            let mut v = [0u8; 8];
                            frames.read(pfn, off, &mut v);
                            let n = u64::from_le_bytes(v).wrapping_add(*count);
                            frames.write(pfn, off, &n.to_le_bytes());
                        }
                    }
                    return Ok(());
                }
            }
            handle_gpu_fault(&p.vm, dev, addr, access)?;
        }
        Err(OpError::Errno(code::EFAULT))
    }

    /// `gpu write`.
    ///
    /// # Errors
    ///
    /// The fault's error at the first page that fails (earlier pages stay written).
    pub fn gpu_write(&self, dev: u32, addr: u64, data: &[u8]) -> OpResult {
        let p = self.current()?;
        for_each_page(addr, data.len() as u64, |a, off, n| {
            let chunk = &data[off..off + n];
            self.gpu_page(&p, dev, a, GpuOp::Write(chunk))?;
            if let Some((obj, idx)) = self.obj_of(&p, a) {
                lock(&self.shadow).write(obj, idx, (a % PAGE) as usize, chunk);
            }
            Ok(())
        })
    }

    /// `gpu read`, checked against the shadow.
    ///
    /// # Errors
    ///
    /// The fault's error, or `Corruption`.
    pub fn gpu_read(&self, dev: u32, addr: u64, out: &mut [u8]) -> OpResult {
        let p = self.current()?;
        for_each_page(addr, out.len() as u64, |a, off, n| {
            let chunk = &mut out[off..off + n];
            self.gpu_page(&p, dev, a, GpuOp::Read(chunk))?;
            self.verify(&p, a, chunk, &format!("GPU {dev} read"))
        })
    }

    /// `gpu atomic ADDR count=N`: `N` atomic 64-bit increments.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a misaligned address; the fault's error.
    pub fn gpu_atomic(&self, dev: u32, addr: u64, count: u64) -> OpResult {
        if !addr.is_multiple_of(8) {
            return Err(OpError::Errno(code::EINVAL));
        }
        let p = self.current()?;
        self.gpu_page(&p, dev, addr, GpuOp::Atomic(count))?;
        if let Some((obj, idx)) = self.obj_of(&p, addr) {
            let mut sh = lock(&self.shadow);
            let mut v = [0u8; 8];
            sh.read(obj, idx, (addr % PAGE) as usize, &mut v);
            let n = u64::from_le_bytes(v).wrapping_add(count);
            sh.write(obj, idx, (addr % PAGE) as usize, &n.to_le_bytes());
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------- SVM ops

    /// `prefetch SPAN to=vram|ram [dev=K]`.
    ///
    /// # Errors
    ///
    /// The driver's error.
    pub fn prefetch(&self, dev: u32, start: u64, len: u64, to_vram: bool) -> OpResult {
        let p = self.current()?;
        let span = Span::from_len(start, len)?;
        Ok(prefetch(&p.vm, dev, span, to_vram)?)
    }

    /// `advise SPAN [preferred=] [atomic=]`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown device.
    pub fn advise(
        &self,
        start: u64,
        len: u64,
        preferred: Option<Preferred>,
        atomic: Option<AtomicMode>,
    ) -> OpResult {
        if let Some(Preferred::Dev(k)) = preferred {
            if k >= self.cfg.devices {
                return Err(OpError::Errno(code::EINVAL));
            }
        }
        let p = self.current()?;
        lock(&p.vm.attrs).update(start, start.saturating_add(len), |a| {
            if let Some(pr) = preferred {
                a.preferred = pr;
            }
            if let Some(at) = atomic {
                a.atomic = at;
            }
        });
        Ok(())
    }

    /// `evict [dev=K] [SPAN]`: device-memory pressure. Evicts every SVM allocation of the
    /// device(s) — those with a page mapped in the span of the current process, if given.
    ///
    /// # Errors
    ///
    /// The first eviction error.
    pub fn evict(&self, dev: Option<u32>, span: Option<(u64, u64)>) -> OpResult {
        let p = self.current()?;
        let mut first = Ok(());
        for d in self.shared.devices() {
            if dev.is_some_and(|k| k != d.id) {
                continue;
            }
            for devmem in d.svm_allocations() {
                if let Some((s, e)) = span {
                    let hit = devmem.0.pfns.iter().any(|pfn| {
                        self.shared
                            .frames
                            .rmap(*pfn)
                            .iter()
                            .any(|(pid, vpn)| *pid == p.pid && (s..e).contains(&(vpn * PAGE)))
                    });
                    if !hit {
                        continue;
                    }
                }
                let pid = gpusvm_core::DevmemAllocation::state(&devmem).mm().0.pid;
                match gpusvm_core::evict_to_ram::<crate::driver::SimDriver>(&devmem) {
                    Ok(()) => self.shared.stat(pid, |s| s.evictions += 1),
                    Err(e) if first.is_ok() => first = Err(OpError::Errno(e)),
                    Err(_) => {}
                }
            }
        }
        first
    }

    /// `remove_device dev=K`: population is refused from now on, everything on the device
    /// returns to RAM, and later GPU accesses on it fail with `ENODEV`.
    ///
    /// # Errors
    ///
    /// `Usage` for an unknown device; the eviction error.
    pub fn remove_device(&self, dev: u32) -> OpResult {
        let d = self
            .shared
            .device(dev)
            .ok_or_else(|| OpError::Usage(format!("no device {dev}")))?
            .clone();
        d.pagemap.0.removed.store(true, Ordering::SeqCst);
        let allocs = d.svm_allocations();
        let pids: Vec<Pid> = allocs
            .iter()
            .map(|a| gpusvm_core::DevmemAllocation::state(a).mm().0.pid)
            .collect();
        let r = gpusvm_core::evict_all::<crate::driver::SimDriver>(allocs);
        for pid in pids {
            self.shared.stat(pid, |s| s.evictions += 1);
        }
        d.removed.store(true, Ordering::SeqCst);
        // The GPU loses its mappings of every process.
        lock(&d.pts).clear();
        for p in self.processes() {
            d.drop_bos(p.pid);
        }
        Ok(r?)
    }

    /// `bind_bo SPAN [dev=K]`.
    ///
    /// # Errors
    ///
    /// `EBUSY` if SVM ranges live in the span.
    pub fn bind_bo(&self, dev: u32, start: u64, len: u64) -> OpResult {
        let p = self.current()?;
        Ok(p.vm.bind_bo(dev, Span::from_len(start, len)?)?)
    }

    // ---------------------------------------------------------------------------- queries

    /// Runs deferred work of every VM (the garbage collectors).
    pub fn settle(&self) {
        for p in self.processes() {
            p.vm.flush();
        }
    }

    /// Where the pages of `[start, start + len)` of the current process are.
    ///
    /// # Errors
    ///
    /// `Usage` if there is no current process.
    pub fn residency(&self, start: u64, len: u64, dev: Option<u32>) -> OpResult<Residency> {
        let p = self.current()?;
        let (mut vram, mut ram, mut none) = (0u64, 0u64, 0u64);
        let mut a = start - start % PAGE;
        while a < start.saturating_add(len) {
            match p.mm.pte(a) {
                Some(Pte::Device { pfn, .. }) => {
                    if dev.is_none() || device_of_pfn(pfn) == dev {
                        vram += 1;
                    } else {
                        ram += 1;
                    }
                }
                Some(Pte::Present { .. }) => ram += 1,
                Some(Pte::Migration { .. }) | None => none += 1,
            }
            a += PAGE;
        }
        Ok(match (vram > 0, ram > 0, none > 0) {
            (true, false, false) => Residency::Vram,
            (false, true, false) => Residency::Ram,
            (false, false, _) => Residency::None,
            _ => Residency::Mixed,
        })
    }

    /// [`Proc::page_residency`] of the current process: where each page of the span is.
    ///
    /// # Errors
    ///
    /// `Usage` if there is no current process.
    pub fn page_residency(&self, start: u64, len: u64) -> OpResult<Vec<PageResidency>> {
        Ok(self.current()?.page_residency(start, len))
    }

    /// Live SVM ranges of the current process.
    ///
    /// # Errors
    ///
    /// `Usage` if there is no current process.
    pub fn ranges(&self) -> OpResult<u64> {
        Ok(self.current()?.vm.counts().0 as u64)
    }

    /// The size of the range covering `addr` in the current process.
    ///
    /// # Errors
    ///
    /// `Usage` if there is no current process.
    pub fn chunk(&self, addr: u64) -> OpResult<Option<u64>> {
        Ok(self.current()?.vm.chunk_at(addr))
    }

    /// A statistic of the current process by its scenario name.
    ///
    /// # Errors
    ///
    /// `Usage` for an unknown name or no current process.
    pub fn stat(&self, name: &str) -> OpResult<u64> {
        let p = self.current()?;
        let s = self.shared.stats(p.pid);
        if let Some(v) = s.get(name) {
            return Ok(v);
        }
        let devices = self.shared.devices();
        Ok(match name {
            "ranges" => p.vm.counts().0 as u64,
            "notifiers" => p.vm.counts().1 as u64,
            "dma_mappings" => devices.iter().map(|d| d.dma.live() as u64).sum(),
            "vram_bytes" => devices.iter().map(|d| d.vram.used_bytes()).sum(),
            "copy_calls" => devices
                .iter()
                .map(|d| d.copy_calls.load(Ordering::SeqCst))
                .sum(),
            _ => return Err(OpError::Usage(format!("unknown statistic '{name}'"))),
        })
    }

    /// Statistics of every process, live and exited, by name.
    pub fn all_stats(&self) -> Vec<(String, ProcStats)> {
        let mut v = lock(&self.exited).clone();
        for p in self.processes() {
            v.push((p.name.clone(), self.shared.stats(p.pid)));
        }
        v
    }

    /// Ends the simulation: every process exits, then everything must have been released.
    /// Returns the leaks found.
    pub fn teardown(&self) -> Vec<String> {
        for p in self.processes() {
            self.exit_proc(&p);
        }
        *lock(&self.current) = None;
        self.leaks()
    }

    /// Everything still held that should not be (call after every process exited).
    pub fn leaks(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        for d in self.shared.devices() {
            if d.dma.live() > 0 {
                leaks.push(format!(
                    "device {}: {} live DMA mappings",
                    d.id,
                    d.dma.live()
                ));
            }
            for e in d.dma.errors() {
                leaks.push(format!("device {}: DMA misuse: {e}", d.id));
            }
            if d.vram.used_bytes() > 0 {
                leaks.push(format!(
                    "device {}: {} bytes of VRAM still allocated ({} allocations)",
                    d.id,
                    d.vram.used_bytes(),
                    d.vram.live_allocations()
                ));
            }
            let maps = d.pagemap.0.device_maps.load(Ordering::SeqCst);
            if maps != 0 {
                leaks.push(format!("device {}: {maps} live device mappings", d.id));
            }
            let ptes: usize = lock(&d.pts).values().map(|pt| pt.len()).sum();
            if ptes > 0 {
                leaks.push(format!("device {}: {ptes} GPU PTEs left", d.id));
            }
        }
        let live = self.shared.alloc.live();
        if live != 0 {
            leaks.push(format!(
                "core allocator: {live} allocations ({} bytes) not freed (ranges, notifiers, arrays or trackers)",
                self.shared.alloc.live_bytes()
            ));
        }
        let frames = self.shared.frames.live_frames();
        if !frames.is_empty() {
            let devs = frames
                .iter()
                .filter(|f| matches!(f.1, crate::mem::FrameKind::Device { .. }))
                .count();
            leaks.push(format!(
                "{} page frames still allocated ({devs} device pages), e.g. {:?}",
                frames.len(),
                frames.first()
            ));
        }
        for p in self.shared.procs_alive() {
            if !p.notifiers.is_empty() {
                leaks.push(format!(
                    "pid {}: {} interval notifiers still registered",
                    p.pid,
                    p.notifiers.len()
                ));
            }
            if p.users() != 0 {
                leaks.push(format!("pid {}: {} mm user references", p.pid, p.users()));
            }
        }
        leaks
    }

    /// DMA misuse or IOMMU faults recorded so far (a bug in the core or the driver).
    pub fn dma_errors(&self) -> Vec<String> {
        self.shared
            .devices()
            .iter()
            .flat_map(|d| d.dma.errors())
            .collect()
    }
}

fn cpu_err(e: CpuFault) -> OpError {
    match e {
        CpuFault::Segv => OpError::Segv,
        CpuFault::Sigbus(e) => OpError::Sigbus(e),
    }
}

/// Calls `f(addr, offset, len)` for each page-sized piece of `[addr, addr + len)`.
fn for_each_page(
    addr: u64,
    len: u64,
    mut f: impl FnMut(u64, usize, usize) -> OpResult,
) -> OpResult {
    let mut done = 0u64;
    while done < len {
        let a = addr.checked_add(done).ok_or(OpError::Errno(code::EFAULT))?;
        let n = (PAGE - a % PAGE).min(len - done);
        f(a, done as usize, n as usize)?;
        done += n;
    }
    Ok(())
}
