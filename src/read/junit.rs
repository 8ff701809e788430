//! Streaming JUnit XML reader (quick-xml pull parser over a buffered reader).
//!
//! Accepts any nesting of `<testsuites>`/`<testsuite>` and a bare `<testsuite>` root,
//! xunit1 and xunit2, and Surefire rerun/flaky children. Text content is
//! never buffered: it is streamed past the parser, and only the lines of a `<failure>`
//! that METRICS.md §2 looks at (`[TC006] …`, `[TC008] …`, `Category: SIZE`) are matched,
//! one bounded line at a time. So memory does not grow with `<system-out>` or failure
//! text. DTDs are ignored: no entity is expanded and no external file is read.
//!
//! Hot path: no allocation per `<testcase>` (names go into reused buffers, attribute
//! values are unescaped only when they hold a `&`, `time` is parsed exactly without a
//! copy). Limits, each a clear error: elements nested deeper than [`MAX_DEPTH`], a tag
//! longer than [`source::MAX_MARKUP`], bytes that are not UTF-8 or are NUL.

use std::borrow::Cow;
use std::io::BufRead;
use std::path::Path;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::bytes;
use super::source::{self, PeekReader};
use super::ReadError;
use crate::model::{AttemptResult, CaseElement, FailureMarks, Resource, Size};

/// Lines longer than this cannot be a line we look for; they are skipped, not stored.
const MAX_LINE: usize = 256;

/// Deepest element nesting accepted. Real reports nest suites a few levels; a document
/// nested deeper is not a test report (and would make the parser keep every open name).
pub const MAX_DEPTH: usize = 256;

/// Suite-level facts of one file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileSuite {
    pub duration_seconds: f64,
    pub earliest_timestamp: Option<f64>,
    pub elements: u64,
    /// Hash of the file's (decompressed) content.
    pub content: source::ContentHash,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Frame {
    Suites,
    Suite,
    Case,
    /// A `<failure>` whose text is scanned for the plugin's lines.
    Failure,
    /// Any other element.
    Other,
}

/// The `<testcase>` being read, in buffers reused from one element to the next.
#[derive(Default)]
struct Case {
    open: bool,
    classname: String,
    name: String,
    file: String,
    has_file: bool,
    time: f64,
    result: AttemptResult,
    marks: FailureMarks,
    teardown_msg: bool,
    children: u32,
    rerun_children: u32,
    /// First line of the first `<failure>`/`<error>` message, bounded ([`first_line`]).
    message: String,
    has_message: bool,
}

impl Case {
    fn start(&mut self) {
        self.open = true;
        self.classname.clear();
        self.name.clear();
        self.file.clear();
        self.has_file = false;
        self.time = 0.0;
        self.result = AttemptResult::default();
        self.marks = FailureMarks::default();
        self.teardown_msg = false;
        self.children = 0;
        self.rerun_children = 0;
        self.message.clear();
        self.has_message = false;
    }

    fn element(&self) -> CaseElement<'_> {
        let r = &self.result;
        CaseElement {
            classname: &self.classname,
            name: &self.name,
            file: self.has_file.then_some(self.file.as_str()),
            time: self.time,
            result: self.result,
            marks: self.marks,
            teardown_error_only: self.teardown_msg
                && self.children == 1
                && r.error
                && !r.failure
                && !r.skipped
                && !r.xfail,
            rerun_children: self.rerun_children,
            message: self.has_message.then_some(self.message.as_str()),
        }
    }
}

/// Reads one JUnit file, calling `on_case` for every `<testcase>` in document order.
pub fn read(path: &Path, on_case: impl FnMut(&CaseElement<'_>)) -> Result<FileSuite, ReadError> {
    read_with(path, true, on_case)
}

/// [`read`] with quick-xml reading every tag, without the passed-test lane: the reference
/// the lane is checked against (differential tests and the `junit` fuzz target).
#[doc(hidden)]
pub fn read_without_lane(
    path: &Path,
    on_case: impl FnMut(&CaseElement<'_>),
) -> Result<FileSuite, ReadError> {
    read_with(path, false, on_case)
}

fn read_with(
    path: &Path,
    lane: bool,
    mut on_case: impl FnMut(&CaseElement<'_>),
) -> Result<FileSuite, ReadError> {
    let input = source::open_xml(path)?;
    let mut reader = Reader::from_reader(input);
    reader.config_mut().check_end_names = true;
    reader.config_mut().expand_empty_elements = false;

    let mut suite = FileSuite::default();
    let mut stack: Vec<Frame> = Vec::with_capacity(16);
    let mut suite_depth = 0usize;
    let mut case = Case::default();
    let mut text_scan: Option<LineScanner> = None;
    let mut seen_root = false;
    let mut buf = Vec::with_capacity(4096);

    let err_at = |offset: u64, msg: String| ReadError::at(path, offset, msg);

    loop {
        // Text between markup never reaches quick-xml: stream it past, scanning failure text.
        let scanning = matches!(stack.last(), Some(Frame::Failure));
        stream_text(
            &mut reader,
            if scanning { text_scan.as_mut() } else { None },
        )
        .map_err(|e| ReadError::from_io(path, &e))?;
        if lane && !scanning && matches!(stack.last(), Some(Frame::Suite)) {
            // The lane: a passed test, `<testcase …/>`, read in place from the buffer.
            let mut stream = reader.stream();
            let buf = stream
                .fill_buf()
                .map_err(|e| ReadError::from_io(path, &e))?;
            if let Some((len, v)) = lane_empty_case(buf) {
                suite.elements += 1;
                on_case(&v.passed());
                stream.consume(len);
                #[cfg(test)]
                lane_test::HITS.with(|h| h.set(h.get() + 1));
                continue;
            }
        }
        let pos = reader.buffer_position();
        buf.clear();
        reader.get_mut().arm(source::MAX_MARKUP);
        let event = reader.read_event_into(&mut buf);
        if let Err(f) = reader.get_mut().disarm() {
            return Err(err_at(f.offset, f.to_string()));
        }
        let event = match event {
            Ok(ev) => ev,
            Err(e) => return Err(xml_error(path, &reader, &e)),
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let name = e.local_name();
                let name = name.as_ref();
                if !seen_root {
                    seen_root = true;
                    if name != b"testsuites" && name != b"testsuite" {
                        return Err(err_at(
                            pos,
                            format!(
                                "not a JUnit report: the root element is <{}>, expected <testsuites> or <testsuite>",
                                String::from_utf8_lossy(name)
                            ),
                        ));
                    }
                }
                if !empty && stack.len() >= MAX_DEPTH {
                    return Err(err_at(
                        pos,
                        format!("elements nested more than {MAX_DEPTH} deep: not a JUnit report"),
                    ));
                }
                let frame = match (stack.last(), name) {
                    (_, b"testsuites") if !case.open => Frame::Suites,
                    (_, b"testsuite") if !case.open => {
                        let (time, ts) = suite_attrs(e).map_err(|m| err_at(pos, m))?;
                        if suite_depth == 0 {
                            suite.duration_seconds += time;
                        }
                        if let Some(ts) = ts {
                            suite.earliest_timestamp =
                                Some(suite.earliest_timestamp.map_or(ts, |t: f64| t.min(ts)));
                        }
                        suite_depth += 1;
                        Frame::Suite
                    }
                    (Some(Frame::Suite), b"testcase") if empty => {
                        // A passed test: `<testcase … />`. Its names are used where they
                        // are, in the tag, without a copy.
                        let v = case_values(e).map_err(|m| err_at(pos, m))?;
                        suite.elements += 1;
                        on_case(&v.passed());
                        Frame::Other
                    }
                    (Some(Frame::Suite), b"testcase") => {
                        case.start();
                        case_attrs(&mut case, e).map_err(|m| err_at(pos, m))?;
                        Frame::Case
                    }
                    (Some(Frame::Case), child) => {
                        let f = case_child(&mut case, child, e).map_err(|m| err_at(pos, m))?;
                        if matches!(child, b"failure" | b"error" | b"skipped") {
                            case.children += 1;
                        }
                        if f == Frame::Failure && !empty {
                            text_scan = Some(LineScanner::default());
                        }
                        f
                    }
                    _ => Frame::Other,
                };
                if empty {
                    close(
                        frame,
                        &mut suite_depth,
                        &mut case,
                        &mut text_scan,
                        &mut suite,
                        &mut on_case,
                    );
                } else {
                    stack.push(frame);
                }
            }
            Event::End(_) => {
                let frame = stack.pop().unwrap_or(Frame::Other);
                close(
                    frame,
                    &mut suite_depth,
                    &mut case,
                    &mut text_scan,
                    &mut suite,
                    &mut on_case,
                );
            }
            Event::Eof => {
                if !seen_root {
                    return Err(ReadError::plain(
                        path,
                        "has no <testsuites> or <testsuite> element: not a JUnit report",
                    ));
                }
                if !stack.is_empty() {
                    return Err(err_at(
                        reader.buffer_position(),
                        format!(
                            "unexpected end of file: {} element(s) still open (the report is truncated?)",
                            stack.len()
                        ),
                    ));
                }
                suite.content = reader.get_mut().finish(path)?;
                return Ok(suite);
            }
            Event::Text(_) | Event::GeneralRef(_) | Event::CData(_) => {
                // Only possible before the root or after it closes.
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}

/// A parser error: a fault of the bytes (UTF-8, NUL, size) at its offset, else malformed XML.
pub(crate) fn xml_error<R>(path: &Path, reader: &Reader<R>, e: &quick_xml::Error) -> ReadError {
    if let quick_xml::Error::Io(io) = e {
        if let Some(f) = source::fault_of(io) {
            return ReadError::at(path, f.offset, f.to_string());
        }
        return ReadError::io(path, io);
    }
    ReadError::at(path, reader.error_position(), format!("malformed XML: {e}"))
}

fn close(
    frame: Frame,
    suite_depth: &mut usize,
    case: &mut Case,
    text_scan: &mut Option<LineScanner>,
    suite: &mut FileSuite,
    on_case: &mut impl FnMut(&CaseElement<'_>),
) {
    match frame {
        Frame::Suite => *suite_depth = suite_depth.saturating_sub(1),
        Frame::Case => {
            if case.open {
                case.open = false;
                suite.elements += 1;
                on_case(&case.element());
            }
        }
        Frame::Failure => {
            if let Some(scan) = text_scan.take() {
                if case.open {
                    case.marks.merge(scan.finish());
                }
            }
        }
        Frame::Suites | Frame::Other => {}
    }
}

/// One `key="value"` of a start tag, as written (the value not unescaped).
struct Attr<'a> {
    key: &'a [u8],
    value: &'a [u8],
    /// The value holds a `&` (an entity or character reference to unescape).
    amp: bool,
}

/// The attributes of a start tag, scanned straight from its bytes with `memchr` (quick-xml's
/// own iterator walks them a byte at a time). XML rules: `key = "value"` or `'value'`,
/// whitespace around `=`; anything else is an error.
struct Attrs<'a> {
    rest: &'a [u8],
}

fn attrs<'a>(e: &'a BytesStart<'_>) -> Attrs<'a> {
    Attrs {
        rest: e.attributes_raw(),
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest;
        let Some(start) = s.iter().position(|b| !is_ws(*b)) else {
            self.rest = &[];
            return None;
        };
        let s = &s[start..];
        self.rest = &[];
        let bad = |what: &str| {
            let shown = String::from_utf8_lossy(&s[..s.len().min(40)]).into_owned();
            Some(Err(format!("malformed attribute {shown:?}: {what}")))
        };
        // Keys are short: a plain loop beats memchr's set-up.
        let Some(eq) = s.iter().position(|&b| b == b'=') else {
            return bad("expected key=\"value\"");
        };
        let mut key = &s[..eq];
        while let Some((last, init)) = key.split_last() {
            if !is_ws(*last) {
                break;
            }
            key = init;
        }
        if key.is_empty()
            || key
                .iter()
                .any(|b| is_ws(*b) || matches!(b, b'"' | b'\'' | b'<'))
        {
            return bad("expected key=\"value\"");
        }
        let after = &s[eq + 1..];
        let Some(q) = after.iter().position(|b| !is_ws(*b)) else {
            return bad("no value after =");
        };
        let quote = after[q];
        if quote != b'"' && quote != b'\'' {
            return bad("the value is not quoted");
        }
        let body = &after[q + 1..];
        let mut amp = false;
        let mut from = 0;
        let end = loop {
            match memchr::memchr2(quote, b'&', &body[from..]) {
                Some(i) if body[from + i] == b'&' => {
                    amp = true;
                    from += i + 1;
                }
                Some(i) => break from + i,
                None => return bad("the value has no closing quote"),
            }
        };
        self.rest = &body[end + 1..];
        Some(Ok(Attr {
            key,
            value: &body[..end],
            amp,
        }))
    }
}

/// An attribute's value, unescaped (borrowed unless it holds a `&`).
fn attr_value<'a>(a: &Attr<'a>) -> Result<Cow<'a, str>, String> {
    let raw = bytes::as_text(a.value).ok_or_else(|| {
        format!(
            "bad value of attribute {}: not UTF-8",
            String::from_utf8_lossy(a.key)
        )
    })?;
    if !a.amp {
        return Ok(Cow::Borrowed(raw));
    }
    quick_xml::escape::unescape(raw).map_err(|e| {
        let e = e.to_string();
        // quick-xml says "at 1..2: …" about the value; the position is already shown.
        let e = match e.split_once(": ") {
            Some((at, rest)) if at.starts_with("at ") => rest.to_string(),
            _ => e,
        };
        let hint = if e.contains("unrecognized entity") {
            " (entities declared in a DTD are never expanded)"
        } else {
            ""
        };
        format!(
            "bad value of attribute {}: {e}{hint}",
            String::from_utf8_lossy(a.key)
        )
    })
}

/// `d+[.d*]` exactly as `str::parse::<f64>` reads it, without a copy: the digits as an
/// integer below 2^53 divided by an exact power of ten is one correctly rounded operation.
fn fast_decimal(b: &[u8]) -> Option<f64> {
    const POW10: [f64; 18] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17,
    ];
    if b.is_empty() || b.len() > 17 {
        return None;
    }
    let (mut m, mut digits, mut frac) = (0u64, 0u32, None::<usize>);
    for &c in b {
        match c {
            b'0'..=b'9' => {
                m = m * 10 + u64::from(c - b'0');
                digits += 1;
                if let Some(f) = frac.as_mut() {
                    *f += 1;
                }
            }
            b'.' if frac.is_none() => frac = Some(0),
            _ => return None,
        }
    }
    if digits == 0 || m >= 1 << 53 {
        return None;
    }
    Some(m as f64 / POW10[frac.unwrap_or(0)])
}

fn seconds_attr(a: &Attr<'_>, what: &str) -> Result<f64, String> {
    if let Some(x) = fast_decimal(a.value) {
        return Ok(x);
    }
    parse_seconds(&attr_value(a)?, what)
}

fn parse_seconds(v: &str, what: &str) -> Result<f64, String> {
    let t = v.trim();
    if t.is_empty() {
        return Ok(0.0);
    }
    // JUnit producers write `1.234`, some `1,234.5`.
    let parsed = if t.contains(',') {
        t.replace(',', "").parse::<f64>()
    } else {
        t.parse::<f64>()
    };
    match parsed {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!(
            "{what}=\"{}\" is not a duration in seconds",
            truncate(t, 40)
        )),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

fn suite_attrs(e: &BytesStart<'_>) -> Result<(f64, Option<f64>), String> {
    let mut time = 0.0;
    let mut ts = None;
    for a in attrs(e) {
        let a = a?;
        match a.key {
            b"time" => time = seconds_attr(&a, "testsuite time")?,
            b"timestamp" => {
                let v = attr_value(&a)?;
                ts = Some(parse_timestamp(&v).ok_or_else(|| {
                    format!(
                        "testsuite timestamp=\"{}\" is not an ISO 8601 date and time",
                        truncate(&v, 40)
                    )
                })?);
            }
            _ => {}
        }
    }
    Ok((time, ts))
}

/// The attributes of a `<testcase>`, borrowed from the tag where possible.
struct CaseValues<'a> {
    classname: Cow<'a, str>,
    name: Cow<'a, str>,
    file: Option<Cow<'a, str>>,
    time: f64,
    has_name: bool,
}

impl<'a> CaseValues<'a> {
    fn new() -> Self {
        CaseValues {
            classname: Cow::Borrowed(""),
            name: Cow::Borrowed(""),
            file: None,
            time: 0.0,
            has_name: false,
        }
    }

    /// Takes one attribute; `text` spells a name's value (unescaped, checked).
    fn take(
        &mut self,
        a: &Attr<'a>,
        text: impl Fn(&Attr<'a>) -> Result<Cow<'a, str>, String>,
    ) -> Result<(), String> {
        match a.key {
            b"classname" => self.classname = text(a)?,
            b"name" => {
                self.name = text(a)?;
                self.has_name = true;
            }
            b"file" => self.file = Some(text(a)?),
            b"time" => self.time = seconds_attr(a, "testcase time")?,
            _ => {}
        }
        Ok(())
    }

    /// The element of a passed test, `<testcase … />`.
    fn passed(&self) -> CaseElement<'_> {
        CaseElement {
            classname: &self.classname,
            name: &self.name,
            file: self.file.as_deref(),
            time: self.time,
            ..CaseElement::default()
        }
    }
}

fn case_values<'a>(e: &'a BytesStart<'_>) -> Result<CaseValues<'a>, String> {
    let mut v = CaseValues::new();
    for a in attrs(e) {
        v.take(&a?, attr_value)?;
    }
    if !v.has_name {
        return Err("<testcase> has no name attribute".to_string());
    }
    Ok(v)
}

/// The lane for the commonest element of a pytest report, a passed test written as
/// `<testcase classname="…" name="…" time="…" />`, read straight from the reader's buffer
/// in one pass (tag end, attributes and values together) instead of through quick-xml's
/// event and then [`Attrs`].
///
/// It accepts only what it fully understands and what quick-xml would read the same way:
/// `<testcase`, whitespace, then `key="value"` pairs (keys of `[A-Za-z0-9_.:-]`, `=`
/// right after the key, `"` or `'` quotes) separated by optional whitespace, and `/>`;
/// in such a tag no `>` stands outside quotes before the end, so quick-xml's quote-aware
/// scan ends it at the same byte, and the values are those [`Attrs`] would give. The
/// values go through the same [`attr_value`] / [`seconds_attr`] as quick-xml's path.
/// Anything else — a tag cut by the end of the buffer, an element with children, a
/// namespace prefix, odd spacing, a bad value, a missing `name` — returns `None` with
/// nothing consumed, and quick-xml reads the tag as before (with its errors and
/// positions). Returns the bytes the tag takes and its values.
fn lane_empty_case<'a>(b: &'a [u8]) -> Option<(usize, CaseValues<'a>)> {
    fn key_byte(c: u8) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':')
    }
    if !b.starts_with(b"<testcase") || !is_ws(*b.get(9)?) {
        return None;
    }
    let mut v = CaseValues::new();
    let mut i = 10;
    loop {
        let mut c = *b.get(i)?;
        while is_ws(c) {
            i += 1;
            c = *b.get(i)?;
        }
        if c == b'/' {
            return (*b.get(i + 1)? == b'>' && v.has_name).then_some((i + 2, v));
        }
        let at = &b[i..];
        // pytest's keys first, then any key.
        let key_len =
            if at.starts_with(b"name=") || at.starts_with(b"time=") || at.starts_with(b"file=") {
                4
            } else if at.starts_with(b"classname=") {
                9
            } else {
                let n = at.iter().position(|&c| !key_byte(c))?;
                if n == 0 || at[n] != b'=' {
                    return None;
                }
                n
            };
        let key = &at[..key_len];
        let quote = *at.get(key_len + 1)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let vs = i + key_len + 2;
        let (len, amp, ascii) = value_end(b.get(vs..)?, quote)?;
        let value = &b[vs..vs + len];
        i = vs + len + 1;
        // A plain ASCII value is its own text: no second look at its bytes.
        let text = |a: &Attr<'a>| match (a.amp, ascii) {
            // SAFETY: every ASCII byte sequence is valid UTF-8.
            (false, true) => Ok(Cow::Borrowed(unsafe {
                std::str::from_utf8_unchecked(a.value)
            })),
            _ => attr_value(a),
        };
        v.take(&Attr { key, value, amp }, text).ok()?;
    }
}

#[cfg(test)]
mod lane_test {
    use std::cell::Cell;
    thread_local! {
        /// Elements the lane read on this thread.
        pub static HITS: Cell<u64> = const { Cell::new(0) };
    }
}

/// Where the attribute value at the start of `b` ends (the index of its closing `quote`),
/// whether a `&` comes before it, and whether it is all ASCII; eight bytes at a time
/// ([`bytes`]).
fn value_end(b: &[u8], quote: u8) -> Option<(usize, bool, bool)> {
    let (mut amp, mut high) = (0u64, 0u64);
    let mut i = 0;
    while let Some(w) = bytes::word(b, i) {
        let mq = bytes::eq(w, quote);
        let ma = bytes::eq(w, b'&');
        if mq != 0 {
            let before = bytes::before_first(mq);
            return Some((
                i + bytes::first(mq),
                (amp | (ma & before)) != 0,
                (high | (bytes::high(w) & before)) == 0,
            ));
        }
        amp |= ma;
        high |= bytes::high(w);
        i += 8;
    }
    let (mut amp, mut ascii) = (amp != 0, high == 0);
    for (k, &c) in b[i..].iter().enumerate() {
        if c == quote {
            return Some((i + k, amp, ascii));
        }
        amp |= c == b'&';
        ascii &= c.is_ascii();
    }
    None
}

/// A `<testcase>` with children: its attributes copied into the reused buffers.
fn case_attrs(c: &mut Case, e: &BytesStart<'_>) -> Result<(), String> {
    let v = case_values(e)?;
    c.classname.push_str(&v.classname);
    c.name.push_str(&v.name);
    if let Some(f) = &v.file {
        c.file.push_str(f);
        c.has_file = true;
    }
    c.time = v.time;
    Ok(())
}

/// Applies a child of `<testcase>` to the element and says how to treat its content.
fn case_child(c: &mut Case, name: &[u8], e: &BytesStart<'_>) -> Result<Frame, String> {
    let message = || -> Result<Option<String>, String> {
        for a in attrs(e) {
            let a = a?;
            if a.key == b"message" {
                return Ok(Some(attr_value(&a)?.into_owned()));
            }
        }
        Ok(None)
    };
    let keep = |c: &mut Case, m: &str| {
        if !c.has_message {
            c.has_message = true;
            first_line(m, &mut c.message);
        }
    };
    match name {
        b"failure" => {
            c.result.failure = true;
            if let Some(m) = message()? {
                c.marks.merge(marks_of_message(&m));
                keep(c, &m);
            }
            Ok(Frame::Failure)
        }
        b"error" => {
            c.result.error = true;
            if let Some(m) = message()? {
                if m.starts_with("failed on teardown") {
                    c.teardown_msg = true;
                }
                keep(c, &m);
            }
            Ok(Frame::Other)
        }
        b"skipped" => {
            let (mut xfail_type, mut slow_xfail) = (false, false);
            for a in attrs(e) {
                let a = a?;
                match a.key {
                    b"type" => xfail_type = attr_value(&a)? == "pytest.xfail",
                    b"message" => {
                        slow_xfail = attr_value(&a)? == "xfail-marked test passes unexpectedly"
                    }
                    _ => {}
                }
            }
            if slow_xfail {
                // A slow xfail the plugin failed.
                c.result.failure = true;
                keep(c, "xfail-marked test passes unexpectedly");
            } else if xfail_type {
                c.result.xfail = true;
            } else {
                c.result.skipped = true;
            }
            Ok(Frame::Other)
        }
        b"rerunFailure" | b"rerunError" | b"flakyFailure" | b"flakyError" => {
            c.rerun_children += 1;
            Ok(Frame::Other)
        }
        _ => Ok(Frame::Other),
    }
}

/// Most characters kept of a failure message's first line ([`first_line`]).
pub const MESSAGE_MAX_CHARS: usize = 500;

/// Writes into `out` the first line of `m` (up to the first `\n` or `\r`), control
/// characters escaped as Rust escapes them (`\u{1b}`, `\t`), at most [`MESSAGE_MAX_CHARS`]
/// characters (escapes counted as written), cut on a character boundary and then ended by `…`.
pub fn first_line(m: &str, out: &mut String) {
    out.clear();
    let line = m.split(['\n', '\r']).next().unwrap_or("");
    let mut n = 0usize;
    for ch in line.chars() {
        if ch.is_control() {
            let esc = ch.escape_default();
            let len = esc.len();
            if n + len > MESSAGE_MAX_CHARS {
                out.push('…');
                return;
            }
            out.extend(esc);
            n += len;
        } else {
            if n + 1 > MESSAGE_MAX_CHARS {
                out.push('…');
                return;
            }
            out.push(ch);
            n += 1;
        }
    }
}

/// What a failure `message` attribute says: the TC lines, and a hermeticity exception.
pub fn marks_of_message(m: &str) -> FailureMarks {
    let mut scan = LineScanner::default();
    scan.feed(m.as_bytes());
    let mut marks = scan.finish();
    if let Some(rest) = m.strip_prefix("pytest_test_categories.exceptions.") {
        let kind_end = rest.find(':').unwrap_or(0);
        if rest[..kind_end].ends_with("ViolationError") {
            let mut search = rest;
            while let Some(i) = search.find("[TC00") {
                let code = &search[i + 1..(i + 6).min(search.len())];
                if let Some(r) = Resource::from_code(code) {
                    marks.hermeticity = Some(r);
                    break;
                }
                search = &search[i + 1..];
            }
        }
    }
    marks
}

/// Matches whole lines of a text fed in arbitrary chunks, keeping at most one short line.
#[derive(Default)]
pub struct LineScanner {
    line: Vec<u8>,
    overlong: bool,
    marks: FailureMarks,
    tc_header: bool,
    category: Option<Size>,
}

impl LineScanner {
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match memchr::memchr(b'\n', bytes) {
                Some(i) => {
                    self.push(&bytes[..i]);
                    self.end_line();
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.push(bytes);
                    bytes = &[];
                }
            }
        }
    }

    fn push(&mut self, part: &[u8]) {
        if self.overlong {
            return;
        }
        if self.line.len() + part.len() > MAX_LINE {
            self.overlong = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(part);
        }
    }

    fn end_line(&mut self) {
        if !self.overlong {
            let mut l: &[u8] = &self.line;
            if let Some(s) = l.strip_suffix(b"\r") {
                l = s;
            }
            match l {
                b"[TC006] Timing Violation" => self.marks.timing = true,
                b"[TC008] Performance Baseline Violation" => self.marks.baseline = true,
                _ => {
                    if l.len() > 8 && l.starts_with(b"[TC") && l[6] == b']' && l[7] == b' ' {
                        self.tc_header = l[3..6].iter().all(u8::is_ascii_digit);
                    }
                    if let Some(sz) = l.strip_prefix(b"Category: ") {
                        if self.category.is_none() {
                            self.category = std::str::from_utf8(sz)
                                .ok()
                                .and_then(Size::parse)
                                .filter(|s| s.is_sized());
                        }
                    }
                }
            }
            if self.marks.timing || self.marks.baseline {
                self.tc_header = true;
            }
        }
        self.line.clear();
        self.overlong = false;
    }

    pub fn finish(mut self) -> FailureMarks {
        if !self.line.is_empty() || self.overlong {
            self.end_line();
        }
        if self.tc_header {
            self.marks.category = self.category;
        }
        self.marks
    }
}

/// Streams the raw text before the next markup past the parser. CDATA sections are text;
/// comments are skipped. With a scanner, the (unescaped enough) bytes are fed to it.
fn stream_text(
    reader: &mut Reader<PeekReader>,
    mut scan: Option<&mut LineScanner>,
) -> std::io::Result<()> {
    let mut stream = reader.stream();
    loop {
        if !pass_until(&mut stream, b'<', scan.as_deref_mut())? {
            return Ok(());
        }
        // Most markup is a tag: no need to look further ahead for `<!`.
        if stream.fill_buf()?.get(1).is_some_and(|&b| b != b'!') {
            return Ok(());
        }
        let head = stream.get_mut().fill_at_least(9)?;
        if head.starts_with(b"<![CDATA[") {
            stream.consume(9);
            skip_until(&mut stream, b"]]>", scan.as_deref_mut())?;
        } else if head.starts_with(b"<!--") {
            stream.consume(4);
            skip_until(&mut stream, b"-->", None)?;
        } else {
            return Ok(());
        }
    }
}

/// Streams the bytes before the next `stop` past the parser, feeding them to `scan`;
/// `false` when the input ends first.
fn pass_until(
    stream: &mut quick_xml::reader::BinaryStream<'_, PeekReader>,
    stop: u8,
    mut scan: Option<&mut LineScanner>,
) -> std::io::Result<bool> {
    loop {
        let buf = stream.fill_buf()?;
        if buf.is_empty() {
            return Ok(false);
        }
        let n = memchr::memchr(stop, buf).unwrap_or(buf.len());
        if let Some(s) = scan.as_deref_mut() {
            s.feed(&buf[..n]);
        }
        let found = n < buf.len();
        stream.consume(n);
        if found {
            return Ok(true);
        }
    }
}

/// Consumes up to and including `end` (3 bytes), feeding the bytes before it to `scan`.
fn skip_until(
    stream: &mut quick_xml::reader::BinaryStream<'_, PeekReader>,
    end: &[u8; 3],
    mut scan: Option<&mut LineScanner>,
) -> std::io::Result<()> {
    loop {
        if !pass_until(stream, end[0], scan.as_deref_mut())? {
            return Ok(());
        }
        let head = stream.get_mut().fill_at_least(3)?;
        if head.starts_with(end) {
            stream.consume(3);
            return Ok(());
        }
        if head.len() < 3 {
            let n = head.len();
            stream.consume(n);
            return Ok(());
        }
        if let Some(s) = scan.as_deref_mut() {
            s.feed(&[end[0]]);
        }
        stream.consume(1);
    }
}

/// ISO 8601 date-time → Unix seconds. Accepts `2026-11-26T13:24:20.118122+00:00`,
/// `…Z`, no fraction, and no offset (read as UTC), also with a space for `T`.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        // `.123`: the fraction with its point, parsed in place.
        frac = rest[..1 + n].parse().ok()?;
        rest = &r[n..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = &rest[1..];
            let (oh, om) = match r.len() {
                5 if r.as_bytes()[2] == b':' => (r.get(0..2)?, r.get(3..5)?),
                4 => (r.get(0..2)?, r.get(2..4)?),
                2 => (r.get(0..2)?, "00"),
                _ => return None,
            };
            let oh: i64 = oh.parse().ok()?;
            let om: i64 = om.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = crate::civil::days_from_civil(y, mo, d);
    Some((days * 86400 + h * 3600 + mi * 60 + sec - offset) as f64 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A [`CaseElement`] that owns its strings.
    #[derive(Debug, Clone)]
    struct Owned {
        classname: String,
        time: f64,
        result: AttemptResult,
        marks: FailureMarks,
        teardown_error_only: bool,
        rerun_children: u32,
    }

    fn own(c: &CaseElement<'_>) -> Owned {
        Owned {
            classname: c.classname.to_string(),
            time: c.time,
            result: c.result,
            marks: c.marks,
            teardown_error_only: c.teardown_error_only,
            rerun_children: c.rerun_children,
        }
    }

    fn read_str(doc: &str) -> Result<(Vec<Owned>, FileSuite), ReadError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(doc.as_bytes()).unwrap();
        let mut cases = Vec::new();
        let s = read(f.path(), |c| cases.push(own(c)))?;
        Ok((cases, s))
    }

    #[test]
    fn nested_suites_bare_root_and_surefire_children() {
        let doc = r#"<?xml version="1.0"?>
<testsuites>
  <testsuite name="outer" time="2.5" timestamp="2026-01-02T03:04:05">
    <testsuite name="inner" time="2.0" timestamp="2026-01-02T03:04:00Z">
      <testcase classname="a.B" name="t1" time="0.5">
        <flakyFailure message="boom"><stackTrace>x</stackTrace></flakyFailure>
        <rerunFailure message="boom"/>
        <system-out><![CDATA[ <not markup> ]]></system-out>
      </testcase>
    </testsuite>
    <!-- a comment -->
    <testcase classname="a.B" name="t2" time="1,000.5"><properties><property name="k" value="v"/></properties></testcase>
  </testsuite>
  <testsuite name="second" time="1.5"><testcase name="t3"/></testsuite>
</testsuites>"#;
        let (cases, s) = read_str(doc).unwrap();
        assert_eq!(cases.len(), 3);
        assert_eq!(cases[0].rerun_children, 2);
        assert_eq!(cases[0].result.outcome(), crate::model::Outcome::Passed);
        assert_eq!(cases[1].time, 1000.5);
        assert_eq!(cases[2].classname, "");
        // Outermost suites only: 2.5 + 1.5.
        assert_eq!(s.duration_seconds, 4.0);
        assert_eq!(s.earliest_timestamp, Some(1767323040.0));
        let (cases, _) = read_str(r#"<testsuite name="x"><testcase classname="c" name="n" time="0.1"><skipped type="pytest.xfail" message="m"/></testcase></testsuite>"#).unwrap();
        assert_eq!(cases[0].result.outcome(), crate::model::Outcome::Xfailed);
    }

    #[test]
    fn failure_text_lines_in_text_cdata_and_message() {
        let doc = "<testsuite><testcase classname=\"c\" name=\"slow\" time=\"1.2\"><failure>\n\
            ======\n[TC006] Timing Violation\n======\nTest: c.py::slow\nCategory: SMALL\n</failure></testcase>\
            <testcase classname=\"c\" name=\"quoted\" time=\"0\"><failure message=\"assert '[TC006] Timing Violation' in x\">\
            E   assert '[TC006] Timing Violation' in x\nCategory: LARGE\n</failure></testcase>\
            <testcase classname=\"c\" name=\"cdata\" time=\"0\"><failure><![CDATA[\n[TC008] Performance Baseline Violation\r\nCategory: MEDIUM\n]]></failure></testcase>\
            <testcase classname=\"c\" name=\"herm\" time=\"0\"><failure message=\"pytest_test_categories.exceptions.SubprocessViolationError: &#10;===&#10;[TC003] Subprocess Violation&#10;Category: SMALL\">E   trace</failure></testcase>\
            <testcase classname=\"c\" name=\"slowxfail\" time=\"1.1\"><skipped message=\"xfail-marked test passes unexpectedly\">None</skipped></testcase>\
            </testsuite>";
        let (c, _) = read_str(doc).unwrap();
        assert!(c[0].marks.timing && c[0].marks.category == Some(Size::Small));
        // Quoting the code is not a violation, and a Category line without a TC header is ignored.
        assert!(!c[1].marks.timing && c[1].marks.category.is_none());
        assert!(c[2].marks.baseline && c[2].marks.category == Some(Size::Medium));
        assert_eq!(c[3].marks.hermeticity, Some(Resource::Process));
        assert_eq!(c[3].marks.category, Some(Size::Small));
        assert_eq!(c[4].result.outcome(), crate::model::Outcome::Failed);
    }

    #[test]
    fn teardown_only_error_is_flagged() {
        let doc = r#"<testsuite><testcase classname="c" name="t" time="0.1"><failure message="x">x</failure></testcase><testcase classname="c" name="t" time="0.2"><error message="failed on teardown with &quot;E&quot;">tb</error></testcase></testsuite>"#;
        let (c, _) = read_str(doc).unwrap();
        assert!(!c[0].teardown_error_only);
        assert!(c[1].teardown_error_only);
    }

    #[test]
    fn huge_captured_output_is_streamed_not_held() {
        // 64 MiB of system-out in 1 MiB lines is streamed past the parser (peak memory is
        // measured by the hostile-input and benchmark runs, not here).
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "<testsuites><testsuite name=\"s\"><testcase classname=\"c\" name=\"n\" time=\"1\"><system-out>").unwrap();
        let chunk = "x".repeat(1 << 20);
        for _ in 0..64 {
            writeln!(f, "{chunk}").unwrap();
        }
        write!(f, "</system-out><failure>{chunk}\n[TC006] Timing Violation\n</failure></testcase></testsuite></testsuites>").unwrap();
        let mut cases = Vec::new();
        read(f.path(), |c| cases.push(own(c))).unwrap();
        assert_eq!(cases.len(), 1);
        assert!(cases[0].marks.timing);
    }

    #[test]
    fn failure_messages_keep_a_bounded_escaped_first_line() {
        let mut out = String::new();
        first_line("AssertionError: a\tb\u{1b}[31m\r\nsecond", &mut out);
        assert_eq!(out, "AssertionError: a\\tb\\u{1b}[31m");
        first_line("", &mut out);
        assert_eq!(out, "");
        // 500 characters, multi-byte ones counted as one, cut on a character boundary.
        let long = "é".repeat(600);
        first_line(&long, &mut out);
        assert_eq!(out, format!("{}…", "é".repeat(500)));
        first_line(&"é".repeat(500), &mut out);
        assert_eq!(out, "é".repeat(500));
        // An escape that would cross the bound is left out whole.
        let edge = format!("{}\u{7}", "x".repeat(497));
        first_line(&edge, &mut out);
        assert_eq!(out, format!("{}…", "x".repeat(497)));
        // Through the reader: the message attribute of the last attempt's failure.
        let doc = "<testsuite><testcase classname=\"c\" name=\"t\" time=\"0\"><failure message=\"boom&#9;x&#10;trace\">tb</failure></testcase></testsuite>";
        let mut got = Vec::new();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.xml");
        std::fs::write(&p, doc).unwrap();
        read(&p, |c| got.push(c.message.map(str::to_string))).unwrap();
        assert_eq!(got, [Some("boom\\tx".to_string())]);
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("2026-11-26T13:24:20.118122+00:00"),
            Some(1795699460.118122)
        );
        assert_eq!(
            parse_timestamp("2026-11-26T13:24:20+01:00"),
            Some(1795695860.0)
        );
        assert_eq!(parse_timestamp("2026-11-26T13:24:20Z"), Some(1795699460.0));
        assert_eq!(parse_timestamp("2026-11-26 13:24:20"), Some(1795699460.0));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2026-13-26T13:24:20"), None);
    }

    #[test]
    fn errors_name_the_position() {
        let e = read_str("<testsuites>\n<testsuite>\n<testcase classname=\"c\" time=\"1\"/>\n</testsuite></testsuites>").unwrap_err();
        assert_eq!(e.position, Some((3, 1)));
        assert_eq!(e.message, "<testcase> has no name attribute");
        let e =
            read_str("<testsuite><testcase name=\"n\" time=\"fast\"/></testsuite>").unwrap_err();
        assert_eq!(
            e.message,
            "testcase time=\"fast\" is not a duration in seconds"
        );
        let e = read_str("<testsuites><testsuite><testcase name=\"n\">").unwrap_err();
        assert_eq!(
            e.message,
            "unexpected end of file: 3 element(s) still open (the report is truncated?)"
        );
    }

    /// Everything `read` reports about an element, names included.
    #[derive(Debug, PartialEq)]
    struct Full(String, String, Option<String>, u64, String);

    fn read_full(path: &Path, lane: bool) -> (Result<(Vec<Full>, FileSuite), String>, u64) {
        lane_test::HITS.with(|h| h.set(0));
        let mut cases = Vec::new();
        let r = read_with(path, lane, |c| {
            cases.push(Full(
                c.classname.to_string(),
                c.name.to_string(),
                c.file.map(str::to_string),
                c.time.to_bits(),
                format!(
                    "{:?} {:?} {} {}",
                    c.result, c.marks, c.teardown_error_only, c.rerun_children
                ),
            ))
        });
        let hits = lane_test::HITS.with(std::cell::Cell::get);
        (r.map(|s| (cases, s)).map_err(|e| e.to_string()), hits)
    }

    /// The lane and quick-xml's path agree on `doc`; returns the lane's hits.
    fn same_with_and_without_lane(doc: &[u8]) -> u64 {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(doc).unwrap();
        let (with, hits) = read_full(f.path(), true);
        let (without, none) = read_full(f.path(), false);
        assert_eq!(none, 0);
        assert_eq!(
            with,
            without,
            "lane differs on {:?}",
            String::from_utf8_lossy(doc)
        );
        hits
    }

    #[test]
    fn lane_agrees_with_quick_xml_on_every_fixture() {
        let mut hits = 0;
        for dir in [
            "fixtures/pytest-9.2",
            "fixtures/pytest-9.1",
            "tests/hostile",
        ] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "xml") {
                    hits += same_with_and_without_lane(&std::fs::read(&p).unwrap());
                }
            }
        }
        // The passed tests of the fixtures go through the lane.
        assert!(hits > 100, "lane taken {hits} times");
    }

    #[test]
    fn lane_agrees_with_quick_xml_on_odd_tags() {
        let tags: &[&str] = &[
            r#"<testcase classname="a.B" name="t" time="0.5" />"#,
            r#"<testcase classname="a.B" name="t" time="0.5"/>"#,
            r#"<testcase   name='t'  classname='a&amp;b'	time="1,234.5" />"#,
            r#"<testcase name="t[&lt;x&gt;]" time="0.1" file="t.py" line="3" />"#,
            r#"<testcase name="t" time="" />"#,
            r#"<testcase name="t" time="abc" />"#,
            r#"<testcase name="t" time="-1" />"#,
            r#"<testcase name="t" time="1e400" />"#,
            r#"<testcase classname="c" time="1" />"#,
            r#"<testcase name="a" name="b" />"#,
            r#"<testcase name="t" time="1"/ >"#,
            r#"<testcase name = "t" />"#,
            r#"<testcase name="t"time="2" />"#,
            r#"<testcase name="x>y" classname='q"q' />"#,
            r#"<testcase name="t" x-y:z.w="v" />"#,
            r#"<testcase name="t" =x />"#,
            r#"<testcase name="t" a="&bogus;" />"#,
            r#"<testcase name="&bogus;" />"#,
            r#"<testcase name="t" a=b />"#,
            r#"<testcase name="t" a />"#,
            r#"<testcase name="t" / x="1"/>"#,
            r#"<testcase name="é" classname="ü.∂" />"#,
            r#"<testcase name="t" time="00000000000000000000001.5" />"#,
            r#"<testcase
 name="t"
 time="2" />"#,
            r#"<testcase name="t"></testcase>"#,
            r#"<testcase name="t" time="3"><skipped message="m" /></testcase>"#,
            r#"<testcase name="t" time="3" /><!-- c --><testcase name="u" />"#,
            r#"<testcase name="unterminated />"#,
            r#"<testcases name="t" />"#,
            r#"<x:testcase name="t" />"#,
        ];
        let mut hits = 0;
        for t in tags {
            for doc in [
                format!("<testsuites><testsuite name=\"s\">{t}</testsuite></testsuites>"),
                format!("<testsuite>\n{t}\n<testcase name=\"after\"/></testsuite>"),
            ] {
                hits += same_with_and_without_lane(doc.as_bytes());
            }
        }
        assert!(hits > 20, "lane taken {hits} times");
    }

    #[test]
    fn lane_agrees_with_quick_xml_on_mutated_fixtures() {
        // Deterministic mutations of a real report: a byte replaced by one of the bytes
        // that matter to the lane, or dropped; every result (elements or error) must agree.
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pytest-9.2/junit-reruns.xml");
        let doc = std::fs::read(p).unwrap();
        let special = b"<>/=\"' &;\n\tax0.";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut hits = 0;
        for _ in 0..400 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x % doc.len() as u64) as usize;
            let mut m = doc.clone();
            if x >> 60 == 0 {
                m.remove(at);
            } else {
                m[at] = special[((x >> 32) % special.len() as u64) as usize];
            }
            hits += same_with_and_without_lane(&m);
        }
        assert!(hits > 1000, "lane taken {hits} times");
    }
}
