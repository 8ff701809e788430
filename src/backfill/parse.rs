//! Reading candidate runs in parallel: classify the files of a candidate directory, hash
//! the JUnit reports (the run's identity), skip runs the state lists as delivered, read
//! and summarize the rest (`crate::read::read_run_with`, `crate::derive::summarize`).
//!
//! Work is spread over `jobs` threads (`std::thread::scope`, a shared atomic index as the
//! work queue); results come back over a channel to the calling thread, which reports
//! progress, and are returned in candidate order, so the outcome does not depend on
//! thread timing. A run that cannot be read is an [`Outcome::Failed`], never a panic.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use sha2::{Digest, Sha256};

use super::discover::Candidate;
use super::runmeta::{self, RunMeta};
use crate::config::{GroupConfig, Shard};
use crate::derive::metrics::Labels;
use crate::derive::{summarize, DeriveConfig, Summary};
use crate::read::{read_run_with, source, Inputs, Kind, ReadError, ReadOptions};

/// Sample timestamps are whole seconds: exact in both remote write (ms) and OpenMetrics
/// (seconds, which promtool turns into ms by a float multiplication that truncates).
pub const STEP_MS: i64 = 1000;
/// Runs before 2000-01-01 have no real timestamp.
const MIN_MS: i64 = 946_684_800_000;
/// A run may be at most this far in the future (clock skew), ms.
const MAX_FUTURE_MS: i64 = 10 * 60 * 1000;

/// Labels for runs whose `run.json` does not set them (`--job`, `--project`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub job: String,
    pub project: Option<String>,
    pub branch: Option<String>,
    pub labels: Labels,
    pub junit_prefix: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            job: "pytest".into(),
            project: None,
            branch: None,
            labels: Vec::new(),
            junit_prefix: String::new(),
        }
    }
}

/// A run read from the archive.
#[derive(Debug, Clone)]
pub struct ParsedRun {
    /// SHA-256 (hex) of the run's JUnit reports: its identity.
    pub id: String,
    pub dir: PathBuf,
    pub group: GroupConfig,
    /// [`group_key`] of the group's labels.
    pub key: String,
    /// When the run started, whole seconds in ms.
    pub timestamp_ms: i64,
    /// The timestamp is a file modification time (no report and no run.json had one).
    pub from_mtime: bool,
    pub summary: Summary,
    /// The run's files, read again for its events (`--events`, `--loki`, `--elasticsearch`).
    pub inputs: Inputs,
    /// `commit` and `run_id` of its run.json: fields of its events; the shards of a split
    /// run share the run id, and count the run once in the run's group (plan.rs).
    pub commit: Option<String>,
    pub ci_run_id: Option<String>,
    pub run_url: Option<String>,
}

/// What became of a candidate.
#[derive(Debug)]
pub enum Outcome {
    Parsed(Box<ParsedRun>),
    /// The state lists it as delivered.
    Delivered {
        dir: PathBuf,
        id: String,
    },
    /// A directory without a JUnit report (e.g. one holding only coverage.xml).
    NotARun {
        dir: PathBuf,
    },
    Failed {
        dir: PathBuf,
        error: String,
    },
}

/// What every worker needs.
pub struct Context<'a> {
    pub defaults: &'a Defaults,
    pub derive: &'a DeriveConfig,
    pub delivered: &'a HashSet<String>,
    /// "Now", ms (runs later than this are refused).
    pub now_ms: i64,
}

/// Reads every candidate on `jobs` threads; `on_done` sees each outcome as it is taken in.
/// Returns the outcomes in candidate order.
pub fn parse_all(
    candidates: &[Candidate],
    ctx: &Context,
    jobs: usize,
    mut on_done: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let mut slots: Vec<Option<Outcome>> = (0..candidates.len()).map(|_| None).collect();
    for_each_in_order(
        candidates,
        jobs,
        usize::MAX,
        |c| parse_one(c, ctx),
        |i, o| {
            on_done(&o);
            slots[i] = Some(o);
        },
    );
    slots
        .into_iter()
        .zip(candidates)
        .map(|(o, c)| {
            o.unwrap_or_else(|| Outcome::Failed {
                dir: c.dir.clone(),
                error: "was not read (a worker thread stopped)".into(),
            })
        })
        .collect()
}

/// Runs `work` on every item on `jobs` threads and hands the results to `take` on the
/// calling thread **in item order** (`take(index, result)`). At most `ahead` results wait
/// for an earlier one, so memory is bounded by `ahead` results however many items there
/// are (`backfill` reads all runs ahead; `history` folds runs in time order as they come).
/// A worker that panics leaves its item out (`take` is not called for it).
pub fn for_each_in_order<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    ahead: usize,
    work: impl Fn(&T) -> R + Sync,
    mut take: impl FnMut(usize, R),
) {
    use std::sync::{Condvar, Mutex};
    let next = AtomicUsize::new(0);
    // The index `take` waits for; workers wait while they are `ahead` past it.
    let taken = (Mutex::new(0usize), Condvar::new());
    let ahead = ahead.max(1);
    let (tx, rx) = mpsc::channel::<(usize, Option<R>)>();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            let tx = tx.clone();
            let (next, taken, work) = (&next, &taken, &work);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else {
                    break;
                };
                {
                    let (lock, cv) = taken;
                    let mut t = lock.lock().unwrap_or_else(|e| e.into_inner());
                    while i >= t.saturating_add(ahead) {
                        t = cv.wait(t).unwrap_or_else(|e| e.into_inner());
                    }
                }
                // A panic (a bug) must not leave `take` waiting for this item for ever.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(item))).ok();
                if tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut waiting: BTreeMap<usize, Option<R>> = BTreeMap::new();
        let mut want = 0usize;
        for (i, r) in rx {
            waiting.insert(i, r);
            while let Some(r) = waiting.remove(&want) {
                if let Some(r) = r {
                    take(want, r);
                }
                want += 1;
                let (lock, cv) = &taken;
                *lock.lock().unwrap_or_else(|e| e.into_inner()) = want;
                cv.notify_all();
            }
        }
    });
}

/// Reads one candidate.
pub fn parse_one(c: &Candidate, ctx: &Context) -> Outcome {
    match try_parse(c, ctx) {
        Ok(o) => o,
        Err(error) => Outcome::Failed {
            dir: c.dir.clone(),
            error,
        },
    }
}

/// The run's files by role.
#[derive(Debug, Default, PartialEq)]
pub struct RunFiles {
    pub junit: Vec<PathBuf>,
    pub size_reports: Vec<PathBuf>,
    pub coverage: Vec<PathBuf>,
}

/// Sorts a candidate's files into JUnit, size report and coverage (docs/backfill.md).
pub fn classify(c: &Candidate, meta: &RunMeta) -> Result<RunFiles, String> {
    let mut out = RunFiles::default();
    if let Some(f) = &meta.files {
        let resolve = |names: &[String]| -> Result<Vec<PathBuf>, String> {
            names
                .iter()
                .map(|n| {
                    let p = c.dir.join(n);
                    if p.is_file() {
                        Ok(p)
                    } else {
                        Err(format!(
                            "run.json names {n:?}, which is not a file in the run's directory"
                        ))
                    }
                })
                .collect()
        };
        out.junit = resolve(&f.junit)?;
        out.size_reports = resolve(&f.size_report)?;
        out.coverage = resolve(&f.coverage)?;
        return Ok(out);
    }
    for f in &c.files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let base = name.strip_suffix(".gz").unwrap_or(&name);
        let selected = c.selected.as_ref().is_none_or(|s| s.contains(f));
        if base.ends_with(".json") {
            if name.contains("size") || c.selected.as_ref().is_some_and(|s| s.contains(f)) {
                out.size_reports.push(f.clone());
            }
            continue;
        }
        let kind = source::sniff(f).map_err(|e| e.to_string())?;
        match kind {
            Kind::Junit if selected => out.junit.push(f.clone()),
            // A JUnit report the glob did not pick.
            Kind::Junit => {}
            Kind::Coverage => out.coverage.push(f.clone()),
            // Another tool's XML beside the reports is left alone, unless it was picked as
            // this run's JUnit report.
            Kind::OtherXml if !source::is_html(f) && c.selected.is_none() => {}
            // An XML name that holds no XML (empty, text, binary) or an HTML page: a report
            // damaged or replaced (a failed artifact download). The run is skipped by name
            // rather than read without it.
            _ => return Err(not_a_report(f, kind)),
        }
    }
    Ok(out)
}

/// Why `f`, named or picked as a report, is none.
fn not_a_report(f: &Path, kind: Kind) -> String {
    let what = match kind {
        Kind::Empty => "is empty",
        Kind::Binary => "is a binary file, not text",
        Kind::Text => "is plain text",
        Kind::Json => "is JSON",
        Kind::OtherXml if source::is_html(f) => {
            return format!(
                "{}: is an HTML page, not a JUnit XML report (an error page saved in its place?)",
                f.display()
            )
        }
        Kind::OtherXml => {
            return format!(
                "{}: {}; expected a JUnit XML report",
                f.display(),
                source::unknown_xml(f)
            )
        }
        Kind::Junit | Kind::Coverage => "is not one of this run's JUnit reports",
    };
    format!("{}: {what}; expected a JUnit XML report", f.display())
}

fn try_parse(c: &Candidate, ctx: &Context) -> Result<Outcome, String> {
    let meta = match &c.meta {
        Some(p) => RunMeta::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => RunMeta::default(),
    };
    let files = classify(c, &meta)?;
    if files.junit.is_empty() {
        if c.meta.is_some() {
            return Err(format!(
                "has a {} but no JUnit XML report",
                runmeta::FILE_NAME
            ));
        }
        return Ok(Outcome::NotARun { dir: c.dir.clone() });
    }
    let id = run_id(&files.junit).map_err(|e| e.to_string())?;
    if ctx.delivered.contains(&id) {
        return Ok(Outcome::Delivered {
            dir: c.dir.clone(),
            id,
        });
    }
    let inputs = Inputs {
        reports: files.junit,
        size_reports: files.size_reports,
        coverage: files.coverage,
        junit_prefix: meta
            .junit_prefix
            .clone()
            .unwrap_or_else(|| ctx.defaults.junit_prefix.clone()),
    };
    // Names are only needed for per-test series; without them a test costs half the memory.
    let opts = ReadOptions {
        test_ids: ctx.derive.per_test.enabled(),
        messages: false,
    };
    let run = read_run_with(&inputs, opts).map_err(|e| e.to_string())?;
    let mut summary = summarize(&run, ctx.derive, None);
    let explicit = meta.timestamp_seconds()?;
    if let Some(t) = explicit {
        summary.timestamp = t;
    }
    let from_mtime = explicit.is_none()
        && run.suite.earliest_timestamp.is_none()
        && run.report_timestamp.is_none();
    let secs = summary.timestamp;
    let timestamp_ms = (secs.floor() as i64).saturating_mul(1000);
    if !(MIN_MS..=ctx.now_ms + MAX_FUTURE_MS).contains(&timestamp_ms) {
        return Err(format!(
            "its timestamp {} is {}; set \"timestamp\" in its {}",
            crate::civil::rfc3339(timestamp_ms),
            if timestamp_ms < MIN_MS {
                "before the year 2000 (no testsuite timestamp?)"
            } else {
                "in the future"
            },
            runmeta::FILE_NAME
        ));
    }
    let group = group_of(&meta, ctx.defaults)?;
    let key = group_key(&group.series_labels());
    Ok(Outcome::Parsed(Box::new(ParsedRun {
        id,
        dir: c.dir.clone(),
        group,
        key,
        timestamp_ms,
        from_mtime,
        summary,
        inputs,
        commit: meta.commit.clone(),
        ci_run_id: meta.run_id.clone(),
        run_url: meta.run_url.clone(),
    })))
}

/// The run's group: `run.json` values first, then the command's defaults. A `shard` label
/// is written as ptc-metrics writes it (`2/4`, none for `1/1`), so that a hand-written
/// `02/4` does not make a group of its own.
pub fn group_of(meta: &RunMeta, d: &Defaults) -> Result<GroupConfig, String> {
    let mut grouping = Vec::new();
    if let Some(p) = meta.project.clone().or_else(|| d.project.clone()) {
        grouping.push(("project".to_string(), p));
    }
    if let Some(b) = meta.branch.clone().or_else(|| d.branch.clone()) {
        grouping.push(("branch".to_string(), b));
    }
    let mut labels: BTreeMap<String, String> = d.labels.iter().cloned().collect();
    for (k, v) in &meta.labels {
        labels.insert(k.clone(), v.clone());
    }
    if let Some(v) = labels.remove(Shard::LABEL) {
        let shard = Shard::parse(&v).map_err(|e| format!("shard {e}"))?;
        if let Some(v) = shard.label_value() {
            labels.insert(Shard::LABEL.to_string(), v);
        }
    }
    grouping.extend(labels);
    Ok(GroupConfig {
        job: meta.job.clone().unwrap_or_else(|| d.job.clone()),
        grouping,
    })
}

/// The identity of a group: its labels sorted by name, as a selector
/// (`{job="pytest",project="shop"}`).
pub fn group_key(labels: &Labels) -> String {
    let mut l: Vec<&(String, String)> = labels.iter().filter(|(_, v)| !v.is_empty()).collect();
    l.sort();
    let body: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

/// SHA-256 over the SHA-256 of each JUnit report's content (decompressed, so a `.gz` copy
/// is the same run), sorted, so the order of the files does not matter.
pub fn run_id(junit: &[PathBuf]) -> Result<String, ReadError> {
    let mut each: Vec<[u8; 32]> = junit
        .iter()
        .map(|p| file_digest(p))
        .collect::<Result<_, _>>()?;
    each.sort();
    let mut h = Sha256::new();
    for d in &each {
        h.update(d);
    }
    Ok(hex(&h.finalize()))
}

fn file_digest(p: &Path) -> Result<[u8; 32], ReadError> {
    let mut r = source::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).map_err(|e| ReadError::io(p, &e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/pytest-9.2")
            .join(name)
    }

    fn ctx<'a>(d: &'a Defaults, cfg: &'a DeriveConfig, del: &'a HashSet<String>) -> Context<'a> {
        Context {
            defaults: d,
            derive: cfg,
            delivered: del,
            now_ms: 4_000_000_000_000,
        }
    }

    fn run_dir(root: &Path, name: &str, gz: bool, meta: Option<&str>) -> Candidate {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let junit = std::fs::read(fixture("junit-xunit2.xml")).unwrap();
        if gz {
            let f = std::fs::File::create(dir.join("junit.xml.gz")).unwrap();
            let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            enc.write_all(&junit).unwrap();
            enc.finish().unwrap();
        } else {
            std::fs::write(dir.join("junit.xml"), &junit).unwrap();
        }
        std::fs::copy(fixture("size-report.json"), dir.join("size-report.json")).unwrap();
        std::fs::copy(fixture("coverage.xml"), dir.join("coverage.xml")).unwrap();
        std::fs::write(dir.join("package.json"), "{}").unwrap();
        if let Some(m) = meta {
            std::fs::write(dir.join("run.json"), m).unwrap();
        }
        let d = super::super::discover::discover(&[dir.display().to_string()]).unwrap();
        d.candidates.into_iter().next().unwrap()
    }

    #[test]
    fn a_shard_keeps_its_group() {
        let meta = |labels: &[(&str, &str)]| RunMeta {
            project: Some("shop".into()),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..RunMeta::default()
        };
        let key = |m: &RunMeta, d: &Defaults| group_of(m, d).map(|g| group_key(&g.series_labels()));
        let none = Defaults::default();
        // As push --archive writes it, and a hand-written one with leading zeros.
        assert_eq!(
            key(&meta(&[("shard", "2/4")]), &none).unwrap(),
            r#"{job="pytest",project="shop",shard="2/4"}"#
        );
        assert_eq!(
            key(&meta(&[("shard", "02/04")]), &none).unwrap(),
            r#"{job="pytest",project="shop",shard="2/4"}"#
        );
        // 1/1 is a run in one piece: no label.
        assert_eq!(
            key(&meta(&[("shard", "1/1")]), &none).unwrap(),
            r#"{job="pytest",project="shop"}"#
        );
        // backfill --shard labels the runs whose run.json has none, and never overrides one.
        let d = Defaults {
            labels: vec![("shard".into(), "3/4".into())],
            ..Defaults::default()
        };
        assert_eq!(
            key(&meta(&[]), &d).unwrap(),
            r#"{job="pytest",project="shop",shard="3/4"}"#
        );
        assert_eq!(
            key(&meta(&[("shard", "1/4")]), &d).unwrap(),
            r#"{job="pytest",project="shop",shard="1/4"}"#
        );
    }

    #[test]
    fn reads_a_run_with_its_neighbours_and_labels() {
        let t = tempfile::tempdir().unwrap();
        let c = run_dir(
            t.path(),
            "r1",
            true,
            Some(r#"{"project":"shop","labels":{"os":"linux"}}"#),
        );
        let defaults = Defaults {
            branch: Some("main".into()),
            labels: vec![("os".into(), "mac".into()), ("tier".into(), "1".into())],
            ..Defaults::default()
        };
        let cfg = DeriveConfig::default();
        let del = HashSet::new();
        let Outcome::Parsed(r) = parse_one(&c, &ctx(&defaults, &cfg, &del)) else {
            panic!()
        };
        assert_eq!(
            r.key,
            r#"{branch="main",job="pytest",os="linux",project="shop",tier="1"}"#
        );
        assert!(
            r.summary.coverage.is_some(),
            "coverage.xml beside it is read"
        );
        assert!(r.summary.total_tests() > 0);
        assert_eq!(r.timestamp_ms % STEP_MS, 0);
        assert_eq!(r.timestamp_ms / 1000, r.summary.timestamp.floor() as i64);
        assert!(!r.from_mtime);
        assert_eq!(r.id.len(), 64);

        // The same report uncompressed is the same run, and is skipped once delivered.
        let c2 = run_dir(t.path(), "r2", false, None);
        let del: HashSet<String> = [r.id.clone()].into();
        match parse_one(&c2, &ctx(&defaults, &cfg, &del)) {
            Outcome::Delivered { id, .. } => assert_eq!(id, r.id),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn failures_name_what_to_fix() {
        let t = tempfile::tempdir().unwrap();
        let d = Defaults::default();
        let cfg = DeriveConfig::default();
        let del = HashSet::new();
        let c = run_dir(t.path(), "bad-meta", false, Some(r#"{"brnach":"x"}"#));
        let Outcome::Failed { error, .. } = parse_one(&c, &ctx(&d, &cfg, &del)) else {
            panic!()
        };
        assert!(
            error.contains("run.json: unknown field `brnach`"),
            "{error}"
        );

        let c = run_dir(t.path(), "old", false, Some(r#"{"timestamp": 12}"#));
        let Outcome::Failed { error, .. } = parse_one(&c, &ctx(&d, &cfg, &del)) else {
            panic!()
        };
        assert!(error.contains("before the year 2000"), "{error}");

        let dir = t.path().join("broken");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("junit.xml"), "<testsuites><testsuite><testcase").unwrap();
        let c = Candidate {
            dir: dir.clone(),
            files: vec![dir.join("junit.xml")],
            ..Candidate::default()
        };
        let Outcome::Failed { error, .. } = parse_one(&c, &ctx(&d, &cfg, &del)) else {
            panic!()
        };
        assert!(error.contains("junit.xml"), "{error}");

        let dir = t.path().join("cov-only");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(fixture("coverage.xml"), dir.join("coverage.xml")).unwrap();
        let c = Candidate {
            dir: dir.clone(),
            files: vec![dir.join("coverage.xml")],
            ..Candidate::default()
        };
        assert!(matches!(
            parse_one(&c, &ctx(&d, &cfg, &del)),
            Outcome::NotARun { .. }
        ));
    }

    #[test]
    fn parallel_results_keep_candidate_order() {
        let t = tempfile::tempdir().unwrap();
        let cands: Vec<Candidate> = (0..9)
            .map(|i| run_dir(t.path(), &format!("r{i}"), i % 2 == 0, None))
            .collect();
        let d = Defaults::default();
        let cfg = DeriveConfig::default();
        let del = HashSet::new();
        let mut seen = 0;
        let out = parse_all(&cands, &ctx(&d, &cfg, &del), 3, |_| seen += 1);
        assert_eq!(seen, 9);
        for (o, c) in out.iter().zip(&cands) {
            let Outcome::Parsed(r) = o else {
                panic!("{o:?}")
            };
            assert_eq!(r.dir, c.dir);
        }
    }

    #[test]
    fn in_order_with_at_most_ahead_results_waiting() {
        use std::sync::atomic::AtomicIsize;
        let items: Vec<usize> = (0..200).collect();
        // Started minus taken: what is in flight or waiting, never more than `ahead` + jobs.
        let open = AtomicIsize::new(0);
        let peak = AtomicIsize::new(0);
        let mut got = Vec::new();
        for_each_in_order(
            &items,
            4,
            3,
            |i| {
                let n = open.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                // Later items finish first, so results have to wait for earlier ones.
                std::thread::sleep(std::time::Duration::from_micros(
                    ((200 - i) % 7) as u64 * 50,
                ));
                if *i == 17 {
                    panic!("a bug in one item");
                }
                *i * 2
            },
            |i, r| {
                open.fetch_sub(1, Ordering::SeqCst);
                got.push((i, r));
            },
        );
        // Item 17 panicked: left out, and nothing after it waits for ever.
        let want: Vec<(usize, usize)> = (0..200).filter(|i| *i != 17).map(|i| (i, i * 2)).collect();
        assert_eq!(got, want);
        // Workers only start an item less than `ahead` past the one `take` waits for.
        assert!(
            peak.load(Ordering::SeqCst) <= 3 + 1,
            "{}",
            peak.load(Ordering::SeqCst)
        );
    }

    #[test]
    fn group_keys_escape_and_sort() {
        assert_eq!(
            group_key(&vec![
                ("project".into(), "a\"b".into()),
                ("job".into(), "pytest".into()),
                ("os".into(), "".into())
            ]),
            r#"{job="pytest",project="a\"b"}"#
        );
    }
}
