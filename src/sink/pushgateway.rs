//! Pushgateway sink (Pushgateway 1.5+ HTTP API): the group's URL, `PUT` (or `POST`) of text
//! 0.0.4 to `/metrics/job/<job>{/<label>/<value>}` with a gzip body, grouping values that
//! hold `/` or are empty written in the `@base64` (URL-safe) form, and `DELETE`.
//!
//! Reading the gateway is [`super::gateway_view`]; adding a run to the group's counters
//! exactly, also under concurrent pushes, is [`super::exact_push`].

use std::collections::BTreeMap;
use std::io::Write;

use base64::Engine;
use reqwest::{Method, Url};

use super::http::{DeliveryError, HttpClient};
use crate::derive::metrics::Labels;

/// The grouping label of a pending push's own group ([`super::exact_push`]).
pub const PENDING_LABEL: &str = "ptc_push";
/// Before the family names of a pending push.
pub const PENDING_PREFIX: &str = "ptc_pending_";
/// The ids of the pushes a group's counters include.
pub const LEDGER_FAMILY: &str = "ptc_push_ledger";

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

    /// The gateway's own exposition, `/metrics`: every group, as Prometheus scrapes it.
    pub fn metrics_url(&self) -> Url {
        let mut u = self.url.clone();
        let base = u.path().trim_end_matches('/').to_string();
        u.set_path(&format!("{base}/metrics"));
        u
    }

    /// The group of a pending push of this group (`ptc_push=<id>` added to the grouping).
    pub fn pending(&self, id: u64) -> PushgatewayConfig {
        let mut c = self.clone();
        c.grouping
            .push((PENDING_LABEL.to_string(), format!("{id:x}")));
        c.method = PushMethod::Put;
        c
    }

    /// The group's labels as the gateway reports them (empty values dropped).
    pub fn group_labels(&self) -> BTreeMap<String, String> {
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
    client
        .send(
            method,
            &url,
            &headers,
            Some(&body),
            "; fix what the gateway says (a metric of another type with the same name in another group? \
             an old Pushgateway without gzip support: try --no-gzip)",
        )
        .map_err(|e| not_a_gateway(e, &cfg.url))?;
    Ok(())
}

/// A 404 or 405 to a push means that no Pushgateway answers there (another server on that
/// port, or a path prefix missing): say so instead of "fix what the gateway says".
fn not_a_gateway(e: DeliveryError, base: &Url) -> DeliveryError {
    match e {
        DeliveryError::Rejected {
            method,
            url,
            status,
            body,
            ..
        } if status.starts_with("404") || status.starts_with("405") => DeliveryError::Rejected {
            hint: format!(
                "; no Pushgateway answers at {}: check the port of --gateway (a Pushgateway \
                 listens on 9091 unless told otherwise) and any path prefix it is served \
                 under (http://HOST/PREFIX)",
                crate::sink::http::redact(base)
            ),
            method,
            url,
            status,
            body,
        },
        e => e,
    }
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
}
