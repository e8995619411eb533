//! Static event descriptors, shared in layout with the C API's `weft_event`.

use std::ffi::{c_char, CStr};
use std::sync::atomic::{AtomicU32, Ordering};

pub use weft_probe_abi::payload::FieldType;

/// One field of an event, as C and Rust declare it.
#[repr(C)]
#[derive(Debug)]
pub struct FieldDesc {
    pub name: *const c_char,
    pub ty: u32,
}

// SAFETY: descriptors point at 'static C strings and are never mutated.
unsafe impl Sync for FieldDesc {}

/// A static event. The enable word comes first so C can test it with one
/// load; its bit 31 belongs to the kernel (user_events), bits 0..30 to
/// weft sessions.
#[repr(C)]
#[derive(Debug)]
pub struct Event {
    pub enable: AtomicU32,
    /// Index in this process's registry (assigned at registration).
    pub id: AtomicU32,
    pub provider: *const c_char,
    pub name: *const c_char,
    pub nfields: u32,
    pub fields: *const FieldDesc,
    /// user_events write index, valid while bit 31 may be set.
    pub ue_index: AtomicU32,
    pub registered: AtomicU32,
}

// SAFETY: the raw pointers refer to 'static, immutable data; the mutable
// parts are atomics.
unsafe impl Sync for Event {}

impl Event {
    #[doc(hidden)]
    pub const fn new(provider: &'static CStr, name: &'static CStr, fields: &'static [FieldDesc]) -> Event {
        Event {
            enable: AtomicU32::new(0),
            id: AtomicU32::new(u32::MAX),
            provider: provider.as_ptr(),
            name: name.as_ptr(),
            nfields: fields.len() as u32,
            fields: fields.as_ptr(),
            ue_index: AtomicU32::new(0),
            registered: AtomicU32::new(0),
        }
    }

    /// One relaxed load: is any session (or the kernel) listening?
    #[inline(always)]
    pub fn enabled(&self) -> bool {
        self.enable.load(Ordering::Relaxed) != 0
    }

    pub fn provider(&self) -> &str {
        // SAFETY: provider points at a NUL-terminated 'static string (Rust
        // literal or C string literal given at registration).
        unsafe { CStr::from_ptr(self.provider) }.to_str().unwrap_or("?")
    }

    pub fn name(&self) -> &str {
        // SAFETY: as provider.
        unsafe { CStr::from_ptr(self.name) }.to_str().unwrap_or("?")
    }

    pub fn field_types(&self) -> impl ExactSizeIterator<Item = (&str, Option<FieldType>)> {
        (0..self.nfields as usize).map(move |i| {
            // SAFETY: fields points at nfields descriptors ('static).
            let f = unsafe { &*self.fields.add(i) };
            // SAFETY: field names are NUL-terminated 'static strings.
            let name = unsafe { CStr::from_ptr(f.name) }.to_str().unwrap_or("?");
            (name, u8::try_from(f.ty).ok().and_then(FieldType::from_u8))
        })
    }
}

/// One argument of an event write.
pub trait Arg {
    /// Encoded size in bytes.
    fn size(&self) -> usize;
    /// Writes the encoding at `out` (which has `size()` bytes).
    fn put(&self, out: &mut [u8]) -> usize;
}

macro_rules! scalar_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            #[inline(always)]
            fn size(&self) -> usize { std::mem::size_of::<$t>() }
            #[inline(always)]
            fn put(&self, out: &mut [u8]) -> usize {
                let b = self.to_le_bytes();
                out[..b.len()].copy_from_slice(&b);
                b.len()
            }
        }
    )*};
}
scalar_arg!(u8, u16, u32, u64, i8, i16, i32, i64, f64);

impl Arg for bool {
    #[inline(always)]
    fn size(&self) -> usize {
        1
    }
    #[inline(always)]
    fn put(&self, out: &mut [u8]) -> usize {
        out[0] = u8::from(*self);
        1
    }
}

impl Arg for usize {
    #[inline(always)]
    fn size(&self) -> usize {
        8
    }
    #[inline(always)]
    fn put(&self, out: &mut [u8]) -> usize {
        (*self as u64).put(out)
    }
}

impl<T> Arg for *const T {
    #[inline(always)]
    fn size(&self) -> usize {
        8
    }
    #[inline(always)]
    fn put(&self, out: &mut [u8]) -> usize {
        (*self as usize as u64).put(out)
    }
}

impl Arg for [u8] {
    #[inline(always)]
    fn size(&self) -> usize {
        2 + self.len().min(weft_probe_abi::payload::MAX_VAR)
    }
    #[inline(always)]
    fn put(&self, out: &mut [u8]) -> usize {
        let n = self.len().min(weft_probe_abi::payload::MAX_VAR);
        out[..2].copy_from_slice(&(n as u16).to_le_bytes());
        out[2..2 + n].copy_from_slice(&self[..n]);
        2 + n
    }
}

impl Arg for str {
    #[inline(always)]
    fn size(&self) -> usize {
        self.as_bytes().size()
    }
    #[inline(always)]
    fn put(&self, out: &mut [u8]) -> usize {
        self.as_bytes().put(out)
    }
}

impl<T: Arg + ?Sized> Arg for &T {
    #[inline(always)]
    fn size(&self) -> usize {
        (**self).size()
    }
    #[inline(always)]
    fn put(&self, out: &mut [u8]) -> usize {
        (**self).put(out)
    }
}

/// Maps a Rust argument type to its field type (used by `define_event!`).
pub trait FieldOf {
    const TYPE: FieldType;
}
macro_rules! field_of {
    ($($t:ty => $f:ident),*) => {$( impl FieldOf for $t { const TYPE: FieldType = FieldType::$f; } )*};
}
field_of!(u8 => U8, u16 => U16, u32 => U32, u64 => U64, i8 => I8, i16 => I16, i32 => I32, i64 => I64, f64 => F64, bool => Bool, usize => Ptr, &str => Str, &[u8] => Bytes);
impl<T> FieldOf for *const T {
    const TYPE: FieldType = FieldType::Ptr;
}
