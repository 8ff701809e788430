//! Exact counting when CI jobs push to one group at the same moment (METRICS.md §3, "Exact
//! under concurrency"), against a real Pushgateway holding 200 other groups: 20 processes at
//! once, 20 spread over 0–200 ms, and 20 through a loopback proxy that answers some writes
//! 503 or drops the answer after the gateway took the body. Every run is counted once:
//! `pytest_runs_total`, `pytest_tests_total` and the histogram's `_count` are exactly N times
//! one run's, and the gateway holds nothing of ours but the group and its pending pushes.
//! Plus concurrent writers of one `--textfile`.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use support::{cli, fixture, Pushgateway};

const PROCS: usize = 20;
const OTHER_GROUPS: usize = 200;

fn report() -> String {
    fixture("9.2", "junit-xunit2.xml")
}
fn size_report() -> String {
    fixture("9.2", "size-report.json")
}

fn spawn_push(gateway: &str, extra: &[&str]) -> Child {
    cli()
        .arg("push")
        .args([
            &report(),
            "--size-report",
            &size_report(),
            "--gateway",
            gateway,
            "--project",
            "app",
            "--branch",
            "main",
            "--no-ci-detect",
            // 20 pushes at once on 2 cores: the gateway serialises writes and checks each one
            // against all its groups, and renders all of them for every read, so a request
            // can wait several seconds in its queue; the default 10s would measure the
            // machine, not the protocol.
            "--timeout",
            "30s",
            "--deadline",
            "5m",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ptc-metrics")
}

fn wait_ok(children: Vec<Child>) {
    for c in children {
        let o = c.wait_with_output().expect("wait");
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "stderr: {e}");
        assert!(e.contains("pushed "), "{e}");
    }
}

/// One run's cumulative values, from a single push to an empty group of a fresh gateway.
fn one_run() -> BTreeMap<String, f64> {
    let gw = Pushgateway::start();
    wait_ok(vec![spawn_push(&gw.url, &[])]);
    cumulative(&gw, &[("project", "app"), ("branch", "main")])
}

/// `name{labels} value` of the cumulative samples whose group is exactly `group` (+ job).
fn cumulative(gw: &Pushgateway, group: &[(&str, &str)]) -> BTreeMap<String, f64> {
    let mut want: BTreeMap<String, String> = group
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.insert("job".into(), "pytest".into());
    let mut out = BTreeMap::new();
    for line in gw.metrics_text().lines() {
        let cum = [
            "pytest_runs_total",
            "pytest_tests_total",
            "pytest_test_duration_seconds_count",
            "ci_test_failures_total",
            "pytest_timing_violations_total",
        ];
        let Some(name) = cum.iter().find(|n| line.starts_with(&format!("{n}{{"))) else {
            continue;
        };
        let (labels, value) = line.rsplit_once(' ').unwrap();
        let inner = &labels[name.len() + 1..labels.len() - 1];
        let mut group_labels = BTreeMap::new();
        let mut own = Vec::new();
        for kv in inner.split("\",") {
            let (k, v) = kv.split_once("=\"").unwrap();
            let v = v.trim_end_matches('"');
            if ["size", "outcome", "failure_type"].contains(&k) {
                own.push(format!("{k}={v}"));
            } else if !v.is_empty() {
                group_labels.insert(k.to_string(), v.to_string());
            }
        }
        if group_labels == want {
            out.insert(
                format!("{name}{{{}}}", own.join(",")),
                support::parse_prom_float(value),
            );
        }
    }
    out
}

fn times(one: &BTreeMap<String, f64>, n: f64) -> BTreeMap<String, f64> {
    one.iter().map(|(k, v)| (k.clone(), v * n)).collect()
}

/// A gateway holding 200 other groups (same families, other projects), started from a
/// persistence file filled once per test binary: the fill runs with the consistency check off
/// (200 checked PUTs cost about a minute of gateway CPU on 2 cores, for every test), the
/// gateways under test run with it on, as Debian's does.
fn gateway_with_other_groups() -> Pushgateway {
    static FILLED: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = FILLED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let gw = Pushgateway::start_with(&["--push.disable-consistency-check"]);
        fill_other_groups(&gw, OTHER_GROUPS);
        gw.stop_and_persist(&dir.path().join("persist"));
        dir
    });
    let gw = Pushgateway::start_from(&dir.path().join("persist"));
    assert_eq!(gw.metric_lines("push_time_seconds").len(), OTHER_GROUPS);
    gw
}

/// PUTs `n` other groups (same families, other projects) straight to the gateway.
fn fill_other_groups(gw: &Pushgateway, n: usize) {
    let o = cli()
        .args([
            "push",
            &report(),
            "--size-report",
            &size_report(),
            "--dry-run",
        ])
        .args([
            "--project",
            "PLACEHOLDER",
            "--branch",
            "main",
            "--no-ci-detect",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    for i in 0..n {
        let body = text.replace("project=\"PLACEHOLDER\"", &format!("project=\"other{i}\""));
        let (status, b) = gw.push_raw(
            "PUT",
            &format!("/metrics/job/pytest/project/other{i}/branch/main"),
            &body,
        );
        // 202 without the consistency check: taken, not yet applied.
        assert!(status == 200 || status == 202, "{status} {b}");
    }
}

fn assert_counted(gw: &Pushgateway, one: &BTreeMap<String, f64>, n: usize, what: &str) {
    let got = cumulative(gw, &[("project", "app"), ("branch", "main")]);
    assert_eq!(got, times(one, n as f64), "{what}: after {n} pushes");
}

#[test]
fn simultaneous_pushes_are_each_counted_once() {
    let one = one_run();
    assert_eq!(one["pytest_runs_total{}"], 1.0);
    let gw = gateway_with_other_groups();
    for rep in 1..=10 {
        let children: Vec<Child> = (0..PROCS).map(|_| spawn_push(&gw.url, &[])).collect();
        wait_ok(children);
        assert_counted(&gw, &one, rep * PROCS, "at once");
    }
    // The other groups are untouched, and nothing but the group and its pending pushes is ours.
    assert_eq!(
        cumulative(&gw, &[("project", "other7"), ("branch", "main")]),
        one
    );
    let groups = gw.metric_lines("push_time_seconds");
    let pending = groups.iter().filter(|l| l.contains("ptc_push=")).count();
    assert_eq!(groups.len() - pending, 201, "{groups:#?}");
    assert!(pending <= 10 * PROCS, "{pending}");
    let ledger = gw.metric_lines("ptc_push_ledger");
    assert_eq!(
        ledger.len(),
        pending,
        "every live pending push is in the ledger: {ledger:#?}"
    );
}

#[test]
fn pushes_spread_over_200ms_are_each_counted_once() {
    let one = one_run();
    let gw = gateway_with_other_groups();
    for rep in 1..=10 {
        let mut children = Vec::new();
        let mut delays: Vec<u64> = (0..PROCS).map(|_| rand::random_range(0..200)).collect();
        delays.sort();
        let mut slept = 0;
        for d in delays {
            std::thread::sleep(Duration::from_millis(d - slept));
            slept = d;
            children.push(spawn_push(&gw.url, &[]));
        }
        wait_ok(children);
        assert_counted(&gw, &one, rep * PROCS, "spread");
    }
}

/// A loopback proxy in front of the gateway: every 4th write (`PUT`) is answered 503 without
/// reaching the gateway, every 4th+1 is passed on and its answer dropped (the connection is
/// closed after the gateway took the body). Reads pass.
struct FaultProxy {
    url: String,
    refused: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl FaultProxy {
    fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let writes = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (w, r, d) = (writes.clone(), refused.clone(), dropped.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (upstream, w, r, d) = (upstream.clone(), w.clone(), r.clone(), d.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &upstream, &w, &r, &d);
                });
            }
        });
        FaultProxy {
            url,
            refused,
            dropped,
        }
    }
}

/// One request per connection (`Connection: close` both ways).
fn serve(
    mut conn: TcpStream,
    upstream: &str,
    writes: &AtomicUsize,
    refused: &AtomicUsize,
    dropped: &AtomicUsize,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let is_write = head.starts_with("PUT ");
    let fault = if is_write {
        writes.fetch_add(1, Ordering::SeqCst) % 4
    } else {
        2
    };
    if fault == 0 {
        refused.fetch_add(1, Ordering::SeqCst);
        conn.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    let mut lines: Vec<&str> = head[..head_end - 4]
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let mut req = lines.join("\r\n").into_bytes();
    req.extend_from_slice(b"\r\n\r\n");
    req.extend_from_slice(&buf[head_end..head_end + len]);
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(&req)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    if fault == 1 {
        // The gateway has applied the write; the client never hears so.
        dropped.fetch_add(1, Ordering::SeqCst);
        let _ = conn.shutdown(Shutdown::Both);
        return Ok(());
    }
    conn.write_all(&answer)?;
    Ok(())
}

#[test]
fn refused_and_lost_answers_neither_lose_nor_double_count() {
    let one = one_run();
    let gw = gateway_with_other_groups();
    let proxy = FaultProxy::start(&gw.url);
    for rep in 1..=3 {
        let children: Vec<Child> = (0..PROCS)
            .map(|_| spawn_push(&proxy.url, &["--retries", "12"]))
            .collect();
        wait_ok(children);
        assert_counted(&gw, &one, rep * PROCS, "through the fault proxy");
    }
    assert!(proxy.refused.load(Ordering::SeqCst) >= 20);
    assert!(proxy.dropped.load(Ordering::SeqCst) >= 20);
}

#[test]
fn concurrent_writers_of_one_textfile_lose_no_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pytest.prom");
    let p = path.to_string_lossy().into_owned();
    let spawn = || {
        cli()
            .args([
                "push",
                &report(),
                "--size-report",
                &size_report(),
                "--textfile",
                &p,
            ])
            .args(["--project", "app", "--no-ci-detect"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    for _ in 0..3 {
        let children: Vec<Child> = (0..PROCS).map(|_| spawn()).collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let runs = text
        .lines()
        .find(|l| l.starts_with("pytest_runs_total{"))
        .unwrap();
    assert!(runs.ends_with(&format!(" {}", 3 * PROCS)), "{runs}");
}
