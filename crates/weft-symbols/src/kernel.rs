//! Kernel function names: the machine's `/proc/kallsyms`, and the small
//! table of the functions a recording passed through that a trace carries
//! (`kernel:symbols`: ascending start addresses, names each ended by NUL).

/// Text symbols sorted by start address; names live in one string.
#[derive(Debug, Default, Clone)]
pub struct KernelSymbols {
    names: String,
    /// (start address, name offset, name length)
    syms: Vec<(u64, u32, u32)>,
}

impl KernelSymbols {
    /// This machine's `/proc/kallsyms`; empty when unreadable.
    pub fn load() -> KernelSymbols {
        Self::parse(&std::fs::read_to_string("/proc/kallsyms").unwrap_or_default())
    }

    /// Parses kallsyms text, keeping code symbols (`t`, `T`, `w`, `W`) with a
    /// non-zero address (kptr_restrict shows zeros).
    pub fn parse(text: &str) -> KernelSymbols {
        let mut k = KernelSymbols::default();
        for l in text.lines() {
            let mut it = l.split_ascii_whitespace();
            let (Some(a), Some(t), Some(n)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            match u64::from_str_radix(a, 16) {
                Ok(a) if a != 0 && matches!(t, "t" | "T" | "w" | "W") => k.push(a, n),
                _ => {}
            }
        }
        k.syms.sort_unstable_by_key(|s| s.0);
        k
    }

    /// The table a trace stores (see the module doc). Names beyond the
    /// addresses are ignored; addresses without a name get an empty one.
    pub fn from_table(addrs: &[u64], names: &[u8]) -> KernelSymbols {
        let mut k = KernelSymbols::default();
        let mut names = names.split(|&b| b == 0);
        for &a in addrs {
            k.push(a, &String::from_utf8_lossy(names.next().unwrap_or(&[])));
        }
        k.syms.sort_unstable_by_key(|s| s.0);
        k
    }

    /// This table in the stored form: (addresses, NUL-ended names).
    pub fn to_table(&self) -> (Vec<u64>, Vec<u8>) {
        let mut names = Vec::new();
        for s in &self.syms {
            names.extend_from_slice(self.name(s).as_bytes());
            names.push(0);
        }
        (self.syms.iter().map(|s| s.0).collect(), names)
    }

    /// Just the functions that contain `addrs`, each once.
    pub fn subset(&self, addrs: impl IntoIterator<Item = u64>) -> KernelSymbols {
        let mut idx: Vec<usize> = addrs.into_iter().filter_map(|a| self.index_of(a)).collect();
        idx.sort_unstable();
        idx.dedup();
        let mut k = KernelSymbols::default();
        for i in idx {
            let s = self.syms[i];
            k.push(s.0, self.name(&s));
        }
        k
    }

    /// The function containing `addr`: the one with the greatest start not above it.
    pub fn function(&self, addr: u64) -> Option<&str> {
        self.index_of(addr).map(|i| self.name(&self.syms[i]))
    }

    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    pub fn len(&self) -> usize {
        self.syms.len()
    }

    fn index_of(&self, addr: u64) -> Option<usize> {
        self.syms.partition_point(|s| s.0 <= addr).checked_sub(1)
    }

    fn push(&mut self, addr: u64, name: &str) {
        let at = self.names.len() as u32;
        self.names.push_str(name);
        self.syms.push((addr, at, name.len() as u32));
    }

    fn name(&self, s: &(u64, u32, u32)) -> &str {
        self.names.get(s.1 as usize..(s.1 + s.2) as usize).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_subset_and_stored_table_round_trip() {
        let k = KernelSymbols::parse(
            "ffffffff81000000 T _stext\nffffffff81000100 t do_thing\n0000000000000000 T hidden\nffffffff81000200 D data\nffffffff81000300 W weak_fn [mod]\n",
        );
        assert_eq!(k.len(), 3);
        assert_eq!(k.function(0xffffffff81000150), Some("do_thing"));
        assert_eq!(k.function(0xffffffff81000250), Some("do_thing"), "data is not code");
        assert_eq!(k.function(0x10), None);
        let s = k.subset([0xffffffff81000150, 0xffffffff81000120, 0xffffffff81000301]);
        let (addrs, names) = s.to_table();
        assert_eq!(addrs, vec![0xffffffff81000100, 0xffffffff81000300]);
        assert_eq!(names, b"do_thing\0weak_fn\0".to_vec());
        let back = KernelSymbols::from_table(&addrs, &names);
        assert_eq!(back.function(0xffffffff81000310), Some("weak_fn"));
        // A hostile table: fewer names than addresses, junk bytes.
        let odd = KernelSymbols::from_table(&[5, 1], b"\xff\xfe");
        assert_eq!(odd.function(1), Some(""));
        assert_eq!(odd.function(6), Some("\u{fffd}\u{fffd}"));
    }
}
