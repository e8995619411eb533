//! Names of PLT stubs (`memcpy@plt`), as perf and objdump give them: no
//! symbol table lists them, so each stub's indirect jump is decoded and its
//! GOT slot looked up in the dynamic relocations (jump slots in `.rela.plt`,
//! GOT entries in `.rela.dyn` for `.plt.got`).

use std::collections::HashMap;

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
use object::{Object, ObjectSection, ObjectSymbol, ObjectSymbolTable, SymbolIndex};

/// The PLT stubs of one binary, by virtual address.
#[derive(Debug, Clone, Default)]
pub struct Plt {
    /// (stub address, stub size, name), sorted by address.
    stubs: Vec<(u64, u64, String)>,
}

impl Plt {
    /// Reads the stubs of an x86-64 ELF image; empty for anything else. A
    /// stub that cannot be decoded stays unnamed (only a missed name).
    pub fn parse(data: &[u8]) -> Plt {
        let Ok(file) = ElfFile64::<object::Endianness>::parse(data) else {
            return Plt::default();
        };
        if file.elf_header().e_machine(file.endian()) != elf::EM_X86_64 {
            return Plt::default();
        }
        let slots = got_slots(&file, data);
        if slots.is_empty() {
            return Plt::default();
        }
        let mut stubs = Vec::new();
        // .plt starts with a 16-byte header stub of its own; with IBT its
        // entries only push and jump back, and the calls go through .plt.sec.
        for (name, skip) in [(".plt", 16), (".plt.sec", 0), (".plt.got", 0)] {
            let Some(sec) = file.section_by_name(name) else {
                continue;
            };
            let Ok(bytes) = sec.data() else { continue };
            let entsize = match sec.elf_section_header().sh_entsize(file.endian()) {
                8 => 8,
                _ => 16,
            };
            let mut off = skip;
            while off + entsize <= bytes.len() as u64 {
                // Addresses come from the file: any value, wrapping.
                let at = sec.address().wrapping_add(off);
                let entry = &bytes[off as usize..(off + entsize) as usize];
                if let Some(slot) = jump_slot(at, entry) {
                    if let Some(sym) = slots.get(&slot) {
                        stubs.push((at, entsize, format!("{sym}@plt")));
                    }
                }
                off += entsize;
            }
        }
        stubs.sort_by_key(|s| s.0);
        Plt { stubs }
    }

    /// The stub's address and `name@plt` for an address inside a stub.
    pub fn name(&self, vaddr: u64) -> Option<(u64, String)> {
        let i = self.stubs.partition_point(|s| s.0 <= vaddr).checked_sub(1)?;
        let (at, size, name) = &self.stubs[i];
        (vaddr < at.saturating_add(*size)).then(|| (*at, name.clone()))
    }

    pub fn is_empty(&self) -> bool {
        self.stubs.is_empty()
    }
}

/// The GOT slot read by a stub's first `jmp *disp32(%rip)` (`ff 25`,
/// possibly after endbr64 and a bnd/notrack prefix).
fn jump_slot(at: u64, entry: &[u8]) -> Option<u64> {
    let i = entry.windows(2).position(|w| w == [0xff, 0x25])?;
    let disp = entry.get(i + 2..i + 6)?;
    let disp = i32::from_le_bytes(disp.try_into().ok()?);
    let next = at.wrapping_add(i as u64 + 6);
    Some(next.wrapping_add_signed(i64::from(disp)))
}

/// GOT slot address -> symbol name, from jump-slot and GOT relocations.
fn got_slots(file: &ElfFile64<object::Endianness>, data: &[u8]) -> HashMap<u64, String> {
    let mut out = HashMap::new();
    let Some(dynsym) = file.dynamic_symbol_table() else {
        return out;
    };
    let endian = file.endian();
    for name in [".rela.plt", ".rela.dyn"] {
        let Some(sec) = file.section_by_name(name) else {
            continue;
        };
        let Ok(relocs) = sec
            .elf_section_header()
            .data_as_array::<elf::Rela64<object::Endianness>, _>(endian, data)
        else {
            continue;
        };
        for r in relocs {
            let ty = r.r_type(endian, false);
            if ty != elf::R_X86_64_JUMP_SLOT && ty != elf::R_X86_64_GLOB_DAT {
                continue;
            }
            let Ok(sym) = dynsym.symbol_by_index(SymbolIndex(r.r_sym(endian, false) as usize)) else {
                continue;
            };
            // Versions (`@GLIBC_2.14`) are in .gnu.version, not in the name.
            if let Some(n) = sym.name().ok().filter(|n| !n.is_empty()) {
                out.insert(r.r_offset.get(endian), n.to_owned());
            }
        }
    }
    out
}
