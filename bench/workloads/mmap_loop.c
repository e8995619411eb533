/* mmap_loop [N]: N (default 1000000) mmap/munmap pairs of one anonymous page,
 * i.e. 2*N syscalls in the timed loop. Prints only the bench_report line. */
#include <sys/mman.h>
#include "bench_common.h"

int main(int argc, char **argv)
{
	long n = bench_parse_n(argc, argv, 1000000);
	long long t0 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		if (munmap(p, 4096) != 0) {
			perror("munmap");
			return 1;
		}
	}
	long long t1 = bench_now_ns();
	bench_report(t1 - t0, n);
	return 0;
}
