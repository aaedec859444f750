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
//! The driver's fault handler, against the mock backend (`mock` feature): find or create the
//! range, fault and DMA-map its pages, then commit under the notifier lock.
//!
//! ```
//! use gpusvm_core::mock::World;
//! use gpusvm_core::{Ctx, Span, Svm, SvmConfig, VmaFlags};
//!
//! let w = World::new(1);
//! let base = 0x4000_0000;
//! w.mm.mmap(base, base + (2 << 20), VmaFlags::READ | VmaFlags::WRITE | VmaFlags::ANONYMOUS);
//! let config = SvmConfig {
//!     name: "example",
//!     mm_start: 0,
//!     mm_range: 1 << 47,
//!     notifier_size: 512 << 20,
//!     chunk_sizes: &[2 << 20, 64 << 10, 4 << 10],
//!     page_shift: 12,
//! };
//! let mut svm = Svm::new(config, w.driver(), Some(w.mm.clone()), w.alloc.clone(), w.clock.clone())?;
//! let ctx = Ctx::default();
//! let gpuva = Span::new(0, 1 << 47)?;
//!
//! // GPU fault at base + 0x1234 (the driver lock is `&mut svm`).
//! let range = svm.range_find_or_insert(base + 0x1234, gpuva, &ctx)?;
//! let pages = &range.data().pages[0];
//! svm.range_get_pages(&range, pages, &ctx)?;
//!
//! // Commit: only valid pages may be written into the GPU page table.
//! let nl = svm.notifier_lock();
//! assert!(svm.range_pages_valid(&nl, &range));
//! let ptes = svm.pages_entries(&nl, pages, |entries| entries.len()).unwrap();
//! assert_eq!(ptes, 512);
//! # drop(nl); drop(range);
//! # Ok::<(), gpusvm_core::Error>(())
//! ```
//!
//! # Example: invalidation and garbage collection
//!
//! A `munmap` reaches the driver's [`SvmDriver::invalidate`] (the mock's zaps, calls
//! [`Invalidation::unmap_range_pages`] and, for `Unmap`, [`Invalidation::set_unmapped`]); the
//! driver's garbage collector then removes the range, and the empty notifier goes with it.
//!
//! ```
//! # use gpusvm_core::mock::World;
//! # use gpusvm_core::{Ctx, Span, Svm, SvmConfig, VmaFlags};
//! # let w = World::new(1);
//! # let base = 0x4000_0000;
//! # w.mm.mmap(base, base + (2 << 20), VmaFlags::READ | VmaFlags::WRITE | VmaFlags::ANONYMOUS);
//! # let config = SvmConfig { name: "example", mm_start: 0, mm_range: 1 << 47,
//! #     notifier_size: 512 << 20, chunk_sizes: &[2 << 20, 64 << 10, 4 << 10], page_shift: 12 };
//! # let mut svm = Svm::new(config, w.driver(), Some(w.mm.clone()), w.alloc.clone(), w.clock.clone())?;
//! # let ctx = Ctx::default();
//! # let range = svm.range_find_or_insert(base, Span::new(0, 1 << 47)?, &ctx)?;
//! # svm.range_get_pages(&range, &range.data().pages[0], &ctx)?;
//! # drop(range);
//! w.mm.munmap(base, base + 4096); // invalidate → unmap DMA → set_unmapped
//! assert_eq!(w.dma_live(), 0);
//! while let Some(r) = svm.take_unmapped() {
//!     // A partially unmapped, device-backed range would be evicted first (range_evict).
//!     svm.range_remove(&r);
//! }
//! assert_eq!((svm.num_ranges(), svm.num_notifiers()), (0, 0));
//! # Ok::<(), gpusvm_core::Error>(())
//! ```

#![cfg_attr(not(any(test, feature = "mock")), no_std)]
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
pub mod pages_api;
pub mod plan;
pub mod range;
pub mod split;
pub mod svm;
mod sync;

#[cfg(any(test, feature = "mock"))]
#[allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[allow(clippy::indexing_slicing, clippy::undocumented_unsafe_blocks)]
pub mod mock;
#[cfg(all(test, not(loom)))]
mod tests;

pub use addr::{PageShift, Span};
pub use allocator::{AllocKind, Allocator, KArray, KBox};
pub use chunk::{select_chunk, ChunkRequest, ChunkSizes};
pub use devmem::{
    device_page_devmem, device_page_free, CopyBatch, DevmemAllocation, DevmemEnv, DevmemState,
};
pub use dma::{DmaDevice, DmaDirection, DmaEntry, Protocol};
pub use driver::{Ctx, SvmDriver};
pub use error::{code, Error, Result};
pub use flags::{PagesFlags, RangeFlags};
pub use hmm::HmmPfn;
pub use invalidate::Invalidation;
pub use lock::{HeldWriteLock, NotifierLocked, RawRwLock, ReadGuard, SpinRwLock, WriteGuard};
pub use migrate::{evict_all, evict_to_ram, migrate_to_devmem, migrate_to_ram, MigrateDetails};
pub use mm::{
    Clock, HmmRange, IntervalNotifier, MigratePfn, MigrateSelect, MigrateVma, Mm, MmUser,
    MmapReadGuard, MmuEvent, MmuRange, Owner, PageKind, PgmapId, Subscriber, VmaFlags, VmaInfo,
};
pub use notifier::Notifier;
pub use pagemap::{populate_mm, Pagemap};
pub use pages::SvmPages;
pub use pages_api::PagesApi;
pub use range::{Range, RangeRef};
pub use svm::{ScanResult, Svm, SvmConfig};

#[cfg(feature = "alloc")]
pub use allocator::HeapAlloc;
