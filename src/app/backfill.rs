//! `backfill`: discover → read (parallel) → plan → encode → deliver, batch by batch, with
//! the state committed around every acknowledged batch (`crate::backfill::state` explains
//! why that is exactly once; docs/backfill.md for users).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};
use base64::Engine;
use prometheus::proto::{MetricFamily, MetricType};

use super::{exit_for, Exit};
use crate::backfill::discover::discover;
use crate::backfill::parse::{self, parse_all, Outcome, ParsedRun};
use crate::backfill::plan::{add_run_groups, plan, Plan, PlannedRun};
use crate::backfill::progress::{Mode, Progress};
use crate::backfill::state::{
    Delta, Pending, Request, RunRecord, SinkKind, State, StateError, StateFile,
};
use crate::backfill::{BackfillConfig, ProgressMode, SinkConfig};
use crate::civil::rfc3339;
use crate::config::{ConfigError, RUN_GROUP_SHARD};
use crate::derive::metrics::{families, run_group_families};
use crate::derive::totals::Totals;
use crate::encode::openmetrics::Builder;
use crate::encode::remote_write::{point_count, points, Batch};
use crate::encode::text;
use crate::sink::http::HttpClient;
use crate::sink::pushgateway::{self, PushMethod, PushgatewayConfig};
use crate::sink::{openmetrics_file, remote_write, verify};

/// Some runs could not be read and were skipped; everything else was delivered (exit 4).
#[derive(Debug, thiserror::Error)]
#[error("{failed} run(s) could not be read and were skipped (see the warnings above); fix or remove them, \
         the next backfill delivers them")]
pub struct SkippedRuns {
    pub failed: usize,
}

/// Counts for the closing line.
#[derive(Debug, Default)]
struct Found {
    already: usize,
    failed: usize,
    duplicates: usize,
}

/// `ptc-metrics backfill`.
pub fn backfill(
    cfg: &BackfillConfig,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<()> {
    let mode = match cfg.progress {
        ProgressMode::Bar => Mode::Bar,
        ProgressMode::Plain => Mode::Plain,
        ProgressMode::Auto if std::io::stderr().is_terminal() => Mode::Bar,
        ProgressMode::Auto => Mode::Plain,
    };
    let mut log = Progress::new(mode, stderr);
    for w in &cfg.warnings {
        log.line(&format!("warning: {w}"));
    }
    let target = cfg.sink.target();

    // Sources first: a path or pattern that finds nothing is a usage error, before any work.
    let found = discover(&cfg.sources).map_err(|e| ConfigError(e.to_string()))?;

    // The state: what was delivered before, and a batch that may be in flight.
    let store = match &cfg.state {
        Some(p) => Some(StateFile::open(p, !cfg.dry_run).map_err(|e| ConfigError(e.to_string()))?),
        None => None,
    };
    let loaded = match &store {
        Some(s) => s.load().map_err(|e| ConfigError(e.to_string()))?,
        None => None,
    };
    if let (Some(st), Some(s)) = (&loaded, &store) {
        check_state(st, s, cfg, &target, &mut log)?;
    }
    let kind = cfg.sink.kind();
    let mut state = loaded.unwrap_or_else(|| {
        State::new(
            kind.unwrap_or(SinkKind::RemoteWrite),
            &target,
            &cfg.derive.buckets,
        )
    });
    if store.is_none() && !cfg.dry_run {
        match cfg.sink {
            SinkConfig::OpenMetrics(_) => {}
            // The totals continue from the gateway's: a rerun adds every run again.
            SinkConfig::Gateway { .. } => log.line(
                "note: no --state file: every run found is added to the gateway's running totals, \
                 so another backfill of the same runs counts them again; give --state FILE",
            ),
            _ => log.line(
                "note: no --state file: every run found is delivered and running totals start from zero; \
                 give --state FILE for repeated (cron) backfills",
            ),
        }
    }
    if let Some(p) = state.pending.clone() {
        if cfg.discard_pending {
            log.line(&format!(
                "warning: forgetting the unacknowledged batch of {} run(s) for {} (--discard-pending); \
                 they are delivered anew",
                p.delta.runs.len(),
                p.target
            ));
            state.pending = None;
            if let (Some(s), false) = (&store, cfg.dry_run) {
                commit(s, &state)?;
            }
        } else if cfg.dry_run {
            log.line(&format!(
                "dry run: the state holds an unacknowledged batch of {} run(s) for {}; a backfill sends it first",
                p.delta.runs.len(),
                p.target
            ));
            state.apply(&p.delta);
        } else {
            resend_pending(&p, cfg, &mut state, store.as_ref(), &target, &mut log)?;
        }
    }

    // Read (the sources were resolved before anything was sent).
    let delivered: HashSet<String> = state.runs.keys().cloned().collect();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(i64::MAX / 2);
    let ctx = parse::Context {
        defaults: &cfg.defaults,
        derive: &cfg.derive,
        delivered: &delivered,
        now_ms,
    };
    log.start("read", "directories", found.candidates.len() as u64);
    let outcomes = parse_all(&found.candidates, &ctx, cfg.jobs, |_| log.advance(1, 0));
    log.finish();
    let run_dirs: BTreeSet<std::path::PathBuf> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Parsed(r) => Some(r.dir.clone()),
            Outcome::Delivered { dir, .. } | Outcome::Failed { dir, .. } => Some(dir.clone()),
            Outcome::NotARun { .. } => None,
        })
        .collect();
    found
        .check_sources(&run_dirs)
        .map_err(|e| ConfigError(e.to_string()))?;
    let (runs, counts) = sort_outcomes(outcomes, &mut log);

    // Plan: order, timestamps, running totals.
    let seeds = match &cfg.sink {
        SinkConfig::Gateway { url, http } if !cfg.dry_run => {
            refuse_push_groups(url, http, &runs)?;
            gateway_seeds(url, http, &runs, &state)?
        }
        _ => BTreeMap::new(),
    };
    let mut plan = plan(runs, &state, &seeds);
    // A split run's own group: not on a Pushgateway, where push keeps it by its protocol.
    if !matches!(cfg.sink, SinkConfig::Gateway { .. }) {
        add_run_groups(&mut plan, &state);
    }
    for n in &plan.notes {
        log.line(&format!("note: {n}"));
    }

    if cfg.dry_run {
        drop(log);
        return dry_run(cfg, &plan, &counts, stdout, stderr);
    }

    let delivered = match &cfg.sink {
        SinkConfig::RemoteWrite(rw) => {
            deliver_remote_write(cfg, rw, &plan, &mut state, store.as_ref(), &target, &mut log)
        }
        SinkConfig::OpenMetrics(path) => deliver_openmetrics(path, &plan, &mut state, store.as_ref(), &mut log),
        SinkConfig::Gateway { url, http } => {
            deliver_gateway(url, http, &plan, &mut state, store.as_ref(), &target, &mut log)
        }
        SinkConfig::None => Err(ConfigError(
            "no destination: give --remote-write URL, --openmetrics FILE or --gateway URL (or --dry-run)".into(),
        )
        .into()),
    };
    log.finish();
    let mut event_errors = Vec::new();
    match (&cfg.events, &delivered) {
        (Some(ev), Ok(_)) => {
            let mut said = Vec::new();
            event_errors = send_events(ev, &plan, &cfg.derive, stdout, &mut said);
            for l in String::from_utf8_lossy(&said).lines() {
                log.line(l);
            }
        }
        (Some(_), Err(_)) => log.line(
            "note: no events sent: the runs' metrics were not delivered (the next backfill sends both)",
        ),
        (None, _) => {}
    }
    match delivered {
        Ok((n, samples)) => log.line(&format!(
            "backfill: {n} new run(s), {samples} samples delivered to {target}; {} already delivered{}{}",
            counts.already,
            if counts.duplicates > 0 {
                format!(", {} duplicate(s) ignored", counts.duplicates)
            } else {
                String::new()
            },
            if counts.failed > 0 {
                format!(", {} skipped", counts.failed)
            } else {
                String::new()
            },
        )),
        Err(e) if cfg.soft_fail && exit_for(&e) == Exit::Delivery => {
            log.line(&format!(
                "warning: backfill not delivered (--soft-fail): {e:#}"
            ));
        }
        Err(e) => return Err(e),
    }
    let mut last: Option<anyhow::Error> = None;
    for e in event_errors {
        if cfg.soft_fail && exit_for(&e) == Exit::Delivery {
            log.line(&format!(
                "warning: events not delivered (--soft-fail): {e:#}"
            ));
        } else if let Some(earlier) = last.replace(e) {
            log.line(&format!("error: {earlier:#}"));
        }
    }
    if let Some(e) = last {
        return Err(e);
    }
    if counts.failed > 0 {
        return Err(SkippedRuns {
            failed: counts.failed,
        }
        .into());
    }
    Ok(())
}

/// The events of the runs just delivered, in delivery order (each run's own time), after
/// their metrics. Each run is read again, with node ids and failure messages, one at a
/// time: memory holds one run's table, never its events.
fn send_events(
    cfg: &crate::config::EventsConfig,
    plan: &crate::backfill::plan::Plan,
    derive: &crate::derive::DeriveConfig,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Vec<anyhow::Error> {
    let client = match super::events::client(cfg, false) {
        Ok(c) => c,
        Err(e) => return vec![e],
    };
    let mut errors = Vec::new();
    let mut sinks = super::events::EventSinks::open(cfg, client.as_ref(), stdout);
    for pr in &plan.runs {
        let r = &pr.run;
        let opts = crate::read::ReadOptions {
            test_ids: true,
            messages: true,
        };
        let run = match crate::read::read_run_with(&r.inputs, opts) {
            Ok(run) => run,
            Err(e) => {
                errors.push(anyhow::Error::from(e).context(format!(
                    "events of {} not sent: the run cannot be read again",
                    r.dir.display()
                )));
                continue;
            }
        };
        let mut summary = crate::derive::summarize(&run, derive, None);
        summary.timestamp = r.summary.timestamp;
        let ctx = crate::derive::events::RunContext {
            run_id: r.id.clone(),
            timestamp: r.summary.timestamp,
            job: r.group.job.clone(),
            grouping: r.group.grouping.clone(),
            commit: r.commit.clone(),
            ci_run_id: r.ci_run_id.clone(),
            run_url: r.run_url.clone(),
        };
        sinks.send_run(&run, &summary, derive, &ctx);
    }
    errors.extend(sinks.finish(false, stderr));
    errors
}

/// Refuses a state written for another destination kind or other buckets.
fn check_state(
    st: &State,
    file: &StateFile,
    cfg: &BackfillConfig,
    target: &str,
    log: &mut Progress,
) -> Result<()> {
    if let Some(kind) = cfg.sink.kind() {
        if st.sink != kind {
            return Err(ConfigError(format!(
                "--state {}: this state file belongs to {} {}; use one state file per destination",
                file.path().display(),
                st.sink.as_str(),
                st.target
            ))
            .into());
        }
        if st.target != target && st.pending.is_none() {
            log.line(&format!(
                "warning: --state {} was used with {}, now {}: runs it lists as delivered are not sent again",
                file.path().display(),
                st.target,
                target
            ));
        }
    }
    if st.buckets != cfg.derive.buckets {
        return Err(ConfigError(format!(
            "--buckets: the state file {} holds histogram totals with buckets {:?}; give the same --buckets, \
             or start a new state file",
            file.path().display(),
            st.buckets
        ))
        .into());
    }
    Ok(())
}

/// Commits the state; a failure to write it is a failed delivery (exit 3): the next
/// backfill finds the batch still pending and sends it again.
fn commit(store: &StateFile, state: &State) -> Result<()> {
    match store.commit(state) {
        Ok(()) => Ok(()),
        Err(StateError::Write(e)) => Err(anyhow::Error::from(e).context(format!(
            "cannot update the state file {} (the next backfill sends the last batch again)",
            store.path().display()
        ))),
        Err(e) => Err(ConfigError(e.to_string()).into()),
    }
}

/// Before a send: with a state file, the batch is kept there as pending (its exact bytes
/// and what it adds), so that a backfill killed before the answer sends it again and
/// never counts it twice.
fn hold_pending(
    state: &mut State,
    store: Option<&StateFile>,
    target: &str,
    request: Request,
    body: &[u8],
    delta: &Delta,
    samples: u64,
) -> Result<()> {
    if let Some(s) = store {
        state.pending = Some(Pending {
            target: target.to_string(),
            request,
            body: base64::engine::general_purpose::STANDARD.encode(body),
            delta: delta.clone(),
            samples,
        });
        commit(s, state)?;
    }
    Ok(())
}

/// After the destination acknowledged a batch: its runs and totals count as delivered.
fn acknowledge(state: &mut State, store: Option<&StateFile>, delta: &Delta) -> Result<()> {
    state.apply(delta);
    state.pending = None;
    if let Some(s) = store {
        commit(s, state)?;
    }
    Ok(())
}

/// Sends the batch an interrupted backfill left in the state, then applies it.
fn resend_pending(
    p: &Pending,
    cfg: &BackfillConfig,
    state: &mut State,
    store: Option<&StateFile>,
    target: &str,
    log: &mut Progress,
) -> Result<()> {
    let mismatch = || -> anyhow::Error {
        ConfigError(format!(
            "the state file holds an unacknowledged batch of {} run(s) for {}: rerun with that destination to \
             send it, or add --discard-pending if the destination refused it for good (its runs are then \
             delivered anew)",
            p.delta.runs.len(),
            p.target
        ))
        .into()
    };
    if p.target != target {
        return Err(mismatch());
    }
    let body = base64::engine::general_purpose::STANDARD
        .decode(&p.body)
        .map_err(|e| {
            ConfigError(format!(
                "the state's pending batch is damaged ({e}); use --discard-pending"
            ))
        })?;
    match (&p.request, &cfg.sink) {
        (Request::RemoteWrite, SinkConfig::RemoteWrite(rw)) => {
            let client = remote_write::client(rw)?;
            remote_write::send(&client, &rw.url, &body)
                .context("sending the batch an interrupted backfill left unacknowledged")?;
            if let Some(mut v) = Verifier::new(cfg, rw, target)? {
                v.verify(state, store, &p.delta)?;
            }
        }
        (Request::Gateway { job, grouping, put }, SinkConfig::Gateway { url, http }) => {
            let client = HttpClient::new(http.clone())?;
            let gw = gateway_config(url, job, grouping, *put);
            let text = String::from_utf8_lossy(&body);
            pushgateway::push(&client, &gw, &text)
                .context("pushing the group an interrupted backfill left unacknowledged")?;
        }
        _ => return Err(mismatch()),
    }
    acknowledge(state, store, &p.delta)?;
    log.line(&format!(
        "backfill: sent the batch an interrupted backfill left unacknowledged ({} run(s), {} samples)",
        p.delta.runs.len(),
        p.samples
    ));
    Ok(())
}

/// Splits outcomes into runs to plan and counts; says what was skipped and why.
fn sort_outcomes(outcomes: Vec<Outcome>, log: &mut Progress) -> (Vec<ParsedRun>, Found) {
    let mut counts = Found::default();
    let mut runs = Vec::new();
    let mut first_dir: HashMap<String, std::path::PathBuf> = HashMap::new();
    let mut notes: BTreeMap<String, usize> = BTreeMap::new();
    let mut from_mtime = 0;
    for o in outcomes {
        match o {
            Outcome::Parsed(r) => {
                if let Some(first) = first_dir.get(&r.id) {
                    log.line(&format!(
                        "note: {} holds the same JUnit report(s) as {}; it is delivered once",
                        r.dir.display(),
                        first.display()
                    ));
                    counts.duplicates += 1;
                    continue;
                }
                first_dir.insert(r.id.clone(), r.dir.clone());
                for n in &r.summary.notes {
                    *notes.entry(n.clone()).or_default() += 1;
                }
                from_mtime += usize::from(r.from_mtime);
                runs.push(*r);
            }
            Outcome::Delivered { .. } => counts.already += 1,
            Outcome::NotARun { .. } => {}
            Outcome::Failed { dir, error } => {
                counts.failed += 1;
                log.line(&format!("warning: skipped {}: {error}", dir.display()));
            }
        }
    }
    for (n, count) in notes {
        log.line(&format!("note ({count} run(s)): {n}"));
    }
    if from_mtime > 0 {
        log.line(&format!(
            "note: {from_mtime} run(s) have no timestamp in their reports or run.json; their files' \
             modification time is used (copying an archive changes it: set \"timestamp\" in run.json)"
        ));
    }
    (runs, counts)
}

/// A run's families: per-run gauges and cumulative families apart (they may carry
/// different timestamps).
fn run_families(pr: &PlannedRun) -> (Vec<MetricFamily>, Vec<MetricFamily>) {
    let fams = families(
        &pr.run.summary,
        &pr.group_after.totals,
        &pr.run.group.series_labels(),
    );
    fams.into_iter().partition(|f| {
        !matches!(
            f.get_field_type(),
            MetricType::COUNTER | MetricType::HISTOGRAM
        )
    })
}

/// The counters a shard run adds to its run's group (`shard="all"`) and their timestamp.
fn run_group_of(pr: &PlannedRun) -> Option<(Vec<MetricFamily>, i64)> {
    pr.run_group
        .as_ref()
        .map(|(_, g)| (run_group_families(&g.totals, &g.labels), g.cumulative_ms))
}

fn record(pr: &PlannedRun) -> RunRecord {
    RunRecord {
        group: pr.run.key.clone(),
        timestamp_ms: pr.gauge_ms,
        path: pr.run.dir.display().to_string(),
    }
}

/// What delivering `runs` changes in the state.
fn delta_of<'a>(runs: impl IntoIterator<Item = &'a PlannedRun>) -> Delta {
    let mut d = Delta::default();
    for pr in runs {
        d.runs.insert(pr.run.id.clone(), record(pr));
        d.groups.insert(pr.run.key.clone(), pr.group_after.clone());
        if let Some((key, g)) = &pr.run_group {
            d.groups.insert(key.clone(), g.clone());
        }
    }
    d
}

fn deliver_remote_write(
    cfg: &BackfillConfig,
    rw: &remote_write::RemoteWriteConfig,
    plan: &Plan,
    state: &mut State,
    store: Option<&StateFile>,
    target: &str,
    log: &mut Progress,
) -> Result<(usize, u64)> {
    let client = remote_write::client(rw)?;
    let mut verifier = Verifier::new(cfg, rw, target)?;
    log.start("delivered", "runs", plan.runs.len() as u64);
    let mut batch = Batch::new();
    let mut done: Vec<&PlannedRun> = Vec::new();
    let mut total = 0u64;
    let mut flush =
        |batch: &mut Batch, done: &mut Vec<&PlannedRun>, log: &mut Progress| -> Result<()> {
            if batch.is_empty() && done.is_empty() {
                return Ok(());
            }
            let samples = batch.samples() as u64;
            let delta = delta_of(done.iter().copied());
            if !batch.is_empty() {
                let body = batch.body()?;
                hold_pending(
                    state,
                    store,
                    target,
                    Request::RemoteWrite,
                    &body,
                    &delta,
                    samples,
                )?;
                remote_write::send(&client, &rw.url, &body).with_context(|| {
                    let (first, last) = (done.first(), done.last());
                    format!(
                        "remote write of {} sample(s){}",
                        samples,
                        match (first, last) {
                            (Some(f), Some(l)) => format!(
                                " of runs {} .. {}",
                                rfc3339(f.gauge_ms),
                                rfc3339(l.gauge_ms)
                            ),
                            _ => String::new(),
                        }
                    )
                })?;
            }
            if let Some(v) = verifier.as_mut() {
                v.verify(state, store, &delta)?;
            }
            acknowledge(state, store, &delta)?;
            log.advance(done.len() as u64, samples);
            total += samples;
            *batch = Batch::new();
            done.clear();
            Ok(())
        };
    for pr in &plan.runs {
        let (gauges, cumulative) = run_families(pr);
        let (run_group, rg_ms) = run_group_of(pr).unwrap_or_default();
        for (fams, ts) in [
            (&gauges, pr.gauge_ms),
            (&cumulative, pr.cumulative_ms),
            (&run_group, rg_ms),
        ] {
            for p in points(fams) {
                if batch.approx_bytes() >= cfg.batch_bytes {
                    flush(&mut batch, &mut done, log)?;
                }
                batch.push(&p.labels, ts, p.value);
            }
        }
        done.push(pr);
        if batch.approx_bytes() >= cfg.batch_bytes {
            flush(&mut batch, &mut done, log)?;
        }
    }
    flush(&mut batch, &mut done, log)?;
    if let Some(v) = verifier.filter(|v| v.verified > 0) {
        log.line(&format!(
            "verified: the {} run(s) delivered are stored, as {} shows",
            v.verified,
            v.shown()
        ));
    }
    Ok((plan.runs.len(), total))
}

/// `--verify`: asks the receiver's query API whether the runs of each acknowledged batch are
/// stored, before the state counts them as delivered.
struct Verifier<'a> {
    url: &'a reqwest::Url,
    client: HttpClient,
    target: &'a str,
    /// Runs found so far.
    verified: usize,
}

impl<'a> Verifier<'a> {
    /// `None` without `--verify`. The query API gets the remote write's credentials, CA and
    /// headers (a tenant header selects the tenant for queries too).
    fn new(
        cfg: &'a BackfillConfig,
        rw: &remote_write::RemoteWriteConfig,
        target: &'a str,
    ) -> Result<Option<Self>> {
        let Some(url) = &cfg.verify else {
            return Ok(None);
        };
        let http = crate::sink::http::HttpConfig {
            retry: crate::sink::http::RetryPolicy::Default,
            ..rw.http.clone()
        };
        Ok(Some(Verifier {
            url,
            client: HttpClient::new(http)?,
            target,
            verified: 0,
        }))
    }

    fn shown(&self) -> String {
        crate::cli::shown_url(self.url)
    }

    /// `Ok` when every run of `delta` is stored. Otherwise the groups that are stored in
    /// full are applied, the rest stays undelivered (no pending batch: the receiver took
    /// it and kept nothing), the state is committed and the error says what is missing.
    fn verify(
        &mut self,
        state: &mut State,
        store: Option<&StateFile>,
        delta: &Delta,
    ) -> Result<()> {
        if delta.runs.is_empty() {
            return Ok(());
        }
        // A split run's own group has neither of the families the check asks for.
        let checks: Vec<verify::Check> = delta
            .groups
            .iter()
            .filter(|(_, g)| {
                !g.labels
                    .iter()
                    .any(|(k, v)| k == "shard" && v == RUN_GROUP_SHARD)
            })
            .map(|(key, g)| {
                let mut runs_ms: Vec<i64> = delta
                    .runs
                    .values()
                    .filter(|r| &r.group == key)
                    .map(|r| r.timestamp_ms)
                    .collect();
                runs_ms.sort_unstable();
                verify::Check {
                    group: key.clone(),
                    labels: g.labels.clone(),
                    runs_ms,
                    cumulative_ms: g.cumulative_ms,
                }
            })
            .collect();
        let absent: BTreeSet<String> = state
            .groups
            .values()
            .chain(delta.groups.values())
            .flat_map(|g| g.labels.iter().map(|(k, _)| k.clone()))
            .collect();
        let missing = verify::missing(&self.client, self.url, &checks, &absent, &verify::WAITS)
            .context("--verify: asking the receiver's query API")?;
        let Some(first) = missing.first() else {
            self.verified += delta.runs.len();
            return Ok(());
        };
        let lost: BTreeSet<&str> = missing.iter().map(|m| m.group.as_str()).collect();
        let mut stored = delta.clone();
        stored.runs.retain(|_, r| !lost.contains(r.group.as_str()));
        stored.groups.retain(|k, _| !lost.contains(k.as_str()));
        let first_ms = first.runs_ms.first().copied().unwrap_or_else(|| {
            delta
                .groups
                .get(&first.group)
                .map_or(0, |g| g.cumulative_ms)
        });
        let err = verify::NotStored {
            verify: self.shown(),
            target: self.target.to_string(),
            missing: delta.runs.len() - stored.runs.len(),
            sent: delta.runs.len(),
            first: format!("{} at {}", first.group, rfc3339(first_ms)),
        };
        self.verified += stored.runs.len();
        state.pending = None;
        state.apply(&stored);
        if let Some(s) = store {
            commit(s, state)?;
        }
        Err(err.into())
    }
}

fn deliver_openmetrics(
    path: &std::path::Path,
    plan: &Plan,
    state: &mut State,
    store: Option<&StateFile>,
    log: &mut Progress,
) -> Result<(usize, u64)> {
    log.start("encoded", "runs", plan.runs.len() as u64);
    let mut om = Builder::new();
    for pr in &plan.runs {
        let (gauges, cumulative) = run_families(pr);
        let (run_group, rg_ms) = run_group_of(pr).unwrap_or_default();
        let n = point_count(&gauges) + point_count(&cumulative) + point_count(&run_group);
        om.add(&gauges, pr.gauge_ms);
        om.add(&cumulative, pr.cumulative_ms);
        om.add(&run_group, rg_ms);
        log.advance(1, n as u64);
    }
    openmetrics_file::write(path, &om)?;
    state.apply(&delta_of(&plan.runs));
    if let Some(s) = store {
        commit(s, state)?;
    }
    Ok((plan.runs.len(), om.samples() as u64))
}

fn gateway_config(
    url: &reqwest::Url,
    job: &str,
    grouping: &[(String, String)],
    put: bool,
) -> PushgatewayConfig {
    PushgatewayConfig {
        url: url.clone(),
        job: job.to_string(),
        grouping: grouping.to_vec(),
        method: if put {
            PushMethod::Put
        } else {
            PushMethod::Post
        },
        gzip: true,
    }
}

/// The current totals of groups the state does not know yet, read from the gateway.
fn gateway_seeds(
    url: &reqwest::Url,
    http: &crate::sink::http::HttpConfig,
    runs: &[ParsedRun],
    state: &State,
) -> Result<BTreeMap<String, Totals>> {
    let mut seeds = BTreeMap::new();
    let mut client = None;
    for r in runs {
        if state.groups.contains_key(&r.key) || seeds.contains_key(&r.key) {
            continue;
        }
        let c = match &client {
            Some(c) => c,
            None => client.insert(HttpClient::new(http.clone())?),
        };
        let gw = gateway_config(url, &r.group.job, &r.group.grouping, true);
        if let Some(t) = crate::sink::gateway_view::read_group(c, &gw)?.totals {
            seeds.insert(r.key.clone(), t);
        }
    }
    Ok(seeds)
}

/// Refuses the backfill when a group it would write is one that `ptc-metrics push` writes
/// (it holds push's ledger or pending pushes; the ledger stays after the pending groups are
/// cleaned up), whether or not the state knows the group: one read of the gateway per job.
fn refuse_push_groups(
    url: &reqwest::Url,
    http: &crate::sink::http::HttpConfig,
    runs: &[ParsedRun],
) -> Result<()> {
    // Labels without empty values: the gateway shows a grouping label with an empty value on
    // every series, a `GroupConfig` leaves it out of the key.
    let norm = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .filter(|(k, v)| !v.is_empty() && k.as_str() != crate::sink::pushgateway::PENDING_LABEL)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut by_job: BTreeMap<&str, Vec<&ParsedRun>> = BTreeMap::new();
    for r in runs {
        by_job.entry(r.group.job.as_str()).or_default().push(r);
    }
    let mut client = None;
    for (job, runs) in by_job {
        let c = match &client {
            Some(c) => c,
            None => client.insert(HttpClient::new(http.clone())?),
        };
        let gw = gateway_config(url, job, &[], true);
        let view = crate::sink::gateway_view::read_job(c, &gw, job)?;
        let mut pushed: BTreeSet<BTreeMap<String, String>> =
            view.ledgers.keys().map(norm).collect();
        pushed.extend(
            view.groups
                .iter()
                .filter(|g| {
                    g.labels
                        .contains_key(crate::sink::pushgateway::PENDING_LABEL)
                })
                .map(|g| norm(&g.labels)),
        );
        for r in runs {
            let gw = gateway_config(url, job, &r.group.grouping, true);
            if pushed.contains(&gw.group_labels()) {
                return Err(ConfigError(written_by_push(&gw)).into());
            }
        }
    }
    Ok(())
}

/// The refusal of a group that `ptc-metrics push` writes (it holds push's ledger or pending
/// pushes): backfill's write would count the pushed runs again from their archived copies,
/// and replace the ledger by which push counts each of its pushes once.
fn written_by_push(gw: &PushgatewayConfig) -> String {
    format!(
        "--gateway: the group {} is written by `ptc-metrics push` (it holds its pending pushes \
         or their ledger): a backfill into it would count the runs that push delivered a second \
         time; backfill these runs by --remote-write or --openmetrics, and leave this group to \
         push",
        crate::sink::http::redact(&gw.group_url())
    )
}

fn deliver_gateway(
    url: &reqwest::Url,
    http: &crate::sink::http::HttpConfig,
    plan: &Plan,
    state: &mut State,
    store: Option<&StateFile>,
    target: &str,
    log: &mut Progress,
) -> Result<(usize, u64)> {
    let client = HttpClient::new(http.clone())?;
    let mut groups: BTreeMap<&str, Vec<&PlannedRun>> = BTreeMap::new();
    for pr in &plan.runs {
        groups.entry(pr.run.key.as_str()).or_default().push(pr);
    }
    log.start("delivered", "runs", plan.runs.len() as u64);
    let mut total = 0u64;
    for (key, runs) in groups {
        let Some(last) = runs.last() else { continue };
        let put = state
            .groups
            .get(key)
            .is_none_or(|g| last.gauge_ms > g.newest_run_ms);
        let (gauges, cumulative) = run_families(last);
        let mut fams = cumulative;
        if put {
            fams.extend(gauges);
        }
        let body = text::encode(&fams).context("encoding the exposition")?;
        let samples = point_count(&fams) as u64;
        let delta = delta_of(runs.iter().copied());
        let g = &last.run.group;
        let request = Request::Gateway {
            job: g.job.clone(),
            grouping: g.grouping.clone(),
            put,
        };
        hold_pending(
            state,
            store,
            target,
            request,
            body.as_bytes(),
            &delta,
            samples,
        )?;
        let gw = gateway_config(url, &g.job, &g.grouping, put);
        pushgateway::push(&client, &gw, &body)
            .with_context(|| format!("pushing group {key} ({} run(s))", runs.len()))?;
        acknowledge(state, store, &delta)?;
        log.advance(runs.len() as u64, samples);
        total += samples;
    }
    Ok((plan.runs.len(), total))
}

/// `--dry-run`: one line per run that would be delivered, on stdout.
fn dry_run(
    cfg: &BackfillConfig,
    plan: &Plan,
    counts: &Found,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<()> {
    let gateway = matches!(cfg.sink, SinkConfig::Gateway { .. });
    let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
    for pr in &plan.runs {
        let e = newest.entry(pr.run.key.as_str()).or_insert(i64::MIN);
        *e = (*e).max(pr.gauge_ms);
    }
    let mut samples = 0usize;
    for pr in &plan.runs {
        let (g, c) = run_families(pr);
        let rg = run_group_of(pr).map_or(0, |(f, _)| point_count(&f));
        let n = point_count(&g) + point_count(&c) + rg;
        samples += n;
        let mut line = format!(
            "{}  {}  {}  {n} samples",
            rfc3339(pr.gauge_ms),
            pr.run.key,
            pr.run.dir.display()
        );
        if pr.late {
            line.push_str(&format!(
                "  (late: counts added at {})",
                rfc3339(pr.cumulative_ms)
            ));
        }
        if let Some((key, g)) = &pr.run_group {
            line.push_str(&format!(
                "  (+ run group {key} at {})",
                rfc3339(g.cumulative_ms)
            ));
        }
        if gateway && newest.get(pr.run.key.as_str()) == Some(&pr.gauge_ms) {
            line.push_str("  (pushed)");
        }
        writeln!(stdout, "{line}").context("writing to stdout")?;
    }
    let groups: HashSet<&str> = plan.runs.iter().map(|r| r.run.key.as_str()).collect();
    let _ = writeln!(
        stderr,
        "dry run: {} run(s) in {} group(s) would be delivered ({samples} samples); {} already delivered; \
         nothing sent, state unchanged{}",
        plan.runs.len(),
        groups.len(),
        counts.already,
        if gateway {
            " (--gateway pushes only the newest run of each group, marked \"pushed\"; the others count into its totals)"
        } else {
            ""
        }
    );
    if counts.failed > 0 {
        return Err(SkippedRuns {
            failed: counts.failed,
        }
        .into());
    }
    Ok(())
}
