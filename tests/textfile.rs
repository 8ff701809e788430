//! `push --textfile PATH`: the node_exporter textfile-collector sink, end to end.
//!
//! Checked: every file written passes real `promtool check metrics`; cumulative families
//! continue from the previous file (runs, tests, failures, timing, the histogram) while
//! per-run gauges do not; a process killed mid-write (SIGXFSZ from a file-size limit, a real
//! crash inside `write(2)`) leaves the old file byte for byte; write failures exit 3 with a
//! message naming the file and what to do, and `--soft-fail` turns them into warnings; a file
//! that is not ours is never overwritten; `--textfile` works alone and next to `--gateway`
//! (each continues from its own previous values).
//!
//! Expected counts come from fixtures/EXPECTED.md (primary run: small passed 42, failed
//! 15; 18 failed = 14 assertion + 4 timing; reruns run: small passed 43).

mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::{cli, fixture, promtool_check_metrics};

/// The primary run of pytest 9.2 with its size report.
fn primary() -> Vec<String> {
    vec![
        fixture("9.2", "junit-xunit2.xml"),
        "--size-report".into(),
        fixture("9.2", "size-report.json"),
    ]
}

fn push(inputs: &[String], extra: &[&str]) -> Output {
    let mut c = cli();
    c.arg("push")
        .args(inputs)
        .args(["--no-ci-detect", "--project", "shop"])
        .args(extra)
        .env_remove("PTC_METRICS_GATEWAY")
        .env_remove("PTC_METRICS_TEXTFILE");
    c.output().expect("run ptc-metrics")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The value of the series `series` (name and labels exactly as written).
fn value(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.strip_prefix(series).is_some_and(|r| r.starts_with(' ')))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

const SMALL_PASSED: &str = r#"{job="pytest",outcome="passed",project="shop",size="small"}"#;
const SHOP: &str = r#"{job="pytest",project="shop"}"#;

fn files_in(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn target(d: &tempfile::TempDir) -> (PathBuf, String) {
    let p = d.path().join("pytest.prom");
    let s = p.to_string_lossy().into_owned();
    (p, s)
}

#[test]
fn cumulative_families_continue_from_the_previous_file() {
    let d = tempfile::tempdir().unwrap();
    let (p, ps) = target(&d);
    let o = push(&primary(), &["--textfile", &ps]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!("wrote 90 tests (16 families) to {ps}\n")
    );
    let first = read(&p);
    promtool_check_metrics(&first);
    assert_eq!(value(&first, &format!("pytest_runs_total{SHOP}")), 1.0);
    assert_eq!(
        value(&first, &format!("pytest_tests_total{SMALL_PASSED}")),
        42.0
    );
    assert_eq!(value(&first, &format!("pytest_tests{SMALL_PASSED}")), 42.0);
    let timing =
        r#"ci_test_failures_total{failure_type="timing_violation",job="pytest",project="shop"}"#;
    assert_eq!(value(&first, timing), 4.0);
    let flaky = r#"pytest_flaky_tests_total{job="pytest",project="shop",size="small"}"#;
    assert_eq!(value(&first, flaky), 1.0);
    let hist_count = format!("pytest_test_duration_seconds_count{SMALL_PASSED}");
    let hist_sum = format!("pytest_test_duration_seconds_sum{SMALL_PASSED}");
    let inf = r#"pytest_test_duration_seconds_bucket{job="pytest",outcome="passed",project="shop",size="small",le="+Inf"}"#;
    assert_eq!(value(&first, &hist_count), 42.0);
    assert_eq!(value(&first, inf), 42.0);
    let sum1 = value(&first, &hist_sum);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o644
    );

    let o = push(&primary(), &["--textfile", &ps]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let second = read(&p);
    promtool_check_metrics(&second);
    assert_eq!(value(&second, &format!("pytest_runs_total{SHOP}")), 2.0);
    assert_eq!(
        value(&second, &format!("pytest_tests_total{SMALL_PASSED}")),
        84.0
    );
    assert_eq!(value(&second, timing), 8.0);
    assert_eq!(value(&second, flaky), 2.0);
    assert_eq!(
        value(
            &second,
            r#"pytest_timing_violations_total{job="pytest",project="shop",size="small"}"#
        ),
        6.0
    );
    assert_eq!(value(&second, &hist_count), 84.0);
    assert_eq!(value(&second, inf), 84.0);
    assert!((value(&second, &hist_sum) - 2.0 * sum1).abs() < 1e-9);
    // Per-run gauges are this run's.
    assert_eq!(value(&second, &format!("pytest_tests{SMALL_PASSED}")), 42.0);

    // Another run of the suite: the reruns run passes 43 small tests.
    let reruns = vec![
        fixture("9.2", "junit-reruns.xml"),
        "--size-report".into(),
        fixture("9.2", "size-report-reruns.json"),
    ];
    let o = push(&reruns, &["--textfile", &ps]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let third = read(&p);
    promtool_check_metrics(&third);
    assert_eq!(value(&third, &format!("pytest_runs_total{SHOP}")), 3.0);
    assert_eq!(
        value(&third, &format!("pytest_tests_total{SMALL_PASSED}")),
        127.0
    );
    assert_eq!(value(&third, &format!("pytest_tests{SMALL_PASSED}")), 43.0);
    // EXPECTED.md "Reruns run": 2 flaky small tests.
    assert_eq!(value(&third, flaky), 4.0);
    // Nothing but the target and the (hidden, not *.prom) lock is left in the directory.
    assert_eq!(files_in(d.path()), [".pytest.prom.lock", "pytest.prom"]);

    // --no-accumulate: this run alone.
    let o = push(&primary(), &["--textfile", &ps, "--no-accumulate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(value(&read(&p), &format!("pytest_runs_total{SHOP}")), 1.0);
}

#[test]
fn the_file_passes_promtool_with_coverage_and_per_test_series() {
    let d = tempfile::tempdir().unwrap();
    let (p, ps) = target(&d);
    let mut inputs = primary();
    inputs.extend(["--coverage".into(), fixture("9.2", "coverage.xml")]);
    for _ in 0..2 {
        let o = push(
            &inputs,
            &[
                "--textfile",
                &ps,
                "--per-test-slower-than",
                "0",
                "--label",
                "os=linux",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        promtool_check_metrics(&read(&p));
    }
    let t = read(&p);
    assert!(t.contains("test_coverage_percentage{"));
    assert_eq!(
        value(
            &t,
            r#"pytest_runs_total{job="pytest",os="linux",project="shop"}"#
        ),
        2.0
    );
    // No sample carries a timestamp: the textfile collector refuses those.
    for l in t.lines().filter(|l| !l.starts_with('#')) {
        assert_eq!(
            l.rsplit('}').next().unwrap().trim().split(' ').count(),
            1,
            "{l}"
        );
    }
}

#[test]
fn a_crash_mid_write_leaves_the_old_file_whole() {
    let d = tempfile::tempdir().unwrap();
    let (p, ps) = target(&d);
    let o = push(&primary(), &["--textfile", &ps]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let old = std::fs::read(&p).unwrap();
    assert!(old.len() > 8192);

    // The next write is far larger than 4 KiB (90 per-test series on top), and the child may
    // write at most 4 KiB (8 blocks of 512 bytes) to any file: the kernel kills it with
    // SIGXFSZ inside write(2), half-way through the temporary file.
    let mut c = std::process::Command::new("/bin/sh");
    c.args(["-c", "ulimit -f 8 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_ptc-metrics"))
        .arg("push")
        .args(primary())
        .args([
            "--no-ci-detect",
            "--project",
            "shop",
            "--textfile",
            &ps,
            "--per-test-slower-than",
            "0",
        ]);
    let o = c.output().unwrap();
    assert_eq!(
        o.status.signal(),
        Some(25),
        "killed by SIGXFSZ: {:?} {}",
        o.status,
        stderr(&o)
    );
    // The target is the old file, byte for byte; the partial temporary file is beside it,
    // hidden and not *.prom, so node_exporter ignores it.
    assert_eq!(std::fs::read(&p).unwrap(), old);
    let names = files_in(d.path());
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names.contains(&".pytest.prom.lock".to_string()),
        "{names:?}"
    );
    let temp = names.iter().find(|n| n.ends_with(".tmp")).unwrap();
    assert!(temp.starts_with(".pytest.prom."), "{temp}");
    let partial = std::fs::read(d.path().join(temp)).unwrap();
    assert_eq!(partial.len(), 4096, "cut off at the limit");
    assert!(partial.starts_with(b"# HELP ci_test_failures_total "));

    // The next run continues from the old file's totals, not from the partial one.
    let o = push(&primary(), &["--textfile", &ps]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = read(&p);
    promtool_check_metrics(&t);
    assert_eq!(value(&t, &format!("pytest_runs_total{SHOP}")), 2.0);
}

#[test]
fn write_failures_exit_3_and_name_the_file() {
    let d = tempfile::tempdir().unwrap();
    // The target is a directory: the temporary file is written, the rename fails.
    let dir_target = d.path().join("taken.prom");
    std::fs::create_dir(&dir_target).unwrap();
    let dt = dir_target.to_string_lossy().into_owned();
    let o = push(&primary(), &["--textfile", &dt, "--no-accumulate"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.starts_with(&format!(
            "error: textfile {dt}: cannot rename over the target the temporary file {}/.taken.prom.",
            d.path().display()
        )),
        "{e}"
    );
    assert!(
        e.ends_with(
            ".tmp: Is a directory (os error 21); the previous file is unchanged. The target is a \
             directory: give --textfile a file name ending in .prom\n"
        ),
        "{e}"
    );
    assert_eq!(files_in(d.path()), ["taken.prom"], "no temporary file left");
    // Reading it as the previous file fails first, with its own message.
    let o = push(&primary(), &["--textfile", &dt]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).starts_with(&format!(
            "error: textfile {dt}: cannot read the previous file: Is a directory (os error 21); nothing was written"
        )),
        "{}",
        stderr(&o)
    );
    // --soft-fail: a warning, exit 0.
    let o = push(&primary(), &["--textfile", &dt, "--soft-fail"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with(&format!(
            "warning: metrics not written (--soft-fail): textfile {dt}: cannot read the previous file"
        )),
        "{}",
        stderr(&o)
    );
    // A directory that does not exist.
    let missing = d.path().join("nope").join("pytest.prom");
    let ms = missing.to_string_lossy().into_owned();
    let o = push(&primary(), &["--textfile", &ms]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).ends_with(&format!(
            ": no such file or directory; the previous file is unchanged. Does the directory {} \
             exist? Create it, or point --textfile into node_exporter's --collector.textfile.directory\n",
            d.path().join("nope").display()
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_file_that_is_not_ours_is_never_overwritten() {
    let d = tempfile::tempdir().unwrap();
    let (p, ps) = target(&d);
    let theirs = "# HELP backup_last_success_timestamp_seconds Last backup.\n\
                  # TYPE backup_last_success_timestamp_seconds gauge\n\
                  backup_last_success_timestamp_seconds 1.7e9\n";
    std::fs::write(&p, theirs).unwrap();
    let o = push(&primary(), &["--textfile", &ps]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o),
        format!(
            "error: textfile {ps}: holds metrics ptc-metrics does not write (line 1: \
             backup_last_success_timestamp_seconds); nothing was written. Give --textfile a file \
             of its own (one per group), e.g. pytest.prom\n"
        )
    );
    assert_eq!(read(&p), theirs);
}

#[test]
fn a_damaged_previous_file_is_reported_not_guessed() {
    let d = tempfile::tempdir().unwrap();
    let (p, ps) = target(&d);
    let damaged = "pytest_runs_total{job=\"pytest\",project=\"shop\"} 2\npytest_tests_total{job=\"pytest\" 3\n";
    std::fs::write(&p, damaged).unwrap();
    let o = push(&primary(), &["--textfile", &ps]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o),
        format!(
            "error: textfile {ps}:2: cannot read the previous values: pytest_tests_total: \
             expected , or }} after label job; nothing was written. Fix or delete the file, or \
             write this run alone with --no-accumulate\n"
        )
    );
    assert_eq!(read(&p), damaged);
    let o = push(&primary(), &["--textfile", &ps, "--no-accumulate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(value(&read(&p), &format!("pytest_runs_total{SHOP}")), 1.0);
}

#[test]
fn another_group_in_the_file_is_replaced_with_a_warning() {
    let d = tempfile::tempdir().unwrap();
    let (p, ps) = target(&d);
    assert_eq!(
        push(&primary(), &["--textfile", &ps]).status.code(),
        Some(0)
    );
    let mut c = cli();
    c.arg("push")
        .args(primary())
        .args(["--no-ci-detect", "--project", "web", "--textfile", &ps]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "warning: textfile {ps} held series of another group ({{job=\"pytest\",project=\"shop\"}}); \
             this write replaces them, and this group's totals start from this run. Use one \
             --textfile per group\nwrote 90 tests (16 families) to {ps}\n"
        )
    );
    let t = read(&p);
    assert_eq!(
        value(&t, r#"pytest_runs_total{job="pytest",project="web"}"#),
        1.0
    );
    assert!(!t.contains("project=\"shop\""));
}

#[test]
fn changed_buckets_restart_only_the_histogram() {
    let d = tempfile::tempdir().unwrap();
    let (p, ps) = target(&d);
    assert_eq!(
        push(&primary(), &["--textfile", &ps]).status.code(),
        Some(0)
    );
    let o = push(&primary(), &["--textfile", &ps, "--buckets", "1,10"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "but this run uses [1.0, 10.0]; the duration histogram starts again from this run"
        ),
        "{}",
        stderr(&o)
    );
    let t = read(&p);
    promtool_check_metrics(&t);
    assert_eq!(value(&t, &format!("pytest_runs_total{SHOP}")), 2.0);
    assert_eq!(
        value(&t, &format!("pytest_tests_total{SMALL_PASSED}")),
        84.0
    );
    assert_eq!(
        value(
            &t,
            &format!("pytest_test_duration_seconds_count{SMALL_PASSED}")
        ),
        42.0
    );
    assert!(!t.contains("le=\"0.1\""));
}

#[test]
fn textfile_and_gateway_each_continue_from_their_own_values() {
    let pg = support::Pushgateway::start();
    let d = tempfile::tempdir().unwrap();
    let (p, ps) = target(&d);
    // The file has seen one run; the gateway none.
    assert_eq!(
        push(&primary(), &["--textfile", &ps]).status.code(),
        Some(0)
    );
    let o = push(&primary(), &["--textfile", &ps, "--gateway", &pg.url]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("wrote 90 tests (16 families) to {ps}\n")),
        "{e}"
    );
    assert!(e.contains("pushed 90 tests (16 families) to "), "{e}");
    assert_eq!(value(&read(&p), &format!("pytest_runs_total{SHOP}")), 2.0);
    let lines = pg.metric_lines("pytest_runs_total");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with(" 1"), "{lines:?}");
}

#[test]
fn a_failing_gateway_does_not_stop_the_textfile() {
    let d = tempfile::tempdir().unwrap();
    let (p, ps) = target(&d);
    let dead = format!("http://127.0.0.1:{}", support::free_port());
    let args = [
        "--textfile",
        &ps,
        "--gateway",
        &dead,
        "--retries",
        "0",
        "--timeout",
        "2s",
    ];
    let o = push(&primary(), &args);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.starts_with(&format!(
            "wrote 90 tests (16 families) to {ps}\nerror: GET {dead}/metrics: "
        )),
        "{e}"
    );
    assert_eq!(value(&read(&p), &format!("pytest_runs_total{SHOP}")), 1.0);
    let mut soft = args.to_vec();
    soft.push("--soft-fail");
    let o = push(&primary(), &soft);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("\nwarning: metrics not pushed (--soft-fail): GET "));
    assert_eq!(value(&read(&p), &format!("pytest_runs_total{SHOP}")), 2.0);
}

#[test]
fn usage_errors_and_the_environment() {
    let d = tempfile::tempdir().unwrap();
    let o = push(&primary(), &["--textfile", "metrics.txt"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: --textfile: \"metrics.txt\" would be ignored: node_exporter's textfile collector \
         reads only files named *.prom (not hidden); write e.g. pytest.prom\n"
    );
    let o = push(&primary(), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: no destination: give --gateway URL (or PTC_METRICS_GATEWAY), --textfile PATH, or \
         --dry-run to print the metrics\n"
    );
    // PTC_METRICS_TEXTFILE.
    let (p, ps) = target(&d);
    let o = cli()
        .arg("push")
        .args(primary())
        .args(["--no-ci-detect", "--project", "shop"])
        .env("PTC_METRICS_TEXTFILE", &ps)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(value(&read(&p), &format!("pytest_runs_total{SHOP}")), 1.0);
}
