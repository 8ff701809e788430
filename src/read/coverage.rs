//! Cobertura `coverage.xml` (coverage.py / pytest-cov and other Cobertura producers),
//! read with quick-xml's streaming reader.
//!
//! Line coverage is `lines-covered / lines-valid × 100` from the root element
//! (METRICS.md §3: not the rounded `line-rate`); when the root lacks those counts they
//! are computed from the `<line>` elements. Uncovered lines are counted per file from the
//! `<line hits="0">` elements directly under each `<class>` (method-level `<lines>` repeat
//! them in Java producers and are skipped).
//!
//! Several files (a run split over jobs) are merged like `coverage combine`: per file name,
//! the union of its lines and the union of its covered lines, never a sum of counts. So a
//! file's lines are kept as sets until every file is read ([`Lines`]): a bit per line in
//! 64-line words, only for the words that hold a line, about half a byte per line.

use std::collections::BTreeMap;
use std::path::Path;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::source::{self, ContentHash};
use super::ReadError;
use crate::model::{Coverage, ModuleCoverage};

/// Line numbers as a sorted list of 64-line words: `(number / 64, bits)`.
#[derive(Debug, Clone, Default, PartialEq)]
struct LineSet(Vec<(u64, u64)>);

impl LineSet {
    fn insert(&mut self, line: u64) {
        let (word, bit) = (line / 64, 1u64 << (line % 64));
        match self.0.last_mut() {
            // Lines come in ascending order within a class: the usual case is the last word.
            Some((w, bits)) if *w == word => *bits |= bit,
            Some((w, _)) if *w < word => self.0.push((word, bit)),
            None => self.0.push((word, bit)),
            Some(_) => match self.0.binary_search_by_key(&word, |(w, _)| *w) {
                Ok(i) => self.0[i].1 |= bit,
                Err(i) => self.0.insert(i, (word, bit)),
            },
        }
    }

    fn union(&mut self, other: &LineSet) {
        let (a, b) = (&self.0, &other.0);
        let mut out = Vec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            let (x, y) = (a[i], b[j]);
            if x.0 == y.0 {
                out.push((x.0, x.1 | y.1));
                i += 1;
                j += 1;
            } else if x.0 < y.0 {
                out.push(x);
                i += 1;
            } else {
                out.push(y);
                j += 1;
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        self.0 = out;
    }

    fn len(&self) -> u64 {
        self.0.iter().map(|(_, b)| u64::from(b.count_ones())).sum()
    }
}

/// One file's lines: every line of the report, and those with hits.
#[derive(Debug, Clone, Default, PartialEq)]
struct FileLines {
    valid: LineSet,
    covered: LineSet,
    /// The `<package name>` the file's first `<class>` is in (the first file merged decides).
    package: String,
}

/// The lines of one or more coverage files, merged by file name and line number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lines {
    files: BTreeMap<String, FileLines>,
    /// The root's `lines-valid` and `lines-covered`, while a single file is read.
    root: Option<(u64, u64)>,
    /// Coverage files merged in.
    sources: usize,
}

impl Lines {
    /// Adds another file's lines (`coverage combine`): a line is covered when any file
    /// covers it. Files merged this way are counted from their lines, not their roots.
    pub fn merge(&mut self, other: Lines) {
        for (name, f) in other.files {
            match self.files.get_mut(&name) {
                Some(mine) => {
                    // The package stays the first file's: a file is in one module.
                    mine.valid.union(&f.valid);
                    mine.covered.union(&f.covered);
                }
                None => {
                    self.files.insert(name, f);
                }
            }
        }
        self.sources += other.sources;
        self.root = None;
    }

    /// True when the root counts lines but no `<line>` says which: such a file cannot be
    /// merged line by line with another.
    pub fn counts_without_lines(&self) -> bool {
        self.files.is_empty() && self.root.is_some_and(|(v, _)| v > 0)
    }

    /// The coverage of the lines read: the root's counts for a single file that has
    /// them, else the union's.
    pub fn coverage(&self) -> Coverage {
        let mut all = 0;
        let mut covered = 0;
        let mut uncovered: Vec<(String, u64)> = Vec::new();
        let mut packages: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (name, f) in &self.files {
            let (v, c) = (f.valid.len(), f.covered.len());
            all += v;
            covered += c;
            if v > c {
                uncovered.push((name.clone(), v - c));
            }
            let p = packages.entry(f.package.as_str()).or_default();
            p.0 += v;
            p.1 += c;
        }
        uncovered.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut modules: Vec<ModuleCoverage> = packages
            .into_iter()
            .filter(|(name, (v, _))| *v > 0 && !name.is_empty())
            .map(|(name, (lines_valid, lines_covered))| ModuleCoverage {
                module: name.to_string(),
                lines_valid,
                lines_covered,
            })
            .collect();
        modules.sort_by(|a, b| {
            a.percentage()
                .total_cmp(&b.percentage())
                .then_with(|| a.module.cmp(&b.module))
        });
        let (lines_valid, lines_covered) = match (self.sources, self.root) {
            (1, Some(r)) => r,
            _ => (all, covered),
        };
        Coverage {
            lines_valid,
            lines_covered,
            uncovered,
            modules,
        }
    }
}

pub fn read(path: &Path) -> Result<Coverage, ReadError> {
    read_hashed(path).map(|(l, _)| l.coverage())
}

/// Reads one file's lines (for [`Lines::merge`]), and the hash of its content.
pub fn read_hashed(path: &Path) -> Result<(Lines, ContentHash), ReadError> {
    let mut reader = Reader::from_reader(source::open_xml(path)?);
    let mut buf = Vec::new();
    let mut root_valid: Option<u64> = None;
    let mut root_covered: Option<u64> = None;
    let mut seen_root = false;
    let mut files: BTreeMap<String, FileLines> = BTreeMap::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut class_file: Option<String> = None;
    let mut package = String::new();
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
                } else if name == b"package" {
                    package = attr(e, b"name")
                        .map_err(|m| ReadError::at(path, pos, m))?
                        .unwrap_or_default();
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
                        let f = match files.get_mut(file.as_str()) {
                            Some(f) => f,
                            None => files.entry(file.clone()).or_insert_with(|| FileLines {
                                package: package.clone(),
                                ..FileLines::default()
                            }),
                        };
                        f.valid.insert(number);
                        if hits > 0 {
                            f.covered.insert(number);
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
            Event::End(_) => match stack.pop().as_deref() {
                Some(b"class") => class_file = None,
                Some(b"package") => package.clear(),
                _ => {}
            },
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
    let root = match (root_valid, root_covered) {
        (Some(v), Some(c)) => Some((v, c)),
        _ => None,
    };
    if let Some((v, c)) = root {
        if c > v {
            return Err(ReadError::plain(
                path,
                format!("lines-covered ({c}) is greater than lines-valid ({v})"),
            ));
        }
    }
    Ok((
        Lines {
            files,
            root,
            sources: 1,
        },
        content,
    ))
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
    fn line_sets_hold_any_order_and_any_number() {
        let mut a = LineSet::default();
        for l in [70, 3, 64, 3, 1 << 40, 0, 63, u64::MAX] {
            a.insert(l);
        }
        assert_eq!(a.len(), 7);
        // Words only for the lines there are: a huge line number costs one word.
        assert_eq!(a.0.len(), 4);
        let mut b = LineSet::default();
        for l in [3, 4, 200, 1 << 40] {
            b.insert(l);
        }
        a.union(&b);
        assert_eq!(a.len(), 9);
        let words: Vec<u64> = a.0.iter().map(|(w, _)| *w).collect();
        assert_eq!(words, [0, 1, 3, 1 << 34, u64::MAX / 64]);
    }

    #[test]
    fn merging_is_a_union_by_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let doc = |lines: &str| {
            format!(
                r#"<coverage lines-valid="9" lines-covered="1"><packages><package><classes>
                <class filename="a.py"><lines>{lines}</lines></class></classes></package></packages></coverage>"#
            )
        };
        let one = write(
            &d,
            &doc(
                r#"<line number="1" hits="1"/><line number="2" hits="0"/><line number="3" hits="0"/>"#,
            ),
        );
        let (mut l, _) = read_hashed(&one).unwrap();
        // One file: its root's counts.
        assert_eq!(
            (l.coverage().lines_valid, l.coverage().lines_covered),
            (9, 1)
        );
        let two = d.path().join("two.xml");
        std::fs::write(
            &two,
            doc(r#"<line number="2" hits="4"/><line number="3" hits="0"/><line number="4" hits="0"/>"#),
        )
        .unwrap();
        l.merge(read_hashed(&two).unwrap().0);
        // Lines 1-4; 1 and 2 covered (each by one file), 3 and 4 by none.
        let c = l.coverage();
        assert_eq!((c.lines_valid, c.lines_covered), (4, 2));
        assert_eq!(c.uncovered, vec![("a.py".to_string(), 2)]);
        assert!(!l.counts_without_lines());
        let bare = write(
            &d,
            r#"<coverage lines-valid="9" lines-covered="1"></coverage>"#,
        );
        assert!(read_hashed(&bare).unwrap().0.counts_without_lines());
    }

    #[test]
    fn modules_are_packages_of_the_merged_lines() {
        let m = |name: &str, v: u64, c: u64| ModuleCoverage {
            module: name.into(),
            lines_valid: v,
            lines_covered: c,
        };
        // The fixture has one package: 55 statements, 8 missed (coverage-report.txt).
        let c = read(&fixture("9.2", "coverage.xml")).unwrap();
        assert_eq!(c.modules, vec![m("src.ledgerkit", 55, 47)]);
        // Each shard alone: line-rate 0.6 and 0.7091 of 55; merged: the whole run's 47.
        let (mut l, _) = read_hashed(&fixture("9.2", "coverage-shard-1.xml")).unwrap();
        assert_eq!(l.coverage().modules, vec![m("src.ledgerkit", 55, 33)]);
        let (two, _) = read_hashed(&fixture("9.2", "coverage-shard-2.xml")).unwrap();
        assert_eq!(two.coverage().modules, vec![m("src.ledgerkit", 55, 39)]);
        l.merge(two);
        assert_eq!(l.coverage().modules, vec![m("src.ledgerkit", 55, 47)]);

        // Two packages, merged by file and line; a file keeps the first file's package.
        let d = tempfile::tempdir().unwrap();
        let one = write(
            &d,
            r#"<coverage><packages>
            <package name="app"><classes>
              <class filename="app/a.py"><lines><line number="1" hits="1"/><line number="2" hits="0"/></lines></class>
              <class filename="app/b.py"><lines><line number="1" hits="0"/></lines></class>
            </classes></package>
            <package name="lib"><classes>
              <class filename="lib/c.py"><lines><line number="1" hits="1"/><line number="2" hits="1"/><line number="3" hits="0"/></lines></class>
            </classes></package>
            <package name=""><classes>
              <class filename="setup.py"><lines><line number="1" hits="0"/></lines></class>
            </classes></package>
            </packages></coverage>"#,
        );
        let (mut l, _) = read_hashed(&one).unwrap();
        let c = l.coverage();
        // app 1 of 3, lib 2 of 3: least covered first; setup.py only in the total (3 of 7).
        assert_eq!(c.modules, vec![m("app", 3, 1), m("lib", 3, 2)]);
        assert_eq!((c.lines_valid, c.lines_covered), (7, 3));
        let two = d.path().join("two.xml");
        std::fs::write(
            &two,
            r#"<coverage><packages><package name="other"><classes>
              <class filename="app/b.py"><lines><line number="1" hits="2"/><line number="5" hits="0"/></lines></class>
              <class filename="lib/c.py"><lines><line number="3" hits="1"/></lines></class>
            </classes></package></packages></coverage>"#,
        )
        .unwrap();
        l.merge(read_hashed(&two).unwrap().0);
        // app: a.py 1 of 2, b.py 1 of 2 (line 1 now hit, line 5 new); lib: 3 of 3.
        assert_eq!(l.coverage().modules, vec![m("app", 4, 2), m("lib", 3, 3)]);
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
