#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <bpf/bpf.h>

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

int aeth_ct_table_open(struct aeth_ct_table *t, int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	struct aeth_ct_bucket b;
	int ret;

	memset(t, 0, sizeof(*t));
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
	t->fd = fd;
	t->nbuckets = info.max_entries;
	t->seed = b.seed;
	return 0;
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

static uint32_t bucket_of(const struct aeth_ct_table *t,
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

	*idx = bucket_of(t, key, &tag);
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

int aeth_ct_table_put(const struct aeth_ct_table *t,
		      const struct aeth_ct_key *key,
		      const struct aeth_ct_entry *e)
{
	struct aeth_ct_bucket b;
	uint32_t tag, idx = bucket_of(t, key, &tag);
	int ret = bucket_read(t->fd, idx, &b), i;
	bool own;

	if (ret)
		return ret;
	if (e->backend_id > 0xffff)
		return -ERANGE;
	i = aeth_ct_victim(&b, key, tag, &own);
	b.key[i] = *key;
	b.slot[i].word = aeth_ct_word(e->backend_id, tag,
				      e->seen_s ? e->seen_s : 1);
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
				struct aeth_ct_entry e = aeth_ct_word_entry(
					bs[j].slot[i].word);

				if (e.seen_s)
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
