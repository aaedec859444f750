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
/* lockdep_assert_held_write(&gpusvm->notifier_lock) (nothing without lockdep). */
void gs_abi_assert_notifier_lock_held_write(struct drm_gpusvm *gpusvm);
/* Whether lockdep is built in: without it the assertion above is empty, and Rust does not call
 * it (it runs once per range in an invalidation). */
#ifdef CONFIG_LOCKDEP
#define GS_ABI_LOCKDEP 1
#else
#define GS_ABI_LOCKDEP 0
#endif
/* drm_gpusvm_driver_lock_held: the driver lock named by drm_gpusvm_driver_set_lock, if any. */
void gs_abi_assert_driver_lock_held(struct drm_gpusvm *gpusvm);
/* drm_gpusvm_init: gpusvm->lock_dep_map = NULL (the field exists only with CONFIG_LOCKDEP). */
void gs_abi_clear_lock_dep_map(struct drm_gpusvm *gpusvm);

/*
 * drm_pagemap.c / drm_pagemap_util.c (pagemap_ref.rs, pagemap_util.rs): the static inlines and
 * macros of list.h, completion.h, lockdep.h, sched/mm.h, drm_print.h and drm_pagemap.h that the
 * pagemap lifecycle, cache, shrinker and owner list use.
 */
struct completion;
struct drm_device;
struct drm_pagemap;
struct list_head;
struct mutex;
struct spinlock;

void gs_abi_list_del(struct list_head *entry);
void gs_abi_list_del_init(struct list_head *entry);
bool gs_abi_list_empty(const struct list_head *head);
void gs_abi_reinit_completion(struct completion *x);
/* mutex_lock_interruptible(), a macro under CONFIG_DEBUG_LOCK_ALLOC. */
int gs_abi_mutex_lock_interruptible(struct mutex *lock);
/* might_lock(): a lockdep annotation, empty without CONFIG_PROVE_LOCKING. */
void gs_abi_might_lock_spin(struct spinlock *lock);
/* might_alloc(GFP_KERNEL). */
void gs_abi_might_alloc_gfp_kernel(void);
/* drm_dbg(drm, "%s", msg) and drm_dbg(drm, "%s %p.\n", msg, ptr). */
void gs_abi_drm_dbg(const struct drm_device *drm, const char *msg);
void gs_abi_drm_dbg_ptr(const struct drm_device *drm, const char *msg, const void *ptr);
/* drm_WARN(drm, cond, "%s", what): upstream's drm_WARN_ON(drm, x) with what = "drm_WARN_ON(x)". */
bool gs_abi_drm_warn(const struct drm_device *drm, bool cond, const char *what);
/* The header's drm_pagemap_get_unless_zero(). */
struct drm_pagemap *gs_abi_drm_pagemap_get_unless_zero(struct drm_pagemap *dpagemap);
/*
 * drm_pagemap.c's deferred provider release (pagemap_ref.rs): the static work item, a
 * DECLARE_WORK as upstream's drm_pagemap_work (a static initializer, lockdep map included),
 * running Rust's gs_pagemap_dev_unhold_work(); and schedule_work/flush_work/disable_work_sync
 * on it. abi_helpers.c also holds the module_exit that calls Rust's gs_pagemap_module_exit(),
 * upstream's drm_pagemap_exit().
 */
void gs_abi_pagemap_work_schedule(void);
bool gs_abi_pagemap_work_flush(void);
void gs_abi_pagemap_work_disable_sync(void);

struct mm_struct;
struct dma_fence;

/* drm_pagemap_migrate_to_devmem (migrate.rs): mmap_assert_locked(mm), as upstream asserts. */
void gs_abi_mmap_assert_locked(struct mm_struct *mm);
/* drm_pagemap_migrate_to_devmem (migrate.rs): dma_fence_put() (NULL is a no-op). */
void gs_abi_dma_fence_put(struct dma_fence *fence);
/*
 * devmem.rs: the lock of the table from a C struct drm_pagemap_devmem to its Rust block, a
 * static spinlock taken with spin_lock_irqsave() (the last handle of a block may go away in
 * folio_free, in atomic context). Returns the saved flags for the unlock.
 */
unsigned long gs_abi_devmem_table_lock(void);
void gs_abi_devmem_table_unlock(unsigned long flags);

#endif
