//! Test support for backfill: a generated archive of runs, the series it should become,
//! and comparison with what a server stores.
//!
//! The archive is made from the committed pytest 9.2 fixtures: each run is a directory with
//! a fixture's JUnit XML (its `testsuite@timestamp` rewritten to the run's start, so every
//! run is distinct), the matching size report, sometimes coverage.xml, sometimes gzipped,
//! and a run.json with project, branch and a label.
//!
//! The expected series are built independently of the backfill code: the per-run values
//! come from `ptc-metrics push --dry-run` on each fixture (the single-run path the other
//! tests check against the fixtures), and the cumulative families are summed here, run by
//! run, in time order per group.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One fixture combination a run can be made of.
#[derive(Debug, Clone, Copy)]
pub struct Combo {
    pub junit: &'static str,
    pub size_report: Option<&'static str>,
}

pub const COMBOS: [Combo; 5] = [
    Combo {
        junit: "junit-xunit2.xml",
        size_report: Some("size-report.json"),
    },
    Combo {
        junit: "junit-reruns.xml",
        size_report: Some("size-report-reruns.json"),
    },
    Combo {
        junit: "junit-enforcement-warn.xml",
        size_report: Some("size-report-enforcement-warn.json"),
    },
    Combo {
        junit: "junit-xdist-n2.xml",
        size_report: Some("size-report-xdist-n2.json"),
    },
    Combo {
        junit: "junit-xunit1.xml",
        size_report: None,
    },
];

pub const PROJECTS: [&str; 3] = ["shop", "ledger", "infra/tools"];
pub const BRANCHES: [&str; 2] = ["main", "feature/x"];

/// A generated run.
#[derive(Debug, Clone)]
pub struct GenRun {
    pub dir: PathBuf,
    pub project: &'static str,
    pub branch: &'static str,
    /// Run start, whole Unix seconds.
    pub ts: i64,
    pub combo: usize,
    pub coverage: bool,
    pub gz: bool,
}

impl GenRun {
    /// The group labels every series of the run carries.
    pub fn group(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("job".to_string(), "pytest".to_string()),
            ("project".to_string(), self.project.to_string()),
            ("branch".to_string(), self.branch.to_string()),
            ("ci_job".to_string(), "tests".to_string()),
        ])
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pytest-9.2")
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A small deterministic generator (SplitMix64), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `YYYY-MM-DDTHH:MM:SS+00:00` of Unix seconds.
pub fn iso(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let rem = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Writes `n` runs spread over the `days` days before `end_s` into `root`, several projects
/// and branches, one directory per run (`root/<project>/<branch>/run-<i>`).
pub fn generate(root: &Path, n: usize, days: i64, end_s: i64, seed: u64) -> Vec<GenRun> {
    let mut rng = Rng::new(seed);
    let groups = PROJECTS.len() * BRANCHES.len();
    let span = days * 86_400;
    let mut runs = Vec::with_capacity(n);
    // Evenly spaced slots per group with jitter, so that runs of a group never share a second.
    let per_group = n.div_ceil(groups) as i64;
    let slot = span / per_group.max(1);
    for i in 0..n {
        let g = i % groups;
        let k = (i / groups) as i64;
        let ts = end_s - span + k * slot + rng.below((slot / 2) as u64) as i64;
        let run = GenRun {
            dir: PathBuf::new(),
            project: PROJECTS[g % PROJECTS.len()],
            branch: BRANCHES[g / PROJECTS.len()],
            ts,
            combo: rng.below(COMBOS.len() as u64) as usize,
            coverage: rng.below(2) == 0,
            gz: rng.below(3) == 0,
        };
        runs.push(write_run(root, &format!("run-{i:04}"), run));
    }
    runs
}

/// Writes one run directory (replacing `run.dir`).
pub fn write_run(root: &Path, name: &str, mut run: GenRun) -> GenRun {
    let dir = root
        .join(run.project.replace('/', "_"))
        .join(run.branch.replace('/', "_"))
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let combo = COMBOS[run.combo];
    let xml = std::fs::read_to_string(fixtures().join(combo.junit)).unwrap();
    let xml = set_suite_timestamp(&xml, &iso(run.ts));
    if run.gz {
        let f = std::fs::File::create(dir.join("junit.xml.gz")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        enc.write_all(xml.as_bytes()).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(dir.join("junit.xml"), xml).unwrap();
    }
    if let Some(s) = combo.size_report {
        std::fs::copy(fixtures().join(s), dir.join("size-report.json")).unwrap();
    }
    if run.coverage {
        std::fs::copy(fixtures().join("coverage.xml"), dir.join("coverage.xml")).unwrap();
    }
    let meta = serde_json::json!({
        "version": 1,
        "project": run.project,
        "branch": run.branch,
        "labels": {"ci_job": "tests"},
        "commit": format!("{:040x}", run.ts),
        "run_id": name,
    });
    std::fs::write(dir.join("run.json"), meta.to_string()).unwrap();
    run.dir = dir;
    run
}

/// Rewrites every `timestamp="…"` of `<testsuite …>` start tags.
pub fn set_suite_timestamp(xml: &str, ts: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(i) = rest.find("<testsuite ") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let end = tail.find('>').unwrap();
        let tag = &tail[..end];
        let tag = match tag.find("timestamp=\"") {
            Some(a) => {
                let b = tag[a + 11..].find('"').unwrap() + a + 11;
                format!("{}timestamp=\"{ts}\"{}", &tag[..a], &tag[b + 1..])
            }
            None => tag.to_string(),
        };
        out.push_str(&tag);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A series: metric name plus labels (with `le` normalised, see [`norm_le`]).
pub type SeriesKey = (String, BTreeMap<String, String>);
/// Series → `(timestamp ms, value)` in time order.
pub type Expected = BTreeMap<SeriesKey, Vec<(i64, f64)>>;

/// One fixture combination's single-run exposition, by series (job label dropped), and
/// which names are cumulative.
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    pub series: BTreeMap<SeriesKey, f64>,
}

/// `le="1.0"` and `le="1"` are the same bound: spell both as Rust's shortest `1`.
pub fn norm_le(labels: &mut BTreeMap<String, String>) {
    if let Some(le) = labels.get_mut("le") {
        if le != "+Inf" {
            if let Ok(v) = le.parse::<f64>() {
                *le = v.to_string();
            }
        }
    }
}

/// Parses text 0.0.4 sample lines (`name{k="v",…} value`).
pub fn parse_exposition(text: &str) -> BTreeMap<SeriesKey, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => continue,
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let mut key = String::new();
            let mut end = 0;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        chars.next(); // opening quote
                        let mut v = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|x| x.1) {
                                    Some('n') => v.push('\n'),
                                    Some(o) => v.push(o),
                                    None => {}
                                },
                                '"' => break,
                                o => v.push(o),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), v);
                    }
                    o => key.push(o),
                }
            }
            rest = &r[end..];
        }
        let value: f64 = match rest.trim() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        labels.remove("job");
        norm_le(&mut labels);
        out.insert((name.to_string(), labels), value);
    }
    out
}

/// Cumulative series (counters and the histogram) add up across runs.
pub fn is_cumulative(name: &str) -> bool {
    name.ends_with("_total") || name.starts_with("pytest_test_duration_seconds")
}

/// The single-run exposition of each fixture combination, with and without coverage.
pub fn oracles() -> BTreeMap<(usize, bool), Oracle> {
    let mut m = BTreeMap::new();
    for (i, c) in COMBOS.iter().enumerate() {
        for cov in [false, true] {
            let mut args = vec![
                "push".to_string(),
                "--dry-run".into(),
                "--no-ci-detect".into(),
                fixtures().join(c.junit).display().to_string(),
            ];
            if let Some(s) = c.size_report {
                args.push("--size-report".into());
                args.push(fixtures().join(s).display().to_string());
            }
            if cov {
                args.push("--coverage".into());
                args.push(fixtures().join("coverage.xml").display().to_string());
            }
            let out = super::support::cli().args(&args).output().unwrap();
            assert!(
                out.status.success(),
                "oracle push --dry-run {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let series = parse_exposition(&String::from_utf8_lossy(&out.stdout));
            m.insert((i, cov), Oracle { series });
        }
    }
    m
}

/// The series a backfill of `runs` (in one or more invocations, `batches`: each a list of
/// indexes into `runs`) must produce: per-run values at the run's second; cumulative ones
/// summed in time order per group; a run older than what an earlier invocation already
/// delivered for its group adds its counts one second after the group's newest cumulative
/// sample (docs/backfill.md "late runs").
pub fn expected(runs: &[GenRun], invocations: &[Vec<usize>]) -> Expected {
    let oracles = oracles();
    let mut exp: Expected = BTreeMap::new();
    // Per group: cumulative values, cursor (ms), used gauge seconds.
    struct G {
        totals: BTreeMap<SeriesKey, f64>,
        cursor: Option<i64>,
    }
    let mut groups: BTreeMap<String, G> = BTreeMap::new();
    for inv in invocations {
        let mut order: Vec<&GenRun> = inv.iter().map(|i| &runs[*i]).collect();
        order.sort_by_key(|r| r.ts);
        for r in order {
            let gkey = format!("{:?}", r.group());
            let g = groups.entry(gkey).or_insert(G {
                totals: BTreeMap::new(),
                cursor: None,
            });
            let ts = r.ts * 1000;
            let cum_ts = match g.cursor {
                Some(c) if ts <= c => c + 1000,
                _ => ts,
            };
            g.cursor = Some(cum_ts);
            let o = &oracles[&(r.combo, r.coverage)];
            for ((name, labels), v) in &o.series {
                let mut l = labels.clone();
                l.extend(r.group());
                if is_cumulative(name) {
                    *g.totals.entry((name.clone(), l)).or_default() += v;
                } else {
                    let v = if name == "pytest_last_run_timestamp_seconds" {
                        r.ts as f64
                    } else {
                        *v
                    };
                    exp.entry((name.clone(), l)).or_default().push((ts, v));
                }
            }
            for (k, v) in &g.totals {
                exp.entry(k.clone()).or_default().push((cum_ts, *v));
            }
        }
    }
    for pts in exp.values_mut() {
        pts.sort_by_key(|p| p.0);
    }
    exp
}

/// A result's `metric` object: the name and the other labels (`le` normalized).
fn series_name_and_labels(metric: &Value) -> (String, BTreeMap<String, String>) {
    let mut labels: BTreeMap<String, String> = metric
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let name = labels.remove("__name__").unwrap_or_default();
    norm_le(&mut labels);
    (name, labels)
}

/// Parses a Prometheus `matrix` result (or VictoriaMetrics export lines) into series.
pub fn from_matrix(data: &Value) -> Expected {
    let mut out: Expected = BTreeMap::new();
    for s in data["result"].as_array().expect("matrix result") {
        let (name, labels) = series_name_and_labels(&s["metric"]);
        let pts = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                (t, super::support::parse_prom_float(p[1].as_str().unwrap()))
            })
            .collect();
        out.insert((name, labels), pts);
    }
    out
}

/// VictoriaMetrics `/api/v1/export` lines into series.
pub fn from_vm_export(lines: &[Value]) -> Expected {
    let mut out: Expected = BTreeMap::new();
    for s in lines {
        let (name, labels) = series_name_and_labels(&s["metric"]);
        let ts = s["timestamps"].as_array().unwrap();
        let vs = s["values"].as_array().unwrap();
        let mut pts: Vec<(i64, f64)> = ts
            .iter()
            .zip(vs)
            .map(|(t, v)| {
                let v = match v {
                    Value::String(s) => super::support::parse_prom_float(s),
                    o => o.as_f64().unwrap(),
                };
                (t.as_i64().unwrap(), v)
            })
            .collect();
        pts.sort_by_key(|p| p.0);
        out.insert((name, labels), pts);
    }
    out
}

/// Removes samples stored twice with the same timestamp and value (a re-sent batch);
/// returns how many. Two *different* values at one timestamp stay, and fail [`assert_same`].
pub fn dedup_identical(series: &mut Expected) -> usize {
    let mut n = 0;
    for pts in series.values_mut() {
        let before = pts.len();
        pts.dedup_by(|a, b| a.0 == b.0 && a.1.to_bits() == b.1.to_bits());
        n += before - pts.len();
    }
    n
}

/// Asserts that `actual` holds exactly the series of `expected`, sample by sample.
pub fn assert_same(what: &str, expected: &Expected, actual: &Expected) {
    let missing: Vec<&SeriesKey> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<&SeriesKey> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} series missing (first: {:?}), {} unexpected (first: {:?}); {} expected in all",
        missing.len(),
        missing.first(),
        extra.len(),
        extra.first(),
        expected.len()
    );
    let mut samples = 0;
    let mut bad: Vec<String> = Vec::new();
    for (k, want) in expected {
        let got = &actual[k];
        let same = got.len() == want.len()
            && got.iter().zip(want).all(|(g, w)| {
                g.0 == w.0
                    && ((g.1 - w.1).abs() <= 1e-9 * w.1.abs().max(1.0)
                        || (g.1.is_nan() && w.1.is_nan()))
            });
        if !same {
            let missing: Vec<&(i64, f64)> = want
                .iter()
                .filter(|w| !got.iter().any(|g| g.0 == w.0))
                .collect();
            let extra: Vec<&(i64, f64)> = got
                .iter()
                .filter(|g| !want.iter().any(|w| w.0 == g.0))
                .collect();
            bad.push(format!(
                "{k:?}: {} stored, {} expected; missing {missing:?}; unexpected {extra:?}\n got: {got:?}\nwant: {want:?}",
                got.len(),
                want.len()
            ));
        }
        samples += want.len();
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} series differ; first ones:\n{}",
        bad.len(),
        expected.len(),
        bad.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!("{what}: {} series, {samples} samples match", expected.len());
}

/// All samples of the job's series in a Prometheus, as one range-vector query.
pub fn prometheus_series(prom: &super::support::Prometheus, days: i64) -> Expected {
    let data = prom.query_at(
        &format!("{{job=\"pytest\"}}[{}d]", days + 2),
        now_s() as f64,
    );
    from_matrix(&data)
}
