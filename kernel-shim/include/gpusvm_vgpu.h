/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * User ABI of gpusvm_vgpu (kernel-shim/diff): a virtual GPU written in C against upstream's
 * drm_gpusvm / drm_pagemap API only, so that the same module runs over upstream's C
 * drm_gpusvm_helper.ko and over ours (kernel-shim/drm_gpusvm).
 *
 * /dev/gpusvm_vgpu speaks the gpusvm_dmirror ABI (gpusvm_dmirror.h: READ, WRITE,
 * MIGRATE_TO_DEV, MIGRATE_TO_SYS, RESIDENCY, STATS, EVICT) with the same meaning, so that
 * kernel-shim/test/dmirror_test.c runs against either device. This header adds what only the
 * vgpu has: in-kernel benchmarks and probes of upstream bugs.
 */
#ifndef _UAPI_GPUSVM_VGPU_H
#define _UAPI_GPUSVM_VGPU_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define GPUSVM_VGPU_DEVICE "/dev/gpusvm_vgpu"

/* gpusvm_dmirror_stats.dma_mappings of the vgpu: drm_gpusvm maps pages itself, through the
 * DMA API of a device without dma_map_ops, so the module cannot count live mappings. */
#define GPUSVM_VGPU_DMA_UNTRACKED (~0ULL)

/*
 * Benchmarks. Each runs on a drm_gpusvm instance of its own (the file's "bench VM", created
 * by BENCH_INIT over the caller's mm with one chunk size), timed with ktime around the loop
 * only. ns is the total of the timed loop, ops the number of operations in it; ns2/ops2 a
 * second timed phase where the kind has one.
 */
struct gpusvm_vgpu_bench {
	__u32 kind;	/* GPUSVM_VGPU_BENCH_* */
	__u32 flags;	/* must be 0 */
	__u64 addr;	/* start of the region (chunk aligned) */
	__u64 count;	/* ranges (INSERT, RESIDENT, FAULT) */
	__u64 stride;	/* bytes between ranges (RESIDENT, FAULT) */
	__u64 iters;	/* timed iterations (FAULT, GET_PAGES, MIGRATE) */
	__u64 size;	/* chunk size (INIT), bytes (GET_PAGES, MIGRATE) */
	__u64 ns, ops;
	__u64 ns2, ops2;
	__u64 aux;	/* kind-specific: ranges alive (INSERT), pages invalidated (INVAL) */
};

/* Bench VM over the caller's mm with chunk sizes {size} (fini of the previous one). */
#define GPUSVM_VGPU_BENCH_INIT		1
/* find_or_insert at addr + i * size, i < count: ns/ops is the cost of creating a range. */
#define GPUSVM_VGPU_BENCH_INSERT	2
/* get_pages of the ranges at addr + i * stride, i < count (they become resident). */
#define GPUSVM_VGPU_BENCH_RESIDENT	3
/* iters GPU faults on resident ranges (addr + (lcg % count) * stride): find_or_insert, the
 * valid-pages fast path of get_pages, and the commit check under the notifier lock. */
#define GPUSVM_VGPU_BENCH_FAULT		4
/* iters x (get_pages of the size-byte range at addr; unmap_pages): ns get_pages, ns2 unmap. */
#define GPUSVM_VGPU_BENCH_GET_PAGES	5
/* Reads and clears the time the bench VM's invalidate callback spent since the last call
 * (ns/ops: callback time and calls; aux: ranges it unmapped). */
#define GPUSVM_VGPU_BENCH_INVAL		6
/* iters x (drm_pagemap_populate_mm of [addr, addr + size) in 2 MiB pieces; evict the
 * allocations with drm_pagemap_evict_to_ram): ns to device, ns2 back to RAM. */
#define GPUSVM_VGPU_BENCH_MIGRATE	7
/* fini of the bench VM. */
#define GPUSVM_VGPU_BENCH_FINI		8
/* iters lookups of resident ranges as in FAULT, find_or_insert alone. */
#define GPUSVM_VGPU_BENCH_LOOKUP	9
/* iters x (kzalloc of size bytes; kfree): the price of one allocation in this machine, for
 * reading INSERT (docs/PERFORMANCE.md). Needs no bench VM. */
#define GPUSVM_VGPU_BENCH_ALLOC		10

/*
 * Probes of upstream bugs that a driver can reach (docs/upstream-bugs.md). Each reports what
 * it observed; the test program decides what is right.
 */
struct gpusvm_vgpu_probe {
	__u32 kind;	/* GPUSVM_VGPU_PROBE_* */
	__u32 flags;	/* must be 0 */
	__u64 addr, len;	/* an anonymous, populated span (one VMA) */
	__s64 ret;	/* errno the probed call returned */
	__u64 released;	/* the allocation's devmem_release was called (by the call) */
	__u64 leaked;	/* allocations the module had to release itself afterwards */
};

/* drm_pagemap_migrate_to_devmem with devmem ops that lack copy_to_ram: the call must fail
 * (-EOPNOTSUPP) and, as it documents, consume the allocation's reference (devmem_release). */
#define GPUSVM_VGPU_PROBE_MIGRATE_MISSING_OPS	1

/*
 * Tracing a span, for hunting races: TRACE_START records, in a ring, every GPU access to a page of
 * [addr, addr + len), every committed mapping of one, every invalidation overlapping the span and
 * every copy into or out of a frame the GPU last mapped for one of its pages. TRACE_DUMP prints
 * the events of the page at addr and an HMM snapshot of it to the kernel log; TRACE_STOP stops.
 */
struct gpusvm_vgpu_trace {
	__u64 op;	/* GPUSVM_VGPU_TRACE_* */
	__u64 addr, len;
};

#define GPUSVM_VGPU_TRACE_START	1
#define GPUSVM_VGPU_TRACE_DUMP	2
#define GPUSVM_VGPU_TRACE_STOP	3

#define GPUSVM_VGPU_BENCH	_IOWR('v', 0x00, struct gpusvm_vgpu_bench)
#define GPUSVM_VGPU_PROBE	_IOWR('v', 0x01, struct gpusvm_vgpu_probe)
#define GPUSVM_VGPU_TRACE	_IOW('v', 0x02, struct gpusvm_vgpu_trace)

#endif
