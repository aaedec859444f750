/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C wrappers for what Rust cannot call directly: static inline functions and macros of the
 * kernel headers (Rust-for-Linux bindings only see real, exported functions). Each wrapper is a
 * one-liner around the inline it names; the Rust callers in this directory carry the safety
 * argument.
 * Prototypes live here because the kernel builds with -Wmissing-prototypes.
 */
#ifndef GPUSVM_KSHIM_HELPERS_H
#define GPUSVM_KSHIM_HELPERS_H

#include <linux/types.h>
#include <linux/gfp_types.h>

struct mm_struct;
struct vm_area_struct;
struct mmu_interval_notifier;
struct mmu_notifier_range;
struct page;
struct device;
struct rw_semaphore;
struct vm_fault;
struct dev_pagemap;

/* linux/mm.h: VMA facts that kernel::mm::virt::VmaRef lacks */
bool gs_vma_is_anonymous(struct vm_area_struct *vma);
bool gs_is_vm_hugetlb_page(struct vm_area_struct *vma);

/* linux/mmu_notifier.h */
void gs_mmu_interval_set_seq(struct mmu_interval_notifier *sub, unsigned long cur_seq);
bool gs_mmu_interval_read_retry(struct mmu_interval_notifier *sub, unsigned long seq);
bool gs_mmu_notifier_range_blockable(const struct mmu_notifier_range *range);

/* linux/mm.h, linux/memremap.h: pages */
struct page *gs_pfn_to_page(unsigned long pfn);
unsigned long gs_page_to_pfn(const struct page *page);
bool gs_pfn_valid(unsigned long pfn);
bool gs_is_zone_device_page(const struct page *page);
bool gs_is_device_private_page(const struct page *page);
/*
 * The per-page work of get_pages in one call each (a call out of Rust costs more than the
 * inline C it wraps): what a page frame is (GS_CONST_PFN_NONE: no struct page,
 * GS_CONST_PFN_SYSTEM, or GS_CONST_PFN_ZONE_DEVICE with its pgmap, zone_device_data and
 * coherence), and the DMA mapping of a valid frame (0, or -EFAULT for no struct page or a
 * mapping error).
 */
#define GS_CONST_PFN_NONE		0
#define GS_CONST_PFN_SYSTEM		1
#define GS_CONST_PFN_ZONE_DEVICE	2
int gs_classify_pfn(unsigned long pfn, struct dev_pagemap **pgmap, void **zone_data,
		    bool *coherent);
struct dev_pagemap *gs_page_pgmap(const struct page *page);
void *gs_page_zone_device_data(const struct page *page);
void gs_page_set_zone_device_data(struct page *page, void *data);
struct page *gs_alloc_page_movable(void);
void gs_lock_page(struct page *page);
void gs_unlock_page(struct page *page);
void gs_get_page(struct page *page);
void gs_put_page(struct page *page);

/* struct vm_fault (the CPU-fault op's argument) */
struct page *gs_vmf_page(const struct vm_fault *vmf);
unsigned long gs_vmf_address(const struct vm_fault *vmf);
struct mm_struct *gs_vmf_mm(const struct vm_fault *vmf);

/* linux/dma-mapping.h, linux/dma-direct.h */
int gs_dma_coerce_mask_and_coherent(struct device *dev, u64 mask);
bool gs_dma_mapping_error(struct device *dev, dma_addr_t addr);
int gs_dma_map_pfn(struct device *dev, unsigned long pfn, size_t size,
		   enum dma_data_direction dir, dma_addr_t *addr);
bool gs_dma_is_direct(struct device *dev);
unsigned long gs_dma_to_pfn(struct device *dev, dma_addr_t addr);

/* linux/jiffies.h */
u64 gs_jiffies_ms(void);

/* linux/slab.h: kmalloc with __GFP_NOFAIL (the kernel's Rust Flags cannot say it) */
void *gs_kmalloc_nofail(size_t size);

/* linux/sched.h */
void gs_cond_resched(void);

/* linux/topology.h */
int gs_numa_node_id(void);

/* asm-generic/bug.h */
void gs_warn_bad_pfn(const char *what, unsigned long pfn);

#endif
