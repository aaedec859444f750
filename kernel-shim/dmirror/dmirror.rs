// SPDX-License-Identifier: GPL-2.0

//! `gpusvm_dmirror`: a virtual GPU built on the gpusvm core, modelled on the kernel's
//! `lib/test_hmm.c`. It proves the core inside a real kernel: device-private memory registered
//! with `memremap_pages` (real pages stand in for VRAM), a character device whose ioctls make
//! the "GPU" read or write the caller's address space through the core's fault flow, migrate
//! ranges to the device and back, and report residency. Invalidations go through the core; CPU
//! faults on device pages are served by the core's `migrate_to_ram`; freed device pages go to
//! the core's `device_page_free`.
//!
//! Crates linked into this module: `gpusvm_core` (unchanged, no `alloc` feature) with
//! `bitflags` and `intrusive_collections`, and `gpusvm_kshim` (the backend traits over Linux).

use kernel::prelude::*;

mod device;
mod driver;
mod file;
mod pte;
mod uapi;

module! {
    type: GpusvmDmirror,
    name: "gpusvm_dmirror",
    authors: ["gpusvm"],
    description: "gpusvm core test device (HMM mirror, device-private memory)",
    license: "GPL",
}

struct GpusvmDmirror {
    dev: Option<Pin<KBox<device::Device>>>,
}

impl kernel::Module for GpusvmDmirror {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let dev = device::Device::create(module)?;
        Ok(Self { dev: Some(dev) })
    }
}

impl Drop for GpusvmDmirror {
    fn drop(&mut self) {
        if let Some(dev) = self.dev.take() {
            device::Device::destroy(dev);
        }
    }
}
