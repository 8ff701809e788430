//! Pushgateway sink (Pushgateway 1.5+ HTTP API; PROTOCOLS.md §1).
//!
//! `PUT` (or `POST`) of text 0.0.4 to `/metrics/job/<job>{/<label>/<value>}`, gzip body,
//! grouping values that hold `/` or are empty written in the `@base64` (URL-safe) form.
//! Before a push the group's current cumulative values are read from `/api/v1/metrics`
//! and handed back as [`Totals`], so counters and the histogram keep growing across runs.

use std::collections::BTreeMap;
use std::io::Write;

use base64::Engine;
use reqwest::{Method, Url};
use serde_json::Value;

use super::http::{DeliveryError, HttpClient};
use crate::derive::metrics::Labels;
use crate::derive::totals::{HistTotal, Totals};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushMethod {
    /// Replace the whole group.
    #[default]
    Put,
    /// Replace only the pushed metric names in the group.
    Post,
}

/// Where and how to push.
#[derive(Debug, Clone, PartialEq)]
pub struct PushgatewayConfig {
    pub url: Url,
    pub job: String,
    /// Grouping labels after `job`, in URL order. Empty values are allowed (sent as `@base64/=`).
    pub grouping: Labels,
    pub method: PushMethod,
    pub gzip: bool,
}

impl PushgatewayConfig {
    /// `/metrics/job/<job>/<k>/<v>…`, with `@base64` where a value needs it.
    pub fn group_path(&self) -> String {
        let mut p = String::from("/metrics");
        push_segment(&mut p, "job", &self.job);
        for (k, v) in &self.grouping {
            push_segment(&mut p, k, v);
        }
        p
    }

    pub fn group_url(&self) -> Url {
        let mut u = self.url.clone();
        let base = u.path().trim_end_matches('/').to_string();
        u.set_path(&format!("{base}{}", self.group_path()));
        u
    }

    fn api_url(&self) -> Url {
        let mut u = self.url.clone();
        let base = u.path().trim_end_matches('/').to_string();
        u.set_path(&format!("{base}/api/v1/metrics"));
        u
    }

    /// The group's labels as the gateway reports them (empty values dropped).
    fn group_labels(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("job".to_string(), self.job.clone());
        for (k, v) in &self.grouping {
            if !v.is_empty() {
                m.insert(k.clone(), v.clone());
            }
        }
        m
    }
}

fn push_segment(p: &mut String, k: &str, v: &str) {
    p.push('/');
    if v.is_empty() || v.contains('/') {
        p.push_str(k);
        p.push_str("@base64/");
        if v.is_empty() {
            p.push('=');
        } else {
            p.push_str(&base64::engine::general_purpose::URL_SAFE.encode(v));
        }
    } else {
        p.push_str(k);
        p.push('/');
        p.push_str(&percent_encode(v));
    }
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters pass).
fn percent_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads the group's cumulative families from `GET /api/v1/metrics`. `None` when the
/// group does not exist yet.
pub fn read_totals(
    client: &HttpClient,
    cfg: &PushgatewayConfig,
) -> Result<Option<Totals>, DeliveryError> {
    let url = cfg.api_url();
    let ans = client.send(
        Method::GET,
        &url,
        &[("Accept", "application/json")],
        None,
        " (the Pushgateway API /api/v1/metrics needs Pushgateway 1.2 or newer; or push with --no-accumulate)",
    )?;
    let v: Value = serde_json::from_str(&ans.body).map_err(|e| DeliveryError::BadAnswer {
        url: super::http::redact(&url),
        message: format!("not JSON: {e}"),
    })?;
    Ok(totals_from_api(&v, &cfg.group_labels()))
}

/// Finds the group in an `/api/v1/metrics` answer and reads the cumulative families.
pub fn totals_from_api(v: &Value, group: &BTreeMap<String, String>) -> Option<Totals> {
    let groups = v.get("data")?.as_array()?;
    let g = groups.iter().find(|g| {
        let Some(labels) = g.get("labels").and_then(Value::as_object) else {
            return false;
        };
        let have: BTreeMap<String, String> = labels
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .filter(|(k, v)| !v.is_empty() && (k != "instance" || group.contains_key("instance")))
            .collect();
        &have == group
    })?;
    let mut t = Totals::default();
    let num = |v: &Value| -> f64 {
        v.as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .or_else(|| v.as_f64())
            .unwrap_or(0.0)
    };
    let series = |name: &str| -> Vec<&Value> {
        g.get(name)
            .and_then(|f| f.get("metrics"))
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    };
    let label = |m: &Value, k: &str| -> String {
        m.get("labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    for m in series("pytest_runs_total") {
        t.runs += num(m.get("value")?);
    }
    for m in series("pytest_tests_total") {
        *t.tests
            .entry((label(m, "size"), label(m, "outcome")))
            .or_default() += num(m.get("value")?);
    }
    for m in series("pytest_timing_violations_total") {
        *t.timing.entry(label(m, "size")).or_default() += num(m.get("value")?);
    }
    for m in series("pytest_flaky_tests_total") {
        *t.flaky.entry(label(m, "size")).or_default() += num(m.get("value")?);
    }
    for m in series("ci_test_failures_total") {
        *t.failures.entry(label(m, "failure_type")).or_default() += num(m.get("value")?);
    }
    for m in series("pytest_test_duration_seconds") {
        let mut bounds: Vec<(f64, f64)> = m
            .get("buckets")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| {
                        let ub = k.parse::<f64>().ok()?;
                        ub.is_finite().then(|| (ub, num(v)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        t.durations.insert(
            (label(m, "size"), label(m, "outcome")),
            HistTotal {
                bounds: bounds.iter().map(|b| b.0).collect(),
                cumulative: bounds.iter().map(|b| b.1).collect(),
                sum: m.get("sum").map(num).unwrap_or(0.0),
                count: m.get("count").map(num).unwrap_or(0.0),
            },
        );
    }
    Some(t)
}

/// Pushes an exposition to the group.
pub fn push(client: &HttpClient, cfg: &PushgatewayConfig, text: &str) -> Result<(), DeliveryError> {
    let url = cfg.group_url();
    let method = match cfg.method {
        PushMethod::Put => Method::PUT,
        PushMethod::Post => Method::POST,
    };
    let mut headers = vec![("Content-Type", crate::encode::text::CONTENT_TYPE)];
    let body = if cfg.gzip {
        headers.push(("Content-Encoding", "gzip"));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes())
            .and_then(|_| enc.finish())
            .map_err(|e| DeliveryError::Setup(format!("cannot gzip the body: {e}")))?
    } else {
        text.as_bytes().to_vec()
    };
    client.send(
        method,
        &url,
        &headers,
        Some(&body),
        "; fix what the gateway says (a metric of another type with the same name in another group? \
         an old Pushgateway without gzip support: try --no-gzip)",
    )?;
    Ok(())
}

/// Deletes the group (`DELETE`, answered 202 even when the group does not exist).
pub fn delete(client: &HttpClient, cfg: &PushgatewayConfig) -> Result<(), DeliveryError> {
    client.send(Method::DELETE, &cfg.group_url(), &[], None, "")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(grouping: &[(&str, &str)]) -> PushgatewayConfig {
        PushgatewayConfig {
            url: Url::parse("http://gw:9091/").unwrap(),
            job: "pytest".into(),
            grouping: grouping
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            method: PushMethod::Put,
            gzip: true,
        }
    }

    #[test]
    fn grouping_key_paths() {
        assert_eq!(
            cfg(&[("project", "app"), ("branch", "feature/x"), ("os", "")]).group_path(),
            "/metrics/job/pytest/project/app/branch@base64/ZmVhdHVyZS94/os@base64/="
        );
        assert_eq!(
            cfg(&[("project", "a b")]).group_path(),
            "/metrics/job/pytest/project/a%20b"
        );
        let mut c = cfg(&[]);
        c.url = Url::parse("http://gw:9091/prefix/").unwrap();
        assert_eq!(
            c.group_url().as_str(),
            "http://gw:9091/prefix/metrics/job/pytest"
        );
    }

    #[test]
    fn reads_totals_of_the_right_group() {
        let v: Value = serde_json::from_str(r#"{"status":"success","data":[
          {"labels":{"job":"pytest","project":"other"},
           "pytest_runs_total":{"type":"COUNTER","metrics":[{"labels":{},"value":"9"}]}},
          {"labels":{"job":"pytest","project":"app"},
           "pytest_runs_total":{"type":"COUNTER","metrics":[{"labels":{"instance":"","job":"pytest","project":"app"},"value":"2"}]},
           "pytest_tests_total":{"type":"COUNTER","metrics":[{"labels":{"size":"small","outcome":"passed"},"value":"10"}]},
           "pytest_flaky_tests_total":{"type":"COUNTER","metrics":[{"labels":{"size":"small"},"value":"4"}]},
           "pytest_test_duration_seconds":{"type":"HISTOGRAM","metrics":[{"labels":{"size":"small","outcome":"passed"},
              "buckets":{"+Inf":"3","0.1":"1","1":"2"},"count":"3","sum":"4.5"}]}}]}"#).unwrap();
        let t = totals_from_api(&v, &cfg(&[("project", "app")]).group_labels()).unwrap();
        assert_eq!(t.runs, 2.0);
        assert_eq!(t.tests[&("small".into(), "passed".into())], 10.0);
        assert_eq!(t.flaky["small"], 4.0);
        let h = &t.durations[&("small".into(), "passed".into())];
        assert_eq!(h.bounds, vec![0.1, 1.0]);
        assert_eq!(h.cumulative, vec![1.0, 2.0]);
        assert_eq!((h.count, h.sum), (3.0, 4.5));
        assert!(totals_from_api(&v, &cfg(&[("project", "nope")]).group_labels()).is_none());
    }
}
