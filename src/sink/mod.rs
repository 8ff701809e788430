//! Stage 4: delivery. The only stage that touches the network or writes outputs.
//!
//! `http`: the shared client (timeouts, TLS, auth, retries); `pushgateway`: push and
//! delete a group, read its running totals; `textfile`: node_exporter's textfile collector
//! (atomic replace, running totals read back from the previous file); `remote_write`:
//! Prometheus remote write 1.0 receivers; `verify`: asks a receiver's query API whether
//! what it acknowledged is stored; `openmetrics_file`: an OpenMetrics file for promtool,
//! written atomically. Events (docs/events.md): `events_file` (NDJSON to a file or
//! stdout), `loki` (Loki's push API) and `elasticsearch` (the `_bulk` API).

pub mod atomic;
pub mod elasticsearch;
pub mod events_file;
pub mod exact_push;
pub mod exposition;
pub mod gateway_view;
pub mod http;
pub mod loki;
pub mod openmetrics_file;
pub mod pending;
pub mod pushgateway;
pub mod remote_write;
pub mod textfile;
pub mod verify;
