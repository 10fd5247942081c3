/* Packet fuzzer core: the configuration, the generator and its mutations,
 * and the oracle that judges every packet from its bytes alone. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "harness.h"
#include "pkt.h"
#include "pfuzz.h"

#define PF_MTU 1500
#define PF_TABLE 251
#define PF_FRAME_MAX 2048	/* what the generator may build */
#define PF_MAX_DEPTH 3		/* tunnels in tunnels in tunnels */
#define NSEC 1000000000ull
#define ETH_HLEN_MIN 14

/* ---- configuration ---------------------------------------------------- */

struct pf_cidr {
	int family;
	union aeth_addr addr;
	unsigned int plen;
};

struct pf_backend {
	const char *text;
	uint32_t flags;
	uint32_t svc;
	int family;
	union aeth_addr addr;
};

struct pf_service {
	const char *vip_text;
	uint16_t port;		/* host order, 0: every port */
	uint8_t proto;
	bool acl;
	const char *cidr_text[2];
	uint32_t be[3];		/* backend ids in the table */
	int n_be;
	uint32_t src_rate, src_burst, svc_rate, svc_burst;
	/* parsed */
	int family;
	union aeth_addr vip;
	struct pf_cidr cidr[2];
	int n_cidr;
};

/* Ids are indexes. Backends 6 and 8 sit behind the second NIC (redirect),
 * 7 has no neighbour (to the stack), 10 no route, 3 is draining (never in
 * a table). */
#define BE(t, f, s) { .text = t, .flags = AETH_BE_F_IN_USE | (f), .svc = s }
static struct pf_backend backends[] = {
	BE("192.0.2.21", 0, 0),
	BE("192.0.2.22", 0, 0),
	BE("2001:db8::21", 0, 0),
	BE("192.0.2.23", AETH_BE_F_DRAINING, 0),
	BE("2001:db8::22", 0, 1),
	BE("192.0.2.23", 0, 1),
	BE("192.0.2.150", 0, 2),
	BE("192.0.2.24", 0, 2),
	BE("2001:db8:2::150", 0, 4),
	BE("2001:db8::23", 0, 5),
	BE("203.0.113.200", 0, 1),	/* no route to it */
};
#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

static struct pf_service services[] = {
	/* the public API endpoint: ACL, per-source and per-service limits */
	{ .vip_text = "203.0.113.10", .port = 6443, .proto = 6, .acl = true,
	  .cidr_text = { "198.51.100.0/24", "2001:db8:100::/48" },
	  .be = { 0, 1, 2 }, .n_be = 3,
	  .src_rate = 2, .src_burst = 5, .svc_rate = 5000, .svc_burst = 5000 },
	{ .vip_text = "2001:db8:f::10", .port = 443, .proto = 6,
	  .be = { 4, 5, 10 }, .n_be = 3 },
	/* every UDP port of a VIP, narrower ACL */
	{ .vip_text = "203.0.113.20", .port = 0, .proto = 17, .acl = true,
	  .cidr_text = { "198.51.100.0/25", "2001:db8:100::/64" },
	  .be = { 6, 7 }, .n_be = 2, .src_rate = 1000, .src_burst = 100,
	  .svc_rate = 50, .svc_burst = 20 },
	/* no backend at all */
	{ .vip_text = "203.0.113.30", .port = 53, .proto = 17 },
	/* ACL enabled with an empty list: nobody */
	{ .vip_text = "2001:db8:f::20", .port = 8443, .proto = 17, .acl = true,
	  .be = { 8 }, .n_be = 1 },
	/* a second service on the first VIP */
	{ .vip_text = "203.0.113.10", .port = 443, .proto = 17,
	  .be = { 9 }, .n_be = 1 },
};
#define N_SERVICES (sizeof(services) / sizeof(services[0]))

static union aeth_addr node_v4, node_v6;

/* decap.sources: the LB nodes whose tunnels the node accepts. */
#define PF_LB4 "192.0.2.99"
#define PF_LB6 "2001:db8::99"
static const struct {
	const char *text;
	unsigned int plen;
} decap_sources[] = { { PF_LB4, 32 }, { "2001:db8::98", 127 } };
#define N_DECAP (sizeof(decap_sources) / sizeof(decap_sources[0]))
static struct pf_cidr decap_cidr[N_DECAP];

static size_t alen(int family)
{
	return family == AETH_AF_INET ? 4 : 16;
}

static bool addr_eq(int family, const union aeth_addr *a, const void *b)
{
	return memcmp(a->bytes, b, alen(family)) == 0;
}

static bool cidr_match(const struct pf_cidr *c, int family, const uint8_t *a)
{
	unsigned int full = c->plen / 8, rest = c->plen % 8;

	if (c->family != family)
		return false;
	if (memcmp(c->addr.bytes, a, full))
		return false;
	if (!rest)
		return true;
	return ((c->addr.bytes[full] ^ a[full]) & (0xff << (8 - rest))) == 0;
}

static void config_parse(void)
{
	char buf[64], *slash;
	size_t i;
	int j;

	dp_addr(DP_NODE_V4, &node_v4);
	dp_addr(DP_NODE_V6, &node_v6);
	for (i = 0; i < N_DECAP; i++) {
		decap_cidr[i].family = dp_addr(decap_sources[i].text,
					       &decap_cidr[i].addr);
		decap_cidr[i].plen = decap_sources[i].plen;
	}
	for (i = 0; i < N_BACKENDS; i++)
		backends[i].family = dp_addr(backends[i].text, &backends[i].addr);
	for (i = 0; i < N_SERVICES; i++) {
		struct pf_service *s = &services[i];

		s->family = dp_addr(s->vip_text, &s->vip);
		s->n_cidr = 0;
		for (j = 0; j < 2 && s->cidr_text[j]; j++) {
			struct pf_cidr *c = &s->cidr[s->n_cidr++];

			snprintf(buf, sizeof(buf), "%s", s->cidr_text[j]);
			slash = strchr(buf, '/');
			*slash = '\0';
			c->plen = atoi(slash + 1);
			c->family = dp_addr(buf, &c->addr);
		}
	}
}

/* ---- the oracle's view of the configuration ----------------------------- */

static bool is_vip(int family, const void *a)
{
	size_t i;

	for (i = 0; i < N_SERVICES; i++)
		if (services[i].family == family &&
		    addr_eq(family, &services[i].vip, a))
			return true;
	return false;
}

static bool is_node(int family, const void *a)
{
	return addr_eq(family, family == AETH_AF_INET ? &node_v4 : &node_v6, a);
}

/* (vip, port, proto) with port 0 as the wildcard, as the data path looks. */
static int service_of(int family, const void *vip, uint16_t port,
		      uint8_t proto)
{
	size_t i;
	int wild = -1;

	for (i = 0; i < N_SERVICES; i++) {
		const struct pf_service *s = &services[i];

		if (s->family != family || s->proto != proto ||
		    !addr_eq(family, &s->vip, vip))
			continue;
		if (s->port == port)
			return i;
		if (s->port == 0)
			wild = i;
	}
	return wild;
}

static bool authorized(int svc, int family, const uint8_t *src)
{
	const struct pf_service *s = &services[svc];
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					    0xff, 0xff };
	int i;

	if (!s->acl)
		return true;
	if (family == AETH_AF_INET6 && !memcmp(src, mapped, 12))
		return false;
	for (i = 0; i < s->n_cidr; i++)
		if (cidr_match(&s->cidr[i], family, src))
			return true;
	return false;
}

static bool decap_source(int family, const uint8_t *src)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					    0xff, 0xff };
	size_t i;

	if (family == AETH_AF_INET6 && !memcmp(src, mapped, 12))
		return false;
	for (i = 0; i < N_DECAP; i++)
		if (cidr_match(&decap_cidr[i], family, src))
			return true;
	return false;
}

/* ---- loading the configuration into the program ------------------------- */

static int config_load(struct dp_h *h)
{
	struct aeth_node node;
	uint32_t table[PF_TABLE];
	size_t i;
	int err, j, fd;

	dp_node_default(&node);
	node.mtu = PF_MTU;
	err = dp_set_node(h, &node);
	for (i = 0; !err && i < N_DECAP; i++)
		err = dp_decap_add(h, decap_sources[i].text,
				   decap_sources[i].plen);
	for (i = 0; !err && i < N_BACKENDS; i++) {
		struct aeth_backend be = dp_backend(backends[i].text,
						    backends[i].flags,
						    backends[i].svc);

		err = dp_set_backend(h, i, &be);
	}
	for (i = 0; !err && i < N_SERVICES; i++) {
		const struct pf_service *s = &services[i];
		struct aeth_svc_key key = dp_svc_key(s->vip_text, s->port,
						     s->proto);
		struct aeth_svc svc = dp_svc(i, 2 * i, s->n_be ? PF_TABLE : 0);

		if (s->n_be) {
			dp_table_round_robin(table, PF_TABLE, s->be, s->n_be);
			err = dp_set_maglev(h, 2 * i, table, PF_TABLE);
			if (err)
				break;
		}
		if (s->acl) {
			fd = dp_acl_create(h, 2 * i);
			if (fd < 0) {
				err = fd;
				break;
			}
			for (j = 0; !err && j < s->n_cidr; j++) {
				char *t = strdup(s->cidr_text[j]);

				*strchr(t, '/') = '\0';
				err = dp_acl_add(fd, t, s->cidr[j].plen);
				free(t);
			}
			close(fd);
			svc.flags |= AETH_SVC_F_ACL;
			svc.acl_slot = 2 * i;
		}
		svc.src_prefix_v4 = 32;
		svc.src_prefix_v6 = 64;
		if (s->src_rate) {
			svc.src_interval_ns = NSEC / s->src_rate;
			svc.src_tolerance_ns = (s->src_burst - 1) *
					       svc.src_interval_ns;
		}
		if (s->svc_rate) {
			svc.svc_interval_ns = NSEC / s->svc_rate;
			svc.svc_tolerance_ns = (s->svc_burst - 1) *
					       svc.svc_interval_ns;
		}
		if (!err)
			err = dp_add_service(h, &key, &svc);
	}
	return err;
}

/* ---- random numbers ----------------------------------------------------- */

/* A client flow the generator sent, so ICMP errors can quote real ones. */
struct gen_flow {
	int family;
	union aeth_addr src, dst;
	uint16_t sport, dport;
	uint8_t proto;
};

#define GEN_FLOWS 16

struct gen {
	uint64_t s;
	struct gen_flow recent[GEN_FLOWS];
	unsigned int n_recent;
};

static uint64_t rnd(struct gen *g)
{
	uint64_t z = (g->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t below(struct gen *g, uint32_t n)
{
	return n ? rnd(g) % n : 0;
}

static bool chance(struct gen *g, uint32_t percent)
{
	return below(g, 100) < percent;
}

static void rand_bytes(struct gen *g, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n--)
		*p++ = rnd(g);
}

/* ---- the generator ------------------------------------------------------ */

static void addr_from(union aeth_addr *a, int family, const char *text)
{
	union aeth_addr t;

	dp_addr(text, &t);
	memset(a, 0, sizeof(*a));
	memcpy(a->bytes, t.bytes, alen(family));
}

static void pick_vip(struct gen *g, int family, union aeth_addr *a)
{
	size_t i, n = 0, idx[N_SERVICES];

	for (i = 0; i < N_SERVICES; i++)
		if (services[i].family == family)
			idx[n++] = i;
	*a = services[idx[below(g, n)]].vip;
}

/* Sources: mostly authorized clients, some strangers, some odd. */
static void pick_src(struct gen *g, int family, union aeth_addr *a)
{
	uint32_t r = below(g, 100);

	memset(a, 0, sizeof(*a));
	if (family == AETH_AF_INET) {
		if (r < 55)
			addr_from(a, family, "198.51.100.0");
		else if (r < 75)
			addr_from(a, family, "203.0.113.0");
		else if (r < 80)
			addr_from(a, family, "192.0.2.0");
		else {
			rand_bytes(g, a->bytes, 4);
			return;
		}
		/* few authorized clients, so their limits are met */
		a->bytes[3] = r < 55 ? below(g, 16) * 9 : rnd(g);
		return;
	}
	if (r < 55) {
		addr_from(a, family, "2001:db8:100::");
		if (chance(g, 30))
			a->bytes[7] = rnd(g);	/* in the /48, maybe not the /64 */
		a->bytes[15] = rnd(g);
	} else if (r < 70) {
		addr_from(a, family, "2001:db8:ffff::");
		a->bytes[15] = rnd(g);
	} else if (r < 80) {
		/* an authorized IPv4 client written as ::ffff:a.b.c.d */
		a->bytes[10] = a->bytes[11] = 0xff;
		a->bytes[12] = 198;
		a->bytes[13] = 51;
		a->bytes[14] = 100;
		a->bytes[15] = rnd(g);
	} else if (r < 85) {
		pick_vip(g, family, a);
	} else {
		rand_bytes(g, a->bytes, 16);
	}
}

static void pick_dst(struct gen *g, int family, union aeth_addr *a)
{
	uint32_t r = below(g, 100);

	memset(a, 0, sizeof(*a));
	if (r < 50)
		pick_vip(g, family, a);
	else if (r < 70)
		*a = family == AETH_AF_INET ? node_v4 : node_v6;
	else if (r < 85)
		addr_from(a, family, family == AETH_AF_INET ? "192.0.2.99" :
							      "2001:db8::99");
	else
		rand_bytes(g, a->bytes, alen(family));
}

static uint16_t pick_port(struct gen *g)
{
	static const uint16_t ports[] = { 6443, 443, 53, 8443 };

	if (chance(g, 75))
		return ports[below(g, 4)];
	return rnd(g);
}

static size_t gen_l3(struct gen *g, int depth, int family, void *out,
		     size_t cap);

/* An ICMP error quoting a packet the VIP supposedly sent, often garbled. */
static size_t gen_icmp_error(struct gen *g, int family, uint8_t *p, size_t cap)
{
	struct pkt_spec q;
	size_t qlen, want;

	memset(&q, 0, sizeof(q));
	if (family == AETH_AF_INET)
		p[0] = chance(g, 85) ? (uint8_t[]){ 3, 11, 12 }[below(g, 3)] :
				       rnd(g);
	else
		p[0] = chance(g, 85) ? 1 + below(g, 4) : rnd(g);
	p[1] = below(g, 16);
	p[2] = p[3] = 0;
	if (chance(g, 80))
		memset(p + 4, 0, 4);
	else
		rand_bytes(g, p + 4, 4);
	q.family = family;
	q.ttl = 1 + below(g, 64);
	q.df = chance(g, 50);
	if (chance(g, 80))
		pick_vip(g, family, &q.src);
	else
		pick_src(g, family, &q.src);
	pick_src(g, family, &q.dst);
	q.proto = chance(g, 50) ? 6 : chance(g, 90) ? 17 : rnd(g);
	q.sport = pick_port(g);
	q.dport = rnd(g);
	if (g->n_recent && chance(g, 50)) {	/* about a flow we sent */
		const struct gen_flow *f =
			&g->recent[below(g, g->n_recent < GEN_FLOWS ?
						    g->n_recent : GEN_FLOWS)];

		if (f->family == family) {
			q.src = f->dst;
			q.dst = f->src;
			q.sport = f->dport;
			q.dport = f->sport;
			q.proto = f->proto;
		}
	}
	q.tcp_flags = PKT_TCP_SYN;
	if (family == AETH_AF_INET && chance(g, 10)) {
		q.ip_opts_len = 4 * (1 + below(g, 10));
		rand_bytes(g, q.ip_opts, q.ip_opts_len);
	}
	qlen = pkt_build_l3(&q, p + 8, cap - 8);
	/* routers quote the header and 8 bytes, or as much as fits */
	want = chance(g, 60) ? (family == AETH_AF_INET ? 28 : 48) :
			       below(g, qlen + 1);
	if (want > qlen)
		want = qlen;
	return 8 + want;
}

/* An IPv6 packet whose extension-header chain the builder cannot make:
 * 1 to 8 headers, known (hop-by-hop, routing, fragment, destination
 * options) and not (mobility 135, HIP 139, no-next-header 59), then
 * s's addresses and a TCP or UDP header with random bytes. */
static size_t gen_long_chain(struct gen *g, const struct pkt_spec *s,
			     uint8_t *p, size_t cap)
{
	static const uint8_t types[] = { 0, 43, 44, 60, 0, 60, 135, 139, 59 };
	uint8_t *nh = p + 6;
	size_t off = 40, n, i, l4;

	if (cap < 40 + 8 * 8 * 4 + 60)
		return 0;
	memset(p, 0, 40);
	p[0] = 0x60;
	p[7] = s->ttl;
	memcpy(p + 8, s->src.bytes, 16);
	memcpy(p + 24, s->dst.bytes, 16);
	n = 1 + below(g, 8);
	for (i = 0; i < n; i++) {
		uint8_t type = types[below(g, sizeof(types))];
		size_t len = type == 44 ? 8 : 8 * (1 + below(g, 4));

		*nh = type;
		memset(p + off, 0, len);
		p[off + 1] = type == 44 ? 0 : len / 8 - 1;
		nh = p + off;
		off += len;
	}
	*nh = chance(g, 50) ? 6 : 17;
	l4 = *nh == 6 ? 20 : 8;
	rand_bytes(g, p + off, l4 + 8);
	p[off + 2] = s->dport >> 8;	/* mostly a service's port */
	p[off + 3] = s->dport;
	if (*nh == 6)
		p[off + 12] = 5 << 4;
	off += l4 + 8;
	p[4] = (off - 40) >> 8;
	p[5] = off - 40;
	return off;
}

/* One IP packet (no L2) with random features; tunnels nest up to
 * PF_MAX_DEPTH. */
static size_t gen_l3(struct gen *g, int depth, int family, void *out,
		     size_t cap)
{
	uint8_t payload[PF_FRAME_MAX];
	struct pkt_spec s;
	uint32_t r, plen;
	int i;

	memset(&s, 0, sizeof(s));
	s.family = family;
	s.ttl = chance(g, 80) ? 64 : rnd(g);
	s.tos = chance(g, 80) ? 0 : rnd(g);
	s.flow_label = rnd(g) & 0xfffff;
	s.ip_id = rnd(g);
	s.df = chance(g, 70);
	pick_src(g, family, &s.src);
	pick_dst(g, family, &s.dst);
	if (depth > 0 && chance(g, 70))
		pick_vip(g, family, &s.dst);
	s.sport = rnd(g);
	s.dport = pick_port(g);
	s.seq = rnd(g);
	s.ack = rnd(g);
	r = below(g, 100);
	if (r < 60 && r >= 45 && depth > 0)
		r = 20;		/* inner packets: mostly what a balancer sends */
	if (r < 40) {
		s.proto = 6;
		r = below(g, 100);
		s.tcp_flags = r < 50 ? PKT_TCP_SYN :
			      r < 80 ? PKT_TCP_ACK : (uint8_t)rnd(g);
	} else if (r < 60) {
		s.proto = 17;
	} else if (r < 72) {
		s.proto = family == AETH_AF_INET ? 1 : 58;
	} else if (r < 92 && depth < PF_MAX_DEPTH) {
		s.proto = chance(g, 50) ? 4 : 41;
	} else {
		s.proto = rnd(g);
	}

	if ((s.proto == 4 || s.proto == 41) && depth == 0 && chance(g, 60))
		addr_from(&s.src, family, family == AETH_AF_INET ? PF_LB4 :
								   PF_LB6);
	if (s.proto == 1 || s.proto == 58) {
		plen = gen_icmp_error(g, family, payload, sizeof(payload) / 2);
	} else if (s.proto == 4 || s.proto == 41) {
		plen = gen_l3(g, depth + 1, s.proto == 4 ? AETH_AF_INET :
							   AETH_AF_INET6,
			      payload, sizeof(payload) / 2);
	} else {
		/* some big enough to meet the MTU, at the outer level */
		r = depth ? 0 : below(g, 100);
		plen = r < 80 ? below(g, 64) : r < 95 ? below(g, 600) :
			       1380 + below(g, 200);
		rand_bytes(g, payload, plen);
	}
	s.payload = payload;
	s.payload_len = plen;
	if (depth == 0 && (s.proto == 6 || s.proto == 17)) {
		struct gen_flow *f = &g->recent[g->n_recent++ % GEN_FLOWS];

		f->family = family;
		f->src = s.src;
		f->dst = s.dst;
		f->sport = s.sport;
		f->dport = s.dport;
		f->proto = s.proto;
	}

	if (family == AETH_AF_INET) {
		if (chance(g, 8)) {
			s.ip_opts_len = 4 * (1 + below(g, 10));
			rand_bytes(g, s.ip_opts, s.ip_opts_len);
		}
		if (chance(g, 4)) {
			s.mf = chance(g, 50);
			s.frag_off = chance(g, 50) ? 0 : rnd(g) & 0x1fff;
		}
	} else if (chance(g, 18)) {
		static const uint8_t types[] = { 0, 43, 60, 44 };

		s.n_ext = 1 + below(g, 4);
		for (i = 0; i < s.n_ext; i++) {
			s.ext[i].type = types[below(g, 4)];
			s.ext[i].len8 = below(g, 4);
		}
		s.mf = chance(g, 50);
		s.frag_off = chance(g, 50) ? 0 : rnd(g) & 0x1fff;
	}
	if (family == AETH_AF_INET6 && chance(g, 5))
		return gen_long_chain(g, &s, out, cap);
	return pkt_build_l3(&s, out, cap);
}

/* Mutations of a whole frame; returns the new length. */
static size_t mutate(struct gen *g, uint8_t *f, size_t len, size_t l3_off)
{
	uint32_t n, i, pos;

	if (chance(g, 20)) {		/* flip bytes, mostly in headers */
		n = 1 + below(g, 4);
		for (i = 0; i < n; i++) {
			pos = chance(g, 70) ? below(g, len < 120 ? len : 120) :
					      below(g, len);
			f[pos] ^= 1 + below(g, 255);
		}
	}
	if (chance(g, 8) && len > l3_off + 4) {	/* lie about the length */
		uint16_t v = chance(g, 50) ? rnd(g) : (len - l3_off) +
						       below(g, 17) - 8;

		if ((f[l3_off] >> 4) == 4) {
			f[l3_off + 2] = v >> 8;
			f[l3_off + 3] = v;
		} else {
			f[l3_off + 4] = v >> 8;
			f[l3_off + 5] = v;
		}
	}
	if (chance(g, 8))		/* truncate */
		len = ETH_HLEN_MIN + below(g, len - ETH_HLEN_MIN + 1);
	if (chance(g, 4) && len + 64 <= PF_FRAME_MAX) {	/* padding */
		n = 1 + below(g, 64);
		rand_bytes(g, f + len, n);
		len += n;
	}
	if (chance(g, 3) && len + 12 <= PF_FRAME_MAX) {	/* more VLAN tags */
		n = 1 + below(g, 3);
		memmove(f + 12 + 4 * n, f + 12, len - 12);
		for (i = 0; i < n; i++) {
			f[12 + 4 * i] = chance(g, 50) ? 0x81 : 0x88;
			f[13 + 4 * i] = f[12 + 4 * i] == 0x81 ? 0x00 : 0xa8;
			f[14 + 4 * i] = rnd(g) & 0x0f;
			f[15 + 4 * i] = rnd(g);
		}
		len += 4 * n;
	}
	return len;
}

static size_t gen_frame(struct gen *g, uint8_t *f)
{
	struct pkt_spec s;
	size_t l2, l3;
	int family;

	if (chance(g, 3)) {		/* plain garbage */
		size_t len = ETH_HLEN_MIN + below(g, 200);

		rand_bytes(g, f, len);
		if (chance(g, 50)) {
			f[12] = chance(g, 50) ? 0x08 : 0x86;
			f[13] = f[12] == 0x08 ? 0x00 : 0xdd;
		}
		return len;
	}
	memset(&s, 0, sizeof(s));
	rand_bytes(g, s.dmac, 6);
	rand_bytes(g, s.smac, 6);
	s.n_vlan = chance(g, 65) ? 0 : chance(g, 60) ? 1 : 2;
	s.vlan[0].tpid = chance(g, 50) ? 0x8100 : 0x88a8;
	s.vlan[0].tci = rnd(g);
	s.vlan[1].tpid = chance(g, 80) ? 0x8100 : 0x88a8;
	s.vlan[1].tci = rnd(g);
	family = chance(g, 50) ? AETH_AF_INET : AETH_AF_INET6;
	if (chance(g, 3))		/* not IP at all */
		l2 = pkt_build_l2(&s, rnd(g), f);
	else
		l2 = pkt_build_l2(&s, family == AETH_AF_INET ? 0x0800 : 0x86dd,
				  f);
	l3 = gen_l3(g, 0, family, f + l2, PF_FRAME_MAX - 200 - l2);
	if (!l3)
		return 0;
	return mutate(g, f, l2 + l3, l2);
}

/* ---- the oracle --------------------------------------------------------- */

/* What the front of a frame says, parsed like the data path promises. */
struct view {
	int front;		/* 0 IP, 1 not IP, -1 too short / bad version */
	size_t l3_off;
	int family;
	const uint8_t *src, *dst;
	uint8_t proto;		/* first next header */
	uint32_t l3_len;
	size_t l4_off;		/* after the fixed header and IPv4 options */
	uint8_t ttl, tos;
	bool df, frag4;
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)p[0] << 8 | p[1];
}

static void view_front(const uint8_t *f, size_t len, struct view *v)
{
	size_t off = 12;
	uint16_t et;
	int i;

	memset(v, 0, sizeof(*v));
	v->front = -1;
	if (len < 14)
		return;
	et = get16(f + 12);
	for (i = 0; i < 2 && (et == 0x8100 || et == 0x88a8); i++) {
		if (off + 4 + 2 > len)
			return;
		off += 4;
		et = get16(f + off);
	}
	off += 2;
	v->l3_off = off;
	if (et == 0x0800) {
		const uint8_t *ip = f + off;

		if (off + 20 > len || (ip[0] >> 4) != 4 || (ip[0] & 0xf) < 5)
			return;
		v->family = AETH_AF_INET;
		v->src = ip + 12;
		v->dst = ip + 16;
		v->proto = ip[9];
		v->l3_len = get16(ip + 2);
		v->l4_off = off + (ip[0] & 0xf) * 4;
		v->tos = ip[1];
		v->ttl = ip[8];
		v->df = get16(ip + 6) & 0x4000;
		v->frag4 = get16(ip + 6) & 0x3fff;
	} else if (et == 0x86dd) {
		const uint8_t *ip = f + off;

		if (off + 40 > len || (ip[0] >> 4) != 6)
			return;
		v->family = AETH_AF_INET6;
		v->src = ip + 8;
		v->dst = ip + 24;
		v->proto = ip[6];
		v->l3_len = 40 + get16(ip + 4);
		v->l4_off = off + 40;
		v->tos = (get16(ip) >> 4) & 0xff;
		v->ttl = ip[7];
	} else {
		v->front = 1;
		return;
	}
	v->front = 0;
}

static bool is_ext(uint8_t nh)
{
	return nh == 0 || nh == 43 || nh == 60 || nh == 44;
}

/* The rest of L3: length within the frame, extension headers (at most four
 * walked, as documented). Returns 0 and the L4 protocol and offset, or -1
 * for a packet the data path must not forward. */
static int view_l3(const uint8_t *f, size_t len, const struct view *v,
		   uint8_t *proto, size_t *l4, bool *frag)
{
	size_t off = v->l4_off, end = v->l3_off + v->l3_len;
	uint8_t nh = v->proto;
	int i;

	*frag = v->frag4;
	if (v->l3_len > len - v->l3_off)
		return -1;
	if (v->family == AETH_AF_INET) {
		*proto = nh;
		*l4 = off;
		return off > end ? -1 : 0;
	}
	for (i = 0; i < 4 && is_ext(nh); i++) {
		if (off + 8 > end)
			return -1;
		if (nh == 44) {
			*frag = true;
			nh = f[off];
			off += 8;
			break;
		}
		nh = f[off];
		off += (f[off + 1] + 1) * 8;
	}
	if (!*frag && is_ext(nh))
		return -1;
	if (off > end)
		return -1;
	*proto = nh;
	*l4 = off;
	return 0;
}

/* The client -> service flow of a packet the data path forwarded, read
 * the way it reads it (ICMP errors by their quote). */
struct flow {
	int family;
	const uint8_t *src, *dst;
	uint16_t sport, dport;
	uint8_t proto;
	bool icmp;
};

static int view_flow(const uint8_t *f, size_t len, const struct view *v,
		     struct flow *fl, const char **why)
{
	size_t l4, end = v->l3_off + v->l3_len;
	uint8_t proto;
	bool frag;

	memset(fl, 0, sizeof(*fl));
	fl->family = v->family;
	fl->src = v->src;
	fl->dst = v->dst;
	if (view_l3(f, len, v, &proto, &l4, &frag)) {
		*why = "forwarded a packet with inconsistent IP lengths";
		return -1;
	}
	if (frag) {
		*why = "forwarded a fragment";
		return -1;
	}
	if (proto == 6 || proto == 17) {
		if (l4 + (proto == 6 ? 20 : 8) > end) {
			*why = "forwarded a packet with a truncated L4 header";
			return -1;
		}
		if (proto == 6 && (f[l4 + 12] >> 4) < 5) {
			*why = "forwarded TCP with a data offset below 5";
			return -1;
		}
		if (proto == 6 && l4 + (f[l4 + 12] >> 4) * 4 > end) {
			*why = "forwarded TCP whose header passes the IP end";
			return -1;
		}
		fl->proto = proto;
		fl->sport = get16(f + l4);
		fl->dport = get16(f + l4 + 2);
		return 0;
	}
	if ((v->family == AETH_AF_INET && proto == 1) ||
	    (v->family == AETH_AF_INET6 && proto == 58)) {
		const uint8_t *q = f + l4 + 8;
		size_t qh;

		fl->icmp = true;
		if (l4 + 8 > len) {
			*why = "forwarded a truncated ICMP header";
			return -1;
		}
		if (v->family == AETH_AF_INET) {
			if (f[l4] != 3 && f[l4] != 11 && f[l4] != 12) {
				*why = "forwarded an ICMP message that is no error";
				return -1;
			}
			if (l4 + 8 + 20 > len || (q[0] >> 4) != 4 ||
			    (q[0] & 0xf) < 5) {
				*why = "forwarded ICMP with a bad quoted header";
				return -1;
			}
			qh = (q[0] & 0xf) * 4;
			fl->proto = q[9];
			fl->src = q + 16;
			if (memcmp(q + 12, v->dst, 4)) {
				*why = "forwarded ICMP quoting a packet not from the VIP";
				return -1;
			}
		} else {
			if (f[l4] < 1 || f[l4] > 4) {
				*why = "forwarded an ICMPv6 message that is no error";
				return -1;
			}
			if (l4 + 8 + 40 > len || (q[0] >> 4) != 6) {
				*why = "forwarded ICMPv6 with a bad quoted header";
				return -1;
			}
			qh = 40;
			fl->proto = q[6];
			fl->src = q + 24;
			if (memcmp(q + 8, v->dst, 16)) {
				*why = "forwarded ICMPv6 quoting a packet not from the VIP";
				return -1;
			}
		}
		if (l4 + 8 + qh + 4 > len) {
			*why = "forwarded ICMP whose quote has no ports";
			return -1;
		}
		fl->sport = get16(q + qh + 2);
		fl->dport = get16(q + qh);
		return 0;
	}
	*why = "forwarded a protocol no service is for";
	return -1;
}

struct pf_ctx {
	struct dp_h h;
	struct dp_net net;
	struct pf_result *res;
	uint64_t index;
	int max_reports;
	const uint8_t *in;
	size_t in_len;
};

static void hexdump(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		fprintf(stderr, "%02x%s", p[i], (i % 32 == 31) ? "\n" : "");
	if (len % 32)
		fprintf(stderr, "\n");
}

static void violation(struct pf_ctx *c, const uint8_t *out, size_t out_len,
		      uint32_t verdict, const char *fmt, ...)
{
	va_list ap;

	if (c->res->violations++ >= (uint64_t)c->max_reports)
		return;
	fprintf(stderr, "packet fuzz: VIOLATION seed %llu packet %llu "
		"(verdict %u): ", (unsigned long long)c->res->seed,
		(unsigned long long)c->index, verdict);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\ninput (%zu bytes):\n", c->in_len);
	hexdump(c->in, c->in_len);
	if (out) {
		fprintf(stderr, "output (%zu bytes):\n", out_len);
		hexdump(out, out_len);
	}
}

static int backend_of(int family, const uint8_t *addr, int svc)
{
	size_t i;

	for (i = 0; i < N_BACKENDS; i++)
		if ((int)backends[i].svc == svc &&
		    backends[i].family == family &&
		    addr_eq(family, &backends[i].addr, addr))
			return i;
	return -1;
}

/* An encapsulated packet: outer header, backend, inner bytes, flow, ACL.
 * Returns NULL when well formed, else what is wrong. */
static const char *check_encap(const struct view *v, const uint8_t *in,
			       size_t in_len, const uint8_t *out,
			       size_t out_len, bool macs_kept, bool to_stack_frag,
			       bool *steered)
{
	size_t l2 = v->l3_off, hlen;
	const uint8_t *o = out + l2, *obe;
	int ofam, svc, be;
	struct flow fl;
	const char *why;
	uint16_t frag;

	if (v->front != 0 || !is_vip(v->family, v->dst))
		return "encapsulated a packet that is not for a VIP";
	if (out_len < l2 + 40)
		return "output too short for an encapsulation";
	if (macs_kept && memcmp(out, in, 12))
		return "MACs changed on a packet handed to the stack";
	if (memcmp(out + 12, in + 12, l2 - 14))
		return "VLAN tags not kept";
	if (get16(out + l2 - 2) == 0x0800) {
		ofam = AETH_AF_INET;
		hlen = 20;
		if (o[0] != 0x45 || !pkt_ipv4_csum_ok(o))
			return "outer IPv4 header or checksum wrong";
		if (get16(o + 2) != out_len - l2)
			return "outer IPv4 total length wrong";
		frag = (v->family == AETH_AF_INET6 || v->df) ? 0x4000 : 0;
		if (get16(o + 6) != frag)
			return "outer DF / fragment field wrong";
		if (frag && get16(o + 4))
			return "outer id of an atomic (DF) packet is not 0";
		if (o[8] != v->ttl || o[1] != v->tos)
			return "outer TTL / TOS not carried over";
		if (o[9] != (v->family == AETH_AF_INET ? 4 : 41))
			return "outer protocol wrong";
		if (memcmp(o + 12, &node_v4.v4, 4))
			return "outer source is not the node address";
		obe = o + 16;
	} else if (get16(out + l2 - 2) == 0x86dd) {
		ofam = AETH_AF_INET6;
		hlen = 40;
		if ((o[0] >> 4) != 6)
			return "outer IPv6 version wrong";
		if (get16(o + 4) != out_len - l2 - 40)
			return "outer IPv6 payload length wrong";
		if (o[7] != v->ttl || ((get16(o) >> 4) & 0xff) != v->tos)
			return "outer hop limit / traffic class not carried over";
		if (o[6] != (v->family == AETH_AF_INET ? 4 : 41))
			return "outer next header wrong";
		if (memcmp(o + 8, node_v6.bytes, 16))
			return "outer source is not the node address";
		obe = o + 24;
	} else {
		return "outer ethertype is not IP";
	}
	if (v->l3_off + v->l3_len > in_len)
		return "forwarded a packet longer than its frame";
	if (out_len - l2 - hlen != v->l3_len ||
	    memcmp(o + hlen, in + v->l3_off, v->l3_len))
		return "inner packet is not the client's IP packet";
	if (v->l3_len + hlen > PF_MTU && !to_stack_frag)
		return "encapsulated packet exceeds the MTU";
	if (to_stack_frag && (v->family != AETH_AF_INET || v->df))
		return "handed to the stack to fragment a packet that may not be";
	if (view_flow(in, in_len, v, &fl, &why))
		return why;
	*steered = fl.icmp;
	svc = service_of(fl.family, fl.dst, fl.dport, fl.proto);
	if (svc < 0)
		return "inner flow is for no configured service";
	be = backend_of(ofam, obe, svc);
	if (be < 0)
		return "outer destination is not a backend of the service";
	if (backends[be].flags & AETH_BE_F_DRAINING)
		return "new flow sent to a draining backend";
	if (!authorized(svc, fl.family, fl.src))
		return "source not authorized by the service's ACL";
	return NULL;
}

/* An inner ICMP error accepted by decap: it quotes a packet from a VIP of a
 * service whose authorized networks hold the client it was sent to. */
static const char *check_decap_icmp(int family, const uint8_t *in,
				    size_t in_len, const uint8_t *ip,
				    size_t l4)
{
	const uint8_t *q = in + l4 + 8, *ports, *vip = family == AETH_AF_INET ?
							ip + 16 : ip + 24;
	uint8_t type, proto;
	int svc;

	if (l4 + 8 > in_len)
		return "decapsulated an ICMP message without header";
	type = in[l4];
	if (family == AETH_AF_INET ? (type != 3 && type != 11 && type != 12) :
				     (type < 1 || type > 4))
		return "decapsulated an ICMP message that is no error";
	if (family == AETH_AF_INET) {
		if (l4 + 8 + 20 > in_len || (q[0] >> 4) != 4 || (q[0] & 0xf) < 5)
			return "decapsulated an ICMP error quoting no IPv4 header";
		if (memcmp(q + 12, vip, 4))
			return "decapsulated an ICMP error about another source";
		proto = q[9];
		ports = q + (q[0] & 0xf) * 4;
	} else {
		if (l4 + 8 + 40 > in_len || (q[0] >> 4) != 6)
			return "decapsulated an ICMP error quoting no IPv6 header";
		if (memcmp(q + 8, vip, 16))
			return "decapsulated an ICMP error about another source";
		proto = q[6];
		ports = q + 40;
	}
	if ((size_t)(ports + 4 - in) > in_len || (proto != 6 && proto != 17))
		return "decapsulated an ICMP error quoting no TCP/UDP flow";
	svc = service_of(family, vip, get16(ports), proto);
	if (svc < 0)
		return "decapsulated an ICMP error about no service";
	if (!authorized(svc, family, family == AETH_AF_INET ? q + 16 : q + 24))
		return "decapsulated an ICMP error about an unauthorized client";
	return NULL;
}

/* The inner bytes expected after decap: RFC 6040 carries outer CE onto an
 * ECN-capable inner packet (the IPv4 checksum is then only required to
 * stay as valid as it was). */
static const char *check_decap_bytes(const struct view *v, const uint8_t *in,
				     size_t in_len, size_t off,
				     const uint8_t *out, size_t out_len)
{
	size_t l2 = v->l3_off, n = in_len - off;
	const uint8_t *ip = in + off, *o = out + l2;
	bool v4 = (ip[0] >> 4) == 4;
	uint8_t ecn = v4 ? ip[1] & 3 : (ip[1] >> 4) & 3;
	bool ce = (v->tos & 3) == 3 && ecn != 3;

	if (out_len != l2 + n || memcmp(out, in, l2 - 2))
		return "decapsulated frame has the wrong length or L2 header";
	if (ce && ecn == 0)
		return "decapsulated not-ECT under CE (RFC 6040: drop)";
	if (!ce)
		return memcmp(o, ip, n) ?
			       "decapsulated bytes differ from the inner packet" :
			       NULL;
	if (v4) {
		if (o[1] != (ip[1] | 3) || memcmp(o, ip, 1) ||
		    memcmp(o + 2, ip + 2, 8) || memcmp(o + 12, ip + 12, n - 12))
			return "CE not carried to the inner IPv4 header";
		if (pkt_ipv4_csum_ok(o) != pkt_ipv4_csum_ok(ip))
			return "inner IPv4 checksum broken by the CE mark";
		return NULL;
	}
	if (o[1] != (ip[1] | 0x30) || o[0] != ip[0] ||
	    memcmp(o + 2, ip + 2, n - 2))
		return "CE not carried to the inner IPv6 header";
	return NULL;
}

/* A decapsulated packet: from an LB node, for a configured service, from a
 * source the service authorizes; bytes unchanged but for RFC 6040. */
static const char *check_decap(const struct view *v, const uint8_t *in,
			       size_t in_len, const uint8_t *out,
			       size_t out_len)
{
	size_t off, l2 = v->l3_off, end = v->l3_off + v->l3_len, l4;
	const uint8_t *ip, *src, *dst;
	const char *why;
	uint8_t proto;
	bool frag;
	int family, svc;

	if (v->front != 0 || !is_node(v->family, v->dst))
		return "decapsulated a packet not for the node";
	if (!decap_source(v->family, v->src))
		return "decapsulated a tunnel from a source not in decap.sources";
	if (view_l3(in, in_len, v, &proto, &off, &frag))
		return "decapsulated a packet with inconsistent IP lengths";
	if (frag)
		return "decapsulated a fragment";
	if (proto != 4 && proto != 41)
		return "decapsulated a packet that is no tunnel";
	ip = in + off;
	if (proto == 4) {
		family = AETH_AF_INET;
		if (get16(out + l2 - 2) != 0x0800 || off + 20 > in_len ||
		    (ip[0] >> 4) != 4 || (ip[0] & 0xf) < 5)
			return "bad inner IPv4 header passed";
		if (off + get16(ip + 2) > end || (get16(ip + 6) & 0x3fff))
			return "inner IPv4 length or fragment passed";
		proto = ip[9];
		l4 = off + (ip[0] & 0xf) * 4;
		src = ip + 12;
		dst = ip + 16;
	} else {
		family = AETH_AF_INET6;
		if (get16(out + l2 - 2) != 0x86dd || off + 40 > in_len ||
		    (ip[0] >> 4) != 6)
			return "bad inner IPv6 header passed";
		if (off + 40 + get16(ip + 4) > end)
			return "inner IPv6 length passed";
		proto = ip[6];
		l4 = off + 40;
		src = ip + 8;
		dst = ip + 24;
	}
	if (!is_vip(family, dst))
		return "decapsulated a packet for a non-VIP address";
	why = check_decap_bytes(v, in, in_len, off, out, out_len);
	if (why)
		return why;
	if (proto == 6 || proto == 17) {
		if (l4 + 4 > end)
			return "inner ports outside the packet";
		svc = service_of(family, dst, get16(in + l4 + 2), proto);
		if (svc < 0)
			return "decapsulated a packet for an unconfigured port";
		if (!authorized(svc, family, src))
			return "decapsulated a packet from an unauthorized source";
		return NULL;
	}
	if ((family == AETH_AF_INET && proto == 1) ||
	    (family == AETH_AF_INET6 && proto == 58))
		return check_decap_icmp(family, in, in_len, ip, l4);
	return "decapsulated a protocol no service is for";
}

/* A tunnel packet (after IPv6 extension headers) to someone other than the
 * node: the data path must drop it (decap_invalid), never pass it. */
static bool stray_tunnel(const uint8_t *in, size_t in_len, const struct view *v)
{
	uint8_t proto;
	size_t l4;
	bool frag;

	if (v->front != 0 || is_node(v->family, v->dst))
		return false;
	if (v->proto == 4 || v->proto == 41)
		return true;
	if (v->family != AETH_AF_INET6 || !is_ext(v->proto))
		return false;
	return !view_l3(in, in_len, v, &proto, &l4, &frag) &&
	       (proto == 4 || proto == 41);
}

/* A too-big answer goes to a single host only. */
static bool answerable(int family, const uint8_t *a)
{
	static const uint8_t zero[16];

	if (family == AETH_AF_INET)
		return a[0] != 0 && a[0] != 127 && a[0] < 224;
	if (a[0] == 0xff)
		return false;
	return memcmp(a, zero, 15) || (a[15] & ~1);
}

/* The data path's own answer to a packet too big to encapsulate. */
static const char *check_too_big(const struct view *v, const uint8_t *in,
				 size_t in_len, const uint8_t *out,
				 size_t out_len)
{
	size_t l2 = v->l3_off, quote, want, l4;
	const uint8_t *o = out + l2;
	struct flow fl;
	const char *why;
	uint8_t proto;
	bool frag;
	int svc;

	if (v->front != 0 || !is_vip(v->family, v->dst))
		return "ICMP answer to a packet not for a VIP";
	if (memcmp(out, in + 6, 6) || memcmp(out + 6, in, 6) ||
	    memcmp(out + 12, in + 12, l2 - 14))
		return "ICMP answer L2 header wrong";
	/* the largest overhead: some services have IPv6 backends */
	if (v->l3_len + 40 <= PF_MTU)
		return "ICMP too big for a packet that fits";
	if (view_flow(in, in_len, v, &fl, &why))
		return why;
	if (fl.icmp)
		return "ICMP answer to an ICMP error";
	if (!answerable(v->family, v->src))
		return "ICMP answer to a source that is no single host";
	svc = service_of(fl.family, fl.dst, fl.dport, fl.proto);
	if (svc < 0 || !authorized(svc, fl.family, fl.src))
		return "ICMP answer to an unauthorized or unknown flow";
	if (v->family == AETH_AF_INET) {
		quote = v->l4_off - v->l3_off + 8;
		if (out_len != l2 + 28 + quote || o[0] != 0x45 ||
		    !pkt_ipv4_csum_ok(o) || o[9] != 1 ||
		    get16(o + 2) != 28 + quote)
			return "ICMP answer IPv4 header wrong";
		if (memcmp(o + 12, v->dst, 4) || memcmp(o + 16, v->src, 4))
			return "ICMP answer addresses wrong";
		if (o[20] != 3 || o[21] != 4 || !pkt_l4_csum_ok(o, out_len - l2))
			return "ICMP answer type or checksum wrong";
		if (memcmp(o + 28, in + v->l3_off, quote))
			return "ICMP answer quote wrong";
		return NULL;
	}
	/* the IPv6 header, extension headers and 8 bytes, at most 120 (a
	 * fixed 48 before extension headers were quoted whole) */
	if (view_l3(in, in_len, v, &proto, &l4, &frag))
		return "ICMPv6 answer to a malformed packet";
	want = l4 - v->l3_off + 8 > 120 ? 120 : l4 - v->l3_off + 8;
	quote = out_len > l2 + 48 ? out_len - l2 - 48 : 0;
	if ((quote != want && quote != 48) || quote > v->l3_len ||
	    (o[0] >> 4) != 6 || o[6] != 58 || get16(o + 4) != 8 + quote)
		return "ICMPv6 answer header wrong";
	if (memcmp(o + 8, v->dst, 16) || memcmp(o + 24, v->src, 16))
		return "ICMPv6 answer addresses wrong";
	if (o[40] != 2 || o[41] != 0 || !pkt_l4_csum_ok(o, out_len - l2))
		return "ICMPv6 answer type or checksum wrong";
	if (memcmp(o + 48, in + v->l3_off, quote))
		return "ICMPv6 answer quote wrong";
	return NULL;
}

static uint64_t terminal_sum(const struct aeth_global_stats *d)
{
	uint64_t n = d->events[AETH_EV_PASS_NOT_SERVICE] +
		     d->events[AETH_EV_TX] + d->events[AETH_EV_REDIRECT] +
		     d->events[AETH_EV_TO_STACK_NO_NEIGH] +
		     d->events[AETH_EV_TO_STACK_FRAG] +
		     d->events[AETH_EV_DECAP];
	int i;

	for (i = 0; i < AETH_R_MAX; i++)
		n += d->reasons[i];
	return n;
}

/* A steered ICMP error must quote a flow with a connection entry, and go
 * to that entry's backend. */
static const char *check_steered_entry(struct pf_ctx *c, const struct view *v,
				       const uint8_t *out)
{
	struct aeth_ct_entry e;
	struct aeth_flow key;
	struct flow fl;
	const char *why;
	size_t n;

	if (view_flow(c->in, c->in_len, v, &fl, &why))
		return why;
	n = alen(fl.family);
	memset(&key, 0, sizeof(key));
	memcpy(key.src.bytes, fl.src, n);
	memcpy(key.dst.bytes, fl.dst, n);
	key.sport = htons(fl.sport);
	key.dport = htons(fl.dport);
	key.proto = fl.proto;
	key.family = fl.family;
	if (dp_ct_get(&c->h, &key, &e))
		return "ICMP error steered for a flow without a connection entry";
	if (e.backend_id >= N_BACKENDS ||
	    !addr_eq(backends[e.backend_id].family,
		     &backends[e.backend_id].addr,
		     get16(out + v->l3_off - 2) == 0x0800 ?
			     out + v->l3_off + 16 : out + v->l3_off + 24))
		return "ICMP error steered to another backend than its entry's";
	return NULL;
}

/* Judge one packet. d: the global counter deltas it caused. */
static void judge(struct pf_ctx *c, const uint8_t *out, size_t out_len,
		  uint32_t verdict, const struct aeth_global_stats *d)
{
	const uint8_t *in = c->in;
	size_t in_len = c->in_len;
	bool unchanged, steered = false, ours, tunnel;
	const char *why = NULL;
	struct view v;
	int i;

	view_front(in, in_len, &v);
	unchanged = verdict == XDP_PASS && out_len == in_len &&
		    !memcmp(in, out, in_len);
	ours = v.front == 0 && (is_vip(v.family, v.dst) ||
				is_node(v.family, v.dst));

	if (terminal_sum(d) != 1) {
		violation(c, out, out_len, verdict,
			  "%llu terminal counters moved, not one",
			  (unsigned long long)terminal_sum(d));
		return;
	}
	for (i = 0; i < AETH_R_MAX; i++)
		if (d->reasons[i])
			c->res->reasons[i]++;

	/* a tunnel to anyone but the node: dropped as decap_invalid */
	if (stray_tunnel(in, in_len, &v)) {
		if (verdict != XDP_DROP || !d->reasons[AETH_R_DECAP_INVALID])
			violation(c, out, out_len, verdict,
				  "a tunnel packet not for the node was not "
				  "dropped as decap_invalid");
		else
			c->res->outcomes[PF_DROP]++;
		return;
	}
	/* not ours: untouched, whatever it looks like further in */
	if ((v.front == 1 || (v.front == 0 && !ours)) && !unchanged) {
		violation(c, out, out_len, verdict,
			  "a packet for no service and not the node was not "
			  "passed unchanged");
		return;
	}
	tunnel = v.front == 0 && is_node(v.family, v.dst) &&
		 (v.proto == 4 || v.proto == 41 ||
		  (v.family == AETH_AF_INET6 && is_ext(v.proto)));
	if (v.front == 0 && is_node(v.family, v.dst) && !tunnel && !unchanged) {
		violation(c, out, out_len, verdict,
			  "plain traffic to the node was not passed unchanged");
		return;
	}

	switch (verdict) {
	case XDP_DROP:
		break;		/* terminal_sum: exactly one reason */
	case XDP_PASS:
		if (unchanged) {
			if (!d->events[AETH_EV_PASS_NOT_SERVICE])
				why = "passed unchanged without its counter";
			else if (v.front == 0 && is_vip(v.family, v.dst))
				why = "a packet for a VIP passed unchanged";
			else
				c->res->outcomes[PF_PASS_UNCHANGED]++;
		} else if (d->events[AETH_EV_DECAP]) {
			why = check_decap(&v, in, in_len, out, out_len);
			if (!why)
				c->res->outcomes[PF_DECAP]++;
		} else if (d->events[AETH_EV_TO_STACK_NO_NEIGH] ||
			   d->events[AETH_EV_TO_STACK_FRAG]) {
			why = check_encap(&v, in, in_len, out, out_len, true,
					  d->events[AETH_EV_TO_STACK_FRAG],
					  &steered);
			if (!why)
				c->res->outcomes[PF_PASS_ENCAP]++;
		} else {
			why = "changed packet passed without a counter";
		}
		break;
	case XDP_TX:
		if (d->events[AETH_EV_TX]) {
			why = check_encap(&v, in, in_len, out, out_len, false,
					  false, &steered);
			if (!why)
				c->res->outcomes[PF_TX_ENCAP]++;
		} else if (d->events[AETH_EV_ICMP_TOO_BIG_SENT] &&
			   d->reasons[AETH_R_MTU_EXCEEDED]) {
			why = check_too_big(&v, in, in_len, out, out_len);
			if (!why)
				c->res->outcomes[PF_TX_ICMP_TOO_BIG]++;
		} else {
			why = "XDP_TX without its counter";
		}
		break;
	case XDP_REDIRECT:
		if (!d->events[AETH_EV_REDIRECT]) {
			why = "XDP_REDIRECT without its counter";
			break;
		}
		why = check_encap(&v, in, in_len, out, out_len, false, false,
				  &steered);
		if (!why)
			c->res->outcomes[PF_REDIRECT_ENCAP]++;
		break;
	default:
		why = "unexpected verdict";
		break;
	}
	if (verdict == XDP_DROP) {
		for (i = 0; i < AETH_R_MAX && !d->reasons[i]; i++)
			;
		if (i == AETH_R_MAX)
			why = "dropped without a reason counted";
		else
			c->res->outcomes[PF_DROP]++;
	} else if (verdict != XDP_TX || !d->events[AETH_EV_ICMP_TOO_BIG_SENT]) {
		for (i = 0; i < AETH_R_MAX; i++)
			if (d->reasons[i] && !why)
				why = "a drop reason counted for a packet not dropped";
	}
	if (steered && !why)
		why = check_steered_entry(c, &v, out);
	if (d->events[AETH_EV_TO_STACK_FRAG] && !why)
		why = "a too-big packet handed on to be fragmented";
	if (steered && !why)
		c->res->outcomes[PF_ICMP_STEERED]++;
	if (why)
		violation(c, out, out_len, verdict, "%s", why);
}

static void stats_delta(const struct aeth_global_stats *a,
			const struct aeth_global_stats *b,
			struct aeth_global_stats *d)
{
	const uint64_t *x = (const uint64_t *)a, *y = (const uint64_t *)b;
	uint64_t *z = (uint64_t *)d;
	size_t i;

	for (i = 0; i < sizeof(*d) / 8; i++)
		z[i] = y[i] - x[i];
}

/* Whole-run checks: per-service and per-backend counters against events. */
static void check_totals(struct pf_ctx *c, const struct aeth_global_stats *g)
{
	uint64_t fwd = g->events[AETH_EV_TX] + g->events[AETH_EV_REDIRECT] +
		       g->events[AETH_EV_TO_STACK_NO_NEIGH] +
		       g->events[AETH_EV_TO_STACK_FRAG];
	uint64_t svc_pk = 0, be_pk = 0, svc_drops = 0, reasons = 0;
	struct aeth_svc_stats s;
	struct aeth_be_stats b;
	size_t i;
	int r;

	for (i = 0; i < N_SERVICES; i++) {
		if (dp_svc_stats(&c->h, i, &s))
			continue;
		svc_pk += s.packets;
		for (r = 0; r < AETH_R_MAX; r++)
			svc_drops += s.drops[r];
	}
	for (i = 0; i < N_BACKENDS; i++)
		if (!dp_be_stats(&c->h, i, &b))
			be_pk += b.packets;
	for (r = 0; r < AETH_R_MAX; r++)
		reasons += g->reasons[r];
	c->index = c->res->packets;
	c->in_len = 0;
	if (svc_pk != fwd || be_pk != fwd)
		violation(c, NULL, 0, 0, "forward counters disagree: events "
			  "%llu, per-service %llu, per-backend %llu",
			  (unsigned long long)fwd, (unsigned long long)svc_pk,
			  (unsigned long long)be_pk);
	if (svc_drops > reasons)
		violation(c, NULL, 0, 0, "per-service drops %llu exceed all "
			  "drops %llu", (unsigned long long)svc_drops,
			  (unsigned long long)reasons);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int pf_run(uint64_t seed, uint64_t n, bool verbose, int max_reports,
	   struct pf_result *res)
{
	static uint8_t in[PKT_MAX], out[PKT_MAX];
	struct aeth_global_stats before, after, d;
	struct pf_ctx c;
	struct gen g = { .s = seed };
	double t0;
	uint32_t verdict;
	size_t out_len;
	int err;

	memset(res, 0, sizeof(*res));
	memset(&c, 0, sizeof(c));
	res->seed = seed;
	c.res = res;
	c.max_reports = max_reports;
	c.in = in;
	config_parse();
	err = dp_netns_setup(&c.net);
	if (err) {
		fprintf(stderr, "packet fuzz: namespace setup: %s\n",
			strerror(-err));
		return err;
	}
	err = dp_open(&c.h);
	if (err) {
		fprintf(stderr, "packet fuzz: loading the program: %s\n",
			strerror(-err));
		return err;
	}
	err = config_load(&c.h);
	if (!err)
		err = dp_add_tx_port(&c.h, c.net.if0);
	if (!err)
		err = dp_add_tx_port(&c.h, c.net.if2);
	if (err) {
		fprintf(stderr, "packet fuzz: filling the maps: %s\n",
			strerror(-err));
		goto out;
	}
	err = dp_global(&c.h, &before);
	if (err)
		goto out;
	t0 = now_s();
	for (c.index = 0; c.index < n; c.index++) {
		c.in_len = gen_frame(&g, in);
		if (c.in_len < ETH_HLEN_MIN)
			continue;
		out_len = sizeof(out);
		err = dp_run(&c.h, in, c.in_len, out, &out_len, c.net.if0,
			     &verdict);
		if (err) {
			violation(&c, NULL, 0, 0, "BPF_PROG_TEST_RUN failed: %s",
				  strerror(-err));
			goto out;
		}
		err = dp_global(&c.h, &after);
		if (err)
			goto out;
		stats_delta(&before, &after, &d);
		before = after;
		res->packets++;
		judge(&c, out, out_len, verdict, &d);
		if (verbose && (c.index + 1) % 100000 == 0)
			fprintf(stderr, "packet fuzz: %llu packets, %llu "
				"violations, %.1f s\n",
				(unsigned long long)c.index + 1,
				(unsigned long long)res->violations,
				now_s() - t0);
	}
	res->seconds = now_s() - t0;
	check_totals(&c, &before);
out:
	dp_close(&c.h);
	return err;
}

const char *pf_outcome_name(int o)
{
	static const char *const names[PF_OUTCOME_MAX] = {
		"pass_unchanged", "drop", "tx_encap", "redirect_encap",
		"pass_encap", "decap", "tx_icmp_too_big", "icmp_steered",
	};

	return o >= 0 && o < PF_OUTCOME_MAX ? names[o] : "?";
}
