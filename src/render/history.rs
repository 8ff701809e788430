//! The report of `ptc-metrics history` (a [`HistoryReport`]): the terminal view in the style
//! of `inspect` (same widths, colour rules, `--top` cut with "… N more not shown") and the
//! JSON document of docs/history.md (keys sorted). Pure: both return a `String`.

use super::page::{fit, pad_right, sanitize, wrap, Page, BOLD, DIM, GREEN, RED, YELLOW};
use super::terminal::{count_by_size, n_tests, round_pct, secs};
use super::TerminalConfig;
use crate::history::{GroupReport, HistoryReport, Listed, RunRef};
use crate::model::Size;

/// The JSON document (docs/history.md), keys sorted, ending in a newline.
pub fn json(r: &HistoryReport) -> String {
    // Through `Value`, whose maps are sorted.
    let v = serde_json::to_value(r).unwrap_or(serde_json::Value::Null);
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// The terminal report.
pub fn terminal(r: &HistoryReport, cfg: &TerminalConfig) -> String {
    let mut t = Text {
        page: Page::new(cfg),
        top: r.settings.top,
    };
    let first = format!(
        "History: {} run{} in {} group{}{}{}",
        r.runs_read,
        plural(r.runs_read),
        r.groups.len(),
        plural(r.groups.len()),
        if r.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} skipped", r.skipped.len())
        },
        match r.duplicates.len() {
            0 => String::new(),
            1 => ", 1 copy of a run ignored".to_string(),
            n => format!(", {n} copies of runs ignored"),
        }
    );
    let first = t.paint(BOLD, &first);
    t.line(&first);
    if r.groups.is_empty() {
        t.line("No runs in the window.");
    }
    for g in &r.groups {
        t.group(g, r);
    }
    if !r.skipped.is_empty() {
        t.title("Skipped runs", &r.skipped.len().to_string());
        for s in &r.skipped {
            for (k, l) in wrap(&sanitize(&format!("{}: {}", s.dir, s.error)), t.width - 4)
                .iter()
                .enumerate()
            {
                let lead = if k == 0 {
                    t.paint(YELLOW, "!")
                } else {
                    " ".into()
                };
                t.line(&format!("  {lead} {l}"));
            }
        }
    }
    t.page.out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn ratio_pct(r: f64) -> String {
    format!("{:+.0}%", (r - 1.0) * 100.0)
}

/// The `history` report: a [`Page`], and `--top` for its "… N more" lines.
struct Text {
    page: Page,
    top: usize,
}

impl std::ops::Deref for Text {
    type Target = Page;
    fn deref(&self) -> &Page {
        &self.page
    }
}

impl std::ops::DerefMut for Text {
    fn deref_mut(&mut self) -> &mut Page {
        &mut self.page
    }
}

impl Text {
    fn more<T>(&mut self, l: &Listed<T>) {
        if l.total > l.tests.len() {
            let s = format!(
                "  {} {} more tests not shown (--top {})",
                self.ellipsis(),
                l.total - l.tests.len(),
                self.top
            );
            let s = self.paint(DIM, &s);
            self.line(&s);
        }
    }

    fn prose(&mut self, s: &str) {
        for l in wrap(s, self.width - 2) {
            self.line(&format!("  {l}"));
        }
    }

    /// `#40 abc1234`: the run's number in the group and its short commit (its day without one).
    fn run(&self, r: &RunRef) -> String {
        let date = r.timestamp.get(..10).unwrap_or(&r.timestamp);
        match &r.commit {
            Some(c) => format!("#{} {}", r.run, sanitize(c.get(..7).unwrap_or(c))),
            None => format!("#{} {date}", r.run),
        }
    }

    fn count<T: crate::history::HasSize>(l: &Listed<T>) -> String {
        count_by_size(l.total as u64, &l.per_size())
    }

    fn group(&mut self, g: &GroupReport, r: &HistoryReport) {
        let s = &r.settings;
        self.out.push('\n');
        let key = self.paint(BOLD, &format!("Group {}", sanitize(&g.key)));
        self.line(&key);
        let span = match (&g.first_run, &g.newest_run) {
            (Some(a), Some(b)) => format!(
                "{} run{} from {} to {}, {} commit{}, {} seen",
                g.runs,
                plural(g.runs),
                a.timestamp,
                b.timestamp,
                g.commits,
                plural(g.commits),
                n_tests(g.tests_seen as u64)
            ),
            _ => "no runs".into(),
        };
        self.prose(&span);
        self.suite(g, r);

        self.title("Flaky across runs", &Self::count(&g.flaky));
        if !g.flaky.tests.is_empty() {
            self.head("  flips   rate  same commit  size     test");
            let room = self.width.saturating_sub(39);
            for f in &g.flaky.tests {
                let l = format!(
                    "  {:>5}  {}  {:>11}  {:<7}  {}",
                    f.flips,
                    self.paint(
                        YELLOW,
                        &format!("{:>5}", format!("{:.1}%", f.flip_rate * 100.0))
                    ),
                    f.same_commit_failures,
                    f.size.as_str(),
                    self.id(&f.id, room)
                );
                self.line(&l);
            }
            self.more(&g.flaky);
        }
        self.title(
            "Flaky within runs (passed after a rerun)",
            &Self::count(&g.rerun_flaky),
        );
        if !g.rerun_flaky.tests.is_empty() {
            self.head("  runs  size     test");
            let room = self.width.saturating_sub(17);
            for f in &g.rerun_flaky.tests {
                let l = format!(
                    "  {}  {:<7}  {}",
                    self.paint(YELLOW, &format!("{:>4}", f.runs)),
                    f.size.as_str(),
                    self.id(&f.id, room)
                );
                self.line(&l);
            }
            self.more(&g.rerun_flaky);
        }
        self.title(
            "Slower than their baseline",
            &format!(
                "{}; the median of their last {} runs is over {}% and {} above the median of up to {} runs before",
                Self::count(&g.slower),
                s.recent,
                round_pct(s.slower_than),
                secs(s.slower_by),
                s.baseline
            ),
        );
        if !g.slower.tests.is_empty() {
            self.head("  baseline    recent  change  size     moved at        test");
            let room = self.width.saturating_sub(55);
            for f in &g.slower.tests {
                let l = format!(
                    "  {:>8}  {:>8}  {}  {:<7}  {:<14}  {}",
                    secs(f.baseline_median),
                    secs(f.recent_median),
                    self.paint(RED, &format!("{:>6}", ratio_pct(f.ratio))),
                    f.size.as_str(),
                    fit(&self.run(&f.moved_at), 14, self.ellipsis()),
                    self.id(&f.id, room)
                );
                self.line(&l);
            }
            self.more(&g.slower);
        }
        self.title(
            "Chronic violations",
            &format!(
                "{}; over their limit or baseline in at least {} of the last {} runs",
                Self::count(&g.chronic_violations),
                s.chronic_m,
                s.chronic_n
            ),
        );
        if !g.chronic_violations.tests.is_empty() {
            self.head("  runs    newest       max  limit  size     test");
            let room = self.width.saturating_sub(44);
            for f in &g.chronic_violations.tests {
                let limit = f
                    .limit
                    .map(|l| format!("{l}s"))
                    .unwrap_or_else(|| "-".into());
                let l = format!(
                    "  {}  {}  {:>8}  {limit:>5}  {:<7}  {}",
                    self.paint(RED, &format!("{:>4}", format!("{}/{}", f.runs, f.of_runs))),
                    self.paint(RED, &format!("{:>8}", secs(f.newest_duration))),
                    secs(f.max_duration),
                    f.size.as_str(),
                    self.id(&f.id, room)
                );
                self.line(&l);
            }
            self.more(&g.chronic_violations);
        }
        self.title(
            "Near their limit and rising",
            &format!(
                "{}; over the last {} runs",
                Self::count(&g.near_limit_rising),
                s.chronic_n
            ),
        );
        if !g.near_limit_rising.tests.is_empty() {
            self.head("    oldest    newest  per run  limit  size     test");
            let room = self.width.saturating_sub(47);
            for f in &g.near_limit_rising.tests {
                let limit = f
                    .limit
                    .map(|l| format!("{l}s"))
                    .unwrap_or_else(|| "-".into());
                let l = format!(
                    "  {:>8}  {}  {:>7}  {limit:>5}  {:<7}  {}",
                    secs(f.durations.first().copied().unwrap_or(0.0)),
                    self.paint(
                        YELLOW,
                        &format!("{:>8}", secs(f.durations.last().copied().unwrap_or(0.0)))
                    ),
                    format!("+{}", secs(f.slope_per_run)),
                    f.size.as_str(),
                    self.id(&f.id, room)
                );
                self.line(&l);
            }
            self.more(&g.near_limit_rising);
        }
        self.title(
            "Persistent hermeticity violations",
            &format!(
                "{}; in at least {} of the last {} runs",
                Self::count(&g.hermeticity_persistent),
                s.chronic_m,
                s.chronic_n
            ),
        );
        if !g.hermeticity_persistent.tests.is_empty() {
            self.head("  runs  size     resources                 test");
            let room = self.width.saturating_sub(43);
            for f in &g.hermeticity_persistent.tests {
                let res: Vec<String> = f
                    .resources
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                let l = format!(
                    "  {}  {:<7}  {}  {}",
                    self.paint(RED, &format!("{:>4}", format!("{}/{}", f.runs, f.of_runs))),
                    f.size.as_str(),
                    pad_right(&fit(&res.join(", "), 24, self.ellipsis()), 24),
                    self.id(&f.id, room)
                );
                self.line(&l);
            }
            self.more(&g.hermeticity_persistent);
        }
        self.title(
            "New failures",
            &format!(
                "{}; failed in the newest run, passed in the one before",
                Self::count(&g.new_failures)
            ),
        );
        self.entries(&g.new_failures, RED);
        self.title(
            "Fixed",
            &format!(
                "{}; passed in the newest run, failed in the one before",
                Self::count(&g.fixed)
            ),
        );
        self.entries(&g.fixed, GREEN);
        self.title("Added since the first run", &Self::count(&g.added));
        if !g.added.tests.is_empty() {
            self.head("  first seen      size     test");
            let room = self.width.saturating_sub(27);
            for f in &g.added.tests {
                let l = format!(
                    "  {:<14}  {:<7}  {}",
                    fit(&self.run(&f.first_seen), 14, self.ellipsis()),
                    f.size.as_str(),
                    self.id(&f.id, room)
                );
                self.line(&l);
            }
            self.more(&g.added);
        }
        self.title("Not in the newest run", &Self::count(&g.removed));
        if !g.removed.tests.is_empty() {
            self.head("  last seen       size     test");
            let room = self.width.saturating_sub(27);
            for f in &g.removed.tests {
                let l = format!(
                    "  {:<14}  {:<7}  {}",
                    fit(&self.run(&f.last_seen), 14, self.ellipsis()),
                    f.size.as_str(),
                    self.id(&f.id, room)
                );
                self.line(&l);
            }
            self.more(&g.removed);
        }
    }

    /// `values` in at most `cells` cells, each the mean of its runs, scaled from the lowest
    /// to the highest: Unicode blocks with colour, ASCII levels without.
    fn spark(&self, values: &[f64], cells: usize) -> String {
        const BLOCKS: [&str; 8] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
        const ASCII: [&str; 8] = ["_", ".", ",", "-", "=", "+", "*", "#"];
        let levels = if self.colour { &BLOCKS } else { &ASCII };
        let n = values.len();
        let cells = cells.clamp(1, n.max(1));
        let means: Vec<f64> = (0..cells)
            .map(|k| {
                let part = &values[k * n / cells..((k + 1) * n / cells).max(k * n / cells + 1)];
                part.iter().sum::<f64>() / part.len() as f64
            })
            .collect();
        let lo = means.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        means
            .iter()
            .map(|m| {
                let i = if hi > lo {
                    (((m - lo) / (hi - lo)) * 7.0).round() as usize
                } else {
                    0
                };
                levels[i.min(7)]
            })
            .collect()
    }

    fn entries(&mut self, l: &Listed<crate::history::TestEntry>, colour: &str) {
        if l.tests.is_empty() {
            return;
        }
        self.head("  size     test");
        let room = self.width.saturating_sub(11);
        for f in &l.tests {
            let s = format!(
                "  {}  {}",
                self.paint(colour, &format!("{:<7}", f.size.as_str())),
                self.id(&f.id, room)
            );
            self.line(&s);
        }
        self.more(l);
    }

    fn suite(&mut self, g: &GroupReport, r: &HistoryReport) {
        let s = &g.suite;
        let (Some(first), Some(last)) = (s.durations.first(), s.durations.last()) else {
            return;
        };
        let change = match (s.baseline_median, s.recent_median) {
            (Some(b), Some(rm)) if b > 0.0 => {
                let c = ratio_pct(rm / b);
                let c = if rm > b * (1.0 + r.settings.slower_than) {
                    self.paint(RED, &c)
                } else {
                    c
                };
                format!(
                    "; median of the last {} runs {} against {} before ({c})",
                    r.settings.recent.min(g.runs),
                    secs(rm),
                    secs(b)
                )
            }
            _ => String::new(),
        };
        self.title(
            "Suite time",
            &format!(
                "first run {}, newest {}{change}",
                secs(first.seconds),
                secs(last.seconds)
            ),
        );
        if s.durations.len() >= 2 {
            let values: Vec<f64> = s.durations.iter().map(|p| p.seconds).collect();
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            self.line(&format!(
                "  Over the {} runs, oldest to newest ({} to {}):",
                values.len(),
                secs(lo),
                secs(hi)
            ));
            let line = self.spark(&values, self.width - 4);
            self.line(&format!("  [{line}]"));
        }
        let sizes = |m: &Option<std::collections::BTreeMap<String, u64>>| -> String {
            let Some(m) = m else { return String::new() };
            Size::ALL
                .iter()
                .filter_map(|z| m.get(z.as_str()).map(|n| format!("{z} {n}")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.prose(&format!(
            "Tests per size: first run {} ({}), newest run {} ({})",
            first.tests,
            sizes(&s.sizes_first),
            last.tests,
            sizes(&s.sizes_newest)
        ));
        self.title(
            "Duration increases",
            &format!(
                "{}; the median of their last {} runs against their baseline, largest first",
                Self::count(&g.drivers),
                r.settings.recent
            ),
        );
        if g.drivers.tests.is_empty() {
            return;
        }
        self.head("  baseline    recent  increase  size     test");
        let room = self.width.saturating_sub(41);
        for f in &g.drivers.tests {
            let l = format!(
                "  {:>8}  {:>8}  {}  {:<7}  {}",
                secs(f.baseline_median),
                secs(f.recent_median),
                self.paint(
                    YELLOW,
                    &format!("{:>8}", format!("+{}", secs(f.increase_seconds)))
                ),
                f.size.as_str(),
                self.id(&f.id, room)
            );
            self.line(&l);
        }
        self.more(&g.drivers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(colour: bool) -> Text {
        Text {
            page: Page::new(&TerminalConfig { width: 100, colour }),
            top: 10,
        }
    }

    #[test]
    fn a_spark_line_averages_runs_into_cells_and_scales_low_to_high() {
        let rising: Vec<f64> = (0..1000).map(f64::from).collect();
        assert_eq!(text(false).spark(&rising, 8), "_.,-=+*#");
        assert_eq!(text(true).spark(&rising, 8), "▁▂▃▄▅▆▇█");
        // Fewer runs than cells: one cell a run.
        // 2.0 is half way: 3.5 of 7 steps, rounded up to the fifth level.
        assert_eq!(text(false).spark(&[1.0, 3.0, 2.0], 50), "_#=");
        assert_eq!(text(false).spark(&[5.0; 4], 10), "____");
    }
}
