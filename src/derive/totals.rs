//! Running totals of the cumulative families (METRICS.md §3): `pytest_runs_total`,
//! `pytest_tests_total`, `pytest_test_duration_seconds`, `pytest_timing_violations_total`
//! and `ci_test_failures_total`. A run's own totals are added to the previous ones a sink
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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Totals {
    pub runs: f64,
    /// `(size, outcome)` → tests.
    pub tests: BTreeMap<(String, String), f64>,
    /// `(size, outcome)` → durations.
    pub durations: BTreeMap<(String, String), HistTotal>,
    /// `size` → timing violations.
    pub timing: BTreeMap<String, f64>,
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
            t.timing.insert(
                size.as_str().to_string(),
                s.timing_violations[size.index()] as f64,
            );
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
