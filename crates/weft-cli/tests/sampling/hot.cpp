// C++ names in reports come out demangled.
#include <cstdlib>

volatile double sink;

namespace engine {
template <typename T> struct Solver {
    __attribute__((noinline)) T crunch(long n) {
        T x = 0;
        for (long i = 0; i < n; i++) {
            x = x * T(1.0000001) + T(0.5);
            sink = x;
        }
        return x;
    }
};
} // namespace engine

int main(int argc, char **argv) {
    engine::Solver<double> s;
    long n = argc > 1 ? std::atol(argv[1]) : 60000000;
    s.crunch(n);
    return 0;
}
