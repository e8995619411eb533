//! A malformed symbol file costs its own frames, never the report: the
//! file in `data/lines-of-a-missing-file.elf` (found by the `symbols` fuzz
//! target) has a line program naming a file index its header lacks, on
//! which the DWARF reader panics. Its frames come back as module+offset
//! with a note saying why, and other modules are still named.
//! `data/small-with-dwarf.elf` is `data/small-with-dwarf.c` built with
//! `cc -O1 -g`.

use std::path::{Path, PathBuf};

use weft_symbols::{Mapping, SearchOptions, SymCache, Symbolizer};

const START: u64 = 0x5555_0000_0000;

fn mapping(dir: &Path, name: &str) -> Mapping {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    let path = dir.join(name);
    std::fs::copy(&src, &path).expect("copy test data");
    module(&path)
}

/// No system debug directories, no debuginfod: only the files here.
fn options() -> SearchOptions {
    SearchOptions {
        debug_dirs: Vec::new(),
        debuginfod_urls: Vec::new(),
        ..SearchOptions::from_env()
    }
}

#[test]
fn a_file_the_dwarf_reader_panics_on_costs_only_its_own_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = mapping(dir.path(), "small-with-dwarf.elf");
    let bad = mapping(dir.path(), "lines-of-a-missing-file.elf");
    let opts = options();
    let mut sym = Symbolizer::new(opts, SymCache::default());
    let work = |sym: &mut Symbolizer| {
        let f = sym.symbolize(&good, START + 0x1129 + 4);
        f.last().and_then(|f| f.function.clone())
    };
    assert_eq!(work(&mut sym).as_deref(), Some("work"));

    for off in [0x112d, 0x1150, 0x2000] {
        let frames = sym.symbolize(&bad, START + off);
        assert!(frames.iter().all(|f| f.function.is_none()), "{frames:?}");
    }
    let note = &sym.notes()[&bad.path];
    assert!(note.problem.contains("malformed"), "{note:?}");

    // The symbolizer goes on naming other modules (uncached addresses too).
    let main = sym.symbolize(&good, START + 0x114e + 2);
    assert_eq!(
        main.last().and_then(|f| f.function.as_deref()),
        Some("main"),
        "{main:?}"
    );
}

/// CFI whose rules overflow the DWARF reader's arithmetic (found by the
/// fuzz target; a panic in builds with overflow checks): the stack ends
/// where unwinding got to, and the unwinder goes on with other stacks.
#[test]
fn cfi_the_reader_panics_on_ends_the_stack_there() {
    use std::sync::Arc;
    use weft_symbols::{Locator, Unwinders};
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = mapping(dir.path(), "cfi-that-overflows.elf");
    let data = std::fs::read(&bad.path).expect("read");
    let stack = &data[data.len() - 512..];
    let locator = Arc::new(Locator::new(options()));
    let mut u = Unwinders::default();
    let regs = [START + 0x112d, 0x7fff_0000_1000, 0x7fff_0000_1010];
    for _ in 0..2 {
        let frames = u.unwind(&locator, 1, 0, std::slice::from_ref(&bad), regs, stack, &[]);
        assert!(frames.len() <= 512, "{frames:?}");
    }
}

/// A compressed debug section whose header claims 382 GB (found by the
/// fuzz target): the DWARF reader would allocate that up front and the
/// process would abort. The file is refused as malformed, with a note.
#[test]
fn a_compressed_section_claiming_an_impossible_size_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = mapping(dir.path(), "section-claiming-382-gb.elf");
    let mut sym = Symbolizer::new(options(), SymCache::default());
    let frames = sym.symbolize(&bad, START + 0x112d);
    assert!(frames.iter().all(|f| f.function.is_none()), "{frames:?}");
    let note = &sym.notes()[&bad.path];
    assert!(note.problem.contains("claims 382252089575 bytes"), "{note:?}");
}

/// A stripped binary whose MiniDebugInfo (`.gnu_debugdata`) is an xz
/// stream of 128 MiB of zeros in a few kilobytes: the symbol reader would
/// inflate it whole, unbounded (a larger one exhausts memory). weft
/// inflates it first, bounded, and refuses the file with a note.
#[test]
fn a_mini_debuginfo_that_inflates_past_any_plausible_size_is_refused() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let bomb = dir.path().join("bomb.xz");
    let mut xz = std::process::Command::new("xz")
        .args(["-1", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(&bomb).expect("create"))
        .spawn()
        .expect("xz (xz-utils)");
    let mut stdin = xz.stdin.take().expect("xz stdin");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..128 {
        stdin.write_all(&zeros).expect("feed xz");
    }
    drop(stdin);
    assert!(xz.wait().expect("xz").success());
    let size = std::fs::metadata(&bomb).expect("bomb").len();
    assert!(size < 64 * 1024, "xz made {size} bytes");
    let bin = dir.path().join("stripped-with-bomb");
    objcopy(
        &[
            "--strip-all".to_owned(),
            format!("--add-section=.gnu_debugdata={}", bomb.display()),
        ],
        &bin,
    );
    let m = module(&bin);
    let mut sym = Symbolizer::new(options(), SymCache::default());
    let frames = sym.symbolize(&m, START + 0x1129 + 4);
    assert!(frames.iter().all(|f| f.function.is_none()), "{frames:?}");
    let note = &sym.notes()[&m.path];
    assert!(note.problem.contains(".gnu_debugdata inflates past"), "{note:?}");
}

/// The function at `work` in `m` and the module's note, symbolized on
/// another thread: a reader blocked on a FIFO fails the test instead of
/// hanging it.
fn symbolize_work(m: Mapping) -> (Option<String>, String) {
    symbolize_work_with(m, options())
}

fn symbolize_work_with(m: Mapping, opts: SearchOptions) -> (Option<String>, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sym = Symbolizer::new(opts, SymCache::default());
        let frames = sym.symbolize(&m, START + 0x1129 + 4);
        let note = sym.notes().get(&m.path).map(|n| n.problem.clone());
        let _ = tx.send((frames.last().and_then(|f| f.function.clone()), note.unwrap_or_default()));
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .expect("symbolizing blocked (on a FIFO?)")
}

/// `objcopy ARGS tests/data/small-with-dwarf.elf OUT`.
fn objcopy(args: &[String], out: &Path) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let st = std::process::Command::new("objcopy")
        .args(args)
        .arg(data.join("small-with-dwarf.elf"))
        .arg(out)
        .status()
        .expect("objcopy (binutils)");
    assert!(st.success());
}

/// `dir/small`, the test binary without its DWARF, with a debug link to
/// `dir/small.debug`, a copy of `tests/data/debug_file`; both paths.
fn stripped_with_link_to(dir: &Path, debug_file: &str) -> (PathBuf, PathBuf) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let debug = dir.join("small.debug");
    std::fs::copy(data.join(debug_file), &debug).expect("copy");
    let bin = dir.join("small");
    let link = format!("--add-gnu-debuglink={}", debug.display());
    objcopy(&["--strip-debug".to_owned(), link], &bin);
    (bin, debug)
}

fn mkfifo(p: &Path) {
    let st = std::process::Command::new("mkfifo").arg(p).status().expect("mkfifo");
    assert!(st.success());
}

/// The module mapped from `path`, as the tests place it.
fn module(path: &Path) -> Mapping {
    Mapping {
        start: START,
        end: START + 0x5000,
        pgoff: 0,
        path: path.to_string_lossy().into_owned(),
        build_id: Vec::new(),
    }
}

/// The reader also opens `FILE.dwp` (a DWARF package) next to a file with
/// DWARF, and looks for a debug link's target in the build-ID tree of its
/// directories first: a FIFO at either place is refused as well.
#[test]
fn a_dwarf_package_or_build_id_file_that_is_a_fifo_is_not_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let bin = dir.path().join("small");
    std::fs::copy(data.join("small-with-dwarf.elf"), &bin).expect("copy");
    mkfifo(&dir.path().join("small.dwp"));
    let (function, note) = symbolize_work(module(&bin));
    assert_eq!(function.as_deref(), Some("work"));
    assert!(note.contains("small.dwp is not a regular file"), "{note}");

    // A debug link whose target sits in the build-ID tree of a debug
    // directory, where a FIFO stands.
    let debug_dir = dir.path().join("debug");
    let linked = dir.path().join("linked");
    let link = format!("--add-gnu-debuglink={}", data.join("small-with-dwarf.elf").display());
    objcopy(&["--strip-debug".to_owned(), link], &linked);
    let out = std::process::Command::new("readelf")
        .arg("-n")
        .arg(&linked)
        .output()
        .expect("readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    let bid = text
        .split("Build ID: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("a build ID in the test binary")
        .to_owned();
    let tree = debug_dir.join(".build-id").join(&bid[..2]);
    std::fs::create_dir_all(&tree).expect("mkdir");
    mkfifo(&tree.join(format!("{}.debug", &bid[2..])));
    let opts = SearchOptions {
        debug_dirs: vec![debug_dir],
        ..options()
    };
    let (function, note) = symbolize_work_with(module(&linked), opts);
    assert_eq!(function.as_deref(), Some("work"));
    assert!(note.contains("is not a regular file"), "{note}");
}

/// A file with DWARF whose `.gnu_debugaltlink` (the dwz supplementary
/// file) names a FIFO: the symbol reader would open it and block for good,
/// hanging `weft report`. weft checks every place the reader may look,
/// refuses the link, and the function is still named from the symbol table.
#[test]
fn a_supplementary_debug_file_that_is_a_fifo_is_not_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("dwz-fifo");
    mkfifo(&fifo);
    let mut link = fifo.to_string_lossy().into_owned().into_bytes();
    link.push(0);
    link.extend_from_slice(&[0xab; 20]);
    let section = dir.path().join("altlink");
    std::fs::write(&section, &link).expect("write section");
    let bin = dir.path().join("with-altlink");
    objcopy(
        &[format!("--add-section=.gnu_debugaltlink={}", section.display())],
        &bin,
    );
    let m = module(&bin);
    let (function, note) = symbolize_work(m);
    assert_eq!(function.as_deref(), Some("work"));
    assert!(
        note.contains("a debug file it links to was refused") && note.contains("not a regular file"),
        "{note}"
    );
}

/// The same with a stripped binary's `.gnu_debuglink`: its target, next to
/// the binary, replaced by a FIFO after the link was made.
#[test]
fn a_debug_link_to_a_fifo_is_not_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (bin, debug) = stripped_with_link_to(dir.path(), "small-with-dwarf.elf");
    std::fs::remove_file(&debug).expect("remove");
    mkfifo(&debug);
    let m = module(&bin);
    let (function, note) = symbolize_work(m);
    assert_eq!(function.as_deref(), Some("work"));
    assert!(note.contains("not a regular file"), "{note}");
}

/// The same forged file as the debug file a stripped binary's
/// `.gnu_debuglink` names: weft refuses it, and the symbol reader must not
/// follow the link to it on its own (it would allocate the claimed size).
/// The binary's own symbol table still names the function.
#[test]
fn a_debug_link_to_a_file_claiming_an_impossible_size_is_not_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (bin, _) = stripped_with_link_to(dir.path(), "section-claiming-382-gb.elf");
    let m = module(&bin);
    let mut sym = Symbolizer::new(options(), SymCache::default());
    let frames = sym.symbolize(&m, START + 0x1129 + 4);
    assert_eq!(
        frames.last().and_then(|f| f.function.as_deref()),
        Some("work"),
        "{frames:?}"
    );
    let note = &sym.notes()[&m.path];
    assert!(note.problem.contains("malformed"), "{note:?}");
}

/// A `.plt` section whose address is near 2^64 (found by the fuzz target):
/// reading its stubs overflowed (a panic in builds with overflow checks,
/// wrong stubs in others). Addresses wrap now, and a lookup at the very
/// end of the address space answers.
#[test]
fn plt_stubs_at_the_end_of_the_address_space_do_not_overflow() {
    let data =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plt-at-the-end-of-the-address-space.elf"))
            .expect("read");
    let plt = weft_symbols::Plt::parse(&data);
    let _ = plt.name(u64::MAX);
    let _ = plt.name(0);
}
