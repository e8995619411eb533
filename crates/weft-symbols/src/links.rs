//! The files the DWARF reader (blazesym 0.2.7) opens on its own while it
//! reads a file's debug information: the target of its `.gnu_debuglink`, a
//! dwz supplementary file (`.gnu_debugaltlink`, `.debug_sup`) of the file
//! or of that target, and a DWARF package (`FILE.dwp`). It looks for each
//! in a list of places and opens the first that exists, whatever it is: a
//! FIFO there blocks it for good, a malformed file has its claimed sizes
//! trusted. `refusal` checks every one of those places first; the list
//! mirrors the reader's own search (its `DebugFileIter`), and is checked
//! whole rather than up to the first hit.
//!
//! Nothing here opens a file that is not a regular one.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Links read from one file (section contents decompressed as the reader
/// decompresses them).
#[derive(Default)]
struct Links {
    build_id: Vec<u8>,
    debuglink: Option<OsString>,
    /// Supplementary files with the build ID given for them, if any.
    supplementary: Vec<(OsString, Vec<u8>)>,
}

/// Why the DWARF reader must not be let loose on `file` (a regular file
/// weft already inspected): a place where it would look for a linked file
/// holds something it must not open. `check` says why a regular file found
/// there is unfit (malformed), if it is.
pub(crate) fn refusal(file: &Path, dirs: &[PathBuf], check: &dyn Fn(&Path) -> Option<String>) -> Option<String> {
    let links = read(file)?;
    let mut dwp = file.as_os_str().to_owned();
    dwp.push(".dwp");
    if let Some(why) = unfit(Path::new(&dwp), check) {
        return Some(why);
    }
    if let Some(why) = supplementary(file, &links, dirs, check) {
        return Some(why);
    }
    let name = links.debuglink.as_deref()?;
    for p in places(dirs, canonical(file).as_deref(), name, &links.build_id) {
        if let Some(why) = unfit(&p, check) {
            return Some(why);
        }
        // The reader takes the supplementary file from the debug file it
        // follows the link to.
        if let Some(target) = p.is_file().then(|| read(&p)).flatten() {
            if let Some(why) = supplementary(&p, &target, dirs, check) {
                return Some(why);
            }
        }
    }
    None
}

fn supplementary(
    file: &Path,
    links: &Links,
    dirs: &[PathBuf],
    check: &dyn Fn(&Path) -> Option<String>,
) -> Option<String> {
    let linker = canonical(file);
    links.supplementary.iter().find_map(|(linkee, build_id)| {
        places(dirs, linker.as_deref(), linkee, build_id)
            .iter()
            .find_map(|p| unfit(p, check))
    })
}

/// Why the reader must not open `p`, if it exists.
fn unfit(p: &Path, check: &dyn Fn(&Path) -> Option<String>) -> Option<String> {
    // `exists` follows links, as the reader's does.
    let meta = std::fs::metadata(p).ok()?;
    if !meta.is_file() {
        return Some(format!("{} is not a regular file", p.display()));
    }
    check(p)
}

/// The reader's canonical path of a linking file: where it does not exist,
/// the path itself; on other errors, none (then it skips the places made
/// from it).
fn canonical(p: &Path) -> Option<PathBuf> {
    match p.canonicalize() {
        Ok(c) => Some(c),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(p.to_path_buf()),
        Err(_) => None,
    }
}

/// Where the reader looks for `linkee`, linked from `linker`, in order:
/// the build-ID tree of each directory, each directory, next to the
/// linker, then each directory joined with the linker's own directory and
/// each of its parents.
fn places(dirs: &[PathBuf], linker: Option<&Path>, linkee: &OsStr, build_id: &[u8]) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if build_id.len() >= 8 {
        let hex = crate::hex(build_id);
        for d in dirs {
            v.push(crate::build_id_path(d, &hex));
        }
    }
    for d in dirs {
        v.push(d.join(linkee));
    }
    let Some(linker) = linker else {
        return v;
    };
    let mut next_to = linker.to_path_buf();
    next_to.set_file_name(linkee);
    v.push(next_to.clone());
    // Its directory made relative: the first component (the root) and the
    // file name dropped.
    let mut parts = next_to.components();
    parts.next();
    parts.next_back();
    let rel = parts.as_path();
    for d in dirs {
        let mut dir = rel;
        loop {
            v.push(d.join(dir).join(linkee));
            match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => dir = p,
                _ => break,
            }
        }
    }
    v
}

/// The links of the ELF file at `p`, if it parses.
fn read(p: &Path) -> Option<Links> {
    use object::{Object, ObjectSection};
    let data = crate::mapped(p).ok()?;
    let obj = object::File::parse(&*data).ok()?;
    let section = |name: &str| obj.section_by_name(name).and_then(|s| s.uncompressed_data().ok());
    let cstr = |b: &[u8]| -> OsString { OsStr::from_bytes(b.split(|&c| c == 0).next().unwrap_or_default()).to_owned() };
    let mut links = Links {
        build_id: obj.build_id().ok().flatten().map(<[u8]>::to_vec).unwrap_or_default(),
        ..Links::default()
    };
    if let Some(d) = section(".gnu_debuglink") {
        let name = cstr(&d);
        if !name.is_empty() {
            links.debuglink = Some(name);
        }
    }
    if let Some(d) = section(".gnu_debugaltlink") {
        let name = cstr(&d);
        let build_id = d.get(name.len() + 1..).unwrap_or_default().to_vec();
        if !name.is_empty() {
            links.supplementary.push((name, build_id));
        }
    }
    // Version (2 bytes), is_supplementary (1), then the file name.
    if let Some(d) = section(".debug_sup") {
        let name = cstr(d.get(3..).unwrap_or_default());
        if !name.is_empty() {
            links.supplementary.push((name, Vec::new()));
        }
    }
    Some(links)
}

#[cfg(test)]
mod tests {
    use super::places;
    use std::ffi::OsStr;
    use std::path::{Path, PathBuf};

    /// `places` and `refusal` mirror blazesym 0.2.7's own search: a newer
    /// version may look elsewhere, and a FIFO there would hang a report.
    #[test]
    fn the_mirrored_reader_is_the_one_built() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).unwrap();
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"blazesym\""))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| v.trim_matches('"').to_owned());
        assert_eq!(
            version.as_deref(),
            Some("0.2.7"),
            "blazesym changed: check its debug-file search (dwarf/debug_link.rs, dwarf/resolver.rs) against links.rs, then update this test"
        );
    }

    /// The order and places of the reader's `DebugFileIter`.
    #[test]
    fn places_are_the_readers() {
        let dirs = [PathBuf::from("/usr/lib/debug")];
        let got = places(
            &dirs,
            Some(Path::new("/usr/bin/app")),
            OsStr::new("app.debug"),
            &[0xab, 1, 2, 3, 4, 5, 6, 7],
        );
        let want: Vec<PathBuf> = [
            "/usr/lib/debug/.build-id/ab/01020304050607.debug",
            "/usr/lib/debug/app.debug",
            "/usr/bin/app.debug",
            "/usr/lib/debug/usr/bin/app.debug",
            "/usr/lib/debug/usr/app.debug",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got, want);
        // An absolute link replaces the linker's directory, and a short
        // build ID is not looked up.
        let got = places(&dirs, Some(Path::new("/a/b")), OsStr::new("/x/dwz"), &[1, 2]);
        assert!(got.iter().all(|p| p == Path::new("/x/dwz")), "{got:?}");
    }
}
