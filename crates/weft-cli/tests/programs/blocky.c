/* Spends its time off CPU in two known places: wait_on_pipe() blocks in a
 * read for 300 ms (a child writes after that), nap() sleeps 100 ms. */
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
    waitpid(pid, NULL, 0);
    return 0;
}
