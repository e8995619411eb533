//! Analysis of weft traces: turning records into what people read.
//!
//! This crate owns the merged timeline (syscall entry and return joined,
//! unfinished calls kept), symbolic rendering of arguments, errno and signal
//! names, and trace summaries. It reads traces only through `weft_format` and
//! must not touch the kernel or the live system: a trace analyzes the same on
//! any machine.

mod args;
mod kinds;
pub mod names;
pub mod profile;
pub mod report;
mod summary;
mod timeline;

pub use args::{format_args, format_return};
pub use kinds::{ExitState, Kind, Kinds};
pub use summary::{summarize, ProcessSummary, Summary};
pub use timeline::{secs, Filter, Line, PatternError, Timeline};
