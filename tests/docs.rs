//! The project's Markdown stands alone and renders: every table in every `*.md` of the
//! repository is well formed (a header, a delimiter row, the same number of cells in every row,
//! no blank line cutting a table in two), every relative link points at a file or directory of
//! the repository, and every `*.md` file a document names exists in the repository.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir`, skipping hidden entries, build output and installed packages.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn repo_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    walk(&root(), &mut v);
    v
}

fn markdown_files() -> Vec<PathBuf> {
    let v: Vec<PathBuf> = repo_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    assert!(v.len() >= 10, "only {} Markdown files found", v.len());
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// The lines of a Markdown text outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let marker = if t.starts_with("```") {
            Some("```")
        } else if t.starts_with("~~~") {
            Some("~~~")
        } else {
            None
        };
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(f), Some(m)) if f == m => fence = None,
            (None, None) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// The cells of a table row: split at `|` that are not escaped (`\|`), outer pipes dropped.
fn cells(row: &str) -> Vec<String> {
    let t = row.trim();
    let t = t.strip_prefix('|').unwrap_or(t);
    let t = if t.ends_with('|') && !t.ends_with("\\|") {
        &t[..t.len() - 1]
    } else {
        t
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

fn is_delimiter(row: &str) -> bool {
    let c = cells(row);
    !c.is_empty()
        && c.iter().all(|cell| {
            let inner = cell.strip_prefix(':').unwrap_or(cell);
            let inner = inner.strip_suffix(':').unwrap_or(inner);
            !inner.is_empty() && inner.chars().all(|ch| ch == '-')
        })
}

fn is_table_line(line: &str) -> bool {
    let indent = line.len() - line.trim_start().len();
    indent <= 3 && line.trim_start().starts_with('|')
}

/// What is wrong with the tables of one document (`name:line: problem`).
fn table_problems(name: &str, text: &str) -> Vec<String> {
    let lines = prose_lines(text);
    let mut problems = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !is_table_line(lines[i].1) {
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len()
            && is_table_line(lines[i].1)
            && lines[i].0 == lines[start].0 + (i - start)
        {
            i += 1;
        }
        let block = &lines[start..i];
        let (first_no, header) = block[0];
        match block.get(1) {
            Some((_, d)) if is_delimiter(d) => {
                let want = cells(header).len();
                if cells(d).len() != want {
                    problems.push(format!(
                        "{name}:{}: the delimiter row has {} cells, the header {want}",
                        block[1].0,
                        cells(d).len()
                    ));
                }
                for (no, row) in &block[2..] {
                    let n = cells(row).len();
                    if n != want {
                        problems.push(format!(
                            "{name}:{no}: {n} cells in a table whose header has {want} (an unescaped `|`? write `\\|`)"
                        ));
                    }
                }
            }
            _ => problems.push(format!(
                "{name}:{first_no}: rows starting with `|` without a header and delimiter row: they render as plain text"
            )),
        }
        // A blank line, then more rows: the table was cut in two.
        let mut j = i;
        while j < lines.len() && lines[j].1.trim().is_empty() && lines[j].0 == lines[j - 1].0 + 1 {
            j += 1;
        }
        if j > i && j < lines.len() && is_table_line(lines[j].1) && !is_delimiter_pair(&lines, j) {
            problems.push(format!(
                "{name}:{}: a blank line splits this table; the rows after it render as plain text",
                lines[i].0
            ));
            // Skip the orphaned rows: they are reported once, here.
            i = j;
            while i < lines.len() && is_table_line(lines[i].1) {
                i += 1;
            }
        }
    }
    problems
}

/// True when the rows from `j` start a table of their own (header + delimiter).
fn is_delimiter_pair(lines: &[(usize, &str)], j: usize) -> bool {
    lines
        .get(j + 1)
        .is_some_and(|(no, l)| *no == lines[j].0 + 1 && is_table_line(l) && is_delimiter(l))
}

#[test]
fn every_markdown_table_is_well_formed() {
    let mut problems = Vec::new();
    for p in markdown_files() {
        let text = std::fs::read_to_string(&p).unwrap();
        problems.extend(table_problems(&rel(&p), &text));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_table_check_finds_what_breaks_rendering() {
    let good = "| a | b |\n|---|:--:|\n| `x\\|y` | 2 |\n\ntext\n\n| c |\n|---|\n| 1 |\n";
    assert_eq!(table_problems("t.md", good), Vec::<String>::new());
    let cut = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n";
    assert_eq!(
        table_problems("t.md", cut),
        vec!["t.md:4: a blank line splits this table; the rows after it render as plain text"]
    );
    let cells = "| a | b |\n|---|---|\n| 1 | x|y |\n";
    assert_eq!(
        table_problems("t.md", cells),
        vec!["t.md:3: 3 cells in a table whose header has 2 (an unescaped `|`? write `\\|`)"]
    );
    let headless = "text\n\n| 1 | 2 |\n| 3 | 4 |\n";
    assert_eq!(
        table_problems("t.md", headless),
        vec!["t.md:3: rows starting with `|` without a header and delimiter row: they render as plain text"]
    );
    let fenced = "```\n| not | a table\n```\n";
    assert!(table_problems("t.md", fenced).is_empty());
}

/// Relative link targets of a document: `[text](target)` and `[ref]: target`, outside code.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (no, line) in prose_lines(text) {
        // Drop code spans: a link inside backticks is not a link.
        let mut plain = String::new();
        for (k, part) in line.split('`').enumerate() {
            if k % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = after[..end].split_whitespace().next().unwrap_or("");
            out.push((no, target.to_string()));
            rest = &after[end..];
        }
        let t = plain.trim_start();
        if t.starts_with('[') {
            if let Some(i) = t.find("]: ") {
                out.push((
                    no,
                    t[i + 3..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string(),
                ));
            }
        }
    }
    out.retain(|(_, t)| {
        !(t.is_empty() || t.starts_with('#') || t.contains("://") || t.starts_with("mailto:"))
    });
    out
}

#[test]
fn every_relative_link_points_into_the_repository() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for p in markdown_files() {
        let text = std::fs::read_to_string(&p).unwrap();
        for (no, target) in link_targets(&text) {
            let path = target.split(['#', '?']).next().unwrap_or("");
            let path = path.trim_start_matches('<').trim_end_matches('>');
            let resolved = if let Some(abs) = path.strip_prefix('/') {
                root().join(abs)
            } else {
                p.parent().unwrap().join(path)
            };
            checked += 1;
            if !resolved.exists() {
                problems.push(format!(
                    "{}:{no}: link to {target}, which is not in the repository",
                    rel(&p)
                ));
            }
        }
    }
    assert!(checked >= 10, "only {checked} relative links found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Names of `*.md` files a document mentions (`docs/backfill.md`, `METRICS.md`), not in URLs.
fn md_names(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (no, line) in text.lines().enumerate() {
        for word in line.split(|c: char| c.is_whitespace() || "`()[]<>\"',;*".contains(c)) {
            if word.contains("://") {
                continue;
            }
            let w = word.trim_end_matches(['.', ':', '!', '?']);
            let w = w.split('#').next().unwrap_or("");
            let stem_ok = w.strip_suffix(".md").is_some_and(|s| {
                !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || "_-./".contains(c))
            });
            if stem_ok {
                out.push((no + 1, w.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_markdown_file_a_document_names_exists() {
    let files = repo_files();
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    for p in markdown_files() {
        let text = std::fs::read_to_string(&p).unwrap();
        for (no, name) in md_names(&text) {
            checked += 1;
            let found = if name.contains('/') {
                // A path: relative to the document, or to the repository's root.
                p.parent().unwrap().join(&name).exists()
                    || root().join(name.trim_start_matches('/')).exists()
            } else {
                names.contains(&name)
            };
            if !found {
                problems.push(format!(
                    "{}:{no}: names {name}, which is not in the repository (the project must stand alone)",
                    rel(&p)
                ));
            }
        }
    }
    assert!(checked >= 20, "only {checked} mentions of .md files found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn md_names_and_links_are_found() {
    let text = "See docs/backfill.md and (METRICS.md §3), `PROTOCOLS.md`.\n\
                [x](../a.md#top) [y](https://e.org/b.md) [z](#here)\n[ref]: c/d.md\n";
    let names: Vec<String> = md_names(text).into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        names,
        vec![
            "docs/backfill.md",
            "METRICS.md",
            "PROTOCOLS.md",
            "../a.md",
            "c/d.md"
        ]
    );
    let links: Vec<String> = link_targets(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(links, vec!["../a.md#top", "c/d.md"]);
}

#[test]
fn the_readme_says_how_to_install_before_its_first_example() {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let install = text
        .find("cargo install --locked --path .")
        .expect("README.md gives the install command `cargo install --locked --path .`");
    assert!(
        text.contains("~/.cargo/bin"),
        "README.md says where the binary lands (~/.cargo/bin)"
    );
    let first_use = text
        .lines()
        .scan(0, |pos, l| {
            let at = *pos;
            *pos += l.len() + 1;
            Some((at, l))
        })
        .find(|(_, l)| {
            let t = l.trim_start();
            t.starts_with("ptc-metrics ") || t.contains("run: ptc-metrics ")
        })
        .map(|(at, _)| at)
        .expect("README.md has examples");
    assert!(
        install < first_use,
        "README.md: the install command comes after the first example that runs ptc-metrics"
    );
}
