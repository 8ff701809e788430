//! `push` and `delete`: read → derive → encode → Pushgateway (or stdout with `--dry-run`).

use std::io::Write;

use anyhow::{Context, Result};

use super::{exit_for, Exit};
use crate::config::{DeleteConfig, Delivery, PushConfig};
use crate::derive::totals::Totals;
use crate::derive::{metrics, summarize};
use crate::encode::text;
use crate::read::read_run;
use crate::sink::http::HttpClient;
use crate::sink::pushgateway;

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
