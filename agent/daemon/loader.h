/* Loading the data path: skeleton, pinned maps with the schema check,
 * attaching to the interfaces, and --detach. */
#ifndef AETHER_LOADER_H
#define AETHER_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "error.h"

/* Open the skeleton with every map pinned under pin_dir (created), reusing
 * pinned maps (the connection table included) when their schema version is
 * ours, and refusing with one clear line in err when it is not. Sizes
 * aeth_ct to ct_max_entries (a pinned table keeps its size). Fills a->fds and
 * recovers the applied state from the maps. Returns 0 or a negative errno
 * with err filled. */
int aeth_loader_open(struct aeth_agent *a, const char *pin_dir,
		     uint32_t ct_max_entries, struct aeth_error *err);

/* Set the connection table's filter bits of every entry (aeth_ct_bloom,
 * include/aether/ct_table.h). aeth_loader_open does it before the program
 * runs; the first apply does it again once ours replaced a program of a
 * build without the filter, for the entries that one wrote in between.
 * Both on every start: a pinned filter does not prove that no build
 * without it ran since (a downgrade and back leaves a stale one). A walk
 * of the table (35 ms for 200,000 entries of a million). Only sets bits,
 * so it is safe while the program runs. 0 or -errno. */
int aeth_loader_fill_ct_bloom(const struct aeth_agent *a);

/* Attach the program to every interface of cfg in its xdp_mode through a
 * bpf_link pinned at <pin_dir>/links/<ifname>, replacing a program of ours
 * already there atomically (bpf_link_update, or in place through netlink
 * for an earlier agent's netlink attachment; see loader.c), detaching
 * from interfaces the document
 * no longer names, and recording the outcome in aeth_meta. Also sets the
 * sysctls the data path needs on each interface. Returns 0 or the first
 * error (logged). */
int aeth_loader_attach(struct aeth_agent *a, const struct aeth_config *cfg);

/* Can the program go on every interface of cfg: each exists in this
 * network namespace and carries no XDP program, or one of ours (one that
 * uses the aeth_meta map open as meta_fd, or pinned under pin_dir when
 * meta_fd is 0)? Returns 0, or -ENODEV / -EBUSY with err naming the
 * interface (node.interfaces[N]) and why. Touches nothing. */
int aeth_loader_check_ifaces(int meta_fd, const char *pin_dir,
			     const struct aeth_config *cfg,
			     struct aeth_error *err);

/* Attach (a new pinned bpf_link) to every interface of cfg that carries
 * no program yet; on a
 * failure detach what this call attached and fill err
 * (node.interfaces[N]: why). Returns 0 or a negative errno. */
int aeth_loader_attach_new(struct aeth_agent *a, const struct aeth_config *cfg,
			   struct aeth_error *err);

/* Pin again, under a->pin_dir (recreated, and locked again when it was),
 * every map and link of ours whose pin is missing. names gets the
 * re-pinned names (links as links/IFNAME),
 * comma-separated. Returns how many were re-pinned (0: nothing missing) or a
 * negative errno. */
int aeth_loader_repin(struct aeth_agent *a, char *names, size_t len);

/* Attach to interface slot of a->cfg again (same mode rules as
 * aeth_loader_attach), record it in aeth_meta, and recompute
 * a->status.attached. Returns 0 or a negative errno (logged). */
int aeth_loader_reattach(struct aeth_agent *a, size_t slot);

/* Record interface slot of a->cfg as absent in aeth_meta (no ifindex, no
 * program) and clear a->status.attached. */
void aeth_loader_mark_absent(struct aeth_agent *a, size_t slot);

/* Release the skeleton and the link fds; the program stays attached (the
 * link pins hold it) and the maps pinned. */
void aeth_loader_close(struct aeth_agent *a);

/* --detach: remove the program from the interfaces recorded in aeth_meta
 * (detach our link and unpin it, or through netlink for an earlier agent's
 * attachment), unpin every map and remove pin_dir. Returns 0 or a negative
 * errno with err filled. */
int aeth_loader_detach(const char *pin_dir, struct aeth_error *err);

/* The schema version pinned under pin_dir: 0 when nothing is pinned there. */
int aeth_loader_pinned_schema(const char *pin_dir, uint32_t *version);

#endif /* AETHER_LOADER_H */
