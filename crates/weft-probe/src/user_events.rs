//! The kernel's user_events: when the kernel has them, every event is also
//! registered there with its enable word (bit 31), so perf and ftrace see it.
//! On kernels without CONFIG_USER_EVENTS this is skipped silently and
//! `available()` says why.

use std::ffi::CString;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use crate::event::{Arg, Event};
use weft_probe_abi::payload::FieldType;
use weft_probe_abi::KERNEL_BIT;

pub const USER_EVENTS_DATA: &str = "/sys/kernel/tracing/user_events_data";

/// `struct user_reg` of include/uapi/linux/user_events.h (packed).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UserReg {
    pub size: u32,
    pub enable_bit: u8,
    pub enable_size: u8,
    pub flags: u16,
    pub enable_addr: u64,
    pub name_args: u64,
    pub write_index: u32,
}

/// `struct user_unreg` (packed).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UserUnreg {
    pub size: u32,
    pub disable_bit: u8,
    pub reserved: u8,
    pub reserved2: u16,
    pub disable_addr: u64,
}

const fn ioc(dir: u64, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | ((b'*' as u64) << 8) | nr
}
/// `_IOWR('*', 0, struct user_reg *)`: the size is that of a pointer.
pub const DIAG_IOCSREG: u64 = ioc(3, 0, 8);
/// `_IOW('*', 2, struct user_unreg *)`.
pub const DIAG_IOCSUNREG: u64 = ioc(1, 2, 8);

static FD: AtomicI32 = AtomicI32::new(-1);
static STATUS: OnceLock<Result<(), String>> = OnceLock::new();

/// Whether the kernel's user_events are in use, or why not.
pub fn available() -> Result<(), String> {
    STATUS.get_or_init(open).clone()
}

/// Whether the kernel's user_events were found, as `available` said last;
/// false if nobody asked yet. Allocates nothing.
pub(crate) fn in_use() -> bool {
    matches!(STATUS.get(), Some(Ok(())))
}

fn open() -> Result<(), String> {
    let path = CString::new(USER_EVENTS_DATA).unwrap_or_default();
    // SAFETY: opening a path we own the string of.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "{USER_EVENTS_DATA}: {e} (kernel built without CONFIG_USER_EVENTS, or tracefs not mounted)"
        ));
    }
    FD.store(fd, Ordering::Release);
    // SAFETY: registering a plain extern "C" function.
    unsafe { libc::atexit(unregister_all) };
    Ok(())
}

/// The user_events format string: `name type field;type field`.
pub fn name_args(e: &Event) -> String {
    let ident = |s: &str| {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
            .collect::<String>()
    };
    let mut s = format!("{}_{}", ident(e.provider()), ident(e.name()));
    for (i, (name, ty)) in e.field_types().enumerate() {
        s.push_str(if i == 0 { " " } else { ";" });
        s.push_str(ty.map_or("u64", FieldType::user_events_type));
        s.push(' ');
        s.push_str(&ident(name));
    }
    s
}

pub(crate) fn register(e: &'static Event) {
    if available().is_err() {
        return;
    }
    let Ok(args) = CString::new(name_args(e)) else { return };
    let mut reg = UserReg {
        size: std::mem::size_of::<UserReg>() as u32,
        enable_bit: KERNEL_BIT as u8,
        enable_size: 4,
        flags: 0,
        enable_addr: e.enable.as_ptr() as u64,
        name_args: args.as_ptr() as u64,
        write_index: 0,
    };
    // SAFETY: DIAG_IOCSREG reads/writes one user_reg; enable_addr stays valid
    // for the life of the process ('static event).
    if unsafe { libc::ioctl(FD.load(Ordering::Acquire), DIAG_IOCSREG as _, &mut reg) } == 0 {
        e.ue_index.store(reg.write_index, Ordering::Release);
    }
}

pub(crate) fn register_all() {
    if available().is_ok() {
        crate::registry::each(register);
    }
}

extern "C" fn unregister_all() {
    let fd = FD.load(Ordering::Acquire);
    if fd < 0 {
        return;
    }
    crate::registry::each(|e| {
        let mut u = UserUnreg {
            size: std::mem::size_of::<UserUnreg>() as u32,
            disable_bit: KERNEL_BIT as u8,
            disable_addr: e.enable.as_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: DIAG_IOCSUNREG reads one user_unreg.
        unsafe { libc::ioctl(fd, DIAG_IOCSUNREG as _, &mut u) };
    });
}

/// Writes an event the kernel enabled: `u32 write_index` then the payload in
/// the declared user_events layout (strings as `__rel_loc`).
pub(crate) fn write(e: &Event, args: &[&dyn Arg], _size: usize) {
    let fd = FD.load(Ordering::Acquire);
    if fd < 0 {
        return;
    }
    // Fixed part first, variable data after it; all on the stack.
    let mut fixed = [0u8; 512];
    let mut var = [0u8; 8192];
    let (mut f, mut v) = (0usize, 0usize);
    let fixed_len: usize = e
        .field_types()
        .map(|(_, t)| t.and_then(FieldType::fixed_size).unwrap_or(4))
        .sum();
    for (a, (_, ty)) in args.iter().zip(e.field_types()) {
        match ty.and_then(FieldType::fixed_size) {
            Some(n) if f + n <= fixed.len() => {
                let mut tmp = [0u8; 8];
                a.put(&mut tmp);
                fixed[f..f + n].copy_from_slice(&tmp[..n]);
                f += n;
            }
            _ => {
                let mut tmp = [0u8; 4098];
                // The kernel wants strings NUL-terminated; byte arrays as they are.
                let nul = usize::from(ty == Some(FieldType::Str));
                let n = (a.put(&mut tmp).saturating_sub(2) + nul).min(var.len() - v);
                if nul == 1 {
                    tmp[2 + n - 1] = 0;
                }
                // __rel_loc: offset from the end of this 4-byte field.
                let rel = (fixed_len - (f + 4)) + v;
                let loc = ((n as u32) << 16) | (rel as u32 & 0xffff);
                if f + 4 <= fixed.len() {
                    fixed[f..f + 4].copy_from_slice(&loc.to_le_bytes());
                    f += 4;
                }
                var[v..v + n].copy_from_slice(&tmp[2..2 + n]);
                v += n;
            }
        }
    }
    let idx = e.ue_index.load(Ordering::Acquire);
    let iov = [
        libc::iovec {
            iov_base: &idx as *const u32 as *mut _,
            iov_len: 4,
        },
        libc::iovec {
            iov_base: fixed.as_ptr() as *mut _,
            iov_len: f,
        },
        libc::iovec {
            iov_base: var.as_ptr() as *mut _,
            iov_len: v,
        },
    ];
    // SAFETY: the iovecs point at live stack buffers.
    unsafe { libc::writev(fd, iov.as_ptr(), 3) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// Layouts as Documentation/trace/user_events.rst and the uapi header give them.
    #[test]
    fn struct_layouts_match_the_kernel_abi() {
        assert_eq!(size_of::<UserReg>(), 28);
        assert_eq!(offset_of!(UserReg, size), 0);
        assert_eq!(offset_of!(UserReg, enable_bit), 4);
        assert_eq!(offset_of!(UserReg, enable_size), 5);
        assert_eq!(offset_of!(UserReg, flags), 6);
        assert_eq!(offset_of!(UserReg, enable_addr), 8);
        assert_eq!(offset_of!(UserReg, name_args), 16);
        assert_eq!(offset_of!(UserReg, write_index), 24);
        assert_eq!(size_of::<UserUnreg>(), 16);
        assert_eq!(offset_of!(UserUnreg, disable_bit), 4);
        assert_eq!(offset_of!(UserUnreg, disable_addr), 8);
        assert_eq!(DIAG_IOCSREG, 0xc008_2a00);
        assert_eq!(DIAG_IOCSUNREG, 0x4008_2a02);
    }

    #[test]
    fn format_strings() {
        crate::define_event!(EV = "my-app":"req" { id: u64, path: &str, ok: bool });
        assert_eq!(name_args(&EV), "my_app_req u64 id;__rel_loc char[] path;u8 ok");
    }

    #[test]
    fn says_plainly_whether_the_kernel_has_user_events() {
        match available() {
            Ok(()) => eprintln!("kernel user_events: available at {USER_EVENTS_DATA}"),
            Err(why) => {
                eprintln!("kernel user_events: NOT available on this kernel: {why}");
                assert!(why.contains("CONFIG_USER_EVENTS"));
            }
        }
    }
}
