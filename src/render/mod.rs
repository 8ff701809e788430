//! Stage 3 for people: an [`Inspection`](crate::derive::inspect::Inspection) rendered for
//! `ptc-metrics inspect`. Pure: each renderer returns a `String`, only `crate::app` prints.
//!
//! `terminal`: a width-aware report with ANSI colour when asked for (no-color.org: `NO_COLOR`
//! turns `auto` off); `json`: the same facts as the documented JSON document
//! `docs/inspect-json.md` (`"schema_version": 1`).

pub mod history;
pub mod json;
pub mod page;
pub mod terminal;

/// How `inspect` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The terminal report.
    Text,
    /// The JSON document of `docs/inspect-json.md`.
    Json,
}

/// Terminal settings, resolved once from `--width`/`COLUMNS` and `--color`/`NO_COLOR`/tty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalConfig {
    /// Columns a line may use (at least [`MIN_WIDTH`]).
    pub width: usize,
    /// ANSI colour and Unicode bar glyphs; plain ASCII otherwise.
    pub colour: bool,
}

/// Narrower terminals get this width (lines would otherwise lose their test ids).
pub const MIN_WIDTH: usize = 60;
/// Without `--width` or a usable `COLUMNS`.
pub const DEFAULT_WIDTH: usize = 100;

impl Default for TerminalConfig {
    fn default() -> Self {
        TerminalConfig {
            width: DEFAULT_WIDTH,
            colour: false,
        }
    }
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourChoice {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty.
    Auto,
    Always,
    Never,
}

/// Decides colour: `always`/`never` win; `auto` colours a terminal unless `NO_COLOR` is set
/// to a non-empty value (no-color.org).
pub fn use_colour(choice: ColourChoice, stdout_is_tty: bool, no_color: Option<&str>) -> bool {
    match choice {
        ColourChoice::Always => true,
        ColourChoice::Never => false,
        ColourChoice::Auto => stdout_is_tty && no_color.is_none_or(str::is_empty),
    }
}

/// The width to use: `--width`, else the terminal's width (`terminal`, asked by the caller),
/// else `COLUMNS` when it is a number (shells seldom export it), else 100; never below 60.
/// Zero counts as not given.
pub fn resolve_width(flag: Option<usize>, terminal: Option<usize>, columns: Option<&str>) -> usize {
    [
        flag,
        terminal,
        columns.and_then(|c| c.trim().parse::<usize>().ok()),
    ]
    .into_iter()
    .flatten()
    .find(|w| *w > 0)
    .unwrap_or(DEFAULT_WIDTH)
    .max(MIN_WIDTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_decision() {
        use ColourChoice::*;
        assert!(use_colour(Auto, true, None));
        assert!(use_colour(Auto, true, Some("")));
        assert!(!use_colour(Auto, true, Some("1")));
        assert!(!use_colour(Auto, false, None));
        assert!(use_colour(Always, false, Some("1")));
        assert!(!use_colour(Never, true, None));
    }

    #[test]
    fn width_decision() {
        assert_eq!(resolve_width(None, None, None), 100);
        assert_eq!(resolve_width(None, None, Some("132")), 132);
        assert_eq!(resolve_width(Some(80), None, Some("132")), 80);
        assert_eq!(resolve_width(None, None, Some("wide")), 100);
        assert_eq!(resolve_width(None, None, Some("20")), 60);
        assert_eq!(resolve_width(Some(0), None, None), 100);
        // The terminal's width comes after --width and before COLUMNS.
        assert_eq!(resolve_width(None, Some(200), None), 200);
        assert_eq!(resolve_width(None, Some(200), Some("132")), 200);
        assert_eq!(resolve_width(Some(80), Some(200), Some("132")), 80);
        assert_eq!(resolve_width(Some(0), Some(200), Some("132")), 200);
        assert_eq!(resolve_width(None, Some(0), Some("132")), 132);
        assert_eq!(resolve_width(None, Some(40), None), 60);
    }
}
