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
    /// Process -> collector: detached; nothing more will be written.
    Detached,
    Error(String),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(MAX_STR)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
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
                b.extend_from_slice(&i.pid.to_le_bytes());
                b.extend_from_slice(&i.start_time.to_le_bytes());
                put_str(&mut b, &i.comm);
                b.extend_from_slice(&i.sessions.to_le_bytes());
                b.push(u8::from(i.user_events));
                b.extend_from_slice(&(i.events.len() as u32).to_le_bytes());
                for e in &i.events {
                    b.extend_from_slice(&e.id.to_le_bytes());
                    put_str(&mut b, &e.provider);
                    put_str(&mut b, &e.name);
                    b.push(e.fields.len() as u8);
                    for (n, t) in &e.fields {
                        put_str(&mut b, n);
                        b.push(*t);
                    }
                }
            }
            Msg::Attach { mode, patterns } => {
                b.push(3);
                b.extend_from_slice(&mode.to_le_bytes());
                b.extend_from_slice(&(patterns.len() as u16).to_le_bytes());
                for p in patterns {
                    put_str(&mut b, p);
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
                put_str(&mut b, s);
            }
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
            t => return Err(format!("unknown message type {t}")),
        };
        Ok(m)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or_else(|| format!("message truncated at byte {}", self.pos))?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().map_err(|_| "short")?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "short")?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "short")?))
    }
    fn str(&mut self) -> Result<String, String> {
        let n = self.u16()? as usize;
        if n > MAX_STR {
            return Err(format!("string of {n} bytes (limit {MAX_STR})"));
        }
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
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
}
