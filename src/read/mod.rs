//! Stage 1 of the pipeline: read every input and build the one [`Run`] model.
//!
//! Inputs are recognised by content, not by extension (`source::sniff`): JUnit XML,
//! the plugin's JSON size report, a captured pytest terminal log holding that JSON or
//! the `detailed` report, and Cobertura coverage. Several JUnit files merge into one run.
//! Collapsing of attempts and the size-report join follow METRICS.md §1–2.

pub mod coverage;
pub mod junit;
pub mod size_report;
pub mod source;

use std::path::{Path, PathBuf};

use crate::derive::nodeid;
use crate::model::{test_key, CaseElement, ReportEntry, Run, SuiteInfo, TestRecord};

pub use source::Kind;

/// An input that could not be read. The message names the file, the position when
/// there is one, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), position.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ReadError {
    pub path: PathBuf,
    /// 1-based line and column.
    pub position: Option<(u64, u64)>,
    pub message: String,
}

impl ReadError {
    pub fn plain(path: &Path, message: impl Into<String>) -> Self {
        ReadError {
            path: path.to_path_buf(),
            position: None,
            message: message.into(),
        }
    }

    pub fn io(path: &Path, e: &std::io::Error) -> Self {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                format!("cannot be read: {e} (a damaged .gz file?)")
            }
            _ => format!("cannot be read: {e}"),
        };
        Self::plain(path, message)
    }

    /// An error at a byte offset of the (decompressed) content.
    pub fn at(path: &Path, offset: u64, message: impl Into<String>) -> Self {
        ReadError {
            path: path.to_path_buf(),
            position: source::line_col(path, offset),
            message: message.into(),
        }
    }

    pub fn at_line(path: &Path, line: u64, col: u64, message: impl Into<String>) -> Self {
        ReadError {
            path: path.to_path_buf(),
            position: Some((line, col)),
            message: message.into(),
        }
    }
}

/// What to read for one run.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// JUnit XML files (a size report or coverage file given here is recognised too).
    pub reports: Vec<PathBuf>,
    /// Size reports: the plugin's JSON, or a terminal log holding it or the detailed report.
    pub size_reports: Vec<PathBuf>,
    /// Cobertura coverage files.
    pub coverage: Vec<PathBuf>,
    /// `--junit-prefix`: the `--junitprefix` given to pytest, removed for the join.
    pub junit_prefix: String,
}

/// Reads all inputs into one run. JUnit first, then size reports (joined onto the tests).
pub fn read_run(inputs: &Inputs) -> Result<Run, ReadError> {
    let mut junit = Vec::new();
    let mut sizes = inputs.size_reports.clone();
    let mut cov = inputs.coverage.clone();
    for p in &inputs.reports {
        match source::sniff(p)? {
            Kind::Junit => junit.push(p.clone()),
            Kind::Json | Kind::Text => sizes.push(p.clone()),
            Kind::Coverage => cov.push(p.clone()),
            k => return Err(kind_error(p, k, "a JUnit XML report")),
        }
    }
    let mut b = RunBuilder::new(&inputs.junit_prefix);
    for p in &junit {
        b.read_junit(p)?;
    }
    for p in &sizes {
        let ts = match source::sniff(p)? {
            Kind::Json => size_report::read_json(p, &mut |e| b.apply_report(e))?,
            Kind::Text => size_report::read_terminal_log(p, &mut |e| b.apply_report(e))?,
            k => {
                return Err(kind_error(
                    p,
                    k,
                    "a size report (JSON or a pytest terminal log)",
                ))
            }
        };
        if let Some(ts) = ts {
            b.run.report_timestamp = Some(b.run.report_timestamp.map_or(ts, |t: f64| t.max(ts)));
        }
        b.run.has_size_report = true;
        b.note_mtime(p);
    }
    for p in &cov {
        match source::sniff(p)? {
            Kind::Coverage => {
                let c = coverage::read(p)?;
                b.run.coverage = Some(match b.run.coverage.take() {
                    Some(prev) => coverage::merge(prev, c),
                    None => c,
                });
            }
            k => return Err(kind_error(p, k, "a Cobertura coverage.xml")),
        }
    }
    Ok(b.finish())
}

fn kind_error(p: &Path, k: Kind, wanted: &str) -> ReadError {
    let what = match k {
        Kind::Empty => "is empty".to_string(),
        Kind::Binary => "is a binary file, not text".to_string(),
        Kind::OtherXml => {
            "is XML but not a known report (root is not <testsuites>, <testsuite> or <coverage>)"
                .to_string()
        }
        Kind::Junit => "is a JUnit report".to_string(),
        Kind::Coverage => "is a coverage report".to_string(),
        Kind::Json => "is JSON".to_string(),
        Kind::Text => "is plain text".to_string(),
    };
    ReadError::plain(p, format!("{what}; expected {wanted}"))
}

/// One entry of a size report, as every size-report reader yields it.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeEntry {
    /// Node id as written (9.1.x: with the ` [SIZE]` label).
    pub name: String,
    /// `None` when the report has no size column (never for the JSON report).
    pub size: Option<crate::model::Size>,
    pub duration: Option<f64>,
    pub timing: bool,
    pub hermeticity: [u32; 5],
}

/// Builds a [`Run`]: collapses attempts as elements arrive, then joins size reports.
pub struct RunBuilder {
    run: Run,
    prefix: String,
    key_buf: String,
}

impl RunBuilder {
    pub fn new(junit_prefix: &str) -> Self {
        RunBuilder {
            run: Run::default(),
            prefix: junit_prefix.to_string(),
            key_buf: String::new(),
        }
    }

    pub fn read_junit(&mut self, path: &Path) -> Result<(), ReadError> {
        let s = junit::read(path, |c| self.add_element(c))?;
        let suite = &mut self.run.suite;
        suite.duration_seconds += s.duration_seconds;
        suite.elements += s.elements;
        if let Some(t) = s.earliest_timestamp {
            suite.earliest_timestamp = Some(suite.earliest_timestamp.map_or(t, |e| e.min(t)));
        }
        self.note_mtime(path);
        Ok(())
    }

    fn note_mtime(&mut self, path: &Path) {
        if let Some(m) = source::mtime(path) {
            self.run.newest_input_mtime = Some(self.run.newest_input_mtime.map_or(m, |n| n.max(m)));
        }
    }

    /// Adds one `<testcase>` element: a new test, a rerun of a known one, or the
    /// teardown error of its last attempt (METRICS.md §1).
    pub fn add_element(&mut self, c: CaseElement) {
        let (base, label) = nodeid::split_size_label(&c.name);
        if label.is_some() {
            self.run.any_name_label = true;
        }
        let classname = nodeid::strip_prefix(&c.classname, &self.prefix);
        self.key_buf.clear();
        self.key_buf.push_str(classname);
        self.key_buf.push('\0');
        self.key_buf.push_str(base);
        if let Some(rec) = self.run.tests.get_mut(self.key_buf.as_str()) {
            if label.is_some() {
                rec.label_size = label;
            }
            rec.reruns += c.rerun_children;
            if c.teardown_error_only {
                rec.last.error = true;
                rec.last_time += c.time;
            } else {
                rec.attempts += 1;
                rec.reruns += 1;
                rec.last = c.result;
                rec.last_marks = c.marks;
                rec.last_time = c.time;
            }
            return;
        }
        let rec = TestRecord {
            label_size: label,
            file: c.file,
            attempts: 1,
            reruns: c.rerun_children,
            last: c.result,
            last_marks: c.marks,
            last_time: c.time,
            report: None,
        };
        self.run.tests.insert(self.key_buf.as_str().into(), rec);
    }

    /// Joins one size-report entry onto its JUnit test by pytest's node id → (classname,
    /// name) rule, trying the pytest 9.2 algorithm first and then 9.1's.
    pub fn apply_report(&mut self, e: SizeEntry) {
        if e.name.is_empty() {
            return;
        }
        let node_id = strip_label_from_nodeid(&e.name);
        let entry = ReportEntry {
            node_id: node_id.to_string(),
            size: e.size,
            duration: e.duration,
            timing: e.timing,
            hermeticity: e.hermeticity,
        };
        let (c2, n2) = nodeid::mangle_9_2(node_id);
        let k2 = test_key(&c2, &n2);
        if let Some(rec) = self.run.tests.get_mut(k2.as_str()) {
            rec.report = Some(entry);
            return;
        }
        let (c1, n1) = nodeid::mangle_9_1(node_id);
        let k1 = test_key(&c1, &n1);
        if let Some(rec) = self.run.tests.get_mut(k1.as_str()) {
            rec.report = Some(entry);
            return;
        }
        self.run.report_misses += 1;
    }

    pub fn finish(self) -> Run {
        self.run
    }

    pub fn suite(&self) -> &SuiteInfo {
        &self.run.suite
    }
}

/// `tests/a.py::t[p] [SMALL]` → `tests/a.py::t[p]` (the label is the node id's tail).
fn strip_label_from_nodeid(id: &str) -> &str {
    nodeid::split_size_label(id).0
}
