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
/// the order a process tries them; the collector looks in all of them.
pub fn runtime_dirs(uid: u32) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("WEFT_RUNTIME_DIR") {
        v.push(std::path::PathBuf::from(d));
    }
    v.push(std::path::PathBuf::from("/run/weft"));
    v.push(std::path::PathBuf::from(format!("/tmp/weft-{uid}")));
    v
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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm field may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_round_trip() {
        assert_eq!(parse_socket_name(&socket_name(42, 123456)), Some((42, 123456)));
        assert_eq!(parse_socket_name("junk"), None);
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(process_start_time(std::process::id()).is_some());
    }
}
