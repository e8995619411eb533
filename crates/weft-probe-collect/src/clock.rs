//! Maps the probe's cheap tick counter (TSC) to CLOCK_MONOTONIC, the clock
//! of kernel events, from (tick, monotonic) pairs the collector measures
//! itself: it never trusts clock data written by the traced program.

use std::collections::VecDeque;

pub struct TscClock {
    first: (u64, u64),
    pairs: VecDeque<(u64, u64)>,
}

fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        mono()
    }
}

fn mono() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into ts.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One pair, the tightest of a few tries: the tick read brackets the clock read.
fn sample() -> (u64, u64) {
    let mut best = (u64::MAX, 0, 0);
    for _ in 0..5 {
        let t1 = ticks();
        let m = mono();
        let t2 = ticks();
        if t2.wrapping_sub(t1) < best.0 {
            best = (t2.wrapping_sub(t1), t1 / 2 + t2 / 2, m);
        }
    }
    (best.1, best.2)
}

impl TscClock {
    /// Calibrates over ~10 ms.
    pub fn new() -> TscClock {
        let first = sample();
        std::thread::sleep(std::time::Duration::from_millis(10));
        let mut pairs = VecDeque::new();
        pairs.push_back(first);
        pairs.push_back(sample());
        TscClock { first, pairs }
    }

    /// Adds a fresh pair; call before each drain so new records are bracketed.
    pub fn update(&mut self) {
        self.pairs.push_back(sample());
        while self.pairs.len() > 256 {
            self.pairs.pop_front();
        }
    }

    /// CLOCK_MONOTONIC nanoseconds for a tick value.
    pub fn to_mono(&self, t: u64) -> u64 {
        if !cfg!(target_arch = "x86_64") {
            return t;
        }
        let n = self.pairs.len();
        // Bracketing pairs, or the nearest two for extrapolation.
        let i = self.pairs.iter().position(|&(pt, _)| pt > t).unwrap_or(n);
        let (a, b) = match i {
            0 => (self.first, self.pairs[n - 1]),
            i if i >= n => (self.pairs[n.saturating_sub(2).min(n - 1)], self.pairs[n - 1]),
            i => (self.pairs[i - 1], self.pairs[i]),
        };
        let (a, b) = if b.0 == a.0 {
            (self.first, self.pairs[n - 1])
        } else {
            (a, b)
        };
        if b.0 == a.0 {
            return a.1;
        }
        let dt = t as i128 - a.0 as i128;
        let v = a.1 as i128 + dt * (b.1 as i128 - a.1 as i128) / (b.0 as i128 - a.0 as i128);
        v.clamp(0, u64::MAX as i128) as u64
    }
}

impl Default for TscClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_ticks_to_monotonic_closely() {
        let mut c = TscClock::new();
        let (t, m) = sample();
        std::thread::sleep(std::time::Duration::from_millis(5));
        c.update();
        let err = c.to_mono(t) as i64 - m as i64;
        assert!(err.abs() < 5_000, "error {err} ns");
    }
}
