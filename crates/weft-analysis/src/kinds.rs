//! Resolves the standard schemas of a file (ids are per file) once.

use weft_format::{std_schemas as s, Record, SchemaId, Trace};

/// What a record is, in terms of the standard schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SyscallEnter,
    SyscallExit,
    SignalGenerate,
    SignalDeliver,
    Fork,
    Exec,
    Exit,
    Comm,
    Mmap,
    Lost,
    /// A descriptor open when the recording began.
    Fd,
    /// Any other schema (weft-probe events, future sources).
    Other,
}

pub struct Kinds {
    table: Vec<(SchemaId, Kind)>,
    /// The same, by schema id, for the ids below its length (asked once
    /// per record).
    by_id: Vec<Kind>,
}

impl Kinds {
    pub fn of(trace: &Trace) -> Kinds {
        let names = [
            (s::SYSCALL_ENTER, Kind::SyscallEnter),
            (s::SYSCALL_EXIT, Kind::SyscallExit),
            (s::SIGNAL_GENERATE, Kind::SignalGenerate),
            (s::SIGNAL_DELIVER, Kind::SignalDeliver),
            (s::FORK, Kind::Fork),
            (s::EXEC, Kind::Exec),
            (s::EXIT, Kind::Exit),
            (s::COMM, Kind::Comm),
            (s::MMAP, Kind::Mmap),
            (s::LOST, Kind::Lost),
            (s::FD, Kind::Fd),
        ];
        let table = names
            .iter()
            .filter_map(|&(n, k)| Some((trace.schema_by_name(n)?.id, k)))
            .collect::<Vec<_>>();
        let mut by_id = vec![Kind::Other; 1024];
        for &(id, k) in &table {
            if let Some(slot) = by_id.get_mut(id.0 as usize) {
                *slot = k;
            }
        }
        Kinds { table, by_id }
    }

    pub fn kind(&self, r: &Record) -> Kind {
        self.of_schema(r.schema)
    }

    pub fn of_schema(&self, schema: SchemaId) -> Kind {
        if let Some(&k) = self.by_id.get(schema.0 as usize) {
            return k;
        }
        self.table
            .iter()
            .find(|(id, _)| *id == schema)
            .map_or(Kind::Other, |&(_, k)| k)
    }
}

/// How a process ended, from what the trace saw: its last exit/exit_group
/// argument, or a fatal signal delivered with the default action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExitState {
    pub code: Option<i64>,
    pub fatal_signal: Option<i64>,
}

impl ExitState {
    pub fn describe(&self) -> String {
        use crate::names::signal_name;
        match (self.fatal_signal, self.code) {
            (Some(sig), _) => format!("killed by {}", signal_name(sig)),
            (None, Some(c)) => format!("exited with {c}"),
            (None, None) => "exited".into(),
        }
    }
}

/// exit_group kills the other threads with an internal SIGKILL: after the
/// process called exit/exit_group, that SIGKILL is not its cause of death.
pub(crate) fn group_exiting(exits: &std::collections::HashMap<u32, ExitState>, pid: u32, sig: i64) -> bool {
    sig == libc::SIGKILL as i64 && exits.get(&pid).is_some_and(|e| e.code.is_some())
}

/// A signal_deliver record's fault address (`si_addr`), when it was
/// recorded (format 1.4 on; older traces have none).
pub fn fault_addr(r: &Record) -> Option<u64> {
    use s::signal_deliver as d;
    matches!(r.fields.get(d::HAS_ADDR), Some(weft_format::Value::Bool(true))).then(|| r.u64(d::ADDR))
}
