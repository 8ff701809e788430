//! The deployment examples in `examples/`, validated with the real tools where this machine
//! has them, and run where they can run:
//!
//! * `prometheus/prometheus.yml`: `promtool check config` (which also checks the rule files it
//!   loads, laid out as the compose file mounts them), `honor_labels: true` on the gateway job.
//! * `compose.yaml`: `docker compose config` when the compose plugin exists (it does not on
//!   the Debian build machine), and always a structural check: every bind mount exists, every
//!   volume/secret/service reference resolves, the Prometheus and Alertmanager configs find
//!   their files and peers under the names the compose file gives them, every dashboard is
//!   provisioned. YAML is read with Debian's `python3-yaml` (`/usr/bin/python3`).
//! * The GitHub Actions and GitLab CI jobs: their push commands are run for real (the CI
//!   variables filled in) against a real Pushgateway, once reachable and once with the gateway
//!   down (the soft fail must keep the job green); every `ptc-metrics` flag they use exists.
//! * The backfill example: the service's ExecStart (as systemd runs it, environment from its
//!   EnvironmentFile) into a real VictoriaMetrics, the crontab line (as cron runs it) into a
//!   real Prometheus remote-write receiver, each twice on an archive of fixture runs (every
//!   series and sample as `tests/backfill_archive` expects; the second run delivers nothing),
//!   and the README's OpenMetrics + promtool alternative into a Prometheus data directory.
//!   The units pass `systemd-analyze verify`; every flag and variable they use exists.

mod backfill_archive;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> PathBuf {
    repo().join("examples")
}

fn fixture(name: &str) -> PathBuf {
    repo().join("fixtures/pytest-9.2").join(name)
}

/// Parses a YAML file with Debian's python3-yaml and returns it as JSON.
fn yaml(path: &Path) -> Value {
    let py = PathBuf::from("/usr/bin/python3");
    assert!(
        py.exists(),
        "/usr/bin/python3 not found: install the Debian package python3-yaml (apt-get install -y --no-install-recommends python3-yaml)"
    );
    let out = Command::new(&py)
        .args([
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
        .expect("run /usr/bin/python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'yaml'"),
        "PyYAML missing: install the Debian package python3-yaml (apt-get install -y --no-install-recommends python3-yaml)"
    );
    assert!(
        out.status.success(),
        "{}: invalid YAML: {stderr}",
        path.display()
    );
    serde_json::from_slice(&out.stdout).expect("yaml as json")
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(String::from))
        .collect()
}

// ---------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------

/// examples/prometheus/prometheus.yml next to `rules/` holding the rule files, as in the
/// compose stack (`/etc/prometheus/{prometheus.yml,rules/}`).
fn prometheus_config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        examples().join("prometheus/prometheus.yml"),
        dir.path().join("prometheus.yml"),
    )
    .expect("copy prometheus.yml");
    std::fs::create_dir(dir.path().join("rules")).expect("mkdir rules");
    for f in ["ptc-metrics.rules.yml", "coverage-targets.rules.yml"] {
        std::fs::copy(
            repo().join("alerts").join(f),
            dir.path().join("rules").join(f),
        )
        .expect("copy rules");
    }
    dir
}

#[test]
fn prometheus_example_config_is_valid_and_honors_labels() {
    let dir = prometheus_config_dir();
    let cfg = dir.path().join("prometheus.yml");
    let out = promtool(&["check", "config", &cfg.display().to_string()]);
    out.assert_success("promtool check config examples/prometheus/prometheus.yml");
    let all = format!("{}{}", out.stdout, out.stderr);
    for want in [
        "SUCCESS: 2 rule files found",
        "is valid prometheus config file syntax",
        "rules/ptc-metrics.rules.yml\n  SUCCESS:",
        "rules/coverage-targets.rules.yml\n  SUCCESS:",
    ] {
        assert!(
            all.contains(want),
            "promtool check config: no {want:?} in:\n{all}"
        );
    }
    assert!(!all.contains("WARNING"), "{all}");

    let v = yaml(&cfg);
    let gw = v["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["static_configs"].to_string().contains("pushgateway:9091"))
        .expect("a scrape job for pushgateway:9091");
    assert_eq!(
        gw["honor_labels"], true,
        "the gateway job needs honor_labels: true"
    );
    assert_eq!(
        strs(&v["rule_files"]),
        [
            "rules/ptc-metrics.rules.yml",
            "rules/coverage-targets.rules.yml"
        ]
    );
}

// ---------------------------------------------------------------------------
// compose.yaml
// ---------------------------------------------------------------------------

fn docker_compose_available() -> bool {
    Command::new("docker")
        .args(["compose", "version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn compose_file_references_resolve() {
    let compose_path = examples().join("compose.yaml");
    if docker_compose_available() {
        let out = Command::new("docker")
            .args(["compose", "-f"])
            .arg(&compose_path)
            .args(["config", "--quiet"])
            .output()
            .expect("docker compose config");
        assert!(
            out.status.success(),
            "docker compose config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!(
            "note: `docker compose` is not available here; compose.yaml is checked structurally only"
        );
    }
    let c = yaml(&compose_path);
    let mut problems = Vec::new();
    let services = c["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["alertmanager", "grafana", "prometheus", "pushgateway"])
    );
    let declared_volumes: BTreeSet<String> = c["volumes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let declared_secrets = c["secrets"].as_object().cloned().unwrap_or_default();
    let mut used_volumes = BTreeSet::new();
    // container path -> host path, per service
    let mut mounts: std::collections::BTreeMap<String, Vec<(String, PathBuf)>> = Default::default();
    for (name, s) in services {
        let image = s["image"].as_str().unwrap_or_default();
        let tag = image.rsplit_once(':').map(|x| x.1).unwrap_or("");
        if tag.is_empty() || tag == "latest" {
            problems.push(format!("{name}: image {image:?} is not pinned"));
        }
        for v in strs(&s["volumes"]) {
            let parts: Vec<&str> = v.split(':').collect();
            let (src, dst) = (parts[0], parts.get(1).copied().unwrap_or(""));
            if src.starts_with('.') {
                let host = examples().join(src);
                if !host.exists() {
                    problems.push(format!("{name}: bind mount source {src} does not exist"));
                }
                mounts
                    .entry(name.clone())
                    .or_default()
                    .push((dst.to_string(), host));
            } else {
                used_volumes.insert(src.to_string());
                if !declared_volumes.contains(src) {
                    problems.push(format!("{name}: volume {src} is not declared"));
                }
            }
        }
        for d in strs(&s["depends_on"]) {
            if !names.contains(d.as_str()) {
                problems.push(format!("{name}: depends_on unknown service {d}"));
            }
        }
        for sec in s["secrets"].as_array().into_iter().flatten() {
            let src = sec
                .as_str()
                .or_else(|| sec["source"].as_str())
                .unwrap_or_default();
            let target = sec["target"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("/run/secrets/{src}"));
            match declared_secrets.get(src) {
                None => problems.push(format!("{name}: secret {src} is not declared")),
                Some(d) => {
                    let file = d["file"].as_str().unwrap_or_default();
                    let example = examples().join(format!("{file}.example"));
                    if !examples().join(file).exists() && !example.exists() {
                        problems.push(format!(
                            "secret {src}: neither {file} nor its .example exists"
                        ));
                    }
                    mounts
                        .entry(name.clone())
                        .or_default()
                        .push((target, example));
                }
            }
        }
    }
    for v in declared_volumes.difference(&used_volumes) {
        problems.push(format!("volume {v} is declared but unused"));
    }
    let mounted = |svc: &str, path: &str| -> Option<PathBuf> {
        mounts.get(svc).and_then(|m| {
            m.iter().find_map(|(dst, host)| {
                if dst == path {
                    Some(host.clone())
                } else {
                    path.strip_prefix(&format!("{dst}/"))
                        .map(|rest| host.join(rest))
                        .filter(|p| p.exists())
                }
            })
        })
    };
    let flag = |svc: &str, name: &str| -> Option<String> {
        strs(&services[svc]["command"])
            .iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(String::from))
    };

    // Prometheus: its config, the rule files it names, its scrape and alerting peers.
    let prom_cfg = flag("prometheus", "config.file").unwrap_or_default();
    match mounted("prometheus", &prom_cfg) {
        None => problems.push(format!("prometheus: {prom_cfg} is not mounted")),
        Some(host) => {
            let p = yaml(&host);
            let base = Path::new(&prom_cfg).parent().unwrap();
            for rf in strs(&p["rule_files"]) {
                let inside = base.join(&rf).display().to_string();
                match mounted("prometheus", &inside) {
                    Some(h)
                        if h.canonicalize().is_ok_and(|h| {
                            h.starts_with(repo().join("alerts").canonicalize().unwrap())
                        }) => {}
                    _ => problems.push(format!(
                        "prometheus: rule file {inside} is not mounted from alerts/"
                    )),
                }
            }
            let text = p.to_string();
            for (svc, port) in [("pushgateway", 9091), ("alertmanager", 9093)] {
                let target = format!("{svc}:{port}");
                if !text.contains(&target) {
                    problems.push(format!("prometheus.yml does not reach {target}"));
                }
                let ports = services[svc]["ports"].to_string();
                if !ports.contains(&format!(":{port}")) {
                    problems.push(format!("{svc} does not publish {port}"));
                }
            }
        }
    }
    // Alertmanager: its config is the shipped one and every *_file secret is mounted.
    let am_cfg = flag("alertmanager", "config.file").unwrap_or_default();
    match mounted("alertmanager", &am_cfg) {
        Some(h) if h == examples().join("../alerts/alertmanager.yml") => {
            let text = read_to_string(&h);
            for line in text.lines() {
                if let Some((_, path)) = line.split_once("_file: ") {
                    let path = path.trim();
                    if mounted("alertmanager", path).is_none() {
                        problems.push(format!("alertmanager: {path} is not mounted"));
                    }
                }
            }
        }
        other => problems.push(format!("alertmanager: {am_cfg} mounted from {other:?}")),
    }
    // Grafana: data source -> prometheus service; every dashboard in the provider's path.
    let prov = examples().join("grafana/provisioning");
    if mounted("grafana", "/etc/grafana/provisioning")
        != Some(examples().join("./grafana/provisioning"))
    {
        problems.push("grafana: provisioning is not mounted at /etc/grafana/provisioning".into());
    }
    let ds = yaml(&prov.join("datasources/prometheus.yml"));
    if ds["datasources"][0]["type"] != "prometheus"
        || ds["datasources"][0]["url"] != "http://prometheus:9090"
    {
        problems.push(format!("grafana data source: {ds}"));
    }
    let dp = yaml(&prov.join("dashboards/ptc-metrics.yml"));
    let path = dp["providers"][0]["options"]["path"]
        .as_str()
        .unwrap_or_default();
    for e in std::fs::read_dir(repo().join("dashboards")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let inside = format!("{path}/{}", p.file_name().unwrap().to_string_lossy());
            if mounted("grafana", &inside).is_none() {
                problems.push(format!(
                    "grafana: dashboard {} is not mounted at {inside}",
                    p.display()
                ));
            }
        }
    }
    let env = services["grafana"]["environment"].to_string();
    if !env.contains("GF_SECURITY_ADMIN_PASSWORD__FILE") {
        problems.push("grafana: admin password not from a secret file".into());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// CI examples
// ---------------------------------------------------------------------------

/// `ptc-metrics SUB --help` of every subcommand, by name.
fn cli_help() -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for sub in ["push", "delete", "prune", "inspect", "backfill"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ptc-metrics"))
            .args([sub, "--help"])
            .output()
            .expect("ptc-metrics --help");
        assert!(out.status.success(), "ptc-metrics {sub} --help");
        all.insert(
            sub.to_string(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        );
    }
    all
}

/// Every `ptc-metrics …` invocation in `text`: its words, from the subcommand on, across
/// continuation lines (a trailing `\`, or a next line starting with `--` as in folded YAML),
/// up to a comment or a shell operator.
fn invocations(text: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        for (pos, m) in line.match_indices("ptc-metrics ") {
            // A program, not a directory such as /var/lib/ptc-metrics.
            let path = line[..pos]
                .rsplit(|c: char| c.is_whitespace() || c == '`' || c == '=')
                .next()
                .unwrap_or_default();
            if !path.is_empty() && !path.ends_with("bin/") {
                continue;
            }
            let mut words = Vec::new();
            let mut cur = &line[pos + m.len()..];
            let mut j = i;
            'cmd: loop {
                let continued = cur.trim_end().ends_with('\\');
                for w in cur.split_whitespace() {
                    if w.starts_with('#') || [";", "&&", "||", "|"].contains(&w) {
                        break 'cmd;
                    }
                    if w != "\\" {
                        words.push(w.trim_end_matches(';').to_string());
                    }
                    if w.ends_with(';') {
                        break 'cmd;
                    }
                }
                j += 1;
                match lines.get(j) {
                    Some(next) if continued || next.trim_start().starts_with("--") => cur = next,
                    _ => break,
                }
            }
            out.push(words);
        }
    }
    out
}

/// Every `--flag` given to `ptc-metrics SUB` in an example exists in `SUB --help` (in any
/// subcommand's help where the subcommand is not recognisable, as in prose).
fn flags_exist(text: &str, helps: &BTreeMap<String, String>, what: &str) -> Vec<String> {
    let union: String = helps.values().cloned().collect();
    let mut problems = Vec::new();
    for words in invocations(text) {
        let sub = words
            .first()
            .map(|w| w.trim_matches('`').to_string())
            .unwrap_or_default();
        let help = helps.get(&sub).unwrap_or(&union);
        for word in &words {
            if let Some(flag) = word.strip_prefix("--") {
                let flag = flag.split('=').next().unwrap_or_default();
                // Prose and markdown: `--flag`, --flag.
                let flag = flag.trim_end_matches(['`', '.', ',', ')', ':']);
                if !flag.is_empty()
                    && flag.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    && !help.contains(&format!("--{flag} "))
                    && !help.contains(&format!("--{flag}\n"))
                    && !["locked"].contains(&flag)
                {
                    problems.push(format!("{what}: ptc-metrics {sub} has no --{flag}"));
                }
            }
        }
    }
    problems
}

/// A work dir with the fixture reports where the CI jobs expect them, and the product binary
/// on PATH (also at .cargo/bin/ptc-metrics, as the GitLab job caches it).
fn ci_workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    std::fs::copy(fixture("junit-xunit2.xml"), reports.join("junit.xml")).unwrap();
    std::fs::copy(
        fixture("size-report.json"),
        reports.join("size-report.json"),
    )
    .unwrap();
    std::fs::copy(fixture("coverage.xml"), reports.join("coverage.xml")).unwrap();
    let bin = dir.path().join(".cargo/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ptc-metrics"), bin.join("ptc-metrics")).unwrap();
    dir
}

fn run_bash(dir: &Path, script: &str, env: &[(&str, String)]) -> (bool, String) {
    let path = format!(
        "{}:{}",
        dir.join(".cargo/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path);
    // The examples pass project and branch explicitly; the CI detection of the test runner's
    // own environment must not interfere.
    for var in ["GITHUB_ACTIONS", "GITLAB_CI", "CI"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("bash");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The `run:` of the GitHub step named `name`, with the `${{ … }}` expressions filled in.
fn github_step(wf: &Value, job: &str, name: &str, subst: &[(&str, &str)]) -> (Value, String) {
    let step = wf["jobs"][job]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name:?} in job {job}"))
        .clone();
    let mut run = step["run"].as_str().expect("run").to_string();
    for (k, v) in subst {
        run = run.replace(&format!("${{{{ {k} }}}}"), v);
    }
    assert!(!run.contains("${{"), "unsubstituted expression in {run}");
    (step, run)
}

#[test]
fn github_actions_example_pushes_and_soft_fails() {
    let wf = yaml(&examples().join("github-actions/tests.yml"));
    let help = cli_help();
    let text = read_to_string(examples().join("github-actions/tests.yml"));
    let mut problems = flags_exist(&text, &help, "github-actions/tests.yml");

    let subst = [
        ("github.event.repository.name", "gha-example"),
        ("github.ref_name", "main"),
        ("matrix.python-version", "3.12"),
    ];
    let (step, run) = github_step(&wf, "pytest", "Push test metrics", &subst);
    if step["continue-on-error"] != true || !run.contains("--soft-fail") {
        problems.push("push step must soft-fail (continue-on-error and --soft-fail)".into());
    }
    if !step["if"]
        .as_str()
        .unwrap_or_default()
        .contains("!cancelled()")
    {
        problems.push("push step must also run after failed tests (if: !cancelled())".into());
    }
    let tests = wf["jobs"]["pytest"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Run tests")
        .expect("Run tests step");
    let pytest = tests["run"].as_str().unwrap_or_default();
    for want in [
        "--junitxml=reports/junit.xml",
        "--test-size-report=json",
        "--test-size-report-file=reports/size-report.json",
        "--cov-report=xml:reports/coverage.xml",
    ] {
        if !pytest.contains(want) {
            problems.push(format!("pytest step lacks {want}"));
        }
    }

    let pg = Pushgateway::start();
    let dir = ci_workdir();
    // As on GitHub: the job's id is detected (label ci_job), the cleanup job's id differs.
    let github = |job: &str| {
        vec![
            ("GITHUB_ACTIONS", "true".to_string()),
            ("GITHUB_JOB", job.to_string()),
        ]
    };
    let mut env = vec![
        ("PTC_METRICS_GATEWAY", pg.url.clone()),
        ("PTC_METRICS_BASIC_AUTH_USER", String::new()),
        ("PTC_METRICS_BASIC_AUTH_PASSWORD", String::new()),
    ];
    env.extend(github("pytest"));
    let (ok, out) = run_bash(dir.path(), &run, &env);
    if !ok {
        problems.push(format!("push step failed:\n{out}"));
    }
    let runs = pg.metric_lines("pytest_runs_total");
    if runs.len() != 1
        || !runs[0].contains("project=\"gha-example\"")
        || !runs[0].contains("python_version=\"3.12\"")
        || !runs[0].contains("ci_job=\"pytest\"")
        || runs[0].contains("shard=")
    {
        problems.push(format!("gateway after the push step: {runs:?}\n{out}"));
    }
    // The sharded job: each of the 4 matrix entries pushes its own group.
    let tests = wf["jobs"]["pytest-sharded"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Run tests")
        .expect("Run tests step of pytest-sharded");
    let shards = strs(&wf["jobs"]["pytest-sharded"]["strategy"]["matrix"]["shard"]);
    let shards: Vec<String> = if shards.is_empty() {
        wf["jobs"]["pytest-sharded"]["strategy"]["matrix"]["shard"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.to_string())
            .collect()
    } else {
        shards
    };
    if shards != ["1", "2", "3", "4"]
        || !tests["run"]
            .as_str()
            .unwrap_or_default()
            .contains("--splits 4 --group ${{ matrix.shard }}")
    {
        problems.push(format!(
            "pytest-sharded must split over matrix.shard 1..4 with pytest-split: {shards:?} {}",
            tests["run"]
        ));
    }
    for shard in &shards {
        let mut subst = subst.to_vec();
        subst.push(("matrix.shard", shard.as_str()));
        let (step, run) = github_step(&wf, "pytest-sharded", "Push test metrics", &subst);
        if step["continue-on-error"] != true || !run.contains("--soft-fail") {
            problems.push("sharded push step must soft-fail".into());
        }
        let mut env = env.clone();
        env.retain(|(k, _)| *k != "GITHUB_JOB");
        env.push(("GITHUB_JOB", "pytest-sharded".into()));
        let (ok, out) = run_bash(dir.path(), &run, &env);
        if !ok {
            problems.push(format!("sharded push step {shard} failed:\n{out}"));
        }
    }
    let mut sharded: Vec<String> = pg
        .metric_lines("pytest_runs_total")
        .into_iter()
        .filter(|l| l.contains("ci_job=\"pytest-sharded\""))
        .map(|l| {
            l.split("shard=\"")
                .nth(1)
                .map(|r| r[..r.find('"').unwrap()].to_string())
                .unwrap_or_default()
        })
        .collect();
    sharded.sort();
    if sharded != ["1/4", "2/4", "3/4", "4/4"] {
        problems.push(format!(
            "gateway after the sharded push steps: one group per shard wanted, got {sharded:?}"
        ));
    }
    // Gateway down: the step still succeeds.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let env = [
        ("PTC_METRICS_GATEWAY", dead),
        ("PTC_METRICS_RETRIES", "0".to_string()),
    ];
    let (ok, out) = run_bash(dir.path(), &run, &env);
    if !ok {
        problems.push(format!(
            "push step with the gateway down must not fail the job:\n{out}"
        ));
    }
    // Branch deleted: the cleanup job (its own GITHUB_JOB) removes every group.
    let fill = |run: &str| {
        run.replace("${{ github.event.repository.name }}", "gha-example")
            .replace("${{ github.event.ref }}", "main")
            .replace("${{ matrix.python-version }}", "3.12")
    };
    let steps = wf["jobs"]["cleanup"]["steps"].as_array().unwrap().clone();
    for step in &steps[1..] {
        let mut env = vec![("PTC_METRICS_GATEWAY", pg.url.clone())];
        env.extend(github("cleanup"));
        let (ok, out) = run_bash(dir.path(), &fill(step["run"].as_str().unwrap()), &env);
        if !ok {
            problems.push(format!("cleanup step failed: {out}"));
        }
    }
    if !pg.metric_lines("pytest_runs_total").is_empty() {
        problems.push(format!(
            "cleanup job did not delete every group: {:?}",
            pg.metric_lines("pytest_runs_total")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn gitlab_ci_example_pushes_and_soft_fails() {
    let path = examples().join("gitlab-ci/.gitlab-ci.yml");
    let ci = yaml(&path);
    let help = cli_help();
    let mut problems = flags_exist(&read_to_string(&path), &help, ".gitlab-ci.yml");
    let job = &ci["push-test-metrics"];
    if job["when"] != "always" || job["allow_failure"] != true {
        problems.push("push job must run always and be allowed to fail".into());
    }
    let script = strs(&job["script"]).join("\n");
    if !script.contains("--soft-fail") {
        problems.push("push job must use --soft-fail".into());
    }
    let pytest = strs(&ci["pytest"]["script"]).join("\n");
    for want in [
        "--junitxml=reports/junit.xml",
        "--test-size-report-file=reports/size-report.json",
        "--cov-report=xml:reports/coverage.xml",
    ] {
        if !pytest.contains(want) {
            problems.push(format!("pytest job lacks {want}"));
        }
    }
    let pg = Pushgateway::start();
    let dir = ci_workdir();
    let vars = |gw: String| {
        vec![
            ("PTC_METRICS_GATEWAY", gw),
            ("CI_PROJECT_PATH_SLUG", "group-gl-example".to_string()),
            ("CI_COMMIT_BRANCH", "release/1.2".to_string()),
            ("PYTHON_VERSION", "3.11".to_string()),
            ("PTC_METRICS_RETRIES", "0".to_string()),
        ]
    };
    let (ok, out) = run_bash(dir.path(), &script, &vars(pg.url.clone()));
    if !ok {
        problems.push(format!("push job failed:\n{out}"));
    }
    let runs = pg.metric_lines("pytest_runs_total");
    let good = runs.len() == 1
        && runs[0].contains("project=\"group-gl-example\"")
        && runs[0].contains("branch=\"release/1.2\"")
        && runs[0].contains("python_version=\"3.11\"");
    if !good {
        problems.push(format!("gateway after the push job: {runs:?}\n{out}"));
    }
    let (ok, out) = run_bash(
        dir.path(),
        &script,
        &vars(format!("http://127.0.0.1:{}", free_port())),
    );
    if !ok {
        problems.push(format!(
            "push job with the gateway down must not fail:\n{out}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn gitlab_ci_sharded_example_detects_each_shard() {
    let path = examples().join("gitlab-ci/.gitlab-ci.yml");
    let ci = yaml(&path);
    let mut problems = Vec::new();
    let (tests, push) = (&ci["pytest-sharded"], &ci["push-sharded-metrics"]);
    let n = tests["parallel"].as_u64().unwrap_or(0);
    if n < 2 || push["parallel"] != tests["parallel"] {
        problems.push(format!(
            "pytest-sharded and push-sharded-metrics must run as the same `parallel: N`: {} vs {}",
            tests["parallel"], push["parallel"]
        ));
    }
    let pytest = strs(&tests["script"]).join("\n");
    for want in [
        "--splits \"$CI_NODE_TOTAL\" --group \"$CI_NODE_INDEX\"",
        "--junitxml=reports/shard-$CI_NODE_INDEX/junit.xml",
        "--test-size-report-file=reports/shard-$CI_NODE_INDEX/size-report.json",
        "--cov-report=xml:reports/shard-$CI_NODE_INDEX/coverage.xml",
    ] {
        if !pytest.contains(want) {
            problems.push(format!("pytest-sharded lacks {want}"));
        }
    }
    if push["when"] != "always" || push["allow_failure"] != true {
        problems.push("push-sharded-metrics must run always and be allowed to fail".into());
    }
    let script = strs(&push["script"]).join("\n");
    // The artifacts of every shard, as `needs: pytest-sharded` brings them.
    let dir = ci_workdir();
    for i in 1..=n {
        let d = dir.path().join(format!("reports/shard-{i}"));
        std::fs::create_dir_all(&d).unwrap();
        for f in ["junit.xml", "size-report.json", "coverage.xml"] {
            std::fs::copy(dir.path().join("reports").join(f), d.join(f)).unwrap();
        }
    }
    let pg = Pushgateway::start();
    // Each job as GitLab runs it: named "push-sharded-metrics I/N", with CI_NODE_INDEX/TOTAL.
    let vars = |gw: &str, i: u64| {
        vec![
            ("PTC_METRICS_GATEWAY", gw.to_string()),
            ("PTC_METRICS_RETRIES", "0".to_string()),
            ("GITLAB_CI", "true".to_string()),
            ("CI_JOB_NAME", format!("push-sharded-metrics {i}/{n}")),
            ("CI_NODE_INDEX", i.to_string()),
            ("CI_NODE_TOTAL", n.to_string()),
            ("CI_PROJECT_PATH_SLUG", "group-gl-example".to_string()),
            ("CI_COMMIT_BRANCH", "main".to_string()),
        ]
    };
    for i in 1..=n {
        let (ok, out) = run_bash(dir.path(), &script, &vars(&pg.url, i));
        if !ok {
            problems.push(format!("push job {i}/{n} failed:\n{out}"));
        }
    }
    let shard_of = |l: &str| {
        l.split("shard=\"")
            .nth(1)
            .map(|r| r[..r.find('"').unwrap()].to_string())
            .unwrap_or_default()
    };
    let mut groups: Vec<String> = pg
        .metric_lines("pytest_runs_total")
        .iter()
        .map(|l| {
            if !l.contains("ci_job=\"push-sharded-metrics\"") {
                problems.push(format!("the shards must share ci_job: {l}"));
            }
            shard_of(l)
        })
        .collect();
    groups.sort();
    let want: Vec<String> = (1..=n).map(|i| format!("{i}/{n}")).collect();
    if groups != want {
        problems.push(format!(
            "one group per detected shard: want {want:?}, got {groups:?}"
        ));
    }
    // The run's coverage comes with shard 1 only.
    let cov: Vec<String> = pg
        .metric_lines("test_coverage_percentage")
        .iter()
        .map(|l| shard_of(l))
        .collect();
    if cov != [format!("1/{n}")] {
        problems.push(format!("coverage must come with shard 1 only: {cov:?}"));
    }
    let (ok, out) = run_bash(
        dir.path(),
        &script,
        &vars(&format!("http://127.0.0.1:{}", free_port()), 2),
    );
    if !ok {
        problems.push(format!(
            "push job with the gateway down must not fail:\n{out}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// Backfill
// ---------------------------------------------------------------------------

const BACKFILL_RUNS: usize = 12;
const BACKFILL_DAYS: i64 = 3;

fn backfill_example(name: &str) -> String {
    read_to_string(examples().join("backfill").join(name))
}

/// A machine for the backfill example: an archive of fixture runs where the example expects
/// `/srv/ci-archive`, and temp dirs for its other paths. [`Self::subst`] maps the example's
/// paths (and its remote-write URL) to these.
struct BackfillHost {
    tmp: tempfile::TempDir,
    runs: Vec<backfill_archive::GenRun>,
}

impl BackfillHost {
    /// 12 runs of 6 groups over 3 days (ending 3 h ago, outside Prometheus' head), plus a
    /// run whose JUnit XML is cut off when `broken`.
    fn new(broken: bool) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        for d in [
            "archive",
            "state",
            "log",
            "config",
            "prometheus-data",
            "bin",
        ] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let archive = tmp.path().join("archive");
        let runs = backfill_archive::generate(
            &archive,
            BACKFILL_RUNS,
            BACKFILL_DAYS,
            backfill_archive::now_s() - 3 * 3600,
            7,
        );
        if broken {
            let d = archive.join("broken/run-1");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("junit.xml"),
                "<testsuites><testsuite name=\"x\"><testcase",
            )
            .unwrap();
        }
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_ptc-metrics"),
            tmp.path().join("bin/ptc-metrics"),
        )
        .unwrap();
        // The credentials file as the example says to install it (mode 0600), with the basic
        // auth and tenant lines uncommented: both systemd and sh must read it, and the
        // backfill must accept what it sets (the test servers ignore both).
        let mut env = String::new();
        let mut uncommented = 0;
        for line in backfill_example("backfill.env.example").lines() {
            let l = line.strip_prefix('#').unwrap_or(line);
            if [
                "PTC_METRICS_BASIC_AUTH_USER=",
                "PTC_METRICS_BASIC_AUTH_PASSWORD=",
                "PTC_METRICS_HEADER=",
            ]
            .iter()
            .any(|k| l.starts_with(k))
            {
                env.push_str(l);
                uncommented += 1;
            } else {
                env.push_str(line);
            }
            env.push('\n');
        }
        assert_eq!(
            uncommented, 3,
            "backfill.env.example: basic auth and header lines"
        );
        let env_file = tmp.path().join("config/backfill.env");
        std::fs::write(&env_file, env).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        BackfillHost { tmp, runs }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `text` with the example's paths and remote-write URL replaced by the test's.
    fn subst(&self, text: &str, remote_write: &str) -> String {
        let mut out = text.to_string();
        for (from, to) in [
            (
                "/usr/local/bin/ptc-metrics",
                env!("CARGO_BIN_EXE_ptc-metrics").to_string(),
            ),
            (
                "/srv/ci-archive",
                self.path("archive").display().to_string(),
            ),
            (
                "/var/lib/ptc-metrics",
                self.path("state").display().to_string(),
            ),
            (
                "/var/log/ptc-metrics",
                self.path("log").display().to_string(),
            ),
            (
                "/etc/ptc-metrics",
                self.path("config").display().to_string(),
            ),
            (
                "/var/lib/prometheus/metrics2",
                self.path("prometheus-data").display().to_string(),
            ),
            (
                "http://prometheus:9090/api/v1/write",
                remote_write.to_string(),
            ),
        ] {
            out = out.replace(from, &to);
        }
        for left in ["/srv/", "/var/", "/etc/", "/usr/local/", "prometheus:9090"] {
            assert!(
                !out.contains(left),
                "the backfill example uses a path the test does not map ({left}): {out}"
            );
        }
        out
    }

    /// The series the archive's runs must become (`tests/backfill_archive`).
    fn expected(&self) -> backfill_archive::Expected {
        backfill_archive::expected(&self.runs, &[(0..self.runs.len()).collect()])
    }
}

/// `Key=value` settings of `[section]` of a unit file, continuation lines joined as systemd
/// joins them.
fn unit_settings(text: &str, section: &str) -> Vec<(String, String)> {
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.starts_with('#') || t.starts_with(';')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                logical.push(std::mem::take(&mut cur));
            }
        }
    }
    let mut inside = false;
    let mut out = Vec::new();
    for l in logical {
        if l.starts_with('[') {
            inside = l == format!("[{section}]");
        } else if inside {
            if let Some((k, v)) = l.split_once('=') {
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    out
}

fn setting(settings: &[(String, String)], key: &str) -> String {
    let v: Vec<&String> = settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(v.len(), 1, "exactly one {key}= in the unit: {v:?}");
    v[0].clone()
}

/// An EnvironmentFile as systemd reads it: `KEY=value`, `#`/`;` comments, one level of
/// surrounding quotes removed.
fn systemd_environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=value: {l}"));
            let v = v.trim();
            let v = ['"', '\'']
                .iter()
                .find_map(|q| v.strip_prefix(*q).and_then(|x| x.strip_suffix(*q)))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// The example service's ExecStart, split as systemd splits it (the example keeps it free of
/// quotes, `$` and `%`, so that whitespace is all there is to it).
fn service_exec_start() -> Vec<String> {
    exec_start_of(&backfill_example("ptc-metrics-backfill.service"))
}

/// A unit's ExecStart, split as systemd splits it (no quotes, `$`, `%` or `\` in it).
fn exec_start_of(unit: &str) -> Vec<String> {
    let svc = unit_settings(unit, "Service");
    let exec = setting(&svc, "ExecStart");
    assert!(
        !exec.contains(['"', '\'', '$', '%', '\\']),
        "ExecStart with quotes, variables or specifiers: {exec}"
    );
    exec.split_whitespace().map(String::from).collect()
}

/// The crontab: its variable assignments and its one job (schedule, command).
fn crontab_job() -> (Vec<(String, String)>, String, String) {
    crontab_job_of(&backfill_example("crontab"))
}

/// A crontab's variable assignments and its one job (schedule, command).
fn crontab_job_of(crontab: &str) -> (Vec<(String, String)>, String, String) {
    let mut vars = Vec::new();
    let mut jobs = Vec::new();
    for line in crontab.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let first = t.split_whitespace().next().unwrap();
        match first.split_once('=') {
            Some((k, _)) if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                let (k, v) = t.split_once('=').unwrap();
                vars.push((k.trim().to_string(), v.trim().to_string()));
            }
            _ => {
                let f: Vec<&str> = t.splitn(6, ' ').collect();
                assert_eq!(f.len(), 6, "crontab line: {t}");
                jobs.push((f[..5].join(" "), f[5].to_string()));
            }
        }
    }
    assert_eq!(jobs.len(), 1, "one job in the crontab: {jobs:?}");
    let (schedule, command) = jobs.remove(0);
    assert!(
        !command.contains('%'),
        "cron turns % into newlines: {command}"
    );
    (vars, schedule, command)
}

fn exit_code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The service's ExecStart, run as systemd would (its argv as is, no shell, the environment
/// from its EnvironmentFile only), twice against a real VictoriaMetrics: every run arrives
/// with its own timestamps, the unreadable run gives exit 4 which the unit accepts, and the
/// second run delivers nothing.
#[test]
fn backfill_service_delivers_each_run_once_into_victoria_metrics() {
    let svc = unit_settings(&backfill_example("ptc-metrics-backfill.service"), "Service");
    let mut ok_codes = vec![0];
    for v in svc.iter().filter(|(k, _)| k == "SuccessExitStatus") {
        ok_codes.extend(
            v.1.split_whitespace()
                .map(|c| c.parse::<i32>().expect("numeric SuccessExitStatus")),
        );
    }
    assert!(
        ok_codes.contains(&4),
        "exit 4 (some runs skipped) must not fail the unit"
    );
    let env_file = setting(&svc, "EnvironmentFile");
    assert_eq!(env_file, "/etc/ptc-metrics/backfill.env");

    let host = BackfillHost::new(true);
    let vm = VictoriaMetrics::start();
    let url = vm.remote_write_url();
    let argv: Vec<String> = service_exec_start()
        .iter()
        .map(|w| host.subst(w, &url))
        .collect();
    let env = systemd_environment_file(&read_to_string(host.subst(&env_file, &url)));
    let run = || {
        Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .output()
            .expect("run the service's ExecStart")
    };

    let o = run();
    let out = output_text(&o);
    assert_eq!(exit_code(&o), 4, "one unreadable run: exit 4\n{out}");
    assert!(ok_codes.contains(&exit_code(&o)));
    assert!(
        out.contains(&format!("backfill: {BACKFILL_RUNS} new run(s)")),
        "{out}"
    );
    assert!(
        out.contains("warning: skipped") && out.contains("broken"),
        "{out}"
    );
    assert!(host.path("state/backfill.state").is_file());
    let want = host.expected();
    let got = backfill_archive::from_vm_export(&vm.export(r#"{job="pytest"}"#));
    backfill_archive::assert_same("service into victoria-metrics", &want, &got);
    let rows = r#"vm_rows_inserted_total{type="promremotewrite"}"#;
    let inserted = vm.self_metric(rows);
    assert!(inserted > 0.0, "{rows}: {inserted}");

    // The timer's next start: nothing new, nothing sent, nothing stored twice.
    let o = run();
    let out = output_text(&o);
    assert!(
        ok_codes.contains(&exit_code(&o)),
        "second run: exit {}\n{out}",
        exit_code(&o)
    );
    assert!(
        out.contains("backfill: 0 new run(s), 0 samples delivered")
            && out.contains(&format!("{BACKFILL_RUNS} already delivered")),
        "{out}"
    );
    assert_eq!(
        vm.self_metric(rows),
        inserted,
        "the second run sent samples"
    );
    let got = backfill_archive::from_vm_export(&vm.export(r#"{job="pytest"}"#));
    backfill_archive::assert_same("victoria-metrics after the second run", &want, &got);
}

/// Remote-write requests a Prometheus has answered (its own `/metrics`).
fn prometheus_write_requests(prom: &Prometheus) -> f64 {
    http_get_text(&format!("{}/metrics", prom.url))
        .lines()
        .filter(|l| {
            l.starts_with("prometheus_http_requests_total{")
                && l.contains(r#"handler="/api/v1/write""#)
        })
        .filter_map(|l| l.rsplit(' ').next())
        .map(parse_prom_float)
        .sum()
}

/// The crontab line, run as cron runs it (`/bin/sh -c`, cron's bare environment), twice
/// against a real Prometheus remote-write receiver, and once more while another backfill
/// holds the state's lock: the second and third runs deliver nothing.
#[test]
fn backfill_crontab_line_delivers_each_run_once_into_prometheus() {
    let (vars, schedule, command) = crontab_job();
    assert_eq!(schedule, "*/15 * * * *");
    let host = BackfillHost::new(false);
    let prom = Prometheus::builder()
        .remote_write_receiver()
        .out_of_order_time_window("90d")
        .start();
    let command = host.subst(&command, &prom.remote_write_url());
    let shell = vars
        .iter()
        .find(|(k, _)| k == "SHELL")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "/bin/sh".into());
    let log = host.path("log/backfill.log");
    let mut seen = 0;
    let mut run = || {
        let o = Command::new(&shell)
            .args(["-c", &command])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", host.path("state"))
            .env("LOGNAME", "ptc-metrics")
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .current_dir(host.path("state"))
            .output()
            .expect("run the crontab line");
        // Cron mails whatever the job prints: the line sends everything to its log.
        assert!(
            o.stdout.is_empty() && o.stderr.is_empty(),
            "{}",
            output_text(&o)
        );
        let all = std::fs::read_to_string(&log).unwrap_or_default();
        let new = all[seen..].to_string();
        seen = all.len();
        (exit_code(&o), new)
    };

    let (code, out) = run();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("backfill: {BACKFILL_RUNS} new run(s)")),
        "{out}"
    );
    let want = host.expected();
    backfill_archive::assert_same(
        "crontab into prometheus",
        &want,
        &backfill_archive::prometheus_series(&prom, BACKFILL_DAYS),
    );
    let writes = prometheus_write_requests(&prom);
    assert!(writes > 0.0);

    let (code, out) = run();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("backfill: 0 new run(s), 0 samples delivered")
            && out.contains(&format!("{BACKFILL_RUNS} already delivered")),
        "{out}"
    );
    assert_eq!(
        prometheus_write_requests(&prom),
        writes,
        "the second run sent requests"
    );

    // An overlapping run (the previous one still busy) stops at the state's lock.
    let lock = std::fs::File::create(host.path("state/backfill.state.lock")).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    let rc = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&lock),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    assert_eq!(rc, 0, "flock");
    let (code, out) = run();
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("another backfill holds its lock"), "{out}");
    drop(lock);
    assert_eq!(prometheus_write_requests(&prom), writes);
    backfill_archive::assert_same(
        "prometheus after three runs",
        &want,
        &backfill_archive::prometheus_series(&prom, BACKFILL_DAYS),
    );
}

/// The README's OpenMetrics alternative, run as written: `ptc-metrics backfill --openmetrics`,
/// `promtool tsdb create-blocks-from openmetrics`, the blocks moved into a Prometheus data
/// directory, and a Prometheus started on it has every run.
#[test]
fn backfill_readme_openmetrics_alternative_imports_every_run() {
    let readme = backfill_example("README.md");
    let block = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|x| x.0))
        .find(|b| b.contains("--openmetrics"))
        .expect("a ```sh block with --openmetrics in examples/backfill/README.md");
    assert!(
        block.contains("promtool tsdb create-blocks-from openmetrics"),
        "{block}"
    );
    let host = BackfillHost::new(false);
    let script = host.subst(block, "unused");
    let promtool_dir = promtool_bin().parent().unwrap().to_path_buf();
    let o = Command::new("/bin/sh")
        .args(["-e", "-c", &script])
        .env(
            "PATH",
            format!(
                "{}:{}:/usr/bin:/bin",
                host.path("bin").display(),
                promtool_dir.display()
            ),
        )
        .current_dir(host.tmp.path())
        .output()
        .expect("run the README's OpenMetrics commands");
    assert!(o.status.success(), "{script}\n{}", output_text(&o));
    let prom = Prometheus::start_on_data_dir(host.path("prometheus-data"));
    backfill_archive::assert_same(
        "README OpenMetrics blocks",
        &host.expected(),
        &backfill_archive::prometheus_series(&prom, BACKFILL_DAYS),
    );
}

#[test]
fn backfill_units_pass_systemd_analyze_verify() {
    let sa = require_binary("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().expect("temp dir");
    let src = examples().join("backfill");
    let unit = backfill_example("ptc-metrics-backfill.service");
    let svc = unit_settings(&unit, "Service");

    // Credentials from a 0600 EnvironmentFile, the state in the StateDirectory.
    assert_eq!(
        setting(&svc, "EnvironmentFile"),
        "/etc/ptc-metrics/backfill.env"
    );
    let state_dir = format!("/var/lib/{}/", setting(&svc, "StateDirectory"));
    let argv = service_exec_start();
    assert_eq!(argv[..2], ["/usr/local/bin/ptc-metrics", "backfill"]);
    let after = |flag: &str| {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1))
            .cloned()
            .unwrap_or_else(|| panic!("ExecStart without {flag}: {argv:?}"))
    };
    assert!(
        after("--state").starts_with(&state_dir),
        "state outside {state_dir}: {argv:?}"
    );
    assert!(after("--remote-write").starts_with("http"), "{argv:?}");
    assert!(
        !argv
            .iter()
            .any(|a| a.contains("password") || a.contains("token") || a == "--header"),
        "credentials belong in the EnvironmentFile: {argv:?}"
    );
    assert!(backfill_example("backfill.env.example").contains("mode 0600"));

    // The crontab runs the same backfill, with the same credentials file.
    let (_, _, command) = crontab_job();
    let words: Vec<&str> = command.split_whitespace().collect();
    let from = words
        .iter()
        .position(|w| *w == argv[0])
        .expect("crontab runs /usr/local/bin/ptc-metrics");
    let cron_argv: Vec<&str> = words[from..]
        .iter()
        .copied()
        .take_while(|w| !w.starts_with('>'))
        .collect();
    assert_eq!(
        cron_argv, argv,
        "the crontab and the service run different backfills"
    );
    assert!(
        command.contains(". /etc/ptc-metrics/backfill.env"),
        "{command}"
    );

    // Every flag and environment variable the example uses exists.
    let problems = unknown_flags_and_vars(
        "backfill",
        &[
            "ptc-metrics-backfill.service",
            "ptc-metrics-backfill.timer",
            "crontab",
            "backfill.env.example",
            "README.md",
        ],
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // systemd-analyze verify needs the binary and the EnvironmentFile to exist.
    let service = unit
        .replace(
            "/usr/local/bin/ptc-metrics",
            env!("CARGO_BIN_EXE_ptc-metrics"),
        )
        .replace(
            "EnvironmentFile=/etc/ptc-metrics/backfill.env",
            &format!(
                "EnvironmentFile={}",
                src.join("backfill.env.example").display()
            ),
        );
    std::fs::write(dir.path().join("ptc-metrics-backfill.service"), service).unwrap();
    std::fs::copy(
        src.join("ptc-metrics-backfill.timer"),
        dir.path().join("ptc-metrics-backfill.timer"),
    )
    .unwrap();
    let out = Command::new(sa)
        .arg("verify")
        .arg(dir.path().join("ptc-metrics-backfill.service"))
        .arg(dir.path().join("ptc-metrics-backfill.timer"))
        .output()
        .expect("systemd-analyze verify");
    let text = output_text(&out);
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify: {text}"
    );
}

/// The `--flags` and `PTC_METRICS_*` variables in the files of `examples/<sub>/` that
/// `ptc-metrics` does not have (`sub`'s help names the variables it reads).
fn unknown_flags_and_vars(sub: &str, files: &[&str]) -> Vec<String> {
    let helps = cli_help();
    // clap wraps the help: "[env:" may end a line.
    let help = helps[sub].split_whitespace().collect::<Vec<_>>().join(" ");
    let mut problems = Vec::new();
    for f in files {
        let text = read_to_string(examples().join(sub).join(f));
        problems.extend(flags_exist(&text, &helps, f));
        for var in text
            .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .filter(|w| w.starts_with("PTC_METRICS_"))
        {
            if !help.contains(&format!("[env: {var}")) {
                problems.push(format!("{f}: ptc-metrics {sub} reads no {var}"));
            }
        }
    }
    problems
}

fn prune_example(name: &str) -> String {
    read_to_string(examples().join("prune").join(name))
}

/// A gateway with groups of job `pytest`, project `app`: `main`, `release/1.2` and
/// `feature-x` pushed 4.5 s ago, `feature-new` just now.
fn gateway_with_old_branches() -> Pushgateway {
    let gw = Pushgateway::start();
    let push = |branch: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_ptc-metrics"))
            .arg("push")
            .arg(fixture("junit-xunit2.xml"))
            .arg("--size-report")
            .arg(fixture("size-report.json"))
            .args(["--gateway", &gw.url, "--project", "app", "--branch", branch])
            .arg("--no-ci-detect")
            .output()
            .expect("run ptc-metrics push");
        assert!(o.status.success(), "push {branch}: {}", output_text(&o));
    };
    for b in ["main", "release/1.2", "feature-x"] {
        push(b);
    }
    std::thread::sleep(std::time::Duration::from_millis(4500));
    push("feature-new");
    gw
}

/// The branches of the groups (not pending pushes) on the gateway.
fn branches(gw: &Pushgateway) -> BTreeSet<String> {
    gw.metric_lines("pytest_runs_total")
        .iter()
        .filter_map(|l| {
            l.split("branch=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(String::from)
        })
        .collect()
}

/// The prune example's service (ExecStart as systemd runs it, environment from its
/// EnvironmentFile) and its crontab line (as cron runs it), each against a real gateway, with
/// `30d` read as 3 s: the old feature branch goes (with its pending push), `main`, the kept
/// `release/*` branch and the young branch stay. Both run the same prune; the units pass
/// `systemd-analyze verify`; every flag and variable exists.
#[test]
fn prune_service_and_crontab_delete_old_feature_branches() {
    let bin = env!("CARGO_BIN_EXE_ptc-metrics");
    let unit = prune_example("ptc-metrics-prune.service");
    let argv = exec_start_of(&unit);
    assert_eq!(argv[..2], ["/usr/local/bin/ptc-metrics", "prune"]);
    let svc = unit_settings(&unit, "Service");
    let env_file = setting(&svc, "EnvironmentFile");
    assert_eq!(env_file, "-/etc/ptc-metrics/prune.env");
    let env = systemd_environment_file(&prune_example("prune.env.example"));
    assert!(env.is_empty(), "credentials are commented out: {env:?}");
    let (vars, schedule, command) = crontab_job_of(&prune_example("crontab"));
    assert_eq!(schedule, "17 3 * * *");
    let words: Vec<String> = command
        .split_whitespace()
        .skip_while(|w| *w != argv[0])
        .take_while(|w| !w.starts_with('>'))
        .map(|w| w.replace('\'', ""))
        .collect();
    assert_eq!(
        words, argv,
        "the crontab and the service run different prunes"
    );

    let (by_service, by_cron) = std::thread::scope(|s| {
        let a = s.spawn(gateway_with_old_branches);
        let b = s.spawn(gateway_with_old_branches);
        (a.join().unwrap(), b.join().unwrap())
    });
    let all: BTreeSet<String> = ["feature-new", "feature-x", "main", "release/1.2"]
        .map(String::from)
        .into();
    assert_eq!(branches(&by_service), all);
    let left: BTreeSet<String> = ["feature-new", "main", "release/1.2"]
        .map(String::from)
        .into();
    let subst = |w: &str, gw: &Pushgateway| {
        w.replace("http://pushgateway:9091", &gw.url)
            .replace("/usr/local/bin/ptc-metrics", bin)
            .replace("--older-than 30d", "--older-than 0.05m")
    };

    // The service.
    let args: Vec<String> = argv
        .iter()
        .map(|w| subst(w, &by_service))
        .map(|w| if w == "30d" { "0.05m".into() } else { w })
        .collect();
    let o = Command::new(&args[0])
        .args(&args[1..])
        .env_clear()
        .current_dir("/")
        .output()
        .expect("run the service's ExecStart");
    let out = output_text(&o);
    assert_eq!(exit_code(&o), 0, "{out}");
    assert!(
        out.contains(&format!(
            "deleted {}/metrics/job/pytest/branch/feature-x/project/app (last push",
            by_service.url
        )),
        "{out}"
    );
    assert!(
        out.contains("deleted 1 of 4 groups of job \"pytest\" (and 1 pending push) on "),
        "{out}"
    );
    assert_eq!(branches(&by_service), left);
    assert!(
        by_service
            .metric_lines("push_time_seconds")
            .iter()
            .all(|l| !l.contains("feature-x")),
        "the pending push of feature-x went with it"
    );

    // The crontab line, as cron runs it.
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("prune.log");
    let line =
        subst(&command, &by_cron).replace("/var/log/ptc-metrics/prune.log", &log.to_string_lossy());
    let shell = vars
        .iter()
        .find(|(k, _)| k == "SHELL")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "/bin/sh".into());
    let o = Command::new(&shell)
        .args(["-c", &line])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", tmp.path())
        .current_dir(tmp.path())
        .output()
        .expect("run the crontab line");
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "{}",
        output_text(&o)
    );
    assert_eq!(exit_code(&o), 0);
    let out = read_to_string(&log);
    assert!(
        out.contains("deleted 1 of 4 groups of job \"pytest\" (and 1 pending push) on "),
        "{out}"
    );
    assert_eq!(branches(&by_cron), left);

    // Every flag and variable exists.
    let problems = unknown_flags_and_vars(
        "prune",
        &[
            "ptc-metrics-prune.service",
            "ptc-metrics-prune.timer",
            "crontab",
            "prune.env.example",
            "README.md",
        ],
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // systemd-analyze verify (the binary must exist where ExecStart says).
    let sa = require_binary("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ptc-metrics-prune.service"),
        unit.replace("/usr/local/bin/ptc-metrics", bin),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ptc-metrics-prune.timer"),
        prune_example("ptc-metrics-prune.timer"),
    )
    .unwrap();
    let out = Command::new(sa)
        .arg("verify")
        .arg(dir.path().join("ptc-metrics-prune.service"))
        .arg(dir.path().join("ptc-metrics-prune.timer"))
        .output()
        .expect("systemd-analyze verify");
    let text = output_text(&out);
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}
