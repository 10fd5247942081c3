/* The daemon's state: loaded maps, what is applied, and the last apply. */
#ifndef AETHER_AGENT_H
#define AETHER_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aether/abi.h"
#include "config.h"
#include "maglev.h"
#include "metrics.h"
#include "pinned.h"

struct aether_lb;
struct aeth_bgp;

/* One service as it is in the maps, indexed by service id. */
struct aeth_applied_svc {
	bool in_use;
	struct aeth_svc_key key;
	struct aeth_svc value;		/* as published in aeth_svc */
	struct aeth_svcinfo info;	/* as written in aeth_svcinfo */
	/* What the current tables were built from. After a restart the
	 * inputs are unknown (inner maps are not pinned): built is false and
	 * the next apply rebuilds the tables into the inactive slots. */
	bool built;
	struct aeth_maglev_backend *mg;	/* eligible backends, sorted by id */
	size_t n_mg;
	bool acl_enabled;
	struct aeth_cfg_cidr *cidrs;
	size_t n_cidrs;
	uint32_t *be_ids;		/* every backend of the service */
	size_t n_be;
};

/* What is applied to the maps. */
struct aeth_state {
	struct aeth_applied_svc *svcs;	/* [AETH_MAX_SERVICES] */
	struct aeth_backend *backends;	/* [AETH_MAX_BACKENDS], mirror of the map */
	/* Allocation cursors: ids are taken from here on, so a freed id is
	 * reused only after every other id was handed out. */
	uint32_t svc_cursor, be_cursor;
	struct aeth_node node;
	bool node_known;
	/* Outer slots (Maglev, ACL) this state's apply stopped using. They are
	 * emptied by the next apply, not this one: a packet that read the
	 * service entry before the switch may still look its old slot up. */
	uint32_t *retired_mg, *retired_acl;
	size_t n_retired_mg, n_retired_acl;
};

/* Asks whether a backend passes its health check (true without a check). */
typedef bool (*aeth_backend_up_fn)(void *arg, const char *service,
				   const struct aeth_ip *backend);

struct aeth_agent {
	char pin_dir[PATH_MAX];
	struct aether_lb *skel;
	struct aeth_map_fds fds;
	struct aeth_state *state;
	struct aeth_config *cfg;	/* last applied document, NULL before */
	struct aeth_meta meta;		/* as last written */
	struct aeth_agent_status status;

	/* last apply, for GET /v1/status */
	char last_result[16];		/* "ok", "rejected", "failed", "" */
	char last_error[600];
	char last_source[16];
	uint64_t last_apply_unix_ns;

	aeth_backend_up_fn backend_up;
	void *backend_up_arg;
	/* Called after every successful apply of a new document (attach to
	 * the interfaces it names, update health checks). */
	void (*on_applied)(struct aeth_agent *a);
	/* Called on each valid document before it is applied: fills what it
	 * leaves to the node (node_detect.c). 0, or -EINVAL with err set
	 * (the document is then rejected). */
	int (*complete)(struct aeth_agent *a, struct aeth_config *cfg,
			struct aeth_error *err);

	struct aeth_bgp *bgp;		/* the BGP speaker's supervisor, or NULL */
	/* Called with every valid document before any map is touched: a
	 * non-zero return rejects it with err (an interface missing here,
	 * carrying a program that is not ours, or refusing the program). */
	int (*precheck)(struct aeth_agent *a, const struct aeth_config *cfg,
			struct aeth_error *err);

	/* the XDP links this agent attached or found pinned (loader.c) */
	struct aeth_xdp_link {
		char ifname[AETH_IFNAME_LEN];
		int fd;		/* > 2 when held */
	} links[AETH_MAX_INTERFACES];
	int inner_mmap;		/* Maglev inner maps mmapable: 0 unknown, 1, -1 */
	/* aeth_acl_rng and aeth_acl_rngidx mapped (apply_inner.c), or NULL
	 * before the first list is compiled */
	uint64_t *acl_rng;
	struct aeth_acl_rng_at *acl_rngidx;
	bool acl_rng_full_logged;	/* "no room" said once */
	int lock_fd;		/* flock on the pin dir (> 2 when held) */
};

#endif /* AETHER_AGENT_H */
