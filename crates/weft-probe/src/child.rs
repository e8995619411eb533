//! A fork child's control socket and thread, set up async-signal-safely.
//!
//! The fork handler runs inside `fork()`, in the child, where only
//! async-signal-safe calls are allowed: `fork` may have been called from a
//! signal handler, and the parent's other threads may have held any lock
//! (the allocator's, stdio's, ours). So the handler binds the child's socket
//! with raw system calls (crate::sys) and starts the control thread with a
//! raw `clone`: on a stack it maps itself, with every signal blocked, and
//! with a thread pointer of its own whose neighbouring pages are not
//! mapped, so that any use of thread storage faults at once instead of
//! corrupting the forking thread's. The thread makes raw system calls only;
//! it reads and writes frames in static buffers that only it uses, and
//! takes no lock and allocates nothing.
//!
//! It answers what a collector sends (`Hello`, `Attach`, `Detach`, `Later`) and
//! announces events registered after an attach. Unlike the process's first
//! control thread (crate::listener, crate::announce), a thread registering
//! an event never sends the announcement itself: it wakes this thread,
//! which sends the new event list and then enables the new events.

use std::cell::UnsafeCell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use weft_probe_abi::control::{
    put_info_event, put_info_head, put_str, FrameBuf, Patterns, Request, Sink, MAX_FRAME, PROTOCOL_VERSION,
};
use weft_probe_abi::layout::PAGE;

use crate::held::Held;
use crate::listener::{CONN_FDS, LISTEN_FD, SOCKET, SOCKET_DIR};
use crate::session::{ATTACHES, USED};
use crate::sys;

const _: () = assert!(PROTOCOL_VERSION == 1, "the version error in `answer` names it");

/// This process's control thread is the one started here (a fork child).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Wakes the control thread: a pipe (each has an inode of its own, so a
/// number the program took over is told apart; eventfds share one).
static WAKE_R: Held = Held::new();
static WAKE_W: Held = Held::new();
/// Sessions to send the event list to, and then enable new events for.
static PENDING: AtomicU32 = AtomicU32::new(0);
static START_TIME: AtomicU64 = AtomicU64::new(0);
/// The child's effective uid at the fork.
static EUID: AtomicU32 = AtomicU32::new(0);

/// Connections served at once.
const CONNS: usize = 16;
/// The encoded pattern list an attach may carry.
const PATTERNS_MAX: usize = 4096;
const STACK: usize = 256 << 10;
/// Unmapped below the thread pointer, where static thread storage would be.
const TLS_GUARD: usize = 1 << 20;
/// A frame must arrive whole within this time once it started.
const READ_DEADLINE_NS: u64 = 2_000_000_000;
/// A reply must be read within this time (a collector gives a whole
/// exchange 1 s), and a pushed event list within the longer one (as the
/// process's own announcer allows a collector that is busy or stopped).
const REPLY_DEADLINE_NS: u64 = 2_000_000_000;
const WRITE_DEADLINE_NS: u64 = 10_000_000_000;

/// A buffer only the control thread uses.
struct Scratch<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: a process has at most one control thread started here, and only
// it touches these buffers (a fork child starts a new one with its copy).
unsafe impl<const N: usize> Sync for Scratch<N> {}

static RECV: Scratch<FRAME_IN> = Scratch(UnsafeCell::new([0; FRAME_IN]));
static SEND: Scratch<MAX_FRAME> = Scratch(UnsafeCell::new([0; MAX_FRAME]));

/// Whether this process's control thread is the one started here.
pub(crate) fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

/// In a fork child, before `start`: the parent's control thread, if it was
/// one of these, is not running here.
pub(crate) fn reset_after_fork() {
    ACTIVE.store(false, Ordering::Release);
    PENDING.store(0, Ordering::Release);
    WAKE_R.close_copy();
    WAKE_W.close_copy();
}

/// In the fork handler: binds the child's control socket next to the
/// parent's and starts its control thread. Async-signal-safe. False when
/// this architecture has no raw system calls (crate::sys) and the caller
/// must fall back.
/// What the fork handler could set up.
pub(crate) enum Started {
    /// No direct system calls here: the caller falls back.
    Unsupported,
    /// The child listens; a collector may attach.
    Listening,
    /// No socket (the parent had none, or no directory would take one).
    Unreachable,
}

/// In the fork handler: binds the child's control socket next to the
/// parent's (or, if the child may not write there, in `/tmp/weft-EUID`)
/// and starts its control thread. Async-signal-safe.
pub(crate) fn start() -> Started {
    if !sys::RAW {
        return Started::Unsupported;
    }
    let dir = SOCKET_DIR.get();
    if dir.is_empty() {
        // The parent had no socket: nor does the child.
        return Started::Unreachable;
    }
    let pid = sys::getpid();
    let euid = sys::geteuid();
    let mut stat = [0u8; 2048];
    let Some(start) = sys::read_file(b"/proc/self/stat\0", &mut stat)
        .and_then(|n| weft_probe_abi::start_time_from_stat(stat.get(..n)?))
    else {
        return Started::Unreachable;
    };
    // A child that gave up root before this fork may not write in root's
    // directory: its own, as the process's first `init` would choose.
    let mut own = [0u8; 32];
    let own = own_dir(&mut own, euid);
    let Some(fd) = [Some(dir), own]
        .into_iter()
        .flatten()
        .find_map(|d| bind_in(d, pid, start))
    else {
        return Started::Unreachable;
    };
    START_TIME.store(start, Ordering::Release);
    EUID.store(euid, Ordering::Release);
    LISTEN_FD.set(fd);
    if let Ok((r, w)) = sys::pipe(libc::O_CLOEXEC | libc::O_NONBLOCK) {
        WAKE_R.set(r);
        WAKE_W.set(w);
    }
    ACTIVE.store(true, Ordering::Release);
    if spawn(fd).is_none() {
        ACTIVE.store(false, Ordering::Release);
        LISTEN_FD.forget(fd);
        sys::close(fd);
        if let Some(p) = SOCKET.c_path() {
            let _ = sys::unlink(p);
        }
        SOCKET.set(b"");
        return Started::Unreachable;
    }
    Started::Listening
}

/// `/tmp/weft-EUID`, made private to `euid` if missing; None if it exists
/// and is not (another user made it first: the parent's directory or
/// nothing).
fn own_dir(buf: &mut [u8; 32], euid: u32) -> Option<&[u8]> {
    let mut digits = [0u8; 20];
    let name = weft_probe_abi::decimal(u64::from(euid), &mut digits);
    let prefix = b"/tmp/weft-";
    let n = prefix.len() + name.len();
    buf.get_mut(..prefix.len())?.copy_from_slice(prefix);
    buf.get_mut(prefix.len()..n)?.copy_from_slice(name);
    *buf.get_mut(n)? = 0;
    let _ = sys::mkdir(buf.get(..=n)?, 0o700);
    let (mode, owner) = sys::lstat(buf.get(..=n)?)?;
    let private = mode & libc::S_IFMT == libc::S_IFDIR && owner == euid && mode & 0o077 == 0;
    private.then(|| buf.get(..n)).flatten()
}

/// The child's socket in `dir`, listening; its path goes to SOCKET.
fn bind_in(dir: &[u8], pid: u32, start: u64) -> Option<i32> {
    let mut path = [0u8; 108];
    let len = socket_path(&mut path, dir, pid, start)?;
    if !SOCKET.set(&path[..len]) {
        return None;
    }
    let fd = listen_at(&path[..len]);
    if fd.is_none() {
        SOCKET.set(b"");
    }
    fd
}

/// `DIR/PID-START.sock` with a NUL, in `out`: its length without the NUL.
fn socket_path(out: &mut [u8; 108], dir: &[u8], pid: u32, start: u64) -> Option<usize> {
    out.get_mut(..dir.len())?.copy_from_slice(dir);
    *out.get_mut(dir.len())? = b'/';
    let at = dir.len() + 1;
    let room = out.len() - 1;
    let n = weft_probe_abi::socket_name_into(out.get_mut(at..room)?, pid, start)?;
    out[at + n] = 0;
    Some(at + n)
}

/// A listening socket at `path` (without NUL), mode 0600.
fn listen_at(path: &[u8]) -> Option<i32> {
    // SAFETY: an all-zero sockaddr_un is valid; the path is copied below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= addr.sun_path.len() {
        return None;
    }
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let c_path = SOCKET.c_path()?;
    let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC).ok()? as i32;
    // A socket file left by an earlier process with this pid and start time
    // cannot exist; one left by ours (an exec'd image) is ours to replace.
    let _ = sys::unlink(c_path);
    if sys::bind_unix(fd, &addr).is_err() {
        sys::close(fd);
        return None;
    }
    // In a directory only our uid can enter (checked when the parent made it).
    let _ = sys::chmod(c_path, 0o600);
    if sys::listen(fd, 128).is_err() {
        sys::close(fd);
        let _ = sys::unlink(c_path);
        return None;
    }
    Some(fd)
}

#[cfg(not(target_arch = "x86_64"))]
fn spawn(_listen: i32) -> Option<()> {
    None
}

/// Maps the thread's stack and thread pointer page and clones the thread.
#[cfg(target_arch = "x86_64")]
fn spawn(listen: i32) -> Option<()> {
    let total = PAGE + STACK + TLS_GUARD + PAGE;
    // SAFETY: a fresh private anonymous mapping, inaccessible until the
    // two parts below are opened; never unmapped (the thread lives as long
    // as the process).
    let region = unsafe {
        sys::mmap(
            0,
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
        )
    }
    .ok()?;
    let stack = region + PAGE;
    let tcb = stack + STACK + TLS_GUARD;
    // SAFETY: opening the stack and the thread pointer page of our mapping.
    let opened = unsafe {
        sys::mprotect(stack, STACK, libc::PROT_READ | libc::PROT_WRITE).is_ok()
            && sys::mprotect(tcb, PAGE, libc::PROT_READ | libc::PROT_WRITE).is_ok()
    };
    // A child of this child maps its own.
    // SAFETY: advice on our own mapping.
    let _ = unsafe { sys::madvise(region, total, libc::MADV_DONTFORK) };
    if !opened {
        // SAFETY: nothing uses the mapping yet.
        let _ = unsafe { sys::munmap(region, total) };
        return None;
    }
    // x86-64 reads the thread pointer's own address at offset 0.
    // SAFETY: the page is mapped and writable, and nothing uses it yet.
    unsafe { (tcb as *mut usize).write(tcb) };
    // The program's signals keep going to its own threads.
    let old = sys::set_sigmask(!0);
    // SAFETY: the stack is ours alone; `run` uses raw system calls only.
    let spawned = unsafe { sys::spawn(stack + STACK, tcb, run, listen as usize) };
    sys::set_sigmask(old);
    if spawned.is_err() {
        // SAFETY: the thread did not start.
        let _ = unsafe { sys::munmap(region, total) };
        return None;
    }
    Some(())
}

/// An event was registered in a fork child: the control thread announces
/// it to every session, then enables it where it matches.
pub(crate) fn on_register() {
    // The caller fenced after appending (crate::listener::on_register).
    PENDING.fetch_or(USED.load(Ordering::Acquire), Ordering::AcqRel);
    // Never into a descriptor of the program's that took the number over.
    if let Some(fd) = WAKE_W.get() {
        // A full pipe already wakes the thread.
        let _ = sys::write(fd, &[1]);
    }
}

/// One collector's connection. Frames are put together without blocking,
/// so that a slow peer holds up nobody else.
struct Conn {
    fd: i32,
    /// What `fd` referred to when accepted: the program may have closed it
    /// and reused the number (a child that closes every inherited
    /// descriptor), and then it is forgotten, never read or closed.
    identity: (u64, u64),
    /// (session bit, area base, area length) once attached.
    session: Option<(u32, usize, usize)>,
    /// Events (ids below this) the collector was told about.
    announced: usize,
    patterns: [u8; PATTERNS_MAX],
    patterns_len: usize,
    /// The frame being received, and a descriptor passed with it.
    frame: [u8; 4 + FRAME_IN],
    got: usize,
    passed: i32,
    /// What `passed` was when it came: the program may take its number over
    /// before it is closed (see `close_passed`).
    passed_identity: Option<(u64, u64)>,
    /// When the frame being received began (0: none).
    frame_since: u64,
    /// When the connection last did something.
    active_at: u64,
}

impl Conn {
    fn patterns(&self) -> Option<Patterns<'_>> {
        Patterns::decode(self.patterns.get(..self.patterns_len)?)
    }

    fn still_ours(&self) -> bool {
        sys::identity(self.fd) == Some(self.identity)
    }
}

/// The largest frame a process receives: `Attach` with its patterns.
const FRAME_IN: usize = PATTERNS_MAX + 64;
/// A connection that has not attached is closed after this long idle.
const IDLE_NS: u64 = 10_000_000_000;

/// The connections, only the control thread's (see `Scratch`).
struct Table(UnsafeCell<[Option<Conn>; CONNS]>);

// SAFETY: as `Scratch`.
unsafe impl Sync for Table {}

static TABLE: Table = Table(UnsafeCell::new([const { None }; CONNS]));

extern "C" fn run(listen: usize) -> ! {
    // Named as the process's own control threads are (a collector does not
    // count them as writers, and `ps -L` tells them from the program's).
    sys::set_thread_name(b"weft-probe\0");
    // SAFETY: only this thread uses TABLE, and it starts afresh in a fork
    // child (whatever the copy held belongs to the parent's thread).
    let conns = unsafe { &mut *TABLE.0.get() };
    for c in conns.iter_mut() {
        *c = None;
    }
    serve(listen as i32, conns);
    sys::exit_thread()
}

/// Checks on descriptor numbers the program may have taken over happen at
/// least this often, not only when poll reports something.
const RECHECK_NS: u64 = 1_000_000_000;

fn serve(listen: i32, conns: &mut [Option<Conn>; CONNS]) {
    // Identities as taken when these were made, in the fork handler.
    let mut listen = (listen, LISTEN_FD.identity());
    let mut wake = (WAKE_R.get().unwrap_or(-1), WAKE_R.identity());
    loop {
        // Unknown to the C library, this thread is not reached by the
        // program's `setuid` and its kin: it follows them (crate::creds).
        // The process's status, read once a round for both.
        let mut buf = [0u8; 4096];
        let status = sys::read_file(b"/proc/self/status\0", &mut buf).and_then(|n| buf.get(..n));
        if let Some(status) = status {
            crate::creds::follow(status);
        }
        if let Some(code) = status.and_then(program_gone) {
            // The program's last thread ended with a bare `exit` system
            // call: without this thread the process would have ended too.
            if let Some(p) = SOCKET.c_path() {
                let _ = sys::unlink(p);
            }
            sys::exit_group(code);
        }
        // A number the program took over is no longer ours: forget it.
        if listen.0 >= 0 && sys::identity(listen.0) != listen.1 {
            listen = (-1, None);
        }
        if wake.0 >= 0 && sys::identity(wake.0) != wake.1 {
            wake = (-1, None);
        }
        for slot in conns.iter_mut() {
            if slot.as_ref().is_some_and(|c| !c.still_ours()) {
                close(slot);
            }
        }
        let now = sys::now_ns();
        let none = libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        };
        // Only the descriptors in use: poll refuses more than RLIMIT_NOFILE.
        let mut fds = [none; 2 + CONNS];
        let mut which = [usize::MAX; 2 + CONNS];
        let mut n = 0;
        for fd in [listen.0, wake.0] {
            if fd >= 0 {
                fds[n] = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                n += 1;
            }
        }
        let fixed = n;
        // Without a wake-up pipe, look for registrations now and then.
        let mut timeout = if wake.0 < 0 { 100_000_000 } else { RECHECK_NS };
        for (k, c) in conns.iter().enumerate() {
            if let Some(c) = c {
                fds[n] = libc::pollfd {
                    fd: c.fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                which[n] = k;
                n += 1;
                timeout = timeout.min(deadline(c).saturating_sub(now));
            }
        }
        match sys::poll(&mut fds[..n], Some(timeout)) {
            Ok(_) | Err(libc::EINTR) => {}
            Err(_) => sys::sleep_ns(10_000_000),
        }
        let broken = libc::POLLNVAL | libc::POLLERR | libc::POLLHUP;
        // Checked again: poll's last look may have been at a file the
        // program put on the number meanwhile.
        if listen.0 >= 0 && sys::identity(listen.0) != listen.1 {
            listen = (-1, None);
        }
        if wake.0 >= 0 && sys::identity(wake.0) != wake.1 {
            wake = (-1, None);
        }
        for p in &fds[..fixed] {
            if p.fd == listen.0 && p.revents != 0 {
                if p.revents & broken != 0 || !accept(listen.0, conns) {
                    listen = (-1, None);
                }
            } else if p.fd == wake.0 && p.revents & broken != 0 {
                // Its write end is gone: registrations are looked for by time.
                wake = (-1, None);
            } else if p.fd == wake.0 && p.revents & libc::POLLIN != 0 {
                let mut b = [0u8; 64];
                while matches!(sys::read(wake.0, &mut b), Ok(64)) {}
            }
        }
        let pending = PENDING.swap(0, Ordering::AcqRel);
        for slot in conns.iter_mut() {
            let due = matches!(slot, Some(Conn { session: Some((bit, _, _)), .. }) if pending & (1 << *bit) != 0);
            if due && slot.as_mut().is_some_and(|c| !announce(c, WRITE_DEADLINE_NS)) {
                close(slot);
            }
        }
        let now = sys::now_ns();
        for (p, &k) in fds[fixed..n].iter().zip(&which[fixed..n]) {
            let Some(slot) = conns.get_mut(k) else { continue };
            let Some(c) = slot.as_mut() else { continue };
            // The connection in this poll entry may have been closed and its
            // table slot reused above (an announce that failed).
            if c.fd != p.fd {
                continue;
            }
            let keep = if p.revents != 0 {
                pump(c, now)
            } else {
                now < deadline(c)
            };
            if !keep {
                close(slot);
            }
        }
    }
}

/// The exit code to end the process with if this is its only thread left
/// (the program's threads all ended with `exit`, not `exit_group`, the
/// first one last): that thread's, as the kernel kept it (field 52 of
/// /proc/self/stat).
fn program_gone(status: &[u8]) -> Option<i32> {
    let threads = status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Threads:"))
        .and_then(|l| weft_probe_abi::parse_decimal(l.trim_ascii()))?;
    // The first thread, once ended, stays counted (a zombie) until the
    // process ends: this thread and it are what is left.
    if threads != 2 {
        return None;
    }
    let mut stat = [0u8; 2048];
    let n = sys::read_file(b"/proc/self/stat\0", &mut stat)?;
    let stat = stat.get(..n)?;
    (weft_probe_abi::stat_field(stat, 3)? == b"Z").then(|| weft_probe_abi::exit_code_from_stat(stat))
}

/// When a connection must have made progress: its frame's end, or, before
/// an attach, the end of its idleness.
fn deadline(c: &Conn) -> u64 {
    if c.frame_since != 0 {
        c.frame_since.saturating_add(READ_DEADLINE_NS)
    } else if c.session.is_none() {
        c.active_at.saturating_add(IDLE_NS)
    } else {
        u64::MAX
    }
}

/// Accepts one connection. False: the listening socket is broken.
fn accept(listen: i32, conns: &mut [Option<Conn>; CONNS]) -> bool {
    let fd = match sys::accept(listen, libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) {
        Ok(fd) => fd as i32,
        Err(libc::EBADF | libc::EINVAL | libc::ENOTSOCK) => return false,
        // A client that gave up, or a transient shortage.
        Err(_) => return true,
    };
    let me = process_euid();
    match sys::peer_cred(fd) {
        Ok(c) if c.uid == me || c.uid == 0 => {}
        Ok(c) => {
            refused(c.pid, c.uid, me);
            sys::close(fd);
            return true;
        }
        Err(_) => {
            sys::close(fd);
            return true;
        }
    }
    let (Some(slot), Some(identity)) = (conns.iter_mut().find(|c| c.is_none()), sys::identity(fd)) else {
        // Idle connections are closed after IDLE_NS, and at most 8 attach.
        sys::close(fd);
        return true;
    };
    let _ = CONN_FDS.iter().any(|c| c.set_if_free(fd));
    *slot = Some(Conn {
        fd,
        identity,
        session: None,
        announced: 0,
        patterns: [0; PATTERNS_MAX],
        patterns_len: 0,
        frame: [0; 4 + FRAME_IN],
        got: 0,
        passed: -1,
        passed_identity: None,
        frame_since: 0,
        active_at: sys::now_ns(),
    });
    true
}

/// The process's effective uid now (its first thread's, which `setuid`
/// changes for every thread the C library knows), or the child's at the
/// fork if /proc cannot say.
fn process_euid() -> u32 {
    let mut buf = [0u8; 4096];
    sys::read_file(b"/proc/self/status\0", &mut buf)
        .and_then(|n| crate::creds::parse(buf.get(..n)?))
        .map_or(EUID.load(Ordering::Acquire), |c| c.uid[1])
}

/// The collector went away, broke the protocol or stalled: stop writing for
/// it. A descriptor the program reused is forgotten, not closed.
fn close(slot: &mut Option<Conn>) {
    let Some(c) = slot.take() else { return };
    if let Some((bit, base, len)) = c.session {
        if crate::listener::debug_output() {
            say(format_args!("session {bit} connection closed"));
        }
        crate::session::release(bit, base, len);
    }
    close_passed(c.passed, c.passed_identity);
    let _ = CONN_FDS.iter().any(|s| s.forget(c.fd));
    if c.still_ours() {
        sys::close(c.fd);
    }
}

/// Reads what the peer sent and answers every whole frame. False: close.
fn pump(c: &mut Conn, now: u64) -> bool {
    if !c.still_ours() {
        return false;
    }
    loop {
        let want = if c.got < 4 {
            4
        } else {
            let n = u32::from_le_bytes([c.frame[0], c.frame[1], c.frame[2], c.frame[3]]) as usize;
            if n == 0 || n > FRAME_IN {
                return false;
            }
            4 + n
        };
        if c.got == want {
            if want > 4 && !answer(c) {
                return false;
            }
            if want > 4 {
                c.got = 0;
                c.frame_since = 0;
            }
            continue;
        }
        let Some(room) = c.frame.get_mut(c.got..want) else {
            return false;
        };
        match sys::recv_fds(c.fd, room, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT, &mut c.passed) {
            Ok(0) => return false,
            Ok(k) => {
                if c.passed >= 0 && c.passed_identity.is_none() {
                    c.passed_identity = sys::identity(c.passed);
                }
                if c.got == 0 {
                    c.frame_since = now;
                }
                c.got += k;
                c.active_at = now;
            }
            Err(libc::EINTR) => {}
            Err(libc::EAGAIN) => return now < deadline(c),
            Err(_) => return false,
        }
    }
}

/// Answers the whole frame in `c.frame`. False: close the connection.
fn answer(c: &mut Conn) -> bool {
    let n = c.got.saturating_sub(4).min(FRAME_IN);
    // The frame is copied out so that the connection can change meanwhile.
    // SAFETY: only this thread uses RECV (see `Scratch`).
    let body: &mut [u8; FRAME_IN] = unsafe { &mut *RECV.0.get() };
    body[..n].copy_from_slice(&c.frame[4..4 + n]);
    let body = &body[..n];
    let passed = std::mem::replace(&mut c.passed, -1);
    let passed_identity = c.passed_identity.take();
    let ok = match Request::decode(body) {
        Err(_) => false,
        // A second Hello after an attach is answered as a push would be.
        Ok(Request::Hello { version }) if version == PROTOCOL_VERSION && c.session.is_some() => {
            announce(c, REPLY_DEADLINE_NS)
        }
        Ok(Request::Hello { version }) if version == PROTOCOL_VERSION => match send_info(c.fd, REPLY_DEADLINE_NS) {
            Some(n) => {
                c.announced = n;
                true
            }
            None => false,
        },
        Ok(Request::Hello { .. }) => send_error(c.fd, b"protocol version not supported (this process speaks 1)"),
        Ok(Request::Attach { mode, patterns }) => attach(c, passed, mode, patterns),
        Ok(Request::Detach) => {
            if let Some((bit, base, len)) = c.session.take() {
                c.patterns_len = 0;
                crate::session::release(bit, base, len);
            }
            send_frame(c.fd, FrameBuf::new(send_buf(), 6), REPLY_DEADLINE_NS)
        }
        Ok(Request::Later) if c.session.is_some() => send_error(c.fd, b"later on a connection that holds a session"),
        Ok(Request::Later) => {
            crate::session::LATER.store(true, Ordering::Release);
            send_frame(c.fd, FrameBuf::new(send_buf(), 6), REPLY_DEADLINE_NS)
        }
        Ok(Request::Other(_)) => send_error(c.fd, b"unexpected message"),
    };
    // Mapped by now, or refused.
    close_passed(passed, passed_identity);
    ok
}

/// Closes a descriptor the collector passed, unless the program took its
/// number over since it came (a child that replaces every descriptor with
/// `dup2`): then the number is the program's, and left alone.
fn close_passed(fd: i32, identity: Option<(u64, u64)>) {
    if fd >= 0 && identity.is_some() && sys::identity(fd) == identity {
        sys::close(fd);
    }
}

fn attach(c: &mut Conn, fd: i32, mode: u32, patterns: Patterns<'_>) -> bool {
    if c.session.is_some() {
        return send_error(c.fd, b"already attached on this connection");
    }
    if fd < 0 {
        return send_error(c.fd, b"attach without a memory descriptor");
    }
    let bytes = patterns.bytes();
    let Some(keep) = c.patterns.get_mut(..bytes.len()) else {
        return send_error(c.fd, b"pattern list too long for a fork child (4096 bytes at most)");
    };
    keep.copy_from_slice(bytes);
    c.patterns_len = bytes.len();
    let area = match crate::session::map(fd, mode) {
        Ok(a) => a,
        Err(why) => return send_error(c.fd, why.as_bytes()),
    };
    let bit = match crate::session::take(&area, mode, crate::listener::guard_mode()) {
        Ok(b) => b,
        Err(why) => return send_error(c.fd, why.as_bytes()),
    };
    c.session = Some((bit, area.base, area.len));
    // Only events the collector was told about; later ones once announced.
    let mut enabled = 0u32;
    crate::registry::each_below(c.announced, |e| {
        if patterns.any_matches(e.provider().as_bytes(), e.name().as_bytes()) {
            e.enable.fetch_or(1 << bit, Ordering::AcqRel);
            enabled += 1;
        }
    });
    if crate::listener::debug_output() {
        let by = sys::peer_cred(c.fd).map_or(0, |p| p.pid);
        say(format_args!("session {bit} attached by pid {by}"));
    }
    let mut f = FrameBuf::new(send_buf(), 4);
    f.put(&bit.to_le_bytes());
    f.put(&enabled.to_le_bytes());
    if !send_frame(c.fd, f, REPLY_DEADLINE_NS) {
        return false;
    }
    // Only now may a child waiting in its fork handler go on: the collector
    // has its answer even if the child exits at once.
    ATTACHES.fetch_add(1, Ordering::AcqRel);
    // `take` fenced after taking the bit: an event registered meanwhile is
    // counted here, or its registration saw the bit and woke us.
    crate::registry::len() <= c.announced || announce(c, REPLY_DEADLINE_NS)
}

/// Sends the event list to an attached collector, then enables the events
/// it did not know of that its patterns match. False: close the connection.
fn announce(c: &mut Conn, within_ns: u64) -> bool {
    let Some((bit, _, _)) = c.session else {
        return true;
    };
    let Some(n) = send_info(c.fd, within_ns) else {
        return false;
    };
    let Some(patterns) = c.patterns() else {
        return false;
    };
    crate::registry::each_below(n, |e| {
        if e.enable.load(Ordering::Acquire) & (1 << bit) == 0
            && patterns.any_matches(e.provider().as_bytes(), e.name().as_bytes())
        {
            e.enable.fetch_or(1 << bit, Ordering::AcqRel);
        }
    });
    c.announced = n;
    true
}

/// Sends `Info`: how many events it lists, or None if it could not be sent.
fn send_info(fd: i32, within_ns: u64) -> Option<usize> {
    let n = crate::registry::len();
    let mut comm = [0u8; 64];
    let got = sys::read_file(b"/proc/self/comm\0", &mut comm).unwrap_or(0);
    let comm = comm.get(..got).unwrap_or_default();
    let comm = comm.strip_suffix(b"\n").unwrap_or(comm);
    let mut f = FrameBuf::new(send_buf(), 2);
    put_info_head(
        &mut f,
        sys::getpid(),
        START_TIME.load(Ordering::Acquire),
        comm,
        USED.load(Ordering::Acquire),
        crate::user_events::in_use(),
        n as u32,
    );
    crate::registry::each_below(n, |e| {
        let fields = e
            .field_types()
            .map(|(name, t)| (name.as_bytes(), t.map_or(0, |t| t as u8)));
        put_info_event(
            &mut f,
            e.id.load(Ordering::Acquire),
            e.provider().as_bytes(),
            e.name().as_bytes(),
            fields,
        );
    });
    send_frame(fd, f, within_ns).then_some(n)
}

fn send_error(fd: i32, why: &[u8]) -> bool {
    let mut f = FrameBuf::new(send_buf(), 7);
    put_str(&mut f, why);
    send_frame(fd, f, REPLY_DEADLINE_NS)
}

fn send_buf() -> &'static mut [u8] {
    // SAFETY: only this thread uses SEND (see `Scratch`), and each frame is
    // sent before the next is encoded.
    unsafe { &mut *SEND.0.get() }
}

/// Sends a whole frame within `within_ns`; false if it could not be.
fn send_frame(fd: i32, f: FrameBuf<'_>, within_ns: u64) -> bool {
    let Some(frame) = f.finish() else {
        // Larger than a frame may be (an event list of more than 1 MiB).
        return false;
    };
    let deadline = sys::now_ns().saturating_add(within_ns);
    let mut sent = 0;
    while let Some(rest) = frame.get(sent..).filter(|r| !r.is_empty()) {
        match sys::send(fd, rest, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) {
            Ok(k) => sent += k,
            Err(libc::EINTR) => {}
            Err(libc::EAGAIN) => {
                if !wait(fd, libc::POLLOUT, deadline) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Waits until `fd` is ready for `events`, or the deadline passed.
fn wait(fd: i32, events: i16, deadline: u64) -> bool {
    let now = sys::now_ns();
    if now >= deadline {
        return false;
    }
    let mut p = [libc::pollfd { fd, events, revents: 0 }];
    matches!(sys::poll(&mut p, Some(deadline - now)), Ok(n) if n > 0)
}

/// Refusals said so far, and when the last one was said.
static REFUSALS: AtomicU64 = AtomicU64::new(0);
static REFUSAL_SAID_NS: AtomicU64 = AtomicU64::new(0);

/// Says why a connection was refused: the first three, then at most one
/// line per 10 s (another uid must not flood the program's stderr).
fn refused(pid: i32, uid: u32, me: u32) {
    let n = REFUSALS.fetch_add(1, Ordering::AcqRel) + 1;
    let why = format_args!("refused control connection from pid {pid} uid {uid} (only uid {me} or root may attach)");
    if n <= 3 {
        say(why);
        return;
    }
    let now = sys::now_ns();
    if now.saturating_sub(REFUSAL_SAID_NS.load(Ordering::Acquire)) >= 10_000_000_000 {
        REFUSAL_SAID_NS.store(now, Ordering::Release);
        say(format_args!(
            "{why} ({n} refused so far; logging at most one line per 10 s)"
        ));
    }
}

/// One line on stderr, formatted on the stack.
fn say(what: std::fmt::Arguments<'_>) {
    let mut line = Line { buf: [0; 512], len: 0 };
    let _ = writeln!(line, "weft-probe[{}]: {what}", sys::getpid());
    let _ = sys::write(2, line.buf.get(..line.len).unwrap_or_default());
}

/// A line cut at 512 bytes.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.buf.len() - self.len;
        let take = s.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_socket_paths_fit_or_are_refused() {
        let mut out = [0u8; 108];
        let n = socket_path(&mut out, b"/tmp/weft-0", 42, 777).unwrap();
        assert_eq!(&out[..=n], b"/tmp/weft-0/42-777.sock\0");
        let long = [b'd'; 100];
        assert_eq!(socket_path(&mut out, &long, 42, 777), None);
    }

    #[test]
    fn lines_are_cut_not_overrun() {
        let mut line = Line { buf: [0; 512], len: 0 };
        let long = "x".repeat(1000);
        write!(line, "{long}").unwrap();
        assert_eq!(line.len, 512);
    }
}
