/* A known sequence of memory syscalls across a thread and a forked child.
 * Prints the addresses it got so the test can match them in the trace. */
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096

static void *thread_main(void *arg) {
    (void)arg;
    prctl(PR_SET_NAME, "memops-thr");
    char *q = mmap(NULL, 5 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(q, 5 * PG);
    printf("thread q=%p\n", (void *)q);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char *p = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p, PG);
    mprotect(p + PG, PG, PROT_READ);
    prctl(PR_SET_NAME, "memops-main");
    printf("main p=%p\n", (void *)p);

    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);

    pid_t c = fork();
    if (c == 0) {
        prctl(PR_SET_NAME, "memops-child");
        char *r = mmap(NULL, 7 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        munmap(r, 7 * PG);
        printf("child r=%p\n", (void *)r);
        _exit(7);
    }
    int st;
    waitpid(c, &st, 0);
    munmap(p + PG, 2 * PG);
    return 3;
}
