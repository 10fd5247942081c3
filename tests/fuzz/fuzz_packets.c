/* The long packet fuzz run: fuzz_packets [PACKETS [SEED]], 1,000,000
 * packets by default; exits 0 when no invariant was violated. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pfuzz.h"

int main(int argc, char **argv)
{
	uint64_t n = 1000000, seed;
	struct pf_result r;
	struct timespec ts;
	int i, err;

	clock_gettime(CLOCK_REALTIME, &ts);
	seed = (uint64_t)ts.tv_sec * 1000003u + ts.tv_nsec;
	if (argc > 1)
		n = strtoull(argv[1], NULL, 0);
	if (argc > 2)
		seed = strtoull(argv[2], NULL, 0);
	fprintf(stderr, "packet fuzz: %llu packets, seed %llu\n",
		(unsigned long long)n, (unsigned long long)seed);
	err = pf_run(seed, n, true, 20, &r);
	if (err) {
		fprintf(stderr, "packet fuzz: could not run (%d)\n", err);
		return 2;
	}
	printf("seed %llu: %llu packets in %.1f s (%.0f per second), "
	       "%llu violations\n", (unsigned long long)r.seed,
	       (unsigned long long)r.packets, r.seconds,
	       r.seconds > 0 ? r.packets / r.seconds : 0.0,
	       (unsigned long long)r.violations);
	for (i = 0; i < PF_OUTCOME_MAX; i++)
		printf("  %-16s %llu\n", pf_outcome_name(i),
		       (unsigned long long)r.outcomes[i]);
	printf("  drops by reason:");
	for (i = 0; i < 10; i++)
		printf(" %llu", (unsigned long long)r.reasons[i]);
	printf("\n");
	return r.violations ? 1 : 0;
}
