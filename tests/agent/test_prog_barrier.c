// SPDX-License-Identifier: GPL-2.0-only
/* aeth_wait_running_programs (agent/daemon/prog_barrier.c): a program run
 * that had started when the wait began has ended when it returns. */
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>

#include "prog_barrier.h"
#include "spin.skel.h"

static struct spin *skel;

static void *run_spin(void *arg)
{
	uint8_t pkt[64] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt,
		    .data_size_in = sizeof(pkt), .repeat = 1);

	(void)arg;
	bpf_prog_test_run_opts(bpf_program__fd(skel->progs.spin), &opts);
	return NULL;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* One run of the spinning program in another thread; returns once it has
 * started. */
static void start_spin(pthread_t *t)
{
	skel->bss->started = 0;
	skel->bss->done = 0;
	cr_assert_eq(pthread_create(t, NULL, run_spin, NULL), 0);
	while (!__atomic_load_n(&skel->bss->started, __ATOMIC_ACQUIRE))
		;
}

static void setup(void)
{
	skel = spin__open();
	cr_assert_not_null(skel);
	/* 32 x 8M empty iterations: a few hundred ms, far longer than a
	 * read, and than a busy machine keeps the test's thread waiting for
	 * its CPU (8 x 8M once ended before the control's read) */
	skel->rodata->spins = 1 << 23;
	cr_assert_eq(spin__load(skel), 0);
}

static void teardown(void)
{
	spin__destroy(skel);
}

TestSuite(prog_barrier, .init = setup, .fini = teardown);

Test(prog_barrier, returns_after_a_run_that_had_started)
{
	struct timespec t0;
	pthread_t t;
	double ms;

	/* the control: right after its start the run is not done, so the
	 * test can tell a wait that waited from one that did not */
	start_spin(&t);
	cr_assert_eq(__atomic_load_n(&skel->bss->done, __ATOMIC_ACQUIRE), 0,
		     "the program ended before it could be waited for");
	pthread_join(t, NULL);
	cr_assert_eq(skel->bss->done, 1);

	start_spin(&t);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(aeth_wait_running_programs(), 0);
	ms = ms_since(&t0);
	cr_assert_eq(__atomic_load_n(&skel->bss->done, __ATOMIC_ACQUIRE), 1,
		     "the wait returned while the program ran (after %.1f ms)",
		     ms);
	cr_log_info("the wait took %.1f ms", ms);
	pthread_join(t, NULL);
}
