/* The undo log of an apply's write phase: every map write goes through it
 * and remembers what it replaced, so a failed apply is rolled back to the
 * previous state. Reads only the maps it writes. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "apply.h"
#include "apply_internal.h"
#include "log.h"

#ifndef ENOTSUPP
#define ENOTSUPP 524	/* the kernel's "not supported" */
#endif

unsigned int aeth_apply_fail_at;

#define UNDO_KEY_MAX 32
#define UNDO_VAL_MAX 128

enum undo_op { UNDO_RESTORE, UNDO_DELETE };

struct undo {
	int fd;
	enum undo_op op;
	uint32_t ksz, vsz;
	uint8_t key[UNDO_KEY_MAX];
	uint8_t val[UNDO_VAL_MAX];
};

int tx_fault(struct tx *tx)
{
	tx->ops++;
	if (aeth_apply_fail_at && tx->ops == aeth_apply_fail_at)
		return -ENOSPC;
	return 0;
}

static struct undo *tx_push(struct tx *tx)
{
	if (tx->n == tx->cap) {
		size_t cap = tx->cap ? tx->cap * 2 : 256;
		struct undo *u = realloc(tx->u, cap * sizeof(*u));

		if (!u)
			return NULL;
		tx->u = u;
		tx->cap = cap;
	}
	return &tx->u[tx->n++];
}

/* Take an undo record for fd[key] holding what is there now. Returns it
 * with had_value telling whether the key existed, or NULL with *err set. */
static struct undo *tx_record(struct tx *tx, int fd, const void *key,
			      uint32_t ksz, uint32_t vsz, bool *had_value,
			      int *err)
{
	struct undo *u;

	*err = tx_fault(tx);
	if (*err)
		return NULL;
	u = tx_push(tx);
	if (!u) {
		*err = -ENOMEM;
		return NULL;
	}
	u->fd = fd;
	u->ksz = ksz;
	u->vsz = vsz;
	memcpy(u->key, key, ksz);
	*had_value = bpf_map_lookup_elem(fd, key, u->val) == 0;
	return u;
}

int tx_write(struct tx *tx, int fd, const void *key, uint32_t ksz,
	     const void *val, uint32_t vsz)
{
	struct undo *u;
	bool had;
	int err;

	u = tx_record(tx, fd, key, ksz, vsz, &had, &err);
	if (!u)
		return err;
	u->op = had ? UNDO_RESTORE : UNDO_DELETE;
	err = bpf_map_update_elem(fd, key, val, BPF_ANY);
	if (err)
		tx->n--;
	return err;
}

/* Absent keys are fine. */
int tx_delete(struct tx *tx, int fd, const void *key, uint32_t ksz,
	      uint32_t vsz)
{
	struct undo *u;
	bool had;
	int err;

	u = tx_record(tx, fd, key, ksz, vsz, &had, &err);
	if (!u)
		return err;
	u->op = UNDO_RESTORE;
	if (!had) {
		tx->n--;
		return 0;
	}
	err = bpf_map_delete_elem(fd, key);
	if (err)
		tx->n--;
	return err;
}

int batch_add(struct slot_batch *b, uint32_t slot, int fd)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		uint32_t *s = realloc(b->slots, cap * sizeof(*s));
		int *f;

		if (!s)
			return -ENOMEM;
		b->slots = s;
		f = realloc(b->fds, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		b->fds = f;
		b->cap = cap;
	}
	b->slots[b->n] = slot;
	b->fds[b->n] = fd;
	b->n++;
	return 0;
}

void batch_release(struct slot_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		close(b->fds[i]);
	free(b->slots);
	free(b->fds);
	memset(b, 0, sizeof(*b));
}

/* Only inactive slots are written this way, so undoing is emptying them
 * again. One batch, because the kernel waits for an RCU grace period after
 * each write of a map-in-map from userspace: per slot that is milliseconds
 * each, per batch once. */
int tx_slots(struct tx *tx, int outer_fd, struct slot_batch *b)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 count = b->n;
	int err;

	if (!b->n)
		return 0;
	err = tx_fault(tx);
	if (err)
		return err;
	for (size_t i = 0; i < b->n; i++) {
		struct undo *u = tx_push(tx);

		if (!u)
			return -ENOMEM;
		u->fd = outer_fd;
		u->op = UNDO_DELETE;
		u->ksz = sizeof(uint32_t);
		memcpy(u->key, &b->slots[i], sizeof(uint32_t));
	}
	err = bpf_map_update_batch(outer_fd, b->slots, b->fds, &count, &opts);
	if (!err || (err != -EINVAL && err != -EOPNOTSUPP && err != -ENOTSUPP))
		return err;
	for (size_t i = 0; i < b->n; i++) {	/* no batch support */
		err = bpf_map_update_elem(outer_fd, &b->slots[i], &b->fds[i],
					  BPF_ANY);
		if (err)
			return err;
	}
	return 0;
}

/* In one batch (see tx_slots). */
void delete_slots(int outer_fd, uint32_t *slots, size_t n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 count = n;

	if (!n)
		return;
	if (bpf_map_delete_batch(outer_fd, slots, &count, &opts) == 0)
		return;
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(outer_fd, &slots[i]);
}

void tx_rollback(struct tx *tx)
{
	while (tx->n) {
		struct undo *u = &tx->u[--tx->n];
		int r;

		if (u->op == UNDO_RESTORE)
			r = bpf_map_update_elem(u->fd, u->key, u->val, BPF_ANY);
		else
			r = bpf_map_delete_elem(u->fd, u->key);
		if (r && r != -ENOENT)
			log_err("rollback: restoring a map entry failed: %s",
				strerror(-r));
	}
}

void tx_free(struct tx *tx)
{
	free(tx->u);
	tx->u = NULL;
	tx->n = tx->cap = 0;
}

int tx_fail(struct tx *tx, int code, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return aeth_fail(tx->err, code, NULL, "%s: %s", what, strerror(-code));
}
