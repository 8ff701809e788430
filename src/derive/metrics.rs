//! Metric families of a run (METRICS.md §3), as the `prometheus` crate's data model.
//!
//! Families come out sorted by name, series sorted by labels, every series carrying the
//! group labels. Per-run gauges come from the [`Summary`]; cumulative families from the
//! [`Totals`] (this run plus what came before).

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

use super::totals::{present_sizes, Totals};
use super::{test_label, Summary};
use crate::model::{Resource, Size};

/// Help of `pytest_runs_with_timing_violations_total`, also for the run group of a split run.
pub const RUNS_WITH_TIMING_HELP: &str = "Runs with at least one timing violation of this size, \
     cumulative; a run split over shards counts once, in its group shard=\"all\".";

/// `(name, value)` label pairs of the group: `job`, `project`, `branch`, `--label`s.
pub type Labels = Vec<(String, String)>;

struct Builder<'a> {
    group: &'a Labels,
    families: Vec<MetricFamily>,
}

impl Builder<'_> {
    fn family(&mut self, name: &str, help: &str, ty: MetricType, metrics: Vec<Metric>) {
        if metrics.is_empty() {
            return;
        }
        let mut mf = MetricFamily::default();
        mf.set_name(name.to_string());
        mf.set_help(help.to_string());
        mf.set_field_type(ty);
        mf.set_metric(metrics);
        self.families.push(mf);
    }

    fn labels(&self, own: &[(&str, &str)]) -> Vec<LabelPair> {
        let mut all: Vec<(String, String)> = self.group.clone();
        for (k, v) in own {
            all.push((k.to_string(), v.to_string()));
        }
        all.retain(|(_, v)| !v.is_empty());
        all.sort();
        all.into_iter()
            .map(|(k, v)| {
                let mut lp = LabelPair::default();
                lp.set_name(k);
                lp.set_value(v);
                lp
            })
            .collect()
    }

    fn gauge(&self, own: &[(&str, &str)], v: f64) -> Metric {
        let mut g = Gauge::default();
        g.set_value(v);
        let mut m = Metric::from_gauge(g);
        m.set_label(self.labels(own));
        m
    }

    fn counter(&self, own: &[(&str, &str)], v: f64) -> Metric {
        let mut c = Counter::default();
        c.set_value(v);
        let mut m = Metric::default();
        m.set_counter(c);
        m.set_label(self.labels(own));
        m
    }
}

/// Builds every family of METRICS.md §3 for one run.
pub fn families(s: &Summary, totals: &Totals, group: &Labels) -> Vec<MetricFamily> {
    let mut b = Builder {
        group,
        families: Vec::new(),
    };
    let sizes = present_sizes(s);
    use MetricType::{COUNTER, GAUGE, HISTOGRAM};

    let m = totals
        .failures
        .iter()
        .map(|(t, v)| b.counter(&[("failure_type", t)], *v))
        .collect();
    b.family(
        "ci_test_failures_total",
        "Failed and errored tests by failure type (error, timing_violation, hermeticity_violation, assertion), cumulative across runs.",
        COUNTER,
        m,
    );
    let m = vec![b.gauge(&[], s.suite_duration)];
    b.family(
        "ci_test_suite_duration_seconds",
        "Wall time of the last run: sum of testsuite@time over its JUnit inputs.",
        GAUGE,
        m,
    );
    let m = Size::SIZED
        .iter()
        .map(|sz| {
            b.gauge(
                &[("size", sz.as_str())],
                s.baseline_violations[sz.index()] as f64,
            )
        })
        .collect();
    b.family(
        "pytest_baseline_violations",
        "Tests of the last run over their custom performance baseline ([TC008]).",
        GAUGE,
        m,
    );
    let m = sizes
        .iter()
        .map(|sz| b.gauge(&[("size", sz.as_str())], s.flaky[sz.index()] as f64))
        .collect();
    b.family(
        "pytest_flaky_tests",
        "Tests of the last run that passed only after a rerun.",
        GAUGE,
        m,
    );
    let m = totals
        .flaky
        .iter()
        .map(|(sz, v)| b.counter(&[("size", sz)], *v))
        .collect();
    b.family(
        "pytest_flaky_tests_total",
        "Tests that passed only after a rerun, by size, cumulative across runs.",
        COUNTER,
        m,
    );
    let m = Resource::ALL
        .iter()
        .map(|r| b.gauge(&[("resource", r.as_str())], s.hermeticity[r.index()] as f64))
        .collect();
    b.family(
        "pytest_hermeticity_violations",
        "Hermeticity violation records of the last run by resource (TC001-TC005).",
        GAUGE,
        m,
    );
    let m = vec![b.gauge(&[], s.timestamp)];
    b.family(
        "pytest_last_run_timestamp_seconds",
        "Start of the last run in Unix seconds.",
        GAUGE,
        m,
    );
    let m = vec![b.counter(&[], totals.runs)];
    b.family(
        "pytest_runs_total",
        "Runs pushed to this group, cumulative.",
        COUNTER,
        m,
    );
    let m = s
        .per_test
        .iter()
        .map(|(id, sz, d)| b.gauge(&[("size", sz.as_str()), ("test", &test_label(id))], *d))
        .collect();
    b.family(
        "pytest_test_case_duration_seconds",
        "Duration of selected individual tests in the last run (--per-test-slower-than, --per-test-sample).",
        GAUGE,
        m,
    );
    let m = totals
        .durations
        .iter()
        .map(|((sz, o), h)| {
            let mut hist = Histogram::default();
            hist.set_sample_count(h.count as u64);
            hist.set_sample_sum(h.sum);
            hist.set_bucket(
                h.bounds
                    .iter()
                    .zip(&h.cumulative)
                    .map(|(ub, c)| {
                        let mut bk = Bucket::default();
                        bk.set_upper_bound(*ub);
                        bk.set_cumulative_count(*c as u64);
                        bk
                    })
                    .collect(),
            );
            let mut m = Metric::default();
            m.set_histogram(hist);
            m.set_label(b.labels(&[("outcome", o), ("size", sz)]));
            m
        })
        .collect();
    b.family(
        "pytest_test_duration_seconds",
        "Test durations by size and outcome, cumulative across runs.",
        HISTOGRAM,
        m,
    );
    if let Some(d) = s.distribution() {
        let m = Size::SIZED
            .iter()
            .enumerate()
            .map(|(i, sz)| b.gauge(&[("size", sz.as_str())], d[i]))
            .collect();
        b.family(
            "pytest_test_size_distribution",
            "Share 0-1 of each size among the sized tests of the last run.",
            GAUGE,
            m,
        );
    }
    let mut m = Vec::new();
    for sz in &sizes {
        for o in crate::model::Outcome::ALL {
            m.push(b.gauge(
                &[("outcome", o.as_str()), ("size", sz.as_str())],
                s.tests[sz.index()][o.index()] as f64,
            ));
        }
    }
    b.family(
        "pytest_tests",
        "Tests of the last run by size and outcome.",
        GAUGE,
        m,
    );
    let m = Size::SIZED
        .iter()
        .map(|sz| b.gauge(&[("size", sz.as_str())], s.near_limit[sz.index()] as f64))
        .collect();
    b.family(
        "pytest_tests_near_limit",
        "Tests of the last run not violating but at or over the near-limit share of their size's time limit.",
        GAUGE,
        m,
    );
    let m = totals
        .tests
        .iter()
        .map(|((sz, o), v)| b.counter(&[("outcome", o), ("size", sz)], *v))
        .collect();
    b.family(
        "pytest_tests_total",
        "Tests by size and outcome, cumulative across runs.",
        COUNTER,
        m,
    );
    let m = Size::SIZED
        .iter()
        .map(|sz| {
            b.gauge(
                &[("size", sz.as_str())],
                s.timing_violations[sz.index()] as f64,
            )
        })
        .collect();
    b.family(
        "pytest_timing_violations",
        "Tests of the last run over their size's time limit ([TC006]).",
        GAUGE,
        m,
    );
    let m = totals
        .timing
        .iter()
        .map(|(sz, v)| b.counter(&[("size", sz)], *v))
        .collect();
    b.family(
        "pytest_timing_violations_total",
        "Timing violations by size, cumulative across runs.",
        COUNTER,
        m,
    );
    let m = totals
        .timing_runs
        .iter()
        .map(|(sz, v)| b.counter(&[("size", sz)], *v))
        .collect();
    b.family(
        "pytest_runs_with_timing_violations_total",
        RUNS_WITH_TIMING_HELP,
        COUNTER,
        m,
    );
    if let Some(c) = &s.coverage {
        let m = vec![b.gauge(&[], c.percentage())];
        b.family(
            "test_coverage_percentage",
            "Line coverage 0-100 of the last run: lines-covered / lines-valid x 100.",
            GAUGE,
            m,
        );
        let m = c
            .uncovered
            .iter()
            .map(|(f, n)| b.gauge(&[("file", f)], *n as f64))
            .collect();
        b.family(
            "uncovered_lines",
            "Uncovered lines per file in the last run, files with at least one.",
            GAUGE,
            m,
        );
        let m = c
            .modules
            .iter()
            .map(|m| b.gauge(&[("module", &m.module)], m.percentage()))
            .collect();
        b.family(
            "test_module_coverage_percentage",
            "Line coverage 0-100 per Cobertura package of the last run, merged like the total.",
            GAUGE,
            m,
        );
    }
    let mut fams = b.families;
    for f in &mut fams {
        f.mut_metric()
            .sort_by(|a, b| label_key(a).cmp(&label_key(b)));
    }
    fams.sort_by(|a, b| a.name().cmp(b.name()));
    fams
}

/// The families of a split run's own group (`shard="all"`, `group` its labels): the facts
/// counted once per run over its shards. Every real size is present (0 when none), so that
/// `increase()` sees the series from the start.
pub fn run_group_families(totals: &Totals, group: &Labels) -> Vec<MetricFamily> {
    let mut b = Builder {
        group,
        families: Vec::new(),
    };
    let m = Size::SIZED
        .iter()
        .map(|sz| {
            let v = totals.timing_runs.get(sz.as_str()).copied().unwrap_or(0.0);
            b.counter(&[("size", sz.as_str())], v)
        })
        .collect();
    b.family(
        "pytest_runs_with_timing_violations_total",
        RUNS_WITH_TIMING_HELP,
        MetricType::COUNTER,
        m,
    );
    b.families
}

fn label_key(m: &Metric) -> Vec<(&str, &str)> {
    m.get_label()
        .iter()
        .map(|l| (l.name(), l.value()))
        .collect()
}
