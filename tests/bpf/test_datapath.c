/* Data path tests: parsing, service lookup and pass-through. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"
#include "pkt.h"

static struct dp_h h;

static void setup(void)
{
	struct aeth_node node;

	cr_assert_eq(dp_open(&h), 0);
	dp_node_default(&node);
	cr_assert_eq(dp_set_node(&h, &node), 0);
}

static void teardown(void)
{
	dp_close(&h);
}

TestSuite(parse, .init = setup, .fini = teardown);

Test(parse, non_service_passes_unchanged)
{
	struct pkt_spec s = pkt_spec_tcp4("198.51.100.7", 40000, "192.0.2.99", 80);
	uint8_t in[PKT_MAX], out[PKT_MAX];
	size_t len = pkt_build(&s, in, sizeof(in)), out_len = sizeof(out);
	uint32_t verdict;

	cr_assert_eq(dp_run(&h, in, len, out, &out_len, 0, &verdict), 0);
	cr_assert_eq(verdict, XDP_PASS);
	cr_assert(pkt_equal(out, out_len, in, len));
}

Test(parse, netns_setup)
{
	struct dp_net net;

	cr_assert_eq(dp_netns_setup(&net), 0);
	cr_assert_neq(net.if0, 0);
	cr_assert_neq(net.if2, 0);
	cr_assert_neq(net.mac_if0[0] | net.mac_if0[5], 0);
}
