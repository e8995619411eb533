/* A program whose threads all end with a bare `exit` system call (this
 * thread only, not exit_group): without weft-probe the process ends then,
 * with the last thread's code. weft-probe's own threads must not keep it
 * alive.
 * Usage: lastexit self    the main thread writes an event and ends with
 *                         SYS_exit(7): the process must end with code 7
 *        lastexit child   a fork child does so; the parent prints
 *                         `child code N` (N: -1 if it did not end in 10 s) */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "weft_probe.h"

WEFT_EVENT(ev_tick, "le", "tick", WEFT_FIELD("n", WEFT_U64))

static void end_thread(void) {
    WEFT_EMIT(ev_tick, WEFT_ARG_U64(1));
    fflush(stdout);
    syscall(SYS_exit, 7);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "self") == 0)
        end_thread();
    pid_t p = fork();
    if (p == 0)
        end_thread();
    int st = 0, code = -1;
    for (int i = 0; i < 1000; i++) {
        pid_t r = waitpid(p, &st, WNOHANG);
        if (r == p) {
            code = WIFEXITED(st) ? WEXITSTATUS(st) : -2;
            break;
        }
        usleep(10000);
    }
    if (code == -1)
        kill(p, SIGKILL);
    printf("child code %d\n", code);
    return 0;
}
