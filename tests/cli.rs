//! CLI behaviour: dry runs of every fixture through `promtool check metrics`, the exact
//! text of user-facing errors, and the documented exit codes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::{cli, promtool_check_metrics};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn run(args: &[&str]) -> Output {
    cli()
        .args(args)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .env_remove("JENKINS_URL")
        .env_remove("CIRCLECI")
        .env_remove("BUILDKITE")
        .env_remove("TF_BUILD")
        .output()
        .expect("run ptc-metrics")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmp_file(name: &str, content: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    std::fs::write(&p, content).unwrap();
    (d, p)
}

#[test]
fn dry_run_of_every_junit_fixture_passes_promtool() {
    let mut checked = 0;
    for v in ["pytest-9.2", "pytest-9.1"] {
        let dir = fixtures().join(v);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().to_string();
                n.starts_with("junit-") && n.ends_with(".xml")
            })
            .collect();
        files.sort();
        assert!(
            files.len() >= 10,
            "{v}: only {} JUnit fixtures",
            files.len()
        );
        for f in files {
            let f = f.to_string_lossy().to_string();
            let mut args = vec![
                "push",
                f.as_str(),
                "--dry-run",
                "--project",
                "sample",
                "--branch",
                "feature/x",
            ];
            // Pair each JUnit file with the size report of the same run where there is one.
            let json = f.replace("junit-", "size-report-").replace(".xml", ".json");
            let json = if f.ends_with("junit-xunit2.xml") {
                dir.join("size-report.json").to_string_lossy().to_string()
            } else {
                json
            };
            if Path::new(&json).exists() {
                args.push("--size-report");
                args.push(&json);
            }
            let cov = dir.join("coverage.xml").to_string_lossy().to_string();
            args.extend(["--coverage", cov.as_str(), "--per-test-slower-than", "0.5"]);
            let o = run(&args);
            assert_eq!(o.status.code(), Some(0), "{f}: {}", stderr(&o));
            let text = stdout(&o);
            assert!(text.contains("# TYPE pytest_tests gauge\n"), "{f}");
            assert!(text.contains("branch=\"feature/x\""), "{f}");
            promtool_check_metrics(&text);
            checked += 1;
        }
    }
    assert!(checked >= 20);
}

#[test]
fn dry_run_values_for_the_primary_fixture() {
    let d = fixtures().join("pytest-9.2");
    let o = run(&[
        "push",
        d.join("junit-xunit2.xml").to_str().unwrap(),
        "--size-report",
        d.join("size-report.json").to_str().unwrap(),
        "--dry-run",
        "--project",
        "shop",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = stdout(&o);
    // Hand-checked against fixtures/EXPECTED.md.
    for line in [
        "pytest_tests{job=\"pytest\",outcome=\"passed\",project=\"shop\",size=\"small\"} 42\n",
        "pytest_tests{job=\"pytest\",outcome=\"failed\",project=\"shop\",size=\"small\"} 15\n",
        "pytest_tests{job=\"pytest\",outcome=\"skipped\",project=\"shop\",size=\"unsized\"} 1\n",
        "pytest_timing_violations{job=\"pytest\",project=\"shop\",size=\"small\"} 3\n",
        "pytest_baseline_violations{job=\"pytest\",project=\"shop\",size=\"small\"} 1\n",
        "pytest_flaky_tests{job=\"pytest\",project=\"shop\",size=\"small\"} 1\n",
        "pytest_flaky_tests_total{job=\"pytest\",project=\"shop\",size=\"small\"} 1\n",
        "pytest_flaky_tests_total{job=\"pytest\",project=\"shop\",size=\"medium\"} 0\n",
        "pytest_flaky_tests_total{job=\"pytest\",project=\"shop\",size=\"large\"} 0\n",
        "pytest_flaky_tests_total{job=\"pytest\",project=\"shop\",size=\"xlarge\"} 0\n",
        "pytest_flaky_tests_total{job=\"pytest\",project=\"shop\",size=\"unsized\"} 0\n",
        "# TYPE pytest_flaky_tests_total counter\n",
        "pytest_runs_total{job=\"pytest\",project=\"shop\"} 1\n",
        "ci_test_failures_total{failure_type=\"timing_violation\",job=\"pytest\",project=\"shop\"} 4\n",
        "pytest_test_duration_seconds_bucket{job=\"pytest\",outcome=\"passed\",project=\"shop\",size=\"small\",le=\"+Inf\"} 42\n",
    ] {
        assert!(t.contains(line), "missing {line:?} in\n{t}");
    }
    assert!(!t.contains("test_coverage_percentage"));
    assert_eq!(
        stderr(&o),
        "dry run: 90 tests, 16 families; nothing pushed\n"
    );
}

#[test]
fn coverage_percentage_is_exact_not_the_rounded_line_rate() {
    let d = fixtures().join("pytest-9.2");
    let cov = std::fs::read_to_string(d.join("coverage.xml")).unwrap();
    let attr = |k: &str| -> f64 {
        let i = cov.find(&format!(" {k}=\"")).unwrap() + k.len() + 3;
        cov[i..].split('"').next().unwrap().parse().unwrap()
    };
    let expected = attr("lines-covered") / attr("lines-valid") * 100.0;
    let o = run(&[
        "push",
        d.join("junit-xunit2.xml").to_str().unwrap(),
        "--coverage",
        d.join("coverage.xml").to_str().unwrap(),
        "--dry-run",
    ]);
    let t = stdout(&o);
    let line = t
        .lines()
        .find(|l| l.starts_with("test_coverage_percentage{"))
        .unwrap();
    let got: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
}

/// pytest 9.2 JUnit alone: the `Category:` line of a TC006 failure sizes 1 of 6 tests. No
/// distribution from that sliver (it said 100 % small, which fires the band alerts); the
/// warning says why.
#[test]
fn unknown_sizes_are_explained_once() {
    let d = fixtures().join("pytest-9.2");
    let o = run(&[
        "push",
        d.join("junit-version-ranges.xml").to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stderr(&o),
        "warning: no size source: 5 of 6 tests have size \"unknown\", so no size distribution \
         is given (the 1 sized test does not describe the run). Have pytest write the plugin's report \
         (--test-size-report=json --test-size-report-file=size.json) and pass it with --size-report size.json\n\
         dry run: 6 tests, 15 families; nothing pushed\n"
    );
    let t = stdout(&o);
    assert!(!t.contains("pytest_test_size_distribution"), "{t}");
    assert!(t.contains("pytest_tests{job=\"pytest\",outcome=\"failed\",size=\"small\"} 1\n"));
    assert!(t.contains("pytest_tests{job=\"pytest\",outcome=\"passed\",size=\"unknown\"} 5\n"));
}

/// A size report (or a terminal log, or coverage) without JUnit is no run: before, it pushed
/// `pytest_runs_total` +1 with 0 tests and only warned that 89 entries matched no test.
#[test]
fn a_run_needs_a_junit_report() {
    let d = fixtures().join("pytest-9.2");
    let gateway = "http://127.0.0.1:9";
    for (file, what) in [
        ("size-report.json", "is a size report"),
        (
            "terminal-size-report-json-stdout.txt",
            "is a pytest terminal log",
        ),
        ("coverage.xml", "is a coverage report"),
    ] {
        let f = d.join(file);
        let f = f.to_str().unwrap();
        for delivery in [&["--dry-run"][..], &["--gateway", gateway][..]] {
            let mut args = vec!["push", f];
            args.extend(delivery);
            let o = run(&args);
            assert_eq!(o.status.code(), Some(2), "{file} {delivery:?}");
            assert_eq!(
                stderr(&o),
                format!(
                    "error: {f}: {what}, not JUnit XML: a run needs the JUnit XML report pytest \
                     writes with --junitxml; give it too\n"
                ),
                "{file} {delivery:?}"
            );
            assert!(stdout(&o).is_empty());
        }
    }
    // With --size-report beside it, the first report given is named.
    let json = d.join("size-report.json");
    let cov = d.join("coverage.xml");
    let o = run(&[
        "push",
        cov.to_str().unwrap(),
        "--size-report",
        json.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}: is a coverage report, not JUnit XML: a run needs the JUnit XML report \
             pytest writes with --junitxml; give it too\n",
            cov.display()
        )
    );
    // A real JUnit report with no test in it is a run (pytest stopped by a usage error).
    let o = run(&[
        "push",
        d.join("junit-multiple-size-markers.xml").to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).ends_with("dry run: 0 tests, 14 families; nothing pushed\n"),
        "{}",
        stderr(&o)
    );
}

/// gzip of `src` at `dst`.
fn gzip(src: &Path, dst: &Path) {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(
        std::fs::File::create(dst).unwrap(),
        flate2::Compression::default(),
    );
    z.write_all(&std::fs::read(src).unwrap()).unwrap();
    z.finish().unwrap();
}

/// METRICS.md §1: inputs with identical content are read once, with a warning. Read twice,
/// every test of the JUnit report looked rerun, and every passed one flaky (57, not 1).
#[test]
fn identical_inputs_are_read_once() {
    let fx = fixtures().join("pytest-9.2");
    let d = tempfile::tempdir().unwrap();
    let junit = d.path().join("junit.xml");
    std::fs::copy(fx.join("junit-xunit2.xml"), &junit).unwrap();
    let gz = d.path().join("junit.xml.gz");
    gzip(&junit, &gz);
    let link = d.path().join("latest.xml");
    std::os::unix::fs::symlink(&junit, &link).unwrap();
    let json = fx.join("size-report.json");
    let (j, s) = (junit.to_str().unwrap(), json.to_str().unwrap());
    let flaky = "pytest_flaky_tests{job=\"pytest\",size=\"small\"} 1\n";
    let passed = "pytest_tests{job=\"pytest\",outcome=\"passed\",size=\"small\"} 42\n";
    for (second, warning) in [
        (j.to_string(), format!("{j} is given twice: read once")),
        (
            gz.display().to_string(),
            format!("{} has the same content as {j}: read once", gz.display()),
        ),
        (
            link.display().to_string(),
            format!("{} has the same content as {j}: read once", link.display()),
        ),
    ] {
        let o = run(&["push", j, &second, "--size-report", s, "--dry-run"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let t = stdout(&o);
        assert!(t.contains(flaky) && t.contains(passed), "{second}:\n{t}");
        assert_eq!(
            stderr(&o),
            format!("warning: {warning}\ndry run: 90 tests, 16 families; nothing pushed\n"),
            "{second}"
        );
    }
    // A size report given twice (and not a second time through the JUnit list's order).
    let o = run(&["push", j, s, "--size-report", s, "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(flaky));
    assert_eq!(
        stderr(&o),
        format!("warning: {s} is given twice: read once\ndry run: 90 tests, 16 families; nothing pushed\n")
    );
    // Coverage given as the file and its gzip copy: read once, the same percentage.
    let cov = fx.join("coverage.xml");
    let cov_gz = d.path().join("coverage.xml.gz");
    gzip(&cov, &cov_gz);
    let o = run(&[
        "push",
        j,
        "--coverage",
        cov.to_str().unwrap(),
        "--coverage",
        cov_gz.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let want = format!(
        "test_coverage_percentage{{job=\"pytest\"}} {}\n",
        47.0 / 55.0 * 100.0
    );
    assert!(stdout(&o).contains(&want), "{}", stdout(&o));
    assert!(
        stderr(&o).starts_with(&format!(
            "warning: {} has the same content as {}: read once\n",
            cov_gz.display(),
            cov.display()
        )),
        "{}",
        stderr(&o)
    );
}

/// A real terminal log with the size report printed to stdout also holds the tests' own
/// output, which pytest prints as it is: NUL, BEL, ESC, DEL and the other C0 bytes. It was
/// refused as "a binary file"; the report is found by its content.
#[test]
fn a_terminal_log_with_control_bytes_is_read() {
    for v in ["pytest-9.2", "pytest-9.1"] {
        let d = fixtures().join(v);
        let log = d.join("terminal-control-bytes.txt");
        let bytes = std::fs::read(&log).unwrap();
        for b in [0x00, 0x07, 0x08, 0x0b, 0x0c, 0x1b, 0x0e, 0x1f, 0x7f] {
            assert!(bytes.contains(&b), "{v}: the log has no byte {b:#04x}");
        }
        let junit = d.join("junit-control-bytes.xml");
        for as_flag in [false, true] {
            let mut args = vec!["push", junit.to_str().unwrap()];
            if as_flag {
                args.push("--size-report");
            }
            args.extend([log.to_str().unwrap(), "--dry-run"]);
            let o = run(&args);
            assert_eq!(o.status.code(), Some(0), "{v}: {}", stderr(&o));
            // Every entry joined: no warning, no unknown size.
            assert_eq!(
                stderr(&o),
                "dry run: 4 tests, 16 families; nothing pushed\n",
                "{v}"
            );
            let t = stdout(&o);
            for line in [
                "pytest_tests{job=\"pytest\",outcome=\"passed\",size=\"small\"} 1\n",
                "pytest_tests{job=\"pytest\",outcome=\"failed\",size=\"small\"} 1\n",
                "pytest_tests{job=\"pytest\",outcome=\"passed\",size=\"medium\"} 1\n",
                "pytest_tests{job=\"pytest\",outcome=\"passed\",size=\"unsized\"} 1\n",
                "pytest_test_size_distribution{job=\"pytest\",size=\"small\"} 0.6666666666666666\n",
            ] {
                assert!(t.contains(line), "{v}: missing {line:?} in\n{t}");
            }
        }
    }
}

#[test]
fn malformed_xml_names_file_line_and_column() {
    let (_d, p) = tmp_file("r.xml", b"<?xml version=\"1.0\"?>\n<testsuites>\n<testsuite name=\"x\">\n<testcase name=\"a\" time=\"0.1\"></testsuite>\n");
    let o = run(&["push", p.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}:4:31: malformed XML: ill-formed document: expected `</testcase>`, but `</testsuite>` was found\n",
            p.display()
        )
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn truncated_xml() {
    let (_d, p) = tmp_file("r.xml", b"<testsuites><testsuite name=\"x\"><testcase name=\"a\" time=\"0.1\"/><testcase name=\"b\"");
    let o = run(&["push", p.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.starts_with(&format!("error: {}:1:", p.display())), "{e}");
    assert!(
        e.contains("malformed XML") || e.contains("unexpected end of file"),
        "{e}"
    );
}

#[test]
fn wrong_root_empty_and_binary_files() {
    let (_d, p) = tmp_file("r.xml", b"<?xml version=\"1.0\"?>\n<html><body/></html>\n");
    let o = run(&["push", p.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}: is an HTML page, not a report (an error page saved in its place?); expected a JUnit XML report\n",
            p.display()
        )
    );
    let (_d1, p) = tmp_file(
        "r.xml",
        b"<?xml version=\"1.0\"?>\n<checkstyle version=\"8\"></checkstyle>\n",
    );
    let o = run(&["push", p.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}: is XML but not a known report (its root is <checkstyle>, not <testsuites>, <testsuite> or <coverage>); expected a JUnit XML report\n",
            p.display()
        )
    );
    let (_d2, p) = tmp_file("empty.xml", b"");
    let o = run(&["push", p.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}: is empty; expected a JUnit XML report\n",
            p.display()
        )
    );
    let (_d3, p) = tmp_file("bin.xml", b"\x7fELF\x02\x01\x01\x00\x00\x00\x00");
    let o = run(&["push", p.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}: is a binary file, not text; expected a JUnit XML report\n",
            p.display()
        )
    );
    let o = run(&["push", "/nonexistent/r.xml", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "error: /nonexistent/r.xml: no such file\n");
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["push", dir.path().to_str().unwrap(), "--dry-run"]);
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}: is a directory: give the report file inside it\n",
            dir.path().display()
        )
    );
}

#[test]
fn json_size_report_with_wrong_types() {
    let d = fixtures().join("pytest-9.2");
    let (_t, p) = tmp_file("size.json", b"{\n  \"version\": \"1.2.2\",\n  \"tests\": [\n    {\"name\": \"a.py::t\", \"size\": \"small\", \"duration\": \"fast\", \"violations\": []}\n  ]\n}\n");
    let o = run(&[
        "push",
        d.join("junit-xunit2.xml").to_str().unwrap(),
        "--size-report",
        p.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}:4:59: not a pytest-test-categories size report: invalid type: string \"fast\", expected f64\n",
            p.display()
        )
    );
    let (_t2, p) = tmp_file("size.json", b"{\"tests\": [");
    let o = run(&[
        "push",
        d.join("junit-xunit2.xml").to_str().unwrap(),
        "--size-report",
        p.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}:1:11: truncated JSON size report: EOF while parsing a list\n",
            p.display()
        )
    );
}

#[test]
fn dtd_entities_are_not_expanded_and_no_file_is_read() {
    let doc = b"<?xml version=\"1.0\"?>\n<!DOCTYPE t [<!ENTITY x SYSTEM \"file:///etc/passwd\"><!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>\n<testsuites><testsuite name=\"s\"><testcase classname=\"c\" name=\"&x;\" time=\"1\"/></testsuite></testsuites>\n";
    let (_d, p) = tmp_file("r.xml", doc);
    let o = run(&["push", p.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert_eq!(
        e,
        format!(
            "error: {}:3:33: bad value of attribute name: unrecognized entity `x` (entities declared in a DTD are never expanded)\n",
            p.display()
        )
    );
    assert!(!e.contains("root:"), "{e}");
}

#[test]
fn usage_errors_exit_2() {
    let o = run(&["push", "r.xml"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: no destination: give --gateway URL (or PTC_METRICS_GATEWAY), --textfile PATH, or --dry-run to print the metrics\n"
    );
    let o = run(&["push", "r.xml", "--dry-run", "--label", "le=1"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: --label: \"le\" is a label ptc-metrics sets itself; choose another name\n"
    );
    let o = run(&["push", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("Exit status: 0 success"));
}

#[test]
fn flags_also_come_from_the_environment() {
    let d = fixtures().join("pytest-9.2");
    let o = cli()
        .args(["push", d.join("junit-xunit2.xml").to_str().unwrap()])
        .env("PTC_METRICS_DRY_RUN", "true")
        .env("PTC_METRICS_PROJECT", "from-env")
        .env("PTC_METRICS_SIZE_REPORT", d.join("size-report.json"))
        .env("PTC_METRICS_LABELS", "os=linux,python_version=3.12")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = stdout(&o);
    assert!(t.contains("pytest_runs_total{job=\"pytest\",os=\"linux\",project=\"from-env\",python_version=\"3.12\"} 1\n"), "{t}");
}

/// Switches from the environment take the usual spellings of CI systems: 1/0, yes/no, on/off,
/// true/false (any case); 0/no/off/false leave the switch off.
#[test]
fn switches_from_the_environment_take_1_yes_on_and_0_no_off() {
    let d = fixtures().join("pytest-9.2");
    let report = d.join("junit-xunit2.xml");
    let run_with = |var: &str, value: &str| {
        cli()
            .args(["push", report.to_str().unwrap(), "--project", "p"])
            .env(var, value)
            .env_remove("GITHUB_ACTIONS")
            .env_remove("PTC_METRICS_GATEWAY")
            .output()
            .unwrap()
    };
    for on in ["1", "yes", "on", "true", "TRUE", "Yes"] {
        let o = run_with("PTC_METRICS_DRY_RUN", on);
        assert_eq!(o.status.code(), Some(0), "{on}: {}", stderr(&o));
        assert!(stdout(&o).contains("pytest_runs_total{"), "{on}");
    }
    for off in ["0", "no", "off", "false"] {
        // Not a dry run, and no destination: the usage error says so.
        let o = run_with("PTC_METRICS_DRY_RUN", off);
        assert_eq!(o.status.code(), Some(2), "{off}: {}", stderr(&o));
        assert_eq!(stdout(&o), "", "{off}");
    }
    let o = run_with("PTC_METRICS_DRY_RUN", "maybe");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("tip: the value comes from the environment variable PTC_METRICS_DRY_RUN"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable() {
    let d = fixtures().join("pytest-9.2");
    let report = d.join("junit-xunit2.xml");
    let o = cli()
        .args(["push", report.to_str().unwrap(), "--dry-run"])
        .env("PTC_METRICS_RETRIES", "three")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: invalid value 'three' for '--retries <N>': invalid digit found in string\n\n  \
         tip: the value comes from the environment variable PTC_METRICS_RETRIES; fix or unset it\n\n\
         For more information, try '--help'.\n"
    );
    // The flag on the command line is the culprit: no word about the variable.
    let o = cli()
        .args(["push", report.to_str().unwrap(), "--dry-run", "--retries=x"])
        .env("PTC_METRICS_RETRIES", "three")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: invalid value 'x' for '--retries <N>': invalid digit found in string\n\n\
         For more information, try '--help'.\n"
    );
}

#[test]
fn buckets_separated_by_spaces_are_explained() {
    let d = fixtures().join("pytest-9.2");
    let report = d.join("junit-xunit2.xml");
    let o = run(&[
        "push",
        report.to_str().unwrap(),
        "--dry-run",
        "--buckets",
        "1 5 10",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: --buckets: \"1 5 10\" is not a number; give the bounds in seconds, separated by \
         commas: 0.1,1,10\n"
    );
}

#[test]
fn ci_environment_is_detected_and_flags_win() {
    let d = fixtures().join("pytest-9.2");
    let o = cli()
        .args([
            "push",
            d.join("junit-xunit2.xml").to_str().unwrap(),
            "--dry-run",
            "--branch",
            "override",
        ])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REPOSITORY", "acme/shop")
        .env("GITHUB_REF_NAME", "main")
        .env("GITHUB_HEAD_REF", "")
        .env("GITHUB_JOB", "tests")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("pytest_runs_total{branch=\"override\",ci_job=\"tests\",job=\"pytest\",project=\"acme/shop\"} 1\n"));
}

#[test]
fn delivery_failure_exit_3_and_soft_fail() {
    let d = fixtures().join("pytest-9.2");
    let port = support::free_port();
    let gw = format!("http://user:s3cret@127.0.0.1:{port}");
    let o = run(&[
        "push",
        d.join("junit-xunit2.xml").to_str().unwrap(),
        "--gateway",
        &gw,
        "--retries",
        "1",
        "--timeout",
        "2s",
    ]);
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert!(!e.contains("s3cret"), "{e}");
    assert!(
        e.contains(&format!(
            "error: GET http://user:***@127.0.0.1:{port}/metrics: cannot connect"
        )),
        "{e}"
    );
    assert!(e.contains("after 2 attempt(s); check the URL and that the server is up\nhint: add --soft-fail to keep the job green when the metrics cannot be delivered\n"), "{e}");
    assert!(!e.contains("use --soft-fail"), "{e}");
    let o = run(&[
        "push",
        // A run without a size source: its warning comes before the delivery's.
        d.join("junit-version-ranges.xml").to_str().unwrap(),
        "--gateway",
        &gw,
        "--retries",
        "0",
        "--soft-fail",
        "--bearer-token",
        "tok3n",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let e = stderr(&o);
    assert!(e.starts_with("warning: no size source"), "{e}");
    assert!(
        e.contains("warning: metrics not pushed (--soft-fail): GET http://user:***@127.0.0.1:"),
        "{e}"
    );
    assert!(!e.contains("s3cret") && !e.contains("tok3n"), "{e}");
    // Bad input is not a delivery failure: --soft-fail does not hide it.
    let o = run(&["push", "/nonexistent.xml", "--gateway", &gw, "--soft-fail"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn each_command_shows_only_its_flags_and_the_defaults() {
    let help = |cmd: &str| {
        let o = run(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{cmd} --help: {}", stderr(&o));
        // Help is wrapped to the terminal: compare with single spaces.
        stdout(&o).split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let series_flags = [
        "--buckets",
        "--per-test-slower-than",
        "--per-test-sample",
        "--max-per-test-series",
        "--max-coverage-files",
    ];
    let inspect = help("inspect");
    for flag in series_flags {
        assert!(
            !inspect.contains(flag),
            "inspect --help lists {flag}:\n{inspect}"
        );
    }
    assert!(inspect.contains("--near-limit-ratio <RATIO>"), "{inspect}");
    for cmd in ["push", "backfill"] {
        let h = help(cmd);
        for flag in series_flags {
            assert!(h.contains(flag), "{cmd} --help lacks {flag}:\n{h}");
        }
        assert!(
            h.contains("[default: 0.1,0.5,1,5,10,30,60,300,900]"),
            "{cmd} --help shows no --buckets default:\n{h}"
        );
    }
    // The default is the histogram the metrics use.
    let d = fixtures().join("pytest-9.2");
    let o = run(&[
        "push",
        d.join("junit-xunit2.xml").to_str().unwrap(),
        "--dry-run",
    ]);
    let out = stdout(&o);
    let le: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.starts_with("pytest_test_duration_seconds_bucket{")
                && l.contains("outcome=\"passed\"")
                && l.contains("size=\"unknown\"")
        })
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        le,
        ["0.1", "0.5", "1", "5", "10", "30", "60", "300", "900", "+Inf"]
    );
}

/// `inspect` on a terminal 200 columns wide (a pty made by `script`), with no `COLUMNS` in
/// the environment (shells do not export it): the report uses the 200 columns.
#[test]
fn inspect_asks_the_terminal_for_its_width() {
    let name = format!("test_{}", "x".repeat(120));
    let xml = format!(
        "<?xml version=\"1.0\"?><testsuites><testsuite name=\"pytest\" tests=\"1\" time=\"1.0\" \
         timestamp=\"2026-11-26T14:26:54+00:00\"><testcase classname=\"tests.test_long\" name=\"{name}\" \
         time=\"0.5\"/></testsuite></testsuites>"
    );
    let (_d, p) = tmp_file("long.xml", xml.as_bytes());
    let bin = env!("CARGO_BIN_EXE_ptc-metrics");
    let inspect = |size: &str, extra: &str| -> String {
        let cmd = format!(
            "stty {size}; exec '{bin}' inspect '{}' --color never {extra}",
            p.display()
        );
        let o = std::process::Command::new(support::require_binary("script", "bsdutils"))
            .args(["-qec", &cmd, "/dev/null"])
            .env_remove("COLUMNS")
            .env_remove("LINES")
            .env_remove("PTC_METRICS_WIDTH")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run script");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o).replace('\r', "")
    };
    let full = format!("tests.test_long::{name}");
    let wide = inspect("cols 200 rows 50", "");
    let line = wide
        .lines()
        .find(|l| l.contains("tests.test_long"))
        .unwrap();
    assert!(
        line.contains(&full),
        "not the terminal's 200 columns:\n{wide}"
    );
    assert!(line.chars().count() <= 200, "{line}");
    // --width wins over the terminal.
    let narrow = inspect("cols 200 rows 50", "--width 80");
    let line = narrow
        .lines()
        .find(|l| l.contains("tests.test_long"))
        .unwrap();
    assert!(
        !line.contains(&full) && line.chars().count() <= 80,
        "{narrow}"
    );
    // A narrow terminal: its width.
    let narrow = inspect("cols 70 rows 50", "");
    let line = narrow
        .lines()
        .find(|l| l.contains("tests.test_long"))
        .unwrap();
    assert!(
        line.chars().count() <= 70 && line.chars().count() > 60,
        "{line:?}"
    );
}

#[test]
fn a_gateway_url_that_is_not_the_base_url_is_refused_with_what_to_give() {
    let d = fixtures().join("pytest-9.2");
    let report = d.join("junit-xunit2.xml");
    for (cmd, gw, want) in [
        (
            "push",
            "http://host:9091/metrics",
            "error: --gateway: http://host:9091/metrics is the Pushgateway's scrape URL; give its base URL, \
             --gateway http://host:9091 (ptc-metrics adds /metrics/job/<job>/… itself)\n",
        ),
        (
            "delete",
            "http://host:9091/metrics/job/pytest",
            "error: --gateway: http://host:9091/metrics/job/pytest is a group's URL; give the Pushgateway's \
             base URL, --gateway http://host:9091 (the group comes from --job, --project, --branch and --label)\n",
        ),
        (
            "push",
            "gw:9091",
            "error: --gateway: \"gw:9091\" is not a URL; give http://HOST:PORT, e.g. http://gw:9091\n",
        ),
    ] {
        let mut args = vec![cmd, "--gateway", gw];
        if cmd == "push" {
            args.push(report.to_str().unwrap());
        }
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{cmd} --gateway {gw}: {}", stderr(&o));
        assert_eq!(stderr(&o), want);
    }
}
