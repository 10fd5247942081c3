/* Loading the data path: skeleton, pinned maps with the schema check,
 * attaching to the interfaces, and --detach. */
#ifndef AETHER_LOADER_H
#define AETHER_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"

/* Open the skeleton with every map pinned under pin_dir (created), reusing
 * pinned maps (the connection table included) when their schema version is
 * ours, and refusing with one clear line in err when it is not. Sizes
 * aeth_ct to ct_max_entries (a pinned table keeps its size). Fills a->fds and
 * recovers the applied state from the maps. Returns 0 or a negative errno. */
int aeth_loader_open(struct aeth_agent *a, const char *pin_dir,
		     uint32_t ct_max_entries, char *err, size_t errlen);

/* Attach the program to every interface of cfg in its xdp_mode, replacing a
 * program already there atomically, detaching from interfaces the document
 * no longer names, and recording the outcome in aeth_meta. Also sets the
 * sysctls the data path needs on each interface. Returns 0 or the first
 * error (logged). */
int aeth_loader_attach(struct aeth_agent *a, const struct aeth_config *cfg);

/* Release the skeleton; the program stays attached and the maps pinned. */
void aeth_loader_close(struct aeth_agent *a);

/* --detach: remove the program from the interfaces recorded in aeth_meta,
 * unpin every map and remove pin_dir. Returns 0 or a negative errno with
 * err filled. */
int aeth_loader_detach(const char *pin_dir, char *err, size_t errlen);

/* The schema version pinned under pin_dir: 0 when nothing is pinned there. */
int aeth_loader_pinned_schema(const char *pin_dir, uint32_t *version);

#endif /* AETHER_LOADER_H */
