//! Events glue (docs/events.md): a run's events made once, each encoded once and handed to
//! every configured sink as it is made (NDJSON file or stdout, Loki, Elasticsearch), so
//! nothing but one request's batch per sink is held. A sink that fails is dropped for the
//! rest of the run and the others go on; the failures come back together.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::{EventsConfig, GroupConfig};
use crate::derive::events::{for_each_event, EventKind, RunContext};
use crate::derive::{DeriveConfig, Summary};
use crate::encode::events::EventEncoder;
use crate::model::Run;
use crate::read::{source, Inputs, Kind, ReadError};
use crate::sink::elasticsearch::ElasticsearchSink;
use crate::sink::events_file::EventsFile;
use crate::sink::http::{redact, HttpClient};
use crate::sink::loki::LokiSink;

/// The JUnit reports among a run's inputs (size reports and coverage given as reports are
/// recognised by content), the files whose content is the run's identity.
pub fn junit_inputs(inputs: &Inputs) -> Result<Vec<PathBuf>, ReadError> {
    let mut junit = Vec::new();
    for p in &inputs.reports {
        if source::sniff(p)? == Kind::Junit {
            junit.push(p.clone());
        }
    }
    Ok(junit)
}

/// The context of a run's events: its identity (`crate::backfill::parse::run_id`, as
/// archives and backfill name runs), time, group and the CI's per-run facts.
pub fn run_context(
    run_id: String,
    timestamp: f64,
    group: &GroupConfig,
    cfg: &EventsConfig,
) -> RunContext {
    RunContext {
        run_id,
        timestamp,
        job: group.job.clone(),
        grouping: group.grouping.clone(),
        commit: cfg.commit.clone(),
        ci_run_id: cfg.ci_run_id.clone(),
        run_url: cfg.run_url.clone(),
    }
}

/// Delivers the events of one run. With `dry_run`, only `--events` is written and the
/// network sinks are named, not contacted. Returns the errors of the sinks that failed.
#[allow(clippy::too_many_arguments)]
pub fn deliver(
    cfg: &EventsConfig,
    run: &Run,
    summary: &Summary,
    derive: &DeriveConfig,
    ctx: &RunContext,
    dry_run: bool,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Vec<anyhow::Error> {
    let mut errors = Vec::new();
    let client = if cfg.has_network() && !dry_run {
        match HttpClient::new(cfg.http.clone()) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(anyhow::Error::from(e).context("events not delivered"));
                None
            }
        }
    } else {
        None
    };
    let mut file = match cfg.file.as_ref().map(|t| EventsFile::open(t, stdout)) {
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            errors.push(e.into());
            None
        }
        None => None,
    };
    let mut loki = client.as_ref().and_then(|c| {
        cfg.loki
            .as_ref()
            .map(|u| LokiSink::new(c, u, cfg.batch_bytes))
    });
    let mut es = client.as_ref().and_then(|c| {
        cfg.elasticsearch
            .as_ref()
            .map(|(u, index)| ElasticsearchSink::new(c, u, index, cfg.batch_bytes))
    });
    let enc = EventEncoder::new(ctx);
    let base_ns = i128::from(ctx.timestamp_ms()) * 1_000_000;
    let mut stream: Vec<(&str, &str)> = vec![("job", ctx.job.as_str())];
    for name in ["project", "branch"] {
        if let Some(v) = ctx.label(name) {
            stream.push((name, v));
        }
    }
    let kind_at = stream.len();
    stream.push(("kind", ""));
    let mut line = Vec::with_capacity(1024);
    let mut counts = [0u64; EventKind::ALL.len()];
    let _ = for_each_event(run, summary, derive, ctx, cfg.all, |ev| -> Result<(), ()> {
        line.clear();
        enc.encode(ev, &mut line);
        counts[EventKind::ALL
            .iter()
            .position(|k| *k == ev.kind())
            .unwrap_or(0)] += 1;
        if let Some(f) = &mut file {
            if let Err(e) = f.line(&line) {
                errors.push(e.into());
                file = None;
            }
        }
        if let Some(l) = &mut loki {
            stream[kind_at].1 = ev.kind().as_str();
            // A run's entries, one nanosecond apart in event order: ordered per stream,
            // distinct, and the same on every re-send (Loki drops exact duplicates).
            let ts = base_ns + i128::from(ev.seq());
            if let Err(e) = l.add(&stream, ts, &line) {
                errors.push(anyhow::Error::from(e).context("events not pushed to Loki"));
                loki = None;
            }
        }
        if let Some(s) = &mut es {
            if let Err(e) = s.add(ev.event_id(), &line) {
                errors
                    .push(anyhow::Error::from(e).context("events not indexed into Elasticsearch"));
                es = None;
            }
        }
        Ok(())
    });
    let total: u64 = counts.iter().sum();
    let shown_counts = EventKind::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {}", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(mut f) = file {
        match f.finish() {
            Ok(()) => {
                let to = match &cfg.file {
                    Some(crate::sink::events_file::EventsTarget::File(p)) => {
                        p.display().to_string()
                    }
                    _ => "stdout".into(),
                };
                let _ = writeln!(stderr, "wrote {total} events ({shown_counts}) to {to}");
            }
            Err(e) => errors.push(e.into()),
        }
    }
    if let Some(mut l) = loki {
        match l.finish() {
            Ok(()) => {
                let _ = writeln!(
                    stderr,
                    "pushed {} events to Loki at {} in {} request(s)",
                    l.sent,
                    cfg.loki.as_ref().map(redact).unwrap_or_default(),
                    l.requests
                );
            }
            Err(e) => errors.push(anyhow::Error::from(e).context("events not pushed to Loki")),
        }
    }
    if let Some(mut s) = es {
        let r = s.finish();
        let url = cfg
            .elasticsearch
            .as_ref()
            .map(|(u, i)| format!("{} index {i}", redact(u)))
            .unwrap_or_default();
        match r {
            Ok(()) => {
                let _ = writeln!(
                    stderr,
                    "indexed {} events into Elasticsearch at {url} ({} already there) in {} request(s)",
                    s.created, s.duplicates, s.requests
                );
            }
            Err(e) => errors.push(e.context("events not indexed into Elasticsearch")),
        }
    }
    if dry_run && cfg.has_network() {
        let _ = writeln!(
            stderr,
            "dry run: {total} events ({shown_counts}); nothing sent to {}",
            [
                cfg.loki.as_ref().map(|u| format!("Loki at {}", redact(u))),
                cfg.elasticsearch
                    .as_ref()
                    .map(|(u, _)| format!("Elasticsearch at {}", redact(u))),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" or ")
        );
    }
    errors
}

/// The run's identity for its events: the SHA-256 of its JUnit reports.
pub fn run_id_of(inputs: &Inputs) -> Result<String> {
    let junit = junit_inputs(inputs)?;
    crate::backfill::parse::run_id(&junit).context("hashing the JUnit reports for the event ids")
}
