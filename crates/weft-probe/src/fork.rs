//! fork: the child must never write into the parent's buffers (they are
//! MADV_DONTFORK, so it could not anyway), and gets its own socket so the
//! collector can give it buffers of its own.

use std::sync::atomic::Ordering;

use crate::ring::SESSIONS;

pub(crate) fn install() {
    // SAFETY: registering a plain extern "C" child handler.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}

extern "C" fn child() {
    // Wait for an attach only if the parent was being recorded: otherwise no
    // collector is looking for this child, and a program that outlived its
    // recording would wait at every fork.
    let recorded = SESSIONS.iter().any(|s| s.base.load(Ordering::Acquire) != 0);
    crate::registry::reset_after_fork();
    crate::registry::each(|e| {
        e.enable.fetch_and(!weft_probe_abi::SESSION_MASK, Ordering::AcqRel);
    });
    for s in &SESSIONS {
        s.base.store(0, Ordering::Release);
        s.epoch.fetch_add(1, Ordering::AcqRel);
    }
    crate::ring::reset_thread_after_fork();
    crate::listener::reset_after_fork();
    crate::listener::start_listener();
    if recorded {
        crate::listener::wait_for_attach(3000);
    }
}
