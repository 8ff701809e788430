//! Opening input files: regular files only, gzip detected by magic bytes, and a buffered
//! reader that can peek a few bytes ahead (for XML markup that straddles a buffer edge).
//!
//! Errors name the file and what to do; nothing here reads a whole file into memory.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::ReadError;

const BUF_SIZE: usize = 256 * 1024;

/// A buffered reader that can guarantee `n` bytes of lookahead (`fill_at_least`).
pub struct PeekReader {
    inner: Box<dyn Read + Send>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
}

impl PeekReader {
    pub fn new(inner: Box<dyn Read + Send>) -> Self {
        PeekReader {
            inner,
            buf: vec![0; BUF_SIZE],
            pos: 0,
            end: 0,
            eof: false,
        }
    }

    /// Returns the buffered bytes, reading until at least `n` are there or the input ends.
    pub fn fill_at_least(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.end - self.pos < n && !self.eof {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
            if self.end == self.buf.len() {
                let len = self.buf.len();
                self.buf.resize(len * 2, 0);
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(&self.buf[self.pos..self.end])
    }
}

impl Read for PeekReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let k = avail.len().min(out.len());
        out[..k].copy_from_slice(&avail[..k]);
        self.consume(k);
        Ok(k)
    }
}

impl BufRead for PeekReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
            if !self.eof {
                loop {
                    match self.inner.read(&mut self.buf) {
                        Ok(0) => {
                            self.eof = true;
                            break;
                        }
                        Ok(k) => {
                            self.end = k;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.end);
    }
}

/// Opens `path` for reading: refuses directories and other non-regular files, and
/// decompresses gzip (by magic bytes, whatever the extension).
pub fn open(path: &Path) -> Result<PeekReader, ReadError> {
    let meta = std::fs::metadata(path).map_err(|e| ReadError::io(path, &e))?;
    if meta.is_dir() {
        return Err(ReadError::plain(
            path,
            "is a directory: give the report file inside it",
        ));
    }
    if !meta.is_file() {
        return Err(ReadError::plain(
            path,
            "is not a regular file (a FIFO, socket or device?): save the report to a file first",
        ));
    }
    let file = File::open(path).map_err(|e| ReadError::io(path, &e))?;
    let mut raw = PeekReader::new(Box::new(file));
    let head = raw.fill_at_least(2).map_err(|e| ReadError::io(path, &e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(PeekReader::new(Box::new(MultiGzDecoder::new(raw))))
    } else {
        Ok(raw)
    }
}

/// Modification time of `path` in Unix seconds, if the file system knows it.
pub fn mtime(path: &Path) -> Option<f64> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    let d = m.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(d.as_secs_f64())
}

/// 1-based line and column (in bytes) of a byte offset of `path`'s (decompressed) content.
/// Used only to report an error, so it reads the file a second time.
pub fn line_col(path: &Path, offset: u64) -> Option<(u64, u64)> {
    let mut r = open(path).ok()?;
    let (mut line, mut col, mut seen) = (1u64, 1u64, 0u64);
    loop {
        let buf = r.fill_buf().ok()?;
        if buf.is_empty() {
            break;
        }
        let take = ((offset - seen) as usize).min(buf.len());
        for &b in &buf[..take] {
            if b == b'\n' {
                line += 1;
                col = 1;
            } else if (b & 0xC0) != 0x80 {
                col += 1;
            }
        }
        seen += take as u64;
        r.consume(take);
        if seen >= offset {
            break;
        }
    }
    Some((line, col))
}

/// Kinds of input recognised by content (never by extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An XML document whose root is `<testsuites>` or `<testsuite>`.
    Junit,
    /// A Cobertura `coverage.xml` (root `<coverage>`).
    Coverage,
    /// Some other XML root element.
    OtherXml,
    /// A JSON document (the plugin's size report).
    Json,
    /// Text: a captured pytest terminal log.
    Text,
    Empty,
    Binary,
}

/// Detects what `path` holds by its first bytes (after any gzip layer).
pub fn sniff(path: &Path) -> Result<Kind, ReadError> {
    let mut r = open(path)?;
    let head = r
        .fill_at_least(64 * 1024)
        .map_err(|e| ReadError::io(path, &e))?
        .to_vec();
    Ok(sniff_bytes(&head))
}

pub fn sniff_bytes(head: &[u8]) -> Kind {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if head.iter().all(|b| b.is_ascii_whitespace()) {
        return Kind::Empty;
    }
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") || head.contains(&0) {
        return Kind::Binary;
    }
    let trimmed = match head.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(i) => &head[i..],
        None => return Kind::Empty,
    };
    match trimmed[0] {
        b'{' => Kind::Json,
        b'<' => xml_root(trimmed),
        _ => {
            if std::str::from_utf8(trimmed).is_err() && !valid_prefix(trimmed) {
                Kind::Binary
            } else {
                Kind::Text
            }
        }
    }
}

/// The head may cut a multi-byte character; accept a valid prefix.
fn valid_prefix(b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

fn xml_root(mut s: &[u8]) -> Kind {
    // Skip the declaration, comments, processing instructions and a DOCTYPE.
    loop {
        while let Some((&b, rest)) = s.split_first() {
            if b.is_ascii_whitespace() {
                s = rest;
            } else {
                break;
            }
        }
        if s.starts_with(b"<?") {
            match find(s, b"?>") {
                Some(i) => s = &s[i + 2..],
                None => return Kind::OtherXml,
            }
        } else if s.starts_with(b"<!--") {
            match find(s, b"-->") {
                Some(i) => s = &s[i + 3..],
                None => return Kind::OtherXml,
            }
        } else if s.starts_with(b"<!DOCTYPE") || s.starts_with(b"<!doctype") {
            // An internal subset `[ … ]` holds markup of its own.
            let gt = find(s, b">");
            let open = find(s, b"[");
            let end = match (open, gt) {
                (Some(o), Some(g)) if o < g => {
                    find(&s[o..], b"]").and_then(|c| find(&s[o + c..], b">").map(|g2| o + c + g2))
                }
                _ => gt,
            };
            match end {
                Some(i) => s = &s[i + 1..],
                None => return Kind::OtherXml,
            }
        } else if s.starts_with(b"<!") {
            match find(s, b">") {
                Some(i) => s = &s[i + 1..],
                None => return Kind::OtherXml,
            }
        } else {
            break;
        }
    }
    let name: Vec<u8> = s
        .iter()
        .skip(1)
        .take_while(|b| !(b.is_ascii_whitespace() || **b == b'>' || **b == b'/'))
        .copied()
        .collect();
    match name.as_slice() {
        b"testsuites" | b"testsuite" => Kind::Junit,
        b"coverage" => Kind::Coverage,
        _ => Kind::OtherXml,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(
            sniff_bytes(
                b"<?xml version=\"1.0\" encoding=\"utf-8\"?><testsuites name=\"pytest tests\">"
            ),
            Kind::Junit
        );
        assert_eq!(sniff_bytes(b"<testsuite name=\"x\">"), Kind::Junit);
        assert_eq!(
            sniff_bytes(
                b"<?xml version=\"1.0\" ?>\n<!DOCTYPE coverage SYSTEM \"x.dtd\">\n<coverage>"
            ),
            Kind::Coverage
        );
        assert_eq!(sniff_bytes(b"<html>"), Kind::OtherXml);
        assert_eq!(
            sniff_bytes(b"<!DOCTYPE t [<!ENTITY a \"x\"><!ENTITY b \"&a;\">]>\n<testsuites>"),
            Kind::Junit
        );
        assert_eq!(sniff_bytes(b"  {\n  \"version\": \"1.2.2\""), Kind::Json);
        assert_eq!(sniff_bytes(b"$ pytest -q\n...."), Kind::Text);
        assert_eq!(sniff_bytes(b""), Kind::Empty);
        assert_eq!(sniff_bytes(b" \n\t"), Kind::Empty);
        assert_eq!(sniff_bytes(b"\x7fELF\x02\x01\x00\x00"), Kind::Binary);
        assert_eq!(sniff_bytes(b"\xFF\xFE<\x00t\x00"), Kind::Binary);
    }

    #[test]
    fn peek_reader_fills_across_edges() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut r = PeekReader::new(Box::new(io::Cursor::new(data.clone())));
        r.buf = vec![0; 7];
        let mut out = Vec::new();
        loop {
            let got = r.fill_at_least(5).unwrap().len();
            if got == 0 {
                break;
            }
            let k = got.min(3);
            out.extend_from_slice(&r.fill_at_least(1).unwrap()[..k]);
            r.consume(k);
        }
        assert_eq!(out, data);
    }
}
