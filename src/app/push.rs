//! `push` and `delete`: read → derive → encode → Pushgateway and/or node_exporter textfile
//! (or stdout with `--dry-run`).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result};

use super::{exit_for, Exit};
use crate::config::{DeleteConfig, Delivery, PushConfig, PushgatewaySink, RunGroup};
use crate::derive::metrics::{self, Labels};
use crate::derive::summarize;
use crate::derive::totals::Totals;
use crate::derive::Summary;
use crate::encode::text;
use crate::read::{read_run_with, ReadOptions};
use crate::sink::http::HttpClient;
use crate::sink::textfile::{self, TextfileConfig};
use crate::sink::{exact_push, pushgateway};

/// `ptc-metrics push`.
pub fn push(cfg: &PushConfig, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<()> {
    // Test ids only when per-test series need them: a test then costs ~50 bytes, not ~100.
    // Events need node ids and failure messages.
    let opts = ReadOptions {
        test_ids: cfg.derive.per_test.enabled() || cfg.events.is_some(),
        messages: cfg.events.is_some(),
    };
    let run = read_run_with(&cfg.inputs, opts)?;
    let summary = summarize(&run, &cfg.derive, None);
    let metrics = deliver_metrics(cfg, &summary, stdout, stderr);
    let Some(ev) = &cfg.events else {
        return metrics;
    };
    // The metrics first: an event sink's failure never keeps them from their destination.
    let run_id = super::events::run_id_of(&cfg.inputs)?;
    let ctx = super::events::run_context(run_id, summary.timestamp, &cfg.group, ev);
    let dry_run = cfg.delivery == Delivery::DryRun;
    let errors = super::events::deliver(
        ev,
        &run,
        &summary,
        &cfg.derive,
        &ctx,
        dry_run,
        stdout,
        stderr,
    );
    let mut last = metrics.err();
    for e in errors {
        if cfg.soft_fail && exit_for(&e) == Exit::Delivery {
            let _ = writeln!(stderr, "warning: events not delivered (--soft-fail): {e:#}");
        } else if let Some(earlier) = last.replace(e) {
            let _ = writeln!(stderr, "error: {earlier:#}");
        }
    }
    last.map_or(Ok(()), Err)
}

/// Reads nothing: delivers the summary's metrics as `cfg.delivery` says (read → derive are done).
fn deliver_metrics(
    cfg: &PushConfig,
    summary: &Summary,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<()> {
    for n in &summary.notes {
        let _ = writeln!(stderr, "warning: {n}");
    }
    if let Some(a) = &cfg.archive {
        // Before delivery, so that a run the destination did not take is archived all the same.
        let done =
            crate::backfill::archive::archive_run(a, &cfg.inputs, &cfg.group, summary.timestamp)
                .map_err(|e| crate::config::ConfigError(e.to_string()))?;
        let _ = if done.new {
            writeln!(stderr, "archived the run in {}", done.dir.display())
        } else {
            writeln!(
                stderr,
                "the run is archived already in {} (the same reports; that copy is kept)",
                done.dir.display()
            )
        };
    }
    let labels = cfg.group.series_labels();
    match &cfg.delivery {
        Delivery::DryRun => {
            let mut totals = Totals::of_run(summary);
            if cfg.group.grouping.iter().any(|(k, _)| k == "shard") {
                // A shard's group does not count runs with timing violations (its run's
                // group does: docs/ci-at-scale.md).
                totals.timing_runs.clear();
            }
            let fams = metrics::families(summary, &totals, &labels);
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
        Delivery::Sinks {
            pushgateway,
            textfile,
            accumulate,
        } => {
            // Each destination is tried even when the other failed; they are independent.
            let mut failures = Vec::new();
            if let Some(tf) = textfile {
                match to_textfile(tf, summary, &labels, *accumulate, stderr) {
                    Ok(n) => {
                        let _ = writeln!(
                            stderr,
                            "wrote {} tests ({n} families) to {}",
                            summary.total_tests(),
                            tf.path.display()
                        );
                    }
                    Err(e) => failures.push(("written", e)),
                }
            }
            if let Some(gw) = pushgateway {
                match to_gateway(gw, summary, &labels, *accumulate, stderr) {
                    Ok(n) => {
                        let _ = writeln!(
                            stderr,
                            "pushed {} tests ({n} families) to {}",
                            summary.total_tests(),
                            crate::sink::http::redact(&gw.gateway.group_url())
                        );
                    }
                    Err(e) => failures.push(("pushed", e)),
                }
            }
            let mut last: Option<anyhow::Error> = None;
            for (verb, e) in failures {
                if cfg.soft_fail && exit_for(&e) == Exit::Delivery {
                    let _ = writeln!(stderr, "warning: metrics not {verb} (--soft-fail): {e:#}");
                } else if let Some(earlier) = last.replace(e) {
                    let _ = writeln!(stderr, "error: {earlier:#}");
                }
            }
            last.map_or(Ok(()), Err)
        }
    }
}

/// This run's totals plus `prev`. When the duration buckets changed, the histogram cannot be
/// added: it starts again from this run, with a warning, and the counters still add up.
fn add_previous(summary: &Summary, prev: &Totals, stderr: &mut dyn Write) -> Result<Totals> {
    let mut totals = Totals::of_run(summary);
    if let Err(e) = totals.add(prev) {
        let _ = writeln!(
            stderr,
            "warning: {e}; the duration histogram starts again from this run"
        );
        let mut without = prev.clone();
        without.durations.clear();
        totals = Totals::of_run(summary);
        totals
            .add(&without)
            .map_err(|e| anyhow::anyhow!(e))
            .context("adding the previous totals")?;
    }
    Ok(totals)
}

/// Pushes to the gateway: with `accumulate`, by the exact protocol of
/// [`crate::sink::exact_push`]; without, this run's values alone. Returns the number of families.
fn to_gateway(
    gw: &PushgatewaySink,
    summary: &Summary,
    labels: &Labels,
    accumulate: bool,
    stderr: &mut dyn Write,
) -> Result<usize> {
    let client = HttpClient::new(gw.http.clone())?;
    let mut delta = Totals::of_run(summary);
    // A shard's runs with timing violations count in the run's group, once over its shards.
    let run_facts = match &gw.run_group {
        Some(_) => std::mem::take(&mut delta.timing_runs),
        None => Default::default(),
    };
    let count = metrics::families(summary, &delta, labels).len();
    if !accumulate {
        let fams = metrics::families(summary, &delta, labels);
        let body = text::encode(&fams).context("encoding the exposition")?;
        pushgateway::push(&client, &gw.gateway, &body)?;
        return Ok(count);
    }
    let body = |totals: &Totals| -> Result<String, String> {
        text::encode(&metrics::families(summary, totals, labels))
            .map_err(|e| format!("cannot encode the exposition: {e}"))
    };
    let out = exact_push::push_exact(&client, &gw.gateway, &delta, &body)?;
    for w in &out.warnings {
        let _ = writeln!(stderr, "warning: {w}");
    }
    if let Some(rg) = &gw.run_group {
        to_run_group(&client, rg, &run_facts, stderr)?;
    }
    if out.writes > 1 || out.applied_for_others > 0 {
        let _ = writeln!(
            stderr,
            "note: other pushes to the group at the same time: written {} times{} so that every \
             run is counted once",
            out.writes,
            if out.applied_for_others > 0 {
                format!(", {} of their runs added", out.applied_for_others)
            } else {
                String::new()
            }
        );
    }
    Ok(count)
}

/// Counts this shard's facts about its run (the sizes with timing violations) in the run's
/// group, each once however many shards of the run report it (ids from the run id).
fn to_run_group(
    client: &HttpClient,
    rg: &RunGroup,
    timing_runs: &BTreeMap<String, f64>,
    stderr: &mut dyn Write,
) -> Result<()> {
    let sizes: Vec<&String> = timing_runs
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, _)| k)
        .collect();
    if sizes.is_empty() {
        return Ok(());
    }
    let url = rg.gateway.group_url().to_string();
    let run = match &rg.run {
        Some(r) => r.clone(),
        None => {
            let _ = writeln!(
                stderr,
                "warning: no CI run id for this shard: its timing violations count as a run of \
                 their own in pytest_runs_with_timing_violations_total; give --run-id (the same \
                 in every shard of the run) so that the run counts once"
            );
            format!("shard-push-{}", rand::random::<u64>())
        }
    };
    let own: Vec<(u64, Totals)> = sizes
        .iter()
        .map(|size| {
            let mut t = Totals::default();
            t.timing_runs.insert((*size).clone(), 1.0);
            (exact_push::run_id(&url, &run, &format!("timing {size}")), t)
        })
        .collect();
    let labels: Labels = rg.gateway.group_labels().into_iter().collect();
    let body = |totals: &Totals| -> Result<String, String> {
        text::encode(&metrics::run_group_families(totals, &labels))
            .map_err(|e| format!("cannot encode the exposition: {e}"))
    };
    let out = exact_push::push_run_group(client, &rg.gateway, &own, &body)
        .context("counting the run in its group shard=\"all\"")?;
    for w in &out.warnings {
        let _ = writeln!(stderr, "warning: {w}");
    }
    Ok(())
}

/// Writes the textfile, adding the previous file's totals first. Returns the number of families.
fn to_textfile(
    tf: &TextfileConfig,
    summary: &Summary,
    labels: &Labels,
    accumulate: bool,
    stderr: &mut dyn Write,
) -> Result<usize> {
    let mut totals = Totals::of_run(summary);
    // Held until the new file is in place: read, add and replace as one step.
    let _lock = if accumulate {
        Some(textfile::lock(tf)?)
    } else {
        None
    };
    if accumulate {
        let prev = textfile::read_previous(tf, labels)?;
        for w in &prev.warnings {
            let _ = writeln!(stderr, "warning: {w}");
        }
        if let Some(p) = &prev.totals {
            totals = add_previous(summary, p, stderr)?;
        }
    }
    let fams = metrics::families(summary, &totals, labels);
    let body = text::encode(&fams).context("encoding the exposition")?;
    textfile::write(tf, &body)?;
    Ok(fams.len())
}

/// `ptc-metrics delete`: the group and its pending pushes; says so when it was not there.
pub fn delete(cfg: &DeleteConfig, stderr: &mut dyn Write) -> Result<()> {
    let shown = crate::sink::http::redact(&cfg.gateway.group_url());
    let r = HttpClient::new(cfg.http.clone()).and_then(|c| {
        let view = crate::sink::gateway_view::read_group(&c, &cfg.gateway)?;
        let there = view.exists || view.totals.is_some();
        if there {
            pushgateway::delete(&c, &cfg.gateway)?;
        }
        for id in view.pending.keys() {
            pushgateway::delete(&c, &cfg.gateway.pending(*id))?;
        }
        Ok((there, view.pending.len()))
    });
    match r {
        Ok((true, pending)) => {
            let also = match pending {
                0 => String::new(),
                n => format!(" and its {n} pending push(es)"),
            };
            let _ = writeln!(stderr, "deleted group {shown}{also}");
            Ok(())
        }
        Ok((false, _)) => {
            let _ = writeln!(
                stderr,
                "group {shown} was not there; nothing deleted (check --job, --project, --branch and --label)"
            );
            Ok(())
        }
        // As for push: a delivery failure, not a usage error (an unreadable CA file).
        Err(e) if cfg.soft_fail && !matches!(e, crate::sink::http::DeliveryError::Setup(_)) => {
            let _ = writeln!(stderr, "warning: group not deleted (--soft-fail): {e}");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
