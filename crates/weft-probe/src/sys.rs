//! System calls made without the C library, for code that runs where the C
//! library must not be called: a fork child's handler, and the control
//! thread it starts (crate::child), which has no thread storage of its own.
//!
//! Each call returns the kernel's result or its errno as `Err`; none of
//! them touches `errno` (thread storage), allocates or takes a lock. On
//! x86-64 they are inline `syscall` instructions. Elsewhere a fork child
//! falls back to the setup that is not async-signal-safe
//! (docs/probe-buffers.md, D12); the calls the process's own control
//! thread makes (memory mappings, clocks) then go through the C library's
//! functions, and the rest, which only a fork child would make, through
//! `libc::syscall`.

use std::os::raw::c_long;

pub(crate) type SysResult = Result<usize, i32>;

/// Whether these calls avoid the C library entirely (see the module doc).
pub(crate) const RAW: bool = cfg!(target_arch = "x86_64");

#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn call(n: c_long, a: [usize; 6]) -> SysResult {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments of system call `n`; the
    // kernel clobbers only rax, rcx and r11.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if (-4095..0).contains(&ret) {
        Err(-ret as i32)
    } else {
        Ok(ret as usize)
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
unsafe fn call(n: c_long, a: [usize; 6]) -> SysResult {
    // SAFETY: as above; this path sets errno (see the module doc).
    let ret = unsafe { libc::syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if ret < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    } else {
        Ok(ret as usize)
    }
}

macro_rules! syscall {
    ($n:expr $(, $a:expr)* $(,)?) => {{
        let mut args = [0usize; 6];
        let given = [$($a as usize),*];
        args[..given.len()].copy_from_slice(&given);
        call($n as c_long, args)
    }};
}

pub(crate) fn getpid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { syscall!(libc::SYS_getpid) }.unwrap_or(0) as u32
}

pub(crate) fn gettid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { syscall!(libc::SYS_gettid) }.unwrap_or(0) as u32
}

pub(crate) fn geteuid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { syscall!(libc::SYS_geteuid) }.unwrap_or(0) as u32
}

pub(crate) fn close(fd: i32) {
    // SAFETY: closing a descriptor the caller owns.
    let _ = unsafe { syscall!(libc::SYS_close, fd) };
}

pub(crate) fn read(fd: i32, buf: &mut [u8]) -> SysResult {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    unsafe { syscall!(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) }
}

pub(crate) fn write(fd: i32, buf: &[u8]) -> SysResult {
    // SAFETY: the kernel reads buf.len() bytes from buf.
    unsafe { syscall!(libc::SYS_write, fd, buf.as_ptr(), buf.len()) }
}

/// Opens a NUL-terminated path (relative paths from the working directory).
pub(crate) fn open(path: &[u8], flags: i32) -> SysResult {
    if path.last() != Some(&0) {
        return Err(libc::EINVAL);
    }
    // SAFETY: path is NUL-terminated.
    unsafe { syscall!(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), flags, 0) }
}

/// Reads a whole small file (a /proc entry) into `buf`: the bytes read.
pub(crate) fn read_file(path: &[u8], buf: &mut [u8]) -> Option<usize> {
    let fd = open(path, libc::O_RDONLY | libc::O_CLOEXEC).ok()? as i32;
    let mut n = 0;
    while n < buf.len() {
        match read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(libc::EINTR) => {}
            Err(_) => {
                close(fd);
                return None;
            }
        }
    }
    close(fd);
    Some(n)
}

pub(crate) fn unlink(path: &[u8]) -> SysResult {
    if path.last() != Some(&0) {
        return Err(libc::EINVAL);
    }
    // SAFETY: path is NUL-terminated.
    unsafe { syscall!(libc::SYS_unlinkat, libc::AT_FDCWD, path.as_ptr(), 0) }
}

pub(crate) fn mkdir(path: &[u8], mode: u32) -> SysResult {
    if path.last() != Some(&0) {
        return Err(libc::EINVAL);
    }
    // SAFETY: path is NUL-terminated.
    unsafe { syscall!(libc::SYS_mkdirat, libc::AT_FDCWD, path.as_ptr(), mode) }
}

/// (mode, owner uid) of a path, not following a final symlink.
pub(crate) fn lstat(path: &[u8]) -> Option<(u32, u32)> {
    if path.last() != Some(&0) {
        return None;
    }
    // SAFETY: an all-zero stat is valid to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated; the kernel writes one struct stat
    // (x86-64's layout is the C library's; elsewhere this is not called).
    unsafe {
        syscall!(
            libc::SYS_newfstatat,
            libc::AT_FDCWD,
            path.as_ptr(),
            &mut st as *mut libc::stat,
            libc::AT_SYMLINK_NOFOLLOW
        )
    }
    .ok()?;
    Some((st.st_mode, st.st_uid))
}

pub(crate) fn chmod(path: &[u8], mode: u32) -> SysResult {
    if path.last() != Some(&0) {
        return Err(libc::EINVAL);
    }
    // SAFETY: path is NUL-terminated.
    unsafe { syscall!(libc::SYS_fchmodat, libc::AT_FDCWD, path.as_ptr(), mode, 0) }
}

pub(crate) fn socket(domain: i32, ty: i32) -> SysResult {
    // SAFETY: no memory arguments.
    unsafe { syscall!(libc::SYS_socket, domain, ty, 0) }
}

pub(crate) fn bind_unix(fd: i32, addr: &libc::sockaddr_un) -> SysResult {
    // SAFETY: addr is a whole sockaddr_un.
    unsafe {
        syscall!(
            libc::SYS_bind,
            fd,
            addr as *const libc::sockaddr_un,
            std::mem::size_of::<libc::sockaddr_un>()
        )
    }
}

pub(crate) fn listen(fd: i32, backlog: i32) -> SysResult {
    // SAFETY: no memory arguments.
    unsafe { syscall!(libc::SYS_listen, fd, backlog) }
}

pub(crate) fn accept(fd: i32, flags: i32) -> SysResult {
    // SAFETY: no peer address asked for.
    unsafe { syscall!(libc::SYS_accept4, fd, 0, 0, flags) }
}

/// The peer's credentials (SO_PEERCRED), as the kernel recorded them.
pub(crate) fn peer_cred(fd: i32) -> Result<libc::ucred, i32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into cred.
    unsafe {
        syscall!(
            libc::SYS_getsockopt,
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred,
            &mut len as *mut libc::socklen_t
        )
    }?;
    Ok(cred)
}

/// One `recvmsg` into `buf`: the bytes read. The first descriptor passed
/// (SCM_RIGHTS) lands in `passed` if that holds none yet; any other is
/// closed.
pub(crate) fn recv_fds(fd: i32, buf: &mut [u8], flags: i32, passed: &mut i32) -> SysResult {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid; the pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg);
    // SAFETY: msg points at buf and cmsg, both live for the call.
    let n = unsafe { syscall!(libc::SYS_recvmsg, fd, &mut msg as *mut libc::msghdr, flags) }?;
    // SAFETY: walking the control messages the kernel wrote into cmsg; the
    // CMSG_* helpers are pointer arithmetic, not C library calls.
    unsafe {
        let mut h = libc::CMSG_FIRSTHDR(&msg);
        while !h.is_null() {
            if (*h).cmsg_level == libc::SOL_SOCKET && (*h).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(h) as *const i32;
                let count = ((*h).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..count {
                    let got = std::ptr::read_unaligned(data.add(i));
                    if *passed < 0 {
                        *passed = got;
                    } else {
                        close(got);
                    }
                }
            }
            h = libc::CMSG_NXTHDR(&msg, h);
        }
    }
    Ok(n)
}

pub(crate) fn send(fd: i32, buf: &[u8], flags: i32) -> SysResult {
    // SAFETY: the kernel reads buf.len() bytes from buf; no address.
    unsafe { syscall!(libc::SYS_sendto, fd, buf.as_ptr(), buf.len(), flags, 0, 0) }
}

/// Waits for events on `fds`, at most `timeout_ns` (None: no limit).
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ns: Option<u64>) -> SysResult {
    // The kernel writes the time left back into it.
    let mut ts = timeout_ns.map(|ns| libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    });
    let tsp = ts.as_mut().map_or(std::ptr::null_mut(), |t| t as *mut libc::timespec);
    // SAFETY: fds and the optional timespec are valid for the call.
    unsafe { syscall!(libc::SYS_ppoll, fds.as_mut_ptr(), fds.len(), tsp, 0, 8) }
}

/// A pipe: (read end, write end).
pub(crate) fn pipe(flags: i32) -> Result<(i32, i32), i32> {
    let mut fds = [-1i32; 2];
    // SAFETY: the kernel writes two descriptors.
    unsafe { syscall!(libc::SYS_pipe2, fds.as_mut_ptr(), flags) }?;
    Ok((fds[0], fds[1]))
}

/// The calls the process's own control thread makes too: direct on x86-64,
/// through the C library's functions elsewhere (see the module doc).
#[cfg(target_arch = "x86_64")]
mod shared {
    use super::*;

    /// CLOCK_MONOTONIC in nanoseconds.
    pub(crate) fn now_ns() -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: the kernel writes one timespec.
        let _ = unsafe {
            syscall!(
                libc::SYS_clock_gettime,
                libc::CLOCK_MONOTONIC,
                &mut ts as *mut libc::timespec
            )
        };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    pub(crate) fn sleep_ns(ns: u64) {
        let ts = libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: reads one timespec; no remainder asked for.
        let _ = unsafe {
            syscall!(
                libc::SYS_clock_nanosleep,
                libc::CLOCK_MONOTONIC,
                0,
                &ts as *const libc::timespec,
                0
            )
        };
    }

    /// # Safety
    /// As mmap(2): a `MAP_FIXED` mapping replaces whatever was at `addr`.
    pub(crate) unsafe fn mmap(addr: usize, len: usize, prot: i32, flags: i32, fd: i32) -> SysResult {
        // SAFETY: as the caller vouches.
        unsafe { syscall!(libc::SYS_mmap, addr, len, prot, flags, fd, 0) }
    }

    /// # Safety
    /// Nothing may use the range afterwards.
    pub(crate) unsafe fn munmap(addr: usize, len: usize) -> SysResult {
        // SAFETY: as the caller vouches.
        unsafe { syscall!(libc::SYS_munmap, addr, len) }
    }

    /// # Safety
    /// As mprotect(2): code using the range must expect the new protection.
    pub(crate) unsafe fn mprotect(addr: usize, len: usize, prot: i32) -> SysResult {
        // SAFETY: as the caller vouches.
        unsafe { syscall!(libc::SYS_mprotect, addr, len, prot) }
    }

    /// # Safety
    /// As madvise(2) for the advice given.
    pub(crate) unsafe fn madvise(addr: usize, len: usize, advice: i32) -> SysResult {
        // SAFETY: as the caller vouches.
        unsafe { syscall!(libc::SYS_madvise, addr, len, advice) }
    }

    /// Maps the pages of `[addr, addr + len)` into this process's page
    /// tables (`MADV_POPULATE_WRITE`), as a hint: errors (a kernel before
    /// 5.14, read-only pages) are ignored, and `errno` is left alone, since
    /// a write in a signal handler comes here.
    ///
    /// # Safety
    /// The range must be memory of ours that may be written.
    pub(crate) unsafe fn populate(addr: usize, len: usize) {
        let start = addr & !(weft_probe_abi::layout::PAGE - 1);
        // SAFETY: as the caller vouches; the raw call sets no errno.
        let _ = unsafe { madvise(start, addr + len - start, libc::MADV_POPULATE_WRITE) };
    }

    /// The size of the file behind `fd`.
    pub(crate) fn file_size(fd: i32) -> Result<u64, i32> {
        // SAFETY: an all-zero stat is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: the kernel writes one struct stat, whose x86-64 layout is
        // the C library's.
        unsafe { syscall!(libc::SYS_fstat, fd, &mut st as *mut libc::stat) }?;
        Ok(st.st_size as u64)
    }

    /// The (device, inode) of the file behind `fd`: whether a descriptor
    /// number still refers to what it did.
    pub(crate) fn identity(fd: i32) -> Option<(u64, u64)> {
        // SAFETY: as in `file_size`.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as in `file_size`.
        unsafe { syscall!(libc::SYS_fstat, fd, &mut st as *mut libc::stat) }.ok()?;
        Some((st.st_dev, st.st_ino))
    }

    pub(crate) fn seals(fd: i32) -> SysResult {
        // SAFETY: no memory arguments.
        unsafe { syscall!(libc::SYS_fcntl, fd, libc::F_GET_SEALS) }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod shared {
    use super::SysResult;

    fn ret(r: libc::c_long) -> SysResult {
        if r < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
        } else {
            Ok(r as usize)
        }
    }

    pub(crate) fn now_ns() -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: writes one timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    pub(crate) fn sleep_ns(ns: u64) {
        std::thread::sleep(std::time::Duration::from_nanos(ns));
    }

    /// # Safety
    /// As mmap(2).
    pub(crate) unsafe fn mmap(addr: usize, len: usize, prot: i32, flags: i32, fd: i32) -> SysResult {
        // SAFETY: as the caller vouches.
        let p = unsafe { libc::mmap(addr as *mut libc::c_void, len, prot, flags, fd, 0) };
        if p == libc::MAP_FAILED {
            ret(-1)
        } else {
            Ok(p as usize)
        }
    }

    /// # Safety
    /// Nothing may use the range afterwards.
    pub(crate) unsafe fn munmap(addr: usize, len: usize) -> SysResult {
        // SAFETY: as the caller vouches.
        ret(unsafe { libc::munmap(addr as *mut libc::c_void, len) } as libc::c_long)
    }

    /// # Safety
    /// As mprotect(2).
    pub(crate) unsafe fn mprotect(addr: usize, len: usize, prot: i32) -> SysResult {
        // SAFETY: as the caller vouches.
        ret(unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot) } as libc::c_long)
    }

    /// # Safety
    /// As madvise(2).
    pub(crate) unsafe fn madvise(addr: usize, len: usize, advice: i32) -> SysResult {
        // SAFETY: as the caller vouches.
        ret(unsafe { libc::madvise(addr as *mut libc::c_void, len, advice) } as libc::c_long)
    }

    /// As the x86-64 `populate`; the C library's call sets `errno` on
    /// failure, so it is saved and put back.
    ///
    /// # Safety
    /// As the x86-64 `populate`.
    pub(crate) unsafe fn populate(addr: usize, len: usize) {
        // SAFETY: __errno_location is this thread's errno, always valid.
        let errno = unsafe { *libc::__errno_location() };
        // Pages may be larger than the layout's 4 KiB here.
        // SAFETY: sysconf reads a value the kernel gave at exec.
        let page = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as usize;
        let start = addr & !(page - 1);
        // SAFETY: as the caller vouches.
        let _ = unsafe { madvise(start, addr + len - start, libc::MADV_POPULATE_WRITE) };
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }

    pub(crate) fn file_size(fd: i32) -> Result<u64, i32> {
        // SAFETY: an all-zero stat is valid to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes one struct stat.
        ret(unsafe { libc::fstat(fd, &mut st) } as libc::c_long)?;
        Ok(st.st_size as u64)
    }

    pub(crate) fn identity(fd: i32) -> Option<(u64, u64)> {
        // SAFETY: as in `file_size`.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as in `file_size`.
        ret(unsafe { libc::fstat(fd, &mut st) } as libc::c_long).ok()?;
        Some((st.st_dev as u64, st.st_ino as u64))
    }

    pub(crate) fn seals(fd: i32) -> SysResult {
        // SAFETY: no memory arguments.
        ret(unsafe { libc::fcntl(fd, libc::F_GET_SEALS) } as libc::c_long)
    }
}

pub(crate) use shared::*;

/// Gives the calling thread (only) these credentials: groups, then group
/// ids, then user ids, then capabilities (each step needs the rights the
/// next may take away). Keeps the process's dumpable flag, which the
/// kernel resets when a thread's credentials change.
pub(crate) fn set_credentials(c: &crate::creds::Creds) {
    // SAFETY: prctl without memory arguments.
    let dumpable = unsafe { syscall!(libc::SYS_prctl, libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    let (n, list) = match c.ngroups {
        Some(n) => (n.min(c.groups.len()), c.groups.as_ptr()),
        // More than we follow: none (the safe direction).
        None => (0, c.groups.as_ptr()),
    };
    // SAFETY: the kernel reads `n` group ids from `list`; the others take
    // no memory; each changes this thread only.
    unsafe {
        let _ = syscall!(libc::SYS_setgroups, n, list);
        let _ = syscall!(libc::SYS_setresgid, c.gid[0], c.gid[1], c.gid[2]);
        let _ = syscall!(libc::SYS_setresuid, c.uid[0], c.uid[1], c.uid[2]);
    }
    // _LINUX_CAPABILITY_VERSION_3: a header, then two structs of
    // (effective, permitted, inheritable) 32-bit words, low then high.
    let mut header: [u32; 2] = [0x2008_0522, 0];
    let [inh, prm, eff] = c.caps;
    let data: [u32; 6] = [
        eff as u32,
        prm as u32,
        inh as u32,
        (eff >> 32) as u32,
        (prm >> 32) as u32,
        (inh >> 32) as u32,
    ];
    // SAFETY: the kernel reads the header (and may write its version) and
    // two data structs.
    let _ = unsafe { syscall!(libc::SYS_capset, header.as_mut_ptr(), data.as_ptr()) };
    if let Ok(d) = dumpable {
        // SAFETY: prctl without memory arguments.
        let _ = unsafe { syscall!(libc::SYS_prctl, libc::PR_SET_DUMPABLE, d, 0, 0, 0) };
    }
}

/// Names the calling thread (at most 15 bytes and a NUL).
pub(crate) fn set_thread_name(name: &[u8]) {
    if name.last() != Some(&0) || name.len() > 16 {
        return;
    }
    // SAFETY: the kernel reads a NUL-terminated name of at most 16 bytes.
    let _ = unsafe { syscall!(libc::SYS_prctl, libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
}

/// The calling task's alternate signal stack (base, size) and whether it
/// runs on it now (`SS_ONSTACK`); None if it has none (or the call failed).
pub(crate) fn alt_stack() -> Option<(u64, u64, bool)> {
    // SAFETY: an all-zero stack_t is valid; the kernel writes the current one.
    let mut ss: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: no new stack given, the old one written into `ss`.
    unsafe { syscall!(libc::SYS_sigaltstack, 0usize, &mut ss as *mut libc::stack_t) }.ok()?;
    if ss.ss_flags & libc::SS_DISABLE != 0 {
        return None;
    }
    Some((ss.ss_sp as u64, ss.ss_size as u64, ss.ss_flags & libc::SS_ONSTACK != 0))
}

/// Sets the calling thread's signal mask, returning the old one.
pub(crate) fn set_sigmask(mask: u64) -> u64 {
    let mut old = 0u64;
    // SAFETY: 8-byte kernel sigsets in and out.
    let _ = unsafe {
        syscall!(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &mask as *const u64,
            &mut old as *mut u64,
            8
        )
    };
    old
}

/// Starts a thread that the C library does not know about: it runs
/// `entry(arg)` on the stack whose top is `stack_top` (16-byte aligned),
/// with `tls` as its thread pointer, and must end with `exit_thread`.
///
/// # Safety
/// The stack must be mapped, writable and used by nothing else; `entry`
/// must not use the C library, thread storage or the allocator.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn spawn(stack_top: usize, tls: usize, entry: extern "C" fn(usize) -> !, arg: usize) -> SysResult {
    let flags = libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS;
    let ret: isize;
    // SAFETY: clone(2) with the caller's stack; the new thread never comes
    // back into this frame (it calls `entry`, which does not return), and in
    // the calling thread only rax, rcx and r11 change.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone as isize => ret,
            in("rdi") flags as usize,
            in("rsi") stack_top,
            in("rdx") 0usize,
            in("r10") 0usize,
            in("r8") tls,
            in("r12") entry as usize,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    if (-4095..0).contains(&ret) {
        Err(-ret as i32)
    } else {
        Ok(ret as usize)
    }
}

/// Ends the process with `code`, as the kernel's exit_group (no atexit
/// handler runs).
pub(crate) fn exit_group(code: i32) -> ! {
    loop {
        // SAFETY: exit_group(2); nothing runs after it.
        let _ = unsafe { syscall!(libc::SYS_exit_group, code) };
    }
}

/// Ends the calling thread only (not the process).
pub(crate) fn exit_thread() -> ! {
    loop {
        // SAFETY: exit(2) of this thread; nothing runs after it.
        let _ = unsafe { syscall!(libc::SYS_exit, 0) };
    }
}
