//! fork: the child must never write into the parent's buffers (they are
//! MADV_DONTFORK, so not mapped in the child), and gets its own socket so
//! the collector can give it buffers of its own. The handler runs inside
//! `fork()`, which may have been called from a signal handler, so it makes
//! async-signal-safe calls only (crate::child starts the child's socket).
//!
//! Safety of the child's writes does not depend on this handler: the
//! session epochs live in a MADV_WIPEONFORK page (crate::epoch), so until
//! the handler has run (a signal handler or an earlier atfork handler
//! writing, or a raw fork syscall that runs no handler) the child's writes
//! find no session and are dropped.

use std::sync::atomic::Ordering;

use crate::ring::SESSIONS;

pub(crate) fn install() {
    // SAFETY: registering a plain extern "C" child handler.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}

/// Async-signal-safe (crate::child), where this architecture allows.
extern "C" fn child() {
    // Wait for an attach only if the parent was being recorded: otherwise no
    // collector is looking for this child, and a program that outlived its
    // recording would wait at every fork.
    let recorded = SESSIONS.iter().any(|s| s.base.load(Ordering::Acquire) != 0);
    reset();
    let reachable = match crate::child::start() {
        crate::child::Started::Listening => true,
        crate::child::Started::Unreachable => false,
        crate::child::Started::Unsupported => {
            // No raw system calls here: the process's own setup, which
            // allocates and starts threads (docs/probe-buffers.md, D12).
            crate::listener::start_listener();
            crate::listener::socket_path().is_some()
        }
    };
    // Nobody can attach a child without a socket: it does not wait.
    if recorded && reachable {
        crate::listener::wait_for_attach(3000);
    }
}

/// Forgets the parent's sessions, connections and half-done registrations:
/// atomic stores, `close` and lock attempts only (async-signal-safe).
fn reset() {
    crate::registry::reset_after_fork();
    crate::registry::each(|e| {
        e.enable.fetch_and(!weft_probe_abi::SESSION_MASK, Ordering::AcqRel);
    });
    for (si, s) in SESSIONS.iter().enumerate() {
        s.base.store(0, Ordering::Release);
        crate::epoch::advance(si);
    }
    crate::ring::reset_thread_after_fork();
    crate::listener::reset_after_fork();
    crate::child::reset_after_fork();
}
