/* clone(CLONE_VM) children without CLONE_VFORK and without thread storage
 * of their own write weft-probe markers while the thread whose storage
 * they run on writes too (docs/probe-buffers.md §9.7):
 *  - child A, on an mmap'd stack, beside the main thread, which wrote
 *    before it was cloned;
 *  - child B, on a stack inside its creator thread T's frame, writes
 *    first, before T ever wrote, then both write at once.
 * Each writer writes N markers named after it, valued 0..N-1. Prints
 * `main=P A=a T=t B=b count=N`. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "weft_probe.h"

static int n = 20000;
static volatile int go_a, go_b, b_wrote;
static pid_t pid_b, tid_t_;

static void writes(const char *who) {
    for (int i = 0; i < n; i++)
        weft_marker(who, i);
}

/* Children run on their creator's thread storage: no C library calls but
 * the marker (and the wrapper's exit). */
static int child_a(void *arg) {
    (void)arg;
    while (!go_a)
        ;
    writes("A");
    return 0;
}

static int child_b(void *arg) {
    (void)arg;
    weft_marker("B", 0);
    b_wrote = 1;
    while (!go_b)
        ;
    for (int i = 1; i < n; i++)
        weft_marker("B", i);
    return 0;
}

static void *thread_t(void *arg) {
    (void)arg;
    char stack[256 * 1024] __attribute__((aligned(16)));
    tid_t_ = (pid_t)syscall(SYS_gettid);
    pid_b = clone(child_b, stack + sizeof stack, CLONE_VM | SIGCHLD, NULL);
    if (pid_b < 0) {
        perror("clone B");
        exit(1);
    }
    while (!b_wrote)
        ;
    go_b = 1;
    writes("T");
    waitpid(pid_b, NULL, 0);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1)
        n = atoi(argv[1]);
    weft_marker("main", 0);
    size_t size = 256 * 1024;
    char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    pid_t a = clone(child_a, stack + size, CLONE_VM | SIGCHLD, NULL);
    if (a < 0) {
        perror("clone A");
        return 1;
    }
    go_a = 1;
    for (int i = 1; i < n; i++)
        weft_marker("main", i);
    waitpid(a, NULL, 0);
    pthread_t t;
    pthread_create(&t, NULL, thread_t, NULL);
    pthread_join(t, NULL);
    printf("main=%d A=%d T=%d B=%d count=%d\n", getpid(), a, tid_t_, pid_b, n);
    return 0;
}
