//! What each file descriptor of each process is, as far as the trace tells
//! (strace's `-y`): names from the opens, sockets, pipes, dups and closes
//! it holds, carried over forks and cleared of close-on-exec descriptors
//! at exec. Descriptors a process had before the recording began are
//! unknown.

use std::collections::HashMap;

use weft_format::captured::{items, kind as k};
use weft_format::SyscallEntry;

use crate::consts::AF;

const O_CLOEXEC: u64 = 0o2000000;

#[derive(Debug, Clone)]
struct Fd {
    name: String,
    cloexec: bool,
}

/// Descriptor tables by process.
#[derive(Debug, Default)]
pub struct FdTables {
    by_pid: HashMap<u32, HashMap<i64, Fd>>,
}

/// One syscall as it returned: its arguments, what was captured, the result.
pub struct Call<'a> {
    pub entry: Option<&'a SyscallEntry>,
    pub args: &'a [u64],
    pub enter: &'a [u8],
    pub exit: &'a [u8],
    pub ret: i64,
}

impl Call<'_> {
    fn arg(&self, name: &str) -> Option<u64> {
        let i = self.entry?.args.iter().position(|a| a.name == name)?;
        self.args.get(i).copied()
    }

    /// The captured bytes of the named argument, first item.
    fn bytes(&self, name: &str, kind: u8) -> Option<&[u8]> {
        let i = self.entry?.args.iter().position(|a| a.name == name)? as u8;
        items(self.enter)
            .chain(items(self.exit))
            .find(|it| it.arg == i && it.kind == kind && !it.fault())
            .map(|it| it.bytes)
    }
}

fn fd_of(v: u64) -> i64 {
    v as u32 as i32 as i64
}

impl FdTables {
    /// The name of `fd` in process `pid`, if the trace told it.
    pub fn name(&self, pid: u32, fd: i64) -> Option<&str> {
        self.by_pid.get(&pid)?.get(&fd).map(|f| f.name.as_str())
    }

    /// A descriptor the process had before the recording began.
    pub fn at_start(&mut self, pid: u32, fd: i64, name: String) {
        self.set(pid, fd, name, false);
    }

    fn set(&mut self, pid: u32, fd: i64, name: String, cloexec: bool) {
        self.by_pid.entry(pid).or_default().insert(fd, Fd { name, cloexec });
    }

    /// A new process gets a copy of its parent's table.
    pub fn fork(&mut self, parent: u32, child: u32) {
        if let Some(t) = self.by_pid.get(&parent).cloned() {
            self.by_pid.insert(child, t);
        }
    }

    /// exec closes the close-on-exec descriptors.
    pub fn exec(&mut self, pid: u32) {
        if let Some(t) = self.by_pid.get_mut(&pid) {
            t.retain(|_, f| !f.cloexec);
        }
    }

    pub fn exit(&mut self, pid: u32) {
        self.by_pid.remove(&pid);
    }

    /// Learns from a syscall that returned; returns the descriptor the
    /// call returned, when it returns one, so its name can be shown.
    pub fn returned(&mut self, pid: u32, name: &str, c: &Call) -> Option<i64> {
        if c.ret < 0 {
            return None;
        }
        let ret = c.ret;
        let flags = |n: &str| c.arg(n).unwrap_or(0);
        match name {
            "open" | "openat" | "creat" | "openat2" => {
                let path = String::from_utf8_lossy(c.bytes("filename", k::STR)?).into_owned();
                let base = c
                    .arg("dfd")
                    .map(fd_of)
                    .filter(|&d| d != -100 && !path.starts_with('/'))
                    .and_then(|d| self.name(pid, d).map(str::to_owned));
                let full = match base {
                    Some(dir) => format!("{}/{path}", dir.trim_end_matches('/')),
                    None => path,
                };
                self.set(pid, ret, full, flags("flags") & O_CLOEXEC != 0);
                Some(ret)
            }
            "memfd_create" => {
                let n = String::from_utf8_lossy(c.bytes("uname", k::STR).unwrap_or(b"")).into_owned();
                self.set(pid, ret, format!("/memfd:{n}"), flags("flags") & 1 != 0);
                Some(ret)
            }
            "socket" => {
                let fam = flags("family") & 0xffff;
                let f = AF
                    .iter()
                    .find(|(v, _)| *v == fam)
                    .map_or("socket".to_string(), |(_, n)| n.to_string());
                self.set(pid, ret, format!("socket:{f}"), flags("type") & O_CLOEXEC != 0);
                Some(ret)
            }
            "accept" | "accept4" => {
                let lfd = fd_of(flags("fd"));
                let n = self.name(pid, lfd).unwrap_or("socket").to_string();
                self.set(pid, ret, n, flags("flags") & O_CLOEXEC != 0);
                Some(ret)
            }
            "pipe" | "pipe2" | "socketpair" => {
                let arg = match name {
                    "socketpair" => "usockvec",
                    _ => "fildes",
                };
                let b = c.bytes(arg, k::STRUCT_OUT)?;
                let (r, w) = (
                    i64::from(i32::from_le_bytes(b.get(0..4)?.try_into().ok()?)),
                    i64::from(i32::from_le_bytes(b.get(4..8)?.try_into().ok()?)),
                );
                let cloexec = flags("flags") & O_CLOEXEC != 0 || flags("type") & O_CLOEXEC != 0;
                let (a, z) = if name == "socketpair" {
                    ("socket:AF_UNIX", "socket:AF_UNIX")
                } else {
                    ("pipe:[read]", "pipe:[write]")
                };
                self.set(pid, r, a.into(), cloexec);
                self.set(pid, w, z.into(), cloexec);
                None
            }
            "dup" => self.dup(pid, fd_of(flags("fildes")), ret, false),
            "dup2" | "dup3" => self.dup(pid, fd_of(flags("oldfd")), ret, flags("flags") & O_CLOEXEC != 0),
            "fcntl" => match flags("cmd") & 0xffff_ffff {
                0 => self.dup(pid, fd_of(flags("fd")), ret, false),
                1030 => self.dup(pid, fd_of(flags("fd")), ret, true),
                2 => {
                    let fd = fd_of(flags("fd"));
                    if let Some(f) = self.by_pid.get_mut(&pid).and_then(|t| t.get_mut(&fd)) {
                        f.cloexec = flags("arg") & 1 != 0;
                    }
                    None
                }
                _ => None,
            },
            "close" => {
                if let Some(t) = self.by_pid.get_mut(&pid) {
                    t.remove(&fd_of(flags("fd")));
                }
                None
            }
            "eventfd" | "eventfd2" | "epoll_create" | "epoll_create1" | "timerfd_create" | "signalfd" | "signalfd4"
            | "inotify_init" | "inotify_init1" | "pidfd_open" | "perf_event_open" | "userfaultfd" | "fanotify_init"
            | "io_uring_setup" => {
                let what = match name {
                    "eventfd" | "eventfd2" => "[eventfd]",
                    "epoll_create" | "epoll_create1" => "[eventpoll]",
                    "timerfd_create" => "[timerfd]",
                    "signalfd" | "signalfd4" => "[signalfd]",
                    "inotify_init" | "inotify_init1" => "inotify",
                    "pidfd_open" => "[pidfd]",
                    "perf_event_open" => "[perf_event]",
                    "userfaultfd" => "[userfaultfd]",
                    "fanotify_init" => "[fanotify]",
                    _ => "[io_uring]",
                };
                let cloexec = flags("flags") & O_CLOEXEC != 0;
                self.set(pid, ret, format!("anon_inode:{what}"), cloexec);
                Some(ret)
            }
            _ => None,
        }
    }

    fn dup(&mut self, pid: u32, old: i64, new: i64, cloexec: bool) -> Option<i64> {
        let name = self.name(pid, old)?.to_string();
        self.set(pid, new, name, cloexec);
        Some(new)
    }
}

/// Whether an argument (by its tracefs name) is a file descriptor.
pub fn is_fd_arg(syscall: &str, name: &str) -> bool {
    // pipe's `fildes` is an array, not a descriptor.
    (name.ends_with("fd") && !name.ends_with("fds")) || (name == "fildes" && !syscall.starts_with("pipe"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_format::captured::{push_item, Item};

    fn entry(name: &str, args: &[&str]) -> SyscallEntry {
        let typed: Vec<(&str, &str)> = args.iter().map(|n| ("long", *n)).collect();
        SyscallEntry::new(0, name, &typed)
    }

    fn s(arg: u8, kind: u8, b: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        push_item(
            &mut d,
            Item {
                arg,
                kind,
                flags: 0,
                index: 0,
                bytes: b,
            },
        );
        d
    }

    #[test]
    fn opens_dups_closes_forks_and_execs() {
        let mut t = FdTables::default();
        let openat = entry("openat", &["dfd", "filename", "flags", "mode"]);
        let path = s(1, k::STR, b"/etc/passwd");
        let call = |args: &'static [u64], enter: &[u8], ret| (args, enter.to_vec(), ret);
        let (a, e, r) = call(&[(-100i64) as u64, 0, O_CLOEXEC, 0], &path, 3);
        let c = Call {
            entry: Some(&openat),
            args: a,
            enter: &e,
            exit: &[],
            ret: r,
        };
        assert_eq!(t.returned(10, "openat", &c), Some(3));
        assert_eq!(t.name(10, 3), Some("/etc/passwd"));
        // A path relative to a directory descriptor.
        t.set(10, 4, "/var".into(), false);
        let rel = s(1, k::STR, b"log");
        let c = Call {
            entry: Some(&openat),
            args: &[4, 0, 0, 0],
            enter: &rel,
            exit: &[],
            ret: 5,
        };
        t.returned(10, "openat", &c);
        assert_eq!(t.name(10, 5), Some("/var/log"));
        let dup2 = entry("dup2", &["oldfd", "newfd"]);
        let c = Call {
            entry: Some(&dup2),
            args: &[3, 9],
            enter: &[],
            exit: &[],
            ret: 9,
        };
        t.returned(10, "dup2", &c);
        assert_eq!(t.name(10, 9), Some("/etc/passwd"));
        t.fork(10, 11);
        t.exec(11);
        // fd 3 was close-on-exec; 9 (dup2) and 5 are not.
        assert_eq!(t.name(11, 3), None);
        assert_eq!(t.name(11, 9), Some("/etc/passwd"));
        let close = entry("close", &["fd"]);
        let c = Call {
            entry: Some(&close),
            args: &[9],
            enter: &[],
            exit: &[],
            ret: 0,
        };
        t.returned(11, "close", &c);
        assert_eq!(t.name(11, 9), None);
        assert_eq!(t.name(10, 9), Some("/etc/passwd"));
        let pipe = entry("pipe2", &["fildes", "flags"]);
        let mut fds = 6i32.to_le_bytes().to_vec();
        fds.extend_from_slice(&7i32.to_le_bytes());
        let out = s(0, k::STRUCT_OUT, &fds);
        let c = Call {
            entry: Some(&pipe),
            args: &[0x1000, 0],
            enter: &[],
            exit: &out,
            ret: 0,
        };
        t.returned(10, "pipe2", &c);
        assert_eq!(t.name(10, 6), Some("pipe:[read]"));
        assert_eq!(t.name(10, 7), Some("pipe:[write]"));
    }
}
