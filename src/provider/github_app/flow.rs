//! The flow, over one kept-alive connection (the HTTP client pools it): sign the app's JWT,
//! look up the installation, mint the token; and `DELETE /installation/token` for revoke.
//!
//! The JWT follows GitHub's page "Generating a JSON Web Token (JWT) for a GitHub App"
//! (providers.md §1.1): RS256; `iss` the client ID or app ID as a JSON *string* (RFC 7519
//! StringOrURI; client IDs are strings, and GitHub accepts numeric IDs as strings); `iat`
//! 60 s in the past; `exp` 540 s ahead — never the documented maximum of 600, which a clock a
//! second fast turns into GitHub's most-reported refusal ("'exp' is too far in the future",
//! AmadeusITGroup/gh-app-auth#58 settled on the same 60 s / 9 min). When GitHub still says
//! the times are off, the JWT is signed once more on GitHub's clock, read from the refusal's
//! `Date` header, as octokit does (octokit/auth-app.js#146, #164).

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use url::Url;

use crate::error::Error;
use crate::http::{Auth, Body, Call, Http, Response};
use crate::provider::Revoked;
use crate::provider::jwt::{Alg, Header};
use crate::report::{Reporter, quote_remote};
use crate::token::{Expiry, MAX_LIFETIME, Token, check_token, format_time};

use super::hints::{self, Step};
use super::{GitHubApp, HEADERS, Target};

/// `iat` is this far in the past (GitHub: "set this 60 seconds in the past").
const BACKDATE: i64 = 60;
/// `exp` is this far ahead: under GitHub's 600 s limit with room for a fast clock.
const VALIDITY: i64 = 540;

/// The JWT's clock: the local one, or GitHub's once a refusal said they differ.
#[derive(Debug, Default)]
struct Clock {
    /// Seconds to add to the local time (GitHub's minus ours).
    offset: i64,
    corrected: bool,
}

/// Mints an installation token.
pub async fn fetch(app: &GitHubApp, http: &Http, log: &mut Reporter) -> Result<Token, Error> {
    let mut clock = Clock::default();
    let (id, slug) = match app.target.as_ref() {
        Some(Target::Installation(id)) => (*id, None),
        Some(Target::Repository { owner, repo }) => {
            let path = format!("/repos/{owner}/{repo}/installation");
            lookup(
                app,
                &path,
                Step::RepositoryLookup(owner, repo),
                &mut clock,
                http,
                log,
            )
            .await?
        }
        Some(Target::Owner(owner)) => {
            let path = format!("/users/{owner}/installation");
            lookup(app, &path, Step::OwnerLookup(owner), &mut clock, http, log).await?
        }
        None => {
            return Err(Error::config(
                "OWNER",
                "is not set: set OWNER, REPOSITORIES or INSTALLATION_ID.",
            ));
        }
    };
    let mut body = Map::new();
    if !app.repositories.is_empty() {
        body.insert("repositories".into(), json!(app.repositories));
    }
    if !app.permissions.is_empty() {
        let permissions: Map<String, Value> = app
            .permissions
            .iter()
            .map(|(p, l)| (p.clone(), Value::from(l.as_str())))
            .collect();
        body.insert("permissions".into(), Value::Object(permissions));
    }
    let body = Value::Object(body);
    let url = api_url(app, &format!("/app/installations/{id}/access_tokens"))?;
    let sent_at = SystemTime::now();
    let request = AppCall {
        name: "token request",
        method: Method::POST,
        url: &url,
        json: Some(&body),
        body_has_tokens: true,
    };
    let response = as_app(app, &request, &mut clock, http, log).await?;
    if response.status != StatusCode::CREATED && response.status != StatusCode::OK {
        return Err(hints::refused(
            app,
            Step::Mint(id),
            &response,
            clock.corrected.then_some(clock.offset),
        ));
    }
    let mut token = parse_minted(&response.body, sent_at).map_err(|problem| {
        Error::provider(format!(
            "GitHub answered the token request with HTTP {} but {problem}. Check that GITHUB_API_URL is GitHub's REST API.",
            response.status
        ))
    })?;
    token.outputs.push((super::OUTPUTS[0], id.to_string()));
    if let Some(slug) = slug {
        token.outputs.push((super::OUTPUTS[1], slug));
    }
    Ok(token)
}

/// `GET` an installation: its `id` and `app_slug`.
async fn lookup(
    app: &GitHubApp,
    path: &str,
    step: Step<'_>,
    clock: &mut Clock,
    http: &Http,
    log: &mut Reporter,
) -> Result<(u64, Option<String>), Error> {
    let url = api_url(app, path)?;
    log.info(format!("Looking up the app's installation: GET {url}"));
    let request = AppCall {
        name: "installation lookup",
        method: Method::GET,
        url: &url,
        json: None,
        body_has_tokens: false,
    };
    let response = as_app(app, &request, clock, http, log).await?;
    if !response.status.is_success() {
        return Err(hints::refused(
            app,
            step,
            &response,
            clock.corrected.then_some(clock.offset),
        ));
    }
    let json: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let Some(id) = json.get("id").and_then(Value::as_u64) else {
        return Err(Error::provider(format!(
            "GitHub answered the installation lookup {url} with HTTP {} but no installation id: check GITHUB_API_URL.",
            response.status
        )));
    };
    let slug = json
        .get("app_slug")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_owned);
    log.info(format!(
        "Found installation {id}{}.",
        slug.as_ref()
            .map(|s| format!(" of app {s}"))
            .unwrap_or_default()
    ));
    Ok((id, slug))
}

/// A call made as the app (with its JWT), rebuilt with a fresh JWT for each attempt.
struct AppCall<'a> {
    name: &'static str,
    method: Method,
    url: &'a Url,
    json: Option<&'a Value>,
    body_has_tokens: bool,
}

/// Sends a call authenticated as the app; on a clock refusal, once more on GitHub's clock.
async fn as_app(
    app: &GitHubApp,
    request: &AppCall<'_>,
    clock: &mut Clock,
    http: &Http,
    log: &mut Reporter,
) -> Result<Response, Error> {
    loop {
        let jwt = sign(app, clock, log)?;
        let call = Call {
            name: request.name,
            method: request.method.clone(),
            url: request.url,
            variable: "GITHUB_API_URL",
            auth: Auth::Bearer(&jwt),
            body: request.json.map_or(Body::Empty, Body::Json),
            headers: HEADERS,
            body_has_tokens: request.body_has_tokens,
            once_sent: false,
        };
        let response = http.send(&call, log).await?;
        if response.status != StatusCode::UNAUTHORIZED || clock.corrected {
            return Ok(response);
        }
        let said = hints::message(&response.body).unwrap_or_default();
        let server = response
            .header("date")
            .and_then(|d| httpdate::parse_http_date(d).ok());
        let (true, Some(server)) = (hints::is_clock_error(&said), server) else {
            return Ok(response);
        };
        clock.offset = seconds(server) - seconds(SystemTime::now());
        clock.corrected = true;
        let direction = if clock.offset < 0 {
            "ahead of"
        } else {
            "behind"
        };
        log.warn(format!(
            "GitHub refused the app's JWT ({said}): this machine's clock is about {} s {direction} GitHub's (from the Date header of its answer). Signing a new JWT on GitHub's time; fix the runner's clock (NTP) to avoid this.",
            clock.offset.abs()
        ));
    }
}

/// The app's JWT, registered as a secret before anything can log it.
fn sign(app: &GitHubApp, clock: &Clock, log: &mut Reporter) -> Result<SecretString, Error> {
    let key = app.key.as_ref().ok_or_else(|| {
        Error::config(
            "PRIVATE_KEY",
            "is not set: set it to the app's private key.",
        )
    })?;
    let now = seconds(SystemTime::now()) + clock.offset;
    let claims = json!({
        "iat": now - BACKDATE,
        "exp": now + VALIDITY,
        "iss": app.app_id,
    });
    let jwt = key
        .sign(Alg::Rs256, Header::default(), &claims)
        .map_err(|e| Error::Other(anyhow::anyhow!("signing the app's JWT: {e}")))?;
    log.mask(jwt.expose_secret());
    Ok(jwt)
}

fn seconds(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn api_url(app: &GitHubApp, path: &str) -> Result<Url, Error> {
    Url::parse(&format!("{}{path}", app.api)).map_err(|e| {
        Error::config(
            "GITHUB_API_URL",
            format!("cannot be joined with {path} ({e})."),
        )
    })
}

/// The 201 body: `token`, `expires_at`, `permissions` (providers.md §1.2). The expiry is
/// GitHub's own, never computed; the scopes are `permission:level`, sorted.
pub fn parse_minted(body: &[u8], now: SystemTime) -> Result<Token, String> {
    let json: Value =
        serde_json::from_slice(body).map_err(|_| "its body is not JSON".to_owned())?;
    let token = match json.get("token") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err("its token is not a string".into()),
        None => return Err("it has no token".into()),
    };
    check_token(token)?;
    let expires = json
        .get("expires_at")
        .and_then(Value::as_str)
        .ok_or("it has no expires_at")?;
    let at = humantime::parse_rfc3339_weak(expires).map_err(|_| {
        format!(
            "its expires_at ({}) is not an RFC 3339 time",
            quote_remote(expires, 40)
        )
    })?;
    match at.duration_since(now) {
        Err(_) => {
            return Err(format!(
                "its expires_at ({}) has already passed (check this machine's clock)",
                format_time(at)
            ));
        }
        Ok(left) if left > MAX_LIFETIME => {
            return Err("its expires_at is more than a year away".into());
        }
        Ok(_) => {}
    }
    let mut scopes: Vec<String> = json
        .get("permissions")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .filter_map(|(name, level)| Some(format!("{name}:{}", level.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    scopes.sort();
    Ok(Token::new(token, Expiry::At(at), scopes))
}

/// `DELETE /installation/token` with the token itself: 204 revoked; 401 already expired or
/// revoked (CGAT lib/post.js treats both as done). Never repeated once sent.
pub async fn revoke(
    app: &GitHubApp,
    token: &Token,
    http: &Http,
    log: &mut Reporter,
) -> Result<Revoked, Error> {
    let url = api_url(app, "/installation/token")?;
    let call = Call {
        name: "revocation",
        method: Method::DELETE,
        url: &url,
        variable: "GITHUB_API_URL",
        auth: Auth::Bearer(&token.secret),
        body: Body::Empty,
        headers: HEADERS,
        body_has_tokens: false,
        once_sent: true,
    };
    let response = http.send(&call, log).await?;
    match response.status {
        s if s.is_success() => Ok(Revoked::Revoked),
        StatusCode::UNAUTHORIZED => Ok(Revoked::AlreadyInvalid(
            hints::message(&response.body).unwrap_or_else(|| "HTTP 401".into()),
        )),
        status => Err(Error::provider(format!(
            "GitHub answered the revocation (DELETE {url}) with HTTP {status}{}: the token stays valid until it expires. Check GITHUB_API_URL.",
            hints::message(&response.body)
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn minted_tokens_of_both_formats_keep_githubs_expiry_and_sorted_permissions() {
        let stateless = format!(
            "ghs_123456_{}.{}.{}",
            "a".repeat(200),
            "b".repeat(200),
            "c".repeat(100)
        );
        for token in [
            "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
            stateless.as_str(),
        ] {
            let body = json!({"token": token, "expires_at": "2027-01-15T08:00:00Z", "permissions": {"issues": "write", "contents": "read", "metadata": "read"}, "repository_selection": "selected"});
            let t = parse_minted(body.to_string().as_bytes(), now()).unwrap();
            assert_eq!(t.len, token.len());
            assert_eq!(t.scopes, ["contents:read", "issues:write", "metadata:read"]);
            assert_eq!(format_time(t.expiry.at().unwrap()), "2027-01-15T08:00:00Z");
        }
    }

    #[test]
    fn malformed_mint_answers_are_refused() {
        for (body, why) in [
            (json!({"expires_at": "2027-01-15T08:00:00Z"}), "no token"),
            (
                json!({"token": "a b", "expires_at": "2027-01-15T08:00:00Z"}),
                "RFC 6750",
            ),
            (json!({"token": "ghs_x"}), "no expires_at"),
            (
                json!({"token": "ghs_x", "expires_at": "soon"}),
                "not an RFC 3339",
            ),
            (
                json!({"token": "ghs_x", "expires_at": "2020-01-01T00:00:00Z"}),
                "already passed",
            ),
        ] {
            let err = parse_minted(body.to_string().as_bytes(), now()).unwrap_err();
            assert!(err.contains(why), "{why}: {err}");
        }
    }
}
