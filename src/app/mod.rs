//! The glue: runs a command's pipeline top to bottom (read → derive → encode →
//! deliver) and maps failures to the documented exit codes. One file per command.

mod backfill;
pub mod events;
mod history;
mod inspect;
mod prune;
mod push;

pub use backfill::{backfill, SkippedRuns};
pub use history::{history, SkippedHistoryRuns};
pub use inspect::{inspect, terminal_columns};
pub use prune::prune;
pub use push::{delete, push};

use std::io::Write;

use crate::config::ConfigError;
use crate::read::ReadError;
use crate::sink::http::DeliveryError;

/// Documented exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// A bug: please report it.
    Internal = 1,
    /// Bad flags or an input that cannot be read.
    Usage = 2,
    /// The metrics could not be delivered (after retries).
    Delivery = 3,
    /// `backfill`, `history`: some runs could not be read and were skipped; the others were
    /// delivered (reported).
    Skipped = 4,
}

/// Maps an error to its exit status by the typed error inside it.
pub fn exit_for(e: &anyhow::Error) -> Exit {
    for cause in e.chain() {
        if cause.is::<ReadError>() || cause.is::<ConfigError>() {
            return Exit::Usage;
        }
        if cause.is::<crate::sink::textfile::TextfileError>()
            || cause.is::<crate::sink::openmetrics_file::FileError>()
        {
            return Exit::Delivery;
        }
        if cause.is::<crate::sink::verify::NotStored>()
            || cause.is::<crate::sink::events_file::EventsFileError>()
            || cause.is::<crate::sink::elasticsearch::ItemsRefused>()
        {
            return Exit::Delivery;
        }
        if cause.is::<SkippedRuns>() || cause.is::<SkippedHistoryRuns>() {
            return Exit::Skipped;
        }
        let d = cause.downcast_ref::<DeliveryError>().or_else(|| {
            match cause.downcast_ref::<crate::sink::elasticsearch::EsError>() {
                Some(crate::sink::elasticsearch::EsError::Delivery(d)) => Some(d),
                _ => None,
            }
        });
        if cause.is::<crate::sink::elasticsearch::EsError>() && d.is_none() {
            return Exit::Delivery;
        }
        if let Some(d) = d {
            // A CA file that cannot be used is a usage error, not a failed delivery.
            return match d {
                DeliveryError::Setup(_) => Exit::Usage,
                _ => Exit::Delivery,
            };
        }
    }
    Exit::Internal
}

/// A value clap refused that came from a `PTC_METRICS_*` variable rather than the command
/// line: the message names the variable, since the user typed no such flag.
fn name_env_source(e: &mut clap::Error) {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return;
    };
    let Some(long) = arg
        .split_whitespace()
        .next()
        .and_then(|a| a.strip_prefix("--"))
    else {
        return;
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let given = args
        .iter()
        .any(|a| a == &format!("--{long}") || a.starts_with(&format!("--{long}=")));
    if given {
        return;
    }
    let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    let sub = args
        .iter()
        .find_map(|a| cmd.find_subcommand(a))
        .unwrap_or(&cmd);
    let Some(var) = sub
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .and_then(|v| v.to_str())
    else {
        return;
    };
    if std::env::var_os(var).is_some() {
        e.insert(
            ContextKind::Suggested,
            ContextValue::StyledStrs(vec![format!(
                "the value comes from the environment variable {var}; fix or unset it"
            )
            .into()]),
        );
    }
}

/// Entry point behind `main`: parses, validates, runs, and returns the exit status.
pub fn main() -> i32 {
    use clap::Parser;
    let cli = match crate::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(mut e) => {
            name_env_source(&mut e);
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage as i32
            } else {
                Exit::Ok as i32
            };
        }
    };
    let ci = crate::ci_env::detect(&|k| std::env::var(k).ok());
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let subject = soft_fail_subject(&cli.command);
    let result = match cli.command {
        crate::cli::Command::Push(a) => a
            .into_config(&ci)
            .map_err(anyhow::Error::from)
            .and_then(|c| push(&c, &mut out, &mut err)),
        crate::cli::Command::Delete(a) => a
            .into_config(&ci)
            .map_err(anyhow::Error::from)
            .and_then(|c| delete(&c, &mut err)),
        crate::cli::Command::Inspect(a) => {
            use std::io::IsTerminal;
            let tty = std::io::stdout().is_terminal();
            a.into_config(&|k| std::env::var(k).ok(), tty, terminal_columns())
                .map_err(anyhow::Error::from)
                .and_then(|c| inspect(&c, &mut out, &mut err))
        }
        crate::cli::Command::Prune(a) => a
            .into_config()
            .map_err(anyhow::Error::from)
            .and_then(|c| prune(&c, &mut out, &mut err)),
        crate::cli::Command::Backfill(a) => a
            .into_config()
            .map_err(anyhow::Error::from)
            .and_then(|c| backfill(&c, &mut out, &mut err)),
        crate::cli::Command::History(a) => {
            use std::io::IsTerminal;
            let tty = std::io::stdout().is_terminal();
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            a.into_config(&|k| std::env::var(k).ok(), tty, terminal_columns(), now_ms)
                .map_err(anyhow::Error::from)
                .and_then(|c| history(&c, &mut out, &mut err))
        }
    };
    match result {
        Ok(()) => Exit::Ok as i32,
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            let unavailable = e.chain().any(|c| {
                c.downcast_ref::<DeliveryError>()
                    .is_some_and(DeliveryError::is_unavailable)
            });
            if unavailable {
                let subject = if e.downcast_ref::<events::EventSinkFailed>().is_some() {
                    "the events cannot be delivered"
                } else {
                    subject
                };
                let _ = writeln!(
                    err,
                    "hint: add --soft-fail to keep the job green when {subject}"
                );
            }
            exit_for(&e) as i32
        }
    }
}

/// What `--soft-fail` keeps from failing the job, as the hint after an unavailable server says
/// it (an event sink's failure says "the events" instead).
fn soft_fail_subject(command: &crate::cli::Command) -> &'static str {
    use crate::cli::Command;
    match command {
        Command::Push(_) | Command::Backfill(_) | Command::Inspect(_) => {
            "the metrics cannot be delivered"
        }
        Command::History(_) => "the history metrics cannot be delivered",
        Command::Delete(_) => "the group cannot be deleted",
        Command::Prune(_) => "the groups cannot be pruned",
    }
}
