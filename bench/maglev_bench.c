/* Maglev table build time for M in {16381, 65537} and N in {3, 100, 1000},
 * against the Maglev paper's 1.8 ms for M = 65537, N = 1000. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maglev.h"

#define PAPER_MS 1.8	/* Eisenbud et al., NSDI 2016, section 5.3 */

static double now_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Wall time, and this thread's CPU time, which leaves out the time other
 * tasks held the CPU: on a shared 2-CPU machine it is the steadier one. */
struct result {
	double median, min, cpu_median;	/* ms */
};

/* Build time over runs; weighted picks weights 1..4. */
static struct result bench(size_t n, uint32_t m, int runs, int weighted)
{
	static const uint8_t seed[16] = { 0x5f, 0x3c, 0x0a, 0x1e, 0x9b, 0x7d };
	struct aeth_maglev_backend *b = calloc(n, sizeof(*b));
	uint32_t *table = malloc(m * sizeof(*table));
	double *t = calloc((size_t)runs, sizeof(*t));
	double *cpu = calloc((size_t)runs, sizeof(*cpu));
	struct result res;

	if (!b || !table || !t || !cpu) {
		fprintf(stderr, "maglev: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		b[i].ip.family = AETH_AF_INET;
		b[i].ip.addr.v4 = htonl(0xc6120000u + (uint32_t)i); /* 198.18.0.0/15 */
		b[i].id = (uint32_t)i;
		b[i].weight = weighted ? 1 + (uint32_t)(i % 4) : 1;
	}
	for (int r = 0; r < runs; r++) {
		double start = now_ms(CLOCK_MONOTONIC);
		double cstart = now_ms(CLOCK_THREAD_CPUTIME_ID);

		if (aeth_maglev_build(b, n, seed, m, table)) {
			fprintf(stderr, "maglev: build failed (n %zu, m %u)\n", n, m);
			exit(1);
		}
		cpu[r] = now_ms(CLOCK_THREAD_CPUTIME_ID) - cstart;
		t[r] = now_ms(CLOCK_MONOTONIC) - start;
	}
	qsort(t, (size_t)runs, sizeof(*t), cmp_double);
	qsort(cpu, (size_t)runs, sizeof(*cpu), cmp_double);
	res.median = t[runs / 2];
	res.min = t[0];
	res.cpu_median = cpu[runs / 2];
	free(cpu);
	free(t);
	free(table);
	free(b);
	return res;
}

int main(int argc, char **argv)
{
	static const uint32_t sizes[] = { 16381, 65537 };
	static const size_t counts[] = { 3, 100, 1000 };
	int runs = argc > 1 ? atoi(argv[1]) : 101;
	struct result ref = { 0 };
	char load[64] = "?";
	FILE *f;

	if (runs < 1) {
		fprintf(stderr, "usage: %s [RUNS]\n", argv[0]);
		return 2;
	}
	/* The machine is shared: say how busy it was. */
	f = fopen("/proc/loadavg", "r");
	if (f) {
		if (!fgets(load, sizeof(load), f))
			strcpy(load, "?");
		load[strcspn(load, "\n")] = '\0';
		fclose(f);
	}
	printf("Maglev table build, %d runs each (load average %s)\n", runs, load);
	printf("equal: every weight 1; weighted: weights 1..4; ms, wall median "
	       "/ wall min / CPU median\n");
	printf("%7s %6s  %-26s  %-26s\n", "M", "N", "equal", "weighted");
	for (size_t a = 0; a < 2; a++) {
		for (size_t c = 0; c < 3; c++) {
			struct result eq = bench(counts[c], sizes[a], runs, 0);
			struct result wt = bench(counts[c], sizes[a], runs, 1);

			printf("%7u %6zu  %7.3f / %7.3f / %7.3f  %7.3f / %7.3f / %7.3f\n",
			       sizes[a], counts[c], eq.median, eq.min,
			       eq.cpu_median, wt.median, wt.min, wt.cpu_median);
			if (sizes[a] == 65537 && counts[c] == 1000)
				ref = eq;
		}
	}
	printf("reference: the Maglev paper's %.1f ms for M 65537, N 1000 "
	       "(2016 hardware); here, equal weights: wall median %.2fx of it, "
	       "wall min %.2fx, CPU median %.2fx\n", PAPER_MS,
	       ref.median / PAPER_MS, ref.min / PAPER_MS,
	       ref.cpu_median / PAPER_MS);
	return 0;
}
