//! Elasticsearch's (and OpenSearch's) `_bulk` API, as Elastic documents it
//! (<https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-bulk>):
//! `POST /_bulk`, `Content-Type: application/x-ndjson`, an action line and a document line
//! per event, each ended by a newline:
//!
//! ```text
//! {"create":{"_index":"logs-ptc-default","_id":"<event_id>"}}
//! {"@timestamp":"…","kind":"failure",…}
//! ```
//!
//! `create` with `_id` = the event's deterministic `event_id`: a re-sent event is refused
//! with 409 `version_conflict_engine_exception`, which here means "already delivered" and
//! counts as success, and data streams (which accept only `create`) work. The answer is
//! `{"took":…,"errors":bool,"items":[{"create":{"_index","_id","status","error":{"type","reason"}}}]}`:
//! a 200 with item errors is a failure, reported per item (the first
//! [`SHOWN_ITEM_ERRORS`], and how many in all). Batches are bounded in bytes; the answer
//! is read as a stream.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::{Method, Url};
use serde::Deserialize;

use super::http::{BodyError, BodyReader, DeliveryError, HttpClient};

/// Item errors named in the message; the rest are counted.
pub const SHOWN_ITEM_ERRORS: usize = 5;

/// Some events were refused (a 200 answer whose items hold errors).
#[derive(Debug, thiserror::Error)]
#[error(
    "POST {url}: Elasticsearch refused {failed} of {sent} event(s): {}{}",
    shown.join("; "),
    if *failed > shown.len() as u64 { format!("; and {} more", *failed - shown.len() as u64) } else { String::new() }
)]
pub struct ItemsRefused {
    pub url: String,
    pub failed: u64,
    pub sent: u64,
    pub shown: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    items: Vec<BTreeMap<String, BulkItem>>,
}

#[derive(Debug, Deserialize)]
struct BulkItem {
    #[serde(rename = "_id", default)]
    id: Option<String>,
    status: u16,
    #[serde(default)]
    error: Option<ItemError>,
}

#[derive(Debug, Deserialize)]
struct ItemError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `--elasticsearch URL` → the bulk URL.
pub fn bulk_url(base: &Url) -> Url {
    let mut u = base.clone();
    let path = u.path().trim_end_matches('/').to_string();
    if !path.ends_with("/_bulk") {
        u.set_path(&format!("{path}/_bulk"));
    }
    u
}

/// Batches `create` actions and sends them.
pub struct ElasticsearchSink<'a> {
    client: &'a HttpClient,
    url: Url,
    /// `{"create":{"_index":"<index>","_id":"` — the action line up to the id.
    action_head: Vec<u8>,
    max_batch: usize,
    body: Vec<u8>,
    in_batch: u64,
    /// Events created, events that were already there (409), events refused.
    pub created: u64,
    pub duplicates: u64,
    pub failed: u64,
    pub requests: u64,
    shown: Vec<String>,
}

impl<'a> ElasticsearchSink<'a> {
    pub fn new(client: &'a HttpClient, base: &Url, index: &str, max_batch: usize) -> Self {
        let mut action_head = b"{\"create\":{\"_index\":".to_vec();
        let _ = serde_json::to_writer(&mut action_head, index);
        action_head.extend_from_slice(b",\"_id\":");
        ElasticsearchSink {
            client,
            url: bulk_url(base),
            action_head,
            max_batch: max_batch.max(1),
            body: Vec::new(),
            in_batch: 0,
            created: 0,
            duplicates: 0,
            failed: 0,
            requests: 0,
            shown: Vec::new(),
        }
    }

    /// Adds one event (`doc` is its JSON, one line).
    pub fn add(&mut self, event_id: &str, doc: &[u8]) -> Result<(), DeliveryError> {
        let len = self.action_head.len() + event_id.len() + 6 + doc.len();
        if self.in_batch > 0 && self.body.len() + len > self.max_batch {
            self.flush()?;
        }
        self.body.extend_from_slice(&self.action_head);
        let _ = serde_json::to_writer(&mut self.body, event_id);
        self.body.extend_from_slice(b"}}\n");
        self.body.extend_from_slice(doc);
        self.body.push(b'\n');
        self.in_batch += 1;
        Ok(())
    }

    /// Sends what is left; then fails with [`ItemsRefused`] when any event was refused.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        if self.in_batch > 0 {
            self.flush()?;
        }
        if self.failed > 0 {
            return Err(ItemsRefused {
                url: super::http::redact(&self.url),
                failed: self.failed,
                sent: self.created + self.duplicates + self.failed,
                shown: std::mem::take(&mut self.shown),
            }
            .into());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeliveryError> {
        let reader: BodyReader<BulkAnswer> = Arc::new(|r| {
            serde_json::from_reader(r).map_err(|e| {
                if e.is_io() {
                    BodyError::Io(std::io::Error::other(e.to_string()))
                } else {
                    BodyError::Bad(format!("not a _bulk answer: {e}"))
                }
            })
        });
        let (_, answer) = self.client.send_streaming(
            Method::POST,
            &self.url,
            &[("Content-Type", "application/x-ndjson")],
            Some(&self.body),
            "; check --elasticsearch (the cluster's base URL) and --es-index",
            reader,
        )?;
        self.requests += 1;
        let sent = self.in_batch;
        self.body.clear();
        self.in_batch = 0;
        if answer.items.len() as u64 != sent {
            return Err(DeliveryError::BadAnswer {
                url: super::http::redact(&self.url),
                message: format!(
                    "{} item(s) in the answer for {sent} action(s)",
                    answer.items.len()
                ),
            });
        }
        for item in answer.items {
            let Some(it) = item.into_values().next() else {
                continue;
            };
            match (&it.error, it.status) {
                (None, 200..=299) => self.created += 1,
                (Some(e), 409) if e.kind == "version_conflict_engine_exception" => {
                    self.duplicates += 1
                }
                (e, status) => {
                    self.failed += 1;
                    if self.shown.len() < SHOWN_ITEM_ERRORS {
                        let what = e.as_ref().map_or_else(
                            || "no error given".to_string(),
                            |e| match &e.reason {
                                Some(r) => format!("{}: {r}", e.kind),
                                None => e.kind.clone(),
                            },
                        );
                        self.shown.push(format!(
                            "event {} {status} {what}",
                            it.id.as_deref().unwrap_or("?")
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_urls() {
        for (given, want) in [
            ("http://es:9200", "http://es:9200/_bulk"),
            ("https://es:9200/prefix/", "https://es:9200/prefix/_bulk"),
            ("http://es:9200/_bulk", "http://es:9200/_bulk"),
        ] {
            assert_eq!(bulk_url(&Url::parse(given).unwrap()).as_str(), want);
        }
    }

    #[test]
    fn refusals_are_named_per_item() {
        let e = ItemsRefused {
            url: "http://es:9200/_bulk".into(),
            failed: 7,
            sent: 9,
            shown: vec!["event a 400 mapper_parsing_exception: failed to parse".into()],
        };
        assert_eq!(
            e.to_string(),
            "POST http://es:9200/_bulk: Elasticsearch refused 7 of 9 event(s): event a 400 \
             mapper_parsing_exception: failed to parse; and 6 more"
        );
    }
}
