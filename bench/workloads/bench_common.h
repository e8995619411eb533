/* Shared helpers for weft benchmark workloads.
 *
 * Every workload times only its own syscall loop (CLOCK_MONOTONIC) and, at
 * the end, reports it together with its own CPU usage, so the harness can
 * ignore tracer start-up/tear-down (bpftrace can take seconds to start):
 *
 *   elapsed_ns=<loop wall ns> utime_us=<..> stime_us=<..> iterations=<N>
 *
 * The line goes to stderr and, if $WEFT_BENCH_RESULT names a file, is also
 * appended to that file (robust against tracers that mangle stderr).
 * utime/stime cover the workload itself plus its reaped children, i.e. the
 * whole traced process tree; the harness subtracts them from the total CPU
 * of the tracer command to estimate the tracer's own CPU.
 */
#ifndef WEFT_BENCH_COMMON_H
#define WEFT_BENCH_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static inline long long bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline long bench_parse_n(int argc, char **argv, long def)
{
	if (argc < 2)
		return def;
	char *end;
	errno = 0;
	long n = strtol(argv[1], &end, 10);
	if (errno || *end || n <= 0) {
		fprintf(stderr, "usage: %s [iterations>0]\n", argv[0]);
		exit(2);
	}
	return n;
}

static inline long long tv_us(struct timeval tv)
{
	return (long long)tv.tv_sec * 1000000LL + tv.tv_usec;
}

static inline void bench_report(long long elapsed_ns, long n)
{
	struct rusage self, kids;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	char line[256];
	snprintf(line, sizeof line,
		 "elapsed_ns=%lld utime_us=%lld stime_us=%lld iterations=%ld\n",
		 elapsed_ns, tv_us(self.ru_utime) + tv_us(kids.ru_utime),
		 tv_us(self.ru_stime) + tv_us(kids.ru_stime), n);
	fputs(line, stderr);
	const char *path = getenv("WEFT_BENCH_RESULT");
	if (path && *path) {
		FILE *f = fopen(path, "a");
		if (f) {
			fputs(line, f);
			fclose(f);
		}
	}
}

#endif
