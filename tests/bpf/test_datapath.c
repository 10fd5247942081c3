/* Data path tests: parsing, pass-through, malformed and truncated packets,
 * unconfigured ports, fragments, inline decapsulation. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "aether/vip_filter.h"
#include "aether_lb.skel.h"
#include "harness.h"
#include "pkt.h"

#define VIP4 "203.0.113.10"
#define VIP6 "2001:db8:f::10"
#define CLI4 "198.51.100.7"
#define CLI6 "2001:db8:100::7"
#define TSIZE 251

static struct dp_h h;
static struct dp_net net;

struct frame {
	uint8_t b[PKT_MAX];
	size_t len;
};

struct result {
	uint32_t verdict;
	uint8_t b[PKT_MAX];
	size_t len;
};

static void setup(void)
{
	struct aeth_node node;
	uint32_t table[TSIZE], id4 = 10, id6 = 20;
	struct aeth_backend b4 = dp_backend("192.0.2.21", AETH_BE_F_IN_USE, 1);
	struct aeth_backend b6 = dp_backend("2001:db8::21", AETH_BE_F_IN_USE, 2);
	struct aeth_svc_key k4 = dp_svc_key(VIP4, 6443, 6);
	struct aeth_svc_key k6 = dp_svc_key(VIP6, 443, 6);
	struct aeth_svc s4 = dp_svc(1, 1, TSIZE), s6 = dp_svc(2, 2, TSIZE);

	cr_assert_eq(dp_netns_setup(&net), 0);
	cr_assert_eq(dp_open(&h), 0);
	dp_node_default(&node);
	cr_assert_eq(dp_set_node(&h, &node), 0);
	/* TCP 203.0.113.10:6443 -> 192.0.2.21, TCP [2001:db8:f::10]:443 ->
	 * 2001:db8::21 */
	cr_assert_eq(dp_set_backend(&h, id4, &b4), 0);
	cr_assert_eq(dp_set_backend(&h, id6, &b6), 0);
	dp_table_round_robin(table, TSIZE, &id4, 1);
	cr_assert_eq(dp_set_maglev(&h, 1, table, TSIZE), 0);
	dp_table_round_robin(table, TSIZE, &id6, 1);
	cr_assert_eq(dp_set_maglev(&h, 2, table, TSIZE), 0);
	cr_assert_eq(dp_add_service(&h, &k4, &s4), 0);
	cr_assert_eq(dp_add_service(&h, &k6, &s6), 0);
	/* tunnels come from the LB node at 192.0.2.99 / 2001:db8::99 */
	cr_assert_eq(dp_decap_add(&h, "192.0.2.99", 32), 0);
	cr_assert_eq(dp_decap_add(&h, "2001:db8::99", 128), 0);
}

static void teardown(void)
{
	dp_close(&h);
}

TestSuite(dp, .init = setup, .fini = teardown);

static void build(const struct pkt_spec *s, struct frame *f)
{
	f->len = pkt_build(s, f->b, sizeof(f->b));
	cr_assert_gt(f->len, 0);
}

static void run(const struct frame *f, struct result *r)
{
	r->len = sizeof(r->b);
	cr_assert_eq(dp_run(&h, f->b, f->len, r->b, &r->len, net.if0,
			    &r->verdict), 0);
}

static struct aeth_global_stats global(void)
{
	struct aeth_global_stats g;

	cr_assert_eq(dp_global(&h, &g), 0);
	return g;
}

static uint64_t reason(int r)
{
	return global().reasons[r];
}

static uint64_t total_drops(void)
{
	struct aeth_global_stats g = global();
	uint64_t n = 0;
	int i;

	for (i = 0; i < AETH_R_MAX; i++)
		n += g.reasons[i];
	return n;
}

static void expect_pass_unchanged(const struct frame *f)
{
	struct result r;

	run(f, &r);
	cr_assert_eq(r.verdict, XDP_PASS);
	cr_assert(pkt_equal(r.b, r.len, f->b, f->len));
}

/* ---- pass-through ---- */

Test(dp, non_service_v4_passes_unchanged)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, "192.0.2.99", 6443);
	struct frame f;

	build(&s, &f);
	expect_pass_unchanged(&f);
	cr_assert_eq(global().events[AETH_EV_PASS_NOT_SERVICE], 1);
	cr_assert_eq(total_drops(), 0);
}

Test(dp, non_service_v6_passes_unchanged)
{
	struct pkt_spec s = pkt_spec_udp6(CLI6, 40000, "2001:db8:f::11", 443);
	struct frame f;

	s.n_vlan = 1;
	s.vlan[0] = (struct pkt_vlan){ 0x8100, 3 };
	build(&s, &f);
	expect_pass_unchanged(&f);
	cr_assert_eq(global().events[AETH_EV_PASS_NOT_SERVICE], 1);
}

Test(dp, non_ip_frame_passes_unchanged)
{
	struct frame f;

	memset(&f, 0, sizeof(f));
	memcpy(f.b, "\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x01\x08\x06",
	       14);
	f.len = 60;	/* an ARP-sized frame */
	expect_pass_unchanged(&f);
	cr_assert_eq(total_drops(), 0);
}

Test(dp, three_vlan_tags_pass_unchanged)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct frame f;

	/* we look at two tags; a third hides the service and the stack
	 * decides */
	s.n_vlan = 2;
	s.vlan[0] = (struct pkt_vlan){ 0x88a8, 1 };
	s.vlan[1] = (struct pkt_vlan){ 0x8100, 2 };
	build(&s, &f);
	memmove(f.b + 24, f.b + 20, f.len - 20);
	memcpy(f.b + 20, "\x81\x00\x00\x03", 4);
	f.len += 4;
	expect_pass_unchanged(&f);
}

Test(dp, service_vip_other_address_family_passes)
{
	/* 203.0.113.10 is a VIP; ::ffff:203.0.113.10 is not */
	struct pkt_spec s = pkt_spec_tcp6(CLI6, 40000, "::ffff:203.0.113.10",
					  6443);
	struct frame f;

	build(&s, &f);
	expect_pass_unchanged(&f);
}

/* ---- unconfigured ports and protocols ---- */

Test(dp, unconfigured_port_dropped)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 22);
	struct aeth_svc_stats ss;
	struct frame f;
	struct result r;

	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_UNCONFIGURED_PORT), 1);
	cr_assert_eq(total_drops(), 1);
	cr_assert_eq(dp_svc_stats(&h, 1, &ss), 0);
	cr_assert_eq(ss.packets, 0);
}

Test(dp, unconfigured_protocol_dropped)
{
	struct pkt_spec s = pkt_spec_udp6(CLI6, 40000, VIP6, 443);
	struct pkt_spec g = pkt_spec_tcp4(CLI4, 0, VIP4, 0);
	static const uint8_t gre[8] = { 0, 0, 0x08, 0x00 };
	struct frame f;
	struct result r;

	build(&s, &f);	/* UDP where only TCP is configured */
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	g.proto = 47;	/* GRE to a VIP */
	g.payload = gre;
	g.payload_len = sizeof(gre);
	build(&g, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_UNCONFIGURED_PORT), 2);
}

/* ---- fragments ---- */

static void expect_fragment_drop(struct pkt_spec *s)
{
	struct frame f;
	struct result r;
	uint64_t before = reason(AETH_R_FRAGMENT);

	build(s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_FRAGMENT), before + 1);
}

Test(dp, fragments_to_vip_dropped)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);

	s.df = false;
	s.mf = true;	/* first fragment */
	expect_fragment_drop(&s);
	s.mf = false;
	s.frag_off = 185;	/* last fragment */
	expect_fragment_drop(&s);

	s = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);
	s.n_ext = 1;
	s.ext[0] = (struct pkt_ext){ 44, 0 };
	s.mf = true;
	expect_fragment_drop(&s);
	s.n_ext = 2;	/* behind a destination-options header */
	s.ext[0] = (struct pkt_ext){ 60, 0 };
	s.ext[1] = (struct pkt_ext){ 44, 0 };
	s.mf = false;
	s.frag_off = 100;
	expect_fragment_drop(&s);
	cr_assert_eq(total_drops(), 4);
}

Test(dp, fragments_to_others_pass)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, "192.0.2.99", 6443);
	struct frame f;

	s.df = false;
	s.mf = true;
	build(&s, &f);
	expect_pass_unchanged(&f);
}

/* ---- malformed and truncated ---- */

static void truncation_case(struct pkt_spec *s)
{
	struct frame f;
	struct result r;
	size_t len, tried = 0;
	uint64_t before;
	int err;

	s->tcp_flags = PKT_TCP_SYN;
	build(s, &f);
	for (len = 0; len < f.len; len++) {
		before = reason(AETH_R_MALFORMED);
		r.len = sizeof(r.b);
		err = dp_run(&h, f.b, len, r.b, &r.len, net.if0, &r.verdict);
		if (len < 14) {
			/* the kernel refuses frames shorter than Ethernet */
			cr_assert(err == -EINVAL || (err == 0 &&
						     r.verdict == XDP_DROP));
			continue;
		}
		cr_assert_eq(err, 0, "length %zu", len);
		cr_assert_eq(r.verdict, XDP_DROP, "length %zu", len);
		cr_assert_eq(reason(AETH_R_MALFORMED), before + 1,
			     "length %zu", len);
		tried++;
	}
	cr_assert_eq(tried, f.len - 14);
	cr_assert_eq(total_drops(), reason(AETH_R_MALFORMED));
	cr_assert_eq(global().events[AETH_EV_TX], 0);
	/* the whole packet still goes through */
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX);
}

Test(dp, every_truncation_tcp_ipv4)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);

	s.n_vlan = 1;
	s.vlan[0] = (struct pkt_vlan){ 0x8100, 9 };
	memcpy(s.ip_opts, "\x01\x01\x01\x00", 4);
	s.ip_opts_len = 4;
	truncation_case(&s);
}

Test(dp, every_truncation_tcp_ipv6)
{
	struct pkt_spec s = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);

	s.n_ext = 1;
	s.ext[0] = (struct pkt_ext){ 0, 0 };
	truncation_case(&s);
}

Test(dp, truncated_to_others_after_ip_header_passes)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, "192.0.2.99", 80);
	struct frame f;
	struct result r;

	build(&s, &f);
	f.len = 14 + 20 + 10;	/* TCP header cut: not ours to judge */
	expect_pass_unchanged(&f);
	f.len = 14 + 19;	/* no complete IP header: dropped */
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_MALFORMED), 1);
}

static void expect_malformed(const struct frame *f)
{
	struct result r;
	uint64_t before = reason(AETH_R_MALFORMED);

	run(f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_MALFORMED), before + 1);
}

Test(dp, inconsistent_headers_malformed)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct frame f;

	build(&s, &f);
	f.b[14] = 0x44;		/* ihl 4 */
	expect_malformed(&f);

	build(&s, &f);
	f.b[14 + 3] += 1;	/* tot_len one past the frame */
	expect_malformed(&f);

	build(&s, &f);
	f.b[14] = 0x4f;		/* ihl 15: options past tot_len */
	f.b[14 + 2] = 0;
	f.b[14 + 3] = 56;
	expect_malformed(&f);

	build(&s, &f);
	f.b[14 + 20 + 12] = 0x40;	/* TCP doff 4 */
	expect_malformed(&f);

	build(&s, &f);
	f.b[14] = 0x65;		/* version 6 in an IPv4 ethertype */
	expect_malformed(&f);

	s = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);
	build(&s, &f);
	f.b[14 + 5] += 1;	/* payload length past the frame */
	expect_malformed(&f);

	/* more extension headers than the walk accepts */
	s.n_ext = 4;
	s.ext[0] = (struct pkt_ext){ 0, 0 };
	s.ext[1] = (struct pkt_ext){ 60, 0 };
	s.ext[2] = (struct pkt_ext){ 43, 0 };
	s.ext[3] = (struct pkt_ext){ 60, 0 };
	build(&s, &f);
	{
		/* four are fine ... */
		struct result r;

		run(&f, &r);
		cr_assert_eq(r.verdict, XDP_TX);
	}
	/* ... a fifth (after the fourth, a routing header) is not: splice an
	 * 8-byte destination-options header in front of TCP */
	{
		size_t tcp = 14 + 40 + 32;

		memmove(f.b + tcp + 8, f.b + tcp, f.len - tcp);
		memset(f.b + tcp, 0, 8);
		f.b[tcp] = 6;
		f.b[tcp - 8] = 60;	/* fourth header's next header */
		f.b[tcp + 2] = 1;	/* PadN */
		f.b[tcp + 3] = 4;
		f.len += 8;
		f.b[14 + 5] += 8;
		expect_malformed(&f);
	}
	cr_assert_eq(total_drops(), reason(AETH_R_MALFORMED));
}

/* ---- inline decap ---- */

/* Outer packet from 192.0.2.99 / 2001:db8::99 to the node address of
 * family outer_v6, carrying inner (L3 bytes). */
static void tunnel_frame(int outer_v6, const struct pkt_spec *inner,
			 struct pkt_spec *outer, struct frame *f)
{
	static uint8_t in[PKT_MAX];
	size_t n = pkt_build_l3(inner, in, sizeof(in));

	cr_assert_gt(n, 0);
	*outer = outer_v6 ? pkt_spec_tcp6("2001:db8::99", 0, DP_NODE_V6, 0) :
			    pkt_spec_tcp4("192.0.2.99", 0, DP_NODE_V4, 0);
	outer->proto = inner->family == AETH_AF_INET ? 4 : 41;
	outer->payload = in;
	outer->payload_len = n;
	outer->n_vlan = inner->n_vlan;
	memcpy(outer->vlan, inner->vlan, sizeof(outer->vlan));
	build(outer, f);
}

static void expect_decap(int outer_v6, struct pkt_spec *inner)
{
	struct pkt_spec outer;
	struct frame f, want;
	struct result r;
	uint64_t before = global().events[AETH_EV_DECAP];

	tunnel_frame(outer_v6, inner, &outer, &f);
	build(inner, &want);	/* same MACs and tags as the outer frame */
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_PASS);
	cr_assert(pkt_equal(r.b, r.len, want.b, want.len));
	cr_assert_eq(global().events[AETH_EV_DECAP], before + 1);
}

Test(dp, decap_all_family_mixes)
{
	struct pkt_spec i4 = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct pkt_spec i6 = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);

	expect_decap(0, &i4);
	expect_decap(1, &i6);
	expect_decap(1, &i4);
	expect_decap(0, &i6);
	cr_assert_eq(total_drops(), 0);
}

Test(dp, decap_behind_outer_options_and_extension_headers)
{
	struct pkt_spec i4 = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct pkt_spec i6 = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);
	struct pkt_spec outer;
	struct frame f, want;
	struct result r;

	tunnel_frame(1, &i4, &outer, &f);
	outer.n_ext = 2;
	outer.ext[0] = (struct pkt_ext){ 0, 0 };
	outer.ext[1] = (struct pkt_ext){ 60, 1 };
	build(&outer, &f);
	build(&i4, &want);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_PASS);
	cr_assert(pkt_equal(r.b, r.len, want.b, want.len));

	tunnel_frame(0, &i6, &outer, &f);
	memcpy(outer.ip_opts, "\x01\x01\x01\x00", 4);
	outer.ip_opts_len = 4;
	build(&outer, &f);
	build(&i6, &want);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_PASS);
	cr_assert(pkt_equal(r.b, r.len, want.b, want.len));
	cr_assert_eq(global().events[AETH_EV_DECAP], 2);
}

Test(dp, decap_keeps_vlan_tags)
{
	struct pkt_spec i4 = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);

	i4.n_vlan = 2;
	i4.vlan[0] = (struct pkt_vlan){ 0x88a8, 10 };
	i4.vlan[1] = (struct pkt_vlan){ 0x8100, 20 };
	expect_decap(1, &i4);
}

/* An ICMP error from router 198.51.100.254 about the VIP's reply to the
 * client quoted (VIP:sport -> client:dport). */
static void icmp_error_inner(struct pkt_spec *i4, uint8_t *icmp, size_t cap,
			     const char *client)
{
	struct pkt_spec q = pkt_spec_tcp4(VIP4, 6443, client, 40000);
	size_t n;

	n = pkt_build_l3(&q, icmp + 8, cap - 8);
	cr_assert_gt(n, 0);
	memset(icmp, 0, 8);
	icmp[0] = 3;
	icmp[1] = 1;
	*i4 = pkt_spec_tcp4("198.51.100.254", 0, VIP4, 0);
	i4->proto = 1;
	i4->payload = icmp;
	i4->payload_len = 8 + 28;
}

Test(dp, decap_of_steered_icmp_error)
{
	struct pkt_spec i4;
	uint8_t icmp[128];

	icmp_error_inner(&i4, icmp, sizeof(icmp), CLI4);
	expect_decap(0, &i4);
}

static void expect_decap_invalid(int outer_v6, struct pkt_spec *inner)
{
	struct pkt_spec outer;
	struct frame f;
	struct result r;
	uint64_t before = reason(AETH_R_DECAP_INVALID);

	tunnel_frame(outer_v6, inner, &outer, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_DECAP_INVALID), before + 1);
}

Test(dp, decap_refuses_open_tunnel)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, "192.0.2.99", 22);

	expect_decap_invalid(0, &s);	/* not a VIP */
	s = pkt_spec_tcp4(CLI4, 40000, VIP4, 22);
	expect_decap_invalid(0, &s);	/* VIP, unconfigured port */
	s = pkt_spec_udp4(CLI4, 40000, VIP4, 6443);
	expect_decap_invalid(1, &s);	/* VIP, wrong protocol */
	s = pkt_spec_tcp6(CLI6, 40000, "2001:db8::99", 443);
	expect_decap_invalid(1, &s);
	cr_assert_eq(global().events[AETH_EV_DECAP], 0);
}

Test(dp, decap_refuses_fragmented_tunnel)
{
	struct pkt_spec i4 = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct pkt_spec outer;
	struct frame f;
	struct result r;

	tunnel_frame(0, &i4, &outer, &f);
	outer.df = false;
	outer.mf = true;
	build(&outer, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_DECAP_INVALID), 1);
}

Test(dp, plain_traffic_to_node_passes)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, DP_NODE_V4, 22);
	struct frame f;

	build(&s, &f);
	expect_pass_unchanged(&f);
	s = pkt_spec_udp6(CLI6, 40000, DP_NODE_V6, 53);
	build(&s, &f);
	expect_pass_unchanged(&f);
	cr_assert_eq(total_drops(), 0);
}

/* Tunnels to any other address are no way in through the kernel's own
 * tunnel devices either. */
Test(dp, tunnel_to_someone_else_dropped)
{
	struct pkt_spec i4 = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct pkt_spec i6 = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);
	struct pkt_spec outer;
	struct frame f;
	struct result r;

	tunnel_frame(0, &i4, &outer, &f);
	dp_addr("192.0.2.98", &outer.dst);
	build(&outer, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	tunnel_frame(1, &i6, &outer, &f);
	dp_addr("2001:db8::98", &outer.dst);
	outer.n_ext = 1;	/* hidden behind a destination-options header */
	outer.ext[0] = (struct pkt_ext){ 60, 0 };
	build(&outer, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_DECAP_INVALID), 2);
	cr_assert_eq(global().events[AETH_EV_DECAP], 0);
}

/* Outer source outside decap.sources: a host that reaches the node cannot
 * tunnel to the backend. */
Test(dp, decap_only_from_listed_sources)
{
	struct pkt_spec i4 = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct pkt_spec i6 = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);
	struct pkt_spec outer;
	struct frame f;
	struct result r;

	tunnel_frame(0, &i4, &outer, &f);
	dp_addr("192.0.2.98", &outer.src);
	build(&outer, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	tunnel_frame(1, &i6, &outer, &f);
	dp_addr("2001:db8::98", &outer.src);
	build(&outer, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	/* an IPv4 source must not match through an IPv6 ::/0 entry */
	cr_assert_eq(dp_decap_add(&h, "::", 0), 0);
	tunnel_frame(0, &i4, &outer, &f);
	dp_addr("192.0.2.98", &outer.src);
	build(&outer, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_DECAP_INVALID), 3);
	cr_assert_eq(global().events[AETH_EV_DECAP], 0);
	expect_decap(0, &i4);	/* the listed source still works */
}

Test(dp, decap_refused_without_sources)
{
	struct pkt_spec i4 = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_acl_key k = { .prefixlen = 128 };

	k.addr[10] = k.addr[11] = 0xff;
	dp_addr("192.0.2.99", (union aeth_addr *)(k.addr + 12));
	cr_assert_eq(bpf_map_delete_elem(h.decap, &k), 0);
	expect_decap_invalid(0, &i4);
	cr_assert_eq(global().events[AETH_EV_DECAP], 0);
}

static void enable_acl(const char *cidr, uint32_t plen)
{
	struct aeth_svc_key k4 = dp_svc_key(VIP4, 6443, 6);
	struct aeth_svc s4 = dp_svc(1, 1, TSIZE);
	int fd;

	fd = dp_acl_create(&h, 7);
	cr_assert_geq(fd, 0);
	cr_assert_eq(dp_acl_add(fd, cidr, plen), 0);
	close(fd);
	s4.flags |= AETH_SVC_F_ACL;
	s4.acl_slot = 7;
	cr_assert_eq(dp_add_service(&h, &k4, &s4), 0);
}

/* A listed (or spoofed) outer source does not skip the service's
 * authorized networks: the inner source is judged as on the LB node. */
Test(dp, decap_checks_inner_source_against_acl)
{
	struct pkt_spec in = pkt_spec_tcp4("198.51.100.200", 40000, VIP4, 6443);
	struct pkt_spec ok = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct pkt_spec ic;
	uint8_t icmp[128];

	enable_acl(CLI4, 32);
	expect_decap_invalid(0, &in);
	expect_decap_invalid(1, &in);
	in.tcp_flags = PKT_TCP_SYN;
	expect_decap_invalid(0, &in);
	/* an ICMP error quoting a flow of an unauthorized client */
	icmp_error_inner(&ic, icmp, sizeof(icmp), "198.51.100.200");
	expect_decap_invalid(0, &ic);
	cr_assert_eq(global().events[AETH_EV_DECAP], 0);
	expect_decap(0, &ok);
	icmp_error_inner(&ic, icmp, sizeof(icmp), CLI4);
	expect_decap(0, &ic);
}

/* An inner ICMP that is no error about a service flow is no way in. */
Test(dp, decap_refuses_icmp_that_quotes_no_flow)
{
	struct pkt_spec i4 = pkt_spec_tcp4("198.51.100.254", 0, VIP4, 0);
	uint8_t icmp[8 + 28] = { 8, 0 };	/* echo request */

	i4.proto = 1;
	i4.payload = icmp;
	i4.payload_len = sizeof(icmp);
	expect_decap_invalid(0, &i4);
	icmp[0] = 3;	/* an error quoting nothing sensible */
	expect_decap_invalid(0, &i4);
}

/* RFC 6040: CE on the outer header survives decapsulation. */
Test(dp, decap_carries_ce_to_ect_inner)
{
	struct pkt_spec i4 = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct pkt_spec i6 = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);
	struct pkt_spec outer;
	struct frame f, want;
	struct result r;

	i4.tos = 0x02;	/* ECT(0) */
	memcpy(i4.ip_opts, "\x01\x01\x01\x00", 4);	/* checksum over options */
	i4.ip_opts_len = 4;
	tunnel_frame(0, &i4, &outer, &f);
	outer.tos = 0x03;	/* CE */
	build(&outer, &f);
	run(&f, &r);
	i4.tos = 0x03;
	build(&i4, &want);
	cr_assert_eq(r.verdict, XDP_PASS);
	cr_assert(pkt_equal(r.b, r.len, want.b, want.len));
	cr_assert(pkt_ipv4_csum_ok(r.b + 14));

	i6.tos = 0x01;	/* ECT(1) */
	tunnel_frame(0, &i6, &outer, &f);
	outer.tos = 0x03;
	build(&outer, &f);
	run(&f, &r);
	i6.tos = 0x03;
	build(&i6, &want);
	cr_assert_eq(r.verdict, XDP_PASS);
	cr_assert(pkt_equal(r.b, r.len, want.b, want.len));

	i4.tos = 0;	/* not ECT under CE: RFC 6040 drops it */
	tunnel_frame(1, &i4, &outer, &f);
	outer.tos = 0x03;
	build(&outer, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_DECAP_INVALID), 1);
}

/* ---- randomised robustness ---- */

static size_t l3_offset(const uint8_t *b, size_t len)
{
	size_t off = 12;
	int i;

	for (i = 0; i < 2 && off + 4 <= len; i++) {
		uint16_t t = b[off] << 8 | b[off + 1];

		if (t != 0x8100 && t != 0x88a8)
			break;
		off += 4;
	}
	return off + 2;
}

/* Mutated and resized variants of valid packets: the program never fails
 * to run, returns a defined verdict, accounts every packet exactly once
 * (one reason or one outcome event), and what it sends out carries a valid
 * IPv4 header checksum and a length field matching the frame. */
Test(dp, random_mutations_are_accounted_once)
{
	struct pkt_spec bases[5];
	struct pkt_spec tun;
	struct frame base[5], f;
	struct result r;
	uint64_t runs = 0, sum;
	struct aeth_global_stats g;
	unsigned int seed = 12345;
	int i, k;

	bases[0] = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	bases[1] = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);
	bases[1].n_ext = 1;
	bases[1].ext[0] = (struct pkt_ext){ 0, 0 };
	bases[2] = pkt_spec_udp4(CLI4, 40000, "192.0.2.99", 53);
	bases[3] = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	bases[3].n_vlan = 1;
	bases[3].vlan[0] = (struct pkt_vlan){ 0x8100, 1 };
	memcpy(bases[3].ip_opts, "\x01\x01\x01\x01", 4);
	bases[3].ip_opts_len = 4;
	for (i = 0; i < 4; i++) {
		bases[i].tcp_flags = PKT_TCP_SYN;
		build(&bases[i], &base[i]);
	}
	bases[4] = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);
	tunnel_frame(0, &bases[4], &tun, &base[4]);

	for (i = 0; i < 4000; i++) {
		const struct frame *b = &base[rand_r(&seed) % 5];
		int flips = 1 + rand_r(&seed) % 3;
		int err;

		f = *b;
		for (k = 0; k < flips; k++) {
			size_t at = 12 + rand_r(&seed) % (f.len - 12 < 90 ?
							  f.len - 12 : 90);

			f.b[at] ^= 1u << (rand_r(&seed) % 8);
		}
		switch (rand_r(&seed) % 4) {
		case 0:
			f.len = 14 + rand_r(&seed) % (f.len - 13);
			break;
		case 1:
			f.len += rand_r(&seed) % 32;	/* trailing bytes */
			break;
		}
		r.len = sizeof(r.b);
		err = dp_run(&h, f.b, f.len, r.b, &r.len, net.if0, &r.verdict);
		cr_assert_eq(err, 0, "iteration %d", i);
		runs++;
		cr_assert(r.verdict == XDP_PASS || r.verdict == XDP_DROP ||
			  r.verdict == XDP_TX || r.verdict == XDP_REDIRECT,
			  "iteration %d: verdict %u", i, r.verdict);
		if (r.verdict == XDP_TX || r.verdict == XDP_REDIRECT) {
			size_t l3 = l3_offset(r.b, r.len);

			cr_assert_lt(l3 + 20, r.len);
			if (r.b[l3] >> 4 == 4) {
				cr_assert(pkt_ipv4_csum_ok(r.b + l3),
					  "iteration %d", i);
				cr_assert_eq((size_t)(r.b[l3 + 2] << 8 |
						      r.b[l3 + 3]),
					     r.len - l3, "iteration %d", i);
			} else {
				cr_assert_eq((size_t)(r.b[l3 + 4] << 8 |
						      r.b[l3 + 5]) + 40,
					     r.len - l3, "iteration %d", i);
			}
		}
	}
	g = global();
	sum = g.events[AETH_EV_PASS_NOT_SERVICE] + g.events[AETH_EV_TX] +
	      g.events[AETH_EV_REDIRECT] + g.events[AETH_EV_TO_STACK_NO_NEIGH] +
	      g.events[AETH_EV_TO_STACK_FRAG] + g.events[AETH_EV_DECAP];
	for (i = 0; i < AETH_R_MAX; i++)
		sum += g.reasons[i];
	cr_assert_eq(sum, runs);
	/* the mix reached the interesting outcomes */
	cr_assert_gt(g.events[AETH_EV_TX], 0);
	cr_assert_gt(g.events[AETH_EV_DECAP], 0);
	cr_assert_gt(g.reasons[AETH_R_MALFORMED], 0);
}

/* ---- the program's memory of non-VIP addresses ---- */

Test(dp, new_vip_seen_after_generation_change_or_expiry)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, "203.0.113.77", 6443);
	struct aeth_vip_key vk;
	struct frame f;
	struct result r;
	__u32 one = 1;

	cr_assert_eq(dp_pin_cpu(0), 0);	/* the memory is per CPU */
	build(&s, &f);
	expect_pass_unchanged(&f);	/* remembered as not a VIP */
	/* a writer that does not bump the generation */
	memset(&vk, 0, sizeof(vk));
	vk.family = dp_addr("203.0.113.77", &vk.addr);
	cr_assert_eq(bpf_map_update_elem(h.vip, &vk, &one, BPF_ANY), 0);
	expect_pass_unchanged(&f);
	cr_assert_eq(dp_bump_generation(&h), 0);
	run(&f, &r);	/* a VIP now, no service on the port */
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_UNCONFIGURED_PORT), 1);

	s.dst.v4 = htonl(ntohl(s.dst.v4) + 1);	/* 203.0.113.78 */
	build(&s, &f);
	expect_pass_unchanged(&f);
	vk.addr = s.dst;
	cr_assert_eq(bpf_map_update_elem(h.vip, &vk, &one, BPF_ANY), 0);
	usleep(300 * 1000);	/* 25 jiffies: 250 ms even at HZ=100 */
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_UNCONFIGURED_PORT), 2);
}

/* ---- per-CPU copies of service entries ---- */

static uint64_t be_packets(uint32_t id)
{
	struct aeth_be_stats b;

	cr_assert_eq(dp_be_stats(&h, id, &b), 0);
	return b.packets;
}

/* A SYN to VIP4:dport from a new source port: a new connection, forwarded
 * by the service's current table. */
static void syn4_to(uint16_t sport, uint16_t dport)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, sport, VIP4, dport);
	struct frame f;
	struct result r;

	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX);
}

static void syn4(uint16_t sport)
{
	syn4_to(sport, 6443);
}

/* The service of VIP4:6443 moved to Maglev slot 3, whose table names only
 * backend 11, by a direct write of aeth_svc (no aeth_stamp write yet). */
static void move_svc4_to_backend_11(void)
{
	struct aeth_backend b = dp_backend("192.0.2.22", AETH_BE_F_IN_USE, 1);
	struct aeth_svc_key k4 = dp_svc_key(VIP4, 6443, 6);
	struct aeth_svc s4 = dp_svc(1, 3, TSIZE);
	uint32_t table[TSIZE], id = 11;

	cr_assert_eq(dp_set_backend(&h, id, &b), 0);
	dp_table_round_robin(table, TSIZE, &id, 1);
	cr_assert_eq(dp_set_maglev(&h, 3, table, TSIZE), 0);
	cr_assert_eq(bpf_map_update_elem(h.svc, &k4, &s4, BPF_EXIST), 0);
}

/* The agent's refresh after a health change writes new Maglev slots into
 * aeth_svc and then changes aeth_stamp, with the same generation: that
 * alone must retire every CPU's copy of the entry. */
Test(dp, service_copy_retired_by_the_stamp_alone)
{
	struct aeth_meta before, after;
	uint32_t zero = 0;

	syn4(1000);
	cr_assert_eq(be_packets(10), 1);
	cr_assert_eq(bpf_map_lookup_elem(h.meta, &zero, &before), 0);
	move_svc4_to_backend_11();
	cr_assert_eq(dp_bump_stamp(&h), 0);
	syn4(1001);
	cr_assert_eq(be_packets(11), 1, "the copy outlived the stamp");
	cr_assert_eq(be_packets(10), 1);
	cr_assert_eq(bpf_map_lookup_elem(h.meta, &zero, &after), 0);
	cr_assert_eq(after.generation, before.generation);
}

/* A writer that changes aeth_svc and never aeth_stamp is seen within the
 * copies' lifetime (SVC_NEG_TTL jiffies: 100 ms at HZ=250, less at a
 * higher HZ). */
Test(dp, service_change_without_meta_seen_within_lifetime)
{
	syn4(1000);
	cr_assert_eq(be_packets(10), 1);
	move_svc4_to_backend_11();
	usleep(150 * 1000);
	syn4(1001);
	cr_assert_eq(be_packets(11), 1);
	cr_assert_eq(be_packets(10), 1);
}

/* Services of one VIP on several ports each keep their own copy: packets
 * alternating between them are never served by the other's entry. */
Test(dp, service_copies_keep_ports_apart)
{
	struct aeth_backend b = dp_backend("192.0.2.23", AETH_BE_F_IN_USE, 3);
	struct aeth_svc_key k = dp_svc_key(VIP4, 8443, 6);
	struct aeth_svc s = dp_svc(3, 4, TSIZE);
	uint32_t table[TSIZE], id = 12;
	int i;

	cr_assert_eq(dp_set_backend(&h, id, &b), 0);
	dp_table_round_robin(table, TSIZE, &id, 1);
	cr_assert_eq(dp_set_maglev(&h, 4, table, TSIZE), 0);
	cr_assert_eq(dp_add_service(&h, &k, &s), 0);
	for (i = 0; i < 8; i++)
		syn4_to(2000 + i, i & 1 ? 8443 : 6443);
	cr_assert_eq(be_packets(10), 4);
	cr_assert_eq(be_packets(12), 4);
}

/* ---- the VIP filter (include/aether/vip_filter.h) ---- */

static bool filter_says_no_vip(const char *addr)
{
	union aeth_addr a;
	__u32 bucket;

	dp_addr(addr, &a);
	bucket = aeth_vip_filter_bucket(&a);
	return ((struct aether_lb *)h.skel)->bss->lb_vip_filter
		       [aeth_vip_filter_word(bucket)] &
	       aeth_vip_filter_mask(bucket);
}

/* The verdicts that the setup's VIPs and a few other addresses get. */
static void expect_vip_verdicts(void)
{
	struct pkt_spec s4 = pkt_spec_tcp4(CLI4, 40001, VIP4, 6443);
	struct pkt_spec s6 = pkt_spec_tcp6(CLI6, 40001, VIP6, 443);
	struct pkt_spec p22 = pkt_spec_tcp4(CLI4, 40001, VIP4, 22);
	struct pkt_spec other = pkt_spec_tcp4(CLI4, 40001, "203.0.113.77",
					      6443);
	struct pkt_spec other6 = pkt_spec_udp6(CLI6, 40001, "2001:db8:f::11",
					       443);
	struct frame f;
	struct result r;
	uint64_t unconf = reason(AETH_R_UNCONFIGURED_PORT);

	s4.tcp_flags = s6.tcp_flags = p22.tcp_flags = PKT_TCP_SYN;
	build(&s4, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX, "IPv4 VIP: %u", r.verdict);
	build(&s6, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX, "IPv6 VIP: %u", r.verdict);
	build(&p22, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(reason(AETH_R_UNCONFIGURED_PORT), unconf + 1);
	build(&other, &f);
	expect_pass_unchanged(&f);
	build(&other6, &f);
	expect_pass_unchanged(&f);
}

/* Filled as the agent fills it, the filter says "no VIP" for other
 * addresses and never for a VIP, and no verdict changes: VIPs balanced
 * and guarded as before, other addresses passed untouched, also one that
 * shares a VIP's bucket (it takes the long way). */
Test(dp, vip_filter_filled_changes_no_verdict)
{
	union aeth_addr vip, a;
	char text[INET_ADDRSTRLEN];
	uint32_t i;

	expect_vip_verdicts();	/* all clear, as created */
	cr_assert_not(filter_says_no_vip("203.0.113.77"));
	cr_assert_eq(dp_vip_filter_fill(&h), 0);
	cr_assert_not(filter_says_no_vip(VIP4));
	cr_assert_not(filter_says_no_vip(VIP6));
	cr_assert(filter_says_no_vip("203.0.113.77"));
	cr_assert(filter_says_no_vip("2001:db8:f::11"));
	expect_vip_verdicts();

	/* an address of VIP4's bucket that is no VIP */
	dp_addr(VIP4, &vip);
	memset(&a, 0, sizeof(a));
	for (i = 1;; i++) {
		a.v4 = htonl(0x0a000000 + i);
		if (aeth_vip_filter_bucket(&a) == aeth_vip_filter_bucket(&vip))
			break;
	}
	inet_ntop(AF_INET, &a.v4, text, sizeof(text));
	cr_assert_not(filter_says_no_vip(text));
	{
		struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, text, 6443);
		struct frame f;

		build(&s, &f);
		expect_pass_unchanged(&f);
	}
	cr_assert_eq(total_drops(), 2);	/* the unconfigured port's, twice */
}

/* The program trusts the filter: a bit set over a VIP (a writer breaking
 * the agent's rule, which clears a VIP's bit before it writes the VIP:
 * tests/agent/test_apply.c) passes that VIP's packets to the stack
 * unjudged. That is why only the agent that loaded the program writes it,
 * and this test shows that the filter is what answered. */
Test(dp, vip_filter_bit_decides_before_the_vip_lookup)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	union aeth_addr vip;
	struct frame f;
	struct result r;
	uint64_t passed;

	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX);
	dp_addr(VIP4, &vip);
	cr_assert_eq(dp_vip_filter_set(&h, &vip, true), 0);
	passed = global().events[AETH_EV_PASS_NOT_SERVICE];
	expect_pass_unchanged(&f);
	cr_assert_eq(global().events[AETH_EV_PASS_NOT_SERVICE], passed + 1);
	cr_assert_eq(dp_vip_filter_set(&h, &vip, false), 0);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX);
}

/* A program's filter holds under the stamp its agent vouched for last
 * (lb_vip_filter_stamp). A program no agent writes any more (left on a
 * NIC that a new agent could not swap) must not hide the VIPs created
 * after it: its filter lapses with the first stamp nobody vouched for,
 * and every packet takes the long way again. */
Test(dp, vip_filter_lapses_with_a_stamp_nobody_vouched_for)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct pkt_spec other = pkt_spec_tcp4(CLI4, 40000, "203.0.113.77",
					      6443);
	union aeth_addr vip;
	struct frame f, fo;
	struct result r;
	__u64 stamp;
	__u32 zero = 0;

	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	build(&other, &fo);
	cr_assert_eq(dp_vip_filter_fill(&h), 0);
	/* a stale filter: VIP4 was no VIP when it was written */
	dp_addr(VIP4, &vip);
	cr_assert_eq(dp_vip_filter_set(&h, &vip, true), 0);
	expect_pass_unchanged(&f);
	/* a stamp written by someone who does not write this filter */
	cr_assert_eq(bpf_map_lookup_elem(h.stamp, &zero, &stamp), 0);
	stamp++;
	cr_assert_eq(bpf_map_update_elem(h.stamp, &zero, &stamp, BPF_ANY), 0);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX, "the lapsed filter still hid the VIP");
	expect_pass_unchanged(&fo);
	/* vouched for again (what the agent does at each stamp it writes) */
	((struct aether_lb *)h.skel)->bss->lb_vip_filter_stamp = stamp;
	expect_pass_unchanged(&f);
}
