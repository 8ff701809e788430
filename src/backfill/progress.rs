//! Progress of a backfill: an `indicatif` bar on a terminal (runs, samples, rate, ETA),
//! plain log lines every few seconds otherwise (cron mails, CI logs). Messages given to
//! [`Progress::line`] go above the bar, or are plain lines.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A bar on stderr (a terminal).
    Bar,
    /// A line every few seconds and one at the end of each phase.
    Plain,
}

/// How often a plain progress line is written.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress<'a> {
    mode: Mode,
    out: &'a mut dyn Write,
    bar: Option<ProgressBar>,
    phase: &'static str,
    unit: &'static str,
    total: u64,
    done: u64,
    samples: u64,
    started: Instant,
    last_line: Instant,
}

impl<'a> Progress<'a> {
    pub fn new(mode: Mode, out: &'a mut dyn Write) -> Self {
        Progress {
            mode,
            out,
            bar: None,
            phase: "",
            unit: "runs",
            total: 0,
            done: 0,
            samples: 0,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    /// Starts a phase (`parsing` over directories, `delivering` over runs).
    pub fn start(&mut self, phase: &'static str, unit: &'static str, total: u64) {
        self.finish_bar();
        self.phase = phase;
        self.unit = unit;
        self.total = total;
        self.done = 0;
        self.samples = 0;
        self.started = Instant::now();
        self.last_line = Instant::now();
        if self.mode == Mode::Bar && total > 0 {
            let style = ProgressStyle::with_template(
                "{prefix:>10} [{bar:30}] {pos}/{len} {msg} ({per_sec}, ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                .with_style(style)
                .with_prefix(phase)
                .with_message(unit);
            self.bar = Some(bar);
        }
    }

    /// `n` more units done, `samples` more samples written.
    pub fn advance(&mut self, n: u64, samples: u64) {
        self.done += n;
        self.samples += samples;
        if let Some(b) = &self.bar {
            if self.samples > 0 {
                b.set_message(format!("{}, {} samples", self.unit, self.samples));
            }
            b.inc(n);
        } else if self.mode == Mode::Plain && self.last_line.elapsed() >= PLAIN_EVERY {
            self.last_line = Instant::now();
            let line = self.status(false);
            let _ = writeln!(self.out, "{line}");
        }
    }

    /// Ends the phase with a summary line.
    pub fn finish(&mut self) {
        self.finish_bar();
        if self.total > 0 || self.done > 0 {
            let line = self.status(true);
            let _ = writeln!(self.out, "{line}");
        }
        self.total = 0;
        self.done = 0;
    }

    /// A message for the user, above the bar when there is one.
    pub fn line(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => {
                let out = &mut self.out;
                b.suspend(|| {
                    let _ = writeln!(out, "{msg}");
                });
            }
            None => {
                let _ = writeln!(self.out, "{msg}");
            }
        }
    }

    fn finish_bar(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    fn status(&self, end: bool) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        };
        let samples = if self.samples > 0 {
            format!(", {} samples", self.samples)
        } else {
            String::new()
        };
        if end {
            format!(
                "backfill: {} {} {}{samples} in {secs:.1} s ({rate:.1} {}/s)",
                self.phase, self.done, self.unit, self.unit
            )
        } else {
            let eta = if rate > 0.0 {
                format!(
                    ", ETA {:.0} s",
                    self.total.saturating_sub(self.done) as f64 / rate
                )
            } else {
                String::new()
            };
            format!(
                "backfill: {} {}/{} {}{samples} ({rate:.1} {}/s{eta})",
                self.phase, self.done, self.total, self.unit, self.unit
            )
        }
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        self.finish_bar();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_mode_writes_a_summary_per_phase() {
        let mut buf = Vec::new();
        {
            let mut p = Progress::new(Mode::Plain, &mut buf);
            p.start("delivered", "runs", 3);
            p.advance(2, 10);
            p.line("warning: something");
            p.advance(1, 5);
            p.finish();
        }
        let s = String::from_utf8(buf).unwrap();
        assert!(
            s.starts_with("warning: something\nbackfill: delivered 3 runs, 15 samples in "),
            "{s}"
        );
    }
}
