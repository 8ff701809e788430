//! The Grafana dashboards of `dashboards/`, as the tests read them: every dashboard, its
//! panels (rows unfolded) and every query target, and a panel query with Grafana's
//! variables filled in. Shared by `tests/dashboards.rs` and `tests/shards.rs`.

use std::path::Path;

use serde_json::Value;

use super::read_to_string;

/// `(file name, dashboard)` for every `dashboards/*.json`, sorted by name.
pub fn dashboards() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).expect("read dashboards/") {
        let p = e.expect("dir entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            let text = read_to_string(&p);
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", p.display()));
            out.push((p.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 4,
        "expected at least 4 dashboards, found {}",
        out.len()
    );
    out
}

/// Non-row panels, including those nested in rows.
pub fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels array") {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten());
        } else {
            out.push(p);
        }
    }
    out
}

/// A panel on the Loki data source (`${loki}`): the events' logs panels (docs/events.md),
/// whose LogQL no Prometheus can answer.
pub fn is_loki(p: &Value) -> bool {
    p["datasource"]["type"] == "loki"
}

/// (key "uid / panel title / refId", target) for every Prometheus query of every dashboard
/// (the Loki logs panels are checked on their own, tests/dashboards.rs).
pub fn targets() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (_, d) in dashboards() {
        let uid = d["uid"].as_str().expect("uid");
        for p in panels(&d).into_iter().filter(|p| !is_loki(p)) {
            let title = p["title"].as_str().expect("panel title");
            for t in p["targets"].as_array().expect("targets") {
                let r = t["refId"].as_str().expect("refId");
                out.push((format!("{uid} / {title} / {r}"), t.clone()));
            }
        }
    }
    out
}

/// A panel query with `$project`, `$branch`, `$__range` and `$__rate_interval` filled in.
pub fn substitute(expr: &str, project: &str, branch: &str, window: &str) -> String {
    expr.replace("$project", project)
        .replace("$branch", branch)
        // Multi-value selectors set to "All" (their allValue).
        .replace("$size", ".*")
        .replace("$outcome", ".*")
        .replace("$__rate_interval", window)
        .replace("$__range", window)
}
