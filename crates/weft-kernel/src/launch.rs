//! Starting a command so that none of it runs before tracing is on: fork a
//! child that waits on a pipe, let the caller attach, then let it exec.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::error::{KernelError, Result};

/// A forked child waiting for `release` before it execs.
pub struct Paused {
    pub pid: u32,
    program: String,
    go: OwnedFd,
    exec_status: OwnedFd,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Forks a child that will exec `argv` (looked up in PATH) once released,
/// with this process's environment plus `env` (which wins): only the child
/// sees those, and nothing is allocated between the fork and the exec.
pub fn spawn_paused(argv: &[OsString], env: &[(&str, &str)]) -> Result<Paused> {
    let program = argv
        .first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let spawn_err = |source| KernelError::Spawn {
        program: program.clone(),
        source,
    };
    let cargs: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| spawn_err(std::io::Error::from_raw_os_error(libc::EINVAL))))
        .collect::<Result<_>>()?;
    if cargs.is_empty() {
        return Err(spawn_err(std::io::Error::from_raw_os_error(libc::ENOENT)));
    }
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let mut vars: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| !env.iter().any(|(e, _)| k.as_bytes() == e.as_bytes()))
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).ok()
        })
        .collect();
    vars.extend(env.iter().filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok()));
    let mut envp: Vec<*const libc::c_char> = vars.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let (go_r, go_w) = pipe().map_err(spawn_err)?;
    let (st_r, st_w) = pipe().map_err(spawn_err)?;
    // SAFETY: the child only calls async-signal-safe functions (read, write,
    // execvp, _exit) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(spawn_err(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above; every pointer is valid in the child's copy of memory.
        unsafe {
            let mut b = 0u8;
            loop {
                let n = libc::read(go_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
                if n >= 0 || *libc::__errno_location() != libc::EINTR {
                    break;
                }
            }
            if b != 1 {
                libc::_exit(126);
            }
            libc::execvpe(ptrs[0], ptrs.as_ptr(), envp.as_ptr());
            let e = *libc::__errno_location();
            libc::write(st_w.as_raw_fd(), (&e as *const i32).cast(), 4);
            libc::_exit(127);
        }
    }
    drop(go_r);
    drop(st_w);
    Ok(Paused {
        pid: pid as u32,
        program,
        go: go_w,
        exec_status: st_r,
    })
}

impl Paused {
    /// Lets the child exec; fails if the exec fails (e.g. command not found).
    pub fn release(self) -> Result<()> {
        let one = 1u8;
        // SAFETY: writing one byte from a valid buffer to our pipe.
        unsafe { libc::write(self.go.as_raw_fd(), (&one as *const u8).cast(), 1) };
        drop(self.go);
        let mut e = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            // SAFETY: reading into the remaining part of a valid buffer.
            let n = unsafe { libc::read(self.exec_status.as_raw_fd(), e[got..].as_mut_ptr().cast(), 4 - got) };
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if n <= 0 {
                break;
            }
            got += n as usize;
        }
        if got == 4 {
            let errno = i32::from_ne_bytes(e);
            let mut status = 0;
            // SAFETY: reaping our own child, which has exited with 127.
            unsafe { libc::waitpid(self.pid as i32, &mut status, 0) };
            return Err(KernelError::Spawn {
                program: self.program,
                source: std::io::Error::from_raw_os_error(errno),
            });
        }
        Ok(())
    }

    /// Kills the waiting child (tracing could not be set up).
    pub fn abort(self) {
        // SAFETY: signalling and reaping our own child.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(self.pid as i32, &mut status, 0);
        }
    }
}
