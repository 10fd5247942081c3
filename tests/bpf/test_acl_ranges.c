/* The compiled IPv4 form of authorized-network lists (aeth_acl_rng): the
 * program answers with it exactly as with the trie, for random lists and
 * their edge addresses; a full array leaves the trie answering. Through the
 * real program with BPF_PROG_TEST_RUN. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "harness.h"
#include "pkt.h"

#define VIP4 "203.0.113.10"
#define PORT 6443
#define SVC4 1
#define BE4 1
#define TABLE 251
#define SLOT 10
#define LB_NODE "192.0.2.99"

static struct dp_h h;
static struct dp_net net;
static struct aeth_svc svc4;

static void setup(void)
{
	struct aeth_backend be = dp_backend("192.0.2.21", AETH_BE_F_IN_USE,
					    SVC4);
	struct aeth_svc_key k = dp_svc_key(VIP4, PORT, IPPROTO_TCP);
	uint32_t table[TABLE], id = BE4;
	struct aeth_node node;

	cr_assert_eq(dp_netns_setup(&net), 0);
	cr_assert_eq(dp_open(&h), 0);
	dp_node_default(&node);
	cr_assert_eq(dp_set_node(&h, &node), 0);
	cr_assert_eq(dp_set_backend(&h, BE4, &be), 0);
	dp_table_round_robin(table, TABLE, &id, 1);
	cr_assert_eq(dp_set_maglev(&h, 2 * SVC4, table, TABLE), 0);
	svc4 = dp_svc(SVC4, 2 * SVC4, TABLE);
	svc4.flags |= AETH_SVC_F_ACL;
	svc4.acl_slot = SLOT;
	cr_assert_eq(dp_add_service(&h, &k, &svc4), 0);
	/* tunnels from this LB node: their inner source is judged again */
	cr_assert_eq(dp_decap_add(&h, LB_NODE, 32), 0);
}

static void teardown(void)
{
	dp_close(&h);
}

/* xorshift32: deterministic lists, reproducible failures */
static uint32_t rnd_state = 2463534242u;

static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

static uint32_t mask_of(uint32_t len)
{
	return len ? ~0u << (32 - len) : 0;
}

/* addr (host order) / len into trie fd, listed as family: an IPv4 prefix
 * as the agent keys it, or an IPv6 prefix len + 96 inside ::ffff:0:0/96
 * (written ::ffff:a.b.c.d/len+96 in a document). */
static void put_mapped(int fd, uint32_t addr, uint32_t len, uint32_t family)
{
	struct aeth_acl_key k;
	uint32_t a = htonl(addr & mask_of(len));

	memset(&k, 0, sizeof(k));
	k.addr[10] = k.addr[11] = 0xff;
	memcpy(k.addr + 12, &a, 4);
	k.prefixlen = len + 96;
	cr_assert_eq(bpf_map_update_elem(fd, &k, &family, BPF_ANY), 0);
}

/* An IPv6 prefix of the first len bits of text. */
static void put_v6(int fd, const char *text, uint32_t len)
{
	uint32_t family = AETH_AF_INET6;
	struct aeth_acl_key k;

	memset(&k, 0, sizeof(k));
	cr_assert_eq(inet_pton(AF_INET6, text, k.addr), 1);
	k.prefixlen = len;
	cr_assert_eq(bpf_map_update_elem(fd, &k, &family, BPF_ANY), 0);
}

/* The SYN from src (host order) to the service; text: src written out. */
static struct pkt_spec syn_spec(uint32_t src, char text[INET_ADDRSTRLEN])
{
	struct in_addr in = { .s_addr = htonl(src) };
	struct pkt_spec s;

	inet_ntop(AF_INET, &in, text, INET_ADDRSTRLEN);
	s = pkt_spec_tcp4(text, 40000, VIP4, PORT);
	s.tcp_flags = PKT_TCP_SYN;
	return s;
}

/* The program's verdict for the frame of s. */
static uint32_t verdict_of(const struct pkt_spec *s)
{
	uint8_t pkt[512], out[512];
	size_t len, out_len = sizeof(out);
	uint32_t verdict;

	len = pkt_build(s, pkt, sizeof(pkt));
	cr_assert_gt(len, 0);
	cr_assert_eq(dp_run(&h, pkt, len, out, &out_len, net.if0, &verdict), 0);
	return verdict;
}

/* One SYN from src (host order); its verdict. */
static uint32_t syn_from(uint32_t src)
{
	char text[INET_ADDRSTRLEN];
	struct pkt_spec s = syn_spec(src, text);
	uint32_t verdict = verdict_of(&s);

	cr_assert(verdict == XDP_TX || verdict == XDP_DROP, "%s: verdict %u",
		  text, verdict);
	return verdict;
}

/* The same SYN inside a tunnel from the LB node to this node: XDP_TX when
 * it was decapsulated (its inner source authorized), else XDP_DROP. The
 * backend side judges it with the whole list (guard_source_authorized),
 * not the directory's shortcut the VIP's path takes first. */
static uint32_t tunnel_syn_from(uint32_t src)
{
	char text[INET_ADDRSTRLEN];
	struct pkt_spec inner = syn_spec(src, text), outer;
	uint8_t l3[256];
	size_t n = pkt_build_l3(&inner, l3, sizeof(l3));
	uint32_t verdict;

	cr_assert_gt(n, 0);
	outer = pkt_spec_tcp4(LB_NODE, 0, DP_NODE_V4, 0);
	outer.proto = 4;	/* IPIP */
	outer.payload = l3;
	outer.payload_len = n;
	verdict = verdict_of(&outer);
	cr_assert(verdict == XDP_PASS || verdict == XDP_DROP,
		  "tunnel from %s: verdict %u", text, verdict);
	return verdict == XDP_PASS ? XDP_TX : XDP_DROP;
}

struct probes {
	uint32_t *addr;
	size_t n, cap;
};

static void probe(struct probes *p, uint64_t addr)
{
	if (addr > 0xffffffffull)
		return;
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 1024;
		p->addr = realloc(p->addr, p->cap * sizeof(*p->addr));
		cr_assert_not_null(p->addr);
	}
	p->addr[p->n++] = (uint32_t)addr;
}

/* A prefix's first and last address and their neighbours. */
static void probe_edges(struct probes *p, uint32_t addr, uint32_t len)
{
	uint64_t first = addr & mask_of(len), last = first | ~mask_of(len);

	probe(p, first);
	probe(p, last);
	if (first)
		probe(p, first - 1);
	probe(p, last + 1);
}

/* n random prefixes into a fresh trie in SLOT (none compiled yet), their
 * edges into p: mostly IPv4 of every length, some nested in the previous
 * one, some repeated, a few IPv6 entries that cover IPv4 sources (::/0,
 * ::ffff:0:0/96, mapped prefixes listed as IPv6) and some that cover none. */
static int random_list(struct probes *p, int n)
{
	uint32_t prev = rnd(), prev_len = 8;
	int fd = dp_acl_create(&h, SLOT), i;

	cr_assert_geq(fd, 0);
	for (i = 0; i < n; i++) {
		uint32_t kind = rnd() % 16, a = rnd(), len = rnd() % 33;

		if (kind < 4 && prev_len < 32) {	/* nested */
			len = prev_len + 1 + rnd() % (32 - prev_len);
			a = (prev & mask_of(prev_len)) |
			    (a & ~mask_of(prev_len));
		} else if (kind == 4) {			/* repeated */
			a = prev;
			len = prev_len;
		} else if (kind == 5) {		/* mapped, listed as IPv6 */
			put_mapped(fd, a, len, AETH_AF_INET6);
			probe_edges(p, a, len);
			continue;
		} else if (kind == 6) {
			put_v6(fd, (rnd() & 1) ? "::" : "::ffff:0:0",
			       (rnd() & 1) ? 96 : rnd() % 96);
			continue;
		} else if (kind == 7) {
			put_v6(fd, "2001:db8::", 32 + rnd() % 97);
			continue;
		} else if (kind == 8) {
			len = 16 + rnd() % 17;
		}
		put_mapped(fd, a, len, AETH_AF_INET);
		probe_edges(p, a, len);
		prev = a;
		prev_len = len;
	}
	return fd;
}

/* The program's verdicts for p, with the compiled form of SLOT and with
 * the trie alone, agree on every address, for a SYN to the VIP and for
 * the same SYN in a tunnel (XDP_TX there: decapsulated). Returns how many
 * were admitted. */
static size_t agree_everywhere(const struct probes *p, int fd)
{
	uint32_t *with = malloc(2 * p->n * sizeof(*with));
	size_t i, admitted = 0;

	cr_assert_not_null(with);
	cr_assert_eq(dp_acl_compile(&h, SLOT, fd), 0);
	for (i = 0; i < p->n; i++) {
		with[2 * i] = syn_from(p->addr[i]);
		with[2 * i + 1] = tunnel_syn_from(p->addr[i]);
	}
	cr_assert_eq(dp_acl_uncompile(&h, SLOT), 0);
	for (i = 0; i < p->n; i++) {
		uint32_t trie = syn_from(p->addr[i]);

		cr_assert_eq(with[2 * i], trie, "%08x: compiled %u, trie %u",
			     p->addr[i], with[2 * i], trie);
		cr_assert_eq(with[2 * i + 1], trie,
			     "%08x in a tunnel: compiled %u, trie %u",
			     p->addr[i], with[2 * i + 1], trie);
		admitted += trie == XDP_TX;
	}
	free(with);
	return admitted;
}

TestSuite(acl_ranges, .init = setup, .fini = teardown, .timeout = 120);

Test(acl_ranges, compiled_form_agrees_with_trie_on_random_lists)
{
	static const int sizes[] = { 1, 3, 10, 40, 150, 1000 };
	size_t admitted = 0, total = 0;

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct probes p = { 0 };
		int fd, i;

		fd = random_list(&p, sizes[s]);
		probe(&p, 0);
		probe(&p, 0xffffffffu);
		for (i = 0; i < 200; i++)
			probe(&p, rnd());
		admitted += agree_everywhere(&p, fd);
		total += p.n;
		close(fd);
		free(p.addr);
	}
	cr_log_info("%zu of %zu addresses admitted", admitted, total);
	/* both verdicts were exercised */
	cr_expect_gt(admitted, 0);
	cr_expect_lt(admitted, total);
}

/* A long list is searched through its directory (AETH_ACL_RNG_F_DIR):
 * the program's verdicts agree with the trie's at both edges of every
 * block of the directory, as well as at every prefix's edges. */
Test(acl_ranges, directory_blocks_agree_with_trie)
{
	struct probes p = { 0 };
	struct aeth_acl_rng_at at;
	uint32_t slot = SLOT;
	uint64_t b, lo, hi;
	size_t admitted;
	int fd;

	fd = random_list(&p, 1000);
	cr_assert_eq(dp_acl_compile(&h, SLOT, fd), 0);
	cr_assert_eq(bpf_map_lookup_elem(h.acl_rngidx, &slot, &at), 0);
	cr_assert(at.flags & AETH_ACL_RNG_F_DIR, "flags %#x", at.flags);
	cr_assert_geq(at.dir_bits, 8);
	for (b = 0; b < (1ull << at.dir_bits); b++) {
		lo = b << (32 - at.dir_bits);
		hi = lo | ((1ull << (32 - at.dir_bits)) - 1);
		probe(&p, lo);
		probe(&p, hi);
	}
	admitted = agree_everywhere(&p, fd);
	cr_log_info("%zu of %zu addresses admitted", admitted, p.n);
	cr_expect_gt(admitted, 0);
	cr_expect_lt(admitted, p.n);
	close(fd);
	free(p.addr);
}

/* Every IPv4 source whose longest match is an IPv6-listed entry, /0 and
 * /32 at the edges of the address space. */
Test(acl_ranges, edge_lists_agree_with_trie)
{
	struct probes p = { 0 };
	int fd = dp_acl_create(&h, SLOT);

	cr_assert_geq(fd, 0);
	put_v6(fd, "::", 0);
	put_mapped(fd, 0x0a000000, 8, AETH_AF_INET);
	put_mapped(fd, 0x0a010000, 16, AETH_AF_INET6);	/* refused inside */
	put_mapped(fd, 0x0a010100, 24, AETH_AF_INET);	/* admitted again */
	put_mapped(fd, 0, 32, AETH_AF_INET);
	put_mapped(fd, 0xffffffffu, 32, AETH_AF_INET);
	put_mapped(fd, 0x80000000u, 1, AETH_AF_INET6);
	put_mapped(fd, 0xc0000000u, 2, AETH_AF_INET);
	probe_edges(&p, 0x0a000000, 8);
	probe_edges(&p, 0x0a010000, 16);
	probe_edges(&p, 0x0a010100, 24);
	probe_edges(&p, 0, 32);
	probe_edges(&p, 0xffffffffu, 32);
	probe_edges(&p, 0x80000000u, 1);
	probe_edges(&p, 0xc0000000u, 2);
	probe(&p, 0x0a010001);
	cr_expect_gt(agree_everywhere(&p, fd), 0);
	/* an IPv4 /0 listed after: the whole space admitted but the /16 */
	put_mapped(fd, 0, 0, AETH_AF_INET);
	probe(&p, 0x7f000001);
	cr_expect_gt(agree_everywhere(&p, fd), 0);
	/* and the same key listed as IPv6 replaces it, as in the trie */
	put_mapped(fd, 0, 0, AETH_AF_INET6);
	agree_everywhere(&p, fd);
	close(fd);
	free(p.addr);
}

/* Sources just outside each of many disjoint prefixes are dropped, the
 * first and last address of each let in. */
Test(acl_ranges, source_just_outside_each_prefix_is_dropped)
{
	struct aeth_svc_stats st;
	uint32_t base[300], len[300], i, n = 300;
	uint64_t drops = 0;
	int fd = dp_acl_create(&h, SLOT);

	cr_assert_geq(fd, 0);
	for (i = 0; i < n; i++) {	/* one prefix per /20, gaps between */
		len[i] = 22 + rnd() % 11;
		base[i] = (0x0b000000u + (i << 12) + 0x400) & mask_of(len[i]);
		put_mapped(fd, base[i], len[i], AETH_AF_INET);
	}
	cr_assert_eq(dp_acl_compile(&h, SLOT, fd), 0);
	for (i = 0; i < n; i++) {
		uint32_t last = base[i] | ~mask_of(len[i]);

		cr_expect_eq(syn_from(base[i] - 1), XDP_DROP, "%08x", base[i] - 1);
		cr_expect_eq(syn_from(last + 1), XDP_DROP, "%08x", last + 1);
		cr_expect_eq(syn_from(base[i]), XDP_TX, "%08x", base[i]);
		cr_expect_eq(syn_from(last), XDP_TX, "%08x", last);
		drops += 2;
	}
	cr_assert_eq(dp_svc_stats(&h, SVC4, &st), 0);
	cr_expect_eq(st.drops[AETH_R_NOT_AUTHORIZED], drops);
	close(fd);
}

/* The data path reads the compiled form for IPv4 (not the trie) and the
 * trie for IPv6: a slot whose trie no longer holds the IPv4 prefix still
 * admits it while the compiled form does. */
Test(acl_ranges, ipv4_answered_by_compiled_form)
{
	int fd = dp_acl_create(&h, SLOT);
	struct aeth_acl_key k;

	cr_assert_geq(fd, 0);
	put_mapped(fd, 0xc6336400, 24, AETH_AF_INET);	/* 198.51.100.0/24 */
	put_v6(fd, "2001:db8:100::", 48);
	cr_assert_eq(dp_acl_compile(&h, SLOT, fd), 0);
	memset(&k, 0, sizeof(k));
	k.addr[10] = k.addr[11] = 0xff;
	k.addr[12] = 198, k.addr[13] = 51, k.addr[14] = 100;
	k.prefixlen = 96 + 24;
	cr_assert_eq(bpf_map_delete_elem(fd, &k), 0);
	cr_assert_eq(dp_bump_generation(&h), 0);
	cr_expect_eq(syn_from(0xc6336407), XDP_TX);
	cr_expect_eq(syn_from(0xc6336507), XDP_DROP);
	cr_assert_eq(dp_acl_uncompile(&h, SLOT), 0);
	cr_expect_eq(syn_from(0xc6336407), XDP_DROP);	/* the trie's answer */
	close(fd);
}

/* With no room left in aeth_acl_rng the slot keeps no compiled form and
 * the trie answers, right; a list that fits beside it is compiled. */
Test(acl_ranges, full_array_falls_back_to_trie)
{
	struct aeth_acl_rng_at at;
	struct aeth_svc_key k;
	uint32_t slot = SLOT, i;
	int fd, small;

	h.rng_cap = 8;
	small = dp_acl_create(&h, SLOT + 1);
	cr_assert_geq(small, 0);
	put_mapped(small, 0xc6336400, 24, AETH_AF_INET);
	put_mapped(small, 0xc6336600, 24, AETH_AF_INET);
	cr_assert_eq(dp_acl_compile(&h, SLOT + 1, small), 0);
	slot = SLOT + 1;
	cr_assert_eq(bpf_map_lookup_elem(h.acl_rngidx, &slot, &at), 0);
	cr_expect_eq(at.flags, AETH_ACL_RNG_F_COMPILED);
	cr_expect_eq(at.count, 2);	/* not adjacent: two intervals */

	/* ten disjoint /24s: ten intervals, six places left */
	fd = dp_acl_create(&h, SLOT);
	cr_assert_geq(fd, 0);
	for (i = 0; i < 10; i++)
		put_mapped(fd, 0x0a000000u + (i << 16), 24, AETH_AF_INET);
	cr_assert_eq(dp_acl_compile(&h, SLOT, fd), -ENOSPC);
	slot = SLOT;
	cr_assert_eq(bpf_map_lookup_elem(h.acl_rngidx, &slot, &at), 0);
	cr_expect_eq(at.flags & AETH_ACL_RNG_F_COMPILED, 0);
	for (i = 0; i < 10; i++) {
		uint32_t first = 0x0a000000u + (i << 16);

		cr_expect_eq(syn_from(first), XDP_TX);
		cr_expect_eq(syn_from(first + 255), XDP_TX);
		cr_expect_eq(syn_from(first - 1), XDP_DROP);
		cr_expect_eq(syn_from(first + 256), XDP_DROP);
	}
	/* the small list, compiled, answers for its slot */
	svc4.acl_slot = SLOT + 1;
	k = dp_svc_key(VIP4, PORT, IPPROTO_TCP);
	cr_assert_eq(bpf_map_update_elem(h.svc, &k, &svc4, BPF_EXIST), 0);
	cr_assert_eq(dp_bump_generation(&h), 0);
	cr_expect_eq(syn_from(0xc6336407), XDP_TX);	/* 198.51.100.7 */
	cr_expect_eq(syn_from(0xc6336607), XDP_TX);	/* 198.51.102.7 */
	cr_expect_eq(syn_from(0xc6336507), XDP_DROP);
	cr_expect_eq(syn_from(0x0a000007), XDP_DROP);
	close(small);
	close(fd);
}
