/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * User ABI of the gpusvm_dmirror test device (kernel-shim/dmirror): a virtual GPU that mirrors
 * the opening process's address space through the gpusvm core. Modelled on lib/test_hmm's
 * dmirror, with its own ioctl numbers.
 */
#ifndef _UAPI_GPUSVM_DMIRROR_H
#define _UAPI_GPUSVM_DMIRROR_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define GPUSVM_DMIRROR_DEVICE "/dev/gpusvm_dmirror"

/* Most pages one command may cover. */
#define GPUSVM_DMIRROR_MAX_PAGES 1024

/*
 * A command on [addr, addr + npages * page size) of the caller's address space. addr is page
 * aligned. ptr is a user buffer: npages pages of data for READ/WRITE, npages bytes of
 * residency flags for RESIDENCY, unused otherwise.
 */
struct gpusvm_dmirror_cmd {
	__u64 addr;
	__u64 ptr;
	__u64 npages;
	__u64 flags;	/* must be 0 */
	__u64 faults;	/* out: GPU faults the command serviced */
	__u64 retries;	/* out: extra fault-loop rounds (invalidations raced with the fault) */
};

/*
 * Per-page residency flags (RESIDENCY). The CPU side (PRESENT, WRITE, DEVICE, ERROR) is an
 * HMM snapshot that is not validated against concurrent invalidations: exact only while
 * nothing else changes the address space. The GPU side is read under the GPU VM's locks.
 */
#define GPUSVM_DMIRROR_PAGE_PRESENT	(1 << 0)	/* the CPU has a page here */
#define GPUSVM_DMIRROR_PAGE_WRITE	(1 << 1)	/* ... mapped writable by the CPU */
#define GPUSVM_DMIRROR_PAGE_DEVICE	(1 << 2)	/* ... in this device's memory */
#define GPUSVM_DMIRROR_PAGE_GPU_MAPPED	(1 << 3)	/* the GPU page table maps it */
#define GPUSVM_DMIRROR_PAGE_ERROR	(1 << 4)	/* no access (PROT_NONE, no VMA) */
#define GPUSVM_DMIRROR_PAGE_GPU_WRITE	(1 << 5)	/* ... and its GPU PTE allows writes */

struct gpusvm_dmirror_stats {
	/* This file's GPU VM (its gpusvm core instance). */
	__u64 ranges;
	__u64 notifiers;
	__u64 invalidations;	/* invalidate op calls */
	__u64 unmap_events;	/* ranges marked unmapped by MMU_NOTIFY_UNMAP */
	__u64 gpu_faults;
	__u64 gc_removed;	/* ranges removed by the garbage collector */
	__u64 mapped_pages;	/* pages with a valid DMA mapping in the ranges */
	__u64 dma_entries;	/* DMA entries used for them (a 2 MiB THP needs one) */
	/* The device. */
	__u64 vram_pages;
	__u64 vram_pages_used;
	__u64 devmem_live;	/* device-memory allocations alive */
	__u64 pages_to_device;	/* pages copied into device memory */
	__u64 pages_to_ram;	/* pages copied out (CPU faults, eviction) */
	__u64 dma_mappings;	/* live DMA mappings of the module */
};

/* The GPU reads [addr, +npages) into ptr / writes ptr into it, faulting through the core. */
#define GPUSVM_DMIRROR_READ		_IOWR('g', 0x00, struct gpusvm_dmirror_cmd)
#define GPUSVM_DMIRROR_WRITE		_IOWR('g', 0x01, struct gpusvm_dmirror_cmd)
/* Migrate the range to device memory (drm_pagemap_populate_mm). */
#define GPUSVM_DMIRROR_MIGRATE_TO_DEV	_IOWR('g', 0x02, struct gpusvm_dmirror_cmd)
/* Migrate the range back to system memory through the CPU-fault path (HMM fault). */
#define GPUSVM_DMIRROR_MIGRATE_TO_SYS	_IOWR('g', 0x03, struct gpusvm_dmirror_cmd)
/* Per-page residency into ptr (an HMM snapshot; does not fault). */
#define GPUSVM_DMIRROR_RESIDENCY	_IOWR('g', 0x04, struct gpusvm_dmirror_cmd)
#define GPUSVM_DMIRROR_STATS		_IOR('g', 0x05, struct gpusvm_dmirror_stats)
/* Evict all of the device's memory back to RAM (drm_pagemap_evict_to_ram). */
#define GPUSVM_DMIRROR_EVICT		_IO('g', 0x06)

#endif
