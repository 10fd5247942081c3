/* Data path tests: balancing and forwarding (families, FIB verdicts,
 * conntrack, Maglev, insert budget, MTU answers, ICMP steering). */
#include <arpa/inet.h>
#include <pthread.h>
#include <errno.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "aether/ct_rule.h"
#include "aether/ct_table.h"
#include "aether/flow_hash.h"
#include "harness.h"
#include "pkt.h"

#define VIP4 "203.0.113.10"
#define VIP6 "2001:db8:f::10"
#define CLI4 "198.51.100.7"
#define CLI6 "2001:db8:100::7"
#define TSIZE 251

static struct dp_h h;
static struct dp_net net;
static const uint8_t neigh_mac[6] = { 2, 0, 0, 0, 0, 0x21 };

struct frame {
	uint8_t b[PKT_MAX];
	size_t len;
};

struct result {
	uint32_t verdict;
	uint8_t b[PKT_MAX];
	size_t len;
};

static void setup_node_only(void)
{
	struct aeth_node node;

	dp_node_default(&node);
	cr_assert_eq(dp_set_node(&h, &node), 0);
}

static void setup(void)
{
	cr_assert_eq(dp_netns_setup(&net), 0);
	cr_assert_eq(dp_open(&h), 0);
	setup_node_only();
	/* the program is "attached" to both NICs */
	cr_assert_eq(dp_add_tx_port(&h, net.if0), 0);
	cr_assert_eq(dp_add_tx_port(&h, net.if2), 0);
}

static void teardown(void)
{
	dp_close(&h);
}

TestSuite(fwd, .init = setup, .fini = teardown);

static void backend(uint32_t id, const char *addr, uint32_t flags,
		    uint32_t svc_id)
{
	struct aeth_backend be = dp_backend(addr, flags, svc_id);

	cr_assert_eq(dp_set_backend(&h, id, &be), 0);
}

/* Service id on (vip, port, proto) whose table (slot = id) spreads over
 * be_ids round robin. */
static void service(uint32_t id, const char *vip, uint16_t port, uint8_t proto,
		    const uint32_t *be_ids, size_t n)
{
	struct aeth_svc_key k = dp_svc_key(vip, port, proto);
	struct aeth_svc s = dp_svc(id, id, TSIZE);
	uint32_t table[TSIZE];

	dp_table_round_robin(table, TSIZE, be_ids, n);
	cr_assert_eq(dp_set_maglev(&h, id, table, TSIZE), 0);
	cr_assert_eq(dp_add_service(&h, &k, &s), 0);
}

static void one_backend_service(uint32_t id, const char *vip, uint16_t port,
				uint8_t proto, uint32_t be_id,
				const char *be_addr)
{
	backend(be_id, be_addr, AETH_BE_F_IN_USE, id);
	service(id, vip, port, proto, &be_id, 1);
}

static void build(const struct pkt_spec *s, struct frame *f)
{
	f->len = pkt_build(s, f->b, sizeof(f->b));
	cr_assert_gt(f->len, 0);
}

static void run_on(const struct frame *f, uint32_t ifindex, struct result *r)
{
	r->len = sizeof(r->b);
	cr_assert_eq(dp_run(&h, f->b, f->len, r->b, &r->len, ifindex,
			    &r->verdict), 0);
}

static void run(const struct frame *f, struct result *r)
{
	run_on(f, net.if0, r);
}

static struct aeth_global_stats global(void)
{
	struct aeth_global_stats g;

	cr_assert_eq(dp_global(&h, &g), 0);
	return g;
}

static struct aeth_svc_stats svc_stats(uint32_t id)
{
	struct aeth_svc_stats s;

	cr_assert_eq(dp_svc_stats(&h, id, &s), 0);
	return s;
}

/* Check r is s's frame f encapsulated to backend with next-hop MACs. */
static void expect_encap(const struct result *r, const struct pkt_spec *s,
			 const struct frame *f, const char *backend,
			 const uint8_t *dmac, const uint8_t *smac)
{
	uint8_t want[PKT_MAX];
	size_t n = dp_expect_encap(s, f->b, f->len, backend, dmac, smac, want);
	size_t l3 = 14 + 4 * s->n_vlan;

	if (r->len > l3 + 20)
		dp_expect_take_ip_id(want, r->b, l3);

	cr_assert(pkt_equal(r->b, r->len, want, n));
	if (r->b[l3] >> 4 == 4)
		cr_assert(pkt_ipv4_csum_ok(r->b + l3));
}

static void expect_tx(const struct result *r, const struct pkt_spec *s,
		      const struct frame *f, const char *backend)
{
	cr_assert_eq(r->verdict, XDP_TX);
	expect_encap(r, s, f, backend, neigh_mac, net.mac_if0);
}

/* The backend address in an encapsulated frame without VLAN tags. */
static void outer_dst(const struct result *r, char *buf, size_t len)
{
	if (r->b[14] >> 4 == 4)
		inet_ntop(AF_INET, r->b + 14 + 16, buf, len);
	else
		inet_ntop(AF_INET6, r->b + 14 + 24, buf, len);
}

/* ---- the four family mixes, XDP_TX ---- */

Test(fwd, v4_in_v4)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_svc_stats ss;
	struct aeth_be_stats bs;
	struct aeth_global_stats g;
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	s.tcp_flags = PKT_TCP_SYN;
	s.tos = 0xb8;
	s.ttl = 17;
	s.ip_id = 0x4242;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	ss = svc_stats(1);
	cr_assert_eq(ss.packets, 1);
	cr_assert_eq(ss.bytes, f.len - 14);
	cr_assert_eq(ss.new_flows, 1);
	cr_assert_eq(dp_be_stats(&h, 10, &bs), 0);
	cr_assert_eq(bs.packets, 1);
	cr_assert_eq(bs.bytes, f.len - 14);
	g = global();
	cr_assert_eq(g.events[AETH_EV_TX], 1);
	/* a SYN reads no connection entry (ct_rule.h): no hit, no miss */
	cr_assert_eq(g.events[AETH_EV_CT_MISS], 0);
	cr_assert_eq(g.events[AETH_EV_CT_HIT], 0);
	cr_assert_eq(g.events[AETH_EV_CT_INSERT], 1);
	cr_assert_eq(g.events[AETH_EV_PASS_NOT_SERVICE], 0);
}

Test(fwd, v6_in_v6)
{
	struct pkt_spec s = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);
	struct frame f;
	struct result r;

	one_backend_service(1, VIP6, 443, 6, 10, "2001:db8::21");
	s.tcp_flags = PKT_TCP_SYN;
	s.tos = 0x28;
	s.flow_label = 0x12345;
	s.ttl = 33;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "2001:db8::21");
	cr_assert_eq(svc_stats(1).packets, 1);
}

Test(fwd, v4_in_v6)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 6443, 6, 10, "2001:db8::22");
	s.tos = 0x10;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "2001:db8::22");
	cr_assert_eq(r.b[14 + 6], 4, "next header IPIP");
}

Test(fwd, v6_in_v4_sets_df)
{
	struct pkt_spec s = pkt_spec_udp6(CLI6, 5353, VIP6, 53);
	static const char payload[] = "query";
	struct frame f;
	struct result r;

	one_backend_service(1, VIP6, 53, 17, 10, "192.0.2.22");
	s.payload = payload;
	s.payload_len = sizeof(payload);
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");
	cr_assert_eq(r.b[14 + 9], 41, "protocol IPv6");
	cr_assert_eq(r.b[14 + 6] & 0x40, 0x40, "DF");
}

Test(fwd, v4_without_df_keeps_df_clear)
{
	struct pkt_spec s = pkt_spec_udp4(CLI4, 5353, VIP4, 53);
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 53, 17, 10, "192.0.2.21");
	s.df = false;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_eq(r.b[14 + 6] & 0x40, 0);
}

/* ---- next hops ---- */

Test(fwd, other_interface_redirects)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.150");
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_REDIRECT);
	expect_encap(&r, &s, &f, "192.0.2.150", neigh_mac, net.mac_if2);
	cr_assert_eq(global().events[AETH_EV_REDIRECT], 1);
}

/* A route through an interface the program is not attached to (a VLAN
 * sub-interface, say) cannot be taken by XDP: no_route, not a redirect
 * the kernel then drops unseen. */
Test(fwd, redirect_to_unattached_interface_is_no_route)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct frame f;
	struct result r;

	cr_assert_eq(bpf_map_delete_elem(h.tx_ports, &net.if2), 0);
	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.150");
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().reasons[AETH_R_NO_ROUTE], 1);
	cr_assert_eq(svc_stats(1).drops[AETH_R_NO_ROUTE], 1);
	cr_assert_eq(global().events[AETH_EV_REDIRECT], 0);
}

Test(fwd, no_neighbour_goes_to_stack_encapsulated)
{
	struct pkt_spec s = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);
	struct frame f;
	struct result r;

	one_backend_service(1, VIP6, 443, 6, 10, "2001:db8::24");
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_PASS);
	/* MACs untouched: the stack takes it as received and forwards it */
	expect_encap(&r, &s, &f, "2001:db8::24", s.dmac, s.smac);
	cr_assert_eq(global().events[AETH_EV_TO_STACK_NO_NEIGH], 1);
	cr_assert_eq(svc_stats(1).packets, 1);
}

Test(fwd, no_route_drops)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct frame f;
	struct result r;

	/* nothing routes 203.0.113.200 in the test namespace */
	one_backend_service(1, VIP4, 6443, 6, 10, "203.0.113.200");
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().reasons[AETH_R_NO_ROUTE], 1);
	cr_assert_eq(svc_stats(1).drops[AETH_R_NO_ROUTE], 1);
	cr_assert_eq(svc_stats(1).packets, 0);
}

Test(fwd, missing_node_address_is_no_route)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_node node;
	struct frame f;
	struct result r;

	dp_node_default(&node);
	node.flags = AETH_NODE_F_V4;	/* no IPv6 outer source */
	cr_assert_eq(dp_set_node(&h, &node), 0);
	one_backend_service(1, VIP4, 6443, 6, 10, "2001:db8::21");
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(svc_stats(1).drops[AETH_R_NO_ROUTE], 1);
}

/* ---- L2 and L3 shapes ---- */

Test(fwd, one_vlan_tag_kept)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	s.n_vlan = 1;
	s.vlan[0] = (struct pkt_vlan){ 0x8100, 100 };
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
}

Test(fwd, two_vlan_tags_kept)
{
	struct pkt_spec s = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);
	struct frame f;
	struct result r;

	one_backend_service(1, VIP6, 443, 6, 10, "192.0.2.21");
	s.n_vlan = 2;
	s.vlan[0] = (struct pkt_vlan){ 0x88a8, 7 };
	s.vlan[1] = (struct pkt_vlan){ 0x8100, 100 };
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
}

Test(fwd, ipv4_options)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	/* NOPs and a record-route-shaped option: 12 bytes */
	memcpy(s.ip_opts, "\x01\x01\x07\x09\x04\x00\x00\x00\x00\x00\x00\x00",
	       12);
	s.ip_opts_len = 12;
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
}

Test(fwd, ipv6_extension_headers)
{
	struct pkt_spec s = pkt_spec_udp6(CLI6, 40000, VIP6, 53);
	struct frame f;
	struct result r;
	char dst[64];

	one_backend_service(1, VIP6, 53, 17, 10, "2001:db8::21");
	s.n_ext = 3;
	s.ext[0] = (struct pkt_ext){ 0, 0 };	/* hop-by-hop */
	s.ext[1] = (struct pkt_ext){ 43, 1 };	/* routing */
	s.ext[2] = (struct pkt_ext){ 60, 2 };	/* destination options */
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "2001:db8::21");
	outer_dst(&r, dst, sizeof(dst));
	cr_assert_str_eq(dst, "2001:db8::21");
}

Test(fwd, ethernet_padding_trimmed)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct frame f;
	struct result r;
	size_t orig;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	build(&s, &f);
	orig = f.len;	/* 54: padded to the 60-byte minimum on the wire */
	memset(f.b + f.len, 0, 6);
	f.len += 6;
	run(&f, &r);
	f.len = orig;
	expect_tx(&r, &s, &f, "192.0.2.21");
}

/* ---- service lookup ---- */

Test(fwd, wildcard_port)
{
	struct pkt_spec s = pkt_spec_udp4(CLI4, 40000, VIP4, 31337);
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 0, 17, 10, "192.0.2.21");
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
}

Test(fwd, exact_port_wins_over_wildcard)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 80);
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 0, 6, 10, "192.0.2.21");
	one_backend_service(2, VIP4, 80, 6, 20, "192.0.2.22");
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");
	cr_assert_eq(svc_stats(2).packets, 1);
	cr_assert_eq(svc_stats(1).packets, 0);
	s.dport = 81;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
}

/* One port, two protocols, two services: each CPU's memory of a VIP's
 * last service (bpf/service.h) answers for the protocol it was found
 * for, whichever came last. */
Test(fwd, vip_memory_keeps_protocols_apart)
{
	struct pkt_spec t = pkt_spec_tcp4(CLI4, 40000, VIP4, 53);
	struct pkt_spec u = pkt_spec_udp4(CLI4, 40000, VIP4, 53);
	struct frame ft, fu;
	struct result r;
	int i;

	cr_assert_eq(dp_pin_cpu(0), 0);
	one_backend_service(1, VIP4, 53, 6, 10, "192.0.2.21");
	one_backend_service(2, VIP4, 53, 17, 20, "192.0.2.22");
	build(&t, &ft);
	build(&u, &fu);
	for (i = 0; i < 3; i++) {
		run(&ft, &r);
		expect_tx(&r, &t, &ft, "192.0.2.21");
		run(&fu, &r);
		expect_tx(&r, &u, &fu, "192.0.2.22");
	}
	cr_assert_eq(svc_stats(1).packets, 3);
	cr_assert_eq(svc_stats(2).packets, 3);
}

/* What the program's per-CPU memories are checked against (aeth_meta's
 * generation and aeth_stamp), saved and put back around a write to play a
 * writer that changes neither. */
struct saved_stamp {
	struct aeth_meta meta;
	__u64 stamp;
};

static void stamp_save(struct saved_stamp *sv)
{
	__u32 zero = 0;

	cr_assert_eq(bpf_map_lookup_elem(h.meta, &zero, &sv->meta), 0);
	cr_assert_eq(bpf_map_lookup_elem(h.stamp, &zero, &sv->stamp), 0);
}

static void stamp_restore(const struct saved_stamp *sv)
{
	__u32 zero = 0;

	cr_assert_eq(bpf_map_update_elem(h.meta, &zero, &sv->meta, BPF_ANY), 0);
	cr_assert_eq(bpf_map_update_elem(h.stamp, &zero, &sv->stamp, BPF_ANY),
		     0);
}

/* one_backend_service() by a writer that changes neither the generation
 * nor the stamp: the program's memories do not see it until they lapse. */
static void unstamped_service(uint32_t id, const char *vip, uint16_t port,
			      uint8_t proto, uint32_t be_id, const char *be)
{
	struct saved_stamp sv;

	stamp_save(&sv);
	one_backend_service(id, vip, port, proto, be_id, be);
	stamp_restore(&sv);
}

/* Each CPU remembers that a VIP has no wildcard-port service for a
 * protocol (bpf/service.h), so a port without a service is dropped after
 * the exact lookup alone. A wildcard service added later is seen once the
 * generation changes, or once the memory expires for a writer that does
 * not change it; TCP and UDP are remembered apart. */
Test(fwd, wildcard_added_seen_after_generation_change_or_expiry)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 22);
	struct pkt_spec u = pkt_spec_udp4(CLI4, 40000, VIP4, 5353);
	struct frame f, fu;
	struct result r;

	cr_assert_eq(dp_pin_cpu(0), 0);	/* the memory is per CPU */
	one_backend_service(1, VIP4, 80, 6, 10, "192.0.2.21");
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	s.dport = 23;	/* another port, dropped from memory */
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().reasons[AETH_R_UNCONFIGURED_PORT], 2);
	build(&u, &fu);
	run(&fu, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().reasons[AETH_R_UNCONFIGURED_PORT], 3);

	/* a TCP wildcard from a writer that keeps the generation */
	unstamped_service(2, VIP4, 0, 6, 20, "192.0.2.22");
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);	/* still remembered */
	cr_assert_eq(dp_bump_generation(&h), 0);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");

	/* UDP: learnt again after the change, then a wildcard added without
	 * one; the TCP wildcard in between stays found */
	run(&fu, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().reasons[AETH_R_UNCONFIGURED_PORT], 5);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");
	unstamped_service(3, VIP4, 0, 17, 30, "192.0.2.23");
	run(&fu, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().reasons[AETH_R_UNCONFIGURED_PORT], 6);
	usleep(300 * 1000);	/* 25 jiffies: 250 ms even at HZ=100 */
	run(&fu, &r);
	expect_tx(&r, &u, &fu, "192.0.2.23");
}

/* The memory also keeps the last port of such a VIP found without an exact
 * service (per protocol), dropped then with no lookup at all: an exact
 * service added on that port is seen once the generation changes, or once
 * the memory expires for a writer that does not change it; another port is
 * looked up as before. */
Test(fwd, exact_port_added_seen_after_generation_change_or_expiry)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 22);
	struct pkt_spec o = pkt_spec_tcp4(CLI4, 40000, VIP4, 8080);
	struct frame f, fo;
	struct result r;
	int i;

	cr_assert_eq(dp_pin_cpu(0), 0);	/* the memory is per CPU */
	one_backend_service(1, VIP4, 80, 6, 10, "192.0.2.21");
	build(&s, &f);
	build(&o, &fo);
	for (i = 0; i < 3; i++) {	/* learnt: VIP, no wildcard, port 22 */
		run(&f, &r);
		cr_assert_eq(r.verdict, XDP_DROP);
	}
	cr_assert_eq(global().reasons[AETH_R_UNCONFIGURED_PORT], 3);

	/* port 22 and 8080 from a writer that keeps the generation */
	unstamped_service(2, VIP4, 22, 6, 20, "192.0.2.22");
	unstamped_service(3, VIP4, 8080, 6, 30, "192.0.2.23");
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);	/* still remembered */
	cr_assert_eq(global().reasons[AETH_R_UNCONFIGURED_PORT], 4);
	run(&fo, &r);	/* another port is looked up */
	expect_tx(&r, &o, &fo, "192.0.2.23");
	cr_assert_eq(dp_bump_generation(&h), 0);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");

	/* learnt again on another port, then expiry without a new generation */
	s.dport = 23;
	build(&s, &f);
	for (i = 0; i < 3; i++) {
		run(&f, &r);
		cr_assert_eq(r.verdict, XDP_DROP);
	}
	unstamped_service(4, VIP4, 23, 6, 40, "192.0.2.21");
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().reasons[AETH_R_UNCONFIGURED_PORT], 8);
	usleep(300 * 1000);	/* 25 jiffies: 250 ms even at HZ=100 */
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
}

Test(fwd, udp_flows_are_recorded)
{
	struct pkt_spec s = pkt_spec_udp4(CLI4, 40000, VIP4, 53);
	struct aeth_ct_key ct_key;
	struct aeth_ct_entry e;
	struct aeth_flow fl;
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 53, 17, 10, "192.0.2.21");
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	memset(&fl, 0, sizeof(fl));
	fl.family = dp_addr(CLI4, &fl.src);
	dp_addr(VIP4, &fl.dst);
	fl.sport = htons(40000);
	fl.dport = htons(53);
	fl.proto = 17;
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_eq(e.backend_id, 10);
	/* keyed by the service's id and the client, nothing else */
	ct_key = aeth_ct_key_of(&fl, 1);
	cr_assert_eq(aeth_ct_table_get(&h.ct_table, &ct_key, &e), 0);
	cr_assert_eq(e.backend_id, 10);
	/* a lone datagram (a query, or a spoofed flood's) leaves an entry no
	 * packet confirmed; the flow's second packet confirms it */
	cr_assert_not(e.confirmed);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert(e.confirmed);
	cr_assert_eq(e.backend_id, 10);
}

/* ---- backends, conntrack, Maglev ---- */

static struct aeth_flow flow_of(const struct pkt_spec *s)
{
	struct aeth_flow fl;

	memset(&fl, 0, sizeof(fl));
	fl.family = s->family;
	fl.src = s->src;
	fl.dst = s->dst;
	fl.sport = htons(s->sport);
	fl.dport = htons(s->dport);
	fl.proto = s->proto;
	return fl;
}

static uint32_t expected_slot(const struct pkt_spec *s)
{
	const uint32_t seed[4] = DP_SEED;
	struct aeth_flow fl = flow_of(s);

	return aeth_maglev_slot(aeth_flow_hash(&fl, seed), TSIZE);
}

static void set_table_all(uint32_t slot, uint32_t id)
{
	uint32_t table[TSIZE];

	dp_table_round_robin(table, TSIZE, &id, 1);
	cr_assert_eq(dp_set_maglev(&h, slot, table, TSIZE), 0);
}

Test(fwd, established_flow_kept_when_table_changes)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	uint32_t ids[] = { 10 };
	struct frame f;
	struct result r;

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	backend(11, "192.0.2.22", AETH_BE_F_IN_USE, 1);
	service(1, VIP4, 6443, 6, ids, 1);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");

	set_table_all(1, 11);	/* a fresh table naming only backend 11 */
	s.tcp_flags = PKT_TCP_ACK;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_eq(global().events[AETH_EV_CT_HIT], 1);

	s.sport = 40001;	/* a new flow follows the new table */
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");
}

static unsigned int ct_count(void);

/* aeth_ct is keyed by service and client (aeth_ct_key): one client
 * address and port talking to three services of one VIP (two TCP ports,
 * and UDP on one of them) holds three entries, and each flow follows its
 * own when every table changes. */
Test(fwd, one_client_tuple_keeps_an_entry_per_service)
{
	struct pkt_spec a = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct pkt_spec b = pkt_spec_tcp4(CLI4, 40000, VIP4, 443);
	struct pkt_spec u = pkt_spec_udp4(CLI4, 40000, VIP4, 6443);
	struct aeth_flow fa = flow_of(&a), fb = flow_of(&b);
	uint32_t ida[] = { 10 }, idb[] = { 20 }, idu[] = { 30 };
	struct aeth_ct_key k;
	struct aeth_ct_entry e;
	struct frame f;
	struct result r;

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	backend(11, "192.0.2.22", AETH_BE_F_IN_USE, 1);
	backend(20, "192.0.2.23", AETH_BE_F_IN_USE, 2);
	backend(21, "192.0.2.24", AETH_BE_F_IN_USE, 2);
	backend(30, "192.0.2.22", AETH_BE_F_IN_USE, 3);
	backend(31, "192.0.2.21", AETH_BE_F_IN_USE, 3);
	service(1, VIP4, 6443, 6, ida, 1);
	service(2, VIP4, 443, 6, idb, 1);
	service(3, VIP4, 6443, 17, idu, 1);
	a.tcp_flags = b.tcp_flags = PKT_TCP_SYN;
	for (int pass = 0; pass < 2; pass++) {
		/* the second time: ACKs, every table changed meanwhile */
		build(&a, &f);
		run(&f, &r);
		expect_tx(&r, &a, &f, "192.0.2.21");
		build(&b, &f);
		run(&f, &r);
		expect_tx(&r, &b, &f, "192.0.2.23");
		build(&u, &f);
		run(&f, &r);
		expect_tx(&r, &u, &f, "192.0.2.22");
		cr_assert_eq(ct_count(), 3);
		if (pass)
			break;
		k = aeth_ct_key_of(&fa, 1);
		cr_assert_eq(aeth_ct_table_get(&h.ct_table, &k, &e), 0);
		cr_assert_eq(e.backend_id, 10);
		k = aeth_ct_key_of(&fb, 2);
		cr_assert_eq(aeth_ct_table_get(&h.ct_table, &k, &e), 0);
		cr_assert_eq(e.backend_id, 20);
		set_table_all(1, 11);
		set_table_all(2, 21);
		set_table_all(3, 31);
		cr_assert_eq(dp_bump_stamp(&h), 0);
		a.tcp_flags = b.tcp_flags = PKT_TCP_ACK;
	}
	cr_assert_eq(global().events[AETH_EV_CT_HIT], 3);
}

Test(fwd, removed_backend_reselected)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_flow fl = flow_of(&s);
	struct aeth_ct_entry e;
	uint32_t ids[] = { 10 };
	struct frame f;
	struct result r;

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	backend(11, "192.0.2.22", AETH_BE_F_IN_USE, 1);
	service(1, VIP4, 6443, 6, ids, 1);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");

	backend(10, "192.0.2.21", 0, 1);	/* removed */
	set_table_all(1, 11);
	s.tcp_flags = PKT_TCP_ACK;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");
	cr_assert_eq(global().events[AETH_EV_CT_RESELECT], 1);
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_eq(e.backend_id, 11);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");
	cr_assert_eq(global().events[AETH_EV_CT_HIT], 1);
}

Test(fwd, draining_keeps_old_flows_only)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	uint32_t ids[] = { 10 };
	struct frame f, f2;
	struct result r;

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	backend(11, "192.0.2.22", AETH_BE_F_IN_USE, 1);
	service(1, VIP4, 6443, 6, ids, 1);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE | AETH_BE_F_DRAINING, 1);
	/* even while a table still names it, no new flow goes there */
	s.sport = 40001;
	build(&s, &f2);
	run(&f2, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(svc_stats(1).drops[AETH_R_NO_BACKEND], 1);

	set_table_all(1, 11);
	run(&f2, &r);
	expect_tx(&r, &s, &f2, "192.0.2.22");
	s.sport = 40000;	/* the old flow stays */
	s.tcp_flags = PKT_TCP_ACK;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
}

Test(fwd, unhealthy_backend_takes_no_new_flow)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	uint32_t ids[] = { 10 };
	struct frame f;
	struct result r;

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE | AETH_BE_F_UNHEALTHY, 1);
	service(1, VIP4, 6443, 6, ids, 1);
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().reasons[AETH_R_NO_BACKEND], 1);
}

Test(fwd, empty_table_is_no_backend)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_svc_key k = dp_svc_key(VIP4, 6443, 6);
	struct aeth_svc sv = dp_svc(1, 1, 0);
	uint32_t none = AETH_NO_BACKEND;
	struct frame f;
	struct result r;

	cr_assert_eq(dp_add_service(&h, &k, &sv), 0);
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	sv = dp_svc(1, 1, TSIZE);
	cr_assert_eq(dp_add_service(&h, &k, &sv), 0);
	service(1, VIP4, 6443, 6, &none, 1);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(svc_stats(1).drops[AETH_R_NO_BACKEND], 2);
	cr_assert_eq(global().reasons[AETH_R_NO_BACKEND], 2);
}

/* A TCP packet that is not a SYN and misses the table (moved here by ECMP,
 * or spoofed) follows Maglev like on every node, but buys no entry and is
 * no new connection. */
Test(fwd, mid_flow_packet_without_entry_is_not_recorded)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_flow fl = flow_of(&s);
	struct aeth_ct_entry e;
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	s.tcp_flags = PKT_TCP_ACK | PKT_TCP_PSH;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_neq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_eq(svc_stats(1).new_flows, 0);
	cr_assert_eq(global().events[AETH_EV_CT_STRAY], 1);
	cr_assert_eq(global().events[AETH_EV_CT_INSERT], 0);
}

/* A flood of spoofed ACKs from inside the authorized networks evicts no
 * established entry, even with no insert cap and a table it overfills. */
Test(fwd, spoofed_ack_flood_evicts_nothing)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 30000, VIP4, 6443);
	struct aeth_flow fl;
	struct aeth_ct_entry e;
	struct frame f;
	struct result r;
	int i;

	dp_close(&h);
	cr_assert_eq(dp_open_sized(&h, 1024, 0), 0);
	setup_node_only();
	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	s.tcp_flags = PKT_TCP_SYN;
	for (i = 0; i < 100; i++) {	/* established connections */
		s.sport = 30000 + i;
		build(&s, &f);
		run(&f, &r);
		cr_assert_eq(r.verdict, XDP_TX);
	}
	s.tcp_flags = PKT_TCP_ACK;
	for (i = 0; i < 4096; i++) {	/* four times the table */
		s.src.v4 = htonl(0xc6336400u | (i & 0xff));	/* 198.51.100.x */
		s.sport = 1024 + i;
		build(&s, &f);
		run(&f, &r);
		cr_assert_eq(r.verdict, XDP_TX);
	}
	dp_addr(CLI4, &s.src);
	for (i = 0; i < 100; i++) {
		s.sport = 30000 + i;
		fl = flow_of(&s);
		cr_assert_eq(dp_ct_get(&h, &fl, &e), 0,
			     "connection %d evicted", i);
	}
	cr_assert_eq(global().events[AETH_EV_CT_INSERT], 100);
	cr_assert_eq(svc_stats(1).new_flows, 100);
}

/* A client reusing a tuple (NAT) whose entry names a backend that no longer
 * takes new connections: the SYN goes where Maglev points and the entry
 * follows (as any SYN does: syn_on_usable_entry_follows_maglev). */
static void syn_reselects_when(uint32_t flags)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_flow fl = flow_of(&s);
	uint32_t ids[] = { 10 };
	struct aeth_ct_entry e;
	struct frame f;
	struct result r;

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	backend(11, "192.0.2.22", AETH_BE_F_IN_USE, 1);
	service(1, VIP4, 6443, 6, ids, 1);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE | flags, 1);
	set_table_all(1, 11);
	run(&f, &r);	/* the same SYN again */
	expect_tx(&r, &s, &f, "192.0.2.22");
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_eq(e.backend_id, 11);
	cr_assert_eq(svc_stats(1).new_flows, 2);
	s.tcp_flags = PKT_TCP_ACK;	/* and the connection stays there */
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");
}

Test(fwd, syn_on_entry_of_draining_backend_reselects)
{
	syn_reselects_when(AETH_BE_F_DRAINING);
}

Test(fwd, syn_on_entry_of_unhealthy_backend_reselects)
{
	syn_reselects_when(AETH_BE_F_UNHEALTHY);
}

/* A SYN is always a new connection (include/aether/ct_rule.h): on a tuple
 * whose entry names a backend that still takes new connections, it reads
 * no entry, follows Maglev (here a new table: a retransmitted SYN moves)
 * and the entry is rewritten to Maglev's choice. */
Test(fwd, syn_on_usable_entry_follows_maglev)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_flow fl = flow_of(&s);
	uint32_t ids[] = { 10 };
	struct aeth_global_stats g;
	struct aeth_ct_entry e;
	struct frame f;
	struct result r;

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	backend(11, "192.0.2.22", AETH_BE_F_IN_USE, 1);
	service(1, VIP4, 6443, 6, ids, 1);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_eq(e.backend_id, 10);

	set_table_all(1, 11);	/* backend 10 still usable */
	run(&f, &r);	/* the same SYN again */
	expect_tx(&r, &s, &f, "192.0.2.22");
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_eq(e.backend_id, 11);
	cr_assert_eq(svc_stats(1).new_flows, 2);
	g = global();
	cr_assert_eq(g.events[AETH_EV_CT_HIT], 0);
	cr_assert_eq(g.events[AETH_EV_CT_MISS], 0);
	cr_assert_eq(g.events[AETH_EV_CT_INSERT], 2);
	s.tcp_flags = PKT_TCP_ACK;	/* the connection follows its SYN */
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");
	cr_assert_eq(global().events[AETH_EV_CT_HIT], 1);
}

/* A SYN the insert budget refuses deletes its tuple's old entry: the
 * connection's next packets miss and follow Maglev like the SYN did,
 * instead of an entry pointing at the backend of an earlier connection. */
Test(fwd, syn_refused_by_budget_leaves_no_stale_entry)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_flow fl = flow_of(&s);
	uint32_t ids[] = { 10 };
	struct aeth_global_stats g;
	struct aeth_node node;
	struct aeth_ct_entry e;
	struct frame f;
	struct result r;

	cr_assert_eq(dp_pin_cpu(0), 0);	/* the budget is per CPU */
	dp_node_default(&node);
	node.ct_insert_rate = 1;
	cr_assert_eq(dp_set_node(&h, &node), 0);
	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	backend(11, "192.0.2.22", AETH_BE_F_IN_USE, 1);
	service(1, VIP4, 6443, 6, ids, 1);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);	/* takes this second's budget */
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);

	set_table_all(1, 11);
	run(&f, &r);	/* the tuple again, well inside the second */
	expect_tx(&r, &s, &f, "192.0.2.22");
	g = global();
	cr_assert_eq(g.events[AETH_EV_CT_INSERT], 1);
	cr_assert_eq(g.events[AETH_EV_CT_INSERT_SKIPPED], 1);
	cr_assert_neq(dp_ct_get(&h, &fl, &e), 0,
		      "stale entry on backend %u", e.backend_id);
	s.tcp_flags = PKT_TCP_ACK;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");
	cr_assert_eq(global().events[AETH_EV_CT_STRAY], 1);
}

static unsigned int ct_count(void)
{
	return (unsigned int)aeth_ct_table_count(&h.ct_table);
}

/* A flood of SYNs of new tuples beyond the insert budget: forwarded,
 * never a lookup, and the table keeps what it held. */
Test(fwd, syn_flood_beyond_budget_adds_no_entry)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_global_stats g;
	struct aeth_node node;
	struct frame f;
	struct result r;
	int i;

	cr_assert_eq(dp_pin_cpu(0), 0);
	dp_node_default(&node);
	node.ct_insert_rate = 1;
	cr_assert_eq(dp_set_node(&h, &node), 0);
	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	s.tcp_flags = PKT_TCP_SYN;
	for (i = 0; i < 500; i++) {
		s.src.v4 = htonl(0xc6336400u | (i & 0xff));	/* 198.51.100.x */
		s.sport = 1024 + i;
		build(&s, &f);
		run(&f, &r);
		cr_assert_eq(r.verdict, XDP_TX);
	}
	g = global();
	cr_assert_eq(g.events[AETH_EV_CT_INSERT], 1);
	cr_assert_eq(g.events[AETH_EV_CT_INSERT_SKIPPED], 499);
	cr_assert_eq(g.events[AETH_EV_CT_MISS] + g.events[AETH_EV_CT_HIT] +
		     g.events[AETH_EV_CT_RESELECT], 0);
	cr_assert_eq(ct_count(), 1);
	cr_assert_eq(svc_stats(1).new_flows, 500);
}

static void set_sport(struct pkt_spec *s, uint32_t port)
{
	s->sport = (uint16_t)port;
}

static void set_src4(struct pkt_spec *s, uint32_t addr)
{
	s->src.v4 = htonl(addr);
}

/* n of the values from, from + 1, ... (below to), set into s by set,
 * whose flows' entries for service svc_id share one bucket of the table
 * (found with the table's own seed and size). */
static void of_one_bucket(uint32_t svc_id, struct pkt_spec s,
			  void (*set)(struct pkt_spec *, uint32_t), uint32_t from,
			  uint32_t to, uint32_t *out, int n)
{
	struct aeth_ct_key k;
	struct aeth_flow fl;
	uint32_t want = 0;
	int got = 0;

	for (uint32_t v = from; v < to && got < n; v++) {
		uint32_t b;

		set(&s, v);
		fl = flow_of(&s);
		k = aeth_ct_key_of(&fl, svc_id);
		b = aeth_ct_bucket_of(&k, h.ct_table.seed, h.ct_table.nbuckets);
		if (!got)
			want = b;
		if (b == want)
			out[got++] = v;
	}
	cr_assert_eq(got, n, "only %d flows share a bucket", got);
}

/* n client ports of CLI4 whose entries for service svc_id share one
 * bucket. */
static void ports_of_one_bucket(uint32_t svc_id, uint16_t *ports, int n)
{
	uint32_t v[n];

	of_one_bucket(svc_id, pkt_spec_tcp4(CLI4, 20000, VIP4, 6443),
		      set_sport, 20000, 65536, v, n);
	for (int i = 0; i < n; i++)
		ports[i] = (uint16_t)v[i];
}

/* n client addresses (host order, in 10.0.0.0/12, port 40000) whose
 * entries for service svc_id share one bucket: as many as a test needs,
 * whatever the table's seed. */
static void sources_of_one_bucket(uint32_t svc_id, uint32_t *srcs, int n)
{
	of_one_bucket(svc_id, pkt_spec_tcp4("10.0.0.0", 40000, VIP4, 6443),
		      set_src4, 0x0a000001, 0x0a100000, srcs, n);
}

/* A full bucket gives up the entry seen least recently, and a packet of an
 * established TCP flow refreshes its entry's seen_s (once a second), so a
 * live connection is not what a new one evicts. */
Test(fwd, full_bucket_gives_up_its_least_recently_seen_entry)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 0, VIP4, 6443);
	uint16_t port[AETH_CT_WAYS + 2];
	struct aeth_ct_entry e = { .confirmed = 1 };	/* connections' */
	struct aeth_flow fl;
	struct frame f;
	struct result r;
	__u32 now = dp_now_s();

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	ports_of_one_bucket(1, port, AETH_CT_WAYS + 2);
	/* eight entries fill the bucket; the oldest is port[3]'s, then
	 * port[5]'s, then port[0]'s */
	for (int i = 0; i < AETH_CT_WAYS; i++) {
		s.sport = port[i];
		fl = flow_of(&s);
		e.backend_id = 10;
		e.seen_s = i == 3 ? now - 200 : i == 5 ? now - 150 :
			   now - 100 + i;
		cr_assert_eq(dp_ct_put(&h, &fl, &e), 0);
	}
	cr_assert_eq(ct_count(), AETH_CT_WAYS);

	/* port[5]'s connection is alive: its packet refreshes the entry */
	s.sport = port[5];
	s.tcp_flags = PKT_TCP_ACK;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	fl = flow_of(&s);
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_geq(e.seen_s, now);

	/* a ninth connection evicts port[3]'s entry */
	s.sport = port[8];
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_eq(global().events[AETH_EV_CT_EVICTED], 1);
	s.sport = port[3];
	fl = flow_of(&s);
	cr_assert_eq(dp_ct_get(&h, &fl, &e), -ENOENT);
	/* its SYN again takes its own slot: no second entry, no eviction */
	s.sport = port[8];
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(global().events[AETH_EV_CT_EVICTED], 1);
	cr_assert_eq(ct_count(), AETH_CT_WAYS);

	/* a tenth evicts port[0]'s (100 s), not the refreshed port[5]'s */
	s.sport = port[9];
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(global().events[AETH_EV_CT_EVICTED], 2);
	for (int i = 0; i < AETH_CT_WAYS + 2; i++) {
		s.sport = port[i];
		fl = flow_of(&s);
		cr_assert_eq(dp_ct_get(&h, &fl, &e), i == 0 || i == 3 ?
			     -ENOENT : 0, "port[%d]'s entry", i);
		cr_assert_eq(i == 0 || i == 3 || e.backend_id == 10, 1);
	}
	cr_assert_eq(global().events[AETH_EV_CT_INSERT], 3);
}

/* A SYN's entry is unconfirmed until a packet of its flow uses it (the
 * handshake's ACK), and a full bucket gives up unconfirmed entries first:
 * a flood of SYNs that never answer, five times a bucket's size and all
 * within the insert budget, replaces its own entries and leaves the
 * connections, however recently it wrote its own. */
Test(fwd, syn_flood_replaces_its_own_entries_not_connections)
{
	enum { LIVE = 3, FLOOD = 5 * AETH_CT_WAYS };
	struct pkt_spec s = pkt_spec_tcp4("10.0.0.0", 40000, VIP4, 6443);
	uint32_t src[LIVE + FLOOD];
	struct aeth_ct_entry e;
	struct aeth_flow fl;
	struct frame f;
	struct result r;
	int kept = 0;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	sources_of_one_bucket(1, src, LIVE + FLOOD);
	/* a SYN's entry is unconfirmed; the handshake's ACK confirms it */
	for (int i = 0; i < 2 * LIVE; i++) {
		bool ack = i % 2;

		s.src.v4 = htonl(src[i / 2]);
		s.tcp_flags = ack ? PKT_TCP_ACK : PKT_TCP_SYN;
		fl = flow_of(&s);
		build(&s, &f);
		run(&f, &r);
		expect_tx(&r, &s, &f, "192.0.2.21");
		cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
		cr_assert_eq(e.confirmed, ack, "source %d after its %s", i / 2,
			     ack ? "ACK" : "SYN");
		cr_assert_eq(e.backend_id, 10);
	}
	/* the flood: SYNs only, every one of them written (no budget hit) */
	s.tcp_flags = PKT_TCP_SYN;
	for (int i = LIVE; i < LIVE + FLOOD; i++) {
		s.src.v4 = htonl(src[i]);
		build(&s, &f);
		run(&f, &r);
		expect_tx(&r, &s, &f, "192.0.2.21");
	}
	cr_assert_eq(global().events[AETH_EV_CT_INSERT], LIVE + FLOOD);
	cr_assert_eq(global().events[AETH_EV_CT_EVICTED],
		     FLOOD - (AETH_CT_WAYS - LIVE));
	for (int i = 0; i < LIVE + FLOOD; i++) {
		s.src.v4 = htonl(src[i]);
		fl = flow_of(&s);
		if (i < LIVE) {
			cr_assert_eq(dp_ct_get(&h, &fl, &e), 0,
				     "connection %d kept", i);
			cr_assert(e.confirmed);
			cr_assert_eq(e.backend_id, 10);
		} else if (dp_ct_get(&h, &fl, &e) == 0) {
			cr_assert_not(e.confirmed, "flood source %d", i);
			kept++;
		}
	}
	cr_assert_eq(kept, AETH_CT_WAYS - LIVE);
	cr_assert_eq(ct_count(), AETH_CT_WAYS);

	/* a SYN on a connection's tuple is a new connection: unconfirmed */
	s.src.v4 = htonl(src[0]);
	fl = flow_of(&s);
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_not(e.confirmed);
}

/* The bucket of port's flow (service 1), copied, and its filter bits. */
static uint64_t bucket_and_filter(uint16_t port, struct aeth_ct_bucket *b)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, port, VIP4, 6443);
	struct aeth_flow fl = flow_of(&s);
	struct aeth_ct_key k = aeth_ct_key_of(&fl, 1);
	uint32_t tag, idx = aeth_ct_table_bucket_of(&h.ct_table, &k, &tag);

	cr_assert_eq(bpf_map_lookup_elem_flags(h.ct, &idx, b, BPF_F_LOCK), 0);
	return aeth_ct_table_filter_of(&h.ct_table, idx);
}

/* The data path keeps a bucket's filter bits exactly those of its
 * entries' tags: set by an insert, cleared by the eviction or the delete
 * of the last entry of a tag (two entries may share a bit, which then
 * stays while either lives). */
Test(fwd, filter_bits_follow_inserts_evictions_and_deletes)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 0, VIP4, 6443);
	uint16_t port[AETH_CT_WAYS + 2];
	struct aeth_ct_bucket b;
	struct aeth_node node;
	struct frame f;
	struct result r;
	uint64_t bits;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	ports_of_one_bucket(1, port, AETH_CT_WAYS + 2);
	cr_assert_eq(bucket_and_filter(port[0], &b), 0, "an empty bucket");
	s.tcp_flags = PKT_TCP_SYN;
	for (int i = 0; i < AETH_CT_WAYS + 2; i++) {
		s.sport = port[i];
		build(&s, &f);
		run(&f, &r);
		expect_tx(&r, &s, &f, "192.0.2.21");
		bits = bucket_and_filter(port[0], &b);
		cr_assert_eq(bits, aeth_ct_filter_of(&b, -1), "after SYN %d", i);
		cr_assert_neq(bits, 0);
	}
	cr_assert_eq(global().events[AETH_EV_CT_EVICTED], 2);

	/* the budget refuses the SYNs of port[9]'s tuple: its entry is
	 * deleted, and so are its bits when no other entry sets them */
	dp_node_default(&node);
	node.ct_insert_rate = 1;
	cr_assert_eq(dp_pin_cpu(0), 0);
	cr_assert_eq(dp_set_node(&h, &node), 0);
	s.sport = port[2];
	build(&s, &f);
	run(&f, &r);		/* takes this second's budget */
	s.sport = port[9];
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_geq(global().events[AETH_EV_CT_INSERT_SKIPPED], 1);
	bits = bucket_and_filter(port[0], &b);
	cr_assert_eq(bits, aeth_ct_filter_of(&b, -1), "after the delete");
	cr_assert_eq(ct_count(), AETH_CT_WAYS - 1);
}

/* A slot another CPU is filling (its word claimed, include/aether/
 * ct_table.h) is never taken: a SYN of another tag takes another slot,
 * a SYN of the claim's tag (most likely the same tuple on another CPU)
 * gives way, forwarded by Maglev and counted as skipped; with the claim
 * gone the next SYN is recorded. */
Test(fwd, slot_being_filled_is_left_to_its_writer)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 0, VIP4, 6443);
	uint16_t port[2];
	struct aeth_ct_bucket b;
	struct aeth_ct_entry e;
	struct aeth_ct_key k;
	struct aeth_flow fl;
	struct frame f;
	struct result r;
	uint32_t tag, idx;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	ports_of_one_bucket(1, port, 2);
	s.sport = port[0];
	fl = flow_of(&s);
	k = aeth_ct_key_of(&fl, 1);
	idx = aeth_ct_table_bucket_of(&h.ct_table, &k, &tag);
	bucket_and_filter(port[0], &b);

	/* slot 0 claimed for port[0]'s tag: its SYN gives way */
	b.slot[0].word = aeth_ct_word_claim(tag);
	cr_assert_eq(bpf_map_update_elem(h.ct, &idx, &b, BPF_F_LOCK), 0);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_eq(global().events[AETH_EV_CT_INSERT], 0);
	cr_assert_eq(global().events[AETH_EV_CT_INSERT_SKIPPED], 1);
	cr_assert_eq(dp_ct_get(&h, &fl, &e), -ENOENT);
	bucket_and_filter(port[0], &b);
	cr_assert_eq(b.slot[0].word, aeth_ct_word_claim(tag),
		     "the claim is its writer's to publish");

	/* claimed for another tag: port[0]'s SYN takes the next slot */
	b.slot[0].word = aeth_ct_word_claim(tag ^ 0x8000);
	cr_assert_eq(bpf_map_update_elem(h.ct, &idx, &b, BPF_F_LOCK), 0);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_eq(global().events[AETH_EV_CT_INSERT], 1);
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_eq(e.backend_id, 10);
	bucket_and_filter(port[0], &b);
	cr_assert_eq(b.slot[0].word, aeth_ct_word_claim(tag ^ 0x8000));
	cr_assert(aeth_ct_slot_holds(&b, 1, &k, tag));
}

/* A copy of a bucket (aetherctl's dump, the count) can catch a slot while
 * the data path writes it, without the lock: its word from before, its
 * key from after. Such a slot (a key that does not hash to the bucket
 * under the word's tag) is left out of the dump; the bucket's entries
 * are not. */
Test(fwd, dump_leaves_out_a_slot_caught_mid_write)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 0, VIP4, 6443);
	uint16_t port[3];
	struct aeth_ct_bucket b;
	struct aeth_ct_entry e = { .backend_id = 10, .seen_s = dp_now_s() };
	struct aeth_ct_key k0, k2;
	struct aeth_flow fl;
	uint32_t tag0, tag2, idx;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	ports_of_one_bucket(1, port, 3);
	for (int i = 0; i < 2; i++) {
		s.sport = port[i];
		fl = flow_of(&s);
		cr_assert_eq(dp_ct_put(&h, &fl, &e), 0);
	}
	cr_assert_eq(ct_count(), 2);
	s.sport = port[0];
	fl = flow_of(&s);
	k0 = aeth_ct_key_of(&fl, 1);
	idx = aeth_ct_table_bucket_of(&h.ct_table, &k0, &tag0);
	s.sport = port[2];
	fl = flow_of(&s);
	k2 = aeth_ct_key_of(&fl, 1);
	cr_assert_eq(aeth_ct_table_bucket_of(&h.ct_table, &k2, &tag2), idx);
	if (tag0 == tag2)	/* one run in 65,536 draws such a seed */
		cr_skip_test("the two keys share a tag");

	/* port[0]'s slot as a copy may see it while port[2]'s key replaces
	 * its key: port[0]'s word, port[2]'s key */
	bucket_and_filter(port[0], &b);
	for (int i = 0; i < AETH_CT_WAYS; i++)
		if (aeth_ct_slot_holds(&b, i, &k0, tag0))
			b.key[i] = k2;
	cr_assert_eq(bpf_map_update_elem(h.ct, &idx, &b, BPF_F_LOCK), 0);
	cr_assert_eq(ct_count(), 1);
	cr_assert_eq(dp_ct_get(&h, &fl, &e), -ENOENT);
}

/* The data path reads a bucket only when the filter has the key's bit: an
 * entry whose bit is clear (written by a build without the filter) is a
 * miss, until aeth_ct_table_fill_filter sets the bits of every entry, as
 * the agent does when it loads. */
Test(fwd, entry_without_its_filter_bit_is_missed_until_filled)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_flow fl = flow_of(&s);
	struct aeth_ct_entry e = { .backend_id = 11, .seen_s = dp_now_s() };
	uint32_t ids[] = { 10 }, tag;
	struct aeth_ct_key k;
	uint32_t idx;
	struct frame f;
	struct result r;

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	backend(11, "192.0.2.22", AETH_BE_F_IN_USE, 1);
	service(1, VIP4, 6443, 6, ids, 1);
	/* the entry names backend 11, which Maglev does not pick */
	cr_assert_eq(dp_ct_put(&h, &fl, &e), 0);
	k = aeth_ct_key_of(&fl, 1);
	idx = aeth_ct_table_bucket_of(&h.ct_table, &k, &tag);
	cr_assert(aeth_ct_filter_may_hold(
		aeth_ct_table_filter_of(&h.ct_table, idx), tag));
	memset(h.ct_table.filter, 0,
	       aeth_ct_filter_words(h.ct_table.nbuckets) * sizeof(uint64_t));

	s.tcp_flags = PKT_TCP_ACK;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");	/* by Maglev: a miss */
	cr_assert_eq(global().events[AETH_EV_CT_STRAY], 1);
	cr_assert_eq(global().events[AETH_EV_CT_HIT], 0);

	cr_assert_eq(aeth_ct_table_fill_filter(&h.ct_table), 0);
	cr_assert_eq(aeth_ct_table_filter_of(&h.ct_table, idx),
		     aeth_ct_filter_bits(tag));
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");	/* by its entry */
	cr_assert_eq(global().events[AETH_EV_CT_HIT], 1);
}

/* Two CPUs at once on one small table: SYNs of the same 4,096 tuples (in
 * the same order, four times the table) and ACKs of them, so inserts,
 * evictions, refreshes and lock-free lookups run on the same buckets at
 * once. Every packet is forwarded, and afterwards every entry sits in the
 * bucket and under the tag its key hashes to, names the one backend, and
 * no key is in a bucket twice, no slot is left claimed, and each bucket's
 * filter bits are exactly its entries'. The writers take no lock (a slot
 * changes hands by compare-and-swap, include/aether/ct_table.h): two
 * writers of one key meet in the same slot, where one claims it and the
 * other gives way. */
struct race_arg {
	int cpu;
	int bad;		/* packets not forwarded, or failed runs */
	int syns;
	pthread_barrier_t *start;
};

#define RACE_TUPLES 4096
#define RACE_ROUNDS 12

static void *race_thread(void *p)
{
	struct race_arg *a = p;
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 0, VIP4, 6443);
	uint8_t in[PKT_MAX], out[PKT_MAX];
	size_t len, out_len;
	uint32_t verdict;

	if (dp_pin_cpu(a->cpu))
		a->bad = -1;
	pthread_barrier_wait(a->start);
	if (a->bad)
		return NULL;
	for (int r = 0; r < RACE_ROUNDS; r++)
		for (int i = 0; i < RACE_TUPLES; i++) {
			/* on odd rounds the second CPU goes backwards: other
			 * keys of the same buckets at once, where the even
			 * rounds write the same keys at once */
			int j = a->cpu && r % 2 ? RACE_TUPLES - 1 - i : i;
			int t = j % 8 * (RACE_TUPLES / 8) + j / 8;

			s.sport = (uint16_t)(1024 + t);
			s.tcp_flags = (i + r) % 3 ? PKT_TCP_ACK : PKT_TCP_SYN;
			len = pkt_build(&s, in, sizeof(in));
			out_len = sizeof(out);
			if (dp_run(&h, in, len, out, &out_len, net.if0,
				   &verdict) || verdict != XDP_TX)
				a->bad++;
			a->syns += s.tcp_flags == PKT_TCP_SYN;
		}
	return NULL;
}

/* Both CPUs through the race (insert_rate: the node's per-CPU insert
 * budget, 0 for none) on a table of 1,024 slots, then every bucket
 * checked; the entries used are returned. */
static long race_run(uint32_t insert_rate, struct race_arg arg[2],
		     struct aeth_global_stats *g)
{
	pthread_barrier_t start;
	pthread_t th[2];
	struct aeth_node node;
	long used = 0;

	dp_close(&h);
	cr_assert_eq(dp_open_sized(&h, 1024, 0), 0);
	dp_node_default(&node);
	node.ct_insert_rate = insert_rate;
	cr_assert_eq(dp_set_node(&h, &node), 0);
	cr_assert_eq(dp_add_tx_port(&h, net.if0), 0);
	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	cr_assert_eq(pthread_barrier_init(&start, NULL, 2), 0);
	for (int i = 0; i < 2; i++) {
		arg[i] = (struct race_arg){ .cpu = i, .start = &start };
		cr_assert_eq(pthread_create(&th[i], NULL, race_thread,
					    &arg[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_join(th[i], NULL), 0);
	pthread_barrier_destroy(&start);
	cr_assert_eq(arg[0].bad, 0);
	cr_assert_eq(arg[1].bad, 0);
	*g = global();
	/* a SYN is recorded, or skipped: beyond the budget, or because the
	 * other CPU was writing its tuple at that instant (it gives way) */
	cr_assert_eq(g->events[AETH_EV_CT_INSERT] +
			     g->events[AETH_EV_CT_INSERT_SKIPPED],
		     arg[0].syns + arg[1].syns);
	cr_assert_gt(g->events[AETH_EV_CT_HIT], 0);

	for (__u32 idx = 0; idx < h.ct_table.nbuckets; idx++) {
		struct aeth_ct_bucket b;

		cr_assert_eq(bpf_map_lookup_elem_flags(h.ct, &idx, &b,
						       BPF_F_LOCK), 0);
		for (int i = 0; i < AETH_CT_WAYS; i++) {
			__u32 hash = aeth_ct_hash(&b.key[i], h.ct_table.seed);

			/* no writer left a slot claimed */
			cr_assert(!aeth_ct_word_claimed(b.slot[i].word),
				  "bucket %u slot %d", idx, i);
			if (!aeth_ct_word_seen(b.slot[i].word))
				continue;
			used++;
			cr_assert_eq(aeth_ct_bucket_at(hash, h.ct_table.nbuckets),
				     idx, "bucket %u slot %d", idx, i);
			cr_assert_eq(aeth_ct_word_tag(b.slot[i].word),
				     aeth_ct_tag(hash), "bucket %u slot %d", idx, i);
			cr_assert_eq(aeth_ct_word_entry(b.slot[i].word).backend_id,
				     10);
			for (int j = 0; j < i; j++)
				cr_assert(!aeth_ct_word_seen(b.slot[j].word) ||
					  !aeth_ct_key_eq(&b.key[i], &b.key[j]),
					  "bucket %u: slots %d and %d hold one key",
					  idx, j, i);
		}
		/* the last write of each bucket left its filter bits exact,
		 * those of the buckets sharing its word untouched */
		cr_assert_eq(aeth_ct_table_filter_of(&h.ct_table, idx),
			     aeth_ct_filter_of(&b, -1), "bucket %u's filter", idx);
	}
	return used;
}

Test(fwd, table_stays_consistent_under_two_cpus)
{
	struct race_arg arg[2];
	struct aeth_global_stats g;
	long used;

	if (libbpf_num_possible_cpus() < 2)
		cr_skip_test("one CPU");
	used = race_run(0, arg, &g);	/* no budget: every SYN inserts */
	cr_assert_gt(g.events[AETH_EV_CT_INSERT], arg[0].syns);
	cr_assert_gt(g.events[AETH_EV_CT_EVICTED], 0);
	/* 4,096 tuples into 1,024 slots: most buckets end full */
	cr_assert_gt(used, 900);
}

/* The same with a budget of 64 inserts a second per CPU: nearly every SYN
 * is refused its insert and deletes its tuple's entry instead, while the
 * few admitted ones insert and the ACKs refresh, on both CPUs at once. */
Test(fwd, table_stays_consistent_under_two_cpus_deleting)
{
	struct race_arg arg[2];
	struct aeth_global_stats g;
	long used;

	if (libbpf_num_possible_cpus() < 2)
		cr_skip_test("one CPU");
	used = race_run(64, arg, &g);
	cr_assert_gt(g.events[AETH_EV_CT_INSERT_SKIPPED],
		     (arg[0].syns + arg[1].syns) / 2);
	cr_assert_gt(g.events[AETH_EV_CT_INSERT], 0);
	cr_assert_leq(used, (long)g.events[AETH_EV_CT_INSERT]);
}

/* Each table has a seed of its own, random, which seeding again (a
 * restarted agent over the pinned table) keeps: someone who can send
 * flows cannot tell which of them share a bucket. */
Test(fwd, table_seed_is_random_and_kept)
{
	struct aeth_ct_table again;
	struct dp_h other;

	cr_assert_neq(h.ct_table.seed, 0);
	cr_assert_eq(aeth_ct_table_seed(h.ct), 0);
	cr_assert_eq(aeth_ct_table_open(&again, h.ct, -1), 0);
	cr_assert_eq(again.seed, h.ct_table.seed);
	cr_assert_eq(again.nbuckets, aeth_ct_buckets_for(DP_CT_ENTRIES));
	cr_assert_eq(dp_open(&other), 0);
	cr_assert_neq(other.ct_table.seed, 0);
	cr_assert_neq(other.ct_table.seed, h.ct_table.seed);
	dp_close(&other);
}

/* A UDP entry idle for longer than udp_timeout_s (default 30) is gone: the
 * flow no longer sticks to a backend that left the table. */
Test(fwd, idle_udp_entry_expires)
{
	struct pkt_spec s = pkt_spec_udp4(CLI4, 5353, VIP4, 53);
	struct aeth_flow fl = flow_of(&s);
	uint32_t ids[] = { 10 };
	struct aeth_ct_entry e;
	struct frame f;
	struct result r;

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	backend(11, "192.0.2.22", AETH_BE_F_IN_USE, 1);
	service(1, VIP4, 53, 17, ids, 1);
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	backend(10, "192.0.2.21", AETH_BE_F_IN_USE | AETH_BE_F_UNHEALTHY, 1);
	set_table_all(1, 11);
	run(&f, &r);	/* still active: keeps its backend */
	expect_tx(&r, &s, &f, "192.0.2.21");

	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	/* the entry aged by hand; the CPU's memory of the flow (which
	 * lapses within 100 ms of real time) retired by the stamp */
	e.seen_s = dp_now_s() - 29;
	cr_assert_eq(dp_ct_put(&h, &fl, &e), 0);
	cr_assert_eq(dp_bump_stamp(&h), 0);
	run(&f, &r);	/* idle 29 s: still there, and refreshed */
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_geq(e.seen_s, dp_now_s() - 1);

	e.seen_s = dp_now_s() - 31;
	cr_assert_eq(dp_ct_put(&h, &fl, &e), 0);
	cr_assert_eq(dp_bump_stamp(&h), 0);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");
	cr_assert_eq(global().events[AETH_EV_CT_EXPIRED], 1);
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_eq(e.backend_id, 11);
	cr_assert_eq(svc_stats(1).new_flows, 2);
}

/* ---- each CPU's memory of established flows (bpf/flow_memory.h) ---- */

/* A flow established through 192.0.2.21 (SYN, then an ACK that used the
 * entry and was remembered), pinned to CPU 0: the memory is per CPU. */
static void remembered_flow(struct pkt_spec *s, struct frame *f)
{
	uint32_t ids[] = { 10 };
	struct result r;

	cr_assert_eq(dp_pin_cpu(0), 0);
	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	backend(11, "192.0.2.22", AETH_BE_F_IN_USE, 1);
	service(1, VIP4, 6443, 6, ids, 1);
	s->tcp_flags = PKT_TCP_SYN;
	build(s, f);
	run(f, &r);
	expect_tx(&r, s, f, "192.0.2.21");
	s->tcp_flags = PKT_TCP_ACK;
	build(s, f);
	run(f, &r);
	expect_tx(&r, s, f, "192.0.2.21");
	cr_assert_eq(global().events[AETH_EV_CT_HIT], 1);
}

/* The memory answers for the tables until the stamp changes: an entry
 * removed by a writer that changes no stamp is still followed (proof that
 * the packet read no table); after the stamp, the flow is a stray. */
Test(fwd, flow_memory_holds_until_the_stamp_changes)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_flow fl = flow_of(&s);
	struct aeth_global_stats g;
	struct frame f;
	struct result r;

	remembered_flow(&s, &f);
	cr_assert_eq(dp_ct_del(&h, &fl), 0);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	g = global();
	cr_assert_eq(g.events[AETH_EV_CT_HIT], 2);
	cr_assert_eq(g.events[AETH_EV_CT_MISS], 0);

	cr_assert_eq(dp_bump_stamp(&h), 0);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX);
	g = global();
	cr_assert_eq(g.events[AETH_EV_CT_HIT], 2, "the memory outlived the stamp");
	cr_assert_eq(g.events[AETH_EV_CT_MISS], 1);
	cr_assert_eq(g.events[AETH_EV_CT_STRAY], 1);
}

/* Without a stamp, a memory lapses within SVC_NEG_TTL jiffies (100 ms at
 * HZ=250, less at a higher HZ). */
Test(fwd, flow_memory_lapses_within_its_lifetime)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_flow fl = flow_of(&s);
	struct frame f;
	struct result r;

	remembered_flow(&s, &f);
	cr_assert_eq(dp_ct_del(&h, &fl), 0);
	usleep(150 * 1000);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX);
	cr_assert_eq(global().events[AETH_EV_CT_HIT], 1);
	cr_assert_eq(global().events[AETH_EV_CT_STRAY], 1);
}

/* A SYN of a remembered tuple is a new connection whose entry replaces the
 * old one (here on another backend: the table changed without a stamp);
 * the connection's next packets follow the new entry, not the memory. */
Test(fwd, syn_of_a_remembered_tuple_follows_its_new_entry)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_flow fl = flow_of(&s);
	struct aeth_ct_entry e;
	struct frame f;
	struct result r;

	remembered_flow(&s, &f);
	set_table_all(1, 11);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_eq(e.backend_id, 11);
	s.tcp_flags = PKT_TCP_ACK;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.22");
	cr_assert_eq(global().events[AETH_EV_CT_HIT], 2);
}

/* A memory serves its own tuple only: 32,768 ACKs of other tuples (other
 * sources and ports, no entries: strays, sent by the new table to
 * 192.0.2.22), interleaved with the remembered flow's, reach every slot of
 * the memory and are never sent after the remembered flow. */
Test(fwd, flow_memory_serves_only_its_own_tuple)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_global_stats g;
	struct frame f, other;
	struct result r;
	char dst[INET6_ADDRSTRLEN];
	uint32_t i, n = 32768;

	remembered_flow(&s, &f);
	set_table_all(1, 11);
	for (i = 0; i < n; i++) {
		char src[INET_ADDRSTRLEN];
		struct pkt_spec o;

		snprintf(src, sizeof(src), "198.51.%u.%u", 100 + (i >> 8) % 50,
			 i & 0xff);
		o = pkt_spec_tcp4(src, (uint16_t)(1024 + i / 256), VIP4, 6443);
		o.tcp_flags = PKT_TCP_ACK;
		build(&o, &other);
		run(&other, &r);
		cr_assert_eq(r.verdict, XDP_TX);
		outer_dst(&r, dst, sizeof(dst));
		cr_assert_str_eq(dst, "192.0.2.22", "stray %u sent as the "
				 "remembered flow", i);
		run(&f, &r);
		cr_assert_eq(r.verdict, XDP_TX);
		outer_dst(&r, dst, sizeof(dst));
		cr_assert_str_eq(dst, "192.0.2.21");
	}
	g = global();
	cr_assert_eq(g.events[AETH_EV_CT_STRAY], n);
	cr_assert_eq(g.events[AETH_EV_CT_HIT], n + 1);
}

Test(fwd, insert_budget_skips_recording_but_forwards)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_global_stats g;
	struct aeth_node node;
	struct aeth_ct_entry e;
	struct aeth_flow fl;
	struct frame f;
	struct result r;
	int i;

	cr_assert_eq(dp_pin_cpu(0), 0);	/* the budget is per CPU */
	dp_node_default(&node);
	node.ct_insert_rate = 2;
	cr_assert_eq(dp_set_node(&h, &node), 0);
	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	s.tcp_flags = PKT_TCP_SYN;
	/* well inside one second */
	for (i = 0; i < 3; i++) {
		s.sport = 40000 + i;
		build(&s, &f);
		run(&f, &r);
		expect_tx(&r, &s, &f, "192.0.2.21");
	}
	g = global();
	cr_assert_eq(g.events[AETH_EV_CT_INSERT], 2);
	cr_assert_eq(g.events[AETH_EV_CT_INSERT_SKIPPED], 1);
	cr_assert_eq(svc_stats(1).packets, 3);
	fl = flow_of(&s);
	cr_assert_neq(dp_ct_get(&h, &fl, &e), 0);
	s.sport = 40000;
	fl = flow_of(&s);
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
}

/* The same flows pick the same backends in two separately loaded program
 * instances given the same table, and match the userspace hash. */
Test(fwd, maglev_selection_is_deterministic)
{
	static const char *const addrs[] = { "192.0.2.21", "192.0.2.22",
					     "192.0.2.23" };
	uint32_t ids[] = { 10, 11, 12 }, table[TSIZE];
	struct aeth_svc_key k = dp_svc_key(VIP4, 6443, 6);
	struct aeth_svc sv = dp_svc(1, 1, TSIZE);
	struct aeth_node node;
	struct dp_h inst[2];
	uint32_t i, hits[3] = { 0 };
	int n;

	/* an irregular table: slot i -> ids[(i * 7 + i / 5) % 3] */
	for (i = 0; i < TSIZE; i++)
		table[i] = ids[(i * 7 + i / 5) % 3];
	dp_node_default(&node);
	for (n = 0; n < 2; n++) {
		cr_assert_eq(dp_open(&inst[n]), 0);
		cr_assert_eq(dp_set_node(&inst[n], &node), 0);
		for (i = 0; i < 3; i++) {
			struct aeth_backend be =
				dp_backend(addrs[i], AETH_BE_F_IN_USE, 1);

			cr_assert_eq(dp_set_backend(&inst[n], ids[i], &be), 0);
		}
		cr_assert_eq(dp_set_maglev(&inst[n], 1, table, TSIZE), 0);
		cr_assert_eq(dp_add_service(&inst[n], &k, &sv), 0);
	}
	for (i = 0; i < 64; i++) {
		struct pkt_spec s = pkt_spec_tcp4(CLI4, 30000 + i * 37, VIP4,
						  6443);
		uint32_t want = table[expected_slot(&s)];
		char got[2][64];
		struct frame f;
		struct result r;

		s.src.v4 = htonl(0xc6336400 + (i % 200));	/* 198.51.100.x */
		want = table[expected_slot(&s)];
		s.tcp_flags = PKT_TCP_SYN;
		build(&s, &f);
		for (n = 0; n < 2; n++) {
			r.len = sizeof(r.b);
			cr_assert_eq(dp_run(&inst[n], f.b, f.len, r.b, &r.len,
					    net.if0, &r.verdict), 0);
			cr_assert_eq(r.verdict, XDP_TX);
			outer_dst(&r, got[n], sizeof(got[n]));
		}
		cr_assert_str_eq(got[0], got[1]);
		cr_assert_str_eq(got[0], addrs[want - 10]);
		hits[want - 10]++;
	}
	/* the flows really did spread, so the check above means something */
	cr_assert(hits[0] && hits[1] && hits[2]);
	dp_close(&inst[0]);
	dp_close(&inst[1]);
}

/* ---- MTU ---- */

static const uint8_t big_payload[1600];

Test(fwd, mtu_v4_df_answers_frag_needed)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct pkt_spec a;
	uint8_t icmp[8 + 60 + 8], want[PKT_MAX];
	struct aeth_global_stats g;
	struct frame f;
	struct result r;
	size_t n;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	s.payload = big_payload;
	s.payload_len = 1500 - 20 - 20 - 10;	/* 1490 + 20 outer > 1500 */
	s.n_vlan = 1;
	s.vlan[0] = (struct pkt_vlan){ 0x8100, 5 };
	memcpy(s.ip_opts, "\x01\x01\x01\x01", 4);
	s.ip_opts_len = 4;
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX);

	/* ICMP 3/4, next-hop MTU 1480, quoting the IP header (24) + 8 */
	memset(icmp, 0, sizeof(icmp));
	icmp[0] = 3;
	icmp[1] = 4;
	icmp[6] = 1480 >> 8;
	icmp[7] = 1480 & 0xff;
	memcpy(icmp + 8, f.b + 18, 24 + 8);
	a = pkt_spec_tcp4(VIP4, 0, CLI4, 0);
	memcpy(a.dmac, s.smac, 6);
	memcpy(a.smac, s.dmac, 6);
	a.n_vlan = 1;
	a.vlan[0] = s.vlan[0];
	a.proto = 1;
	a.df = false;
	a.ip_id = 0;
	a.ttl = 64;
	a.payload = icmp;
	a.payload_len = 8 + 24 + 8;
	n = pkt_build(&a, want, sizeof(want));
	cr_assert(pkt_equal(r.b, r.len, want, n));
	cr_assert(pkt_ipv4_csum_ok(r.b + 18));
	cr_assert(pkt_l4_csum_ok(r.b + 18, r.len - 18));
	g = global();
	cr_assert_eq(g.reasons[AETH_R_MTU_EXCEEDED], 1);
	cr_assert_eq(g.events[AETH_EV_ICMP_TOO_BIG_SENT], 1);
	cr_assert_eq(svc_stats(1).drops[AETH_R_MTU_EXCEEDED], 1);
	cr_assert_eq(svc_stats(1).packets, 0);
}

/* Packet Too Big quoting the IPv6 header, n_ext 8-byte extension headers
 * and 8 bytes of TCP. */
static void too_big_v6_case(int n_ext)
{
	struct pkt_spec s = pkt_spec_tcp6(CLI6, 40000, VIP6, 443);
	size_t quote = 40 + 8 * n_ext + 8;
	uint8_t icmp[8 + 120], want[PKT_MAX];
	struct pkt_spec a;
	struct frame f;
	struct result r;
	size_t n;
	int i;

	one_backend_service(1, VIP6, 443, 6, 10, "2001:db8::21");
	s.n_ext = n_ext;
	for (i = 0; i < n_ext; i++)
		s.ext[i] = (struct pkt_ext){ 60, 0 };
	s.payload = big_payload;
	s.payload_len = 1500 - 40 - 20 - 39;	/* 1461 + 40 > 1500 */
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX);

	memset(icmp, 0, sizeof(icmp));
	icmp[0] = 2;
	icmp[6] = 1460 >> 8;
	icmp[7] = 1460 & 0xff;
	memcpy(icmp + 8, f.b + 14, quote);
	a = pkt_spec_tcp6(VIP6, 0, CLI6, 0);
	memcpy(a.dmac, s.smac, 6);
	memcpy(a.smac, s.dmac, 6);
	a.proto = 58;
	a.ttl = 64;
	a.payload = icmp;
	a.payload_len = 8 + quote;
	n = pkt_build(&a, want, sizeof(want));
	cr_assert(pkt_equal(r.b, r.len, want, n));
	cr_assert(pkt_l4_csum_ok(r.b + 14, r.len - 14));
	cr_assert_eq(global().events[AETH_EV_ICMP_TOO_BIG_SENT], 1);
	cr_assert_eq(svc_stats(1).drops[AETH_R_MTU_EXCEEDED], 1);
}

Test(fwd, mtu_v6_answers_packet_too_big)
{
	too_big_v6_case(0);
}

Test(fwd, mtu_v6_too_big_quotes_extension_headers)
{
	too_big_v6_case(2);
}

/* Without DF too: handing it on to be fragmented would lose it at the
 * backend (outer fragments are refused), so the client is told. */
Test(fwd, mtu_v4_without_df_answers_frag_needed)
{
	struct pkt_spec s = pkt_spec_udp4(CLI4, 40000, VIP4, 53);
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 53, 17, 10, "2001:db8::21");
	s.df = false;
	s.payload = big_payload;
	s.payload_len = 1500 - 20 - 8 - 30;	/* 1470 + 40 > 1500 */
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX);
	cr_assert_eq(r.b[14 + 9], 1, "an ICMP answer");
	cr_assert_eq(r.b[14 + 20], 3);
	cr_assert_eq(r.b[14 + 21], 4);
	cr_assert_eq((r.b[14 + 26] << 8) | r.b[14 + 27], 1460);
	cr_assert_eq(global().events[AETH_EV_TO_STACK_FRAG], 0);
	cr_assert_eq(global().events[AETH_EV_ICMP_TOO_BIG_SENT], 1);
	cr_assert_eq(global().reasons[AETH_R_MTU_EXCEEDED], 1);
	cr_assert_eq(svc_stats(1).packets, 0);
}

/* A too-big packet of source src (v4 or v6 text): dropped, counted, and
 * whether an answer went out. */
static bool too_big_answered(const char *src)
{
	struct pkt_spec s = strchr(src, ':') ?
				    pkt_spec_udp6(src, 40000, VIP6, 53) :
				    pkt_spec_udp4(src, 40000, VIP4, 53);
	uint64_t before = global().reasons[AETH_R_MTU_EXCEEDED];
	struct frame f;
	struct result r;

	s.payload = big_payload;
	s.payload_len = 1480;
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(global().reasons[AETH_R_MTU_EXCEEDED], before + 1, "%s",
		     src);
	cr_assert(r.verdict == XDP_TX || r.verdict == XDP_DROP);
	return r.verdict == XDP_TX;
}

static void too_big_services(void)
{
	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	backend(11, "2001:db8::21", AETH_BE_F_IN_USE, 2);
	service(1, VIP4, 53, 17, (uint32_t[]){ 10 }, 1);
	service(2, VIP6, 53, 17, (uint32_t[]){ 11 }, 1);
}

/* Never an answer to an address that is no single host: a forged source
 * there would make the balancer answer many, or nobody. */
Test(fwd, too_big_never_answers_non_unicast_sources)
{
	static const char *const bad[] = {
		"0.0.0.0", "127.0.0.1", "224.0.0.1", "239.1.2.3",
		"255.255.255.255", "240.0.0.1", "::", "::1", "ff02::1",
		"ff0e::5",
	};
	size_t i;

	too_big_services();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert(!too_big_answered(bad[i]), "answered %s", bad[i]);
	cr_assert(too_big_answered(CLI4));
	cr_assert(too_big_answered(CLI6));
	cr_assert_eq(global().events[AETH_EV_ICMP_TOO_BIG_SENT], 2);
}

/* The answers are rate limited per CPU (node.icmp_rate per second, at
 * most one second's worth at once); refused answers are still counted. */
Test(fwd, too_big_answers_rate_limited_per_cpu)
{
	struct aeth_node node;
	int i, sent = 0;

	cr_assert_eq(dp_pin_cpu(0), 0);	/* the budget is per CPU */
	too_big_services();
	dp_node_default(&node);
	node.icmp_rate = 5;
	cr_assert_eq(dp_set_node(&h, &node), 0);
	for (i = 0; i < 50; i++)
		sent += too_big_answered(CLI4);
	cr_assert_eq(sent, 5, "%d answers from a budget of 5", sent);
	cr_assert_eq(global().events[AETH_EV_ICMP_TOO_BIG_LIMITED], 45);
	usleep(450 * 1000);	/* refills 5/s: about two more */
	sent = 0;
	for (i = 0; i < 10; i++)
		sent += too_big_answered(CLI4);
	cr_assert(sent >= 1 && sent <= 3, "%d answers after 450 ms", sent);
	node.icmp_rate = 0;	/* off */
	cr_assert_eq(dp_set_node(&h, &node), 0);
	usleep(1100 * 1000);
	cr_assert(!too_big_answered(CLI4));
}

Test(fwd, fits_exactly_at_mtu)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	s.payload = big_payload;
	s.payload_len = 1480 - 40;	/* 1480 + 20 == 1500 */
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
}

/* ---- ICMP errors ---- */

/* An ICMP error from a router about a packet VIP:vport -> client:cport the
 * backend sent (quoting its IP header and 8 bytes). */
static void icmp_error_frame(int v6, uint16_t vport, uint16_t cport,
			     struct pkt_spec *out, struct frame *f)
{
	struct pkt_spec q = v6 ? pkt_spec_tcp6(VIP6, vport, CLI6, cport) :
				 pkt_spec_tcp4(VIP4, vport, CLI4, cport);
	static uint8_t icmp[8 + 48];
	uint8_t quoted[PKT_MAX];
	size_t qlen = pkt_build_l3(&q, quoted, sizeof(quoted));
	size_t hl = v6 ? 40 : 20;

	cr_assert_gt(qlen, hl + 8);
	memset(icmp, 0, sizeof(icmp));
	icmp[0] = v6 ? 1 : 3;	/* destination unreachable */
	icmp[1] = v6 ? 3 : 1;	/* host / address unreachable */
	memcpy(icmp + 8, quoted, hl + 8);
	*out = v6 ? pkt_spec_tcp6("2001:db8:100::fe", 0, VIP6, 0) :
		    pkt_spec_tcp4("198.51.100.254", 0, VIP4, 0);
	out->proto = v6 ? 58 : 1;
	out->payload = icmp;
	out->payload_len = 8 + hl + 8;
	build(out, f);
}

static void icmp_steer_case(int v6)
{
	struct pkt_spec s = v6 ? pkt_spec_tcp6(CLI6, 40000, VIP6, 6443) :
				 pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	const char *vip = v6 ? VIP6 : VIP4;
	const char *b1 = v6 ? "2001:db8::21" : "192.0.2.21";
	const char *b2 = v6 ? "2001:db8::22" : "192.0.2.22";
	uint32_t ids[] = { 10 };
	struct pkt_spec e;
	struct frame f, ef;
	struct result r;

	backend(10, b1, AETH_BE_F_IN_USE, 1);
	backend(11, b2, AETH_BE_F_IN_USE, 1);
	service(1, vip, 6443, 6, ids, 1);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, b1);
	set_table_all(1, 11);	/* the flow's entry, not the table, decides */

	icmp_error_frame(v6, 6443, 40000, &e, &ef);
	run(&ef, &r);
	expect_tx(&r, &e, &ef, b1);
	cr_assert_eq(global().events[AETH_EV_ICMP_STEERED], 1);

	/* no entry for this flow: not steered anywhere (a Maglev guess would
	 * let anyone aim forged errors at any backend) */
	icmp_error_frame(v6, 6443, 40001, &e, &ef);
	run(&ef, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().reasons[AETH_R_UNCONFIGURED_PORT], 1);
	cr_assert_eq(global().events[AETH_EV_ICMP_STEERED], 1);
	(void)b2;

	/* not about a service port: dropped */
	icmp_error_frame(v6, 22, 40000, &e, &ef);
	run(&ef, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().reasons[AETH_R_UNCONFIGURED_PORT], 2);
}

/* An entry whose backend was removed: the error is about a flow nobody
 * carries any more, so it goes nowhere. */
Test(fwd, icmp_error_for_removed_backend_dropped)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	uint32_t ids[] = { 10 };
	struct pkt_spec e;
	struct frame f, ef;
	struct result r;

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	service(1, VIP4, 6443, 6, ids, 1);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	backend(10, "192.0.2.21", 0, 1);
	icmp_error_frame(0, 6443, 40000, &e, &ef);
	run(&ef, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().events[AETH_EV_ICMP_STEERED], 0);
}

/* icmp_steered counts errors that were sent, not ones that then failed
 * (here: too big for the MTU once encapsulated, never answered). */
Test(fwd, icmp_steered_counted_only_when_sent)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_node node;
	uint32_t ids[] = { 10 };
	struct pkt_spec e;
	struct frame f, ef;
	struct result r;

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	service(1, VIP4, 6443, 6, ids, 1);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	icmp_error_frame(0, 6443, 40000, &e, &ef);
	dp_node_default(&node);
	node.mtu = (ef.len - 14) + 19;	/* the error + 20 does not fit */
	cr_assert_eq(dp_set_node(&h, &node), 0);
	run(&ef, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().reasons[AETH_R_MTU_EXCEEDED], 1);
	cr_assert_eq(global().events[AETH_EV_ICMP_TOO_BIG_SENT], 0,
		     "never an ICMP error about an ICMP error");
	cr_assert_eq(global().events[AETH_EV_ICMP_STEERED], 0);
}

Test(fwd, icmp_error_follows_flow_v4)
{
	icmp_steer_case(0);
}

Test(fwd, icmp_error_follows_flow_v6)
{
	icmp_steer_case(1);
}

Test(fwd, icmp_echo_to_vip_dropped)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 0, VIP4, 0);
	uint8_t echo[16] = { 8, 0, 0, 0, 0, 1, 0, 1 };
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	s.proto = 1;
	s.payload = echo;
	s.payload_len = sizeof(echo);
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(global().reasons[AETH_R_UNCONFIGURED_PORT], 1);
}

/* ---- guard ordering ---- */

Test(fwd, not_authorized_before_any_state)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_svc_key k = dp_svc_key(VIP4, 6443, 6);
	struct aeth_svc sv = dp_svc(1, 1, TSIZE);
	struct aeth_flow fl = flow_of(&s);
	struct aeth_global_stats g;
	struct aeth_ct_entry e;
	struct frame f;
	struct result r;
	int acl;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	acl = dp_acl_create(&h, 3);
	cr_assert_geq(acl, 0);
	cr_assert_eq(dp_acl_add(acl, "198.51.100.128", 25), 0);
	sv.flags = AETH_SVC_F_ACL;
	sv.acl_slot = 3;
	cr_assert_eq(dp_add_service(&h, &k, &sv), 0);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	g = global();
	cr_assert_eq(g.reasons[AETH_R_NOT_AUTHORIZED], 1);
	cr_assert_eq(svc_stats(1).drops[AETH_R_NOT_AUTHORIZED], 1);
	cr_assert_eq(g.events[AETH_EV_CT_MISS], 0);
	cr_assert_neq(dp_ct_get(&h, &fl, &e), 0);

	dp_addr("198.51.100.200", &s.src);	/* inside the list */
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
}

/* A service cap of one new connection per ~17 minutes: the first SYN passes,
 * a second SYN is refused, a mid-flow packet of an unknown flow is not
 * charged, and a UDP packet without entry is. */
Test(fwd, only_new_connections_are_charged)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_svc_key k = dp_svc_key(VIP4, 6443, 6);
	struct aeth_svc_key ku = dp_svc_key(VIP4, 53, 17);
	struct aeth_svc sv = dp_svc(1, 1, TSIZE), su = dp_svc(2, 2, TSIZE);
	uint32_t id = 10;
	struct frame f;
	struct result r;

	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	backend(20, "192.0.2.21", AETH_BE_F_IN_USE, 2);
	service(1, VIP4, 6443, 6, &id, 1);
	id = 20;
	service(2, VIP4, 53, 17, &id, 1);
	sv.svc_interval_ns = su.svc_interval_ns = 1000000000000ull;
	cr_assert_eq(dp_add_service(&h, &k, &sv), 0);
	cr_assert_eq(dp_add_service(&h, &ku, &su), 0);

	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	s.sport = 40001;
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(svc_stats(1).drops[AETH_R_SERVICE_RATE_LIMITED], 1);
	s.tcp_flags = PKT_TCP_ACK;	/* moved here mid-flow */
	s.sport = 40002;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	s.tcp_flags = PKT_TCP_SYN | PKT_TCP_ACK;	/* not a new connection */
	s.sport = 40003;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");

	s = pkt_spec_udp4(CLI4, 40000, VIP4, 53);
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	run(&f, &r);	/* same flow, now recorded: not charged */
	expect_tx(&r, &s, &f, "192.0.2.21");
	s.sport = 40001;
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_DROP);
	cr_assert_eq(svc_stats(2).drops[AETH_R_SERVICE_RATE_LIMITED], 1);
}

Test(fwd, insert_budget_window_renews)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct aeth_ct_budget old[512];
	struct aeth_node node;
	struct aeth_flow fl;
	struct aeth_ct_entry e;
	struct frame f;
	struct result r;
	__u32 zero = 0;

	cr_assert_leq(h.ncpus, 512);
	cr_assert_eq(dp_pin_cpu(0), 0);
	dp_node_default(&node);
	node.ct_insert_rate = 1;
	cr_assert_eq(dp_set_node(&h, &node), 0);
	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	s.sport = 40001;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_eq(global().events[AETH_EV_CT_INSERT_SKIPPED], 1);
	/* move every CPU's window a second and more into the past */
	cr_assert_eq(bpf_map_lookup_elem(h.ct_budget, &zero, old), 0);
	for (int i = 0; i < h.ncpus; i++)
		old[i].window_start_ns -= 1000000001ull;
	cr_assert_eq(bpf_map_update_elem(h.ct_budget, &zero, old, BPF_ANY), 0);
	s.sport = 40002;
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	fl = flow_of(&s);
	cr_assert_eq(dp_ct_get(&h, &fl, &e), 0);
	cr_assert_eq(global().events[AETH_EV_CT_INSERT], 2);
}

/* ---- next-hop cache ---- */

Test(fwd, nexthop_cache_keeps_backends_apart)
{
	struct pkt_spec a = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct pkt_spec b = pkt_spec_tcp4(CLI4, 40000, VIP4, 8443);
	struct frame fa, fb;
	struct result r;
	int i;

	/* ids 10 and 4106 share a cache slot */
	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	one_backend_service(2, VIP4, 8443, 6, 4106, "192.0.2.150");
	build(&a, &fa);
	build(&b, &fb);
	for (i = 0; i < 2; i++) {
		run(&fa, &r);
		expect_tx(&r, &a, &fa, "192.0.2.21");
		run(&fb, &r);
		cr_assert_eq(r.verdict, XDP_REDIRECT);
		expect_encap(&r, &b, &fb, "192.0.2.150", neigh_mac,
			     net.mac_if2);
	}
}

Test(fwd, nexthop_cache_follows_backend_and_neighbour)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	static const uint8_t new_mac[6] = { 2, 0, 0, 0, 0, 0x33 };
	struct frame f;
	struct result r;

	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	build(&s, &f);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	/* same id, new address: resolved again at once */
	backend(10, "192.0.2.150", AETH_BE_F_IN_USE, 1);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_REDIRECT);
	expect_encap(&r, &s, &f, "192.0.2.150", neigh_mac, net.mac_if2);
	/* a neighbour change shows once the cached answer expires */
	backend(10, "192.0.2.21", AETH_BE_F_IN_USE, 1);
	run(&f, &r);
	expect_tx(&r, &s, &f, "192.0.2.21");
	cr_assert_eq(system("ip neigh replace 192.0.2.21 lladdr 02:00:00:00:00:33 "
			    "nud permanent dev aeth-dp0"), 0);
	usleep(300 * 1000);	/* 25 jiffies: 250 ms even at HZ=100 */
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX);
	expect_encap(&r, &s, &f, "192.0.2.21", new_mac, net.mac_if0);
}

/* A flow's memory keeps the next hop of its first packet served from it.
 * When a SYN replaces the remembered tuple's entry with one on a backend
 * behind another device, the memory made for the new entry starts without
 * a next hop: the old one (192.0.2.21's, by XDP_TX) is still good by its
 * time, but belongs to the backend the old memory named. */
Test(fwd, flow_memory_takes_no_next_hop_from_the_memory_it_replaces)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	struct frame f;
	struct result r;
	int i;

	remembered_flow(&s, &f);
	run(&f, &r);	/* from the memory: its next hop is kept */
	expect_tx(&r, &s, &f, "192.0.2.21");
	backend(12, "192.0.2.150", AETH_BE_F_IN_USE, 1);
	set_table_all(1, 12);
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_REDIRECT);
	s.tcp_flags = PKT_TCP_ACK;
	build(&s, &f);
	for (i = 0; i < 3; i++) {	/* by the entry, then the memory */
		run(&f, &r);
		cr_assert_eq(r.verdict, XDP_REDIRECT, "packet %d", i);
		expect_encap(&r, &s, &f, "192.0.2.150", neigh_mac,
			     net.mac_if2);
	}
	cr_assert_eq(global().events[AETH_EV_CT_HIT], 5);
}

/* A flow's memory keeps the next hop of the device its packet came in on:
 * the same flow arriving on another device (ECMP, a bond's other leg) is
 * routed for that device, not sent where the first one's route went. The
 * backend is reachable through both devices (a host route through dp0
 * beside dp2's subnet); an output lookup takes the route through the
 * ingress device. */
Test(fwd, flow_memory_next_hop_is_per_ingress_device)
{
	struct pkt_spec s = pkt_spec_tcp4(CLI4, 40000, VIP4, 6443);
	static const uint8_t dp0_mac[6] = { 2, 0, 0, 0, 0, 0x33 };
	struct frame f;
	struct result r;
	int i;

	cr_assert_eq(system("ip neigh replace 192.0.2.150 lladdr "
			    "02:00:00:00:00:33 nud permanent dev aeth-dp0 && "
			    "ip route add 192.0.2.150/32 dev aeth-dp0"), 0);
	cr_assert_eq(dp_pin_cpu(0), 0);
	one_backend_service(1, VIP4, 6443, 6, 12, "192.0.2.150");
	s.tcp_flags = PKT_TCP_SYN;
	build(&s, &f);
	run(&f, &r);
	s.tcp_flags = PKT_TCP_ACK;
	build(&s, &f);
	for (i = 0; i < 2; i++) {	/* by the entry, then the memory */
		run(&f, &r);
		cr_assert_eq(r.verdict, XDP_TX, "in on dp0, packet %d", i);
		expect_encap(&r, &s, &f, "192.0.2.150", dp0_mac, net.mac_if0);
	}
	for (i = 0; i < 2; i++) {
		run_on(&f, net.if2, &r);
		cr_assert_eq(r.verdict, XDP_TX, "in on dp2, packet %d", i);
		expect_encap(&r, &s, &f, "192.0.2.150", neigh_mac,
			     net.mac_if2);
	}
	run(&f, &r);
	cr_assert_eq(r.verdict, XDP_TX, "back on dp0");
	expect_encap(&r, &s, &f, "192.0.2.150", dp0_mac, net.mac_if0);
	cr_assert_eq(global().events[AETH_EV_CT_HIT], 5);
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* How long the per-CPU memories and the next-hop cache hold an answer
 * (SVC_NEG_TTL, NH_CACHE_TTL: 25 jiffies), in ms: the coarse clock's
 * resolution is the kernel's tick. */
static uint64_t memory_lifetime_ms(void)
{
	struct timespec tick;

	cr_assert_eq(clock_getres(CLOCK_MONOTONIC_COARSE, &tick), 0);
	return (25 * (uint64_t)tick.tv_nsec + 999999) / 1000000;
}

/* The next hop a memory keeps lapses with the cache's answer it came from,
 * not with the memory: a flow remembered half a lifetime after another
 * flow to the same backend filled the cache sees a neighbour change once
 * that answer has lapsed, while its memory still holds (the connection
 * entry is gone, and the packet is still sent as the flow's). A run whose
 * sleeps overshoot is tried again. */
Test(fwd, flow_memory_next_hop_lapses_with_the_cache_answer)
{
	static const uint8_t new_mac[6] = { 2, 0, 0, 0, 0, 0x33 };
	struct pkt_spec a, b;
	struct aeth_flow fl;
	struct frame fa, fb;
	struct result r;
	uint64_t t0, t1, hits, life = memory_lifetime_ms();
	int attempt;

	cr_assert_eq(dp_pin_cpu(0), 0);
	one_backend_service(1, VIP4, 6443, 6, 10, "192.0.2.21");
	for (attempt = 0; attempt < 5; attempt++) {
		cr_assert_eq(system("ip neigh replace 192.0.2.21 lladdr "
				    "02:00:00:00:00:21 nud permanent dev "
				    "aeth-dp0"), 0);
		usleep(life * 1500);	/* every answer of a try before lapses */
		a = pkt_spec_tcp4(CLI4, (uint16_t)(41000 + attempt), VIP4,
				  6443);
		b = pkt_spec_tcp4("198.51.100.8", (uint16_t)(42000 + attempt),
				  VIP4, 6443);
		a.tcp_flags = b.tcp_flags = PKT_TCP_SYN;
		build(&a, &fa);
		t0 = now_ms();
		run(&fa, &r);		/* the cache's answer for backend 10 */
		expect_tx(&r, &a, &fa, "192.0.2.21");
		usleep(life * 500);
		build(&b, &fb);
		run(&fb, &r);		/* b's SYN */
		b.tcp_flags = PKT_TCP_ACK;
		build(&b, &fb);
		t1 = now_ms();
		run(&fb, &r);		/* by its entry: remembered */
		run(&fb, &r);		/* from the memory, cache's next hop */
		expect_tx(&r, &b, &fb, "192.0.2.21");
		cr_assert_eq(system("ip neigh replace 192.0.2.21 lladdr "
				    "02:00:00:00:00:33 nud permanent dev "
				    "aeth-dp0"), 0);
		fl = flow_of(&b);
		cr_assert_eq(dp_ct_del(&h, &fl), 0);
		while (now_ms() < t0 + life * 5 / 4)
			usleep(1000);
		hits = global().events[AETH_EV_CT_HIT];
		run(&fb, &r);
		if (now_ms() > t1 + life * 9 / 10 ||
		    global().events[AETH_EV_CT_HIT] != hits + 1)
			continue;	/* the memory itself may have lapsed */
		cr_assert_eq(r.verdict, XDP_TX);
		expect_encap(&r, &b, &fb, "192.0.2.21", new_mac,
			     net.mac_if0);
		return;
	}
	cr_assert_fail("no try kept b's memory past the cache's answer");
}

/* ---- outer IPv4 identification ---- */

static uint16_t outer_id(const struct result *r)
{
	return (uint16_t)(r->b[14 + 4] << 8 | r->b[14 + 5]);
}

/* Not the client's id: two clients' packets with the same id must not
 * share an outer id (the backend would reassemble them together), and a
 * packet with DF is atomic (id 0). */
Test(fwd, outer_ipv4_id_is_not_the_inner_one)
{
	struct pkt_spec a = pkt_spec_udp4(CLI4, 5353, VIP4, 53);
	struct pkt_spec b = pkt_spec_udp4("198.51.100.8", 5353, VIP4, 53);
	struct frame f;
	struct result r1, r2, r3;

	cr_assert_eq(dp_pin_cpu(0), 0);
	one_backend_service(1, VIP4, 53, 17, 10, "192.0.2.21");
	a.df = b.df = false;
	a.ip_id = b.ip_id = 0x4242;
	build(&a, &f);
	run(&f, &r1);
	expect_tx(&r1, &a, &f, "192.0.2.21");
	run(&f, &r2);
	build(&b, &f);
	run(&f, &r3);
	expect_tx(&r3, &b, &f, "192.0.2.21");
	cr_assert_eq(r1.b[14 + 6] & 0x40, 0, "no DF");
	cr_assert_neq(outer_id(&r1), outer_id(&r3), "two clients, one id");
	cr_assert_neq(outer_id(&r1), outer_id(&r2), "one flow, one id twice");
	cr_assert(outer_id(&r1) != 0x4242 || outer_id(&r3) != 0x4242);

	a.df = true;
	build(&a, &f);
	run(&f, &r1);
	expect_tx(&r1, &a, &f, "192.0.2.21");
	cr_assert_eq(outer_id(&r1), 0);
}
