//! Loki's push API (`POST /loki/api/v1/push`, JSON body, gzip), as Grafana documents it
//! (<https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs>):
//!
//! ```json
//! {"streams":[{"stream":{"job":"pytest","kind":"failure"},"values":[["<ns since epoch>","<line>"]]}]}
//! ```
//!
//! Entries are collected per stream (the stream's labels are few and of low cardinality:
//! job, project, branch, event kind; never a test's name) and sent when a batch reaches its
//! byte bound, so memory stays bounded on any run. Within a stream the entries keep the
//! order they were added in, which is time order (callers add them so). Loki answers 204;
//! a 400 (an entry out of order, or older than the stream accepts) is final and its text is
//! shown; 429 and 5xx are retried by [`HttpClient`] (honouring `Retry-After`).

use std::collections::BTreeMap;
use std::io::Write;

use reqwest::{Method, Url};

use super::http::{DeliveryError, HttpClient};

/// The push API's path, appended to `--loki URL` unless the URL already ends in it.
pub const PUSH_PATH: &str = "/loki/api/v1/push";

/// `--loki URL` → the push URL.
pub fn push_url(base: &Url) -> Url {
    let mut u = base.clone();
    let path = u.path().trim_end_matches('/').to_string();
    if !path.ends_with(PUSH_PATH) {
        u.set_path(&format!("{path}{PUSH_PATH}"));
    }
    u
}

/// A stream's labels, in the order given (`job` first).
pub type StreamLabels = Vec<(String, String)>;

/// Batches entries per stream and pushes them.
pub struct LokiSink<'a> {
    client: &'a HttpClient,
    url: Url,
    max_batch: usize,
    /// Streams of the batch being filled, by their encoded label set.
    streams: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Encoded size of the batch so far (uncompressed).
    bytes: usize,
    entries_in_batch: u64,
    /// Entries and requests delivered so far.
    pub sent: u64,
    pub requests: u64,
}

impl<'a> LokiSink<'a> {
    /// `base` is `--loki URL`; a batch is sent when adding an entry would take its
    /// (uncompressed) body over `max_batch` bytes.
    pub fn new(client: &'a HttpClient, base: &Url, max_batch: usize) -> Self {
        LokiSink {
            client,
            url: push_url(base),
            max_batch: max_batch.max(1),
            streams: BTreeMap::new(),
            bytes: 0,
            entries_in_batch: 0,
            sent: 0,
            requests: 0,
        }
    }

    /// Adds one entry to the stream `labels`, at `ts_ns` (nanoseconds since the epoch).
    /// Sends the batch first when this entry would not fit in it.
    pub fn add(
        &mut self,
        labels: &[(&str, &str)],
        ts_ns: i128,
        line: &[u8],
    ) -> Result<(), DeliveryError> {
        let mut key = Vec::with_capacity(64);
        key.push(b'{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                key.push(b',');
            }
            json_str(&mut key, k);
            key.push(b':');
            json_str(&mut key, v);
        }
        key.push(b'}');
        let mut entry = Vec::with_capacity(line.len() + 40);
        entry.extend_from_slice(b"[\"");
        entry.extend_from_slice(ts_ns.to_string().as_bytes());
        entry.extend_from_slice(b"\",");
        // The line is UTF-8 JSON from the encoder; lossy only guards the type.
        json_str(&mut entry, &String::from_utf8_lossy(line));
        entry.push(b']');
        if self.entries_in_batch > 0 && self.bytes + self.cost(&key, &entry) > self.max_batch {
            self.flush()?;
        }
        self.bytes += self.cost(&key, &entry);
        let values = self.streams.entry(key).or_default();
        if !values.is_empty() {
            values.push(b',');
        }
        values.extend_from_slice(&entry);
        self.entries_in_batch += 1;
        Ok(())
    }

    /// What an entry adds to the body: itself and a comma, and its stream when new.
    fn cost(&self, key: &[u8], entry: &[u8]) -> usize {
        entry.len()
            + 1
            + if self.streams.contains_key(key) {
                0
            } else {
                key.len() + 30
            }
    }

    /// Sends what is left.
    pub fn finish(&mut self) -> Result<(), DeliveryError> {
        if self.entries_in_batch > 0 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeliveryError> {
        let body = push_body(&self.streams);
        let gz = gzip(&body).map_err(|e| DeliveryError::Setup(format!("cannot gzip: {e}")))?;
        self.client
            .send(
                Method::POST,
                &self.url,
                &[
                    ("Content-Type", "application/json"),
                    ("Content-Encoding", "gzip"),
                ],
                Some(&gz),
                "; Loki refuses entries older than its reject_old_samples_max_age or behind a \
             stream's newest entry (see docs/events.md, \"Loki\")",
            )
            .map_err(not_loki)?;
        self.sent += self.entries_in_batch;
        self.requests += 1;
        self.streams.clear();
        self.bytes = 0;
        self.entries_in_batch = 0;
        Ok(())
    }
}

/// A 404 or 405 means that no Loki push API answers at the URL (another server on the port,
/// a path prefix missing), not that Loki refused the entries: say so.
fn not_loki(e: DeliveryError) -> DeliveryError {
    match e {
        DeliveryError::Rejected {
            method,
            url,
            status,
            body,
            ..
        } if status.starts_with("404") || status.starts_with("405") => DeliveryError::Rejected {
            hint: "; no Loki push API answers there: check --loki, Loki's base URL (e.g. \
                   http://loki:3100, with any path prefix it is served under)"
                .to_string(),
            method,
            url,
            status,
            body,
        },
        e => e,
    }
}

/// The JSON body of a push: `{"streams":[{"stream":{…},"values":[[ts,line],…]},…]}`.
fn push_body(streams: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    let size: usize = streams.iter().map(|(k, v)| k.len() + v.len() + 32).sum();
    let mut b = Vec::with_capacity(size + 16);
    b.extend_from_slice(b"{\"streams\":[");
    for (i, (labels, values)) in streams.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        b.extend_from_slice(b"{\"stream\":");
        b.extend_from_slice(labels);
        b.extend_from_slice(b",\"values\":[");
        b.extend_from_slice(values);
        b.extend_from_slice(b"]}");
    }
    b.extend_from_slice(b"]}");
    b
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    e.write_all(body)?;
    e.finish()
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_urls() {
        for (given, want) in [
            ("http://loki:3100", "http://loki:3100/loki/api/v1/push"),
            ("http://loki:3100/", "http://loki:3100/loki/api/v1/push"),
            (
                "https://gw/tenant-a/",
                "https://gw/tenant-a/loki/api/v1/push",
            ),
            (
                "http://loki:3100/loki/api/v1/push",
                "http://loki:3100/loki/api/v1/push",
            ),
        ] {
            assert_eq!(push_url(&Url::parse(given).unwrap()).as_str(), want);
        }
    }

    #[test]
    fn bodies_group_entries_by_stream_in_order() {
        let mut streams = BTreeMap::new();
        streams.insert(
            br#"{"job":"pytest","kind":"failure"}"#.to_vec(),
            br#"["1000","{\"a\":1}"],["1001","b"]"#.to_vec(),
        );
        streams.insert(
            br#"{"job":"pytest","kind":"run"}"#.to_vec(),
            br#"["999","r"]"#.to_vec(),
        );
        assert_eq!(
            String::from_utf8(push_body(&streams)).unwrap(),
            r#"{"streams":[{"stream":{"job":"pytest","kind":"failure"},"values":[["1000","{\"a\":1}"],["1001","b"]]},{"stream":{"job":"pytest","kind":"run"},"values":[["999","r"]]}]}"#
        );
    }
}
