//! `prune`: read the groups of a job from the gateway, delete those pushed longer ago than
//! `--older-than` except the kept branches (with their pending pushes), or list them with
//! `--dry-run`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use anyhow::Result;

use crate::config::PruneConfig;
use crate::sink::exact_push::{is_pending, GRACE_SECONDS};
use crate::sink::gateway_view::read_job;
use crate::sink::http::{redact, HttpClient};
use crate::sink::pushgateway::{self, PushgatewayConfig, PENDING_LABEL};

/// `ptc-metrics prune`.
pub fn prune(cfg: &PruneConfig, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<()> {
    match run(cfg, stdout, stderr) {
        Err(e) if cfg.soft_fail && super::exit_for(&e) == super::Exit::Delivery => {
            let _ = writeln!(stderr, "warning: groups not pruned (--soft-fail): {e:#}");
            Ok(())
        }
        r => r,
    }
}

fn run(cfg: &PruneConfig, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<()> {
    let client = HttpClient::new(cfg.http.clone())?;
    let job = &cfg.gateway.job;
    let view = read_job(&client, &cfg.gateway, job)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let limit = cfg.older_than.as_secs_f64();
    let kept = |labels: &BTreeMap<String, String>| {
        labels
            .get("branch")
            .is_some_and(|b| cfg.keep.iter().any(|p| p.matches(b)))
    };
    let (mut young, mut keep_branch) = (0usize, 0usize);
    // The job's groups first: a pending push can only go with its group, or on its own once
    // the group has counted it and the grace has passed (a push may still be merging it).
    let mut doomed = Vec::new();
    for g in view.groups.iter().filter(|g| !is_pending(&g.labels)) {
        let age = now - g.pushed_at;
        if kept(&g.labels) {
            keep_branch += 1;
        } else if age <= limit {
            young += 1;
        } else {
            doomed.push((g, age));
        }
    }
    let going: BTreeSet<&BTreeMap<String, String>> =
        doomed.iter().map(|(g, _)| &g.labels).collect();
    let present: BTreeSet<&BTreeMap<String, String>> = view
        .groups
        .iter()
        .filter(|g| !is_pending(&g.labels))
        .map(|g| &g.labels)
        .collect();
    let mut pending_going = Vec::new();
    for g in view.groups.iter().filter(|g| is_pending(&g.labels)) {
        let age = now - g.pushed_at;
        let mut main = g.labels.clone();
        let id = main
            .remove(PENDING_LABEL)
            .and_then(|h| u64::from_str_radix(&h, 16).ok());
        let counted = id.is_some_and(|id| view.ledgers.get(&main).is_some_and(|l| l.contains(&id)));
        let go = if going.contains(&&main) {
            true
        } else if present.contains(&&main) {
            counted && age > GRACE_SECONDS
        } else {
            // Its group is gone (deleted by hand): the push that wrote it is long over.
            age > limit.max(GRACE_SECONDS)
        };
        if go {
            pending_going.push((g, age));
        }
    }
    doomed.extend(pending_going);
    let (mut deleted, mut deleted_pending) = (0usize, 0usize);
    for (g, age) in &doomed {
        let gw = group_config(cfg, &g.labels);
        let shown = redact(&gw.group_url());
        if cfg.dry_run {
            let _ = writeln!(
                stdout,
                "would delete {shown} (last push {} ago)",
                days(*age)
            );
            continue;
        }
        pushgateway::delete(&client, &gw)?;
        if is_pending(&g.labels) {
            deleted_pending += 1;
        } else {
            deleted += 1;
        }
        let _ = writeln!(stdout, "deleted {shown} (last push {} ago)", days(*age));
    }
    let groups = view
        .groups
        .iter()
        .filter(|g| !is_pending(&g.labels))
        .count();
    let (n, n_pending) = if cfg.dry_run {
        let p = doomed.iter().filter(|(g, _)| is_pending(&g.labels)).count();
        (doomed.len() - p, p)
    } else {
        (deleted, deleted_pending)
    };
    let pending = match n_pending {
        0 => String::new(),
        1 => " (and 1 pending push)".to_string(),
        p => format!(" (and {p} pending pushes)"),
    };
    let _ = writeln!(
        stderr,
        "{} {n} of {groups} groups of job {job:?}{pending} on {} (kept: {}{young} pushed within {})",
        if cfg.dry_run { "would delete" } else { "deleted" },
        redact(&cfg.gateway.url),
        if cfg.keep.is_empty() {
            String::new()
        } else {
            format!(
                "{keep_branch} of branches {}, ",
                cfg.keep.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
            )
        },
        days(limit),
    );
    Ok(())
}

/// The group of `labels` (`job` among them) as a push configuration, for its URL.
fn group_config(cfg: &PruneConfig, labels: &BTreeMap<String, String>) -> PushgatewayConfig {
    PushgatewayConfig {
        url: cfg.gateway.url.clone(),
        job: labels.get("job").cloned().unwrap_or_default(),
        grouping: labels
            .iter()
            .filter(|(k, _)| k.as_str() != "job")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        method: cfg.gateway.method,
        gzip: false,
    }
}

/// `41d`, `5h`, `12m`: an age, roughly.
fn days(secs: f64) -> String {
    let s = secs.max(0.0);
    if s >= 2.0 * 86_400.0 {
        format!("{:.0}d", s / 86_400.0)
    } else if s >= 2.0 * 3600.0 {
        format!("{:.0}h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.0}m", s / 60.0)
    } else {
        format!("{:.0}s", s)
    }
}
