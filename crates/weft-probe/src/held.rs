//! Descriptors the library holds in a process it does not own: the program
//! may close any of them and reuse the number (a daemon that closes what it
//! inherited, a child that redirects everything). Each is kept with the
//! inode it had, so that a fork child's handler, or a thread about to
//! write to it, never touches a descriptor of the program's instead.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::sys;

pub(crate) struct Held {
    fd: AtomicI32,
    inode: AtomicU64,
}

impl Held {
    pub(crate) const fn new() -> Held {
        Held {
            fd: AtomicI32::new(-1),
            inode: AtomicU64::new(0),
        }
    }

    /// Holds `fd` (replacing what was held, which is not closed).
    pub(crate) fn set(&self, fd: i32) {
        self.inode.store(inode(fd), Ordering::Release);
        self.fd.store(fd, Ordering::Release);
    }

    /// Holds `fd` if nothing is held here; false if something is.
    pub(crate) fn set_if_free(&self, fd: i32) -> bool {
        if self
            .fd
            .compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.inode.store(inode(fd), Ordering::Release);
        true
    }

    /// Stops holding `fd` (without closing it), if it is what is held.
    pub(crate) fn forget(&self, fd: i32) -> bool {
        self.fd
            .compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// The descriptor, if its number still refers to what was held.
    pub(crate) fn get(&self) -> Option<i32> {
        let fd = self.fd.load(Ordering::Acquire);
        (fd >= 0 && inode(fd) == self.inode.load(Ordering::Acquire)).then_some(fd)
    }

    /// In a fork child: closes the child's copy, unless the program had
    /// taken the number over. Async-signal-safe.
    pub(crate) fn close_copy(&self) {
        let fd = self.fd.swap(-1, Ordering::AcqRel);
        if fd >= 0 && inode(fd) == self.inode.load(Ordering::Acquire) {
            sys::close(fd);
        }
    }
}

/// The inode behind `fd` (0: none). Sockets and pipes have inodes of their
/// own, unique while they are open; anonymous-inode files (eventfd, epoll,
/// timerfd) may all share one, so none is held here.
fn inode(fd: i32) -> u64 {
    sys::identity(fd).map_or(0, |(_, ino)| ino)
}
