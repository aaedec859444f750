//! [`PagesApi`]: the pages-only half of an instance, usable without borrowing the [`Svm`].
//!
//! `get_pages`, `unmap_pages`, `free_pages`, the validity checks and the notifier lock need only
//! the instance's shared state (its lock, allocator, clock, DMA device), never its notifier and
//! range trees. Upstream's C lets drivers call them without the driver lock (Xe's userptr code
//! calls `drm_gpusvm_unmap_pages` from its own MMU notifier and `drm_gpusvm_free_pages` from a
//! fence callback) while another thread holds the instance for a structural change. In Rust the
//! second thread has the `&mut Svm`, so the first must not make a `&Svm`: it holds a `PagesApi`,
//! a reference to the shared state alone. [`Svm`]'s own pages methods are this type's.

use crate::addr::Span;
use crate::dma::DmaEntry;
use crate::driver::{Ctx, SvmDriver};
use crate::error::Result;
use crate::lock::{HeldWriteLock, NotifierLocked, ReadGuard, WriteGuard};
use crate::mm::MmNotifier;
use crate::pages::{self, SvmPages};
#[cfg(doc)]
use crate::svm::Svm;
use crate::svm::SvmShared;

/// The pages-only operations of one instance (see the module docs).
pub struct PagesApi<'a, D: SvmDriver> {
    shared: &'a SvmShared<D>,
}

impl<D: SvmDriver> Clone for PagesApi<'_, D> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<D: SvmDriver> Copy for PagesApi<'_, D> {}

impl<'a, D: SvmDriver> PagesApi<'a, D> {
    pub(crate) fn new(shared: &'a SvmShared<D>) -> Self {
        Self { shared }
    }

    /// The driver.
    pub fn driver(&self) -> &'a D {
        self.shared.driver()
    }

    /// Takes the notifier lock for reading (`drm_gpusvm_notifier_lock`).
    pub fn notifier_lock(&self) -> ReadGuard<'a, D::Lock> {
        self.shared.read_lock()
    }

    /// Takes the notifier lock for writing, for a pages-only user's own invalidate callback.
    pub fn notifier_lock_write(&self) -> WriteGuard<'a, D::Lock> {
        WriteGuard::lock(self.shared.lock())
    }

    /// A proof that the current thread holds the notifier lock for writing, for a caller that
    /// took it outside the core (through the lock object it gave [`Svm::with_lock`]).
    ///
    /// # Safety
    ///
    /// The current thread holds this instance's notifier lock for writing for all of `'a`.
    pub unsafe fn assume_write_locked(&self) -> HeldWriteLock<'a, D::Lock> {
        // SAFETY: Forwarded from the caller.
        unsafe { HeldWriteLock::assume(self.shared.lock()) }
    }

    /// Whether `nl` is this instance's notifier lock.
    pub(crate) fn owns(&self, nl: &impl NotifierLocked) -> bool {
        core::ptr::eq(
            nl.lock_addr(),
            (self.shared.lock() as *const D::Lock).cast(),
        )
    }

    /// Whether `pages` is valid for a commit (`drm_gpusvm_pages_valid`). `nl` must be this
    /// instance's notifier lock; a foreign guard yields `false`.
    pub fn pages_valid(&self, nl: &impl NotifierLocked, pages: &SvmPages<D>) -> bool {
        self.owns(nl) && pages.flags().is_valid()
    }

    /// Runs `f` on the DMA entries of `pages` if they are valid: what a commit writes into GPU
    /// page tables. `None` if invalid (the commit must retry the fault) or `nl` is foreign.
    pub fn pages_entries<R>(
        &self,
        nl: &impl NotifierLocked,
        pages: &SvmPages<D>,
        f: impl FnOnce(&[DmaEntry]) -> R,
    ) -> Option<R> {
        if !self.owns(nl) {
            return None;
        }
        pages.with_entries(nl, f)
    }

    /// `drm_gpusvm_get_pages`: fault in `span` of `mm` and DMA-map it into `pages`, with the
    /// caller's own interval notifier (see [`Svm::get_pages`] for the errors).
    ///
    /// # Errors
    ///
    /// As [`Svm::get_pages`].
    pub fn get_pages(
        &self,
        pages: &SvmPages<D>,
        mm: &D::Mm,
        notifier: &MmNotifier<D::Mm>,
        span: Span,
        ctx: &Ctx,
    ) -> Result {
        pages::get_pages(self.shared, pages, mm, notifier, span, ctx)
    }

    /// `drm_gpusvm_unmap_pages` outside the notifier: takes the notifier lock for reading.
    pub fn unmap_pages(&self, pages: &SvmPages<D>) {
        self.unmap_pages_locked(&self.shared.read_lock(), pages);
    }

    /// `drm_gpusvm_unmap_pages` with the notifier lock held by the caller (`nl`; a foreign
    /// guard does nothing).
    pub fn unmap_pages_locked(&self, nl: &impl NotifierLocked, pages: &SvmPages<D>) {
        if self.owns(nl) {
            pages.unmap_locked(&mut pages.lock_state(nl));
        }
    }

    /// `drm_gpusvm_free_pages`: unmaps and frees the DMA array (after dropping the lock).
    pub fn free_pages(&self, pages: &SvmPages<D>) {
        let nl = self.shared.read_lock();
        let array = {
            let mut st = pages.lock_state(&nl);
            pages.free_locked(&mut st)
        };
        drop(nl);
        drop(array);
    }

    /// `drm_gpusvm_free_pages` with the notifier lock held by the caller (`nl`; a foreign guard
    /// does nothing). The DMA array is freed under the lock, which freeing (never allocating)
    /// allows.
    pub fn free_pages_locked(&self, nl: &impl NotifierLocked, pages: &SvmPages<D>) {
        if self.owns(nl) {
            // The state lock goes first: only the notifier lock is held while the array is freed.
            let array = {
                let mut st = pages.lock_state(nl);
                pages.free_locked(&mut st)
            };
            drop(array);
        }
    }
}
