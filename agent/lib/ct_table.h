/* The connection table (aeth_ct) as userspace reads and writes it: a key's
 * bucket and slot (include/aether/ct_table.h), whole buckets copied under
 * their lock (BPF_F_LOCK), and the table's seed. For aetherctl, the
 * agent's loader, the tests and the benchmarks; the data path writes the
 * table itself (bpf/conntrack.h). */
#ifndef AETHER_CT_TABLE_LIB_H
#define AETHER_CT_TABLE_LIB_H

#include <stddef.h>
#include <stdint.h>
#include "aether/abi.h"

struct bpf_map;

struct aeth_ct_table {
	int fd;
	uint32_t nbuckets;	/* the array's size, a power of two */
	uint32_t seed;		/* bucket 0's */
	uint64_t *filter;	/* aeth_ct_bloom mapped, or NULL */
	size_t filter_len;
};

/* Read the size and the seed of the table at fd and, for a writer, map its
 * filter at filter_fd (-1: a reader, which does not need it). 0 or -errno
 * (-EINVAL: not a table of buckets of this build, a size not a power of
 * two, or a filter of another shape or smaller than the table). Undone by
 * aeth_ct_table_close. */
int aeth_ct_table_open(struct aeth_ct_table *t, int fd, int filter_fd);
void aeth_ct_table_close(struct aeth_ct_table *t);

/* Size the table and its filter (before the object is loaded): nbuckets
 * buckets, a power of two (aeth_ct_buckets_for). 0 or -errno. */
int aeth_ct_table_set_size(struct bpf_map *table, struct bpf_map *filter,
			   uint32_t nbuckets);

/* Give the table at fd a random seed when it has none (a table just
 * created): before the program sees a packet, as every entry's bucket
 * depends on it. 0 or -errno. */
int aeth_ct_table_seed(int fd);

/* The entry of key: 0, -ENOENT, or -errno. */
int aeth_ct_table_get(const struct aeth_ct_table *t,
		      const struct aeth_ct_key *key, struct aeth_ct_entry *e);
/* Write the entry of key where the data path would (its own slot, a free
 * one, or the one its bucket gives up: aeth_ct_victim), confirmed as
 * e->confirmed says, and its filter bits; a seen_s of 0 is stored as 1.
 * Not atomic with the data path's own writes to the bucket: for tests and
 * tools. 0 or -errno (-EBADF: opened without the filter;
 * -EBUSY: the data path is filling a slot of the bucket). */
int aeth_ct_table_put(const struct aeth_ct_table *t,
		      const struct aeth_ct_key *key,
		      const struct aeth_ct_entry *e);
/* Free the slot of key: 0, -ENOENT, or -errno. Its filter bits stay (a
 * bit without an entry costs a reader the bucket's read, nothing else). */
int aeth_ct_table_del(const struct aeth_ct_table *t,
		      const struct aeth_ct_key *key);

/* Call fn for every entry, buckets read in batches, each copied under its
 * lock (which orders it with userspace's writes, not the data path's: a
 * slot caught mid-write, whose key does not hash to its bucket under its
 * word's tag, is left out). fn returns 0 to go on or a negative errno to
 * stop with it.
 * Returns 0, fn's error, -ENOMEM, or the -errno of a failed read. */
typedef int (*aeth_ct_entry_fn)(const struct aeth_ct_key *key,
				const struct aeth_ct_entry *e, void *arg);
int aeth_ct_table_foreach(const struct aeth_ct_table *t, aeth_ct_entry_fn fn,
			  void *arg);

/* Set the filter bits of every entry: for a table pinned by a build
 * without this filter, whose entries have none (and of entries a program
 * of such a build wrote since). Only sets bits, atomically, so the data
 * path may run. 0 or -errno (-EBADF: opened without the filter). */
int aeth_ct_table_fill_filter(const struct aeth_ct_table *t);

/* Bucket idx's filter bits (the low AETH_CT_FILTER_BITS; all of them
 * when the table was opened without its filter). */
uint64_t aeth_ct_table_filter_of(const struct aeth_ct_table *t, uint32_t idx);

/* The bucket of key, and its tag into *tag. */
uint32_t aeth_ct_table_bucket_of(const struct aeth_ct_table *t,
				 const struct aeth_ct_key *key, uint32_t *tag);

/* The number of entries (-errno on a failed read). */
long aeth_ct_table_count(const struct aeth_ct_table *t);

#endif /* AETHER_CT_TABLE_LIB_H */
