//! The machine's system calls (numbers from the architecture table, names and
//! arguments from tracefs) and the user's `--syscalls` selection.

use std::collections::BTreeSet;

use globset::Glob;
use syscalls::Sysno;
use weft_format::{SyscallArg, SyscallEntry, SyscallTable};

use crate::error::{KernelError, Result};
use crate::tracefs::Tracefs;

/// Builds the syscall table of this machine. Syscalls without a tracepoint
/// get six anonymous arguments so that nothing recorded is hidden.
pub fn syscall_table(tfs: &Tracefs) -> SyscallTable {
    let all: Vec<Sysno> = Sysno::iter().collect();
    // Reading ~400 tracefs format files is most of weft record's start-up;
    // the kernel renders each one, so spread them over the CPUs.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let per = all.len().div_ceil(threads).max(1);
    let mut entries: Vec<SyscallEntry> = std::thread::scope(|sc| {
        let parts: Vec<_> = all
            .chunks(per)
            .map(|part| sc.spawn(move || part.iter().map(|&s| syscall_entry(tfs, s)).collect::<Vec<_>>()))
            .collect();
        parts.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    entries.sort_by_key(|e| e.nr);
    SyscallTable::new(entries)
}

fn syscall_entry(tfs: &Tracefs, s: Sysno) -> SyscallEntry {
    let name = s.name().to_owned();
    // The kernel names these tracepoints after its `new*` entry points.
    let tp = match name.as_str() {
        "stat" | "fstat" | "lstat" | "uname" => format!("new{name}"),
        _ => name.clone(),
    };
    let args = match tfs.event_format("syscalls", &format!("sys_enter_{tp}")) {
        Ok(f) => f
            .fields
            .iter()
            .filter(|f| f.name != "__syscall_nr")
            .map(|f| SyscallArg {
                ctype: f.ctype.clone(),
                name: f.name.clone(),
            })
            .collect(),
        Err(_) => (0..6)
            .map(|i| SyscallArg {
                ctype: "unsigned long".into(),
                name: format!("arg{i}"),
            })
            .collect(),
    };
    SyscallEntry {
        nr: s.id() as u32,
        name,
        args,
    }
}

/// Named groups of syscalls, as strace's `%class` sets.
pub const CLASSES: &[(&str, &str, &[&str])] = &[
    (
        "memory",
        "address-space changes",
        &[
            "mmap",
            "munmap",
            "mprotect",
            "mremap",
            "madvise",
            "brk",
            "msync",
            "mlock",
            "mlock2",
            "munlock",
            "mlockall",
            "munlockall",
            "mincore",
            "pkey_mprotect",
            "pkey_alloc",
            "pkey_free",
            "remap_file_pages",
            "process_madvise",
            "mseal",
            "map_shadow_stack",
            "mbind",
            "set_mempolicy",
            "get_mempolicy",
            "migrate_pages",
            "move_pages",
            "set_mempolicy_home_node",
            "userfaultfd",
            "memfd_create",
            "memfd_secret",
            "shmat",
            "shmdt",
        ],
    ),
    (
        "file",
        "calls that take a file name",
        &[
            "open",
            "openat",
            "openat2",
            "creat",
            "stat",
            "lstat",
            "newfstatat",
            "statx",
            "access",
            "faccessat",
            "faccessat2",
            "readlink",
            "readlinkat",
            "unlink",
            "unlinkat",
            "rename",
            "renameat",
            "renameat2",
            "mkdir",
            "mkdirat",
            "rmdir",
            "chdir",
            "chroot",
            "chmod",
            "fchmodat",
            "fchmodat2",
            "chown",
            "lchown",
            "fchownat",
            "truncate",
            "link",
            "linkat",
            "symlink",
            "symlinkat",
            "utime",
            "utimes",
            "utimensat",
            "futimesat",
            "execve",
            "execveat",
            "mknod",
            "mknodat",
            "statfs",
            "getxattr",
            "lgetxattr",
            "setxattr",
            "lsetxattr",
            "listxattr",
            "llistxattr",
            "removexattr",
            "lremovexattr",
            "mount",
            "umount2",
            "pivot_root",
            "swapon",
            "swapoff",
            "name_to_handle_at",
            "inotify_add_watch",
            "fanotify_mark",
            "quotactl",
            "acct",
            "uselib",
        ],
    ),
    (
        "desc",
        "calls on file descriptors",
        &[
            "read",
            "write",
            "pread64",
            "pwrite64",
            "readv",
            "writev",
            "preadv",
            "pwritev",
            "preadv2",
            "pwritev2",
            "close",
            "close_range",
            "dup",
            "dup2",
            "dup3",
            "fcntl",
            "ioctl",
            "lseek",
            "pipe",
            "pipe2",
            "poll",
            "ppoll",
            "select",
            "pselect6",
            "epoll_create",
            "epoll_create1",
            "epoll_ctl",
            "epoll_wait",
            "epoll_pwait",
            "epoll_pwait2",
            "eventfd",
            "eventfd2",
            "sendfile",
            "splice",
            "tee",
            "vmsplice",
            "copy_file_range",
            "fstat",
            "fstatfs",
            "fsync",
            "fdatasync",
            "ftruncate",
            "fchmod",
            "fchown",
            "fchdir",
            "flock",
            "getdents",
            "getdents64",
            "fadvise64",
            "fallocate",
            "timerfd_create",
            "timerfd_settime",
            "timerfd_gettime",
            "signalfd",
            "signalfd4",
            "inotify_init",
            "inotify_init1",
            "pidfd_open",
            "pidfd_getfd",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
        ],
    ),
    (
        "process",
        "process lifecycle",
        &[
            "fork",
            "vfork",
            "clone",
            "clone3",
            "execve",
            "execveat",
            "exit",
            "exit_group",
            "wait4",
            "waitid",
            "kill",
            "tkill",
            "tgkill",
            "pidfd_send_signal",
            "prctl",
            "arch_prctl",
            "unshare",
            "setns",
            "ptrace",
            "set_tid_address",
            "setsid",
            "setpgid",
            "getpid",
            "getppid",
            "gettid",
        ],
    ),
    (
        "signal",
        "signal handling",
        &[
            "rt_sigaction",
            "rt_sigprocmask",
            "rt_sigreturn",
            "rt_sigsuspend",
            "rt_sigpending",
            "rt_sigtimedwait",
            "rt_sigqueueinfo",
            "rt_tgsigqueueinfo",
            "sigaltstack",
            "kill",
            "tkill",
            "tgkill",
            "signalfd",
            "signalfd4",
            "pause",
            "pidfd_send_signal",
            "restart_syscall",
        ],
    ),
    (
        "network",
        "sockets",
        &[
            "socket",
            "socketpair",
            "bind",
            "listen",
            "accept",
            "accept4",
            "connect",
            "getsockname",
            "getpeername",
            "sendto",
            "recvfrom",
            "sendmsg",
            "recvmsg",
            "sendmmsg",
            "recvmmsg",
            "shutdown",
            "setsockopt",
            "getsockopt",
        ],
    ),
    (
        "ipc",
        "System V and POSIX IPC",
        &[
            "msgget",
            "msgsnd",
            "msgrcv",
            "msgctl",
            "semget",
            "semop",
            "semtimedop",
            "semctl",
            "shmget",
            "shmat",
            "shmdt",
            "shmctl",
            "mq_open",
            "mq_unlink",
            "mq_timedsend",
            "mq_timedreceive",
            "mq_notify",
            "mq_getsetattr",
        ],
    ),
];

/// Resolves a `--syscalls` list of names, globs (`mmap*`) and classes
/// (`memory`, `%file`) to syscall numbers.
pub fn select(spec: &str, table: &SyscallTable) -> Result<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bare = item.trim_start_matches('%');
        if let Some((_, _, names)) = CLASSES.iter().find(|(c, _, _)| *c == bare) {
            out.extend(names.iter().filter_map(|n| lookup(table, n)));
        } else if item.contains(['*', '?', '[']) {
            let m = Glob::new(item)
                .map_err(|e| KernelError::BadPattern {
                    pattern: item.into(),
                    reason: e.to_string(),
                })?
                .compile_matcher();
            let before = out.len();
            out.extend(table.entries.iter().filter(|e| m.is_match(&e.name)).map(|e| e.nr));
            if out.len() == before {
                return Err(KernelError::UnknownSyscall {
                    name: item.into(),
                    suggestion: None,
                });
            }
        } else if let Some(nr) = lookup(table, item) {
            out.insert(nr);
        } else {
            return Err(KernelError::UnknownSyscall {
                name: item.into(),
                suggestion: suggest(item, table),
            });
        }
    }
    Ok(out)
}

fn lookup(table: &SyscallTable, name: &str) -> Option<u32> {
    table.entries.iter().find(|e| e.name == name).map(|e| e.nr)
}

fn suggest(name: &str, table: &SyscallTable) -> Option<String> {
    let names = table
        .entries
        .iter()
        .map(|e| e.name.as_str())
        .chain(CLASSES.iter().map(|c| c.0));
    names
        .map(|n| (edit_distance(name, n), n))
        .filter(|&(d, _)| d <= 2)
        .min()
        .map(|(_, n)| n.to_owned())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> SyscallTable {
        let e = |nr, name: &str| SyscallEntry {
            nr,
            name: name.into(),
            args: vec![],
        };
        SyscallTable::new(vec![
            e(9, "mmap"),
            e(10, "mprotect"),
            e(11, "munmap"),
            e(157, "prctl"),
            e(25, "mremap"),
        ])
    }

    #[test]
    fn names_globs_and_classes() {
        let t = table();
        assert_eq!(select("mmap,prctl", &t).unwrap(), BTreeSet::from([9, 157]));
        assert_eq!(select("m*map", &t).unwrap(), BTreeSet::from([9, 11, 25]));
        assert_eq!(select("%memory", &t).unwrap(), BTreeSet::from([9, 10, 11, 25]));
        match select("mmapp", &t) {
            Err(KernelError::UnknownSyscall { suggestion, .. }) => {
                assert_eq!(suggestion.as_deref(), Some("mmap"))
            }
            other => panic!("{other:?}"),
        }
    }
}
