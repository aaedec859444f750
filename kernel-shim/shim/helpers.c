// SPDX-License-Identifier: GPL-2.0
/*
 * One-line wrappers of static inline functions and macros for the Rust shim (see helpers.h).
 * No logic lives here: each function forwards to the inline, or reads one field the Rust
 * bindings only see through anonymous unions.
 */
#include <linux/bug.h>
#include <linux/dma-direct.h>
#include <linux/dma-mapping.h>
#include <linux/highmem.h>
#include <linux/hugetlb.h>
#include <linux/ioport.h>
#include <linux/jiffies.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/mmu_notifier.h>
#include <linux/pagemap.h>
#include <linux/rwsem.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/topology.h>

#include "helpers.h"



bool gs_vma_is_anonymous(struct vm_area_struct *vma) { return vma_is_anonymous(vma); }
bool gs_is_vm_hugetlb_page(struct vm_area_struct *vma) { return is_vm_hugetlb_page(vma); }

void gs_mmu_interval_set_seq(struct mmu_interval_notifier *sub, unsigned long cur_seq)
{
	mmu_interval_set_seq(sub, cur_seq);
}
bool gs_mmu_interval_read_retry(struct mmu_interval_notifier *sub, unsigned long seq)
{
	return mmu_interval_read_retry(sub, seq);
}
bool gs_mmu_notifier_range_blockable(const struct mmu_notifier_range *range)
{
	return mmu_notifier_range_blockable(range);
}

struct page *gs_pfn_to_page(unsigned long pfn) { return pfn_to_page(pfn); }
unsigned long gs_page_to_pfn(const struct page *page) { return page_to_pfn(page); }
bool gs_pfn_valid(unsigned long pfn) { return pfn_valid(pfn); }
bool gs_is_zone_device_page(const struct page *page) { return is_zone_device_page(page); }
bool gs_is_device_private_page(const struct page *page) { return is_device_private_page(page); }
struct dev_pagemap *gs_page_pgmap(const struct page *page) { return page_pgmap(page); }
int gs_classify_pfn(unsigned long pfn, struct dev_pagemap **pgmap, void **zone_data,
		    bool *coherent)
{
	struct page *page;

	if (!pfn_valid(pfn))
		return GS_CONST_PFN_NONE;
	page = pfn_to_page(pfn);
	if (!is_zone_device_page(page))
		return GS_CONST_PFN_SYSTEM;
	*pgmap = page_pgmap(page);
	*zone_data = page->zone_device_data;
	*coherent = is_device_coherent_page(page);
	return GS_CONST_PFN_ZONE_DEVICE;
}
void *gs_page_zone_device_data(const struct page *page) { return page->zone_device_data; }
void gs_page_set_zone_device_data(struct page *page, void *data) { page->zone_device_data = data; }
struct page *gs_alloc_page_movable(void) { return alloc_page(GFP_HIGHUSER_MOVABLE); }
void gs_lock_page(struct page *page) { lock_page(page); }
void gs_unlock_page(struct page *page) { unlock_page(page); }
void gs_get_page(struct page *page) { get_page(page); }
void gs_put_page(struct page *page) { put_page(page); }

struct page *gs_vmf_page(const struct vm_fault *vmf) { return vmf->page; }
unsigned long gs_vmf_address(const struct vm_fault *vmf) { return vmf->address; }
struct mm_struct *gs_vmf_mm(const struct vm_fault *vmf) { return vmf->vma->vm_mm; }

int gs_dma_coerce_mask_and_coherent(struct device *dev, u64 mask)
{
	return dma_coerce_mask_and_coherent(dev, mask);
}
bool gs_dma_mapping_error(struct device *dev, dma_addr_t addr)
{
	return dma_mapping_error(dev, addr) != 0;
}
int gs_dma_map_pfn(struct device *dev, unsigned long pfn, size_t size,
		   enum dma_data_direction dir, dma_addr_t *addr)
{
	if (!pfn_valid(pfn))
		return -EFAULT;
	*addr = dma_map_page(dev, pfn_to_page(pfn), 0, size, dir);
	return dma_mapping_error(dev, *addr) ? -EFAULT : 0;
}
bool gs_dma_is_direct(struct device *dev) { return get_dma_ops(dev) == NULL; }
unsigned long gs_dma_to_pfn(struct device *dev, dma_addr_t addr)
{
	return PHYS_PFN(dma_to_phys(dev, addr));
}


u64 gs_jiffies_ms(void) { return jiffies64_to_msecs(get_jiffies_64()); }

void *gs_kmalloc_nofail(size_t size) { return kmalloc(size, GFP_KERNEL | __GFP_NOFAIL); }

void gs_cond_resched(void) { cond_resched(); }

int gs_numa_node_id(void) { return numa_node_id(); }

/* asm-generic/bug.h: WARN_ONCE is a macro. */
void gs_warn_bad_pfn(const char *what, unsigned long pfn)
{
	WARN_ONCE(1, "gpusvm_kshim: %s: pfn %#lx has no struct page\n", what, pfn);
}
