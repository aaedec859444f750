// SPDX-License-Identifier: GPL-2.0
/* One-liners for the Rust DRM_GPUSVM (see abi_helpers.h). */
#include <linux/rwsem.h>
#include <linux/sched/mm.h>
#include <drm/drm_gpusvm.h>

#include "abi_helpers.h"

void gs_abi_init_notifier_lock(struct rw_semaphore *sem) { init_rwsem(sem); }

void gs_abi_prime_notifier_lock(struct rw_semaphore *sem)
{
	fs_reclaim_acquire(GFP_KERNEL);
	might_lock(sem);
	fs_reclaim_release(GFP_KERNEL);
}

void gs_abi_clear_lock_dep_map(struct drm_gpusvm *gpusvm)
{
#ifdef CONFIG_LOCKDEP
	gpusvm->lock_dep_map = NULL;
#endif
}
