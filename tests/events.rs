//! Events (docs/events.md) end to end, through the binary.
//!
//! - Events equal metrics: for every JUnit fixture of pytest 9.1 and 9.2 (alone, and with
//!   the size report of the same name), the events `push --events-all` writes are counted
//!   against the metrics the same invocation writes to a textfile, by size, outcome,
//!   violation, flaky, near limit and failure type; without `--events-all` the events are
//!   exactly the notable ones.
//! - Loki and Elasticsearch: no server of either can be installed here (see README,
//!   "Events"), so a loopback server checks every request against the published API
//!   (Loki's `POST /loki/api/v1/push` JSON + gzip; Elasticsearch's `POST /_bulk` NDJSON of
//!   `create` actions) and answers as the documentation says: Loki 204, 400 `entry out of
//!   order`, 429 with `Retry-After`; Elasticsearch 200 with per-item results, 409
//!   `version_conflict_engine_exception` for an `_id` it already has, and item errors.
//!   Request bodies of a small run are compared byte for byte.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::http::{answer, listen, read_request, Req};
use support::{cli, fixture};

// ---------------------------------------------------------------- events equal metrics

/// `name{labels}` → value of an exposition, labels without job/project.
fn metrics_of(text: &str) -> HashMap<(String, BTreeMap<String, String>), f64> {
    let mut m = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut ls = BTreeMap::new();
        for kv in labels.split("\",").filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once("=\"").unwrap();
            if k != "job" && k != "project" {
                ls.insert(k.to_string(), v.trim_end_matches('"').to_string());
            }
        }
        m.insert((name.to_string(), ls), value.parse::<f64>().unwrap());
    }
    m
}

fn metric(
    m: &HashMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> u64 {
    let ls: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.get(&(name.to_string(), ls)).copied().unwrap_or(0.0) as u64
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

const SIZES: [&str; 6] = ["small", "medium", "large", "xlarge", "unsized", "unknown"];
const OUTCOMES: [&str; 5] = ["failed", "error", "xfailed", "skipped", "passed"];
const RESOURCES: [&str; 5] = ["network", "filesystem", "process", "database", "sleep"];
const FAILURE_TYPES: [&str; 4] = [
    "assertion",
    "error",
    "hermeticity_violation",
    "timing_violation",
];

/// Checks one run: events with and without --events-all against the metrics.
fn check_run(case: &str, args: &[String]) -> BTreeMap<String, u64> {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("m.prom");
    let all = dir.path().join("all.ndjson");
    let notable = dir.path().join("notable.ndjson");
    for (file, extra) in [(&all, Some("--events-all")), (&notable, None)] {
        let mut c = cli();
        c.args([
            "push",
            "--no-ci-detect",
            "--project",
            "demo",
            "--no-accumulate",
        ])
        .args(args)
        .arg("--textfile")
        .arg(&prom)
        .arg("--events")
        .arg(file);
        if let Some(e) = extra {
            c.arg(e);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let m = metrics_of(&std::fs::read_to_string(&prom).unwrap());
    let all_lines = lines(&all);
    let evs: Vec<Value> = all_lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One run event, first, and it says what the metrics say.
    assert_eq!(evs[0]["kind"], "run", "{case}");
    assert_eq!(
        evs.iter().filter(|e| e["kind"] == "run").count(),
        1,
        "{case}"
    );
    let tests: Vec<&Value> = evs.iter().filter(|e| e["kind"] != "run").collect();
    let count = |f: &dyn Fn(&Value) -> bool| tests.iter().filter(|e| f(e)).count() as u64;
    let mut total = 0;
    for size in SIZES {
        for outcome in OUTCOMES {
            let want = metric(&m, "pytest_tests", &[("size", size), ("outcome", outcome)]);
            total += want;
            assert_eq!(
                count(&|e| e["size"] == size && e["outcome"] == outcome),
                want,
                "{case}: tests {size} {outcome}"
            );
        }
        let has = |e: &Value, code: &str| {
            e["violations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == code)
        };
        for (name, code) in [
            ("pytest_timing_violations", "TC006"),
            ("pytest_baseline_violations", "TC008"),
        ] {
            assert_eq!(
                count(&|e| e["size"] == size && has(e, code)),
                metric(&m, name, &[("size", size)]),
                "{case}: {name} {size}"
            );
        }
        assert_eq!(
            count(&|e| e["size"] == size && e["near_limit"] == true),
            metric(&m, "pytest_tests_near_limit", &[("size", size)]),
            "{case}: near limit {size}"
        );
        assert_eq!(
            count(&|e| e["size"] == size && e["flaky"] == true),
            metric(&m, "pytest_flaky_tests", &[("size", size)]),
            "{case}: flaky {size}"
        );
    }
    assert_eq!(tests.len() as u64, total, "{case}: one event per test");
    for (i, r) in RESOURCES.iter().enumerate() {
        let sum: u64 = tests
            .iter()
            .map(|e| e["hermeticity"][r].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(
            sum,
            metric(&m, "pytest_hermeticity_violations", &[("resource", r)]),
            "{case}: hermeticity {r}"
        );
        let code = format!("TC00{}", i + 1);
        assert_eq!(
            count(&|e| e["violations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| *c == *code)),
            count(&|e| e["hermeticity"][r].as_u64().unwrap_or(0) > 0),
            "{case}: {code}"
        );
    }
    for t in FAILURE_TYPES {
        assert_eq!(
            count(&|e| e["failure_type"] == t),
            metric(&m, "ci_test_failures_total", &[("failure_type", t)]),
            "{case}: failure type {t}"
        );
    }
    // As many failure events as failed and errored tests.
    let failed_or_error: u64 = SIZES
        .iter()
        .flat_map(|s| {
            ["failed", "error"].map(|o| metric(&m, "pytest_tests", &[("size", s), ("outcome", o)]))
        })
        .sum();
    assert_eq!(
        count(&|e| e["kind"] == "failure"),
        failed_or_error,
        "{case}: failures"
    );
    // Each kind is the first that applies.
    for e in &tests {
        let violating = !e["violations"].as_array().unwrap().is_empty();
        let want = if e["outcome"] == "failed" || e["outcome"] == "error" {
            "failure"
        } else if violating {
            "violation"
        } else if e["flaky"] == true {
            "flaky"
        } else if e["near_limit"] == true {
            "near_limit"
        } else {
            "test"
        };
        assert_eq!(e["kind"], want, "{case}: {e}");
        match SIZES.iter().position(|s| e["size"] == *s) {
            Some(i) if i < 4 => assert!(e["limit_seconds"].is_number(), "{case}: {e}"),
            _ => assert!(e.get("limit_seconds").is_none(), "{case}: {e}"),
        }
    }
    // The run event's counts.
    let run = &evs[0];
    assert_eq!(run["tests"].as_u64().unwrap(), total, "{case}");
    for t in FAILURE_TYPES {
        assert_eq!(
            run["failures"][t].as_u64().unwrap(),
            metric(&m, "ci_test_failures_total", &[("failure_type", t)]),
            "{case}: run failures {t}"
        );
    }
    // Ids: one per event, never repeated.
    let ids: BTreeSet<&str> = evs
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), evs.len(), "{case}: event ids are distinct");
    // Without --events-all: exactly the notable events, byte for byte.
    let want: Vec<&String> = all_lines
        .iter()
        .zip(&evs)
        .filter(|(_, e)| e["kind"] != "test")
        .map(|(l, _)| l)
        .collect();
    let got = lines(&notable);
    assert_eq!(
        got.iter().collect::<Vec<_>>(),
        want,
        "{case}: notable events"
    );
    // What the run exercised: kinds and codes seen.
    let mut seen = BTreeMap::new();
    for e in &tests {
        *seen
            .entry(e["kind"].as_str().unwrap().to_string())
            .or_default() += 1;
        for c in e["violations"].as_array().unwrap() {
            *seen.entry(c.as_str().unwrap().to_string()).or_default() += 1;
        }
        if e.get("message").is_some() {
            *seen.entry("message".to_string()).or_default() += 1;
        }
    }
    seen
}

#[test]
fn events_equal_metrics_on_every_fixture() {
    let mut cases = 0;
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut add = |m: BTreeMap<String, u64>| {
        for (k, n) in m {
            *seen.entry(k).or_default() += n;
        }
    };
    for v in ["9.1", "9.2"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/pytest-{v}"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names
            .iter()
            .filter(|n| n.starts_with("junit-") && n.ends_with(".xml"))
        {
            let junit = fixture(v, name);
            add(check_run(
                &format!("{v} {name}"),
                std::slice::from_ref(&junit),
            ));
            cases += 1;
            let stem = &name["junit-".len()..name.len() - 4];
            let mut sizes: Vec<(String, Vec<String>)> = Vec::new();
            let own = format!("size-report-{stem}.json");
            if names.contains(&own) {
                sizes.push((own.clone(), vec![]));
            }
            if stem == "prefix-suitename-durcall" {
                sizes.push((
                    "size-report-prefix.json".into(),
                    vec!["--junit-prefix".into(), "PFX".into()],
                ));
            }
            if stem.starts_with("xunit") {
                sizes.push(("size-report.json".into(), vec![]));
            }
            for (s, extra) in sizes {
                let mut args = vec![junit.clone(), "--size-report".into(), fixture(v, &s)];
                args.extend(extra);
                add(check_run(&format!("{v} {name} + {s} {args:?}"), &args));
                cases += 1;
            }
        }
    }
    assert!(cases >= 40, "{cases} cases");
    // The fixtures exercise every kind and code the events have, so no check above is empty.
    let kinds: Vec<&str> = seen.keys().map(String::as_str).collect();
    for k in [
        "failure",
        "violation",
        "flaky",
        "near_limit",
        "test",
        "message",
        "TC001",
        "TC002",
        "TC003",
        "TC005",
        "TC006",
        "TC008",
    ] {
        assert!(seen.get(k).is_some_and(|n| *n > 0), "no {k} in {kinds:?}");
    }
}

// ---------------------------------------------------------------- a loopback server

/// (status, extra headers, body) for a request and what the server knows.
type Handler<S> = dyn Fn(&Req, &mut S) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync;

struct Server<S> {
    url: String,
    state: Arc<Mutex<(Vec<Req>, S)>>,
}

impl<S> Server<S> {
    fn seen(&self) -> Vec<Req>
    where
        S: Send,
    {
        self.state.lock().unwrap().0.clone()
    }
}

fn server<S: Send + 'static>(
    state: S,
    handler: impl Fn(&Req, &mut S) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync + 'static,
) -> Server<S> {
    let state = Arc::new(Mutex::new((Vec::new(), state)));
    let h: Arc<Handler<S>> = Arc::new(handler);
    let st = state.clone();
    let url = listen(move |mut s| {
        let Some(req) = read_request(&mut s) else {
            return;
        };
        let (code, headers, body) = {
            let mut st = st.lock().unwrap();
            st.0.push(req.clone());
            h(&req, &mut st.1)
        };
        answer(&mut s, code, &headers[..], &body);
    });
    Server { url, state }
}

// ---------------------------------------------------------------- Loki

/// What the Loki fake keeps: per stream (labels), the entries it took, in order.
#[derive(Default)]
struct Loki {
    streams: BTreeMap<BTreeMap<String, String>, Vec<(i128, String)>>,
    /// Answer 429 (with Retry-After: 1) to this many pushes first.
    throttle: usize,
    /// Refuse with 400 every entry older than this (ns), as `reject_old_samples` does.
    reject_before: Option<i128>,
}

/// Checks a request against Loki's push API and applies it as Loki (in ordered mode) does.
/// The reasons of a refusal are Loki's own texts.
fn loki_push(req: &Req, st: &mut Loki) -> (u16, Vec<(&'static str, String)>, String) {
    let bad = |m: String| (400u16, vec![], m);
    if req.method != "POST" || req.path != "/loki/api/v1/push" {
        return (404, vec![], "404 page not found\n".into());
    }
    if req.header("content-type") != Some("application/json") {
        return bad(format!(
            "unsupported Content-Type {:?}",
            req.header("content-type")
        ));
    }
    if req.header("content-encoding") != Some("gzip") {
        return bad("expected gzip".into());
    }
    let v: Value = match serde_json::from_str(&req.text()) {
        Ok(v) => v,
        Err(e) => return bad(format!("loghttp: {e}")),
    };
    let Some(obj) = v.as_object() else {
        return bad("body is not an object".into());
    };
    if obj.keys().collect::<Vec<_>>() != ["streams"] {
        return bad(format!(
            "unexpected keys {:?}",
            obj.keys().collect::<Vec<_>>()
        ));
    }
    let streams = v["streams"].as_array().expect("streams is an array");
    let mut parsed = Vec::new();
    for s in streams {
        let so = s.as_object().expect("a stream is an object");
        assert_eq!(
            so.keys().collect::<BTreeSet<_>>(),
            BTreeSet::from([&"stream".to_string(), &"values".to_string()])
        );
        let labels: BTreeMap<String, String> = s["stream"]
            .as_object()
            .expect("stream is an object")
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().expect("label values are strings").to_string(),
                )
            })
            .collect();
        for k in labels.keys() {
            let ok = k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            assert!(ok, "label name {k:?}");
        }
        assert!(!labels.is_empty());
        let mut entries = Vec::new();
        for e in s["values"].as_array().expect("values is an array") {
            let pair = e.as_array().expect("an entry is an array");
            assert_eq!(pair.len(), 2, "[ts, line]");
            let ts = pair[0].as_str().expect("the timestamp is a string");
            assert!(ts.bytes().all(|b| b.is_ascii_digit()), "{ts}");
            let line = pair[1].as_str().expect("the line is a string").to_string();
            entries.push((ts.parse::<i128>().unwrap(), line));
        }
        parsed.push((labels, entries));
    }
    if st.throttle > 0 {
        st.throttle -= 1;
        return (
            429,
            vec![("Retry-After", "1".into())],
            "Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while attempting to ingest '1' lines totaling '1' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased\n".into(),
        );
    }
    for (labels, entries) in parsed {
        let shown: String = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let have = st.streams.entry(labels.clone()).or_default();
        for (ts, line) in entries {
            if st.reject_before.is_some_and(|b| ts < b) {
                return bad(format!(
                    "entry for stream '{{{shown}}}' has timestamp too old: {ts}, oldest acceptable timestamp is: {}",
                    st.reject_before.unwrap_or(0)
                ));
            }
            if let Some((last, last_line)) = have.last() {
                if ts < *last || (ts == *last && line != *last_line) {
                    return bad(format!(
                        "entry with timestamp {ts} ignored, reason: 'entry out of order' for stream: {{{shown}}},\ntotal ignored: 1 out of 1"
                    ));
                }
                if ts == *last && line == *last_line {
                    continue; // an exact duplicate is dropped silently
                }
            }
            have.push((ts, line));
        }
    }
    (204, vec![], String::new())
}

const SMALL: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="1" skipped="0" tests="3" time="1.5" timestamp="2026-11-26T14:26:54.052000+00:00" hostname="h"><testcase classname="tests.test_a" name="test_ok [SMALL]" time="0.01" /><testcase classname="tests.test_a" name="test_bad [SMALL]" time="0.02"><failure message="AssertionError:&#9;assert 1 == 2&#10;second line">trace</failure></testcase><testcase classname="tests.test_a" name="test_slowish [SMALL]" time="0.9" /></testsuite></testsuites>
"#;

/// The run of [`SMALL`]: its identity, SHA-256 of SHA-256(file), and the event ids
/// SHA-256(run_id · 0 · node id)[..16], computed with Python's hashlib, not with this tool.
const SMALL_RUN: &str = "29fb69b9ed44c89af96958999240fc367ab3d8176d3e9430b88319e6da6d5157";

/// The events of [`SMALL`] without --events-all, in order: run, failure, near_limit.
fn small_events() -> [String; 3] {
    let head = format!(
        r#"{{"@timestamp":"2026-11-26T14:26:54.052Z","schema_version":1,"event_id":"{{ID}}","kind":"{{KIND}}","run_id":"{SMALL_RUN}","job":"pytest","project":"shop","branch":"main","#
    );
    let ev =
        |id: &str, kind: &str, rest: &str| head.replace("{ID}", id).replace("{KIND}", kind) + rest;
    [
        ev(
            "418cf7796595b70c4df03a706dba8bee",
            "run",
            r#""tests":3,"outcomes":{"failed":1,"error":0,"xfailed":0,"skipped":0,"passed":2},"sizes":{"small":3,"medium":0,"large":0,"xlarge":0,"unsized":0,"unknown":0},"timing_violations":0,"baseline_violations":0,"near_limit":1,"flaky":0,"hermeticity_violations":{"network":0,"filesystem":0,"process":0,"database":0,"sleep":0},"failures":{"assertion":1,"error":0,"hermeticity_violation":0,"timing_violation":0},"suite_duration_seconds":1.5}"#,
        ),
        ev(
            "c64492373ba2d3b4c30bb43ddb51bfed",
            "failure",
            r#""node_id":"tests.test_a::test_bad","classname":"tests.test_a","name":"test_bad","size":"small","outcome":"failed","duration_seconds":0.02,"limit_seconds":1.0,"violations":[],"failure_type":"assertion","flaky":false,"near_limit":false,"reruns":0,"message":"AssertionError:\\tassert 1 == 2"}"#,
        ),
        ev(
            "c1567db549defd7af67142d837c40455",
            "near_limit",
            r#""node_id":"tests.test_a::test_slowish","classname":"tests.test_a","name":"test_slowish","size":"small","outcome":"passed","duration_seconds":0.9,"limit_seconds":1.0,"violations":[],"flaky":false,"near_limit":true,"reruns":0}"#,
        ),
    ]
}

fn small_run(dir: &Path) -> String {
    let p = dir.join("small.xml");
    std::fs::write(&p, SMALL).unwrap();
    p.to_string_lossy().into_owned()
}

fn push_small(dir: &Path, extra: &[&str]) -> std::process::Output {
    let prom = dir.join("m.prom");
    cli()
        .args([
            "push",
            "--no-ci-detect",
            "--project",
            "shop",
            "--branch",
            "main",
        ])
        .arg(small_run(dir))
        .arg("--textfile")
        .arg(&prom)
        .args(extra)
        .env_remove("PTC_METRICS_GATEWAY")
        .output()
        .unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn loki() -> Server<Loki> {
    server(Loki::default(), loki_push)
}

#[test]
fn ndjson_of_a_small_run_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let out = push_small(dir.path(), &["--events", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let want = small_events().join("\n") + "\n";
    assert_eq!(String::from_utf8(out.stdout.clone()).unwrap(), want);
    assert!(stderr(&out).contains("wrote 3 events (1 failure, 1 near_limit, 1 run) to stdout\n"));
    // Appended, never replaced: a shipper may not have read the first run yet.
    let file = dir.path().join("e.ndjson");
    for _ in 0..2 {
        let out = push_small(dir.path(), &["--events", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), want.repeat(2));
}

#[test]
fn loki_request_body_exactly() {
    let l = loki();
    let dir = tempfile::tempdir().unwrap();
    let out = push_small(
        dir.path(),
        &["--loki", &l.url, "--header", "X-Scope-OrgID: team-a"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "pushed 3 events to Loki at {}/ in 1 request(s)\n",
            l.url
        )),
        "{}",
        stderr(&out)
    );
    let seen = l.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.header("x-scope-orgid"), Some("team-a"));
    assert_eq!(r.header("authorization"), None);
    let [run, failure, near] = small_events();
    let line = |s: &str| serde_json::to_string(s).unwrap();
    let want = format!(
        r#"{{"streams":[{{"stream":{{"job":"pytest","project":"shop","branch":"main","kind":"failure"}},"values":[["1795703214052000001",{}]]}},{{"stream":{{"job":"pytest","project":"shop","branch":"main","kind":"near_limit"}},"values":[["1795703214052000002",{}]]}},{{"stream":{{"job":"pytest","project":"shop","branch":"main","kind":"run"}},"values":[["1795703214052000000",{}]]}}]}}"#,
        line(&failure),
        line(&near),
        line(&run)
    );
    assert_eq!(r.text(), want);
    // The metrics went to their own destination as always.
    assert!(std::fs::read_to_string(dir.path().join("m.prom"))
        .unwrap()
        .contains("pytest_runs_total"));
    // A re-send is taken and changes nothing: Loki drops exact duplicates.
    let out = push_small(dir.path(), &["--loki", &l.url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st = l.state.lock().unwrap();
    assert_eq!(st.1.streams.values().map(Vec::len).sum::<usize>(), 3);
}

#[test]
fn loki_batches_are_bounded_and_streams_ordered() {
    let l = loki();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.ndjson");
    let out = cli()
        .args([
            "push",
            "--no-ci-detect",
            "--project",
            "demo",
            "--branch",
            "main",
        ])
        .arg(fixture("9.2", "junit-xunit2.xml"))
        .args(["--size-report", &fixture("9.2", "size-report.json")])
        .arg("--textfile")
        .arg(dir.path().join("m.prom"))
        .args(["--events-all", "--events", file.to_str().unwrap()])
        .args(["--loki", &format!("{}/loki/api/v1/push", l.url)])
        .args(["--events-batch-size", "2KiB"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = l.seen();
    assert!(seen.len() > 10, "{} requests", seen.len());
    for r in &seen {
        let body = r.text();
        let entries = body.matches(r#"["17957032140"#).count();
        assert!(
            body.len() <= 2048 || entries == 1,
            "{} bytes, {entries} entries",
            body.len()
        );
    }
    let st = l.state.lock().unwrap();
    let mut taken: Vec<String> = Vec::new();
    for (labels, entries) in &st.1.streams {
        assert_eq!(
            labels.keys().collect::<Vec<_>>(),
            ["branch", "job", "kind", "project"],
            "low-cardinality labels only"
        );
        // Strictly increasing per stream (the fake refuses anything else).
        assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        taken.extend(entries.iter().map(|(_, l)| l.clone()));
    }
    let mut want = lines(&file);
    assert_eq!(want.len(), 91);
    want.sort();
    taken.sort();
    assert_eq!(taken, want, "every event once");
}

#[test]
fn loki_out_of_order_is_a_delivery_failure_after_the_metrics() {
    let l = loki();
    // The stream of run events already holds a later entry.
    l.state.lock().unwrap().1.streams.insert(
        [
            ("job", "pytest"),
            ("project", "shop"),
            ("branch", "main"),
            ("kind", "run"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        vec![(1_795_703_214_052_000_100, "later".into())],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = push_small(dir.path(), &["--loki", &l.url, "--retries", "0"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let port = l.url.rsplit(':').next().unwrap();
    assert_eq!(
        stderr(&out),
        format!(
            "wrote 3 tests (16 families) to {}\n\
             error: events not pushed to Loki: POST http://127.0.0.1:{port}/loki/api/v1/push: the server answered 400 Bad Request: \
             entry with timestamp 1795703214052000000 ignored, reason: 'entry out of order' for stream: \
             {{branch=\"main\", job=\"pytest\", kind=\"run\", project=\"shop\"}},\ntotal ignored: 1 out of 1; \
             Loki refuses entries older than its reject_old_samples_max_age or behind a stream's newest entry \
             (see docs/events.md, \"Loki\")\n",
            dir.path().join("m.prom").display()
        )
    );
    assert!(std::fs::read_to_string(dir.path().join("m.prom"))
        .unwrap()
        .contains("pytest_runs_total{branch=\"main\",job=\"pytest\",project=\"shop\"} 1"));
    // --soft-fail: a warning, exit 0.
    let out = push_small(
        dir.path(),
        &["--loki", &l.url, "--retries", "0", "--soft-fail"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out)
        .contains("warning: events not delivered (--soft-fail): events not pushed to Loki: POST "));
}

/// An event sink that cannot be reached fails the push after the metrics were delivered, and
/// the hint names the events, not the metrics (which did arrive).
#[test]
fn unreachable_loki_hint_names_the_events() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let out = push_small(dir.path(), &["--loki", &url, "--retries", "0"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "wrote 3 tests (16 families) to {}\n\
             error: events not pushed to Loki: POST {url}/loki/api/v1/push: cannot connect \
             (Connection refused (os error 111)) after 1 attempt(s); check the URL and that the \
             server is up\n\
             hint: add --soft-fail to keep the job green when the events cannot be delivered\n",
            dir.path().join("m.prom").display()
        )
    );
    assert!(std::fs::read_to_string(dir.path().join("m.prom"))
        .unwrap()
        .contains("pytest_runs_total{branch=\"main\",job=\"pytest\",project=\"shop\"} 1"));
}

/// A URL where no Loki answers (a path prefix that is not there, another server): the
/// message says so, not that Loki refused old entries.
#[test]
fn a_404_from_loki_says_no_loki_answers_there() {
    let l = loki();
    let url = format!("{}/logs", l.url);
    let dir = tempfile::tempdir().unwrap();
    let out = push_small(dir.path(), &["--loki", &url, "--retries", "0"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "wrote 3 tests (16 families) to {}\n\
             error: events not pushed to Loki: POST {url}/loki/api/v1/push: the server answered \
             404 Not Found: 404 page not found; no Loki push API answers there: check --loki, \
             Loki's base URL (e.g. http://loki:3100, with any path prefix it is served under)\n",
            dir.path().join("m.prom").display()
        )
    );
}

#[test]
fn loki_rate_limit_is_retried_after_retry_after() {
    let l = server(
        Loki {
            throttle: 1,
            ..Loki::default()
        },
        loki_push,
    );
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let out = push_small(dir.path(), &["--loki", &l.url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(start.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(l.seen().len(), 2);
    assert_eq!(l.state.lock().unwrap().1.streams.len(), 3);
}

#[test]
fn loki_credentials_come_from_its_url_only_and_are_never_printed() {
    let l = loki();
    let dir = tempfile::tempdir().unwrap();
    let url = l.url.replace("http://", "http://tenant:s3cret@");
    let out = push_small(
        dir.path(),
        &[
            "--loki",
            &url,
            "--basic-auth-user",
            "gw",
            "--basic-auth-password",
            "gwpass",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // base64("tenant:s3cret")
    assert_eq!(
        l.seen()[0].header("authorization"),
        Some("Basic dGVuYW50OnMzY3JldA==")
    );
    assert!(!stderr(&out).contains("s3cret"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pushed 3 events to Loki at http://tenant:***@127.0.0.1:"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------- Elasticsearch

/// What the Elasticsearch fake keeps: documents by index and `_id`.
#[derive(Default)]
struct Es {
    docs: BTreeMap<(String, String), Value>,
    /// Refuse documents of this event kind, as a mapping conflict would.
    refuse_kind: Option<&'static str>,
    /// Answer 429 `es_rejected_execution_exception` to this many items first (a busy cluster).
    busy: usize,
}

/// Checks a request against the `_bulk` API (create actions) and answers as Elasticsearch
/// 8 does: 200 with one item per action.
fn es_bulk(req: &Req, st: &mut Es) -> (u16, Vec<(&'static str, String)>, String) {
    let json = || vec![("Content-Type", "application/json".to_string())];
    if req.method != "POST" || req.path != "/_bulk" {
        return (
            405,
            json(),
            r#"{"error":"Incorrect HTTP method","status":405}"#.into(),
        );
    }
    if req.header("content-type") != Some("application/x-ndjson") {
        return (
            406,
            json(),
            format!(
                r#"{{"error":"Content-Type header [{}] is not supported","status":406}}"#,
                req.header("content-type").unwrap_or("")
            ),
        );
    }
    let body = req.text();
    assert!(body.ends_with('\n'), "the bulk body ends with a newline");
    let lines: Vec<&str> = body[..body.len() - 1].split('\n').collect();
    assert_eq!(lines.len() % 2, 0, "action and source pairs");
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let action: Value = serde_json::from_str(pair[0]).unwrap();
        let a = action.as_object().unwrap();
        assert_eq!(a.keys().collect::<Vec<_>>(), ["create"]);
        let meta = a["create"].as_object().unwrap();
        assert_eq!(
            meta.keys().collect::<BTreeSet<_>>(),
            BTreeSet::from([&"_id".to_string(), &"_index".to_string()])
        );
        let (index, id) = (
            meta["_index"].as_str().unwrap().to_string(),
            meta["_id"].as_str().unwrap().to_string(),
        );
        let doc: Value = serde_json::from_str(pair[1]).unwrap();
        assert!(
            doc["@timestamp"].is_string(),
            "data streams need @timestamp"
        );
        let item = if st.busy > 0 {
            st.busy -= 1;
            errors = true;
            serde_json::json!({"create": {"_index": index, "_id": id, "status": 429, "error": {
                "type": "es_rejected_execution_exception",
                "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0]"}}})
        } else if st.refuse_kind.is_some_and(|k| doc["kind"] == k) {
            errors = true;
            serde_json::json!({"create": {"_index": index, "_id": id, "status": 400, "error": {
                "type": "document_parsing_exception",
                "reason": format!("[1:2] failed to parse field [kind] of type [long] in document with id '{id}'. Preview of field's value: '{}'", doc["kind"].as_str().unwrap())}}})
        } else {
            match st.docs.entry((index.clone(), id.clone())) {
                std::collections::btree_map::Entry::Occupied(_) => {
                    errors = true;
                    serde_json::json!({"create": {"_index": index, "_id": id, "status": 409, "error": {
                        "type": "version_conflict_engine_exception",
                        "reason": format!("[{id}]: version conflict, document already exists (current version [1])"),
                        "index_uuid": "Xk3", "shard": "0", "index": index}}})
                }
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(doc);
                    serde_json::json!({"create": {"_index": index, "_id": id, "_version": 1, "result": "created",
                        "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": 0, "_primary_term": 1, "status": 201}})
                }
            }
        };
        items.push(item);
    }
    let answer = serde_json::json!({"took": 3, "errors": errors, "items": items});
    (200, json(), answer.to_string())
}

#[test]
fn elasticsearch_request_body_exactly_and_resends_do_not_duplicate() {
    let es = server(Es::default(), es_bulk);
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--elasticsearch",
        es.url.as_str(),
        "--es-index",
        "logs-ptc-default",
    ];
    let out = push_small(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "indexed 3 events into Elasticsearch at {}/ index logs-ptc-default (0 already there) in 1 request(s)\n",
            es.url
        )),
        "{}",
        stderr(&out)
    );
    let seen = es.seen();
    assert_eq!(seen.len(), 1);
    let [run, failure, near] = small_events();
    let action = |id: &str| format!(r#"{{"create":{{"_index":"logs-ptc-default","_id":"{id}"}}}}"#);
    assert_eq!(
        seen[0].text(),
        format!(
            "{}\n{run}\n{}\n{failure}\n{}\n{near}\n",
            action("418cf7796595b70c4df03a706dba8bee"),
            action("c64492373ba2d3b4c30bb43ddb51bfed"),
            action("c1567db549defd7af67142d837c40455")
        )
    );
    // The same run again: every _id is there already (409), which is success.
    let out = push_small(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(3 already there) in 1 request(s)\n"),
        "{}",
        stderr(&out)
    );
    assert_eq!(es.state.lock().unwrap().1.docs.len(), 3);
}

/// A proxy or load balancer that drops the answer after Elasticsearch took the bulk request:
/// the request is sent again, its `create` actions find their `_id`s (409), and every event
/// is in the index once.
#[test]
fn elasticsearch_answer_lost_after_indexing_is_sent_again_and_counted_once() {
    let state = Arc::new(Mutex::new((0usize, Es::default())));
    let st = state.clone();
    let url = listen(move |mut s| {
        let Some(req) = read_request(&mut s) else {
            return;
        };
        let (code, headers, body) = {
            let mut g = st.lock().unwrap();
            g.0 += 1;
            let a = es_bulk(&req, &mut g.1);
            if g.0 == 1 {
                return; // indexed; the answer is lost (the connection closes)
            }
            a
        };
        answer(&mut s, code, &headers[..], &body);
    });
    let dir = tempfile::tempdir().unwrap();
    let out = push_small(
        dir.path(),
        &["--elasticsearch", &url, "--es-index", "logs-ptc-default"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "wrote 3 tests (16 families) to {}\n\
             indexed 0 events into Elasticsearch at {url}/ index logs-ptc-default (3 already \
             there) in 1 request(s)\n",
            dir.path().join("m.prom").display()
        )
    );
    let g = state.lock().unwrap();
    assert_eq!(g.0, 2, "sent once more after the lost answer");
    assert_eq!(g.1.docs.len(), 3);
}

/// A Loki (or a proxy before it) that trickles its answer a byte every 0.5 s: `--timeout`
/// bounds each attempt, the push ends with exit 3 after the metrics were written, and the hint
/// names the events.
#[test]
fn a_trickling_loki_is_bounded_by_the_timeout() {
    let url = listen(|mut s| {
        if read_request(&mut s).is_none() {
            return;
        }
        use std::io::Write;
        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            .is_err()
        {
            return;
        }
        for _ in 0..120 {
            if s.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = push_small(
        dir.path(),
        &["--loki", &url, "--timeout", "1s", "--retries", "1"],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "wrote 3 tests (16 families) to {}\n\
             error: events not pushed to Loki: POST {url}/loki/api/v1/push: timed out (no \
             complete answer within 1s) after 2 attempt(s); check the URL and that the server is \
             up\n\
             hint: add --soft-fail to keep the job green when the events cannot be delivered\n",
            dir.path().join("m.prom").display()
        )
    );
    // Two attempts of 1 s and a backoff; the bound only proves the push ends.
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    assert!(std::fs::read_to_string(dir.path().join("m.prom"))
        .unwrap()
        .contains("pytest_runs_total{branch=\"main\",job=\"pytest\",project=\"shop\"} 1"));
}

#[test]
fn elasticsearch_item_errors_are_a_failure_reported_per_item() {
    let es = server(
        Es {
            refuse_kind: Some("near_limit"),
            ..Es::default()
        },
        es_bulk,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = push_small(
        dir.path(),
        &["--elasticsearch", &es.url, "--es-index", "logs-ptc-default"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let port = es.url.rsplit(':').next().unwrap();
    assert!(
        stderr(&out).ends_with(&format!(
            "error: events not indexed into Elasticsearch: POST http://127.0.0.1:{port}/_bulk: \
             Elasticsearch refused 1 of 3 event(s): event c1567db549defd7af67142d837c40455 400 \
             document_parsing_exception: [1:2] failed to parse field [kind] of type [long] in document \
             with id 'c1567db549defd7af67142d837c40455'. Preview of field's value: 'near_limit'\n"
        )),
        "{}",
        stderr(&out)
    );
    assert!(std::fs::read_to_string(dir.path().join("m.prom"))
        .unwrap()
        .contains("pytest_runs_total{branch=\"main\",job=\"pytest\",project=\"shop\"} 1"));
    assert_eq!(es.state.lock().unwrap().1.docs.len(), 2);
}

#[test]
fn event_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (args, want) in [
        (
            vec!["--es-index", "x"],
            "error: --es-index is only used with --elasticsearch URL\n",
        ),
        (
            vec!["--elasticsearch", "http://es:9200"],
            "error: --elasticsearch needs --es-index NAME (an index or data stream, e.g. logs-ptc-default)\n",
        ),
        (
            vec!["--elasticsearch", "http://es:9200", "--es-index", "Logs"],
            "error: --es-index: \"Logs\" is not a valid index name (lower case, no spaces or \\/*?\"<>|,#:, not starting with -, _ or +)\n",
        ),
        (
            vec!["--dry-run", "--events", "-"],
            "error: --events - and --dry-run both write to stdout; give --events a file\n",
        ),
        (
            vec!["--events-all"],
            "error: --events-all needs an event destination: --events PATH|-, --loki URL or --elasticsearch URL\n",
        ),
        (
            vec!["--events", "-", "--header", "X-Scope-OrgID: a"],
            "error: --header is sent to --loki and --elasticsearch only; give one of them\n",
        ),
        (
            vec!["--loki", "loki:3100"],
            "error: --loki: \"loki:3100\" is not a URL; give http://HOST:PORT, e.g. http://loki:3100\n",
        ),
    ] {
        let out = push_small(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&out), want, "{args:?}");
    }
}

// ---------------------------------------------------------------- backfill

#[test]
fn backfill_sends_the_events_of_the_runs_it_delivers_at_their_own_time() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let pushed = dir.path().join("pushed.ndjson");
    // Two archived runs of different days, as push --archive keeps them.
    for (v, name, size) in [
        ("9.2", "junit-xunit2.xml", "size-report.json"),
        ("9.1", "junit-reruns.xml", "size-report-reruns.json"),
    ] {
        // As on GitHub Actions: commit, run id and run URL go into run.json and the events.
        let out = cli()
            .args(["push", "--project", "shop", "--branch", "main"])
            .envs([
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_SERVER_URL", "https://github.com"),
                ("GITHUB_REPOSITORY", "acme/shop"),
                ("GITHUB_RUN_ID", "4711"),
                ("GITHUB_SHA", "4f2a9c"),
                ("GITHUB_JOB", "tests"),
            ])
            .arg(fixture(v, name))
            .args(["--size-report", &fixture(v, size)])
            .arg("--textfile")
            .arg(dir.path().join("m.prom"))
            .arg("--archive")
            .arg(&archive)
            .arg("--events")
            .arg(&pushed)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let es = server(Es::default(), es_bulk);
    let l = loki();
    let events = dir.path().join("backfilled.ndjson");
    let backfill = || {
        cli()
            .arg("backfill")
            .arg(&archive)
            .arg("--openmetrics")
            .arg(dir.path().join("out.om"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--events")
            .arg(&events)
            .args(["--elasticsearch", &es.url, "--es-index", "logs-ptc-default"])
            .args(["--loki", &l.url])
            .args(["--progress", "plain"])
            .output()
            .unwrap()
    };
    let out = backfill();
    assert!(out.status.success(), "{}", stderr(&out));
    // The same events as push wrote, ids and times included: a run is one run wherever it
    // comes from (only the order of runs may differ: backfill goes by time).
    let mut want = lines(&pushed);
    let mut got = lines(&events);
    assert!(got.len() > 20);
    let times: Vec<String> = got
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["@timestamp"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
    assert_eq!(
        times.iter().collect::<BTreeSet<_>>().len(),
        2,
        "each run at its own time"
    );
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(got.iter().all(|l| l.contains(
        r#""ci_job":"tests","commit":"4f2a9c","ci_run_id":"4711","run_url":"https://github.com/acme/shop/actions/runs/4711","#
    )));
    assert_eq!(es.state.lock().unwrap().1.docs.len(), want.len());
    // Loki took every event, each stream in time order across the two runs (the fake refuses
    // an entry behind its stream's newest).
    let taken: usize = l
        .state
        .lock()
        .unwrap()
        .1
        .streams
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(taken, want.len());
    assert!(
        stderr(&out).contains(&format!("wrote {} events (", want.len())),
        "{}",
        stderr(&out)
    );
    // Delivered runs are not sent again, events included.
    let out = backfill();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lines(&events).len(), want.len());
    assert_eq!(es.seen().len(), 1);
}

#[test]
fn loki_refuses_entries_older_than_it_accepts() {
    let l = server(
        Loki {
            reject_before: Some(1_800_000_000_000_000_000),
            ..Loki::default()
        },
        loki_push,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = push_small(dir.path(), &["--loki", &l.url]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "the server answered 400 Bad Request: entry for stream '{branch=\"main\", job=\"pytest\", \
             kind=\"failure\", project=\"shop\"}' has timestamp too old: 1795703214052000001, oldest \
             acceptable timestamp is: 1800000000000000000; Loki refuses entries older than"
        ),
        "{}",
        stderr(&out)
    );
    // 400 is final: one attempt.
    assert_eq!(l.seen().len(), 1);
}

// ---------------------------------------------------------------- examples/events

/// A YAML file as JSON, by Debian's python3-yaml (as tests/examples.rs reads YAML).
fn yaml(path: &Path) -> Value {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(path)
        .output()
        .expect("python3 with python3-yaml");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn shipper_examples_read_the_events_file_with_low_cardinality_labels() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/events");
    let path = "/var/log/ptc/events.ndjson";
    let allowed = BTreeSet::from(["job", "kind", "project", "branch"]);

    let p = yaml(&dir.join("promtail.yaml"));
    let sc = &p["scrape_configs"][0];
    assert_eq!(sc["static_configs"][0]["labels"]["__path__"], path);
    let stages = sc["pipeline_stages"].as_array().unwrap();
    assert_eq!(
        stages[0]["json"]["expressions"]["timestamp"],
        "\"@timestamp\""
    );
    let labels: BTreeSet<&str> = stages[1]["labels"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(labels.is_subset(&allowed), "{labels:?}");
    assert_eq!(stages[2]["timestamp"]["source"], "timestamp");

    let f = yaml(&dir.join("filebeat.yml"));
    let input = &f["filebeat.inputs"][0];
    assert_eq!(input["paths"][0], path);
    assert_eq!(input["parsers"][0]["ndjson"]["document_id"], "event_id");
    assert_eq!(f["output.elasticsearch"]["index"], "logs-ptc-default");

    let fb = yaml(&dir.join("fluent-bit.yaml"));
    assert_eq!(fb["pipeline"]["inputs"][0]["path"], path);
    let outs = fb["pipeline"]["outputs"].as_array().unwrap();
    let loki_labels: BTreeSet<String> = outs[0]["labels"]
        .as_str()
        .unwrap()
        .split(',')
        .map(|kv| kv.split('=').next().unwrap().trim().to_string())
        .collect();
    assert!(
        loki_labels.iter().all(|l| allowed.contains(l.as_str())),
        "{loki_labels:?}"
    );
    assert_eq!(outs[1]["id_key"], "event_id");
    assert_eq!(outs[1]["write_operation"], "create");

    let v = yaml(&dir.join("vector.yaml"));
    assert_eq!(v["sources"]["ptc_events"]["include"][0], path);
    let labels: BTreeSet<&str> = v["sinks"]["loki"]["labels"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(labels.is_subset(&allowed), "{labels:?}");
    assert_eq!(v["sinks"]["elasticsearch"]["id_key"], "event_id");

    // Alloy's own syntax: the same path, and labels only from the allowed set.
    let a = std::fs::read_to_string(dir.join("alloy.alloy")).unwrap();
    assert!(a.contains(&format!("\"__path__\" = \"{path}\"")));
    let block = a
        .split("stage.labels {")
        .nth(1)
        .unwrap()
        .split('}')
        .next()
        .unwrap();
    let inner = block.split("values = {").nth(1).unwrap();
    let labels: Vec<&str> = inner
        .lines()
        .filter_map(|l| l.trim().split_once(" = "))
        .map(|(k, _)| k.trim())
        .collect();
    assert_eq!(labels, ["kind", "project", "branch"]);
}

#[test]
fn dry_run_names_the_network_sinks_and_writes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.ndjson");
    let out = cli()
        .args([
            "push",
            "--no-ci-detect",
            "--project",
            "shop",
            "--branch",
            "main",
            "--dry-run",
        ])
        .arg(small_run(dir.path()))
        .args(["--events", file.to_str().unwrap()])
        .args(["--loki", "http://u:pw@loki.invalid:3100"])
        .args([
            "--elasticsearch",
            "http://es.invalid:9200",
            "--es-index",
            "logs-ptc-default",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with(
            "wrote 3 events (1 failure, 1 near_limit, 1 run) to PATH\n\
             dry run: 3 events (1 failure, 1 near_limit, 1 run); nothing sent to Loki at \
             http://u:***@loki.invalid:3100/ or Elasticsearch at http://es.invalid:9200/\n"
                .replace("PATH", &file.display().to_string())
                .as_str()
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(lines(&file).len(), 3);
}

#[test]
fn an_unwritable_events_file_fails_after_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("no-such-dir/e.ndjson");
    let out = push_small(dir.path(), &["--events", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with(&format!(
            "error: --events {}: cannot open for appending: the directory {} does not exist; \
             create it first\n",
            bad.display(),
            dir.path().join("no-such-dir").display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(dir.path().join("m.prom").exists());
    let out = push_small(
        dir.path(),
        &["--events", bad.to_str().unwrap(), "--soft-fail"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: events not delivered (--soft-fail): --events "));
    // A directory instead of a file in it.
    let out = push_small(dir.path(), &["--events", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with(&format!(
            "error: --events {}: is a directory; give a file in it, e.g. --events {}\n",
            dir.path().display(),
            dir.path().join("events.ndjson").display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn elasticsearch_items_refused_as_too_busy_are_sent_again() {
    let es = server(
        Es {
            busy: 2,
            ..Es::default()
        },
        es_bulk,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = push_small(
        dir.path(),
        &["--elasticsearch", &es.url, "--es-index", "logs-ptc-default"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(0 already there) in 2 request(s), 2 sent again after a 429\n"),
        "{}",
        stderr(&out)
    );
    let seen = es.seen();
    assert_eq!(seen.len(), 2);
    // The second request holds exactly the two refused pairs, in order.
    let first = seen[0].text();
    let pairs: Vec<&str> = first.split_inclusive('\n').collect();
    assert_eq!(seen[1].text(), pairs[..4].concat());
    assert_eq!(es.state.lock().unwrap().1.docs.len(), 3);
    // A cluster that stays busy: the events are refused after the rounds, per item.
    let es = server(
        Es {
            busy: usize::MAX,
            ..Es::default()
        },
        es_bulk,
    );
    let out = push_small(
        dir.path(),
        &["--elasticsearch", &es.url, "--es-index", "logs-ptc-default"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Elasticsearch refused 3 of 3 event(s): event 418cf7796595b70c4df03a706dba8bee 429 es_rejected_execution_exception: rejected execution"),
        "{}",
        stderr(&out)
    );
    assert_eq!(es.seen().len(), 4, "the first request and 3 rounds");
}
