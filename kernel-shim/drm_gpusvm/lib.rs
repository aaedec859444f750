// SPDX-License-Identifier: GPL-2.0

//! `drm_gpusvm_rs`: upstream's `drm_gpusvm` and `drm_pagemap` C API, implemented on gpusvm-core.
//!
//! This crate is the body of module `drm_gpusvm_helper` when the kernel is configured with
//! `CONFIG_DRM_GPUSVM_RUST=y` (see `kernel-shim/patches/`): every function that upstream's
//! `drm_gpusvm.c`, `drm_pagemap.c` and `drm_pagemap_util.c` export is defined here with
//! `#[no_mangle] extern "C"` and exported by `exports.c`, with upstream's prototypes and on
//! upstream's structures (`bindings`, generated from upstream's headers), so that a driver
//! compiled against `include/drm/drm_gpusvm.h` (Xe) links and runs unchanged.
//!
//! # How the C structures and the core fit together
//!
//! The core keeps its own index of notifiers and ranges, its sequence protocol and its pages
//! state machine. C callers, however, read some fields of upstream's structures directly, through
//! the header's inline helpers and macros (`drm_gpusvm_range_start`, `drm_gpusvm_for_each_range`,
//! `drm_gpusvm_notifier_lock`, `range->pages.flags`, `range->pages.dma_addr`, ...). Those fields
//! are kept exactly as upstream keeps them, at the same points and under the same locks (the
//! core's link/unlink hooks run inside its critical sections). The fields only upstream's own C
//! touches — the interval-tree links and roots (`root`, `itree.rb`) and the IOVA state of a pages
//! object (`pages.state`) — carry this crate's pointers to its Rust objects instead. See
//! `docs/KERNEL.md` for the field-by-field table.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod bindings;
mod pagemap_ref;
mod pagemap_util;

/// The prefix of this module's kernel log lines (`pr_*!`).
const __LOG_PREFIX: &[u8] = b"drm_gpusvm_helper\0";

mod devmem;
mod driver;
pub mod gpusvm;
pub mod migrate;
mod pagemap;
pub mod userptr;
