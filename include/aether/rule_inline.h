/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What the shared rule headers (acl_key.h, ratelimit_rule.h,
 * backend_rule.h, ...) need to compile both as BPF C (clang -target bpf, no
 * libc) and as userspace C: an inline attribute the verifier's callers can
 * rely on, byte order without <arpa/inet.h> or <bpf/bpf_endian.h>, and a
 * 32-bit word that may alias the byte arrays of the map keys. */
#ifndef AETHER_RULE_INLINE_H
#define AETHER_RULE_INLINE_H

#include <linux/types.h>

/* Always inlined: BPF programs here have no BPF-to-BPF calls. */
#define AETH_RULE static inline __attribute__((always_inline))

/* htonl/ntohl for constants and variables alike (the same instructions as
 * bpf_htonl: a byte swap on little-endian targets, nothing otherwise). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define aeth_htonl(x) ((__be32)__builtin_bswap32((__u32)(x)))
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define aeth_htonl(x) ((__be32)(__u32)(x))
#else
#error "aether rules need __BYTE_ORDER__"
#endif

/* A network-order word written over a __u8[] key field (aeth_acl_key.addr):
 * may_alias keeps userspace compilers' strict aliasing out of it. */
typedef __be32 __attribute__((may_alias)) aeth_be32_alias;
/* A host-order word read over a key struct (aeth_ct_key's five words). */
typedef __u32 __attribute__((may_alias)) aeth_u32_alias;

#endif /* AETHER_RULE_INLINE_H */
