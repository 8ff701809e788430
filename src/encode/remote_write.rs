//! Prometheus remote write 1.0 (the 1.0 specification): protobuf `WriteRequest`, snappy block
//! format (never the framed format), samples with millisecond timestamps.
//!
//! The four messages are declared by hand with `prost` derives (no protoc, no build
//! script). Families become one series per label set with `__name__` and labels sorted by
//! name; a histogram becomes `_bucket{le}` series (cumulative, with `le="+Inf"` = count),
//! `_sum` and `_count`. The `le` values are spelled exactly as the text encoder (and so the
//! Pushgateway path) spells them (`0.1`, `1`, `+Inf`), so that backfilled and scraped data
//! are the same series in Prometheus 2.x.
//!
//! A [`Batch`] gathers samples of many runs, one `TimeSeries` per label set with its
//! samples in time order, and knows roughly how large its protobuf encoding is, so that a
//! caller can cut requests under a byte budget far below the 32 MiB receivers accept.

use std::collections::HashMap;

use prometheus::proto::{MetricFamily, MetricType};
use prost::Message;

/// `Content-Type` of a remote-write 1.0 request.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// `Content-Encoding` of a remote-write 1.0 request (snappy block format).
pub const CONTENT_ENCODING: &str = "snappy";
/// `X-Prometheus-Remote-Write-Version` of remote write 1.0.
pub const VERSION: &str = "0.1.0";

/// `prometheus.WriteRequest` (fields 2 and 3 are reserved in 1.0).
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: the full label set and its samples in time order.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// A request that cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot snappy-compress a remote-write request of {len} bytes: {message}")]
pub struct EncodeError {
    pub len: usize,
    pub message: String,
}

/// One sample-to-be of a family: its full label set (sorted, with `__name__`) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// From a counter or histogram: a cumulative family (METRICS.md §3).
    pub cumulative: bool,
}

/// Flattens families into points: gauges and counters one each, histograms into
/// `_bucket{le}` (with `+Inf`), `_sum` and `_count`. Empty label values are dropped.
pub fn points(families: &[MetricFamily]) -> Vec<Point> {
    let mut out = Vec::new();
    for f in families {
        let name = f.name();
        let ty = f.get_field_type();
        let cumulative = matches!(ty, MetricType::COUNTER | MetricType::HISTOGRAM);
        for m in f.get_metric() {
            let base: Vec<(String, String)> = m
                .get_label()
                .iter()
                .filter(|l| !l.value().is_empty())
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect();
            let mut push = |suffix: &str, extra: Option<(&str, String)>, value: f64| {
                let mut labels = base.clone();
                labels.push(("__name__".to_string(), format!("{name}{suffix}")));
                if let Some((k, v)) = extra {
                    labels.push((k.to_string(), v));
                }
                labels.sort();
                out.push(Point {
                    labels,
                    value,
                    cumulative,
                });
            };
            match ty {
                MetricType::COUNTER => push("", None, m.get_counter().get_value()),
                MetricType::GAUGE => push("", None, m.get_gauge().get_value()),
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut has_inf = false;
                    for b in h.get_bucket() {
                        let ub = b.upper_bound();
                        has_inf |= ub.is_infinite() && ub > 0.0;
                        push(
                            "_bucket",
                            Some(("le", le_value(ub))),
                            b.cumulative_count() as f64,
                        );
                    }
                    if !has_inf {
                        push(
                            "_bucket",
                            Some(("le", "+Inf".to_string())),
                            h.get_sample_count() as f64,
                        );
                    }
                    push("_sum", None, h.get_sample_sum());
                    push("_count", None, h.get_sample_count() as f64);
                }
                // ptc-metrics writes no summaries or untyped families.
                _ => {}
            }
        }
    }
    out
}

/// How many points [`points`] makes of `families`, without making them.
pub fn point_count(families: &[MetricFamily]) -> usize {
    families
        .iter()
        .map(|f| match f.get_field_type() {
            MetricType::COUNTER | MetricType::GAUGE => f.get_metric().len(),
            MetricType::HISTOGRAM => f
                .get_metric()
                .iter()
                .map(|m| {
                    let b = m.get_histogram().get_bucket();
                    let inf = b
                        .iter()
                        .any(|x| x.upper_bound().is_infinite() && x.upper_bound() > 0.0);
                    b.len() + usize::from(!inf) + 2
                })
                .sum(),
            _ => 0,
        })
        .sum()
}

/// A bucket bound as the text 0.0.4 encoder writes it (`0.1`, `1`, `900`, `+Inf`).
pub fn le_value(ub: f64) -> String {
    if ub.is_infinite() {
        if ub > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        ub.to_string()
    }
}

/// Samples of many series, cut into requests by the caller.
#[derive(Debug, Default)]
pub struct Batch {
    index: HashMap<Vec<(String, String)>, usize>,
    series: Vec<TimeSeries>,
    approx_bytes: usize,
    samples: usize,
}

/// Encoded size of one sample inside a `TimeSeries` (tag, length, double, int64 ms).
const SAMPLE_BYTES: usize = 2 + 9 + 1 + 7;

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a sample to the series `labels` (sorted, with `__name__`). Samples of a series
    /// should come in time order; [`Batch::request`] sorts them anyway.
    pub fn push(&mut self, labels: &[(String, String)], timestamp_ms: i64, value: f64) {
        let sample = Sample {
            value,
            timestamp: timestamp_ms,
        };
        if let Some(&i) = self.index.get(labels) {
            self.series[i].samples.push(sample);
        } else {
            let ls: Vec<Label> = labels
                .iter()
                .map(|(n, v)| Label {
                    name: n.clone(),
                    value: v.clone(),
                })
                .collect();
            self.approx_bytes += 4 + labels
                .iter()
                .map(|(n, v)| n.len() + v.len() + 6)
                .sum::<usize>();
            self.index.insert(labels.to_vec(), self.series.len());
            self.series.push(TimeSeries {
                labels: ls,
                samples: vec![sample],
            });
        }
        self.approx_bytes += SAMPLE_BYTES;
        self.samples += 1;
    }

    /// About the size of the protobuf encoding (within a few percent).
    pub fn approx_bytes(&self) -> usize {
        self.approx_bytes
    }

    pub fn samples(&self) -> usize {
        self.samples
    }

    pub fn series(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples == 0
    }

    /// The request: series in insertion order, each series' samples in time order with
    /// exact duplicates (same timestamp and value) removed.
    pub fn request(&self) -> WriteRequest {
        let mut ts = self.series.clone();
        for s in &mut ts {
            s.samples.sort_by_key(|x| x.timestamp);
            s.samples.dedup_by(|a, b| {
                a.timestamp == b.timestamp && a.value.to_bits() == b.value.to_bits()
            });
        }
        WriteRequest { timeseries: ts }
    }

    /// The HTTP body: the request's protobuf, snappy block-compressed.
    pub fn body(&self) -> Result<Vec<u8>, EncodeError> {
        compress(&self.request())
    }
}

/// Protobuf-encodes and snappy-compresses (block format) a request.
pub fn compress(req: &WriteRequest) -> Result<Vec<u8>, EncodeError> {
    let raw = req.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .map_err(|e| EncodeError {
            len: raw.len(),
            message: e.to_string(),
        })
}

/// Decompresses and decodes a body (for tests and diagnostics).
pub fn decode(body: &[u8]) -> Result<WriteRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("not snappy block data: {e}"))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| format!("not a WriteRequest: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::metrics::families;
    use crate::derive::totals::Totals;
    use crate::derive::{summarize, DeriveConfig};
    use crate::read::{read_run, Inputs};

    fn fixture_families() -> Vec<MetricFamily> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pytest-9.2");
        let run = read_run(&Inputs {
            reports: vec![dir.join("junit-xunit2.xml")],
            size_reports: vec![dir.join("size-report.json")],
            coverage: vec![dir.join("coverage.xml")],
            junit_prefix: String::new(),
        })
        .unwrap();
        let s = summarize(&run, &DeriveConfig::default(), None);
        let t = Totals::of_run(&s);
        families(
            &s,
            &t,
            &vec![
                ("job".into(), "pytest".into()),
                ("project".into(), "shop".into()),
            ],
        )
    }

    /// `test_module_coverage_percentage{module}` goes wherever the other coverage families
    /// go: text exposition, OpenMetrics and remote write (47 of 55 lines of the fixture's
    /// one package, src.ledgerkit).
    #[test]
    fn module_coverage_reaches_every_encoding() {
        let fams = fixture_families();
        let want = 4700.0 / 55.0;
        let pts = points(&fams);
        let p = pts
            .iter()
            .find(|p| {
                p.labels
                    .contains(&("__name__".into(), "test_module_coverage_percentage".into()))
            })
            .expect("a remote-write point");
        assert!(p
            .labels
            .contains(&("module".into(), "src.ledgerkit".into())));
        assert!((p.value - want).abs() < 1e-9 && !p.cumulative);
        let text = crate::encode::text::encode(&fams).unwrap();
        assert!(text.contains(
            "# TYPE test_module_coverage_percentage gauge\n\
             test_module_coverage_percentage{job=\"pytest\",module=\"src.ledgerkit\",project=\"shop\"} 85.45454545454545\n"
        ), "{text}");
        let mut om = crate::encode::openmetrics::Builder::new();
        om.add(&fams, 1_000);
        let om = om.to_text();
        assert!(
            om.contains("# TYPE test_module_coverage_percentage gauge\n"),
            "{om}"
        );
        assert!(om.contains(
            "test_module_coverage_percentage{job=\"pytest\",module=\"src.ledgerkit\",project=\"shop\"} 85.45454545454545 1\n"
        ), "{om}");
    }

    #[test]
    fn flattens_histograms_and_sorts_labels() {
        let fams = fixture_families();
        let pts = points(&fams);
        assert_eq!(point_count(&fams), pts.len());
        let names: Vec<&str> = pts
            .iter()
            .map(|p| {
                p.labels
                    .iter()
                    .find(|(k, _)| k == "__name__")
                    .unwrap()
                    .1
                    .as_str()
            })
            .collect();
        assert!(names.contains(&"pytest_runs_total"));
        assert!(names.contains(&"pytest_test_duration_seconds_bucket"));
        assert!(names.contains(&"pytest_test_duration_seconds_sum"));
        for p in &pts {
            let mut sorted = p.labels.clone();
            sorted.sort();
            assert_eq!(sorted, p.labels);
            assert!(p.labels.iter().all(|(_, v)| !v.is_empty()));
            let name = &p.labels.iter().find(|(k, _)| k == "__name__").unwrap().1;
            assert_eq!(
                p.cumulative,
                name.ends_with("_total") || name.starts_with("pytest_test_duration_seconds"),
                "{name}"
            );
        }
        // Every histogram has a +Inf bucket equal to its count, and Go-style bounds.
        let les: Vec<&str> = pts
            .iter()
            .flat_map(|p| p.labels.iter().filter(|(k, _)| k == "le"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(les.contains(&"+Inf") && les.contains(&"1") && les.contains(&"0.1"));
        assert!(!les.iter().any(|l| l.contains(".0")));
    }

    #[test]
    fn batch_round_trips_through_snappy_and_protobuf() {
        let pts = points(&fixture_families());
        let mut b = Batch::new();
        for p in &pts {
            b.push(&p.labels, 2_000, p.value);
        }
        for p in &pts {
            b.push(&p.labels, 1_000, p.value);
        }
        let exact = b.request().encode_to_vec().len();
        let approx = b.approx_bytes();
        assert!(
            approx as f64 > exact as f64 * 0.8 && (approx as f64) < exact as f64 * 1.3,
            "approx {approx} vs exact {exact}"
        );
        for p in &pts {
            b.push(&p.labels, 1_000, p.value);
        }
        assert_eq!(b.series(), pts.len());
        assert_eq!(b.samples(), pts.len() * 3);
        let body = b.body().unwrap();
        let req = decode(&body).unwrap();
        assert_eq!(req.timeseries.len(), pts.len());
        for ts in &req.timeseries {
            let t: Vec<i64> = ts.samples.iter().map(|s| s.timestamp).collect();
            assert_eq!(t, vec![1_000, 2_000], "sorted, duplicates dropped");
        }
        // Block format: no stream identifier chunk of the framed format.
        assert!(!body.starts_with(b"\xff\x06\x00\x00sNaPpY"));
    }

    #[test]
    fn le_values_match_the_text_encoder() {
        assert_eq!(le_value(0.1), "0.1");
        assert_eq!(le_value(1.0), "1");
        assert_eq!(le_value(900.0), "900");
        assert_eq!(le_value(f64::INFINITY), "+Inf");
    }
}
