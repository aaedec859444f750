// SPDX-License-Identifier: GPL-2.0
/*
 * The Rust DRM_GPUSVM module: the export table and the module information.
 *
 * Every function below is defined in Rust (`#[no_mangle] extern "C"`, crate drm_gpusvm_rs); this
 * file exports each one exactly as upstream's drm_gpusvm.c, drm_pagemap.c and
 * drm_pagemap_util.c do (EXPORT_SYMBOL or EXPORT_SYMBOL_GPL), so that a driver built against
 * include/drm/drm_gpusvm.h and drm_pagemap*.h (Xe) links against this module unchanged.
 * Including upstream's headers makes the compiler check that each exported name is declared
 * there; the Rust side checks each definition against the bindgen'd prototype.
 */
#include <linux/module.h>
#include <drm/drm_gpusvm.h>
#include <drm/drm_pagemap.h>
#include <drm/drm_pagemap_util.h>

/* drm_gpusvm.c */
EXPORT_SYMBOL_GPL(drm_gpusvm_notifier_find);
EXPORT_SYMBOL_GPL(drm_gpusvm_range_find);
EXPORT_SYMBOL_GPL(drm_gpusvm_init);
EXPORT_SYMBOL_GPL(drm_gpusvm_fini);
EXPORT_SYMBOL(drm_gpusvm_scan_mm);
EXPORT_SYMBOL_GPL(drm_gpusvm_find_vma_start);
EXPORT_SYMBOL_GPL(drm_gpusvm_range_find_or_insert);
EXPORT_SYMBOL_GPL(drm_gpusvm_free_pages);
EXPORT_SYMBOL_GPL(drm_gpusvm_range_remove);
EXPORT_SYMBOL_GPL(drm_gpusvm_range_get);
EXPORT_SYMBOL_GPL(drm_gpusvm_range_put);
EXPORT_SYMBOL_GPL(drm_gpusvm_range_pages_valid);
EXPORT_SYMBOL_GPL(drm_gpusvm_get_pages);
EXPORT_SYMBOL_GPL(drm_gpusvm_range_get_pages);
EXPORT_SYMBOL_GPL(drm_gpusvm_unmap_pages);
EXPORT_SYMBOL_GPL(drm_gpusvm_range_unmap_pages);
EXPORT_SYMBOL_GPL(drm_gpusvm_range_evict);
EXPORT_SYMBOL_GPL(drm_gpusvm_has_mapping);
EXPORT_SYMBOL_GPL(drm_gpusvm_range_set_unmapped);

/* drm_pagemap.c */
EXPORT_SYMBOL_GPL(drm_pagemap_migrate_to_devmem);
EXPORT_SYMBOL(drm_pagemap_reinit);
EXPORT_SYMBOL(drm_pagemap_init);
EXPORT_SYMBOL(drm_pagemap_put);
EXPORT_SYMBOL_GPL(drm_pagemap_evict_to_ram);
EXPORT_SYMBOL_GPL(drm_pagemap_pagemap_ops_get);
EXPORT_SYMBOL_GPL(drm_pagemap_devmem_init);
EXPORT_SYMBOL_GPL(drm_pagemap_page_to_dpagemap);
EXPORT_SYMBOL(drm_pagemap_populate_mm);

/* drm_pagemap_util.c */
EXPORT_SYMBOL(drm_pagemap_cache_create_devm);
EXPORT_SYMBOL(drm_pagemap_cache_lock_lookup);
EXPORT_SYMBOL(drm_pagemap_cache_unlock_lookup);
EXPORT_SYMBOL(drm_pagemap_get_from_cache);
EXPORT_SYMBOL(drm_pagemap_cache_set_pagemap);
EXPORT_SYMBOL(drm_pagemap_get_from_cache_if_active);
EXPORT_SYMBOL(drm_pagemap_shrinker_create_devm);
EXPORT_SYMBOL(drm_pagemap_release_owner);
EXPORT_SYMBOL(drm_pagemap_acquire_owner);

/* Which implementation this is, for tests and users: /sys/module/drm_gpusvm_helper/parameters/impl */
static char *impl = "rust";
module_param(impl, charp, 0444);
MODULE_PARM_DESC(impl, "implementation of DRM_GPUSVM: rust (gpusvm-core)");

MODULE_DESCRIPTION("DRM GPUSVM (Rust implementation on gpusvm-core)");
MODULE_LICENSE("GPL");
