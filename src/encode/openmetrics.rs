//! OpenMetrics 1.0 text with sample timestamps, for
//! `promtool tsdb create-blocks-from openmetrics`.
//!
//! Many runs go into one exposition, so the [`Builder`] gathers every run's points per
//! family and per label set first and writes them at the end: families not interleaved,
//! one label set's points contiguous and in ascending time order (promtool silently keeps
//! only some samples of a series that goes back in time), timestamps in seconds, `# EOF`
//! last. Memory is series × runs points, a few dozen bytes each.
//!
//! Spelling: counters are `# TYPE foo counter` with samples `foo_total`. METRICS.md has
//! three counters whose OpenMetrics family name would be that of a gauge (`pytest_tests` and
//! `pytest_tests_total`, `pytest_timing_violations` and `pytest_timing_violations_total`,
//! `pytest_flaky_tests` and `pytest_flaky_tests_total`);
//! OpenMetrics forbids two families of one name, so such a counter is written as an
//! `unknown` family under its full `_total` name. The stored series are the same either
//! way. Histogram `le` values are canonical OpenMetrics numbers (`1.0`, `0.1`, `1e-05`),
//! as the spec requires; `+Inf` is always written.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use prometheus::proto::{MetricFamily, MetricType};

/// The content type of this format, for HTTP.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Scalar(f64),
    Histogram {
        /// `(upper bound, cumulative count)`, finite bounds ascending.
        buckets: Vec<(f64, f64)>,
        count: f64,
        sum: f64,
    },
}

/// A label set, sorted by name.
type LabelSet = Vec<(String, String)>;

#[derive(Debug)]
struct Family {
    help: String,
    ty: MetricType,
    /// Label set → points `(timestamp ms, value)`.
    metrics: BTreeMap<LabelSet, Vec<(i64, Value)>>,
}

/// Gathers the families of many runs, each with its own timestamp.
#[derive(Debug, Default)]
pub struct Builder {
    families: BTreeMap<String, Family>,
    points: usize,
}

impl Builder {
    pub fn new() -> Self {
        Builder::default()
    }

    /// Adds every series of `families` at `timestamp_ms`. A family seen before with
    /// another type keeps its first type; the odd points are dropped (never happens with
    /// ptc-metrics' own families).
    pub fn add(&mut self, families: &[MetricFamily], timestamp_ms: i64) {
        for f in families {
            let ty = f.get_field_type();
            let fam = self
                .families
                .entry(f.name().to_string())
                .or_insert_with(|| Family {
                    help: f.help().to_string(),
                    ty,
                    metrics: BTreeMap::new(),
                });
            if fam.ty != ty {
                continue;
            }
            for m in f.get_metric() {
                let mut labels: Vec<(String, String)> = m
                    .get_label()
                    .iter()
                    .filter(|l| !l.value().is_empty())
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect();
                labels.sort();
                let value = match ty {
                    MetricType::COUNTER => Value::Scalar(m.get_counter().get_value()),
                    MetricType::GAUGE => Value::Scalar(m.get_gauge().get_value()),
                    MetricType::HISTOGRAM => {
                        let h = m.get_histogram();
                        Value::Histogram {
                            buckets: h
                                .get_bucket()
                                .iter()
                                .filter(|b| b.upper_bound().is_finite())
                                .map(|b| (b.upper_bound(), b.cumulative_count() as f64))
                                .collect(),
                            count: h.get_sample_count() as f64,
                            sum: h.get_sample_sum(),
                        }
                    }
                    _ => continue,
                };
                fam.metrics
                    .entry(labels)
                    .or_default()
                    .push((timestamp_ms, value));
                self.points += 1;
            }
        }
    }

    /// Series as stored by Prometheus (a histogram counts its buckets, `_sum` and `_count`).
    pub fn series(&self) -> usize {
        self.families
            .values()
            .flat_map(|f| f.metrics.values())
            .map(|pts| match pts.first() {
                Some((_, Value::Histogram { buckets, .. })) => buckets.len() + 3,
                _ => 1,
            })
            .sum()
    }

    /// Samples as stored by Prometheus.
    pub fn samples(&self) -> usize {
        self.families
            .values()
            .flat_map(|f| f.metrics.values())
            .flat_map(|pts| pts.iter())
            .map(|(_, v)| match v {
                Value::Histogram { buckets, .. } => buckets.len() + 3,
                Value::Scalar(_) => 1,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// Writes the exposition, ending with `# EOF`.
    pub fn write_to<W: Write>(&self, w: &mut W) -> io::Result<()> {
        // Names a counter's OpenMetrics family name would collide with.
        let taken: BTreeSet<&str> = self
            .families
            .iter()
            .filter(|(_, f)| f.ty != MetricType::COUNTER)
            .map(|(n, _)| n.as_str())
            .collect();
        let mut order: Vec<(String, &str, &Family)> = self
            .families
            .iter()
            .map(|(name, f)| {
                let written = match (f.ty, name.strip_suffix("_total")) {
                    (MetricType::COUNTER, Some(base)) if !taken.contains(base) => base.to_string(),
                    _ => name.clone(),
                };
                (written, name.as_str(), f)
            })
            .collect();
        order.sort_by(|a, b| a.0.cmp(&b.0));
        for (written, name, f) in order {
            let (ty, sample_name) = match f.ty {
                MetricType::COUNTER if written != name => ("counter", name.to_string()),
                MetricType::COUNTER => ("unknown", name.to_string()),
                MetricType::GAUGE => ("gauge", name.to_string()),
                MetricType::HISTOGRAM => ("histogram", name.to_string()),
                _ => ("unknown", name.to_string()),
            };
            writeln!(w, "# TYPE {written} {ty}")?;
            writeln!(w, "# HELP {written} {}", escape(&f.help, true))?;
            for (labels, pts) in &f.metrics {
                let mut pts: Vec<&(i64, Value)> = pts.iter().collect();
                pts.sort_by_key(|p| p.0);
                // One point per timestamp: the last one added wins.
                let mut i = 0;
                while i < pts.len() {
                    let mut j = i;
                    while j + 1 < pts.len() && pts[j + 1].0 == pts[i].0 {
                        j += 1;
                    }
                    let (ts, value) = pts[j];
                    let ts = timestamp(*ts);
                    match value {
                        Value::Scalar(v) => {
                            writeln!(
                                w,
                                "{sample_name}{} {} {ts}",
                                label_set(labels, None),
                                number(*v)
                            )?;
                        }
                        Value::Histogram {
                            buckets,
                            count,
                            sum,
                        } => {
                            for (ub, c) in buckets {
                                writeln!(
                                    w,
                                    "{name}_bucket{} {} {ts}",
                                    label_set(labels, Some(&canonical(*ub))),
                                    number(*c)
                                )?;
                            }
                            writeln!(
                                w,
                                "{name}_bucket{} {} {ts}",
                                label_set(labels, Some("+Inf")),
                                number(*count)
                            )?;
                            writeln!(
                                w,
                                "{name}_count{} {} {ts}",
                                label_set(labels, None),
                                number(*count)
                            )?;
                            writeln!(
                                w,
                                "{name}_sum{} {} {ts}",
                                label_set(labels, None),
                                number(*sum)
                            )?;
                        }
                    }
                    i = j + 1;
                }
            }
        }
        writeln!(w, "# EOF")
    }

    /// The exposition as a string (for tests and small outputs).
    pub fn to_text(&self) -> String {
        let mut out = Vec::new();
        self.write_to(&mut out)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("the exposition is UTF-8")
    }
}

fn label_set(labels: &[(String, String)], le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut s = String::from("{");
    let mut first = true;
    for (k, v) in labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(le.map(|l| ("le", l)))
    {
        if !first {
            s.push(',');
        }
        first = false;
        s.push_str(k);
        s.push_str("=\"");
        s.push_str(&escape(v, true));
        s.push('"');
    }
    s.push('}');
    s
}

/// A label value escaped as text format 0.0.4 and OpenMetrics both require (`\\`, `\"`,
/// `\n`), for the sinks that write a label themselves.
pub fn escape_label_value(v: &str) -> String {
    escape(v, true)
}

/// Escapes `\`, line feeds and (when `quotes`) `"`, as OpenMetrics requires in label
/// values and HELP text.
fn escape(s: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// Milliseconds → OpenMetrics seconds: `1795703296`, or `1795703296.335` when the
/// milliseconds are not zero. (promtool 2.42 multiplies the parsed float by 1000 and
/// truncates, which can lose a millisecond: whole seconds are exact, so backfill uses them.)
pub fn timestamp(ms: i64) -> String {
    let (s, m) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if m == 0 {
        s.to_string()
    } else {
        format!("{s}.{m:03}")
    }
}

/// A sample value: integers without a decimal point, other floats in their shortest form,
/// `NaN`, `+Inf`, `-Inf`.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 1e15 || v.abs() < 1e-6 {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// An OpenMetrics canonical number, as Prometheus formats `le` (Go's shortest `'g'`
/// format, with `.0` added to integers): `1.0`, `0.1`, `900.0`, `1e-05`, `1e+06`.
pub fn canonical(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return "0.0".into();
    }
    let sci = format!("{:e}", v.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut s = String::new();
    if v < 0.0 {
        s.push('-');
    }
    if !(-4..6).contains(&exp) {
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
        return s;
    }
    let dp = exp + 1;
    if dp <= 0 {
        s.push_str("0.");
        s.push_str(&"0".repeat((-dp) as usize));
        s.push_str(&digits);
    } else if dp as usize >= digits.len() {
        s.push_str(&digits);
        s.push_str(&"0".repeat(dp as usize - digits.len()));
        s.push_str(".0");
    } else {
        s.push_str(&digits[..dp as usize]);
        s.push('.');
        s.push_str(&digits[dp as usize..]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric};

    fn lp(k: &str, v: &str) -> LabelPair {
        let mut l = LabelPair::default();
        l.set_name(k.into());
        l.set_value(v.into());
        l
    }

    fn fam(name: &str, ty: MetricType, m: Vec<Metric>) -> MetricFamily {
        let mut f = MetricFamily::default();
        f.set_name(name.into());
        f.set_help(format!("Help of \"{name}\" \\ x"));
        f.set_field_type(ty);
        f.set_metric(m);
        f
    }

    fn run(n: f64, tests: f64) -> Vec<MetricFamily> {
        let mut c = Counter::default();
        c.set_value(n);
        let mut runs = Metric::default();
        runs.set_counter(c);
        runs.set_label(vec![lp("job", "pytest")]);
        let mut c = Counter::default();
        c.set_value(tests);
        let mut tt = Metric::default();
        tt.set_counter(c);
        tt.set_label(vec![lp("job", "pytest"), lp("size", "small")]);
        let mut g = Gauge::default();
        g.set_value(tests / n);
        let mut tg = Metric::from_gauge(g);
        tg.set_label(vec![lp("job", "pytest"), lp("size", "small")]);
        let mut h = Histogram::default();
        h.set_sample_count(n as u64);
        h.set_sample_sum(n * 0.25);
        h.set_bucket(
            [(0.1, 0u64), (1.0, n as u64)]
                .iter()
                .map(|(ub, c)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(*ub);
                    b.set_cumulative_count(*c);
                    b
                })
                .collect(),
        );
        let mut hm = Metric::default();
        hm.set_histogram(h);
        hm.set_label(vec![lp("job", "a\"b\\c\nd")]);
        vec![
            fam("pytest_runs_total", MetricType::COUNTER, vec![runs]),
            fam("pytest_tests_total", MetricType::COUNTER, vec![tt]),
            fam("pytest_tests", MetricType::GAUGE, vec![tg]),
            fam(
                "pytest_test_duration_seconds",
                MetricType::HISTOGRAM,
                vec![hm],
            ),
        ]
    }

    #[test]
    fn writes_runs_in_time_order_per_series() {
        let mut b = Builder::new();
        // Added out of order: the writer sorts each series' points.
        b.add(&run(2.0, 8.0), 1_700_000_060_500);
        b.add(&run(1.0, 4.0), 1_700_000_000_000);
        assert_eq!(b.samples(), 2 * (1 + 1 + 1 + 5));
        assert_eq!(b.series(), 1 + 1 + 1 + 5);
        let text = b.to_text();
        let want = "\
# TYPE pytest_runs counter
# HELP pytest_runs Help of \\\"pytest_runs_total\\\" \\\\ x
pytest_runs_total{job=\"pytest\"} 1 1700000000
pytest_runs_total{job=\"pytest\"} 2 1700000060.500
# TYPE pytest_test_duration_seconds histogram
# HELP pytest_test_duration_seconds Help of \\\"pytest_test_duration_seconds\\\" \\\\ x
pytest_test_duration_seconds_bucket{job=\"a\\\"b\\\\c\\nd\",le=\"0.1\"} 0 1700000000
pytest_test_duration_seconds_bucket{job=\"a\\\"b\\\\c\\nd\",le=\"1.0\"} 1 1700000000
pytest_test_duration_seconds_bucket{job=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 1 1700000000
pytest_test_duration_seconds_count{job=\"a\\\"b\\\\c\\nd\"} 1 1700000000
pytest_test_duration_seconds_sum{job=\"a\\\"b\\\\c\\nd\"} 0.25 1700000000
pytest_test_duration_seconds_bucket{job=\"a\\\"b\\\\c\\nd\",le=\"0.1\"} 0 1700000060.500
pytest_test_duration_seconds_bucket{job=\"a\\\"b\\\\c\\nd\",le=\"1.0\"} 2 1700000060.500
pytest_test_duration_seconds_bucket{job=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 2 1700000060.500
pytest_test_duration_seconds_count{job=\"a\\\"b\\\\c\\nd\"} 2 1700000060.500
pytest_test_duration_seconds_sum{job=\"a\\\"b\\\\c\\nd\"} 0.5 1700000060.500
# TYPE pytest_tests gauge
# HELP pytest_tests Help of \\\"pytest_tests\\\" \\\\ x
pytest_tests{job=\"pytest\",size=\"small\"} 4 1700000000
pytest_tests{job=\"pytest\",size=\"small\"} 4 1700000060.500
# TYPE pytest_tests_total unknown
# HELP pytest_tests_total Help of \\\"pytest_tests_total\\\" \\\\ x
pytest_tests_total{job=\"pytest\",size=\"small\"} 4 1700000000
pytest_tests_total{job=\"pytest\",size=\"small\"} 8 1700000060.500
# EOF
";
        assert_eq!(text, want);
    }

    #[test]
    fn canonical_numbers_follow_prometheus() {
        for (v, s) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (0.5, "0.5"),
            (900.0, "900.0"),
            (300.0, "300.0"),
            (123456.0, "123456.0"),
            (1e6, "1e+06"),
            (1.5e6, "1.5e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (2.5e-7, "2.5e-07"),
            (0.0, "0.0"),
            (-1.0, "-1.0"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(canonical(v), s, "{v}");
        }
    }

    #[test]
    fn numbers_and_timestamps() {
        assert_eq!(number(12.0), "12");
        assert_eq!(number(-0.0), "0");
        assert_eq!(number(85.45454545454545), "85.45454545454545");
        assert_eq!(number(1e300), "1e300");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(timestamp(1_795_703_296_335), "1795703296.335");
        assert_eq!(timestamp(5), "0.005");
        assert_eq!(timestamp(1_795_703_296_000), "1795703296");
        assert_eq!(Builder::new().to_text(), "# EOF\n");
    }
}
