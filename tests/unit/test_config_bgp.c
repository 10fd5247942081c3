/* The "bgp" member (SPEC.md section 7): defaults, and each invalid field
 * rejected with its place. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "config.h"
#include "config_asserts.h"

/* A document with node addresses ADDRS and the bgp member BGP. */
#define DOC(ADDRS, BGP)                                                      \
	"{\"version\": 1,"                                                   \
	" \"node\": {\"interfaces\": [\"eth0\"], \"addresses\": " ADDRS "}," \
	" \"maglev\": {\"seed\": \"00112233445566778899aabbccddeeff\"},"      \
	" \"services\": [], \"bgp\": " BGP "}"

#define BOTH "{\"ipv4\": \"192.0.2.11\", \"ipv6\": \"2001:db8::11\"}"
#define V6ONLY "{\"ipv6\": \"2001:db8::11\"}"
#define PEERS "[{\"address\": \"192.0.2.1\", \"asn\": 64500}]"

Test(config_bgp, spec_example_and_defaults)
{
	struct aeth_config *cfg = parse_ok(DOC(BOTH,
		"{\"local_asn\": 64512, \"router_id\": \"198.18.1.2\", \"peers\": ["
		" {\"address\": \"198.18.1.1\", \"asn\": 64500, \"bfd\": true},"
		" {\"address\": \"2001:db8:1::1\", \"asn\": 64500, \"bfd\": true}]}"));
	const struct aeth_cfg_bgp *b = cfg->bgp;

	cr_assert_not_null(b);
	cr_expect_eq(b->local_asn, 64512);
	cr_expect_eq(b->router_id.family, AETH_AF_INET);
	cr_expect_eq(b->router_id.addr.bytes[0], 198);
	cr_expect_eq(b->router_id.addr.bytes[3], 2);
	cr_expect_eq(b->hold_time, 0);
	cr_expect_eq(b->n_communities, 0);
	cr_assert_eq(b->n_peers, 2);
	cr_expect_str_eq(b->peers[0].address_text, "198.18.1.1");
	cr_expect_eq(b->peers[0].asn, 64500);
	cr_expect(b->peers[0].bfd);
	cr_expect_eq(b->peers[1].address.family, AETH_AF_INET6);
	cr_expect_str_eq(b->peers[1].address_text, "2001:db8:1::1");
	aeth_config_free(cfg);
}

Test(config_bgp, router_id_defaults_to_node_ipv4_and_options)
{
	struct aeth_config *cfg = parse_ok(DOC(BOTH,
		"{\"local_asn\": 4200000000, \"hold_time\": 9,"
		" \"communities\": [\"64512:100\", \"0:65535\"], \"peers\": " PEERS "}"));
	const struct aeth_cfg_bgp *b = cfg->bgp;

	cr_expect_eq(b->local_asn, 4200000000u);
	cr_expect_eq(b->router_id.addr.bytes[3], 11);
	cr_expect_eq(b->hold_time, 9);
	cr_assert_eq(b->n_communities, 2);
	cr_expect_eq(b->communities[0][0], 64512);
	cr_expect_eq(b->communities[0][1], 100);
	cr_expect_eq(b->communities[1][1], 65535);
	cr_expect_not(b->peers[0].bfd);
	aeth_config_free(cfg);
}

Test(config_bgp, absent_is_null)
{
	struct aeth_config *cfg = parse_ok(
		"{\"version\": 1, \"node\": {\"interfaces\": [\"eth0\"],"
		" \"addresses\": {\"ipv4\": \"192.0.2.11\"}},"
		" \"maglev\": {\"seed\": \"00112233445566778899aabbccddeeff\"},"
		" \"services\": []}");

	cr_expect_null(cfg->bgp);
	aeth_config_free(cfg);
}

Test(config_bgp, asn_range)
{
	expect_refused(DOC(BOTH, "{\"local_asn\": 0, \"peers\": " PEERS "}"),
		     "bgp.local_asn: must be 1..4294967294");
	expect_refused(DOC(BOTH, "{\"local_asn\": 4294967295, \"peers\": " PEERS "}"),
		     "bgp.local_asn: must be 1..4294967294");
	expect_refused(DOC(BOTH, "{\"local_asn\": 23456, \"peers\": " PEERS "}"),
		     "bgp.local_asn: 23456 is AS_TRANS, not an AS number");
	expect_refused(DOC(BOTH, "{\"local_asn\": \"64512\", \"peers\": " PEERS "}"),
		     "bgp.local_asn: must be an integer");
	expect_refused(DOC(BOTH, "{\"peers\": " PEERS "}"),
		     "bgp.local_asn: is required");
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"peers\": ["
			       "{\"address\": \"192.0.2.1\", \"asn\": -1}]}"),
		     "bgp.peers[0].asn: must be 1..4294967294");
}

Test(config_bgp, peer_address)
{
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"peers\": ["
			       "{\"address\": \"192.0.2.1\", \"asn\": 64500},"
			       "{\"address\": \"router1\", \"asn\": 64500}]}"),
		     "bgp.peers[1].address: not an IP address");
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"peers\": ["
			       "{\"address\": \"224.0.0.5\", \"asn\": 64500}]}"),
		     "bgp.peers[0].address: not a unicast address");
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"peers\": ["
			       "{\"asn\": 64500}]}"),
		     "bgp.peers[0].address: is required");
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"peers\": ["
			       "{\"address\": \"192.0.2.1\", \"asn\": 64500},"
			       "{\"address\": \"192.0.2.1\", \"asn\": 64501}]}"),
		     "bgp.peers[1].address: duplicate of peers[0]");
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"peers\": []}"),
		     "bgp.peers: must name at least one peer");
}

Test(config_bgp, family_without_node_address)
{
	expect_refused(DOC(V6ONLY, "{\"local_asn\": 64512, \"router_id\": "
				 "\"192.0.2.11\", \"peers\": " PEERS "}"),
		     "bgp.peers[0].address: IPv4 peer needs node.addresses.ipv4");
	expect_refused(DOC("{\"ipv4\": \"192.0.2.11\"}",
			 "{\"local_asn\": 64512, \"peers\": ["
			 "{\"address\": \"2001:db8::1\", \"asn\": 64500}]}"),
		     "bgp.peers[0].address: IPv6 peer needs node.addresses.ipv6");
	expect_refused(DOC(V6ONLY, "{\"local_asn\": 64512, \"peers\": ["
				 "{\"address\": \"2001:db8::1\", \"asn\": 64500}]}"),
		     "bgp.router_id: required when node.addresses.ipv4 is absent");
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"router_id\": "
			       "\"2001:db8::11\", \"peers\": " PEERS "}"),
		     "bgp.router_id: not an IPv4 address");
}

Test(config_bgp, other_fields)
{
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"hold_time\": 2, "
			       "\"peers\": " PEERS "}"),
		     "bgp.hold_time: must be 3..65535");
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"communities\": "
			       "[\"64512:70000\"], \"peers\": " PEERS "}"),
		     "bgp.communities[0]: must be \"ASN:VALUE\" with both 0..65535");
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"communities\": "
			       "[\"1:2\", \"64512:1x\"], \"peers\": " PEERS "}"),
		     "bgp.communities[1]: must be \"ASN:VALUE\" with both 0..65535");
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"peers\": ["
			       "{\"address\": \"192.0.2.1\", \"asn\": 64500, "
			       "\"bfd\": 1}]}"),
		     "bgp.peers[0].bfd: must be true or false");
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"peer\": []}"),
		     "bgp.peer: unknown field");
	expect_refused(DOC(BOTH, "{\"local_asn\": 64512, \"peers\": ["
			       "{\"address\": \"192.0.2.1\", \"asn\": 64500, "
			       "\"password\": \"x\"}]}"),
		     "bgp.peers[0].password: unknown field");
	expect_refused(DOC(BOTH, "[]"), "bgp: must be an object");
}

/* Without node.addresses the document passes; the checks that need them
 * run once the agent filled them in (node_detect.c). */
Test(config_bgp, checked_once_node_addresses_are_known)
{
	struct aeth_error err;
	struct aeth_config *cfg = parse_ok(
		"{\"version\": 1, \"node\": {\"interfaces\": [\"eth0\"]},"
		" \"maglev\": {\"seed\": \"00112233445566778899aabbccddeeff\"},"
		" \"services\": [], \"bgp\": {\"local_asn\": 64512, \"peers\": ["
		" {\"address\": \"192.0.2.1\", \"asn\": 64500},"
		" {\"address\": \"2001:db8::1\", \"asn\": 64500}]}}");

	cr_assert_not_null(cfg->bgp);
	cr_expect_eq(cfg->bgp->router_id.family, 0);
	/* the node turns out to have IPv4 only */
	inet_pton(AF_INET, "192.0.2.11", &cfg->node_v4.addr.v4);
	cfg->node_v4.family = AETH_AF_INET;
	cr_expect_eq(aeth_config_bgp_complete(cfg, &err), -EINVAL);
	cr_expect_str_eq(err.path, "bgp.peers[1].address");
	cr_expect_str_eq(err.message, "IPv6 peer needs node.addresses.ipv6");
	/* and both */
	inet_pton(AF_INET6, "2001:db8::11", cfg->node_v6.addr.bytes);
	cfg->node_v6.family = AETH_AF_INET6;
	cr_expect_eq(aeth_config_bgp_complete(cfg, &err), 0);
	cr_expect_eq(cfg->bgp->router_id.family, AETH_AF_INET);
	cr_expect_eq(cfg->bgp->router_id.addr.bytes[3], 11);
	aeth_config_free(cfg);
}
