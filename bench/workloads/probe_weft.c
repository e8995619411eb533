/* weft-probe C API cost: event bench:tick with two u64 fields (see probe_bench.h).
 * Build: cc -O2 -I crates/weft-probe/include probe_weft.c target/release/libweft_probe.a \
 *        -lpthread -ldl -lm -lrt -lgcc_s */
#include "weft_probe.h"

WEFT_EVENT(bench_tick, "bench", "tick", WEFT_FIELD("a", WEFT_U64), WEFT_FIELD("b", WEFT_U64))

#define BENCH_IMPL "weft-c"
#define BENCH_ENABLED() WEFT_ENABLED(bench_tick)
#define BENCH_EMIT(a, b) WEFT_EMIT(bench_tick, WEFT_ARG_U64(a), WEFT_ARG_U64(b))

#include "probe_bench.h"
