//! PLT stubs are named as objdump names them (`strlen@plt`), through the
//! symbolizer, for a binary with a plain `.plt` and one with IBT's
//! `.plt.sec`, compiled here.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use object::{Object, ObjectSection};
use weft_symbols::{Mapping, Plt, SearchOptions, SymCache, Symbolizer};

const SRC: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    char *p = malloc(64);
    strcpy(p, argv[0]);
    printf("%zu\n", strlen(p));
    free(p);
    return 0;
}
"#;

/// objdump's `<name@plt>` labels: address -> name.
fn objdump_stubs(exe: &Path) -> BTreeMap<u64, String> {
    let out = Command::new("objdump")
        .arg("-d")
        .arg(exe)
        .output()
        .expect("objdump (binutils)");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (addr, rest) = l.split_once(" <")?;
            let name = rest.strip_suffix(">:")?.strip_suffix("@plt")?;
            Some((u64::from_str_radix(addr.trim(), 16).ok()?, format!("{name}@plt")))
        })
        .collect()
}

#[test]
fn plt_stubs_are_named_as_objdump_names_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("p.c");
    std::fs::write(&src, SRC).unwrap();
    for (name, flags) in [
        ("plain", &["-fcf-protection=none"][..]),
        ("ibt", &["-fcf-protection=full", "-Wl,-z,ibtplt"][..]),
    ] {
        let exe = dir.path().join(name);
        let st = Command::new("cc")
            .args(flags)
            .args(["-O2", "-fno-builtin", "-o"])
            .arg(&exe)
            .arg(&src)
            .status()
            .expect("cc");
        assert!(st.success());
        let want = objdump_stubs(&exe);
        assert!(want.len() >= 4, "{name}: objdump found {want:?}");
        let data = std::fs::read(&exe).unwrap();
        let file = object::File::parse(&*data).unwrap();
        assert_eq!(
            file.section_by_name(".plt.sec").is_some(),
            name == "ibt",
            "{name}: sections"
        );

        let plt = Plt::parse(&data);
        for (&addr, n) in &want {
            // The stub's first instruction (8-byte .plt.got stubs included).
            for at in [addr, addr + 5] {
                assert_eq!(plt.name(at), Some((addr, n.clone())), "{name}: {at:#x}");
            }
        }

        // Through the symbolizer: the whole file mapped at a base, as a
        // process maps it (a PIE's vaddrs are its offsets in the first page
        // groups, and the mapping below covers them all).
        let base = 0x5555_0000_0000u64;
        let m = Mapping {
            start: base,
            end: base + data.len() as u64,
            pgoff: 0,
            path: exe.display().to_string(),
            build_id: Vec::new(),
        };
        let mut s = Symbolizer::new(SearchOptions::default(), SymCache::default());
        for (&addr, n) in &want {
            let sec = file
                .sections()
                .find(|s| (s.address()..s.address() + s.size()).contains(&addr))
                .expect("section of the stub");
            let off = sec.file_range().expect("in the file").0 + (addr - sec.address());
            let frames = s.symbolize(&m, base + off + 4);
            assert_eq!(frames[0].function.as_deref(), Some(n.as_str()), "{name}: {frames:?}");
        }
        // `main` is still main.
        let main_frames = s.symbolize(&m, base + main_offset(&file));
        assert_eq!(main_frames[0].function.as_deref(), Some("main"), "{name}");
    }
}

fn main_offset(file: &object::File) -> u64 {
    use object::ObjectSymbol;
    let main = file.symbols().find(|s| s.name() == Ok("main")).expect("main");
    let sec = file.section_by_index(main.section_index().unwrap()).unwrap();
    sec.file_range().unwrap().0 + (main.address() - sec.address())
}
