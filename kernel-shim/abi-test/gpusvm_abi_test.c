// SPDX-License-Identifier: GPL-2.0
/*
 * gpusvm_abi_test: a differential test of the drm_gpusvm C API.
 *
 * This module uses nothing of drm_gpusvm but include/drm/drm_gpusvm.h and
 * include/drm/drm_pagemap.h, so that it runs unchanged against upstream's C
 * drm_gpusvm_helper.ko and against any other module exporting the same symbols with the
 * same ABI (the Rust implementation). It plays the part of a GPU driver (Xe's patterns:
 * xe_svm.c, xe_userptr.c) on a faux device that DMA-maps system pages directly, and
 * exposes /dev/gpusvm_abi_test, whose ioctls (gpusvm_abi_test.h) a userspace program
 * (abi_test.c) drives in its own process.
 *
 * Per open file: one struct drm_gpusvm (embedded in struct gsat_file) over current->mm,
 * the driver lock (a mutex, given to drm_gpusvm_driver_set_lock), ranges embedded in
 * struct gsat_range (ops.range_alloc/range_free), notifiers embedded in struct
 * gsat_notifier (ops.notifier_alloc/notifier_free), an invalidate callback following
 * xe_svm_invalidate (clip to the notifier, drm_gpusvm_for_each_range,
 * drm_gpusvm_range_unmap_pages with ctx.in_notifier, and on MMU_NOTIFY_UNMAP
 * drm_gpusvm_range_set_unmapped plus a garbage-collector queue), a garbage collector
 * run under the driver lock at the start of FIND_OR_INSERT and GET_PAGES (the "fault
 * handler") or by the GC ioctl, which calls drm_gpusvm_range_remove, and userptr slots
 * (the simple drm_gpusvm_pages API) with the module's own mmu_interval_notifier, as
 * xe_userptr.c.
 *
 * ------------------------------------------------------------------------------------
 * Bad inputs upstream (drivers/gpu/drm/drm_gpusvm.c of Linux 7.2) does NOT guard.
 *
 * Each one would oops, WARN, read or write out of bounds, or leave drm_gpusvm in a
 * corrupt state with upstream's implementation; the regular ioctls refuse them (-EDOM,
 * -ESHUTDOWN) before calling drm_gpusvm, and each exists only as one GSAT_IOC_UNGUARDED
 * case (enum gsat_unguarded_case), which abi_test runs only with -u: they are checks for
 * an implementation that validates its input, never part of the differential run against
 * upstream. Line numbers are those of drm_gpusvm.c in the 7.2 tree.
 *
 *  INIT_NULL_GPUSVM             drm_gpusvm_init(NULL, ...): mmgrab (l.394), then
 *                               gpusvm->name = name (l.401): NULL dereference.
 *  INIT_FULL_OPS_NULL           mm != NULL, ops == NULL: ops->invalidate (l.392).
 *  INIT_FULL_CHUNKS_NULL        mm != NULL, chunk_sizes == NULL, num_chunks > 0: init
 *                               succeeds; find_or_insert reads chunk_sizes[i] (l.899).
 *  INIT_NOTIFIER_SIZE_NPOT      notifier_size not a power of two: init succeeds (nothing
 *                               checks it); ALIGN/ALIGN_DOWN (l.531-532) then make
 *                               notifiers that overlap or miss the fault address, and
 *                               range_remove's notifier_find (l.1250) can pick the wrong
 *                               notifier's tree.
 *  INIT_NOTIFIER_SIZE_ZERO      notifier_size 0: init succeeds; every notifier becomes
 *                               [0, ULONG_MAX] of size 0 and mmu_interval_notifier_insert
 *                               fails with -EOVERFLOW (survives, but unchecked at init).
 *  INIT_CHUNK_NPOT              a chunk size not a power of two: init succeeds; the
 *                               ALIGN in drm_gpusvm_range_chunk_size (l.899-900) and
 *                               drm_gpusvm_range_alloc (l.640-641) give ranges that need
 *                               not contain the fault address or may overlap.
 *  INIT_CHUNK_LT_PAGE           a chunk size below PAGE_SIZE: sub-page ranges, npages 0.
 *  INIT_NUM_CHUNKS_NEGATIVE     num_chunks < 0: passes "!num_chunks" (l.392); the chunk
 *                               loop never runs and "i == num_chunks" (l.909) is false, so
 *                               uninitialised start/end are used.
 *  FINI_NULL                    drm_gpusvm_fini(NULL) (l.488).
 *  FINI_TWICE_FULL              second fini of a full-mode drm_gpusvm: mmdrop(gpusvm->mm)
 *                               again (l.503): mm_count underflow. (Twice in simple mode,
 *                               mm == NULL, is defined and is in the suite.)
 *  FIND_OR_INSERT_NULL_GPUSVM   gpusvm->mm in the declarations (l.1022).
 *  FIND_OR_INSERT_NULL_CTX      ctx->read_only (l.1063), after the notifier insertion.
 *  FIND_OR_INSERT_SIMPLE_MODE   simple mode (mm NULL) and fault_addr within [mm_start,
 *                               mm_start + mm_range] (0 with mm_start = mm_range = 0):
 *                               mmget_not_zero(NULL) (l.1035). Other fault addresses get
 *                               -EINVAL (l.1031-1033) and are in the suite.
 *  FIND_OR_INSERT_AFTER_FINI    fini keeps gpusvm->mm but has dropped its reference:
 *                               find_or_insert uses the stale mm (l.1035) and re-creates
 *                               notifiers on a finalised drm_gpusvm.
 *  FIND_VMA_START_NULL_GPUSVM   gpusvm->mm (l.980).
 *  FIND_VMA_START_SIMPLE_MODE   mmget_not_zero(NULL) (l.984).
 *  FIND_VMA_START_AFTER_FINI    the stale gpusvm->mm (l.984).
 *  RANGE_REMOVE_NULL            drm_gpusvm_range_start(NULL) (l.1244).
 *  RANGE_REMOVE_TWICE           the second remove finds no notifier: WARN_ON_ONCE
 *                               (l.1253) (or a use after free without an extra ref).
 *  RANGE_GET_NULL, RANGE_PUT_NULL  kref_get/kref_put(&NULL->refcount) (l.1284, l.1319).
 *  RANGE_EVICT_NULL             &range->notifier->notifier (l.1736).
 *  RANGE_PAGES_VALID_NULL       &range->pages (l.1342).
 *  RANGE_PAGES_VALID_UNLOCKED   no notifier lock: lockdep_assert_held (l.1340) WARNs.
 *  RANGE_GET_PAGES_NULL_RANGE   range->pages / range->notifier (l.1664).
 *  RANGE_GET_PAGES_NULL_CTX     ctx->read_only (l.1416).
 *  RANGE_UNMAP_PAGES_NULL_CTX   ctx->in_notifier (l.1689).
 *  RANGE_UNMAP_PAGES_IN_NOTIFIER_UNLOCKED  ctx.in_notifier without the notifier lock held
 *                               for write: lockdep_assert_held_write (l.1690) WARNs.
 *  RANGE_SET_UNMAPPED_UNLOCKED  outside the notifier: lockdep_assert_held_write (l.1818).
 *  SCAN_MM_NULL_RANGE           &range->notifier->notifier (l.766).
 *  HAS_MAPPING_NULL, NOTIFIER_FIND_NULL, RANGE_FIND_NULL  &gpusvm->root /
 *                               &notifier->root (l.287, l.310).
 *  GET_PAGES_NULL_GPUSVM        survives the unlocked validity check, faults the pages,
 *                               then drm_gpusvm_notifier_lock(NULL) (l.1485).
 *  GET_PAGES_NULL_PAGES         svm_pages->dma_addr in drm_gpusvm_pages_valid_unlocked
 *                               (l.1381).
 *  GET_PAGES_NULL_MM            mmget_not_zero(NULL) (l.1451).
 *  GET_PAGES_NULL_NOTIFIER      mmu_interval_read_begin(NULL) (l.1443).
 *  GET_PAGES_NULL_CTX           ctx->read_only (l.1416).
 *  GET_PAGES_START_GT_END       npages wraps (l.1427): kvmalloc_array of ~2^55 bytes
 *                               WARNs (size > INT_MAX) (l.1447).
 *  GET_PAGES_UNALIGNED_START/END  npages rounds down (l.1427) but hmm_range_fault walks
 *                               every page the span touches: it writes past pfns[].
 *  GET_PAGES_NULL_DRM           init accepts drm == NULL; get_pages then reads
 *                               gpusvm->drm->dev (l.1583, l.1598).
 *  GET_PAGES_AFTER_FINI         simple mode: works on upstream (fini keeps the lock and
 *                               fields), unspecified: an implementation may refuse.
 *  UNMAP_PAGES_NULL_CTX         ctx->in_notifier (l.1689).
 *  UNMAP_PAGES_NPAGES_TOO_LARGE the dma_addr walk (l.1163) reads past the array.
 *  FREE_PAGES_NULL_GPUSVM       drm_gpusvm_notifier_lock(NULL) (l.1225).
 *
 *  Observed with upstream's C helper (7.2.12, this build: no lockdep, no KASAN), one guest
 *  per case (run-qemu.sh with ABI_TEST_ARGS="-u NAME"):
 *   NULL-pointer oops: INIT_NULL_GPUSVM, INIT_FULL_OPS_NULL, INIT_FULL_CHUNKS_NULL,
 *     FINI_NULL, FIND_OR_INSERT_NULL_GPUSVM, FIND_OR_INSERT_NULL_CTX,
 *     FIND_OR_INSERT_SIMPLE_MODE, FIND_VMA_START_NULL_GPUSVM, FIND_VMA_START_SIMPLE_MODE,
 *     RANGE_REMOVE_NULL, RANGE_GET_NULL, RANGE_PUT_NULL, RANGE_EVICT_NULL,
 *     RANGE_PAGES_VALID_NULL, RANGE_GET_PAGES_NULL_RANGE, RANGE_GET_PAGES_NULL_CTX,
 *     RANGE_UNMAP_PAGES_NULL_CTX, SCAN_MM_NULL_RANGE, HAS_MAPPING_NULL, NOTIFIER_FIND_NULL,
 *     RANGE_FIND_NULL, GET_PAGES_NULL_GPUSVM, GET_PAGES_NULL_PAGES, GET_PAGES_NULL_MM,
 *     GET_PAGES_NULL_NOTIFIER, GET_PAGES_NULL_CTX, GET_PAGES_NULL_DRM,
 *     UNMAP_PAGES_NULL_CTX, FREE_PAGES_NULL_GPUSVM.
 *   WARN: FINI_TWICE_FULL (kernel/fork.c:737, __mmdrop of a live mm), RANGE_REMOVE_TWICE
 *     (drm_gpusvm.c:1253), GET_PAGES_START_GT_END (mm/slub.c:6946, kvmalloc > INT_MAX).
 *   Hang (guest timeout): INIT_NUM_CHUNKS_NEGATIVE.
 *   No visible failure here (silent corruption, lockdep-only assertions, stale state):
 *     INIT_NOTIFIER_SIZE_NPOT, INIT_NOTIFIER_SIZE_ZERO (faults get -EOVERFLOW),
 *     INIT_CHUNK_NPOT, INIT_CHUNK_LT_PAGE, FIND_OR_INSERT_AFTER_FINI (returns a range),
 *     FIND_VMA_START_AFTER_FINI (returns the VMA start), RANGE_PAGES_VALID_UNLOCKED,
 *     RANGE_UNMAP_PAGES_IN_NOTIFIER_UNLOCKED, RANGE_SET_UNMAPPED_UNLOCKED,
 *     GET_PAGES_UNALIGNED_START/END (8-byte heap overflow of pfns[], returns 0),
 *     GET_PAGES_AFTER_FINI (returns 0), UNMAP_PAGES_NPAGES_TOO_LARGE (out-of-bounds read).
 *
 *  (not exercised) get_pages with mm != notifier->mm: hmm_range_fault asserts the
 *                               notifier's mm is locked (VM_BUG_ON with DEBUG_VM); a module
 *                               has no exported way to make a second mm.
 *  (not exercised) any call with a range or pages of another drm_gpusvm, or after free.
 *
 * Inputs upstream handles without oops/WARN, in the differential suite (abi_test.c):
 * num_chunks 0 / no invalidate op in full mode (-EINVAL, l.392), simple mode with ops,
 * num_chunks, mm_range or notifier_size (-EINVAL, l.397); fault_addr < mm_start or >
 * mm_start + mm_range (-EINVAL, l.1031; note "==" the end is accepted: the suite records
 * it), mm_start + mm_range wrapping (every fault -EINVAL), fault_addr at ULONG_MAX
 * (-ENOENT), gpuva_start > gpuva_end or not covering the fault (-EINVAL, l.909), unaligned
 * fault/gpuva addresses, no VMA (-ENOENT), write fault on a read-only VMA (-EPERM),
 * VM_PFNMAP (-EIO), get_pages on an unmapped range (-EFAULT), devmem_only with system
 * pages (-EFAULT), simple get_pages with start == end or with pages_end wrapped past
 * ULONG_MAX (npages wraps to a small count; -EINVAL from walk_page_range),
 * has_mapping/range iteration/find_vma_start with start >= end or end wrapped (defined
 * by the interval tree and maple tree lookups), double unmap/free_pages, simple-mode
 * double fini, calls after fini that only look at the (empty) trees, NULL
 * device_private_page_owner / pagemap for drm_gpusvm_scan_mm, ops without the optional
 * callbacks (default kzalloc/kfree), chunk_sizes non-NULL with num_chunks 0 in simple mode.
 * ------------------------------------------------------------------------------------
 */
#include <linux/atomic.h>
#include <linux/device/faux.h>
#include <linux/dma-direct.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/kref.h>
#include <linux/log2.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>

#include <drm/drm_device.h>
#include <drm/drm_drv.h>
#include <drm/drm_gpusvm.h>
#include <drm/drm_pagemap.h>

#include "gpusvm_abi_test.h"

struct gsat_file;

struct gsat_range {
	struct drm_gpusvm_range base;
	struct list_head gc_link;	/* gsat_file.gc_list, under gc_lock */
	struct gsat_file *f;
};

struct gsat_notifier {
	struct drm_gpusvm_notifier base;
};

struct gsat_userptr {
	bool used;
	struct gsat_file *f;
	struct mmu_interval_notifier notifier;
	bool notifier_inserted;
	struct drm_gpusvm_pages pages;
	unsigned long start, end, npages;
	bool read_only;
};

struct gsat_file {
	struct mutex lock;		/* the driver SVM lock */
	struct drm_gpusvm gpusvm;
	bool inited;			/* the last INIT succeeded */
	bool finied;			/* FINI since */
	bool minimal;			/* ops with .invalidate only */
	unsigned long chunk_sizes[GSAT_MAX_CHUNKS];
	spinlock_t gc_lock;
	struct list_head gc_list;
	atomic_long_t live_ranges;
	atomic64_t invalidate_calls;
	struct gsat_userptr up[GSAT_MAX_USERPTR];
	struct drm_gpusvm_range *refs[GSAT_MAX_REFS];
	struct page *pfn_page;
};

/* Userptr spans above this (in pages) are refused: kvmalloc_array(npages) WARNs past
 * INT_MAX bytes. */
#define GSAT_MAX_USERPTR_PAGES	(1UL << 20)

static struct faux_device *gsat_faux;
/* Never registered: drm_gpusvm_scan_mm only compares page_pgmap() with it. */
static struct dev_pagemap gsat_dummy_pagemap;
static int gsat_dummy_owner;
static struct drm_device *gsat_drm;
static atomic_long_t gsat_global_live_ranges = ATOMIC_LONG_INIT(0);
static atomic_long_t gsat_global_live_notifiers = ATOMIC_LONG_INIT(0);

static struct gsat_file *to_gsat_file(struct drm_gpusvm *gpusvm)
{
	return container_of(gpusvm, struct gsat_file, gpusvm);
}

static struct gsat_range *to_gsat_range(struct drm_gpusvm_range *r)
{
	return container_of(r, struct gsat_range, base);
}

/* ------------------------------------------------------------------ drm_gpusvm_ops */

static struct drm_gpusvm_notifier *gsat_notifier_alloc(void)
{
	struct gsat_notifier *n = kzalloc(sizeof(*n), GFP_KERNEL);

	if (!n)
		return NULL;
	atomic_long_inc(&gsat_global_live_notifiers);
	return &n->base;
}

static void gsat_notifier_free(struct drm_gpusvm_notifier *notifier)
{
	atomic_long_dec(&gsat_global_live_notifiers);
	kfree(container_of(notifier, struct gsat_notifier, base));
}

static struct drm_gpusvm_range *gsat_range_alloc(struct drm_gpusvm *gpusvm)
{
	struct gsat_range *r = kzalloc(sizeof(*r), GFP_KERNEL);

	if (!r)
		return NULL;
	INIT_LIST_HEAD(&r->gc_link);
	r->f = to_gsat_file(gpusvm);
	atomic_long_inc(&r->f->live_ranges);
	atomic_long_inc(&gsat_global_live_ranges);
	return &r->base;
}

static void gsat_range_free(struct drm_gpusvm_range *range)
{
	struct gsat_range *r = to_gsat_range(range);
	struct gsat_file *f = r->f;

	spin_lock(&f->gc_lock);
	if (!list_empty(&r->gc_link))
		list_del_init(&r->gc_link);
	spin_unlock(&f->gc_lock);
	atomic_long_dec(&f->live_ranges);
	atomic_long_dec(&gsat_global_live_ranges);
	kfree(r);
}

/* xe_svm_invalidate: called by drm_gpusvm with the notifier lock held for write. */
static void gsat_invalidate(struct drm_gpusvm *gpusvm,
			    struct drm_gpusvm_notifier *notifier,
			    const struct mmu_notifier_range *mmu_range)
{
	struct gsat_file *f = to_gsat_file(gpusvm);
	struct drm_gpusvm_ctx ctx = { .in_notifier = true, };
	struct drm_gpusvm_range *r = NULL;
	unsigned long start = max(drm_gpusvm_notifier_start(notifier), mmu_range->start);
	unsigned long end = min(drm_gpusvm_notifier_end(notifier), mmu_range->end);

	atomic64_inc(&f->invalidate_calls);

	drm_gpusvm_for_each_range(r, notifier, start, end) {
		drm_gpusvm_range_unmap_pages(gpusvm, r, &ctx);

		if (mmu_range->event != MMU_NOTIFY_UNMAP)
			continue;

		drm_gpusvm_range_set_unmapped(r, mmu_range);
		if (!f->minimal) {
			struct gsat_range *gr = to_gsat_range(r);

			spin_lock(&f->gc_lock);
			if (list_empty(&gr->gc_link))
				list_add_tail(&gr->gc_link, &f->gc_list);
			spin_unlock(&f->gc_lock);
		}
	}
}

static const struct drm_gpusvm_ops gsat_ops_full = {
	.notifier_alloc = gsat_notifier_alloc,
	.notifier_free = gsat_notifier_free,
	.range_alloc = gsat_range_alloc,
	.range_free = gsat_range_free,
	.invalidate = gsat_invalidate,
};

/* Only the required callback: drm_gpusvm allocates notifiers and ranges itself. */
static const struct drm_gpusvm_ops gsat_ops_minimal = {
	.invalidate = gsat_invalidate,
};

static const struct drm_gpusvm_ops gsat_ops_no_invalidate = {
	.range_alloc = gsat_range_alloc,
	.range_free = gsat_range_free,
};

/* ------------------------------------------------------------------ helpers */

static void gsat_ctx_from(struct drm_gpusvm_ctx *ctx, u32 flags, u64 threshold)
{
	*ctx = (struct drm_gpusvm_ctx){
		.device_private_page_owner = NULL,
		.check_pages_threshold = threshold,
		.read_only = !!(flags & GSAT_CTX_READ_ONLY),
		.devmem_possible = !!(flags & GSAT_CTX_DEVMEM_POSSIBLE),
		.devmem_only = !!(flags & GSAT_CTX_DEVMEM_ONLY),
		.allow_mixed = !!(flags & GSAT_CTX_ALLOW_MIXED),
	};
}

static u32 gsat_pflags(const struct drm_gpusvm_pages_flags *fl)
{
	return (fl->migrate_devmem ? GSAT_PF_MIGRATE_DEVMEM : 0) |
	       (fl->unmapped ? GSAT_PF_UNMAPPED : 0) |
	       (fl->partial_unmap ? GSAT_PF_PARTIAL_UNMAP : 0) |
	       (fl->has_devmem_pages ? GSAT_PF_HAS_DEVMEM_PAGES : 0) |
	       (fl->has_dma_mapping ? GSAT_PF_HAS_DMA_MAPPING : 0);
}

/*
 * Flags and dma_addr[] of @pages covering [start, end), with the notifier lock held. The
 * array is walked as Xe's xe_res_first_dma/__xe_res_dma_next do: entry j covers
 * PAGE_SIZE << dma_addr[j].order bytes, until npages pages are covered. Each system page
 * is read through the direct map (no IOMMU here: dma-direct) and compared with the
 * pattern userspace wrote at the start of every page: its own virtual address ^ key.
 */
static void gsat_fill_pages_info(struct drm_gpusvm_pages *pages, unsigned long start,
				 unsigned long end, u64 key, struct gsat_range_info *info)
{
	struct device *dev = gsat_drm->dev;
	struct drm_gpusvm_pages_flags fl = { .__flags = READ_ONCE(pages->flags.__flags) };
	unsigned long npages = (end - start) >> PAGE_SHIFT;
	unsigned long i, j;

	info->flags = gsat_pflags(&fl);
	info->npages = npages;
	if (!fl.has_dma_mapping) {
		info->dma_walked = 0;
		return;
	}
	if (!pages->dma_addr) {
		info->dma_walked = 2;
		return;
	}
	info->dma_walked = 1;
	for (i = 0, j = 0; i < npages && j < npages; j++) {
		const struct drm_pagemap_addr *a = &pages->dma_addr[j];
		unsigned int order = a->order;
		unsigned long k, n;

		if (order > GSAT_MAX_ORDER) {
			info->dma_bad_align++;
			break;
		}
		n = 1UL << order;
		info->dma_entries++;
		info->dma_pages += n;
		info->order_count[order]++;
		info->dma_dir_mask |= 1u << a->dir;
		if (a->addr)
			info->dma_nonzero++;
		if (a->addr & ((PAGE_SIZE << order) - 1))
			info->dma_bad_align++;
		if (a->proto == DRM_INTERCONNECT_SYSTEM) {
			info->dma_system++;
			for (k = 0; a->addr && k < n && i + k < npages; k++) {
				phys_addr_t phys = dma_to_phys(dev, a->addr) + k * PAGE_SIZE;
				u64 want = (start + (i + k) * PAGE_SIZE) ^ key;

				if (!pfn_valid(PHYS_PFN(phys)))
					continue;
				if (READ_ONCE(*(u64 *)phys_to_virt(phys)) == want)
					info->dma_match++;
			}
		}
		i += n;
	}
}

static void gsat_fill_range_info(struct gsat_file *f, struct drm_gpusvm_range *r,
				 u64 key, struct gsat_range_info *info)
{
	memset(info, 0, sizeof(*info));
	drm_gpusvm_notifier_lock(&f->gpusvm);
	info->start = drm_gpusvm_range_start(r);
	info->end = drm_gpusvm_range_end(r);
	info->notifier_start = drm_gpusvm_notifier_start(r->notifier);
	info->notifier_end = drm_gpusvm_notifier_end(r->notifier);
	info->pages_valid = drm_gpusvm_range_pages_valid(&f->gpusvm, r);
	info->refcount = kref_read(&r->refcount);
	gsat_fill_pages_info(&r->pages, info->start, info->end, key, info);
	drm_gpusvm_notifier_unlock(&f->gpusvm);
}

static struct drm_gpusvm_range *gsat_lookup(struct gsat_file *f, unsigned long addr)
{
	struct drm_gpusvm_notifier *n;

	n = drm_gpusvm_notifier_find(&f->gpusvm, addr, addr + 1);
	if (!n)
		return NULL;
	return drm_gpusvm_range_find(n, addr, addr + 1);
}

/* Xe's garbage collector: remove the ranges queued by MMU_NOTIFY_UNMAP. */
static unsigned long gsat_gc(struct gsat_file *f)
{
	unsigned long n = 0;

	lockdep_assert_held(&f->lock);
	if (!f->inited || f->finied)
		return 0;

	if (f->minimal) {
		/* No embedding: scan for ranges marked unmapped. */
		struct drm_gpusvm_notifier *nt, *nnext;

		drm_gpusvm_for_each_notifier_safe(nt, nnext, &f->gpusvm, 0, ULONG_MAX) {
			struct drm_gpusvm_range *r, *rnext;

			drm_gpusvm_for_each_range_safe(r, rnext, nt, 0, ULONG_MAX) {
				bool unmapped;

				drm_gpusvm_notifier_lock(&f->gpusvm);
				unmapped = r->pages.flags.unmapped;
				drm_gpusvm_notifier_unlock(&f->gpusvm);
				if (unmapped) {
					drm_gpusvm_range_remove(&f->gpusvm, r);
					n++;
				}
			}
		}
		return n;
	}

	for (;;) {
		struct gsat_range *r;

		spin_lock(&f->gc_lock);
		r = list_first_entry_or_null(&f->gc_list, struct gsat_range, gc_link);
		if (r)
			list_del_init(&r->gc_link);
		spin_unlock(&f->gc_lock);
		if (!r)
			break;
		drm_gpusvm_range_remove(&f->gpusvm, &r->base);
		n++;
	}
	return n;
}

static unsigned long gsat_gc_pending(struct gsat_file *f)
{
	struct gsat_range *r;
	unsigned long n = 0;

	spin_lock(&f->gc_lock);
	list_for_each_entry(r, &f->gc_list, gc_link)
		n++;
	spin_unlock(&f->gc_lock);
	return n;
}

/* ------------------------------------------------------------------ userptr */

/* xe_vma_userptr_invalidate, single pass. */
static bool gsat_userptr_invalidate(struct mmu_interval_notifier *mni,
				    const struct mmu_notifier_range *range,
				    unsigned long cur_seq)
{
	struct gsat_userptr *up = container_of(mni, struct gsat_userptr, notifier);
	struct drm_gpusvm *gpusvm = &up->f->gpusvm;
	struct drm_gpusvm_ctx ctx = { .in_notifier = true, .read_only = up->read_only, };

	if (!mmu_notifier_range_blockable(range))
		return false;

	down_write(&gpusvm->notifier_lock);
	mmu_interval_set_seq(mni, cur_seq);
	drm_gpusvm_unmap_pages(gpusvm, &up->pages, up->npages, &ctx);
	up_write(&gpusvm->notifier_lock);
	return true;
}

static const struct mmu_interval_notifier_ops gsat_userptr_ops = {
	.invalidate = gsat_userptr_invalidate,
};

static int gsat_userptr_setup(struct gsat_file *f, struct gsat_userptr *up,
			      unsigned long nstart, unsigned long nend,
			      unsigned long start, unsigned long end, bool read_only)
{
	int err;

	memset(up, 0, sizeof(*up));
	up->f = f;
	up->start = start;
	up->end = end;
	up->npages = (end - start) >> PAGE_SHIFT;
	up->read_only = read_only;
	up->pages.notifier_seq = LONG_MAX;
	err = mmu_interval_notifier_insert(&up->notifier, current->mm, nstart,
					   nend - nstart, &gsat_userptr_ops);
	if (err)
		return err;
	up->notifier_inserted = true;
	up->used = true;
	return 0;
}

/* xe_userptr_remove */
static void gsat_userptr_release(struct gsat_file *f, struct gsat_userptr *up)
{
	if (!up->used)
		return;
	drm_gpusvm_free_pages(&f->gpusvm, &up->pages, up->npages);
	if (up->notifier_inserted)
		mmu_interval_notifier_remove(&up->notifier);
	memset(up, 0, sizeof(*up));
}

static void gsat_release_userptrs(struct gsat_file *f)
{
	int i;

	for (i = 0; i < GSAT_MAX_USERPTR; i++)
		gsat_userptr_release(f, &f->up[i]);
}

static void gsat_drop_refs(struct gsat_file *f)
{
	int i;

	for (i = 0; i < GSAT_MAX_REFS; i++) {
		if (f->refs[i]) {
			drm_gpusvm_range_put(f->refs[i]);
			f->refs[i] = NULL;
		}
	}
}

/* ------------------------------------------------------------------ file state */

static struct gsat_file *gsat_file_new(void)
{
	struct gsat_file *f = kzalloc(sizeof(*f), GFP_KERNEL);

	if (!f)
		return NULL;
	mutex_init(&f->lock);
	spin_lock_init(&f->gc_lock);
	INIT_LIST_HEAD(&f->gc_list);
	atomic_long_set(&f->live_ranges, 0);
	atomic64_set(&f->invalidate_calls, 0);
	return f;
}

/* With f->lock held: back to "not initialised". */
static void gsat_file_teardown(struct gsat_file *f)
{
	if (f->inited && !f->finied) {
		gsat_drop_refs(f);
		gsat_release_userptrs(f);
		drm_gpusvm_fini(&f->gpusvm);
		f->finied = true;
	}
	gsat_drop_refs(f);
}

static void gsat_file_destroy(struct gsat_file *f)
{
	mutex_lock(&f->lock);
	gsat_file_teardown(f);
	mutex_unlock(&f->lock);
	if (f->pfn_page)
		__free_page(f->pfn_page);
	mutex_destroy(&f->lock);
	kfree(f);
}

static bool gsat_init_is_unguarded(const struct gsat_init_req *req)
{
	int i;

	if (req->flags & GSAT_INIT_MM_NULL)
		return false;	/* simple mode: upstream checks every parameter (l.396) */
	if (req->flags & GSAT_INIT_OPS_NULL)
		return true;
	if (req->num_chunks < 0 || req->num_chunks > GSAT_MAX_CHUNKS)
		return true;
	if (req->num_chunks && (req->flags & GSAT_INIT_CHUNKS_NULL))
		return true;
	if (!is_power_of_2(req->notifier_size))
		return true;
	for (i = 0; i < req->num_chunks; i++)
		if (!is_power_of_2(req->chunk_sizes[i]) || req->chunk_sizes[i] < PAGE_SIZE)
			return true;
	return false;
}

static const struct drm_gpusvm_ops *gsat_pick_ops(u32 flags)
{
	if (flags & GSAT_INIT_OPS_NULL)
		return NULL;
	if (flags & GSAT_INIT_OPS_NO_INVALIDATE)
		return &gsat_ops_no_invalidate;
	if (flags & GSAT_INIT_OPS_MINIMAL)
		return &gsat_ops_minimal;
	return &gsat_ops_full;
}

/* drm_gpusvm_init with f->lock held; the parameters are taken as they are. */
static int gsat_do_init(struct gsat_file *f, struct drm_device *drm, u32 flags,
			u64 mm_start, u64 mm_range, u64 notifier_size,
			const u64 *chunks, int num_chunks)
{
	struct mm_struct *mm = (flags & GSAT_INIT_MM_NULL) ? NULL : current->mm;
	int i, ret;

	for (i = 0; i < GSAT_MAX_CHUNKS; i++)
		f->chunk_sizes[i] = chunks ? chunks[i] : 0;
	f->minimal = !!(flags & GSAT_INIT_OPS_MINIMAL);
	ret = drm_gpusvm_init(&f->gpusvm, GSAT_DEV_NAME, drm, mm, mm_start, mm_range,
			      notifier_size, gsat_pick_ops(flags),
			      (flags & GSAT_INIT_CHUNKS_NULL) ? NULL : f->chunk_sizes,
			      num_chunks);
	f->inited = !ret;
	f->finied = false;
	if (!ret)
		drm_gpusvm_driver_set_lock(&f->gpusvm, &f->lock);
	return ret;
}

/* ------------------------------------------------------------------ ioctls */

static long gsat_ioc_init(struct gsat_file *f, struct gsat_init_req *req)
{
	if (f->inited && !f->finied)
		return req->ret = -EBUSY, 0;
	if (gsat_init_is_unguarded(req))
		return req->ret = -EDOM, 0;
	req->ret = gsat_do_init(f, gsat_drm, req->flags, req->mm_start, req->mm_range,
				req->notifier_size, req->chunk_sizes, req->num_chunks);
	return 0;
}

static long gsat_ioc_fini(struct gsat_file *f, struct gsat_fini_req *req)
{
	if (!f->inited) {
		req->ret = -ENODEV;
	} else if (f->finied) {
		if (f->gpusvm.mm) {
			req->ret = -EALREADY;	/* unguarded upstream: FINI_TWICE_FULL */
		} else {
			drm_gpusvm_fini(&f->gpusvm);	/* simple mode: defined */
			req->ret = 0;
		}
	} else {
		gsat_drop_refs(f);
		gsat_release_userptrs(f);
		drm_gpusvm_fini(&f->gpusvm);
		f->finied = true;
		req->ret = 0;
	}
	return 0;
}

static long gsat_ioc_range(struct gsat_file *f, unsigned int cmd, struct gsat_range_req *req)
{
	struct drm_gpusvm_range *r;
	struct drm_gpusvm_ctx ctx;
	unsigned long addr = req->addr;
	int i;

	req->ret = 0;
	req->val = 0;
	req->found = 0;
	memset(&req->info, 0, sizeof(req->info));
	if (!f->inited)
		return req->ret = -ENODEV, 0;

	gsat_ctx_from(&ctx, req->ctx_flags, req->check_pages_threshold);

	if ((cmd == GSAT_IOC_FIND_OR_INSERT || cmd == GSAT_IOC_GET_PAGES) &&
	    !(req->flags & GSAT_F_NO_GC))
		req->val = gsat_gc(f);

	if (cmd == GSAT_IOC_FIND_OR_INSERT) {
		if (f->finied)
			return req->ret = -ESHUTDOWN, 0;	/* FIND_OR_INSERT_AFTER_FINI */
		if (!f->gpusvm.mm && !(addr < f->gpusvm.mm_start ||
				       addr > f->gpusvm.mm_start + f->gpusvm.mm_range))
			return req->ret = -EDOM, 0;		/* FIND_OR_INSERT_SIMPLE_MODE */
		r = drm_gpusvm_range_find_or_insert(&f->gpusvm, addr, req->gpuva_start,
						    req->gpuva_end, &ctx);
		if (IS_ERR(r))
			return req->ret = PTR_ERR(r), 0;
		req->found = 1;
		gsat_fill_range_info(f, r, req->key, &req->info);
		return 0;
	}

	if (cmd == GSAT_IOC_REF_PUT) {
		/* addr is the slot REF_GET returned in val */
		if (addr >= GSAT_MAX_REFS || !f->refs[addr])
			return req->ret = -ESRCH, 0;
		drm_gpusvm_range_put(f->refs[addr]);
		f->refs[addr] = NULL;
		return 0;
	}

	r = gsat_lookup(f, addr);
	if (!r)
		return req->ret = -ESRCH, 0;

	switch (cmd) {
	case GSAT_IOC_GET_PAGES:
		req->ret = drm_gpusvm_range_get_pages(&f->gpusvm, r, &ctx);
		break;
	case GSAT_IOC_RANGE_INFO:
		break;
	case GSAT_IOC_EVICT:
		req->ret = drm_gpusvm_range_evict(&f->gpusvm, r);
		break;
	case GSAT_IOC_UNMAP_PAGES:
		ctx.in_notifier = false;
		drm_gpusvm_range_unmap_pages(&f->gpusvm, r, &ctx);
		break;
	case GSAT_IOC_SCAN:
		if (req->flags & GSAT_F_SCAN_PAGEMAP)
			req->val = drm_gpusvm_scan_mm(r, &gsat_dummy_owner, &gsat_dummy_pagemap);
		else
			req->val = drm_gpusvm_scan_mm(r, NULL, NULL);
		break;
	case GSAT_IOC_REF_GET:
		for (i = 0; i < GSAT_MAX_REFS && f->refs[i]; i++)
			;
		if (i == GSAT_MAX_REFS)
			return req->ret = -ENOSPC, 0;
		f->refs[i] = drm_gpusvm_range_get(r);
		req->val = (f->refs[i] == r) ? i : 0xbad;
		break;
	case GSAT_IOC_REMOVE: {
		struct gsat_range *gr = f->minimal ? NULL : to_gsat_range(r);

		if (gr) {
			spin_lock(&f->gc_lock);
			if (!list_empty(&gr->gc_link))
				list_del_init(&gr->gc_link);
			spin_unlock(&f->gc_lock);
		}
		drm_gpusvm_range_remove(&f->gpusvm, r);
		req->ret = 0;
		return 0;
	}
	default:
		return -ENOTTY;
	}
	req->found = 1;
	gsat_fill_range_info(f, r, req->key, &req->info);
	return 0;
}

static long gsat_ioc_span(struct gsat_file *f, unsigned int cmd, struct gsat_span_req *req)
{
	struct drm_gpusvm_notifier *n;
	unsigned long start = req->start, end = req->end;

	req->ret = 0;
	req->val = 0;
	req->count = 0;
	req->truncated = 0;
	if (!f->inited)
		return req->ret = -ENODEV, 0;

	switch (cmd) {
	case GSAT_IOC_HAS_MAPPING:
		req->val = drm_gpusvm_has_mapping(&f->gpusvm, start, end);
		return 0;
	case GSAT_IOC_FIND_VMA_START:
		if (!f->gpusvm.mm)
			return req->ret = -EDOM, 0;		/* FIND_VMA_START_SIMPLE_MODE */
		if (f->finied)
			return req->ret = -ESHUTDOWN, 0;	/* FIND_VMA_START_AFTER_FINI */
		req->val = drm_gpusvm_find_vma_start(&f->gpusvm, start, end);
		return 0;
	case GSAT_IOC_RANGE_LIST:
		break;
	default:
		return -ENOTTY;
	}

	drm_gpusvm_notifier_lock(&f->gpusvm);
	drm_gpusvm_for_each_notifier(n, &f->gpusvm, start, end) {
		struct drm_gpusvm_range *r = NULL;

		if (req->count >= GSAT_MAX_LIST) {
			req->truncated = 1;
			break;
		}
		req->ent[req->count++] = (struct gsat_list_entry){
			.start = drm_gpusvm_notifier_start(n),
			.end = drm_gpusvm_notifier_end(n),
			.kind = GSAT_ENT_NOTIFIER,
		};
		drm_gpusvm_for_each_range(r, n, start, end) {
			if (req->count >= GSAT_MAX_LIST) {
				req->truncated = 1;
				break;
			}
			req->ent[req->count++] = (struct gsat_list_entry){
				.start = drm_gpusvm_range_start(r),
				.end = drm_gpusvm_range_end(r),
				.kind = GSAT_ENT_RANGE,
				.flags = gsat_pflags(&r->pages.flags),
			};
		}
	}
	drm_gpusvm_notifier_unlock(&f->gpusvm);
	return 0;
}

static long gsat_ioc_stats(struct gsat_file *f, unsigned int cmd, struct gsat_stats_req *req)
{
	req->ret = 0;
	req->collected = 0;
	if (cmd == GSAT_IOC_GC)
		req->collected = gsat_gc(f);
	req->live_ranges = atomic_long_read(&f->live_ranges);
	req->global_live_ranges = atomic_long_read(&gsat_global_live_ranges);
	req->global_live_notifiers = atomic_long_read(&gsat_global_live_notifiers);
	req->gc_pending = gsat_gc_pending(f);
	req->invalidate_calls = atomic64_read(&f->invalidate_calls);
	return 0;
}

static long gsat_ioc_userptr(struct gsat_file *f, unsigned int cmd, struct gsat_userptr_req *req)
{
	struct gsat_userptr *up;
	struct drm_gpusvm_ctx ctx;

	req->ret = 0;
	req->notifier_ret = 0;
	req->read_retry = 0;
	memset(&req->info, 0, sizeof(req->info));
	if (req->slot >= GSAT_MAX_USERPTR)
		return -EINVAL;
	if (!f->inited)
		return req->ret = -ENODEV, 0;
	if (f->finied)
		return req->ret = -ESHUTDOWN, 0;	/* GET_PAGES_AFTER_FINI */
	up = &f->up[req->slot];
	gsat_ctx_from(&ctx, req->ctx_flags, 0);

	switch (cmd) {
	case GSAT_IOC_USERPTR_GET_PAGES:
		if (!up->used) {
			/* The span is fixed by the first GET, as a userptr VMA's. */
			/* GET_PAGES_UNALIGNED_*; GET_PAGES_START_GT_END: npages wraps to a
			 * huge count (a pages_end wrapped past ULONG_MAX gives a small one:
			 * defined, in the suite) */
			if ((req->start | req->end) & ~PAGE_MASK ||
			    (req->end - req->start) >> PAGE_SHIFT > GSAT_MAX_USERPTR_PAGES)
				return req->ret = -EDOM, 0;
			req->notifier_ret = gsat_userptr_setup(f, up, req->notifier_start,
							       req->notifier_end, req->start,
							       req->end, ctx.read_only);
			if (req->notifier_ret)
				return 0;
		}
		req->ret = drm_gpusvm_get_pages(&f->gpusvm, &up->pages, up->notifier.mm,
						&up->notifier, up->start, up->end, &ctx);
		break;
	case GSAT_IOC_USERPTR_CHECK:
		if (!up->used)
			return req->ret = -ESRCH, 0;
		break;
	case GSAT_IOC_USERPTR_UNMAP:
		if (!up->used)
			return req->ret = -ESRCH, 0;
		ctx.in_notifier = false;
		drm_gpusvm_unmap_pages(&f->gpusvm, &up->pages, up->npages, &ctx);
		break;
	case GSAT_IOC_USERPTR_FREE:
		if (!up->used)
			return req->ret = -ESRCH, 0;
		drm_gpusvm_free_pages(&f->gpusvm, &up->pages, up->npages);
		if (req->flags & GSAT_UP_FREE_TWICE)
			drm_gpusvm_free_pages(&f->gpusvm, &up->pages, up->npages);
		drm_gpusvm_notifier_lock(&f->gpusvm);
		gsat_fill_pages_info(&up->pages, up->start, up->end, req->key, &req->info);
		req->info.start = up->start;
		req->info.end = up->end;
		drm_gpusvm_notifier_unlock(&f->gpusvm);
		mmu_interval_notifier_remove(&up->notifier);
		memset(up, 0, sizeof(*up));
		return 0;
	default:
		return -ENOTTY;
	}

	drm_gpusvm_notifier_lock(&f->gpusvm);
	req->read_retry = mmu_interval_read_retry(&up->notifier, up->pages.notifier_seq);
	gsat_fill_pages_info(&up->pages, up->start, up->end, req->key, &req->info);
	req->info.start = up->start;
	req->info.end = up->end;
	req->info.notifier_start = up->notifier.interval_tree.start;
	req->info.notifier_end = up->notifier.interval_tree.last + 1;
	drm_gpusvm_notifier_unlock(&f->gpusvm);
	return 0;
}

/* ------------------------------------------------------------------ unguarded cases */

static const u64 gsat_xe_chunks[GSAT_MAX_CHUNKS] = { SZ_2M, SZ_64K, SZ_4K };

static long gsat_ioc_unguarded(struct gsat_file *f, struct gsat_unguarded_req *req)
{
	struct drm_gpusvm_ctx ctx = {};
	struct gsat_file *t;
	struct drm_gpusvm_range *r = NULL;
	struct gsat_userptr *up;
	unsigned long a = req->addr, len = req->len;
	u64 chunks[GSAT_MAX_CHUNKS] = {};
	long ret = 0;

	req->ret = 0;
	req->val = 0;
	if (!a || (a & (SZ_2M - 1)) || len < SZ_2M)
		return -EINVAL;

	t = gsat_file_new();
	if (!t)
		return -ENOMEM;
	mutex_lock(&t->lock);

#define FULL_INIT() gsat_do_init(t, gsat_drm, 0, 0, TASK_SIZE, SZ_512M, gsat_xe_chunks, 3)
#define SIMPLE_INIT() gsat_do_init(t, gsat_drm, GSAT_INIT_MM_NULL | GSAT_INIT_OPS_NULL, \
				   0, 0, 0, NULL, 0)
#define FAULT() drm_gpusvm_range_find_or_insert(&t->gpusvm, a, a, a + len, &ctx)
#define USERPTR() ({ up = &t->up[0]; gsat_userptr_setup(t, up, a, a + len, a, a + SZ_64K, \
							false); })

	switch (req->ucase) {
	case GSAT_UNG_INIT_NULL_GPUSVM:
		ret = drm_gpusvm_init(NULL, GSAT_DEV_NAME, gsat_drm, current->mm, 0, TASK_SIZE,
				      SZ_512M, &gsat_ops_full, t->chunk_sizes, 3);
		break;
	case GSAT_UNG_INIT_FULL_OPS_NULL:
		ret = gsat_do_init(t, gsat_drm, GSAT_INIT_OPS_NULL, 0, TASK_SIZE, SZ_512M,
				   gsat_xe_chunks, 3);
		break;
	case GSAT_UNG_INIT_FULL_CHUNKS_NULL:
		ret = gsat_do_init(t, gsat_drm, GSAT_INIT_CHUNKS_NULL, 0, TASK_SIZE, SZ_512M,
				   NULL, 3);
		if (!ret) {
			r = FAULT();
			req->val = IS_ERR(r) ? PTR_ERR(r) : 0;
		}
		break;
	case GSAT_UNG_INIT_NOTIFIER_SIZE_NPOT:
	case GSAT_UNG_INIT_NOTIFIER_SIZE_ZERO:
		ret = gsat_do_init(t, gsat_drm, 0, 0, TASK_SIZE,
				   req->ucase == GSAT_UNG_INIT_NOTIFIER_SIZE_ZERO ? 0 : 3 * SZ_1M,
				   gsat_xe_chunks, 3);
		if (!ret) {
			r = FAULT();
			req->val = IS_ERR(r) ? PTR_ERR(r) : 0;
		}
		break;
	case GSAT_UNG_INIT_CHUNK_NPOT:
	case GSAT_UNG_INIT_CHUNK_LT_PAGE:
		chunks[0] = req->ucase == GSAT_UNG_INIT_CHUNK_NPOT ? 3 * SZ_64K : SZ_2K;
		chunks[1] = req->ucase == GSAT_UNG_INIT_CHUNK_NPOT ? SZ_4K : SZ_1K;
		ret = gsat_do_init(t, gsat_drm, 0, 0, TASK_SIZE, SZ_512M, chunks, 2);
		if (!ret) {
			r = FAULT();
			req->val = IS_ERR(r) ? PTR_ERR(r) : 0;
		}
		break;
	case GSAT_UNG_INIT_NUM_CHUNKS_NEGATIVE:
		ret = gsat_do_init(t, gsat_drm, 0, 0, TASK_SIZE, SZ_512M, gsat_xe_chunks, -1);
		if (!ret) {
			r = FAULT();
			req->val = IS_ERR(r) ? PTR_ERR(r) : 0;
		}
		break;
	case GSAT_UNG_FINI_NULL:
		drm_gpusvm_fini(NULL);
		break;
	case GSAT_UNG_FINI_TWICE_FULL:
		ret = FULL_INIT();
		if (!ret) {
			drm_gpusvm_fini(&t->gpusvm);
			drm_gpusvm_fini(&t->gpusvm);
			t->finied = true;
		}
		break;
	case GSAT_UNG_FIND_OR_INSERT_NULL_GPUSVM:
		r = drm_gpusvm_range_find_or_insert(NULL, a, a, a + len, &ctx);
		ret = IS_ERR(r) ? PTR_ERR(r) : 0;
		break;
	case GSAT_UNG_FIND_OR_INSERT_NULL_CTX:
		ret = FULL_INIT();
		if (!ret) {
			r = drm_gpusvm_range_find_or_insert(&t->gpusvm, a, a, a + len, NULL);
			req->val = IS_ERR(r) ? PTR_ERR(r) : 0;
		}
		break;
	case GSAT_UNG_FIND_OR_INSERT_SIMPLE_MODE:
		ret = SIMPLE_INIT();
		if (!ret) {
			r = drm_gpusvm_range_find_or_insert(&t->gpusvm, 0, 0, len, &ctx);
			req->val = IS_ERR(r) ? PTR_ERR(r) : 0;
		}
		break;
	case GSAT_UNG_FIND_OR_INSERT_AFTER_FINI:
		ret = FULL_INIT();
		if (!ret) {
			drm_gpusvm_fini(&t->gpusvm);
			r = FAULT();
			req->val = IS_ERR(r) ? PTR_ERR(r) : 0;
			if (!IS_ERR(r))
				drm_gpusvm_range_remove(&t->gpusvm, r);
			t->finied = true;
		}
		break;
	case GSAT_UNG_FIND_VMA_START_NULL_GPUSVM:
		req->val = drm_gpusvm_find_vma_start(NULL, a, a + len);
		break;
	case GSAT_UNG_FIND_VMA_START_SIMPLE_MODE:
		ret = SIMPLE_INIT();
		if (!ret)
			req->val = drm_gpusvm_find_vma_start(&t->gpusvm, a, a + len);
		break;
	case GSAT_UNG_FIND_VMA_START_AFTER_FINI:
		ret = FULL_INIT();
		if (!ret) {
			drm_gpusvm_fini(&t->gpusvm);
			t->finied = true;
			req->val = drm_gpusvm_find_vma_start(&t->gpusvm, a, a + len);
		}
		break;
	case GSAT_UNG_RANGE_REMOVE_NULL:
		ret = FULL_INIT();
		if (!ret)
			drm_gpusvm_range_remove(&t->gpusvm, NULL);
		break;
	case GSAT_UNG_RANGE_REMOVE_TWICE:
		ret = FULL_INIT();
		if (!ret) {
			r = FAULT();
			if (IS_ERR(r)) {
				req->val = PTR_ERR(r);
				break;
			}
			drm_gpusvm_range_get(r);	/* keep the memory: a double remove, no UAF */
			drm_gpusvm_range_remove(&t->gpusvm, r);
			drm_gpusvm_range_remove(&t->gpusvm, r);
			drm_gpusvm_range_put(r);
		}
		break;
	case GSAT_UNG_RANGE_GET_NULL:
		req->val = (unsigned long)drm_gpusvm_range_get(NULL);
		break;
	case GSAT_UNG_RANGE_PUT_NULL:
		drm_gpusvm_range_put(NULL);
		break;
	case GSAT_UNG_RANGE_EVICT_NULL:
		ret = FULL_INIT();
		if (!ret)
			req->val = drm_gpusvm_range_evict(&t->gpusvm, NULL);
		break;
	case GSAT_UNG_RANGE_PAGES_VALID_NULL:
		ret = FULL_INIT();
		if (!ret) {
			drm_gpusvm_notifier_lock(&t->gpusvm);
			req->val = drm_gpusvm_range_pages_valid(&t->gpusvm, NULL);
			drm_gpusvm_notifier_unlock(&t->gpusvm);
		}
		break;
	case GSAT_UNG_RANGE_PAGES_VALID_UNLOCKED:
	case GSAT_UNG_RANGE_GET_PAGES_NULL_CTX:
	case GSAT_UNG_RANGE_UNMAP_PAGES_NULL_CTX:
	case GSAT_UNG_RANGE_UNMAP_PAGES_IN_NOTIFIER_UNLOCKED:
	case GSAT_UNG_RANGE_SET_UNMAPPED_UNLOCKED:
		ret = FULL_INIT();
		if (ret)
			break;
		r = FAULT();
		if (IS_ERR(r)) {
			req->val = PTR_ERR(r);
			break;
		}
		if (drm_gpusvm_range_get_pages(&t->gpusvm, r, &ctx))
			req->val = 0xbad;
		switch (req->ucase) {
		case GSAT_UNG_RANGE_PAGES_VALID_UNLOCKED:
			req->val = drm_gpusvm_range_pages_valid(&t->gpusvm, r);
			break;
		case GSAT_UNG_RANGE_GET_PAGES_NULL_CTX:
			req->val = drm_gpusvm_range_get_pages(&t->gpusvm, r, NULL);
			break;
		case GSAT_UNG_RANGE_UNMAP_PAGES_NULL_CTX:
			drm_gpusvm_range_unmap_pages(&t->gpusvm, r, NULL);
			break;
		case GSAT_UNG_RANGE_UNMAP_PAGES_IN_NOTIFIER_UNLOCKED:
			ctx.in_notifier = true;
			drm_gpusvm_range_unmap_pages(&t->gpusvm, r, &ctx);
			ctx.in_notifier = false;
			break;
		case GSAT_UNG_RANGE_SET_UNMAPPED_UNLOCKED: {
			struct mmu_notifier_range mr = {
				.start = drm_gpusvm_range_start(r),
				.end = drm_gpusvm_range_end(r),
				.event = MMU_NOTIFY_UNMAP,
			};

			drm_gpusvm_range_set_unmapped(r, &mr);
			break;
		}
		}
		break;
	case GSAT_UNG_RANGE_GET_PAGES_NULL_RANGE:
		ret = FULL_INIT();
		if (!ret)
			req->val = drm_gpusvm_range_get_pages(&t->gpusvm, NULL, &ctx);
		break;
	case GSAT_UNG_SCAN_MM_NULL_RANGE:
		req->val = drm_gpusvm_scan_mm(NULL, NULL, NULL);
		break;
	case GSAT_UNG_HAS_MAPPING_NULL:
		req->val = drm_gpusvm_has_mapping(NULL, a, a + len);
		break;
	case GSAT_UNG_NOTIFIER_FIND_NULL:
		req->val = (unsigned long)drm_gpusvm_notifier_find(NULL, a, a + len);
		break;
	case GSAT_UNG_RANGE_FIND_NULL:
		req->val = (unsigned long)drm_gpusvm_range_find(NULL, a, a + len);
		break;
	case GSAT_UNG_GET_PAGES_NULL_GPUSVM:
	case GSAT_UNG_GET_PAGES_NULL_PAGES:
	case GSAT_UNG_GET_PAGES_NULL_MM:
	case GSAT_UNG_GET_PAGES_NULL_NOTIFIER:
	case GSAT_UNG_GET_PAGES_NULL_CTX:
	case GSAT_UNG_GET_PAGES_START_GT_END:
	case GSAT_UNG_GET_PAGES_UNALIGNED_START:
	case GSAT_UNG_GET_PAGES_UNALIGNED_END:
	case GSAT_UNG_GET_PAGES_AFTER_FINI:
	case GSAT_UNG_UNMAP_PAGES_NULL_CTX:
	case GSAT_UNG_UNMAP_PAGES_NPAGES_TOO_LARGE:
	case GSAT_UNG_FREE_PAGES_NULL_GPUSVM: {
		struct drm_gpusvm *g;
		unsigned long s = a, e = a + SZ_64K;

		ret = SIMPLE_INIT();
		if (ret)
			break;
		ret = USERPTR();
		if (ret)
			break;
		g = &t->gpusvm;
		switch (req->ucase) {
		case GSAT_UNG_GET_PAGES_NULL_GPUSVM:
			req->val = drm_gpusvm_get_pages(NULL, &up->pages, current->mm,
							&up->notifier, s, e, &ctx);
			break;
		case GSAT_UNG_GET_PAGES_NULL_PAGES:
			req->val = drm_gpusvm_get_pages(g, NULL, current->mm, &up->notifier,
							s, e, &ctx);
			break;
		case GSAT_UNG_GET_PAGES_NULL_MM:
			req->val = drm_gpusvm_get_pages(g, &up->pages, NULL, &up->notifier,
							s, e, &ctx);
			break;
		case GSAT_UNG_GET_PAGES_NULL_NOTIFIER:
			req->val = drm_gpusvm_get_pages(g, &up->pages, current->mm, NULL,
							s, e, &ctx);
			break;
		case GSAT_UNG_GET_PAGES_NULL_CTX:
			req->val = drm_gpusvm_get_pages(g, &up->pages, current->mm,
							&up->notifier, s, e, NULL);
			break;
		case GSAT_UNG_GET_PAGES_START_GT_END:
			req->val = drm_gpusvm_get_pages(g, &up->pages, current->mm,
							&up->notifier, e, s, &ctx);
			break;
		case GSAT_UNG_GET_PAGES_UNALIGNED_START:
			req->val = drm_gpusvm_get_pages(g, &up->pages, current->mm,
							&up->notifier, s + 16, s + 2 * PAGE_SIZE,
							&ctx);
			break;
		case GSAT_UNG_GET_PAGES_UNALIGNED_END:
			req->val = drm_gpusvm_get_pages(g, &up->pages, current->mm,
							&up->notifier, s, s + 2 * PAGE_SIZE - 16,
							&ctx);
			break;
		case GSAT_UNG_GET_PAGES_AFTER_FINI:
			drm_gpusvm_fini(g);
			req->val = drm_gpusvm_get_pages(g, &up->pages, current->mm,
							&up->notifier, s, e, &ctx);
			break;
		case GSAT_UNG_UNMAP_PAGES_NULL_CTX:
			req->val = drm_gpusvm_get_pages(g, &up->pages, current->mm,
							&up->notifier, s, e, &ctx);
			drm_gpusvm_unmap_pages(g, &up->pages, up->npages, NULL);
			break;
		case GSAT_UNG_UNMAP_PAGES_NPAGES_TOO_LARGE:
			req->val = drm_gpusvm_get_pages(g, &up->pages, current->mm,
							&up->notifier, s, e, &ctx);
			drm_gpusvm_unmap_pages(g, &up->pages, up->npages * 4, &ctx);
			break;
		case GSAT_UNG_FREE_PAGES_NULL_GPUSVM:
			req->val = drm_gpusvm_get_pages(g, &up->pages, current->mm,
							&up->notifier, s, e, &ctx);
			drm_gpusvm_free_pages(NULL, &up->pages, up->npages);
			break;
		}
		break;
	}
	case GSAT_UNG_GET_PAGES_NULL_DRM:
		ret = gsat_do_init(t, NULL, GSAT_INIT_MM_NULL | GSAT_INIT_OPS_NULL, 0, 0, 0,
				   NULL, 0);
		if (ret)
			break;
		ret = USERPTR();
		if (!ret)
			req->val = drm_gpusvm_get_pages(&t->gpusvm, &up->pages, current->mm,
							&up->notifier, a, a + SZ_64K, &ctx);
		break;
	default:
		ret = -EINVAL;
		break;
	}
#undef FULL_INIT
#undef SIMPLE_INIT
#undef FAULT
#undef USERPTR

	req->ret = ret;
	mutex_unlock(&t->lock);
	gsat_file_destroy(t);
	return 0;
}

/* ------------------------------------------------------------------ file ops */

static int gsat_open(struct inode *inode, struct file *file)
{
	struct gsat_file *f = gsat_file_new();

	if (!f)
		return -ENOMEM;
	file->private_data = f;
	return 0;
}

static int gsat_release(struct inode *inode, struct file *file)
{
	gsat_file_destroy(file->private_data);
	return 0;
}

/* One page, remap_pfn_range: a VM_IO | VM_PFNMAP VMA for find_or_insert's -EIO. */
static int gsat_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct gsat_file *f = file->private_data;
	struct page *page;

	if (vma->vm_end - vma->vm_start != PAGE_SIZE || vma->vm_pgoff)
		return -EINVAL;
	/*
	 * Not under f->lock: mmap runs with the mmap lock held, and the ioctls take f->lock
	 * before the mmap lock (drm_gpusvm_range_find_or_insert), so lockdep would see a cycle.
	 */
	page = READ_ONCE(f->pfn_page);
	if (!page) {
		struct page *fresh = alloc_page(GFP_KERNEL | __GFP_ZERO);

		if (!fresh)
			return -ENOMEM;
		page = cmpxchg(&f->pfn_page, NULL, fresh);
		if (page)
			__free_page(fresh);
		else
			page = fresh;
	}
	return remap_pfn_range(vma, vma->vm_start, page_to_pfn(page), PAGE_SIZE,
			       vma->vm_page_prot);
}

static long gsat_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct gsat_file *f = file->private_data;
	void __user *uarg = (void __user *)arg;
	unsigned int size = _IOC_SIZE(cmd);
	void *buf;
	long ret;

	if (_IOC_TYPE(cmd) != GSAT_IOC_MAGIC || _IOC_NR(cmd) > _IOC_NR(GSAT_IOC_UNGUARDED))
		return -ENOTTY;
	buf = memdup_user(uarg, size);
	if (IS_ERR(buf))
		return PTR_ERR(buf);

	if (cmd == GSAT_IOC_UNGUARDED) {
		/* Runs on a temporary drm_gpusvm of its own. */
		ret = gsat_ioc_unguarded(f, buf);
		goto out;
	}

	mutex_lock(&f->lock);
	switch (cmd) {
	case GSAT_IOC_INIT:
		ret = gsat_ioc_init(f, buf);
		break;
	case GSAT_IOC_FINI:
		ret = gsat_ioc_fini(f, buf);
		break;
	case GSAT_IOC_FIND_OR_INSERT:
	case GSAT_IOC_GET_PAGES:
	case GSAT_IOC_RANGE_INFO:
	case GSAT_IOC_EVICT:
	case GSAT_IOC_REMOVE:
	case GSAT_IOC_UNMAP_PAGES:
	case GSAT_IOC_SCAN:
	case GSAT_IOC_REF_GET:
	case GSAT_IOC_REF_PUT:
		ret = gsat_ioc_range(f, cmd, buf);
		break;
	case GSAT_IOC_RANGE_LIST:
	case GSAT_IOC_HAS_MAPPING:
	case GSAT_IOC_FIND_VMA_START:
		ret = gsat_ioc_span(f, cmd, buf);
		break;
	case GSAT_IOC_GC:
	case GSAT_IOC_STATS:
		ret = gsat_ioc_stats(f, cmd, buf);
		break;
	case GSAT_IOC_USERPTR_GET_PAGES:
	case GSAT_IOC_USERPTR_CHECK:
	case GSAT_IOC_USERPTR_UNMAP:
	case GSAT_IOC_USERPTR_FREE:
		ret = gsat_ioc_userptr(f, cmd, buf);
		break;
	default:
		ret = -ENOTTY;
		break;
	}
	mutex_unlock(&f->lock);
out:
	if (!ret && copy_to_user(uarg, buf, size))
		ret = -EFAULT;
	kfree(buf);
	return ret;
}

static const struct file_operations gsat_fops = {
	.owner = THIS_MODULE,
	.open = gsat_open,
	.release = gsat_release,
	.mmap = gsat_mmap,
	.unlocked_ioctl = gsat_ioctl,
};

static struct miscdevice gsat_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = GSAT_DEV_NAME,
	.fops = &gsat_fops,
	.mode = 0666,
};

static const struct drm_driver gsat_drm_driver = {
	.name = GSAT_DEV_NAME,
	.desc = "drm_gpusvm ABI test",
	.major = 1,
};

static int __init gsat_module_init(void)
{
	int ret;

	gsat_faux = faux_device_create(GSAT_DEV_NAME, NULL, NULL);
	if (!gsat_faux)
		return -ENODEV;
	ret = dma_coerce_mask_and_coherent(&gsat_faux->dev, DMA_BIT_MASK(64));
	if (ret)
		goto err_faux;
	gsat_drm = drm_dev_alloc(&gsat_drm_driver, &gsat_faux->dev);
	if (IS_ERR(gsat_drm)) {
		ret = PTR_ERR(gsat_drm);
		goto err_faux;
	}
	ret = misc_register(&gsat_misc);
	if (ret)
		goto err_drm;
	pr_info("gpusvm_abi_test: loaded\n");
	return 0;

err_drm:
	drm_dev_put(gsat_drm);
err_faux:
	faux_device_destroy(gsat_faux);
	return ret;
}

static void __exit gsat_module_exit(void)
{
	misc_deregister(&gsat_misc);
	drm_dev_put(gsat_drm);
	faux_device_destroy(gsat_faux);
	pr_info("gpusvm_abi_test: unloaded, live ranges %ld, live notifiers %ld\n",
		atomic_long_read(&gsat_global_live_ranges),
		atomic_long_read(&gsat_global_live_notifiers));
}

module_init(gsat_module_init);
module_exit(gsat_module_exit);

MODULE_DESCRIPTION("Differential test of the drm_gpusvm C API");
MODULE_LICENSE("GPL");
