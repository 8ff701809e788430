//! Validated configuration: what the CLI's flags mean, checked once, as typed values.
//! Components take these structs, never raw arguments. [`ConfigError`] messages name
//! the flag and say what a valid value looks like.

use crate::derive::inspect::CollectConfig;
use crate::derive::metrics::Labels;
use crate::derive::DeriveConfig;
use crate::read::Inputs;
use crate::render::{Format, TerminalConfig};
use crate::sink::http::HttpConfig;
use crate::sink::pushgateway::PushgatewayConfig;
use crate::sink::textfile::TextfileConfig;

/// A flag value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Label names ptc-metrics writes itself; a group label may not reuse them.
pub const RESERVED_LABELS: [&str; 8] = [
    "size",
    "outcome",
    "resource",
    "failure_type",
    "file",
    "test",
    "le",
    "job",
];

/// Checks a Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not `__…`, not ours).
pub fn check_label_name(name: &str, flag: &str) -> Result<(), ConfigError> {
    let mut chars = name.chars();
    let ok_first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !ok_first || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ConfigError(format!(
            "{flag}: {name:?} is not a valid label name (letters, digits and _, not starting with a digit)"
        )));
    }
    if name.starts_with("__") {
        return Err(ConfigError(format!(
            "{flag}: {name:?}: label names starting with __ are reserved by Prometheus"
        )));
    }
    if RESERVED_LABELS.contains(&name) {
        return Err(ConfigError(format!(
            "{flag}: {name:?} is a label ptc-metrics sets itself; choose another name{}",
            if name == "job" {
                " (use --job for the job label)"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// One job's part of a run split over parallel jobs: `index` of `total`, counted from 1
/// (`1 <= index <= total`). It becomes the grouping label `shard="INDEX/TOTAL"` when `total`
/// is above 1 (METRICS.md §3), so that two shards never write the same group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub total: u32,
}

impl Shard {
    /// The grouping label's name.
    pub const LABEL: &'static str = "shard";

    /// Parses `INDEX/TOTAL` (digits only, counted from 1, e.g. `2/4`). The message starts
    /// with the value, says what is wrong and what to write instead; the caller names where
    /// the value came from (`--shard 5/4: INDEX must be between 1 and TOTAL (4)`).
    pub fn parse(s: &str) -> Result<Shard, String> {
        let t = s.trim();
        let number = |p: &str| -> Option<u32> {
            let p = p.trim();
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let parsed = t
            .split_once('/')
            .and_then(|(i, n)| Some((number(i)?, number(n)?)));
        let Some((index, total)) = parsed else {
            return Err(format!(
                "{t:?}: not INDEX/TOTAL; write e.g. 2/4 for the second of 4 parallel jobs"
            ));
        };
        Shard::new(index, total)
    }

    /// Checks `1 <= index <= total`.
    pub fn new(index: u32, total: u32) -> Result<Shard, String> {
        if total == 0 {
            return Err(format!(
                "{index}/{total}: TOTAL must be at least 1 (the number of parallel jobs)"
            ));
        }
        if index == 0 {
            return Err(format!(
                "{index}/{total}: INDEX counts from 1; the first of {total} jobs is 1/{total}"
            ));
        }
        if index > total {
            return Err(format!(
                "{index}/{total}: INDEX must be between 1 and TOTAL ({total})"
            ));
        }
        Ok(Shard { index, total })
    }

    /// The label value, `INDEX/TOTAL`; `None` for a run in one piece (TOTAL 1).
    pub fn label_value(&self) -> Option<String> {
        (self.total > 1).then(|| self.to_string())
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// The group: `job` plus grouping labels, in the order they go into the URL.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    pub job: String,
    pub grouping: Labels,
}

impl GroupConfig {
    /// All labels every series carries (empty values dropped: empty means absent).
    pub fn series_labels(&self) -> Labels {
        let mut l = vec![("job".to_string(), self.job.clone())];
        l.extend(self.grouping.iter().filter(|(_, v)| !v.is_empty()).cloned());
        l
    }
}

/// Where the exposition goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// `--dry-run`: print to stdout, push nothing.
    DryRun,
    /// `--gateway` and/or `--textfile` (at least one is set). Each destination adds this run
    /// to its own previous cumulative values (the group's, the file's) unless `accumulate`
    /// is off (`--no-accumulate`).
    Sinks {
        pushgateway: Option<Box<PushgatewaySink>>,
        textfile: Option<TextfileConfig>,
        accumulate: bool,
    },
}

/// The Pushgateway destination of a push.
#[derive(Debug, Clone, PartialEq)]
pub struct PushgatewaySink {
    pub gateway: Box<PushgatewayConfig>,
    pub http: HttpConfig,
    /// For one shard of a split run: the run's group (`shard="all"`), where facts about the
    /// whole run are counted once (runs with timing violations).
    pub run_group: Option<RunGroup>,
}

/// The group of a run split over shards, shared by its shards (the shard label is `all`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunGroup {
    pub gateway: PushgatewayConfig,
    /// What tells this run from others of the group in every shard (`--run-id`, else the CI's
    /// run id); `None` when nothing does: then this shard's facts count for it alone.
    pub run: Option<String>,
}

/// The `shard` label value of a split run's own group.
pub const RUN_GROUP_SHARD: &str = "all";

/// `ptc-metrics push`.
#[derive(Debug, Clone)]
pub struct PushConfig {
    pub inputs: Inputs,
    pub derive: DeriveConfig,
    pub group: GroupConfig,
    pub delivery: Delivery,
    /// A delivery failure is a warning and exit 0.
    pub soft_fail: bool,
    /// `--archive DIR`: keep a copy of the reports and a run.json for `backfill`.
    pub archive: Option<ArchiveConfig>,
    /// `--events`, `--loki`, `--elasticsearch`: the run's events, after the metrics.
    pub events: Option<EventsConfig>,
}

/// Where a run's events go (docs/events.md): `--events`, `--loki`, `--elasticsearch`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsConfig {
    /// `--events PATH|-`: NDJSON.
    pub file: Option<crate::sink::events_file::EventsTarget>,
    /// `--events-all`: an event for every test, not only the notable ones.
    pub all: bool,
    /// `--loki URL`.
    pub loki: Option<reqwest::Url>,
    /// `--elasticsearch URL` and `--es-index NAME`.
    pub elasticsearch: Option<(reqwest::Url, String)>,
    /// The HTTP settings of the event sinks: --timeout, --retries, --ca-file, --deadline,
    /// --header; credentials only from the sink's own URL (`https://user:pass@…`), never
    /// the Pushgateway's.
    pub http: HttpConfig,
    /// Bound on one request's (uncompressed) body, bytes.
    pub batch_bytes: usize,
    /// Per-run facts from the CI environment: fields of the events, never labels.
    pub commit: Option<String>,
    pub ci_run_id: Option<String>,
    pub run_url: Option<String>,
}

impl EventsConfig {
    /// True when a network sink is configured.
    pub fn has_network(&self) -> bool {
        self.loki.is_some() || self.elasticsearch.is_some()
    }
}

/// `push --archive DIR`: where to keep the run, and the per-run facts the CI environment
/// tells (kept in `run.json` for people, never labels).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArchiveConfig {
    pub dir: std::path::PathBuf,
    pub commit: Option<String>,
    pub run_id: Option<String>,
    pub run_url: Option<String>,
    pub ci_provider: Option<String>,
}

/// `ptc-metrics inspect`.
#[derive(Debug, Clone)]
pub struct InspectConfig {
    pub inputs: Inputs,
    pub derive: DeriveConfig,
    pub collect: CollectConfig,
    pub format: Format,
    pub terminal: TerminalConfig,
}

/// `ptc-metrics delete`.
#[derive(Debug, Clone)]
pub struct DeleteConfig {
    pub gateway: PushgatewayConfig,
    pub http: HttpConfig,
    pub soft_fail: bool,
}

/// Validated `prune`.
#[derive(Debug, Clone)]
pub struct PruneConfig {
    pub gateway: PushgatewayConfig,
    pub http: HttpConfig,
    pub older_than: std::time::Duration,
    /// Branches never pruned (`*` wildcards).
    pub keep: Vec<glob::Pattern>,
    pub dry_run: bool,
    pub soft_fail: bool,
}

/// Parses an age for `prune --older-than`: `90m`, `12h`, `30d`, `2w`.
pub fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'm')) => (&t[..i], 60.0),
        Some((i, 'h')) => (&t[..i], 3600.0),
        Some((i, 'd')) => (&t[..i], 86_400.0),
        Some((i, 'w')) => (&t[..i], 7.0 * 86_400.0),
        _ => ("", 0.0),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * mult <= 100.0 * 365.0 * 86_400.0 => {
            Ok(std::time::Duration::from_secs_f64(v * mult))
        }
        _ => Err(format!(
            "{s:?} is not an age; write e.g. 30d, 12h, 2w or 90m"
        )),
    }
}

/// Parses `10s`, `1.5s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * mult <= 86_400.0 => {
            Ok(std::time::Duration::from_secs_f64(v * mult))
        }
        _ => Err(format!(
            "{s:?} is not a duration; write e.g. 10s, 500ms or 2m"
        )),
    }
}

/// Parses `--buckets 0.1,0.5,1`: ascending, finite, positive.
pub fn parse_buckets(s: &str) -> Result<Vec<f64>, ConfigError> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let x: f64 = part.parse().map_err(|_| {
            ConfigError(format!(
                "--buckets: {part:?} is not a number; give the bounds in seconds, separated \
                     by commas: 0.1,1,10"
            ))
        })?;
        if !x.is_finite() || x <= 0.0 {
            return Err(ConfigError(format!(
                "--buckets: {part} must be a positive finite number (+Inf is added by itself)"
            )));
        }
        if v.last().is_some_and(|l: &f64| *l >= x) {
            return Err(ConfigError(format!(
                "--buckets: bounds must be strictly ascending, {part} is not"
            )));
        }
        v.push(x);
    }
    if v.is_empty() {
        return Err(ConfigError(
            "--buckets: give at least one bound, e.g. 0.1,1,10".into(),
        ));
    }
    Ok(v)
}

/// `ptc-metrics history`, validated.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Directories, files and glob patterns (as for `backfill`).
    pub sources: Vec<String>,
    /// `--since`/`--until`, Unix ms (`until` excluded).
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// `--last N` runs per group.
    pub last: Option<usize>,
    /// `--project`: other projects' runs are skipped with a warning (exit 4).
    pub project: Option<String>,
    /// `--branch`: only this branch's runs.
    pub branch: Option<String>,
    /// For runs whose run.json names none.
    pub junit_prefix: String,
    /// Threads that read runs.
    pub jobs: usize,
    pub derive: DeriveConfig,
    pub options: crate::history::Options,
    pub format: Format,
    pub terminal: TerminalConfig,
    /// `--textfile`: the metrics of every group, for node_exporter's textfile collector.
    pub textfile: Option<TextfileConfig>,
    /// `--gateway`: each group's metrics to its own group of job [`crate::history::metrics::JOB`].
    pub gateway: Option<(reqwest::Url, HttpConfig)>,
    /// `--max-per-test-series`: per-test series per group.
    pub max_per_test_series: usize,
    /// A delivery failure is a warning.
    pub soft_fail: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names() {
        assert!(check_label_name("python_version", "--label").is_ok());
        assert_eq!(
            check_label_name("9x", "--label").unwrap_err().0,
            "--label: \"9x\" is not a valid label name (letters, digits and _, not starting with a digit)"
        );
        assert!(check_label_name("__x", "--label").is_err());
        assert!(check_label_name("a-b", "--label").is_err());
        assert_eq!(
            check_label_name("size", "--label").unwrap_err().0,
            "--label: \"size\" is a label ptc-metrics sets itself; choose another name"
        );
    }

    #[test]
    fn shards() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, total: 4 }));
        assert_eq!(Shard::parse(" 02/04 ").unwrap().to_string(), "2/4");
        assert_eq!(
            Shard::parse("2/4").unwrap().label_value().as_deref(),
            Some("2/4")
        );
        assert_eq!(Shard::parse("1/1").unwrap().label_value(), None);
        assert_eq!(
            Shard::parse("5/4").unwrap_err(),
            "5/4: INDEX must be between 1 and TOTAL (4)"
        );
        assert_eq!(
            Shard::parse("0/4").unwrap_err(),
            "0/4: INDEX counts from 1; the first of 4 jobs is 1/4"
        );
        assert_eq!(
            Shard::parse("1/0").unwrap_err(),
            "1/0: TOTAL must be at least 1 (the number of parallel jobs)"
        );
        for bad in [
            "2",
            "2/",
            "/4",
            "+2/4",
            "-1/4",
            "2/4/8",
            "a/b",
            "2.0/4",
            "",
            "99999999999/2",
        ] {
            assert_eq!(
                Shard::parse(bad).unwrap_err(),
                format!(
                    "{:?}: not INDEX/TOTAL; write e.g. 2/4 for the second of 4 parallel jobs",
                    bad.trim()
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn durations_and_buckets() {
        assert_eq!(parse_duration("10s").unwrap().as_millis(), 10_000);
        assert_eq!(parse_duration("250ms").unwrap().as_millis(), 250);
        assert_eq!(parse_duration("2").unwrap().as_millis(), 2000);
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_buckets("0.1, 1,10").unwrap(), vec![0.1, 1.0, 10.0]);
        assert!(parse_buckets("1,0.5").is_err());
        assert!(parse_buckets("1,inf").is_err());
    }
}
