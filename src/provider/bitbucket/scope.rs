//! Scope lists and Bitbucket's scope implications.
//!
//! A token granted `repository:write` can read repositories although its scope list does not
//! say `repository`: Bitbucket documents that some scopes imply others. REQUIRED_SCOPES is
//! checked against the granted scopes closed under those implications, so users list what
//! they need, not what Bitbucket happens to print.

use std::collections::BTreeSet;

/// Bitbucket's documented implications, from "Scopes for the Bitbucket Cloud REST API"
/// (https://developer.atlassian.com/cloud/bitbucket/bitbucket-cloud-rest-api-scopes/):
/// "repository:write ... implies repository"; "pullrequest ... implies repository";
/// "pullrequest:write ... implies pullrequest ... also implies repository:write"; the
/// `:write` forms of issue, snippet, account, team, pipeline and runner imply their read
/// form; `project` grants read access to the repositories in the projects
/// (https://support.atlassian.com/bitbucket-cloud/docs/app-password-permissions/).
/// `repository:admin` and `repository:delete` are documented as implying neither
/// `repository` nor `repository:write`. Where the page says nothing we add nothing: a
/// missing implication fails loudly and names the scope, a wrong one would pass silently.
const IMPLIES: &[(&str, &[&str])] = &[
    ("repository:write", &["repository"]),
    ("pullrequest", &["repository"]),
    ("pullrequest:write", &["pullrequest", "repository:write"]),
    ("issue:write", &["issue"]),
    ("snippet:write", &["snippet"]),
    ("account:write", &["account"]),
    ("team:write", &["team"]),
    ("pipeline:write", &["pipeline"]),
    ("runner:write", &["runner"]),
    ("project", &["repository"]),
];

/// Scope names are lower-case words joined by `:` (`repository:write`, `pipeline:variable`).
pub fn is_well_formed(scope: &str) -> bool {
    !scope.is_empty()
        && scope.split(':').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// `granted` plus everything it implies.
pub fn effective(granted: &[String]) -> BTreeSet<String> {
    let mut all: BTreeSet<String> = granted.iter().cloned().collect();
    let mut pending: Vec<String> = granted.to_vec();
    while let Some(scope) = pending.pop() {
        for (_, implied) in IMPLIES.iter().filter(|(s, _)| *s == scope) {
            for i in *implied {
                if all.insert((*i).to_owned()) {
                    pending.push((*i).to_owned());
                }
            }
        }
    }
    all
}

/// The required scopes that `granted` neither lists nor implies, in the order required.
pub fn missing(required: &[String], granted: &[String]) -> Vec<String> {
    let have = effective(granted);
    required
        .iter()
        .filter(|r| !have.contains(*r))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> Vec<String> {
        crate::token::parse_list(s)
    }

    #[test]
    fn write_implies_read() {
        assert!(missing(&list("repository"), &list("repository:write")).is_empty());
        assert!(
            missing(
                &list("repository repository:write pullrequest"),
                &list("pullrequest:write")
            )
            .is_empty()
        );
        assert!(missing(&list("repository"), &list("project")).is_empty());
    }

    #[test]
    fn admin_implies_nothing() {
        assert_eq!(
            missing(
                &list("repository,repository:write"),
                &list("repository:admin")
            ),
            ["repository", "repository:write"]
        );
    }

    #[test]
    fn reports_only_what_is_missing_in_order() {
        assert_eq!(
            missing(
                &list("webhook,repository,pipeline:variable"),
                &list("repository")
            ),
            ["webhook", "pipeline:variable"]
        );
    }

    #[test]
    fn well_formed_names() {
        assert!(is_well_formed("repository:write") && is_well_formed("pipeline:variable"));
        assert!(
            !is_well_formed("repo:")
                && !is_well_formed(":x")
                && !is_well_formed("a b")
                && !is_well_formed("x;y")
        );
    }
}
