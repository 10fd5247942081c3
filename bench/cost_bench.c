/* Cost per packet of the data path's paths, through BPF_PROG_TEST_RUN under a
 * restore wrapper, above an empty program measured in the same run.
 *
 *   cost [--json FILE] [--rounds N]
 *
 * Runs in a private network namespace (the harness's, for bpf_fib_lookup),
 * pinned to CPU 0; pins nothing. Prints a table; --json writes the results. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "aether/ct_table.h"
#include "aether_lb.skel.h"
#include "harness.h"
#include "pkt.h"
#include "micro.skel.h"
#include "wrapper.skel.h"
#include "bpf/wrapper_vary.h"

#define VIP4 "203.0.113.10"
#define VIP6 "2001:db8:f::10"
#define TABLE 251
#define NSEC 1000000000ull
#define NEVER (1000 * NSEC)	/* a limit interval that outlasts the run */
#define MAX_FRAME 256

/* Ports of the services set up below (all on VIP4 unless said). */
enum {
	PORT_FWD = 6443,	/* plain service, v4 and v6 */
	PORT_ACL0 = 7000,	/* enabled, empty list */
	PORT_ACL10 = 7001,	/* ACL of 10, 1,000, 10,000 prefixes, plus a */
	PORT_ACL1K = 7002,	/* per-source limit of 1/s, burst 1 */
	PORT_ACL10K = 7003,
	PORT_EST_ACL1K = 7004,	/* ACL of 1,000 prefixes, no limits */
	PORT_RL = 7010,		/* per-source limit only */
	PORT_CAP = 7011,	/* per-service cap (and per-source limit) */
	PORT_NEW = 7020,	/* no limits: new flows */
	PORT_SYN = 7021,	/* both limits on, never refusing */
	PORT_UNCONF = 80,	/* nothing configured */
};

struct bench {
	struct dp_h h;
	struct dp_net net;
	struct wrapper *w;
	struct micro *m;
	int wrap_fd, empty_fd, frame_fd, prog_map_fd;
	int base_fd;		/* --baseline: another build of aether_lb, or -1 */
	struct bpf_object *base_obj;
	struct bpf_map *base_ct; /* the baseline's own aeth_ct, or NULL */
	int base_ct_fd;		/* its fd, or -1: the baseline shares ours */
	bool base_counts;	/* it counts in our aeth_global */
	int rounds;
	uint32_t svc_ids;
};

struct timing {
	double best, median;
};

/* What a row sends and what it must observe. */
struct row {
	const char *name;
	const char *key;	/* JSON key */
	uint8_t frame[MAX_FRAME];
	size_t len;
	uint32_t vary_off;	/* 0, or the offset of a word made distinct */
	uint32_t vary_shift;	/* 16: vary the high half of it only */
	uint32_t verdict;	/* expected XDP verdict */
	int reason;		/* global reason counted, or -1 */
	int event;		/* global event counted, or -1 */
	double target;		/* ns above the floor, 0: none */
	enum { TABLE_AS_LEFT, TABLE_EMPTY, TABLE_FULL } table;
				/* the connection table it is timed on */
	uint32_t insert_rate;	/* the node's insert budget while timed
				 * (per CPU per second), 0: no cap */
	bool prime_syn;		/* open the flow with a SYN before timing */
	bool prime;		/* send the frame once before timing */
	/* packets that may take another path than the counted one, per
	 * thousand (scattered sources that fall inside the list) */
	uint32_t off_path_per_mille;
	struct pkt_spec spec;
	struct timing ns, floor, base;
	uint32_t repeat;
	bool path_ok;
	bool base_path_ok;	/* the baseline's counter grew as ours did */
};

static void die(const char *what, int err)
{
	fprintf(stderr, "cost: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void set_prog(struct bench *b, int fd)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(b->prog_map_fd, &zero, &fd, BPF_ANY))
		die("setting the program under test", errno);
}

/* The frame the wrapper restores each iteration. */
static void set_frame(struct bench *b, const struct row *r)
{
	uint8_t buf[16 + MAX_FRAME] = { 0 };
	uint32_t hdr[4] = { (uint32_t)r->len, r->vary_off, 0, r->vary_shift };
	__u32 zero = 0;

	if (r->vary_off) {
		uint32_t w;

		memcpy(&w, r->frame + r->vary_off, 4);
		hdr[2] = ntohl(w);
	}
	memcpy(buf, hdr, sizeof(hdr));
	memcpy(buf + 16, r->frame, r->len);
	if (bpf_map_update_elem(b->frame_fd, &zero, buf, BPF_ANY))
		die("writing the frame", errno);
}

/* Average ns per iteration of `repeat` runs of the wrapper; verdict of the
 * last iteration in *verdict. */
static double run_once(struct bench *b, const struct row *r, uint32_t repeat,
		       uint32_t *verdict)
{
	struct xdp_md ctx = { .data_end = (__u32)r->len,
			      .ingress_ifindex = (__u32)b->net.if0 };
	uint8_t out[MAX_FRAME + 128];
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		    .data_in = r->frame,
		    .data_size_in = (__u32)r->len,
		    .data_out = out,
		    .data_size_out = sizeof(out),
		    .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx),
		    .repeat = repeat);

	if (bpf_prog_test_run_opts(b->wrap_fd, &opts))
		die("BPF_PROG_TEST_RUN", errno);
	*verdict = opts.retval;
	return opts.duration;
}

static struct timing summarize(double *t, int n)
{
	qsort(t, (size_t)n, sizeof(t[0]), cmp_double);
	return (struct timing){ .best = t[0], .median = t[n / 2] };
}

#define MAX_ROUNDS 64

static uint64_t counter(struct bench *b, const struct row *r);

/* Per-iteration time of the program under test and of the empty program on
 * r's frame, in alternating rounds so both see the same machine. */
static void measure3(struct bench *b, const struct row *r, int prog_fd,
		     uint32_t repeat, struct timing *prog,
		     struct timing *floor, struct timing *base,
		     uint32_t *verdict, uint64_t *base_count)
{
	double tp[MAX_ROUNDS], tf[MAX_ROUNDS], tb[MAX_ROUNDS];
	uint64_t before = 0;
	uint32_t v;
	int i;

	set_frame(b, r);
	set_prog(b, prog_fd);
	run_once(b, r, 1000, verdict);	/* warm caches and state */
	if (base) {
		set_prog(b, b->base_fd);
		run_once(b, r, 1000, &v);
	}
	/* the order reversed every other round: the program timed right
	 * after another reads a few ns low (an A/A run, the program as its
	 * own baseline, showed 1-8 ns), so neither keeps that place */
	for (i = 0; i < b->rounds; i++) {
		int fds[3] = { prog_fd, b->empty_fd, base ? b->base_fd : -1 };
		double *out[3] = { &tp[i], &tf[i], &tb[i] };
		int k, j;

		for (k = 0; k < 3; k++) {
			j = i & 1 ? 2 - k : k;
			if (fds[j] < 0)
				continue;
			set_prog(b, fds[j]);
			if (j == 2 && base_count)
				before = counter(b, r);
			*out[j] = run_once(b, r, repeat, j ? &v : verdict);
			if (j == 2 && base_count)
				*base_count += counter(b, r) - before;
			if (j == 2 && v != *verdict)
				fprintf(stderr, "cost: %s: the baseline's "
					"verdict %u differs (%u)\n", r->name,
					v, *verdict);
		}
	}
	*prog = summarize(tp, b->rounds);
	*floor = summarize(tf, b->rounds);
	if (base)
		*base = summarize(tb, b->rounds);
}

static void measure(struct bench *b, const struct row *r, int prog_fd,
		    uint32_t repeat, struct timing *prog, struct timing *floor,
		    uint32_t *verdict)
{
	measure3(b, r, prog_fd, repeat, prog, floor, NULL, verdict, NULL);
}

/* The global counters (every program's: the baseline shares the map). */
static struct aeth_global_stats globals(struct bench *b)
{
	struct aeth_global_stats g;
	int err = dp_global(&b->h, &g);

	if (err)
		die("reading counters", err);
	return g;
}

/* The row's counter (its drop reason or event) in g. */
static uint64_t row_count(const struct row *r,
			  const struct aeth_global_stats *g)
{
	if (r->reason >= 0)
		return g->reasons[r->reason];
	if (r->event >= 0)
		return g->events[r->event];
	return 0;
}

static uint64_t counter(struct bench *b, const struct row *r)
{
	struct aeth_global_stats g = globals(b);

	return row_count(r, &g);
}

/* The inserts a row's budget lets through while it runs: insert_rate a
 * second per CPU, and a row takes a few seconds at most. */
static uint64_t budget_allowance(const struct row *r)
{
	return 4ull * r->insert_rate;
}

/* Whether count, the growth of a row's counter over its timed rounds of
 * one program, says that program took the row's path. */
static bool took_path(const struct bench *b, const struct row *r,
		      uint64_t count)
{
	/* a row counting skipped inserts misses those its budget lets
	 * through */
	return (r->reason < 0 && r->event < 0) ||
	       (count + budget_allowance(r)) * 1000 >=
		       (uint64_t)r->repeat * b->rounds *
			       (1000 - r->off_path_per_mille);
}

/* Whether a row that is not the new-flow row inserted n entries while
 * timed, beyond those its budget lets through: an insert into a cold
 * table costs microseconds here (docs/bench.md), so a thousandth of a
 * row's packets inserting made a third of its figure. */
static bool inserted_off_path(const struct row *r, uint64_t n)
{
	return r->event != AETH_EV_CT_INSERT && n > budget_allowance(r);
}

static void measure_row(struct bench *b, struct row *r)
{
	struct aeth_global_stats g0 = globals(b), g1;
	uint64_t before = row_count(r, &g0), after, base_count = 0, n_inserts;
	uint32_t verdict = 0;

	measure3(b, r, b->h.prog_fd, r->repeat, &r->ns, &r->floor,
		 b->base_fd >= 0 ? &r->base : NULL, &verdict, &base_count);
	g1 = globals(b);
	n_inserts = g1.events[AETH_EV_CT_INSERT] - g0.events[AETH_EV_CT_INSERT];
	after = row_count(r, &g1);
	/* a baseline that counts in another map is not checked */
	r->base_path_ok = b->base_fd < 0 || !b->base_counts ||
			  took_path(b, r, base_count);
	if (!r->base_path_ok)
		fprintf(stderr, "cost: %s: the baseline took another path "
			"(counter +%llu)\n", r->name,
			(unsigned long long)base_count);
	r->path_ok = verdict == r->verdict &&
		     took_path(b, r, after - before - base_count);
	if (!r->path_ok)
		fprintf(stderr, "cost: %s: verdict %u (want %u), counter +%llu\n",
			r->name, verdict, r->verdict,
			(unsigned long long)(after - before));
	if (inserted_off_path(r, n_inserts)) {
		fprintf(stderr, "cost: %s: %llu connection-table inserts while "
			"timed (the new-flow row times inserts; give the row "
			"an insert budget)\n", r->name,
			(unsigned long long)n_inserts);
		r->path_ok = false;
	}
}

/* ns above the floor: best round against best round (the machine is shared
 * and noisy; the minimum is the least disturbed), and median against
 * median. */
static double above(const struct row *r)
{
	return r->ns.best - r->floor.best;
}

static double above_median(const struct row *r)
{
	return r->ns.median - r->floor.median;
}

/* ---- set-up ------------------------------------------------------------ */

/* The test harness's set-up with the maps at their production sizes (the
 * tests shrink the connection and limiter tables, which makes inserts evict
 * early). Nothing is pinned. BENCH_CT_ENTRIES: another connection-table size
 * (what conntrack.max_entries sets), to see what the table's size costs. */
static int bench_open(struct dp_h *h)
{
	const char *ct = getenv("BENCH_CT_ENTRIES");

	return dp_open_sized(h, ct ? (__u32)atoi(ct) : 0, 0);
}

static void check(int err, const char *what)
{
	if (err)
		die(what, err);
}

/* Connection entries in one element of an aeth_ct of this value size: a
 * bucket of ours, or one entry of an earlier build's hash map. */
static unsigned int ct_slots_per_element(__u32 value_size)
{
	return value_size == sizeof(struct aeth_ct_bucket) ? AETH_CT_WAYS : 1;
}

/* The size of the baseline's own map that holds what this build's holds:
 * for aeth_ct, as many connection entries. */
static __u32 same_capacity(const struct bpf_map *base,
			   const struct bpf_map *mine)
{
	__u64 entries = bpf_map__max_entries(mine);

	if (strcmp(bpf_map__name(mine), AETH_MAP_CT))
		return (__u32)entries;
	entries *= ct_slots_per_element(bpf_map__value_size(mine));
	return (__u32)(entries /
		       ct_slots_per_element(bpf_map__value_size(base)));
}

/* --baseline FILE: another build of aether_lb.bpf.o, loaded on the same
 * maps (every map whose name, type, key and value sizes it shares with
 * this build's), so that both see the same services and flows and are
 * timed in the same rounds. A map whose layout changed between the two
 * builds (aeth_ct's key, say) stays the baseline's own, at this build's
 * size: the data path fills such maps (the agent's maps keep their
 * layouts, or the baseline could not read this build's services), and
 * every priming packet goes through both programs (prime). */
static void load_baseline(struct bench *b, const char *path)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	struct bpf_program *prog;
	struct bpf_map *map, *mine;

	if (!obj)
		die(path, errno);
	bpf_object__for_each_map(map, obj) {
		const char *name = bpf_map__name(map);

		check(bpf_map__set_pin_path(map, NULL), "baseline pin path");
		if (strncmp(name, "aeth_", 5) && strncmp(name, "lb_", 3))
			continue;
		mine = bpf_object__find_map_by_name(
			((struct aether_lb *)b->h.skel)->obj, name);
		if (mine && (bpf_map__type(map) != bpf_map__type(mine) ||
			     bpf_map__key_size(map) != bpf_map__key_size(mine) ||
			     bpf_map__value_size(map) !=
				     bpf_map__value_size(mine))) {
			fprintf(stderr, "cost: the baseline's %s has another "
				"layout: it keeps its own\n", name);
			if (!strcmp(name, AETH_MAP_CT))
				b->base_ct = map;
			check(bpf_map__set_max_entries(
				      map, same_capacity(map, mine)),
			      "baseline: sizing its own map");
			continue;
		}
		if (mine) {
			/* before the reuse, which frees the map's name */
			if (!strcmp(name, AETH_MAP_GLOBAL))
				b->base_counts = true;
			check(bpf_map__reuse_fd(map, bpf_map__fd(mine)),
			      "baseline: sharing a map");
		}
	}
	check(bpf_object__load(obj), "loading the baseline");
	prog = bpf_object__find_program_by_name(obj, "aether_lb");
	if (!prog)
		die("baseline: no aether_lb program", ENOENT);
	b->base_obj = obj;
	b->base_fd = bpf_program__fd(prog);
	if (b->base_ct)
		b->base_ct_fd = bpf_map__fd(b->base_ct);
}

/* Bytes the kernel charges for a map ("memlock" in /proc/self/fdinfo),
 * or -1. */
static long long map_memlock(int fd)
{
	char path[64], line[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %lld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

/* The connection table's memory per entry (issue 12: <= 64 bytes): what
 * the kernel charges for aeth_ct and its filter (filter_fd; -1: none)
 * (preallocated: the same empty or full) over its entries (AETH_CT_WAYS a
 * bucket; one an element in a baseline's hash map). */
static double ct_bytes_per_entry(int fd, int filter_fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	long long mem = map_memlock(fd), filter = 0;

	if (filter_fd >= 0)
		filter = map_memlock(filter_fd);
	if (filter < 0)
		return -1;
	mem += filter;

	memset(&info, 0, sizeof(info));
	if (mem < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) ||
	    !info.max_entries)
		return -1;
	return (double)mem / ((double)info.max_entries *
			      ct_slots_per_element(info.value_size));
}

static struct aeth_svc add_svc(struct bench *b, const char *vip, uint16_t port,
			       uint8_t proto, uint32_t be_id,
			       const char *be_addr)
{
	struct aeth_svc_key k = dp_svc_key(vip, port, proto);
	uint32_t id = ++b->svc_ids, table[TABLE];
	struct aeth_backend be = dp_backend(be_addr, AETH_BE_F_IN_USE, id);
	struct aeth_svc s = dp_svc(id, 2 * id, TABLE);

	s.src_prefix_v4 = 32;
	s.src_prefix_v6 = 64;
	check(dp_set_backend(&b->h, be_id, &be), "backend");
	dp_table_round_robin(table, TABLE, &be_id, 1);
	check(dp_set_maglev(&b->h, 2 * id, table, TABLE), "maglev table");
	check(dp_add_service(&b->h, &k, &s), "service");
	return s;
}

static void update_svc(struct bench *b, const char *vip, uint16_t port,
		       const struct aeth_svc *s)
{
	struct aeth_svc_key k = dp_svc_key(vip, port, IPPROTO_TCP);

	check(dp_add_service(&b->h, &k, s), "service");
}

/* n prefixes, none covering 203.0.113.77 and one covering 198.51.100.7:
 * mostly IPv4 of mixed lengths (/16 to /32) spread over the address space,
 * a quarter IPv6, as customer lists look. Deterministic. */
static void fill_acl(int fd, int n)
{
	uint32_t x = 2463534242u, one = AETH_AF_INET, six = AETH_AF_INET6;
	struct aeth_acl_key k;
	int i;

	if (!n)
		return;
	memset(&k, 0, sizeof(k));
	k.addr[10] = k.addr[11] = 0xff;
	inet_pton(AF_INET, "198.51.100.0", k.addr + 12);
	k.prefixlen = 96 + 24;
	check(bpf_map_update_elem(fd, &k, &one, BPF_ANY) ? -errno : 0, "acl");
	for (i = 1; i < n; i++) {
		uint32_t plen, a, mask;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		memset(&k, 0, sizeof(k));
		if (i % 4 == 3) {
			/* 2001:db8:xxxx:xxxx::/64 */
			k.addr[0] = 0x20;
			k.addr[1] = 0x01;
			k.addr[2] = 0x0d;
			k.addr[3] = 0xb8;
			memcpy(k.addr + 4, &x, 4);
			k.prefixlen = 64;
			check(bpf_map_update_elem(fd, &k, &six, BPF_ANY) ?
			      -errno : 0, "acl");
			continue;
		}
		plen = 16 + x % 17;
		mask = plen == 32 ? ~0u : ~(~0u >> plen);
		a = x & mask;
		/* keep 203.0.113.0/24 (the refused source) out */
		if ((a & 0xffffff00u) == 0xcb007100u ||
		    (0xcb00714du & mask) == a) {
			i--;
			continue;
		}
		k.addr[10] = k.addr[11] = 0xff;
		a = htonl(a);
		memcpy(k.addr + 12, &a, 4);
		k.prefixlen = 96 + plen;
		check(bpf_map_update_elem(fd, &k, &one, BPF_ANY) ? -errno : 0,
		      "acl");
	}
}

static void setup(struct bench *b)
{
	static const struct { uint16_t port; int n; } acls[] = {
		{ PORT_ACL0, 0 }, { PORT_ACL10, 10 }, { PORT_ACL1K, 1000 },
		{ PORT_ACL10K, 10000 },
	};
	struct aeth_node node;
	struct aeth_svc s;
	uint32_t be_id = 1;
	size_t i;
	int fd;

	check(dp_netns_setup(&b->net), "network namespace");
	check(bench_open(&b->h), "loading aether_lb");
	dp_node_default(&node);
	check(dp_set_node(&b->h, &node), "node");
	/* the decap row's tunnels come from this LB node */
	check(dp_decap_add(&b->h, "192.0.2.50", 32), "decap.sources");

	add_svc(b, VIP4, PORT_FWD, IPPROTO_TCP, be_id++, "192.0.2.21");
	add_svc(b, VIP6, PORT_FWD, IPPROTO_TCP, be_id++, "2001:db8::21");
	for (i = 0; i < sizeof(acls) / sizeof(acls[0]); i++) {
		s = add_svc(b, VIP4, acls[i].port, IPPROTO_TCP, be_id++,
			    "192.0.2.21");
		fd = dp_acl_create(&b->h, 2 * s.id);
		check(fd < 0 ? fd : 0, "acl trie");
		fill_acl(fd, acls[i].n);
		/* and its compiled IPv4 form, as the agent writes it */
		check(dp_acl_compile(&b->h, 2 * s.id, fd), "compiled acl");
		close(fd);
		s.flags |= AETH_SVC_F_ACL;
		s.acl_slot = 2 * s.id;
		s.src_interval_ns = NEVER;	/* burst 1, spent by prime() */
		update_svc(b, VIP4, acls[i].port, &s);
	}
	s = add_svc(b, VIP4, PORT_RL, IPPROTO_TCP, be_id++, "192.0.2.21");
	s.src_interval_ns = NEVER;
	update_svc(b, VIP4, PORT_RL, &s);
	s = add_svc(b, VIP4, PORT_CAP, IPPROTO_TCP, be_id++, "192.0.2.21");
	s.src_interval_ns = NEVER;
	s.svc_interval_ns = NEVER;	/* burst 1, spent by prime() */
	update_svc(b, VIP4, PORT_CAP, &s);
	add_svc(b, VIP4, PORT_NEW, IPPROTO_TCP, be_id++, "192.0.2.21");
	/* an authorized source's established flow pays the trie walk too */
	s = add_svc(b, VIP4, PORT_EST_ACL1K, IPPROTO_TCP, be_id++,
		    "192.0.2.21");
	fd = dp_acl_create(&b->h, 2 * s.id);
	check(fd < 0 ? fd : 0, "acl trie");
	fill_acl(fd, 1000);
	check(dp_acl_compile(&b->h, 2 * s.id, fd), "compiled acl");
	close(fd);
	s.flags |= AETH_SVC_F_ACL;
	s.acl_slot = 2 * s.id;
	update_svc(b, VIP4, PORT_EST_ACL1K, &s);
	/* limits charged on every SYN, never refusing during the run: 1 ns
	 * per connection with a burst that outlasts it */
	s = add_svc(b, VIP4, PORT_SYN, IPPROTO_TCP, be_id++, "192.0.2.21");
	s.src_interval_ns = 1;
	s.src_tolerance_ns = NEVER;
	s.svc_interval_ns = 1;
	s.svc_tolerance_ns = NEVER;
	update_svc(b, VIP4, PORT_SYN, &s);
	/* the VIP filter as the agent keeps it */
	check(dp_vip_filter_fill(&b->h), "VIP filter");

	b->w = wrapper__open_and_load();
	if (!b->w)
		die("loading the wrapper", errno);
	b->wrap_fd = bpf_program__fd(b->w->progs.bench_wrap);
	b->empty_fd = bpf_program__fd(b->w->progs.bench_empty);
	b->frame_fd = bpf_map__fd(b->w->maps.bench_frame);
	b->prog_map_fd = bpf_map__fd(b->w->maps.bench_prog);
	b->m = micro__open_and_load();
	if (!b->m)
		die("loading the single-operation programs", errno);
}

static void set_insert_rate(struct bench *b, uint32_t rate)
{
	struct aeth_node node;

	dp_node_default(&node);
	node.ct_insert_rate = rate;
	check(dp_set_node(&b->h, &node), "node");
}

/* ---- rows -------------------------------------------------------------- */

static void tcp_row(struct row *r, const char *src, uint16_t sport,
		    const char *dst, uint16_t dport, uint8_t flags)
{
	struct pkt_spec s = strchr(src, ':') ?
				    pkt_spec_tcp6(src, sport, dst, dport) :
				    pkt_spec_tcp4(src, sport, dst, dport);

	s.tcp_flags = flags;
	s.payload = "0123456789abcdef0123456789abcdef";	/* a small request */
	s.payload_len = 32;
	r->spec = s;
	r->len = pkt_build(&s, r->frame, sizeof(r->frame));
	if (!r->len)
		die("building a frame", EINVAL);
}

/* An IPIP packet to this node carrying a client's segment for VIP4. */
static void decap_row(struct row *r)
{
	struct pkt_spec inner = pkt_spec_tcp4("198.51.100.7", 40000, VIP4,
					      PORT_FWD);
	struct pkt_spec outer = pkt_spec_tcp4("192.0.2.50", 0, DP_NODE_V4, 0);
	uint8_t l3[MAX_FRAME];
	size_t n = pkt_build_l3(&inner, l3, sizeof(l3));

	outer.proto = 4;
	outer.payload = l3;
	outer.payload_len = n;
	r->len = pkt_build(&outer, r->frame, sizeof(r->frame));
	if (!n || !r->len)
		die("building a frame", EINVAL);
}

/* Send one frame once outside the timing (prime a flow or a bucket). */
static void prime(struct bench *b, const struct row *r)
{
	uint8_t out[MAX_FRAME + 128];
	size_t out_len = sizeof(out);
	uint32_t v;

	check(dp_run(&b->h, r->frame, r->len, out, &out_len, b->net.if0, &v),
	      "priming");
	if (b->base_fd >= 0) {	/* its own maps may need the flow too */
		int mine = b->h.prog_fd;

		b->h.prog_fd = b->base_fd;
		out_len = sizeof(out);
		check(dp_run(&b->h, r->frame, r->len, out, &out_len,
			     b->net.if0, &v), "priming the baseline");
		b->h.prog_fd = mine;
	}
}

/* The flows a row takes in turn (BENCH_VARY_CYCLE), 0: one. */
static uint32_t row_cycle(const struct row *r)
{
	return r->vary_off && (r->vary_shift & BENCH_VARY_CYCLE(0)) ?
		       1u << BENCH_VARY_CYCLE_BITS(r->vary_shift) : 0;
}

/* Send a cycling frame once for each of its values, through the wrapper
 * (which makes them) and the program under test. */
static void prime_cycle(struct bench *b, const struct row *r)
{
	uint32_t v;

	set_frame(b, r);
	set_prog(b, b->h.prog_fd);
	run_once(b, r, row_cycle(r), &v);
	if (b->base_fd >= 0) {
		set_prog(b, b->base_fd);
		run_once(b, r, row_cycle(r), &v);
	}
}

/* State the row's timed iterations must find: its flow established or its
 * bucket spent. Right before the row, not at start: the new-flow rows fill
 * the connection table (by both programs with --baseline), and the LRU
 * would evict a flow opened earlier. */
static void prime_row(struct bench *b, const struct row *r)
{
	struct row syn = *r;

	if (r->prime_syn) {
		syn.spec.tcp_flags = PKT_TCP_SYN;
		syn.len = pkt_build(&syn.spec, syn.frame, sizeof(syn.frame));
		if (row_cycle(r))
			prime_cycle(b, &syn);
		else
			prime(b, &syn);
	} else if (r->prime) {
		prime(b, r);
	}
}

#define V4_SRC_OFF (14 + 12)	/* IPv4 source address in an untagged frame */
#define V4_PORTS_OFF (14 + 20)	/* TCP source and destination ports */

/* The connection table's state matters to every row whose packets miss
 * it: a miss reads the bucket only when the filter has its tag's bits,
 * which in a full table is about one miss in six, in an empty one never.
 * So a row that depends on it says which it is timed on, the same alone
 * (--only) and in a whole run (where the new-flow rows fill the table). */

/* Entries [0, n) of the array at fd zeroed, a batch of 1,024 a syscall. */
static void zero_array(int fd, __u32 n, size_t value_size, const char *what)
{
	enum { BATCH = 1024 };
	__u32 keys[BATCH], count;
	void *zeros = calloc(BATCH, value_size);

	if (!zeros)
		die(what, ENOMEM);
	for (__u32 first = 0; first < n; first += count) {
		count = n - first < BATCH ? n - first : BATCH;
		for (__u32 i = 0; i < count; i++)
			keys[i] = first + i;
		if (bpf_map_update_batch(fd, keys, zeros, &count, NULL))
			die(what, errno);
	}
	free(zeros);
}

/* Every bucket emptied (bucket 0 keeps the table's seed) and the filter
 * cleared; the baseline's own filter of an earlier layout too (builds
 * before aeth_ct_bloom kept it as aeth_ct_filter). */
static void empty_table(struct bench *b)
{
	struct aeth_ct_bucket z;
	struct bpf_map *old;
	__u32 zero = 0;

	zero_array(b->h.ct, b->h.ct_table.nbuckets, sizeof(z),
		   "emptying the connection table");
	memset(&z, 0, sizeof(z));
	z.seed = b->h.ct_table.seed;
	if (bpf_map_update_elem(b->h.ct, &zero, &z, BPF_ANY))
		die("keeping the connection table's seed", errno);
	memset(b->h.ct_table.filter, 0,
	       aeth_ct_filter_words(b->h.ct_table.nbuckets) * sizeof(__u64));
	old = b->base_obj ? bpf_object__find_map_by_name(b->base_obj,
							 "aeth_ct_filter") :
			    NULL;
	if (old)
		zero_array(bpf_map__fd(old), bpf_map__max_entries(old),
			   sizeof(__u64), "clearing the baseline's filter");
}

/* The table filled: new flows from distinct sources, twice as many as it
 * holds (about 98% of buckets then hold eight), written by the program
 * under test and by the baseline (each keeps its own filter right). */
static void fill_table(struct bench *b)
{
	struct row fill = { .repeat = 0 };
	uint32_t v, n = b->h.ct_table.nbuckets * AETH_CT_WAYS * 2;

	tcp_row(&fill, "198.51.100.7", 40000, VIP4, PORT_NEW, PKT_TCP_SYN);
	fill.vary_off = V4_SRC_OFF;
	set_insert_rate(b, 0);
	set_frame(b, &fill);
	set_prog(b, b->h.prog_fd);
	run_once(b, &fill, n, &v);
	if (b->base_fd >= 0) {
		set_prog(b, b->base_fd);
		run_once(b, &fill, n, &v);
	}
}

/* New connections from one source: distinct source ports. */
static void vary_sport(struct row *r)
{
	r->vary_off = V4_PORTS_OFF;
	r->vary_shift = 16;
}

/* 2^k established flows from one source, in turn: distinct source ports
 * (bench/bpf/wrapper.bpf.c BENCH_VARY_CYCLE), opened by prime_row. */
static void vary_sport_cycle(struct row *r, uint32_t k)
{
	r->vary_off = V4_PORTS_OFF;
	r->vary_shift = 16 | BENCH_VARY_CYCLE(k);
}

/* The IPv4 source scattered over the address space, a different one each
 * packet (bench/bpf/wrapper.bpf.c BENCH_VARY_SCATTER). */
static void vary_src_scattered(struct row *r)
{
	r->vary_off = V4_SRC_OFF;
	r->vary_shift = BENCH_VARY_SCATTER;
}

/* ---- both CPUs at once ------------------------------------------------ */

/* Rows whose state every CPU writes: the same path timed on both CPUs at
 * once, to show what sharing a bucket costs. */
struct shared_run {
	struct bench *b;
	const struct row *r;
	int prog_fd;
	int cpu;
	pthread_barrier_t *start;
	double t[MAX_ROUNDS];
	int err;
};

static void *shared_loop(void *arg)
{
	struct shared_run *s = arg;
	uint32_t v;
	cpu_set_t set;
	int i;

	CPU_ZERO(&set);
	CPU_SET(s->cpu, &set);
	s->err = sched_setaffinity(0, sizeof(set), &set) ? errno : 0;
	for (i = 0; i < s->b->rounds; i++) {
		pthread_barrier_wait(s->start);
		s->t[i] = run_once(s->b, s->r, s->r->repeat, &v);
	}
	return NULL;
}

struct shared_row {
	const char *key, *name;
	struct timing one, cpu[2];
};

static struct shared_row shared_rows[12];
static int n_shared;

/* prog on r's frame on both CPUs at once; one: its time on one CPU. */
static void measure_shared(struct bench *b, const struct row *r, int prog_fd,
			   const char *key, const char *name, struct timing one)
{
	struct shared_row *x = &shared_rows[n_shared++];
	struct shared_run run[2];
	pthread_barrier_t start;
	pthread_t t[2];
	int i;

	set_frame(b, r);
	set_prog(b, prog_fd);
	pthread_barrier_init(&start, NULL, 2);
	for (i = 0; i < 2; i++) {
		run[i] = (struct shared_run){ .b = b, .r = r, .cpu = i,
					      .start = &start };
		if (pthread_create(&t[i], NULL, shared_loop, &run[i]))
			die("starting a thread", errno);
	}
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	x->key = key;
	x->name = name;
	x->one = one;
	for (i = 0; i < 2; i++) {
		if (run[i].err)
			die("pinning a thread", run[i].err);
		x->cpu[i] = summarize(run[i].t, b->rounds);
	}
}

/* Row r on both CPUs at once, the program and the --baseline one in the
 * order program, baseline, baseline, program (neither always timed right
 * after the other); each one's better turn per CPU printed. */
static void shared_vs_baseline(struct bench *b, const struct row *r)
{
	const int fds[4] = { b->h.prog_fd, b->base_fd, b->base_fd,
			     b->h.prog_fd };
	const struct timing *one[4] = { &r->ns, &r->base, &r->base, &r->ns };
	double best[2][2] = { { 1e18, 1e18 }, { 1e18, 1e18 } };
	int k, c;

	for (k = 0; k < 4; k++) {
		const struct shared_row *x = &shared_rows[n_shared];

		measure_shared(b, r, fds[k], r->key, r->name, *one[k]);
		for (c = 0; c < 2; c++)
			if (x->cpu[c].best < best[fds[k] == b->base_fd][c])
				best[fds[k] == b->base_fd][c] = x->cpu[c].best;
	}
	printf("both CPUs: %.1f / %.1f ns best\n", best[0][0], best[0][1]);
	printf("baseline, both CPUs: %.1f / %.1f ns best\n", best[1][0],
	       best[1][1]);
}

static void print_shared(void)
{
	int i;

	printf("\nboth CPUs at once (state shared between CPUs), ns per "
	       "packet, floor included\n");
	printf("%-42s %9s %9s %9s\n", "path", "one CPU", "CPU 0", "CPU 1");
	for (i = 0; i < n_shared; i++) {
		const struct shared_row *x = &shared_rows[i];

		printf("%-42s %9.1f %9.1f %9.1f\n", x->name, x->one.best,
		       x->cpu[0].best, x->cpu[1].best);
	}
}

static void json_shared(FILE *f)
{
	int i;

	fprintf(f, "  \"both_cpus\": [\n");
	for (i = 0; i < n_shared; i++) {
		const struct shared_row *x = &shared_rows[i];

		fprintf(f, "    {\"row\": \"%s\", \"one_cpu_ns_best\": %.1f, "
			"\"cpu0_ns_best\": %.1f, \"cpu1_ns_best\": %.1f}%s\n",
			x->key, x->one.best, x->cpu[0].best,
			x->cpu[1].best, i == n_shared - 1 ? "" : ",");
	}
	fprintf(f, "  ],\n");
}

/* ---- single operations ------------------------------------------------ */

struct micro_row {
	const char *key, *name;
	int fd;
	bool vary;		/* a distinct source address each iteration */
	uint32_t cycle;		/* k: 2^k source addresses in turn instead */
	uint32_t want;		/* the verdict its last iteration must give,
				 * 0: any */
	bool path_ok;
	struct timing ns, floor;
	struct row r;		/* the frame it ran on */
};

#define MICRO_MAX 32
static struct micro_row micro_rows[MICRO_MAX];
static int n_micro;

static void run_micro(struct bench *b)
{
	struct micro *m = b->m;
	struct aeth_vip_key vk = { .family = AETH_AF_INET };
	__u32 one = 1, v;
	struct row r = { 0 };
	int i;

#define MICRO(k, nm, p, vr) MICRO_CHECKED(k, nm, p, vr, 0, 0)
	/* cyc: 2^cyc sources in turn (0: vr says); want: the last verdict */
#define MICRO_CHECKED(k, nm, p, vr, cyc, verdict)                              \
	(n_micro < MICRO_MAX ? (void)0 : die("micro_rows", ENOSPC),           \
	 micro_rows[n_micro++] = (struct micro_row){                          \
		 .key = k, .name = nm, .fd = bpf_program__fd(m->progs.p),    \
		 .vary = vr, .cycle = cyc, .want = verdict })
	MICRO("sink", "percpu array add (base of the two clocks)",
	      micro_sink_only, false);
	MICRO("ktime", "bpf_ktime_get_ns()", micro_ktime, false);
	MICRO("ktime_coarse", "bpf_ktime_get_coarse_ns()", micro_ktime_coarse,
	      false);
	MICRO("hash_hit", "hash lookup, 20-byte key, hit (like aeth_vip)",
	      micro_hash_hit, false);
	MICRO("ct_miss", "LRU lookup, 1M entries, new tuple, miss",
	      micro_ct_miss, true);
	/* the connection table as buckets of our own (docs/bench.md) */
	MICRO("ct_own_miss", "own 4-way buckets, 1M entries, new tuple, miss",
	      micro_ct_own_miss, true);
	MICRO("ct_insert", "LRU update, new tuple (evicts once full)",
	      micro_ct_insert, true);
	MICRO("ct_own_insert", "own 4-way buckets, new tuple written",
	      micro_ct_own_insert, true);
	MICRO("ct_own8_insert", "own 8-way buckets, new tuple written",
	      micro_ct_own8_insert, true);
	MICRO("ct_miss_full", "LRU lookup after the inserts, miss",
	      micro_ct_miss_full, true);
	MICRO("ct_own_miss_full", "own buckets after the inserts, miss",
	      micro_ct_own_miss_full, true);
	MICRO("ct_own8_miss_full", "own 8-way buckets after the inserts, miss",
	      micro_ct_own8_miss_full, true);
	MICRO("lpm_1k", "LPM trie lookup, 1,000 prefixes, new source",
	      micro_lpm, true);
	MICRO("fib", "bpf_fib_lookup, output route", micro_fib, false);
	MICRO("atomic", "atomic add, per-CPU value", micro_atomic, false);
	MICRO("shared_atomic", "atomic add, value shared by CPUs",
	      micro_shared_atomic, false);
	MICRO("shared_read", "read of a value shared by CPUs",
	      micro_shared_read, false);
	MICRO("encap_floor", "head moved 20 bytes, 40 written, XDP_TX",
	      micro_encap_floor, false);
	/* the table's layout against denser ones: hits on 65,536 flows in
	 * turn, then a new flow each packet (a miss and a write) */
#define LAYOUT(k, nm, p)                                                      \
	MICRO_CHECKED(k "_hit_64k", nm ", 65,536 flows in turn, hit", p,      \
		      false, 16, XDP_TX);                                     \
	MICRO_CHECKED(k "_new", nm ", new tuple written", p, true, 0, XDP_PASS)
	LAYOUT("ct8", "table's buckets", micro_ct8_find_or_add);
	LAYOUT("dense4", "one-line IPv4 buckets", micro_dense4_find_or_add);
	LAYOUT("dense4l", "the same, each in its line",
	       micro_dense4_lined_find_or_add);
#undef LAYOUT
#undef MICRO_CHECKED
#undef MICRO

	inet_pton(AF_INET, VIP4, &vk.addr.v4);
	check(bpf_map_update_elem(bpf_map__fd(m->maps.micro_vip), &vk, &one,
				  BPF_ANY) ? -errno : 0, "micro vip");
	fill_acl(bpf_map__fd(m->maps.micro_acl), 1000);
	tcp_row(&r, "198.51.100.7", 40000, VIP4, PORT_FWD, PKT_TCP_SYN);
	for (i = 0; i < n_micro; i++) {
		struct micro_row *x = &micro_rows[i];

		r.vary_off = x->vary || x->cycle ? V4_SRC_OFF : 0;
		r.vary_shift = x->cycle ? BENCH_VARY_CYCLE(x->cycle) : 0;
		r.repeat = 200000;
		x->r = r;
		measure(b, &r, x->fd, 200000, &x->ns, &x->floor, &v);
		x->path_ok = !x->want || v == x->want;
		if (!x->path_ok)
			fprintf(stderr, "cost: %s: verdict %u (want %u)\n",
				x->name, v, x->want);
	}
}

static void print_micro(void)
{
	int i;

	printf("\nsingle operations, each alone under the wrapper\n");
	printf("%-46s %7s %7s %7s\n", "operation", "ns", "floor", "above");
	for (i = 0; i < n_micro; i++) {
		const struct micro_row *x = &micro_rows[i];

		printf("%-46s %7.1f %7.1f %7.1f%s\n", x->name, x->ns.best,
		       x->floor.best, x->ns.best - x->floor.best,
		       x->path_ok ? "" : " (WRONG PATH)");
	}
}

static void json_micro(FILE *f)
{
	int i;

	fprintf(f, "  \"operations\": [\n");
	for (i = 0; i < n_micro; i++) {
		const struct micro_row *x = &micro_rows[i];

		fprintf(f, "    {\"op\": \"%s\", \"name\": \"%s\", "
			"\"ns_best\": %.1f, \"floor_ns_best\": %.1f, "
			"\"above_floor_ns\": %.1f}%s\n", x->key, x->name,
			x->ns.best, x->floor.best, x->ns.best - x->floor.best,
			i == n_micro - 1 ? "" : ",");
	}
	fprintf(f, "  ],\n");
}

static void json_row(FILE *f, const struct row *r, bool last)
{
	fprintf(f, "    {\"row\": \"%s\", \"name\": \"%s\", "
		"\"ns_best\": %.1f, \"floor_ns_best\": %.1f, "
		"\"above_floor_ns\": %.1f, \"ns_median\": %.1f, "
		"\"floor_ns_median\": %.1f, \"above_floor_ns_median\": %.1f, ",
		r->key, r->name, r->ns.best, r->floor.best, above(r),
		r->ns.median, r->floor.median, above_median(r));
	if (r->target > 0)
		fprintf(f, "\"target_ns\": %.0f, \"ok\": %s, ", r->target,
			above(r) <= r->target ? "true" : "false");
	if (r->base.best > 0)
		fprintf(f, "\"baseline_ns_best\": %.1f, "
			"\"baseline_above_floor_ns\": %.1f, "
			"\"baseline_path_ok\": %s, ", r->base.best,
			r->base.best - r->floor.best,
			r->base_path_ok ? "true" : "false");
	fprintf(f, "\"repeat\": %u, \"path_ok\": %s}%s\n", r->repeat,
		r->path_ok ? "true" : "false", last ? "" : ",");
}

int main(int argc, char **argv)
{
	struct bench b = { .rounds = 9, .base_fd = -1, .base_ct_fd = -1 };
	static struct row rows[24];
	const char *json = NULL, *only = NULL, *baseline = NULL;
	struct utsname un;
	cpu_set_t set;
	char cpu[128] = "?", line[256], when[32];
	struct timing empty_floor, dummy;
	double ct_bpe;
	uint32_t v;
	time_t now = time(NULL);
	int i, n = 0;
	FILE *f;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") && i + 1 < argc) {
			json = argv[++i];
		} else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
			b.rounds = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--baseline") && i + 1 < argc) {
			baseline = argv[++i];
		} else {
			fprintf(stderr, "usage: %s [--json FILE] [--rounds N] "
				"[--only ROW|micro] [--baseline OBJ]\n",
				argv[0]);
			return 2;
		}
	}
	if (b.rounds < 1 || b.rounds > MAX_ROUNDS)
		b.rounds = 9;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("pinning to CPU 0", errno);
	setup(&b);
	if (baseline)
		load_baseline(&b, baseline);

#define ROW(k, nm, rep, verd, rsn, ev, tgt)                                   \
	(rows[n] = (struct row){ .key = k, .name = nm, .repeat = rep,         \
				 .verdict = verd, .reason = rsn, .event = ev,  \
				 .target = tgt },                             \
	 &rows[n++])
	struct row *r;

	r = ROW("pass_not_service", "non-service pass-through", 200000,
		XDP_PASS, -1, AETH_EV_PASS_NOT_SERVICE, 10);
	tcp_row(r, "198.51.100.7", 40000, "192.0.2.99", 80, PKT_TCP_ACK);

	r = ROW("drop_unconfigured_port", "unconfigured port drop", 200000,
		XDP_DROP, AETH_R_UNCONFIGURED_PORT, -1, 25);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_UNCONF, PKT_TCP_SYN);

	r = ROW("drop_acl_0", "authorized-network drop, empty list", 200000,
		XDP_DROP, AETH_R_NOT_AUTHORIZED, -1, 0);
	tcp_row(r, "203.0.113.77", 40000, VIP4, PORT_ACL0, PKT_TCP_SYN);
	r = ROW("drop_acl_10", "authorized-network drop, 10 prefixes", 200000,
		XDP_DROP, AETH_R_NOT_AUTHORIZED, -1, 0);
	tcp_row(r, "203.0.113.77", 40000, VIP4, PORT_ACL10, PKT_TCP_SYN);
	r = ROW("drop_acl_1k", "authorized-network drop, 1,000 prefixes",
		200000, XDP_DROP, AETH_R_NOT_AUTHORIZED, -1, 25);
	tcp_row(r, "203.0.113.77", 40000, VIP4, PORT_ACL1K, PKT_TCP_SYN);
	r = ROW("drop_acl_10k", "authorized-network drop, 10,000 prefixes",
		200000, XDP_DROP, AETH_R_NOT_AUTHORIZED, -1, 30);
	tcp_row(r, "203.0.113.77", 40000, VIP4, PORT_ACL10K, PKT_TCP_SYN);
	/* a new source each packet, scattered over the address space: no
	 * one cached path through the list; about 0.1% of them fall inside
	 * it and are forwarded instead (the last one timed is dropped) */
	r = ROW("drop_acl_1k_rand",
		"authorized-network drop, 1,000 prefixes, random sources",
		200000, XDP_DROP, AETH_R_NOT_AUTHORIZED, -1, 25);
	tcp_row(r, "203.0.113.77", 40000, VIP4, PORT_ACL1K, PKT_TCP_SYN);
	vary_src_scattered(r);
	r->off_path_per_mille = 2;	/* about 0.1% are inside the list */
	/* and are forwarded without an insert: each would write a random
	 * bucket of a table the drops leave cold, about 8 us here, which
	 * made a tenth of a percent of the packets a third of the row (the
	 * insert is the new-flow row's to time) */
	r->insert_rate = 1;

	r = ROW("drop_rl_acl_10", "rate-limit drop, 10 prefixes", 200000,
		XDP_DROP, AETH_R_RATE_LIMITED, -1, 0);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_ACL10, PKT_TCP_SYN);
	r->prime = true;
	vary_sport(r);
	r = ROW("drop_rl_acl_1k", "rate-limit drop, 1,000 prefixes", 200000,
		XDP_DROP, AETH_R_RATE_LIMITED, -1, 0);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_ACL1K, PKT_TCP_SYN);
	r->prime = true;
	vary_sport(r);
	r = ROW("drop_rl_acl_10k", "rate-limit drop, 10,000 prefixes", 200000,
		XDP_DROP, AETH_R_RATE_LIMITED, -1, 0);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_ACL10K, PKT_TCP_SYN);
	r->prime = true;
	vary_sport(r);
	r = ROW("drop_rl", "rate-limit drop (known source, no ACL)", 200000,
		XDP_DROP, AETH_R_RATE_LIMITED, -1, 40);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_RL, PKT_TCP_SYN);
	r->prime = true;
	vary_sport(r);

	r = ROW("drop_service_cap", "service-cap drop (new sources)", 200000,
		XDP_DROP, AETH_R_SERVICE_RATE_LIMITED, -1, 40);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_CAP, PKT_TCP_SYN);
	r->vary_off = V4_SRC_OFF;
	r->prime = true;

	r = ROW("new_flow", "new flow (Maglev + conntrack insert)", 50000,
		XDP_TX, -1, AETH_EV_CT_INSERT, 300);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_NEW, PKT_TCP_SYN);
	r->vary_off = V4_SRC_OFF;
	/* the admission path of a SYN without the insert (budget 1, as
	 * below): limits charged, Maglev, encapsulation */
	r = ROW("syn_limits", "SYN forwarded, limits on (insert skipped)",
		50000, XDP_TX, -1, AETH_EV_CT_INSERT_SKIPPED, 90);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_SYN, PKT_TCP_SYN);
	vary_sport(r);
	r->table = TABLE_EMPTY;
	r->insert_rate = 1;
	r = ROW("new_flow_no_insert", "new flow, insert skipped (budget 1)",
		50000, XDP_TX, -1, AETH_EV_CT_INSERT_SKIPPED, 0);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_NEW, PKT_TCP_SYN);
	r->vary_off = V4_SRC_OFF;
	r->table = TABLE_EMPTY;
	r->insert_rate = 1;

	r = ROW("stray_ack", "TCP ACK without entry (Maglev, not recorded)",
		200000, XDP_TX, -1, AETH_EV_CT_STRAY, 0);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_NEW, PKT_TCP_ACK);
	r->vary_off = V4_SRC_OFF;
	r->table = TABLE_EMPTY;
	/* the same two in a full table (a flood's), where about one miss in
	 * six reads its bucket */
	r = ROW("syn_limits_full",
		"SYN forwarded, limits on (insert skipped), full table", 50000,
		XDP_TX, -1, AETH_EV_CT_INSERT_SKIPPED, 0);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_SYN, PKT_TCP_SYN);
	vary_sport(r);
	r->table = TABLE_FULL;
	r->insert_rate = 1;
	r = ROW("stray_ack_full", "TCP ACK without entry, full table", 200000,
		XDP_TX, -1, AETH_EV_CT_STRAY, 0);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_NEW, PKT_TCP_ACK);
	r->vary_off = V4_SRC_OFF;
	r->table = TABLE_FULL;

	r = ROW("established_v4", "established flow encapsulated, IPv4",
		200000, XDP_TX, -1, AETH_EV_CT_HIT, 45);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_FWD, PKT_TCP_ACK);
	r->prime_syn = true;
	r = ROW("established_v6", "established flow encapsulated, IPv6",
		200000, XDP_TX, -1, AETH_EV_CT_HIT, 55);
	tcp_row(r, "2001:db8:100::7", 40000, VIP6, PORT_FWD, PKT_TCP_ACK);
	r->prime_syn = true;
	r = ROW("established_acl_1k",
		"established flow, 1,000 authorized prefixes", 200000, XDP_TX,
		-1, AETH_EV_CT_HIT, 50);
	tcp_row(r, "198.51.100.7", 40000, VIP4, PORT_EST_ACL1K, PKT_TCP_ACK);
	r->prime_syn = true;

	r = ROW("established_v4_64k",
		"established flows, IPv4, 65,536 in turn", 200000, XDP_TX, -1,
		AETH_EV_CT_HIT, 0);
	tcp_row(r, "198.51.100.7", 1024, VIP4, PORT_FWD, PKT_TCP_ACK);
	r->prime_syn = true;
	vary_sport_cycle(r, 16);
	/* opened in an emptied table: in the full one the rows above leave,
	 * an insert evicts the oldest entry of its bucket, the first of
	 * equals, and a flow opened in the same second as the filling is
	 * one of those equals (about one flow in nine was evicted by a
	 * later one of the 65,536 sharing its bucket) */
	r->table = TABLE_EMPTY;

	r = ROW("decap", "inline decap", 200000, XDP_PASS, -1, AETH_EV_DECAP,
		0);
	decap_row(r);

	if (only && !strcmp(only, "micro")) {
		/* the single operations alone, as a whole run times them */
		run_micro(&b);
		print_micro();
		for (i = 0; i < n_micro; i++)
			if (!micro_rows[i].path_ok)
				return 1;
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (only && strcmp(rows[i].key, only)) {
			rows[i].path_ok = true;
			continue;
		}
		if (rows[i].table == TABLE_EMPTY)
			empty_table(&b);
		else if (rows[i].table == TABLE_FULL)
			fill_table(&b);
		set_insert_rate(&b, rows[i].insert_rate);
		prime_row(&b, &rows[i]);
		measure_row(&b, &rows[i]);
	}
	if (only) {
		/* one row, for profiling: no floor, operations or controls */
		for (i = 0; i < n; i++)
			if (!strcmp(rows[i].key, only))
			{
				printf("%s: %.1f ns best, floor %.1f, above %.1f "
				       "(%s)", rows[i].name, rows[i].ns.best,
				       rows[i].floor.best, above(&rows[i]),
				       rows[i].path_ok ? "path ok" :
				       "WRONG PATH");
				if (rows[i].target > 0)
					printf(", target <= %.0f %s",
					       rows[i].target,
					       above(&rows[i]) <= rows[i].target ?
					       "PASS" : "MISS");
				printf("\n");
				if (baseline)
					printf("baseline: %.1f ns best, above "
					       "%.1f%s\n", rows[i].base.best,
					       rows[i].base.best -
					       rows[i].floor.best,
					       rows[i].base_path_ok ? "" :
					       " (WRONG PATH)");
			}
		for (i = 0; i < n && getenv("BENCH_SHARED"); i++)
			if (!strcmp(rows[i].key, only)) {
				if (b.base_fd >= 0) {
					shared_vs_baseline(&b, &rows[i]);
					continue;
				}
				measure_shared(&b, &rows[i], b.h.prog_fd,
					       rows[i].key, rows[i].name,
					       rows[i].ns);
				printf("both CPUs: %.1f / %.1f ns best\n",
				       shared_rows[0].cpu[0].best,
				       shared_rows[0].cpu[1].best);
			}
		return 0;
	}
	set_insert_rate(&b, 0);
	/* the plain floor: an empty program under the wrapper, no variation */
	measure(&b, &rows[0], b.empty_fd, 200000, &dummy, &empty_floor, &v);
	run_micro(&b);
	if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
		/* controls: nothing shared but the machine itself */
		measure_shared(&b, &rows[0], b.empty_fd, "empty",
			       "empty program (control)", empty_floor);
		measure_shared(&b, &rows[0], b.h.prog_fd, rows[0].key,
			       "non-service pass-through (control)",
			       rows[0].ns);
		for (i = 0; i < n; i++)
			if (!strcmp(rows[i].key, "drop_rl") ||
			    !strcmp(rows[i].key, "drop_service_cap") ||
			    !strcmp(rows[i].key, "new_flow"))
				measure_shared(&b, &rows[i], b.h.prog_fd,
					       rows[i].key, rows[i].name,
					       rows[i].ns);
		for (i = 0; i < n_micro; i++)
			if (!strncmp(micro_rows[i].key, "shared_", 7) ||
			    !strcmp(micro_rows[i].key, "ct_miss") ||
			    !strcmp(micro_rows[i].key, "ct_insert") ||
			    !strcmp(micro_rows[i].key, "ct_own_insert"))
				measure_shared(&b, &micro_rows[i].r,
					       micro_rows[i].fd,
					       micro_rows[i].key,
					       micro_rows[i].name,
					       micro_rows[i].ns);
	}

	f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
			snprintf(cpu, sizeof(cpu), "%s", strchr(line, ':') + 2);
			cpu[strcspn(cpu, "\n")] = 0;
			break;
		}
	}
	if (f)
		fclose(f);
	uname(&un);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));

	printf("cost per packet, BPF_PROG_TEST_RUN, CPU 0 of %ld (%s), "
	       "kernel %s\n", sysconf(_SC_NPROCESSORS_ONLN), cpu, un.release);
	printf("empty program under the restore wrapper (floor): %.1f ns best, "
	       "%.1f median; %d alternating rounds\n\n", empty_floor.best,
	       empty_floor.median, b.rounds);
	printf("%-44s %7s %7s %7s %7s %7s%s\n", "path", "ns", "floor", "above",
	       "median", "target", baseline ? "  baseline above" : "");
	for (i = 0; i < n; i++) {
		const struct row *x = &rows[i];
		char tgt[16] = "-";
		const char *st = "";

		if (x->target > 0) {
			snprintf(tgt, sizeof(tgt), "<= %.0f", x->target);
			st = above(x) <= x->target ? "PASS" : "MISS";
		}
		printf("%-44s %7.1f %7.1f %7.1f %7.1f %7s %-6s", x->name,
		       x->ns.best, x->floor.best, above(x), above_median(x), tgt,
		       st);
		if (baseline)
			printf(" %7.1f%s", x->base.best - x->floor.best,
			       x->base_path_ok ? "" : " (baseline: WRONG PATH)");
		printf("%s\n", x->path_ok ? "" : " (WRONG PATH)");
	}

	{
		int pass = 0, miss = 0;

		for (i = 0; i < n; i++)
			if (rows[i].target > 0)
				above(&rows[i]) <= rows[i].target ? pass++ :
								     miss++;
		printf("targets (issue 12): %d PASS, %d MISS\n", pass, miss);
	}
	ct_bpe = ct_bytes_per_entry(b.h.ct, b.h.ct_bloom);
	printf("connection table memory: %.1f bytes per entry (kernel "
	       "memlock of the table and its filter / entries), "
	       "target <= 64 %s", ct_bpe,
	       ct_bpe <= 64 ? "PASS" : "MISS");
	if (b.base_ct_fd >= 0)
		printf("; baseline %.1f", ct_bytes_per_entry(b.base_ct_fd, -1));
	printf("\n");

	print_micro();
	print_shared();

	if (json) {
		f = fopen(json, "w");
		if (!f)
			die(json, errno);
		fprintf(f, "{\n  \"date\": \"%s\",\n  \"kernel\": \"%s\",\n"
			"  \"cpu\": \"%s\",\n  \"cpus\": %ld,\n"
			"  \"method\": \"BPF_PROG_TEST_RUN under a restore "
			"wrapper; per row %d alternating rounds of the program "
			"and of an empty program under the same wrapper and "
			"frame; above_floor = best - best\",\n"
			"  \"floor_ns_best\": %.1f,\n"
			"  \"floor_ns_median\": %.1f,\n",
			when, un.release, cpu, sysconf(_SC_NPROCESSORS_ONLN),
			b.rounds, empty_floor.best, empty_floor.median);
		fprintf(f, "  \"ct_bytes_per_entry\": %.1f,\n", ct_bpe);
		json_micro(f);
		json_shared(f);
		fprintf(f, "  \"rows\": [\n");
		for (i = 0; i < n; i++)
			json_row(f, &rows[i], i == n - 1);
		fprintf(f, "  ]\n}\n");
		fclose(f);
	}
	for (i = 0; i < n; i++)
		if (!rows[i].path_ok)
			return 1;
	for (i = 0; i < n_micro; i++)
		if (!micro_rows[i].path_ok)
			return 1;
	bpf_object__close(b.base_obj);
	micro__destroy(b.m);
	wrapper__destroy(b.w);
	dp_close(&b.h);
	return 0;
}
