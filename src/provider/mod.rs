//! Token providers: each is one unit that owns everything specific to it.
//!
//! A provider parses its own configuration section (its variables and defaults), registers
//! the secrets it holds, makes the token request with its client authentication, words its
//! errors and hints, validates the token with its own call, applies its scope rules, and
//! names its git username. Everything downstream (outputs, reuse, exec, git-credential, the
//! reporter) sees only a [`Token`] and typed outcomes, never a provider's name in an `if`.
//!
//! A new provider is a new folder here plus its variables in `config::table` and one arm in
//! [`parse`]. Shared OAuth 2.0 machinery (token responses, error bodies, client
//! authentication) lives in [`oauth`], below the providers that use it.

pub mod bitbucket;
pub mod github_app;
pub mod identity;
pub mod jwt;
pub mod lag;
pub mod oauth;
pub mod oauth2;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::error::Error;
use crate::http::Http;
use crate::report::Reporter;
use crate::token::{Token, Validated};
use crate::vars::{Mode, Problems, Raw, shown};

/// A boxed future, so providers can be trait objects (one current-thread runtime; no Send).
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// The PROVIDER values, the first being the default.
pub const IDS: &[&str] = &[
    "bitbucket",
    "oauth2",
    "entra",
    "auth0",
    "okta",
    "keycloak",
    "google",
    github_app::ID,
];

/// Every extra output a provider adds to a token ([`Token::outputs`]): GitHub step outputs,
/// and `TOKEN_VARIABLE_<NAME>` lines in the dotenv file and exec's environment. Never secrets.
pub const OUTPUTS: &[&str] = github_app::OUTPUTS;

/// Whether a 401 may be replication lag: only for a token issued a moment ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// Just issued: a 401 is retried briefly.
    Issued,
    /// Reused from an earlier run: a 401 means it is no longer good.
    Reused,
}

/// How git is told to authenticate with this provider's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Git {
    /// The username sent with the token as password.
    pub username: String,
    /// The host `git-credential` answers for unless GIT_HOST says otherwise.
    pub default_host: Option<String>,
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// The provider confirmed it: the token no longer works.
    Revoked,
    /// The provider says the token was already expired or revoked (its words).
    AlreadyInvalid(String),
    /// The provider has no revocation endpoint: the token lives until it expires.
    Unsupported,
}

/// One token source.
pub trait Provider: fmt::Debug {
    /// The PROVIDER value; it also namespaces the reuse key.
    fn id(&self) -> &'static str;

    /// What the log says before the token request, e.g. "Requesting an access token from
    /// https://… (client credentials grant)...".
    fn describe_request(&self) -> String;

    /// Everything that decides which token this configuration gets (provider, endpoint,
    /// client, audience…), never a secret; `None` when there is no client to key by (status
    /// without CLIENT_ID). A stored token is reused only under an equal key.
    fn reuse_key(&self) -> Option<String>;

    /// The dotenv variable name unless TOKEN_VARIABLE says otherwise.
    fn default_token_variable(&self) -> &'static str;

    /// git's username and default host.
    fn git(&self) -> Git;

    /// Registers every secret the provider holds, and the forms they take on the wire,
    /// before anything else is logged.
    fn register_secrets(&self, log: &mut Reporter);

    /// Variables holding credentials under names known only at run time (GitLab's
    /// `id_tokens:` picks the identity token's): `exec` takes them out of its child's
    /// environment as it does the table's secrets.
    fn secret_variables(&self) -> Vec<String> {
        Vec::new()
    }

    /// Requests a new token.
    fn fetch<'a>(&'a self, http: &'a Http, log: &'a mut Reporter) -> Fut<'a, Result<Token, Error>>;

    /// The required scopes this token lacks under the provider's rules, as an error that
    /// says how to grant them; `Ok` lists what was required (empty when nothing was).
    fn check_scopes(&self, token: &Token) -> Result<Vec<String>, Error>;

    /// A URL on another host than the token endpoint that validation will call, so the run
    /// can open its connection while the token request is in flight; `None` when there is
    /// none (validation off, or on the token endpoint's host, whose connection is reused).
    fn prewarm(&self) -> Option<url::Url> {
        None
    }

    /// What validation will call, for the log; `None` when validation is off.
    fn validation(&self) -> Option<String>;

    /// Proves the token works with a real call (or says it was not tested).
    fn validate<'a>(
        &'a self,
        token: &'a Token,
        fresh: Fresh,
        http: &'a Http,
        log: &'a mut Reporter,
    ) -> Fut<'a, Result<Validated, Error>>;

    /// Revokes `token` (`revoke`); unless a provider says otherwise it has no revocation
    /// endpoint, which is an answer, not a failure.
    fn revoke<'a>(
        &'a self,
        token: &'a Token,
        http: &'a Http,
        log: &'a mut Reporter,
    ) -> Fut<'a, Result<Revoked, Error>> {
        let _ = (token, http, log);
        Box::pin(async { Ok(Revoked::Unsupported) })
    }
}

/// Reads PROVIDER and that provider's section.
pub fn parse(raw: &Raw, mode: Mode, problems: &mut Problems) -> Option<Box<dyn Provider>> {
    match raw.get("PROVIDER").unwrap_or(IDS[0]) {
        "bitbucket" => bitbucket::Bitbucket::parse(raw, mode, problems).map(|p| Box::new(p) as _),
        github_app::ID => github_app::section::parse(raw, mode, problems).map(|p| Box::new(p) as _),
        id if oauth2::profile::Profile::from_id(id).is_some() => {
            let profile = oauth2::profile::Profile::from_id(id).expect("matched above");
            oauth2::parse(profile, raw, mode, problems).map(|p| Box::new(p) as _)
        }
        other => {
            problems.push(
                "PROVIDER",
                format!(
                    "({}) is not a provider this version knows: use one of {}.",
                    shown(other),
                    IDS.join(", ")
                ),
            );
            None
        }
    }
}
