//! What /proc says about a process we attach to after it started: its
//! threads, their names and its memory maps, replayed as synthetic events so
//! the trace is as complete as one recorded from exec.

use std::fs;

use crate::error::{KernelError, Result};
use crate::event::{EventKind, KernelEvent};

/// Thread ids of a process.
pub fn threads(pid: u32) -> Result<Vec<u32>> {
    let dir = fs::read_dir(format!("/proc/{pid}/task")).map_err(|_| KernelError::NoSuchProcess { pid })?;
    let mut v: Vec<u32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    v.sort_unstable();
    Ok(v)
}

/// `roots` and every process descending from them, as /proc lists them now.
pub fn descendants(roots: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    let mut todo: Vec<u32> = roots.to_vec();
    while let Some(pid) = todo.pop() {
        if out.contains(&pid) {
            continue;
        }
        out.push(pid);
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            if let Ok(list) = fs::read_to_string(t.path().join("children")) {
                todo.extend(list.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// The process (thread-group) id of a thread, or None if it is gone.
pub fn tgid(tid: u32) -> Option<u32> {
    let s = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether a process is in this process's pid namespace (false when it
/// cannot be told, e.g. it is gone).
pub fn same_pid_ns(pid: u32) -> bool {
    match (
        fs::read_link("/proc/self/ns/pid"),
        fs::read_link(format!("/proc/{pid}/ns/pid")),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The effective uid of a process (second field of `Uid:` in its status).
pub fn effective_uid(pid: u32) -> Option<u32> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1)?.parse().ok())
}

pub fn comm(pid: u32, tid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_owned())
}

/// The main thread's initial stack pointer (`startstack` of
/// /proc/PID/stat): argc sits there, and above it only argv, the environment
/// and the auxiliary vector, which no unwinder reads.
pub fn start_stack(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesized name start at field 3 (state); startstack is field 28.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(25)?.parse().ok().filter(|&a: &u64| a != 0)
}

/// Synthetic Comm events for every thread and Mmap events for every mapping.
pub fn snapshot(pid: u32, ts: u64) -> Vec<KernelEvent> {
    let mut out = Vec::new();
    // Read from /proc, not seen on a CPU: no CPU number.
    let ev = |tid: u32, kind: EventKind| KernelEvent {
        ts,
        cpu: u32::MAX,
        pid,
        tid,
        kind,
    };
    for tid in threads(pid).unwrap_or_default() {
        if let Some(c) = comm(pid, tid) {
            out.push(ev(tid, EventKind::Comm { comm: c, exec: false }));
        }
        // A thread blocked in a syscall: that call is in progress from the
        // start, and its return pairs with it (as `strace -p` shows it).
        if let Some((nr, args)) = fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall"))
            .ok()
            .and_then(|s| in_syscall(&s))
        {
            out.push(ev(
                tid,
                EventKind::SyscallEnter {
                    nr,
                    args,
                    data: Vec::new(),
                },
            ));
        }
    }
    out.extend(fd_events(pid, ts, false));
    if let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) {
        let mut ids: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
        for mut kind in maps.lines().filter_map(parse_map_line) {
            // The kernel gives build IDs for maps it reports; for maps read
            // here, read them from the files, as symbolization needs them.
            if let EventKind::Mmap {
                addr,
                len,
                prot,
                filename,
                build_id,
                ..
            } = &mut kind
            {
                if *prot & libc::PROT_EXEC as u32 != 0 && filename.starts_with('/') {
                    // The file mapped, not whatever the path holds now (a
                    // binary deleted or replaced since); through the
                    // process's root if map_files cannot be read.
                    let mapped = format!("/proc/{pid}/map_files/{:x}-{:x}", *addr, *addr + *len);
                    let id = ids.entry(filename.clone()).or_insert_with(|| {
                        let id = file_build_id(&mapped);
                        if id.is_empty() {
                            file_build_id(&format!("/proc/{pid}/root{filename}"))
                        } else {
                            id
                        }
                    });
                    build_id.clone_from(id);
                    if let Some(p) = filename.strip_suffix(" (deleted)") {
                        *filename = p.to_owned();
                    }
                }
            }
            out.push(ev(pid, kind));
        }
    }
    out
}

/// The open descriptors of a process as events at `ts` (read from /proc,
/// no CPU); with `after_exec`, only those an exec keeps.
pub fn fd_events(pid: u32, ts: u64, after_exec: bool) -> Vec<KernelEvent> {
    open_fds(pid, after_exec)
        .into_iter()
        .map(|(fd, path)| KernelEvent {
            ts,
            cpu: u32::MAX,
            pid,
            tid: pid,
            kind: EventKind::FdAtStart { fd, path },
        })
        .collect()
}

/// The open descriptors of a process and what they are; with
/// `after_exec`, only those an exec keeps (not close-on-exec).
fn open_fds(pid: u32, after_exec: bool) -> Vec<(i32, String)> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut out: Vec<(i32, String)> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            if after_exec {
                // fdinfo's `flags:` is octal; O_CLOEXEC is 02000000.
                let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
                let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
                if u64::from_str_radix(flags, 8).ok()? & 0o2000000 != 0 {
                    return None;
                }
            }
            let target = fs::read_link(e.path()).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect();
    out.sort();
    out
}

/// `/proc/PID/task/TID/syscall` of a thread inside a syscall: `nr a1 .. a6
/// sp pc` (hex arguments); None for `running` or `-1 ...` (not in one).
fn in_syscall(text: &str) -> Option<(u32, [u64; 6])> {
    let mut it = text.split_whitespace();
    let nr: i64 = it.next()?.parse().ok()?;
    if nr < 0 {
        return None;
    }
    let mut args = [0u64; 6];
    for a in &mut args {
        *a = u64::from_str_radix(it.next()?.trim_start_matches("0x"), 16).ok()?;
    }
    Some((nr as u32, args))
}

/// The path under /proc/PID/map_files of the file mapped at `range` (the
/// file itself, even deleted or in another mount namespace), or of the
/// mapping of `inode` around `range.0` when the kernel merged or split it
/// since.
pub fn mapped_file(pid: u32, range: (u64, u64), inode: u64) -> Option<String> {
    let exact = format!("/proc/{pid}/map_files/{:x}-{:x}", range.0, range.1);
    if fs::symlink_metadata(&exact).is_ok() {
        return Some(exact);
    }
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines().find_map(|l| match parse_map_line(l)? {
        EventKind::Mmap {
            addr, len, inode: i, ..
        } if i == inode && addr <= range.0 && range.0 < addr + len => {
            Some(format!("/proc/{pid}/map_files/{:x}-{:x}", addr, addr + len))
        }
        _ => None,
    })
}

/// Largest file whose build ID is read.
const BUILD_ID_CAP: u64 = 1 << 30;

/// The GNU build ID of an ELF file, or empty. The path is a traced
/// program's to choose (what it mapped, or what is there now): only a
/// regular file of at most 1 GiB is read, opened without blocking, so a
/// FIFO or a device (`/dev/zero` mapped executable) cannot hang the
/// recorder or fill its memory.
pub fn file_build_id(path: &str) -> Vec<u8> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(f) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
    else {
        return Vec::new();
    };
    let Ok(m) = f.metadata() else { return Vec::new() };
    if !m.is_file() || m.len() > BUILD_ID_CAP {
        return Vec::new();
    }
    let mut data = Vec::with_capacity(m.len() as usize);
    if f.take(BUILD_ID_CAP).read_to_end(&mut data).is_err() {
        return Vec::new();
    }
    build_id(&data)
}

/// The GNU build ID of an ELF image in memory, or empty.
pub fn build_id(data: &[u8]) -> Vec<u8> {
    use object::Object;
    object::File::parse(data)
        .ok()
        .and_then(|o| o.build_id().ok().flatten().map(<[u8]>::to_vec))
        .unwrap_or_default()
}

fn parse_map_line(line: &str) -> Option<EventKind> {
    // 7f18c0000000-7f18c0021000 rw-p 00000000 00:00 0      [heap]
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?.as_bytes();
    let off = u64::from_str_radix(it.next()?, 16).ok()?;
    let _dev = it.next()?;
    let inode: u64 = it.next()?.parse().ok()?;
    let filename = it.next().unwrap_or("").trim().to_owned();
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    if perms.len() < 4 {
        return None;
    }
    let mut prot = 0u32;
    if perms[0] == b'r' {
        prot |= libc::PROT_READ as u32;
    }
    if perms[1] == b'w' {
        prot |= libc::PROT_WRITE as u32;
    }
    if perms[2] == b'x' {
        prot |= libc::PROT_EXEC as u32;
    }
    let flags = if perms[3] == b's' {
        libc::MAP_SHARED
    } else {
        libc::MAP_PRIVATE
    } as u32;
    Some(EventKind::Mmap {
        addr: start,
        len: end.saturating_sub(start),
        pgoff: off,
        prot,
        flags,
        filename,
        build_id: Vec::new(),
        inode,
    })
}

/// Online CPU numbers, from /sys/devices/system/cpu/online ("0-3,5").
pub fn online_cpus() -> Vec<u32> {
    let text = fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut v = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    v.extend(a..=b);
                }
            }
            None => v.extend(part.parse::<u32>().ok()),
        }
    }
    if v.is_empty() {
        // SAFETY: sysconf has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1);
        v.extend(0..n as u32);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_thread_s_syscall_line_is_read() {
        assert_eq!(
            in_syscall("0 0x0 0x7ffc8a1b2c30 0x400 0x0 0x0 0x0 0x7ffc8a1b2c18 0x7f0e1c11a7e2\n"),
            Some((0, [0, 0x7ffc8a1b2c30, 0x400, 0, 0, 0]))
        );
        assert_eq!(in_syscall("running\n"), None);
        assert_eq!(in_syscall("-1 0x7ffc8a1b2c18 0x7f0e1c11a7e2\n"), None);
        assert_eq!(in_syscall("7 0x1"), None);
    }

    #[test]
    fn parses_maps_lines() {
        let k = parse_map_line("7f18c0000000-7f18c0021000 r-xp 00001000 08:01 1234    /usr/lib/libc.so.6").unwrap();
        assert_eq!(
            k,
            EventKind::Mmap {
                addr: 0x7f18c0000000,
                len: 0x21000,
                pgoff: 0x1000,
                prot: (libc::PROT_READ | libc::PROT_EXEC) as u32,
                flags: libc::MAP_PRIVATE as u32,
                filename: "/usr/lib/libc.so.6".into(),
                build_id: vec![],
                inode: 1234
            }
        );
        assert!(parse_map_line("garbage").is_none());
    }
}
