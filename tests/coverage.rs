//! `--coverage coverage.xml` on `push`: `test_coverage_percentage` and `uncovered_lines{file}`
//! (METRICS.md §3) against coverage.py's own numbers for the same data
//! (`fixtures/pytest-9.x/coverage-report.txt`, `coverage report --show-missing`), the
//! `--max-coverage-files` cap, and the errors on bad coverage input.

mod support;

use std::process::Output;

use support::{cli, coverage_py, fixture, promtool_check_metrics};

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
    }
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
         dry run: 90 tests, 17 families; nothing pushed\n"
    );
    // The percentage still counts every file.
    assert!((series(&t, "test_coverage_percentage")[0].1 - 4700.0 / 55.0).abs() < 1e-9);
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
