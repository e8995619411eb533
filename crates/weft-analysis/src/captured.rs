//! Captured syscall arguments (strings, buffers, structs, argv) as strace
//! shows them: quoted and escaped the same way, structs decoded by the
//! syscall and argument they belong to.

use std::fmt::Write;

use weft_format::captured::{items, kind as k, Item};

use crate::names::signal_name;

/// A string or buffer as strace quotes it: printable ASCII as is; `\t`,
/// `\n`, `\v`, `\f`, `\r`, `\\`, `\"` escaped; every other byte in octal,
/// as short as the next byte allows; `...` after a cut one.
pub fn quote(bytes: &[u8], truncated: bool) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let next_is_digit = bytes.get(i + 1).is_some_and(|n| (b'0'..=b'7').contains(n));
                if next_is_digit {
                    let _ = write!(out, "\\{b:03o}");
                } else {
                    let _ = write!(out, "\\{b:o}");
                }
            }
        }
    }
    out.push('"');
    if truncated {
        out.push_str("...");
    }
    out
}

/// The captured items of one argument, from a call's entry and exit data.
pub struct ArgData<'a> {
    pub items: Vec<Item<'a>>,
}

/// Items by argument index: entry items, then exit items (an output read
/// at exit wins over nothing at entry; a string retried at exit replaces
/// its failed entry read).
pub fn by_arg<'a>(enter: &'a [u8], exit: &'a [u8]) -> [Option<ArgData<'a>>; 6] {
    let mut out: [Option<ArgData<'a>>; 6] = Default::default();
    for it in items(enter).chain(items(exit)) {
        let Some(slot) = out.get_mut(it.arg as usize) else {
            continue;
        };
        let d = slot.get_or_insert_with(|| ArgData { items: Vec::new() });
        // A retry at exit of what failed at entry replaces it.
        if matches!(it.kind, k::STR | k::STRUCT_IN | k::BUF_IN)
            && d.items.iter().any(|p| p.kind == it.kind && p.fault())
        {
            d.items.retain(|p| p.kind != it.kind);
        }
        d.items.push(it);
    }
    out
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// One argument's value from its captured items, or None to show the
/// number (nothing captured, or the memory was unreadable).
pub fn render(syscall: &str, arg: &str, ctype: &str, value: u64, data: &ArgData) -> Option<String> {
    let first = data.items.first()?;
    if first.fault() && first.kind != k::COUNT {
        return None;
    }
    match first.kind {
        k::STR | k::STR_OUT => Some(quote(first.bytes, first.truncated())),
        k::BUF_IN | k::BUF_OUT => Some(buffer(syscall, arg, first)),
        k::STRUCT_IN | k::STRUCT_OUT if ctype.contains("msghdr") => Some(msghdr(&data.items)),
        k::STRUCT_IN | k::STRUCT_OUT => Some(structure(syscall, arg, ctype, first.bytes)),
        k::ARGV | k::COUNT => Some(array(value, &data.items)),
        k::IOV_IN | k::IOV_OUT => Some(format!("[{}]", iovecs(&data.items))),
        _ => None,
    }
}

fn buffer(syscall: &str, arg: &str, it: &Item) -> String {
    match (syscall, arg) {
        ("getdents64", _) => dirents(it.bytes, it.truncated()),
        ("poll" | "ppoll", _) => {
            let fds: Vec<String> = it
                .bytes
                .chunks_exact(8)
                .map(|p| {
                    let fd = u32_at(p, 0).unwrap_or(0) as i32;
                    let ev = u16_at(p, 4).unwrap_or(0);
                    format!("{{fd={fd}, events={}}}", poll_events(ev))
                })
                .collect();
            format!("[{}]", fds.join(", "))
        }
        ("connect" | "bind" | "sendto", "uservaddr" | "umyaddr" | "addr") => sockaddr(it.bytes),
        ("clone3", _) => clone_args(it.bytes),
        _ => quote(it.bytes, it.truncated()),
    }
}

fn array(value: u64, items: &[Item]) -> String {
    let strings: Vec<String> = items
        .iter()
        .filter(|i| i.kind == k::ARGV)
        .map(|i| quote(i.bytes, i.truncated()))
        .collect();
    let count = items.iter().find(|i| i.kind == k::COUNT);
    let n = count.and_then(Item::count).unwrap_or(strings.len() as u32);
    let more = count.is_some_and(|c| c.truncated());
    if strings.is_empty() {
        // envp: strace shows the count only.
        return format!("{value:#x} /* {n}{} vars */", if more { "+" } else { "" });
    }
    let mut out = format!("[{}", strings.join(", "));
    if (strings.len() as u32) < n || more {
        out.push_str(", ...");
    }
    out.push(']');
    out
}

const FILE_TYPES: &[(u32, &str)] = &[
    (0o140000, "S_IFSOCK"),
    (0o120000, "S_IFLNK"),
    (0o100000, "S_IFREG"),
    (0o060000, "S_IFBLK"),
    (0o040000, "S_IFDIR"),
    (0o020000, "S_IFCHR"),
    (0o010000, "S_IFIFO"),
];

/// `S_IFREG|0644`.
pub fn file_mode(mode: u32) -> String {
    let t = mode & 0o170000;
    let perm = mode & 0o7777;
    match FILE_TYPES.iter().find(|(v, _)| *v == t) {
        Some((_, name)) => format!("{name}|{perm:04o}"),
        None => format!("{mode:#o}"),
    }
}

fn dev(d: u64) -> String {
    let major = ((d >> 8) & 0xfff) | ((d >> 32) & !0xfff);
    let minor = (d & 0xff) | ((d >> 12) & !0xff);
    format!("makedev({major:#x}, {minor:#x})")
}

fn structure(syscall: &str, arg: &str, ctype: &str, b: &[u8]) -> String {
    let c = ctype.replace(' ', "");
    if c.contains("sockaddr") {
        return sockaddr(b);
    }
    if c == "structstat*" {
        let mode = u32_at(b, 24).unwrap_or(0);
        let t = mode & 0o170000;
        return if t == 0o020000 || t == 0o060000 {
            format!(
                "{{st_mode={}, st_rdev={}, ...}}",
                file_mode(mode),
                dev(u64_at(b, 40).unwrap_or(0))
            )
        } else {
            format!(
                "{{st_mode={}, st_size={}, ...}}",
                file_mode(mode),
                u64_at(b, 48).unwrap_or(0) as i64
            )
        };
    }
    if c == "structstatx*" {
        return format!(
            "{{stx_mode={}, stx_size={}, ...}}",
            file_mode(u32::from(u16_at(b, 28).unwrap_or(0))),
            u64_at(b, 40).unwrap_or(0)
        );
    }
    if c.contains("timespec") {
        return format!(
            "{{tv_sec={}, tv_nsec={}}}",
            u64_at(b, 0).unwrap_or(0) as i64,
            u64_at(b, 8).unwrap_or(0) as i64
        );
    }
    if c.contains("rlimit") {
        let lim = |v: u64| {
            if v == u64::MAX {
                "RLIM64_INFINITY".to_string()
            } else {
                v.to_string()
            }
        };
        return format!(
            "{{rlim_cur={}, rlim_max={}}}",
            lim(u64_at(b, 0).unwrap_or(0)),
            lim(u64_at(b, 8).unwrap_or(0))
        );
    }
    match (syscall, arg) {
        ("pipe" | "pipe2" | "socketpair", _) => {
            format!(
                "[{}, {}]",
                u32_at(b, 0).unwrap_or(0) as i32,
                u32_at(b, 4).unwrap_or(0) as i32
            )
        }
        ("wait4", _) => format!("[{}]", wait_status(u32_at(b, 0).unwrap_or(0))),
        ("rt_sigaction", _) => {
            let handler = u64_at(b, 0).unwrap_or(0);
            let h = match handler {
                0 => "SIG_DFL".to_string(),
                1 => "SIG_IGN".to_string(),
                h => format!("{h:#x}"),
            };
            format!(
                "{{sa_handler={h}, sa_mask={:#x}, sa_flags={:#x}, sa_restorer={:#x}}}",
                u64_at(b, 24).unwrap_or(0),
                u64_at(b, 8).unwrap_or(0),
                u64_at(b, 16).unwrap_or(0)
            )
        }
        ("uname", _) => {
            let field = |i: usize| {
                let f = b.get(i * 65..(i + 1) * 65).unwrap_or(&[]);
                let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
                quote(&f[..end], false)
            };
            format!("{{sysname={}, nodename={}, ...}}", field(0), field(1))
        }
        ("epoll_ctl", _) => format!(
            "{{events={}, data={:#x}}}",
            poll_events(u32_at(b, 0).unwrap_or(0) as u16),
            u64_at(b, 4).unwrap_or(0)
        ),
        _ => quote(b, false),
    }
}

/// The readable iovec entries among `items`: `{iov_base="...", iov_len=N}, ...`.
fn iovecs(items: &[Item]) -> String {
    let parts: Vec<String> = items
        .iter()
        .filter(|i| matches!(i.kind, k::IOV_IN | k::IOV_OUT) && !i.fault())
        .map(|i| {
            format!(
                "{{iov_base={}, iov_len={}}}",
                quote(i.bytes, i.truncated()),
                i.bytes.len()
            )
        })
        .collect();
    parts.join(", ")
}

/// A msghdr as strace shows it, from its struct, address and iovec items.
fn msghdr(items: &[Item]) -> String {
    let m = items.first().map_or(&[][..], |i| i.bytes);
    let name = match items.iter().find(|i| i.kind == k::MSG_NAME && !i.fault()) {
        Some(n) => sockaddr(n.bytes),
        None if u64_at(m, 0).unwrap_or(0) == 0 => "NULL".into(),
        None => format!("{:#x}", u64_at(m, 0).unwrap_or(0)),
    };
    format!(
        "{{msg_name={name}, msg_namelen={}, msg_iov=[{}], msg_iovlen={}, msg_controllen={}, msg_flags={}}}",
        u32_at(m, 8).unwrap_or(0),
        iovecs(items),
        u64_at(m, 24).unwrap_or(0),
        u64_at(m, 40).unwrap_or(0),
        u32_at(m, 48).unwrap_or(0)
    )
}

/// `WIFEXITED(s) && WEXITSTATUS(s) == 0`, as strace writes a wait status.
pub fn wait_status(s: u32) -> String {
    let sig = s & 0x7f;
    if sig == 0 {
        format!("{{WIFEXITED(s) && WEXITSTATUS(s) == {}}}", (s >> 8) & 0xff)
    } else if sig == 0x7f {
        format!(
            "{{WIFSTOPPED(s) && WSTOPSIG(s) == {}}}",
            signal_name(i64::from((s >> 8) & 0xff))
        )
    } else {
        let core = if s & 0x80 != 0 { " && WCOREDUMP(s)" } else { "" };
        format!(
            "{{WIFSIGNALED(s) && WTERMSIG(s) == {}{core}}}",
            signal_name(i64::from(sig))
        )
    }
}

fn poll_events(ev: u16) -> String {
    const T: &[(u16, &str)] = &[
        (0x1, "POLLIN"),
        (0x2, "POLLPRI"),
        (0x4, "POLLOUT"),
        (0x8, "POLLERR"),
        (0x10, "POLLHUP"),
        (0x20, "POLLNVAL"),
        (0x40, "POLLRDNORM"),
        (0x80, "POLLRDBAND"),
        (0x100, "POLLWRNORM"),
        (0x200, "POLLWRBAND"),
        (0x2000, "POLLRDHUP"),
    ];
    let names: Vec<&str> = T.iter().filter(|(b, _)| ev & b != 0).map(|(_, n)| *n).collect();
    let rest = ev & !T.iter().fold(0, |a, (b, _)| a | b);
    match (names.is_empty(), rest) {
        (true, 0) => "0".into(),
        (_, 0) => names.join("|"),
        _ => format!("{}{rest:#x}", names.iter().map(|n| format!("{n}|")).collect::<String>()),
    }
}

fn clone_args(b: &[u8]) -> String {
    let flags = u64_at(b, 0).unwrap_or(0);
    let mut out = String::new();
    crate::args::clone_flags(&mut out, flags);
    // 0: no signal to the parent at exit (threads), shown as strace does.
    let exit_signal = match u64_at(b, 32).unwrap_or(0) {
        0 => "0".to_owned(),
        s => signal_name(s as i64),
    };
    format!("{{flags={out}, exit_signal={exit_signal}, ...}}")
}

/// A socket address as strace shows it.
pub fn sockaddr(b: &[u8]) -> String {
    let family = u16_at(b, 0).unwrap_or(0);
    match family {
        1 => {
            let path = b.get(2..).unwrap_or(&[]);
            if path.first() == Some(&0) && path.len() > 1 {
                // Abstract: the name is every byte after the NUL.
                format!("{{sa_family=AF_UNIX, sun_path=@{}}}", quote(&path[1..], false))
            } else {
                let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
                format!("{{sa_family=AF_UNIX, sun_path={}}}", quote(&path[..end], false))
            }
        }
        2 if b.len() >= 8 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            format!(
                "{{sa_family=AF_INET, sin_port=htons({port}), sin_addr=inet_addr(\"{}.{}.{}.{}\")}}",
                b[4], b[5], b[6], b[7]
            )
        }
        10 if b.len() >= 24 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[8..24]);
            let scope = u32_at(b, 24).unwrap_or(0);
            format!(
                "{{sa_family=AF_INET6, sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), inet_pton(AF_INET6, \"{}\", &sin6_addr), sin6_scope_id={scope}}}",
                std::net::Ipv6Addr::from(a)
            )
        }
        16 if b.len() >= 12 => format!(
            "{{sa_family=AF_NETLINK, nl_pid={}, nl_groups={:08x}}}",
            u32_at(b, 4).unwrap_or(0),
            u32_at(b, 8).unwrap_or(0)
        ),
        f => format!("{{sa_family={f}, sa_data={}}}", quote(b.get(2..).unwrap_or(&[]), false)),
    }
}

fn dirents(b: &[u8], truncated: bool) -> String {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let (Some(ino), Some(reclen)) = (u64_at(b, at), u16_at(b, at + 16)) {
        let reclen = reclen as usize;
        if reclen < 20 || at + reclen > b.len() {
            break;
        }
        let ty = b[at + 18];
        let name = &b[at + 19..at + reclen];
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        let t = match ty {
            1 => "DT_FIFO",
            2 => "DT_CHR",
            4 => "DT_DIR",
            6 => "DT_BLK",
            8 => "DT_REG",
            10 => "DT_LNK",
            12 => "DT_SOCK",
            _ => "DT_UNKNOWN",
        };
        out.push(format!(
            "{{d_ino={ino}, d_type={t}, d_name={}}}",
            quote(&name[..end], false)
        ));
        at += reclen;
    }
    let more = if truncated || at < b.len() { ", ..." } else { "" };
    format!("[{}{more}]", out.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_stracess() {
        // strace 6.1 prints open("/tmp/a b\n\"x\\\ty\1\1777é") as below.
        assert_eq!(
            quote(b"/tmp/a b\n\"x\\\ty\x01\x7f7\xc3\xa9", false),
            r#""/tmp/a b\n\"x\\\ty\1\1777\303\251""#
        );
        assert_eq!(quote(b"\0\x011x\n", false), r#""\0\0011x\n""#);
        assert_eq!(quote(b"abc", true), r#""abc"..."#);
    }

    #[test]
    fn socket_addresses() {
        let mut un = vec![1, 0];
        un.extend_from_slice(b"/run/x.sock\0");
        assert_eq!(sockaddr(&un), r#"{sa_family=AF_UNIX, sun_path="/run/x.sock"}"#);
        let inet = [2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            sockaddr(&inet),
            r#"{sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("127.0.0.1")}"#
        );
        let mut in6 = vec![10, 0, 0, 80, 0, 0, 0, 0];
        in6.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        in6.extend_from_slice(&[0; 4]);
        assert!(sockaddr(&in6).contains(r#"inet_pton(AF_INET6, "::1", &sin6_addr)"#));
    }

    #[test]
    fn a_msghdr_shows_its_address_and_data() {
        use weft_format::captured::flag;
        let mut m = vec![0u8; 56];
        m[0..8].copy_from_slice(&0x1000u64.to_le_bytes());
        m[8..12].copy_from_slice(&16u32.to_le_bytes());
        m[24..32].copy_from_slice(&1u64.to_le_bytes());
        let inet = [2, 0, 0, 53, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let items = [
            Item {
                arg: 1,
                kind: k::STRUCT_IN,
                flags: 0,
                index: 0,
                bytes: &m,
            },
            Item {
                arg: 1,
                kind: k::MSG_NAME,
                flags: 0,
                index: 0,
                bytes: &inet,
            },
            Item {
                arg: 1,
                kind: k::IOV_IN,
                flags: flag::TRUNCATED,
                index: 0,
                bytes: b"q",
            },
        ];
        assert_eq!(
            msghdr(&items),
            r#"{msg_name={sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.1")}, msg_namelen=16, msg_iov=[{iov_base="q"..., iov_len=1}], msg_iovlen=1, msg_controllen=0, msg_flags=0}"#
        );
    }

    #[test]
    fn wait_statuses_and_modes() {
        assert_eq!(wait_status(3 << 8), "{WIFEXITED(s) && WEXITSTATUS(s) == 3}");
        assert_eq!(wait_status(9), "{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}");
        assert_eq!(file_mode(0o100644), "S_IFREG|0644");
        assert_eq!(file_mode(0o40755), "S_IFDIR|0755");
    }
}
