/* argv[1] opens of a missing file (each fails with ENOENT), then argv[2]
 * getppid calls. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long k = argc > 1 ? atol(argv[1]) : 100, m = argc > 2 ? atol(argv[2]) : 1000;
    for (long i = 0; i < k; i++)
        open("/nonexistent/weft-stats", O_RDONLY);
    for (long i = 0; i < m; i++)
        syscall(SYS_getppid);
    return 0;
}
