/* Spends its time off CPU in two known places: wait_on_pipe() blocks in a
 * read for 300 ms (a child writes after that), nap() sleeps 100 ms; and
 * about 200 ms on CPU in burn(), after them. */
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) void wait_on_pipe(int fd) {
    char c;
    if (read(fd, &c, 1) != 1)
        exit(2);
}

__attribute__((noinline)) void nap(void) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

__attribute__((noinline)) void burn(void) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    volatile unsigned long x = 0;
    do {
        for (int i = 0; i < 10000; i++)
            x += i;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 200000000L);
}

int main(void) {
    int p[2];
    if (pipe(p) != 0)
        return 2;
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (write(p[1], "x", 1) != 1)
            _exit(2);
        _exit(0);
    }
    wait_on_pipe(p[0]);
    nap();
    burn();
    waitpid(pid, NULL, 0);
    return 0;
}
