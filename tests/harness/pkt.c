/* Packet builder for data path tests, with its own checksum code. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkt.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

static uint32_t sum16(const void *buf, size_t len, uint32_t sum)
{
	const uint8_t *p = buf;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

uint16_t pkt_csum(const void *buf, size_t len, uint32_t partial)
{
	uint32_t sum = sum16(buf, len, partial);

	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

uint32_t pkt_pseudo_sum(int family, const union aeth_addr *src,
			const union aeth_addr *dst, uint8_t proto,
			uint32_t l4_len)
{
	uint32_t sum = 0;

	if (family == AETH_AF_INET) {
		sum = sum16(&src->v4, 4, sum);
		sum = sum16(&dst->v4, 4, sum);
	} else {
		sum = sum16(src->bytes, 16, sum);
		sum = sum16(dst->bytes, 16, sum);
	}
	sum += proto;
	sum += l4_len >> 16;
	sum += l4_len & 0xffff;
	return sum;
}

static struct pkt_spec spec_base(int proto, const char *src, uint16_t sport,
				 const char *dst, uint16_t dport)
{
	struct pkt_spec s;
	int fs, fd;

	memset(&s, 0, sizeof(s));
	memcpy(s.dmac, "\x02\x00\x00\x00\x00\x02", 6);
	memcpy(s.smac, "\x02\x00\x00\x00\x00\x01", 6);
	fs = inet_pton(AF_INET, src, &s.src.v4) == 1 ? AETH_AF_INET :
	     inet_pton(AF_INET6, src, s.src.bytes) == 1 ? AETH_AF_INET6 : 0;
	fd = inet_pton(AF_INET, dst, &s.dst.v4) == 1 ? AETH_AF_INET :
	     inet_pton(AF_INET6, dst, s.dst.bytes) == 1 ? AETH_AF_INET6 : 0;
	if (!fs || fs != fd) {
		fprintf(stderr, "pkt: bad address pair %s %s\n", src, dst);
		abort();
	}
	s.family = fs;
	s.ttl = 64;
	s.df = fs == AETH_AF_INET;
	s.ip_id = 0x1234;
	s.proto = proto;
	s.sport = sport;
	s.dport = dport;
	s.tcp_flags = PKT_TCP_ACK;
	s.seq = 1;
	s.ack = 1;
	return s;
}

struct pkt_spec pkt_spec_tcp4(const char *src, uint16_t sport, const char *dst,
			      uint16_t dport)
{
	return spec_base(6, src, sport, dst, dport);
}

struct pkt_spec pkt_spec_tcp6(const char *src, uint16_t sport, const char *dst,
			      uint16_t dport)
{
	return spec_base(6, src, sport, dst, dport);
}

struct pkt_spec pkt_spec_udp4(const char *src, uint16_t sport, const char *dst,
			      uint16_t dport)
{
	return spec_base(17, src, sport, dst, dport);
}

struct pkt_spec pkt_spec_udp6(const char *src, uint16_t sport, const char *dst,
			      uint16_t dport)
{
	return spec_base(17, src, sport, dst, dport);
}

size_t pkt_build_l2(const struct pkt_spec *s, uint16_t ethertype, void *out)
{
	uint8_t *p = out;
	size_t off = 12;
	int i;

	memcpy(p, s->dmac, 6);
	memcpy(p + 6, s->smac, 6);
	for (i = 0; i < s->n_vlan && i < 2; i++) {
		put16(p + off, s->vlan[i].tpid);
		put16(p + off + 2, s->vlan[i].tci);
		off += 4;
	}
	put16(p + off, ethertype);
	return off + 2;
}

/* L4 bytes (header + payload) into p; returns the length. The checksum is
 * filled later, once the L3 addresses are known. */
static size_t build_l4(const struct pkt_spec *s, uint8_t *p)
{
	size_t n;

	switch (s->proto) {
	case 6:
		memset(p, 0, 20);
		put16(p, s->sport);
		put16(p + 2, s->dport);
		put32(p + 4, s->seq);
		put32(p + 8, s->ack);
		p[12] = 5 << 4;
		p[13] = s->tcp_flags;
		put16(p + 14, 65535);
		n = 20;
		break;
	case 17:
		memset(p, 0, 8);
		put16(p, s->sport);
		put16(p + 2, s->dport);
		put16(p + 4, 8 + s->payload_len);
		n = 8;
		break;
	default:
		n = 0;
		break;
	}
	if (s->payload_len)
		memcpy(p + n, s->payload, s->payload_len);
	return n + s->payload_len;
}

static void fill_l4_csum(const struct pkt_spec *s, uint8_t *p, size_t len)
{
	uint32_t ps = pkt_pseudo_sum(s->family, &s->src, &s->dst, s->proto, len);
	uint16_t c;

	switch (s->proto) {
	case 6:
		memset(p + 16, 0, 2);
		c = pkt_csum(p, len, ps);
		memcpy(p + 16, &c, 2);
		break;
	case 17:
		memset(p + 6, 0, 2);
		c = pkt_csum(p, len, ps);
		if (c == 0)
			c = 0xffff;
		memcpy(p + 6, &c, 2);
		break;
	case 1:
		if (s->l4_csum_raw || len < 4)
			break;
		memset(p + 2, 0, 2);
		c = pkt_csum(p, len, 0);
		memcpy(p + 2, &c, 2);
		break;
	case 58:
		if (s->l4_csum_raw || len < 4)
			break;
		memset(p + 2, 0, 2);
		c = pkt_csum(p, len, ps);
		memcpy(p + 2, &c, 2);
		break;
	}
}

static size_t build_ipv4(const struct pkt_spec *s, uint8_t *p, size_t cap)
{
	size_t hl = 20 + s->ip_opts_len, l4;
	uint16_t frag, c;

	if (hl + 20 + s->payload_len > cap)
		return 0;
	l4 = build_l4(s, p + hl);
	fill_l4_csum(s, p + hl, l4);
	memset(p, 0, 20);
	p[0] = 0x40 | (hl / 4);
	p[1] = s->tos;
	put16(p + 2, hl + l4);
	put16(p + 4, s->ip_id);
	frag = (s->frag_off & 0x1fff) | (s->df ? 0x4000 : 0) |
	       (s->mf ? 0x2000 : 0);
	put16(p + 6, frag);
	p[8] = s->ttl;
	p[9] = s->proto;
	memcpy(p + 12, &s->src.v4, 4);
	memcpy(p + 16, &s->dst.v4, 4);
	memcpy(p + 20, s->ip_opts, s->ip_opts_len);
	c = pkt_csum(p, hl, 0);
	memcpy(p + 10, &c, 2);
	return hl + l4;
}

static size_t build_ipv6(const struct pkt_spec *s, uint8_t *p, size_t cap)
{
	size_t off = 40, l4;
	uint8_t *nh = p + 6;
	int i;

	if (40 + s->n_ext * 64 + 20 + s->payload_len > cap)
		return 0;
	memset(p, 0, 40);
	put32(p, 6u << 28 | (uint32_t)s->tos << 20 | (s->flow_label & 0xfffff));
	p[7] = s->ttl;
	memcpy(p + 8, s->src.bytes, 16);
	memcpy(p + 24, s->dst.bytes, 16);
	for (i = 0; i < s->n_ext && i < 4; i++) {
		uint8_t *e = p + off;
		size_t elen;

		*nh = s->ext[i].type;
		if (s->ext[i].type == 44) {
			elen = 8;
			memset(e, 0, 8);
			put16(e + 2, (s->frag_off << 3) | (s->mf ? 1 : 0));
			put32(e + 4, 0xabcd0001);
		} else {
			elen = (s->ext[i].len8 + 1) * 8;
			memset(e, 0, elen);
			e[1] = s->ext[i].len8;
			/* PadN option filling the rest */
			e[2] = 1;
			e[3] = elen - 4;
			if (s->ext[i].type == 43) {
				/* experimental routing type, segments left 0 */
				e[2] = 253;
				e[3] = 0;
			}
		}
		nh = e;
		off += elen;
	}
	*nh = s->proto;
	l4 = build_l4(s, p + off);
	fill_l4_csum(s, p + off, l4);
	put16(p + 4, off - 40 + l4);
	return off + l4;
}

size_t pkt_build_l3(const struct pkt_spec *s, void *out, size_t cap)
{
	if (s->family == AETH_AF_INET)
		return build_ipv4(s, out, cap);
	return build_ipv6(s, out, cap);
}

size_t pkt_build(const struct pkt_spec *s, void *out, size_t cap)
{
	uint8_t *p = out;
	size_t l2, l3;

	if (cap < 22)
		return 0;
	l2 = pkt_build_l2(s, s->family == AETH_AF_INET ? 0x0800 : 0x86dd, p);
	l3 = pkt_build_l3(s, p + l2, cap - l2);
	return l3 ? l2 + l3 : 0;
}

bool pkt_ipv4_csum_ok(const void *ip_hdr)
{
	const uint8_t *p = ip_hdr;

	return pkt_csum(p, (p[0] & 0xf) * 4, 0) == 0;
}

bool pkt_l4_csum_ok(const void *l3, size_t len)
{
	const uint8_t *p = l3;
	union aeth_addr src = { 0 }, dst = { 0 };
	size_t off;
	uint8_t proto;
	int family;

	if ((p[0] >> 4) == 4) {
		family = AETH_AF_INET;
		off = (p[0] & 0xf) * 4;
		proto = p[9];
		memcpy(&src.v4, p + 12, 4);
		memcpy(&dst.v4, p + 16, 4);
	} else {
		/* no extension headers in what the program writes */
		family = AETH_AF_INET6;
		off = 40;
		proto = p[6];
		memcpy(src.bytes, p + 8, 16);
		memcpy(dst.bytes, p + 24, 16);
	}
	if (off > len)
		return false;
	if (proto == 1)
		return pkt_csum(p + off, len - off, 0) == 0;
	return pkt_csum(p + off, len - off,
			pkt_pseudo_sum(family, &src, &dst, proto,
				       len - off)) == 0;
}

bool pkt_equal(const void *got, size_t got_len, const void *want,
	       size_t want_len)
{
	const uint8_t *g = got, *w = want;
	size_t i, n = got_len < want_len ? got_len : want_len;

	for (i = 0; i < n; i++)
		if (g[i] != w[i])
			break;
	if (i == n && got_len == want_len)
		return true;
	fprintf(stderr, "pkt: got %zu bytes, want %zu, first difference at %zu\n",
		got_len, want_len, i);
	for (size_t j = i & ~(size_t)15; j < n && j < (i & ~(size_t)15) + 48;
	     j++)
		fprintf(stderr, "  [%zu] got %02x want %02x%s\n", j, g[j], w[j],
			g[j] != w[j] ? "  <--" : "");
	return false;
}
