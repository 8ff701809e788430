//! `inspect`: arguments and their validation into `InspectConfig`. Colour and width are
//! resolved here, once, from `--color`/`NO_COLOR`/tty and `--width`/the terminal/`COLUMNS`.

use clap::{Args, ValueEnum};

use super::{DeriveArgs, InputArgs};
use crate::config::{ConfigError, InspectConfig};
use crate::derive::inspect::CollectConfig;
use crate::render::{resolve_width, use_colour, ColourChoice, Format, TerminalConfig};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FormatArg {
    /// A report for people, sized to the terminal.
    Text,
    /// A JSON document for tools (docs/inspect-json.md, schema_version 1).
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ColorArg {
    /// Colour when stdout is a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

/// How a text report fits the terminal: `--color` and `--width`, shared by `inspect` and
/// `history`, resolved once with `NO_COLOR`, whether stdout is a terminal, and `COLUMNS`.
#[derive(Debug, Args)]
pub struct TerminalArgs {
    /// Colour in the text report.
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        env = "PTC_METRICS_COLOR",
        default_value = "auto"
    )]
    pub color: ColorArg,
    /// Line width of the text report (default: the terminal's width, else $COLUMNS, else 100;
    /// at least 60).
    #[arg(long, value_name = "COLUMNS", env = "PTC_METRICS_WIDTH")]
    pub width: Option<usize>,
}

impl TerminalArgs {
    /// `env` looks up `COLUMNS` and `NO_COLOR`; `stdout_is_tty` says whether stdout is a
    /// terminal; `terminal_columns` is the terminal's width when there is one.
    pub fn config(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        stdout_is_tty: bool,
        terminal_columns: Option<usize>,
    ) -> TerminalConfig {
        let choice = match self.color {
            ColorArg::Auto => ColourChoice::Auto,
            ColorArg::Always => ColourChoice::Always,
            ColorArg::Never => ColourChoice::Never,
        };
        TerminalConfig {
            width: resolve_width(self.width, terminal_columns, env("COLUMNS").as_deref()),
            colour: use_colour(choice, stdout_is_tty, env("NO_COLOR").as_deref()),
        }
    }
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub derive: DeriveArgs,
    /// Output format.
    #[arg(
        long,
        value_enum,
        env = "PTC_METRICS_INSPECT_FORMAT",
        default_value = "text"
    )]
    pub format: FormatArg,
    #[command(flatten)]
    pub terminal: TerminalArgs,
    /// Tests listed per section (violations, near limit, flaky, hermeticity, coverage files),
    /// and per size for the slowest tests.
    #[arg(long, value_name = "N", env = "PTC_METRICS_TOP", default_value_t = 10)]
    pub top: usize,
}

impl InspectArgs {
    /// `env` looks up `COLUMNS` and `NO_COLOR`; `stdout_is_tty` says whether stdout is a
    /// terminal; `terminal_columns` is the terminal's width when there is one.
    pub fn into_config(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        stdout_is_tty: bool,
        terminal_columns: Option<usize>,
    ) -> Result<InspectConfig, ConfigError> {
        let inputs = self.input.inputs()?;
        let derive = self.derive.config(None)?;
        Ok(InspectConfig {
            inputs,
            derive,
            collect: CollectConfig { top: self.top },
            format: match self.format {
                FormatArg::Text => Format::Text,
                FormatArg::Json => Format::Json,
            },
            terminal: self.terminal.config(env, stdout_is_tty, terminal_columns),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn inspect(
        args: &[&str],
        env: &[(&str, &str)],
        tty: bool,
    ) -> Result<InspectConfig, ConfigError> {
        inspect_on(args, env, tty, None)
    }

    fn inspect_on(
        args: &[&str],
        env: &[(&str, &str)],
        tty: bool,
        terminal: Option<usize>,
    ) -> Result<InspectConfig, ConfigError> {
        let mut v = vec!["ptc-metrics", "inspect"];
        v.extend_from_slice(args);
        let cli = Cli::try_parse_from(v).unwrap();
        let Command::Inspect(a) = cli.command else {
            unreachable!()
        };
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        a.into_config(
            &|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            tty,
            terminal,
        )
    }

    #[test]
    fn flags_become_config() {
        let c = inspect(&["r.xml"], &[], true).unwrap();
        assert_eq!(c.format, Format::Text);
        assert_eq!(c.collect.top, 10);
        assert_eq!(
            c.terminal,
            TerminalConfig {
                width: 100,
                colour: true
            }
        );
        let c = inspect(
            &["r.xml", "--format", "json", "--top", "3", "--width", "72"],
            &[("COLUMNS", "200"), ("NO_COLOR", "1")],
            true,
        )
        .unwrap();
        assert_eq!(c.format, Format::Json);
        assert_eq!(c.collect.top, 3);
        assert_eq!(
            c.terminal,
            TerminalConfig {
                width: 72,
                colour: false
            }
        );
        let c = inspect(
            &["r.xml", "--color", "always"],
            &[("COLUMNS", "132")],
            false,
        )
        .unwrap();
        assert_eq!(
            c.terminal,
            TerminalConfig {
                width: 132,
                colour: true
            }
        );
        // The terminal's width wins over COLUMNS, --width over both.
        let c = inspect_on(&["r.xml"], &[("COLUMNS", "132")], true, Some(200)).unwrap();
        assert_eq!(c.terminal.width, 200);
        let c = inspect_on(&["r.xml", "--width", "90"], &[], true, Some(200)).unwrap();
        assert_eq!(c.terminal.width, 90);
        assert_eq!(
            inspect(&[], &[], false).unwrap_err().0,
            "no report given: pass the JUnit XML file(s) pytest wrote with --junitxml"
        );
    }
}
