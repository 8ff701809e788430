//! Project, branch, CI job and shard detected from CI environment variables: GitHub
//! Actions, GitLab CI, Jenkins, CircleCI, Buildkite and Azure Pipelines (variable names as
//! those systems document them; PEERS.md §3). Flags always win over what is found here.
//!
//! Only stable values become labels: never a commit, run id or build number, because
//! Pushgateway groups never expire (METRICS.md §3).
//!
//! Shards (one job's part of a run split over parallel jobs, docs/ci-at-scale.md) come from
//! GitLab `parallel: N` (`CI_NODE_INDEX`/`CI_NODE_TOTAL`, from 1), CircleCI `parallelism`
//! (`CIRCLE_NODE_INDEX`/`CIRCLE_NODE_TOTAL`, from 0), Buildkite `parallelism`
//! (`BUILDKITE_PARALLEL_JOB`/`BUILDKITE_PARALLEL_JOB_COUNT`, from 0) and Azure Pipelines
//! `strategy: parallel` (`SYSTEM_JOBPOSITIONINPHASE`/`SYSTEM_TOTALJOBSINPHASE`, from 1).
//! GitLab and Azure set the same variables for the entries of a matrix, which are separate
//! runs, not shards: GitLab names a parallel job `NAME INDEX/TOTAL` (a matrix entry
//! `NAME: [values]`), and Azure says `SYSTEM_PARALLELEXECUTIONTYPE=MultiMachine` only for
//! `strategy: parallel` (`MultiConfiguration` for a matrix). GitHub Actions and Jenkins have
//! no such variables: pass `--shard` from the matrix.

use crate::config::Shard;

/// What the CI environment says about this job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiContext {
    /// `github-actions`, `gitlab-ci`, `jenkins`, `circleci`, `buildkite`, `azure-pipelines`.
    pub provider: Option<&'static str>,
    pub project: Option<String>,
    pub branch: Option<String>,
    /// The CI job's name (stable across runs), so parallel jobs get their own group. For a
    /// shard, the name all shards share (GitLab's ` INDEX/TOTAL` suffix removed).
    pub job: Option<String>,
    /// Per-run facts, for archives only (never labels).
    pub commit: Option<String>,
    pub run_id: Option<String>,
    /// The web page of this run (or of its job), for events only (never labels).
    pub run_url: Option<String>,
    /// This job's place in a run split over parallel jobs, as the CI's variables tell it.
    pub shard: Option<CiShard>,
}

/// A parallel job's position, as read from the CI's variables (not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiShard {
    pub index_var: &'static str,
    pub index: String,
    pub total_var: &'static str,
    pub total: String,
    /// The CI counts from 0 (CircleCI, Buildkite); shards count from 1.
    pub zero_based: bool,
}

impl CiShard {
    fn read(
        get: &dyn Fn(&str) -> Option<String>,
        index_var: &'static str,
        total_var: &'static str,
        zero_based: bool,
    ) -> Option<CiShard> {
        Some(CiShard {
            index_var,
            index: get(index_var)?.trim().to_string(),
            total_var,
            total: get(total_var)?.trim().to_string(),
            zero_based,
        })
    }

    /// The shard, counted from 1. The message names the variables and their values.
    pub fn shard(&self) -> Result<Shard, String> {
        let n = |v: &str| -> Option<u32> {
            (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .then(|| v.parse().ok())
                .flatten()
        };
        let shard = match (n(&self.index), n(&self.total)) {
            (Some(i), Some(t)) => {
                let i = if self.zero_based {
                    i.checked_add(1)
                } else {
                    Some(i)
                };
                i.ok_or_else(String::new)
                    .and_then(|i| Shard::new(i, t))
                    .ok()
            }
            _ => None,
        };
        shard.ok_or_else(|| {
            format!(
                "{}={:?} and {}={:?} (counted from {}) do not name one of the parallel jobs; \
                 give --shard INDEX/TOTAL, or --no-ci-detect",
                self.index_var,
                self.index,
                self.total_var,
                self.total,
                if self.zero_based { 0 } else { 1 }
            )
        })
    }
}

/// Detects the CI context through `var` (a lookup of environment variables).
pub fn detect(var: &dyn Fn(&str) -> Option<String>) -> CiContext {
    let get = |k: &str| var(k).filter(|v| !v.trim().is_empty());
    let first = |keys: &[&str]| keys.iter().find_map(|k| get(k));
    if get("GITHUB_ACTIONS").is_some() {
        CiContext {
            provider: Some("github-actions"),
            project: get("GITHUB_REPOSITORY"),
            branch: first(&["GITHUB_HEAD_REF", "GITHUB_REF_NAME"]),
            job: get("GITHUB_JOB"),
            commit: get("GITHUB_SHA"),
            // A re-run of the workflow keeps the run id and is a run of its own.
            run_id: get("GITHUB_RUN_ID").map(|id| match get("GITHUB_RUN_ATTEMPT") {
                Some(a) if a.trim() != "1" => format!("{id}.{}", a.trim()),
                _ => id,
            }),
            run_url: match (
                get("GITHUB_SERVER_URL"),
                get("GITHUB_REPOSITORY"),
                get("GITHUB_RUN_ID"),
            ) {
                (Some(server), Some(repo), Some(id)) => Some(format!(
                    "{}/{repo}/actions/runs/{id}",
                    server.trim_end_matches('/')
                )),
                _ => None,
            },
            shard: None,
        }
    } else if get("GITLAB_CI").is_some() {
        let mut job = get("CI_JOB_NAME");
        let mut shard = CiShard::read(&get, "CI_NODE_INDEX", "CI_NODE_TOTAL", false);
        // `parallel: N` names its jobs `NAME INDEX/TOTAL`; a `parallel: matrix` entry sets the
        // same variables but is named `NAME: [values]` and is a run of its own.
        let base = shard.as_ref().and_then(|s| {
            let suffix = format!(" {}/{}", s.index, s.total);
            job.as_deref()?.strip_suffix(&suffix).map(str::to_string)
        });
        match base {
            Some(b) => job = Some(b),
            None => shard = None,
        }
        CiContext {
            provider: Some("gitlab-ci"),
            project: get("CI_PROJECT_PATH"),
            branch: first(&[
                "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
                "CI_COMMIT_BRANCH",
                "CI_COMMIT_REF_NAME",
            ]),
            job,
            commit: get("CI_COMMIT_SHA"),
            run_id: get("CI_PIPELINE_ID"),
            run_url: first(&["CI_JOB_URL", "CI_PIPELINE_URL"]),
            shard,
        }
    } else if get("JENKINS_URL").is_some() {
        let job_name = get("JOB_NAME");
        let branch = first(&["CHANGE_BRANCH", "BRANCH_NAME", "GIT_BRANCH"])
            .map(|b| b.strip_prefix("origin/").map(str::to_string).unwrap_or(b));
        // Multibranch pipelines name jobs `project/branch`: the project is the part before.
        let project = job_name.as_ref().map(|j| match &branch {
            Some(b) => j
                .strip_suffix(&format!("/{}", b.replace('/', "%2F")))
                .or_else(|| j.strip_suffix(&format!("/{b}")))
                .unwrap_or(j)
                .to_string(),
            None => j.clone(),
        });
        CiContext {
            provider: Some("jenkins"),
            project,
            branch,
            job: None,
            commit: get("GIT_COMMIT"),
            run_id: get("BUILD_TAG"),
            run_url: get("BUILD_URL"),
            shard: None,
        }
    } else if get("CIRCLECI").is_some() {
        CiContext {
            provider: Some("circleci"),
            project: match (
                get("CIRCLE_PROJECT_USERNAME"),
                get("CIRCLE_PROJECT_REPONAME"),
            ) {
                (Some(u), Some(r)) => Some(format!("{u}/{r}")),
                (None, Some(r)) => Some(r),
                _ => None,
            },
            branch: first(&["CIRCLE_BRANCH", "CIRCLE_TAG"]),
            job: get("CIRCLE_JOB"),
            commit: get("CIRCLE_SHA1"),
            run_id: get("CIRCLE_WORKFLOW_ID"),
            run_url: get("CIRCLE_BUILD_URL"),
            shard: CiShard::read(&get, "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", true),
        }
    } else if get("BUILDKITE").is_some() {
        CiContext {
            provider: Some("buildkite"),
            project: get("BUILDKITE_PIPELINE_SLUG"),
            branch: first(&["BUILDKITE_BRANCH", "BUILDKITE_TAG"]),
            job: get("BUILDKITE_STEP_KEY"),
            commit: get("BUILDKITE_COMMIT"),
            run_id: get("BUILDKITE_BUILD_ID"),
            run_url: get("BUILDKITE_BUILD_URL"),
            shard: CiShard::read(
                &get,
                "BUILDKITE_PARALLEL_JOB",
                "BUILDKITE_PARALLEL_JOB_COUNT",
                true,
            ),
        }
    } else if get("TF_BUILD").is_some() {
        let branch = first(&["SYSTEM_PULLREQUEST_SOURCEBRANCH", "BUILD_SOURCEBRANCH"]).map(|b| {
            b.strip_prefix("refs/heads/")
                .map(str::to_string)
                .unwrap_or(b)
        });
        // Only `strategy: parallel` splits a run; a matrix entry (MultiConfiguration) sets
        // the same position variables.
        let parallel = get("SYSTEM_PARALLELEXECUTIONTYPE")
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("MultiMachine"));
        let shard = if parallel {
            CiShard::read(
                &get,
                "SYSTEM_JOBPOSITIONINPHASE",
                "SYSTEM_TOTALJOBSINPHASE",
                false,
            )
        } else {
            None
        };
        // The slices of a parallel job share the job's (phase's) display name; their own
        // display names tell them apart.
        let job = if shard.is_some() {
            first(&["SYSTEM_PHASEDISPLAYNAME", "SYSTEM_JOBDISPLAYNAME"])
        } else {
            get("SYSTEM_JOBDISPLAYNAME")
        };
        CiContext {
            provider: Some("azure-pipelines"),
            project: first(&["BUILD_REPOSITORY_NAME", "SYSTEM_TEAMPROJECT"]),
            branch,
            job,
            commit: first(&["SYSTEM_PULLREQUEST_SOURCECOMMITID", "BUILD_SOURCEVERSION"]),
            run_id: get("BUILD_BUILDID"),
            run_url: match (
                get("SYSTEM_COLLECTIONURI"),
                get("SYSTEM_TEAMPROJECT"),
                get("BUILD_BUILDID"),
            ) {
                (Some(c), Some(p), Some(id)) => Some(format!(
                    "{}/{}/_build/results?buildId={}",
                    c.trim_end_matches('/'),
                    percent_encode(&p),
                    percent_encode(&id)
                )),
                _ => None,
            },
            shard,
        }
    } else {
        CiContext::default()
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters (an Azure project name may
/// hold spaces).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ctx(vars: &[(&str, &str)]) -> CiContext {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        detect(&move |k| m.get(k).cloned())
    }

    #[test]
    fn run_urls_per_ci() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: [Case; 8] = [
            (
                &[
                    ("GITHUB_ACTIONS", "true"),
                    ("GITHUB_SERVER_URL", "https://github.com"),
                    ("GITHUB_REPOSITORY", "acme/shop"),
                    ("GITHUB_RUN_ID", "123"),
                ],
                Some("https://github.com/acme/shop/actions/runs/123"),
            ),
            (
                &[
                    ("GITHUB_ACTIONS", "true"),
                    ("GITHUB_REPOSITORY", "acme/shop"),
                ],
                None,
            ),
            (
                &[
                    ("GITLAB_CI", "true"),
                    ("CI_PIPELINE_URL", "https://gitlab.com/a/b/-/pipelines/9"),
                    ("CI_JOB_URL", "https://gitlab.com/a/b/-/jobs/77"),
                ],
                Some("https://gitlab.com/a/b/-/jobs/77"),
            ),
            (
                &[
                    ("GITLAB_CI", "true"),
                    ("CI_PIPELINE_URL", "https://gitlab.com/a/b/-/pipelines/9"),
                ],
                Some("https://gitlab.com/a/b/-/pipelines/9"),
            ),
            (
                &[
                    ("CIRCLECI", "true"),
                    ("CIRCLE_BUILD_URL", "https://circleci.com/gh/a/b/5"),
                ],
                Some("https://circleci.com/gh/a/b/5"),
            ),
            (
                &[
                    ("BUILDKITE", "true"),
                    ("BUILDKITE_BUILD_URL", "https://buildkite.com/a/b/builds/4"),
                ],
                Some("https://buildkite.com/a/b/builds/4"),
            ),
            (
                &[
                    ("JENKINS_URL", "https://ci/"),
                    ("BUILD_URL", "https://ci/job/shop/12/"),
                ],
                Some("https://ci/job/shop/12/"),
            ),
            (
                &[
                    ("TF_BUILD", "True"),
                    ("SYSTEM_COLLECTIONURI", "https://dev.azure.com/acme/"),
                    ("SYSTEM_TEAMPROJECT", "Web Shop"),
                    ("BUILD_BUILDID", "42"),
                ],
                Some("https://dev.azure.com/acme/Web%20Shop/_build/results?buildId=42"),
            ),
        ];
        for (vars, want) in cases {
            assert_eq!(ctx(vars).run_url.as_deref(), want, "{vars:?}");
        }
    }

    #[test]
    fn github_pull_request_uses_head_ref() {
        let c = ctx(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "acme/shop"),
            ("GITHUB_HEAD_REF", "feature/cart"),
            ("GITHUB_REF_NAME", "42/merge"),
            ("GITHUB_JOB", "tests"),
            ("GITHUB_SHA", "abc"),
        ]);
        assert_eq!(c.provider, Some("github-actions"));
        assert_eq!(c.project.as_deref(), Some("acme/shop"));
        assert_eq!(c.branch.as_deref(), Some("feature/cart"));
        assert_eq!(c.job.as_deref(), Some("tests"));
    }

    #[test]
    fn github_push_uses_ref_name_when_head_ref_is_empty() {
        let c = ctx(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_HEAD_REF", ""),
            ("GITHUB_REF_NAME", "main"),
        ]);
        assert_eq!(c.branch.as_deref(), Some("main"));
    }

    #[test]
    fn gitlab_jenkins_circle_buildkite_azure() {
        let c = ctx(&[
            ("GITLAB_CI", "true"),
            ("CI_PROJECT_PATH", "g/p"),
            ("CI_COMMIT_REF_NAME", "dev"),
            ("CI_JOB_NAME", "pytest 1/2"),
        ]);
        assert_eq!(
            (c.project.as_deref(), c.branch.as_deref(), c.job.as_deref()),
            (Some("g/p"), Some("dev"), Some("pytest 1/2"))
        );
        let c = ctx(&[
            ("JENKINS_URL", "http://j"),
            ("JOB_NAME", "shop/feature%2Fx"),
            ("BRANCH_NAME", "feature/x"),
        ]);
        assert_eq!(
            (c.project.as_deref(), c.branch.as_deref()),
            (Some("shop"), Some("feature/x"))
        );
        let c = ctx(&[
            ("JENKINS_URL", "http://j"),
            ("JOB_NAME", "shop"),
            ("GIT_BRANCH", "origin/main"),
        ]);
        assert_eq!(
            (c.project.as_deref(), c.branch.as_deref()),
            (Some("shop"), Some("main"))
        );
        let c = ctx(&[
            ("CIRCLECI", "true"),
            ("CIRCLE_PROJECT_USERNAME", "acme"),
            ("CIRCLE_PROJECT_REPONAME", "shop"),
            ("CIRCLE_BRANCH", "main"),
        ]);
        assert_eq!(
            (c.project.as_deref(), c.branch.as_deref()),
            (Some("acme/shop"), Some("main"))
        );
        let c = ctx(&[
            ("BUILDKITE", "true"),
            ("BUILDKITE_PIPELINE_SLUG", "shop"),
            ("BUILDKITE_BRANCH", "main"),
        ]);
        assert_eq!(
            (c.project.as_deref(), c.branch.as_deref()),
            (Some("shop"), Some("main"))
        );
        let c = ctx(&[
            ("TF_BUILD", "True"),
            ("BUILD_REPOSITORY_NAME", "shop"),
            ("BUILD_SOURCEBRANCH", "refs/heads/rel/1"),
        ]);
        assert_eq!(
            (c.project.as_deref(), c.branch.as_deref()),
            (Some("shop"), Some("rel/1"))
        );
        assert_eq!(ctx(&[]), CiContext::default());
    }

    fn shard_of(vars: &[(&str, &str)]) -> Option<Result<String, String>> {
        ctx(vars).shard.map(|s| s.shard().map(|s| s.to_string()))
    }

    #[test]
    fn shards_of_every_ci_counted_from_one() {
        // GitLab `parallel: 4`: 1-based, and the job name loses its " 2/4".
        let c = ctx(&[
            ("GITLAB_CI", "true"),
            ("CI_JOB_NAME", "pytest 2/4"),
            ("CI_NODE_INDEX", "2"),
            ("CI_NODE_TOTAL", "4"),
        ]);
        assert_eq!(c.job.as_deref(), Some("pytest"));
        assert_eq!(c.shard.unwrap().shard().unwrap().to_string(), "2/4");
        // CircleCI and Buildkite count from 0.
        let circle = [
            ("CIRCLECI", "true"),
            ("CIRCLE_JOB", "test"),
            ("CIRCLE_NODE_INDEX", "0"),
            ("CIRCLE_NODE_TOTAL", "3"),
        ];
        assert_eq!(shard_of(&circle), Some(Ok("1/3".into())));
        assert_eq!(ctx(&circle).job.as_deref(), Some("test"));
        let bk = [
            ("BUILDKITE", "true"),
            ("BUILDKITE_PARALLEL_JOB", "4"),
            ("BUILDKITE_PARALLEL_JOB_COUNT", "5"),
        ];
        assert_eq!(shard_of(&bk), Some(Ok("5/5".into())));
        // Azure `strategy: parallel` counts from 1; the slices share the phase's name.
        let azure = [
            ("TF_BUILD", "True"),
            ("SYSTEM_PARALLELEXECUTIONTYPE", "MultiMachine"),
            ("SYSTEM_JOBPOSITIONINPHASE", "3"),
            ("SYSTEM_TOTALJOBSINPHASE", "4"),
            ("SYSTEM_PHASEDISPLAYNAME", "Tests"),
            ("SYSTEM_JOBDISPLAYNAME", "Tests Job3"),
        ];
        assert_eq!(shard_of(&azure), Some(Ok("3/4".into())));
        assert_eq!(ctx(&azure).job.as_deref(), Some("Tests"));
        // Not parallel: no shard (CircleCI says 0 of 1, which is a run in one piece).
        assert_eq!(
            shard_of(&[
                ("CIRCLECI", "true"),
                ("CIRCLE_NODE_INDEX", "0"),
                ("CIRCLE_NODE_TOTAL", "1")
            ]),
            Some(Ok("1/1".into()))
        );
        assert_eq!(
            shard_of(&[("GITLAB_CI", "true"), ("CI_NODE_TOTAL", "1")]),
            None
        );
        assert_eq!(shard_of(&[("GITHUB_ACTIONS", "true")]), None);
        assert_eq!(shard_of(&[("JENKINS_URL", "http://j")]), None);
    }

    #[test]
    fn matrix_entries_are_not_shards() {
        // GitLab `parallel: matrix` sets CI_NODE_INDEX/TOTAL too, but names the job
        // `NAME: [values]`: each entry is a run of its own.
        let c = ctx(&[
            ("GITLAB_CI", "true"),
            ("CI_JOB_NAME", "pytest: [3.12]"),
            ("CI_NODE_INDEX", "2"),
            ("CI_NODE_TOTAL", "2"),
        ]);
        assert_eq!((c.job.as_deref(), c.shard), (Some("pytest: [3.12]"), None));
        // Azure: a matrix is MultiConfiguration.
        let c = ctx(&[
            ("TF_BUILD", "True"),
            ("SYSTEM_PARALLELEXECUTIONTYPE", "MultiConfiguration"),
            ("SYSTEM_JOBPOSITIONINPHASE", "2"),
            ("SYSTEM_TOTALJOBSINPHASE", "3"),
            ("SYSTEM_PHASEDISPLAYNAME", "JSONL"),
            ("SYSTEM_JOBDISPLAYNAME", "JSONL Python39Windows"),
        ]);
        assert_eq!(
            (c.job.as_deref(), c.shard),
            (Some("JSONL Python39Windows"), None)
        );
    }

    #[test]
    fn bad_shard_variables_name_themselves() {
        for (vars, want) in [
            (
                [("CIRCLE_NODE_INDEX", "3"), ("CIRCLE_NODE_TOTAL", "3")],
                "CIRCLE_NODE_INDEX=\"3\" and CIRCLE_NODE_TOTAL=\"3\" (counted from 0) do not name \
                 one of the parallel jobs; give --shard INDEX/TOTAL, or --no-ci-detect",
            ),
            (
                [("CIRCLE_NODE_INDEX", "x"), ("CIRCLE_NODE_TOTAL", "3")],
                "CIRCLE_NODE_INDEX=\"x\" and CIRCLE_NODE_TOTAL=\"3\" (counted from 0) do not name \
                 one of the parallel jobs; give --shard INDEX/TOTAL, or --no-ci-detect",
            ),
        ] {
            let mut v = vec![("CIRCLECI", "true")];
            v.extend(vars);
            assert_eq!(shard_of(&v), Some(Err(want.to_string())));
        }
        let v = [
            ("TF_BUILD", "True"),
            ("SYSTEM_PARALLELEXECUTIONTYPE", "MultiMachine"),
            ("SYSTEM_JOBPOSITIONINPHASE", "0"),
            ("SYSTEM_TOTALJOBSINPHASE", "2"),
        ];
        assert_eq!(
            shard_of(&v),
            Some(Err(
                "SYSTEM_JOBPOSITIONINPHASE=\"0\" and SYSTEM_TOTALJOBSINPHASE=\"2\" \
                 (counted from 1) do not name one of the parallel jobs; give --shard INDEX/TOTAL, \
                 or --no-ci-detect"
                    .to_string()
            ))
        );
    }
}
