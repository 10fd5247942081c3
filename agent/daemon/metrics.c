/* The operators' HTTP listener (evhttp): /metrics reads the maps at each
 * scrape and prints Prometheus text, /healthz and /readyz report the agent. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "aether/abi.h"
#include "aether/ct_table.h"
#include "aether/names.h"
#include "http_gzip.h"
#include "api_conns.h"
#include "log.h"
#include "map_iter.h"
#include "metrics.h"
#include "pinned.h"
#include "version.h"

#define MAX_HEADERS_SIZE 8192	/* a scraper's request is a few hundred bytes */
#define MAX_BODY_SIZE 4096
#define CONN_TIMEOUT_S 10
#define BATCH_KEYS 1024		/* keys per BPF_MAP_LOOKUP_BATCH call */
#define CT_COUNT_CHUNK 1024	/* buckets (of 8 entries) per step of the count */
#define CT_COUNT_CHUNK_MAX 65536
#define CT_COUNT_PERIOD_S 60
#define STR(x) #x
#define XSTR(x) STR(x)

/* Counting the connection table (up to millions of entries) is too slow
 * for a scrape (about 1 s for 900k entries here), so it runs in the
 * background: a pass of batched lookups, one chunk per loop iteration so
 * requests are served in between. A pass runs at start and then when a
 * scrape finds the last one older than CT_COUNT_PERIOD_S, so nobody pays
 * for it while nobody scrapes. The gauge is the last complete pass. */
struct ct_count {
	struct event *ev;
	bool running;		/* a pass is under way */
	bool in_pass;		/* it is a valid resume point */
	uint64_t done_at_s;	/* CLOCK_MONOTONIC end of the last pass */
	struct aeth_map_iter it;	/* where the pass resumes */
	uint64_t partial, partial_unconfirmed;
	int64_t entries;	/* -1 until a first pass completes */
	int64_t unconfirmed;	/* of those, entries no packet confirmed */
	void *keys, *values;
	uint32_t cap;		/* entries the buffers hold */
	uint32_t key_size, value_size;
};

struct aeth_metrics {
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct aeth_api_conns *conns;	/* connection bounds */
	const struct aeth_map_fds *maps;
	const struct aeth_agent_status *status;
	uint16_t port;
	int ncpus;
	struct ct_count ct;
	aeth_metrics_source_fn source;	/* more samples (Kubernetes watch) */
	void *source_arg;
};

/* One array map read whole: values[key * stride], per-CPU ones summed. */
struct array_read {
	void *values;
	uint32_t n;		/* max_entries */
	size_t stride;		/* value size */
};

static int map_shape(int fd, uint32_t value_size, bool percpu, uint32_t *max_entries)
{
	struct bpf_map_info info = { 0 };
	uint32_t len = sizeof(info);
	int err;

	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (err)
		return -errno;
	if (info.value_size != value_size || info.key_size != sizeof(uint32_t))
		return -EPROTO;	/* layout other than this build's */
	if (percpu != (info.type == BPF_MAP_TYPE_PERCPU_ARRAY))
		return -EPROTO;
	*max_entries = info.max_entries;
	return 0;
}

/* Per-CPU values are ncpus slots of round_up(size, 8) per key; fold them
 * into a compact array of one value per key (u64 counters only). */
static void percpu_fold(const uint8_t *raw, uint8_t *out, uint32_t n,
			size_t size, int ncpus)
{
	size_t slot = aeth_percpu_stride(size) * ncpus;

	for (uint32_t k = 0; k < n; k++)
		aeth_percpu_fold_u64(raw + (size_t)k * slot, ncpus, size,
				     out + (size_t)k * size);
}

/* Read every key of an array map (map_iter.h: batched, one syscall per
 * BATCH_KEYS keys instead of one per key, where the kernel can). */
static int read_array(int fd, size_t value_size, bool percpu, int ncpus,
		      struct array_read *out)
{
	size_t slot = percpu ? aeth_percpu_stride(value_size) * ncpus : value_size;
	uint32_t n = 0, done = 0, count, *keys = NULL;
	struct aeth_map_iter it = { 0 };
	uint8_t *raw = NULL;
	int err, more = 1;

	memset(out, 0, sizeof(*out));
	err = map_shape(fd, (uint32_t)value_size, percpu, &n);
	if (err)
		return err;
	raw = calloc(n ? n : 1, slot);
	keys = calloc(n ? n : 1, sizeof(*keys));
	err = aeth_map_iter_init(&it, fd, sizeof(*keys), slot);
	if (!raw || !keys || err) {
		err = -ENOMEM;
		goto out;
	}
	while (done < n && more > 0) {
		count = n - done < BATCH_KEYS ? n - done : BATCH_KEYS;
		more = aeth_map_iter_next(&it, keys + done,
					  raw + (size_t)done * slot, &count);
		if (more < 0) {
			err = more;
			goto out;
		}
		done += count;
	}
	/* arrays come back in key order; trust but verify */
	for (uint32_t i = 0; i < done; i++) {
		if (keys[i] != i) {
			err = -EPROTO;
			goto out;
		}
	}
	if (done != n) {
		err = -EPROTO;
		goto out;
	}
	if (percpu) {
		uint8_t *sum = malloc((size_t)(n ? n : 1) * value_size);

		if (!sum) {
			err = -ENOMEM;
			goto out;
		}
		percpu_fold(raw, sum, n, value_size, ncpus);
		free(raw);
		raw = sum;
	}
	out->values = raw;
	out->n = n;
	out->stride = value_size;
	raw = NULL;
out:
	aeth_map_iter_free(&it);
	free(raw);
	free(keys);
	return err;
}

static void *array_at(const struct array_read *a, uint32_t key)
{
	return key < a->n ? (uint8_t *)a->values + (size_t)key * a->stride : NULL;
}

/* Append s to line at *len with Prometheus label escaping (backslash,
 * double quote, newline); line has room for twice max plus one. */
static void put_label(char *line, size_t *len, const char *s, size_t max)
{
	size_t n = *len;

	for (size_t i = 0; i < max && s[i]; i++) {
		if (s[i] == '\\' || s[i] == '"') {
			line[n++] = '\\';
			line[n++] = s[i];
		} else if (s[i] == '\n') {
			line[n++] = '\\';
			line[n++] = 'n';
		} else {
			line[n++] = s[i];
		}
	}
	*len = n;
}

static void put_str(char *line, size_t *len, const char *s)
{
	size_t n = strlen(s);

	memcpy(line + *len, s, n);
	*len += n;
}

static void add_family(struct evbuffer *b, const char *name, const char *type,
		       const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{service="S"[,KEY="VALUE"]} N, built in one piece: a full page has
 * over 100k of these. name, key and value are ours and short. */
static void add_svc_sample(struct evbuffer *b, const char *name,
			   const struct aeth_svcinfo *info, const char *key,
			   const char *value, uint64_t n)
{
	char line[160 + 2 * AETH_NAME_LEN + 2 * INET6_ADDRSTRLEN];
	size_t len = 0;

	put_str(line, &len, name);
	put_str(line, &len, "{service=\"");
	put_label(line, &len, info->name, sizeof(info->name));
	if (key) {
		put_str(line, &len, "\",");
		put_str(line, &len, key);
		put_str(line, &len, "=\"");
		put_label(line, &len, value, INET6_ADDRSTRLEN);
	}
	len += (size_t)snprintf(line + len, sizeof(line) - len, "\"} %llu\n",
				(unsigned long long)n);
	evbuffer_add(b, line, len < sizeof(line) ? len : sizeof(line) - 1);
}

static bool svc_in_use(const struct array_read *svcinfo, uint32_t id)
{
	const struct aeth_svcinfo *info = array_at(svcinfo, id);

	return info && (info->flags & AETH_SVCINFO_F_IN_USE);
}

static void scrape_services(struct evbuffer *b, const struct array_read *svcinfo,
			    const struct array_read *stats)
{
	static const struct {
		const char *name, *help;
	} fam[] = {
		{ "aether_packets_total",
		  "Packets per service: tx forwarded to a backend, drop dropped for any reason." },
		{ "aether_bytes_total", "Bytes forwarded to a backend per service." },
		{ "aether_new_flows_total", "New connections per service." },
		{ "aether_drops_total", "Packets dropped per service and reason." },
	};

	/* Prometheus wants each family's samples together: one pass each */
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		add_family(b, fam[f].name, "counter", fam[f].help);
		for (uint32_t id = 0; id < svcinfo->n; id++) {
			const struct aeth_svcinfo *info = array_at(svcinfo, id);
			const struct aeth_svc_stats *s = array_at(stats, id);
			uint64_t drops = 0;

			if (!svc_in_use(svcinfo, id) || !s)
				continue;
			for (int r = 0; r < AETH_R_MAX; r++)
				drops += s->drops[r];
			switch (f) {
			case 0:
				add_svc_sample(b, fam[f].name, info, "verdict", "tx",
					       s->packets);
				add_svc_sample(b, fam[f].name, info, "verdict",
					       "drop", drops);
				break;
			case 1:
				add_svc_sample(b, fam[f].name, info, NULL, NULL,
					       s->bytes);
				break;
			case 2:
				add_svc_sample(b, fam[f].name, info, NULL, NULL,
					       s->new_flows);
				break;
			default:
				for (int r = 0; r < AETH_R_MAX; r++)
					add_svc_sample(b, fam[f].name, info, "reason",
						       aeth_reason_names[r],
						       s->drops[r]);
			}
		}
	}
}

/* The data path's events, one metric per meaning (Prometheus naming): a
 * family groups only events that partition one count (how an encapsulated
 * packet left, hit or miss). Rows of a family are adjacent. */
static const struct {
	int event;
	const char *name, *label, *help;
} event_metrics[] = {
	{ AETH_EV_TX, "aether_forwarded_packets_total", "path=\"tx\"",
	  "Packets encapsulated to a backend, by how they left: tx back out of "
	  "the NIC, redirect to another NIC, to_stack_no_neigh or to_stack_frag "
	  "through the kernel's stack." },
	{ AETH_EV_REDIRECT, "aether_forwarded_packets_total", "path=\"redirect\"", NULL },
	{ AETH_EV_TO_STACK_NO_NEIGH, "aether_forwarded_packets_total",
	  "path=\"to_stack_no_neigh\"", NULL },
	{ AETH_EV_TO_STACK_FRAG, "aether_forwarded_packets_total",
	  "path=\"to_stack_frag\"", NULL },
	{ AETH_EV_PASS_NOT_SERVICE, "aether_passed_packets_total", NULL,
	  "Packets for neither a VIP nor a tunnel, passed to the stack untouched." },
	{ AETH_EV_DECAP, "aether_decapsulated_packets_total", NULL,
	  "Tunnel packets from an LB node decapsulated for a service this node backs." },
	{ AETH_EV_CT_HIT, "aether_conntrack_lookups_total", "result=\"hit\"",
	  "Connection-table lookups by result." },
	{ AETH_EV_CT_MISS, "aether_conntrack_lookups_total", "result=\"miss\"", NULL },
	{ AETH_EV_CT_INSERT, "aether_conntrack_inserts_total", NULL,
	  "New connections recorded in the connection table." },
	{ AETH_EV_CT_INSERT_SKIPPED, "aether_conntrack_inserts_skipped_total", NULL,
	  "New connections balanced but not recorded: the CPU's insert budget "
	  "(conntrack.insert_rate_per_cpu) was spent." },
	{ AETH_EV_CT_RESELECT, "aether_conntrack_reselects_total", NULL,
	  "Connections whose recorded backend was removed, given a new one." },
	{ AETH_EV_ICMP_TOO_BIG_SENT, "aether_icmp_too_big_sent_total", NULL,
	  "ICMP fragmentation-needed / packet-too-big answers sent to clients." },
	{ AETH_EV_ICMP_STEERED, "aether_icmp_errors_steered_total", NULL,
	  "ICMP errors about a service flow forwarded to that flow's backend." },
	{ AETH_EV_ICMP_TOO_BIG_LIMITED, "aether_icmp_too_big_limited_total", NULL,
	  "Too-big packets whose ICMP answer the per-CPU budget "
	  "(icmp.too_big_per_second_per_cpu) refused." },
	{ AETH_EV_CT_EXPIRED, "aether_conntrack_expired_total", NULL,
	  "Idle UDP entries found expired (conntrack.udp_timeout_s): the packet "
	  "started a new connection." },
	{ AETH_EV_CT_STRAY, "aether_conntrack_stray_total", NULL,
	  "TCP packets without an entry that are not a SYN: forwarded by Maglev, "
	  "not recorded." },
	{ AETH_EV_CT_EVICTED, "aether_conntrack_evicted_total", NULL,
	  "New entries written over the least recently seen entry of a full "
	  "bucket of the connection table (one no packet confirmed counted "
	  "60 s older)." },
};
_Static_assert(sizeof(event_metrics) / sizeof(event_metrics[0]) == AETH_EV_MAX,
	       "every event has its metric");

static void scrape_global(struct evbuffer *b, const struct aeth_global_stats *g)
{
	add_family(b, "aether_node_drops_total", "counter",
		   "Packets dropped per reason on this node: every service and "
		   "traffic no service matched.");
	for (int r = 0; r < AETH_R_MAX; r++)
		evbuffer_add_printf(b, "aether_node_drops_total{reason=\"%s\"} %llu\n",
				    aeth_reason_names[r],
				    (unsigned long long)g->reasons[r]);
	for (size_t i = 0; i < sizeof(event_metrics) / sizeof(event_metrics[0]); i++) {
		if (event_metrics[i].help)
			add_family(b, event_metrics[i].name, "counter",
				   event_metrics[i].help);
		evbuffer_add_printf(b, "%s%s%s%s %llu\n", event_metrics[i].name,
				    event_metrics[i].label ? "{" : "",
				    event_metrics[i].label ? event_metrics[i].label : "",
				    event_metrics[i].label ? "}" : "",
				    (unsigned long long)g->events[event_metrics[i].event]);
	}
}

static void scrape_backends(struct evbuffer *b, const struct array_read *svcinfo,
			    const struct array_read *backends,
			    const struct array_read *stats)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "aether_backend_packets_total", "counter",
		  "Packets forwarded to a backend." },
		{ "aether_backend_bytes_total", "counter",
		  "Bytes forwarded to a backend." },
		{ "aether_backend_up", "gauge",
		  "1 when the backend passes its health check (or has none)." },
		{ "aether_backend_draining", "gauge",
		  "1 when the backend takes no new connections." },
	};
	static const struct aeth_svcinfo no_service;

	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		add_family(b, fam[f].name, fam[f].type, fam[f].help);
		for (uint32_t id = 0; id < backends->n; id++) {
			const struct aeth_backend *be = array_at(backends, id);
			const struct aeth_be_stats *s = array_at(stats, id);
			const struct aeth_svcinfo *info = &no_service;
			char addr[INET6_ADDRSTRLEN] = "";
			uint64_t v;

			if (!(be->flags & AETH_BE_F_IN_USE))
				continue;
			if (svc_in_use(svcinfo, be->svc_id))
				info = array_at(svcinfo, be->svc_id);
			inet_ntop(be->family == AETH_AF_INET6 ? AF_INET6 : AF_INET,
				  be->addr.bytes, addr, sizeof(addr));
			switch (f) {
			case 0:
				v = s ? s->packets : 0;
				break;
			case 1:
				v = s ? s->bytes : 0;
				break;
			case 2:
				v = !(be->flags & AETH_BE_F_UNHEALTHY);
				break;
			default:
				v = !!(be->flags & AETH_BE_F_DRAINING);
			}
			add_svc_sample(b, fam[f].name, info, "backend", addr, v);
		}
	}
}

static void scrape_agent(struct evbuffer *b, const struct aeth_agent_status *st)
{
	add_family(b, "aether_build_info", "gauge",
		   "Always 1; the labels say which build is running.");
	evbuffer_add_printf(b, "aether_build_info{version=\"%s\",commit=\"%s\"} 1\n",
			    AETH_VERSION, AETH_COMMIT);
	add_family(b, "aether_config_generation", "gauge",
		   "Generation of the applied configuration document.");
	evbuffer_add_printf(b, "aether_config_generation %llu\n",
			    (unsigned long long)st->generation);
	add_family(b, "aether_config_apply_total", "counter",
		   "Configuration documents by outcome: ok applied, rejected "
		   "invalid, failed refused by the maps.");
	evbuffer_add_printf(b, "aether_config_apply_total{result=\"ok\"} %llu\n",
			    (unsigned long long)st->apply_ok);
	evbuffer_add_printf(b, "aether_config_apply_total{result=\"rejected\"} %llu\n",
			    (unsigned long long)st->apply_rejected);
	evbuffer_add_printf(b, "aether_config_apply_total{result=\"failed\"} %llu\n",
			    (unsigned long long)st->apply_failed);
	add_family(b, "aether_config_last_apply_success", "gauge",
		   "1 when the last document offered (file, SIGHUP or API) was "
		   "applied, 0 when it was rejected or failed.");
	evbuffer_add_printf(b, "aether_config_last_apply_success %d\n",
			    st->last_apply_ok);
	add_family(b, "aether_config_last_apply_timestamp_seconds", "gauge",
		   "Unix time of the last document offered, applied or not.");
	evbuffer_add_printf(b, "aether_config_last_apply_timestamp_seconds %.3f\n",
			    st->last_apply_unix_ns / 1e9);
	add_family(b, "aether_config_last_success_timestamp_seconds", "gauge",
		   "Unix time of the last document applied.");
	evbuffer_add_printf(b, "aether_config_last_success_timestamp_seconds %.3f\n",
			    st->last_success_unix_ns / 1e9);
	add_family(b, "aether_ready", "gauge",
		   "1 once a configuration is applied and the program is attached.");
	evbuffer_add_printf(b, "aether_ready %d\n",
			    st->config_applied && st->attached);
}

/* Map pressure: how full the tables that can run out are. */
static void scrape_fill(struct evbuffer *b, const struct array_read *svcinfo,
			const struct array_read *backends, int ct_fd,
			const struct ct_count *ct)
{
	struct bpf_map_info info = { 0 };
	uint32_t len = sizeof(info), used;

	add_family(b, "aether_map_fill_ratio", "gauge",
		   "Entries in use over capacity: services, backends, and the "
		   "connection table (as last counted).");
	if (svcinfo->n) {
		used = 0;
		for (uint32_t id = 0; id < svcinfo->n; id++)
			used += svc_in_use(svcinfo, id);
		evbuffer_add_printf(b, "aether_map_fill_ratio{map=\"services\"} %.6f\n",
				    (double)used / svcinfo->n);
	}
	if (backends->n) {
		used = 0;
		for (uint32_t id = 0; id < backends->n; id++) {
			const struct aeth_backend *be = array_at(backends, id);

			used += be && (be->flags & AETH_BE_F_IN_USE);
		}
		evbuffer_add_printf(b, "aether_map_fill_ratio{map=\"backends\"} %.6f\n",
				    (double)used / backends->n);
	}
	if (ct_fd >= 0 && ct->entries >= 0 &&
	    !bpf_obj_get_info_by_fd(ct_fd, &info, &len) && info.max_entries)
		evbuffer_add_printf(b, "aether_map_fill_ratio{map=\"conntrack\"} %.6f\n",
				    (double)ct->entries /
				    ((double)info.max_entries * AETH_CT_WAYS));
}

static void scrape_conntrack(struct evbuffer *b, int fd, const struct ct_count *ct)
{
	struct bpf_map_info info = { 0 };
	uint32_t len = sizeof(info);

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
		return;
	add_family(b, "aether_conntrack_max_entries", "gauge",
		   "Capacity of the connection table.");
	evbuffer_add_printf(b, "aether_conntrack_max_entries %llu\n",
			    (unsigned long long)info.max_entries * AETH_CT_WAYS);
	if (ct->entries < 0)
		return;
	add_family(b, "aether_conntrack_entries", "gauge",
		   "Entries in the connection table, counted in the background "
		   "at most every " XSTR(CT_COUNT_PERIOD_S) " s.");
	evbuffer_add_printf(b, "aether_conntrack_entries %lld\n",
			    (long long)ct->entries);
	add_family(b, "aether_conntrack_unconfirmed_entries", "gauge",
		   "Of those, entries no packet used after the one that wrote "
		   "them (a lone SYN's or datagram's, as a SYN flood leaves): "
		   "a full bucket gives them up first.");
	evbuffer_add_printf(b, "aether_conntrack_unconfirmed_entries %lld\n",
			    (long long)ct->unconfirmed);
}

static uint64_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

static void ct_count_schedule(struct ct_count *ct, int seconds)
{
	struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };

	evtimer_add(ct->ev, &tv);
}

static int ct_count_buffers(struct ct_count *ct, int fd, uint32_t cap)
{
	struct bpf_map_info info = { 0 };
	uint32_t len = sizeof(info);
	void *keys, *values;

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (cap == ct->cap && info.key_size == ct->key_size &&
	    info.value_size == ct->value_size)
		return 0;
	keys = realloc(ct->keys, (size_t)cap * info.key_size);
	if (keys)
		ct->keys = keys;
	values = realloc(ct->values, (size_t)cap * info.value_size);
	if (values)
		ct->values = values;
	if (!keys || !values)
		return -ENOMEM;
	if (!ct->it.tok_in || info.key_size != ct->key_size ||
	    info.value_size != ct->value_size) {
		aeth_map_iter_free(&ct->it);
		if (aeth_map_iter_init(&ct->it, fd, info.key_size,
				       info.value_size))
			return -ENOMEM;
	}
	ct->cap = cap;
	ct->key_size = info.key_size;
	ct->value_size = info.value_size;
	return 0;
}

/* Add the entries in the count buckets just read (the table is an array
 * of aeth_ct_bucket, include/aether/ct_table.h) to the pass's counts. */
static void ct_count_slots(struct ct_count *ct, uint32_t count)
{
	if (ct->value_size != sizeof(struct aeth_ct_bucket))
		return;
	for (uint32_t j = 0; j < count; j++) {
		const struct aeth_ct_bucket *b = (const struct aeth_ct_bucket *)
			((const char *)ct->values + (size_t)j * ct->value_size);

		for (int i = 0; i < AETH_CT_WAYS; i++) {
			__u64 w = b->slot[i].word;

			if (!aeth_ct_word_seen(w))
				continue;
			ct->partial++;
			ct->partial_unconfirmed += !aeth_ct_word_confirmed(w);
		}
	}
}

static void ct_count_step(evutil_socket_t unused, short what, void *arg)
{
	struct aeth_metrics *m = arg;
	struct ct_count *ct = &m->ct;
	int fd = m->maps ? m->maps->ct : -1;
	uint32_t count;
	int err, more;

	if (fd < 0) {
		ct->running = false;
		return;
	}
	err = ct_count_buffers(ct, fd, ct->cap ? ct->cap : CT_COUNT_CHUNK);
	if (err)
		goto give_up;
	ct->it.fd = fd;
	if (!ct->in_pass)
		aeth_map_iter_rewind(&ct->it);
	count = ct->cap;
	more = aeth_map_iter_next(&ct->it, ct->keys, ct->values, &count);
	if (more == -ENOSPC && ct->cap < CT_COUNT_CHUNK_MAX) {
		/* one hash bucket holds more than a chunk: widen and retry */
		err = ct_count_buffers(ct, fd, ct->cap * 2);
		if (err)
			goto give_up;
		ct_count_schedule(ct, 0);
		return;
	}
	if (more < 0) {
		err = more;
		goto give_up;
	}
	ct_count_slots(ct, count);
	ct->in_pass = true;
	if (more) {
		ct_count_schedule(ct, 0);
		return;
	}
	/* the pass is complete */
	ct->entries = (int64_t)ct->partial;
	ct->unconfirmed = (int64_t)ct->partial_unconfirmed;
	goto end;
give_up:
	log_debug("metrics: counting the connection table: %s", strerror(-err));
end:
	ct->partial = 0;
	ct->partial_unconfirmed = 0;
	ct->in_pass = false;
	ct->running = false;
	ct->done_at_s = mono_s();
}

/* Start a pass if none runs and the last one is old. */
static void ct_count_maybe_start(struct ct_count *ct, bool first)
{
	if (ct->running || (!first && mono_s() - ct->done_at_s < CT_COUNT_PERIOD_S))
		return;
	ct->running = true;
	ct_count_schedule(ct, 0);
}

/* Build the whole page; on error *what names the map that failed. */
static int scrape(struct aeth_metrics *m, struct evbuffer *b, const char **what)
{
	const struct aeth_map_fds *fds = m->maps;
	struct array_read svcinfo = { 0 }, svc_stats = { 0 }, backends = { 0 },
			  be_stats = { 0 }, global = { 0 };
	int err = 0;

	if (fds && fds->svcinfo >= 0 && fds->svc_stats >= 0) {
		*what = AETH_MAP_SVCINFO;
		err = read_array(fds->svcinfo, sizeof(struct aeth_svcinfo), false,
				 m->ncpus, &svcinfo);
		if (err)
			goto out;
		*what = AETH_MAP_SVC_STATS;
		err = read_array(fds->svc_stats, sizeof(struct aeth_svc_stats), true,
				 m->ncpus, &svc_stats);
		if (err)
			goto out;
		scrape_services(b, &svcinfo, &svc_stats);
	}
	if (fds && fds->global >= 0) {
		*what = AETH_MAP_GLOBAL;
		err = read_array(fds->global, sizeof(struct aeth_global_stats), true,
				 m->ncpus, &global);
		if (err)
			goto out;
		if (global.n)
			scrape_global(b, global.values);
	}
	if (fds && fds->backend >= 0 && fds->be_stats >= 0) {
		*what = AETH_MAP_BACKEND;
		err = read_array(fds->backend, sizeof(struct aeth_backend), false,
				 m->ncpus, &backends);
		if (err)
			goto out;
		*what = AETH_MAP_BE_STATS;
		err = read_array(fds->be_stats, sizeof(struct aeth_be_stats), true,
				 m->ncpus, &be_stats);
		if (err)
			goto out;
		scrape_backends(b, &svcinfo, &backends, &be_stats);
	}
	if (fds) {
		scrape_conntrack(b, fds->ct, &m->ct);
		scrape_fill(b, &svcinfo, &backends, fds->ct, &m->ct);
		ct_count_maybe_start(&m->ct, false);
	}
	if (m->status)
		scrape_agent(b, m->status);
	if (m->source)
		m->source(b, m->source_arg);
	if (m->status && m->status->scrape_more)
		m->status->scrape_more(b, m->status->scrape_more_arg);
out:
	free(svcinfo.values);
	free(svc_stats.values);
	free(backends.values);
	free(be_stats.values);
	free(global.values);
	return err;
}

static void reply_text(struct evhttp_request *req, int code, const char *reason,
		       const char *text)
{
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; charset=utf-8");
	if (b)
		evbuffer_add_printf(b, "%s\n", text);
	evhttp_send_reply(req, code, reason, b);
	if (b)
		evbuffer_free(b);
}

static void serve_metrics(struct aeth_metrics *m, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	struct timespec t0, t1;
	const char *what = "";
	char msg[160];
	int err;

	if (!b) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = scrape(m, b, &what);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_debug("metrics: scrape of %zu bytes took %.1f ms",
		  evbuffer_get_length(b),
		  (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	if (err) {
		snprintf(msg, sizeof(msg), "cannot read map %s: %s", what,
			 err == -EPROTO ? "unexpected layout" : strerror(-err));
		log_warn("metrics: %s", msg);
		reply_text(req, HTTP_INTERNAL, "Internal Server Error", msg);
	} else {
		struct evkeyvalq *out = evhttp_request_get_output_headers(req);
		const char *ae = evhttp_find_header(
			evhttp_request_get_input_headers(req), "Accept-Encoding");

		evhttp_add_header(out, "Content-Type",
				  "text/plain; version=0.0.4; charset=utf-8");
		evhttp_add_header(out, "Vary", "Accept-Encoding");
		/* a failed compression still answers, uncompressed */
		if (http_accepts_gzip(ae) && http_gzip(b) == 0)
			evhttp_add_header(out, "Content-Encoding", "gzip");
		evhttp_send_reply(req, HTTP_OK, "OK", b);
	}
	evbuffer_free(b);
}

static void serve_readyz(struct aeth_metrics *m, struct evhttp_request *req)
{
	const struct aeth_agent_status *st = m->status;

	if (!st || !st->config_applied)
		reply_text(req, 503, "Service Unavailable",
			   "not ready: no configuration applied yet");
	else if (!st->attached)
		reply_text(req, 503, "Service Unavailable",
			   "not ready: program not attached");
	else
		reply_text(req, HTTP_OK, "OK", "ok");
}

static void handle_request(struct evhttp_request *req, void *arg)
{
	struct aeth_metrics *m = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;

	aeth_api_conns_touch(m->conns, req);
	if (!path)
		path = "";
	if (strcmp(path, "/metrics") && strcmp(path, "/healthz") &&
	    strcmp(path, "/readyz")) {
		reply_text(req, HTTP_NOTFOUND, "Not Found", "not found");
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
				  "GET");
		reply_text(req, 405, "Method Not Allowed", "only GET");
		return;
	}
	if (strcmp(path, "/metrics") == 0)
		serve_metrics(m, req);
	else if (strcmp(path, "/healthz") == 0)
		reply_text(req, HTTP_OK, "OK", "ok");	/* the loop answered */
	else
		serve_readyz(m, req);
}

/* "A.B.C.D:PORT" or "[ADDR]:PORT" (either family in brackets, so a
 * template can bracket whatever address the node has); literal addresses
 * only, nothing resolved. libevent's parser reads the address; on top of
 * it the port is required (an unbracketed IPv6 address would otherwise
 * swallow it as its last group), digits only, and may be 0 (any free
 * port), which libevent refuses. */
static int parse_listen_addr(const char *addr, struct sockaddr_storage *ss,
			     socklen_t *sl)
{
	char buf[128];
	const char *colon, *close = NULL;
	int len = (int)sizeof(*ss);
	size_t hlen, plen;
	unsigned long port;

	memset(ss, 0, sizeof(*ss));
	if (addr[0] == '[') {
		close = strchr(addr, ']');
		colon = close && close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = strchr(addr, ':');
		if (colon && strchr(colon + 1, ':'))
			return -EINVAL;	/* IPv6 without brackets */
	}
	if (!colon)
		return -EINVAL;
	plen = strlen(colon + 1);
	if (plen == 0 || plen > 5 || strspn(colon + 1, "0123456789") != plen)
		return -EINVAL;
	port = strtoul(colon + 1, NULL, 10);
	if (port > 65535 || strlen(addr) >= sizeof(buf))
		return -EINVAL;
	/* an IPv4 address leaves its brackets; port 0 is left out */
	hlen = (size_t)(colon - addr);
	if (close && !memchr(addr, ':', (size_t)(close - addr)))
		snprintf(buf, sizeof(buf), "%.*s", (int)(close - addr - 1), addr + 1);
	else
		snprintf(buf, sizeof(buf), "%.*s", (int)hlen, addr);
	if (port)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ":%lu", port);
	if (evutil_parse_sockaddr_port(buf, (struct sockaddr *)ss, &len) < 0)
		return -EINVAL;
	*sl = (socklen_t)len;
	return 0;
}

static int listen_socket(const char *addr, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1, err;

	err = parse_listen_addr(addr, &ss, &sl);
	if (err)
		return err;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* a restarted agent rebinds while old connections sit in TIME_WAIT */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*port = ntohs(ss.ss_family == AF_INET6 ?
			      ((struct sockaddr_in6 *)&ss)->sin6_port :
			      ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

struct aeth_metrics *aeth_metrics_start(struct event_base *base, const char *addr,
					const struct aeth_map_fds *maps,
					const struct aeth_agent_status *status)
{
	struct aeth_metrics *m;
	int fd, err;

	m = calloc(1, sizeof(*m));
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	m->maps = maps;
	m->status = status;
	m->ct.entries = -1;
	m->ncpus = libbpf_num_possible_cpus();
	if (m->ncpus <= 0) {
		err = m->ncpus < 0 ? m->ncpus : -EINVAL;
		goto fail;
	}
	fd = listen_socket(addr, &m->port);
	if (fd < 0) {
		err = fd;
		goto fail;
	}
	m->http = evhttp_new(base);
	if (!m->http) {
		close(fd);
		err = -ENOMEM;
		goto fail;
	}
	/* evhttp answers 501 itself to methods it is not told about; let all
	 * through so the handler can say 405 */
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
				   EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
				   EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
				   EVHTTP_REQ_PATCH);
	evhttp_set_max_headers_size(m->http, MAX_HEADERS_SIZE);
	evhttp_set_max_body_size(m->http, MAX_BODY_SIZE);
	evhttp_set_timeout(m->http, CONN_TIMEOUT_S);
	evhttp_set_gencb(m->http, handle_request, m);
	m->bound = evhttp_accept_socket_with_handle(m->http, fd);
	if (!m->bound) {
		close(fd);
		err = -ENOMEM;
		goto fail;
	}
	/* the same bounds as the API: capped, idle ones ended, no spinning
	 * when out of descriptors */
	m->conns = aeth_api_conns_start(base, m->http, m->bound, "metrics");
	if (!m->conns) {
		err = -ENOMEM;
		goto fail;
	}
	m->ct.ev = evtimer_new(base, ct_count_step, m);
	if (!m->ct.ev) {
		err = -ENOMEM;
		goto fail;
	}
	ct_count_maybe_start(&m->ct, true);
	log_debug("metrics listening on %s (port %u)", addr, m->port);
	return m;
fail:
	if (m->http)
		evhttp_free(m->http);
	aeth_api_conns_stop(m->conns);
	free(m);
	errno = -err;
	return NULL;
}

void aeth_metrics_add_source(struct aeth_metrics *m, aeth_metrics_source_fn fn,
			     void *arg)
{
	m->source = fn;
	m->source_arg = arg;
}

uint16_t aeth_metrics_port(const struct aeth_metrics *m)
{
	return m ? m->port : 0;
}

void aeth_metrics_stop(struct aeth_metrics *m)
{
	if (!m)
		return;
	evhttp_free(m->http);	/* closes the listening socket too */
	aeth_api_conns_stop(m->conns);
	if (m->ct.ev)
		event_free(m->ct.ev);
	free(m->ct.keys);
	free(m->ct.values);
	aeth_map_iter_free(&m->ct.it);
	free(m);
}
