//! Project, branch and CI job detected from CI environment variables: GitHub Actions,
//! GitLab CI, Jenkins, CircleCI, Buildkite and Azure Pipelines (variable names as those
//! systems document them; PEERS.md §3). Flags always win over what is found here.
//!
//! Only stable values become labels: never a commit, run id or build number, because
//! Pushgateway groups never expire (METRICS.md §3).

/// What the CI environment says about this job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiContext {
    /// `github-actions`, `gitlab-ci`, `jenkins`, `circleci`, `buildkite`, `azure-pipelines`.
    pub provider: Option<&'static str>,
    pub project: Option<String>,
    pub branch: Option<String>,
    /// The CI job's name (stable across runs), so parallel jobs get their own group.
    pub job: Option<String>,
    /// Per-run facts, for archives only (never labels).
    pub commit: Option<String>,
    pub run_id: Option<String>,
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
            run_id: get("GITHUB_RUN_ID"),
        }
    } else if get("GITLAB_CI").is_some() {
        CiContext {
            provider: Some("gitlab-ci"),
            project: get("CI_PROJECT_PATH"),
            branch: first(&[
                "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
                "CI_COMMIT_BRANCH",
                "CI_COMMIT_REF_NAME",
            ]),
            job: get("CI_JOB_NAME"),
            commit: get("CI_COMMIT_SHA"),
            run_id: get("CI_PIPELINE_ID"),
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
        }
    } else if get("BUILDKITE").is_some() {
        CiContext {
            provider: Some("buildkite"),
            project: get("BUILDKITE_PIPELINE_SLUG"),
            branch: first(&["BUILDKITE_BRANCH", "BUILDKITE_TAG"]),
            job: get("BUILDKITE_STEP_KEY"),
            commit: get("BUILDKITE_COMMIT"),
            run_id: get("BUILDKITE_BUILD_ID"),
        }
    } else if get("TF_BUILD").is_some() {
        let branch = first(&["SYSTEM_PULLREQUEST_SOURCEBRANCH", "BUILD_SOURCEBRANCH"]).map(|b| {
            b.strip_prefix("refs/heads/")
                .map(str::to_string)
                .unwrap_or(b)
        });
        CiContext {
            provider: Some("azure-pipelines"),
            project: first(&["BUILD_REPOSITORY_NAME", "SYSTEM_TEAMPROJECT"]),
            branch,
            job: get("SYSTEM_JOBDISPLAYNAME"),
            commit: first(&["SYSTEM_PULLREQUEST_SOURCECOMMITID", "BUILD_SOURCEVERSION"]),
            run_id: get("BUILD_BUILDID"),
        }
    } else {
        CiContext::default()
    }
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
}
