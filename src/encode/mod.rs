//! Stage 3: metric families to bytes on the wire.
//!
//! `text`: Prometheus text exposition format 0.0.4 (METRICS.md §4), for the Pushgateway,
//! stdout and the node_exporter textfile collector. `openmetrics`: OpenMetrics 1.0 with
//! timestamps, many runs per file, for `promtool tsdb create-blocks-from openmetrics`.
//! `remote_write`: Prometheus remote write 1.0 (protobuf + snappy) with timestamps.

pub mod events;
pub mod openmetrics;
pub mod remote_write;
pub mod text;
