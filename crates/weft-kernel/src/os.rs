//! Small pieces of the operating system a recorder needs besides tracing:
//! process handles, exit statuses, signals, limits, the machine's name.
//! Wrapped here so that front ends hold no `unsafe`.

use std::os::fd::{FromRawFd, OwnedFd};

/// A pidfd for `pid` (readable once it exits), or None if it is gone.
pub fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as i32;
    // SAFETY: a non-negative return is a fresh descriptor we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits for our child `pid` (at once if `block` is false): its wait status,
/// or None if it has not exited (or is not ours).
pub fn reap(pid: u32, block: bool) -> Option<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for a child, writing its status into a local.
        let r = unsafe { libc::waitpid(pid as i32, &mut status, if block { 0 } else { libc::WNOHANG }) };
        if r == pid as i32 {
            return Some(status);
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
}

/// Sends `sig` to `pid` (best effort: it may be gone).
pub fn send_signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid as i32, sig) };
}

/// CPU time (user + system) this process used so far, in seconds.
pub fn cpu_time() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Sets this process's niceness. Best effort: without CAP_SYS_NICE the
/// kernel refuses a lower value, and the process keeps what it had.
pub fn set_niceness(nice: i32) {
    // SAFETY: setpriority on the calling process (who = 0) has no memory preconditions.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
}

/// Makes the calling thread's timed waits end on time: by default Linux
/// may end them up to 50 µs late to batch wake-ups, a fifth of the drain
/// loop's shortest tick. Best effort.
pub fn precise_timers() {
    // SAFETY: prctl(PR_SET_TIMERSLACK) on the calling thread, 1 µs.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
}

/// Runs the calling thread under SCHED_FIFO (priority 1, the lowest
/// real-time one) or, with `on` false, back under the normal policy with
/// short slices. A real-time thread woken by its timer runs at once; a
/// normal one, even at niceness -10 with short slices, was seen here to
/// wait 1 to 5 ms for a CPU busy with the traced program's writer and the
/// trace writer thread, as long as a default probe ring takes to
/// overflow. False if the kernel refused (no CAP_SYS_NICE, or an RT
/// budget of 0 in the caller's cgroup).
pub fn realtime_thread(on: bool) -> bool {
    if !on {
        short_slices(std::time::Duration::from_micros(100));
        return true;
    }
    let p = libc::sched_param { sched_priority: 1 };
    // Threads and processes it starts (attach threads, the hand-off child)
    // get the normal policy, not real-time priority.
    // SAFETY: sched_setscheduler on the calling thread with a valid sched_param.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &p) == 0 }
}

/// Asks the scheduler for short time slices for the calling thread (Linux
/// 6.12 and later; ignored before): under EEVDF a thread woken on a CPU
/// busy with another runs once the other's slice is over, up to a few
/// milliseconds later, and a drain that late lets a fast ring overflow. A
/// short slice gives the woken thread an earlier deadline, so it runs at
/// once. Keeps the thread's niceness. Best effort.
pub fn short_slices(slice: std::time::Duration) {
    set_policy(libc::SCHED_OTHER, slice);
}

/// Lets the calling thread wait, when it wakes, for the thread running on
/// the CPU to finish its slice instead of preempting it (SCHED_BATCH), or
/// (`on` false) puts it back under the normal policy with short slices.
/// For a drain that has time: its wake-ups then cost the traced program
/// nothing. Keeps the thread's niceness. Best effort.
pub fn batch_thread(on: bool) {
    if on {
        set_policy(libc::SCHED_BATCH, std::time::Duration::ZERO);
    } else {
        short_slices(std::time::Duration::from_micros(100));
    }
}

/// sched_setattr of the calling thread: `policy` (SCHED_OTHER or
/// SCHED_BATCH) at its niceness, with `slice` (0: the default).
fn set_policy(policy: i32, slice: std::time::Duration) {
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    // SAFETY: getpriority on the calling thread.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: slice.as_nanos().min(u128::from(u64::MAX)) as u64,
        deadline: 0,
        period: 0,
    };
    // SAFETY: sched_setattr(pid 0 = this thread, a valid attr of its declared size, flags 0).
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
}

/// Puts the calling thread at the lowest priority (see
/// `idle_thread_again`); returns its thread id.
pub fn idle_thread() -> u32 {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() as u32 };
    idle_thread_again(tid);
    tid
}

/// Puts thread `tid` of this process under SCHED_IDLE: it runs only on a
/// CPU nothing else wants. The scheduler also counts a CPU running only
/// such threads as idle when it places a waking thread, so the draining
/// thread wakes there instead of behind the traced program on its CPU
/// (at niceness 19 instead, the drain was seen placed beside a flat-out
/// writer, halving its speed in some runs). It gets nothing while every
/// CPU is busy: the recorder gives it a normal priority back when its
/// chunks have waited too long (`normal_thread`), which needs
/// CAP_SYS_NICE; without it, niceness 19 (which it can leave for 0 with
/// the same privilege only, but still gets some CPU).
pub fn idle_thread_again(tid: u32) {
    // The kernel gives a SCHED_IDLE thread's I/O the idle class, which a
    // busy disk may never serve: the trace's writeback (`start_writeback`)
    // keeps the normal best-effort class, at its default level.
    const IOPRIO_WHO_PROCESS: i32 = 1;
    const IOPRIO_BEST_EFFORT_4: i32 = 2 << 13 | 4;
    // SAFETY: ioprio_set takes plain integers; a tid that is gone is an error, no more.
    unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            tid as i32,
            IOPRIO_BEST_EFFORT_4,
        )
    };
    if has_cap_sys_nice() {
        let p = libc::sched_param { sched_priority: 0 };
        // SAFETY: p is a valid sched_param; a tid that is gone is an error, no more.
        unsafe { libc::sched_setscheduler(tid as i32, libc::SCHED_IDLE, &p) };
    } else {
        // SAFETY: setpriority on a thread of ours; a tid that is gone is an error, no more.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 19) };
    }
}

/// CAP_SYS_NICE in this process's effective set (/proc/self/status).
fn has_cap_sys_nice() -> bool {
    /// linux/capability.h
    const CAP_SYS_NICE: u32 = 23;
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim().to_owned();
                u64::from_str_radix(&hex, 16).ok()
            })
            .is_some_and(|caps| caps & (1 << CAP_SYS_NICE) != 0)
    })
}

/// Gives thread `tid` of this process the normal policy back, with
/// niceness `nice` (None: this thread's).
pub fn normal_thread(tid: u32, nice: Option<i32>) {
    let p = libc::sched_param { sched_priority: 0 };
    // SAFETY: p is a valid sched_param; a tid that is gone is an error, no more.
    unsafe {
        let nice = nice.unwrap_or_else(|| libc::getpriority(libc::PRIO_PROCESS, 0));
        libc::sched_setscheduler(tid as i32, libc::SCHED_OTHER, &p);
        libc::setpriority(libc::PRIO_PROCESS, tid, nice);
    }
}

/// Starts writing the file's dirty pages before offset `upto` back to its
/// device, in the calling thread, without waiting for them to be written
/// (the call may still wait for room in the device's queue): called by a
/// low-priority thread that writes fast, the work runs at its priority,
/// and dirty pages do not pile up until the kernel throttles every writer
/// of the process. Stop before a partial last page: on a filesystem with
/// stable pages, the next append would wait for that page's write.
pub fn start_writeback(fd: std::os::fd::BorrowedFd<'_>, upto: u64) {
    use std::os::fd::AsRawFd;
    if upto == 0 {
        return;
    }
    // SAFETY: sync_file_range reads no memory of ours. A failure (a pipe,
    // say) leaves writeback to the kernel.
    let _ = unsafe { libc::sync_file_range(fd.as_raw_fd(), 0, upto as i64, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Stops transparent huge pages for this process's future memory. Faulting
/// in a fresh 2 MiB page stops a thread for hundreds of microseconds, long
/// enough for a fast probe ring to overflow meanwhile; 4 KiB faults spread
/// the same work out. Inherited by children forked after this call.
pub fn no_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Bytes of RAM in the machine (0 if unknown).
pub fn total_memory() -> u64 {
    // SAFETY: sysinfo fills the struct it is given.
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: si is a valid, writable sysinfo.
    if unsafe { libc::sysinfo(&mut si) } != 0 {
        return 0;
    }
    (si.totalram as u64).saturating_mul(u64::from(si.mem_unit))
}

/// Raises the soft limit on open descriptors to the hard one (a recorder
/// opens several events per CPU and per traced task).
pub fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on our own process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// This machine's host name, kernel release and architecture (uname).
pub fn uname() -> (String, String, String) {
    // SAFETY: uname fills the zeroed struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Default::default();
    }
    let s = |f: &[libc::c_char]| {
        let b: Vec<u8> = f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    (s(&u.nodename), s(&u.release), s(&u.machine))
}

/// This process's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Restores the default action of SIGPIPE, so that a reader writing into a
/// closed pipe (`weft dump | head`) ends quietly, as Unix tools do.
pub fn default_sigpipe() {
    // SAFETY: setting the disposition of SIGPIPE before any output.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// Makes a FIFO at `path` (mode 0600).
pub fn mkfifo(path: &std::path::Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: mkfifo on a NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Clock ticks per second (`_SC_CLK_TCK`), the unit of /proc start times.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64
}

/// Time the machine spent suspended since boot: CLOCK_BOOTTIME minus
/// CLOCK_MONOTONIC, in nanoseconds.
pub fn suspended_ns() -> u64 {
    crate::clock_ns(libc::CLOCK_BOOTTIME).saturating_sub(crate::monotonic_ns())
}

/// An eventfd: one thread says something is ready, a waiting loop (which
/// watches `fd` with its epoll) wakes up.
pub struct Wake(std::os::fd::OwnedFd);

impl Wake {
    pub fn new() -> std::io::Result<Wake> {
        use std::os::fd::FromRawFd;
        // SAFETY: eventfd with plain flags returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is fresh and ours.
        Ok(Wake(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }

    pub fn notify(&self) {
        let one = 1u64;
        // SAFETY: writing 8 bytes from a u64 to our eventfd.
        unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears it (after the loop woke).
    pub fn clear(&self) {
        let mut v = 0u64;
        // SAFETY: reading 8 bytes into a u64 from our non-blocking eventfd.
        unsafe { libc::read(self.fd(), (&mut v as *mut u64).cast(), 8) };
    }
}
