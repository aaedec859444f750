//! The synchronization facade: every atomic and every shared cell of the core comes from here.
//!
//! Normally these are `core`'s atomics and a zero-cost [`UnsafeCell`]. Under `cfg(loom)` they are
//! loom's, so that the model checker sees every load, store and cell access and can explore the
//! interleavings (`docs/VERIFICATION.md`). Code that uses the facade must not rely on `const`
//! constructors, which loom does not have.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{
    fence, AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering,
};

/// Tells the processor (or loom's scheduler) that we are spinning.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// A cell whose accesses are checked by loom and free otherwise.
///
/// The API mirrors `loom::cell::UnsafeCell`: access goes through closures receiving raw pointers,
/// so every access site is visible to the model checker.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    #[inline]
    pub(crate) fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared pointer to the contents.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a unique pointer to the contents.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
