//! Command line (clap derive). Every flag can also come from a `PTC_METRICS_*`
//! environment variable; flags win. Each command's arguments live in their own file and
//! turn into the validated structs of `crate::config` (`into_config`); the argument
//! groups several commands share (inputs, derivation, group labels, HTTP) live here.

mod backfill;
mod history;
mod inspect;
mod prune;
pub(crate) mod push;

pub use backfill::{BackfillArgs, ProgressArg};
pub use history::HistoryArgs;
pub use inspect::{ColorArg, FormatArg, InspectArgs};
pub use prune::PruneArgs;
pub use push::{DeleteArgs, MethodArg, PushArgs};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use reqwest::Url;

use crate::ci_env::CiContext;
use crate::config::{
    check_label_name, parse_buckets, parse_duration, ConfigError, GroupConfig, Shard,
};
use crate::derive::metrics::Labels;
use crate::derive::{DeriveConfig, PerTestConfig};
use crate::read::Inputs;
use crate::sink::http::{Auth, HttpConfig, Secret};

#[derive(Debug, Parser)]
#[command(
    name = "ptc-metrics",
    version,
    about = "Turn pytest JUnit XML and pytest-test-categories reports into Prometheus metrics",
    after_help = "Exit status: 0 success; 1 internal error; 2 bad usage or unreadable input; \
                  3 delivery failed after retries (0 with --soft-fail); 4 backfill, history: some runs \
                  could not be read and were skipped, the others were delivered (reported)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a run's reports and push its metrics to a Pushgateway (or print them with --dry-run).
    Push(Box<PushArgs>),
    /// Delete a group from the Pushgateway.
    Delete(DeleteArgs),
    /// Show a run in the terminal (or as JSON): sizes against the plugin's targets, outcomes,
    /// violations, slow, flaky and near-limit tests, hermeticity, coverage. No server needed.
    Inspect(InspectArgs),
    /// Delete the groups of a job whose last push is older than --older-than (branch groups
    /// never expire on a Pushgateway), keeping the branches of --keep.
    Prune(PruneArgs),
    /// Turn archived runs (directories, globs) into history with each run's own timestamp,
    /// exactly once: Prometheus remote write, an OpenMetrics file for promtool, or the newest
    /// run of each group to a Pushgateway.
    Backfill(Box<BackfillArgs>),
    /// Which tests, and since when: tests flaky across runs, slower than their own baseline,
    /// chronically at their limit, newly failing or fixed, from archived runs (push --archive).
    History(Box<HistoryArgs>),
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// JUnit XML reports of the run (merged). Size reports and coverage.xml given here
    /// are recognised by content too. `.gz` files are read directly.
    #[arg(
        value_name = "REPORT",
        env = "PTC_METRICS_REPORTS",
        value_delimiter = ','
    )]
    pub reports: Vec<PathBuf>,
    /// The plugin's size report: the JSON file (--test-size-report=json
    /// --test-size-report-file=…), or a pytest terminal log holding the JSON or the detailed report.
    #[arg(
        long,
        value_name = "PATH",
        env = "PTC_METRICS_SIZE_REPORT",
        value_delimiter = ','
    )]
    pub size_report: Vec<PathBuf>,
    /// Cobertura coverage.xml (pytest-cov --cov-report=xml).
    #[arg(
        long,
        value_name = "PATH",
        env = "PTC_METRICS_COVERAGE",
        value_delimiter = ','
    )]
    pub coverage: Vec<PathBuf>,
    /// The --junitprefix given to pytest, removed from classnames for the size-report join.
    #[arg(
        long,
        value_name = "PFX",
        env = "PTC_METRICS_JUNIT_PREFIX",
        default_value = ""
    )]
    pub junit_prefix: String,
}

/// Derivation flags every command that reads a run uses.
/// How archived runs are read, shared by `backfill` and `history`.
#[derive(Debug, Args)]
pub struct ArchiveReadArgs {
    /// Threads that read runs (default: the number of CPUs).
    #[arg(long, value_name = "N", env = "PTC_METRICS_JOBS")]
    pub jobs: Option<usize>,
    /// The --junitprefix given to pytest, for runs whose run.json names none.
    #[arg(
        long,
        value_name = "PFX",
        env = "PTC_METRICS_JUNIT_PREFIX",
        default_value = ""
    )]
    pub junit_prefix: String,
}

impl ArchiveReadArgs {
    /// `--jobs`, else the number of CPUs (2 when unknown).
    pub fn jobs(&self) -> Result<usize, ConfigError> {
        match self.jobs {
            Some(0) => Err(ConfigError("--jobs: give at least 1".into())),
            Some(n) => Ok(n),
            None => Ok(std::thread::available_parallelism().map_or(2, |n| n.get())),
        }
    }
}

#[derive(Debug, Args)]
pub struct DeriveArgs {
    /// A test is "near its limit" at this share of its size's time limit.
    #[arg(
        long,
        value_name = "RATIO",
        env = "PTC_METRICS_NEAR_LIMIT_RATIO",
        default_value_t = 0.8
    )]
    pub near_limit_ratio: f64,
}

/// `--buckets` as its default is shown in the help: [`DEFAULT_BUCKETS`](crate::derive::DEFAULT_BUCKETS).
pub const DEFAULT_BUCKETS_ARG: &str = "0.1,0.5,1,5,10,30,60,300,900";

/// Flags that shape the series written (`push`, `backfill`); `inspect` writes none.
#[derive(Debug, Args)]
pub struct SeriesArgs {
    /// Upper bounds of the pytest_test_duration_seconds histogram, comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        env = "PTC_METRICS_BUCKETS",
        default_value = DEFAULT_BUCKETS_ARG
    )]
    pub buckets: String,
    /// Write pytest_test_case_duration_seconds for tests at least this slow (seconds).
    #[arg(long, value_name = "SECONDS", env = "PTC_METRICS_PER_TEST_SLOWER_THAN")]
    pub per_test_slower_than: Option<f64>,
    /// Write pytest_test_case_duration_seconds for this share (0-1) of tests, chosen by a
    /// hash of the node id so the same tests are chosen every run.
    #[arg(long, value_name = "RATE", env = "PTC_METRICS_PER_TEST_SAMPLE")]
    pub per_test_sample: Option<f64>,
    /// At most this many per-test series (the slowest are kept).
    #[arg(
        long,
        value_name = "N",
        env = "PTC_METRICS_MAX_PER_TEST_SERIES",
        default_value_t = 500
    )]
    pub max_per_test_series: usize,
    /// At most this many uncovered_lines{file} series (the files with most uncovered lines), and
    /// as many test_module_coverage_percentage{module} series (the least covered modules).
    #[arg(
        long,
        value_name = "N",
        env = "PTC_METRICS_MAX_COVERAGE_FILES",
        default_value_t = 100
    )]
    pub max_coverage_files: usize,
}

/// The group flags of every command that names a group (push, delete, backfill): one
/// struct, so they mean and say the same everywhere.
#[derive(Debug, Args)]
pub struct GroupArgs {
    /// The job label (first part of the Pushgateway grouping key).
    #[arg(
        long,
        value_name = "JOB",
        env = "PTC_METRICS_JOB",
        default_value = "pytest"
    )]
    pub job: String,
    /// Project label (push and delete: detected from the CI environment when not given).
    #[arg(long, value_name = "NAME", env = "PTC_METRICS_PROJECT")]
    pub project: Option<String>,
    /// Branch label (push and delete: detected from the CI environment when not given).
    #[arg(long, value_name = "NAME", env = "PTC_METRICS_BRANCH")]
    pub branch: Option<String>,
    /// Extra grouping label, repeatable: --label python_version=3.12 --label os=linux.
    #[arg(
        long = "label",
        value_name = "K=V",
        env = "PTC_METRICS_LABELS",
        value_delimiter = ','
    )]
    pub labels: Vec<String>,
    /// This job's part of a run split over parallel jobs, INDEX/TOTAL counted from 1 (2/4:
    /// the second of 4). Each shard is its own group, labelled shard="2/4" (no label when
    /// TOTAL is 1). push and delete detect it from GitLab, CircleCI, Buildkite and Azure
    /// parallel jobs when not given; on GitHub Actions and Jenkins pass it from the matrix.
    /// delete --shard all: the group the shards of a split run share.
    #[arg(long, value_name = "INDEX/TOTAL", env = "PTC_METRICS_SHARD")]
    pub shard: Option<String>,
}

/// `--no-ci-detect`, for the commands that read the CI environment (push, delete).
#[derive(Debug, Args)]
pub struct CiDetectArgs {
    /// Do not read project, branch, CI job and shard from CI environment variables.
    #[arg(long, env = "PTC_METRICS_NO_CI_DETECT", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_ci_detect: bool,
}

impl CiDetectArgs {
    /// What the CI environment says, or nothing with --no-ci-detect.
    pub fn context(&self, ci: &CiContext) -> CiContext {
        if self.no_ci_detect {
            CiContext::default()
        } else {
            ci.clone()
        }
    }
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Pushgateway base URL, e.g. http://pushgateway:9091.
    #[arg(long, value_name = "URL", env = "PTC_METRICS_GATEWAY")]
    pub gateway: Option<String>,
    /// Timeout of each HTTP request (e.g. 10s, 500ms).
    #[arg(
        long,
        value_name = "DURATION",
        env = "PTC_METRICS_TIMEOUT",
        default_value = "10s"
    )]
    pub timeout: String,
    /// Retries after the first attempt, on connection errors, 408, 429 and 5xx.
    #[arg(
        long,
        value_name = "N",
        env = "PTC_METRICS_RETRIES",
        default_value_t = 3
    )]
    pub retries: u32,
    /// Basic auth user.
    #[arg(long, value_name = "USER", env = "PTC_METRICS_BASIC_AUTH_USER")]
    pub basic_auth_user: Option<String>,
    /// Basic auth password (prefer the environment variable to the flag).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "PTC_METRICS_BASIC_AUTH_PASSWORD",
        hide_env_values = true
    )]
    pub basic_auth_password: Option<String>,
    /// Bearer token (prefer the environment variable to the flag).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PTC_METRICS_BEARER_TOKEN",
        hide_env_values = true
    )]
    pub bearer_token: Option<String>,
    /// Extra CA certificates (PEM) to trust for https.
    #[arg(long, value_name = "PATH", env = "PTC_METRICS_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// A delivery failure prints a warning and exits 0, for CI jobs that must not break on metrics.
    #[arg(long, env = "PTC_METRICS_SOFT_FAIL", value_parser = clap::builder::BoolishValueParser::new())]
    pub soft_fail: bool,
}

impl InputArgs {
    pub fn inputs(&self) -> Result<Inputs, ConfigError> {
        if self.reports.is_empty() {
            return Err(ConfigError(
                "no report given: pass the JUnit XML file(s) pytest wrote with --junitxml".into(),
            ));
        }
        Ok(Inputs {
            reports: self.reports.clone(),
            size_reports: self.size_report.clone(),
            coverage: self.coverage.clone(),
            junit_prefix: self.junit_prefix.clone(),
        })
    }
}

impl DeriveArgs {
    /// The derivation; `series` gives the flags of commands that write series (`None`:
    /// `inspect`, which writes none and keeps every coverage file for its own top-N list).
    pub fn config(&self, series: Option<&SeriesArgs>) -> Result<DeriveConfig, ConfigError> {
        if !(self.near_limit_ratio > 0.0 && self.near_limit_ratio <= 1.0) {
            return Err(ConfigError(format!(
                "--near-limit-ratio: {} must be above 0 and at most 1",
                self.near_limit_ratio
            )));
        }
        let Some(series) = series else {
            return Ok(DeriveConfig {
                near_limit_ratio: self.near_limit_ratio,
                max_coverage_files: usize::MAX,
                ..DeriveConfig::default()
            });
        };
        if let Some(r) = series.per_test_sample {
            if !(0.0..=1.0).contains(&r) {
                return Err(ConfigError(format!(
                    "--per-test-sample: {r} must be between 0 and 1"
                )));
            }
        }
        if let Some(t) = series.per_test_slower_than {
            if !t.is_finite() || t < 0.0 {
                return Err(ConfigError(format!(
                    "--per-test-slower-than: {t} must be a number of seconds ≥ 0"
                )));
            }
        }
        Ok(DeriveConfig {
            near_limit_ratio: self.near_limit_ratio,
            buckets: parse_buckets(&series.buckets)?,
            per_test: PerTestConfig {
                slower_than: series.per_test_slower_than,
                sample_rate: series.per_test_sample,
                max_series: series.max_per_test_series,
            },
            max_coverage_files: series.max_coverage_files,
        })
    }
}

impl GroupArgs {
    /// The group, with project, branch, CI job and shard from `ci` where no flag gave them
    /// (pass `CiContext::default()` for none). Label order: project, branch, ci_job, shard,
    /// then the --label ones.
    pub fn config(&self, ci: &CiContext) -> Result<GroupConfig, ConfigError> {
        let job = self.job()?;
        let mut grouping = Vec::new();
        if let Some(p) = self.project.clone().or_else(|| ci.project.clone()) {
            grouping.push(("project".to_string(), p));
        }
        if let Some(b) = self.branch.clone().or_else(|| ci.branch.clone()) {
            grouping.push(("branch".to_string(), b));
        }
        let explicit = self.labels()?;
        if let Some(j) = &ci.job {
            if !explicit.iter().any(|(k, _)| k == "ci_job") {
                grouping.push(("ci_job".to_string(), j.clone()));
            }
        }
        if let Some(v) = self.shard(ci)?.and_then(|s| s.label_value()) {
            grouping.push((Shard::LABEL.to_string(), v));
        }
        grouping.extend(explicit);
        Ok(GroupConfig { job, grouping })
    }

    /// `--job`, checked.
    pub fn job(&self) -> Result<String, ConfigError> {
        if self.job.is_empty() {
            return Err(ConfigError("--job: the job name must not be empty".into()));
        }
        Ok(self.job.clone())
    }

    /// The `--label k=v` list, checked: valid names, none twice, none that has a flag of
    /// its own (project, branch, shard) or that ptc-metrics writes itself.
    pub fn labels(&self) -> Result<Labels, ConfigError> {
        let mut out: Labels = Vec::new();
        for l in &self.labels {
            let Some((k, v)) = l.split_once('=') else {
                return Err(ConfigError(format!(
                    "--label: {l:?} is not of the form name=value"
                )));
            };
            let k = k.trim();
            check_label_name(k, "--label")?;
            if k == "project" || k == "branch" || k == Shard::LABEL {
                return Err(ConfigError(format!(
                    "--label: use --{k} to set the {k} label"
                )));
            }
            if out.iter().any(|(e, _)| e == k) {
                return Err(ConfigError(format!("--label: {k:?} is given twice")));
            }
            out.push((k.to_string(), v.to_string()));
        }
        Ok(out)
    }

    /// The shard: `--shard` when given (it wins, `--shard 1/1` says "not split"), else what
    /// the CI's parallel-job variables in `ci` say.
    pub fn shard(&self, ci: &CiContext) -> Result<Option<Shard>, ConfigError> {
        match (&self.shard, &ci.shard) {
            (Some(s), _) => Shard::parse(s)
                .map(Some)
                .map_err(|e| ConfigError(format!("--shard {e}"))),
            (None, Some(c)) => c
                .shard()
                .map(Some)
                .map_err(|e| ConfigError(format!("shard detected from the CI environment: {e}"))),
            (None, None) => Ok(None),
        }
    }
}

impl GatewayArgs {
    pub fn http(&self) -> Result<HttpConfig, ConfigError> {
        let timeout =
            parse_duration(&self.timeout).map_err(|e| ConfigError(format!("--timeout: {e}")))?;
        let auth = match (&self.bearer_token, &self.basic_auth_user) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "--bearer-token and --basic-auth-user cannot be used together".into(),
                ))
            }
            (Some(t), None) => Auth::Bearer(Secret::new(t.clone())),
            (None, Some(u)) => Auth::Basic {
                user: u.clone(),
                password: self.basic_auth_password.clone().map(Secret::new),
            },
            (None, None) => {
                if self.basic_auth_password.is_some() {
                    return Err(ConfigError(
                        "--basic-auth-password needs --basic-auth-user".into(),
                    ));
                }
                Auth::None
            }
        };
        Ok(HttpConfig {
            timeout,
            retries: self.retries,
            auth,
            ca_file: self.ca_file.clone(),
            ..HttpConfig::default()
        })
    }

    pub fn gateway_url(&self) -> Result<Option<Url>, ConfigError> {
        let Some(g) = &self.gateway else {
            return Ok(None);
        };
        let url = parse_http_url(
            "--gateway",
            g,
            "http://HOST:PORT",
            "http://pushgateway:9091",
        )?;
        check_gateway_path(&url)?;
        Ok(Some(url))
    }
}

/// Refuses a Pushgateway URL that is not its base URL: the scrape URL `…/metrics` (a common
/// copy), the API `…/api/v1/metrics` or a group's `…/metrics/job/…`. ptc-metrics appends
/// `/metrics/job/<job>/…` itself, so those would push to `/metrics/metrics/job/…`.
fn check_gateway_path(url: &Url) -> Result<(), ConfigError> {
    let path = url.path().trim_end_matches('/');
    let group = path
        .find("/metrics/job/")
        .or_else(|| path.strip_suffix("/metrics/job").map(str::len));
    let (cut, what) = if let Some(i) = group {
        (i, None)
    } else if let Some(b) = path.strip_suffix("/api/v1/metrics") {
        (b.len(), Some("API"))
    } else if let Some(b) = path.strip_suffix("/metrics") {
        (b.len(), Some("scrape"))
    } else {
        return Ok(());
    };
    let mut base = url.clone();
    base.set_path(&path[..cut]);
    base.set_query(None);
    base.set_fragment(None);
    let (given, base) = (crate::sink::http::redact(url), shown_url(&base));
    Err(ConfigError(match what {
        None => format!(
            "--gateway: {given} is a group's URL; give the Pushgateway's base URL, --gateway {base} \
             (the group comes from --job, --project, --branch and --label)"
        ),
        Some(what) => format!(
            "--gateway: {given} is the Pushgateway's {what} URL; give its base URL, --gateway {base} \
             (ptc-metrics adds /metrics/job/<job>/… itself)"
        ),
    }))
}

/// Parses the http(s) URL given to `flag`. The messages say what is wrong in plain words and
/// what to give: `shape` (`http://HOST:PORT`) and an example (the input with `http://` in front
/// when that is all it lacks, else `example`).
pub(crate) fn parse_http_url(
    flag: &str,
    given: &str,
    shape: &str,
    example: &str,
) -> Result<Url, ConfigError> {
    let shown = redact_str(given);
    if !given.contains("://") {
        let eg = Url::parse(&format!("http://{}", given.trim()))
            .ok()
            .filter(|u| !given.trim().is_empty() && u.host_str().is_some_and(|h| !h.is_empty()))
            .map_or_else(|| example.to_string(), |u| shown_url(&u));
        return Err(ConfigError(format!(
            "{flag}: {shown:?} is not a URL; give {shape}, e.g. {eg}"
        )));
    }
    let url = Url::parse(given).map_err(|e| {
        ConfigError(format!(
            "{flag}: {shown:?} is not a URL: {}; give {shape}, e.g. {example}",
            url_problem(&e.to_string())
        ))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ConfigError(format!(
            "{flag}: {} must be an http:// or https:// URL",
            crate::sink::http::redact(&url)
        )));
    }
    Ok(url)
}

/// The URL parser's reason in plain words.
fn url_problem(e: &str) -> String {
    match e {
        "empty host" => "it names no host".into(),
        "invalid port number" => "the port is not a number from 0 to 65535".into(),
        "invalid IPv4 address" | "invalid IPv6 address" => "the IP address is not valid".into(),
        "invalid international domain name" | "invalid domain character" => {
            "the host name holds characters a host name cannot have".into()
        }
        other => other.into(),
    }
}

/// A URL as messages show it: no password, and no lone `/` after the host.
pub(crate) fn shown_url(u: &Url) -> String {
    let s = crate::sink::http::redact(u);
    if u.path() == "/" && u.query().is_none() && u.fragment().is_none() {
        s.trim_end_matches('/').to_string()
    } else {
        s
    }
}

/// A URL-ish string with any `user:password@` hidden, for messages about unparsable URLs.
pub(crate) fn redact_str(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(i), Some(j)) if j > i => format!("{}***@{}", &s[..i + 3], &s[j + 1..]),
        (None, Some(j)) => format!("***@{}", &s[j + 1..]),
        _ => s.to_string(),
    }
}

/// The event sinks of `push` and `backfill` (docs/events.md).
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Also write the run's events (failures, violations, flaky and near-limit tests, and a
    /// summary) as NDJSON to this file (appended; created when missing), or to stdout with -.
    #[arg(long, value_name = "PATH|-", env = "PTC_METRICS_EVENTS")]
    pub events: Option<PathBuf>,
    /// An event for every test, not only the notable ones.
    #[arg(long, env = "PTC_METRICS_EVENTS_ALL", value_parser = clap::builder::BoolishValueParser::new())]
    pub events_all: bool,
    /// Also push the events to Loki's push API at this base URL (http://loki:3100; a tenant
    /// by --header 'X-Scope-OrgID: team-a'; credentials in the URL).
    #[arg(long, value_name = "URL", env = "PTC_METRICS_LOKI")]
    pub loki: Option<String>,
    /// Also index the events into Elasticsearch or OpenSearch at this base URL (_bulk
    /// create with _id = event_id; credentials in the URL). Needs --es-index.
    #[arg(long, value_name = "URL", env = "PTC_METRICS_ELASTICSEARCH")]
    pub elasticsearch: Option<String>,
    /// The index or data stream of --elasticsearch, e.g. logs-ptc-default.
    #[arg(long, value_name = "NAME", env = "PTC_METRICS_ES_INDEX")]
    pub es_index: Option<String>,
    /// Bound on one Loki or Elasticsearch request's body (uncompressed): 1MiB, 512KiB, 4MB.
    #[arg(
        long,
        value_name = "BYTES",
        env = "PTC_METRICS_EVENTS_BATCH_SIZE",
        default_value = "1MiB"
    )]
    pub events_batch_size: String,
}

impl EventsArgs {
    /// The events configuration, `None` when no event sink is given. `http` carries the
    /// command's --timeout, --retries, --ca-file, --deadline and --header; its auth is
    /// dropped (credentials of the metrics' destination are never sent to a log store).
    pub fn config(
        &self,
        http: &HttpConfig,
        ci: &CiContext,
    ) -> Result<Option<crate::config::EventsConfig>, ConfigError> {
        use crate::sink::events_file::EventsTarget;
        if self.es_index.is_some() && self.elasticsearch.is_none() {
            return Err(ConfigError(
                "--es-index is only used with --elasticsearch URL".into(),
            ));
        }
        let file = self.events.as_ref().map(|p| {
            if p.as_os_str() == "-" {
                EventsTarget::Stdout
            } else {
                EventsTarget::File(p.clone())
            }
        });
        let loki = self
            .loki
            .as_deref()
            .map(|u| parse_http_url("--loki", u, "http://HOST:PORT", "http://loki:3100"))
            .transpose()?;
        let elasticsearch = match &self.elasticsearch {
            None => None,
            Some(u) => {
                let url = parse_http_url(
                    "--elasticsearch",
                    u,
                    "http://HOST:PORT",
                    "http://elasticsearch:9200",
                )?;
                let index = self.es_index.clone().ok_or_else(|| {
                    ConfigError(
                        "--elasticsearch needs --es-index NAME (an index or data stream, e.g. logs-ptc-default)"
                            .into(),
                    )
                })?;
                check_index_name(&index)?;
                Some((url, index))
            }
        };
        if file.is_none() && loki.is_none() && elasticsearch.is_none() {
            if self.events_all {
                return Err(ConfigError(
                    "--events-all needs an event destination: --events PATH|-, --loki URL or --elasticsearch URL".into(),
                ));
            }
            return Ok(None);
        }
        let batch_bytes = backfill::parse_size(&self.events_batch_size)
            .map_err(|e| ConfigError(format!("--events-batch-size: {e}")))?;
        Ok(Some(crate::config::EventsConfig {
            file,
            all: self.events_all,
            loki,
            elasticsearch,
            http: HttpConfig {
                auth: Auth::None,
                ..http.clone()
            },
            batch_bytes,
            commit: ci.commit.clone(),
            ci_run_id: ci.run_id.clone(),
            run_url: ci.run_url.clone(),
        }))
    }
}

/// Elasticsearch's rules for index (and data stream) names: lower case, not `.` or `..`,
/// not starting with `-`, `_` or `+`, none of `\ / * ? " < > | , #`, space or `:`, at most
/// 255 bytes.
fn check_index_name(n: &str) -> Result<(), ConfigError> {
    let bad = n.is_empty()
        || n.len() > 255
        || n == "."
        || n == ".."
        || n.starts_with(['-', '_', '+'])
        || n.chars().any(|c| {
            c.is_uppercase()
                || matches!(
                    c,
                    '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ' ' | ':'
                )
        });
    if bad {
        return Err(ConfigError(format!(
            "--es-index: {n:?} is not a valid index name (lower case, no spaces or \\/*?\"<>|,#:, not starting with -, _ or +)"
        )));
    }
    Ok(())
}

/// Checks a `NAME: VALUE` header (`--header`).
pub(crate) fn parse_header(h: &str) -> Result<(String, String), ConfigError> {
    let Some((name, value)) = h.split_once(':') else {
        return Err(ConfigError(format!(
            "--header: {:?} is not of the form \"Name: value\"",
            name_only(h)
        )));
    };
    let name = name.trim();
    let value = value.trim();
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError(format!("--header: {name:?} is not a valid header name")))?;
    reqwest::header::HeaderValue::from_str(value).map_err(|_| {
        ConfigError(format!(
            "--header {name}: the value holds characters a header cannot carry"
        ))
    })?;
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "content-type"
            | "content-encoding"
            | "content-length"
            | "host"
            | "x-prometheus-remote-write-version"
    ) {
        return Err(ConfigError(format!(
            "--header: {name} is set by ptc-metrics itself"
        )));
    }
    Ok((name.to_string(), value.to_string()))
}

/// A header for messages: its name only (values may be secrets).
fn name_only(h: &str) -> &str {
    h.split([':', '=', ' ']).next().unwrap_or("")
}

/// `--deadline`, for the commands that deliver once (push, delete, prune).
#[derive(Debug, Args)]
pub struct DeadlineArgs {
    /// Bound on the whole delivery: every request, retry and backoff together (e.g. 2m, 30s).
    /// --timeout bounds each request.
    #[arg(
        long,
        value_name = "DURATION",
        env = "PTC_METRICS_DEADLINE",
        default_value = "2m"
    )]
    pub deadline: String,
}

impl DeadlineArgs {
    /// Sets the deadline of `http`.
    pub fn apply(&self, http: &mut HttpConfig) -> Result<(), ConfigError> {
        let d =
            parse_duration(&self.deadline).map_err(|e| ConfigError(format!("--deadline: {e}")))?;
        http.deadline = Some(d);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buckets_default_shown_is_the_default_used() {
        assert_eq!(
            parse_buckets(DEFAULT_BUCKETS_ARG).unwrap(),
            crate::derive::DEFAULT_BUCKETS.to_vec()
        );
    }
}
