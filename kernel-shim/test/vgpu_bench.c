// SPDX-License-Identifier: GPL-2.0
/*
 * In-kernel benchmarks of a drm_gpusvm implementation through gpusvm_vgpu (kernel-shim/diff,
 * GPUSVM_VGPU_BENCH): the module times each loop with ktime; this program sets up the memory,
 * runs the loops and prints one line per measurement,
 *
 *   bench: NAME ns_per_op=N ops=N
 *
 * each the fastest of REPS runs, then "bench: DONE". The guest runs it over upstream's C helper and over ours in the same
 * boot; scripts/kernel-test.sh prints the ratios (docs/PERFORMANCE.md). Under qemu TCG only
 * the ratios mean anything.
 *
 *   vgpu_bench [-q] [-o GROUP]   -q: no million-range case; -o: only one group (fault,
 *                                get_pages, invalidate, migrate)
 *
 * Build: gcc -static -O2 -Wall -I../include -o vgpu_bench vgpu_bench.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gpusvm_dmirror.h"
#include "gpusvm_vgpu.h"
#include "vm_util.h"

/* Each timed loop runs REPS times; the fastest run is reported (the others carry the noise of
 * the emulated machine: other vCPU work, caches, TLB refills). */
#define REPS 5

static long page_size;
static int fd;
static int failed;

static void die(const char *what)
{
	printf("bench: ERROR %s: %s\n", what, strerror(errno));
	exit(1);
}

static struct gpusvm_vgpu_bench bench(__u32 kind, __u64 addr, __u64 count, __u64 stride,
				      __u64 iters, __u64 size)
{
	struct gpusvm_vgpu_bench b = {
		.kind = kind, .addr = addr, .count = count, .stride = stride, .iters = iters,
		.size = size,
	};

	if (ioctl(fd, GPUSVM_VGPU_BENCH, &b) < 0) {
		char what[64];

		snprintf(what, sizeof(what), "bench kind %u", kind);
		die(what);
	}
	return b;
}

static void report(const char *name, __u64 ns, __u64 ops)
{
	printf("bench: %s ns_per_op=%.0f ops=%llu\n", name, ops ? (double)ns / ops : 0.0,
	       (unsigned long long)ops);
}

/* The faster of two runs (per operation). */
static void keep_min(__u64 *ns, __u64 *ops, __u64 new_ns, __u64 new_ops)
{
	if (!new_ops)
		return;
	if (!*ops || (double)new_ns / new_ops < (double)*ns / *ops) {
		*ns = new_ns;
		*ops = new_ops;
	}
}

static char *map_aligned(size_t len, int advice)
{
	size_t align = 2UL << 20;
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		die("mmap");
	a = (char *)(((uintptr_t)p + align - 1) & ~(align - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + len, (p + len + align) - (a + len));
	if (advice >= 0 && madvise(a, len, advice))
		die("madvise");
	return a;
}

static void touch(char *p, size_t len, unsigned int seed)
{
	for (size_t off = 0; off < len; off += page_size)
		*(unsigned int *)(p + off) = seed + off / page_size;
}

static int verify(const char *p, size_t len, unsigned int seed)
{
	for (size_t off = 0; off < len; off += page_size)
		if (*(const unsigned int *)(p + off) != seed + off / page_size)
			return -1;
	return 0;
}

/* GPU fault on a resident range among n 4 KiB ranges. */
static void fault_among(unsigned long n, const char *insert_name, const char *lookup_name,
			const char *fault_name)
{
	size_t len = n * page_size;
	unsigned long resident = 1024, stride = (n / resident) * page_size;
	char *p = map_aligned(len, -1);
	__u64 lk_ns = 0, lk_ops = 0, f_ns = 0, f_ops = 0;
	struct gpusvm_vgpu_bench b;

	/* Creating the ranges is measured once: it is what sets the case up. */
	bench(GPUSVM_VGPU_BENCH_INIT, 0, 0, 0, 0, page_size);
	b = bench(GPUSVM_VGPU_BENCH_INSERT, (uintptr_t)p, n, 0, 0, 0);
	report(insert_name, b.ns, b.ops);
	bench(GPUSVM_VGPU_BENCH_RESIDENT, (uintptr_t)p, resident, stride, 0, 0);
	for (int rep = 0; rep < REPS; rep++) {
		b = bench(GPUSVM_VGPU_BENCH_LOOKUP, (uintptr_t)p, resident, stride, 20000, 0);
		keep_min(&lk_ns, &lk_ops, b.ns, b.ops);
		b = bench(GPUSVM_VGPU_BENCH_FAULT, (uintptr_t)p, resident, stride, 20000, 0);
		if (b.aux) {
			printf("bench: ERROR %s: %llu faults found their range invalid\n",
			       fault_name, (unsigned long long)b.aux);
			failed++;
		}
		keep_min(&f_ns, &f_ops, b.ns, b.ops);
	}
	report(lookup_name, lk_ns, lk_ops);
	report(fault_name, f_ns, f_ops);
	bench(GPUSVM_VGPU_BENCH_FINI, 0, 0, 0, 0, 0);
	munmap(p, len);
}


/* get_pages (and unmap_pages) of one 2 MiB range of 4 KiB pages or of one THP. */
static void get_pages_2m(int thp, const char *name, const char *unmap_name)
{
	size_t len = 2UL << 20;
	char *p = map_aligned(len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	__u64 g_ns = 0, g_ops = 0, u_ns = 0, u_ops = 0;
	struct gpusvm_vgpu_bench b;

	touch(p, len, 0x100);
	if (thp && anon_huge_kb(p) != 2048) {
		printf("bench: ERROR %s: no transparent huge page (AnonHugePages %ld kB)\n", name,
		       anon_huge_kb(p));
		failed++;
	}
	bench(GPUSVM_VGPU_BENCH_INIT, 0, 0, 0, 0, len);
	for (int rep = 0; rep < REPS; rep++) {
		b = bench(GPUSVM_VGPU_BENCH_GET_PAGES, (uintptr_t)p, 0, 0, 20, len);
		keep_min(&g_ns, &g_ops, b.ns, b.ops);
		keep_min(&u_ns, &u_ops, b.ns2, b.ops2);
	}
	report(name, g_ns, g_ops);
	report(unmap_name, u_ns, u_ops);
	bench(GPUSVM_VGPU_BENCH_FINI, 0, 0, 0, 0, 0);
	munmap(p, len);
}

/* One invalidation (MADV_DONTNEED) of k resident 4 KiB ranges, per range. */
static void invalidate_k(unsigned long k, const char *name)
{
	size_t len = k * page_size;
	char *p = map_aligned(len, MADV_NOHUGEPAGE);
	__u64 ns = 0, ranges = 0;
	struct gpusvm_vgpu_bench b;
	int round;

	bench(GPUSVM_VGPU_BENCH_INIT, 0, 0, 0, 0, page_size);
	for (round = 0; round < 20; round++) {
		touch(p, len, round);
		bench(GPUSVM_VGPU_BENCH_RESIDENT, (uintptr_t)p, k, page_size, 0, 0);
		bench(GPUSVM_VGPU_BENCH_INVAL, 0, 0, 0, 0, 0);
		if (madvise(p, len, MADV_DONTNEED))
			die("madvise(MADV_DONTNEED)");
		b = bench(GPUSVM_VGPU_BENCH_INVAL, 0, 0, 0, 0, 0);
		if (b.aux != k) {
			printf("bench: ERROR %s: %llu ranges invalidated, want %lu\n", name,
			       (unsigned long long)b.aux, k);
			failed++;
		}
		keep_min(&ns, &ranges, b.ns, b.aux);
	}
	report(name, ns, ranges);
	bench(GPUSVM_VGPU_BENCH_FINI, 0, 0, 0, 0, 0);
	munmap(p, len);
}

/* Migration of size bytes to device memory and back (eviction), data checked after. */
static void migrate(size_t size, unsigned int iters, const char *name, const char *back_name)
{
	char *p = map_aligned(size, MADV_NOHUGEPAGE);
	struct gpusvm_vgpu_bench b;

	__u64 to_ns = 0, to_ops = 0, back_ns = 0, back_ops = 0;

	touch(p, size, 0x5000);
	for (unsigned int i = 0; i < iters; i++) {
		b = bench(GPUSVM_VGPU_BENCH_MIGRATE, (uintptr_t)p, 0, 0, 1, size);
		keep_min(&to_ns, &to_ops, b.ns, b.ops);
		keep_min(&back_ns, &back_ops, b.ns2, b.ops2);
	}
	if (verify(p, size, 0x5000)) {
		printf("bench: ERROR %s: data changed by the round trips\n", name);
		failed++;
	}
	report(name, to_ns, to_ops);
	report(back_name, back_ns, back_ops);
	munmap(p, size);
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	int quick = 0, opt;

	while ((opt = getopt(argc, argv, "qo:")) != -1) {
		switch (opt) {
		case 'q':
			quick = 1;
			break;
		case 'o':
			only = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [-q] [-o fault|get_pages|invalidate|migrate]\n",
				argv[0]);
			return 2;
		}
	}
	page_size = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = open(GPUSVM_VGPU_DEVICE, O_RDWR);
	if (fd < 0)
		die(GPUSVM_VGPU_DEVICE);
	if (!only || !strcmp(only, "fault")) {
		__u64 a_ns = 0, a_ops = 0;

		/* Not a drm_gpusvm operation: the machine's price of one allocation, which
		 * insert_range_* pays once more in ours (docs/PERFORMANCE.md). */
		for (int rep = 0; rep < REPS; rep++) {
			struct gpusvm_vgpu_bench b = bench(GPUSVM_VGPU_BENCH_ALLOC, 0, 0, 0, 20000,
							   256);

			keep_min(&a_ns, &a_ops, b.ns, b.ops);
		}
		report("kzalloc_kfree_256", a_ns, a_ops);
		fault_among(100000, "insert_range_among_100k", "lookup_resident_among_100k",
			    "fault_resident_among_100k");
		if (!quick)
			fault_among(1000000, "insert_range_among_1m", "lookup_resident_among_1m",
				    "fault_resident_among_1m");
	}
	if (!only || !strcmp(only, "get_pages")) {
		get_pages_2m(0, "get_pages_2m_4k", "unmap_pages_2m_4k");
		get_pages_2m(1, "get_pages_2m_thp", "unmap_pages_2m_thp");
	}
	if (!only || !strcmp(only, "invalidate"))
		invalidate_k(512, "invalidate_per_range_k512");
	if (!only || !strcmp(only, "migrate")) {
		migrate(2UL << 20, REPS, "migrate_2m_to_device", "migrate_2m_to_ram");
		migrate(32UL << 20, REPS, "migrate_32m_to_device", "migrate_32m_to_ram");
	}
	close(fd);
	printf("bench: DONE failed=%d\n", failed);
	return failed ? 1 : 0;
}
