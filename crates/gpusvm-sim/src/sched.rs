//! TEMPORARY single-threaded stand-in for the deterministic scheduler (being written).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Runs tasks one after the other (stand-in).
pub fn run_concurrent<'a, R: Send>(
    _seed: u64,
    tasks: Vec<Box<dyn FnOnce() -> R + Send + 'a>>,
) -> Vec<R> {
    tasks.into_iter().map(|t| t()).collect()
}
/// No-op.
pub fn yield_now() {}
/// Never inside a simulation.
pub fn in_simulation() -> bool {
    false
}
/// Panics if the condition is false.
pub fn wait_until(mut cond: impl FnMut() -> bool) {
    assert!(cond(), "would block forever outside a simulation");
}
/// A mutex.
pub struct SimMutex<T>(Mutex<T>);
/// Its guard.
pub type SimMutexGuard<'a, T> = MutexGuard<'a, T>;
impl<T> SimMutex<T> {
    /// New.
    pub fn new(v: T) -> Self {
        SimMutex(Mutex::new(v))
    }
    /// Lock.
    pub fn lock(&self) -> SimMutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
/// A rwlock.
pub struct SimRwLock(AtomicUsize);
const W: usize = 1 << 40;
impl SimRwLock {
    /// New.
    pub fn new() -> Self {
        SimRwLock(AtomicUsize::new(0))
    }
    /// Read guard.
    pub fn read(&self) -> SimReadGuard<'_> {
        gpusvm_core::RawRwLock::read_lock(self);
        SimReadGuard(self)
    }
    /// Write guard.
    pub fn write(&self) -> SimWriteGuard<'_> {
        gpusvm_core::RawRwLock::write_lock(self);
        SimWriteGuard(self)
    }
}
impl Default for SimRwLock {
    fn default() -> Self {
        Self::new()
    }
}
/// Read guard.
pub struct SimReadGuard<'a>(&'a SimRwLock);
impl Drop for SimReadGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}
/// Write guard.
pub struct SimWriteGuard<'a>(&'a SimRwLock);
impl Drop for SimWriteGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(W, Ordering::SeqCst);
    }
}
// SAFETY: single-threaded stand-in; counts only.
unsafe impl gpusvm_core::RawRwLock for SimRwLock {
    fn new() -> Self {
        SimRwLock::new()
    }
    fn read_lock(&self) {
        assert!(
            self.0.load(Ordering::SeqCst) < W,
            "read lock while write-locked"
        );
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    unsafe fn read_unlock(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
    fn write_lock(&self) {
        assert!(
            self.0.load(Ordering::SeqCst) == 0,
            "write lock while locked"
        );
        self.0.fetch_add(W, Ordering::SeqCst);
    }
    fn try_write_lock(&self) -> bool {
        self.0
            .compare_exchange(0, W, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
    unsafe fn write_unlock(&self) {
        self.0.fetch_sub(W, Ordering::SeqCst);
    }
}
