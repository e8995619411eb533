/* weft-probe: static events for C and C++ programs, recorded by `weft record`.
 *
 *   WEFT_EVENT(req, "myapp", "request", WEFT_FIELD("id", WEFT_U64), WEFT_FIELD("path", WEFT_STR));
 *   ...
 *   WEFT_EMIT(req, WEFT_ARG_U64(id), WEFT_ARG_STR(path));   // arguments evaluated only when enabled
 *   weft_marker("checkpoint", 3);
 *   uint64_t s = weft_span_begin("load"); ... weft_span_end("load", s);
 *
 * Link with libweft_probe.a (and -lpthread -ldl -lm). Link it at start-up,
 * not with dlopen: the write path relies on static TLS.
 */
#ifndef WEFT_PROBE_H
#define WEFT_PROBE_H

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

enum weft_type {
    WEFT_U8 = 1, WEFT_U16 = 2, WEFT_U32 = 3, WEFT_U64 = 4,
    WEFT_I8 = 5, WEFT_I16 = 6, WEFT_I32 = 7, WEFT_I64 = 8,
    WEFT_F64 = 9, WEFT_BOOL = 10, WEFT_PTR = 11, WEFT_STR = 12, WEFT_BYTES = 13
};

struct weft_field {
    const char *name;
    uint32_t type;
};

/* Layout shared with the Rust `Event`. `enable` follows the kernel's
 * user_events ABI: bit 31 = kernel tracer, bits 0..30 = weft sessions. */
struct weft_event {
    uint32_t enable;
    uint32_t id;
    const char *provider;
    const char *name;
    uint32_t nfields;
    const struct weft_field *fields;
    uint32_t ue_index;
    uint32_t registered;
};

typedef union weft_arg {
    uint64_t u;
    int64_t i;
    double f;
    struct { const void *ptr; uint64_t len; } s;
} weft_arg;

void weft_probe_init(void);
int weft_register(struct weft_event *ev);
void weft_emit(const struct weft_event *ev, const weft_arg *args, uint32_t n);
void weft_marker(const char *name, int64_t value);
uint64_t weft_span_begin(const char *name);
void weft_span_end(const char *name, uint64_t id);

#define WEFT_FIELD(n, t) { (n), (t) }

#define WEFT_EVENT(var, provider, event, ...)                                            \
    static const struct weft_field var##_weft_fields[] = { __VA_ARGS__ };                 \
    static struct weft_event var = { 0, 0, (provider), (event),                           \
        sizeof(var##_weft_fields) / sizeof(var##_weft_fields[0]), var##_weft_fields, 0, 0 }; \
    __attribute__((constructor)) static void var##_weft_register(void) { weft_register(&var); }

#define WEFT_ENABLED(var) (__atomic_load_n(&(var).enable, __ATOMIC_RELAXED) != 0)

#define WEFT_ARG_U64(v) ((weft_arg){ .u = (uint64_t)(v) })
#define WEFT_ARG_I64(v) ((weft_arg){ .i = (int64_t)(v) })
#define WEFT_ARG_F64(v) ((weft_arg){ .f = (double)(v) })
#define WEFT_ARG_PTR(v) ((weft_arg){ .u = (uint64_t)(uintptr_t)(v) })
#define WEFT_ARG_STR(v) ((weft_arg){ .s = { (v), (v) ? strlen(v) : 0 } })
#define WEFT_ARG_BYTES(p, n) ((weft_arg){ .s = { (p), (n) } })

#define WEFT_EMIT(var, ...)                                                                \
    do {                                                                                   \
        if (WEFT_ENABLED(var)) {                                                           \
            WEFT_EMIT_BY_(WEFT_ARITY_(__VA_ARGS__), var, __VA_ARGS__);                      \
        }                                                                                  \
    } while (0)

/* Two or three arguments go by value to weft_emit2/weft_emit3 (no array in
 * memory); any other count goes to weft_emit as an array. */
void weft_emit2(const struct weft_event *ev, weft_arg a, weft_arg b);
void weft_emit3(const struct weft_event *ev, weft_arg a, weft_arg b, weft_arg c);
#define WEFT_EMIT_BY_(n, var, ...) WEFT_EMIT_BY2_(n, var, __VA_ARGS__)
#define WEFT_EMIT_BY2_(n, var, ...) WEFT_EMIT_##n##_(var, __VA_ARGS__)
/* Through an initializer, as for weft_emit: an argument not wrapped in
 * WEFT_ARG_* (a plain integer) still initializes the union's u. */
#define WEFT_EMIT_2_(var, a, b)                                                            \
    do {                                                                                   \
        weft_arg weft_args_[2] = { a, b };                                                  \
        weft_emit2(&(var), weft_args_[0], weft_args_[1]);                                   \
    } while (0)
#define WEFT_EMIT_3_(var, a, b, c)                                                         \
    do {                                                                                   \
        weft_arg weft_args_[3] = { a, b, c };                                               \
        weft_emit3(&(var), weft_args_[0], weft_args_[1], weft_args_[2]);                   \
    } while (0)
#define WEFT_EMIT_A_(var, ...)                                                             \
    do {                                                                                   \
        weft_arg weft_args_[] = { __VA_ARGS__ };                                            \
        weft_emit(&(var), weft_args_, sizeof(weft_args_) / sizeof(weft_args_[0]));         \
    } while (0)
/* 2 or 3 for that many arguments, A for any other count (up to 64). */
#define WEFT_ARITY_(...) WEFT_ARITY_PICK_(__VA_ARGS__, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, 3, 2, A, A)
#define WEFT_ARITY_PICK_(_1,_2,_3,_4,_5,_6,_7,_8,_9,_10,_11,_12,_13,_14,_15,_16,_17,_18,_19,_20,_21,_22,_23,_24,_25,_26,_27,_28,_29,_30,_31,_32,_33,_34,_35,_36,_37,_38,_39,_40,_41,_42,_43,_44,_45,_46,_47,_48,_49,_50,_51,_52,_53,_54,_55,_56,_57,_58,_59,_60,_61,_62,_63,_64, n, ...) n

#ifdef __cplusplus
}
#endif
#endif
