/* Per-CPU folding and whole-map reads (map_iter.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "map_iter.h"

#ifndef ENOTSUPP
#define ENOTSUPP 524	/* the kernel's "not supported" */
#endif

void aeth_percpu_fold_u64(const void *percpu, int ncpus, size_t size,
			  void *out)
{
	size_t stride = aeth_percpu_stride(size);
	uint64_t *sum = out;

	memset(out, 0, size);
	for (int cpu = 0; cpu < ncpus; cpu++) {
		const uint64_t *v = (const uint64_t *)((const char *)percpu +
						       (size_t)cpu * stride);

		for (size_t i = 0; i < size / 8; i++)
			sum[i] += v[i];
	}
}

int aeth_map_iter_init(struct aeth_map_iter *it, int fd, size_t key_size,
		       size_t value_size)
{
	/* a batch position is a bucket (u32) or, for arrays, a key */
	size_t tok = key_size < 8 ? 8 : key_size;

	memset(it, 0, sizeof(*it));
	it->fd = fd;
	it->key_size = key_size;
	it->value_size = value_size;
	it->tok_in = calloc(1, tok);
	it->tok_out = calloc(1, tok);
	it->last_key = calloc(1, key_size ? key_size : 1);
	if (!it->tok_in || !it->tok_out || !it->last_key) {
		aeth_map_iter_free(it);
		return -ENOMEM;
	}
	return 0;
}

void aeth_map_iter_rewind(struct aeth_map_iter *it)
{
	it->started = false;
	it->by_key = false;
	it->done = false;
}

void aeth_map_iter_free(struct aeth_map_iter *it)
{
	free(it->tok_in);
	free(it->tok_out);
	free(it->last_key);
	it->tok_in = it->tok_out = it->last_key = NULL;
}

static bool batch_unsupported(int err)
{
	return err == EINVAL || err == ENOTSUPP || err == EOPNOTSUPP ||
	       err == ENOTSUP;
}

static int next_by_key(struct aeth_map_iter *it, char *keys, char *values,
		       uint32_t *count)
{
	uint32_t room = *count, n = 0;

	while (n < room) {
		char *k = keys + (size_t)n * it->key_size;

		if (bpf_map_get_next_key(it->fd, it->started ? it->last_key
							     : NULL, k)) {
			if (errno != ENOENT)
				return -errno;
			it->done = true;
			break;
		}
		it->started = true;
		memcpy(it->last_key, k, it->key_size);
		if (bpf_map_lookup_elem_flags(it->fd, k,
					values + (size_t)n * it->value_size,
					it->elem_flags)) {
			if (errno == ENOENT)
				continue;	/* deleted meanwhile */
			return -errno;
		}
		n++;
	}
	*count = n;
	return it->done ? 0 : 1;
}

int aeth_map_iter_next(struct aeth_map_iter *it, void *keys, void *values,
		       uint32_t *count)
{
	DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts,
			    .elem_flags = it->elem_flags);
	size_t tok = it->key_size < 8 ? 8 : it->key_size;
	int err;

	if (it->done) {
		*count = 0;
		return 0;
	}
	if (it->by_key)
		return next_by_key(it, keys, values, count);
	err = bpf_map_lookup_batch(it->fd, it->started ? it->tok_in : NULL,
				   it->tok_out, keys, values, count, &opts);
	if (err && errno != ENOENT) {
		if (!it->started && batch_unsupported(errno)) {
			it->by_key = true;
			return next_by_key(it, keys, values, count);
		}
		return -errno;
	}
	it->started = true;
	memcpy(it->tok_in, it->tok_out, tok);
	if (err) {	/* ENOENT: the last entries */
		it->done = true;
		return 0;
	}
	return 1;
}

int aeth_map_foreach(int fd, size_t key_size, size_t value_size,
		     uint32_t chunk, aeth_map_entry_fn fn, void *arg,
		     bool *fn_stopped)
{
	struct aeth_map_iter it;
	char *keys, *values;
	int more = 1, ret = 0;

	if (fn_stopped)
		*fn_stopped = false;
	if (!chunk)
		chunk = AETH_MAP_CHUNK;
	keys = calloc(chunk, key_size);
	values = calloc(chunk, value_size);
	if (!keys || !values || aeth_map_iter_init(&it, fd, key_size,
						   value_size)) {
		free(keys);
		free(values);
		return -ENOMEM;
	}
	while (more > 0 && !ret) {
		uint32_t count = chunk;

		more = aeth_map_iter_next(&it, keys, values, &count);
		if (more < 0) {
			ret = more;
			break;
		}
		for (uint32_t i = 0; i < count && !ret; i++)
			ret = fn(keys + (size_t)i * key_size,
				 values + (size_t)i * value_size, arg);
		if (ret && fn_stopped)
			*fn_stopped = true;
	}
	aeth_map_iter_free(&it);
	free(keys);
	free(values);
	return ret;
}
