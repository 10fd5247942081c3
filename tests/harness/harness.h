/* Test harness for the XDP data path: load the real program unpinned, fill
 * its maps, run packets through BPF_PROG_TEST_RUN, read counters.
 *
 * How to use it (every function returns 0 or a negative errno):
 *
 *   struct dp_h h;
 *   dp_open(&h);                   skeleton opened, every map's pin path set
 *                                  to NULL (bpf_map__set_pin_path(map, NULL))
 *                                  so nothing under /sys/fs/bpf is touched;
 *                                  aeth_ct / aeth_rl_src shrunk to
 *                                  DP_CT_ENTRIES / DP_RL_ENTRIES for speed
 *   dp_set_node(&h, &node);        aeth_node[0]; dp_node_default() gives
 *                                  DP_NODE_V4 / DP_NODE_V6, mtu 1500, no
 *                                  insert cap, DP_SEED, and the defaults of
 *                                  udp_timeout_s and icmp_rate
 *   dp_add_service(&h, &key, &svc) aeth_svc[key] = svc and the VIP counted
 *                                  in aeth_vip (dp_svc_key() builds the key),
 *                                  then aeth_meta.generation and aeth_stamp
 *                                  bumped as the agent does after an apply
 *                                  (the program's per-CPU memories of
 *                                  addresses, service entries and verdicts
 *                                  hold under one stamp;
 *                                  dp_bump_generation() alone for tests
 *                                  that write the tables directly,
 *                                  dp_bump_stamp() for the stamp alone, as
 *                                  a refresh after a health change does)
 *   dp_vip_filter_fill(&h)         the VIP filter (the program's global
 *                                  lb_vip_filter) as the agent writes it
 *                                  for the VIPs in aeth_vip (all clear
 *                                  otherwise: no packet skips the lookup)
 *   dp_set_backend(&h, id, &be)    aeth_backend[id] (dp_backend() builds one)
 *   dp_set_maglev(&h, slot, table, size)
 *                                  creates a fresh BPF_F_INNER_MAP array of
 *                                  `size` u32 backend ids and stores it in
 *                                  aeth_maglev[slot] (one atomic swap)
 *   dp_acl_create(&h, slot)        creates an LPM trie (BPF_F_NO_PREALLOC,
 *                                  key struct aeth_acl_key) and stores it in
 *                                  aeth_acl[slot]; returns its fd (>= 0;
 *                                  the outer map holds its own reference,
 *                                  close the fd once the CIDRs are in)
 *   dp_acl_add(fd, &ip, prefixlen) adds a CIDR; IPv4 goes in as
 *                                  ::ffff:a.b.c.d with prefixlen + 96
 *   dp_acl_compile(&h, slot, fd)   the compiled IPv4 form of the trie fd
 *                                  into aeth_acl_rng / aeth_acl_rngidx[slot],
 *                                  as the agent writes it (its builder and
 *                                  placement, agent/lib/acl_compile.c),
 *                                  then aeth_meta.generation bumped;
 *                                  without it IPv4 sources use the trie.
 *                                  A test that writes a live list, slot or
 *                                  aeth_svc entry directly calls
 *                                  dp_bump_generation() after it, as the
 *                                  agent writes aeth_meta after every
 *                                  write of the tables: the program's
 *                                  per-CPU memories are stamped with it
 *   dp_decap_add(&h, ip, prefixlen) adds a decap.sources CIDR
 *   dp_run(&h, in, len, out, &out_len, ifindex, &verdict)
 *                                  BPF_PROG_TEST_RUN once with
 *                                  ctx_in.ingress_ifindex = ifindex (0: none;
 *                                  a non-zero ifindex must exist in the
 *                                  caller's network namespace)
 *   dp_global(&h, &g), dp_svc_stats(&h, id, &s), dp_be_stats(&h, id, &b)
 *                                  counters summed over every CPU
 *   dp_close(&h)
 *
 * With ifindex 0 the kernel runs the program as received on loopback, and
 * forwarded packets meet the routing table of whatever namespace the test
 * runs in: verdicts before bpf_fib_lookup (pass-through, guard and parsing
 * drops) need no namespace, anything forwarded does (dp_netns_setup()).
 * dp_expect_encap() builds the frame the program should emit for a
 * forwarded packet. The program keeps a per-CPU next-hop cache (25 jiffies,
 * 100 ms here), so a test that changes neighbours or routes after
 * forwarding to a backend must wait that long or use a fresh dp_open().
 *
 * bpf_fib_lookup needs a deterministic routing table: dp_netns_setup() moves
 * the calling process into a fresh network namespace (unshare(CLONE_NEWNET),
 * removed by the kernel when the process exits, so nothing leaks on
 * failure) with two veth pairs, addresses and permanent neighbours; see
 * struct dp_net for what it creates. Criterion runs each test in its own
 * process, so call it from the test's init.
 */
#ifndef AETHER_TESTS_HARNESS_H
#define AETHER_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/bpf.h>	/* XDP_PASS and the other verdicts */

#include "aether/abi.h"
#include "ct_table.h"

#define DP_CT_ENTRIES 16384
#define DP_RL_ENTRIES 16384

/* Node addresses used by dp_node_default(). */
#define DP_NODE_V4 "192.0.2.11"
#define DP_NODE_V6 "2001:db8::11"
/* The seed used by dp_node_default() (as four host-order u32 words). */
#define DP_SEED { 0x1e0a3c5fu, 0x442c7d9bu, 0xd4c3b2a1u, 0x1807f6e5u }

struct dp_h {
	void *skel;		/* struct aether_lb (skeleton), opaque here */
	int prog_fd;
	int meta, node, vip, svc, svcinfo, backend, maglev, acl, ct, ct_bloom,
	    ct_budget,
	    rl_src, rl_svc, svc_stats, be_stats, global, decap, pcpu,
	    tx_ports, stamp;
	int rl_svc_lease;	/* the program's own (bpf/guard.h), unpinned */
	int ncpus;		/* possible CPUs: stride of per-CPU values */
	int acl_rng, acl_rngidx;
	/* aeth_acl_rng and aeth_acl_rngidx mapped (BPF_F_MMAPABLE) */
	__u64 *rng;
	struct aeth_acl_rng_at *rngidx;
	/* intervals dp_acl_compile() may use (AETH_ACL_RNG_CAP; a test of a
	 * full array lowers it) */
	__u32 rng_cap;
	struct aeth_ct_table ct_table;	/* aeth_ct's size and seed, its
					 * filter mapped */
};

int dp_open(struct dp_h *h);
/* dp_open() with other sizes for aeth_ct and aeth_rl_src; 0 keeps the size
 * bpf/maps.h declares (the production default). */
int dp_open_sized(struct dp_h *h, __u32 ct_entries, __u32 rl_entries);
void dp_close(struct dp_h *h);

/* Addresses: parse text ("192.0.2.1" or "2001:db8::1") into an aeth_addr;
 * returns the AETH_AF_* family, aborts the test process on a typo. */
int dp_addr(const char *text, union aeth_addr *out);

void dp_node_default(struct aeth_node *node);
int dp_set_node(struct dp_h *h, const struct aeth_node *node);

/* Key for (vip, port in host order, IPPROTO_TCP/UDP), padding zeroed. */
struct aeth_svc_key dp_svc_key(const char *vip, uint16_t port, uint8_t proto);
/* A service with id, maglev_slot and table_size set, everything else 0
 * (no ACL, no limits). */
struct aeth_svc dp_svc(uint32_t id, uint32_t maglev_slot, uint32_t table_size);
int dp_add_service(struct dp_h *h, const struct aeth_svc_key *key,
		   const struct aeth_svc *svc);
int dp_bump_generation(struct dp_h *h);
int dp_bump_stamp(struct dp_h *h);
/* The VIP filter (aeth_novip) as the agent writes it for the VIPs now in
 * aeth_vip: every bucket's bit set but theirs. Tests and benches that do
 * not call it run with the filter all clear (every packet goes the long
 * way, as before the filter). */
int dp_vip_filter_fill(struct dp_h *h);
/* Set (no_vip) or clear the VIP filter's bit of address a alone, whatever
 * aeth_vip holds: what a writer that broke the agent's rule would do. */
int dp_vip_filter_set(struct dp_h *h, const union aeth_addr *a, bool no_vip);

/* The connection entry of flow fl (aeth_ct is keyed by service and
 * client, aeth_ct_key): the service is found as the data path finds it
 * (aeth_svc by VIP, port and protocol, else the VIP's every-port service);
 * -ENOENT when there is none. Each returns 0 or a negative errno. */
int dp_ct_key(struct dp_h *h, const struct aeth_flow *fl,
	      struct aeth_ct_key *key);
int dp_ct_get(struct dp_h *h, const struct aeth_flow *fl,
	      struct aeth_ct_entry *e);
/* put: where the data path would (agent/lib/ct_table.h) */
int dp_ct_put(struct dp_h *h, const struct aeth_flow *fl,
	      const struct aeth_ct_entry *e);
int dp_ct_del(struct dp_h *h, const struct aeth_flow *fl);
/* Whole seconds of the coarse clock, the clock of aeth_ct_entry.seen_s. */
__u32 dp_now_s(void);

/* Keep the calling thread on one CPU: per-CPU state (insert budget, the
 * program's caches) is only predictable across runs on the same CPU. */
int dp_pin_cpu(int cpu);

/* A backend of address text, flags (AETH_BE_F_*), service id, weight 1. */
struct aeth_backend dp_backend(const char *addr, uint32_t flags,
			       uint32_t svc_id);
int dp_set_backend(struct dp_h *h, uint32_t id, const struct aeth_backend *be);

int dp_set_maglev(struct dp_h *h, uint32_t slot, const uint32_t *table,
		  uint32_t size);
/* Fill table[0..size) round robin over ids[0..n). */
void dp_table_round_robin(uint32_t *table, uint32_t size, const uint32_t *ids,
			  size_t n);

int dp_acl_create(struct dp_h *h, uint32_t slot);
int dp_acl_add(int acl_fd, const char *addr, uint32_t prefixlen);
/* 0, or -ENOSPC when h->rng_cap has no room (the slot is left without a
 * compiled form, as the agent leaves it), or another negative errno. */
int dp_acl_compile(struct dp_h *h, uint32_t slot, int acl_fd);
/* aeth_acl_rngidx[slot] cleared: IPv4 sources use the trie again. */
int dp_acl_uncompile(struct dp_h *h, uint32_t slot);
/* Let the program redirect to ifindex (aeth_tx_ports, as the agent does
 * for the interfaces it attaches to). */
int dp_add_tx_port(struct dp_h *h, uint32_t ifindex);
/* Accept tunnels from addr/prefixlen (aeth_decap, decap.sources). */
int dp_decap_add(struct dp_h *h, const char *addr, uint32_t prefixlen);

int dp_run(struct dp_h *h, const void *in, size_t in_len, void *out,
	   size_t *out_len, uint32_t ifindex, uint32_t *verdict);

int dp_global(struct dp_h *h, struct aeth_global_stats *out);
int dp_svc_stats(struct dp_h *h, uint32_t id, struct aeth_svc_stats *out);
int dp_be_stats(struct dp_h *h, uint32_t id, struct aeth_be_stats *out);

/* The network namespace of dp_netns_setup():
 *   veth "aeth-dp0" (ifindex if0) up with 192.0.2.1/25 and 2001:db8::1/64,
 *   peer "aeth-dp1" up;
 *   veth "aeth-dp2" (ifindex if2) up with 192.0.2.129/25 and
 *   2001:db8:2::1/64, peer "aeth-dp3" up;
 *   permanent neighbours 192.0.2.21-23 and 2001:db8::21-23 on aeth-dp0 and
 *   192.0.2.150 and 2001:db8:2::150 on aeth-dp2, all with lladdr
 *   DP_MAC_NEIGH; 192.0.2.24 and 2001:db8::24 have no neighbour (NO_NEIGH);
 *   IPv4 and IPv6 forwarding enabled. Clients in tests use 198.51.100.0/24
 *   and 2001:db8:100::/48, VIPs 203.0.113.0/24 and 2001:db8:f::/48.
 */
#define DP_MAC_NEIGH "\x02\x00\x00\x00\x00\x21"
struct dp_net {
	int if0, if2;
	uint8_t mac_if0[6], mac_if2[6];
};
int dp_netns_setup(struct dp_net *net);

/* What the program should emit for frame `in` (built from spec s) sent to
 * backend `backend`: s's L2 header with the given MACs and its VLAN tags,
 * an outer header from the node address of the backend's family (TTL, TOS,
 * DF and IPv6 flow label carried over as the data path promises; the outer
 * IPv4 id is 0 with DF, else the program's own: copy it from the output
 * with dp_expect_take_ip_id before comparing),
 * then the client's IP packet unchanged. Built with pkt.c only. Returns the
 * length. */
struct pkt_spec;
size_t dp_expect_encap(const struct pkt_spec *s, const void *in, size_t in_len,
		       const char *backend, const uint8_t dmac[6],
		       const uint8_t smac[6], void *out);

/* Without DF, copy the outer IPv4 id of got (frame, L3 at l3) into want
 * and fix want's header checksum. */
void dp_expect_take_ip_id(void *want, const void *got, size_t l3);

#endif /* AETHER_TESTS_HARNESS_H */
