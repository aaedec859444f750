//! The notifier lock and the guards that prove it is held.
//!
//! Upstream's `notifier_lock` is an rwsem with one unusual rule (brief §2.0): its write side is
//! taken only by the MMU-notifier callback; everything else — the commit check, mapping pages,
//! even inserting ranges into a notifier's tree — uses the read side. The rwsem is primed for
//! reclaim, so nothing may allocate while holding it.
//!
//! The core expresses those rules in types:
//! - [`RawRwLock`] is the backend (a kernel `rw_semaphore`, or [`SpinRwLock`] by default);
//! - [`ReadGuard`] and [`WriteGuard`] are the only proof of holding it, and they cannot be sent
//!   to another thread; functions that need the lock take `&impl NotifierLocked`;
//! - no guard exposes an allocating operation.
//!
//! Reference: `Documentation/gpu/rfc/gpusvm.rst` ("Locking").

use core::marker::PhantomData;

use crate::sync::{spin_loop, AtomicUsize, Ordering};

/// A reader-writer lock backend for the notifier lock.
///
/// # Safety
///
/// Implementers guarantee mutual exclusion: while a writer holds the lock nobody else does; any
/// number of readers may hold it together. Acquiring has acquire ordering and releasing has
/// release ordering, so that data written under the lock is visible to the next holder.
pub unsafe trait RawRwLock: Send + Sync {
    /// A new, unlocked lock.
    fn new() -> Self
    where
        Self: Sized;

    /// Takes the lock for reading, sleeping or spinning while a writer holds it.
    fn read_lock(&self);

    /// Releases a read hold.
    ///
    /// # Safety
    ///
    /// The caller holds the lock for reading.
    unsafe fn read_unlock(&self);

    /// Takes the lock for writing.
    fn write_lock(&self);

    /// Takes the lock for writing if that is possible without waiting.
    fn try_write_lock(&self) -> bool;

    /// Releases the write hold.
    ///
    /// # Safety
    ///
    /// The caller holds the lock for writing.
    unsafe fn write_unlock(&self);

    /// Called in every iteration of the core's short spin waits (a pages object's state lock),
    /// which only happen with this lock held for reading. The default is a CPU spin hint; a
    /// cooperative scheduler (the simulator) yields to the thread that holds what we wait for.
    fn relax() {
        spin_loop();
    }
}

/// Proof that the notifier lock of some [`crate::Svm`] is held, for reading or writing.
///
/// Implemented only by [`ReadGuard`], [`WriteGuard`] and [`HeldWriteLock`]; it is sealed.
pub trait NotifierLocked: private::Sealed {
    /// The address of the lock that is held, used to check that a guard belongs to the object it
    /// is presented to.
    fn lock_addr(&self) -> *const ();
    /// Whether the lock is held for writing.
    fn is_write(&self) -> bool;
}

mod private {
    pub trait Sealed {}
}

/// The notifier lock held for reading.
///
/// # Invariants
///
/// `lock` is held for reading by this thread for the lifetime of the guard.
#[must_use = "the lock is released when the guard is dropped"]
pub struct ReadGuard<'a, L: RawRwLock> {
    lock: &'a L,
    // Guards stay on the thread that took the lock (rwsems are released by their owner).
    _not_send: PhantomData<*mut ()>,
}

impl<'a, L: RawRwLock> ReadGuard<'a, L> {
    pub(crate) fn lock(lock: &'a L) -> Self {
        lock.read_lock();
        // INVARIANT: the read lock was just taken.
        Self {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl<L: RawRwLock> Drop for ReadGuard<'_, L> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the read lock is held.
        unsafe { self.lock.read_unlock() };
    }
}

impl<L: RawRwLock> private::Sealed for ReadGuard<'_, L> {}
impl<L: RawRwLock> NotifierLocked for ReadGuard<'_, L> {
    fn lock_addr(&self) -> *const () {
        (self.lock as *const L).cast()
    }
    fn is_write(&self) -> bool {
        false
    }
}

/// The notifier lock held for writing (inside the MMU-notifier callback).
///
/// # Invariants
///
/// `lock` is held for writing by this thread for the lifetime of the guard.
#[must_use = "the lock is released when the guard is dropped"]
pub struct WriteGuard<'a, L: RawRwLock> {
    lock: &'a L,
    _not_send: PhantomData<*mut ()>,
}

impl<'a, L: RawRwLock> WriteGuard<'a, L> {
    pub(crate) fn lock(lock: &'a L) -> Self {
        lock.write_lock();
        // INVARIANT: the write lock was just taken.
        Self {
            lock,
            _not_send: PhantomData,
        }
    }

    pub(crate) fn try_lock(lock: &'a L) -> Option<Self> {
        // INVARIANT: the guard is built only if the write lock was taken.
        // `then`, not `then_some`: building the guard eagerly would drop (unlock) it on failure.
        lock.try_write_lock().then(|| Self {
            lock,
            _not_send: PhantomData,
        })
    }
}

impl<L: RawRwLock> Drop for WriteGuard<'_, L> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the write lock is held.
        unsafe { self.lock.write_unlock() };
    }
}

impl<L: RawRwLock> private::Sealed for WriteGuard<'_, L> {}
impl<L: RawRwLock> NotifierLocked for WriteGuard<'_, L> {
    fn lock_addr(&self) -> *const () {
        (self.lock as *const L).cast()
    }
    fn is_write(&self) -> bool {
        true
    }
}

/// The notifier lock held for writing by a caller outside the core, which took it itself (the
/// C ABI's `drm_gpusvm_unmap_pages` with `ctx->in_notifier`, called from the driver's own
/// notifier). A proof only: dropping it releases nothing.
///
/// # Invariants
///
/// `lock` is held for writing by this thread for the lifetime of the proof.
pub struct HeldWriteLock<'a, L: RawRwLock> {
    lock: &'a L,
    _not_send: PhantomData<*mut ()>,
}

impl<'a, L: RawRwLock> HeldWriteLock<'a, L> {
    /// # Safety
    ///
    /// The current thread holds `lock` for writing for all of `'a`.
    pub(crate) unsafe fn assume(lock: &'a L) -> Self {
        // INVARIANT: the caller's guarantee.
        Self {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl<L: RawRwLock> private::Sealed for HeldWriteLock<'_, L> {}
impl<L: RawRwLock> NotifierLocked for HeldWriteLock<'_, L> {
    fn lock_addr(&self) -> *const () {
        (self.lock as *const L).cast()
    }
    fn is_write(&self) -> bool {
        true
    }
}

/// The default notifier lock: a writer-preferring spinning reader-writer lock.
///
/// A writer that finds readers sets `PENDING`, which keeps new readers out, so an invalidation
/// cannot be starved by a stream of commits. Built on the [`crate::sync`] facade so loom can
/// model-check code that uses it.
///
/// # Invariants
///
/// `state` is `WRITER` while a writer holds the lock (possibly with `PENDING`), otherwise the
/// number of readers in the low bits, possibly with `PENDING`.
#[derive(Debug)]
pub struct SpinRwLock {
    state: AtomicUsize,
}

const WRITER: usize = 1 << (usize::BITS - 1);
const PENDING: usize = 1 << (usize::BITS - 2);
const READERS: usize = PENDING - 1;

// SAFETY: `state` implements the reader-writer protocol described in the type invariants with
// acquire CAS on entry and release RMW on exit.
unsafe impl RawRwLock for SpinRwLock {
    fn new() -> Self {
        // INVARIANT: unlocked.
        Self {
            state: AtomicUsize::new(0),
        }
    }

    fn read_lock(&self) {
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & (WRITER | PENDING) == 0
                && s & READERS < READERS
                && self
                    .state
                    .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            spin_loop();
        }
    }

    unsafe fn read_unlock(&self) {
        self.state.fetch_sub(1, Ordering::Release);
    }

    fn write_lock(&self) {
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & (WRITER | READERS) == 0 {
                if self
                    .state
                    .compare_exchange_weak(s, WRITER, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
            } else if s & PENDING == 0 {
                self.state.fetch_or(PENDING, Ordering::Relaxed);
            }
            spin_loop();
        }
    }

    fn try_write_lock(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & (WRITER | READERS) == 0
            && self
                .state
                .compare_exchange(s, WRITER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    unsafe fn write_unlock(&self) {
        self.state.fetch_and(!WRITER, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn readers_share_writers_exclude() {
        let l = SpinRwLock::new();
        let r1 = ReadGuard::lock(&l);
        let r2 = ReadGuard::lock(&l);
        assert!(WriteGuard::try_lock(&l).is_none());
        drop(r1);
        assert!(WriteGuard::try_lock(&l).is_none());
        drop(r2);
        let w = WriteGuard::try_lock(&l).expect("free lock");
        assert!(w.is_write());
        assert!(WriteGuard::try_lock(&l).is_none());
        drop(w);
        let _r = ReadGuard::lock(&l);
    }

    #[test]
    fn writer_makes_progress_against_readers() {
        extern crate std;
        use std::sync::Arc;
        let l = Arc::new(SpinRwLock::new());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: std::vec::Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _g = ReadGuard::lock(&*l);
                    }
                })
            })
            .collect();
        for _ in 0..100 {
            let _w = WriteGuard::lock(&*l);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
    }
}
