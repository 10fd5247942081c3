/* SPDX-License-Identifier: GPL-2.0-only */
/* How the benchmark wrapper (wrapper.bpf.c) varies a word of the frame
 * each iteration: flags in bench_frame.vary_shift, shared with
 * bench/cost_bench.c, which writes them. */
#ifndef AETHER_BENCH_WRAPPER_VARY_H
#define AETHER_BENCH_WRAPPER_VARY_H

/* vary_base + seq * an odd constant, scattered over the word's range */
#define BENCH_VARY_SCATTER 0x100u
/* seq taken modulo 2^k, so the word takes 2^k values in turn (that many
 * flows, each seen again every 2^k runs) */
#define BENCH_VARY_CYCLE(k) (0x200u | (unsigned int)(k) << 24)
#define BENCH_VARY_CYCLE_BITS(shift) (((shift) >> 24) & 31)

#endif /* AETHER_BENCH_WRAPPER_VARY_H */
