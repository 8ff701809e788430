//! Reading text exposition format 0.0.4 back: the sample-line parser and the collector of
//! the cumulative families (METRICS.md §3) into [`Totals`]. Shared by the sinks that keep
//! running totals where they write: the textfile (the previous file) and the Pushgateway
//! (the group as the gateway serves it on `/metrics`).

use std::collections::BTreeMap;

use crate::derive::totals::{HistTotal, Totals};

/// Every family METRICS.md §3 defines: what a file of ours may hold.
pub const FAMILIES: [&str; 20] = [
    "ci_test_failures_total",
    "ci_test_suite_duration_seconds",
    "pytest_baseline_violations",
    "pytest_flaky_tests",
    "pytest_flaky_tests_total",
    "pytest_hermeticity_violations",
    "pytest_last_run_timestamp_seconds",
    "pytest_runs_total",
    "pytest_runs_with_timing_violations_total",
    "pytest_test_case_duration_seconds",
    "pytest_test_duration_seconds",
    "pytest_test_size_distribution",
    "pytest_tests",
    "pytest_tests_near_limit",
    "pytest_tests_total",
    "pytest_timing_violations",
    "pytest_timing_violations_total",
    "test_coverage_percentage",
    "test_module_coverage_percentage",
    "uncovered_lines",
];

/// The cumulative families: what a sink adds up across runs.
pub const CUMULATIVE: [&str; 7] = [
    "pytest_runs_total",
    "pytest_runs_with_timing_violations_total",
    "pytest_tests_total",
    "pytest_timing_violations_total",
    "pytest_flaky_tests_total",
    "ci_test_failures_total",
    HISTOGRAM,
];

const HISTOGRAM: &str = "pytest_test_duration_seconds";

/// Labels the families set themselves; the rest identify the group.
pub const OWN_LABELS: [&str; 4] = ["size", "outcome", "failure_type", "le"];

/// Whether `family` (as [`family_of`] names it) is cumulative.
pub fn is_cumulative(family: &str) -> bool {
    CUMULATIVE.contains(&family)
}

/// A sample's labels split into the family's own and the group's (empty values dropped, as
/// an empty label is no label).
pub fn split_labels(
    labels: Vec<(&str, String)>,
) -> (BTreeMap<&str, String>, BTreeMap<String, String>) {
    let mut own = BTreeMap::new();
    let mut rest = BTreeMap::new();
    for (k, v) in labels {
        if OWN_LABELS.contains(&k) {
            own.insert(k, v);
        } else if !v.is_empty() {
            rest.insert(k.to_string(), v);
        }
    }
    (own, rest)
}

/// `(buckets (le, cumulative), sum, count)` of one histogram series while it is read.
type Hist = (Vec<(f64, f64)>, Option<f64>, Option<f64>);

/// Collects samples of the cumulative families of one group into [`Totals`].
#[derive(Debug, Default)]
pub struct TotalsBuilder {
    t: Totals,
    hists: BTreeMap<(String, String), Hist>,
    found: bool,
}

impl TotalsBuilder {
    /// Adds one sample of `family` (a cumulative one; `name` is the sample's own name, e.g.
    /// `…_bucket`). The message of an error says what is wrong with the sample.
    pub fn add(
        &mut self,
        family: &str,
        name: &str,
        own: &BTreeMap<&str, String>,
        v: f64,
    ) -> Result<(), String> {
        let label = |k: &str| own.get(k).cloned().unwrap_or_default();
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("{name} has the value {v}, which is not a count"));
        }
        self.found = true;
        let t = &mut self.t;
        match family {
            "pytest_runs_total" => t.runs += v,
            "pytest_tests_total" => {
                *t.tests
                    .entry((label("size"), label("outcome")))
                    .or_default() += v
            }
            "pytest_timing_violations_total" => *t.timing.entry(label("size")).or_default() += v,
            "pytest_flaky_tests_total" => *t.flaky.entry(label("size")).or_default() += v,
            "pytest_runs_with_timing_violations_total" => {
                *t.timing_runs.entry(label("size")).or_default() += v
            }
            "ci_test_failures_total" => *t.failures.entry(label("failure_type")).or_default() += v,
            _ => {
                let h = self
                    .hists
                    .entry((label("size"), label("outcome")))
                    .or_default();
                if name.ends_with("_bucket") {
                    let le = own
                        .get("le")
                        .ok_or_else(|| format!("{name} has no le label"))?;
                    let ub =
                        parse_value(le).ok_or_else(|| format!("le=\"{le}\" is not a number"))?;
                    h.0.push((ub, v));
                } else if name.ends_with("_sum") {
                    h.1 = Some(v);
                } else {
                    h.2 = Some(v);
                }
            }
        }
        Ok(())
    }

    /// The totals, or `None` when no sample was added.
    pub fn finish(self) -> Option<Totals> {
        let mut t = self.t;
        for (k, (mut buckets, sum, count)) in self.hists {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let inf = buckets.iter().find(|b| b.0.is_infinite()).map(|b| b.1);
            let finite: Vec<(f64, f64)> = buckets.into_iter().filter(|b| b.0.is_finite()).collect();
            t.durations.insert(
                k,
                HistTotal {
                    bounds: finite.iter().map(|b| b.0).collect(),
                    cumulative: finite.iter().map(|b| b.1).collect(),
                    sum: sum.unwrap_or(0.0),
                    count: count.or(inf).unwrap_or(0.0),
                },
            );
        }
        self.found.then_some(t)
    }
}

/// The family a sample name belongs to, if it is one of ours.
pub fn family_of(name: &str) -> Option<&'static str> {
    if let Some(f) = FAMILIES.iter().find(|f| **f == name) {
        return Some(f);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if name.strip_suffix(suffix) == Some(HISTOGRAM) {
            return Some(HISTOGRAM);
        }
    }
    None
}

/// One sample line of text format 0.0.4.
#[derive(Debug, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

/// `name{l="v",…} value [timestamp]`, with the format's escapes (`\\`, `\"`, `\n`) in label
/// values.
pub fn parse_sample(line: &str) -> Result<Sample<'_>, String> {
    let is_name_char = |c: char, first: bool| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
    };
    let end = line
        .char_indices()
        .find(|(i, c)| !is_name_char(*c, *i == 0))
        .map_or(line.len(), |(i, _)| i);
    if end == 0 {
        return Err("expected a metric name".into());
    }
    let name = &line[..end];
    let mut rest = line[end..].trim_start();
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let lend = rest
                .char_indices()
                .find(|(i, c)| {
                    !(c.is_ascii_alphabetic() || *c == '_' || (*i > 0 && c.is_ascii_digit()))
                })
                .map_or(rest.len(), |(i, _)| i);
            if lend == 0 {
                return Err(format!("{name}: expected a label name"));
            }
            let lname = &rest[..lend];
            rest = rest[lend..].trim_start();
            rest = rest
                .strip_prefix('=')
                .ok_or_else(|| format!("{name}: expected = after label {lname}"))?
                .trim_start();
            rest = rest
                .strip_prefix('"')
                .ok_or_else(|| format!("{name}: the value of label {lname} must be quoted"))?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let close = loop {
                match chars.next() {
                    None => return Err(format!("{name}: unterminated value of label {lname}")),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => {
                            return Err(format!("{name}: invalid escape \\{c} in label {lname}"))
                        }
                        None => return Err(format!("{name}: unterminated value of label {lname}")),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            labels.push((lname, value));
            rest = rest[close + 1..].trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err(format!("{name}: expected , or }} after label {lname}"));
            }
        }
    }
    let mut parts = rest.split_whitespace();
    let v = parts
        .next()
        .ok_or_else(|| format!("{name}: the sample has no value"))?;
    let value = parse_value(v).ok_or_else(|| format!("{name}: {v:?} is not a number"))?;
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("{name}: {ts:?} is not a timestamp"))?;
    }
    if let Some(extra) = parts.next() {
        return Err(format!("{name}: unexpected {extra:?} after the value"));
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// A sample value as Go's `strconv.ParseFloat` reads it, plus the format's `+Inf`/`-Inf`/`NaN`.
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => {
            let ok = s
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
            if ok {
                s.parse::<f64>().ok()
            } else {
                None
            }
        }
    }
}
