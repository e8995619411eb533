/* Handles a SIGUSR1 it sends itself, then dies of a SIGSEGV. */
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static void on_usr1(int sig) { got = sig; }

int main(void) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    printf("handled %d\n", (int)got);
    fflush(stdout);
    volatile int *bad = (int *)16;
    return *bad;
}
