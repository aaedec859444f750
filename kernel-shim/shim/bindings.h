/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input of the shim's own bindgen pass (see Kbuild): what Rust-for-Linux 7.2's
 * `kernel::bindings` lacks. Types that `kernel::bindings` has are not regenerated
 * (--no-recursive-allowlist); the generated module imports them from there.
 */
#include <linux/gfp.h>
#include <linux/hmm.h>
#include <linux/migrate.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/slab.h>

#include "helpers.h"

/* Constants whose C definitions bindgen cannot evaluate (casts, __force). */
const vm_fault_t GS_CONST_VM_FAULT_SIGBUS = VM_FAULT_SIGBUS;
const vm_fault_t GS_CONST_VM_FAULT_OOM = VM_FAULT_OOM;
const unsigned long GS_CONST_PAGE_SHIFT = PAGE_SHIFT;
