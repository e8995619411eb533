/* Says "ready PID" on stdout, waits a moment (the test stops the recorder
 * then), makes N getppid calls and exits: a burst the recorder cannot read
 * while it happens. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    printf("ready %d\n", getpid());
    fflush(stdout);
    usleep(300000);
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    return 0;
}
