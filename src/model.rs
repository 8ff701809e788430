//! The one model of a test run that every reader fills and every derivation reads.
//!
//! Readers (`crate::read`) turn JUnit XML, the plugin's size report and coverage
//! into a [`Run`]; the pure functions in `crate::derive` turn a `Run` into metric
//! values. Vocabulary follows `METRICS.md` §1–2 (outcome, size, attempts, flaky,
//! violations) and `FORMATS.md` (pytest 9.1/9.2, pytest-test-categories 1.2.2).

use std::collections::HashMap;
use std::fmt;

/// A test's size as pytest-test-categories knows it, plus the two "no size" states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Size {
    Small,
    Medium,
    Large,
    Xlarge,
    /// A size source exists for the run but says nothing about this test.
    Unsized,
    /// No size source exists at all for this run.
    Unknown,
}

impl Size {
    /// The four real sizes, in the plugin's order.
    pub const SIZED: [Size; 4] = [Size::Small, Size::Medium, Size::Large, Size::Xlarge];
    /// Every label value, in exposition order.
    pub const ALL: [Size; 6] = [
        Size::Small,
        Size::Medium,
        Size::Large,
        Size::Xlarge,
        Size::Unsized,
        Size::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
            Size::Xlarge => "xlarge",
            Size::Unsized => "unsized",
            Size::Unknown => "unknown",
        }
    }

    /// Parses a label value (`small`) or the plugin's upper-case label (`SMALL`).
    pub fn parse(s: &str) -> Option<Size> {
        match s {
            "small" | "SMALL" => Some(Size::Small),
            "medium" | "MEDIUM" => Some(Size::Medium),
            "large" | "LARGE" => Some(Size::Large),
            "xlarge" | "XLARGE" => Some(Size::Xlarge),
            "unsized" => Some(Size::Unsized),
            "unknown" => Some(Size::Unknown),
            _ => None,
        }
    }

    pub fn is_sized(self) -> bool {
        matches!(
            self,
            Size::Small | Size::Medium | Size::Large | Size::Xlarge
        )
    }

    /// pytest-test-categories 1.2.2 time limit in seconds (fixed, not configurable).
    pub fn limit_seconds(self) -> Option<f64> {
        match self {
            Size::Small => Some(1.0),
            Size::Medium => Some(300.0),
            Size::Large | Size::Xlarge => Some(900.0),
            Size::Unsized | Size::Unknown => None,
        }
    }

    /// Index into per-size arrays of length 6.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The collapsed outcome of a test (METRICS.md §1, first match wins in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Failed,
    Error,
    Xfailed,
    Skipped,
    Passed,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Failed,
        Outcome::Error,
        Outcome::Xfailed,
        Outcome::Skipped,
        Outcome::Passed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::Xfailed => "xfailed",
            Outcome::Skipped => "skipped",
            Outcome::Passed => "passed",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resources pytest-test-categories guards (TC001–TC005).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Network,
    Filesystem,
    Process,
    Database,
    Sleep,
}

impl Resource {
    pub const ALL: [Resource; 5] = [
        Resource::Network,
        Resource::Filesystem,
        Resource::Process,
        Resource::Database,
        Resource::Sleep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Network => "network",
            Resource::Filesystem => "filesystem",
            Resource::Process => "process",
            Resource::Database => "database",
            Resource::Sleep => "sleep",
        }
    }

    pub fn parse(s: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The plugin's error code for this resource: TC001 network … TC005 sleep.
    pub fn from_code(code: &str) -> Option<Resource> {
        match code {
            "TC001" => Some(Resource::Network),
            "TC002" => Some(Resource::Filesystem),
            "TC003" => Some(Resource::Process),
            "TC004" => Some(Resource::Database),
            "TC005" => Some(Resource::Sleep),
            _ => None,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Kinds of `ci_test_failures_total{failure_type}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureType {
    Assertion,
    Error,
    HermeticityViolation,
    TimingViolation,
}

impl FailureType {
    pub const ALL: [FailureType; 4] = [
        FailureType::Assertion,
        FailureType::Error,
        FailureType::HermeticityViolation,
        FailureType::TimingViolation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureType::Assertion => "assertion",
            FailureType::Error => "error",
            FailureType::HermeticityViolation => "hermeticity_violation",
            FailureType::TimingViolation => "timing_violation",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The result child an attempt carried in JUnit XML, ranked as METRICS.md §1 ranks outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptResult {
    /// A `<failure>`, or the slow-xfail `<skipped message="xfail-marked test passes unexpectedly">`.
    pub failure: bool,
    pub error: bool,
    pub xfail: bool,
    pub skipped: bool,
}

impl AttemptResult {
    pub fn outcome(&self) -> Outcome {
        if self.failure {
            Outcome::Failed
        } else if self.error {
            Outcome::Error
        } else if self.xfail {
            Outcome::Xfailed
        } else if self.skipped {
            Outcome::Skipped
        } else {
            Outcome::Passed
        }
    }
}

/// What the failure/error texts of one attempt say about the plugin's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureMarks {
    /// A line exactly `[TC006] Timing Violation`.
    pub timing: bool,
    /// A line exactly `[TC008] Performance Baseline Violation`.
    pub baseline: bool,
    /// A `pytest_test_categories.exceptions.*ViolationError:` message with TC001–TC005.
    pub hermeticity: Option<Resource>,
    /// The `Category: SIZE` line of a TC00x text.
    pub category: Option<Size>,
}

impl FailureMarks {
    pub fn merge(&mut self, other: FailureMarks) {
        self.timing |= other.timing;
        self.baseline |= other.baseline;
        if self.hermeticity.is_none() {
            self.hermeticity = other.hermeticity;
        }
        if self.category.is_none() {
            self.category = other.category;
        }
    }
}

/// One `<testcase>` element as read from JUnit XML, before collapsing.
#[derive(Debug, Clone, Default)]
pub struct CaseElement {
    pub classname: String,
    pub name: String,
    /// `file` attribute (xunit1), used to spell a node id when no size report names the test.
    pub file: Option<String>,
    pub time: f64,
    pub result: AttemptResult,
    pub marks: FailureMarks,
    /// The element holds only `<error message="failed on teardown …">`.
    pub teardown_error_only: bool,
    /// Surefire-style `<rerunFailure>`, `<rerunError>`, `<flakyFailure>`, `<flakyError>` children.
    pub rerun_children: u32,
}

/// A test after collapsing its attempts (METRICS.md §1). Its identity
/// `(classname, name-without-label)` is the key it is stored under in [`Run::tests`].
#[derive(Debug, Clone, Default)]
pub struct TestRecord {
    /// Size from the JUnit name label (pytest 9.1.x), if any.
    pub label_size: Option<Size>,
    pub file: Option<String>,
    /// Number of attempts seen (elements, with teardown-only errors folded into the attempt before).
    pub attempts: u32,
    /// Reruns: every attempt but the last, plus Surefire rerun/flaky children.
    pub reruns: u32,
    /// Result of the last attempt.
    pub last: AttemptResult,
    /// Failure marks of the last attempt.
    pub last_marks: FailureMarks,
    /// Sum of JUnit `time` over the elements of the last attempt.
    pub last_time: f64,
    /// Filled by the size-report join.
    pub report: Option<ReportEntry>,
}

impl TestRecord {
    pub fn outcome(&self) -> Outcome {
        self.last.outcome()
    }
}

/// The map key of a test identity: `classname`, NUL, `name`. NUL cannot occur in XML 1.0
/// text, so the key splits back unambiguously.
pub fn test_key(classname: &str, name: &str) -> String {
    let mut k = String::with_capacity(classname.len() + name.len() + 1);
    k.push_str(classname);
    k.push('\0');
    k.push_str(name);
    k
}

/// Splits a [`test_key`] into `(classname, name)`.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('\0').unwrap_or(("", key))
}

/// A readable id for a test when no size report gave its node id:
/// `file::…::name` for xunit1, else `classname::name` (or `name` alone).
pub fn display_id(key: &str, rec: &TestRecord) -> String {
    if let Some(entry) = &rec.report {
        return entry.node_id.clone();
    }
    let (classname, name) = split_key(key);
    if let Some(file) = &rec.file {
        // xunit1: `file` + the classes left of the module path give pytest's node id.
        let module = file.strip_suffix(".py").unwrap_or(file).replace('/', ".");
        if let Some(rest) = classname.strip_prefix(module.as_str()) {
            if rest.is_empty() || rest.starts_with('.') {
                let mut id = file.clone();
                for class in rest.split('.').filter(|c| !c.is_empty()) {
                    id.push_str("::");
                    id.push_str(class);
                }
                id.push_str("::");
                id.push_str(name);
                return id;
            }
        }
    }
    if classname.is_empty() {
        name.to_string()
    } else {
        format!("{classname}::{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_ids() {
        let rec = TestRecord {
            file: Some("tests/unit/test_deep.py".into()),
            ..TestRecord::default()
        };
        let key = test_key("tests.unit.test_deep.TestDeep.TestInner", "test_x[a.b]");
        assert_eq!(
            display_id(&key, &rec),
            "tests/unit/test_deep.py::TestDeep::TestInner::test_x[a.b]"
        );
        let plain = TestRecord::default();
        assert_eq!(display_id(&test_key("tests.a", "t"), &plain), "tests.a::t");
        assert_eq!(
            display_id(&test_key("", "tests.skipped_module"), &plain),
            "tests.skipped_module"
        );
    }
}

/// What the plugin's size report says about one test.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReportEntry {
    /// The node id from the report, label removed.
    pub node_id: String,
    pub size: Option<Size>,
    /// Call-phase duration; `None` when the test had no call phase.
    pub duration: Option<f64>,
    pub timing: bool,
    pub hermeticity: [u32; 5],
}

/// Suite-level facts gathered from all inputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SuiteInfo {
    /// Sum of the outermost `testsuite@time` over inputs.
    pub duration_seconds: f64,
    /// Earliest `testsuite@timestamp`, Unix seconds.
    pub earliest_timestamp: Option<f64>,
    /// `<testcase>` elements read.
    pub elements: u64,
}

/// Everything one invocation was given, merged: the run.
#[derive(Debug, Default)]
pub struct Run {
    /// Tests keyed by identity, see [`test_key`].
    pub tests: HashMap<Box<str>, TestRecord>,
    pub suite: SuiteInfo,
    /// True when any JUnit name carried a ` [SIZE]` label.
    pub any_name_label: bool,
    /// True when a size report (JSON, stdout JSON or detailed) was given.
    pub has_size_report: bool,
    /// JSON `timestamp` of the size report (run end), Unix seconds.
    pub report_timestamp: Option<f64>,
    /// Size-report entries that matched no JUnit test.
    pub report_misses: u64,
    /// Newest modification time of the inputs, Unix seconds.
    pub newest_input_mtime: Option<f64>,
    pub coverage: Option<Coverage>,
}

/// Line coverage from a Cobertura `coverage.xml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coverage {
    pub lines_valid: u64,
    pub lines_covered: u64,
    /// Uncovered lines per file, only files with at least one.
    pub uncovered: Vec<(String, u64)>,
}

impl Coverage {
    /// `lines-covered / lines-valid × 100`; 100 when there is nothing to cover.
    pub fn percentage(&self) -> f64 {
        if self.lines_valid == 0 {
            100.0
        } else {
            self.lines_covered as f64 * 100.0 / self.lines_valid as f64
        }
    }
}
