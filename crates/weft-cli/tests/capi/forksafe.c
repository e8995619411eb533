/* weft-probe's fork handler must be async-signal-safe: it runs inside
 * fork(), which a program may call from a signal handler, while other
 * threads of the parent held the allocator's or any other lock.
 * Usage: forksafe CHILDREN [linger]
 * Linked with -Wl,--wrap for the allocator's entry points and for
 * pthread_create (see the test), so every such call that weft-probe or this
 * program makes goes through the wrappers below. Between a fork and its
 * return in the child, a call made in the child is counted.
 * Children are forked in turn from main and from a SIGUSR1 handler. Each
 * one, once fork returned, writes AFTER events, registers an event of its
 * own, waits (at most 3 s) until the collector enabled it, writes LATE of
 * those and prints:
 *   child PID TICKS LATE allocs A threads T
 * With `linger`, each child then keeps writing until its collector
 * detaches it (at most 10 s), writes more into nothing, and adds
 * ` detached 1` to its line.
 * The parent prints `crashed K`: children that did not exit with 0. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "weft_probe.h"

WEFT_EVENT(ev_tick, "fs", "tick", WEFT_FIELD("n", WEFT_U64))

/* Registered by each child only, after it was attached. */
static const struct weft_field late_fields[] = {WEFT_FIELD("n", WEFT_U64)};
static struct weft_event ev_late = {0, 0, "late", "ev", 1, late_fields, 0, 0};

#define AFTER 100
#define LATE 50

/* The parent's pid while it forks; 0 otherwise. */
static volatile pid_t armed;
static atomic_int allocs, threads;

static void count(atomic_int *what) {
    pid_t a = armed;
    if (a != 0 && (pid_t)syscall(SYS_getpid) != a)
        atomic_fetch_add(what, 1);
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void *__real_memalign(size_t a, size_t n);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *), void *arg);

void *__wrap_malloc(size_t n) {
    count(&allocs);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t k, size_t n) {
    count(&allocs);
    return __real_calloc(k, n);
}
void *__wrap_realloc(void *p, size_t n) {
    count(&allocs);
    return __real_realloc(p, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n) {
    count(&allocs);
    return __real_posix_memalign(p, a, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n) {
    count(&allocs);
    return __real_aligned_alloc(a, n);
}
void *__wrap_memalign(size_t a, size_t n) {
    count(&allocs);
    return __real_memalign(a, n);
}
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *), void *arg) {
    count(&threads);
    return __real_pthread_create(t, a, f, arg);
}

static volatile pid_t forked = -1;

static void on_usr1(int sig) {
    (void)sig;
    forked = fork();
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int linger;

static void child(void) {
    int a = atomic_load(&allocs), t = atomic_load(&threads);
    armed = 0;
    for (int i = 0; i < AFTER; i++)
        WEFT_EMIT(ev_tick, WEFT_ARG_U64(i));
    weft_register(&ev_late);
    double until = now() + 3;
    while (!WEFT_ENABLED(ev_late) && now() < until)
        usleep(1000);
    int late = 0;
    if (WEFT_ENABLED(ev_late))
        for (; late < LATE; late++)
            WEFT_EMIT(ev_late, WEFT_ARG_U64(late));
    int ticks = AFTER, detached = 0;
    if (linger) {
        until = now() + 10;
        while (WEFT_ENABLED(ev_tick) && now() < until) {
            WEFT_EMIT(ev_tick, WEFT_ARG_U64(ticks++));
            usleep(1000);
        }
        detached = !WEFT_ENABLED(ev_tick);
        for (int i = 0; i < 1000; i++) {
            WEFT_EMIT(ev_tick, WEFT_ARG_U64(i));
            WEFT_EMIT(ev_late, WEFT_ARG_U64(i));
        }
    }
    printf("child %d %d %d allocs %d threads %d", (int)getpid(), ticks, late, a, t);
    printf(linger ? " detached %d\n" : "\n", detached);
    fflush(stdout);
    _exit(0);
}

int main(int argc, char **argv) {
    int children = argc > 1 ? atoi(argv[1]) : 4;
    linger = argc > 2 && strcmp(argv[2], "linger") == 0;
    signal(SIGUSR1, on_usr1);
    int crashed = 0;
    for (int c = 0; c < children; c++) {
        for (int i = 0; i < 100; i++)
            WEFT_EMIT(ev_tick, WEFT_ARG_U64(i));
        armed = getpid();
        pid_t pid;
        if (c % 2 == 0) {
            pid = fork();
        } else {
            raise(SIGUSR1);
            pid = forked;
        }
        if (pid == 0)
            child();
        armed = 0;
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        int st = 0;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            crashed++;
    }
    printf("crashed %d\n", crashed);
    return 0;
}
