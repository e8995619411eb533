/* "Who unmapped my memory?": main maps a buffer; a worker thread unmaps it
 * (it keeps a stale pointer); main maps a new buffer, which the kernel puts
 * at the same address; a second worker unmaps the stale pointer again,
 * taking main's new buffer away; main touches it and faults (SIGSEGV,
 * caught). Markers say each step. Prints the address, whether it was
 * reused, and whether main faulted. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
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

int main(void) {
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
    printf("addr=%p reused=%d faulted=%d\n", (void *)p, p == q, faulted);
    return 0;
}
