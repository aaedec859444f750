/* SPDX-License-Identifier: GPL-2.0 */
/*
 * gpusvm_abi_test: the ioctl interface between the differential ABI test module
 * (gpusvm_abi_test.c, /dev/gpusvm_abi_test) and its userspace driver (abi_test.c).
 *
 * Every open file of /dev/gpusvm_abi_test is one GPU SVM instance (a struct drm_gpusvm
 * embedded in the module's per-file struct) over the mm of the process that opened it.
 * Addresses are absolute user virtual addresses; userspace prints them as offsets.
 *
 * Return convention: each request has a `ret` field: 0 or a negative errno. It is the
 * return value of the drm_gpusvm call the ioctl makes (PTR_ERR for pointer returns),
 * except for the module's own codes, which never come from drm_gpusvm:
 *   -ESRCH   no drm_gpusvm_range contains the address (lookup by the module)
 *   -ENODEV  the file's drm_gpusvm is not initialised (no successful INIT)
 *   -ESHUTDOWN the drm_gpusvm was finalised (FINI) and the call would use it in a way
 *            upstream does not guard (see the UNGUARDED list in gpusvm_abi_test.c)
 *   -EALREADY FINI of a full-mode drm_gpusvm that is already finalised
 *   -EBUSY   INIT of a drm_gpusvm that is live
 *   -EDOM    the request holds an input upstream does not guard (would oops or corrupt);
 *            such inputs exist only as GSAT_IOC_UNGUARDED cases
 *   -ENOSPC, -EEXIST  module slot bookkeeping
 * The ioctl() itself fails only for a bad request (EFAULT, ENOTTY, EINVAL).
 */
#ifndef GPUSVM_ABI_TEST_H
#define GPUSVM_ABI_TEST_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define GSAT_DEV_NAME		"gpusvm_abi_test"
#define GSAT_MAX_CHUNKS		8
#define GSAT_MAX_ORDER		20
#define GSAT_MAX_LIST		64
#define GSAT_MAX_USERPTR	4
#define GSAT_MAX_REFS		4

/* struct drm_gpusvm_ctx bits (ctx_flags) */
#define GSAT_CTX_READ_ONLY		(1u << 0)
#define GSAT_CTX_DEVMEM_POSSIBLE	(1u << 1)
#define GSAT_CTX_DEVMEM_ONLY		(1u << 2)
#define GSAT_CTX_ALLOW_MIXED		(1u << 3)

/* request flags */
#define GSAT_F_NO_GC		(1u << 0)	/* FIND_OR_INSERT, GET_PAGES: skip the GC run */
#define GSAT_F_SCAN_PAGEMAP	(1u << 1)	/* SCAN: pass a dev_pagemap (and owner) no page
						 * belongs to, instead of NULL, NULL */

/* struct drm_gpusvm_pages_flags bits, as read from range->pages.flags */
#define GSAT_PF_MIGRATE_DEVMEM		(1u << 0)
#define GSAT_PF_UNMAPPED		(1u << 1)
#define GSAT_PF_PARTIAL_UNMAP		(1u << 2)
#define GSAT_PF_HAS_DEVMEM_PAGES	(1u << 3)
#define GSAT_PF_HAS_DMA_MAPPING		(1u << 4)

/* INIT flags */
#define GSAT_INIT_MM_NULL		(1u << 0) /* mm = NULL: simple drm_gpusvm_pages mode */
#define GSAT_INIT_OPS_NULL		(1u << 1) /* ops = NULL */
#define GSAT_INIT_OPS_NO_INVALIDATE	(1u << 2) /* ops without .invalidate */
#define GSAT_INIT_OPS_MINIMAL		(1u << 3) /* ops with .invalidate only (default allocs) */
#define GSAT_INIT_CHUNKS_NULL		(1u << 4) /* chunk_sizes = NULL */

struct gsat_init_req {
	__u64 mm_start;
	__u64 mm_range;
	__u64 notifier_size;
	__u64 chunk_sizes[GSAT_MAX_CHUNKS];
	__s32 num_chunks;		/* passed as is (int) */
	__u32 flags;			/* GSAT_INIT_* */
	__s64 ret;
};

/* What the module reads of one drm_gpusvm_range (or userptr drm_gpusvm_pages). */
struct gsat_range_info {
	__u64 start;			/* drm_gpusvm_range_start() / userptr start */
	__u64 end;			/* drm_gpusvm_range_end() / userptr end */
	__u64 notifier_start;		/* drm_gpusvm_notifier_start(range->notifier) */
	__u64 notifier_end;
	__u32 flags;			/* GSAT_PF_*, under the notifier lock */
	__u32 pages_valid;		/* drm_gpusvm_range_pages_valid() under the notifier lock */
	__u32 refcount;			/* kref_read(&range->refcount) */
	__u32 npages;			/* (end - start) >> PAGE_SHIFT */
	/* The dma_addr array, walked as xe_res_first_dma does (only if has_dma_mapping). */
	__u32 dma_walked;		/* 1: walked; 0: no dma mapping; 2: has_dma_mapping, no array */
	__u32 dma_entries;		/* entries walked until npages pages are covered */
	__u32 dma_pages;		/* sum of 1 << order */
	__u32 dma_nonzero;		/* entries with addr != 0 */
	__u32 dma_system;		/* entries with proto == DRM_INTERCONNECT_SYSTEM */
	__u32 dma_dir_mask;		/* OR of 1 << dir */
	__u32 dma_match;		/* pages whose first u64 (via the direct map) == va ^ key */
	__u32 dma_bad_align;		/* entries whose addr is not PAGE_SIZE << order aligned */
	__u32 order_count[GSAT_MAX_ORDER + 1];
};

/* FIND_OR_INSERT, GET_PAGES, RANGE_INFO, EVICT, REMOVE, UNMAP_PAGES, SCAN, REF_GET, REF_PUT */
struct gsat_range_req {
	__u64 addr;			/* fault address / lookup address */
	__u64 gpuva_start;		/* FIND_OR_INSERT */
	__u64 gpuva_end;		/* FIND_OR_INSERT */
	__u64 check_pages_threshold;	/* ctx.check_pages_threshold */
	__u64 key;			/* content pattern key for dma_match */
	__u32 ctx_flags;		/* GSAT_CTX_* */
	__u32 flags;			/* GSAT_F_* */
	__s64 ret;
	__u64 val;			/* SCAN: enum drm_gpusvm_scan_result; REF_GET: same pointer;
					 * FIND_OR_INSERT/GET_PAGES: ranges garbage collected first */
	__u32 found;			/* info is filled */
	__u32 pad;
	struct gsat_range_info info;
};

/* RANGE_LIST: drm_gpusvm_for_each_notifier + drm_gpusvm_for_each_range over [start, end) */
#define GSAT_ENT_NOTIFIER	1
#define GSAT_ENT_RANGE		2
struct gsat_list_entry {
	__u64 start;
	__u64 end;
	__u32 kind;
	__u32 flags;			/* GSAT_PF_* for ranges */
};

/* RANGE_LIST, HAS_MAPPING, FIND_VMA_START */
struct gsat_span_req {
	__u64 start;
	__u64 end;
	__s64 ret;
	__u64 val;			/* HAS_MAPPING: bool; FIND_VMA_START: address */
	__u32 count;			/* RANGE_LIST entries filled */
	__u32 truncated;
	struct gsat_list_entry ent[GSAT_MAX_LIST];
};

/* GC, STATS */
struct gsat_stats_req {
	__s64 ret;
	__u64 collected;		/* GC: ranges removed by this run */
	__s64 live_ranges;		/* this file: range_alloc - range_free calls */
	__s64 global_live_ranges;	/* all files: range_alloc - range_free calls */
	__s64 global_live_notifiers;	/* all files: notifier_alloc - notifier_free calls */
	__u64 gc_pending;		/* ranges queued for the GC (full ops) */
	__u64 invalidate_calls;		/* informational: not stable across kernels, not printed */
};

/* FINI */
struct gsat_fini_req {
	__u32 flags;
	__u32 pad;
	__s64 ret;
};

/* USERPTR_GET_PAGES, USERPTR_CHECK, USERPTR_UNMAP, USERPTR_FREE */
#define GSAT_UP_FREE_TWICE	(1u << 0)	/* USERPTR_FREE: drm_gpusvm_free_pages twice */
struct gsat_userptr_req {
	__u32 slot;
	__u32 ctx_flags;
	__u32 flags;
	__u32 read_retry;		/* mmu_interval_read_retry(notifier, pages.notifier_seq) */
	__u64 notifier_start;		/* the module's mmu_interval_notifier (first GET only) */
	__u64 notifier_end;
	__u64 start;			/* pages_start, pages_end */
	__u64 end;
	__u64 key;
	__s64 ret;
	__s64 notifier_ret;		/* mmu_interval_notifier_insert() */
	struct gsat_range_info info;
};

/* UNGUARDED: one bad input upstream does not guard (see gpusvm_abi_test.c); never run
 * against upstream. */
struct gsat_unguarded_req {
	__u32 ucase;			/* GSAT_UNG_* */
	__u32 pad;
	__u64 addr;			/* an address in a mapped, writable VMA of the caller */
	__u64 len;			/* its length (>= 2 MiB, 2 MiB aligned addr) */
	__s64 ret;
	__u64 val;
};

enum gsat_unguarded_case {
	GSAT_UNG_INIT_NULL_GPUSVM = 1,
	GSAT_UNG_INIT_FULL_OPS_NULL,
	GSAT_UNG_INIT_FULL_CHUNKS_NULL,
	GSAT_UNG_INIT_NOTIFIER_SIZE_NPOT,
	GSAT_UNG_INIT_NOTIFIER_SIZE_ZERO,
	GSAT_UNG_INIT_CHUNK_NPOT,
	GSAT_UNG_INIT_CHUNK_LT_PAGE,
	GSAT_UNG_INIT_NUM_CHUNKS_NEGATIVE,
	GSAT_UNG_FINI_NULL,
	GSAT_UNG_FINI_TWICE_FULL,
	GSAT_UNG_FIND_OR_INSERT_NULL_GPUSVM,
	GSAT_UNG_FIND_OR_INSERT_NULL_CTX,
	GSAT_UNG_FIND_OR_INSERT_SIMPLE_MODE,
	GSAT_UNG_FIND_OR_INSERT_AFTER_FINI,
	GSAT_UNG_FIND_VMA_START_NULL_GPUSVM,
	GSAT_UNG_FIND_VMA_START_SIMPLE_MODE,
	GSAT_UNG_FIND_VMA_START_AFTER_FINI,
	GSAT_UNG_RANGE_REMOVE_NULL,
	GSAT_UNG_RANGE_REMOVE_TWICE,
	GSAT_UNG_RANGE_GET_NULL,
	GSAT_UNG_RANGE_PUT_NULL,
	GSAT_UNG_RANGE_EVICT_NULL,
	GSAT_UNG_RANGE_PAGES_VALID_NULL,
	GSAT_UNG_RANGE_PAGES_VALID_UNLOCKED,
	GSAT_UNG_RANGE_GET_PAGES_NULL_RANGE,
	GSAT_UNG_RANGE_GET_PAGES_NULL_CTX,
	GSAT_UNG_RANGE_UNMAP_PAGES_NULL_CTX,
	GSAT_UNG_RANGE_UNMAP_PAGES_IN_NOTIFIER_UNLOCKED,
	GSAT_UNG_RANGE_SET_UNMAPPED_UNLOCKED,
	GSAT_UNG_SCAN_MM_NULL_RANGE,
	GSAT_UNG_HAS_MAPPING_NULL,
	GSAT_UNG_NOTIFIER_FIND_NULL,
	GSAT_UNG_RANGE_FIND_NULL,
	GSAT_UNG_GET_PAGES_NULL_GPUSVM,
	GSAT_UNG_GET_PAGES_NULL_PAGES,
	GSAT_UNG_GET_PAGES_NULL_MM,
	GSAT_UNG_GET_PAGES_NULL_NOTIFIER,
	GSAT_UNG_GET_PAGES_NULL_CTX,
	GSAT_UNG_GET_PAGES_START_GT_END,
	GSAT_UNG_GET_PAGES_UNALIGNED_START,
	GSAT_UNG_GET_PAGES_UNALIGNED_END,
	GSAT_UNG_GET_PAGES_NULL_DRM,
	GSAT_UNG_GET_PAGES_AFTER_FINI,
	GSAT_UNG_UNMAP_PAGES_NULL_CTX,
	GSAT_UNG_UNMAP_PAGES_NPAGES_TOO_LARGE,
	GSAT_UNG_FREE_PAGES_NULL_GPUSVM,
	GSAT_UNG_COUNT
};

#define GSAT_IOC_MAGIC	'G'
#define GSAT_IOC_INIT			_IOWR(GSAT_IOC_MAGIC, 0x00, struct gsat_init_req)
#define GSAT_IOC_FINI			_IOWR(GSAT_IOC_MAGIC, 0x01, struct gsat_fini_req)
#define GSAT_IOC_FIND_OR_INSERT		_IOWR(GSAT_IOC_MAGIC, 0x02, struct gsat_range_req)
#define GSAT_IOC_GET_PAGES		_IOWR(GSAT_IOC_MAGIC, 0x03, struct gsat_range_req)
#define GSAT_IOC_RANGE_INFO		_IOWR(GSAT_IOC_MAGIC, 0x04, struct gsat_range_req)
#define GSAT_IOC_EVICT			_IOWR(GSAT_IOC_MAGIC, 0x05, struct gsat_range_req)
#define GSAT_IOC_REMOVE			_IOWR(GSAT_IOC_MAGIC, 0x06, struct gsat_range_req)
#define GSAT_IOC_UNMAP_PAGES		_IOWR(GSAT_IOC_MAGIC, 0x07, struct gsat_range_req)
#define GSAT_IOC_SCAN			_IOWR(GSAT_IOC_MAGIC, 0x08, struct gsat_range_req)
#define GSAT_IOC_REF_GET		_IOWR(GSAT_IOC_MAGIC, 0x09, struct gsat_range_req)
#define GSAT_IOC_REF_PUT		_IOWR(GSAT_IOC_MAGIC, 0x0a, struct gsat_range_req)
#define GSAT_IOC_RANGE_LIST		_IOWR(GSAT_IOC_MAGIC, 0x0b, struct gsat_span_req)
#define GSAT_IOC_HAS_MAPPING		_IOWR(GSAT_IOC_MAGIC, 0x0c, struct gsat_span_req)
#define GSAT_IOC_FIND_VMA_START		_IOWR(GSAT_IOC_MAGIC, 0x0d, struct gsat_span_req)
#define GSAT_IOC_GC			_IOWR(GSAT_IOC_MAGIC, 0x0e, struct gsat_stats_req)
#define GSAT_IOC_STATS			_IOWR(GSAT_IOC_MAGIC, 0x0f, struct gsat_stats_req)
#define GSAT_IOC_USERPTR_GET_PAGES	_IOWR(GSAT_IOC_MAGIC, 0x10, struct gsat_userptr_req)
#define GSAT_IOC_USERPTR_CHECK		_IOWR(GSAT_IOC_MAGIC, 0x11, struct gsat_userptr_req)
#define GSAT_IOC_USERPTR_UNMAP		_IOWR(GSAT_IOC_MAGIC, 0x12, struct gsat_userptr_req)
#define GSAT_IOC_USERPTR_FREE		_IOWR(GSAT_IOC_MAGIC, 0x13, struct gsat_userptr_req)
#define GSAT_IOC_UNGUARDED		_IOWR(GSAT_IOC_MAGIC, 0x14, struct gsat_unguarded_req)

#endif /* GPUSVM_ABI_TEST_H */
