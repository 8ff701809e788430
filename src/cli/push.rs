//! `push` and `delete`: arguments and their validation into `PushConfig`/`DeleteConfig`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{
    parse_header, CiDetectArgs, DeadlineArgs, DeriveArgs, EventsArgs, GatewayArgs, GroupArgs,
    InputArgs, SeriesArgs,
};
use crate::ci_env::CiContext;
use crate::config::{
    ConfigError, DeleteConfig, Delivery, PushConfig, PushgatewaySink, RunGroup, RUN_GROUP_SHARD,
};
use crate::sink::pushgateway::{PushMethod, PushgatewayConfig};
use crate::sink::textfile::TextfileConfig;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum MethodArg {
    /// Replace the whole group.
    Put,
    /// Replace only the metric names pushed.
    Post,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub group: GroupArgs,
    #[command(flatten)]
    pub detect: CiDetectArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub deadline: DeadlineArgs,
    #[command(flatten)]
    pub derive: DeriveArgs,
    #[command(flatten)]
    pub series: SeriesArgs,
    /// Print the exposition to stdout and push nothing.
    #[arg(long, env = "PTC_METRICS_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
    /// HTTP method of the push.
    #[arg(long, value_enum, env = "PTC_METRICS_METHOD", default_value = "put")]
    pub method: MethodArg,
    /// Push this run's cumulative values alone instead of adding them to the group's.
    #[arg(long, env = "PTC_METRICS_NO_ACCUMULATE", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_accumulate: bool,
    /// Send the body uncompressed (for Pushgateway older than 1.5).
    #[arg(long, env = "PTC_METRICS_NO_GZIP", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_gzip: bool,
    /// Write the metrics to this file for node_exporter's textfile collector (a name ending
    /// in .prom, in its --collector.textfile.directory), alone or as well as --gateway. The
    /// file is replaced atomically; cumulative series continue from its previous values.
    #[arg(long, value_name = "PATH", env = "PTC_METRICS_TEXTFILE")]
    pub textfile: Option<PathBuf>,
    /// Also copy the run's reports into a new directory under DIR, with a run.json holding
    /// its project, branch, labels (shard included), timestamp, commit and CI run id, for
    /// `ptc-metrics backfill DIR`.
    #[arg(long, value_name = "DIR", env = "PTC_METRICS_ARCHIVE")]
    pub archive: Option<PathBuf>,
    /// The CI run this job belongs to, the same in every shard of a split run (detected:
    /// GitHub's run id and attempt, GitLab's pipeline, Jenkins' BUILD_TAG, CircleCI's
    /// workflow, Buildkite's build, Azure's build id). Shards of one run use it to count the
    /// run once (runs with timing violations); kept in run.json with --archive.
    #[arg(long, value_name = "ID", env = "PTC_METRICS_RUN_ID")]
    pub run_id: Option<String>,
    #[command(flatten)]
    pub events: EventsArgs,
    /// Extra HTTP header for the event sinks (--loki, --elasticsearch), e.g. a Loki tenant:
    /// --header 'X-Scope-OrgID: team-a'. Repeatable.
    #[arg(
        long = "header",
        value_name = "NAME: VALUE",
        env = "PTC_METRICS_HEADER",
        hide_env_values = true
    )]
    pub headers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub group: GroupArgs,
    #[command(flatten)]
    pub detect: CiDetectArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub deadline: DeadlineArgs,
}

impl PushArgs {
    pub fn into_config(self, ci: &CiContext) -> Result<PushConfig, ConfigError> {
        let mut ci = self.detect.context(ci);
        if let Some(id) = self.run_id.as_deref().map(str::trim) {
            if id.is_empty() {
                return Err(ConfigError(
                    "--run-id is empty: give the CI run's id, the same in every shard of the run"
                        .into(),
                ));
            }
            ci.run_id = Some(id.to_string());
        }
        let inputs = self.input.inputs()?;
        let derive = self.derive.config(Some(&self.series))?;
        let group = self.group.config(&ci)?;
        let mut http = self.gateway.http()?;
        self.deadline.apply(&mut http)?;
        let url = self.gateway.gateway_url()?;
        let textfile = self.textfile.as_deref().map(textfile_config).transpose()?;
        let mut event_http = http.clone();
        for h in &self.headers {
            event_http.headers.push(parse_header(h)?);
        }
        let events = self.events.config(&event_http, &ci)?;
        if !self.headers.is_empty() && !events.as_ref().is_some_and(|e| e.has_network()) {
            return Err(ConfigError(
                "--header is sent to --loki and --elasticsearch only; give one of them".into(),
            ));
        }
        if let Some(e) = &events {
            if e.file == Some(crate::sink::events_file::EventsTarget::Stdout) && self.dry_run {
                return Err(ConfigError(
                    "--events - and --dry-run both write to stdout; give --events a file".into(),
                ));
            }
        }
        let delivery = if self.dry_run {
            Delivery::DryRun
        } else {
            if url.is_none() && textfile.is_none() {
                return Err(ConfigError(
                    "no destination: give --gateway URL (or PTC_METRICS_GATEWAY), --textfile PATH, or --dry-run to print the metrics".into(),
                ));
            }
            Delivery::Sinks {
                pushgateway: url.map(|url| {
                    let gateway = PushgatewayConfig {
                        url,
                        job: group.job.clone(),
                        grouping: group.grouping.clone(),
                        method: match self.method {
                            MethodArg::Put => PushMethod::Put,
                            MethodArg::Post => PushMethod::Post,
                        },
                        gzip: !self.no_gzip,
                    };
                    let run_group = run_group(&gateway, &ci);
                    Box::new(PushgatewaySink {
                        gateway: Box::new(gateway),
                        http,
                        run_group,
                    })
                }),
                textfile,
                accumulate: !self.no_accumulate,
            }
        };
        let archive = self.archive.map(|dir| crate::config::ArchiveConfig {
            dir,
            commit: ci.commit.clone(),
            run_id: ci.run_id.clone(),
            run_url: ci.run_url.clone(),
            ci_provider: ci.provider.map(str::to_string),
        });
        Ok(PushConfig {
            inputs,
            derive,
            group,
            delivery,
            soft_fail: self.gateway.soft_fail,
            archive,
            events,
        })
    }
}

/// The run group of a shard's push (its grouping with `shard="all"`); `None` for a run in
/// one piece.
fn run_group(gateway: &PushgatewayConfig, ci: &CiContext) -> Option<RunGroup> {
    let mut g = gateway.clone();
    let shard = g.grouping.iter_mut().find(|(k, _)| k == "shard")?;
    shard.1 = RUN_GROUP_SHARD.to_string();
    g.method = PushMethod::Put;
    Some(RunGroup {
        gateway: g,
        run: ci.run_id.clone(),
    })
}

/// `--textfile PATH`: a file name node_exporter's textfile collector will read (`*.prom`).
pub(crate) fn textfile_config(p: &std::path::Path) -> Result<TextfileConfig, ConfigError> {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .filter(|n| !n.is_empty());
    let Some(name) = name else {
        return Err(ConfigError(format!(
            "--textfile: {:?} is not a file name; write e.g. /var/lib/node_exporter/textfile/pytest.prom",
            p.display().to_string()
        )));
    };
    if !name.ends_with(".prom") || name.starts_with('.') {
        return Err(ConfigError(format!(
            "--textfile: {:?} would be ignored: node_exporter's textfile collector reads only files \
             named *.prom (not hidden); write e.g. {}",
            p.display().to_string(),
            p.with_file_name("pytest.prom").display()
        )));
    }
    Ok(TextfileConfig {
        path: p.to_path_buf(),
    })
}

impl DeleteArgs {
    pub fn into_config(mut self, ci: &CiContext) -> Result<DeleteConfig, ConfigError> {
        // `--shard all`: the group a split run's shards share (runs with timing violations).
        let run_group = self.group.shard.as_deref().map(str::trim) == Some(RUN_GROUP_SHARD);
        if run_group {
            self.group.shard = None;
        }
        let mut group = self.group.config(&self.detect.context(ci))?;
        if run_group {
            group.grouping.retain(|(k, _)| k != "shard");
            group
                .grouping
                .push(("shard".to_string(), RUN_GROUP_SHARD.to_string()));
        }
        let mut http = self.gateway.http()?;
        self.deadline.apply(&mut http)?;
        let Some(url) = self.gateway.gateway_url()? else {
            return Err(ConfigError(
                "no Pushgateway: give --gateway URL (or PTC_METRICS_GATEWAY)".into(),
            ));
        };
        Ok(DeleteConfig {
            gateway: PushgatewayConfig {
                url,
                job: group.job,
                grouping: group.grouping,
                method: PushMethod::Put,
                gzip: false,
            },
            http,
            soft_fail: self.gateway.soft_fail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn push(args: &[&str]) -> Result<PushConfig, ConfigError> {
        let mut v = vec!["ptc-metrics", "push"];
        v.extend_from_slice(args);
        let cli = Cli::try_parse_from(v).unwrap();
        match cli.command {
            Command::Push(p) => p.into_config(&CiContext::default()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn flags_become_config() {
        let c = push(&[
            "r.xml",
            "--gateway",
            "http://gw:9091",
            "--project",
            "app",
            "--label",
            "os=linux",
        ])
        .unwrap();
        assert_eq!(
            c.group.grouping,
            vec![
                ("project".into(), "app".into()),
                ("os".into(), "linux".into())
            ]
        );
        let Delivery::Sinks {
            pushgateway: Some(gw),
            textfile: None,
            accumulate,
        } = c.delivery
        else {
            panic!()
        };
        assert!(accumulate);
        assert_eq!(
            gw.gateway.group_path(),
            "/metrics/job/pytest/project/app/os/linux"
        );
    }

    #[test]
    fn exact_errors() {
        assert_eq!(
            push(&["r.xml"]).unwrap_err().0,
            "no destination: give --gateway URL (or PTC_METRICS_GATEWAY), --textfile PATH, or --dry-run to print the metrics"
        );
        assert_eq!(
            push(&["r.xml", "--dry-run", "--label", "novalue"])
                .unwrap_err()
                .0,
            "--label: \"novalue\" is not of the form name=value"
        );
        assert_eq!(
            push(&["r.xml", "--gateway", "ftp://x"]).unwrap_err().0,
            "--gateway: ftp://x/ must be an http:// or https:// URL"
        );
        assert_eq!(
            push(&["r.xml", "--gateway", "http://u:pw@", "--dry-run"]).unwrap_err().0,
            "--gateway: \"http://***@\" is not a URL: it names no host; give http://HOST:PORT, e.g. http://pushgateway:9091"
        );
        assert_eq!(
            push(&["--dry-run"]).unwrap_err().0,
            "no report given: pass the JUnit XML file(s) pytest wrote with --junitxml"
        );
    }

    #[test]
    fn a_scrape_or_group_url_as_gateway_says_what_to_give() {
        let err = |g: &str| push(&["r.xml", "--gateway", g]).unwrap_err().0;
        assert_eq!(
            err("http://host:9091/metrics"),
            "--gateway: http://host:9091/metrics is the Pushgateway's scrape URL; give its base URL, \
             --gateway http://host:9091 (ptc-metrics adds /metrics/job/<job>/… itself)"
        );
        assert_eq!(
            err("https://u:pw@gw.example/pushgateway/metrics/"),
            "--gateway: https://u:***@gw.example/pushgateway/metrics/ is the Pushgateway's scrape URL; give \
             its base URL, --gateway https://u:***@gw.example/pushgateway (ptc-metrics adds \
             /metrics/job/<job>/… itself)"
        );
        assert_eq!(
            err("http://host:9091/metrics/job/pytest/project/shop"),
            "--gateway: http://host:9091/metrics/job/pytest/project/shop is a group's URL; give the \
             Pushgateway's base URL, --gateway http://host:9091 (the group comes from --job, --project, \
             --branch and --label)"
        );
        assert_eq!(
            err("http://host:9091/api/v1/metrics"),
            "--gateway: http://host:9091/api/v1/metrics is the Pushgateway's API URL; give its base URL, \
             --gateway http://host:9091 (ptc-metrics adds /metrics/job/<job>/… itself)"
        );
        // A base URL with a path prefix (a gateway behind a proxy) is fine.
        let c = push(&["r.xml", "--gateway", "http://proxy/pushgateway"]).unwrap();
        let gw = gateway_of(c.delivery);
        assert_eq!(
            gw.gateway.group_url().as_str(),
            "http://proxy/pushgateway/metrics/job/pytest"
        );
    }

    #[test]
    fn a_gateway_that_is_not_a_url_says_what_to_give() {
        let err = |g: &str| push(&["r.xml", "--gateway", g]).unwrap_err().0;
        assert_eq!(
            err("gw:9091"),
            "--gateway: \"gw:9091\" is not a URL; give http://HOST:PORT, e.g. http://gw:9091"
        );
        assert_eq!(
            err("pushgateway"),
            "--gateway: \"pushgateway\" is not a URL; give http://HOST:PORT, e.g. http://pushgateway"
        );
        assert_eq!(
            err("ci:s3cret@gw:9091"),
            "--gateway: \"***@gw:9091\" is not a URL; give http://HOST:PORT, e.g. http://ci:***@gw:9091"
        );
        assert_eq!(
            err("http://gw:99999"),
            "--gateway: \"http://gw:99999\" is not a URL: the port is not a number from 0 to 65535; \
             give http://HOST:PORT, e.g. http://pushgateway:9091"
        );
        assert_eq!(
            err(""),
            "--gateway: \"\" is not a URL; give http://HOST:PORT, e.g. http://pushgateway:9091"
        );
    }

    #[test]
    fn ci_detection_fills_in_but_flags_win() {
        let ci = CiContext {
            provider: Some("github-actions"),
            project: Some("acme/shop".into()),
            branch: Some("main".into()),
            job: Some("tests".into()),
            ..CiContext::default()
        };
        let cli = Cli::try_parse_from([
            "ptc-metrics",
            "push",
            "r.xml",
            "--dry-run",
            "--branch",
            "dev",
        ])
        .unwrap();
        let Command::Push(p) = cli.command else {
            panic!()
        };
        let c = p.into_config(&ci).unwrap();
        assert_eq!(
            c.group.grouping,
            vec![
                ("project".into(), "acme/shop".into()),
                ("branch".into(), "dev".into()),
                ("ci_job".into(), "tests".into())
            ]
        );
    }

    /// The Pushgateway sink of a delivery that has one.
    fn gateway_of(d: Delivery) -> Box<crate::config::PushgatewaySink> {
        match d {
            Delivery::Sinks {
                pushgateway: Some(gw),
                ..
            } => gw,
            other => panic!("no gateway: {other:?}"),
        }
    }

    fn push_in(ci: &CiContext, args: &[&str]) -> Result<PushConfig, ConfigError> {
        let mut v = vec!["ptc-metrics", "push", "r.xml", "--dry-run"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Push(p) => p.into_config(ci),
            _ => unreachable!(),
        }
    }

    fn circle(index: &str, total: &str) -> CiContext {
        crate::ci_env::detect(&|k: &str| {
            match k {
                "CIRCLECI" => Some("true"),
                "CIRCLE_PROJECT_REPONAME" => Some("shop"),
                "CIRCLE_JOB" => Some("test"),
                "CIRCLE_NODE_INDEX" => Some(index),
                "CIRCLE_NODE_TOTAL" => Some(total),
                _ => None,
            }
            .map(str::to_string)
        })
    }

    #[test]
    fn a_shard_is_its_own_group() {
        let c = push(&[
            "r.xml",
            "--gateway",
            "http://gw:9091",
            "--project",
            "app",
            "--shard",
            "2/4",
            "--label",
            "os=linux",
        ])
        .unwrap();
        assert_eq!(
            c.group.grouping,
            vec![
                ("project".into(), "app".into()),
                ("shard".into(), "2/4".into()),
                ("os".into(), "linux".into())
            ]
        );
        let gw = gateway_of(c.delivery);
        assert_eq!(
            gw.gateway.group_path(),
            "/metrics/job/pytest/project/app/shard@base64/Mi80/os/linux"
        );
        // A run in one piece has no shard label.
        let c = push_in(&CiContext::default(), &["--shard", "1/1"]).unwrap();
        assert!(c.group.grouping.is_empty(), "{:?}", c.group.grouping);
    }

    #[test]
    fn shard_detected_from_ci_but_the_flag_wins() {
        // CircleCI counts from 0: node 1 of 3 is shard 2/3.
        let ci = circle("1", "3");
        let c = push_in(&ci, &[]).unwrap();
        assert_eq!(
            c.group.grouping,
            vec![
                ("project".into(), "shop".into()),
                ("ci_job".into(), "test".into()),
                ("shard".into(), "2/3".into())
            ]
        );
        let c = push_in(&ci, &["--shard", "3/3"]).unwrap();
        assert_eq!(c.group.grouping[2], ("shard".into(), "3/3".into()));
        // --shard 1/1 says "not split" whatever the CI says; --no-ci-detect ignores the CI.
        let c = push_in(&ci, &["--shard", "1/1"]).unwrap();
        assert!(!c.group.grouping.iter().any(|(k, _)| k == "shard"));
        let c = push_in(&ci, &["--no-ci-detect"]).unwrap();
        assert!(c.group.grouping.is_empty(), "{:?}", c.group.grouping);
        // Bad variables are an error naming them (two shards must never share a group),
        // unless a flag makes them irrelevant.
        let bad = circle("3", "3");
        assert_eq!(
            push_in(&bad, &[]).unwrap_err().0,
            "shard detected from the CI environment: CIRCLE_NODE_INDEX=\"3\" and \
             CIRCLE_NODE_TOTAL=\"3\" (counted from 0) do not name one of the parallel jobs; \
             give --shard INDEX/TOTAL, or --no-ci-detect"
        );
        assert!(push_in(&bad, &["--shard", "3/3"]).is_ok());
        assert!(push_in(&bad, &["--no-ci-detect"]).is_ok());
    }

    #[test]
    fn shard_errors_name_the_flag_and_the_fix() {
        let none = CiContext::default();
        for (value, want) in [
            ("5/4", "--shard 5/4: INDEX must be between 1 and TOTAL (4)"),
            ("0/4", "--shard 0/4: INDEX counts from 1; the first of 4 jobs is 1/4"),
            (
                "1/0",
                "--shard 1/0: TOTAL must be at least 1 (the number of parallel jobs)",
            ),
            (
                "2",
                "--shard \"2\": not INDEX/TOTAL; write e.g. 2/4 for the second of 4 parallel jobs",
            ),
            (
                "two/four",
                "--shard \"two/four\": not INDEX/TOTAL; write e.g. 2/4 for the second of 4 parallel jobs",
            ),
        ] {
            assert_eq!(push_in(&none, &["--shard", value]).unwrap_err().0, want);
        }
        assert_eq!(
            push_in(&none, &["--label", "shard=2/4"]).unwrap_err().0,
            "--label: use --shard to set the shard label"
        );
    }

    #[test]
    fn delete_takes_the_same_group_flags() {
        let cli = Cli::try_parse_from([
            "ptc-metrics",
            "delete",
            "--gateway",
            "http://gw:9091",
            "--project",
            "app",
            "--shard",
            "4/4",
        ])
        .unwrap();
        let Command::Delete(d) = cli.command else {
            panic!()
        };
        let c = d.into_config(&circle("0", "4")).unwrap();
        assert_eq!(
            c.gateway.group_path(),
            "/metrics/job/pytest/project/app/ci_job/test/shard@base64/NC80"
        );
    }

    #[test]
    fn a_shard_push_counts_its_run_in_the_run_group() {
        let c = push(&[
            "r.xml",
            "--gateway",
            "http://gw:9091",
            "--project",
            "app",
            "--shard",
            "2/4",
            "--run-id",
            "4711",
        ])
        .unwrap();
        let Delivery::Sinks {
            pushgateway: Some(g),
            ..
        } = c.delivery
        else {
            panic!("{:?}", c.delivery)
        };
        let rg = g.run_group.expect("a run group");
        assert_eq!(rg.run.as_deref(), Some("4711"));
        assert_eq!(
            rg.gateway.group_path(),
            "/metrics/job/pytest/project/app/shard/all"
        );
        // A run in one piece has none; an empty --run-id is refused.
        let c = push(&["r.xml", "--gateway", "http://gw:9091", "--shard", "1/1"]).unwrap();
        let Delivery::Sinks {
            pushgateway: Some(g),
            ..
        } = c.delivery
        else {
            panic!()
        };
        assert!(g.run_group.is_none());
        assert_eq!(
            push(&["r.xml", "--gateway", "http://gw:9091", "--run-id", " "])
                .unwrap_err()
                .0,
            "--run-id is empty: give the CI run's id, the same in every shard of the run"
        );
        // GitHub: a re-run attempt is a run of its own.
        let ci = crate::ci_env::detect(&|k: &str| {
            [
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_RUN_ID", "99"),
                ("GITHUB_RUN_ATTEMPT", "2"),
            ]
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
        });
        assert_eq!(ci.run_id.as_deref(), Some("99.2"));
    }

    #[test]
    fn delete_shard_all_is_the_run_group() {
        let cli = Cli::try_parse_from([
            "ptc-metrics",
            "delete",
            "--gateway",
            "http://gw:9091",
            "--project",
            "app",
            "--shard",
            "all",
        ])
        .unwrap();
        let Command::Delete(d) = cli.command else {
            panic!()
        };
        let c = d.into_config(&circle("0", "4")).unwrap();
        assert_eq!(
            c.gateway.group_path(),
            "/metrics/job/pytest/project/app/ci_job/test/shard/all"
        );
    }

    #[test]
    fn textfile_alone_or_with_a_gateway() {
        let c = push(&["r.xml", "--textfile", "/var/lib/nx/pytest.prom"]).unwrap();
        let Delivery::Sinks {
            pushgateway: None,
            textfile: Some(t),
            accumulate: true,
        } = c.delivery
        else {
            panic!("{:?}", c.delivery)
        };
        assert_eq!(t.path, std::path::Path::new("/var/lib/nx/pytest.prom"));
        let c = push(&[
            "r.xml",
            "--textfile",
            "pytest.prom",
            "--gateway",
            "http://gw:9091",
            "--no-accumulate",
        ])
        .unwrap();
        assert!(matches!(
            c.delivery,
            Delivery::Sinks {
                pushgateway: Some(_),
                textfile: Some(_),
                accumulate: false
            }
        ));
        assert_eq!(
            push(&["r.xml", "--textfile", "/tmp/metrics.txt"]).unwrap_err().0,
            "--textfile: \"/tmp/metrics.txt\" would be ignored: node_exporter's textfile collector \
             reads only files named *.prom (not hidden); write e.g. /tmp/pytest.prom"
        );
        assert_eq!(
            push(&["r.xml", "--textfile", "/"]).unwrap_err().0,
            "--textfile: \"/\" is not a file name; write e.g. /var/lib/node_exporter/textfile/pytest.prom"
        );
        // --dry-run writes nothing, whatever else is given.
        let c = push(&["r.xml", "--textfile", "x.prom", "--dry-run"]).unwrap();
        assert_eq!(c.delivery, Delivery::DryRun);
    }
}
