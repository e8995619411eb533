//! Analysis of weft traces: turning records into what people read.
//!
//! This crate owns the merged timeline (syscall entry and return joined,
//! unfinished calls kept), symbolic rendering of arguments, errno and signal
//! names, trace summaries, syscall statistics (`stats`), address history
//! and memory maps (`mem`), crash reports (`crash`), CPU profiles (`profile`) and the report's function
//! tables (`report`). It reads traces only through `weft_format` and must not
//! touch the kernel or the live system: what would read the machine (debug
//! files, debuginfod, kallsyms for old files) comes in from the caller
//! through `SearchOptions` and `ProfileOptions::kernel_fallback`, so a trace
//! analyzes the same on any machine.

mod args;
pub mod captured;
pub mod consts;
pub mod crash;
pub mod fds;
mod kinds;
pub mod mem;
pub mod names;
pub mod profile;
pub mod report;
pub mod stats;
mod summary;
mod timeline;

pub use args::{format_arg_values, format_arg_values_with, format_args, format_call_args, format_return};
pub use args::{CallPlan, CallPlans};
pub use kinds::{fault_addr, inherit_comm, ExitState, Kind, Kinds};
pub use summary::{summarize, ProcessSummary, Summary};
pub use timeline::{secs, show_value, write_secs, Carry, Deferred, Filter, Line, PatternError, Timeline};
