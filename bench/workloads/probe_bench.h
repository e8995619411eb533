/* Shared timing loop for the in-process event benchmarks (probe_weft.c,
 * probe_lttng.c), the same method as `weft-demo bench`:
 *
 *   PROG N [T]   T threads (default 1) each emit N events (two u64 fields),
 *                in 15 batches of N/15; each thread's cost is the median
 *                ns/event of its batches (a preemption spoils one batch,
 *                not the result). Prints, on stdout:
 *
 *   impl=... enabled=E0/E1 threads=T events=TOTAL median_ns_per_event=M
 *       median_cpu_ns_per_event=C events_per_sec=R
 *
 * M is the mean of the threads' medians (as weft-demo does); C the same for
 * the thread's CPU time per event (without time spent waiting for a CPU
 * while other threads ran); R is the total
 * number of events divided by the wall time from the first thread's start to
 * the last thread's end. E0/E1: whether the event was enabled before the
 * first and after the last batch (1/1 for an enabled run, 0/0 disabled).
 *
 * Before the loop, if $BENCH_WAIT_ENABLED is a number of milliseconds, wait
 * up to that long for the event to become enabled (a tracer attaching).
 *
 * Burst mode ($BENCH_BURST=K, $BENCH_GAP_MS=G): instead of 15 batches, each
 * thread times N/K bursts of K events and sleeps G ms (not timed) after each,
 * so that a collector that drains periodically can keep up: this measures
 * the write path without losses. The median is over the bursts.
 *
 * Paced mode ($BENCH_RATE=R events per second per thread): each thread
 * emits its N events no faster than R per second (it spins until each
 * group of 64 events is due), so that a sweep of R finds the highest rate a
 * tracer keeps without loss. The line then also has paced_rate=, the rate
 * actually reached (total events / wall time).
 *
 * The including file defines BENCH_IMPL (a string), BENCH_ENABLED() (an
 * expression) and BENCH_EMIT(a, b) (one event with two uint64_t values).
 */
#ifndef PROBE_BENCH_H
#define PROBE_BENCH_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define BENCH_BATCHES 15

static inline uint64_t pb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The calling thread's CPU time: the cost of the writes without the time the
 * thread waited for a CPU (with more writer threads than CPUs). */
static inline uint64_t pb_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct pb_thread {
	pthread_t th;
	uint64_t per;
	int batches;
	unsigned gap_ms;
	uint64_t k;
	double median;
	double cpu_median;
	double rate; /* events per second per thread, 0: flat out */
};

/* Paced: N events at t->rate per second, in groups of 64. */
static void pb_paced(struct pb_thread *t, uint64_t n)
{
	double ns_per = 1e9 / t->rate;
	uint64_t t0 = pb_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		if ((i & 63) == 0)
			while ((double)(pb_now_ns() - t0) < (double)i * ns_per)
				;
		uint64_t v = i;
		__asm__ volatile("" : "+r"(v));
		BENCH_EMIT(v, t->k);
	}
}

static int pb_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void *pb_run(void *p)
{
	struct pb_thread *t = p;
	if (t->rate > 0) {
		pb_paced(t, t->per * (uint64_t)t->batches);
		return NULL;
	}
	double *ns = calloc((size_t)t->batches, sizeof *ns);
	double *cpu = calloc((size_t)t->batches, sizeof *cpu);
	for (int b = 0; b < t->batches; b++) {
		if (b && t->gap_ms)
			usleep(t->gap_ms * 1000u);
		uint64_t t0 = pb_now_ns(), c0 = pb_cpu_ns();
		for (uint64_t i = 0; i < t->per; i++) {
			uint64_t v = i;
			/* like std::hint::black_box: the value is opaque to the compiler */
			__asm__ volatile("" : "+r"(v));
			BENCH_EMIT(v, t->k);
		}
		ns[b] = (double)(pb_now_ns() - t0) / (double)t->per;
		cpu[b] = (double)(pb_cpu_ns() - c0) / (double)t->per;
	}
	qsort(ns, (size_t)t->batches, sizeof ns[0], pb_cmp);
	qsort(cpu, (size_t)t->batches, sizeof cpu[0], pb_cmp);
	t->median = ns[t->batches / 2];
	t->cpu_median = cpu[t->batches / 2];
	free(ns);
	free(cpu);
	return NULL;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	if (n == 0 || threads < 1 || threads > 256) {
		fprintf(stderr, "usage: %s N [THREADS]\n", argv[0]);
		return 2;
	}
	const char *w = getenv("BENCH_WAIT_ENABLED");
	if (w && *w) {
		uint64_t deadline = pb_now_ns() + strtoull(w, NULL, 10) * 1000000ull;
		while (!(BENCH_ENABLED()) && pb_now_ns() < deadline)
			usleep(1000);
	}
	int e0 = !!(BENCH_ENABLED());
	int batches = BENCH_BATCHES;
	unsigned gap_ms = 0;
	uint64_t per = n / BENCH_BATCHES ? n / BENCH_BATCHES : 1;
	const char *burst = getenv("BENCH_BURST");
	if (burst && *burst && strtoull(burst, NULL, 10) > 0) {
		per = strtoull(burst, NULL, 10);
		batches = (int)(n / per ? n / per : 1);
		const char *g = getenv("BENCH_GAP_MS");
		gap_ms = g && *g ? (unsigned)strtoul(g, NULL, 10) : 150;
	}
	const char *rate_s = getenv("BENCH_RATE");
	double rate = rate_s && *rate_s ? strtod(rate_s, NULL) : 0;
	struct pb_thread *ts = calloc((size_t)threads, sizeof *ts);
	uint64_t t0 = pb_now_ns();
	for (int k = 0; k < threads; k++) {
		ts[k].rate = rate;
		ts[k].per = per;
		ts[k].batches = batches;
		ts[k].gap_ms = gap_ms;
		ts[k].k = (uint64_t)k;
		if (pthread_create(&ts[k].th, NULL, pb_run, &ts[k])) {
			perror("pthread_create");
			return 1;
		}
	}
	double sum = 0, cpu_sum = 0;
	for (int k = 0; k < threads; k++) {
		pthread_join(ts[k].th, NULL);
		sum += ts[k].median;
		cpu_sum += ts[k].cpu_median;
	}
	double secs = (double)(pb_now_ns() - t0) / 1e9;
	uint64_t total = per * (uint64_t)batches * (uint64_t)threads;
	if (rate > 0)
		printf("impl=%s enabled=%d/%d threads=%d events=%llu paced_rate=%.0f\n", BENCH_IMPL, e0,
		       !!(BENCH_ENABLED()), threads, (unsigned long long)total, (double)total / secs);
	else
		printf("impl=%s enabled=%d/%d threads=%d events=%llu batches=%d median_ns_per_event=%.2f "
		       "median_cpu_ns_per_event=%.2f events_per_sec=%.0f\n",
		       BENCH_IMPL, e0, !!(BENCH_ENABLED()), threads, (unsigned long long)total, batches, sum / threads,
		       cpu_sum / threads, (double)total / secs);
	free(ts);
	return 0;
}

#endif
