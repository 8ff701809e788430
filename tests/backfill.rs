//! `ptc-metrics backfill` against real servers: a generated archive (hundreds of runs over
//! 60 days, several projects and branches) into Prometheus (remote-write receiver, out-of-
//! order window) and VictoriaMetrics by remote write, and through an OpenMetrics file,
//! `promtool tsdb create-blocks-from openmetrics` and a Prometheus started on the blocks.
//! Every series, timestamp and value is compared with what the archive says
//! (`backfill_archive::expected`). Also: incremental backfills with a late run, dry runs,
//! unreadable runs (exit 4), `push --archive`.

mod backfill_archive;
mod support;

use std::path::Path;
use std::process::Output;
use std::time::Instant;

use backfill_archive::{
    assert_same, expected, from_vm_export, generate, now_s, prometheus_series, write_run, GenRun,
};
use support::{cli, Prometheus, VictoriaMetrics};

const RUNS: usize = 300;
const DAYS: i64 = 60;

fn backfill(args: &[&str]) -> Output {
    cli()
        .arg("backfill")
        .args(args)
        .args(["--progress", "plain"])
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .output()
        .expect("run ptc-metrics backfill")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_exit(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    );
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn all(runs: &[GenRun]) -> Vec<usize> {
    (0..runs.len()).collect()
}

#[test]
fn remote_write_into_prometheus_matches_the_archive_and_a_rerun_adds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let runs = generate(&archive, RUNS, DAYS, now_s() - 3600, 1);
    let prom = Prometheus::builder()
        .remote_write_receiver()
        .out_of_order_time_window("90d")
        .start();
    let state = tmp.path().join("backfill.state");
    let t0 = Instant::now();
    let o = backfill(&[
        &p(&archive),
        "--remote-write",
        &prom.remote_write_url(),
        "--state",
        &p(&state),
    ]);
    let secs = t0.elapsed().as_secs_f64();
    assert_exit(&o, 0, "backfill into Prometheus");
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("backfill: {RUNS} new run(s)")),
        "{err}"
    );
    eprintln!(
        "prometheus: {RUNS} runs in {secs:.2} s ({:.0} runs/s)\n{err}",
        RUNS as f64 / secs
    );

    let want = expected(&runs, &[all(&runs)]);
    assert_same("prometheus", &want, &prometheus_series(&prom, DAYS));

    // Spot checks through instant queries at a run's time.
    let last_shop = runs
        .iter()
        .filter(|r| r.project == "shop" && r.branch == "main")
        .max_by_key(|r| r.ts)
        .unwrap();
    let n_shop = runs
        .iter()
        .filter(|r| r.project == "shop" && r.branch == "main")
        .count();
    let v = support::vector_samples(&prom.query_at(
        r#"pytest_runs_total{project="shop",branch="main"}"#,
        last_shop.ts as f64 + 1.0,
    ));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].value, n_shop as f64);
    let v = support::vector_samples(&prom.query_at(
        r#"timestamp(pytest_last_run_timestamp_seconds{project="shop",branch="main"})"#,
        last_shop.ts as f64 + 30.0,
    ));
    assert_eq!(v[0].value, last_shop.ts as f64);

    // A second backfill of the same archive delivers nothing and changes nothing.
    let o = backfill(&[
        &p(&archive),
        "--remote-write",
        &prom.remote_write_url(),
        "--state",
        &p(&state),
    ]);
    assert_exit(&o, 0, "second backfill");
    let err = text(&o.stderr);
    assert!(
        err.contains("backfill: 0 new run(s), 0 samples delivered")
            && err.contains(&format!("{RUNS} already delivered")),
        "{err}"
    );
    assert_same(
        "prometheus after a rerun",
        &want,
        &prometheus_series(&prom, DAYS),
    );
}

#[test]
fn victoria_metrics_across_invocations_with_globs_and_a_late_run() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let end = now_s() - 3600;
    // First night: the older 200 runs of 60 days; second night: 100 newer runs, and one run
    // that turns up late (older than runs the first night delivered for its group).
    let mut runs = generate(&archive, 200, DAYS, end - 10 * 86_400, 2);
    let first: Vec<usize> = all(&runs);
    let newer = generate(&tmp.path().join("more"), 100, 9, end, 3);
    let mut second = Vec::new();
    for (i, r) in newer.into_iter().enumerate() {
        let r = write_run(&archive, &format!("night2-{i:03}"), r);
        second.push(runs.len());
        runs.push(r);
    }
    let late_ts = runs[0].ts + 3600;
    let late = GenRun {
        dir: Default::default(),
        project: runs[0].project,
        branch: runs[0].branch,
        ts: late_ts,
        combo: 1,
        coverage: true,
        gz: false,
    };
    // Not written before the first backfill.
    let vm = VictoriaMetrics::start();
    let state = tmp.path().join("vm.state");
    let first_glob = format!("{}/**/run-*/junit.xml*", p(&archive));
    let o = backfill(&[
        &first_glob,
        "--remote-write",
        &vm.remote_write_url(),
        "--state",
        &p(&state),
        "--header",
        "X-Scope-OrgID: team-a",
    ]);
    assert_exit(&o, 0, "first backfill into VictoriaMetrics");
    assert!(
        text(&o.stderr).contains("backfill: 200 new run(s)"),
        "{}",
        text(&o.stderr)
    );

    let late = write_run(&archive, "late-run", late);
    second.push(runs.len());
    runs.push(late);
    let o = backfill(&[
        &p(&archive),
        "--remote-write",
        &vm.remote_write_url(),
        "--state",
        &p(&state),
    ]);
    assert_exit(&o, 0, "second backfill into VictoriaMetrics");
    let err = text(&o.stderr);
    assert!(err.contains("backfill: 101 new run(s)"), "{err}");
    assert!(err.contains("200 already delivered"), "{err}");
    assert!(
        err.contains("1 run(s) are older than runs already delivered"),
        "{err}"
    );

    let want = expected(&runs, &[first, second]);
    let got = from_vm_export(&vm.export(r#"{job="pytest"}"#));
    assert_same("victoria-metrics", &want, &got);

    // The same through the query API: the group's counter at its newest run.
    let grp: Vec<&GenRun> = runs
        .iter()
        .filter(|r| r.project == runs[0].project && r.branch == runs[0].branch)
        .collect();
    let newest = grp.iter().map(|r| r.ts).max().unwrap();
    let q = format!(
        r#"pytest_runs_total{{project="{}",branch="{}"}}"#,
        runs[0].project, runs[0].branch
    );
    let v = support::vector_samples(&vm.query_at(&q, newest as f64 + 1.0));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].value, grp.len() as f64);
}

#[test]
fn openmetrics_file_through_promtool_blocks_matches_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let runs = generate(&archive, RUNS, DAYS, now_s() - 3 * 3600, 4);
    let om = tmp.path().join("out.om");
    let t0 = Instant::now();
    let o = backfill(&[
        &format!("{}/**/junit.xml*", p(&archive)),
        "--openmetrics",
        &p(&om),
    ]);
    let secs = t0.elapsed().as_secs_f64();
    assert_exit(&o, 0, "backfill to OpenMetrics");
    eprintln!(
        "openmetrics: {RUNS} runs in {secs:.2} s\n{}",
        text(&o.stderr)
    );
    let body = std::fs::read_to_string(&om).unwrap();
    assert!(body.ends_with("# EOF\n"));
    assert!(body.contains("# TYPE pytest_runs counter\n"));
    assert!(body.contains("le=\"1.0\""), "canonical OpenMetrics bounds");

    // As docs/backfill.md recommends: week-long blocks instead of hundreds of 2 h ones
    // (60 days of 2 h blocks take promtool ~50 s here, week-long ones ~2 s).
    let t0 = Instant::now();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    support::promtool(&[
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        "--max-block-duration=168h",
        &p(&om),
        &p(&data),
    ])
    .assert_success("promtool tsdb create-blocks-from openmetrics");
    eprintln!(
        "promtool create-blocks: {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let prom = Prometheus::start_on_data_dir(&data);
    let want = expected(&runs, &[all(&runs)]);
    assert_same("promtool blocks", &want, &prometheus_series(&prom, DAYS));
}

#[test]
fn dry_run_lists_runs_and_unreadable_runs_are_skipped_with_exit_4() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let runs = generate(&archive, 12, 5, now_s() - 3600, 5);
    let broken = archive.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("junit.xml"),
        "<testsuites><testsuite name=\"x\"><testcase",
    )
    .unwrap();

    let o = backfill(&[&p(&archive), "--dry-run"]);
    assert_exit(&o, 4, "dry run with a broken run");
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), 12, "{out}");
    let first = runs.iter().min_by_key(|r| r.ts).unwrap();
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with(&backfill_archive::iso(first.ts).replace("+00:00", "Z")),
        "{out}"
    );
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("warning: skipped {}", p(&broken))),
        "{err}"
    );
    assert!(
        err.contains("malformed XML") || err.contains("junit.xml"),
        "{err}"
    );
    assert!(
        err.contains("dry run: 12 run(s) in 6 group(s) would be delivered"),
        "{err}"
    );
    assert!(
        err.contains("error: 1 run(s) could not be read and were skipped"),
        "{err}"
    );

    // A real backfill delivers the rest and records them; the broken run keeps exit 4.
    let state = tmp.path().join("s.state");
    let om = tmp.path().join("out.om");
    let args = [
        &p(&archive),
        "--openmetrics",
        &p(&om),
        "--state",
        &p(&state),
    ];
    let o = backfill(&args);
    assert_exit(&o, 4, "backfill with a broken run");
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(st["runs"].as_object().unwrap().len(), 12);
    assert!(st["pending"].is_null());
    std::fs::remove_dir_all(&broken).unwrap();
    let o = backfill(&args);
    assert_exit(&o, 0, "backfill after the broken run was removed");
    assert!(
        text(&o.stderr).contains("12 already delivered"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&om).unwrap(),
        "# EOF\n",
        "nothing new"
    );

    // The state belongs to one destination.
    let o = backfill(&[
        &p(&archive),
        "--remote-write",
        "http://127.0.0.1:9/api/v1/write",
        "--state",
        &p(&state),
    ]);
    assert_exit(&o, 2, "state of another destination");
    assert!(
        text(&o.stderr).contains("one state file per destination"),
        "{}",
        text(&o.stderr)
    );
    // A path that does not exist is a usage error.
    let o = backfill(&["no/such/archive", "--dry-run"]);
    assert_exit(&o, 2, "missing archive");
}

#[test]
fn a_refused_batch_is_exit_3_and_is_sent_first_next_time() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    generate(&archive, 6, 2, now_s() - 3600, 6);
    let state = tmp.path().join("s.state");
    // Nothing listens on port 9 (discard) on loopback: connection refused, retried, exit 3.
    let o = backfill(&[
        &p(&archive),
        "--remote-write",
        "http://127.0.0.1:9/api/v1/write",
        "--state",
        &p(&state),
        "--retries",
        "1",
    ]);
    assert_exit(&o, 3, "unreachable receiver");
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(st["pending"]["delta"]["runs"].as_object().unwrap().len(), 6);
    assert!(st["runs"].as_object().unwrap().is_empty());

    let vm = VictoriaMetrics::start();
    let o = backfill(&[
        &p(&archive),
        "--remote-write",
        &vm.remote_write_url(),
        "--state",
        &p(&state),
    ]);
    assert_exit(&o, 2, "another URL while a batch is pending");
    assert!(
        text(&o.stderr).contains("--discard-pending"),
        "{}",
        text(&o.stderr)
    );
    let o = backfill(&[
        &p(&archive),
        "--remote-write",
        &vm.remote_write_url(),
        "--state",
        &p(&state),
        "--discard-pending",
    ]);
    assert_exit(&o, 0, "discarding the pending batch");
    let err = text(&o.stderr);
    assert!(err.contains("backfill: 6 new run(s)"), "{err}");
}

#[test]
fn push_archive_writes_runs_that_backfill_reads_with_their_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let fx = backfill_archive::fixtures();
    let push = || {
        cli()
            .args([
                "push",
                "--dry-run",
                &p(&fx.join("junit-xunit2.xml")),
                "--size-report",
                &p(&fx.join("size-report.json")),
                "--archive",
                &p(&archive),
            ])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_REPOSITORY", "acme/shop")
            .env("GITHUB_REF_NAME", "main")
            .env("GITHUB_JOB", "tests")
            .env("GITHUB_SHA", "0123456789abcdef")
            .env("GITHUB_RUN_ID", "4711")
            .env_remove("GITHUB_HEAD_REF")
            .output()
            .unwrap()
    };
    let o = push();
    assert_exit(&o, 0, "push --archive");
    assert!(
        text(&o.stderr).contains("archived the run in"),
        "{}",
        text(&o.stderr)
    );
    // The same reports again: the first copy is kept, and the message says so.
    let o = push();
    assert_exit(&o, 0, "push --archive again");
    assert!(
        text(&o.stderr).contains("the run is archived already in "),
        "{}",
        text(&o.stderr)
    );
    let dirs: Vec<_> = std::fs::read_dir(&archive)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dirs[0].join("run.json")).unwrap()).unwrap();
    assert_eq!(meta["commit"], "0123456789abcdef");
    assert_eq!(meta["run_id"], "4711");
    assert_eq!(meta["project"], "acme/shop");
    assert_eq!(meta["labels"]["ci_job"], "tests");

    // The backfill, run where no CI variables exist, gives the run the same group.
    let o = backfill(&[&p(&archive), "--dry-run"]);
    assert_exit(&o, 0, "backfill --dry-run of the archive");
    let out = text(&o.stdout);
    assert!(
        out.contains(r#"{branch="main",ci_job="tests",job="pytest",project="acme/shop"}"#),
        "{out}"
    );
    assert!(out.starts_with("2026-11-26T14:26:54Z"), "{out}");
    assert!(!out.contains("4711") && !out.contains("0123456789abcdef"));
}

#[test]
fn gateway_gets_the_newest_run_of_each_group_with_totals_over_all_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("archive");
    let end = now_s() - 3_600;
    let runs = generate(&root, 24, 10, end, 11);
    let pg = support::Pushgateway::start();
    let state = tmp.path().join("gw.state");
    let args = [
        p(&root),
        "--gateway".into(),
        pg.url.clone(),
        "--state".into(),
        p(&state),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = backfill(&args);
    assert_exit(&o, 0, "backfill --gateway");
    let check = |runs: &[GenRun]| {
        let data = pg.api_metrics();
        let groups = data.as_array().unwrap();
        let mut by_group: std::collections::BTreeMap<_, Vec<&GenRun>> = Default::default();
        for r in runs {
            by_group.entry(r.group()).or_default().push(r);
        }
        assert_eq!(groups.len(), by_group.len(), "{data:#}");
        for (labels, rs) in by_group {
            let g = groups
                .iter()
                .find(|g| {
                    labels
                        .iter()
                        .all(|(k, v)| g["labels"][k.as_str()].as_str() == Some(v.as_str()))
                })
                .unwrap_or_else(|| panic!("no group {labels:?}"));
            let val = |name: &str| -> f64 {
                g[name]["metrics"][0]["value"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            // Counters over every run of the group; per-run gauges of the newest one.
            assert_eq!(val("pytest_runs_total"), rs.len() as f64, "{labels:?}");
            let newest = rs.iter().map(|r| r.ts).max().unwrap();
            assert_eq!(
                val("pytest_last_run_timestamp_seconds"),
                newest as f64,
                "{labels:?}"
            );
        }
    };
    check(&runs);
    // Nothing new: nothing changes.
    let o = backfill(&args);
    assert_exit(&o, 0, "second backfill --gateway");
    check(&runs);
    // One new run in one group: that group alone moves on.
    let mut more = runs.clone();
    let mut late = runs[0].clone();
    late.ts = end + 60;
    more.push(write_run(&root, "run-new", late));
    let o = backfill(&args);
    assert_exit(&o, 0, "third backfill --gateway");
    check(&more);
}

#[test]
fn gateway_without_state_warns_that_a_rerun_counts_again() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("archive");
    let runs = generate(&root, 3, 1, now_s() - 3_600, 5);
    let pg = support::Pushgateway::start();
    let args = [p(&root), "--gateway".into(), pg.url.clone()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let note = "note: no --state file: every run found is added to the gateway's running totals, \
                so another backfill of the same runs counts them again; give --state FILE\n";
    for round in 1..=2 {
        let o = backfill(&args);
        assert_exit(&o, 0, "backfill --gateway without --state");
        assert!(text(&o.stderr).starts_with(note), "{}", text(&o.stderr));
        // What the note says: the second backfill counts the same runs again.
        let data = pg.api_metrics();
        let total: f64 = data
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                g["pytest_runs_total"]["metrics"][0]["value"]
                    .as_str()
                    .unwrap()
                    .parse::<f64>()
                    .unwrap()
            })
            .sum();
        assert_eq!(total, (runs.len() * round) as f64, "{data:#}");
    }
}

/// A group that `push` writes is refused by `backfill --gateway` before anything is sent, also
/// after its pending groups are cleaned up (its ledger stays): the run pushed live and
/// backfilled from its `push --archive` copy would count twice, and the backfill's write would
/// replace push's ledger (the next push would count the last pushes again). Seen on a real
/// gateway: runs_total 1 → 2 → 4 for two runs before the refusal.
#[test]
fn gateway_refuses_a_group_that_push_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let fx = backfill_archive::fixtures();
    let pg = support::Pushgateway::start();
    let o = cli()
        .args([
            "push",
            "--no-ci-detect",
            &p(&fx.join("junit-xunit2.xml")),
            "--size-report",
            &p(&fx.join("size-report.json")),
            "--project",
            "repro",
            "--gateway",
            &pg.url,
            "--archive",
            &p(&archive),
        ])
        .output()
        .unwrap();
    assert_exit(&o, 0, "push --archive");
    let runs_total = || -> f64 {
        let data = pg.api_metrics();
        let g = data
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["labels"]["project"] == "repro" && g["labels"].get("ptc_push").is_none())
            .unwrap_or_else(|| panic!("no group: {data:#}"));
        g["pytest_runs_total"]["metrics"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(runs_total(), 1.0);
    // Long after the push its pending group is cleaned up; the group's ledger stays.
    let data = pg.api_metrics();
    let ids: Vec<String> = data
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["labels"]["ptc_push"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 1, "{data:#}");
    for id in ids {
        let (status, body) = pg.push_raw(
            "DELETE",
            &format!("/metrics/job/pytest/project/repro/ptc_push/{id}"),
            "",
        );
        assert_eq!(status, 202, "{body}");
    }
    let state = tmp.path().join("gw.state");
    let o = backfill(&[&p(&archive), "--gateway", &pg.url, "--state", &p(&state)]);
    assert_exit(&o, 2, "backfill --gateway into push's group");
    assert_last_line(
        &o,
        format!(
            "error: --gateway: the group {}/metrics/job/pytest/project/repro is written by \
             `ptc-metrics push` (it holds its pending pushes or their ledger): a backfill into it \
             would count the runs that push delivered a second time; backfill these runs by \
             --remote-write or --openmetrics, and leave this group to push\n",
            pg.url
        ),
    );
    assert_eq!(runs_total(), 1.0, "nothing sent");
}

/// A group backfill wrote first (the state knows it) and push wrote since is refused as well:
/// the check reads the gateway's ledgers of the job on every backfill, not only for groups new
/// to the state.
#[test]
fn gateway_refuses_a_group_that_push_wrote_after_an_earlier_backfill() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let fx = backfill_archive::fixtures();
    let pg = support::Pushgateway::start();
    let push = |report: &Path, extra: &[&str]| {
        let o = cli()
            .args(["push", "--no-ci-detect", &p(report), "--project", "later"])
            .args(extra)
            .output()
            .unwrap();
        assert_exit(&o, 0, "push");
    };
    let report = fx.join("junit-xunit2.xml");
    push(&report, &["--dry-run", "--archive", &p(&archive)]);
    let state = tmp.path().join("gw.state");
    let args = [
        p(&archive),
        "--gateway".into(),
        pg.url.clone(),
        "--state".into(),
        p(&state),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_exit(&backfill(&args), 0, "the first backfill creates the group");
    // Then the group is pushed to live, and another run is archived.
    push(&report, &["--gateway", &pg.url]);
    let other = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pytest-9.1/junit-xunit2.xml");
    push(&other, &["--dry-run", "--archive", &p(&archive)]);
    let o = backfill(&args);
    assert_exit(&o, 2, "a backfill into the group push wrote since");
    assert_last_line(
        &o,
        format!(
            "error: --gateway: the group {}/metrics/job/pytest/project/later is written by \
             `ptc-metrics push` (it holds its pending pushes or their ledger): a backfill into it \
             would count the runs that push delivered a second time; backfill these runs by \
             --remote-write or --openmetrics, and leave this group to push\n",
            pg.url
        ),
    );
}

#[test]
fn a_symlink_loop_or_a_dangling_link_as_source_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let looped = tmp.path().join("archive");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let o = backfill(&[&p(&looped), "--dry-run"]);
    assert_exit(&o, 2, "a symlink loop");
    assert_eq!(
        text(&o.stderr),
        format!(
            "error: {}: is a symbolic link loop (following it leads back to itself); \
             point the link at the archive, or give the archive's real path\n",
            p(&looped)
        )
    );
    let dangling = tmp.path().join("latest");
    std::os::unix::fs::symlink(tmp.path().join("gone"), &dangling).unwrap();
    let o = backfill(&[&p(&dangling), "--dry-run"]);
    assert_exit(&o, 2, "a dangling link");
    assert_eq!(
        text(&o.stderr),
        format!(
            "error: {}: is a symbolic link to {}, which does not exist\n",
            p(&dangling),
            p(&tmp.path().join("gone"))
        )
    );
}

#[test]
fn every_skipped_run_is_named_and_exits_4_even_an_html_or_empty_report() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    generate(&archive, 3, 2, now_s() - 3600, 12);
    let fx = backfill_archive::fixtures();
    let broken = |name: &str, junit: &[u8]| {
        let dir = archive.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("junit.xml"), junit).unwrap();
        std::fs::copy(fx.join("size-report.json"), dir.join("size-report.json")).unwrap();
        dir
    };
    let html = broken(
        "html",
        b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body></body></html>\n",
    );
    let empty = broken("empty", b"");
    // A shard of a run that is empty: the run would be delivered without it.
    let shard = broken(
        "shard",
        &std::fs::read(fx.join("junit-xunit2.xml")).unwrap(),
    );
    std::fs::write(shard.join("junit-2.xml"), b"  \n").unwrap();

    let want = [
        format!(
            "warning: skipped {}: {}: is empty; expected a JUnit XML report\n",
            p(&empty),
            p(&empty.join("junit.xml"))
        ),
        format!(
            "warning: skipped {}: {}: is an HTML page, not a JUnit XML report (an error page saved \
             in its place?)\n",
            p(&html),
            p(&html.join("junit.xml"))
        ),
        format!(
            "warning: skipped {}: {}: is empty; expected a JUnit XML report\n",
            p(&shard),
            p(&shard.join("junit-2.xml"))
        ),
        "error: 3 run(s) could not be read and were skipped (see the warnings above); fix or remove \
         them, the next backfill delivers them\n"
            .to_string(),
    ];
    let om = tmp.path().join("out.om");
    let state = tmp.path().join("s.state");
    let o = backfill(&[
        &p(&archive),
        "--openmetrics",
        &p(&om),
        "--state",
        &p(&state),
    ]);
    assert_exit(
        &o,
        4,
        "backfill with an HTML, an empty and a half-empty run",
    );
    let err = text(&o.stderr);
    for w in &want {
        assert!(err.contains(w.as_str()), "missing {w:?} in\n{err}");
    }
    assert!(err.contains("backfill: 3 new run(s)"), "{err}");
    // The same runs picked by a glob: the same words, the same exit.
    let glob = format!("{}/*/junit.xml", p(&archive));
    let o = backfill(&[&glob, "--dry-run"]);
    assert_exit(&o, 4, "dry run of a glob");
    let err = text(&o.stderr);
    for w in &want[..2] {
        assert!(err.contains(w.as_str()), "missing {w:?} in\n{err}");
    }
}

#[test]
fn a_source_that_matches_no_report_at_all_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    generate(&archive, 2, 2, now_s() - 3600, 13);
    let state = tmp.path().join("s.state");
    let om = tmp.path().join("out.om");
    let ok = backfill(&[
        &p(&archive),
        "--openmetrics",
        &p(&om),
        "--state",
        &p(&state),
    ]);
    assert_exit(&ok, 0, "the archive");

    // A state file in a directory not created yet.
    let nodir = tmp.path().join("no-such-dir").join("s.state");
    let o = backfill(&[
        &p(&archive),
        "--openmetrics",
        &p(&om),
        "--state",
        &p(&nodir),
    ]);
    assert_exit(&o, 2, "a state file in a missing directory");
    assert_eq!(
        text(&o.stderr),
        format!(
            "error: state file {}: cannot lock {}.lock: No such file or directory (os error 2); \
             the directory {} does not exist: create it first\n",
            p(&nodir),
            p(&nodir),
            p(&tmp.path().join("no-such-dir"))
        )
    );

    // A typo in a cron job's glob.
    let typo = format!("{}/*/juint.xml", p(&archive));
    let o = backfill(&[&typo, "--openmetrics", &p(&om), "--state", &p(&state)]);
    assert_exit(&o, 2, "a glob that matches nothing");
    assert_eq!(
        text(&o.stderr),
        format!(
            "error: {typo}: matches no file; check the pattern (and quote it, so that the shell \
             leaves it to ptc-metrics)\n"
        )
    );
    // A directory without any report, next to one whose runs were all delivered before.
    let empty = tmp.path().join("new-archive");
    std::fs::create_dir_all(empty.join("2026-01-01")).unwrap();
    let o = backfill(&[
        &p(&archive),
        &p(&empty),
        "--openmetrics",
        &p(&om),
        "--state",
        &p(&state),
    ]);
    assert_exit(&o, 2, "an empty directory");
    assert_last_line(
        &o,
        format!(
            "error: {}: holds no JUnit report (searched recursively); check the path\n",
            p(&empty)
        ),
    );
    // A directory holding only a coverage report, and a glob matching only coverage reports.
    let cov = tmp.path().join("coverage-only");
    std::fs::create_dir_all(&cov).unwrap();
    std::fs::copy(
        backfill_archive::fixtures().join("coverage.xml"),
        cov.join("coverage.xml"),
    )
    .unwrap();
    let o = backfill(&[&p(&cov), "--dry-run"]);
    assert_exit(&o, 2, "a directory with only coverage.xml");
    assert_last_line(
        &o,
        format!(
            "error: {}: holds no JUnit report (searched recursively); check the path\n",
            p(&cov)
        ),
    );
    let glob = format!("{}/*.xml", p(&cov));
    let o = backfill(&[&glob, "--dry-run"]);
    assert_exit(&o, 2, "a glob matching only coverage.xml");
    assert_last_line(
        &o,
        format!("error: {glob}: matches 1 file(s) but no JUnit report; check the pattern\n"),
    );
    // Runs that were all delivered before are reports: nothing new is not an error.
    let o = backfill(&[
        &p(&archive),
        "--openmetrics",
        &p(&om),
        "--state",
        &p(&state),
    ]);
    assert_exit(&o, 0, "nothing new");
}

/// The last line of stderr is exactly `want` (progress lines may come before it).
fn assert_last_line(o: &Output, want: String) {
    let err = text(&o.stderr);
    let last = err.lines().last().map(|l| format!("{l}\n"));
    assert_eq!(last.as_deref(), Some(want.as_str()), "{err}");
}

/// The group key backfill shows for a generated run (`{branch="main",ci_job="tests",…}`).
fn group_key(r: &GenRun) -> String {
    let body: Vec<String> = r
        .group()
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// The `--verify` error for runs none of which is stored: names the earliest run of the
/// first group.
fn not_stored(verify: &str, target: &str, runs: &[GenRun]) -> String {
    let key = runs.iter().map(group_key).min().unwrap();
    let ts = runs
        .iter()
        .filter(|r| group_key(r) == key)
        .map(|r| r.ts)
        .min()
        .unwrap();
    format!(
        "error: --verify {verify}: {n} of {n} run(s) just sent to {target} are not stored there \
         (first: {key} at {}), although it answered 2xx. Check that --remote-write is the receiver's \
         remote-write path and that the runs are inside its retention (VictoriaMetrics -retentionPeriod, \
         Prometheus --storage.tsdb.retention.time). They are not marked delivered: the next backfill \
         sends them again\n",
        backfill_archive::iso(ts).replace("+00:00", "Z"),
        n = runs.len()
    )
}

fn state_runs(state: &Path) -> usize {
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    assert!(st["pending"].is_null(), "{st}");
    st["runs"].as_object().unwrap().len()
}

#[test]
fn victoria_metrics_influx_path_is_refused_and_verify_catches_runs_it_did_not_store() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    // Runs 10 to 12 days old, outside this VictoriaMetrics' 1-day retention: it answers 204
    // to them and stores nothing.
    let runs = generate(&archive, 6, 2, now_s() - 10 * 86_400, 14);
    let vm = VictoriaMetrics::start_with(&["-retentionPeriod=1d"]);
    let state = tmp.path().join("vm.state");

    // VictoriaMetrics' Influx endpoint: refused before anything is sent or recorded.
    let influx = format!("{}/write", vm.url);
    let o = backfill(&[
        &p(&archive),
        "--remote-write",
        &influx,
        "--state",
        &p(&state),
    ]);
    assert_exit(&o, 2, "--remote-write …/write");
    assert_eq!(
        text(&o.stderr),
        format!(
            "error: --remote-write: {influx} is VictoriaMetrics' InfluxDB line-protocol endpoint (it \
             answers 204 to a remote-write body and stores nothing); give --remote-write {}\n",
            vm.remote_write_url()
        )
    );
    assert!(!state.exists());

    // The right path, but nothing is kept: --verify finds no run, nothing is marked delivered.
    let args = [
        p(&archive),
        "--remote-write".into(),
        vm.remote_write_url(),
        "--verify".into(),
        vm.url.clone(),
        "--state".into(),
        p(&state),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = backfill(&args);
    assert_exit(&o, 3, "--verify against a receiver that dropped the runs");
    assert_last_line(&o, not_stored(&vm.url, &vm.remote_write_url(), &runs));
    assert_eq!(state_runs(&state), 0);
    assert!(vm.export(r#"{job="pytest"}"#).is_empty());
}

#[test]
fn verify_finds_the_runs_in_victoria_metrics_and_prometheus_and_not_where_they_are_not() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let runs = generate(&archive, 12, 5, now_s() - 3600, 15);

    let vm = VictoriaMetrics::start();
    let state = tmp.path().join("vm.state");
    let o = backfill(&[
        &p(&archive),
        "--remote-write",
        &vm.remote_write_url(),
        "--verify",
        &vm.url,
        "--state",
        &p(&state),
    ]);
    assert_exit(&o, 0, "--verify against VictoriaMetrics");
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!(
            "verified: the 12 run(s) delivered are stored, as {} shows\n",
            vm.url
        )),
        "{err}"
    );
    assert_eq!(state_runs(&state), 12);

    let prom = Prometheus::builder()
        .remote_write_receiver()
        .out_of_order_time_window("30d")
        .start();
    let elsewhere = Prometheus::builder().start();
    let state = tmp.path().join("prom.state");
    let send = |verify: &str| {
        backfill(&[
            &p(&archive),
            "--remote-write",
            &prom.remote_write_url(),
            "--verify",
            verify,
            "--state",
            &p(&state),
        ])
    };
    // Asking a Prometheus that did not receive them: not there, not marked delivered.
    let o = send(&elsewhere.url);
    assert_exit(&o, 3, "--verify against another Prometheus");
    assert_last_line(
        &o,
        not_stored(&elsewhere.url, &prom.remote_write_url(), &runs),
    );
    assert_eq!(state_runs(&state), 0);
    // Asking the right one: the same runs are sent again (identical samples) and found.
    let o = send(&prom.url);
    assert_exit(&o, 0, "--verify against the receiving Prometheus");
    let err = text(&o.stderr);
    assert!(err.contains("backfill: 12 new run(s)"), "{err}");
    assert!(
        err.contains(&format!(
            "verified: the 12 run(s) delivered are stored, as {} shows\n",
            prom.url
        )),
        "{err}"
    );
    assert_eq!(state_runs(&state), 12);
    let want = expected(&runs, &[all(&runs)]);
    assert_same(
        "prometheus after --verify",
        &want,
        &prometheus_series(&prom, 5),
    );
}

/// Two CI runs, each split over 2 shards whose every shard has small timing violations,
/// archived by `push --archive` (different report content per shard, run.json timestamps an
/// hour ago), backfilled by remote write with --verify: each run counts once in the run's
/// group `shard="all"`, the shard groups carry none of it, and --verify passes.
#[test]
fn split_runs_count_once_in_their_run_group_by_remote_write() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let fx = backfill_archive::fixtures();
    let junit = std::fs::read_to_string(fx.join("junit-xunit2.xml")).unwrap();
    let start = now_s() - 3600;
    for (r, run) in ["run-1", "run-2"].iter().enumerate() {
        for shard in 1..=2 {
            let f = tmp.path().join(format!("junit-{run}-{shard}.xml"));
            std::fs::write(&f, format!("{junit}<!-- {run} shard {shard} -->\n")).unwrap();
            let o = cli()
                .args([
                    "push",
                    "--dry-run",
                    &p(&f),
                    "--size-report",
                    &p(&fx.join("size-report.json")),
                    "--no-ci-detect",
                    "--project",
                    "bf-split",
                    "--branch",
                    "feat",
                    "--shard",
                    &format!("{shard}/2"),
                    "--run-id",
                    run,
                    "--archive",
                    &p(&archive),
                ])
                .output()
                .unwrap();
            assert_exit(&o, 0, "push --archive of a shard");
            // Recent, so that VictoriaMetrics keeps the samples: the run.json time wins.
            let newest = std::fs::read_dir(&archive)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|d| {
                    let m = std::fs::read_to_string(d.join("run.json")).unwrap();
                    m.contains(&format!("\"{run}\"")) && m.contains(&format!("\"{shard}/2\""))
                })
                .unwrap();
            let mut meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(newest.join("run.json")).unwrap())
                    .unwrap();
            meta["timestamp"] = serde_json::json!(start + 600 * r as i64 + shard);
            std::fs::write(newest.join("run.json"), meta.to_string()).unwrap();
        }
    }
    let vm = VictoriaMetrics::start();
    let state = tmp.path().join("vm.state");
    let o = backfill(&[
        &p(&archive),
        "--remote-write",
        &vm.remote_write_url(),
        "--verify",
        &vm.url,
        "--state",
        &p(&state),
    ]);
    assert_exit(&o, 0, "backfill of split runs with --verify");
    assert!(
        text(&o.stderr).contains("verified: the 4 run(s) delivered are stored"),
        "{}",
        text(&o.stderr)
    );
    let mut got: Vec<String> = vm
        .export(r#"pytest_runs_with_timing_violations_total{project="bf-split"}"#)
        .iter()
        .map(|s| {
            format!(
                "shard={} size={} values={}",
                s["metric"]["shard"].as_str().unwrap_or("-"),
                s["metric"]["size"].as_str().unwrap_or("-"),
                s["values"]
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "shard=all size=large values=[0,0]",
            "shard=all size=medium values=[0,0]",
            "shard=all size=small values=[1,2]",
            "shard=all size=xlarge values=[0,0]",
        ]
    );
}

#[test]
fn an_unknown_remote_write_path_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    generate(&archive, 2, 2, now_s() - 3600, 16);
    let o = backfill(&[
        &p(&archive),
        "--remote-write",
        "http://127.0.0.1:9/ingest",
        "--dry-run",
    ]);
    assert_exit(&o, 0, "dry run to an unknown path");
    assert_eq!(
        text(&o.stderr).lines().next().unwrap(),
        "warning: --remote-write http://127.0.0.1:9/ingest: /ingest is no remote-write path \
         ptc-metrics knows (Prometheus and VictoriaMetrics /api/v1/write, Mimir and Cortex \
         /api/v1/push or /api/prom/push, Thanos Receive /api/v1/receive, VictoriaMetrics cluster \
         /insert/<tenant>/prometheus/api/v1/write); if it answers 2xx without storing them, the runs \
         are lost: add --verify URL (the receiver's query API) to check that they arrive"
    );
}

/// A run directory holding `junit.xml` and its own `junit.xml.gz` (METRICS.md §1): the
/// report is read once, with a warning. Read twice, every passed test looked flaky.
#[test]
fn a_report_beside_its_gzip_copy_is_read_once() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("archive").join("run-1");
    std::fs::create_dir_all(&run).unwrap();
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pytest-9.2");
    let xml = std::fs::read(fx.join("junit-xunit2.xml")).unwrap();
    std::fs::write(run.join("junit.xml"), &xml).unwrap();
    let mut z = flate2::write::GzEncoder::new(
        std::fs::File::create(run.join("junit.xml.gz")).unwrap(),
        flate2::Compression::default(),
    );
    z.write_all(&xml).unwrap();
    z.finish().unwrap();
    std::fs::copy(fx.join("size-report.json"), run.join("size-report.json")).unwrap();
    let om = tmp.path().join("out.om");
    let state = tmp.path().join("s.state");
    let o = backfill(&[
        &p(&tmp.path().join("archive")),
        "--openmetrics",
        &p(&om),
        "--state",
        &p(&state),
    ]);
    assert_exit(&o, 0, "backfill");
    let out = std::fs::read_to_string(&om).unwrap();
    let flaky: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("pytest_flaky_tests{"))
        .collect();
    assert!(
        flaky
            .iter()
            .any(|l| l.starts_with("pytest_flaky_tests{job=\"pytest\",size=\"small\"} 1 ")),
        "{flaky:?}"
    );
    assert!(
        flaky
            .iter()
            .all(|l| l.contains("size=\"small\"} 1 ") || l.contains("} 0 ")),
        "{flaky:?}"
    );
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!(
            "{} has the same content as {}: read once",
            p(&run.join("junit.xml.gz")),
            p(&run.join("junit.xml"))
        )),
        "{err}"
    );
}
