/* Runs until killed: the main thread and a worker each mmap/munmap a
 * distinctive length every 5 ms; after argv[1] ms a late thread starts.
 * Prints "ready" once both first threads run. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static void loop(size_t pages) {
    for (;;) {
        void *p = mmap(NULL, pages * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        munmap(p, pages * 4096);
        usleep(5000);
    }
}

static void *worker(void *a) { prctl(PR_SET_NAME, "spin-worker"); loop(11); return a; }
static void *late(void *a) { prctl(PR_SET_NAME, "spin-late"); loop(17); return a; }

int main(int argc, char **argv) {
    int late_ms = argc > 1 ? atoi(argv[1]) : 1000;
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    usleep(20000);
    printf("ready\n");
    usleep(late_ms * 1000);
    pthread_create(&t, NULL, late, NULL);
    loop(13);
}
