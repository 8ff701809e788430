//! What a Pushgateway holds, read from its own `/metrics` exposition as a stream.
//!
//! The gateway has no per-group read: `/metrics` (and `/api/v1/metrics`) hold every group.
//! `/metrics` is the smaller of the two and is served gzip-compressed, so it is the one read;
//! the answer goes through line by line and only the lines that can belong to the groups
//! asked for are parsed (a byte search for one of the group's `label="value"` pairs first),
//! so client memory does not grow with the number of groups on the gateway.
//!
//! Two views: [`GroupView`], one group with its pending pushes (the exact-accumulation
//! protocol of [`super::exact_push`]), and [`JobView`], every group of a job with its last push
//! time (for `prune`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use reqwest::Method;

use super::exposition::{family_of, is_cumulative, parse_sample, split_labels, TotalsBuilder};
use super::http::{BodyError, BodyReader, DeliveryError, HttpClient};
use super::pending::{expand_buckets, parse_bounds, PENDING_BOUNDS};
use super::pushgateway::{PushgatewayConfig, LEDGER_FAMILY, PENDING_LABEL, PENDING_PREFIX};
use crate::derive::totals::Totals;

/// The longest line read from a gateway: label values of ours are short (file paths, test
/// ids cut at 200 characters), so a longer line is a broken or hostile answer.
const MAX_LINE: u64 = 1 << 20;

/// One group of ours as the gateway holds it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupView {
    /// The group exists (its `push_time_seconds` is there).
    pub exists: bool,
    /// Its cumulative families, `None` when it has none.
    pub totals: Option<Totals>,
    /// Ids of the pushes its counters include ([`LEDGER_FAMILY`]).
    pub ledger: BTreeSet<u64>,
    /// The same ids by their `slot` (the order they were written in: oldest first).
    pub ledger_by_slot: BTreeMap<u64, u64>,
    /// Pending pushes of this group (groups with [`PENDING_LABEL`] added), by id.
    pub pending: BTreeMap<u64, PendingPush>,
    /// The newest `push_time_seconds` among these groups: the gateway's clock, nearly.
    pub newest_push: f64,
}

/// A push whose delta waits in its own group until the group's counters include it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PendingPush {
    /// This run's cumulative values (`None` when the group holds none: not ours).
    pub totals: Option<Totals>,
    /// When the gateway received it (Unix seconds).
    pub pushed_at: f64,
}

/// A group of a job: its labels and when it was last pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupTime {
    /// Every label of the group's key, `job` included, empty values too (but `instance=""`).
    pub labels: BTreeMap<String, String>,
    pub pushed_at: f64,
}

/// Every group of one job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobView {
    pub groups: Vec<GroupTime>,
    /// Ledgers by group labels, to tell a pending push already counted.
    pub ledgers: BTreeMap<BTreeMap<String, String>, BTreeSet<u64>>,
}

/// Reads the group of `cfg` and its pending pushes.
pub fn read_group(
    client: &HttpClient,
    cfg: &PushgatewayConfig,
) -> Result<GroupView, DeliveryError> {
    let want = cfg.group_labels();
    let needles = needles_of(&want);
    let reader: BodyReader<GroupView> =
        Arc::new(move |r: &mut dyn Read| group_from(r, &want, &needles));
    fetch(client, cfg, reader)
}

/// Reads the groups of `job` with their push times.
pub fn read_job(
    client: &HttpClient,
    cfg: &PushgatewayConfig,
    job: &str,
) -> Result<JobView, DeliveryError> {
    let job = job.to_string();
    let reader: BodyReader<JobView> = Arc::new(move |r: &mut dyn Read| job_from(r, &job));
    fetch(client, cfg, reader)
}

fn fetch<T: Send + 'static>(
    client: &HttpClient,
    cfg: &PushgatewayConfig,
    reader: BodyReader<T>,
) -> Result<T, DeliveryError> {
    let url = cfg.metrics_url();
    client
        .send_streaming(
            Method::GET,
            &url,
            &[("Accept", "text/plain;version=0.0.4")],
            None,
            "; is --gateway the Pushgateway's base URL (http://HOST:9091)?",
            reader,
        )
        .map(|(_, v)| v)
        .map_err(|e| match e {
            DeliveryError::BadAnswer { url, message } => DeliveryError::BadAnswer {
                url,
                message: format!("{message}; is --gateway a Pushgateway?"),
            },
            e => e,
        })
}

/// The `label="value"` texts that every series of the group holds: a line without all of
/// them is skipped unparsed (most lines of a big gateway belong to other groups).
fn needles_of(want: &BTreeMap<String, String>) -> Vec<Vec<u8>> {
    want.iter()
        .map(|(k, v)| {
            let mut n = format!("{k}=\"").into_bytes();
            for c in v.chars() {
                match c {
                    '\\' => n.extend_from_slice(b"\\\\"),
                    '"' => n.extend_from_slice(b"\\\""),
                    '\n' => n.extend_from_slice(b"\\n"),
                    c => n.extend_from_slice(c.to_string().as_bytes()),
                }
            }
            n.push(b'"');
            n
        })
        .collect()
}

/// Calls `f` with each line (without its newline) and its number.
fn each_line(
    r: &mut dyn Read,
    mut f: impl FnMut(usize, &[u8]) -> Result<(), BodyError>,
) -> Result<(), BodyError> {
    let mut r = BufReader::with_capacity(256 * 1024, r);
    let mut line = Vec::with_capacity(4096);
    let mut no = 0usize;
    loop {
        line.clear();
        let n = (&mut r)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .map_err(BodyError::Io)?;
        if n == 0 {
            return Ok(());
        }
        no += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if n as u64 == MAX_LINE {
            return Err(BodyError::Bad(format!(
                "line {no} is longer than {} bytes",
                MAX_LINE
            )));
        }
        f(no, &line)?;
    }
}

/// Whether a line may be a sample of ours (cheap: first bytes only).
fn ours(line: &[u8]) -> bool {
    line.starts_with(b"pytest_")
        || line.starts_with(b"ptc_")
        || line.starts_with(b"push_time_seconds")
        || line.starts_with(b"ci_test_failures_total")
}

fn group_from(
    r: &mut dyn Read,
    want: &BTreeMap<String, String>,
    needles: &[Vec<u8>],
) -> Result<GroupView, BodyError> {
    let finders: Vec<memchr::memmem::Finder> =
        needles.iter().map(memchr::memmem::Finder::new).collect();
    let mut view = GroupView::default();
    let mut main = TotalsBuilder::default();
    let mut pending: BTreeMap<u64, TotalsBuilder> = BTreeMap::new();
    let mut pending_bounds: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    each_line(r, |no, line| {
        if !ours(line) || finders.iter().any(|f| f.find(line).is_none()) {
            return Ok(());
        }
        let Ok(text) = std::str::from_utf8(line) else {
            return Ok(());
        };
        let s = parse_sample(text).map_err(|m| BodyError::Bad(format!("line {no}: {m}")))?;
        let bad = |m: String| BodyError::Bad(format!("line {no}: {m}"));
        let (name, is_pending) = match s.name.strip_prefix(PENDING_PREFIX) {
            Some(base) => (base, true),
            None => (s.name, false),
        };
        let (own, mut rest) = split_labels(s.labels);
        let id = match rest.remove(PENDING_LABEL) {
            Some(hex) => match u64::from_str_radix(&hex, 16) {
                Ok(id) => Some(id),
                Err(_) => return Ok(()),
            },
            None => None,
        };
        let slot = if name == LEDGER_FAMILY {
            rest.remove("slot").and_then(|v| v.parse::<u64>().ok())
        } else {
            None
        };
        let bounds = if is_pending && name == PENDING_BOUNDS {
            rest.remove("bounds")
        } else {
            None
        };
        if &rest != want {
            return Ok(());
        }
        if name == "push_time_seconds" {
            view.newest_push = view.newest_push.max(s.value);
            match id {
                None => view.exists = true,
                Some(id) => view.pending.entry(id).or_default().pushed_at = s.value,
            }
            return Ok(());
        }
        if name == LEDGER_FAMILY && id.is_none() && !is_pending {
            if s.value >= 1.0 && s.value < (1u64 << 53) as f64 && s.value.fract() == 0.0 {
                view.ledger.insert(s.value as u64);
                if let Some(slot) = slot {
                    view.ledger_by_slot.insert(slot, s.value as u64);
                }
            }
            return Ok(());
        }
        if let (Some(id), Some(b)) = (id, bounds) {
            let b = parse_bounds(&b)
                .ok_or_else(|| bad(format!("bounds=\"{b}\" is not a list of bounds")))?;
            pending_bounds.insert(id, b);
            return Ok(());
        }
        let Some(family) = family_of(name).filter(|f| is_cumulative(f)) else {
            return Ok(());
        };
        match (is_pending, id) {
            (false, None) => main.add(family, name, &own, s.value).map_err(bad),
            (true, Some(id)) => pending
                .entry(id)
                .or_default()
                .add(family, name, &own, s.value)
                .map_err(bad),
            _ => Ok(()),
        }
    })?;
    view.totals = main.finish();
    for (id, b) in pending {
        let mut totals = b.finish();
        if let (Some(t), Some(bounds)) = (totals.as_mut(), pending_bounds.get(&id)) {
            expand_buckets(t, bounds)
                .map_err(|m| BodyError::Bad(format!("pending push {id:x}: {m}")))?;
        }
        view.pending.entry(id).or_default().totals = totals;
    }
    Ok(view)
}

/// A group's labels as `/metrics` shows them on its `push_time_seconds`: its grouping key,
/// to address it again. A label with an empty value belongs to the key (a push to
/// `…/os@base64/=` makes a group apart from the one without `os`, and a `DELETE` without it
/// leaves the group be), so it is kept; all but the `instance=""` the gateway shows on every
/// group pushed without an instance.
fn grouping_key(labels: Vec<(&str, String)>) -> BTreeMap<String, String> {
    labels
        .into_iter()
        .filter(|(k, v)| !(*k == "instance" && v.is_empty()))
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn job_from(r: &mut dyn Read, job: &str) -> Result<JobView, BodyError> {
    let mut view = JobView::default();
    each_line(r, |no, line| {
        let ledger = line.starts_with(LEDGER_FAMILY.as_bytes());
        if !(line.starts_with(b"push_time_seconds") || ledger) {
            return Ok(());
        }
        let Ok(text) = std::str::from_utf8(line) else {
            return Ok(());
        };
        let s = parse_sample(text).map_err(|m| BodyError::Bad(format!("line {no}: {m}")))?;
        let mut labels = grouping_key(s.labels);
        if labels.get("job").map(String::as_str) != Some(job) {
            return Ok(());
        }
        if s.name == "push_time_seconds" {
            view.groups.push(GroupTime {
                labels,
                pushed_at: s.value,
            });
        } else if s.name == LEDGER_FAMILY {
            labels.remove("slot");
            if s.value >= 1.0 && s.value < (1u64 << 53) as f64 && s.value.fract() == 0.0 {
                view.ledgers
                    .entry(labels)
                    .or_default()
                    .insert(s.value as u64);
            }
        }
        Ok(())
    })?;
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const ANSWER: &str = r#"# HELP pytest_runs_total Runs.
# TYPE pytest_runs_total counter
pytest_runs_total{branch="main",instance="",job="pytest",project="app"} 2
pytest_runs_total{branch="main",instance="",job="pytest",project="app",shard="1/2"} 7
pytest_runs_total{branch="main",instance="",job="pytest",project="apple"} 9
pytest_tests_total{branch="main",instance="",job="pytest",outcome="passed",project="app",size="small"} 10
pytest_test_duration_seconds_bucket{branch="main",instance="",job="pytest",le="0.1",outcome="passed",project="app",size="small"} 1
pytest_test_duration_seconds_bucket{branch="main",instance="",job="pytest",le="1",outcome="passed",project="app",size="small"} 2
pytest_test_duration_seconds_bucket{branch="main",instance="",job="pytest",le="+Inf",outcome="passed",project="app",size="small"} 3
pytest_test_duration_seconds_sum{branch="main",instance="",job="pytest",outcome="passed",project="app",size="small"} 4.5
pytest_test_duration_seconds_count{branch="main",instance="",job="pytest",outcome="passed",project="app",size="small"} 3
ptc_push_ledger{branch="main",instance="",job="pytest",project="app",slot="0"} 4.503599627370495e+15
ptc_push_ledger{branch="main",instance="",job="pytest",project="app",slot="1"} 17
ptc_pending_pytest_runs_total{branch="main",instance="",job="pytest",project="app",ptc_push="11"} 1
ptc_pending_pytest_runs_total{branch="main",instance="",job="pytest",project="app",ptc_push="2a"} 1
push_time_seconds{branch="main",instance="",job="pytest",project="app"} 1.7e+09
push_time_seconds{branch="main",instance="",job="pytest",project="app",ptc_push="11"} 1.70000001e+09
push_time_seconds{branch="main",instance="",job="pytest",project="app",ptc_push="2a"} 1.7e+09
push_time_seconds{branch="main",instance="",job="pytest",project="apple"} 1.6e+09
push_time_seconds{branch="main",instance="",job="other",project="app"} 1.6e+09
"#;

    #[test]
    fn reads_one_group_and_its_pending_pushes() {
        let w = want(&[("job", "pytest"), ("project", "app"), ("branch", "main")]);
        let v = group_from(&mut ANSWER.as_bytes(), &w, &needles_of(&w)).unwrap();
        assert!(v.exists);
        let t = v.totals.unwrap();
        assert_eq!(t.runs, 2.0);
        assert_eq!(t.tests[&("small".into(), "passed".into())], 10.0);
        let h = &t.durations[&("small".into(), "passed".into())];
        assert_eq!(
            (h.bounds.clone(), h.cumulative.clone()),
            (vec![0.1, 1.0], vec![1.0, 2.0])
        );
        assert_eq!((h.count, h.sum), (3.0, 4.5));
        assert_eq!(v.ledger, BTreeSet::from([4503599627370495, 17]));
        assert_eq!(
            v.pending.keys().copied().collect::<Vec<_>>(),
            vec![0x11, 0x2a]
        );
        assert_eq!(v.pending[&0x11].totals.as_ref().unwrap().runs, 1.0);
        assert_eq!(v.pending[&0x11].pushed_at, 1.70000001e9);
        assert_eq!(v.newest_push, 1.70000001e9);
    }

    #[test]
    fn a_group_that_is_not_there() {
        let w = want(&[("job", "pytest"), ("project", "nope")]);
        let v = group_from(&mut ANSWER.as_bytes(), &w, &needles_of(&w)).unwrap();
        assert_eq!(v, GroupView::default());
        // The shard's group is another group.
        let w = want(&[
            ("job", "pytest"),
            ("project", "app"),
            ("branch", "main"),
            ("shard", "1/2"),
        ]);
        let v = group_from(&mut ANSWER.as_bytes(), &w, &needles_of(&w)).unwrap();
        assert_eq!(v.totals.unwrap().runs, 7.0);
        assert!(!v.exists);
    }

    #[test]
    fn groups_of_a_job() {
        let v = job_from(&mut ANSWER.as_bytes(), "pytest").unwrap();
        assert_eq!(v.groups.len(), 4);
        assert_eq!(v.groups[3].labels["project"], "apple");
        let app = want(&[("job", "pytest"), ("project", "app"), ("branch", "main")]);
        assert_eq!(v.ledgers[&app].len(), 2);
    }

    #[test]
    fn empty_grouping_labels_belong_to_the_group() {
        let text = "push_time_seconds{branch=\"x\",instance=\"\",job=\"pytest\",os=\"\",project=\"app\"} 1.6e+09\n\
                    push_time_seconds{branch=\"x\",instance=\"\",job=\"pytest\",project=\"app\",ptc_push=\"1f\"} 1.7e+09\n\
                    ptc_push_ledger{branch=\"x\",instance=\"\",job=\"pytest\",os=\"\",project=\"app\",slot=\"0\"} 31\n";
        let v = job_from(&mut text.as_bytes(), "pytest").unwrap();
        let labels: Vec<_> = v.groups.iter().map(|g| g.labels.clone()).collect();
        let os = want(&[
            ("job", "pytest"),
            ("project", "app"),
            ("branch", "x"),
            ("os", ""),
        ]);
        assert_eq!(
            labels,
            [
                os.clone(),
                want(&[
                    ("job", "pytest"),
                    ("project", "app"),
                    ("branch", "x"),
                    ("ptc_push", "1f")
                ])
            ]
        );
        assert_eq!(v.ledgers[&os], BTreeSet::from([31]));
    }

    #[test]
    fn broken_answers() {
        let w = want(&[("job", "pytest"), ("project", "app")]);
        let e = group_from(
            &mut "pytest_runs_total{job=\"pytest\",project=\"app\" 1\n".as_bytes(),
            &w,
            &needles_of(&w),
        )
        .unwrap_err();
        assert!(
            matches!(&e, BodyError::Bad(m) if m == "line 1: pytest_runs_total: expected , or } after label project"),
            "{e:?}"
        );
        let long = format!(
            "pytest_runs_total{{project=\"app\",x=\"{}\"}} 1\n",
            "a".repeat(1 << 20)
        );
        let e = group_from(&mut long.as_bytes(), &w, &needles_of(&w)).unwrap_err();
        assert!(
            matches!(&e, BodyError::Bad(m) if m == "line 1 is longer than 1048576 bytes"),
            "{e:?}"
        );
    }

    /// `pending_body`'s samples as `/metrics` shows them: with the group's labels and `ptc_push`.
    fn as_gateway_shows(body: &str, id: &str) -> String {
        let extra = format!(
            "branch=\"main\",instance=\"\",job=\"pytest\",project=\"app\",ptc_push=\"{id}\""
        );
        let mut out = String::new();
        for l in body.lines() {
            if l.starts_with('#') {
                out.push_str(l);
            } else {
                let (name_labels, v) = l.rsplit_once(' ').unwrap();
                match name_labels.split_once('{') {
                    Some((n, rest)) => out.push_str(&format!("{n}{{{extra},{rest} {v}")),
                    None => out.push_str(&format!("{name_labels}{{{extra}}} {v}")),
                }
            }
            out.push('\n');
        }
        out.push_str(&format!("push_time_seconds{{{extra}}} 1.7e+09\n"));
        out
    }

    #[test]
    fn a_pending_push_is_written_small_and_read_back_whole() {
        use crate::derive::totals::HistTotal;
        use crate::sink::pending::pending_body;
        let mut t = Totals {
            runs: 1.0,
            ..Totals::default()
        };
        let k = |s: &str, o: &str| (s.to_string(), o.to_string());
        t.tests.insert(k("small", "passed"), 30.0);
        t.tests.insert(k("small", "failed"), 0.0);
        t.tests.insert(k("medium", "passed"), 3.0);
        t.timing.insert("small".into(), 0.0);
        t.flaky.insert("small".into(), 2.0);
        t.failures.insert("assertion".into(), 1.0);
        let bounds = vec![0.1, 0.5, 1.0, 5.0];
        t.durations.insert(
            k("small", "passed"),
            HistTotal {
                bounds: bounds.clone(),
                cumulative: vec![28.0, 28.0, 28.0, 28.0],
                sum: 0.5,
                count: 30.0,
            },
        );
        t.durations.insert(
            k("medium", "passed"),
            HistTotal {
                bounds: bounds.clone(),
                cumulative: vec![0.0, 1.0, 1.0, 3.0],
                sum: 7.5,
                count: 3.0,
            },
        );
        let body = pending_body(&t);
        // Only the buckets where the count grows, +Inf, _sum and _count; no zero counters.
        let buckets: Vec<&str> = body.lines().filter(|l| l.contains("_bucket{")).collect();
        assert_eq!(buckets.len(), 5, "{body}");
        assert_eq!(body.matches("_count{").count(), 2, "{body}");
        assert!(!body.contains(" 0\n"), "{body}");
        assert!(
            body.contains("ptc_pending_duration_bounds{bounds=\"0.1,0.5,1,5\"} 1\n"),
            "{body}"
        );

        let text = as_gateway_shows(&body, "2a");
        let w = want(&[("job", "pytest"), ("project", "app"), ("branch", "main")]);
        let v = group_from(&mut text.as_bytes(), &w, &needles_of(&w)).unwrap();
        assert!(!v.exists);
        let got = v.pending[&0x2a].totals.clone().unwrap();
        let mut whole = t.clone();
        whole.tests.remove(&k("small", "failed"));
        whole.timing.clear();
        assert_eq!(got, whole);

        // A bucket that is not among the bounds is an error, not a guess.
        let broken = text.replace("bounds=\"0.1,0.5,1,5\"", "bounds=\"0.1,1,5\"");
        let e = group_from(&mut broken.as_bytes(), &w, &needles_of(&w)).unwrap_err();
        let BodyError::Bad(m) = e else {
            panic!("{e:?}")
        };
        assert!(m.contains("le=\"0.5\" that is not among the bounds"), "{m}");
    }
}
