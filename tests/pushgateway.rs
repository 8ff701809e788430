//! `ptc-metrics push` and `delete` against a real Pushgateway (Debian
//! prometheus-pushgateway), and one real Prometheus scraping it with `honor_labels: true`.
//!
//! Expected values are written by hand from `fixtures/EXPECTED.md`.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::{cli, Prometheus, Pushgateway};

fn fx(v: &str, name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("pytest-{v}"))
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn push(args: &[&str]) -> Output {
    let o = cli()
        .arg("push")
        .args(args)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .output()
        .expect("run ptc-metrics");
    o
}

fn ok(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "stderr: {e}");
    e
}

/// The group whose labels are exactly `labels`.
fn group<'a>(data: &'a Value, labels: &[(&str, &str)]) -> &'a Value {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    data.as_array()
        .unwrap()
        .iter()
        .find(|g| {
            let have: BTreeMap<String, String> = g["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            have == want
        })
        .unwrap_or_else(|| panic!("no group {want:?} in {data:#}"))
}

/// Value of the series of `family` in `g` whose own labels include all of `sel`.
fn value(g: &Value, family: &str, sel: &[(&str, &str)]) -> f64 {
    let metrics = g[family]["metrics"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family}"));
    let m = metrics
        .iter()
        .find(|m| {
            sel.iter()
                .all(|(k, v)| m["labels"][*k].as_str() == Some(*v))
        })
        .unwrap_or_else(|| panic!("no {family}{sel:?}"));
    let raw = if m.get("value").is_some() {
        &m["value"]
    } else {
        &m["count"]
    };
    raw.as_str().unwrap().parse().unwrap()
}

fn hist_bucket(g: &Value, sel: &[(&str, &str)], le: &str) -> f64 {
    let metrics = g["pytest_test_duration_seconds"]["metrics"]
        .as_array()
        .unwrap();
    let m = metrics
        .iter()
        .find(|m| {
            sel.iter()
                .all(|(k, v)| m["labels"][*k].as_str() == Some(*v))
        })
        .unwrap();
    m["buckets"][le].as_str().unwrap().parse().unwrap()
}

#[test]
fn push_accumulates_across_runs() {
    let pg = Pushgateway::start();
    for v in ["9.2", "9.1"] {
        let project = format!("shop-{v}");
        let args = [
            fx(v, "junit-xunit2.xml"),
            "--size-report".into(),
            fx(v, "size-report.json"),
            "--coverage".into(),
            fx(v, "coverage.xml"),
            "--gateway".into(),
            pg.url.clone(),
            "--project".into(),
            project.clone(),
            "--branch".into(),
            "main".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = ok(&push(&args));
        assert_eq!(
            e,
            format!("pushed 90 tests (19 families) to {}/metrics/job/pytest/project/{project}/branch/main\n", pg.url)
        );
        let data = pg.api_metrics();
        let g = group(
            &data,
            &[("job", "pytest"), ("project", &project), ("branch", "main")],
        );
        let small_passed = [("size", "small"), ("outcome", "passed")];
        assert_eq!(value(g, "pytest_tests", &small_passed), 42.0);
        assert_eq!(
            value(
                g,
                "pytest_tests",
                &[("size", "medium"), ("outcome", "error")]
            ),
            1.0
        );
        assert_eq!(value(g, "pytest_tests_total", &small_passed), 42.0);
        assert_eq!(value(g, "pytest_runs_total", &[]), 1.0);
        assert_eq!(
            value(g, "pytest_timing_violations", &[("size", "small")]),
            3.0
        );
        assert_eq!(value(g, "pytest_flaky_tests", &[("size", "small")]), 1.0);
        assert_eq!(
            value(g, "pytest_flaky_tests_total", &[("size", "small")]),
            1.0
        );
        assert_eq!(g["pytest_flaky_tests_total"]["type"], "COUNTER");
        assert_eq!(
            value(g, "ci_test_failures_total", &[("failure_type", "error")]),
            3.0
        );
        assert_eq!(
            value(g, "pytest_test_duration_seconds", &small_passed),
            42.0
        );
        assert_eq!(
            value(g, "pytest_test_size_distribution", &[("size", "small")]),
            68.0 / 84.0
        );
        assert_eq!(g["pytest_tests"]["type"], "GAUGE");
        assert_eq!(g["pytest_tests_total"]["type"], "COUNTER");
        assert_eq!(g["pytest_test_duration_seconds"]["type"], "HISTOGRAM");
        assert!(g["test_coverage_percentage"].is_object());
        // The reruns run of the same suite, pushed to the same group: counters add up,
        // gauges show the last run (EXPECTED.md "Reruns run": 43 small passed, 2 flaky).
        let args2 = [
            fx(v, "junit-reruns.xml"),
            "--size-report".into(),
            fx(v, "size-report-reruns.json"),
            "--gateway".into(),
            pg.url.clone(),
            "--project".into(),
            project.clone(),
            "--branch".into(),
            "main".into(),
        ];
        let args2: Vec<&str> = args2.iter().map(String::as_str).collect();
        ok(&push(&args2));
        let data = pg.api_metrics();
        let g = group(
            &data,
            &[("job", "pytest"), ("project", &project), ("branch", "main")],
        );
        assert_eq!(value(g, "pytest_runs_total", &[]), 2.0);
        assert_eq!(value(g, "pytest_tests", &small_passed), 43.0);
        assert_eq!(value(g, "pytest_tests_total", &small_passed), 85.0);
        assert_eq!(
            value(
                g,
                "pytest_tests_total",
                &[("size", "small"), ("outcome", "failed")]
            ),
            29.0
        );
        assert_eq!(value(g, "pytest_flaky_tests", &[("size", "small")]), 2.0);
        assert_eq!(
            value(g, "pytest_flaky_tests_total", &[("size", "small")]),
            3.0
        );
        assert_eq!(
            value(g, "pytest_timing_violations_total", &[("size", "small")]),
            6.0
        );
        assert_eq!(
            value(g, "ci_test_failures_total", &[("failure_type", "error")]),
            6.0
        );
        assert_eq!(
            value(g, "pytest_test_duration_seconds", &small_passed),
            85.0
        );
        assert_eq!(hist_bucket(g, &small_passed, "+Inf"), 85.0);
        // PUT replaced the group: the second run had no coverage.
        assert!(g.get("test_coverage_percentage").is_none());
        // --no-accumulate pushes this run's counts alone.
        let mut args3 = args2.clone();
        args3.push("--no-accumulate");
        ok(&push(&args3));
        let data = pg.api_metrics();
        let g = group(
            &data,
            &[("job", "pytest"), ("project", &project), ("branch", "main")],
        );
        assert_eq!(value(g, "pytest_runs_total", &[]), 1.0);
        assert_eq!(value(g, "pytest_tests_total", &small_passed), 43.0);
    }
}

#[test]
fn every_fixture_round_trips_through_the_gateway() {
    let pg = Pushgateway::start();
    let mut pushed = 0;
    for v in ["9.2", "9.1"] {
        let dir = PathBuf::from(fx(v, ""));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with("junit-") && n.ends_with(".xml")
            })
            .collect();
        files.sort();
        for f in files {
            let stem = f
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .replace("junit-", "");
            let project = format!("{v}-{stem}");
            let f = f.to_string_lossy().into_owned();
            let dry = push(&[&f, "--dry-run", "--project", &project]);
            let text = String::from_utf8(dry.stdout).unwrap();
            ok(&push(&[&f, "--gateway", &pg.url, "--project", &project]));
            let data = pg.api_metrics();
            let g = group(&data, &[("job", "pytest"), ("project", &project)]);
            // Every sample line of the dry run is in the group with the same value.
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let (series, val) = line.rsplit_once(' ').unwrap();
                let name = series.split('{').next().unwrap();
                if name.ends_with("_bucket") || name.ends_with("_sum") || name.ends_with("_count") {
                    continue;
                }
                let labels: Vec<(String, String)> = series
                    .trim_start_matches(name)
                    .trim_matches(|c| c == '{' || c == '}')
                    .split("\",")
                    .filter(|s| !s.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once("=\"").unwrap();
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                let sel: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let want: f64 = val.parse().unwrap();
                let got = value(g, name, &sel);
                assert!(
                    (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                    "{project}: {series}: {got} != {want}"
                );
            }
            pushed += 1;
        }
    }
    assert!(pushed >= 20, "{pushed}");
}

#[test]
fn grouping_values_with_slash_and_empty_round_trip_and_delete() {
    let pg = Pushgateway::start();
    let f = fx("9.2", "junit-xunit2.xml");
    let e = ok(&push(&[
        &f,
        "--gateway",
        &pg.url,
        "--project",
        "acme/shop",
        "--branch",
        "feature/x",
        "--label",
        "os=",
        "--method",
        "post",
    ]));
    assert!(e.ends_with("/metrics/job/pytest/project@base64/YWNtZS9zaG9w/branch@base64/ZmVhdHVyZS94/os@base64/=\n"), "{e}");
    let data = pg.api_metrics();
    let g = group(
        &data,
        &[
            ("job", "pytest"),
            ("project", "acme/shop"),
            ("branch", "feature/x"),
            ("os", ""),
        ],
    );
    assert_eq!(value(g, "pytest_runs_total", &[]), 1.0);
    let lines = pg.metric_lines("pytest_runs_total");
    assert_eq!(lines, vec!["pytest_runs_total{branch=\"feature/x\",instance=\"\",job=\"pytest\",os=\"\",project=\"acme/shop\"} 1".to_string()]);
    // delete removes exactly that group.
    let o = cli()
        .args([
            "delete",
            "--gateway",
            &pg.url,
            "--project",
            "acme/shop",
            "--branch",
            "feature/x",
            "--label",
            "os=",
        ])
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    let e = ok(&o);
    assert!(e.starts_with("deleted group "), "{e}");
    assert!(pg.metric_lines("pytest_runs_total").is_empty());
}

#[test]
fn gateway_rejection_is_shown_and_not_retried() {
    let pg = Pushgateway::start();
    // Another group already has pytest_tests as a counter: our gauge conflicts.
    let (code, _) = pg.push_raw(
        "PUT",
        "/metrics/job/other",
        "# TYPE pytest_tests counter\npytest_tests 1\n",
    );
    assert_eq!(code, 200);
    let f = fx("9.2", "junit-xunit2.xml");
    let o = push(&[&f, "--gateway", &pg.url, "--project", "p", "--retries", "5"]);
    assert_eq!(o.status.code(), Some(3));
    let e = String::from_utf8_lossy(&o.stderr);
    let want = format!(
        "error: PUT {}/metrics/job/pytest/project/p: the server answered 400 Bad Request: pushed metrics are invalid or inconsistent with existing metrics: ",
        pg.url
    );
    assert!(e.contains(&want), "{e}");
    assert!(
        e.contains("collected metric \"pytest_tests\" { label:<name:\"instance\" value:\"\" >"),
        "{e}"
    );
    // The gateway names the conflict from either side, depending on its internal order.
    assert!(
        e.contains("is not a COUNTER") || e.contains("is not a GAUGE"),
        "{e}"
    );
    assert!(e.contains("; fix what the gateway says"), "{e}");
    // Not retried: the gateway saw exactly one failed push.
    let text = pg.metrics_text();
    let failures: f64 = text
        .lines()
        .find(|l| l.starts_with("pushgateway_http_requests_total{code=\"400\",handler=\"push\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert_eq!(failures, 1.0, "{text}");
    // --soft-fail: a warning and exit 0.
    let o = push(&[&f, "--gateway", &pg.url, "--project", "p", "--soft-fail"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("warning: metrics not pushed (--soft-fail): PUT "));
}

#[test]
fn prometheus_scrapes_what_was_pushed() {
    let pg = Pushgateway::start();
    let prom = Prometheus::start_scraping(&[&pg.addr]);
    let v = "9.2";
    let args = [
        fx(v, "junit-xunit2.xml"),
        "--size-report".into(),
        fx(v, "size-report.json"),
        "--gateway".into(),
        pg.url.clone(),
        "--project".into(),
        "shop".into(),
        "--branch".into(),
        "release/1.0".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&push(&args));
    ok(&push(&args));
    let q = "sum by (project, branch) (pytest_tests_total{job=\"pytest\",size=\"small\"})";
    let got = prom.wait_for(
        q,
        |d| d["result"].as_array().is_some_and(|r| !r.is_empty()),
        Duration::from_secs(30),
    );
    let r = &got["result"][0];
    assert_eq!(r["metric"]["project"], "shop");
    assert_eq!(r["metric"]["branch"], "release/1.0");
    // Two runs × 68 small tests.
    assert_eq!(r["value"][1], "136");
    let d = prom.query("pytest_test_size_distribution{project=\"shop\",size=\"small\"}");
    let share: f64 = d["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((share - 68.0 / 84.0).abs() < 1e-12);
    let h = prom.query("histogram_quantile(1, sum by (le) (pytest_test_duration_seconds_bucket{project=\"shop\",size=\"small\"}))");
    let p100: f64 = h["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // The slowest small tests take 1.1 s: the quantile lands in the (1, 5] bucket.
    assert!(p100 > 1.0 && p100 <= 5.0, "{p100}");
}
