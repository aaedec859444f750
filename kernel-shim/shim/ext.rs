// SPDX-License-Identifier: GPL-2.0

//! What `kernel::bindings` of 6.12 lacks, from the shim's own bindgen pass over
//! `shim/bindings.h` (Kbuild rule `shim/ext_bindings.rs`): `struct hmm_range`,
//! `hmm_range_fault`, `struct migrate_vma`, `migrate_vma_*`, `migrate_device_*`,
//! `struct miscdevice`, the pfn flag values, and the C helpers (`gs_*`) that wrap static
//! inline functions. Every other type the generated code mentions is `kernel::bindings`'.

#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    missing_docs,
    unreachable_pub,
    improper_ctypes,
    unused_imports,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]

use kernel::bindings::*;
use kernel::ffi;

use pin_init::MaybeZeroable;

include!(env!("GS_EXT_BINDINGS"));
