#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "aether/ct_table.h"
#include "ct_table.h"
#include "map_iter.h"

/* Buckets read per batch call: 64 KiB. */
#define CT_BATCH 256

static int bucket_read(int fd, uint32_t idx, struct aeth_ct_bucket *b)
{
	return bpf_map_lookup_elem_flags(fd, &idx, b, BPF_F_LOCK) ? -errno : 0;
}

static int bucket_write(int fd, uint32_t idx, const struct aeth_ct_bucket *b)
{
	return bpf_map_update_elem(fd, &idx, b, BPF_F_LOCK) ? -errno : 0;
}

/* Map the filter at fd (an array of 64-bit words, AETH_CT_FILTER_PER_WORD
 * buckets in each, enough for the table's nbuckets). */
static int filter_map(struct aeth_ct_table *t, int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	long page = sysconf(_SC_PAGESIZE);
	void *m;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (info.type != BPF_MAP_TYPE_ARRAY ||
	    info.value_size != sizeof(uint64_t) ||
	    !(info.map_flags & BPF_F_MMAPABLE) ||
	    info.max_entries < aeth_ct_filter_words(t->nbuckets))
		return -EINVAL;
	t->filter_len = ((size_t)info.max_entries * sizeof(uint64_t) + page -
			 1) / page * page;
	m = mmap(NULL, t->filter_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 0);
	if (m == MAP_FAILED) {
		t->filter_len = 0;
		return -errno;
	}
	t->filter = m;
	return 0;
}

int aeth_ct_table_open(struct aeth_ct_table *t, int fd, int filter_fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	struct aeth_ct_bucket b;
	int ret;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (info.type != BPF_MAP_TYPE_ARRAY ||
	    info.value_size != sizeof(struct aeth_ct_bucket) ||
	    !info.max_entries || (info.max_entries & (info.max_entries - 1)))
		return -EINVAL;
	ret = bucket_read(fd, 0, &b);
	if (ret)
		return ret;
	t->nbuckets = info.max_entries;
	t->seed = b.seed;
	if (filter_fd >= 0) {
		ret = filter_map(t, filter_fd);
		if (ret)
			return ret;
	}
	t->fd = fd;
	return 0;
}

void aeth_ct_table_close(struct aeth_ct_table *t)
{
	if (t->filter)
		munmap(t->filter, t->filter_len);
	t->filter = NULL;
	t->filter_len = 0;
}

int aeth_ct_table_set_size(struct bpf_map *table, struct bpf_map *filter,
			   uint32_t nbuckets)
{
	int ret = bpf_map__set_max_entries(table, nbuckets);

	return ret ? ret : bpf_map__set_max_entries(
				   filter, aeth_ct_filter_words(nbuckets));
}

int aeth_ct_table_seed(int fd)
{
	struct aeth_ct_bucket b;
	uint32_t seed = 0;
	int ret = bucket_read(fd, 0, &b);

	if (ret || b.seed)
		return ret;
	while (!seed)
		if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
			return -errno;
	b.seed = seed;
	return bucket_write(fd, 0, &b);
}

uint32_t aeth_ct_table_bucket_of(const struct aeth_ct_table *t,
				 const struct aeth_ct_key *key, uint32_t *tag)
{
	uint32_t h = aeth_ct_hash(key, t->seed);

	*tag = aeth_ct_tag(h);
	return aeth_ct_bucket_at(h, t->nbuckets);
}

/* Read key's bucket into *b (its index into *idx): key's slot, -ENOENT
 * when it has none, or -errno. */
static int bucket_slot_of(const struct aeth_ct_table *t,
			  const struct aeth_ct_key *key,
			  struct aeth_ct_bucket *b, uint32_t *idx)
{
	uint32_t tag;
	int ret, i;

	*idx = aeth_ct_table_bucket_of(t, key, &tag);
	ret = bucket_read(t->fd, *idx, b);
	if (ret)
		return ret;
	i = aeth_ct_slot_of(b, key, tag);
	return i < 0 ? -ENOENT : i;
}

int aeth_ct_table_get(const struct aeth_ct_table *t,
		      const struct aeth_ct_key *key, struct aeth_ct_entry *e)
{
	struct aeth_ct_bucket b;
	uint32_t idx;
	int i = bucket_slot_of(t, key, &b, &idx);

	if (i < 0)
		return i;
	*e = aeth_ct_word_entry(b.slot[i].word);
	return 0;
}

/* Set bits in bucket idx's filter word: atomically, as the data path
 * may rewrite the word at the same time. */
static void filter_set(const struct aeth_ct_table *t, uint32_t idx,
		       uint64_t bits)
{
	__atomic_fetch_or(&t->filter[aeth_ct_filter_word_of(idx)],
			  bits << aeth_ct_filter_shift_of(idx),
			  __ATOMIC_SEQ_CST);
}

int aeth_ct_table_put(const struct aeth_ct_table *t,
		      const struct aeth_ct_key *key,
		      const struct aeth_ct_entry *e)
{
	struct aeth_ct_bucket b;
	uint32_t tag, idx = aeth_ct_table_bucket_of(t, key, &tag);
	int ret, i;
	bool own;

	/* an entry without its filter bits would be missed by the data path */
	if (!t->filter)
		return -EBADF;
	if (e->backend_id > AETH_CT_WORD_BACKEND)
		return -ERANGE;
	ret = bucket_read(t->fd, idx, &b);
	if (ret)
		return ret;
	i = aeth_ct_victim(&b, key, tag, &own);
	if (i < 0)	/* the data path is filling a slot of the bucket */
		return -EBUSY;
	b.key[i] = *key;
	b.slot[i].word = aeth_ct_word(e->backend_id, tag,
				      e->seen_s ? e->seen_s : 1, e->confirmed);
	/* the bits before the entry, like the data path */
	filter_set(t, idx, aeth_ct_filter_bits(tag));
	return bucket_write(t->fd, idx, &b);
}

int aeth_ct_table_del(const struct aeth_ct_table *t,
		      const struct aeth_ct_key *key)
{
	struct aeth_ct_bucket b;
	uint32_t idx;
	int i = bucket_slot_of(t, key, &b, &idx);

	if (i < 0)
		return i;
	b.slot[i].word = 0;
	return bucket_write(t->fd, idx, &b);
}

/* Whether a slot copied from bucket idx holds what a reader may take: a
 * key of that bucket under the word's tag. The data path writes without
 * the lock that orders our copy (include/aether/ct_table.h), so a copy
 * can catch a slot mid-write, its word from before and its key from
 * after; that slot is left out of this pass, as a lookup racing the write
 * would miss it. */
static bool slot_consistent(const struct aeth_ct_table *t, uint32_t idx,
			    const struct aeth_ct_key *key, __u64 w)
{
	__u32 h = aeth_ct_hash(key, t->seed);

	return aeth_ct_bucket_at(h, t->nbuckets) == idx &&
	       aeth_ct_tag(h) == aeth_ct_word_tag(w);
}

int aeth_ct_table_foreach(const struct aeth_ct_table *t, aeth_ct_entry_fn fn,
			  void *arg)
{
	struct aeth_ct_bucket *bs = calloc(CT_BATCH, sizeof(*bs));
	uint32_t keys[CT_BATCH];
	struct aeth_map_iter it;
	int more = 1, ret = 0;

	if (!bs || aeth_map_iter_init(&it, t->fd, sizeof(keys[0]),
				      sizeof(*bs))) {
		free(bs);
		return -ENOMEM;
	}
	it.elem_flags = BPF_F_LOCK;	/* each bucket whole, under its lock */
	while (more > 0 && !ret) {
		uint32_t n = CT_BATCH;

		more = aeth_map_iter_next(&it, keys, bs, &n);
		if (more < 0)
			ret = more;
		for (uint32_t j = 0; j < n && !ret; j++)
			for (int i = 0; i < AETH_CT_WAYS && !ret; i++) {
				__u64 w = bs[j].slot[i].word;
				struct aeth_ct_entry e = aeth_ct_word_entry(w);

				if (e.seen_s && slot_consistent(t, keys[j],
								&bs[j].key[i], w))
					ret = fn(&bs[j].key[i], &e, arg);
			}
	}
	aeth_map_iter_free(&it);
	free(bs);
	return ret;
}

static int count_one(const struct aeth_ct_key *key,
		     const struct aeth_ct_entry *e, void *arg)
{
	(void)key;
	(void)e;
	++*(long *)arg;
	return 0;
}

long aeth_ct_table_count(const struct aeth_ct_table *t)
{
	long n = 0;
	int ret = aeth_ct_table_foreach(t, count_one, &n);

	return ret ? ret : n;
}

static int filter_fill_one(const struct aeth_ct_key *key,
			   const struct aeth_ct_entry *e, void *arg)
{
	const struct aeth_ct_table *t = arg;
	uint32_t tag, idx = aeth_ct_table_bucket_of(t, key, &tag);

	(void)e;
	filter_set(t, idx, aeth_ct_filter_bits(tag));
	return 0;
}

int aeth_ct_table_fill_filter(const struct aeth_ct_table *t)
{
	if (!t->filter)
		return -EBADF;
	return aeth_ct_table_foreach(t, filter_fill_one, (void *)t);
}

uint64_t aeth_ct_table_filter_of(const struct aeth_ct_table *t, uint32_t idx)
{
	uint64_t w;

	if (!t->filter || idx >= t->nbuckets)
		return ~0ull;
	w = __atomic_load_n(&t->filter[aeth_ct_filter_word_of(idx)],
			    __ATOMIC_SEQ_CST);
	return w >> aeth_ct_filter_shift_of(idx) & AETH_CT_FILTER_MASK;
}
