/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The seeded flow hash that indexes Maglev tables. Shared verbatim by the data
 * path and by aetherctl explain, so both pick the same backend. */
#ifndef AETHER_FLOW_HASH_H
#define AETHER_FLOW_HASH_H

#include "abi.h"
#include "rule_inline.h"

AETH_RULE __u32 aeth_rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

/* One murmur3 mixing round. */
AETH_RULE __u32 aeth_hash_round(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51u;
	k = aeth_rotl32(k, 15);
	k *= 0x1b873593u;
	h ^= k;
	h = aeth_rotl32(h, 13);
	return h * 5 + 0xe6546b64u;
}

AETH_RULE __u32 aeth_hash_final(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* Hash of (src, dst, sport, dport, proto) keyed by the cluster seed. The
 * words are read in network byte order as stored, so the result does not
 * depend on the host's endianness beyond the load itself (x86 and BPF on x86
 * agree). An IPv4 flow mixes its four words, not the ten of the IPv6 form
 * (whose six others are zero for it): each round is a link of one chain of
 * multiplies, and the six saved are 15-25 ns of a packet that picks by
 * Maglev (docs/bench.md). Every node must run the same hash, as the same seed
 * (docs/deploy.md, "Upgrades"). */
AETH_RULE __u32 aeth_flow_hash(const struct aeth_flow *f, const __u32 seed[4])
{
	__u32 h = aeth_hash_round(seed[0] ^ seed[2], f->src.v6[0] ^ seed[1]);
	__u32 len = 16;

	if (f->family == AETH_AF_INET) {
		h = aeth_hash_round(h, f->dst.v6[0] ^ seed[3]);
	} else {
		h = aeth_hash_round(h, f->src.v6[1]);
		h = aeth_hash_round(h, f->src.v6[2]);
		h = aeth_hash_round(h, f->src.v6[3] ^ seed[3]);
		h = aeth_hash_round(h, f->dst.v6[0]);
		h = aeth_hash_round(h, f->dst.v6[1]);
		h = aeth_hash_round(h, f->dst.v6[2]);
		h = aeth_hash_round(h, f->dst.v6[3]);
		len = 40;
	}
	h = aeth_hash_round(h, ((__u32)f->sport << 16) | f->dport);
	h = aeth_hash_round(h, ((__u32)f->proto << 8) | f->family);
	return aeth_hash_final(h ^ len);
}

/* The slot of a Maglev table of size entries that hash picks: the hash's
 * share of 2^32 scaled to the table (a multiply and a shift), as even as
 * hash % size, without the division, which cost a new flow 4-5 ns in the
 * data path (docs/bench.md). Part of what every node must agree on, like
 * the hash (docs/deploy.md, "Upgrades"). */
AETH_RULE __u32 aeth_maglev_slot(__u32 hash, __u32 size)
{
	return (__u32)(((__u64)hash * size) >> 32);
}

#endif /* AETHER_FLOW_HASH_H */
