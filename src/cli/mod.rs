//! Command line (clap derive). Every flag can also come from a `PTC_METRICS_*`
//! environment variable; flags win. Each command's arguments live in their own file and
//! turn into the validated structs of `crate::config` (`into_config`); the argument
//! groups several commands share (inputs, derivation, group labels, HTTP) live here.

mod backfill;
mod inspect;
mod prune;
mod push;

pub use backfill::{BackfillArgs, ProgressArg};
pub use inspect::{ColorArg, FormatArg, InspectArgs};
pub use prune::PruneArgs;
pub use push::{DeleteArgs, MethodArg, PushArgs};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use reqwest::Url;

use crate::ci_env::CiContext;
use crate::config::{check_label_name, parse_buckets, parse_duration, ConfigError, GroupConfig};
use crate::derive::{DeriveConfig, PerTestConfig, DEFAULT_BUCKETS};
use crate::read::Inputs;
use crate::sink::http::{Auth, HttpConfig, Secret};

#[derive(Debug, Parser)]
#[command(
    name = "ptc-metrics",
    version,
    about = "Turn pytest JUnit XML and pytest-test-categories reports into Prometheus metrics",
    after_help = "Exit status: 0 success; 1 internal error; 2 bad usage or unreadable input; \
                  3 delivery failed after retries (0 with --soft-fail); 4 backfill: some runs \
                  could not be read and were skipped, the others were delivered."
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
    /// Upper bounds of the pytest_test_duration_seconds histogram, comma-separated.
    #[arg(long, value_name = "LIST", env = "PTC_METRICS_BUCKETS")]
    pub buckets: Option<String>,
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
    /// At most this many uncovered_lines{file} series (the files with most uncovered lines).
    #[arg(
        long,
        value_name = "N",
        env = "PTC_METRICS_MAX_COVERAGE_FILES",
        default_value_t = 100
    )]
    pub max_coverage_files: usize,
}

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
    /// Project label (default: detected from the CI environment).
    #[arg(long, value_name = "NAME", env = "PTC_METRICS_PROJECT")]
    pub project: Option<String>,
    /// Branch label (default: detected from the CI environment).
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
    /// Do not read project, branch and CI job from CI environment variables.
    #[arg(long, env = "PTC_METRICS_NO_CI_DETECT")]
    pub no_ci_detect: bool,
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
    #[arg(long, env = "PTC_METRICS_SOFT_FAIL")]
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
    pub fn config(&self) -> Result<DeriveConfig, ConfigError> {
        if !(self.near_limit_ratio > 0.0 && self.near_limit_ratio <= 1.0) {
            return Err(ConfigError(format!(
                "--near-limit-ratio: {} must be above 0 and at most 1",
                self.near_limit_ratio
            )));
        }
        if let Some(r) = self.per_test_sample {
            if !(0.0..=1.0).contains(&r) {
                return Err(ConfigError(format!(
                    "--per-test-sample: {r} must be between 0 and 1"
                )));
            }
        }
        if let Some(t) = self.per_test_slower_than {
            if !t.is_finite() || t < 0.0 {
                return Err(ConfigError(format!(
                    "--per-test-slower-than: {t} must be a number of seconds ≥ 0"
                )));
            }
        }
        Ok(DeriveConfig {
            near_limit_ratio: self.near_limit_ratio,
            buckets: match &self.buckets {
                Some(b) => parse_buckets(b)?,
                None => DEFAULT_BUCKETS.to_vec(),
            },
            per_test: PerTestConfig {
                slower_than: self.per_test_slower_than,
                sample_rate: self.per_test_sample,
                max_series: self.max_per_test_series,
            },
            max_coverage_files: self.max_coverage_files,
        })
    }
}

impl GroupArgs {
    /// The group, with project/branch/CI job from `ci` where no flag gave them.
    pub fn config(&self, ci: &CiContext) -> Result<GroupConfig, ConfigError> {
        if self.job.is_empty() {
            return Err(ConfigError("--job: the job name must not be empty".into()));
        }
        let ci = if self.no_ci_detect {
            CiContext::default()
        } else {
            ci.clone()
        };
        let mut grouping = Vec::new();
        if let Some(p) = self.project.clone().or(ci.project) {
            grouping.push(("project".to_string(), p));
        }
        if let Some(b) = self.branch.clone().or(ci.branch) {
            grouping.push(("branch".to_string(), b));
        }
        let mut explicit = Vec::new();
        for l in &self.labels {
            let Some((k, v)) = l.split_once('=') else {
                return Err(ConfigError(format!(
                    "--label: {l:?} is not of the form name=value"
                )));
            };
            let k = k.trim();
            check_label_name(k, "--label")?;
            if k == "project" || k == "branch" {
                return Err(ConfigError(format!(
                    "--label: use --{k} to set the {k} label"
                )));
            }
            if explicit.iter().any(|(e, _): &(String, String)| e == k) {
                return Err(ConfigError(format!("--label: {k:?} is given twice")));
            }
            explicit.push((k.to_string(), v.to_string()));
        }
        if let Some(j) = ci.job {
            if !explicit.iter().any(|(k, _)| k == "ci_job") {
                grouping.push(("ci_job".to_string(), j));
            }
        }
        grouping.extend(explicit);
        Ok(GroupConfig {
            job: self.job.clone(),
            grouping,
        })
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
        let url = Url::parse(g).map_err(|e| {
            ConfigError(format!(
                "--gateway: {:?} is not a URL ({e}); write e.g. http://pushgateway:9091",
                redact_str(g)
            ))
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(ConfigError(format!(
                "--gateway: {} must be an http:// or https:// URL",
                crate::sink::http::redact(&url)
            )));
        }
        Ok(Some(url))
    }
}

/// A URL-ish string with any `user:password@` hidden, for messages about unparsable URLs.
pub(crate) fn redact_str(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(i), Some(j)) if j > i => format!("{}***@{}", &s[..i + 3], &s[j + 1..]),
        _ => s.to_string(),
    }
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
