//! The optional metrics of `history` (`--textfile`, `--gateway`; docs/history.md "Metrics"):
//! counts per group and size from the complete lists, and at most `--max-per-test-series`
//! per-test series per group (flip rate of the flakiest, then slowdown ratio of the slowest).
//! Pure: a [`GroupReport`] in, the `prometheus` crate's families out, sorted by name, series
//! sorted by labels. Every series carries the group's labels except `job` (the Pushgateway
//! group of these series has a job of its own, [`JOB`]).

use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

use super::{GroupReport, HasSize, Listed};
use crate::derive::test_label;
use crate::model::Size;
use crate::read::junit::parse_timestamp;

/// The Pushgateway job of the history series.
pub const JOB: &str = "ptc_history";

/// The series of each group in `groups` (the lists must not be cut below `max_per_test`).
pub fn families(groups: &[GroupReport], max_per_test: usize) -> Vec<MetricFamily> {
    let mut fams: Vec<(&str, &str, Vec<Metric>)> = vec![
        ("pytest_history_runs", "Runs of the group in the analysed window.", vec![]),
        (
            "pytest_history_last_run_timestamp_seconds",
            "Start of the newest run in the window, Unix seconds.",
            vec![],
        ),
        (
            "pytest_history_flaky_tests",
            "Tests flaky across runs in the window (passed and failed on one commit, or flipping).",
            vec![],
        ),
        (
            "pytest_history_rerun_flaky_tests",
            "Tests that passed only after a rerun in at least one run of the window.",
            vec![],
        ),
        (
            "pytest_history_slower_tests",
            "Tests whose recent median duration is above their baseline median by more than --slower-than.",
            vec![],
        ),
        (
            "pytest_history_chronic_violations",
            "Tests with timing or baseline violations in at least M of the last N runs.",
            vec![],
        ),
        (
            "pytest_history_persistent_hermeticity_violations",
            "Tests with hermeticity violations in at least M of the last N runs.",
            vec![],
        ),
        (
            "pytest_history_new_failures",
            "Tests failing in the newest run that passed in the run before.",
            vec![],
        ),
        (
            "pytest_history_tests",
            "Tests in the newest run of the window, by size.",
            vec![],
        ),
        (
            "pytest_history_test_flip_rate",
            "Flips between passed and failed per transition, of the tests flaky across runs (capped by --max-per-test-series).",
            vec![],
        ),
        (
            "pytest_history_test_slowdown_ratio",
            "Recent median duration over baseline median, of the slower tests (capped by --max-per-test-series).",
            vec![],
        ),
    ];
    for g in groups {
        let base: Vec<(String, String)> = g
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "job")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let gauge = |own: &[(&str, &str)], v: f64| gauge(&base, own, v);
        fams[0].2.push(gauge(&[], g.runs as f64));
        if let Some(t) = g
            .newest_run
            .as_ref()
            .and_then(|r| parse_timestamp(&r.timestamp))
        {
            fams[1].2.push(gauge(&[], t));
        }
        let per_size = |l: &[u64; 6]| -> Vec<Metric> {
            Size::ALL
                .iter()
                .filter(|z| z.is_sized() || l[z.index()] > 0)
                .map(|z| gauge(&[("size", z.as_str())], l[z.index()] as f64))
                .collect()
        };
        fams[2].2.extend(per_size(&g.flaky.per_size()));
        fams[3].2.extend(per_size(&g.rerun_flaky.per_size()));
        fams[4].2.extend(per_size(&g.slower.per_size()));
        fams[5].2.extend(per_size(&g.chronic_violations.per_size()));
        fams[6]
            .2
            .extend(per_size(&g.hermeticity_persistent.per_size()));
        fams[7].2.extend(per_size(&g.new_failures.per_size()));
        if let Some(sizes) = &g.suite.sizes_newest {
            for (z, n) in sizes {
                fams[8].2.push(gauge(&[("size", z)], *n as f64));
            }
        }
        let flaky = take(&g.flaky, max_per_test);
        for f in flaky {
            fams[9].2.push(gauge(
                &[("test", &test_label(&f.id)), ("size", f.size.as_str())],
                f.flip_rate,
            ));
        }
        for f in take(&g.slower, max_per_test.saturating_sub(flaky.len())) {
            fams[10].2.push(gauge(
                &[("test", &test_label(&f.id)), ("size", f.size.as_str())],
                f.ratio,
            ));
        }
    }
    let mut out: Vec<MetricFamily> = fams
        .into_iter()
        .filter(|(_, _, m)| !m.is_empty())
        .map(|(name, help, mut metrics)| {
            metrics.sort_by_key(label_key);
            let mut mf = MetricFamily::default();
            mf.set_name(name.to_string());
            mf.set_help(help.to_string());
            mf.set_field_type(MetricType::GAUGE);
            mf.set_metric(metrics);
            mf
        })
        .collect();
    out.sort_by(|a, b| a.name().cmp(b.name()));
    out
}

fn take<T: HasSize>(l: &Listed<T>, n: usize) -> &[T] {
    &l.tests[..l.tests.len().min(n)]
}

fn label_key(m: &Metric) -> Vec<(String, String)> {
    m.get_label()
        .iter()
        .map(|l| (l.name().to_string(), l.value().to_string()))
        .collect()
}

fn gauge(base: &[(String, String)], own: &[(&str, &str)], v: f64) -> Metric {
    let mut all: Vec<(String, String)> = base.to_vec();
    all.extend(own.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    all.retain(|(_, v)| !v.is_empty());
    all.sort();
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::from_gauge(g);
    m.set_label(
        all.into_iter()
            .map(|(k, v)| {
                let mut lp = LabelPair::default();
                lp.set_name(k);
                lp.set_value(v);
                lp
            })
            .collect(),
    );
    m
}
