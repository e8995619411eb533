//! `weft info`: what is in a trace file.

use std::process::ExitCode;

use anyhow::Result;
use weft_analysis::{secs, summarize};
use weft_format::{end_keys, info_keys, FormatError};

use crate::input::open;
use crate::units::bytes;
use crate::InfoArgs;

pub fn run(args: InfoArgs) -> Result<ExitCode> {
    let t = open(&args.file)?;
    let s = summarize(&t);
    let v = |k: &str| t.info(k).unwrap_or("?").to_owned();
    println!(
        "file:       {} ({}, format {}.{})",
        args.file.display(),
        bytes(t.len),
        t.version.0,
        t.version.1
    );
    let status = if t.truncated {
        format!(
            "TRUNCATED: the file ends mid-chunk (the recorder was stopped mid-write, or the file was cut); recovered {} complete chunks ({} of {})",
            t.chunks.len(),
            bytes(t.recovered_bytes()),
            bytes(t.len)
        )
    } else if t.end.is_none() {
        "INCOMPLETE: the recording did not finish (no end marker); every complete chunk was read".into()
    } else if !t.problems.is_empty() || !s.problems.is_empty() {
        "DAMAGED: see problems below; intact chunks were read".into()
    } else {
        format!(
            "complete ({})",
            t.end_value(end_keys::STOP_REASON).unwrap_or("finished")
        )
    };
    println!("status:     {status}");
    let when = t
        .info(info_keys::START_REALTIME_NS)
        .and_then(|s| s.parse::<u64>().ok())
        .map(utc)
        .unwrap_or_else(|| "?".into());
    println!(
        "recorded:   {when} on {} (Linux {}, {})",
        v(info_keys::HOSTNAME),
        v(info_keys::KERNEL_RELEASE),
        v(info_keys::MACHINE)
    );
    if let Some(c) = t.info(info_keys::COMMAND).filter(|c| !c.is_empty()) {
        println!("command:    {c}");
    }
    println!("target:     {}", v(info_keys::TARGET));
    if let Some(st) = t.end_value(end_keys::EXIT_STATUS) {
        println!("exit:       {st}");
    }
    // Files before weft recorded its sources always had all of them.
    if let Some(src) = t.info(info_keys::SOURCES) {
        println!("sources:    {src}");
    }
    match t.info(info_keys::NOT_RECORDED).filter(|n| !n.is_empty()) {
        Some(n) => {
            println!("not recorded:");
            for item in n.split("; ") {
                println!("  {item}");
            }
            if !n.starts_with("syscalls") {
                println!("syscalls:   {}", v(info_keys::SYSCALLS));
            }
        }
        None => println!("syscalls:   {}", v(info_keys::SYSCALLS)),
    }
    println!("clock:      {}", v(info_keys::CLOCK));
    let start = t
        .info(info_keys::START_MONOTONIC_NS)
        .and_then(|s| s.parse::<u64>().ok());
    let end = t
        .end_value(end_keys::END_MONOTONIC_NS)
        .and_then(|s| s.parse::<u64>().ok());
    match (start.or(s.first_ts), end.or(s.last_ts)) {
        (Some(a), Some(b)) => println!("duration:   {} s", secs(b.saturating_sub(a))),
        _ => println!("duration:   ?"),
    }
    if let (Some(a), Some(b)) = (s.first_ts, s.last_ts) {
        let base = start.unwrap_or(a);
        println!(
            "events:     {} from +{} to +{} s",
            s.records,
            secs(a.saturating_sub(base)),
            secs(b.saturating_sub(base))
        );
    } else {
        println!("events:     0");
    }
    // Kernel ring losses and weft-probe's, as `weft record`'s summary counts.
    let lost = s.lost();
    let probe_lost = s.probes.values().fold(0u64, |a, (_, _, l)| a.saturating_add(*l));
    let mut parts = Vec::new();
    if lost > 0 {
        let per: Vec<String> = s.lost_by_cpu.iter().map(|(c, n)| format!("CPU {c}: {n}")).collect();
        parts.push(format!("kernel {lost}: {}", per.join(", ")));
    }
    if probe_lost > 0 {
        parts.push(format!("weft-probe {probe_lost}"));
    }
    match parts.len() {
        0 => println!("lost:       0"),
        _ => println!("lost:       {} ({})", lost.saturating_add(probe_lost), parts.join("; ")),
    }
    for (pid, (att, rec, lost)) in &s.probes {
        let dmg = s.probe_damage.get(pid).copied().unwrap_or(0);
        let dmg = if dmg > 0 {
            format!(", {dmg} damage reports")
        } else {
            String::new()
        };
        println!("weft-probe: PID {pid}: {att} events attempted, {rec} recorded, {lost} lost{dmg}");
    }
    for (pid, (threads, received)) in &s.probes_damaged {
        println!(
            "weft-probe: PID {pid}: {threads} threads with damaged counters: {received} events recorded from them, how many were attempted or lost is not known"
        );
    }
    for (pid, why) in &s.probe_missed {
        println!("weft-probe: PID {pid}: not recorded: {why}");
    }
    println!();
    println!("processes:");
    println!(
        "  {:>7} {:>7} {:>7} {:>9}  {:<16} EXIT",
        "PID", "PPID", "THREADS", "SYSCALLS", "NAME"
    );
    for (pid, p) in &s.processes {
        println!(
            "  {:>7} {:>7} {:>7} {:>9}  {:<16} {}",
            pid,
            p.parent.map_or("-".into(), |x| x.to_string()),
            p.threads.len(),
            p.syscalls,
            p.comm,
            p.exit.as_deref().unwrap_or("(running at end)")
        );
    }
    println!();
    println!("events by name:");
    let mut counts: Vec<(&String, &u64)> = s.counts.iter().collect();
    counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (name, n) in counts {
        let errs = s
            .errors
            .get(name)
            .map(|e| format!("  ({e} failed)"))
            .unwrap_or_default();
        println!("  {n:>10}  {name}{errs}");
    }
    let problems: Vec<&FormatError> = t.problems.iter().map(|p| &p.error).chain(s.problems.iter()).collect();
    if !problems.is_empty() {
        println!();
        println!("problems:");
        for p in problems {
            println!("  {p}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-11-23 12:00:00.123 UTC` without a date library.
fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (clock, sub) = crate::units::clock_of_day(ns);
    format!("{y:04}-{m:02}-{d:02} {clock}.{:03} UTC", sub / 1_000_000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(super::utc(1_795_435_200_000_000_000), "2026-11-23 12:00:00.000 UTC");
    }
}
