// SPDX-License-Identifier: GPL-2.0

//! `gpusvm_kshim`: the backend traits of the gpusvm core implemented over Linux 6.12 through
//! Rust-for-Linux.
//!
//! | core trait | here | kernel services |
//! |---|---|---|
//! | [`gpusvm_core::Mm`] | [`KMm`] | `mmget_not_zero`/`mmput`, `mmgrab`/`mmdrop`, mmap read lock, `vma_lookup`, `find_vma_intersection`, `hmm_range_fault`, `migrate_vma_*`, `migrate_device_*`, `zone_device_page_init`, `alloc_page` |
//! | [`gpusvm_core::IntervalNotifier`] | [`KNotifier`] | `mmu_interval_notifier_insert/remove`, `mmu_interval_read_begin/read_retry`, `mmu_interval_set_seq` |
//! | [`gpusvm_core::RawRwLock`] | [`KRwSem`] | `struct rw_semaphore` (`down_read`, `down_write`, ...) |
//! | [`gpusvm_core::Allocator`] | [`KAlloc`] | `kmalloc`/`kfree` (objects), `kvmalloc`/`kvfree` (arrays), `GFP_KERNEL` |
//! | [`gpusvm_core::Clock`] | [`KClock`] | `jiffies` in milliseconds |
//! | [`gpusvm_core::DmaDevice`] | [`KDma`] | `dma_map_page_attrs`/`dma_unmap_page_attrs` on a `struct device` |
//! | `dev_pagemap_ops` | [`DevicePrivate`] | `memremap_pages` (`MEMORY_DEVICE_PRIVATE`), `page_free` → [`gpusvm_core::device_page_free`], `migrate_to_ram` → [`gpusvm_core::migrate_to_ram`] |
//!
//! A driver names these types in its [`gpusvm_core::SvmDriver`] impl and supplies the rest
//! (its pagemap, its device-memory allocations, its invalidate op). The shim is compiled as a
//! separate library crate against the kernel's `core` and `kernel` crates and linked into the
//! driver's module (see `docs/KERNEL.md`).

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod clock;
pub mod dma;
pub mod ext;
pub mod kalloc;
pub mod lock;
pub mod mm;
pub mod pagemap;

pub use clock::KClock;
pub use dma::KDma;
pub use kalloc::KAlloc;
pub use lock::KRwSem;
pub use mm::{KMm, KNotifier};
pub use pagemap::DevicePrivate;

/// The kernel's page shift (`PAGE_SHIFT`); the shim supports 4 KiB pages.
pub const PAGE_SHIFT: u32 = 12;
/// The kernel's page size.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

const _: () = assert!(ext::GS_CONST_PAGE_SHIFT == PAGE_SHIFT as kernel::ffi::c_ulong);

/// Converts a C return value (0 or a negative errno) into a core result.
pub fn errno(ret: kernel::ffi::c_int) -> gpusvm_core::Result {
    if ret == 0 {
        Ok(())
    } else {
        Err(gpusvm_core::Error::from_errno(ret))
    }
}

/// `IS_ERR()`: whether a returned pointer encodes an errno.
pub fn is_err_ptr<T>(ptr: *const T) -> bool {
    (ptr as usize) > usize::MAX - gpusvm_core::Error::MAX_ERRNO as usize
}
