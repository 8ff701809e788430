//! The one model of a test run that every reader fills and every derivation reads.
//!
//! Readers (`crate::read`) turn JUnit XML, the plugin's size report and coverage
//! into a [`Run`]; the pure functions in `crate::derive` turn a `Run` into metric
//! values. Vocabulary follows `METRICS.md` §1–2 (outcome, size, attempts, flaky,
//! violations) and the real outputs in `fixtures/` (pytest 9.1/9.2, pytest-test-categories 1.2.2).

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

/// One `<testcase>` element as read from JUnit XML, before collapsing. The strings
/// borrow the reader's buffers: copy what you keep.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaseElement<'a> {
    pub classname: &'a str,
    pub name: &'a str,
    /// `file` attribute (xunit1), used to spell a node id when no size report names the test.
    pub file: Option<&'a str>,
    pub time: f64,
    pub result: AttemptResult,
    pub marks: FailureMarks,
    /// The element holds only `<error message="failed on teardown …">`.
    pub teardown_error_only: bool,
    /// Surefire-style `<rerunFailure>`, `<rerunError>`, `<flakyFailure>`, `<flakyError>` children.
    pub rerun_children: u32,
    /// First line of the attempt's first `<failure>`/`<error>` message (or the slow-xfail
    /// message), bounded and with control characters escaped (`crate::read::junit::first_line`).
    pub message: Option<&'a str>,
}

/// A test after collapsing its attempts (METRICS.md §1), as [`Tests`] hands it out.
/// Its identity is `(classname, name-without-label)`; see [`Tests::key`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TestRecord {
    /// Size from the JUnit name label (pytest 9.1.x), if any.
    pub label_size: Option<Size>,
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

/// What the plugin's size report says about one test. (Its node id is kept by [`Tests`]
/// when the run keeps test ids.)
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReportEntry {
    pub size: Option<Size>,
    /// Call-phase duration; `None` when the test had no call phase.
    pub duration: Option<f64>,
    pub timing: bool,
    pub hermeticity: [u32; 5],
}

/// A readable id for a test when no size report gave its node id:
/// `file::…::name` for xunit1, else `classname::name` (or `name` alone).
pub fn display_id(classname: &str, name: &str, file: Option<&str>) -> String {
    if let Some(file) = file {
        // xunit1: `file` + the classes left of the module path give pytest's node id.
        let module = file.strip_suffix(".py").unwrap_or(file).replace('/', ".");
        if let Some(rest) = classname.strip_prefix(module.as_str()) {
            if rest.is_empty() || rest.starts_with('.') {
                let mut id = file.to_string();
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

/// A test's identity: a 128-bit hash of `(classname, name-without-label)` (seeded per run,
/// lengths included, so no two identities share a key in practice and none can be
/// forged to collide from outside).
pub type TestKey = u128;

/// An empty index entry. Entries hold slot number + 1, so a fresh zeroed table is empty
/// and its pages cost nothing until written.
const NO_SLOT: u64 = 0;
const NONE_ID: u32 = u32::MAX;
/// In [`NameRef::report`]: the interned string is the whole node id, not a prefix of the name.
const FULL_ID: u32 = 1 << 31;

/// One test in 48 bytes: key, times, counts and every flag packed into `bits`.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: [u64; 2],
    last_time: f64,
    /// The report's duration; NaN when none (durations are checked finite and ≥ 0).
    report_duration: f64,
    attempts: u32,
    reruns: u32,
    bits: u32,
    /// 1 + index into `Tests::herm`, 0 when the report had no hermeticity records.
    herm: u32,
}

// `bits` layout.
const B_LABEL: u32 = 0; // 3 bits: Option<Size>
const B_FAILURE: u32 = 1 << 3;
const B_ERROR: u32 = 1 << 4;
const B_XFAIL: u32 = 1 << 5;
const B_SKIPPED: u32 = 1 << 6;
const B_TIMING: u32 = 1 << 7;
const B_BASELINE: u32 = 1 << 8;
const B_HERM: u32 = 9; // 3 bits: Option<Resource>
const B_CATEGORY: u32 = 12; // 3 bits: Option<Size>
const B_REPORT: u32 = 1 << 15;
const B_REPORT_SIZE: u32 = 16; // 3 bits: Option<Size>
const B_REPORT_TIMING: u32 = 1 << 19;

fn put3(v: Option<usize>, shift: u32) -> u32 {
    v.map_or(0, |i| (i as u32 + 1) << shift)
}

fn get3(bits: u32, shift: u32) -> Option<usize> {
    match (bits >> shift) & 7 {
        0 => None,
        n => Some(n as usize - 1),
    }
}

/// Where a kept test's names are (only when the run keeps test ids).
#[derive(Debug, Clone, Copy)]
struct NameRef {
    /// The name (label removed) in `Names::arena`.
    start: u64,
    len: u32,
    class: u32,
    file: u32,
    /// The report's node id: an interned prefix to put before the name, or with
    /// [`FULL_ID`] the whole id; [`NONE_ID`] without a report.
    report: u32,
}

/// Names of the tests, stored once: classnames, files and node-id prefixes interned
/// (a module holds many tests), test names back to back in one arena.
#[derive(Debug, Default)]
struct Names {
    strings: Vec<Box<str>>,
    /// Keyed by a seeded xxh3: fast on the short strings here, and the inputs cannot be
    /// made to collide from outside.
    lookup: std::collections::HashMap<Box<str>, u32, xxhash_rust::xxh3::Xxh3Builder>,
    arena: String,
    refs: Vec<NameRef>,
}

impl Names {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.lookup.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.into());
        self.lookup.insert(s.into(), i);
        i
    }

    fn name(&self, r: &NameRef) -> &str {
        &self.arena[r.start as usize..r.start as usize + r.len as usize]
    }
}

/// The tests of a run in a compact table: 48 bytes per test plus an open-addressing
/// index of at most 16 bytes per test, keyed by [`TestKey`], in first-seen order. Names are kept
/// only when the run keeps test ids (per-test series, `inspect`); the metrics need none.
#[derive(Debug, Default)]
pub struct Tests {
    slots: Vec<Slot>,
    /// Linear probing; length 0 or a power of two, at most half full. An entry is the
    /// slot number in the low 32 bits and 32 more bits of the key above, so a probe that
    /// misses rarely has to look at the slot (a cache miss) to know it.
    index: Vec<u64>,
    herm: Vec<[u32; 5]>,
    names: Option<Names>,
    /// Failure messages by slot, kept only when asked ([`Tests::keep_messages`]), and only
    /// for tests whose last attempt has one: a few hundred bytes per failed test at most.
    messages: Option<std::collections::HashMap<u32, Box<str>>>,
    seed: u64,
    scratch: Vec<u8>,
}

impl Tests {
    /// An empty table; `keep_ids` keeps the names [`TestRef::id`] needs.
    pub fn new(keep_ids: bool, seed: u64) -> Self {
        Tests {
            names: keep_ids.then(|| Names {
                lookup: std::collections::HashMap::with_hasher(
                    xxhash_rust::xxh3::Xxh3Builder::new().with_seed(seed.rotate_left(17)),
                ),
                ..Names::default()
            }),
            seed,
            ..Tests::default()
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// From now on keep each test's last failure message ([`TestRef::message`]).
    pub fn keep_messages(&mut self) {
        self.messages.get_or_insert_with(Default::default);
    }

    /// Sets (or with `None` removes) the failure message of the test in slot `i`. Does
    /// nothing unless [`keep_messages`](Self::keep_messages) was called.
    pub fn set_message(&mut self, i: usize, message: Option<&str>) {
        if let Some(m) = &mut self.messages {
            match message {
                Some(s) => {
                    m.insert(i as u32, s.into());
                }
                None => {
                    m.remove(&(i as u32));
                }
            }
        }
    }

    /// True when messages are kept.
    pub fn has_messages(&self) -> bool {
        self.messages.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// True when [`TestRef::id`] gives the tests' node ids.
    pub fn has_ids(&self) -> bool {
        self.names.is_some()
    }

    /// The key of the test `(classname, name)` (name without its size label).
    pub fn key(&mut self, classname: &str, name: &str) -> TestKey {
        self.scratch.clear();
        self.scratch
            .extend_from_slice(&(classname.len() as u64).to_le_bytes());
        self.scratch.extend_from_slice(classname.as_bytes());
        self.scratch.extend_from_slice(name.as_bytes());
        xxhash_rust::xxh3::xxh3_128_with_seed(&self.scratch, self.seed)
    }

    /// The slot number of a key.
    pub fn find(&self, key: TestKey) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let want = split(key);
        let tag = tag(want);
        let mask = self.index.len() - 1;
        let mut p = want[0] as usize & mask;
        loop {
            let v = self.index[p];
            if v == NO_SLOT {
                return None;
            }
            if v & !0xFFFF_FFFF == tag && self.slots[slot_of(v)].key == want {
                return Some(slot_of(v));
            }
            p = (p + 1) & mask;
        }
    }

    /// Starts loading the index entry of `key` into the cache, so that a [`find`](Self::find)
    /// a little later does not wait for memory. A hint: no effect on results.
    pub fn prefetch(&self, key: TestKey) {
        if !self.index.is_empty() {
            let p = key as u64 as usize & (self.index.len() - 1);
            prefetch(&self.index[p]);
        }
    }

    /// After [`prefetch`](Self::prefetch): starts loading the slot the index names for
    /// `key` (when its tag matches), for an update a little later.
    pub fn prefetch_slot(&self, key: TestKey) {
        if self.index.is_empty() {
            return;
        }
        let want = split(key);
        let mask = self.index.len() - 1;
        let p = want[0] as usize & mask;
        let v = self.index[p];
        if v != NO_SLOT && v & !0xFFFF_FFFF == tag(want) {
            prefetch(&self.slots[slot_of(v)]);
        }
    }

    /// Adds a new test (the key must not be present) and returns its slot number.
    /// `names` is `(classname, name, file)`, kept when the table keeps ids.
    pub fn insert(
        &mut self,
        key: TestKey,
        rec: &TestRecord,
        names: (&str, &str, Option<&str>),
    ) -> usize {
        if (self.slots.len() + 1) * 2 > self.index.len() {
            self.grow();
        }
        let i = self.slots.len();
        assert!(i < u32::MAX as usize - 1, "more than 4 billion tests");
        self.slots.push(Slot {
            key: split(key),
            last_time: 0.0,
            report_duration: f64::NAN,
            attempts: 0,
            reruns: 0,
            bits: 0,
            herm: 0,
        });
        self.set(i, rec);
        let k = split(key);
        let mask = self.index.len() - 1;
        let mut p = k[0] as usize & mask;
        while self.index[p] != NO_SLOT {
            p = (p + 1) & mask;
        }
        self.index[p] = entry(k, i);
        if let Some(n) = &mut self.names {
            let (classname, name, file) = names;
            let r = NameRef {
                start: n.arena.len() as u64,
                len: name.len() as u32,
                class: n.intern(classname),
                file: file.map_or(NONE_ID, |f| n.intern(f)),
                report: NONE_ID,
            };
            n.arena.push_str(name);
            n.refs.push(r);
        }
        i
    }

    fn grow(&mut self) {
        let cap = (self.index.len() * 2).max(64);
        // Zeroed memory (all empty) comes untouched from the allocator.
        self.index = vec![NO_SLOT; cap];
        huge_pages(&self.index);
        if self.slots.capacity() < cap / 2 {
            self.slots.reserve_exact(cap / 2 - self.slots.len());
            huge_pages(&self.slots);
        }
        let mask = cap - 1;
        const AHEAD: usize = 16;
        for i in 0..self.slots.len() {
            // Random writes into a large table: start each a few iterations early.
            if let Some(s) = self.slots.get(i + AHEAD) {
                prefetch(&self.index[s.key[0] as usize & mask]);
            }
            let k = self.slots[i].key;
            let mut p = k[0] as usize & mask;
            while self.index[p] != NO_SLOT {
                p = (p + 1) & mask;
            }
            self.index[p] = entry(k, i);
        }
    }

    /// The test in slot `i`.
    pub fn get(&self, i: usize) -> TestRecord {
        let s = &self.slots[i];
        let b = s.bits;
        let report = (b & B_REPORT != 0).then(|| ReportEntry {
            size: get3(b, B_REPORT_SIZE).map(|k| Size::ALL[k]),
            duration: (!s.report_duration.is_nan()).then_some(s.report_duration),
            timing: b & B_REPORT_TIMING != 0,
            hermeticity: if s.herm == 0 {
                [0; 5]
            } else {
                self.herm[s.herm as usize - 1]
            },
        });
        TestRecord {
            label_size: get3(b, B_LABEL).map(|k| Size::ALL[k]),
            attempts: s.attempts,
            reruns: s.reruns,
            last: AttemptResult {
                failure: b & B_FAILURE != 0,
                error: b & B_ERROR != 0,
                xfail: b & B_XFAIL != 0,
                skipped: b & B_SKIPPED != 0,
            },
            last_marks: FailureMarks {
                timing: b & B_TIMING != 0,
                baseline: b & B_BASELINE != 0,
                hermeticity: get3(b, B_HERM).map(|k| Resource::ALL[k]),
                category: get3(b, B_CATEGORY).map(|k| Size::ALL[k]),
            },
            last_time: s.last_time,
            report,
        }
    }

    /// Replaces the test in slot `i`.
    pub fn set(&mut self, i: usize, rec: &TestRecord) {
        let flag = |on: bool, f: u32| if on { f } else { 0 };
        let m = &rec.last_marks;
        let mut bits = put3(rec.label_size.map(Size::index), B_LABEL)
            | flag(rec.last.failure, B_FAILURE)
            | flag(rec.last.error, B_ERROR)
            | flag(rec.last.xfail, B_XFAIL)
            | flag(rec.last.skipped, B_SKIPPED)
            | flag(m.timing, B_TIMING)
            | flag(m.baseline, B_BASELINE)
            | put3(m.hermeticity.map(Resource::index), B_HERM)
            | put3(m.category.map(Size::index), B_CATEGORY);
        let mut duration = f64::NAN;
        let mut herm = self.slots[i].herm;
        if let Some(r) = &rec.report {
            bits |= B_REPORT
                | put3(r.size.map(Size::index), B_REPORT_SIZE)
                | flag(r.timing, B_REPORT_TIMING);
            duration = r.duration.unwrap_or(f64::NAN);
            if r.hermeticity != [0; 5] {
                if herm == 0 {
                    self.herm.push(r.hermeticity);
                    herm = self.herm.len() as u32;
                } else {
                    self.herm[herm as usize - 1] = r.hermeticity;
                }
            } else if herm != 0 {
                self.herm[herm as usize - 1] = [0; 5];
            }
        } else if herm != 0 {
            self.herm[herm as usize - 1] = [0; 5];
        }
        let s = &mut self.slots[i];
        s.bits = bits;
        s.last_time = rec.last_time;
        s.report_duration = duration;
        s.attempts = rec.attempts;
        s.reruns = rec.reruns;
        s.herm = herm;
    }

    /// Records the size report's node id (label removed) of the test in slot `i`, for
    /// [`TestRef::id`]. Does nothing when the table keeps no ids.
    pub fn set_report_id(&mut self, i: usize, node_id: &str) {
        let Some(n) = &mut self.names else {
            return;
        };
        let r = n.refs[i];
        let prefix = node_id.strip_suffix(n.name(&r)).map(str::len);
        let report = match prefix {
            // The usual case: `path::Class::` + the JUnit name. Prefixes repeat per class.
            Some(len) => n.intern(&node_id[..len]),
            None => n.intern(node_id) | FULL_ID,
        };
        n.refs[i].report = report;
    }

    /// The tests in first-seen order.
    pub fn iter(&self) -> impl Iterator<Item = TestRef<'_>> + '_ {
        (0..self.slots.len()).map(move |index| TestRef { tests: self, index })
    }
}

#[inline(always)]
fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing into the program; `r` is valid anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch(
            (r as *const T).cast::<i8>(),
            std::arch::x86_64::_MM_HINT_T0,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Asks the kernel to back a large table with huge pages: lookups in a table of tens of
/// megabytes are random, and with 4 KiB pages nearly each one also misses the TLB.
/// A hint only; nothing changes where transparent huge pages are off.
fn huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let end = start + v.capacity() * std::mem::size_of::<T>();
        let (a, b) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if b > a {
            // SAFETY: madvise only advises on pages of this live allocation; it reads and
            // writes no memory and cannot make the range invalid.
            unsafe {
                libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

fn split(key: TestKey) -> [u64; 2] {
    [key as u64, (key >> 64) as u64]
}

/// The index tag of a key: 32 bits not used for the position, in the high half.
fn tag(k: [u64; 2]) -> u64 {
    k[1] & !0xFFFF_FFFF
}

/// The index entry of slot `i` with key `k`.
fn entry(k: [u64; 2], i: usize) -> u64 {
    tag(k) | (i as u64 + 1)
}

fn slot_of(v: u64) -> usize {
    (v as u32 - 1) as usize
}

/// One test of a [`Tests`] table.
#[derive(Clone, Copy)]
pub struct TestRef<'a> {
    tests: &'a Tests,
    index: usize,
}

impl TestRef<'_> {
    pub fn record(&self) -> TestRecord {
        self.tests.get(self.index)
    }

    pub fn key(&self) -> TestKey {
        let k = self.tests.slots[self.index].key;
        u128::from(k[0]) | (u128::from(k[1]) << 64)
    }

    /// The last attempt's failure message (first line, bounded), when messages are kept.
    pub fn message(&self) -> Option<&str> {
        self.tests
            .messages
            .as_ref()?
            .get(&(self.index as u32))
            .map(|s| &**s)
    }

    /// The JUnit classname (prefix removed) and name (size label removed), when ids are kept.
    pub fn names(&self) -> Option<(&str, &str)> {
        let n = self.tests.names.as_ref()?;
        let r = &n.refs[self.index];
        Some((&n.strings[r.class as usize], n.name(r)))
    }

    /// The test's id: the size report's node id when it named the test, else one spelled
    /// from the JUnit names ([`display_id`]). A run read without ids gives `#` and the
    /// key in hex instead (unique, but not a node id).
    pub fn id(&self) -> String {
        let Some(n) = &self.tests.names else {
            return format!("#{:032x}", self.key());
        };
        let r = &n.refs[self.index];
        let name = n.name(r);
        if r.report != NONE_ID {
            let s = &n.strings[(r.report & !FULL_ID) as usize];
            if r.report & FULL_ID != 0 {
                return s.to_string();
            }
            let mut id = String::with_capacity(s.len() + name.len());
            id.push_str(s);
            id.push_str(name);
            return id;
        }
        let file = (r.file != NONE_ID).then(|| &*n.strings[r.file as usize]);
        display_id(&n.strings[r.class as usize], name, file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_ids() {
        assert_eq!(
            display_id(
                "tests.unit.test_deep.TestDeep.TestInner",
                "test_x[a.b]",
                Some("tests/unit/test_deep.py")
            ),
            "tests/unit/test_deep.py::TestDeep::TestInner::test_x[a.b]"
        );
        assert_eq!(display_id("tests.a", "t", None), "tests.a::t");
        assert_eq!(
            display_id("", "tests.skipped_module", None),
            "tests.skipped_module"
        );
    }

    fn rec(i: u32) -> TestRecord {
        TestRecord {
            label_size: [None, Some(Size::Small), Some(Size::Xlarge)][i as usize % 3],
            attempts: i + 1,
            reruns: i,
            last: AttemptResult {
                failure: i % 2 == 0,
                error: i % 3 == 0,
                xfail: i % 5 == 0,
                skipped: i % 7 == 0,
            },
            last_marks: FailureMarks {
                timing: i % 2 == 1,
                baseline: i % 4 == 1,
                hermeticity: Resource::ALL.get(i as usize % 6).copied(),
                category: Size::ALL.get(i as usize % 7).copied(),
            },
            last_time: f64::from(i) * 0.25,
            report: (i % 3 != 0).then(|| ReportEntry {
                size: Size::ALL.get(i as usize % 7).copied(),
                duration: (i % 2 == 0).then_some(f64::from(i) / 3.0),
                timing: i % 3 == 1,
                hermeticity: if i % 4 == 0 { [i, 0, 0, 0, 2] } else { [0; 5] },
            }),
        }
    }

    #[test]
    fn records_round_trip_and_keys_find_their_slot() {
        let mut t = Tests::new(true, 7);
        let n = 5000u32;
        for i in 0..n {
            let k = t.key(&format!("pkg.mod{}", i % 17), &format!("test_{i}"));
            assert_eq!(t.find(k), None);
            let slot = t.insert(
                k,
                &rec(i),
                (&format!("pkg.mod{}", i % 17), &format!("test_{i}"), None),
            );
            assert_eq!(slot, i as usize);
        }
        assert_eq!(t.len(), n as usize);
        for i in 0..n {
            let k = t.key(&format!("pkg.mod{}", i % 17), &format!("test_{i}"));
            let slot = t.find(k).unwrap();
            assert_eq!(t.get(slot), rec(i), "{i}");
        }
        // Overwriting a report with one without hermeticity clears it.
        let mut r = rec(4);
        assert_eq!(r.report.unwrap().hermeticity, [4, 0, 0, 0, 2]);
        r.report.as_mut().unwrap().hermeticity = [0; 5];
        t.set(4, &r);
        assert_eq!(t.get(4), r);
        // Lengths are part of the key: ("ab", "c") is not ("a", "bc").
        assert_ne!(t.key("ab", "c"), t.key("a", "bc"));
    }

    #[test]
    fn ids_come_from_the_report_or_the_junit_names() {
        let mut t = Tests::new(true, 1);
        let k = t.key("tests.a.TestX", "test_p[a::b]");
        let i = t.insert(
            k,
            &TestRecord::default(),
            ("tests.a.TestX", "test_p[a::b]", None),
        );
        assert_eq!(t.iter().next().unwrap().id(), "tests.a.TestX::test_p[a::b]");
        t.set_report_id(i, "tests/a.py::TestX::test_p[a::b]");
        assert_eq!(
            t.iter().next().unwrap().id(),
            "tests/a.py::TestX::test_p[a::b]"
        );
        let k = t.key("", "tests.skip_mod");
        let j = t.insert(k, &TestRecord::default(), ("", "tests.skip_mod", None));
        t.set_report_id(j, "tests/skip_mod.py");
        assert_eq!(t.iter().nth(1).unwrap().id(), "tests/skip_mod.py");
        let lean = {
            let mut l = Tests::new(false, 1);
            let k = l.key("c", "n");
            l.insert(k, &TestRecord::default(), ("c", "n", None));
            let id = l.iter().next().unwrap().id();
            id
        };
        assert!(lean.starts_with('#') && lean.len() == 33, "{lean}");
    }
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
    /// The tests, collapsed (METRICS.md §1) and joined with the size report.
    pub tests: Tests,
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
    /// Inputs not read because an earlier one has the same content (METRICS.md §1).
    pub duplicates: Vec<Duplicate>,
}

/// An input whose content equals an earlier input's: read once.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    pub path: std::path::PathBuf,
    /// The earlier input, which was read.
    pub same_as: std::path::PathBuf,
}

/// Line coverage from a Cobertura `coverage.xml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coverage {
    pub lines_valid: u64,
    pub lines_covered: u64,
    /// Uncovered lines per file, only files with at least one.
    pub uncovered: Vec<(String, u64)>,
    /// Line coverage per Cobertura `<package name>` (files outside a named package are in
    /// the total only), from the same merged lines as the total, least covered first.
    pub modules: Vec<ModuleCoverage>,
}

/// One Cobertura package's line coverage: the lines of its files, merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModuleCoverage {
    pub module: String,
    pub lines_valid: u64,
    pub lines_covered: u64,
}

impl ModuleCoverage {
    /// `lines_covered / lines_valid × 100` (a module is listed only when it has lines).
    pub fn percentage(&self) -> f64 {
        if self.lines_valid == 0 {
            100.0
        } else {
            self.lines_covered as f64 * 100.0 / self.lines_valid as f64
        }
    }
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
