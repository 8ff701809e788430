//! ptc-metrics: pytest + pytest-test-categories reports in, Prometheus metrics out.
//!
//! The pipeline, one module per stage:
//! [`read`] (JUnit XML, size report, coverage) → [`model`] (one run) →
//! [`derive`](mod@derive) (pure: METRICS.md rules) → [`encode`] (text 0.0.4) → [`sink`] (delivery).
//! `inspect` renders the derived facts for people instead ([`render`]: terminal, JSON).
//! Events (docs/events.md) take the same road: `derive::events` → `encode::events` →
//! `sink::{events_file, loki, elasticsearch}`.
//! [`cli`] and [`config`] turn flags into validated settings; [`app`] is the glue.
//! A module uses only the stages before it (`src/layout_tests.rs` checks every `crate::` path).

pub mod app;
pub mod backfill;
pub mod ci_env;
pub mod civil;
pub mod cli;
pub mod config;
pub mod derive;
pub mod encode;
pub mod history;
pub mod model;
pub mod read;
pub mod render;
pub mod sink;

#[cfg(test)]
mod layout_tests;
