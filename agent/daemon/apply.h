/* The one apply path of every config source: validate, diff against what is
 * applied, write the maps in an order that never exposes a half state, and
 * roll back to the previous state when a write fails. */
#ifndef AETHER_APPLY_H
#define AETHER_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"

struct aeth_apply_result {
	bool rejected;			/* invalid document: no map touched */
	struct aeth_error err;		/* why, on any failure */
	char message[600];		/* err on one line */
	uint64_t generation;		/* after a successful apply */
};

/* An empty applied state (fresh maps). Returns 0 or -ENOMEM. */
int aeth_state_init(struct aeth_agent *a);
/* Rebuild the applied state by reading the maps (restart over pinned maps):
 * services and their slots, backend ids, node settings, meta. */
int aeth_state_recover(struct aeth_agent *a);
void aeth_state_free(struct aeth_state *st);

/* Parse, validate and apply a document. Returns 0, -EINVAL when the document
 * was rejected (res->rejected, nothing touched), or another negative errno
 * when the maps refused a write (the previous state was restored). Counts
 * the outcome in a->status and logs it once. source names where the
 * document came from ("file", "sighup", "api"). */
int aeth_apply_text(struct aeth_agent *a, const char *text, size_t len,
		    const char *source, struct aeth_apply_result *res);

/* Apply an already validated config. On success a owns cfg (the previous
 * document is freed); on failure the caller still owns it. new_generation
 * false keeps the generation (health changes). */
int aeth_apply_config(struct aeth_agent *a, struct aeth_config *cfg,
		      bool new_generation, struct aeth_apply_result *res);

/* Re-apply the applied document, e.g. after a backend's health changed:
 * only the tables whose eligible backends changed are rebuilt. */
int aeth_apply_refresh(struct aeth_agent *a);

/* Write a->meta to aeth_meta[0] (schema version always set). */
int aeth_meta_write(struct aeth_agent *a);

/* Change the tables' stamp (aeth_stamp[0]): every CPU of the data path
 * drops what it remembered of the tables (service entries, verdicts, VIP
 * answers: bpf/service.h). Called once the service entries are published,
 * and when an apply is committed or rolled back, before anything a memory
 * may name (a slot, a backend) is reused. */
void aeth_stamp_bump(struct aeth_agent *a);

/* Test hook: when non-zero, the Nth map write of the next applies fails with
 * -ENOSPC, as a full map would. */
extern unsigned int aeth_apply_fail_at;

/* Intervals of aeth_acl_rng the agent may use (AETH_ACL_RNG_CAP); tests of
 * a full array lower it. */
extern uint32_t aeth_apply_acl_rng_cap;

#endif /* AETHER_APPLY_H */
