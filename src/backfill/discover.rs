//! Finding runs in directories and glob patterns (the matching rule of docs/backfill.md).
//!
//! One directory holds one run: the reports directly inside it (not in subdirectories).
//! A directory given on the command line is walked recursively and every directory in it
//! with an `.xml`/`.xml.gz` file or a `run.json` is a candidate. A glob pattern (or a file)
//! selects JUnit files; the directory of each becomes a candidate in which only the
//! selected files may be JUnit reports, with the size report, coverage and `run.json`
//! beside them. Which file is what is decided by content when the run is read
//! (`super::parse`); here only names are looked at, so discovery stays cheap. Hidden
//! entries (`.git`, `.…tmp` directories of `push --archive`) are skipped.
//!
//! A source that finds no report at all is an error, not an empty success: a glob that
//! matches no file here, and one that reaches no JUnit report ([`Discovery::check_sources`],
//! once the runs were read), so that a cron job with a typo does not look healthy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::runmeta;

/// A directory that may hold a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Candidate {
    pub dir: PathBuf,
    /// `.xml`, `.json` (and `.gz` of them) files directly in `dir`, sorted; not `run.json`.
    pub files: Vec<PathBuf>,
    /// From a glob or file argument: only these may be JUnit reports. `None`: any.
    pub selected: Option<BTreeSet<PathBuf>>,
    /// `run.json`, when present.
    pub meta: Option<PathBuf>,
}

/// What was found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Sorted by directory.
    pub candidates: Vec<Candidate>,
    /// What each source argument resolved to, in argument order.
    pub sources: Vec<Source>,
}

/// A source argument and the paths it resolved to.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub arg: String,
    pub glob: bool,
    /// Directories walked (`true`) and files selected (`false`).
    pub paths: Vec<(PathBuf, bool)>,
}

/// A source argument that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DiscoverError {
    #[error("{0}: no such file or directory (quote glob patterns so that the shell leaves them to ptc-metrics)")]
    NotFound(String),
    #[error("{pattern:?} is not a valid glob pattern: {message}")]
    BadPattern { pattern: String, message: String },
    #[error("{}: cannot be read: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("{}: is a symbolic link loop (following it leads back to itself); point the link at the \
             archive, or give the archive's real path", .0.display())]
    SymlinkLoop(PathBuf),
    #[error("{}: is a symbolic link to {}, which does not exist", path.display(), target.display())]
    DanglingLink { path: PathBuf, target: PathBuf },
    #[error("{0}: matches no file; check the pattern (and quote it, so that the shell leaves it to ptc-metrics)")]
    NoMatch(String),
    #[error("{pattern}: matches {files} file(s) but no JUnit report; check the pattern")]
    NoReportInGlob { pattern: String, files: usize },
    #[error("{0}: holds no JUnit report (searched recursively); check the path")]
    NoReportInDir(String),
    #[error(
        "{0}: is not a JUnit report; give a run's JUnit XML file, or the directory of its runs"
    )]
    NotAReport(String),
}

/// Why `p`, a symbolic link, cannot be followed (a loop, or a target that does not exist);
/// `None` when `p` is no link or can be followed.
fn broken_link(p: &Path) -> Option<DiscoverError> {
    if !std::fs::symlink_metadata(p).ok()?.is_symlink() {
        return None;
    }
    match std::fs::metadata(p) {
        Ok(_) => None,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            Some(DiscoverError::SymlinkLoop(p.to_path_buf()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(DiscoverError::DanglingLink {
            path: p.to_path_buf(),
            target: std::fs::read_link(p).unwrap_or_default(),
        }),
        Err(_) => None,
    }
}

/// True for names a report can have: `.xml`, `.json`, and either with `.gz`.
pub fn is_report_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let n = n.strip_suffix(".gz").unwrap_or(&n);
    n.ends_with(".xml") || n.ends_with(".json")
}

fn is_xml_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with(".xml") || n.ends_with(".xml.gz")
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Finds the candidates of every source (directory, file or glob pattern).
pub fn discover(sources: &[String]) -> Result<Discovery, DiscoverError> {
    let mut found = Found::default();
    let mut resolved = Vec::new();
    for src in sources {
        let p = Path::new(src);
        if let Some(e) = broken_link(p) {
            return Err(e);
        }
        let mut source = Source {
            arg: src.clone(),
            glob: false,
            paths: Vec::new(),
        };
        if p.exists() {
            source.paths.push(found.add_path(p, false)?);
        } else if has_glob_chars(src) {
            source.glob = true;
            let opts = glob::MatchOptions {
                case_sensitive: true,
                require_literal_separator: true,
                require_literal_leading_dot: true,
            };
            let paths = glob::glob_with(src, opts).map_err(|e| DiscoverError::BadPattern {
                pattern: src.clone(),
                message: e.to_string(),
            })?;
            for entry in paths {
                let path = entry.map_err(|e| DiscoverError::Io {
                    path: e.path().to_path_buf(),
                    message: e.error().to_string(),
                })?;
                source.paths.push(found.add_path(&path, true)?);
            }
            if source.paths.is_empty() {
                return Err(DiscoverError::NoMatch(src.clone()));
            }
        } else {
            return Err(DiscoverError::NotFound(src.clone()));
        }
        resolved.push(source);
    }
    let candidates = found
        .dirs
        .into_values()
        .filter(|c| c.meta.is_some() || c.files.iter().any(|f| is_xml_name(&file_name(f))))
        .collect();
    Ok(Discovery {
        candidates,
        sources: resolved,
    })
}

impl Discovery {
    /// Refuses a source that reached no JUnit report at all, not even one delivered before.
    /// `runs` are the candidate directories that turned out to hold a run (read, delivered
    /// before, or failed), as opposed to directories without a JUnit report.
    pub fn check_sources(&self, runs: &BTreeSet<PathBuf>) -> Result<(), DiscoverError> {
        let canonical_runs: BTreeSet<PathBuf> = runs.iter().map(|d| canonical(d)).collect();
        let holds_run = |dir: &Path| {
            let under = |set: &BTreeSet<PathBuf>, d: &Path| {
                set.range(d.to_path_buf()..)
                    .next()
                    .is_some_and(|r| r.starts_with(d))
            };
            under(runs, dir) || under(&canonical_runs, &canonical(dir))
        };
        for s in &self.sources {
            let reached = s.paths.iter().any(|(p, is_dir)| {
                if *is_dir {
                    holds_run(p)
                } else {
                    runs.contains(&parent_dir(p))
                }
            });
            if reached {
                continue;
            }
            return Err(match (s.glob, s.paths.first()) {
                (true, _) => DiscoverError::NoReportInGlob {
                    pattern: s.arg.clone(),
                    files: s.paths.len(),
                },
                (false, Some((_, true))) => DiscoverError::NoReportInDir(s.arg.clone()),
                (false, _) => DiscoverError::NotAReport(s.arg.clone()),
            });
        }
        Ok(())
    }
}

/// The directory a report file belongs to (`.` for a bare file name).
fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[derive(Default)]
struct Found {
    dirs: BTreeMap<PathBuf, Candidate>,
    /// Walked directories (canonical), so that symlink loops end.
    walked: BTreeSet<PathBuf>,
}

impl Found {
    /// Adds a directory (walked) or a file (selected); returns it and whether it is a
    /// directory. A path a glob matched that cannot be followed (a dangling link) is taken as
    /// a file, so that its run fails by name; a source given as such is an error.
    fn add_path(&mut self, p: &Path, from_glob: bool) -> Result<(PathBuf, bool), DiscoverError> {
        let is_dir = match std::fs::metadata(p) {
            Ok(meta) => meta.is_dir(),
            Err(_) if from_glob => false,
            Err(e) => {
                return Err(broken_link(p).unwrap_or_else(|| DiscoverError::Io {
                    path: p.to_path_buf(),
                    message: e.to_string(),
                }))
            }
        };
        if is_dir {
            self.walk(p)?;
        } else {
            let dir = parent_dir(p);
            self.scan_dir(&dir)?;
            if let Some(c) = self.dirs.get_mut(&dir) {
                if let Some(sel) = &mut c.selected {
                    sel.insert(p.to_path_buf());
                } else if !self.walked.contains(&canonical(&dir)) {
                    c.selected = Some(BTreeSet::from([p.to_path_buf()]));
                }
                if !c.files.iter().any(|f| f == p) {
                    c.files.push(p.to_path_buf());
                    c.files.sort();
                }
            }
        }
        Ok((p.to_path_buf(), is_dir))
    }

    /// Walks `dir` recursively; every directory becomes a candidate of all its reports.
    fn walk(&mut self, dir: &Path) -> Result<(), DiscoverError> {
        let canon = canonical(dir);
        if !self.walked.insert(canon) {
            return Ok(());
        }
        let subdirs = self.scan_dir(dir)?;
        if let Some(c) = self.dirs.get_mut(dir) {
            c.selected = None;
        }
        for d in subdirs {
            self.walk(&d)?;
        }
        Ok(())
    }

    /// Lists `dir` into its candidate (created if missing); returns its subdirectories.
    fn scan_dir(&mut self, dir: &Path) -> Result<Vec<PathBuf>, DiscoverError> {
        let io = |e: std::io::Error| DiscoverError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        };
        let mut files = Vec::new();
        let mut subdirs = Vec::new();
        let mut meta = None;
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = dir.join(&name);
            // Follows symlinks. A report name that cannot be followed (a dangling link, a
            // loop) stays a file of the run, whose reading then fails by name; anything else
            // that cannot be followed is skipped.
            let Ok(m) = std::fs::metadata(&path) else {
                if is_report_name(&name) {
                    files.push(path);
                }
                continue;
            };
            if m.is_dir() {
                subdirs.push(path);
            } else if m.is_file() {
                if name == runmeta::FILE_NAME {
                    meta = Some(path);
                } else if is_report_name(&name) {
                    files.push(path);
                }
            }
        }
        files.sort();
        subdirs.sort();
        let c = self
            .dirs
            .entry(dir.to_path_buf())
            .or_insert_with(|| Candidate {
                dir: dir.to_path_buf(),
                ..Candidate::default()
            });
        c.files = files;
        c.meta = meta;
        Ok(subdirs)
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
    }

    #[test]
    fn walks_directories_one_run_per_directory() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        touch(r, "a/junit.xml");
        touch(r, "a/size-report.json");
        touch(r, "a/coverage.xml.gz");
        touch(r, "a/notes.txt");
        touch(r, "a/run.json");
        touch(r, "b/c/report.xml");
        touch(r, "only-json/size.json");
        touch(r, ".git/x.xml");
        touch(r, "a/.junit.xml.tmp-1");
        let got = discover(&[r.display().to_string()]).unwrap();
        let dirs: Vec<PathBuf> = got.candidates.iter().map(|c| c.dir.clone()).collect();
        assert_eq!(dirs, vec![r.join("a"), r.join("b/c")]);
        let a = &got.candidates[0];
        assert_eq!(
            a.files,
            vec![
                r.join("a/coverage.xml.gz"),
                r.join("a/junit.xml"),
                r.join("a/size-report.json")
            ]
        );
        assert_eq!(a.meta, Some(r.join("a/run.json")));
        assert_eq!(a.selected, None);
    }

    #[test]
    fn globs_select_junit_files_and_keep_their_neighbours() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        touch(r, "ci/1/report.xml");
        touch(r, "ci/1/other.xml");
        touch(r, "ci/1/coverage.xml");
        touch(r, "ci/2/deep/report.xml.gz");
        let pat = format!("{}/ci/**/report.xml*", r.display());
        let got = discover(&[pat]).unwrap();
        assert_eq!(got.candidates.len(), 2);
        let c1 = &got.candidates[0];
        assert_eq!(c1.dir, r.join("ci/1"));
        assert_eq!(c1.files.len(), 3);
        assert_eq!(
            c1.selected,
            Some(BTreeSet::from([r.join("ci/1/report.xml")]))
        );
        assert_eq!(got.candidates[1].dir, r.join("ci/2/deep"));

        let pattern = format!("{}/nothing/*.xml", r.display());
        assert_eq!(
            discover(std::slice::from_ref(&pattern)).unwrap_err(),
            DiscoverError::NoMatch(pattern)
        );
        assert_eq!(
            discover(&["no/such/dir".into()]).unwrap_err(),
            DiscoverError::NotFound("no/such/dir".into())
        );
        assert!(matches!(
            discover(&["a/[".into()]).unwrap_err(),
            DiscoverError::BadPattern { .. }
        ));
    }

    #[test]
    fn a_directory_argument_wins_over_a_glob_for_the_same_directory() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        touch(r, "x/a.xml");
        touch(r, "x/b.xml");
        let got = discover(&[
            r.join("x/a.xml").display().to_string(),
            r.join("x").display().to_string(),
        ])
        .unwrap();
        assert_eq!(got.candidates.len(), 1);
        assert_eq!(got.candidates[0].selected, None);
    }
}
