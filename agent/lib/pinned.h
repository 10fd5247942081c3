/* Opening the pinned maps of one pin directory, as the agent and aetherctl
 * both do, with the schema version checked. */
#ifndef AETHER_PINNED_H
#define AETHER_PINNED_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#include "aether/map_table.h"

/* One fd per pinned map (-1 when not open), one field per row of
 * AETH_PINNED_MAPS (include/aether/map_table.h), in its order. */
#define AETH_MAP_FD_FIELD_(f, ...) int f;
struct aeth_map_fds {
	AETH_PINNED_MAPS(AETH_MAP_FD_FIELD_)
};
#undef AETH_MAP_FD_FIELD_

_Static_assert(sizeof(struct aeth_map_fds) == AETH_N_PINNED_MAPS * sizeof(int),
	       "aeth_map_fds: one int per table row");

/* Open every map pinned under pin_dir read-write and check that aeth_meta's
 * schema_version is AETH_SCHEMA_VERSION. On failure returns a negative errno,
 * closes what it opened, and fills err with one clear line ("no aether-lb
 * state under /x: ...", "schema version 3 is not supported (this build
 * knows 1)"). */
int aeth_pinned_open(const char *pin_dir, struct aeth_map_fds *fds,
		     struct aeth_error *err);
void aeth_pinned_close(struct aeth_map_fds *fds);

/* Number of possible CPUs, the per-CPU value stride is round_up(size, 8). */
int aeth_ncpus(void);

/* Sum a per-CPU array value made of u64 counters (size a multiple of 8) into
 * out (aeth_percpu_fold_u64 of map_iter.h). Returns 0 or a negative errno. */
int aeth_percpu_sum_u64(int map_fd, uint32_t key, void *out, size_t size);

#endif /* AETHER_PINNED_H */
