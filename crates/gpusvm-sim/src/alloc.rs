//! The core's allocator in the simulation: the system heap, counted, with fault injection.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use gpusvm_core::{code, AllocKind, Allocator, Result};

use crate::inject::{Injector, Site};

#[derive(Default, Debug)]
struct Counters {
    calls: AtomicU64,
    live: AtomicI64,
    live_bytes: AtomicI64,
}

/// A counting allocator whose calls can be made to fail through the simulation's injector.
#[derive(Clone, Default)]
pub struct SimAlloc {
    counters: Arc<Counters>,
    injector: Option<Weak<Injector>>,
}

impl SimAlloc {
    /// An allocator whose calls are subject to `injector`.
    pub fn with_injector(injector: &Arc<Injector>) -> Self {
        SimAlloc {
            counters: Arc::default(),
            injector: Some(Arc::downgrade(injector)),
        }
    }

    /// Allocations not yet freed.
    pub fn live(&self) -> i64 {
        self.counters.live.load(Ordering::SeqCst)
    }

    /// Bytes not yet freed.
    pub fn live_bytes(&self) -> i64 {
        self.counters.live_bytes.load(Ordering::SeqCst)
    }

    /// Allocation calls so far.
    pub fn calls(&self) -> u64 {
        self.counters.calls.load(Ordering::SeqCst)
    }
}

// SAFETY: Memory comes from the global allocator with the caller's layout and is returned with
// the same layout; both work from any thread.
unsafe impl Allocator for SimAlloc {
    fn allocate(&self, layout: Layout, _kind: AllocKind) -> Result<NonNull<u8>> {
        self.counters.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(inj) = self.injector.as_ref().and_then(Weak::upgrade) {
            inj.check(Site::Alloc)?;
        }
        // SAFETY: The trait promises a non-zero size.
        let p = NonNull::new(unsafe { std::alloc::alloc(layout) }).ok_or(code::ENOMEM)?;
        self.counters.live.fetch_add(1, Ordering::SeqCst);
        self.counters
            .live_bytes
            .fetch_add(layout.size() as i64, Ordering::SeqCst);
        Ok(p)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout, _kind: AllocKind) {
        self.counters.live.fetch_sub(1, Ordering::SeqCst);
        self.counters
            .live_bytes
            .fetch_sub(layout.size() as i64, Ordering::SeqCst);
        // SAFETY: The caller passes memory from `allocate` with the same layout.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
    }
}
