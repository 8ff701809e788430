//! `inspect`: read → derive (the summary plus bounded top-N lists) → render (terminal report
//! or the JSON of `docs/inspect-json.md`) → stdout. Nothing is sent anywhere.

use std::io::Write;

use anyhow::{Context, Result};

use crate::config::InspectConfig;
use crate::derive::inspect::Collector;
use crate::derive::summarize;
use crate::read::read_run;
use crate::render::{json, terminal, Format};

/// `ptc-metrics inspect`. Warnings about the inputs are part of the report, on stdout.
pub fn inspect(cfg: &InspectConfig, stdout: &mut dyn Write, _stderr: &mut dyn Write) -> Result<()> {
    let run = read_run(&cfg.inputs)?;
    let coverage_files = run.coverage.as_ref().map_or(0, |c| c.uncovered.len());
    let mut collector = Collector::new(&cfg.collect);
    let summary = summarize(&run, &cfg.derive, Some(&mut |f| collector.add(f)));
    drop(run);
    let inspection = collector.finish(
        summary,
        &cfg.collect,
        cfg.derive.near_limit_ratio,
        coverage_files,
    );
    let text = match cfg.format {
        Format::Text => terminal::render(&inspection, &cfg.terminal),
        Format::Json => json::render(&inspection),
    };
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `inspect … | head` closed the pipe: what was wanted was read.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

/// The width of the terminal stdout (else stderr, e.g. `inspect | less`) is on, asked from
/// the terminal itself (`TIOCGWINSZ`): shells do not export `COLUMNS`. `None` when neither is
/// a terminal.
pub fn terminal_columns() -> Option<usize> {
    #[cfg(unix)]
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we own; a descriptor that
        // is not a terminal makes it fail with ENOTTY and write nothing.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        if rc == 0 && ws.ws_col > 0 {
            return Some(usize::from(ws.ws_col));
        }
    }
    None
}
