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

use std::path::PathBuf;
use std::time::Duration;

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
        "{method} {url}: {status} after {attempts} attempt(s){}; is the server healthy? \
             (use --soft-fail to keep the job green when metrics cannot be delivered)",
        body_suffix(body)
    )]
    ServerError {
        method: String,
        url: String,
        status: String,
        body: String,
        attempts: u32,
    },
    #[error("{method} {url}: {error} after {attempts} attempt(s); check the URL and that the server is up \
             (use --soft-fail to keep the job green when metrics cannot be delivered)")]
    Transport {
        method: String,
        url: String,
        error: String,
        attempts: u32,
    },
    #[error("{0}")]
    Setup(String),
    #[error("{url}: unexpected answer: {message}")]
    BadAnswer { url: String, message: String },
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

pub struct HttpClient {
    client: Client,
    cfg: HttpConfig,
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
        Ok(HttpClient { client, cfg })
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

    /// Sends a request, retrying as the module doc says. `hint` is added to the message
    /// of a non-retryable rejection.
    pub fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        hint: &str,
    ) -> Result<Answer, DeliveryError> {
        let shown = redact(url);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut rb = self.request(&method, url);
            for (k, v) in headers {
                rb = rb.header(*k, *v);
            }
            if let Some(b) = body {
                rb = rb.body(b.to_vec());
            }
            let last = attempt > self.cfg.retries;
            match rb.send() {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let limit = if status.is_success() {
                        MAX_ANSWER
                    } else {
                        MAX_ERROR_BODY
                    };
                    let text = read_body(resp, limit);
                    if status.is_success() {
                        return Ok(Answer { status, body: text });
                    }
                    if !self.cfg.retry.retries(status) {
                        return Err(DeliveryError::Rejected {
                            method: method.to_string(),
                            url: shown,
                            status: status_text(status),
                            body: text,
                            hint: hint.to_string(),
                        });
                    }
                    if last {
                        return Err(DeliveryError::ServerError {
                            method: method.to_string(),
                            url: shown,
                            status: status_text(status),
                            body: text,
                            attempts: attempt,
                        });
                    }
                    self.sleep(attempt, retry_after);
                }
                Err(e) => {
                    if last {
                        return Err(DeliveryError::Transport {
                            method: method.to_string(),
                            url: shown,
                            error: transport_text(&e),
                            attempts: attempt,
                        });
                    }
                    self.sleep(attempt, None);
                }
            }
        }
    }

    fn sleep(&self, attempt: u32, retry_after: Option<Duration>) {
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
        std::thread::sleep(d);
    }
}

/// The largest successful answer read (the Pushgateway's `/api/v1/metrics` holds every group).
const MAX_ANSWER: u64 = 1 << 30;
/// Error bodies are shown to the user: the start is enough.
const MAX_ERROR_BODY: u64 = 64 * 1024;

fn read_body(resp: reqwest::blocking::Response, limit: u64) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    let _ = resp.take(limit).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

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
    if cause.is_empty() {
        kind.to_string()
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
