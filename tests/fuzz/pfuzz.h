/* Packet fuzzer of the XDP data path: random and mutated frames through
 * BPF_PROG_TEST_RUN of the real program, invariants checked on every one.
 *
 * pf_run() sets up a private network namespace (dp_netns_setup), loads the
 * program unpinned, fills its maps with a fixed realistic configuration
 * (services with authorized networks, rate limits, backends on two NICs,
 * a backend without neighbour, an empty ACL, a service without backends)
 * and runs n generated packets. Every packet's verdict, output bytes and
 * global counter deltas are checked against an oracle computed from the
 * input bytes and the configuration only (never from the generator). */
#ifndef AETHER_TESTS_PFUZZ_H
#define AETHER_TESTS_PFUZZ_H

#include <stdbool.h>
#include <stdint.h>

/* What happened, for reports and for checking the run reached every path. */
enum pf_outcome {
	PF_PASS_UNCHANGED = 0,
	PF_DROP,
	PF_TX_ENCAP,
	PF_REDIRECT_ENCAP,
	PF_PASS_ENCAP,		/* to the stack: no neighbour, or to fragment */
	PF_DECAP,
	PF_TX_ICMP_TOO_BIG,
	PF_ICMP_STEERED,	/* subset of the encapsulated ones */
	PF_OUTCOME_MAX,
};

struct pf_result {
	uint64_t seed;
	uint64_t packets;	/* run through the program */
	uint64_t violations;
	uint64_t outcomes[PF_OUTCOME_MAX];
	uint64_t reasons[16];	/* per enum aeth_reason, from counter deltas */
	double seconds;
};

/* Run n packets from seed. verbose: progress lines on stderr. Violations
 * are described on stderr (the first max_reports of them, with the seed and
 * the packet's index and bytes). Returns 0 when the run could be made
 * (violations are in res), or a negative errno. */
int pf_run(uint64_t seed, uint64_t n, bool verbose, int max_reports,
	   struct pf_result *res);

const char *pf_outcome_name(int o);

#endif /* AETHER_TESTS_PFUZZ_H */
