//! Stage 1 of the pipeline: read every input and build the one [`Run`] model.
//!
//! Inputs are recognised by content, not by extension (`source::sniff`): JUnit XML,
//! the plugin's JSON size report, a captured pytest terminal log holding that JSON or
//! the `detailed` report, and Cobertura coverage. Several JUnit files merge into one run.
//! Collapsing of attempts and the size-report join follow METRICS.md §1–2.

mod bytes;
pub mod coverage;
pub mod junit;
pub mod nodeid;
pub mod size_report;
pub mod source;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::model::{
    CaseElement, Duplicate, ReportEntry, Run, SuiteInfo, TestKey, TestRecord, Tests,
};

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

    /// An I/O error while reading, or a fault in the bytes (bad UTF-8, a NUL, an over-long
    /// tag or token) at its position.
    pub fn from_io(path: &Path, e: &std::io::Error) -> Self {
        match source::fault_of(e) {
            Some(f) => Self::at(path, f.offset, f.to_string()),
            None => Self::io(path, e),
        }
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

/// How to read a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Keep every test's names, for [`TestRef::id`](crate::model::TestRef::id) (per-test
    /// series, `inspect`). Without them a test costs ~50 bytes instead of ~100 plus its
    /// names, and the metrics come out the same.
    pub test_ids: bool,
    /// Keep each test's last failure message (first line, bounded), for events
    /// ([`TestRef::message`](crate::model::TestRef::message)): at most ~500 bytes per
    /// failed or errored test.
    pub messages: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            test_ids: true,
            messages: false,
        }
    }
}

/// Reads all inputs into one run, keeping test ids. JUnit first, then size reports
/// (joined onto the tests).
pub fn read_run(inputs: &Inputs) -> Result<Run, ReadError> {
    read_run_with(inputs, ReadOptions::default())
}

/// [`read_run`] with options.
///
/// Inputs with identical content are read once (METRICS.md §1): read twice, every test of
/// a JUnit report would look rerun. The same file given twice (a repeated path, a
/// symlink, a hard link) is known before reading. Different files with the same content
/// (`junit.xml` beside its own `junit.xml.gz`, a copy) are known only once their content
/// has streamed past: then the run is read again without the later copies. Coverage is a
/// union, which a second copy does not change, so it is never read again for that.
pub fn read_run_with(inputs: &Inputs, opts: ReadOptions) -> Result<Run, ReadError> {
    let files = Files::of(inputs)?;
    let mut skip = files.same_files();
    let (mut run, found) = read_files(&files, inputs, opts, &skip)?;
    let again = found.iter().any(|d| !d.coverage);
    skip.extend(found);
    if again {
        run = read_files(&files, inputs, opts, &skip)?.0;
    }
    run.duplicates = skip.into_iter().map(|d| d.duplicate).collect();
    Ok(run)
}

/// What an input is, recognised by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Junit,
    /// A size report: the plugin's JSON or a terminal log.
    SizeReport(Kind),
    Coverage,
}

/// The inputs in reading order: JUnit first, then size reports (joined onto its tests),
/// then coverage; within each, those given with their flag first, then those given
/// among the reports.
struct Files(Vec<(PathBuf, Role)>);

impl Files {
    fn of(inputs: &Inputs) -> Result<Files, ReadError> {
        let (mut junit, mut sizes, mut coverage) = (Vec::new(), Vec::new(), Vec::new());
        let mut first_other = None;
        for p in &inputs.reports {
            let k = source::sniff(p)?;
            match k {
                Kind::Junit => junit.push((p.clone(), Role::Junit)),
                Kind::Json | Kind::Text => sizes.push((p.clone(), Role::SizeReport(k))),
                Kind::Coverage => coverage.push((p.clone(), Role::Coverage)),
                k => return Err(kind_error(p, k, "a JUnit XML report")),
            }
            if k != Kind::Junit && first_other.is_none() {
                first_other = Some((p, k));
            }
        }
        // A run is its JUnit report: size reports and coverage only add to its tests.
        if let (true, Some((p, k))) = (junit.is_empty(), first_other) {
            let what = match k {
                Kind::Json => "is a size report",
                Kind::Text => "is a pytest terminal log",
                _ => "is a coverage report",
            };
            return Err(ReadError::plain(
                p,
                format!(
                    "{what}, not JUnit XML: a run needs the JUnit XML report pytest writes with \
                     --junitxml; give it too"
                ),
            ));
        }
        let mut files = junit;
        for p in &inputs.size_reports {
            match source::sniff(p)? {
                k @ (Kind::Json | Kind::Text) => files.push((p.clone(), Role::SizeReport(k))),
                k => {
                    return Err(kind_error(
                        p,
                        k,
                        "a size report (JSON or a pytest terminal log)",
                    ))
                }
            }
        }
        files.append(&mut sizes);
        for p in &inputs.coverage {
            match source::sniff(p)? {
                Kind::Coverage => files.push((p.clone(), Role::Coverage)),
                k => return Err(kind_error(p, k, "a Cobertura coverage.xml")),
            }
        }
        files.append(&mut coverage);
        Ok(Files(files))
    }

    /// Later mentions of a file already given (the same path, or another path to the same
    /// file), by their place in the reading order.
    fn same_files(&self) -> Vec<Skip> {
        let mut out = Vec::new();
        let mut seen: Vec<(FileId, &PathBuf)> = Vec::new();
        for (index, (p, role)) in self.0.iter().enumerate() {
            let Some(id) = file_id(p) else {
                continue;
            };
            match seen.iter().find(|(i, _)| *i == id) {
                Some((_, first)) => out.push(Skip {
                    index,
                    duplicate: Duplicate {
                        path: p.clone(),
                        same_as: (*first).clone(),
                    },
                    coverage: *role == Role::Coverage,
                }),
                None => seen.push((id, p)),
            }
        }
        out
    }
}

/// A file's identity on its device, when the platform tells.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(p: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_: &Path) -> Option<FileId> {
    None
}

/// An input left out because an earlier one has the same content.
struct Skip {
    /// Its place in the reading order ([`Files`]).
    index: usize,
    duplicate: Duplicate,
    /// A coverage file (whose second reading changes nothing).
    coverage: bool,
}

/// Reads the files but those in `skip`; returns the run and the inputs whose content
/// turned out to equal an earlier one's (read all the same).
fn read_files(
    files: &Files,
    inputs: &Inputs,
    opts: ReadOptions,
    skip: &[Skip],
) -> Result<(Run, Vec<Skip>), ReadError> {
    let mut first_with: HashMap<source::ContentHash, &PathBuf> = HashMap::new();
    let mut found = Vec::new();
    let mut b = RunBuilder::with_options(&inputs.junit_prefix, opts);
    let mut lines: Option<(&PathBuf, coverage::Lines)> = None;
    for (index, (p, role)) in files.0.iter().enumerate() {
        if skip.iter().any(|s| s.index == index) {
            continue;
        }
        let (h, cov) = match role {
            Role::Junit => (b.read_junit(p)?, None),
            Role::SizeReport(k) => {
                let (ts, h) = if *k == Kind::Json {
                    size_report::read_json_hashed(p, &mut |e| b.apply_report(e))?
                } else {
                    size_report::read_terminal_log_hashed(p, &mut |e| b.apply_report(e))?
                };
                if let Some(ts) = ts {
                    b.run.report_timestamp =
                        Some(b.run.report_timestamp.map_or(ts, |t: f64| t.max(ts)));
                }
                b.run.has_size_report = true;
                b.note_mtime(p);
                (h, None)
            }
            Role::Coverage => {
                let (c, h) = coverage::read_hashed(p)?;
                (h, Some(c))
            }
        };
        if let Some(first) = first_with.get(&h) {
            found.push(Skip {
                index,
                duplicate: Duplicate {
                    path: p.clone(),
                    same_as: (*first).clone(),
                },
                coverage: *role == Role::Coverage,
            });
            continue;
        }
        first_with.insert(h, p);
        if let Some(c) = cov {
            match &mut lines {
                Some((first, all)) => {
                    for (path, l) in [(*first, &*all), (p, &c)] {
                        if l.counts_without_lines() {
                            return Err(ReadError::plain(
                                path,
                                "counts lines on its root but has no <line> elements, so it \
                                 cannot be merged with the other coverage files (line by line, \
                                 as coverage combine does)",
                            ));
                        }
                    }
                    all.merge(c);
                }
                None => lines = Some((p, c)),
            }
        }
    }
    b.run.coverage = lines.map(|(_, l)| l.coverage());
    Ok((b.finish(), found))
}

fn kind_error(p: &Path, k: Kind, wanted: &str) -> ReadError {
    let what = match k {
        Kind::Empty => "is empty".to_string(),
        Kind::Binary => "is a binary file, not text".to_string(),
        Kind::OtherXml if source::is_html(p) => {
            "is an HTML page, not a report (an error page saved in its place?)".to_string()
        }
        Kind::OtherXml => source::unknown_xml(p),
        Kind::Junit => "is a JUnit report".to_string(),
        Kind::Coverage => "is a coverage report".to_string(),
        Kind::Json => "is JSON".to_string(),
        Kind::Text => "is plain text".to_string(),
    };
    ReadError::plain(p, format!("{what}; expected {wanted}"))
}

/// One entry of a size report, as every size-report reader yields it. The name borrows
/// the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeEntry<'a> {
    /// Node id as written (9.1.x: with the ` [SIZE]` label).
    pub name: &'a str,
    /// `None` when the report has no size column (never for the JSON report).
    pub size: Option<crate::model::Size>,
    pub duration: Option<f64>,
    pub timing: bool,
    pub hermeticity: [u32; 5],
}

/// Builds a [`Run`]: collapses attempts as elements arrive, then joins size reports.
///
/// JUnit elements and size-report entries are handed, in batches and in order, to a
/// second thread that owns the test table while a file is read: parsing runs on the
/// reading thread, and the table's work (hashing, collapsing, node-id mangling for the
/// join, lookups) on the other, side by side. Lookups go through a short queue: a test's
/// index entry (and, for the join, its slot) is prefetched when it arrives and used
/// `QUEUE` arrivals later, so the lookups of a large run overlap instead of each waiting
/// for memory. Small inputs that never fill a batch are applied on the calling thread.
/// [`finish`](Self::finish) drains everything.
pub struct RunBuilder {
    run: Run,
    prefix: String,
    batch: Batch,
    reports: ReportBatch,
    /// The join's state while no table thread runs (the thread owns it meanwhile).
    joiner: Joiner,
    worker: Option<Worker>,
    /// [`ReadOptions::messages`].
    messages: bool,
}

/// Elements per batch handed to the table thread.
const BATCH: usize = 4096;

/// Elements on their way to the table: fixed fields, and the names back to back.
#[derive(Default)]
struct Batch {
    cases: Vec<BatchCase>,
    names: String,
}

struct BatchCase {
    /// Ends in `Batch::names` of the classname (prefix removed), the name (label removed)
    /// and the xunit1 file (empty when none).
    class_end: u32,
    name_end: u32,
    file_end: u32,
    has_file: bool,
    label: Option<crate::model::Size>,
    time: f64,
    result: crate::model::AttemptResult,
    marks: crate::model::FailureMarks,
    teardown_error_only: bool,
    rerun_children: u32,
    /// End in `Batch::names` of the failure message (after the file), when it has one.
    message_end: Option<u32>,
}

/// Size-report entries on their way to the table: node ids (as written) back to back.
#[derive(Default)]
struct ReportBatch {
    /// End of each entry's node id in `ids`, and what the entry says.
    entries: Vec<(u32, ReportEntry)>,
    ids: String,
}

/// What the table thread is handed, in order.
enum Work {
    Cases(Batch),
    Reports(ReportBatch),
}

/// The table thread: work in, the table and the join's state back when the sender is
/// dropped.
struct Worker {
    tx: std::sync::mpsc::SyncSender<Work>,
    handle: std::thread::JoinHandle<(Tests, Joiner)>,
}

/// The table thread: the table first, then work, applied in order.
fn table_thread(
    start: std::sync::mpsc::Receiver<(Tests, Joiner)>,
    rx: std::sync::mpsc::Receiver<Work>,
) -> (Tests, Joiner) {
    let (mut tests, mut joiner) = start.recv().unwrap_or_default();
    let mut keys = Vec::with_capacity(BATCH);
    for w in rx {
        apply_work(&mut tests, &mut joiner, w, &mut keys);
    }
    joiner.drain(&mut tests);
    (tests, joiner)
}

/// Applies one piece of work. Report entries queued for the join are applied before
/// later elements, so an entry always meets the elements read before it.
fn apply_work(tests: &mut Tests, joiner: &mut Joiner, w: Work, keys: &mut Vec<TestKey>) {
    match w {
        Work::Cases(b) => {
            joiner.drain(tests);
            apply_batch(tests, &b, keys);
        }
        Work::Reports(r) => {
            let mut start = 0usize;
            for (end, entry) in &r.entries {
                joiner.add(tests, &r.ids[start..*end as usize], *entry);
                start = *end as usize;
            }
        }
    }
}

/// Applies one batch to the table, in order, hashing first and prefetching ahead.
fn apply_batch(tests: &mut Tests, b: &Batch, keys: &mut Vec<TestKey>) {
    {
        keys.clear();
        let mut start = 0usize;
        for c in &b.cases {
            let cls = &b.names[start..c.class_end as usize];
            let name = &b.names[c.class_end as usize..c.name_end as usize];
            keys.push(tests.key(cls, name));
            start = c.message_end.unwrap_or(c.file_end) as usize;
        }
        let mut start = 0usize;
        for (i, c) in b.cases.iter().enumerate() {
            if let Some(k) = keys.get(i + QUEUE) {
                tests.prefetch(*k);
            }
            let names = (
                &b.names[start..c.class_end as usize],
                &b.names[c.class_end as usize..c.name_end as usize],
                c.has_file
                    .then(|| &b.names[c.name_end as usize..c.file_end as usize]),
            );
            let message = c
                .message_end
                .map(|e| &b.names[c.file_end as usize..e as usize]);
            start = c.message_end.unwrap_or(c.file_end) as usize;
            apply_case(tests, keys[i], c, names, message);
        }
    }
}

/// Adds one element to the table: a new test, a rerun of a known one, or the teardown
/// error of its last attempt (METRICS.md §1).
fn apply_case(
    tests: &mut Tests,
    key: TestKey,
    c: &BatchCase,
    names: (&str, &str, Option<&str>),
    message: Option<&str>,
) {
    if let Some(i) = tests.find(key) {
        let mut rec = tests.get(i);
        let had_error = rec.last.error;
        if c.label.is_some() {
            rec.label_size = c.label;
        }
        rec.reruns += c.rerun_children;
        if c.teardown_error_only {
            rec.last.error = true;
            rec.last_time += c.time;
            if message.is_some() && !rec.last.failure && !had_error {
                tests.set_message(i, message);
            }
        } else {
            tests.set_message(i, message);
            rec.attempts += 1;
            rec.reruns += 1;
            rec.last = c.result;
            rec.last_marks = c.marks;
            rec.last_time = c.time;
        }
        tests.set(i, &rec);
        return;
    }
    let rec = TestRecord {
        label_size: c.label,
        attempts: 1,
        reruns: c.rerun_children,
        last: c.result,
        last_marks: c.marks,
        last_time: c.time,
        report: None,
    };
    let i = tests.insert(key, &rec, names);
    tests.set_message(i, message);
}

/// How many arrivals a lookup is started ahead of its use.
const QUEUE: usize = 16;

/// A fixed ring of reused entries.
struct Ring<T> {
    items: Vec<T>,
    head: usize,
    len: usize,
}

impl<T: Default> Ring<T> {
    fn new() -> Self {
        Ring {
            items: (0..QUEUE).map(|_| T::default()).collect(),
            head: 0,
            len: 0,
        }
    }

    /// The entry to fill next; the ring must not be full.
    fn next_free(&mut self) -> &mut T {
        let i = (self.head + self.len) % QUEUE;
        self.len += 1;
        &mut self.items[i]
    }

    /// The oldest entry, removed (it stays allocated for reuse).
    fn pop(&mut self) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        let i = self.head;
        self.head = (self.head + 1) % QUEUE;
        self.len -= 1;
        Some(&self.items[i])
    }

    /// The entry `back` places behind the newest.
    fn behind_newest(&self, back: usize) -> Option<&T> {
        (back < self.len).then(|| &self.items[(self.head + self.len - 1 - back) % QUEUE])
    }
}

#[derive(Default)]
struct PendingReport {
    /// The 9.2 key, and the 9.1 key when it differs.
    key: TestKey,
    key_9_1: Option<TestKey>,
    entry: ReportEntry,
    /// The node id, kept only when the run keeps test ids.
    node_id: String,
}

/// The join of size-report entries onto the tests (METRICS.md §2): node id → (classname,
/// name) by pytest 9.2's rule, then 9.1's. Lookups go through a short queue (see
/// [`RunBuilder`]).
struct Joiner {
    cls: String,
    name: String,
    reports: Ring<PendingReport>,
    /// Entries that matched no test.
    misses: u64,
}

impl Default for Joiner {
    fn default() -> Self {
        Joiner {
            cls: String::new(),
            name: String::new(),
            reports: Ring::new(),
            misses: 0,
        }
    }
}

impl Joiner {
    /// Queues one entry (`name` as written in the report) for the join.
    fn add(&mut self, tests: &mut Tests, name: &str, entry: ReportEntry) {
        let node_id = strip_label_from_nodeid(name);
        nodeid::mangle_9_2_into(node_id, &mut self.cls, &mut self.name);
        let key = tests.key(&self.cls, &self.name);
        tests.prefetch(key);
        // Without a `[` the 9.1 spelling is the 9.2 one.
        let key_9_1 = if node_id.contains('[') {
            nodeid::mangle_9_1_into(node_id, &mut self.cls, &mut self.name);
            let k = tests.key(&self.cls, &self.name);
            (k != key).then(|| {
                tests.prefetch(k);
                k
            })
        } else {
            None
        };
        // Halfway through the queue: its index entry is in cache, start on its slot.
        if let Some(mid) = self.reports.behind_newest(QUEUE / 2 - 1) {
            tests.prefetch_slot(mid.key);
        }
        if self.reports.len == QUEUE {
            self.apply_oldest(tests);
        }
        let keep = tests.has_ids();
        let p = self.reports.next_free();
        p.key = key;
        p.key_9_1 = key_9_1;
        p.entry = entry;
        if keep {
            p.node_id.clear();
            p.node_id.push_str(node_id);
        }
    }

    fn apply_oldest(&mut self, tests: &mut Tests) {
        let Some(r) = self.reports.pop() else {
            return;
        };
        let found = tests
            .find(r.key)
            .or_else(|| r.key_9_1.and_then(|k| tests.find(k)));
        match found {
            Some(i) => {
                let mut rec = tests.get(i);
                rec.report = Some(r.entry);
                tests.set(i, &rec);
                tests.set_report_id(i, &r.node_id);
            }
            None => self.misses += 1,
        }
    }

    /// Applies every queued entry.
    fn drain(&mut self, tests: &mut Tests) {
        while self.reports.len > 0 {
            self.apply_oldest(tests);
        }
    }
}

impl RunBuilder {
    /// A builder that keeps test ids (see [`ReadOptions`]).
    pub fn new(junit_prefix: &str) -> Self {
        Self::with_options(junit_prefix, ReadOptions::default())
    }

    pub fn with_options(junit_prefix: &str, opts: ReadOptions) -> Self {
        let mut run = Run {
            tests: Tests::new(opts.test_ids, rand::random()),
            ..Run::default()
        };
        if opts.messages {
            run.tests.keep_messages();
        }
        RunBuilder {
            run,
            prefix: junit_prefix.to_string(),
            batch: Batch::default(),
            reports: ReportBatch::default(),
            joiner: Joiner::default(),
            worker: None,
            messages: opts.messages,
        }
    }

    /// Reads one JUnit file into the run; returns the hash of its content.
    pub fn read_junit(&mut self, path: &Path) -> Result<source::ContentHash, ReadError> {
        let s = junit::read(path, |c| self.add_element(c))?;
        self.drain_cases();
        let suite = &mut self.run.suite;
        suite.duration_seconds += s.duration_seconds;
        suite.elements += s.elements;
        if let Some(t) = s.earliest_timestamp {
            suite.earliest_timestamp = Some(suite.earliest_timestamp.map_or(t, |e| e.min(t)));
        }
        self.note_mtime(path);
        Ok(s.content)
    }

    fn note_mtime(&mut self, path: &Path) {
        if let Some(m) = source::mtime(path) {
            self.run.newest_input_mtime = Some(self.run.newest_input_mtime.map_or(m, |n| n.max(m)));
        }
    }

    /// Adds one `<testcase>` element: a new test, a rerun of a known one, or the
    /// teardown error of its last attempt (METRICS.md §1). Applied in order, at the
    /// latest when the file ends or the run is finished.
    pub fn add_element(&mut self, c: &CaseElement<'_>) {
        let (base, label) = nodeid::split_size_label(c.name);
        if label.is_some() {
            self.run.any_name_label = true;
        }
        let classname = nodeid::strip_prefix(c.classname, &self.prefix);
        if !self.reports.entries.is_empty() {
            self.send_reports();
        }
        let b = &mut self.batch;
        if b.cases.is_empty() {
            b.cases.reserve(BATCH);
        }
        b.names.push_str(classname);
        let class_end = b.names.len() as u32;
        b.names.push_str(base);
        let name_end = b.names.len() as u32;
        b.names.push_str(c.file.unwrap_or(""));
        let file_end = b.names.len() as u32;
        let message_end = match c.message {
            Some(m) if self.messages => {
                b.names.push_str(m);
                Some(b.names.len() as u32)
            }
            _ => None,
        };
        b.cases.push(BatchCase {
            class_end,
            name_end,
            file_end,
            message_end,
            has_file: c.file.is_some(),
            label,
            time: c.time,
            result: c.result,
            marks: c.marks,
            teardown_error_only: c.teardown_error_only,
            rerun_children: c.rerun_children,
        });
        // Names of one batch stay far below 4 GiB: a tag is at most MAX_MARKUP.
        if b.cases.len() >= BATCH || b.names.len() > 64 << 20 {
            self.send_batch();
        }
    }

    /// Hands the batch of elements to the table thread.
    fn send_batch(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        self.send(Work::Cases(batch));
    }

    /// Hands the batch of size-report entries to the table thread.
    fn send_reports(&mut self) {
        let r = std::mem::take(&mut self.reports);
        self.send(Work::Reports(r));
    }

    /// Hands work to the table thread, starting it with the table if needed. Where no
    /// thread can be had, the work is done here.
    fn send(&mut self, work: Work) {
        if self.worker.is_none() {
            let (ttx, trx) = std::sync::mpsc::sync_channel(1);
            let (tx, rx) = std::sync::mpsc::sync_channel(4);
            let spawned = std::thread::Builder::new()
                .name("ptc-table".into())
                .spawn(move || table_thread(trx, rx));
            let state = (
                std::mem::take(&mut self.run.tests),
                std::mem::take(&mut self.joiner),
            );
            match spawned {
                Ok(handle) => match ttx.send(state) {
                    Ok(()) => self.worker = Some(Worker { tx, handle }),
                    Err(back) => {
                        // The thread is already gone: keep the table, work here.
                        (self.run.tests, self.joiner) = back.0;
                        self.work_here(work);
                        return;
                    }
                },
                Err(_) => {
                    (self.run.tests, self.joiner) = state;
                    self.work_here(work);
                    return;
                }
            }
        }
        if let Some(w) = &self.worker {
            if w.tx.send(work).is_err() {
                // The table thread is gone (it panicked): joining it says why.
                self.join_worker();
            }
        }
    }

    fn work_here(&mut self, work: Work) {
        apply_work(&mut self.run.tests, &mut self.joiner, work, &mut Vec::new());
    }

    fn join_worker(&mut self) {
        if let Some(w) = self.worker.take() {
            drop(w.tx);
            match w.handle.join() {
                Ok((tests, joiner)) => (self.run.tests, self.joiner) = (tests, joiner),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    }

    /// Applies every element added so far; the table thread, if any, is joined.
    fn drain_cases(&mut self) {
        if !self.batch.cases.is_empty() {
            if self.worker.is_none() {
                // A small file: no thread for it.
                let b = std::mem::take(&mut self.batch);
                self.work_here(Work::Cases(b));
                return;
            }
            self.send_batch();
        }
        self.join_worker();
    }

    /// Joins one size-report entry onto its JUnit test by pytest's node id → (classname,
    /// name) rule, trying the pytest 9.2 algorithm first and then 9.1's.
    pub fn apply_report(&mut self, e: &SizeEntry<'_>) {
        if e.name.is_empty() {
            return;
        }
        if !self.batch.cases.is_empty() {
            self.send_batch();
        }
        let r = &mut self.reports;
        if r.entries.is_empty() {
            r.entries.reserve(BATCH);
        }
        r.ids.push_str(e.name);
        r.entries.push((
            r.ids.len() as u32,
            ReportEntry {
                size: e.size,
                duration: e.duration,
                timing: e.timing,
                hermeticity: e.hermeticity,
            },
        ));
        // Ids of one batch stay far below 4 GiB: a JSON value is at most MAX_JSON_TOKEN.
        if r.entries.len() >= BATCH || r.ids.len() > 64 << 20 {
            self.send_reports();
        }
    }

    /// The run, with every queued element and report entry applied.
    pub fn finish(mut self) -> Run {
        // Joins the table thread: what is left is done here.
        self.drain_cases();
        if !self.reports.entries.is_empty() {
            let r = std::mem::take(&mut self.reports);
            self.work_here(Work::Reports(r));
        }
        self.joiner.drain(&mut self.run.tests);
        self.run.report_misses += std::mem::take(&mut self.joiner.misses);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Size;
    use std::io::Write;

    /// Enough elements to go through the table thread in several batches, with reruns and
    /// teardown errors that land in a later batch than their first attempt.
    #[test]
    fn large_runs_collapse_the_same_through_the_table_thread() {
        let n = 3 * BATCH + 17;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "<testsuites><testsuite name=\"s\">").unwrap();
        for i in 0..n {
            write!(
                f,
                "<testcase classname=\"PFX.m{}\" name=\"t{i} [SMALL]\" time=\"0.5\"/>",
                i % 7
            )
            .unwrap();
        }
        // Every tenth test again: a rerun that failed, then a teardown error.
        for i in (0..n).step_by(10) {
            write!(f, "<testcase classname=\"PFX.m{}\" name=\"t{i}\" time=\"1\"><failure>x</failure></testcase>", i % 7).unwrap();
            write!(f, "<testcase classname=\"PFX.m{}\" name=\"t{i}\" time=\"0.25\"><error message=\"failed on teardown with x\">y</error></testcase>", i % 7).unwrap();
        }
        write!(f, "</testsuite></testsuites>").unwrap();
        for ids in [false, true] {
            let mut b = RunBuilder::with_options(
                "PFX",
                ReadOptions {
                    test_ids: ids,
                    messages: ids,
                },
            );
            b.read_junit(f.path()).unwrap();
            b.apply_report(&SizeEntry {
                name: "m3.py::t3 [SMALL]",
                size: Some(crate::model::Size::Medium),
                duration: Some(2.0),
                timing: false,
                hermeticity: [0; 5],
            });
            let run = b.finish();
            assert_eq!(run.tests.len(), n);
            assert!(run.any_name_label);
            assert_eq!(run.suite.elements, (n + 2 * n.div_ceil(10)) as u64);
            let mut reran = 0;
            for (i, t) in run.tests.iter().enumerate() {
                let r = t.record();
                if i % 10 == 0 {
                    reran += 1;
                    assert_eq!((r.attempts, r.reruns), (2, 1), "{i}");
                    assert!(r.last.failure && r.last.error, "{i}");
                    assert_eq!(r.last_time, 1.25);
                } else {
                    assert_eq!((r.attempts, r.reruns, r.last_time), (1, 0, 0.5), "{i}");
                }
                if ids && i != 3 {
                    assert_eq!(t.id(), format!("m{}::t{i}", i % 7));
                }
            }
            assert_eq!(reran, n.div_ceil(10));
            let joined: Vec<_> = run
                .tests
                .iter()
                .filter(|t| t.record().report.is_some())
                .collect();
            assert_eq!(joined.len(), 1);
            if ids {
                assert_eq!(joined[0].id(), "m3.py::t3");
            }
        }
    }

    /// A size report large enough to go through the table thread in several batches:
    /// every entry meets its test (9.2 and 9.1 spellings of parametrized ids), entries
    /// without a test are counted, and the order of elements and entries is kept.
    #[test]
    fn large_reports_join_the_same_through_the_table_thread() {
        let n = 3 * BATCH + 17;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "<testsuites><testsuite name=\"s\">").unwrap();
        for i in 0..n {
            // 9.1 writes `::` inside parameters as `.`; 9.2 keeps them.
            let name = if i % 3 == 0 {
                format!("t{i}[a::b]")
            } else {
                format!("t{i}")
            };
            write!(
                f,
                "<testcase classname=\"m{}\" name=\"{name}\" time=\"0.5\"/>",
                i % 7
            )
            .unwrap();
        }
        write!(f, "</testsuite></testsuites>").unwrap();
        for ids in [false, true] {
            let mut b = RunBuilder::with_options(
                "",
                ReadOptions {
                    test_ids: ids,
                    messages: ids,
                },
            );
            b.read_junit(f.path()).unwrap();
            for i in 0..n + 5 {
                let name = match i {
                    _ if i >= n => format!("gone.py::t{i}"),
                    _ if i % 3 == 0 => format!("m{}.py::t{i}[a::b] [LARGE]", i % 7),
                    _ => format!("m{}.py::t{i}", i % 7),
                };
                b.apply_report(&SizeEntry {
                    name: &name,
                    size: Some(if i % 2 == 0 { Size::Large } else { Size::Small }),
                    duration: Some(i as f64),
                    timing: i % 5 == 0,
                    hermeticity: [0; 5],
                });
            }
            let run = b.finish();
            assert_eq!(run.tests.len(), n);
            assert_eq!(run.report_misses, 5, "ids {ids}");
            for (i, t) in run.tests.iter().enumerate() {
                let r = t
                    .record()
                    .report
                    .unwrap_or_else(|| panic!("test {i} not joined"));
                assert_eq!(r.duration, Some(i as f64));
                assert_eq!(r.timing, i % 5 == 0);
                assert_eq!(
                    r.size,
                    Some(if i % 2 == 0 { Size::Large } else { Size::Small })
                );
                if ids {
                    let want = match i % 3 {
                        0 => format!("m{}.py::t{i}[a::b]", i % 7),
                        _ => format!("m{}.py::t{i}", i % 7),
                    };
                    assert_eq!(t.id(), want);
                }
            }
        }
    }
}
