//! State shared by every part of one simulation: memory, clock, injection, processes, statistics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use gpusvm_core::Owner;

use crate::alloc::SimAlloc;
use crate::gpu::Device;
use crate::inject::{Injector, SimClock};
use crate::mem::{Frames, Pfn, Pid};
use crate::mm::ProcMm;
use crate::stats::ProcStats;

/// Locks a mutex, ignoring poisoning (a panicking simulated thread fails the run anyway).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A shared-memory object (MAP_SHARED anonymous memory): its pages outlive the mappings, until
/// no VMA of any process maps the object.
#[derive(Default)]
pub struct ShmObject {
    /// Page index → frame (the object holds one reference on each).
    pub pages: BTreeMap<u64, Pfn>,
}

/// Everything one simulation shares.
pub struct Shared {
    /// Physical memory.
    pub frames: Frames,
    /// Virtual time.
    pub clock: SimClock,
    /// Fault injection.
    pub inject: Arc<Injector>,
    /// The core's allocator.
    pub alloc: SimAlloc,
    /// Device-private owner of each device.
    pub owners: Vec<Owner>,
    procs: Mutex<BTreeMap<Pid, Weak<ProcMm>>>,
    stats: Mutex<BTreeMap<Pid, ProcStats>>,
    /// Shared-memory objects by id.
    pub objects: Mutex<BTreeMap<u64, ShmObject>>,
    next_object: AtomicU64,
    devices: OnceLock<Vec<Arc<Device>>>,
}

impl Shared {
    /// A fresh simulation with `owners[d]` the owner cookie of device `d`.
    pub fn new(owners: Vec<Owner>) -> Arc<Self> {
        let inject = Arc::new(Injector::default());
        Arc::new(Shared {
            frames: Frames::default(),
            clock: SimClock::default(),
            alloc: SimAlloc::with_injector(&inject),
            inject,
            owners,
            procs: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(BTreeMap::new()),
            objects: Mutex::new(BTreeMap::new()),
            next_object: AtomicU64::new(1),
            devices: OnceLock::new(),
        })
    }

    /// A new memory-object id (every VMA's backing object has one, for the integrity oracle).
    pub fn new_object(&self) -> u64 {
        self.next_object.fetch_add(1, Ordering::SeqCst)
    }

    /// Registers a process's mm.
    pub fn register(&self, mm: &Arc<ProcMm>) {
        lock(&self.procs).insert(mm.pid, Arc::downgrade(mm));
    }

    /// Every registered mm still referenced.
    pub fn procs_alive(&self) -> Vec<Arc<ProcMm>> {
        lock(&self.procs)
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// The mm of `pid`, if it is alive.
    pub fn proc(&self, pid: Pid) -> Option<Arc<ProcMm>> {
        lock(&self.procs).get(&pid).and_then(Weak::upgrade)
    }

    /// Updates `pid`'s statistics.
    pub fn stat(&self, pid: Pid, f: impl FnOnce(&mut ProcStats)) {
        f(lock(&self.stats).entry(pid).or_default());
    }

    /// A copy of `pid`'s statistics.
    pub fn stats(&self, pid: Pid) -> ProcStats {
        lock(&self.stats).get(&pid).cloned().unwrap_or_default()
    }

    /// Installs the devices (once, right after creation).
    pub fn set_devices(&self, devices: Vec<Arc<Device>>) {
        let _ = self.devices.set(devices);
    }

    /// The devices.
    pub fn devices(&self) -> &[Arc<Device>] {
        self.devices.get().map_or(&[], |d| d.as_slice())
    }

    /// Device `dev`.
    pub fn device(&self, dev: u32) -> Option<&Arc<Device>> {
        self.devices().get(dev as usize)
    }

    /// Owner cookie of device `dev`.
    pub fn owner(&self, dev: u32) -> Option<Owner> {
        self.owners.get(dev as usize).copied()
    }
}
