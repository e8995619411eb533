/* getppid_loop [N] [THREADS]: N (default 1000000) syscall(SYS_getppid) on
 * each of THREADS threads (default 2, one per CPU of the reference machine),
 * all at once: the highest syscall rate a tracer must keep up with.
 * Prints the bench_report line (iterations = all syscalls) and the rate. */
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "bench_common.h"

static long n;

static void *loop(void *arg)
{
	(void)arg;
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	return NULL;
}

int main(int argc, char **argv)
{
	n = bench_parse_n(argc > 2 ? 2 : argc, argv, 1000000);
	int threads = argc > 2 ? atoi(argv[2]) : 2;
	if (threads < 1 || threads > 64) {
		fprintf(stderr, "usage: %s [N] [THREADS 1..64]\n", argv[0]);
		return 2;
	}
	pthread_t t[64];
	long long t0 = bench_now_ns();
	for (int i = 1; i < threads; i++)
		pthread_create(&t[i], NULL, loop, NULL);
	loop(NULL);
	for (int i = 1; i < threads; i++)
		pthread_join(t[i], NULL);
	long long t1 = bench_now_ns();
	fprintf(stderr, "getppid_loop: %ld syscalls on %d threads: %.0f syscalls/s\n", n * threads, threads,
		n * threads * 1e9 / (t1 - t0));
	bench_report(t1 - t0, n * threads);
	return 0;
}
