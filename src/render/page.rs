//! The lines of a terminal report, shared by `inspect` (terminal.rs) and `history`
//! (history.rs): the width every line fits, ANSI colour only when asked for, titles whose rest
//! wraps under them, dimmed column heads, test ids shortened in the middle with control
//! characters escaped (input cannot move the cursor or recolour the terminal), and the text
//! measures behind them (display width of wide and combining characters, fit, wrap).

use std::fmt::Write as _;

use super::{TerminalConfig, MIN_WIDTH};

pub(super) const RESET: &str = "\x1b[0m";
pub(super) const BOLD: &str = "\x1b[1m";
pub(super) const DIM: &str = "\x1b[2m";
pub(super) const RED: &str = "\x1b[31m";
pub(super) const GREEN: &str = "\x1b[32m";
pub(super) const YELLOW: &str = "\x1b[33m";
pub(super) const CYAN: &str = "\x1b[36m";

/// A report being written: its text so far, the width its lines fit, whether in colour.
pub(super) struct Page {
    pub out: String,
    pub width: usize,
    pub colour: bool,
}

impl Page {
    /// An empty page for the terminal `cfg` describes (at least [`MIN_WIDTH`] wide).
    pub fn new(cfg: &TerminalConfig) -> Page {
        Page {
            out: String::new(),
            width: cfg.width.max(MIN_WIDTH),
            colour: cfg.colour,
        }
    }

    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.colour && !s.is_empty() {
            format!("{code}{s}{RESET}")
        } else {
            s.to_string()
        }
    }

    pub fn line(&mut self, s: &str) {
        self.out.push_str(s.trim_end());
        self.out.push('\n');
    }

    pub fn blank(&mut self) {
        self.out.push('\n');
    }

    /// A section title, with the rest of the line (a count, "none") after it.
    pub fn title(&mut self, title: &str, rest: &str) {
        self.blank();
        let t = self.paint(BOLD, title);
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!(": {rest}")
        };
        let plain_len = width(title) + width(&rest);
        if plain_len <= self.width {
            self.line(&format!("{t}{rest}"));
        } else {
            // Titles are short; only `rest` can be long. Wrap it under the title.
            self.line(&format!("{t}:"));
            for l in wrap(rest.trim_start_matches(": "), self.width - 2) {
                self.line(&format!("  {l}"));
            }
        }
    }

    /// A dimmed column-header line.
    pub fn head(&mut self, s: &str) {
        let s = self.paint(DIM, s);
        self.line(&s);
    }

    pub fn ellipsis(&self) -> &'static str {
        if self.colour {
            "…"
        } else {
            "..."
        }
    }

    /// A test id shortened to `room` columns.
    pub fn id(&self, id: &str, room: usize) -> String {
        fit(&sanitize(id), room, self.ellipsis())
    }
}

/// Escapes control characters (`\n`, `\t`, ESC, C1 …) so that an id cannot break a line or
/// send terminal escape sequences.
pub fn sanitize(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Columns a character takes in a terminal: 0 for combining marks and zero-width
/// characters, 2 for East Asian wide/fullwidth characters and emoji, else 1.
pub fn char_width(c: char) -> usize {
    let u = c as u32;
    match u {
        0x0300..=0x036F
        | 0x0483..=0x0489
        | 0x0591..=0x05BD
        | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF
        | 0x200B..=0x200F
        | 0x2028..=0x202E
        | 0x2060..=0x2064
        | 0x20D0..=0x20FF
        | 0xFE00..=0xFE0F
        | 0xFE20..=0xFE2F
        | 0xFEFF
        | 0xE0100..=0xE01EF => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// Display width of a string without escape sequences.
pub fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

pub(crate) fn pad_right(s: &str, w: usize) -> String {
    let mut o = s.to_string();
    for _ in width(s)..w {
        o.push(' ');
    }
    o
}

/// Shortens `s` to at most `room` columns by cutting out its middle, which keeps a test id's
/// file and its test name.
pub fn fit(s: &str, room: usize, ellipsis: &str) -> String {
    if width(s) <= room {
        return s.to_string();
    }
    let ew = width(ellipsis);
    if room <= ew {
        return ellipsis.chars().take(room).collect();
    }
    let budget = room - ew;
    let head_budget = budget / 2;
    let tail_budget = budget - head_budget;
    let mut head = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = char_width(c);
        if w + cw > head_budget {
            break;
        }
        w += cw;
        head.push(c);
    }
    let mut tail: Vec<char> = Vec::new();
    let mut w = 0;
    for c in s.chars().rev() {
        let cw = char_width(c);
        if w + cw > tail_budget {
            break;
        }
        w += cw;
        tail.push(c);
    }
    tail.reverse();
    format!("{head}{ellipsis}{}", tail.into_iter().collect::<String>())
}

/// Wraps prose at spaces to `w` columns; a word longer than a line is cut.
pub fn wrap(text: &str, w: usize) -> Vec<String> {
    let w = w.max(10);
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ').filter(|x| !x.is_empty()) {
        let mut word = word.to_string();
        while width(&word) > w {
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
            }
            let mut head = String::new();
            let mut hw = 0;
            let mut rest = String::new();
            for c in word.chars() {
                if rest.is_empty() && hw + char_width(c) <= w {
                    hw += char_width(c);
                    head.push(c);
                } else {
                    rest.push(c);
                }
            }
            lines.push(head);
            word = rest;
        }
        if cur.is_empty() {
            cur = word;
        } else if width(&cur) + 1 + width(&word) <= w {
            cur.push(' ');
            cur.push_str(&word);
        } else {
            lines.push(std::mem::replace(&mut cur, word));
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_in_the_middle_by_display_width() {
        let id =
            "tests/test_tiers.py::TestAccountOps::TestOverdraft::TestWithLimit::test_within_limit";
        let f = fit(id, 40, "...");
        assert_eq!(width(&f), 40);
        assert_eq!(f, "tests/test_tiers.p...::test_within_limit");
        assert_eq!(fit("short", 40, "…"), "short");
        // Wide characters count twice and are never split.
        let f = fit("日本語のテストケース名前", 9, "…");
        assert!(width(&f) <= 9, "{f}");
        assert_eq!(f, "日本…名前");
        assert_eq!(fit("abcdef", 2, "..."), "..");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            sanitize("t[two\nlines\tand\x1b[31mred\u{9b}]"),
            "t[two\\nlines\\tand\\u{1b}[31mred\\u{9b}]"
        );
        assert_eq!(sanitize("plain"), "plain");
    }

    #[test]
    fn wraps_and_cuts() {
        assert_eq!(wrap("one two three four", 10), ["one two", "three four"]);
        assert_eq!(wrap("abcdefghijklmnop", 10), ["abcdefghij", "klmnop"]);
        assert_eq!(wrap("", 10), [""]);
    }
}
