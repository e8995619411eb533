//! A private cgroup for a command started under tracing.
//!
//! Per-task events with `inherit` are copied into every new task, so a
//! fork-heavy program pays for each event weft opens at every fork and exit.
//! Events bound to a cgroup (`PERF_FLAG_PID_CGROUP`) are opened once per CPU
//! and cost nothing at fork; every descendant stays in the cgroup unless it
//! moves itself out. Used only for commands weft starts: moving a running
//! process (`-p`) into another cgroup would change its resource limits.

use std::fs;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Prefix of the cgroups weft creates; the recorder's pid follows.
const PREFIX: &str = "weft-rec-";

/// A cgroup created for one recording, removed again on drop.
#[derive(Debug)]
pub struct TraceCgroup {
    path: PathBuf,
    /// Where processes still inside at the end are moved back to.
    home: PathBuf,
    dir: OwnedFd,
}

/// Why no cgroup could be used (tracing then falls back to `inherit`).
pub type Unavailable = String;

impl TraceCgroup {
    /// Creates a cgroup next to the recorder's own one in the hierarchy that
    /// carries the perf_event controller, and moves `pid` into it.
    pub fn create_for(pid: u32) -> Result<TraceCgroup, Unavailable> {
        let (root, own) = perf_hierarchy()?;
        let home = root.join(own.trim_start_matches('/'));
        remove_stale(&home);
        let path = home.join(format!("{PREFIX}{}", std::process::id()));
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
        }
        let dir = open_dir(&path).inspect_err(|_| {
            let _ = fs::remove_dir(&path);
        })?;
        let cg = TraceCgroup { path, home, dir };
        cg.enter(pid)?;
        Ok(cg)
    }

    fn enter(&self, pid: u32) -> Result<(), Unavailable> {
        let procs = self.path.join("cgroup.procs");
        fs::OpenOptions::new()
            .write(true)
            .open(&procs)
            .and_then(|mut f| f.write_all(pid.to_string().as_bytes()))
            .map_err(|e| format!("cannot move process {pid} into {}: {e}", self.path.display()))
    }

    /// The directory descriptor `perf_event_open` takes as its pid argument.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.dir
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The processes in it now.
    pub fn processes(&self) -> Vec<u32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|l| l.split_whitespace().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    }
}

impl Drop for TraceCgroup {
    fn drop(&mut self) {
        // Processes left behind (daemons the command started) go back where
        // the command came from, so the cgroup can be removed.
        if let Ok(list) = fs::read_to_string(self.path.join("cgroup.procs")) {
            for pid in list.split_whitespace() {
                let _ = fs::OpenOptions::new()
                    .write(true)
                    .open(self.home.join("cgroup.procs"))
                    .and_then(|mut f| f.write_all(pid.as_bytes()));
            }
        }
        let _ = fs::remove_dir(&self.path);
    }
}

/// The mount point of the hierarchy with the perf_event controller, and the
/// recorder's path inside it.
fn perf_hierarchy() -> Result<(PathBuf, String), Unavailable> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    let own = fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let mut v1 = None;
    let mut v2 = None;
    for line in mountinfo.lines() {
        // id parent maj:min root mountpoint options... - fstype source superoptions
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = left.split(' ').nth(4).unwrap_or("");
        let mut r = right.split(' ');
        let fstype = r.next().unwrap_or("");
        let opts = r.nth(1).unwrap_or("");
        let mount_point = PathBuf::from(unescape(mount_point));
        if fstype == "cgroup" && opts.split(',').any(|o| o == "perf_event") {
            v1.get_or_insert(mount_point);
        } else if fstype == "cgroup2" {
            v2.get_or_insert(mount_point);
        }
    }
    // perf_event sits on the unified hierarchy unless a v1 hierarchy claims it.
    let (root, want) = match (v1, v2) {
        (Some(m), _) => (m, Some("perf_event")),
        (None, Some(m)) => (m, None),
        (None, None) => return Err("no cgroup hierarchy with the perf_event controller is mounted".into()),
    };
    let path = own
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let hit = match want {
                Some(c) => ctrls.split(',').any(|x| x == c),
                None => ctrls.is_empty(),
            };
            hit.then(|| path.to_string())
        })
        .next()
        .unwrap_or_else(|| "/".into());
    Ok((root, path))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn open_dir(path: &Path) -> Result<OwnedFd, Unavailable> {
    let c =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| "cgroup path has a NUL byte".to_string())?;
    // SAFETY: c is a NUL-terminated path; open returns a new descriptor or -1.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(format!(
            "cannot open {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: open just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Removes empty cgroups left by recorders that were killed.
fn remove_stale(home: &Path) {
    let Ok(dir) = fs::read_dir(home) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // Fails harmlessly while processes are still inside.
            let _ = fs::remove_dir(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain\"), r"/plain\");
    }
}
