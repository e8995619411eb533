/* weft-probe's fork handler must be async-signal-safe: it runs inside
 * fork(), which a program may call from a signal handler, while other
 * threads of the parent held the allocator's or any other lock.
 * Usage: forksafe CHILDREN [linger|closeall]
 * Linked with -Wl,--wrap for the allocator's entry points and for
 * pthread_create (see the test), so every such call that weft-probe or this
 * program makes goes through the wrappers below. Between a fork and its
 * return in the child, a call made in the child is counted.
 * Children are forked in turn from main and from a SIGUSR1 handler. Each
 * one, once fork returned, writes AFTER events, registers an event of its
 * own, waits (at most 3 s) until the collector enabled it, writes LATE of
 * those, forks a grandchild that writes AFTER events and prints
 *   grandchild PID TICKS allocs A threads T
 * and prints:
 *   child PID TICKS LATE allocs A threads T
 * With `linger`, each child then keeps writing until its collector
 * detaches it (at most 10 s), writes more into nothing, and adds
 * ` detached 1 privileged K dumpable D` to its line. A child running as
 * root first gives up root (setuid 65534), sets itself dumpable again and
 * forks a grandchild that writes AFTER events and prints
 *   dropped-grandchild PID TICKS
 * K counts its other threads that still hold a capability or root's uid
 * (weft-probe's control thread must follow the child's credentials), D is
 * the dumpable flag at the end (following must not reset it).
 * With `closeall` (which lingers too), each child first takes over every
 * descriptor number from 3 to 63 with pipes holding a byte and a regular
 * file (as programs that close or redirect what they inherited do), and
 * once detached waits 300 ms and adds
 * ` closeall intact N closed C moved V forkclosed F busy_ms M`: N pipes
 * still holding their byte, C numbers found closed, V whether the file's
 * offset moved, F numbers found closed in a child forked right after, M
 * the CPU time its other threads took meanwhile (weft-probe's control
 * thread must neither read nor close the program's descriptors, nor spin
 * on them).
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
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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
void __real_free(void *p);
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
void __wrap_free(void *p) {
    count(&allocs);
    __real_free(p);
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

static int linger, closeall;

/* Opens /proc/self/task/TID/WHAT of each thread but the calling one in
 * turn and hands it to `each`, which adds what it finds to *acc. */
static void other_threads(const char *what, void (*each)(FILE *, double *), double *acc) {
    char me[32], path[96];
    snprintf(me, sizeof me, "%ld", (long)syscall(SYS_gettid));
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, me) == 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/%s", e->d_name, what);
        FILE *f = fopen(path, "r");
        if (f) {
            each(f, acc);
            fclose(f);
        }
    }
    if (d)
        closedir(d);
}

static void add_cpu(FILE *f, double *s) {
    char buf[1024];
    if (!fgets(buf, sizeof buf, f))
        return;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
        *s += (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

/* CPU seconds of this process's threads other than the calling one. */
static double others_cpu(void) {
    double s = 0;
    other_threads("stat", add_cpu, &s);
    return s;
}

static void add_privileged(FILE *f, double *n) {
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned long long caps;
        unsigned uid;
        if (sscanf(line, "CapEff: %llx", &caps) == 1 && caps != 0)
            *n += 1;
        if (sscanf(line, "Uid: %*u %u", &uid) == 1 && uid == 0 && geteuid() != 0)
            *n += 1;
    }
}

/* Other threads of this process holding a capability, or root's uid where
 * this thread has another. */
static int privileged_others(void) {
    double n = 0;
    other_threads("status", add_privileged, &n);
    return (int)n;
}

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
    /* A grandchild, forked while this child's control thread runs. */
    armed = getpid();
    pid_t g = fork();
    if (g == 0) {
        int ga = atomic_load(&allocs), gt = atomic_load(&threads);
        armed = 0;
        for (int i = 0; i < AFTER; i++)
            WEFT_EMIT(ev_tick, WEFT_ARG_U64(i));
        printf("grandchild %d %d allocs %d threads %d\n", (int)getpid(), AFTER, ga, gt);
        fflush(stdout);
        _exit(0);
    }
    armed = 0;
    int gst = 0;
    if (g < 0 || waitpid(g, &gst, 0) != g || !WIFEXITED(gst) || WEXITSTATUS(gst) != 0)
        _exit(3);
    int ticks = AFTER, detached = 0;
    int p[8][2], file = -1, forkclosed = 0;
    if (closeall) {
        /* Every descriptor number from 3 to 63 is taken over at once (dup2
         * replaces without a moment of closed number): even ones by pipes
         * holding a byte, odd ones by a regular file, which always polls
         * readable. weft-probe's descriptors are among them. */
        int keep[17];
        for (int i = 0; i < 8; i++) {
            if (pipe(p[i]) != 0 || write(p[i][1], "x", 1) != 1)
                _exit(4);
            keep[2 * i] = p[i][0];
            keep[2 * i + 1] = p[i][1];
        }
        file = open("/tmp", O_TMPFILE | O_RDWR, 0600);
        if (file < 0 || write(file, "0123456789", 10) != 10)
            _exit(4);
        keep[16] = file;
        for (int n = 3; n < 64; n++) {
            int mine = 0;
            for (int k = 0; k < 17; k++)
                mine |= keep[k] == n;
            if (!mine)
                dup2(n % 2 ? file : p[(n / 2) % 8][0], n);
        }
        /* A fork now: weft-probe's handler closes the child's copies of
         * the descriptors it holds, and must leave these alone. */
        ino_t inode[64] = {0};
        struct stat sb;
        for (int n = 3; n < 64; n++)
            inode[n] = fstat(n, &sb) == 0 ? sb.st_ino : 0;
        pid_t g2 = fork();
        if (g2 == 0) {
            /* Closed, or closed and taken again (by weft-probe's own new
             * descriptors, which would otherwise go above 63). */
            int k = 0;
            for (int n = 3; n < 64; n++)
                k += fstat(n, &sb) != 0 || sb.st_ino != inode[n];
            _exit(k);
        }
        int st2 = 0;
        forkclosed = g2 > 0 && waitpid(g2, &st2, 0) == g2 && WIFEXITED(st2) ? WEXITSTATUS(st2) : -1;
    }
    if (linger && geteuid() == 0) {
        /* Root gives up its rights while recorded (weft-probe's control
         * thread must follow), keeps its core dumps, and forks: root's
         * socket directory is closed to the grandchild now. */
        if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
            _exit(5);
        prctl(PR_SET_DUMPABLE, 1);
        pid_t g3 = fork();
        if (g3 == 0) {
            for (int i = 0; i < AFTER; i++)
                WEFT_EMIT(ev_tick, WEFT_ARG_U64(i));
            printf("dropped-grandchild %d %d\n", (int)getpid(), AFTER);
            fflush(stdout);
            _exit(0);
        }
        int st3 = 0;
        if (g3 < 0 || waitpid(g3, &st3, 0) != g3 || !WIFEXITED(st3) || WEXITSTATUS(st3) != 0)
            _exit(6);
    }
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
    if (closeall) {
        /* Detached meanwhile: its control thread found the numbers it knew
         * taken over. */
        int intact = 0, closed = 0;
        double before = others_cpu();
        usleep(300000);
        double busy = others_cpu() - before;
        for (int n = 3; n < 64; n++)
            closed += fcntl(n, F_GETFD) < 0;
        for (int i = 0; i < 8; i++) {
            char c = 0;
            int fl = fcntl(p[i][0], F_GETFL);
            fcntl(p[i][0], F_SETFL, fl | O_NONBLOCK);
            intact += read(p[i][0], &c, 1) == 1 && c == 'x';
        }
        printf(" closeall intact %d closed %d moved %d forkclosed %d busy_ms %d", intact, closed,
               lseek(file, 0, SEEK_CUR) != 10, forkclosed, (int)(busy * 1000));
    }
    if (linger) {
        /* The control thread looks at the process's credentials at least
         * once a second. */
        double by = now() + 3;
        int priv;
        while ((priv = privileged_others()) != 0 && now() < by)
            usleep(10000);
        printf(" detached %d privileged %d dumpable %d\n", detached, priv, prctl(PR_GET_DUMPABLE));
    }
    else
        printf("\n");
    fflush(stdout);
    _exit(0);
}

int main(int argc, char **argv) {
    int children = argc > 1 ? atoi(argv[1]) : 4;
    closeall = argc > 2 && strcmp(argv[2], "closeall") == 0;
    linger = closeall || (argc > 2 && strcmp(argv[2], "linger") == 0);
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
