//! The one HTTP client every network sink uses: timeouts, TLS via rustls (with an extra
//! CA file), basic or bearer auth, and retries with capped exponential backoff and full
//! jitter (AWS "Exponential Backoff and Jitter": sleep = random(0, min(cap, base·2ⁿ))).
//!
//! Retried ([`RetryPolicy::Default`]): transport errors, 408, 429 (honouring `Retry-After`),
//! and 5xx. Never other 4xx: those will not succeed on a retry, and the server's error body
//! is shown instead. [`RetryPolicy::RemoteWrite`] follows the remote-write 1.0 spec: only
//! transport errors, 429 and 5xx, always within the `retries` cap (Prometheus 2.42 answers
//! 500 to samples it will never accept, so retrying forever would never end).
//! Credentials are never printed: URLs are shown without their password.
//!
//! Time is bounded twice: `timeout` bounds a whole attempt (connect, headers and body; a
//! server that trickles one byte at a time is cut off), and the optional `deadline` bounds
//! everything a client sends, retries and backoff included. Each attempt runs on its own
//! thread and is abandoned when its time is up, so no socket read can outlast either bound.

use std::io::Read;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::{Method, StatusCode, Url};

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        user: String,
        password: Option<Secret>,
    },
    Bearer(Secret),
}

/// Which answers are worth another attempt (always at most `retries` more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryPolicy {
    /// Transport errors, 408, 429 and 5xx.
    #[default]
    Default,
    /// Remote write 1.0: transport errors, 429 and 5xx; a 408 is final like any other 4xx.
    RemoteWrite,
}

impl RetryPolicy {
    pub fn retries(self, status: StatusCode) -> bool {
        match self {
            RetryPolicy::Default => {
                status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error()
            }
            RetryPolicy::RemoteWrite => {
                status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
        }
    }
}

/// Typed HTTP settings, from the CLI's `--timeout`, `--retries`, auth and TLS flags.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub auth: Auth,
    pub ca_file: Option<PathBuf>,
    /// Extra headers, e.g. a tenant header for remote write.
    pub headers: Vec<(String, String)>,
    /// Which statuses are retried.
    pub retry: RetryPolicy,
    /// Bound on all the requests of one client, retries and backoff included (`--deadline`);
    /// counted from the client's creation.
    pub deadline: Option<Duration>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(10),
            retries: 3,
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(10),
            auth: Auth::None,
            ca_file: None,
            headers: Vec::new(),
            retry: RetryPolicy::Default,
            deadline: None,
        }
    }
}

/// Why a delivery failed. Messages name the method, the URL (without password) and
/// the status or transport error, and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(
        "{method} {url}: the server answered {status}{}{hint}",
        body_suffix(body)
    )]
    Rejected {
        method: String,
        url: String,
        status: String,
        body: String,
        hint: String,
    },
    #[error(
        "{method} {url}: {status} after {attempts} attempt(s){}; is the server healthy?",
        body_suffix(body)
    )]
    ServerError {
        method: String,
        url: String,
        status: String,
        body: String,
        attempts: u32,
    },
    #[error("{method} {url}: {error} after {attempts} attempt(s); check the URL and that the server is up")]
    Transport {
        method: String,
        url: String,
        error: String,
        attempts: u32,
    },
    #[error(
        "{method} {url}: no complete answer within the --deadline of {} ({attempts} attempt(s){}); \
         is the server overloaded? raise --deadline or --timeout if it is only slow",
        show_duration(*deadline),
        last_error.as_ref().map(|e| format!(", the last: {e}")).unwrap_or_default()
    )]
    Deadline {
        method: String,
        url: String,
        deadline: Duration,
        attempts: u32,
        last_error: Option<String>,
    },
    #[error("{0}")]
    Setup(String),
    #[error("{url}: unexpected answer: {message}")]
    BadAnswer { url: String, message: String },
}

impl DeliveryError {
    /// Whether the server or the network failed (as opposed to a refusal or a set-up error):
    /// the cases where `--soft-fail` is the advice.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DeliveryError::ServerError { .. }
                | DeliveryError::Transport { .. }
                | DeliveryError::Deadline { .. }
        )
    }
}

/// `1.5s`, `10s`, `2m`, `500ms`: a duration as the flags spell it.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

fn body_suffix(body: &str) -> String {
    let b = body.trim();
    if b.is_empty() {
        String::new()
    } else {
        let cut: String = b.chars().take(2000).collect();
        format!(": {cut}")
    }
}

/// A URL as it may be shown: no password, no query secrets kept in userinfo.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
}

/// The response of a successful request.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

/// Why a streamed answer could not be read: the connection broke (worth another attempt) or
/// the content is wrong (final).
#[derive(Debug)]
pub enum BodyError {
    Io(std::io::Error),
    Bad(String),
}

/// Reads a successful answer's body as a stream (gzip already decoded).
pub type BodyReader<T> = Arc<dyn Fn(&mut dyn Read) -> Result<T, BodyError> + Send + Sync>;

/// What one attempt came to.
enum Attempt<T> {
    Done(StatusCode, T),
    Refused {
        status: StatusCode,
        retry_after: Option<Duration>,
        body: String,
    },
    Transport(String),
    Bad(String),
}

pub struct HttpClient {
    client: Client,
    cfg: HttpConfig,
    deadline_at: Option<Instant>,
}

impl HttpClient {
    pub fn new(cfg: HttpConfig) -> Result<Self, DeliveryError> {
        let mut b = Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("ptc-metrics/", env!("CARGO_PKG_VERSION")))
            .use_rustls_tls();
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                DeliveryError::Setup(format!("{}: cannot read the CA file: {e}", ca.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                DeliveryError::Setup(format!("{}: not a PEM certificate file: {e}", ca.display()))
            })?;
            if certs.is_empty() {
                return Err(DeliveryError::Setup(format!(
                    "{}: holds no PEM certificate",
                    ca.display()
                )));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| DeliveryError::Setup(format!("cannot set up the HTTP client: {e}")))?;
        let deadline_at = cfg.deadline.map(|d| Instant::now() + d);
        Ok(HttpClient {
            client,
            cfg,
            deadline_at,
        })
    }

    /// Time left before the deadline (`None`: no deadline).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline_at
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    fn request(&self, method: &Method, url: &Url) -> RequestBuilder {
        let mut clean = url.clone();
        let user = clean.username().to_string();
        let pass = clean.password().map(str::to_string);
        let _ = clean.set_username("");
        let _ = clean.set_password(None);
        let mut rb = self.client.request(method.clone(), clean);
        match &self.cfg.auth {
            Auth::Basic { user, password } => {
                rb = rb.basic_auth(user, password.as_ref().map(Secret::expose));
            }
            Auth::Bearer(t) => rb = rb.bearer_auth(t.expose()),
            Auth::None => {
                if !user.is_empty() {
                    rb = rb.basic_auth(user, pass);
                }
            }
        }
        for (k, v) in &self.cfg.headers {
            rb = rb.header(k, v);
        }
        rb
    }

    /// Sends a request, retrying as the module doc says, and returns the answer's text
    /// (at most 64 MiB). `hint` is added to the message of a non-retryable rejection.
    pub fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        hint: &str,
    ) -> Result<Answer, DeliveryError> {
        let reader: BodyReader<String> = Arc::new(|r: &mut dyn Read| {
            let mut buf = Vec::new();
            r.take(MAX_ANSWER)
                .read_to_end(&mut buf)
                .map_err(BodyError::Io)?;
            Ok(String::from_utf8_lossy(&buf).into_owned())
        });
        let (status, body) = self.send_streaming(method, url, headers, body, hint, reader)?;
        Ok(Answer { status, body })
    }

    /// Like [`HttpClient::send`], but a successful answer's body goes to `reader` as a stream,
    /// so that a large answer is never held in memory. A broken connection while reading is
    /// retried like any transport error; a [`BodyError::Bad`] is final.
    pub fn send_streaming<T: Send + 'static>(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        hint: &str,
        reader: BodyReader<T>,
    ) -> Result<(StatusCode, T), DeliveryError> {
        let shown = redact(url);
        let body: Option<Arc<Vec<u8>>> = body.map(|b| Arc::new(b.to_vec()));
        let mut attempt = 0u32;
        let mut last_error: Option<String> = None;
        loop {
            attempt += 1;
            let mut limit = self.cfg.timeout;
            if let Some(left) = self.remaining() {
                if left.is_zero() {
                    return Err(self.deadline_error(&method, shown, attempt - 1, last_error));
                }
                limit = limit.min(left);
            }
            let mut rb = self.request(&method, url).timeout(limit);
            for (k, v) in headers {
                rb = rb.header(*k, *v);
            }
            if let Some(b) = &body {
                rb = rb.body(b.as_ref().clone());
            }
            let last = attempt > self.cfg.retries;
            let (status, retry_after, text) = match run_bounded(rb, limit, reader.clone()) {
                Attempt::Done(status, v) => return Ok((status, v)),
                Attempt::Bad(message) => {
                    return Err(DeliveryError::BadAnswer {
                        url: shown,
                        message,
                    })
                }
                Attempt::Refused {
                    status,
                    retry_after,
                    body,
                } => (Some(status), retry_after, body),
                Attempt::Transport(e) => (None, None, e),
            };
            match status {
                Some(status) if !self.cfg.retry.retries(status) => {
                    return Err(DeliveryError::Rejected {
                        method: method.to_string(),
                        url: shown,
                        status: status_text(status),
                        body: text,
                        hint: hint.to_string(),
                    });
                }
                Some(status) => {
                    if last {
                        return Err(DeliveryError::ServerError {
                            method: method.to_string(),
                            url: shown,
                            status: status_text(status),
                            body: text,
                            attempts: attempt,
                        });
                    }
                    last_error = Some(status_text(status));
                }
                None => {
                    if last {
                        return Err(DeliveryError::Transport {
                            method: method.to_string(),
                            url: shown,
                            error: text,
                            attempts: attempt,
                        });
                    }
                    last_error = Some(text);
                }
            }
            if !self.sleep(attempt, retry_after) {
                return Err(self.deadline_error(&method, shown, attempt, last_error));
            }
        }
    }

    fn deadline_error(
        &self,
        method: &Method,
        url: String,
        attempts: u32,
        last_error: Option<String>,
    ) -> DeliveryError {
        DeliveryError::Deadline {
            method: method.to_string(),
            url,
            deadline: self.cfg.deadline.unwrap_or_default(),
            attempts,
            last_error,
        }
    }

    /// Backoff before the next attempt; `false` when the deadline comes first.
    fn sleep(&self, attempt: u32, retry_after: Option<Duration>) -> bool {
        let exp = self
            .cfg
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.cfg.backoff_cap);
        let jitter = rand::rng().random_range(0.0..=1.0);
        let mut d = exp.mul_f64(jitter);
        if let Some(ra) = retry_after {
            d = d.max(ra.min(Duration::from_secs(60)));
        }
        if let Some(left) = self.remaining() {
            if d >= left {
                std::thread::sleep(left);
                return false;
            }
        }
        std::thread::sleep(d);
        true
    }
}

/// Runs one attempt on its own thread and waits at most `limit` for it: reqwest bounds each
/// socket read, not a whole answer, so a server trickling a byte at a time would otherwise
/// hold the request for ever. An abandoned attempt ends by itself at reqwest's own timeout.
///
/// reqwest's own timeout (the same `limit`, started a moment later on the attempt's thread)
/// can fire just before this wait wakes up and its error ("the answer broke off (request or
/// response body error)", "timed out (operation timed out)") would then win the race: an
/// attempt that failed once `limit` had passed is reported as the timeout it is, the same
/// text every time.
fn run_bounded<T: Send + 'static>(
    rb: RequestBuilder,
    limit: Duration,
    reader: BodyReader<T>,
) -> Attempt<T> {
    let started = Instant::now();
    let (tx, rx) = mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("http-attempt".into())
        .spawn(move || {
            let _ = tx.send(attempt(rb, reader));
        });
    if let Err(e) = spawned {
        return Attempt::Transport(format!("cannot start a thread for the request ({e})"));
    }
    settle(rx.recv_timeout(limit), started, limit)
}

/// What an attempt started at `started` came to, from what arrived within `limit`.
fn settle<T>(
    got: Result<Attempt<T>, mpsc::RecvTimeoutError>,
    started: Instant,
    limit: Duration,
) -> Attempt<T> {
    let timed_out = || {
        Attempt::Transport(format!(
            "timed out (no complete answer within {})",
            show_duration(limit)
        ))
    };
    match got {
        Ok(Attempt::Transport(_)) if started.elapsed() >= limit => timed_out(),
        Ok(a) => a,
        Err(mpsc::RecvTimeoutError::Timeout) => timed_out(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Attempt::Transport("the request failed unexpectedly".into())
        }
    }
}

fn attempt<T>(rb: RequestBuilder, reader: BodyReader<T>) -> Attempt<T> {
    let mut resp = match rb.send() {
        Ok(r) => r,
        Err(e) => return Attempt::Transport(transport_text(&e)),
    };
    let status = resp.status();
    if status.is_success() {
        return match reader(&mut resp) {
            Ok(v) => Attempt::Done(status, v),
            Err(BodyError::Bad(m)) => Attempt::Bad(m),
            Err(BodyError::Io(e)) => Attempt::Transport(format!("the answer broke off ({e})")),
        };
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut buf = Vec::new();
    let _ = resp.take(MAX_ERROR_BODY).read_to_end(&mut buf);
    Attempt::Refused {
        status,
        retry_after,
        body: String::from_utf8_lossy(&buf).into_owned(),
    }
}

/// The largest answer [`HttpClient::send`] reads; larger ones go through
/// [`HttpClient::send_streaming`].
const MAX_ANSWER: u64 = 64 << 20;
/// Error bodies are shown to the user: the start is enough.
const MAX_ERROR_BODY: u64 = 64 * 1024;

fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

/// A transport error without the URL (shown separately, redacted) and with its cause.
fn transport_text(e: &reqwest::Error) -> String {
    use std::error::Error;
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut src = e.source();
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    // rustls reading a plain-HTTP answer where a TLS record should be.
    let plain_http =
        e.url().is_some_and(|u| u.scheme() == "https") && cause.contains("InvalidContentType");
    if cause.is_empty() {
        kind.to_string()
    } else if plain_http {
        format!("{kind} ({cause}: the server speaks plain HTTP; give its http:// URL)")
    } else {
        format!("{kind} ({cause})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        let u = Url::parse("https://bob:hunter2@gw.example:9091/metrics").unwrap();
        assert_eq!(redact(&u), "https://bob:***@gw.example:9091/metrics");
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }

    #[test]
    fn an_attempt_that_failed_at_the_bound_timed_out() {
        // reqwest's own timeout fires a moment after ours; when its error arrives first, the
        // message is still the timeout's.
        let limit = Duration::from_millis(50);
        let late = Instant::now() - Duration::from_millis(60);
        let broke = || {
            Ok(Attempt::<()>::Transport(
                "the answer broke off (request or response body error)".into(),
            ))
        };
        let text = |a: Attempt<()>| match a {
            Attempt::Transport(t) => t,
            _ => panic!("not a transport error"),
        };
        let timed_out = "timed out (no complete answer within 50ms)";
        assert_eq!(text(settle(broke(), late, limit)), timed_out);
        assert_eq!(
            text(settle(
                Err(mpsc::RecvTimeoutError::Timeout),
                Instant::now(),
                limit
            )),
            timed_out
        );
        // Before the bound, an error is what it is.
        assert_eq!(
            text(settle(broke(), Instant::now(), limit)),
            "the answer broke off (request or response body error)"
        );
    }

    #[test]
    fn retry_policies() {
        let d = RetryPolicy::Default;
        let rw = RetryPolicy::RemoteWrite;
        for (code, default, remote_write) in [
            (408, true, false),
            (429, true, true),
            (500, true, true),
            (503, true, true),
            (400, false, false),
            (404, false, false),
            (413, false, false),
        ] {
            let s = StatusCode::from_u16(code).unwrap();
            assert_eq!(d.retries(s), default, "{code}");
            assert_eq!(rw.retries(s), remote_write, "{code}");
        }
    }
}
