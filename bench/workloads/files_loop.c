/* files_loop [N]: N rounds of openat/read/close over the regular files of
 * /usr/include/linux (up to 64 of them), then one openat of a file that
 * does not exist: the path-heavy loop of a build tool or a loader. Prints
 * only the bench_report line. */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include "bench_common.h"

int main(int argc, char **argv)
{
	long n = bench_parse_n(argc, argv, 20000);
	static char paths[64][512];
	int count = 0;
	DIR *d = opendir("/usr/include/linux");
	if (!d) {
		perror("/usr/include/linux");
		return 1;
	}
	struct dirent *e;
	while ((e = readdir(d)) && count < 64) {
		if (e->d_type == DT_REG)
			snprintf(paths[count++], sizeof paths[0], "/usr/include/linux/%s", e->d_name);
	}
	closedir(d);
	char buf[4096];
	long long t0 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		const char *p = paths[i % count];
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			perror(p);
			return 1;
		}
		if (read(fd, buf, sizeof buf) < 0) {
			perror("read");
			return 1;
		}
		close(fd);
		if (i % count == 0)
			open("/usr/include/linux/no-such-header.h", O_RDONLY);
	}
	long long t1 = bench_now_ns();
	bench_report(t1 - t0, n);
	return 0;
}
