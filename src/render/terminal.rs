//! The terminal report of `ptc-metrics inspect`: one run's size distribution against
//! pytest-test-categories 1.2.2's targets and bands, outcomes by size,
//! violations, near-limit, flaky and slowest tests, hermeticity, coverage and warnings
//! (METRICS.md §1–3 for every count).
//!
//! Pure: [`render`] returns the text. Every line fits the configured width (test ids are
//! shortened in the middle); control characters in ids are escaped so input cannot move the
//! cursor or recolour the terminal. With colour: ANSI SGR codes and Unicode bar glyphs;
//! without: plain ASCII bars, for pipes, logs and `NO_COLOR`.

use std::fmt::Write as _;

use super::TerminalConfig;
use crate::derive::inspect::{BandCheck, BandStatus, Inspection};
use crate::derive::TestFacts;
use crate::model::{FailureType, Outcome, Resource, Size};

use super::page::{
    fit, pad_right, sanitize, width, wrap, Page, BOLD, CYAN, DIM, GREEN, RED, YELLOW,
};

/// Widest bar of the distribution, in cells.
const MAX_BAR: usize = 40;
/// Columns of a distribution row without its bar.
const DIST_FIXED: usize = 51;

/// Renders the report.
pub fn render(i: &Inspection, cfg: &TerminalConfig) -> String {
    let mut r = Report {
        page: Page::new(cfg),
    };
    r.header(i);
    r.distribution(i);
    r.outcomes(i);
    r.timing(i);
    r.baseline(i);
    r.near_limit(i);
    r.flaky(i);
    r.slowest(i);
    r.hermeticity(i);
    r.coverage(i);
    r.warnings(i);
    r.page.out
}

/// The `inspect` report: a [`Page`] and its sections.
struct Report {
    page: Page,
}

impl std::ops::Deref for Report {
    type Target = Page;
    fn deref(&self) -> &Page {
        &self.page
    }
}

impl std::ops::DerefMut for Report {
    fn deref_mut(&mut self) -> &mut Page {
        &mut self.page
    }
}

impl Report {
    /// `… 58 more not shown`, when a list was cut; `what` names them (`small tests`).
    fn more(&mut self, shown: usize, total: u64, top: usize, what: &str) {
        if total > shown as u64 {
            let l = format!(
                "  {} {} more {what} not shown (--top {top})",
                self.ellipsis(),
                total - shown as u64
            );
            let l = self.paint(DIM, &l);
            self.line(&l);
        }
    }

    fn header(&mut self, i: &Inspection) {
        let s = &i.summary;
        let started = if s.timestamp > 0.0 && s.timestamp.is_finite() {
            format!("Started {}", utc(s.timestamp))
        } else {
            "Start time unknown".to_string()
        };
        let first = format!(
            "Run: {} ({} testcase element{})",
            n_tests(s.total_tests()),
            s.elements,
            if s.elements == 1 { "" } else { "s" },
        );
        let first = self.paint(BOLD, &first);
        self.line(&first);
        self.line(&format!("{started}, suite time {}", secs(s.suite_duration)));
    }

    fn distribution(&mut self, i: &Inspection) {
        let s = &i.summary;
        let excluded: Vec<String> = [Size::Unsized, Size::Unknown]
            .iter()
            .filter(|z| s.size_count(**z) > 0)
            .map(|z| format!("{} {z}", s.size_count(*z)))
            .collect();
        let excluded = if excluded.is_empty() {
            String::new()
        } else {
            format!(" ({} not counted)", excluded.join(", "))
        };
        let Some(d) = &i.distribution else {
            let unknown = s.size_count(Size::Unknown);
            let why = if unknown > 0 {
                format!(
                    "none: {unknown} of {} tests have size unknown",
                    s.total_tests()
                )
            } else {
                format!("no sized tests{excluded}")
            };
            self.title("Size distribution", &why);
            return;
        };
        self.title(
            "Size distribution",
            &format!(
                "{} sized test{}{excluded}",
                d.sized,
                if d.sized == 1 { "" } else { "s" }
            ),
        );
        let bar = self
            .width
            .saturating_sub(DIST_FIXED)
            .clamp(super::MIN_WIDTH - DIST_FIXED, MAX_BAR);
        for (size, n, pct) in &d.sizes {
            let band = match size {
                Size::Small => d.bands.first(),
                Size::Medium => d.bands.get(1),
                _ => None,
            };
            let row = self.dist_row(size.as_str(), *n, *pct, bar, band);
            self.line(&row);
        }
        let big = &d.bands[2];
        let row = self.dist_row(big.band.name, big.tests, big.percentage, bar, Some(big));
        self.line(&row);
        let outside: Vec<String> = d
            .bands
            .iter()
            .filter(|b| b.status != BandStatus::Within)
            .map(|b| {
                format!(
                    "{} {:.2}% ({}-{}%)",
                    b.band.name,
                    b.percentage,
                    b.band.min(),
                    b.band.max()
                )
            })
            .collect();
        let (verdict, colour) = if outside.is_empty() {
            (
                "All within the target bands of pytest-test-categories 1.2.2.".to_string(),
                GREEN,
            )
        } else {
            (
                format!(
                    "Outside the target bands of pytest-test-categories 1.2.2: {}. With \
                     distribution enforcement the plugin reports the first (TC007).",
                    outside.join(", ")
                ),
                RED,
            )
        };
        for l in wrap(&verdict, self.width - 2) {
            let l = self.paint(colour, &l);
            self.line(&format!("  {l}"));
        }
    }

    /// One distribution row; `band` is the bucket check that applies to it, if any.
    fn dist_row(
        &self,
        name: &str,
        n: u64,
        pct: f64,
        cells: usize,
        band: Option<&BandCheck>,
    ) -> String {
        let band = band.map(|b| (b.band.min(), b.band.max(), b.status));
        // A size with tests always shows at least one cell.
        let filled = ((pct / 100.0) * cells as f64).round() as usize;
        let filled = if n > 0 { filled.max(1) } else { filled };
        let (full, band_cell, empty) = if self.colour {
            ("█", "▒", "·")
        } else {
            ("#", "-", ".")
        };
        let mut fill = String::new();
        let mut rest = String::new();
        for c in 0..cells {
            let mid = (c as f64 + 0.5) * 100.0 / cells as f64;
            if c < filled {
                fill.push_str(full);
            } else if band.is_some_and(|(lo, hi, _)| mid >= lo && mid <= hi) {
                rest.push_str(band_cell);
            } else {
                rest.push_str(empty);
            }
        }
        let colour = match band {
            Some((_, _, BandStatus::Within)) => GREEN,
            Some(_) => RED,
            None => CYAN,
        };
        let bar = format!("[{}{}]", self.paint(colour, &fill), self.paint(DIM, &rest));
        let (range, status) = match band {
            Some((lo, hi, st)) => {
                let c = if st == BandStatus::Within { GREEN } else { RED };
                (format!("{lo}-{hi}%"), self.paint(c, st.as_str()))
            }
            None => (String::new(), String::new()),
        };
        format!(
            "  {name:<12} {n:>7}  {:>7}  {bar}  {range:>6}  {status}",
            format!("{pct:.2}%")
        )
    }

    fn outcomes(&mut self, i: &Inspection) {
        let s = &i.summary;
        self.title("Outcomes by size", "");
        const ORDER: [Outcome; 5] = [
            Outcome::Passed,
            Outcome::Failed,
            Outcome::Error,
            Outcome::Xfailed,
            Outcome::Skipped,
        ];
        let mut head = format!("  {:<10}", "size");
        for o in ORDER {
            let _ = write!(head, "{:>8}", o.as_str());
        }
        let _ = write!(head, "{:>8}", "total");
        self.head(&head);
        let mut totals = [0u64; 5];
        for z in i.sizes() {
            let row = s.tests[z.index()];
            let mut l = format!("  {:<10}", z.as_str());
            for (k, o) in ORDER.iter().enumerate() {
                let n = row[o.index()];
                totals[k] += n;
                let cell = format!("{n:>8}");
                let cell = if n > 0 && matches!(o, Outcome::Failed | Outcome::Error) {
                    self.paint(RED, &cell)
                } else {
                    cell
                };
                l.push_str(&cell);
            }
            let _ = write!(l, "{:>8}", s.size_count(z));
            self.line(&l);
        }
        let mut l = format!("  {:<10}", "total");
        for n in totals {
            let _ = write!(l, "{n:>8}");
        }
        let _ = write!(l, "{:>8}", s.total_tests());
        let l = self.paint(BOLD, &l);
        self.line(&l);
        let failures: Vec<String> = FailureType::ALL
            .iter()
            .map(|f| format!("{} {}", f.as_str(), s.failures[f.index()]))
            .collect();
        for (k, l) in wrap(
            &format!("Failed and errored by type: {}", failures.join(", ")),
            self.width - 2,
        )
        .iter()
        .enumerate()
        {
            self.line(&format!("{}{l}", if k == 0 { "  " } else { "    " }));
        }
    }

    fn timing(&mut self, i: &Inspection) {
        let s = &i.summary;
        let total: u64 = s.timing_violations.iter().sum();
        self.title(
            "Timing violations (TC006)",
            &count_by_size(total, &s.timing_violations),
        );
        if i.timing.is_empty() {
            return;
        }
        self.head("  duration  limit  %limit  size     test");
        let room = self.width.saturating_sub(36);
        for f in &i.timing {
            let limit = f
                .size
                .limit_seconds()
                .map(|l| format!("{l}s"))
                .unwrap_or_else(|| "-".into());
            let l = format!(
                "  {}  {limit:>5}  {:>6}  {:<7}  {}",
                self.paint(RED, &format!("{:>8}", secs(f.duration))),
                share(f),
                f.size.as_str(),
                self.id(&f.id, room)
            );
            self.line(&l);
        }
        self.more(i.timing.len(), total, i.top, "tests");
    }

    fn baseline(&mut self, i: &Inspection) {
        let s = &i.summary;
        let total: u64 = s.baseline_violations.iter().sum();
        self.title(
            "Baseline violations (TC008)",
            &count_by_size(total, &s.baseline_violations),
        );
        if i.baseline.is_empty() {
            return;
        }
        self.head("  duration  size     test");
        let room = self.width.saturating_sub(21);
        for f in &i.baseline {
            let l = format!(
                "  {}  {:<7}  {}",
                self.paint(RED, &format!("{:>8}", secs(f.duration))),
                f.size.as_str(),
                self.id(&f.id, room)
            );
            self.line(&l);
        }
        self.more(i.baseline.len(), total, i.top, "tests");
    }

    fn near_limit(&mut self, i: &Inspection) {
        let s = &i.summary;
        let total: u64 = s.near_limit.iter().sum();
        self.title(
            &format!(
                "Near their limit (at least {}% of it, not violating)",
                round_pct(i.near_limit_ratio)
            ),
            &count_by_size(total, &s.near_limit),
        );
        if i.near_limit.is_empty() {
            return;
        }
        self.head("  duration  limit  %limit  size     test");
        let room = self.width.saturating_sub(36);
        for f in &i.near_limit {
            let limit = f
                .size
                .limit_seconds()
                .map(|l| format!("{l}s"))
                .unwrap_or_default();
            let l = format!(
                "  {}  {limit:>5}  {:>6}  {:<7}  {}",
                self.paint(YELLOW, &format!("{:>8}", secs(f.duration))),
                share(f),
                f.size.as_str(),
                self.id(&f.id, room)
            );
            self.line(&l);
        }
        self.more(i.near_limit.len(), total, i.top, "tests");
    }

    fn flaky(&mut self, i: &Inspection) {
        let s = &i.summary;
        let total: u64 = s.flaky.iter().sum();
        self.title(
            "Flaky (passed after a rerun)",
            &count_by_size(total, &s.flaky),
        );
        if i.flaky.is_empty() {
            return;
        }
        self.head("  reruns  size     test");
        let room = self.width.saturating_sub(19);
        for f in &i.flaky {
            let l = format!(
                "  {}  {:<7}  {}",
                self.paint(YELLOW, &format!("{:>6}", f.reruns)),
                f.size.as_str(),
                self.id(&f.id, room)
            );
            self.line(&l);
        }
        self.more(i.flaky.len(), total, i.top, "tests");
    }

    fn slowest(&mut self, i: &Inspection) {
        let s = &i.summary;
        if s.total_tests() == 0 {
            self.title("Slowest tests", "none");
            return;
        }
        self.title(&format!("Slowest tests (top {} per size)", i.top), "");
        if i.top == 0 {
            return;
        }
        self.head("  duration  %limit  size     test");
        let room = self.width.saturating_sub(29);
        for z in i.sizes() {
            let list = &i.slowest[z.index()];
            for f in list {
                let d = format!("{:>8}", secs(f.duration));
                let d = if f.timing {
                    self.paint(RED, &d)
                } else if f.near_limit {
                    self.paint(YELLOW, &d)
                } else {
                    d
                };
                let l = format!(
                    "  {d}  {:>6}  {:<7}  {}",
                    share(f),
                    f.size.as_str(),
                    self.id(&f.id, room)
                );
                self.line(&l);
            }
            self.more(list.len(), s.size_count(z), i.top, &format!("{z} tests"));
        }
    }

    fn hermeticity(&mut self, i: &Inspection) {
        let s = &i.summary;
        let records: u64 = s.hermeticity.iter().sum();
        if records == 0 {
            self.title("Hermeticity violations", "none");
            return;
        }
        let per: Vec<String> = Resource::ALL
            .iter()
            .map(|r| format!("{} {}", r.as_str(), s.hermeticity[r.index()]))
            .collect();
        self.title(
            "Hermeticity violations",
            &format!(
                "{records} record{} in {}",
                if records == 1 { "" } else { "s" },
                n_tests(i.hermeticity_tests),
            ),
        );
        for l in wrap(&per.join(", "), self.width - 2) {
            self.line(&format!("  {l}"));
        }
        let res: Vec<String> = i
            .hermeticity
            .iter()
            .map(|f| {
                Resource::ALL
                    .iter()
                    .filter(|r| f.hermeticity[r.index()] > 0)
                    .map(|r| format!("{} {}", r.as_str(), f.hermeticity[r.index()]))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        let rw = res.iter().map(|r| width(r)).max().unwrap_or(0).clamp(9, 30);
        self.head(&format!("  records  size     {:<rw$}  test", "resources"));
        let room = self.width.saturating_sub(22 + rw);
        for (f, r) in i.hermeticity.iter().zip(&res) {
            let n: u32 = f.hermeticity.iter().sum();
            let l = format!(
                "  {}  {:<7}  {}  {}",
                self.paint(RED, &format!("{n:>7}")),
                f.size.as_str(),
                pad_right(&fit(r, rw, self.ellipsis()), rw),
                self.id(&f.id, room)
            );
            self.line(&l);
        }
        self.more(i.hermeticity.len(), i.hermeticity_tests, i.top, "tests");
    }

    fn coverage(&mut self, i: &Inspection) {
        let Some(c) = &i.summary.coverage else {
            self.title(
                "Coverage",
                "no coverage report given (--coverage coverage.xml)",
            );
            return;
        };
        let uncovered = c.lines_valid - c.lines_covered;
        let pct = format!("{:.2}%", c.percentage());
        self.title(
            "Coverage",
            &format!(
                "{pct} of lines ({} of {} covered); {uncovered} uncovered line{} in {} file{}",
                c.lines_covered,
                c.lines_valid,
                if uncovered == 1 { "" } else { "s" },
                i.coverage_files,
                if i.coverage_files == 1 { "" } else { "s" }
            ),
        );
        let room = self.width.saturating_sub(13);
        if !c.uncovered.is_empty() {
            self.head("  uncovered  file");
            let shown = c.uncovered.len().min(i.top);
            for (file, n) in &c.uncovered[..shown] {
                let l = format!(
                    "  {}  {}",
                    self.paint(YELLOW, &format!("{n:>9}")),
                    self.id(file, room)
                );
                self.line(&l);
            }
            self.more(shown, i.coverage_files as u64, i.top, "files");
        }
        if c.modules.is_empty() {
            return;
        }
        // Least covered first (METRICS.md §3: test_module_coverage_percentage).
        self.head("   coverage  module");
        let shown = c.modules.len().min(i.top);
        for m in &c.modules[..shown] {
            let pct = format!("{:>8.2}%", m.percentage());
            let colour = if m.lines_covered < m.lines_valid {
                YELLOW
            } else {
                GREEN
            };
            let l = format!(
                "  {}  {}",
                self.paint(colour, &pct),
                self.id(&m.module, room)
            );
            self.line(&l);
        }
        self.more(shown, c.modules.len() as u64, i.top, "modules");
    }

    fn warnings(&mut self, i: &Inspection) {
        if i.warnings.is_empty() {
            self.title("Warnings", "none");
            return;
        }
        self.title("Warnings", &i.warnings.len().to_string());
        for w in &i.warnings {
            for (k, l) in wrap(&sanitize(w), self.width - 4).iter().enumerate() {
                let lead = if k == 0 {
                    self.paint(YELLOW, "!")
                } else {
                    " ".into()
                };
                self.line(&format!("  {lead} {l}"));
            }
        }
    }
}

/// `3 tests (small 2, medium 1)`, or `none`.
pub(crate) fn count_by_size(total: u64, per: &[u64; 6]) -> String {
    if total == 0 {
        return "none".into();
    }
    let parts: Vec<String> = Size::ALL
        .iter()
        .filter(|z| per[z.index()] > 0)
        .map(|z| format!("{z} {}", per[z.index()]))
        .collect();
    format!("{} ({})", n_tests(total), parts.join(", "))
}

pub(crate) fn n_tests(n: u64) -> String {
    format!("{n} test{}", if n == 1 { "" } else { "s" })
}

pub(crate) fn round_pct(r: f64) -> String {
    let p = r * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{}", p.round())
    } else {
        format!("{p:.1}")
    }
}

/// `310s`, `12.5s`, `1.101s`, `52.8ms`, `0.135ms`: four significant digits or so, never
/// a misleading `0.000s`.
pub fn secs(d: f64) -> String {
    if d >= 100.0 {
        format!("{d:.0}s")
    } else if d >= 10.0 {
        format!("{d:.1}s")
    } else if d >= 1.0 {
        format!("{d:.3}s")
    } else if d >= 0.001 {
        format!("{:.1}ms", d * 1000.0)
    } else {
        format!("{:.3}ms", d * 1000.0)
    }
}

/// Duration as a share of the size's limit, `-` without a limit.
fn share(f: &TestFacts) -> String {
    match f.size.limit_seconds() {
        Some(l) => format!("{:.0}%", f.duration * 100.0 / l),
        None => "-".into(),
    }
}

/// `2026-11-26 14:26:54 UTC` from Unix seconds.
pub fn utc(t: f64) -> String {
    let secs = t.floor() as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = crate::civil::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(secs(1.1014851529999987), "1.101s");
        assert_eq!(secs(12.34), "12.3s");
        assert_eq!(secs(310.2), "310s");
        assert_eq!(secs(0.05277143499995418), "52.8ms");
        assert_eq!(secs(0.00013513299995793204), "0.135ms");
        assert_eq!(secs(0.0), "0.000ms");
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        // 2026-11-26T14:26:54Z, the pytest 9.2 fixture's testsuite timestamp.
        assert_eq!(utc(1_795_703_214.05), "2026-11-26 14:26:54 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
        assert_eq!(round_pct(0.8), "80");
        assert_eq!(round_pct(0.875), "87.5");
    }
}
