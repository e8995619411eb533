//! Finding and talking to instrumented processes over their control sockets.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use weft_probe_abi::control::{Msg, ProcessInfo, MAX_FRAME, PROTOCOL_VERSION};
use weft_probe_abi::layout::Mode;
use weft_probe_abi::{check_private_dir, parse_socket_name, process_start_time, runtime_dir_owner, runtime_dirs};

use crate::area::Area;
use crate::ProbeError;

/// A process that has a live-looking control socket.
#[derive(Debug, Clone)]
pub struct Instrumented {
    pub pid: u32,
    pub start_time: u64,
    pub socket: PathBuf,
    /// The uid its runtime directory (and so the process) belongs to.
    pub owner: u32,
}

/// Runtime directories to look in, each with the uid that must own it and
/// every socket in it. A directory that is not private to its uid (a link,
/// someone else's, open to others) is skipped: a socket there could have
/// been put or replaced by anyone.
pub(crate) fn candidate_dirs() -> Vec<(PathBuf, u32)> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mut dirs = runtime_dirs(me);
    // Root also looks where other users' processes put theirs.
    if me == 0 {
        dirs.push(PathBuf::from("/run/weft"));
        for (parent, prefix, sub) in [("/tmp", "weft-", None), ("/run/user", "", Some("weft"))] {
            let Ok(rd) = std::fs::read_dir(parent) else { continue };
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix) {
                    dirs.push(sub.map_or_else(|| e.path(), |s| e.path().join(s)));
                }
            }
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs.into_iter()
        .filter_map(|d| {
            use std::os::unix::fs::MetadataExt;
            // WEFT_RUNTIME_DIR: whoever owns it, as long as it is private.
            let owner = match runtime_dir_owner(&d) {
                Some(o) => o,
                None => std::fs::symlink_metadata(&d).ok()?.uid(),
            };
            check_private_dir(&d, owner).ok().map(|()| (d, owner))
        })
        .collect()
}

/// Instrumented processes whose socket names match a running process.
pub fn discover() -> Vec<Instrumented> {
    let mut out = Vec::new();
    for (dir, owner) in candidate_dirs() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some((pid, start)) = parse_socket_name(&name.to_string_lossy()) else {
                continue;
            };
            if process_start_time(pid) == Some(start) {
                if socket_of(&e.path(), owner).is_ok() {
                    out.push(Instrumented {
                        pid,
                        start_time: start,
                        socket: e.path(),
                        owner,
                    });
                }
            } else if stale_and_ours(&e) {
                // Left by a process that was killed (no atexit ran): its
                // name can never match a live process again.
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    out.sort_by_key(|i| i.pid);
    out.dedup_by_key(|i| i.pid);
    out
}

/// A socket file (not anything else with such a name) that we may remove:
/// root's view of /proc is complete; another user only judges sockets of its
/// own, whose processes it can always see.
fn stale_and_ours(e: &std::fs::DirEntry) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(meta) = e.metadata() else { return false };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    meta.file_type().is_socket() && (me == 0 || meta.uid() == me)
}

/// Why the file at `path` is not a socket of `owner` (a link planted
/// there, a file, someone else's socket), or Ok.
fn socket_of(path: &std::path::Path, owner: u32) -> Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if m.file_type().is_symlink() {
        return Err("it is a symbolic link, not a socket".into());
    }
    if !m.file_type().is_socket() {
        return Err("it is not a socket".into());
    }
    if m.uid() != owner {
        return Err(format!(
            "it belongs to uid {}, not to the directory's uid {owner}",
            m.uid()
        ));
    }
    Ok(())
}

pub(crate) fn find(pid: u32) -> Result<Instrumented, ProbeError> {
    find_in(&candidate_dirs(), pid)
}

/// `find` in directories listed beforehand (`candidate_dirs`).
pub(crate) fn find_in(dirs: &[(PathBuf, u32)], pid: u32) -> Result<Instrumented, ProbeError> {
    let start = process_start_time(pid).ok_or(ProbeError::NotInstrumented { pid })?;
    for (d, owner) in dirs.iter().cloned() {
        let p = d.join(weft_probe_abi::socket_name(pid, start));
        if std::fs::symlink_metadata(&p).is_err() {
            continue;
        }
        socket_of(&p, owner).map_err(|why| ProbeError::Unsafe {
            path: p.display().to_string(),
            why,
        })?;
        return Ok(Instrumented {
            pid,
            start_time: start,
            socket: p,
            owner,
        });
    }
    Err(ProbeError::NotInstrumented { pid })
}

/// How long a whole handshake (Hello to Info, Attach to Attached) and a
/// detach may take: a peer that trickles its answer a byte at a time is
/// given up on, not waited for.
pub(crate) const EXCHANGE: Duration = Duration::from_secs(1);

/// Waits until `conn` is ready for `events` or `deadline` passes.
fn wait_ready(conn: &UnixStream, events: i16, deadline: Instant) -> std::io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Past the deadline, what is already there still counts: the
        // recorder itself may have been stopped (SIGSTOP, a suspended
        // machine) while the answer arrived, and a process that answered
        // and exited meanwhile has events to drain.
        let wait_ms = if left.is_zero() {
            0
        } else {
            left.as_millis().clamp(1, i32::MAX as u128) as i32
        };
        let mut p = libc::pollfd {
            fd: conn.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: polling one descriptor we own.
        let n = unsafe { libc::poll(&mut p, 1, wait_ms) };
        if n > 0 {
            return Ok(());
        }
        if n == 0 && left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no complete answer within {} ms", EXCHANGE.as_millis()),
            ));
        }
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(std::io::Error::last_os_error());
        }
    }
}

/// A non-blocking connection to the socket at `path`, made before
/// `deadline` (a full backlog is retried, never waited on without bound).
fn connect_until(path: &std::path::Path, deadline: Instant) -> std::io::Result<UnixStream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let bytes = path.as_os_str().as_encoded_bytes();
    // SAFETY: sockaddr_un is plain data; all zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, &b) in addr.sun_path.iter_mut().zip(bytes) {
        *d = b as libc::c_char;
    }
    // SAFETY: socket has no memory preconditions.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    loop {
        // SAFETY: addr is a valid sockaddr_un of the size given.
        let r = unsafe {
            libc::connect(
                fd,
                (&addr as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return Ok(UnixStream::from(sock));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            // The listener's backlog is full: it is not accepting.
            Some(libc::EAGAIN) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Some(libc::EAGAIN) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the process does not accept connections",
                ))
            }
            Some(libc::EINPROGRESS) => {
                let conn = UnixStream::from(sock);
                wait_ready(&conn, libc::POLLOUT, deadline)?;
                return match conn.take_error()? {
                    Some(e) => Err(e),
                    None => Ok(conn),
                };
            }
            _ => return Err(e),
        }
    }
}

/// Writes a whole frame on a non-blocking socket before `deadline`.
fn send_until(conn: &UnixStream, bytes: &[u8], deadline: Instant) -> std::io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        match (&*conn).write(&bytes[done..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_ready(conn, libc::POLLOUT, deadline)?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Frames read from a non-blocking connection: bytes are collected as they
/// come, so a frame the peer sends in pieces never makes a reader wait.
#[derive(Default)]
pub(crate) struct Inbox {
    buf: Vec<u8>,
    /// The peer closed its end (or broke the stream).
    pub closed: bool,
    /// Why the stream broke, if the peer did not just close it.
    pub broken: Option<String>,
}

impl Inbox {
    /// Reads what is there now, without waiting.
    fn fill(&mut self, conn: &UnixStream) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            match (&*conn).read(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    return Ok(());
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.closed = true;
                    return Err(e);
                }
            }
            // A frame is at most MAX_FRAME: more buffered than one frame
            // and its length is garbage, which `next` reports.
            if self.buf.len() > MAX_FRAME + 4 {
                return Ok(());
            }
        }
    }

    /// The next complete frame, if one is buffered.
    fn next(&mut self) -> std::io::Result<Option<Msg>> {
        let Some(len) = self.buf.get(..4) else { return Ok(None) };
        let n = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if n == 0 || n > MAX_FRAME {
            self.closed = true;
            let why = format!("a control frame of {n} bytes (the limit is {MAX_FRAME})");
            self.broken.get_or_insert(why.clone());
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
        }
        if self.buf.len() < 4 + n {
            return Ok(None);
        }
        let m = Msg::decode(&self.buf[4..4 + n]);
        self.buf.drain(..4 + n);
        m.map(Some).map_err(|e| {
            self.closed = true;
            self.broken.get_or_insert(format!("an undecodable control frame: {e}"));
            std::io::Error::new(std::io::ErrorKind::InvalidData, e)
        })
    }

    /// Frames that are complete now (no waiting).
    pub(crate) fn ready(&mut self, conn: &UnixStream) -> Vec<Msg> {
        let mut out = Vec::new();
        let _ = self.fill(conn);
        while let Ok(Some(m)) = self.next() {
            out.push(m);
        }
        out
    }

    /// The next frame, waiting for it until `deadline`.
    fn recv_until(&mut self, conn: &UnixStream, deadline: Instant) -> std::io::Result<Msg> {
        loop {
            if let Some(m) = self.next()? {
                return Ok(m);
            }
            if self.closed {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            wait_ready(conn, libc::POLLIN, deadline)?;
            self.fill(conn)?;
        }
    }
}

fn peer_cred(conn: &UnixStream) -> libc::ucred {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes one ucred.
    unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    cred
}

/// Which process the peer's listening socket belongs to now, by a pidfd the
/// kernel makes for whoever called `listen` (SO_PEERPIDFD, Linux 6.5): its
/// pid, or None when that process has exited. `Err` when the kernel cannot
/// say (older kernels), so the start time in the socket's name, checked by
/// `find`, is all there is.
fn peer_process(conn: &UnixStream) -> Result<Option<u32>, ()> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_PEERPIDFD writes one int, a new descriptor we then own.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || fd < 0 {
        return Err(());
    }
    // SAFETY: the kernel just gave us this descriptor.
    let pidfd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // "Pid: -1" once the process has exited (reaped or not yet).
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).map_err(|_| ())?;
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .ok_or(())?;
    Ok(u32::try_from(pid).ok().filter(|&p| p > 0))
}

/// Connects, verifies the peer is really `pid`, and exchanges Hello/Info.
pub(crate) fn hello(pid: u32) -> Result<(UnixStream, ProcessInfo, Inbox), ProbeError> {
    let inst = find(pid)?;
    // The connect is part of the exchange: a listener that never accepts
    // (its backlog full) is given up on at the same deadline.
    let deadline = Instant::now() + EXCHANGE;
    let conn = connect_until(&inst.socket, deadline).map_err(|source| ProbeError::Io {
        what: format!("connecting to {}", inst.socket.display()),
        source,
    })?;
    // Before sending anything: is the server the process the name claims,
    // running as the uid whose directory holds the socket? The kernel says,
    // not the peer.
    let cred = peer_cred(&conn);
    if cred.pid != pid as i32 || cred.uid != inst.owner {
        return Err(ProbeError::WrongPeer {
            path: inst.socket.display().to_string(),
            expected: pid,
            actual: cred.pid,
            uid: cred.uid,
        });
    }
    // SO_PEERCRED keeps the pid of whoever listened even after it exited:
    // a pid reused since would pass the check above.
    if let Ok(now) = peer_process(&conn) {
        if now != Some(pid) {
            return Err(ProbeError::ReusedPid {
                path: inst.socket.display().to_string(),
                pid,
            });
        }
    }
    let proto = |why: String| ProbeError::Protocol { pid, why };
    let hello = Msg::Hello {
        version: PROTOCOL_VERSION,
    };
    send_until(&conn, &hello.encode(), deadline).map_err(|e| proto(e.to_string()))?;
    let mut inbox = Inbox::default();
    match inbox.recv_until(&conn, deadline).map_err(|e| proto(e.to_string()))? {
        Msg::Info(info) if info.pid == pid => Ok((conn, info, inbox)),
        Msg::Info(info) => Err(proto(format!("claims to be pid {}", info.pid))),
        Msg::Error(e) => Err(proto(e)),
        m => Err(proto(format!("unexpected answer {m:?}"))),
    }
}

/// Sends Attach with the area's memfd; returns (session bit, events enabled).
pub(crate) fn send_attach(
    conn: &UnixStream,
    inbox: &mut Inbox,
    pid: u32,
    area: &Area,
    mode: Mode,
    patterns: &[String],
) -> Result<(u32, u32), ProbeError> {
    let frame = Msg::Attach {
        mode: mode as u32,
        patterns: patterns.to_vec(),
    }
    .encode();
    let mut iov = libc::iovec {
        iov_base: frame.as_ptr() as *mut _,
        iov_len: frame.len(),
    };
    let mut cmsg = [0u64; 4];
    // SAFETY: zeroed msghdr, then filled with valid pointers for this call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(4) } as usize;
    // SAFETY: the control buffer is large enough for one fd.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut i32, area.fd());
    }
    let proto = |why: String| ProbeError::Protocol { pid, why };
    let deadline = Instant::now() + EXCHANGE;
    // A fresh connection's send buffer takes a small frame whole; if it is
    // full, the peer is not reading, which the deadline settles.
    let n = loop {
        // SAFETY: msg refers to live buffers.
        let n = unsafe { libc::sendmsg(conn.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        let e = std::io::Error::last_os_error();
        match e.kind() {
            _ if n >= 0 => break n,
            std::io::ErrorKind::WouldBlock => {
                wait_ready(conn, libc::POLLOUT, deadline).map_err(|e| proto(e.to_string()))?
            }
            std::io::ErrorKind::Interrupted => {}
            _ => return Err(proto(format!("sending the buffer memory: {e}"))),
        }
    };
    if n as usize != frame.len() {
        return Err(proto("sending the buffer memory: cut short".into()));
    }
    match inbox.recv_until(conn, deadline).map_err(|e| proto(e.to_string()))? {
        Msg::Attached { session, enabled } => Ok((session, enabled)),
        Msg::Error(e) => Err(proto(e)),
        m => Err(proto(format!("unexpected answer {m:?}"))),
    }
}

/// Event lists the process pushed since we last looked (no waiting: a
/// frame not complete yet stays in `inbox` for the next look).
pub(crate) fn pushed(conn: &UnixStream, inbox: &mut Inbox, pid: u32) -> Vec<ProcessInfo> {
    inbox
        .ready(conn)
        .into_iter()
        .filter_map(|m| match m {
            Msg::Info(info) if info.pid == pid => Some(info),
            _ => None,
        })
        .collect()
}

/// Asks the process to stop writing and waits (at most `EXCHANGE`) for its
/// answer. Event lists it pushed meanwhile (for `pid`) are returned: their
/// records may be in the area still.
pub(crate) fn detach(conn: &UnixStream, inbox: &mut Inbox, pid: u32) -> Vec<ProcessInfo> {
    let mut pushed = Vec::new();
    let deadline = Instant::now() + EXCHANGE;
    if send_until(conn, &Msg::Detach.encode(), deadline).is_ok() {
        while let Ok(m) = inbox.recv_until(conn, deadline) {
            match m {
                Msg::Info(info) if info.pid == pid => pushed.push(info),
                Msg::Info(_) => {}
                _ => break,
            }
        }
    }
    pushed
}

/// Tells the process that no attach is coming now (`Later`) and waits (at
/// most `EXCHANGE`) for its answer.
pub(crate) fn later(conn: &UnixStream, inbox: &mut Inbox, pid: u32) -> Result<(), ProbeError> {
    let proto = |why: String| ProbeError::Protocol { pid, why };
    let deadline = Instant::now() + EXCHANGE;
    send_until(conn, &Msg::Later.encode(), deadline).map_err(|e| proto(e.to_string()))?;
    loop {
        match inbox.recv_until(conn, deadline).map_err(|e| proto(e.to_string()))? {
            Msg::Detached => return Ok(()),
            // Events registered meanwhile: nobody reads them here.
            Msg::Info(_) => {}
            Msg::Error(e) => return Err(proto(e)),
            m => return Err(proto(format!("unexpected answer {m:?}"))),
        }
    }
}

/// Whether the process closed the connection (it exited or exec'd).
pub(crate) fn peer_closed(conn: &UnixStream) -> bool {
    let mut p = libc::pollfd {
        fd: conn.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polling one descriptor we own, without waiting.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n <= 0 {
        return false;
    }
    if p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        return true;
    }
    let mut b = [0u8; 1];
    // SAFETY: peeking one byte into a local buffer.
    let r = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    r == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixListener;

    /// An answer that arrived while the recorder was stopped past its
    /// deadline still counts (a CI run lost a whole process's events when a
    /// test SIGSTOPped the recorder for 10 s right after the process was
    /// attached); with nothing there, the deadline holds.
    #[test]
    fn an_answer_already_there_counts_after_the_deadline() {
        use std::io::Write;
        let (mut a, b) = UnixStream::pair().expect("socketpair");
        let past = Instant::now() - Duration::from_secs(1);
        let timed_out = wait_ready(&b, libc::POLLIN, past).expect_err("nothing to read yet");
        assert_eq!(timed_out.kind(), std::io::ErrorKind::TimedOut);
        a.write_all(b"x").expect("write");
        wait_ready(&b, libc::POLLIN, past).expect("the byte is there");
    }

    /// Identity comes from the kernel (SO_PEERCRED), never from what the
    /// peer says: a process answering with another pid's Info is refused.
    #[test]
    fn an_answer_naming_another_pid_is_refused() {
        let me = std::process::id();
        let dir = std::env::temp_dir().join(format!("weft-connect-test-{me}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::env::set_var("WEFT_RUNTIME_DIR", &dir);
        let start = process_start_time(me).unwrap();
        let l = UnixListener::bind(dir.join(weft_probe_abi::socket_name(me, start))).unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut hello = [0u8; 64];
            let _ = c.read(&mut hello);
            let forged = Msg::Info(ProcessInfo {
                pid: me + 1,
                start_time: start,
                comm: "impostor".into(),
                sessions: 1,
                user_events: false,
                events: Vec::new(),
            });
            let _ = c.write_all(&forged.encode());
        });
        let r = hello(me);
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        match r {
            Err(ProbeError::Protocol { why, .. }) => assert!(why.contains("claims to be pid"), "{why}"),
            other => panic!("a forged Info was accepted: {:?}", other.map(|(_, i, _)| i)),
        }
    }

    /// A frame over the limit, or one that does not decode, breaks the
    /// connection and says why (the recorder reports it).
    #[test]
    fn a_frame_over_the_limit_or_undecodable_breaks_the_inbox_and_says_why() {
        let mut inbox = Inbox::default();
        inbox.buf.extend_from_slice(&((MAX_FRAME + 1) as u32).to_le_bytes());
        assert!(inbox.next().is_err());
        assert!(inbox.closed);
        assert!(
            inbox.broken.as_deref().unwrap_or("").contains("the limit is"),
            "{:?}",
            inbox.broken
        );
        let mut inbox = Inbox::default();
        inbox.buf.extend_from_slice(&1u32.to_le_bytes());
        inbox.buf.push(0xee); // no such message type
        assert!(inbox.next().is_err());
        assert!(
            inbox.broken.as_deref().unwrap_or("").contains("undecodable"),
            "{:?}",
            inbox.broken
        );
    }
}
