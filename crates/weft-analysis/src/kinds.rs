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

/// How process `pid` ended, from the records (`st`) and, for the command
/// the recorder launched, from the status it reaped: that one names the
/// signal when the records cannot, e.g. when the signal came from a
/// process not traced (weft passing on a Ctrl-C) and the records show
/// only the kernel's SIGKILL, or when its exit_group was lost.
pub(crate) fn end_of(trace: &weft_format::Trace, pid: u32, st: ExitState) -> String {
    let said = st.describe();
    if st != ExitState::default() && st.fatal_signal != Some(libc::SIGKILL as i64) {
        return said;
    }
    let command = trace.end_value(weft_format::end_keys::COMMAND_PID);
    match (
        command.and_then(|p| p.parse::<u32>().ok()),
        trace.end_value(weft_format::end_keys::EXIT_STATUS),
    ) {
        (Some(p), Some(status)) if p == pid && (st == ExitState::default() || status.starts_with("killed by ")) => {
            status.to_owned()
        }
        _ => said,
    }
}

/// exit_group kills the other threads with an internal SIGKILL: after the
/// process called exit/exit_group, that SIGKILL is not its cause of death.
pub(crate) fn group_exiting(exits: &std::collections::HashMap<u32, ExitState>, pid: u32, sig: i64) -> bool {
    sig == libc::SIGKILL as i64 && exits.get(&pid).is_some_and(|e| e.code.is_some())
}

/// Causes of death by signal. A fatal signal with the default action
/// either is delivered as itself, or makes the kernel kill the whole
/// process: every thread then gets a SIGKILL that no signal_generate record
/// announces. The signal generated last to the thread (or its process)
/// and not delivered as itself names the cause then, as strace's "killed
/// by" does.
#[derive(Debug, Default)]
pub(crate) struct Deaths {
    /// Target thread -> the signal last generated for it and not delivered.
    pending: std::collections::HashMap<u32, i64>,
}

impl Deaths {
    /// A signal_generate record (`result` 0: delivered, 2: already pending).
    pub fn generated(&mut self, target: u32, sig: i64, result: i64) {
        if result == 0 || result == 2 {
            self.pending.insert(target, sig);
        }
    }

    /// A signal_deliver record: notes in `exits` the signal the process
    /// dies of, when this delivery kills it.
    pub fn delivered(
        &mut self,
        exits: &mut std::collections::HashMap<u32, ExitState>,
        pid: u32,
        tid: u32,
        sig: i64,
        handler: u64,
    ) {
        let pending = [tid, pid]
            .into_iter()
            .find_map(|t| self.pending.get(&t).map(|&s| (t, s)));
        if let Some((t, _)) = pending.filter(|&(_, s)| s == sig) {
            self.pending.remove(&t);
        }
        if handler != 0 || !crate::names::default_is_fatal(sig) || group_exiting(exits, pid, sig) {
            return;
        }
        let kill = libc::SIGKILL as i64;
        let cause = match pending {
            Some((_, s)) if sig == kill && crate::names::default_is_fatal(s) => s,
            _ => sig,
        };
        // Each thread gets the kernel's SIGKILL; the one the signal was
        // sent to may not be the last: a named cause stays.
        let e = exits.entry(pid).or_default();
        if cause != kill || e.fatal_signal.is_none() {
            e.fatal_signal = Some(cause);
        }
    }
}

/// A fork record of task `tid`, created by `parent_tid`: the new task has
/// its creator's name (in `comms`, by thread) until it names itself (a
/// comm record, after an exec or a prctl). Returns the creator's name, if
/// known.
pub fn inherit_comm<V: Clone>(comms: &mut std::collections::HashMap<u32, V>, parent_tid: u32, tid: u32) -> Option<V> {
    let c = comms.get(&parent_tid)?.clone();
    comms.entry(tid).or_insert_with(|| c.clone());
    Some(c)
}

/// A signal_deliver record's fault address (`si_addr`), when it was
/// recorded (format 1.4 on; older traces have none).
pub fn fault_addr(r: &Record) -> Option<u64> {
    use s::signal_deliver as d;
    matches!(r.fields.get(d::HAS_ADDR), Some(weft_format::Value::Bool(true))).then(|| r.u64(d::ADDR))
}
