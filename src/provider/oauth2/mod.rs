//! Any OAuth 2.0 authorization server's client-credentials grant (RFC 6749 §4.4), with the
//! profiles of [`profile`] for Entra ID, Auth0, Okta and Keycloak: discovery
//! ([`discovery`]), client authentication by Basic (RFC 6749 §2.3.1, form-encoded first),
//! form fields or a signed assertion, and validation by an API call, introspection (RFC
//! 7662) or the issuer's keys ([`validate`], [`jwks`]).

pub mod discovery;
mod grant;
pub mod jwks;
pub mod profile;
mod section;
pub mod validate;

use std::cell::{Cell, OnceCell};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::error::Error;
use crate::http::{Http, Response};
use crate::provider::identity::Claims;
use crate::provider::{Fresh, Fut, Git, Provider, oauth};
use crate::report::{Reporter, quote_remote};
use crate::token::{Token, Validated};
use discovery::Metadata;
use profile::Profile;

pub use section::parse;

/// The dotenv variable unless TOKEN_VARIABLE says otherwise.
pub const DEFAULT_TOKEN_VARIABLE: &str = "OAUTH_ACCESS_TOKEN";
/// Entra's authority unless AUTHORITY_URL says otherwise.
pub const DEFAULT_AUTHORITY_URL: &str = "https://login.microsoftonline.com";

/// How the client proves who it is at the token (and introspection) endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `client_secret_basic`: `Basic base64(urlencode(id):urlencode(secret))`.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Post,
    /// `private_key_jwt` (RFC 7523 §2.2): an assertion signed with PRIVATE_KEY.
    PrivateKeyJwt,
    /// The CI's identity token as the client assertion (federated credentials).
    Federated,
    /// No client authentication (a token-exchange or JWT grant without a client).
    None,
}

impl ClientAuthMethod {
    /// The CLIENT_AUTH value (RFC 8414's method name).
    pub fn id(self) -> &'static str {
        match self {
            ClientAuthMethod::Basic => "client_secret_basic",
            ClientAuthMethod::Post => "client_secret_post",
            ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
            ClientAuthMethod::Federated => "federated",
            ClientAuthMethod::None => "none",
        }
    }
}

/// Which grant the token request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 8693 token exchange, the identity token as `subject_token`.
    TokenExchange,
    /// RFC 7523 §2.1, the identity token as `assertion`.
    JwtBearer,
}

/// The key and header a `private_key_jwt` assertion is signed with.
#[derive(Debug)]
pub struct Signing {
    /// PRIVATE_KEY.
    pub key: crate::provider::jwt::PrivateKey,
    /// SIGNING_ALG, or the key's default.
    pub alg: crate::provider::jwt::Alg,
    /// KEY_ID.
    pub kid: Option<String>,
    /// The SHA-256 thumbprint of CERTIFICATE.
    pub x5t: Option<String>,
    /// ASSERTION_AUDIENCE, else the token endpoint.
    pub audience: Option<String>,
}

/// Google's optional service-account impersonation after the STS exchange.
#[derive(Debug)]
pub struct Impersonation {
    /// SERVICE_ACCOUNT.
    pub service_account: String,
    /// LIFETIME, seconds.
    pub lifetime: Option<u64>,
    /// IAM_CREDENTIALS_URL (the base).
    pub base: Url,
}

/// How the token is validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validate {
    /// VALIDATE=false.
    Off,
    /// VALIDATE=true: the first available of api, introspect, jwks.
    Auto,
    /// `GET VALIDATE_URL` with the token.
    Api(Url),
    /// RFC 7662 introspection.
    Introspect,
    /// Signature and claims against the issuer's JWKS.
    Jwks,
}

/// A client of an OAuth 2.0 authorization server.
#[derive(Debug)]
pub struct OAuth2 {
    profile: Profile,
    client_id: String,
    secret: SecretString,
    method: ClientAuthMethod,
    issuer: Option<Url>,
    token_url: Option<Url>,
    introspection_url: Option<Url>,
    jwks_url: Option<Url>,
    scope: Vec<String>,
    audience: Option<String>,
    resources: Vec<String>,
    validate: Validate,
    required_scopes: Vec<String>,
    git: Git,
    /// The basic credentials, form-encoded once (RFC 6749 §2.3.1).
    basic: (String, SecretString),
    /// Discovery's answer, fetched on first need.
    metadata: OnceCell<Metadata>,
    /// Set when the token response named no scope, so granted = requested (RFC 6749 §5.1)
    /// until validation shows better.
    scope_assumed: Cell<bool>,
    /// The grant.
    grant: Grant,
    /// For `private_key_jwt`.
    signing: Option<Signing>,
    /// The CI identity token's source, for `federated` and the token-exchange and JWT grants.
    identity: Option<crate::provider::identity::Identity>,
    /// SUBJECT_TOKEN_TYPE and REQUESTED_TOKEN_TYPE, for token exchange.
    token_types: (String, Option<String>),
    /// PROVIDER=google with SERVICE_ACCOUNT.
    impersonation: Option<Impersonation>,
    /// Bitbucket's identity tokens cannot match Entra's exact subjects (providers.md §4.4).
    platform_is_bitbucket: bool,
    /// The identity token last fetched, for introspection with a federated client.
    last_assertion: std::cell::RefCell<Option<SecretString>>,
}

impl OAuth2 {
    /// Discovery when ISSUER is set and something it provides is needed.
    async fn metadata(&self, http: &Http, log: &mut Reporter) -> Result<Option<&Metadata>, Error> {
        let Some(issuer) = &self.issuer else {
            return Ok(None);
        };
        if let Some(m) = self.metadata.get() {
            return Ok(Some(m));
        }
        let needs_token = self.token_url.is_none();
        let needs_validation = match self.validate {
            Validate::Auto => self.introspection_url.is_none() && self.jwks_url.is_none(),
            Validate::Introspect => self.introspection_url.is_none(),
            Validate::Jwks => self.jwks_url.is_none(),
            Validate::Off | Validate::Api(_) => false,
        };
        if !(needs_token || needs_validation) {
            return Ok(None);
        }
        let found = discovery::discover(issuer, self.profile == Profile::Entra, http, log).await?;
        if let Some(methods) = &found.auth_methods {
            // A federated assertion is a client assertion like private_key_jwt's, and RFC 8414
            // has no other name for it: Entra lists private_key_jwt, and warning that
            // `federated` is unsupported was false (found by tests/cases/federation.rs).
            let listed_as = match self.method {
                ClientAuthMethod::Federated => ClientAuthMethod::PrivateKeyJwt.id(),
                method => method.id(),
            };
            if !methods.iter().any(|m| m == listed_as) {
                log.warn(format!(
                    "The server lists client authentication methods {} and not CLIENT_AUTH ({}); if the token request is refused, set CLIENT_AUTH to one of them.",
                    methods.join(", "),
                    self.method.id()
                ));
            }
        }
        Ok(Some(self.metadata.get_or_init(|| found)))
    }

    async fn token_endpoint(&self, http: &Http, log: &mut Reporter) -> Result<Url, Error> {
        if let Some(url) = &self.token_url {
            return Ok(url.clone());
        }
        let metadata = self.metadata(http, log).await?;
        metadata
            .and_then(|m| m.token_endpoint.clone())
            .ok_or_else(|| {
                Error::provider("The discovery document has no token_endpoint: set TOKEN_URL.")
            })
    }

    /// A refusal: an OAuth error with 400, 401 or 403 is the credentials' or setup's fault
    /// (exit 3); anything else means the endpoint is unusable (exit 5).
    fn rejected(&self, url: &Url, response: &Response, identity: Option<&Claims>) -> Error {
        let status = response.status;
        let error = oauth::parse_error(&response.body)
            .filter(|_| matches!(status.as_u16(), 400 | 401 | 403));
        let Some(mut error) = error else {
            return Error::provider(format!(
                "The token endpoint {url} answered HTTP {status} without an OAuth error: {}. Check TOKEN_URL or ISSUER.",
                response.described_body(300)
            ));
        };
        let json: Value = serde_json::from_slice(&response.body).unwrap_or_default();
        let codes: Vec<u64> = json
            .get("error_codes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let mut support = String::new();
        if self.profile == Profile::Entra {
            // Entra's description runs on with "\r\nTrace ID: …"; its first line is the message,
            // and the trace and correlation IDs are what Microsoft support asks for.
            error.description = error
                .description
                .map(|d| d.split("\\r\\n").next().unwrap_or_default().to_owned());
            for (field, name) in [
                ("trace_id", "Trace ID"),
                ("correlation_id", "Correlation ID"),
            ] {
                if let Some(id) = json.get(field).and_then(Value::as_str) {
                    support.push_str(&format!(" {name}: {}.", quote_remote(id, 60)));
                }
            }
        }
        let needs_encoding = self
            .secret
            .expose_secret()
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "._~-".contains(c)));
        let hint = match identity {
            Some(claims) if grant::is_federation_refusal(&error, &codes) => {
                grant::federation_hint(self.profile, claims, &codes, self.platform_is_bitbucket)
            }
            _ => self
                .profile
                .hint(&error, &codes, self.method, needs_encoding),
        };
        Error::Credentials(format!(
            "{} refused the token request (HTTP {status}, {}).{support}\n{hint}",
            self.profile.name(),
            error.said()
        ))
    }
}

/// The scopes a server named, keeping only RFC 6749 §3.3 scope-tokens (printable ASCII but
/// space, `"` and `\`). Anything else is no scope, and was logged raw before this filter: a
/// terminal escape or a bare `\r` in a scope reached the log and the step summary as sent.
fn scope_tokens(said: Vec<String>, log: &mut Reporter) -> Vec<String> {
    let (ok, bad): (Vec<String>, Vec<String>) = said.into_iter().partition(|s| {
        s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    });
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().map(|s| quote_remote(s, 60)).collect();
        log.warn(format!(
            "The server named {} scope(s) outside RFC 6749's scope grammar, which are left out: {}.",
            bad.len(),
            shown.join(", ")
        ));
    }
    ok
}

impl Provider for OAuth2 {
    fn id(&self) -> &'static str {
        self.profile.id()
    }

    fn describe_request(&self) -> String {
        match (&self.token_url, &self.issuer) {
            (Some(url), _) => format!("Using the token endpoint {url}."),
            (None, Some(issuer)) => format!("Using the authorization server {issuer}."),
            (None, None) => String::new(),
        }
    }

    fn reuse_key(&self) -> Option<String> {
        let endpoint = self
            .token_url
            .as_ref()
            .or(self.issuer.as_ref())
            .map(Url::as_str)
            .unwrap_or_default();
        let mut key = format!(
            "{}\n{endpoint}\n{}\n{}\n{}\n{}",
            self.profile.id(),
            self.client_id,
            self.scope.join(" "),
            self.audience.as_deref().unwrap_or_default(),
            self.resources.join(" ")
        );
        // A traded identity token: keyed by whom it speaks for (identity::reuse_part).
        if let Some(identity) = &self.identity {
            key.push_str(&format!("\n{}", identity.reuse_part()));
        }
        Some(key)
    }

    fn default_token_variable(&self) -> &'static str {
        DEFAULT_TOKEN_VARIABLE
    }

    fn git(&self) -> Git {
        self.git.clone()
    }

    fn register_secrets(&self, log: &mut Reporter) {
        if !self.secret.expose_secret().is_empty() {
            log.mask(self.secret.expose_secret());
            log.mask_basic(&self.basic.0, self.basic.1.expose_secret());
            log.mask_basic(&self.client_id, self.secret.expose_secret());
        }
        if let Some(signing) = &self.signing {
            for form in signing.key.secret_forms() {
                log.mask(form);
            }
        }
        if let Some(identity) = &self.identity {
            identity.register_secrets(log);
        }
    }

    fn secret_variables(&self) -> Vec<String> {
        self.identity
            .as_ref()
            .and_then(|i| i.secret_variable())
            .into_iter()
            .collect()
    }

    fn fetch<'a>(&'a self, http: &'a Http, log: &'a mut Reporter) -> Fut<'a, Result<Token, Error>> {
        Box::pin(grant::request(self, http, log))
    }

    fn check_scopes(&self, token: &Token) -> Result<Vec<String>, Error> {
        // Exact strings: implications are Bitbucket's alone.
        let missing: Vec<&String> = self
            .required_scopes
            .iter()
            .filter(|r| !token.scopes.contains(r))
            .collect();
        if missing.is_empty() {
            return Ok(self.required_scopes.clone());
        }
        let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        Err(Error::Validation(format!(
            "The token lacks required scope(s): {}. Granted: {}.\nGrant the client these scopes on the authorization server and request them in SCOPE, or change REQUIRED_SCOPES.",
            missing.join(", "),
            if token.scopes.is_empty() {
                "none".to_owned()
            } else {
                token.scopes.join(", ")
            }
        )))
    }

    fn prewarm(&self) -> Option<Url> {
        // An API on another host than the token endpoint; discovery, the token, JWKS and
        // introspection share the issuer's host and its one kept-alive connection.
        let Validate::Api(url) = &self.validate else {
            return None;
        };
        let token_host = self.token_url.as_ref().or(self.issuer.as_ref())?;
        (!crate::http::same_origin(url, token_host)).then(|| url.clone())
    }

    fn validation(&self) -> Option<String> {
        validate::describe(self)
    }

    fn validate<'a>(
        &'a self,
        token: &'a Token,
        fresh: Fresh,
        http: &'a Http,
        log: &'a mut Reporter,
    ) -> Fut<'a, Result<Validated, Error>> {
        Box::pin(validate::validate(self, token, fresh, http, log))
    }
}
