/* A recorded program that forks N children one after another, each of
 * which writes one marker and exits; the parent writes one too. Prints
 * `longest fork F ms`: how long the longest fork() took to return in the
 * child (a child of a recorded process waits there for its attach, up to
 * 3 s, unless the recorder says none is coming). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "weft_probe.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 5;
    /* Where each child leaves how long its fork took. */
    double *took = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (took == MAP_FAILED)
        return 1;
    weft_marker("parent", 0);
    double longest = 0;
    for (int i = 0; i < n; i++) {
        double t0 = now_ms();
        pid_t p = fork();
        if (p == 0) {
            *took = now_ms() - t0;
            weft_marker("child", i);
            _exit(0);
        }
        waitpid(p, NULL, 0);
        if (*took > longest)
            longest = *took;
    }
    printf("longest fork %.0f ms\n", longest);
    return 0;
}
