//! Device-memory pagemaps (`struct drm_pagemap`) as the core uses them.
//!
//! C header: [`include/drm/drm_pagemap.h`].
//!
//! A pagemap is one device's pool of device-private pages (one `dev_pagemap`). The core needs it
//! to map device pages for a GPU (`device_map`, local VRAM addresses or peer bus addresses) and
//! to ask the driver to make a span resident in it (`populate_mm`). The handle is counted:
//! `Clone` is `drm_pagemap_get` and `Drop` is `drm_pagemap_put`, so a pages object that mapped
//! device pages, or an allocation tracker, keeps its pagemap alive exactly as upstream's
//! references do.
//!
//! [`populate_mm`] is the exported entry point (`drm_pagemap_populate_mm`); device removal is the
//! implementation's business (it must return `ENODEV` once the device is gone), with
//! [`crate::migrate::evict_to_ram`] to move everything back.

use crate::addr::Span;
use crate::dma::{DmaDirection, DmaEntry};
use crate::driver::SvmDriver;
use crate::error::{code, Result};
use crate::mm::{MmUser, MmapReadGuard, Owner, PgmapId};

/// A counted reference to a device-memory pagemap (`drm_pagemap_ops` on a `drm_pagemap`).
pub trait Pagemap<D: SvmDriver>: Clone + Send + Sync + 'static {
    /// The `dev_pagemap` whose pages this pagemap provides.
    fn pgmap(&self) -> PgmapId;

    /// The device-private owner cookie of the pagemap (`pagemap->owner`).
    fn owner(&self) -> Owner;

    /// Maps a device page of this pagemap for access by `dev` (`device_map`): a local VRAM
    /// address for the owning device, a bus address for a peer.
    ///
    /// # Errors
    ///
    /// Any failure; `get_pages` reports it as `EFAULT`.
    fn device_map(&self, dev: &D::Dma, pfn: u64, order: u32, dir: DmaDirection)
        -> Result<DmaEntry>;

    /// Undoes [`Pagemap::device_map`] (`device_unmap`).
    fn device_unmap(&self, dev: &D::Dma, entry: DmaEntry);

    /// Makes `span` of the locked mm resident in this pagemap, best effort (`populate_mm` op):
    /// allocate device memory, then [`crate::migrate::migrate_to_devmem`].
    ///
    /// # Errors
    ///
    /// `ENODEV` after device removal; `EBUSY`, `ENOMEM`, and the migration's errors.
    fn populate_mm(&self, lock: &MmapReadGuard<'_, D::Mm>, span: Span, timeslice_ms: u64)
        -> Result;
}

/// `drm_pagemap_populate_mm`: takes a user reference and the mmap lock, then calls the
/// pagemap's `populate_mm`.
///
/// # Errors
///
/// `EFAULT` if the mm is exiting; otherwise the op's error.
pub fn populate_mm<D: SvmDriver>(
    pagemap: &D::Pagemap,
    span: Span,
    mm: &D::Mm,
    timeslice_ms: u64,
) -> Result {
    let user = MmUser::get(mm).ok_or(code::EFAULT)?;
    let lock = user.read_lock();
    pagemap.populate_mm(&lock, span, timeslice_ms)
}
