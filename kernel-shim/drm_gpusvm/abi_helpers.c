// SPDX-License-Identifier: GPL-2.0
/* One-liners for the Rust DRM_GPUSVM (see abi_helpers.h). */
#include <linux/dma-fence.h>
#include <linux/mmap_lock.h>
#include <linux/rwsem.h>
#include <linux/sched/mm.h>
#include <drm/drm_gpusvm.h>
#include <linux/completion.h>
#include <linux/list.h>
#include <linux/lockdep.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <drm/drm_pagemap.h>
#include <drm/drm_print.h>

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

/* pagemap_ref.rs, pagemap_util.rs */
void gs_abi_list_del(struct list_head *entry) { list_del(entry); }
void gs_abi_list_del_init(struct list_head *entry) { list_del_init(entry); }
bool gs_abi_list_empty(const struct list_head *head) { return list_empty(head); }
void gs_abi_reinit_completion(struct completion *x) { reinit_completion(x); }
int gs_abi_mutex_lock_interruptible(struct mutex *lock) { return mutex_lock_interruptible(lock); }
void gs_abi_might_lock_spin(struct spinlock *lock) { might_lock(lock); }
void gs_abi_might_alloc_gfp_kernel(void) { might_alloc(GFP_KERNEL); }
void gs_abi_drm_dbg(const struct drm_device *drm, const char *msg) { drm_dbg(drm, "%s", msg); }
void gs_abi_drm_dbg_ptr(const struct drm_device *drm, const char *msg, const void *ptr)
{
	drm_dbg(drm, "%s %p.\n", msg, ptr);
}
bool gs_abi_drm_warn(const struct drm_device *drm, bool cond, const char *what)
{
	return drm_WARN(drm, cond, "%s", what);
}
struct drm_pagemap *gs_abi_drm_pagemap_get_unless_zero(struct drm_pagemap *dpagemap)
{
	return drm_pagemap_get_unless_zero(dpagemap);
}

/* Defined in Rust (pagemap_ref.rs); not in abi_helpers.h so that bindgen leaves them alone. */
void gs_pagemap_dev_unhold_work(struct work_struct *work);
void gs_pagemap_module_exit(void);
int gs_abi_selftest(void);

static int __init gs_abi_module_init(void) { return gs_abi_selftest(); }
module_init(gs_abi_module_init);

static DECLARE_WORK(drm_pagemap_work, gs_pagemap_dev_unhold_work);
void gs_abi_pagemap_work_schedule(void) { schedule_work(&drm_pagemap_work); }
bool gs_abi_pagemap_work_flush(void) { return flush_work(&drm_pagemap_work); }
void gs_abi_pagemap_work_disable_sync(void) { disable_work_sync(&drm_pagemap_work); }

static void __exit gs_abi_module_exit(void) { gs_pagemap_module_exit(); }
module_exit(gs_abi_module_exit);

/* migrate.rs, devmem.rs */
void gs_abi_mmap_assert_locked(struct mm_struct *mm) { mmap_assert_locked(mm); }
void gs_abi_dma_fence_put(struct dma_fence *fence) { dma_fence_put(fence); }

static DEFINE_SPINLOCK(gs_abi_devmem_table);

unsigned long gs_abi_devmem_table_lock(void) __acquires(&gs_abi_devmem_table)
{
	unsigned long flags;

	spin_lock_irqsave(&gs_abi_devmem_table, flags);
	return flags;
}

void gs_abi_devmem_table_unlock(unsigned long flags) __releases(&gs_abi_devmem_table)
{
	spin_unlock_irqrestore(&gs_abi_devmem_table, flags);
}

void gs_abi_assert_notifier_lock_held_write(struct drm_gpusvm *gpusvm)
{
	lockdep_assert_held_write(&gpusvm->notifier_lock);
}

void gs_abi_assert_driver_lock_held(struct drm_gpusvm *gpusvm)
{
#ifdef CONFIG_LOCKDEP
	if (gpusvm->lock_dep_map)
		lockdep_assert(lock_is_held_type(gpusvm->lock_dep_map, 0));
#endif
}
