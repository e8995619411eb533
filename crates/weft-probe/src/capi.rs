//! The C API (see include/weft_probe.h). A C event is a `weft_event` whose
//! layout is `Event`'s; arguments come as an array of `weft_arg`.

use std::ffi::{c_char, CStr};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::event::{Arg, Event, FieldType};

/// One argument from C: the union member used depends on the field type.
#[repr(C)]
#[derive(Clone, Copy)]
pub union WeftArg {
    pub u: u64,
    pub i: i64,
    pub f: f64,
    pub s: WeftBytes,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct WeftBytes {
    pub ptr: *const u8,
    pub len: u64,
}

struct CArg {
    ty: Option<FieldType>,
    v: WeftArg,
}

impl CArg {
    fn bytes(&self) -> &[u8] {
        // SAFETY: for Str/Bytes fields the C caller passes a pointer and length
        // (WEFT_STR/WEFT_BYTES); a null pointer is an empty value.
        unsafe {
            let s = self.v.s;
            if s.ptr.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(s.ptr, s.len.min(weft_probe_abi::payload::MAX_VAR as u64) as usize)
            }
        }
    }
}

impl Arg for CArg {
    fn size(&self) -> usize {
        match self.ty {
            Some(FieldType::Str | FieldType::Bytes) => 2 + self.bytes().len(),
            Some(t) => t.fixed_size().unwrap_or(8),
            None => 8,
        }
    }

    fn put(&self, out: &mut [u8]) -> usize {
        // SAFETY: every union member is plain data of the same size.
        let u = unsafe { self.v.u };
        match self.ty {
            Some(FieldType::Str | FieldType::Bytes) => self.bytes().put(out),
            // Fixed-size stores, not a copy of variable length (a memcpy call).
            Some(t) => match t.fixed_size() {
                Some(1) => (u as u8).put(out),
                Some(2) => (u as u16).put(out),
                Some(4) => (u as u32).put(out),
                _ => u.put(out),
            },
            None => u.put(out),
        }
    }
}

/// Starts the control socket (also done automatically at load time).
#[no_mangle]
pub extern "C" fn weft_probe_init() {
    crate::listener::init();
}

/// Registers a C event; returns 0, or -1 if the descriptor is invalid.
///
/// # Safety
/// `ev` must point at a `weft_event` with static storage duration whose
/// strings and field array are static too.
#[no_mangle]
pub unsafe extern "C" fn weft_register(ev: *mut Event) -> i32 {
    if ev.is_null() {
        return -1;
    }
    // SAFETY: the caller promises a static, valid descriptor.
    let e: &'static Event = unsafe { &*ev };
    if e.provider.is_null()
        || e.name.is_null()
        || (e.nfields > 0 && e.fields.is_null())
        || e.nfields > 64
        || crate::listener::settings().disabled
    {
        return -1;
    }
    crate::listener::init();
    crate::registry::register(e);
    let wide = e
        .field_types()
        .all(|(_, t)| t.and_then(FieldType::fixed_size) == Some(8));
    let id = e.id.load(Ordering::Acquire) as usize;
    // Only for an event that got an id: a full registry leaves none.
    if wide && id < crate::registry::CAPACITY && crate::registry::placed(e) {
        WIDE[id / 64].fetch_or(1 << (id % 64), Ordering::Release);
    }
    0
}

/// C events whose fields are all 8 bytes wide (u64, i64, f64, pointer), by
/// id: their arguments are stored as they come, without a switch on each
/// field's type. Set once registered; until then the general path writes
/// the same bytes.
static WIDE: [AtomicU64; crate::registry::CAPACITY / 64] =
    [const { AtomicU64::new(0) }; crate::registry::CAPACITY / 64];

/// Writes a C event (call through WEFT_EMIT, which tests the enable word first).
///
/// The functions that write are `C-unwind`: a signal handler that calls
/// `pthread_exit` (or `pthread_cancel` acts) while a write is under way
/// unwinds through them, and with the plain C ABI Rust's personality
/// refuses that unwind and the process aborts. Nothing in a write needs
/// cleaning up: the cut record is counted as abandoned.
///
/// # Safety
/// `ev` must be a registered event and `args` point at `n` arguments that
/// match its fields.
#[no_mangle]
pub unsafe extern "C-unwind" fn weft_emit(ev: *const Event, args: *const WeftArg, n: u32) {
    if ev.is_null() || (args.is_null() && n > 0) {
        return;
    }
    // SAFETY: the caller promises a registered static event.
    let e: &'static Event = unsafe { &*ev };
    // Every declared field is encoded (missing arguments as zero) so the
    // record always matches the event's layout.
    const MAX: usize = 64;
    let nf = (e.nfields as usize).min(MAX);
    let given = (n as usize).min(nf);
    // SAFETY: i < nf <= nfields descriptors; i < given <= the caller's count.
    let arg = |i: usize| CArg {
        ty: u8::try_from(unsafe { (*e.fields.add(i)).ty })
            .ok()
            .and_then(FieldType::from_u8),
        v: if i < given {
            unsafe { *args.add(i) }
        } else {
            WeftArg { u: 0 }
        },
    };
    let word = e.enable.load(Ordering::Acquire);
    let id = e.id.load(Ordering::Relaxed);
    if word & weft_probe_abi::SESSION_MASK != 0 && wide(id) && given == nf {
        // (WEFT_EMIT sends two or three arguments to emit_by_value, which
        // stores them with fixed stores; this loop takes the other counts.)
        let put = |buf: &mut [u8]| {
            for (i, out) in buf.chunks_exact_mut(8).take(nf).enumerate() {
                // SAFETY: i < given; every member of the union is 8 bytes here.
                out.copy_from_slice(&unsafe { (*args.add(i)).u }.to_le_bytes());
            }
        };
        crate::ring::write(id, word, nf * 8, put);
    } else if word & weft_probe_abi::SESSION_MASK != 0 {
        // Straight from the argument array into the ring: nothing copied twice.
        let size: usize = (0..nf).map(|i| arg(i).size()).sum();
        let put = |buf: &mut [u8]| {
            let mut at = 0;
            for i in 0..nf {
                at += arg(i).put(&mut buf[at..]);
            }
        };
        crate::ring::write(id, word, size, put);
    }
    if word & (1 << weft_probe_abi::KERNEL_BIT) != 0 {
        emit_kernel(e, nf, &arg);
    }
}

/// Whether every field of event `id` is 8 bytes wide (see `WIDE`).
#[inline(always)]
fn wide(id: u32) -> bool {
    WIDE.get(id as usize / 64)
        .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (id % 64)) != 0)
}

/// Writes a C event of two arguments (`WEFT_EMIT` with two arguments).
///
/// # Safety
/// As `weft_emit`, with the arguments passed by value.
#[no_mangle]
pub unsafe extern "C-unwind" fn weft_emit2(ev: *const Event, a: WeftArg, b: WeftArg) {
    // SAFETY: forwarded from the caller.
    unsafe { emit_by_value(ev, [a, b]) }
}

/// Writes a C event of three arguments (`WEFT_EMIT` with three arguments).
///
/// # Safety
/// As `weft_emit`, with the arguments passed by value.
#[no_mangle]
pub unsafe extern "C-unwind" fn weft_emit3(ev: *const Event, a: WeftArg, b: WeftArg, c: WeftArg) {
    // SAFETY: forwarded from the caller.
    unsafe { emit_by_value(ev, [a, b, c]) }
}

/// The common case with the argument count known when compiled: an event
/// of `N` fields all 8 bytes wide, and no kernel tracer, stored with `N`
/// fixed stores; anything else goes through `weft_emit`.
///
/// # Safety
/// As `weft_emit`.
#[inline(always)]
unsafe fn emit_by_value<const N: usize>(ev: *const Event, args: [WeftArg; N]) {
    if ev.is_null() {
        return;
    }
    // SAFETY: the caller promises a registered static event.
    let e: &'static Event = unsafe { &*ev };
    let word = e.enable.load(Ordering::Acquire);
    let id = e.id.load(Ordering::Relaxed);
    let kernel = word & (1 << weft_probe_abi::KERNEL_BIT) != 0;
    if word & weft_probe_abi::SESSION_MASK != 0 && !kernel && e.nfields as usize == N && wide(id) {
        let put = |buf: &mut [u8]| {
            if let Some(out) = buf.get_mut(..N * 8) {
                for (out, a) in out.chunks_exact_mut(8).zip(&args) {
                    // SAFETY: every member of the union is 8 bytes here.
                    out.copy_from_slice(&unsafe { a.u }.to_le_bytes());
                }
            }
        };
        crate::ring::write(id, word, N * 8, put);
        return;
    }
    // SAFETY: `args` holds N arguments for the caller's event.
    unsafe { weft_emit(ev, args.as_ptr(), N as u32) }
}

/// The user_events half, out of line: its arrays would otherwise give every
/// C write a 4 KiB stack frame.
#[cold]
#[inline(never)]
fn emit_kernel(e: &'static Event, nf: usize, arg: &dyn Fn(usize) -> CArg) {
    const MAX: usize = 64;
    let cargs: [CArg; MAX] = std::array::from_fn(|i| {
        if i < nf {
            arg(i)
        } else {
            CArg {
                ty: None,
                v: WeftArg { u: 0 },
            }
        }
    });
    let refs: [&dyn Arg; MAX] = std::array::from_fn(|i| &cargs[i] as &dyn Arg);
    let size = refs[..nf].iter().map(|a| a.size()).sum();
    crate::user_events::write(e, &refs[..nf], size);
}

fn cstr<'a>(p: *const c_char) -> &'a str {
    if p.is_null() {
        return "";
    }
    // SAFETY: the caller passes a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
}

/// Drops a named marker with a value.
///
/// # Safety
/// `name` must be NUL-terminated (or null).
#[no_mangle]
pub unsafe extern "C-unwind" fn weft_marker(name: *const c_char, value: i64) {
    if crate::MARKER.enabled() {
        crate::MARKER::write(cstr(name), value);
    }
}

/// Begins a span; pass the returned id to `weft_span_end` (0 = not recorded).
///
/// # Safety
/// `name` must be NUL-terminated (or null).
#[no_mangle]
pub unsafe extern "C-unwind" fn weft_span_begin(name: *const c_char) -> u64 {
    let s = crate::span(cstr(name));
    let id = s.id;
    std::mem::forget(s);
    id
}

/// Ends a span begun with `weft_span_begin`.
///
/// # Safety
/// `name` must be NUL-terminated (or null).
#[no_mangle]
pub unsafe extern "C-unwind" fn weft_span_end(name: *const c_char, id: u64) {
    if id != 0 && crate::SPAN_END.enabled() {
        crate::SPAN_END::write(cstr(name), id);
    }
}
