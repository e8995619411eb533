// SPDX-License-Identifier: MIT OR GPL-2.0
//
// weft's syscall argument capture: at raw_syscalls:sys_enter and sys_exit,
// copy what a traced thread's pointer arguments point to (strings, buffers,
// structs, argv) and write it into the CPU's perf ring just before the
// tracepoint's own record, which the recorder pairs it with. At
// signal_deliver, the same for the signal's fault address (on_signal).
//
// What to copy for which syscall is not written here: the recorder fills
// `specs` from tracefs and its own table (weft-kernel/src/argspec.rs). The
// record layout is docs/format.md §12.20. Rebuild with bpf/build.sh; the
// object is committed so that building weft needs no clang.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_NR 1024
#define SCRATCH 16384
#define HALF (SCRATCH / 2)
// Room for an item header and a little more: an item starts below this.
#define ITEM_ROOM (HALF - 64)

// Bounds an offset or size below HALF where the verifier can see it:
// clang drops a plain `& (HALF - 1)` it can prove redundant, and the
// verifier, tracking the register it tested and not its copy, then sees
// an unbounded access.
static __always_inline __u64 half(__u64 x)
{
	asm volatile("%0 &= 0x1fff" : "+r"(x));
	return x;
}

// Kinds of captured arguments (format.md §12.20).
#define K_STR 1
#define K_BUF_IN 2
#define K_BUF_OUT 3
#define K_STRUCT_IN 4
#define K_STRUCT_OUT 5
#define K_ARGV 6
#define K_COUNT 7
#define K_IOV_IN 8
#define K_IOV_OUT 9
#define K_STR_OUT 10
// An item: a msghdr's address (msg_name).
#define K_MSG_NAME 11
// Spec kinds only (their items are STRUCT, MSG_NAME and IOV ones): a
// msghdr the call reads (sendmsg) or fills (recvmsg).
#define K_MSGHDR_IN 12
#define K_MSGHDR_OUT 13

// Item flags.
#define F_TRUNCATED 1
#define F_FAULT 2
#define F_AT_EXIT 4

#define MAGIC 0x5746 // "FW"
#define PHASE_ENTER 0
#define PHASE_EXIT 1
// A delivered signal's siginfo (on_signal), not a syscall's arguments.
#define PHASE_SIGNAL 2

struct spec {
	__u8 kind[6];
	// For buffers and iovecs: the index of the argument holding the length
	// or count. For structs: unused.
	__u8 aux[6];
	// For structs: their size in bytes.
	__u16 size[6];
	__u8 at_exit; // something is read at exit
	__u8 used; // something is read at all
	__u8 pad[2];
};

struct config {
	__u64 cgroup; // cgroup v2 id of a launched command; 0: follow `pids`
	__u32 on;
	__u32 str_max; // string bytes kept (strace -s)
	__u32 buf_max; // buffer bytes kept
	__u32 argv_max; // argv strings kept
	__u32 count_max; // envp entries counted
	__u32 fork_child_off; // offset of child_pid in sched_process_fork
};

struct header {
	__u16 magic;
	__u8 phase;
	__u8 items;
	__u32 nr;
};

struct item {
	__u8 arg;
	__u8 kind;
	__u8 flags;
	__u8 index; // argv: the element's index
	__u32 len;
};

struct inflight {
	__u32 nr;
	__u32 failed; // arguments whose entry read failed, by bit
	__u64 args[6];
};

struct scratch {
	__u8 buf[SCRATCH];
};

struct enter_ctx {
	__u64 common;
	long id;
	unsigned long args[6];
};

struct exit_ctx {
	__u64 common;
	long id;
	long ret;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_NR);
	__type(key, __u32);
	__type(value, struct spec);
} specs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct inflight);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

// Records that could not be written (ring full): the recorder reads this.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

static __always_inline struct config *cfg(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&config, &zero);
}

static __always_inline int traced(struct config *c)
{
	if (!c->on)
		return 0;
	if (c->cgroup)
		return bpf_get_current_cgroup_id() == c->cgroup;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	return bpf_map_lookup_elem(&pids, &tgid) != 0;
}

static __always_inline __u32 put_item(struct scratch *s, __u32 off, __u8 arg, __u8 kind, __u8 flags, __u8 index,
				      __u32 len)
{
	struct item *it = (struct item *)&s->buf[half(off)];
	it->arg = arg;
	it->kind = kind;
	it->flags = flags;
	it->index = index;
	it->len = len;
	return (off + sizeof(struct item) + len + 7) & ~7u;
}

// An item's description, packed because BPF functions take five arguments:
// argument index, kind, flags, and the argv index or iovec count.
#define DESC(arg, kind, flags, index) ((arg) | (kind) << 8 | (flags) << 16 | (index) << 24)
#define D_ARG(d) ((d) & 0xff)
#define D_KIND(d) (((d) >> 8) & 0xff)
#define D_FLAGS(d) (((d) >> 16) & 0xff)
#define D_INDEX(d) ((d) >> 24)

static __always_inline __u32 failed_item(struct scratch *s, __u32 off, __u32 d)
{
	put_item(s, off, D_ARG(d), D_KIND(d), D_FLAGS(d) | F_FAULT, D_INDEX(d), 0);
	return off + sizeof(struct item);
}

// A NUL-terminated string, at most `max` bytes of it kept; returns the
// next offset. An unreadable one is an item flagged F_FAULT.
__noinline __u32 put_str(struct scratch *s, __u32 off, __u32 d, __u64 ptr, __u32 max)
{
	if (!s || off >= ITEM_ROOM)
		return off;
	__u64 at = half(off + sizeof(struct item));
	__u64 size = half(max + 2);
	long n = bpf_probe_read_user_str(&s->buf[at], size, (const void *)ptr);
	if (n <= 0)
		return failed_item(s, off, d);
	__u32 flags = D_FLAGS(d);
	__u32 len = n - 1; // without the NUL
	if (len > max) {
		len = max;
		flags |= F_TRUNCATED;
	}
	return put_item(s, off, D_ARG(d), D_KIND(d), flags, D_INDEX(d), len & (HALF - 1));
}

// `len` bytes at `ptr` (the caller bounds it and flags truncation).
__noinline __u32 put_buf(struct scratch *s, __u32 off, __u32 d, __u64 ptr, __u32 len)
{
	if (!s || off >= ITEM_ROOM)
		return off;
	__u64 at = half(off + sizeof(struct item));
	__u64 size = half(len);
	if (size && bpf_probe_read_user(&s->buf[at], size, (const void *)ptr) != 0)
		return failed_item(s, off, d);
	return put_item(s, off, D_ARG(d), D_KIND(d), D_FLAGS(d), D_INDEX(d), size);
}

// min(want, max), with F_TRUNCATED added to *d when that cuts.
static __always_inline __u32 bound(__u64 want, __u32 max, __u32 *d)
{
	if (want > max) {
		*d |= F_TRUNCATED << 16;
		return max;
	}
	return want;
}

struct argv_walk {
	struct scratch *s;
	__u64 ptr;
	__u64 p; // the last pointer read
	__u32 off;
	__u32 arg;
	__u32 strings;
	__u32 str_max;
	__u32 n; // entries seen
};

static long argv_step(__u64 i, void *ctx)
{
	struct argv_walk *w = ctx;
	if (bpf_probe_read_user(&w->p, sizeof(w->p), (const void *)(w->ptr + i * 8)) != 0 || !w->p)
		return 1;
	w->n = i + 1;
	if (i < w->strings)
		w->off = put_str(w->s, w->off, DESC(w->arg, K_ARGV, 0, i & 0xff), w->p, w->str_max);
	return 0;
}

// argv: its first `strings` strings, each an item of its own; then an
// item counting them all (flagged truncated past the configured bound).
// bpf_loop, not a loop: the verifier would walk a loop's every iteration.
__noinline __u32 put_argv(struct scratch *s, __u32 off, __u32 arg, __u64 ptr, __u32 strings)
{
	struct config *c = cfg();
	if (!s || !c)
		return off;
	struct argv_walk w = {
		.s = s, .ptr = ptr, .off = off, .arg = arg, .strings = strings, .str_max = c->str_max,
	};
	__u32 max = c->count_max;
	bpf_loop(max < 4096 ? max : 4096, argv_step, &w, 0);
	off = w.off;
	if (off >= ITEM_ROOM)
		return off;
	__u32 flags = (w.n >= max) ? F_TRUNCATED : 0;
	put_item(s, off, arg, K_COUNT, flags, 0, 4);
	*(__u32 *)&s->buf[half(off + sizeof(struct item))] = w.n;
	return off + sizeof(struct item) + 8;
}

// An iovec array: its first entries' buffers (the count is D_INDEX), `total`
// bytes in all (the call's result at exit), at most buf_max kept in all.
__noinline __u32 put_iov(struct scratch *s, __u32 off, __u32 d, __u64 ptr, __u64 total)
{
	struct config *c = cfg();
	if (!s || !c)
		return off;
	__u32 max = c->buf_max;
	__u32 count = D_INDEX(d);
	__u32 kept = 0;
	for (__u32 i = 0; i < 8; i++) {
		if (i >= count || total == 0 || kept >= max)
			break;
		__u64 iov[2];
		if (bpf_probe_read_user(iov, sizeof(iov), (const void *)(ptr + i * 16)) != 0)
			break;
		__u64 want = iov[1] < total ? iov[1] : total;
		total -= want;
		__u32 di = DESC(D_ARG(d), D_KIND(d), D_FLAGS(d), i);
		__u32 len = bound(want, max - kept, &di); // before di is passed
		off = put_buf(s, off, di, iov[0], len);
		kept += len;
	}
	return off;
}

// A msghdr: the struct itself, its address, and its first iovec entries
// (`total` bytes in all: the call's result at exit). `d` holds the
// argument, the struct's item kind and the flags.
__noinline __u32 put_msghdr(struct scratch *s, __u32 off, __u32 d, __u64 ptr, __u64 total)
{
	if (!s)
		return off;
	__u64 m[7];
	if (bpf_probe_read_user(m, sizeof(m), (const void *)ptr) != 0)
		return failed_item(s, off, d);
	off = put_buf(s, off, d, ptr, sizeof(m));
	__u32 arg = D_ARG(d), flags = D_FLAGS(d);
	__u64 name = m[0], namelen = m[1] & 0xffffffff;
	if (name && namelen)
		off = put_buf(s, off, DESC(arg, K_MSG_NAME, flags, 0), name, namelen < 128 ? namelen : 128);
	__u64 iovlen = m[3];
	__u32 kind = D_KIND(d) == K_STRUCT_IN ? K_IOV_IN : K_IOV_OUT;
	return put_iov(s, off, DESC(arg, kind, flags, iovlen < 8 ? iovlen : 8), m[2], total);
}

static __always_inline __u32 capture_arg(struct scratch *s, __u32 off, struct config *c, struct spec *sp, __u32 i,
					 unsigned long *args, long ret, int exit, __u32 *failed)
{
	__u8 kind = sp->kind[i];
	__u8 aux = sp->aux[i];
	__u64 ptr = args[i];
	__u64 len = 0;
	if (aux < 6)
		len = args[aux];
	// Buffers counted in units (pollfd): the unit's size.
	if (sp->size[i] && (kind == K_BUF_IN || kind == K_BUF_OUT))
		len *= sp->size[i];
	if (!ptr || !kind)
		return off;
	__u32 d = DESC(i, kind, 0, 0);
	__u32 before = off;
	if (!exit) {
		switch (kind) {
		case K_STR:
			off = put_str(s, off, d, ptr, c->str_max);
			break;
		case K_BUF_IN:
			{
				__u32 n = bound(len, c->buf_max, &d);
				off = put_buf(s, off, d, ptr, n);
			}
			break;
		case K_STRUCT_IN:
			off = put_buf(s, off, d, ptr, sp->size[i] & 511);
			break;
		case K_ARGV:
			off = put_argv(s, off, i, ptr, c->argv_max);
			break;
		case K_COUNT:
			off = put_argv(s, off, i, ptr, 0);
			break;
		case K_IOV_IN:
			off = put_iov(s, off, DESC(i, K_IOV_IN, 0, len < 8 ? len : 8), ptr, ~0ull);
			break;
		case K_MSGHDR_IN:
			off = put_msghdr(s, off, DESC(i, K_STRUCT_IN, 0, 0), ptr, ~0ull);
			break;
		}
		// Not paged in yet (a fresh binary's constant, say): the call
		// itself faults it in, so try again at exit.
		if (off != before && (kind == K_STR || kind == K_STRUCT_IN || kind == K_BUF_IN) &&
		    (s->buf[half(before + 2)] & F_FAULT))
			*failed |= 1u << i;
		return off;
	}
	if (ret < 0)
		return off;
	__u64 used = (__u64)ret < len ? (__u64)ret : len;
	switch (kind) {
	case K_BUF_OUT:
		// The length the call used, within what the buffer can hold.
		d |= F_AT_EXIT << 16;
		{
			__u32 n = bound(used, c->buf_max, &d);
			off = put_buf(s, off, d, ptr, n);
		}
		break;
	case K_STR_OUT:
		d |= F_AT_EXIT << 16;
		{
			__u32 n = bound(used, c->str_max, &d);
			off = put_buf(s, off, d, ptr, n);
		}
		break;
	case K_STRUCT_OUT:
		off = put_buf(s, off, d | F_AT_EXIT << 16, ptr, sp->size[i] & 511);
		break;
	case K_IOV_OUT:
		off = put_iov(s, off, DESC(i, K_IOV_OUT, F_AT_EXIT, len < 8 ? len : 8), ptr, ret);
		break;
	case K_MSGHDR_OUT:
		off = put_msghdr(s, off, DESC(i, K_STRUCT_OUT, F_AT_EXIT, 0), ptr, ret);
		break;
	}
	return off;
}

// Writes the header and sends the record, when it holds an item.
static __always_inline void emit(void *ctx, struct scratch *s, __u32 off, __u8 phase, __u32 nr)
{
	if (off <= sizeof(struct header))
		return;
	struct header *h = (struct header *)s->buf;
	h->magic = MAGIC;
	h->phase = phase;
	h->items = 0;
	h->nr = nr;
	if (bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, s->buf, off & (SCRATCH - 1)) != 0) {
		__u32 zero = 0;
		__u64 *d = bpf_map_lookup_elem(&dropped, &zero);
		if (d)
			*d += 1;
	}
}

// The spec of a call with something to capture, and the CPU's scratch
// buffer in *s; 0 for the many calls with nothing to read (their array
// entries exist, all zero).
static __always_inline struct spec *wanted(__u32 nr, struct scratch **s)
{
	struct spec *sp = bpf_map_lookup_elem(&specs, &nr);
	if (!sp || !sp->used)
		return 0;
	__u32 zero = 0;
	*s = bpf_map_lookup_elem(&scratch, &zero);
	return *s ? sp : 0;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int on_enter(struct enter_ctx *ctx)
{
	struct config *c = cfg();
	if (!c || !traced(c))
		return 1;
	long id = ctx->id;
	if (id < 0 || id >= MAX_NR)
		return 1;
	__u32 nr = id;
	struct scratch *s;
	struct spec *sp = wanted(nr, &s);
	if (!sp)
		return 1;
	unsigned long args[6];
	for (int i = 0; i < 6; i++)
		args[i] = ctx->args[i];
	__u32 off = sizeof(struct header);
	__u32 failed = 0;
	for (__u32 i = 0; i < 6; i++)
		off = capture_arg(s, off, c, sp, i, args, 0, 0, &failed);
	if (sp->at_exit || failed) {
		struct inflight f = { .nr = nr, .failed = failed };
		for (int i = 0; i < 6; i++)
			f.args[i] = args[i];
		__u32 tid = bpf_get_current_pid_tgid();
		bpf_map_update_elem(&inflight, &tid, &f, BPF_ANY);
	}
	emit(ctx, s, off, PHASE_ENTER, nr);
	return 1;
}

SEC("tracepoint/raw_syscalls/sys_exit")
int on_exit(struct exit_ctx *ctx)
{
	struct config *c = cfg();
	if (!c || !traced(c))
		return 1;
	__u32 tid = bpf_get_current_pid_tgid();
	struct inflight *f = bpf_map_lookup_elem(&inflight, &tid);
	if (!f)
		return 1;
	struct inflight in = *f;
	bpf_map_delete_elem(&inflight, &tid);
	long id = ctx->id;
	// After rt_sigreturn the kernel reports -1; anything else is a
	// different call than the one we saw enter.
	if (id != in.nr || in.nr >= MAX_NR)
		return 1;
	__u32 nr = in.nr;
	struct scratch *s;
	struct spec *sp = wanted(nr, &s);
	if (!sp)
		return 1;
	long ret = ctx->ret;
	__u32 off = sizeof(struct header);
	__u32 failed = 0;
	for (__u32 i = 0; i < 6; i++) {
		if (in.failed & (1u << i)) {
			// What the call itself read is mapped in now.
			__u8 kind = sp->kind[i];
			if (kind == K_STR) {
				off = put_str(s, off, DESC(i, K_STR, F_AT_EXIT, 0), in.args[i], c->str_max);
			} else if (kind == K_BUF_IN) {
				__u8 aux = sp->aux[i];
				__u64 len = aux < 6 ? in.args[aux] : 0;
				if (sp->size[i])
					len *= sp->size[i];
				__u32 d = DESC(i, K_BUF_IN, F_AT_EXIT, 0);
				__u32 n = bound(len, c->buf_max, &d);
				off = put_buf(s, off, d, in.args[i], n);
			} else {
				off = put_buf(s, off, DESC(i, K_STRUCT_IN, F_AT_EXIT, 0), in.args[i], sp->size[i] & 511);
			}
		} else {
			off = capture_arg(s, off, c, sp, i, (unsigned long *)in.args, ret, 1, &failed);
		}
	}
	emit(ctx, s, off, PHASE_EXIT, nr);
	return 1;
}

// Following a process tree by pid (`weft record -p`): its children join it.
SEC("tracepoint/sched/sched_process_fork")
int on_fork(void *ctx)
{
	struct config *c = cfg();
	// Returning 0 would hide the tracepoint from every perf user.
	if (!c || !c->on || c->cgroup)
		return 1;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&pids, &tgid))
		return 1;
	__u32 child = 0;
	if (bpf_probe_read_kernel(&child, sizeof(child), (char *)ctx + (c->fork_child_off & 0xff)) != 0)
		return 1;
	__u8 one = 1;
	bpf_map_update_elem(&pids, &child, &one, BPF_ANY);
	return 1;
}

// What signal_deliver's tracepoint record leaves out: the siginfo's
// address field (si_addr: the faulting address of a SIGSEGV or SIGBUS, the
// instruction of a SIGILL, SIGFPE or SIGTRAP). A raw tracepoint sees the
// kernel_siginfo the handler will get. The recorder pairs the record with
// the tracepoint's record of the same thread and signal, written just
// before or just after it on this CPU (the order is the order the two
// were attached in).
struct signal_rec {
	struct header h; // nr: the signal
	__s32 signo;
	__s32 code;
	__u64 addr;
};

SEC("raw_tracepoint/signal_deliver")
int on_signal(struct bpf_raw_tracepoint_args *ctx)
{
	struct config *c = cfg();
	if (!c || !traced(c))
		return 0;
	// TP_PROTO(int sig, struct kernel_siginfo *info, struct k_sigaction *ka);
	// info is NULL for a SIGKILL the kernel sends without one.
	const char *info = (const char *)ctx->args[1];
	if (!info)
		return 0;
	// Its layout is the ABI's siginfo_t: si_signo, si_errno, si_code,
	// then (on 64-bit, aligned to 8) the union, whose first member for
	// faults is si_addr.
	__s32 head[3];
	__u64 addr;
	if (bpf_probe_read_kernel(head, sizeof(head), info) != 0 ||
	    bpf_probe_read_kernel(&addr, sizeof(addr), info + 16) != 0)
		return 0;
	struct signal_rec r = {
		.h = { .magic = MAGIC, .phase = PHASE_SIGNAL, .items = 0, .nr = (__u32)ctx->args[0] },
		.signo = head[0],
		.code = head[2],
		.addr = addr,
	};
	if (bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &r, sizeof(r)) != 0) {
		__u32 zero = 0;
		__u64 *d = bpf_map_lookup_elem(&dropped, &zero);
		if (d)
			*d += 1;
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
