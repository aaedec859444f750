// SPDX-License-Identifier: GPL-2.0

//! [`gpusvm_core::RawRwLock`] over a kernel `rw_semaphore`, like upstream's `notifier_lock`.

use core::ptr::NonNull;

use gpusvm_core::RawRwLock;
use kernel::bindings;

use crate::ext;

/// A kernel reader-writer semaphore.
///
/// The core constructs its lock by value (`RawRwLock::new`) and moves it into place, while an
/// initialized `rw_semaphore` must not move (its wait list points to itself). The semaphore
/// therefore lives in its own small slab object, allocated with `__GFP_NOFAIL` because the
/// constructor cannot fail (40 bytes: the page allocator retries forever rather than failing,
/// which is the documented use of the flag for tiny allocations). Every `KRwSem` is one lockdep
/// class, `gpusvm_kshim::KRwSem` (a [`kernel::sync::LockClassKey`]), as upstream's
/// `notifier_lock` is one class for every GPU VM.
///
/// Sleeping lock: readers may sleep (DMA mapping, `kvfree`) and the MMU-notifier callback that
/// takes it for writing may sleep when the invalidation is blockable; for a non-blockable one
/// the core only tries the lock ([`RawRwLock::try_write_lock`]).
///
/// # Invariants
///
/// `sem` points to an initialized `rw_semaphore` owned by this value, freed on drop.
pub struct KRwSem {
    sem: NonNull<bindings::rw_semaphore>,
}

// SAFETY: An rwsem may be taken and released from any task; the pointer is owned.
unsafe impl Send for KRwSem {}
// SAFETY: All operations go through the rwsem's own synchronization.
unsafe impl Sync for KRwSem {}

impl KRwSem {
    fn raw(&self) -> *mut bindings::rw_semaphore {
        self.sem.as_ptr()
    }
}

// SAFETY: `down_read`/`down_write` provide reader-writer exclusion with acquire semantics and
// `up_read`/`up_write` release semantics.
unsafe impl RawRwLock for KRwSem {
    fn new() -> Self {
        let size = core::mem::size_of::<bindings::rw_semaphore>();
        let sem = loop {
            // SAFETY: A plain allocation; `__GFP_NOFAIL` makes it succeed (see the type docs).
            let p = unsafe { ext::gs_kmalloc_nofail(size) };
            // `__GFP_NOFAIL` never returns NULL for an allocation this small; if it ever did,
            // retrying is all that can be done without panicking.
            if let Some(sem) = NonNull::new(p.cast::<bindings::rw_semaphore>()) {
                break sem;
            }
        };
        let class = kernel::static_lock_class!();
        // SAFETY: `sem` is a fresh allocation of the right size; `__init_rwsem` initializes it
        // at its final address, in a lock class that lives forever (static).
        unsafe {
            bindings::__init_rwsem(sem.as_ptr(), c"gpusvm_kshim::KRwSem".as_ptr().cast(), class.as_ptr())
        };
        // INVARIANT: initialized and owned.
        Self { sem }
    }

    fn read_lock(&self) {
        // SAFETY: By the type invariant the semaphore is initialized.
        unsafe { bindings::down_read(self.raw()) };
    }

    unsafe fn read_unlock(&self) {
        // SAFETY: The caller holds the read side.
        unsafe { bindings::up_read(self.raw()) };
    }

    fn write_lock(&self) {
        // SAFETY: By the type invariant the semaphore is initialized.
        unsafe { bindings::down_write(self.raw()) };
    }

    fn try_write_lock(&self) -> bool {
        // SAFETY: By the type invariant the semaphore is initialized.
        unsafe { bindings::down_write_trylock(self.raw()) != 0 }
    }

    unsafe fn write_unlock(&self) {
        // SAFETY: The caller holds the write side.
        unsafe { bindings::up_write(self.raw()) };
    }
}

impl Drop for KRwSem {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own the allocation; nobody holds a lock on it any
        // more (guards borrow the lock, so none outlives it).
        unsafe { bindings::kfree(self.sem.as_ptr().cast()) };
    }
}
