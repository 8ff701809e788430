//! Shared integration-test harness: real Prometheus-stack servers on loopback.
//!
//! Include it from an integration test with `mod support;`.
//!
//! Every server binds `127.0.0.1:<free port>`, keeps its state in its own temp
//! directory and is killed (and reaped) when the handle is dropped. A missing
//! binary is a test *failure*, never a skip: install the Debian packages
//! (`scripts/test.sh` does that when run as root).
//!
//! Timing facts worth knowing when writing tests:
//! * Prometheus performs its first scrape ~5 s after start (fixed 5 s
//!   target-update tick); afterwards a pushed value is queryable after ~1 s
//!   (`scrape_interval: 1s`). Use [`Prometheus::wait_for`] /
//!   [`Prometheus::wait_for_targets_up`] instead of sleeps, and do not assert
//!   *absence* of a series before the first scrape happened.
//! * VictoriaMetrics is started with `-search.latencyOffset=0s`; its `query*`
//!   and `export` helpers call `/internal/force_flush` first.
//!
//! Set `PTC_KEEP_TMP=1` to keep the servers' temp directories (config, data,
//! `server.log`) for inspection; their paths are printed to stderr.

#![allow(dead_code)]

pub mod grafana;
pub mod http;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a server may take to answer its readiness endpoint.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Poll interval for readiness and `wait_for` loops.
const POLL: Duration = Duration::from_millis(25);
/// How many times a server start is retried when its port was taken meanwhile.
const PORT_RETRIES: usize = 3;

// ---------------------------------------------------------------------------
// Binaries, ports, HTTP
// ---------------------------------------------------------------------------

/// Finds `name` on `PATH` (then `/usr/bin`, `/usr/sbin`, `/usr/local/bin`) or
/// panics with an installation hint naming `debian_pkg`.
pub fn require_binary(name: &str, debian_pkg: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let fallback = ["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from);
    for dir in path_dirs.iter().chain(fallback.iter()) {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    panic!(
        "{name} not found: install the Debian package {debian_pkg} \
         (apt-get install -y --no-install-recommends {debian_pkg}), or run scripts/test.sh as root"
    );
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub fn pushgateway_bin() -> PathBuf {
    require_binary("prometheus-pushgateway", "prometheus-pushgateway")
}
pub fn prometheus_bin() -> PathBuf {
    require_binary("prometheus", "prometheus")
}
pub fn promtool_bin() -> PathBuf {
    require_binary("promtool", "prometheus")
}
pub fn alertmanager_bin() -> PathBuf {
    require_binary("prometheus-alertmanager", "prometheus-alertmanager")
}
pub fn amtool_bin() -> PathBuf {
    require_binary("amtool", "prometheus-alertmanager")
}
pub fn victoria_metrics_bin() -> PathBuf {
    require_binary("victoria-metrics", "victoria-metrics")
}

/// A currently free TCP port on 127.0.0.1 (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The product binary, for CLI tests (`cli().args([...]).output()`).
pub fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ptc-metrics"))
}

/// A committed fixture of one pytest version: `fixtures/pytest-<version>/<name>`.
pub fn fixture(version: &str, name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("pytest-{version}"))
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// coverage.py's own table: `(file, stmts, miss)` rows and the TOTAL row.
pub type CoverageReport = (Vec<(String, u64, u64)>, (u64, u64));

/// Reads coverage.py's report (`coverage-report.txt`) of a pytest version's fixtures.
pub fn coverage_py(version: &str) -> CoverageReport {
    coverage_py_file(version, "coverage-report.txt")
}

/// Reads a coverage.py report (`coverage report --show-missing`) among the fixtures.
pub fn coverage_py_file(version: &str, name: &str) -> CoverageReport {
    let text = std::fs::read_to_string(fixture(version, name)).unwrap();
    let mut files = Vec::new();
    let mut total = None;
    for line in text.lines() {
        let c: Vec<&str> = line.split_whitespace().collect();
        if c.len() < 6 || c[1].parse::<u64>().is_err() {
            continue;
        }
        let (stmts, miss) = (c[1].parse().unwrap(), c[2].parse().unwrap());
        if c[0] == "TOTAL" {
            total = Some((stmts, miss));
        } else {
            files.push((c[0].to_string(), stmts, miss));
        }
    }
    (files, total.unwrap())
}

/// Shared blocking HTTP client (no proxy, 10 s timeout).
pub fn http() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("build reqwest blocking client")
    })
}

/// GET `url`, panic unless 2xx, return the body.
pub fn http_get_text(url: &str) -> String {
    let resp = http()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    let body = resp.text().unwrap_or_default();
    assert!(status.is_success(), "GET {url}: HTTP {status}: {body}");
    body
}

/// GET `url`, panic unless 2xx, parse the body as JSON.
pub fn http_get_json(url: &str) -> Value {
    let body = http_get_text(url);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: invalid JSON ({e}): {body}"))
}

/// Unwraps a Prometheus-style API answer `{"status":"success","data":…}`.
fn api_data(what: &str, v: Value) -> Value {
    if v["status"] != "success" {
        panic!("{what}: API error: {v}");
    }
    v.get("data").cloned().unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------
// Generic server process
// ---------------------------------------------------------------------------

/// A spawned server: its child process, temp dir and log file. Killed + reaped on drop.
struct ServerProcess {
    name: &'static str,
    child: Child,
    dir: tempfile::TempDir,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Spawns `bin` with `args(port, dir)` on a fresh free port, waits until
    /// `ready_path` answers 2xx. Retries on "address already in use".
    fn start(
        name: &'static str,
        bin: &Path,
        ready_path: &str,
        mut setup: impl FnMut(&Path),
        mut args: impl FnMut(u16, &Path) -> Vec<String>,
    ) -> (Self, u16) {
        let mut last_err = String::new();
        for _ in 0..PORT_RETRIES {
            let dir = tempfile::Builder::new()
                .prefix(&format!("ptc-{name}-"))
                .tempdir()
                .expect("create temp dir");
            setup(dir.path());
            let port = free_port();
            let log_path = dir.path().join("server.log");
            let log = File::create(&log_path).expect("create server.log");
            let argv = args(port, dir.path());
            let child = Command::new(bin)
                .args(&argv)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log fd"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {} {argv:?}: {e}", bin.display()));
            let mut proc = ServerProcess {
                name,
                child,
                dir,
                log_path,
            };
            let url = format!("http://127.0.0.1:{port}{ready_path}");
            match proc.wait_ready(&url) {
                Ok(()) => {
                    if std::env::var_os("PTC_KEEP_TMP").is_some() {
                        eprintln!(
                            "[support] {name} on 127.0.0.1:{port}, dir {} (kept)",
                            proc.dir.path().display()
                        );
                    }
                    return (proc, port);
                }
                Err(e) => {
                    let log = proc.log();
                    if log.contains("address already in use") {
                        last_err = format!("{e}\n--- {name} log ---\n{log}");
                        continue; // Drop kills it; try another port.
                    }
                    drop(proc); // kill + reap before panicking (avoids a second log dump)
                    panic!(
                        "{name} did not become ready: {e}\ncommand: {} {}\n--- {name} log ---\n{log}",
                        bin.display(),
                        argv.join(" ")
                    );
                }
            }
        }
        panic!("{name}: no usable port after {PORT_RETRIES} attempts: {last_err}");
    }

    fn wait_ready(&mut self, url: &str) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("process exited early with {status}"));
            }
            match http().get(url).timeout(Duration::from_secs(2)).send() {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("HTTP {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{url} not ready within {READY_TIMEOUT:?} (last: {last})"
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Panics if the process has exited (with its log).
    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{} exited unexpectedly with {status}\n--- log ---\n{}",
                self.name,
                self.log()
            );
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- {} log (last {} lines, dir {}) ---",
                self.name,
                tail.len(),
                self.dir.path().display()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        if std::env::var_os("PTC_KEEP_TMP").is_some() {
            self.dir.disable_cleanup(true);
        }
    }
}

/// Polls `fetch` until `pred` holds; panics with the last value after `timeout`.
fn poll_until(
    what: &str,
    timeout: Duration,
    mut fetch: impl FnMut() -> Value,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let v = fetch();
        if pred(&v) {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("{what}: condition not met within {timeout:?}; last result: {v}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One sample of an instant-vector query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub timestamp: f64,
    pub value: f64,
}

/// Parses `data` of a `/api/v1/query` answer (resultType vector or scalar).
pub fn vector_samples(data: &Value) -> Vec<Sample> {
    fn point(p: &Value) -> (f64, f64) {
        let ts = p[0].as_f64().unwrap_or(f64::NAN);
        let v = p[1].as_str().map(parse_prom_float).unwrap_or(f64::NAN);
        (ts, v)
    }
    match data["resultType"].as_str() {
        Some("scalar") => {
            let (timestamp, value) = point(&data["result"]);
            vec![Sample {
                labels: BTreeMap::new(),
                timestamp,
                value,
            }]
        }
        Some("vector") => data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                let (timestamp, value) = point(&s["value"]);
                Sample {
                    labels,
                    timestamp,
                    value,
                }
            })
            .collect(),
        other => panic!("expected a vector/scalar query result, got {other:?}: {data}"),
    }
}

/// Parses a Prometheus float string (`"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`).
pub fn parse_prom_float(s: &str) -> f64 {
    match s {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s
            .parse()
            .unwrap_or_else(|e| panic!("not a float: {s:?}: {e}")),
    }
}

// ---------------------------------------------------------------------------
// Pushgateway
// ---------------------------------------------------------------------------

/// `prometheus-pushgateway` with `--web.enable-admin-api`.
pub struct Pushgateway {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT` (a Prometheus scrape target)
    pub addr: String,
    pub port: u16,
    proc: ServerProcess,
}

impl Pushgateway {
    pub fn start() -> Self {
        Self::start_full(None, &[])
    }

    /// A gateway started with extra flags (e.g. `--push.disable-consistency-check`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_full(None, extra)
    }

    /// A gateway that starts from a copy of a persistence file written by
    /// [`Self::stop_and_persist`]: it holds the same groups, without pushing them again.
    pub fn start_from(persisted: &Path) -> Self {
        Self::start_full(Some(persisted), &[])
    }

    fn start_full(persisted: Option<&Path>, extra: &[&str]) -> Self {
        let bin = pushgateway_bin();
        let (proc, port) = ServerProcess::start(
            "pushgateway",
            &bin,
            "/-/ready",
            |dir| {
                if let Some(from) = persisted {
                    std::fs::copy(from, dir.join("persist"))
                        .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
                }
            },
            |port, dir| {
                let mut argv = vec![
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    format!("--persistence.file={}", dir.join("persist").display()),
                    "--web.enable-admin-api".into(),
                    "--log.level=info".into(),
                ];
                argv.extend(extra.iter().map(|a| a.to_string()));
                argv
            },
        );
        Pushgateway {
            url: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
            port,
            proc,
        }
    }

    /// `GET /api/v1/metrics` → the `data` array (one entry per group).
    pub fn api_metrics(&self) -> Value {
        let v = http_get_json(&format!("{}/api/v1/metrics", self.url));
        api_data("pushgateway /api/v1/metrics", v)
    }

    /// `GET /metrics` (text exposition of all groups plus the gateway's own metrics).
    pub fn metrics_text(&self) -> String {
        http_get_text(&format!("{}/metrics", self.url))
    }

    /// Lines of [`Self::metrics_text`] whose metric name is `name` (no comments).
    pub fn metric_lines(&self, name: &str) -> Vec<String> {
        self.metrics_text()
            .lines()
            .filter(|l| {
                !l.starts_with('#')
                    && l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .map(str::to_string)
            .collect()
    }

    /// `PUT /api/v1/admin/wipe`: deletes all groups.
    pub fn wipe(&self) {
        let url = format!("{}/api/v1/admin/wipe", self.url);
        let resp = http()
            .put(&url)
            .send()
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        assert!(
            resp.status().is_success(),
            "PUT {url}: HTTP {}",
            resp.status()
        );
    }

    /// Raw push: `method` (`PUT`/`POST`/`DELETE`) to `{url}{path}` (path like
    /// `/metrics/job/j/instance/i`) with a text-format body. Returns (status, body).
    pub fn push_raw(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let url = format!("{}{}", self.url, path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let resp = http()
            .request(method, &url)
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(body.to_string())
            .send()
            .unwrap_or_else(|e| panic!("push to {url}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.text().unwrap_or_default())
    }

    /// The server's combined stdout/stderr so far (e.g. "inconsistent help strings").
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Stops the gateway with SIGTERM (it writes its persistence file on the way out) and
    /// copies that file to `to`, for [`Self::start_from`].
    pub fn stop_and_persist(mut self, to: &Path) {
        let pid = self.proc.child.id() as libc::pid_t;
        // SAFETY: signalling our own child, which has not been reaped yet.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGTERM) },
            0,
            "SIGTERM pushgateway"
        );
        let status = self.proc.child.wait().expect("wait for pushgateway");
        assert!(
            status.success(),
            "pushgateway on SIGTERM: {status}\n{}",
            self.log()
        );
        let from = self.proc.dir.path().join("persist");
        std::fs::copy(&from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }

    pub fn dir(&self) -> &Path {
        self.proc.dir.path()
    }
}

// ---------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------

/// Options for [`Prometheus`]; build with [`Prometheus::builder`].
#[derive(Debug, Clone, Default)]
pub struct PrometheusBuilder {
    targets: Vec<String>,
    job_name: Option<String>,
    rule_files: Vec<PathBuf>,
    alertmanagers: Vec<String>,
    remote_write_receiver: bool,
    out_of_order_time_window: Option<String>,
    extra_yaml: Option<String>,
    extra_args: Vec<String>,
    data_dir: Option<PathBuf>,
}

impl PrometheusBuilder {
    /// Scrape these `host:port` targets (job `pushgateway` unless renamed,
    /// `honor_labels: true`, 1 s interval).
    pub fn scrape(mut self, targets: &[&str]) -> Self {
        self.targets.extend(targets.iter().map(|t| t.to_string()));
        self
    }
    /// Rename the scrape job (default `pushgateway`).
    pub fn job_name(mut self, job: &str) -> Self {
        self.job_name = Some(job.to_string());
        self
    }
    /// Add a rule file (made absolute; evaluation_interval is 1 s).
    pub fn rule_file(mut self, path: impl AsRef<Path>) -> Self {
        self.rule_files
            .push(std::path::absolute(path.as_ref()).expect("absolute rule file path"));
        self
    }
    /// Send alerts to an Alertmanager at `host:port`.
    pub fn alertmanager(mut self, addr: &str) -> Self {
        self.alertmanagers.push(addr.to_string());
        self
    }
    /// `--web.enable-remote-write-receiver` (POST `{url}/api/v1/write`).
    pub fn remote_write_receiver(mut self) -> Self {
        self.remote_write_receiver = true;
        self
    }
    /// `storage.tsdb.out_of_order_time_window`, e.g. `"30d"` (accept old remote-write samples).
    pub fn out_of_order_time_window(mut self, window: &str) -> Self {
        self.out_of_order_time_window = Some(window.to_string());
        self
    }
    /// Raw YAML appended to the generated prometheus.yml (top-level keys not generated here).
    pub fn extra_yaml(mut self, yaml: &str) -> Self {
        self.extra_yaml = Some(yaml.to_string());
        self
    }
    /// Extra command-line flag.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_string());
        self
    }
    /// Use an existing TSDB directory (e.g. blocks made by promtool) instead of a fresh one.
    pub fn data_dir(mut self, path: impl AsRef<Path>) -> Self {
        self.data_dir = Some(std::path::absolute(path.as_ref()).expect("absolute data dir"));
        self
    }

    fn config_yaml(&self) -> String {
        let mut y = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n");
        if !self.rule_files.is_empty() {
            y.push_str("rule_files:\n");
            for f in &self.rule_files {
                y.push_str(&format!("  - {}\n", yaml_str(&f.display().to_string())));
            }
        }
        if !self.alertmanagers.is_empty() {
            y.push_str("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets:\n");
            for a in &self.alertmanagers {
                y.push_str(&format!("            - {}\n", yaml_str(a)));
            }
        }
        if let Some(w) = &self.out_of_order_time_window {
            y.push_str(&format!(
                "storage:\n  tsdb:\n    out_of_order_time_window: {}\n",
                yaml_str(w)
            ));
        }
        if self.targets.is_empty() {
            y.push_str("scrape_configs: []\n");
        } else {
            let job = self.job_name.as_deref().unwrap_or("pushgateway");
            y.push_str(&format!(
                "scrape_configs:\n  - job_name: {}\n    honor_labels: true\n    static_configs:\n      - targets:\n",
                yaml_str(job)
            ));
            for t in &self.targets {
                y.push_str(&format!("          - {}\n", yaml_str(t)));
            }
        }
        if let Some(extra) = &self.extra_yaml {
            y.push_str(extra);
            if !extra.ends_with('\n') {
                y.push('\n');
            }
        }
        y
    }

    pub fn start(self) -> Prometheus {
        let bin = prometheus_bin();
        let yaml = self.config_yaml();
        let (proc, port) = ServerProcess::start(
            "prometheus",
            &bin,
            "/-/ready",
            |dir| std::fs::write(dir.join("prometheus.yml"), &yaml).expect("write prometheus.yml"),
            |port, dir| {
                let data = self.data_dir.clone().unwrap_or_else(|| dir.join("data"));
                let mut a = vec![
                    format!("--config.file={}", dir.join("prometheus.yml").display()),
                    format!("--storage.tsdb.path={}", data.display()),
                    "--storage.tsdb.retention.time=100y".into(),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    "--web.enable-admin-api".into(),
                    "--web.enable-lifecycle".into(),
                ];
                if self.remote_write_receiver {
                    a.push("--web.enable-remote-write-receiver".into());
                }
                a.extend(self.extra_args.iter().cloned());
                a
            },
        );
        Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
            port,
            targets: self.targets.len(),
            job_name: self.job_name.unwrap_or_else(|| "pushgateway".into()),
            proc,
        }
    }
}

/// Quotes a string for YAML (JSON strings are valid YAML).
fn yaml_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A `prometheus` server (admin API and lifecycle API enabled, retention 100y).
pub struct Prometheus {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub port: u16,
    targets: usize,
    job_name: String,
    proc: ServerProcess,
}

impl Prometheus {
    pub fn builder() -> PrometheusBuilder {
        PrometheusBuilder::default()
    }

    /// Scrapes `targets` (`host:port`) every second as job `pushgateway` with
    /// `honor_labels: true`. Returns once `/-/ready`; the first scrape follows
    /// ~5 s after start (see [`Self::wait_for_targets_up`]).
    pub fn start_scraping(targets: &[&str]) -> Self {
        Self::builder().scrape(targets).start()
    }

    /// Serves an existing TSDB directory (e.g. from
    /// [`promtool_create_blocks_from_openmetrics`]); no scrape targets.
    pub fn start_on_data_dir(path: impl AsRef<Path>) -> Self {
        Self::builder().data_dir(path).start()
    }

    /// `{url}/api/v1/write` (needs [`PrometheusBuilder::remote_write_receiver`]).
    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.url)
    }

    /// Instant query at "now"; returns `data` (`{"resultType":…,"result":…}`),
    /// panics on API errors.
    pub fn query(&self, promql: &str) -> Value {
        self.query_params(promql, None)
    }

    /// Instant query evaluated at `unix_ts` (seconds).
    pub fn query_at(&self, promql: &str, unix_ts: f64) -> Value {
        self.query_params(promql, Some(unix_ts))
    }

    /// [`Self::query`] parsed into samples.
    pub fn query_vector(&self, promql: &str) -> Vec<Sample> {
        vector_samples(&self.query(promql))
    }

    /// Range query; returns `data` (resultType matrix).
    pub fn query_range(&self, promql: &str, start: f64, end: f64, step_s: f64) -> Value {
        let url = format!("{}/api/v1/query_range", self.url);
        let params = [
            ("query", promql.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step_s.to_string()),
        ];
        api_data(
            &format!("query_range {promql:?}"),
            self.get_json(&url, &params),
        )
    }

    /// Raw `/api/v1/query` answer (status code, whole JSON) for error-case tests.
    pub fn query_raw(&self, promql: &str) -> (u16, Value) {
        let url = format!("{}/api/v1/query", self.url);
        let resp = http()
            .get(&url)
            .query(&[("query", promql)])
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    fn query_params(&self, promql: &str, time: Option<f64>) -> Value {
        let url = format!("{}/api/v1/query", self.url);
        let mut params = vec![("query", promql.to_string())];
        if let Some(t) = time {
            params.push(("time", format!("{t:.3}")));
        }
        api_data(&format!("query {promql:?}"), self.get_json(&url, &params))
    }

    fn get_json(&self, url: &str, params: &[(&str, String)]) -> Value {
        let resp = http()
            .get(url)
            .query(params)
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        serde_json::from_str(&body).unwrap_or_else(|e| {
            panic!("GET {url} {params:?}: HTTP {status}, invalid JSON ({e}): {body}")
        })
    }

    /// Polls `promql` (every 100 ms) until `pred(data)` holds; returns that `data`.
    /// Panics with the last result after `timeout` (pick ≥ 15 s when the first
    /// scrape is involved).
    pub fn wait_for(
        &self,
        promql: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        poll_until(
            &format!("prometheus {promql:?}"),
            timeout,
            || self.query(promql),
            pred,
        )
    }

    /// Waits until `promql` returns at least one sample; returns the samples.
    pub fn wait_for_samples(&self, promql: &str, timeout: Duration) -> Vec<Sample> {
        let data = self.wait_for(
            promql,
            |d| d["result"].as_array().is_some_and(|r| !r.is_empty()),
            timeout,
        );
        vector_samples(&data)
    }

    /// Waits until every configured scrape target reports `up == 1` (first scrape ≈5 s after start).
    pub fn wait_for_targets_up(&self, timeout: Duration) {
        let want = self.targets;
        assert!(
            want > 0,
            "wait_for_targets_up: no scrape targets configured"
        );
        let q = format!("up{{job={}}} == 1", yaml_str(&self.job_name));
        self.wait_for(
            &q,
            |d| d["result"].as_array().is_some_and(|r| r.len() == want),
            timeout,
        );
    }

    /// `GET /api/v1/rules` → `data`.
    pub fn rules(&self) -> Value {
        api_data(
            "rules",
            http_get_json(&format!("{}/api/v1/rules", self.url)),
        )
    }

    /// `GET /api/v1/alerts` → `data`.
    pub fn alerts(&self) -> Value {
        api_data(
            "alerts",
            http_get_json(&format!("{}/api/v1/alerts", self.url)),
        )
    }

    /// `POST /-/reload` (after editing the config via [`Self::config_path`]).
    pub fn reload(&self) {
        let url = format!("{}/-/reload", self.url);
        let resp = http()
            .post(&url)
            .send()
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = resp.status();
        assert!(
            status.is_success(),
            "POST {url}: HTTP {status}: {}",
            resp.text().unwrap_or_default()
        );
    }

    pub fn config_path(&self) -> PathBuf {
        self.proc.dir.path().join("prometheus.yml")
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    pub fn dir(&self) -> &Path {
        self.proc.dir.path()
    }

    /// Panics (with the log) if the server died.
    pub fn assert_alive(&mut self) {
        self.proc.assert_alive();
    }
}

/// The common pair: a fresh Pushgateway and a Prometheus scraping it
/// (not yet waited for the first scrape, see [`Prometheus::wait_for_targets_up`]).
pub fn pushgateway_with_prometheus() -> (Pushgateway, Prometheus) {
    let pg = Pushgateway::start();
    let prom = Prometheus::start_scraping(&[&pg.addr]);
    (pg, prom)
}

// ---------------------------------------------------------------------------
// VictoriaMetrics
// ---------------------------------------------------------------------------

/// Whole seconds after "now" (VictoriaMetrics truncates an omitted `time`/`end`
/// to the current second, so samples from this second would be missed).
fn vm_now_ceil() -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    now.ceil() + 1.0
}

/// Single-node `victoria-metrics` (retention 100y, latencyOffset 0s, no cache).
pub struct VictoriaMetrics {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub addr: String,
    pub port: u16,
    proc: ServerProcess,
}

impl VictoriaMetrics {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts with extra flags after the defaults (a later flag wins, e.g.
    /// `-retentionPeriod=1d`).
    pub fn start_with(extra: &[&str]) -> Self {
        let bin = victoria_metrics_bin();
        let (proc, port) = ServerProcess::start(
            "victoria-metrics",
            &bin,
            "/health",
            |_| {},
            |port, dir| {
                vec![
                    format!("-httpListenAddr=127.0.0.1:{port}"),
                    format!("-storageDataPath={}", dir.join("vm").display()),
                    "-retentionPeriod=100y".into(),
                    "-search.latencyOffset=0s".into(),
                    "-search.disableCache".into(),
                ]
                .into_iter()
                .chain(extra.iter().map(|a| a.to_string()))
                .collect()
            },
        );
        VictoriaMetrics {
            url: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
            port,
            proc,
        }
    }

    /// Prometheus remote-write endpoint: `{url}/api/v1/write`.
    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.url)
    }

    /// `GET /internal/force_flush`: makes just-ingested samples searchable.
    pub fn force_flush(&self) {
        http_get_text(&format!("{}/internal/force_flush", self.url));
    }

    /// Instant query at "now" (really: the next full second, see
    /// [`vm_now_ceil`]; flushes first); returns `data`.
    pub fn query(&self, promql: &str) -> Value {
        self.query_params(promql, None)
    }

    /// Instant query at `unix_ts` seconds (flushes first); returns `data`.
    pub fn query_at(&self, promql: &str, unix_ts: f64) -> Value {
        self.query_params(promql, Some(unix_ts))
    }

    pub fn query_vector(&self, promql: &str) -> Vec<Sample> {
        vector_samples(&self.query(promql))
    }

    fn query_params(&self, promql: &str, time: Option<f64>) -> Value {
        self.force_flush();
        let url = format!("{}/api/v1/query", self.url);
        // VM's default "now" is truncated to whole seconds, which hides samples
        // written during the current second: evaluate at the next full second.
        let t = time.unwrap_or_else(vm_now_ceil);
        let req = http()
            .get(&url)
            .query(&[("query", promql), ("time", &format!("{t:.3}"))]);
        let resp = req.send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| {
            panic!("VM query {promql:?}: HTTP {status}, invalid JSON ({e}): {body}")
        });
        api_data(&format!("VM query {promql:?}"), v)
    }

    /// `GET /api/v1/export?match[]=<selector>` over all time (flushes first): one JSON object
    /// per series: `{"metric":{…},"values":[…],"timestamps":[ms…]}`.
    pub fn export(&self, selector: &str) -> Vec<Value> {
        self.force_flush();
        let url = format!("{}/api/v1/export", self.url);
        let resp = http()
            .get(&url)
            .query(&[
                ("match[]", selector),
                ("start", "0"),
                ("end", &format!("{:.0}", vm_now_ceil())),
            ])
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        assert!(
            status.is_success(),
            "VM export {selector:?}: HTTP {status}: {body}"
        );
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("VM export line not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// Polls `promql` until `pred(data)` holds.
    pub fn wait_for(
        &self,
        promql: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        poll_until(
            &format!("victoria-metrics {promql:?}"),
            timeout,
            || self.query(promql),
            pred,
        )
    }

    /// A counter from VM's own `/metrics` (e.g. `vm_rows_invalid_total{type="prometheus"}`),
    /// summed over matching lines whose text starts with `series_prefix`.
    pub fn self_metric(&self, series_prefix: &str) -> f64 {
        http_get_text(&format!("{}/metrics", self.url))
            .lines()
            .filter(|l| l.starts_with(series_prefix))
            .filter_map(|l| l.rsplit(' ').next())
            .map(parse_prom_float)
            .sum()
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}

// ---------------------------------------------------------------------------
// Alertmanager
// ---------------------------------------------------------------------------

/// Minimal Alertmanager config: everything goes to a receiver without integrations.
pub const ALERTMANAGER_NULL_CONFIG: &str =
    "route:\n  receiver: 'null'\n  group_wait: 0s\nreceivers:\n  - name: 'null'\n";

/// `prometheus-alertmanager` with clustering disabled.
pub struct Alertmanager {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub addr: String,
    pub port: u16,
    proc: ServerProcess,
}

impl Alertmanager {
    /// Starts with [`ALERTMANAGER_NULL_CONFIG`].
    pub fn start() -> Self {
        Self::start_with_config(ALERTMANAGER_NULL_CONFIG)
    }

    /// Starts with the given alertmanager.yml text. Never give it real
    /// Slack/PagerDuty URLs: it would try to reach the internet.
    pub fn start_with_config(yaml: &str) -> Self {
        let bin = alertmanager_bin();
        let (proc, port) = ServerProcess::start(
            "alertmanager",
            &bin,
            "/-/ready",
            |dir| {
                std::fs::write(dir.join("alertmanager.yml"), yaml).expect("write alertmanager.yml")
            },
            |port, dir| {
                vec![
                    format!("--config.file={}", dir.join("alertmanager.yml").display()),
                    format!("--storage.path={}", dir.join("data").display()),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    "--cluster.listen-address=".into(),
                ]
            },
        );
        Alertmanager {
            url: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
            port,
            proc,
        }
    }

    /// `GET /api/v2/alerts`.
    pub fn alerts(&self) -> Value {
        http_get_json(&format!("{}/api/v2/alerts", self.url))
    }

    /// `GET /api/v2/status`.
    pub fn status(&self) -> Value {
        http_get_json(&format!("{}/api/v2/status", self.url))
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}

// ---------------------------------------------------------------------------
// promtool / amtool
// ---------------------------------------------------------------------------

/// Result of a tool run.
#[derive(Debug)]
pub struct ToolOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    fn from_output(o: Output) -> Self {
        ToolOutput {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    /// Panics with the full output unless rc == 0.
    pub fn assert_success(&self, what: &str) -> &Self {
        assert!(
            self.success(),
            "{what} failed (rc {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }
}

fn run_tool(bin: &Path, args: &[&str], stdin: Option<&[u8]>) -> ToolOutput {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {} {args:?}: {e}", bin.display()));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        // Write from a thread so a tool that answers before reading all input cannot deadlock us.
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for tool");
        let _ = writer.join();
        return ToolOutput::from_output(out);
    }
    ToolOutput::from_output(child.wait_with_output().expect("wait for tool"))
}

/// Runs `promtool <args>`.
pub fn promtool(args: &[&str]) -> ToolOutput {
    run_tool(&promtool_bin(), args, None)
}

/// Runs `amtool <args>`.
pub fn amtool(args: &[&str]) -> ToolOutput {
    run_tool(&amtool_bin(), args, None)
}

/// `promtool check metrics` on `text`: panics with promtool's full output
/// unless rc == 0 and it printed nothing (lint findings go to stderr, rc 3;
/// parse errors rc 1).
pub fn promtool_check_metrics(text: &str) {
    let out = run_tool(
        &promtool_bin(),
        &["check", "metrics"],
        Some(text.as_bytes()),
    );
    if !(out.success() && out.stdout.trim().is_empty() && out.stderr.trim().is_empty()) {
        panic!(
            "promtool check metrics: rc {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- input ---\n{}",
            out.code, out.stdout, out.stderr, text
        );
    }
}

/// Writes `openmetrics` (timestamps in *seconds*, must end with `# EOF`) to a
/// temp dir and runs `promtool tsdb create-blocks-from openmetrics` into
/// `<dir>/data`. Returns the temp dir; serve it with
/// `Prometheus::start_on_data_dir(dir.path().join("data"))`.
pub fn promtool_create_blocks_from_openmetrics(openmetrics: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ptc-tsdb-")
        .tempdir()
        .expect("temp dir");
    let input = dir.path().join("input.om");
    std::fs::write(&input, openmetrics).expect("write input.om");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("create data dir");
    let (i, d) = (input.display().to_string(), data.display().to_string());
    promtool(&["tsdb", "create-blocks-from", "openmetrics", &i, &d])
        .assert_success("promtool tsdb create-blocks-from openmetrics");
    dir
}

/// Reads a file to string with a helpful panic.
pub fn read_to_string(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    let mut s = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    s
}
