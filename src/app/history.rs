//! `history`: discover (as `backfill`) → each run's `run.json` (group, time, commit) →
//! filter and order per group → read the runs in parallel, folded in time order into the
//! group's aggregates (`crate::history`, pure) → render (terminal or JSON) → stdout.
//! Runs that cannot be used are named on stderr and make the exit status 4.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::backfill::discover::{discover, Candidate};
use crate::backfill::parse::{
    classify, for_each_in_order, group_key, group_of, Defaults, RunFiles,
};
use crate::backfill::runmeta::{self, RunMeta};
use crate::config::{ConfigError, HistoryConfig};
use crate::derive::test_facts;
use crate::encode::text;
use crate::history::{metrics, Duplicate, GroupAgg, GroupReport, HistoryReport, RunObs, Skipped};
use crate::read::{read_run_with, Inputs, ReadOptions};
use crate::render::{history as render, Format};
use crate::sink::http::HttpClient;
use crate::sink::pushgateway::{self, PushMethod, PushgatewayConfig};
use crate::sink::textfile;

/// Some runs could not be used and were left out of the report (exit 4).
#[derive(Debug, thiserror::Error)]
#[error("{0} run(s) were skipped (see the warnings above); the report leaves them out")]
pub struct SkippedHistoryRuns(pub usize);

/// A run ready to be read: what its `run.json` says.
#[derive(Debug)]
struct Head {
    dir: PathBuf,
    files: RunFiles,
    key: String,
    labels: BTreeMap<String, String>,
    timestamp_ms: i64,
    commit: Option<String>,
    junit_prefix: String,
}

/// What became of a candidate directory in the first pass.
enum First {
    Run(Box<Head>),
    NotARun,
    /// Left out by `--branch`.
    Filtered(PathBuf),
    Skip(PathBuf, String),
}

/// `ptc-metrics history`. The report goes to stdout; warnings to stderr.
pub fn history(cfg: &HistoryConfig, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<()> {
    let found = discover(&cfg.sources).map_err(|e| ConfigError(e.to_string()))?;
    let defaults = Defaults {
        project: cfg.project.clone(),
        junit_prefix: cfg.junit_prefix.clone(),
        ..Defaults::default()
    };
    let mut firsts: Vec<First> = Vec::with_capacity(found.candidates.len());
    for_each_in_order(
        &found.candidates,
        cfg.jobs,
        usize::MAX,
        |c| first_pass(c, cfg, &defaults),
        |_, f| firsts.push(f),
    );
    let mut run_dirs = BTreeSet::new();
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut groups: BTreeMap<String, Vec<Head>> = BTreeMap::new();
    for f in firsts {
        match f {
            First::Run(h) => {
                run_dirs.insert(h.dir.clone());
                let in_window = cfg.since_ms.is_none_or(|s| h.timestamp_ms >= s)
                    && cfg.until_ms.is_none_or(|u| h.timestamp_ms < u);
                if in_window {
                    groups.entry(h.key.clone()).or_default().push(*h);
                }
            }
            First::NotARun => {}
            First::Filtered(dir) => {
                run_dirs.insert(dir);
            }
            First::Skip(dir, error) => {
                run_dirs.insert(dir.clone());
                skipped.push(Skipped {
                    dir: dir.display().to_string(),
                    error,
                });
            }
        }
    }
    found
        .check_sources(&run_dirs)
        .map_err(|e| ConfigError(e.to_string()))?;
    let mut order: Vec<Head> = Vec::new();
    let mut duplicates: Vec<Duplicate> = Vec::new();
    for (_, mut runs) in groups {
        runs.sort_by(|a, b| a.timestamp_ms.cmp(&b.timestamp_ms).then(a.dir.cmp(&b.dir)));
        let mut runs = drop_copies(runs, &mut duplicates);
        if let Some(n) = cfg.last {
            runs.drain(..runs.len().saturating_sub(n));
        }
        order.extend(runs);
    }

    // Second pass: read each run, in group and time order, into its group's aggregates.
    let mut reports = Vec::new();
    let mut current: Option<GroupAgg> = None;
    let mut read = 0usize;
    for_each_in_order(
        &order,
        cfg.jobs,
        2 * cfg.jobs + 2,
        |h| read_obs(h, cfg),
        |i, r| {
            let h = &order[i];
            let obs = match r {
                Ok(o) => o,
                Err(error) => {
                    skipped.push(Skipped {
                        dir: h.dir.display().to_string(),
                        error,
                    });
                    return;
                }
            };
            if current.as_ref().is_none_or(|g| g.key() != h.key) {
                if let Some(g) = current.take() {
                    reports.push(g.finish());
                }
                current = Some(GroupAgg::new(
                    h.key.clone(),
                    h.labels.clone(),
                    cfg.options.clone(),
                ));
            }
            if let Some(g) = current.as_mut() {
                g.add(&obs);
                read += 1;
            }
        },
    );
    if let Some(g) = current.take() {
        reports.push(g.finish());
    }
    skipped.sort_by(|a, b| a.dir.cmp(&b.dir));
    duplicates.sort_by(|a, b| a.dir.cmp(&b.dir));
    for d in &duplicates {
        writeln!(
            stderr,
            "note: {} holds the same JUnit report(s) as {}; it is counted once",
            d.dir, d.same_as
        )
        .context("writing to stderr")?;
    }
    for s in &skipped {
        writeln!(stderr, "warning: skipped {}: {}", s.dir, s.error).context("writing to stderr")?;
    }
    let bodies = encode_metrics(cfg, &reports)?;
    for g in &mut reports {
        g.cut(cfg.options.top);
    }
    let mut report = HistoryReport::new(&cfg.options, read, skipped, reports);
    report.duplicates = duplicates;
    let text = match cfg.format {
        Format::Text => render::terminal(&report, &cfg.terminal),
        Format::Json => render::json(&report),
    };
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.context("writing to stdout")?,
    }
    // After the report: a failed delivery (exit 3, which wins over 4) loses no report.
    deliver(cfg, bodies, stderr)?;
    if !report.skipped.is_empty() {
        return Err(SkippedHistoryRuns(report.skipped.len()).into());
    }
    Ok(())
}

/// What `--textfile` and `--gateway` will send: the file's body, and each group's.
struct Bodies {
    textfile: Option<String>,
    groups: Vec<(PushgatewayConfig, String)>,
}

/// Encodes the history metrics (`crate::history::metrics`) from the uncut lists.
fn encode_metrics(cfg: &HistoryConfig, groups: &[GroupReport]) -> Result<Bodies> {
    let textfile = match &cfg.textfile {
        Some(_) => Some(
            text::encode(&metrics::families(groups, cfg.max_per_test_series))
                .context("encoding the exposition")?,
        ),
        None => None,
    };
    let mut bodies = Vec::new();
    if let Some((url, _)) = &cfg.gateway {
        for g in groups {
            let fams = metrics::families(std::slice::from_ref(g), cfg.max_per_test_series);
            let body = text::encode(&fams).context("encoding the exposition")?;
            let mut grouping: Vec<(String, String)> = Vec::new();
            for k in ["project", "branch"] {
                if let Some(v) = g.labels.get(k) {
                    grouping.push((k.to_string(), v.clone()));
                }
            }
            for (k, v) in &g.labels {
                if !matches!(k.as_str(), "job" | "project" | "branch") {
                    grouping.push((k.clone(), v.clone()));
                }
            }
            let pg = PushgatewayConfig {
                url: url.clone(),
                job: metrics::JOB.to_string(),
                grouping,
                method: PushMethod::Put,
                gzip: true,
            };
            bodies.push((pg, body));
        }
    }
    Ok(Bodies {
        textfile,
        groups: bodies,
    })
}

/// Writes the textfile and pushes each group, through the sinks `push` uses.
fn deliver(cfg: &HistoryConfig, bodies: Bodies, stderr: &mut dyn Write) -> Result<()> {
    if let (Some(t), Some(body)) = (&cfg.textfile, &bodies.textfile) {
        textfile::write(t, body)?;
    }
    let Some((_, http)) = &cfg.gateway else {
        return Ok(());
    };
    let sent = (|| -> Result<()> {
        let client = HttpClient::new(http.clone())?;
        for (pg, body) in &bodies.groups {
            pushgateway::push(&client, pg, body)?;
        }
        Ok(())
    })();
    match sent {
        Err(e) if cfg.soft_fail && super::exit_for(&e) == super::Exit::Delivery => {
            writeln!(
                stderr,
                "warning: history metrics not delivered (--soft-fail): {e:#}"
            )
            .context("writing to stderr")?;
            Ok(())
        }
        r => r,
    }
}

/// Reads a candidate's `run.json` and sorts its files: no report is parsed here.
fn first_pass(c: &Candidate, cfg: &HistoryConfig, defaults: &Defaults) -> First {
    let skip = |e: String| First::Skip(c.dir.clone(), e);
    let Some(meta_path) = &c.meta else {
        return match classify(c, &RunMeta::default()) {
            Ok(f) if f.junit.is_empty() => First::NotARun,
            Ok(_) => skip(format!(
                "has no {}: history needs each run's time and commit (archive runs with `ptc-metrics push --archive DIR`)",
                runmeta::FILE_NAME
            )),
            Err(e) => skip(e),
        };
    };
    let meta = match RunMeta::read(meta_path) {
        Ok(m) => m,
        Err(e) => return skip(format!("{}: {e}", meta_path.display())),
    };
    if let (Some(want), Some(got)) = (&cfg.project, &meta.project) {
        if want != got {
            return skip(format!(
                "is a run of project {got:?}, not {want:?} (--project); keep each project's runs in its own archive"
            ));
        }
    }
    let group = match group_of(&meta, defaults) {
        Ok(g) => g,
        Err(e) => return skip(format!("{}: {e}", meta_path.display())),
    };
    if let Some(b) = &cfg.branch {
        if !group.grouping.iter().any(|(k, v)| k == "branch" && v == b) {
            return First::Filtered(c.dir.clone());
        }
    }
    let timestamp = match meta.timestamp_seconds() {
        Ok(Some(t)) => t,
        Ok(None) => {
            return skip(format!(
                "{}: has no \"timestamp\"; history orders runs by it",
                meta_path.display()
            ))
        }
        Err(e) => return skip(format!("{}: {e}", meta_path.display())),
    };
    let files = match classify(c, &meta) {
        Ok(f) => f,
        Err(e) => return skip(e),
    };
    if files.junit.is_empty() {
        return skip(format!(
            "has a {} but no JUnit XML report",
            runmeta::FILE_NAME
        ));
    }
    let labels = group.series_labels().into_iter().collect();
    First::Run(Box::new(Head {
        dir: c.dir.clone(),
        files,
        key: group_key(&group.series_labels()),
        labels,
        timestamp_ms: (timestamp * 1000.0).floor() as i64,
        commit: meta.commit.clone(),
        junit_prefix: meta
            .junit_prefix
            .clone()
            .unwrap_or_else(|| defaults.junit_prefix.clone()),
    }))
}

/// Drops the copies of a run (a run directory copied into a second archive, an artifact
/// downloaded twice) from a group's runs in time order, keeping the first by directory, so
/// that a copy is not counted as a run of its own (a violation of 1 run as 2 of the last 5).
/// A copy has the same JUnit report(s) (backfill's content hash, `crate::backfill::parse::
/// run_id`); only runs that share their start and commit are hashed, so an archive without
/// copies costs nothing more. A run whose reports cannot be hashed is kept (its reading then
/// names the problem).
fn drop_copies(runs: Vec<Head>, duplicates: &mut Vec<Duplicate>) -> Vec<Head> {
    let mut kept: Vec<Head> = Vec::with_capacity(runs.len());
    // The content hashes of the kept runs that share the current start and commit.
    let mut bucket: Vec<(usize, Option<String>)> = Vec::new();
    for h in runs {
        let same_bucket = kept
            .last()
            .is_some_and(|k| k.timestamp_ms == h.timestamp_ms && k.commit == h.commit);
        if !same_bucket {
            bucket.clear();
            kept.push(h);
            bucket.push((kept.len() - 1, None));
            continue;
        }
        let hash = |h: &Head| crate::backfill::parse::run_id(&h.files.junit).ok();
        for (i, id) in bucket.iter_mut() {
            if id.is_none() {
                *id = hash(&kept[*i]);
            }
        }
        let mine = hash(&h);
        let first = mine
            .as_ref()
            .and_then(|m| bucket.iter().find(|(_, id)| id.as_ref() == Some(m)));
        match first {
            Some((i, _)) => duplicates.push(Duplicate {
                dir: h.dir.display().to_string(),
                same_as: kept[*i].dir.display().to_string(),
            }),
            None => {
                kept.push(h);
                bucket.push((kept.len() - 1, mine));
            }
        }
    }
    kept
}

/// Reads one run (streaming, `crate::read`) into the facts of its tests.
fn read_obs(h: &Head, cfg: &HistoryConfig) -> Result<RunObs, String> {
    let inputs = Inputs {
        reports: h.files.junit.clone(),
        size_reports: h.files.size_reports.clone(),
        coverage: Vec::new(),
        junit_prefix: h.junit_prefix.clone(),
    };
    let run = read_run_with(
        &inputs,
        ReadOptions {
            test_ids: true,
            messages: false,
        },
    )
    .map_err(|e| e.to_string())?;
    let tests = run
        .tests
        .iter()
        .map(|t| test_facts(&t.record(), t.id(), &run, &cfg.derive))
        .collect();
    Ok(RunObs {
        dir: h.dir.display().to_string(),
        timestamp_ms: h.timestamp_ms,
        commit: h.commit.clone(),
        suite_duration: run.suite.duration_seconds,
        tests,
    })
}
