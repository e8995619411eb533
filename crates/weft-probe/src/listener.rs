//! The control socket: how `weft record` finds this process, learns its
//! events, hands it buffer memory and detaches. Runs on its own threads;
//! nothing here is on the write path.

use std::cell::UnsafeCell;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use weft_probe_abi::control::{EventDesc, Msg, ProcessInfo, MAX_FRAME, PROTOCOL_VERSION};
use weft_probe_abi::{process_start_time, runtime_dirs, socket_name, MAX_SESSIONS};

use crate::announce::Push;
use crate::held::Held;
use crate::session::{ATTACHES, DEAD, LATER, USED};

static STARTED: AtomicBool = AtomicBool::new(false);
pub(crate) static LISTEN_FD: Held = Held::new();
/// Connections being served, so that a fork child can close its copies.
pub(crate) static CONN_FDS: [Held; 16] = [const { Held::new() }; 16];
/// Where this process listens (NUL-terminated), and the directory it is in:
/// fixed buffers, so a fork child's handler can use them without allocating.
pub(crate) static SOCKET: PathSlot = PathSlot::new();
pub(crate) static SOCKET_DIR: PathSlot = PathSlot::new();

/// A path of at most `sun_path`'s length. Written only where no other
/// thread runs this code: the first `init`, and a fork child's handler.
pub(crate) struct PathSlot {
    bytes: UnsafeCell<[u8; 108]>,
    len: AtomicUsize,
}

// SAFETY: see the type's doc: one writer, with no concurrent reader of the
// bytes being written (readers load `len` first, which is set last).
unsafe impl Sync for PathSlot {}

impl PathSlot {
    const fn new() -> PathSlot {
        PathSlot {
            bytes: UnsafeCell::new([0; 108]),
            len: AtomicUsize::new(0),
        }
    }

    /// Stores `path` with a NUL after it; false (and empty) if too long.
    pub(crate) fn set(&self, path: &[u8]) -> bool {
        self.len.store(0, Ordering::Release);
        // SAFETY: the single writer (see the type's doc); readers see len 0.
        let bytes = unsafe { &mut *self.bytes.get() };
        if path.len() >= bytes.len() || path.contains(&0) {
            return false;
        }
        bytes[..path.len()].copy_from_slice(path);
        bytes[path.len()] = 0;
        self.len.store(path.len(), Ordering::Release);
        true
    }

    /// The path without its NUL (empty if unset).
    pub(crate) fn get(&self) -> &[u8] {
        let n = self.len.load(Ordering::Acquire);
        // SAFETY: bytes[..n] were written before len was set.
        unsafe { (&*self.bytes.get()).get(..n).unwrap_or_default() }
    }

    /// The path with its NUL, for a system call; None if unset.
    pub(crate) fn c_path(&self) -> Option<&[u8]> {
        let n = self.len.load(Ordering::Acquire);
        // SAFETY: as in `get`; the NUL was written before len.
        (n > 0).then(|| unsafe { (&*self.bytes.get()).get(..=n) }).flatten()
    }
}
/// The environment as read once at start-up (see `settings`).
static SETTINGS: OnceLock<Settings> = OnceLock::new();
/// Each attached session's connection (for pushing event-list updates; replies
/// and pushes share the lock so frames never interleave).
pub(crate) static CONNS: [Mutex<Option<Push>>; MAX_SESSIONS as usize] =
    [const { Mutex::new(None) }; MAX_SESSIONS as usize];
/// Each attached session's `provider:event` patterns, for events registered later.
pub(crate) static PATTERNS: [Mutex<Vec<String>>; MAX_SESSIONS as usize] =
    [const { Mutex::new(Vec::new()) }; MAX_SESSIONS as usize];

#[used]
#[link_section = ".init_array"]
static CTOR: extern "C" fn() = ctor;

extern "C" fn ctor() {
    if settings().disabled {
        return;
    }
    init();
}

/// What the process reads from its environment, once, at start-up: a fork
/// child must not read the environment again (its lock may have been held by
/// another thread of the parent at the fork).
pub(crate) struct Settings {
    /// `WEFT_PROBE_WAIT_MS`: set by `weft record` for a program it starts.
    wait_ms: Option<u64>,
    /// `WEFT_PROBE_DEBUG`.
    debug: bool,
    /// `WEFT_PROBE_GUARD` (§7.8 of docs/probe-buffers.md).
    guard: bool,
    /// `WEFT_PROBE_DISABLE`: no socket, no registration.
    pub(crate) disabled: bool,
    /// Where the control socket may go (`WEFT_RUNTIME_DIR` first).
    dirs: Vec<PathBuf>,
}

/// Guard mode and debug output as read at start-up (false before): for a
/// fork child's control thread, which must not read the environment.
pub(crate) fn guard_mode() -> bool {
    SETTINGS.get().is_some_and(|s| s.guard)
}

pub(crate) fn debug_output() -> bool {
    SETTINGS.get().is_some_and(|s| s.debug)
}

pub(crate) fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| {
        crate::fault::init();
        read_settings()
    })
}

fn read_settings() -> Settings {
    Settings {
        wait_ms: std::env::var("WEFT_PROBE_WAIT_MS").ok().and_then(|v| v.parse().ok()),
        debug: std::env::var_os("WEFT_PROBE_DEBUG").is_some(),
        guard: std::env::var("WEFT_PROBE_GUARD").is_ok_and(|v| v != "0"),
        disabled: std::env::var_os("WEFT_PROBE_DISABLE").is_some(),
        // SAFETY: geteuid has no preconditions.
        dirs: runtime_dirs(unsafe { libc::geteuid() }),
    }
}

/// Starts the control socket (idempotent). Called automatically before
/// `main`; C programs may call `weft_probe_init()` explicitly.
pub fn init() {
    // Read before the fork handler is installed: children only use the copy.
    if settings().disabled || STARTED.swap(true, Ordering::AcqRel) {
        return;
    }
    crate::epoch::init();
    crate::registry::init();
    crate::user_events::register_all();
    crate::fork::install();
    start_listener();
    // Started by weft record: let it attach before the program's first event.
    wait_for_attach(u64::MAX);
}

/// Where this process listens, once `init` ran.
pub fn socket_path() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let p = SOCKET.get();
    (!p.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
}

/// When weft record started us and asked (`WEFT_PROBE_WAIT_MS`), wait until
/// it attached, so that nothing is missed from the first event on. Polls, so
/// that a fork child never waits on a lock another parent thread held.
/// Async-signal-safe: a fork child's handler waits here.
pub(crate) fn wait_for_attach(cap_ms: u64) {
    // Set by the first `init`, long before any fork.
    let Some(ms) = SETTINGS.get().and_then(|s| s.wait_ms) else {
        return;
    };
    let deadline = crate::sys::now_ns().saturating_add(ms.min(cap_ms).saturating_mul(1_000_000));
    while ATTACHES.load(Ordering::Acquire) == 0 && !LATER.load(Ordering::Acquire) && crate::sys::now_ns() < deadline {
        crate::sys::sleep_ns(500_000);
    }
}

fn bind() -> Option<(UnixListener, PathBuf)> {
    let pid = std::process::id();
    let start = process_start_time(pid)?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    for dir in &settings().dirs {
        if let Err(why) = private_dir(dir, uid) {
            if let Some(why) = why {
                eprintln!("weft-probe[{pid}]: not using {}: {why}", dir.display());
            }
            continue;
        }
        if let Some(b) = bind_in(dir, pid, start) {
            return Some(b);
        }
    }
    // Every usual directory is unusable (another user made ours first, to
    // lock us out): a fresh one of our own, which a collector running as
    // root finds among /tmp/weft-* and removed again at exit.
    for attempt in 0..8u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = PathBuf::from(format!("/tmp/weft-{uid}.{pid}-{nanos:x}{attempt}"));
        use std::os::unix::fs::DirBuilderExt;
        if std::fs::DirBuilder::new().mode(0o700).create(&dir).is_err()
            || weft_probe_abi::check_private_dir(&dir, uid).is_err()
        {
            continue;
        }
        if let Some(b) = bind_in(&dir, pid, start) {
            if let Ok(mut d) = OWN_DIR.try_lock() {
                *d = Some(dir);
            }
            return Some(b);
        }
    }
    None
}

/// Binds the control socket in a private directory, readable and writable
/// by our uid only (root passes anyway); the peer's credentials are checked
/// again on accept (SO_PEERCRED).
fn bind_in(dir: &std::path::Path, pid: u32, start: u64) -> Option<(UnixListener, PathBuf)> {
    let path = dir.join(socket_name(pid, start));
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).ok()?;
    // On the path we just created, in a directory only we can write.
    let _ = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    Some((l, path))
}

/// A directory this process made for itself (see `bind`), removed at exit.
static OWN_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Makes `dir` a private runtime directory of `uid` (0700, ours), or says
/// why it cannot be used: Err(None) when it simply cannot exist here (no
/// /run/user/UID, no write access to /run), Err(Some(why)) when someone
/// else's or too open, which is worth a line on stderr.
fn private_dir(dir: &std::path::Path, uid: u32) -> Result<(), Option<String>> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let mut b = std::fs::DirBuilder::new();
    b.mode(0o700);
    let made = match b.create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && weft_probe_abi::runtime_dir_owner(dir).is_none() => {
            // WEFT_RUNTIME_DIR: its parents are the user's to choose.
            dir.parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| b.create(dir))
        }
        r => r,
    };
    match made {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(_) => return Err(None),
    }
    // Made by an older weft (0755, 0777): ours to tighten.
    if let Ok(m) = std::fs::symlink_metadata(dir) {
        if m.is_dir() && m.uid() == uid && m.mode() & 0o077 != 0 {
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    weft_probe_abi::check_private_dir(dir, uid).map_err(Some)
}

pub(crate) fn start_listener() {
    let Some((listener, path)) = bind() else { return };
    LISTEN_FD.set(listener.as_raw_fd());
    let bytes = path.as_os_str().as_encoded_bytes();
    if SOCKET.set(bytes) {
        // Where a fork child binds its own socket (crate::child).
        SOCKET_DIR.set(path.parent().map_or(&b""[..], |d| d.as_os_str().as_encoded_bytes()));
    }
    // SAFETY: registering a plain extern "C" function.
    unsafe { libc::atexit(remove_socket) };
    crate::announce::start();
    let spawned = spawn_quiet("weft-probe", move || loop {
        // Looks up once a second: if the program's threads have all ended
        // with a bare `exit` system call, these threads alone would keep
        // the process alive.
        let mut p = [libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if matches!(crate::sys::poll(&mut p, Some(1_000_000_000)), Ok(0)) {
            if let Some(code) = program_gone() {
                remove_socket();
                crate::sys::exit_group(code);
            }
            continue;
        }
        {
            let conn = listener.accept().map(|(c, _)| c);
            match conn {
                // Refused before a thread is spent on it.
                Ok(conn) => match peer_allowed(&conn) {
                    Ok(()) => {
                        let _ = spawn_quiet("weft-probe-conn", move || serve(conn));
                    }
                    Err(why) => log_refusal(&why),
                },
                // The listening socket itself is gone (closed after a fork).
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBADF) | Some(libc::EINVAL) | Some(libc::ENOTSOCK)
                    ) =>
                {
                    break
                }
                // A client that gave up, or a transient shortage: keep serving.
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    });
    if spawned.is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

/// Spawns a thread with every signal blocked: the program's process-directed
/// signals (timers, SIGCHLD, ...) must keep going to its own threads.
pub(crate) fn spawn_quiet(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    // SAFETY: sigset manipulation on local values; the old mask is restored
    // right after the spawn, and the new thread inherits the blocked one.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let r = std::thread::Builder::new().name(name.into()).spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}

/// The exit code to end the process with when only weft-probe's threads
/// are left (the program's all ended with `exit`, not `exit_group`): the
/// first thread's, as the kernel kept it (field 52 of /proc/self/stat).
fn program_gone() -> Option<i32> {
    for t in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let stat = std::fs::read(t.path().join("stat")).ok()?;
        let name = stat.get(stat.iter().position(|&b| b == b'(')? + 1..)?;
        if weft_probe_abi::stat_field(&stat, 3)? != b"Z" && !name.starts_with(b"weft-probe") {
            return None;
        }
    }
    Some(weft_probe_abi::exit_code_from_stat(
        &std::fs::read("/proc/self/stat").ok()?,
    ))
}

extern "C" fn remove_socket() {
    // This process's socket: a fork child's handler set its own here.
    if let Some(p) = SOCKET.c_path() {
        let _ = crate::sys::unlink(p);
    }
    if let Some(d) = OWN_DIR.try_lock().ok().and_then(|d| d.clone()) {
        let _ = std::fs::remove_dir(d);
    }
}

/// Forgets listener and connections inherited by a fork child: they belong
/// to the parent. The child starts its own.
pub(crate) fn reset_after_fork() {
    // Until the child has a socket of its own, its exit must not remove the
    // parent's (the `atexit` handler is inherited).
    SOCKET.set(b"");
    LISTEN_FD.close_copy();
    for c in &CONN_FDS {
        c.close_copy();
    }
    // The parent's push channels: close the child's copies, or the collector
    // would not see the connection close when the parent execs or exits.
    crate::announce::reset_after_fork();
    // A lock that another parent thread held at the fork stays held here for
    // good: its session bit is never used in this process.
    let mut dead = 0u32;
    for (bit, c) in CONNS.iter().enumerate() {
        if let Err(std::sync::TryLockError::WouldBlock) = c.try_lock() {
            dead |= 1 << bit;
        }
    }
    for (bit, p) in PATTERNS.iter().enumerate() {
        // Leaked, not freed: another thread may have held the allocator's lock.
        match p.try_lock() {
            Ok(mut g) => std::mem::forget(std::mem::take(&mut *g)),
            Err(std::sync::TryLockError::Poisoned(p)) => std::mem::forget(std::mem::take(&mut *p.into_inner())),
            Err(std::sync::TryLockError::WouldBlock) => dead |= 1 << bit,
        }
    }
    DEAD.fetch_or(dead, Ordering::AcqRel);
    USED.store(0, Ordering::Release);
    ATTACHES.store(0, Ordering::Release);
    LATER.store(false, Ordering::Release);
}

/// The connected peer's credentials (SO_PEERCRED).
fn peer_cred(conn: &UnixStream) -> std::io::Result<libc::ucred> {
    crate::sys::peer_cred(conn.as_raw_fd()).map_err(std::io::Error::from_raw_os_error)
}

fn peer_allowed(conn: &UnixStream) -> Result<(), String> {
    let cred = peer_cred(conn).map_err(|e| format!("SO_PEERCRED failed: {e}"))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if cred.uid == me || cred.uid == 0 {
        Ok(())
    } else {
        Err(format!(
            "refused control connection from pid {} uid {} (only uid {me} or root may attach)",
            cred.pid, cred.uid
        ))
    }
}

/// Refusals logged so far, and when the last burst of them began.
static REFUSALS: AtomicU64 = AtomicU64::new(0);
static REFUSALS_SHOWN_AT: Mutex<Option<std::time::Instant>> = Mutex::new(None);
/// Refusals logged one by one; after that, one line per `REFUSAL_EVERY`.
const REFUSALS_LOGGED: u64 = 3;
const REFUSAL_EVERY: Duration = Duration::from_secs(10);

/// Logs a refused connection without letting a flood of them flood stderr.
fn log_refusal(why: &str) {
    let n = REFUSALS.fetch_add(1, Ordering::AcqRel) + 1;
    let pid = std::process::id();
    if n <= REFUSALS_LOGGED {
        eprintln!("weft-probe[{pid}]: {why}");
        return;
    }
    let Ok(mut at) = REFUSALS_SHOWN_AT.try_lock() else {
        return;
    };
    let now = std::time::Instant::now();
    if at.is_none_or(|t| now.duration_since(t) >= REFUSAL_EVERY) {
        *at = Some(now);
        eprintln!(
            "weft-probe[{pid}]: {why} ({n} refused so far; logging at most one line per {} s)",
            REFUSAL_EVERY.as_secs()
        );
    }
}

/// Serves one collector whose credentials were checked.
fn serve(mut conn: UnixStream) {
    let slot = CONN_FDS.iter().find(|c| c.set_if_free(conn.as_raw_fd()));
    let mut session: Option<(u32, usize, usize)> = None;
    // How many events the collector was told about.
    let mut announced = 0usize;
    loop {
        let (msg, fd) = match recv(&conn) {
            Ok(Some(m)) => m,
            _ => break,
        };
        let reply = match msg {
            Msg::Hello { version } if version == PROTOCOL_VERSION => {
                let i = info();
                announced = i.events.len();
                Msg::Info(i)
            }
            Msg::Hello { version } => Msg::Error(format!(
                "protocol version {version} not supported (this process speaks {PROTOCOL_VERSION})"
            )),
            Msg::Attach { mode, patterns } => match (session, fd) {
                (Some(_), _) => Msg::Error("already attached on this connection".into()),
                (None, None) => Msg::Error("attach without a memory descriptor".into()),
                (None, Some(fd)) => match attach(fd, mode, &patterns) {
                    Ok(mut a) => {
                        if settings().debug {
                            eprintln!(
                                "weft-probe[{}]: session {} attached by pid {}",
                                std::process::id(),
                                a.bit,
                                peer_cred(&conn).map_or(0, |c| c.pid)
                            );
                        }
                        session = Some((a.bit, a.base, a.len));
                        let reply = Msg::Attached {
                            session: a.bit,
                            enabled: a.enabled,
                        };
                        let sent = conn.write_all(&reply.encode());
                        // From now on registrations push updates here. Events
                        // registered since the Hello are announced first.
                        if let (Ok(()), Ok(clone)) = (&sent, conn.try_clone()) {
                            let mut push = Push::new(clone, a.bit);
                            // A frame cut short would corrupt the stream: then
                            // the session ends (its control thread sees the shutdown).
                            if crate::registry::events().len() == announced
                                || push.send(&Msg::Info(info()).encode()).is_ok()
                            {
                                *a.conn = Some(push);
                            } else {
                                push.close();
                            }
                        }
                        drop(a);
                        if sent.is_err() {
                            break;
                        }
                        // Only now may a program waiting in its constructor go
                        // on: the collector has its answer even if the program
                        // exits at once.
                        ATTACHES.fetch_add(1, Ordering::AcqRel);
                        continue;
                    }
                    Err(e) => Msg::Error(e),
                },
            },
            Msg::Detach => {
                if let Some((bit, base, len)) = session.take() {
                    detach(bit, base, len);
                }
                Msg::Detached
            }
            Msg::Later if session.is_some() => Msg::Error("later on a connection that holds a session".into()),
            Msg::Later => {
                LATER.store(true, Ordering::Release);
                Msg::Detached
            }
            _ => Msg::Error("unexpected message".into()),
        };
        // Replies and pushes share the session's lock: frames never interleave.
        let sent = match session.map(|(bit, _, _)| CONNS[bit as usize].lock()) {
            Some(Ok(mut push)) => match push.as_mut().map_or(Ok(()), Push::flush) {
                Ok(()) => conn.write_all(&reply.encode()),
                Err(e) => Err(e),
            },
            _ => conn.write_all(&reply.encode()),
        };
        if sent.is_err() {
            break;
        }
    }
    // The collector went away: stop writing for it.
    if let Some((bit, base, len)) = session {
        if settings().debug {
            eprintln!("weft-probe[{}]: session {bit} connection closed", std::process::id());
        }
        detach(bit, base, len);
    }
    if let Some(s) = slot {
        s.forget(conn.as_raw_fd());
    }
}

pub(crate) fn info() -> ProcessInfo {
    debug_assert!(!crate::child::active(), "a fork child answers from crate::child");
    let pid = std::process::id();
    let events = crate::registry::events()
        .iter()
        .map(|e| EventDesc {
            id: e.id.load(Ordering::Acquire),
            provider: e.provider().to_owned(),
            name: e.name().to_owned(),
            fields: e
                .field_types()
                .map(|(n, t)| (n.to_owned(), t.map_or(0, |t| t as u8)))
                .collect(),
        })
        .collect();
    ProcessInfo {
        pid,
        start_time: process_start_time(pid).unwrap_or(0),
        comm: std::fs::read_to_string("/proc/self/comm")
            .unwrap_or_default()
            .trim_end()
            .to_owned(),
        sessions: USED.load(Ordering::Acquire),
        user_events: crate::user_events::available().is_ok(),
        events,
    }
}

/// Reads one frame, with any descriptor passed alongside it.
fn recv(conn: &UnixStream) -> std::io::Result<Option<(Msg, Option<OwnedFd>)>> {
    let mut passed = -1;
    let frame = read_frame(conn, &mut passed);
    // SAFETY: a descriptor the kernel just passed us; nobody else owns it.
    let fd = (passed >= 0).then(|| unsafe { OwnedFd::from_raw_fd(passed) });
    Ok(frame?.and_then(|body| Msg::decode(&body).ok()).map(|m| (m, fd)))
}

/// One frame's body (None: the peer closed, or sent a frame of no or too
/// large a size); a descriptor passed with it lands in `passed`.
fn read_frame(conn: &UnixStream, passed: &mut i32) -> std::io::Result<Option<Vec<u8>>> {
    let fill = |buf: &mut [u8], passed: &mut i32| -> std::io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            match crate::sys::recv_fds(conn.as_raw_fd(), &mut buf[got..], libc::MSG_CMSG_CLOEXEC, passed) {
                Ok(0) => return Ok(false),
                Ok(k) => got += k,
                Err(libc::EINTR) => {}
                Err(e) => return Err(std::io::Error::from_raw_os_error(e)),
            }
        }
        Ok(true)
    };
    let mut len = [0u8; 4];
    if !fill(&mut len, passed)? {
        return Ok(None);
    }
    let n = u32::from_le_bytes(len) as usize;
    if n == 0 || n > MAX_FRAME {
        return Ok(None);
    }
    let mut body = vec![0u8; n];
    Ok(fill(&mut body, passed)?.then_some(body))
}

/// `provider:event` globs; a bare `provider` means all its events.
pub fn pattern_matches(pattern: &str, provider: &str, name: &str) -> bool {
    weft_probe_abi::control::pattern_matches(pattern.as_bytes(), provider.as_bytes(), name.as_bytes())
}

/// A session being attached: its pattern list and push channel stay locked
/// until the collector has its `Attached` and any catch-up `Info`, so that
/// an event registered meanwhile is enabled (by the announcer) only after
/// it was announced, even if the program exits right after writing it.
struct Attaching {
    bit: u32,
    enabled: u32,
    base: usize,
    len: usize,
    _patterns: MutexGuard<'static, Vec<String>>,
    conn: MutexGuard<'static, Option<Push>>,
}

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Maps and validates the collector's area, takes a session bit, enables
/// the matching events.
fn attach(fd: OwnedFd, mode: u32, patterns: &[String]) -> Result<Attaching, String> {
    let area = crate::session::map(fd.as_raw_fd(), mode)?;
    let bit = crate::session::take(&area, mode, settings().guard)?;
    // Lock order as everywhere: patterns, then the connection.
    let mut pats = lock(&PATTERNS[bit as usize]);
    let conn = lock(&CONNS[bit as usize]);
    *pats = patterns.to_vec();
    let mut enabled = 0;
    for e in crate::registry::events() {
        if patterns.iter().any(|p| pattern_matches(p, e.provider(), e.name())) {
            e.enable.fetch_or(1 << bit, Ordering::AcqRel);
            enabled += 1;
        }
    }
    Ok(Attaching {
        bit,
        enabled,
        base: area.base,
        len: area.len,
        _patterns: pats,
        conn,
    })
}

/// An event registered after sessions attached: enable it where it matches,
/// once each collector was told its event list changed (crate::announce).
pub(crate) fn on_register(e: &'static crate::Event) {
    // The event was appended to the registry; an attach takes its session
    // bit and then reads the registry (crate::session::take fences too).
    // Either this sees the bit or that attach sees the event.
    std::sync::atomic::fence(Ordering::SeqCst);
    if crate::child::active() {
        crate::child::on_register();
        return;
    }
    crate::announce::on_register(e, USED.load(Ordering::Acquire));
}

/// Stops writing for a session. Writers that loaded the old address a
/// moment ago finish into anonymous memory mapped over the area, never into
/// freed memory; the collector's memory is released when it closes its side.
fn detach(bit: u32, base: usize, len: usize) {
    // Patterns first (lock order PATTERNS, then CONNS, as in crate::announce):
    // an event registered from now on no longer matches this session.
    if let Ok(mut p) = PATTERNS[bit as usize].lock() {
        p.clear();
        if let Ok(mut c) = CONNS[bit as usize].lock() {
            // The end of a frame a non-blocking push left unsent goes out
            // before the control thread answers `Detached` on the same socket.
            if let Some(mut push) = c.take() {
                let _ = push.flush();
            }
        }
    }
    crate::session::release(bit, base, len);
}
