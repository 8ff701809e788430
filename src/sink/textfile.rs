//! node_exporter textfile-collector sink: `--textfile PATH` (node_exporter
//! `collector/textfile.go` reads the `*.prom` files of `--collector.textfile.directory`, text
//! exposition format 0.0.4 without timestamps; METRICS.md §3–4).
//!
//! **Atomic replace.** The exposition goes to a hidden temporary file in the target's own
//! directory, is flushed to disk (`fsync`) and renamed over the target. rename(2) within one
//! file system is atomic, so the collector reads the old file or the new one, never part of
//! one, and a crash mid-write leaves the old file whole (plus a `.NAME.PID.tmp` file, which
//! the collector ignores because it does not end in `.prom`). The new file keeps the old one's
//! permission bits, or gets `0644` (independent of the umask, so a node_exporter running as
//! another user can read it).
//!
//! **Running totals.** Before writing, the cumulative families of the previous file
//! (`pytest_runs_total`, `pytest_tests_total`, `pytest_test_duration_seconds`,
//! `pytest_timing_violations_total`, `pytest_flaky_tests_total`, `ci_test_failures_total`) are
//! read back with a small parser of the text format ([`parse_previous`]) that keeps only those
//! families and only the series of this group, and the caller adds this run to them, as the Pushgateway sink does
//! with the group's values. A file holding metrics that ptc-metrics does not write is never
//! overwritten.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::atomic::{self, parent_dir, temp_path, Step};
use super::exposition::{family_of, is_cumulative, parse_sample, split_labels, TotalsBuilder};
use crate::derive::metrics::Labels;
use crate::derive::totals::Totals;

/// Where to write (validated: a file name ending in `.prom`).
#[derive(Debug, Clone, PartialEq)]
pub struct TextfileConfig {
    pub path: PathBuf,
}

/// Why the textfile was not written. Every message names the file and says what to do;
/// in every case the previous file is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum TextfileError {
    #[error("textfile {}: cannot read the previous file: {message}; nothing was written", path.display())]
    Read { path: PathBuf, message: String },
    #[error(
        "textfile {}: cannot take the lock {}: {message}; the previous file is unchanged{hint}",
        path.display(),
        lock.display()
    )]
    Lock {
        path: PathBuf,
        lock: PathBuf,
        message: String,
        hint: String,
    },
    #[error(
        "textfile {}:{line}: cannot read the previous values: {message}; nothing was written. \
         Fix or delete the file, or write this run alone with --no-accumulate",
        path.display()
    )]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "textfile {}: holds metrics ptc-metrics does not write (line {line}: {name}); nothing was \
         written. Give --textfile a file of its own (one per group), e.g. pytest.prom",
        path.display()
    )]
    Foreign {
        path: PathBuf,
        line: usize,
        name: String,
    },
    #[error(
        "textfile {}: cannot {step} {}: {message}; the previous file is unchanged{hint}",
        path.display(),
        temp.display()
    )]
    Write {
        path: PathBuf,
        temp: PathBuf,
        step: &'static str,
        message: String,
        hint: String,
    },
}

/// What the previous file held for this group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Previous {
    /// `None` when there is no file yet, or it holds no cumulative series of this group.
    pub totals: Option<Totals>,
    /// Things to say on stderr (series of another group that this write replaces).
    pub warnings: Vec<String>,
}

pub use super::exposition::FAMILIES;

/// Serialises the writers of one textfile (read the previous totals, add, replace): without
/// it, CI jobs writing the same file at once would each add their run to the same previous
/// file and all but one run would be lost. The lock file is `.NAME.lock` beside the target
/// (node_exporter reads only `*.prom`).
pub fn lock(cfg: &TextfileConfig) -> Result<atomic::FileLock, TextfileError> {
    atomic::FileLock::acquire(&cfg.path, std::time::Duration::from_secs(60)).map_err(|e| {
        let dir = parent_dir(&cfg.path);
        let hint = match e.kind() {
            io::ErrorKind::WouldBlock => {
                ". Is another ptc-metrics stuck writing the same file?".to_string()
            }
            io::ErrorKind::PermissionDenied => format!(
                ". This user cannot write to {}; the lock that keeps concurrent writers apart \
                 is created there",
                dir.display()
            ),
            _ => hint(&e, dir),
        };
        TextfileError::Lock {
            path: cfg.path.clone(),
            lock: atomic::lock_path(&cfg.path),
            message: io_message(&e),
            hint,
        }
    })
}

/// Reads the previous file's running totals for the group `group` (job + grouping labels,
/// empty values dropped, as every series carries them). No file yet: no totals.
pub fn read_previous(cfg: &TextfileConfig, group: &Labels) -> Result<Previous, TextfileError> {
    let path = &cfg.path;
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Previous::default()),
        Err(e) => {
            return Err(TextfileError::Read {
                path: path.clone(),
                message: io_message(&e),
            })
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        let ok = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        TextfileError::Parse {
            path: path.clone(),
            line: ok.iter().filter(|b| **b == b'\n').count() + 1,
            message: "not UTF-8 text".into(),
        }
    })?;
    let want: BTreeMap<String, String> = group
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .cloned()
        .collect();
    let parsed = parse_previous(&text, &want).map_err(|e| match e {
        PrevError::Syntax { line, message } => TextfileError::Parse {
            path: path.clone(),
            line,
            message,
        },
        PrevError::Foreign { line, name } => TextfileError::Foreign {
            path: path.clone(),
            line,
            name,
        },
    })?;
    let mut warnings = Vec::new();
    if !parsed.other_groups.is_empty() {
        warnings.push(format!(
            "textfile {} held series of another group ({}); this write replaces them, and this \
             group's totals start from this run. Use one --textfile per group",
            path.display(),
            parsed
                .other_groups
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok(Previous {
        totals: parsed.totals,
        warnings,
    })
}

/// Why a previous file could not be used.
#[derive(Debug, Clone, PartialEq)]
pub enum PrevError {
    /// A line that is not text format 0.0.4 (1-based line number).
    Syntax { line: usize, message: String },
    /// A metric that is not one of [`FAMILIES`].
    Foreign { line: usize, name: String },
}

/// The result of [`parse_previous`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub totals: Option<Totals>,
    /// Group label sets (`{job="…",project="…"}`) of cumulative series of other groups.
    pub other_groups: BTreeSet<String>,
}

/// Parses a text-format file written by this sink, keeping the cumulative series whose group
/// labels are exactly `group`.
pub fn parse_previous(text: &str, group: &BTreeMap<String, String>) -> Result<Parsed, PrevError> {
    let mut totals = TotalsBuilder::default();
    let mut other_groups = BTreeSet::new();
    for (k, raw) in text.lines().enumerate() {
        let line_no = k + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if let (Some("HELP" | "TYPE"), Some(name)) = (words.next(), words.next()) {
                if !FAMILIES.contains(&name) {
                    return Err(PrevError::Foreign {
                        line: line_no,
                        name: name.to_string(),
                    });
                }
            }
            continue;
        }
        let s = parse_sample(line).map_err(|message| PrevError::Syntax {
            line: line_no,
            message,
        })?;
        let family = family_of(s.name).ok_or_else(|| PrevError::Foreign {
            line: line_no,
            name: s.name.to_string(),
        })?;
        if !is_cumulative(family) {
            continue;
        }
        let (own, rest) = split_labels(s.labels);
        if &rest != group {
            other_groups.insert(format!(
                "{{{}}}",
                rest.iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
            continue;
        }
        totals
            .add(family, s.name, &own, s.value)
            .map_err(|message| PrevError::Syntax {
                line: line_no,
                message,
            })?;
    }
    Ok(Parsed {
        totals: totals.finish(),
        other_groups,
    })
}

/// Writes `text` to the target atomically: temporary file next to it, fsync, rename, fsync
/// of the directory. On any failure the temporary file is removed and the target is untouched.
pub fn write(cfg: &TextfileConfig, text: &str) -> Result<(), TextfileError> {
    let path = &cfg.path;
    let dir = parent_dir(path);
    let temp = temp_path(path);
    atomic::replace(path, &temp, Some(mode_for(path)), |w| {
        w.write_all(text.as_bytes())
    })
    .map_err(|e| TextfileError::Write {
        path: path.clone(),
        temp: temp.clone(),
        step: match e.step {
            Step::Create => "create the temporary file",
            Step::Permissions => "set the permissions of",
            Step::Write => "write the temporary file",
            Step::Rename => "rename over the target the temporary file",
        },
        message: io_message(&e.error),
        hint: hint(&e.error, dir),
    })
}

/// The previous file's permission bits, or 0644: set explicitly, so the umask of a CI job
/// does not hide the file from a node_exporter running as another user.
#[cfg(unix)]
fn mode_for(target: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(target)
        .ok()
        .filter(|m| m.is_file())
        .map_or(0o644, |m| m.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn mode_for(_: &Path) -> u32 {
    0o644
}

fn io_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn hint(e: &io::Error, dir: &Path) -> String {
    let d = dir.display();
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => format!(
            ". Does the directory {d} exist? Create it, or point --textfile into node_exporter's \
             --collector.textfile.directory"
        ),
        io::ErrorKind::PermissionDenied => format!(
            ". This user cannot write to {d}; the temporary file is created there so that the \
             rename is atomic"
        ),
        io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty => {
            ". The target is a directory: give --textfile a file name ending in .prom".into()
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge => {
            ". Free some space".into()
        }
        io::ErrorKind::ReadOnlyFilesystem => format!(". {d} is on a read-only file system"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const FILE: &str = r#"# HELP ci_test_failures_total Failed and errored tests.
# TYPE ci_test_failures_total counter
ci_test_failures_total{failure_type="assertion",job="pytest",project="shop"} 14
ci_test_failures_total{failure_type="error",job="pytest",project="shop"} 3
# HELP pytest_runs_total Runs.
# TYPE pytest_runs_total counter
pytest_runs_total{job="pytest",project="shop"} 2
# TYPE pytest_test_duration_seconds histogram
pytest_test_duration_seconds_bucket{job="pytest",outcome="passed",project="shop",size="small",le="0.1"} 40
pytest_test_duration_seconds_bucket{job="pytest",outcome="passed",project="shop",size="small",le="1"} 42
pytest_test_duration_seconds_bucket{job="pytest",outcome="passed",project="shop",size="small",le="+Inf"} 43
pytest_test_duration_seconds_sum{job="pytest",outcome="passed",project="shop",size="small"} 1.5e-2
pytest_test_duration_seconds_count{job="pytest",outcome="passed",project="shop",size="small"} 43
# TYPE pytest_tests gauge
pytest_tests{job="pytest",outcome="passed",project="shop",size="small"} 42
pytest_tests_total{job="pytest",outcome="passed",project="shop",size="small"} 84
pytest_timing_violations_total{job="pytest",project="shop",size="small"} 6
pytest_flaky_tests_total{job="pytest",project="shop",size="small"} 5
"#;

    #[test]
    fn reads_the_cumulative_families_of_the_group() {
        let p = parse_previous(FILE, &group(&[("job", "pytest"), ("project", "shop")])).unwrap();
        let t = p.totals.unwrap();
        assert_eq!(t.runs, 2.0);
        assert_eq!(t.tests[&("small".into(), "passed".into())], 84.0);
        assert_eq!(t.timing["small"], 6.0);
        assert_eq!(t.flaky["small"], 5.0);
        assert_eq!(t.failures["assertion"], 14.0);
        assert_eq!(t.failures["error"], 3.0);
        let h = &t.durations[&("small".into(), "passed".into())];
        assert_eq!(h.bounds, vec![0.1, 1.0]);
        assert_eq!(h.cumulative, vec![40.0, 42.0]);
        assert_eq!((h.sum, h.count), (0.015, 43.0));
        assert!(p.other_groups.is_empty());
    }

    #[test]
    fn other_groups_are_reported_not_added() {
        let p = parse_previous(FILE, &group(&[("job", "pytest"), ("project", "web")])).unwrap();
        assert_eq!(p.totals, None);
        assert_eq!(
            p.other_groups.into_iter().collect::<Vec<_>>(),
            [r#"{job="pytest",project="shop"}"#]
        );
    }

    #[test]
    fn label_escapes_and_odd_spacing() {
        let s =
            parse_sample(r#"pytest_runs_total { job = "a\"b\\c\nd" , } 3 1700000000000"#).unwrap();
        assert_eq!(s.name, "pytest_runs_total");
        assert_eq!(s.labels, vec![("job", "a\"b\\c\nd".to_string())]);
        assert_eq!(s.value, 3.0);
        let p = parse_previous(
            "pytest_runs_total{job=\"a\\\"b\"} 1\n",
            &group(&[("job", "a\"b")]),
        )
        .unwrap();
        assert_eq!(p.totals.unwrap().runs, 1.0);
    }

    #[test]
    fn bad_lines_are_errors_with_their_line() {
        let g = group(&[("job", "pytest")]);
        let cases = [
            (
                "pytest_runs_total{job=\"pytest\"} many\n",
                1,
                "pytest_runs_total: \"many\" is not a number",
            ),
            (
                "\n\npytest_runs_total{job=\"pytest} 1\n",
                3,
                "pytest_runs_total: unterminated value of label job",
            ),
            (
                "pytest_runs_total{job=pytest} 1\n",
                1,
                "pytest_runs_total: the value of label job must be quoted",
            ),
            (
                "pytest_runs_total{job=\"pytest\"}\n",
                1,
                "pytest_runs_total: the sample has no value",
            ),
            (
                "pytest_runs_total{job=\"pytest\"} -1\n",
                1,
                "pytest_runs_total has the value -1, which is not a count",
            ),
            ("{job=\"pytest\"} 1\n", 1, "expected a metric name"),
            (
                "pytest_runs_total{job=\"p\\t\"} 1\n",
                1,
                "pytest_runs_total: invalid escape \\t in label job",
            ),
        ];
        for (text, line, message) in cases {
            assert_eq!(
                parse_previous(text, &g),
                Err(PrevError::Syntax {
                    line,
                    message: message.into()
                }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn foreign_metrics_are_refused() {
        let g = group(&[("job", "pytest")]);
        assert_eq!(
            parse_previous("# HELP node_cpu_seconds_total CPU.\n", &g),
            Err(PrevError::Foreign {
                line: 1,
                name: "node_cpu_seconds_total".into()
            })
        );
        assert_eq!(
            parse_previous("pytest_runs_total 1\nmy_backup_ok 1\n", &g),
            Err(PrevError::Foreign {
                line: 2,
                name: "my_backup_ok".into()
            })
        );
        // Empty and comment-only files are fine: no totals.
        assert_eq!(parse_previous("", &g).unwrap().totals, None);
        assert_eq!(parse_previous("# hello\n\n", &g).unwrap().totals, None);
    }

    #[test]
    fn every_family_we_write_is_known() {
        use crate::derive::totals::Totals;
        use crate::derive::{metrics, Summary};
        use crate::model::Coverage;
        let mut s = Summary {
            bounds: vec![1.0],
            coverage: Some(Coverage {
                lines_valid: 2,
                lines_covered: 1,
                uncovered: vec![("a.py".into(), 1)],
                modules: vec![crate::model::ModuleCoverage {
                    module: "a".into(),
                    lines_valid: 2,
                    lines_covered: 1,
                }],
            }),
            per_test: vec![("t".into(), crate::model::Size::Small, 1.0)],
            ..Summary::default()
        };
        s.tests[0][0] = 1;
        s.durations = vec![
            vec![
                crate::derive::DurationHist {
                    per_bucket: vec![1, 0],
                    sum: 0.5,
                    count: 1
                };
                5
            ];
            6
        ];
        let t = Totals::of_run(&s);
        let fams = metrics::families(&s, &t, &vec![("job".into(), "pytest".into())]);
        assert_eq!(fams.len(), FAMILIES.len());
        for f in &fams {
            assert!(FAMILIES.contains(&f.name()), "{}", f.name());
        }
        // And a file we wrote reads back to the totals we wrote.
        let text = crate::encode::text::encode(&fams).unwrap();
        let p = parse_previous(&text, &group(&[("job", "pytest")])).unwrap();
        assert_eq!(p.totals.unwrap(), t);
    }

    #[test]
    fn writes_atomically_and_keeps_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("pytest.prom");
        let cfg = TextfileConfig { path: path.clone() };
        write(&cfg, "pytest_runs_total 1\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "pytest_runs_total 1\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        // A stale temporary file of this process id is replaced.
        fs::write(temp_path(&path), "junk").unwrap();
        write(&cfg, "pytest_runs_total 2\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "pytest_runs_total 2\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["pytest.prom"]);
    }

    #[test]
    fn failed_writes_leave_the_target_and_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails after the temporary file was written.
        let path = d.path().join("dir.prom");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), "x").unwrap();
        let e = write(&TextfileConfig { path: path.clone() }, "x 1\n").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "textfile {}: cannot rename over the target the temporary file {}",
                path.display(),
                temp_path(&path).display()
            )),
            "{msg}"
        );
        assert!(msg.ends_with("; the previous file is unchanged. The target is a directory: give --textfile a file name ending in .prom"), "{msg}");
        assert!(!temp_path(&path).exists());
        assert!(path.join("keep").exists());
        // The directory does not exist.
        let path = d.path().join("missing").join("pytest.prom");
        let msg = write(&TextfileConfig { path }, "x 1\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("cannot create the temporary file"), "{msg}");
        assert!(
            msg.contains(
                "no such file or directory; the previous file is unchanged. Does the directory"
            ),
            "{msg}"
        );
    }
}
