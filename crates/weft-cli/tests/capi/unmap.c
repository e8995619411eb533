/* "Who unmapped my memory?": main maps a buffer; a worker thread unmaps it
 * (it keeps a stale pointer); main maps a new buffer, which the kernel puts
 * at the same address; a second worker unmaps the stale pointer again,
 * taking main's new buffer away; main touches it and faults (SIGSEGV,
 * caught). Markers say each step. Prints the address, the one main
 * touched, whether it was reused, and whether main faulted. With the
 * argument `ptrace`, a child ptraces its parent meanwhile (seizes,
 * interrupts and detaches it), as debuggers and crash handlers do; then
 * it prints `ptrace=ok`. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>
#include "weft_probe.h"

#define LEN (4 * 4096)

static void *stale;
static sigjmp_buf back;

static void *unmap_stale(void *arg) {
    munmap(stale, LEN);
    weft_marker(arg, 0);
    return NULL;
}

static void on_segv(int sig) {
    (void)sig;
    siglongjmp(back, 1);
}

/* The child: seize the parent, stop it, wait for the stop, let it go. */
static int trace_parent(pid_t parent) {
    if (ptrace(PTRACE_SEIZE, parent, 0, 0) != 0 || ptrace(PTRACE_INTERRUPT, parent, 0, 0) != 0)
        return 1;
    int st;
    if (waitpid(parent, &st, __WALL) != parent || !WIFSTOPPED(st))
        return 2;
    return ptrace(PTRACE_DETACH, parent, 0, 0) != 0 ? 3 : 0;
}

int main(int argc, char **argv) {
    pid_t tracer = -1;
    if (argc > 1 && strcmp(argv[1], "ptrace") == 0) {
        prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY);
        pid_t parent = getpid();
        tracer = fork();
        if (tracer == 0)
            _exit(trace_parent(parent));
    }
    char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    weft_marker("main mapped", 1);
    stale = p;
    pthread_t t;
    pthread_create(&t, NULL, unmap_stale, "worker unmapped");
    pthread_join(t, NULL);
    char *q = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    weft_marker("main mapped again", 2);
    pthread_create(&t, NULL, unmap_stale, "worker unmapped again");
    pthread_join(t, NULL);
    signal(SIGSEGV, on_segv);
    int faulted = 0;
    if (sigsetjmp(back, 1) == 0)
        q[0] = 1;
    else
        faulted = 1;
    printf("addr=%p fault=%p reused=%d faulted=%d\n", (void *)p, (void *)q, p == q, faulted);
    if (tracer > 0) {
        int st = 0;
        while (waitpid(tracer, &st, 0) < 0)
            ;
        printf("ptrace=%s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "failed");
    }
    return 0;
}
