//! Running totals of the cumulative families (METRICS.md §3): `pytest_runs_total`,
//! `pytest_tests_total`, `pytest_test_duration_seconds`, `pytest_timing_violations_total`,
//! `pytest_flaky_tests_total`, `pytest_runs_with_timing_violations_total` and
//! `ci_test_failures_total`. A run's own totals are added to the previous ones a sink
//! read back (Pushgateway group, textfile) or kept (backfill state), so the series only grow.

use std::collections::BTreeMap;

use super::Summary;
use crate::model::{FailureType, Outcome, Size};

/// Cumulative histogram state of one label set.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct HistTotal {
    /// Finite upper bounds, ascending.
    pub bounds: Vec<f64>,
    /// Cumulative counts at each bound.
    pub cumulative: Vec<f64>,
    pub sum: f64,
    pub count: f64,
}

/// Values of the cumulative families, keyed by their label values.
///
/// Serializable (the backfill state file keeps them between invocations): the maps with
/// tuple keys are written as lists of entries, since JSON object keys must be strings.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(into = "TotalsRepr", from = "TotalsRepr")]
pub struct Totals {
    pub runs: f64,
    /// `(size, outcome)` → tests.
    pub tests: BTreeMap<(String, String), f64>,
    /// `(size, outcome)` → durations.
    pub durations: BTreeMap<(String, String), HistTotal>,
    /// `size` → timing violations.
    pub timing: BTreeMap<String, f64>,
    /// `size` → flaky tests (passed only after a rerun).
    pub flaky: BTreeMap<String, f64>,
    /// `size` → runs with at least one timing violation of that size. Empty in the group of
    /// one shard of a split run: a run is counted once, in its run group (`shard="all"`).
    pub timing_runs: BTreeMap<String, f64>,
    /// `failure_type` → failed and errored tests.
    pub failures: BTreeMap<String, f64>,
}

impl Totals {
    /// The totals of one run alone. Every real size, outcome and failure type is present
    /// (as 0 when nothing happened) so that `increase()` sees the series from the start.
    pub fn of_run(s: &Summary) -> Totals {
        let mut t = Totals {
            runs: 1.0,
            ..Totals::default()
        };
        for size in present_sizes(s) {
            t.flaky
                .insert(size.as_str().to_string(), s.flaky[size.index()] as f64);
            for o in Outcome::ALL {
                let n = s.tests[size.index()][o.index()];
                t.tests.insert(key2(size, o), n as f64);
                let h = &s.durations[size.index()][o.index()];
                if h.count > 0 {
                    let mut acc = 0u64;
                    let cumulative = s
                        .bounds
                        .iter()
                        .enumerate()
                        .map(|(i, _)| {
                            acc += h.per_bucket[i];
                            acc as f64
                        })
                        .collect();
                    t.durations.insert(
                        key2(size, o),
                        HistTotal {
                            bounds: s.bounds.clone(),
                            cumulative,
                            sum: h.sum,
                            count: h.count as f64,
                        },
                    );
                }
            }
        }
        for size in Size::SIZED {
            let n = s.timing_violations[size.index()];
            t.timing.insert(size.as_str().to_string(), n as f64);
            t.timing_runs
                .insert(size.as_str().to_string(), if n > 0 { 1.0 } else { 0.0 });
        }
        for f in FailureType::ALL {
            t.failures
                .insert(f.as_str().to_string(), s.failures[f.index()] as f64);
        }
        t
    }

    /// Adds `prev` into `self`. Histograms whose bucket bounds differ cannot be added:
    /// the error names the series, and the caller decides (warn and restart, or fail).
    pub fn add(&mut self, prev: &Totals) -> Result<(), String> {
        self.runs += prev.runs;
        for (k, v) in &prev.tests {
            *self.tests.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &prev.timing {
            *self.timing.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &prev.flaky {
            *self.flaky.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &prev.timing_runs {
            *self.timing_runs.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &prev.failures {
            *self.failures.entry(k.clone()).or_default() += v;
        }
        for (k, p) in &prev.durations {
            match self.durations.get_mut(k) {
                None => {
                    self.durations.insert(k.clone(), p.clone());
                }
                Some(h) => {
                    if h.bounds != p.bounds {
                        return Err(format!(
                            "pytest_test_duration_seconds{{size=\"{}\",outcome=\"{}\"}} has buckets {:?} but this run uses {:?}",
                            k.0, k.1, p.bounds, h.bounds
                        ));
                    }
                    for (a, b) in h.cumulative.iter_mut().zip(&p.cumulative) {
                        *a += b;
                    }
                    h.sum += p.sum;
                    h.count += p.count;
                }
            }
        }
        Ok(())
    }
}

/// The serialized form of [`Totals`]: `(size, outcome)` maps as lists of entries.
#[derive(serde::Serialize, serde::Deserialize)]
struct TotalsRepr {
    runs: f64,
    tests: Vec<TestsEntry>,
    durations: Vec<DurationsEntry>,
    timing: BTreeMap<String, f64>,
    /// Absent from state files written before `pytest_flaky_tests_total` existed.
    #[serde(default)]
    flaky: BTreeMap<String, f64>,
    /// Absent from state files written before `pytest_runs_with_timing_violations_total`.
    #[serde(default)]
    timing_runs: BTreeMap<String, f64>,
    failures: BTreeMap<String, f64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TestsEntry {
    size: String,
    outcome: String,
    value: f64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct DurationsEntry {
    size: String,
    outcome: String,
    #[serde(flatten)]
    hist: HistTotal,
}

impl From<Totals> for TotalsRepr {
    fn from(t: Totals) -> Self {
        TotalsRepr {
            runs: t.runs,
            tests: t
                .tests
                .into_iter()
                .map(|((size, outcome), value)| TestsEntry {
                    size,
                    outcome,
                    value,
                })
                .collect(),
            durations: t
                .durations
                .into_iter()
                .map(|((size, outcome), hist)| DurationsEntry {
                    size,
                    outcome,
                    hist,
                })
                .collect(),
            timing: t.timing,
            flaky: t.flaky,
            timing_runs: t.timing_runs,
            failures: t.failures,
        }
    }
}

impl From<TotalsRepr> for Totals {
    fn from(r: TotalsRepr) -> Self {
        Totals {
            runs: r.runs,
            tests: r
                .tests
                .into_iter()
                .map(|e| ((e.size, e.outcome), e.value))
                .collect(),
            durations: r
                .durations
                .into_iter()
                .map(|e| ((e.size, e.outcome), e.hist))
                .collect(),
            timing: r.timing,
            flaky: r.flaky,
            timing_runs: r.timing_runs,
            failures: r.failures,
        }
    }
}

fn key2(size: Size, o: Outcome) -> (String, String) {
    (size.as_str().to_string(), o.as_str().to_string())
}

/// The four real sizes always, plus `unsized`/`unknown` when the run has such tests.
pub fn present_sizes(s: &Summary) -> Vec<Size> {
    Size::ALL
        .into_iter()
        .filter(|sz| sz.is_sized() || s.size_count(*sz) > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_round_trip_through_json() {
        let mut t = Totals {
            runs: 3.0,
            ..Totals::default()
        };
        t.tests.insert(("small".into(), "passed".into()), 12.0);
        t.durations.insert(
            ("small".into(), "passed".into()),
            HistTotal {
                bounds: vec![0.1, 1.0],
                cumulative: vec![4.0, 12.0],
                sum: 2.5,
                count: 12.0,
            },
        );
        t.timing.insert("small".into(), 1.0);
        t.flaky.insert("medium".into(), 4.0);
        t.failures.insert("assertion".into(), 2.0);
        let json = serde_json::to_string(&t).unwrap();
        assert!(
            json.contains(r#"{"size":"small","outcome":"passed","value":12.0}"#),
            "{json}"
        );
        let back: Totals = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn totals_written_before_flaky_totals_still_load() {
        // A backfill state entry as written before `pytest_flaky_tests_total` existed.
        let old = r#"{"runs":2.0,"tests":[{"size":"small","outcome":"passed","value":7.0}],
            "durations":[],"timing":{"small":1.0},"failures":{"assertion":3.0}}"#;
        let t: Totals = serde_json::from_str(old).unwrap();
        assert_eq!(
            (t.runs, t.timing["small"], t.failures["assertion"]),
            (2.0, 1.0, 3.0)
        );
        assert!(t.flaky.is_empty());
        // Added to a run, the flaky totals start from that run.
        let mut s = Summary {
            durations: vec![vec![crate::derive::DurationHist::default(); 5]; 6],
            ..Summary::default()
        };
        s.flaky[Size::Small.index()] = 1;
        s.flaky[Size::Unsized.index()] = 2;
        s.tests[Size::Unsized.index()][Outcome::Passed.index()] = 2;
        let mut run = Totals::of_run(&s);
        let want: BTreeMap<String, f64> = [
            ("small", 1.0),
            ("medium", 0.0),
            ("large", 0.0),
            ("xlarge", 0.0),
            ("unsized", 2.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(run.flaky, want);
        run.add(&t).unwrap();
        assert_eq!(run.flaky, want);
        let mut twice = run.clone();
        twice.add(&run).unwrap();
        assert_eq!(twice.flaky["small"], 2.0);
        assert_eq!(twice.flaky["unsized"], 4.0);
    }

    #[test]
    fn sums_survive_json_bit_for_bit() {
        // The backfill state must give back exactly the sums it stored: a rerun after a
        // crash recomputes samples from them, and a value that differs in the last bit at
        // an already written timestamp is refused ("duplicate sample for timestamp").
        let mut x = 0.0f64;
        for i in 0..2000u32 {
            x += f64::from(i) * 0.001_234_567 + 1.0 / f64::from(i + 3);
            let t = Totals {
                runs: x,
                ..Totals::default()
            };
            let back: Totals = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
            assert_eq!(back.runs.to_bits(), x.to_bits(), "{x:?}");
        }
    }
}
