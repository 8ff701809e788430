//! The plugin's size report (pytest-test-categories 1.2.2):
//! the JSON file (`--test-size-report=json --test-size-report-file=…`), a captured
//! terminal log holding that JSON printed to stdout, or the `detailed` terminal report.
//!
//! The JSON is read from a buffered reader and its `tests` array is visited entry by
//! entry (never collected); names and sizes are seen as borrowed strings, so no entry
//! allocates. An entry of the plugin's usual shape is read by a hand-written lane
//! straight from the buffer; any other entry, and the rest of the document, by
//! serde_json, whose results and errors are the reference (see [`read_json`]). Memory
//! does not grow with the report: a JSON token (string or number) longer than
//! [`MAX_JSON_TOKEN`] is an error, nesting is bounded by serde_json's recursion limit,
//! and a terminal log is read one bounded line at a time with its embedded JSON
//! streamed to the same visitor.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::junit::parse_timestamp;
use super::source::{self, ContentHash, FaultKind, InputFault, PeekReader};
use super::{ReadError, SizeEntry};
use crate::model::{Resource, Size};

/// The longest run of JSON without a `"` accepted: 4 MiB. Every key and string value is
/// quoted, so only a giant string or number (which serde_json would have to buffer)
/// comes near it in a size report.
pub const MAX_JSON_TOKEN: u64 = 4 << 20;

/// Terminal-log lines are looked at up to this length; the rest of a longer line is skipped.
const MAX_LOG_LINE: usize = 1 << 20;

/// Reads a JSON size report; calls `on_entry` per test. Returns the report's `timestamp`.
///
/// Two readers, one result. The fast one works on the buffer itself. Each `tests` entry
/// of the usual shape (plain strings, a numeric or `null` duration, a list of violation
/// strings; see `fast::lane`) is read in one pass by a hand-written lane that accepts
/// only what serde_json accepts and yields what it yields. Any other entry, and every
/// other value, is split out of the buffer (string-aware bracket matching) and parsed
/// with serde_json from that slice, where strings are borrowed. Anything unusual (an
/// error, a value over [`MAX_JSON_TOKEN`]) stops the fast reader, and the streaming
/// serde_json reader takes over from the start, skipping the entries already handed
/// on: it gives the same entries, and its error messages and positions, always.
pub fn read_json(
    path: &Path,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<Option<f64>, ReadError> {
    read_json_hashed(path, on_entry).map(|(ts, _)| ts)
}

/// [`read_json`], also returning the hash of the report's content.
pub fn read_json_hashed(
    path: &Path,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<(Option<f64>, ContentHash), ReadError> {
    let mut done = 0usize;
    {
        let mut r = source::open(path)?;
        if let Some(ts) = fast::read(&mut r, &mut |e| {
            done += 1;
            on_entry(e)
        }) {
            return Ok((ts, r.finish(path)?));
        }
    }
    let mut skip = done;
    streaming(path, &mut |e| {
        if skip > 0 {
            skip -= 1;
        } else {
            on_entry(e)
        }
    })
}

/// [`read_json`] with the streaming serde_json reader alone: the reference the fast
/// reader is checked against (differential tests and the `size_report` fuzz target).
#[doc(hidden)]
pub fn read_json_streaming(
    path: &Path,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<Option<f64>, ReadError> {
    streaming(path, on_entry).map(|(ts, _)| ts)
}

fn streaming(
    path: &Path,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<(Option<f64>, ContentHash), ReadError> {
    let mut r = source::open(path)?;
    let br = BufReader::with_capacity(256 * 1024, TokenGuard::new(&mut r, 0));
    let ts = parse_json(br, on_entry).map_err(|e| json_error(path, e, 0))?;
    Ok((ts, r.finish(path)?))
}

mod fast;

fn json_error(path: &Path, e: serde_json::Error, line_offset: u64) -> ReadError {
    let msg = strip_serde_position(&e.to_string());
    let (line, column) = (e.line() as u64, e.column() as u64);
    let what = if e.is_eof() {
        format!("truncated JSON size report: {msg}")
    } else if e.is_syntax() {
        format!("malformed JSON: {msg}")
    } else if e.is_io() {
        let io: io::Error = e.into();
        return ReadError::from_io(path, &io);
    } else {
        format!("not a pytest-test-categories size report: {msg}")
    };
    if line == 0 {
        ReadError::plain(path, what)
    } else {
        ReadError::at_line(path, line + line_offset, column, what)
    }
}

/// serde_json appends " at line L column C"; the error already shows the position.
fn strip_serde_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// Fails a read once more than [`MAX_JSON_TOKEN`] bytes pass without a `"`.
struct TokenGuard<R> {
    inner: R,
    /// Bytes since the last quote.
    run: u64,
    /// Content offset of the next byte.
    offset: u64,
}

impl<R: Read> TokenGuard<R> {
    fn new(inner: R, offset: u64) -> Self {
        TokenGuard {
            inner,
            run: 0,
            offset,
        }
    }
}

impl<R: Read> Read for TokenGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(out)?;
        let chunk = &out[..k];
        let (first, last) = match memchr::memchr(b'"', chunk) {
            Some(f) => (f, memchr::memrchr(b'"', chunk).unwrap_or(f)),
            None => (k, k),
        };
        if self.run + first as u64 > MAX_JSON_TOKEN {
            let f = InputFault {
                offset: self.offset - self.run,
                kind: FaultKind::TokenTooLong(MAX_JSON_TOKEN),
            };
            return Err(io::Error::new(io::ErrorKind::InvalidData, f));
        }
        self.run = if first < k {
            (k - last - 1) as u64
        } else {
            self.run + k as u64
        };
        self.offset += k as u64;
        Ok(k)
    }
}

/// Parses a size report; returns its `timestamp`. Takes the `BufReader` by value: only
/// then does serde_json's byte-at-a-time reading take std's fast path.
fn parse_json<R: Read>(
    r: BufReader<TokenGuard<R>>,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<Option<f64>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_reader(r);
    let ts = ReportSeed { on_entry }.deserialize(&mut de)?;
    de.end()?;
    Ok(ts)
}

struct ReportSeed<'a> {
    on_entry: &'a mut dyn FnMut(&SizeEntry<'_>),
}

impl<'de> DeserializeSeed<'de> for ReportSeed<'_> {
    type Value = Option<f64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ReportSeed<'_> {
    type Value = Option<f64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with \"tests\"")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut ts = None;
        let mut saw_tests = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "tests" => {
                    map.next_value_seed(TestsSeed {
                        on_entry: &mut *self.on_entry,
                    })?;
                    saw_tests = true;
                }
                "timestamp" => {
                    let v: Option<String> = map.next_value()?;
                    if let Some(v) = v {
                        ts = Some(parse_timestamp(&v).ok_or_else(|| {
                            de::Error::custom(format!(
                                "\"timestamp\": {v:?} is not an ISO 8601 date and time"
                            ))
                        })?);
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !saw_tests {
            return Err(de::Error::custom(
                "no \"tests\" list (write it with --test-size-report=json)",
            ));
        }
        Ok(ts)
    }
}

struct TestsSeed<'a> {
    on_entry: &'a mut dyn FnMut(&SizeEntry<'_>),
}

impl<'de> DeserializeSeed<'de> for TestsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for TestsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of tests")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut name = String::new();
        let mut size = String::new();
        loop {
            let seed = EntrySeed {
                name: &mut name,
                size: &mut size,
            };
            let Some(t) = seq.next_element_seed(seed)? else {
                return Ok(());
            };
            emit(&name, &size, &t, &mut *self.on_entry)?;
        }
    }
}

/// Checks one parsed entry and hands it on.
fn emit<E: de::Error>(
    name: &str,
    size: &str,
    t: &Entry,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<(), E> {
    let sz = Size::parse(size)
        .filter(|s| *s != Size::Unknown)
        .ok_or_else(|| {
            de::Error::custom(format!(
                "test {name:?} has size {size:?}; expected small, medium, large, xlarge or unsized"
            ))
        })?;
    if let Some(d) = t.duration {
        if !d.is_finite() || d < 0.0 {
            return Err(de::Error::custom(format!(
                "test {name:?} has duration {d}; expected seconds ≥ 0"
            )));
        }
    }
    on_entry(&SizeEntry {
        name,
        size: Some(sz),
        duration: t.duration,
        timing: t.timing,
        hermeticity: t.hermeticity,
    });
    Ok(())
}

/// The fields of one `tests` entry (`status` is ignored).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Name,
    Size,
    Duration,
    Status,
    Violations,
    #[serde(other)]
    Other,
}

/// One entry: `name` and `size` into the caller's buffers, the rest returned.
struct EntrySeed<'b> {
    name: &'b mut String,
    size: &'b mut String,
}

#[derive(Default)]
struct Entry {
    duration: Option<f64>,
    timing: bool,
    hermeticity: [u32; 5],
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Entry, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a test object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let mut e = Entry::default();
        let mut seen = [false; 5];
        let mut once = |i: usize, name: &'static str| {
            if std::mem::replace(&mut seen[i], true) {
                Err(de::Error::duplicate_field(name))
            } else {
                Ok(())
            }
        };
        while let Some(k) = map.next_key::<Field>()? {
            match k {
                Field::Name => {
                    once(0, "name")?;
                    map.next_value_seed(StrInto(&mut *self.name))?;
                }
                Field::Size => {
                    once(1, "size")?;
                    map.next_value_seed(StrInto(&mut *self.size))?;
                }
                Field::Duration => {
                    once(2, "duration")?;
                    e.duration = map.next_value()?;
                }
                Field::Status => {
                    // Not used: skipped unparsed (no copy, no check of its type).
                    once(3, "status")?;
                    map.next_value::<IgnoredAny>()?;
                }
                Field::Violations => {
                    once(4, "violations")?;
                    map.next_value_seed(Violations(&mut e))?;
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen[0] {
            return Err(de::Error::missing_field("name"));
        }
        if !seen[1] {
            return Err(de::Error::missing_field("size"));
        }
        Ok(e)
    }
}

/// A JSON string copied into a reused buffer.
struct StrInto<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for StrInto<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrInto<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.clear();
        self.0.push_str(v);
        Ok(())
    }
}

/// `violations`: `"timing"` and `"hermeticity:<resource>"` entries, counted.
struct Violations<'b>(&'b mut Entry);

impl<'de> DeserializeSeed<'de> for Violations<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Violations<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Violation(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct Violation<'b>(&'b mut Entry);

impl<'de> DeserializeSeed<'de> for Violation<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Violation<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        count_violation(self.0, v);
        Ok(())
    }
}

/// Counts one `violations` string into `e`; other strings are ignored.
fn count_violation(e: &mut Entry, v: &str) {
    if v == "timing" {
        e.timing = true;
    } else if let Some(r) = v.strip_prefix("hermeticity:").and_then(Resource::parse) {
        let n = &mut e.hermeticity[r.index()];
        *n = n.saturating_add(1);
    }
}

/// Reads a captured pytest terminal log: the JSON report printed to stdout
/// (a line `{` … a line `}`), or the `Detailed Test Size Report` table.
pub fn read_terminal_log(
    path: &Path,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<Option<f64>, ReadError> {
    read_terminal_log_hashed(path, on_entry).map(|(ts, _)| ts)
}

/// [`read_terminal_log`], also returning the hash of the log's content.
pub fn read_terminal_log_hashed(
    path: &Path,
    on_entry: &mut dyn FnMut(&SizeEntry<'_>),
) -> Result<(Option<f64>, ContentHash), ReadError> {
    let mut r = source::open(path)?;
    let mut line = Vec::new();
    let mut n = 0u64;
    let mut in_detailed = false;
    let mut found = false;
    let mut ts = None;
    loop {
        let k = read_line_capped(&mut r, &mut line, MAX_LOG_LINE)
            .map_err(|e| ReadError::from_io(path, &e))?;
        if k == 0 {
            break;
        }
        n += 1;
        let text = String::from_utf8_lossy(&line);
        let t = text.trim_end_matches(['\n', '\r']);
        if t == "{" {
            // The JSON runs to the next line that is exactly `}`: streamed, not collected.
            let start = n;
            let offset = r.position();
            let mut state = LinesState::default();
            let lines = JsonLines::new(&mut r, &mut state);
            let br = BufReader::with_capacity(64 * 1024, TokenGuard::new(lines, offset));
            let parsed = parse_json(br, on_entry);
            n += state.lines;
            if !state.closed && parsed.is_ok() {
                return Err(ReadError::at_line(
                    path,
                    n,
                    1,
                    "truncated JSON size report: no closing `}` line",
                ));
            }
            ts = parsed.map_err(|e| json_error(path, e, start - 1))?;
            found = true;
            continue;
        }
        if t.starts_with('=') && t.contains(" Detailed Test Size Report ") {
            in_detailed = true;
            found = true;
            continue;
        }
        if in_detailed {
            if t.starts_with('=') {
                in_detailed = false;
            } else if let Some(e) = detailed_row(t) {
                on_entry(&e);
            }
        }
    }
    if !found {
        return Err(ReadError::plain(
            path,
            "is a text file without a size report: expected the JSON report printed by \
             --test-size-report=json, or the table of --test-size-report=detailed",
        ));
    }
    Ok((ts, r.finish(path)?))
}

/// Reads one line (with its `\n`) and keeps at most `cap` bytes of it. Returns the bytes
/// consumed, 0 at the end.
fn read_line_capped(r: &mut PeekReader, line: &mut Vec<u8>, cap: usize) -> io::Result<usize> {
    line.clear();
    let mut total = 0;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(total);
        }
        let (k, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let keep = k.min(cap.saturating_sub(line.len()));
        line.extend_from_slice(&buf[..keep]);
        r.consume(k);
        total += k;
        if done {
            return Ok(total);
        }
    }
}

/// The JSON printed in a terminal log: `{` (already read) and the lines after it up to and
/// including the first line that is exactly `}`; then the end.
struct JsonLines<'a> {
    r: &'a mut PeekReader,
    /// `{\n`, then a normalized `}\n`.
    pending: &'static [u8],
    at_line_start: bool,
    st: &'a mut LinesState,
}

/// What [`JsonLines`] saw, for after the parse.
#[derive(Default)]
struct LinesState {
    /// The `}` line was reached.
    closed: bool,
    /// Lines consumed.
    lines: u64,
}

impl<'a> JsonLines<'a> {
    fn new(r: &'a mut PeekReader, st: &'a mut LinesState) -> Self {
        JsonLines {
            r,
            pending: b"{\n",
            at_line_start: true,
            st,
        }
    }
}

impl Read for JsonLines<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !self.pending.is_empty() {
            let k = self.pending.len().min(out.len());
            out[..k].copy_from_slice(&self.pending[..k]);
            self.pending = &self.pending[k..];
            return Ok(k);
        }
        if self.st.closed {
            return Ok(0);
        }
        if self.at_line_start {
            let h = self.r.fill_at_least(3)?;
            let close = if h == b"}" || h.starts_with(b"}\n") {
                Some(h.len().min(2))
            } else if h.starts_with(b"}\r\n") {
                Some(3)
            } else {
                None
            };
            if let Some(len) = close {
                self.r.consume(len);
                self.st.lines += 1;
                self.st.closed = true;
                self.pending = b"}\n";
                return self.read(out);
            }
        }
        let buf = self.r.fill_buf()?;
        if buf.is_empty() {
            return Ok(0);
        }
        let end = memchr::memchr(b'\n', buf).map_or(buf.len(), |i| i + 1);
        let k = end.min(out.len());
        out[..k].copy_from_slice(&buf[..k]);
        self.at_line_start = buf[k - 1] == b'\n';
        if self.at_line_start {
            self.st.lines += 1;
        }
        self.r.consume(k);
        Ok(k)
    }
}

/// `f"{nodeid:40} {size:8} {duration:.1f}s      {status}"`, parsed from the right
/// because the node id may hold spaces and is padded but never cut.
fn detailed_row(t: &str) -> Option<SizeEntry<'_>> {
    let t = t.trim_end();
    let (rest, status) = t.rsplit_once(' ')?;
    if status != "Pass" && status != "FAIL" && status != "SLOW" {
        return None;
    }
    let rest = rest.trim_end();
    let (rest, dur) = rest.rsplit_once(' ')?;
    let _dur: f64 = dur.strip_suffix('s')?.parse().ok()?;
    let rest = rest.trim_end();
    let (id, size) = rest.rsplit_once(' ')?;
    let size = Size::parse(size).filter(|s| *s != Size::Unknown)?;
    let id = id.trim_end();
    if id.is_empty() {
        return None;
    }
    Some(SizeEntry {
        name: id,
        size: Some(size),
        // 0.1 s precision, and 0.0 for tests without a call phase: use JUnit time instead.
        duration: None,
        // Timing comes from the JUnit TC006 text; the rounded duration cannot decide it.
        timing: false,
        hermeticity: [0; 5],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_bytes(
        doc: &[u8],
        on_entry: &mut dyn FnMut(&SizeEntry<'_>),
    ) -> Result<Option<f64>, serde_json::Error> {
        parse_json(BufReader::new(TokenGuard::new(doc, 0)), on_entry)
    }

    #[test]
    fn detailed_rows_parse_from_the_right() {
        let e = detailed_row(
            "tests/test_errors.py::test_fails_and_teardown_errors small    0.0s      FAIL",
        )
        .unwrap();
        assert_eq!(
            e.name,
            "tests/test_errors.py::test_fails_and_teardown_errors"
        );
        assert_eq!(e.size, Some(Size::Small));
        let e = detailed_row("tests/p.py::test_awkward_ids[a b c]      medium   2.5s      Pass")
            .unwrap();
        assert_eq!(e.name, "tests/p.py::test_awkward_ids[a b c]");
        assert_eq!(e.size, Some(Size::Medium));
        let e = detailed_row("tests/test_unmarked.py::test_unmarked_pass unsized  0.0s      Pass")
            .unwrap();
        assert_eq!(e.size, Some(Size::Unsized));
        assert!(detailed_row(
            "Test Name                                 Size     Duration    Status"
        )
        .is_none());
        assert!(detailed_row(
            "------------------------------------------------------------------------"
        )
        .is_none());
    }

    #[test]
    fn json_entries_stream() {
        let doc = br#"{"version":"1.2.2","timestamp":"2026-11-26T13:15:34.876060Z","summary":{},
          "tests":[{"name":"a.py::t [SMALL]","size":"small","duration":7.18e-05,"status":"passed",
                    "violations":["timing","hermeticity:process","hermeticity:process"]},
                   {"name":"a.py::u","size":"unsized","duration":null,"status":"passed","violations":[]}]}"#;
        let mut got = Vec::new();
        let ts = parse_bytes(&doc[..], &mut |e| got.push(SizeEntry { name: "", ..*e })).unwrap();
        assert_eq!(ts, Some(1795698934.87606));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].duration, Some(7.18e-05));
        assert!(got[0].timing);
        assert_eq!(got[0].hermeticity, [0, 0, 2, 0, 0]);
        assert_eq!(got[1].size, Some(Size::Unsized));
        assert_eq!(got[1].duration, None);
    }

    fn read_names(doc: &[u8]) -> Result<(Vec<String>, Option<f64>), ReadError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, doc).unwrap();
        let mut names = Vec::new();
        let ts = read_json(f.path(), &mut |e| names.push(e.name.to_string()))?;
        Ok((names, ts))
    }

    #[test]
    fn the_fast_reader_hands_over_without_repeating_an_entry() {
        // The third entry is over the fast reader's limit (but no single token is): the
        // streaming reader finishes, skipping the two entries already handed on.
        let big = vec!["\"timing\""; 600_000].join(",");
        let doc = format!(
            r#"{{"timestamp": "2026-11-26T13:15:34Z", "tests": [
              {{"name": "a", "size": "small"}}, {{"name": "b", "size": "small", "duration": null}},
              {{"name": "c", "size": "large", "violations": [{big}]}},
              {{"name": "d", "size": "unsized", "status": "passed"}}], "summary": {{"x": [1, {{}}]}}}}"#
        );
        assert!(doc.len() as u64 > MAX_JSON_TOKEN);
        let (names, ts) = read_names(doc.as_bytes()).unwrap();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(ts, Some(1795698934.0));
        // Fast all the way, with escapes, odd spacing and unknown keys.
        let doc = br#" { "t\u0065sts" :[ {"size":"medium","name":"x\"y","other":{"n":[1,2]}} ] ,"version":"1.2.2" }
"#;
        assert_eq!(read_names(doc).unwrap().0, ["x\"y"]);
        // An error after good entries: the streaming reader's message and position.
        let e = read_names(
            br#"{"tests": [{"name": "a", "size": "small"},
 {"name": "b", "size": "huge"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.position, Some((2, 31)));
        assert!(
            e.message.contains("test \"b\" has size \"huge\""),
            "{}",
            e.message
        );
        // Trailing garbage is malformed, as serde_json says.
        let e = read_names(br#"{"tests": []} x"#).unwrap_err();
        assert!(
            e.message.starts_with("malformed JSON: trailing characters"),
            "{}",
            e.message
        );
    }

    #[test]
    fn json_wrong_types_are_errors() {
        let doc = br#"{"tests":[{"name":"a","size":3,"duration":null,"violations":[]}]}"#;
        let e = parse_bytes(&doc[..], &mut |_| {}).unwrap_err();
        assert!(
            e.to_string()
                .contains("invalid type: integer `3`, expected a string"),
            "{e}"
        );
        let doc = br#"{"tests":[{"name":"a","size":"huge","duration":null}]}"#;
        let e = parse_bytes(&doc[..], &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("has size \"huge\""), "{e}");
        let e = parse_bytes(&br#"{"version":"1"}"#[..], &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("no \"tests\" list"), "{e}");
    }
}

/// The JSON lane (`fast::lane`) against the streaming serde_json reader.
#[cfg(test)]
mod lane_tests;
