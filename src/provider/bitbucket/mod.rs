//! Bitbucket Cloud OAuth consumers: the client-credentials grant, validated with a
//! repository read, scopes checked with Bitbucket's implications.
//!
//! Bitbucket documents the grant as `POST https://bitbucket.org/site/oauth2/access_token`
//! with HTTP Basic `key:secret` and the form body `grant_type=client_credentials`
//! (https://developer.atlassian.com/cloud/bitbucket/oauth-2/). Since its May 2026 OAuth
//! changes (CHANGE-3052, https://community.developer.atlassian.com/t/99003) the answer says
//! `scope` rather than `scopes`, carries no refresh token for this grant, and the token is a
//! JWT of ~1,900 characters. The Basic credentials are sent as they are, not form-encoded
//! first: that is what Bitbucket's own examples (`curl -u key:secret`) send, and consumer
//! keys and secrets are alphanumeric.

mod hints;
pub mod scope;
pub mod validate;

use std::time::SystemTime;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::error::Error;
use crate::http::{Auth, Body, Call, Field, Http, Response};
use crate::provider::{Fresh, Fut, Git, Provider, oauth};
use crate::report::{Reporter, quote_remote};
use crate::token::{Token, Validated, parse_list};
use crate::vars::{self, Mode, Problems, Raw, shown, whitespace_slip};

pub use validate::Validation;

/// Bitbucket's token endpoint (https://developer.atlassian.com/cloud/bitbucket/oauth-2/).
pub const DEFAULT_TOKEN_URL: &str = "https://bitbucket.org/site/oauth2/access_token";
/// Bitbucket's REST API base.
pub const DEFAULT_API_URL: &str = "https://api.bitbucket.org/2.0";
/// The dotenv variable unless TOKEN_VARIABLE says otherwise.
pub const DEFAULT_TOKEN_VARIABLE: &str = "BITBUCKET_ACCESS_TOKEN";
/// The host `git-credential` answers for.
pub const DEFAULT_GIT_HOST: &str = "bitbucket.org";
/// Bitbucket's username for OAuth access tokens over git.
pub const GIT_USERNAME: &str = "x-token-auth";

/// A Bitbucket OAuth consumer and what to check its tokens against.
#[derive(Debug)]
pub struct Bitbucket {
    client_id: String,
    client_secret: SecretString,
    token_url: Url,
    validation: Option<Validation>,
    required_scopes: Vec<String>,
}

impl Bitbucket {
    /// Reads CLIENT_ID, CLIENT_SECRET, TOKEN_URL, API_URL, REPOSITORY (or
    /// BITBUCKET_REPO_FULL_NAME), VALIDATE, VALIDATE_URL and REQUIRED_SCOPES.
    pub fn parse(raw: &Raw, mode: Mode, problems: &mut Problems) -> Option<Bitbucket> {
        let needs_credentials = mode != Mode::Status;
        let client_id = client_id(raw, needs_credentials, problems);
        let client_secret = client_secret(raw, needs_credentials, problems);
        let token_url = vars::url(raw, "TOKEN_URL", Some(DEFAULT_TOKEN_URL), problems);
        let api_url = vars::base_url(raw, "API_URL", Some(DEFAULT_API_URL), problems);
        let validation = validation(raw, mode, api_url.as_ref(), problems);
        let required_scopes = required_scopes(raw, problems);
        Some(Bitbucket {
            client_id: client_id?,
            client_secret: SecretString::from(client_secret?),
            token_url: token_url?,
            validation: validation?,
            required_scopes,
        })
    }

    fn rejected(&self, response: &Response) -> Error {
        let status = response.status;
        let Some(error) = oauth::parse_error(&response.body) else {
            return Error::provider(format!(
                "The token endpoint answered HTTP {status} without an OAuth error: {}. Check that TOKEN_URL is Bitbucket's token endpoint ({DEFAULT_TOKEN_URL}).",
                response.described_body(300)
            ));
        };
        let hint = hints::hint(&error.code, error.description.as_deref().unwrap_or(""));
        Error::Credentials(format!(
            "Bitbucket refused the token request (HTTP {status}, {}).\n{hint}",
            error.said()
        ))
    }

    async fn request(&self, http: &Http, log: &mut Reporter) -> Result<Token, Error> {
        let form = [Field::public("grant_type", "client_credentials")];
        let call = Call {
            name: "token request",
            method: Method::POST,
            url: &self.token_url,
            variable: "TOKEN_URL",
            auth: Auth::Basic {
                user: &self.client_id,
                password: &self.client_secret,
            },
            body: Body::Form(&form),
            headers: &[],
            body_has_tokens: true,
            once_sent: false,
        };
        let sent_at = SystemTime::now();
        let response = http.send(&call, log).await?;
        if !response.status.is_success() {
            return Err(self.rejected(&response));
        }
        let token = parse_token_response(&response.body, sent_at).map_err(|problem| {
            Error::provider(format!(
                "The token endpoint {} answered HTTP {} with a malformed token response: {problem}. Check that TOKEN_URL is Bitbucket's token endpoint ({DEFAULT_TOKEN_URL}).",
                self.token_url, response.status
            ))
        })?;
        log.mask(token.secret.expose_secret());
        Ok(token)
    }
}

/// Parses Bitbucket's token response: RFC 6749's, with `scope` (since May 2026) or `scopes`
/// (before), each scope a Bitbucket scope name. The error never quotes a token field.
pub fn parse_token_response(body: &[u8], sent_at: SystemTime) -> Result<Token, String> {
    let issued = oauth::parse_issued(body, sent_at, &["scope", "scopes"]).map_err(|p| {
        if p.contains("HTML") {
            format!("{p} (Bitbucket answers with an HTML page when the request is not authenticated with HTTP Basic)")
        } else {
            p
        }
    })?;
    let scopes = parse_list(issued.scope.as_deref().unwrap_or(""));
    if let Some(bad) = scopes.iter().find(|s| !scope::is_well_formed(s)) {
        return Err(format!(
            "scope lists {:?}, which is not a scope name",
            quote_remote(bad, 40)
        ));
    }
    Ok(Token::new(&issued.access_token, issued.expiry, scopes))
}

impl Provider for Bitbucket {
    fn id(&self) -> &'static str {
        "bitbucket"
    }

    fn describe_request(&self) -> String {
        format!(
            "Requesting an access token from {} (client credentials grant)...",
            self.token_url
        )
    }

    fn reuse_key(&self) -> Option<String> {
        (!self.client_id.is_empty())
            .then(|| format!("bitbucket\n{}\n{}", self.token_url, self.client_id))
    }

    fn default_token_variable(&self) -> &'static str {
        DEFAULT_TOKEN_VARIABLE
    }

    fn git(&self) -> Git {
        Git {
            username: GIT_USERNAME.to_owned(),
            default_host: Some(DEFAULT_GIT_HOST.to_owned()),
        }
    }

    fn register_secrets(&self, log: &mut Reporter) {
        let secret = self.client_secret.expose_secret();
        if !secret.is_empty() {
            log.mask(secret);
            log.mask_basic(&self.client_id, secret);
        }
    }

    fn fetch<'a>(&'a self, http: &'a Http, log: &'a mut Reporter) -> Fut<'a, Result<Token, Error>> {
        Box::pin(self.request(http, log))
    }

    fn check_scopes(&self, token: &Token) -> Result<Vec<String>, Error> {
        let missing = scope::missing(&self.required_scopes, &token.scopes);
        if missing.is_empty() {
            return Ok(self.required_scopes.clone());
        }
        let granted = if token.scopes.is_empty() {
            "none".to_owned()
        } else {
            token.scopes.join(", ")
        };
        Err(Error::Validation(format!(
            "The token lacks required scope(s): {}. Granted: {granted}.\nGive the OAuth consumer these permissions (Workspace settings > OAuth consumers > Edit), or change REQUIRED_SCOPES.",
            missing.join(", ")
        )))
    }

    fn validation(&self) -> Option<String> {
        self.validation.as_ref().map(|v| format!("GET {}", v.url()))
    }

    fn prewarm(&self) -> Option<Url> {
        let url = self.validation.as_ref()?.url();
        (!crate::http::same_origin(url, &self.token_url)).then(|| url.clone())
    }

    fn validate<'a>(
        &'a self,
        token: &'a Token,
        fresh: Fresh,
        http: &'a Http,
        log: &'a mut Reporter,
    ) -> Fut<'a, Result<Validated, Error>> {
        Box::pin(async move {
            match &self.validation {
                None => Ok(Validated::Skipped),
                Some(target) => validate::call(target, token, fresh, http, log).await,
            }
        })
    }
}

fn client_id(raw: &Raw, needed: bool, problems: &mut Problems) -> Option<String> {
    match raw.get("CLIENT_ID") {
        None if !needed => Some(String::new()),
        None => {
            problems.push("CLIENT_ID", "is not set: set it to the Key of your OAuth consumer (Workspace settings > OAuth consumers).");
            None
        }
        Some(id) => {
            if let Some(slip) = whitespace_slip(id) {
                problems.push(
                    "CLIENT_ID",
                    format!("{slip}: a copy-paste slip? Set it to the consumer's Key exactly."),
                );
            } else if id.contains(':') {
                problems.push("CLIENT_ID", "contains ':', which HTTP Basic authentication cannot carry: set it to the consumer's Key.");
            }
            Some(id.to_owned())
        }
    }
}

fn client_secret(raw: &Raw, needed: bool, problems: &mut Problems) -> Option<String> {
    match raw.get("CLIENT_SECRET") {
        None if !needed => Some(String::new()),
        None => {
            problems.push(
                "CLIENT_SECRET",
                "is not set: set it to the Secret of your OAuth consumer, as a secured variable.",
            );
            None
        }
        Some(secret) => {
            if let Some(slip) = whitespace_slip(secret) {
                problems.push(
                    "CLIENT_SECRET",
                    format!("{slip}: a copy-paste slip? Set it to the consumer's Secret exactly."),
                );
            }
            Some(secret.to_owned())
        }
    }
}

/// `Some(None)` when validation is off; `None` when its configuration is broken.
fn validation(
    raw: &Raw,
    mode: Mode,
    api_url: Option<&Url>,
    problems: &mut Problems,
) -> Option<Option<Validation>> {
    let validate_url = raw
        .get("VALIDATE_URL")
        .map(|u| vars::parse_url("VALIDATE_URL", u, problems));
    let validate = vars::boolean(raw, "VALIDATE", true, problems);
    let repository = raw
        .get("REPOSITORY")
        .map(|r| ("REPOSITORY", r))
        .or_else(|| {
            raw.get("BITBUCKET_REPO_FULL_NAME")
                .map(|r| ("BITBUCKET_REPO_FULL_NAME", r))
        });
    if let Some((name, value)) = repository {
        if !is_repository(value) {
            problems.push(name, format!("({}) is not of the form workspace/repo-slug: use the names from the repository's URL, e.g. myteam/my-repo.", shown(value)));
        }
    }
    match (validate && mode != Mode::Status, validate_url, repository) {
        (false, _, _) => Some(None),
        (true, Some(url), _) => url.map(|u| Some(Validation::Url(u))),
        // git's own request validates the token; call the API only when asked to.
        (true, None, _) if mode == Mode::GitCredential => Some(None),
        (true, None, Some((_, full_name))) => {
            let base = api_url?.as_str().trim_end_matches('/').to_owned();
            let url = Url::parse(&format!("{base}/repositories/{full_name}")).ok()?;
            Some(Some(Validation::Repository {
                full_name: full_name.to_owned(),
                url,
            }))
        }
        (true, None, None) => {
            problems.push("VALIDATE", "is true but there is nothing to validate against: set REPOSITORY to workspace/repo-slug (Bitbucket sets BITBUCKET_REPO_FULL_NAME for you in a pipeline), or VALIDATE_URL to an API URL the token can read, or VALIDATE to false.");
            None
        }
    }
}

fn required_scopes(raw: &Raw, problems: &mut Problems) -> Vec<String> {
    let scopes = parse_list(raw.get("REQUIRED_SCOPES").unwrap_or(""));
    for bad in scopes.iter().filter(|s| !scope::is_well_formed(s)) {
        problems.push("REQUIRED_SCOPES", format!("has {}, which is not a scope name: list scopes such as repository, repository:write, pullrequest, separated by commas or spaces.", shown(bad)));
    }
    scopes
}

/// `workspace/slug`: Bitbucket slugs use letters, digits, `-`, `_` and `.`.
fn is_repository(value: &str) -> bool {
    let mut parts = value.split('/');
    let ok = |part: Option<&str>| {
        part.is_some_and(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Bitbucket, Vec<String>> {
        let raw = Raw::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut problems = Problems::default();
        let parsed = Bitbucket::parse(&raw, Mode::Pipe, &mut problems);
        match parsed {
            Some(b) if problems.is_empty() => Ok(b),
            _ => Err(problems
                .into_vec()
                .iter()
                .map(ToString::to_string)
                .collect()),
        }
    }

    const BASE: &[(&str, &str)] = &[
        ("CLIENT_ID", "key"),
        ("CLIENT_SECRET", "secret"),
        ("REPOSITORY", "ws/repo"),
    ];

    #[test]
    fn defaults_apply() {
        let b = parse(BASE).unwrap();
        assert_eq!(b.token_url.as_str(), DEFAULT_TOKEN_URL);
        assert_eq!(
            b.validation.unwrap().url().as_str(),
            "https://api.bitbucket.org/2.0/repositories/ws/repo"
        );
    }

    #[test]
    fn repository_falls_back_to_bitbucket_variable() {
        let b = parse(&[
            ("CLIENT_ID", "k"),
            ("CLIENT_SECRET", "s"),
            ("BITBUCKET_REPO_FULL_NAME", "team/app"),
        ])
        .unwrap();
        assert_eq!(
            b.validation,
            Some(Validation::Repository {
                full_name: "team/app".into(),
                url: Url::parse("https://api.bitbucket.org/2.0/repositories/team/app").unwrap()
            })
        );
    }

    #[test]
    fn secret_slips_are_named_not_quoted() {
        let problems = parse(&[
            ("CLIENT_ID", "k"),
            ("CLIENT_SECRET", "s3cr3t\n"),
            ("VALIDATE", "no"),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("line break") && !problems[0].contains("s3cr3t"));
    }

    #[test]
    fn repositories() {
        assert!(is_repository("my-team/my.repo_1"));
        for bad in [
            "ws", "ws/", "/r", "a/b/c", "ws/..", "ws/r?x", "ws/r#", "w s/r",
        ] {
            assert!(!is_repository(bad), "{bad}");
        }
    }

    #[test]
    fn reuse_keys_differ_by_endpoint_and_client() {
        let a = parse(BASE).unwrap().reuse_key();
        let mut other = BASE.to_vec();
        other.push((
            "TOKEN_URL",
            "https://bitbucket.example/site/oauth2/access_token",
        ));
        assert_ne!(a, parse(&other).unwrap().reuse_key());
        let mut other = BASE.to_vec();
        other[0] = ("CLIENT_ID", "key2");
        assert_ne!(a, parse(&other).unwrap().reuse_key());
    }
}
