//! JIT symbol maps: `/tmp/perf-PID.map`, lines of `START SIZE name` (hex),
//! as written by .NET (DOTNET_PerfMapEnabled=1), node --perf-basic-prof and others.

#[derive(Debug, Clone, Default)]
pub struct JitMap {
    entries: Vec<(u64, u64, String)>,
}

impl JitMap {
    /// Parses a map; malformed lines are skipped.
    pub fn parse(text: &str) -> JitMap {
        let mut entries: Vec<(u64, u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.splitn(3, ' ');
                let start = u64::from_str_radix(it.next()?.trim_start_matches("0x"), 16).ok()?;
                let size = u64::from_str_radix(it.next()?.trim_start_matches("0x"), 16).ok()?;
                let name = it.next()?.trim().to_owned();
                Some((start, size, name))
            })
            .collect();
        // Later lines win for the same start (code regions get reused).
        entries.sort_by_key(|e| e.0);
        entries.dedup_by(|b, a| {
            if a.0 == b.0 {
                std::mem::swap(a, b);
                true
            } else {
                false
            }
        });
        JitMap { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The JIT function containing `addr`.
    pub fn lookup(&self, addr: u64) -> Option<&str> {
        let i = self.entries.partition_point(|e| e.0 <= addr);
        let (start, size, name) = self.entries.get(i.checked_sub(1)?)?;
        (addr < start.saturating_add(*size)).then_some(name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_perf_maps() {
        let m = JitMap::parse("7f0000001000 40 jitted_add\n7f0000002000 0x100 Program::Main()\ngarbage line\n");
        assert_eq!(m.lookup(0x7f0000001010), Some("jitted_add"));
        assert_eq!(m.lookup(0x7f0000001040), None);
        assert_eq!(m.lookup(0x7f00000020ff), Some("Program::Main()"));
        assert_eq!(m.lookup(0x1000), None);
    }
}
