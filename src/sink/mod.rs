//! Stage 4: delivery. The only stage that touches the network or writes outputs.
//!
//! `http`: the shared client (timeouts, TLS, auth, retries); `pushgateway`: push and
//! delete a group, read its running totals.

pub mod http;
pub mod pushgateway;
