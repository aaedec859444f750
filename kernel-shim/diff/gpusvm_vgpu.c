// SPDX-License-Identifier: GPL-2.0
/*
 * gpusvm_vgpu: a virtual GPU on upstream's drm_gpusvm / drm_pagemap C API.
 *
 * The module uses nothing of drm_gpusvm but include/drm/drm_gpusvm.h and
 * include/drm/drm_pagemap.h, so that the same .ko runs over upstream's C
 * drm_gpusvm_helper.ko and over the Rust one (kernel-shim/drm_gpusvm): the guest loads it
 * over each in turn and runs the same user-space suite (kernel-shim/test/dmirror_test.c,
 * which speaks the gpusvm_dmirror ABI this device implements) and the same benchmarks.
 *
 * The GPU follows Xe (drivers/gpu/drm/xe/xe_svm.c):
 *
 * - VM: one struct drm_gpusvm per open file over the opener's mm, chunks 2 MiB / 64 KiB /
 *   4 KiB, notifiers of 512 MiB, the file's mutex as the driver lock, ranges embedded in
 *   struct vgpu_range.
 * - Page table: a range's pages (dma_addr[], as drm_gpusvm keeps them) plus two bits set at
 *   commit under the notifier lock: bound (the GPU may use them) and read_only. The GPU
 *   accesses memory only under the notifier lock, after drm_gpusvm_range_pages_valid, so an
 *   invalidation (which takes that lock for write) can never race with an access: the
 *   invalidation clears bound and unmaps the pages, exactly what a zap plus TLB flush does.
 * - Invalidation: xe_svm_invalidate (clip to the notifier, unbind, unmap pages in the
 *   notifier, on MMU_NOTIFY_UNMAP set_unmapped and queue for the garbage collector). The
 *   garbage collector runs at the start of every command under the driver lock and evicts a
 *   partially unmapped range before removing it, as Xe does.
 * - Fault: xe_svm_handle_pagefault without the migration (data moves only by MIGRATE_TO_DEV,
 *   as the gpusvm_dmirror device does): find_or_insert (a read fault on a read-only VMA maps
 *   read-only), get_pages with this device as the device-private owner, evict and retry on
 *   -EOPNOTSUPP, retry on -EBUSY or an unmapped range, commit under the notifier lock. At
 *   most VGPU_FAULT_ATTEMPTS rounds.
 * - VRAM: VGPU_VRAM_MB of device-private pages (memremap_pages, MEMORY_DEVICE_PRIVATE, the
 *   dev_pagemap_ops of drm_pagemap_pagemap_ops_get()), backed by vmalloc'd memory. An
 *   allocation (struct vgpu_bo, Xe's VRAM buffer object) is one naturally aligned 2 MiB
 *   block, so that a THP source can become one compound device folio. When VRAM is full an
 *   allocation evicts the least recently migrated one (drm_pagemap_evict_to_ram), as TTM
 *   does for Xe.
 * - drm_pagemap: embedded, drm_pagemap_init; device_map gives the VRAM offset (plus
 *   VGPU_VRAM_BUS, so that no device address is 0) with DRM_INTERCONNECT_DRIVER;
 *   populate_mm allocates and calls drm_pagemap_migrate_to_devmem.
 *
 * Locks, outermost first: the file's mutex (driver lock), the mmap lock, the notifier lock,
 * vgpu.lock (a spinlock, irq-safe: devmem_release can run wherever the last device page is
 * freed, under page-table locks).
 *
 * gpusvm_vgpu.h adds in-kernel benchmarks (a second drm_gpusvm per file, timed with ktime)
 * and probes of upstream bugs (docs/upstream-bugs.md).
 */
#include <linux/atomic.h>
#include <linux/bitmap.h>
#include <linux/delay.h>
#include <linux/device/faux.h>
#include <linux/dma-direct.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/hmm.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/kref.h>
#include <linux/ktime.h>
#include <linux/memremap.h>
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
#include <linux/vmalloc.h>

#include <drm/drm_device.h>
#include <drm/drm_drv.h>
#include <drm/drm_gpusvm.h>
#include <drm/drm_pagemap.h>

#include "gpusvm_dmirror.h"
#include "gpusvm_vgpu.h"

#define VGPU_NAME		"gpusvm_vgpu"
#define VGPU_VRAM_MB		64
#define VGPU_BLOCK_PAGES	(SZ_2M >> PAGE_SHIFT)
#define VGPU_VRAM_BUS		(1ULL << 40)
#define VGPU_FAULT_ATTEMPTS	16
#define VGPU_MAX_EVICT_ROUNDS	64

static unsigned int vram_mb = VGPU_VRAM_MB;
module_param(vram_mb, uint, 0444);
MODULE_PARM_DESC(vram_mb, "device memory in MiB (a multiple of 2)");

/* ------------------------------------------------------------------ the device */

struct vgpu_bo;

static struct vgpu {
	struct faux_device *faux;
	struct drm_device *drm;
	struct resource *res;
	struct dev_pagemap pgmap;
	struct drm_pagemap dpagemap;
	bool dpagemap_inited;
	unsigned long base_pfn;
	unsigned long npages;		/* VRAM pages */
	unsigned long nblocks;
	void *backing;			/* npages * PAGE_SIZE bytes: the VRAM contents */

	spinlock_t lock;		/* the fields below */
	unsigned long *block_used;	/* bitmap of nblocks */
	unsigned long pages_used;
	struct list_head lru;		/* vgpu_bo.lru, oldest first */

	atomic64_t devmem_live;
	atomic64_t pages_to_device;
	atomic64_t pages_to_ram;
	atomic64_t evictions;
	atomic64_t bo_freed;
	atomic64_t bo_allocated;
} vg;

/* The device-private page owner (drm_gpusvm_ctx, migrate_vma). */
static int vgpu_owner;

/*
 * The span trace (GPUSVM_VGPU_TRACE): a ring of events about the pages of one user span, under
 * its lock. The copy hook matches frames against the GPU's last mapping of each page.
 */
#define VGPU_TRACE_LEN   16384
#define VGPU_TRACE_PAGES 64
struct vgpu_trace_ev {
	u64 ns;
	char what;	/* A access, C commit, I invalidation, D copy to device, R copy to RAM */
	u16 page;	/* index in the span (invalidations: the first page covered) */
	u64 a, b, c;
};
static struct {
	spinlock_t lock;
	unsigned long addr, npages;	/* npages 0: off */
	u64 last_sys[VGPU_TRACE_PAGES];	/* physical address of the last system mapping */
	u64 last_vram[VGPU_TRACE_PAGES];	/* VRAM offset + 1 of the last device mapping */
	unsigned int head, n;
	struct vgpu_trace_ev ev[VGPU_TRACE_LEN];
} vtr = { .lock = __SPIN_LOCK_UNLOCKED(vtr.lock) };

static void vgpu_trace(char what, unsigned long page, u64 a, u64 b, u64 c)
{
	unsigned long flags;
	struct vgpu_trace_ev *e;

	spin_lock_irqsave(&vtr.lock, flags);
	e = &vtr.ev[vtr.head];
	*e = (struct vgpu_trace_ev){ .ns = ktime_get_ns(), .what = what, .page = page, .a = a,
				     .b = b, .c = c };
	vtr.head = (vtr.head + 1) % VGPU_TRACE_LEN;
	if (vtr.n < VGPU_TRACE_LEN)
		vtr.n++;
	spin_unlock_irqrestore(&vtr.lock, flags);
}

/* The index of addr's page in the traced span, or -1. */
static long vgpu_traced(unsigned long addr)
{
	unsigned long n = READ_ONCE(vtr.npages), base = READ_ONCE(vtr.addr);

	if (!n || addr < base || (addr - base) >> PAGE_SHIFT >= n)
		return -1;
	return (addr - base) >> PAGE_SHIFT;
}

/*
 * One device-memory allocation (Xe: a VRAM buffer object).
 *
 * ref: one reference for the allocation itself (dropped in devmem_release, or by the probe
 * that finds it leaked) plus one per user that must keep the memory alive across a call
 * (populate_mm, an evictor). The block is marked used from allocation to devmem_release.
 */
struct vgpu_bo {
	struct drm_pagemap_devmem devmem;
	struct kref ref;
	struct list_head lru;		/* vg.lru, under vg.lock; empty when not listed */
	bool released;			/* devmem_release ran, under vg.lock */
	unsigned long block;
	unsigned long npages;
};

static struct vgpu_bo *to_bo(struct drm_pagemap_devmem *d)
{
	return container_of(d, struct vgpu_bo, devmem);
}

static void vgpu_bo_free(struct kref *ref)
{
	atomic64_inc(&vg.bo_freed);
	kfree(container_of(ref, struct vgpu_bo, ref));
}

static void *vgpu_vram_va(unsigned long pfn)
{
	return vg.backing + ((pfn - vg.base_pfn) << PAGE_SHIFT);
}

static bool vgpu_is_own_page(struct page *page)
{
	return is_device_private_page(page) && page_pgmap(page) == &vg.pgmap;
}

/* Returns the block to the allocator; the bo may be freed by its last reference after. */
static void vgpu_devmem_release(struct drm_pagemap_devmem *devmem)
{
	struct vgpu_bo *bo = to_bo(devmem);
	unsigned long flags;

	spin_lock_irqsave(&vg.lock, flags);
	if (!bo->released) {
		bo->released = true;
		list_del_init(&bo->lru);
		clear_bit(bo->block, vg.block_used);
		vg.pages_used -= bo->npages;
		atomic64_dec(&vg.devmem_live);
	}
	spin_unlock_irqrestore(&vg.lock, flags);
	kref_put(&bo->ref, vgpu_bo_free);
}

static int vgpu_populate_devmem_pfn(struct drm_pagemap_devmem *devmem, unsigned long npages,
				    unsigned long *pfn)
{
	struct vgpu_bo *bo = to_bo(devmem);
	unsigned long i;

	if (npages > bo->npages)
		return -EINVAL;
	for (i = 0; i < npages; i++)
		pfn[i] = vg.base_pfn + bo->block * VGPU_BLOCK_PAGES + i;
	return 0;
}

/* A system page's kernel address from its DMA address (dma-direct: no IOMMU here). */
static void *vgpu_system_va(dma_addr_t addr)
{
	phys_addr_t phys = dma_to_phys(vg.drm->dev, addr);

	if (!pfn_valid(PHYS_PFN(phys)))
		return NULL;
	return phys_to_virt(phys);
}

/*
 * Copies between device pages and system pages. An entry of order k covers 1 << k pages and
 * the entries it covers are not populated (drm_pagemap_devmem_ops); device pages of one
 * allocation are contiguous, so a compound entry is one copy.
 */
static int vgpu_copy(struct page **pages, struct drm_pagemap_addr *addrs, unsigned long npages,
		     bool to_device)
{
	unsigned long i = 0;

	while (i < npages) {
		unsigned long n;
		void *sys, *dev;

		if (!pages[i] || !addrs[i].addr) {
			i++;
			continue;
		}
		n = 1UL << addrs[i].order;
		if (!vgpu_is_own_page(pages[i]) || n > npages - i)
			return -EINVAL;
		sys = vgpu_system_va(addrs[i].addr);
		if (!sys)
			return -EFAULT;
		dev = vgpu_vram_va(page_to_pfn(pages[i]));
		if (READ_ONCE(vtr.npages)) {
			u64 off = (page_to_pfn(pages[i]) - vg.base_pfn) << PAGE_SHIFT;
			u64 phys = dma_to_phys(vg.drm->dev, addrs[i].addr);
			u64 len = n << PAGE_SHIFT;
			unsigned long k;

			for (k = 0; k < READ_ONCE(vtr.npages); k++) {
				u64 ls = READ_ONCE(vtr.last_sys[k]), lv = READ_ONCE(vtr.last_vram[k]);

				if ((ls && ls >= phys && ls < phys + len) ||
				    (lv && lv - 1 >= off && lv - 1 < off + len))
					vgpu_trace(to_device ? 'D' : 'R', k, off, phys,
						   *(u64 *)(to_device ? sys : dev));
			}
		}
		if (to_device)
			memcpy(dev, sys, n << PAGE_SHIFT);
		else
			memcpy(sys, dev, n << PAGE_SHIFT);
		atomic64_add(n, to_device ? &vg.pages_to_device : &vg.pages_to_ram);
		i += n;
	}
	return 0;
}

static int vgpu_copy_to_devmem(struct page **pages, struct drm_pagemap_addr *addrs,
			       unsigned long npages, struct dma_fence *fence)
{
	return vgpu_copy(pages, addrs, npages, true);
}

static int vgpu_copy_to_ram(struct page **pages, struct drm_pagemap_addr *addrs,
			    unsigned long npages, struct dma_fence *fence)
{
	return vgpu_copy(pages, addrs, npages, false);
}

static const struct drm_pagemap_devmem_ops vgpu_devmem_ops = {
	.devmem_release = vgpu_devmem_release,
	.populate_devmem_pfn = vgpu_populate_devmem_pfn,
	.copy_to_devmem = vgpu_copy_to_devmem,
	.copy_to_ram = vgpu_copy_to_ram,
};

/* For the probe: a driver whose allocation cannot be copied back (upstream requires all
 * three copy ops and returns -EOPNOTSUPP). */
static const struct drm_pagemap_devmem_ops vgpu_devmem_ops_no_copy_to_ram = {
	.devmem_release = vgpu_devmem_release,
	.populate_devmem_pfn = vgpu_populate_devmem_pfn,
	.copy_to_devmem = vgpu_copy_to_devmem,
};

/* Evicts the oldest allocation; false if there was none. */
static bool vgpu_evict_one(void)
{
	struct vgpu_bo *victim;
	unsigned long flags;

	spin_lock_irqsave(&vg.lock, flags);
	victim = list_first_entry_or_null(&vg.lru, struct vgpu_bo, lru);
	if (victim) {
		list_del_init(&victim->lru);
		kref_get(&victim->ref);
	}
	spin_unlock_irqrestore(&vg.lock, flags);
	if (!victim)
		return false;
	drm_pagemap_evict_to_ram(&victim->devmem);
	atomic64_inc(&vg.evictions);
	kref_put(&victim->ref, vgpu_bo_free);
	return true;
}

/* A cleared allocation of npages (<= one block), evicting others while VRAM is full. */
static struct vgpu_bo *vgpu_bo_alloc(unsigned long npages)
{
	struct vgpu_bo *bo;
	unsigned long flags, block;
	int round;

	if (!npages || npages > VGPU_BLOCK_PAGES)
		return ERR_PTR(-EINVAL);
	bo = kzalloc(sizeof(*bo), GFP_KERNEL);
	if (!bo)
		return ERR_PTR(-ENOMEM);
	kref_init(&bo->ref);
	INIT_LIST_HEAD(&bo->lru);
	bo->npages = npages;
	for (round = 0;; round++) {
		spin_lock_irqsave(&vg.lock, flags);
		block = find_first_zero_bit(vg.block_used, vg.nblocks);
		if (block < vg.nblocks) {
			set_bit(block, vg.block_used);
			vg.pages_used += npages;
			spin_unlock_irqrestore(&vg.lock, flags);
			break;
		}
		spin_unlock_irqrestore(&vg.lock, flags);
		if (round == VGPU_MAX_EVICT_ROUNDS || !vgpu_evict_one()) {
			kfree(bo);
			return ERR_PTR(-ENOMEM);
		}
	}
	bo->block = block;
	memset(vgpu_vram_va(vg.base_pfn + block * VGPU_BLOCK_PAGES), 0, npages << PAGE_SHIFT);
	atomic64_inc(&vg.devmem_live);
	atomic64_inc(&vg.bo_allocated);
	return bo;
}

/* Migrates [start, end) (one VMA, at most one block) with a new allocation. */
static int vgpu_migrate(struct mm_struct *mm, unsigned long start, unsigned long end,
			const struct drm_pagemap_devmem_ops *ops, struct vgpu_bo **probe)
{
	struct drm_pagemap_migrate_details md = { .timeslice_ms = 0 };
	struct vgpu_bo *bo = vgpu_bo_alloc((end - start) >> PAGE_SHIFT);
	unsigned long flags;
	int err;

	if (IS_ERR(bo))
		return PTR_ERR(bo);
	drm_pagemap_devmem_init(&bo->devmem, vg.drm->dev, mm, ops, &vg.dpagemap,
				end - start, NULL);
	kref_get(&bo->ref);	/* ours, across the call */
	/* Consumes the allocation's reference, even on error (its documentation). */
	err = drm_pagemap_migrate_to_devmem(&bo->devmem, mm, start, end, &md);
	spin_lock_irqsave(&vg.lock, flags);
	if (!err && !bo->released)
		list_add_tail(&bo->lru, &vg.lru);
	spin_unlock_irqrestore(&vg.lock, flags);
	if (probe)
		*probe = bo;	/* the caller puts our reference */
	else
		kref_put(&bo->ref, vgpu_bo_free);
	return err;
}

/* drm_pagemap_ops */

static struct drm_pagemap_addr vgpu_device_map(struct drm_pagemap *dpagemap, struct device *dev,
					       struct page *page, unsigned int order,
					       enum dma_data_direction dir)
{
	dma_addr_t addr = VGPU_VRAM_BUS + ((page_to_pfn(page) - vg.base_pfn) << PAGE_SHIFT);

	return drm_pagemap_addr_encode(addr, DRM_INTERCONNECT_DRIVER, order, dir);
}

static void vgpu_device_unmap(struct drm_pagemap *dpagemap, struct device *dev,
			      const struct drm_pagemap_addr *addr)
{
}

static int vgpu_populate_mm(struct drm_pagemap *dpagemap, unsigned long start,
			    unsigned long end, struct mm_struct *mm, unsigned long timeslice_ms)
{
	return vgpu_migrate(mm, start, end, &vgpu_devmem_ops, NULL);
}

/* The drm_pagemap is embedded in the module's device: nothing to free. */
static void vgpu_dpagemap_destroy(struct drm_pagemap *dpagemap, bool is_atomic_or_reclaim)
{
}

static const struct drm_pagemap_ops vgpu_dpagemap_ops = {
	.device_map = vgpu_device_map,
	.device_unmap = vgpu_device_unmap,
	.populate_mm = vgpu_populate_mm,
	.destroy = vgpu_dpagemap_destroy,
};

/* Evicts every allocation (EVICT, module exit). */
static int vgpu_evict_all(void)
{
	int i;

	for (i = 0; i < 4096 && vgpu_evict_one(); i++)
		;
	return READ_ONCE(vg.pages_used) ? -EBUSY : 0;
}

/* ------------------------------------------------------------------ the VM */

struct vgpu_file;

struct vgpu_range {
	struct drm_gpusvm_range base;
	struct list_head gc_link;	/* vgpu_file.gc_list, under gc_lock */
	struct vgpu_file *f;
	/* The GPU page table's state, under the notifier lock. */
	bool bound;
	bool read_only;
};

struct vgpu_file {
	struct mutex lock;		/* the driver lock */
	struct drm_gpusvm gpusvm;
	struct mm_struct *mm;		/* the opener's (gpusvm holds an mmgrab) */
	spinlock_t gc_lock;
	struct list_head gc_list;
	atomic64_t invalidations;
	atomic64_t unmap_events;
	atomic64_t gpu_faults;
	atomic64_t gc_removed;

	/* The bench VM (gpusvm_vgpu.h), under lock. */
	struct drm_gpusvm bench;
	bool bench_inited;
	unsigned long bench_chunk;
	atomic64_t bench_inval_ns;
	atomic64_t bench_inval_calls;
	atomic64_t bench_inval_ranges;
};

static const unsigned long vgpu_chunks[] = { SZ_2M, SZ_64K, SZ_4K };

static struct vgpu_file *to_vf(struct drm_gpusvm *gpusvm)
{
	return container_of(gpusvm, struct vgpu_file, gpusvm);
}

static struct vgpu_range *to_vr(struct drm_gpusvm_range *r)
{
	return container_of(r, struct vgpu_range, base);
}

static struct drm_gpusvm_range *vgpu_range_alloc(struct drm_gpusvm *gpusvm)
{
	struct vgpu_range *r = kzalloc(sizeof(*r), GFP_KERNEL);

	if (!r)
		return NULL;
	INIT_LIST_HEAD(&r->gc_link);
	r->f = to_vf(gpusvm);
	return &r->base;
}

static void vgpu_range_free(struct drm_gpusvm_range *range)
{
	struct vgpu_range *r = to_vr(range);
	struct vgpu_file *f = r->f;

	spin_lock(&f->gc_lock);
	list_del_init(&r->gc_link);
	spin_unlock(&f->gc_lock);
	kfree(r);
}

/* xe_svm_invalidate; with the notifier lock held for write. */
static void vgpu_invalidate(struct drm_gpusvm *gpusvm, struct drm_gpusvm_notifier *notifier,
			    const struct mmu_notifier_range *mmu_range)
{
	struct vgpu_file *f = to_vf(gpusvm);
	struct drm_gpusvm_ctx ctx = { .in_notifier = true, };
	struct drm_gpusvm_range *r = NULL;
	unsigned long start = max(drm_gpusvm_notifier_start(notifier), mmu_range->start);
	unsigned long end = min(drm_gpusvm_notifier_end(notifier), mmu_range->end);

	atomic64_inc(&f->invalidations);
	if (READ_ONCE(vtr.npages) && mmu_range->start < vtr.addr + (vtr.npages << PAGE_SHIFT) &&
	    mmu_range->end > vtr.addr)
		vgpu_trace('I', mmu_range->start > vtr.addr ?
			   (mmu_range->start - vtr.addr) >> PAGE_SHIFT : 0, mmu_range->event,
			   mmu_range->start,
			   (mmu_range->end - mmu_range->start) | (mmu_range->owner ? 1ULL << 63 : 0));
	drm_gpusvm_for_each_range(r, notifier, start, end) {
		struct vgpu_range *vr = to_vr(r);

		vr->bound = false;	/* the zap: the GPU stops using the pages now */
		drm_gpusvm_range_unmap_pages(gpusvm, r, &ctx);
		if (mmu_range->event != MMU_NOTIFY_UNMAP)
			continue;
		drm_gpusvm_range_set_unmapped(r, mmu_range);
		atomic64_inc(&f->unmap_events);
		spin_lock(&f->gc_lock);
		if (list_empty(&vr->gc_link))
			list_add_tail(&vr->gc_link, &f->gc_list);
		spin_unlock(&f->gc_lock);
	}
}

static const struct drm_gpusvm_ops vgpu_gpusvm_ops = {
	.range_alloc = vgpu_range_alloc,
	.range_free = vgpu_range_free,
	.invalidate = vgpu_invalidate,
};

/* Xe's garbage collector, under the driver lock. */
static void vgpu_gc(struct vgpu_file *f)
{
	lockdep_assert_held(&f->lock);
	for (;;) {
		struct vgpu_range *r;

		spin_lock(&f->gc_lock);
		r = list_first_entry_or_null(&f->gc_list, struct vgpu_range, gc_link);
		if (r)
			list_del_init(&r->gc_link);
		spin_unlock(&f->gc_lock);
		if (!r)
			return;
		if (r->base.pages.flags.partial_unmap)
			drm_gpusvm_range_evict(&f->gpusvm, &r->base);
		drm_gpusvm_range_remove(&f->gpusvm, &r->base);
		atomic64_inc(&f->gc_removed);
	}
}

static struct drm_gpusvm_range *vgpu_range_at(struct drm_gpusvm *gpusvm, unsigned long addr)
{
	struct drm_gpusvm_notifier *n = drm_gpusvm_notifier_find(gpusvm, addr, addr + 1);

	return n ? drm_gpusvm_range_find(n, addr, addr + 1) : NULL;
}

static void vgpu_ctx(struct drm_gpusvm_ctx *ctx, bool read_only)
{
	*ctx = (struct drm_gpusvm_ctx){
		.device_private_page_owner = &vgpu_owner,
		.read_only = read_only,
		.devmem_possible = true,
	};
}

static bool vgpu_page_addr(struct drm_gpusvm_pages *pages, unsigned long npages,
			   unsigned long idx, dma_addr_t *addr, u64 *proto);

/*
 * The GPU fault handler (xe_svm_handle_pagefault, without migration): on success the range
 * at addr is bound, writable if write. Returns the number of extra rounds, or -errno.
 */
static int vgpu_gpu_fault(struct vgpu_file *f, unsigned long addr, bool write)
{
	struct drm_gpusvm_ctx ctx;
	int attempt, err = -EBUSY;
	bool read_only = false;

	lockdep_assert_held(&f->lock);
	atomic64_inc(&f->gpu_faults);
	for (attempt = 0; attempt < VGPU_FAULT_ATTEMPTS; attempt++) {
		struct drm_gpusvm_range *r;
		struct vgpu_range *vr;
		bool committed;
		long traced;

		vgpu_gc(f);
		vgpu_ctx(&ctx, read_only);
		r = drm_gpusvm_range_find_or_insert(&f->gpusvm, addr, 0, TASK_SIZE_MAX, &ctx);
		if (IS_ERR(r)) {
			err = PTR_ERR(r);
			/* A read fault may map a read-only VMA read-only. */
			if (err == -EPERM && !write && !read_only) {
				read_only = true;
				continue;
			}
			return err == -ENOENT ? -EFAULT : err;
		}
		vr = to_vr(r);
		if (r->pages.flags.unmapped) {
			err = -EAGAIN;
			continue;
		}
		if (!read_only && vr->read_only) {
			/* Upgrade a read-only mapping: unbind, unmap, fault again for writing. */
			drm_gpusvm_notifier_lock(&f->gpusvm);
			vr->bound = false;
			drm_gpusvm_notifier_unlock(&f->gpusvm);
			drm_gpusvm_range_unmap_pages(&f->gpusvm, r, &ctx);
		}
		err = drm_gpusvm_range_get_pages(&f->gpusvm, r, &ctx);
		if (err == -EOPNOTSUPP || err == -EFAULT || err == -EPERM) {
			/* Mixed or foreign placement, or the CPU mappings changed (Xe). */
			if (err != -EOPNOTSUPP && !r->pages.flags.unmapped)
				return err;
			drm_gpusvm_range_evict(&f->gpusvm, r);
			continue;
		}
		if (err == -EBUSY || err == -EAGAIN)
			continue;
		if (err)
			return err;
		/* Commit: only pages no invalidation has touched since get_pages. */
		drm_gpusvm_notifier_lock(&f->gpusvm);
		committed = drm_gpusvm_range_pages_valid(&f->gpusvm, r);
		if (committed) {
			vr->bound = true;
			vr->read_only = read_only;
		}
		traced = vgpu_traced(addr);
		if (traced >= 0) {
			dma_addr_t a = 0;
			u64 proto = 0;
			unsigned long idx = (addr - drm_gpusvm_range_start(r)) >> PAGE_SHIFT;

			vgpu_page_addr(&r->pages, drm_gpusvm_range_size(r) >> PAGE_SHIFT, idx, &a,
				       &proto);
			vgpu_trace('C', traced, committed | (proto << 8), a,
				   drm_gpusvm_range_start(r) | (drm_gpusvm_range_size(r) >> PAGE_SHIFT));
		}
		drm_gpusvm_notifier_unlock(&f->gpusvm);
		if (committed)
			return attempt;
		err = -EAGAIN;
	}
	return err;
}

/*
 * The device address of page idx of a range's pages (the walk of xe_res_first_dma: entry j
 * covers PAGE_SIZE << order bytes from page j), with the notifier lock held.
 */
static bool vgpu_page_addr(struct drm_gpusvm_pages *pages, unsigned long npages,
			   unsigned long idx, dma_addr_t *addr, u64 *proto)
{
	unsigned long j = 0;

	if (!pages->dma_addr)
		return false;
	while (j < npages) {
		const struct drm_pagemap_addr *a = &pages->dma_addr[j];
		unsigned long n = 1UL << a->order;

		if (idx < j + n) {
			*addr = a->addr + ((idx - j) << PAGE_SHIFT);
			*proto = a->proto;
			return true;
		}
		j += n;
	}
	return false;
}

/*
 * The GPU's access to the page at addr through its page table, with the notifier lock held:
 * 1 if done, 0 if the page is not mapped (or not writable for a write): a GPU fault.
 */
static int vgpu_access_page(struct vgpu_file *f, unsigned long addr, void *buf, bool write)
{
	struct drm_gpusvm_range *r = vgpu_range_at(&f->gpusvm, addr);
	unsigned long idx;
	dma_addr_t a;
	u64 proto;
	void *va;
	long k;

	if (!r || !to_vr(r)->bound || !drm_gpusvm_range_pages_valid(&f->gpusvm, r))
		return 0;
	if (write && to_vr(r)->read_only)
		return 0;
	idx = (addr - drm_gpusvm_range_start(r)) >> PAGE_SHIFT;
	if (!vgpu_page_addr(&r->pages, drm_gpusvm_range_size(r) >> PAGE_SHIFT, idx, &a, &proto))
		return -EFAULT;
	if (proto == DRM_INTERCONNECT_DRIVER) {
		if (a < VGPU_VRAM_BUS || a - VGPU_VRAM_BUS >= ((u64)vg.npages << PAGE_SHIFT))
			return -EFAULT;
		va = vg.backing + (a - VGPU_VRAM_BUS);
	} else {
		va = vgpu_system_va(a);
		if (!va)
			return -EFAULT;
	}
	k = vgpu_traced(addr);
	if (k >= 0) {
		if (proto == DRM_INTERCONNECT_DRIVER) {
			WRITE_ONCE(vtr.last_vram[k], a - VGPU_VRAM_BUS + 1);
			WRITE_ONCE(vtr.last_sys[k], 0);
		} else {
			WRITE_ONCE(vtr.last_sys[k], dma_to_phys(vg.drm->dev, a));
			WRITE_ONCE(vtr.last_vram[k], 0);
		}
		vgpu_trace('A', k, write | (proto << 8), a, write ? *(u64 *)buf : *(u64 *)va);
	}
	if (write)
		memcpy(va, buf, PAGE_SIZE);
	else
		memcpy(buf, va, PAGE_SIZE);
	return 1;
}

/* ------------------------------------------------------------------ HMM snapshots */

static bool vgpu_tmp_invalidate(struct mmu_interval_notifier *mni,
				const struct mmu_notifier_range *range, unsigned long cur_seq)
{
	mmu_interval_set_seq(mni, cur_seq);
	return true;
}

static const struct mmu_interval_notifier_ops vgpu_tmp_ops = {
	.invalidate = vgpu_tmp_invalidate,
};

/* hmm_range_fault of [start, end) (a snapshot when default_flags is 0). No locks held. */
static int vgpu_hmm_walk(struct mm_struct *mm, unsigned long start, unsigned long end,
			 unsigned long *pfns, unsigned long default_flags, void *owner)
{
	struct mmu_interval_notifier tmp;
	struct hmm_range range = {
		.notifier = &tmp,
		.start = start,
		.end = end,
		.hmm_pfns = pfns,
		.default_flags = default_flags,
		.dev_private_owner = owner,
	};
	int i, ret;

	if (!mmget_not_zero(mm))
		return -EFAULT;
	ret = mmu_interval_notifier_insert(&tmp, mm, start, end - start, &vgpu_tmp_ops);
	if (ret)
		goto out;
	for (i = 0; i < 1000; i++) {
		range.notifier_seq = mmu_interval_read_begin(&tmp);
		mmap_read_lock(mm);
		ret = hmm_range_fault(&range);
		mmap_read_unlock(mm);
		if (ret != -EBUSY)
			break;
		cond_resched();
	}
	mmu_interval_notifier_remove(&tmp);
out:
	mmput(mm);
	return ret;
}

static bool vgpu_hmm_is_own_device(unsigned long pfn)
{
	return (pfn & HMM_PFN_VALID) && vgpu_is_own_page(hmm_pfn_to_page(pfn));
}

/* ------------------------------------------------------------------ dmirror ABI */

static int vgpu_read_cmd(unsigned long arg, struct gpusvm_dmirror_cmd *cmd)
{
	if (copy_from_user(cmd, (void __user *)arg, sizeof(*cmd)))
		return -EFAULT;
	if (cmd->flags || !cmd->npages || cmd->npages > GPUSVM_DMIRROR_MAX_PAGES ||
	    !PAGE_ALIGNED(cmd->addr) || cmd->addr >= TASK_SIZE_MAX ||
	    cmd->npages > (TASK_SIZE_MAX - cmd->addr) >> PAGE_SHIFT)
		return -EINVAL;
	return 0;
}

static int vgpu_write_back(unsigned long arg, const void *v, size_t len)
{
	return copy_to_user((void __user *)arg, v, len) ? -EFAULT : 0;
}

/* READ / WRITE: the GPU accesses the pages one by one, faulting where its table misses. */
static int vgpu_cmd_access(struct vgpu_file *f, unsigned long arg, bool write)
{
	struct gpusvm_dmirror_cmd cmd;
	unsigned long i, len;
	void *buf;
	int ret;

	ret = vgpu_read_cmd(arg, &cmd);
	if (ret)
		return ret;
	len = cmd.npages << PAGE_SHIFT;
	buf = kvmalloc(len, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	if (write && copy_from_user(buf, u64_to_user_ptr(cmd.ptr), len)) {
		ret = -EFAULT;
		goto out;
	}
	cmd.faults = 0;
	cmd.retries = 0;
	mutex_lock(&f->lock);
	vgpu_gc(f);
	for (i = 0; i < cmd.npages && !ret; i++) {
		unsigned long addr = cmd.addr + (i << PAGE_SHIFT);
		int attempt, done = 0;

		for (attempt = 0; attempt < VGPU_FAULT_ATTEMPTS; attempt++) {
			drm_gpusvm_notifier_lock(&f->gpusvm);
			done = vgpu_access_page(f, addr, buf + (i << PAGE_SHIFT), write);
			drm_gpusvm_notifier_unlock(&f->gpusvm);
			if (done)
				break;
			ret = vgpu_gpu_fault(f, addr, write);
			if (ret < 0)
				break;
			cmd.retries += ret;
			cmd.faults++;
			ret = 0;
		}
		if (done < 0)
			ret = done;
		else if (!done && !ret)
			ret = -EBUSY;
	}
	mutex_unlock(&f->lock);
	if (!ret && !write && copy_to_user(u64_to_user_ptr(cmd.ptr), buf, len))
		ret = -EFAULT;
	if (!ret)
		ret = vgpu_write_back(arg, &cmd, sizeof(cmd));
out:
	kvfree(buf);
	return ret;
}

/* MIGRATE_TO_DEV: drm_pagemap_populate_mm in 2 MiB-aligned pieces inside one VMA. */
static int vgpu_cmd_migrate_to_dev(struct vgpu_file *f, unsigned long arg)
{
	struct gpusvm_dmirror_cmd cmd;
	unsigned long addr, end;
	int ret;

	ret = vgpu_read_cmd(arg, &cmd);
	if (ret)
		return ret;
	end = cmd.addr + (cmd.npages << PAGE_SHIFT);
	if (!mmget_not_zero(f->mm))
		return -EFAULT;
	mutex_lock(&f->lock);
	vgpu_gc(f);
	for (addr = cmd.addr; addr < end && !ret;) {
		struct vm_area_struct *vma;
		unsigned long piece;

		mmap_read_lock(f->mm);
		vma = vma_lookup(f->mm, addr);
		piece = vma ? min3(end, vma->vm_end, ALIGN_DOWN(addr, SZ_2M) + (unsigned long)SZ_2M) : 0;
		mmap_read_unlock(f->mm);
		if (!vma) {
			ret = -EFAULT;
			break;
		}
		ret = drm_pagemap_populate_mm(&vg.dpagemap, addr, piece, f->mm, 0);
		addr = piece;
	}
	mutex_unlock(&f->lock);
	mmput(f->mm);
	return ret ? ret : vgpu_write_back(arg, &cmd, sizeof(cmd));
}

/* MIGRATE_TO_SYS: fault the runs of device pages with no device owner (migrate_to_ram). */
static int vgpu_cmd_migrate_to_sys(struct vgpu_file *f, unsigned long arg)
{
	struct gpusvm_dmirror_cmd cmd;
	unsigned long *pfns, i, j;
	int ret;

	ret = vgpu_read_cmd(arg, &cmd);
	if (ret)
		return ret;
	pfns = kvcalloc(cmd.npages, sizeof(*pfns), GFP_KERNEL);
	if (!pfns)
		return -ENOMEM;
	ret = vgpu_hmm_walk(f->mm, cmd.addr, cmd.addr + (cmd.npages << PAGE_SHIFT), pfns, 0,
			    &vgpu_owner);
	for (i = 0; !ret && i < cmd.npages;) {
		if (!vgpu_hmm_is_own_device(pfns[i])) {
			i++;
			continue;
		}
		for (j = i + 1; j < cmd.npages && vgpu_hmm_is_own_device(pfns[j]); j++)
			;
		ret = vgpu_hmm_walk(f->mm, cmd.addr + (i << PAGE_SHIFT),
				    cmd.addr + (j << PAGE_SHIFT), pfns + i, HMM_PFN_REQ_FAULT,
				    NULL);
		i = j;
	}
	kvfree(pfns);
	return ret ? ret : vgpu_write_back(arg, &cmd, sizeof(cmd));
}

/* RESIDENCY: an HMM snapshot (device pages in place) plus the GPU page table. */
static int vgpu_cmd_residency(struct vgpu_file *f, unsigned long arg)
{
	struct gpusvm_dmirror_cmd cmd;
	unsigned long *pfns, i;
	u8 *out;
	int ret;

	ret = vgpu_read_cmd(arg, &cmd);
	if (ret)
		return ret;
	pfns = kvcalloc(cmd.npages, sizeof(*pfns), GFP_KERNEL);
	out = kvzalloc(cmd.npages, GFP_KERNEL);
	if (!pfns || !out) {
		ret = -ENOMEM;
		goto out;
	}
	ret = vgpu_hmm_walk(f->mm, cmd.addr, cmd.addr + (cmd.npages << PAGE_SHIFT), pfns, 0,
			    &vgpu_owner);
	if (ret)
		goto out;
	for (i = 0; i < cmd.npages; i++) {
		if (pfns[i] & HMM_PFN_ERROR) {
			out[i] = GPUSVM_DMIRROR_PAGE_ERROR;
		} else if (pfns[i] & HMM_PFN_VALID) {
			out[i] = GPUSVM_DMIRROR_PAGE_PRESENT;
			if (pfns[i] & HMM_PFN_WRITE)
				out[i] |= GPUSVM_DMIRROR_PAGE_WRITE;
			if (vgpu_hmm_is_own_device(pfns[i]))
				out[i] |= GPUSVM_DMIRROR_PAGE_DEVICE;
		}
	}
	mutex_lock(&f->lock);
	vgpu_gc(f);
	drm_gpusvm_notifier_lock(&f->gpusvm);
	for (i = 0; i < cmd.npages; i++) {
		struct drm_gpusvm_range *r = vgpu_range_at(&f->gpusvm, cmd.addr + (i << PAGE_SHIFT));

		if (r && to_vr(r)->bound && drm_gpusvm_range_pages_valid(&f->gpusvm, r)) {
			out[i] |= GPUSVM_DMIRROR_PAGE_GPU_MAPPED;
			if (!to_vr(r)->read_only)
				out[i] |= GPUSVM_DMIRROR_PAGE_GPU_WRITE;
		}
	}
	drm_gpusvm_notifier_unlock(&f->gpusvm);
	mutex_unlock(&f->lock);
	if (copy_to_user(u64_to_user_ptr(cmd.ptr), out, cmd.npages))
		ret = -EFAULT;
	else
		ret = vgpu_write_back(arg, &cmd, sizeof(cmd));
out:
	kvfree(pfns);
	kvfree(out);
	return ret;
}

static int vgpu_cmd_stats(struct vgpu_file *f, unsigned long arg)
{
	struct gpusvm_dmirror_stats st = { 0 };
	struct drm_gpusvm_notifier *n;

	mutex_lock(&f->lock);
	vgpu_gc(f);
	st.invalidations = atomic64_read(&f->invalidations);
	st.unmap_events = atomic64_read(&f->unmap_events);
	st.gpu_faults = atomic64_read(&f->gpu_faults);
	st.gc_removed = atomic64_read(&f->gc_removed);
	drm_gpusvm_notifier_lock(&f->gpusvm);
	drm_gpusvm_for_each_notifier(n, &f->gpusvm, 0, TASK_SIZE_MAX) {
		struct drm_gpusvm_range *r = NULL;

		st.notifiers++;
		drm_gpusvm_for_each_range(r, n, drm_gpusvm_notifier_start(n),
					  drm_gpusvm_notifier_end(n)) {
			unsigned long npages = drm_gpusvm_range_size(r) >> PAGE_SHIFT, j = 0;

			st.ranges++;
			if (!r->pages.flags.has_dma_mapping || !r->pages.dma_addr)
				continue;
			st.mapped_pages += npages;
			while (j < npages) {
				st.dma_entries++;
				j += 1UL << r->pages.dma_addr[j].order;
			}
		}
	}
	drm_gpusvm_notifier_unlock(&f->gpusvm);
	mutex_unlock(&f->lock);
	st.vram_pages = vg.npages;
	st.vram_pages_used = READ_ONCE(vg.pages_used);
	st.devmem_live = atomic64_read(&vg.devmem_live);
	st.pages_to_device = atomic64_read(&vg.pages_to_device);
	st.pages_to_ram = atomic64_read(&vg.pages_to_ram);
	st.dma_mappings = GPUSVM_VGPU_DMA_UNTRACKED;
	return vgpu_write_back(arg, &st, sizeof(st));
}

/* ------------------------------------------------------------------ benchmarks */

static void vgpu_bench_invalidate(struct drm_gpusvm *gpusvm, struct drm_gpusvm_notifier *notifier,
				  const struct mmu_notifier_range *mmu_range)
{
	struct vgpu_file *f = container_of(gpusvm, struct vgpu_file, bench);
	struct drm_gpusvm_ctx ctx = { .in_notifier = true, };
	struct drm_gpusvm_range *r = NULL;
	unsigned long start = max(drm_gpusvm_notifier_start(notifier), mmu_range->start);
	unsigned long end = min(drm_gpusvm_notifier_end(notifier), mmu_range->end);
	u64 n = 0, t0 = ktime_get_ns();

	drm_gpusvm_for_each_range(r, notifier, start, end) {
		drm_gpusvm_range_unmap_pages(gpusvm, r, &ctx);
		if (mmu_range->event == MMU_NOTIFY_UNMAP)
			drm_gpusvm_range_set_unmapped(r, mmu_range);
		n++;
	}
	atomic64_add(ktime_get_ns() - t0, &f->bench_inval_ns);
	atomic64_inc(&f->bench_inval_calls);
	atomic64_add(n, &f->bench_inval_ranges);
}

/* drm_gpusvm allocates the bench VM's ranges and notifiers itself. */
static const struct drm_gpusvm_ops vgpu_bench_ops = {
	.invalidate = vgpu_bench_invalidate,
};

static void vgpu_bench_ctx(struct drm_gpusvm_ctx *ctx)
{
	*ctx = (struct drm_gpusvm_ctx){ .device_private_page_owner = &vgpu_owner };
}

static void vgpu_bench_fini(struct vgpu_file *f)
{
	if (f->bench_inited) {
		drm_gpusvm_fini(&f->bench);
		f->bench_inited = false;
	}
}

static struct drm_gpusvm_range *vgpu_bench_range(struct vgpu_file *f, unsigned long addr)
{
	struct drm_gpusvm_ctx ctx;

	vgpu_bench_ctx(&ctx);
	return drm_gpusvm_range_find_or_insert(&f->bench, addr, 0, TASK_SIZE_MAX, &ctx);
}

static int vgpu_bench_get_pages(struct vgpu_file *f, struct drm_gpusvm_range *r)
{
	struct drm_gpusvm_ctx ctx;

	vgpu_bench_ctx(&ctx);
	return drm_gpusvm_range_get_pages(&f->bench, r, &ctx);
}

static int vgpu_bench(struct vgpu_file *f, void *req)
{
	struct gpusvm_vgpu_bench *b = req;
	struct drm_gpusvm_range *r;
	struct drm_gpusvm_ctx ctx;
	u64 i, t0, t1, seed = 12345;
	int ret = 0;

	lockdep_assert_held(&f->lock);
	if (b->flags)
		return -EINVAL;
	if (b->kind != GPUSVM_VGPU_BENCH_INIT && b->kind != GPUSVM_VGPU_BENCH_MIGRATE &&
	    b->kind != GPUSVM_VGPU_BENCH_FINI && b->kind != GPUSVM_VGPU_BENCH_ALLOC &&
	    !f->bench_inited)
		return -ENODEV;
	b->ns = b->ops = b->ns2 = b->ops2 = b->aux = 0;
	switch (b->kind) {
	case GPUSVM_VGPU_BENCH_INIT:
		if (!is_power_of_2(b->size) || b->size < PAGE_SIZE || b->size > SZ_2M)
			return -EINVAL;
		vgpu_bench_fini(f);
		f->bench_chunk = b->size;
		ret = drm_gpusvm_init(&f->bench, "gpusvm_vgpu_bench", vg.drm, current->mm, 0,
				      TASK_SIZE_MAX, SZ_512M, &vgpu_bench_ops, &f->bench_chunk, 1);
		if (ret)
			return ret;
		drm_gpusvm_driver_set_lock(&f->bench, &f->lock);
		f->bench_inited = true;
		return 0;
	case GPUSVM_VGPU_BENCH_INSERT:
		t0 = ktime_get_ns();
		for (i = 0; i < b->count; i++) {
			r = vgpu_bench_range(f, b->addr + i * f->bench_chunk);
			if (IS_ERR(r))
				return PTR_ERR(r);
		}
		b->ns = ktime_get_ns() - t0;
		b->ops = b->count;
		return 0;
	case GPUSVM_VGPU_BENCH_RESIDENT:
		for (i = 0; i < b->count; i++) {
			r = vgpu_bench_range(f, b->addr + i * b->stride);
			if (IS_ERR(r))
				return PTR_ERR(r);
			ret = vgpu_bench_get_pages(f, r);
			if (ret)
				return ret;
		}
		return 0;
	case GPUSVM_VGPU_BENCH_FAULT:
		if (!b->count)
			return -EINVAL;
		vgpu_bench_ctx(&ctx);
		t0 = ktime_get_ns();
		for (i = 0; i < b->iters; i++) {
			bool valid;

			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			r = drm_gpusvm_range_find_or_insert(&f->bench,
							    b->addr + ((seed >> 33) % b->count) * b->stride,
							    0, TASK_SIZE_MAX, &ctx);
			if (IS_ERR(r))
				return PTR_ERR(r);
			ret = drm_gpusvm_range_get_pages(&f->bench, r, &ctx);
			if (ret)
				return ret;
			drm_gpusvm_notifier_lock(&f->bench);
			valid = drm_gpusvm_range_pages_valid(&f->bench, r);
			drm_gpusvm_notifier_unlock(&f->bench);
			if (!valid)
				b->aux++;
		}
		b->ns = ktime_get_ns() - t0;
		b->ops = b->iters;
		return 0;
	case GPUSVM_VGPU_BENCH_LOOKUP:
		if (!b->count)
			return -EINVAL;
		vgpu_bench_ctx(&ctx);
		t0 = ktime_get_ns();
		for (i = 0; i < b->iters; i++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			r = drm_gpusvm_range_find_or_insert(&f->bench,
							    b->addr + ((seed >> 33) % b->count) * b->stride,
							    0, TASK_SIZE_MAX, &ctx);
			if (IS_ERR(r))
				return PTR_ERR(r);
		}
		b->ns = ktime_get_ns() - t0;
		b->ops = b->iters;
		return 0;
	case GPUSVM_VGPU_BENCH_GET_PAGES:
		r = vgpu_bench_range(f, b->addr);
		if (IS_ERR(r))
			return PTR_ERR(r);
		if (drm_gpusvm_range_size(r) != b->size)
			return -ERANGE;
		vgpu_bench_ctx(&ctx);
		for (i = 0; i < b->iters; i++) {
			t0 = ktime_get_ns();
			ret = drm_gpusvm_range_get_pages(&f->bench, r, &ctx);
			t1 = ktime_get_ns();
			if (ret)
				return ret;
			drm_gpusvm_range_unmap_pages(&f->bench, r, &ctx);
			b->ns += t1 - t0;
			b->ns2 += ktime_get_ns() - t1;
		}
		b->ops = b->ops2 = b->iters;
		return 0;
	case GPUSVM_VGPU_BENCH_INVAL:
		b->ns = atomic64_xchg(&f->bench_inval_ns, 0);
		b->ops = atomic64_xchg(&f->bench_inval_calls, 0);
		b->aux = atomic64_xchg(&f->bench_inval_ranges, 0);
		return 0;
	case GPUSVM_VGPU_BENCH_MIGRATE: {
		unsigned long addr, end;

		if (!PAGE_ALIGNED(b->addr) || !b->size || b->size > SZ_1G || !PAGE_ALIGNED(b->size))
			return -EINVAL;
		end = b->addr + b->size;
		for (i = 0; i < b->iters && !ret; i++) {
			t0 = ktime_get_ns();
			for (addr = b->addr; addr < end && !ret; addr += SZ_2M)
				ret = drm_pagemap_populate_mm(&vg.dpagemap, addr,
							      min(end, addr + (unsigned long)SZ_2M),
							      current->mm, 0);
			t1 = ktime_get_ns();
			if (!ret)
				ret = vgpu_evict_all();
			b->ns += t1 - t0;
			b->ns2 += ktime_get_ns() - t1;
		}
		b->ops = b->ops2 = b->iters;
		return ret;
	}
	case GPUSVM_VGPU_BENCH_FINI:
		vgpu_bench_fini(f);
		return 0;
	case GPUSVM_VGPU_BENCH_ALLOC:
		if (!b->size || b->size > PAGE_SIZE)
			return -EINVAL;
		t0 = ktime_get_ns();
		for (i = 0; i < b->iters; i++) {
			void *p = kzalloc(b->size, GFP_KERNEL);

			if (!p)
				return -ENOMEM;
			/* Keep the compiler from pairing the two away. */
			WRITE_ONCE(*(char *)p, 1);
			kfree(p);
		}
		b->ns = ktime_get_ns() - t0;
		b->ops = b->iters;
		return 0;
	}
	return -EINVAL;
}

/* ------------------------------------------------------------------ probes */

static int vgpu_probe(struct vgpu_file *f, void *req)
{
	struct gpusvm_vgpu_probe *p = req;
	struct vgpu_bo *bo = NULL;
	unsigned long flags;
	bool released;

	if (p->flags || p->kind != GPUSVM_VGPU_PROBE_MIGRATE_MISSING_OPS)
		return -EINVAL;
	if (!PAGE_ALIGNED(p->addr) || !p->len || !PAGE_ALIGNED(p->len) || p->len > SZ_2M ||
	    p->addr >= TASK_SIZE_MAX || p->len > TASK_SIZE_MAX - p->addr)
		return -EINVAL;
	if (!mmget_not_zero(f->mm))
		return -EFAULT;
	mmap_read_lock(f->mm);
	p->ret = vgpu_migrate(f->mm, p->addr, p->addr + p->len, &vgpu_devmem_ops_no_copy_to_ram,
			      &bo);
	mmap_read_unlock(f->mm);
	mmput(f->mm);
	p->released = 0;
	p->leaked = 0;
	if (!bo)
		return 0;	/* the allocation itself failed */
	spin_lock_irqsave(&vg.lock, flags);
	released = bo->released;
	spin_unlock_irqrestore(&vg.lock, flags);
	p->released = released;
	if (!released && p->ret) {
		/* The call failed without consuming the reference: release it here. */
		p->leaked = 1;
		vgpu_devmem_release(&bo->devmem);
	}
	kref_put(&bo->ref, vgpu_bo_free);
	return 0;
}

/* ------------------------------------------------------------------ page trace */

static int vgpu_trace_ioctl(struct vgpu_file *f, const struct gpusvm_vgpu_trace *t)
{
	unsigned long pfn = 0, flags, page;
	unsigned int i, n, start;
	int ret;

	switch (t->op) {
	case GPUSVM_VGPU_TRACE_START:
		if (!PAGE_ALIGNED(t->addr) || !t->len || t->len > VGPU_TRACE_PAGES * PAGE_SIZE)
			return -EINVAL;
		spin_lock_irqsave(&vtr.lock, flags);
		vtr.head = vtr.n = 0;
		memset(vtr.last_sys, 0, sizeof(vtr.last_sys));
		memset(vtr.last_vram, 0, sizeof(vtr.last_vram));
		WRITE_ONCE(vtr.addr, t->addr);
		WRITE_ONCE(vtr.npages, DIV_ROUND_UP(t->len, PAGE_SIZE));
		spin_unlock_irqrestore(&vtr.lock, flags);
		return 0;
	case GPUSVM_VGPU_TRACE_STOP:
		WRITE_ONCE(vtr.npages, 0);
		return 0;
	case GPUSVM_VGPU_TRACE_DUMP:
		break;
	default:
		return -EINVAL;
	}
	if (vgpu_traced(t->addr) < 0)
		return -EINVAL;
	page = vgpu_traced(t->addr);
	WRITE_ONCE(vtr.npages, 0);
	ret = vgpu_hmm_walk(f->mm, t->addr & PAGE_MASK, (t->addr & PAGE_MASK) + PAGE_SIZE, &pfn, 0,
			    &vgpu_owner);
	pr_info(VGPU_NAME ": trace of page %lu (%#llx): hmm %d pfn %#lx flags %#lx; gpu last sys %#llx vram+1 %#llx\n",
		page, t->addr, ret, pfn & ~HMM_PFN_FLAGS, pfn & HMM_PFN_FLAGS,
		vtr.last_sys[page], vtr.last_vram[page]);
	if (!ret && vgpu_hmm_is_own_device(pfn))
		pr_info(VGPU_NAME ":   cpu: device offset %#lx, word %#llx\n",
			(page_to_pfn(hmm_pfn_to_page(pfn)) - vg.base_pfn) << PAGE_SHIFT,
			*(u64 *)vgpu_vram_va(page_to_pfn(hmm_pfn_to_page(pfn))));
	else if (!ret && (pfn & HMM_PFN_VALID))
		pr_info(VGPU_NAME ":   cpu: system phys %#llx, word %#llx\n",
			(u64)PFN_PHYS(page_to_pfn(hmm_pfn_to_page(pfn))),
			*(u64 *)page_address(hmm_pfn_to_page(pfn)));
	spin_lock_irqsave(&vtr.lock, flags);
	n = vtr.n;
	start = (vtr.head + VGPU_TRACE_LEN - n) % VGPU_TRACE_LEN;
	spin_unlock_irqrestore(&vtr.lock, flags);
	for (i = 0; i < n; i++) {
		struct vgpu_trace_ev *e = &vtr.ev[(start + i) % VGPU_TRACE_LEN];

		if (e->page == page || (e->what == 'I' && e->page <= page))
			pr_info(VGPU_NAME ":   %llu %c %#llx %#llx %#llx\n", e->ns, e->what, e->a,
				e->b, e->c);
	}
	return 0;
}

/* ------------------------------------------------------------------ file ops */

static int vgpu_open(struct inode *inode, struct file *file)
{
	struct vgpu_file *f;
	int ret;

	if (!current->mm)
		return -EINVAL;
	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	mutex_init(&f->lock);
	spin_lock_init(&f->gc_lock);
	INIT_LIST_HEAD(&f->gc_list);
	f->mm = current->mm;
	ret = drm_gpusvm_init(&f->gpusvm, VGPU_NAME, vg.drm, current->mm, 0, TASK_SIZE_MAX,
			      SZ_512M, &vgpu_gpusvm_ops, vgpu_chunks, ARRAY_SIZE(vgpu_chunks));
	if (ret) {
		kfree(f);
		return ret;
	}
	drm_gpusvm_driver_set_lock(&f->gpusvm, &f->lock);
	file->private_data = f;
	return 0;
}

static int vgpu_release(struct inode *inode, struct file *file)
{
	struct vgpu_file *f = file->private_data;

	mutex_lock(&f->lock);
	vgpu_bench_fini(f);
	vgpu_gc(f);
	drm_gpusvm_fini(&f->gpusvm);
	mutex_unlock(&f->lock);
	mutex_destroy(&f->lock);
	kfree(f);
	return 0;
}

/* A vgpu-only command: its request in, the command under the driver lock, the request out. */
static long vgpu_locked_cmd(struct vgpu_file *f, unsigned long arg, void *req, size_t len,
			    int (*fn)(struct vgpu_file *f, void *req))
{
	int ret;

	if (copy_from_user(req, (void __user *)arg, len))
		return -EFAULT;
	mutex_lock(&f->lock);
	ret = fn(f, req);
	mutex_unlock(&f->lock);
	return ret ? ret : vgpu_write_back(arg, req, len);
}

static long vgpu_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct vgpu_file *f = file->private_data;

	/* The GPU works only for the process that opened it (a child must open its own). */
	if (current->mm != f->mm)
		return -EPERM;
	switch (cmd) {
	case GPUSVM_DMIRROR_READ:
		return vgpu_cmd_access(f, arg, false);
	case GPUSVM_DMIRROR_WRITE:
		return vgpu_cmd_access(f, arg, true);
	case GPUSVM_DMIRROR_MIGRATE_TO_DEV:
		return vgpu_cmd_migrate_to_dev(f, arg);
	case GPUSVM_DMIRROR_MIGRATE_TO_SYS:
		return vgpu_cmd_migrate_to_sys(f, arg);
	case GPUSVM_DMIRROR_RESIDENCY:
		return vgpu_cmd_residency(f, arg);
	case GPUSVM_DMIRROR_STATS:
		return vgpu_cmd_stats(f, arg);
	case GPUSVM_DMIRROR_EVICT:
		return vgpu_evict_all();
	case GPUSVM_VGPU_BENCH: {
		struct gpusvm_vgpu_bench b;

		return vgpu_locked_cmd(f, arg, &b, sizeof(b), vgpu_bench);
	}
	case GPUSVM_VGPU_TRACE: {
		struct gpusvm_vgpu_trace t;

		if (copy_from_user(&t, (void __user *)arg, sizeof(t)))
			return -EFAULT;
		return vgpu_trace_ioctl(f, &t);
	}
	case GPUSVM_VGPU_PROBE: {
		struct gpusvm_vgpu_probe p;

		return vgpu_locked_cmd(f, arg, &p, sizeof(p), vgpu_probe);
	}
	}
	return -ENOTTY;
}

static const struct file_operations vgpu_fops = {
	.owner = THIS_MODULE,
	.open = vgpu_open,
	.release = vgpu_release,
	.unlocked_ioctl = vgpu_ioctl,
};

static struct miscdevice vgpu_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = VGPU_NAME,
	.fops = &vgpu_fops,
	.mode = 0666,
};

/*
 * drm_pagemap holds a module reference on drm->driver->fops->owner while the pagemap lives;
 * an owner of NULL keeps the pagemap from pinning this module (module exit drops the
 * pagemap and waits for its deferred drm_dev_put instead).
 */
static const struct file_operations vgpu_drm_fops = {
	.owner = NULL,
};

static const struct drm_driver vgpu_drm_driver = {
	.name = VGPU_NAME,
	.desc = "virtual GPU on drm_gpusvm",
	.major = 1,
	.fops = &vgpu_drm_fops,
};

static void vgpu_teardown(void)
{
	int i;

	if (vg.dpagemap_inited) {
		drm_pagemap_put(&vg.dpagemap);
		/* Its release puts our drm device from a worker: wait for it. */
		for (i = 0; i < 500 && kref_read(&vg.drm->ref) > 1; i++)
			msleep(10);
		if (kref_read(&vg.drm->ref) > 1)
			pr_warn(VGPU_NAME ": the drm_pagemap still holds the device\n");
		vg.dpagemap_inited = false;
	}
}

static int __init vgpu_init(void)
{
	void *addr;
	int ret;

	if (!vram_mb || vram_mb % 2 || vram_mb > 1024)
		return -EINVAL;
	spin_lock_init(&vg.lock);
	INIT_LIST_HEAD(&vg.lru);
	vg.npages = (unsigned long)vram_mb << (20 - PAGE_SHIFT);
	vg.nblocks = vg.npages / VGPU_BLOCK_PAGES;
	vg.block_used = bitmap_zalloc(vg.nblocks, GFP_KERNEL);
	vg.backing = vzalloc(vg.npages << PAGE_SHIFT);
	ret = -ENOMEM;
	if (!vg.block_used || !vg.backing)
		goto err_mem;
	ret = -ENODEV;
	vg.faux = faux_device_create(VGPU_NAME, NULL, NULL);
	if (!vg.faux)
		goto err_mem;
	ret = dma_coerce_mask_and_coherent(&vg.faux->dev, DMA_BIT_MASK(64));
	if (ret)
		goto err_faux;
	vg.drm = drm_dev_alloc(&vgpu_drm_driver, &vg.faux->dev);
	if (IS_ERR(vg.drm)) {
		ret = PTR_ERR(vg.drm);
		goto err_faux;
	}
	vg.res = request_free_mem_region(&iomem_resource, vg.npages << PAGE_SHIFT, VGPU_NAME);
	if (IS_ERR(vg.res)) {
		ret = PTR_ERR(vg.res);
		goto err_drm;
	}
	vg.pgmap.type = MEMORY_DEVICE_PRIVATE;
	vg.pgmap.range.start = vg.res->start;
	vg.pgmap.range.end = vg.res->end;
	vg.pgmap.nr_range = 1;
	vg.pgmap.ops = drm_pagemap_pagemap_ops_get();
	vg.pgmap.owner = &vgpu_owner;
	addr = memremap_pages(&vg.pgmap, NUMA_NO_NODE);
	if (IS_ERR(addr)) {
		ret = PTR_ERR(addr);
		goto err_res;
	}
	vg.base_pfn = PHYS_PFN(vg.res->start);
	ret = drm_pagemap_init(&vg.dpagemap, &vg.pgmap, vg.drm, &vgpu_dpagemap_ops);
	if (ret)
		goto err_pages;
	vg.dpagemap_inited = true;
	ret = misc_register(&vgpu_misc);
	if (ret)
		goto err_dpagemap;
	pr_info(VGPU_NAME ": %u MiB of device memory at pfn %#lx, /dev/" VGPU_NAME " ready\n",
		vram_mb, vg.base_pfn);
	return 0;

err_dpagemap:
	vgpu_teardown();
err_pages:
	memunmap_pages(&vg.pgmap);
err_res:
	release_mem_region(vg.res->start, resource_size(vg.res));
err_drm:
	drm_dev_put(vg.drm);
err_faux:
	faux_device_destroy(vg.faux);
err_mem:
	vfree(vg.backing);
	bitmap_free(vg.block_used);
	return ret;
}

static void __exit vgpu_exit(void)
{
	misc_deregister(&vgpu_misc);
	/* No file is open: what is left in VRAM belongs to no process (or to exiting ones). */
	if (vgpu_evict_all())
		pr_warn(VGPU_NAME ": %lu device pages still in use\n", READ_ONCE(vg.pages_used));
	/* memunmap_pages waits for every device page to be freed. */
	memunmap_pages(&vg.pgmap);
	vgpu_teardown();
	release_mem_region(vg.res->start, resource_size(vg.res));
	drm_dev_put(vg.drm);
	faux_device_destroy(vg.faux);
	vfree(vg.backing);
	bitmap_free(vg.block_used);
	pr_info(VGPU_NAME ": unloaded, allocations %lld live, %lld made, %lld freed, %lld evictions\n",
		atomic64_read(&vg.devmem_live), atomic64_read(&vg.bo_allocated),
		atomic64_read(&vg.bo_freed), atomic64_read(&vg.evictions));
}

module_init(vgpu_init);
module_exit(vgpu_exit);

MODULE_DESCRIPTION("Virtual GPU on the drm_gpusvm / drm_pagemap C API");
MODULE_LICENSE("GPL");
