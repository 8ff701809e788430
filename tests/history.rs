//! `ptc-metrics history` end to end on a generated archive with injected patterns.
//!
//! The archive is 50 runs of one group (project shop, branch main), one hour apart, each a
//! directory with a pytest 9.2-shaped `junit.xml`, the plugin's `size-report.json` and a
//! `run.json` as `push --archive` writes it. Beside 20 stable tests it holds one test per
//! pattern of the issue, and every expected value below is computed by hand from the
//! pattern's definition in [`archive`] (the arithmetic is in the comments), never copied
//! from the tool's output. Each list must hold exactly the injected tests: nothing else.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::cli;

const RUNS: u32 = 50;
/// 2026-11-01T00:00:00Z.
const T0: i64 = 1_793_491_200;

/// One test in one run: (node id, size, outcome, duration, violations, attempts).
struct Case {
    id: &'static str,
    size: &'static str,
    outcome: &'static str,
    duration: f64,
    violations: Vec<&'static str>,
    /// A failed attempt before the final one (pytest-rerunfailures).
    rerun: bool,
}

fn case(id: &'static str, size: &'static str, outcome: &'static str, duration: f64) -> Case {
    Case {
        id,
        size,
        outcome,
        duration,
        violations: vec![],
        rerun: false,
    }
}

const STABLE: [&str; 20] = [
    "tests/test_stable.py::test_s00",
    "tests/test_stable.py::test_s01",
    "tests/test_stable.py::test_s02",
    "tests/test_stable.py::test_s03",
    "tests/test_stable.py::test_s04",
    "tests/test_stable.py::test_s05",
    "tests/test_stable.py::test_s06",
    "tests/test_stable.py::test_s07",
    "tests/test_stable.py::test_s08",
    "tests/test_stable.py::test_s09",
    "tests/test_stable.py::test_s10",
    "tests/test_stable.py::test_s11",
    "tests/test_stable.py::test_s12",
    "tests/test_stable.py::test_s13",
    "tests/test_stable.py::test_s14",
    "tests/test_stable.py::test_s15",
    "tests/test_stable.py::test_s16",
    "tests/test_stable.py::test_s17",
    "tests/test_stable.py::test_s18",
    "tests/test_stable.py::test_s19",
];

/// The commit of run `i` (1-based): run 21 re-runs run 20's commit.
fn commit(i: u32) -> String {
    let c = if i == 21 { 20 } else { i };
    format!("c{c:02}0000000000000000000000000000000000000")
}

/// The tests of run `i` (1-based).
fn tests_of(i: u32) -> Vec<Case> {
    let mut v: Vec<Case> = STABLE
        .iter()
        .enumerate()
        .map(|(k, id)| case(id, "small", "passed", 0.01 * (k as f64 + 1.0)))
        .collect();
    // Flaky on one commit: fails in run 20, passes in run 21 on the same commit.
    v.push(case(
        "tests/test_flaky.py::test_sometimes",
        "small",
        if i == 20 { "failed" } else { "passed" },
        0.05,
    ));
    // 30 % slower from run 40 on.
    v.push(case(
        "tests/test_slow.py::test_report",
        "medium",
        "passed",
        if i >= 40 { 1.3 } else { 1.0 },
    ));
    // A small test at 0.9 s over its 1 s limit in 3 of the last 5 runs (46, 48, 50).
    let near = match i {
        46 => 1.05,
        47 => 0.92,
        48 => 1.1,
        49 => 0.95,
        50 => 1.2,
        _ => 0.9,
    };
    let mut c = case("tests/test_limits.py::test_near", "small", "passed", near);
    if near > 1.0 {
        c.violations = vec!["timing"];
    }
    v.push(c);
    // Creeping up to its limit in the last 5 runs: 0.82 … 0.90.
    let creep = if i >= 46 {
        0.82 + 0.02 * f64::from(i - 46)
    } else {
        0.5
    };
    v.push(case(
        "tests/test_limits.py::test_creeping",
        "small",
        "passed",
        creep,
    ));
    // Renamed after run 30; removed after run 25.
    if i <= 30 {
        v.push(case(
            "tests/test_rename.py::test_old_name",
            "small",
            "passed",
            0.02,
        ));
    } else {
        v.push(case(
            "tests/test_rename.py::test_new_name",
            "small",
            "passed",
            0.02,
        ));
    }
    if i <= 25 {
        v.push(case(
            "tests/test_gone.py::test_removed",
            "small",
            "passed",
            0.02,
        ));
    }
    // Breaks in the newest run; broken in runs 45-49 and fixed in run 50.
    v.push(case(
        "tests/test_new.py::test_breaks",
        "small",
        if i == 50 { "failed" } else { "passed" },
        0.03,
    ));
    v.push(case(
        "tests/test_fix.py::test_repaired",
        "small",
        if (45..=49).contains(&i) {
            "failed"
        } else {
            "passed"
        },
        0.03,
    ));
    // Passes only after a rerun in runs 10 and 30.
    let mut c = case("tests/test_rerun.py::test_retry", "small", "passed", 0.04);
    c.rerun = i == 10 || i == 30;
    v.push(c);
    // Uses the network in runs 47-50 (4 of the last 5).
    let mut c = case("tests/test_net.py::test_calls_api", "small", "passed", 0.06);
    if i >= 47 {
        c.violations = vec!["hermeticity:network"];
    }
    v.push(c);
    v.push(case(
        "tests/test_skip.py::test_skipped",
        "small",
        "skipped",
        0.0,
    ));
    v
}

fn iso(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let sod = t.rem_euclid(86_400);
    // 2026-11-01 is day 20758; the archive spans three days of November.
    let day = 1 + (days - 20_758);
    format!(
        "2026-11-{day:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

/// Writes run `i` into `root/run-NN` with `project`.
fn write_run(root: &Path, i: u32, project: &str) -> PathBuf {
    let dir = root.join(format!("run-{i:02}"));
    std::fs::create_dir_all(&dir).unwrap();
    let t = T0 + i64::from(i) * 3600;
    let tests = tests_of(i);
    let suite_time = if i >= 40 { 10.3 } else { 10.0 };
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><testsuites name=\"pytest tests\"><testsuite name=\"pytest\" \
         errors=\"0\" failures=\"0\" skipped=\"0\" tests=\"{}\" time=\"{suite_time:.3}\" timestamp=\"{}\" hostname=\"ci\">",
        tests.len(),
        iso(t)
    );
    let mut json = Vec::new();
    for c in &tests {
        let (file, name) = c.id.split_once("::").unwrap();
        let class = file.trim_end_matches(".py").replace('/', ".");
        let open = format!(
            "<testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            esc(&class),
            esc(name),
            c.duration
        );
        if c.rerun {
            xml.push_str(&open);
            xml.push_str(
                "><failure message=\"AssertionError: flaky\">assert False</failure></testcase>",
            );
        }
        xml.push_str(&open);
        match c.outcome {
            "passed" => xml.push_str(" />"),
            "failed" => xml.push_str(
                "><failure message=\"AssertionError: boom\">assert 1 == 2</failure></testcase>",
            ),
            "skipped" => xml.push_str(
                "><skipped type=\"pytest.skip\" message=\"not today\">skip</skipped></testcase>",
            ),
            o => panic!("{o}"),
        }
        json.push(serde_json::json!({
            "name": c.id,
            "size": c.size,
            "duration": c.duration,
            "status": c.outcome,
            "violations": c.violations,
        }));
    }
    xml.push_str("</testsuite></testsuites>");
    std::fs::write(dir.join("junit.xml"), xml).unwrap();
    let report = serde_json::json!({
        "version": "1.2.2",
        "timestamp": iso(t + 11),
        "summary": {},
        "tests": json,
    });
    std::fs::write(dir.join("size-report.json"), report.to_string()).unwrap();
    let meta = serde_json::json!({
        "version": 1,
        "job": "pytest",
        "project": project,
        "branch": "main",
        "timestamp": iso(t),
        "commit": commit(i),
        "run_id": i.to_string(),
        "ci_provider": "github-actions",
        "files": {"junit": ["junit.xml"], "size_report": ["size-report.json"]},
    });
    std::fs::write(dir.join("run.json"), meta.to_string()).unwrap();
    dir
}

/// The 50-run archive (runs written in reverse, so that order comes from the timestamps).
fn archive() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for i in (1..=RUNS).rev() {
        write_run(d.path(), i, "shop");
    }
    d
}

fn history(args: &[&str]) -> Output {
    let mut c = cli();
    c.arg("history").args(args);
    for k in [
        "NO_COLOR",
        "COLUMNS",
        "PTC_METRICS_COLOR",
        "PTC_METRICS_WIDTH",
    ] {
        c.env_remove(k);
    }
    c.output().expect("run ptc-metrics history")
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn ids(list: &Value) -> Vec<&str> {
    list["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect()
}

fn close(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("{v} is no number"));
    assert!((got - want).abs() < 1e-9, "{got} != {want}");
}

#[test]
fn every_injected_pattern_is_found_and_nothing_else() {
    let a = archive();
    let o = history(&[
        &a.path().display().to_string(),
        "--format",
        "json",
        "--jobs",
        "2",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    let doc = json_of(&o);
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["runs_read"], 50);
    assert_eq!(doc["skipped"], serde_json::json!([]));
    let groups = doc["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(g["key"], r#"{branch="main",job="pytest",project="shop"}"#);
    assert_eq!(g["runs"], 50);
    // 50 runs, run 21 on run 20's commit.
    assert_eq!(g["commits"], 49);
    assert_eq!(g["first_run"]["run"], 1);
    assert_eq!(g["first_run"]["timestamp"], "2026-11-01T01:00:00Z");
    assert_eq!(g["newest_run"]["run"], 50);
    assert_eq!(g["newest_run"]["timestamp"], "2026-11-03T02:00:00Z");
    // 20 stable + 11 pattern tests + the renamed test's new name.
    assert_eq!(g["tests_seen"], 32);

    // Flaky across runs: only test_sometimes (failed in run 20, passed in run 21 on commit
    // c20). Its flips: passed → failed in run 20, failed → passed in run 21: 2 of 49
    // transitions between its 50 pass/fail observations. test_repaired (broken 45-49,
    // fixed in 50) and test_breaks flip 2 and 1 times: a break, not a flake (< 3 flips).
    let flaky = &g["flaky"];
    assert_eq!(flaky["total"], 1);
    assert_eq!(ids(flaky), ["tests/test_flaky.py::test_sometimes"]);
    let f = &flaky["tests"][0];
    assert_eq!(f["flips"], 2);
    assert_eq!(f["observations"], 50);
    close(&f["flip_rate"], 2.0 / 49.0);
    assert_eq!(f["same_commit"].as_array().unwrap().len(), 1);
    assert_eq!(f["same_commit_failures"], 1);
    assert_eq!(f["same_commit"][0]["commit"], commit(20));
    assert_eq!(f["same_commit"][0]["failed"]["run"], 20);
    assert_eq!(f["same_commit"][0]["passed"]["run"], 21);
    let flip_runs: Vec<u64> = f["flip_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"].as_u64().unwrap())
        .collect();
    assert_eq!(flip_runs, [20, 21]);
    assert_eq!(g["flaky"]["by_size"]["small"], 1);

    // Reruns within a run, apart: test_retry in runs 10 and 30.
    assert_eq!(ids(&g["rerun_flaky"]), ["tests/test_rerun.py::test_retry"]);
    assert_eq!(g["rerun_flaky"]["tests"][0]["runs"], 2);

    // Slower than its baseline (last 5 against up to 20 before, > 20 %):
    // * test_report: its durations in runs 26-45 are 14 × 1.0 (26-39) and 6 × 1.3 (40-45),
    //   median (10th + 11th of 20) = 1.0; runs 46-50 all 1.3: ×1.3 > ×1.2. It moved at run
    //   40: the newest unbroken stretch above 1.0 × 1.2 starts there.
    // * test_creeping: baseline 20 × 0.5 → 0.5; recent 0.82 0.84 0.86 0.88 0.90 → 0.86;
    //   ratio 1.72, moved at run 46.
    // test_near: baseline 0.9, recent 1.05 0.92 1.1 0.95 1.2 → median 1.05 < 0.9 × 1.2
    // = 1.08: not slower.
    let slower = &g["slower"];
    assert_eq!(
        ids(slower),
        [
            "tests/test_limits.py::test_creeping",
            "tests/test_slow.py::test_report"
        ]
    );
    let c = &slower["tests"][0];
    close(&c["baseline_median"], 0.5);
    close(&c["recent_median"], 0.86);
    close(&c["ratio"], 0.86 / 0.5);
    assert_eq!(c["moved_at"]["run"], 46);
    let s = &slower["tests"][1];
    assert_eq!(s["size"], "medium");
    close(&s["baseline_median"], 1.0);
    close(&s["recent_median"], 1.3);
    close(&s["ratio"], 1.3);
    assert_eq!(s["baseline_runs"], 20);
    assert_eq!(s["recent_runs"], 5);
    assert_eq!(s["moved_at"]["run"], 40);
    assert_eq!(s["moved_at"]["commit"], commit(40));
    assert_eq!(s["moved_at"]["timestamp"], "2026-11-02T16:00:00Z");
    assert!(s["moved_at"]["dir"].as_str().unwrap().ends_with("run-40"));

    // What drove the suite time: every test whose recent median rose: creeping +0.36,
    // report +0.3, near +0.15 (1.05 − 0.9).
    let d = &g["drivers"];
    assert_eq!(
        ids(d),
        [
            "tests/test_limits.py::test_creeping",
            "tests/test_slow.py::test_report",
            "tests/test_limits.py::test_near"
        ]
    );
    close(&d["tests"][0]["increase_seconds"], 0.36);
    close(&d["tests"][1]["increase_seconds"], 0.3);
    close(&d["tests"][2]["increase_seconds"], 0.15);

    // Chronic: test_near over its limit in runs 46, 48, 50: 3 of the last 5.
    let ch = &g["chronic_violations"];
    assert_eq!(ids(ch), ["tests/test_limits.py::test_near"]);
    let n = &ch["tests"][0];
    assert_eq!(
        (n["runs"].as_u64(), n["of_runs"].as_u64()),
        (Some(3), Some(5))
    );
    close(&n["newest_duration"], 1.2);
    close(&n["max_duration"], 1.2);
    close(&n["limit"], 1.0);

    // Near the limit and rising: test_creeping (0.9 ≥ 0.8 × 1 s in run 50, slope 0.02 a run).
    // test_near is near its limit too, but already chronic.
    let nr = &g["near_limit_rising"];
    assert_eq!(ids(nr), ["tests/test_limits.py::test_creeping"]);
    close(&nr["tests"][0]["slope_per_run"], 0.02);
    assert_eq!(nr["tests"][0]["durations"].as_array().unwrap().len(), 5);

    // Hermeticity: test_calls_api used the network in runs 47-50: 4 of the last 5.
    let h = &g["hermeticity_persistent"];
    assert_eq!(ids(h), ["tests/test_net.py::test_calls_api"]);
    assert_eq!(h["tests"][0]["runs"], 4);
    assert_eq!(
        h["tests"][0]["resources"],
        serde_json::json!({"network": 1})
    );

    // New failures and fixed: run 50 against run 49.
    assert_eq!(ids(&g["new_failures"]), ["tests/test_new.py::test_breaks"]);
    assert_eq!(ids(&g["fixed"]), ["tests/test_fix.py::test_repaired"]);

    // Renamed and removed tests: gone from the newest run, and the new name added. They are
    // in no other list.
    assert_eq!(ids(&g["added"]), ["tests/test_rename.py::test_new_name"]);
    assert_eq!(g["added"]["tests"][0]["first_seen"]["run"], 31);
    assert_eq!(
        ids(&g["removed"]),
        [
            "tests/test_gone.py::test_removed",
            "tests/test_rename.py::test_old_name"
        ]
    );
    assert_eq!(g["removed"]["tests"][0]["last_seen"]["run"], 25);
    assert_eq!(g["removed"]["tests"][1]["last_seen"]["run"], 30);

    // Suite: 50 durations; last 5 (10.3) against runs 26-45 (14 × 10.0, 6 × 10.3 → 10.0).
    let suite = &g["suite"];
    assert_eq!(suite["durations"].as_array().unwrap().len(), 50);
    close(&suite["durations"][0]["seconds"], 10.0);
    close(&suite["durations"][49]["seconds"], 10.3);
    close(&suite["recent_median"], 10.3);
    close(&suite["baseline_median"], 10.0);
    // Run 1: 20 stable + sometimes, near, creeping, old_name, removed, breaks, repaired,
    // retry, calls_api, skipped = 30 small, report medium. Run 50: without old_name and
    // removed, with new_name: 29 small.
    assert_eq!(
        suite["sizes_first"],
        serde_json::json!({"small": 30, "medium": 1, "large": 0, "xlarge": 0})
    );
    assert_eq!(
        suite["sizes_newest"],
        serde_json::json!({"small": 29, "medium": 1, "large": 0, "xlarge": 0})
    );
    assert_eq!(suite["durations"][0]["tests"], 31);
    // Run 26: test_removed is gone (after run 25), test_old_name still there (until 30).
    assert_eq!(
        suite["durations"][25]["by_size"],
        serde_json::json!({"small": 29, "medium": 1, "large": 0, "xlarge": 0})
    );
}

/// Writes the archive to `$PTC_HISTORY_DUMP` (for looking at the report by hand); does
/// nothing without it.
#[test]
fn dump_archive_for_review() {
    if let Some(d) = std::env::var_os("PTC_HISTORY_DUMP") {
        for i in 1..=RUNS {
            write_run(Path::new(&d), i, "shop");
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The terminal report of the archive at 100 columns, without colour. Every line was checked
/// by hand against the JSON values asserted above (same numbers, rounded by `secs`: 860.0ms,
/// +72% = 0.86 / 0.5, 4.1% = 2 / 49, …) and against `inspect`'s layout rules (title: rest,
/// dimmed column heads, two-space gutters, ids last).
#[test]
fn the_terminal_report_matches_its_snapshot_and_fits_any_width() {
    let a = archive();
    let dir = a.path().display().to_string();
    let o = history(&[&dir, "--width", "100", "--color", "never"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let want = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/history.txt"),
    )
    .unwrap();
    let got = text(&o.stdout);
    if got != want {
        for (k, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            if g != w {
                panic!("line {}:\n got: {g}\nwant: {w}", k + 1);
            }
        }
        panic!("lengths differ:\n{got}");
    }
    for w in [60usize, 72, 132] {
        let o = history(&[&dir, "--width", &w.to_string(), "--top", "1"]);
        let out = text(&o.stdout);
        for l in out.lines() {
            assert!(l.chars().count() <= w, "{w}: {l:?}");
        }
        // --top 1 cuts the lists of two or more and says so.
        assert!(out.contains("1 more tests not shown (--top 1)"), "{out}");
    }
    // Colour only when asked for (or on a terminal without NO_COLOR): the slowdown in red.
    let o = history(&[&dir, "--color", "always"]);
    assert!(text(&o.stdout).contains("\x1b[31m  +30%\x1b[0m"));
    let o = history(&[&dir]);
    assert!(!text(&o.stdout).contains('\x1b'));
}

#[test]
fn last_since_and_branch_choose_the_runs() {
    let a = archive();
    let dir = a.path().display().to_string();
    let g = |args: &[&str]| {
        let mut v = vec![dir.as_str(), "--format", "json"];
        v.extend_from_slice(args);
        let o = history(&v);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        json_of(&o)
    };
    let d = g(&["--last", "10"]);
    assert_eq!(d["runs_read"], 10);
    assert_eq!(
        d["groups"][0]["first_run"]["timestamp"],
        "2026-11-02T17:00:00Z"
    );
    assert_eq!(d["groups"][0]["first_run"]["run"], 1);
    // Runs 41-50 only: test_repaired broke at run 45 (5th of the window) and was fixed in
    // run 50 of the archive; test_breaks broke in the newest.
    assert_eq!(
        ids(&d["groups"][0]["fixed"]),
        ["tests/test_fix.py::test_repaired"]
    );
    // Since run 40's start, until run 45's: runs 40-44.
    let d = g(&[
        "--since",
        "2026-11-02T16:00:00Z",
        "--until",
        "2026-11-02T21:00:00Z",
    ]);
    assert_eq!(d["runs_read"], 5);
    assert_eq!(
        d["groups"][0]["newest_run"]["timestamp"],
        "2026-11-02T20:00:00Z"
    );
    let d = g(&["--branch", "release"]);
    assert_eq!(d["runs_read"], 0);
    assert_eq!(d["groups"], serde_json::json!([]));
    let o = history(&[&dir, "--branch", "release"]);
    assert_eq!(
        text(&o.stdout),
        "History: 0 runs in 0 groups\nNo runs in the window.\n"
    );
    // A date alone, the usual slip: the message gives the time to write.
    let o = history(&[&dir, "--since", "2026-11-02"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        "error: --since: \"2026-11-02\" is a date without a time; write 2026-11-02T00:00:00Z (UTC)\n"
    );
}

/// A run without run.json, one with a truncated report and one of another project are
/// skipped by name, with exit 4; the report is made of the others.
#[test]
fn bad_runs_are_skipped_with_a_warning_and_exit_4() {
    let a = archive();
    let root = a.path();
    // No run.json.
    let no_meta = write_run(root, 60, "shop");
    std::fs::remove_file(no_meta.join("run.json")).unwrap();
    // A report cut off in the middle.
    let cut = write_run(root, 61, "shop");
    let xml = std::fs::read_to_string(cut.join("junit.xml")).unwrap();
    std::fs::write(cut.join("junit.xml"), &xml[..xml.len() / 2]).unwrap();
    // Another project's run.
    let other = write_run(root, 62, "elsewhere");
    let dir = root.display().to_string();
    let o = history(&[&dir, "--project", "shop", "--format", "json"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "warning: skipped {}: has no run.json: history needs each run's time and commit \
             (archive runs with `ptc-metrics push --archive DIR`)",
            no_meta.display()
        )
    );
    // The reader's own message, naming file:line:column (the column depends on the cut).
    let prefix = format!(
        "warning: skipped {}: {}:1:",
        cut.display(),
        cut.join("junit.xml").display()
    );
    assert!(lines[1].starts_with(&prefix), "{}", lines[1]);
    assert!(
        lines[1].ends_with(
            ": malformed XML: syntax error: tag not closed: `>` not found before end of input"
        ),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[2],
        format!(
            "warning: skipped {}: is a run of project \"elsewhere\", not \"shop\" (--project); \
             keep each project's runs in its own archive",
            other.display()
        )
    );
    assert_eq!(
        lines[3],
        "error: 3 run(s) were skipped (see the warnings above); the report leaves them out"
    );
    assert_eq!(lines.len(), 4);
    let doc = json_of(&o);
    assert_eq!(doc["runs_read"], 50);
    assert_eq!(doc["groups"][0]["runs"], 50);
    assert_eq!(doc["skipped"].as_array().unwrap().len(), 3);
    assert_eq!(doc["skipped"][2]["dir"], other.display().to_string());
}

/// Copies of runs (a second archive holding some of the same run directories) are counted
/// once: the report equals the one of the archive alone, the copies are named on stderr and
/// listed in `duplicates`, and they take no place of `--last`. A run with the same start and
/// commit but other report content is a run of its own.
#[test]
fn copies_of_runs_are_counted_once() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    for i in 1..=RUNS {
        write_run(&a, i, "shop");
    }
    for i in [48, 49, 50] {
        write_run(&b, i, "shop");
    }
    let (a_s, b_s) = (a.display().to_string(), b.display().to_string());
    let alone = history(&[&a_s, "--format", "json"]);
    assert_eq!(alone.status.code(), Some(0), "{}", text(&alone.stderr));
    let both = history(&[&a_s, &b_s, "--format", "json"]);
    assert_eq!(both.status.code(), Some(0), "{}", text(&both.stderr));
    let note = |i: u32| {
        format!(
            "note: {}/run-{i:02} holds the same JUnit report(s) as {}/run-{i:02}; it is counted once\n",
            b.display(),
            a.display()
        )
    };
    assert_eq!(
        text(&both.stderr),
        format!("{}{}{}", note(48), note(49), note(50))
    );
    let (mut doc, want) = (json_of(&both), json_of(&alone));
    assert_eq!(want["duplicates"], serde_json::json!([]));
    let dups = doc["duplicates"].take();
    assert_eq!(
        dups,
        serde_json::json!([48, 49, 50]
            .iter()
            .map(|i| serde_json::json!({
                "dir": format!("{}/run-{i:02}", b.display()),
                "same_as": format!("{}/run-{i:02}", a.display()),
            }))
            .collect::<Vec<_>>())
    );
    doc["duplicates"] = serde_json::json!([]);
    assert_eq!(doc, want);
    // --last: the copies take no place.
    let last = |srcs: &[&str]| {
        let mut args = srcs.to_vec();
        args.extend(["--last", "5", "--format", "json"]);
        let mut d = json_of(&history(&args));
        d["duplicates"] = serde_json::json!([]);
        d
    };
    let l = last(&[&a_s, &b_s]);
    assert_eq!(l["groups"][0]["runs"], 5);
    assert_eq!(l, last(&[&a_s]));
    // The text report says so on its first line.
    let o = history(&[&a_s, &b_s, "--width", "100"]);
    assert!(
        text(&o.stdout).starts_with("History: 50 runs in 1 group, 3 copies of runs ignored\n"),
        "{}",
        text(&o.stdout)
    );
    // The same start and commit with other content (here one more byte) is another run.
    let c = root.path().join("c");
    let other = write_run(&c, 30, "shop");
    let mut xml = std::fs::read(other.join("junit.xml")).unwrap();
    xml.push(b'\n');
    std::fs::write(other.join("junit.xml"), xml).unwrap();
    let c_s = c.display().to_string();
    let o = history(&[&a_s, &c_s, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "");
    assert_eq!(json_of(&o)["runs_read"], 51);
}

/// `--textfile` and `--gateway`: counts per group and size, and per-test series within
/// `--max-per-test-series`; the file passes `promtool check metrics`, the gateway (a real
/// Pushgateway) holds the group under job "ptc_history". Values from the patterns: one
/// flaky test (small), slower test_creeping (small) and test_report (medium), one chronic,
/// one hermeticity, one new failure, one rerun-flaky; flip rate 2/49, ratios 1.72 and 1.3.
#[test]
fn history_metrics_go_to_a_textfile_and_a_pushgateway_within_the_per_test_cap() {
    let a = archive();
    let dir = a.path().display().to_string();
    let out = tempfile::tempdir().unwrap();
    let prom = out.path().join("history.prom");
    let gw = support::Pushgateway::start();
    let o = history(&[
        &dir,
        "--textfile",
        &prom.display().to_string(),
        "--gateway",
        &gw.url,
        "--max-per-test-series",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let body = std::fs::read_to_string(&prom).unwrap();
    support::promtool_check_metrics(&body);
    let series: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
    let g = r#"branch="main",project="shop""#;
    let sized = |name: &str, small: u32, medium: u32| {
        [
            format!(r#"{name}{{{g},size="large"}} 0"#),
            format!(r#"{name}{{{g},size="medium"}} {medium}"#),
            format!(r#"{name}{{{g},size="small"}} {small}"#),
            format!(r#"{name}{{{g},size="xlarge"}} 0"#),
        ]
    };
    let mut want: Vec<String> = Vec::new();
    want.extend(sized("pytest_history_chronic_violations", 1, 0));
    want.extend(sized("pytest_history_flaky_tests", 1, 0));
    // Run 50 started at 2026-11-01T00:00:00Z + 50 h.
    want.push(format!(
        "pytest_history_last_run_timestamp_seconds{{{g}}} 1793671200"
    ));
    want.extend(sized("pytest_history_new_failures", 1, 0));
    want.extend(sized(
        "pytest_history_persistent_hermeticity_violations",
        1,
        0,
    ));
    want.extend(sized("pytest_history_rerun_flaky_tests", 1, 0));
    want.push(format!("pytest_history_runs{{{g}}} 50"));
    want.extend(sized("pytest_history_slower_tests", 1, 1));
    // The cap of 2: the flaky test's flip rate, then the slowest slowdown (test_report's
    // 1.3 is left out).
    want.push(format!(
        r#"pytest_history_test_flip_rate{{{g},size="small",test="tests/test_flaky.py::test_sometimes"}} {}"#,
        2.0f64 / 49.0
    ));
    want.push(format!(
        r#"pytest_history_test_slowdown_ratio{{{g},size="small",test="tests/test_limits.py::test_creeping"}} 1.72"#
    ));
    // Run 50: 29 small tests, 1 medium.
    want.extend(sized("pytest_history_tests", 29, 1));
    assert_eq!(series, want);

    // The gateway: the same series in group job="ptc_history", project="shop", branch="main".
    let runs = gw.metric_lines("pytest_history_runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(
        runs[0].contains(r#"job="ptc_history""#)
            && runs[0].contains(r#"project="shop""#)
            && runs[0].ends_with(" 50"),
        "{}",
        runs[0]
    );
    assert_eq!(gw.metric_lines("pytest_history_test_flip_rate").len(), 1);
    assert_eq!(
        gw.metric_lines("pytest_history_test_slowdown_ratio").len(),
        1
    );
    // The report itself is still cut at --top (10), the per-test lists only at the cap.
    let o = history(&[
        &dir,
        "--format",
        "json",
        "--top",
        "1",
        "--textfile",
        &prom.display().to_string(),
    ]);
    let d = json_of(&o);
    assert_eq!(
        d["groups"][0]["slower"]["tests"].as_array().unwrap().len(),
        1
    );
    let body = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(
        body.matches("pytest_history_test_slowdown_ratio{").count(),
        2
    );
}

/// A gateway that cannot be reached: the report is printed all the same, exit 3 naming the
/// URL; with --soft-fail a warning and exit 0.
#[test]
fn an_unreachable_gateway_is_exit_3_after_the_report_or_a_warning_with_soft_fail() {
    let a = archive();
    let dir = a.path().display().to_string();
    let url = format!("http://127.0.0.1:{}", support::free_port());
    let o = history(&[
        &dir,
        "--gateway",
        &url,
        "--retries",
        "0",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(json_of(&o)["runs_read"], 50);
    let err = text(&o.stderr);
    assert!(
        err.starts_with(&format!(
            "error: PUT {url}/metrics/job/ptc_history/project/shop/branch/main: cannot connect ("
        )),
        "{err}"
    );
    assert!(
        err.ends_with(
            ") after 1 attempt(s); check the URL and that the server is up\n\
             hint: add --soft-fail to keep the job green when the history metrics cannot be \
             delivered\n"
        ),
        "{err}"
    );
    let o = history(&[&dir, "--gateway", &url, "--retries", "0", "--soft-fail"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stderr).starts_with(&format!(
        "warning: history metrics not delivered (--soft-fail): PUT {url}/metrics/job/ptc_history/"
    )));
    assert!(text(&o.stdout).starts_with("History: 50 runs in 1 group\n"));
}

/// The real archive (fixtures/history-archive, built by fixtures/generate-history.sh): the
/// sample suite run 14 times with real pytest 9.2 and pytest-test-categories 1.2.2, each run
/// archived by `push --archive`. What must be found, from the script's design and
/// fixtures/EXPECTED.md (primary run: timing violations small 3, baseline small 1, flaky
/// small 1), and nothing else:
/// * flaky across runs: only test_history_flaky (failed in run 6, passed in run 7 on the same
///   commit): 2 flips in 13 transitions;
/// * slower: only test_history_gets_slower (0.5 s spin, 0.8 s from run 9 on): baseline runs
///   1-9 (median of 8 × 0.5 and 1 × 0.8), recent runs 10-14, moved at run 9;
/// * chronic: the 3 timing-violating tests and the 1 baseline-violating test of
///   tests/test_slow.py, in all of the last 5 runs;
/// * rerun-flaky: test_second_attempt_succeeds (@flaky(reruns=2)), in all 14 runs;
/// * no new failures, nothing fixed, no test added or gone.
#[test]
fn the_real_archive_of_the_sample_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/history-archive");
    let o = history(&[
        &dir.display().to_string(),
        "--format",
        "json",
        "--top",
        "50",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let d = json_of(&o);
    let g = &d["groups"][0];
    assert_eq!(d["groups"].as_array().unwrap().len(), 1);
    assert_eq!(
        g["key"],
        r#"{branch="main",ci_job="tests",job="pytest",project="ptc-metrics/sample"}"#
    );
    assert_eq!(
        (g["runs"].as_u64(), g["commits"].as_u64()),
        (Some(14), Some(13))
    );
    assert_eq!(
        ids(&g["flaky"]),
        ["extra/test_history.py::test_history_flaky"]
    );
    let f = &g["flaky"]["tests"][0];
    assert_eq!(
        (f["flips"].as_u64(), f["observations"].as_u64()),
        (Some(2), Some(14))
    );
    assert_eq!(f["same_commit"][0]["failed"]["run"], 6);
    assert_eq!(f["same_commit"][0]["passed"]["run"], 7);
    assert_eq!(
        ids(&g["slower"]),
        ["extra/test_history.py::test_history_gets_slower"]
    );
    let s = &g["slower"]["tests"][0];
    assert_eq!(s["moved_at"]["run"], 9);
    assert_eq!(
        (s["baseline_runs"].as_u64(), s["recent_runs"].as_u64()),
        (Some(9), Some(5))
    );
    // Real durations: the spin is exact to a few ms.
    let (b, r) = (
        s["baseline_median"].as_f64().unwrap(),
        s["recent_median"].as_f64().unwrap(),
    );
    assert!(
        (0.5..0.52).contains(&b) && (0.8..0.82).contains(&r),
        "{b} {r}"
    );
    assert_eq!(
        ids(&g["chronic_violations"]),
        [
            "tests/test_slow.py::test_sleep_past_limit_fails",
            "tests/test_slow.py::test_slow_expected_failure",
            "tests/test_slow.py::test_spin_past_limit_passes",
            "tests/test_slow.py::test_over_tight_baseline",
        ]
    );
    for c in g["chronic_violations"]["tests"].as_array().unwrap() {
        assert_eq!(
            (c["runs"].as_u64(), c["of_runs"].as_u64()),
            (Some(5), Some(5))
        );
    }
    assert_eq!(
        ids(&g["rerun_flaky"]),
        ["tests/test_retry.py::test_second_attempt_succeeds"]
    );
    assert_eq!(g["rerun_flaky"]["tests"][0]["runs"], 14);
    for empty in [
        "near_limit_rising",
        "hermeticity_persistent",
        "new_failures",
        "fixed",
        "added",
        "removed",
    ] {
        assert_eq!(g[empty]["total"], 0, "{empty}: {}", g[empty]);
    }
    assert_eq!(g["suite"]["sizes_newest"]["small"], 69);
}
