//! tracefs: where it is, and the `format` files that describe each
//! tracepoint's raw record, which is how weft decodes every event without a
//! hand-written layout.

use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{KernelError, Result};

const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// A located tracefs mount.
#[derive(Debug, Clone)]
pub struct Tracefs {
    root: PathBuf,
}

impl Tracefs {
    /// Finds tracefs, mounting it at /sys/kernel/tracing when it is not mounted
    /// and we are allowed to.
    pub fn locate_or_mount() -> Result<Tracefs> {
        if let Some(t) = Self::locate() {
            return Ok(t);
        }
        // Mounted, but we cannot look inside: mounting again would not help.
        if let Some(mnt) = mounted_at() {
            return Err(KernelError::NoTracefs {
                reason: unreadable(&mnt),
            });
        }
        let target = CANDIDATES[0];
        let (src, dst, fstype) = (c"nodev", CString::new(target).unwrap_or_default(), c"tracefs");
        // SAFETY: all pointers are valid NUL-terminated strings; data is null.
        let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(KernelError::NoTracefs {
                reason: format!("not mounted, and mounting it at {target} failed: {err}"),
            });
        }
        Self::locate().ok_or_else(|| KernelError::NoTracefs {
            reason: format!("mounted at {target} but it has no events directory"),
        })
    }

    /// Finds a mounted tracefs (one whose events this process can read)
    /// without changing anything.
    pub fn locate() -> Option<Tracefs> {
        CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("events").is_dir())
            .map(|root| Tracefs { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn event_dir(&self, system: &str, name: &str) -> PathBuf {
        self.root.join("events").join(system).join(name)
    }

    pub fn has_event(&self, system: &str, name: &str) -> bool {
        self.event_dir(system, name).join("format").is_file()
    }

    /// Parses `events/<system>/<name>/format`.
    pub fn event_format(&self, system: &str, name: &str) -> Result<EventFormat> {
        let path = self.event_dir(system, name).join("format");
        let text = fs::read_to_string(&path).map_err(|source| KernelError::Format {
            path: path.clone(),
            source,
        })?;
        EventFormat::parse(&text).map(|mut f| {
            f.path = path;
            f
        })
    }
}

/// One field of a tracepoint record, as its `format` file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatField {
    /// C type without the name (`unsigned long`, `const char *`, `char[16]`).
    pub ctype: String,
    pub name: String,
    pub offset: usize,
    pub size: usize,
    pub signed: bool,
    /// `__data_loc`: the field holds (len << 16 | offset) of a variable part.
    pub data_loc: bool,
}

/// A tracepoint's id and record layout.
#[derive(Debug, Clone, Default)]
pub struct EventFormat {
    pub name: String,
    pub id: u64,
    /// Fields after the `common_*` header, in record order.
    pub fields: Vec<FormatField>,
    pub path: PathBuf,
}

impl EventFormat {
    pub fn parse(text: &str) -> Result<EventFormat> {
        let mut f = EventFormat::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(n) = line.strip_prefix("name:") {
                f.name = n.trim().to_owned();
            } else if let Some(id) = line.strip_prefix("ID:") {
                f.id = id.trim().parse().unwrap_or(0);
            } else if let Some(rest) = line.strip_prefix("field:") {
                if let Some(field) = parse_field(rest) {
                    if !field.name.starts_with("common_") {
                        f.fields.push(field);
                    }
                }
            }
        }
        Ok(f)
    }

    pub fn field(&self, name: &str) -> Result<&FormatField> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| KernelError::FormatField {
                path: self.path.clone(),
                field: name.to_owned(),
            })
    }
}

fn parse_field(rest: &str) -> Option<FormatField> {
    // "unsigned long len;\toffset:24;\tsize:8;\tsigned:0;"
    let mut parts = rest.split(';').map(str::trim);
    let decl = parts.next()?;
    let mut offset = None;
    let mut size = None;
    let mut signed = false;
    for p in parts {
        if let Some(v) = p.strip_prefix("offset:") {
            offset = v.parse().ok();
        } else if let Some(v) = p.strip_prefix("size:") {
            size = v.parse().ok();
        } else if let Some(v) = p.strip_prefix("signed:") {
            signed = v == "1";
        }
    }
    let (data_loc, decl) = match decl.strip_prefix("__data_loc ") {
        Some(d) => (true, d),
        None => (false, decl),
    };
    let split = decl.rfind([' ', '*'])?;
    let (ty, name) = decl.split_at(split + 1);
    // `char comm[16]` keeps its array suffix on the type.
    let (name, array) = match name.find('[') {
        Some(i) => (&name[..i], &name[i..]),
        None => (name, ""),
    };
    Some(FormatField {
        ctype: format!("{}{}", ty.trim(), array),
        name: name.to_owned(),
        offset: offset?,
        size: size?,
        signed,
        data_loc,
    })
}

/// Where tracefs is mounted, by /proc/self/mountinfo, whether or not we may
/// read it.
fn mounted_at() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mnt = pre.split(' ').nth(4)?;
            (post.split(' ').next()? == "tracefs").then(|| PathBuf::from(mnt))
        })
        .find(|m| CANDIDATES.iter().any(|c| m == Path::new(c)))
}

/// Why a mounted tracefs cannot be used by this process, and how to change it.
fn unreadable(mnt: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let how = match fs::metadata(mnt) {
        Ok(m) => format!("mode {:o}, owner uid {}, group {}", m.mode() & 0o7777, m.uid(), m.gid()),
        Err(e) => e.to_string(),
    };
    format!(
        "mounted at {}, but not readable by uid {euid} ({how}); to let a group read it: `sudo mount -o remount,mode=750,gid=tracing {}` with uid {euid} in group tracing",
        mnt.display(),
        mnt.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_syscall_format() {
        let text = "name: sys_enter_openat\nID: 782\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:char comm[16];\toffset:32;\tsize:16;\tsigned:0;\n\
\tfield:__data_loc char[] name;\toffset:48;\tsize:4;\tsigned:0;\n";
        let f = EventFormat::parse(text).unwrap();
        assert_eq!((f.name.as_str(), f.id), ("sys_enter_openat", 782));
        let names: Vec<_> = f
            .fields
            .iter()
            .map(|x| (x.ctype.as_str(), x.name.as_str(), x.offset))
            .collect();
        assert_eq!(
            names,
            vec![
                ("int", "__syscall_nr", 8),
                ("int", "dfd", 16),
                ("const char *", "filename", 24),
                ("char[16]", "comm", 32),
                ("char[]", "name", 48)
            ]
        );
        assert!(f.fields[4].data_loc);
    }
}
