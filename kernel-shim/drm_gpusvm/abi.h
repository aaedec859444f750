/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input of the Rust DRM_GPUSVM's bindgen pass (see Kbuild): upstream's own headers, so that every
 * structure a driver touches (struct drm_gpusvm, drm_gpusvm_range, drm_gpusvm_pages,
 * drm_pagemap, drm_pagemap_devmem, ...) has exactly upstream's layout, and every function has
 * exactly upstream's prototype (lib.rs checks each of ours against it).
 */
#include <linux/dma-mapping.h>
#include <linux/hmm.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mmu_notifier.h>
#include <linux/interval_tree.h>
#include <drm/drm_gpusvm.h>
#include <drm/drm_pagemap.h>
#include <drm/drm_pagemap_util.h>

#include "abi_helpers.h"
