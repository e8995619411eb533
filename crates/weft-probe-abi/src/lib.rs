//! The contract between an instrumented process (weft-probe) and the
//! collector (weft record): the shared-memory buffer layout, the record and
//! guard encodings, and the control-socket messages.
//!
//! This crate owns only byte layouts and pure functions over byte slices. It
//! must not map memory, open sockets or allocate on behalf of the write path,
//! and it must stay dependency-free so that every instrumented program can
//! link it. The normative description is `docs/probe-buffers.md`.
//!
//! ```text
//! memfd:  [area header 4K][slot 0: ctl 4K | sub-buffer 0 .. N-1][slot 1 ...]
//! sub-buffer: [guard header 64][record][record]...[free]...[guard footer 64]
//! record: len u32 | event u32 | seq<<8|state u64 | tsc u64 | payload (8-aligned)
//! ```
//!
//! Glossary:
//! - *area*: the memfd a collector hands to one process, all of it.
//! - *slot*: one thread's part of an area (a control page and its
//!   sub-buffers); a thread *claims* a free slot at its first write.
//! - *sub-buffer*: one of a slot's equal pieces of ring; the writer fills one
//!   at a time and *switches* to the next.
//! - *generation*: the count of switches of a slot (1, 2, ...); generation g
//!   lives in sub-buffer `(g - 1) mod subbufs`.
//! - *session*: inside the process, one attached collector; it owns one
//!   *session bit* of every event's enable word (bits 0..7; bit 31 is the
//!   kernel's user_events).
//! - *epoch*: a session's counter, bumped at attach and detach, so a thread
//!   knows its cached slot address is stale.

pub mod control;
pub mod layout;
pub mod payload;

/// Maximum concurrent sessions (recorders) per process; each owns one bit
/// of every enable word. Bit 31 belongs to the kernel (user_events).
pub const MAX_SESSIONS: u32 = 8;
/// The enable-word bit the kernel sets when a kernel tracer enables the event.
pub const KERNEL_BIT: u32 = 31;
/// Mask of the enable-word bits used by user-space sessions.
pub const SESSION_MASK: u32 = (1 << MAX_SESSIONS) - 1;

/// A 64-bit mixing hash (not cryptographic): detects damage and accidental
/// matches, keyed by the session salt.
pub fn mix(salt: u64, words: &[u64]) -> u64 {
    let mut h = salt ^ 0x9e37_79b9_7f4a_7c15;
    for &w in words {
        h ^= w;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 31;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 29;
    }
    h
}

/// Directories where instrumented processes put their control sockets, in
/// the order a process tries them (docs/probe-buffers.md §9.1). Each is
/// private to `uid`: mode 0700 and owned by it (see `check_private_dir`).
pub fn runtime_dirs(uid: u32) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("WEFT_RUNTIME_DIR") {
        v.push(std::path::PathBuf::from(d));
    }
    if uid == 0 {
        v.push(std::path::PathBuf::from("/run/weft"));
    } else {
        // Made by the login manager, private to the user: nobody else can
        // create `weft` in it first.
        v.push(std::path::PathBuf::from(format!("/run/user/{uid}/weft")));
    }
    v.push(std::path::PathBuf::from(format!("/tmp/weft-{uid}")));
    v
}

/// The uid a runtime directory must belong to, from its path: `/run/weft`
/// is root's, `/run/user/N/weft` and `/tmp/weft-N` are uid N's. None for
/// other paths (`WEFT_RUNTIME_DIR`).
pub fn runtime_dir_owner(dir: &std::path::Path) -> Option<u32> {
    if dir == std::path::Path::new("/run/weft") {
        return Some(0);
    }
    let s = dir.to_str()?;
    if let Some(rest) = s.strip_prefix("/run/user/") {
        return rest.strip_suffix("/weft")?.parse().ok();
    }
    // `/tmp/weft-N`, or `/tmp/weft-N.SUFFIX` that a process made for itself
    // when `/tmp/weft-N` was taken.
    let rest = s.strip_prefix("/tmp/weft-")?;
    rest.split_once('.').map_or(rest, |(n, _)| n).parse().ok()
}

/// Why `dir` is not a private runtime directory of `uid` (a real directory,
/// not a link, owned by `uid`, with no access for group or others), or Ok.
pub fn check_private_dir(dir: &std::path::Path, uid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !m.file_type().is_dir() {
        return Err(format!("{} is not a directory (a link or a file)", dir.display()));
    }
    if m.uid() != uid {
        return Err(format!("{} belongs to uid {}, not {uid}", dir.display(), m.uid()));
    }
    if m.mode() & 0o077 != 0 {
        return Err(format!(
            "{} has mode {:o}: others may enter it (0700 expected)",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Socket file name: pid and process start time, so a reused pid never
/// answers for a dead process.
pub fn socket_name(pid: u32, start_time: u64) -> String {
    format!("{pid}-{start_time}.sock")
}

/// Parses a socket file name back into (pid, start time).
pub fn parse_socket_name(name: &str) -> Option<(u32, u64)> {
    let stem = name.strip_suffix(".sock")?;
    let (p, s) = stem.split_once('-')?;
    Some((p.parse().ok()?, s.parse().ok()?))
}

/// Process start time in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn process_start_time(pid: u32) -> Option<u64> {
    start_time_from_stat(&std::fs::read(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time field of a `/proc/PID/stat` line. Allocates nothing, so a
/// fork child may call it from its fork handler.
pub fn start_time_from_stat(stat: &[u8]) -> Option<u64> {
    parse_decimal(stat_field(stat, 22)?)
}

/// Field `n` (1-based, as proc(5) numbers them; 3 or more) of a
/// `/proc/PID/stat` line. Allocates nothing.
pub fn stat_field(stat: &[u8], n: usize) -> Option<&[u8]> {
    // The comm field may contain spaces and parentheses: split after the last ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 2..)?
        .split(|b| b.is_ascii_whitespace())
        .nth(n.checked_sub(3)?)
}

/// The exit code a zombie thread ended with (field 52 of its stat line, in
/// `waitpid`'s encoding), as a process exit code. Allocates nothing.
pub fn exit_code_from_stat(stat: &[u8]) -> i32 {
    let status = stat_field(stat, 52).and_then(parse_decimal).unwrap_or(0);
    ((status >> 8) & 0xff) as i32
}

/// ASCII decimal digits as a number; None if empty, not digits, or too
/// large. Allocates nothing.
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .flatten()
    })
}

/// `socket_name` written into `out` without allocating (for a fork child's
/// handler): the number of bytes written, or None if `out` is too short.
pub fn socket_name_into(out: &mut [u8], pid: u32, start_time: u64) -> Option<usize> {
    let mut n = 0;
    let mut put = |b: &[u8]| -> Option<()> {
        out.get_mut(n..n + b.len())?.copy_from_slice(b);
        n += b.len();
        Some(())
    };
    let mut digits = [0u8; 20];
    put(decimal(u64::from(pid), &mut digits))?;
    put(b"-")?;
    put(decimal(start_time, &mut digits))?;
    put(b".sock")?;
    Some(n)
}

/// `v` in decimal, in the tail of `buf`.
pub fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_round_trip() {
        assert_eq!(parse_socket_name(&socket_name(42, 123456)), Some((42, 123456)));
        assert_eq!(parse_socket_name("junk"), None);
        for (pid, start) in [(0, 0), (42, 123456), (u32::MAX, u64::MAX)] {
            let mut buf = [0u8; 64];
            let n = socket_name_into(&mut buf, pid, start).unwrap();
            assert_eq!(&buf[..n], socket_name(pid, start).as_bytes());
            assert_eq!(socket_name_into(&mut buf[..n - 1], pid, start), None);
        }
    }

    #[test]
    fn start_time_is_field_22_even_with_parentheses_in_the_name() {
        let line = b"77 (a) b) (c) S 1 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time_from_stat(line), Some(987654));
        assert_eq!(stat_field(line, 3), Some(&b"S"[..]));
        let zombie = [&b"9 (x) Z"[..], &b" 0".repeat(48), b" 1792\n"].concat();
        assert_eq!(exit_code_from_stat(&zombie), 7);
        assert_eq!(exit_code_from_stat(b"9 (x) Z"), 0);
        assert_eq!(start_time_from_stat(b"77 (x) S 1"), None);
        assert_eq!(start_time_from_stat(b"no paren"), None);
        let own = start_time_from_stat(&std::fs::read("/proc/self/stat").unwrap());
        assert_eq!(own, process_start_time(std::process::id()));
        assert!(own.is_some());
    }

    #[test]
    fn runtime_directories_name_their_owner() {
        use std::path::Path;
        assert_eq!(runtime_dir_owner(Path::new("/run/weft")), Some(0));
        assert_eq!(runtime_dir_owner(Path::new("/run/user/1000/weft")), Some(1000));
        assert_eq!(runtime_dir_owner(Path::new("/tmp/weft-65534")), Some(65534));
        assert_eq!(runtime_dir_owner(Path::new("/tmp/weft-65534.77-1f0")), Some(65534));
        assert_eq!(runtime_dir_owner(Path::new("/tmp/weft-x")), None);
        assert_eq!(runtime_dir_owner(Path::new("/elsewhere")), None);
    }

    #[test]
    fn only_a_0700_directory_of_the_uid_is_private() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let d = std::env::temp_dir().join(format!("weft-abi-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        let uid = std::fs::metadata(&d).unwrap().uid();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_private_dir(&d, uid).unwrap_err().contains("mode 755"));
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(check_private_dir(&d, uid), Ok(()));
        assert!(check_private_dir(&d, uid + 1).unwrap_err().contains("belongs to uid"));
        let link = d.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&d, &link).unwrap();
        assert!(check_private_dir(&link, uid).unwrap_err().contains("not a directory"));
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir(&d).unwrap();
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(process_start_time(std::process::id()).is_some());
    }
}
