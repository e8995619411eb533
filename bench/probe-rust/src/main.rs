//! `probe-rust N [T]`: the Rust twin of bench/workloads/probe_bench.h (same
//! output line, same batches, same BENCH_WAIT_ENABLED / BENCH_BURST /
//! BENCH_GAP_MS / BENCH_RATE environment), for the event bench:tick
//! {a: u64, b: u64}.
use std::hint::black_box;
use std::time::{Duration, Instant};

weft_probe::define_event!(TICK = "bench":"tick" { a: u64, b: u64 });

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000).max(1);
    let threads: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    if let Some(ms) = env_u64("BENCH_WAIT_ENABLED") {
        let deadline = Instant::now() + Duration::from_millis(ms);
        while !TICK.enabled() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let e0 = TICK.enabled();
    let (mut per, mut batches, mut gap) = ((n / 15).max(1), 15u64, 0u64);
    if let Some(k) = env_u64("BENCH_BURST").filter(|&k| k > 0) {
        per = k;
        batches = (n / k).max(1);
        gap = env_u64("BENCH_GAP_MS").unwrap_or(150);
    }
    if let Some(rate) = env_u64("BENCH_RATE").filter(|&r| r > 0) {
        paced(n, threads, rate, e0);
        return;
    }
    let t0 = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|k| {
            std::thread::spawn(move || {
                let mut ns = Vec::with_capacity(batches as usize);
                let mut cpu = Vec::with_capacity(batches as usize);
                for b in 0..batches {
                    if b > 0 && gap > 0 {
                        std::thread::sleep(Duration::from_millis(gap));
                    }
                    let (s, c) = (Instant::now(), thread_cpu_ns());
                    for i in 0..per {
                        weft_probe::emit!(TICK(black_box(i), k));
                    }
                    ns.push(s.elapsed().as_nanos() as f64 / per as f64);
                    cpu.push((thread_cpu_ns() - c) as f64 / per as f64);
                }
                ns.sort_by(|a, b| a.total_cmp(b));
                cpu.sort_by(|a, b| a.total_cmp(b));
                (ns[ns.len() / 2], cpu[cpu.len() / 2])
            })
        })
        .collect();
    let (medians, cpus): (Vec<f64>, Vec<f64>) =
        hs.into_iter().map(|h| h.join().unwrap_or((f64::NAN, f64::NAN))).unzip();
    let secs = t0.elapsed().as_secs_f64();
    let total = per * batches * threads;
    println!(
        "impl=weft-rust2 enabled={}/{} threads={threads} events={total} batches={batches} median_ns_per_event={:.2} median_cpu_ns_per_event={:.2} events_per_sec={:.0}",
        e0 as u8,
        TICK.enabled() as u8,
        medians.iter().sum::<f64>() / medians.len() as f64,
        cpus.iter().sum::<f64>() / cpus.len() as f64,
        total as f64 / secs
    );
}

/// CPU time of the calling thread: the cost of the writes without the time
/// the thread waited for a CPU (with more writer threads than CPUs).
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into t.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Each thread emits `n` events at no more than `rate` per second, checking
/// the clock every 64 events (as probe_bench.h does).
fn paced(n: u64, threads: u64, rate: u64, e0: bool) {
    let t0 = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|k| {
            std::thread::spawn(move || {
                let start = Instant::now();
                let ns_per = 1e9 / rate as f64;
                for i in 0..n {
                    if i & 63 == 0 {
                        while (start.elapsed().as_nanos() as f64) < i as f64 * ns_per {}
                    }
                    weft_probe::emit!(TICK(black_box(i), k));
                }
            })
        })
        .collect();
    for h in hs {
        let _ = h.join();
    }
    let total = n * threads;
    println!(
        "impl=weft-rust2 enabled={}/{} threads={threads} events={total} paced_rate={:.0}",
        e0 as u8,
        TICK.enabled() as u8,
        total as f64 / t0.elapsed().as_secs_f64()
    );
}
