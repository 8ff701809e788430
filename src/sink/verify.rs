//! `backfill --verify URL`: after a remote-write batch was answered 2xx, ask the receiver's
//! Prometheus query API whether the runs in it are stored. A 2xx alone proves little: an
//! InfluxDB endpoint answers 204 to a remote-write body, and VictoriaMetrics answers 204 to
//! samples outside its retention, and both store nothing.
//!
//! For each group of the batch, one instant query of a range selector,
//! `{__name__=~"pytest_last_run_timestamp_seconds|pytest_runs_total", <group labels>}[W]`,
//! returns the raw samples of the window (Prometheus and VictoriaMetrics alike): every run's
//! `pytest_last_run_timestamp_seconds` must be there at the run's timestamp, and the group's
//! newest `pytest_runs_total` at its cumulative timestamp. Label names that other groups carry
//! and this one does not are matched empty, so that a group is not confused with one that has
//! an extra label. A receiver may take a moment before samples are searchable
//! (VictoriaMetrics flushes about every second), so groups still missing are asked again after
//! each of the given waits.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::{Method, Url};
use serde_json::Value;

use super::http::{DeliveryError, HttpClient};
use crate::encode::openmetrics::escape_label_value;

/// The families looked at: one per run (gauge) and the group's running count.
const RUN_GAUGE: &str = "pytest_last_run_timestamp_seconds";
const RUN_COUNTER: &str = "pytest_runs_total";

/// Waits between attempts while runs are still missing (about 16 s in all).
pub const WAITS: [Duration; 6] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];

/// What one group of a batch must show.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The group key, for messages.
    pub group: String,
    /// `job` and the grouping labels, as the series carry them.
    pub labels: Vec<(String, String)>,
    /// Each run's gauge timestamp, ms.
    pub runs_ms: Vec<i64>,
    /// The group's newest cumulative timestamp, ms.
    pub cumulative_ms: i64,
}

/// What a group lacks.
#[derive(Debug, Clone, PartialEq)]
pub struct Missing {
    pub group: String,
    /// Runs whose gauge sample is not there, ms.
    pub runs_ms: Vec<i64>,
    /// The newest `pytest_runs_total` sample is not there.
    pub cumulative: bool,
}

/// The receiver answered 2xx, but runs just sent are not stored.
#[derive(Debug, thiserror::Error)]
#[error(
    "--verify {verify}: {missing} of {sent} run(s) just sent to {target} are not stored there \
     (first: {first}), although it answered 2xx. Check that --remote-write is the receiver's \
     remote-write path and that the runs are inside its retention (VictoriaMetrics \
     -retentionPeriod, Prometheus --storage.tsdb.retention.time). They are not marked delivered: \
     the next backfill sends them again"
)]
pub struct NotStored {
    pub verify: String,
    pub target: String,
    pub missing: usize,
    pub sent: usize,
    /// The first missing run: its group and time.
    pub first: String,
}

/// The groups of `checks` that are not (all) stored, after asking again after each of
/// `waits`. `absent` are label names that other groups carry; they must be empty here.
pub fn missing(
    client: &HttpClient,
    base: &Url,
    checks: &[Check],
    absent: &BTreeSet<String>,
    waits: &[Duration],
) -> Result<Vec<Missing>, DeliveryError> {
    let mut left: Vec<&Check> = checks.iter().collect();
    let mut waits = waits.iter();
    loop {
        let mut still = Vec::new();
        let mut found = Vec::new();
        for c in left {
            let m = check_group(client, base, c, absent)?;
            if m.runs_ms.is_empty() && !m.cumulative {
                continue;
            }
            still.push(c);
            found.push(m);
        }
        match waits.next() {
            Some(w) if !still.is_empty() => {
                std::thread::sleep(*w);
                left = still;
            }
            _ => return Ok(found),
        }
    }
}

/// `/api/v1/query` under the API's base URL.
pub fn query_url(base: &Url) -> Url {
    let mut u = base.clone();
    let path = u.path().trim_end_matches('/').to_string();
    u.set_path(&format!("{path}/api/v1/query"));
    u
}

/// The selector of a group's two families.
pub fn selector(c: &Check, absent: &BTreeSet<String>) -> String {
    let mut m = vec![format!("__name__=~\"{RUN_GAUGE}|{RUN_COUNTER}\"")];
    let own: BTreeSet<&str> = c.labels.iter().map(|(k, _)| k.as_str()).collect();
    for (k, v) in &c.labels {
        m.push(format!("{k}=\"{}\"", escape_label_value(v)));
    }
    for k in absent {
        if !own.contains(k.as_str()) {
            m.push(format!("{k}=\"\""));
        }
    }
    format!("{{{}}}", m.join(","))
}

/// `ms` as the API's time parameter (seconds, millisecond precision).
fn api_time(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn check_group(
    client: &HttpClient,
    base: &Url,
    c: &Check,
    absent: &BTreeSet<String>,
) -> Result<Missing, DeliveryError> {
    let first = c.runs_ms.iter().fold(c.cumulative_ms, |a, b| a.min(*b));
    let last = c.runs_ms.iter().fold(c.cumulative_ms, |a, b| a.max(*b));
    // Whole seconds, one more than the span: the range is (last - window, last].
    let window = (last - first) / 1000 + 1;
    let mut url = query_url(base);
    url.query_pairs_mut()
        .append_pair("query", &format!("{}[{window}s]", selector(c, absent)))
        .append_pair("time", &api_time(last));
    let shown = super::http::redact(&url);
    let answer = client.send(
        Method::GET,
        &url,
        &[("Accept", "application/json")],
        None,
        "; --verify takes the base URL of the receiver's Prometheus query API (Prometheus \
         http://HOST:9090, VictoriaMetrics http://HOST:8428, Mimir http://HOST/prometheus)",
    )?;
    let stored = stored_samples(&answer.body).map_err(|message| DeliveryError::BadAnswer {
        url: shown,
        message,
    })?;
    let has = |name: &str, ms: i64| stored.get(name).is_some_and(|t| t.contains(&ms));
    Ok(Missing {
        group: c.group.clone(),
        runs_ms: c
            .runs_ms
            .iter()
            .copied()
            .filter(|ms| !has(RUN_GAUGE, *ms))
            .collect(),
        cumulative: !has(RUN_COUNTER, c.cumulative_ms),
    })
}

/// Sample timestamps (ms) per metric name in a `/api/v1/query` answer of a range selector.
pub fn stored_samples(body: &str) -> Result<BTreeMap<String, BTreeSet<i64>>, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!(
            "the query failed: {}",
            v["error"].as_str().unwrap_or("no error text")
        ));
    }
    let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let Some(series) = v["data"]["result"].as_array() else {
        return Err("no data.result in the answer".into());
    };
    for s in series {
        let name = s["metric"]["__name__"].as_str().unwrap_or_default();
        let set = out.entry(name.to_string()).or_default();
        for point in s["values"].as_array().into_iter().flatten() {
            if let Some(t) = point[0].as_f64() {
                set.insert((t * 1000.0).round() as i64);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> Check {
        Check {
            group: r#"{job="pytest",project="a\"b"}"#.into(),
            labels: vec![
                ("job".into(), "pytest".into()),
                ("project".into(), "a\"b".into()),
            ],
            runs_ms: vec![1_000_000, 1_005_000],
            cumulative_ms: 1_006_000,
        }
    }

    #[test]
    fn selects_the_group_and_not_groups_with_more_labels() {
        let absent: BTreeSet<String> = ["branch".into(), "project".into()].into();
        assert_eq!(
            selector(&check(), &absent),
            r#"{__name__=~"pytest_last_run_timestamp_seconds|pytest_runs_total",job="pytest",project="a\"b",branch=""}"#
        );
        assert_eq!(api_time(1_795_929_183_052), "1795929183.052");
        assert_eq!(api_time(5), "0.005");
        let u = Url::parse("http://u:pw@mimir/prometheus/").unwrap();
        assert_eq!(
            query_url(&u).as_str(),
            "http://u:pw@mimir/prometheus/api/v1/query"
        );
    }

    #[test]
    fn reads_sample_times_of_a_matrix_answer() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"pytest_runs_total","job":"pytest"},"values":[[1006,"2"]]},
            {"metric":{"__name__":"pytest_last_run_timestamp_seconds","job":"pytest"},
             "values":[[1000,"1000.5"],[1005.25,"1005.3"]]}]}}"#;
        let got = stored_samples(body).unwrap();
        assert_eq!(got["pytest_runs_total"], BTreeSet::from([1_006_000]));
        assert_eq!(
            got["pytest_last_run_timestamp_seconds"],
            BTreeSet::from([1_000_000, 1_005_250])
        );
        assert_eq!(
            stored_samples(r#"{"status":"error","error":"parse error"}"#).unwrap_err(),
            "the query failed: parse error"
        );
        assert!(stored_samples("<html>")
            .unwrap_err()
            .starts_with("not JSON"));
    }
}
