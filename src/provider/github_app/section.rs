//! The github-app configuration section, every problem reported at once and none quoting
//! the key.
//!
//! Which installation follows actions/create-github-app-token (ci-token-tools.md §1,
//! providers.md §1.3), whose semantics users already know: neither OWNER nor REPOSITORIES →
//! the current repository only (GITHUB_REPOSITORY on GitHub Actions; elsewhere there is
//! none, so we ask for one); OWNER only → every repository of that account's installation;
//! REPOSITORIES only → the owner is GITHUB_REPOSITORY_OWNER; the first repository listed
//! picks the installation. INSTALLATION_ID skips the lookup; then the token covers
//! REPOSITORIES, or the whole installation when none are listed.

use crate::provider::jwt::PrivateKey;
use crate::token::parse_list;
use crate::vars::{self, Mode, Problems, Raw, shown, whitespace_slip};

use super::validate;
use super::{DEFAULT_API_URL, GitHubApp};

/// Which installation the token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// INSTALLATION_ID: no lookup.
    Installation(u64),
    /// `GET /repos/{owner}/{repo}/installation`.
    Repository {
        /// The account.
        owner: String,
        /// The first repository listed (or the current one).
        repo: String,
    },
    /// `GET /users/{owner}/installation` (which serves organisations too).
    Owner(String),
}

/// The permission levels GitHub grants, weakest first.
pub const LEVELS: &[&str] = &["read", "write", "admin"];

/// Reads the section; `None` when something needed is broken (the problems say what).
pub fn parse(raw: &Raw, mode: Mode, problems: &mut Problems) -> Option<GitHubApp> {
    // Status reads a file and revoke sends the token itself: neither needs the app.
    let minting = mode != Mode::Status;
    let app_id = app_id(raw, minting, problems);
    let key = private_key(raw, minting, problems);
    let api = vars::base_url(raw, "GITHUB_API_URL", Some(DEFAULT_API_URL), problems);
    let owner = login(raw, "OWNER", problems);
    let installation = installation_id(raw, problems);
    let current = current_repository(raw, problems);
    let current_owner = login(raw, "GITHUB_REPOSITORY_OWNER", problems);
    let listed = parse_list(raw.get("REPOSITORIES").unwrap_or(""));
    let permissions = permissions(raw, problems);
    let validation = validate::parse(raw, mode, problems);
    let required = validate::parse_required(raw, problems);

    let effective_owner = owner.clone().or_else(|| {
        (!listed.is_empty())
            .then(|| current_owner.clone())
            .flatten()
    });
    let repositories = repository_names(&listed, effective_owner.as_deref(), problems);
    let target = match (installation, &owner, repositories.first()) {
        (Some(id), _, _) => Some(Target::Installation(id)),
        (None, Some(owner), None) => Some(Target::Owner(owner.clone())),
        (None, _, Some(first)) => match &effective_owner {
            Some(owner) => Some(Target::Repository {
                owner: owner.clone(),
                repo: first.clone(),
            }),
            None => {
                if minting {
                    problems.push("REPOSITORIES", "names repositories but no owner: set OWNER to the account (user or organisation) they belong to. GITHUB_REPOSITORY_OWNER supplies it on GitHub Actions only.");
                }
                None
            }
        },
        (None, None, None) => match &current {
            Some((owner, repo)) => Some(Target::Repository {
                owner: owner.clone(),
                repo: repo.clone(),
            }),
            None => {
                if minting {
                    problems.push("OWNER", "is not set, nor REPOSITORIES, and there is no current GitHub repository (GITHUB_REPOSITORY is set on GitHub Actions only): set OWNER to the account whose installation to use (the token then covers all its repositories), and REPOSITORIES to limit it, or INSTALLATION_ID.");
                }
                None
            }
        },
    };
    // With neither OWNER nor REPOSITORIES the token covers the current repository only, as
    // the official action does.
    let repositories = match (&target, owner.is_none() && listed.is_empty()) {
        (Some(Target::Repository { repo, .. }), true) => vec![repo.clone()],
        _ => repositories,
    };
    Some(GitHubApp {
        app_id: app_id?,
        key: key?,
        api: api?.as_str().trim_end_matches('/').to_owned(),
        target,
        repositories,
        permissions: permissions?,
        validation: validation?,
        required,
    })
}

fn app_id(raw: &Raw, needed: bool, problems: &mut Problems) -> Option<String> {
    match raw.get("APP_ID") {
        None if !needed => Some(String::new()),
        None => {
            problems.push("APP_ID", "is not set: set it to the GitHub App's Client ID (Iv23…, recommended) or its numeric App ID, both on the app's settings page (Settings > Developer settings > GitHub Apps > the app).");
            None
        }
        Some(id) => {
            if let Some(slip) = whitespace_slip(id) {
                problems.push("APP_ID", format!("{slip}: a copy-paste slip? Set it to the app's Client ID or App ID exactly."));
            } else if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                problems.push("APP_ID", format!("({}) is neither a Client ID (Iv23…) nor a numeric App ID: copy one from the app's settings page (not the app's name or an installation ID).", shown(id)));
            }
            Some(id.to_owned())
        }
    }
}

fn private_key(raw: &Raw, needed: bool, problems: &mut Problems) -> Option<Option<PrivateKey>> {
    match raw.get("PRIVATE_KEY") {
        None if !needed => Some(None),
        None => {
            problems.push("PRIVATE_KEY", "is not set: set it, from a secret, to the app's private key (the .pem downloaded from the app's settings page > Private keys). Line ends may be real, CRLF or written as \\n, or the whole file base64-encoded.");
            None
        }
        Some(value) => match PrivateKey::load(value) {
            Ok(key) if key.is_rsa() => Some(Some(key)),
            Ok(key) => {
                problems.push("PRIVATE_KEY", format!("is a {} key, but GitHub signs app JWTs with RS256 only: give the app's RSA private key.", key.format()));
                None
            }
            Err(e) => {
                problems.push("PRIVATE_KEY", e.0);
                None
            }
        },
    }
}

/// A GitHub login: letters, digits, `-` (and `_`, which managed users have).
fn login(raw: &Raw, name: &str, problems: &mut Problems) -> Option<String> {
    let value = raw.get(name)?;
    if is_login(value) {
        Some(value.to_owned())
    } else {
        problems.push(name, format!("({}) is not a GitHub account name: use the user or organisation as in its URL, e.g. octo-org.", shown(value)));
        None
    }
}

fn is_login(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 100
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A repository name as GitHub allows it: letters, digits, `.`, `-`, `_`.
fn is_repository_name(value: &str) -> bool {
    !value.is_empty()
        && value != "."
        && value != ".."
        && value.len() <= 100
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn current_repository(raw: &Raw, problems: &mut Problems) -> Option<(String, String)> {
    let value = raw.get("GITHUB_REPOSITORY")?;
    match value.split_once('/') {
        Some((owner, repo)) if is_login(owner) && is_repository_name(repo) => {
            Some((owner.to_owned(), repo.to_owned()))
        }
        _ => {
            problems.push(
                "GITHUB_REPOSITORY",
                format!(
                    "({}) is not owner/repo: GitHub Actions sets it; check the job's environment.",
                    shown(value)
                ),
            );
            None
        }
    }
}

/// REPOSITORIES as names; `owner/name` is accepted when the owner is the one in use.
fn repository_names(
    listed: &[String],
    owner: Option<&str>,
    problems: &mut Problems,
) -> Vec<String> {
    let mut names = Vec::new();
    for entry in listed {
        let name = match entry.split_once('/') {
            Some((o, name)) if owner.is_some_and(|owner| owner.eq_ignore_ascii_case(o)) => name,
            Some(_) => {
                problems.push("REPOSITORIES", format!("has {}, which names another owner than OWNER: one token covers repositories of one account; list names only, and set OWNER.", shown(entry)));
                continue;
            }
            None => entry.as_str(),
        };
        if is_repository_name(name) {
            names.push(name.to_owned());
        } else {
            problems.push("REPOSITORIES", format!("has {}, which is not a repository name: list names such as my-repo, separated by commas, spaces or lines.", shown(entry)));
        }
    }
    if names.len() > 500 {
        problems.push("REPOSITORIES", format!("lists {} repositories; GitHub accepts at most 500 per token: leave REPOSITORIES unset for the whole installation.", names.len()));
    }
    names
}

fn installation_id(raw: &Raw, problems: &mut Problems) -> Option<u64> {
    let value = raw.get("INSTALLATION_ID")?;
    match value.parse::<u64>() {
        Ok(id) if id > 0 => Some(id),
        _ => {
            problems.push("INSTALLATION_ID", format!("({}) is not an installation ID: use the number at the end of the installation's settings URL (…/settings/installations/12345678), or leave it unset to look the installation up.", shown(value)));
            None
        }
    }
}

/// PERMISSIONS as `(name, level)`, sorted; GitHub's names are snake_case
/// (`contents`, `pull_requests`, `organization_administration`).
fn permissions(raw: &Raw, problems: &mut Problems) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut ok = true;
    for item in parse_list(raw.get("PERMISSIONS").unwrap_or("")) {
        let parsed = item.split_once(':').filter(|(name, level)| {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && LEVELS.contains(level)
        });
        match parsed {
            Some((name, level)) if !out.iter().any(|(n, _): &(String, String)| n == name) => {
                out.push((name.to_owned(), level.to_owned()));
            }
            Some((name, _)) => {
                ok = false;
                problems.push(
                    "PERMISSIONS",
                    format!("lists {name} twice: give each permission once."),
                );
            }
            None => {
                ok = false;
                problems.push("PERMISSIONS", format!("has {}, which is not permission:level: write e.g. contents:write,pull_requests:read (levels: read, write, admin; names as in GitHub's API, in snake_case).", shown(&item)));
            }
        }
    }
    out.sort();
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Provider;

    fn key() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/corpus/keys/app-pkcs1.pem"
        ))
        .unwrap()
    }

    fn parse_with(pairs: &[(&str, &str)]) -> Result<GitHubApp, Vec<String>> {
        let key = key();
        let mut all: Vec<(String, String)> = vec![
            ("APP_ID".into(), "Iv23liTest".into()),
            ("PRIVATE_KEY".into(), key),
        ];
        for (k, v) in pairs {
            all.retain(|(n, _)| n != k);
            all.push((k.to_string(), v.to_string()));
        }
        let raw = Raw::new(all);
        let mut problems = Problems::default();
        let parsed = parse(&raw, Mode::Pipe, &mut problems);
        match parsed {
            Some(app) if problems.is_empty() => Ok(app),
            _ => Err(problems
                .into_vec()
                .iter()
                .map(ToString::to_string)
                .collect()),
        }
    }

    #[test]
    fn targets_follow_the_official_actions_semantics() {
        let app = parse_with(&[("GITHUB_REPOSITORY", "acme/widgets")]).unwrap();
        assert_eq!(
            app.target,
            Some(Target::Repository {
                owner: "acme".into(),
                repo: "widgets".into()
            })
        );
        assert_eq!(app.repositories, ["widgets"], "the current repository only");
        let app =
            parse_with(&[("GITHUB_REPOSITORY", "acme/widgets"), ("OWNER", "octo-org")]).unwrap();
        assert_eq!(
            (app.target, app.repositories.len()),
            (Some(Target::Owner("octo-org".into())), 0)
        );
        let app = parse_with(&[
            ("GITHUB_REPOSITORY_OWNER", "acme"),
            ("REPOSITORIES", "b, acme/a\nc"),
        ])
        .unwrap();
        assert_eq!(
            app.target,
            Some(Target::Repository {
                owner: "acme".into(),
                repo: "b".into()
            })
        );
        assert_eq!(app.repositories, ["b", "a", "c"]);
        let app = parse_with(&[("INSTALLATION_ID", "42"), ("REPOSITORIES", "x")]).unwrap();
        assert_eq!(
            (app.target, app.repositories),
            (Some(Target::Installation(42)), vec!["x".to_string()])
        );
        let problems = parse_with(&[]).unwrap_err();
        assert!(problems[0].starts_with("OWNER is not set"), "{problems:?}");
        let problems = parse_with(&[("REPOSITORIES", "a")]).unwrap_err();
        assert!(problems[0].contains("no owner"), "{problems:?}");
    }

    #[test]
    fn mistakes_are_named_together() {
        let problems = parse_with(&[
            ("APP_ID", "my app"),
            (
                "PRIVATE_KEY",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
            ),
            ("OWNER", "octo org"),
            ("REPOSITORIES", "other/x"),
            ("PERMISSIONS", "contents:write,issues,contents:read"),
            ("INSTALLATION_ID", "abc"),
            ("GITHUB_API_URL", "http://github.example/api/v3"),
        ])
        .unwrap_err();
        let names: Vec<&str> = problems
            .iter()
            .map(|p| p.split(' ').next().unwrap())
            .collect();
        for want in [
            "APP_ID",
            "PRIVATE_KEY",
            "OWNER",
            "PERMISSIONS",
            "INSTALLATION_ID",
            "GITHUB_API_URL",
        ] {
            assert!(names.contains(&want), "{want}: {problems:?}");
        }
    }

    #[test]
    fn permissions_are_sorted_and_keys_distinguish_everything() {
        let app = parse_with(&[
            ("OWNER", "acme"),
            ("PERMISSIONS", "pull_requests:write contents:read"),
        ])
        .unwrap();
        assert_eq!(
            app.permissions,
            [
                ("contents".into(), "read".into()),
                ("pull_requests".into(), "write".into())
            ]
        );
        let key = |pairs: &[(&str, &str)]| parse_with(pairs).unwrap().reuse_key().unwrap();
        let base = key(&[("OWNER", "acme")]);
        assert_eq!(base, key(&[("OWNER", "acme"), ("PERMISSIONS", "")]));
        for other in [
            key(&[("OWNER", "other")]),
            key(&[("OWNER", "acme"), ("REPOSITORIES", "a")]),
            key(&[("OWNER", "acme"), ("PERMISSIONS", "contents:read")]),
            key(&[("OWNER", "acme"), ("APP_ID", "123")]),
            key(&[
                ("OWNER", "acme"),
                ("GITHUB_API_URL", "https://ghe.example/api/v3"),
            ]),
            key(&[("INSTALLATION_ID", "7")]),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn git_host_is_the_apis_web_host() {
        let host = |api: &str| {
            parse_with(&[("OWNER", "a"), ("GITHUB_API_URL", api)])
                .unwrap()
                .git()
                .default_host
                .unwrap()
        };
        assert_eq!(host("https://api.github.com"), "github.com");
        assert_eq!(host("https://GHE.example.com/api/v3/"), "ghe.example.com");
        assert_eq!(host("https://127.0.0.1:8443/api/v3"), "127.0.0.1:8443");
    }

    #[test]
    fn keys_with_escapes_or_base64_and_ec_keys() {
        use base64::Engine;
        let escaped = key().trim().replace('\n', "\\n");
        assert!(parse_with(&[("OWNER", "a"), ("PRIVATE_KEY", &escaped)]).is_ok());
        let wrapped = base64::engine::general_purpose::STANDARD.encode(key());
        assert!(parse_with(&[("OWNER", "a"), ("PRIVATE_KEY", &wrapped)]).is_ok());
        let ec = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/corpus/keys/ec-pkcs8.pem"
        ))
        .unwrap();
        let problems = parse_with(&[("OWNER", "a"), ("PRIVATE_KEY", &ec)]).unwrap_err();
        assert!(problems[0].contains("RS256 only"), "{problems:?}");
    }
}
