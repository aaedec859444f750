// SPDX-License-Identifier: GPL-2.0

//! [`gpusvm_core::Allocator`] over the slab and vmalloc allocators.

use core::alloc::Layout;
use core::ptr::NonNull;

use gpusvm_core::{code, AllocKind, Allocator, Result};
use kernel::bindings;

use crate::ext;

/// The kernel heap: `kmalloc(GFP_KERNEL)` for [`AllocKind::Object`], `kvmalloc(GFP_KERNEL)` for
/// [`AllocKind::Array`] (large pfn and DMA-address arrays may not be physically contiguous).
///
/// The core never allocates with its notifier lock held, so `GFP_KERNEL` (which may enter
/// reclaim, and through it MMU notifiers) is the right mask.
#[derive(Clone, Copy, Debug, Default)]
pub struct KAlloc;

/// The size to request so that the allocator's natural alignment satisfies `layout`: slab
/// objects are aligned to `ARCH_KMALLOC_MINALIGN`, and power-of-two sizes to their size;
/// vmalloc memory is page aligned.
fn request_size(layout: Layout, kind: AllocKind) -> Option<usize> {
    let padded = layout.pad_to_align().size();
    match kind {
        AllocKind::Object if layout.align() > ext::GS_CONST_ARCH_KMALLOC_MINALIGN => {
            padded.checked_next_power_of_two()
        }
        // kvmalloc falls back to vmalloc (page aligned) for large sizes and uses kmalloc
        // otherwise, so both rules must hold.
        AllocKind::Array if layout.align() > ext::GS_CONST_ARCH_KMALLOC_MINALIGN => {
            if layout.align() > crate::PAGE_SIZE {
                None
            } else {
                padded.checked_next_power_of_two()
            }
        }
        _ => Some(padded),
    }
}

// SAFETY: `krealloc(NULL, n)`/`kvrealloc(NULL, n)` return `n` bytes or NULL; `request_size`
// makes the allocator's alignment guarantee cover `layout`. Freeing: `kfree` never sleeps, so
// objects may be freed in any context, including the page-free callback (page-table locks
// held). `kvfree` sleeps when the memory came from vmalloc, which `kvmalloc` uses only for
// sizes above a page when kmalloc fails; so an array may be freed in atomic context only if
// it is at most `PAGE_SIZE` bytes. The core frees its scratch arrays outside atomic sections;
// what a driver may drop in the page-free path (its `DevmemAllocation`, e.g. dmirror's
// `DevmemInner`) must be objects, or arrays within that limit.
unsafe impl Allocator for KAlloc {
    fn allocate(&self, layout: Layout, kind: AllocKind) -> Result<NonNull<u8>> {
        let size = request_size(layout, kind).ok_or(code::ENOMEM)?;
        let ptr = match kind {
            // SAFETY: Reallocating NULL is a plain allocation.
            AllocKind::Object => unsafe {
                bindings::krealloc(core::ptr::null(), size, bindings::GFP_KERNEL)
            },
            // SAFETY: As above.
            AllocKind::Array => unsafe {
                bindings::kvrealloc(core::ptr::null(), size, bindings::GFP_KERNEL)
            },
        };
        NonNull::new(ptr.cast::<u8>()).ok_or(code::ENOMEM)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, _layout: Layout, kind: AllocKind) {
        match kind {
            // SAFETY: The caller passes a pointer from `allocate` with the same kind.
            AllocKind::Object => unsafe { bindings::kfree(ptr.as_ptr().cast()) },
            // SAFETY: As above.
            AllocKind::Array => unsafe { bindings::kvfree(ptr.as_ptr().cast()) },
        }
    }
}
