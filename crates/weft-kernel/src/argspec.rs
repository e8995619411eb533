//! Which syscall argument points to what, for the kernel-side capture
//! (`capture`): derived from the argument's C type and name in tracefs,
//! with a small table for what types do not say (which `const char *` is a
//! buffer, which length goes with it, what a call fills in).

use weft_format::captured::kind as k;
use weft_format::SyscallEntry;

/// What to read for each argument of one syscall, as the BPF program's
/// `struct spec` holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArgSpec {
    pub kind: [u8; 6],
    /// Buffers and iovecs: the argument holding the length or count.
    pub aux: [u8; 6],
    /// Structs: their size. Buffers: bytes per unit of the length (0 = 1).
    pub size: [u16; 6],
    /// Something is read when the call returns.
    pub at_exit: bool,
}

/// No length argument.
const NONE: u8 = 0xff;
/// Spec kinds that are not item kinds: a msghdr the call reads (sendmsg)
/// or fills (recvmsg); the program stores the struct, its address and its
/// iovec entries as items (capture.bpf.c).
pub const MSGHDR_IN: u8 = 12;
pub const MSGHDR_OUT: u8 = 13;

/// Calls whose arguments the types alone do not describe:
/// (syscall, argument, kind, length argument, size).
const TABLE: &[(&str, &str, u8, &str, u16)] = &[
    ("read", "buf", k::BUF_OUT, "count", 0),
    ("pread64", "buf", k::BUF_OUT, "count", 0),
    ("write", "buf", k::BUF_IN, "count", 0),
    ("pwrite64", "buf", k::BUF_IN, "count", 0),
    ("recvfrom", "ubuf", k::BUF_OUT, "size", 0),
    ("sendto", "buff", k::BUF_IN, "len", 0),
    ("readlink", "buf", k::STR_OUT, "bufsiz", 0),
    ("readlinkat", "buf", k::STR_OUT, "bufsiz", 0),
    ("getcwd", "buf", k::STR_OUT, "size", 0),
    ("getdents64", "dirent", k::BUF_OUT, "count", 0),
    ("mq_timedsend", "u_msg_ptr", k::BUF_IN, "msg_len", 0),
    ("add_key", "_payload", k::BUF_IN, "plen", 0),
    ("clone3", "uargs", k::BUF_IN, "size", 0),
    ("poll", "ufds", k::BUF_IN, "nfds", 8),
    ("ppoll", "ufds", k::BUF_IN, "nfds", 8),
    ("pipe", "fildes", k::STRUCT_OUT, "", 8),
    ("pipe2", "fildes", k::STRUCT_OUT, "", 8),
    ("socketpair", "usockvec", k::STRUCT_OUT, "", 8),
    ("wait4", "stat_addr", k::STRUCT_OUT, "", 4),
    ("rt_sigaction", "act", k::STRUCT_IN, "", 32),
    ("rt_sigaction", "oact", k::STRUCT_OUT, "", 32),
    ("prlimit64", "new_rlim", k::STRUCT_IN, "", 16),
    ("prlimit64", "old_rlim", k::STRUCT_OUT, "", 16),
    ("getrlimit", "rlim", k::STRUCT_OUT, "", 16),
    ("setrlimit", "rlim", k::STRUCT_IN, "", 16),
    ("epoll_ctl", "event", k::STRUCT_IN, "", 12),
    ("uname", "name", k::STRUCT_OUT, "", 390),
    // Written only when the sleep is interrupted (the call fails with
    // EINTR, and nothing is read at exit of a failed call): at entry it
    // holds whatever the caller left there. A pointer, as strace shows it.
    ("nanosleep", "rmtp", 0, "", 0),
    ("clock_nanosleep", "rmtp", 0, "", 0),
    ("clock_gettime", "tp", k::STRUCT_OUT, "", 16),
    ("clock_getres", "tp", k::STRUCT_OUT, "", 16),
    ("sysinfo", "info", k::STRUCT_OUT, "", 112),
];

/// Bytes of a `struct sockaddr` the call fills (a sockaddr_storage).
const SOCKADDR_OUT: u16 = 128;

/// The capture spec of one syscall, or None when nothing it points to is read.
pub fn arg_spec(entry: &SyscallEntry) -> Option<ArgSpec> {
    let mut s = ArgSpec {
        aux: [NONE; 6],
        ..ArgSpec::default()
    };
    let index = |name: &str| entry.args.iter().position(|a| a.name == name).map(|i| i as u8);
    for (i, a) in entry.args.iter().enumerate().take(6) {
        let ctype = a.ctype.replace(' ', "");
        let name = a.name.as_str();
        if let Some(&(_, _, kind, len, size)) = TABLE.iter().find(|t| t.0 == entry.name && t.1 == name) {
            s.kind[i] = kind;
            s.aux[i] = if len.is_empty() {
                NONE
            } else {
                index(len).unwrap_or(NONE)
            };
            s.size[i] = size;
            continue;
        }
        let (kind, aux, size) = match ctype.as_str() {
            "constchar*const*" if name == "envp" => (k::COUNT, NONE, 0),
            "constchar*const*" => (k::ARGV, NONE, 0),
            "constchar*" => (k::STR, NONE, 0),
            "structsockaddr*" => {
                // The length after it: a value (the call reads the address)
                // or a pointer (the call fills it in).
                let len = entry.args.get(i + 1);
                match len {
                    Some(l) if !l.ctype.contains('*') => (k::BUF_IN, i as u8 + 1, 0),
                    _ => (k::STRUCT_OUT, NONE, SOCKADDR_OUT),
                }
            }
            "structstat*" => (k::STRUCT_OUT, NONE, 144),
            "structstatx*" => (k::STRUCT_OUT, NONE, 256),
            "structiovec*" | "conststructiovec*" => {
                let kind = if entry.name.starts_with("write") || entry.name.starts_with("pwrite") {
                    k::IOV_IN
                } else if entry.name.starts_with("read") || entry.name.starts_with("pread") {
                    k::IOV_OUT
                } else {
                    0
                };
                (kind, index("vlen").unwrap_or(NONE), 0)
            }
            "struct__kernel_timespec*" | "conststruct__kernel_timespec*" => (k::STRUCT_IN, NONE, 16),
            "structuser_msghdr*" if entry.name == "sendmsg" => (MSGHDR_IN, NONE, 0),
            "structuser_msghdr*" if entry.name == "recvmsg" => (MSGHDR_OUT, NONE, 0),
            _ => (0, NONE, 0),
        };
        s.kind[i] = kind;
        s.aux[i] = aux;
        s.size[i] = size;
    }
    // A length argument that is missing makes the buffer unreadable.
    for i in 0..6 {
        if matches!(s.kind[i], k::BUF_IN | k::BUF_OUT | k::STR_OUT | k::IOV_IN | k::IOV_OUT) && s.aux[i] == NONE {
            s.kind[i] = 0;
        }
    }
    s.at_exit = s
        .kind
        .iter()
        .any(|&k| matches!(k, k::BUF_OUT | k::STR_OUT | k::STRUCT_OUT | k::IOV_OUT | MSGHDR_OUT));
    s.kind.iter().any(|&k| k != 0).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, args: &[(&str, &str)]) -> SyscallEntry {
        SyscallEntry::new(0, name, args)
    }

    #[test]
    fn types_and_the_table_say_what_to_read() {
        let open = entry(
            "openat",
            &[("int", "dfd"), ("const char *", "filename"), ("int", "flags")],
        );
        assert_eq!(arg_spec(&open).unwrap().kind, [0, k::STR, 0, 0, 0, 0]);
        let read = arg_spec(&entry(
            "read",
            &[("unsigned int", "fd"), ("char *", "buf"), ("size_t", "count")],
        ))
        .unwrap();
        assert_eq!((read.kind[1], read.aux[1], read.at_exit), (k::BUF_OUT, 2, true));
        let write = arg_spec(&entry(
            "write",
            &[("unsigned int", "fd"), ("const char *", "buf"), ("size_t", "count")],
        ))
        .unwrap();
        assert_eq!((write.kind[1], write.aux[1], write.at_exit), (k::BUF_IN, 2, false));
        let exec = arg_spec(&entry(
            "execve",
            &[
                ("const char *", "filename"),
                ("const char *const *", "argv"),
                ("const char *const *", "envp"),
            ],
        ))
        .unwrap();
        assert_eq!(&exec.kind[..3], &[k::STR, k::ARGV, k::COUNT]);
        // The request is read; the remainder, written only on EINTR, is not.
        let sleep = arg_spec(&entry(
            "clock_nanosleep",
            &[
                ("const clockid_t", "which_clock"),
                ("int", "flags"),
                ("const struct __kernel_timespec *", "rqtp"),
                ("struct __kernel_timespec *", "rmtp"),
            ],
        ))
        .unwrap();
        assert_eq!(&sleep.kind[..4], &[0, 0, k::STRUCT_IN, 0]);
        let connect = arg_spec(&entry(
            "connect",
            &[("int", "fd"), ("struct sockaddr *", "uservaddr"), ("int", "addrlen")],
        ))
        .unwrap();
        assert_eq!((connect.kind[1], connect.aux[1]), (k::BUF_IN, 2));
        let accept = arg_spec(&entry(
            "accept",
            &[
                ("int", "fd"),
                ("struct sockaddr *", "upeer_sockaddr"),
                ("int *", "upeer_addrlen"),
            ],
        ))
        .unwrap();
        assert_eq!((accept.kind[1], accept.size[1]), (k::STRUCT_OUT, SOCKADDR_OUT));
        assert_eq!(arg_spec(&entry("getpid", &[])), None);
        assert_eq!(arg_spec(&entry("close", &[("unsigned int", "fd")])), None);
    }
}
