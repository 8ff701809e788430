//! Self-test of the shared harness in `tests/support` against the real servers.
//! Independent of the product code: only plain HTTP and the Debian binaries.
//! Run with `cargo test --test harness_smoke -- --nocapture` to see start timings.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let v = f();
    eprintln!("[timing] {what}: {:?}", t.elapsed());
    v
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
#[should_panic(
    expected = "definitely-not-a-binary-xyz not found: install the Debian package some-pkg (apt-get install -y --no-install-recommends some-pkg)"
)]
fn require_binary_panics_with_install_hint() {
    require_binary("definitely-not-a-binary-xyz", "some-pkg");
}

#[test]
fn require_binary_finds_installed_servers() {
    for (bin, pkg) in [
        ("prometheus-pushgateway", "prometheus-pushgateway"),
        ("prometheus", "prometheus"),
        ("promtool", "prometheus"),
        ("prometheus-alertmanager", "prometheus-alertmanager"),
        ("amtool", "prometheus-alertmanager"),
        ("victoria-metrics", "victoria-metrics"),
    ] {
        let p = require_binary(bin, pkg);
        assert!(p.is_absolute() && p.ends_with(bin), "{}", p.display());
    }
}

#[test]
fn free_port_is_bindable() {
    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("port should be free");
}

#[test]
fn pushgateway_push_inspect_wipe_and_drop() {
    let pg = timed("pushgateway start", Pushgateway::start);
    assert!(pg.url.starts_with("http://127.0.0.1:"));

    let (status, body) = pg.push_raw(
        "PUT",
        "/metrics/job/smoke/instance/i1",
        "# HELP smoke_value A smoke test value.\n# TYPE smoke_value gauge\nsmoke_value{kind=\"a\"} 12.5\n",
    );
    assert_eq!(status, 200, "{body}");

    let groups = pg.api_metrics();
    let group = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["labels"]["job"] == "smoke")
        .unwrap_or_else(|| panic!("group not found: {groups}"));
    assert_eq!(group["labels"]["instance"], "i1");
    assert_eq!(group["smoke_value"]["type"], "GAUGE");
    assert_eq!(group["smoke_value"]["metrics"][0]["value"], "12.5");

    assert_eq!(
        pg.metric_lines("smoke_value"),
        vec![r#"smoke_value{instance="i1",job="smoke",kind="a"} 12.5"#.to_string()]
    );
    assert!(pg
        .metrics_text()
        .contains("# HELP smoke_value A smoke test value."));

    // Pushing a timestamped sample is rejected; the harness reports the body.
    let (status, body) = pg.push_raw("PUT", "/metrics/job/bad", "ts_metric 1 1795698732000\n");
    assert_eq!(status, 400);
    assert!(body.contains("must not have timestamps"), "{body}");

    pg.wipe();
    assert_eq!(pg.api_metrics(), serde_json::json!([]));

    let url = pg.url.clone();
    timed("pushgateway drop", || drop(pg));
    assert!(
        http().get(format!("{url}/-/ready")).send().is_err(),
        "server still answering after drop"
    );
}

#[test]
fn promtool_check_metrics_accepts_clean_text() {
    promtool_check_metrics(
        "# HELP good_total A counter.\n# TYPE good_total counter\ngood_total 1\n",
    );
}

#[test]
#[should_panic(expected = "counter metrics should have \"_total\" suffix")]
fn promtool_check_metrics_rejects_lint_findings() {
    promtool_check_metrics("# HELP processed A counter.\n# TYPE processed counter\nprocessed 1\n");
}

#[test]
#[should_panic(expected = "text format parsing error")]
fn promtool_check_metrics_rejects_parse_errors() {
    promtool_check_metrics("this is not valid\n");
}

#[test]
fn prometheus_scrapes_pushgateway_with_honor_labels() {
    let t0 = Instant::now();
    let (pg, prom) = timed(
        "pushgateway + prometheus start",
        pushgateway_with_prometheus,
    );
    let (status, body) = pg.push_raw(
        "PUT",
        "/metrics/job/probejob/instance/inst1",
        "# TYPE probe_value gauge\nprobe_value{kind=\"x\"} 123\n",
    );
    assert_eq!(status, 200, "{body}");

    timed("prometheus first scrape (targets up)", || {
        prom.wait_for_targets_up(Duration::from_secs(20))
    });
    let samples = timed("pushed value queryable", || {
        prom.wait_for_samples("probe_value", Duration::from_secs(20))
    });
    assert_eq!(samples.len(), 1, "{samples:?}");
    let s = &samples[0];
    assert_eq!(s.value, 123.0);
    assert_eq!(
        s.labels["job"], "probejob",
        "honor_labels keeps the pushed job"
    );
    assert_eq!(s.labels["instance"], "inst1");
    assert_eq!(s.labels["kind"], "x");

    // A second push is picked up within a few scrape intervals.
    pg.push_raw(
        "PUT",
        "/metrics/job/probejob/instance/inst1",
        "# TYPE probe_value gauge\nprobe_value{kind=\"x\"} 124\n",
    );
    timed("updated value queryable", || {
        prom.wait_for(
            "probe_value",
            |d| vector_samples(d).first().is_some_and(|s| s.value == 124.0),
            Duration::from_secs(10),
        )
    });
    assert_eq!(prom.query_vector("vector(1)")[0].value, 1.0);
    eprintln!("[timing] scrape test total: {:?}", t0.elapsed());
}

#[test]
fn prometheus_options_rules_remote_write_ooo() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: smoke\n    rules:\n      - record: smoke:one\n        expr: vector(1)\n",
    )
    .unwrap();
    promtool(&["check", "rules", rules.to_str().unwrap()]).assert_success("promtool check rules");

    let am = timed("alertmanager start", Alertmanager::start);
    let prom = timed("prometheus start (options)", || {
        Prometheus::builder()
            .rule_file(&rules)
            .remote_write_receiver()
            .out_of_order_time_window("30d")
            .alertmanager(&am.addr)
            .start()
    });
    let flags = http_get_json(&format!("{}/api/v1/status/flags", prom.url));
    assert_eq!(flags["data"]["web.enable-remote-write-receiver"], "true");
    let config = http_get_json(&format!("{}/api/v1/status/config", prom.url));
    let yaml = config["data"]["yaml"].as_str().unwrap();
    assert!(yaml.contains("out_of_order_time_window: 30d"), "{yaml}");
    assert!(yaml.contains(&am.addr), "{yaml}");

    // The recording rule evaluates every second.
    prom.wait_for_samples("smoke:one", Duration::from_secs(10));
    assert_eq!(prom.rules()["groups"][0]["name"], "smoke");

    // Remote write endpoint exists (an empty body is a 400 decode error, not 404).
    let resp = http()
        .post(prom.remote_write_url())
        .body(Vec::<u8>::new())
        .send()
        .unwrap();
    assert_ne!(resp.status().as_u16(), 404);
}

#[test]
fn prometheus_serves_promtool_backfilled_tsdb() {
    let t0 = (now_s() as i64) - 30 * 86400; // 30 days ago
    let om = format!(
        "# HELP backfill_metric A gauge.\n# TYPE backfill_metric gauge\n\
         backfill_metric{{job=\"b\"}} 4 {t0}\n\
         backfill_metric{{job=\"b\"}} 5 {}\n# EOF\n",
        t0 + 60
    );
    let tsdb = timed("promtool create-blocks", || {
        promtool_create_blocks_from_openmetrics(&om)
    });
    let prom = timed("prometheus start (data dir)", || {
        Prometheus::start_on_data_dir(tsdb.path().join("data"))
    });
    let s = vector_samples(&prom.query_at("backfill_metric", (t0 + 90) as f64));
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].value, 5.0);
    assert!(
        prom.query_vector("backfill_metric").is_empty(),
        "stale after 5m"
    );
}

#[test]
fn victoria_metrics_import_query_export() {
    let vm = timed("victoria-metrics start", VictoriaMetrics::start);
    let ts_ms = ((now_s() - 2.0 * 86400.0) * 1000.0) as i64; // 2 days old
    let resp = http()
        .post(format!("{}/api/v1/import/prometheus", vm.url))
        .body(format!(
            "vm_smoke{{job=\"j\"}} 7 {ts_ms}\nvm_smoke_now{{job=\"j\"}} 3\n"
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);

    let series = vm.export("{__name__=~\"vm_smoke.*\"}");
    assert_eq!(series.len(), 2, "{series:?}");
    let old = series
        .iter()
        .find(|s| s["metric"]["__name__"] == "vm_smoke")
        .unwrap();
    assert_eq!(old["timestamps"][0], ts_ms);
    assert_eq!(old["values"][0], 7.0);

    let s = vm.query_vector("vm_smoke_now");
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].value, 3.0);
    let s = vector_samples(&vm.query_at("vm_smoke", ts_ms as f64 / 1000.0 + 10.0));
    assert_eq!(s[0].value, 7.0);
    assert_eq!(vm.self_metric("vm_rows_invalid_total"), 0.0);
}

#[test]
fn alertmanager_starts_without_cluster() {
    let am = timed("alertmanager start", Alertmanager::start);
    assert_eq!(am.status()["cluster"]["status"], "disabled");
    let resp = http()
        .post(format!("{}/api/v2/alerts", am.url))
        .header("Content-Type", "application/json")
        .body(r#"[{"labels": {"alertname": "Smoke", "severity": "info"}}]"#)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let alerts = am.alerts();
    assert_eq!(alerts[0]["labels"]["alertname"], "Smoke", "{alerts}");
    amtool(&["--version"]).assert_success("amtool --version");
}

#[test]
#[should_panic(expected = "unknown long flag '--no-such-flag'")]
fn failed_start_reports_exit_and_server_log() {
    Prometheus::builder().arg("--no-such-flag").start();
}
