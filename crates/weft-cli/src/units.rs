//! Human units on the command line: durations and sizes.

use std::time::Duration;

/// `HH:MM:SS` of the day (UTC) of a CLOCK_REALTIME time in nanoseconds,
/// and the nanoseconds past that second.
pub fn clock_of_day(ns: u64) -> (String, u64) {
    let s = ns / 1_000_000_000 % 86_400;
    (
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
        ns % 1_000_000_000,
    )
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit `{unit}` in `{s}` (use ms, s, m or h)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("duration `{s}` must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mul: usize = match unit.to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("unknown unit `{unit}` in `{s}` (use K, M or G)")),
    };
    let v = if num.contains('.') {
        // 1.5M: a whole number of bytes once scaled.
        let f: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size (try 8M, 512K, 1.5M)"))?;
        let v = f * mul as f64;
        if !(v.is_finite() && v < usize::MAX as f64) {
            return Err(format!("size `{s}` is too large"));
        }
        // 1.1M is not a whole number of bytes: the nearest is meant.
        v.round() as usize
    } else {
        let n: usize = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size (try 8M, 512K, 1.5M)"))?;
        n.checked_mul(mul).ok_or_else(|| format!("size `{s}` is too large"))?
    };
    if v < 8192 {
        return Err(format!("size `{s}` is too small (at least 8K)"));
    }
    Ok(v)
}

/// A weft-probe ring: eight sub-buffers of 4K to 16M each.
pub fn parse_probe_buffer(s: &str) -> Result<usize, String> {
    let v = parse_size(s).map_err(|e| e.replace("at least 8K", "at least 32K"))?;
    if !(32 << 10..=128 << 20).contains(&v) {
        return Err(format!(
            "`{s}` is outside 32K..128M (a ring is eight sub-buffers of 4K to 16M each)"
        ));
    }
    Ok(v)
}

/// `12.3 MiB`
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("10x").is_err());
        assert_eq!(parse_size("8M").unwrap(), 8 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert!(parse_size("1").is_err());
        assert_eq!(parse_size("1.5M").unwrap(), 3 << 19);
        assert_eq!(parse_size("0.5G").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.1M").unwrap(), 1_153_434);
        assert_eq!(parse_probe_buffer("128M").unwrap(), 128 << 20);
        assert_eq!(parse_probe_buffer("32K").unwrap(), 32 << 10);
        for bad in ["16K", "129M", "32832M", "32G"] {
            assert!(parse_probe_buffer(bad).unwrap_err().contains("32K..128M"), "{bad}");
        }
        assert!(parse_size("1.5").is_err(), "below 8K");
        assert!(parse_size("1..5M").is_err());
        assert!(parse_size("1e9").is_err());
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
