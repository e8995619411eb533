/* CPU-bound program with a known call tree for the sampling tests:
 * main -> hot_outer -> middle -> leaf_work (-> inl_step, always inlined). */
#include <stdlib.h>

volatile double sink;

static inline __attribute__((always_inline)) double inl_step(double x) {
    for (int j = 0; j < 16; j++)
        x = x * 1.0000001 + 0.5;
    return x;
}

__attribute__((noinline)) void leaf_work(long n) {
    double x = 0;
    for (long i = 0; i < n; i++) {
        x = inl_step(x);
        sink = x;
    }
}

__attribute__((noinline)) void middle(long n) {
    leaf_work(n);
    sink += 1;
}

__attribute__((noinline)) void hot_outer(long n) {
    for (int k = 0; k < 30; k++)
        middle(n);
}

int main(int argc, char **argv) {
    hot_outer(argc > 1 ? atol(argv[1]) : 400000);
    return 0;
}
