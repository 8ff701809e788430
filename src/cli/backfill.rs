//! `backfill`: arguments and their validation into `BackfillConfig`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use reqwest::Url;

use super::{
    parse_header, parse_http_url, shown_url, ArchiveReadArgs, DeriveArgs, EventsArgs, GatewayArgs,
    GroupArgs, SeriesArgs,
};
use crate::backfill::{BackfillConfig, Defaults, ProgressMode, SinkConfig};
use crate::ci_env::CiContext;
use crate::config::{ConfigError, Shard};
use crate::sink::http::redact;
use crate::sink::remote_write::{check_path, PathCheck, RemoteWriteConfig, KNOWN_PATHS_TEXT};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProgressArg {
    /// A bar when stderr is a terminal, plain lines otherwise.
    Auto,
    /// Always the bar.
    Bar,
    /// Always plain lines (one every few seconds, one per phase).
    Plain,
}

#[derive(Debug, Args)]
#[command(
    after_help = "A run is one directory: its JUnit XML report(s), the size report (a *size*.json) and \
coverage.xml beside them, and an optional run.json (project, branch, labels, timestamp; written by \
`ptc-metrics push --archive DIR`); --job, --project, --branch, --label and --shard label the runs \
whose run.json does not set them. Quote glob patterns. Each run's samples carry its own timestamp; \
--state FILE makes repeated backfills deliver every run exactly once. See docs/backfill.md.

Exit status: 0 success; 2 bad usage, unreadable state or a source without reports; 3 delivery failed \
(the next backfill resumes), or --verify found runs not stored; 4 some runs could not be read and were \
skipped (the others were delivered)."
)]
pub struct BackfillArgs {
    /// Archive directories (searched recursively), report files, or quoted glob patterns
    /// such as 'ci-artifacts/**/report.xml'. `.gz` files are read directly.
    #[arg(
        value_name = "PATH|GLOB",
        env = "PTC_METRICS_BACKFILL_SOURCES",
        value_delimiter = ',',
        required = true
    )]
    pub sources: Vec<String>,
    /// Prometheus remote write 1.0 endpoint: Prometheus http://HOST:9090/api/v1/write
    /// (--web.enable-remote-write-receiver and an out_of_order_time_window covering the
    /// archive), VictoriaMetrics /api/v1/write, Mimir/Cortex /api/v1/push, Thanos Receive
    /// /api/v1/receive.
    #[arg(long, value_name = "URL", env = "PTC_METRICS_REMOTE_WRITE")]
    pub remote_write: Option<String>,
    /// After each remote-write batch, ask this Prometheus query API (its base URL: Prometheus
    /// http://HOST:9090, VictoriaMetrics http://HOST:8428, Mimir http://HOST/prometheus) whether
    /// the runs just sent are stored; runs that are not are not marked delivered, and the
    /// backfill exits 3. A receiver can answer 2xx and store nothing (a wrong path, samples
    /// outside its retention).
    #[arg(long, value_name = "URL", env = "PTC_METRICS_VERIFY")]
    pub verify: Option<String>,
    /// Write an OpenMetrics file for `promtool tsdb create-blocks-from openmetrics FILE DIR`.
    #[arg(long, value_name = "FILE", env = "PTC_METRICS_OPENMETRICS")]
    pub openmetrics: Option<PathBuf>,
    /// State file: runs delivered (by content hash) and running totals. Required for
    /// repeated backfills (cron); one per destination.
    #[arg(long, value_name = "FILE", env = "PTC_METRICS_STATE")]
    pub state: Option<PathBuf>,
    /// Extra HTTP header for --remote-write, --gateway, --loki and --elasticsearch, e.g. a
    /// tenant: "X-Scope-OrgID: team-a" (Mimir/Cortex/Loki) or "THANOS-TENANT: team-a". Repeatable.
    #[arg(
        long = "header",
        value_name = "NAME: VALUE",
        env = "PTC_METRICS_HEADER",
        hide_env_values = true
    )]
    pub headers: Vec<String>,
    /// List the runs that would be delivered (stdout) and deliver nothing; the state is read, not written.
    #[arg(long, env = "PTC_METRICS_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
    /// Cut remote-write requests at about this size (uncompressed), e.g. 512KiB, 4MiB (max 16MiB).
    #[arg(
        long,
        value_name = "BYTES",
        env = "PTC_METRICS_BATCH_SIZE",
        default_value = "1MiB"
    )]
    pub batch_size: String,
    #[command(flatten)]
    pub archive: ArchiveReadArgs,
    /// How progress is shown on stderr.
    #[arg(
        long,
        value_enum,
        value_name = "HOW",
        env = "PTC_METRICS_PROGRESS",
        default_value = "auto"
    )]
    pub progress: ProgressArg,
    /// Forget a batch an interrupted backfill left unacknowledged instead of sending it
    /// again (only when the destination refused it for good).
    #[arg(long, env = "PTC_METRICS_DISCARD_PENDING", value_parser = clap::builder::BoolishValueParser::new())]
    pub discard_pending: bool,
    #[command(flatten)]
    pub group: GroupArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub derive: DeriveArgs,
    #[command(flatten)]
    pub series: SeriesArgs,
    #[command(flatten)]
    pub events: EventsArgs,
}

/// Parses `1MiB`, `512KiB`, `64k`, `2M` or a number of bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = [
        ("mib", 1 << 20),
        ("mb", 1 << 20),
        ("m", 1 << 20),
        ("kib", 1 << 10),
        ("kb", 1 << 10),
        ("k", 1 << 10),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suf, m)| lower.strip_suffix(suf).map(|n| (n.trim().to_string(), *m)))
    .unwrap_or((lower.clone(), 1));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write e.g. 1MiB, 512KiB or 65536"))?;
    let bytes = n * mult as f64;
    if !(1024.0..=16.0 * 1024.0 * 1024.0).contains(&bytes) {
        return Err(format!("{s:?} must be between 1KiB and 16MiB"));
    }
    Ok(bytes as usize)
}

/// `--verify URL`: the base URL of a Prometheus query API (`/api/v1/query` is added).
fn verify_url(v: &str) -> Result<Url, ConfigError> {
    let url = parse_http_url("--verify", v, "http://HOST:PORT", "http://prometheus:9090")?;
    if let Some(i) = url.path().find("/api/v1/") {
        let mut base = url.clone();
        base.set_path(&url.path()[..i]);
        base.set_query(None);
        base.set_fragment(None);
        return Err(ConfigError(format!(
            "--verify: {} is an API endpoint; give the base URL of the receiver's query API, \
             --verify {} (ptc-metrics adds /api/v1/query)",
            redact(&url),
            shown_url(&base)
        )));
    }
    Ok(url)
}

impl BackfillArgs {
    pub fn into_config(self) -> Result<BackfillConfig, ConfigError> {
        let derive = self.derive.config(Some(&self.series))?;
        let mut http = self.gateway.http()?;
        for h in &self.headers {
            http.headers.push(parse_header(h)?);
        }
        // Commit and CI run id come from each run's run.json, not from this environment.
        let events = self.events.config(&http, &CiContext::default())?;
        let gateway = self.gateway.gateway_url()?;
        let remote_write = match &self.remote_write {
            None => None,
            Some(u) => Some(parse_http_url(
                "--remote-write",
                u,
                "http://HOST:PORT/PATH",
                "http://prometheus:9090/api/v1/write",
            )?),
        };
        let verify = match &self.verify {
            None => None,
            Some(v) => Some(verify_url(v)?),
        };
        let mut warnings = Vec::new();
        if let Some(url) = &remote_write {
            match check_path(url) {
                PathCheck::Known => {}
                PathCheck::Wrong { what, advice } => {
                    return Err(ConfigError(format!(
                        "--remote-write: {} is {what}; {advice}",
                        redact(url)
                    )))
                }
                PathCheck::Unknown => warnings.push(format!(
                    "--remote-write {}: {} is no remote-write path ptc-metrics knows ({KNOWN_PATHS_TEXT}); {}",
                    redact(url),
                    url.path(),
                    if verify.is_some() {
                        "--verify checks that the runs arrive"
                    } else {
                        "if it answers 2xx without storing them, the runs are lost: add --verify URL (the \
                         receiver's query API) to check that they arrive"
                    }
                )),
            }
        } else if verify.is_some() {
            return Err(ConfigError(
                "--verify checks what --remote-write delivers; give --remote-write URL as well"
                    .into(),
            ));
        }
        let given = [
            remote_write.is_some(),
            self.openmetrics.is_some(),
            gateway.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given > 1 {
            return Err(ConfigError(
                "give only one of --remote-write, --openmetrics and --gateway (one state file per destination)".into(),
            ));
        }
        let sink = if let Some(url) = remote_write {
            SinkConfig::RemoteWrite(RemoteWriteConfig { url, http })
        } else if let Some(p) = self.openmetrics {
            SinkConfig::OpenMetrics(p)
        } else if let Some(url) = gateway {
            SinkConfig::Gateway { url, http }
        } else if self.dry_run {
            SinkConfig::None
        } else {
            return Err(ConfigError(
                "no destination: give --remote-write URL, --openmetrics FILE or --gateway URL (or --dry-run to list the runs)".into(),
            ));
        };
        // No CI detection: the archived runs are not this job's.
        let job = self.group.job()?;
        let mut labels = self.group.labels()?;
        if let Some(v) = self
            .group
            .shard(&CiContext::default())?
            .and_then(|s| s.label_value())
        {
            labels.push((Shard::LABEL.to_string(), v));
        }
        let batch_bytes =
            parse_size(&self.batch_size).map_err(|e| ConfigError(format!("--batch-size: {e}")))?;
        let jobs = self.archive.jobs()?;
        Ok(BackfillConfig {
            events,
            sources: self.sources,
            sink,
            state: self.state,
            dry_run: self.dry_run,
            derive,
            defaults: Defaults {
                job,
                project: self.group.project,
                branch: self.group.branch,
                labels,
                junit_prefix: self.archive.junit_prefix,
            },
            batch_bytes,
            jobs,
            progress: match self.progress {
                ProgressArg::Auto => ProgressMode::Auto,
                ProgressArg::Bar => ProgressMode::Bar,
                ProgressArg::Plain => ProgressMode::Plain,
            },
            discard_pending: self.discard_pending,
            soft_fail: self.gateway.soft_fail,
            verify,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn cfg(args: &[&str]) -> Result<BackfillConfig, ConfigError> {
        let mut v = vec!["ptc-metrics", "backfill"];
        v.extend_from_slice(args);
        let cli = Cli::try_parse_from(v).map_err(|e| ConfigError(e.to_string()))?;
        match cli.command {
            Command::Backfill(a) => a.into_config(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn flags_become_config() {
        let c = cfg(&[
            "archive/",
            "ci/**/report.xml",
            "--remote-write",
            "http://u:pw@prom:9090/api/v1/write",
            "--header",
            "X-Scope-OrgID: team-a",
            "--state",
            "b.state",
            "--batch-size",
            "64k",
            "--project",
            "shop",
            "--label",
            "os=linux",
            "--retries",
            "5",
        ])
        .unwrap();
        assert_eq!(c.sources, vec!["archive/", "ci/**/report.xml"]);
        let SinkConfig::RemoteWrite(rw) = &c.sink else {
            panic!()
        };
        assert_eq!(
            rw.http.headers,
            vec![("X-Scope-OrgID".into(), "team-a".into())]
        );
        assert_eq!(rw.http.retries, 5);
        assert_eq!(c.sink.target(), "http://u:***@prom:9090/api/v1/write");
        assert_eq!(c.batch_bytes, 65536);
        assert_eq!(c.defaults.project.as_deref(), Some("shop"));
        assert_eq!(c.defaults.labels, vec![("os".into(), "linux".into())]);
        assert!(c.jobs >= 1);
        // --shard labels the runs whose run.json names none, like --label.
        let c = cfg(&["a", "--dry-run", "--shard", "2/4", "--label", "os=linux"]).unwrap();
        assert_eq!(
            c.defaults.labels,
            vec![
                ("os".into(), "linux".into()),
                ("shard".into(), "2/4".into())
            ]
        );
        let c = cfg(&["a", "--dry-run", "--shard", "1/1"]).unwrap();
        assert!(c.defaults.labels.is_empty());
        let c = cfg(&["a", "--openmetrics", "out.om"]).unwrap();
        assert_eq!(c.sink, SinkConfig::OpenMetrics("out.om".into()));
        assert_eq!(cfg(&["a", "--dry-run"]).unwrap().sink, SinkConfig::None);
    }

    #[test]
    fn exact_errors() {
        assert_eq!(
            cfg(&["a"]).unwrap_err().0,
            "no destination: give --remote-write URL, --openmetrics FILE or --gateway URL (or --dry-run to list the runs)"
        );
        assert_eq!(
            cfg(&["a", "--openmetrics", "x", "--gateway", "http://g:9091"])
                .unwrap_err()
                .0,
            "give only one of --remote-write, --openmetrics and --gateway (one state file per destination)"
        );
        assert_eq!(
            cfg(&["a", "--remote-write", "ftp://x"]).unwrap_err().0,
            "--remote-write: ftp://x/ must be an http:// or https:// URL"
        );
        assert_eq!(
            cfg(&["a", "--remote-write", "vm:8428/api/v1/write"])
                .unwrap_err()
                .0,
            "--remote-write: \"vm:8428/api/v1/write\" is not a URL; give http://HOST:PORT/PATH, \
             e.g. http://vm:8428/api/v1/write"
        );
        assert_eq!(
            cfg(&["a", "--remote-write", "http://[::1/api/v1/write"]).unwrap_err().0,
            "--remote-write: \"http://[::1/api/v1/write\" is not a URL: the IP address is not valid; \
             give http://HOST:PORT/PATH, e.g. http://prometheus:9090/api/v1/write"
        );
        assert_eq!(
            cfg(&["a", "--dry-run", "--header", "Authorization=Bearer s3cret"])
                .unwrap_err()
                .0,
            "--header: \"Authorization\" is not of the form \"Name: value\""
        );
        assert_eq!(
            cfg(&["a", "--dry-run", "--header", "Content-Encoding: gzip"])
                .unwrap_err()
                .0,
            "--header: Content-Encoding is set by ptc-metrics itself"
        );
        assert_eq!(
            cfg(&["a", "--dry-run", "--batch-size", "64"])
                .unwrap_err()
                .0,
            "--batch-size: \"64\" must be between 1KiB and 16MiB"
        );
        assert!(cfg(&["--dry-run"]).is_err(), "a source is required");
        assert_eq!(
            cfg(&["a", "--dry-run", "--shard", "5/4"]).unwrap_err().0,
            "--shard 5/4: INDEX must be between 1 and TOTAL (4)"
        );
        assert_eq!(
            cfg(&["a", "--dry-run", "--label", "shard=1/2"])
                .unwrap_err()
                .0,
            "--label: use --shard to set the shard label"
        );
        assert_eq!(
            cfg(&["a", "--dry-run", "--job", ""]).unwrap_err().0,
            "--job: the job name must not be empty"
        );
        // Backfill never reads the CI environment: the archived runs are not this job's.
        let err = cfg(&["a", "--dry-run", "--no-ci-detect"]).unwrap_err().0;
        assert!(err.contains("--no-ci-detect"), "{err}");
    }

    #[test]
    fn remote_write_paths_of_something_else_are_refused_with_what_to_give() {
        let err = |u: &str| cfg(&["a", "--remote-write", u]).unwrap_err().0;
        assert_eq!(
            err("http://vm:8428/write"),
            "--remote-write: http://vm:8428/write is VictoriaMetrics' InfluxDB line-protocol endpoint \
             (it answers 204 to a remote-write body and stores nothing); give --remote-write \
             http://vm:8428/api/v1/write"
        );
        assert_eq!(
            err("http://vminsert:8480/insert/42/influx/write"),
            "--remote-write: http://vminsert:8480/insert/42/influx/write is an InfluxDB line-protocol \
             endpoint (VictoriaMetrics answers 204 to a remote-write body there and stores nothing); \
             give --remote-write http://vminsert:8480/insert/42/prometheus/api/v1/write"
        );
        assert_eq!(
            err("http://vm:8428/api/v2/write"),
            "--remote-write: http://vm:8428/api/v2/write is an InfluxDB line-protocol endpoint \
             (VictoriaMetrics answers 204 to a remote-write body there and stores nothing); give \
             --remote-write http://vm:8428/api/v1/write"
        );
        assert_eq!(
            err("http://vm:8428/api/v1/import/prometheus"),
            "--remote-write: http://vm:8428/api/v1/import/prometheus is VictoriaMetrics' import \
             endpoint (JSON lines, text, CSV or native blocks, not remote write); give --remote-write \
             http://vm:8428/api/v1/write"
        );
        assert_eq!(
            err("https://u:pw@prom:9090/metrics"),
            "--remote-write: https://u:***@prom:9090/metrics is a scrape endpoint (it serves metrics, \
             it does not take them); give --remote-write https://u:***@prom:9090/api/v1/write"
        );
        assert_eq!(
            err("http://prom:9090/api/v1/query_range?query=up"),
            "--remote-write: http://prom:9090/api/v1/query_range?query=up is a query API URL (it \
             answers queries; give it to --verify to check a backfill); give --remote-write \
             http://prom:9090/api/v1/write"
        );
        assert_eq!(
            err("http://pushgateway:9091/metrics/job/pytest"),
            "--remote-write: http://pushgateway:9091/metrics/job/pytest is a Pushgateway group URL \
             (the Pushgateway keeps no timestamps; `--gateway http://pushgateway:9091` pushes the \
             newest run of each group there); give a remote-write receiver, e.g. --remote-write \
             http://prometheus:9090/api/v1/write"
        );
        for ok in [
            "http://prom:9090/api/v1/write",
            "http://vm:8428/prometheus/api/v1/write",
            "http://vminsert:8480/insert/0:1/prometheus/api/v1/write",
            "http://mimir/api/v1/push",
            "http://cortex/api/prom/push",
            "http://thanos:19291/api/v1/receive",
        ] {
            let c = cfg(&["a", "--remote-write", ok]).unwrap();
            assert!(c.warnings.is_empty(), "{ok}: {:?}", c.warnings);
        }
    }

    #[test]
    fn an_unknown_remote_write_path_is_a_warning_and_verify_takes_a_query_api() {
        let c = cfg(&["a", "--remote-write", "https://rw.example/ingest"]).unwrap();
        assert_eq!(
            c.warnings,
            vec![
                "--remote-write https://rw.example/ingest: /ingest is no remote-write path ptc-metrics \
                 knows (Prometheus and VictoriaMetrics /api/v1/write, Mimir and Cortex /api/v1/push or \
                 /api/prom/push, Thanos Receive /api/v1/receive, VictoriaMetrics cluster \
                 /insert/<tenant>/prometheus/api/v1/write); if it answers 2xx without storing them, the \
                 runs are lost: add --verify URL (the receiver's query API) to check that they arrive"
            ]
        );
        assert_eq!(c.verify, None);
        let c = cfg(&[
            "a",
            "--remote-write",
            "https://rw.example/ingest",
            "--verify",
            "https://q.example/prometheus",
        ])
        .unwrap();
        assert!(
            c.warnings[0].ends_with("; --verify checks that the runs arrive"),
            "{:?}",
            c.warnings
        );
        assert_eq!(
            c.verify.as_ref().map(|u| u.as_str()),
            Some("https://q.example/prometheus")
        );
        assert_eq!(
            cfg(&[
                "a",
                "--remote-write",
                "http://p:9090/api/v1/write",
                "--verify",
                "http://p:9090/api/v1/query"
            ])
            .unwrap_err()
            .0,
            "--verify: http://p:9090/api/v1/query is an API endpoint; give the base URL of the \
             receiver's query API, --verify http://p:9090 (ptc-metrics adds /api/v1/query)"
        );
        assert_eq!(
            cfg(&["a", "--openmetrics", "x.om", "--verify", "http://p:9090"])
                .unwrap_err()
                .0,
            "--verify checks what --remote-write delivers; give --remote-write URL as well"
        );
        assert_eq!(
            cfg(&[
                "a",
                "--remote-write",
                "http://p:9090/api/v1/write",
                "--verify",
                "p:9090"
            ])
            .unwrap_err()
            .0,
            "--verify: \"p:9090\" is not a URL; give http://HOST:PORT, e.g. http://p:9090"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("2m").unwrap(), 2 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("32MiB").is_err());
        assert!(parse_size("lots").is_err());
    }
}
