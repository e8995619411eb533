/* A SIGSEGV whose handler does not return to the faulting instruction: it
 * rewrites the saved instruction pointer (the context's RIP) to a landing
 * function, which says so and exits 0. A crash report must call this
 * "handled, continued" and say where it went; weft must not change the
 * output or the exit status. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

__attribute__((noreturn, noinline)) static void landing(void) {
    static const char msg[] = "landed after the fault\n";
    write(1, msg, sizeof msg - 1);
    _exit(0);
}

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    ucontext_t *uc = ctx;
#if defined(__x86_64__)
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)landing;
    /* The landing function starts as if called: rsp + 8 aligned to 16. */
    uc->uc_mcontext.gregs[REG_RSP] = (greg_t)((uc->uc_mcontext.gregs[REG_RSP] & ~(greg_t)15) - 8);
#else
    _exit(3);
#endif
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    volatile int *bad = (volatile int *)(uintptr_t)0x10;
    *bad = 1;
    return 2;
}
