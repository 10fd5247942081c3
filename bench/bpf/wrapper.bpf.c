// SPDX-License-Identifier: GPL-2.0-only
/* Benchmark wrapper: BPF_PROG_TEST_RUN with repeat reuses one buffer, so this
 * program puts the input frame back before every iteration, then tail-calls
 * the program under test (aether_lb, or bench_empty for the floor). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define BENCH_MAX_FRAME 256

/* bench_frame[0]: the input frame, written by the benchmark. */
#include "wrapper_vary.h"

struct bench_frame {
	__u32 len;
	__u32 vary_off;		/* 0: none; else a 32-bit word made distinct */
	__u32 vary_base;	/* host order; becomes vary_base + (seq << shift) */
	__u32 vary_shift;	/* 16 to vary the high half (a source port);
				 * BENCH_VARY_SCATTER: vary_base + seq * an odd
				 * constant, scattered over the word's range;
				 * BENCH_VARY_CYCLE(k): 2^k values in turn */
	__u8 bytes[BENCH_MAX_FRAME];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_frame);
} bench_frame SEC(".maps");

/* Per-CPU iteration counter for vary_off. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_seq SEC(".maps");

/* [0]: the program under test. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_prog SEC(".maps");

SEC("xdp")
int bench_wrap(struct xdp_md *ctx)
{
	__u32 zero = 0, cur, n, *seq, word;
	struct bench_frame *f;

	f = bpf_map_lookup_elem(&bench_frame, &zero);
	if (!f)
		return XDP_ABORTED;
	/* undo whatever head adjustment (encap, decap) the last run made */
	cur = ctx->data_end - ctx->data;
	n = f->len;
	if (n < 14 || n > BENCH_MAX_FRAME)
		return XDP_ABORTED;
	if (cur != n && bpf_xdp_adjust_head(ctx, (int)cur - (int)n))
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, f->bytes, n))
		return XDP_ABORTED;
	if (f->vary_off) {
		seq = bpf_map_lookup_elem(&bench_seq, &zero);
		if (!seq)
			return XDP_ABORTED;
		++*seq;
		cur = *seq;
		if (f->vary_shift & BENCH_VARY_CYCLE(0))
			cur &= (1u << BENCH_VARY_CYCLE_BITS(f->vary_shift)) - 1;
		if (f->vary_shift & BENCH_VARY_SCATTER)	/* spread over 2^32 */
			word = f->vary_base + cur * 2654435761u;
		else
			word = f->vary_base + (cur << (f->vary_shift & 31));
		word = bpf_htonl(word);
		if (bpf_xdp_store_bytes(ctx, f->vary_off & 0xff, &word, 4))
			return XDP_ABORTED;
	}
	bpf_tail_call(ctx, &bench_prog, 0);
	return XDP_ABORTED;
}

/* The floor: nothing but the verdict. */
SEC("xdp")
int bench_empty(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
