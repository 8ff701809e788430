//! METRICS.md rules checked on the committed fixtures of both pytest versions.
//!
//! Every expected number below is written by hand from the sample suite's design
//! (`fixtures/EXPECTED.md`, `fixtures/sample-suite/`), not copied from this tool's output.
//! Rows are `[passed, failed, error, xfailed, skipped]`, i.e. `Outcome` order is remapped.

use std::path::PathBuf;

use crate::derive::{summarize, DeriveConfig, Summary};
use crate::model::{FailureType, Outcome, Resource, Size};
use crate::read::{read_run, Inputs};

fn fixture(version: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("pytest-{version}"))
        .join(name)
}

fn summary(version: &str, junit: &[&str], sizes: &[&str], prefix: &str) -> Summary {
    let inputs = Inputs {
        reports: junit.iter().map(|j| fixture(version, j)).collect(),
        size_reports: sizes.iter().map(|s| fixture(version, s)).collect(),
        coverage: vec![],
        junit_prefix: prefix.to_string(),
    };
    let run = read_run(&inputs).unwrap_or_else(|e| panic!("{e}"));
    summarize(&run, &DeriveConfig::default(), None)
}

/// `[passed, failed, error, xfailed, skipped]` of one size.
fn row(s: &Summary, size: Size) -> [u64; 5] {
    let t = s.tests[size.index()];
    [
        t[Outcome::Passed.index()],
        t[Outcome::Failed.index()],
        t[Outcome::Error.index()],
        t[Outcome::Xfailed.index()],
        t[Outcome::Skipped.index()],
    ]
}

fn per_size(a: &[u64; 6]) -> [u64; 4] {
    [a[0], a[1], a[2], a[3]]
}

fn failures(s: &Summary) -> [(FailureType, u64); 4] {
    FailureType::ALL.map(|f| (f, s.failures[f.index()]))
}

const BOTH: [&str; 2] = ["9.2", "9.1"];

#[test]
fn primary_run_with_json_report() {
    for v in BOTH {
        let s = summary(v, &["junit-xunit2.xml"], &["size-report.json"], "");
        // EXPECTED.md "Primary run"; the collection-skipped module has no JSON entry: unsized.
        assert_eq!(row(&s, Size::Small), [42, 15, 2, 5, 4], "{v}");
        assert_eq!(row(&s, Size::Medium), [7, 2, 1, 1, 1], "{v}");
        assert_eq!(row(&s, Size::Large), [2, 0, 0, 0, 0], "{v}");
        assert_eq!(row(&s, Size::Xlarge), [2, 0, 0, 0, 0], "{v}");
        assert_eq!(row(&s, Size::Unsized), [4, 1, 0, 0, 1], "{v}");
        assert_eq!(row(&s, Size::Unknown), [0; 5], "{v}");
        assert_eq!(s.total_tests(), 90, "{v}");
        assert_eq!(s.elements, 93, "{v}");
        // Spin (passes, slow), sleep (fails, slow), and the slow xfail known only to the JSON.
        assert_eq!(per_size(&s.timing_violations), [3, 0, 0, 0], "{v}");
        assert_eq!(per_size(&s.baseline_violations), [1, 0, 0, 0], "{v}");
        assert_eq!(s.flaky[Size::Small.index()], 1, "{v}");
        assert_eq!(s.flaky.iter().sum::<u64>(), 1, "{v}");
        // The slow-setup test is small but its call is fast: the JSON call duration decides.
        assert_eq!(per_size(&s.near_limit), [0, 0, 0, 0], "{v}");
        assert_eq!(s.hermeticity, [0; 5], "{v}");
        // 18 failed: 4 timing (TC006 ×2, TC008, slow xfail), 14 assertion; 3 errors.
        assert_eq!(
            failures(&s),
            [
                (FailureType::Assertion, 14),
                (FailureType::Error, 3),
                (FailureType::HermeticityViolation, 0),
                (FailureType::TimingViolation, 4)
            ],
            "{v}"
        );
        let d = s.distribution().unwrap();
        assert!(
            (d[0] - 68.0 / 84.0).abs() < 1e-12 && (d[1] - 12.0 / 84.0).abs() < 1e-12,
            "{v}"
        );
        assert!(
            (d[2] - 2.0 / 84.0).abs() < 1e-12 && (d[3] - 2.0 / 84.0).abs() < 1e-12,
            "{v}"
        );
        assert!(s.notes.is_empty(), "{v}: {:?}", s.notes);
    }
}

#[test]
fn reruns_run() {
    for v in BOTH {
        let s = summary(v, &["junit-reruns.xml"], &["size-report-reruns.json"], "");
        assert_eq!(row(&s, Size::Small), [43, 14, 2, 5, 4], "{v}");
        assert_eq!(row(&s, Size::Medium), [7, 2, 1, 1, 1], "{v}");
        assert_eq!(row(&s, Size::Unsized), [4, 1, 0, 0, 1], "{v}");
        assert_eq!(s.total_tests(), 90, "{v}");
        assert_eq!(s.elements, 112, "{v}");
        assert_eq!(per_size(&s.flaky), [2, 0, 0, 0], "{v}");
        assert_eq!(per_size(&s.timing_violations), [3, 0, 0, 0], "{v}");
        assert_eq!(per_size(&s.baseline_violations), [1, 0, 0, 0], "{v}");
    }
}

#[test]
fn xdist_run_has_the_same_tests() {
    for v in BOTH {
        let s = summary(
            v,
            &["junit-xdist-n2.xml"],
            &["size-report-xdist-n2.json"],
            "",
        );
        assert_eq!(row(&s, Size::Small), [42, 15, 2, 5, 4], "{v}");
        assert_eq!(row(&s, Size::Medium), [7, 2, 1, 1, 1], "{v}");
        assert_eq!(s.total_tests(), 90, "{v}");
        assert_eq!(per_size(&s.timing_violations), [3, 0, 0, 0], "{v}");
    }
}

#[test]
fn hermeticity_records_from_the_json_in_warn_mode() {
    for v in BOTH {
        let s = summary(
            v,
            &["junit-enforcement-warn.xml"],
            &["size-report-enforcement-warn.json"],
            "",
        );
        // network 2, filesystem 1, process 2 (one subprocess.run recorded twice), database 1, sleep 4.
        assert_eq!(s.hermeticity, [2, 1, 2, 1, 4], "{v}");
        // Warn mode changes no outcome.
        assert_eq!(row(&s, Size::Small), [42, 15, 2, 5, 4], "{v}");
        assert_eq!(
            s.failures[FailureType::HermeticityViolation.index()],
            0,
            "{v}"
        );
    }
}

#[test]
fn strict_enforcement() {
    for v in BOTH {
        let s = summary(
            v,
            &["junit-enforcement-strict.xml"],
            &["size-report-enforcement-strict.json"],
            "",
        );
        assert_eq!(row(&s, Size::Small), [37, 19, 2, 6, 4], "{v}");
        assert_eq!(row(&s, Size::Medium), [6, 3, 1, 1, 1], "{v}");
        // Only the busy-waiting test keeps its TC006; TC005 wins over TC006/TC008 elsewhere.
        assert_eq!(per_size(&s.timing_violations), [1, 0, 0, 0], "{v}");
        assert_eq!(per_size(&s.baseline_violations), [0, 0, 0, 0], "{v}");
        // 5 small isolation tests + medium external host + sleep-past-limit + over-tight baseline.
        assert_eq!(
            s.failures[FailureType::HermeticityViolation.index()],
            8,
            "{v}"
        );
        assert_eq!(s.failures[FailureType::TimingViolation.index()], 1, "{v}");
    }
}

#[test]
fn junit_alone_pytest_9_1_sizes_from_name_labels() {
    let s = summary("9.1", &["junit-xunit2.xml"], &[], "");
    assert_eq!(row(&s, Size::Small), [42, 15, 2, 5, 4]);
    assert_eq!(row(&s, Size::Medium), [7, 2, 1, 1, 1]);
    // The unsized `test_unsized_param[tail [LARGE]` ends in ` [LARGE]`, but that `]` closes its
    // parameter id (what precedes would be `test_unsized_param[tail`, no test's name): no label.
    assert_eq!(row(&s, Size::Large), [2, 0, 0, 0, 0]);
    assert_eq!(row(&s, Size::Xlarge), [2, 0, 0, 0, 0]);
    // Labels present: a test no source sizes is unsized (4 unmarked + 1 failing + module skip).
    assert_eq!(row(&s, Size::Unsized), [4, 1, 0, 0, 1]);
    assert_eq!(s.size_count(Size::Unknown), 0);
    // Without the JSON the slow xfail's violation is invisible (its TC006 text is not in the XML).
    assert_eq!(per_size(&s.timing_violations), [2, 0, 0, 0]);
    // JUnit time includes setup: the slow-setup test (1.101 s) now reads as near its limit,
    // and so does the slow xfail, whose violation the XML does not show.
    assert_eq!(per_size(&s.near_limit), [2, 0, 0, 0]);
}

#[test]
fn junit_alone_pytest_9_2_sizes_only_from_violation_texts() {
    let s = summary("9.2", &["junit-xunit2.xml"], &[], "");
    // `Category: SMALL` lines of the TC006 ×2 and TC008 failures size three tests.
    assert_eq!(s.size_count(Size::Small), 3);
    assert_eq!(s.size_count(Size::Unknown), 87);
    assert_eq!(s.size_count(Size::Unsized), 0);
    // Three tests out of 90 do not describe the run: 100 % small would fire the band alerts.
    assert_eq!(s.distribution(), None);
    assert_eq!(
        s.notes,
        [
            "no size source: 87 of 90 tests have size \"unknown\", so no size distribution is \
          given (the 3 sized tests do not describe the run). Have pytest write the plugin's \
          report (--test-size-report=json --test-size-report-file=size.json) and pass it with \
          --size-report size.json"
        ]
    );
}

/// Sized tests whose parameter ids hold unbalanced brackets, as version ranges do
/// (`test_range_notation[[1.0, 2.0.dev0)] [SMALL]`): pytest 9.1's label is the trailing
/// ` [SIZE]` after a closed parameter id, however many brackets the id holds. The JSON report
/// agrees.
#[test]
fn junit_alone_pytest_9_1_labels_after_unbalanced_brackets() {
    let alone = summary("9.1", &["junit-version-ranges.xml"], &[], "");
    let joined = summary(
        "9.1",
        &["junit-version-ranges.xml"],
        &["size-report-version-ranges.json"],
        "",
    );
    for s in [&alone, &joined] {
        // 3 range notations passed, the slow one failed (TC006); 1 medium; 1 unsized.
        assert_eq!(row(s, Size::Small), [3, 1, 0, 0, 0]);
        assert_eq!(row(s, Size::Medium), [1, 0, 0, 0, 0]);
        assert_eq!(row(s, Size::Unsized), [1, 0, 0, 0, 0]);
        assert_eq!(s.total_tests(), 6);
        assert!(s.notes.is_empty(), "{:?}", s.notes);
    }
    assert_eq!(alone.distribution(), joined.distribution());
    // pytest 9.2 writes no label: the TC006 failure's `Category: SMALL` line sizes one test
    // of six, which does not describe the run (METRICS.md §3): no distribution.
    let s = summary("9.2", &["junit-version-ranges.xml"], &[], "");
    assert_eq!(row(&s, Size::Small), [0, 1, 0, 0, 0]);
    assert_eq!(s.size_count(Size::Unknown), 5);
    assert_eq!(s.distribution(), None);
    assert_eq!(
        s.notes,
        [
            "no size source: 5 of 6 tests have size \"unknown\", so no size distribution is \
          given (the 1 sized test does not describe the run). Have pytest write the plugin's \
          report (--test-size-report=json --test-size-report-file=size.json) and pass it with \
          --size-report size.json"
        ]
    );
}

#[test]
fn junit_prefix_join() {
    for v in BOTH {
        let s = summary(
            v,
            &["junit-prefix-suitename-durcall.xml"],
            &["size-report-prefix.json"],
            "PFX",
        );
        assert_eq!(s.size_count(Size::Small), 68, "{v}");
        assert_eq!(s.size_count(Size::Unsized), 6, "{v}");
        assert!(s.notes.is_empty(), "{v}: {:?}", s.notes);
        // Without --junit-prefix no entry finds its test, and the user is told. Only the
        // `Category: SMALL` lines of the three TC006/TC008 failures still size tests (9.2); on
        // 9.1 the name labels do.
        let s = summary(
            v,
            &["junit-prefix-suitename-durcall.xml"],
            &["size-report-prefix.json"],
            "",
        );
        assert_eq!(
            s.size_count(Size::Small),
            if v == "9.2" { 3 } else { 68 },
            "{v}"
        );
        assert!(
            s.notes
                .iter()
                .any(|n| n.starts_with("89 size-report entries matched no JUnit test")),
            "{v}: {:?}",
            s.notes
        );
    }
}

#[test]
fn size_report_printed_in_a_terminal_log() {
    for v in BOTH {
        // The JSON on stdout comes from another run of the same suite: same tests, same sizes.
        let s = summary(
            v,
            &["junit-xunit2.xml"],
            &["terminal-size-report-json-stdout.txt"],
            "",
        );
        assert_eq!(s.size_count(Size::Small), 68, "{v}");
        assert_eq!(s.size_count(Size::Medium), 12, "{v}");
        assert_eq!(s.size_count(Size::Unsized), 6, "{v}");
        let s = summary(
            v,
            &["junit-xunit2.xml"],
            &["terminal-size-report-detailed.txt"],
            "",
        );
        assert_eq!(s.size_count(Size::Small), 68, "{v}");
        assert_eq!(s.size_count(Size::Medium), 12, "{v}");
        assert_eq!(s.size_count(Size::Large), 2, "{v}");
        assert_eq!(s.size_count(Size::Xlarge), 2, "{v}");
        assert!(s.notes.is_empty(), "{v}: {:?}", s.notes);
    }
}

#[test]
fn suite_duration_and_timestamp() {
    let s = summary("9.2", &["junit-xunit2.xml"], &["size-report.json"], "");
    assert!(
        s.suite_duration > 3.0 && s.suite_duration < 60.0,
        "{}",
        s.suite_duration
    );
    // The JUnit timestamp (run start) wins over the JSON's (run end).
    assert!(s.timestamp > 1.7e9 && s.timestamp < 2.0e9);
    let with_json_only = {
        let inputs = Inputs {
            reports: vec![fixture("9.2", "junit-multiple-size-markers.xml")],
            ..Inputs::default()
        };
        let run = read_run(&inputs).unwrap();
        summarize(&run, &DeriveConfig::default(), None)
    };
    assert_eq!(with_json_only.total_tests(), 0);
}

#[test]
fn two_inputs_merge_into_one_run() {
    // xunit1 and xunit2 files of one suite describe the same tests: merged, each test's last
    // attempt comes from the later file, so counts stay per test.
    let s = summary(
        "9.2",
        &["junit-xunit1.xml", "junit-collection-error.xml"],
        &[],
        "",
    );
    // junit-collection-error adds the broken module's collection error as one more test.
    assert_eq!(s.total_tests(), 91);
    assert_eq!(Resource::ALL.len(), 5);
}
