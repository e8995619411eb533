//! Arbitrary `data` bytes of a syscall record (a damaged or hostile trace):
//! rendering them for every syscall whose arguments weft decodes never
//! panics, and the fd tables of `dump -y` take whatever they say.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_format::SyscallEntry;

/// (syscall, its arguments as tracefs names them and their C types).
const CALLS: &[(&str, &[(&str, &str)])] = &[
    ("openat", &[("int", "dfd"), ("const char *", "filename"), ("int", "flags"), ("umode_t", "mode")]),
    ("read", &[("unsigned int", "fd"), ("char *", "buf"), ("size_t", "count")]),
    ("execve", &[("const char *", "filename"), ("const char *const *", "argv"), ("const char *const *", "envp")]),
    ("connect", &[("int", "fd"), ("struct sockaddr *", "uservaddr"), ("int", "addrlen")]),
    ("newfstatat", &[("int", "dfd"), ("const char *", "filename"), ("struct stat *", "statbuf"), ("int", "flag")]),
    ("statx", &[("int", "dfd"), ("const char *", "filename"), ("unsigned", "flags"), ("unsigned int", "mask"), ("struct statx *", "buffer")]),
    ("sendmsg", &[("int", "fd"), ("struct user_msghdr *", "msg"), ("unsigned int", "flags")]),
    ("getdents64", &[("unsigned int", "fd"), ("struct linux_dirent64 *", "dirent"), ("unsigned int", "count")]),
    ("poll", &[("struct pollfd *", "ufds"), ("unsigned int", "nfds"), ("int", "timeout_msecs")]),
    ("wait4", &[("pid_t", "upid"), ("int *", "stat_addr"), ("int", "options"), ("struct rusage *", "ru")]),
    ("rt_sigaction", &[("int", "sig"), ("const struct sigaction *", "act"), ("struct sigaction *", "oact"), ("size_t", "sigsetsize")]),
    ("uname", &[("struct new_utsname *", "name")]),
    ("clone3", &[("struct clone_args *", "uargs"), ("size_t", "size")]),
    ("pipe2", &[("int *", "fildes"), ("int", "flags")]),
    ("writev", &[("unsigned long", "fd"), ("const struct iovec *", "vec"), ("unsigned long", "vlen")]),
    ("fcntl", &[("unsigned int", "fd"), ("unsigned int", "cmd"), ("unsigned long", "arg")]),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let (name, args) = CALLS[pick as usize % CALLS.len()];
    let entry = SyscallEntry::new(0, name, args);
    let values: Vec<u64> = rest.chunks(8).take(6).map(|c| c.iter().fold(0, |a, &b| a << 8 | u64::from(b))).collect();
    let (enter, exit) = rest.split_at(rest.len() / 2);
    let _ = weft_analysis::format_call_args(Some(&entry), &values, enter, exit);
    let mut fds = weft_analysis::fds::FdTables::default();
    let call = weft_analysis::fds::Call { entry: Some(&entry), args: &values, enter, exit, ret: 3 };
    let _ = fds.returned(1, name, &call);
});
