//! Creating the trace file (and `--archive`'s copies) as root without being
//! steered: a symbolic link planted at the output path is never followed,
//! and an existing trace is kept as `FILE.old` unless `--force` says not to.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What happened to a file that was at the output path.
#[derive(Debug, PartialEq, Eq)]
pub enum Replaced {
    Nothing,
    /// Renamed to this path, as perf keeps `perf.data.old`.
    MovedTo(PathBuf),
    /// Removed (`--force`).
    Removed,
}

/// A trace file being made: written under a hidden name next to `path`
/// until `publish` moves it into place, so that a recorder killed before the
/// file has its header, or a recording that never starts, leaves whatever
/// was at `path` as it was.
#[derive(Debug)]
pub struct NewTrace {
    pub file: File,
    hidden: PathBuf,
    path: PathBuf,
    force: bool,
    published: bool,
}

impl NewTrace {
    /// Moves the file to its name: what was there is kept as `path.old`
    /// (or replaced, with `force`). Renames never follow a link: one
    /// planted at `path` since `create` is moved aside or replaced itself.
    pub fn publish(&mut self) -> io::Result<Replaced> {
        let mut replaced = Replaced::Nothing;
        match std::fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(_) if self.force => replaced = Replaced::Removed,
            Ok(_) => {
                let mut old = self.path.as_os_str().to_owned();
                old.push(".old");
                let old = PathBuf::from(old);
                std::fs::rename(&self.path, &old)?;
                replaced = Replaced::MovedTo(old);
            }
        }
        std::fs::rename(&self.hidden, &self.path)?;
        self.published = true;
        Ok(replaced)
    }

    /// Removes the file, under whichever name it has.
    pub fn discard(&self) {
        let _ = std::fs::remove_file(if self.published { &self.path } else { &self.hidden });
    }
}

/// Starts the trace file for `path`, readable by its owner only: a trace
/// holds other programs' data. A symbolic link, a directory or a device at
/// `path` is an error (an existing regular file is dealt with by `publish`).
/// The file is made with O_EXCL|O_NOFOLLOW under a hidden name in the same
/// directory (see `NewTrace`).
pub fn create(path: &Path, force: bool) -> io::Result<NewTrace> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "it is a symbolic link, and weft does not write through links: remove it or choose another path",
            ))
        }
        Ok(m) if !m.file_type().is_file() => {
            let what = if m.is_dir() {
                "a directory"
            } else if m.file_type().is_fifo() {
                "a FIFO"
            } else {
                "not a regular file"
            };
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("it is {what}: choose another path"),
            ));
        }
        Ok(_) => {}
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hidden = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&hidden)?;
    Ok(NewTrace {
        file,
        hidden,
        path: path.to_owned(),
        force,
        published: false,
    })
}

/// A directory for `--archive` next to the trace: created if missing, and
/// refused if something other than a directory of ours is there.
pub fn archive_dir(output: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let mut dir = output.as_os_str().to_owned();
    dir.push(".d");
    let dir = PathBuf::from(dir);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = std::fs::symlink_metadata(&dir)?;
    let me = weft_kernel::os::euid();
    if !m.is_dir() || m.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory owned by uid {me} (a link or someone else's): remove it",
                dir.display()
            ),
        ));
    }
    Ok(dir)
}

/// Creates a new file in a directory made by `archive_dir`, never through a link.
pub fn create_new_in(dir: &Path, name: &str) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(name))
}

/// Opens a file that a traced program controls the name of, for reading as
/// root: no link at the last component, no blocking on a FIFO, a regular
/// file owned by `owner` (the traced process's uid), at most `cap` bytes.
pub fn read_untrusted(path: &Path, owner: u32, cap: u64) -> io::Result<Vec<u8>> {
    read_checked(path, libc::O_NOFOLLOW, Some(owner), cap)
}

/// A regular file (links along the path allowed, as for /lib), without
/// blocking on a FIFO, at most `cap` bytes.
pub fn read_regular(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    read_checked(path, 0, None, cap)
}

fn read_checked(path: &Path, flags: i32, owner: Option<u32>, cap: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if let Some(owner) = owner.filter(|&o| o != m.uid()) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("owned by uid {}, not by the process's uid {owner}", m.uid()),
        ));
    }
    let mut out = Vec::with_capacity(m.len().min(cap) as usize);
    f.take(cap).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_trace_is_kept_as_old_and_force_removes_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.weft");
        std::fs::write(&p, b"first").unwrap();
        let mut t = create(&p, false).unwrap();
        // Nothing moves until the file is published.
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert_eq!(t.publish().unwrap(), Replaced::MovedTo(d.path().join("t.weft.old")));
        assert_eq!(std::fs::read(d.path().join("t.weft.old")).unwrap(), b"first");
        let mut t = create(&p, true).unwrap();
        assert_eq!(t.publish().unwrap(), Replaced::Removed);
        t.discard();
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "only t.weft.old is left"
        );
    }

    #[test]
    fn a_recording_that_never_publishes_leaves_the_previous_trace_alone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.weft");
        std::fs::write(&p, b"first").unwrap();
        create(&p, true).unwrap().discard();
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_link_at_the_output_path_is_refused_and_its_target_untouched() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("precious");
        std::fs::write(&target, b"keep").unwrap();
        let p = d.path().join("t.weft");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        for force in [false, true] {
            let e = create(&p, force).unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn untrusted_reads_refuse_links_fifos_and_other_owners() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let me = std::fs::metadata(d.path()).unwrap().uid();
        let secret = d.path().join("secret");
        std::fs::write(&secret, b"s3cret").unwrap();
        let link = d.path().join("perf-1.map");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert!(read_untrusted(&link, me, 1 << 20).is_err());
        assert!(read_untrusted(&secret, me + 1, 1 << 20).is_err());
        assert_eq!(read_untrusted(&secret, me, 3).unwrap(), b"s3c");
        let fifo = d.path().join("fifo");
        weft_kernel::os::mkfifo(&fifo).unwrap();
        // Returns at once (no writer would ever come), with an error.
        assert!(read_untrusted(&fifo, me, 1 << 20).is_err());
    }
}
