//! The plugin's size report (pytest-test-categories 1.2.2, FORMATS.md §2.10):
//! the JSON file (`--test-size-report=json --test-size-report-file=…`), a captured
//! terminal log holding that JSON printed to stdout, or the `detailed` terminal report.
//!
//! The JSON is read with serde_json from a buffered reader and its `tests` array is
//! visited entry by entry (never collected), so memory does not grow with the report.

use std::fmt;
use std::io::BufRead;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::junit::parse_timestamp;
use super::{source, ReadError, SizeEntry};
use crate::model::{Resource, Size};

/// Reads a JSON size report; calls `on_entry` per test. Returns the report's `timestamp`.
pub fn read_json(
    path: &Path,
    on_entry: &mut dyn FnMut(SizeEntry),
) -> Result<Option<f64>, ReadError> {
    let r = source::open(path)?;
    parse_json(r, on_entry).map_err(|e| json_error(path, &e, 0))
}

fn json_error(path: &Path, e: &serde_json::Error, line_offset: u64) -> ReadError {
    let msg = strip_serde_position(&e.to_string());
    let what = if e.is_eof() {
        format!("truncated JSON size report: {msg}")
    } else if e.is_syntax() {
        format!("malformed JSON: {msg}")
    } else if e.is_io() {
        format!("cannot be read: {msg}")
    } else {
        format!("not a pytest-test-categories size report: {msg}")
    };
    if e.line() == 0 {
        ReadError::plain(path, what)
    } else {
        ReadError::at_line(path, e.line() as u64 + line_offset, e.column() as u64, what)
    }
}

/// serde_json appends " at line L column C"; the error already shows the position.
fn strip_serde_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn parse_json<R: std::io::Read>(
    r: R,
    on_entry: &mut dyn FnMut(SizeEntry),
) -> Result<Option<f64>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_reader(r);
    let ts = ReportSeed { on_entry }.deserialize(&mut de)?;
    de.end()?;
    Ok(ts)
}

struct ReportSeed<'a> {
    on_entry: &'a mut dyn FnMut(SizeEntry),
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
    on_entry: &'a mut dyn FnMut(SizeEntry),
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
        while let Some(t) = seq.next_element::<JsonTest>()? {
            let size = Size::parse(&t.size)
                .filter(|s| *s != Size::Unknown)
                .ok_or_else(|| {
                    de::Error::custom(format!(
                        "test {:?} has size {:?}; expected small, medium, large, xlarge or unsized",
                        t.name, t.size
                    ))
                })?;
            if let Some(d) = t.duration {
                if !d.is_finite() || d < 0.0 {
                    return Err(de::Error::custom(format!(
                        "test {:?} has duration {d}; expected seconds ≥ 0",
                        t.name
                    )));
                }
            }
            let mut hermeticity = [0u32; 5];
            let mut timing = false;
            for v in &t.violations {
                if v == "timing" {
                    timing = true;
                } else if let Some(r) = v.strip_prefix("hermeticity:").and_then(Resource::parse) {
                    hermeticity[r.index()] += 1;
                }
            }
            (self.on_entry)(SizeEntry {
                name: t.name,
                size: Some(size),
                duration: t.duration,
                timing,
                hermeticity,
            });
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct JsonTest {
    name: String,
    size: String,
    duration: Option<f64>,
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<String>,
    #[serde(default)]
    violations: Vec<String>,
}

/// Reads a captured pytest terminal log: the JSON report printed to stdout
/// (a line `{` … a line `}`), or the `Detailed Test Size Report` table.
pub fn read_terminal_log(
    path: &Path,
    on_entry: &mut dyn FnMut(SizeEntry),
) -> Result<Option<f64>, ReadError> {
    let mut r = source::open(path)?;
    let mut line = Vec::new();
    let mut n = 0u64;
    let mut json: Option<(u64, String)> = None;
    let mut in_detailed = false;
    let mut found = false;
    let mut ts = None;
    loop {
        line.clear();
        let k = r
            .read_until(b'\n', &mut line)
            .map_err(|e| ReadError::io(path, &e))?;
        if k == 0 {
            break;
        }
        n += 1;
        let text = String::from_utf8_lossy(&line);
        let t = text.trim_end_matches(['\n', '\r']);
        if let Some((start, buf)) = json.as_mut() {
            buf.push_str(t);
            buf.push('\n');
            if t == "}" {
                let start = *start;
                let body = std::mem::take(buf);
                json = None;
                ts = parse_json(body.as_bytes(), on_entry)
                    .map_err(|e| json_error(path, &e, start - 1))?;
                found = true;
            }
            continue;
        }
        if t == "{" {
            json = Some((n, String::from("{\n")));
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
                on_entry(e);
            }
        }
    }
    if json.is_some() {
        return Err(ReadError::at_line(
            path,
            n,
            1,
            "truncated JSON size report: no closing `}` line",
        ));
    }
    if !found {
        return Err(ReadError::plain(
            path,
            "is a text file without a size report: expected the JSON report printed by \
             --test-size-report=json, or the table of --test-size-report=detailed",
        ));
    }
    Ok(ts)
}

/// `f"{nodeid:40} {size:8} {duration:.1f}s      {status}"`, parsed from the right
/// because the node id may hold spaces and is padded but never cut (FORMATS.md §2.10.2).
fn detailed_row(t: &str) -> Option<SizeEntry> {
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
        name: id.to_string(),
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
        let ts = parse_json(&doc[..], &mut |e| got.push(e)).unwrap();
        assert_eq!(ts, Some(1795698934.87606));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].duration, Some(7.18e-05));
        assert!(got[0].timing);
        assert_eq!(got[0].hermeticity, [0, 0, 2, 0, 0]);
        assert_eq!(got[1].size, Some(Size::Unsized));
        assert_eq!(got[1].duration, None);
    }

    #[test]
    fn json_wrong_types_are_errors() {
        let doc = br#"{"tests":[{"name":"a","size":3,"duration":null,"violations":[]}]}"#;
        let e = parse_json(&doc[..], &mut |_| {}).unwrap_err();
        assert!(
            e.to_string()
                .contains("invalid type: integer `3`, expected a string"),
            "{e}"
        );
        let doc = br#"{"tests":[{"name":"a","size":"huge","duration":null}]}"#;
        let e = parse_json(&doc[..], &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("has size \"huge\""), "{e}");
        let e = parse_json(&br#"{"version":"1"}"#[..], &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("no \"tests\" list"), "{e}");
    }
}
