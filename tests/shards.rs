//! Shards end to end: a run split over 4 parallel jobs gives the same numbers as the run in
//! one piece, in every dashboard panel, recording rule and alert (METRICS.md §3 "Shards",
//! docs/ci-at-scale.md).
//!
//! The fixture run (`fixtures/pytest-9.2/junit-xunit2.xml` + `size-report.json`) is split here
//! by test (all elements of a test in one shard, tests dealt round-robin), into 4 valid JUnit
//! files whose `testsuite@time` is each shard's own sum and whose start times differ by a
//! second, and 4 size reports holding each shard's entries. The 4 shards are pushed by 4
//! concurrent `ptc-metrics push --shard i/4` processes to one real Pushgateway (project
//! `shards-split`; shard 1 carries the run's coverage), the unsplit run alongside (project
//! `shards-whole`), twice, and a real Prometheus with `alerts/*.rules.yml` scrapes the gateway.
//! Then every panel query of `dashboards/*.json`, every rule expression and the firing alerts
//! are compared between the two projects. They must be equal, with two exceptions the
//! contract calls for: the wall time of the sharded run is the max of its shards' times (not
//! the unsplit run's time), and push times are those of different pushes.
//!
//! The pushes of the first round reach the gateway before Prometheus starts, so every series
//! of both projects has the same sample timestamps, and `increase()` extrapolates them all
//! by the same factor: sums over shards are then exact, not merely close.
//!
//! The shards also archive their run (`push --archive`); `backfill` of the archive must keep
//! every run's shard label.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quick_xml::events::Event;
use serde_json::Value;
use support::*;

const SPLIT: &str = "shards-split";
const WHOLE: &str = "shards-whole";
const BRANCH: &str = "main";
const SHARDS: usize = 4;
/// What `$__range` and `$__rate_interval` become: longer than the whole test.
const WINDOW: &str = "10m";

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(fixture("9.2", name))
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// ---------------------------------------------------------------------------
// Splitting the fixture run
// ---------------------------------------------------------------------------

/// One `<testcase>` element: its identity and its text.
struct Case {
    classname: String,
    name: String,
    time: f64,
    xml: String,
}

/// The fixture's JUnit report taken apart: the text before the first `<testcase>` (holding
/// the `<testsuite>` start tag), the test cases, and the text after the last.
struct Junit {
    head: String,
    cases: Vec<Case>,
    tail: String,
}

fn attr_of(e: &quick_xml::events::BytesStart, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name.as_bytes())
        .map(|a| a.unescape_value().expect("attribute").into_owned())
}

fn read_junit(xml: &str) -> Junit {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut cases = Vec::new();
    let (mut first, mut last) = (None, 0);
    let mut open: Option<(usize, Case)> = None;
    let mut depth = 0usize;
    loop {
        let before = r.buffer_position() as usize;
        let ev = r.read_event().expect("fixture JUnit is valid XML");
        let after = r.buffer_position() as usize;
        match ev {
            Event::Eof => break,
            Event::Start(e) if e.name().as_ref() == b"testcase" && open.is_none() => {
                let c = Case {
                    classname: attr_of(&e, "classname").unwrap_or_default(),
                    name: attr_of(&e, "name").expect("testcase@name"),
                    time: attr_of(&e, "time").map_or(0.0, |t| t.parse().unwrap()),
                    xml: String::new(),
                };
                first.get_or_insert(before);
                open = Some((before, c));
                depth = 1;
            }
            Event::Empty(e) if e.name().as_ref() == b"testcase" && open.is_none() => {
                first.get_or_insert(before);
                cases.push(Case {
                    classname: attr_of(&e, "classname").unwrap_or_default(),
                    name: attr_of(&e, "name").expect("testcase@name"),
                    time: attr_of(&e, "time").map_or(0.0, |t| t.parse().unwrap()),
                    xml: xml[before..after].to_string(),
                });
                last = after;
            }
            Event::Start(_) if open.is_some() => depth += 1,
            Event::End(_) if open.is_some() => {
                depth -= 1;
                if depth == 0 {
                    let (start, mut c) = open.take().unwrap();
                    c.xml = xml[start..after].to_string();
                    cases.push(c);
                    last = after;
                }
            }
            _ => {}
        }
    }
    let first = first.expect("a testcase");
    Junit {
        head: xml[..first].to_string(),
        cases,
        tail: xml[last..].to_string(),
    }
}

/// `name` without pytest 9.1's trailing size label (METRICS.md §1: identity).
fn identity(c: &Case) -> (String, String) {
    let mut name = c.name.clone();
    for s in [" [SMALL]", " [MEDIUM]", " [LARGE]", " [XLARGE]"] {
        if let Some(n) = name.strip_suffix(s) {
            name = n.to_string();
        }
    }
    (c.classname.clone(), name)
}

/// The node ids a JUnit (classname, name) can stand for: `a.b.C` is `a/b.py::C`, `a/b/C.py`, …
fn node_ids(classname: &str, name: &str) -> Vec<String> {
    let parts: Vec<&str> = classname.split('.').filter(|p| !p.is_empty()).collect();
    (1..=parts.len())
        .map(|i| {
            let mut id = format!("{}.py", parts[..i].join("/"));
            for p in &parts[i..] {
                id.push_str("::");
                id.push_str(p);
            }
            format!("{id}::{name}")
        })
        .collect()
}

/// A shard's files and the numbers the test expects from it.
struct ShardFiles {
    junit: PathBuf,
    size_report: PathBuf,
    /// Its testsuite@time (sum of its test cases' times, as written).
    time: f64,
}

/// Splits the fixture run into `n` shards under `dir`. Returns the shards and the unsplit
/// run's suite time.
fn split_fixture(dir: &Path, n: usize) -> (Vec<ShardFiles>, f64) {
    let xml = read_to_string(fixture_path("junit-xunit2.xml"));
    let j = read_junit(&xml);
    assert_eq!(
        j.head.matches("<testsuite ").count(),
        1,
        "one testsuite expected"
    );
    // Tests, in order of first appearance, dealt round-robin; all elements of a test (e.g. a
    // teardown error after its call) go to its shard.
    let mut shard_of: BTreeMap<(String, String), usize> = BTreeMap::new();
    for c in &j.cases {
        let k = identity(c);
        let next = shard_of.len() % n;
        shard_of.entry(k).or_insert(next);
    }
    let report: Value =
        serde_json::from_str(&read_to_string(fixture_path("size-report.json"))).unwrap();
    let entries = report["tests"].as_array().expect("tests").clone();
    let names: BTreeSet<String> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    let mut entry_shard: BTreeMap<String, usize> = BTreeMap::new();
    for c in &j.cases {
        // The raw name: a parameter may end in what looks like a size label.
        for id in node_ids(&c.classname, &c.name) {
            if names.contains(&id) {
                entry_shard.insert(id, shard_of[&identity(c)]);
            }
        }
    }
    // Every entry found its test: the split is the run's, not a guess.
    assert_eq!(
        entry_shard.len(),
        names.len(),
        "size-report entries without a JUnit test: {:?}",
        names
            .iter()
            .filter(|n| !entry_shard.contains_key(*n))
            .collect::<Vec<_>>()
    );

    let suite_tag_start = j.head.find("<testsuite ").unwrap();
    let suite_tag_end = suite_tag_start + j.head[suite_tag_start..].find('>').unwrap();
    let suite_tag = &j.head[suite_tag_start..=suite_tag_end];
    let attr = |name: &str| -> String {
        let pat = format!(" {name}=\"");
        let i = suite_tag.find(&pat).unwrap() + pat.len();
        suite_tag[i..i + suite_tag[i..].find('"').unwrap()].to_string()
    };
    let whole_time: f64 = attr("time").parse().unwrap();
    let start = attr("timestamp");
    let start_s = ptc_metrics::read::junit::parse_timestamp(&start).expect("timestamp");

    let mut out = Vec::new();
    for s in 0..n {
        let cases: Vec<&Case> = j
            .cases
            .iter()
            .filter(|c| shard_of[&identity(c)] == s)
            .collect();
        assert!(!cases.is_empty(), "shard {} is empty", s + 1);
        let time: f64 = cases.iter().map(|c| c.time).sum();
        let time = format!("{time:.3}");
        let count = |child: &str| {
            cases
                .iter()
                .filter(|c| {
                    c.xml.contains(&format!("<{child} ")) || c.xml.contains(&format!("<{child}>"))
                })
                .count()
        };
        // The first shard starts when the run does, the others a second apart.
        let timestamp = if s == 0 {
            start.clone()
        } else {
            ptc_metrics::civil::rfc3339(((start_s + s as f64) * 1000.0).round() as i64)
        };
        let mut tag = suite_tag.to_string();
        for (k, v) in [
            ("errors", count("error").to_string()),
            ("failures", count("failure").to_string()),
            ("skipped", count("skipped").to_string()),
            ("tests", cases.len().to_string()),
            ("time", time.clone()),
            ("timestamp", timestamp),
        ] {
            let old = format!(" {k}=\"{}\"", attr(k));
            assert!(tag.contains(&old), "{old} in {tag}");
            tag = tag.replace(&old, &format!(" {k}=\"{v}\""));
        }
        let mut doc = String::new();
        doc.push_str(&j.head[..suite_tag_start]);
        doc.push_str(&tag);
        doc.push_str(&j.head[suite_tag_end + 1..]);
        for c in &cases {
            doc.push_str(&c.xml);
        }
        doc.push_str(&j.tail);
        let junit = dir.join(format!("junit-{}.xml", s + 1));
        std::fs::write(&junit, doc).unwrap();

        // The shard's size report: its own entries (ptc-metrics reads `tests` and
        // `timestamp`; the summary is the plugin's and is kept as it was).
        let mut rep = report.clone();
        rep["tests"] = Value::Array(
            entries
                .iter()
                .filter(|e| entry_shard[e["name"].as_str().unwrap()] == s)
                .cloned()
                .collect(),
        );
        let size_report = dir.join(format!("size-report-{}.json", s + 1));
        std::fs::write(&size_report, serde_json::to_vec_pretty(&rep).unwrap()).unwrap();
        out.push(ShardFiles {
            junit,
            size_report,
            time: time.parse().unwrap(),
        });
    }
    let total: usize = out
        .iter()
        .map(|s| read_junit(&read_to_string(&s.junit)).cases.len())
        .sum();
    assert_eq!(total, j.cases.len(), "every test case in exactly one shard");
    (out, whole_time)
}

// ---------------------------------------------------------------------------
// Pushing
// ---------------------------------------------------------------------------

fn push_args(gateway: &str, project: &str) -> Vec<String> {
    [
        "push",
        "--gateway",
        gateway,
        "--project",
        project,
        "--branch",
        BRANCH,
        "--label",
        "python_version=3.12",
        "--per-test-slower-than",
        "1",
        "--no-ci-detect",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Starts the 4 shard pushes and the unsplit push at once; waits for all, asserting success.
fn push_round(gateway: &str, shards: &[ShardFiles], archive: &Path, round: usize) {
    let coverage = fixture_path("coverage.xml");
    let mut children: Vec<(String, Child)> = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        let mut a = push_args(gateway, SPLIT);
        a.push(s.junit.display().to_string());
        a.extend(["--size-report".into(), s.size_report.display().to_string()]);
        a.extend(["--shard".into(), format!("{}/{SHARDS}", i + 1)]);
        a.extend(["--archive".into(), archive.display().to_string()]);
        // The shards of one CI run share its id: the run counts once in its group shard="all".
        a.extend(["--run-id".into(), format!("ci-run-{round}")]);
        if i == 0 {
            // The run's coverage comes with one shard (docs/ci-at-scale.md).
            a.extend(["--coverage".into(), coverage.display().to_string()]);
        }
        children.push((format!("shard {}", i + 1), spawn(&a)));
    }
    let mut a = push_args(gateway, WHOLE);
    a.push(fixture_path("junit-xunit2.xml").display().to_string());
    a.extend([
        "--size-report".into(),
        fixture_path("size-report.json").display().to_string(),
        "--coverage".into(),
        coverage.display().to_string(),
    ]);
    children.push(("whole run".into(), spawn(&a)));
    for (what, c) in children {
        let out = c.wait_with_output().expect("wait for ptc-metrics push");
        assert!(
            out.status.success(),
            "push of the {what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `pytest_runs_with_timing_violations_total` on the gateway: `n` small runs for both
/// projects (the split one in its group shard="all" only), nothing for the other sizes.
fn assert_runs_with_timing_violations(pg: &Pushgateway, n: f64) {
    let mut got: Vec<String> = pg
        .metric_lines("pytest_runs_with_timing_violations_total")
        .into_iter()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let project = if l.contains(SPLIT) { SPLIT } else { WHOLE };
            let shard = l
                .split("shard=\"")
                .nth(1)
                .map(|r| r[..r.find('"').unwrap()].to_string());
            let size = l
                .split("size=\"")
                .nth(1)
                .map(|r| r[..r.find('"').unwrap()].to_string());
            let value: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
            format!(
                "{project} {} {} {value}",
                shard.as_deref().unwrap_or("-"),
                size.unwrap_or_default()
            )
        })
        .collect();
    got.sort();
    let mut want = Vec::new();
    for (project, shard) in [(SPLIT, "all"), (WHOLE, "-")] {
        for size in ["large", "medium", "small", "xlarge"] {
            let v = if size == "small" { n } else { 0.0 };
            want.push(format!("{project} {shard} {size} {v}"));
        }
    }
    want.sort();
    assert_eq!(got, want);
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ptc-metrics"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ptc-metrics push")
}

// ---------------------------------------------------------------------------
// Comparing
// ---------------------------------------------------------------------------

/// A query result keyed by its labels without `project` (which tells the two runs apart).
type Answer = BTreeMap<BTreeMap<String, String>, f64>;

/// Instant-query results, split by project (only the two projects of this test).
fn by_project(samples: &[Sample]) -> (Answer, Answer, Vec<String>) {
    let (mut split, mut whole, mut problems) = (Answer::new(), Answer::new(), Vec::new());
    for s in samples {
        let mut l = s.labels.clone();
        if l.contains_key("shard") {
            problems.push(format!("a result keeps the shard label: {l:?}"));
        }
        let target = match l.remove("project").as_deref() {
            Some(SPLIT) => &mut split,
            Some(WHOLE) => &mut whole,
            _ => continue,
        };
        if target.insert(l.clone(), s.value).is_some() {
            problems.push(format!("two results with the labels {l:?}"));
        }
    }
    (split, whole, problems)
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// How the sharded run's answer must relate to the unsplit run's.
enum Want {
    /// The same labels and values.
    Equal,
    /// Wall time: the unsplit run's time there, the max of the shards' times here.
    WallTime { whole: f64, split: f64 },
    /// Times of different pushes or shards: the same labels, values within this many seconds.
    Within(f64),
}

fn want_for(expr: &str, whole_time: f64, max_shard_time: f64) -> Want {
    // Run start times: each shard has its own (a second apart here), and a split run counts
    // from its newest shard (ptc:project_last_run:timestamp_seconds, PtcPipelineStale).
    if expr.contains("push_time_seconds")
        || expr.contains("pytest_last_run_timestamp_seconds")
        || expr.contains("ptc:project_last_run:timestamp_seconds")
    {
        Want::Within(60.0)
    } else if expr.contains("ci_test_suite_duration_seconds") {
        Want::WallTime {
            whole: whole_time,
            split: max_shard_time,
        }
    } else {
        Want::Equal
    }
}

fn compare(what: &str, want: &Want, split: &Answer, whole: &Answer) -> Result<(), String> {
    if split.keys().ne(whole.keys()) {
        return Err(format!(
            "{what}: different series\n  split: {split:?}\n  whole: {whole:?}"
        ));
    }
    for (k, w) in whole {
        let s = split[k];
        let ok = match want {
            Want::Equal => close(s, *w),
            Want::WallTime {
                whole: tw,
                split: ts,
            } => close(*w, *tw) && close(s, *ts),
            Want::Within(d) => (s - w).abs() <= *d,
        };
        if !ok {
            let expected = match want {
                Want::WallTime { whole, split } => {
                    format!(" (want split {split}, whole {whole})")
                }
                _ => String::new(),
            };
            return Err(format!("{what}: {k:?}: split {s}, whole {w}{expected}"));
        }
    }
    Ok(())
}

#[test]
fn a_run_split_into_four_shards_adds_up_to_the_unsplit_run_everywhere() {
    let work = tempfile::tempdir().unwrap();
    let (shards, whole_time) = split_fixture(work.path(), SHARDS);
    let max_shard_time = shards.iter().map(|s| s.time).fold(0.0, f64::max);
    let sum_shard_time: f64 = shards.iter().map(|s| s.time).sum();
    assert!(
        max_shard_time < whole_time && (sum_shard_time - whole_time).abs() > 1e-6,
        "the wall-time check needs the max of the shards' times ({max_shard_time}) to differ \
         from the unsplit time ({whole_time})"
    );
    let archive = work.path().join("archive");

    // Round 1 before Prometheus starts: every series exists from its first scrape on.
    let pg = Pushgateway::start();
    push_round(&pg.url, &shards, &archive, 1);
    let runs = pg.metric_lines("pytest_runs_total");
    let mut groups: Vec<String> = runs
        .iter()
        .map(|l| {
            let shard = l
                .split("shard=\"")
                .nth(1)
                .map(|r| r[..r.find('"').unwrap()].to_string());
            let project = if l.contains(SPLIT) { SPLIT } else { WHOLE };
            format!("{project} {}", shard.as_deref().unwrap_or("-"))
        })
        .collect();
    groups.sort();
    let want_groups: Vec<String> = (1..=SHARDS)
        .map(|i| format!("{SPLIT} {i}/{SHARDS}"))
        .chain([format!("{WHOLE} -")])
        .collect();
    assert_eq!(groups, want_groups, "one group per shard: {runs:?}");
    // Shards 3 and 4 both have a small test over its limit: the run counts once, in the run's
    // group (shard="all"), as the unsplit run does in its own; the shard groups carry none.
    assert_runs_with_timing_violations(&pg, 1.0);

    let mut builder = Prometheus::builder().scrape(&[&pg.addr]);
    for f in [
        "alerts/ptc-metrics.rules.yml",
        "alerts/coverage-targets.rules.yml",
    ] {
        builder = builder.rule_file(Path::new(env!("CARGO_MANIFEST_DIR")).join(f));
    }
    let prom = builder.start();
    prom.wait_for(
        "pytest_runs_total == 1",
        |d| {
            d["result"]
                .as_array()
                .is_some_and(|r| r.len() == SHARDS + 1)
        },
        Duration::from_secs(30),
    );
    // Round 2: every cumulative series takes a step.
    push_round(&pg.url, &shards, &archive, 2);
    assert_runs_with_timing_violations(&pg, 2.0);
    prom.wait_for(
        "pytest_runs_total == 2",
        |d| {
            d["result"]
                .as_array()
                .is_some_and(|r| r.len() == SHARDS + 1)
        },
        Duration::from_secs(20),
    );
    // The 1 s recording rules run on the new data, and alerts get to fire.
    std::thread::sleep(Duration::from_secs(3));
    let end = now_s().floor();

    let instant = |expr: &str| -> Result<Vec<Sample>, String> {
        let (code, v) = {
            let url = format!("{}/api/v1/query", prom.url);
            let resp = http()
                .get(&url)
                .query(&[("query", expr.to_string()), ("time", end.to_string())])
                .send()
                .map_err(|e| e.to_string())?;
            let code = resp.status().as_u16();
            let v: Value = serde_json::from_str(&resp.text().unwrap_or_default())
                .map_err(|e| e.to_string())?;
            (code, v)
        };
        if code != 200 || v["status"] != "success" {
            return Err(format!("query failed ({code}): {v}"));
        }
        Ok(vector_samples(&v["data"]))
    };

    let mut failures = Vec::new();

    // Every dashboard panel query, for each project.
    let mut panels = 0;
    for (key, t) in support::grafana::targets() {
        let raw = t["expr"].as_str().unwrap_or_default();
        // Series of `ptc-metrics history` (an analysis of the archive, not of a push): no
        // push makes them; tests/dashboards.rs feeds them through `history --gateway`.
        if raw.contains("pytest_history_") {
            continue;
        }
        let mut answers = Vec::new();
        for project in [SPLIT, WHOLE] {
            let expr = support::grafana::substitute(raw, project, BRANCH, WINDOW);
            match instant(&expr) {
                Ok(s) => answers.push(s),
                Err(e) => failures.push(format!("{key}: {e}\n  {expr}")),
            }
        }
        let [split_s, whole_s] = &answers[..] else {
            continue;
        };
        // Panels without a project (the target bands) show the same for both.
        let constant = !raw.contains("$project");
        let (split, whole) = if constant {
            let a: Answer = split_s
                .iter()
                .map(|s| (s.labels.clone(), s.value))
                .collect();
            let b: Answer = whole_s
                .iter()
                .map(|s| (s.labels.clone(), s.value))
                .collect();
            (a, b)
        } else {
            let (a, _, mut p) = by_project(split_s);
            let (_, b, p2) = by_project(whole_s);
            p.extend(p2);
            for e in p {
                failures.push(format!("{key}: {e}"));
            }
            // Single-number panels (sum(), max()) carry no project label.
            let bare = |s: &[Sample]| -> Answer {
                s.iter()
                    .filter(|x| !x.labels.contains_key("project"))
                    .map(|x| (x.labels.clone(), x.value))
                    .collect()
            };
            let mut a = a;
            a.extend(bare(split_s));
            let mut b = b;
            b.extend(bare(whole_s));
            (a, b)
        };
        if whole.is_empty() {
            failures.push(format!("{key}: no data for the unsplit run"));
            continue;
        }
        let want = want_for(raw, whole_time, max_shard_time);
        if let Err(e) = compare(&key, &want, &split, &whole) {
            failures.push(e);
        }
        panels += 1;
    }
    assert!(panels >= 35, "only {panels} panel queries compared");

    // Every rule's expression, evaluated at the same instant (the 5 m trend group need not
    // have run yet), and split by project.
    let rules = prom.rules();
    let mut nonempty = BTreeSet::new();
    for g in rules["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            let name = r["name"].as_str().unwrap_or_default().to_string();
            let query = r["query"].as_str().unwrap_or_default();
            let samples = match instant(query) {
                Ok(s) => s,
                Err(e) => {
                    failures.push(format!("rule {name}: {e}"));
                    continue;
                }
            };
            // The rules about branches other than the default one: BRANCH is the default
            // branch, so also over all branches, which must have data.
            let all_branches = query.replace(
                "unless on (project, branch) ptc:pytest_default_branch:info",
                "",
            );
            if all_branches != query {
                match instant(&all_branches) {
                    Ok(s) => {
                        let (split, whole, problems) = by_project(&s);
                        failures.extend(problems.into_iter().map(|p| format!("rule {name}: {p}")));
                        if whole.is_empty() {
                            failures.push(format!("rule {name} over all branches: no data"));
                        } else {
                            nonempty.insert(format!("{name} over all branches"));
                        }
                        let want = want_for(query, whole_time, max_shard_time);
                        if let Err(e) = compare(
                            &format!("rule {name} over all branches"),
                            &want,
                            &split,
                            &whole,
                        ) {
                            failures.push(format!("{e}\n  {all_branches}"));
                        }
                    }
                    Err(e) => failures.push(format!("rule {name} over all branches: {e}")),
                }
            }
            let (split, whole, problems) = by_project(&samples);
            for p in problems {
                failures.push(format!("rule {name}: {p}"));
            }
            if !whole.is_empty() {
                nonempty.insert(name.clone());
            }
            let want = want_for(query, whole_time, max_shard_time);
            if let Err(e) = compare(&format!("rule {name}"), &want, &split, &whole) {
                failures.push(format!("{e}\n  {query}"));
            }
        }
    }
    for must in [
        "ptc:pytest_tests_sized:sum",
        "ptc:pytest_test_size_distribution:ratio",
        "ptc:pytest_test_size_distribution:band_ratio",
        "ptc:pytest_tests:sum",
        "ptc:pytest_flaky_tests:ratio",
        "ptc:coverage_target:percent",
        "ptc:project_last_run:timestamp_seconds",
        "ptc:max_push_age:seconds",
        "ptc:pytest_timing_violations:per_run_1w",
        "ptc:pytest_runs_other_branches:increase_1d over all branches",
        "ptc:pytest_runs_with_timing_violations_other_branches:ratio_1d over all branches",
        "ptc:ci_test_suite_duration_seconds:median_1d",
        "PytestFlakyRateHigh",
    ] {
        if !nonempty.contains(must) {
            failures.push(format!(
                "rule {must} has no data to compare (compared: {nonempty:?})"
            ));
        }
    }

    // The alerts Prometheus raised: the same for both projects, none per shard.
    let alerts = prom.alerts();
    let mut by: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for a in alerts["alerts"].as_array().into_iter().flatten() {
        let mut labels: BTreeMap<String, String> = a["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        if labels.contains_key("shard") {
            failures.push(format!("an alert per shard: {labels:?}"));
        }
        let p = match labels.remove("project").as_deref() {
            Some(SPLIT) => SPLIT,
            Some(WHOLE) => WHOLE,
            _ => continue,
        };
        let state = a["state"].as_str().unwrap_or_default();
        by.entry(p)
            .or_default()
            .insert(format!("{labels:?} {state}"));
    }
    let (s, w) = (
        by.get(SPLIT).cloned().unwrap_or_default(),
        by.get(WHOLE).cloned().unwrap_or_default(),
    );
    if s != w || w.is_empty() {
        failures.push(format!(
            "alerts differ (or none):\n  split: {s:?}\n  whole: {w:?}"
        ));
    }

    // push --archive kept each shard's label; backfill writes every run to its shard's group.
    let mut archived = BTreeSet::new();
    for e in std::fs::read_dir(&archive).expect("archive dir") {
        let meta: Value =
            serde_json::from_str(&read_to_string(e.unwrap().path().join("run.json"))).unwrap();
        archived.insert(
            meta["labels"]["shard"]
                .as_str()
                .unwrap_or("none")
                .to_string(),
        );
    }
    let want: BTreeSet<String> = (1..=SHARDS).map(|i| format!("{i}/{SHARDS}")).collect();
    if archived != want {
        failures.push(format!(
            "archived runs' shards: {archived:?}, want {want:?}"
        ));
    }
    let om = work.path().join("backfill.om");
    let out = Command::new(env!("CARGO_BIN_EXE_ptc-metrics"))
        .args(["backfill", &archive.display().to_string(), "--openmetrics"])
        .arg(&om)
        .output()
        .expect("run ptc-metrics backfill");
    if !out.status.success() {
        failures.push(format!(
            "backfill failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    } else {
        let text = read_to_string(&om);
        let backfilled: BTreeSet<String> = text
            .lines()
            .filter(|l| l.starts_with("pytest_runs_total{"))
            .map(|l| {
                assert!(l.contains(&format!("project=\"{SPLIT}\"")), "{l}");
                l.split("shard=\"")
                    .nth(1)
                    .map(|r| r[..r.find('"').unwrap()].to_string())
                    .unwrap_or_else(|| "none".into())
            })
            .collect();
        if backfilled != want {
            failures.push(format!(
                "backfilled runs' shards: {backfilled:?}, want {want:?}"
            ));
        }
        // The two rounds archived the same reports, so backfill reads one run (the second
        // round's are duplicates): counted once in the run's group although three of its
        // shards have small violations, the other sizes 0, no shard group carrying it.
        let counted: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("pytest_runs_with_timing_violations_total{"))
            .map(|l| {
                let shard = l
                    .split("shard=\"")
                    .nth(1)
                    .map(|r| r[..r.find('"').unwrap()].to_string())
                    .unwrap_or_else(|| "none".into());
                let size = l
                    .split("size=\"")
                    .nth(1)
                    .map(|r| r[..r.find('"').unwrap()].to_string());
                let value = l.split("} ").nth(1).and_then(|r| r.split(' ').next());
                format!(
                    "{shard} {} {}",
                    size.unwrap_or_default(),
                    value.unwrap_or_default()
                )
            })
            .collect();
        let want_counted: Vec<String> =
            ["all large 0", "all medium 0", "all small 1", "all xlarge 0"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let mut sorted = counted.clone();
        sorted.sort();
        if sorted != want_counted {
            failures.push(format!(
                "backfilled runs with timing violations: {counted:?}, want {want_counted:?}"
            ));
        }
    }

    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}\n--- prometheus log ---\n{}",
        failures.len(),
        failures.join("\n"),
        prom.log()
    );
}
