/* Instantiates the lttng-ust probe for probe_lttng_tp.h (linked into probe_lttng). */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "probe_lttng_tp.h"
