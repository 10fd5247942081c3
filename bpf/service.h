/* SPDX-License-Identifier: GPL-2.0-only */
/* Service lookup: is an address a VIP, and which service owns
 * (vip, port, proto), with port 0 as the wildcard. */
#ifndef AETHER_BPF_SERVICE_H
#define AETHER_BPF_SERVICE_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aether/abi.h"
#include "maps.h"

static __always_inline bool svc_is_vip(const union aeth_addr *addr, __u8 family)
{
	struct aeth_vip_key k;

	__builtin_memset(&k, 0, sizeof(k));
	k.addr = *addr;
	k.family = family;
	return bpf_map_lookup_elem(&aeth_vip, &k) != NULL;
}

static __always_inline struct aeth_svc *
svc_lookup(const union aeth_addr *vip, __u8 family, __be16 port, __u8 proto)
{
	struct aeth_svc_key k;
	struct aeth_svc *svc;

	__builtin_memset(&k, 0, sizeof(k));
	k.vip = *vip;
	k.family = family;
	k.port = port;
	k.proto = proto;
	svc = bpf_map_lookup_elem(&aeth_svc, &k);
	if (svc)
		return svc;
	k.port = 0;
	return bpf_map_lookup_elem(&aeth_svc, &k);
}

#endif /* AETHER_BPF_SERVICE_H */
