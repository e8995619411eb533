//! Telling attached collectors about events registered after they attached,
//! without ever making the registering thread wait for a collector.
//!
//! An event registered while sessions are attached must be announced to
//! each collector (an `Info` frame on the session's connection) before it
//! is enabled for that session, or the collector would see records of an
//! event it does not know. The registering thread (often a C constructor or
//! a library being loaded) tries that itself without blocking: it only
//! try-locks, and sends with `MSG_DONTWAIT`. When that cannot complete (a
//! lock is busy, or the collector is not reading and the socket is full),
//! it leaves the session to the announcer thread, which does the blocking
//! send and then enables the event. Until then the event is simply not
//! enabled for that session.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{MutexGuard, TryLockError};
use std::time::Duration;

use weft_probe_abi::control::Msg;
use weft_probe_abi::MAX_SESSIONS;

use crate::held::Held;
use crate::listener::{info, pattern_matches, CONNS, PATTERNS};

/// How long the announcer waits for a collector that stopped reading before
/// it ends that session.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Sessions the announcer must bring up to date.
static PENDING: AtomicU32 = AtomicU32::new(0);
/// Wakes the announcer: a pipe (each has an inode of its own, so a number
/// the program took over is told apart; eventfds share one). None: no
/// announcer, announce inline.
static WAKE_R: Held = Held::new();
static WAKE_W: Held = Held::new();
/// Whether an announcer was started (its pipe may be gone since).
static ANNOUNCER: AtomicBool = AtomicBool::new(false);

/// A session's connection as used for pushes, with the unsent end of a frame
/// that a non-blocking send left behind. Whoever writes next on the
/// connection sends that tail first, so frames never interleave.
pub(crate) struct Push {
    conn: UnixStream,
    tail: Vec<u8>,
    bit: u32,
}

/// Each session's push descriptor, so that a fork child can close its copy
/// without the session's lock (another thread may have held it at the fork).
static PUSH_FDS: [Held; MAX_SESSIONS as usize] = [const { Held::new() }; MAX_SESSIONS as usize];

impl Drop for Push {
    fn drop(&mut self) {
        // Forgotten before the descriptor closes (fields drop after this).
        PUSH_FDS[self.bit as usize].forget(self.conn.as_raw_fd());
    }
}

enum Sent {
    All,
    /// Not (completely) sent: the announcer must finish.
    Later,
    /// The connection is broken.
    Failed,
}

impl Push {
    pub(crate) fn new(conn: UnixStream, bit: u32) -> Push {
        let _ = conn.set_write_timeout(Some(PUSH_TIMEOUT));
        PUSH_FDS[bit as usize].set(conn.as_raw_fd());
        Push {
            conn,
            tail: Vec::new(),
            bit,
        }
    }

    /// Sends what a non-blocking push left unsent (blocking).
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        if !self.tail.is_empty() {
            self.conn.write_all(&self.tail)?;
            self.tail.clear();
        }
        Ok(())
    }

    /// Blocking send of a whole frame, after any tail.
    pub(crate) fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.flush()?;
        self.conn.write_all(frame)
    }

    /// Sends a frame without blocking, keeping what did not fit as the tail.
    fn try_send(&mut self, frame: &[u8]) -> Sent {
        if !self.tail.is_empty() {
            return Sent::Later;
        }
        // SAFETY: send from a valid buffer on our socket; never blocks.
        let n = unsafe {
            libc::send(
                self.conn.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Sent::Later,
                _ => Sent::Failed,
            };
        }
        let n = n as usize;
        if n == frame.len() {
            return Sent::All;
        }
        self.tail.extend_from_slice(&frame[n..]);
        Sent::Later
    }

    pub(crate) fn close(self) {
        let _ = self.conn.shutdown(std::net::Shutdown::Both);
    }
}

/// Starts the announcer thread (at start-up, and again in a fork child).
pub(crate) fn start() {
    let mut fds = [-1i32; 2];
    // SAFETY: pipe2 writes two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    let (r, w) = (fds[0], fds[1]);
    // Registering threads never wait on a full pipe (it wakes already).
    // SAFETY: fcntl on our own descriptor.
    unsafe { libc::fcntl(w, libc::F_SETFL, libc::O_NONBLOCK) };
    WAKE_R.set(r);
    WAKE_W.set(w);
    if crate::listener::spawn_quiet("weft-probe-announce", move || run(r)).is_ok() {
        ANNOUNCER.store(true, Ordering::Release);
    } else {
        WAKE_R.forget(r);
        WAKE_W.forget(w);
        crate::sys::close(r);
        crate::sys::close(w);
    }
}

/// In a fork child: the parent's announcer is not running here, and the
/// parent's push channels are not ours. Their descriptors are closed from
/// `PUSH_FDS`, without the locks; the `Push` values themselves are forgotten
/// (freeing could need the allocator's lock, and closing again would hit
/// a reused descriptor).
pub(crate) fn reset_after_fork() {
    for fd in &PUSH_FDS {
        fd.close_copy();
    }
    for c in &CONNS {
        match c.try_lock() {
            Ok(mut g) => std::mem::forget(g.take()),
            Err(TryLockError::Poisoned(p)) => std::mem::forget(p.into_inner().take()),
            Err(TryLockError::WouldBlock) => {}
        }
    }
    PENDING.store(0, Ordering::Release);
    WAKE_R.close_copy();
    WAKE_W.close_copy();
    ANNOUNCER.store(false, Ordering::Release);
}

fn run(fd: i32) {
    loop {
        let mut n = [0u8; 64];
        match crate::sys::read(fd, &mut n) {
            Ok(0) => return,
            Ok(_) | Err(libc::EINTR) => {}
            Err(_) => return,
        }
        let pending = PENDING.swap(0, Ordering::AcqRel);
        for bit in 0..MAX_SESSIONS {
            if pending & (1 << bit) != 0 {
                announce_blocking(bit);
            }
        }
    }
}

/// An event was registered: announce it to every attached session and
/// enable it where it matches.
pub(crate) fn on_register(e: &'static crate::Event, used: u32) {
    for bit in 0..MAX_SESSIONS {
        if used & (1 << bit) == 0 || announce_now(bit, e) {
            continue;
        }
        PENDING.fetch_or(1 << bit, Ordering::AcqRel);
        // Never into a descriptor of the program's that took the number over.
        match WAKE_W.get() {
            Some(fd) => {
                let _ = crate::sys::write(fd, &[1]);
            }
            // No announcer thread could be started: wait here after all.
            None if !ANNOUNCER.load(Ordering::Acquire) => announce_blocking(bit),
            // The program closed the announcer's pipe: the announcer
            // is stuck in its read; nobody can be woken.
            None => {}
        }
    }
}

fn try_lock<T>(m: &'static std::sync::Mutex<T>) -> Option<MutexGuard<'static, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Announces `e` to session `bit` and enables it there, if that can be done
/// without waiting. False: the announcer must do it.
fn announce_now(bit: u32, e: &'static crate::Event) -> bool {
    // Lock order as everywhere: patterns, then the connection. The patterns
    // stay locked until the bit is set, so a detach (which clears them first)
    // cannot leave it set.
    let Some(mut patterns) = try_lock(&PATTERNS[bit as usize]) else {
        return false;
    };
    let Some(mut conn) = try_lock(&CONNS[bit as usize]) else {
        return false;
    };
    let announced = match conn.as_mut() {
        // Attach in progress: its catch-up Info announces the event.
        None => true,
        Some(p) => match p.try_send(&Msg::Info(info()).encode()) {
            Sent::All => true,
            Sent::Later => return false,
            Sent::Failed => {
                if let Some(p) = conn.take() {
                    p.close();
                }
                // The session is ending: nothing is enabled for it any more
                // (no channel would otherwise read as an attach in progress).
                patterns.clear();
                return true;
            }
        },
    };
    if announced && patterns.iter().any(|p| pattern_matches(p, e.provider(), e.name())) {
        e.enable.fetch_or(1 << bit, Ordering::AcqRel);
    }
    true
}

/// The announcer's part: sends session `bit` the current event list (after
/// any unsent tail), then enables the events that match and are not enabled
/// yet for it.
fn announce_blocking(bit: u32) {
    let Ok(mut patterns) = PATTERNS[bit as usize].lock() else {
        return;
    };
    if patterns.is_empty() {
        // Detached meanwhile.
        return;
    }
    let todo: Vec<&'static crate::Event> = crate::registry::events()
        .into_iter()
        .filter(|e| e.enable.load(Ordering::Acquire) & (1 << bit) == 0)
        .filter(|e| patterns.iter().any(|p| pattern_matches(p, e.provider(), e.name())))
        .collect();
    let Ok(mut conn) = CONNS[bit as usize].lock() else {
        return;
    };
    let announced = match conn.as_mut() {
        None => true,
        Some(p) => p.send(&Msg::Info(info()).encode()).is_ok(),
    };
    if !announced {
        // A collector that stopped reading for PUSH_TIMEOUT, or is gone: a
        // half-written frame would corrupt the stream, so the session ends
        // (its control thread sees the shutdown and detaches).
        if let Some(p) = conn.take() {
            p.close();
        }
        patterns.clear();
        return;
    }
    for e in todo {
        e.enable.fetch_or(1 << bit, Ordering::AcqRel);
    }
}
