//! `weft ps`: which running processes are instrumented with weft-probe.

use std::process::ExitCode;

use anyhow::Result;
use weft_probe_collect::{discover, kernel_user_events, query, FieldType};

use crate::PsArgs;

pub fn run(args: PsArgs) -> Result<ExitCode> {
    match kernel_user_events() {
        Ok(()) => println!("kernel user_events: available (events are also registered with the kernel)"),
        Err(why) => println!("kernel user_events: not available: {why}"),
    }
    let found = discover();
    if found.is_empty() {
        if weft_kernel::os::euid() == 0 {
            println!("no process instrumented with weft-probe is running");
        } else {
            println!("no process instrumented with weft-probe is running (or none you may see: other users' are visible to root)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:>8}  {:<16} {:>6} {:>8}  SOCKET", "PID", "NAME", "EVENTS", "SESSIONS");
    for p in found {
        match query(p.pid) {
            Ok(info) => {
                println!(
                    "{:>8}  {:<16} {:>6} {:>8}  {}",
                    info.pid,
                    info.comm,
                    info.events.len(),
                    info.sessions.count_ones(),
                    p.socket.display()
                );
                if args.events {
                    for e in &info.events {
                        let fields: Vec<String> = e
                            .fields
                            .iter()
                            .map(|(n, t)| {
                                format!(
                                    "{n}: {}",
                                    FieldType::from_u8(*t).map_or("?".into(), |t| t.name().to_owned())
                                )
                            })
                            .collect();
                        println!("{:>10}{}:{} {{ {} }}", "", e.provider, e.name, fields.join(", "));
                    }
                }
            }
            Err(e) => println!(
                "{:>8}  {:<16} {:>6} {:>8}  {} ({e})",
                p.pid,
                "?",
                "?",
                "?",
                p.socket.display()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
