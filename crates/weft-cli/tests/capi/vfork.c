/* A vfork child, a clone(CLONE_VM|CLONE_VFORK) child and (x86_64) a
 * clone3 one, none with thread storage of its own, write weft-probe
 * markers: they run on their parent thread's storage, so their events
 * land in that thread's ring. Each marker's value says who wrote it; the
 * parent writes one before and one after. Prints the pids:
 * `parent=P vfork=A clone=B clone3=C` (C is 0 where not tried). */
#define _GNU_SOURCE
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "weft_probe.h"

static char stack[64 * 1024];
static char stack3[64 * 1024] __attribute__((aligned(16)));

/* Where the clone3 child starts: libc's syscall() returns into it on its
 * new stack (see spawn_clone3). It must not return. */
static void clone3_child(void) {
    weft_marker("in the clone3 child", 5);
    syscall(SYS_exit, 0);
    for (;;)
        ;
}

/* clone3(CLONE_VM|CLONE_VFORK) without CLONE_SETTLS, as raw as it gets:
 * the child resumes in syscall() with its stack pointer at the top of the
 * new stack, whose first word is clone3_child's address, so syscall()'s
 * `ret` lands there (stack aligned as after a call). */
static pid_t spawn_clone3(void) {
#if defined(__x86_64__)
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_VM | CLONE_VFORK;
    args.exit_signal = SIGCHLD;
    size_t size = sizeof stack3 - 16;
    uintptr_t entry = (uintptr_t)clone3_child;
    memcpy(stack3 + size, &entry, sizeof entry);
    args.stack = (uint64_t)(uintptr_t)stack3;
    args.stack_size = size;
    return (pid_t)syscall(SYS_clone3, &args, sizeof args);
#else
    return 0;
#endif
}

static int clone_child(void *arg) {
    (void)arg;
    weft_marker("in the clone child", 3);
    return 0;
}

int main(void) {
    weft_marker("parent before", 1);
    pid_t a = vfork();
    if (a == 0) {
        weft_marker("in the vfork child", 2);
        _exit(0);
    }
    waitpid(a, NULL, 0);
    pid_t b = clone(clone_child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
    waitpid(b, NULL, 0);
    pid_t c = spawn_clone3();
    if (c > 0)
        waitpid(c, NULL, 0);
    weft_marker("parent after", 4);
    printf("parent=%d vfork=%d clone=%d clone3=%d\n", getpid(), a, b, c > 0 ? c : 0);
    return 0;
}
