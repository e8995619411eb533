//! An arbitrary file as a module of a traced process: its ELF headers,
//! symbol tables, DWARF (plain, SHF_COMPRESSED, legacy `.zdebug_*`),
//! MiniDebugInfo (`.gnu_debugdata`), PLT relocations and CFI all go through
//! the symbolizer and the unwinder, as a report reads a binary or debug file
//! found on disk. The first 32 bytes choose addresses, registers and a stack.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use weft_symbols::{JitMap, Locator, Mapping, SearchOptions, SymCache, Symbolizer, Unwinders};

/// This process's scratch directory (the module file, and where legacy
/// `.zdebug_*` files are rewritten), under the temporary directory.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("weft-fuzz-symbols-{}", std::process::id()));
        let _ = std::fs::create_dir_all(d.join("debug"));
        d
    })
}

fn word(b: &[u8], i: usize) -> u64 {
    b.get(i * 8..i * 8 + 8)
        .map_or(0, |w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    let (head, file) = data.split_at(32);
    let dir = scratch();
    let path = dir.join("module.so");
    if std::fs::write(&path, file).is_err() {
        return;
    }
    let zdebug = dir.join("zdebug");
    let _ = std::fs::remove_dir_all(&zdebug);
    let opts = SearchOptions {
        symbol_dirs: Vec::new(),
        debug_dirs: vec![dir.join("debug")],
        debuginfod_urls: Vec::new(),
        debuginfod_cache: None,
        archive_dir: None,
        zdebug_dir: Some(zdebug),
    };
    let start = 0x5555_0000_0000u64;
    let len = (file.len() as u64).next_multiple_of(4096).max(4096);
    let m = Mapping {
        start,
        end: start + len,
        pgoff: word(head, 3) & 0xf000,
        path: path.to_string_lossy().into_owned(),
        build_id: Vec::new(),
    };
    let mut sym = Symbolizer::new(opts.clone(), SymCache::default());
    for i in 0..3 {
        let _ = sym.symbolize(&m, start + word(head, i) % len);
    }
    // The unwinder reads the same file's CFI; the stack is the file's tail.
    let locator = Arc::new(Locator::new(opts));
    let stack = &file[file.len().saturating_sub(512)..];
    let regs = [start + word(head, 0) % len, 0x7fff_0000_1000, 0x7fff_0000_1010];
    let _ = Unwinders::default().unwind(&locator, 1, 0, std::slice::from_ref(&m), regs, stack, &[]);
    if let Ok(text) = std::str::from_utf8(file) {
        let jit = JitMap::parse(text);
        let _ = jit.lookup(word(head, 1));
    }
});
