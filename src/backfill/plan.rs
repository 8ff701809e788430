//! Ordering runs and giving each its timestamps and running totals (pure: no I/O).
//!
//! Per group, runs go in time order (ties by content hash), each with:
//! - a gauge timestamp: its own start, whole seconds, moved forward by a second while
//!   another run of the group already has it (two samples of one series at one timestamp
//!   with different values would be refused or silently dropped);
//! - a cumulative timestamp for the counters and the histogram: the same, unless the run
//!   is *late*, i.e. not newer than the group's newest cumulative sample already delivered
//!   by an earlier backfill. A counter cannot be changed in the past without rewriting
//!   every later sample, so a late run's counts are added at the group's newest cumulative
//!   timestamp plus one second: nothing is lost, the increase shows at that time;
//! - the cumulative values after it: the previous run's (or the state's, or the
//!   Pushgateway's for a new group in `--gateway` mode) plus its own.
//!
//! The result is the same for the same state and the same runs, whatever order the runs
//! were found or read in: a rerun after a crash computes the very same samples.

use std::collections::BTreeMap;

use super::parse::{ParsedRun, STEP_MS};
use super::state::{GroupState, State};
use crate::derive::totals::Totals;

/// A run with its place in the backfill.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    pub run: ParsedRun,
    /// Timestamp of its per-run gauges, ms.
    pub gauge_ms: i64,
    /// Timestamp of its cumulative samples, ms (≠ `gauge_ms` only for a late run).
    pub cumulative_ms: i64,
    pub late: bool,
    /// The group's state once this run is delivered (its `totals` are this run's
    /// cumulative values).
    pub group_after: GroupState,
}

/// All runs to deliver, in delivery order (by gauge timestamp, then group, then hash;
/// within a group this is the group's time order).
#[derive(Debug, Default)]
pub struct Plan {
    pub runs: Vec<PlannedRun>,
    pub notes: Vec<String>,
}

/// Plans `runs` (none of them delivered yet) on top of `state`. `seeds` gives the starting
/// totals of groups the state does not know (read from a Pushgateway).
pub fn plan(runs: Vec<ParsedRun>, state: &State, seeds: &BTreeMap<String, Totals>) -> Plan {
    let mut by_group: BTreeMap<String, Vec<ParsedRun>> = BTreeMap::new();
    for r in runs {
        by_group.entry(r.key.clone()).or_default().push(r);
    }
    let mut used = state.used_timestamps();
    let mut out = Plan::default();
    for (key, mut runs) in by_group {
        runs.sort_by(|a, b| {
            a.timestamp_ms
                .cmp(&b.timestamp_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        let used = used.entry(key.clone()).or_default();
        let prev = state.groups.get(&key);
        let mut cursor = prev.map(|g| g.cumulative_ms);
        let mut newest = prev.map_or(i64::MIN, |g| g.newest_run_ms);
        let first_count = prev.map_or(0, |g| g.runs);
        let mut totals: Option<Totals> = prev
            .map(|g| g.totals.clone())
            .or_else(|| seeds.get(&key).cloned());
        let mut late_runs = 0;
        for (count, run) in (first_count + 1..).zip(runs) {
            let mut g = run.timestamp_ms;
            while used.contains(&g) {
                g += STEP_MS;
            }
            used.insert(g);
            let cum = match cursor {
                Some(c) if g <= c => c + STEP_MS,
                _ => g,
            };
            cursor = Some(cum);
            newest = newest.max(g);
            let mut t = Totals::of_run(&run.summary);
            if let Some(p) = &totals {
                if let Err(e) = t.add(p) {
                    out.notes.push(format!(
                        "{key}: {e}; the duration histogram starts again from run {}",
                        run.dir.display()
                    ));
                    let mut without = p.clone();
                    without.durations.clear();
                    t = Totals::of_run(&run.summary);
                    // Without histograms nothing can mismatch.
                    let _ = t.add(&without);
                }
            }
            totals = Some(t.clone());
            let late = cum != g;
            late_runs += usize::from(late);
            let group_after = GroupState {
                labels: run.group.series_labels(),
                cumulative_ms: cum,
                newest_run_ms: newest,
                runs: count,
                totals: t,
            };
            out.runs.push(PlannedRun {
                run,
                gauge_ms: g,
                cumulative_ms: cum,
                late,
                group_after,
            });
        }
        if late_runs > 0 {
            out.notes.push(format!(
                "{key}: {late_runs} run(s) are older than runs already delivered for this group; \
                 their per-run values keep their own time, their counts are added at {} \
                 (counters cannot change in the past)",
                super::rfc3339(cursor.unwrap_or_default())
            ));
        }
    }
    out.runs.sort_by(|a, b| {
        a.gauge_ms
            .cmp(&b.gauge_ms)
            .then_with(|| a.run.key.cmp(&b.run.key))
            .then_with(|| a.run.id.cmp(&b.run.id))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::state::SinkKind;
    use crate::config::GroupConfig;
    use crate::derive::Summary;
    use std::path::PathBuf;

    fn run(project: &str, ts_s: i64, id: &str, passed: u64) -> ParsedRun {
        let mut summary = Summary {
            bounds: vec![1.0],
            durations: vec![vec![Default::default(); 5]; 6],
            ..Summary::default()
        };
        summary.tests[0][4] = passed;
        summary.timestamp = ts_s as f64;
        let group = GroupConfig {
            job: "pytest".into(),
            grouping: vec![("project".into(), project.into())],
        };
        ParsedRun {
            id: id.into(),
            dir: PathBuf::from(format!("archive/{id}")),
            key: super::super::parse::group_key(&group.series_labels()),
            group,
            timestamp_ms: ts_s * 1000,
            from_mtime: false,
            summary,
            inputs: Default::default(),
            commit: None,
            ci_run_id: None,
            run_url: None,
        }
    }

    fn passed(t: &Totals) -> f64 {
        t.tests[&("small".to_string(), "passed".to_string())]
    }

    #[test]
    fn orders_per_group_and_chains_totals() {
        let st = State::new(SinkKind::RemoteWrite, "x", &[1.0]);
        let p = plan(
            vec![
                run("b", 50, "b1", 1),
                run("a", 300, "a3", 3),
                run("a", 100, "a1", 1),
                run("a", 200, "a2", 2),
            ],
            &st,
            &BTreeMap::new(),
        );
        let order: Vec<&str> = p.runs.iter().map(|r| r.run.id.as_str()).collect();
        assert_eq!(order, vec!["b1", "a1", "a2", "a3"]);
        let a3 = &p.runs[3];
        assert_eq!(a3.group_after.totals.runs, 3.0);
        assert_eq!(passed(&a3.group_after.totals), 6.0);
        assert_eq!(a3.group_after.runs, 3);
        assert_eq!(
            (a3.gauge_ms, a3.cumulative_ms, a3.late),
            (300_000, 300_000, false)
        );
        assert!(p.notes.is_empty());
    }

    #[test]
    fn equal_timestamps_are_spread_and_the_same_whatever_the_input_order() {
        let st = State::new(SinkKind::RemoteWrite, "x", &[1.0]);
        let ids = |runs: Vec<ParsedRun>| -> Vec<(String, i64)> {
            plan(runs, &st, &BTreeMap::new())
                .runs
                .iter()
                .map(|r| (r.run.id.clone(), r.gauge_ms))
                .collect()
        };
        let one = ids(vec![
            run("a", 100, "y", 1),
            run("a", 100, "x", 1),
            run("a", 101, "z", 1),
        ]);
        let two = ids(vec![
            run("a", 101, "z", 1),
            run("a", 100, "x", 1),
            run("a", 100, "y", 1),
        ]);
        assert_eq!(one, two);
        assert_eq!(
            one,
            vec![
                ("x".into(), 100_000),
                ("y".into(), 101_000),
                ("z".into(), 102_000)
            ]
        );
    }

    #[test]
    fn continues_from_the_state_and_adds_late_runs_at_the_cursor() {
        let st0 = State::new(SinkKind::RemoteWrite, "x", &[1.0]);
        let first = plan(
            vec![run("a", 100, "a1", 1), run("a", 200, "a2", 2)],
            &st0,
            &BTreeMap::new(),
        );
        let mut st = st0.clone();
        for r in &first.runs {
            let mut d = crate::backfill::state::Delta::default();
            d.runs.insert(
                r.run.id.clone(),
                crate::backfill::state::RunRecord {
                    group: r.run.key.clone(),
                    timestamp_ms: r.gauge_ms,
                    path: String::new(),
                },
            );
            d.groups.insert(r.run.key.clone(), r.group_after.clone());
            st.apply(&d);
        }
        // A late run (before 200 s, and on an already used second) and a new one.
        let p = plan(
            vec![run("a", 300, "a4", 4), run("a", 100, "a0", 10)],
            &st,
            &BTreeMap::new(),
        );
        let late = &p.runs[0];
        assert_eq!(late.run.id, "a0");
        assert!(late.late);
        assert_eq!(late.gauge_ms, 101_000, "100 s is taken by a1");
        assert_eq!(late.cumulative_ms, 201_000);
        assert_eq!(passed(&late.group_after.totals), 13.0);
        let next = &p.runs[1];
        assert_eq!(
            (next.gauge_ms, next.cumulative_ms, next.late),
            (300_000, 300_000, false)
        );
        assert_eq!(passed(&next.group_after.totals), 17.0);
        assert_eq!(next.group_after.totals.runs, 4.0);
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
    }

    #[test]
    fn seeds_start_new_groups() {
        let st = State::new(SinkKind::Gateway, "x", &[1.0]);
        let mut seed = Totals {
            runs: 5.0,
            ..Totals::default()
        };
        seed.tests.insert(("small".into(), "passed".into()), 50.0);
        let r = run("a", 100, "a1", 1);
        let seeds = BTreeMap::from([(r.key.clone(), seed)]);
        let p = plan(vec![r], &st, &seeds);
        assert_eq!(p.runs[0].group_after.totals.runs, 6.0);
        assert_eq!(passed(&p.runs[0].group_after.totals), 51.0);
    }
}
