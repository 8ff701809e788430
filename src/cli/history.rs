//! `history`: arguments and their validation into `HistoryConfig` (docs/history.md).

use clap::Args;

use super::inspect::{FormatArg, TerminalArgs};
use super::{ArchiveReadArgs, DeriveArgs, GatewayArgs};
use crate::config::HistoryConfig;
use crate::config::{parse_age, ConfigError};
use crate::history::Options;
use crate::read::junit::parse_timestamp;
use crate::render::Format;

#[derive(Debug, Args)]
#[command(
    after_help = "Reads archived runs (one directory per run with its reports and run.json, as \
`ptc-metrics push --archive DIR` writes them; see docs/backfill.md) group by group in time order, \
and reports tests that are flaky across runs, slower than their own baseline, chronically at or \
over their limit, newly failing or fixed, and how the suite changed. See docs/history.md.

Exit status: 0 success; 2 bad usage or a source without reports; 4 some runs could not be read \
(or have no run.json, or belong to another project) and were skipped, the report leaves them out."
)]
pub struct HistoryArgs {
    /// Archive directories (searched recursively), report files, or quoted glob patterns.
    #[arg(
        value_name = "ARCHIVE",
        env = "PTC_METRICS_HISTORY_SOURCES",
        value_delimiter = ',',
        required = true
    )]
    pub sources: Vec<String>,
    /// Only runs started at or after this time: ISO 8601 (2026-11-01T00:00:00Z) or an age
    /// (30d, 12h, 2w).
    #[arg(long, value_name = "TIME", env = "PTC_METRICS_SINCE")]
    pub since: Option<String>,
    /// Only runs started before this time: ISO 8601 or an age (7d: a week ago).
    #[arg(long, value_name = "TIME", env = "PTC_METRICS_UNTIL")]
    pub until: Option<String>,
    /// Only the newest N runs of each group (after --since/--until).
    #[arg(long, value_name = "N", env = "PTC_METRICS_LAST")]
    pub last: Option<usize>,
    /// Only runs of this project (runs whose run.json names another are skipped with a warning).
    #[arg(long, value_name = "NAME", env = "PTC_METRICS_PROJECT")]
    pub project: Option<String>,
    /// Only runs of this branch.
    #[arg(long, value_name = "NAME", env = "PTC_METRICS_BRANCH")]
    pub branch: Option<String>,
    /// Durations of a test's last K runs (their median) are compared with its baseline.
    #[arg(
        long,
        value_name = "K",
        env = "PTC_METRICS_RECENT",
        default_value_t = 5
    )]
    pub recent: usize,
    /// The baseline: the median of up to B durations before the last K (at least K needed).
    #[arg(
        long,
        value_name = "B",
        env = "PTC_METRICS_BASELINE",
        default_value_t = 20
    )]
    pub baseline: usize,
    /// "Slower": the recent median is more than this above the baseline median (20% or 0.2).
    #[arg(
        long,
        value_name = "PERCENT",
        env = "PTC_METRICS_SLOWER_THAN",
        default_value = "20%"
    )]
    pub slower_than: String,
    /// "Slower" also needs the recent median this many seconds above the baseline median
    /// (durations of tiny tests vary by more than 20 % from run to run).
    #[arg(
        long,
        value_name = "SECONDS",
        env = "PTC_METRICS_SLOWER_BY",
        default_value_t = 0.1
    )]
    pub slower_by: f64,
    /// "Chronic": violations in at least M of the group's last N runs (N at most 64).
    #[arg(
        long,
        value_name = "M/N",
        env = "PTC_METRICS_CHRONIC",
        default_value = "3/5"
    )]
    pub chronic: String,
    /// Flips between passed and failed that make a test flaky when it never passed and
    /// failed on the same commit.
    #[arg(
        long,
        value_name = "N",
        env = "PTC_METRICS_MIN_FLIPS",
        default_value_t = 3
    )]
    pub min_flips: u32,
    #[command(flatten)]
    pub archive: ArchiveReadArgs,
    #[command(flatten)]
    pub derive: DeriveArgs,
    /// Output format (json: docs/history.md, schema_version 1).
    #[arg(
        long,
        value_enum,
        env = "PTC_METRICS_HISTORY_FORMAT",
        default_value = "text"
    )]
    pub format: FormatArg,
    #[command(flatten)]
    pub terminal: TerminalArgs,
    /// Tests listed per section.
    #[arg(long, value_name = "N", env = "PTC_METRICS_TOP", default_value_t = 10)]
    pub top: usize,
    /// Also write the history metrics (counts per group and size, per-test flip rate and
    /// slowdown ratio) to this file for node_exporter's textfile collector (*.prom).
    #[arg(long, value_name = "PATH", env = "PTC_METRICS_TEXTFILE")]
    pub textfile: Option<std::path::PathBuf>,
    /// Per-test series per group (the flakiest tests' flip rate first, then the slowest
    /// tests' slowdown ratio).
    #[arg(
        long,
        value_name = "N",
        env = "PTC_METRICS_MAX_PER_TEST_SERIES",
        default_value_t = 500
    )]
    pub max_per_test_series: usize,
    /// --gateway URL: also push each group's history metrics to a Pushgateway, in a group of
    /// job "ptc_history" with the group's other labels.
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// `20%`, `20 %` or `0.2`.
fn parse_ratio(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match v {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a positive share; write e.g. 20% or 0.2"
        )),
    }
}

/// `3/5`: M of N, 1 ≤ M ≤ N ≤ 64.
fn parse_m_of_n(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not M/N; write e.g. 3/5 (in at least 3 of the last 5 runs)");
    let (m, n) = s.trim().split_once('/').ok_or_else(bad)?;
    let (m, n): (u32, u32) = (
        m.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if m == 0 || m > n || n > 64 {
        return Err(format!("{s:?}: need 1 ≤ M ≤ N ≤ 64"));
    }
    Ok((m, n))
}

/// An ISO 8601 time or an age before `now_ms`, as Unix ms.
fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    if let Some(t) = parse_timestamp(s) {
        return Ok((t * 1000.0).floor() as i64);
    }
    let t = s.trim();
    let b = t.as_bytes();
    if b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return Err(format!(
            "{s:?} is a date without a time; write {t}T00:00:00Z (UTC)"
        ));
    }
    parse_age(s)
        .map(|d| now_ms - d.as_millis() as i64)
        .map_err(|_| {
            format!(
                "{s:?} is neither an ISO 8601 time (2026-11-01T00:00:00Z) nor an age (30d, 12h)"
            )
        })
}

impl HistoryArgs {
    /// `env` looks up `COLUMNS` and `NO_COLOR`; `now_ms` is "now" for ages.
    pub fn into_config(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        stdout_is_tty: bool,
        terminal_columns: Option<usize>,
        now_ms: i64,
    ) -> Result<HistoryConfig, ConfigError> {
        let derive = self.derive.config(None)?;
        let slower_than = parse_ratio(&self.slower_than)
            .map_err(|e| ConfigError(format!("--slower-than: {e}")))?;
        let (chronic_m, chronic_n) =
            parse_m_of_n(&self.chronic).map_err(|e| ConfigError(format!("--chronic: {e}")))?;
        if !(self.slower_by.is_finite() && self.slower_by >= 0.0) {
            return Err(ConfigError(format!(
                "--slower-by: {} must be a number of seconds ≥ 0",
                self.slower_by
            )));
        }
        if self.recent == 0 {
            return Err(ConfigError("--recent: give at least 1".into()));
        }
        if self.baseline < self.recent {
            return Err(ConfigError(format!(
                "--baseline: {} is fewer than --recent ({}); the baseline needs at least as many runs",
                self.baseline, self.recent
            )));
        }
        if self.min_flips == 0 {
            return Err(ConfigError("--min-flips: give at least 1".into()));
        }
        if self.last == Some(0) {
            return Err(ConfigError("--last: give at least 1".into()));
        }
        let since = match &self.since {
            Some(s) => {
                Some(parse_time(s, now_ms).map_err(|e| ConfigError(format!("--since: {e}")))?)
            }
            None => None,
        };
        let until = match &self.until {
            Some(s) => {
                Some(parse_time(s, now_ms).map_err(|e| ConfigError(format!("--until: {e}")))?)
            }
            None => None,
        };
        if let (Some(a), Some(b)) = (since, until) {
            if a >= b {
                return Err(ConfigError(format!(
                    "--since {} is not before --until {}",
                    self.since.as_deref().unwrap_or(""),
                    self.until.as_deref().unwrap_or("")
                )));
            }
        }
        let jobs = self.archive.jobs()?;
        let textfile = self
            .textfile
            .as_deref()
            .map(super::push::textfile_config)
            .transpose()?;
        let gateway = match self.gateway.gateway_url()? {
            Some(u) => Some((u, self.gateway.http()?)),
            None => None,
        };
        let per_test_series = if textfile.is_some() || gateway.is_some() {
            self.max_per_test_series
        } else {
            0
        };
        let terminal = self.terminal.config(env, stdout_is_tty, terminal_columns);
        Ok(HistoryConfig {
            sources: self.sources,
            since_ms: since,
            until_ms: until,
            last: self.last,
            project: self.project,
            branch: self.branch,
            junit_prefix: self.archive.junit_prefix,
            jobs,
            derive,
            options: Options {
                recent: self.recent,
                baseline: self.baseline,
                slower_than,
                slower_by: self.slower_by,
                chronic_m,
                chronic_n,
                min_flips: self.min_flips,
                top: self.top,
                per_test_series,
            },
            format: match self.format {
                FormatArg::Text => Format::Text,
                FormatArg::Json => Format::Json,
            },
            terminal,
            textfile,
            gateway,
            max_per_test_series: self.max_per_test_series,
            soft_fail: self.gateway.soft_fail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn cfg(args: &[&str]) -> Result<HistoryConfig, ConfigError> {
        let mut v = vec!["ptc-metrics", "history"];
        v.extend_from_slice(args);
        let cli = Cli::try_parse_from(v).map_err(|e| ConfigError(e.to_string()))?;
        let Command::History(a) = cli.command else {
            unreachable!()
        };
        a.into_config(&|_| None, false, None, 1_800_000_000_000)
    }

    #[test]
    fn defaults_and_flags() {
        let c = cfg(&["arch"]).unwrap();
        assert_eq!(c.options, Options::default());
        assert_eq!(c.sources, vec!["arch"]);
        assert_eq!((c.since_ms, c.until_ms, c.last), (None, None, None));
        let c = cfg(&[
            "arch",
            "--slower-than",
            "30%",
            "--chronic",
            "2/10",
            "--recent",
            "3",
            "--baseline",
            "10",
            "--since",
            "2d",
            "--until",
            "2027-01-15T08:00:00Z",
            "--last",
            "50",
        ])
        .unwrap();
        assert!((c.options.slower_than - 0.3).abs() < 1e-12);
        assert_eq!((c.options.chronic_m, c.options.chronic_n), (2, 10));
        assert_eq!((c.options.recent, c.options.baseline), (3, 10));
        assert_eq!(c.since_ms, Some(1_800_000_000_000 - 2 * 86_400_000));
        assert_eq!(c.until_ms, Some(1_800_000_000_000));
        assert_eq!(c.last, Some(50));
        assert_eq!(
            cfg(&["a", "--slower-than", "0.25"])
                .unwrap()
                .options
                .slower_than,
            0.25
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = |a: &[&str]| cfg(a).unwrap_err().0;
        assert_eq!(
            e(&["a", "--slower-than", "fast"]),
            "--slower-than: \"fast\" is not a positive share; write e.g. 20% or 0.2"
        );
        assert_eq!(
            e(&["a", "--chronic", "6/5"]),
            "--chronic: \"6/5\": need 1 ≤ M ≤ N ≤ 64"
        );
        assert_eq!(
            e(&["a", "--chronic", "3"]),
            "--chronic: \"3\" is not M/N; write e.g. 3/5 (in at least 3 of the last 5 runs)"
        );
        assert_eq!(
            e(&["a", "--baseline", "3"]),
            "--baseline: 3 is fewer than --recent (5); the baseline needs at least as many runs"
        );
        assert_eq!(
            e(&["a", "--since", "yesterday"]),
            "--since: \"yesterday\" is neither an ISO 8601 time (2026-11-01T00:00:00Z) nor an age (30d, 12h)"
        );
        assert_eq!(
            e(&["a", "--until", "2026-12-01"]),
            "--until: \"2026-12-01\" is a date without a time; write 2026-12-01T00:00:00Z (UTC)"
        );
        assert_eq!(
            e(&["a", "--since", "1d", "--until", "2d"]),
            "--since 1d is not before --until 2d"
        );
        assert_eq!(e(&["a", "--last", "0"]), "--last: give at least 1");
        assert_eq!(
            e(&["a", "--textfile", "/tmp/h.txt"]),
            "--textfile: \"/tmp/h.txt\" would be ignored: node_exporter's textfile collector reads only \
             files named *.prom (not hidden); write e.g. /tmp/pytest.prom"
        );
        assert_eq!(
            e(&["a", "--gateway", "pushgateway:9091/metrics"]),
            "--gateway: \"pushgateway:9091/metrics\" is not a URL; give http://HOST:PORT, e.g. http://pushgateway:9091/metrics"
        );
        // Per-test lists are kept long enough for the series only when metrics are written.
        assert_eq!(cfg(&["a"]).unwrap().options.per_test_series, 0);
        let c = cfg(&[
            "a",
            "--textfile",
            "/tmp/h.prom",
            "--max-per-test-series",
            "50",
        ])
        .unwrap();
        assert_eq!(c.options.per_test_series, 50);
    }
}
