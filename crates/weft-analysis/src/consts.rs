//! Symbolic names of syscall argument values, as strace prints them: one
//! table per kind of value, and `Shape`, which says which table an
//! argument of which syscall uses. Tables hold x86-64 Linux values.

use std::fmt::Write;

pub const AF: &[(u64, &str)] = &[
    (0, "AF_UNSPEC"),
    (1, "AF_UNIX"),
    (2, "AF_INET"),
    (3, "AF_AX25"),
    (4, "AF_IPX"),
    (5, "AF_APPLETALK"),
    (9, "AF_X25"),
    (10, "AF_INET6"),
    (16, "AF_NETLINK"),
    (17, "AF_PACKET"),
    (29, "AF_CAN"),
    (31, "AF_BLUETOOTH"),
    (38, "AF_ALG"),
    (40, "AF_VSOCK"),
    (44, "AF_XDP"),
];

pub const SOCK_TYPE: &[(u64, &str)] = &[
    (1, "SOCK_STREAM"),
    (2, "SOCK_DGRAM"),
    (3, "SOCK_RAW"),
    (4, "SOCK_RDM"),
    (5, "SOCK_SEQPACKET"),
    (6, "SOCK_DCCP"),
    (10, "SOCK_PACKET"),
];

/// Flags that ride on a socket type, and on many calls' `flags`.
pub const SOCK_FLAGS: &[(u64, &str)] = &[(0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC")];

pub const IPPROTO: &[(u64, &str)] = &[
    (0, "IPPROTO_IP"),
    (1, "IPPROTO_ICMP"),
    (6, "IPPROTO_TCP"),
    (17, "IPPROTO_UDP"),
    (41, "IPPROTO_IPV6"),
    (58, "IPPROTO_ICMPV6"),
    (132, "IPPROTO_SCTP"),
    (255, "IPPROTO_RAW"),
];

/// ioctl requests: terminal, block device and socket ones.
pub const IOCTL: &[(u64, &str)] = &[
    (0x5401, "TCGETS"),
    (0x5402, "TCSETS"),
    (0x5403, "TCSETSW"),
    (0x5404, "TCSETSF"),
    (0x5409, "TCSBRK"),
    (0x540A, "TCXONC"),
    (0x540B, "TCFLSH"),
    (0x540C, "TIOCEXCL"),
    (0x540D, "TIOCNXCL"),
    (0x540E, "TIOCSCTTY"),
    (0x540F, "TIOCGPGRP"),
    (0x5410, "TIOCSPGRP"),
    (0x5411, "TIOCOUTQ"),
    (0x5412, "TIOCSTI"),
    (0x5413, "TIOCGWINSZ"),
    (0x5414, "TIOCSWINSZ"),
    (0x5415, "TIOCMGET"),
    (0x541B, "FIONREAD"),
    (0x541C, "TIOCLINUX"),
    (0x541D, "TIOCCONS"),
    (0x5421, "FIONBIO"),
    (0x5422, "TIOCNOTTY"),
    (0x5429, "TIOCGSID"),
    (0x5450, "FIONCLEX"),
    (0x5451, "FIOCLEX"),
    (0x5452, "FIOASYNC"),
    (0x80045430, "TIOCGPTN"),
    (0x40045431, "TIOCSPTLCK"),
    (0x5441, "TIOCGPTPEER"),
    (0x1260, "BLKGETSIZE"),
    (0x1261, "BLKFLSBUF"),
    (0x125d, "BLKROSET"),
    (0x125e, "BLKROGET"),
    (0x125f, "BLKRRPART"),
    (0x1268, "BLKSSZGET"),
    (0x1277, "BLKDISCARD"),
    (0x127b, "BLKPBSZGET"),
    (0x80081270, "BLKBSZGET"),
    (0x80081272, "BLKGETSIZE64"),
    (0x8901, "FIOSETOWN"),
    (0x8902, "SIOCSPGRP"),
    (0x8903, "FIOGETOWN"),
    (0x8904, "SIOCGPGRP"),
    (0x8905, "SIOCATMARK"),
    (0x8906, "SIOCGSTAMP"),
    (0x8910, "SIOCGIFNAME"),
    (0x8912, "SIOCGIFCONF"),
    (0x8913, "SIOCGIFFLAGS"),
    (0x8914, "SIOCSIFFLAGS"),
    (0x8915, "SIOCGIFADDR"),
    (0x8916, "SIOCSIFADDR"),
    (0x891b, "SIOCGIFNETMASK"),
    (0x8921, "SIOCGIFMTU"),
    (0x8927, "SIOCGIFHWADDR"),
    (0x8933, "SIOCGIFINDEX"),
    (0x8946, "SIOCETHTOOL"),
];

/// futex operations (the low 7 bits of `op`).
pub const FUTEX_OP: &[(u64, &str)] = &[
    (0, "FUTEX_WAIT"),
    (1, "FUTEX_WAKE"),
    (2, "FUTEX_FD"),
    (3, "FUTEX_REQUEUE"),
    (4, "FUTEX_CMP_REQUEUE"),
    (5, "FUTEX_WAKE_OP"),
    (6, "FUTEX_LOCK_PI"),
    (7, "FUTEX_UNLOCK_PI"),
    (8, "FUTEX_TRYLOCK_PI"),
    (9, "FUTEX_WAIT_BITSET"),
    (10, "FUTEX_WAKE_BITSET"),
    (11, "FUTEX_WAIT_REQUEUE_PI"),
    (12, "FUTEX_CMP_REQUEUE_PI"),
    (13, "FUTEX_LOCK_PI2"),
];

pub const SEEK: &[(u64, &str)] = &[
    (0, "SEEK_SET"),
    (1, "SEEK_CUR"),
    (2, "SEEK_END"),
    (3, "SEEK_DATA"),
    (4, "SEEK_HOLE"),
];

pub const RLIMIT: &[(u64, &str)] = &[
    (0, "RLIMIT_CPU"),
    (1, "RLIMIT_FSIZE"),
    (2, "RLIMIT_DATA"),
    (3, "RLIMIT_STACK"),
    (4, "RLIMIT_CORE"),
    (5, "RLIMIT_RSS"),
    (6, "RLIMIT_NPROC"),
    (7, "RLIMIT_NOFILE"),
    (8, "RLIMIT_MEMLOCK"),
    (9, "RLIMIT_AS"),
    (10, "RLIMIT_LOCKS"),
    (11, "RLIMIT_SIGPENDING"),
    (12, "RLIMIT_MSGQUEUE"),
    (13, "RLIMIT_NICE"),
    (14, "RLIMIT_RTPRIO"),
    (15, "RLIMIT_RTTIME"),
];

pub const AT_FLAGS: &[(u64, &str)] = &[
    (0x100, "AT_SYMLINK_NOFOLLOW"),
    (0x200, "AT_REMOVEDIR"),
    (0x400, "AT_SYMLINK_FOLLOW"),
    (0x800, "AT_NO_AUTOMOUNT"),
    (0x1000, "AT_EMPTY_PATH"),
    (0x2000, "AT_STATX_FORCE_SYNC"),
    (0x4000, "AT_STATX_DONT_SYNC"),
    (0x8000, "AT_RECURSIVE"),
];

/// faccessat2's flags: 0x200 is AT_EACCESS there.
pub const ACCESS_AT_FLAGS: &[(u64, &str)] = &[
    (0x100, "AT_SYMLINK_NOFOLLOW"),
    (0x200, "AT_EACCESS"),
    (0x1000, "AT_EMPTY_PATH"),
];

pub const ACCESS_MODE: &[(u64, &str)] = &[(4, "R_OK"), (2, "W_OK"), (1, "X_OK")];

pub const WAIT_OPTIONS: &[(u64, &str)] = &[
    (1, "WNOHANG"),
    (2, "WUNTRACED"),
    (4, "WEXITED"),
    (8, "WCONTINUED"),
    (0x0100_0000, "WNOWAIT"),
    (0x2000_0000, "__WNOTHREAD"),
    (0x4000_0000, "__WALL"),
    (0x8000_0000, "__WCLONE"),
];

pub const STATX_MASK: &[(u64, &str)] = &[
    (0x7ff, "STATX_BASIC_STATS"),
    (0x1, "STATX_TYPE"),
    (0x2, "STATX_MODE"),
    (0x4, "STATX_NLINK"),
    (0x8, "STATX_UID"),
    (0x10, "STATX_GID"),
    (0x20, "STATX_ATIME"),
    (0x40, "STATX_MTIME"),
    (0x80, "STATX_CTIME"),
    (0x100, "STATX_INO"),
    (0x200, "STATX_SIZE"),
    (0x400, "STATX_BLOCKS"),
    (0x800, "STATX_BTIME"),
    (0x1000, "STATX_MNT_ID"),
    (0x2000, "STATX_DIOALIGN"),
    (0x4000, "STATX_MNT_ID_UNIQUE"),
    (0x8000, "STATX_SUBVOL"),
    (0x10000, "STATX_WRITE_ATOMIC"),
];

pub const FCNTL: &[(u64, &str)] = &[
    (0, "F_DUPFD"),
    (1, "F_GETFD"),
    (2, "F_SETFD"),
    (3, "F_GETFL"),
    (4, "F_SETFL"),
    (5, "F_GETLK"),
    (6, "F_SETLK"),
    (7, "F_SETLKW"),
    (8, "F_SETOWN"),
    (9, "F_GETOWN"),
    (10, "F_SETSIG"),
    (11, "F_GETSIG"),
    (15, "F_SETOWN_EX"),
    (16, "F_GETOWN_EX"),
    (36, "F_OFD_GETLK"),
    (37, "F_OFD_SETLK"),
    (38, "F_OFD_SETLKW"),
    (1024, "F_SETLEASE"),
    (1025, "F_GETLEASE"),
    (1026, "F_NOTIFY"),
    (1030, "F_DUPFD_CLOEXEC"),
    (1031, "F_SETPIPE_SZ"),
    (1032, "F_GETPIPE_SZ"),
    (1033, "F_ADD_SEALS"),
    (1034, "F_GET_SEALS"),
];

pub const EPOLL_CTL: &[(u64, &str)] = &[(1, "EPOLL_CTL_ADD"), (2, "EPOLL_CTL_DEL"), (3, "EPOLL_CTL_MOD")];

pub const SHUT: &[(u64, &str)] = &[(0, "SHUT_RD"), (1, "SHUT_WR"), (2, "SHUT_RDWR")];

pub const CLOCK: &[(u64, &str)] = &[
    (0, "CLOCK_REALTIME"),
    (1, "CLOCK_MONOTONIC"),
    (2, "CLOCK_PROCESS_CPUTIME_ID"),
    (3, "CLOCK_THREAD_CPUTIME_ID"),
    (4, "CLOCK_MONOTONIC_RAW"),
    (5, "CLOCK_REALTIME_COARSE"),
    (6, "CLOCK_MONOTONIC_COARSE"),
    (7, "CLOCK_BOOTTIME"),
    (8, "CLOCK_REALTIME_ALARM"),
    (9, "CLOCK_BOOTTIME_ALARM"),
    (11, "CLOCK_TAI"),
];

pub const MSG: &[(u64, &str)] = &[
    (0x1, "MSG_OOB"),
    (0x2, "MSG_PEEK"),
    (0x4, "MSG_DONTROUTE"),
    (0x8, "MSG_CTRUNC"),
    (0x20, "MSG_TRUNC"),
    (0x40, "MSG_DONTWAIT"),
    (0x80, "MSG_EOR"),
    (0x100, "MSG_WAITALL"),
    (0x4000, "MSG_NOSIGNAL"),
    (0x8000, "MSG_MORE"),
    (0x10000, "MSG_WAITFORONE"),
    (0x4000_0000, "MSG_CMSG_CLOEXEC"),
];

/// `O_CLOEXEC|O_NONBLOCK`-style flags of pipe2, dup3, eventfd2, epoll_create1 ...
pub const CLOEXEC_NONBLOCK: &[(u64, &str)] = &[(0o2000000, "O_CLOEXEC"), (0o4000, "O_NONBLOCK")];
pub const GRND: &[(u64, &str)] = &[(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")];

pub const FD_FLAGS: &[(u64, &str)] = &[(1, "FD_CLOEXEC")];

pub const SOL: &[(u64, &str)] = &[
    (1, "SOL_SOCKET"),
    (0, "SOL_IP"),
    (6, "SOL_TCP"),
    (17, "SOL_UDP"),
    (41, "SOL_IPV6"),
];

/// `name` for a value of the table, the number otherwise.
pub fn value(out: &mut String, v: u64, table: &[(u64, &str)]) {
    match table.iter().find(|(x, _)| *x == v) {
        Some((_, n)) => out.push_str(n),
        None => {
            let _ = write!(out, "{v}");
        }
    }
}

/// `A|B|0x40` for bits; `0` when none is set.
pub fn flags(out: &mut String, v: u64, table: &[(u64, &str)]) {
    if v == 0 {
        out.push('0');
        return;
    }
    let mut rest = v;
    let mut named = false;
    // Multi-bit entries (STATX_BASIC_STATS, O_SYNC) match whole, before their parts.
    for multi in [true, false] {
        for &(bit, name) in table {
            if rest == 0 {
                break;
            }
            if bit != 0 && (bit.count_ones() > 1) == multi && rest & bit == bit {
                if named {
                    out.push('|');
                }
                out.push_str(name);
                named = true;
                rest &= !bit;
            }
        }
    }
    if rest != 0 {
        if named {
            out.push('|');
        }
        let _ = write!(out, "{rest:#x}");
    }
}

/// A socket type with its flags: `SOCK_STREAM|SOCK_CLOEXEC`.
fn socket_type(out: &mut String, v: u64) {
    value(out, v & 0xf, SOCK_TYPE);
    if v & !0xf != 0 {
        out.push('|');
        flags(out, v & !0xf, SOCK_FLAGS);
    }
}

/// `FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME`.
fn futex_op(out: &mut String, v: u64) {
    value(out, v & 0x7f, FUTEX_OP);
    if v & 0x80 != 0 {
        out.push_str("_PRIVATE");
    }
    if v & 0x100 != 0 {
        out.push_str("|FUTEX_CLOCK_REALTIME");
    }
    let rest = v & !0x1ff;
    if rest != 0 {
        let _ = write!(out, "|{rest:#x}");
    }
}

/// Writes the symbolic form of argument `arg` of `syscall` (named as in
/// tracefs), given the call's other arguments, or returns false when no
/// table applies.
pub fn decode(out: &mut String, syscall: &str, arg: &str, v: u64, args: &dyn Fn(&str) -> Option<u64>) -> bool {
    Shape::of(syscall, arg).is_some_and(|s| s.write(out, v, args))
}

/// Which table shows an argument: decided once per syscall and argument
/// name (`decode` matched the names again for every value).
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// One value among these.
    Value(Table),
    /// Bits, `|`-joined; multi-bit entries are matched first.
    Flags(Table),
    SocketType,
    /// IPPROTO_* only for AF_INET and AF_INET6 sockets.
    SocketProtocol,
    Ioctl,
    Futex,
    AccessMode,
    /// By fcntl's command.
    FcntlArg,
}

type Table = &'static [(u64, &'static str)];

impl Shape {
    /// The table for argument `arg` of `syscall`, if there is one.
    pub fn of(syscall: &str, arg: &str) -> Option<Shape> {
        use Shape::*;
        Some(match (syscall, arg) {
            ("socket" | "socketpair", "family") => Value(AF),
            ("socket" | "socketpair", "type") => SocketType,
            ("socket" | "socketpair", "protocol") => SocketProtocol,
            ("ioctl", "cmd") => Ioctl,
            ("futex", "op") => Futex,
            ("lseek", "whence") => Value(SEEK),
            ("prlimit64" | "getrlimit" | "setrlimit", "resource") => Value(RLIMIT),
            (
                "newfstatat" | "unlinkat" | "linkat" | "fchownat" | "utimensat" | "statx" | "name_to_handle_at"
                | "open_tree" | "execveat" | "fchmodat2",
                "flag" | "flags",
            ) => Flags(AT_FLAGS),
            ("faccessat2", "flags") => Flags(ACCESS_AT_FLAGS),
            ("access" | "faccessat" | "faccessat2", "mode") => AccessMode,
            ("wait4" | "waitid", "options") => Flags(WAIT_OPTIONS),
            ("statx", "mask") => Flags(STATX_MASK),
            ("fcntl", "cmd") => Value(FCNTL),
            ("fcntl", "arg") => FcntlArg,
            ("epoll_ctl", "op") => Value(EPOLL_CTL),
            ("shutdown", "how") => Value(SHUT),
            (
                "clock_gettime" | "clock_settime" | "clock_getres" | "clock_nanosleep" | "timer_create",
                "which_clock",
            )
            | ("timerfd_create", "clockid") => Value(CLOCK),
            ("sendto" | "recvfrom" | "sendmsg" | "recvmsg" | "sendmmsg" | "recvmmsg", "flags") => Flags(MSG),
            ("accept4", "flags") => Flags(SOCK_FLAGS),
            (
                "pipe2" | "dup3" | "eventfd2" | "epoll_create1" | "inotify_init1" | "timerfd_create" | "signalfd4"
                | "memfd_secret",
                "flags",
            ) => Flags(CLOEXEC_NONBLOCK),
            ("setsockopt" | "getsockopt", "level") => Value(SOL),
            ("getrandom", "flags") => Flags(GRND),
            _ => return None,
        })
    }

    /// Writes `v`, or returns false when the table does not apply to this
    /// call (it depends on another argument, found by name with `args`).
    pub fn write(self, out: &mut String, v: u64, args: &dyn Fn(&str) -> Option<u64>) -> bool {
        let v32 = v & 0xffff_ffff;
        match self {
            Shape::Value(t) => value(out, v32, t),
            Shape::Flags(t) => flags(out, v32, t),
            Shape::SocketType => socket_type(out, v32),
            Shape::SocketProtocol => match args("family") {
                Some(2 | 10) => value(out, v32, IPPROTO),
                _ => return false,
            },
            Shape::Ioctl => match IOCTL.iter().find(|(x, _)| *x == v32) {
                Some((_, n)) => out.push_str(n),
                None => {
                    let _ = write!(out, "{v32:#x}");
                }
            },
            Shape::Futex => futex_op(out, v32),
            Shape::AccessMode => {
                if v32 == 0 {
                    out.push_str("F_OK")
                } else {
                    flags(out, v32, ACCESS_MODE)
                }
            }
            Shape::FcntlArg => match args("cmd").map(|c| c & 0xffff_ffff) {
                Some(2) => flags(out, v32, FD_FLAGS),
                Some(4) => crate::args::open_flags(out, v32),
                Some(8 | 10 | 0 | 1030 | 1031) => {
                    let _ = write!(out, "{}", v32 as i32);
                }
                _ => return false,
            },
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(syscall: &str, arg: &str, v: u64, others: &[(&str, u64)]) -> String {
        let mut out = String::new();
        let others = others.to_vec();
        let ok = decode(&mut out, syscall, arg, v, &|n| {
            others.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
        });
        assert!(ok, "{syscall} {arg} has no table");
        out
    }

    #[test]
    fn sockets() {
        assert_eq!(show("socket", "family", 1, &[]), "AF_UNIX");
        assert_eq!(
            show("socket", "type", 1 | 0o2000000 | 0o4000, &[]),
            "SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC"
        );
        assert_eq!(show("socket", "protocol", 6, &[("family", 2)]), "IPPROTO_TCP");
        assert_eq!(show("sendto", "flags", 0x4000, &[]), "MSG_NOSIGNAL");
        assert_eq!(show("shutdown", "how", 2, &[]), "SHUT_RDWR");
        assert_eq!(show("setsockopt", "level", 1, &[]), "SOL_SOCKET");
    }

    #[test]
    fn ioctls() {
        assert_eq!(show("ioctl", "cmd", 0x5401, &[]), "TCGETS");
        assert_eq!(show("ioctl", "cmd", 0x5413, &[]), "TIOCGWINSZ");
        assert_eq!(show("ioctl", "cmd", 0x80081272, &[]), "BLKGETSIZE64");
        assert_eq!(show("ioctl", "cmd", 0x8933, &[]), "SIOCGIFINDEX");
        assert_eq!(show("ioctl", "cmd", 0x1234, &[]), "0x1234");
    }

    #[test]
    fn futexes() {
        assert_eq!(show("futex", "op", 0x80, &[]), "FUTEX_WAIT_PRIVATE");
        assert_eq!(
            show("futex", "op", 9 | 0x80 | 0x100, &[]),
            "FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME"
        );
        assert_eq!(show("futex", "op", 1, &[]), "FUTEX_WAKE");
    }

    #[test]
    fn files() {
        assert_eq!(show("lseek", "whence", 2, &[]), "SEEK_END");
        assert_eq!(show("newfstatat", "flag", 0x1000, &[]), "AT_EMPTY_PATH");
        assert_eq!(show("unlinkat", "flag", 0x200, &[]), "AT_REMOVEDIR");
        assert_eq!(show("faccessat2", "flags", 0x200, &[]), "AT_EACCESS");
        assert_eq!(show("access", "mode", 0, &[]), "F_OK");
        assert_eq!(show("getrandom", "flags", 1, &[]), "GRND_NONBLOCK");
        assert_eq!(show("access", "mode", 6, &[]), "R_OK|W_OK");
        assert_eq!(show("statx", "mask", 0xfff, &[]), "STATX_BASIC_STATS|STATX_BTIME");
        assert_eq!(show("fcntl", "cmd", 1030, &[]), "F_DUPFD_CLOEXEC");
        assert_eq!(show("fcntl", "arg", 1, &[("cmd", 2)]), "FD_CLOEXEC");
        assert_eq!(show("fcntl", "arg", 0o4002, &[("cmd", 4)]), "O_RDWR|O_NONBLOCK");
        assert_eq!(show("pipe2", "flags", 0o2000000, &[]), "O_CLOEXEC");
    }

    #[test]
    fn processes_limits_clocks() {
        assert_eq!(show("prlimit64", "resource", 7, &[]), "RLIMIT_NOFILE");
        assert_eq!(show("wait4", "options", 1 | 0x4000_0000, &[]), "WNOHANG|__WALL");
        assert_eq!(show("clock_gettime", "which_clock", 1, &[]), "CLOCK_MONOTONIC");
        assert_eq!(show("epoll_ctl", "op", 1, &[]), "EPOLL_CTL_ADD");
        assert_eq!(show("wait4", "options", 0, &[]), "0");
    }
}
