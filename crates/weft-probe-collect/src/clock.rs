//! Maps the probe's cheap tick counter (TSC) to CLOCK_MONOTONIC, the clock
//! of kernel events, from (tick, monotonic) pairs the collector measures
//! itself: it never trusts clock data written by the traced program.

use std::collections::VecDeque;

pub struct TscClock {
    first: (u64, u64),
    pairs: VecDeque<(u64, u64)>,
    /// The last segment used and its slope: consecutive records of a thread
    /// fall in the same one, so the division is done once per segment.
    last: std::cell::Cell<Option<Line>>,
}

#[derive(Clone, Copy, PartialEq)]
struct Line {
    /// Ticks this line is used for (the last one runs on to u64::MAX).
    from: u64,
    to: u64,
    lo: (u64, u64),
    hi: (u64, u64),
    /// 32.32 fixed-point nanoseconds per tick.
    slope: u128,
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
pub(crate) fn sample() -> (u64, u64) {
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
        TscClock {
            first,
            pairs,
            last: std::cell::Cell::new(None),
        }
    }

    /// Adds a fresh pair; call before each drain so new records are bracketed.
    /// Pairs closer than 1 ms are not kept: their slope would be noise, and a
    /// collector draining continuously would fill the window in no time.
    pub fn update(&mut self) {
        let p = sample();
        if self.pairs.back().is_some_and(|l| p.1.saturating_sub(l.1) < 1_000_000) {
            return;
        }
        self.pairs.push_back(p);
        while self.pairs.len() > 256 {
            self.pairs.pop_front();
        }
        // The segments changed: the cached one may no longer be right.
        self.last.set(None);
    }

    /// CLOCK_MONOTONIC nanoseconds for a tick value.
    pub fn to_mono(&self, t: u64) -> u64 {
        if !cfg!(target_arch = "x86_64") {
            return t;
        }
        match self.line(t) {
            Some(l) => l.at(t),
            None => self.first.1,
        }
    }

    /// The straight line this clock uses around tick `t`, to convert a
    /// run of records that starts there.
    pub fn line_at(&self, t: u64) -> TickLine {
        if !cfg!(target_arch = "x86_64") {
            return TickLine::IDENTITY;
        }
        match self.line(t) {
            Some(l) => TickLine {
                tick0: l.lo.0,
                mono0: l.lo.1,
                slope: u64::try_from(l.slope).unwrap_or(u64::MAX),
            },
            None => TickLine {
                tick0: t,
                mono0: self.first.1,
                slope: 0,
            },
        }
    }

    fn line(&self, t: u64) -> Option<Line> {
        if let Some(l) = self.last.get().filter(|l| (l.from..l.to).contains(&t)) {
            return Some(l);
        }
        let n = self.pairs.len();
        // Bracketing pairs, or the nearest two for extrapolation.
        let i = self.pairs.partition_point(|&(pt, _)| pt <= t);
        let from = if i == 0 { 0 } else { self.pairs[i - 1].0 };
        let to = self.pairs.get(i).map_or(u64::MAX, |p| p.0);
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
            return None;
        }
        let (lo, hi) = if a.0 < b.0 { (a, b) } else { (b, a) };
        let line = match self.last.get() {
            Some(l) if l.lo == lo && l.hi == hi && l.from == from && l.to == to => l,
            _ => {
                let l = Line {
                    from,
                    to,
                    lo,
                    hi,
                    slope: (u128::from(hi.1.saturating_sub(lo.1)) << 32) / u128::from(hi.0 - lo.0),
                };
                self.last.set(Some(l));
                l
            }
        };
        Some(line)
    }
}

/// Ticks to CLOCK_MONOTONIC on one straight line, as a trace file stores it
/// with a run of records: `mono0 + (t − tick0) × slope / 2³²`, signed,
/// saturating (docs/format.md §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickLine {
    pub tick0: u64,
    pub mono0: u64,
    /// Nanoseconds per tick, 32.32 fixed point.
    pub slope: u64,
}

impl TickLine {
    pub const IDENTITY: TickLine = TickLine {
        tick0: 0,
        mono0: 0,
        slope: 1 << 32,
    };

    #[inline]
    pub fn ts(&self, t: u64) -> u64 {
        let dt = i128::from(t) - i128::from(self.tick0);
        (i128::from(self.mono0) + ((dt * i128::from(self.slope)) >> 32)).clamp(0, i128::from(u64::MAX)) as u64
    }
}

impl Line {
    /// The monotonic time at tick `t` on this line. Multiplies by the
    /// fixed-point slope; the rounding error is below 1 ns per second of
    /// distance from `lo`.
    fn at(&self, t: u64) -> u64 {
        let lo = self.lo;
        let v = if t >= lo.0 {
            i128::from(lo.1) + ((u128::from(t - lo.0) * self.slope) >> 32) as i128
        } else {
            i128::from(lo.1) - ((u128::from(lo.0 - t) * self.slope) >> 32) as i128
        };
        v.clamp(0, i128::from(u64::MAX)) as u64
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
        // Cached segment or not, the same answer; and later ticks map later.
        assert_eq!(c.to_mono(t), c.to_mono(t));
        let (t2, m2) = sample();
        let err2 = c.to_mono(t2) as i64 - m2 as i64;
        assert!(err2.abs() < 50_000, "extrapolated error {err2} ns");
        assert!(c.to_mono(t2) > c.to_mono(t));
    }
}
