//! Cobertura `coverage.xml` (coverage.py / pytest-cov and other Cobertura producers),
//! read with quick-xml's streaming reader.
//!
//! Line coverage is `lines-covered / lines-valid × 100` from the root element
//! (METRICS.md §3: not the rounded `line-rate`); when the root lacks those counts they
//! are computed from the `<line>` elements. Uncovered lines are counted per file from the
//! `<line hits="0">` elements directly under each `<class>` (method-level `<lines>` repeat
//! them in Java producers and are skipped).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::{source, ReadError};
use crate::model::Coverage;

pub fn read(path: &Path) -> Result<Coverage, ReadError> {
    let mut reader = Reader::from_reader(source::open(path)?);
    let mut buf = Vec::new();
    let mut root_valid: Option<u64> = None;
    let mut root_covered: Option<u64> = None;
    let mut seen_root = false;
    // file -> (all line numbers, uncovered line numbers)
    let mut files: BTreeMap<String, (BTreeSet<u64>, BTreeSet<u64>)> = BTreeMap::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut class_file: Option<String> = None;
    loop {
        let pos = reader.buffer_position();
        buf.clear();
        let ev = reader.read_event_into(&mut buf).map_err(|e| {
            ReadError::at(path, reader.error_position(), format!("malformed XML: {e}"))
        })?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = e.local_name().as_ref().to_vec();
                if !seen_root {
                    seen_root = true;
                    if name != b"coverage" {
                        return Err(ReadError::at(
                            path,
                            pos,
                            format!(
                                "not a Cobertura coverage report: the root element is <{}>, expected <coverage>",
                                String::from_utf8_lossy(&name)
                            ),
                        ));
                    }
                    root_valid =
                        attr_u64(e, b"lines-valid").map_err(|m| ReadError::at(path, pos, m))?;
                    root_covered =
                        attr_u64(e, b"lines-covered").map_err(|m| ReadError::at(path, pos, m))?;
                } else if name == b"class" {
                    class_file = attr(e, b"filename").map_err(|m| ReadError::at(path, pos, m))?;
                    if class_file.is_none() {
                        return Err(ReadError::at(
                            path,
                            pos,
                            "<class> has no filename attribute",
                        ));
                    }
                } else if name == b"line"
                    && stack.len() >= 2
                    && stack[stack.len() - 1] == b"lines"
                    && stack[stack.len() - 2] == b"class"
                {
                    if let Some(file) = &class_file {
                        let number = attr_u64(e, b"number")
                            .map_err(|m| ReadError::at(path, pos, m))?
                            .ok_or_else(|| {
                                ReadError::at(path, pos, "<line> has no number attribute")
                            })?;
                        let hits = attr_u64(e, b"hits")
                            .map_err(|m| ReadError::at(path, pos, m))?
                            .ok_or_else(|| {
                                ReadError::at(path, pos, "<line> has no hits attribute")
                            })?;
                        let entry = files.entry(file.clone()).or_default();
                        entry.0.insert(number);
                        if hits == 0 {
                            entry.1.insert(number);
                        } else {
                            entry.1.remove(&number);
                        }
                    }
                }
                if !empty {
                    stack.push(name);
                }
            }
            Event::End(_) if stack.pop().as_deref() == Some(b"class") => {
                class_file = None;
            }
            Event::End(_) => {}
            Event::Eof => {
                if !seen_root {
                    return Err(ReadError::plain(
                        path,
                        "has no <coverage> element: not a Cobertura report",
                    ));
                }
                if !stack.is_empty() {
                    return Err(ReadError::at(
                        path,
                        reader.buffer_position(),
                        "unexpected end of file (the report is truncated?)",
                    ));
                }
                break;
            }
            _ => {}
        }
    }
    let all: u64 = files.values().map(|(a, _)| a.len() as u64).sum();
    let missed: u64 = files.values().map(|(_, u)| u.len() as u64).sum();
    let (lines_valid, lines_covered) = match (root_valid, root_covered) {
        (Some(v), Some(c)) => (v, c),
        _ => (all, all - missed),
    };
    if lines_covered > lines_valid {
        return Err(ReadError::plain(
            path,
            format!("lines-covered ({lines_covered}) is greater than lines-valid ({lines_valid})"),
        ));
    }
    let mut uncovered: Vec<(String, u64)> = files
        .into_iter()
        .filter(|(_, (_, u))| !u.is_empty())
        .map(|(f, (_, u))| (f, u.len() as u64))
        .collect();
    uncovered.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Coverage {
        lines_valid,
        lines_covered,
        uncovered,
    })
}

/// Two coverage files of one run (e.g. split jobs): counts add, files add.
pub fn merge(a: Coverage, b: Coverage) -> Coverage {
    let mut files: BTreeMap<String, u64> = BTreeMap::new();
    for (f, n) in a.uncovered.into_iter().chain(b.uncovered) {
        *files.entry(f).or_default() += n;
    }
    let mut uncovered: Vec<(String, u64)> = files.into_iter().collect();
    uncovered.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    Coverage {
        lines_valid: a.lines_valid + b.lines_valid,
        lines_covered: a.lines_covered + b.lines_covered,
        uncovered,
    }
}

fn attr(e: &quick_xml::events::BytesStart<'_>, key: &[u8]) -> Result<Option<String>, String> {
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|e| format!("malformed attribute: {e}"))?;
        if a.key.as_ref() == key {
            return a
                .unescape_value()
                .map(|v| Some(v.into_owned()))
                .map_err(|e| format!("bad attribute value: {e}"));
        }
    }
    Ok(None)
}

fn attr_u64(e: &quick_xml::events::BytesStart<'_>, key: &[u8]) -> Result<Option<u64>, String> {
    match attr(e, key)? {
        None => Ok(None),
        Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
            format!(
                "{}=\"{}\" is not a whole number",
                String::from_utf8_lossy(key),
                v.chars().take(40).collect::<String>()
            )
        }),
    }
}
