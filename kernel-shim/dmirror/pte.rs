// SPDX-License-Identifier: GPL-2.0

//! The virtual GPU's page table: one entry per page of a range, written at commit time (under
//! the notifier lock, from the range's DMA entries) and zapped by the invalidate op.

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use gpusvm_core::{code, AllocKind, Allocator, DmaDirection, DmaEntry, Protocol, Result};
use gpusvm_kshim::{KAlloc, PAGE_SIZE};

/// A GPU PTE: the 4 KiB-aligned bus or VRAM address, the interconnect protocol in bits 0..=4,
/// and these bits.
pub(crate) const PTE_VALID: u64 = 1 << 11;
pub(crate) const PTE_WRITE: u64 = 1 << 10;
const PTE_PROTO: u64 = 0x1f;

/// A decoded valid PTE.
#[derive(Clone, Copy)]
pub(crate) struct Pte {
    pub(crate) addr: u64,
    pub(crate) local: bool,
    pub(crate) writable: bool,
}

impl Pte {
    pub(crate) fn decode(v: u64) -> Option<Self> {
        (v & PTE_VALID != 0).then(|| Pte {
            addr: v & !(PAGE_SIZE as u64 - 1),
            local: v & PTE_PROTO != u64::from(Protocol::SYSTEM.value()),
            writable: v & PTE_WRITE != 0,
        })
    }
}

/// `len` atomic PTEs from the kernel heap.
///
/// # Invariants
///
/// `ptr` points to `len` initialized `AtomicU64`s allocated by [`KAlloc`] as an array.
pub(crate) struct PteTable {
    ptr: NonNull<AtomicU64>,
    len: usize,
}

// SAFETY: The entries are atomics; the table owns its memory.
unsafe impl Send for PteTable {}
// SAFETY: As above.
unsafe impl Sync for PteTable {}

impl PteTable {
    pub(crate) fn new(len: usize) -> Result<Self> {
        let layout = Layout::array::<AtomicU64>(len.max(1)).map_err(|_| code::ENOMEM)?;
        let ptr = KAlloc
            .allocate(layout, AllocKind::Array)?
            .cast::<AtomicU64>();
        for i in 0..len.max(1) {
            // SAFETY: `i` is inside the allocation of `len.max(1)` entries.
            unsafe { ptr.as_ptr().add(i).write(AtomicU64::new(0)) };
        }
        // INVARIANT: allocated and initialized above.
        Ok(Self { ptr, len })
    }

    fn entries(&self) -> &[AtomicU64] {
        // SAFETY: By the type invariant `ptr` holds `len` initialized entries.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub(crate) fn get(&self, i: usize) -> Option<Pte> {
        self.entries()
            .get(i)
            .and_then(|e| Pte::decode(e.load(Ordering::Acquire)))
    }

    /// PTE zap (the invalidate op's first step, and before unmapping pages).
    pub(crate) fn zap(&self) {
        for e in self.entries() {
            e.store(0, Ordering::Release);
        }
    }

    /// Commit: writes one PTE per page from the packed DMA entries of a valid pages object.
    pub(crate) fn fill(&self, entries: &[DmaEntry]) {
        let mut slots = self.entries().iter();
        for e in entries {
            let mut bits = u64::from(e.proto().value()) | PTE_VALID;
            // The GPU may write a page only if the CPU's page table lets the process write it
            // (lib/test_hmm.c takes the bit from HMM_PFN_WRITE). The DMA direction is the
            // core's statement of exactly that: `Bidirectional` only for a get_pages that
            // asked for write access (`!ctx.read_only`), which succeeds only if every page is
            // writable: system pages are faulted with `HMM_PFN_REQ_WRITE` (an error, not a
            // read-only entry, if that fails), and the device's own device-private pages,
            // which `hmm_range_fault` reports without faulting, are refused with `EOPNOTSUPP`
            // unless HMM reports them writable (after fork they are copy-on-write and are not:
            // the driver evicts them to RAM, where the retried write fault breaks the COW).
            if e.dir() == DmaDirection::Bidirectional {
                bits |= PTE_WRITE;
            }
            for k in 0..(1u64 << e.order()) {
                let Some(slot) = slots.next() else { return };
                slot.store((e.addr() + k * PAGE_SIZE as u64) | bits, Ordering::Release);
            }
        }
    }
}

impl Drop for PteTable {
    fn drop(&mut self) {
        if let Ok(layout) = Layout::array::<AtomicU64>(self.len.max(1)) {
            // SAFETY: Allocated by `new` with this layout and kind (type invariant).
            unsafe { KAlloc.free(self.ptr.cast(), layout, AllocKind::Array) };
        }
    }
}
