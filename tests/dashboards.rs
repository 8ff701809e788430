//! Grafana dashboards (`dashboards/*.json`), checked two ways:
//!
//! 1. The JSON type-checks against Grafana's own `Dashboard` type (npm `@grafana/schema`,
//!    compiled with `typescript` from `dashboards/check/`; `npm ci` runs there when
//!    `node_modules` is missing). A mutated dashboard must fail the same check.
//! 2. Every panel query, with `$project`, `$branch`, `$__range` and `$__rate_interval`
//!    substituted, returns the right non-empty result from a real Prometheus that scraped a
//!    real Pushgateway fed by `ptc-metrics push` on `fixtures/pytest-9.2/`. The expected values
//!    come from `fixtures/EXPECTED.md` (counts) and from the fixture files themselves (times,
//!    durations, coverage). Every target must have an expectation here.
//!
//! The same stack also loads `alerts/*.rules.yml`: every rule must evaluate without error on
//! the real data, and exactly the alerts that the fixtures call for must fire.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::grafana::{self, dashboards, panels, targets};
use support::*;

const PROJECT: &str = "ptc-e2e";
const BRANCH: &str = "main";
const OTHER_BRANCH: &str = "feature/x";
/// The other branch's run is pushed as this release (`--label release=…`).
const RELEASE: &str = "1.4.0";
/// What `$__range` and `$__rate_interval` become: longer than the whole test, so a window
/// holds both pushes.
const WINDOW: &str = "10m";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    repo()
        .join("fixtures/pytest-9.2")
        .join(name)
        .display()
        .to_string()
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// ---------------------------------------------------------------------------
// 1. Grafana's schema
// ---------------------------------------------------------------------------

fn check_dir() -> PathBuf {
    repo().join("dashboards/check")
}

/// Installs `@grafana/schema` + `typescript` from the committed lock file when missing.
fn ensure_node_modules() -> PathBuf {
    require_binary("node", "nodejs");
    let npm = require_binary("npm", "npm");
    let dir = check_dir();
    let tsc = dir.join("node_modules/.bin/tsc");
    let schema = dir.join("node_modules/@grafana/schema/package.json");
    if !tsc.exists() || !schema.exists() {
        let out = Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .expect("run npm ci");
        assert!(
            out.status.success(),
            "npm ci in dashboards/check failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(tsc.exists(), "{} missing after npm ci", tsc.display());
    tsc
}

/// Writes `export const d: Dashboard = <json>;` per dashboard into a temp dir (with
/// `node_modules` linked in) and runs `tsc --noEmit --strict` over all of them.
/// Grafana's schema types an annotation's query generically (`AnnotationQuery<TQuery>`) and
/// leaves the data source's own options beside it untyped: a Prometheus annotation (the
/// "Releases" markers) is checked with its query and options spelled out.
const PROM_ANNOTATION: &str =
    "type PromAnnotation = AnnotationQuery<DataQuery & { expr: string }> & \
     { step?: string; useValueForTime?: boolean; titleFormat?: string; textFormat?: string };\n\
     type Checked = Omit<Dashboard, 'annotations'> & \
     { annotations?: { list?: Array<AnnotationQuery | PromAnnotation> } };\n";

fn typecheck(files: &[(String, String)]) -> (bool, String) {
    let tsc = ensure_node_modules();
    let dir = tempfile::Builder::new()
        .prefix("ptc-dash-tsc-")
        .tempdir()
        .expect("temp dir");
    std::os::unix::fs::symlink(
        check_dir().join("node_modules"),
        dir.path().join("node_modules"),
    )
    .expect("link node_modules");
    let mut args: Vec<String> = [
        "--noEmit",
        "--strict",
        "--skipLibCheck",
        "--module",
        "nodenext",
        "--moduleResolution",
        "nodenext",
        "--target",
        "es2022",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (name, json) in files {
        let ts = format!(
            "import type {{ AnnotationQuery, Dashboard, DataQuery }} from '@grafana/schema';\n\
             {PROM_ANNOTATION}export const d: Checked = {json};\n"
        );
        let path = dir
            .path()
            .join(format!("{}.ts", name.trim_end_matches(".json")));
        std::fs::write(&path, ts).expect("write .ts");
        args.push(path.display().to_string());
    }
    let out = Command::new(&tsc)
        .args(&args)
        .current_dir(dir.path())
        .output()
        .expect("run tsc");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn dashboards_typecheck_against_grafana_schema() {
    let files: Vec<(String, String)> = dashboards()
        .into_iter()
        .map(|(name, _)| {
            let text = read_to_string(repo().join("dashboards").join(&name));
            (name, text)
        })
        .collect();
    let (ok, out) = typecheck(&files);
    assert!(
        ok,
        "dashboards do not type-check against @grafana/schema's Dashboard:\n{out}"
    );

    // The check has teeth: a misspelt key, a wrong type and a missing required key all fail.
    let (name, text) = &files[0];
    let mut broken: Value = serde_json::from_str(text).unwrap();
    broken["panelz"] = Value::Array(vec![]);
    let mut wrong_type: Value = serde_json::from_str(text).unwrap();
    wrong_type["time"] = Value::from(5);
    let mut missing: Value = serde_json::from_str(text).unwrap();
    missing.as_object_mut().unwrap().remove("schemaVersion");
    for (what, v) in [
        ("unknown key", broken),
        ("wrong type", wrong_type),
        ("missing schemaVersion", missing),
    ] {
        let (ok, out) = typecheck(&[(format!("mutant-{name}"), v.to_string())]);
        assert!(!ok, "tsc accepted a dashboard with a {what}:\n{out}");
        assert!(out.contains("error TS"), "{what}: {out}");
    }
}

// ---------------------------------------------------------------------------
// Structure
// ---------------------------------------------------------------------------

#[test]
fn dashboards_are_wired_to_the_variables() {
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for (name, d) in dashboards() {
        let uid = d["uid"].as_str().unwrap_or_default().to_string();
        if uid.is_empty() || !uids.insert(uid.clone()) {
            problems.push(format!("{name}: missing or duplicate uid {uid:?}"));
        }
        let vars: BTreeMap<&str, &Value> = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| (v["name"].as_str().unwrap_or(""), v))
            .collect();
        for (var, ty) in [
            ("datasource", "datasource"),
            ("project", "query"),
            ("branch", "query"),
        ] {
            match vars.get(var) {
                Some(v) if v["type"] == ty => {}
                _ => problems.push(format!("{name}: no ${var} variable of type {ty}")),
            }
        }
        if let Some(b) = vars.get("branch") {
            let q = b["query"].as_str().unwrap_or_default();
            if !q.contains("$project") {
                problems.push(format!("{name}: $branch does not depend on $project: {q}"));
            }
        }
        let mut ids = BTreeSet::new();
        let mut titles = BTreeSet::new();
        for p in d["panels"].as_array().into_iter().flatten() {
            let id = p["id"].as_i64().unwrap_or(-1);
            if !ids.insert(id) {
                problems.push(format!("{name}: duplicate panel id {id}"));
            }
            let g = &p["gridPos"];
            let (x, w) = (g["x"].as_i64().unwrap_or(-1), g["w"].as_i64().unwrap_or(-1));
            if x < 0 || w <= 0 || x + w > 24 || g["h"].as_i64().unwrap_or(0) <= 0 {
                problems.push(format!(
                    "{name}: panel {id} gridPos out of the 24-column grid: {g}"
                ));
            }
        }
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or_default();
            if !titles.insert(title.to_string()) {
                problems.push(format!("{name}: duplicate panel title {title:?}"));
            }
            if support::grafana::is_loki(p) {
                problems.extend(logs_panel_problems(name.as_str(), p, &vars));
                continue;
            }
            if p["datasource"]["uid"] != "${datasource}" {
                problems.push(format!(
                    "{name}/{title}: panel datasource is not ${{datasource}}"
                ));
            }
            if p["description"].as_str().unwrap_or_default().len() < 20 {
                problems.push(format!("{name}/{title}: no description"));
            }
            let ts = p["targets"].as_array().cloned().unwrap_or_default();
            if ts.is_empty() {
                problems.push(format!("{name}/{title}: no targets"));
            }
            let mut refs = BTreeSet::new();
            for t in ts {
                let r = t["refId"].as_str().unwrap_or_default().to_string();
                let expr = t["expr"].as_str().unwrap_or_default();
                if r.is_empty() || !refs.insert(r.clone()) {
                    problems.push(format!("{name}/{title}: missing or duplicate refId {r:?}"));
                }
                if t["datasource"]["uid"] != "${datasource}" {
                    problems.push(format!(
                        "{name}/{title}/{r}: target datasource is not ${{datasource}}"
                    ));
                }
                // Series of a run are always filtered by both variables; only the constant
                // target bands, the per-project coverage target and the default branch's
                // coverage (a branch compared with it) are exempt.
                let constant = expr.starts_with("ptc:test_size_target_band:")
                    || expr.contains("ptc:coverage_target:percent{project=\"$project\"}")
                    || expr.contains("ptc:default_branch_coverage:percent{project=\"$project\"}");
                let filtered =
                    expr.contains("project=\"$project\"") && expr.contains("branch=\"$branch\"");
                if !constant && !filtered {
                    problems.push(format!(
                        "{name}/{title}/{r}: not filtered by $project and $branch: {expr}"
                    ));
                }
                if expr.contains("rate(") && !expr.contains("increase(") {
                    problems.push(format!(
                        "{name}/{title}/{r}: rate() on Pushgateway data: {expr}"
                    ));
                }
            }
        }
    }
    // Every target has an expectation in the end-to-end test, and no expectation is stale.
    let want: BTreeSet<String> = expectations(&FixtureFacts::dummy(), 1.0)
        .into_keys()
        .collect();
    let have: BTreeSet<String> = targets().into_iter().map(|(k, _)| k).collect();
    for k in have.difference(&want) {
        problems.push(format!(
            "target without an expectation in tests/dashboards.rs: {k}"
        ));
    }
    for k in want.difference(&have) {
        problems.push(format!(
            "expectation for a target that no dashboard has: {k}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The events' logs panels (docs/events.md): a `logs` panel on the `$loki` data source
/// variable, its LogQL selecting the event streams of the selected project and branch by
/// their low-cardinality labels only.
fn logs_panel_problems(name: &str, p: &Value, vars: &BTreeMap<&str, &Value>) -> Vec<String> {
    let title = p["title"].as_str().unwrap_or_default();
    let mut problems = Vec::new();
    match vars.get("loki") {
        Some(v) if v["type"] == "datasource" && v["query"] == "loki" => {}
        _ => problems.push(format!(
            "{name}: a Loki panel but no $loki data source variable"
        )),
    }
    if p["type"] != "logs" {
        problems.push(format!(
            "{name}/{title}: a Loki panel that is not a logs panel"
        ));
    }
    if p["datasource"]["uid"] != "${loki}" {
        problems.push(format!("{name}/{title}: panel datasource is not ${{loki}}"));
    }
    if p["description"].as_str().unwrap_or_default().len() < 20 {
        problems.push(format!("{name}/{title}: no description"));
    }
    let ts = p["targets"].as_array().cloned().unwrap_or_default();
    if ts.len() != 1 {
        problems.push(format!("{name}/{title}: {} targets, want 1", ts.len()));
    }
    for t in ts {
        let expr = t["expr"].as_str().unwrap_or_default();
        if t["datasource"]["uid"] != "${loki}" {
            problems.push(format!(
                "{name}/{title}: target datasource is not ${{loki}}"
            ));
        }
        // The stream selector: only the labels ptc-metrics gives its streams.
        let Some(selector) = expr
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
            .map(|(s, _)| s)
        else {
            problems.push(format!("{name}/{title}: no stream selector: {expr}"));
            continue;
        };
        let mut labels = BTreeSet::new();
        for m in selector.split(',') {
            let m = m.trim();
            let Some(i) = m.find(['=', '!']) else {
                problems.push(format!("{name}/{title}: bad matcher {m:?}"));
                continue;
            };
            labels.insert(m[..i].trim().to_string());
        }
        if !labels
            .iter()
            .all(|l| ["job", "project", "branch", "kind"].contains(&l.as_str()))
        {
            problems.push(format!(
                "{name}/{title}: labels ptc-metrics does not set: {labels:?}"
            ));
        }
        if !selector.contains("project=\"$project\"") || !selector.contains("branch=\"$branch\"") {
            problems.push(format!(
                "{name}/{title}: not filtered by $project and $branch: {expr}"
            ));
        }
        if !selector.contains("kind=~\"failure") || !expr.contains("| json") {
            problems.push(format!(
                "{name}/{title}: not the failure events, parsed: {expr}"
            ));
        }
    }
    problems
}

#[test]
fn logs_panels_show_the_events_of_the_selected_project_and_branch() {
    let mut found = 0;
    for (name, d) in dashboards() {
        let vars: BTreeMap<&str, &Value> = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| (v["name"].as_str().unwrap_or(""), v))
            .collect();
        for p in panels(&d)
            .into_iter()
            .filter(|p| support::grafana::is_loki(p))
        {
            found += 1;
            let problems = logs_panel_problems(&name, p, &vars);
            assert!(problems.is_empty(), "{}", problems.join("\n"));
            // The check has teeth: a test-name label, and a panel without the branch, fail.
            let mut bad = p.clone();
            bad["targets"][0]["expr"] = Value::from(
                p["targets"][0]["expr"]
                    .as_str()
                    .unwrap()
                    .replacen('{', "{node_id=\"x\", ", 1),
            );
            assert_eq!(logs_panel_problems(&name, &bad, &vars).len(), 1, "{bad}");
            bad["targets"][0]["expr"] = Value::from(
                p["targets"][0]["expr"]
                    .as_str()
                    .unwrap()
                    .replace(", branch=\"$branch\"", ""),
            );
            assert_eq!(logs_panel_problems(&name, &bad, &vars).len(), 1, "{bad}");
        }
    }
    assert_eq!(found, 2, "the logs panels of ptc-test-health and ptc-ci");
}

// ---------------------------------------------------------------------------
// 2. Real data
// ---------------------------------------------------------------------------

/// Values read from the fixture files (they vary between regenerations of the fixtures).
#[derive(Clone, Debug)]
struct FixtureFacts {
    /// testsuite@time of junit-xunit2.xml (the last run pushed to main) and of junit-reruns.xml.
    suite_time_primary: f64,
    suite_time_reruns: f64,
    /// Earliest testsuite@timestamp of junit-xunit2.xml and of junit-reruns.xml, Unix seconds.
    start_primary: f64,
    start_reruns: f64,
    /// size-report.json tests slower than 1 s: node id -> call duration.
    slow_tests: BTreeMap<String, f64>,
    /// coverage.xml: lines-covered / lines-valid * 100, and uncovered lines per file.
    coverage: f64,
    uncovered: BTreeMap<String, f64>,
    /// coverage.xml: per `<package name>`, its classes' lines with hits / all their lines * 100.
    modules: BTreeMap<String, f64>,
}

impl FixtureFacts {
    fn dummy() -> Self {
        FixtureFacts {
            suite_time_primary: 1.0,
            suite_time_reruns: 1.0,
            start_primary: 0.0,
            start_reruns: 0.0,
            slow_tests: BTreeMap::new(),
            coverage: 0.0,
            uncovered: BTreeMap::new(),
            modules: BTreeMap::new(),
        }
    }

    fn read() -> Self {
        let junit = read_to_string(fixture("junit-xunit2.xml"));
        let reruns = read_to_string(fixture("junit-reruns.xml"));
        let report: Value = serde_json::from_str(&read_to_string(fixture("size-report.json")))
            .expect("size-report.json");
        let slow_tests = report["tests"]
            .as_array()
            .expect("tests")
            .iter()
            .filter_map(|t| {
                let d = t["duration"].as_f64()?;
                (d > 1.0).then(|| (t["name"].as_str().unwrap().to_string(), d))
            })
            .collect();
        let cov = read_to_string(fixture("coverage.xml"));
        let root = &cov[cov.find("<coverage ").expect("<coverage")..];
        let root = &root[..root.find('>').unwrap()];
        let covered: f64 = attr(root, "lines-covered").parse().unwrap();
        let valid: f64 = attr(root, "lines-valid").parse().unwrap();
        let mut uncovered = BTreeMap::new();
        for class in cov.split("<class ").skip(1) {
            let body = &class[..class.find("</class>").unwrap_or(class.len())];
            let file = attr(&body[..body.find('>').unwrap()], "filename");
            let n = body.matches("hits=\"0\"").count();
            if n > 0 {
                *uncovered.entry(file).or_insert(0.0) += n as f64;
            }
        }
        let mut modules = BTreeMap::new();
        for package in cov.split("<package ").skip(1) {
            let body = &package[..package.find("</package>").unwrap_or(package.len())];
            let name = attr(&format!(" {}", &body[..body.find('>').unwrap()]), "name");
            let (mut lines, mut missed) = (0.0, 0.0);
            for class in body.split("<class ").skip(1) {
                let class = &class[..class.find("</class>").unwrap_or(class.len())];
                lines += class.matches("<line ").count() as f64;
                missed += class.matches("hits=\"0\"").count() as f64;
            }
            modules.insert(name, (lines - missed) / lines * 100.0);
        }
        FixtureFacts {
            suite_time_primary: suite_times(&junit).0,
            suite_time_reruns: suite_times(&reruns).0,
            start_primary: suite_times(&junit).1,
            start_reruns: suite_times(&reruns).1,
            slow_tests,
            coverage: covered / valid * 100.0,
            uncovered,
            modules,
        }
    }
}

/// Value of `name="…"` in an XML start tag.
fn attr(tag: &str, name: &str) -> String {
    let pat = format!(" {name}=\"");
    let i = tag
        .find(&pat)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + pat.len();
    tag[i..i + tag[i..].find('"').unwrap()].to_string()
}

/// (sum of testsuite@time, earliest testsuite@timestamp as Unix seconds).
fn suite_times(junit: &str) -> (f64, f64) {
    let mut time = 0.0;
    let mut start = f64::INFINITY;
    for s in junit.split("<testsuite ").skip(1) {
        let tag = &s[..s.find('>').unwrap()];
        time += attr(tag, "time").parse::<f64>().unwrap();
        start = start.min(parse_rfc3339(&attr(tag, "timestamp")));
    }
    (time, start)
}

/// `2026-11-26T14:18:06.204468+00:00` (pytest's format; also `Z` and other offsets).
fn parse_rfc3339(s: &str) -> f64 {
    let num = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (num(0, 4), num(5, 7), num(8, 10));
    let (hh, mm) = (num(11, 13), num(14, 16));
    let rest = &s[17..];
    let off_at = rest.find(['+', '-', 'Z']).unwrap_or(rest.len());
    let sec: f64 = rest[..off_at].parse().unwrap();
    let offset = match rest[off_at..].chars().next() {
        Some(sign @ ('+' | '-')) => {
            let o = &rest[off_at + 1..];
            let v = (o[0..2].parse::<i64>().unwrap() * 60 + o[3..5].parse::<i64>().unwrap()) * 60;
            if sign == '+' {
                v
            } else {
                -v
            }
        }
        _ => 0,
    };
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    (days * 86400 + hh * 3600 + mm * 60 - offset) as f64 + sec
}

/// The last value of every series of a query result, keyed by its labels.
#[derive(Debug, Clone)]
struct Series {
    labels: BTreeMap<String, String>,
    value: f64,
}

type Check = Box<dyn Fn(&[Series]) -> Result<(), String>>;

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12) || (a - b).abs() < 1e-12
}

fn by_label(series: &[Series], label: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut out = BTreeMap::new();
    for s in series {
        let k = s.labels.get(label).cloned().unwrap_or_default();
        if out.insert(k.clone(), s.value).is_some() {
            return Err(format!("two series with {label}={k:?}"));
        }
    }
    Ok(out)
}

/// Exactly these series (by the value of `label`) with these values.
fn exact(label: &'static str, want: &[(&str, f64)]) -> Check {
    let want: BTreeMap<String, f64> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    Box::new(move |series| {
        let got = by_label(series, label)?;
        let keys_ok = got.keys().eq(want.keys());
        let vals_ok = keys_ok && want.iter().all(|(k, v)| close(got[k], *v, 1e-9));
        if vals_ok {
            Ok(())
        } else {
            Err(format!("by {label}: want {want:?}, got {got:?}"))
        }
    })
}

/// One series whose value lies in [lo, hi].
fn single(lo: f64, hi: f64) -> Check {
    Box::new(move |series| match series {
        [s] if s.value >= lo && s.value <= hi => Ok(()),
        _ => Err(format!("want one series in [{lo}, {hi}], got {series:?}")),
    })
}

fn single_eq(v: f64) -> Check {
    Box::new(move |series| match series {
        [s] if close(s.value, v, 1e-9) => Ok(()),
        _ => Err(format!("want one series = {v}, got {series:?}")),
    })
}

/// `increase()` over a Pushgateway counter: the last push's counts times the extrapolation
/// factor `f` that Prometheus applies to every series of the group at that instant (measured
/// on `pytest_runs_total`, which the last push raised by exactly 1).
fn counts_of_last_push(label: &'static str, want: &[(&str, f64)], f: f64) -> Check {
    let want: BTreeMap<String, f64> = want.iter().map(|(k, v)| (k.to_string(), *v * f)).collect();
    Box::new(move |series| {
        let got = by_label(series, label)?;
        let ok = got.keys().eq(want.keys()) && want.iter().all(|(k, w)| close(got[k], *w, 1e-6));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "by {label}: want {want:?} (counts x {f}), got {got:?}"
            ))
        }
    })
}

/// Every series keyed by `(a, b)` labels equals `want` (0 where not listed), and every
/// non-zero expectation is present.
fn exact2(a: &'static str, b: &'static str, want: &[(&str, &str, f64)]) -> Check {
    let want: BTreeMap<(String, String), f64> = want
        .iter()
        .map(|(x, y, v)| ((x.to_string(), y.to_string()), *v))
        .collect();
    Box::new(move |series| {
        let mut got = BTreeMap::new();
        for s in series {
            let k = (
                s.labels.get(a).cloned().unwrap_or_default(),
                s.labels.get(b).cloned().unwrap_or_default(),
            );
            got.insert(k, s.value);
        }
        let mut errs = Vec::new();
        for (k, v) in &got {
            let w = want.get(k).copied().unwrap_or(0.0);
            if !close(*v, w, 1e-9) {
                errs.push(format!("{k:?}: got {v}, want {w}"));
            }
        }
        for (k, w) in &want {
            if *w != 0.0 && !got.contains_key(k) {
                errs.push(format!("{k:?}: missing, want {w}"));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    })
}

/// The expectation for every dashboard target, keyed "uid / panel title / refId".
///
/// Main got two pushes: the reruns run, then the primary run (junit-xunit2.xml, with
/// coverage). Per-run gauges therefore show the primary run (fixtures/EXPECTED.md, with the
/// collection-skipped module counted as unsized, as METRICS.md says); increase() over the
/// cumulative families shows the primary run's contribution.
fn expectations(f: &FixtureFacts, x: f64) -> BTreeMap<String, Check> {
    let mut m: BTreeMap<String, Check> = BTreeMap::new();
    let sized = 84.0;
    let zeros4 = |v: &[(&'static str, f64)]| -> Vec<(&'static str, f64)> {
        ["small", "medium", "large", "xlarge"]
            .iter()
            .map(|s| {
                (
                    *s,
                    v.iter().find(|(k, _)| k == s).map(|x| x.1).unwrap_or(0.0),
                )
            })
            .collect()
    };
    let th = "ptc-test-health / ";
    m.insert(
        format!("{th}Size distribution (last run) / A"),
        exact(
            "size",
            &[
                ("small", 68.0),
                ("medium", 12.0),
                ("large", 2.0),
                ("xlarge", 2.0),
            ],
        ),
    );
    m.insert(
        format!("{th}Size share vs target bands / A"),
        exact(
            "size",
            &[
                ("small", 68.0 / sized),
                ("medium", 12.0 / sized),
                ("large+xlarge", 4.0 / sized),
            ],
        ),
    );
    m.insert(
        format!("{th}Size share vs target bands / B"),
        exact(
            "size",
            &[("small", 0.75), ("medium", 0.10), ("large+xlarge", 0.02)],
        ),
    );
    m.insert(
        format!("{th}Size share vs target bands / C"),
        exact(
            "size",
            &[("small", 0.85), ("medium", 0.20), ("large+xlarge", 0.08)],
        ),
    );
    m.insert(format!("{th}Tests (last run) / A"), single_eq(90.0));
    m.insert(format!("{th}Flaky tests (last run) / A"), single_eq(1.0));
    m.insert(
        format!("{th}Flaky rate (last run) / A"),
        single_eq(1.0 / 90.0),
    );
    m.insert(format!("{th}Runs (in range) / A"), single_eq(x));
    m.insert(
        format!("{th}Tests by outcome / A"),
        exact(
            "outcome",
            &[
                ("passed", 57.0),
                ("failed", 18.0),
                ("error", 3.0),
                ("xfailed", 6.0),
                ("skipped", 6.0),
            ],
        ),
    );
    m.insert(
        format!("{th}Tests by size and outcome (last run) / A"),
        exact2(
            "size",
            "outcome",
            &[
                ("small", "passed", 42.0),
                ("small", "failed", 15.0),
                ("small", "error", 2.0),
                ("small", "xfailed", 5.0),
                ("small", "skipped", 4.0),
                ("medium", "passed", 7.0),
                ("medium", "failed", 2.0),
                ("medium", "error", 1.0),
                ("medium", "xfailed", 1.0),
                ("medium", "skipped", 1.0),
                ("large", "passed", 2.0),
                ("xlarge", "passed", 2.0),
                ("unsized", "passed", 4.0),
                ("unsized", "failed", 1.0),
                ("unsized", "skipped", 1.0),
            ],
        ),
    );
    m.insert(
        format!("{th}Flaky across archived runs, by size (ptc-metrics history) / A"),
        exact(
            "size",
            &[
                ("small", 1.0),
                ("medium", 0.0),
                ("large", 0.0),
                ("xlarge", 0.0),
            ],
        ),
    );
    m.insert(
        format!("{th}Flaky tests by size / A"),
        Box::new(|s: &[Series]| {
            let got = by_label(s, "size")?;
            let ok = got.get("small") == Some(&1.0)
                && got.len() >= 4
                && got.iter().all(|(k, v)| k == "small" || *v == 0.0);
            if ok {
                Ok(())
            } else {
                Err(format!("want small=1 and zeros, got {got:?}"))
            }
        }),
    );
    m.insert(
        format!("{th}Hermeticity violations (last run) / A"),
        exact(
            "resource",
            &[
                ("network", 0.0),
                ("filesystem", 0.0),
                ("process", 0.0),
                ("database", 0.0),
                ("sleep", 0.0),
            ],
        ),
    );

    let du = "ptc-durations / ";
    // 90 tests: 86 within 0.1 s, test_over_tight_baseline (0.1 s sleep) within 0.5 s, and the
    // three 1.1 s timing tests within 5 s.
    m.insert(
        format!("{du}Test durations by size and outcome (tests per push) / A"),
        counts_of_last_push(
            "le",
            &[
                ("0.1", 86.0),
                ("0.5", 87.0),
                ("1", 87.0),
                ("5", 90.0),
                ("10", 90.0),
                ("30", 90.0),
                ("60", 90.0),
                ("300", 90.0),
                ("900", 90.0),
                ("+Inf", 90.0),
            ],
            x,
        ),
    );
    m.insert(format!("{du}Duration percentiles / A"), single(1e-9, 0.1));
    m.insert(format!("{du}Duration percentiles / B"), single(1e-9, 0.1));
    // rank 0.99 * 90 = 89.1 lies in the (1, 5] bucket: 1 + 4 * (89.1 - 87) / 3.
    m.insert(
        format!("{du}Duration percentiles / C"),
        single(3.8 - 1e-6, 3.8 + 1e-6),
    );
    m.insert(
        format!("{du}Mean test duration by size (in range) / A"),
        Box::new(|s: &[Series]| {
            let got = by_label(s, "size")?;
            let keys: Vec<&str> = got.keys().map(String::as_str).collect();
            // small: 3 x 1.1 s + 0.1 s over 68 tests; the other sizes are fast.
            let ok = keys == ["large", "medium", "small", "unsized", "xlarge"]
                && (0.045..0.06).contains(&got["small"])
                && got
                    .iter()
                    .all(|(k, v)| k == "small" || (0.0..0.1).contains(v));
            if ok {
                Ok(())
            } else {
                Err(format!("got {got:?}"))
            }
        }),
    );
    m.insert(
        format!("{du}Timing violations per push / A"),
        counts_of_last_push(
            "size",
            &[
                ("small", 3.0),
                ("medium", 0.0),
                ("large", 0.0),
                ("xlarge", 0.0),
            ],
            x,
        ),
    );
    m.insert(
        format!("{du}Timing violations (last run) / A"),
        exact("size", &zeros4(&[("small", 3.0)])),
    );
    m.insert(
        format!("{du}Baseline violations (last run) / A"),
        exact("size", &zeros4(&[("small", 1.0)])),
    );
    m.insert(
        format!("{du}Tests near their limit (last run) / A"),
        exact("size", &zeros4(&[])),
    );
    let slow = f.slow_tests.clone();
    m.insert(
        format!("{du}Slowest tests (per-test series) / A"),
        Box::new(move |s: &[Series]| {
            let got = by_label(s, "test")?;
            let sizes_ok = s
                .iter()
                .all(|x| x.labels.get("size").map(String::as_str) == Some("small"));
            let ok = sizes_ok
                && slow.len() == 3
                && got.keys().eq(slow.keys())
                && slow.iter().all(|(k, v)| close(got[k], *v, 1e-9));
            if ok {
                Ok(())
            } else {
                Err(format!("want {slow:?} (all small), got {s:?}"))
            }
        }),
    );

    let ci = "ptc-ci / ";
    let t2 = f.suite_time_primary;
    let (lo, hi) = (t2.min(f.suite_time_reruns), t2.max(f.suite_time_reruns));
    m.insert(
        format!("{ci}Suite duration / A"),
        Box::new(move |s: &[Series]| match s {
            [x] if close(x.value, t2, 1e-9)
                && x.labels.get("python_version").map(String::as_str) == Some("3.12") =>
            {
                Ok(())
            }
            _ => Err(format!(
                "want one series {t2} with python_version=3.12, got {s:?}"
            )),
        }),
    );
    m.insert(
        format!("{ci}Median suite duration (24 h) / A"),
        single(lo, hi),
    );
    m.insert(format!("{ci}Suite duration (last run) / A"), single_eq(t2));
    m.insert(
        format!("{ci}Last run started / A"),
        single(
            f.start_primary * 1000.0 - 1.0,
            f.start_primary * 1000.0 + 1.0,
        ),
    );
    // Queried after the push, within the test's few minutes: now - the run's own start.
    let since = now_s() - f.start_primary;
    m.insert(
        format!("{ci}Time since last run / A"),
        single(since - 1.0, since + 600.0),
    );
    m.insert(format!("{ci}Runs (in range) / A"), single_eq(x));
    let failures = [
        ("assertion", 14.0),
        ("error", 3.0),
        ("timing_violation", 4.0),
        ("hermeticity_violation", 0.0),
    ];
    m.insert(
        format!("{ci}Failures by type (in range) / A"),
        counts_of_last_push("failure_type", &failures, x),
    );
    m.insert(
        format!("{ci}Failures by type per push / A"),
        counts_of_last_push("failure_type", &failures, x),
    );

    let co = "ptc-coverage / ";
    let cov = f.coverage;
    m.insert(format!("{co}Line coverage vs target / A"), single_eq(cov));
    m.insert(format!("{co}Line coverage vs target / B"), single_eq(80.0));
    m.insert(format!("{co}Coverage (last run) / A"), single_eq(cov));
    let unc = f.uncovered.clone();
    let unc_total: f64 = unc.values().sum();
    m.insert(
        format!("{co}Uncovered lines by file (last run) / A"),
        Box::new(move |s: &[Series]| {
            let got = by_label(s, "file")?;
            if !unc.is_empty() && got == unc {
                Ok(())
            } else {
                Err(format!("want {unc:?}, got {got:?}"))
            }
        }),
    );
    m.insert(format!("{co}Uncovered lines / A"), single_eq(unc_total));
    // $branch is main, the default branch: both lines are the primary run's coverage.
    m.insert(
        format!("{co}Coverage: branch vs default branch / A"),
        single_eq(cov),
    );
    m.insert(
        format!("{co}Coverage: branch vs default branch / B"),
        single_eq(cov),
    );
    // The fixture's one package, src.ledgerkit: 47 of 55 lines, the whole report.
    let modules = f.modules.clone();
    m.insert(
        format!("{co}Least covered modules (last run) / A"),
        Box::new(move |s: &[Series]| {
            let got = by_label(s, "module")?;
            let ok = !modules.is_empty()
                && got.keys().eq(modules.keys())
                && modules.iter().all(|(k, w)| close(got[k], *w, 1e-9));
            if ok {
                Ok(())
            } else {
                Err(format!("want {modules:?}, got {got:?}"))
            }
        }),
    );
    m
}

fn substitute(expr: &str) -> String {
    grafana::substitute(expr, PROJECT, BRANCH, WINDOW)
}

fn last_values(data: &Value, end: f64) -> Result<Vec<Series>, String> {
    let result = data["result"]
        .as_array()
        .ok_or_else(|| format!("no result: {data}"))?;
    let mut out = Vec::new();
    for r in result {
        let labels = r["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let point = if data["resultType"] == "matrix" {
            let values = r["values"].as_array().ok_or("no values")?;
            let last = values.last().ok_or("empty series")?;
            // The panel must show the current state: the series reaches the end of the range.
            let ts = last[0].as_f64().unwrap_or(0.0);
            if (end - ts).abs() > 0.5 {
                return Err(format!("series ends {}s before the range: {r}", end - ts));
            }
            last.clone()
        } else {
            r["value"].clone()
        };
        let value = parse_prom_float(point[1].as_str().unwrap_or("NaN"));
        if value.is_nan() {
            return Err(format!("NaN in {r}"));
        }
        out.push(Series { labels, value });
    }
    if out.is_empty() {
        return Err("empty result".into());
    }
    Ok(out)
}

fn push(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ptc-metrics"))
        .arg("push")
        .args(args)
        .output()
        .expect("run ptc-metrics push");
    assert!(
        out.status.success(),
        "ptc-metrics push {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rule_files() -> Vec<PathBuf> {
    [
        "alerts/ptc-metrics.rules.yml",
        "alerts/coverage-targets.rules.yml",
    ]
    .iter()
    .map(|f| repo().join(f))
    .collect()
}

#[test]
fn every_panel_query_returns_the_fixture_values_from_a_real_stack() {
    let facts = FixtureFacts::read();
    let pg = Pushgateway::start();
    let mut builder = Prometheus::builder().scrape(&[&pg.addr]);
    for f in rule_files() {
        builder = builder.rule_file(f);
    }
    let prom = builder.start();
    let started = now_s();
    let t0 = Instant::now();

    let common = |branch: &'static str| -> Vec<String> {
        [
            "--gateway",
            &pg.url,
            "--project",
            PROJECT,
            "--branch",
            branch,
            "--label",
            "python_version=3.12",
            "--per-test-slower-than",
            "1",
            "--no-ci-detect",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |files: &[String], branch: &'static str| {
        let mut a: Vec<String> = files.to_vec();
        a.extend(common(branch));
        push(&a.iter().map(String::as_str).collect::<Vec<_>>());
    };
    // Main, run 1: the reruns run (no coverage). Wait until Prometheus has scraped it so the
    // second push is a step in the cumulative series.
    run(
        &[
            fixture("junit-reruns.xml"),
            "--size-report".into(),
            fixture("size-report-reruns.json"),
        ],
        BRANCH,
    );
    let sel = format!("project=\"{PROJECT}\",branch=\"{BRANCH}\"");
    prom.wait_for(
        &format!("pytest_runs_total{{{sel}}} == 1"),
        |d| d["result"].as_array().is_some_and(|r| r.len() == 1),
        Duration::from_secs(30),
    );
    // Main, run 2: the primary run with coverage. Another branch gets the reruns run.
    run(
        &[
            fixture("junit-xunit2.xml"),
            "--size-report".into(),
            fixture("size-report.json"),
            "--coverage".into(),
            fixture("coverage.xml"),
        ],
        BRANCH,
    );
    // The other branch's run carries one shard's coverage: 33 of 55 lines (60 %), 25.45
    // points below main's 47 of 55; it is a release build (`--label release=…`), which the
    // dashboards' "Releases" annotation marks.
    run(
        &[
            fixture("junit-reruns.xml"),
            "--size-report".into(),
            fixture("size-report-reruns.json"),
            "--coverage".into(),
            fixture("coverage-shard-1.xml"),
            "--label".into(),
            format!("release={RELEASE}"),
        ],
        OTHER_BRANCH,
    );
    prom.wait_for(
        &format!("pytest_runs_total{{project=\"{PROJECT}\"}} == 2 or pytest_runs_total{{project=\"{PROJECT}\",branch=\"{OTHER_BRANCH}\"}}"),
        |d| d["result"].as_array().is_some_and(|r| r.len() == 2),
        Duration::from_secs(20),
    );
    // `ptc-metrics history --gateway` over an archive of main's two fixture runs on one commit
    // (primary, then reruns): test_fails_first_time_only failed and passed on commit abc, so
    // one small test is flaky across runs.
    let archive = tempfile::tempdir().expect("temp dir");
    for (i, (junit, size)) in [
        ("junit-xunit2.xml", "size-report.json"),
        ("junit-reruns.xml", "size-report-reruns.json"),
    ]
    .iter()
    .enumerate()
    {
        let d = archive.path().join(format!("run-{i}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::copy(fixture(junit), d.join("junit.xml")).expect("copy");
        std::fs::copy(fixture(size), d.join("size-report.json")).expect("copy");
        let meta = serde_json::json!({
            "project": PROJECT, "branch": BRANCH, "labels": {"python_version": "3.12"},
            "timestamp": format!("2026-11-26T1{i}:00:00Z"), "commit": "abc",
        });
        std::fs::write(d.join("run.json"), meta.to_string()).expect("run.json");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ptc-metrics"))
        .args([
            "history",
            &archive.path().display().to_string(),
            "--gateway",
            &pg.url,
        ])
        .output()
        .expect("run ptc-metrics history");
    assert!(
        out.status.success(),
        "history: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    prom.wait_for(
        &format!("pytest_history_flaky_tests{{{sel}}}"),
        |d| d["result"].as_array().is_some_and(|r| r.len() == 4),
        Duration::from_secs(30),
    );
    // Recording rules have run on the new data.
    prom.wait_for(
        &format!("ptc:pytest_flaky_tests:ratio{{{sel}}}"),
        |d| {
            d["result"].as_array().is_some_and(|r| {
                r.iter().any(|s| {
                    let v = parse_prom_float(s["value"][1].as_str().unwrap_or("0"));
                    (v - 1.0 / 90.0).abs() < 1e-12
                })
            })
        },
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("[timing] stack up and fed in {:?}", t0.elapsed());

    let mut failures = Vec::new();

    // Template variables, as Grafana's label_values() asks Prometheus.
    let label_values = |label: &str, matcher: &str| -> BTreeSet<String> {
        let url = format!("{}/api/v1/label/{label}/values", prom.url);
        let resp = http()
            .get(&url)
            .query(&[("match[]", matcher)])
            .send()
            .expect("label values");
        let v: Value = serde_json::from_str(&resp.text().unwrap_or_default()).unwrap_or_default();
        v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    };
    for (name, d) in dashboards() {
        for var in d["templating"]["list"].as_array().into_iter().flatten() {
            let Some(q) = var["query"].as_str() else {
                continue;
            };
            let Some(inner) = q
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
            else {
                continue;
            };
            let (matcher, label) = inner
                .rsplit_once(',')
                .expect("label_values(selector, label)");
            let got = label_values(label.trim(), &substitute(matcher.trim()));
            let want: BTreeSet<String> = match label.trim() {
                "project" => [PROJECT.to_string()].into(),
                "branch" => [BRANCH.to_string(), OTHER_BRANCH.to_string()].into(),
                // The sizes and outcomes with durations on main (both runs).
                "size" => ["large", "medium", "small", "unsized", "xlarge"]
                    .map(String::from)
                    .into(),
                "outcome" => ["error", "failed", "passed", "skipped", "xfailed"]
                    .map(String::from)
                    .into(),
                other => panic!("{name}: unexpected variable label {other}"),
            };
            if got != want {
                failures.push(format!("{name}: variable {q}: want {want:?}, got {got:?}"));
            }
        }
    }

    // Every panel query, evaluated at one instant `end` (range queries end exactly there).
    let start = (started - 5.0).floor();
    let end = start + (now_s() - start).floor();
    let instant = |expr: &str| -> (u16, Value) {
        let url = format!("{}/api/v1/query", prom.url);
        let resp = http()
            .get(&url)
            .query(&[("query", expr.to_string()), ("time", end.to_string())])
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let code = resp.status().as_u16();
        (
            code,
            serde_json::from_str(&resp.text().unwrap_or_default()).unwrap_or_default(),
        )
    };
    // The extrapolation factor of increase() over [WINDOW] at `end`: pytest_runs_total went
    // from 1 to 2, so increase() returns exactly the factor.
    let (_, raw_runs) = instant(&format!("pytest_runs_total{{{sel}}}"));
    let (_, inc_runs) = instant(&format!("increase(pytest_runs_total{{{sel}}}[{WINDOW}])"));
    let runs = vector_samples(&raw_runs["data"]);
    let factor = vector_samples(&inc_runs["data"])
        .first()
        .map(|s| s.value)
        .unwrap_or(f64::NAN);
    if runs.len() != 1 || runs[0].value != 2.0 || !(0.9..=5.0).contains(&factor) {
        failures.push(format!(
            "runs: want pytest_runs_total 2 and a sane increase factor, got {runs:?} and {factor}"
        ));
    }
    let checks = expectations(&facts, factor);
    for (key, t) in targets() {
        let expr = substitute(t["expr"].as_str().unwrap_or_default());
        let data = if t["instant"] == true {
            let (code, v) = instant(&expr);
            if code != 200 || v["status"] != "success" {
                failures.push(format!("{key}: query failed ({code}): {v}\n  {expr}"));
                continue;
            }
            v["data"].clone()
        } else {
            prom.query_range(&expr, start, end, 1.0)
        };
        let series = match last_values(&data, end) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{key}: {e}\n  {expr}"));
                continue;
            }
        };
        match checks.get(&key) {
            None => failures.push(format!("{key}: no expectation")),
            Some(check) => {
                if let Err(e) = check(&series) {
                    failures.push(format!("{key}: {e}\n  {expr}"));
                }
            }
        }
    }

    // The heatmap's $size and $outcome selectors (all by default, as above): small passed
    // tests only, all 42 of the last push within 0.1 s.
    let heatmap = targets()
        .into_iter()
        .find(|(k, _)| k.starts_with("ptc-durations / Test durations by size and outcome"))
        .map(|(_, t)| t["expr"].as_str().unwrap_or_default().to_string())
        .expect("the duration heatmap");
    let expr = substitute(
        &heatmap
            .replace("$size", "small")
            .replace("$outcome", "passed"),
    );
    let all_le = [
        "0.1", "0.5", "1", "5", "10", "30", "60", "300", "900", "+Inf",
    ];
    let check = counts_of_last_push("le", &all_le.map(|le| (le, 42.0)), factor);
    match last_values(&prom.query_range(&expr, start, end, 1.0), end) {
        Ok(series) => {
            if let Err(e) = check(&series) {
                failures.push(format!("heatmap for small passed tests: {e}\n  {expr}"));
            }
        }
        Err(e) => failures.push(format!("heatmap for small passed tests: {e}\n  {expr}")),
    }

    // The "Releases" annotation of every dashboard: one event, at the start of the run pushed
    // with --label release=1.4.0 (Grafana takes the value as the time: useValueForTime).
    for (name, d) in dashboards() {
        let anns: Vec<&Value> = d["annotations"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["name"] == "Releases")
            .collect();
        let [a] = anns[..] else {
            failures.push(format!(
                "{name}: want one \"Releases\" annotation, got {}",
                anns.len()
            ));
            continue;
        };
        if a["useValueForTime"] != true {
            failures.push(format!(
                "{name}: the Releases annotation must use the value as time"
            ));
        }
        let expr = substitute(a["target"]["expr"].as_str().unwrap_or_default());
        let (code, v) = instant(&expr);
        let got: Vec<(String, f64)> = vector_samples(&v["data"])
            .into_iter()
            .map(|x| {
                (
                    x.labels.get("release").cloned().unwrap_or_default(),
                    x.value,
                )
            })
            .collect();
        let want = vec![(RELEASE.to_string(), facts.start_reruns * 1000.0)];
        if code != 200
            || got.len() != 1
            || got[0].0 != want[0].0
            || (got[0].1 - want[0].1).abs() > 1.0
        {
            failures.push(format!(
                "{name}: Releases annotation: want {want:?}, got {got:?}\n  {expr}"
            ));
        }
    }

    // The rules on the same real data: no evaluation errors, and exactly the alerts that the
    // fixtures call for. Both runs have a flaky share over 1 % (1 and 2 of 90 tests); the
    // primary run's distribution (81 / 14 / 4.8 %) is in band, coverage 85 % is over 80 %,
    // the suite takes seconds, and no test is near its limit. The other branch's 60 % is
    // below the target of 80 % and 25.45 points below main's.
    let firing = prom.wait_for(
        &format!("ALERTS{{project=\"{PROJECT}\",alertstate=\"firing\"}}"),
        |d| d["result"].as_array().is_some_and(|r| r.len() >= 4),
        Duration::from_secs(15),
    );
    std::thread::sleep(Duration::from_secs(2));
    let alerts = prom.alerts();
    let got: BTreeSet<String> = alerts["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["labels"]["project"] == PROJECT)
        // PtcPipelineStale reads the runs' own start (pytest_last_run_timestamp_seconds), the
        // fixtures' testsuite@timestamp: it fires once the fixtures are a day old, whenever
        // they were pushed (alerts/tests/stale.test.yml tests it).
        .filter(|a| a["labels"]["alertname"] != "PtcPipelineStale")
        .map(|a| {
            format!(
                "{} {} {}",
                a["labels"]["alertname"].as_str().unwrap_or(""),
                a["labels"]["branch"].as_str().unwrap_or(""),
                a["state"].as_str().unwrap_or("")
            )
        })
        .collect();
    let want: BTreeSet<String> = [
        format!("PytestFlakyRateHigh {BRANCH} firing"),
        format!("PytestFlakyRateHigh {OTHER_BRANCH} firing"),
        // 1 test flaky across main's archived runs of 90 tests in the newest (ptc-metrics history).
        format!("PytestFlakyAcrossRunsRateHigh {BRANCH} firing"),
        format!("TestCoverageBelowTarget {OTHER_BRANCH} firing"),
        format!("TestCoverageBelowDefaultBranch {OTHER_BRANCH} firing"),
    ]
    .into();
    if got != want {
        failures.push(format!(
            "alerts on real data: want {want:?}, got {got:?}\n{firing}"
        ));
    }
    for a in alerts["alerts"].as_array().into_iter().flatten() {
        if a["labels"]["alertname"] == "PytestFlakyAcrossRunsRateHigh" {
            let want = format!(
                "1.111% of the tests of {PROJECT} on branch {BRANCH} failed intermittently across the archived \
                 runs ptc-metrics history analysed: passed and failed on the same commit, or flipped between \
                 passed and failed (alert above 1 %). `ptc-metrics history` names them."
            );
            if a["annotations"]["description"] != want.as_str() {
                failures.push(format!(
                    "description: want {want:?}, got {}",
                    a["annotations"]["description"]
                ));
            }
        }
        if a["labels"]["alertname"] == "PytestFlakyRateHigh" && a["labels"]["branch"] == BRANCH {
            let want = format!(
                "1.111% of the tests in the last run of {PROJECT} on branch {BRANCH} passed only after a rerun (alert above 1 %)."
            );
            if a["annotations"]["description"] != want.as_str() {
                failures.push(format!(
                    "description: want {want:?}, got {}",
                    a["annotations"]["description"]
                ));
            }
        }
    }
    let rules = prom.rules();
    for g in rules["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            let health = r["health"].as_str().unwrap_or("");
            // Groups with a long interval may not have run yet ("unknown"); an error never.
            if health == "err" || (health != "ok" && g["interval"].as_f64().unwrap_or(0.0) <= 1.0) {
                failures.push(format!(
                    "rule {} in {}: health {health}: {}",
                    r["name"], g["name"], r["lastError"]
                ));
            }
        }
    }
    // The trend rules (5 m group) evaluated by hand on the same data must not error either.
    for expr in [
        format!("ptc:pytest_timing_violations:per_run_1w{{{sel}}} or sum by (job, project, branch) (increase(pytest_timing_violations_total{{{sel}}}[1w])) / sum by (job, project, branch) (max without (shard) (increase(pytest_runs_total{{{sel}}}[1w])))"),
        format!("quantile_over_time(0.5, max without (shard) (ci_test_suite_duration_seconds{{{sel}}})[1d:])"),
        format!("quantile_over_time(0.5, max without (shard) (pytest_test_case_duration_seconds{{{sel}}})[7d:])"),
    ] {
        let (code, v) = prom.query_raw(&expr);
        let n = v["data"]["result"].as_array().map(Vec::len).unwrap_or(0);
        if code != 200 || n == 0 {
            failures.push(format!("trend expression failed or empty ({code}): {expr}: {v}"));
        }
    }

    eprintln!("[timing] whole stack test {:?}", t0.elapsed());
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}\n--- prometheus log ---\n{}",
        failures.len(),
        failures.join("\n"),
        prom.log()
    );
}
