/* SPDX-License-Identifier: GPL-2.0-only */
/* Internet checksum helpers for the headers the data path writes. */
#ifndef AETHER_BPF_CSUM_H
#define AETHER_BPF_CSUM_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The 16-bit word that bytes a, b (in this order in memory) load as. */
static __always_inline __u16 csum_bytes_as_stored(__u8 a, __u8 b)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (__u16)(a | (__u16)b << 8);
#else
	return (__u16)((__u16)a << 8 | b);
#endif
}

/* Sum of 16-bit words as stored (the fold of a sum of native-order loads,
 * stored back natively, is the right checksum on either endianness). */
static __always_inline __u32 csum_add_words(__u32 sum, const void *start,
					    __u32 nwords, const void *end)
{
	const __u16 *w = start;
	int i;

	for (i = 0; i < 64; i++) {
		if (i >= nwords || (const void *)(w + i + 1) > end)
			break;
		sum += w[i];
	}
	return sum;
}

/* Header checksum of a 20-byte IPv4 header (no options). */
static __always_inline void csum_ipv4_hdr(struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;
	int i;

	ip->check = 0;
#pragma unroll
	for (i = 0; i < 10; i++)
		sum += w[i];
	ip->check = csum_fold(sum);
}

#endif /* AETHER_BPF_CSUM_H */
