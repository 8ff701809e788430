//! `ptc-metrics inspect` end to end, on the committed fixtures of both pytest versions.
//!
//! * The terminal report against snapshots in `tests/snapshots/` (plain, fixed width). Every
//!   line of each snapshot was checked by hand before it was committed, see the comment on
//!   each snapshot test for what was checked against what. On a mismatch the test prints a
//!   line diff; `PTC_UPDATE_SNAPSHOTS=1` writes the new output next to the snapshot as
//!   `<name>.new` for review (it never overwrites a snapshot).
//! * The JSON document against numbers written by hand from `fixtures/EXPECTED.md` (and
//!   the sample suite's design), never copied from this tool's output.
//! * Width, colour, `NO_COLOR`, `COLUMNS`, escaping of hostile ids, a closed stdout, and a
//!   generated run with 100 000 tests (bounded output).

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::Value;
use support::{cli, coverage_py, fixture};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = cli();
    c.arg("inspect").args(args);
    for k in [
        "NO_COLOR",
        "COLUMNS",
        "PTC_METRICS_COLOR",
        "PTC_METRICS_WIDTH",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run ptc-metrics inspect")
}

fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).expect("UTF-8 output")
}

fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    let text = ok(&run(&a, &[]));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

// ---------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------

fn snapshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("snapshots")
        .join(name)
}

/// Compares with the committed snapshot; on a mismatch panics with a line diff.
fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshot_path(name);
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected == actual {
        return;
    }
    if std::env::var_os("PTC_UPDATE_SNAPSHOTS").is_some() {
        let new = path.with_extension("txt.new");
        std::fs::write(&new, actual).unwrap();
        eprintln!("wrote {} for review", new.display());
    }
    panic!(
        "inspect output differs from {} (- snapshot, + actual):\n{}",
        path.display(),
        diff(&expected, actual)
    );
}

/// A line diff (longest common subsequence), with a line of context around each change.
fn diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let near = |k: usize| {
        ops[k.saturating_sub(1)..(k + 2).min(ops.len())]
            .iter()
            .any(|o| o.0 != ' ')
    };
    let mut out = String::new();
    for (k, (op, line)) in ops.iter().enumerate() {
        if *op != ' ' || near(k) {
            out.push_str(&format!("{op} {line}\n"));
        }
    }
    out
}

/// pytest 9.2 primary run, with its size report and coverage, 100 columns, default --top.
///
/// Checked by hand, line by line:
/// * 90 tests, 93 elements, the small/medium/large/xlarge/unsized rows and the total row:
///   EXPECTED.md "Primary run" (unsized = 5 unsized + the collection entry: 4 1 0 0 1).
/// * start 14:26:54 UTC and 4.905 s: `testsuite@timestamp`/`@time` of junit-xunit2.xml.
/// * 84 sized, 80.95 / 14.29 / 2.38 / 2.38 %, large+xlarge 4.76 %: EXPECTED.md and README.md;
///   bands 75-85, 10-20, 2-8: the plugin's. Bars at 40 cells: 32, 6, 1, 1, 2 filled
///   (round(pct × 0.4), at least 1), band cells 30-33, 4-7, 1-2 shown as `-` where unfilled.
/// * failure types 14/3/0/4: 18 failed = TC006 ×2 + TC008 + the slow xfail (timing) + 14.
/// * timing violations: the spin, sleep and slow-xfail tests (EXPECTED.md "Per-test
///   design"), durations from size-report.json (1.10149, 1.10079, 1.10036 s), most over first.
/// * baseline: test_over_tight_baseline 0.10042 s; flaky: test_second_attempt_succeeds,
///   1 rerun element; near limit: none (JSON call durations, the slow setup is not counted).
/// * slowest: the size report's durations sorted by hand (test_setup_explodes has `null`
///   there, so its JUnit time 0.001 s is used); 58 = 68 - 10 and 2 = 12 - 10 not shown.
/// * coverage 47 of 55 = 85.45 %, 8 uncovered: money.py 5, journal.py 3 (coverage-report.txt).
/// * module src.ledgerkit (the XML's one `<package name>`, all three files): 47 of 55 = 85.45 %.
/// * the unsized `test_unsized_param[tail [LARGE]` is listed whole: its ` [LARGE]` closes its
///   parameter id and is no label.
#[test]
fn snapshot_primary_run_9_2() {
    let out = ok(&run(
        &[
            &fixture("9.2", "junit-xunit2.xml"),
            "--size-report",
            &fixture("9.2", "size-report.json"),
            "--coverage",
            &fixture("9.2", "coverage.xml"),
            "--color",
            "never",
            "--width",
            "100",
        ],
        &[],
    ));
    assert_snapshot("inspect-primary-9.2.txt", &out);
}

/// pytest 9.1 warn-mode enforcement run, 80 columns, `--top 3`.
///
/// Checked by hand: counts as the primary run (EXPECTED.md: warn mode changes no outcome);
/// 14:25:27 UTC and 5.038 s from the file's testsuite; durations from
/// size-report-enforcement-warn.json; 10 hermeticity records in 9 tests, network 2,
/// filesystem 1, process 2, database 1, sleep 4 (EXPECTED.md "Hermeticity"), the process test
/// first with 2 records, then 1-record tests by id; "6 more" = 9 - 3; ids cut in the middle
/// to the 44/49 columns left at width 80; 65 = 68 - 3, 9 = 12 - 3, 3 = 6 - 3.
#[test]
fn snapshot_enforcement_warn_9_1_narrow() {
    let out = ok(&run(
        &[
            &fixture("9.1", "junit-enforcement-warn.xml"),
            "--size-report",
            &fixture("9.1", "size-report-enforcement-warn.json"),
            "--color",
            "never",
            "--width",
            "80",
            "--top",
            "3",
        ],
        &[],
    ));
    assert_snapshot("inspect-enforcement-warn-9.1.txt", &out);
}

/// pytest 9.2 JUnit alone (no size report), 60 columns, `--top 3`.
///
/// Checked by hand: only the `Category: SMALL` lines of the TC006 ×2 and TC008 failures
/// size tests: 3 small (all failed), 87 unknown (derive/fixture_tests.rs; the unsized
/// `test_unsized_param[tail [LARGE]` carries no label); so there is no distribution (3 of 90
/// tests do not describe the run; it used to show 100 % small, outside all three bands), and
/// the warning says why; without the JSON the slow xfail is an assertion failure (15) and
/// only 2 timing violations are visible; JUnit times include setup (slow_fixture_fast_body
/// 1.101 s); the flaky test is unknown-sized; the "no size source" warning is said once.
#[test]
fn snapshot_no_size_source_9_2_minimum_width() {
    let out = ok(&run(
        &[
            &fixture("9.2", "junit-xunit2.xml"),
            "--color",
            "never",
            "--width",
            "60",
            "--top",
            "3",
        ],
        &[],
    ));
    assert_snapshot("inspect-no-size-source-9.2.txt", &out);
}

// ---------------------------------------------------------------------------------------
// JSON: hand-written expectations
// ---------------------------------------------------------------------------------------

fn ids(list: &Value) -> BTreeSet<String> {
    list["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let id = t["id"].as_str().unwrap();
            id.rsplit("::").next().unwrap().to_string()
        })
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn row(v: &Value, size: &str) -> [u64; 6] {
    let r = &v["outcomes"]["by_size"][size];
    ["passed", "failed", "error", "xfailed", "skipped", "total"]
        .map(|k| r[k].as_u64().unwrap_or_else(|| panic!("{size}.{k} in {r}")))
}

#[test]
fn json_primary_run_matches_expected_md() {
    for v in ["9.2", "9.1"] {
        let d = json(&[
            &fixture(v, "junit-xunit2.xml"),
            "--size-report",
            &fixture(v, "size-report.json"),
        ]);
        assert_eq!(d["schema_version"], 1, "{v}");
        assert_eq!(d["top"], 10, "{v}");
        assert_eq!(d["run"]["tests"], 90, "{v}");
        assert_eq!(d["run"]["testcase_elements"], 93, "{v}");
        // EXPECTED.md, primary run: passed failed error xfailed skipped tests.
        assert_eq!(row(&d, "small"), [42, 15, 2, 5, 4, 68], "{v}");
        assert_eq!(row(&d, "medium"), [7, 2, 1, 1, 1, 12], "{v}");
        assert_eq!(row(&d, "large"), [2, 0, 0, 0, 0, 2], "{v}");
        assert_eq!(row(&d, "xlarge"), [2, 0, 0, 0, 0, 2], "{v}");
        // 5 unsized tests plus the collection-skipped module, which the JSON does not name.
        assert_eq!(row(&d, "unsized"), [4, 1, 0, 0, 1, 6], "{v}");
        assert!(d["outcomes"]["by_size"].get("unknown").is_none(), "{v}");
        let t = &d["outcomes"]["total"];
        assert_eq!(
            ["passed", "failed", "error", "xfailed", "skipped", "total"].map(|k| &t[k]),
            [57, 18, 3, 6, 6, 90].map(Value::from).each_ref(),
            "{v}"
        );
        // Distribution: small 68 (80.95 %), medium 12 (14.29 %), large 2, xlarge 2 (2.38 %).
        let dist = &d["distribution"];
        assert_eq!(dist["sized_tests"], 84, "{v}");
        assert_eq!(dist["not_counted"]["unsized"], 6, "{v}");
        assert_eq!(dist["not_counted"]["unknown"], 0, "{v}");
        for (size, n, pct) in [
            ("small", 68, 80.95),
            ("medium", 12, 14.29),
            ("large", 2, 2.38),
            ("xlarge", 2, 2.38),
        ] {
            assert_eq!(dist["sizes"][size]["tests"], n, "{v} {size}");
            assert_eq!(dist["sizes"][size]["percentage"], pct, "{v} {size}");
            let share = dist["sizes"][size]["share"].as_f64().unwrap();
            assert!((share - n as f64 / 84.0).abs() < 1e-12, "{v} {size}");
        }
        let buckets = dist["buckets"].as_array().unwrap();
        let got: Vec<(&str, f64, f64, f64, &str)> = buckets
            .iter()
            .map(|b| {
                (
                    b["name"].as_str().unwrap(),
                    b["percentage"].as_f64().unwrap(),
                    b["min"].as_f64().unwrap(),
                    b["max"].as_f64().unwrap(),
                    b["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("small", 80.95, 75.0, 85.0, "within"),
                ("medium", 14.29, 10.0, 20.0, "within"),
                ("large+xlarge", 4.76, 2.0, 8.0, "within"),
            ],
            "{v}"
        );
        assert_eq!(dist["within_targets"], true, "{v}");
        assert_eq!(dist["first_outside"], Value::Null, "{v}");
        // Timing: the busy-wait, the sleep and the slow xfail, each ~1.1 s over a 1 s limit.
        let tv = &d["timing_violations"];
        assert_eq!(tv["total"], 3, "{v}");
        assert_eq!(tv["by_size"]["small"], 3, "{v}");
        assert_eq!(tv["truncated"], false, "{v}");
        assert_eq!(
            ids(tv),
            set(&[
                "test_spin_past_limit_passes",
                "test_sleep_past_limit_fails",
                "test_slow_expected_failure"
            ]),
            "{v}"
        );
        for t in tv["tests"].as_array().unwrap() {
            let dur = t["duration_seconds"].as_f64().unwrap();
            assert!((1.1..1.2).contains(&dur), "{v}: {t}");
            assert_eq!(t["limit_seconds"], 1.0, "{v}");
            assert_eq!(t["size"], "small", "{v}");
            assert_eq!(t["outcome"], "failed", "{v}");
            assert_eq!(t["failure_type"], "timing_violation", "{v}");
            assert!(t["id"]
                .as_str()
                .unwrap()
                .starts_with("tests/test_slow.py::"));
        }
        // Baseline: timeout=0.05 with a 0.1 s sleep.
        let bv = &d["baseline_violations"];
        assert_eq!(bv["total"], 1, "{v}");
        assert_eq!(ids(bv), set(&["test_over_tight_baseline"]), "{v}");
        let dur = bv["tests"][0]["duration_seconds"].as_f64().unwrap();
        assert!((0.1..0.2).contains(&dur), "{v}: {dur}");
        assert_eq!(d["near_limit"]["total"], 0, "{v}");
        assert_eq!(d["near_limit"]["ratio"], 0.8, "{v}");
        let fl = &d["flaky"];
        assert_eq!(fl["total"], 1, "{v}");
        assert_eq!(ids(fl), set(&["test_second_attempt_succeeds"]), "{v}");
        assert_eq!(fl["tests"][0]["reruns"], 1, "{v}");
        assert_eq!(fl["tests"][0]["outcome"], "passed", "{v}");
        let f = &d["failures_by_type"];
        assert_eq!(
            [
                &f["assertion"],
                &f["error"],
                &f["hermeticity_violation"],
                &f["timing_violation"]
            ],
            [14, 3, 0, 4].map(Value::from).each_ref(),
            "{v}"
        );
        assert_eq!(d["hermeticity"]["total"], 0, "{v}");
        assert_eq!(d["hermeticity"]["records"]["total"], 0, "{v}");
        // The slowest small test is one of the three ~1.1 s ones; 68 small in all.
        let s = &d["slowest"]["small"];
        assert_eq!(s["total"], 68, "{v}");
        assert_eq!(s["tests"].as_array().unwrap().len(), 10, "{v}");
        assert_eq!(s["truncated"], true, "{v}");
        assert_eq!(s["tests"][0]["timing_violation"], true, "{v}");
        assert_eq!(d["slowest"]["large"]["total"], 2, "{v}");
        assert_eq!(d["slowest"]["unsized"]["total"], 6, "{v}");
        assert_eq!(d["coverage"], Value::Null, "{v}");
        assert_eq!(d["warnings"], serde_json::json!([]), "{v}");
        // 9.1 ids carry no size label: it is removed for the join.
        assert!(!tv["tests"][0]["id"].as_str().unwrap().contains("[SMALL]"));
        let start = d["run"]["start_timestamp_seconds"].as_f64().unwrap();
        assert!(start > 1.7e9 && start < 2.0e9, "{v}");
    }
}

#[test]
fn json_reruns_run_has_two_flaky_tests() {
    for v in ["9.2", "9.1"] {
        let d = json(&[
            &fixture(v, "junit-reruns.xml"),
            "--size-report",
            &fixture(v, "size-report-reruns.json"),
        ]);
        // EXPECTED.md "Reruns run": small 43 14 2 5 4, 112 elements, 2 flaky.
        assert_eq!(row(&d, "small"), [43, 14, 2, 5, 4, 68], "{v}");
        assert_eq!(d["run"]["testcase_elements"], 112, "{v}");
        assert_eq!(d["flaky"]["total"], 2, "{v}");
        assert_eq!(
            ids(&d["flaky"]),
            set(&["test_second_attempt_succeeds", "test_fails_first_time_only"]),
            "{v}"
        );
        for t in d["flaky"]["tests"].as_array().unwrap() {
            assert_eq!(t["reruns"], 1, "{v}: {t}");
        }
    }
}

#[test]
fn json_hermeticity_records_in_warn_mode() {
    for v in ["9.2", "9.1"] {
        let d = json(&[
            &fixture(v, "junit-enforcement-warn.xml"),
            "--size-report",
            &fixture(v, "size-report-enforcement-warn.json"),
            "--top",
            "20",
        ]);
        // EXPECTED.md "Hermeticity": records, not tests.
        let r = &d["hermeticity"]["records"];
        assert_eq!(
            [
                "network",
                "filesystem",
                "process",
                "database",
                "sleep",
                "total"
            ]
            .map(|k| &r[k]),
            [2, 1, 2, 1, 4, 10].map(Value::from).each_ref(),
            "{v}"
        );
        let h = &d["hermeticity"];
        assert_eq!(h["total"], 9, "{v}");
        assert_eq!(h["truncated"], false, "{v}");
        assert_eq!(
            ids(h),
            set(&[
                "test_small_connects_to_discard_port",
                "test_medium_external_host",
                "test_small_reads_own_source",
                "test_small_runs_child_process",
                "test_small_opens_sqlite_memory",
                "test_small_naps_briefly",
                "test_sleep_past_limit_fails",
                "test_slow_expected_failure",
                "test_over_tight_baseline",
            ]),
            "{v}"
        );
        // One subprocess.run is recorded twice: the only test with 2 records, listed first.
        let first = &h["tests"][0];
        assert!(first["id"]
            .as_str()
            .unwrap()
            .ends_with("::test_small_runs_child_process"));
        assert_eq!(first["hermeticity"]["process"], 2, "{v}");
        assert_eq!(
            h["tests"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["size"] == "medium")
                .count(),
            1,
            "{v}"
        );
        // Warn mode changes no outcome.
        assert_eq!(row(&d, "small"), [42, 15, 2, 5, 4, 68], "{v}");
    }
}

#[test]
fn json_distribution_outside_the_bands() {
    // test_tiers.py alone, pytest 9.1 (sizes from the JUnit name labels): small 5 (the
    // TestAccountOps family and TestSmallViaBase), medium 7, large 2, xlarge 2.
    let d = json(&[&fixture("9.1", "junit-distribution-warn.xml")]);
    let dist = &d["distribution"];
    assert_eq!(dist["sized_tests"], 16);
    let got: Vec<(&str, u64, f64, &str)> = dist["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap(),
                b["tests"].as_u64().unwrap(),
                b["percentage"].as_f64().unwrap(),
                b["status"].as_str().unwrap(),
            )
        })
        .collect();
    // 5/16 = 31.25 % (the TC007 warning in terminal-distribution-warn.txt), 7/16 = 43.75 %,
    // 4/16 = 25 %.
    assert_eq!(
        got,
        [
            ("small", 5, 31.25, "below"),
            ("medium", 7, 43.75, "above"),
            ("large+xlarge", 4, 25.0, "above"),
        ]
    );
    assert_eq!(dist["within_targets"], false);
    assert_eq!(dist["first_outside"], "small");
    assert_eq!(row(&d, "medium"), [4, 1, 0, 1, 1, 7]);
    let term = std::fs::read_to_string(fixture("9.1", "terminal-distribution-warn.txt")).unwrap();
    assert!(
        term.contains("Small test percentage (31.25%)"),
        "the plugin agrees"
    );
}

/// pytest 9.2 JUnit alone (the version-ranges run).
#[test]
fn json_without_a_size_source_warns() {
    let d = json(&[&fixture("9.2", "junit-version-ranges.xml"), "--top", "0"]);
    // 1 test sized by its TC006 `Category:` line out of 6: no distribution, and the warning
    // says why.
    assert_eq!(d["distribution"], Value::Null);
    assert_eq!(d["outcomes"]["by_size"]["small"]["total"], 1);
    assert_eq!(d["outcomes"]["by_size"]["unknown"]["total"], 5);
    let w = d["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].as_str().unwrap().starts_with(
            "no size source: 5 of 6 tests have size \"unknown\", so no size distribution is \
             given (the 1 sized test does not describe the run). Have pytest write"
        ),
        "{}",
        w[0]
    );
    // --top 0: counts only.
    assert_eq!(d["timing_violations"]["total"], 1);
    assert_eq!(d["timing_violations"]["tests"], serde_json::json!([]));
    assert_eq!(d["timing_violations"]["truncated"], true);
    assert_eq!(d["slowest"]["unknown"]["total"], 5);
}

#[test]
fn json_coverage_agrees_with_coverage_py() {
    for v in ["9.2", "9.1"] {
        let (files, (stmts, miss)) = coverage_py(v);
        let d = json(&[
            &fixture(v, "junit-xunit2.xml"),
            "--coverage",
            &fixture(v, "coverage.xml"),
        ]);
        let c = &d["coverage"];
        assert_eq!(c["lines_valid"], stmts, "{v}");
        assert_eq!(c["lines_covered"], stmts - miss, "{v}");
        assert_eq!(c["uncovered_lines"], miss, "{v}");
        let pct = c["percentage"].as_f64().unwrap();
        assert!(
            (pct - (stmts - miss) as f64 * 100.0 / stmts as f64).abs() < 1e-9,
            "{v}: {pct}"
        );
        let mut want: Vec<(String, u64)> = files
            .iter()
            .filter(|f| f.2 > 0)
            .map(|f| (f.0.clone(), f.2))
            .collect();
        want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let got: Vec<(String, u64)> = c["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["file"].as_str().unwrap().to_string(),
                    f["uncovered_lines"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "{v}");
        assert_eq!(c["files_with_uncovered_lines"], want.len(), "{v}");
        // --top cuts the list, the counts stay.
        let d = json(&[
            &fixture(v, "junit-xunit2.xml"),
            "--coverage",
            &fixture(v, "coverage.xml"),
            "--top",
            "1",
        ]);
        assert_eq!(d["coverage"]["files"].as_array().unwrap().len(), 1);
        assert_eq!(d["coverage"]["files"][0]["file"], want[0].0.as_str());
        assert_eq!(d["coverage"]["truncated"], true);
        assert_eq!(d["coverage"]["files_with_uncovered_lines"], 2);
        // One package, src.ledgerkit, holds the three files: the whole report's 47 of 55.
        assert_eq!(
            c["modules"],
            serde_json::json!([{"module": "src.ledgerkit", "percentage": 4700.0 / 55.0,
                                "lines_valid": 55, "lines_covered": 47}]),
            "{v}"
        );
        assert_eq!(c["modules_total"], 1, "{v}");
        assert_eq!(c["modules_truncated"], false, "{v}");
        // --top 0: the count stays.
        let d = json(&[
            &fixture(v, "junit-xunit2.xml"),
            "--coverage",
            &fixture(v, "coverage.xml"),
            "--top",
            "0",
        ]);
        assert_eq!(d["coverage"]["modules"], serde_json::json!([]));
        assert_eq!(d["coverage"]["modules_total"], 1);
        assert_eq!(d["coverage"]["modules_truncated"], true);
        // The two shards' coverage files, merged: 47 of 55 again (33 and 39 alone).
        let d = json(&[
            &fixture(v, "junit-xunit2.xml"),
            "--coverage",
            &fixture(v, "coverage-shard-1.xml"),
            "--coverage",
            &fixture(v, "coverage-shard-2.xml"),
        ]);
        assert_eq!(d["coverage"]["modules"][0]["lines_covered"], 47, "{v}");
        assert_eq!(d["coverage"]["modules"][0]["lines_valid"], 55, "{v}");
    }
}

// ---------------------------------------------------------------------------------------
// Width, colour, escaping
// ---------------------------------------------------------------------------------------

#[test]
fn every_line_fits_the_width() {
    use ptc_metrics::render::page::width;
    let mut files: Vec<(String, Option<String>)> = Vec::new();
    for v in ["9.2", "9.1"] {
        for entry in std::fs::read_dir(Path::new(&fixture(v, ""))).unwrap() {
            let p = entry.unwrap().path();
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            if n.starts_with("junit-") && n.ends_with(".xml") {
                let json =
                    p.with_file_name(n.replace("junit-", "size-report-").replace(".xml", ".json"));
                files.push((
                    p.to_string_lossy().into_owned(),
                    json.exists().then(|| json.to_string_lossy().into_owned()),
                ));
            }
        }
    }
    assert!(files.len() >= 20);
    for (junit, size) in &files {
        for w in [60usize, 67, 80, 100, 133] {
            let ws = w.to_string();
            let mut args = vec![junit.as_str(), "--color", "never", "--width", &ws];
            if let Some(s) = size {
                args.extend(["--size-report", s.as_str()]);
            }
            let out = ok(&run(&args, &[]));
            for line in out.lines() {
                assert!(
                    width(line) <= w,
                    "{junit} at width {w}: {} columns:\n{line}",
                    width(line)
                );
                assert!(
                    !line.chars().any(|c| c.is_control()),
                    "{junit}: control character in {line:?}"
                );
            }
        }
    }
}

#[test]
fn columns_and_width_flags() {
    use ptc_metrics::render::page::width;
    let f = fixture("9.2", "junit-xunit2.xml");
    let widest = |o: &str| o.lines().map(width).max().unwrap();
    let wide = ok(&run(
        &[&f, "--size-report", &fixture("9.2", "size-report.json")],
        &[("COLUMNS", "72")],
    ));
    assert!(widest(&wide) <= 72 && widest(&wide) > 60);
    let o = ok(&run(&[&f, "--width", "200"], &[("COLUMNS", "72")]));
    assert!(widest(&o) > 72, "--width wins over COLUMNS");
    let o = ok(&run(&[&f], &[("PTC_METRICS_WIDTH", "64")]));
    assert!(widest(&o) <= 64);
    // Nonsense COLUMNS: the default 100.
    let o = ok(&run(&[&f], &[("COLUMNS", "lots")]));
    assert!(widest(&o) <= 100);
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' && it.peek() == Some(&'[') {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn colour_only_when_asked_and_the_same_text() {
    let args = |c: &'static str| {
        vec![
            fixture("9.2", "junit-xunit2.xml"),
            "--size-report".into(),
            fixture("9.2", "size-report.json"),
            "--width".into(),
            "200".into(),
            "--color".into(),
            c.into(),
        ]
    };
    let run_s = |a: Vec<String>, env: &[(&str, &str)]| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ok(&run(&a, env))
    };
    let plain = run_s(args("never"), &[]);
    assert!(!plain.contains('\x1b'));
    assert!(plain.is_ascii(), "plain output is ASCII for these ids");
    // auto: stdout is a pipe here, so no colour, and NO_COLOR changes nothing.
    assert_eq!(run_s(args("auto"), &[]), plain);
    assert_eq!(run_s(args("auto"), &[("NO_COLOR", "1")]), plain);
    // always wins over NO_COLOR (an explicit flag), and from the environment too.
    let colour = run_s(args("always"), &[("NO_COLOR", "1")]);
    assert!(colour.contains("\x1b[1mSize distribution\x1b[0m"));
    assert!(colour.contains("\x1b[32mwithin\x1b[0m"));
    assert!(colour.contains('█'));
    let mut a = args("never");
    a.truncate(5);
    assert_eq!(run_s(a, &[("PTC_METRICS_COLOR", "always")]), colour);
    // Without the escapes and with the ASCII glyphs, it is the plain report.
    let mapped = strip_ansi(&colour)
        .replace('█', "#")
        .replace('▒', "-")
        .replace('·', ".")
        .replace('…', "...");
    assert_eq!(mapped, plain, "{}", diff(&plain, &mapped));
}

#[test]
fn hostile_ids_cannot_reach_the_terminal() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("junit.xml");
    std::fs::write(
        &p,
        "<testsuite name=\"s\" time=\"1\"><testcase classname=\"t\" \
         name=\"evil&#27;[2J&#27;]0;title&#7;[x&#10;y&#9;z]\" time=\"2.5\"><failure message=\"m\">boom</failure></testcase></testsuite>",
    )
    .unwrap();
    let out = ok(&run(&[p.to_str().unwrap(), "--color", "always"], &[]));
    let visible = strip_ansi(&out);
    assert!(
        !visible.contains('\x1b') && !visible.contains('\x07'),
        "{visible:?}"
    );
    assert!(
        visible.contains("evil\\u{1b}[2J\\u{1b}]0;title\\u{7}[x\\ny\\tz]"),
        "{visible}"
    );
    // JSON keeps the id exactly (JSON escapes it).
    let j = json(&[p.to_str().unwrap()]);
    assert_eq!(
        j["slowest"]["unknown"]["tests"][0]["id"],
        "t::evil\x1b[2J\x1b]0;title\x07[x\ny\tz]"
    );
}

#[test]
fn environment_gives_the_format() {
    let o = run(
        &[&fixture("9.2", "junit-xunit2.xml")],
        &[("PTC_METRICS_INSPECT_FORMAT", "json")],
    );
    let v: Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(v["schema_version"], 1);
}

#[test]
fn closed_stdout_is_not_an_error() {
    let mut child = cli()
        .args([
            "inspect",
            &fixture("9.2", "junit-xunit2.xml"),
            "--top",
            "1000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
}

#[test]
fn unreadable_input_is_exit_2() {
    let o = run(&["/nonexistent/junit.xml"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "error: /nonexistent/junit.xml: no such file\n"
    );
    let o = run(&[], &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(
        &[&fixture("9.2", "junit-xunit2.xml"), "--format", "yaml"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let o = run(
        &[
            &fixture("9.2", "junit-xunit2.xml"),
            "--coverage",
            &fixture("9.2", "junit-xunit2.xml"),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "error: {}: is a JUnit report; expected a Cobertura coverage.xml\n",
            fixture("9.2", "junit-xunit2.xml")
        )
    );
    // A size report alone is no run.
    let o = run(&[&fixture("9.2", "size-report.json")], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "error: {}: is a size report, not JUnit XML: a run needs the JUnit XML report pytest \
             writes with --junitxml; give it too\n",
            fixture("9.2", "size-report.json")
        )
    );
}

// ---------------------------------------------------------------------------------------
// Large runs: bounded output
// ---------------------------------------------------------------------------------------

#[test]
fn a_hundred_thousand_tests_give_a_bounded_report() {
    const N: usize = 100_000;
    let d = tempfile::tempdir().unwrap();
    let junit = d.path().join("junit.xml");
    let size = d.path().join("size.json");
    let mut x = std::io::BufWriter::new(std::fs::File::create(&junit).unwrap());
    let mut j = std::io::BufWriter::new(std::fs::File::create(&size).unwrap());
    write!(
        x,
        "<testsuites><testsuite name=\"big\" time=\"100\" timestamp=\"2026-01-01T00:00:00\">"
    )
    .unwrap();
    write!(j, "{{\"version\":\"1.2.2\",\"tests\":[").unwrap();
    for i in 0..N {
        // 80 % small, 15 % medium, 4 % large, 1 % xlarge; test 4242 is the slowest small one
        // and the only one near its limit; test 777 violates.
        let size = match i % 100 {
            0..=79 => "small",
            80..=94 => "medium",
            95..=98 => "large",
            _ => "xlarge",
        };
        let dur = match i {
            4242 => 0.93,
            777 => 1.7,
            _ => (i % 1000) as f64 / 10_000.0,
        };
        let viol = if i == 777 { "\"timing\"" } else { "" };
        write!(
            x,
            "<testcase classname=\"tests.test_m{}\" name=\"test_{i}\" time=\"{dur}\"/>",
            i / 100
        )
        .unwrap();
        write!(
            j,
            "{}{{\"name\":\"tests/test_m{}.py::test_{i}\",\"size\":\"{size}\",\"duration\":{dur},\"status\":\"passed\",\"violations\":[{viol}]}}",
            if i == 0 { "" } else { "," },
            i / 100
        )
        .unwrap();
    }
    write!(x, "</testsuite></testsuites>").unwrap();
    write!(j, "]}}").unwrap();
    drop((x, j));
    let (junit, size) = (junit.to_str().unwrap(), size.to_str().unwrap());
    let out = ok(&run(
        &[
            junit,
            "--size-report",
            size,
            "--top",
            "5",
            "--color",
            "never",
        ],
        &[],
    ));
    assert!(out.lines().count() < 80, "{out}");
    assert!(out.contains(&format!("Run: {N} tests ({N} testcase elements)")));
    assert!(out.contains("  small          80000   80.00%"), "{out}");
    assert!(out.contains("tests/test_m42.py::test_4242"));
    assert!(out.contains("Near their limit (at least 80% of it, not violating): 1 test (small 1)"));
    assert!(out.contains("Timing violations (TC006): 1 test (small 1)"));
    assert!(out.contains("79995 more small tests not shown (--top 5)"));
    let v = json(&[junit, "--size-report", size, "--top", "5"]);
    assert_eq!(v["slowest"]["small"]["tests"].as_array().unwrap().len(), 5);
    assert_eq!(
        v["slowest"]["small"]["tests"][0]["id"],
        "tests/test_m7.py::test_777"
    );
    assert_eq!(
        v["near_limit"]["tests"][0]["id"],
        "tests/test_m42.py::test_4242"
    );
    assert_eq!(v["outcomes"]["total"]["total"], N);
}
