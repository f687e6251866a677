//! Proves a minted installation token works, and checks REQUIRED_SCOPES against the
//! permissions GitHub granted.
//!
//! The call is `GET /installation/repositories?per_page=1`, which every installation token
//! may make whatever its permissions, and which is what actions/create-github-app-token's
//! own end-to-end test calls (providers.md §1.2). A 401 right after minting is replication
//! lag: octokit retries for about 6 s (octokit/auth-app.js#168), and so do we, within the
//! run's deadline.

use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::error::Error;
use crate::http::{Auth, Call, Http};
use crate::provider::{Fresh, lag};
use crate::report::Reporter;
use crate::token::{Token, Validated, parse_list};
use crate::vars::{self, Mode, Problems, Raw, shown};

use super::section::LEVELS;
use super::{GitHubApp, HEADERS, hints};

/// The waits between attempts after a 401 on a fresh token: about 6 s in all.
const LAG_DELAYS: [Duration; 4] = [
    Duration::from_millis(500),
    Duration::from_millis(1000),
    Duration::from_millis(1500),
    Duration::from_millis(3000),
];

/// What validation calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `GET {GITHUB_API_URL}/installation/repositories?per_page=1`.
    Installation,
    /// `GET VALIDATE_URL`.
    Url(Url),
}

impl Target {
    /// The URL called.
    pub fn url(&self, api: &str) -> Url {
        match self {
            Target::Installation => {
                Url::parse(&format!("{api}/installation/repositories?per_page=1"))
                    .expect("GITHUB_API_URL was checked")
            }
            Target::Url(url) => url.clone(),
        }
    }
}

/// VALIDATE and VALIDATE_URL: `Some(None)` when validation is off; git's own request
/// validates a git-credential token, so there only VALIDATE_URL asks for a call.
pub fn parse(raw: &Raw, mode: Mode, problems: &mut Problems) -> Option<Option<Target>> {
    let validate = vars::boolean(raw, "VALIDATE", true, problems);
    let url = raw
        .get("VALIDATE_URL")
        .map(|u| vars::parse_url("VALIDATE_URL", u, problems));
    match (validate && mode != Mode::Status, url) {
        (false, _) => Some(None),
        (true, Some(url)) => url.map(|u| Some(Target::Url(u))),
        (true, None) if mode == Mode::GitCredential => Some(None),
        (true, None) => Some(Some(Target::Installation)),
    }
}

/// REQUIRED_SCOPES as `permission` or `permission:level`.
pub fn parse_required(raw: &Raw, problems: &mut Problems) -> Vec<String> {
    let required = parse_list(raw.get("REQUIRED_SCOPES").unwrap_or(""));
    for bad in required.iter().filter(|r| {
        let (name, level) = r.split_once(':').unwrap_or((r, "read"));
        name.is_empty()
            || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            || !LEVELS.contains(&level)
    }) {
        problems.push("REQUIRED_SCOPES", format!("has {}, which is not a permission: for github-app list permission or permission:level, e.g. contents:write (write covers read, admin covers both).", shown(bad)));
    }
    required
}

/// The required permissions the granted ones (`name:level`) do not cover.
pub fn check_permissions(required: &[String], granted: &[String]) -> Result<(), Error> {
    let rank = |level: &str| LEVELS.iter().position(|l| *l == level).unwrap_or(0);
    let missing: Vec<&String> = required
        .iter()
        .filter(|r| {
            let (name, level) = r.split_once(':').unwrap_or((r, "read"));
            !granted.iter().any(|g| {
                g.split_once(':')
                    .is_some_and(|(n, l)| n == name && rank(l) >= rank(level))
            })
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let granted = if granted.is_empty() {
        "none".to_owned()
    } else {
        granted.join(", ")
    };
    Err(Error::Validation(format!(
        "The token lacks required permission(s): {}. Granted: {granted}.\nGive the app these permissions (the app's settings > Permissions & events; the owner must then accept them on the installation), and request them in PERMISSIONS, or change REQUIRED_SCOPES.",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Makes the validation call, retrying a fresh token's 401 for about 6 s.
pub async fn call(
    app: &GitHubApp,
    target: &Target,
    token: &Token,
    fresh: Fresh,
    http: &Http,
    log: &mut Reporter,
) -> Result<Validated, Error> {
    let url = target.url(&app.api);
    let mut call = Call::get(
        "validation call",
        &url,
        match target {
            Target::Installation => "GITHUB_API_URL",
            Target::Url(_) => "VALIDATE_URL",
        },
        Auth::Bearer(&token.secret),
    );
    call.headers = HEADERS;
    let response = lag::send(&call, fresh, &LAG_DELAYS, "GitHub", http, log).await?;
    if response.status.is_success() {
        let what = match target {
            Target::Installation => {
                let count = serde_json::from_slice::<Value>(&response.body)
                    .ok()
                    .and_then(|v| v.get("total_count").and_then(Value::as_u64));
                match count {
                    Some(n) => format!("list the installation's repositories, {n} visible"),
                    None => "list the installation's repositories".to_owned(),
                }
            }
            Target::Url(url) => format!("GET {url}"),
        };
        return Ok(Validated::Called {
            what,
            status: response.status.as_u16(),
            scopes: None,
        });
    }
    let said = hints::message(&response.body)
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    if let Some(what) = hints::rate_limit(&response) {
        return Err(Error::provider(format!(
            "The validation call GET {url} was refused (HTTP {}{said}). {what}",
            response.status
        )));
    }
    let hint = match response.status.as_u16() {
        401 if fresh == Fresh::Issued => {
            "GitHub kept refusing the token it had just minted. Check that GITHUB_API_URL is the GitHub that minted it (GHES: https://HOST/api/v3); if it is, try again later."
        }
        401 => "The token is no longer valid (expired or revoked).",
        403 => {
            "The token may not make this call: give the app the permission it needs, or set VALIDATE_URL to something the token may read."
        }
        404 => "Nothing is there for this token: check VALIDATE_URL, or leave it unset.",
        _ => "Check GITHUB_API_URL and VALIDATE_URL.",
    };
    Err(Error::Validation(format!(
        "The token failed validation: GET {url} answered HTTP {}{said}.\n{hint}",
        response.status
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_covers_read_and_admin_covers_both() {
        let granted = ["contents:write".to_string(), "metadata:read".to_string()];
        let ok = |r: &[&str]| {
            check_permissions(
                &r.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                &granted,
            )
            .is_ok()
        };
        assert!(ok(&[
            "contents",
            "contents:read",
            "contents:write",
            "metadata"
        ]));
        assert!(!ok(&["contents:admin"]));
        assert!(!ok(&["metadata:write"]));
        assert!(!ok(&["issues"]));
    }
}
