//! CPU time over Rust code of several kinds (float loops in known shares,
//! a sort, map inserts and formatting from std), for comparing weft's
//! profile of a Rust program with perf's.
use std::collections::BTreeMap;
use std::hint::black_box;

#[inline(never)]
fn float_work(n: u64) -> f64 {
    let mut x = 0.0f64;
    for _ in 0..n {
        x = black_box(x * 1.0000001 + 0.5);
    }
    x
}

#[inline(never)]
fn sort_work(n: u64) -> u64 {
    let mut v: Vec<u64> = (0..n).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7).collect();
    v.sort_unstable();
    v[v.len() / 2]
}

#[inline(never)]
fn map_work(n: u64) -> usize {
    let mut m = BTreeMap::new();
    for i in 0..n {
        m.insert(i.wrapping_mul(0x2545_f491_4f6c_dd1d), i);
    }
    m.len()
}

#[inline(never)]
fn format_work(n: u64) -> usize {
    let mut total = 0;
    for i in 0..n {
        total += format!("{i:x}-{}", i * 3).len();
    }
    total
}

fn main() {
    let unit: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let mut sink = 0.0;
    for _ in 0..10 {
        sink += float_work(40 * unit);
        sink += sort_work(5 * unit) as f64;
        sink += map_work(unit) as f64;
        sink += format_work(3 * unit) as f64;
    }
    println!("{sink}");
}
