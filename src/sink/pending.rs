//! The pending group of a push (see [`super::exact_push`]): how a run's cumulative values are
//! written there, small, and read back whole. Shared by the push that writes it and the
//! reader of the gateway ([`super::gateway_view`]).

use super::pushgateway;
use crate::derive::totals::Totals;
use crate::encode::openmetrics::escape_label_value;

/// A run's cumulative values as the pending group holds them: the cumulative families with
/// [`pushgateway::PENDING_PREFIX`] before their names, no group labels (the URL gives them),
/// kept small since a pending group lives for
/// [`GRACE`](super::exact_push::GRACE): zero counts are left out, and of a
/// duration histogram only the buckets where the count grows, `+Inf`, `_sum` and `_count`;
/// the bounds are written once, in [`PENDING_BOUNDS`], so that the
/// reader can put the left-out buckets back ([`expand_buckets`]). For the bundled 9.2 fixture:
/// 86 series instead of 221 (its group holds 275).
pub fn pending_body(t: &Totals) -> String {
    let p = pushgateway::PENDING_PREFIX;
    let help = "A pending ptc-metrics push (internal; counted into the group once, then deleted).";
    let mut s = String::new();
    let mut family = |name: &str, ty: &str, lines: Vec<String>| {
        if lines.is_empty() {
            return;
        }
        s.push_str(&format!("# HELP {p}{name} {help}\n# TYPE {p}{name} {ty}\n"));
        for l in lines {
            s.push_str(&format!("{p}{l}\n"));
        }
    };
    let one = |k: &str, v: &str| format!("{k}=\"{}\"", escape_label_value(v));
    family(
        "ci_test_failures_total",
        "counter",
        t.failures
            .iter()
            .filter(|(_, v)| **v != 0.0)
            .map(|(f, v)| format!("ci_test_failures_total{{{}}} {v}", one("failure_type", f)))
            .collect(),
    );
    family(
        "pytest_runs_total",
        "counter",
        vec![format!("pytest_runs_total {}", t.runs)],
    );
    let mut hist = Vec::new();
    let mut bounds: Option<&[f64]> = None;
    for ((size, outcome), h) in &t.durations {
        bounds = Some(&h.bounds);
        let so = format!("{},{}", one("outcome", outcome), one("size", size));
        let mut below = 0.0;
        for (b, c) in h.bounds.iter().zip(&h.cumulative) {
            if *c != below {
                hist.push(format!(
                    "pytest_test_duration_seconds_bucket{{le=\"{b}\",{so}}} {c}"
                ));
            }
            below = *c;
        }
        hist.push(format!(
            "pytest_test_duration_seconds_bucket{{le=\"+Inf\",{so}}} {}",
            h.count
        ));
        hist.push(format!(
            "pytest_test_duration_seconds_sum{{{so}}} {}",
            h.sum
        ));
        // Not implied by +Inf for the gateway: without it, it shows `_count` 0.
        hist.push(format!(
            "pytest_test_duration_seconds_count{{{so}}} {}",
            h.count
        ));
    }
    family("pytest_test_duration_seconds", "histogram", hist);
    if let Some(b) = bounds {
        let list: Vec<String> = b.iter().map(|x| x.to_string()).collect();
        family(
            PENDING_BOUNDS,
            "gauge",
            vec![format!(
                "{PENDING_BOUNDS}{{bounds=\"{}\"}} 1",
                list.join(",")
            )],
        );
    }
    family(
        "pytest_tests_total",
        "counter",
        t.tests
            .iter()
            .filter(|(_, v)| **v != 0.0)
            .map(|((size, outcome), v)| {
                format!(
                    "pytest_tests_total{{{},{}}} {v}",
                    one("outcome", outcome),
                    one("size", size)
                )
            })
            .collect(),
    );
    family(
        "pytest_timing_violations_total",
        "counter",
        t.timing
            .iter()
            .filter(|(_, v)| **v != 0.0)
            .map(|(size, v)| {
                format!(
                    "pytest_timing_violations_total{{{}}} {v}",
                    one("size", size)
                )
            })
            .collect(),
    );
    family(
        "pytest_flaky_tests_total",
        "counter",
        t.flaky
            .iter()
            .filter(|(_, v)| **v != 0.0)
            .map(|(size, v)| format!("pytest_flaky_tests_total{{{}}} {v}", one("size", size)))
            .collect(),
    );
    family(
        "pytest_runs_with_timing_violations_total",
        "counter",
        t.timing_runs
            .iter()
            .filter(|(_, v)| **v != 0.0)
            .map(|(size, v)| {
                format!(
                    "pytest_runs_with_timing_violations_total{{{}}} {v}",
                    one("size", size)
                )
            })
            .collect(),
    );
    s
}

/// The family of a pending group that lists its histogram's bounds (after
/// [`pushgateway::PENDING_PREFIX`]): `bounds="0.1,0.5,1"`.
pub const PENDING_BOUNDS: &str = "duration_bounds";

/// Puts back the buckets [`pending_body`] left out: every bound of `bounds` gets the count of
/// the nearest bucket below it that was written (0 below the first). `Err` when the written
/// buckets are not among `bounds`.
pub fn expand_buckets(t: &mut Totals, bounds: &[f64]) -> Result<(), String> {
    for h in t.durations.values_mut() {
        if h.bounds == bounds {
            continue;
        }
        let mut cumulative = Vec::with_capacity(bounds.len());
        let mut written = h.bounds.iter().zip(&h.cumulative).peekable();
        let mut below = 0.0;
        for b in bounds {
            if let Some((wb, c)) = written.peek() {
                if *wb == b {
                    below = **c;
                    written.next();
                }
            }
            cumulative.push(below);
        }
        if let Some((wb, _)) = written.next() {
            return Err(format!(
                "a bucket le=\"{wb}\" that is not among the bounds {bounds:?}"
            ));
        }
        h.bounds = bounds.to_vec();
        h.cumulative = cumulative;
    }
    Ok(())
}

/// The bounds of a [`PENDING_BOUNDS`] label value.
pub fn parse_bounds(v: &str) -> Option<Vec<f64>> {
    if v.is_empty() {
        return Some(Vec::new());
    }
    let b: Option<Vec<f64>> = v.split(',').map(|x| x.parse::<f64>().ok()).collect();
    b.filter(|b| b.iter().all(|x| x.is_finite()) && b.windows(2).all(|w| w[0] < w[1]))
}
