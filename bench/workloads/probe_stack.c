/* How much alternate signal stack a weft-probe write from a handler needs
 * (docs/probe-buffers.md §8).
 * Build: cc -O2 -I crates/weft-probe/include probe_stack.c target/release/libweft_probe.a \
 *        -lpthread -ldl -lm -lrt -lgcc_s -o probe_stack
 * Run:   weft record -o s.weft -e 'stk:*' -- ./probe_stack 65536 [first]
 * A SIGUSR1 handler emits one event on an alternate stack of SIZE bytes
 * (painted with a pattern, a guard page below); with "first", that write
 * is the thread's first. Prints how deep the stack was used, signal frame
 * included (run it without weft record for the frame alone). */
#include "weft_probe.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
WEFT_EVENT(stk_tick, "stk", "tick", WEFT_FIELD("a", WEFT_U64), WEFT_FIELD("s", WEFT_STR))
static char *stack; static size_t size;
static void handler(int sig) { (void)sig; WEFT_EMIT(stk_tick, WEFT_ARG_U64(7), WEFT_ARG_STR("hello")); }
int main(int argc, char **argv) {
    size = strtoul(argv[1], 0, 0);
    int first = argc > 2;
    /* a guard page below, and a pattern to measure the depth used */
    char *m = mmap(0, size + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(m, 4096, PROT_NONE);
    stack = m + 4096; memset(stack, 0xa5, size);
    stack_t ss = { .ss_sp = stack, .ss_size = size, .ss_flags = 0 };
    sigaltstack(&ss, 0);
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = handler; sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, 0);
    for (int i = 0; i < 300 && !WEFT_ENABLED(stk_tick); i++) usleep(10000);
    if (!first) WEFT_EMIT(stk_tick, WEFT_ARG_U64(1), WEFT_ARG_STR("x"));
    raise(SIGUSR1);
    size_t used = 0; while (used < size && (unsigned char)stack[used] == 0xa5) used++;
    printf("enabled=%d size=%zu first=%d used=%zu\n", WEFT_ENABLED(stk_tick) ? 1 : 0, size, first, size - used);
    return 0;
}
