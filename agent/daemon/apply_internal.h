/* Private to the apply files. An apply runs in phases, one file each:
 *   apply_plan.c   the document -> a plan (struct apply_plan): ids, slots,
 *                  every entry of the new state, defaults resolved
 *   apply_write.c  the plan -> the maps, in the order that keeps flows and
 *                  fails closed, through the undo log (apply_undo.c);
 *                  apply_inner.c builds the inner maps it puts in slots
 *   apply.c        the entry points: parse, check, plan, write, commit or
 *                  roll back, and record the outcome
 * Nothing after the plan reads struct aeth_config. */
#ifndef AETHER_APPLY_INTERNAL_H
#define AETHER_APPLY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "error.h"

#define NSEC_PER_SEC 1000000000ull

/* ---- the plan (apply_plan.c) ------------------------------------------- */

/* Per service of the document, in its order: what the write phase does. */
struct svc_plan {
	uint32_t id;
	/* Build a table (a trie) into the slot the new aeth_svc value names,
	 * the one the service does not use now. */
	bool rebuild_mg, rebuild_acl;
};

/* An aeth_decap entry: a trie key and the family of its prefix. */
struct decap_entry {
	struct aeth_acl_key key;
	uint32_t family;
};

/* How many services use a VIP (aeth_vip's value). */
struct vip_count {
	struct aeth_vip_key key;
	uint32_t count;
};

struct apply_plan {
	/* The state after the apply: services with their ids, slots and
	 * entries, backends, node settings, cursors. The services the
	 * document drops keep their cleared aeth_svcinfo entry. */
	struct aeth_state *ns;
	struct svc_plan *svcs;
	size_t n_svcs;
	struct decap_entry *decap;	/* in the document's order */
	size_t n_decap;
	struct vip_count *old_vips, *new_vips;
	size_t n_old_vips, n_new_vips;
};

/* Plan cfg against a->state (and the health of a's backends), touching no
 * map. Returns 0, -ENOSPC with err naming the service or backend that got
 * no id (the document is then rejected), or another negative errno (err
 * filled when there is more to say than the errno). */
int apply_plan_build(struct aeth_agent *a, const struct aeth_config *cfg,
		     struct apply_plan *p, struct aeth_error *err);
/* Frees p and p->ns (set p->ns to NULL first to keep it). */
void apply_plan_free(struct apply_plan *p);

/* The services per VIP of st; *out is malloc'ed. 0 or -ENOMEM. */
int apply_vip_counts(const struct aeth_state *st, struct vip_count **out,
		     size_t *n_out);
uint32_t apply_vip_lookup(const struct vip_count *v, size_t n,
			  const struct aeth_vip_key *k);
/* The trie key of a CIDR as the data path looks it up (guard.h): IPv4 as
 * ::ffff:a.b.c.d, so one trie serves both families. */
void apply_trie_key(const struct aeth_cfg_cidr *c, struct aeth_acl_key *k);

/* ---- the undo log (apply_undo.c) --------------------------------------- */

struct undo;

/* One apply's map writes: each remembers what it replaced. */
struct tx {
	struct undo *u;
	size_t n, cap;
	unsigned int ops;		/* counted for aeth_apply_fail_at */
	struct aeth_error *err;		/* where a failure is described */
};

/* Counts a write; -ENOSPC when it is the one aeth_apply_fail_at fails. */
int tx_fault(struct tx *tx);
/* Update (delete) key, remembering what was there. */
int tx_write(struct tx *tx, int fd, const void *key, uint32_t ksz,
	     const void *val, uint32_t vsz);
int tx_delete(struct tx *tx, int fd, const void *key, uint32_t ksz,
	      uint32_t vsz);

/* Inner maps waiting to go into their outer slots. */
struct slot_batch {
	uint32_t *slots;
	int *fds;
	size_t n, cap;
};

int batch_add(struct slot_batch *b, uint32_t slot, int fd);
/* Closes the fds (an outer map holds its own reference) and frees b. */
void batch_release(struct slot_batch *b);
/* Put b's inner maps into their (empty) slots of outer_fd. */
int tx_slots(struct tx *tx, int outer_fd, struct slot_batch *b);
/* Empty outer slots nothing reads any more (not undone). */
void delete_slots(int outer_fd, uint32_t *slots, size_t n);

/* Undo every write of tx, the last first. */
void tx_rollback(struct tx *tx);
void tx_free(struct tx *tx);

/* Describe the failure code of a write into tx->err ("what: strerror")
 * and return code. */
__attribute__((format(printf, 3, 4)))
int tx_fail(struct tx *tx, int code, const char *fmt, ...);

/* ---- the writes (apply_write.c, apply_inner.c) ------------------------- */

/* Write p over a->state. Returns 0 or a negative errno with tx->err
 * filled; the caller rolls back. */
int apply_write(struct tx *tx, struct aeth_agent *a,
		const struct apply_plan *p);
/* After the switch to ns: empty what the previous apply retired and retire
 * (not yet empty) the slots this apply switched away from. */
void apply_release_slots(struct aeth_agent *a, struct aeth_state *ns);
/* Empty the slots a->state retired that ns does not name. */
void apply_free_retired(struct aeth_agent *a, const struct aeth_state *ns);

/* A fresh Maglev table (ACL trie) for n, added to batch for the slot n's
 * value names. */
int apply_build_maglev(struct tx *tx, struct aeth_agent *a,
		       struct slot_batch *batch,
		       const struct aeth_applied_svc *n,
		       const uint8_t seed[16]);
int apply_build_acl(struct tx *tx, struct slot_batch *batch,
		    const struct aeth_applied_svc *n);
/* The compiled IPv4 form of n's list (aeth_acl_rng) and its index entry
 * for n's ACL slot, written through tx: the slot is not in use yet. With
 * no room in the array the slot gets no compiled form (the trie answers). */
int apply_build_acl_rng(struct tx *tx, struct aeth_agent *a,
			const struct aeth_applied_svc *n);
/* Forget the compiled form of emptied ACL slots: their regions are free. */
void apply_drop_acl_rng(struct aeth_agent *a, const uint32_t *slots,
			size_t n);
/* Unmap what apply_build_acl_rng mapped. */
void apply_unmap_acl_rng(struct aeth_agent *a);

/* ---- state (apply.c) --------------------------------------------------- */

struct aeth_state *apply_state_alloc(void);

#endif /* AETHER_APPLY_INTERNAL_H */
