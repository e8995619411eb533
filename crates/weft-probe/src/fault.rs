//! Fault points in the write path, for tests only (feature `fault-points`):
//! `WEFT_PROBE_FAULT=POINT:K` SIGKILLs the program at the K-th write that
//! reaches POINT, to prove that a program dying mid-event loses at most that
//! event. Without the feature, `hit` compiles to nothing.

/// Where a write can be cut.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Point {
    /// Space reserved, header not stored.
    AfterReserve = 1,
    /// Header stored as WRITING, payload not copied.
    MidWrite = 2,
    /// Payload copied, not committed.
    BeforeCommit = 3,
    /// Committed, counters not updated.
    AfterCommit = 4,
}

#[cfg(feature = "fault-points")]
mod imp {
    use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

    use super::Point;

    static POINT: AtomicU8 = AtomicU8::new(0);
    static AT: AtomicU64 = AtomicU64::new(0);
    static HITS: AtomicU64 = AtomicU64::new(0);

    /// Reads `WEFT_PROBE_FAULT` once, at start-up (never on the write path).
    pub(crate) fn init() {
        let Ok(v) = std::env::var("WEFT_PROBE_FAULT") else {
            return;
        };
        let Some((p, k)) = v.split_once(':') else { return };
        let point = match p {
            "after_reserve" => Point::AfterReserve,
            "mid_write" => Point::MidWrite,
            "before_commit" => Point::BeforeCommit,
            "after_commit" => Point::AfterCommit,
            _ => return,
        };
        if let Ok(k) = k.parse() {
            AT.store(k, Ordering::Relaxed);
            POINT.store(point as u8, Ordering::Release);
        }
    }

    #[inline(always)]
    pub(crate) fn hit(p: Point) {
        if POINT.load(Ordering::Relaxed) == p as u8
            && HITS.fetch_add(1, Ordering::Relaxed) + 1 == AT.load(Ordering::Relaxed)
        {
            // SAFETY: kill and getpid have no memory preconditions.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }
}

#[cfg(not(feature = "fault-points"))]
mod imp {
    use super::Point;

    pub(crate) fn init() {}

    #[inline(always)]
    pub(crate) fn hit(_: Point) {}
}

pub(crate) use imp::{hit, init};
