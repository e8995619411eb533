/* Signal handlers that leave a write the hard ways, from C: one rewrites
 * the interrupted context's instruction pointer so that the thread goes on
 * elsewhere (and ends there), one calls pthread_exit. Prints the writes
 * the thread attempted. Usage: torture ucontext|pthread_exit N */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include "weft_probe.h"

WEFT_EVENT(ev_tick, "ct", "tick", WEFT_FIELD("n", WEFT_U64))
WEFT_EVENT(ev_note, "ct", "note", WEFT_FIELD("where", WEFT_U64))

static atomic_ulong attempts;
static long n;
static int mode_ucontext;

/* Where the rewritten context resumes: a few writes, then the thread ends
 * in the kernel (there is no frame to return to). */
static void escape(void) {
    for (int i = 0; i < 3; i++) {
        atomic_fetch_add(&attempts, 1);
        WEFT_EMIT(ev_note, WEFT_ARG_U64(2));
    }
    syscall(SYS_exit, 0);
}

static void on_usr1(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    atomic_fetch_add(&attempts, 1);
    WEFT_EMIT(ev_note, WEFT_ARG_U64(1));
    if (mode_ucontext) {
        ucontext_t *uc = ctx;
        greg_t sp = uc->uc_mcontext.gregs[REG_RSP];
        /* As if `escape` had been called: 16-aligned, minus a return address. */
        uc->uc_mcontext.gregs[REG_RSP] = ((sp - 256) & ~(greg_t)15) - 8;
        uc->uc_mcontext.gregs[REG_RIP] = (greg_t)escape;
        return;
    }
    pthread_exit(NULL);
}

static void *writer(void *arg) {
    (void)arg;
    for (long i = 0; i < n; i++) {
        atomic_fetch_add(&attempts, 1);
        WEFT_EMIT(ev_tick, WEFT_ARG_U64(i));
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    mode_ucontext = strcmp(argv[1], "ucontext") == 0;
    n = atol(argv[2]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    while (atomic_load(&attempts) < (unsigned long)n / 2)
        ;
    /* Most of the writer's time is spent inside writes: the signal lands
     * in one, or between two. */
    pthread_kill(t, SIGUSR1);
    /* A thread that ended in the kernel is joined all the same: the kernel
     * clears its tid, which pthread_join waits for. */
    pthread_join(t, NULL);
    printf("torture %s attempts %lu\n", argv[1], atomic_load(&attempts));
    return 0;
}
