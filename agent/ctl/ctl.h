/* What the aetherctl commands share: the run context, command tables,
 * output (tables, JSON, errors) and reading services and backends. */
#ifndef AETHER_CTL_H
#define AETHER_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "aether/abi.h"
#include "agent_api.h"
#include "ct_table.h"
#include "pinned.h"


/* Exit codes: 0 fine, 1 the operation failed, 2 bad arguments. */
#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 2

struct ctl_ctx {
	const char *pin_dir;
	const char *socket;	/* the agent's API (config, node) */
	bool json;
	bool pretty;
	bool opened;
	struct aeth_map_fds fds;
};

/* A handler returns 0, -EINVAL for bad arguments (already reported), or
 * another negative errno (already reported). */
typedef int (*ctl_handler)(struct ctl_ctx *ctx, int argc, char **argv);

struct ctl_cmd {
	const char *name;
	ctl_handler handler;
	const char *usage;	/* "list SERVICE [--top N]": after the object */
};

/* An object has verbs, or (verbs == NULL) a handler taking its arguments
 * directly (stats, status, explain). */
struct ctl_object {
	const char *name;
	const struct ctl_cmd *verbs;
	size_t n_verbs;
	ctl_handler handler;
	const char *usage;
	const char *summary;
};

extern const struct ctl_object ctl_obj_service, ctl_obj_backend,
	ctl_obj_maglev, ctl_obj_conntrack, ctl_obj_acl, ctl_obj_ratelimit,
	ctl_obj_stats, ctl_obj_status, ctl_obj_explain, ctl_obj_config,
	ctl_obj_node;

/* The connection table at ctx->fds.ct (its size and seed), or an error
 * reported here. 0 or -errno. */
int ctl_ct_table(struct ctl_ctx *ctx, struct aeth_ct_table *t);

/* Output (ctl_out.c). Errors go once: {"error"} on stdout in JSON mode, one
 * "aetherctl: ..." line on stderr otherwise. */
__attribute__((format(printf, 2, 3)))
void ctl_error(struct ctl_ctx *ctx, const char *fmt, ...);
/* A usage error: reported like ctl_error, returns -EINVAL. */
__attribute__((format(printf, 2, 3)))
int ctl_usage_error(struct ctl_ctx *ctx, const char *fmt, ...);
/* Print and release a JSON document (compact, or indented with -p). */
int ctl_json_print(struct ctl_ctx *ctx, json_t *doc);

/* A JSON array written element by element, for listings too long to hold
 * as one document: begin, then item (takes the reference) per element,
 * then end. */
struct ctl_json_stream {
	size_t n;
};
void ctl_json_stream_begin(struct ctl_ctx *ctx, struct ctl_json_stream *st);
int ctl_json_stream_item(struct ctl_ctx *ctx, struct ctl_json_stream *st,
			 json_t *item);
void ctl_json_stream_end(struct ctl_ctx *ctx, struct ctl_json_stream *st);

struct ctl_table;
struct ctl_table *ctl_table_new(int ncols, const char *const *headers);
/* Append a row of ncols strings (copied). */
int ctl_table_add(struct ctl_table *t, ...);
/* Right-align column col (numbers). */
void ctl_table_align_right(struct ctl_table *t, int col);
void ctl_table_print(const struct ctl_table *t);
void ctl_table_free(struct ctl_table *t);

/* Open the pinned maps (once); reports the failure. */
int ctl_open(struct ctl_ctx *ctx);

/* Parsing an option value. */
int ctl_parse_u32(const char *s, uint32_t *out);

/* A command's options: --name VALUE, --name=VALUE, or a flag. Unique
 * prefixes of names are accepted. */
struct ctl_opt {
	const char *name;
	bool has_arg;
};

/* Parse argv[1..argc) into values[i] (the value of opts[i], "" for a set
 * flag, NULL when absent) and up to max_pos positional arguments. Reports
 * and returns -EINVAL on unknown options, missing values, and extra or
 * missing (fewer than min_pos) positional arguments. */
int ctl_parse_args(struct ctl_ctx *ctx, const char *cmd, int argc,
		   char **argv, const struct ctl_opt *opts, size_t n_opts,
		   const char **values, const char **pos, size_t min_pos,
		   size_t max_pos);

/* Addresses (ctl_util.c). */
#define CTL_ADDR_LEN 64
const char *ctl_addr_str(const union aeth_addr *a, uint8_t family, char *buf);
/* "IP:PORT" or "[IPv6]:PORT" (port in host order). */
const char *ctl_endpoint_str(const union aeth_addr *a, uint8_t family,
			     uint16_t port, char *buf);
int ctl_parse_addr(const char *s, union aeth_addr *a, uint8_t *family);
int ctl_parse_endpoint(const char *s, union aeth_addr *a, uint8_t *family,
		       uint16_t *port);
int ctl_addr_cmp(const union aeth_addr *a, uint8_t fa,
		 const union aeth_addr *b, uint8_t fb);
const char *ctl_proto_str(uint8_t proto);
int ctl_parse_proto(const char *s, uint8_t *proto);

/* A configured service as people know it. */
struct ctl_service {
	uint32_t id;
	struct aeth_svcinfo info;
	bool live;		/* aeth_svc holds its entry */
	struct aeth_svc svc;	/* valid when live */
	char label[AETH_NAME_LEN + 64]; /* name, else VIP:PORT/PROTO */
};

/* Every in-use service, sorted by name then VIP, port, protocol. */
int ctl_services_load(struct ctl_ctx *ctx, struct ctl_service **out,
		      size_t *n);
/* SERVICE argument: a name or VIP:PORT/PROTO. Reports a miss. */
int ctl_service_resolve(struct ctl_ctx *ctx, const char *arg,
			struct ctl_service *out);
/* Service id among svcs, or NULL when it is not in use. */
const struct ctl_service *ctl_service_by_id(const struct ctl_service *svcs,
					    size_t n, uint32_t id);
/* Label of service id, or "#id" when it is not in use. */
const char *ctl_service_label(const struct ctl_service *svcs, size_t n,
			      uint32_t id, char *buf, size_t len);

struct ctl_backend {
	uint32_t id;
	struct aeth_backend be;
};

/* Every in-use backend, in id order. */
int ctl_backends_load(struct ctl_ctx *ctx, struct ctl_backend **out,
		      size_t *n);
const struct ctl_backend *ctl_backend_find(const struct ctl_backend *bes,
					   size_t n, uint32_t id);
/* "active", "draining" or "removed". */
const char *ctl_backend_state(const struct aeth_backend *be);

/* Open the inner map at outer[slot] of a map-in-map: a new fd or -ENOENT. */
int ctl_inner_map_fd(int outer_fd, uint32_t slot);

/* The VIP filter of a loaded program (bpf/service.h lb_vip_filter, a
 * global of the program, found through its .bss map's BTF). */
struct ctl_vip_filter {
	bool read;
	bool in_force;		/* its stamp is the tables' (aeth_stamp) */
	uint64_t stamp, tables_stamp;
	uint32_t open_buckets;	/* bits clear: buckets that may hold a VIP */
	uint32_t vips_hidden;	/* VIPs of aeth_vip whose bit is set */
};

/* 0, -ENOENT (no program of that id, or one without the filter), or
 * -errno. */
int ctl_vip_filter_view(struct ctl_ctx *ctx, uint32_t prog_id,
			struct ctl_vip_filter *out);

/* A map of loaded program prog_id that match accepts (its info read):
 * a new fd, -ENOENT when none does, or -errno. */
typedef bool (*ctl_map_match_fn)(const struct bpf_map_info *mi, void *arg);
int ctl_prog_map_fd(uint32_t prog_id, ctl_map_match_fn match, void *arg);

/* Whether an interface of meta before i runs the same program as
 * interface i (a program on several interfaces is read once). */
bool ctl_prog_seen_before(const struct aeth_meta *meta, uint32_t i);

/* Count the CPUs that fn marks in marked[ncpus] from the per-CPU array map
 * (its name and shape) of each program aeth_meta names as attached (a program on
 * several interfaces read once, one without such a map skipped): a CPU
 * counts once whichever program marks it. 0, or the first error of fn or
 * of finding a map; *marked and *ncpus are set even then (what was read
 * before it). */
struct ctl_pcpu_map {
	const char *name;	/* as the program names it */
	__u32 value_size, max_entries;
};
typedef int (*ctl_cpu_mark_fn)(int fd, int ncpus, bool *marked, void *arg);
int ctl_mark_cpus(struct ctl_ctx *ctx, const struct ctl_pcpu_map *map,
		  ctl_cpu_mark_fn fn, void *arg, unsigned int *marked,
		  unsigned int *ncpus);

/* Which CPUs admit a new connection of service svc from their lease of its
 * cap's tokens (lb_rl_svc_lease of the programs aeth_meta names,
 * bpf/guard.h) although the shared bucket, at tat, refuses it: a lease's
 * tokens are spent within the tick they were taken in. */
struct ctl_leases {
	unsigned int cpus;	/* CPUs admitting (any program's lease) */
	unsigned int ncpus;
};

/* At now (ctl_now_coarse_ns): 0 or -errno. */
int ctl_service_leases(struct ctl_ctx *ctx, const struct aeth_svc *svc,
		       uint64_t tat, uint64_t now, struct ctl_leases *out);

/* Which CPUs refuse a source from their memory of refusals (lb_rl_refused
 * of the programs aeth_meta names, bpf/guard.h) although its shared bucket
 * may conform: a memory outlives the bucket's refusal by up to one
 * interval after a charge is given back. */
struct ctl_refusals {
	unsigned int cpus;	/* CPUs refusing (any program's memory) */
	unsigned int ncpus;
	uint64_t until_ns;	/* the latest end of those refusals */
};

/* Source key k of service svc at now (ctl_now_coarse_ns): 0 or -errno. */
int ctl_remembered_refusals(struct ctl_ctx *ctx,
			    const struct aeth_rl_src_key *k,
			    const struct aeth_svc *svc, uint64_t now,
			    struct ctl_refusals *out);

/* Call fn for every entry of a map (aeth_map_foreach of map_iter.h: batched
 * where the kernel can). fn returns 0 to go on, or a negative errno to stop
 * with it (not reported here). Reports read failures. */
typedef int (*ctl_entry_fn)(const void *key, const void *value, void *arg);
int ctl_map_foreach(struct ctl_ctx *ctx, int fd, const char *map_name,
		    size_t key_size, size_t value_size, ctl_entry_fn fn,
		    void *arg);

/* The monotonic clock the data path reads for limits and connection ages
 * (bpf_ktime_get_coarse_ns). */
uint64_t ctl_now_coarse_ns(void);

#endif /* AETHER_CTL_H */
