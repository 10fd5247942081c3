/* Test harness for the XDP data path: load, fill maps, run, read counters. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "acl_compile.h"
#include "aether/ct_rule.h"
#include "aether/ct_table.h"
#include "aether/vip_filter.h"
#include "aether_lb.skel.h"
#include "harness.h"
#include "pkt.h"

static int quiet_print(enum libbpf_print_level level, const char *fmt,
		       va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

/* A BPF_F_MMAPABLE array's values, or NULL. */
static void *map_whole(int fd, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

int dp_open(struct dp_h *h)
{
	return dp_open_sized(h, DP_CT_ENTRIES, DP_RL_ENTRIES);
}

int dp_open_sized(struct dp_h *h, __u32 ct_entries, __u32 rl_entries)
{
	struct aether_lb *skel;
	struct bpf_map *map;
	int err;

	memset(h, 0, sizeof(*h));
	libbpf_set_print(quiet_print);
	skel = aether_lb__open();
	if (!skel)
		return -errno;
	bpf_object__for_each_map(map, skel->obj) {
		err = bpf_map__set_pin_path(map, NULL);
		if (err)
			goto fail;
	}
	if (ct_entries)
		aeth_ct_table_set_size(skel->maps.aeth_ct,
				       skel->maps.aeth_ct_bloom,
				       aeth_ct_buckets_for(ct_entries));
	if (rl_entries)
		bpf_map__set_max_entries(skel->maps.aeth_rl_src, rl_entries);
	err = aether_lb__load(skel);
	if (err)
		goto fail;
	h->skel = skel;
	h->prog_fd = bpf_program__fd(skel->progs.aether_lb);
	h->meta = bpf_map__fd(skel->maps.aeth_meta);
	h->node = bpf_map__fd(skel->maps.aeth_node);
	h->vip = bpf_map__fd(skel->maps.aeth_vip);
	h->svc = bpf_map__fd(skel->maps.aeth_svc);
	h->svcinfo = bpf_map__fd(skel->maps.aeth_svcinfo);
	h->backend = bpf_map__fd(skel->maps.aeth_backend);
	h->maglev = bpf_map__fd(skel->maps.aeth_maglev);
	h->acl = bpf_map__fd(skel->maps.aeth_acl);
	h->ct = bpf_map__fd(skel->maps.aeth_ct);
	h->ct_bloom = bpf_map__fd(skel->maps.aeth_ct_bloom);
	err = aeth_ct_table_seed(h->ct);
	if (!err)
		err = aeth_ct_table_open(&h->ct_table, h->ct, h->ct_bloom);
	if (err)
		goto fail;
	h->ct_budget = bpf_map__fd(skel->maps.aeth_ct_budget);
	h->rl_src = bpf_map__fd(skel->maps.aeth_rl_src);
	h->rl_svc = bpf_map__fd(skel->maps.aeth_rl_svc);
	h->rl_svc_lease = bpf_map__fd(skel->maps.lb_rl_svc_lease);
	h->svc_stats = bpf_map__fd(skel->maps.aeth_svc_stats);
	h->be_stats = bpf_map__fd(skel->maps.aeth_be_stats);
	h->global = bpf_map__fd(skel->maps.aeth_global);
	h->decap = bpf_map__fd(skel->maps.aeth_decap);
	h->pcpu = bpf_map__fd(skel->maps.aeth_pcpu);
	h->tx_ports = bpf_map__fd(skel->maps.aeth_tx_ports);
	h->stamp = bpf_map__fd(skel->maps.aeth_stamp);
	h->acl_rng = bpf_map__fd(skel->maps.aeth_acl_rng);
	h->acl_rngidx = bpf_map__fd(skel->maps.aeth_acl_rngidx);
	h->rng_cap = AETH_ACL_RNG_CAP;
	h->rng = map_whole(h->acl_rng, AETH_ACL_RNG_CAP * sizeof(__u64));
	h->rngidx = map_whole(h->acl_rngidx,
			      AETH_MAX_SLOTS * sizeof(struct aeth_acl_rng_at));
	h->ncpus = libbpf_num_possible_cpus();
	if (!h->rng || !h->rngidx)
		h->ncpus = -ENOMEM;
	if (h->ncpus <= 0) {
		err = h->ncpus ? h->ncpus : -EINVAL;
		aether_lb__destroy(skel);
		h->skel = NULL;
		return err;
	}
	return 0;
fail:
	fprintf(stderr, "harness: loading aether_lb failed: %s\n",
		strerror(-err));
	aether_lb__destroy(skel);
	return err;
}

void dp_close(struct dp_h *h)
{
	if (h->rng)
		munmap(h->rng, AETH_ACL_RNG_CAP * sizeof(__u64));
	if (h->rngidx)
		munmap(h->rngidx,
		       AETH_MAX_SLOTS * sizeof(struct aeth_acl_rng_at));
	h->rng = NULL;
	h->rngidx = NULL;
	aeth_ct_table_close(&h->ct_table);
	if (h->skel)
		aether_lb__destroy(h->skel);
	h->skel = NULL;
}

int dp_addr(const char *text, union aeth_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, text, &out->v4) == 1)
		return AETH_AF_INET;
	if (inet_pton(AF_INET6, text, out->bytes) == 1)
		return AETH_AF_INET6;
	fprintf(stderr, "harness: bad address %s\n", text);
	abort();
}

void dp_node_default(struct aeth_node *node)
{
	const uint32_t seed[4] = DP_SEED;
	union aeth_addr a;

	memset(node, 0, sizeof(*node));
	dp_addr(DP_NODE_V4, &a);
	node->v4 = a.v4;
	dp_addr(DP_NODE_V6, &a);
	memcpy(node->v6, a.v6, 16);
	node->flags = AETH_NODE_F_V4 | AETH_NODE_F_V6;
	node->mtu = 1500;
	node->ct_insert_rate = 0;
	node->udp_timeout_s = AETH_DEFAULT_UDP_TIMEOUT_S;
	node->icmp_rate = AETH_DEFAULT_ICMP_RATE;
	memcpy(node->hash_seed, seed, sizeof(seed));
}

int dp_set_node(struct dp_h *h, const struct aeth_node *node)
{
	__u32 k = 0;

	return bpf_map_update_elem(h->node, &k, node, BPF_ANY) ? -errno : 0;
}

struct aeth_svc_key dp_svc_key(const char *vip, uint16_t port, uint8_t proto)
{
	struct aeth_svc_key k;

	memset(&k, 0, sizeof(k));
	k.family = dp_addr(vip, &k.vip);
	k.port = htons(port);
	k.proto = proto;
	return k;
}

struct aeth_svc dp_svc(uint32_t id, uint32_t maglev_slot, uint32_t table_size)
{
	struct aeth_svc s;

	memset(&s, 0, sizeof(s));
	s.id = id;
	s.maglev_slot = maglev_slot;
	s.table_size = table_size;
	return s;
}

int dp_add_service(struct dp_h *h, const struct aeth_svc_key *key,
		   const struct aeth_svc *svc)
{
	struct aeth_vip_key vk;
	__u32 n = 0;

	memset(&vk, 0, sizeof(vk));
	vk.addr = key->vip;
	vk.family = key->family;
	/* the VIP filter's bit of the VIP cleared before the VIP is
	 * written, as the agent does (unmapped: all clear anyway) */
	(void)dp_vip_filter_set(h, &vk.addr, false);
	if (bpf_map_lookup_elem(h->svc, key, &(struct aeth_svc){ 0 }) != 0) {
		/* a new (vip, port, proto): count it on the VIP */
		bpf_map_lookup_elem(h->vip, &vk, &n);
		n++;
		if (bpf_map_update_elem(h->vip, &vk, &n, BPF_ANY))
			return -errno;
	}
	if (bpf_map_update_elem(h->svc, key, svc, BPF_ANY))
		return -errno;
	return dp_bump_generation(h);
}

int dp_bump_generation(struct dp_h *h)
{
	struct aeth_meta meta;
	__u32 k = 0;

	if (bpf_map_lookup_elem(h->meta, &k, &meta))
		return -errno;
	meta.generation++;
	if (bpf_map_update_elem(h->meta, &k, &meta, BPF_ANY))
		return -errno;
	return dp_bump_stamp(h);
}

int dp_bump_stamp(struct dp_h *h)
{
	struct aether_lb *skel = h->skel;
	__u64 stamp;
	bool vouched;
	__u32 k = 0;

	if (bpf_map_lookup_elem(h->stamp, &k, &stamp))
		return -errno;
	/* a filled VIP filter stays good across the stamps the harness
	 * writes, as the agent's does (dp_add_service clears a new VIP's
	 * bit first) */
	vouched = skel->bss && skel->bss->lb_vip_filter_stamp == stamp;
	stamp++;
	if (bpf_map_update_elem(h->stamp, &k, &stamp, BPF_ANY))
		return -errno;
	if (vouched)
		skel->bss->lb_vip_filter_stamp = stamp;
	return 0;
}

int dp_vip_filter_fill(struct dp_h *h)
{
	struct aether_lb *skel = h->skel;
	struct aeth_vip_key k, *prev = NULL;
	__u32 zero = 0;
	__u64 stamp;

	if (!skel->bss)
		return -EOPNOTSUPP;
	if (bpf_map_lookup_elem(h->stamp, &zero, &stamp))
		return -errno;
	aeth_vip_filter_all_set(skel->bss->lb_vip_filter);
	while (bpf_map_get_next_key(h->vip, prev, &k) == 0) {
		aeth_vip_filter_clear(skel->bss->lb_vip_filter, &k.addr);
		prev = &k;
	}
	skel->bss->lb_vip_filter_stamp = stamp;
	return 0;
}

int dp_vip_filter_set(struct dp_h *h, const union aeth_addr *a, bool no_vip)
{
	struct aether_lb *skel = h->skel;
	__u32 bucket = aeth_vip_filter_bucket(a);

	if (!skel->bss)
		return -EOPNOTSUPP;
	if (no_vip)
		skel->bss->lb_vip_filter[aeth_vip_filter_word(bucket)] |=
			aeth_vip_filter_mask(bucket);
	else
		aeth_vip_filter_clear(skel->bss->lb_vip_filter, a);
	return 0;
}

struct aeth_backend dp_backend(const char *addr, uint32_t flags,
			       uint32_t svc_id)
{
	struct aeth_backend b;

	memset(&b, 0, sizeof(b));
	b.family = dp_addr(addr, &b.addr);
	b.weight = 1;
	b.flags = flags;
	b.svc_id = svc_id;
	return b;
}

int dp_set_backend(struct dp_h *h, uint32_t id, const struct aeth_backend *be)
{
	return bpf_map_update_elem(h->backend, &id, be, BPF_ANY) ? -errno : 0;
}

int dp_set_maglev(struct dp_h *h, uint32_t slot, const uint32_t *table,
		  uint32_t size)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts,
		    .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	int fd, err = 0;
	__u32 i;

	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aeth_mg_test", 4, 4,
			    size ? size : 1, &opts);
	if (fd < 0)
		return -errno;
	for (i = 0; i < size; i++) {
		if (bpf_map_update_elem(fd, &i, &table[i], BPF_ANY)) {
			err = -errno;
			goto out;
		}
	}
	if (bpf_map_update_elem(h->maglev, &slot, &fd, BPF_ANY))
		err = -errno;
out:
	close(fd);	/* the outer map holds the reference */
	return err;
}

void dp_table_round_robin(uint32_t *table, uint32_t size, const uint32_t *ids,
			  size_t n)
{
	uint32_t i;

	for (i = 0; i < size; i++)
		table[i] = n ? ids[i % n] : AETH_NO_BACKEND;
}

int dp_acl_create(struct dp_h *h, uint32_t slot)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
	int fd;

	fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "aeth_acl_test",
			    sizeof(struct aeth_acl_key), sizeof(__u32),
			    AETH_MAX_ACL_CIDRS, &opts);
	if (fd < 0)
		return -errno;
	if (bpf_map_update_elem(h->acl, &slot, &fd, BPF_ANY)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int dp_acl_add(int acl_fd, const char *addr, uint32_t prefixlen)
{
	struct aeth_acl_key k;
	union aeth_addr a;
	__u32 v = 1;

	memset(&k, 0, sizeof(k));
	if (dp_addr(addr, &a) == AETH_AF_INET) {
		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		memcpy(k.addr + 12, &a.v4, 4);
		k.prefixlen = prefixlen + 96;
		v = AETH_AF_INET;
	} else {
		memcpy(k.addr, a.bytes, 16);
		k.prefixlen = prefixlen;
		v = AETH_AF_INET6;	/* the family of the prefix, as the agent */
	}
	return bpf_map_update_elem(acl_fd, &k, &v, BPF_ANY) ? -errno : 0;
}

/* Every entry of an ACL trie. *out malloc'ed. */
static int trie_entries(int fd, struct aeth_acl_entry **out, size_t *n_out)
{
	struct aeth_acl_key k, next, *prev = NULL;
	struct aeth_acl_entry *e = NULL, *t;
	size_t n = 0, cap = 0;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			t = realloc(e, cap * sizeof(*e));
			if (!t) {
				free(e);
				return -ENOMEM;
			}
			e = t;
		}
		e[n].key = next;
		if (bpf_map_lookup_elem(fd, &next, &e[n].family) == 0)
			n++;
		k = next;
		prev = &k;
	}
	*out = e;
	*n_out = n;
	return 0;
}

int dp_acl_compile(struct dp_h *h, uint32_t slot, int acl_fd)
{
	struct aeth_acl_rng_at at = { 0 };
	struct aeth_acl_entry *e;
	uint64_t *r;
	size_t n, nr;
	int err;

	if (slot >= AETH_MAX_SLOTS)
		return -EINVAL;
	err = trie_entries(acl_fd, &e, &n);
	if (err)
		return err;
	err = aeth_acl_compile_v4(e, n, &r, &nr);
	free(e);
	if (err)
		return err;
	err = aeth_acl_rng_store(r, nr, h->rngidx, AETH_MAX_SLOTS, slot,
				 h->rng_cap, (uint64_t *)h->rng, &at);
	free(r);
	if (err) {
		dp_acl_uncompile(h, slot);
		return err;
	}
	/* the index last: it is what makes the region the slot's; then
	 * aeth_meta, as the agent does after writing the tables (the
	 * program's memories of verdicts are stamped with it) */
	if (bpf_map_update_elem(h->acl_rngidx, &slot, &at, BPF_ANY))
		return -errno;
	return dp_bump_generation(h);
}

int dp_acl_uncompile(struct dp_h *h, uint32_t slot)
{
	struct aeth_acl_rng_at at = { 0 };

	if (bpf_map_update_elem(h->acl_rngidx, &slot, &at, BPF_ANY))
		return -errno;
	return dp_bump_generation(h);
}

int dp_add_tx_port(struct dp_h *h, uint32_t ifindex)
{
	return bpf_map_update_elem(h->tx_ports, &ifindex, &ifindex, BPF_ANY) ?
		       -errno : 0;
}

int dp_decap_add(struct dp_h *h, const char *addr, uint32_t prefixlen)
{
	return dp_acl_add(h->decap, addr, prefixlen);
}

int dp_run(struct dp_h *h, const void *in, size_t in_len, void *out,
	   size_t *out_len, uint32_t ifindex, uint32_t *verdict)
{
	struct xdp_md ctx = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		    .data_in = in,
		    .data_size_in = in_len,
		    .data_out = out,
		    .data_size_out = out ? *out_len : 0,
		    .repeat = 1);
	int err;

	if (ifindex) {
		ctx.data_end = in_len;
		ctx.ingress_ifindex = ifindex;
		opts.ctx_in = &ctx;
		opts.ctx_size_in = sizeof(ctx);
	}
	err = bpf_prog_test_run_opts(h->prog_fd, &opts);
	if (err)
		return -errno;
	if (out_len)
		*out_len = opts.data_size_out;
	*verdict = opts.retval;
	return 0;
}

static int percpu_sum(struct dp_h *h, int fd, uint32_t key, void *out,
		      size_t size)
{
	size_t stride = (size + 7) & ~(size_t)7;
	uint64_t *all, *sum = out;
	int cpu;
	size_t i;

	all = calloc(h->ncpus, stride);
	if (!all)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &key, all)) {
		int err = -errno;

		free(all);
		return err;
	}
	memset(out, 0, size);
	for (cpu = 0; cpu < h->ncpus; cpu++)
		for (i = 0; i < size / 8; i++)
			sum[i] += all[cpu * stride / 8 + i];
	free(all);
	return 0;
}

int dp_global(struct dp_h *h, struct aeth_global_stats *out)
{
	return percpu_sum(h, h->global, 0, out, sizeof(*out));
}

int dp_svc_stats(struct dp_h *h, uint32_t id, struct aeth_svc_stats *out)
{
	return percpu_sum(h, h->svc_stats, id, out, sizeof(*out));
}

int dp_be_stats(struct dp_h *h, uint32_t id, struct aeth_be_stats *out)
{
	return percpu_sum(h, h->be_stats, id, out, sizeof(*out));
}

static int sh(const char *cmd)
{
	int rc = system(cmd);

	if (rc != 0) {
		fprintf(stderr, "harness: '%s' failed (%d)\n", cmd, rc);
		return -EIO;
	}
	return 0;
}

/* Through an ioctl: /sys/class/net shows the namespace sysfs was mounted in,
 * not ours. */
static int read_mac(const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr;
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		err = -errno;
	else
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(fd);
	return err;
}

int dp_netns_setup(struct dp_net *net)
{
	static const char *const cmds[] = {
		"ip link set lo up",
		"ip link add aeth-dp0 type veth peer name aeth-dp1",
		"ip link add aeth-dp2 type veth peer name aeth-dp3",
		"sysctl -qw net.ipv6.conf.all.disable_ipv6=0",
		"sysctl -qw net.ipv6.conf.default.accept_dad=0",
		"sysctl -qw net.ipv6.conf.all.accept_dad=0",
		"sysctl -qw net.ipv4.ip_forward=1",
		"sysctl -qw net.ipv6.conf.all.forwarding=1",
		"ip link set aeth-dp0 up",
		"ip link set aeth-dp1 up",
		"ip link set aeth-dp2 up",
		"ip link set aeth-dp3 up",
		"ip addr add 192.0.2.1/25 dev aeth-dp0",
		"ip addr add 2001:db8::1/64 dev aeth-dp0 nodad",
		"ip addr add 192.0.2.129/25 dev aeth-dp2",
		"ip addr add 2001:db8:2::1/64 dev aeth-dp2 nodad",
		"ip neigh replace 192.0.2.21 lladdr 02:00:00:00:00:21 nud permanent dev aeth-dp0",
		"ip neigh replace 192.0.2.22 lladdr 02:00:00:00:00:21 nud permanent dev aeth-dp0",
		"ip neigh replace 192.0.2.23 lladdr 02:00:00:00:00:21 nud permanent dev aeth-dp0",
		"ip neigh replace 2001:db8::21 lladdr 02:00:00:00:00:21 nud permanent dev aeth-dp0",
		"ip neigh replace 2001:db8::22 lladdr 02:00:00:00:00:21 nud permanent dev aeth-dp0",
		"ip neigh replace 2001:db8::23 lladdr 02:00:00:00:00:21 nud permanent dev aeth-dp0",
		"ip neigh replace 192.0.2.150 lladdr 02:00:00:00:00:21 nud permanent dev aeth-dp2",
		"ip neigh replace 2001:db8:2::150 lladdr 02:00:00:00:00:21 nud permanent dev aeth-dp2",
	};
	size_t i;
	int err;

	memset(net, 0, sizeof(*net));
	if (unshare(CLONE_NEWNET)) {
		err = -errno;
		fprintf(stderr, "harness: unshare(CLONE_NEWNET): %s\n",
			strerror(errno));
		return err;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		err = sh(cmds[i]);
		if (err)
			return err;
	}
	net->if0 = if_nametoindex("aeth-dp0");
	net->if2 = if_nametoindex("aeth-dp2");
	if (!net->if0 || !net->if2)
		return -ENODEV;
	err = read_mac("aeth-dp0", net->mac_if0);
	if (!err)
		err = read_mac("aeth-dp2", net->mac_if2);
	return err;
}

size_t dp_expect_encap(const struct pkt_spec *s, const void *in, size_t in_len,
		       const char *backend, const uint8_t dmac[6],
		       const uint8_t smac[6], void *out)
{
	size_t l2 = 14 + 4 * s->n_vlan;
	struct pkt_spec o = *s;

	memcpy(o.dmac, dmac, 6);
	memcpy(o.smac, smac, 6);
	o.family = dp_addr(backend, &o.dst);
	dp_addr(o.family == AETH_AF_INET ? DP_NODE_V4 : DP_NODE_V6, &o.src);
	o.proto = s->family == AETH_AF_INET ? 4 : 41;
	o.payload = (const uint8_t *)in + l2;
	o.payload_len = in_len - l2;
	o.ip_opts_len = 0;
	o.n_ext = 0;
	o.frag_off = 0;
	o.mf = false;
	o.df = s->family == AETH_AF_INET6 ? true : s->df;
	/* with DF the outer id is 0; without, the program's own counter,
	 * which the caller takes from the output (dp_expect_take_ip_id) */
	o.ip_id = 0;
	o.flow_label = s->family == AETH_AF_INET6 ? s->flow_label : 0;
	return pkt_build(&o, out, PKT_MAX);
}

void dp_expect_take_ip_id(void *want, const void *got, size_t l3)
{
	uint8_t *w = (uint8_t *)want + l3;
	const uint8_t *g = (const uint8_t *)got + l3;

	if (w[0] != 0x45 || (w[6] & 0x40))
		return;
	w[4] = g[4];
	w[5] = g[5];
	w[10] = w[11] = 0;
	memcpy(w + 10, (uint16_t[]){ pkt_csum(w, 20, 0) }, 2);
}

int dp_pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

int dp_ct_key(struct dp_h *h, const struct aeth_flow *fl,
	      struct aeth_ct_key *key)
{
	struct aeth_svc_key sk;
	struct aeth_svc svc;

	memset(&sk, 0, sizeof(sk));
	sk.vip = fl->dst;
	sk.port = fl->dport;
	sk.proto = fl->proto;
	sk.family = fl->family;
	if (bpf_map_lookup_elem(h->svc, &sk, &svc)) {
		sk.port = 0;
		if (bpf_map_lookup_elem(h->svc, &sk, &svc))
			return -ENOENT;
	}
	*key = aeth_ct_key_of(fl, svc.id);
	return 0;
}

int dp_ct_get(struct dp_h *h, const struct aeth_flow *fl,
	      struct aeth_ct_entry *e)
{
	struct aeth_ct_key k;
	int err = dp_ct_key(h, fl, &k);

	if (err)
		return err;
	return aeth_ct_table_get(&h->ct_table, &k, e);
}

int dp_ct_put(struct dp_h *h, const struct aeth_flow *fl,
	      const struct aeth_ct_entry *e)
{
	struct aeth_ct_key k;
	int err = dp_ct_key(h, fl, &k);

	if (err)
		return err;
	return aeth_ct_table_put(&h->ct_table, &k, e);
}

int dp_ct_del(struct dp_h *h, const struct aeth_flow *fl)
{
	struct aeth_ct_key k;
	int err = dp_ct_key(h, fl, &k);

	if (err)
		return err;
	return aeth_ct_table_del(&h->ct_table, &k);
}

__u32 dp_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (__u32)ts.tv_sec;
}
