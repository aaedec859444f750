/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C one-liners for the Rust DRM_GPUSVM (abi_helpers.c): static inline functions and macros of
 * the kernel headers that the Rust side needs and neither `kernel::bindings` nor the shim's
 * helpers provide. No logic lives here.
 */
#ifndef GPUSVM_ABI_HELPERS_H
#define GPUSVM_ABI_HELPERS_H

#include <linux/types.h>

struct rw_semaphore;
struct drm_gpusvm;

/* drm_gpusvm_init: the notifier lock, one lockdep class for every GPU SVM as upstream's. */
void gs_abi_init_notifier_lock(struct rw_semaphore *sem);
/* drm_gpusvm_init: tell lockdep the lock may be taken under reclaim (fs_reclaim, might_lock). */
void gs_abi_prime_notifier_lock(struct rw_semaphore *sem);
/* drm_gpusvm_init: gpusvm->lock_dep_map = NULL (the field exists only with CONFIG_LOCKDEP). */
void gs_abi_clear_lock_dep_map(struct drm_gpusvm *gpusvm);

#endif
