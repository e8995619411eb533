/* argv[1] round trips of one byte between two processes over pipes: two
 * blocking context switches per trip, so off-CPU tracing pays per trip. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    int a[2], b[2];
    if (pipe(a) || pipe(b))
        return 2;
    char c = 0;
    if (fork() == 0) {
        for (long i = 0; i < n; i++)
            if (read(a[0], &c, 1) != 1 || write(b[1], &c, 1) != 1)
                _exit(2);
        _exit(0);
    }
    for (long i = 0; i < n; i++)
        if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1)
            return 2;
    wait(NULL);
    return 0;
}
