/* lttng-ust cost: tracepoint bench:tick with two u64 fields (see probe_bench.h).
 * Build: cc -O2 -I. probe_lttng.c probe_lttng_tp.c -llttng-ust -ldl -lpthread */
#include "probe_lttng_tp.h"

#define BENCH_IMPL "lttng-ust"
#define BENCH_ENABLED() lttng_ust_tracepoint_enabled(bench, tick)
#define BENCH_EMIT(a, b) lttng_ust_tracepoint(bench, tick, (a), (b))

#include "probe_bench.h"
