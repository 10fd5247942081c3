/* Reading BPF maps whole, as the agent's metrics and aetherctl do: per-CPU
 * values folded into one, and every entry of a map in chunks, batched where
 * the kernel can, by key otherwise. */
#ifndef AETHER_MAP_ITER_H
#define AETHER_MAP_ITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A per-CPU map's value is ncpus copies of round_up(size, 8) bytes each. */
static inline size_t aeth_percpu_stride(size_t size)
{
	return (size + 7) & ~(size_t)7;
}

/* Sum the ncpus per-CPU copies at percpu (aeth_percpu_stride(size) apart) of
 * a value made of u64 counters (size a multiple of 8) into out. out must not
 * overlap the copies. */
void aeth_percpu_fold_u64(const void *percpu, int ncpus, size_t size,
			  void *out);

/* Every entry of a map, a chunk at a time. The rule for all readers: batch
 * lookups (BPF_MAP_LOOKUP_BATCH); when the first batch call says the map or
 * kernel has none (EINVAL, ENOTSUPP, EOPNOTSUPP: LPM tries, old kernels),
 * get_next_key + lookup instead, for the whole pass. ENOENT from either ends
 * the pass; an entry deleted between get_next_key and its lookup is skipped.
 * Any other error is the caller's. */
struct aeth_map_iter {
	int fd;
	size_t key_size, value_size;
	bool started;		/* something was read: the tokens/key are valid */
	bool by_key;		/* no batch support: get_next_key + lookup */
	bool done;		/* the pass reached the end */
	uint64_t elem_flags;	/* of each lookup: 0, or BPF_F_LOCK to copy
				 * values with a bpf_spin_lock under it */
	void *tok_in, *tok_out;	/* batch position, key_size (>= 8) bytes each */
	void *last_key;		/* by_key: the last key read */
};

/* 0 or -ENOMEM. value_size is what one lookup returns (for a per-CPU map
 * ncpus * aeth_percpu_stride(size)). */
int aeth_map_iter_init(struct aeth_map_iter *it, int fd, size_t key_size,
		       size_t value_size);
/* Start a new pass from the first entry. */
void aeth_map_iter_rewind(struct aeth_map_iter *it);
void aeth_map_iter_free(struct aeth_map_iter *it);

/* Read the next entries into keys and values (room for *count of each);
 * *count becomes the number read. Returns 1 when more may follow, 0 when the
 * pass ended (with these *count entries the last; later calls read none),
 * or a negative errno: -ENOSPC when one hash bucket holds more than *count
 * entries (call again with more room), another on a failed read. */
int aeth_map_iter_next(struct aeth_map_iter *it, void *keys, void *values,
		       uint32_t *count);

/* Call fn for every entry of the map, read chunk entries at a time (0:
 * AETH_MAP_CHUNK). fn returns 0 to go on, or a negative errno to stop with
 * it. Returns 0, fn's error, -ENOMEM, or the -errno of a failed read;
 * *fn_stopped (may be NULL) tells whether the error is fn's. */
#define AETH_MAP_CHUNK 4096
typedef int (*aeth_map_entry_fn)(const void *key, const void *value,
				 void *arg);
int aeth_map_foreach(int fd, size_t key_size, size_t value_size,
		     uint32_t chunk, aeth_map_entry_fn fn, void *arg,
		     bool *fn_stopped);

#endif /* AETHER_MAP_ITER_H */
