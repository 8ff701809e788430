//! The glue: runs a command's pipeline top to bottom (read → derive → encode →
//! deliver) and maps failures to the documented exit codes.

use std::io::Write;

use anyhow::{Context, Result};

use crate::config::{ConfigError, DeleteConfig, Delivery, PushConfig};
use crate::derive::totals::Totals;
use crate::derive::{metrics, summarize};
use crate::encode::text;
use crate::read::{read_run, ReadError};
use crate::sink::http::{DeliveryError, HttpClient};
use crate::sink::pushgateway;

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
}

/// Maps an error to its exit status by the typed error inside it.
pub fn exit_for(e: &anyhow::Error) -> Exit {
    for cause in e.chain() {
        if cause.is::<ReadError>() || cause.is::<ConfigError>() {
            return Exit::Usage;
        }
        if cause.is::<DeliveryError>() {
            return Exit::Delivery;
        }
    }
    Exit::Internal
}

/// `ptc-metrics push`.
pub fn push(cfg: &PushConfig, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<()> {
    let run = read_run(&cfg.inputs)?;
    let summary = summarize(&run, &cfg.derive, None);
    for n in &summary.notes {
        let _ = writeln!(stderr, "warning: {n}");
    }
    let mut totals = Totals::of_run(&summary);
    let labels = cfg.group.series_labels();
    match &cfg.delivery {
        Delivery::DryRun => {
            let fams = metrics::families(&summary, &totals, &labels);
            let body = text::encode(&fams).context("encoding the exposition")?;
            stdout
                .write_all(body.as_bytes())
                .context("writing to stdout")?;
            let _ = writeln!(
                stderr,
                "dry run: {} tests, {} families; nothing pushed",
                summary.total_tests(),
                fams.len()
            );
            Ok(())
        }
        Delivery::Pushgateway {
            gateway,
            http,
            accumulate,
        } => {
            let outcome = (|| -> Result<usize> {
                let client = HttpClient::new(http.clone())?;
                if *accumulate {
                    if let Some(prev) = pushgateway::read_totals(&client, gateway)? {
                        if let Err(e) = totals.add(&prev) {
                            let _ = writeln!(
                                stderr,
                                "warning: {e}; the duration histogram starts again from this run"
                            );
                            let mut without = prev.clone();
                            without.durations.clear();
                            totals = Totals::of_run(&summary);
                            totals
                                .add(&without)
                                .map_err(|e| anyhow::anyhow!(e))
                                .context("adding the group's totals")?;
                        }
                    }
                }
                let fams = metrics::families(&summary, &totals, &labels);
                let body = text::encode(&fams).context("encoding the exposition")?;
                pushgateway::push(&client, gateway, &body)?;
                Ok(fams.len())
            })();
            match outcome {
                Ok(n) => {
                    let _ = writeln!(
                        stderr,
                        "pushed {} tests ({n} families) to {}",
                        summary.total_tests(),
                        crate::sink::http::redact(&gateway.group_url())
                    );
                    Ok(())
                }
                Err(e) if cfg.soft_fail && exit_for(&e) == Exit::Delivery => {
                    let _ = writeln!(stderr, "warning: metrics not pushed (--soft-fail): {e:#}");
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// `ptc-metrics delete`.
pub fn delete(cfg: &DeleteConfig, stderr: &mut dyn Write) -> Result<()> {
    let r = HttpClient::new(cfg.http.clone()).and_then(|c| pushgateway::delete(&c, &cfg.gateway));
    match r {
        Ok(()) => {
            let _ = writeln!(
                stderr,
                "deleted group {}",
                crate::sink::http::redact(&cfg.gateway.group_url())
            );
            Ok(())
        }
        Err(e) if cfg.soft_fail => {
            let _ = writeln!(stderr, "warning: group not deleted (--soft-fail): {e}");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Entry point behind `main`: parses, validates, runs, and returns the exit status.
pub fn main() -> i32 {
    use clap::Parser;
    let cli = match crate::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
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
    let result = match cli.command {
        crate::cli::Command::Push(a) => a
            .into_config(&ci)
            .map_err(anyhow::Error::from)
            .and_then(|c| push(&c, &mut out, &mut err)),
        crate::cli::Command::Delete(a) => a
            .into_config(&ci)
            .map_err(anyhow::Error::from)
            .and_then(|c| delete(&c, &mut err)),
    };
    match result {
        Ok(()) => Exit::Ok as i32,
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            exit_for(&e) as i32
        }
    }
}
