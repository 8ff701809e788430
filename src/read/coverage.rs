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

use super::source::{self, ContentHash};
use super::ReadError;
use crate::model::Coverage;

pub fn read(path: &Path) -> Result<Coverage, ReadError> {
    read_hashed(path).map(|(c, _)| c)
}

/// [`read`], also returning the hash of the file's content.
pub fn read_hashed(path: &Path) -> Result<(Coverage, ContentHash), ReadError> {
    let mut reader = Reader::from_reader(source::open_xml(path)?);
    let mut buf = Vec::new();
    let mut root_valid: Option<u64> = None;
    let mut root_covered: Option<u64> = None;
    let mut seen_root = false;
    // file -> (all line numbers, uncovered line numbers)
    let mut files: BTreeMap<String, (BTreeSet<u64>, BTreeSet<u64>)> = BTreeMap::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut class_file: Option<String> = None;
    let content: ContentHash;
    loop {
        let pos = reader.buffer_position();
        buf.clear();
        reader.get_mut().arm(source::MAX_MARKUP);
        let ev = reader.read_event_into(&mut buf);
        if let Err(f) = reader.get_mut().disarm() {
            return Err(ReadError::at(path, f.offset, f.to_string()));
        }
        let ev = ev.map_err(|e| super::junit::xml_error(path, &reader, &e))?;
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
                    if stack.len() >= super::junit::MAX_DEPTH {
                        return Err(ReadError::at(
                            path,
                            pos,
                            format!(
                                "elements nested more than {} deep: not a coverage report",
                                super::junit::MAX_DEPTH
                            ),
                        ));
                    }
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
                content = reader.get_mut().finish(path)?;
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
    Ok((
        Coverage {
            lines_valid,
            lines_covered,
            uncovered,
        },
        content,
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(version: &str, name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(format!("pytest-{version}"))
            .join(name)
    }

    fn write(dir: &tempfile::TempDir, xml: &str) -> PathBuf {
        let p = dir.path().join("coverage.xml");
        std::fs::write(&p, xml).unwrap();
        p
    }

    /// `(file, stmts, miss)` rows and the TOTAL row's `(stmts, miss)`.
    type Report = (Vec<(String, u64, u64)>, (u64, u64));

    /// coverage.py's own table (`coverage report --show-missing`).
    fn coverage_py_report(version: &str) -> Report {
        let text = std::fs::read_to_string(fixture(version, "coverage-report.txt")).unwrap();
        let mut files = Vec::new();
        let mut total = None;
        for line in text.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 6 || cols[1].parse::<u64>().is_err() {
                continue;
            }
            let (stmts, miss) = (cols[1].parse().unwrap(), cols[2].parse().unwrap());
            if cols[0] == "TOTAL" {
                total = Some((stmts, miss));
            } else {
                files.push((cols[0].to_string(), stmts, miss));
            }
        }
        (files, total.expect("a TOTAL row"))
    }

    #[test]
    fn agrees_with_coverage_py_on_the_fixture() {
        for v in ["9.2", "9.1"] {
            let c = read(&fixture(v, "coverage.xml")).unwrap();
            let (files, (stmts, miss)) = coverage_py_report(v);
            // Statements are coverage.py's lines: Stmts = lines-valid, Stmts - Miss = covered.
            assert_eq!(
                (c.lines_valid, c.lines_covered),
                (stmts, stmts - miss),
                "{v}"
            );
            assert_eq!((stmts, miss), (55, 8), "{v}: the report itself changed");
            // Miss per file = uncovered lines, for every file with at least one, most first.
            let mut want: Vec<(String, u64)> = files
                .into_iter()
                .filter(|f| f.2 > 0)
                .map(|(f, _, m)| (f, m))
                .collect();
            want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            assert_eq!(c.uncovered, want, "{v}");
            // Line coverage 85.45 %, not the rounded line-rate 0.8545 and not coverage.py's
            // 85.33 %, which also counts branches ((47 + 17) / (55 + 20)).
            assert!((c.percentage() - 47.0 / 55.0 * 100.0).abs() < 1e-12, "{v}");
        }
    }

    #[test]
    fn java_cobertura_counts_class_lines_once() {
        // Cobertura (Java) repeats each line under <methods>; inner classes share a file.
        let d = tempfile::tempdir().unwrap();
        let p = write(
            &d,
            r#"<?xml version="1.0"?>
<!DOCTYPE coverage SYSTEM "http://cobertura.sourceforge.net/xml/coverage-04.dtd">
<coverage line-rate="0.5" branch-rate="0" version="2.1.1" timestamp="1">
  <sources><source>/src/main/java</source></sources>
  <packages><package name="com.acme" line-rate="0.5">
    <classes>
      <class name="com.acme.Ledger" filename="com/acme/Ledger.java" line-rate="0.5">
        <methods><method name="post" signature="()V">
          <lines><line number="10" hits="0"/><line number="11" hits="3"/></lines>
        </method></methods>
        <lines><line number="10" hits="0"/><line number="11" hits="3"/></lines>
      </class>
      <class name="com.acme.Ledger$Entry" filename="com/acme/Ledger.java" line-rate="0.5">
        <methods/>
        <lines><line number="20" hits="0"/><line number="21" hits="1" branch="true" condition-coverage="50% (1/2)"/></lines>
      </class>
      <class name="com.acme.Money" filename="com/acme/Money.java" line-rate="1">
        <lines><line number="5" hits="7"/></lines>
      </class>
    </classes>
  </package></packages>
</coverage>"#,
        );
        let c = read(&p).unwrap();
        // No lines-valid/lines-covered on the root: counted from the class lines, 5 and 3.
        assert_eq!((c.lines_valid, c.lines_covered), (5, 3));
        assert_eq!(c.uncovered, vec![("com/acme/Ledger.java".to_string(), 2)]);
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            (
                r#"<coverage lines-valid="ten" lines-covered="1"></coverage>"#,
                ":1:1: lines-valid=\"ten\" is not a whole number",
            ),
            (
                r#"<coverage lines-valid="1" lines-covered="2"></coverage>"#,
                ": lines-covered (2) is greater than lines-valid (1)",
            ),
            (
                r#"<coverage><packages><package><classes><class name="a"><lines/></class>"#,
                ": <class> has no filename attribute",
            ),
            (
                r#"<coverage><packages><package><classes><class filename="a.py"><lines><line number="1"/>"#,
                ": <line> has no hits attribute",
            ),
            (
                r#"<coverage><packages>"#,
                ": unexpected end of file (the report is truncated?)",
            ),
            (
                r#"<report/>"#,
                ":1:1: not a Cobertura coverage report: the root element is <report>, expected <coverage>",
            ),
        ];
        for (xml, tail) in cases {
            let p = write(&d, xml);
            let e = read(&p).unwrap_err().to_string();
            assert!(
                e.starts_with(&p.display().to_string()) && e.ends_with(tail),
                "{xml}\n  gave {e}\n  want …{tail}"
            );
        }
    }
}
