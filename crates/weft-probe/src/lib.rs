//! weft-probe: static events in your program, on weft's timeline.
//!
//! This crate owns the in-process side of weft: event descriptors whose
//! 32-bit enable word follows the kernel's user_events ABI (bit 31 for the
//! kernel, bits 0..30 for weft sessions), the lock-free per-thread rings in
//! shared memory that a collector hands over, the control socket through
//! which `weft record` attaches, and the C API. It must never take a lock,
//! allocate or touch lazily-initialized TLS on the write path, make a
//! syscall there only where docs/probe-buffers.md §7 names one (a thread's
//! first write, a write from an unknown stack), never block on the
//! collector, and never change what the program does: a disabled event
//! costs one load and one branch.
//!
//! ```
//! weft_probe::define_event!(pub REQUEST = "myapp":"request" { id: u64, path: &str });
//! let path = String::from("/index.html");
//! weft_probe::emit!(REQUEST(7, &path)); // arguments are evaluated only when enabled
//! weft_probe::marker("checkpoint", 3);
//! let _span = weft_probe::span("load_config"); // ends when dropped
//! ```

mod announce;
pub mod capi;
mod child;
mod creds;
mod epoch;
pub mod event;
mod fault;
mod fork;
mod held;
mod listener;
mod local;
mod owner;
mod registry;
mod ring;
mod session;
mod sys;
pub mod user_events;

use std::sync::atomic::{AtomicU64, Ordering};

pub use event::{Arg, Event, FieldDesc, FieldOf, FieldType};
pub use listener::{init, socket_path};
pub use registry::{events, register};

#[doc(hidden)]
pub mod __private {
    pub use crate::registry::STATIC_EVENTS;
    pub use linkme;

    pub const fn cstr(s: &'static str) -> &'static std::ffi::CStr {
        match std::ffi::CStr::from_bytes_with_nul(s.as_bytes()) {
            Ok(c) => c,
            Err(_) => panic!("event and field names must not contain NUL"),
        }
    }

    /// The body of each event's writer (the out-of-line half of `emit!`):
    /// `put` encodes the `size` payload bytes into every listening session,
    /// compiled for the event's argument types; `kernel` runs only when a
    /// kernel tracer enabled the event through user_events.
    #[inline(always)]
    pub fn emit<P: Fn(&mut [u8]), K: FnOnce()>(ev: &'static crate::Event, size: usize, put: P, kernel: K) {
        let word = ev.enable.load(std::sync::atomic::Ordering::Acquire);
        if word & weft_probe_abi::SESSION_MASK != 0 {
            crate::ring::write(ev.id.load(std::sync::atomic::Ordering::Relaxed), word, size, put);
        }
        if word & (1 << weft_probe_abi::KERNEL_BIT) != 0 {
            kernel();
        }
    }

    /// The user_events half, kept out of the writers.
    #[cold]
    #[inline(never)]
    pub fn emit_kernel(ev: &'static crate::Event, args: &[&dyn crate::Arg]) {
        let size = args.iter().map(|a| a.size()).sum();
        crate::user_events::write(ev, args, size);
    }
}

/// Declares a static event: `define_event!(pub NAME = "provider":"event" { field: type, ... })`.
/// Field types: u8..u64, i8..i64, f64, bool, usize (pointer), `&str`, `&[u8]`.
#[macro_export]
macro_rules! define_event {
    ($vis:vis $NAME:ident = $provider:literal : $name:literal { $($field:ident : $ty:ty),* $(,)? }) => {
        $vis static $NAME: $crate::Event = $crate::Event::new(
            $crate::__private::cstr(concat!($provider, "\0")),
            $crate::__private::cstr(concat!($name, "\0")),
            &[$($crate::FieldDesc {
                name: $crate::__private::cstr(concat!(stringify!($field), "\0")).as_ptr(),
                ty: <$ty as $crate::FieldOf>::TYPE as u32,
            }),*],
        );
        #[allow(non_camel_case_types, dead_code)]
        $vis struct $NAME {}
        impl $NAME {
            #[inline(never)]
            #[allow(clippy::too_many_arguments, dead_code)]
            $vis fn write($($field: $ty),*) {
                $crate::__private::emit(
                    &$NAME,
                    0 $(+ $crate::Arg::size(&$field))*,
                    |buf: &mut [u8]| {
                        let mut _at = 0usize;
                        $(_at += $crate::Arg::put(&$field, &mut buf[_at..]);)*
                    },
                    || $crate::__private::emit_kernel(&$NAME, &[$(&$field as &dyn $crate::Arg),*]),
                );
            }
        }
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::__private::STATIC_EVENTS)]
            #[linkme(crate = $crate::__private::linkme)]
            static __WEFT_REG: &'static $crate::Event = &$NAME;
        };
    };
}

/// Writes an event if any session listens: `emit!(NAME(arg, ...))`. When the
/// event is disabled this is one load and one branch; no argument is evaluated.
#[macro_export]
macro_rules! emit {
    ($NAME:ident ( $($arg:expr),* $(,)? )) => {
        if $NAME.enabled() {
            <$NAME>::write($($arg),*)
        }
    };
}

define_event!(pub MARKER = "weft":"marker" { name: &str, value: i64 });
define_event!(pub SPAN_BEGIN = "weft":"span_begin" { name: &str, id: u64 });
define_event!(pub SPAN_END = "weft":"span_end" { name: &str, id: u64 });

/// Drops a named marker with a value on the timeline (what people otherwise
/// abuse `prctl` or `write` for).
#[inline(always)]
pub fn marker(name: &str, value: i64) {
    emit!(MARKER(name, value));
}

static SPAN_IDS: AtomicU64 = AtomicU64::new(1);

/// A span: begin now, end when the guard drops; `weft dump` shows its duration.
pub struct Span<'a> {
    name: &'a str,
    pub(crate) id: u64,
}

#[inline(always)]
pub fn span(name: &str) -> Span<'_> {
    if SPAN_BEGIN.enabled() || SPAN_END.enabled() {
        let id = SPAN_IDS.fetch_add(1, Ordering::Relaxed);
        emit!(SPAN_BEGIN(name, id));
        return Span { name, id };
    }
    Span { name, id: 0 }
}

impl Drop for Span<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.id != 0 {
            emit!(SPAN_END(self.name, self.id));
        }
    }
}

/// For tests and diagnostics: where the calling thread's buffer of each
/// attached session lives. Writing there corrupts your own trace; weft's
/// tests do exactly that to check the collector survives it.
#[doc(hidden)]
pub mod debug {
    /// (address, length) of the calling thread's sub-buffers in every
    /// session it has written to.
    pub fn thread_buffers() -> Vec<(usize, usize)> {
        crate::ring::thread_buffers()
    }

    /// Address of the calling thread's slot control page (4 KiB, layout in
    /// `weft_probe_abi::layout`) in every session it has written to.
    pub fn thread_control_pages() -> Vec<usize> {
        crate::ring::thread_buffers()
            .into_iter()
            .map(|(addr, _)| addr - weft_probe_abi::layout::SLOT_CTL_LEN)
            .collect()
    }
}
