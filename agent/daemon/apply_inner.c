/* Write phase of an apply: the inner maps (Maglev tables, authorized-network
 * tries and their compiled IPv4 form) built for the slots the plan chose. Reads the planned service
 * state (its eligible backends, CIDRs, table size and slots) and a->state;
 * creates maps, writes no outer map (apply_write.c puts them in place). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "acl_compile.h"
#include "apply.h"
#include "apply_internal.h"
#include "log.h"

static uint32_t *slot_keys;	/* 0..AETH_MAX_TABLE_SIZE-1, for batch updates */

/* Whether the outer Maglev map takes mmapable inner arrays (its template
 * says BPF_F_MMAPABLE). Then a table is written with one memcpy; otherwise
 * element by element through a batch update, which costs about 1 us per
 * slot in the kernel (16 ms for a 16381-slot table). Probed once with a
 * one-slot table in a slot no service names. */
static bool inner_mmap_supported(struct aeth_agent *a)
{
	LIBBPF_OPTS(bpf_map_create_opts, copts,
		    .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	uint32_t slot, id;
	int fd;

	if (a->inner_mmap)
		return a->inner_mmap > 0;
	a->inner_mmap = -1;
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aeth_mg_probe",
			    sizeof(uint32_t), sizeof(uint32_t), 1, &copts);
	if (fd < 0)
		return false;
	for (slot = AETH_MAX_SLOTS; slot-- > 0;) {
		if (a->state->svcs[slot / AETH_SLOTS_PER_SERVICE].in_use ||
		    bpf_map_lookup_elem(a->fds.maglev, &slot, &id) == 0)
			continue;
		if (bpf_map_update_elem(a->fds.maglev, &slot, &fd, BPF_ANY) == 0) {
			bpf_map_delete_elem(a->fds.maglev, &slot);
			a->inner_mmap = 1;
		}
		break;
	}
	close(fd);
	log_debug("Maglev tables are written %s",
		  a->inner_mmap > 0 ? "through mmap" : "by batch updates");
	return a->inner_mmap > 0;
}

static int fill_table_mmap(int fd, const uint32_t *table, uint32_t size)
{
	/* array elements are 8-byte aligned: a u32 takes 8 bytes */
	size_t page = sysconf(_SC_PAGESIZE);
	size_t len = ((size_t)size * 8 + page - 1) & ~(page - 1);
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	for (uint32_t i = 0; i < size; i++)
		memcpy(p + (size_t)i * 8, &table[i], sizeof(*table));
	munmap(p, len);
	return 0;
}

static int fill_table(int fd, const uint32_t *table, uint32_t size,
		      bool mmapable)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bopts);
	uint32_t count = size;
	int err;

	if (mmapable)
		return fill_table_mmap(fd, table, size);
	if (!slot_keys) {
		slot_keys = malloc(AETH_MAX_TABLE_SIZE * sizeof(*slot_keys));
		if (!slot_keys)
			return -ENOMEM;
		for (uint32_t i = 0; i < AETH_MAX_TABLE_SIZE; i++)
			slot_keys[i] = i;
	}
	if (bpf_map_update_batch(fd, slot_keys, table, &count, &bopts) == 0)
		return 0;
	for (uint32_t i = 0; i < size; i++) {	/* no batch support */
		err = bpf_map_update_elem(fd, &i, &table[i], BPF_ANY);
		if (err)
			return err;
	}
	return 0;
}

/* The table is computed here, not in the plan: one table in memory at a
 * time (4096 services of 65537 slots would be a gigabyte). Its inputs,
 * the eligible backends, the size and the seed, are the plan's. */
int apply_build_maglev(struct tx *tx, struct aeth_agent *a,
		       struct slot_batch *batch,
		       const struct aeth_applied_svc *n,
		       const uint8_t seed[16])
{
	bool mmapable = inner_mmap_supported(a);
	LIBBPF_OPTS(bpf_map_create_opts, copts,
		    .map_flags = BPF_F_INNER_MAP |
				 (mmapable ? BPF_F_MMAPABLE : 0));
	uint32_t size = n->value.table_size;
	uint32_t *table;
	int fd, err;

	if (size > AETH_MAX_TABLE_SIZE)
		return -EINVAL;
	table = malloc(size * sizeof(*table));
	if (!table)
		return -ENOMEM;
	err = aeth_maglev_build(n->mg, n->n_mg, seed, size, table);
	if (!err)
		err = tx_fault(tx);
	if (err) {
		free(table);
		return err;
	}
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aeth_mg_tbl", sizeof(uint32_t),
			    sizeof(uint32_t), size, &copts);
	if (fd < 0) {
		free(table);
		return fd;
	}
	err = fill_table(fd, table, size, mmapable);
	if (!err)
		err = batch_add(batch, n->value.maglev_slot, fd);
	free(table);
	if (err)
		close(fd);
	return err;
}

int apply_build_acl(struct tx *tx, struct slot_batch *batch,
		    const struct aeth_applied_svc *n)
{
	LIBBPF_OPTS(bpf_map_create_opts, copts, .map_flags = BPF_F_NO_PREALLOC);
	int fd, err;

	err = tx_fault(tx);
	if (err)
		return err;
	fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "aeth_acl_trie",
			    sizeof(struct aeth_acl_key), sizeof(uint32_t),
			    n->n_cidrs ? n->n_cidrs : 1, &copts);
	if (fd < 0)
		return fd;
	for (size_t i = 0; i < n->n_cidrs; i++) {
		struct aeth_acl_key k;
		/* the value names the prefix's family: the data path must
		 * not let an IPv6 prefix covering ::ffff:0:0/96 (::/0, say)
		 * admit IPv4 sources */
		uint32_t family = n->cidrs[i].ip.family;

		apply_trie_key(&n->cidrs[i], &k);
		err = bpf_map_update_elem(fd, &k, &family, BPF_ANY);
		if (err)
			goto out;
	}
	err = batch_add(batch, n->value.acl_slot, fd);
	if (!err)
		fd = -1;
out:
	if (fd >= 0)
		close(fd);
	return err;
}

uint32_t aeth_apply_acl_rng_cap = AETH_ACL_RNG_CAP;

#define RNG_BYTES ((size_t)AETH_ACL_RNG_CAP * sizeof(uint64_t))
#define RNGIDX_BYTES ((size_t)AETH_MAX_SLOTS * sizeof(struct aeth_acl_rng_at))

/* Both maps are BPF_F_MMAPABLE: a list's intervals go in with one memcpy,
 * and the index is read in place to place them. */
static int map_acl_rng(struct aeth_agent *a)
{
	void *r, *i;

	if (a->acl_rng)
		return 0;
	r = mmap(NULL, RNG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
		 a->fds.acl_rng, 0);
	if (r == MAP_FAILED)
		return -errno;
	i = mmap(NULL, RNGIDX_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
		 a->fds.acl_rngidx, 0);
	if (i == MAP_FAILED) {
		int err = -errno;

		munmap(r, RNG_BYTES);
		return err;
	}
	a->acl_rng = r;
	a->acl_rngidx = i;
	log_info("compiled IPv4 lists: %s holds %u intervals (%zu KiB), "
		  "%s %u slots (%zu KiB)", AETH_MAP_ACL_RNG, AETH_ACL_RNG_CAP,
		  RNG_BYTES >> 10, AETH_MAP_ACL_RNGIDX, AETH_MAX_SLOTS,
		  RNGIDX_BYTES >> 10);
	return 0;
}

void apply_unmap_acl_rng(struct aeth_agent *a)
{
	if (!a->acl_rng)
		return;
	munmap(a->acl_rng, RNG_BYTES);
	munmap(a->acl_rngidx, RNGIDX_BYTES);
	a->acl_rng = NULL;
	a->acl_rngidx = NULL;
}

/* n's list compiled (acl_compile.c), from the entries its trie holds. */
static int compile_list(const struct aeth_applied_svc *n, uint64_t **r,
			size_t *nr)
{
	struct aeth_acl_entry *e;
	int err;

	e = calloc(n->n_cidrs ? n->n_cidrs : 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < n->n_cidrs; i++) {
		apply_trie_key(&n->cidrs[i], &e[i].key);
		e[i].family = n->cidrs[i].ip.family;
	}
	err = aeth_acl_compile_v4(e, n->n_cidrs, r, nr);
	free(e);
	return err;
}

int apply_build_acl_rng(struct tx *tx, struct aeth_agent *a,
			const struct aeth_applied_svc *n)
{
	struct aeth_acl_rng_at at = { 0 };
	uint32_t slot = n->value.acl_slot;
	uint64_t *r;
	size_t nr;
	int err;

	err = map_acl_rng(a);
	if (!err)
		err = compile_list(n, &r, &nr);
	if (err)
		return err;
	err = aeth_acl_rng_store(r, nr, a->acl_rngidx, AETH_MAX_SLOTS, slot,
				 aeth_apply_acl_rng_cap, a->acl_rng, &at);
	free(r);
	if (err == -ENOSPC) {
		/* still right: the data path looks the trie up */
		if (!a->acl_rng_full_logged)
			log_warn("%s is full (%u intervals): %s keeps its "
				 "authorized networks in the trie only",
				 AETH_MAP_ACL_RNG, aeth_apply_acl_rng_cap,
				 n->info.name);
		a->acl_rng_full_logged = true;
		memset(&at, 0, sizeof(at));
		err = 0;
	} else if (!err) {
		/* the intervals before the index entry that names them */
		__atomic_thread_fence(__ATOMIC_RELEASE);
	}
	if (err)
		return err;
	return tx_write(tx, a->fds.acl_rngidx, &slot, sizeof(slot), &at,
			sizeof(at));
}

void apply_drop_acl_rng(struct aeth_agent *a, const uint32_t *slots,
			size_t n)
{
	struct aeth_acl_rng_at none = { 0 };

	for (size_t i = 0; i < n; i++)
		bpf_map_update_elem(a->fds.acl_rngidx, &slots[i], &none,
				    BPF_ANY);
}
