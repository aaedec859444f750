// SPDX-License-Identifier: GPL-2.0

//! [`gpusvm_core::Allocator`] over the kernel's own Rust allocators
//! ([`kernel::alloc::allocator::Kmalloc`] and [`kernel::alloc::allocator::KVmalloc`]).

use core::alloc::Layout;
use core::ptr::NonNull;

use gpusvm_core::{code, AllocKind, Allocator, Result};
use kernel::alloc::allocator::{KVmalloc, Kmalloc};
use kernel::alloc::{flags::GFP_KERNEL, Allocator as _, NumaNode};

/// The kernel heap: `kmalloc(GFP_KERNEL)` for [`AllocKind::Object`], `kvmalloc(GFP_KERNEL)` for
/// [`AllocKind::Array`] (large pfn and DMA-address arrays may not be physically contiguous).
///
/// The core never allocates with its notifier lock held, so `GFP_KERNEL` (which may enter
/// reclaim, and through it MMU notifiers) is the right mask. Alignment is the kernel
/// allocators' business: both honour `Layout::align` (up to a page for `KVmalloc`) and fail
/// otherwise.
#[derive(Clone, Copy, Debug, Default)]
pub struct KAlloc;

// SAFETY: `Kmalloc::alloc`/`KVmalloc::alloc` return memory valid for `layout` or fail, and the
// same allocator frees it with the same layout. Freeing: `kfree` never sleeps, so objects may be
// freed in any context, including the page-free callback (page-table locks held). `kvfree`
// sleeps when the memory came from vmalloc, which `kvmalloc` uses only for sizes above a page
// when kmalloc fails; so an array may be freed in atomic context only if it is at most
// `PAGE_SIZE` bytes. The core frees its scratch arrays outside atomic sections; what a driver may
// drop in the page-free path (its `DevmemAllocation`, e.g. dmirror's `DevmemInner`) must be
// objects, or arrays within that limit.
unsafe impl Allocator for KAlloc {
    fn allocate(&self, layout: Layout, kind: AllocKind) -> Result<NonNull<u8>> {
        let mem = match kind {
            AllocKind::Object => Kmalloc::alloc(layout, GFP_KERNEL, NumaNode::NO_NODE),
            AllocKind::Array => KVmalloc::alloc(layout, GFP_KERNEL, NumaNode::NO_NODE),
        };
        mem.map(|p| p.cast::<u8>()).map_err(|_| code::ENOMEM)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout, kind: AllocKind) {
        match kind {
            // SAFETY: The caller passes a pointer from `allocate` with the same kind and layout.
            AllocKind::Object => unsafe { Kmalloc::free(ptr, layout) },
            // SAFETY: As above.
            AllocKind::Array => unsafe { KVmalloc::free(ptr, layout) },
        }
    }
}
