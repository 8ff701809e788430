//! `run.json`: the small per-run metadata file beside an archived run's reports, so that
//! a backfill gives the run its labels without CI environment variables (docs/backfill.md).
//! Written by `ptc-metrics push --archive DIR`, or by hand. Every field is optional:
//!
//! ```json
//! {
//!   "version": 1,
//!   "job": "pytest",
//!   "project": "acme/shop",
//!   "branch": "main",
//!   "labels": {"ci_job": "tests", "shard": "2/4", "python_version": "3.12"},
//!   "timestamp": "2026-11-26T14:26:54Z",
//!   "commit": "4f2a…", "run_id": "4711", "ci_provider": "github-actions",
//!   "junit_prefix": "",
//!   "files": {"junit": ["junit.xml"], "size_report": ["size-report.json"], "coverage": ["coverage.xml"]}
//! }
//! ```
//!
//! `commit`, `run_id` and `ci_provider` are kept for people and never become labels (no
//! per-run value is ever a label, METRICS.md §3). A shard of a run split over parallel jobs
//! keeps its `shard` label (`INDEX/TOTAL`, counted from 1) among the labels, so that a
//! backfill gives it the group it was pushed to. Unknown fields are an error, so that a
//! misspelt `"brnach"` is not silently ignored; free text goes into `"notes"`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{check_label_name, Shard};
use crate::read::junit::parse_timestamp;

/// The file name looked for in a run's directory.
pub const FILE_NAME: &str = "run.json";
/// The format written and understood.
pub const VERSION: u32 = 1;

/// A run's timestamp: ISO 8601 text or Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Timestamp {
    Seconds(f64),
    Text(String),
}

/// The run's files, relative to the directory of `run.json` (replaces the naming rule).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    #[serde(default)]
    pub junit: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub size_report: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coverage: Vec<String>,
}

/// The content of `run.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The CI run's web page: a field of the run's events (docs/events.md), never a label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub junit_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Files>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<serde_json::Value>,
}

impl RunMeta {
    /// Reads and checks `path`. The message says what is wrong, without the path.
    pub fn read(path: &Path) -> Result<RunMeta, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))?;
        let meta: RunMeta = serde_json::from_str(&text).map_err(|e| format!("{e}"))?;
        meta.check()?;
        Ok(meta)
    }

    /// Checks versions, label names and the timestamp.
    pub fn check(&self) -> Result<(), String> {
        if let Some(v) = self.version {
            if v > VERSION {
                return Err(format!(
                    "version {v} is newer than this ptc-metrics understands ({VERSION})"
                ));
            }
        }
        if self.job.as_deref() == Some("") {
            return Err("\"job\" must not be empty".into());
        }
        for k in self.labels.keys() {
            if matches!(k.as_str(), "project" | "branch" | "job") {
                return Err(format!(
                    "\"labels\": set {k:?} with the \"{k}\" field, not as a label"
                ));
            }
            check_label_name(k, "\"labels\"").map_err(|e| e.0)?;
        }
        if let Some(v) = self.labels.get(Shard::LABEL) {
            Shard::parse(v).map_err(|e| format!("\"labels\": shard {e}"))?;
        }
        self.timestamp_seconds()?;
        if let Some(f) = &self.files {
            for p in f.junit.iter().chain(&f.size_report).chain(&f.coverage) {
                let pp = Path::new(p);
                if pp.is_absolute()
                    || pp
                        .components()
                        .any(|c| c == std::path::Component::ParentDir)
                {
                    return Err(format!(
                        "\"files\": {p:?} must be a path inside the run's directory"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The explicit timestamp in Unix seconds, if any.
    pub fn timestamp_seconds(&self) -> Result<Option<f64>, String> {
        match &self.timestamp {
            None => Ok(None),
            Some(Timestamp::Seconds(s)) if s.is_finite() && *s > 0.0 => Ok(Some(*s)),
            Some(Timestamp::Seconds(s)) => Err(format!(
                "\"timestamp\": {s} is not a Unix time in seconds"
            )),
            Some(Timestamp::Text(t)) => parse_timestamp(t).map(Some).ok_or_else(|| {
                format!("\"timestamp\": {t:?} is not an ISO 8601 date and time (e.g. 2026-11-26T14:26:54Z)")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RunMeta, String> {
        let m: RunMeta = serde_json::from_str(s).map_err(|e| e.to_string())?;
        m.check()?;
        Ok(m)
    }

    #[test]
    fn reads_every_field() {
        let m = parse(
            r#"{"version":1,"job":"ci","project":"acme/shop","branch":"main",
                "labels":{"ci_job":"tests","os":"linux"},"timestamp":"2026-11-26T14:26:54Z",
                "commit":"abc","run_id":"7","ci_provider":"gitlab-ci","junit_prefix":"p",
                "files":{"junit":["a.xml.gz"],"coverage":["coverage.xml"]},"notes":{"any":[1]}}"#,
        )
        .unwrap();
        assert_eq!(m.project.as_deref(), Some("acme/shop"));
        assert_eq!(m.labels["os"], "linux");
        assert_eq!(m.timestamp_seconds().unwrap(), Some(1_795_703_214.0));
        assert_eq!(m.files.unwrap().junit, vec!["a.xml.gz"]);
        let m = parse(r#"{"timestamp": 1795703214.5}"#).unwrap();
        assert_eq!(m.timestamp_seconds().unwrap(), Some(1_795_703_214.5));
        assert_eq!(parse("{}").unwrap(), RunMeta::default());
    }

    #[test]
    fn mistakes_are_errors() {
        let e = parse(r#"{"brnach":"main"}"#).unwrap_err();
        assert!(e.contains("unknown field `brnach`"), "{e}");
        let e = parse(r#"{"labels":{"branch":"x"}}"#).unwrap_err();
        assert!(e.contains("with the \"branch\" field"), "{e}");
        let e = parse(r#"{"labels":{"9x":"x"}}"#).unwrap_err();
        assert!(e.contains("not a valid label name"), "{e}");
        let e = parse(r#"{"timestamp":"yesterday"}"#).unwrap_err();
        assert!(e.contains("not an ISO 8601"), "{e}");
        let e = parse(r#"{"labels":{"shard":"5/4"}}"#).unwrap_err();
        assert_eq!(
            e,
            "\"labels\": shard 5/4: INDEX must be between 1 and TOTAL (4)"
        );
        let e = parse(r#"{"labels":{"shard":"2"}}"#).unwrap_err();
        assert_eq!(
            e,
            "\"labels\": shard \"2\": not INDEX/TOTAL; write e.g. 2/4 for the second of 4 parallel jobs"
        );
        let e = parse(r#"{"version":2}"#).unwrap_err();
        assert!(e.contains("newer"), "{e}");
        let e = parse(r#"{"files":{"junit":["../x.xml"]}}"#).unwrap_err();
        assert!(e.contains("inside the run's directory"), "{e}");
    }
}
