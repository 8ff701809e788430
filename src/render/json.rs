//! `ptc-metrics inspect --format json`: the facts of the terminal report as one JSON
//! document, schema version 1, documented field by field in `docs/inspect-json.md`.
//!
//! Pure: [`render`] returns the text. Keys are sorted (serde_json's map), test ids are given
//! in full (no shortening, no escaping beyond JSON's), and every list of tests says how
//! many tests it was cut from, so a consumer knows when `--top` hid some.

use serde_json::{json, Map, Value};

use crate::derive::inspect::{BandStatus, Inspection};
use crate::derive::TestFacts;
use crate::model::{FailureType, Outcome, Resource, Size};

/// The schema version this module writes. Bumped only on an incompatible change; new
/// fields may be added within a version.
pub const SCHEMA_VERSION: u64 = 1;

/// Renders the document, pretty-printed, with a final newline.
pub fn render(i: &Inspection) -> String {
    let mut s = serde_json::to_string_pretty(&document(i)).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// The document as a JSON value.
pub fn document(i: &Inspection) -> Value {
    let s = &i.summary;
    let sizes = i.sizes();
    let by_size = |per: &[u64; 6]| -> Value {
        Value::Object(
            sizes
                .iter()
                .map(|z| (z.as_str().to_string(), json!(per[z.index()])))
                .collect(),
        )
    };
    let list = |tests: &[TestFacts], total: u64| -> Value {
        json!({
            "total": total,
            "tests": tests.iter().map(test).collect::<Vec<_>>(),
            "truncated": (tests.len() as u64) < total,
        })
    };

    let mut outcome_rows = Map::new();
    let mut totals = [0u64; 5];
    for z in &sizes {
        let row = s.tests[z.index()];
        let mut m = Map::new();
        for o in Outcome::ALL {
            m.insert(o.as_str().into(), json!(row[o.index()]));
            totals[o.index()] += row[o.index()];
        }
        m.insert("total".into(), json!(s.size_count(*z)));
        outcome_rows.insert(z.as_str().into(), Value::Object(m));
    }
    let mut total_row = Map::new();
    for o in Outcome::ALL {
        total_row.insert(o.as_str().into(), json!(totals[o.index()]));
    }
    total_row.insert("total".into(), json!(s.total_tests()));

    let distribution = i.distribution.as_ref().map(|d| {
        let sized_sizes: Map<String, Value> = d
            .sizes
            .iter()
            .map(|(z, n, pct)| {
                (
                    z.as_str().to_string(),
                    json!({
                        "tests": n,
                        "share": *n as f64 / d.sized as f64,
                        "percentage": pct,
                    }),
                )
            })
            .collect();
        let buckets: Vec<Value> = d
            .bands
            .iter()
            .map(|b| {
                json!({
                    "name": b.band.name,
                    "sizes": b.band.sizes.iter().map(|z| z.as_str()).collect::<Vec<_>>(),
                    "tests": b.tests,
                    "percentage": b.percentage,
                    "target": b.band.target,
                    "tolerance": b.band.tolerance,
                    "min": b.band.min(),
                    "max": b.band.max(),
                    "status": b.status.as_str(),
                })
            })
            .collect();
        json!({
            "sized_tests": d.sized,
            "not_counted": {
                "unsized": s.size_count(Size::Unsized),
                "unknown": s.size_count(Size::Unknown),
            },
            "sizes": sized_sizes,
            "buckets": buckets,
            "within_targets": d.bands.iter().all(|b| b.status == BandStatus::Within),
            "first_outside": d.first_outside().map(|b| b.band.name),
        })
    });

    let slowest: Map<String, Value> = sizes
        .iter()
        .map(|z| {
            (
                z.as_str().to_string(),
                list(&i.slowest[z.index()], s.size_count(*z)),
            )
        })
        .collect();

    let mut records = resources(&s.hermeticity.map(|n| n as u32));
    let record_total: u64 = s.hermeticity.iter().sum();
    if let Value::Object(m) = &mut records {
        m.insert("total".into(), json!(record_total));
    }
    let mut hermeticity = list(&i.hermeticity, i.hermeticity_tests);
    if let Value::Object(m) = &mut hermeticity {
        m.insert("records".into(), records);
    }

    let coverage = s.coverage.as_ref().map(|c| {
        json!({
            "percentage": c.percentage(),
            "lines_valid": c.lines_valid,
            "lines_covered": c.lines_covered,
            "uncovered_lines": c.lines_valid - c.lines_covered,
            "files_with_uncovered_lines": i.coverage_files,
            "files": c.uncovered.iter().take(i.top)
                .map(|(f, n)| json!({"file": f, "uncovered_lines": n}))
                .collect::<Vec<_>>(),
            "truncated": c.uncovered.len().min(i.top) < i.coverage_files,
            "modules_total": c.modules.len(),
            "modules": c.modules.iter().take(i.top)
                .map(|m| json!({
                    "module": m.module,
                    "percentage": m.percentage(),
                    "lines_valid": m.lines_valid,
                    "lines_covered": m.lines_covered,
                }))
                .collect::<Vec<_>>(),
            "modules_truncated": c.modules.len() > i.top,
        })
    });

    let failures: Map<String, Value> = FailureType::ALL
        .iter()
        .map(|f| (f.as_str().to_string(), json!(s.failures[f.index()])))
        .collect();

    let mut near = list(&i.near_limit, s.near_limit.iter().sum());
    if let Value::Object(m) = &mut near {
        m.insert("ratio".into(), json!(i.near_limit_ratio));
        m.insert("by_size".into(), by_size(&s.near_limit));
    }
    let with_sizes = |mut v: Value, per: &[u64; 6]| -> Value {
        if let Value::Object(m) = &mut v {
            m.insert("by_size".into(), by_size(per));
        }
        v
    };

    json!({
        "schema_version": SCHEMA_VERSION,
        "generator": format!("ptc-metrics {}", env!("CARGO_PKG_VERSION")),
        "top": i.top,
        "run": {
            "tests": s.total_tests(),
            "testcase_elements": s.elements,
            "suite_duration_seconds": s.suite_duration,
            "start_timestamp_seconds": (s.timestamp > 0.0).then_some(s.timestamp),
        },
        "outcomes": {
            "by_size": outcome_rows,
            "total": total_row,
        },
        "failures_by_type": failures,
        "distribution": distribution,
        "timing_violations": with_sizes(
            list(&i.timing, s.timing_violations.iter().sum()),
            &s.timing_violations,
        ),
        "baseline_violations": with_sizes(
            list(&i.baseline, s.baseline_violations.iter().sum()),
            &s.baseline_violations,
        ),
        "near_limit": near,
        "flaky": with_sizes(list(&i.flaky, s.flaky.iter().sum()), &s.flaky),
        "slowest": slowest,
        "hermeticity": hermeticity,
        "coverage": coverage,
        "warnings": i.warnings,
    })
}

fn resources(per: &[u32; 5]) -> Value {
    Value::Object(
        Resource::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), json!(per[r.index()])))
            .collect(),
    )
}

/// One test, the same object in every list.
fn test(f: &TestFacts) -> Value {
    let limit = f.size.limit_seconds();
    json!({
        "id": f.id,
        "size": f.size.as_str(),
        "outcome": f.outcome.as_str(),
        "duration_seconds": f.duration,
        "limit_seconds": limit,
        "share_of_limit": limit.map(|l| f.duration / l),
        "timing_violation": f.timing,
        "baseline_violation": f.baseline,
        "near_limit": f.near_limit,
        "flaky": f.flaky,
        "reruns": f.reruns,
        "hermeticity": resources(&f.hermeticity),
        "failure_type": f.failure_type.map(|t| t.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::inspect::{CollectConfig, Collector};
    use crate::derive::Summary;

    #[test]
    fn empty_run_is_a_valid_document() {
        let cfg = CollectConfig::default();
        let i = Collector::new(&cfg).finish(Summary::default(), &cfg, 0.8, 0);
        let v: Value = serde_json::from_str(&render(&i)).unwrap();
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["run"]["tests"], 0);
        assert_eq!(v["distribution"], Value::Null);
        assert_eq!(v["coverage"], Value::Null);
        assert_eq!(v["run"]["start_timestamp_seconds"], Value::Null);
        // The four real sizes always have a row.
        assert_eq!(v["outcomes"]["by_size"].as_object().unwrap().len(), 4);
        assert_eq!(v["timing_violations"]["truncated"], false);
        assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
    }
}
