//! `ptc-metrics push --archive DIR`: keep a copy of the run's reports for a later
//! backfill, in `DIR/<start time>-<hash>/` with a `run.json` naming its group and files.
//!
//! The copy is made in a hidden temporary directory and renamed into place, so a backfill
//! (which skips hidden entries) never sees half a run. Archiving the same reports twice
//! keeps the first copy. The commit and CI run id go into `run.json` only, never into
//! labels; the group's labels (the `shard` of a split run among them) go into its
//! `labels`, so that a backfill writes the run to the group it was pushed to.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::parse::run_id;
use super::runmeta::{self, Files, RunMeta, Timestamp};
use crate::config::{ArchiveConfig, GroupConfig};
use crate::read::{source, Inputs, Kind};

/// The run could not be archived.
#[derive(Debug, thiserror::Error)]
#[error("--archive {}: {message}", dir.display())]
pub struct ArchiveError {
    pub dir: PathBuf,
    pub message: String,
}

/// Where a run went: its directory, and whether this call wrote it (`false`: the same reports
/// were archived before, and that copy is kept as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub dir: PathBuf,
    pub new: bool,
}

/// Copies the run's inputs into a new run directory under `cfg.dir`.
/// `timestamp` is the run start (METRICS.md §3), Unix seconds.
pub fn archive_run(
    cfg: &ArchiveConfig,
    inputs: &Inputs,
    group: &GroupConfig,
    timestamp: f64,
) -> Result<Archived, ArchiveError> {
    let kept = |dir: PathBuf| Archived { dir, new: false };
    let fail = |message: String| ArchiveError {
        dir: cfg.dir.clone(),
        message,
    };
    let mut junit = Vec::new();
    let mut sizes = inputs.size_reports.clone();
    let mut cov = inputs.coverage.clone();
    for p in &inputs.reports {
        match source::sniff(p).map_err(|e| fail(e.to_string()))? {
            Kind::Junit => junit.push(p.clone()),
            Kind::Coverage => cov.push(p.clone()),
            _ => sizes.push(p.clone()),
        }
    }
    let id = run_id(&junit).map_err(|e| fail(e.to_string()))?;
    let ms = (timestamp.max(0.0) * 1000.0).round() as i64;
    let name = format!("{}-{}", compact(ms), &id[..12]);
    let dest = cfg.dir.join(&name);
    if dest.exists() {
        return Ok(kept(dest));
    }
    fs::create_dir_all(&cfg.dir).map_err(|e| fail(format!("cannot create the directory: {e}")))?;
    let tmp = crate::sink::atomic::temp_path(&dest);
    let result = (|| -> Result<(), String> {
        fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        let mut taken: Vec<String> = vec![runmeta::FILE_NAME.to_string()];
        let mut copy_all = |files: &[PathBuf]| -> Result<Vec<String>, String> {
            files
                .iter()
                .map(|src| {
                    let base = src
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "report".into());
                    let mut n = base.clone();
                    let mut i = 2;
                    while taken.contains(&n) {
                        n = format!("{i}-{base}");
                        i += 1;
                    }
                    taken.push(n.clone());
                    let to = tmp.join(&n);
                    fs::copy(src, &to).map_err(|e| {
                        format!("cannot copy {} to {}: {e}", src.display(), to.display())
                    })?;
                    fs::File::open(&to)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| format!("cannot sync {}: {e}", to.display()))?;
                    Ok(n)
                })
                .collect()
        };
        let files = Files {
            junit: copy_all(&junit)?,
            size_report: copy_all(&sizes)?,
            coverage: copy_all(&cov)?,
        };
        let meta = meta_of(cfg, inputs, group, ms, files);
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| e.to_string())?;
        let path = tmp.join(runmeta::FILE_NAME);
        let mut f =
            fs::File::create(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        f.write_all(&json)
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        fs::rename(&tmp, &dest)
            .map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), dest.display()))?;
        if let Ok(d) = fs::File::open(&cfg.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(m) = result {
        let _ = fs::remove_dir_all(&tmp);
        if dest.exists() {
            // Another process archived the same run meanwhile.
            return Ok(kept(dest));
        }
        return Err(fail(m));
    }
    Ok(Archived {
        dir: dest,
        new: true,
    })
}

fn meta_of(
    cfg: &ArchiveConfig,
    inputs: &Inputs,
    group: &GroupConfig,
    ms: i64,
    files: Files,
) -> RunMeta {
    let mut meta = RunMeta {
        version: Some(runmeta::VERSION),
        job: Some(group.job.clone()),
        timestamp: Some(Timestamp::Text(crate::civil::rfc3339(ms))),
        commit: cfg.commit.clone(),
        run_id: cfg.run_id.clone(),
        run_url: cfg.run_url.clone(),
        ci_provider: cfg.ci_provider.clone(),
        junit_prefix: (!inputs.junit_prefix.is_empty()).then(|| inputs.junit_prefix.clone()),
        files: Some(files),
        ..RunMeta::default()
    };
    let mut labels = BTreeMap::new();
    for (k, v) in &group.grouping {
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "project" => meta.project = Some(v.clone()),
            "branch" => meta.branch = Some(v.clone()),
            _ => {
                labels.insert(k.clone(), v.clone());
            }
        }
    }
    meta.labels = labels;
    meta
}

/// `20261126T142654Z` (sortable, no characters file systems dislike).
fn compact(ms: i64) -> String {
    crate::civil::rfc3339(ms.div_euclid(1000) * 1000).replace(['-', ':'], "")
}

/// True when `p` holds a run.json, i.e. is an archived run directory.
pub fn is_run_dir(p: &Path) -> bool {
    p.join(runmeta::FILE_NAME).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::discover::discover;
    use crate::backfill::parse::{classify, Defaults};

    #[test]
    fn archives_a_run_that_backfill_reads_back_with_its_group() {
        let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pytest-9.2");
        let t = tempfile::tempdir().unwrap();
        let cfg = ArchiveConfig {
            dir: t.path().join("archive"),
            commit: Some("abc123".into()),
            run_id: Some("77".into()),
            run_url: None,
            ci_provider: Some("github-actions".into()),
        };
        let inputs = Inputs {
            reports: vec![fx.join("junit-xunit2.xml"), fx.join("coverage.xml")],
            size_reports: vec![fx.join("size-report.json")],
            coverage: vec![],
            junit_prefix: String::new(),
        };
        let group = GroupConfig {
            job: "pytest".into(),
            grouping: vec![
                ("project".into(), "acme/shop".into()),
                ("branch".into(), "feature/x".into()),
                ("ci_job".into(), "tests".into()),
                ("shard".into(), "2/4".into()),
                ("os".into(), "".into()),
            ],
        };
        let a = archive_run(&cfg, &inputs, &group, 1_795_703_214.051_6).unwrap();
        assert!(a.new);
        let d = a.dir;
        assert!(d
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("20261126T142654Z-"));
        assert!(is_run_dir(&d));
        // Idempotent: the first copy is kept, and the answer says so.
        assert_eq!(
            archive_run(&cfg, &inputs, &group, 1_795_703_214.051_6).unwrap(),
            Archived {
                dir: d.clone(),
                new: false
            }
        );
        let meta = RunMeta::read(&d.join("run.json")).unwrap();
        assert_eq!(meta.project.as_deref(), Some("acme/shop"));
        assert_eq!(meta.branch.as_deref(), Some("feature/x"));
        assert_eq!(
            meta.labels,
            BTreeMap::from([
                ("ci_job".into(), "tests".into()),
                ("shard".into(), "2/4".into())
            ])
        );
        assert_eq!(meta.commit.as_deref(), Some("abc123"));
        assert_eq!(meta.timestamp_seconds().unwrap(), Some(1_795_703_214.052));

        let found = discover(&[cfg.dir.display().to_string()]).unwrap();
        assert_eq!(found.candidates.len(), 1);
        let files = classify(&found.candidates[0], &meta).unwrap();
        assert_eq!(files.junit, vec![d.join("junit-xunit2.xml")]);
        assert_eq!(files.coverage, vec![d.join("coverage.xml")]);
        assert_eq!(files.size_reports, vec![d.join("size-report.json")]);
        let g = crate::backfill::parse::group_of(&meta, &Defaults::default()).unwrap();
        assert_eq!(
            crate::backfill::parse::group_key(&g.series_labels()),
            r#"{branch="feature/x",ci_job="tests",job="pytest",project="acme/shop",shard="2/4"}"#
        );
        // No temporary directory is left.
        assert_eq!(fs::read_dir(&cfg.dir).unwrap().count(), 1);
    }
}
