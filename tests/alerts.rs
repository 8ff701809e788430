//! Alert rules (`alerts/*.rules.yml`), their promtool unit tests (`alerts/tests/`), the
//! runbooks (`docs/runbooks/`) and the Alertmanager config (`alerts/alertmanager.yml`),
//! checked with the real Debian `promtool`, `amtool` and `prometheus-alertmanager`.
//!
//! * `promtool check rules` must be clean and `promtool test rules` must pass.
//! * Every alert must have a firing and a quiet unit test, severity, summary, a description
//!   that humanizes `$value`, and a `runbook_url` to an existing `docs/runbooks/<alert>.md`.
//! * Mutated rules (a threshold or a default changed) must make the unit tests fail, so the
//!   unit tests are known to bite.
//! * Routing: `amtool config routes test --verify.receivers` for every severity and every
//!   alert of the rule file; inhibition and grouping on a live Alertmanager that runs the
//!   shipped routes and inhibit rules (receivers swapped for a loopback webhook).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::*;

const RULE_FILES: [&str; 2] = [
    "alerts/ptc-metrics.rules.yml",
    "alerts/coverage-targets.rules.yml",
];
const AM_CONFIG: &str = "alerts/alertmanager.yml";
const RUNBOOK_BASE: &str = "https://github.com/ptc-metrics/ptc-metrics/blob/main/";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repo_path(rel: &str) -> String {
    repo().join(rel).display().to_string()
}

fn unit_test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("alerts/tests"))
        .expect("read alerts/tests")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no alerts/tests/*.test.yml");
    files
}

/// One `- alert:` block of the rule file, as text.
#[derive(Debug)]
struct AlertBlock {
    name: String,
    text: String,
}

/// Splits the rule files into their `- alert:` blocks (the files' layout is ours and fixed:
/// every rule starts with `      - alert:` or `      - record:`).
fn alert_blocks() -> Vec<AlertBlock> {
    let text: String = RULE_FILES
        .iter()
        .map(|f| read_to_string(repo().join(f)))
        .collect::<Vec<_>>()
        .join("\n");
    let mut blocks: Vec<AlertBlock> = Vec::new();
    let mut current: Option<AlertBlock> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("- alert:") || t.starts_with("- record:") || t.starts_with("- name:") {
            if let Some(b) = current.take() {
                blocks.push(b);
            }
            if let Some(name) = t.strip_prefix("- alert:") {
                current = Some(AlertBlock {
                    name: name.trim().to_string(),
                    text: String::new(),
                });
            }
        }
        if let Some(b) = current.as_mut() {
            b.text.push_str(line);
            b.text.push('\n');
        }
    }
    if let Some(b) = current.take() {
        blocks.push(b);
    }
    assert!(
        blocks.len() >= 11,
        "expected at least 11 alerts, found {blocks:?}"
    );
    blocks
}

fn severity_of(block: &AlertBlock) -> String {
    block
        .text
        .lines()
        .find_map(|l| l.trim().strip_prefix("severity:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("alert {} has no severity label", block.name))
}

#[test]
fn promtool_check_rules_is_clean() {
    let files: Vec<String> = RULE_FILES.iter().map(|f| repo_path(f)).collect();
    let mut args = vec!["check", "rules"];
    args.extend(files.iter().map(String::as_str));
    let out = promtool(&args);
    out.assert_success("promtool check rules");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(
        all.matches("SUCCESS").count(),
        RULE_FILES.len(),
        "promtool check rules: expected SUCCESS for every file:\n{all}"
    );
    for bad in ["lint", "WARNING", "FAILED", "duplicate"] {
        assert!(
            !all.contains(bad),
            "promtool check rules printed {bad:?}:\n{all}"
        );
    }
}

#[test]
fn promtool_unit_tests_pass() {
    let files: Vec<String> = unit_test_files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    let out = promtool(&args);
    out.assert_success("promtool test rules alerts/tests/*.test.yml");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(
        all.matches("SUCCESS").count(),
        files.len(),
        "every unit-test file must report SUCCESS:\n{all}"
    );
}

/// For every alert of the rule file there is a unit test where it fires (non-empty
/// `exp_alerts`) and one where it must stay quiet (`exp_alerts: []`).
#[test]
fn every_alert_has_firing_and_quiet_unit_tests() {
    let mut firing: BTreeSet<String> = BTreeSet::new();
    let mut quiet: BTreeSet<String> = BTreeSet::new();
    for file in unit_test_files() {
        let text = read_to_string(&file);
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(name) = line.trim().strip_prefix("alertname:") else {
                continue;
            };
            let name = name.trim().to_string();
            let exp = lines[i + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| l.starts_with("exp_alerts:"))
                .unwrap_or_else(|| {
                    panic!("{}: no exp_alerts after alertname {name}", file.display())
                });
            if exp == "exp_alerts: []" {
                quiet.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    let mut missing = Vec::new();
    for b in alert_blocks() {
        if !firing.contains(&b.name) {
            missing.push(format!("{}: no firing unit test", b.name));
        }
        if !quiet.contains(&b.name) {
            missing.push(format!("{}: no not-firing unit test", b.name));
        }
    }
    assert!(
        missing.is_empty(),
        "alerts without unit tests:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_alert_has_severity_annotations_and_an_existing_runbook() {
    let index = read_to_string(repo().join("docs/runbooks/README.md"));
    let mut problems = Vec::new();
    for b in alert_blocks() {
        let sev = severity_of(&b);
        if !["critical", "warning", "info"].contains(&sev.as_str()) {
            problems.push(format!("{}: severity {sev:?}", b.name));
        }
        for key in ["summary:", "description:", "runbook_url:"] {
            if !b.text.contains(key) {
                problems.push(format!("{}: no {key}", b.name));
            }
        }
        // The description shows the alert's value, humanized (never a raw float).
        let desc = b.text.split("description:").nth(1).unwrap_or_default();
        let desc = desc.split("runbook_url:").next().unwrap_or_default();
        let humanized = ["$value | humanize", "$value | printf"]
            .iter()
            .any(|p| desc.contains(p));
        if !humanized {
            problems.push(format!("{}: description does not humanize $value", b.name));
        }
        let url_line = b
            .text
            .lines()
            .find(|l| l.trim().starts_with("runbook_url:"))
            .unwrap_or_default();
        let url = url_line
            .trim()
            .trim_start_matches("runbook_url:")
            .trim()
            .trim_matches('"');
        let want = format!("{RUNBOOK_BASE}docs/runbooks/{}.md", b.name);
        if url != want {
            problems.push(format!("{}: runbook_url {url:?}, want {want:?}", b.name));
        }
        let page = repo().join(format!("docs/runbooks/{}.md", b.name));
        match std::fs::read_to_string(&page) {
            Err(e) => problems.push(format!("{}: {}: {e}", b.name, page.display())),
            Ok(text) => {
                if !text.starts_with(&format!("# {} (", b.name)) {
                    problems.push(format!(
                        "{}: runbook title is not '# {} (severity)'",
                        b.name, b.name
                    ));
                }
                if !text.contains(&format!("({sev})")) {
                    problems.push(format!("{}: runbook does not state severity {sev}", b.name));
                }
                if text.len() < 600 {
                    problems.push(format!(
                        "{}: runbook is a stub ({} bytes)",
                        b.name,
                        text.len()
                    ));
                }
            }
        }
        if !index.contains(&format!("[{}]({}.md)", b.name, b.name)) {
            problems.push(format!("{}: not listed in docs/runbooks/README.md", b.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Copies the rule files and the unit tests to a temp dir with `mutate` applied to the rule
/// file that holds `from`, runs `promtool test rules <test_file>` there and returns its output.
fn run_unit_test_on_mutated_rules(test_file: &str, what: &str, from: &str, to: &str) -> ToolOutput {
    let dir = tempfile::Builder::new()
        .prefix("ptc-alerts-mutant-")
        .tempdir()
        .expect("temp dir");
    let alerts = dir.path().join("alerts");
    std::fs::create_dir_all(alerts.join("tests")).expect("mkdir");
    let rules: Vec<String> = RULE_FILES
        .iter()
        .map(|f| read_to_string(repo().join(f)))
        .collect();
    assert_eq!(
        rules.iter().map(|r| r.matches(from).count()).sum::<usize>(),
        1,
        "mutation {what}: {from:?} must occur exactly once in the rule files"
    );
    for (f, r) in RULE_FILES.iter().zip(&rules) {
        let name = Path::new(f).file_name().expect("file name");
        std::fs::write(alerts.join(name), r.replace(from, to)).expect("write");
    }
    let test_src = repo().join("alerts/tests").join(test_file);
    let test_dst = alerts.join("tests").join(test_file);
    std::fs::copy(&test_src, &test_dst).expect("copy test");
    promtool(&["test", "rules", &test_dst.display().to_string()])
}

#[test]
fn unit_tests_fail_on_mutated_rules() {
    let mutants: [(&str, &str, &str, &str); 30] = [
        (
            "history.test.yml",
            "flaky across runs threshold 1 % -> 2 %",
            "ptc:pytest_history_flaky_tests:ratio > 0.01",
            "ptc:pytest_history_flaky_tests:ratio > 0.02",
        ),
        (
            "history.test.yml",
            "chronic tests counted per size instead of summed",
            "sum without (size) (pytest_history_chronic_violations) > 0",
            "max without (size) (pytest_history_chronic_violations) > 0",
        ),
        (
            "size-distribution.test.yml",
            "pyramid threshold 50 % -> 40 %",
            r#"ptc:pytest_test_size_distribution:ratio{size="small"} < 0.5"#,
            r#"ptc:pytest_test_size_distribution:ratio{size="small"} < 0.4"#,
        ),
        (
            "size-distribution.test.yml",
            "large+xlarge summed with medium",
            r#"ptc:pytest_test_size_distribution:ratio{size=~"large|xlarge"}"#,
            r#"ptc:pytest_test_size_distribution:ratio{size=~"medium|large|xlarge"}"#,
        ),
        (
            "trends.test.yml",
            "size shift threshold 10 points -> 20",
            "ptc:pytest_test_size_distribution:ratio_1d_offset_1w\n            ) > 0.10",
            "ptc:pytest_test_size_distribution:ratio_1d_offset_1w\n            ) > 0.20",
        ),
        (
            "trends.test.yml",
            "size shift counts unsized tests",
            r#"(increase(pytest_tests_total{size=~"small|medium|large|xlarge"}[1d]))"#,
            r#"(increase(pytest_tests_total{size=~"small|medium|large|xlarge|unsized"}[1d]))"#,
        ),
        (
            "shards-trends.test.yml",
            "size shares per shard",
            r#"sum by (job, project, branch, size) (increase(pytest_tests_total{size=~"small|medium|large|xlarge"}[1d]))"#,
            r#"sum by (job, project, branch, size, shard) (increase(pytest_tests_total{size=~"small|medium|large|xlarge"}[1d]))"#,
        ),
        (
            "run-health.test.yml",
            "coverage default target 80 -> 70",
            "max by (project) (test_coverage_percentage) * 0 + 80",
            "max by (project) (test_coverage_percentage) * 0 + 70",
        ),
        (
            "run-health.test.yml",
            "flaky rate threshold 1 % -> 2 %",
            "ptc:pytest_flaky_tests:ratio > 0.01",
            "ptc:pytest_flaky_tests:ratio > 0.02",
        ),
        (
            "stale.test.yml",
            "stale check blind between remote-written runs",
            "max by (job, project) (last_over_time(pytest_last_run_timestamp_seconds[10d]))",
            "max by (job, project) (pytest_last_run_timestamp_seconds)",
        ),
        (
            "stale.test.yml",
            "stale lookback shorter than an allowed age",
            "max by (job, project) (last_over_time(pytest_last_run_timestamp_seconds[10d]))",
            "max by (job, project) (last_over_time(pytest_last_run_timestamp_seconds[7d]))",
        ),
        (
            "trends.test.yml",
            "timing violations rising without the recent runs",
            "increase(pytest_timing_violations_total[1d])",
            "increase(pytest_timing_violations_total[1w])",
        ),
        (
            "run-health.test.yml",
            "suite duration ceiling 300 s -> 330 s",
            "max without (shard) (ci_test_suite_duration_seconds) > 300",
            "max without (shard) (ci_test_suite_duration_seconds) > 330",
        ),
        // Shards: every way of not putting a run back together must break a unit test.
        (
            "shards-trends.test.yml",
            "a run counted once per shard",
            "(max without (shard) (increase(pytest_runs_total[1w])))",
            "(sum without (shard) (increase(pytest_runs_total[1w])))",
        ),
        (
            "shards-trends.test.yml",
            "a recent run counted once per shard",
            "(max without (shard) (increase(pytest_runs_total[1d])))",
            "(sum without (shard) (increase(pytest_runs_total[1d])))",
        ),
        (
            "shards.test.yml",
            "wall time the sum of the shards' times",
            "max without (shard) (ci_test_suite_duration_seconds) > 300",
            "sum without (shard) (ci_test_suite_duration_seconds) > 300",
        ),
        (
            "shards-trends.test.yml",
            "median wall time of the fastest shard",
            "quantile_over_time(0.5, max without (shard) (ci_test_suite_duration_seconds)[1d:])",
            "quantile_over_time(0.5, min without (shard) (ci_test_suite_duration_seconds)[1d:])",
        ),
        (
            "shards.test.yml",
            "near-limit alert per shard",
            "sum without (shard) (pytest_tests_near_limit) > 0",
            "pytest_tests_near_limit > 0",
        ),
        (
            "shards.test.yml",
            "flaky tests per shard",
            "sum without (size, shard) (pytest_flaky_tests)",
            "sum without (size) (pytest_flaky_tests)",
        ),
        (
            "shards.test.yml",
            "a distribution despite a test of unknown size",
            r#"sum without (outcome, shard, size) (pytest_tests{size="unknown"}) > 0"#,
            r#"sum without (outcome, shard, size) (pytest_tests{size="unknown"}) > 5"#,
        ),
        (
            "shards-trends.test.yml",
            "per-test baseline per shard",
            "max without (shard) (pytest_test_case_duration_seconds)[7d:] offset 1d",
            "pytest_test_case_duration_seconds[7d] offset 1d",
        ),
        // Coverage against the default branch (coverage-targets.rules.yml).
        (
            "coverage-branches.test.yml",
            "coverage drop margin 0.1 -> 0.2 points",
            "max by (project) (ptc:default_branch_coverage:percent) * 0 + 0.1",
            "max by (project) (ptc:default_branch_coverage:percent) * 0 + 0.2",
        ),
        (
            "coverage-branches.test.yml",
            "master is not a default branch",
            r#"ptc:branch_coverage:percent{branch=~"main|master"}"#,
            r#"ptc:branch_coverage:percent{branch=~"main"}"#,
        ),
        (
            "coverage-branches.test.yml",
            "ptc_default_branch adds to main instead of replacing it",
            "  or on (project)\n",
            "  or\n",
        ),
        (
            "coverage-branches.test.yml",
            "a branch's best matrix entry counts",
            "min by (job, project, branch) (max without (shard) (test_coverage_percentage))",
            "max by (job, project, branch) (max without (shard) (test_coverage_percentage))",
        ),
        (
            "timing-blocks-prs.test.yml",
            "a split run counted once per shard",
            "max without (shard) (increase(pytest_runs_total[1d]))\n              unless",
            "sum without (shard) (increase(pytest_runs_total[1d]))\n              unless",
        ),
        (
            "timing-blocks-prs.test.yml",
            "a split run counted once per shard (ratio)",
            "max without (shard) (increase(pytest_runs_total[1d]))\n                  unless",
            "sum without (shard) (increase(pytest_runs_total[1d]))\n                  unless",
        ),
        (
            "timing-blocks-prs.test.yml",
            "the default branch's runs with violations count",
            "increase(pytest_runs_with_timing_violations_total[1d])\n                unless on (project, branch) ptc:pytest_default_branch:info",
            "increase(pytest_runs_with_timing_violations_total[1d])",
        ),
        (
            "timing-blocks-prs.test.yml",
            "ptc_default_branch adds to main instead of replacing it (runs)",
            "or on (project) max by (project, branch) (pytest_runs_total",
            "or max by (project, branch) (pytest_runs_total",
        ),
        (
            "timing-blocks-prs.test.yml",
            "two runs a day are enough",
            "ptc:pytest_runs_other_branches:increase_1d >= 3",
            "ptc:pytest_runs_other_branches:increase_1d >= 2",
        ),
    ];
    let mut survived = Vec::new();
    for (test_file, what, from, to) in mutants {
        let out = run_unit_test_on_mutated_rules(test_file, what, from, to);
        if out.success() {
            survived.push(format!(
                "{what} ({test_file}):\n{}{}",
                out.stdout, out.stderr
            ));
        }
    }
    assert!(
        survived.is_empty(),
        "the unit tests did not notice these rule changes:\n{}",
        survived.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Alertmanager
// ---------------------------------------------------------------------------

#[test]
fn amtool_check_config_is_clean() {
    let out = amtool(&["check-config", &repo_path(AM_CONFIG)]);
    out.assert_success("amtool check-config alerts/alertmanager.yml");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("SUCCESS"), "{all}");
    assert!(all.contains(" - 1 inhibit rules"), "{all}");
    assert!(all.contains(" - 3 receivers"), "{all}");
}

#[test]
fn alertmanager_config_holds_no_secrets() {
    let text = read_to_string(repo().join(AM_CONFIG));
    for key in [
        "api_url:",
        "routing_key:",
        "service_key:",
        "password:",
        "bearer_token:",
        "hooks.slack.com",
    ] {
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with(key) || l.contains("hooks.slack.com")),
            "alertmanager.yml must take secrets from *_file placeholders, found {key:?}"
        );
    }
    assert!(text.contains("slack_api_url_file: /etc/alertmanager/secrets/"));
    assert!(text.contains("routing_key_file: /etc/alertmanager/secrets/"));
}

fn route_test(labels: &[&str], receivers: &str) -> Option<String> {
    let cfg = format!("--config.file={}", repo_path(AM_CONFIG));
    let verify = format!("--verify.receivers={receivers}");
    let mut args = vec!["config", "routes", "test", cfg.as_str(), verify.as_str()];
    args.extend_from_slice(labels);
    let out = amtool(&args);
    if out.success() && out.stdout.trim() == receivers {
        None
    } else {
        Some(format!(
            "{labels:?}: want {receivers}, got rc {:?}: {}{}",
            out.code, out.stdout, out.stderr
        ))
    }
}

#[test]
fn amtool_routes_by_severity() {
    let cases: [(&[&str], &str); 7] = [
        (
            &[
                "alertname=PytestTestPyramidDegraded",
                "severity=critical",
                "project=shop",
            ],
            "pager,chat",
        ),
        (
            &[
                "alertname=PytestFlakyRateHigh",
                "severity=warning",
                "project=shop",
            ],
            "chat",
        ),
        (
            &[
                "alertname=PytestTestsNearLimit",
                "severity=info",
                "project=shop",
            ],
            "chat-low-priority",
        ),
        (&["alertname=Unrelated", "severity=page"], "chat"),
        (&["alertname=NoSeverity"], "chat"),
        // Matching is exact: "Critical" is not "critical".
        (&["alertname=X", "severity=Critical"], "chat"),
        (&["severity=critical"], "pager,chat"),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(labels, want)| route_test(labels, want))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every alert of the rule file reaches the receivers its severity promises.
#[test]
fn amtool_routes_every_shipped_alert() {
    let mut failures = Vec::new();
    for b in alert_blocks() {
        let sev = severity_of(&b);
        let want = match sev.as_str() {
            "critical" => "pager,chat",
            "warning" => "chat",
            "info" => "chat-low-priority",
            other => panic!("{}: unexpected severity {other}", b.name),
        };
        let alertname = format!("alertname={}", b.name);
        let severity = format!("severity={sev}");
        if let Some(f) = route_test(
            &[&alertname, &severity, "project=shop", "branch=main"],
            want,
        ) {
            failures.push(f);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The shipped config with only its `receivers:` section (the last top-level key) replaced by
/// webhook receivers of the same names pointing at a closed loopback port: routes, grouping
/// and inhibit rules stay byte for byte as shipped, and nothing can leave the machine.
fn alertmanager_config_with_loopback_receivers() -> (String, Vec<String>) {
    let text = read_to_string(repo().join(AM_CONFIG));
    let start = text
        .find("\nreceivers:\n")
        .expect("alertmanager.yml: top-level receivers: section")
        + 1;
    let tail = &text[start..];
    assert!(
        !tail
            .lines()
            .skip(1)
            .any(|l| !l.is_empty() && !l.starts_with(' ') && !l.starts_with('#')),
        "receivers: must be the last top-level key of alertmanager.yml"
    );
    let names: Vec<String> = tail
        .lines()
        .filter_map(|l| l.strip_prefix("  - name:"))
        .map(|n| n.trim().to_string())
        .collect();
    assert_eq!(names, ["pager", "chat", "chat-low-priority"]);
    let sink = format!("http://127.0.0.1:{}/hook", free_port());
    let mut cfg = text[..start].replace(
        "  slack_api_url_file: /etc/alertmanager/secrets/slack-webhook-url\n",
        "",
    );
    cfg.push_str("receivers:\n");
    for n in &names {
        cfg.push_str(&format!(
            "  - name: {n}\n    webhook_configs:\n      - url: {sink}\n        send_resolved: false\n"
        ));
    }
    (cfg, names)
}

fn post_alerts(am: &Alertmanager, alerts: &Value) {
    let url = format!("{}/api/v2/alerts", am.url);
    let resp = http()
        .post(&url)
        .header("Content-Type", "application/json")
        .body(alerts.to_string())
        .send()
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert!(resp.status().is_success(), "POST {url}: {}", resp.status());
}

fn alert(name: &str, severity: &str, project: &str, extra: &[(&str, &str)]) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), json!(name));
    labels.insert("severity".into(), json!(severity));
    labels.insert("project".into(), json!(project));
    labels.insert("job".into(), json!("pytest"));
    for (k, v) in extra {
        labels.insert((*k).into(), json!(v));
    }
    json!({"labels": labels, "annotations": {"summary": format!("{name} on {project}")}})
}

#[test]
fn alertmanager_inhibits_warnings_under_a_critical_and_groups_by_alertname_and_project() {
    let (cfg, _) = alertmanager_config_with_loopback_receivers();
    let am = Alertmanager::start_with_config(&cfg);
    post_alerts(
        &am,
        &json!([
            alert(
                "PytestTestPyramidDegraded",
                "critical",
                "shop",
                &[("branch", "main"), ("size", "small")]
            ),
            alert(
                "PytestSizeDistributionOutsideTargetBand",
                "warning",
                "shop",
                &[("branch", "main"), ("size", "small")]
            ),
            alert(
                "PytestSizeDistributionOutsideTargetBand",
                "warning",
                "shop",
                &[("branch", "main"), ("size", "medium")]
            ),
            alert(
                "PytestTestsNearLimit",
                "info",
                "shop",
                &[("branch", "dev"), ("size", "small")]
            ),
            alert(
                "PytestSizeDistributionOutsideTargetBand",
                "warning",
                "web",
                &[("branch", "main"), ("size", "small")]
            ),
            alert(
                "PytestFlakyRateHigh",
                "warning",
                "web",
                &[("branch", "main")]
            ),
            alert(
                "PytestFlakyRateHigh",
                "warning",
                "web",
                &[("branch", "dev")]
            ),
        ]),
    );
    // Expected state per (alertname, project, branch, size).
    let key = |a: &Value| {
        let l = &a["labels"];
        format!(
            "{} {} {} {}",
            l["alertname"].as_str().unwrap_or(""),
            l["project"].as_str().unwrap_or(""),
            l["branch"].as_str().unwrap_or(""),
            l["size"].as_str().unwrap_or("")
        )
    };
    let want: BTreeMap<String, &str> = [
        ("PytestTestPyramidDegraded shop main small", "active"),
        (
            "PytestSizeDistributionOutsideTargetBand shop main small",
            "suppressed",
        ),
        (
            "PytestSizeDistributionOutsideTargetBand shop main medium",
            "suppressed",
        ),
        ("PytestTestsNearLimit shop dev small", "suppressed"),
        (
            "PytestSizeDistributionOutsideTargetBand web main small",
            "active",
        ),
        ("PytestFlakyRateHigh web main ", "active"),
        ("PytestFlakyRateHigh web dev ", "active"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let got = loop {
        let alerts = am.alerts();
        let got: BTreeMap<String, String> = alerts
            .as_array()
            .expect("alerts array")
            .iter()
            .map(|a| {
                (
                    key(a),
                    a["status"]["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let matches = got.len() == want.len()
            && want
                .iter()
                .all(|(k, v)| got.get(k).map(String::as_str) == Some(*v));
        if matches || std::time::Instant::now() > deadline {
            break (got, alerts);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let (states, alerts) = got;
    let want_owned: BTreeMap<String, String> = want
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    assert_eq!(
        states,
        want_owned,
        "alert states (inhibition); raw: {alerts}\nlog:\n{}",
        am.log()
    );
    // The suppressed ones are inhibited (not silenced) by the critical alert.
    for a in alerts.as_array().unwrap() {
        if a["status"]["state"] == "suppressed" {
            assert_eq!(
                a["status"]["inhibitedBy"].as_array().map(Vec::len),
                Some(1),
                "{a}"
            );
            assert_eq!(
                a["status"]["silencedBy"].as_array().map(Vec::len),
                Some(0),
                "{a}"
            );
        }
    }

    // Grouping: one group per (alertname, project) and receiver.
    let groups = http_get_json(&format!("{}/api/v2/alerts/groups", am.url));
    let mut got_groups: BTreeMap<String, usize> = BTreeMap::new();
    for g in groups.as_array().expect("groups array") {
        let labels = g["labels"].as_object().expect("group labels");
        let label_names: BTreeSet<&str> = labels.keys().map(String::as_str).collect();
        assert_eq!(
            label_names,
            BTreeSet::from(["alertname", "project"]),
            "group labels: {g}"
        );
        let k = format!(
            "{} {} -> {}",
            labels["alertname"].as_str().unwrap(),
            labels["project"].as_str().unwrap(),
            g["receiver"]["name"].as_str().unwrap()
        );
        *got_groups.entry(k).or_default() += g["alerts"].as_array().map(Vec::len).unwrap_or(0);
    }
    let want_groups: BTreeMap<String, usize> = [
        ("PytestTestPyramidDegraded shop -> pager", 1),
        ("PytestTestPyramidDegraded shop -> chat", 1),
        ("PytestSizeDistributionOutsideTargetBand shop -> chat", 2),
        ("PytestTestsNearLimit shop -> chat-low-priority", 1),
        ("PytestSizeDistributionOutsideTargetBand web -> chat", 1),
        ("PytestFlakyRateHigh web -> chat", 2),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got_groups, want_groups, "alert groups: {groups}");
}

#[test]
fn loopback_receiver_config_keeps_routes_and_inhibit_rules_verbatim() {
    let (cfg, names) = alertmanager_config_with_loopback_receivers();
    let shipped = read_to_string(repo().join(AM_CONFIG));
    let head = &shipped[..shipped.find("\nreceivers:\n").unwrap()];
    for section in ["route:", "inhibit_rules:"] {
        let s = &head[head.find(&format!("\n{section}")).unwrap()..];
        let s = &s[..s[1..].find("\n\n").map(|i| i + 1).unwrap_or(s.len())];
        assert!(
            cfg.contains(s),
            "test config lost the shipped {section} section"
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path: &Path = &dir.path().join("am.yml");
    std::fs::write(path, &cfg).expect("write");
    let out = amtool(&["check-config", &path.display().to_string()]);
    out.assert_success("amtool check-config (loopback receivers)");
    assert_eq!(names.len(), 3);
}
