/* The compiled IPv4 form of an authorized-networks list (aeth_acl_rng):
 * the IPv4 sources the list's trie admits, as sorted, disjoint, merged
 * intervals. Pure: the agent's apply (apply_inner.c) and the data path
 * harness (tests/harness) both build and store it here, from the trie's
 * entries, and aetherctl acl list builds it to check the stored one. */
#ifndef AETHER_ACL_COMPILE_H
#define AETHER_ACL_COMPILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aether/abi.h"

/* One entry of a list's trie: its key and value (the listed family). */
struct aeth_acl_entry {
	struct aeth_acl_key key;
	uint32_t family;
};

/* An interval of the compiled form: first << 32 | last, host order. */
static inline uint64_t aeth_acl_rng(uint32_t first, uint32_t last)
{
	return (uint64_t)first << 32 | last;
}

/* The IPv4 sources that a trie holding e[0..n) admits, with the trie's
 * longest-prefix match and its rule (aether/acl_key.h), as intervals in
 * *out (malloc'ed, *n_out of them; NULL when none). The entries are taken
 * in the order they were written: of two equal keys, the later value is
 * the trie's. 0 or -ENOMEM. */
int aeth_acl_compile_v4(const struct aeth_acl_entry *e, size_t n,
			uint64_t **out, size_t *n_out);

/* The directory's size for n intervals (aeth_acl_rng_at.dir_bits): 0 for
 * none (fewer than AETH_ACL_DIR_MIN), else about two blocks per interval,
 * at most 2^AETH_ACL_DIR_MAX_BITS. */
uint32_t aeth_acl_dir_bits(size_t n);

/* How many entries of aeth_acl_rng the slot described by at owns: its
 * intervals and its directory. */
static inline uint64_t aeth_acl_rng_span(const struct aeth_acl_rng_at *at)
{
	uint64_t span = at->count;

	if ((at->flags & AETH_ACL_RNG_F_DIR) && at->dir_bits &&
	    at->dir_bits <= AETH_ACL_DIR_MAX_BITS)
		span += 1ull << at->dir_bits;
	return span;
}

/* The region a compiled list occupies in aeth_acl_rng: the intervals
 * r[0..n), then their directory when n calls for one. Sets at's count,
 * flags (AETH_ACL_RNG_F_COMPILED, and _DIR) and dir_bits, not its offset;
 * *region (malloc'ed, aeth_acl_rng_span(at) entries; NULL when empty).
 * 0 or -ENOMEM. */
int aeth_acl_rng_region(const uint64_t *r, size_t n,
			struct aeth_acl_rng_at *at, uint64_t **region);

/* Where a region of span entries for slot goes in aeth_acl_rng (capacity
 * cap): the lowest offset clear of every other slot's region in
 * idx[0..n_slots) (the index, aeth_acl_rngidx; a slot owns its region
 * while it is compiled). The slot's own old region is free: the slot is
 * not in use while it is rewritten. 0 with *offset set, or -ENOSPC. */
int aeth_acl_rng_place(const struct aeth_acl_rng_at *idx, uint32_t n_slots,
		       uint32_t slot, uint64_t span, uint32_t cap,
		       uint32_t *offset);

/* Places the region described by at for slot (sets at->offset) as
 * aeth_acl_rng_place does; when the region does not fit with its
 * directory, drops the directory (its flag and dir_bits) and places the
 * intervals alone, which are the region's first at->count entries. 0 or
 * -ENOSPC. */
int aeth_acl_rng_fit(const struct aeth_acl_rng_at *idx, uint32_t n_slots,
		     uint32_t slot, uint32_t cap, struct aeth_acl_rng_at *at);

/* The region of r[0..n) placed for slot (aeth_acl_rng_fit, with the
 * index idx[0..n_slots) and capacity cap) and written straight into the
 * array rng: *at is the slot's index entry, to be written after. 0 or
 * -ENOSPC (nothing written). */
int aeth_acl_rng_store(const uint64_t *r, size_t n,
		       const struct aeth_acl_rng_at *idx, uint32_t n_slots,
		       uint32_t slot, uint32_t cap, uint64_t *rng,
		       struct aeth_acl_rng_at *at);

/* Whether the intervals r[0..n) hold addr (host order), by the data path's
 * binary search (bpf/guard.h guard_ranges_answer), for tests and tools. */
bool aeth_acl_rng_holds(const uint64_t *r, size_t n, uint32_t addr);

/* Whether a region built by aeth_acl_rng_region for at holds addr, by the
 * data path's steps: the directory's entry for addr's block, then the
 * search among that block's intervals. */
bool aeth_acl_region_holds(const uint64_t *region,
			   const struct aeth_acl_rng_at *at, uint32_t addr);

#endif /* AETHER_ACL_COMPILE_H */
