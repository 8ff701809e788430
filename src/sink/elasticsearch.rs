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
//! [`SHOWN_ITEM_ERRORS`], and how many in all), except 429 items (a busy cluster), which are
//! sent again alone ([`ITEM_RETRIES`]). Batches are bounded in bytes; the answer is read as a
//! stream.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::{Method, Url};
use serde::Deserialize;

use super::http::{BodyError, BodyReader, DeliveryError, HttpClient};

/// Item errors named in the message; the rest are counted.
pub const SHOWN_ITEM_ERRORS: usize = 5;

/// Rounds of sending again the items a busy cluster answered 429
/// (`es_rejected_execution_exception`), as Elastic advises, after 0.5 s, 1 s, 2 s (within
/// `--deadline`); an item still refused after them is a failure.
pub const ITEM_RETRIES: u32 = 3;
const ITEM_RETRY_BASE: std::time::Duration = std::time::Duration::from_millis(500);

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

/// Why the events did not all get in.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    #[error(transparent)]
    Refused(#[from] ItemsRefused),
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
    /// Where each action + document pair of the batch starts and ends in `body`.
    pairs: Vec<(usize, usize)>,
    /// Events created, events that were already there (409), events refused.
    pub created: u64,
    pub duplicates: u64,
    pub failed: u64,
    pub requests: u64,
    /// Events sent again after a 429 item.
    pub retried: u64,
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
            pairs: Vec::new(),
            retried: 0,
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
        let start = self.body.len();
        self.body.extend_from_slice(&self.action_head);
        let _ = serde_json::to_writer(&mut self.body, event_id);
        self.body.extend_from_slice(b"}}\n");
        self.body.extend_from_slice(doc);
        self.body.push(b'\n');
        self.pairs.push((start, self.body.len()));
        self.in_batch += 1;
        Ok(())
    }

    /// Sends what is left; then fails with [`ItemsRefused`] when any event was refused.
    pub fn finish(&mut self) -> Result<(), EsError> {
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
        let mut body = std::mem::take(&mut self.body);
        let mut pairs = std::mem::take(&mut self.pairs);
        self.in_batch = 0;
        let mut round = 0u32;
        loop {
            let answer = self.post(&body)?;
            if answer.items.len() != pairs.len() {
                return Err(DeliveryError::BadAnswer {
                    url: super::http::redact(&self.url),
                    message: format!(
                        "{} item(s) in the answer for {} action(s)",
                        answer.items.len(),
                        pairs.len()
                    ),
                });
            }
            // Items the cluster was too busy for (429) go again, alone, after a pause.
            let wait = ITEM_RETRY_BASE * 2u32.saturating_pow(round);
            let can_wait =
                round < ITEM_RETRIES && self.client.remaining().is_none_or(|left| left > wait);
            let mut again = Vec::new();
            let mut again_pairs = Vec::new();
            for (item, (start, end)) in answer.items.into_iter().zip(&pairs) {
                let Some(it) = item.into_values().next() else {
                    self.refused(None, 0, None);
                    continue;
                };
                match (&it.error, it.status) {
                    (None, 200..=299) => self.created += 1,
                    (Some(e), 409) if e.kind == "version_conflict_engine_exception" => {
                        self.duplicates += 1
                    }
                    (_, 429) if can_wait => {
                        again_pairs.push((again.len(), again.len() + end - start));
                        again.extend_from_slice(&body[*start..*end]);
                    }
                    (e, status) => self.refused(it.id.as_deref(), status, e.as_ref()),
                }
            }
            if again.is_empty() {
                break;
            }
            std::thread::sleep(wait);
            round += 1;
            self.retried += again_pairs.len() as u64;
            body = again;
            pairs = again_pairs;
        }
        body.clear();
        pairs.clear();
        self.body = body;
        self.pairs = pairs;
        Ok(())
    }

    /// One request of the batch `body`; its answer read as a stream.
    fn post(&mut self, body: &[u8]) -> Result<BulkAnswer, DeliveryError> {
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
            Some(body),
            "; check --elasticsearch (the cluster's base URL) and --es-index",
            reader,
        )?;
        self.requests += 1;
        Ok(answer)
    }

    /// Counts a refused event; names the first [`SHOWN_ITEM_ERRORS`].
    fn refused(&mut self, id: Option<&str>, status: u16, e: Option<&ItemError>) {
        self.failed += 1;
        if self.shown.len() < SHOWN_ITEM_ERRORS {
            let what = e.map_or_else(
                || "no error given".to_string(),
                |e| match &e.reason {
                    Some(r) => format!("{}: {r}", e.kind),
                    None => e.kind.clone(),
                },
            );
            self.shown
                .push(format!("event {} {status} {what}", id.unwrap_or("?")));
        }
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
