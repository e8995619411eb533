//! Control-socket messages between weft record and an instrumented process.
//! Frames: `u32 length | u8 type | body`; strings are `u16 length | bytes`.
//! Both sides decode with bounds checks: neither trusts the other's bytes.

pub const PROTOCOL_VERSION: u32 = 1;
/// Largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;
const MAX_STR: usize = 1024;
const MAX_EVENTS: usize = 65536;
const MAX_FIELDS: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDesc {
    pub id: u32,
    pub provider: String,
    pub name: String,
    /// (field name, `payload::FieldType` code)
    pub fields: Vec<(String, u8)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub start_time: u64,
    pub comm: String,
    /// Bits of attached sessions.
    pub sessions: u32,
    /// Whether the kernel's user_events were found and the events registered there.
    pub user_events: bool,
    pub events: Vec<EventDesc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Collector -> process: first message.
    Hello {
        version: u32,
    },
    /// Process -> collector: answer to Hello.
    Info(ProcessInfo),
    /// Collector -> process, with the area memfd in SCM_RIGHTS: start writing
    /// events matching the `provider:name` glob patterns.
    Attach {
        mode: u32,
        patterns: Vec<String>,
    },
    /// Process -> collector: the session bit taken and how many events matched.
    Attached {
        session: u32,
        enabled: u32,
    },
    /// Collector -> process: stop writing for this connection's session.
    Detach,
    /// Process -> collector: detached; nothing more will be written. Also
    /// the answer to `Later`.
    Detached,
    Error(String),
    /// Collector -> process: no attach is coming now (the collector's
    /// memory cap, for one): a wait for an attach (at start, or in a fork
    /// child) ends; an attach may still come later.
    Later,
}

/// Where a frame is encoded: a `Vec`, or a fixed buffer (`FrameBuf`) for
/// a process that must not allocate (a fork child's control thread).
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A frame encoded into a caller's buffer: `u32 length | u8 type | body`.
/// Bytes that do not fit are counted, not written: `finish` then says None.
pub struct FrameBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> FrameBuf<'a> {
    /// Starts a frame of message type `ty` (the codes of `Msg::encode`).
    pub fn new(buf: &'a mut [u8], ty: u8) -> FrameBuf<'a> {
        let mut f = FrameBuf {
            buf,
            len: 0,
            overflow: false,
        };
        f.put(&[0; 4]);
        f.put(&[ty]);
        f
    }

    /// The whole frame, its length prefix set; None if it did not fit.
    pub fn finish(self) -> Option<&'a [u8]> {
        if self.overflow || self.len - 4 > MAX_FRAME {
            return None;
        }
        let body = (self.len - 4) as u32;
        self.buf.get_mut(..4)?.copy_from_slice(&body.to_le_bytes());
        self.buf.get(..self.len)
    }
}

impl Sink for FrameBuf<'_> {
    fn put(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            _ => self.overflow = true,
        }
    }
}

/// A string as frames carry it (cut at `MAX_STR` bytes).
pub fn put_str(out: &mut impl Sink, s: &[u8]) {
    let b = &s[..s.len().min(MAX_STR)];
    out.put(&(b.len() as u16).to_le_bytes());
    out.put(b);
}

/// The fixed part of an `Info` body, before its `events` entries.
pub fn put_info_head(
    out: &mut impl Sink,
    pid: u32,
    start_time: u64,
    comm: &[u8],
    sessions: u32,
    user_events: bool,
    events: u32,
) {
    out.put(&pid.to_le_bytes());
    out.put(&start_time.to_le_bytes());
    put_str(out, comm);
    out.put(&sessions.to_le_bytes());
    out.put(&[u8::from(user_events)]);
    out.put(&events.to_le_bytes());
}

/// One event of an `Info` body; at most `u8::MAX` fields are sent.
pub fn put_info_event<'f>(
    out: &mut impl Sink,
    id: u32,
    provider: &[u8],
    name: &[u8],
    fields: impl ExactSizeIterator<Item = (&'f [u8], u8)>,
) {
    out.put(&id.to_le_bytes());
    put_str(out, provider);
    put_str(out, name);
    out.put(&[fields.len().min(MAX_FIELDS) as u8]);
    for (n, t) in fields.take(MAX_FIELDS) {
        put_str(out, n);
        out.put(&[t]);
    }
}

impl Msg {
    /// The whole frame, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; 4];
        match self {
            Msg::Hello { version } => {
                b.push(1);
                b.extend_from_slice(&version.to_le_bytes());
            }
            Msg::Info(i) => {
                b.push(2);
                let n = i.events.len() as u32;
                put_info_head(
                    &mut b,
                    i.pid,
                    i.start_time,
                    i.comm.as_bytes(),
                    i.sessions,
                    i.user_events,
                    n,
                );
                for e in &i.events {
                    let fields = e.fields.iter().map(|(n, t)| (n.as_bytes(), *t));
                    put_info_event(&mut b, e.id, e.provider.as_bytes(), e.name.as_bytes(), fields);
                }
            }
            Msg::Attach { mode, patterns } => {
                b.push(3);
                b.extend_from_slice(&mode.to_le_bytes());
                b.extend_from_slice(&(patterns.len() as u16).to_le_bytes());
                for p in patterns {
                    put_str(&mut b, p.as_bytes());
                }
            }
            Msg::Attached { session, enabled } => {
                b.push(4);
                b.extend_from_slice(&session.to_le_bytes());
                b.extend_from_slice(&enabled.to_le_bytes());
            }
            Msg::Detach => b.push(5),
            Msg::Detached => b.push(6),
            Msg::Error(s) => {
                b.push(7);
                put_str(&mut b, s.as_bytes());
            }
            Msg::Later => b.push(8),
        }
        let len = (b.len() - 4) as u32;
        b[0..4].copy_from_slice(&len.to_le_bytes());
        b
    }

    /// Decodes a frame body (after the length prefix).
    pub fn decode(body: &[u8]) -> Result<Msg, String> {
        let mut r = Reader { b: body, pos: 0 };
        let ty = r.u8()?;
        let m = match ty {
            1 => Msg::Hello { version: r.u32()? },
            2 => {
                let pid = r.u32()?;
                let start_time = r.u64()?;
                let comm = r.str()?;
                let sessions = r.u32()?;
                let user_events = r.u8()? != 0;
                let n = r.u32()? as usize;
                if n > MAX_EVENTS {
                    return Err(format!("{n} events declared (limit {MAX_EVENTS})"));
                }
                let mut events = Vec::new();
                for _ in 0..n {
                    let id = r.u32()?;
                    let provider = r.str()?;
                    let name = r.str()?;
                    let nf = r.u8()? as usize;
                    if nf > MAX_FIELDS {
                        return Err(format!("event {provider}:{name} has {nf} fields (limit {MAX_FIELDS})"));
                    }
                    let mut fields = Vec::new();
                    for _ in 0..nf {
                        let fname = r.str()?;
                        fields.push((fname, r.u8()?));
                    }
                    events.push(EventDesc {
                        id,
                        provider,
                        name,
                        fields,
                    });
                }
                Msg::Info(ProcessInfo {
                    pid,
                    start_time,
                    comm,
                    sessions,
                    user_events,
                    events,
                })
            }
            3 => {
                let mode = r.u32()?;
                let n = r.u16()? as usize;
                let mut patterns = Vec::new();
                for _ in 0..n {
                    patterns.push(r.str()?);
                }
                Msg::Attach { mode, patterns }
            }
            4 => Msg::Attached {
                session: r.u32()?,
                enabled: r.u32()?,
            },
            5 => Msg::Detach,
            6 => Msg::Detached,
            7 => Msg::Error(r.str()?),
            8 => Msg::Later,
            t => return Err(format!("unknown message type {t}")),
        };
        Ok(m)
    }
}

/// The messages a process receives, decoded without allocating (for a fork
/// child's control thread): pattern strings stay in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    Hello {
        version: u32,
    },
    Attach {
        mode: u32,
        patterns: Patterns<'a>,
    },
    Detach,
    Later,
    /// A message of a known type that a process never receives.
    Other(u8),
}

/// The pattern list of an `Attach`, checked when decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patterns<'a> {
    count: u16,
    bytes: &'a [u8],
}

impl<'a> Patterns<'a> {
    /// The encoded list (`u16 count | strings`), as `decode` takes it back.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Checks an encoded list, as stored from an earlier `Attach`.
    pub fn decode(bytes: &'a [u8]) -> Option<Patterns<'a>> {
        let mut r = Reader { b: bytes, pos: 0 };
        let count = r.u16().ok()?;
        for _ in 0..count {
            r.bytes().ok()?;
        }
        (r.pos == bytes.len()).then_some(Patterns { count, bytes })
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut r = Reader { b: self.bytes, pos: 2 };
        (0..self.count).map_while(move |_| r.bytes().ok())
    }

    /// Whether any pattern matches `provider:name` (see `pattern_matches`).
    pub fn any_matches(&self, provider: &[u8], name: &[u8]) -> bool {
        self.iter().any(|p| pattern_matches(p, provider, name))
    }
}

impl Request<'_> {
    /// Decodes a frame body (after the length prefix).
    pub fn decode(body: &[u8]) -> Result<Request<'_>, &'static str> {
        let mut r = Reader { b: body, pos: 0 };
        let ty = r.u8().map_err(|_| "empty message")?;
        Ok(match ty {
            1 => Request::Hello {
                version: r.u32().map_err(|_| "truncated hello")?,
            },
            3 => {
                let mode = r.u32().map_err(|_| "truncated attach")?;
                let start = r.pos;
                let count = r.u16().map_err(|_| "truncated attach")?;
                for _ in 0..count {
                    r.bytes().map_err(|_| "bad pattern in attach")?;
                }
                let bytes = body.get(start..r.pos).ok_or("truncated attach")?;
                Request::Attach {
                    mode,
                    patterns: Patterns { count, bytes },
                }
            }
            5 => Request::Detach,
            8 => Request::Later,
            t @ (2 | 4 | 6 | 7) => Request::Other(t),
            _ => return Err("unknown message type"),
        })
    }
}

/// Whether a `provider:event` glob (`*`, `?`) matches; a pattern without
/// `:` means every event of that provider. Allocates nothing, and takes
/// time linear in the product of the lengths, whatever the pattern.
pub fn pattern_matches(pattern: &[u8], provider: &[u8], name: &[u8]) -> bool {
    let bare = !pattern.contains(&b':');
    let plen = pattern.len() + if bare { 2 } else { 0 };
    let pat = |i: usize| -> u8 {
        match pattern.get(i) {
            Some(&c) => c,
            None if i == pattern.len() => b':',
            None => b'*',
        }
    };
    let slen = provider.len() + 1 + name.len();
    let txt = |i: usize| -> u8 {
        match i.cmp(&provider.len()) {
            std::cmp::Ordering::Less => provider[i],
            std::cmp::Ordering::Equal => b':',
            std::cmp::Ordering::Greater => name[i - provider.len() - 1],
        }
    };
    // The classic greedy match with one backtrack point (the last `*`).
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < slen {
        if p < plen && (pat(p) == b'?' || (pat(p) != b'*' && pat(p) == txt(t))) {
            p += 1;
            t += 1;
        } else if p < plen && pat(p) == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while p < plen && pat(p) == b'*' {
        p += 1;
    }
    p == plen
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

/// Why a frame did not decode; kept allocation-free for `Request::decode`.
#[derive(Debug, Clone, Copy)]
enum ReadErr {
    Truncated(usize),
    LongString(usize),
}

impl From<ReadErr> for String {
    fn from(e: ReadErr) -> String {
        match e {
            ReadErr::Truncated(at) => format!("message truncated at byte {at}"),
            ReadErr::LongString(n) => format!("string of {n} bytes (limit {MAX_STR})"),
        }
    }
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ReadErr> {
        let s = self.b.get(self.pos..self.pos + N).ok_or(ReadErr::Truncated(self.pos))?;
        self.pos += N;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ReadErr> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, ReadErr> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, ReadErr> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, ReadErr> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn str(&mut self) -> Result<String, ReadErr> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
    fn bytes(&mut self) -> Result<&'a [u8], ReadErr> {
        let n = self.u16()? as usize;
        if n > MAX_STR {
            return Err(ReadErr::LongString(n));
        }
        let s = self.b.get(self.pos..self.pos + n).ok_or(ReadErr::Truncated(self.pos))?;
        self.pos += n;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_reject_garbage() {
        let info = Msg::Info(ProcessInfo {
            pid: 1,
            start_time: 2,
            comm: "app".into(),
            sessions: 1,
            user_events: false,
            events: vec![EventDesc {
                id: 0,
                provider: "myapp".into(),
                name: "req".into(),
                fields: vec![("id".into(), 4)],
            }],
        });
        for m in [
            info,
            Msg::Hello { version: 1 },
            Msg::Attach {
                mode: 0,
                patterns: vec!["myapp:*".into()],
            },
            Msg::Detach,
        ] {
            let f = m.encode();
            assert_eq!(u32::from_le_bytes(f[0..4].try_into().unwrap()) as usize, f.len() - 4);
            assert_eq!(Msg::decode(&f[4..]).unwrap(), m);
            for cut in 0..f.len() - 4 {
                let _ = Msg::decode(&f[4..4 + cut]);
            }
        }
        assert!(Msg::decode(&[99]).is_err());
    }

    #[test]
    fn a_frame_encoded_in_a_fixed_buffer_equals_the_allocated_one() {
        let info = ProcessInfo {
            pid: 7,
            start_time: 99,
            comm: "child".into(),
            sessions: 0b101,
            user_events: true,
            events: vec![
                EventDesc {
                    id: 0,
                    provider: "p".into(),
                    name: "a".into(),
                    fields: vec![("x".into(), 4), ("y".into(), 9)],
                },
                EventDesc {
                    id: 1,
                    provider: "q".repeat(2000),
                    name: String::new(),
                    fields: vec![],
                },
            ],
        };
        let want = Msg::Info(info.clone()).encode();
        let mut buf = vec![0u8; 8192];
        let mut f = FrameBuf::new(&mut buf, 2);
        put_info_head(&mut f, 7, 99, b"child", 0b101, true, 2);
        for e in &info.events {
            let fields = e.fields.iter().map(|(n, t)| (n.as_bytes(), *t));
            put_info_event(&mut f, e.id, e.provider.as_bytes(), e.name.as_bytes(), fields);
        }
        assert_eq!(f.finish().unwrap(), &want[..]);
        // Too small a buffer: no frame, never a cut one.
        let mut small = vec![0u8; want.len() - 1];
        let mut f = FrameBuf::new(&mut small, 2);
        put_info_head(&mut f, 7, 99, b"child", 0b101, true, 2);
        for e in &info.events {
            let fields = e.fields.iter().map(|(n, t)| (n.as_bytes(), *t));
            put_info_event(&mut f, e.id, e.provider.as_bytes(), e.name.as_bytes(), fields);
        }
        assert!(f.finish().is_none());
    }

    #[test]
    fn requests_decode_without_allocating_as_messages_do() {
        let attach = Msg::Attach {
            mode: 2,
            patterns: vec!["myapp:*".into(), "other".into(), String::new()],
        };
        let f = attach.encode();
        match Request::decode(&f[4..]).unwrap() {
            Request::Attach { mode, patterns } => {
                assert_eq!(mode, 2);
                let got: Vec<&[u8]> = patterns.iter().collect();
                assert_eq!(got, [&b"myapp:*"[..], b"other", b""]);
                assert_eq!(Patterns::decode(patterns.bytes()), Some(patterns));
                assert!(patterns.any_matches(b"other", b"x"));
                assert!(!patterns.any_matches(b"third", b"x"));
            }
            r => panic!("{r:?}"),
        }
        for cut in 0..f.len() - 4 {
            assert!(Request::decode(&f[4..4 + cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(
            Request::decode(&Msg::Hello { version: 3 }.encode()[4..]),
            Ok(Request::Hello { version: 3 })
        );
        assert_eq!(Request::decode(&Msg::Detach.encode()[4..]), Ok(Request::Detach));
        assert_eq!(Request::decode(&Msg::Detached.encode()[4..]), Ok(Request::Other(6)));
        assert_eq!(Patterns::decode(&[1, 0]), None);
        assert_eq!(Patterns::decode(&[0, 0, 9]), None);
    }

    #[test]
    fn patterns_match_provider_and_event_globs() {
        for (pat, provider, name, want) in [
            ("myapp:*", "myapp", "req", true),
            ("myapp", "myapp", "req", true),
            ("myapp", "myapp2", "req", false),
            ("*", "myapp", "req", true),
            ("my*:r?q", "myapp", "req", true),
            ("other:*", "myapp", "req", false),
            ("myapp:req", "myapp", "req", true),
            ("myapp:re", "myapp", "req", false),
            ("*:*q", "a", "q", true),
            ("a*b*c", "abc", "", true),
            ("a*b*c:", "abc", "x", false),
            ("a*b*c:", "axbxc", "", true),
            ("", "", "", true),
            (":", "", "", true),
        ] {
            assert_eq!(
                pattern_matches(pat.as_bytes(), provider.as_bytes(), name.as_bytes()),
                want,
                "{pat} {provider}:{name}"
            );
        }
        // Many stars against a long miss: quick, not exponential.
        let pat = "*a".repeat(200) + ":b";
        let long = "a".repeat(1000);
        assert!(!pattern_matches(pat.as_bytes(), long.as_bytes(), b"c"));
    }
}
