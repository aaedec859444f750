//! Fallible allocation through a backend: the core never touches a global heap.
//!
//! The Linux kernel does not ship the `alloc` crate (6.13+ builds its own `KBox`/`KVec` on
//! `kmalloc`/`kvmalloc`), so every allocation the core makes (notifiers, ranges, DMA-address
//! arrays, pfn scratch arrays, migration buffers, allocation-tracking objects) goes through the
//! [`Allocator`] the driver supplies, and every failure is an `ENOMEM` the caller sees. Upstream
//! has the same seam in `drm_gpusvm_ops::{notifier,range}_alloc` and its `kvmalloc` calls.
//!
//! On top of the raw trait this module provides the two owning containers the core needs:
//! [`KBox`] (one object) and [`KArray`] (a fixed-length array). Both carry
//! their allocator handle, so they can be freed from any context (a range whose last reference is
//! dropped after its `Svm` is gone, a tracking object released from the page-free path). Kernel
//! allocators are zero-sized, so the handle costs nothing there.
//!
//! Rule (upstream §2.0): nothing allocates while the notifier lock is held. The lock guards in
//! [`crate::lock`] and the invalidation context expose no allocating operation, and
//! `tests::invalidation_does_not_allocate` proves the invalidation path makes zero calls here.

use core::alloc::Layout;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use crate::error::{code, Result};

/// What an allocation is for, so a kernel backend can choose `kmalloc` or `kvmalloc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocKind {
    /// A small, fixed-size object (notifier, range, tracking object): `kmalloc(GFP_KERNEL)`.
    Object,
    /// An array whose size grows with the span (pfns, DMA addresses): `kvmalloc(GFP_KERNEL)`.
    Array,
}

/// A fallible allocator.
///
/// Implementations are cheap handles (`Clone`); the kernel's are zero-sized.
///
/// # Safety
///
/// Implementers guarantee that a successful [`Allocator::allocate`] returns a pointer to at least
/// `layout.size()` writable bytes aligned to `layout.align()`, not aliased by any other live
/// allocation, valid until it is passed to [`Allocator::free`] (of this handle or any clone of
/// it). `free` must be callable from any context the core frees from: with the notifier lock
/// held, and from the device-page free path.
pub unsafe trait Allocator: Clone + Send + Sync + 'static {
    /// Allocates memory for `layout`. `layout.size()` is never zero.
    ///
    /// # Errors
    ///
    /// `ENOMEM` (or any errno the backend chooses) when the memory is not available.
    fn allocate(&self, layout: Layout, kind: AllocKind) -> Result<NonNull<u8>>;

    /// Frees memory obtained from [`Allocator::allocate`].
    ///
    /// # Safety
    ///
    /// `ptr` was returned by `allocate` on this allocator (or a clone) with the same `layout` and
    /// `kind`, and is not used afterwards.
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout, kind: AllocKind);
}

/// An owned, allocator-backed box.
///
/// # Invariants
///
/// `ptr` points to a valid, initialized `T` that this box owns exclusively. Unless `T` is
/// zero-sized, the memory was allocated by `alloc` with `Layout::new::<T>()` and
/// [`AllocKind::Object`].
pub struct KBox<T, A: Allocator> {
    ptr: NonNull<T>,
    alloc: A,
    _owns: PhantomData<T>,
}

// SAFETY: `KBox` owns its `T` exclusively, like `Box`; sending it sends the `T` and the handle.
unsafe impl<T: Send, A: Allocator> Send for KBox<T, A> {}
// SAFETY: Shared access to a `KBox` only gives shared access to the `T`.
unsafe impl<T: Sync, A: Allocator> Sync for KBox<T, A> {}

impl<T, A: Allocator> KBox<T, A> {
    /// Moves `value` into memory from `alloc`.
    ///
    /// # Errors
    ///
    /// The allocator's error. The value is handed back with it, so nothing is lost.
    pub fn try_new(value: T, alloc: A) -> core::result::Result<Self, (crate::Error, T)> {
        let layout = Layout::new::<T>();
        let ptr = if layout.size() == 0 {
            NonNull::dangling()
        } else {
            match alloc.allocate(layout, AllocKind::Object) {
                Ok(p) => p.cast::<T>(),
                Err(e) => return Err((e, value)),
            }
        };
        // SAFETY: `ptr` is valid for writes of `T` and suitably aligned (allocator contract, or
        // dangling for a zero-sized `T`, which is valid for zero-sized writes).
        unsafe { ptr.as_ptr().write(value) };
        // INVARIANT: `ptr` now holds an initialized `T` allocated as documented.
        Ok(Self {
            ptr,
            alloc,
            _owns: PhantomData,
        })
    }

    /// Gives up ownership; the caller must eventually rebuild the box with [`KBox::from_raw`].
    pub fn into_raw(this: Self) -> (NonNull<T>, A) {
        let this = core::mem::ManuallyDrop::new(this);
        // SAFETY: `this` is never dropped, so reading the handle out moves it exactly once.
        let alloc = unsafe { core::ptr::read(&this.alloc) };
        (this.ptr, alloc)
    }

    /// Rebuilds a box from [`KBox::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` and `alloc` come from one call of `into_raw`, and the box is rebuilt at most once.
    pub unsafe fn from_raw(ptr: NonNull<T>, alloc: A) -> Self {
        // INVARIANT: `into_raw` gave away a pointer satisfying the invariants.
        Self {
            ptr,
            alloc,
            _owns: PhantomData,
        }
    }
}

impl<T, A: Allocator> Deref for KBox<T, A> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: By the type invariants `ptr` is valid and owned by `self`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T, A: Allocator> DerefMut for KBox<T, A> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: By the type invariants `ptr` is valid and exclusively owned by `self`.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T, A: Allocator> Drop for KBox<T, A> {
    fn drop(&mut self) {
        let layout = Layout::new::<T>();
        // SAFETY: By the type invariants `ptr` holds an initialized `T` we own; it is dropped once.
        unsafe { core::ptr::drop_in_place(self.ptr.as_ptr()) };
        if layout.size() != 0 {
            // SAFETY: By the type invariants the memory came from `alloc` with this layout.
            unsafe {
                self.alloc
                    .free(self.ptr.cast::<u8>(), layout, AllocKind::Object)
            };
        }
    }
}

/// An owned, fixed-length array from an [`Allocator`] (`kvmalloc_array`): DMA-address and pfn
/// arrays, and the notifier's block trees (elements that are not `Copy` are built in place and
/// dropped one by one).
///
/// # Invariants
///
/// `ptr` points to `len` initialized `T`s owned by this array. Unless the byte size is zero, the
/// memory was allocated by `alloc` with `Layout::array::<T>(len)` and [`AllocKind::Array`].
pub struct KArray<T, A: Allocator> {
    ptr: NonNull<T>,
    len: usize,
    alloc: A,
    _owns: PhantomData<T>,
}

// SAFETY: `KArray` owns its elements exclusively, like `Box<[T]>`.
unsafe impl<T: Send, A: Allocator> Send for KArray<T, A> {}
// SAFETY: Shared access to a `KArray` only gives shared access to the elements.
unsafe impl<T: Sync, A: Allocator> Sync for KArray<T, A> {}

impl<T, A: Allocator> KArray<T, A> {
    /// Allocates `len` elements, each a copy of `init`.
    ///
    /// # Errors
    ///
    /// `ENOMEM` if the byte size overflows, or the allocator's error.
    pub fn try_new(len: usize, init: T, alloc: A) -> Result<Self>
    where
        T: Copy,
    {
        Self::try_new_with(len, || init, alloc)
    }

    /// Allocates `len` elements, each built by `make()` (called `len` times, in order).
    ///
    /// # Errors
    ///
    /// `ENOMEM` if the byte size overflows, or the allocator's error; `make` is not called then.
    pub fn try_new_with(len: usize, mut make: impl FnMut() -> T, alloc: A) -> Result<Self> {
        let layout = Layout::array::<T>(len).map_err(|_| code::ENOMEM)?;
        let ptr = if layout.size() == 0 {
            NonNull::dangling()
        } else {
            alloc.allocate(layout, AllocKind::Array)?.cast::<T>()
        };
        for i in 0..len {
            // SAFETY: `i < len`, so the write stays inside the allocation of `len` elements
            // (or is zero-sized for a zero-sized `T`). A panic in `make` (userspace only: the
            // kernel does not unwind) leaks the memory, which is safe.
            unsafe { ptr.as_ptr().add(i).write(make()) };
        }
        // INVARIANT: all `len` elements are initialized; the memory is as documented.
        Ok(Self {
            ptr,
            len,
            alloc,
            _owns: PhantomData,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T, A: Allocator> Deref for KArray<T, A> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: By the type invariants `ptr` points to `len` initialized elements.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T, A: Allocator> DerefMut for KArray<T, A> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: By the type invariants `ptr` points to `len` initialized elements we own.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T, A: Allocator> Drop for KArray<T, A> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the `len` elements are initialized and owned; they are
        // dropped exactly once, here (a no-op for `Copy` elements).
        unsafe {
            core::ptr::drop_in_place(core::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ))
        };
        if let Ok(layout) = Layout::array::<T>(self.len) {
            if layout.size() != 0 {
                // SAFETY: By the type invariants the memory came from `alloc` with this layout;
                // its elements were dropped above.
                unsafe {
                    self.alloc
                        .free(self.ptr.cast::<u8>(), layout, AllocKind::Array)
                };
            }
        }
    }
}

impl<T: core::fmt::Debug, A: Allocator> core::fmt::Debug for KArray<T, A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The `alloc` crate's global heap as an [`Allocator`], for userspace users.
#[cfg(feature = "alloc")]
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapAlloc;

#[cfg(feature = "alloc")]
// SAFETY: `alloc::alloc::alloc` returns memory valid for `layout` until `dealloc` with the same
// layout; both may be called from any thread and context in userspace.
unsafe impl Allocator for HeapAlloc {
    fn allocate(&self, layout: Layout, _kind: AllocKind) -> Result<NonNull<u8>> {
        // SAFETY: The trait promises `layout.size() != 0`.
        let ptr = unsafe { alloc::alloc::alloc(layout) };
        NonNull::new(ptr).ok_or(code::ENOMEM)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout, _kind: AllocKind) {
        // SAFETY: The caller passes a pointer from `allocate` with the same layout.
        unsafe { alloc::alloc::dealloc(ptr.as_ptr(), layout) };
    }
}
