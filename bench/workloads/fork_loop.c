/* fork_loop [N]: N (default 2000) iterations of fork(); the child _exit(0)s
 * at once and the parent waitpid()s for it. Per iteration that is roughly
 * clone + exit_group (child) + wait4 (parent), plus the process lifecycle
 * events a tracer has to follow. Prints only the bench_report line. */
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench_common.h"

int main(int argc, char **argv)
{
	long n = bench_parse_n(argc, argv, 2000);
	long long t0 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0)
			_exit(0);
		int st;
		while (waitpid(pid, &st, 0) < 0) {
			if (errno != EINTR) {
				perror("waitpid");
				return 1;
			}
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "child %d failed: status %#x\n", (int)pid, st);
			return 1;
		}
	}
	long long t1 = bench_now_ns();
	bench_report(t1 - t0, n);
	return 0;
}
