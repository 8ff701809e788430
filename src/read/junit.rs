//! Streaming JUnit XML reader (quick-xml pull parser over a buffered reader).
//!
//! Accepts any nesting of `<testsuites>`/`<testsuite>` and a bare `<testsuite>` root,
//! xunit1 and xunit2 (FORMATS.md §1), and Surefire rerun/flaky children. Text content is
//! never buffered: it is streamed past the parser, and only the lines of a `<failure>`
//! that METRICS.md §2 looks at (`[TC006] …`, `[TC008] …`, `Category: SIZE`) are matched,
//! one bounded line at a time. So memory does not grow with `<system-out>` or failure
//! text. DTDs are ignored: no entity is expanded and no external file is read.

use std::io::BufRead;
use std::path::Path;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::source::{self, PeekReader};
use super::ReadError;
use crate::model::{CaseElement, FailureMarks, Resource, Size};

/// Lines longer than this cannot be a line we look for; they are skipped, not stored.
const MAX_LINE: usize = 256;

/// Suite-level facts of one file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileSuite {
    pub duration_seconds: f64,
    pub earliest_timestamp: Option<f64>,
    pub elements: u64,
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

/// Reads one JUnit file, calling `on_case` for every `<testcase>` in document order.
pub fn read(path: &Path, mut on_case: impl FnMut(CaseElement)) -> Result<FileSuite, ReadError> {
    let input = source::open(path)?;
    let mut reader = Reader::from_reader(input);
    reader.config_mut().check_end_names = true;
    reader.config_mut().expand_empty_elements = false;

    let mut suite = FileSuite::default();
    let mut stack: Vec<Frame> = Vec::with_capacity(16);
    let mut suite_depth = 0usize;
    let mut case: Option<CaseElement> = None;
    let mut case_teardown_msg = false;
    let mut case_children = 0u32;
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
        .map_err(|e| ReadError::io(path, &e))?;
        let pos = reader.buffer_position();
        buf.clear();
        let event = match reader.read_event_into(&mut buf) {
            Ok(ev) => ev,
            Err(e) => {
                let at = reader.error_position();
                return Err(err_at(at, format!("malformed XML: {e}")));
            }
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
                let frame = match (stack.last(), name) {
                    (_, b"testsuites") if case.is_none() => Frame::Suites,
                    (_, b"testsuite") if case.is_none() => {
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
                    (Some(Frame::Suite), b"testcase") => {
                        let c = case_attrs(e).map_err(|m| err_at(pos, m))?;
                        case = Some(c);
                        case_teardown_msg = false;
                        case_children = 0;
                        Frame::Case
                    }
                    (Some(Frame::Case), child) => {
                        let c = case.as_mut().expect("case frame has a case");
                        let f = case_child(c, child, e, &mut case_teardown_msg)
                            .map_err(|m| err_at(pos, m))?;
                        if matches!(child, b"failure" | b"error" | b"skipped") {
                            case_children += 1;
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
                        case_teardown_msg,
                        case_children,
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
                    case_teardown_msg,
                    case_children,
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
                return Ok(suite);
            }
            Event::Text(_) | Event::GeneralRef(_) | Event::CData(_) => {
                // Only possible before the root or after it closes.
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn close(
    frame: Frame,
    suite_depth: &mut usize,
    case: &mut Option<CaseElement>,
    text_scan: &mut Option<LineScanner>,
    teardown_msg: bool,
    children: u32,
    suite: &mut FileSuite,
    on_case: &mut impl FnMut(CaseElement),
) {
    match frame {
        Frame::Suite => *suite_depth = suite_depth.saturating_sub(1),
        Frame::Case => {
            if let Some(mut c) = case.take() {
                c.teardown_error_only = teardown_msg
                    && children == 1
                    && c.result.error
                    && !c.result.failure
                    && !c.result.skipped
                    && !c.result.xfail;
                suite.elements += 1;
                on_case(c);
            }
        }
        Frame::Failure => {
            if let (Some(scan), Some(c)) = (text_scan.take(), case.as_mut()) {
                c.marks.merge(scan.finish());
            }
        }
        Frame::Suites | Frame::Other => {}
    }
}

fn attr_str(a: &quick_xml::events::attributes::Attribute<'_>) -> Result<String, String> {
    a.unescape_value().map(|v| v.into_owned()).map_err(|e| {
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
            String::from_utf8_lossy(a.key.as_ref())
        )
    })
}

fn parse_seconds(v: &str, what: &str) -> Result<f64, String> {
    let t = v.trim();
    if t.is_empty() {
        return Ok(0.0);
    }
    // JUnit producers write `1.234`, some `1,234.5`.
    let t2 = t.replace(',', "");
    match t2.parse::<f64>() {
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
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|e| format!("malformed attribute: {e}"))?;
        match a.key.as_ref() {
            b"time" => time = parse_seconds(&attr_str(&a)?, "testsuite time")?,
            b"timestamp" => {
                let v = attr_str(&a)?;
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

fn case_attrs(e: &BytesStart<'_>) -> Result<CaseElement, String> {
    let mut c = CaseElement::default();
    let mut has_name = false;
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|e| format!("malformed attribute: {e}"))?;
        match a.key.as_ref() {
            b"classname" => c.classname = attr_str(&a)?,
            b"name" => {
                c.name = attr_str(&a)?;
                has_name = true;
            }
            b"file" => c.file = Some(attr_str(&a)?),
            b"time" => c.time = parse_seconds(&attr_str(&a)?, "testcase time")?,
            _ => {}
        }
    }
    if !has_name {
        return Err("<testcase> has no name attribute".to_string());
    }
    Ok(c)
}

/// Applies a child of `<testcase>` to the element and says how to treat its content.
fn case_child(
    c: &mut CaseElement,
    name: &[u8],
    e: &BytesStart<'_>,
    teardown_msg: &mut bool,
) -> Result<Frame, String> {
    let message = || -> Result<Option<String>, String> {
        for a in e.attributes().with_checks(false) {
            let a = a.map_err(|e| format!("malformed attribute: {e}"))?;
            if a.key.as_ref() == b"message" {
                return Ok(Some(attr_str(&a)?));
            }
        }
        Ok(None)
    };
    match name {
        b"failure" => {
            c.result.failure = true;
            if let Some(m) = message()? {
                c.marks.merge(marks_of_message(&m));
            }
            Ok(Frame::Failure)
        }
        b"error" => {
            c.result.error = true;
            if let Some(m) = message()? {
                if m.starts_with("failed on teardown") {
                    *teardown_msg = true;
                }
            }
            Ok(Frame::Other)
        }
        b"skipped" => {
            let mut ty = None;
            let mut msg = None;
            for a in e.attributes().with_checks(false) {
                let a = a.map_err(|e| format!("malformed attribute: {e}"))?;
                match a.key.as_ref() {
                    b"type" => ty = Some(attr_str(&a)?),
                    b"message" => msg = Some(attr_str(&a)?),
                    _ => {}
                }
            }
            if msg.as_deref() == Some("xfail-marked test passes unexpectedly") {
                // A slow xfail the plugin failed (FORMATS.md §2.5).
                c.result.failure = true;
            } else if ty.as_deref() == Some("pytest.xfail") {
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
            match bytes.iter().position(|&b| b == b'\n') {
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
        let buf = stream.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match memchr::memchr(b'<', buf) {
            None => {
                let n = buf.len();
                if let Some(s) = scan.as_deref_mut() {
                    s.feed(buf);
                }
                stream.consume(n);
            }
            Some(i) => {
                if let Some(s) = scan.as_deref_mut() {
                    s.feed(&buf[..i]);
                }
                stream.consume(i);
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
    }
}

/// Consumes up to and including `end` (3 bytes), feeding the bytes before it to `scan`.
fn skip_until(
    stream: &mut quick_xml::reader::BinaryStream<'_, PeekReader>,
    end: &[u8; 3],
    mut scan: Option<&mut LineScanner>,
) -> std::io::Result<()> {
    loop {
        let buf = stream.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match memchr::memchr(end[0], buf) {
            None => {
                let n = buf.len();
                if let Some(s) = scan.as_deref_mut() {
                    s.feed(buf);
                }
                stream.consume(n);
            }
            Some(i) => {
                if let Some(s) = scan.as_deref_mut() {
                    s.feed(&buf[..i]);
                }
                stream.consume(i);
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
        let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            return None;
        }
        frac = format!("0.{digits}").parse().ok()?;
        rest = &r[digits.len()..];
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
    let days = days_from_civil(y, mo, d);
    Some((days * 86400 + h * 3600 + mi * 60 + sec - offset) as f64 + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_str(doc: &str) -> Result<(Vec<CaseElement>, FileSuite), ReadError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(doc.as_bytes()).unwrap();
        let mut cases = Vec::new();
        let s = read(f.path(), |c| cases.push(c))?;
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
        read(f.path(), |c| cases.push(c)).unwrap();
        assert_eq!(cases.len(), 1);
        assert!(cases[0].marks.timing);
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
}
