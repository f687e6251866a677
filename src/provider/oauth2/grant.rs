//! The token request for each grant and client authentication, and what follows it.
//!
//! - client credentials (RFC 6749 §4.4) with Basic, post, a `private_key_jwt` assertion
//!   (RFC 7523 §2.2: `iss` = `sub` = CLIENT_ID, `aud` the token endpoint or
//!   ASSERTION_AUDIENCE as a JSON string, a 128-bit random `jti`, `iat`/`nbf` now, `exp`
//!   now + 300 s) or the CI's identity token as the assertion (`federated`);
//! - token exchange (RFC 8693 §2.1): the identity token as `subject_token`; the response's
//!   `issued_token_type` is required (§2.2.1);
//! - the JWT bearer grant (RFC 7523 §2.1): the identity token as `assertion`;
//! - Google: STS token exchange with no Authorization header (Google's STS fails with one:
//!   https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token), then optional
//!   service-account impersonation (`generateAccessToken`, expiry from `expireTime`).
//!
//! A federation refusal is answered with the `iss`, `sub` and `aud` the provider must trust,
//! exactly as the identity token carries them; Entra's AADSTS700024 (the assertion outside
//! its time window, common in long jobs) fetches a fresh identity token and retries once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use super::{ClientAuthMethod, Grant, OAuth2, Profile};
use crate::error::Error;
use crate::http::{Auth, Body, Call, Field, Http};
use crate::provider::identity::Claims;
use crate::provider::jwt::Header;
use crate::provider::oauth::{self, OAuthError};
use crate::report::{Reporter, quote_remote};
use crate::token::{Expiry, Token, check_token, parse_list};

/// RFC 7523's client-assertion type.
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a signed client assertion is valid.
const ASSERTION_LIFETIME: u64 = 300;

/// Google's scope for every Cloud API, the default for STS and impersonation.
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Entra codes that mean "the federated credential does not match this token".
const ENTRA_FEDERATION: [u64; 4] = [70021, 700213, 7002138, 700024];

/// The header and form fields that authenticate the client to `endpoint`.
pub(super) fn client_fields<'a>(
    p: &'a OAuth2,
    endpoint: &Url,
    identity: Option<&SecretString>,
    log: &mut Reporter,
) -> Result<(Auth<'a>, Vec<Field>), Error> {
    let id = || Field::public("client_id", p.client_id.clone());
    Ok(match p.method {
        ClientAuthMethod::Basic => (
            Auth::Basic {
                user: &p.basic.0,
                password: &p.basic.1,
            },
            Vec::new(),
        ),
        ClientAuthMethod::Post => (
            Auth::None,
            vec![id(), Field::secret("client_secret", &p.secret)],
        ),
        ClientAuthMethod::PrivateKeyJwt => {
            let assertion = sign_assertion(p, endpoint)?;
            log.mask(assertion.expose_secret());
            (
                Auth::None,
                vec![
                    id(),
                    Field::public("client_assertion_type", ASSERTION_TYPE),
                    Field::secret("client_assertion", &assertion),
                ],
            )
        }
        ClientAuthMethod::Federated => {
            let assertion = identity
                .ok_or_else(|| Error::provider("no identity token to authenticate with"))?;
            (
                Auth::None,
                vec![
                    id(),
                    Field::public("client_assertion_type", ASSERTION_TYPE),
                    Field::secret("client_assertion", assertion),
                ],
            )
        }
        ClientAuthMethod::None => (Auth::None, Vec::new()),
    })
}

fn sign_assertion(p: &OAuth2, endpoint: &Url) -> Result<SecretString, Error> {
    let signing = p
        .signing
        .as_ref()
        .ok_or_else(|| Error::provider("private_key_jwt without a key"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut jti = [0u8; 16];
    SystemRandom::new()
        .fill(&mut jti)
        .map_err(|_| Error::provider("no randomness for the assertion's jti"))?;
    let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();
    let aud = signing
        .audience
        .clone()
        .unwrap_or_else(|| endpoint.to_string());
    let claims = serde_json::json!({
        "iss": p.client_id, "sub": p.client_id, "aud": aud, "jti": jti,
        "iat": now, "nbf": now, "exp": now + ASSERTION_LIFETIME,
    });
    let header = Header {
        kid: signing.kid.as_deref(),
        x5t_s256: signing.x5t.as_deref(),
    };
    signing.key.sign(signing.alg, header, &claims).map_err(|e| {
        Error::provider(format!(
            "Signing the client assertion failed: {e}. Check PRIVATE_KEY and SIGNING_ALG."
        ))
    })
}

/// Requests the token, with one fresh identity token and retry after AADSTS700024.
pub(super) async fn request(p: &OAuth2, http: &Http, log: &mut Reporter) -> Result<Token, Error> {
    match attempt(p, http, log).await {
        Err(Retry::Fresh(first)) => {
            log.warn("The identity token was outside its valid time window (AADSTS700024); requesting a fresh one and trying once more.");
            match attempt(p, http, log).await {
                Ok(token) => Ok(token),
                Err(Retry::Fresh(e) | Retry::No(e)) => Err(if matches!(e, Error::Credentials(_)) {
                    e
                } else {
                    first
                }),
            }
        }
        Err(Retry::No(e)) => Err(e),
        Ok(token) => Ok(token),
    }
}

enum Retry {
    /// Worth one more try with a fresh identity token.
    Fresh(Error),
    No(Error),
}

impl From<Error> for Retry {
    fn from(e: Error) -> Self {
        Retry::No(e)
    }
}

async fn attempt(p: &OAuth2, http: &Http, log: &mut Reporter) -> Result<Token, Retry> {
    let url = p.token_endpoint(http, log).await?;
    let needs_identity =
        p.method == ClientAuthMethod::Federated || p.grant != Grant::ClientCredentials;
    let identity = match (&p.identity, needs_identity) {
        (Some(source), true) => {
            let (token, claims) = source.fetch(http, log).await?;
            *p.last_assertion.borrow_mut() = Some(token.clone());
            Some((token, claims))
        }
        _ => None,
    };
    let grant_name = match p.grant {
        Grant::ClientCredentials => "client credentials grant",
        Grant::TokenExchange => "token exchange, RFC 8693",
        Grant::JwtBearer => "JWT bearer grant, RFC 7523",
    };
    log.info(format!(
        "Requesting an access token from {url} ({grant_name}, client authentication {})...",
        p.method.id()
    ));
    let subject = identity.as_ref().map(|(t, _)| t);
    let mut form = grant_fields(p, subject)?;
    form.extend(parameters(p));
    let (auth, fields) = client_fields(p, &url, subject, log)?;
    form.extend(fields);
    let call = Call {
        name: "token request",
        method: Method::POST,
        url: &url,
        variable: if p.profile == Profile::Google {
            "STS_URL"
        } else if p.token_url.is_some() {
            "TOKEN_URL"
        } else {
            "ISSUER"
        },
        auth,
        body: Body::Form(&form),
        headers: &[],
        body_has_tokens: true,
        once_sent: false,
    };
    let sent_at = SystemTime::now();
    let response = http.send(&call, log).await?;
    if !response.status.is_success() {
        let claims = identity.as_ref().map(|(_, c)| c);
        let error = p.rejected(&url, &response, claims);
        let codes = entra_codes(&response.body);
        return Err(if claims.is_some() && codes.contains(&700024) {
            Retry::Fresh(error)
        } else {
            Retry::No(error)
        });
    }
    let token = issued(p, &url, &response, sent_at, log)?;
    match &p.impersonation {
        Some(_) => Ok(impersonate(p, &token, http, log).await?),
        None => Ok(token),
    }
}

/// `grant_type` and what the grant itself carries.
fn grant_fields(p: &OAuth2, subject: Option<&SecretString>) -> Result<Vec<Field>, Error> {
    Ok(match p.grant {
        Grant::ClientCredentials => vec![Field::public("grant_type", "client_credentials")],
        Grant::TokenExchange => {
            let subject =
                subject.ok_or_else(|| Error::provider("no identity token to exchange"))?;
            let mut form = vec![
                Field::public(
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                Field::secret("subject_token", subject),
                Field::public("subject_token_type", p.token_types.0.clone()),
            ];
            if let Some(requested) = &p.token_types.1 {
                form.push(Field::public("requested_token_type", requested.clone()));
            }
            form
        }
        Grant::JwtBearer => {
            let subject =
                subject.ok_or_else(|| Error::provider("no identity token for the JWT grant"))?;
            vec![
                Field::public("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                Field::secret("assertion", subject),
            ]
        }
    })
}

/// `scope`, `audience` and `resource`, as configured.
fn parameters(p: &OAuth2) -> Vec<Field> {
    let mut form = Vec::new();
    if !p.scope.is_empty() {
        form.push(Field::public("scope", p.scope.join(" ")));
    } else if p.profile == Profile::Google {
        // Google's STS wants a scope for an access token; without SCOPE the request went out
        // with none (found by tests/cases/federation.rs). cloud-platform is what
        // google-github-actions/auth sends.
        form.push(Field::public("scope", CLOUD_PLATFORM));
    }
    if let Some(audience) = &p.audience {
        form.push(Field::public("audience", audience.clone()));
    }
    form.extend(
        p.resources
            .iter()
            .map(|r| Field::public("resource", r.clone())),
    );
    form
}

/// The token in a successful answer, checked (and for token exchange its
/// `issued_token_type`).
fn issued(
    p: &OAuth2,
    url: &Url,
    response: &crate::http::Response,
    sent_at: SystemTime,
    log: &mut Reporter,
) -> Result<Token, Error> {
    let malformed = |problem: String| {
        Error::provider(format!(
            "The token endpoint {url} answered HTTP {} with a malformed token response: {problem}.",
            response.status
        ))
    };
    let issued = oauth::parse_issued(&response.body, sent_at, &["scope"]).map_err(malformed)?;
    log.mask(&issued.access_token);
    if p.grant == Grant::TokenExchange {
        match issued
            .fields
            .get("issued_token_type")
            .and_then(Value::as_str)
        {
            Some(kind) => log.info(format!(
                "The server issued a token of type {}.",
                quote_remote(kind, 100)
            )),
            None => {
                return Err(malformed(
                    "it has no issued_token_type, which RFC 8693 §2.2.1 requires".into(),
                ));
            }
        }
    }
    let scopes = match &issued.scope {
        // Remote text: only RFC 6749 scope-tokens go on (see `scope_tokens`).
        Some(scope) => super::scope_tokens(parse_list(scope), log),
        None => {
            p.scope_assumed.set(true);
            p.scope.clone()
        }
    };
    Ok(Token::new(&issued.access_token, issued.expiry, scopes))
}

fn entra_codes(body: &[u8]) -> Vec<u64> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|j| {
            j.get("error_codes")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
        })
        .unwrap_or_default()
}

/// `generateAccessToken` for SERVICE_ACCOUNT with the STS token.
async fn impersonate(
    p: &OAuth2,
    sts: &Token,
    http: &Http,
    log: &mut Reporter,
) -> Result<Token, Error> {
    let imp = p.impersonation.as_ref().expect("called with impersonation");
    let base = imp.base.as_str().trim_end_matches('/');
    let url = Url::parse(&format!(
        "{base}/v1/projects/-/serviceAccounts/{}:generateAccessToken",
        imp.service_account
    ))
    .map_err(|e| Error::provider(format!("SERVICE_ACCOUNT makes no URL ({e})")))?;
    let scope = if p.scope.is_empty() {
        vec![CLOUD_PLATFORM.to_owned()]
    } else {
        p.scope.clone()
    };
    let mut body = serde_json::json!({ "scope": scope });
    if let Some(lifetime) = imp.lifetime {
        body["lifetime"] = Value::String(format!("{lifetime}s"));
    }
    log.info(format!(
        "Impersonating {} (generateAccessToken)...",
        imp.service_account
    ));
    let call = Call {
        name: "impersonation request",
        method: Method::POST,
        url: &url,
        variable: "IAM_CREDENTIALS_URL",
        auth: Auth::Bearer(&sts.secret),
        body: Body::Json(&body),
        headers: &[],
        body_has_tokens: true,
        once_sent: false,
    };
    let response = http.send(&call, log).await?;
    let json: Value = serde_json::from_slice(&response.body).unwrap_or_default();
    if !response.status.is_success() {
        let message = json
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(|m| quote_remote(m, 300))
            .unwrap_or_else(|| response.quoted_body(300));
        let hint = if message.contains("iam.serviceAccounts.getAccessToken") {
            format!(
                "Grant the workload identity the role roles/iam.workloadIdentityUser (or roles/iam.serviceAccountTokenCreator) on {}: `gcloud iam service-accounts add-iam-policy-binding {} --role roles/iam.workloadIdentityUser --member principalSet://iam.googleapis.com/<pool>/…`.",
                imp.service_account, imp.service_account
            )
        } else {
            "Check SERVICE_ACCOUNT (an e-mail address) and that the IAM Credentials API is enabled."
                .to_owned()
        };
        return Err(Error::Credentials(format!(
            "Google refused to impersonate {} (HTTP {}: {message}).\n{hint}",
            imp.service_account, response.status
        )));
    }
    let (Some(token), Some(expire)) = (
        json.get("accessToken").and_then(Value::as_str),
        json.get("expireTime").and_then(Value::as_str),
    ) else {
        return Err(Error::provider(
            "The generateAccessToken response has no accessToken or expireTime.",
        ));
    };
    check_token(token)
        .map_err(|e| Error::provider(format!("The impersonated token is unusable: {e}.")))?;
    log.mask(token);
    let at = humantime::parse_rfc3339_weak(expire).map_err(|_| {
        Error::provider("The generateAccessToken response's expireTime is not a time.")
    })?;
    if at
        .duration_since(SystemTime::now())
        .map_or(true, |d| d > Duration::from_secs(13 * 3600))
    {
        return Err(Error::provider(
            "The generateAccessToken response's expireTime is in the past or more than 12 hours away.",
        ));
    }
    Ok(Token::new(token, Expiry::At(at), scope))
}

/// Google's STS errors that are not a federation mismatch; `invalid_target` got the generic
/// "Check RESOURCE" hint, which PROVIDER=google does not even read (found by
/// tests/cases/federation.rs).
pub(super) fn google_hint(code: &str) -> Option<&'static str> {
    match code {
        "invalid_target" => Some(
            "Google's STS does not know the pool provider WORKLOAD_IDENTITY_PROVIDER names, or it is disabled or deleted: check its full name (projects/PROJECT_NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER, with the project's number, not its ID) and that the provider is enabled.",
        ),
        _ => None,
    }
}

/// Whether `error` says the federated credential did not match.
pub(super) fn is_federation_refusal(error: &OAuthError, codes: &[u64]) -> bool {
    codes.iter().any(|c| ENTRA_FEDERATION.contains(c))
        || matches!(
            error.code.as_str(),
            "invalid_client" | "invalid_grant" | "unauthorized_client" | "access_denied"
        )
}

/// The trust the provider must hold, quoted from the identity token itself.
pub(super) fn federation_hint(
    profile: Profile,
    claims: &Claims,
    codes: &[u64],
    on_bitbucket: bool,
) -> String {
    let slash = if claims.iss.ends_with('/') {
        " The issuer ends with '/': the federated credential must have it too (or neither)."
    } else {
        " Matching is exact: no trailing '/', no wildcard, and case matters."
    };
    let trust = format!(
        "issuer `{}`, subject `{}`, audience `{}`",
        claims.iss,
        claims.sub,
        claims.aud.first().map_or("", String::as_str)
    );
    match profile {
        Profile::Entra if on_bitbucket => format!(
            "Entra ID cannot trust Bitbucket Pipelines identity tokens: their subject ({}) carries a per-step UUID, and Entra matches subjects exactly (flexible credentials exclude Bitbucket). Use a client secret or certificate (CLIENT_SECRET, or CLIENT_AUTH=private_key_jwt) from Bitbucket.",
            claims.sub
        ),
        Profile::Entra if codes.contains(&700024) => "The identity token was outside its valid time window even after a fresh one was requested: check this runner's clock.".to_owned(),
        Profile::Entra => format!(
            "Entra ID has no federated credential matching this identity token. In App registrations > (CLIENT_ID) > Certificates & secrets > Federated credentials, create one with {trust}.{slash} New credentials can take a minute to apply."
        ),
        Profile::Google => format!(
            "Google's STS refused the identity token. Check WORKLOAD_IDENTITY_PROVIDER, that the pool's provider has issuer `{}` and allowed audience `{}`, and that its attribute condition admits subject `{}`.{slash}",
            claims.iss, claims.aud.first().map_or("", String::as_str), claims.sub
        ),
        _ => format!("The server refused the identity token. Configure its trust with {trust}.{slash}"),
    }
}
