//! Delivery faults a real Pushgateway does not produce on demand, injected by a small
//! scripted HTTP server on loopback (std::net, one thread per connection): a server that
//! trickles its answer (body or headers) a byte every 0.5 s for ever, 503 and 429 for ever
//! (with `Retry-After`), 500 then success, 400 (never retried), a server that never answers,
//! a refused connection, and a write the server takes but never answers.
//!
//! A push of ours is several requests (sink/exact_push.rs): the `PUT` of its pending group
//! (`…/ptc_push/<id>`) side by side with a `GET /metrics`, then the `PUT` of the group and
//! a verifying `GET /metrics`. The fake can play a tiny gateway for the requests a test does
//! not break ([`Reply::Gateway`]): it keeps the last body of each group and serves them on
//! `/metrics` with the group's labels and `push_time_seconds`, enough for the protocol to
//! finish. The real gateway under a lossy proxy is tests/concurrency.rs.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::http::{answer, listen, read_request, Req};
use support::{cli, fixture};

/// What the fake does with one request.
#[derive(Clone, Debug)]
enum Reply {
    Status(u16, &'static str, Vec<(&'static str, &'static str)>),
    /// Close the connection without answering.
    Drop,
    /// Keep the connection open and say nothing until the client goes away.
    Hang,
    /// `200 OK` headers at once, then the body one byte every 0.5 s, for ever.
    TrickleBody,
    /// The status line, then the headers one byte every 0.5 s, for ever.
    TrickleHeaders,
    /// Act as a (tiny) Pushgateway.
    Gateway,
    /// Apply the write like [`Reply::Gateway`], then close the connection without answering.
    TakeThenDrop,
}

/// `GET /metrics`, `PUT pending`, `PUT group`, `DELETE group`, …
fn route(r: &Req) -> String {
    let what = if r.path == "/metrics" {
        "/metrics"
    } else if r.path.contains("/ptc_push/") {
        "pending"
    } else {
        "group"
    };
    format!("{} {what}", r.method)
}

/// One group of the tiny gateway: its labels (from the URL), last body, push time.
type Group = (BTreeMap<String, String>, String, f64);

#[derive(Default)]
struct State {
    seen: Vec<Req>,
    groups: BTreeMap<String, Group>,
}

type Script = dyn Fn(&Req, usize) -> Reply + Send + Sync;

struct Fake {
    url: String,
    state: Arc<Mutex<State>>,
}

impl Fake {
    fn seen(&self) -> Vec<Req> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many requests of each route arrived.
    fn routes(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in self.seen() {
            *m.entry(route(&r)).or_default() += 1;
        }
        m
    }

    /// The tiny gateway's `/metrics`.
    fn exposition(&self) -> String {
        exposition(&self.state.lock().unwrap().groups)
    }
}

/// Starts a fake whose `script` decides each reply from the request and how many requests
/// of the same route came before it.
fn fake(script: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static) -> Fake {
    let state = Arc::new(Mutex::new(State::default()));
    let script: Arc<Script> = Arc::new(script);
    let st = state.clone();
    let url = listen(move |s| serve(s, &st, &*script));
    Fake { url, state }
}

fn serve(mut s: TcpStream, state: &Mutex<State>, script: &Script) {
    let Some(req) = read_request(&mut s) else {
        return;
    };
    let reply = {
        let mut st = state.lock().unwrap();
        let n = st.seen.iter().filter(|r| route(r) == route(&req)).count();
        st.seen.push(req.clone());
        script(&req, n)
    };
    match reply {
        Reply::Status(code, body, headers) => answer(&mut s, code, &headers[..], body),
        Reply::Drop => {}
        Reply::Hang => {
            // Until the client closes (its process ends), bounded for safety.
            let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
            let _ = s.read(&mut [0u8; 1]);
        }
        Reply::TrickleBody => {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n",
            );
            trickle(&mut s, b"# still here\n");
        }
        Reply::TrickleHeaders => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
            trickle(&mut s, b"X-Trickle: still here\r\n");
        }
        Reply::Gateway => {
            let (code, body) = gateway(state, &req);
            answer::<&str, &str>(&mut s, code, &[], &body);
        }
        Reply::TakeThenDrop => {
            gateway(state, &req);
        }
    }
}

/// Writes `pattern` one byte every 0.5 s until the client goes away.
fn trickle(s: &mut TcpStream, pattern: &[u8]) {
    for b in pattern.iter().cycle() {
        if s.write_all(&[*b]).is_err() {
            return;
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// The tiny gateway: `PUT`/`POST` keep the body of the group, `DELETE` drops it, `GET
/// /metrics` serves every group.
fn gateway(state: &Mutex<State>, req: &Req) -> (u16, String) {
    let mut st = state.lock().unwrap();
    if req.path == "/metrics" && req.method == "GET" {
        return (200, exposition(&st.groups));
    }
    let Some(rest) = req.path.strip_prefix("/metrics/") else {
        return (404, "not found".into());
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let labels: BTreeMap<String, String> = parts
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv[1].to_string()))
        .collect();
    match req.method.as_str() {
        "PUT" | "POST" => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            st.groups
                .insert(req.path.clone(), (labels, req.text(), now));
            (200, String::new())
        }
        "DELETE" => {
            st.groups.remove(&req.path);
            (202, String::new())
        }
        _ => (405, "method not allowed".into()),
    }
}

/// Every sample of every group with the group's labels (which win), then its push time.
fn exposition(groups: &BTreeMap<String, Group>) -> String {
    let mut out = String::new();
    for (labels, text, at) in groups.values() {
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, mut all) = match series.split_once('{') {
                Some((n, l)) => (n, parse_labels(l.strip_suffix('}').unwrap())),
                None => (series, BTreeMap::new()),
            };
            all.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            out.push_str(&format!("{name}{{{}}} {value}\n", show_labels(&all)));
        }
        out.push_str(&format!(
            "push_time_seconds{{{}}} {at}\n",
            show_labels(labels)
        ));
    }
    out
}

/// `a="x",b="y\"z"` → {a: x, b: y\"z} (values kept escaped).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"").unwrap();
        let mut end = 0;
        let b = after.as_bytes();
        while b[end] != b'"' {
            end += if b[end] == b'\\' { 2 } else { 1 };
        }
        m.insert(k.to_string(), after[..end].to_string());
        rest = after[end + 1..].trim_start_matches(',');
    }
    m
}

fn show_labels(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(",")
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Past this a command is killed and its test fails: what these tests check first is that
/// every fault ends.
const WATCHDOG: Duration = Duration::from_secs(60);

fn run(args: &[&str]) -> Run {
    let t = Instant::now();
    let mut child = cli()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut p: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = p.read_to_string(&mut s);
            s
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ptc-metrics {args:?} did not end within {WATCHDOG:?}; stderr: {}",
                stderr.join().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        took: t.elapsed(),
    }
}

/// `push` of the 9.2 fixture (90 tests, sized by the size report) to group `project=p`.
fn push(url: &str, extra: &[&str]) -> Run {
    let (report, sizes) = (
        fixture("9.2", "junit-xunit2.xml"),
        fixture("9.2", "size-report.json"),
    );
    let mut args = vec![
        "push",
        &report,
        "--size-report",
        &sizes,
        "--gateway",
        url,
        "--project",
        "p",
        "--no-ci-detect",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

const HINT: &str =
    "hint: add --soft-fail to keep the job green when the metrics cannot be delivered\n";

/// The error of a read of the gateway that timed out on every attempt.
fn read_timed_out(url: &str, limit: &str, attempts: u32) -> String {
    format!(
        "GET {url}/metrics: timed out (no complete answer within {limit}) after {attempts} \
         attempt(s); check the URL and that the server is up"
    )
}

/// A bound that only proves the command ends (seconds of slack on a loaded machine).
fn assert_bounded(r: &Run, bound: u64) {
    assert!(
        r.took < Duration::from_secs(bound),
        "took {:?}; stderr: {}",
        r.took,
        r.stderr
    );
}

// ---------------------------------------------------------------------------
// Trickling servers: --timeout bounds a whole attempt, --deadline all of them
// ---------------------------------------------------------------------------

#[test]
fn a_trickled_body_ends_after_timeout_times_attempts() {
    let f = fake(|_, _| Reply::TrickleBody);
    let r = push(&f.url, &["--timeout", "1s", "--retries", "1"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!("error: {}\n{HINT}", read_timed_out(&f.url, "1s", 2))
    );
    assert_eq!(r.stdout, "");
    assert_bounded(&r, 8);
    // Both requests of the first step, each tried twice.
    let routes = f.routes();
    assert_eq!(routes["GET /metrics"], 2, "{routes:?}");
    assert_eq!(routes["PUT pending"], 2, "{routes:?}");
    assert_eq!(routes.len(), 2, "{routes:?}");
}

#[test]
fn a_trickled_body_under_soft_fail_is_a_warning() {
    let f = fake(|_, _| Reply::TrickleBody);
    let r = push(
        &f.url,
        &["--timeout", "1s", "--retries", "1", "--soft-fail"],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "warning: metrics not pushed (--soft-fail): {}\n",
            read_timed_out(&f.url, "1s", 2)
        )
    );
    assert_bounded(&r, 8);
}

#[test]
fn trickled_headers_end_after_timeout_times_attempts() {
    let f = fake(|_, _| Reply::TrickleHeaders);
    let r = push(&f.url, &["--timeout", "1s", "--retries", "1"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!("error: {}\n{HINT}", read_timed_out(&f.url, "1s", 2))
    );
    assert_bounded(&r, 8);
    assert_eq!(f.routes()["GET /metrics"], 2);

    let r = push(
        &f.url,
        &["--timeout", "1s", "--retries", "1", "--soft-fail"],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "warning: metrics not pushed (--soft-fail): {}\n",
            read_timed_out(&f.url, "1s", 2)
        )
    );
    assert_bounded(&r, 8);
}

#[test]
fn the_deadline_bounds_every_attempt_together() {
    // Ten retries of 2 s each would take over 20 s: the deadline ends them at 3 s, cutting
    // the second attempt short.
    let f = fake(|_, _| Reply::TrickleBody);
    let r = push(
        &f.url,
        &["--deadline", "3s", "--timeout", "2s", "--retries", "10"],
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    let head = format!(
        "error: GET {}/metrics: no complete answer within the --deadline of 3s (2 attempt(s), \
         the last: timed out (no complete answer within ",
        f.url
    );
    let tail = format!(
        "ms)); is the server overloaded? raise --deadline or --timeout if it is only slow\n{HINT}"
    );
    let rest = r
        .stderr
        .strip_prefix(&head)
        .and_then(|s| s.strip_suffix(&tail))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    // What was left of the deadline for the second attempt: under a second.
    let ms: u64 = rest.parse().unwrap_or_else(|_| panic!("{}", r.stderr));
    assert!(ms < 1000, "{}", r.stderr);
    assert!(r.took >= Duration::from_secs(3), "{:?}", r.took);
    assert_bounded(&r, 8);
    assert_eq!(f.routes()["GET /metrics"], 2);
}

// ---------------------------------------------------------------------------
// Refusals for ever, and refusals that pass
// ---------------------------------------------------------------------------

#[test]
fn service_unavailable_for_ever_honours_retry_after_and_gives_up() {
    let f = fake(|_, _| Reply::Status(503, "busy", vec![("Retry-After", "1")]));
    let r = push(&f.url, &["--retries", "2"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "error: GET {}/metrics: 503 Service Unavailable after 3 attempt(s): busy; is the \
             server healthy?\n{HINT}",
            f.url
        )
    );
    // Two waits of Retry-After (1 s) between three attempts.
    assert!(r.took >= Duration::from_secs(2), "{:?}", r.took);
    assert_bounded(&r, 15);
    let routes = f.routes();
    assert_eq!(
        (routes["GET /metrics"], routes["PUT pending"], routes.len()),
        (3, 3, 2),
        "{routes:?}"
    );
}

#[test]
fn a_retry_after_beyond_the_deadline_ends_at_the_deadline() {
    let f = fake(|_, _| Reply::Status(503, "", vec![("Retry-After", "120")]));
    let r = push(&f.url, &["--deadline", "2s", "--retries", "5"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "error: GET {}/metrics: no complete answer within the --deadline of 2s (1 \
             attempt(s), the last: 503 Service Unavailable); is the server overloaded? raise \
             --deadline or --timeout if it is only slow\n{HINT}",
            f.url
        )
    );
    assert_bounded(&r, 8);
    assert_eq!(f.routes()["GET /metrics"], 1);
}

#[test]
fn too_many_requests_for_ever_gives_up() {
    let f = fake(|_, _| Reply::Status(429, "slow down", vec![("Retry-After", "1")]));
    let r = push(&f.url, &["--retries", "1"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "error: GET {}/metrics: 429 Too Many Requests after 2 attempt(s): slow down; is the \
             server healthy?\n{HINT}",
            f.url
        )
    );
    assert!(r.took >= Duration::from_secs(1), "{:?}", r.took);
    assert_bounded(&r, 10);
    assert_eq!(f.routes()["GET /metrics"], 2);

    let r = push(&f.url, &["--retries", "1", "--soft-fail"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "warning: metrics not pushed (--soft-fail): GET {}/metrics: 429 Too Many Requests \
             after 2 attempt(s): slow down; is the server healthy?\n",
            f.url
        )
    );
}

#[test]
fn too_many_requests_then_the_push_lands() {
    let f = fake(|r, n| match (route(r).as_str(), n) {
        ("PUT group", 0) => Reply::Status(429, "slow down", vec![("Retry-After", "1")]),
        _ => Reply::Gateway,
    });
    let r = push(&f.url, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.took >= Duration::from_secs(1), "{:?}", r.took);
    assert_eq!(f.routes()["PUT group"], 2);
    assert!(
        f.exposition()
            .contains("pytest_runs_total{job=\"pytest\",project=\"p\"} 1\n"),
        "{}",
        f.exposition()
    );
}

#[test]
fn server_errors_are_retried_then_the_push_lands_once() {
    let f = fake(|r, n| match (route(r).as_str(), n) {
        ("GET /metrics", 0) => Reply::Status(500, "boom", vec![]),
        ("PUT group", 0) => Reply::Status(503, "busy", vec![]),
        _ => Reply::Gateway,
    });
    let r = push(&f.url, &["--retries", "3"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "pushed 90 tests (16 families) to {}/metrics/job/pytest/project/p\n",
            f.url
        )
    );
    let seen = f.seen();
    let puts: Vec<&Req> = seen.iter().filter(|s| route(s) == "PUT group").collect();
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[0].path, "/metrics/job/pytest/project/p");
    // Both attempts carried the same body: a retry never changes what is pushed.
    assert_eq!(puts[0].text(), puts[1].text());
    assert_eq!(puts[1].header("content-encoding"), Some("gzip"));
    assert_eq!(
        puts[1].header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(puts[1]
        .text()
        .contains("pytest_runs_total{job=\"pytest\",project=\"p\"} 1\n"));
}

#[test]
fn client_errors_are_not_retried() {
    let f = fake(|r, _| match route(r).as_str() {
        "PUT group" => Reply::Status(400, "text format parsing error in line 1", vec![]),
        _ => Reply::Gateway,
    });
    let r = push(&f.url, &["--retries", "5"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    // A refusal is no outage: no --soft-fail hint.
    assert_eq!(
        r.stderr,
        format!(
            "error: PUT {}/metrics/job/pytest/project/p: the server answered 400 Bad Request: \
             text format parsing error in line 1; fix what the gateway says (a metric of another \
             type with the same name in another group? an old Pushgateway without gzip support: \
             try --no-gzip)\n",
            f.url
        )
    );
    assert_eq!(f.routes()["PUT group"], 1);
}

#[test]
fn a_server_that_is_no_pushgateway_is_named_as_such() {
    // Another server on the port (Prometheus: /metrics answers, a push gets 404).
    let f = fake(|r, _| match r.method.as_str() {
        "PUT" | "POST" => Reply::Status(404, "404 page not found", vec![]),
        _ => Reply::Gateway,
    });
    let r = push(&f.url, &["--retries", "5"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    let first = r.stderr.lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with(&format!(
            "error: PUT {}/metrics/job/pytest/project/p",
            f.url
        )),
        "{}",
        r.stderr
    );
    assert!(
        first.ends_with(&format!(
            ": the server answered 404 Not Found: 404 page not found; no Pushgateway answers at \
             {}/: check the port of --gateway (a Pushgateway listens on 9091 unless told \
             otherwise) and any path prefix it is served under (http://HOST/PREFIX)",
            f.url
        )),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------
// Silence, refusal, lost answers
// ---------------------------------------------------------------------------

#[test]
fn a_server_that_never_answers_times_out() {
    let f = fake(|_, _| Reply::Hang);
    let r = push(&f.url, &["--retries", "1", "--timeout", "500ms"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!("error: {}\n{HINT}", read_timed_out(&f.url, "500ms", 2))
    );
    assert_bounded(&r, 8);
}

#[test]
fn dropped_connections_are_retried_and_bounded() {
    let f = fake(|_, _| Reply::Drop);
    let r = push(&f.url, &["--retries", "2"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "error: GET {}/metrics: request failed (connection closed before message completed) \
             after 3 attempt(s); check the URL and that the server is up\n{HINT}",
            f.url
        )
    );
    assert_eq!(f.routes()["GET /metrics"], 3);
    assert_bounded(&r, 10);
}

#[test]
fn a_refused_connection_is_retried_and_bounded() {
    // A port nobody listens on: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let r = push(&url, &["--retries", "2"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "error: GET {url}/metrics: cannot connect (Connection refused (os error 111)) after \
             3 attempt(s); check the URL and that the server is up\n{HINT}"
        )
    );
    assert_bounded(&r, 10);
}

#[test]
fn a_write_whose_answer_is_lost_is_sent_again_and_counted_once() {
    // The server applies the first attempt of each write (the pending group's and the
    // group's) and closes the connection without answering. The retry sends the same body;
    // the group counts this push once and its ledger names it once.
    let f = fake(|r, n| match (r.method.as_str(), n) {
        ("PUT", 0) => Reply::TakeThenDrop,
        _ => Reply::Gateway,
    });
    let r = push(&f.url, &["--retries", "2"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // One write of the group as far as the protocol knows: no "other pushes" note.
    assert_eq!(
        r.stderr,
        format!(
            "pushed 90 tests (16 families) to {}/metrics/job/pytest/project/p\n",
            f.url
        )
    );
    let seen = f.seen();
    let routes = f.routes();
    assert_eq!(
        (
            routes["PUT pending"],
            routes["PUT group"],
            routes["GET /metrics"]
        ),
        (2, 2, 2),
        "{routes:?}"
    );
    let puts: Vec<&Req> = seen.iter().filter(|s| route(s) == "PUT group").collect();
    assert_eq!(puts[0].text(), puts[1].text());
    let pending = seen.iter().find(|s| route(s) == "PUT pending").unwrap();
    let id = pending.path.rsplit('/').next().unwrap();
    let id = u64::from_str_radix(id, 16).unwrap();
    let exposition = f.exposition();
    let ours: Vec<&str> = exposition
        .lines()
        .filter(|l| l.starts_with("pytest_runs_total{") || l.starts_with("ptc_push_ledger{"))
        .collect();
    assert_eq!(
        ours,
        [
            "pytest_runs_total{job=\"pytest\",project=\"p\"} 1".to_string(),
            format!("ptc_push_ledger{{job=\"pytest\",project=\"p\",slot=\"0\"}} {id}"),
        ],
        "{exposition}"
    );
}

#[test]
fn credentials_are_sent_but_never_shown() {
    let f = fake(|_, _| Reply::Status(401, "unauthorized", vec![]));
    let r = push(
        &f.url,
        &[
            "--basic-auth-user",
            "ci",
            "--basic-auth-password",
            "pa55word",
        ],
    );
    assert_eq!(r.code, Some(3));
    assert!(!r.stderr.contains("pa55word"), "{}", r.stderr);
    // base64("ci:pa55word")
    assert_eq!(
        f.seen()[0].header("authorization"),
        Some("Basic Y2k6cGE1NXdvcmQ=")
    );

    let f = fake(|_, _| Reply::Status(403, "forbidden", vec![]));
    let url = f.url.replace("http://", "http://bob:hunter2@");
    let r = push(&url, &[]);
    assert_eq!(r.code, Some(3));
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    assert!(
        r.stderr.contains("http://bob:***@127.0.0.1:"),
        "{}",
        r.stderr
    );
    assert_eq!(
        f.seen()[0].header("authorization"),
        Some("Basic Ym9iOmh1bnRlcjI=")
    );

    let f = fake(|_, _| Reply::Status(403, "forbidden", vec![]));
    let t = Instant::now();
    let o = cli()
        .args([
            "push",
            &fixture("9.2", "junit-xunit2.xml"),
            "--gateway",
            &f.url,
        ])
        .args(["--no-ci-detect", "--project", "p"])
        .env("PTC_METRICS_BEARER_TOKEN", "t0ken-xyz")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(!err.contains("t0ken-xyz"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(
        f.seen()[0].header("authorization"),
        Some("Bearer t0ken-xyz")
    );
}
