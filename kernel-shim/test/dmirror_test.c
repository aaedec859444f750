// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace test of a virtual GPU speaking the gpusvm_dmirror ABI against the real kernel:
 * the gpusvm_dmirror device (kernel-shim/dmirror, the core driven directly) or gpusvm_vgpu
 * (kernel-shim/diff, a C driver on the drm_gpusvm API, over upstream's C helper or ours).
 * Every case prints "ok - NAME" or "not ok - NAME: reason"; the last line is
 * "dmirror-test: PASSED n" or "dmirror-test: FAILED f of n".
 *
 *   dmirror_test [-d DEVICE] [-D] [NAME]
 *
 * -d  the device (default /dev/gpusvm_dmirror); cases that need what only gpusvm_vgpu has
 *     (VRAM eviction under pressure, its probes) run only on /dev/gpusvm_vgpu.
 * -D  differential output (kernel-shim/diff): one line per case,
 *     "diff: NAME ok res=..." or "diff: NAME not ok: reason res=...", where res lists the
 *     residency counts the case observed, in order, so that two runs over different
 *     drm_gpusvm implementations can be compared line by line; then "diff: DONE ...".
 *
 * Build: gcc -static -O2 -Wall -I../include -o dmirror_test dmirror_test.c -lpthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpusvm_dmirror.h"
#include "gpusvm_vgpu.h"
#include "vm_util.h"

static long page_size;
static int failures, cases;
static char fail_msg[256];
static const char *device = GPUSVM_DMIRROR_DEVICE;
static int is_vgpu;
/* The residency counts a case observed, for -D. */
static char res_trace[1024];

static void trace(const char *fmt, long v)
{
	size_t used = strlen(res_trace);

	if (used + 24 < sizeof(res_trace))
		snprintf(res_trace + used, sizeof(res_trace) - used, fmt, used ? "," : "", v);
}

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			snprintf(fail_msg, sizeof(fail_msg), __VA_ARGS__);      \
			return -1;                                              \
		}                                                               \
	} while (0)

static int dm_open(void)
{
	int fd = open(device, O_RDWR);

	if (fd < 0) {
		perror(device);
		exit(2);
	}
	return fd;
}

/* Runs one command; returns 0 or -errno. */
static int dm_cmd(int fd, unsigned long req, void *addr, unsigned long npages, void *ptr,
		  struct gpusvm_dmirror_cmd *out)
{
	struct gpusvm_dmirror_cmd cmd = {
		.addr = (uintptr_t)addr,
		.ptr = (uintptr_t)ptr,
		.npages = npages,
	};

	if (ioctl(fd, req, &cmd) < 0)
		return -errno;
	if (out)
		*out = cmd;
	return 0;
}

static int gpu_read(int fd, void *addr, unsigned long npages, void *buf)
{
	return dm_cmd(fd, GPUSVM_DMIRROR_READ, addr, npages, buf, NULL);
}

static int gpu_write(int fd, void *addr, unsigned long npages, void *buf)
{
	return dm_cmd(fd, GPUSVM_DMIRROR_WRITE, addr, npages, buf, NULL);
}

static int migrate_dev(int fd, void *addr, unsigned long npages)
{
	return dm_cmd(fd, GPUSVM_DMIRROR_MIGRATE_TO_DEV, addr, npages, NULL, NULL);
}

static int migrate_sys(int fd, void *addr, unsigned long npages)
{
	return dm_cmd(fd, GPUSVM_DMIRROR_MIGRATE_TO_SYS, addr, npages, NULL, NULL);
}

/* Counts pages of the range whose residency has all bits of `want`. */
static long residency_count(int fd, void *addr, unsigned long npages, unsigned int want)
{
	unsigned char *res = calloc(npages, 1);
	long n = 0;

	if (!res)
		return -1;
	/* One command covers at most GPUSVM_DMIRROR_MAX_PAGES. */
	for (unsigned long i = 0; i < npages; i += GPUSVM_DMIRROR_MAX_PAGES) {
		unsigned long k = npages - i < GPUSVM_DMIRROR_MAX_PAGES ?
				  npages - i : GPUSVM_DMIRROR_MAX_PAGES;

		if (dm_cmd(fd, GPUSVM_DMIRROR_RESIDENCY, (char *)addr + i * page_size, k, res + i,
			   NULL)) {
			free(res);
			return -1;
		}
	}
	for (unsigned long i = 0; i < npages; i++)
		if ((res[i] & want) == want)
			n++;
	free(res);
	trace("%s%ld", n);
	return n;
}

static struct gpusvm_dmirror_stats stats(int fd)
{
	struct gpusvm_dmirror_stats st;

	memset(&st, 0xff, sizeof(st));
	if (ioctl(fd, GPUSVM_DMIRROR_STATS, &st) < 0)
		perror("stats");
	return st;
}

static void *map(void *at, unsigned long npages, int prot, int flags)
{
	void *p = mmap(at, npages * page_size, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* An anonymous mapping aligned to 2 MiB (so ranges of 2 MiB are chosen). */
static void *map_aligned(unsigned long npages)
{
	unsigned long len = npages * page_size, align = 2UL << 20;
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + align - 1) & ~(align - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + len, (p + len + align) - (a + len));
	return a;
}

static void fill(void *p, unsigned long npages, unsigned int seed)
{
	unsigned int *w = p;

	for (unsigned long i = 0; i < npages * page_size / 4; i++)
		w[i] = seed + i;
}

/* Index of the first word that differs from the pattern, or -1. */
static long verify(const void *p, unsigned long npages, unsigned int seed)
{
	const unsigned int *w = p;

	for (unsigned long i = 0; i < npages * page_size / 4; i++)
		if (w[i] != seed + i)
			return i;
	return -1;
}

/* ------------------------------------------------------------------------------------- cases */

static int t_anon_read(void)
{
	int fd = dm_open();
	unsigned long n = 256;
	char *p = map(NULL, n, PROT_READ | PROT_WRITE, 0), *buf = malloc(n * page_size);
	struct gpusvm_dmirror_cmd cmd = { 0 };
	long bad;
	int r;

	CHECK(p && buf, "mmap");
	fill(p, n, 0x1000);
	r = dm_cmd(fd, GPUSVM_DMIRROR_READ, p, n, buf, &cmd);
	CHECK(r == 0, "gpu read: %d", r);
	bad = verify(buf, n, 0x1000);
	CHECK(bad < 0, "gpu read mismatch at word %ld", bad);
	CHECK(cmd.faults > 0, "no GPU fault was taken");
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_GPU_MAPPED) == (long)n,
	      "pages not GPU mapped after the read");
	/* A second read hits the GPU page table: no faults. */
	r = dm_cmd(fd, GPUSVM_DMIRROR_READ, p, n, buf, &cmd);
	CHECK(r == 0 && cmd.faults == 0, "re-read: %d, %llu faults", r,
	      (unsigned long long)cmd.faults);
	munmap(p, n * page_size);
	free(buf);
	close(fd);
	return 0;
}

static int t_anon_write(void)
{
	int fd = dm_open();
	unsigned long n = 256;
	char *p = map(NULL, n, PROT_READ | PROT_WRITE, 0), *buf = malloc(n * page_size);
	long bad;
	int r;

	CHECK(p && buf, "mmap");
	fill(buf, n, 0x2000);
	r = gpu_write(fd, p, n, buf); /* never touched by the CPU */
	CHECK(r == 0, "gpu write: %d", r);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_GPU_WRITE) == (long)n,
	      "pages not GPU mapped writable after the write");
	bad = verify(p, n, 0x2000);
	CHECK(bad < 0, "CPU sees wrong data at word %ld", bad);
	/* CPU writes are seen by the GPU: the CPU write faults invalidate nothing here (same
	 * pages), and the GPU reads the pages it maps. */
	fill(p, n, 0x2100);
	memset(buf, 0, n * page_size);
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0, "gpu read: %d", r);
	bad = verify(buf, n, 0x2100);
	CHECK(bad < 0, "GPU sees wrong data at word %ld", bad);
	munmap(p, n * page_size);
	free(buf);
	close(fd);
	return 0;
}

static int t_anon_read_unpopulated(void)
{
	int fd = dm_open();
	unsigned long n = 64;
	char *p = map(NULL, n, PROT_READ | PROT_WRITE, 0), *buf = malloc(n * page_size);
	int r;

	CHECK(p && buf, "mmap");
	memset(buf, 0xaa, n * page_size);
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0, "gpu read: %d", r);
	for (unsigned long i = 0; i < n * page_size; i++)
		CHECK(buf[i] == 0, "byte %lu is %#x", i, buf[i]);
	munmap(p, n * page_size);
	free(buf);
	close(fd);
	return 0;
}

static int t_write_readonly_vma(void)
{
	int fd = dm_open();
	unsigned long n = 16;
	char *p = map(NULL, n, PROT_READ | PROT_WRITE, 0), *buf = malloc(n * page_size);
	long bad;
	int r;

	CHECK(p && buf, "mmap");
	fill(p, n, 0x3000);
	CHECK(mprotect(p, n * page_size, PROT_READ) == 0, "mprotect");
	fill(buf, n, 0x3100);
	r = gpu_write(fd, p, n, buf);
	CHECK(r == -EPERM, "gpu write to a read-only VMA returned %d, want -EPERM", r);
	bad = verify(p, n, 0x3000);
	CHECK(bad < 0, "read-only memory changed at word %ld", bad);
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0, "gpu read of a read-only VMA: %d", r);
	bad = verify(buf, n, 0x3000);
	CHECK(bad < 0, "gpu read mismatch at word %ld", bad);
	/* The read mapped the pages for the GPU, read-only: the GPU PTEs have no write bit. */
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_GPU_MAPPED) == (long)n,
	      "pages not GPU mapped after the read");
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_GPU_WRITE) == 0,
	      "GPU PTEs of a read-only VMA are writable");
	munmap(p, n * page_size);
	free(buf);
	close(fd);
	return 0;
}

static int t_prot_none(void)
{
	int fd = dm_open();
	unsigned long n = 16;
	char *p = map(NULL, n, PROT_NONE, 0), *buf = malloc(n * page_size);
	int r;

	CHECK(p && buf, "mmap");
	r = gpu_read(fd, p, n, buf);
	CHECK(r == -EFAULT, "gpu read of PROT_NONE returned %d, want -EFAULT", r);
	r = gpu_write(fd, p, n, buf);
	CHECK(r == -EPERM, "gpu write of PROT_NONE returned %d, want -EPERM", r);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_ERROR) == (long)n,
	      "PROT_NONE pages not reported inaccessible");
	/* Made accessible, the same range works. */
	CHECK(mprotect(p, n * page_size, PROT_READ | PROT_WRITE) == 0, "mprotect");
	fill(p, n, 0x4000);
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0, "gpu read after mprotect: %d", r);
	CHECK(verify(buf, n, 0x4000) < 0, "gpu read mismatch");
	/* A hole with no VMA at all. */
	munmap(p, n * page_size);
	r = gpu_read(fd, p, n, buf);
	CHECK(r == -EFAULT, "gpu read of unmapped memory returned %d, want -EFAULT", r);
	free(buf);
	close(fd);
	return 0;
}

static int t_partial_munmap(void)
{
	int fd = dm_open();
	unsigned long n = 1024; /* 4 MiB: two 2 MiB ranges */
	char *p = map_aligned(n), *buf = malloc(n * page_size);
	unsigned long hole = 300, hole_n = 16; /* 64 KiB inside the first range */
	struct gpusvm_dmirror_stats st;
	int r;

	CHECK(p && buf, "mmap");
	fill(p, n, 0x5000);
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0, "gpu read: %d", r);
	st = stats(fd);
	CHECK(st.ranges == 2, "%llu ranges, want 2 (2 MiB each)", (unsigned long long)st.ranges);
	CHECK(munmap(p + hole * page_size, hole_n * page_size) == 0, "munmap");
	st = stats(fd);
	CHECK(st.unmap_events >= 1, "no unmap event reached the driver");
	CHECK(st.ranges == 1, "%llu ranges after the partial munmap, want 1 (the GC removed the "
	      "unmapped one)", (unsigned long long)st.ranges);
	CHECK(residency_count(fd, p, hole, GPUSVM_DMIRROR_PAGE_GPU_MAPPED) == 0,
	      "GPU mappings survive in the partially unmapped range");
	r = gpu_read(fd, p + hole * page_size, hole_n, buf);
	CHECK(r == -EFAULT, "gpu read of the hole returned %d, want -EFAULT", r);
	/* Both sides of the hole are still readable, through new, smaller ranges. */
	r = gpu_read(fd, p, hole, buf);
	CHECK(r == 0 && verify(buf, hole, 0x5000) < 0, "left of the hole: %d", r);
	r = gpu_read(fd, p + (hole + hole_n) * page_size, n - hole - hole_n, buf);
	CHECK(r == 0, "right of the hole: %d", r);
	CHECK(verify(buf, n - hole - hole_n, 0x5000 + (hole + hole_n) * page_size / 4) < 0,
	      "right of the hole: wrong data");
	munmap(p, hole * page_size);
	munmap(p + (hole + hole_n) * page_size, (n - hole - hole_n) * page_size);
	st = stats(fd);
	CHECK(st.ranges == 0 && st.notifiers == 0, "%llu ranges, %llu notifiers left",
	      (unsigned long long)st.ranges, (unsigned long long)st.notifiers);
	free(buf);
	close(fd);
	return 0;
}

static int t_mprotect(void)
{
	int fd = dm_open();
	unsigned long n = 64;
	char *p = map(NULL, n, PROT_READ | PROT_WRITE, 0), *buf = malloc(n * page_size);
	int r;

	CHECK(p && buf, "mmap");
	fill(buf, n, 0x6000);
	r = gpu_write(fd, p, n, buf);
	CHECK(r == 0, "gpu write: %d", r);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_GPU_MAPPED) == (long)n, "not mapped");
	CHECK(mprotect(p, n * page_size, PROT_READ) == 0, "mprotect ro");
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_GPU_MAPPED) == 0,
	      "GPU mappings survive mprotect(PROT_READ)");
	r = gpu_write(fd, p, n, buf);
	CHECK(r == -EPERM, "gpu write after mprotect(PROT_READ) returned %d, want -EPERM", r);
	memset(buf, 0, n * page_size);
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0 && verify(buf, n, 0x6000) < 0, "gpu read of read-only data: %d", r);
	CHECK(mprotect(p, n * page_size, PROT_READ | PROT_WRITE) == 0, "mprotect rw");
	fill(buf, n, 0x6100);
	r = gpu_write(fd, p, n, buf);
	CHECK(r == 0, "gpu write after mprotect(rw): %d", r);
	CHECK(verify(p, n, 0x6100) < 0, "CPU does not see the GPU write");
	munmap(p, n * page_size);
	free(buf);
	close(fd);
	return 0;
}

static int t_fork_cow(void)
{
	int fd = dm_open();
	unsigned long n = 32;
	char *p = map(NULL, n, PROT_READ | PROT_WRITE, 0), *buf = malloc(n * page_size);
	int pipefd[2], status, r;
	pid_t pid;
	char c;

	CHECK(p && buf && pipe(pipefd) == 0, "setup");
	fill(p, n, 0x7000);
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0 && verify(buf, n, 0x7000) < 0, "gpu read before fork: %d", r);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		/* Child: waits for the parent's GPU write first, so that a write through a stale
		 * parent mapping into the shared pages would show here. Then its own GPU VM and the
		 * CPU must both see the pre-fork data; only then does it write, and its GPU write
		 * breaks COW in the child only. */
		int cfd = dm_open(), code = 0;

		close(pipefd[1]);
		if (read(pipefd[0], &c, 1) != 1)
			_exit(10);
		if (verify(p, n, 0x7000) >= 0)
			code = 11; /* CPU sees the parent's write */
		else if (gpu_read(cfd, p, n, buf) || verify(buf, n, 0x7000) >= 0)
			code = 12; /* child's GPU sees the parent's write */
		if (!code) {
			fill(buf, n, 0x7100);
			if (gpu_write(cfd, p, n, buf) || verify(p, n, 0x7100) >= 0)
				code = 13;
			else if (gpu_read(cfd, p, n, buf) || verify(buf, n, 0x7100) >= 0)
				code = 14;
		}
		close(cfd);
		_exit(code);
	}
	close(pipefd[0]);
	/* Parent: fork write-protected its pages (an invalidation); its GPU write must break
	 * COW in the parent, not write into the pages the child shares. */
	fill(buf, n, 0x7200);
	r = gpu_write(fd, p, n, buf);
	CHECK(r == 0, "parent gpu write: %d", r);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_GPU_WRITE) == (long)n,
	      "parent pages not GPU mapped writable after its write");
	CHECK(verify(p, n, 0x7200) < 0, "parent CPU does not see its GPU write");
	CHECK(write(pipefd[1], "x", 1) == 1, "pipe");
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "child saw wrong data (status %#x; 11/12: the parent's write leaked into the child's "
	      "CPU/GPU view, 13/14: the child's own write)", status);
	CHECK(verify(p, n, 0x7200) < 0, "the child's write leaked into the parent");
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0 && verify(buf, n, 0x7200) < 0, "parent gpu read after the child: %d", r);
	close(pipefd[1]);
	munmap(p, n * page_size);
	free(buf);
	close(fd);
	return 0;
}

/* The same with the data in device memory at fork time: fork leaves parent and child sharing
 * read-only device-private entries of the same device pages. For a GPU write, hmm_range_fault
 * reports the device's own pages valid without faulting them, but not writable; the core must
 * refuse to map them writable (EOPNOTSUPP: the driver evicts them to RAM, and the retried write
 * fault breaks COW in RAM). Mapped writable, the parent's GPU write would land in the pages
 * the child shares, and the child's CPU fault would copy it out of device memory. */
static int t_fork_cow_device(void)
{
	int fd = dm_open();
	unsigned long n = 64;
	char *p = map_aligned(n), *buf = malloc(n * page_size);
	int pipefd[2], status, r;
	pid_t pid;
	char c;

	CHECK(p && buf && pipe(pipefd) == 0, "setup");
	fill(p, n, 0x7800);
	r = migrate_dev(fd, p, n);
	CHECK(r == 0, "migrate to device: %d", r);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_DEVICE) == (long)n,
	      "not all pages in device memory");
	/* GPU-mapped (writable, device memory) before the fork. */
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0 && verify(buf, n, 0x7800) < 0, "gpu read before fork: %d", r);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_GPU_WRITE) == (long)n,
	      "device pages not GPU mapped writable before fork");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		/* Child: after the parent's GPU write, the CPU reads (faulting the device pages
		 * back through migrate_to_ram, or reading what eviction moved to RAM): the
		 * pre-fork data. No GPU access before that. */
		close(pipefd[1]);
		if (read(pipefd[0], &c, 1) != 1)
			_exit(10);
		_exit(verify(p, n, 0x7800) >= 0 ? 11 : 0);
	}
	close(pipefd[0]);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_GPU_MAPPED) == 0,
	      "GPU mappings survive fork's write protection");
	fill(buf, n, 0x7900);
	r = gpu_write(fd, p, n, buf);
	CHECK(r == 0, "parent gpu write: %d", r);
	CHECK(write(pipefd[1], "x", 1) == 1, "pipe");
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "child saw wrong data (status %#x; 11: the parent's GPU write reached the child)",
	      status);
	CHECK(verify(p, n, 0x7900) < 0, "parent CPU does not see its GPU write");
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0 && verify(buf, n, 0x7900) < 0, "parent gpu read: %d", r);
	close(pipefd[1]);
	munmap(p, n * page_size);
	free(buf);
	close(fd);
	return 0;
}

static int t_migrate_cpu_readback(void)
{
	int fd = dm_open();
	unsigned long n = 256;
	char *p = map_aligned(n), *buf = malloc(n * page_size);
	struct gpusvm_dmirror_stats st0, st;
	long bad;
	int r;

	CHECK(p && buf, "mmap");
	fill(p, n, 0x8000);
	st0 = stats(fd);
	r = migrate_dev(fd, p, n);
	CHECK(r == 0, "migrate to device: %d", r);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_DEVICE) == (long)n,
	      "not all pages in device memory");
	st = stats(fd);
	CHECK(st.vram_pages_used == st0.vram_pages_used + n, "vram used %llu",
	      (unsigned long long)st.vram_pages_used);
	CHECK(st.pages_to_device >= st0.pages_to_device + n, "copies to device %llu",
	      (unsigned long long)st.pages_to_device);
	/* The GPU reads its own memory... */
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0 && verify(buf, n, 0x8000) < 0, "gpu read of device memory: %d", r);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_DEVICE) == (long)n,
	      "the GPU read moved pages");
	/* ... and writes it. */
	fill(buf, n, 0x8100);
	r = gpu_write(fd, p, n, buf);
	CHECK(r == 0, "gpu write of device memory: %d", r);
	/* The CPU reads back: CPU faults on device pages, served by the core's migrate_to_ram. */
	bad = verify(p, n, 0x8100);
	CHECK(bad < 0, "CPU read back mismatch at word %ld", bad);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_DEVICE) == 0,
	      "pages still in device memory after the CPU read");
	st = stats(fd);
	CHECK(st.pages_to_ram >= st0.pages_to_ram + n, "copies to RAM %llu",
	      (unsigned long long)st.pages_to_ram);
	CHECK(st.vram_pages_used == st0.vram_pages_used && st.devmem_live == st0.devmem_live,
	      "device memory not released: %llu pages, %llu allocations",
	      (unsigned long long)st.vram_pages_used, (unsigned long long)st.devmem_live);
	munmap(p, n * page_size);
	free(buf);
	close(fd);
	return 0;
}

static int t_migrate_to_sys(void)
{
	int fd = dm_open();
	unsigned long n = 128;
	char *p = map(NULL, n, PROT_READ | PROT_WRITE, 0), *buf = malloc(n * page_size);
	int r;

	CHECK(p && buf, "mmap");
	fill(p, n, 0x9000);
	r = migrate_dev(fd, p, n);
	CHECK(r == 0, "migrate to device: %d", r);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_DEVICE) == (long)n, "not on device");
	r = migrate_sys(fd, p, n);
	CHECK(r == 0, "migrate to system: %d", r);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_DEVICE) == 0, "still on device");
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_PRESENT) == (long)n, "pages lost");
	CHECK(verify(p, n, 0x9000) < 0, "data changed");
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0 && verify(buf, n, 0x9000) < 0, "gpu read: %d", r);
	CHECK(stats(fd).vram_pages_used == 0, "device memory not released");
	munmap(p, n * page_size);
	free(buf);
	close(fd);
	return 0;
}

static int t_munmap_migrated(void)
{
	int fd = dm_open();
	unsigned long n = 256;
	char *p = map(NULL, n, PROT_READ | PROT_WRITE, 0), *buf = malloc(n * page_size);
	struct gpusvm_dmirror_stats st;
	int r;

	CHECK(p && buf, "mmap");
	fill(p, n, 0xa000);
	r = gpu_read(fd, p, n, buf); /* GPU-mapped first, then migrated */
	CHECK(r == 0, "gpu read: %d", r);
	r = migrate_dev(fd, p, n);
	CHECK(r == 0, "migrate: %d", r);
	/* The migration's invalidation unmapped the GPU's system-memory pages. */
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_DEVICE) == (long)n, "not on device");
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_GPU_MAPPED) == 0,
	      "GPU mappings of the migrated pages survive");
	st = stats(fd);
	CHECK(st.vram_pages_used == n, "vram used %llu", (unsigned long long)st.vram_pages_used);
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0 && verify(buf, n, 0xa000) < 0, "gpu read of migrated memory: %d", r);
	CHECK(munmap(p, n * page_size) == 0, "munmap");
	st = stats(fd);
	CHECK(st.vram_pages_used == 0 && st.devmem_live == 0,
	      "munmap left %llu device pages, %llu allocations",
	      (unsigned long long)st.vram_pages_used, (unsigned long long)st.devmem_live);
	CHECK(st.ranges == 0, "%llu ranges left", (unsigned long long)st.ranges);
	free(buf);
	close(fd);
	return 0;
}

static int t_evict(void)
{
	int fd = dm_open();
	unsigned long n = 512;
	char *p = map_aligned(n), *buf = malloc(n * page_size);
	int r;

	CHECK(p && buf, "mmap");
	fill(p, n, 0xb000);
	r = migrate_dev(fd, p, n);
	CHECK(r == 0, "migrate: %d", r);
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0 && verify(buf, n, 0xb000) < 0, "gpu read: %d", r);
	/* Device eviction (drm_pagemap_evict_to_ram), with live GPU mappings. */
	r = ioctl(fd, GPUSVM_DMIRROR_EVICT) < 0 ? -errno : 0;
	CHECK(r == 0, "evict: %d", r);
	CHECK(stats(fd).vram_pages_used == 0, "device memory still used");
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_DEVICE) == 0, "still on device");
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_GPU_MAPPED) == 0,
	      "GPU mappings of evicted pages survive");
	CHECK(verify(p, n, 0xb000) < 0, "data changed by eviction");
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0 && verify(buf, n, 0xb000) < 0, "gpu read after eviction: %d", r);
	munmap(p, n * page_size);
	free(buf);
	close(fd);
	return 0;
}

static int t_repeated_map_unmap(void)
{
	int fd = dm_open();
	unsigned long n = 64;
	char *at = map(NULL, n, PROT_READ | PROT_WRITE, 0), *buf = malloc(n * page_size);
	struct gpusvm_dmirror_stats st;
	int r;

	CHECK(at && buf, "mmap");
	munmap(at, n * page_size);
	for (unsigned int it = 0; it < 40; it++) {
		char *p = map(at, n, PROT_READ | PROT_WRITE, MAP_FIXED);

		CHECK(p == at, "iteration %u: mmap", it);
		fill(p, n, it << 20);
		r = gpu_read(fd, p, n, buf);
		CHECK(r == 0, "iteration %u: gpu read %d", it, r);
		CHECK(verify(buf, n, it << 20) < 0, "iteration %u: the GPU saw stale data", it);
		if (it % 4 == 1) {
			r = migrate_dev(fd, p, n);
			CHECK(r == 0, "iteration %u: migrate %d", it, r);
		}
		fill(buf, n, (it << 20) | 0x80000);
		r = gpu_write(fd, p, n, buf);
		CHECK(r == 0, "iteration %u: gpu write %d", it, r);
		CHECK(verify(p, n, (it << 20) | 0x80000) < 0, "iteration %u: CPU read back", it);
		if (it % 4 == 3) {
			r = migrate_dev(fd, p, n);
			CHECK(r == 0, "iteration %u: migrate before munmap %d", it, r);
		}
		CHECK(munmap(p, n * page_size) == 0, "iteration %u: munmap", it);
	}
	st = stats(fd);
	CHECK(st.ranges == 0 && st.notifiers == 0 && st.vram_pages_used == 0,
	      "left %llu ranges, %llu notifiers, %llu device pages",
	      (unsigned long long)st.ranges, (unsigned long long)st.notifiers,
	      (unsigned long long)st.vram_pages_used);
	free(buf);
	close(fd);
	return 0;
}


static int t_thp(void)
{
	int fd = dm_open();
	unsigned long n = 512;
	char *p = map_aligned(n), *buf = malloc(n * page_size);
	struct gpusvm_dmirror_stats st;
	int r;

	CHECK(p && buf, "mmap");
	CHECK(madvise(p, n * page_size, MADV_HUGEPAGE) == 0, "madvise(MADV_HUGEPAGE)");
	fill(p, n, 0xc000); /* first touch: a 2 MiB transparent huge page */
	r = gpu_read(fd, p, n, buf);
	CHECK(r == 0 && verify(buf, n, 0xc000) < 0, "gpu read: %d", r);
	st = stats(fd);
	CHECK(st.mapped_pages == n, "%llu pages mapped", (unsigned long long)st.mapped_pages);
	/* Without a huge page there is nothing to prove: fail rather than pass silently. */
	CHECK(anon_huge_kb(p) == 2048, "no transparent huge page was allocated (AnonHugePages "
	      "%ld kB): the order-9 mapping could not be checked", anon_huge_kb(p));
	CHECK(st.dma_entries == 1,
	      "a 2 MiB huge page took %llu DMA entries, want 1 (one order-9 mapping)",
	      (unsigned long long)st.dma_entries);
	fill(buf, n, 0xc100);
	r = gpu_write(fd, p, n, buf);
	CHECK(r == 0 && verify(p, n, 0xc100) < 0, "gpu write: %d", r);
	/* migrate_vma splits the huge page; the data must survive the round trip. */
	r = migrate_dev(fd, p, n);
	CHECK(r == 0, "migrate: %d", r);
	CHECK(residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_DEVICE) == (long)n, "not on device");
	CHECK(verify(p, n, 0xc100) < 0, "CPU read back after migration");
	munmap(p, n * page_size);
	free(buf);
	close(fd);
	return 0;
}

struct race {
	int fd;
	char *p;
	unsigned long n;
	volatile int stop;
	unsigned long migrations, cpu_reads;
	/*
	 * Held by the discarding thread for the whole madvise(MADV_DONTNEED), and by the main
	 * thread while the CPU reads back the GPU's data. A discard in flight has cleared the
	 * page table and ended its MMU-notifier invalidation, so the GPU's next fault already maps
	 * a fresh page; but it flushes the CPU TLBs only at its end (tlb_finish_mmu), so until then
	 * another CPU can still read the discarded page through its TLB and see the data written
	 * before the discard. That is the kernel's behaviour for any madvise racing an access, not
	 * a stale GPU mapping, and the read-back must not run inside that window. With the lock,
	 * the CPU's own earlier data in the read-back can only come from a GPU write that went
	 * to a page the CPU no longer maps.
	 */
	pthread_mutex_t discard_lock;
};

static void *race_discard(void *arg)
{
	struct race *r = arg;

	while (!r->stop) {
		pthread_mutex_lock(&r->discard_lock);
		madvise(r->p, r->n * page_size, MADV_DONTNEED);
		pthread_mutex_unlock(&r->discard_lock);
		usleep(50);
	}
	return NULL;
}

static void *race_migrate(void *arg)
{
	struct race *r = arg;

	while (!r->stop) {
		if (migrate_dev(r->fd, r->p, r->n) == 0)
			r->migrations++;
		/* CPU reads fault device pages back through migrate_to_ram. */
		for (unsigned long i = 0; i < r->n; i += 7)
			r->cpu_reads += ((volatile char *)r->p)[i * page_size];
		usleep(50);
	}
	return NULL;
}

/* Result of a check in the race loop that found wrong data (errors are negative errnos). */
#define RACE_MISMATCH 1
/* The page of the last mismatch. */
static unsigned long race_bad_page;

/* Every word of the npages at `w` is either 0 (the page was discarded, possibly in the middle
 * of being written, and the rest went to a fresh zero page) or its value in the fill(seed)
 * pattern. Returns RACE_MISMATCH with fail_msg set otherwise. */
static int race_check(const unsigned int *w, unsigned long npages, unsigned int seed,
		      const char *what, unsigned int it)
{
	for (unsigned long i = 0; i < npages * page_size / 4; i++)
		if (w[i] != 0 && w[i] != seed + i) {
			race_bad_page = i / (page_size / 4);
			snprintf(fail_msg, sizeof(fail_msg),
				 "iteration %u: %s: page %lu word %lu is %#x, want %#x or 0", it,
				 what, i / (page_size / 4), i % (page_size / 4), w[i],
				 (unsigned int)(seed + i));
			return RACE_MISMATCH;
		}
	return 0;
}

/* GPU reads and writes racing with munmap-like discards, migrations and CPU faults. Every
 * access must complete, and each direction is checked against data written by the other
 * side, so that a stale GPU mapping (a PTE left pointing at a page the CPU no longer maps)
 * shows: the CPU writes a fresh pattern and the GPU must read it (a stale PTE reads the
 * previous iteration's data, or a freed page); the GPU writes a fresh pattern and the CPU
 * must read it. Zero words are allowed (a discard may land at any point), data of another
 * iteration never, and the CPU's read-back waits for no discard to be in flight (see
 * `struct race`). */
static int t_concurrent_invalidation(void)
{
	int fd = dm_open();
	unsigned long n = 64;
	char *p = map(NULL, n, PROT_READ | PROT_WRITE, 0);
	unsigned int *buf = malloc(n * page_size), *back = malloc(n * page_size);
	struct race rc = { .fd = fd, .p = p, .n = n, .discard_lock = PTHREAD_MUTEX_INITIALIZER };
	pthread_t t1, t2;
	struct gpusvm_dmirror_stats st;
	int r = 0;

	CHECK(p && buf && back, "mmap");
	if (is_vgpu) {
		struct gpusvm_vgpu_trace tr = {
			.op = GPUSVM_VGPU_TRACE_START, .addr = (uintptr_t)p, .len = n * page_size,
		};

		ioctl(fd, GPUSVM_VGPU_TRACE, &tr);
	}
	CHECK(pthread_create(&t1, NULL, race_discard, &rc) == 0, "pthread_create");
	CHECK(pthread_create(&t2, NULL, race_migrate, &rc) == 0, "pthread_create");
	for (unsigned int it = 0; it < 150 && r == 0; it++) {
		/* Seeds never produce a zero word, and differ between iterations and sides. */
		unsigned int cpu_seed = (2 * it + 1) << 20, gpu_seed = (2 * it + 2) << 20;

		/* CPU writes, GPU reads. */
		fill(p, n, cpu_seed);
		r = gpu_read(fd, p, n, back);
		if (r)
			break;
		r = race_check(back, n, cpu_seed, "GPU read of CPU data", it);
		if (r)
			break;
		/* GPU writes, CPU reads. */
		fill(buf, n, gpu_seed);
		r = gpu_write(fd, p, n, buf);
		if (r)
			break;
		pthread_mutex_lock(&rc.discard_lock);
		memcpy(back, p, n * page_size);
		pthread_mutex_unlock(&rc.discard_lock);
		r = race_check(back, n, gpu_seed, "CPU read of GPU data", it);
	}
	rc.stop = 1;
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	if (is_vgpu) {
		/* On a mismatch, the trace of the wrong page goes to the kernel log. */
		struct gpusvm_vgpu_trace tr = {
			.op = r == RACE_MISMATCH ? GPUSVM_VGPU_TRACE_DUMP : GPUSVM_VGPU_TRACE_STOP,
			.addr = (uintptr_t)p + race_bad_page * page_size,
		};

		ioctl(fd, GPUSVM_VGPU_TRACE, &tr);
		tr.op = GPUSVM_VGPU_TRACE_STOP;
		ioctl(fd, GPUSVM_VGPU_TRACE, &tr);
	}
	if (r == RACE_MISMATCH)
		return -1;
	CHECK(r == 0, "gpu access failed under races: %d", r);
	/* Quiet again: the mirror must be exact. */
	fill(p, n, 0xd000);
	r = gpu_read(fd, p, n, back);
	CHECK(r == 0 && verify(back, n, 0xd000) < 0, "final gpu read: %d", r);
	st = stats(fd);
	CHECK(st.invalidations > 0, "no invalidations");
	printf("# concurrent_invalidation: %llu invalidations, %lu migrations\n",
	       (unsigned long long)st.invalidations, rc.migrations);
	munmap(p, n * page_size);
	free(buf);
	free(back);
	close(fd);
	return 0;
}

static int t_all_device_memory_free(void)
{
	int fd = dm_open();
	struct gpusvm_dmirror_stats st = stats(fd);

	CHECK(st.vram_pages_used == 0 && st.devmem_live == 0,
	      "%llu device pages and %llu allocations still in use",
	      (unsigned long long)st.vram_pages_used, (unsigned long long)st.devmem_live);
	/* gpusvm_vgpu cannot count the DMA mappings drm_gpusvm makes (GPUSVM_VGPU_DMA_UNTRACKED). */
	CHECK(st.dma_mappings == 0 || (is_vgpu && st.dma_mappings == GPUSVM_VGPU_DMA_UNTRACKED),
	      "%llu DMA mappings leaked", (unsigned long long)st.dma_mappings);
	close(fd);
	return 0;
}

/* VRAM full: a migration evicts the least recently migrated allocation (TTM eviction through
 * drm_pagemap_evict_to_ram), and no data is lost on the way. Needs a device that evicts
 * (gpusvm_vgpu; gpusvm_dmirror refuses with -ENOMEM instead). */
static int t_evict_under_pressure(void)
{
	int fd = dm_open();
	struct gpusvm_dmirror_stats st = stats(fd);
	unsigned long vram = st.vram_pages, block = 512, n = vram + block;
	char *p = map_aligned(n), *buf = malloc(block * page_size);
	unsigned long i;
	long on_dev;
	int r;

	CHECK(p && buf && vram >= 2 * block && st.vram_pages_used == 0, "setup");
	fill(p, n, 0xe000);
	/* Fill VRAM exactly, oldest allocation first. */
	for (i = 0; i < vram; i += block) {
		r = migrate_dev(fd, p + i * page_size, block);
		CHECK(r == 0, "migrate block %lu: %d", i / block, r);
	}
	CHECK(residency_count(fd, p, vram, GPUSVM_DMIRROR_PAGE_DEVICE) == (long)vram,
	      "VRAM not full");
	/* One more block: the first one must go back to RAM. */
	r = migrate_dev(fd, p + vram * page_size, block);
	CHECK(r == 0, "migrate under pressure: %d", r);
	CHECK(residency_count(fd, p + vram * page_size, block, GPUSVM_DMIRROR_PAGE_DEVICE) ==
	      (long)block, "the new block is not in VRAM");
	CHECK(residency_count(fd, p, block, GPUSVM_DMIRROR_PAGE_DEVICE) == 0,
	      "the oldest block was not evicted");
	on_dev = residency_count(fd, p, n, GPUSVM_DMIRROR_PAGE_DEVICE);
	CHECK(on_dev == (long)vram, "%ld pages in VRAM, want %lu", on_dev, vram);
	st = stats(fd);
	CHECK(st.vram_pages_used == vram, "vram used %llu", (unsigned long long)st.vram_pages_used);
	/* The evicted block, the GPU's view of the new one, and the CPU's of everything. */
	r = gpu_read(fd, p, block, buf);
	CHECK(r == 0 && verify(buf, block, 0xe000) < 0, "gpu read of the evicted block: %d", r);
	r = gpu_read(fd, p + vram * page_size, block, buf);
	CHECK(r == 0 && verify(buf, block, 0xe000 + vram * page_size / 4) < 0,
	      "gpu read of the new block: %d", r);
	CHECK(verify(p, n, 0xe000) < 0, "data lost on the way");
	munmap(p, n * page_size);
	free(buf);
	st = stats(fd);
	CHECK(st.vram_pages_used == 0 && st.devmem_live == 0, "munmap left %llu pages, %llu "
	      "allocations", (unsigned long long)st.vram_pages_used,
	      (unsigned long long)st.devmem_live);
	close(fd);
	return 0;
}

/* A process that exits with data in device memory and GPU mappings, without unmapping or
 * closing anything: its device memory must all come back. */
static int t_process_exit(void)
{
	int fd = dm_open(), status;
	struct gpusvm_dmirror_stats st0 = stats(fd), st;
	pid_t pid = fork();

	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		int cfd = dm_open();
		unsigned long n = 256;
		char *p = map_aligned(n), *buf = malloc(n * page_size);

		if (!p || !buf)
			_exit(10);
		fill(p, n, 0xf000);
		if (migrate_dev(cfd, p, n))
			_exit(11);
		if (gpu_read(cfd, p, n, buf) || verify(buf, n, 0xf000) >= 0)
			_exit(12);
		if (stats(cfd).vram_pages_used < n)
			_exit(13);
		_exit(0);	/* cfd, p and the GPU VM go with the process */
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed (status %#x)", status);
	st = stats(fd);
	CHECK(st.vram_pages_used == st0.vram_pages_used && st.devmem_live == st0.devmem_live,
	      "the exited process left %llu device pages, %llu allocations",
	      (unsigned long long)(st.vram_pages_used - st0.vram_pages_used),
	      (unsigned long long)(st.devmem_live - st0.devmem_live));
	close(fd);
	return 0;
}

/* Upstream bug: drm_pagemap_migrate_to_devmem documents that it consumes the allocation's
 * reference even on error, but returns -EOPNOTSUPP for missing copy ops without calling
 * devmem_release (docs/upstream-bugs.md). gpusvm_vgpu only. */
static int t_probe_migrate_missing_ops(void)
{
	int fd = dm_open();
	unsigned long n = 16;
	char *p = map(NULL, n, PROT_READ | PROT_WRITE, 0);
	struct gpusvm_vgpu_probe pr = { .kind = GPUSVM_VGPU_PROBE_MIGRATE_MISSING_OPS };
	struct gpusvm_dmirror_stats st;

	CHECK(p, "mmap");
	fill(p, n, 0xf800);
	pr.addr = (uintptr_t)p;
	pr.len = n * page_size;
	CHECK(ioctl(fd, GPUSVM_VGPU_PROBE, &pr) == 0, "probe: %d", -errno);
	trace("%sret%ld", pr.ret);
	CHECK(pr.ret == -EOPNOTSUPP, "migrate returned %lld, want -EOPNOTSUPP", (long long)pr.ret);
	CHECK(pr.released && !pr.leaked, "the failed migration did not release its allocation "
	      "(devmem_release not called: leaked)");
	CHECK(verify(p, n, 0xf800) < 0, "data changed");
	st = stats(fd);
	CHECK(st.vram_pages_used == 0 && st.devmem_live == 0, "%llu pages, %llu allocations left",
	      (unsigned long long)st.vram_pages_used, (unsigned long long)st.devmem_live);
	munmap(p, n * page_size);
	close(fd);
	return 0;
}

struct test {
	const char *name;
	int (*fn)(void);
	int vgpu_only;
};

static const struct test tests[] = {
	{ "anon_read", t_anon_read, 0 },
	{ "anon_write", t_anon_write, 0 },
	{ "anon_read_unpopulated", t_anon_read_unpopulated, 0 },
	{ "write_readonly_vma_eperm", t_write_readonly_vma, 0 },
	{ "prot_none", t_prot_none, 0 },
	{ "partial_munmap", t_partial_munmap, 0 },
	{ "mprotect", t_mprotect, 0 },
	{ "fork_cow", t_fork_cow, 0 },
	{ "fork_cow_device", t_fork_cow_device, 0 },
	{ "migrate_to_device_cpu_readback", t_migrate_cpu_readback, 0 },
	{ "migrate_to_system", t_migrate_to_sys, 0 },
	{ "munmap_migrated", t_munmap_migrated, 0 },
	{ "evict", t_evict, 0 },
	{ "repeated_map_unmap", t_repeated_map_unmap, 0 },
	{ "thp", t_thp, 0 },
	{ "concurrent_invalidation", t_concurrent_invalidation, 0 },
	{ "evict_under_pressure", t_evict_under_pressure, 1 },
	{ "process_exit", t_process_exit, 0 },
	{ "probe_migrate_missing_ops", t_probe_migrate_missing_ops, 1 },
	{ "all_device_memory_free", t_all_device_memory_free, 0 },
};

int main(int argc, char **argv)
{
	const char *only = NULL;
	int diff = 0, opt;

	while ((opt = getopt(argc, argv, "d:D")) != -1) {
		switch (opt) {
		case 'd':
			device = optarg;
			break;
		case 'D':
			diff = 1;
			break;
		default:
			fprintf(stderr, "usage: %s [-d DEVICE] [-D] [NAME]\n", argv[0]);
			return 2;
		}
	}
	if (optind < argc)
		only = argv[optind];
	is_vgpu = strcmp(device, GPUSVM_VGPU_DEVICE) == 0;
	page_size = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		if (only && strcmp(only, tests[i].name))
			continue;
		if (tests[i].vgpu_only && !is_vgpu)
			continue;
		struct timespec t0, t1;
		double secs;
		int r;

		fail_msg[0] = 0;
		res_trace[0] = 0;
		cases++;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = tests[i].fn();
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (r)
			failures++;
		if (diff)
			printf("diff: %s %s%s%s res=%s\n", tests[i].name, r ? "not ok" : "ok",
			       r ? ": " : "", r ? fail_msg : "", res_trace[0] ? res_trace : "-");
		else if (r == 0)
			printf("ok - %s (%.2fs)\n", tests[i].name, secs);
		else
			printf("not ok - %s: %s\n", tests[i].name, fail_msg);
	}
	if (diff)
		printf("diff: DONE cases=%d failed=%d\n", cases, failures);
	else if (failures)
		printf("dmirror-test: FAILED %d of %d\n", failures, cases);
	else
		printf("dmirror-test: PASSED %d\n", cases);
	return failures ? 1 : 0;
}
