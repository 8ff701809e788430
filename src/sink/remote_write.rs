//! Prometheus remote write 1.0 sink: `POST` of a snappy-compressed
//! `WriteRequest` (built by `crate::encode::remote_write`) to a receiver: Prometheus
//! `/api/v1/write` (`--web.enable-remote-write-receiver`), VictoriaMetrics `/api/v1/write`,
//! Mimir/Cortex `/api/v1/push`, Thanos Receive `/api/v1/receive`. A tenant header
//! (`X-Scope-OrgID`, `THANOS-TENANT`) comes from `HttpConfig::headers`.
//!
//! Retries follow the spec: transport errors, 429 and 5xx, at most `retries` times
//! ([`RetryPolicy::RemoteWrite`]); every other 4xx is final. Prometheus 2.42 answers
//! `500 too old sample` for samples before its out-of-order window, which no retry fixes:
//! that answer is reported as a rejection that says what to change.
//!
//! [`check_path`] sorts a `--remote-write` URL by its path before anything is sent: paths of
//! known receivers, paths known to be something else (answered 2xx and stored nowhere, like
//! VictoriaMetrics' InfluxDB `/write`), and unknown ones. `super::verify` checks afterwards
//! that what was acknowledged is stored.

use reqwest::{Method, Url};

use super::http::{DeliveryError, HttpClient, HttpConfig, RetryPolicy};
use crate::encode::remote_write::{CONTENT_ENCODING, CONTENT_TYPE, VERSION};

/// Where to write.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWriteConfig {
    pub url: Url,
    pub http: HttpConfig,
}

const HINT: &str = "; the receiver refused the samples. Prometheus: \"out of bounds\" or \"out of order sample\" \
     means the runs are older than storage.tsdb.out_of_order_time_window allows (set it to cover the archive, \
     see docs/backfill.md); 404: start Prometheus with --web.enable-remote-write-receiver, or use the receiver's \
     path (Mimir/Cortex /api/v1/push, Thanos Receive /api/v1/receive); 401/403: check the credentials and the \
     tenant --header";

const TOO_OLD_HINT: &str = "; Prometheus keeps no sample older than its storage.tsdb.out_of_order_time_window \
     (2.42 answers 500 for them, so retrying cannot help): widen the window to cover the archive, or move the \
     older runs out of it (see docs/backfill.md)";

/// What a `--remote-write` URL's path says about the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathCheck {
    /// The remote-write path of a known receiver.
    Known,
    /// No path ptc-metrics knows: maybe a proxy, maybe a mistake.
    Unknown,
    /// Known to be something else: `what` it is, and `advice` on what to give instead.
    Wrong { what: String, advice: String },
}

/// Remote-write paths of known receivers: Prometheus, VictoriaMetrics (single node, vmagent,
/// cluster `/insert/<tenant>/prometheus/api/v1/write`), Mimir/Cortex (`/api/v1/push`,
/// `/api/prom/push`), Thanos Receive (`/api/v1/receive`), InfluxDB 1.x, M3, GreptimeDB.
const KNOWN: [&str; 8] = [
    "/api/v1/write",
    "/api/v1/push",
    "/api/prom/push",
    "/api/v1/receive",
    "/receive",
    "/api/v1/prom/write",
    "/api/v1/prom/remote/write",
    "/v1/prometheus/write",
];

/// The short list of receivers' paths, for messages.
pub const KNOWN_PATHS_TEXT: &str =
    "Prometheus and VictoriaMetrics /api/v1/write, Mimir and Cortex \
     /api/v1/push or /api/prom/push, Thanos Receive /api/v1/receive, VictoriaMetrics cluster \
     /insert/<tenant>/prometheus/api/v1/write";

/// Sorts a `--remote-write` URL by its path. Paths known to be something else (InfluxDB
/// line protocol and VictoriaMetrics' import, where a remote-write body is answered 2xx and
/// nothing is stored; scrape, query and Pushgateway URLs) come with what to give instead.
pub fn check_path(url: &Url) -> PathCheck {
    let path = url.path().trim_end_matches('/');
    let wrong = |prefix: &str, what: &str, instead_path: String| {
        let mut u = url.clone();
        u.set_path(&format!("{prefix}{instead_path}"));
        u.set_query(None);
        u.set_fragment(None);
        PathCheck::Wrong {
            what: what.to_string(),
            advice: format!("give --remote-write {}", super::http::redact(&u)),
        }
    };
    // Where a receiver's remote-write path goes: VictoriaMetrics cluster's vminsert takes
    // it under /insert/<tenant>/prometheus.
    let write_under = |prefix: &str| {
        let segs: Vec<&str> = prefix.rsplit('/').take(2).collect();
        if segs.len() == 2 && segs[1] == "insert" {
            "/prometheus/api/v1/write".to_string()
        } else {
            "/api/v1/write".to_string()
        }
    };
    if let Some(i) = path
        .find("/metrics/job/")
        .or_else(|| path.strip_suffix("/metrics/job").map(str::len))
    {
        let mut base = url.clone();
        base.set_path(&path[..i]);
        base.set_query(None);
        let base = super::http::redact(&base);
        let base = base.trim_end_matches('/');
        return PathCheck::Wrong {
            what: format!(
                "a Pushgateway group URL (the Pushgateway keeps no timestamps; `--gateway {base}` \
                 pushes the newest run of each group there)"
            ),
            advice: "give a remote-write receiver, e.g. --remote-write http://prometheus:9090/api/v1/write"
                .into(),
        };
    }
    for suffix in ["/influx/api/v2/write", "/api/v2/write", "/influx/write"] {
        if let Some(prefix) = path.strip_suffix(suffix) {
            return wrong(
                prefix,
                "an InfluxDB line-protocol endpoint (VictoriaMetrics answers 204 to a remote-write \
                 body there and stores nothing)",
                write_under(prefix),
            );
        }
    }
    if path == "/write" || path.ends_with("/prometheus/write") {
        let prefix = &path[..path.len() - "/write".len()];
        return wrong(
            prefix,
            "VictoriaMetrics' InfluxDB line-protocol endpoint (it answers 204 to a remote-write \
             body and stores nothing)",
            "/api/v1/write".to_string(),
        );
    }
    if let Some(i) = path.find("/api/v1/import") {
        let prefix = &path[..i];
        return wrong(
            prefix,
            "VictoriaMetrics' import endpoint (JSON lines, text, CSV or native blocks, not remote \
             write)",
            write_under(prefix),
        );
    }
    for api in [
        "/api/v1/query",
        "/api/v1/series",
        "/api/v1/labels",
        "/api/v1/label/",
        "/api/v1/export",
    ] {
        if let Some(i) = path.find(api) {
            let prefix = &path[..i];
            return wrong(
                prefix,
                "a query API URL (it answers queries; give it to --verify to check a backfill)",
                write_under(prefix),
            );
        }
    }
    for scrape in ["/metrics", "/federate"] {
        if let Some(prefix) = path.strip_suffix(scrape) {
            return wrong(
                prefix,
                "a scrape endpoint (it serves metrics, it does not take them)",
                write_under(prefix),
            );
        }
    }
    if let Some(i) = path.find("/otlp/").or_else(|| path.find("/opentelemetry/")) {
        let prefix = &path[..i];
        let prefix = prefix.strip_suffix("/api/v1").unwrap_or(prefix);
        return wrong(
            prefix,
            "an OpenTelemetry (OTLP) endpoint, not remote write",
            write_under(prefix),
        );
    }
    if path.ends_with("/loki/api/v1/push") {
        return PathCheck::Wrong {
            what: "Loki's log push endpoint".into(),
            advice: "give a metrics receiver, e.g. Mimir's --remote-write http://mimir/api/v1/push"
                .into(),
        };
    }
    if KNOWN.iter().any(|k| path.ends_with(k)) {
        PathCheck::Known
    } else {
        PathCheck::Unknown
    }
}

/// An HTTP client with the remote-write retry policy.
pub fn client(cfg: &RemoteWriteConfig) -> Result<HttpClient, DeliveryError> {
    let mut http = cfg.http.clone();
    http.retry = RetryPolicy::RemoteWrite;
    HttpClient::new(http)
}

/// Sends one request body (snappy-compressed protobuf). `Ok` once the receiver answered 2xx.
pub fn send(client: &HttpClient, url: &Url, body: &[u8]) -> Result<(), DeliveryError> {
    let headers = [
        ("Content-Encoding", CONTENT_ENCODING),
        ("Content-Type", CONTENT_TYPE),
        ("X-Prometheus-Remote-Write-Version", VERSION),
    ];
    match client.send(Method::POST, url, &headers, Some(body), HINT) {
        Ok(_) => Ok(()),
        Err(DeliveryError::ServerError {
            method,
            url,
            status,
            body,
            ..
        }) if body.contains("too old sample") => Err(DeliveryError::Rejected {
            method,
            url,
            status,
            body,
            hint: TOO_OLD_HINT.to_string(),
        }),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    /// Requests a test server saw: (head, body).
    type Seen = std::thread::JoinHandle<Vec<(String, Vec<u8>)>>;

    /// A one-thread HTTP server answering each request with the next of `answers`;
    /// returns the URL and a handle yielding the requests it saw.
    fn server(answers: Vec<(u16, &'static str)>) -> (Url, Seen) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/api/v1/write", l.local_addr().unwrap())).unwrap();
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (mut s, _) = l.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    head.push_str(&line);
                }
                let mut b = vec![0; len];
                r.read_exact(&mut b).unwrap();
                seen.push((head, b));
                write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
            seen
        });
        (url, h)
    }

    fn cfg(url: &Url, retries: u32) -> RemoteWriteConfig {
        RemoteWriteConfig {
            url: url.clone(),
            http: HttpConfig {
                retries,
                backoff_base: Duration::from_millis(1),
                backoff_cap: Duration::from_millis(2),
                headers: vec![("X-Scope-OrgID".into(), "team-a".into())],
                ..HttpConfig::default()
            },
        }
    }

    #[test]
    fn sends_the_four_headers_and_retries_5xx_and_429_only() {
        let (url, h) = server(vec![(503, ""), (429, ""), (204, "")]);
        let c = client(&cfg(&url, 3)).unwrap();
        send(&c, &url, b"body").unwrap();
        let seen = h.join().unwrap();
        assert_eq!(seen.len(), 3);
        let head = seen[2].0.to_ascii_lowercase();
        for want in [
            "content-encoding: snappy",
            "content-type: application/x-protobuf",
            "x-prometheus-remote-write-version: 0.1.0",
            "user-agent: ptc-metrics/",
            "x-scope-orgid: team-a",
        ] {
            assert!(head.contains(want), "{want} missing in {head}");
        }
        assert_eq!(seen[2].1, b"body");
    }

    #[test]
    fn a_408_or_400_is_final_and_500_is_capped() {
        let (url, h) = server(vec![(408, "slow")]);
        let c = client(&cfg(&url, 3)).unwrap();
        let e = send(&c, &url, b"x").unwrap_err();
        assert!(matches!(e, DeliveryError::Rejected { .. }), "{e}");
        assert_eq!(h.join().unwrap().len(), 1);

        let (url, h) = server(vec![(500, "x"), (500, "x"), (500, "x")]);
        let c = client(&cfg(&url, 2)).unwrap();
        let e = send(&c, &url, b"x").unwrap_err();
        assert!(
            matches!(e, DeliveryError::ServerError { attempts: 3, .. }),
            "{e}"
        );
        assert_eq!(h.join().unwrap().len(), 3);

        let (url, h) = server(vec![(500, "too old sample"), (500, "too old sample")]);
        let c = client(&cfg(&url, 1)).unwrap();
        let e = send(&c, &url, b"x").unwrap_err().to_string();
        assert!(e.contains("out_of_order_time_window"), "{e}");
        assert_eq!(h.join().unwrap().len(), 2);
    }
}
