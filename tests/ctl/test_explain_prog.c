/* aetherctl explain against the real program: for many random flows, the
 * verdict, drop reason and backend explain reports equal what
 * BPF_PROG_TEST_RUN of aether_lb does with the same packet on the same
 * maps (pinned for aetherctl to read). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>

#include "aether/acl_key.h"
#include "aether/map_table.h"
#include "aether/names.h"
#include "aether/ratelimit_rule.h"
#include "ctl_fixture.h"
#include "harness.h"
#include "pkt.h"

#define TSIZE 251
#define N_FLOWS 300
#define VIP4 "203.0.113.10"
#define VIP6 "2001:db8:f::10"

static struct dp_h h;
static struct dp_net net;
static char pin_dir[64];

static const char *const map_names[] = {
#define MAP_NAME_(f, ...) AETH_MAP_NAME(f),
	AETH_PINNED_MAPS(MAP_NAME_)
#undef MAP_NAME_
};

static void unpin_all(void)
{
	char path[128];

	if (!pin_dir[0])
		return;
	for (size_t i = 0; i < sizeof(map_names) / sizeof(map_names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, map_names[i]);
		unlink(path);
	}
	rmdir(pin_dir);
	pin_dir[0] = '\0';
}

/* Pin the harness's maps where aetherctl will look. */
static void pin_all(void)
{
	const int fds[] = { h.meta, h.node, h.vip, h.svc, h.svcinfo, h.backend,
			    h.maglev, h.acl, h.acl_rng, h.acl_rngidx, h.ct,
			    h.ct_bloom, h.ct_budget, h.rl_src, h.rl_svc, h.svc_stats,
			    h.be_stats, h.global, h.decap, h.pcpu,
			    h.tx_ports, h.stamp };
	_Static_assert(sizeof(fds) / sizeof(fds[0]) ==
		       sizeof(map_names) / sizeof(map_names[0]),
		       "one fd per row of the map table");
	struct aeth_meta meta = { .schema_version = AETH_SCHEMA_VERSION };
	char path[128];
	__u32 zero = 0;

	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/aeth-ct-%d-prog",
		 (int)getpid());
	cr_assert_eq(mkdir(pin_dir, 0700), 0);
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, map_names[i]);
		cr_assert_eq(bpf_obj_pin(fds[i], path), 0, "pin %s", path);
	}
	cr_assert_eq(bpf_map_update_elem(h.meta, &zero, &meta, 0), 0);
}

static void backend(uint32_t id, const char *addr, uint32_t flags,
		    uint32_t svc_id)
{
	struct aeth_backend be = dp_backend(addr, flags | AETH_BE_F_IN_USE,
					    svc_id);

	cr_assert_eq(dp_set_backend(&h, id, &be), 0);
}

/* A table of random picks among ids (AETH_NO_BACKEND among them). */
static void random_table(uint32_t slot, const uint32_t *ids, size_t n)
{
	uint32_t table[TSIZE];

	for (uint32_t i = 0; i < TSIZE; i++)
		table[i] = ids[rand() % n];
	cr_assert_eq(dp_set_maglev(&h, slot, table, TSIZE), 0);
}

static void acl_add(int fd, const char *addr, uint32_t plen)
{
	struct aeth_acl_key k;
	union aeth_addr a;
	__u32 fam;

	memset(&k, 0, sizeof(k));
	fam = dp_addr(addr, &a);
	if (fam == AETH_AF_INET) {
		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		memcpy(k.addr + 12, &a.v4, 4);
		k.prefixlen = plen + 96;
	} else {
		memcpy(k.addr, a.bytes, 16);
		k.prefixlen = plen;
	}
	cr_assert_eq(bpf_map_update_elem(fd, &k, &fam, 0), 0);
}

/*
 * svc 0 VIP4:6443/tcp: ACL 198.51.100.0/25 plus ::/0 (an IPv6 catch-all that
 *   must not admit IPv4), 1 new connection per hour per source (burst 1),
 *   backends 0 .21, 1 .22, 2 .23 draining, 3 2001:db8::21, table random over
 *   them and holes.
 * svc 1 [VIP6]:*, udp: 2 new flows per hour per /128; backends
 *   4 2001:db8::22, 5 192.0.2.21 unhealthy.
 * svc 2 VIP4:80/tcp: service cap exhausted; backend 6 192.0.2.22.
 */
static void setup(void)
{
	const uint32_t t0[] = { 0, 1, 2, 3, 0, 1, 3, AETH_NO_BACKEND };
	const uint32_t t1[] = { 4, 4, 5, AETH_NO_BACKEND };
	const uint32_t t2[] = { 6 };
	struct aeth_svc_key k;
	struct aeth_svc s;
	struct aeth_node node;
	struct aeth_rl_svc_state cap = { 0 };
	__u32 id2 = 2;
	int acl;

	srand(20261126);
	cr_assert_eq(dp_netns_setup(&net), 0);
	cr_assert_eq(dp_open(&h), 0);
	dp_node_default(&node);
	cr_assert_eq(dp_set_node(&h, &node), 0);
	cr_assert_eq(dp_add_tx_port(&h, net.if0), 0);
	cr_assert_eq(dp_add_tx_port(&h, net.if2), 0);

	backend(0, "192.0.2.21", 0, 0);
	backend(1, "192.0.2.22", 0, 0);
	backend(2, "192.0.2.23", AETH_BE_F_DRAINING, 0);
	backend(3, "2001:db8::21", 0, 0);
	random_table(0, t0, 8);
	acl = dp_acl_create(&h, 0);
	cr_assert_geq(acl, 0);
	acl_add(acl, "198.51.100.0", 25);
	acl_add(acl, "::", 0);
	/* the program answers IPv4 from the compiled form, explain from the
	 * trie: they must agree */
	cr_assert_eq(dp_acl_compile(&h, 0, acl), 0);
	close(acl);
	k = dp_svc_key(VIP4, 6443, IPPROTO_TCP);
	s = dp_svc(0, 0, TSIZE);
	s.flags = AETH_SVC_F_ACL;
	s.acl_slot = 0;
	s.src_prefix_v4 = 32;
	s.src_prefix_v6 = 64;
	/* an hour, not seconds: no bucket conforms again while the tests run,
	 * so a prediction cannot turn between explain and the program (a
	 * source seen 10 s earlier did once, in a slow sanitizer run) */
	s.src_interval_ns = 3600000000000ull;
	s.src_tolerance_ns = 0;
	cr_assert_eq(dp_add_service(&h, &k, &s), 0);

	backend(4, "2001:db8::22", 0, 1);
	backend(5, "192.0.2.21", AETH_BE_F_UNHEALTHY, 1);
	random_table(2, t1, 4);
	k = dp_svc_key(VIP6, 0, IPPROTO_UDP);
	s = dp_svc(1, 2, TSIZE);
	/* every new UDP flow is charged: two per source per hour */
	s.src_prefix_v4 = 32;
	s.src_prefix_v6 = 128;
	s.src_interval_ns = 3600000000000ull;
	s.src_tolerance_ns = 3600000000000ull;
	cr_assert_eq(dp_add_service(&h, &k, &s), 0);

	backend(6, "192.0.2.22", 0, 2);
	random_table(4, t2, 1);
	k = dp_svc_key(VIP4, 80, IPPROTO_TCP);
	s = dp_svc(2, 4, TSIZE);
	s.svc_interval_ns = 1000000000ull;
	s.svc_tolerance_ns = 0;
	cr_assert_eq(dp_add_service(&h, &k, &s), 0);
	cap.tat_ns = fx_now_ns() + 3600ull * 1000000000ull;
	cr_assert_eq(bpf_map_update_elem(h.rl_svc, &id2, &cap, 0), 0);

	pin_all();
}

static void teardown(void)
{
	unpin_all();
	dp_close(&h);
}

TestSuite(explain_prog, .init = setup, .fini = teardown, .timeout = 300);

struct flow_case {
	char src[64], dst[64];	/* IP:PORT as explain takes them */
	struct pkt_spec spec;
	bool udp, syn;
};

static void make_case(struct flow_case *c, bool v6, const char *src_ip,
		      uint16_t sport, const char *dst_ip, uint16_t dport,
		      bool udp, bool syn)
{
	memset(c, 0, sizeof(*c));
	if (v6) {
		snprintf(c->src, sizeof(c->src), "[%s]:%u", src_ip, sport);
		snprintf(c->dst, sizeof(c->dst), "[%s]:%u", dst_ip, dport);
		c->spec = udp ? pkt_spec_udp6(src_ip, sport, dst_ip, dport)
			      : pkt_spec_tcp6(src_ip, sport, dst_ip, dport);
	} else {
		snprintf(c->src, sizeof(c->src), "%s:%u", src_ip, sport);
		snprintf(c->dst, sizeof(c->dst), "%s:%u", dst_ip, dport);
		c->spec = udp ? pkt_spec_udp4(src_ip, sport, dst_ip, dport)
			      : pkt_spec_tcp4(src_ip, sport, dst_ip, dport);
	}
	c->udp = udp;
	c->syn = syn && !udp;
	if (!udp)
		c->spec.tcp_flags = syn ? PKT_TCP_SYN : PKT_TCP_ACK;
}

static void random_case(struct flow_case *c, const struct flow_case *prev,
			int nprev)
{
	char ip[64];
	uint16_t sport = 1024 + rand() % 64000;
	bool syn = rand() % 2;
	int kind = rand() % 100;

	if (kind < 8 && nprev) {
		*c = prev[rand() % nprev];	/* again: a connection entry */
		return;
	}
	if (kind < 50) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", rand() % 256);
		make_case(c, false, ip, sport, VIP4, 6443, false, syn);
	} else if (kind < 70) {
		snprintf(ip, sizeof(ip), "2001:db8:100::%x", rand() % 24);
		make_case(c, true, ip, sport, VIP6, 1 + rand() % 65535, true,
			  false);
	} else if (kind < 82) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", rand() % 256);
		make_case(c, false, ip, sport, VIP4, 80, false, syn);
	} else if (kind < 92) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", rand() % 256);
		make_case(c, false, ip, sport, VIP4, 1000 + rand() % 5000,
			  rand() % 2, syn);
	} else {
		snprintf(ip, sizeof(ip), "198.51.100.%d", rand() % 256);
		make_case(c, false, ip, sport, "203.0.113.99", 443, false, syn);
	}
}

/* The outer destination of an encapsulated frame (no VLAN tags). */
static void outer_dst(const uint8_t *b, char *buf, size_t len)
{
	if (b[14] >> 4 == 4)
		inet_ntop(AF_INET, b + 14 + 16, buf, len);
	else
		inet_ntop(AF_INET6, b + 14 + 24, buf, len);
}

/* The one drop reason whose global counter moved, or NULL. */
static const char *moved_reason(const struct aeth_global_stats *a,
				const struct aeth_global_stats *b)
{
	const char *r = NULL;

	for (int i = 0; i < AETH_R_MAX; i++) {
		if (b->reasons[i] == a->reasons[i])
			continue;
		cr_assert_null(r, "one drop, one reason");
		r = aeth_reason_names[i];
	}
	return r;
}

Test(explain_prog, random_flows_agree)
{
	static struct flow_case cases[N_FLOWS];
	int seen_tx = 0, seen_drop = 0, seen_pass = 0, seen_ct = 0;
	int seen_reason[AETH_R_MAX] = { 0 };

	for (int i = 0; i < N_FLOWS; i++) {
		struct flow_case *c = &cases[i];
		struct aeth_global_stats g0, g1;
		uint8_t in[PKT_MAX], out[PKT_MAX];
		size_t in_len, out_len = sizeof(out);
		const char *verdict, *reason;
		struct fx_res r;
		uint32_t xdp;

		random_case(c, cases, i);
		in_len = pkt_build(&c->spec, in, sizeof(in));
		cr_assert_gt(in_len, 0);

		/* explain first: it must predict, not observe */
		cr_assert_eq(fx_ctl_dir(pin_dir, &r, "-j", "explain", "--src",
					c->src, "--dst", c->dst, "--proto",
					c->udp ? "udp" : "tcp",
					c->syn ? "--syn" : NULL, NULL), 0);
		cr_assert_eq(r.status, 0, "explain %s -> %s: %s", c->src,
			     c->dst, r.out);
		verdict = json_string_value(json_object_get(r.json, "verdict"));
		reason = json_string_value(json_object_get(r.json, "reason"));
		cr_assert(verdict && reason, "%s", r.out);

		cr_assert_eq(dp_global(&h, &g0), 0);
		cr_assert_eq(dp_run(&h, in, in_len, out, &out_len, net.if0,
				    &xdp), 0);
		cr_assert_eq(dp_global(&h, &g1), 0);

		if (!strcmp(verdict, "drop")) {
			const char *got = moved_reason(&g0, &g1);

			cr_assert_eq(xdp, XDP_DROP, "flow %d %s -> %s: explain "
				     "drop %s, program %u", i, c->src, c->dst,
				     reason, xdp);
			cr_assert_not_null(got);
			cr_assert_str_eq(got, reason, "flow %d %s -> %s", i,
					 c->src, c->dst);
			seen_drop++;
			for (int k = 0; k < AETH_R_MAX; k++)
				if (!strcmp(reason, aeth_reason_names[k]))
					seen_reason[k]++;
		} else if (!strcmp(verdict, "pass")) {
			cr_assert_eq(xdp, XDP_PASS, "flow %d %s -> %s", i,
				     c->src, c->dst);
			cr_assert(pkt_equal(out, out_len, in, in_len),
				  "passed untouched");
			seen_pass++;
		} else {
			const char *want = json_string_value(
				json_object_get(r.json, "backend"));
			char got[64];

			cr_assert_str_eq(verdict, "tx");
			cr_assert(xdp == XDP_TX || xdp == XDP_REDIRECT ||
				  xdp == XDP_PASS, "flow %d %s -> %s: "
				  "explain tx, program %u", i, c->src, c->dst,
				  xdp);
			cr_assert_gt(out_len, in_len, "encapsulated");
			outer_dst(out, got, sizeof(got));
			cr_assert_str_eq(got, want, "flow %d %s -> %s (%s)", i,
					 c->src, c->dst, reason);
			cr_assert_null(moved_reason(&g0, &g1));
			seen_tx++;
			seen_ct += !strcmp(reason, "conntrack");
		}
		fx_res_free(&r);
	}
	/* the random mix reached every rule */
	cr_assert_gt(seen_tx, 20);
	cr_assert_gt(seen_pass, 3);
	cr_assert_gt(seen_ct, 3);
	cr_assert_gt(seen_drop, 20);
	cr_assert_gt(seen_reason[AETH_R_NOT_AUTHORIZED], 0);
	cr_assert_gt(seen_reason[AETH_R_UNCONFIGURED_PORT], 0);
	cr_assert_gt(seen_reason[AETH_R_NO_BACKEND], 0);
	cr_assert_gt(seen_reason[AETH_R_SERVICE_RATE_LIMITED], 0);
	cr_assert_gt(seen_reason[AETH_R_RATE_LIMITED], 0);
	cr_log_info("%d flows: %d tx (%d by conntrack), %d pass, %d drop",
		    N_FLOWS, seen_tx, seen_ct, seen_pass, seen_drop);
}

/* aetherctl explain of a TCP SYN from src:sport to VIP4:6443 (the case
 * into *c), its answer into *r. */
static void explain_syn(const char *src, uint16_t sport, struct flow_case *c,
			struct fx_res *r)
{
	make_case(c, false, src, sport, VIP4, 6443, false, true);
	cr_assert_eq(fx_ctl_dir(pin_dir, r, "-j", "explain", "--src", c->src,
				"--dst", c->dst, "--proto", "tcp", "--syn",
				NULL), 0);
}

/* A source's second SYN within its interval: refused by both, and after a
 * stale entry (backend of another service) both re-select. */
Test(explain_prog, limiter_state_and_stale_entries_agree)
{
	struct flow_case c;
	struct aeth_flow f;
	/* backend 4 is service 1's */
	struct aeth_ct_entry e = { .backend_id = 4 };
	const char *seq[] = { "tx", "drop" };
	uint8_t in[PKT_MAX], out[PKT_MAX];
	size_t in_len, out_len;
	uint32_t xdp;
	struct fx_res r;
	uint16_t first;

	/* a first port whose slot names a usable backend (explain reads the
	 * limiter, it charges nothing) */
	for (first = 2000;; first++) {
		cr_assert_lt(first, 2100);
		explain_syn("198.51.100.5", first, &c, &r);
		if (!strcmp(json_string_value(json_object_get(r.json,
							      "verdict")),
			    "tx")) {
			fx_res_free(&r);
			break;
		}
		fx_res_free(&r);
	}
	for (int i = 0; i < 2; i++) {
		/* a new source port each time: a new connection */
		explain_syn("198.51.100.5", first + i, &c, &r);
		cr_assert_str_eq(json_string_value(json_object_get(r.json,
								   "verdict")),
				 seq[i], "%s", r.out);
		in_len = pkt_build(&c.spec, in, sizeof(in));
		out_len = sizeof(out);
		cr_assert_eq(dp_run(&h, in, in_len, out, &out_len, net.if0,
				    &xdp), 0);
		if (i == 0) {
			cr_assert_neq(xdp, XDP_DROP);
		} else {
			cr_assert_eq(xdp, XDP_DROP);
			cr_assert_str_eq(json_string_value(json_object_get(
					r.json, "reason")), "rate_limited");
		}
		fx_res_free(&r);
	}

	/* an entry naming another service's backend is not a hit */
	make_case(&c, false, "198.51.100.6", 3000, VIP4, 6443, false, false);
	memset(&f, 0, sizeof(f));
	f.family = dp_addr("198.51.100.6", &f.src);
	dp_addr(VIP4, &f.dst);
	f.sport = htons(3000);
	f.dport = htons(6443);
	f.proto = IPPROTO_TCP;
	cr_assert_eq(dp_ct_put(&h, &f, &e), 0);
	cr_assert_eq(fx_ctl_dir(pin_dir, &r, "-j", "explain", "--src", c.src,
				"--dst", c.dst, "--proto", "tcp", NULL), 0);
	cr_assert_neq(strcmp(json_string_value(json_object_get(r.json,
								"reason")),
			     "conntrack"), 0, "%s", r.out);
	in_len = pkt_build(&c.spec, in, sizeof(in));
	out_len = sizeof(out);
	cr_assert_eq(dp_run(&h, in, in_len, out, &out_len, net.if0, &xdp), 0);
	if (!strcmp(json_string_value(json_object_get(r.json, "verdict")),
		    "tx")) {
		char got[64];

		outer_dst(out, got, sizeof(got));
		cr_assert_str_eq(got, json_string_value(json_object_get(
					      r.json, "backend")));
	} else {
		cr_assert_eq(xdp, XDP_DROP);
	}
	fx_res_free(&r);
}

/* explain's field of r that counts CPUs ({"cpus": cpus, "of": all}). */
static json_t *expect_cpus_of(const struct fx_res *r, const char *field,
			      int cpus)
{
	json_t *o = json_object_get(r->json, field);

	cr_assert_not_null(o, "no %s: %s", field, r->out);
	cr_assert_eq(json_integer_value(json_object_get(o, "cpus")), cpus,
		     "%s", r->out);
	cr_assert_eq(json_integer_value(json_object_get(o, "of")),
		     libbpf_num_possible_cpus(), "%s", r->out);
	return o;
}

/* Name the harness's program in aeth_meta as attached to one interface,
 * as the agent does, so aetherctl finds its memories. */
static void name_program(void)
{
	struct bpf_prog_info info;
	struct aeth_meta meta;
	__u32 len = sizeof(info), zero = 0;

	memset(&info, 0, sizeof(info));
	cr_assert_eq(bpf_obj_get_info_by_fd(h.prog_fd, &info, &len), 0);
	cr_assert_eq(bpf_map_lookup_elem(h.meta, &zero, &meta), 0);
	meta.n_interfaces = 1;
	meta.ifaces[0].ifindex = net.if0;
	meta.ifaces[0].prog_id = info.id;
	cr_assert_eq(bpf_map_update_elem(h.meta, &zero, &meta, 0), 0);
}

/* A source refused often enough is refused from this CPU's memory until
 * its bucket could conform again (bpf/guard.h). When the bucket conforms
 * earlier (a charge given back moves it back by an interval; here it is
 * set back by hand), the program still refuses on that CPU, and explain
 * says so, with how many CPUs hold the refusal, instead of reading the
 * shared bucket alone. Without the memory in explain it says tx or
 * no_backend here. */
Test(explain_prog, remembered_refusal_agrees)
{
	uint8_t in[PKT_MAX], out[PKT_MAX];
	struct aeth_rl_src_state st;
	struct aeth_rl_src_key key;
	struct aeth_svc svc;
	struct flow_case c;
	struct aeth_svc_key k = dp_svc_key(VIP4, 6443, IPPROTO_TCP);
	struct aeth_flow f;
	json_t *mem;
	size_t in_len, out_len;
	uint32_t xdp;
	struct fx_res r;
	cpu_set_t cpus;
	int drops = 0;

	/* the program runs on the calling CPU: keep to one */
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	cr_assert_eq(sched_setaffinity(0, sizeof(cpus), &cpus), 0);
	name_program();

	for (uint16_t port = 4000; port < 4300; port++) {
		make_case(&c, false, "198.51.100.9", port, VIP4, 6443, false,
			  true);
		in_len = pkt_build(&c.spec, in, sizeof(in));
		out_len = sizeof(out);
		cr_assert_eq(dp_run(&h, in, in_len, out, &out_len, net.if0,
				    &xdp), 0);
		drops += xdp == XDP_DROP;
	}
	cr_assert_geq(drops, 299, "one admitted, the rest refused");

	/* the shared bucket conforms again; the memory still refuses */
	cr_assert_eq(bpf_map_lookup_elem(h.svc, &k, &svc), 0);
	memset(&f, 0, sizeof(f));
	f.family = dp_addr("198.51.100.9", &f.src);
	aeth_rl_src_key(&key, &svc, &f);
	cr_assert_eq(bpf_map_lookup_elem(h.rl_src, &key, &st), 0);
	cr_assert_geq(st.dropped, 256, "the memory is kept past 256");
	st.tat_ns = 1;
	cr_assert_eq(bpf_map_update_elem(h.rl_src, &key, &st, BPF_EXIST), 0);

	explain_syn("198.51.100.9", 4300, &c, &r);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "verdict")),
			 "drop", "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "reason")),
			 "rate_limited", "%s", r.out);
	mem = expect_cpus_of(&r, "remembered_refusal", 1);
	cr_assert_gt(json_integer_value(json_object_get(mem, "until_ns")),
		     (json_int_t)fx_now_ns(), "%s", r.out);
	fx_res_free(&r);
	in_len = pkt_build(&c.spec, in, sizeof(in));
	out_len = sizeof(out);
	cr_assert_eq(dp_run(&h, in, in_len, out, &out_len, net.if0, &xdp), 0);
	cr_assert_eq(xdp, XDP_DROP, "the program refuses from its memory");

	/* a changed rate is used at once: the memory no longer holds, and
	 * explain and the program both admit the source's next SYN */
	svc.src_interval_ns += 1;
	cr_assert_eq(bpf_map_update_elem(h.svc, &k, &svc, BPF_EXIST), 0);
	dp_bump_stamp(&h);
	explain_syn("198.51.100.9", 4300, &c, &r);
	cr_assert_null(json_object_get(r.json, "remembered_refusal"), "%s",
		       r.out);
	cr_assert_str_neq(json_string_value(json_object_get(r.json,
							    "reason")),
			  "rate_limited", "%s", r.out);
	out_len = sizeof(out);
	cr_assert_eq(dp_run(&h, in, in_len, out, &out_len, net.if0, &xdp), 0);
	/* tx, or no_backend where the random table has none for the flow */
	cr_assert_eq(xdp == XDP_DROP,
		     !strcmp(json_string_value(json_object_get(r.json,
							       "verdict")),
			     "drop"), "%s", r.out);
	fx_res_free(&r);
}

/* The service cap's per-CPU leases (bpf/guard.h): CPU 0 holds unspent
 * tokens of its last take, and no take came after it, so on CPU 0 they go
 * back to the bucket and a SYN is admitted, while on CPU 1 the shared
 * bucket refuses it. Explain reads the leases too: refused (a packet on
 * CPU 1 is), with one CPU of the machine's admitting. */
Test(explain_prog, service_cap_lease_agrees)
{
	const __u64 iv = 1000000000ull;	/* one a second, burst 100 */
	struct aeth_svc_key k = dp_svc_key(VIP4, 80, IPPROTO_TCP);
	int ncpus = libbpf_num_possible_cpus();
	struct aeth_rl_lease *lease = calloc(ncpus, sizeof(*lease));
	uint8_t in[PKT_MAX], out[PKT_MAX];
	struct aeth_rl_svc_state cap = { 0 };
	struct flow_case c;
	struct aeth_svc svc;
	size_t in_len, out_len;
	struct fx_res r;
	cpu_set_t cpus;
	uint32_t xdp;
	__u32 id = 2;
	__u64 now;

	if (ncpus < 2)
		cr_skip_test("needs two CPUs");
	cr_assert_not_null(lease);
	name_program();
	cr_assert_eq(bpf_map_lookup_elem(h.svc, &k, &svc), 0);
	svc.svc_interval_ns = iv;
	svc.svc_tolerance_ns = 99 * iv;
	cr_assert_eq(bpf_map_update_elem(h.svc, &k, &svc, BPF_EXIST), 0);
	dp_bump_stamp(&h);
	/* the shared bucket three tokens past its tolerance, left there by
	 * CPU 0's take of an earlier tick, five of whose tokens are unspent */
	now = fx_now_ns();
	cap.tat_ns = now + svc.svc_tolerance_ns + 3 * iv;
	cr_assert_eq(bpf_map_update_elem(h.rl_svc, &id, &cap, 0), 0);
	lease[0].now_ns = now - 10 * iv;
	lease[0].end_tat = cap.tat_ns;
	lease[0].interval_ns = iv;
	lease[0].tolerance_ns = svc.svc_tolerance_ns;
	lease[0].left = 5;
	lease[0].size = 8;
	cr_assert_eq(bpf_map_update_elem(h.rl_svc_lease, &id, lease, 0), 0);

	make_case(&c, false, "198.51.100.5", 5000, VIP4, 80, false, true);
	cr_assert_eq(fx_ctl_dir(pin_dir, &r, "-j", "explain", "--src", c.src,
				"--dst", c.dst, "--proto", "tcp", "--syn",
				NULL), 0);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "reason")),
			 "service_rate_limited", "%s", r.out);
	expect_cpus_of(&r, "service_cap_leases", 1);
	fx_res_free(&r);

	in_len = pkt_build(&c.spec, in, sizeof(in));
	for (int cpu = 1; cpu >= 0; cpu--) {
		CPU_ZERO(&cpus);
		CPU_SET(cpu, &cpus);
		cr_assert_eq(sched_setaffinity(0, sizeof(cpus), &cpus), 0);
		out_len = sizeof(out);
		cr_assert_eq(dp_run(&h, in, in_len, out, &out_len, net.if0,
				    &xdp), 0);
		if (cpu)
			cr_assert_eq(xdp, XDP_DROP, "CPU 1: the bucket refuses");
		else
			cr_assert_neq(xdp, XDP_DROP, "CPU 0: its lease admits");
	}
	/* CPU 0's take gave the five back and took one of them: the bucket
	 * holds a token again, for every CPU */
	cr_assert_eq(bpf_map_lookup_elem(h.rl_svc, &id, &cap), 0);
	cr_assert_eq(cap.tat_ns, now + svc.svc_tolerance_ns - iv);
	cr_assert_eq(fx_ctl_dir(pin_dir, &r, "-j", "explain", "--src", c.src,
				"--dst", c.dst, "--proto", "tcp", "--syn",
				NULL), 0);
	cr_assert_str_neq(json_string_value(json_object_get(r.json, "reason")),
			  "service_rate_limited", "%s", r.out);
	fx_res_free(&r);
	free(lease);
}

/* A SYN reads no connection entry (aether/ct_rule.h): on a tuple whose
 * entry names another usable backend of the service, explain and the
 * program both follow Maglev, and the entry is rewritten to it. */
Test(explain_prog, syn_ignores_usable_entry)
{
	struct flow_case c;
	struct aeth_flow f;
	struct aeth_ct_entry e = { 0 };
	uint8_t in[PKT_MAX], out[PKT_MAX];
	size_t in_len, out_len;
	json_int_t want;
	char got[64];
	uint32_t xdp;
	struct fx_res r;

	/* a port whose slot names backend 0 or 1 (no hole, not draining) */
	for (uint16_t port = 4000;; port++) {
		cr_assert_lt(port, 4100);
		explain_syn("198.51.100.9", port, &c, &r);
		want = json_integer_value(json_object_get(r.json,
							  "backend_id"));
		if (!strcmp(json_string_value(json_object_get(r.json,
							      "reason")),
			    "maglev") && want <= 1)
			break;
		fx_res_free(&r);
	}
	fx_res_free(&r);
	memset(&f, 0, sizeof(f));
	f.family = dp_addr("198.51.100.9", &f.src);
	dp_addr(VIP4, &f.dst);
	f.sport = htons(c.spec.sport);
	f.dport = htons(6443);
	f.proto = IPPROTO_TCP;
	/* an entry on another backend that takes new connections */
	e.backend_id = want == 0 ? 1 : 0;
	cr_assert_eq(dp_ct_put(&h, &f, &e), 0);

	cr_assert_eq(fx_ctl_dir(pin_dir, &r, "-j", "explain", "--src", c.src,
				"--dst", c.dst, "--proto", "tcp", "--syn",
				NULL), 0);
	cr_assert_str_eq(json_string_value(json_object_get(r.json, "reason")),
			 "maglev", "%s", r.out);
	cr_assert_eq(json_integer_value(json_object_get(r.json, "backend_id")),
		     want, "%s", r.out);
	in_len = pkt_build(&c.spec, in, sizeof(in));
	out_len = sizeof(out);
	cr_assert_eq(dp_run(&h, in, in_len, out, &out_len, net.if0, &xdp), 0);
	cr_assert_neq(xdp, XDP_DROP);
	outer_dst(out, got, sizeof(got));
	cr_assert_str_eq(got, json_string_value(json_object_get(r.json,
								"backend")));
	fx_res_free(&r);
	cr_assert_eq(dp_ct_get(&h, &f, &e), 0);
	cr_assert_eq(e.backend_id, (uint32_t)want);
}

/* The shared rules themselves (include/aether), as userspace compiles them;
 * the tests above hold them to the program. */
Test(rules, acl_host_key)
{
	struct aeth_flow f = fx_flow("192.0.2.1", 1, "203.0.113.10", 80,
				     IPPROTO_TCP);
	static const uint8_t want[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					  0xff, 0xff, 192, 0, 2, 1 };
	struct aeth_acl_key key;
	__u32 v6 = AETH_AF_INET6, v4 = AETH_AF_INET;

	memset(&key, 0xaa, sizeof(key));
	aeth_acl_host_key(&key, &f);
	cr_assert_eq(key.prefixlen, 128);
	cr_assert_arr_eq(key.addr, want, 16);
	cr_assert_not(aeth_acl_v4_mapped(&f));
	cr_assert_not(aeth_acl_hit_admits(NULL, &f));
	cr_assert_not(aeth_acl_hit_admits(&v6, &f), "::/0 admits no IPv4");
	cr_assert(aeth_acl_hit_admits(&v4, &f));

	f = fx_flow("::ffff:192.0.2.1", 1, "2001:db8:f::10", 80, IPPROTO_TCP);
	cr_assert(aeth_acl_v4_mapped(&f));
	f = fx_flow("2001:db8::1", 1, "2001:db8:f::10", 80, IPPROTO_TCP);
	cr_assert_not(aeth_acl_v4_mapped(&f));
	aeth_acl_host_key(&key, &f);
	cr_assert_arr_eq(key.addr, f.src.bytes, 16);
	cr_assert(aeth_acl_hit_admits(&v6, &f));
}

/* A listed prefix to its trie key and back. */
Test(rules, acl_prefix_key_round_trip)
{
	static const char *const addrs[] = { "198.51.100.0", "2001:db8:100::",
					     "::ffff:0:0", "::" };
	static const uint32_t lens[] = { 24, 48, 96, 0 };

	for (size_t i = 0; i < 4; i++) {
		union aeth_addr a, back;
		uint8_t fam = fx_addr(addrs[i], &a), fam_back;
		struct aeth_acl_key key;
		uint32_t plen;

		aeth_acl_prefix_key(&key, fam, &a, lens[i]);
		cr_assert_eq(key.prefixlen, lens[i] + (fam == AETH_AF_INET ? 96 : 0));
		aeth_acl_key_prefix(&key, fam, &fam_back, &back, &plen);
		cr_assert_eq(fam_back, fam, "%s", addrs[i]);
		cr_assert_eq(plen, lens[i], "%s", addrs[i]);
		cr_assert_arr_eq(back.bytes, a.bytes, 16, "%s", addrs[i]);
	}
}

Test(rules, rate_limit_source_key)
{
	struct aeth_flow f = fx_flow("198.51.100.77", 1, "203.0.113.10", 80,
				     IPPROTO_TCP);
	struct aeth_svc svc = { .id = 7, .src_prefix_v4 = 24,
				.src_prefix_v6 = 56 };
	struct aeth_rl_src_key key;
	union aeth_addr want;

	memset(&key, 0xaa, sizeof(key));
	aeth_rl_src_key(&key, &svc, &f);
	fx_addr("198.51.100.0", &want);
	cr_assert_eq(key.svc_id, 7);
	cr_assert_eq(key.family, AETH_AF_INET);
	cr_assert_arr_eq(key.pad, ((uint8_t[3]){ 0 }), 3);
	cr_assert_arr_eq(key.prefix.bytes, want.bytes, 16);

	f = fx_flow("2001:db8:1234:5678:9abc::1", 1, "2001:db8:f::10", 80,
		    IPPROTO_TCP);
	aeth_rl_src_key(&key, &svc, &f);
	fx_addr("2001:db8:1234:5600::", &want);
	cr_assert_eq(key.family, AETH_AF_INET6);
	cr_assert_arr_eq(key.prefix.bytes, want.bytes, 16);
	svc.src_prefix_v6 = 128;
	aeth_rl_src_key(&key, &svc, &f);
	cr_assert_arr_eq(key.prefix.bytes, f.src.bytes, 16);
}

/* interval 10, tolerance 30: a fresh bucket takes burst 4 back to back,
 * then one per interval. */
Test(rules, gcra)
{
	uint64_t now = 1000, tat = aeth_gcra_first_tat(now, 10);
	int admitted = 1;

	while (aeth_gcra_conforms(tat, now, 30)) {
		tat = aeth_gcra_next_tat(tat, now, 10);
		admitted++;
	}
	cr_assert_eq(admitted, 4);
	cr_assert_eq(tat, now + 40);
	cr_assert_not(aeth_gcra_conforms(tat, now + 9, 30));
	cr_assert(aeth_gcra_conforms(tat, now + 10, 30));
	/* an idle bucket starts again from now */
	cr_assert_eq(aeth_gcra_next_tat(tat, now + 1000, 10), now + 1010);
}
