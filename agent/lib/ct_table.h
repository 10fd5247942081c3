/* The connection table (aeth_ct) as userspace reads and writes it: a key's
 * bucket and slot (include/aether/ct_table.h), whole buckets copied under
 * their lock (BPF_F_LOCK), and the table's seed. For aetherctl, the
 * agent's loader, the tests and the benchmarks; the data path writes the
 * table itself (bpf/conntrack.h). */
#ifndef AETHER_CT_TABLE_LIB_H
#define AETHER_CT_TABLE_LIB_H

#include <stdint.h>
#include "aether/abi.h"

struct aeth_ct_table {
	int fd;
	uint32_t nbuckets;	/* the array's size, a power of two */
	uint32_t seed;		/* bucket 0's */
};

/* Read the size and the seed of the table at fd. 0 or -errno (-EINVAL:
 * not a table of buckets of this build, or a size not a power of two). */
int aeth_ct_table_open(struct aeth_ct_table *t, int fd);

/* Give the table at fd a random seed when it has none (a table just
 * created): before the program sees a packet, as every entry's bucket
 * depends on it. 0 or -errno. */
int aeth_ct_table_seed(int fd);

/* The entry of key: 0, -ENOENT, or -errno. */
int aeth_ct_table_get(const struct aeth_ct_table *t,
		      const struct aeth_ct_key *key, struct aeth_ct_entry *e);
/* Write the entry of key where the data path would (its own slot, a free
 * one, or the least recently seen); a seen_s of 0 is stored as 1. Not
 * atomic with the data path's own writes to the bucket: for tests and
 * tools. 0 or -errno. */
int aeth_ct_table_put(const struct aeth_ct_table *t,
		      const struct aeth_ct_key *key,
		      const struct aeth_ct_entry *e);
/* Free the slot of key: 0, -ENOENT, or -errno. */
int aeth_ct_table_del(const struct aeth_ct_table *t,
		      const struct aeth_ct_key *key);

/* Call fn for every entry, buckets read in batches, each copied under its
 * lock. fn returns 0 to go on or a negative errno to stop with it.
 * Returns 0, fn's error, -ENOMEM, or the -errno of a failed read. */
typedef int (*aeth_ct_entry_fn)(const struct aeth_ct_key *key,
				const struct aeth_ct_entry *e, void *arg);
int aeth_ct_table_foreach(const struct aeth_ct_table *t, aeth_ct_entry_fn fn,
			  void *arg);

/* The number of entries (-errno on a failed read). */
long aeth_ct_table_count(const struct aeth_ct_table *t);

#endif /* AETHER_CT_TABLE_LIB_H */
