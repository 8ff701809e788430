//! The facts `ptc-metrics inspect` shows, collected from [`summarize`](super::summarize)'s
//! per-test callback with bounded memory (pure: no I/O).
//!
//! Counts come from the [`Summary`] (METRICS.md §1–3). Lists of tests (timing and baseline
//! violations, tests near their limit, flaky tests, the slowest tests per size, hermeticity
//! violations) are kept as top-N binary heaps, so a report with a million tests costs
//! `O(tests · log N)` time and `O(N)` memory, never the whole list. The size distribution is
//! checked against pytest-test-categories 1.2.2's fixed targets and bands.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{Summary, TestFacts};
use crate::model::Size;

/// How much `inspect` lists.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectConfig {
    /// `--top`: at most this many tests per list (and per size for the slowest tests).
    pub top: usize,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig { top: 10 }
    }
}

/// One distribution bucket of pytest-test-categories 1.2.2: its sizes,
/// target and tolerance in percent. The plugin ignores its options to change them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub name: &'static str,
    pub sizes: &'static [Size],
    pub target: f64,
    pub tolerance: f64,
}

impl Band {
    pub fn min(&self) -> f64 {
        self.target - self.tolerance
    }
    pub fn max(&self) -> f64 {
        self.target + self.tolerance
    }
}

/// Small 80 ± 5, medium 15 ± 5, large + xlarge 5 ± 3, checked in this order.
pub const BANDS: [Band; 3] = [
    Band {
        name: "small",
        sizes: &[Size::Small],
        target: 80.0,
        tolerance: 5.0,
    },
    Band {
        name: "medium",
        sizes: &[Size::Medium],
        target: 15.0,
        tolerance: 5.0,
    },
    Band {
        name: "large+xlarge",
        sizes: &[Size::Large, Size::Xlarge],
        target: 5.0,
        tolerance: 3.0,
    },
];

/// Where a bucket's share lies relative to its band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandStatus {
    Below,
    Within,
    Above,
}

impl BandStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BandStatus::Below => "below",
            BandStatus::Within => "within",
            BandStatus::Above => "above",
        }
    }
}

/// A bucket's share of the sized tests, checked against its band.
#[derive(Debug, Clone, PartialEq)]
pub struct BandCheck {
    pub band: Band,
    pub tests: u64,
    /// `count × 100 / sized`, rounded to 2 decimals as the plugin rounds before checking.
    pub percentage: f64,
    pub status: BandStatus,
}

/// The size distribution of the sized tests (unsized and unknown excluded, as the plugin does).
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub sized: u64,
    /// `(size, tests, percentage rounded to 2 decimals)` for small, medium, large, xlarge.
    pub sizes: Vec<(Size, u64, f64)>,
    pub bands: Vec<BandCheck>,
}

impl Distribution {
    /// The first bucket outside its band, which is the one the plugin's TC007 check reports.
    pub fn first_outside(&self) -> Option<&BandCheck> {
        self.bands.iter().find(|b| b.status != BandStatus::Within)
    }
}

/// Rounds to 2 decimals (`round(x, 2)` in the plugin, up to binary representation).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The distribution of a summary, `None` when no test is sized or any test is `unknown`
/// (as [`Summary::distribution`]).
pub fn distribution(s: &Summary) -> Option<Distribution> {
    let sized: u64 = Size::SIZED.iter().map(|z| s.size_count(*z)).sum();
    if sized == 0 || s.size_count(Size::Unknown) > 0 {
        return None;
    }
    let pct = |n: u64| round2(n as f64 * 100.0 / sized as f64);
    let sizes = Size::SIZED
        .iter()
        .map(|z| (*z, s.size_count(*z), pct(s.size_count(*z))))
        .collect();
    let bands = BANDS
        .iter()
        .map(|b| {
            let tests: u64 = b.sizes.iter().map(|z| s.size_count(*z)).sum();
            let percentage = pct(tests);
            let status = if percentage < b.min() {
                BandStatus::Below
            } else if percentage > b.max() {
                BandStatus::Above
            } else {
                BandStatus::Within
            };
            BandCheck {
                band: *b,
                tests,
                percentage,
                status,
            }
        })
        .collect();
    Some(Distribution {
        sized,
        sizes,
        bands,
    })
}

/// A test's duration as a share of its size's limit (the duration itself when it has none).
pub fn limit_share(f: &TestFacts) -> f64 {
    match f.size.limit_seconds() {
        Some(l) => f.duration / l,
        None => f.duration,
    }
}

/// A test with the score it is ranked by.
struct Ranked {
    score: f64,
    facts: TestFacts,
}

/// Ordered so that the heap's top is the entry to drop first: lowest score, then the
/// greatest id (ties list in id order).
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then_with(|| self.facts.id.cmp(&other.facts.id))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

/// The `n` highest-scoring tests seen, ties broken by id; `O(n)` memory.
pub struct TopN {
    n: usize,
    heap: BinaryHeap<Ranked>,
}

impl TopN {
    pub fn new(n: usize) -> Self {
        TopN {
            n,
            heap: BinaryHeap::with_capacity(n.min(1024) + 1),
        }
    }

    /// Offers a test. The facts are cloned only when the test makes it into the list.
    pub fn offer(&mut self, score: f64, facts: &TestFacts) {
        if self.n == 0 {
            return;
        }
        if self.heap.len() == self.n {
            let worst = self.heap.peek().map(|w| (w.score, w.facts.id.as_str()));
            if let Some((ws, wid)) = worst {
                let better = score > ws || (score == ws && facts.id.as_str() < wid);
                if !better {
                    return;
                }
            }
            self.heap.pop();
        }
        self.heap.push(Ranked {
            score,
            facts: facts.clone(),
        });
    }

    /// Best first.
    pub fn into_sorted(self) -> Vec<TestFacts> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.facts)
            .collect()
    }
}

/// Receives every test's facts and keeps the bounded lists.
pub struct Collector {
    timing: TopN,
    baseline: TopN,
    near_limit: TopN,
    flaky: TopN,
    slowest: [TopN; 6],
    hermeticity: TopN,
    hermeticity_tests: u64,
}

impl Collector {
    pub fn new(cfg: &CollectConfig) -> Self {
        let n = cfg.top;
        Collector {
            timing: TopN::new(n),
            baseline: TopN::new(n),
            near_limit: TopN::new(n),
            flaky: TopN::new(n),
            slowest: std::array::from_fn(|_| TopN::new(n)),
            hermeticity: TopN::new(n),
            hermeticity_tests: 0,
        }
    }

    /// One test's facts, as `summarize` hands them over.
    pub fn add(&mut self, f: TestFacts) {
        if f.timing {
            self.timing.offer(limit_share(&f), &f);
        }
        if f.baseline {
            self.baseline.offer(f.duration, &f);
        }
        if f.near_limit {
            self.near_limit.offer(limit_share(&f), &f);
        }
        if f.flaky {
            self.flaky.offer(f64::from(f.reruns), &f);
        }
        let records: u32 = f.hermeticity.iter().sum();
        if records > 0 {
            self.hermeticity_tests += 1;
            self.hermeticity.offer(f64::from(records), &f);
        }
        self.slowest[f.size.index()].offer(f.duration, &f);
    }

    /// The inspection of a run: the summary's counts plus the lists.
    /// `coverage_files` is the number of files with uncovered lines before
    /// `--max-coverage-files` cut the list.
    pub fn finish(
        self,
        summary: Summary,
        cfg: &CollectConfig,
        near_limit_ratio: f64,
        coverage_files: usize,
    ) -> Inspection {
        let mut warnings = summary.notes.clone();
        if summary.total_tests() == 0 {
            warnings.push(
                "the inputs hold no test (an empty suite: did collection fail, or did the \
                 plugin's distribution check stop the run before any test ran?)"
                    .to_string(),
            );
        }
        Inspection {
            distribution: distribution(&summary),
            top: cfg.top,
            near_limit_ratio,
            timing: self.timing.into_sorted(),
            baseline: self.baseline.into_sorted(),
            near_limit: self.near_limit.into_sorted(),
            flaky: self.flaky.into_sorted(),
            slowest: self.slowest.map(TopN::into_sorted),
            hermeticity: self.hermeticity.into_sorted(),
            hermeticity_tests: self.hermeticity_tests,
            coverage_files,
            warnings,
            summary,
        }
    }
}

/// Everything `inspect` renders, as terminal text or JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub summary: Summary,
    pub distribution: Option<Distribution>,
    /// `--top`.
    pub top: usize,
    /// `--near-limit-ratio`.
    pub near_limit_ratio: f64,
    /// Timing violations (TC006), most over their limit first.
    pub timing: Vec<TestFacts>,
    /// Baseline violations (TC008), slowest first.
    pub baseline: Vec<TestFacts>,
    /// Tests near their limit, closest first.
    pub near_limit: Vec<TestFacts>,
    /// Flaky tests, most reruns first.
    pub flaky: Vec<TestFacts>,
    /// The slowest tests of each size, indexed by [`Size::index`].
    pub slowest: [Vec<TestFacts>; 6],
    /// Tests with hermeticity violation records, most records first.
    pub hermeticity: Vec<TestFacts>,
    /// Tests with at least one hermeticity violation record.
    pub hermeticity_tests: u64,
    /// Files with uncovered lines, before `--max-coverage-files`.
    pub coverage_files: usize,
    /// Things to know about the inputs (no size source, join misses, …).
    pub warnings: Vec<String>,
}

impl Inspection {
    /// Sizes that have a row in tables: the four real sizes, plus unsized/unknown when present.
    pub fn sizes(&self) -> Vec<Size> {
        super::totals::present_sizes(&self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;

    fn facts(id: &str, size: Size, duration: f64) -> TestFacts {
        TestFacts {
            id: id.to_string(),
            size,
            outcome: Outcome::Passed,
            duration,
            timing: false,
            baseline: false,
            near_limit: false,
            flaky: false,
            reruns: 0,
            hermeticity: [0; 5],
            failure_type: None,
        }
    }

    #[test]
    fn top_n_keeps_the_highest_scores_ties_by_id() {
        let mut t = TopN::new(3);
        for (i, d) in [0.5, 3.0, 1.0, 3.0, 0.1, 2.0, 3.0].iter().enumerate() {
            t.offer(*d, &facts(&format!("t{i}"), Size::Small, *d));
        }
        let ids: Vec<String> = t.into_sorted().into_iter().map(|f| f.id).collect();
        assert_eq!(ids, ["t1", "t3", "t6"]);
        let mut t = TopN::new(0);
        t.offer(1.0, &facts("a", Size::Small, 1.0));
        assert!(t.into_sorted().is_empty());
    }

    #[test]
    fn top_n_is_the_same_as_sorting_everything() {
        // A deterministic pseudo-random sequence with many ties.
        let mut x: u64 = 7;
        let mut all = Vec::new();
        let mut t = TopN::new(25);
        for i in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let d = ((x >> 33) % 500) as f64 / 100.0;
            let f = facts(&format!("id{i:05}"), Size::Medium, d);
            t.offer(d, &f);
            all.push(f);
        }
        all.sort_by(|a, b| b.duration.total_cmp(&a.duration).then(a.id.cmp(&b.id)));
        all.truncate(25);
        assert_eq!(t.into_sorted(), all);
    }

    #[test]
    fn bands_follow_the_plugin() {
        let mut s = Summary::default();
        // 4 small, 8 medium, 1 large: 30.77 % small (the plugin's TC007 example), 61.54 %
        // medium, 7.69 % large+xlarge.
        s.tests[Size::Small.index()][Outcome::Passed.index()] = 4;
        s.tests[Size::Medium.index()][Outcome::Passed.index()] = 8;
        s.tests[Size::Large.index()][Outcome::Passed.index()] = 1;
        s.tests[Size::Unsized.index()][Outcome::Passed.index()] = 50;
        let d = distribution(&s).unwrap();
        assert_eq!(d.sized, 13);
        let got: Vec<(f64, BandStatus)> =
            d.bands.iter().map(|b| (b.percentage, b.status)).collect();
        assert_eq!(
            got,
            [
                (30.77, BandStatus::Below),
                (61.54, BandStatus::Above),
                (7.69, BandStatus::Within)
            ]
        );
        assert_eq!(d.first_outside().unwrap().band.name, "small");
        assert!(distribution(&Summary::default()).is_none());
        // One test of unknown size: the sized ones may be any sliver of the run.
        s.tests[Size::Unknown.index()][Outcome::Passed.index()] = 1;
        assert!(distribution(&s).is_none());
        assert!(s.distribution().is_none());
        // Edges are inside: 75 % and 85 % pass, as `min <= pct <= max` in the plugin.
        let mut s = Summary::default();
        s.tests[Size::Small.index()][0] = 85;
        s.tests[Size::Medium.index()][0] = 10;
        s.tests[Size::Xlarge.index()][0] = 5;
        let d = distribution(&s).unwrap();
        assert!(d.bands.iter().all(|b| b.status == BandStatus::Within));
    }

    #[test]
    fn collector_sorts_each_list() {
        let cfg = CollectConfig { top: 2 };
        let mut c = Collector::new(&cfg);
        let mut a = facts("a", Size::Small, 1.5);
        a.timing = true;
        let mut b = facts("b", Size::Medium, 330.0);
        b.timing = true;
        let mut n = facts("n", Size::Medium, 250.0);
        n.near_limit = true;
        let mut h = facts("h", Size::Small, 0.01);
        h.hermeticity = [0, 0, 2, 0, 1];
        let mut fl = facts("f", Size::Small, 0.2);
        fl.flaky = true;
        fl.reruns = 2;
        for f in [a, b, n, h, fl] {
            c.add(f);
        }
        let i = c.finish(Summary::default(), &cfg, 0.8, 0);
        // 1.5 s of a 1 s limit is further over than 330 s of 300 s.
        assert_eq!(
            i.timing.iter().map(|f| &f.id[..]).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(i.near_limit[0].id, "n");
        assert_eq!(i.flaky[0].reruns, 2);
        assert_eq!(
            (i.hermeticity_tests, i.hermeticity[0].id.as_str()),
            (1, "h")
        );
        let small: Vec<&str> = i.slowest[Size::Small.index()]
            .iter()
            .map(|f| &f.id[..])
            .collect();
        assert_eq!(small, ["a", "f"]);
        assert_eq!(i.warnings.len(), 1, "empty suite is said: {:?}", i.warnings);
    }
}
