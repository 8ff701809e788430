//! `ptc-metrics history`: which tests, and since when, across archived runs (docs/history.md).
//!
//! Pure, no I/O. The glue (`crate::app::history`) reads the runs of one group in time order
//! and hands each to [`GroupAgg::add`] as a [`RunObs`] (the run's metadata and the facts of
//! each of its tests, `crate::derive::test_facts`); [`GroupAgg::finish`] turns the
//! aggregates into a [`GroupReport`]. Runs are never kept: memory is bounded by the
//! per-test aggregates ([`TestAgg`]): a few counters, shift registers of the last
//! `N ≤ 64` runs, a ring of the last `recent + baseline` durations, and two bits per run
//! (passed, failed) so that "passed and failed on the same commit" is exact. The group also
//! keeps a small row per run (time, commit, suite duration, tests per size) for the suite
//! section.
//!
//! The rules (each one documented in docs/history.md with its defaults):
//!
//! * **Flaky across runs**: passed and failed on the same commit, or at least
//!   `min_flips` flips between passed and failed across the group's consecutive runs.
//!   Flip rate = flips / (runs with a pass or fail − 1). Reruns within a run are apart.
//! * **Slower than its baseline**: median of its last `recent` durations above
//!   `(1 + slower_than) ×` the median of the up to `baseline` durations before them (at
//!   least `recent` of them) and by more than `slower_by` seconds; "moved at" is the first
//!   run of the newest unbroken stretch above that threshold.
//! * **Chronic**: timing or baseline violations (TC006/TC008) in at least `M` of the
//!   group's last `N` runs; hermeticity violations likewise; near their limit in the newest
//!   run (not chronic) with an upward least-squares trend over their last `N` durations.
//! * **New failures / fixed**: failed or errored in the newest run and passed in the run
//!   before it, and the reverse.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use crate::derive::TestFacts;
use crate::model::{Outcome, Resource, Size};

pub mod metrics;

/// Version of the `--format json` document (docs/history.md).
pub const SCHEMA_VERSION: u32 = 1;
/// Runs kept per test for "the runs involved" in flips.
const FLIP_RUNS: usize = 10;

/// The analysis settings (every one a flag, docs/history.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `--recent K`: durations compared with the baseline (default 5).
    pub recent: usize,
    /// `--baseline B`: durations before the recent ones that make the baseline (default 20).
    pub baseline: usize,
    /// `--slower-than`: 0.2 is 20 % above the baseline median.
    pub slower_than: f64,
    /// `--slower-by`: and at least this many seconds above it (noise of tiny tests).
    pub slower_by: f64,
    /// `--chronic M/N`: in at least M of the last N runs (N ≤ 64; default 3/5).
    pub chronic_m: u32,
    pub chronic_n: u32,
    /// `--min-flips`: flips that make a test flaky without same-commit evidence (default 3).
    pub min_flips: u32,
    /// `--top`: entries per list.
    pub top: usize,
    /// Entries kept per list for per-test series (`--max-per-test-series` with `--textfile`
    /// or `--gateway`, else 0); the report is cut to `top` afterwards ([`GroupReport::cut`]).
    pub per_test_series: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            recent: 5,
            baseline: 20,
            slower_than: 0.2,
            slower_by: 0.1,
            chronic_m: 3,
            chronic_n: 5,
            min_flips: 3,
            top: 10,
            per_test_series: 0,
        }
    }
}

/// One archived run as the analysis sees it.
#[derive(Debug, Clone, Default)]
pub struct RunObs {
    /// The run's directory, as shown.
    pub dir: String,
    /// Run start, Unix ms.
    pub timestamp_ms: i64,
    pub commit: Option<String>,
    pub suite_duration: f64,
    pub tests: Vec<TestFacts>,
}

/// A growable bit set over a group's run indices.
#[derive(Debug, Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn set(&mut self, i: u32) {
        let w = (i / 64) as usize;
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << (i % 64);
    }
    fn get(&self, i: u32) -> bool {
        self.0
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(k, w)| {
            (0..64u32)
                .filter(move |b| w & (1u64 << b) != 0)
                .map(move |b| k as u32 * 64 + b)
        })
    }
}

/// What is kept of one test across the runs of a group.
#[derive(Debug, Clone)]
pub struct TestAgg {
    size: Size,
    last_run: u32,
    first_run: u32,
    passed: Bits,
    failed: Bits,
    last_pf: Option<bool>,
    pf_obs: u32,
    flips: u32,
    flip_runs: VecDeque<u32>,
    rerun_flaky: u32,
    /// (run, duration) of the last `recent + baseline` runs it passed or failed in.
    durations: VecDeque<(u32, f64)>,
    /// Bit k: the run `reg_at - k` had a timing/baseline violation, was near its limit,
    /// had a hermeticity violation.
    viol: u64,
    near: u64,
    herm: u64,
    reg_at: u32,
    herm_records: [u32; 5],
}

impl TestAgg {
    fn new(run: u32, size: Size) -> Self {
        TestAgg {
            size,
            last_run: run,
            first_run: run,
            passed: Bits::default(),
            failed: Bits::default(),
            last_pf: None,
            pf_obs: 0,
            flips: 0,
            flip_runs: VecDeque::new(),
            rerun_flaky: 0,
            durations: VecDeque::new(),
            viol: 0,
            near: 0,
            herm: 0,
            reg_at: run,
            herm_records: [0; 5],
        }
    }

    /// Moves the shift registers so that bit 0 is run `r`.
    fn shift_to(&mut self, r: u32) {
        let by = r.saturating_sub(self.reg_at);
        for reg in [&mut self.viol, &mut self.near, &mut self.herm] {
            *reg = if by >= 64 { 0 } else { *reg << by };
        }
        self.reg_at = self.reg_at.max(r);
    }
}

/// One run's row in the group (the suite section).
#[derive(Debug, Clone)]
struct RunRow {
    dir: String,
    timestamp_ms: i64,
    commit: Option<u32>,
    suite_duration: f64,
    sizes: [u64; 6],
}

/// The aggregates of one group, fed its runs in time order.
#[derive(Debug)]
pub struct GroupAgg {
    key: String,
    labels: BTreeMap<String, String>,
    opts: Options,
    runs: Vec<RunRow>,
    commits: HashMap<String, u32>,
    commit_names: Vec<String>,
    /// By node id; xxh3, as the reader's own name table (SipHash costs more per lookup).
    tests: HashMap<String, TestAgg, xxhash_rust::xxh3::Xxh3Builder>,
}

impl GroupAgg {
    /// `key` identifies the group (`{branch="main",job="pytest",project="shop"}`).
    pub fn new(key: String, labels: BTreeMap<String, String>, opts: Options) -> Self {
        GroupAgg {
            key,
            labels,
            opts,
            runs: Vec::new(),
            commits: HashMap::new(),
            commit_names: Vec::new(),
            tests: HashMap::with_hasher(xxhash_rust::xxh3::Xxh3Builder::new()),
        }
    }

    /// The group's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Runs added so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Tests with aggregates (memory is proportional to this).
    pub fn tests(&self) -> usize {
        self.tests.len()
    }

    /// Adds the next run (runs must come in time order).
    pub fn add(&mut self, run: &RunObs) {
        let r = self.runs.len() as u32;
        let commit = run.commit.as_ref().map(|c| {
            let n = self.commit_names.len() as u32;
            *self.commits.entry(c.clone()).or_insert_with(|| {
                self.commit_names.push(c.clone());
                n
            })
        });
        let mut sizes = [0u64; 6];
        let keep = self.opts.recent + self.opts.baseline;
        for f in &run.tests {
            sizes[f.size.index()] += 1;
            let t = match self.tests.get_mut(&f.id) {
                Some(t) => t,
                None => self
                    .tests
                    .entry(f.id.clone())
                    .or_insert_with(|| TestAgg::new(r, f.size)),
            };
            t.size = f.size;
            t.last_run = r;
            let pf = match f.outcome {
                Outcome::Passed => Some(true),
                Outcome::Failed | Outcome::Error => Some(false),
                Outcome::Skipped | Outcome::Xfailed => None,
            };
            if let Some(p) = pf {
                if p {
                    t.passed.set(r);
                } else {
                    t.failed.set(r);
                }
                if t.last_pf.is_some_and(|l| l != p) {
                    t.flips += 1;
                    if t.flip_runs.len() == FLIP_RUNS {
                        t.flip_runs.pop_front();
                    }
                    t.flip_runs.push_back(r);
                }
                t.last_pf = Some(p);
                t.pf_obs += 1;
                if t.durations.len() == keep {
                    t.durations.pop_front();
                }
                t.durations.push_back((r, f.duration));
            }
            if f.flaky {
                t.rerun_flaky += 1;
            }
            t.shift_to(r);
            if f.timing || f.baseline {
                t.viol |= 1;
            }
            if f.near_limit {
                t.near |= 1;
            }
            if f.hermeticity.iter().any(|n| *n > 0) {
                t.herm |= 1;
                t.herm_records = f.hermeticity;
            }
        }
        self.runs.push(RunRow {
            dir: run.dir.clone(),
            timestamp_ms: run.timestamp_ms,
            commit,
            suite_duration: run.suite_duration,
            sizes,
        });
    }

    fn run_ref(&self, r: u32) -> RunRef {
        let row = &self.runs[r as usize];
        RunRef {
            run: r + 1,
            timestamp: crate::civil::rfc3339(row.timestamp_ms),
            commit: row.commit.map(|c| self.commit_names[c as usize].clone()),
            dir: row.dir.clone(),
        }
    }

    /// The report of the group.
    pub fn finish(mut self) -> GroupReport {
        let o = self.opts.clone();
        let n_runs = self.runs.len() as u32;
        let newest = n_runs.saturating_sub(1);
        for t in self.tests.values_mut() {
            t.shift_to(newest);
        }
        let window_mask = if o.chronic_n >= 64 {
            u64::MAX
        } else {
            (1u64 << o.chronic_n) - 1
        };
        // Runs of each commit, for the same-commit check.
        let mut by_commit: HashMap<u32, Vec<u32>> = HashMap::new();
        for (i, row) in self.runs.iter().enumerate() {
            if let Some(c) = row.commit {
                by_commit.entry(c).or_default().push(i as u32);
            }
        }
        let mut flaky = Vec::new();
        let mut rerun = Vec::new();
        let mut slower = Vec::new();
        let mut drivers = Vec::new();
        let mut chronic = Vec::new();
        let mut near = Vec::new();
        let mut herm = Vec::new();
        let mut new_failures = Vec::new();
        let mut fixed = Vec::new();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for (id, t) in &self.tests {
            let present = n_runs > 0 && t.last_run == newest;
            // Flaky across runs.
            // Each commit's runs are looked through once per test (a commit shared by all
            // runs and a test failing in most of them stay linear).
            let mut passed_on: HashMap<u32, Option<u32>> = HashMap::new();
            let mut same_runs: Vec<(u32, u32, u32)> = Vec::new();
            let mut same_total = 0usize;
            for fr in t.failed.ones() {
                let Some(c) = self.runs[fr as usize].commit else {
                    continue;
                };
                let pr = *passed_on.entry(c).or_insert_with(|| {
                    by_commit
                        .get(&c)
                        .and_then(|runs| runs.iter().copied().find(|r| t.passed.get(*r)))
                });
                if let Some(pr) = pr {
                    same_total += 1;
                    if same_runs.len() == FLIP_RUNS {
                        same_runs.remove(0);
                    }
                    same_runs.push((c, fr, pr));
                }
            }
            let same: Vec<SameCommit> = same_runs
                .iter()
                .map(|(c, fr, pr)| SameCommit {
                    commit: self.commit_names[*c as usize].clone(),
                    failed: self.run_ref(*fr),
                    passed: self.run_ref(*pr),
                })
                .collect();
            if same_total > 0 || t.flips >= o.min_flips {
                flaky.push(FlakyTest {
                    id: id.clone(),
                    size: t.size,
                    flips: t.flips,
                    observations: t.pf_obs,
                    flip_rate: if t.pf_obs > 1 {
                        f64::from(t.flips) / f64::from(t.pf_obs - 1)
                    } else {
                        0.0
                    },
                    same_commit_failures: same_total,
                    same_commit: same,
                    flip_runs: t.flip_runs.iter().map(|r| self.run_ref(*r)).collect(),
                });
            }
            if t.rerun_flaky > 0 {
                rerun.push(RerunFlaky {
                    id: id.clone(),
                    size: t.size,
                    runs: t.rerun_flaky,
                });
            }
            if present {
                // Slower than its baseline, and the change it drove.
                let d: Vec<(u32, f64)> = t.durations.iter().copied().collect();
                if d.len() >= 2 * o.recent && o.recent > 0 {
                    let (base, recent) = d.split_at(d.len() - o.recent);
                    let base = &base[base.len().saturating_sub(o.baseline)..];
                    let mb = median(base.iter().map(|x| x.1));
                    let mr = median(recent.iter().map(|x| x.1));
                    if mr > mb {
                        drivers.push(Driver {
                            id: id.clone(),
                            size: t.size,
                            baseline_median: mb,
                            recent_median: mr,
                            increase_seconds: mr - mb,
                        });
                    }
                    let threshold = mb * (1.0 + o.slower_than);
                    if mb > 0.0 && mr > threshold && mr - mb > o.slower_by {
                        let mut first = d.len() - 1;
                        while first > 0 && d[first - 1].1 > threshold {
                            first -= 1;
                        }
                        slower.push(Slower {
                            id: id.clone(),
                            size: t.size,
                            baseline_median: mb,
                            recent_median: mr,
                            ratio: mr / mb,
                            baseline_runs: base.len(),
                            recent_runs: recent.len(),
                            moved_at: self.run_ref(d[first].0),
                        });
                    }
                }
                // Chronic limits.
                let v = (t.viol & window_mask).count_ones();
                let last = t.durations.back().map_or(0.0, |x| x.1);
                let of_runs = o.chronic_n.min(n_runs);
                if v >= o.chronic_m {
                    let max = t
                        .durations
                        .iter()
                        .filter(|(r, _)| newest - r < o.chronic_n)
                        .map(|x| x.1)
                        .fold(0.0, f64::max);
                    chronic.push(Chronic {
                        id: id.clone(),
                        size: t.size,
                        runs: v,
                        of_runs,
                        newest_duration: last,
                        max_duration: max,
                        limit: t.size.limit_seconds(),
                    });
                } else if t.near & 1 == 1 {
                    let recent: Vec<f64> = t
                        .durations
                        .iter()
                        .filter(|(r, _)| newest - r < o.chronic_n)
                        .map(|x| x.1)
                        .collect();
                    let s = slope(&recent);
                    if recent.len() >= 3 && s > 0.0 {
                        near.push(NearRising {
                            id: id.clone(),
                            size: t.size,
                            durations: recent,
                            slope_per_run: s,
                            limit: t.size.limit_seconds(),
                        });
                    }
                }
                let h = (t.herm & window_mask).count_ones();
                if h >= o.chronic_m {
                    herm.push(HermeticPersist {
                        id: id.clone(),
                        size: t.size,
                        runs: h,
                        of_runs,
                        resources: Resource::ALL
                            .iter()
                            .filter(|r| t.herm_records[r.index()] > 0)
                            .map(|r| (r.as_str().to_string(), t.herm_records[r.index()]))
                            .collect(),
                    });
                }
                // New failures and fixed tests.
                if n_runs >= 2 {
                    let prev = newest - 1;
                    let entry = TestEntry {
                        id: id.clone(),
                        size: t.size,
                    };
                    if t.failed.get(newest) && t.passed.get(prev) {
                        new_failures.push(entry);
                    } else if t.passed.get(newest) && t.failed.get(prev) {
                        fixed.push(entry);
                    }
                }
            } else {
                removed.push(LastSeen {
                    id: id.clone(),
                    size: t.size,
                    last_seen: self.run_ref(t.last_run),
                });
            }
            if t.first_run > 0 {
                added.push(FirstSeen {
                    id: id.clone(),
                    size: t.size,
                    first_seen: self.run_ref(t.first_run),
                });
            }
        }
        flaky.sort_by(|a, b| {
            b.flip_rate
                .total_cmp(&a.flip_rate)
                .then(b.same_commit_failures.cmp(&a.same_commit_failures))
                .then(a.id.cmp(&b.id))
        });
        rerun.sort_by(|a, b| b.runs.cmp(&a.runs).then(a.id.cmp(&b.id)));
        slower.sort_by(|a, b| b.ratio.total_cmp(&a.ratio).then(a.id.cmp(&b.id)));
        drivers.sort_by(|a, b| {
            b.increase_seconds
                .total_cmp(&a.increase_seconds)
                .then(a.id.cmp(&b.id))
        });
        chronic.sort_by(|a, b| {
            b.runs
                .cmp(&a.runs)
                .then(b.newest_duration.total_cmp(&a.newest_duration))
                .then(a.id.cmp(&b.id))
        });
        near.sort_by(|a, b| {
            b.slope_per_run
                .total_cmp(&a.slope_per_run)
                .then(a.id.cmp(&b.id))
        });
        herm.sort_by(|a, b| b.runs.cmp(&a.runs).then(a.id.cmp(&b.id)));
        new_failures.sort_by(|a, b| a.id.cmp(&b.id));
        fixed.sort_by(|a, b| a.id.cmp(&b.id));
        added.sort_by(|a, b| a.id.cmp(&b.id));
        removed.sort_by(|a, b| a.id.cmp(&b.id));

        let suite = self.suite(&o);
        let top = o.top.max(o.per_test_series);
        GroupReport {
            key: self.key.clone(),
            labels: self.labels.clone(),
            runs: self.runs.len(),
            commits: self.commit_names.len(),
            first_run: (n_runs > 0).then(|| self.run_ref(0)),
            newest_run: (n_runs > 0).then(|| self.run_ref(newest)),
            tests_seen: self.tests.len(),
            suite,
            flaky: Listed::cut(flaky, top),
            rerun_flaky: Listed::cut(rerun, top),
            slower: Listed::cut(slower, top),
            drivers: Listed::cut(drivers, top),
            chronic_violations: Listed::cut(chronic, top),
            near_limit_rising: Listed::cut(near, top),
            hermeticity_persistent: Listed::cut(herm, top),
            new_failures: Listed::cut(new_failures, top),
            fixed: Listed::cut(fixed, top),
            added: Listed::cut(added, top),
            removed: Listed::cut(removed, top),
        }
    }

    fn suite(&self, o: &Options) -> Suite {
        let d: Vec<f64> = self.runs.iter().map(|r| r.suite_duration).collect();
        let k = o.recent.min(d.len());
        let (base, recent) = d.split_at(d.len() - k);
        let base = &base[base.len().saturating_sub(o.baseline)..];
        let sizes = |r: Option<&RunRow>| -> Option<BTreeMap<String, u64>> {
            r.map(|r| {
                Size::ALL
                    .iter()
                    .filter(|z| z.is_sized() || r.sizes[z.index()] > 0)
                    .map(|z| (z.as_str().to_string(), r.sizes[z.index()]))
                    .collect()
            })
        };
        Suite {
            durations: self
                .runs
                .iter()
                .map(|r| SuitePoint {
                    timestamp: crate::civil::rfc3339(r.timestamp_ms),
                    seconds: r.suite_duration,
                    tests: r.sizes.iter().sum(),
                    by_size: sizes(Some(r)).unwrap_or_default(),
                })
                .collect(),
            recent_median: (!recent.is_empty()).then(|| median(recent.iter().copied())),
            baseline_median: (!base.is_empty()).then(|| median(base.iter().copied())),
            sizes_first: sizes(self.runs.first()),
            sizes_newest: sizes(self.runs.last()),
        }
    }
}

/// The median (the mean of the two middle values of an even count); 0 for none.
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Least-squares slope of `y` over 0, 1, 2, …; 0 for fewer than two values.
pub fn slope(y: &[f64]) -> f64 {
    let n = y.len() as f64;
    if y.len() < 2 {
        return 0.0;
    }
    let mx = (n - 1.0) / 2.0;
    let my = y.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, v) in y.iter().enumerate() {
        let dx = i as f64 - mx;
        num += dx * (v - my);
        den += dx * dx;
    }
    num / den
}

/// A run of a group, as reports name it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRef {
    /// 1 for the group's oldest run in the analysed window.
    pub run: u32,
    pub timestamp: String,
    pub commit: Option<String>,
    pub dir: String,
}

/// A list cut at `--top`, with the count before the cut, by size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed<T> {
    pub total: usize,
    /// The four real sizes always, `unsized`/`unknown` when there are such tests.
    pub by_size: BTreeMap<String, u64>,
    pub tests: Vec<T>,
}

/// Entries of a [`Listed`] have a size.
pub trait HasSize {
    fn size(&self) -> Size;
}

impl<T: HasSize> Listed<T> {
    fn cut(mut v: Vec<T>, top: usize) -> Self {
        let total = v.len();
        let mut n = [0u64; 6];
        for t in &v {
            n[t.size().index()] += 1;
        }
        v.truncate(top);
        Listed {
            total,
            by_size: Size::ALL
                .iter()
                .filter(|z| z.is_sized() || n[z.index()] > 0)
                .map(|z| (z.as_str().to_string(), n[z.index()]))
                .collect(),
            tests: v,
        }
    }

    /// Keeps the first `n` entries (the counts stay those of the whole list).
    pub fn truncate(&mut self, n: usize) {
        self.tests.truncate(n);
    }

    /// Counts per size in [`Size::ALL`] order.
    pub fn per_size(&self) -> [u64; 6] {
        let mut n = [0u64; 6];
        for z in Size::ALL {
            n[z.index()] = self.by_size.get(z.as_str()).copied().unwrap_or(0);
        }
        n
    }
}

macro_rules! sized {
    ($($t:ty),*) => {$(impl HasSize for $t { fn size(&self) -> Size { self.size } })*};
}
sized!(
    FlakyTest,
    RerunFlaky,
    Slower,
    Driver,
    Chronic,
    NearRising,
    HermeticPersist,
    TestEntry,
    FirstSeen,
    LastSeen
);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SameCommit {
    pub commit: String,
    pub failed: RunRef,
    pub passed: RunRef,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlakyTest {
    pub id: String,
    pub size: Size,
    pub flips: u32,
    /// Runs in which it passed or failed.
    pub observations: u32,
    pub flip_rate: f64,
    /// Runs in which it failed on a commit on which it also passed.
    pub same_commit_failures: usize,
    /// The last 10 of them, with a run of the commit in which it passed.
    pub same_commit: Vec<SameCommit>,
    /// The runs it flipped in (the last 10).
    pub flip_runs: Vec<RunRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RerunFlaky {
    pub id: String,
    pub size: Size,
    /// Runs in which it passed only after a rerun.
    pub runs: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slower {
    pub id: String,
    pub size: Size,
    pub baseline_median: f64,
    pub recent_median: f64,
    pub ratio: f64,
    pub baseline_runs: usize,
    pub recent_runs: usize,
    pub moved_at: RunRef,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Driver {
    pub id: String,
    pub size: Size,
    pub baseline_median: f64,
    pub recent_median: f64,
    pub increase_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chronic {
    pub id: String,
    pub size: Size,
    /// Runs with a timing or baseline violation among the last `of_runs`.
    pub runs: u32,
    pub of_runs: u32,
    pub newest_duration: f64,
    pub max_duration: f64,
    pub limit: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NearRising {
    pub id: String,
    pub size: Size,
    /// Its durations in the last N runs, oldest first.
    pub durations: Vec<f64>,
    pub slope_per_run: f64,
    pub limit: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HermeticPersist {
    pub id: String,
    pub size: Size,
    pub runs: u32,
    pub of_runs: u32,
    /// Records per resource in the newest run with a violation.
    pub resources: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestEntry {
    pub id: String,
    pub size: Size,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirstSeen {
    pub id: String,
    pub size: Size,
    pub first_seen: RunRef,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastSeen {
    pub id: String,
    pub size: Size,
    pub last_seen: RunRef,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuitePoint {
    pub timestamp: String,
    pub seconds: f64,
    pub tests: u64,
    /// Tests per size (the four real sizes, `unsized`/`unknown` when present).
    pub by_size: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suite {
    /// Every run's suite duration, oldest first.
    pub durations: Vec<SuitePoint>,
    pub recent_median: Option<f64>,
    pub baseline_median: Option<f64>,
    pub sizes_first: Option<BTreeMap<String, u64>>,
    pub sizes_newest: Option<BTreeMap<String, u64>>,
}

/// What `history` found in one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    pub key: String,
    pub labels: BTreeMap<String, String>,
    pub runs: usize,
    pub commits: usize,
    pub first_run: Option<RunRef>,
    pub newest_run: Option<RunRef>,
    pub tests_seen: usize,
    pub suite: Suite,
    pub flaky: Listed<FlakyTest>,
    pub rerun_flaky: Listed<RerunFlaky>,
    pub slower: Listed<Slower>,
    pub drivers: Listed<Driver>,
    pub chronic_violations: Listed<Chronic>,
    pub near_limit_rising: Listed<NearRising>,
    pub hermeticity_persistent: Listed<HermeticPersist>,
    pub new_failures: Listed<TestEntry>,
    pub fixed: Listed<TestEntry>,
    pub added: Listed<FirstSeen>,
    pub removed: Listed<LastSeen>,
}

impl GroupReport {
    /// Cuts every list to `top` entries.
    pub fn cut(&mut self, top: usize) {
        self.flaky.truncate(top);
        self.rerun_flaky.truncate(top);
        self.slower.truncate(top);
        self.drivers.truncate(top);
        self.chronic_violations.truncate(top);
        self.near_limit_rising.truncate(top);
        self.hermeticity_persistent.truncate(top);
        self.new_failures.truncate(top);
        self.fixed.truncate(top);
        self.added.truncate(top);
        self.removed.truncate(top);
    }
}

/// A run left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub dir: String,
    pub error: String,
}

/// A copy of a run, left out: its directory and the run's first directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Duplicate {
    pub dir: String,
    pub same_as: String,
}

/// The settings a report was made with (in the JSON document).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    pub recent: usize,
    pub baseline: usize,
    pub slower_than: f64,
    pub slower_by: f64,
    pub chronic_m: u32,
    pub chronic_n: u32,
    pub min_flips: u32,
    pub top: usize,
}

/// The whole report: every group, and the runs left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryReport {
    pub schema_version: u32,
    pub generator: String,
    pub settings: Settings,
    /// Runs read into the report.
    pub runs_read: usize,
    pub skipped: Vec<Skipped>,
    /// Copies of runs left out (the same JUnit reports in a second directory).
    pub duplicates: Vec<Duplicate>,
    pub groups: Vec<GroupReport>,
}

impl HistoryReport {
    pub fn new(
        o: &Options,
        runs_read: usize,
        skipped: Vec<Skipped>,
        groups: Vec<GroupReport>,
    ) -> Self {
        HistoryReport {
            schema_version: SCHEMA_VERSION,
            generator: format!("ptc-metrics {}", env!("CARGO_PKG_VERSION")),
            settings: Settings {
                recent: o.recent,
                baseline: o.baseline,
                slower_than: o.slower_than,
                slower_by: o.slower_by,
                chronic_m: o.chronic_m,
                chronic_n: o.chronic_n,
                min_flips: o.min_flips,
                top: o.top,
            },
            runs_read,
            skipped,
            duplicates: Vec::new(),
            groups,
        }
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(id: &str, size: Size, outcome: Outcome, duration: f64) -> TestFacts {
        TestFacts {
            id: id.into(),
            size,
            outcome,
            duration,
            timing: size.limit_seconds().is_some_and(|l| duration > l),
            baseline: false,
            near_limit: size
                .limit_seconds()
                .is_some_and(|l| duration >= 0.8 * l && duration <= l),
            flaky: false,
            reruns: 0,
            hermeticity: [0; 5],
            failure_type: None,
        }
    }

    fn run(i: u32, commit: &str, tests: Vec<TestFacts>) -> RunObs {
        RunObs {
            dir: format!("run-{i:03}"),
            timestamp_ms: 1_800_000_000_000 + i64::from(i) * 600_000,
            commit: Some(commit.into()),
            suite_duration: 10.0 + f64::from(i),
            tests,
        }
    }

    #[test]
    fn medians_and_slopes() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert_eq!(median(std::iter::empty()), 0.0);
        assert_eq!(slope(&[1.0, 2.0, 3.0]), 1.0);
        assert_eq!(slope(&[3.0, 2.0, 1.0]), -1.0);
        assert_eq!(slope(&[5.0]), 0.0);
    }

    #[test]
    fn a_break_and_a_fix_is_no_flake_but_a_same_commit_failure_is() {
        let mut g = GroupAgg::new("{}".into(), BTreeMap::new(), Options::default());
        let outcomes = [
            ("a", Outcome::Passed, Outcome::Passed),
            ("b", Outcome::Failed, Outcome::Passed),
            ("b", Outcome::Failed, Outcome::Passed),
            ("c", Outcome::Passed, Outcome::Failed),
            ("c", Outcome::Passed, Outcome::Passed),
        ];
        for (i, (commit, broken, flaky)) in outcomes.iter().enumerate() {
            g.add(&run(
                i as u32,
                commit,
                vec![
                    fact("t::broken", Size::Small, *broken, 0.1),
                    fact("t::flaky", Size::Small, *flaky, 0.1),
                ],
            ));
        }
        let r = g.finish();
        assert_eq!(r.flaky.total, 1);
        let f = &r.flaky.tests[0];
        assert_eq!(f.id, "t::flaky");
        assert_eq!((f.flips, f.observations), (2, 5));
        assert_eq!(f.flip_rate, 0.5);
        assert_eq!(f.same_commit.len(), 1);
        assert_eq!(f.same_commit[0].commit, "c");
        assert_eq!(f.same_commit[0].failed.run, 4);
        assert_eq!(f.same_commit[0].passed.run, 5);
        assert_eq!(r.new_failures.total, 0);
        // By the rule, whatever the cause: failed in the run before, passed in the newest.
        assert_eq!(r.fixed.total, 1);
        assert_eq!(r.fixed.tests[0].id, "t::flaky");
        // The break and fix of t::broken are two flips, fewer than --min-flips.
        assert!(r.flaky.tests.iter().all(|f| f.id != "t::broken"));
    }

    #[test]
    fn a_tiny_test_twice_as_slow_is_noise_but_a_tenth_of_a_second_more_is_not() {
        let mut g = GroupAgg::new("{}".into(), BTreeMap::new(), Options::default());
        for i in 0..30u32 {
            let slow = i >= 25;
            g.add(&run(
                i,
                "x",
                vec![
                    fact(
                        "tiny",
                        Size::Small,
                        Outcome::Passed,
                        if slow { 0.002 } else { 0.001 },
                    ),
                    fact(
                        "real",
                        Size::Medium,
                        Outcome::Passed,
                        if slow { 0.45 } else { 0.3 },
                    ),
                ],
            ));
        }
        let r = g.finish();
        assert_eq!(r.slower.total, 1);
        assert_eq!(r.slower.tests[0].id, "real");
        assert_eq!(r.slower.tests[0].moved_at.run, 26);
        // Both drove the suite up, by their increase in seconds.
        assert_eq!(r.drivers.total, 2);
        assert_eq!(r.drivers.tests[0].id, "real");
    }

    #[test]
    fn one_commit_for_every_run_counts_each_failure_and_keeps_the_last_ten() {
        let mut g = GroupAgg::new("{}".into(), BTreeMap::new(), Options::default());
        for i in 0..200u32 {
            let o = if i % 2 == 0 {
                Outcome::Failed
            } else {
                Outcome::Passed
            };
            g.add(&run(i, "same", vec![fact("t", Size::Small, o, 0.1)]));
        }
        let r = g.finish();
        let f = &r.flaky.tests[0];
        // Failed in runs 1, 3, …, 199; passed in 2, 4, …, 200; 199 flips.
        assert_eq!(f.same_commit_failures, 100);
        assert_eq!(f.flips, 199);
        assert_eq!(f.flip_rate, 1.0);
        let failed: Vec<u32> = f.same_commit.iter().map(|s| s.failed.run).collect();
        assert_eq!(failed, (181..=199).step_by(2).collect::<Vec<u32>>());
        assert!(f.same_commit.iter().all(|s| s.passed.run == 2));
        assert_eq!(f.flip_runs.len(), 10);
        assert_eq!(f.flip_runs[9].run, 200);
    }

    #[test]
    fn registers_forget_runs_older_than_the_window() {
        let mut g = GroupAgg::new("{}".into(), BTreeMap::new(), Options::default());
        // Violations in runs 1-3, then 5 runs without: not chronic.
        for i in 0..8u32 {
            let d = if i < 3 { 1.5 } else { 0.1 };
            g.add(&run(
                i,
                "x",
                vec![fact("t", Size::Small, Outcome::Passed, d)],
            ));
        }
        assert_eq!(g.finish().chronic_violations.total, 0);
        let mut g = GroupAgg::new("{}".into(), BTreeMap::new(), Options::default());
        // Absent from 3 of the last 5 runs and violating in the 2 others: 2 of 5.
        for i in 0..8u32 {
            let tests = if (3..6).contains(&i) {
                vec![]
            } else {
                vec![fact("t", Size::Small, Outcome::Passed, 1.5)]
            };
            g.add(&run(i, "x", tests));
        }
        assert_eq!(g.finish().chronic_violations.total, 0);
    }
}
