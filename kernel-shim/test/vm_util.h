/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the user-space test programs (dmirror_test.c, vgpu_bench.c). */
#ifndef GPUSVM_TEST_VM_UTIL_H
#define GPUSVM_TEST_VM_UTIL_H

#include <stdint.h>
#include <stdio.h>

/* AnonHugePages (kB) of the mapping that starts at p, from /proc/self/smaps; -1 if unknown. */
static inline long anon_huge_kb(void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[256];
	int in = 0;
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;

		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			in = start == (uintptr_t)p;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

#endif
