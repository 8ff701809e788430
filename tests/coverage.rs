//! `--coverage coverage.xml` on `push`: `test_coverage_percentage`, `uncovered_lines{file}` and
//! `test_module_coverage_percentage{module}` (METRICS.md §3) against coverage.py's own numbers for the same data
//! (`fixtures/pytest-9.x/coverage-report.txt`, `coverage report --show-missing`), the
//! `--max-coverage-files` cap, and the errors on bad coverage input.

mod support;

use std::process::Output;

use support::{cli, coverage_py, coverage_py_file, fixture, promtool_check_metrics};

fn dry_run(version: &str, coverage: &str, extra: &[&str]) -> Output {
    cli()
        .args([
            "push",
            &fixture(version, "junit-xunit2.xml"),
            "--coverage",
            coverage,
        ])
        .args(["--size-report", &fixture(version, "size-report.json")])
        .args(["--dry-run", "--no-ci-detect"])
        .args(extra)
        .output()
        .unwrap()
}

fn series(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .map(|l| {
            let (head, v) = l.rsplit_once(' ').unwrap();
            (head.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn coverage_series_agree_with_coverage_py() {
    for v in ["9.2", "9.1"] {
        let (files, (stmts, miss)) = coverage_py(v);
        let o = dry_run(v, &fixture(v, "coverage.xml"), &[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let t = String::from_utf8(o.stdout).unwrap();
        promtool_check_metrics(&t);
        // Lines only: (55 - 8) / 55 = 85.45 %. coverage.py's TOTAL of 85.33 % also counts
        // branches, and the XML's line-rate is rounded to 0.8545.
        let pct = series(&t, "test_coverage_percentage");
        assert_eq!(pct.len(), 1);
        let want = (stmts - miss) as f64 * 100.0 / stmts as f64;
        assert!(
            (pct[0].1 - want).abs() < 1e-9,
            "{v}: {} vs {want}",
            pct[0].1
        );
        let mut got: Vec<(String, f64)> = series(&t, "uncovered_lines");
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want: Vec<(String, f64)> = files
            .iter()
            .filter(|f| f.2 > 0)
            .map(|(f, _, m)| {
                (
                    format!("uncovered_lines{{file=\"{f}\",job=\"pytest\"}}"),
                    *m as f64,
                )
            })
            .collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, want, "{v}");
        // The fixture's one <package name="src.ledgerkit"> holds all three files: 47 of 55.
        assert_eq!(
            modules(&t),
            [("src.ledgerkit".to_string(), round9(4700.0 / 55.0))],
            "{v}"
        );
    }
}

/// `test_module_coverage_percentage` as `(module, value)`, values rounded to 1e-9.
fn modules(text: &str) -> Vec<(String, f64)> {
    series(text, "test_module_coverage_percentage")
        .into_iter()
        .map(|(head, v)| {
            let m = head
                .split("module=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap()
                .to_string();
            (m, (v * 1e9).round() / 1e9)
        })
        .collect()
}

fn round9(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// A run split over two jobs, each with its own coverage.xml: merged like `coverage combine`
/// (METRICS.md §3), a line is covered when either shard covers it. coverage.py's own
/// combined report of the same two shards is the oracle (`coverage-shards-report.txt`).
/// Summed, both shards' 55 statements counted twice: 72 / 110 = 65.45 % instead of 85.45 %.
#[test]
fn coverage_of_split_jobs_is_merged_like_coverage_combine() {
    for v in ["9.2", "9.1"] {
        let (files, (stmts, miss)) = coverage_py_file(v, "coverage-shards-report.txt");
        // The shards alone are not the combined report (else this test could not fail).
        for (shard, covered) in [
            ("coverage-shard-1.xml", 33.0),
            ("coverage-shard-2.xml", 39.0),
        ] {
            let o = dry_run(v, &fixture(v, shard), &[]);
            let t = String::from_utf8(o.stdout).unwrap();
            let pct = series(&t, "test_coverage_percentage")[0].1;
            assert!(
                (pct - covered * 100.0 / 55.0).abs() < 1e-9,
                "{v} {shard}: {pct}"
            );
            assert_eq!(
                modules(&t),
                [("src.ledgerkit".to_string(), round9(covered * 100.0 / 55.0))],
                "{v} {shard}"
            );
        }
        let shard2 = fixture(v, "coverage-shard-2.xml");
        let o = dry_run(
            v,
            &fixture(v, "coverage-shard-1.xml"),
            &["--coverage", &shard2],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let t = String::from_utf8(o.stdout).unwrap();
        promtool_check_metrics(&t);
        assert_eq!((stmts, miss), (55, 8), "{v}: the combined report changed");
        let pct = series(&t, "test_coverage_percentage");
        let want = (stmts - miss) as f64 * 100.0 / stmts as f64;
        assert!(
            (pct[0].1 - want).abs() < 1e-9,
            "{v}: {} vs {want}",
            pct[0].1
        );
        let mut got = series(&t, "uncovered_lines");
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want: Vec<(String, f64)> = files
            .iter()
            .filter(|f| f.2 > 0)
            .map(|(f, _, m)| {
                (
                    format!("uncovered_lines{{file=\"{f}\",job=\"pytest\"}}"),
                    *m as f64,
                )
            })
            .collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, want, "{v}");
        // Per module from the same merged lines: 47 of 55, not 33 + 39 of 110.
        assert_eq!(
            modules(&t),
            [("src.ledgerkit".to_string(), round9(4700.0 / 55.0))],
            "{v}"
        );
    }
    // A file that only counts lines on its root cannot be merged line by line.
    let d = tempfile::tempdir().unwrap();
    let bare = d.path().join("bare.xml");
    std::fs::write(
        &bare,
        r#"<coverage lines-valid="55" lines-covered="40"></coverage>"#,
    )
    .unwrap();
    let o = dry_run(
        "9.2",
        &fixture("9.2", "coverage-shard-1.xml"),
        &["--coverage", bare.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "error: {}: counts lines on its root but has no <line> elements, so it cannot be \
             merged with the other coverage files (line by line, as coverage combine does)\n",
            bare.display()
        )
    );
    // Alone, its root counts are its coverage.
    let o = dry_run("9.2", bare.to_str().unwrap(), &[]);
    assert_eq!(o.status.code(), Some(0));
    let t = String::from_utf8(o.stdout).unwrap();
    assert!((series(&t, "test_coverage_percentage")[0].1 - 4000.0 / 55.0).abs() < 1e-9);
    // No <line> says which file or package: no module series.
    assert!(modules(&t).is_empty());
}

#[test]
fn max_coverage_files_keeps_the_largest() {
    let o = dry_run(
        "9.2",
        &fixture("9.2", "coverage.xml"),
        &["--max-coverage-files", "1"],
    );
    assert_eq!(o.status.code(), Some(0));
    let t = String::from_utf8(o.stdout).unwrap();
    // money.py misses 5 lines, journal.py 3 (coverage-report.txt).
    assert_eq!(
        series(&t, "uncovered_lines"),
        [(
            "uncovered_lines{file=\"src/ledgerkit/money.py\",job=\"pytest\"}".to_string(),
            5.0
        )]
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "warning: 2 files have uncovered lines; keeping the 1 with the most (--max-coverage-files)\n\
         dry run: 90 tests, 19 families; nothing pushed\n"
    );
    // The percentage still counts every file.
    assert!((series(&t, "test_coverage_percentage")[0].1 - 4700.0 / 55.0).abs() < 1e-9);
}

/// Three packages; `--max-coverage-files 2` keeps the two least covered, merged over two
/// files first.
#[test]
fn max_coverage_files_keeps_the_least_covered_modules() {
    let d = tempfile::tempdir().unwrap();
    let class = |file: &str, hits: &[u64]| {
        let lines: String = hits
            .iter()
            .enumerate()
            .map(|(i, h)| format!(r#"<line number="{}" hits="{h}"/>"#, i + 1))
            .collect();
        format!(r#"<class filename="{file}"><lines>{lines}</lines></class>"#)
    };
    let doc = |packages: &[(&str, String)]| {
        let p: String = packages
            .iter()
            .map(|(n, c)| format!(r#"<package name="{n}"><classes>{c}</classes></package>"#))
            .collect();
        format!("<coverage><packages>{p}</packages></coverage>")
    };
    let one = d.path().join("one.xml");
    std::fs::write(
        &one,
        doc(&[
            ("api", class("api/v.py", &[1, 1, 1, 0])),
            ("core", class("core/m.py", &[1, 0, 0, 0])),
            ("util", class("util/s.py", &[1, 1, 0, 0])),
        ]),
    )
    .unwrap();
    let two = d.path().join("two.xml");
    // Covers core/m.py line 2 and util/s.py lines 3 and 4.
    std::fs::write(
        &two,
        doc(&[
            ("core", class("core/m.py", &[0, 1, 0, 0])),
            ("util", class("util/s.py", &[0, 0, 1, 1])),
        ]),
    )
    .unwrap();
    let o = dry_run(
        "9.2",
        one.to_str().unwrap(),
        &["--coverage", two.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0));
    let t = String::from_utf8(o.stdout).unwrap();
    promtool_check_metrics(&t);
    // Merged: api 3/4, core 2/4, util 4/4 (total 9/12).
    let mut got = modules(&t);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("api".to_string(), 75.0),
            ("core".to_string(), 50.0),
            ("util".to_string(), 100.0)
        ]
    );
    assert!((series(&t, "test_coverage_percentage")[0].1 - 75.0).abs() < 1e-9);
    let o = dry_run(
        "9.2",
        one.to_str().unwrap(),
        &[
            "--coverage",
            two.to_str().unwrap(),
            "--max-coverage-files",
            "2",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let t = String::from_utf8(o.stdout).unwrap();
    let mut got = modules(&t);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, [("api".to_string(), 75.0), ("core".to_string(), 50.0)]);
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "warning: 3 modules have coverage; keeping the 2 least covered (--max-coverage-files)\n\
         dry run: 90 tests, 19 families; nothing pushed\n"
    );
}

#[test]
fn bad_coverage_input_is_a_clear_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let cases: [(&str, &str); 3] = [
        (
            "<coverage lines-valid=\"55\" lines-covered=\"47\"><packages><package>",
            ":1:66: unexpected end of file (the report is truncated?)",
        ),
        (
            "<coverage lines-valid=\"55\" lines-covered=\"all\"></coverage>",
            ":1:1: lines-covered=\"all\" is not a whole number",
        ),
        (
            "{\"meta\": {\"version\": \"7.17.5\"}, \"totals\": {}}",
            ": is JSON; expected a Cobertura coverage.xml",
        ),
    ];
    for (k, (content, tail)) in cases.iter().enumerate() {
        let p = d.path().join(format!("cov{k}.xml"));
        std::fs::write(&p, content).unwrap();
        let ps = p.to_string_lossy().into_owned();
        let o = dry_run("9.2", &ps, &[]);
        assert_eq!(o.status.code(), Some(2), "{content}");
        assert_eq!(
            String::from_utf8_lossy(&o.stderr),
            format!("error: {ps}{tail}\n"),
            "{content}"
        );
        assert!(o.stdout.is_empty());
    }
}
