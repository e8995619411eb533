//! Descriptors the library holds in a process it does not own: the program
//! may close any of them and reuse the number (a daemon that closes what it
//! inherited, a child that redirects everything). Each is kept with the
//! device and inode it had, so that a fork child's handler, or a thread
//! about to use it, never touches a descriptor of the program's instead.
//! Sockets and pipes have inodes of their own, unique while they are open;
//! anonymous-inode files (eventfd, epoll, timerfd) may all share one, so
//! none is held here.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::sys;

/// What a descriptor number refers to: (device, inode).
pub(crate) type Identity = (u64, u64);

/// A slot being filled (`set_if_free`): not a descriptor yet.
const RESERVED: i32 = -2;

pub(crate) struct Held {
    fd: AtomicI32,
    dev: AtomicU64,
    ino: AtomicU64,
}

impl Held {
    pub(crate) const fn new() -> Held {
        Held {
            fd: AtomicI32::new(-1),
            dev: AtomicU64::new(0),
            ino: AtomicU64::new(0),
        }
    }

    /// Holds `fd` (replacing what was held, which is not closed).
    pub(crate) fn set(&self, fd: i32) {
        self.fd.store(RESERVED, Ordering::Release);
        self.store_identity(fd);
        self.fd.store(fd, Ordering::Release);
    }

    /// Holds `fd` if nothing is held here; false if something is. The
    /// identity is in place before the number is: a fork in between sees
    /// the slot reserved, never a number paired with another's identity.
    pub(crate) fn set_if_free(&self, fd: i32) -> bool {
        if self
            .fd
            .compare_exchange(-1, RESERVED, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.store_identity(fd);
        self.fd.store(fd, Ordering::Release);
        true
    }

    fn store_identity(&self, fd: i32) {
        let (dev, ino) = sys::identity(fd).unwrap_or((0, 0));
        self.dev.store(dev, Ordering::Release);
        self.ino.store(ino, Ordering::Release);
    }

    /// What the held descriptor referred to when it was taken.
    pub(crate) fn identity(&self) -> Option<Identity> {
        Some((self.dev.load(Ordering::Acquire), self.ino.load(Ordering::Acquire)))
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
        (fd >= 0 && sys::identity(fd) == self.identity()).then_some(fd)
    }

    /// In a fork child: closes the child's copy, unless the program had
    /// taken the number over. Async-signal-safe.
    pub(crate) fn close_copy(&self) {
        let fd = self.fd.swap(-1, Ordering::AcqRel);
        if fd >= 0 && sys::identity(fd) == self.identity() {
            sys::close(fd);
        }
    }
}
