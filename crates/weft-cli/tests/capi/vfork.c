/* A vfork child, and a clone(CLONE_VM|CLONE_VFORK) child without thread
 * storage of its own, write weft-probe markers: both run on their parent
 * thread's storage, so their events land in that thread's ring. Each
 * marker's value says who wrote it; the parent writes one before and one
 * after. Prints the pids: `parent=P vfork=A clone=B`. */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "weft_probe.h"

static char stack[64 * 1024];

static int clone_child(void *arg) {
    (void)arg;
    weft_marker("in the clone child", 3);
    return 0;
}

int main(void) {
    weft_marker("parent before", 1);
    pid_t a = vfork();
    if (a == 0) {
        weft_marker("in the vfork child", 2);
        _exit(0);
    }
    waitpid(a, NULL, 0);
    pid_t b = clone(clone_child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
    waitpid(b, NULL, 0);
    weft_marker("parent after", 4);
    printf("parent=%d vfork=%d clone=%d\n", getpid(), a, b);
    return 0;
}
