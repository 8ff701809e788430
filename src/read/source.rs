//! Opening input files: regular files only, gzip detected by magic bytes, and a buffered
//! reader that can peek a few bytes ahead (for XML markup that straddles a buffer edge).
//!
//! Errors name the file and what to do; nothing here reads a whole file into memory.
//! XML inputs are opened with [`open_xml`], which also checks, as the bytes arrive, that
//! the document is UTF-8 without NUL bytes and that no single piece of markup handed to
//! the parser grows past [`MAX_MARKUP`]. Every reader ends with [`PeekReader::finish`]: a
//! report that grew, shrank or was rewritten while it was read is an error, never a
//! half-read run; and the hash of the content, taken as it streamed past, tells inputs
//! with identical content apart (METRICS.md §1: they are read once).

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::time::SystemTime;

use flate2::read::MultiGzDecoder;

use super::ReadError;

const BUF_SIZE: usize = 256 * 1024;

/// The longest piece of markup (a start tag with all its attributes, a comment-free
/// declaration or DOCTYPE) the XML readers accept: 4 MiB. pytest 9.2 cuts failure
/// messages to 500 characters and 9.1 writes them whole; only a multi-megabyte exception
/// message comes near this, and past it the parser would have to hold the whole tag.
pub const MAX_MARKUP: u64 = 4 << 20;

/// Something wrong with the bytes themselves, found while reading; `offset` is the byte
/// offset in the (decompressed) content.
#[derive(Debug, Clone, PartialEq)]
pub struct InputFault {
    pub offset: u64,
    pub kind: FaultKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Not UTF-8; the byte at `offset`.
    InvalidUtf8(u8),
    /// The content ends inside a multi-byte character.
    TruncatedUtf8,
    /// U+0000, which XML 1.0 does not allow anywhere.
    Nul,
    /// One piece of markup longer than [`MAX_MARKUP`].
    MarkupTooLong(u64),
    /// A JSON token (string or number) longer than the size-report limit.
    TokenTooLong(u64),
}

impl std::fmt::Display for InputFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            FaultKind::InvalidUtf8(b) => write!(
                f,
                "not UTF-8 (byte 0x{b:02X}): reports must be UTF-8 encoded"
            ),
            FaultKind::TruncatedUtf8 => {
                f.write_str("not UTF-8: the file ends inside a multi-byte character")
            }
            FaultKind::Nul => {
                f.write_str("a NUL byte, which XML does not allow (a binary or damaged file?)")
            }
            FaultKind::MarkupTooLong(n) => write!(
                f,
                "a tag longer than {} MiB (an element with its attributes); ptc-metrics reads tags up to that size",
                n >> 20
            ),
            FaultKind::TokenTooLong(n) => write!(
                f,
                "a single JSON value longer than {} MiB without a quote; a size report never has one",
                n >> 20
            ),
        }
    }
}

impl std::error::Error for InputFault {}

impl InputFault {
    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

/// The [`InputFault`] inside an I/O error, if that is what it is.
pub fn fault_of(e: &io::Error) -> Option<&InputFault> {
    e.get_ref().and_then(|x| x.downcast_ref::<InputFault>())
}

/// What the file looked like when it was opened.
struct Origin {
    file: File,
    len: u64,
    modified: Option<SystemTime>,
}

/// A buffered reader that can guarantee `n` bytes of lookahead (`fill_at_least`).
pub struct PeekReader {
    inner: Box<dyn Read + Send>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// Bytes read from `inner` so far.
    total: u64,
    /// UTF-8 and NUL checking of every byte read (XML inputs).
    validate: bool,
    /// The start of a multi-byte character cut by the end of the last read.
    carry: [u8; 4],
    carry_len: usize,
    fault: Option<InputFault>,
    /// Markup budget: while armed, consuming more than `budget` bytes is a fault.
    budget: u64,
    spent: u64,
    armed_at: u64,
    origin: Option<Origin>,
    /// Hash of every byte read from `inner` (after any gzip layer).
    hash: xxhash_rust::xxh3::Xxh3,
}

/// The hash of an input's content after decompression: equal for the same bytes, whatever
/// the file's name, compression or path (xxh3, 128 bits).
pub type ContentHash = u128;

impl PeekReader {
    pub fn new(inner: Box<dyn Read + Send>) -> Self {
        PeekReader {
            inner,
            buf: vec![0; BUF_SIZE],
            pos: 0,
            end: 0,
            eof: false,
            total: 0,
            validate: false,
            carry: [0; 4],
            carry_len: 0,
            fault: None,
            budget: u64::MAX,
            spent: 0,
            armed_at: 0,
            origin: None,
            hash: xxhash_rust::xxh3::Xxh3::new(),
        }
    }

    /// Offset in the content of the next unread byte.
    pub fn position(&self) -> u64 {
        self.total - (self.end - self.pos) as u64
    }

    /// From now on, consuming more than `limit` bytes before [`disarm`](Self::disarm) is a
    /// [`FaultKind::MarkupTooLong`] fault (reported at the current position).
    pub fn arm(&mut self, limit: u64) {
        self.budget = limit;
        self.spent = 0;
        self.armed_at = self.position();
    }

    /// Ends the budget; `Err` when it was exceeded.
    pub fn disarm(&mut self) -> Result<(), InputFault> {
        let over = self.spent > self.budget;
        let budget = self.budget;
        self.budget = u64::MAX;
        self.spent = 0;
        if over {
            Err(InputFault {
                offset: self.armed_at,
                kind: FaultKind::MarkupTooLong(budget),
            })
        } else {
            Ok(())
        }
    }

    /// Reads once from `inner` into the free end of the buffer (growing it when full).
    fn read_more(&mut self) -> io::Result<()> {
        if let Some(f) = &self.fault {
            return Err(f.clone().into_io());
        }
        if self.spent > self.budget {
            let f = InputFault {
                offset: self.armed_at,
                kind: FaultKind::MarkupTooLong(self.budget),
            };
            return Err(f.into_io());
        }
        if self.end == self.buf.len() {
            let len = self.buf.len();
            self.buf.resize(len * 2, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    if self.validate && self.carry_len > 0 {
                        return Err(
                            self.fail(self.total - self.carry_len as u64, FaultKind::TruncatedUtf8)
                        );
                    }
                    return Ok(());
                }
                Ok(k) => {
                    let start = self.end;
                    self.end += k;
                    let base = self.total;
                    self.total += k as u64;
                    if self.validate {
                        if let Err(e) = self.check(start, base) {
                            // Bytes that failed the check are never handed out.
                            self.end = start;
                            return Err(e);
                        }
                    }
                    self.hash.update(&self.buf[start..self.end]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn fail(&mut self, offset: u64, kind: FaultKind) -> io::Error {
        let f = InputFault { offset, kind };
        self.fault = Some(f.clone());
        f.into_io()
    }

    /// Checks `buf[start..end]`, which begins at content offset `base`.
    fn check(&mut self, start: usize, base: u64) -> io::Result<()> {
        let mut i = start;
        if self.carry_len > 0 {
            let width = utf8_width(self.carry[0]);
            while self.carry_len < width && i < self.end {
                self.carry[self.carry_len] = self.buf[i];
                self.carry_len += 1;
                i += 1;
            }
            if self.carry_len < width {
                return Ok(());
            }
            let carry_at = base - (self.carry_len - (i - start)) as u64;
            if std::str::from_utf8(&self.carry[..width]).is_err() {
                let b = self.carry[0];
                return Err(self.fail(carry_at, FaultKind::InvalidUtf8(b)));
            }
            self.carry_len = 0;
        }
        let data = &self.buf[i..self.end];
        let at = base + (i - start) as u64;
        let nul = memchr::memchr(0, data);
        let bad = match std::str::from_utf8(data) {
            Ok(_) => None,
            Err(e) => match e.error_len() {
                Some(_) => Some(e.valid_up_to()),
                None => {
                    let tail = &data[e.valid_up_to()..];
                    self.carry[..tail.len()].copy_from_slice(tail);
                    self.carry_len = tail.len();
                    None
                }
            },
        };
        match (nul, bad) {
            (Some(z), b) if b.is_none_or(|b| z < b) => {
                Err(self.fail(at + z as u64, FaultKind::Nul))
            }
            (_, Some(b)) => {
                let byte = data[b];
                Err(self.fail(at + b as u64, FaultKind::InvalidUtf8(byte)))
            }
            _ => Ok(()),
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
            self.read_more()?;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    /// Ends a read: whatever is left of the content is read (and hashed), the file is
    /// checked to be as it was when opened ([`check_unchanged`](Self::check_unchanged)), and
    /// the hash of the whole content is returned.
    pub fn finish(&mut self, path: &Path) -> Result<ContentHash, ReadError> {
        loop {
            let n = self
                .fill_buf()
                .map_err(|e| ReadError::from_io(path, &e))?
                .len();
            if n == 0 {
                break;
            }
            self.consume(n);
        }
        self.check_unchanged(path)?;
        Ok(self.hash.digest128())
    }

    /// An error when the file is not as it was when opened: its size or modification time
    /// changed while it was read (a report still being written, or rewritten meanwhile).
    pub fn check_unchanged(&self, path: &Path) -> Result<(), ReadError> {
        let Some(o) = &self.origin else {
            return Ok(());
        };
        let now = o.file.metadata().map_err(|e| ReadError::io(path, &e))?;
        if now.len() != o.len || now.modified().ok() != o.modified {
            return Err(ReadError::plain(
                path,
                "changed while it was read (is pytest still writing it?); read it once it is complete",
            ));
        }
        Ok(())
    }
}

/// Length of the UTF-8 sequence a valid lead byte starts.
fn utf8_width(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        _ => 2,
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
                self.read_more()?;
            }
        } else if self.spent > self.budget {
            let f = InputFault {
                offset: self.armed_at,
                kind: FaultKind::MarkupTooLong(self.budget),
            };
            return Err(f.into_io());
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.end - self.pos);
        self.pos += amt;
        self.spent += amt as u64;
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
    // The size and time of the file actually opened (not of a path replaced meanwhile).
    let meta = file.metadata().map_err(|e| ReadError::io(path, &e))?;
    let origin = file.try_clone().ok().map(|f| Origin {
        file: f,
        len: meta.len(),
        modified: meta.modified().ok(),
    });
    let mut raw = PeekReader::new(Box::new(file));
    let head = raw.fill_at_least(2).map_err(|e| ReadError::io(path, &e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut r = PeekReader::new(Box::new(MultiGzDecoder::new(raw)));
        r.origin = origin;
        Ok(r)
    } else {
        raw.origin = origin;
        Ok(raw)
    }
}

/// Opens an XML input: [`open`], plus UTF-8 and NUL checks of every byte read.
pub fn open_xml(path: &Path) -> Result<PeekReader, ReadError> {
    let mut r = open(path)?;
    r.validate = true;
    if r.total > 0 {
        // What was read to look for the gzip magic, on a plain file.
        r.check(0, 0).map_err(|e| ReadError::from_io(path, &e))?;
    }
    Ok(r)
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

/// True when the document's root element is `<html>` (an HTML page saved as `.xml`).
pub fn is_html(f: &Path) -> bool {
    root_element(f).is_some_and(|n| n.eq_ignore_ascii_case("html"))
}

/// The name of the document's root element, from its first 64 KiB: `None` when there is none
/// there (or it cannot be read). Control characters escaped, at most 64 characters: the name
/// goes into messages.
pub fn root_element(f: &Path) -> Option<String> {
    let mut r = open(f).ok()?;
    let mut head = Vec::with_capacity(8192);
    r.by_ref().take(64 * 1024).read_to_end(&mut head).ok()?;
    let mut xml = quick_xml::Reader::from_reader(head.as_slice());
    let mut buf = Vec::new();
    loop {
        match xml.read_event_into(&mut buf) {
            Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                return Some(name.chars().take(64).flat_map(char::escape_debug).collect());
            }
            Ok(quick_xml::events::Event::Eof) | Err(_) => return None,
            Ok(_) => buf.clear(),
        }
    }
}

/// An XML document of no kind we read: what its root is, for the message.
pub fn unknown_xml(f: &Path) -> String {
    match root_element(f) {
        Some(root) => format!(
            "is XML but not a known report (its root is <{root}>, not <testsuites>, <testsuite> \
             or <coverage>)"
        ),
        None => "is XML but not a known report (root is not <testsuites>, <testsuite> or \
                 <coverage>)"
            .to_string(),
    }
}

/// What the first bytes of an input (after any gzip layer) say it is.
///
/// XML and JSON never hold a NUL. A terminal log may hold any control byte: pytest prints
/// the tests' captured output as it is (NUL, BEL, ESC, DEL, …), so a log is text when it
/// is UTF-8 and mostly not control bytes, and its report is then found by its content.
pub fn sniff_bytes(head: &[u8]) -> Kind {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if head.iter().all(|b| b.is_ascii_whitespace()) {
        return Kind::Empty;
    }
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return Kind::Binary;
    }
    let trimmed = match head.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(i) => &head[i..],
        None => return Kind::Empty,
    };
    match trimmed[0] {
        b'{' | b'<' if head.contains(&0) => Kind::Binary,
        b'{' => Kind::Json,
        b'<' => xml_root(trimmed),
        _ => {
            let utf8 = std::str::from_utf8(trimmed).is_ok() || valid_prefix(trimmed);
            // Control bytes that text does not use for layout (not TAB, LF, VT, FF, CR, ESC).
            let control = trimmed
                .iter()
                .filter(|b| matches!(b, 0..=8 | 0x0e..=0x1a | 0x1c..=0x1f | 0x7f))
                .count();
            if !utf8 || control * 2 > trimmed.len() {
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
        assert_eq!(sniff_bytes(b"<testsuites>\0</testsuites>"), Kind::Binary);
        assert_eq!(sniff_bytes(b"{\"tests\": [\0]}"), Kind::Binary);
        // A terminal log with the tests' own output: control bytes among text.
        assert_eq!(
            sniff_bytes(
                b"$ pytest\n--- Captured stdout call ---\nnul=\0 bel=\x07 del=\x7f\n\0\0\0\n"
            ),
            Kind::Text
        );
        assert_eq!(sniff_bytes(b"\0\0\0\0\0\0ab"), Kind::Binary);
        assert_eq!(sniff_bytes(b"$ pytest \xC3\x28"), Kind::Binary);
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
