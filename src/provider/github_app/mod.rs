//! GitHub App installation tokens: the app's RS256 JWT, the installation lookup, the mint
//! with chosen repositories and permissions, and a validation call with the new token.
//!
//! Sources: ../shared/research/providers.md §1 (GitHub's docs, exact bodies, the 2026
//! stateless token format) and ci-token-tools.md §1 (actions/create-github-app-token, whose
//! OWNER/REPOSITORIES semantics users know). The token is `ghs_` and 40 characters, or since
//! the April 2026 rollout ~520 characters with two dots (`ghs_APPID_JWT`); both are RFC 6750
//! `b64token`s, so the common token grammar accepts them and nothing here assumes a length.
//!
//! - [`section`] reads the configuration (APP_ID, PRIVATE_KEY, OWNER, REPOSITORIES,
//!   PERMISSIONS, INSTALLATION_ID, GITHUB_API_URL);
//! - [`flow`] signs the JWT, looks up the installation, mints, revokes, and re-signs once with
//!   GitHub's clock when GitHub says the JWT's times are off;
//! - [`hints`] turns GitHub's refusals into what to fix;
//! - [`validate`] proves the token works and checks REQUIRED_SCOPES against permissions.

pub mod flow;
pub mod hints;
pub mod section;
pub mod validate;

use secrecy::ExposeSecret;

use crate::error::Error;
use crate::http::Http;
use crate::provider::jwt::PrivateKey;
use crate::provider::{Fresh, Fut, Git, Provider, Revoked};
use crate::report::Reporter;
use crate::token::{Token, Validated};

pub use section::Target;

/// The PROVIDER value.
pub const ID: &str = "github-app";
/// GitHub's REST API unless GITHUB_API_URL says otherwise (on GitHub Actions the runner sets
/// it: GHES's is `https://HOST/api/v3`).
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// The dotenv variable unless TOKEN_VARIABLE says otherwise.
pub const DEFAULT_TOKEN_VARIABLE: &str = "GITHUB_APP_TOKEN";
/// git's username for installation tokens
/// (`https://x-access-token:TOKEN@github.com/owner/repo.git`, providers.md §1.2).
pub const GIT_USERNAME: &str = "x-access-token";
/// Sent with every call: GitHub's media type and the REST API version the bodies here follow
/// (https://docs.github.com/rest/about-the-rest-api/api-versions).
pub const HEADERS: &[(&str, &str)] = &[
    ("accept", "application/vnd.github+json"),
    ("x-github-api-version", "2022-11-28"),
];

/// The step outputs this provider adds to the common ones (actions/create-github-app-token
/// has the same two).
pub const OUTPUTS: &[&str] = &["installation_id", "app_slug"];

/// A GitHub App and which installation token to mint with it.
#[derive(Debug)]
pub struct GitHubApp {
    /// The client ID (`Iv23…`) or numeric app ID, sent as the JWT's `iss` string.
    pub app_id: String,
    /// The app's private key (absent for `status` and `revoke`, which need none).
    pub key: Option<PrivateKey>,
    /// GITHUB_API_URL without a trailing `/`.
    pub api: String,
    /// Which installation; `None` only where no token is minted.
    pub target: Option<Target>,
    /// Repository names the token is limited to (empty: all of the installation's).
    pub repositories: Vec<String>,
    /// `(permission, level)`, sorted (empty: the app's full grant).
    pub permissions: Vec<(String, String)>,
    /// What validation calls.
    pub validation: Option<validate::Target>,
    /// REQUIRED_SCOPES as `permission[:level]`.
    pub required: Vec<String>,
}

impl GitHubApp {
    /// The web host for messages and git: `github.com` for api.github.com, else the API's
    /// own host (GHES serves the web UI and git on the host of `https://HOST/api/v3`).
    pub fn web_host(&self) -> String {
        let url = url::Url::parse(&self.api).ok();
        let host = url.as_ref().map(crate::http::host).unwrap_or_default();
        if host.eq_ignore_ascii_case("api.github.com") {
            "github.com".to_owned()
        } else {
            host.to_ascii_lowercase()
        }
    }
}

impl Provider for GitHubApp {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe_request(&self) -> String {
        let what = match &self.target {
            Some(Target::Installation(id)) => format!("installation {id}"),
            Some(Target::Repository { owner, repo }) => {
                format!("the installation on {owner}/{repo}")
            }
            Some(Target::Owner(owner)) => format!("the installation on {owner}"),
            None => "an installation".to_owned(),
        };
        format!(
            "Requesting an installation token from {} for {what} (GitHub App {})...",
            self.api, self.app_id
        )
    }

    fn reuse_key(&self) -> Option<String> {
        let target = match self.target.as_ref()? {
            Target::Installation(id) => format!("installation:{id}"),
            Target::Repository { owner, .. } | Target::Owner(owner) => {
                format!("owner:{}", owner.to_ascii_lowercase())
            }
        };
        let mut repositories: Vec<String> = self
            .repositories
            .iter()
            .map(|r| r.to_ascii_lowercase())
            .collect();
        repositories.sort();
        let permissions: Vec<String> = self
            .permissions
            .iter()
            .map(|(p, l)| format!("{p}:{l}"))
            .collect();
        (!self.app_id.is_empty()).then(|| {
            format!(
                "{ID}\n{}\n{}\n{target}\n{}\n{}",
                self.api,
                self.app_id,
                repositories.join(","),
                permissions.join(",")
            )
        })
    }

    fn default_token_variable(&self) -> &'static str {
        DEFAULT_TOKEN_VARIABLE
    }

    fn git(&self) -> Git {
        Git {
            username: GIT_USERNAME.to_owned(),
            default_host: Some(self.web_host()),
        }
    }

    fn register_secrets(&self, log: &mut Reporter) {
        // PRIVATE_KEY itself (and each of its lines) was masked as a table secret when it
        // was read; a key given with `\n` escapes or base64-wrapped has other lines, which
        // are only known once decoded.
        if let Some(key) = &self.key {
            for form in key.secret_forms() {
                log.mask(form);
            }
        }
    }

    fn fetch<'a>(&'a self, http: &'a Http, log: &'a mut Reporter) -> Fut<'a, Result<Token, Error>> {
        Box::pin(async move {
            let token = flow::fetch(self, http, log).await?;
            log.mask(token.secret.expose_secret());
            log.mask_basic(GIT_USERNAME, token.secret.expose_secret());
            Ok(token)
        })
    }

    fn check_scopes(&self, token: &Token) -> Result<Vec<String>, Error> {
        validate::check_permissions(&self.required, &token.scopes)?;
        Ok(self.required.clone())
    }

    fn validation(&self) -> Option<String> {
        self.validation
            .as_ref()
            .map(|v| format!("GET {}", v.url(&self.api)))
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
                Some(target) => validate::call(self, target, token, fresh, http, log).await,
            }
        })
    }

    fn revoke<'a>(
        &'a self,
        token: &'a Token,
        http: &'a Http,
        log: &'a mut Reporter,
    ) -> Fut<'a, Result<Revoked, Error>> {
        Box::pin(flow::revoke(self, token, http, log))
    }
}
