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
use crate::sink::events_file::{EventsFile, EventsTarget};
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

/// The context of an event sink's failure: says which sink, and tells the error's reader
/// (the `--soft-fail` hint) that the events failed, not the metrics.
#[derive(Debug, Clone, Copy)]
pub struct EventSinkFailed(pub &'static str);

impl std::fmt::Display for EventSinkFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The HTTP client of the network event sinks; `None` when there are none or on a dry run.
pub fn client(cfg: &EventsConfig, dry_run: bool) -> Result<Option<HttpClient>> {
    if !cfg.has_network() || dry_run {
        return Ok(None);
    }
    Ok(Some(
        HttpClient::new(cfg.http.clone()).context("events not delivered")?,
    ))
}

/// The open event sinks of one command: runs are sent one after the other, each sink
/// batching across them.
pub struct EventSinks<'a> {
    cfg: &'a EventsConfig,
    file: Option<EventsFile<'a>>,
    loki: Option<LokiSink<'a>>,
    es: Option<ElasticsearchSink<'a>>,
    errors: Vec<anyhow::Error>,
    counts: [u64; EventKind::ALL.len()],
    runs: u64,
    line: Vec<u8>,
}

impl<'a> EventSinks<'a> {
    /// Opens the sinks of `cfg`; network sinks only with a `client` (see [`client`]).
    pub fn open(
        cfg: &'a EventsConfig,
        client: Option<&'a HttpClient>,
        stdout: &'a mut dyn Write,
    ) -> Self {
        let mut errors = Vec::new();
        let file = match cfg.file.as_ref().map(|t| EventsFile::open(t, stdout)) {
            Some(Ok(f)) => Some(f),
            Some(Err(e)) => {
                errors.push(e.into());
                None
            }
            None => None,
        };
        let loki = client.and_then(|c| {
            cfg.loki
                .as_ref()
                .map(|u| LokiSink::new(c, u, cfg.batch_bytes))
        });
        let es = client.and_then(|c| {
            cfg.elasticsearch
                .as_ref()
                .map(|(u, index)| ElasticsearchSink::new(c, u, index, cfg.batch_bytes))
        });
        EventSinks {
            cfg,
            file,
            loki,
            es,
            errors,
            counts: [0; EventKind::ALL.len()],
            runs: 0,
            line: Vec::with_capacity(1024),
        }
    }

    /// Sends the events of one run to every sink still working. `summary` must be
    /// `summarize(run, derive, …)` (with the run's own timestamp).
    pub fn send_run(
        &mut self,
        run: &Run,
        summary: &Summary,
        derive: &DeriveConfig,
        ctx: &RunContext,
    ) {
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
        self.runs += 1;
        let EventSinks {
            file,
            loki,
            es,
            errors,
            counts,
            line,
            cfg,
            ..
        } = self;
        let _ = for_each_event(run, summary, derive, ctx, cfg.all, |ev| -> Result<(), ()> {
            line.clear();
            enc.encode(ev, line);
            if let Some(i) = EventKind::ALL.iter().position(|k| *k == ev.kind()) {
                counts[i] += 1;
            }
            if let Some(f) = file {
                if let Err(e) = f.line(line) {
                    errors.push(e.into());
                    *file = None;
                }
            }
            if let Some(l) = loki {
                stream[kind_at].1 = ev.kind().as_str();
                // A run's entries, one nanosecond apart in event order: ordered per stream,
                // distinct, and the same on every re-send (Loki drops exact duplicates).
                let ts = base_ns + i128::from(ev.seq());
                if let Err(e) = l.add(&stream, ts, line) {
                    errors.push(
                        anyhow::Error::from(e)
                            .context(EventSinkFailed("events not pushed to Loki")),
                    );
                    *loki = None;
                }
            }
            if let Some(s) = es {
                if let Err(e) = s.add(ev.event_id(), line) {
                    errors.push(
                        anyhow::Error::from(e)
                            .context(EventSinkFailed("events not indexed into Elasticsearch")),
                    );
                    *es = None;
                }
            }
            Ok(())
        });
    }

    /// Sends what is left, says on `stderr` what each sink took, and returns the errors of
    /// the sinks that failed. `dry_run`: the network sinks were named, not contacted.
    pub fn finish(self, dry_run: bool, stderr: &mut dyn Write) -> Vec<anyhow::Error> {
        let EventSinks {
            cfg,
            file,
            loki,
            es,
            mut errors,
            counts,
            runs,
            ..
        } = self;
        let total: u64 = counts.iter().sum();
        let mut shown_counts = EventKind::ALL
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {}", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        if runs > 1 {
            shown_counts.push_str(&format!("; {runs} runs"));
        }
        if let Some(mut f) = file {
            match f.finish() {
                Ok(()) => {
                    let to = match &cfg.file {
                        Some(EventsTarget::File(p)) => p.display().to_string(),
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
                Err(e) => errors.push(
                    anyhow::Error::from(e).context(EventSinkFailed("events not pushed to Loki")),
                ),
            }
        }
        if let Some(mut s) = es {
            let url = cfg
                .elasticsearch
                .as_ref()
                .map(|(u, i)| format!("{} index {i}", redact(u)))
                .unwrap_or_default();
            match s.finish() {
                Ok(()) => {
                    let again = match s.retried {
                        0 => String::new(),
                        n => format!(", {n} sent again after a 429"),
                    };
                    let _ = writeln!(
                        stderr,
                        "indexed {} events into Elasticsearch at {url} ({} already there) in {} request(s){again}",
                        s.created, s.duplicates, s.requests
                    );
                }
                Err(e) => errors.push(
                    anyhow::Error::from(e)
                        .context(EventSinkFailed("events not indexed into Elasticsearch")),
                ),
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
}

/// Delivers the events of one run (`push`). With `dry_run`, only `--events` is written and
/// the network sinks are named, not contacted. Returns the errors of the sinks that failed.
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
    let client = match client(cfg, dry_run) {
        Ok(c) => c,
        Err(e) => return vec![e],
    };
    let mut sinks = EventSinks::open(cfg, client.as_ref(), stdout);
    sinks.send_run(run, summary, derive, ctx);
    sinks.finish(dry_run, stderr)
}

/// The run's identity for its events: the SHA-256 of its JUnit reports.
pub fn run_id_of(inputs: &Inputs) -> Result<String> {
    let junit = junit_inputs(inputs)?;
    crate::backfill::parse::run_id(&junit).context("hashing the JUnit reports for the event ids")
}
