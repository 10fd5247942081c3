/* Packet builder for data path tests: Ethernet, VLAN, IPv4 (options),
 * IPv6 (extension headers), TCP, UDP, ICMP, with checksums computed here,
 * independently of the BPF code.
 *
 * Fill a struct pkt_spec (start from pkt_spec_tcp4/6 or pkt_spec_udp4/6 and
 * change fields), then pkt_build() writes the frame and returns its length.
 * pkt_build_l3() writes the same packet from the IP header on (no Ethernet):
 * use it for the inner packet of a tunnel or for the quote of an ICMP error.
 *
 *   struct pkt_spec s = pkt_spec_tcp4("198.51.100.7", 40000,
 *                                     "203.0.113.10", 6443);
 *   s.tcp_flags = PKT_TCP_SYN;
 *   s.n_vlan = 1; s.vlan[0] = (struct pkt_vlan){ 0x8100, 100 };
 *   uint8_t frame[PKT_MAX]; size_t len = pkt_build(&s, frame, sizeof(frame));
 *
 * Protocols other than TCP/UDP: set proto and give the L4 bytes in payload.
 * For proto 1 (ICMP) and 58 (ICMPv6) the checksum at payload offset 2 is
 * computed by the builder (unless l4_csum_raw), including the IPv6
 * pseudo-header for ICMPv6. For other protocols (4, 41: tunnels) the payload
 * is copied as is.
 */
#ifndef AETHER_TESTS_PKT_H
#define AETHER_TESTS_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aether/abi.h"

#define PKT_MAX 10240

#define PKT_TCP_FIN 0x01
#define PKT_TCP_SYN 0x02
#define PKT_TCP_RST 0x04
#define PKT_TCP_PSH 0x08
#define PKT_TCP_ACK 0x10

struct pkt_vlan {
	uint16_t tpid;		/* 0x8100 or 0x88a8 */
	uint16_t tci;
};

/* One IPv6 extension header: type 0 (hop-by-hop), 43 (routing),
 * 60 (destination options) or 44 (fragment). len8 is the length field
 * (header is (len8 + 1) * 8 bytes; ignored for fragment headers). */
struct pkt_ext {
	uint8_t type;
	uint8_t len8;
};

struct pkt_spec {
	uint8_t dmac[6], smac[6];
	int n_vlan;		/* 0..2, outermost first */
	struct pkt_vlan vlan[2];

	int family;		/* AETH_AF_INET or AETH_AF_INET6 */
	union aeth_addr src, dst;
	uint8_t ttl;		/* hop limit for IPv6 */
	uint8_t tos;		/* traffic class for IPv6 */
	uint32_t flow_label;	/* IPv6 */
	uint16_t ip_id;		/* IPv4 */
	bool df, mf;		/* IPv4 flags; mf also for the v6 fragment hdr */
	uint16_t frag_off;	/* in 8-byte units (v4 header or v6 frag hdr) */
	uint8_t ip_opts[40];	/* IPv4 options, ip_opts_len a multiple of 4 */
	size_t ip_opts_len;
	int n_ext;		/* IPv6 extension headers, in order */
	struct pkt_ext ext[4];

	uint8_t proto;		/* 6, 17, or anything with a raw payload */
	uint16_t sport, dport;	/* host order */
	uint8_t tcp_flags;
	uint32_t seq, ack;
	bool l4_csum_raw;	/* ICMP: keep the checksum given in payload */

	const void *payload;
	size_t payload_len;
};

/* Specs with defaults: MACs 02:00:00:00:00:01 -> 02:00:00:00:00:02, TTL 64,
 * TOS 0, DF set (v4), TCP flags ACK, seq 1, ack 1, no payload. Addresses are
 * text; ports host order. */
struct pkt_spec pkt_spec_tcp4(const char *src, uint16_t sport, const char *dst,
			      uint16_t dport);
struct pkt_spec pkt_spec_tcp6(const char *src, uint16_t sport, const char *dst,
			      uint16_t dport);
struct pkt_spec pkt_spec_udp4(const char *src, uint16_t sport, const char *dst,
			      uint16_t dport);
struct pkt_spec pkt_spec_udp6(const char *src, uint16_t sport, const char *dst,
			      uint16_t dport);

/* Write the frame (pkt_build) or the L3 packet (pkt_build_l3) into out;
 * returns its length, or 0 if it does not fit in cap. */
size_t pkt_build(const struct pkt_spec *s, void *out, size_t cap);
size_t pkt_build_l3(const struct pkt_spec *s, void *out, size_t cap);

/* Ethernet header (+ VLAN tags) of s with the given ethertype; returns its
 * length (14 + 4 per tag). */
size_t pkt_build_l2(const struct pkt_spec *s, uint16_t ethertype, void *out);

/* Internet checksum of buf folded with a partial sum (host order sum of
 * 16-bit big-endian words); returns the final complemented value in network
 * byte order, ready to store. */
uint16_t pkt_csum(const void *buf, size_t len, uint32_t partial);
/* Partial sum of the IPv4/IPv6 pseudo-header. */
uint32_t pkt_pseudo_sum(int family, const union aeth_addr *src,
			const union aeth_addr *dst, uint8_t proto,
			uint32_t l4_len);
/* True when the IPv4 header at buf has a valid header checksum, and when
 * the TCP/UDP/ICMP checksum of the L3 packet at buf (either family) is
 * valid. Used to check what the program wrote. */
bool pkt_ipv4_csum_ok(const void *ip_hdr);
bool pkt_l4_csum_ok(const void *l3, size_t len);

/* Hex dump of the first difference between two buffers into stderr (for
 * failing byte comparisons); returns true when equal. */
bool pkt_equal(const void *got, size_t got_len, const void *want,
	       size_t want_len);

#endif /* AETHER_TESTS_PKT_H */
