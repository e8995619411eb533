/* Writes in a fork child before weft-probe's fork handler has set it up.
 * Usage: forkwin CHILDREN
 * Each child is forked three ways, in turn: by fork(3) with an atfork child
 * handler registered before weft-probe's that writes (so it runs first), by
 * a raw fork syscall (no atfork handler runs at all) whose child writes, and
 * by fork(3) whose child raises a signal whose handler writes. A child
 * that faults dies by its signal; the parent prints what happened:
 *   parent N      events the parent wrote
 *   child PID M   events a set-up child wrote after its fork returned
 *   crashed K     children that did not exit with 0 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "weft_probe.h"

WEFT_EVENT(ev_tick, "fw", "tick", WEFT_FIELD("n", WEFT_U64))
WEFT_EVENT(ev_early, "fw", "early", WEFT_FIELD("where", WEFT_U64))

#define AFTER 100

static volatile int early_armed;

/* Registered before weft-probe's own handler (constructor priority 101 runs
 * before weft-probe's start-up), so it runs first in the child. */
static void early_child(void) {
    if (early_armed == 1)
        for (int i = 0; i < 10; i++)
            WEFT_EMIT(ev_early, WEFT_ARG_U64(1));
    if (early_armed == 2)
        raise(SIGUSR1);
}

__attribute__((constructor(101))) static void install_early(void) {
    pthread_atfork(NULL, NULL, early_child);
}

static void on_usr1(int sig) {
    (void)sig;
    for (int i = 0; i < 10; i++)
        WEFT_EMIT(ev_early, WEFT_ARG_U64(3));
}

static atomic_ulong side;
static atomic_int stop;

static void *side_writer(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        WEFT_EMIT(ev_tick, WEFT_ARG_U64(0));
        if (atomic_fetch_add(&side, 1) % 64 == 0)
            usleep(50);
    }
    return NULL;
}

extern char **environ;

int main(int argc, char **argv) {
    int children = argc > 1 ? atoi(argv[1]) : 6;
    signal(SIGUSR1, on_usr1);
    unsigned long parent = 0;
    int crashed = 0;
    pthread_t t;
    pthread_create(&t, NULL, side_writer, NULL);
    for (int c = 0; c < children; c++) {
        for (int i = 0; i < 5; i++) {
            char *args[] = {"true", NULL};
            pid_t sp;
            int st = 0;
            if (posix_spawn(&sp, "/bin/true", NULL, NULL, args, environ) != 0 || waitpid(sp, &st, 0) != sp ||
                !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                crashed++;
        }
        for (int i = 0; i < 1000; i++, parent++)
            WEFT_EMIT(ev_tick, WEFT_ARG_U64(parent));
        int how = c % 3;
        early_armed = how == 0 ? 1 : how == 2 ? 2 : 0;
        pid_t pid = how == 1 ? (pid_t)syscall(SYS_fork) : fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            if (how == 1) {
                /* No handler ran: weft-probe never set this child up. */
                for (int i = 0; i < 10; i++)
                    WEFT_EMIT(ev_early, WEFT_ARG_U64(2));
                syscall(SYS_exit_group, 0);
            }
            for (int i = 0; i < AFTER; i++)
                WEFT_EMIT(ev_tick, WEFT_ARG_U64(i));
            _exit(0);
        }
        early_armed = 0;
        int st = 0;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            crashed++;
        else if (how != 1)
            printf("child %d %d\n", (int)pid, AFTER);
    }
    for (int i = 0; i < 1000; i++, parent++)
        WEFT_EMIT(ev_tick, WEFT_ARG_U64(parent));
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("parent %lu\ncrashed %d\n", parent + atomic_load(&side), crashed);
    return 0;
}
