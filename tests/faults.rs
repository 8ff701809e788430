//! Delivery faults a real Pushgateway does not produce on demand, injected by a small
//! scripted HTTP server on loopback: 5xx then success, 429 with Retry-After, 400 (never
//! retried), a dropped connection, a server that accepts and never answers, one that
//! answers a byte at a time, a refused connection, and a push whose answer is lost (sent
//! again, identical: nothing is counted twice).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::cli;

/// What the fake answers to one request.
#[derive(Clone)]
enum Reply {
    Status(u16, &'static str, Vec<(&'static str, &'static str)>),
    /// Close the connection without answering.
    Drop,
    /// Keep the connection open and say nothing.
    Hang,
    /// Answer `200 OK`, one byte every 200 ms, for at most 20 s.
    Trickle,
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn fake(script: Vec<Reply>) -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    thread::spawn(move || {
        let mut script = script.into_iter();
        for conn in l.incoming() {
            let Ok(mut s) = conn else { return };
            let Some(req) = read_request(&mut s) else {
                continue;
            };
            seen2.lock().unwrap().push(req);
            match script
                .next()
                .unwrap_or(Reply::Status(500, "script exhausted", vec![]))
            {
                Reply::Status(code, body, headers) => {
                    let mut resp = format!(
                        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in headers {
                        resp.push_str(&format!("{k}: {v}\r\n"));
                    }
                    resp.push_str("\r\n");
                    resp.push_str(body);
                    let _ = s.write_all(resp.as_bytes());
                }
                Reply::Drop => drop(s),
                Reply::Hang => {
                    thread::spawn(move || {
                        thread::sleep(Duration::from_secs(30));
                        drop(s);
                    });
                }
                Reply::Trickle => {
                    thread::spawn(move || {
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{EMPTY_API}",
                            EMPTY_API.len()
                        );
                        for b in answer.bytes().take(100) {
                            if s.write_all(&[b]).is_err() {
                                return;
                            }
                            thread::sleep(Duration::from_millis(200));
                        }
                    });
                }
            }
        }
    });
    Fake { url, seen }
}

fn read_request(s: &mut TcpStream) -> Option<Seen> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        if k.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().ok()?;
        }
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}

const EMPTY_API: &str = r#"{"status":"success","data":[]}"#;

fn push(url: &str, extra: &[&str]) -> (Option<i32>, String, Duration) {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pytest-9.2/junit-xunit2.xml");
    let t = Instant::now();
    let o = cli()
        .args([
            "push",
            f.to_str().unwrap(),
            "--gateway",
            url,
            "--project",
            "p",
        ])
        .args(extra)
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        t.elapsed(),
    )
}

fn gunzip(b: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(b)
        .read_to_string(&mut s)
        .unwrap();
    s
}

#[test]
fn server_errors_are_retried_then_the_push_lands_once() {
    let f = fake(vec![
        Reply::Status(500, "boom", vec![]),
        Reply::Status(200, EMPTY_API, vec![]),
        Reply::Status(503, "busy", vec![]),
        Reply::Status(200, "", vec![]),
    ]);
    let (code, err, _) = push(&f.url, &["--retries", "3"]);
    assert_eq!(code, Some(0), "{err}");
    let seen = f.seen.lock().unwrap().clone();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, ["GET", "GET", "PUT", "PUT"]);
    assert_eq!(seen[2].path, "/metrics/job/pytest/project/p");
    // Both PUT attempts carried the same gzip body: a retry never changes what is pushed.
    assert_eq!(gunzip(&seen[2].body), gunzip(&seen[3].body));
    let h = |s: &Seen, k: &str| {
        s.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(h(&seen[3], "content-encoding").as_deref(), Some("gzip"));
    assert_eq!(
        h(&seen[3], "content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(gunzip(&seen[3].body).contains("pytest_runs_total{job=\"pytest\",project=\"p\"} 1\n"));
}

#[test]
fn too_many_requests_honours_retry_after() {
    let f = fake(vec![
        Reply::Status(429, "slow down", vec![("Retry-After", "1")]),
        Reply::Status(200, EMPTY_API, vec![]),
        Reply::Status(200, "", vec![]),
    ]);
    let (code, err, took) = push(&f.url, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert_eq!(f.seen.lock().unwrap().len(), 3);
}

#[test]
fn client_errors_are_not_retried() {
    let f = fake(vec![
        Reply::Status(200, EMPTY_API, vec![]),
        Reply::Status(400, "text format parsing error in line 1", vec![]),
    ]);
    let (code, err, _) = push(&f.url, &["--retries", "5"]);
    assert_eq!(code, Some(3));
    assert!(err.contains(&format!(
        "error: PUT {}/metrics/job/pytest/project/p: the server answered 400 Bad Request: text format parsing error in line 1; fix what the gateway says",
        f.url
    )), "{err}");
    assert_eq!(f.seen.lock().unwrap().len(), 2);
}

#[test]
fn dropped_connections_are_retried_and_bounded() {
    let f = fake(vec![Reply::Drop, Reply::Drop, Reply::Drop]);
    let (code, err, took) = push(&f.url, &["--retries", "2"]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("after 3 attempt(s); check the URL and that the server is up"),
        "{err}"
    );
    assert_eq!(f.seen.lock().unwrap().len(), 3);
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_server_that_never_answers_times_out() {
    let f = fake(vec![Reply::Hang, Reply::Hang]);
    let (code, err, took) = push(&f.url, &["--retries", "1", "--timeout", "500ms"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("timed out"), "{err}");
    assert!(err.contains("after 2 attempt(s)"), "{err}");
    // Two attempts of 0.5 s plus at most one capped backoff.
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn basic_auth_and_bearer_token_are_sent_but_never_shown() {
    let f = fake(vec![Reply::Status(401, "unauthorized", vec![])]);
    let (code, err, _) = push(
        &f.url,
        &[
            "--basic-auth-user",
            "ci",
            "--basic-auth-password",
            "pa55word",
        ],
    );
    assert_eq!(code, Some(3));
    assert!(!err.contains("pa55word"), "{err}");
    let seen = f.seen.lock().unwrap().clone();
    let auth = seen[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .unwrap()
        .1
        .clone();
    // base64("ci:pa55word")
    assert_eq!(auth, "Basic Y2k6cGE1NXdvcmQ=");
    let f = fake(vec![Reply::Status(403, "forbidden", vec![])]);
    let (code, err, _) = support_push_env(&f.url, "PTC_METRICS_BEARER_TOKEN", "t0ken-xyz");
    assert_eq!(code, Some(3));
    assert!(!err.contains("t0ken-xyz"), "{err}");
    let seen = f.seen.lock().unwrap().clone();
    let auth = seen[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .unwrap()
        .1
        .clone();
    assert_eq!(auth, "Bearer t0ken-xyz");
}

fn support_push_env(url: &str, k: &str, v: &str) -> (Option<i32>, String, Duration) {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pytest-9.2/junit-xunit2.xml");
    let t = Instant::now();
    let o = cli()
        .args(["push", f.to_str().unwrap(), "--gateway", url])
        .env(k, v)
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        t.elapsed(),
    )
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
    let (code, err, took) = push(&url, &["--retries", "2"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.contains("after 3 attempt(s)"), "{err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_slow_trickle_times_out() {
    // Headers arrive a byte every 200 ms: the whole-request timeout ends each attempt.
    let f = fake(vec![Reply::Trickle, Reply::Trickle]);
    let (code, err, took) = push(&f.url, &["--retries", "1", "--timeout", "1s"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(err.contains("after 2 attempt(s)"), "{err}");
    // Two attempts of 1 s plus at most one capped backoff.
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[test]
fn a_push_whose_answer_is_lost_is_sent_again_unchanged() {
    // The gateway takes the PUT but the answer never arrives: the retry sends the same
    // body, and the group's totals are read once, so nothing is counted twice.
    let f = fake(vec![
        Reply::Status(200, EMPTY_API, vec![]),
        Reply::Drop,
        Reply::Status(200, "", vec![]),
    ]);
    let (code, err, _) = push(&f.url, &["--retries", "2"]);
    assert_eq!(code, Some(0), "{err}");
    let seen = f.seen.lock().unwrap().clone();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, ["GET", "PUT", "PUT"]);
    let (a, b) = (gunzip(&seen[1].body), gunzip(&seen[2].body));
    assert_eq!(a, b);
    assert!(
        b.contains("pytest_runs_total{job=\"pytest\",project=\"p\"} 1\n"),
        "{b}"
    );
}
