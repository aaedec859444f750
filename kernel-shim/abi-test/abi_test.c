// SPDX-License-Identifier: GPL-2.0
/*
 * abi_test: drives /dev/gpusvm_abi_test (gpusvm_abi_test.c) through a fixed sequence of
 * scenarios in its own process and prints one canonical line per check:
 *
 *     abi: <scenario>.<check>: ret=<0|-ERRNO> <fields...>
 *
 * ending with "abi: DONE checks=N". No line holds a value that differs between runs of
 * the same kernel: addresses are printed as offsets from the scenario's mapping (which
 * sits at a fixed address, MAP_FIXED_NOREPLACE), dma addresses never (only their count,
 * orders, protocol, direction, non-zero-ness and whether they reach the right page). The
 * output of a run against upstream's C drm_gpusvm must be byte-identical to the output of
 * a run against another implementation of the same API if their semantics match.
 *
 * Usage: abi_test [-u [CASE]]
 *   -u        also run every GSAT_IOC_UNGUARDED case (inputs upstream does not guard; see
 *             gpusvm_abi_test.c): NEVER against upstream's C implementation.
 *   -u CASE   run only that unguarded case (a number or a name), after the suite.
 *
 * Exit status: 0 if every ioctl worked and no invariant failed, 1 otherwise.
 * Build: gcc -static -O2 -Wall -Wextra -o abi_test abi_test.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpusvm_abi_test.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define KiB(x) ((uint64_t)(x) << 10)
#define MiB(x) ((uint64_t)(x) << 20)
#define PAGE 4096ULL

/* Scenario mappings: one 1 GiB-aligned slot each, so notifiers (512 MiB) never mix. */
#define SLOT(k) (0x200000000000ULL + (uint64_t)(k) * 0x40000000ULL)
#define TASK_RANGE 0x800000000000ULL

static const char *dev_path = "/dev/" GSAT_DEV_NAME;
static int checks;
static int failures;

/* ------------------------------------------------------------------ output */

static void out(const char *fmt, ...)
{
	va_list ap;

	fputs("abi: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	checks++;
}

static void fail(const char *fmt, ...)
{
	va_list ap;

	fputs("abi-error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	failures++;
}

static const char *errname(long long v)
{
	static char buf[8][32];
	static int n;
	static const struct { int e; const char *s; } t[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { ESRCH, "ESRCH" }, { EIO, "EIO" },
		{ ENXIO, "ENXIO" }, { EAGAIN, "EAGAIN" }, { ENOMEM, "ENOMEM" },
		{ EFAULT, "EFAULT" }, { EBUSY, "EBUSY" }, { EEXIST, "EEXIST" },
		{ ENODEV, "ENODEV" }, { EINVAL, "EINVAL" }, { ENOSPC, "ENOSPC" },
		{ EDOM, "EDOM" }, { ERANGE, "ERANGE" }, { ENOTTY, "ENOTTY" },
		{ ENOSYS, "ENOSYS" }, { EOPNOTSUPP, "EOPNOTSUPP" }, { ETIME, "ETIME" },
		{ EOVERFLOW, "EOVERFLOW" }, { ESHUTDOWN, "ESHUTDOWN" },
		{ EALREADY, "EALREADY" }, { ETIMEDOUT, "ETIMEDOUT" }, { E2BIG, "E2BIG" },
		{ 524 /* ENOTSUPP */, "ENOTSUPP" },
	};
	char *b = buf[n++ & 7];
	size_t i;

	if (v == 0)
		return "0";
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (v == -t[i].e) {
			snprintf(b, 32, "-%s", t[i].s);
			return b;
		}
	snprintf(b, 32, "%lld", v);
	return b;
}

/* An address as an offset from base; "none" for ULONG_MAX. */
static const char *off(uint64_t base, uint64_t a)
{
	static char buf[16][32];
	static int n;
	char *b = buf[n++ & 15];

	if (a == UINT64_MAX)
		return "none";
	if (a >= base)
		snprintf(b, 32, "+0x%llx", (unsigned long long)(a - base));
	else
		snprintf(b, 32, "-0x%llx", (unsigned long long)(base - a));
	return b;
}

static const char *pflags(uint32_t f)
{
	static char buf[8][8];
	static int n;
	char *b = buf[n++ & 7], *p = b;

	if (f & GSAT_PF_MIGRATE_DEVMEM)
		*p++ = 'm';
	if (f & GSAT_PF_UNMAPPED)
		*p++ = 'u';
	if (f & GSAT_PF_PARTIAL_UNMAP)
		*p++ = 'p';
	if (f & GSAT_PF_HAS_DEVMEM_PAGES)
		*p++ = 'd';
	if (f & GSAT_PF_HAS_DMA_MAPPING)
		*p++ = 'a';
	if (p == b)
		*p++ = '-';
	*p = 0;
	return b;
}

/* The dma part of a range/pages info. */
static char *fmt_dma(const struct gsat_range_info *in, char *b, size_t sz)
{
	int o, k = 0;

	if (in->dma_walked == 0)
		return snprintf(b, sz, "dma=none"), b;
	if (in->dma_walked == 2)
		return snprintf(b, sz, "dma=noarray"), b;
	k += snprintf(b + k, sz - k, "dma=%ue/%up orders=", in->dma_entries, in->dma_pages);
	for (o = 0; o <= GSAT_MAX_ORDER; o++)
		if (in->order_count[o])
			k += snprintf(b + k, sz - k, "%so%d:%u", b[k - 1] == '=' ? "" : ",", o,
				      in->order_count[o]);
	k += snprintf(b + k, sz - k, " sys=%u nz=%u dir=%s%s%s match=%u/%u align_bad=%u",
		      in->dma_system, in->dma_nonzero,
		      in->dma_dir_mask & 1 ? "b" : "", in->dma_dir_mask & 2 ? "t" : "",
		      in->dma_dir_mask & 4 ? "f" : "", in->dma_match, in->npages,
		      in->dma_bad_align);
	return b;
}

static void check_invariants(const char *name, const struct gsat_range_info *in)
{
	if (in->dma_walked == 1) {
		if (in->dma_pages != in->npages)
			fail("%s: dma entries cover %u pages of %u", name, in->dma_pages,
			     in->npages);
		if (in->dma_nonzero != in->dma_entries)
			fail("%s: %u of %u dma addresses are zero", name,
			     in->dma_entries - in->dma_nonzero, in->dma_entries);
	}
	if (in->pages_valid && in->dma_walked != 1)
		fail("%s: pages valid without a dma mapping", name);
}

/* "r=[s,e) n=[s,e) f=.. valid=. ref=. dma=..." */
static const char *fmt_range(uint64_t base, const struct gsat_range_info *in, const char *name)
{
	static char b[512];
	char d[256];

	check_invariants(name, in);
	snprintf(b, sizeof(b), "r=[%s,%s) n=[%s,%s) f=%s valid=%u ref=%u %s",
		 off(base, in->start), off(base, in->end), off(base, in->notifier_start),
		 off(base, in->notifier_end), pflags(in->flags), in->pages_valid, in->refcount,
		 fmt_dma(in, d, sizeof(d)));
	return b;
}

/* ------------------------------------------------------------------ ioctls */

static void xioctl(int fd, unsigned long cmd, void *arg, const char *what)
{
	if (ioctl(fd, cmd, arg)) {
		fail("%s: ioctl failed: %s", what, strerror(errno));
		printf("abi-error: %s: ioctl failed: %s\n", what, strerror(errno));
	}
}

static int xopen(void)
{
	int fd = open(dev_path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "abi-error: open %s: %s\n", dev_path, strerror(errno));
		printf("abi-error: open %s: %s\n", dev_path, strerror(errno));
		exit(1);
	}
	return fd;
}

static const uint64_t xe_chunks[] = { MiB(2), KiB(64), KiB(4) };

static long long do_init(int fd, uint32_t flags, uint64_t mm_start, uint64_t mm_range,
			 uint64_t notifier_size, const uint64_t *chunks, int num_chunks)
{
	struct gsat_init_req r = {
		.mm_start = mm_start, .mm_range = mm_range, .notifier_size = notifier_size,
		.num_chunks = num_chunks, .flags = flags,
	};
	int i;

	for (i = 0; chunks && i < num_chunks && i < GSAT_MAX_CHUNKS; i++)
		r.chunk_sizes[i] = chunks[i];
	xioctl(fd, GSAT_IOC_INIT, &r, "INIT");
	return r.ret;
}

static long long init_xe(int fd)
{
	return do_init(fd, 0, 0, TASK_RANGE, MiB(512), xe_chunks, 3);
}

static long long do_fini(int fd)
{
	struct gsat_fini_req r = {};

	xioctl(fd, GSAT_IOC_FINI, &r, "FINI");
	return r.ret;
}

static struct gsat_range_req rq(int fd, unsigned long cmd, const char *what, uint64_t addr,
				uint32_t ctx, uint32_t flags, uint64_t key)
{
	struct gsat_range_req r = { .addr = addr, .ctx_flags = ctx, .flags = flags, .key = key };

	xioctl(fd, cmd, &r, what);
	return r;
}

/* Print one range request result. */
static void pr_range(const char *name, uint64_t base, const struct gsat_range_req *r,
		     int with_gc)
{
	char gc[32] = "";

	if (with_gc)
		snprintf(gc, sizeof(gc), " gc=%llu", (unsigned long long)r->val);
	if (r->found)
		out("%s: ret=%s%s %s", name, errname(r->ret), gc, fmt_range(base, &r->info, name));
	else
		out("%s: ret=%s%s", name, errname(r->ret), gc);
}

static void fault(int fd, const char *name, uint64_t base, uint64_t addr, uint64_t gs,
		  uint64_t ge, uint32_t ctx, uint64_t threshold, uint32_t flags, uint64_t key)
{
	struct gsat_range_req r = {
		.addr = addr, .gpuva_start = gs, .gpuva_end = ge, .ctx_flags = ctx,
		.check_pages_threshold = threshold, .flags = flags, .key = key,
	};

	xioctl(fd, GSAT_IOC_FIND_OR_INSERT, &r, name);
	pr_range(name, base, &r, !(flags & GSAT_F_NO_GC));
}

static void get_pages(int fd, const char *name, uint64_t base, uint64_t addr, uint32_t ctx,
		      uint32_t flags, uint64_t key)
{
	struct gsat_range_req r = rq(fd, GSAT_IOC_GET_PAGES, name, addr, ctx, flags, key);

	pr_range(name, base, &r, !(flags & GSAT_F_NO_GC));
}

static void range_op(int fd, unsigned long cmd, const char *name, uint64_t base, uint64_t addr,
		     uint64_t key)
{
	struct gsat_range_req r = rq(fd, cmd, name, addr, 0, 0, key);

	pr_range(name, base, &r, 0);
}

static const char *scan_name(uint64_t v)
{
	static const char *n[] = { "UNPOPULATED", "EQUAL", "OTHER", "SYSTEM", "MIXED_DEVICE",
				   "MIXED" };

	return v < 6 ? n[v] : "?";
}

/* drm_gpusvm_scan_mm with NULL owner and pagemap (system pages then compare equal to
 * the NULL pagemap), and with a pagemap no page belongs to ("<name>_pagemap"). */
static void scan(int fd, const char *name, uint64_t base, uint64_t addr)
{
	struct gsat_range_req r = rq(fd, GSAT_IOC_SCAN, name, addr, 0, 0, 0);

	(void)base;
	if (r.ret)
		out("%s: ret=%s", name, errname(r.ret));
	else
		out("%s: ret=0 scan=%s", name, scan_name(r.val));
	r = rq(fd, GSAT_IOC_SCAN, name, addr, 0, GSAT_F_SCAN_PAGEMAP, 0);
	if (r.ret)
		out("%s_pagemap: ret=%s", name, errname(r.ret));
	else
		out("%s_pagemap: ret=0 scan=%s", name, scan_name(r.val));
}

static void range_list(int fd, const char *name, uint64_t base, uint64_t start, uint64_t end)
{
	struct gsat_span_req *r = calloc(1, sizeof(*r));
	char b[4096];
	size_t k = 0;
	uint32_t i;

	r->start = start;
	r->end = end;
	xioctl(fd, GSAT_IOC_RANGE_LIST, r, name);
	b[0] = 0;
	for (i = 0; i < r->count; i++) {
		const struct gsat_list_entry *e = &r->ent[i];

		if (e->kind == GSAT_ENT_NOTIFIER)
			k += snprintf(b + k, sizeof(b) - k, " n[%s,%s)", off(base, e->start),
				      off(base, e->end));
		else
			k += snprintf(b + k, sizeof(b) - k, " r[%s,%s)%s", off(base, e->start),
				      off(base, e->end), pflags(e->flags));
		if (k >= sizeof(b))
			break;
	}
	out("%s: ret=%s count=%u%s%s", name, errname(r->ret), r->count,
	    r->truncated ? " truncated" : "", b);
	free(r);
}

static void has_mapping(int fd, const char *name, uint64_t start, uint64_t end)
{
	struct gsat_span_req *r = calloc(1, sizeof(*r));

	r->start = start;
	r->end = end;
	xioctl(fd, GSAT_IOC_HAS_MAPPING, r, name);
	out("%s: ret=%s has_mapping=%llu", name, errname(r->ret), (unsigned long long)r->val);
	free(r);
}

static void find_vma_start(int fd, const char *name, uint64_t base, uint64_t start,
			   uint64_t end)
{
	struct gsat_span_req *r = calloc(1, sizeof(*r));

	r->start = start;
	r->end = end;
	xioctl(fd, GSAT_IOC_FIND_VMA_START, r, name);
	if (r->ret)
		out("%s: ret=%s", name, errname(r->ret));
	else
		out("%s: ret=0 vma_start=%s", name, off(base, r->val));
	free(r);
}

static struct gsat_stats_req stats(int fd, unsigned long cmd)
{
	struct gsat_stats_req r = {};

	xioctl(fd, cmd, &r, cmd == GSAT_IOC_GC ? "GC" : "STATS");
	return r;
}

static void gc(int fd, const char *name)
{
	struct gsat_stats_req r = stats(fd, GSAT_IOC_GC);

	out("%s: ret=%s collected=%llu live_ranges=%lld gc_pending=%llu", name, errname(r.ret),
	    (unsigned long long)r.collected, (long long)r.live_ranges,
	    (unsigned long long)r.gc_pending);
}

static void pr_stats(int fd, const char *name)
{
	struct gsat_stats_req r = stats(fd, GSAT_IOC_STATS);

	out("%s: ret=%s live_ranges=%lld gc_pending=%llu", name, errname(r.ret),
	    (long long)r.live_ranges, (unsigned long long)r.gc_pending);
}

/* Module-wide counters: meaningful when no other file of the device holds ranges. */
static void pr_global(int fd, const char *name)
{
	struct gsat_stats_req r = stats(fd, GSAT_IOC_STATS);

	out("%s: ret=%s global_live_ranges=%lld global_live_notifiers=%lld", name,
	    errname(r.ret), (long long)r.global_live_ranges, (long long)r.global_live_notifiers);
}

static struct gsat_userptr_req up_req(int fd, unsigned long cmd, const char *name,
				      uint32_t slot, uint64_t ns, uint64_t ne, uint64_t s,
				      uint64_t e, uint32_t ctx, uint32_t flags, uint64_t key)
{
	struct gsat_userptr_req r = {
		.slot = slot, .ctx_flags = ctx, .flags = flags, .notifier_start = ns,
		.notifier_end = ne, .start = s, .end = e, .key = key,
	};

	xioctl(fd, cmd, &r, name);
	return r;
}

static void pr_up(const char *name, uint64_t base, const struct gsat_userptr_req *r,
		  unsigned long cmd)
{
	char d[256];

	check_invariants(name, &r->info);
	if (cmd == GSAT_IOC_USERPTR_GET_PAGES && r->notifier_ret) {
		out("%s: ret=%s notifier_ret=%s", name, errname(r->ret), errname(r->notifier_ret));
		return;
	}
	if (r->ret == -ESRCH || r->ret == -ENODEV || r->ret == -ESHUTDOWN || r->ret == -EDOM) {
		out("%s: ret=%s", name, errname(r->ret));
		return;
	}
	if (cmd == GSAT_IOC_USERPTR_FREE) {
		out("%s: ret=%s p=[%s,%s) f=%s %s", name, errname(r->ret), off(base, r->info.start),
		    off(base, r->info.end), pflags(r->info.flags), fmt_dma(&r->info, d, sizeof(d)));
		return;
	}
	out("%s: ret=%s read_retry=%u p=[%s,%s) f=%s %s", name, errname(r->ret), r->read_retry,
	    off(base, r->info.start), off(base, r->info.end), pflags(r->info.flags),
	    fmt_dma(&r->info, d, sizeof(d)));
}

static void up_get(int fd, const char *name, uint64_t base, uint32_t slot, uint64_t s,
		   uint64_t e, uint32_t ctx, uint64_t key)
{
	struct gsat_userptr_req r = up_req(fd, GSAT_IOC_USERPTR_GET_PAGES, name, slot, s, e, s,
					   e, ctx, 0, key);

	pr_up(name, base, &r, GSAT_IOC_USERPTR_GET_PAGES);
}

static void up_op(int fd, unsigned long cmd, const char *name, uint64_t base, uint32_t slot,
		  uint32_t flags, uint64_t key)
{
	struct gsat_userptr_req r = up_req(fd, cmd, name, slot, 0, 0, 0, 0, 0, flags, key);

	pr_up(name, base, &r, cmd);
}

/* ------------------------------------------------------------------ memory */

static uint64_t map_at(uint64_t addr, uint64_t len, int prot, int flags, int fd)
{
	void *p = mmap((void *)addr, len, prot, flags | MAP_FIXED_NOREPLACE, fd, 0);

	if (p == MAP_FAILED) {
		fail("mmap 0x%llx+0x%llx: %s", (unsigned long long)addr,
		     (unsigned long long)len, strerror(errno));
		return 0;
	}
	if ((uint64_t)p != addr) {
		fail("mmap 0x%llx: got %p", (unsigned long long)addr, p);
		munmap(p, len);
		return 0;
	}
	return addr;
}

static uint64_t map_anon(uint64_t addr, uint64_t len, int prot, int advice)
{
	uint64_t a = map_at(addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	if (a && advice >= 0 && madvise((void *)a, len, advice))
		fail("madvise: %s", strerror(errno));
	return a;
}

/* The pattern the module checks through the dma addresses: each page's first u64 holds
 * its own virtual address ^ key. */
static void fill(uint64_t addr, uint64_t len, uint64_t key)
{
	uint64_t p;

	for (p = addr; p < addr + len; p += PAGE)
		*(volatile uint64_t *)p = p ^ key;
}

static void xmunmap(uint64_t a, uint64_t len)
{
	if (munmap((void *)a, len))
		fail("munmap: %s", strerror(errno));
}

static void xmprotect(uint64_t a, uint64_t len, int prot)
{
	if (mprotect((void *)a, len, prot))
		fail("mprotect: %s", strerror(errno));
}

#define RW (PROT_READ | PROT_WRITE)
#define RO GSAT_CTX_READ_ONLY

/* ------------------------------------------------------------------ scenarios */

/* drm_gpusvm_init parameter checks (l.390-397 of drm_gpusvm.c) and re-initialisation. */
static void scenario_init(void)
{
	uint64_t one_chunk[] = { KiB(4) };
	int fd;

	fd = xopen();
	out("init.full: ret=%s", errname(init_xe(fd)));
	out("init.full.fini: ret=%s", errname(do_fini(fd)));
	out("init.full.reinit: ret=%s", errname(init_xe(fd)));
	out("init.full.reinit.fini: ret=%s", errname(do_fini(fd)));
	close(fd);

	fd = xopen();
	out("init.full.num_chunks0: ret=%s",
	    errname(do_init(fd, 0, 0, TASK_RANGE, MiB(512), xe_chunks, 0)));
	out("init.full.no_invalidate: ret=%s",
	    errname(do_init(fd, GSAT_INIT_OPS_NO_INVALIDATE, 0, TASK_RANGE, MiB(512),
			    xe_chunks, 3)));
	out("init.full.no_invalidate.num_chunks0: ret=%s",
	    errname(do_init(fd, GSAT_INIT_OPS_NO_INVALIDATE, 0, TASK_RANGE, MiB(512),
			    xe_chunks, 0)));
	out("init.full.after_failed: ret=%s", errname(init_xe(fd)));
	out("init.full.after_failed.fini: ret=%s", errname(do_fini(fd)));
	out("init.full.single_chunk: ret=%s",
	    errname(do_init(fd, 0, 0, TASK_RANGE, MiB(512), one_chunk, 1)));
	out("init.full.single_chunk.fini: ret=%s", errname(do_fini(fd)));
	out("init.full.minimal_ops: ret=%s",
	    errname(do_init(fd, GSAT_INIT_OPS_MINIMAL, 0, TASK_RANGE, MiB(512), xe_chunks, 3)));
	out("init.full.minimal_ops.fini: ret=%s", errname(do_fini(fd)));
	out("init.full.mm_start_nonzero: ret=%s",
	    errname(do_init(fd, 0, SLOT(0), MiB(2), MiB(512), xe_chunks, 3)));
	out("init.full.mm_start_nonzero.fini: ret=%s", errname(do_fini(fd)));
	out("init.full.mm_range_zero: ret=%s",
	    errname(do_init(fd, 0, SLOT(0), 0, MiB(512), xe_chunks, 3)));
	out("init.full.mm_range_zero.fini: ret=%s", errname(do_fini(fd)));
	close(fd);

	fd = xopen();
	out("init.simple: ret=%s",
	    errname(do_init(fd, GSAT_INIT_MM_NULL | GSAT_INIT_OPS_NULL, 0, 0, 0, NULL, 0)));
	out("init.simple.fini: ret=%s", errname(do_fini(fd)));
	out("init.simple.fini_again: ret=%s", errname(do_fini(fd)));
	out("init.simple.with_ops: ret=%s",
	    errname(do_init(fd, GSAT_INIT_MM_NULL, 0, 0, 0, NULL, 0)));
	out("init.simple.with_minimal_ops: ret=%s",
	    errname(do_init(fd, GSAT_INIT_MM_NULL | GSAT_INIT_OPS_MINIMAL, 0, 0, 0, NULL, 0)));
	out("init.simple.num_chunks: ret=%s",
	    errname(do_init(fd, GSAT_INIT_MM_NULL | GSAT_INIT_OPS_NULL, 0, 0, 0, xe_chunks, 3)));
	out("init.simple.num_chunks_negative: ret=%s",
	    errname(do_init(fd, GSAT_INIT_MM_NULL | GSAT_INIT_OPS_NULL, 0, 0, 0, NULL, -1)));
	out("init.simple.mm_range: ret=%s",
	    errname(do_init(fd, GSAT_INIT_MM_NULL | GSAT_INIT_OPS_NULL, 0, MiB(2), 0, NULL, 0)));
	out("init.simple.notifier_size: ret=%s",
	    errname(do_init(fd, GSAT_INIT_MM_NULL | GSAT_INIT_OPS_NULL, 0, 0, MiB(512), NULL,
			    0)));
	out("init.simple.notifier_size_npot: ret=%s",
	    errname(do_init(fd, GSAT_INIT_MM_NULL | GSAT_INIT_OPS_NULL, 0, 0, MiB(3), NULL,
			    0)));
	out("init.simple.chunk_sizes_ptr: ret=%s",
	    errname(do_init(fd, GSAT_INIT_MM_NULL | GSAT_INIT_OPS_NULL, 0, 0, 0, xe_chunks, 0)));
	out("init.simple.chunk_sizes_ptr.fini: ret=%s", errname(do_fini(fd)));
	out("init.simple.mm_start: ret=%s",
	    errname(do_init(fd, GSAT_INIT_MM_NULL | GSAT_INIT_OPS_NULL, SLOT(0), 0, 0, NULL,
			    0)));
	has_mapping(fd, "init.simple.mm_start.has_mapping", SLOT(0), SLOT(0) + MiB(2));
	out("init.simple.mm_start.fini: ret=%s", errname(do_fini(fd)));
	close(fd);

	fd = xopen();
	out("init.fini_uninitialised: ret=%s", errname(do_fini(fd)));
	close(fd);
}

/* Faults, chunk selection, get_pages, the dma array, has_mapping, find_vma_start. */
static void scenario_basic(void)
{
	uint64_t A = SLOT(1), U = SLOT(1) + MiB(32);
	int fd = xopen();
	struct gsat_range_req r;
	uint64_t slot;

	if (!map_anon(A, MiB(8), RW, MADV_NOHUGEPAGE) ||
	    !map_anon(U, MiB(4), RW, MADV_NOHUGEPAGE))
		return;
	fill(A, MiB(8), 0);
	out("basic.init: ret=%s", errname(init_xe(fd)));
	range_list(fd, "basic.list_empty", A, A, A + MiB(8));
	has_mapping(fd, "basic.has_mapping_empty", A, A + MiB(8));

	fault(fd, "basic.fault_unaligned", A, A + 0x1234, A, A + MiB(8), 0, 0, 0, 0);
	get_pages(fd, "basic.get_pages", A, A + 0x1234, 0, 0, 0);
	range_op(fd, GSAT_IOC_RANGE_INFO, "basic.pages_valid", A, A + MiB(2) - 1, 0);
	get_pages(fd, "basic.get_pages_again", A, A + 0x1000, 0, 0, 0);
	fault(fd, "basic.fault_existing_ro", A, A + MiB(2) - PAGE, A + MiB(2) - PAGE,
	      A + MiB(2), RO, 0, 0, 0);
	fault(fd, "basic.fault_existing_gpuva_excludes", A, A + MiB(1), A + MiB(6), A + MiB(7),
	      0, 0, 0, 0);
	fault(fd, "basic.fault_64k", A, A + MiB(2) + KiB(64) + 5, A + MiB(2) + KiB(64),
	      A + MiB(2) + KiB(128), 0, 0, 0, 0);
	fault(fd, "basic.fault_4k", A, A + MiB(2) + KiB(132) + 7, A + MiB(2) + KiB(132),
	      A + MiB(2) + KiB(136), 0, 0, 0, 0);
	fault(fd, "basic.fault_overlap_2m", A, A + MiB(2) + 8, A, A + MiB(8), 0, 0, 0, 0);
	fault(fd, "basic.fault_overlap_64k", A, A + MiB(2) + KiB(128) + 8, A, A + MiB(8), 0, 0,
	      0, 0);
	get_pages(fd, "basic.get_pages_64k", A, A + MiB(2) + KiB(64), 0, 0, 0);
	get_pages(fd, "basic.get_pages_4k", A, A + MiB(2) + KiB(132), 0, 0, 0);
	fault(fd, "basic.gpuva_excludes_fault", A, A + MiB(4) + 5, A + MiB(5), A + MiB(6), 0, 0,
	      0, 0);
	fault(fd, "basic.gpuva_inverted", A, A + MiB(4) + 5, A + MiB(6), A + MiB(4), 0, 0, 0, 0);
	fault(fd, "basic.gpuva_empty", A, A + MiB(4) + 5, A + MiB(4), A + MiB(4), 0, 0, 0, 0);
	fault(fd, "basic.gpuva_start_unaligned", A, A + MiB(4) + 0x10, A + MiB(4) + 1,
	      A + MiB(8), 0, 0, 0, 0);
	fault(fd, "basic.gpuva_end_wrapped", A, A + MiB(4) + 0x10, A, 0, 0, 0, 0, 0);
	fault(fd, "basic.gpuva_end_unaligned", A, A + MiB(4) + 0x10, A + MiB(4),
	      A + MiB(4) + 0x1800, 0, 0, 0, 0);
	fault(fd, "basic.no_vma", A, A + MiB(16), A, A + MiB(32), 0, 0, 0, 0);
	fault(fd, "basic.no_vma_below", A, A - PAGE, A - MiB(2), A + MiB(2), 0, 0, 0, 0);
	fault(fd, "basic.devmem_possible", A, A + MiB(6), A, A + MiB(8), GSAT_CTX_DEVMEM_POSSIBLE,
	      0, 0, 0);
	range_list(fd, "basic.list", A, A, A + MiB(8));
	range_list(fd, "basic.list_sub", A, A + MiB(2) + KiB(100), A + MiB(2) + KiB(200));
	range_list(fd, "basic.list_empty_span", A, A + MiB(1), A + MiB(1));
	range_list(fd, "basic.list_inverted", A, A + MiB(3), A + MiB(1));
	range_list(fd, "basic.list_end_wrapped", A, A + MiB(1), 0);
	range_list(fd, "basic.list_all", A, 0, UINT64_MAX);

	has_mapping(fd, "basic.has_mapping", A, A + MiB(8));
	has_mapping(fd, "basic.has_mapping_gap", A + MiB(4), A + MiB(6));
	has_mapping(fd, "basic.has_mapping_edge", A + MiB(2) + KiB(64) - 1, A + MiB(2) + KiB(64));
	has_mapping(fd, "basic.has_mapping_after_end", A + MiB(8), A + MiB(9));
	has_mapping(fd, "basic.has_mapping_start_eq_end", A + 0x1000, A + 0x1000);
	has_mapping(fd, "basic.has_mapping_start_eq_end_at_range_start", A, A);
	has_mapping(fd, "basic.has_mapping_inverted", A + MiB(8), A);
	has_mapping(fd, "basic.has_mapping_inverted_gap", A + MiB(5), A + MiB(4) + 1);
	has_mapping(fd, "basic.has_mapping_end_wrapped", A, 0);
	has_mapping(fd, "basic.has_mapping_all", 0, UINT64_MAX);

	find_vma_start(fd, "basic.find_vma_start", A, A + MiB(1), A + MiB(2));
	find_vma_start(fd, "basic.find_vma_start_before", A, A - MiB(1), A + MiB(1));
	find_vma_start(fd, "basic.find_vma_start_gap", A, A + MiB(8), A + MiB(9));
	find_vma_start(fd, "basic.find_vma_start_next", A, A + MiB(8), U + 1);
	find_vma_start(fd, "basic.find_vma_start_unaligned", A, A + 0x123, A + 0x456);
	find_vma_start(fd, "basic.find_vma_start_empty", A, A + MiB(1), A + MiB(1));
	find_vma_start(fd, "basic.find_vma_start_inverted", A, A + MiB(2), A + MiB(1));
	find_vma_start(fd, "basic.find_vma_start_end_wrapped", A, A + MiB(1), 0);

	scan(fd, "basic.scan", A, A);
	range_op(fd, GSAT_IOC_UNMAP_PAGES, "basic.unmap_pages", A, A, 0);
	range_op(fd, GSAT_IOC_UNMAP_PAGES, "basic.unmap_pages_again", A, A, 0);
	scan(fd, "basic.scan_after_unmap", A, A);
	get_pages(fd, "basic.devmem_only", A, A, GSAT_CTX_DEVMEM_ONLY, 0, 0);
	get_pages(fd, "basic.get_pages_after_unmap", A, A, 0, 0, 0);
	get_pages(fd, "basic.devmem_only_valid", A, A, GSAT_CTX_DEVMEM_ONLY, 0, 0);
	range_op(fd, GSAT_IOC_EVICT, "basic.evict", A, A, 0);
	get_pages(fd, "basic.get_pages_ro_ctx", A, A + MiB(6), RO, 0, 0);
	get_pages(fd, "basic.get_pages_key", A, A + MiB(6), 0, 0, 0x5a5a000);

	/* check_pages_threshold: ranges only over pages the CPU has faulted in */
	fault(fd, "basic.threshold_unpopulated", U, U + 0x3000, U, U + MiB(4), 0, MiB(2), 0, 0);
	fill(U + MiB(1), KiB(64), 0);
	fault(fd, "basic.threshold_populated_64k", U, U + MiB(1) + 0x100, U, U + MiB(4), 0,
	      MiB(2), 0, 0);
	fill(U + MiB(3), PAGE, 0);
	fault(fd, "basic.threshold_partly_populated", U, U + MiB(3), U + MiB(2), U + MiB(4), 0,
	      MiB(2), 0, 0);
	fault(fd, "basic.threshold_4k_only", U, U + MiB(3) + PAGE, U + MiB(2), U + MiB(4), 0,
	      KiB(4), 0, 0);
	fault(fd, "basic.threshold_zero", U, U + MiB(2) + KiB(512), U + MiB(2), U + MiB(4), 0, 0,
	      0, 0);
	scan(fd, "basic.scan_unpopulated_4k", U, U + 0x3000);
	scan(fd, "basic.scan_populated_64k", U, U + MiB(1));
	get_pages(fd, "basic.get_pages_untouched_4k", U, U + 0x3000, 0, 0, 0);
	scan(fd, "basic.scan_after_get_pages", U, U + 0x3000);
	range_list(fd, "basic.threshold_list", U, U, U + MiB(4));

	/* references: remove with an extra reference defers range_free */
	pr_stats(fd, "basic.stats");
	r = rq(fd, GSAT_IOC_REF_GET, "basic.ref_get", A + MiB(2) + KiB(64), 0, 0, 0);
	slot = r.val;
	pr_range("basic.ref_get", A, &r, 0);
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove_referenced", A, A + MiB(2) + KiB(64), 0);
	pr_stats(fd, "basic.stats_after_remove_referenced");
	range_list(fd, "basic.list_after_remove_referenced", A, A + MiB(2), A + MiB(3));
	r = rq(fd, GSAT_IOC_REF_PUT, "basic.ref_put", slot, 0, 0, 0);
	out("basic.ref_put: ret=%s", errname(r.ret));
	pr_stats(fd, "basic.stats_after_ref_put");
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove", A, A + MiB(2), 0);
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove_again", A, A + MiB(2), 0);
	get_pages(fd, "basic.get_pages_no_range", A, A + MiB(5), 0, 0, 0);
	range_op(fd, GSAT_IOC_EVICT, "basic.evict_no_range", A, A + MiB(5), 0);
	pr_stats(fd, "basic.stats_after_remove");
	pr_global(fd, "basic.global");

	/* remove everything: the notifier goes with its last range */
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove_0", A, A, 0);
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove_1", A, A + MiB(2) + KiB(128), 0);
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove_2", A, A + MiB(2) + KiB(132), 0);
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove_3", A, A + MiB(4), 0);
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove_4", A, A + MiB(6), 0);
	range_list(fd, "basic.list_after_removes", A, A, A + MiB(64));
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove_5", A, U + 0x3000, 0);
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove_6", A, U + MiB(1), 0);
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove_7", A, U + MiB(2) + KiB(512), 0);
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove_8", A, U + MiB(3), 0);
	range_op(fd, GSAT_IOC_REMOVE, "basic.remove_9", A, U + MiB(3) + PAGE, 0);
	range_list(fd, "basic.list_after_remove_all", A, A, A + MiB(64));
	pr_global(fd, "basic.global_after_remove_all");

	/* fini with live ranges, then what a finalised drm_gpusvm answers */
	fault(fd, "basic.refault", A, A, A, A + MiB(8), 0, 0, 0, 0);
	get_pages(fd, "basic.refault_get_pages", A, A, 0, 0, 0);
	fault(fd, "basic.refault_2", A, A + MiB(4), A, A + MiB(8), 0, 0, 0, 0);
	out("basic.fini: ret=%s", errname(do_fini(fd)));
	pr_stats(fd, "basic.stats_after_fini");
	pr_global(fd, "basic.global_after_fini");
	has_mapping(fd, "basic.after_fini.has_mapping", A, A + MiB(8));
	range_list(fd, "basic.after_fini.list", A, A, A + MiB(8));
	get_pages(fd, "basic.after_fini.get_pages", A, A, 0, 0, 0);
	gc(fd, "basic.after_fini.gc");
	out("basic.after_fini.reinit: ret=%s", errname(init_xe(fd)));
	fault(fd, "basic.after_fini.reinit.fault", A, A + 5, A, A + MiB(8), 0, 0, 0, 0);
	get_pages(fd, "basic.after_fini.reinit.get_pages", A, A, 0, 0, 0);
	close(fd);
	xmunmap(A, MiB(8));
	xmunmap(U, MiB(4));
}

/* mm_start/mm_range bounds, wrap-arounds, notifier sizes, chunk orders. */
static void scenario_bounds(void)
{
	uint64_t R = SLOT(2);
	uint64_t chunks_unsorted[] = { KiB(4), MiB(2) };
	uint64_t chunks_64k[] = { KiB(64) };
	int fd;

	if (!map_anon(R, MiB(8), RW, MADV_NOHUGEPAGE))
		return;
	fill(R, MiB(8), 0);

	fd = xopen();
	out("bounds.init_window: ret=%s",
	    errname(do_init(fd, 0, R + MiB(2), MiB(2), MiB(512), xe_chunks, 3)));
	fault(fd, "bounds.below_start", R, R + MiB(1), R, R + MiB(8), 0, 0, 0, 0);
	fault(fd, "bounds.just_below_start", R, R + MiB(2) - 1, R, R + MiB(8), 0, 0, 0, 0);
	fault(fd, "bounds.at_start", R, R + MiB(2), R, R + MiB(8), 0, 0, 0, 0);
	fault(fd, "bounds.last_byte", R, R + MiB(4) - 1, R, R + MiB(8), 0, 0, 0, 0);
	/* fault_addr == mm_start + mm_range passes the "> end" check (l.1032) */
	fault(fd, "bounds.at_end", R, R + MiB(4), R, R + MiB(8), 0, 0, 0, 0);
	fault(fd, "bounds.past_end", R, R + MiB(4) + 1, R, R + MiB(8), 0, 0, 0, 0);
	fault(fd, "bounds.above_end", R, R + MiB(6), R, R + MiB(8), 0, 0, 0, 0);
	range_list(fd, "bounds.list", R, R, R + MiB(8));
	has_mapping(fd, "bounds.has_mapping_outside_window", R + MiB(4), R + MiB(6));
	out("bounds.fini: ret=%s", errname(do_fini(fd)));
	close(fd);

	fd = xopen();
	out("bounds.init_range_wraps: ret=%s",
	    errname(do_init(fd, 0, R, UINT64_MAX - 0xfff, MiB(512), xe_chunks, 3)));
	fault(fd, "bounds.range_wraps.fault", R, R + PAGE, R, R + MiB(8), 0, 0, 0, 0);
	fault(fd, "bounds.range_wraps.fault_below", R, R - PAGE, 0, R + MiB(8), 0, 0, 0, 0);
	out("bounds.range_wraps.fini: ret=%s", errname(do_fini(fd)));
	close(fd);

	fd = xopen();
	out("bounds.init_all: ret=%s",
	    errname(do_init(fd, 0, 0, UINT64_MAX, MiB(512), xe_chunks, 3)));
	fault(fd, "bounds.all.top_page", R, UINT64_MAX & ~(PAGE - 1), 0, UINT64_MAX, 0, 0, 0, 0);
	fault(fd, "bounds.all.ulong_max", R, UINT64_MAX, 0, UINT64_MAX, 0, 0, 0, 0);
	fault(fd, "bounds.all.kernel_half", R, 0xffff888000000000ULL, 0, UINT64_MAX, 0, 0, 0, 0);
	fault(fd, "bounds.all.zero", R, 0, 0, UINT64_MAX, 0, 0, 0, 0);
	pr_global(fd, "bounds.all.global");
	fault(fd, "bounds.all.fault", R, R + PAGE, 0, UINT64_MAX, 0, 0, 0, 0);
	has_mapping(fd, "bounds.all.has_mapping_top", UINT64_MAX & ~(PAGE - 1), UINT64_MAX);
	out("bounds.all.fini: ret=%s", errname(do_fini(fd)));
	close(fd);

	fd = xopen();
	out("bounds.init_unsorted_chunks: ret=%s",
	    errname(do_init(fd, 0, 0, TASK_RANGE, MiB(512), chunks_unsorted, 2)));
	fault(fd, "bounds.unsorted.fault", R, R + 5, R, R + MiB(8), 0, 0, 0, 0);
	out("bounds.unsorted.fini: ret=%s", errname(do_fini(fd)));
	close(fd);

	fd = xopen();
	out("bounds.init_only_64k: ret=%s",
	    errname(do_init(fd, 0, 0, TASK_RANGE, MiB(512), chunks_64k, 1)));
	fault(fd, "bounds.only_64k.fault", R, R + MiB(1) + 5, R, R + MiB(8), 0, 0, 0, 0);
	fault(fd, "bounds.only_64k.gpuva_too_small", R, R + MiB(2) + 5, R + MiB(2),
	      R + MiB(2) + KiB(32), 0, 0, 0, 0);
	out("bounds.only_64k.fini: ret=%s", errname(do_fini(fd)));
	close(fd);

	/* notifiers smaller than the largest chunk */
	fd = xopen();
	out("bounds.init_notifier_1m: ret=%s",
	    errname(do_init(fd, 0, 0, TASK_RANGE, MiB(1), xe_chunks, 3)));
	fault(fd, "bounds.notifier_1m.fault_0", R, R + 0x10, R, R + MiB(8), 0, 0, 0, 0);
	fault(fd, "bounds.notifier_1m.fault_1", R, R + MiB(1) + 0x10, R, R + MiB(8), 0, 0, 0, 0);
	fault(fd, "bounds.notifier_1m.fault_2", R, R + MiB(1) + KiB(64), R, R + MiB(8), 0, 0, 0,
	      0);
	range_list(fd, "bounds.notifier_1m.list", R, R, R + MiB(8));
	range_list(fd, "bounds.notifier_1m.list_second", R, R + MiB(1), R + MiB(2));
	has_mapping(fd, "bounds.notifier_1m.has_mapping_across", R + MiB(1) - PAGE,
		    R + MiB(1) + PAGE);
	range_op(fd, GSAT_IOC_REMOVE, "bounds.notifier_1m.remove_0", R, R, 0);
	range_list(fd, "bounds.notifier_1m.list_after_remove", R, R, R + MiB(8));
	pr_global(fd, "bounds.notifier_1m.global");
	out("bounds.notifier_1m.fini: ret=%s", errname(do_fini(fd)));
	pr_global(fd, "bounds.notifier_1m.global_after_fini");
	close(fd);

	fd = xopen();
	out("bounds.init_notifier_4k: ret=%s",
	    errname(do_init(fd, 0, 0, TASK_RANGE, KiB(4), xe_chunks, 3)));
	fault(fd, "bounds.notifier_4k.fault", R, R + MiB(1) + 0x10, R, R + MiB(8), 0, 0, 0, 0);
	get_pages(fd, "bounds.notifier_4k.get_pages", R, R + MiB(1), 0, 0, 0);
	out("bounds.notifier_4k.fini: ret=%s", errname(do_fini(fd)));
	close(fd);

	xmunmap(R, MiB(8));
}

/* VMA kinds: read-only, VM_PFNMAP, shmem, hugetlb, THP. */
static void scenario_vma(void)
{
	uint64_t P = SLOT(3), D = SLOT(3) + MiB(8), S = SLOT(3) + MiB(16), H = SLOT(3) + MiB(32);
	uint64_t T = SLOT(3) + MiB(64);
	int fd = xopen(), fd2 = xopen();

	out("vma.init: ret=%s", errname(init_xe(fd)));
	if (!map_anon(P, MiB(4), PROT_READ, MADV_NOHUGEPAGE))
		return;
	fault(fd, "vma.ro.write_fault", P, P + 5, P, P + MiB(4), 0, 0, 0, 0);
	fault(fd, "vma.ro.read_fault", P, P + 5, P, P + MiB(4), RO, 0, 0, 0);
	get_pages(fd, "vma.ro.get_pages_write", P, P, 0, 0, 0);
	get_pages(fd, "vma.ro.get_pages_read", P, P, RO, 0, 0);
	scan(fd, "vma.ro.scan", P, P);
	fault(fd, "vma.ro.write_fault_existing", P, P + MiB(1), P, P + MiB(4), 0, 0, 0, 0);
	fault(fd, "vma.ro.devmem_possible", P, P + MiB(2), P, P + MiB(4),
	      RO | GSAT_CTX_DEVMEM_POSSIBLE, 0, 0, 0);

	/* VM_IO | VM_PFNMAP: the module's remap_pfn_range mapping */
	if (map_at(D, PAGE, RW, MAP_SHARED, fd2)) {
		fault(fd, "vma.pfnmap.write_fault", D, D, D, D + PAGE, 0, 0, 0, 0);
		fault(fd, "vma.pfnmap.read_fault", D, D, D, D + PAGE, RO, 0, 0, 0);
		range_list(fd, "vma.pfnmap.list", D, D, D + PAGE);
		xmunmap(D, PAGE);
	}

	/* shared anonymous (shmem): not vma_is_anonymous, no migrate_devmem */
	if (map_at(S, MiB(2), RW, MAP_SHARED | MAP_ANONYMOUS, -1)) {
		fill(S, MiB(2), 0);
		fault(fd, "vma.shmem.fault", S, S, S, S + MiB(2), GSAT_CTX_DEVMEM_POSSIBLE, 0, 0, 0);
		get_pages(fd, "vma.shmem.get_pages", S, S, 0, 0, 0);
		scan(fd, "vma.shmem.scan", S, S);
	}

	/* hugetlb (the guest's /init reserves huge pages) */
	if (map_at(H, MiB(2), RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1)) {
		fill(H, MiB(2), 0);
		fault(fd, "vma.hugetlb.fault", H, H + 5, H, H + MiB(2), GSAT_CTX_DEVMEM_POSSIBLE, 0,
		      0, 0);
		get_pages(fd, "vma.hugetlb.get_pages", H, H, 0, 0, 0);
		fault(fd, "vma.hugetlb.fault_64k_gpuva", H, H + 5, H, H + KiB(64), 0, 0, 0, 0);
		xmunmap(H, MiB(2));
		range_op(fd, GSAT_IOC_RANGE_INFO, "vma.hugetlb.after_munmap", H, H, 0);
		gc(fd, "vma.hugetlb.gc");
	} else {
		out("vma.hugetlb: mmap failed");
	}

	/* transparent huge pages: one order-9 dma entry per 2 MiB */
	if (map_anon(T, MiB(4), RW, MADV_HUGEPAGE)) {
		fill(T, MiB(4), 0);
		fault(fd, "vma.thp.fault", T, T + 5, T, T + MiB(4), GSAT_CTX_DEVMEM_POSSIBLE, 0, 0, 0);
		get_pages(fd, "vma.thp.get_pages", T, T, 0, 0, 0);
		fault(fd, "vma.thp.fault_64k", T, T + MiB(2) + KiB(64), T + MiB(2) + KiB(64),
		      T + MiB(2) + KiB(128), 0, 0, 0, 0);
		get_pages(fd, "vma.thp.get_pages_64k", T, T + MiB(2) + KiB(64), 0, 0, 0);
		fault(fd, "vma.thp.fault_4k", T, T + MiB(3) + PAGE, T + MiB(3) + PAGE,
		      T + MiB(3) + 2 * PAGE, 0, 0, 0, 0);
		get_pages(fd, "vma.thp.get_pages_4k", T, T + MiB(3) + PAGE, 0, 0, 0);
		fault(fd, "vma.thp.fault_rest", T, T + MiB(3) + KiB(512), T, T + MiB(4), 0, 0, 0, 0);
		get_pages(fd, "vma.thp.get_pages_rest", T, T + MiB(3) + KiB(512), 0, 0, 0);
		scan(fd, "vma.thp.scan", T, T);
	}
	range_list(fd, "vma.list", SLOT(3), SLOT(3), SLOT(3) + MiB(128));
	out("vma.fini: ret=%s", errname(do_fini(fd)));
	close(fd);
	close(fd2);
	xmunmap(P, MiB(4));
	xmunmap(S, MiB(2));
	xmunmap(T, MiB(4));
}

/* mprotect: invalidation without unmap. */
static void scenario_mprotect(void)
{
	uint64_t M = SLOT(4);
	int fd = xopen();

	if (!map_anon(M, MiB(2), RW, MADV_NOHUGEPAGE))
		return;
	fill(M, MiB(2), 0);
	out("mprotect.init: ret=%s", errname(init_xe(fd)));
	fault(fd, "mprotect.fault", M, M, M, M + MiB(2), 0, 0, 0, 0);
	get_pages(fd, "mprotect.get_pages", M, M, 0, 0, 0);

	xmprotect(M, MiB(2), PROT_READ);
	range_op(fd, GSAT_IOC_RANGE_INFO, "mprotect.ro.info", M, M, 0);
	get_pages(fd, "mprotect.ro.get_pages_write", M, M, 0, 0, 0);
	get_pages(fd, "mprotect.ro.get_pages_read", M, M, RO, 0, 0);
	fault(fd, "mprotect.ro.write_fault_existing", M, M + MiB(1), M, M + MiB(2), 0, 0, 0, 0);

	xmprotect(M, MiB(2), RW);
	range_op(fd, GSAT_IOC_RANGE_INFO, "mprotect.rw.info", M, M, 0);
	get_pages(fd, "mprotect.rw.get_pages", M, M, 0, 0, 0);

	xmprotect(M, KiB(64), PROT_READ);
	range_op(fd, GSAT_IOC_RANGE_INFO, "mprotect.partial.info", M, M, 0);
	get_pages(fd, "mprotect.partial.get_pages_write", M, M, 0, 0, 0);
	get_pages(fd, "mprotect.partial.get_pages_read", M, M, RO, 0, 0);
	range_list(fd, "mprotect.partial.list", M, M, M + MiB(2));
	find_vma_start(fd, "mprotect.partial.find_vma_start", M, M + KiB(32), M + MiB(1));
	find_vma_start(fd, "mprotect.partial.find_vma_start_second", M, M + KiB(64), M + MiB(1));

	xmprotect(M, MiB(2), PROT_NONE);
	range_op(fd, GSAT_IOC_RANGE_INFO, "mprotect.none.info", M, M, 0);
	get_pages(fd, "mprotect.none.get_pages_read", M, M, RO, 0, 0);
	fault(fd, "mprotect.none.write_fault_existing", M, M + MiB(1), M, M + MiB(2), 0, 0, 0, 0);
	fault(fd, "mprotect.none.read_fault_existing", M, M + MiB(1), M, M + MiB(2), RO, 0, 0, 0);
	range_op(fd, GSAT_IOC_EVICT, "mprotect.none.evict", M, M, 0);
	scan(fd, "mprotect.none.scan", M, M);

	xmprotect(M, MiB(2), RW);
	get_pages(fd, "mprotect.restored.get_pages", M, M, 0, 0, 0);
	range_list(fd, "mprotect.list", M, M, M + MiB(2));
	out("mprotect.fini: ret=%s", errname(do_fini(fd)));
	close(fd);
	xmunmap(M, MiB(2));
}

/* munmap: MMU_NOTIFY_UNMAP, unmapped/partial_unmap, the garbage collector. */
static void scenario_munmap(void)
{
	uint64_t X = SLOT(5);
	int fd = xopen();

	if (!map_anon(X, MiB(4), RW, MADV_HUGEPAGE) ||
	    !map_anon(X + MiB(4), MiB(4), RW, MADV_NOHUGEPAGE))
		return;
	fill(X, MiB(8), 0);
	out("munmap.init: ret=%s", errname(init_xe(fd)));
	fault(fd, "munmap.fault_thp", X, X, X, X + MiB(8), 0, 0, 0, 0);
	get_pages(fd, "munmap.get_pages_thp", X, X, 0, 0, 0);
	fault(fd, "munmap.fault_thp_2", X, X + MiB(2), X, X + MiB(4), 0, 0, 0, 0);

	xmunmap(X + MiB(1), KiB(64));
	range_op(fd, GSAT_IOC_RANGE_INFO, "munmap.partial.info", X, X, 0);
	pr_stats(fd, "munmap.partial.stats");
	range_list(fd, "munmap.partial.list", X, X, X + MiB(8));
	fault(fd, "munmap.partial.fault_stale", X, X, X, X + MiB(8), 0, 0, GSAT_F_NO_GC, 0);
	fault(fd, "munmap.partial.fault_hole", X, X + MiB(1), X, X + MiB(8), 0, 0, GSAT_F_NO_GC,
	      0);
	get_pages(fd, "munmap.partial.get_pages", X, X, 0, GSAT_F_NO_GC, 0);
	range_op(fd, GSAT_IOC_EVICT, "munmap.partial.evict", X, X, 0);
	scan(fd, "munmap.partial.scan", X, X);
	has_mapping(fd, "munmap.partial.has_mapping", X, X + MiB(2));
	gc(fd, "munmap.partial.gc");
	range_list(fd, "munmap.partial.list_after_gc", X, X, X + MiB(8));
	has_mapping(fd, "munmap.partial.has_mapping_after_gc", X, X + MiB(2));
	gc(fd, "munmap.partial.gc_again");
	fault(fd, "munmap.partial.refault_low", X, X, X, X + MiB(8), 0, 0, 0, 0);
	fault(fd, "munmap.partial.refault_high", X, X + MiB(1) + KiB(64) + 5, X, X + MiB(8), 0, 0,
	      0, 0);
	get_pages(fd, "munmap.partial.refault_high.get_pages", X, X + MiB(1) + KiB(64), 0, 0, 0);

	/* a whole range */
	fault(fd, "munmap.whole.fault", X, X + MiB(4), X, X + MiB(8), 0, 0, 0, 0);
	get_pages(fd, "munmap.whole.get_pages", X, X + MiB(4), 0, 0, 0);
	xmunmap(X + MiB(4), MiB(2));
	range_op(fd, GSAT_IOC_RANGE_INFO, "munmap.whole.info", X, X + MiB(4), 0);

	/* two ranges at once, and a range without pages */
	fault(fd, "munmap.two.fault_a", X, X + MiB(6), X + MiB(6), X + MiB(6) + KiB(64), 0, 0,
	      GSAT_F_NO_GC, 0);
	fault(fd, "munmap.two.fault_b", X, X + MiB(6) + KiB(64), X + MiB(6) + KiB(64),
	      X + MiB(6) + KiB(128), 0, 0, GSAT_F_NO_GC, 0);
	get_pages(fd, "munmap.two.get_pages_a", X, X + MiB(6), 0, GSAT_F_NO_GC, 0);
	fault(fd, "munmap.two.fault_c", X, X + MiB(7), X, X + MiB(8), 0, 0, GSAT_F_NO_GC, 0);
	xmunmap(X + MiB(6), KiB(128));
	range_list(fd, "munmap.two.list", X, X, X + MiB(8));
	pr_stats(fd, "munmap.two.stats");
	/* the fault handler runs the GC first */
	fault(fd, "munmap.two.fault_after", X, X + MiB(7) + 5, X, X + MiB(8), 0, 0, 0, 0);
	range_list(fd, "munmap.two.list_after", X, X, X + MiB(8));

	/* munmap of everything that is left, fini with queued ranges */
	xmunmap(X + MiB(7), MiB(1));
	xmunmap(X, MiB(1));
	xmunmap(X + MiB(1) + KiB(64), MiB(3) - KiB(64));
	range_list(fd, "munmap.all.list", X, X, X + MiB(8));
	pr_stats(fd, "munmap.all.stats");
	out("munmap.fini: ret=%s", errname(do_fini(fd)));
	pr_stats(fd, "munmap.all.stats_after_fini");
	close(fd);
}

/* fork: the parent's ranges survive (COW write-protection invalidates them), the child
 * has its own mm and its own drm_gpusvm. */
static void scenario_fork(void)
{
	uint64_t F = SLOT(6);
	int fd = xopen(), status = 0;
	pid_t pid;

	if (!map_anon(F, MiB(2), RW, MADV_NOHUGEPAGE))
		return;
	fill(F, MiB(2), 0);
	out("fork.init: ret=%s", errname(init_xe(fd)));
	fault(fd, "fork.fault", F, F, F, F + MiB(2), 0, 0, 0, 0);
	get_pages(fd, "fork.get_pages", F, F, 0, 0, 0);
	fflush(stdout);

	pid = fork();
	if (pid < 0) {
		fail("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		int cfd = xopen();

		checks = 0;
		failures = 0;
		out("fork.child.init: ret=%s", errname(init_xe(cfd)));
		range_list(cfd, "fork.child.list_empty", F, F, F + MiB(2));
		fault(cfd, "fork.child.fault", F, F, F, F + MiB(2), 0, 0, 0, 0);
		get_pages(cfd, "fork.child.get_pages", F, F, 0, 0, 0);
		fill(F, MiB(2), 0x5a5a000);
		range_op(cfd, GSAT_IOC_RANGE_INFO, "fork.child.after_write", F, F, 0x5a5a000);
		out("fork.child.fini: ret=%s", errname(do_fini(cfd)));
		close(cfd);
		fflush(stdout);
		_exit(failures ? 255 : checks);
	}
	if (waitpid(pid, &status, 0) != pid)
		fail("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 255) {
		fail("fork child failed: status 0x%x", status);
	} else {
		checks += WEXITSTATUS(status);
		out("fork.child_exit: status=%d", WEXITSTATUS(status));
	}
	range_op(fd, GSAT_IOC_RANGE_INFO, "fork.parent.info", F, F, 0);
	range_list(fd, "fork.parent.list", F, F, F + MiB(2));
	get_pages(fd, "fork.parent.get_pages", F, F, 0, 0, 0);
	get_pages(fd, "fork.parent.get_pages_child_key", F, F, 0, 0, 0x5a5a000);
	out("fork.fini: ret=%s", errname(do_fini(fd)));
	close(fd);
	xmunmap(F, MiB(2));
}

/* userptr: the simple drm_gpusvm_pages API with the module's own interval notifier. */
static void scenario_userptr(void)
{
	uint64_t Q = SLOT(7), QT = SLOT(7) + MiB(64), QR = SLOT(7) + MiB(128);
	uint64_t Z = SLOT(7) + MiB(32);
	int fd = xopen(), ffd;
	struct gsat_userptr_req r;

	if (!map_anon(Q, MiB(4), RW, MADV_NOHUGEPAGE) || !map_anon(QT, MiB(4), RW, MADV_HUGEPAGE) ||
	    !map_anon(QR, KiB(256), PROT_READ, MADV_NOHUGEPAGE))
		return;
	fill(Q, MiB(4), 0);
	fill(QT, MiB(4), 0);
	out("userptr.init_simple: ret=%s",
	    errname(do_init(fd, GSAT_INIT_MM_NULL | GSAT_INIT_OPS_NULL, 0, 0, 0, NULL, 0)));
	has_mapping(fd, "userptr.has_mapping", Q, Q + MiB(4));
	range_list(fd, "userptr.list", Q, Q, Q + MiB(4));
	fault(fd, "userptr.find_or_insert_simple_mode", Q, Q, Q, Q + MiB(4), 0, 0, 0, 0);
	gc(fd, "userptr.gc");

	up_get(fd, "userptr.get", Q, 0, Q, Q + KiB(256), 0, 0);
	up_get(fd, "userptr.get_again", Q, 0, Q, Q + KiB(256), 0, 0);
	up_op(fd, GSAT_IOC_USERPTR_CHECK, "userptr.check", Q, 0, 0, 0);
	up_op(fd, GSAT_IOC_USERPTR_UNMAP, "userptr.unmap", Q, 0, 0, 0);
	up_op(fd, GSAT_IOC_USERPTR_UNMAP, "userptr.unmap_again", Q, 0, 0, 0);
	up_op(fd, GSAT_IOC_USERPTR_CHECK, "userptr.check_after_unmap", Q, 0, 0, 0);
	up_get(fd, "userptr.get_after_unmap", Q, 0, Q, Q + KiB(256), 0, 0);
	up_get(fd, "userptr.get_devmem_only_valid", Q, 0, Q, Q + KiB(256), GSAT_CTX_DEVMEM_ONLY, 0);
	xmunmap(Q + KiB(64), KiB(64));
	up_op(fd, GSAT_IOC_USERPTR_CHECK, "userptr.check_after_munmap", Q, 0, 0, 0);
	up_get(fd, "userptr.get_after_munmap", Q, 0, Q, Q + KiB(256), 0, 0);
	up_op(fd, GSAT_IOC_USERPTR_CHECK, "userptr.check_after_failed_get", Q, 0, 0, 0);
	up_op(fd, GSAT_IOC_USERPTR_FREE, "userptr.free", Q, 0, 0, 0);
	up_op(fd, GSAT_IOC_USERPTR_FREE, "userptr.free_empty_slot", Q, 0, 0, 0);

	up_get(fd, "userptr.thp.get", QT, 1, QT, QT + MiB(2), 0, 0);
	up_get(fd, "userptr.thp.get_unaligned_span", QT, 2, QT + MiB(2) + KiB(64),
	       QT + MiB(4) - KiB(64), 0, 0);
	up_op(fd, GSAT_IOC_USERPTR_FREE, "userptr.thp.free_twice", QT, 1, GSAT_UP_FREE_TWICE, 0);
	up_op(fd, GSAT_IOC_USERPTR_FREE, "userptr.thp.free_2", QT, 2, 0, 0);

	/* pages_start == pages_end inside a notifier: walk_page_range's -EINVAL */
	r = up_req(fd, GSAT_IOC_USERPTR_GET_PAGES, "userptr.empty", 2, Q + MiB(1),
		   Q + MiB(1) + KiB(64), Q + MiB(1), Q + MiB(1), 0, 0, 0);
	pr_up("userptr.empty", Q, &r, GSAT_IOC_USERPTR_GET_PAGES);
	up_op(fd, GSAT_IOC_USERPTR_FREE, "userptr.empty.free", Q, 2, 0, 0);
	/* pages_end wrapped past ULONG_MAX: npages wraps to 2, walk_page_range's -EINVAL */
	r = up_req(fd, GSAT_IOC_USERPTR_GET_PAGES, "userptr.end_wrapped", 2, Q + MiB(1),
		   Q + MiB(1) + KiB(64), UINT64_MAX & ~(PAGE - 1), PAGE, 0, 0, 0);
	pr_up("userptr.end_wrapped", Q, &r, GSAT_IOC_USERPTR_GET_PAGES);
	up_op(fd, GSAT_IOC_USERPTR_FREE, "userptr.end_wrapped.free", Q, 2, 0, 0);
	/* a sub-span of the notifier */
	r = up_req(fd, GSAT_IOC_USERPTR_GET_PAGES, "userptr.sub_span", 2, Q + MiB(1),
		   Q + MiB(2), Q + MiB(1) + KiB(64), Q + MiB(1) + KiB(128), 0, 0, 0);
	pr_up("userptr.sub_span", Q, &r, GSAT_IOC_USERPTR_GET_PAGES);
	up_op(fd, GSAT_IOC_USERPTR_FREE, "userptr.sub_span.free", Q, 2, 0, 0);
	up_get(fd, "userptr.no_vma", Z, 2, Z, Z + KiB(64), 0, 0);
	up_op(fd, GSAT_IOC_USERPTR_FREE, "userptr.no_vma.free", Z, 2, 0, 0);
	up_get(fd, "userptr.ro.get_write", QR, 3, QR, QR + KiB(64), 0, 0);
	up_op(fd, GSAT_IOC_USERPTR_FREE, "userptr.ro.free", QR, 3, 0, 0);
	up_get(fd, "userptr.ro.get_read", QR, 3, QR, QR + KiB(64), RO, 0);
	up_op(fd, GSAT_IOC_USERPTR_FREE, "userptr.ro.free_2", QR, 3, 0, 0);

	/* mprotect */
	up_get(fd, "userptr.mprotect.get", Q, 0, Q + MiB(2), Q + MiB(2) + KiB(64), 0, 0);
	xmprotect(Q + MiB(2), KiB(64), PROT_READ);
	up_op(fd, GSAT_IOC_USERPTR_CHECK, "userptr.mprotect.check", Q, 0, 0, 0);
	up_get(fd, "userptr.mprotect.get_write", Q, 0, 0, 0, 0, 0);
	up_get(fd, "userptr.mprotect.get_read", Q, 0, 0, 0, RO, 0);
	up_op(fd, GSAT_IOC_USERPTR_CHECK, "userptr.mprotect.check_after_get", Q, 0, 0, 0);
	xmprotect(Q + MiB(2), KiB(64), RW);

	/* fini releases the slots; a finalised drm_gpusvm is not used */
	up_get(fd, "userptr.before_fini.get", Q, 1, Q + MiB(3), Q + MiB(3) + KiB(64), 0, 0);
	out("userptr.fini: ret=%s", errname(do_fini(fd)));
	up_op(fd, GSAT_IOC_USERPTR_CHECK, "userptr.after_fini.check", Q, 1, 0, 0);
	up_get(fd, "userptr.after_fini.get", Q, 1, Q + MiB(3), Q + MiB(3) + KiB(64), 0, 0);
	out("userptr.fini_again: ret=%s", errname(do_fini(fd)));
	close(fd);

	/* both APIs on one full-mode drm_gpusvm */
	ffd = xopen();
	out("userptr.full.init: ret=%s", errname(init_xe(ffd)));
	up_get(ffd, "userptr.full.get", Q, 0, Q + MiB(2), Q + MiB(3), 0, 0);
	fault(ffd, "userptr.full.fault", Q, Q + MiB(2), Q + MiB(2), Q + MiB(4), 0, 0, 0, 0);
	get_pages(ffd, "userptr.full.get_pages", Q, Q + MiB(2), 0, 0, 0);
	xmunmap(Q + MiB(2) + KiB(128), PAGE);
	up_op(ffd, GSAT_IOC_USERPTR_CHECK, "userptr.full.check_after_munmap", Q, 0, 0, 0);
	range_op(ffd, GSAT_IOC_RANGE_INFO, "userptr.full.range_after_munmap", Q, Q + MiB(2), 0);
	gc(ffd, "userptr.full.gc");
	out("userptr.full.fini: ret=%s", errname(do_fini(ffd)));
	close(ffd);

	xmunmap(Q, MiB(4));
	xmunmap(QT, MiB(4));
	xmunmap(QR, KiB(256));
}

/* ops with only .invalidate: drm_gpusvm's own notifier/range allocation. */
static void scenario_minimal(void)
{
	uint64_t B = SLOT(8);
	int fd = xopen();

	if (!map_anon(B, MiB(4), RW, MADV_NOHUGEPAGE))
		return;
	fill(B, MiB(4), 0);
	out("minimal.init: ret=%s",
	    errname(do_init(fd, GSAT_INIT_OPS_MINIMAL, 0, TASK_RANGE, MiB(512), xe_chunks, 3)));
	fault(fd, "minimal.fault", B, B, B, B + MiB(4), 0, 0, 0, 0);
	get_pages(fd, "minimal.get_pages", B, B, 0, 0, 0);
	fault(fd, "minimal.fault_2", B, B + MiB(2), B, B + MiB(4), 0, 0, 0, 0);
	pr_stats(fd, "minimal.stats");
	xmunmap(B + MiB(1), PAGE);
	range_list(fd, "minimal.list_after_munmap", B, B, B + MiB(4));
	gc(fd, "minimal.gc");
	range_list(fd, "minimal.list_after_gc", B, B, B + MiB(4));
	fault(fd, "minimal.refault", B, B, B, B + MiB(4), 0, 0, 0, 0);
	out("minimal.fini: ret=%s", errname(do_fini(fd)));
	close(fd);
	xmunmap(B, MiB(1));
	xmunmap(B + MiB(1) + PAGE, MiB(3) - PAGE);
}

/* ------------------------------------------------------------------ unguarded */

static const char *const ung_names[GSAT_UNG_COUNT] = {
#define N(x) [GSAT_UNG_##x] = #x
	N(INIT_NULL_GPUSVM), N(INIT_FULL_OPS_NULL), N(INIT_FULL_CHUNKS_NULL),
	N(INIT_NOTIFIER_SIZE_NPOT), N(INIT_NOTIFIER_SIZE_ZERO), N(INIT_CHUNK_NPOT),
	N(INIT_CHUNK_LT_PAGE), N(INIT_NUM_CHUNKS_NEGATIVE), N(FINI_NULL),
	N(FINI_TWICE_FULL), N(FIND_OR_INSERT_NULL_GPUSVM), N(FIND_OR_INSERT_NULL_CTX),
	N(FIND_OR_INSERT_SIMPLE_MODE), N(FIND_OR_INSERT_AFTER_FINI),
	N(FIND_VMA_START_NULL_GPUSVM), N(FIND_VMA_START_SIMPLE_MODE),
	N(FIND_VMA_START_AFTER_FINI), N(RANGE_REMOVE_NULL), N(RANGE_REMOVE_TWICE),
	N(RANGE_GET_NULL), N(RANGE_PUT_NULL), N(RANGE_EVICT_NULL), N(RANGE_PAGES_VALID_NULL),
	N(RANGE_PAGES_VALID_UNLOCKED), N(RANGE_GET_PAGES_NULL_RANGE),
	N(RANGE_GET_PAGES_NULL_CTX), N(RANGE_UNMAP_PAGES_NULL_CTX),
	N(RANGE_UNMAP_PAGES_IN_NOTIFIER_UNLOCKED), N(RANGE_SET_UNMAPPED_UNLOCKED),
	N(SCAN_MM_NULL_RANGE), N(HAS_MAPPING_NULL), N(NOTIFIER_FIND_NULL), N(RANGE_FIND_NULL),
	N(GET_PAGES_NULL_GPUSVM), N(GET_PAGES_NULL_PAGES), N(GET_PAGES_NULL_MM),
	N(GET_PAGES_NULL_NOTIFIER), N(GET_PAGES_NULL_CTX), N(GET_PAGES_START_GT_END),
	N(GET_PAGES_UNALIGNED_START), N(GET_PAGES_UNALIGNED_END),
	N(GET_PAGES_NULL_DRM), N(GET_PAGES_AFTER_FINI), N(UNMAP_PAGES_NULL_CTX),
	N(UNMAP_PAGES_NPAGES_TOO_LARGE), N(FREE_PAGES_NULL_GPUSVM),
#undef N
};

/* val: an errno or a bool; an address (offset from G, "none" for ULONG_MAX) or a pointer
 * (0 or "nonzero") for the lookups. */
static const char *ung_val(int c, uint64_t v, uint64_t G)
{
	static char b[32];

	switch (c) {
	case GSAT_UNG_FIND_VMA_START_NULL_GPUSVM:
	case GSAT_UNG_FIND_VMA_START_SIMPLE_MODE:
	case GSAT_UNG_FIND_VMA_START_AFTER_FINI:
		return off(G, v);
	case GSAT_UNG_RANGE_GET_NULL:
	case GSAT_UNG_NOTIFIER_FIND_NULL:
	case GSAT_UNG_RANGE_FIND_NULL:
		return v ? "nonzero" : "0";
	}
	if ((int64_t)v < 0 && (int64_t)v >= -4095)
		return errname((int64_t)v);
	snprintf(b, sizeof(b), "0x%llx", (unsigned long long)v);
	return b;
}

static void run_unguarded(int only)
{
	uint64_t G = SLOT(9);
	int fd = xopen(), c;

	if (!map_anon(G, MiB(4), RW, MADV_NOHUGEPAGE))
		return;
	fill(G, MiB(4), 0);
	for (c = 1; c < GSAT_UNG_COUNT; c++) {
		struct gsat_unguarded_req r = { .ucase = c, .addr = G, .len = MiB(2) };

		if (only && c != only)
			continue;
		fflush(stdout);
		xioctl(fd, GSAT_IOC_UNGUARDED, &r, ung_names[c]);
		out("unguarded.%s: ret=%s val=%s", ung_names[c], errname(r.ret),
		    ung_val(c, r.val, G));
	}
	close(fd);
	xmunmap(G, MiB(4));
}

int main(int argc, char **argv)
{
	int unguarded = 0, only = 0, fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "-u")) {
		unguarded = 1;
		if (argc >= 3) {
			int c;

			only = atoi(argv[2]);
			for (c = 1; !only && c < GSAT_UNG_COUNT; c++)
				if (!strcmp(argv[2], ung_names[c]))
					only = c;
			if (only <= 0 || only >= GSAT_UNG_COUNT) {
				fprintf(stderr, "abi_test: unknown unguarded case %s\n", argv[2]);
				return 2;
			}
		}
	} else if (argc >= 2) {
		fprintf(stderr, "usage: abi_test [-u [CASE]]\n");
		return 2;
	}

	scenario_init();
	scenario_basic();
	scenario_bounds();
	scenario_vma();
	scenario_mprotect();
	scenario_munmap();
	scenario_fork();
	scenario_userptr();
	scenario_minimal();

	fd = xopen();
	pr_global(fd, "end.global");
	close(fd);

	if (unguarded)
		run_unguarded(only);

	if (failures)
		printf("abi: FAILURES=%d\n", failures);
	printf("abi: DONE checks=%d\n", checks);
	return failures ? 1 : 0;
}
