/* Applying documents to real pinned maps: read-back, diff, removal, the
 * atomic table swap, rollback at every failure point, restart over pinned
 * maps, and the schema check. Root only. */
#include <netinet/in.h>
#include <pthread.h>
#include <time.h>

#include "agent_fixture.h"
#include "aether/ct_rule.h"
#include "aether/ct_table.h"
#include "aether/vip_filter.h"
#include "aether_lb.skel.h"
#include "ct_table.h"

static char dir[256];
static struct aeth_agent *A;

static void setup(void)
{
	ensure_bpffs();
	aeth_log_init(AETH_LOG_WARN, false);
	pin_dir_for(dir, sizeof(dir), "apply");
	rm_pin_dir(dir);
	A = agent_open(dir);
}

static void teardown(void)
{
	agent_close(A);
	A = NULL;
	aeth_apply_fail_at = 0;
	aeth_apply_acl_rng_cap = AETH_ACL_RNG_CAP;
	rm_pin_dir(dir);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	rm_all_test_pins();
}

TestSuite(apply, .init = setup, .fini = teardown, .timeout = 60);

/* The table aeth_maglev_build makes for these (address, id, weight). */
static uint32_t *expected_table(const struct aeth_maglev_backend *b, size_t n,
				uint32_t size)
{
	static const uint8_t seed[16] = { 0x5f, 0x3c, 0x0a, 0x1e, 0x9b, 0x7d,
					  0x2c, 0x44, 0xa1, 0xb2, 0xc3, 0xd4,
					  0xe5, 0xf6, 0x07, 0x18 };
	uint32_t *t = calloc(size, sizeof(*t));

	cr_assert_eq(aeth_maglev_build(b, n, seed, size, t), 0);
	return t;
}

/* Whether the trie matches addr; the value of the matching prefix (its
 * family) goes to *family when asked. */
static bool acl_match(int trie_fd, const char *addr, uint32_t *family)
{
	struct aeth_ip ip = ip_of(addr);
	struct aeth_acl_key k;
	uint32_t v;

	memset(&k, 0, sizeof(k));
	k.prefixlen = 128;
	if (ip.family == AETH_AF_INET) {
		k.addr[10] = k.addr[11] = 0xff;
		memcpy(&k.addr[12], &ip.addr.v4, 4);
	} else {
		memcpy(k.addr, ip.addr.bytes, 16);
	}
	if (bpf_map_lookup_elem(trie_fd, &k, &v))
		return false;
	if (family)
		*family = v;
	return true;
}

static bool acl_has(int trie_fd, const char *addr)
{
	return acl_match(trie_fd, addr, NULL);
}

/* The agent's connection table, read and written as the data path would
 * (its seed and size read anew each time: a restarted agent must keep
 * them). */
static int agent_ct_get(struct aeth_agent *a, const struct aeth_ct_key *k,
			struct aeth_ct_entry *e)
{
	struct aeth_ct_table t;
	int err = aeth_ct_table_open(&t, a->fds.ct, -1);

	return err ? err : aeth_ct_table_get(&t, k, e);
}

static int agent_ct_put(struct aeth_agent *a, const struct aeth_ct_key *k,
			const struct aeth_ct_entry *e)
{
	struct aeth_ct_table t;
	int err = aeth_ct_table_open(&t, a->fds.ct, a->fds.ct_bloom);

	if (!err)
		err = aeth_ct_table_put(&t, k, e);
	aeth_ct_table_close(&t);
	return err;
}

Test(apply, readback)
{
	struct aeth_svc api, dns, v6;
	struct aeth_svcinfo info;
	struct aeth_node node;
	struct aeth_meta meta;
	struct aeth_backend b;
	struct aeth_vip_key vk;
	uint32_t zero = 0, count, *table, *want;
	int64_t id21, id22, id23, id24;
	int trie;

	apply_ok(A, DOC_A);

	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api));
	cr_assert(svc_get(A, "203.0.113.10", 53, IPPROTO_UDP, &dns));
	cr_assert(svc_get(A, "2001:db8::10", 443, IPPROTO_TCP, &v6));
	cr_assert_neq(api.id, dns.id);
	cr_assert_neq(api.id, v6.id);

	/* the service entry: slots, table size, limiter parameters */
	cr_assert_eq(api.flags & AETH_SVC_F_ACL, AETH_SVC_F_ACL);
	cr_assert_eq(dns.flags & AETH_SVC_F_ACL, 0);
	cr_assert_eq(api.table_size, 251);
	cr_assert(api.maglev_slot == 2 * api.id ||
		  api.maglev_slot == 2 * api.id + 1);
	cr_assert_eq(api.src_interval_ns, 50000000ull);	/* 1e9 / 20 */
	cr_assert_eq(api.src_tolerance_ns, 39 * 50000000ull); /* burst 40 */
	cr_assert_eq(api.svc_interval_ns, 200000ull);	/* 1e9 / 5000 */
	cr_assert_eq(api.svc_tolerance_ns, 500 * 200000ull); /* rate / 10 */
	cr_assert_eq(api.src_prefix_v4, 32);
	cr_assert_eq(api.src_prefix_v6, 64);
	cr_assert_eq(dns.src_interval_ns, 0);
	cr_assert_eq(dns.svc_interval_ns, 0);

	cr_assert_eq(bpf_map_lookup_elem(A->fds.svcinfo, &api.id, &info), 0);
	cr_assert_str_eq(info.name, "api");
	cr_assert_eq(info.flags & AETH_SVCINFO_F_IN_USE, AETH_SVCINFO_F_IN_USE);
	cr_assert_eq(info.n_backends, 4);
	cr_assert_eq(info.acl_cidrs, 2);

	/* backends: flags, weights, service */
	id21 = backend_id(A, api.id, "192.0.2.21", false);
	id22 = backend_id(A, api.id, "192.0.2.22", false);
	id23 = backend_id(A, api.id, "192.0.2.23", false);
	id24 = backend_id(A, api.id, "192.0.2.24", false);
	cr_assert(id21 >= 0 && id22 >= 0 && id23 >= 0 && id24 >= 0);
	cr_assert_geq(backend_id(A, dns.id, "2001:db8::32", false), 0);
	cr_assert_eq(bpf_map_lookup_elem(A->fds.backend, &(uint32_t){ id22 }, &b), 0);
	cr_assert_eq(b.flags, AETH_BE_F_IN_USE | AETH_BE_F_DRAINING);
	cr_assert_eq(bpf_map_lookup_elem(A->fds.backend, &(uint32_t){ id23 }, &b), 0);
	cr_assert_eq(b.flags, AETH_BE_F_IN_USE);
	cr_assert_eq(b.weight, 2);

	/* the Maglev table is exactly the builder's, without the draining and
	 * the weight-0 backend */
	{
		struct aeth_maglev_backend mb[2] = {
			{ .ip = ip_of("192.0.2.21"), .id = id21, .weight = 1 },
			{ .ip = ip_of("192.0.2.23"), .id = id23, .weight = 2 },
		};
		uint32_t n21 = 0, n23 = 0;

		want = expected_table(mb, 2, 251);
		table = read_table(slot_map_id(A->fds.maglev, api.maglev_slot),
				   251);
		cr_assert_arr_eq(table, want, 251 * sizeof(uint32_t));
		for (int i = 0; i < 251; i++) {
			cr_assert(table[i] == id21 || table[i] == id23);
			n21 += table[i] == id21;
			n23 += table[i] == id23;
		}
		cr_assert_gt(n23, n21);	/* weight 2 against 1 */
		free(table);
		free(want);
	}

	/* the authorized networks, both families in one trie */
	trie = bpf_map_get_fd_by_id(slot_map_id(A->fds.acl, api.acl_slot));
	cr_assert_geq(trie, 0);
	{
		uint32_t fam = 0;

		cr_assert(acl_match(trie, "198.51.100.7", &fam));
		cr_assert_eq(fam, AETH_AF_INET);
		cr_assert(acl_match(trie, "2001:db8:100:5::1", &fam));
		cr_assert_eq(fam, AETH_AF_INET6);
	}
	cr_assert_not(acl_has(trie, "198.51.101.7"));
	cr_assert_not(acl_has(trie, "2001:db8:101::1"));
	cr_assert_not(acl_has(trie, "203.0.113.99"));
	close(trie);

	/* VIP reference counts */
	memset(&vk, 0, sizeof(vk));
	vk.addr = ip_of("203.0.113.10").addr;
	vk.family = AETH_AF_INET;
	cr_assert_eq(bpf_map_lookup_elem(A->fds.vip, &vk, &count), 0);
	cr_assert_eq(count, 2);
	memset(&vk, 0, sizeof(vk));
	vk.addr = ip_of("2001:db8::10").addr;
	vk.family = AETH_AF_INET6;
	cr_assert_eq(bpf_map_lookup_elem(A->fds.vip, &vk, &count), 0);
	cr_assert_eq(count, 1);

	/* node and meta */
	cr_assert_eq(bpf_map_lookup_elem(A->fds.node, &zero, &node), 0);
	cr_assert_eq(node.v4, ip_of("192.0.2.11").addr.v4);
	cr_assert_eq(node.flags, AETH_NODE_F_V4 | AETH_NODE_F_V6);
	cr_assert_eq(node.mtu, 1500);
	cr_assert_eq(((uint8_t *)node.hash_seed)[0], 0x5f);
	cr_assert_eq(((uint8_t *)node.hash_seed)[15], 0x18);
	cr_assert_eq(bpf_map_lookup_elem(A->fds.meta, &zero, &meta), 0);
	cr_assert_eq(meta.schema_version, AETH_SCHEMA_VERSION);
	cr_assert_eq(meta.generation, 1);
	cr_assert_arr_eq(meta.config_hash, A->cfg->hash, 32);
}

Test(apply, diff_changes_only_what_differs)
{
	struct aeth_svc api0, dns0, v60, api1, dns1, v61;
	uint32_t api_tbl, dns_tbl, api_acl, v6_old_slot;
	int64_t id41, id42, id41b, id43;
	struct aeth_backend b;

	apply_ok(A, DOC_A);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api0));
	cr_assert(svc_get(A, "203.0.113.10", 53, IPPROTO_UDP, &dns0));
	cr_assert(svc_get(A, "2001:db8::10", 443, IPPROTO_TCP, &v60));
	api_tbl = slot_map_id(A->fds.maglev, api0.maglev_slot);
	dns_tbl = slot_map_id(A->fds.maglev, dns0.maglev_slot);
	api_acl = slot_map_id(A->fds.acl, api0.acl_slot);
	id41 = backend_id(A, v60.id, "2001:db8::41", false);
	id42 = backend_id(A, v60.id, "2001:db8::42", false);
	v6_old_slot = v60.maglev_slot;

	apply_ok(A, DOC_B);	/* v6: ::42 replaced by ::43 */
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api1));
	cr_assert(svc_get(A, "203.0.113.10", 53, IPPROTO_UDP, &dns1));
	cr_assert(svc_get(A, "2001:db8::10", 443, IPPROTO_TCP, &v61));

	/* unchanged services: same entry, same inner maps */
	cr_assert_arr_eq(&api0, &api1, sizeof(api0));
	cr_assert_arr_eq(&dns0, &dns1, sizeof(dns0));
	cr_assert_eq(slot_map_id(A->fds.maglev, api1.maglev_slot), api_tbl);
	cr_assert_eq(slot_map_id(A->fds.maglev, dns1.maglev_slot), dns_tbl);
	cr_assert_eq(slot_map_id(A->fds.acl, api1.acl_slot), api_acl);

	/* the changed one flipped to its other slot; the old one is kept
	 * whole for packets still holding the old entry, until the next
	 * apply */
	cr_assert_eq(v61.id, v60.id);
	cr_assert_neq(v61.maglev_slot, v6_old_slot);
	cr_assert_eq(v61.maglev_slot / 2, v61.id);
	cr_assert_neq(slot_map_id(A->fds.maglev, v6_old_slot), 0);
	apply_ok(A, DOC_B);
	cr_assert_eq(slot_map_id(A->fds.maglev, v6_old_slot), 0);

	/* backend ids: kept for the survivor, fresh (not the freed one) for
	 * the newcomer; the removed one is no longer in use */
	id41b = backend_id(A, v61.id, "2001:db8::41", false);
	id43 = backend_id(A, v61.id, "2001:db8::43", false);
	cr_assert_eq(id41b, id41);
	cr_assert_geq(id43, 0);
	cr_assert_neq(id43, id42);
	cr_assert_eq(backend_id(A, v61.id, "2001:db8::42", false), -1);
	cr_assert_eq(bpf_map_lookup_elem(A->fds.backend, &(uint32_t){ id42 }, &b), 0);
	cr_assert_eq(b.flags & AETH_BE_F_IN_USE, 0);

	{
		struct aeth_maglev_backend mb[2] = {
			{ .ip = ip_of("2001:db8::41"), .id = id41, .weight = 1 },
			{ .ip = ip_of("2001:db8::43"), .id = id43, .weight = 1 },
		};
		uint32_t *want = expected_table(mb, 2, 251);
		uint32_t *t = read_table(slot_map_id(A->fds.maglev,
						     v61.maglev_slot), 251);

		cr_assert_arr_eq(t, want, 251 * sizeof(uint32_t));
		free(t);
		free(want);
	}
	/* the second DOC_B changed nothing: no new generation */
	cr_assert_eq(A->meta.generation, 2);
}

Test(apply, removal_in_reverse)
{
	struct aeth_svc api0, dns0, v60, tmp;
	struct aeth_svcinfo info;
	struct aeth_backend b;
	struct aeth_vip_key vk;
	int64_t id31, id41;
	uint32_t count;

	apply_ok(A, DOC_A);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api0));
	cr_assert(svc_get(A, "203.0.113.10", 53, IPPROTO_UDP, &dns0));
	cr_assert(svc_get(A, "2001:db8::10", 443, IPPROTO_TCP, &v60));
	id31 = backend_id(A, dns0.id, "192.0.2.31", false);
	id41 = backend_id(A, v60.id, "2001:db8::41", false);
	cr_assert(id31 >= 0 && id41 >= 0);

	apply_ok(A, DOC_HEAD SVC_API DOC_TAIL);

	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &tmp));
	cr_assert_arr_eq(&tmp, &api0, sizeof(tmp));
	cr_assert_not(svc_get(A, "203.0.113.10", 53, IPPROTO_UDP, &tmp));
	cr_assert_not(svc_get(A, "2001:db8::10", 443, IPPROTO_TCP, &tmp));
	cr_assert_eq(bpf_map_lookup_elem(A->fds.backend, &(uint32_t){ id31 }, &b), 0);
	cr_assert_eq(b.flags & AETH_BE_F_IN_USE, 0);
	cr_assert_eq(bpf_map_lookup_elem(A->fds.backend, &(uint32_t){ id41 }, &b), 0);
	cr_assert_eq(b.flags & AETH_BE_F_IN_USE, 0);
	cr_assert_eq(bpf_map_lookup_elem(A->fds.svcinfo, &v60.id, &info), 0);
	cr_assert_eq(info.flags & AETH_SVCINFO_F_IN_USE, 0);

	/* the shared VIP keeps one reference, the v6 VIP is gone */
	memset(&vk, 0, sizeof(vk));
	vk.addr = ip_of("203.0.113.10").addr;
	vk.family = AETH_AF_INET;
	cr_assert_eq(bpf_map_lookup_elem(A->fds.vip, &vk, &count), 0);
	cr_assert_eq(count, 1);
	memset(&vk, 0, sizeof(vk));
	vk.addr = ip_of("2001:db8::10").addr;
	vk.family = AETH_AF_INET6;
	cr_assert_neq(bpf_map_lookup_elem(A->fds.vip, &vk, &count), 0);

	/* the removed services' tables are released, one apply later */
	apply_ok(A, DOC_HEAD SVC_API DOC_TAIL);
	cr_assert_eq(slot_map_id(A->fds.maglev, 2 * v60.id), 0);
	cr_assert_eq(slot_map_id(A->fds.maglev, 2 * v60.id + 1), 0);
	cr_assert_eq(slot_map_id(A->fds.maglev, 2 * dns0.id), 0);
	cr_assert_eq(slot_map_id(A->fds.maglev, 2 * dns0.id + 1), 0);
}

/* ---- snapshots of everything the agent writes ------------------------- */

#define SNAP_SVCS 64

struct snapshot {
	struct aeth_svc svc[SNAP_SVCS];		/* by id; id == ~0 when absent */
	struct aeth_svcinfo info[SNAP_SVCS];
	uint32_t mg_slot[2 * SNAP_SVCS], acl_slot[2 * SNAP_SVCS];
	struct aeth_backend *be;
	uint32_t vip4, vip6;
	struct aeth_node node;
	uint64_t generation;
};

static void snap(struct aeth_agent *a, struct snapshot *s)
{
	struct aeth_svc_key k, nk, *prev = NULL;
	struct aeth_vip_key vk;
	uint32_t zero = 0;
	struct aeth_meta meta;

	memset(s->svc, 0xff, sizeof(s->svc));
	while (bpf_map_get_next_key(a->fds.svc, prev, &nk) == 0) {
		struct aeth_svc v;

		k = nk;
		prev = &k;
		cr_assert_eq(bpf_map_lookup_elem(a->fds.svc, &k, &v), 0);
		cr_assert_lt(v.id, SNAP_SVCS);
		s->svc[v.id] = v;
	}
	for (uint32_t i = 0; i < SNAP_SVCS; i++)
		bpf_map_lookup_elem(a->fds.svcinfo, &i, &s->info[i]);
	for (uint32_t i = 0; i < 2 * SNAP_SVCS; i++) {
		s->mg_slot[i] = slot_map_id(a->fds.maglev, i);
		s->acl_slot[i] = slot_map_id(a->fds.acl, i);
	}
	s->be = calloc(AETH_MAX_BACKENDS, sizeof(*s->be));
	for (uint32_t i = 0; i < AETH_MAX_BACKENDS; i++)
		bpf_map_lookup_elem(a->fds.backend, &i, &s->be[i]);
	memset(&vk, 0, sizeof(vk));
	vk.addr = ip_of("203.0.113.10").addr;
	vk.family = AETH_AF_INET;
	s->vip4 = 0;
	bpf_map_lookup_elem(a->fds.vip, &vk, &s->vip4);
	vk.addr = ip_of("2001:db8::10").addr;
	vk.family = AETH_AF_INET6;
	s->vip6 = 0;
	bpf_map_lookup_elem(a->fds.vip, &vk, &s->vip6);
	bpf_map_lookup_elem(a->fds.node, &zero, &s->node);
	bpf_map_lookup_elem(a->fds.meta, &zero, &meta);
	s->generation = meta.generation;
}

/* The slots that serve traffic (named by a service entry) must be equal;
 * inactive slots may have held a table that was rolled back. */
static void assert_same_serving_state(const struct snapshot *x,
				      const struct snapshot *y, unsigned int n)
{
	cr_assert_arr_eq(x->svc, y->svc, sizeof(x->svc), "services (fail at %u)", n);
	cr_assert_arr_eq(x->info, y->info, sizeof(x->info), "svcinfo (fail at %u)", n);
	for (uint32_t id = 0; id < SNAP_SVCS; id++) {
		if (x->svc[id].id == ~0u)
			continue;
		cr_assert_eq(x->mg_slot[x->svc[id].maglev_slot],
			     y->mg_slot[y->svc[id].maglev_slot],
			     "table of service %u (fail at %u)", id, n);
		cr_assert_eq(x->acl_slot[x->svc[id].acl_slot],
			     y->acl_slot[y->svc[id].acl_slot],
			     "acl of service %u (fail at %u)", id, n);
	}
	cr_assert_arr_eq(x->be, y->be, AETH_MAX_BACKENDS * sizeof(*x->be),
			 "backends (fail at %u)", n);
	cr_assert_eq(x->vip4, y->vip4, "vip4 (fail at %u)", n);
	cr_assert_eq(x->vip6, y->vip6, "vip6 (fail at %u)", n);
	cr_assert_arr_eq(&x->node, &y->node, sizeof(x->node), "node (fail at %u)", n);
	cr_assert_eq(x->generation, y->generation, "generation (fail at %u)", n);
}

/* A document that changes everything: a backend of api, dns removed, a new
 * service, a new MTU. */
#define DOC_C \
	"{'version':1,'node':{'interfaces':['lo'],'xdp_mode':'generic'," \
	"'addresses':{'ipv4':'192.0.2.11','ipv6':'2001:db8::11'},'mtu':1400}," \
	"'maglev':{'seed':'5f3c0a1e9b7d2c44a1b2c3d4e5f60718','table_size':251}," \
	"'conntrack':{'max_entries':4096},'services':[" \
	"{'name':'api','vip':'203.0.113.10','port':6443,'protocol':'tcp'," \
	"'authorized_networks':{'enabled':true,'cidrs':['198.51.100.0/25']}," \
	"'backends':[{'address':'192.0.2.21'},{'address':'192.0.2.25'}]}," \
	SVC_V6_CHANGED "," \
	"{'name':'web','vip':'203.0.113.20','port':80,'protocol':'tcp'," \
	"'backends':[{'address':'192.0.2.51'}]}]}"

/* The tables' stamp (aeth_stamp), which the data path's per-CPU memories
 * of the tables are checked against. */
static uint64_t stamp_of(struct aeth_agent *a)
{
	uint64_t v;
	uint32_t zero = 0;

	cr_assert_eq(bpf_map_lookup_elem(a->fds.stamp, &zero, &v), 0);
	return v;
}

/* The VIP filter of the agent's program (include/aether/vip_filter.h). */
static bool filter_no_vip(struct aeth_agent *a, const char *addr)
{
	union aeth_addr ad = ip_of(addr).addr;
	__u32 b = aeth_vip_filter_bucket(&ad);

	return a->skel->bss->lb_vip_filter[aeth_vip_filter_word(b)] &
	       aeth_vip_filter_mask(b);
}

/* No VIP in aeth_vip has its bucket's bit set; returns how many buckets
 * the VIPs take. */
static unsigned int assert_vips_not_filtered(struct aeth_agent *a,
					     const char *when)
{
	static uint8_t seen[AETH_VIP_FILTER_BITS];
	struct aeth_vip_key k, *prev = NULL;
	unsigned int buckets = 0;
	__u32 b;

	memset(seen, 0, sizeof(seen));
	while (bpf_map_get_next_key(a->fds.vip, prev, &k) == 0) {
		b = aeth_vip_filter_bucket(&k.addr);
		cr_assert_eq(a->skel->bss->lb_vip_filter[aeth_vip_filter_word(b)] &
				     aeth_vip_filter_mask(b),
			     0, "%s: a VIP's bit is set", when);
		buckets += !seen[b];
		seen[b] = 1;
		prev = &k;
	}
	return buckets;
}

static unsigned int filter_bits_set(struct aeth_agent *a)
{
	unsigned int n = 0;

	for (uint32_t w = 0; w < AETH_VIP_FILTER_WORDS; w++)
		n += __builtin_popcountll(a->skel->bss->lb_vip_filter[w]);
	return n;
}


/* Fail the Nth map write for every N a full apply makes: each time the
 * maps must be exactly as before (rolled back), and only the last run, with
 * no failure, changes them. Every run changes the tables' stamp, failed
 * ones too: what the data path remembered of entries published and then
 * undone must not outlive the undo. */
Test(apply, failure_at_any_step_keeps_previous_state)
{
	struct snapshot before, after, now;
	struct aeth_apply_result res;
	struct aeth_svc api_old, api_new;
	uint32_t old_tbl_id, *old_tbl, *tbl;
	unsigned int n;
	int rc, old_fd;
	bool cleared_early = false;

	apply_ok(A, DOC_A);
	cr_assert(filter_no_vip(A, "203.0.113.20"));
	snap(A, &before);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api_old));
	old_tbl_id = slot_map_id(A->fds.maglev, api_old.maglev_slot);
	old_tbl = read_table(old_tbl_id, 251);
	old_fd = bpf_map_get_fd_by_id(old_tbl_id);
	cr_assert_geq(old_fd, 0);

	for (n = 1; n < 500; n++) {
		uint64_t stamp = stamp_of(A);

		aeth_apply_fail_at = n;
		rc = apply_doc(A, DOC_C, &res);
		cr_assert_gt(stamp_of(A), stamp, "run %u left the stamp", n);
		if (rc == 0)
			break;
		cr_assert_not(res.rejected);
		cr_assert_neq(res.message[0], '\0');
		snap(A, &now);
		assert_same_serving_state(&before, &now, n);
		assert_vips_not_filtered(A, "after a failed apply");
		/* the bit of 203.0.113.20 (new in DOC_C) is cleared before
		 * the VIP is written and never set back by a rollback: the
		 * runs that failed after that write leave it clear */
		cleared_early |= !filter_no_vip(A, "203.0.113.20");
		/* and the filter holds under the stamp the rollback wrote */
		cr_assert_eq(A->skel->bss->lb_vip_filter_stamp, stamp_of(A));
		free(now.be);
		/* the table that served before is still intact */
		tbl = read_table(old_tbl_id, 251);
		cr_assert_arr_eq(tbl, old_tbl, 251 * sizeof(uint32_t));
		free(tbl);
	}
	aeth_apply_fail_at = 0;
	cr_assert_eq(rc, 0);
	cr_assert(cleared_early, "the new VIP's filter bit was only cleared "
		  "by the commit");
	/* backends, tables, vips, services, removals: many failure points */
	cr_assert_gt(n, 10, "only %u failure points", n);
	cr_assert_eq(A->status.apply_failed, n - 1);

	/* the successful run flipped api to a new table; the old inner map was
	 * left as it was (only released from its slot after the flip) */
	snap(A, &after);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api_new));
	cr_assert_neq(api_new.maglev_slot, api_old.maglev_slot);
	cr_assert_eq(slot_map_id(A->fds.maglev, api_old.maglev_slot),
		     old_tbl_id, "retired, not yet emptied");
	apply_ok(A, DOC_C);
	cr_assert_eq(slot_map_id(A->fds.maglev, api_old.maglev_slot), 0);
	for (uint32_t i = 0; i < 251; i++) {
		uint32_t v;

		cr_assert_eq(bpf_map_lookup_elem(old_fd, &i, &v), 0);
		cr_assert_eq(v, old_tbl[i]);
	}
	cr_assert_eq(after.node.mtu, 1400);
	cr_assert_eq(after.generation, before.generation + 1);
	cr_assert_not(svc_get(A, "203.0.113.10", 53, IPPROTO_UDP, &api_new));
	cr_assert(svc_get(A, "203.0.113.20", 80, IPPROTO_TCP, &api_new));
	close(old_fd);
	free(old_tbl);
	free(before.be);
	free(after.be);
}

Test(apply, invalid_document_touches_nothing)
{
	struct snapshot before, now;
	struct aeth_apply_result res;
	int rc;

	apply_ok(A, DOC_A);
	snap(A, &before);
	rc = apply_doc(A, DOC_HEAD
		       "{'name':'x','vip':'203.0.113.10','port':80,'protocol':'tcp',"
		       "'backends':[{'address':'192.0.2.300'}]}" DOC_TAIL, &res);
	cr_assert_eq(rc, -EINVAL);
	cr_assert(res.rejected);
	cr_assert_str_eq(res.err.path, "services[0].backends[0].address");
	rc = apply_doc(A, "{'version':1,", &res);
	cr_assert_eq(rc, -EINVAL);
	cr_assert_gt(res.err.line, 0);
	snap(A, &now);
	assert_same_serving_state(&before, &now, 0);
	cr_assert_eq(A->status.apply_rejected, 2);
	cr_assert_eq(A->status.apply_ok, 1);
	free(before.be);
	free(now.be);
}

static bool down21;

static bool fake_health(void *arg, const char *svc, const struct aeth_ip *ip)
{
	struct aeth_ip x = ip_of("192.0.2.21");

	return !(down21 && strcmp(svc, "api") == 0 &&
		 memcmp(ip->addr.bytes, x.addr.bytes, 16) == 0);
}

Test(apply, health_down_leaves_table_and_returns)
{
	struct aeth_svc api;
	struct aeth_backend b;
	int64_t id21, id23;
	uint32_t *t;

	A->backend_up = fake_health;
	apply_ok(A, DOC_A);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api));
	id21 = backend_id(A, api.id, "192.0.2.21", false);
	id23 = backend_id(A, api.id, "192.0.2.23", false);

	down21 = true;
	cr_assert_eq(aeth_apply_refresh(A), 0);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api));
	cr_assert_eq(bpf_map_lookup_elem(A->fds.backend, &(uint32_t){ id21 }, &b), 0);
	cr_assert_eq(b.flags, AETH_BE_F_IN_USE | AETH_BE_F_UNHEALTHY);
	t = read_table(slot_map_id(A->fds.maglev, api.maglev_slot), 251);
	for (int i = 0; i < 251; i++)
		cr_assert_eq(t[i], id23);
	free(t);
	cr_assert_eq(A->meta.generation, 1, "health changes keep the generation");

	down21 = false;
	cr_assert_eq(aeth_apply_refresh(A), 0);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api));
	cr_assert_eq(backend_id(A, api.id, "192.0.2.21", false), id21);
	t = read_table(slot_map_id(A->fds.maglev, api.maglev_slot), 251);
	{
		bool seen = false;

		for (int i = 0; i < 251; i++)
			seen |= t[i] == id21;
		cr_assert(seen);
	}
	free(t);
}

Test(apply, restart_keeps_conntrack_and_ids)
{
	struct aeth_svc api0, v60, api1;
	struct aeth_flow flow;
	struct aeth_ct_entry ce, got;
	struct aeth_ct_key ck;
	int64_t ids0[4], ids1[4];
	const char *addrs[4] = { "192.0.2.21", "192.0.2.22", "192.0.2.23",
				 "192.0.2.24" };
	uint32_t *t0, *t1;
	int64_t id41;

	apply_ok(A, DOC_A);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api0));
	cr_assert(svc_get(A, "2001:db8::10", 443, IPPROTO_TCP, &v60));
	for (int i = 0; i < 4; i++)
		ids0[i] = backend_id(A, api0.id, addrs[i], false);
	id41 = backend_id(A, v60.id, "2001:db8::41", false);
	t0 = read_table(slot_map_id(A->fds.maglev, api0.maglev_slot), 251);

	/* a connection the data path recorded */
	memset(&flow, 0, sizeof(flow));
	flow.src = ip_of("198.51.100.7").addr;
	flow.dst = ip_of("203.0.113.10").addr;
	flow.sport = htons(40000);
	flow.dport = htons(6443);
	flow.proto = IPPROTO_TCP;
	flow.family = AETH_AF_INET;
	memset(&ce, 0, sizeof(ce));
	ce.backend_id = ids0[0];
	ck = aeth_ct_key_of(&flow, api0.id);
	cr_assert_eq(agent_ct_put(A, &ck, &ce), 0);

	/* the agent goes away (nothing is detached or unpinned) and comes
	 * back over the same pins; a VIP entry no service names (a crash in
	 * the middle of an apply) is dropped on the way */
	agent_close(A);
	A = NULL;	/* teardown must not free it again if the reopen fails */
	{
		struct aeth_vip_key vk;
		uint32_t one = 1;
		char path[512];
		int fd;

		snprintf(path, sizeof(path), "%s/%s", dir, AETH_MAP_VIP);
		fd = bpf_obj_get(path);
		cr_assert_geq(fd, 0);
		memset(&vk, 0, sizeof(vk));
		vk.addr = ip_of("203.0.113.99").addr;
		vk.family = AETH_AF_INET;
		cr_assert_eq(bpf_map_update_elem(fd, &vk, &one, BPF_ANY), 0);
		A = agent_open(dir);
		cr_assert_neq(bpf_map_lookup_elem(fd, &vk, &one), 0);
		close(fd);
	}
	cr_assert_eq(agent_ct_get(A, &ck, &got), 0);
	cr_assert_eq(got.backend_id, ce.backend_id);
	cr_assert(A->state->svcs[api0.id].in_use);
	cr_assert_eq(A->meta.generation, 1);

	apply_ok(A, DOC_A);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api1));
	cr_assert_eq(api1.id, api0.id);
	for (int i = 0; i < 4; i++) {
		ids1[i] = backend_id(A, api1.id, addrs[i], false);
		cr_assert_eq(ids1[i], ids0[i], "backend %s", addrs[i]);
	}
	/* rebuilt into the other slot (inputs unknown after a restart), to
	 * the same content */
	t1 = read_table(slot_map_id(A->fds.maglev, api1.maglev_slot), 251);
	cr_assert_arr_eq(t1, t0, 251 * sizeof(uint32_t));
	cr_assert_eq(agent_ct_get(A, &ck, &got), 0);
	cr_assert_eq(A->meta.generation, 2);

	/* and later diffs still keep ids */
	apply_ok(A, DOC_B);
	cr_assert(svc_get(A, "2001:db8::10", 443, IPPROTO_TCP, &v60));
	cr_assert_eq(backend_id(A, v60.id, "2001:db8::41", false), id41);
	free(t0);
	free(t1);
}

Test(apply, schema_mismatch_refused)
{
	struct aeth_agent *b = calloc(1, sizeof(*b));
	struct aeth_meta meta;
	struct aeth_error e;
	char path[512], err[800] = "";
	uint32_t zero = 0;
	int fd, rc;

	apply_ok(A, DOC_A);
	agent_close(A);
	A = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, AETH_MAP_META);
	fd = bpf_obj_get(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bpf_map_lookup_elem(fd, &zero, &meta), 0);
	meta.schema_version = 99;
	cr_assert_eq(bpf_map_update_elem(fd, &zero, &meta, BPF_ANY), 0);
	close(fd);

	memset(&e, 0, sizeof(e));
	rc = aeth_loader_open(b, dir, 4096, &e);
	aeth_error_format(&e, err, sizeof(err));
	cr_assert_eq(rc, -EPROTO, "rc %d: %s", rc, err);
	cr_assert_not_null(strstr(err, dir), "%s", err);
	cr_assert_not_null(strstr(err, "99"), "%s", err);
	snprintf(path, sizeof(path), "uses %u", AETH_SCHEMA_VERSION);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_null(b->skel);
	free(b);
}

Test(apply, detach_unpins_everything)
{
	struct aeth_error e;
	char path[512];

	apply_ok(A, DOC_A);
	agent_close(A);
	A = NULL;
	memset(&e, 0, sizeof(e));
	cr_assert_eq(aeth_loader_detach(dir, &e), 0, "%s", e.message);
	snprintf(path, sizeof(path), "%s/%s", dir, AETH_MAP_SVC);
	cr_assert_neq(access(path, F_OK), 0);
	cr_assert_neq(access(dir, F_OK), 0);
}

/* 1,000 services of 3 backends with 16381-slot tables: the full apply, then
 * the diff of one changed backend, timed (printed) and bounded loosely so
 * a pathological slowdown fails. */
static int mmap_outer(void);

static void thousand_services(bool mmapable)
{
	int pinned = A->fds.maglev, outer = -1;
	size_t cap = 1000 * 300 + 4096, len;
	char *doc = malloc(cap);
	struct aeth_apply_result res;
	struct timespec t0, t1, t2;
	struct aeth_svc s0, s1, s999;
	uint32_t tbl0;
	double full_ms, diff_ms;
	int rc;

	if (mmapable) {
		outer = mmap_outer();
		A->fds.maglev = outer;
	}
	for (int round = 0; round < 2; round++) {
		len = snprintf(doc, cap,
			       "{\"version\":1,\"node\":{\"interfaces\":[\"lo\"],"
			       "\"addresses\":{\"ipv4\":\"198.18.0.11\"}},"
			       "\"maglev\":{\"seed\":\"5f3c0a1e9b7d2c44a1b2c3d4e5f60718\","
			       "\"table_size\":16381},\"services\":[");
		for (int i = 0; i < 1000; i++)
			len += snprintf(doc + len, cap - len,
				"%s{\"name\":\"s%d\",\"vip\":\"203.0.113.%d\","
				"\"port\":%d,\"protocol\":\"tcp\",\"backends\":["
				"{\"address\":\"192.0.2.%d\"},{\"address\":\"198.51.100.%d\"},"
				"{\"address\":\"192.0.2.%d\"}]}",
				i ? "," : "", i, i % 250 + 1, 1000 + i, i % 200 + 1,
				i % 250 + 1,
				/* the second round moves one backend of s7 */
				round && i == 7 ? 250 : i % 50 + 201);
		len += snprintf(doc + len, cap - len, "]}");
		clock_gettime(CLOCK_MONOTONIC, round ? &t1 : &t0);
		rc = aeth_apply_text(A, doc, len, "test", &res);
		cr_assert_eq(rc, 0, "%s", res.message);
		if (round == 0) {
			cr_assert(svc_get(A, "203.0.113.1", 1000, IPPROTO_TCP, &s0));
			tbl0 = slot_map_id(A->fds.maglev, s0.maglev_slot);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t2);
	full_ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	diff_ms = (t2.tv_sec - t1.tv_sec) * 1e3 + (t2.tv_nsec - t1.tv_nsec) / 1e6;
	fprintf(stderr, "apply: 1000 services x 3 backends, M=16381, tables "
		"written by %s: full %.1f ms, one backend changed %.1f ms\n",
		A->inner_mmap > 0 ? "mmap" : "batch update", full_ms, diff_ms);

	cr_assert(svc_get(A, "203.0.113.1", 1000, IPPROTO_TCP, &s1));
	cr_assert_eq(s1.maglev_slot, s0.maglev_slot, "unchanged service rebuilt");
	cr_assert_eq(slot_map_id(A->fds.maglev, s1.maglev_slot), tbl0);
	cr_assert(svc_get(A, "203.0.113.250", 1999, IPPROTO_TCP, &s999));
	cr_assert_lt(full_ms, 60000);
	cr_assert_lt(diff_ms, full_ms / 5, "a one-backend diff cost %.1f ms", diff_ms);
	free(doc);
	if (mmapable) {
		cr_assert_eq(A->inner_mmap, 1);
		A->fds.maglev = pinned;
		close(outer);
	}
}

Test(apply, thousand_services_full_and_one_backend_change, .timeout = 240)
{
	thousand_services(false);
}

/* The same with an mmapable inner-map template (see inner_mmap_supported
 * in agent/daemon/apply_inner.c): what the full apply costs once bpf/maps.h
 * allows it. */
Test(apply, thousand_services_mmapable_tables, .timeout = 240)
{
	thousand_services(true);
}

/* When the outer map's template is mmapable, tables are written through
 * mmap: same content as the builder's. The test points the agent at its
 * own outer map, so it holds whatever bpf/maps.h's template says. */
static int mmap_outer(void)
{
	LIBBPF_OPTS(bpf_map_create_opts, io,
		    .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	LIBBPF_OPTS(bpf_map_create_opts, oo);
	int inner, outer;

	inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "tmpl", 4, 4, 1, &io);
	cr_assert_geq(inner, 0);
	oo.inner_map_fd = inner;
	outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "outer", 4, 4,
			       AETH_MAX_SLOTS, &oo);
	cr_assert_geq(outer, 0, "%s", strerror(errno));
	close(inner);
	return outer;
}

Test(apply, mmapable_template_uses_mmap)
{
	struct aeth_svc api;
	int outer = mmap_outer(), pinned = A->fds.maglev;
	int64_t id21, id23;
	uint32_t *t, *want;

	A->fds.maglev = outer;

	apply_ok(A, DOC_A);
	cr_assert_eq(A->inner_mmap, 1);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api));
	id21 = backend_id(A, api.id, "192.0.2.21", false);
	id23 = backend_id(A, api.id, "192.0.2.23", false);
	{
		struct aeth_maglev_backend mb[2] = {
			{ .ip = ip_of("192.0.2.21"), .id = id21, .weight = 1 },
			{ .ip = ip_of("192.0.2.23"), .id = id23, .weight = 2 },
		};

		want = expected_table(mb, 2, 251);
	}
	t = read_table(slot_map_id(outer, api.maglev_slot), 251);
	cr_assert_arr_eq(t, want, 251 * sizeof(uint32_t));
	free(t);
	free(want);
	A->fds.maglev = pinned;
	close(outer);
}

/* enabled with no CIDR lets nobody in: an empty trie, enforced; turning
 * the ACL off clears the flag and releases the tries. */
Test(apply, acl_empty_then_disabled)
{
	struct aeth_svc s;
	struct aeth_acl_key next;
	int trie;

	apply_ok(A, DOC_HEAD
		 "{'name':'closed','vip':'203.0.113.30','port':22,'protocol':'tcp',"
		 "'authorized_networks':{'enabled':true,'cidrs':[]},"
		 "'backends':[{'address':'192.0.2.61'}]}" DOC_TAIL);
	cr_assert(svc_get(A, "203.0.113.30", 22, IPPROTO_TCP, &s));
	cr_assert_eq(s.flags & AETH_SVC_F_ACL, AETH_SVC_F_ACL);
	trie = bpf_map_get_fd_by_id(slot_map_id(A->fds.acl, s.acl_slot));
	cr_assert_geq(trie, 0);
	cr_assert_neq(bpf_map_get_next_key(trie, NULL, &next), 0, "not empty");
	close(trie);

	apply_ok(A, DOC_HEAD
		 "{'name':'closed','vip':'203.0.113.30','port':22,'protocol':'tcp',"
		 "'authorized_networks':{'enabled':false},"
		 "'backends':[{'address':'192.0.2.61'}]}" DOC_TAIL);
	cr_assert(svc_get(A, "203.0.113.30", 22, IPPROTO_TCP, &s));
	cr_assert_eq(s.flags & AETH_SVC_F_ACL, 0);
	apply_ok(A, DOC_HEAD
		 "{'name':'closed','vip':'203.0.113.30','port':22,'protocol':'tcp',"
		 "'authorized_networks':{'enabled':false},"
		 "'backends':[{'address':'192.0.2.61'}]}" DOC_TAIL);
	cr_assert_eq(slot_map_id(A->fds.acl, 2 * s.id), 0);
	cr_assert_eq(slot_map_id(A->fds.acl, 2 * s.id + 1), 0);
}

/* ---- the data path reads what the agent wrote --------------------------- */

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>

#include "aether/flow_hash.h"

static uint16_t ip_csum(const void *hdr, size_t len)
{
	const uint16_t *w = hdr;
	uint32_t sum = 0;

	for (size_t i = 0; i < len / 2; i++)
		sum += w[i];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* Run one IPv4 TCP SYN through the loaded program; returns the verdict. */
static int run_syn(struct aeth_agent *a, const char *src, const char *dst,
		   int dport)
{
	/* two bytes ahead of the frame so its IP header is 4-byte aligned */
	uint8_t buf[2 + 14 + 20 + 20] __attribute__((aligned(4))), out[256];
	uint8_t *pkt = buf + 2;
	struct ethhdr *eth = (struct ethhdr *)pkt;
	struct iphdr *ip = (struct iphdr *)(pkt + 14);
	struct tcphdr *tcp = (struct tcphdr *)(pkt + 34);
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt,
		    .data_size_in = sizeof(buf) - 2, .data_out = out,
		    .data_size_out = sizeof(out), .repeat = 1);

	memset(buf, 0, sizeof(buf));
	memset(eth->h_dest, 0x02, 6);
	memset(eth->h_source, 0x04, 6);
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons(40);
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	ip->saddr = ip_of(src).addr.v4;
	ip->daddr = ip_of(dst).addr.v4;
	ip->check = ip_csum(ip, 20);
	tcp->source = htons(40000);
	tcp->dest = htons(dport);
	tcp->doff = 5;
	tcp->syn = 1;
	cr_assert_eq(bpf_prog_test_run_opts(
			     bpf_program__fd(a->skel->progs.aether_lb), &opts), 0);
	return opts.retval;
}

static uint64_t reason_count(struct aeth_agent *a, int reason)
{
	struct aeth_global_stats g;

	cr_assert_eq(aeth_percpu_sum_u64(a->fds.global, 0, &g, sizeof(g)), 0);
	return g.reasons[reason];
}

Test(apply, datapath_follows_applied_maps)
{
	struct aeth_flow flow;
	struct aeth_ct_entry ce;
	struct aeth_ct_key ck;
	struct aeth_node node;
	struct aeth_svc api;
	uint32_t zero = 0, *table;
	uint64_t before;
	int v;

	apply_ok(A, DOC_A);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &api));

	/* not a VIP: untouched */
	cr_assert_eq(run_syn(A, "198.51.100.7", "203.0.113.77", 6443), XDP_PASS);

	/* the VIP on a port no service names */
	before = reason_count(A, AETH_R_UNCONFIGURED_PORT);
	cr_assert_eq(run_syn(A, "198.51.100.7", "203.0.113.10", 7), XDP_DROP);
	cr_assert_eq(reason_count(A, AETH_R_UNCONFIGURED_PORT), before + 1);

	/* a source outside the authorized networks */
	before = reason_count(A, AETH_R_NOT_AUTHORIZED);
	cr_assert_eq(run_syn(A, "198.51.101.7", "203.0.113.10", 6443), XDP_DROP);
	cr_assert_eq(reason_count(A, AETH_R_NOT_AUTHORIZED), before + 1);

	/* an authorized one gets the backend the agent's table names for
	 * its hash (whatever happens to the packet after that here) */
	before = reason_count(A, AETH_R_NOT_AUTHORIZED);
	v = run_syn(A, "198.51.100.7", "203.0.113.10", 6443);
	cr_assert_eq(reason_count(A, AETH_R_NOT_AUTHORIZED), before);
	memset(&flow, 0, sizeof(flow));
	flow.src = ip_of("198.51.100.7").addr;
	flow.dst = ip_of("203.0.113.10").addr;
	flow.sport = htons(40000);
	flow.dport = htons(6443);
	flow.proto = IPPROTO_TCP;
	flow.family = AETH_AF_INET;
	ck = aeth_ct_key_of(&flow, api.id);
	cr_assert_eq(agent_ct_get(A, &ck, &ce), 0,
		     "no connection entry (verdict %d)", v);
	cr_assert_eq(bpf_map_lookup_elem(A->fds.node, &zero, &node), 0);
	table = read_table(slot_map_id(A->fds.maglev, api.maglev_slot), 251);
	cr_assert_eq(ce.backend_id,
		     table[aeth_maglev_slot(aeth_flow_hash(&flow, node.hash_seed), 251)]);
	free(table);
}

/* ---- the VIP filter of the agent's program -------------------------- */

#define DOC_V6_ONLY DOC_HEAD SVC_V6 DOC_TAIL

/* Each committed apply leaves every bucket's bit set but those of its
 * VIPs; a VIP added has its bit clear and is judged, a VIP removed gets
 * its bit back and its packets pass like any other address's. */
Test(apply, vip_filter_follows_applies)
{
	unsigned int buckets;

	/* no VIP yet: the state recovered from empty pins says so */
	cr_assert_eq(filter_bits_set(A), AETH_VIP_FILTER_BITS);
	apply_ok(A, DOC_A);
	buckets = assert_vips_not_filtered(A, "DOC_A");
	cr_assert_eq(buckets, 2);	/* 203.0.113.10, 2001:db8::10 */
	cr_assert_eq(filter_bits_set(A), AETH_VIP_FILTER_BITS - buckets);
	cr_assert(filter_no_vip(A, "203.0.113.20"));
	cr_assert_eq(run_syn(A, "198.51.100.7", "203.0.113.20", 80), XDP_PASS);
	cr_assert_eq(run_syn(A, "198.51.100.7", "203.0.113.10", 7), XDP_DROP);

	cr_assert_eq(A->skel->bss->lb_vip_filter_stamp, stamp_of(A),
		     "the agent vouches for its filter at every stamp");
	apply_ok(A, DOC_C);	/* adds 203.0.113.20 */
	cr_assert_eq(A->skel->bss->lb_vip_filter_stamp, stamp_of(A));
	buckets = assert_vips_not_filtered(A, "DOC_C");
	cr_assert_eq(buckets, 3);
	cr_assert_eq(filter_bits_set(A), AETH_VIP_FILTER_BITS - buckets);
	cr_assert_not(filter_no_vip(A, "203.0.113.20"));
	cr_assert_eq(run_syn(A, "198.51.100.7", "203.0.113.20", 8080),
		     XDP_DROP, "the new VIP is judged");

	apply_ok(A, DOC_V6_ONLY);	/* both IPv4 VIPs gone */
	cr_assert_eq(assert_vips_not_filtered(A, "DOC_V6_ONLY"), 1);
	cr_assert_eq(filter_bits_set(A), AETH_VIP_FILTER_BITS - 1);
	cr_assert(filter_no_vip(A, "203.0.113.10"));
	cr_assert(filter_no_vip(A, "203.0.113.20"));
	cr_assert_eq(run_syn(A, "198.51.100.7", "203.0.113.10", 6443),
		     XDP_PASS);
}

/* A restarted agent loads a new program, whose filter starts all clear
 * (every packet the long way), and fills it from the state it recovers
 * before the program is attached. */
Test(apply, vip_filter_filled_for_a_restarted_agent)
{
	unsigned int buckets;

	apply_ok(A, DOC_C);
	agent_close(A);
	A = agent_open(dir);
	buckets = assert_vips_not_filtered(A, "restart");
	cr_assert_eq(A->skel->bss->lb_vip_filter_stamp, stamp_of(A));
	cr_assert_eq(buckets, 3);	/* 203.0.113.10, .20, 2001:db8::10 */
	cr_assert_eq(filter_bits_set(A), AETH_VIP_FILTER_BITS - buckets);
	cr_assert_eq(run_syn(A, "198.51.100.7", "203.0.113.20", 8080),
		     XDP_DROP);
	cr_assert_eq(run_syn(A, "198.51.100.7", "203.0.113.30", 80), XDP_PASS);
}

/* A document may hold at most half of the backend id space
 * (AETH_CFG_MAX_BACKENDS): the running document's ids stay taken until the
 * switch, so replacing 8,000 backends by 8,000 others (16,000 ids at once)
 * must work, and a document beyond the limit is refused by validation,
 * with its place, before any map is touched. */
static char *many_backends_doc(int prefix, int n_services)
{
	size_t cap = 9 * 1000 * 40 + 8192, len;
	char *doc = malloc(cap);

	len = snprintf(doc, cap,
		       "{\"version\":1,\"node\":{\"interfaces\":[\"lo\"],"
		       "\"addresses\":{\"ipv6\":\"2001:db8::11\"}},"
		       "\"maglev\":{\"seed\":\"5f3c0a1e9b7d2c44a1b2c3d4e5f60718\","
		       "\"table_size\":16381},\"services\":[");
	for (int s = 0; s < n_services; s++) {
		len += snprintf(doc + len, cap - len,
				"%s{\"name\":\"s%d\",\"vip\":\"203.0.113.%d\","
				"\"port\":80,\"protocol\":\"tcp\",\"backends\":[",
				s ? "," : "", s, s + 1);
		for (int b = 0; b < 1000; b++)
			len += snprintf(doc + len, cap - len,
					"%s{\"address\":\"2001:db8:%x:%x::%x\"}",
					b ? "," : "", prefix, s, b + 1);
		len += snprintf(doc + len, cap - len, "]}");
	}
	snprintf(doc + len, cap - len, "]}");
	return doc;
}

Test(apply, backend_ids_never_exhausted_by_a_valid_document, .timeout = 120)
{
	char *one = many_backends_doc(1, 8), *two = many_backends_doc(2, 8);
	char *big = many_backends_doc(3, 9);
	struct aeth_apply_result res;
	struct snapshot before, now;
	int rc;

	rc = aeth_apply_text(A, one, strlen(one), "test", &res);
	cr_assert_eq(rc, 0, "%s", res.message);
	rc = aeth_apply_text(A, two, strlen(two), "test", &res);
	cr_assert_eq(rc, 0, "%s", res.message);
	snap(A, &before);
	rc = aeth_apply_text(A, big, strlen(big), "test", &res);
	cr_assert_eq(rc, -EINVAL, "rc %d: %s", rc, res.message);
	cr_assert(res.rejected);
	cr_assert_str_eq(res.err.path, "services[8].backends");
	cr_assert_str_eq(res.err.message,
			 "too many backends in total (at most 8192)");
	snap(A, &now);
	assert_same_serving_state(&before, &now, 0);
	cr_assert_str_eq(A->last_result, "rejected");
	free(before.be);
	free(now.be);
	free(one);
	free(two);
	free(big);
}

/* SPEC: at least 10,000 CIDRs per service. All of them in the trie, the
 * apply timed (printed). */
Test(apply, ten_thousand_cidrs, .timeout = 120)
{
	size_t cap = 10000 * 32 + 4096, len;
	char *doc = malloc(cap);
	struct aeth_apply_result res;
	struct aeth_acl_key k, nk, *prev = NULL;
	struct timespec t0, t1;
	struct aeth_svc s;
	uint32_t n = 0;
	int trie, rc;

	len = snprintf(doc, cap,
		       "{\"version\":1,\"node\":{\"interfaces\":[\"lo\"],"
		       "\"addresses\":{\"ipv4\":\"192.0.2.11\"}},"
		       "\"maglev\":{\"seed\":\"5f3c0a1e9b7d2c44a1b2c3d4e5f60718\","
		       "\"table_size\":251},\"services\":[{\"name\":\"api\","
		       "\"vip\":\"203.0.113.10\",\"port\":6443,\"protocol\":\"tcp\","
		       "\"authorized_networks\":{\"enabled\":true,\"cidrs\":[");
	for (int i = 0; i < 10000; i++)
		len += snprintf(doc + len, cap - len, "%s\"2001:db8:%x::/48\"",
				i ? "," : "", i);
	len += snprintf(doc + len, cap - len, ",\"198.51.100.0/24\"]},"
			"\"backends\":[{\"address\":\"192.0.2.21\"}]}]}");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = aeth_apply_text(A, doc, len, "test", &res);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_eq(rc, 0, "%s", res.message);
	fprintf(stderr, "apply: one service with 10001 CIDRs: %.1f ms\n",
		(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &s));
	trie = bpf_map_get_fd_by_id(slot_map_id(A->fds.acl, s.acl_slot));
	cr_assert_geq(trie, 0);
	while (bpf_map_get_next_key(trie, prev, &nk) == 0) {
		k = nk;
		prev = &k;
		n++;
	}
	cr_assert_eq(n, 10001);
	cr_assert(acl_has(trie, "2001:db8:270f::1"));	/* the last one */
	cr_assert(acl_has(trie, "198.51.100.200"));
	cr_assert_not(acl_has(trie, "2001:db8:2710::1"));
	close(trie);
	free(doc);
}

/* Read what the agent logged while fn ran (stderr into a file). */
static void capture_log(void (*fn)(void), char *out, size_t len)
{
	char path[] = "/tmp/aeth-ag-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	ssize_t n;

	cr_assert_geq(fd, 0);
	fflush(stderr);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, out, len - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
}

static void reopen(void)
{
	agent_close(A);
	A = agent_open(dir);
}

/* kill -9 after an apply wrote new backend entries but before its switch
 * leaves entries of no live service: the restart log counts the live
 * backends only, names the others apart, and the next apply frees them. */
Test(apply, restart_log_counts_live_backends_only)
{
	struct aeth_backend b, got;
	char log[4096];

	apply_ok(A, DOC_A);	/* 3 services, 8 backends */
	memset(&b, 0, sizeof(b));
	b.family = AETH_AF_INET6;
	b.flags = AETH_BE_F_IN_USE;
	b.svc_id = AETH_MAX_SERVICES - 1;	/* no such service */
	for (uint32_t id = 5000; id < 6000; id++) {
		b.addr.bytes[15] = (uint8_t)id;
		cr_assert_eq(bpf_map_update_elem(A->fds.backend, &id, &b,
						 BPF_ANY), 0);
	}
	aeth_log_init(AETH_LOG_INFO, false);
	capture_log(reopen, log, sizeof(log));
	cr_assert_not_null(strstr(log, "recovered 3 services and 8 backends"),
			   "%s", log);
	cr_assert_not_null(strstr(log, "1000 backend entries of an unfinished "
				  "apply are not live"), "%s", log);
	apply_ok(A, DOC_B);
	for (uint32_t id = 5000; id < 6000; id += 111) {
		memset(&got, 0, sizeof(got));
		bpf_map_lookup_elem(A->fds.backend, &id, &got);
		cr_assert_not(got.flags & AETH_BE_F_IN_USE, "id %u kept", id);
	}
}

static int decap_count(struct aeth_agent *a)
{
	struct aeth_acl_key k, next;
	void *prev = NULL;
	int n = 0;

	while (bpf_map_get_next_key(a->fds.decap, prev, &next) == 0) {
		k = next;
		prev = &k;
		n++;
	}
	return n;
}

#define DOC_DECAP(list) \
	"{'version':1,'node':{'interfaces':['lo'],'xdp_mode':'generic'," \
	"'addresses':{'ipv4':'192.0.2.11','ipv6':'2001:db8::11'},'mtu':1500}," \
	"'maglev':{'seed':'5f3c0a1e9b7d2c44a1b2c3d4e5f60718','table_size':251}," \
	"'conntrack':{'max_entries':4096,'udp_timeout_s':45}," \
	"'icmp':{'too_big_per_second_per_cpu':77}," \
	"'decap':{'sources':[" list "]},'services':[" SVC_DNS "]}"

/* decap.sources is what aeth_decap holds, replaced as a whole; the node
 * entry carries the UDP timeout and the ICMP budget. */
Test(apply, decap_sources_and_node_settings)
{
	struct aeth_node node;
	uint32_t zero = 0, family;

	apply_ok(A, DOC_DECAP("'192.0.2.1/32','2001:db8:1::/64'"));
	cr_assert_eq(decap_count(A), 2);
	cr_assert(acl_match(A->fds.decap, "192.0.2.1", &family));
	cr_assert_eq(family, AETH_AF_INET);
	cr_assert(acl_match(A->fds.decap, "2001:db8:1::5", &family));
	cr_assert_eq(family, AETH_AF_INET6);
	cr_assert(!acl_has(A->fds.decap, "192.0.2.2"));
	cr_assert_eq(bpf_map_lookup_elem(A->fds.node, &zero, &node), 0);
	cr_assert_eq(node.udp_timeout_s, 45);
	cr_assert_eq(node.icmp_rate, 77);

	apply_ok(A, DOC_DECAP("'192.0.2.0/30'"));
	cr_assert_eq(decap_count(A), 1);
	cr_assert(acl_has(A->fds.decap, "192.0.2.2"));
	cr_assert(!acl_has(A->fds.decap, "2001:db8:1::5"));

	apply_ok(A, DOC_A);	/* no decap member: no tunnel accepted */
	cr_assert_eq(decap_count(A), 0);
	cr_assert_eq(bpf_map_lookup_elem(A->fds.node, &zero, &node), 0);
	cr_assert_eq(node.udp_timeout_s, AETH_DEFAULT_UDP_TIMEOUT_S);
	cr_assert_eq(node.icmp_rate, AETH_DEFAULT_ICMP_RATE);
}

/* ---- switching tables and lists while packets are in flight ------------- */

#define DOC_API_V(cidrs, extra_backend) \
	DOC_HEAD "{'name':'api','vip':'203.0.113.10','port':6443," \
	"'protocol':'tcp','authorized_networks':{'enabled':true,'cidrs':[" \
	cidrs "]},'backends':[{'address':'192.0.2.21'}," \
	"{'address':'" extra_backend "'}]}" DOC_TAIL
#define DOC_API_1 DOC_API_V("'198.51.100.0/24'", "192.0.2.22")
#define DOC_API_2 DOC_API_V("'198.51.100.0/24','203.0.113.0/24'", "192.0.2.23")

/* A packet that read the service entry just before a switch looks up the
 * old slots after it: they must still hold the whole old table and list
 * (they are emptied one apply later, when no such packet can be left). */
Test(apply, switched_slots_stay_whole_for_packets_in_flight)
{
	struct aeth_svc before, after;
	uint32_t tbl_id, *tbl0, *tbl1;
	int trie_id;

	apply_ok(A, DOC_API_1);
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &before));
	tbl_id = slot_map_id(A->fds.maglev, before.maglev_slot);
	tbl0 = read_table(tbl_id, 251);

	apply_ok(A, DOC_API_2);	/* new table and new list */
	cr_assert(svc_get(A, "203.0.113.10", 6443, IPPROTO_TCP, &after));
	cr_assert_neq(after.maglev_slot, before.maglev_slot);
	cr_assert_neq(after.acl_slot, before.acl_slot);
	/* what the in-flight packet finds through its old entry */
	cr_assert_eq(slot_map_id(A->fds.maglev, before.maglev_slot), tbl_id);
	tbl1 = read_table(tbl_id, 251);
	cr_assert_arr_eq(tbl1, tbl0, 251 * sizeof(uint32_t));
	trie_id = slot_map_id(A->fds.acl, before.acl_slot);
	cr_assert_neq(trie_id, 0, "old list emptied under the packet");
	{
		int fd = bpf_map_get_fd_by_id(trie_id);

		cr_assert_geq(fd, 0);
		cr_assert(acl_has(fd, "198.51.100.7"));
		close(fd);
	}
	free(tbl0);
	free(tbl1);
	/* one apply later they are released (unless taken back), also when
	 * that apply is the same document again (no new generation) */
	apply_ok(A, DOC_API_2);
	cr_assert_eq(slot_map_id(A->fds.maglev, before.maglev_slot), 0);
	cr_assert_eq(slot_map_id(A->fds.acl, before.acl_slot), 0);
}

struct flipper_load {
	struct aeth_agent *a;
	volatile int stop;
	uint64_t runs;
};

/* Authorized ACKs without an entry: the ACL and the Maglev table on every
 * packet, no limiter, no state. */
static void *flipper_traffic(void *arg)
{
	struct flipper_load *l = arg;
	uint8_t buf[2 + 14 + 20 + 20] __attribute__((aligned(4))), out[256];
	uint8_t *pkt = buf + 2;
	struct iphdr *ip = (struct iphdr *)(pkt + 14);
	struct tcphdr *tcp = (struct tcphdr *)(pkt + 34);
	int fd = bpf_program__fd(l->a->skel->progs.aether_lb);

	memset(buf, 0, sizeof(buf));
	((struct ethhdr *)pkt)->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons(40);
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	ip->daddr = ip_of("203.0.113.10").addr.v4;
	tcp->dest = htons(6443);
	tcp->doff = 5;
	tcp->ack = 1;
	while (!l->stop) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt,
			    .data_size_in = sizeof(buf) - 2, .data_out = out,
			    .data_size_out = sizeof(out), .repeat = 1);

		ip->saddr = htonl(0xc6336400u | (l->runs & 0xff));
		tcp->source = htons(1024 + (l->runs & 0x7fff));
		ip->check = 0;
		ip->check = ip_csum(ip, 20);
		if (bpf_prog_test_run_opts(fd, &opts))
			break;
		l->runs++;
	}
	return NULL;
}

/* Tables and lists switched back and forth under traffic from authorized
 * sources: never no_backend, never not_authorized. */
Test(apply, table_and_acl_switches_under_load)
{
	struct flipper_load l = { .a = NULL };
	uint64_t nb, na;
	pthread_t t;

	apply_ok(A, DOC_API_1);
	l.a = A;
	nb = reason_count(A, AETH_R_NO_BACKEND);
	na = reason_count(A, AETH_R_NOT_AUTHORIZED);
	cr_assert_eq(pthread_create(&t, NULL, flipper_traffic, &l), 0);
	for (int i = 0; i < 60; i++)
		apply_ok(A, i % 2 ? DOC_API_1 : DOC_API_2);
	l.stop = 1;
	pthread_join(t, NULL);
	cr_log_info("%llu packets during 60 switches",
		    (unsigned long long)l.runs);
	cr_assert_gt(l.runs, 1000);
	cr_assert_eq(reason_count(A, AETH_R_NO_BACKEND), nb);
	cr_assert_eq(reason_count(A, AETH_R_NOT_AUTHORIZED), na);
}

/* ---- the compiled IPv4 form of the lists (aeth_acl_rng) ---------------- */

#define DOC_ACL(cidrs)                                                        \
	DOC_HEAD "{'name':'guarded','vip':'203.0.113.40','port':443,"        \
	"'protocol':'tcp','authorized_networks':{'enabled':true,"            \
	"'cidrs':[" cidrs "]},'backends':[{'address':'192.0.2.61'}]}"        \
	DOC_TAIL

static struct aeth_acl_rng_at rng_at(uint32_t slot)
{
	struct aeth_acl_rng_at at;

	cr_assert_eq(bpf_map_lookup_elem(A->fds.acl_rngidx, &slot, &at), 0);
	return at;
}

static uint64_t rng_get(uint32_t i)
{
	uint64_t v;

	cr_assert_eq(bpf_map_lookup_elem(A->fds.acl_rng, &i, &v), 0);
	return v;
}

static uint32_t host4(const char *text)
{
	struct in_addr a;

	cr_assert_eq(inet_pton(AF_INET, text, &a), 1);
	return ntohl(a.s_addr);
}

static void expect_interval(uint32_t i, const char *first, const char *last)
{
	uint64_t v = rng_get(i);

	cr_expect_eq(v >> 32, host4(first), "interval %u starts at %08x", i,
		     (uint32_t)(v >> 32));
	cr_expect_eq((uint32_t)v, host4(last), "interval %u ends at %08x", i,
		     (uint32_t)v);
}

/* The apply writes the slot's intervals (adjacent prefixes merged, IPv6
 * prefixes not admitting IPv4) before the flip; a replaced list keeps its
 * region until the slot is emptied one apply later. */
Test(apply, acl_compiled_form_written_with_the_list)
{
	struct aeth_acl_rng_at at, at2;
	struct aeth_svc s, s2;

	apply_ok(A, DOC_ACL("'198.51.101.0/24','10.0.0.0/8','198.51.100.0/24',"
			    "'::/0','2001:db8:100::/48'"));
	cr_assert(svc_get(A, "203.0.113.40", 443, IPPROTO_TCP, &s));
	at = rng_at(s.acl_slot);
	cr_assert_eq(at.flags, AETH_ACL_RNG_F_COMPILED);
	cr_assert_eq(at.count, 2);
	expect_interval(at.offset, "10.0.0.0", "10.255.255.255");
	expect_interval(at.offset + 1, "198.51.100.0", "198.51.101.255");

	apply_ok(A, DOC_ACL("'192.0.2.0/25','192.0.2.200/32'"));
	cr_assert(svc_get(A, "203.0.113.40", 443, IPPROTO_TCP, &s2));
	cr_assert_neq(s2.acl_slot, s.acl_slot);
	at2 = rng_at(s2.acl_slot);
	cr_assert_eq(at2.flags, AETH_ACL_RNG_F_COMPILED);
	cr_assert_eq(at2.count, 2);
	expect_interval(at2.offset, "192.0.2.0", "192.0.2.127");
	expect_interval(at2.offset + 1, "192.0.2.200", "192.0.2.200");
	/* the retired list is intact for packets in flight */
	cr_assert_eq(rng_at(s.acl_slot).flags, AETH_ACL_RNG_F_COMPILED);
	cr_assert(at2.offset >= at.offset + at.count ||
		  at2.offset + at2.count <= at.offset, "regions overlap");
	expect_interval(at.offset, "10.0.0.0", "10.255.255.255");

	apply_ok(A, DOC_ACL("'192.0.2.0/25','192.0.2.200/32'"));
	cr_assert_eq(rng_at(s.acl_slot).flags, 0, "retired slot kept");
	cr_assert_eq(rng_at(s2.acl_slot).flags, AETH_ACL_RNG_F_COMPILED);
}

/* A list of eight or more intervals is written with its directory after
 * its intervals, and a second list's region clears both; with room for
 * the intervals only, the list is compiled without it. */
Test(apply, acl_compiled_form_with_directory)
{
	struct aeth_acl_rng_at at, at2;
	struct aeth_svc s, s2;
	uint64_t d;

	apply_ok(A, DOC_ACL("'10.0.0.0/16','20.0.0.0/16','30.0.0.0/16',"
			    "'40.0.0.0/16','50.0.0.0/16','60.0.0.0/16',"
			    "'70.0.0.0/16','80.0.0.0/16','90.0.0.0/16'"));
	cr_assert(svc_get(A, "203.0.113.40", 443, IPPROTO_TCP, &s));
	at = rng_at(s.acl_slot);
	cr_assert_eq(at.flags, AETH_ACL_RNG_F_COMPILED | AETH_ACL_RNG_F_DIR);
	cr_assert_eq(at.count, 9);
	cr_assert_eq(at.dir_bits, 5);	/* 32 blocks of 2^27 addresses */
	expect_interval(at.offset + 8, "90.0.0.0", "90.0.255.255");
	/* block 3 (24.0.0.0 - 31.255.255.255) holds 30/16, the third */
	d = rng_get(at.offset + 9 + 3);
	cr_expect_eq(d, 2ull << 32 | 1, "block 3: %#llx",
		     (unsigned long long)d);
	d = rng_get(at.offset + 9 + 31);	/* 248.0.0.0 and up: none */
	cr_expect_eq((uint32_t)d, 0);

	apply_ok(A, DOC_ACL("'192.0.2.0/25','192.0.2.200/32'"));
	cr_assert(svc_get(A, "203.0.113.40", 443, IPPROTO_TCP, &s2));
	at2 = rng_at(s2.acl_slot);
	cr_assert(at2.offset >= at.offset + 9 + 32 ||
		  at2.offset + at2.count <= at.offset,
		  "region %u+%u overlaps the directory at %u", at2.offset,
		  at2.count, at.offset);

	/* the list's slot is written again, its old region free: room for
	 * one entry less than the intervals and the directory */
	aeth_apply_acl_rng_cap = 9 + 32 - 1;
	apply_ok(A, DOC_ACL("'10.0.0.0/16','20.0.0.0/16','30.0.0.0/16',"
			    "'40.0.0.0/16','50.0.0.0/16','60.0.0.0/16',"
			    "'70.0.0.0/16','80.0.0.0/16','90.0.0.0/16'"));
	aeth_apply_acl_rng_cap = AETH_ACL_RNG_CAP;
	cr_assert(svc_get(A, "203.0.113.40", 443, IPPROTO_TCP, &s));
	at = rng_at(s.acl_slot);
	cr_assert_eq(at.flags, AETH_ACL_RNG_F_COMPILED, "directory kept");
	cr_assert_eq(at.count, 9);
	expect_interval(at.offset, "10.0.0.0", "10.0.255.255");
}

/* An empty list is compiled to no interval (no IPv4 source) ; with no
 * room in the array the slot is left to the trie. */
Test(apply, acl_compiled_form_empty_and_full)
{
	struct aeth_acl_rng_at at;
	struct aeth_svc s;

	apply_ok(A, DOC_ACL(""));
	cr_assert(svc_get(A, "203.0.113.40", 443, IPPROTO_TCP, &s));
	at = rng_at(s.acl_slot);
	cr_assert_eq(at.flags, AETH_ACL_RNG_F_COMPILED);
	cr_assert_eq(at.count, 0);

	aeth_apply_acl_rng_cap = 1;
	apply_ok(A, DOC_ACL("'198.51.100.0/24','203.0.113.0/24'"));
	aeth_apply_acl_rng_cap = AETH_ACL_RNG_CAP;
	cr_assert(svc_get(A, "203.0.113.40", 443, IPPROTO_TCP, &s));
	cr_assert_eq(rng_at(s.acl_slot).flags, 0, "compiled beyond capacity");
	apply_ok(A, DOC_ACL("'198.51.100.0/24'"));
	cr_assert(svc_get(A, "203.0.113.40", 443, IPPROTO_TCP, &s));
	cr_assert_eq(rng_at(s.acl_slot).flags, AETH_ACL_RNG_F_COMPILED);
	cr_assert_eq(rng_at(s.acl_slot).count, 1);
}

/* Pins made by an agent without the compiled form: the restarted agent
 * creates and pins the two maps, and its next list change fills them. */
Test(apply, restart_over_pins_without_compiled_form)
{
	char path[PATH_MAX];
	struct aeth_svc s;

	apply_ok(A, DOC_ACL("'198.51.100.0/24'"));
	agent_close(A);
	A = NULL;
	snprintf(path, sizeof(path), "%s/%s", dir, AETH_MAP_ACL_RNG);
	cr_assert_eq(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, AETH_MAP_ACL_RNGIDX);
	cr_assert_eq(unlink(path), 0);
	A = agent_open(dir);
	cr_assert_eq(access(path, F_OK), 0, "index not pinned again");
	cr_assert(svc_get(A, "203.0.113.40", 443, IPPROTO_TCP, &s));
	cr_assert_eq(rng_at(s.acl_slot).flags, 0);	/* the trie answers */
	apply_ok(A, DOC_ACL("'198.51.100.0/24','203.0.113.0/24'"));
	cr_assert(svc_get(A, "203.0.113.40", 443, IPPROTO_TCP, &s));
	cr_assert_eq(rng_at(s.acl_slot).flags, AETH_ACL_RNG_F_COMPILED);
	cr_assert_eq(rng_at(s.acl_slot).count, 2);
}

/* Pins made by an agent without this filter of the connection table
 * (one with none, or with the sixteen-bit aeth_ct_filter of earlier
 * releases, which this release removes): the restarted agent creates it
 * and sets the bits of every entry the table kept, so the data path still
 * finds them. */
Test(apply, restart_over_pins_without_ct_bloom)
{
	struct aeth_ct_table t;
	struct aeth_ct_entry ce = { .backend_id = 3, .seen_s = 1 };
	struct aeth_ct_key ck[3];
	LIBBPF_OPTS(bpf_map_create_opts, mmapable,
		    .map_flags = BPF_F_MMAPABLE);
	char path[PATH_MAX], old[PATH_MAX];
	uint32_t tag, idx, used[3];
	int old_fd;

	apply_ok(A, DOC_A);
	memset(ck, 0, sizeof(ck));
	for (int i = 0; i < 3; i++) {
		ck[i].src.v4 = htonl(0xc6336407);	/* 198.51.100.7 */
		ck[i].sport = htons(40000 + i);
		ck[i].svc_id = 1;
		cr_assert_eq(agent_ct_put(A, &ck[i], &ce), 0);
	}
	agent_close(A);
	A = NULL;
	snprintf(path, sizeof(path), "%s/%s", dir, AETH_MAP_CT_BLOOM);
	cr_assert_eq(unlink(path), 0);
	/* the earlier release's filter: a quarter of a word per bucket */
	snprintf(old, sizeof(old), "%s/aeth_ct_filter", dir);
	old_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aeth_ct_filter",
				sizeof(uint32_t), sizeof(uint64_t),
				AETH_DEFAULT_CT_ENTRIES / AETH_CT_WAYS / 4,
				&mmapable);
	cr_assert_geq(old_fd, 0, "%s", strerror(errno));
	cr_assert_eq(bpf_obj_pin(old_fd, old), 0, "%s", strerror(errno));
	close(old_fd);
	A = agent_open(dir);
	cr_assert_eq(access(path, F_OK), 0, "filter not pinned again");
	cr_assert_neq(access(old, F_OK), 0, "the old filter's pin is left");
	cr_assert_eq(aeth_ct_table_open(&t, A->fds.ct, A->fds.ct_bloom), 0);
	for (int i = 0; i < 3; i++) {
		idx = aeth_ct_table_bucket_of(&t, &ck[i], &tag);
		cr_assert(aeth_ct_filter_may_hold(
				  aeth_ct_table_filter_of(&t, idx), tag),
			  "entry %d's bits", i);
		used[i] = idx;
	}
	/* and no bit in a bucket of no entry */
	for (uint16_t port = 41000;; port++) {
		ck[0].sport = htons(port);
		idx = aeth_ct_table_bucket_of(&t, &ck[0], &tag);
		if (idx != used[0] && idx != used[1] && idx != used[2])
			break;
	}
	cr_assert_eq(aeth_ct_table_filter_of(&t, idx),
		     0, "bucket %u of no entry", idx);
	aeth_ct_table_close(&t);
}
