// SPDX-License-Identifier: GPL-2.0-only
/* A wait for the BPF programs running now. The apply writes what packets
 * read in an order that keeps every packet's view whole (docs/guard.md),
 * but a packet that read an entry a moment before it changed keeps using
 * what it read: a removal must wait until such packets are done. The
 * kernel gives userspace that wait with map-in-map updates: after an
 * update of an array or hash of maps succeeds, bpf(2) returns only once
 * an RCU grace period has passed (kernel/bpf/syscall.c,
 * maybe_wait_bpf_programs), that is once every non-sleepable program that
 * was running (XDP ones are) has returned. A private array of one map,
 * updated once, is such an update; nothing reads it. */
#include <errno.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "prog_barrier.h"

int aeth_wait_running_programs(void)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts);
	int inner, outer, ret = 0;
	__u32 zero = 0;

	inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aeth_barrier_in",
			       sizeof(__u32), sizeof(__u32), 1, NULL);
	if (inner < 0)
		return -errno;
	opts.inner_map_fd = inner;
	outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "aeth_barrier",
			       sizeof(__u32), sizeof(__u32), 1, &opts);
	if (outer < 0)
		ret = -errno;
	else if (bpf_map_update_elem(outer, &zero, &inner, BPF_ANY))
		ret = -errno;
	if (outer >= 0)
		close(outer);
	close(inner);
	return ret;
}
