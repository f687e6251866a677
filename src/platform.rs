//! Which CI runs us. One binary serves Bitbucket Pipelines (a `pipe:` step), GitHub Actions
//! (a Docker action), GitLab CI (a job whose dotenv file becomes a `reports: dotenv`
//! artifact) and a local shell; only the outputs and the log's workflow commands differ.

use crate::vars::Raw;

/// The CI system the pipe runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// `GITHUB_ACTIONS=true`.
    GitHubActions,
    /// `BITBUCKET_BUILD_NUMBER` is set.
    BitbucketPipelines,
    /// `GITLAB_CI=true`.
    GitLabCi,
    /// None of the above: a developer's shell or another CI.
    Local,
}

impl Platform {
    /// Detects the platform from its marker variables, GitHub first: a GitHub job may well
    /// carry Bitbucket variables it mirrors, never the other way round.
    pub fn detect(raw: &Raw) -> Platform {
        if raw.get("GITHUB_ACTIONS") == Some("true") {
            Platform::GitHubActions
        } else if raw.get("BITBUCKET_BUILD_NUMBER").is_some() {
            Platform::BitbucketPipelines
        } else if raw.get("GITLAB_CI") == Some("true") {
            Platform::GitLabCi
        } else {
            Platform::Local
        }
    }

    /// How the log names it.
    pub fn name(self) -> &'static str {
        match self {
            Platform::GitHubActions => "GitHub Actions",
            Platform::BitbucketPipelines => "Bitbucket Pipelines",
            Platform::GitLabCi => "GitLab CI",
            Platform::Local => "a local shell (no CI detected)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(pairs: &[(&str, &str)]) -> Platform {
        Platform::detect(&Raw::new(
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        ))
    }

    #[test]
    fn detection_order() {
        let all = [
            ("GITHUB_ACTIONS", "true"),
            ("BITBUCKET_BUILD_NUMBER", "7"),
            ("GITLAB_CI", "true"),
        ];
        assert_eq!(detect(&all), Platform::GitHubActions);
        assert_eq!(
            detect(&[("GITHUB_ACTIONS", "false"), ("BITBUCKET_BUILD_NUMBER", "7")]),
            Platform::BitbucketPipelines
        );
        assert_eq!(
            detect(&[("BITBUCKET_BUILD_NUMBER", ""), ("GITLAB_CI", "true")]),
            Platform::GitLabCi
        );
        assert_eq!(detect(&[("GITLAB_CI", "1")]), Platform::Local);
    }
}
