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

use super::parse::{group_key, ParsedRun, STEP_MS};
use super::state::{GroupState, State, FACTS_KEPT};
use crate::config::RUN_GROUP_SHARD;
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
    /// A shard of a split run that adds to its run's group (`shard="all"`): that group's key
    /// and state after it (counters at its `cumulative_ms`). See [`add_run_groups`].
    pub run_group: Option<(String, GroupState)>,
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
            let mut t = run_totals(&run);
            if let Some(p) = &totals {
                if let Err(e) = t.add(p) {
                    out.notes.push(format!(
                        "{key}: {e}; the duration histogram starts again from run {}",
                        run.dir.display()
                    ));
                    let mut without = p.clone();
                    without.durations.clear();
                    t = run_totals(&run);
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
                facts: Vec::new(),
            };
            out.runs.push(PlannedRun {
                run,
                gauge_ms: g,
                cumulative_ms: cum,
                late,
                group_after,
                run_group: None,
            });
        }
        if late_runs > 0 {
            out.notes.push(format!(
                "{key}: {late_runs} run(s) are older than runs already delivered for this group; \
                 their per-run values keep their own time, their counts are added at {} \
                 (counters cannot change in the past)",
                crate::civil::rfc3339(cursor.unwrap_or_default())
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

/// Counts the split runs with timing violations once each, in their run's group (`shard="all"`,
/// as `push` does): every planned shard run with a CI run id (its run.json's `run_id`) adds,
/// in delivery order, the sizes of its timing violations that no shard of the same run added
/// before (in this plan or, as the state remembers, an earlier backfill). Its counters get a
/// timestamp after the run group's newest (the shard's cumulative one when later). Shards
/// without a run id cannot be told apart from other runs and are left out, with a note.
pub fn add_run_groups(plan: &mut Plan, state: &State) {
    use crate::model::Size;
    let mut groups: BTreeMap<String, GroupState> = BTreeMap::new();
    let mut without_id = 0usize;
    for pr in &mut plan.runs {
        if !pr.run.group.grouping.iter().any(|(k, _)| k == "shard") {
            continue;
        }
        let sizes: Vec<&str> = Size::SIZED
            .iter()
            .filter(|s| pr.run.summary.timing_violations[s.index()] > 0)
            .map(|s| s.as_str())
            .collect();
        if sizes.is_empty() {
            continue;
        }
        let Some(ci_run) = pr.run.ci_run_id.as_ref().filter(|r| !r.trim().is_empty()) else {
            without_id += 1;
            continue;
        };
        let labels: Vec<(String, String)> = pr
            .run
            .group
            .series_labels()
            .into_iter()
            .map(|(k, v)| {
                let v = if k == "shard" {
                    RUN_GROUP_SHARD.to_string()
                } else {
                    v
                };
                (k, v)
            })
            .collect();
        let key = group_key(&labels);
        let g = groups.entry(key.clone()).or_insert_with(|| {
            state.groups.get(&key).cloned().unwrap_or(GroupState {
                labels: labels.clone(),
                cumulative_ms: i64::MIN,
                newest_run_ms: i64::MIN,
                runs: 0,
                totals: Totals::default(),
                facts: Vec::new(),
            })
        });
        let mut added = false;
        for size in sizes {
            let fact = fact_id(&key, ci_run, size);
            if g.facts.contains(&fact) {
                continue;
            }
            *g.totals.timing_runs.entry(size.to_string()).or_default() += 1.0;
            g.facts.push(fact);
            added = true;
        }
        if !added {
            continue;
        }
        if g.facts.len() > FACTS_KEPT {
            let extra = g.facts.len() - FACTS_KEPT;
            g.facts.drain(..extra);
        }
        for size in Size::SIZED {
            g.totals
                .timing_runs
                .entry(size.as_str().to_string())
                .or_default();
        }
        g.cumulative_ms = if pr.cumulative_ms > g.cumulative_ms {
            pr.cumulative_ms
        } else {
            g.cumulative_ms + STEP_MS
        };
        g.newest_run_ms = g.cumulative_ms;
        g.runs += 1;
        pr.run_group = Some((key, g.clone()));
    }
    if without_id > 0 {
        plan.notes.push(format!(
            "{without_id} run(s) of split runs with timing violations have no \"run_id\" in their \
             run.json: they are not counted in pytest_runs_with_timing_violations_total (the \
             shards of a run are told apart from other runs by it; push --archive writes it \
             from the CI)"
        ));
    }
}

/// A fact of a run group: the CI run and the size with timing violations, hashed.
fn fact_id(group: &str, ci_run: &str, size: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [group, ci_run, size] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A run's own totals. A shard of a split run does not count runs with timing violations in
/// its own group: they count once per run in the run's group ([`add_run_groups`]).
fn run_totals(run: &ParsedRun) -> Totals {
    let mut t = Totals::of_run(&run.summary);
    if run.group.grouping.iter().any(|(k, _)| k == "shard") {
        t.timing_runs.clear();
    }
    t
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

    /// A shard `shard` of 2 of CI run `ci_run` in project "s", with `timing` small and
    /// `medium` timing violations.
    fn shard_run(
        ts_s: i64,
        id: &str,
        shard: &str,
        ci_run: Option<&str>,
        small: u64,
        medium: u64,
    ) -> ParsedRun {
        let mut r = run("s", ts_s, id, 1);
        r.group.grouping.push(("shard".into(), shard.into()));
        r.key = super::super::parse::group_key(&r.group.series_labels());
        r.ci_run_id = ci_run.map(str::to_string);
        r.summary.timing_violations[crate::model::Size::Small.index()] = small;
        r.summary.timing_violations[crate::model::Size::Medium.index()] = medium;
        r
    }

    fn counted(p: &Plan) -> Vec<(String, f64, f64, i64)> {
        p.runs
            .iter()
            .filter_map(|r| {
                let (_, g) = r.run_group.as_ref()?;
                Some((
                    r.run.id.clone(),
                    g.totals.timing_runs["small"],
                    g.totals.timing_runs["medium"],
                    g.cumulative_ms,
                ))
            })
            .collect()
    }

    #[test]
    fn a_split_run_counts_once_in_its_run_group_also_across_backfills() {
        let mut st = State::new(SinkKind::RemoteWrite, "x", &[1.0]);
        let mut p = plan(
            vec![
                shard_run(100, "r1-1", "1/2", Some("r1"), 2, 0),
                shard_run(101, "r1-2", "2/2", Some("r1"), 1, 1),
                shard_run(200, "r2-1", "1/2", Some("r2"), 0, 0),
                shard_run(201, "r2-2", "2/2", Some("r2"), 0, 3),
                shard_run(300, "x-1", "1/2", None, 1, 0),
            ],
            &st,
            &BTreeMap::new(),
        );
        add_run_groups(&mut p, &st);
        // r1: small from its first shard, medium from its second (small again: not counted);
        // r2: medium; the shard without a run id: not counted, with a note.
        assert_eq!(
            counted(&p),
            vec![
                ("r1-1".into(), 1.0, 0.0, 100_000),
                ("r1-2".into(), 1.0, 1.0, 101_000),
                ("r2-2".into(), 1.0, 2.0, 201_000),
            ]
        );
        let (key, g) = p.runs[1].run_group.clone().unwrap();
        assert_eq!(key, r#"{job="pytest",project="s",shard="all"}"#);
        assert_eq!(g.labels[2], ("shard".to_string(), "all".to_string()));
        assert_eq!(g.facts.len(), 2);
        assert!(
            p.notes
                .iter()
                .any(|n| n.starts_with("1 run(s) of split runs")),
            "{:?}",
            p.notes
        );
        // Every shard group's own totals leave the family out.
        assert!(p
            .runs
            .iter()
            .all(|r| r.group_after.totals.timing_runs.is_empty()));

        // A later backfill finds r1's second shard again under another archive copy (new
        // content), and an earlier-timed shard of r3: r1 is not counted twice, r3 is, at its
        // shard group's late cumulative timestamp (after that group's newest, 300 s), which is
        // after the run group's newest sample too.
        for r in &p.runs {
            let mut d = crate::backfill::state::Delta::default();
            d.groups.insert(r.run.key.clone(), r.group_after.clone());
            if let Some((k, g)) = &r.run_group {
                d.groups.insert(k.clone(), g.clone());
            }
            st.apply(&d);
        }
        let mut p2 = plan(
            vec![
                shard_run(150, "r1-2b", "2/2", Some("r1"), 5, 5),
                shard_run(50, "r3-1", "1/2", Some("r3"), 1, 0),
            ],
            &st,
            &BTreeMap::new(),
        );
        add_run_groups(&mut p2, &st);
        assert_eq!(counted(&p2), vec![("r3-1".into(), 2.0, 2.0, 301_000)]);
    }
}
