/* The short packet fuzz run of the test suite (seeded, every invariant
 * checked on every packet, every outcome class reached) and regression
 * tests for what the fuzzer found. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "pfuzz.h"
#include "pkt.h"

#define SHORT_RUN 100000
#define FRESH_RUN 20000

static void report(const struct pf_result *r)
{
	int i;

	printf("packet fuzz: seed %llu, %llu packets in %.1f s, %llu violations\n",
	       (unsigned long long)r->seed, (unsigned long long)r->packets,
	       r->seconds, (unsigned long long)r->violations);
	for (i = 0; i < PF_OUTCOME_MAX; i++)
		printf("  %-16s %llu\n", pf_outcome_name(i),
		       (unsigned long long)r->outcomes[i]);
}

/* A fixed seed: the same packets on every run, so a failure reproduces. */
Test(packet_fuzz, fixed_seed, .timeout = 300)
{
	struct pf_result r;
	uint64_t seed = 20261126;
	const char *env = getenv("AETH_FUZZ_SEED");
	int i;

	if (env)
		seed = strtoull(env, NULL, 0);
	cr_assert_eq(pf_run(seed, SHORT_RUN, false, 5, &r), 0,
		     "packet fuzz could not run (seed %llu)",
		     (unsigned long long)seed);
	report(&r);
	cr_expect_eq(r.violations, 0, "%llu invariant violations, seed %llu "
		     "(AETH_FUZZ_SEED=%llu reproduces)",
		     (unsigned long long)r.violations,
		     (unsigned long long)seed, (unsigned long long)seed);
	cr_expect_gt(r.packets, SHORT_RUN * 9 / 10);
	/* a fuzz run that never reaches a path checks nothing there */
	for (i = 0; i < PF_OUTCOME_MAX; i++)
		cr_expect_gt(r.outcomes[i], 0, "no %s outcome in %llu packets "
			     "(seed %llu)", pf_outcome_name(i),
			     (unsigned long long)r.packets,
			     (unsigned long long)seed);
}

/* A new seed each run widens the search; the seed is printed to replay. */
Test(packet_fuzz, fresh_seed, .timeout = 300)
{
	struct pf_result r;
	struct timespec ts;
	uint64_t seed;

	clock_gettime(CLOCK_REALTIME, &ts);
	seed = (uint64_t)ts.tv_sec * 1000003u + ts.tv_nsec;
	cr_assert_eq(pf_run(seed, FRESH_RUN, false, 5, &r), 0,
		     "packet fuzz could not run (seed %llu)",
		     (unsigned long long)seed);
	report(&r);
	cr_expect_eq(r.violations, 0, "%llu invariant violations, seed %llu "
		     "(AETH_FUZZ_SEED=%llu reproduces)",
		     (unsigned long long)r.violations,
		     (unsigned long long)seed, (unsigned long long)seed);
}

/* Found by the fuzzer: an IPv6 packet whose next header is 1 (ICMP for
 * IPv4) was read as an ICMPv6 error and steered to a backend. Only ICMPv6
 * errors in IPv6 follow their flow; the rest is dropped as unconfigured. */
static uint32_t run_icmp_error_v6(struct dp_h *h, int ifindex, uint8_t proto,
				  struct aeth_global_stats *delta)
{
	struct pkt_spec q = pkt_spec_tcp6("2001:db8:f::10", 443,
					  "2001:db8:100::7", 40000);
	struct pkt_spec s = pkt_spec_tcp6("2001:db8:100::99", 0,
					  "2001:db8:f::10", 0);
	uint8_t quoted[128], icmp[8 + 48], in[PKT_MAX], out[PKT_MAX];
	struct aeth_global_stats a, b;
	size_t len, out_len = sizeof(out);
	uint32_t verdict;
	size_t i;

	q.tcp_flags = PKT_TCP_SYN | PKT_TCP_ACK;
	cr_assert_geq(pkt_build_l3(&q, quoted, sizeof(quoted)), 48);
	memset(icmp, 0, 8);
	icmp[0] = 1;		/* destination unreachable */
	icmp[1] = 4;
	memcpy(icmp + 8, quoted, 48);
	s.proto = proto;
	s.payload = icmp;
	s.payload_len = sizeof(icmp);
	len = pkt_build(&s, in, sizeof(in));
	cr_assert_gt(len, 0);
	cr_assert_eq(dp_global(h, &a), 0);
	cr_assert_eq(dp_run(h, in, len, out, &out_len, ifindex, &verdict), 0);
	cr_assert_eq(dp_global(h, &b), 0);
	for (i = 0; i < sizeof(a) / 8; i++)
		((uint64_t *)delta)[i] = ((uint64_t *)&b)[i] -
					 ((uint64_t *)&a)[i];
	return verdict;
}

Test(packet_fuzz, icmpv4_number_in_ipv6_not_steered)
{
	struct aeth_svc_key key = dp_svc_key("2001:db8:f::10", 443, 6);
	struct aeth_svc svc = dp_svc(0, 0, 7);
	struct aeth_backend be = dp_backend("2001:db8::21", AETH_BE_F_IN_USE, 0);
	struct aeth_global_stats d;
	struct aeth_node node;
	uint32_t table[7], id = 0;
	struct dp_net net;
	struct dp_h h;

	cr_assert_eq(dp_netns_setup(&net), 0);
	cr_assert_eq(dp_open(&h), 0);
	dp_node_default(&node);
	cr_assert_eq(dp_set_node(&h, &node), 0);
	cr_assert_eq(dp_set_backend(&h, 0, &be), 0);
	dp_table_round_robin(table, 7, &id, 1);
	cr_assert_eq(dp_set_maglev(&h, 0, table, 7), 0);
	cr_assert_eq(dp_add_service(&h, &key, &svc), 0);

	/* the flow the error is about: a connection with an entry */
	{
		struct pkt_spec syn = pkt_spec_tcp6("2001:db8:100::7", 40000,
						    "2001:db8:f::10", 443);
		uint8_t f[PKT_MAX], o[PKT_MAX];
		size_t n, on = sizeof(o);
		uint32_t v;

		syn.tcp_flags = PKT_TCP_SYN;
		n = pkt_build(&syn, f, sizeof(f));
		cr_assert_eq(dp_run(&h, f, n, o, &on, net.if0, &v), 0);
		cr_assert_eq(v, XDP_TX);
	}
	/* the real thing follows its flow */
	cr_expect_eq(run_icmp_error_v6(&h, net.if0, 58, &d), XDP_TX);
	cr_expect_eq(d.events[AETH_EV_ICMP_STEERED], 1);
	/* the same bytes labelled ICMP for IPv4 do not */
	cr_expect_eq(run_icmp_error_v6(&h, net.if0, 1, &d), XDP_DROP);
	cr_expect_eq(d.events[AETH_EV_ICMP_STEERED], 0);
	cr_expect_eq(d.reasons[AETH_R_UNCONFIGURED_PORT], 1);
	dp_close(&h);
}

/* The decap path strips tunnels to the node only for configured services:
 * it must not be a way to put other packets on the node's stack. */
static uint32_t run_tunnel(struct dp_h *h, int ifindex, const char *inner_dst,
			   uint16_t dport, uint8_t inner_proto,
			   struct aeth_global_stats *delta, size_t *out_len)
{
	struct pkt_spec inner = pkt_spec_tcp4("198.51.100.7", 40000, inner_dst,
					      dport);
	struct pkt_spec outer = pkt_spec_tcp4("192.0.2.12", 0, DP_NODE_V4, 0);
	uint8_t l3[256], in[PKT_MAX], out[PKT_MAX];
	struct aeth_global_stats a, b;
	size_t len, i;
	uint32_t verdict;

	inner.tcp_flags = PKT_TCP_SYN;
	if (inner_proto == 4) {
		/* a tunnel in the tunnel: IPIP to the VIP around the SYN */
		struct pkt_spec mid = pkt_spec_tcp4("192.0.2.12", 0, inner_dst,
						    0);
		uint8_t syn[128];

		mid.proto = 4;
		mid.payload = syn;
		mid.payload_len = pkt_build_l3(&inner, syn, sizeof(syn));
		len = pkt_build_l3(&mid, l3, sizeof(l3));
	} else {
		len = pkt_build_l3(&inner, l3, sizeof(l3));
	}
	outer.proto = 4;
	outer.payload = l3;
	outer.payload_len = len;
	len = pkt_build(&outer, in, sizeof(in));
	cr_assert_gt(len, 0);
	*out_len = sizeof(out);
	cr_assert_eq(dp_global(h, &a), 0);
	cr_assert_eq(dp_run(h, in, len, out, out_len, ifindex, &verdict), 0);
	cr_assert_eq(dp_global(h, &b), 0);
	for (i = 0; i < sizeof(a) / 8; i++)
		((uint64_t *)delta)[i] = ((uint64_t *)&b)[i] -
					 ((uint64_t *)&a)[i];
	return verdict;
}

Test(packet_fuzz, decap_only_for_configured_services)
{
	struct aeth_svc_key key = dp_svc_key("203.0.113.10", 6443, 6);
	struct aeth_svc svc = dp_svc(0, 0, 7);
	struct aeth_backend be = dp_backend("192.0.2.21", AETH_BE_F_IN_USE, 0);
	struct aeth_global_stats d;
	struct aeth_node node;
	uint32_t table[7], id = 0;
	struct dp_net net;
	size_t out_len;
	struct dp_h h;

	cr_assert_eq(dp_netns_setup(&net), 0);
	cr_assert_eq(dp_open(&h), 0);
	dp_node_default(&node);
	cr_assert_eq(dp_set_node(&h, &node), 0);
	cr_assert_eq(dp_set_backend(&h, 0, &be), 0);
	dp_table_round_robin(table, 7, &id, 1);
	cr_assert_eq(dp_set_maglev(&h, 0, table, 7), 0);
	cr_assert_eq(dp_add_service(&h, &key, &svc), 0);
	cr_assert_eq(dp_decap_add(&h, "192.0.2.12", 32), 0);	/* the LB */

	/* a balancer's packet for the service: stripped, to the stack */
	cr_expect_eq(run_tunnel(&h, net.if0, "203.0.113.10", 6443, 6, &d,
				&out_len), XDP_PASS);
	cr_expect_eq(d.events[AETH_EV_DECAP], 1);
	cr_expect_eq(out_len, 14 + 40, "inner SYN alone: %zu", out_len);
	/* for an address that is no VIP */
	cr_expect_eq(run_tunnel(&h, net.if0, "192.0.2.99", 6443, 6, &d,
				&out_len), XDP_DROP);
	cr_expect_eq(d.reasons[AETH_R_DECAP_INVALID], 1);
	/* for the node itself */
	cr_expect_eq(run_tunnel(&h, net.if0, DP_NODE_V4, 22, 6, &d, &out_len),
		     XDP_DROP);
	cr_expect_eq(d.reasons[AETH_R_DECAP_INVALID], 1);
	/* for the VIP on a port no service has */
	cr_expect_eq(run_tunnel(&h, net.if0, "203.0.113.10", 22, 6, &d,
				&out_len), XDP_DROP);
	cr_expect_eq(d.reasons[AETH_R_DECAP_INVALID], 1);
	/* a tunnel in the tunnel, even around a packet for the service */
	cr_expect_eq(run_tunnel(&h, net.if0, "203.0.113.10", 6443, 4, &d,
				&out_len), XDP_DROP);
	cr_expect_eq(d.reasons[AETH_R_DECAP_INVALID], 1);
	cr_expect_eq(d.events[AETH_EV_DECAP], 0);
	dp_close(&h);
}
