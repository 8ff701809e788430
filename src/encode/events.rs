//! Events (`crate::derive::events`) as JSON objects, one per line: the NDJSON of
//! `--events`, the log lines of Loki and the documents of Elasticsearch. The layout is
//! docs/events.md, schema version 1.
//!
//! The part every event of a run shares (time, run identity, group, commit, CI run) is
//! encoded once per run; an event appends its own fields to it. Strings are escaped by
//! serde_json; optional fields that are unknown are left out.

use crate::derive::events::{violation_codes, Event, RunContext, TestEvent, SCHEMA_VERSION};
use crate::derive::Summary;
use crate::model::{FailureType, Outcome, Resource, Size};

/// Encodes the events of one run.
#[derive(Debug, Clone)]
pub struct EventEncoder {
    /// `{"@timestamp":"…","schema_version":1,"event_id":"`
    head: Vec<u8>,
    /// `"run_id":…,"job":…,…` up to and including the run URL, with a trailing comma.
    context: Vec<u8>,
}

impl EventEncoder {
    pub fn new(ctx: &RunContext) -> Self {
        let mut head = Vec::with_capacity(96);
        head.extend_from_slice(b"{\"@timestamp\":");
        string(&mut head, &crate::civil::rfc3339(ctx.timestamp_ms()));
        head.extend_from_slice(
            format!(",\"schema_version\":{SCHEMA_VERSION},\"event_id\":").as_bytes(),
        );
        let mut c = Vec::with_capacity(256);
        field(&mut c, "run_id", &ctx.run_id);
        field(&mut c, "job", &ctx.job);
        for name in ["project", "branch", "ci_job", "shard"] {
            if let Some(v) = ctx.label(name) {
                field(&mut c, name, v);
            }
        }
        let mut extra = ctx.extra_labels().peekable();
        if extra.peek().is_some() {
            c.extend_from_slice(b"\"labels\":{");
            for (i, (k, v)) in extra.enumerate() {
                if i > 0 {
                    c.push(b',');
                }
                string(&mut c, k);
                c.push(b':');
                string(&mut c, v);
            }
            c.extend_from_slice(b"},");
        }
        for (name, v) in [
            ("commit", &ctx.commit),
            ("ci_run_id", &ctx.ci_run_id),
            ("run_url", &ctx.run_url),
        ] {
            if let Some(v) = v {
                field(&mut c, name, v);
            }
        }
        EventEncoder { head, context: c }
    }

    /// Appends the event as one JSON object (no newline) to `out`.
    pub fn encode(&self, ev: &Event<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        string(out, ev.event_id());
        out.extend_from_slice(b",\"kind\":");
        string(out, ev.kind().as_str());
        out.push(b',');
        out.extend_from_slice(&self.context);
        match ev {
            Event::Test(t) => test_fields(t, out),
            Event::Run { summary, .. } => run_fields(summary, out),
        }
        out.push(b'}');
    }
}

fn test_fields(t: &TestEvent<'_>, out: &mut Vec<u8>) {
    let f = &t.facts;
    field(out, "node_id", &f.id);
    field(out, "classname", t.classname);
    field(out, "name", t.name);
    field(out, "size", f.size.as_str());
    field(out, "outcome", f.outcome.as_str());
    out.extend_from_slice(b"\"duration_seconds\":");
    number(out, f.duration);
    if let Some(l) = f.size.limit_seconds() {
        out.extend_from_slice(b",\"limit_seconds\":");
        number(out, l);
    }
    out.extend_from_slice(b",\"violations\":[");
    for (i, code) in violation_codes(f).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, code);
    }
    out.push(b']');
    if f.hermeticity.iter().any(|n| *n > 0) {
        out.extend_from_slice(b",\"hermeticity\":{");
        let mut first = true;
        for r in Resource::ALL {
            let n = f.hermeticity[r.index()];
            if n > 0 {
                if !first {
                    out.push(b',');
                }
                first = false;
                string(out, r.as_str());
                out.push(b':');
                out.extend_from_slice(n.to_string().as_bytes());
            }
        }
        out.push(b'}');
    }
    if let Some(ft) = f.failure_type {
        out.extend_from_slice(b",\"failure_type\":");
        string(out, ft.as_str());
    }
    out.extend_from_slice(if f.flaky {
        b",\"flaky\":true"
    } else {
        b",\"flaky\":false"
    });
    out.extend_from_slice(if f.near_limit {
        b",\"near_limit\":true"
    } else {
        b",\"near_limit\":false"
    });
    out.extend_from_slice(b",\"reruns\":");
    out.extend_from_slice(f.reruns.to_string().as_bytes());
    if let Some(m) = t.message {
        out.extend_from_slice(b",\"message\":");
        string(out, m);
    }
}

fn run_fields(s: &Summary, out: &mut Vec<u8>) {
    let count = |out: &mut Vec<u8>, name: &str, n: u64| {
        string(out, name);
        out.push(b':');
        out.extend_from_slice(n.to_string().as_bytes());
    };
    count(out, "tests", s.total_tests());
    out.extend_from_slice(b",\"outcomes\":{");
    for (i, o) in Outcome::ALL.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        count(
            out,
            o.as_str(),
            s.tests.iter().map(|row| row[o.index()]).sum(),
        );
    }
    out.extend_from_slice(b"},\"sizes\":{");
    for (i, z) in Size::ALL.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        count(out, z.as_str(), s.size_count(z));
    }
    out.extend_from_slice(b"},");
    let sum = |a: &[u64]| a.iter().sum::<u64>();
    count(out, "timing_violations", sum(&s.timing_violations));
    out.push(b',');
    count(out, "baseline_violations", sum(&s.baseline_violations));
    out.push(b',');
    count(out, "near_limit", sum(&s.near_limit));
    out.push(b',');
    count(out, "flaky", sum(&s.flaky));
    out.extend_from_slice(b",\"hermeticity_violations\":{");
    for (i, r) in Resource::ALL.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        count(out, r.as_str(), s.hermeticity[r.index()]);
    }
    out.extend_from_slice(b"},\"failures\":{");
    for (i, t) in FailureType::ALL.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        count(out, t.as_str(), s.failures[t.index()]);
    }
    out.extend_from_slice(b"},\"suite_duration_seconds\":");
    number(out, s.suite_duration);
    if let Some(c) = &s.coverage {
        out.extend_from_slice(b",\"coverage_percentage\":");
        number(out, c.percentage());
    }
}

/// `"name":"value",`
fn field(out: &mut Vec<u8>, name: &str, v: &str) {
    string(out, name);
    out.push(b':');
    string(out, v);
    out.push(b',');
}

/// A JSON string, escaped by serde_json.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A JSON number (`null` for a non-finite one, which the readers never produce).
fn number(out: &mut Vec<u8>, v: f64) {
    let _ = serde_json::to_writer(&mut *out, &v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::events::EventKind;
    use crate::derive::TestFacts;

    fn ctx() -> RunContext {
        RunContext {
            run_id: "ab".into(),
            timestamp: 1_795_703_214.052,
            job: "pytest".into(),
            grouping: vec![
                ("project".into(), "shop".into()),
                ("branch".into(), "main".into()),
                ("shard".into(), "2/4".into()),
                ("python_version".into(), "3.12".into()),
            ],
            commit: Some("c0ffee".into()),
            ci_run_id: None,
            run_url: Some("https://ci.example/runs/7".into()),
        }
    }

    #[test]
    fn a_failure_event_exactly() {
        let facts = TestFacts {
            id: "tests/a.py::test_x[\"q\"]".into(),
            size: Size::Small,
            outcome: Outcome::Failed,
            duration: 1.25,
            timing: true,
            baseline: false,
            near_limit: false,
            flaky: false,
            reruns: 2,
            hermeticity: [1, 0, 0, 0, 0],
            failure_type: Some(FailureType::TimingViolation),
        };
        let ev = Event::Test(TestEvent {
            kind: EventKind::Failure,
            seq: 1,
            event_id: "e1".into(),
            facts,
            classname: "tests.a",
            name: "test_x[\"q\"]",
            message: Some("Failed: \\u{1b}[31m slow\ttab"),
        });
        let mut out = Vec::new();
        EventEncoder::new(&ctx()).encode(&ev, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"@timestamp":"2026-11-26T14:26:54.052Z","schema_version":1,"event_id":"e1","kind":"failure","run_id":"ab","job":"pytest","project":"shop","branch":"main","shard":"2/4","labels":{"python_version":"3.12"},"commit":"c0ffee","run_url":"https://ci.example/runs/7","node_id":"tests/a.py::test_x[\"q\"]","classname":"tests.a","name":"test_x[\"q\"]","size":"small","outcome":"failed","duration_seconds":1.25,"limit_seconds":1.0,"violations":["TC001","TC006"],"hermeticity":{"network":1},"failure_type":"timing_violation","flaky":false,"near_limit":false,"reruns":2,"message":"Failed: \\u{1b}[31m slow\ttab"}"#
        );
    }

    #[test]
    fn a_run_event_exactly() {
        let mut s = Summary::default();
        s.tests[Size::Small.index()][Outcome::Passed.index()] = 3;
        s.tests[Size::Unsized.index()][Outcome::Error.index()] = 1;
        s.failures[FailureType::Error.index()] = 1;
        s.flaky[Size::Small.index()] = 1;
        s.suite_duration = 2.5;
        let ev = Event::Run {
            event_id: "r".into(),
            summary: &s,
        };
        let c = RunContext {
            run_id: "ab".into(),
            timestamp: 0.0,
            job: "pytest".into(),
            ..RunContext::default()
        };
        let mut out = Vec::new();
        EventEncoder::new(&c).encode(&ev, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"@timestamp":"1970-01-01T00:00:00Z","schema_version":1,"event_id":"r","kind":"run","run_id":"ab","job":"pytest","tests":4,"outcomes":{"failed":0,"error":1,"xfailed":0,"skipped":0,"passed":3},"sizes":{"small":3,"medium":0,"large":0,"xlarge":0,"unsized":1,"unknown":0},"timing_violations":0,"baseline_violations":0,"near_limit":0,"flaky":1,"hermeticity_violations":{"network":0,"filesystem":0,"process":0,"database":0,"sleep":0},"failures":{"assertion":0,"error":1,"hermeticity_violation":0,"timing_violation":0},"suite_duration_seconds":2.5}"#
        );
    }
}
