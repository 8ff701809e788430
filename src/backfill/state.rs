//! The backfill state file: which runs were delivered (by content hash), each group's
//! running totals and timestamp cursor, and the one batch in flight.
//!
//! Written atomically (temporary file, fsync, rename, fsync of the directory) and guarded
//! by an advisory lock (`<state>.lock`, `flock`), which the kernel releases when the
//! process dies, so a killed backfill never blocks the next one while two overlapping
//! cron jobs cannot both deliver. JSON, so an operator can read it; see docs/backfill.md.
//!
//! Exactly once: before a batch is sent, the state is committed with the batch as
//! `pending` (its exact request body and what delivering it changes). Once the receiver
//! acknowledged it, the change is applied and `pending` cleared in one more commit. A
//! backfill that finds a `pending` batch (the previous one was killed, or the receiver
//! failed) first sends that very body again. Re-sending identical samples (same series,
//! timestamp and value) is harmless to Prometheus and VictoriaMetrics, and a PUT to the
//! Pushgateway replaces the group, so at-least-once delivery of identical bytes plus a state
//! that moves only after an acknowledgement gives exactly-once series values.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::derive::totals::Totals;
use crate::sink::openmetrics_file::{write_atomically, FileError};

/// The state format this build reads and writes.
pub const VERSION: u32 = 1;

/// A state file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {}: cannot be read: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("state file {}: {message}; it was not changed. Restore it from a backup, or start a new state file \
             (runs it lists would then be delivered again)", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("state file {0}")]
    Write(FileError),
    #[error("state file {}: another backfill holds its lock {}{}; wait for it to finish", path.display(),
            lock.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        path: PathBuf,
        lock: PathBuf,
        /// The holder's pid, when its lock file names a live process.
        pid: Option<u32>,
    },
    #[error("state file {}: cannot lock {}: {message}", path.display(), lock.display())]
    Lock {
        path: PathBuf,
        lock: PathBuf,
        message: String,
    },
}

/// Where a state file delivers to. One state file per destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkKind {
    RemoteWrite,
    Openmetrics,
    Gateway,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::RemoteWrite => "--remote-write",
            SinkKind::Openmetrics => "--openmetrics",
            SinkKind::Gateway => "--gateway",
        }
    }
}

/// A delivered run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The group key (`{job="pytest",project="shop"}`).
    pub group: String,
    /// The timestamp its per-run gauges carry, ms.
    pub timestamp_ms: i64,
    /// Where it was found (for people; the hash is the identity).
    pub path: String,
}

/// One group's running state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// `job` and the grouping labels, as the series carry them.
    pub labels: Vec<(String, String)>,
    /// Timestamp of the newest cumulative sample written, ms: the next one must be later.
    pub cumulative_ms: i64,
    /// Newest per-run gauge timestamp, ms.
    pub newest_run_ms: i64,
    /// Runs delivered.
    pub runs: u64,
    /// Values of the cumulative families after the newest delivered run.
    pub totals: Totals,
    /// The group of a split run (`shard="all"`) only: the facts it counted (a hash of the CI
    /// run and the size with timing violations), the newest [`FACTS_KEPT`], so that another
    /// shard of the same run, found later, does not count again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<String>,
}

/// Facts a run group remembers (the shards of one run are archived within days, not after
/// hundreds of other runs of the same branch).
pub const FACTS_KEPT: usize = 512;

/// What delivering a batch changes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Delta {
    pub runs: BTreeMap<String, RunRecord>,
    pub groups: BTreeMap<String, GroupState>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.groups.is_empty()
    }
}

/// How a pending body is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Request {
    /// A remote-write body (snappy protobuf).
    RemoteWrite,
    /// A Pushgateway push (text 0.0.4) to the group `job` + `grouping`.
    Gateway {
        job: String,
        grouping: Vec<(String, String)>,
        /// `PUT` replaces the group; `POST` only the pushed families.
        put: bool,
    },
}

/// A batch written to the state before it is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Destination (URL without password).
    pub target: String,
    pub request: Request,
    /// The exact request body, base64.
    pub body: String,
    /// What to apply once the destination acknowledged it.
    pub delta: Delta,
    /// Runs and samples in it, for the log.
    pub samples: u64,
}

/// The whole state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub sink: SinkKind,
    /// Destination (URL without password, or the OpenMetrics path).
    pub target: String,
    /// `--buckets` of the histograms in `groups` totals.
    pub buckets: Vec<f64>,
    #[serde(default)]
    pub groups: BTreeMap<String, GroupState>,
    /// Delivered runs by content hash.
    #[serde(default)]
    pub runs: BTreeMap<String, RunRecord>,
    #[serde(default)]
    pub pending: Option<Pending>,
}

impl State {
    pub fn new(sink: SinkKind, target: &str, buckets: &[f64]) -> Self {
        State {
            version: VERSION,
            sink,
            target: target.to_string(),
            buckets: buckets.to_vec(),
            groups: BTreeMap::new(),
            runs: BTreeMap::new(),
            pending: None,
        }
    }

    /// Applies what a delivered batch changed.
    pub fn apply(&mut self, delta: &Delta) {
        for (id, r) in &delta.runs {
            self.runs.insert(id.clone(), r.clone());
        }
        for (k, g) in &delta.groups {
            self.groups.insert(k.clone(), g.clone());
        }
    }

    /// Gauge timestamps already used per group (a run's samples must not land on them).
    pub fn used_timestamps(&self) -> BTreeMap<String, BTreeSet<i64>> {
        let mut m: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        for r in self.runs.values() {
            m.entry(r.group.clone()).or_default().insert(r.timestamp_ms);
        }
        m
    }
}

/// An opened (and, for writing, locked) state file.
pub struct StateFile {
    path: PathBuf,
    /// Held for the life of the value; the lock goes with it.
    _lock: Option<File>,
}

impl StateFile {
    /// Opens `path`; with `lock`, takes `<path>.lock` exclusively or fails at once.
    pub fn open(path: &Path, lock: bool) -> Result<Self, StateError> {
        let lock_file = if lock { Some(take_lock(path)?) } else { None };
        Ok(StateFile {
            path: path.to_path_buf(),
            _lock: lock_file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored state; `None` when the file does not exist yet.
    pub fn load(&self) -> Result<Option<State>, StateError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    message: e.to_string(),
                })
            }
        };
        let corrupt = |message: String| StateError::Corrupt {
            path: self.path.clone(),
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| corrupt(format!("not JSON ({e})")))?;
        match v.get("version").and_then(serde_json::Value::as_u64) {
            Some(n) if n == u64::from(VERSION) => {}
            Some(n) => {
                return Err(corrupt(format!(
                    "format version {n}, but this ptc-metrics reads version {VERSION} (written by a newer ptc-metrics?)"
                )))
            }
            None => return Err(corrupt("no \"version\": not a ptc-metrics backfill state".into())),
        }
        serde_json::from_value(v)
            .map(Some)
            .map_err(|e| corrupt(format!("not a ptc-metrics backfill state ({e})")))
    }

    /// Replaces the file with `state`, atomically and durably.
    pub fn commit(&self, state: &State) -> Result<(), StateError> {
        write_atomically(&self.path, |w| {
            serde_json::to_writer(&mut *w, state).map_err(io::Error::other)?;
            io::Write::write_all(w, b"\n")
        })
        .map_err(StateError::Write)
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// Bytes of the pid record in a lock file: the pid, padded with spaces, and a newline.
#[cfg(unix)]
const PID_RECORD: usize = 21;

#[cfg(unix)]
fn take_lock(path: &Path) -> Result<File, StateError> {
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    let lock = lock_path(path);
    let fail = |e: io::Error| StateError::Lock {
        path: path.to_path_buf(),
        lock: lock.clone(),
        message: match crate::sink::atomic::missing_dir(path, &e) {
            Some(d) => format!(
                "{e}; the directory {} does not exist: create it first",
                d.display()
            ),
            None => e.to_string(),
        },
    };
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(fail)?;
    // SAFETY: flock on a file descriptor we own; no memory is shared with the call.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(StateError::Locked {
                path: path.to_path_buf(),
                lock,
                pid: holder_pid(&mut f),
            });
        }
        return Err(fail(e));
    }
    // The holder's pid, for the message another backfill shows. Written over the previous
    // holder's record in one write, never truncated first: a reader sees the old record or
    // the new one, never an empty file (except a brand-new one, see `holder_pid`).
    let record = format!("{:<width$}\n", std::process::id(), width = PID_RECORD - 1);
    let _ = f.write_all_at(record.as_bytes(), 0);
    let _ = f.set_len(PID_RECORD as u64);
    Ok(f)
}

/// The pid in a held lock file, when it names a live process. The holder writes it just
/// after taking the lock, so a brand-new file may still be empty, and a reused one may still
/// name the previous holder (gone): read again for a moment before giving up.
#[cfg(unix)]
fn holder_pid(f: &mut File) -> Option<u32> {
    use std::io::{Read, Seek};
    for _ in 0..20 {
        let mut text = String::new();
        let read = f.rewind().and_then(|()| f.read_to_string(&mut text));
        if let (Ok(_), Ok(pid)) = (read, text.trim().parse::<u32>()) {
            if pid > 0 && process_exists(pid) {
                return Some(pid);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

#[cfg(unix)]
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn take_lock(path: &Path) -> Result<File, StateError> {
    let lock = lock_path(path);
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(|e| StateError::Lock {
            path: path.to_path_buf(),
            lock,
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_state() -> State {
        let mut s = State::new(
            SinkKind::RemoteWrite,
            "http://p:9090/api/v1/write",
            &[0.1, 1.0],
        );
        let mut totals = Totals {
            runs: 2.0,
            ..Totals::default()
        };
        totals.tests.insert(("small".into(), "passed".into()), 7.0);
        let g = GroupState {
            labels: vec![("job".into(), "pytest".into())],
            cumulative_ms: 2_000,
            newest_run_ms: 2_000,
            runs: 2,
            totals,
            facts: Vec::new(),
        };
        let mut delta = Delta::default();
        delta.groups.insert("{job=\"pytest\"}".into(), g);
        for (id, t) in [("aa", 1_000), ("bb", 2_000)] {
            delta.runs.insert(
                id.into(),
                RunRecord {
                    group: "{job=\"pytest\"}".into(),
                    timestamp_ms: t,
                    path: format!("archive/{id}"),
                },
            );
        }
        s.pending = Some(Pending {
            target: s.target.clone(),
            request: Request::Gateway {
                job: "pytest".into(),
                grouping: vec![("project".into(), "a/b".into())],
                put: true,
            },
            body: "AAEC".into(),
            delta: delta.clone(),
            samples: 12,
        });
        s.apply(&delta);
        s
    }

    #[test]
    fn commits_and_loads_the_same_state() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("backfill.state");
        let f = StateFile::open(&p, true).unwrap();
        assert_eq!(f.load().unwrap(), None);
        let s = sample_state();
        f.commit(&s).unwrap();
        assert_eq!(f.load().unwrap(), Some(s.clone()));
        assert_eq!(
            s.used_timestamps()["{job=\"pytest\"}"],
            BTreeSet::from([1_000, 2_000])
        );
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_second_writer_is_refused_until_the_first_is_gone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.json");
        let first = StateFile::open(&p, true).unwrap();
        let e = StateFile::open(&p, true).err().unwrap().to_string();
        assert!(e.contains("another backfill holds its lock"), "{e}");
        assert!(e.contains(&std::process::id().to_string()), "{e}");
        // Readers (dry runs) do not need the lock.
        StateFile::open(&p, false).unwrap();
        drop(first);
        StateFile::open(&p, true).unwrap();
    }

    /// Takes the flock of `state`'s lock file the way a backfill does, without writing a pid.
    fn hold_lock_silently(state: &Path) -> File {
        use std::os::unix::io::AsRawFd;
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path(state))
            .unwrap();
        // SAFETY: flock on a descriptor we own.
        assert_eq!(
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
            0
        );
        f
    }

    #[test]
    fn a_holder_whose_pid_is_not_written_yet_is_never_shown_as_an_empty_pid() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.json");
        // A backfill that has just taken the lock of a new lock file: the file is still empty.
        let _holder = hold_lock_silently(&p);
        let e = StateFile::open(&p, true).err().unwrap().to_string();
        assert_eq!(
            e,
            format!(
                "state file {}: another backfill holds its lock {}; wait for it to finish",
                p.display(),
                lock_path(&p).display()
            )
        );
        // The file names a process that is gone (an earlier holder): not shown either.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        std::fs::write(lock_path(&p), format!("{gone}\n")).unwrap();
        let e = StateFile::open(&p, true).err().unwrap().to_string();
        assert!(!e.contains("pid"), "{e}");
    }

    #[test]
    fn the_holder_writes_its_pid_over_an_earlier_longer_one_without_emptying_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.json");
        std::fs::write(lock_path(&p), "4194303999\n").unwrap();
        let held = StateFile::open(&p, true).unwrap();
        let text = std::fs::read_to_string(lock_path(&p)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        let e = StateFile::open(&p, true).err().unwrap().to_string();
        assert!(
            e.ends_with(&format!(
                "another backfill holds its lock {} (pid {}); wait for it to finish",
                lock_path(&p).display(),
                std::process::id()
            )),
            "{e}"
        );
        drop(held);
    }

    #[test]
    fn bad_files_are_named_and_explained() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.json");
        let f = StateFile::open(&p, false).unwrap();
        std::fs::write(&p, "{\"version\": 9}").unwrap();
        let e = f.load().unwrap_err().to_string();
        assert!(e.contains("format version 9"), "{e}");
        std::fs::write(&p, "not json").unwrap();
        let e = f.load().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("state file {}: not JSON", p.display())),
            "{e}"
        );
        std::fs::write(&p, "{\"version\": 1, \"sink\": \"ftp\"}").unwrap();
        let e = f.load().unwrap_err().to_string();
        assert!(e.contains("not a ptc-metrics backfill state"), "{e}");
    }
}
