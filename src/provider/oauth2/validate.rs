//! The three ways to prove an OAuth 2.0 token: an API call (`GET VALIDATE_URL`),
//! introspection (RFC 7662: `active: true` passes), or the issuer's keys (the token is a JWS
//! checked against the JWKS). VALIDATE=true takes the first available, in that order; when
//! the introspection endpoint says it does not introspect this token type
//! (`unsupported_token_type`, as certified servers answer for JWT access tokens), `true`
//! falls back to the JWKS when there is one.

use std::time::{Duration, SystemTime};

use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;
use url::Url;

use super::jwks::{self, Expect};
use super::{OAuth2, Profile, Validate};
use crate::error::Error;
use crate::http::{Auth, Body, Call, Field, Http};
use crate::provider::{Fresh, lag, oauth};
use crate::report::{Reporter, quote_remote};
use crate::token::{Token, Validated};

/// The waits before the extra attempts after a 401 on a new token (replication lag).
const LAG_WAITS: [Duration; 2] = [Duration::from_secs(1); 2];

/// The method VALIDATE resolves to once discovery is known.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Method3 {
    Api(Url),
    Introspect(Url),
    Jwks(Url),
}

fn introspection(p: &OAuth2) -> Option<Url> {
    p.introspection_url.clone().or_else(|| {
        p.metadata
            .get()
            .and_then(|m| m.introspection_endpoint.clone())
    })
}

fn jwks_url(p: &OAuth2) -> Option<Url> {
    p.jwks_url
        .clone()
        .or_else(|| p.metadata.get().and_then(|m| m.jwks_uri.clone()))
}

fn resolve(p: &OAuth2) -> Result<Option<Method3>, Error> {
    let none = |what: &str, fix: &str| Error::config("VALIDATE", format!("is {what} but {fix}"));
    Ok(Some(match &p.validate {
        Validate::Off => return Ok(None),
        Validate::Api(url) => Method3::Api(url.clone()),
        Validate::Introspect => Method3::Introspect(introspection(p).ok_or_else(|| none("introspect", "no introspection endpoint is known: set INTROSPECTION_URL, or ISSUER for discovery."))?),
        Validate::Jwks => Method3::Jwks(jwks_url(p).ok_or_else(|| none("jwks", "no JWKS is known: set JWKS_URL, or ISSUER for discovery."))?),
        Validate::Auto => match (introspection(p), jwks_url(p)) {
            (Some(url), _) => Method3::Introspect(url),
            (None, Some(url)) => Method3::Jwks(url),
            (None, None) => return Err(none("true", "there is nothing to validate against: set VALIDATE_URL to an API URL the token can read, INTROSPECTION_URL or JWKS_URL (or ISSUER, whose discovery lists them), or VALIDATE=false.")),
        },
    }))
}

/// What validation will call, for the log.
pub fn describe(p: &OAuth2) -> Option<String> {
    match resolve(p) {
        Ok(None) => None,
        Ok(Some(Method3::Api(url))) => Some(format!("GET {url}")),
        Ok(Some(Method3::Introspect(url))) => Some(format!("introspection at {url}")),
        Ok(Some(Method3::Jwks(url))) => {
            Some(format!("signature and claims against the keys at {url}"))
        }
        // Not known before discovery: validate() discovers and then resolves.
        Err(_) if p.issuer.is_some() && p.metadata.get().is_none() => Some(format!(
            "the first method the discovery of {} offers",
            p.issuer.as_ref().expect("checked")
        )),
        Err(_) => Some("(no method available)".to_owned()),
    }
}

/// Validates `token` as VALIDATE says.
pub async fn validate(
    p: &OAuth2,
    token: &Token,
    fresh: Fresh,
    http: &Http,
    log: &mut Reporter,
) -> Result<Validated, Error> {
    p.metadata(http, log).await?;
    let Some(method) = resolve(p)? else {
        return Ok(Validated::Skipped);
    };
    let (validated, revealed) = match method {
        Method3::Api(url) => (api(&url, token, fresh, http, log).await?, None),
        Method3::Jwks(url) => by_jwks(p, &url, token, http, log).await?,
        Method3::Introspect(url) => match introspect(p, &url, token, http, log).await {
            Err(Unsupported(why)) if p.validate == Validate::Auto => match jwks_url(p) {
                Some(keys) => {
                    log.info(format!("The introspection endpoint does not introspect this token ({why}); checking it against the issuer's keys instead."));
                    by_jwks(p, &keys, token, http, log).await?
                }
                None => {
                    return Err(Error::Validation(format!(
                        "The introspection endpoint {url} does not introspect this token ({why}), and no JWKS is known.\nSet JWKS_URL (or ISSUER), VALIDATE_URL, or VALIDATE=false."
                    )));
                }
            },
            Err(Unsupported(why)) => {
                return Err(Error::Validation(format!(
                    "The introspection endpoint {url} does not introspect this token ({why}).\nSet VALIDATE=jwks or VALIDATE_URL instead."
                )));
            }
            Ok(result) => result?,
        },
    };
    // Introspection's `scope` and a JWT's `scope`/`scp` are remote text like the token
    // response's: the same grammar applies.
    let revealed = revealed.map(|scopes| super::scope_tokens(scopes, log));
    if let (Some(scopes), true) = (revealed, p.scope_assumed.get()) {
        return Ok(match validated {
            Validated::Called { what, status, .. } => Validated::Called {
                what,
                status,
                scopes: Some(scopes),
            },
            other => other,
        });
    }
    Ok(validated)
}

async fn api(
    url: &Url,
    token: &Token,
    fresh: Fresh,
    http: &Http,
    log: &mut Reporter,
) -> Result<Validated, Error> {
    let call = Call::get(
        "validation call",
        url,
        "VALIDATE_URL",
        Auth::Bearer(&token.secret),
    );
    let response = lag::send(&call, fresh, &LAG_WAITS, "the API", http, log).await?;
    if response.status.is_success() {
        return Ok(Validated::Called {
            what: format!("GET {url}"),
            status: response.status.as_u16(),
            scopes: None,
        });
    }
    let hint = match response.status.as_u16() {
        401 => {
            "The API refused the token. Check that VALIDATE_URL belongs to the API this token is for (AUDIENCE, RESOURCE or SCOPE)."
        }
        403 => {
            "The token lacks a permission this call needs. Grant it to the client, or set VALIDATE_URL to something the token may read."
        }
        404 => "Nothing is there, or the token may not see it. Check VALIDATE_URL.",
        _ => "Check VALIDATE_URL.",
    };
    Err(Error::Validation(format!(
        "The token failed validation: GET {url} answered HTTP {}: {}.\n{hint}",
        response.status,
        response.quoted_body(300)
    )))
}

/// The introspection endpoint declined this kind of token.
struct Unsupported(String);

async fn introspect(
    p: &OAuth2,
    url: &Url,
    token: &Token,
    http: &Http,
    log: &mut Reporter,
) -> Result<Result<(Validated, Option<Vec<String>>), Error>, Unsupported> {
    let assertion = p.last_assertion.borrow().clone();
    let (auth, fields) = match super::grant::client_fields(p, url, assertion.as_ref(), log) {
        Ok(pair) => pair,
        Err(e) => return Ok(Err(e)),
    };
    let mut form = vec![
        Field::secret("token", &token.secret),
        Field::public("token_type_hint", "access_token"),
    ];
    form.extend(fields);
    let call = Call {
        name: "introspection request",
        method: Method::POST,
        url,
        variable: "INTROSPECTION_URL",
        auth,
        body: Body::Form(&form),
        headers: &[],
        body_has_tokens: false,
        once_sent: false,
    };
    let response = match http.send(&call, log).await {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(error) = oauth::parse_error(&response.body) {
        if error.code == "unsupported_token_type" {
            return Err(Unsupported(error.said()));
        }
        return Ok(Err(Error::Validation(format!(
            "The introspection endpoint {url} answered HTTP {} with an OAuth error ({}).\nCheck that the client may introspect (some servers need a separate resource-server client), or set VALIDATE=jwks.",
            response.status,
            error.said()
        ))));
    }
    Ok(answer(url, &response, log))
}

/// An introspection response (RFC 7662 §2.2): `active: true` passes and shows `client_id`,
/// `scope` and `exp`; anything else fails validation, quoted.
fn answer(
    url: &Url,
    response: &crate::http::Response,
    log: &mut Reporter,
) -> Result<(Validated, Option<Vec<String>>), Error> {
    let json: Value = match serde_json::from_slice(&response.body) {
        Ok(json) if response.status.is_success() => json,
        _ => {
            return Err(Error::Validation(format!(
                "The introspection endpoint {url} answered HTTP {} without an introspection response: {}.",
                response.status,
                response.quoted_body(200)
            )));
        }
    };
    match json.get("active").and_then(Value::as_bool) {
        Some(true) => {}
        Some(false) => {
            return Err(Error::Validation(format!(
                "The introspection endpoint {url} says the token is not active (\"active\": false).\nThe server does not recognise the token it just issued: check that INTROSPECTION_URL belongs to the same server as the token endpoint."
            )));
        }
        None => {
            return Err(Error::Validation(format!(
                "The introspection response from {url} has no boolean \"active\"."
            )));
        }
    }
    let field = |name: &str| {
        json.get(name).map(|v| {
            quote_remote(
                v.as_str()
                    .map_or_else(|| v.to_string(), str::to_owned)
                    .as_str(),
                200,
            )
        })
    };
    log.info(format!(
        "Introspection: active, client_id {}, scope {}, exp {}.",
        field("client_id").unwrap_or_else(|| "-".into()),
        field("scope").unwrap_or_else(|| "-".into()),
        field("exp").unwrap_or_else(|| "-".into())
    ));
    let scopes = json
        .get("scope")
        .and_then(Value::as_str)
        .map(crate::token::parse_list);
    Ok((
        Validated::Called {
            what: format!("introspection at {url}: active"),
            status: response.status.as_u16(),
            scopes: None,
        },
        scopes,
    ))
}

async fn by_jwks(
    p: &OAuth2,
    url: &Url,
    token: &Token,
    http: &Http,
    log: &mut Reporter,
) -> Result<(Validated, Option<Vec<String>>), Error> {
    let response = http
        .send(&Call::get("JWKS request", url, "JWKS_URL", Auth::None), log)
        .await?;
    let keys: Value = match serde_json::from_slice(&response.body) {
        Ok(json) if response.status.is_success() => json,
        _ => {
            return Err(Error::provider(format!(
                "The JWKS at {url} answered HTTP {} without a key set: {}. Check JWKS_URL or ISSUER.",
                response.status,
                response.quoted_body(200)
            )));
        }
    };
    let mut expect = Expect::default();
    if let Some(issuer) = p
        .metadata
        .get()
        .map(|m| m.issuer.clone())
        .or_else(|| p.issuer.as_ref().map(|i| i.to_string()))
    {
        let trimmed = issuer.strip_suffix('/').unwrap_or(&issuer).to_owned();
        expect.issuers = vec![trimmed.clone(), format!("{trimmed}/")];
        if p.profile == Profile::Entra {
            // v1.0 tokens (accessTokenAcceptedVersion null or 1) name the STS of the tenant.
            if let Some(tenant) = trimmed
                .strip_suffix("/v2.0")
                .and_then(|t| t.rsplit('/').next())
            {
                expect
                    .issuers
                    .push(format!("https://sts.windows.net/{tenant}/"));
            }
        }
    }
    expect.audiences = p.audience.iter().chain(&p.resources).cloned().collect();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let verified = jwks::verify(token.secret.expose_secret(), &keys, &expect, now).map_err(|why| {
        Error::Validation(format!("The token failed validation against the keys at {url}: {why}.\nCheck ISSUER, AUDIENCE or RESOURCE, and JWKS_URL."))
    })?;
    let what = if verified.signature_checked {
        format!("signature and claims checked against {url}")
    } else {
        log.info("The token has a nonce header (an Entra ID token for Microsoft Graph), which by design no client can verify: its claims were checked, not its signature.");
        "claims checked; signature not verifiable (Entra Graph token)".to_owned()
    };
    Ok((
        Validated::Called {
            what,
            status: response.status.as_u16(),
            scopes: None,
        },
        jwks::scopes(&verified.claims),
    ))
}
