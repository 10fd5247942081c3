/* aetherctl stats: the data path's counters summed over CPUs, per CPU, or
 * as rates over an interval. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "aether/names.h"
#include "ctl.h"
#include "map_iter.h"

#define SVC_WORDS (sizeof(struct aeth_svc_stats) / 8)
#define GLOBAL_WORDS (sizeof(struct aeth_global_stats) / 8)

/* One reading of every counter: per CPU, and the sum at index ncpus. */
struct stats_snap {
	int ncpus;
	size_t nsvc;
	struct ctl_service *svcs;
	struct aeth_svc_stats *svc;		/* nsvc * (ncpus + 1) */
	struct aeth_global_stats *global;	/* ncpus + 1 */
};

static void snap_free(struct stats_snap *s)
{
	free(s->svc);
	free(s->global);
	memset(s, 0, sizeof(*s));
}

/* Read per-CPU values of key into out[0..ncpus) and their sum in
 * out[ncpus]. size is a multiple of 8, so the stride is size. */
static int read_percpu(int fd, uint32_t key, void *out, size_t size,
		       int ncpus)
{
	if (bpf_map_lookup_elem(fd, &key, out))
		return -errno;
	aeth_percpu_fold_u64(out, ncpus, size, (char *)out + (size_t)ncpus * size);
	return 0;
}

static int snap_take(struct ctl_ctx *ctx, struct ctl_service *svcs,
		     size_t nsvc, struct stats_snap *s)
{
	int ret;

	s->ncpus = aeth_ncpus();
	if (s->ncpus <= 0) {
		ctl_error(ctx, "cannot count possible CPUs");
		return -EINVAL;
	}
	s->nsvc = nsvc;
	s->svcs = svcs;
	s->svc = calloc((nsvc ? nsvc : 1) * (s->ncpus + 1), sizeof(*s->svc));
	s->global = calloc(s->ncpus + 1, sizeof(*s->global));
	if (!s->svc || !s->global) {
		ctl_error(ctx, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < nsvc; i++) {
		ret = read_percpu(ctx->fds.svc_stats, svcs[i].id,
				  &s->svc[i * (s->ncpus + 1)],
				  sizeof(struct aeth_svc_stats), s->ncpus);
		if (ret) {
			ctl_error(ctx, "reading %s[%u]: %s", AETH_MAP_SVC_STATS,
				  svcs[i].id, strerror(-ret));
			return ret;
		}
	}
	ret = read_percpu(ctx->fds.global, 0, s->global,
			  sizeof(struct aeth_global_stats), s->ncpus);
	if (ret)
		ctl_error(ctx, "reading %s: %s", AETH_MAP_GLOBAL,
			  strerror(-ret));
	return ret;
}

/* cur -= prev, word by word (counters only grow; a reset shows as 0). */
static void snap_delta(struct stats_snap *cur, const struct stats_snap *prev)
{
	size_t nw = cur->nsvc * (cur->ncpus + 1) * SVC_WORDS;
	uint64_t *c = (uint64_t *)cur->svc;
	const uint64_t *p = (const uint64_t *)prev->svc;

	for (size_t i = 0; i < nw; i++)
		c[i] = c[i] >= p[i] ? c[i] - p[i] : 0;
	nw = (cur->ncpus + 1) * GLOBAL_WORDS;
	c = (uint64_t *)cur->global;
	p = (const uint64_t *)prev->global;
	for (size_t i = 0; i < nw; i++)
		c[i] = c[i] >= p[i] ? c[i] - p[i] : 0;
}

/* A counter: an integer total, or a per-second rate when interval > 0. */
static json_t *num(uint64_t v, double interval)
{
	if (interval > 0)
		return json_real(v / interval);
	return json_integer((json_int_t)v);
}

static json_t *svc_json(const struct aeth_svc_stats *st, double interval)
{
	json_t *drops = json_object();

	for (int r = 0; r < AETH_R_MAX; r++)
		json_object_set_new(drops, aeth_reason_names[r],
				    num(st->drops[r], interval));
	return json_pack("{s:o, s:o, s:o, s:o}", "packets",
			 num(st->packets, interval), "bytes",
			 num(st->bytes, interval), "new_flows",
			 num(st->new_flows, interval), "drops", drops);
}

static void global_json(json_t *obj, const struct aeth_global_stats *g,
			double interval)
{
	json_t *reasons = json_object(), *events = json_object();

	for (int r = 0; r < AETH_R_MAX; r++)
		json_object_set_new(reasons, aeth_reason_names[r],
				    num(g->reasons[r], interval));
	for (int e = 0; e < AETH_EV_MAX; e++)
		json_object_set_new(events, aeth_event_names[e],
				    num(g->events[e], interval));
	json_object_set_new(obj, "reasons", reasons);
	json_object_set_new(obj, "events", events);
}

static int print_json(struct ctl_ctx *ctx, const struct stats_snap *s,
		      bool per_cpu, double interval)
{
	json_t *doc = json_object(), *svcs = json_array();
	int nc = s->ncpus;

	for (size_t i = 0; i < s->nsvc; i++) {
		const struct aeth_svc_stats *v = &s->svc[i * (nc + 1)];
		json_t *o = json_pack("{s:s}", "name", s->svcs[i].label);
		json_t *tot = svc_json(&v[nc], interval);

		json_object_update(o, tot);
		json_decref(tot);
		if (per_cpu) {
			json_t *pc = json_array();

			for (int cpu = 0; cpu < nc; cpu++) {
				json_t *c = svc_json(&v[cpu], interval);

				json_object_set_new(c, "cpu", json_integer(cpu));
				json_array_append_new(pc, c);
			}
			json_object_set_new(o, "per_cpu", pc);
		}
		json_array_append_new(svcs, o);
	}
	if (interval > 0)
		json_object_set_new(doc, "interval", json_real(interval));
	json_object_set_new(doc, "services", svcs);
	global_json(doc, &s->global[nc], interval);
	if (per_cpu) {
		json_t *pc = json_array();

		for (int cpu = 0; cpu < nc; cpu++) {
			json_t *c = json_object();

			json_object_set_new(c, "cpu", json_integer(cpu));
			global_json(c, &s->global[cpu], interval);
			json_array_append_new(pc, c);
		}
		json_object_set_new(doc, "per_cpu", pc);
	}
	return ctl_json_print(ctx, doc);
}

static void fmt_num(char *buf, size_t len, uint64_t v, double interval)
{
	if (interval > 0)
		snprintf(buf, len, "%.1f/s", v / interval);
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* "not_authorized=3 rate_limited=1", or "-". */
static void fmt_drops(char *buf, size_t len, const __u64 *d,
		      double interval)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int r = 0; r < AETH_R_MAX && off < len; r++) {
		char n[32];

		if (!d[r])
			continue;
		fmt_num(n, sizeof(n), d[r], interval);
		off += snprintf(buf + off, len - off, "%s%s=%s", off ? " " : "",
				aeth_reason_names[r], n);
	}
	if (!buf[0])
		snprintf(buf, len, "-");
}

static void print_text(const struct stats_snap *s, bool per_cpu,
		       double interval)
{
	static const char *const shdr[] = { "SERVICE", "CPU", "PACKETS",
					    "BYTES", "NEW FLOWS", "DROPS" };
	static const char *const ghdr[] = { "COUNTER", "CPU", "VALUE" };
	int nc = s->ncpus;
	struct ctl_table *t = ctl_table_new(6, shdr);

	for (int c = 2; c < 5; c++)
		ctl_table_align_right(t, c);
	for (size_t i = 0; i < s->nsvc; i++) {
		const struct aeth_svc_stats *v = &s->svc[i * (nc + 1)];

		for (int cpu = per_cpu ? 0 : nc; cpu <= nc; cpu++) {
			char p[32], b[32], nf[32], d[512], cs[16];

			fmt_num(p, sizeof(p), v[cpu].packets, interval);
			fmt_num(b, sizeof(b), v[cpu].bytes, interval);
			fmt_num(nf, sizeof(nf), v[cpu].new_flows, interval);
			fmt_drops(d, sizeof(d), v[cpu].drops, interval);
			snprintf(cs, sizeof(cs), cpu == nc ? "all" : "%d", cpu);
			ctl_table_add(t, s->svcs[i].label, cs, p, b, nf, d);
		}
	}
	if (interval > 0)
		printf("rates over %.3gs\n", interval);
	ctl_table_print(t);
	ctl_table_free(t);

	putchar('\n');
	t = ctl_table_new(3, ghdr);
	ctl_table_align_right(t, 2);
	for (int k = 0; k < AETH_R_MAX + AETH_EV_MAX; k++) {
		for (int cpu = per_cpu ? 0 : nc; cpu <= nc; cpu++) {
			const struct aeth_global_stats *g = &s->global[cpu];
			uint64_t v = k < AETH_R_MAX ? g->reasons[k]
						    : g->events[k - AETH_R_MAX];
			char name[48], val[32], cs[16];

			snprintf(name, sizeof(name), "%s %s",
				 k < AETH_R_MAX ? "drop" : "event",
				 k < AETH_R_MAX ? aeth_reason_names[k]
						: aeth_event_names[k - AETH_R_MAX]);
			fmt_num(val, sizeof(val), v, interval);
			snprintf(cs, sizeof(cs), cpu == nc ? "all" : "%d", cpu);
			ctl_table_add(t, name, cs, val);
		}
	}
	ctl_table_print(t);
	ctl_table_free(t);
	fflush(stdout);
}

/* A copy of s's raw reading (ns services), kept for the next delta. */
static int snap_copy(struct ctl_ctx *ctx, const struct stats_snap *s,
		     size_t ns, struct stats_snap *raw)
{
	memset(raw, 0, sizeof(*raw));
	raw->ncpus = s->ncpus;
	raw->nsvc = s->nsvc;
	raw->svc = malloc((ns ? ns : 1) * (s->ncpus + 1) * sizeof(*raw->svc));
	raw->global = malloc((s->ncpus + 1) * sizeof(*raw->global));
	if (!raw->svc || !raw->global) {
		snap_free(raw);
		ctl_error(ctx, "out of memory");
		return -ENOMEM;
	}
	memcpy(raw->svc, s->svc, ns * (s->ncpus + 1) * sizeof(*raw->svc));
	memcpy(raw->global, s->global, (s->ncpus + 1) * sizeof(*raw->global));
	return 0;
}

/* Rates: one line of JSON (or one table) per interval, count times. */
static int stats_rates(struct ctl_ctx *ctx, struct ctl_service *svcs,
		       size_t ns, bool per_cpu, uint32_t interval,
		       uint32_t count)
{
	struct stats_snap prev = { 0 }, cur = { 0 };
	int ret;

	ret = snap_take(ctx, svcs, ns, &prev);
	for (uint32_t i = 0; !ret && i < count; i++) {
		struct stats_snap next = { 0 }, raw;

		sleep(interval);
		ret = snap_take(ctx, svcs, ns, &next);
		if (ret) {
			snap_free(&next);
			break;
		}
		snap_free(&cur);
		cur = next;
		ret = snap_copy(ctx, &cur, ns, &raw);
		if (ret)
			break;
		snap_delta(&cur, &prev);
		if (ctx->json)
			ret = print_json(ctx, &cur, per_cpu, interval);
		else {
			if (i)
				putchar('\n');
			print_text(&cur, per_cpu, interval);
		}
		snap_free(&prev);
		prev = raw;
	}
	snap_free(&prev);
	snap_free(&cur);
	return ret;
}

static int stats_run(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const struct ctl_opt opts[] = { { "per-cpu", false },
					       { "interval", true },
					       { "count", true } };
	struct stats_snap cur = { 0 };
	struct ctl_service *svcs = NULL;
	uint32_t interval = 0, count = 1;
	const char *val[3];
	bool per_cpu;
	size_t ns;
	int ret;

	ret = ctl_parse_args(ctx, "stats", argc, argv, opts, 3, val, NULL, 0, 0);
	if (ret)
		return ret;
	per_cpu = val[0] != NULL;
	if (val[1] && (ctl_parse_u32(val[1], &interval) || !interval ||
		       interval > 86400))
		return ctl_usage_error(ctx, "stats: --interval: seconds, 1..86400: %s",
				       val[1]);
	if (val[2] && (ctl_parse_u32(val[2], &count) || !count))
		return ctl_usage_error(ctx, "stats: --count: a count >= 1: %s",
				       val[2]);
	if (val[2] && !val[1])
		interval = 1;
	ret = ctl_services_load(ctx, &svcs, &ns);
	if (ret)
		return ret;
	if (interval) {
		ret = stats_rates(ctx, svcs, ns, per_cpu, interval, count);
		free(svcs);
		return ret;
	}
	ret = snap_take(ctx, svcs, ns, &cur);
	if (!ret) {
		if (ctx->json)
			ret = print_json(ctx, &cur, per_cpu, 0);
		else
			print_text(&cur, per_cpu, 0);
	}
	snap_free(&cur);
	free(svcs);
	return ret;
}

const struct ctl_object ctl_obj_stats = {
	.name = "stats",
	.handler = stats_run,
	.usage = "[--per-cpu] [--interval SEC --count N]",
	.summary = "Counters of the data path: per service (packets, bytes, new "
		   "flows, drops by\nreason) and in total (drop reasons, events), "
		   "summed over CPUs.\n--per-cpu shows each CPU; --interval SEC "
		   "prints rates per second, --count N times.",
};
