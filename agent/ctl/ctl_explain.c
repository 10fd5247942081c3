/* aetherctl explain: what the data path would do with one TCP/UDP packet,
 * from the live maps, the data path's own flow hash, and its rules in its
 * order (bpf/aether_lb.bpf.c, bpf/guard.h). Reads only: no limiter is
 * charged, no connection recorded. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "aether/acl_key.h"
#include "aether/backend_rule.h"
#include "aether/ct_rule.h"
#include "aether/flow_hash.h"
#include "aether/names.h"
#include "aether/ratelimit_rule.h"
#include "ctl.h"

struct verdict {
	const char *verdict;	/* tx, pass, drop */
	const char *reason;	/* a drop reason, or why it passes/goes */
	bool have_svc;
	struct aeth_svc svc;
	bool have_backend;
	uint32_t backend_id;
	struct aeth_backend be;
	bool have_hash;
	uint32_t hash, slot;
	/* CPUs refusing the source from their memory of refusals while its
	 * shared bucket conforms (cpus 0: none) */
	struct ctl_refusals remembered;
	int remembered_err;	/* why they could not be read, or 0 */
	/* CPUs admitting from their lease of the service cap's tokens while
	 * the shared bucket refuses (cpus 0: none) */
	struct ctl_leases leases;
	int leases_err;		/* why they could not be read, or 0 */
};

/* The ACL rule as bpf/guard.h applies it (aether/acl_key.h): the source as
 * a host key in the service's trie, IPv4 as ::ffff:a.b.c.d/128. */
static bool source_authorized(struct ctl_ctx *ctx, const struct aeth_svc *svc,
			      const struct aeth_flow *f)
{
	struct aeth_acl_key key;
	__u32 family;
	bool hit;
	int fd;

	if (!(svc->flags & AETH_SVC_F_ACL))
		return true;
	fd = ctl_inner_map_fd(ctx->fds.acl, svc->acl_slot);
	if (fd < 0)
		return false;	/* enabled without a list: closed */
	if (aeth_acl_v4_mapped(f)) {
		close(fd);
		return false;
	}
	memset(&key, 0, sizeof(key));
	aeth_acl_host_key(&key, f);
	hit = bpf_map_lookup_elem(fd, &key, &family) == 0;
	close(fd);
	return aeth_acl_hit_admits(hit ? &family : NULL, f);
}

/* Which limiter would refuse a new connection now (-1: none), by the rules
 * of aether/ratelimit_rule.h (the source's bucket key, GCRA). The service
 * cap is looked at first, as the data path does: a cap whose shared bucket
 * refuses may still admit on CPUs holding tokens of it (their leases,
 * bpf/guard.h); it is refused unless all do, and v->leases says how many.
 * A source whose bucket conforms may still be refused by some CPUs' memory
 * of refusals (bpf/guard.h): then it is refused, and v->remembered says on
 * how many CPUs (a packet on another one would be admitted). */
static int limiter_refusal(struct ctl_ctx *ctx, const struct aeth_svc *svc,
			   const struct aeth_flow *f, struct verdict *v)
{
	uint64_t now = ctl_now_coarse_ns();
	__u32 id = svc->id;

	if (svc->svc_interval_ns) {
		struct aeth_rl_svc_state st;

		if (!bpf_map_lookup_elem(ctx->fds.rl_svc, &id, &st) &&
		    !aeth_gcra_conforms(st.tat_ns, now, svc->svc_tolerance_ns)) {
			/* refused unless every CPU admits from its lease;
			 * not read: the shared bucket's answer stands */
			v->leases_err = ctl_service_leases(ctx, svc, st.tat_ns,
							   now, &v->leases);
			if (v->leases_err ||
			    v->leases.cpus < v->leases.ncpus)
				return AETH_R_SERVICE_RATE_LIMITED;
		}
	}
	if (svc->src_interval_ns) {
		struct aeth_rl_src_key key;
		struct aeth_rl_src_state st;

		aeth_rl_src_key(&key, svc, f);
		if (!bpf_map_lookup_elem(ctx->fds.rl_src, &key, &st) &&
		    !aeth_gcra_conforms(st.tat_ns, now, svc->src_tolerance_ns))
			return AETH_R_RATE_LIMITED;
		/* not read (no right to the programs, say): the shared
		 * bucket's answer stands, and the output says so */
		v->remembered_err = ctl_remembered_refusals(ctx, &key, svc,
							    now,
							    &v->remembered);
		if (!v->remembered_err && v->remembered.cpus)
			return AETH_R_RATE_LIMITED;
	}
	return -1;
}

/* The service of the flow's destination into v->svc (the port's, else the
 * VIP's every-port one). False, with v's verdict set, when there is none. */
static bool find_service(struct ctl_ctx *ctx, const struct aeth_flow *f,
			 struct verdict *v)
{
	struct aeth_vip_key vk;
	struct aeth_svc_key sk;
	__u32 count;

	memset(&vk, 0, sizeof(vk));
	vk.addr = f->dst;
	vk.family = f->family;
	if (bpf_map_lookup_elem(ctx->fds.vip, &vk, &count)) {
		v->verdict = "pass";
		v->reason = "not_service";
		return false;
	}
	memset(&sk, 0, sizeof(sk));
	sk.vip = f->dst;
	sk.port = f->dport;
	sk.proto = f->proto;
	sk.family = f->family;
	if (bpf_map_lookup_elem(ctx->fds.svc, &sk, &v->svc)) {
		sk.port = 0;	/* the every-port service of this VIP */
		if (bpf_map_lookup_elem(ctx->fds.svc, &sk, &v->svc)) {
			v->verdict = "drop";
			v->reason = aeth_reason_names[AETH_R_UNCONFIGURED_PORT];
			return false;
		}
	}
	v->have_svc = true;
	return true;
}

/* The flow's connection entry as the data path judges it
 * (aether/ct_rule.h): AETH_CT_USE (v names its backend), AETH_CT_NEW, or
 * AETH_CT_RESELECT for a stale entry or a stray TCP packet (Maglev without
 * charging the limiters). A TCP SYN reads no entry: always AETH_CT_NEW. */
static int judge_conntrack(struct ctl_ctx *ctx, const struct aeth_flow *f,
			   bool syn, const struct aeth_node *node,
			   struct verdict *v)
{
	struct aeth_ct_key key = aeth_ct_key_of(f, v->svc.id);
	struct aeth_ct_entry ce;
	struct aeth_ct_table t;
	struct aeth_backend be;
	bool have;
	int judge, r;

	if (!aeth_ct_reads_table(f->proto, syn))
		return AETH_CT_NEW;
	r = ctl_ct_table(ctx, &t);
	if (r)
		return r;
	if (aeth_ct_table_get(&t, &key, &ce))
		return f->proto == IPPROTO_TCP ? AETH_CT_RESELECT : AETH_CT_NEW;
	have = !bpf_map_lookup_elem(ctx->fds.backend, &ce.backend_id, &be);
	judge = aeth_ct_judge(&ce, have ? &be : NULL, v->svc.id, f->proto,
			      (uint32_t)(ctl_now_coarse_ns() / 1000000000ull),
			      node->udp_timeout_s);
	if (judge == AETH_CT_USE) {
		v->verdict = "tx";
		v->reason = "conntrack";
		v->have_backend = true;
		v->backend_id = ce.backend_id;
		v->be = be;
	}
	return judge;
}

/* Maglev: the flow hash's slot and the backend there, when it may take
 * the flow (aether/flow_hash.h, aether/backend_rule.h). */
static void pick_maglev(struct ctl_ctx *ctx, const struct aeth_flow *f,
			const struct aeth_node *node, struct verdict *v)
{
	__u32 id;
	int fd, r;

	v->verdict = "drop";
	v->reason = aeth_reason_names[AETH_R_NO_BACKEND];
	if (!v->svc.table_size)
		return;
	v->have_hash = true;
	v->hash = aeth_flow_hash(f, node->hash_seed);
	v->slot = aeth_maglev_slot(v->hash, v->svc.table_size);
	fd = ctl_inner_map_fd(ctx->fds.maglev, v->svc.maglev_slot);
	if (fd < 0)
		return;
	r = bpf_map_lookup_elem(fd, &v->slot, &id);
	close(fd);
	if (r || id == AETH_NO_BACKEND)
		return;
	v->backend_id = id;
	if (bpf_map_lookup_elem(ctx->fds.backend, &id, &v->be) ||
	    !aeth_backend_usable(&v->be, v->svc.id))
		return;
	v->verdict = "tx";
	v->reason = "maglev";
	v->have_backend = true;
}

static int decide_backend(struct ctl_ctx *ctx, const struct aeth_flow *f,
			  bool syn, struct verdict *v)
{
	struct aeth_node node;
	__u32 zero = 0;
	int r, judge;

	memset(v, 0, sizeof(*v));
	if (!find_service(ctx, f, v))
		return 0;
	if (!source_authorized(ctx, &v->svc, f)) {
		v->verdict = "drop";
		v->reason = aeth_reason_names[AETH_R_NOT_AUTHORIZED];
		return 0;
	}
	if (bpf_map_lookup_elem(ctx->fds.node, &zero, &node)) {
		r = -errno;
		ctl_error(ctx, "reading %s: %s", AETH_MAP_NODE, strerror(-r));
		return r;
	}
	judge = judge_conntrack(ctx, f, syn, &node, v);
	if (judge < 0)
		return judge;
	if (judge == AETH_CT_USE)
		return 0;
	if (judge != AETH_CT_RESELECT) {
		/* a new connection: TCP SYN, or UDP without a live entry */
		r = limiter_refusal(ctx, &v->svc, f, v);
		if (r >= 0) {
			v->verdict = "drop";
			v->reason = aeth_reason_names[r];
			return 0;
		}
	}
	pick_maglev(ctx, f, &node, v);
	return 0;
}

/* The backend, then what forwarding needs: an outer source address of the
 * backend's family (the route itself is the kernel's to judge). */
static int decide(struct ctl_ctx *ctx, const struct aeth_flow *f, bool syn,
		  struct verdict *v)
{
	struct aeth_node node;
	__u32 zero = 0;
	int ret;

	ret = decide_backend(ctx, f, syn, v);
	if (ret || !v->have_backend)
		return ret;
	if (bpf_map_lookup_elem(ctx->fds.node, &zero, &node)) {
		ret = -errno;
		ctl_error(ctx, "reading %s: %s", AETH_MAP_NODE, strerror(-ret));
		return ret;
	}
	if (!(node.flags & (v->be.family == AETH_AF_INET ? AETH_NODE_F_V4
							 : AETH_NODE_F_V6))) {
		v->verdict = "drop";
		v->reason = aeth_reason_names[AETH_R_NO_ROUTE];
	}
	return 0;
}

/* --src, --dst, --proto and --syn into the flow f and *syn. */
static int explain_parse(struct ctl_ctx *ctx, int argc, char **argv,
			 struct aeth_flow *f, bool *syn)
{
	static const struct ctl_opt opts[] = { { "src", true }, { "dst", true },
					       { "proto", true },
					       { "syn", false } };
	const char *val[4];
	uint8_t sfam, dfam, proto;
	uint16_t sport, dport;
	int ret;

	ret = ctl_parse_args(ctx, "explain", argc, argv, opts, 4, val, NULL, 0, 0);
	if (ret)
		return ret;
	if (!val[0] || !val[1] || !val[2])
		return ctl_usage_error(ctx, "explain: --src, --dst and --proto "
				       "are required (see explain --help)");
	memset(f, 0, sizeof(*f));
	if (ctl_parse_endpoint(val[0], &f->src, &sfam, &sport))
		return ctl_usage_error(ctx, "explain: --src: not IP:PORT or "
				       "[IPv6]:PORT: %s", val[0]);
	if (ctl_parse_endpoint(val[1], &f->dst, &dfam, &dport))
		return ctl_usage_error(ctx, "explain: --dst: not IP:PORT or "
				       "[IPv6]:PORT: %s", val[1]);
	if (sfam != dfam)
		return ctl_usage_error(ctx, "explain: --src and --dst are of "
				       "different address families");
	if (ctl_parse_proto(val[2], &proto))
		return ctl_usage_error(ctx, "explain: --proto: tcp or udp: %s",
				       val[2]);
	if (val[3] && proto != IPPROTO_TCP)
		return ctl_usage_error(ctx, "explain: --syn is for tcp");
	f->sport = htons(sport);
	f->dport = htons(dport);
	f->proto = proto;
	f->family = sfam;
	*syn = val[3] != NULL;
	return 0;
}

static int explain_print(struct ctl_ctx *ctx, const struct verdict *v,
			 const char *svc_lbl, const char *be)
{
	if (ctx->json) {
		json_t *doc = json_pack("{s:s, s:s, s:s?}", "verdict", v->verdict,
					"reason", v->reason, "backend",
					v->have_backend ? be : NULL);

		if (v->have_svc)
			json_object_set_new(doc, "service", json_string(svc_lbl));
		if (v->have_backend)
			json_object_set_new(doc, "backend_id",
					    json_integer(v->backend_id));
		if (v->have_hash) {
			json_object_set_new(doc, "hash", json_integer(v->hash));
			json_object_set_new(doc, "slot", json_integer(v->slot));
		}
		if (v->remembered_err)
			json_object_set_new(doc, "remembered_refusal_error",
				json_string(strerror(-v->remembered_err)));
		if (v->remembered.cpus)
			json_object_set_new(doc, "remembered_refusal",
				json_pack("{s:i, s:i, s:I}", "cpus",
					  (int)v->remembered.cpus, "of",
					  (int)v->remembered.ncpus, "until_ns",
					  (json_int_t)v->remembered.until_ns));
		if (v->leases_err)
			json_object_set_new(doc, "service_cap_leases_error",
				json_string(strerror(-v->leases_err)));
		if (v->leases.cpus)
			json_object_set_new(doc, "service_cap_leases",
				json_pack("{s:i, s:i}", "cpus",
					  (int)v->leases.cpus, "of",
					  (int)v->leases.ncpus));
		return ctl_json_print(ctx, doc);
	}
	printf("verdict  %s\nreason   %s\n", v->verdict, v->reason);
	if (v->remembered_err)
		printf("note     the programs' memory of refusals was not read "
		       "(%s): a source it refuses may show as admitted\n",
		       strerror(-v->remembered_err));
	if (v->remembered.cpus) {
		uint64_t now = ctl_now_coarse_ns(), end = v->remembered.until_ns;

		printf("note     refused from the memory of refusals of %u of "
		       "%u CPUs for %.1f ms more; its shared bucket conforms "
		       "(on the other CPUs it would be admitted)\n",
		       v->remembered.cpus, v->remembered.ncpus,
		       end > now ? (double)(end - now) / 1e6 : 0.0);
	}
	if (v->leases_err)
		printf("note     the programs' leases of the service cap were "
		       "not read (%s): a CPU holding tokens may admit\n",
		       strerror(-v->leases_err));
	if (v->leases.cpus)
		printf("note     %u of %u CPUs admit from their lease of the "
		       "service cap's tokens %s\n",
		       v->leases.cpus, v->leases.ncpus,
		       v->leases.cpus < v->leases.ncpus ?
			       "(the shared bucket refuses on the others)" :
			       "(the shared bucket alone would refuse)");
	if (v->have_svc)
		printf("service  %s\n", svc_lbl);
	if (v->have_hash)
		printf("hash     0x%08x  slot %u of %u\n", v->hash, v->slot,
		       v->svc.table_size);
	if (v->have_backend)
		printf("backend  %s\n", be);
	return 0;
}

static int explain_run(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct aeth_flow f;
	struct ctl_service *svcs = NULL;
	char svc_lbl[AETH_NAME_LEN + 64] = "", be[CTL_ADDR_LEN] = "";
	struct verdict v;
	size_t ns = 0;
	bool syn = false;
	int ret;

	ret = explain_parse(ctx, argc, argv, &f, &syn);
	if (ret)
		return ret;
	ret = ctl_open(ctx);
	if (ret)
		return ret;
	ret = decide(ctx, &f, syn, &v);
	if (ret)
		return ret;
	if (v.have_svc) {
		char tmp[24];

		ret = ctl_services_load(ctx, &svcs, &ns);
		if (ret)
			return ret;
		snprintf(svc_lbl, sizeof(svc_lbl), "%s",
			 ctl_service_label(svcs, ns, v.svc.id, tmp, sizeof(tmp)));
		free(svcs);
	}
	if (v.have_backend)
		ctl_addr_str(&v.be.addr, v.be.family, be);
	return explain_print(ctx, &v, svc_lbl, be);
}

const struct ctl_object ctl_obj_explain = {
	.name = "explain",
	.handler = explain_run,
	.usage = "--src IP:PORT --dst VIP:PORT --proto tcp|udp [--syn]",
	.summary = "What the data path would do with such a packet: verdict "
		   "(tx, pass, drop),\nreason and backend, from the live maps "
		   "and the data path's own flow hash.\n--syn: a TCP SYN (always a "
		   "new connection: rate limits, then Maglev;\nany connection "
		   "entry of the tuple is replaced).\nIPv6: --src "
		   "[2001:db8::1]:40000.",
};
