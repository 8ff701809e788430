//! Stage 3: metric families to bytes on the wire.
//!
//! `text`: Prometheus text exposition format 0.0.4 (METRICS.md §4), for the Pushgateway,
//! stdout and the node_exporter textfile collector.

pub mod text;
