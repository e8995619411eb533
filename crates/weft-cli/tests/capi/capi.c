/* The C API: an event with typed fields, a marker and a span. */
#include <stdio.h>
#include "weft_probe.h"

WEFT_EVENT(ev_req, "capp", "request", WEFT_FIELD("id", WEFT_U64), WEFT_FIELD("path", WEFT_STR), WEFT_FIELD("ratio", WEFT_F64),
           WEFT_FIELD("delta", WEFT_I32))
/* All fields 8 bytes wide: the C API's fixed-size path, two and three fields. */
WEFT_EVENT(ev_pair, "capp", "pair", WEFT_FIELD("a", WEFT_U64), WEFT_FIELD("b", WEFT_I64))
WEFT_EVENT(ev_triple, "capp", "triple", WEFT_FIELD("a", WEFT_U64), WEFT_FIELD("b", WEFT_U64), WEFT_FIELD("c", WEFT_F64))
/* Two and three arguments that are not all 8 bytes wide: the general path. */
WEFT_EVENT(ev_named, "capp", "named", WEFT_FIELD("n", WEFT_U32), WEFT_FIELD("s", WEFT_STR))
WEFT_EVENT(ev_mixed, "capp", "mixed", WEFT_FIELD("s", WEFT_STR), WEFT_FIELD("a", WEFT_U64), WEFT_FIELD("b", WEFT_I32))
/* One argument, and one argument short of the fields. */
WEFT_EVENT(ev_one, "capp", "one", WEFT_FIELD("a", WEFT_U64))

static int evaluated;
static uint64_t counted(uint64_t v) {
    evaluated++;
    return v;
}

int main(void) {
    for (int i = 0; i < 10; i++)
        WEFT_EMIT(ev_req, WEFT_ARG_U64(counted(i)), WEFT_ARG_STR("/index.html"), WEFT_ARG_F64(i / 2.0), WEFT_ARG_I64(-i));
    WEFT_EMIT(ev_pair, WEFT_ARG_U64(0xfedcba9876543210ull), WEFT_ARG_I64(-7));
    WEFT_EMIT(ev_triple, WEFT_ARG_U64(1), WEFT_ARG_U64(2), WEFT_ARG_F64(0.25));
    WEFT_EMIT(ev_named, WEFT_ARG_U64(7), WEFT_ARG_STR("seven"));
    WEFT_EMIT(ev_mixed, WEFT_ARG_STR("m"), WEFT_ARG_U64(8), WEFT_ARG_I64(-8));
    WEFT_EMIT(ev_one, WEFT_ARG_U64(9));
    WEFT_EMIT(ev_triple, WEFT_ARG_U64(3), WEFT_ARG_U64(4));
    /* Plain integers, as the array initializer always took them. */
    WEFT_EMIT(ev_pair, 5, 6);
    WEFT_EMIT(ev_triple, 7, 8, WEFT_ARG_F64(1.5));
    weft_marker("c-marker", 42);
    uint64_t s = weft_span_begin("c-span");
    weft_span_end("c-span", s);
    printf("evaluated %d\n", evaluated);
    return 0;
}
