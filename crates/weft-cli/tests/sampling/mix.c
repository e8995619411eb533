/* CPU time split over six functions in known shares (35, 25, 17, 11, 7 and
 * 2 %), none inlined, for comparing weft's profile with perf's. */
#include <stdlib.h>

volatile double sink;

#define WORK(name)                                   \
    __attribute__((noinline)) void name(long n) {    \
        double x = 0;                                \
        for (long i = 0; i < n; i++)                 \
            x = x * 1.0000001 + 0.5;                 \
        sink = x;                                    \
    }
WORK(f35)
WORK(f25)
WORK(f17)
WORK(f11)
WORK(f07)
WORK(f02)

int main(int argc, char **argv) {
    long unit = argc > 1 ? atol(argv[1]) : 200000;
    for (int round = 0; round < 20; round++) {
        f35(35 * unit);
        f25(25 * unit);
        f17(17 * unit);
        f11(11 * unit);
        f07(7 * unit);
        f02(2 * unit);
    }
    return 0;
}
