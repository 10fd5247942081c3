/* Guard tests: authorized networks and new-connection rate limits, through
 * the real program with BPF_PROG_TEST_RUN. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "harness.h"
#include "pkt.h"

#define VIP4 "203.0.113.10"
#define VIP6 "2001:db8:f::10"
#define PORT 6443
#define UDP_PORT 53
#define SVC4 1
#define SVC6 2
#define SVC4_UDP 3
#define BE4 1
#define BE6 2
#define BE4_UDP 3
#define TABLE 251
#define ACL_SLOT 10		/* and ACL_SLOT + 1: the other slot */
#define NSEC 1000000000ull

static struct dp_h h;
static struct dp_net net;
static struct aeth_svc svc4, svc6, svc4_udp;

static void publish(void)
{
	struct aeth_svc_key k4 = dp_svc_key(VIP4, PORT, IPPROTO_TCP);
	struct aeth_svc_key k6 = dp_svc_key(VIP6, PORT, IPPROTO_TCP);
	struct aeth_svc_key ku = dp_svc_key(VIP4, UDP_PORT, IPPROTO_UDP);

	cr_assert_eq(dp_add_service(&h, &k4, &svc4), 0);
	cr_assert_eq(dp_add_service(&h, &k6, &svc6), 0);
	cr_assert_eq(dp_add_service(&h, &ku, &svc4_udp), 0);
}

static void add_backend(uint32_t id, const char *addr, uint32_t svc_id,
			uint32_t slot)
{
	struct aeth_backend be = dp_backend(addr, AETH_BE_F_IN_USE, svc_id);
	uint32_t table[TABLE];

	cr_assert_eq(dp_set_backend(&h, id, &be), 0);
	dp_table_round_robin(table, TABLE, &id, 1);
	cr_assert_eq(dp_set_maglev(&h, slot, table, TABLE), 0);
}

static void setup(void)
{
	struct aeth_node node;

	cr_assert_eq(dp_netns_setup(&net), 0);
	cr_assert_eq(dp_open(&h), 0);
	dp_node_default(&node);
	cr_assert_eq(dp_set_node(&h, &node), 0);
	add_backend(BE4, "192.0.2.21", SVC4, 2 * SVC4);
	add_backend(BE6, "2001:db8::21", SVC6, 2 * SVC6);
	add_backend(BE4_UDP, "192.0.2.22", SVC4_UDP, 2 * SVC4_UDP);
	svc4 = dp_svc(SVC4, 2 * SVC4, TABLE);
	svc6 = dp_svc(SVC6, 2 * SVC6, TABLE);
	svc4_udp = dp_svc(SVC4_UDP, 2 * SVC4_UDP, TABLE);
	/* the agent's defaults: /32 and /64 per source */
	svc4.src_prefix_v4 = svc6.src_prefix_v4 = svc4_udp.src_prefix_v4 = 32;
	svc4.src_prefix_v6 = svc6.src_prefix_v6 = svc4_udp.src_prefix_v6 = 64;
	publish();
}

static void teardown(void)
{
	dp_close(&h);
}

static bool is_v6(const char *addr)
{
	return strchr(addr, ':') != NULL;
}

/* One TCP packet from src:sport to the service of src's family; returns the
 * verdict. Admitted packets are encapsulated and sent back out of the
 * ingress veth (XDP_TX). */
static uint32_t tcp(const char *src, uint16_t sport, uint8_t flags)
{
	struct pkt_spec s = is_v6(src) ? pkt_spec_tcp6(src, sport, VIP6, PORT) :
					 pkt_spec_tcp4(src, sport, VIP4, PORT);
	uint8_t in[256], out[512];
	size_t len, out_len = sizeof(out);
	uint32_t verdict;

	s.tcp_flags = flags;
	len = pkt_build(&s, in, sizeof(in));
	cr_assert_gt(len, 0);
	cr_assert_eq(dp_run(&h, in, len, out, &out_len, net.if0, &verdict), 0);
	return verdict;
}

/* An admitted SYN really leaves encapsulated towards the service's backend:
 * the bytes the data path promises, from the harness's own builder. */
static void expect_forwarded(const char *src, const char *backend)
{
	struct pkt_spec s = is_v6(src) ? pkt_spec_tcp6(src, 40001, VIP6, PORT) :
					 pkt_spec_tcp4(src, 40001, VIP4, PORT);
	uint8_t in[256], out[512], want[PKT_MAX];
	size_t len, want_len, out_len = sizeof(out);
	uint32_t verdict;

	s.tcp_flags = PKT_TCP_SYN;
	len = pkt_build(&s, in, sizeof(in));
	cr_assert_eq(dp_run(&h, in, len, out, &out_len, net.if0, &verdict), 0);
	cr_assert_eq(verdict, XDP_TX, "%s not forwarded", src);
	want_len = dp_expect_encap(&s, in, len, backend,
				   (const uint8_t *)DP_MAC_NEIGH, net.mac_if0,
				   want);
	cr_assert(pkt_equal(out, out_len, want, want_len), "%s", src);
}

static uint32_t syn(const char *src, uint16_t sport)
{
	return tcp(src, sport, PKT_TCP_SYN);
}

static uint32_t udp(const char *src, uint16_t sport)
{
	struct pkt_spec s = pkt_spec_udp4(src, sport, VIP4, UDP_PORT);
	uint8_t in[256], out[512];
	size_t len, out_len = sizeof(out);
	uint32_t verdict;

	len = pkt_build(&s, in, sizeof(in));
	cr_assert_gt(len, 0);
	cr_assert_eq(dp_run(&h, in, len, out, &out_len, net.if0, &verdict), 0);
	return verdict;
}

static uint64_t svc_drops(uint32_t id, int reason)
{
	struct aeth_svc_stats s;

	cr_assert_eq(dp_svc_stats(&h, id, &s), 0);
	return s.drops[reason];
}

static uint64_t global_reason(int reason)
{
	struct aeth_global_stats g;

	cr_assert_eq(dp_global(&h, &g), 0);
	return g.reasons[reason];
}

static unsigned int map_count(int fd, size_t key_size)
{
	uint8_t key[64], next[64];
	unsigned int n = 0;
	void *prev = NULL;

	cr_assert_leq(key_size, sizeof(key));
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, key_size);
		prev = key;
		n++;
	}
	return n;
}

/* ---- authorized networks ---------------------------------------------- */

/* Add "addr/len" to a trie the way the agent does: IPv4 as ::ffff:a.b.c.d
 * with len + 96; the value is the family of the listed prefix. */
static void acl_add(int fd, const char *cidr)
{
	char buf[64], *slash;
	struct aeth_acl_key k;
	union aeth_addr a;
	__u32 family;
	int plen;

	snprintf(buf, sizeof(buf), "%s", cidr);
	slash = strchr(buf, '/');
	cr_assert_not_null(slash, "%s", cidr);
	*slash = 0;
	plen = atoi(slash + 1);
	memset(&k, 0, sizeof(k));
	family = dp_addr(buf, &a);
	if (family == AETH_AF_INET) {
		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		memcpy(k.addr + 12, &a.v4, 4);
		k.prefixlen = plen + 96;
	} else {
		memcpy(k.addr, a.bytes, 16);
		k.prefixlen = plen;
	}
	cr_assert_eq(bpf_map_update_elem(fd, &k, &family, BPF_ANY), 0,
		     "adding %s: %s", cidr, strerror(errno));
}

/* A fresh trie with cidrs in slot, and its compiled IPv4 form, as the
 * agent writes a list; returns the trie's fd. */
static int acl_fill(uint32_t slot, const char *const *cidrs, size_t n)
{
	int fd = dp_acl_create(&h, slot);
	size_t i;

	cr_assert_geq(fd, 0);
	for (i = 0; i < n; i++)
		acl_add(fd, cidrs[i]);
	cr_assert_eq(dp_acl_compile(&h, slot, fd), 0);
	return fd;
}

/* Both TCP services enforce the list in slot. */
static void acl_enable(uint32_t slot)
{
	svc4.flags |= AETH_SVC_F_ACL;
	svc4.acl_slot = slot;
	svc6.flags |= AETH_SVC_F_ACL;
	svc6.acl_slot = slot;
	publish();
}

static void acl_set(const char *const *cidrs, size_t n)
{
	close(acl_fill(ACL_SLOT, cidrs, n));
	acl_enable(ACL_SLOT);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void expect_in(const char *src)
{
	cr_expect_eq(syn(src, 40000), XDP_TX, "%s should be authorized", src);
}

static void expect_out(const char *src)
{
	uint32_t id = is_v6(src) ? SVC6 : SVC4;
	uint64_t before = svc_drops(id, AETH_R_NOT_AUTHORIZED);

	cr_expect_eq(syn(src, 40000), XDP_DROP, "%s should be refused", src);
	cr_expect_eq(svc_drops(id, AETH_R_NOT_AUTHORIZED), before + 1,
		     "%s: not_authorized not counted", src);
}

TestSuite(acl, .init = setup, .fini = teardown, .timeout = 60);

Test(acl, sources_inside_and_outside_both_families)
{
	static const char *const list[] = { "198.51.100.0/24",
					    "2001:db8:100::/48" };

	acl_set(list, N(list));
	expect_in("198.51.100.0");
	expect_in("198.51.100.7");
	expect_in("198.51.100.255");
	expect_out("198.51.101.0");
	expect_out("198.51.99.255");
	expect_out("203.0.113.7");
	expect_in("2001:db8:100::7");
	expect_in("2001:db8:100:ffff:ffff:ffff:ffff:ffff");
	expect_out("2001:db8:101::7");
	expect_out("2001:db8:ff::1");
	/* the same address in the other family is not the same source */
	expect_out("::ffff:198.51.100.7");
	expect_forwarded("198.51.100.7", "192.0.2.21");
	expect_forwarded("2001:db8:100::7", "2001:db8::21");
	cr_expect_eq(svc_drops(SVC4, AETH_R_NOT_AUTHORIZED), 3);
	cr_expect_eq(svc_drops(SVC6, AETH_R_NOT_AUTHORIZED), 3);
	cr_expect_eq(global_reason(AETH_R_NOT_AUTHORIZED), 6);
}

Test(acl, refused_source_creates_no_state)
{
	static const char *const list[] = { "198.51.100.0/24" };

	svc4.src_interval_ns = NSEC;
	svc4.src_tolerance_ns = 0;
	svc4.svc_interval_ns = NSEC;
	svc4.svc_tolerance_ns = 0;
	acl_set(list, N(list));
	expect_out("203.0.113.7");
	expect_out("192.0.2.200");
	cr_expect_eq(aeth_ct_table_count(&h.ct_table), 0);
	cr_expect_eq(map_count(h.rl_src, sizeof(struct aeth_rl_src_key)), 0);
	cr_expect_eq(svc_drops(SVC4, AETH_R_SERVICE_RATE_LIMITED), 0);
	/* and the service's budget is still there for an authorized one */
	expect_in("198.51.100.7");
	cr_expect_eq(aeth_ct_table_count(&h.ct_table), 1);
	cr_expect_eq(map_count(h.rl_src, sizeof(struct aeth_rl_src_key)), 1);
}

Test(acl, v4_default_route_admits_every_v4_source_only)
{
	static const char *const list[] = { "0.0.0.0/0" };

	acl_set(list, N(list));
	expect_in("198.51.100.7");
	expect_in("203.0.113.99");
	expect_in("192.0.2.1");
	expect_out("2001:db8:100::7");
}

Test(acl, v6_default_route_admits_every_v6_source_only)
{
	static const char *const list[] = { "::/0" };

	acl_set(list, N(list));
	expect_in("2001:db8:100::7");
	expect_in("2001:db8:ffff::1");
	/* ::/0 covers ::ffff:0:0/96 in the shared trie; it must not let
	 * IPv4 in */
	expect_out("198.51.100.7");
	expect_out("203.0.113.99");
}

Test(acl, host_prefixes)
{
	static const char *const list[] = { "198.51.100.7/32",
					    "2001:db8:100::7/128" };

	acl_set(list, N(list));
	expect_in("198.51.100.7");
	expect_out("198.51.100.6");
	expect_out("198.51.100.8");
	expect_in("2001:db8:100::7");
	expect_out("2001:db8:100::6");
	expect_out("2001:db8:100::8");
	expect_out("2001:db8:100::7:0");
}

Test(acl, overlapping_prefixes)
{
	static const char *const list[] = {
		"198.51.0.0/16", "198.51.100.128/25", "198.51.100.200/32",
		"2001:db8::/32", "2001:db8:100::/48", "2001:db8:100::1/128",
	};

	acl_set(list, N(list));
	expect_in("198.51.7.7");	/* only the /16 */
	expect_in("198.51.100.7");	/* the /16 under a /25 sibling */
	expect_in("198.51.100.130");	/* /25 */
	expect_in("198.51.100.200");	/* /32 */
	expect_out("198.50.255.255");
	expect_out("198.52.0.0");
	expect_in("2001:db8:5::1");
	expect_in("2001:db8:100::1");
	expect_in("2001:db8:100::2");
	expect_out("2001:db9::1");
}

Test(acl, v4_prefix_beats_v6_catch_all)
{
	static const char *const list[] = { "::/0", "198.51.100.0/24" };

	acl_set(list, N(list));
	expect_in("198.51.100.7");
	expect_out("203.0.113.7");
	expect_in("2001:db8:100::7");
}

Test(acl, empty_enabled_list_refuses_everyone)
{
	acl_set(NULL, 0);
	expect_out("198.51.100.7");
	expect_out("2001:db8:100::7");
}

Test(acl, enabled_without_a_list_fails_closed)
{
	acl_enable(ACL_SLOT);	/* nothing in the slot */
	expect_out("198.51.100.7");
	expect_out("2001:db8:100::7");
}

Test(acl, disabled_list_lets_everyone_in)
{
	static const char *const list[] = { "192.0.2.0/24" };

	close(acl_fill(ACL_SLOT, list, N(list)));
	svc4.acl_slot = ACL_SLOT;	/* a list, but not enforced */
	svc6.acl_slot = ACL_SLOT;
	publish();
	expect_in("198.51.100.7");
	expect_in("203.0.113.7");
	expect_in("2001:db8:100::7");
	cr_expect_eq(global_reason(AETH_R_NOT_AUTHORIZED), 0);
}

/* Flip svc4 between two slots with one aeth_svc update each way, then
 * write aeth_meta as the agent does after every write of the tables (the
 * program's per-CPU copies of service entries are stamped with it). */
static void acl_flip(uint32_t slot)
{
	struct aeth_svc_key k4 = dp_svc_key(VIP4, PORT, IPPROTO_TCP);

	svc4.acl_slot = slot;
	cr_assert_eq(bpf_map_update_elem(h.svc, &k4, &svc4, BPF_EXIST), 0);
	cr_assert_eq(dp_bump_generation(&h), 0);
}

Test(acl, replacement_is_atomic)
{
	static const char *const old_list[] = { "198.51.100.0/24",
						"203.0.113.0/24" };
	static const char *const new_list[] = { "198.51.100.0/24",
						"192.0.2.128/25" };

	close(acl_fill(ACL_SLOT, old_list, N(old_list)));
	acl_enable(ACL_SLOT);
	expect_in("198.51.100.7");	/* common */
	expect_in("203.0.113.7");	/* old only */
	expect_out("192.0.2.200");	/* new only */
	/* established sessions from the common and the old-only prefix */
	cr_assert_eq(syn("198.51.100.7", 1000), XDP_TX);
	cr_assert_eq(syn("203.0.113.7", 1000), XDP_TX);

	/* the agent fills the inactive slot, then flips */
	close(acl_fill(ACL_SLOT + 1, new_list, N(new_list)));
	expect_out("192.0.2.200");	/* filled but not published yet */
	acl_flip(ACL_SLOT + 1);
	expect_in("198.51.100.7");
	expect_out("203.0.113.7");
	expect_in("192.0.2.200");
	/* a removed prefix is cut off, established or not; a kept one is not */
	cr_expect_eq(tcp("198.51.100.7", 1000, PKT_TCP_ACK), XDP_TX);
	cr_expect_eq(tcp("203.0.113.7", 1000, PKT_TCP_ACK), XDP_DROP);

	acl_flip(ACL_SLOT);
	expect_in("198.51.100.7");
	expect_in("203.0.113.7");
	expect_out("192.0.2.200");
}

/* Each CPU remembers verdicts per (list slot, source) (bpf/acl_memory.h).
 * A slot refilled with another list after the service left it is a new
 * list: the memory of the old one must not answer for it. */
Test(acl, refilled_slot_is_judged_by_its_new_list)
{
	static const char *const a[] = { "198.51.100.0/24" };
	static const char *const b[] = { "203.0.113.0/24" };
	static const char *const c[] = { "192.0.2.0/24" };

	close(acl_fill(ACL_SLOT, a, N(a)));
	acl_enable(ACL_SLOT);
	expect_in("198.51.100.7");
	expect_out("192.0.2.7");
	close(acl_fill(ACL_SLOT + 1, b, N(b)));
	acl_flip(ACL_SLOT + 1);
	close(acl_fill(ACL_SLOT, c, N(c)));	/* the agent's next apply */
	acl_flip(ACL_SLOT);
	expect_out("198.51.100.7");
	expect_in("192.0.2.7");
}

/* Sources outside the list whose memory slot is an inside source's are
 * refused right after it was admitted: thousands of them, so every slot
 * of the memory is met. */
Test(acl, remembered_verdict_is_the_sources_own)
{
	static const char *const list[] = { "198.51.100.7/32" };
	char src[32];
	int i, leaked = 0, refused = 0;

	cr_assert_eq(dp_pin_cpu(0), 0);
	close(acl_fill(ACL_SLOT, list, N(list)));
	acl_enable(ACL_SLOT);
	for (i = 0; i < 8192; i++) {
		snprintf(src, sizeof(src), "10.%d.%d.%d", i >> 16,
			 (i >> 8) & 0xff, i & 0xff);
		if (syn("198.51.100.7", 1000 + (i & 0x3fff)) != XDP_TX)
			refused++;
		if (syn(src, 1000) != XDP_DROP)
			leaked++;
	}
	cr_expect_eq(refused, 0);
	cr_expect_eq(leaked, 0);
}

struct flipper {
	volatile bool stop;
	unsigned long flips;
	unsigned long errors;
};

static void *flip_loop(void *arg)
{
	struct flipper *f = arg;

	struct aeth_svc_key k4 = dp_svc_key(VIP4, PORT, IPPROTO_TCP);
	struct aeth_svc v = svc4;

	while (!f->stop) {
		v.acl_slot = ACL_SLOT + (f->flips & 1);
		if (bpf_map_update_elem(h.svc, &k4, &v, BPF_EXIST) ||
		    dp_bump_generation(&h))
			f->errors++;
		f->flips++;
	}
	return NULL;
}

/* While the list is replaced back and forth from another thread, a source
 * in both lists is never refused and one in neither is never let in. */
Test(acl, common_prefix_never_refused_during_flips)
{
	static const char *const a[] = { "198.51.100.0/24", "203.0.113.0/24" };
	static const char *const b[] = { "198.51.100.0/24", "192.0.2.128/25" };
	struct flipper f = { 0 };
	pthread_t t;
	int i, refused = 0, leaked = 0;

	close(acl_fill(ACL_SLOT, a, N(a)));
	close(acl_fill(ACL_SLOT + 1, b, N(b)));
	acl_enable(ACL_SLOT);
	cr_assert_eq(pthread_create(&t, NULL, flip_loop, &f), 0);
	for (i = 0; i < 20000; i++) {
		if (syn("198.51.100.7", 1024 + i % 60000) != XDP_TX)
			refused++;
		if (syn("192.0.2.7", 1024 + i % 60000) != XDP_DROP)
			leaked++;
	}
	f.stop = true;
	pthread_join(t, NULL);
	cr_log_info("%lu flips during the run", f.flips);
	cr_expect_gt(f.flips, 100);
	cr_expect_eq(f.errors, 0);
	cr_expect_eq(refused, 0);
	cr_expect_eq(leaked, 0);
	cr_expect_eq(svc_drops(SVC4, AETH_R_NOT_AUTHORIZED), 20000);
}

Test(acl, ten_thousand_prefixes, .timeout = 120)
{
	char cidr[64];
	int fd, i, n = 0;

	fd = dp_acl_create(&h, ACL_SLOT);
	cr_assert_geq(fd, 0);
	/* odd hosts of two documentation /24s: 254 IPv4 prefixes */
	for (i = 1; i < 255; i += 2, n += 2) {
		snprintf(cidr, sizeof(cidr), "198.51.100.%d/32", i);
		acl_add(fd, cidr);
		snprintf(cidr, sizeof(cidr), "203.0.113.%d/32", i);
		acl_add(fd, cidr);
	}
	/* and /48s of 2001:db8::/32 up to 10,000 */
	for (i = 0; n < 10000; i++, n++) {
		snprintf(cidr, sizeof(cidr), "2001:db8:%x::/48", 0x1000 + i);
		acl_add(fd, cidr);
	}
	cr_assert_eq(dp_acl_compile(&h, ACL_SLOT, fd), 0);
	close(fd);
	acl_enable(ACL_SLOT);

	expect_in("198.51.100.1");
	expect_in("198.51.100.253");
	expect_in("203.0.113.7");
	expect_out("198.51.100.8");
	expect_out("203.0.113.254");
	expect_out("192.0.2.1");
	expect_in("2001:db8:1000::1");
	snprintf(cidr, sizeof(cidr), "2001:db8:%x::ffff", 0x1000 + i - 1);
	expect_in(cidr);
	snprintf(cidr, sizeof(cidr), "2001:db8:%x::1", 0x1000 + i);
	expect_out(cidr);
	expect_out("2001:db8:fff::1");
	expect_out("2001:db8:100::7");
}

/* ---- rate limits ------------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;

	/* the clock of the limits, bpf_ktime_get_coarse_ns(): read before and
	 * after, it brackets every reading the program made in between, so
	 * the bounds below hold without allowing for a tick */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

static void per_source(struct aeth_svc *s, uint64_t per_second, uint64_t burst)
{
	s->src_interval_ns = NSEC / per_second;
	s->src_tolerance_ns = (burst - 1) * s->src_interval_ns;
}

static void per_service(struct aeth_svc *s, uint64_t per_second,
			uint64_t burst)
{
	s->svc_interval_ns = NSEC / per_second;
	s->svc_tolerance_ns = (burst - 1) * s->svc_interval_ns;
}

static struct aeth_rl_src_state src_state(uint32_t svc_id, const char *prefix)
{
	struct aeth_rl_src_state st;
	struct aeth_rl_src_key k;

	memset(&k, 0, sizeof(k));
	k.svc_id = svc_id;
	k.family = dp_addr(prefix, &k.prefix);
	cr_assert_eq(bpf_map_lookup_elem(h.rl_src, &k, &st), 0,
		     "no limiter entry for %s", prefix);
	return st;
}

/* SYNs from src on fresh ports until one is refused; returns how many got
 * in (at most max). */
static int syns_until_refused(const char *src, uint16_t *port, int max)
{
	int n;

	for (n = 0; n < max; n++)
		if (syn(src, (*port)++) != XDP_TX)
			break;
	return n;
}

/* n SYNs from src on ports first, first + 1, ..., each with verdict want. */
static void syns_each(const char *src, uint16_t first, int n, int want)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(syn(src, (uint16_t)(first + i)), want,
			     "SYN %d of %d from %s", i + 1, n, src);
}

TestSuite(limit, .init = setup, .fini = teardown, .timeout = 120);

Test(limit, burst_then_refuse)
{
	struct aeth_rl_src_state st;
	int i, admitted = 0;

	per_source(&svc4, 1, 40);
	publish();
	for (i = 0; i < 50; i++)
		admitted += syn("198.51.100.7", 1000 + i) == XDP_TX;
	cr_expect_eq(admitted, 40);
	cr_expect_eq(svc_drops(SVC4, AETH_R_RATE_LIMITED), 10);
	cr_expect_eq(global_reason(AETH_R_RATE_LIMITED), 10);
	st = src_state(SVC4, "198.51.100.7");
	cr_expect_eq(st.admitted, 40);
	cr_expect_eq(st.dropped, 10);
	/* another source has its own bucket */
	cr_expect_eq(syn("198.51.100.8", 1000), XDP_TX);
}

/* A source refused over and over does not write its shared bucket entry on
 * every refusal: the entry's count is exact for the first 256, then moves
 * in steps of 64; the per-service count stays exact. */
Test(limit, refusals_do_not_write_the_shared_entry_each_time)
{
	struct aeth_rl_src_state st;

	cr_assert_eq(dp_pin_cpu(0), 0);
	per_source(&svc4, 1, 1);
	publish();
	cr_assert_eq(syn("198.51.100.7", 1000), XDP_TX);
	syns_each("198.51.100.7", 1001, 2000, XDP_DROP);
	cr_expect_eq(svc_drops(SVC4, AETH_R_RATE_LIMITED), 2000);
	st = src_state(SVC4, "198.51.100.7");
	cr_expect_eq(st.admitted, 1);
	/* 256 exact, then one step of 64 per 64 refusals on this CPU */
	cr_expect_lt(st.dropped, 2000, "one write per refusal: %llu",
		     (unsigned long long)st.dropped);
	cr_expect_geq(st.dropped, 2000 - 64 - 64, "%llu",
		      (unsigned long long)st.dropped);
}

/* A busy source's admissions do not write its shared entry one by one
 * either (a locked add beside the bucket's compare-and-swap): the count is
 * exact for the first 256, then moves by 64 each time the service's new
 * flows on this CPU reach a multiple of 64. */
Test(limit, admissions_past_the_exact_count_move_in_steps)
{
	struct aeth_rl_src_state st;

	cr_assert_eq(dp_pin_cpu(0), 0);
	per_source(&svc4, 1, 1000);
	publish();
	syns_each("198.51.100.7", 1000, 456, XDP_TX);
	st = src_state(SVC4, "198.51.100.7");
	/* 256 one by one, then 64 at the 320th, 384th and 448th */
	cr_expect_eq(st.admitted, 256 + 3 * 64, "admitted %llu",
		     (unsigned long long)st.admitted);
	cr_expect_eq(st.dropped, 0);
	/* the next step comes with the 512th */
	syns_each("198.51.100.7", 1456, 56, XDP_TX);
	cr_expect_eq(src_state(SVC4, "198.51.100.7").admitted, 512);
}

/* Past the exact count a CPU remembers a refused source (bpf/guard.h
 * lb_rl_refused) and refuses it without the shared entry, but only until
 * the bucket could conform again: the source is let in once it has
 * refilled, as the bucket alone would. */
Test(limit, remembered_refusal_ends_when_the_bucket_refills)
{
	int i;

	cr_assert_eq(dp_pin_cpu(0), 0);
	per_source(&svc4, 20, 1);	/* one per 50 ms */
	publish();
	cr_assert_eq(syn("198.51.100.7", 1000), XDP_TX);
	for (i = 0; i < 400; i++)
		cr_assert_eq(syn("198.51.100.7", 1001 + i), XDP_DROP);
	usleep(70 * 1000);	/* the interval and a tick of the clock */
	cr_expect_eq(syn("198.51.100.7", 2000), XDP_TX,
		     "remembered past the refill");
	cr_expect_eq(syn("198.51.100.7", 2001), XDP_DROP);
	cr_expect_eq(src_state(SVC4, "198.51.100.7").admitted, 2);
	/* another source never shared the memory */
	cr_expect_eq(syn("198.51.100.8", 1000), XDP_TX);
}

/* A remembered refusal holds the rate it was made under: raising the
 * burst lets the flooding source in on its next connection. */
Test(limit, remembered_refusal_follows_a_rate_change)
{
	int i;

	cr_assert_eq(dp_pin_cpu(0), 0);
	per_source(&svc4, 1, 1);
	publish();
	cr_assert_eq(syn("198.51.100.7", 1000), XDP_TX);
	for (i = 0; i < 400; i++)
		cr_assert_eq(syn("198.51.100.7", 1001 + i), XDP_DROP);
	per_source(&svc4, 1, 100);
	publish();
	cr_expect_eq(syn("198.51.100.7", 2000), XDP_TX,
		     "the old rate's refusal outlived the change");
}

Test(limit, source_prefix_groups_sources)
{
	uint16_t port = 1000;

	per_source(&svc4, 1, 3);
	svc4.src_prefix_v4 = 24;
	per_source(&svc6, 1, 3);
	svc6.src_prefix_v6 = 64;
	publish();

	cr_expect_eq(syn("198.51.100.1", port++), XDP_TX);
	cr_expect_eq(syn("198.51.100.2", port++), XDP_TX);
	cr_expect_eq(syn("198.51.100.3", port++), XDP_TX);
	cr_expect_eq(syn("198.51.100.4", port++), XDP_DROP);
	cr_expect_eq(syn("203.0.113.4", port++), XDP_TX);
	cr_expect_eq(src_state(SVC4, "198.51.100.0").admitted, 3);

	cr_expect_eq(syns_until_refused("2001:db8:100::1", &port, 10), 3);
	cr_expect_eq(syn("2001:db8:100::ffff:1", port++), XDP_DROP);
	cr_expect_eq(syn("2001:db8:100:1::1", port++), XDP_TX);
	cr_expect_eq(src_state(SVC6, "2001:db8:100::").dropped, 2);
}

Test(limit, prefix_lengths_off_byte_boundaries)
{
	uint16_t port = 1000;

	per_source(&svc4, 1, 1);
	svc4.src_prefix_v4 = 20;
	per_source(&svc6, 1, 1);
	svc6.src_prefix_v6 = 56;
	publish();

	/* 198.51.96.0/20 */
	cr_expect_eq(syn("198.51.100.7", port++), XDP_TX);
	cr_expect_eq(syn("198.51.111.255", port++), XDP_DROP);
	cr_expect_eq(syn("198.51.96.0", port++), XDP_DROP);
	cr_expect_eq(syn("198.51.112.0", port++), XDP_TX);
	cr_expect_eq(syn("198.51.95.255", port++), XDP_TX);
	cr_expect_eq(src_state(SVC4, "198.51.96.0").dropped, 2);

	/* 2001:db8:100::/56 */
	cr_expect_eq(syn("2001:db8:100:ff::1", port++), XDP_TX);
	cr_expect_eq(syn("2001:db8:100:1::1", port++), XDP_DROP);
	cr_expect_eq(syn("2001:db8:100:100::1", port++), XDP_TX);
	cr_expect_eq(src_state(SVC6, "2001:db8:100::").dropped, 1);
	cr_expect_eq(src_state(SVC6, "2001:db8:100:100::").admitted, 1);
}

Test(limit, refills_at_the_configured_rate)
{
	const uint64_t rate = 100, burst = 50;
	uint64_t t1, t2, interval = NSEC / rate;
	double expected;
	uint16_t port = 1000;
	int second;

	per_source(&svc4, rate, burst);
	publish();
	t1 = now_ns();
	cr_assert_eq(syns_until_refused("198.51.100.7", &port, 1000), burst);
	usleep(300 * 1000);
	t2 = now_ns();
	second = syns_until_refused("198.51.100.7", &port, 1000);

	/* GCRA: after the burst at t1, a wait to t2 earns (t2 - t1) / interval
	 * connections, never more than a burst */
	expected = (double)(t2 - t1) / interval;
	if (expected > burst)
		expected = burst;
	cr_log_info("waited %.1f ms, admitted %d, expected %.1f",
		    (t2 - t1) / 1e6, second, expected);
	cr_expect_geq(second, expected * 0.9 - 1);
	cr_expect_leq(second, expected * 1.1 + 1);
}

Test(limit, established_flows_pass_while_source_refused)
{
	int i, acked = 0;

	per_source(&svc4, 1, 2);
	publish();
	cr_assert_eq(syn("198.51.100.7", 1000), XDP_TX);
	cr_assert_eq(syn("198.51.100.7", 1001), XDP_TX);
	cr_assert_eq(syn("198.51.100.7", 1002), XDP_DROP);
	for (i = 0; i < 100; i++) {
		acked += tcp("198.51.100.7", 1000, PKT_TCP_ACK) == XDP_TX;
		acked += tcp("198.51.100.7", 1001,
			     PKT_TCP_ACK | PKT_TCP_PSH) == XDP_TX;
		cr_assert_eq(syn("198.51.100.7", 2000 + i), XDP_DROP);
	}
	cr_expect_eq(acked, 200);
	/* a SYN-ACK or a FIN is not a new connection either */
	cr_expect_eq(tcp("198.51.100.7", 1000, PKT_TCP_FIN | PKT_TCP_ACK),
		     XDP_TX);
	cr_expect_eq(src_state(SVC4, "198.51.100.7").dropped, 101);
	cr_expect_eq(svc_drops(SVC4, AETH_R_RATE_LIMITED), 101);
}

/* A SYN is always a new connection (include/aether/ct_rule.h): a client
 * retransmitting its SYN, or reusing a tuple, is charged again, though
 * the tuple has an entry; the connection itself keeps flowing. */
Test(limit, syn_retransmission_is_charged_again)
{
	struct aeth_rl_src_state st;

	per_source(&svc4, 1, 1);
	publish();
	cr_assert_eq(syn("198.51.100.7", 1000), XDP_TX);
	cr_expect_eq(aeth_ct_table_count(&h.ct_table), 1);
	cr_expect_eq(syn("198.51.100.7", 1000), XDP_DROP);
	cr_expect_eq(svc_drops(SVC4, AETH_R_RATE_LIMITED), 1);
	st = src_state(SVC4, "198.51.100.7");
	cr_expect_eq(st.admitted, 1);
	cr_expect_eq(st.dropped, 1);
	/* refused before Maglev: its entry is untouched */
	cr_expect_eq(aeth_ct_table_count(&h.ct_table), 1);
	cr_expect_eq(tcp("198.51.100.7", 1000, PKT_TCP_ACK), XDP_TX);
}

Test(limit, udp_charges_only_packets_without_connection_entry)
{
	int i;

	per_source(&svc4_udp, 1, 1);
	publish();
	cr_assert_eq(udp("198.51.100.7", 5000), XDP_TX);
	for (i = 0; i < 20; i++)
		cr_expect_eq(udp("198.51.100.7", 5000), XDP_TX);
	cr_expect_eq(udp("198.51.100.7", 5001), XDP_DROP);
	cr_expect_eq(svc_drops(SVC4_UDP, AETH_R_RATE_LIMITED), 1);
	cr_expect_eq(src_state(SVC4_UDP, "198.51.100.7").admitted, 1);
}

Test(limit, disabled_limits_never_refuse)
{
	int i, admitted = 0;

	for (i = 0; i < 500; i++)
		admitted += syn("198.51.100.7", 1000 + i) == XDP_TX;
	cr_expect_eq(admitted, 500);
	cr_expect_eq(map_count(h.rl_src, sizeof(struct aeth_rl_src_key)), 0);
}

static uint64_t svc_cap_dropped(uint32_t id)
{
	struct aeth_rl_svc_state st;

	cr_assert_eq(bpf_map_lookup_elem(h.rl_svc, &id, &st), 0);
	return st.dropped;
}

/* An abusive source is refused by its own limit without spending the
 * service's budget; once that is spent, new sources get no limiter entry. */
Test(limit, source_refusal_keeps_service_budget)
{
	uint16_t port = 1000;
	unsigned int entries;

	per_source(&svc4, 1, 2);
	per_service(&svc4, 1, 5);
	publish();
	cr_expect_eq(syns_until_refused("198.51.100.7", &port, 100), 2);
	for (int i = 0; i < 20; i++)
		cr_expect_eq(syn("198.51.100.7", port++), XDP_DROP);
	cr_expect_eq(svc_drops(SVC4, AETH_R_RATE_LIMITED), 21);
	cr_expect_eq(svc_drops(SVC4, AETH_R_SERVICE_RATE_LIMITED), 0);

	cr_expect_eq(syn("198.51.100.8", port++), XDP_TX);
	cr_expect_eq(syn("198.51.100.9", port++), XDP_TX);
	cr_expect_eq(syn("198.51.100.10", port++), XDP_TX);
	entries = map_count(h.rl_src, sizeof(struct aeth_rl_src_key));
	cr_expect_eq(entries, 4);
	cr_expect_eq(syn("198.51.100.11", port++), XDP_DROP);
	cr_expect_eq(syn("198.51.100.12", port++), XDP_DROP);
	cr_expect_eq(svc_drops(SVC4, AETH_R_SERVICE_RATE_LIMITED), 2);
	cr_expect_eq(svc_cap_dropped(SVC4), 2);
	cr_expect_eq(map_count(h.rl_src, sizeof(struct aeth_rl_src_key)),
		     entries);
}

/* 100,000 spoofed sources, each new to the per-source table (which holds
 * only DP_RL_ENTRIES and churns): the service cap still holds, and an
 * established session keeps flowing through the flood. */
Test(limit, service_cap_holds_under_spoofed_flood, .timeout = 300)
{
	const uint64_t svc_rate = 2000, svc_burst = 200;
	const int n = 100000;
	uint64_t t1, t2, dropped_rl;
	int i, admitted = 0, acked = 0;
	double allowed;
	char src[64];

	per_source(&svc6, 1, 2);
	per_service(&svc6, svc_rate, svc_burst);
	publish();
	cr_assert_eq(syn("2001:db8:100::7", 443), XDP_TX);

	t1 = now_ns();
	for (i = 0; i < n; i++) {
		/* a distinct /64 each time */
		snprintf(src, sizeof(src), "2001:db8:%x:%x::1",
			 0x200 + (i >> 16), i & 0xffff);
		admitted += syn(src, 1024 + (i & 0x7fff)) == XDP_TX;
		if (i % 1000 == 0)
			acked += tcp("2001:db8:100::7", 443, PKT_TCP_ACK) ==
				 XDP_TX;
	}
	t2 = now_ns();

	/* one token at start was taken by the session's SYN */
	allowed = svc_burst - 1 + (double)(t2 - t1) / (NSEC / svc_rate);
	cr_log_info("%d sources in %.0f ms: %d admitted, cap allows %.0f",
		    n, (t2 - t1) / 1e6, admitted, allowed);
	cr_expect_leq(admitted, allowed + 1);
	cr_expect_geq(admitted, allowed * 0.9);
	cr_expect_lt(admitted, n / 10);
	cr_expect_eq(acked, n / 1000);
	cr_expect_eq(svc_drops(SVC6, AETH_R_SERVICE_RATE_LIMITED),
		     (uint64_t)(n - admitted));
	cr_expect_eq(svc_drops(SVC6, AETH_R_RATE_LIMITED), 0);
	dropped_rl = svc_cap_dropped(SVC6);
	/* the shared counter: exact for each CPU's first 1,024 drops, then
	 * in steps of 64, so behind by less than 64 per CPU */
	cr_expect_leq(dropped_rl, (uint64_t)(n - admitted));
	cr_expect_geq(dropped_rl + 63 * (uint64_t)h.ncpus,
		      (uint64_t)(n - admitted));
	/* refused sources never took a limiter entry */
	cr_expect_leq(map_count(h.rl_src, sizeof(struct aeth_rl_src_key)),
		      (unsigned int)admitted + 1);
}

static void pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	cr_assert_eq(sched_setaffinity(0, sizeof(set), &set), 0);
	cr_assert_eq(sched_getcpu(), cpu);
}

/* Per-CPU values of svc_stats[id]: drops of reason on cpu. */
static uint64_t svc_drops_on_cpu(uint32_t id, int reason, int cpu)
{
	struct aeth_svc_stats *all = calloc(h.ncpus, sizeof(*all));
	uint64_t v;

	cr_assert_not_null(all);
	cr_assert_eq(bpf_map_lookup_elem(h.svc_stats, &id, all), 0);
	v = all[cpu].drops[reason];
	free(all);
	return v;
}

Test(limit, one_bucket_across_cpus)
{
	int i, admitted = 0;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		cr_skip_test("needs two CPUs");
	per_source(&svc4, 1, 40);
	publish();
	/* alternate CPUs packet by packet */
	for (i = 0; i < 60; i++) {
		pin_cpu(i & 1);
		admitted += syn("198.51.100.7", 1000 + i) == XDP_TX;
	}
	cr_expect_eq(admitted, 40);
	cr_expect_eq(src_state(SVC4, "198.51.100.7").dropped, 20);
	/* both CPUs really ran it: each counted its own refusals */
	cr_expect_eq(svc_drops_on_cpu(SVC4, AETH_R_RATE_LIMITED, 0), 10);
	cr_expect_eq(svc_drops_on_cpu(SVC4, AETH_R_RATE_LIMITED, 1), 10);
}

static pthread_barrier_t start_line;

/* One CPU's share of a contended burst: `repeat` copies of one SYN in a
 * single BPF_PROG_TEST_RUN, so the program runs back to back in the kernel
 * while the other CPU does the same. */
struct hammer {
	int cpu;
	const uint8_t *frame;
	size_t len;
	uint32_t repeat;
	int err;
};

static void *hammer_loop(void *arg)
{
	struct hammer *hm = arg;
	struct xdp_md ctx = { .data_end = (__u32)hm->len,
			      .ingress_ifindex = (__u32)net.if0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		    .data_in = hm->frame,
		    .data_size_in = (__u32)hm->len,
		    .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx),
		    .repeat = hm->repeat);
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(hm->cpu, &set);
	hm->err = sched_setaffinity(0, sizeof(set), &set) ? errno : 0;
	pthread_barrier_wait(&start_line);
	if (!hm->err && bpf_prog_test_run_opts(h.prog_fd, &opts))
		hm->err = errno;
	return NULL;
}

/* repeat copies of the packet s on CPU 0 and on CPU 1 at once. */
static void hammer_both(const struct pkt_spec *s, uint32_t repeat)
{
	struct hammer hm[2] = { { .cpu = 0 }, { .cpu = 1 } };
	uint8_t frame[256];
	pthread_t t[2];
	size_t len;
	int i;

	len = pkt_build(s, frame, sizeof(frame));
	pthread_barrier_init(&start_line, NULL, 2);
	for (i = 0; i < 2; i++) {
		hm[i].frame = frame;
		hm[i].len = len;
		hm[i].repeat = repeat;
		cr_assert_eq(pthread_create(&t[i], NULL, hammer_loop, &hm[i]), 0);
	}
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start_line);
	cr_assert_eq(hm[0].err, 0, "%s", strerror(hm[0].err));
	cr_assert_eq(hm[1].err, 0, "%s", strerror(hm[1].err));
}

/* A node whose every copy of one SYN stays the same untouched new
 * connection: without node addresses an admitted SYN is dropped (no_route)
 * before it is encapsulated, and with an insert budget of one per CPU,
 * spent here first by another flow, it is never recorded. */
static void node_for_copies(void)
{
	struct aeth_global_stats g;
	struct aeth_node node;
	int i;

	dp_node_default(&node);
	node.flags = 0;
	node.ct_insert_rate = 1;
	cr_assert_eq(dp_set_node(&h, &node), 0);
	publish();
	for (i = 0; i < 2; i++) {
		pin_cpu(i);
		syn("198.51.100.99", 1000 + i);
	}
	cr_assert_eq(dp_global(&h, &g), 0);
	cr_assert_eq(g.events[AETH_EV_CT_INSERT], 2);
}

/* Both CPUs at once on one source, 200,000 SYNs each: the compare-and-swap
 * admits exactly the burst between them (the per-CPU counts of new flows
 * and of refusals, exact, say so). */
Test(limit, concurrent_cpus_share_the_burst)
{
	const uint32_t repeat = 200000, burst = 100000;
	struct pkt_spec s = pkt_spec_tcp4("198.51.100.7", 1000, VIP4, PORT);
	struct aeth_rl_src_state st;
	struct aeth_svc_stats ss;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		cr_skip_test("needs two CPUs");
	per_source(&svc4, 1, 2);
	svc4.src_interval_ns = 1000 * NSEC;	/* no refill during the run */
	svc4.src_tolerance_ns = (burst - 1) * svc4.src_interval_ns;
	node_for_copies();

	s.tcp_flags = PKT_TCP_SYN;
	hammer_both(&s, repeat);

	st = src_state(SVC4, "198.51.100.7");
	cr_log_info("admitted %llu, dropped %llu",
		    (unsigned long long)st.admitted,
		    (unsigned long long)st.dropped);
	cr_assert_eq(dp_svc_stats(&h, SVC4, &ss), 0);
	/* the burst, and the two SYNs node_for_copies spent the budget with */
	cr_expect_eq(ss.new_flows, burst + 2, "new flows %llu",
		     (unsigned long long)ss.new_flows);
	/* the shared counts move in steps of 64 per CPU after 256, paced by
	 * each CPU's own count (which includes its exact-phase refusals or
	 * admissions), so each is within one step per CPU of the truth */
	cr_expect_leq(st.admitted, burst + 2 * 64);
	cr_expect_geq(st.admitted, burst - 2 * 64);
	cr_expect_leq(st.dropped, 2 * repeat - burst + 2 * 64);
	cr_expect_geq(st.dropped, 2 * repeat - burst - 2 * 64);
	cr_expect_eq(svc_drops(SVC4, AETH_R_RATE_LIMITED), 2 * repeat - burst);
	/* both CPUs took part in the refusals */
	cr_expect_gt(svc_drops_on_cpu(SVC4, AETH_R_RATE_LIMITED, 0), 0);
	cr_expect_gt(svc_drops_on_cpu(SVC4, AETH_R_RATE_LIMITED, 1), 0);
}

/* Both CPUs at once on one service cap, 200,000 SYNs each: each CPU takes
 * its tokens a lease at a time (bpf/guard.h), and between them they never
 * admit more than the burst, nor much less: a lease's unspent tokens are
 * lost only at a tick's end, and only while more than half of the burst
 * remains. */
Test(limit, concurrent_cpus_share_a_service_cap)
{
	const uint32_t repeat = 200000, burst = 100000;
	struct pkt_spec s = pkt_spec_tcp4("198.51.100.7", 1000, VIP4, PORT);
	struct aeth_rl_lease *lease = calloc(h.ncpus, sizeof(*lease));
	uint64_t t1, t2, admitted, ticks, lost_at_most;
	uint32_t id;
	int c;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		cr_skip_test("needs two CPUs");
	cr_assert_not_null(lease);
	node_for_copies();
	svc4.svc_interval_ns = 1000 * NSEC;	/* no refill during the run */
	svc4.svc_tolerance_ns = (burst - 1) * svc4.svc_interval_ns;
	publish();

	s.tcp_flags = PKT_TCP_SYN;
	t1 = now_ns();
	hammer_both(&s, repeat);
	t2 = now_ns();

	admitted = 2 * repeat - svc_drops(SVC4, AETH_R_SERVICE_RATE_LIMITED);
	/* at most one tick a millisecond (HZ <= 1000), and two CPUs losing
	 * at most AETH_RL_LEASE_MAX - 1 each at a tick's end */
	ticks = (t2 - t1) / 1000000 + 2;
	lost_at_most = 2 * (AETH_RL_LEASE_MAX - 1) * ticks;
	cr_log_info("admitted %llu of a burst of %u in %.1f ms",
		    (unsigned long long)admitted, burst, (t2 - t1) / 1e6);
	cr_expect_leq(admitted, burst);
	cr_expect_geq(admitted + lost_at_most, burst);
	cr_expect_eq(svc_drops(SVC4, AETH_R_RATE_LIMITED), 0);
	/* both CPUs refused, and both took leases of more than one token */
	cr_expect_gt(svc_drops_on_cpu(SVC4, AETH_R_SERVICE_RATE_LIMITED, 0), 0);
	cr_expect_gt(svc_drops_on_cpu(SVC4, AETH_R_SERVICE_RATE_LIMITED, 1), 0);
	id = SVC4;
	cr_assert_eq(bpf_map_lookup_elem(h.rl_svc_lease, &id, lease), 0);
	for (c = 0; c < 2; c++) {
		cr_expect_eq(lease[c].interval_ns, svc4.svc_interval_ns);
		cr_expect_gt(lease[c].size, 1, "CPU %d took no lease", c);
	}
	free(lease);
}
