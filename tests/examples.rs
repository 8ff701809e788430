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
//! * The backfill script pushes an archive of runs oldest first and marks them; its systemd
//!   units pass `systemd-analyze verify`.

mod support;

use std::collections::BTreeSet;
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

fn cli_help() -> String {
    let mut all = String::new();
    for sub in ["push", "delete"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ptc-metrics"))
            .args([sub, "--help"])
            .output()
            .expect("ptc-metrics --help");
        all.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    all
}

/// Every `--flag` given to `ptc-metrics` in an example exists in the CLI.
fn flags_exist(text: &str, help: &str, what: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for cmd in text.split("ptc-metrics ").skip(1) {
        for word in cmd.split_whitespace().take_while(|w| !w.starts_with('#')) {
            if let Some(flag) = word.strip_prefix("--") {
                let flag = flag.split('=').next().unwrap_or_default();
                if !flag.is_empty()
                    && flag.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    && !help.contains(&format!("--{flag} "))
                    && !help.contains(&format!("--{flag}\n"))
                    && !["locked"].contains(&flag)
                {
                    problems.push(format!("{what}: ptc-metrics has no --{flag}"));
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
    let env = [
        ("PTC_METRICS_GATEWAY", pg.url.clone()),
        ("PTC_METRICS_BASIC_AUTH_USER", String::new()),
        ("PTC_METRICS_BASIC_AUTH_PASSWORD", String::new()),
    ];
    let (ok, out) = run_bash(dir.path(), &run, &env);
    if !ok {
        problems.push(format!("push step failed:\n{out}"));
    }
    let runs = pg.metric_lines("pytest_runs_total");
    if runs.len() != 1
        || !runs[0].contains("project=\"gha-example\"")
        || !runs[0].contains("python_version=\"3.12\"")
    {
        problems.push(format!("gateway after the push step: {runs:?}\n{out}"));
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
    // Branch deleted: the cleanup job removes the group.
    let cleanup = wf["jobs"]["cleanup"]["steps"][1]["run"]
        .as_str()
        .unwrap_or_default()
        .replace("${{ github.event.repository.name }}", "gha-example")
        .replace("${{ github.event.ref }}", "main")
        .replace("${{ matrix.python-version }}", "3.12");
    let (ok, out) = run_bash(
        dir.path(),
        &cleanup,
        &[("PTC_METRICS_GATEWAY", pg.url.clone())],
    );
    if !ok || !pg.metric_lines("pytest_runs_total").is_empty() {
        problems.push(format!(
            "cleanup job did not delete the group: {out}\n{:?}",
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

// ---------------------------------------------------------------------------
// Backfill
// ---------------------------------------------------------------------------

#[test]
fn backfill_script_pushes_archived_runs_oldest_first_once() {
    let pg = Pushgateway::start();
    let archive = tempfile::tempdir().expect("temp dir");
    let runs = [
        (
            "shop/main/1001",
            "junit-reruns.xml",
            "size-report-reruns.json",
            false,
        ),
        (
            "shop/main/1002",
            "junit-xunit2.xml",
            "size-report.json",
            true,
        ),
        (
            "shop/feature/1003",
            "junit-reruns.xml",
            "size-report-reruns.json",
            false,
        ),
    ];
    for (i, (rel, junit, size, cov)) in runs.iter().enumerate() {
        let d = archive.path().join(rel);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(fixture(junit), d.join("junit-1.xml")).unwrap();
        std::fs::copy(fixture(size), d.join("size-report.json")).unwrap();
        if *cov {
            std::fs::copy(fixture("coverage.xml"), d.join("coverage.xml")).unwrap();
        }
        let branch = if rel.contains("feature") {
            "feature/x"
        } else {
            "main"
        };
        std::fs::write(
            d.join("run.env"),
            format!("PROJECT=shop\nBRANCH=\"{branch}\"\nLABELS=\"python_version=3.12 os=linux\"\n"),
        )
        .unwrap();
        // Distinct modification times, oldest first.
        let t = std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(1_700_000_000 + i as u64 * 60);
        std::fs::File::options()
            .write(true)
            .open(d.join("run.env"))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    let script = examples().join("backfill/ptc-metrics-backfill.sh");
    let run = || {
        let out = Command::new("bash")
            .arg(&script)
            .env("PTC_ARCHIVE_DIR", archive.path())
            .env("PTC_METRICS_GATEWAY", &pg.url)
            .env("PTC_METRICS_BIN", env!("CARGO_BIN_EXE_ptc-metrics"))
            .env_remove("CI")
            .output()
            .expect("run backfill");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = run();
    assert!(ok, "backfill failed:\n{out}");
    assert!(out.contains("pushed 3 run(s)"), "{out}");
    let lines = pg.metric_lines("pytest_runs_total");
    let main = lines
        .iter()
        .find(|l| l.contains("branch=\"main\""))
        .expect("main group");
    assert!(
        main.ends_with(" 2"),
        "two runs accumulated on main: {lines:?}"
    );
    assert!(
        main.contains("os=\"linux\"") && main.contains("python_version=\"3.12\""),
        "{main}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("branch=\"feature/x\"") && l.ends_with(" 1")),
        "{lines:?}"
    );
    // Oldest first: main's per-run gauges hold run 1002 (the primary run: 1 flaky test, coverage).
    let flaky: f64 = pg
        .metric_lines("pytest_flaky_tests")
        .iter()
        .filter(|l| l.contains("branch=\"main\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(flaky, 1.0, "main's last run must be 1002");
    assert_eq!(pg.metric_lines("test_coverage_percentage").len(), 1);
    for (rel, ..) in runs {
        assert!(
            archive.path().join(rel).join(".pushed").exists(),
            "{rel} not marked"
        );
    }
    // A second run pushes nothing.
    let (ok, out) = run();
    assert!(ok && out.contains("pushed 0 run(s)"), "{out}");
    assert!(pg
        .metric_lines("pytest_runs_total")
        .iter()
        .any(|l| l.contains("branch=\"main\"") && l.ends_with(" 2")));
}

#[test]
fn backfill_units_pass_systemd_analyze_verify() {
    let sa = require_binary("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().expect("temp dir");
    let src = examples().join("backfill");
    let service = read_to_string(src.join("ptc-metrics-backfill.service"))
        .replace(
            "ExecStart=/usr/local/bin/ptc-metrics-backfill.sh",
            &format!(
                "ExecStart={}",
                src.join("ptc-metrics-backfill.sh").display()
            ),
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
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify: {text}"
    );
    // The crontab line runs the same script every 15 minutes.
    let cron = read_to_string(src.join("crontab"));
    assert!(cron
        .lines()
        .any(|l| l.starts_with("*/15 * * * * /usr/local/bin/ptc-metrics-backfill.sh")));
    let sh = Command::new("bash")
        .arg("-n")
        .arg(src.join("ptc-metrics-backfill.sh"))
        .output()
        .unwrap();
    assert!(
        sh.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&sh.stderr)
    );
}
