//! Entry points for the fuzz targets (`fuzz/`): the collector's reader fed
//! arbitrary shared memory and control frames. Not part of the API.

use weft_probe_abi::control::{EventDesc, Msg, ProcessInfo};
use weft_probe_abi::layout::{Geometry, Mode, AREA_HEADER_LEN};

use crate::{Area, Collect, Damage, ProbeRecord, ProbeRun, RunBytes, Sink, TscClock};

/// Drains an area whose slots hold `bytes` (the collector's own header
/// kept), in discard mode if the first byte is even, else overwrite mode:
/// a round, the final pass, then the accounting.
pub fn drain_image(bytes: &[u8]) {
    let geo = Geometry {
        slots: 2,
        subbufs: 2,
        subbuf_size: 4096,
    };
    let mode = if bytes.first().is_some_and(|b| b & 1 == 1) {
        Mode::Overwrite
    } else {
        Mode::Discard
    };
    let Ok(area) = Area::create(geo, mode) else { return };
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        area.put_u64(AREA_HEADER_LEN + i * 8, u64::from_le_bytes(w));
    }
    let info = sample_info();
    // Calibrating a clock takes 10 ms: once per fuzzing thread.
    thread_local! {
        static CLOCK: TscClock = TscClock::new();
    }
    CLOCK.with(|clock| {
        let mut d = crate::drain::Drainer::new(&info, geo, mode, area.salt());
        let mut sink = Collect::default();
        d.drain(&area, clock, false, &mut sink);
        d.last = true;
        d.drain(&area, clock, true, &mut sink);
        let _ = d.stats(&area);
        // Again, with runs copied into the sink's own buffer.
        let mut d = crate::drain::Drainer::new(&info, geo, mode, area.salt());
        let mut sink = InPlace::default();
        d.drain(&area, clock, false, &mut sink);
        d.last = true;
        d.drain(&area, clock, true, &mut sink);
    });
}

/// Process 1 declaring one event, `p:e { a: u64, s: str }`: what the fuzz
/// target and the drain's tests read areas against.
pub(crate) fn sample_info() -> ProcessInfo {
    ProcessInfo {
        pid: 1,
        start_time: 0,
        comm: "t".into(),
        sessions: 1,
        user_events: false,
        events: vec![EventDesc {
            id: 0,
            provider: "p".into(),
            name: "e".into(),
            fields: vec![("a".into(), 4), ("s".into(), 12)],
        }],
    }
}

/// Decodes a control-socket frame body, both as the collector does and as
/// a fork child's control thread does (without allocating): the two agree.
pub fn decode_frame(bytes: &[u8]) {
    let msg = Msg::decode(bytes);
    if let Ok(m) = &msg {
        // What decodes encodes again to a frame of the same message.
        let again = m.encode();
        assert!(again.len() >= 4);
    }
    use weft_probe_abi::control::Request;
    match (Request::decode(bytes), msg) {
        (Ok(Request::Hello { version }), Ok(Msg::Hello { version: v })) => assert_eq!(version, v),
        (Ok(Request::Attach { mode, patterns }), Ok(Msg::Attach { mode: m, patterns: p })) => {
            assert_eq!(mode, m);
            assert_eq!(patterns.iter().count(), p.len());
            for (a, b) in patterns.iter().zip(&p) {
                assert_eq!(String::from_utf8_lossy(a), *b);
            }
        }
        (Ok(Request::Detach), Ok(Msg::Detach))
        | (Ok(Request::Later), Ok(Msg::Later))
        | (Ok(Request::Other(_)), _)
        | (Err(_), Err(_)) => {}
        (r, m) => panic!("the two decoders disagree: {r:?} against {m:?}"),
    }
}

/// Takes runs into its buffer and reads them back from there.
#[derive(Default)]
struct InPlace {
    buf: Vec<u8>,
    n: usize,
}

impl Sink for InPlace {
    fn record(&mut self, _r: &ProbeRecord<'_>) {
        self.n += 1;
    }
    fn run_buffer(&mut self, _max: usize) -> Option<&mut Vec<u8>> {
        Some(&mut self.buf)
    }
    fn run(&mut self, run: &ProbeRun<'_>) {
        if let RunBytes::InSink(len) = run.records {
            let bytes = self.buf[self.buf.len() - len..].to_vec();
            let mut n = 0;
            run.for_each(&bytes, |_| n += 1);
            assert_eq!(n, run.count as usize, "a checked run decodes whole");
        }
    }
    fn damage(&mut self, _d: Damage) {}
    /// Every answer, by the claimed pid: yes, no and not yet.
    fn belongs(&mut self, _process: u32, pid: u32) -> Option<bool> {
        (!pid.is_multiple_of(3)).then_some(pid % 3 == 1)
    }
}
