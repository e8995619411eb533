/* A hostile "instrumented" process: it serves a weft-probe control socket
 * under its own name, but answers every Hello with the length of a 1 MiB
 * frame and then one byte every 300 ms. Meanwhile it makes N getppid calls
 * in bursts of 100, and prints "done N" at the end. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static void *serve(void *arg) {
    int l = *(int *)arg;
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            continue;
        char hello[64];
        if (read(c, hello, sizeof hello) <= 0) {
            close(c);
            continue;
        }
        unsigned len = 1u << 20;
        if (write(c, &len, 4) != 4) {
            close(c);
            continue;
        }
        while (write(c, "x", 1) == 1)
            usleep(300000);
        close(c);
    }
    return NULL;
}

static unsigned long long start_time(void) {
    char buf[4096];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')') + 2;
    for (int i = 0; i < 19; i++)
        p = strchr(p, ' ') + 1;
    return strtoull(p, NULL, 10);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 50000;
    mkdir("/run/weft", 0700);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "/run/weft/%d-%llu.sock", getpid(), start_time());
    static int l;
    l = socket(AF_UNIX, SOCK_STREAM, 0);
    unlink(a.sun_path);
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 16) != 0) {
        perror("bind");
        return 1;
    }
    chmod(a.sun_path, 0600);
    pthread_t t;
    pthread_create(&t, NULL, serve, &l);
    usleep(500000); /* the recorder finds the socket and starts its attach */
    for (long i = 0; i < n; i++) {
        syscall(SYS_getppid);
        if (i % 100 == 99)
            usleep(1000);
    }
    usleep(200000);
    unlink(a.sun_path);
    printf("done %ld\n", n);
    return 0;
}
