//! `weft mem`: who mapped, unmapped and changed an address, and the memory
//! map of a process at a moment.

use std::collections::{BTreeSet, HashMap};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use weft_analysis::mem::{history, history_from_index, history_indexed, maps_at, Change, History, MemIndex};
use weft_analysis::profile::Profile;
use weft_analysis::secs;

use crate::input::{open, start_ns, warn_damage};
use crate::profiles::{stack_at, symbolized, ProfileArgs};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  weft mem app.weft --addr 0x7f184817b00c            every change that covered the address, flagged\n  weft mem app.weft --addr 0x7f184817b00c --pid 1234\n  weft mem app.weft --maps --at 1.5 --pid 1234       the process's memory map 1.5 s into the recording\n\nRecord the memory syscalls (the default records all; `--syscalls memory,process`\nis enough), and `--stack-on munmap,mmap` to see who called them (`weft report\n--trigger munmap`)."
)]
pub struct MemArgs {
    /// Trace file to read.
    file: std::path::PathBuf,
    /// The address whose history to show (hex with 0x, or decimal).
    #[arg(long, value_parser = parse_addr)]
    addr: Option<u64>,
    /// Only these processes (comma-separated PIDs); needed with --maps.
    #[arg(short, long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// Print the memory map of --pid at --at instead.
    #[arg(long)]
    maps: bool,
    /// Seconds since the start of the recording, as `weft dump` prints them (with --maps).
    #[arg(long)]
    at: Option<f64>,
    /// Changes of the address shown: the last N (0: all, however many;
    /// the earlier ones are counted).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    last: usize,
    /// Do not read or write the index of memory changes (FILE.memidx), which
    /// lets later --addr queries read only the parts of the trace they need.
    #[arg(long)]
    no_index: bool,
}

fn parse_addr(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(&h.replace('_', ""), 16),
        None => t.parse(),
    };
    v.map_err(|_| format!("`{s}` is not an address (give it as 0x7f18... or in decimal)"))
}

pub fn run(args: MemArgs) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let t = open(&args.file)?;
    warn_damage(&t);
    let base = start_ns(&t);
    if args.maps {
        let (Some(at), [pid]) = (args.at, args.pid.as_slice()) else {
            bail!("--maps needs one --pid and --at SECONDS (e.g. --maps --at 1.5 --pid 1234)");
        };
        if !(at.is_finite() && at >= 0.0) {
            bail!("--at {at}: give seconds since the start of the recording, 0 or more");
        }
        if args.addr.is_some() {
            bail!("give either --addr (its history) or --maps (a memory map), not both");
        }
        let maps = maps_at(&t, *pid, (at * 1e9) as u64);
        crate::input::report_pass("mem --maps", &t, started);
        if !maps.seen {
            bail!(
                "no records of process {pid} in this trace by {at} s (`weft info` lists its processes and their times)"
            );
        }
        println!("memory map of process {pid} at {at} s (as recorded: the executable mappings the kernel reported, and every recorded mmap, mremap, munmap, mprotect and brk; other mappings made before recording began are not known):");
        if let Some(ts) = maps.exited {
            println!(
                "(process {pid} had exited at {} s: its map when it exited)",
                secs(ts.saturating_sub(base))
            );
        }
        for r in &maps.regions {
            println!("{:x}-{:x} {} {:08x} {}", r.start, r.end, r.perms, r.offset, r.path);
        }
        if maps.regions.is_empty() {
            println!("(nothing recorded for process {pid} by then)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(addr) = args.addr else {
        bail!("give --addr ADDRESS (its history) or --maps --at SECONDS --pid PID (a memory map)");
    };
    let h = addr_history(&t, &args, addr, started);
    let stacks = call_stacks(&args.file, &t, &h)?;
    print_history(&h, base, &stacks, "");
    Ok(ExitCode::SUCCESS)
}

/// Stacks recorded with `record --stack-on munmap,...` for the calls of a
/// history, by syscall.
pub fn call_stacks(file: &std::path::Path, t: &weft_format::Trace, h: &History) -> Result<HashMap<String, Profile>> {
    let mut stacks: HashMap<String, Profile> = HashMap::new();
    if t.schema_by_name(weft_format::std_schemas::SAMPLE).is_none() {
        return Ok(stacks);
    }
    let mut names: BTreeSet<&str> = h.entries.iter().map(|e| e.syscall.as_str()).collect();
    // Files that say which events had stacks: read stacks only of those
    // (each is a pass over the whole file).
    if let Some(on) = t.info(weft_format::info_keys::STACK_ON) {
        names.retain(|n| on.split(',').any(|s| s == *n));
    }
    for name in names {
        let pa = ProfileArgs::stacks_of(file, name, Vec::new(), h.entries.iter().map(|e| e.tid).collect());
        let p = symbolized(&pa, true)?;
        if p.samples > 0 {
            stacks.insert(name.to_owned(), p);
        }
    }
    Ok(stacks)
}

/// An address's history as `weft mem --addr` prints it, each line after `indent`.
pub fn print_history(h: &History, base: u64, stacks: &HashMap<String, Profile>, indent: &str) {
    let addr = h.addr;
    let at = |ts: u64| secs(ts.saturating_sub(base));
    let total = h.earlier + h.entries.len();
    if h.entries.is_empty() {
        println!("{indent}no recorded mmap, munmap, mremap, mprotect, madvise or brk covered {addr:#x}");
    } else if h.earlier > 0 {
        println!(
            "{indent}history of {addr:#x} ({total} changes; the first {} are not shown: `weft mem --addr {addr:#x} --last 0` shows all):",
            h.earlier
        );
    } else {
        println!("{indent}history of {addr:#x} ({total} changes):");
    }
    for e in &h.entries {
        let what = match e.change {
            Change::Map => "mapped",
            Change::Unmap => "UNMAPPED",
            Change::Protect => "protected",
            Change::Advise => "advised",
            Change::Brk => "heap moved",
            Change::Exec => "exec",
        };
        println!(
            "{indent}#{:<3} {:>16} {:>7}/{:<7} {:<16} {:<10} {}",
            e.n,
            at(e.ts),
            e.pid,
            e.tid,
            e.comm,
            what,
            e.call
        );
        if e.change != Change::Exec {
            println!("{indent}     range {:#x}-{:#x}", e.start, e.end);
        }
        if let Some((ts, m)) = &e.marker_before {
            println!("{indent}     before it on this thread: {m} at {}", at(*ts));
        }
        if let Some((ts, m)) = &e.marker_after {
            println!("{indent}     after it on this thread: {m} at {}", at(*ts));
        }
        if let Some(frames) = stacks.get(&e.syscall).and_then(|p| stack_at(p, e.tid, e.ts)) {
            println!("{indent}     called from: {frames}");
        }
        for f in &e.flags {
            println!("{indent}     !!! {f}");
        }
    }
    if h.earlier_faults > 0 {
        println!(
            "{indent}({} earlier faults on this page are not shown: `weft mem --addr {addr:#x} --last 0` shows all)",
            h.earlier_faults
        );
    }
    for f in &h.faults {
        let when = format!(
            "{} ({}) delivered to thread {} at {}",
            f.signal,
            f.code,
            f.tid,
            at(f.ts)
        );
        match (f.addr, f.unmapped_by) {
            (Some(a), Some((n, tid))) => println!(
                "{indent}!!! {when}: fault address {a:#x}, on the page #{n} unmapped (thread {tid}) and nothing mapped again"
            ),
            (Some(a), None) => println!("{indent}    {when}: fault address {a:#x}"),
            (None, _) => println!(
                "{indent}!!! {when} while {addr:#x} was unmapped (the fault address is not recorded)"
            ),
        }
    }
    let suspicious = h.entries.iter().filter(|e| !e.flags.is_empty()).count()
        + h.faults.iter().filter(|f| f.unmapped_by.is_some()).count();
    if suspicious > 0 {
        println!("{indent}{suspicious} suspicious (marked !!!)");
    }
}

fn index_path(file: &std::path::Path) -> std::path::PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".memidx");
    p.into()
}

/// The history of `addr`: through FILE.memidx when it is there and of this
/// trace, else by a full pass, which writes the index for the next query.
fn addr_history(t: &weft_format::Trace, args: &MemArgs, addr: u64, started: std::time::Instant) -> History {
    let path = index_path(&args.file);
    let key = MemIndex::key_of(t);
    let index = (!args.no_index)
        .then(|| std::fs::read(&path).ok())
        .flatten()
        .and_then(|z| zstd::decode_all(z.as_slice()).ok())
        .and_then(|b| MemIndex::decode(&b, key));
    if let Some(ix) = index {
        let (h, read) = history_from_index(t, addr, &args.pid, &ix, args.last);
        eprintln!(
            "weft: mem answered through {} in {:.2} s ({read} of {} chunks read)",
            path.display(),
            started.elapsed().as_secs_f64(),
            t.event_chunks().count()
        );
        return h;
    }
    if args.no_index || !args.pid.is_empty() {
        let h = history(t, addr, &args.pid, args.last);
        crate::input::report_pass("mem", t, started);
        return h;
    }
    let (h, ix) = history_indexed(t, addr, args.last);
    crate::input::report_pass("mem", t, started);
    let saved = zstd::encode_all(ix.encode(key).as_slice(), 1).and_then(|z| {
        // Private like the trace: it holds the traced programs' addresses.
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension("memidx.part");
        let _ = std::fs::remove_file(&tmp);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?
            .write_all(&z)?;
        std::fs::rename(&tmp, &path)
    });
    match saved {
        Ok(()) => eprintln!(
            "weft: wrote {} ({} memory changes): later --addr queries read only what they need",
            path.display(),
            ix.len()
        ),
        Err(e) => eprintln!("weft: note: could not save the index {}: {e}", path.display()),
    }
    h
}
