//! `prune`: arguments and their validation into `PruneConfig`.

use clap::Args;

use super::{DeadlineArgs, GatewayArgs};
use crate::config::{parse_age, ConfigError, PruneConfig};
use crate::sink::pushgateway::{PushMethod, PushgatewayConfig};

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub deadline: DeadlineArgs,
    /// The job whose groups are pruned.
    #[arg(long, env = "PTC_METRICS_JOB", default_value = "pytest")]
    pub job: String,
    /// Delete groups whose last push is older than this (e.g. 30d, 12h, 2w).
    #[arg(long, value_name = "AGE", env = "PTC_METRICS_OLDER_THAN")]
    pub older_than: Option<String>,
    /// Branches whose groups are never pruned (comma-separated, `*` wildcards).
    #[arg(
        long,
        value_name = "BRANCH",
        env = "PTC_METRICS_KEEP",
        value_delimiter = ',',
        default_value = "main,master"
    )]
    pub keep: Vec<String>,
    /// List what would be deleted and delete nothing.
    #[arg(long, env = "PTC_METRICS_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
}

impl PruneArgs {
    pub fn into_config(self) -> Result<PruneConfig, ConfigError> {
        let Some(older) = &self.older_than else {
            return Err(ConfigError(
                "prune needs --older-than AGE (e.g. --older-than 30d): groups pushed more recently are kept".into(),
            ));
        };
        let older_than = parse_age(older).map_err(|e| ConfigError(format!("--older-than: {e}")))?;
        let mut http = self.gateway.http()?;
        self.deadline.apply(&mut http)?;
        let Some(url) = self.gateway.gateway_url()? else {
            return Err(ConfigError(
                "no Pushgateway: give --gateway URL (or PTC_METRICS_GATEWAY)".into(),
            ));
        };
        let keep = self
            .keep
            .iter()
            .map(|k| k.trim())
            .filter(|k| !k.is_empty())
            .map(|k| {
                glob::Pattern::new(k)
                    .map_err(|e| ConfigError(format!("--keep: {k:?} is not a pattern: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.job.is_empty() {
            return Err(ConfigError("--job must not be empty".into()));
        }
        Ok(PruneConfig {
            gateway: PushgatewayConfig {
                url,
                job: self.job,
                grouping: Vec::new(),
                method: PushMethod::Put,
                gzip: false,
            },
            http,
            older_than,
            keep,
            dry_run: self.dry_run,
            soft_fail: self.gateway.soft_fail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn prune(args: &[&str]) -> Result<PruneConfig, ConfigError> {
        let mut all = vec!["ptc-metrics", "prune"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).unwrap().command {
            Command::Prune(a) => a.into_config(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn flags_become_config() {
        let c = prune(&["--gateway", "http://gw:9091", "--older-than", "30d"]).unwrap();
        assert_eq!(c.older_than.as_secs(), 30 * 86_400);
        assert_eq!(
            c.keep.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            ["main", "master"]
        );
        assert_eq!(c.http.deadline.map(|d| d.as_secs()), Some(120));
        let c = prune(&[
            "--gateway",
            "http://gw:9091",
            "--older-than",
            "12h",
            "--keep",
            "main,release/*",
            "--deadline",
            "30s",
        ])
        .unwrap();
        assert!(c.keep[1].matches("release/1.2"));
        assert_eq!(c.http.deadline.map(|d| d.as_secs()), Some(30));
    }

    #[test]
    fn exact_errors() {
        let e = |args: &[&str]| prune(args).unwrap_err().to_string();
        assert_eq!(
            e(&["--gateway", "http://gw:9091"]),
            "prune needs --older-than AGE (e.g. --older-than 30d): groups pushed more recently are kept"
        );
        assert_eq!(
            e(&["--gateway", "http://gw:9091", "--older-than", "30"]),
            "--older-than: \"30\" is not an age; write e.g. 30d, 12h, 2w or 90m"
        );
        assert_eq!(
            e(&["--older-than", "3d"]),
            "no Pushgateway: give --gateway URL (or PTC_METRICS_GATEWAY)"
        );
        assert_eq!(
            e(&[
                "--gateway",
                "http://gw:9091",
                "--older-than",
                "3d",
                "--deadline",
                "soon"
            ]),
            "--deadline: \"soon\" is not a duration; write e.g. 10s, 500ms or 2m"
        );
    }
}
