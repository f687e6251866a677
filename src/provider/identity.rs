//! The CI's own OIDC identity token, for providers that trade it instead of a stored secret
//! (providers.md §4): GitHub Actions mints one on request (`permissions: id-token: write`),
//! Bitbucket Pipelines sets `BITBUCKET_STEP_OIDC_TOKEN` (`oidc: true`), GitLab sets the
//! variable its `id_tokens:` names, and a file serves Kubernetes projected tokens.
//!
//! The token is a credential and is masked the moment it is read. Its claims are not secret
//! and are exactly what the user must configure the trust with, so `iss`, `sub`, `aud` and
//! `exp` are logged (decoded, not verified: the provider verifies). Each use fetches it
//! anew: identity tokens live about five minutes, and a long job outlives the first.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::error::Error;
use crate::http::{Auth, Call, Http};
use crate::platform::Platform;
use crate::report::{Reporter, quote_remote};
use crate::vars::{Problems, Raw, shown};

/// The variable GitLab's `id_tokens:` should name unless OIDC_TOKEN_VARIABLE says otherwise.
pub const DEFAULT_GITLAB_VARIABLE: &str = "OIDC_TOKEN";

/// Where the identity token comes from.
#[derive(Debug)]
pub enum Source {
    /// GitHub's token-request endpoint.
    GitHub {
        /// `ACTIONS_ID_TOKEN_REQUEST_URL`.
        url: Url,
        /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
        request_token: SecretString,
    },
    /// A variable holding the token (Bitbucket's, or the one GitLab's `id_tokens:` names).
    Variable {
        /// Its name, for messages.
        name: String,
        /// Its value.
        token: SecretString,
    },
    /// A file, re-read on each use.
    File(PathBuf),
}

/// The identity token's source and the audience it must carry.
#[derive(Debug)]
pub struct Identity {
    /// Where it comes from.
    pub source: Source,
    /// OIDC_AUDIENCE: requested from GitHub, checked in the others' tokens.
    pub audience: Option<String>,
    platform: Platform,
}

/// The claims logged, and used in federation hints.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// `iss`.
    pub iss: String,
    /// `sub`.
    pub sub: String,
    /// `aud`, one or several.
    pub aud: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub exp: Option<u64>,
}

impl Identity {
    /// Reads OIDC_TOKEN_SOURCE, OIDC_AUDIENCE (default `default_audience`), and the source's
    /// own variables. `platform` decides `auto`.
    pub fn parse(
        raw: &Raw,
        platform: Platform,
        default_audience: Option<&str>,
        problems: &mut Problems,
    ) -> Option<Identity> {
        let audience = raw
            .get("OIDC_AUDIENCE")
            .or(default_audience)
            .map(str::to_owned);
        let gitlab_variable = raw
            .get("OIDC_TOKEN_VARIABLE")
            .unwrap_or(DEFAULT_GITLAB_VARIABLE)
            .to_owned();
        let choice = match raw.get("OIDC_TOKEN_SOURCE").unwrap_or("auto") {
            "auto" if raw.get("OIDC_TOKEN_FILE").is_some() => "file",
            "auto" => match platform {
                Platform::GitHubActions => "github",
                Platform::BitbucketPipelines => "bitbucket",
                Platform::GitLabCi => "gitlab",
                Platform::Local => {
                    problems.push("OIDC_TOKEN_SOURCE", "is auto, but no CI was detected: set OIDC_TOKEN_SOURCE to github, bitbucket, gitlab or file (with OIDC_TOKEN_FILE).");
                    return None;
                }
            },
            other => other,
        };
        let source = match choice {
            "github" => match (
                raw.get("ACTIONS_ID_TOKEN_REQUEST_URL"),
                raw.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
            ) {
                (Some(url), Some(token)) => {
                    let url =
                        crate::vars::parse_url("ACTIONS_ID_TOKEN_REQUEST_URL", url, problems)?;
                    Source::GitHub {
                        url,
                        request_token: SecretString::from(token),
                    }
                }
                _ => {
                    problems.push("ACTIONS_ID_TOKEN_REQUEST_URL", "is not set, so GitHub will not mint an identity token: give the job `permissions: id-token: write` (the runner then passes ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN to the action's container).");
                    return None;
                }
            },
            "bitbucket" => match raw.get("BITBUCKET_STEP_OIDC_TOKEN") {
                Some(token) => Source::Variable {
                    name: "BITBUCKET_STEP_OIDC_TOKEN".into(),
                    token: SecretString::from(token),
                },
                None => {
                    problems.push("BITBUCKET_STEP_OIDC_TOKEN", "is not set: add `oidc: true` to the step in bitbucket-pipelines.yml, and pass BITBUCKET_STEP_OIDC_TOKEN to the pipe (`BITBUCKET_STEP_OIDC_TOKEN: $BITBUCKET_STEP_OIDC_TOKEN` under variables).");
                    return None;
                }
            },
            "gitlab" => match raw.get(&gitlab_variable) {
                Some(token) => Source::Variable {
                    name: gitlab_variable,
                    token: SecretString::from(token),
                },
                None => {
                    let aud = audience.as_deref().unwrap_or("<audience>");
                    problems.push(&gitlab_variable.clone(), format!("is not set: give the job `id_tokens: {{{gitlab_variable}: {{aud: \"{aud}\"}}}}` in .gitlab-ci.yml (or set OIDC_TOKEN_VARIABLE to the name it uses)."));
                    return None;
                }
            },
            "file" => match raw.get("OIDC_TOKEN_FILE") {
                Some(path) => Source::File(PathBuf::from(path)),
                None => {
                    problems.push("OIDC_TOKEN_FILE", "is not set: set it to the file holding the identity token (e.g. a Kubernetes projected service-account token).");
                    return None;
                }
            },
            other => {
                problems.push(
                    "OIDC_TOKEN_SOURCE",
                    format!(
                        "({}) is not one of auto, github, bitbucket, gitlab, file.",
                        shown(other)
                    ),
                );
                return None;
            }
        };
        Some(Identity {
            source,
            audience,
            platform,
        })
    }

    /// The variables holding identity material, masked at start (the GitLab one is named at
    /// run time, so the table cannot list it).
    pub fn register_secrets(&self, log: &mut Reporter) {
        match &self.source {
            Source::GitHub { request_token, .. } => log.mask(request_token.expose_secret()),
            Source::Variable { token, .. } => log.mask(token.expose_secret()),
            Source::File(_) => {}
        }
    }

    /// Gets a fresh identity token, masks it, logs its claims and checks its audience.
    pub async fn fetch(
        &self,
        http: &Http,
        log: &mut Reporter,
    ) -> Result<(SecretString, Claims), Error> {
        let token = match &self.source {
            Source::GitHub { url, request_token } => {
                let mut url = url.clone();
                if let Some(aud) = &self.audience {
                    url.query_pairs_mut().append_pair("audience", aud);
                }
                let call = Call {
                    // The answer's `value` is the identity token: masked before DEBUG shows
                    // the response, and redacted in it (DEBUG logged it whole; found by
                    // tests/cases/federation.rs).
                    body_has_tokens: true,
                    ..Call::get(
                        "identity-token request",
                        &url,
                        "ACTIONS_ID_TOKEN_REQUEST_URL",
                        Auth::Bearer(request_token),
                    )
                };
                let response = http.send(&call, log).await?;
                let value = serde_json::from_slice::<Value>(&response.body)
                    .ok()
                    .and_then(|j| j.get("value").and_then(Value::as_str).map(str::to_owned));
                match (response.status.is_success(), value) {
                    (true, Some(v)) => v,
                    _ => {
                        return Err(Error::provider(format!(
                            "GitHub's identity-token endpoint answered HTTP {} without a token: {}. Check `permissions: id-token: write`.",
                            response.status,
                            response.quoted_body(200)
                        )));
                    }
                }
            }
            Source::Variable { token, .. } => token.expose_secret().to_owned(),
            Source::File(path) => read_file(path)?,
        };
        log.mask(&token);
        let claims = claims(&token).map_err(|why| {
            Error::config(
                self.variable(),
                format!("does not hold an identity token (a JWT): {why}."),
            )
        })?;
        log.info(format!(
            "Identity token from {}: iss {}, sub {}, aud {}, expires {}.",
            self.describe(),
            claims.iss,
            claims.sub,
            claims.aud.join(", "),
            claims.exp.map_or_else(
                || "-".to_owned(),
                |e| crate::token::format_time(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(e)
                )
            )
        ));
        if let Some(want) = &self.audience {
            if !matches!(self.source, Source::GitHub { .. }) && !claims.aud.contains(want) {
                let yaml = match self.platform {
                    Platform::BitbucketPipelines => format!(
                        "in bitbucket-pipelines.yml: `oidc:` then `audiences: [\"{want}\"]` on the step"
                    ),
                    Platform::GitLabCi => format!(
                        "in .gitlab-ci.yml: `id_tokens: {{{}: {{aud: \"{want}\"}}}}`",
                        self.variable()
                    ),
                    _ => "where the token is minted".to_owned(),
                };
                return Err(Error::config(
                    "OIDC_AUDIENCE",
                    format!(
                        "is {}, but the identity token's aud is [{}]: add the audience {yaml}.",
                        shown(want),
                        claims.aud.join(", ")
                    ),
                ));
            }
        }
        Ok((SecretString::from(token), claims))
    }

    /// The variable holding the identity token, when it is one: GitLab's is named by
    /// OIDC_TOKEN_VARIABLE, so the table cannot list it, and `exec`'s child must not get it
    /// (it did; found by tests/cases/federation.rs).
    pub fn secret_variable(&self) -> Option<String> {
        match &self.source {
            Source::Variable { name, .. } => Some(name.clone()),
            _ => None,
        }
    }

    /// Who the identity token speaks for, for the reuse key (issue 14: reuse is keyed by the
    /// token's `sub` too, or another branch's job sharing the output folder would be handed
    /// this one's token — found by tests/cases/federation.rs). A variable or file is decoded
    /// here, without a request; GitHub's token is minted only on request, so its request URL
    /// stands in: it names the job, and one job has one identity.
    pub fn reuse_part(&self) -> String {
        let token = match &self.source {
            Source::GitHub { url, .. } => return format!("github {}", url.path()),
            Source::Variable { token, .. } => token.expose_secret().to_owned(),
            // The same guarded read as fetch's (no FIFO can block us here).
            Source::File(path) => read_file(path).unwrap_or_default(),
        };
        match claims(token.trim()) {
            Ok(c) => format!("{} {}", c.iss, c.sub),
            Err(_) => String::new(),
        }
    }

    fn variable(&self) -> &str {
        match &self.source {
            Source::GitHub { .. } => "ACTIONS_ID_TOKEN_REQUEST_URL",
            Source::Variable { name, .. } => name,
            Source::File(_) => "OIDC_TOKEN_FILE",
        }
    }

    fn describe(&self) -> String {
        match &self.source {
            Source::GitHub { .. } => "GitHub Actions".to_owned(),
            Source::Variable { name, .. } => format!("${name}"),
            Source::File(path) => path.display().to_string(),
        }
    }
}

/// OIDC_TOKEN_FILE's token, read through the guarded, size-capped reader.
fn read_file(path: &std::path::Path) -> Result<String, Error> {
    let failed = |e: std::io::Error| {
        Error::config(
            "OIDC_TOKEN_FILE",
            format!("({}) cannot be read ({e}).", path.display()),
        )
    };
    let mut file = crate::safe_fs::open_read(path)
        .and_then(|f| f.ok_or_else(|| std::io::Error::other("it does not exist")))
        .map_err(failed)?;
    Ok(crate::safe_fs::read_capped(&mut file)
        .map_err(failed)?
        .trim()
        .to_owned())
}

/// The logged claims of an identity token, quoted like all remote text.
pub fn claims(token: &str) -> Result<Claims, String> {
    use base64::Engine;
    let payload = token
        .split('.')
        .nth(1)
        .filter(|_| token.split('.').count() == 3)
        .ok_or("it is not three dot-separated parts")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "its claims are not base64url")?;
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err("its claims are not a JSON object".into());
    };
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .map(|s| quote_remote(s, 300))
            .unwrap_or_default()
    };
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => vec![quote_remote(a, 200)],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|a| quote_remote(a, 200))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Claims {
        iss: text("iss"),
        sub: text("sub"),
        aud,
        exp: claims.get("exp").and_then(Value::as_u64),
    })
}
