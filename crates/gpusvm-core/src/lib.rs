//! GPU shared-virtual-memory bookkeeping: `drm_gpusvm` and `drm_pagemap` in Rust.
//!
//! C sources: [`drivers/gpu/drm/drm_gpusvm.c`], [`drivers/gpu/drm/drm_pagemap.c`].
//! Reference: <https://docs.kernel.org/gpu/rfc/gpusvm.html>.
//!
//! A GPU that shares a process's virtual address space must mirror the CPU page tables on demand
//! (on GPU page faults or explicit prefetch), keep the mirror coherent when the CPU mappings
//! change, and may move pages into device memory and back. This crate is the bookkeeping for
//! that job, written to be embedded in a kernel driver:
//!
//! - [`Svm`] — one GPU VM: notifier windows ([`Notifier`]), chunk-aligned [`Range`]s found or
//!   created on fault ([`Svm::range_find_or_insert`]), garbage collection of unmapped ranges;
//! - [`SvmPages`] — the DMA view of a span for one device, filled by [`Svm::get_pages`] with the
//!   MMU-notifier sequence protocol, validated for commits under the notifier lock
//!   ([`Svm::pages_valid`]); usable alone for userptr;
//! - [`Invalidation`] — what the driver's invalidate op receives, with the lock held for writing;
//! - [`migrate`] — device-memory migration (`drm_pagemap`): to device, back on CPU fault,
//!   eviction, with a copy planner ([`plan`]);
//! - backend traits: [`Mm`] (core mm, HMM, `migrate_vma`), [`DmaDevice`], [`Pagemap`],
//!   [`DevmemAllocation`], [`Allocator`], [`RawRwLock`], [`Clock`].
//!
//! # Kernel-grade rules
//!
//! `no_std` without `alloc`: every allocation goes through the driver's [`Allocator`], and none
//! happens with the notifier lock held. No input makes the core panic: library code is linted
//! against `unwrap`, `expect`, `panic!`, unchecked indexing, `todo!` and `unimplemented!`, and
//! address arithmetic is checked. Every error is an errno ([`Error`]). Concurrency-relevant
//! state goes through a private `sync` facade that loom replaces under `cfg(loom)`.
//!
//! # Example: the GPU fault flow
//!
//! ```text
//! let range = svm.range_find_or_insert(fault_addr, gpuva, &ctx)?;   // driver lock held
//! svm.range_get_pages(&range, &range.data().pages, &ctx)?;           // fault + DMA map
//! let nl = svm.notifier_lock();                                      // commit:
//! if !svm.range_pages_valid(&nl, &range) { return Err(EAGAIN) }      //   retry the fault
//! svm.pages_entries(&nl, &range.data().pages, |e| write_ptes(e));    //   program the GPU
//! ```
//!
//! and on the CPU side, the driver's [`SvmDriver::invalidate`] zaps GPU PTEs, calls
//! [`Invalidation::unmap_range_pages`], and for `Unmap` events [`Invalidation::set_unmapped`];
//! its garbage collector then drains [`Svm::take_unmapped`] and calls [`Svm::range_remove`].
//! The `tests` module runs exactly this flow against a mock backend.

#![cfg_attr(not(test), no_std)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::todo,
        clippy::unimplemented,
        clippy::unreachable,
    )
)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod addr;
pub mod allocator;
pub mod chunk;
pub mod devmem;
pub mod dma;
pub mod driver;
pub mod error;
pub mod flags;
pub mod hmm;
pub mod invalidate;
pub mod lock;
pub mod migrate;
pub mod mm;
pub mod notifier;
pub mod pagemap;
pub mod pages;
pub mod plan;
pub mod range;
pub mod svm;
mod sync;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

pub use addr::{PageShift, Span};
pub use allocator::{AllocKind, Allocator, KArray, KBox};
pub use chunk::{select_chunk, ChunkRequest, ChunkSizes};
pub use devmem::{device_page_free, CopyBatch, DevmemAllocation, DevmemEnv, DevmemState};
pub use dma::{DmaDevice, DmaDirection, DmaEntry, Protocol};
pub use driver::{Ctx, SvmDriver};
pub use error::{code, Error, Result};
pub use flags::{PagesFlags, RangeFlags};
pub use hmm::HmmPfn;
pub use invalidate::Invalidation;
pub use lock::{NotifierLocked, RawRwLock, ReadGuard, SpinRwLock, WriteGuard};
pub use migrate::{evict_all, evict_to_ram, migrate_to_devmem, migrate_to_ram, MigrateDetails};
pub use mm::{
    Clock, HmmRange, IntervalNotifier, MigratePfn, MigrateSelect, MigrateVma, Mm, MmUser,
    MmapReadGuard, MmuEvent, MmuRange, Owner, PageKind, PgmapId, Subscriber, VmaFlags, VmaInfo,
};
pub use notifier::Notifier;
pub use pagemap::{populate_mm, Pagemap};
pub use pages::SvmPages;
pub use range::{Range, RangeRef};
pub use svm::{ScanResult, Svm, SvmConfig};

#[cfg(feature = "alloc")]
pub use allocator::HeapAlloc;
