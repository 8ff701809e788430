//! Removing groups from a real Pushgateway: `prune` (groups of a job last pushed longer ago
//! than `--older-than`, except the `--keep` branches, with their pending pushes) and `delete`
//! (one group and its pending pushes, or a note that it was not there).
//!
//! The gateway sets `push_time_seconds` itself when a group is pushed, so groups are made
//! old by waiting: `--older-than 0.05m` (3 s) and a wait of 4.5 s, once.

mod support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use base64::Engine;
use support::{cli, fixture, Pushgateway};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let o = cli().args(args).output().unwrap();
    Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Pushes the 9.2 fixture to group `job`, `project="app"`, `branch`.
fn push(gateway: &str, job: &str, branch: &str, extra: &[&str]) {
    let (report, sizes) = (
        fixture("9.2", "junit-xunit2.xml"),
        fixture("9.2", "size-report.json"),
    );
    let mut args = vec![
        "push",
        &report,
        "--size-report",
        &sizes,
        "--gateway",
        gateway,
        "--job",
        job,
        "--project",
        "app",
        "--branch",
        branch,
        "--no-ci-detect",
    ];
    args.extend_from_slice(extra);
    let r = run(&args);
    assert_eq!(r.code, Some(0), "push {branch}: {}", r.stderr);
}

/// Every group on the gateway, as the labels of its `push_time_seconds` (without the empty
/// `instance` label the gateway adds), e.g. `branch="main",job="pytest",project="app"`.
fn groups(gw: &Pushgateway) -> BTreeSet<String> {
    gw.metric_lines("push_time_seconds")
        .iter()
        .map(|l| {
            let inner = &l[l.find('{').unwrap() + 1..l.rfind('}').unwrap()];
            inner.replace("instance=\"\",", "")
        })
        .collect()
}

/// The groups among `all` whose labels hold every one of `parts`.
fn with(all: &BTreeSet<String>, parts: &[&str]) -> BTreeSet<String> {
    all.iter()
        .filter(|g| parts.iter().all(|p| g.split(',').any(|l| l == *p)))
        .cloned()
        .collect()
}

/// The group's URL as ptc-metrics shows it: job first, then the other labels by name, values
/// with `/` (or empty) in the `@base64` form.
fn url_of(gateway: &str, group: &str) -> String {
    let mut job = String::new();
    let mut rest = String::new();
    for l in group.split(',') {
        let (k, v) = l.split_once('=').unwrap();
        let v = v.trim_matches('"');
        if k == "job" {
            job = v.to_string();
        } else if v.is_empty() || v.contains('/') {
            let b = base64::engine::general_purpose::URL_SAFE.encode(v);
            rest.push_str(&format!(
                "/{k}@base64/{}",
                if v.is_empty() { "=" } else { &b }
            ));
        } else {
            rest.push_str(&format!("/{k}/{v}"));
        }
    }
    format!("{gateway}/metrics/job/{job}{rest}")
}

/// The lines of `s`, sorted, with a listing's age of a few seconds (`(last push 5s ago)`)
/// written as `Ns`: the exact second depends on the machine.
fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .lines()
        .map(|l| match l.rsplit_once(" (last push ") {
            Some((head, age))
                if age.ends_with("s ago)")
                    && age[..age.len() - 6].parse::<u32>().is_ok_and(|n| n < 60) =>
            {
                format!("{head} (last push Ns ago)")
            }
            _ => l.to_string(),
        })
        .collect();
    v.sort();
    v
}

/// `VERB URL (last push Ns ago)` for each group, sorted (the gateway's order is by labels).
fn listing(verb: &str, gateway: &str, groups: &BTreeSet<String>) -> Vec<String> {
    let mut v: Vec<String> = groups
        .iter()
        .map(|g| format!("{verb} {} (last push Ns ago)", url_of(gateway, g)))
        .collect();
    v.sort();
    v
}

#[test]
fn prune_deletes_old_groups_of_other_branches_with_their_pending_pushes() {
    let gw = Pushgateway::start();
    let url = gw.url.as_str();
    for branch in ["main", "master", "feature-x", "release/1.2"] {
        push(url, "pytest", branch, &[]);
    }
    // A group with an empty grouping label: `os=""` is part of its key on the gateway.
    push(url, "pytest", "feature-y", &["--label", "os="]);
    push(url, "nightly", "feature-x", &[]);
    let old_pushed = Instant::now();
    let before = groups(&gw);
    // Each push leaves its pending group (ptc_push=…) until a later push cleans it up.
    assert_eq!(before.len(), 12, "{before:#?}");
    assert_eq!(with(&before, &["job=\"nightly\""]).len(), 2);

    // Everything is fresh: nothing to prune.
    let r = run(&["prune", "--gateway", url, "--older-than", "1m", "--dry-run"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        format!(
            "would delete 0 of 5 groups of job \"pytest\" on {url}/ (kept: 2 of branches main, \
             master, 3 pushed within 1m)\n"
        )
    );
    assert_eq!(groups(&gw), before);

    // Make them older than 3 s; then one more branch, young.
    std::thread::sleep(Duration::from_millis(4500).saturating_sub(old_pushed.elapsed()));
    push(url, "pytest", "feature-new", &[]);
    let all = groups(&gw);
    assert_eq!(all.len(), 14, "{all:#?}");
    let pytest = |branch: &str| with(&all, &["job=\"pytest\"", &format!("branch=\"{branch}\"")]);
    let feature_x = pytest("feature-x");
    let feature_y = pytest("feature-y");
    let release = pytest("release/1.2");
    assert_eq!(
        (feature_x.len(), feature_y.len(), release.len()),
        (2, 2, 2),
        "{all:#?}"
    );
    assert!(
        feature_y.iter().all(|g| g.contains("os=\"\"")),
        "{feature_y:?}"
    );

    // The dry run lists the old groups of feature branches and their pending pushes.
    let r = run(&[
        "prune",
        "--gateway",
        url,
        "--older-than",
        "0.05m",
        "--dry-run",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let doomed: BTreeSet<String> = feature_x
        .iter()
        .chain(&feature_y)
        .chain(&release)
        .cloned()
        .collect();
    assert_eq!(
        sorted_lines(&r.stdout),
        listing("would delete", url, &doomed)
    );
    assert_eq!(
        r.stderr,
        format!(
            "would delete 3 of 6 groups of job \"pytest\" (and 3 pending pushes) on {url}/ (kept: 2 of branches main, \
             master, 1 pushed within 3s)\n"
        )
    );
    assert_eq!(groups(&gw), all, "a dry run deletes nothing");

    // --keep release/* keeps the release branch.
    let r = run(&[
        "prune",
        "--gateway",
        url,
        "--older-than",
        "0.05m",
        "--keep",
        "main,master,release/*",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let gone: BTreeSet<String> = feature_x.union(&feature_y).cloned().collect();
    assert_eq!(sorted_lines(&r.stdout), listing("deleted", url, &gone));
    assert_eq!(
        r.stderr,
        format!(
            "deleted 2 of 6 groups of job \"pytest\" (and 2 pending pushes) on {url}/ (kept: 3 of branches main, \
             master, release/*, 1 pushed within 3s)\n"
        )
    );
    let left: BTreeSet<String> = all.difference(&gone).cloned().collect();
    assert_eq!(groups(&gw), left);

    // The default --keep (main, master) lets it go.
    let r = run(&["prune", "--gateway", url, "--older-than", "0.05m"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(sorted_lines(&r.stdout), listing("deleted", url, &release));
    assert_eq!(
        r.stderr,
        format!(
            "deleted 1 of 4 groups of job \"pytest\" (and 1 pending push) on {url}/ (kept: 2 of branches main, \
             master, 1 pushed within 3s)\n"
        )
    );

    // Left: main, master and the young branch with their pending pushes, and the other job.
    let left = groups(&gw);
    let expect: BTreeSet<String> = [
        pytest("main"),
        pytest("master"),
        pytest("feature-new"),
        with(&all, &["job=\"nightly\""]),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(left, expect);
    assert_eq!(left.len(), 8);
    assert_eq!(gw.api_metrics().as_array().unwrap().len(), 8);
    // The kept groups still hold their metrics.
    let runs = gw.metric_lines("pytest_runs_total");
    for branch in ["main", "master", "feature-new"] {
        assert!(
            runs.iter().any(|l| l
                == &format!(
                    "pytest_runs_total{{branch=\"{branch}\",instance=\"\",job=\"pytest\",project=\"app\"}} 1"
                )),
            "{runs:#?}"
        );
    }
    assert_eq!(runs.len(), 4, "{runs:#?}");
}

#[test]
fn prune_usage_errors_exit_2() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--gateway", "http://127.0.0.1:9", "--older-than", "abc"],
            "error: --older-than: \"abc\" is not an age; write e.g. 30d, 12h, 2w or 90m\n",
        ),
        (
            &["--gateway", "http://127.0.0.1:9", "--older-than", "30"],
            "error: --older-than: \"30\" is not an age; write e.g. 30d, 12h, 2w or 90m\n",
        ),
        (
            &["--gateway", "http://127.0.0.1:9"],
            "error: prune needs --older-than AGE (e.g. --older-than 30d): groups pushed more \
             recently are kept\n",
        ),
        (
            &["--older-than", "30d"],
            "error: no Pushgateway: give --gateway URL (or PTC_METRICS_GATEWAY)\n",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["prune"];
        all.extend_from_slice(args);
        let r = cli()
            .args(&all)
            .env_remove("PTC_METRICS_GATEWAY")
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(2), "{all:?}");
        assert_eq!(String::from_utf8_lossy(&r.stderr), want, "{all:?}");
        assert!(r.stdout.is_empty());
    }
}

/// A port nobody listens on.
fn dead_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

#[test]
fn prune_without_a_gateway_fails_or_warns_under_soft_fail() {
    let url = dead_url();
    let args = [
        "prune",
        "--gateway",
        &url,
        "--older-than",
        "30d",
        "--retries",
        "1",
    ];
    let cause = format!(
        "GET {url}/metrics: cannot connect (Connection refused (os error 111)) after 2 \
         attempt(s); check the URL and that the server is up"
    );
    let r = run(&args);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "error: {cause}\nhint: add --soft-fail to keep the job green when the groups cannot \
             be pruned\n"
        )
    );
    let mut soft = args.to_vec();
    soft.push("--soft-fail");
    let r = run(&soft);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!("warning: groups not pruned (--soft-fail): {cause}\n")
    );
}

fn delete(gateway: &str, branch: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "delete",
        "--gateway",
        gateway,
        "--project",
        "app",
        "--branch",
        branch,
        "--no-ci-detect",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn delete_removes_the_group_and_its_pending_pushes() {
    let gw = Pushgateway::start();
    let url = gw.url.as_str();
    push(url, "pytest", "feature-z", &[]);
    push(url, "pytest", "feature-z", &[]);
    push(url, "pytest", "feature-w", &[]);
    let all = groups(&gw);
    // Two pushes: the group and two pending pushes (cleaned only after a grace of minutes).
    assert_eq!(with(&all, &["branch=\"feature-z\""]).len(), 3, "{all:#?}");

    let r = delete(url, "feature-z", &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        format!(
            "deleted group {url}/metrics/job/pytest/project/app/branch/feature-z and its 2 \
             pending push(es)\n"
        )
    );
    assert_eq!(groups(&gw), with(&all, &["branch=\"feature-w\""]));

    // Again: it is gone.
    let r = delete(url, "feature-z", &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "group {url}/metrics/job/pytest/project/app/branch/feature-z was not there; nothing \
             deleted (check --job, --project, --branch and --label)\n"
        )
    );
    assert_eq!(groups(&gw).len(), 2);
}

#[test]
fn delete_of_a_group_that_is_not_there_says_so() {
    let gw = Pushgateway::start();
    let url = gw.url.as_str();
    push(url, "pytest", "main", &[]);
    let before = groups(&gw);
    // Same project, another branch; and the same branch under another job.
    let r = delete(url, "mian", &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "group {url}/metrics/job/pytest/project/app/branch/mian was not there; nothing \
             deleted (check --job, --project, --branch and --label)\n"
        )
    );
    let r = delete(url, "main", &["--job", "nightly"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "group {url}/metrics/job/nightly/project/app/branch/main was not there; nothing \
             deleted (check --job, --project, --branch and --label)\n"
        )
    );
    assert_eq!(groups(&gw), before);
}

#[test]
fn delete_soft_fails_on_delivery_only() {
    let url = dead_url();
    let r = delete(&url, "main", &["--retries", "0"]);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "error: GET {url}/metrics: cannot connect (Connection refused (os error 111)) after 1 \
             attempt(s); check the URL and that the server is up\n\
             hint: add --soft-fail to keep the job green when the group cannot be deleted\n"
        )
    );
    let r = delete(&url, "main", &["--retries", "0", "--soft-fail"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "warning: group not deleted (--soft-fail): GET {url}/metrics: cannot connect \
             (Connection refused (os error 111)) after 1 attempt(s); check the URL and that the \
             server is up\n"
        )
    );
    // A CA file that cannot be read is a usage error, --soft-fail or not (as for push).
    let r = delete(
        &url,
        "main",
        &["--ca-file", "/nonexistent/ca.pem", "--soft-fail"],
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "error: /nonexistent/ca.pem: cannot read the CA file: No such file or directory (os \
         error 2)\n"
    );
}

/// A push in progress has written its pending group but not yet merged it into its group
/// (here: the first push of a branch, so the group does not exist yet). However small
/// `--older-than`, prune leaves it; the next push of the branch counts it.
#[test]
fn prune_leaves_a_push_in_progress_alone() {
    let gw = Pushgateway::start();
    let url = gw.url.as_str();
    let pending = "/metrics/job/pytest/project/app/branch/feature-z/ptc_push/00000000000000ab";
    let body =
        "# HELP ptc_pending_pytest_runs_total A pending ptc-metrics push (internal; counted \
                into the group once, then deleted).\n# TYPE ptc_pending_pytest_runs_total counter\n\
                ptc_pending_pytest_runs_total 1\n";
    let (status, text) = gw.push_raw("PUT", pending, body);
    assert_eq!(status, 200, "{text}");
    std::thread::sleep(Duration::from_millis(4500));
    let r = run(&["prune", "--gateway", url, "--older-than", "0.05m"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        format!(
            "deleted 0 of 0 groups of job \"pytest\" on {url}/ (kept: 0 of branches main, \
             master, 0 pushed within 3s)\n"
        )
    );
    assert_eq!(gw.metric_lines("ptc_pending_pytest_runs_total").len(), 1);
    // --keep '': no branch is kept, and the summary lists none.
    let r = run(&[
        "prune",
        "--gateway",
        url,
        "--older-than",
        "0.05m",
        "--keep",
        "",
        "--dry-run",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "would delete 0 of 0 groups of job \"pytest\" on {url}/ (kept: 0 pushed within 3s)\n"
        )
    );
    push(url, "pytest", "feature-z", &[]);
    assert_eq!(
        gw.metric_lines("pytest_runs_total"),
        ["pytest_runs_total{branch=\"feature-z\",instance=\"\",job=\"pytest\",project=\"app\"} 2"]
    );
}
