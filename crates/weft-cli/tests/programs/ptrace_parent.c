/* A child that PTRACE_SEIZEs its own parent, interrupts it, then detaches.
 * Under a ptrace-based tracer this fails; under weft it must behave as untraced. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY);
    pid_t parent = getpid();
    pid_t c = fork();
    if (c == 0) {
        if (ptrace(PTRACE_SEIZE, parent, 0, 0) != 0) {
            printf("seize failed: %s\n", strerror(errno));
            _exit(1);
        }
        if (ptrace(PTRACE_INTERRUPT, parent, 0, 0) != 0) {
            printf("interrupt failed: %s\n", strerror(errno));
            _exit(2);
        }
        int st;
        if (waitpid(parent, &st, __WALL) != parent) {
            printf("wait failed: %s\n", strerror(errno));
            _exit(3);
        }
        printf("parent stopped: %d\n", WIFSTOPPED(st));
        if (ptrace(PTRACE_DETACH, parent, 0, 0) != 0) {
            printf("detach failed: %s\n", strerror(errno));
            _exit(4);
        }
        printf("detached\n");
        _exit(0);
    }
    int st;
    while (waitpid(c, &st, 0) < 0 && errno == EINTR) {
    }
    printf("child exit %d\n", WEXITSTATUS(st));
    return WEXITSTATUS(st) == 0 ? 11 : 12;
}
