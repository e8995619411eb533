/* Faults three times at known addresses (0x1000, 0x2000, 0x3000), with a
 * SIGSEGV sent to itself (raise: SI_TKILL, no fault address) between the
 * first two and, on x86_64, a general protection fault (hlt in user mode:
 * SI_KERNEL, no address either) between the last two. A handler that
 * siglongjmps back counts them; prints `faults=N`. */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static sigjmp_buf back;
static volatile int faults;

static void on_segv(int sig) {
    (void)sig;
    faults++;
    siglongjmp(back, 1);
}

static void touch(uintptr_t addr) {
    if (sigsetjmp(back, 1) == 0)
        *(volatile int *)addr = 1;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, NULL);
    touch(0x1000);
    if (sigsetjmp(back, 1) == 0)
        raise(SIGSEGV);
    touch(0x2000);
#if defined(__x86_64__)
    if (sigsetjmp(back, 1) == 0)
        __asm__ volatile("hlt");
#endif
    touch(0x3000);
    printf("faults=%d\n", faults);
    return 0;
}
