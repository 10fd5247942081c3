/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The authorized-networks rule (the per-service ACL tries and aeth_decap):
 * how a packet's source becomes an LPM trie key, which sources are refused
 * before any lookup, and what a hit is worth; and how a listed prefix is
 * keyed. Shared by the data path (bpf/guard.h) and aetherctl (explain,
 * acl list), so they cannot drift. */
#ifndef AETHER_ACL_KEY_H
#define AETHER_ACL_KEY_H

#include <stdbool.h>
#include <linux/types.h>
#include "abi.h"
#include "rule_inline.h"

/* An IPv6 source inside ::ffff:0:0/96 would be judged by the IPv4 entries of
 * the shared trie; such addresses never appear on the wire legitimately, so
 * they are refused without a lookup. */
AETH_RULE bool aeth_acl_v4_mapped(const struct aeth_flow *flow)
{
	return flow->family == AETH_AF_INET6 && flow->src.v6[0] == 0 &&
	       flow->src.v6[1] == 0 && flow->src.v6[2] == aeth_htonl(0x0000ffff);
}

/* The trie key of the flow's source as a host: IPv4 as ::ffff:a.b.c.d
 * (prefix 128 either way, the agent stores IPv4 prefixes as prefixlen + 96). */
AETH_RULE void aeth_acl_host_key(struct aeth_acl_key *key,
				 const struct aeth_flow *flow)
{
	aeth_be32_alias *w = (aeth_be32_alias *)key->addr;

	key->prefixlen = 128;
	if (flow->family == AETH_AF_INET) {
		w[0] = 0;
		w[1] = 0;
		w[2] = aeth_htonl(0x0000ffff);
		w[3] = flow->src.v4;
	} else {
		w[0] = flow->src.v6[0];
		w[1] = flow->src.v6[1];
		w[2] = flow->src.v6[2];
		w[3] = flow->src.v6[3];
	}
}

/* Whether the trie's answer admits the flow's source: listed_family is the
 * value found under aeth_acl_host_key (the family of the listed prefix), or
 * NULL on a miss. An IPv6 prefix short enough to cover ::ffff:0:0/96 (::/0
 * for "every IPv6 source") must not admit IPv4 sources; a longer IPv4 prefix
 * that covers the source always wins the longest match over it. */
AETH_RULE bool aeth_acl_hit_admits(const __u32 *listed_family,
				   const struct aeth_flow *flow)
{
	if (!listed_family)
		return false;
	return !(*listed_family == AETH_AF_INET6 &&
		 flow->family == AETH_AF_INET);
}

/* What a trie entry (key, valued listed_family) says about IPv4 sources,
 * for the agent's compiled form of a list (aeth_acl_rng): false when it
 * covers none. Otherwise [*first, *last] (host order) are the IPv4 sources
 * it covers and *admits whether it lets in a source whose longest match it
 * is; longer key->prefixlen wins. An entry inside ::ffff:0:0/96 covers the
 * IPv4 prefix it stores; a shorter one covering ::ffff:0:0/96 (an IPv6
 * prefix such as ::/0) covers every IPv4 source, at a length below any
 * entry of the first kind. */
AETH_RULE bool aeth_acl_key_v4_span(const struct aeth_acl_key *key,
				    __u32 listed_family, __u32 *first,
				    __u32 *last, bool *admits)
{
	static const __u8 mapped[12] = { [10] = 0xff, [11] = 0xff };
	struct aeth_flow v4 = { .family = AETH_AF_INET };
	__u32 len = key->prefixlen, bits, a, mask;
	__u32 i;

	if (len > 128)
		return false;
	/* the first min(len, 96) bits must be those of ::ffff:0:0 */
	bits = len < 96 ? len : 96;
	for (i = 0; i < bits; i++) {
		__u8 m = 0x80 >> (i % 8);

		if ((key->addr[i / 8] ^ mapped[i / 8]) & m)
			return false;
	}
	*admits = aeth_acl_hit_admits(&listed_family, &v4);
	if (len <= 96) {
		*first = 0;
		*last = ~0u;
		return true;
	}
	a = (__u32)key->addr[12] << 24 | (__u32)key->addr[13] << 16 |
	    (__u32)key->addr[14] << 8 | key->addr[15];
	mask = len == 128 ? ~0u : ~(~0u >> (len - 96));
	*first = a & mask;
	*last = *first | ~mask;
	return true;
}

/* The trie key of a listed prefix (the agent's side; the value stored
 * with it is family): IPv4 a.b.c.d/len as ::ffff:a.b.c.d/(len + 96). The
 * key is written whole, padding included. */
AETH_RULE void aeth_acl_prefix_key(struct aeth_acl_key *key, __u8 family,
				   const union aeth_addr *addr, __u32 prefixlen)
{
	aeth_be32_alias *w = (aeth_be32_alias *)key->addr;

	if (family == AETH_AF_INET) {
		w[0] = 0;
		w[1] = 0;
		w[2] = aeth_htonl(0x0000ffff);
		w[3] = addr->v4;
		key->prefixlen = prefixlen + 96;
	} else {
		w[0] = addr->v6[0];
		w[1] = addr->v6[1];
		w[2] = addr->v6[2];
		w[3] = addr->v6[3];
		key->prefixlen = prefixlen;
	}
}

/* The prefix a trie entry lists (key, with its value listed_family), back
 * as family, address and length: the inverse of aeth_acl_prefix_key. */
AETH_RULE void aeth_acl_key_prefix(const struct aeth_acl_key *key,
				   __u32 listed_family, __u8 *family,
				   union aeth_addr *addr, __u32 *prefixlen)
{
	const aeth_be32_alias *w = (const aeth_be32_alias *)key->addr;

	if (listed_family != AETH_AF_INET6 && key->prefixlen >= 96 &&
	    w[0] == 0 && w[1] == 0 && w[2] == aeth_htonl(0x0000ffff)) {
		*family = AETH_AF_INET;
		addr->v6[0] = w[3];
		addr->v6[1] = 0;
		addr->v6[2] = 0;
		addr->v6[3] = 0;
		*prefixlen = key->prefixlen - 96;
	} else {
		*family = AETH_AF_INET6;
		addr->v6[0] = w[0];
		addr->v6[1] = w[1];
		addr->v6[2] = w[2];
		addr->v6[3] = w[3];
		*prefixlen = key->prefixlen;
	}
}

#endif /* AETHER_ACL_KEY_H */
