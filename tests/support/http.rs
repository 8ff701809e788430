//! A small HTTP/1.1 server on loopback (std::net, one thread per connection, one request per
//! connection) for what a real server cannot be made to do: the scripted faults of
//! tests/faults.rs, and the Loki and Elasticsearch stand-ins of tests/events.rs (neither can
//! be installed here).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

/// One request as it arrived: header names lowercased, the body as sent.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    /// The value of a header (`k` in lowercase).
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, gzip decoded when it says so; a body that is not UTF-8 fails the
    /// test (ours always are).
    pub fn text(&self) -> String {
        if self.header("content-encoding") == Some("gzip") {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_string(&mut s)
                .expect("a gzip body of UTF-8 text");
            s
        } else {
            String::from_utf8(self.body.clone()).expect("a UTF-8 body")
        }
    }
}

/// Listens on a free loopback port and hands every connection to `serve` on a thread of its
/// own; returns the server's base URL (`http://127.0.0.1:PORT`). The listener lives as long
/// as the test process.
pub fn listen(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let url = format!("http://{}", l.local_addr().expect("the listener's address"));
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(s) = conn else { return };
            let serve = serve.clone();
            thread::spawn(move || serve(s));
        }
    });
    url
}

/// Reads one request (Content-Length bodies); `None` when the client went away first or
/// sent something that is not HTTP/1.1.
pub fn read_request(s: &mut TcpStream) -> Option<Req> {
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
    Some(Req {
        method,
        path,
        headers,
        body,
    })
}

/// Answers with `code`, the extra `headers` and `body`, and closes the connection.
pub fn answer<K: AsRef<str>, V: AsRef<str>>(
    s: &mut TcpStream,
    code: u16,
    headers: &[(K, V)],
    body: &str,
) {
    let mut resp = format!(
        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        resp.push_str(&format!("{}: {}\r\n", k.as_ref(), v.as_ref()));
    }
    resp.push_str("\r\n");
    resp.push_str(body);
    let _ = s.write_all(resp.as_bytes());
}
