//! Backfill: archived runs into time series with their own timestamps, exactly once.
//!
//! Stages, each in its own file: [`discover`] finds candidate run directories (paths and
//! globs); [`parse`] reads them in parallel (hash, `read_run`, `summarize`) and skips runs
//! the [`state`] lists as delivered; [`plan`] orders runs per group and gives each its
//! timestamps and running totals (pure); `crate::app::backfill` encodes them
//! (`crate::encode::remote_write`, `crate::encode::openmetrics`, text for `--gateway`) and
//! delivers batch by batch, committing the [`state`] around each acknowledged batch.
//! [`runmeta`] is the `run.json` format and [`archive`] writes it (`push --archive`).
//! docs/backfill.md is the user-facing description, including why SIGKILL at any point
//! loses nothing and doubles nothing (see also [`state`]).

pub mod archive;
pub mod discover;
pub mod parse;
pub mod plan;
pub mod progress;
pub mod runmeta;
pub mod state;

use std::path::PathBuf;

use crate::derive::DeriveConfig;
use crate::sink::http::HttpConfig;
use crate::sink::remote_write::RemoteWriteConfig;

pub use parse::Defaults;

/// Where a backfill delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkConfig {
    RemoteWrite(RemoteWriteConfig),
    OpenMetrics(PathBuf),
    /// Only the newest run of each group, to a Pushgateway (base URL).
    Gateway {
        url: reqwest::Url,
        http: HttpConfig,
    },
    /// `--dry-run` without a destination.
    None,
}

impl SinkConfig {
    pub fn kind(&self) -> Option<state::SinkKind> {
        match self {
            SinkConfig::RemoteWrite(_) => Some(state::SinkKind::RemoteWrite),
            SinkConfig::OpenMetrics(_) => Some(state::SinkKind::Openmetrics),
            SinkConfig::Gateway { .. } => Some(state::SinkKind::Gateway),
            SinkConfig::None => None,
        }
    }

    /// The destination as it may be shown and stored (no password).
    pub fn target(&self) -> String {
        match self {
            SinkConfig::RemoteWrite(rw) => crate::sink::http::redact(&rw.url),
            SinkConfig::OpenMetrics(p) => p.display().to_string(),
            SinkConfig::Gateway { url, .. } => crate::sink::http::redact(url),
            SinkConfig::None => String::new(),
        }
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain lines otherwise.
    Auto,
    Bar,
    Plain,
}

/// `ptc-metrics backfill`, validated.
#[derive(Debug, Clone)]
pub struct BackfillConfig {
    /// Directories, files and glob patterns.
    pub sources: Vec<String>,
    pub sink: SinkConfig,
    pub state: Option<PathBuf>,
    pub dry_run: bool,
    pub derive: DeriveConfig,
    pub defaults: Defaults,
    /// Remote-write requests are cut at about this many bytes (uncompressed protobuf).
    pub batch_bytes: usize,
    /// Threads that read runs.
    pub jobs: usize,
    pub progress: ProgressMode,
    /// Forget an unacknowledged batch recorded in the state instead of sending it again.
    pub discard_pending: bool,
    /// A delivery failure is a warning (exit 0, or 4 when runs were skipped).
    pub soft_fail: bool,
    /// `--verify`: the base URL of a query API that must show every remote-written run.
    pub verify: Option<reqwest::Url>,
    /// Said before anything else (a `--remote-write` path no receiver is known to use).
    pub warnings: Vec<String>,
    /// `--events`, `--loki`, `--elasticsearch`: the events of the runs delivered, after them.
    pub events: Option<crate::config::EventsConfig>,
}
