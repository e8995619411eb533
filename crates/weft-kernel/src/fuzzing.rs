//! Entry points for the fuzz targets (`fuzz/`): the parsers that read what
//! the kernel writes, fed arbitrary bytes. Not part of the API.

use std::collections::HashMap;

use crate::event::{Decoder, Decoding, Layouts, Tp};
use crate::tracefs::EventFormat;
use crate::KernelEvent;

/// Tracepoint formats of a 6.18 x86-64 kernel, as tracefs shows them.
fn format(tp: Tp) -> crate::Result<EventFormat> {
    EventFormat::parse(match tp {
        Tp::SysEnter => include_str!("formats/sys_enter.format"),
        Tp::SysExit => include_str!("formats/sys_exit.format"),
        Tp::SignalGenerate => include_str!("formats/signal_generate.format"),
        Tp::SignalDeliver => include_str!("formats/signal_deliver.format"),
        Tp::Exec => include_str!("formats/sched_process_exec.format"),
        Tp::Exit => include_str!("formats/sched_process_exit.format"),
    })
}

/// A decoder as a kernel tracer has one: event ids 1..=6 are the
/// tracepoints in `Tp::ALL` order, 7 takes stacks, 8 is CPU sampling, 9 is
/// the capture program's output.
pub fn decoder() -> Option<impl FnMut(&[u8]) -> Option<KernelEvent>> {
    let layouts = Layouts::from_formats(format).ok()?;
    let mut by_id = HashMap::new();
    for (i, tp) in Tp::ALL.iter().enumerate() {
        by_id.insert(i as u64 + 1, Decoding::Tp(*tp));
    }
    by_id.insert(
        7,
        Decoding::Stack {
            trigger: "munmap".into(),
        },
    );
    by_id.insert(8, Decoding::CpuClock);
    by_id.insert(9, Decoding::Capture);
    let mut d = Decoder {
        layouts,
        by_id,
        malformed: 0,
        sideband_lifecycle: true,
    };
    Some(move |rec: &[u8]| d.decode(rec, 0))
}

/// Parses a tracefs `format` file.
pub fn parse_format(text: &str) -> bool {
    EventFormat::parse(text).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_formats_parse_and_a_sys_exit_record_decodes() {
        let mut decode = super::decoder().expect("formats");
        // PERF_RECORD_SAMPLE: header, then id, pid/tid, time, raw size + raw.
        let mut raw = vec![0u8; 8]; // common fields
        raw.extend_from_slice(&60i64.to_le_bytes()); // id
        raw.extend_from_slice(&(-2i64).to_le_bytes()); // ret
        let mut body = Vec::new();
        body.extend_from_slice(&2u64.to_le_bytes()); // sample id: SysExit
        body.extend_from_slice(&7u32.to_le_bytes());
        body.extend_from_slice(&7u32.to_le_bytes());
        body.extend_from_slice(&1000u64.to_le_bytes());
        body.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        body.extend_from_slice(&raw);
        while (body.len() + 8) % 8 != 0 {
            body.push(0);
        }
        let mut rec = Vec::new();
        rec.extend_from_slice(&9u32.to_le_bytes()); // PERF_RECORD_SAMPLE
        rec.extend_from_slice(&0u16.to_le_bytes());
        rec.extend_from_slice(&((body.len() + 8) as u16).to_le_bytes());
        rec.extend_from_slice(&body);
        let ev = decode(&rec);
        assert!(
            matches!(
                ev.as_ref().map(|e| &e.kind),
                Some(crate::EventKind::SyscallExit { nr: 60, ret: -2, data }) if data.is_empty()
            ),
            "{ev:?}"
        );
        // The capture program's siginfo record (fuzz/seeds/perf_record/signal_info).
        let seed = include_bytes!("../../../fuzz/seeds/perf_record/signal_info");
        let ev = decode(seed);
        assert!(
            matches!(
                ev.as_ref().map(|e| &e.kind),
                Some(crate::EventKind::SignalInfo {
                    sig: 11,
                    code: 1,
                    addr: 0x10
                })
            ),
            "{ev:?}"
        );
        // Cut short, it is not made up.
        let mut short = seed.to_vec();
        short.truncate(seed.len() - 8);
        let n = short.len() as u16;
        short[6..8].copy_from_slice(&n.to_le_bytes());
        let raw_len = u32::from_le_bytes(short[32..36].try_into().expect("4 bytes")) - 8;
        short[32..36].copy_from_slice(&raw_len.to_le_bytes());
        assert!(
            !matches!(
                decode(&short).map(|e| e.kind),
                Some(crate::EventKind::SignalInfo { .. })
            ),
            "a short siginfo record decoded"
        );
        // Arbitrary bytes never panic.
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let _ = decode(&junk);
        }
    }
}
