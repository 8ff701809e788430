//! Per-test events (docs/events.md, schema version [`SCHEMA_VERSION`]): the tests behind the
//! metrics, for log stores.
//!
//! Pure and streamed: [`for_each_event`] walks the run's test table once and hands each
//! event to a callback as it is made, so a run of a million tests never has its events in
//! memory. Each test's facts come from [`test_facts`], the very function the metrics are
//! counted with, so the events say what the metrics say: one `failure` event per failed or
//! errored test, the violation codes of every violation, and the sizes and outcomes of the
//! series. Encoding is `crate::encode::events`; delivery `crate::sink::{loki, elasticsearch}`.

use sha2::{Digest, Sha256};

use super::{test_facts, DeriveConfig, Summary, TestFacts};
use crate::derive::metrics::Labels;
use crate::model::{Outcome, Resource, Run};

/// The version of the event schema (`schema_version` of every event). docs/events.md says
/// what may change within a version (new fields only) and what needs a new one.
pub const SCHEMA_VERSION: u32 = 1;

/// What an event is about. A test gets one event, of the first kind that applies, in
/// this order; its `violations` list every code it broke whatever its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// Outcome `failed` or `error`.
    Failure,
    /// Not failed, but a timing (TC006), baseline (TC008) or hermeticity (TC001–TC005)
    /// violation: a run in the plugin's warn mode.
    Violation,
    /// Passed only after a rerun.
    Flaky,
    /// Not violating, and at least `--near-limit-ratio` of its size's limit.
    NearLimit,
    /// Nothing notable (only with `--events-all`).
    Test,
    /// The run's summary: one per run.
    Run,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Failure,
        EventKind::Violation,
        EventKind::Flaky,
        EventKind::NearLimit,
        EventKind::Test,
        EventKind::Run,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Failure => "failure",
            EventKind::Violation => "violation",
            EventKind::Flaky => "flaky",
            EventKind::NearLimit => "near_limit",
            EventKind::Test => "test",
            EventKind::Run => "run",
        }
    }
}

/// The kind of a test's event; `None` for an unremarkable test unless `all`.
pub fn kind_of(f: &TestFacts, all: bool) -> Option<EventKind> {
    if matches!(f.outcome, Outcome::Failed | Outcome::Error) {
        Some(EventKind::Failure)
    } else if f.timing || f.baseline || f.hermeticity.iter().any(|n| *n > 0) {
        Some(EventKind::Violation)
    } else if f.flaky {
        Some(EventKind::Flaky)
    } else if f.near_limit {
        Some(EventKind::NearLimit)
    } else if all {
        Some(EventKind::Test)
    } else {
        None
    }
}

/// The plugin's codes a test broke, in code order: `TC001`–`TC005` (a hermeticity record
/// of network, filesystem, process, database, sleep), `TC006` (timing), `TC008` (baseline).
pub fn violation_codes(f: &TestFacts) -> impl Iterator<Item = &'static str> + '_ {
    const HERM: [&str; 5] = ["TC001", "TC002", "TC003", "TC004", "TC005"];
    Resource::ALL
        .into_iter()
        .filter(|r| f.hermeticity[r.index()] > 0)
        .map(|r| HERM[r.index()])
        .chain(f.timing.then_some("TC006"))
        .chain(f.baseline.then_some("TC008"))
}

/// The run the events come from: its identity and what the CI and the flags say of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunContext {
    /// The run's identity: SHA-256 (hex) of its JUnit reports, as `backfill` and
    /// `push --archive` name runs (`crate::backfill::parse::run_id`).
    pub run_id: String,
    /// Run start, Unix seconds (METRICS.md §3 `pytest_last_run_timestamp_seconds`).
    pub timestamp: f64,
    /// The `job` label.
    pub job: String,
    /// The grouping labels in order: project, branch, ci_job, shard, then the `--label`s.
    pub grouping: Labels,
    pub commit: Option<String>,
    pub ci_run_id: Option<String>,
    pub run_url: Option<String>,
}

impl RunContext {
    /// A grouping label's value (`project`, `branch`, `ci_job`, `shard`), when set and not empty.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.grouping
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The `--label`s: grouping labels other than project, branch, ci_job and shard.
    pub fn extra_labels(&self) -> impl Iterator<Item = &(String, String)> {
        self.grouping
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "project" | "branch" | "ci_job" | "shard"))
    }

    /// The run's time in Unix milliseconds (negative and non-finite times are 0).
    pub fn timestamp_ms(&self) -> i64 {
        if self.timestamp.is_finite() && self.timestamp > 0.0 {
            (self.timestamp * 1000.0).round() as i64
        } else {
            0
        }
    }
}

/// The deterministic id of an event: the first 128 bits, in hex, of
/// SHA-256(`run_id` · `0x00` · `node_id`); the run's summary event uses an empty node id.
/// The same run sent again gives the same ids (Elasticsearch `_id`: no duplicates).
pub fn event_id(run_id: &str, node_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(run_id.as_bytes());
    h.update([0u8]);
    h.update(node_id.as_bytes());
    let d = h.finalize();
    let mut s = String::with_capacity(32);
    for b in &d[..16] {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// One test's event.
#[derive(Debug, Clone, PartialEq)]
pub struct TestEvent<'a> {
    pub kind: EventKind,
    /// 1-based position among the run's events (the summary is 0): orders a run's
    /// entries in a Loki stream.
    pub seq: u64,
    pub event_id: String,
    /// The test's facts; `facts.id` is its node id.
    pub facts: TestFacts,
    /// JUnit classname and name (size label removed); empty when the run kept no names.
    pub classname: &'a str,
    pub name: &'a str,
    /// First line of the last attempt's failure message, bounded, control characters escaped.
    pub message: Option<&'a str>,
}

/// An event: a test's, or the run's summary.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    Test(TestEvent<'a>),
    Run {
        event_id: String,
        summary: &'a Summary,
    },
}

impl Event<'_> {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Test(t) => t.kind,
            Event::Run { .. } => EventKind::Run,
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            Event::Test(t) => &t.event_id,
            Event::Run { event_id, .. } => event_id,
        }
    }

    pub fn seq(&self) -> u64 {
        match self {
            Event::Test(t) => t.seq,
            Event::Run { .. } => 0,
        }
    }
}

/// Hands the run's events to `each`, as they are made: the summary first, then one per
/// notable test (every test with `all`) in the order the tests were first seen. `summary`
/// must be `summarize(run, cfg, …)`. Stops at the first error `each` returns. Node ids,
/// names and messages are those the run kept (read it with `test_ids` and `messages`).
pub fn for_each_event<E>(
    run: &Run,
    summary: &Summary,
    cfg: &DeriveConfig,
    ctx: &RunContext,
    all: bool,
    mut each: impl FnMut(&Event<'_>) -> Result<(), E>,
) -> Result<(), E> {
    each(&Event::Run {
        event_id: event_id(&ctx.run_id, ""),
        summary,
    })?;
    let mut seq = 0u64;
    for t in run.tests.iter() {
        let rec = t.record();
        let mut facts = test_facts(&rec, String::new(), run, cfg);
        let Some(kind) = kind_of(&facts, all) else {
            continue;
        };
        seq += 1;
        facts.id = t.id();
        let (classname, name) = t.names().unwrap_or(("", ""));
        let ev = Event::Test(TestEvent {
            kind,
            seq,
            event_id: event_id(&ctx.run_id, &facts.id),
            facts,
            classname,
            name,
            message: t.message(),
        });
        each(&ev)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Size;

    fn facts(outcome: Outcome) -> TestFacts {
        TestFacts {
            id: "t".into(),
            size: Size::Small,
            outcome,
            duration: 0.1,
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
    fn kinds_in_order_of_importance() {
        let mut f = facts(Outcome::Passed);
        assert_eq!(kind_of(&f, false), None);
        assert_eq!(kind_of(&f, true), Some(EventKind::Test));
        f.near_limit = true;
        assert_eq!(kind_of(&f, false), Some(EventKind::NearLimit));
        f.flaky = true;
        assert_eq!(kind_of(&f, false), Some(EventKind::Flaky));
        f.hermeticity[Resource::Sleep.index()] = 2;
        assert_eq!(kind_of(&f, false), Some(EventKind::Violation));
        f.outcome = Outcome::Error;
        assert_eq!(kind_of(&f, false), Some(EventKind::Failure));
        f.timing = true;
        f.baseline = true;
        f.hermeticity[Resource::Network.index()] = 1;
        assert_eq!(
            violation_codes(&f).collect::<Vec<_>>(),
            ["TC001", "TC005", "TC006", "TC008"]
        );
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        // SHA-256("run\0tests/a.py::t") — computed independently with `printf 'run\0tests/a.py::t' | sha256sum`.
        assert_eq!(
            event_id("run", "tests/a.py::t"),
            "ccd66aa29525a7ef8b317d0f86b3ab37"
        );
        assert_ne!(event_id("run", "a"), event_id("run", "b"));
        assert_ne!(event_id("ru", "na"), event_id("run", "a"));
        assert_eq!(event_id("r", "").len(), 32);
    }
}
