//! Stage 2: pure functions from the [`Run`] model to the facts METRICS.md §1–3 defines.
//!
//! No I/O here. [`summarize`] collapses every test to size, outcome, duration and
//! violations and counts them; [`metrics`] turns a summary plus running totals into
//! Prometheus metric families; [`events`] names the tests behind them (docs/events.md), from
//! the same [`test_facts`].

pub mod events;
pub mod inspect;
pub mod metrics;
pub mod totals;

use crate::model::{Coverage, FailureType, Outcome, Resource, Run, Size, TestRecord};

/// How to derive; every field has a CLI flag.
#[derive(Debug, Clone, PartialEq)]
pub struct DeriveConfig {
    /// `--near-limit-ratio`: a test is near its limit at this share of it (default 0.8).
    pub near_limit_ratio: f64,
    /// `--buckets`: upper bounds of `pytest_test_duration_seconds`, ascending, finite.
    pub buckets: Vec<f64>,
    pub per_test: PerTestConfig,
    /// `--max-coverage-files`: at most this many `uncovered_lines{file}` series, largest
    /// first, and as many `test_module_coverage_percentage{module}`, least covered first.
    pub max_coverage_files: usize,
}

pub const DEFAULT_BUCKETS: [f64; 9] = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

impl Default for DeriveConfig {
    fn default() -> Self {
        DeriveConfig {
            near_limit_ratio: 0.8,
            buckets: DEFAULT_BUCKETS.to_vec(),
            per_test: PerTestConfig::default(),
            max_coverage_files: 100,
        }
    }
}

/// Which tests get a `pytest_test_case_duration_seconds{test,size}` series.
#[derive(Debug, Clone, PartialEq)]
pub struct PerTestConfig {
    pub slower_than: Option<f64>,
    /// Share 0–1 of tests, chosen by a hash of the node id (the same tests every run).
    pub sample_rate: Option<f64>,
    pub max_series: usize,
}

impl Default for PerTestConfig {
    fn default() -> Self {
        PerTestConfig {
            slower_than: None,
            sample_rate: None,
            max_series: 500,
        }
    }
}

impl PerTestConfig {
    pub fn enabled(&self) -> bool {
        self.slower_than.is_some() || self.sample_rate.is_some()
    }
}

/// Per (size, outcome) durations as a histogram over the configured bounds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DurationHist {
    /// Non-cumulative counts per bound (`buckets[i]` counts `bounds[i-1] < d ≤ bounds[i]`).
    pub per_bucket: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

/// One test with its derived facts (also what `inspect` lists).
#[derive(Debug, Clone, PartialEq)]
pub struct TestFacts {
    pub id: String,
    pub size: Size,
    pub outcome: Outcome,
    pub duration: f64,
    pub timing: bool,
    pub baseline: bool,
    pub near_limit: bool,
    pub flaky: bool,
    pub reruns: u32,
    pub hermeticity: [u32; 5],
    pub failure_type: Option<FailureType>,
}

/// The facts of one run (METRICS.md §3 per-run values).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// `[size][outcome]` test counts.
    pub tests: [[u64; 5]; 6],
    /// `[size][outcome]` duration histograms.
    pub durations: Vec<Vec<DurationHist>>,
    pub bounds: Vec<f64>,
    pub timing_violations: [u64; 6],
    pub baseline_violations: [u64; 6],
    pub near_limit: [u64; 6],
    pub flaky: [u64; 6],
    pub hermeticity: [u64; 5],
    pub failures: [u64; 4],
    pub suite_duration: f64,
    /// Run start, Unix seconds (METRICS.md §3 `pytest_last_run_timestamp_seconds`).
    pub timestamp: f64,
    pub coverage: Option<Coverage>,
    /// Chosen per-test series: (test id, size, duration).
    pub per_test: Vec<(String, Size, f64)>,
    /// Things the user should know, said once each on stderr.
    pub notes: Vec<String>,
    pub elements: u64,
}

impl Summary {
    pub fn total_tests(&self) -> u64 {
        self.tests.iter().flatten().sum()
    }

    pub fn size_count(&self, s: Size) -> u64 {
        self.tests[s.index()].iter().sum()
    }

    /// Share 0–1 of each real size among sized tests; `None` when no test is sized or any
    /// test is `unknown` (METRICS.md §3: a partial source, such as a few `Category:` lines,
    /// does not describe the run).
    pub fn distribution(&self) -> Option<[f64; 4]> {
        let sized: u64 = Size::SIZED.iter().map(|s| self.size_count(*s)).sum();
        if sized == 0 || self.size_count(Size::Unknown) > 0 {
            return None;
        }
        let mut d = [0.0; 4];
        for (i, s) in Size::SIZED.iter().enumerate() {
            d[i] = self.size_count(*s) as f64 / sized as f64;
        }
        Some(d)
    }
}

/// Derives the facts of one test (METRICS.md §1–2). `id` becomes [`TestFacts::id`]
/// (see [`TestRef::id`](crate::model::TestRef::id); `summarize` spells it only when needed).
pub fn test_facts(rec: &TestRecord, id: String, run: &Run, cfg: &DeriveConfig) -> TestFacts {
    let size = resolve_size(rec, run);
    let outcome = rec.outcome();
    let report = rec.report.as_ref();
    let duration = report.and_then(|r| r.duration).unwrap_or(rec.last_time);
    let timing = report.is_some_and(|r| r.timing) || rec.last_marks.timing;
    let baseline = rec.last_marks.baseline;
    let mut hermeticity = report.map(|r| r.hermeticity).unwrap_or_default();
    if hermeticity.iter().all(|n| *n == 0) {
        if let Some(r) = rec.last_marks.hermeticity {
            hermeticity[r.index()] = 1;
        }
    }
    let near_limit = !timing
        && size
            .limit_seconds()
            .is_some_and(|l| duration >= cfg.near_limit_ratio * l);
    let flaky = rec.reruns > 0 && outcome == Outcome::Passed;
    let failure_type = match outcome {
        Outcome::Error => Some(FailureType::Error),
        Outcome::Failed => Some(failure_type_of(rec, timing)),
        _ => None,
    };
    TestFacts {
        id,
        size,
        outcome,
        duration,
        timing,
        baseline,
        near_limit,
        flaky,
        reruns: rec.reruns,
        hermeticity,
        failure_type,
    }
}

/// A failed test's type, each counted once. The failure text decides first, since in
/// strict mode a TC005 sleep failure wins over a timing overrun the JSON also records.
fn failure_type_of(rec: &TestRecord, timing: bool) -> FailureType {
    let m = &rec.last_marks;
    if m.timing || m.baseline {
        FailureType::TimingViolation
    } else if m.hermeticity.is_some() {
        FailureType::HermeticityViolation
    } else if timing {
        FailureType::TimingViolation
    } else {
        FailureType::Assertion
    }
}

/// Size sources, first that knows wins: size report, JUnit name label, `Category:` line.
pub fn resolve_size(rec: &TestRecord, run: &Run) -> Size {
    if let Some(s) = rec.report.as_ref().and_then(|r| r.size) {
        return s;
    }
    if let Some(s) = rec.label_size {
        return s;
    }
    if let Some(s) = rec.last_marks.category {
        return s;
    }
    if run.has_size_report || run.any_name_label {
        Size::Unsized
    } else {
        Size::Unknown
    }
}

/// Summarizes a run. `facts` (when given) receives every test's facts, for `inspect`.
pub fn summarize(
    run: &Run,
    cfg: &DeriveConfig,
    mut facts: Option<&mut dyn FnMut(TestFacts)>,
) -> Summary {
    let nb = cfg.buckets.len();
    let mut s = Summary {
        durations: vec![
            vec![
                DurationHist {
                    per_bucket: vec![0; nb + 1],
                    sum: 0.0,
                    count: 0
                };
                5
            ];
            6
        ],
        bounds: cfg.buckets.clone(),
        suite_duration: run.suite.duration_seconds,
        coverage: run.coverage.clone().map(|mut c| {
            c.uncovered.truncate(cfg.max_coverage_files);
            // Least covered first: the cut keeps the modules that need attention.
            c.modules.truncate(cfg.max_coverage_files);
            c
        }),
        elements: run.suite.elements,
        ..Summary::default()
    };
    let mut per_test: Vec<(String, Size, f64)> = Vec::new();
    // Ids cost an allocation per test: spelled only for the callback and per-test series.
    let all_ids = facts.is_some() || cfg.per_test.sample_rate.is_some();
    for t in run.tests.iter() {
        let rec = t.record();
        let mut f = test_facts(&rec, String::new(), run, cfg);
        if all_ids || cfg.per_test.slower_than.is_some_and(|s| f.duration >= s) {
            f.id = t.id();
        }
        let (si, oi) = (f.size.index(), f.outcome.index());
        s.tests[si][oi] += 1;
        let h = &mut s.durations[si][oi];
        let b = cfg
            .buckets
            .iter()
            .position(|ub| f.duration <= *ub)
            .unwrap_or(nb);
        h.per_bucket[b] += 1;
        h.sum += f.duration;
        h.count += 1;
        if f.timing {
            s.timing_violations[si] += 1;
        }
        if f.baseline {
            s.baseline_violations[si] += 1;
        }
        if f.near_limit {
            s.near_limit[si] += 1;
        }
        if f.flaky {
            s.flaky[si] += 1;
        }
        for r in Resource::ALL {
            s.hermeticity[r.index()] += u64::from(f.hermeticity[r.index()]);
        }
        if let Some(t) = f.failure_type {
            s.failures[t.index()] += 1;
        }
        if per_test_chosen(&f, &cfg.per_test) {
            per_test.push((f.id.clone(), f.size, f.duration));
        }
        if let Some(cb) = facts.as_deref_mut() {
            cb(f);
        }
    }
    if per_test.len() > cfg.per_test.max_series {
        s.notes.push(format!(
            "{} tests qualify for per-test series; keeping the {} slowest (--max-per-test-series)",
            per_test.len(),
            cfg.per_test.max_series
        ));
        per_test.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        per_test.truncate(cfg.per_test.max_series);
    }
    per_test.sort_by(|a, b| a.0.cmp(&b.0));
    s.per_test = per_test;
    for d in &run.duplicates {
        s.notes.push(if d.path == d.same_as {
            format!("{} is given twice: read once", d.path.display())
        } else {
            format!(
                "{} has the same content as {}: read once",
                d.path.display(),
                d.same_as.display()
            )
        });
    }
    s.timestamp = run
        .suite
        .earliest_timestamp
        .or(run.report_timestamp)
        .or(run.newest_input_mtime)
        .unwrap_or(0.0);
    let unknown = s.size_count(Size::Unknown);
    if unknown > 0 {
        let sized: u64 = Size::SIZED.iter().map(|z| s.size_count(*z)).sum();
        let partial = match sized {
            0 => String::new(),
            1 => " (the 1 sized test does not describe the run)".to_string(),
            n => format!(" (the {n} sized tests do not describe the run)"),
        };
        s.notes.push(format!(
            "no size source: {unknown} of {} tests have size \"unknown\", so no size distribution is \
             given{partial}. Have pytest write the plugin's report \
             (--test-size-report=json --test-size-report-file=size.json) and pass it with --size-report size.json",
            s.total_tests()
        ));
    }
    if let Some(c) = &run.coverage {
        if c.uncovered.len() > cfg.max_coverage_files {
            s.notes.push(format!(
                "{} files have uncovered lines; keeping the {} with the most (--max-coverage-files)",
                c.uncovered.len(),
                cfg.max_coverage_files
            ));
        }
        if c.modules.len() > cfg.max_coverage_files {
            s.notes.push(format!(
                "{} modules have coverage; keeping the {} least covered (--max-coverage-files)",
                c.modules.len(),
                cfg.max_coverage_files
            ));
        }
    }
    if run.report_misses > 0 {
        s.notes.push(format!(
            "{} size-report entr{} matched no JUnit test (a different run, or pytest's --junitprefix without --junit-prefix?)",
            run.report_misses,
            if run.report_misses == 1 { "y" } else { "ies" }
        ));
    }
    s
}

fn per_test_chosen(f: &TestFacts, cfg: &PerTestConfig) -> bool {
    if let Some(t) = cfg.slower_than {
        if f.duration >= t {
            return true;
        }
    }
    if let Some(rate) = cfg.sample_rate {
        // Deterministic: the same node ids are chosen on every run.
        let h = fnv1a(f.id.as_bytes());
        if (h as f64 / u64::MAX as f64) < rate {
            return true;
        }
    }
    false
}

/// FNV-1a 64: a small, stable hash (same value on every platform and Rust version).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A `test` label value: node ids over 200 characters are cut and given a short hash,
/// so two long ids that share a prefix stay distinct.
pub fn test_label(id: &str) -> String {
    if id.chars().count() <= 200 {
        return id.to_string();
    }
    let cut: String = id.chars().take(200).collect();
    format!("{cut}~{:08x}", fnv1a(id.as_bytes()) as u32)
}

#[cfg(test)]
mod fixture_tests;
