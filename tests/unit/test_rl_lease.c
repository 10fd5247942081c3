/* The service cap's per-CPU leases (include/aether/ratelimit_rule.h, the
 * rules bpf/guard.h runs): the program's steps for a new connection are
 * replayed here with the same rules on simulated CPUs sharing one bucket.
 * On one CPU the leases must be the bucket charged one by one, verdict for
 * verdict; on several, no span of the clock may admit more than the bucket
 * allows, and what leases lose is bounded. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "aether/ratelimit_rule.h"

#define TICK 4000000ULL		/* 4 ms: HZ=250 */
#define MAX_CPUS 4

struct sim {
	__u64 tat;			/* the shared bucket */
	struct aeth_rl_lease lease[MAX_CPUS];
	__u64 lost;			/* leased tokens that stayed spent */
};

/* One new connection on cpu at now: guard_admit_new_connection's service
 * steps (the peek, then the spend or the take). */
static bool admit(struct sim *s, int cpu, __u64 now, __u64 interval,
		  __u64 tol)
{
	struct aeth_rl_lease *l = &s->lease[cpu];
	__u64 next = 0;
	__u32 size, k;

	if (aeth_rl_lease_spends(l, interval, tol, now, s->tat)) {
		l->left--;
		return true;
	}
	if (!aeth_gcra_conforms(aeth_rl_lease_tat(l, s->tat), now, tol))
		return false;
	size = aeth_rl_lease_next_size(l, interval, tol, now);
	k = aeth_rl_lease_take(l, s->tat, now, interval, tol, size, &next);
	if (!k)
		return false;
	if (l->left && s->tat != l->end_tat)
		s->lost += l->left;
	s->tat = next;
	aeth_rl_lease_taken(l, now, next, interval, tol, k, size);
	return true;
}

/* The bucket charged one connection at a time (docs/guard.md). */
static bool admit_one_by_one(__u64 *tat, __u64 now, __u64 interval,
			     __u64 tol)
{
	if (!aeth_gcra_conforms(*tat, now, tol))
		return false;
	*tat = aeth_gcra_next_tat(*tat, now, interval);
	return true;
}

/* The clock's next reading: mostly the same tick (a burst within it), else
 * one to three ticks on, now and then a long pause. */
static __u64 step_clock(__u64 now, unsigned int *seed)
{
	unsigned int r = (unsigned int)rand_r(seed) % 100;

	if (r < 80)
		return now;
	if (r < 97)
		return now + TICK * (1 + (unsigned int)rand_r(seed) % 3);
	return now + TICK * (50 + (unsigned int)rand_r(seed) % 500);
}

Test(rl_lease, one_cpu_is_the_bucket_charged_one_by_one)
{
	/* rates whose burst takes leases (burst >= 32) and one that takes
	 * none (burst 8); the third changes its rate halfway */
	const __u64 rates[] = { 10000, 1000, 300, 100000 };
	const __u64 bursts[] = { 1000, 64, 8, 5000 };
	unsigned int seed = 12345;
	int leased = 0;

	for (unsigned int r = 0; r < 4; r++) {
		struct sim s;
		__u64 model = 0, now = 1000 * TICK;
		__u64 interval = 1000000000ULL / rates[r];
		__u64 tol = (bursts[r] - 1) * interval;

		memset(&s, 0, sizeof(s));
		for (int i = 0; i < 200000; i++) {
			bool got, want;

			if (r == 2 && i == 100000) {	/* a new rate */
				interval = 1000000000ULL / 5000;
				tol = 999 * interval;
			}
			now = step_clock(now, &seed);
			got = admit(&s, 0, now, interval, tol);
			want = admit_one_by_one(&model, now, interval, tol);
			cr_assert_eq(got, want,
				     "rate %llu, connection %d: leases %s, "
				     "one by one %s", (unsigned long long)rates[r],
				     i, got ? "admit" : "refuse",
				     want ? "admit" : "refuse");
			leased += s.lease[0].left > 0;
		}
	}
	/* the leases were really used, not one token at a time throughout */
	cr_assert_gt(leased, 1000);
}

/* Several CPUs in random turns on one clock: count the admissions of every
 * tick, then check every span of ticks against the bucket's bound. */
static void several_cpus(int ncpus, __u64 rate, __u64 burst,
			 unsigned int seed)
{
	const int ticks = 3000;
	__u64 interval = 1000000000ULL / rate, tol = (burst - 1) * interval;
	__u64 *per_tick = calloc(ticks, sizeof(*per_tick));
	__u64 total = 0, most_left = 0, model = 0, one_by_one = 0;
	struct sim s;

	cr_assert_not_null(per_tick);
	memset(&s, 0, sizeof(s));
	for (int t = 0; t < ticks; t++) {
		__u64 now = 1000 * TICK + (__u64)t * TICK;
		/* a busy tick offers far more than the bucket refills */
		int offered = (unsigned int)rand_r(&seed) % 4 ?
				      (int)(rand_r(&seed) % 8) :
				      (int)(rand_r(&seed) % 400);

		for (int i = 0; i < offered; i++) {
			int cpu = (unsigned int)rand_r(&seed) % ncpus;

			per_tick[t] += admit(&s, cpu, now, interval, tol);
			one_by_one += admit_one_by_one(&model, now, interval,
						       tol);
		}
		for (int c = 0; c < ncpus; c++)
			if (s.lease[c].left > most_left)
				most_left = s.lease[c].left;
		total += per_tick[t];
	}
	/* over ticks a..b, at most burst + (b - a) * TICK / interval */
	for (int a = 0; a < ticks; a++) {
		__u64 sum = 0;

		for (int b = a; b < ticks && b < a + 400; b++) {
			sum += per_tick[b];
			cr_assert_leq(sum, burst + (__u64)(b - a) * TICK / interval,
				      "%d CPUs: ticks %d..%d admitted %llu",
				      ncpus, a, b, (unsigned long long)sum);
		}
	}
	/* a lease holds at most AETH_RL_LEASE_MAX - 1 and at most a
	 * sixteenth of the burst; what leases lose is at most that per CPU
	 * and tick */
	cr_assert_lt(most_left, AETH_RL_LEASE_MAX);
	cr_assert_leq(most_left * AETH_RL_LEASE_SHARE, burst);
	cr_assert_leq(s.lost, (__u64)ncpus * (AETH_RL_LEASE_MAX - 1) * ticks);
	/* and what they cost a busy cap stays small: leases are taken only
	 * while more than half of the burst remains */
	cr_assert_geq(total * 100, one_by_one * 95,
		      "%d CPUs: %llu admitted, one by one %llu", ncpus,
		      (unsigned long long)total,
		      (unsigned long long)one_by_one);
	cr_log_info("%d CPUs, rate %llu, burst %llu: %llu admitted (one by "
		    "one: %llu), %llu lost", ncpus, (unsigned long long)rate,
		    (unsigned long long)burst, (unsigned long long)total,
		    (unsigned long long)one_by_one, (unsigned long long)s.lost);
	free(per_tick);
}

Test(rl_lease, several_cpus_never_exceed_the_bucket)
{
	several_cpus(2, 10000, 1000, 1);
	several_cpus(4, 10000, 1000, 2);
	several_cpus(4, 2000, 200, 3);
	several_cpus(3, 100000, 10000, 4);
	several_cpus(2, 300, 30, 5);	/* no lease fits: one by one */
}

Test(rl_lease, sizes)
{
	const __u64 iv = 1000000;	/* 1,000 a second */
	struct aeth_rl_lease l;

	/* at most 16, and at most a sixteenth of the burst */
	cr_assert(aeth_rl_lease_fits(16, iv, 255 * iv));
	cr_assert_not(aeth_rl_lease_fits(17, iv, 10000 * iv));
	cr_assert(aeth_rl_lease_fits(2, iv, 31 * iv));
	cr_assert_not(aeth_rl_lease_fits(2, iv, 30 * iv));
	cr_assert(aeth_rl_lease_fits(1, iv, 0));
	cr_assert_not(aeth_rl_lease_fits(0, iv, 1000 * iv));

	memset(&l, 0, sizeof(l));
	cr_assert_eq(aeth_rl_lease_next_size(&l, iv, 999 * iv, TICK), 1);
	aeth_rl_lease_taken(&l, TICK, 0, iv, 999 * iv, 1, 1);
	/* spent within its tick: twice as many, up to 16 */
	cr_assert_eq(aeth_rl_lease_next_size(&l, iv, 999 * iv, TICK), 2);
	l.size = 16;
	cr_assert_eq(aeth_rl_lease_next_size(&l, iv, 999 * iv, TICK), 16);
	/* a later tick with tokens left: one again; without: the same */
	l.left = 3;
	cr_assert_eq(aeth_rl_lease_next_size(&l, iv, 999 * iv, 2 * TICK), 1);
	l.left = 0;
	cr_assert_eq(aeth_rl_lease_next_size(&l, iv, 999 * iv, 2 * TICK), 16);
	/* changed parameters: a new lease */
	cr_assert_eq(aeth_rl_lease_next_size(&l, 2 * iv, 999 * iv, 2 * TICK), 1);
	/* a burst of 64 takes 4 at most: spent within its tick, still 4 */
	aeth_rl_lease_taken(&l, TICK, 0, iv, 63 * iv, 1, 4);
	cr_assert_eq(aeth_rl_lease_next_size(&l, iv, 63 * iv, TICK), 4);
}

/* A fresh lease's take of eight tokens from an empty bucket at now, one
 * of them spent: the bucket's tat after it. */
static __u64 lease_of_eight(struct aeth_rl_lease *l, __u64 now, __u64 iv,
			    __u64 tol)
{
	__u64 next = 0;

	memset(l, 0, sizeof(*l));
	cr_assert_eq(aeth_rl_lease_take(l, 0, now, iv, tol, 8, &next), 8);
	cr_assert_eq(next, now + 8 * iv);
	aeth_rl_lease_taken(l, now, next, iv, tol, 8, 8);
	cr_assert_eq(l->left, 7);
	return next;
}

Test(rl_lease, unspent_tokens_go_back_only_when_no_take_came_between)
{
	const __u64 iv = 1000000, tol = 999 * iv, now = 100 * TICK;
	struct aeth_rl_lease l;
	__u64 next;

	next = lease_of_eight(&l, now, iv, tol);
	/* untouched since: the seven go back */
	cr_assert_eq(aeth_rl_lease_tat(&l, next), now + iv);
	/* another CPU took after it: they stay spent */
	cr_assert_eq(aeth_rl_lease_tat(&l, next + iv), next + iv);
	/* a take that would pass the tolerance takes one token */
	cr_assert_eq(aeth_rl_lease_take(&l, now + tol, now, iv, tol, 8, &next),
		     1);
	cr_assert_eq(next, now + tol + iv);
	/* past it, none */
	cr_assert_eq(aeth_rl_lease_take(&l, now + tol + iv, now, iv, tol, 8,
					&next), 0);
}

/* A service id given to a new service: the agent zeroes its bucket, and a
 * lease taken from the old one no longer spends, even within its tick
 * and under the same rate and burst. */
Test(rl_lease, a_bucket_made_anew_ends_the_leases)
{
	const __u64 iv = 1000000, tol = 999 * iv, now = 100 * TICK;
	struct aeth_rl_lease l;
	__u64 next;

	next = lease_of_eight(&l, now, iv, tol);
	cr_assert(aeth_rl_lease_spends(&l, iv, tol, now, next));
	/* another CPU's take after it: still the same bucket */
	cr_assert(aeth_rl_lease_spends(&l, iv, tol, now, next + 4 * iv));
	/* zeroed */
	cr_assert_not(aeth_rl_lease_spends(&l, iv, tol, now, 0));
	/* and a later tick, or other parameters, end it too */
	cr_assert_not(aeth_rl_lease_spends(&l, iv, tol, now + TICK, next));
	cr_assert_not(aeth_rl_lease_spends(&l, 2 * iv, tol, now, next));
}
