/* What the document parser refuses because it would fail open or mean
 * nothing: IPv4-mapped IPv6 forms anywhere, prefixes with leading zeros,
 * loopback and node addresses as VIPs or backends, a backend that is a VIP,
 * invalid UTF-8 and NUL characters. Each refusal names its place. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "config.h"
#include "config_asserts.h"

/* vip, backends (JSON array body), cidrs (JSON array body), name */
#define DOC_FMT \
	"{\"version\": 1, \"node\": {\"interfaces\": [\"eth0\"],"	\
	" \"addresses\": {\"ipv4\": \"192.0.2.11\", \"ipv6\": \"2001:db8::11\"}}," \
	" \"maglev\": {\"seed\": \"00112233445566778899AABBCCDDEEFF\"," \
	" \"table_size\": 251}, \"services\": ["			\
	"{\"name\": \"other\", \"vip\": \"203.0.113.99\", \"port\": 80,"	\
	" \"protocol\": \"tcp\", \"backends\": [{\"address\": \"192.0.2.50\"}]}," \
	"{\"name\": \"%s\", \"vip\": \"%s\", \"port\": 443, \"protocol\": \"tcp\"," \
	" \"authorized_networks\": {\"enabled\": true, \"cidrs\": [%s]}," \
	" \"backends\": [%s]}]}"

static char doc[4096];

static const char *mk(const char *name, const char *vip, const char *cidrs,
		      const char *backends)
{
	snprintf(doc, sizeof(doc), DOC_FMT, name, vip, cidrs, backends);
	return doc;
}

static const char *good(void)
{
	return mk("api", "203.0.113.10", "\"198.51.100.0/24\"",
		  "{\"address\": \"192.0.2.21\"}");
}

Test(refusals, the_base_document_is_valid)
{
	struct aeth_config *cfg = NULL;
	struct aeth_error err;

	cr_assert_eq(aeth_config_parse(good(), strlen(good()), &cfg, &err), 0,
		     "%s: %s", err.path, err.message);
	aeth_config_free(cfg);
}

#define MAPPED "IPv4-mapped IPv6 form: write the IPv4 address as IPv4"

Test(refusals, ipv4_mapped_forms_everywhere)
{
	expect_refused(mk("api", "203.0.113.10",
		   "\"198.51.100.0/24\", \"::ffff:198.51.100.0/120\"",
		   "{\"address\": \"192.0.2.21\"}"),
		"services[1].authorized_networks.cidrs[1]: " MAPPED);
	expect_refused(mk("api", "203.0.113.10", "\"::ffff:0:0/96\"",
		   "{\"address\": \"192.0.2.21\"}"),
		"services[1].authorized_networks.cidrs[0]: " MAPPED);
	expect_refused(mk("api", "203.0.113.10", "",
		   "{\"address\": \"192.0.2.21\"}, {\"address\": \"::ffff:192.0.2.21\"}"),
		"services[1].backends[1].address: " MAPPED);
	expect_refused(mk("api", "::ffff:203.0.113.10", "",
		   "{\"address\": \"192.0.2.21\"}"),
		"services[1].vip: " MAPPED);
	/* the dotted and the hex spelling are the same address */
	expect_refused(mk("api", "::ffff:cb00:710a", "", "{\"address\": \"192.0.2.21\"}"),
		"services[1].vip: " MAPPED);
}

Test(refusals, prefix_with_leading_zeros)
{
	expect_refused(mk("api", "203.0.113.10", "\"198.51.100.0/024\"",
		   "{\"address\": \"192.0.2.21\"}"),
		"services[1].authorized_networks.cidrs[0]: prefix length with "
		"leading zeros");
	expect_refused(mk("api", "203.0.113.10", "\"0.0.0.0/00\"",
		   "{\"address\": \"192.0.2.21\"}"),
		"services[1].authorized_networks.cidrs[0]: prefix length with "
		"leading zeros");
	/* "/0" alone is a prefix length, not a leading zero */
	{
		struct aeth_config *cfg = NULL;
		const char *t = mk("api", "203.0.113.10", "\"0.0.0.0/0\"",
				   "{\"address\": \"192.0.2.21\"}");

		cr_assert_eq(aeth_config_parse(t, strlen(t), &cfg, NULL), 0);
		aeth_config_free(cfg);
	}
}

Test(refusals, vip_on_loopback_or_the_node)
{
	expect_refused(mk("api", "127.0.0.1", "", "{\"address\": \"192.0.2.21\"}"),
		"services[1].vip: a loopback address: no packet from outside "
		"the node can reach it");
	expect_refused(mk("api", "::1", "", "{\"address\": \"192.0.2.21\"}"),
		"services[1].vip: a loopback address: no packet from outside "
		"the node can reach it");
	expect_refused(mk("api", "192.0.2.11", "", "{\"address\": \"192.0.2.21\"}"),
		"services[1].vip: the node's own address (node.addresses.ipv4): "
		"packets to it belong to the node's stack");
	expect_refused(mk("api", "2001:db8::11", "", "{\"address\": \"192.0.2.21\"}"),
		"services[1].vip: the node's own address (node.addresses.ipv6): "
		"packets to it belong to the node's stack");
}

Test(refusals, backend_on_loopback_the_node_or_a_vip)
{
	expect_refused(mk("api", "203.0.113.10", "", "{\"address\": \"127.0.0.5\"}"),
		"services[1].backends[0].address: a loopback address: no "
		"tunnel reaches it");
	expect_refused(mk("api", "203.0.113.10", "",
		   "{\"address\": \"192.0.2.21\"}, {\"address\": \"192.0.2.11\"}"),
		"services[1].backends[1].address: the node's own address "
		"(node.addresses.ipv4): the node would tunnel to itself");
	/* its own VIP, and another service's */
	expect_refused(mk("api", "203.0.113.10", "", "{\"address\": \"203.0.113.10\"}"),
		"services[1].backends[0].address: the VIP of services[1]: its "
		"traffic would come back to the balancer");
	expect_refused(mk("api", "203.0.113.10", "", "{\"address\": \"203.0.113.99\"}"),
		"services[1].backends[0].address: the VIP of services[0]: its "
		"traffic would come back to the balancer");
}

/* The bad byte is on line 1, at a column equal to its offset + 1 (the
 * document is ASCII up to it). */
static void refused_utf8(const char *text, const char *bad, unsigned byte)
{
	char want[256];

	snprintf(want, sizeof(want), "line 1, column %d: invalid UTF-8 (byte "
		 "0x%02x): the document, names included, must be UTF-8",
		 (int)(strstr(text, bad) - text) + 1, byte);
	expect_refused(text, want);
}

Test(refusals, invalid_utf8_in_a_name)
{
	refused_utf8(mk("ap\xff", "203.0.113.10", "",
			"{\"address\": \"192.0.2.21\"}"), "\xff", 0xff);
	/* an overlong '/' and a lone surrogate are not UTF-8 either */
	refused_utf8(mk("a\xc0\xaf", "203.0.113.10", "", ""), "\xc0", 0xc0);
	refused_utf8(mk("a\xed\xa0\x80", "203.0.113.10", "", ""), "\xed", 0xed);
	/* valid multi-byte text still reaches the name check */
	expect_refused(mk("caf\xc3\xa9", "203.0.113.10", "", ""),
		"services[1].name: may contain only letters, digits, '.', '_' "
		"and '-'");
}

Test(refusals, nul_in_a_string_names_the_field)
{
	expect_refused(mk("api\\u0000x", "203.0.113.10", "", "{\"address\": \"192.0.2.21\"}"),
		"services[1].name: contains a NUL character (\\u0000)");
	expect_refused(mk("api", "203.0.113.10", "\"198.51.100.0/24\\u0000junk\"",
		   "{\"address\": \"192.0.2.21\"}"),
		"services[1].authorized_networks.cidrs[0]: contains a NUL "
		"character (\\u0000)");
}
