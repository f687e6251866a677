//! The client-credentials grant: the token request and what its answer means.
//!
//! Bitbucket documents the grant as `POST https://bitbucket.org/site/oauth2/access_token`
//! with HTTP Basic `key:secret` and the form body `grant_type=client_credentials`
//! (https://developer.atlassian.com/cloud/bitbucket/oauth-2/). Since its May 2026 OAuth
//! changes (CHANGE-3052, https://community.developer.atlassian.com/t/99003) the answer says
//! `scope` rather than `scopes`, carries no refresh token for this grant, and the token is a
//! JWT of ~1,900 characters. Errors are OAuth JSON whose wording, not only its code, tells
//! the setup mistakes apart: Bitbucket answers wrong credentials with `unauthorized_client`
//! (not RFC 6749's `invalid_client`), and its code for a public consumer is unconfirmed.

use std::time::{Duration, SystemTime};

use reqwest::Method;
use secrecy::SecretString;
use serde_json::Value;

use crate::config::Config;
use crate::error::Error;
use crate::http::{Auth, Call, Http, Response};
use crate::report::{Reporter, quote_remote};
use crate::scope;

/// The longest lifetime accepted: anything above a year is a broken response, not a token.
const MAX_EXPIRES_IN: u64 = 365 * 24 * 3600;

/// An access token as issued, with what the response said about it.
#[derive(Debug)]
pub struct Token {
    /// The bearer token itself. Never formatted anywhere.
    pub secret: SecretString,
    /// Its length in characters, which is all the log says about it.
    pub len: usize,
    /// Seconds of validity, when the response said.
    pub expires_in: Option<u64>,
    /// When it expires: the request's start plus `expires_in`, so never later than the truth.
    pub expires_at: Option<SystemTime>,
    /// The granted scopes, in the order given.
    pub scopes: Vec<String>,
}

/// Runs the client-credentials grant and interprets the answer.
pub async fn request(config: &Config, http: &Http, log: &mut Reporter) -> Result<Token, Error> {
    let call = Call {
        name: "token request",
        method: Method::POST,
        url: &config.token_url,
        auth: Auth::Basic {
            id: &config.client_id,
            secret: &config.client_secret,
        },
        form: Some("grant_type=client_credentials"),
        body_has_tokens: true,
    };
    let sent_at = SystemTime::now();
    let response = http.send(&call, log).await?;
    if !response.status.is_success() {
        return Err(error_response(&response));
    }
    let token = parse_success(&response.body, sent_at).map_err(|problem| {
        Error::provider(format!(
            "The token endpoint {} answered HTTP {} with a malformed token response: {problem}. Check that TOKEN_URL is Bitbucket's token endpoint ({}).",
            config.token_url,
            response.status,
            crate::config::DEFAULT_TOKEN_URL
        ))
    })?;
    Ok(token)
}

/// Parses a successful token response. The error says what is wrong without quoting any
/// token-bearing field.
pub fn parse_success(body: &[u8], sent_at: SystemTime) -> Result<Token, String> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        if start.trim_start().starts_with('<') {
            "it is HTML, not JSON (Bitbucket answers with an HTML page when the request is not authenticated with HTTP Basic)".to_owned()
        } else {
            format!("it is not JSON ({e})")
        }
    })?;
    let object = json.as_object().ok_or("it is not a JSON object")?;

    let token = match object.get("access_token") {
        None => return Err("it has no access_token".into()),
        Some(Value::String(t)) => t,
        Some(_) => return Err("access_token is not a string".into()),
    };
    check_token(token)?;

    match object.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(t)) => {
            return Err(format!(
                "token_type is {:?}, not bearer",
                quote_remote(t, 40)
            ));
        }
        Some(_) => return Err("token_type is not a string".into()),
        None => return Err("it has no token_type".into()),
    }

    let expires_in = match object.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(value) => Some(parse_expires_in(value)?),
    };

    // `scope` since May 2026; `scopes` before. Both are space-separated strings.
    let scopes = match object.get("scope").or_else(|| object.get("scopes")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => scope::parse_list(s),
        Some(_) => return Err("scope is not a string".into()),
    };
    if let Some(bad) = scopes.iter().find(|s| !scope::is_well_formed(s)) {
        return Err(format!(
            "scope lists {:?}, which is not a scope name",
            quote_remote(bad, 40)
        ));
    }

    Ok(Token {
        len: token.chars().count(),
        secret: SecretString::from(token.as_str()),
        expires_in,
        expires_at: expires_in.map(|s| sent_at + Duration::from_secs(s)),
        scopes,
    })
}

/// RFC 6750 `b64token` (`[A-Za-z0-9._~+/-]+=*`), not starting with `~` (which sh would
/// expand). This is what keeps a hostile or broken response from injecting lines or shell
/// syntax into the files we write, so the files need no quoting.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("access_token is empty".into());
    }
    if token.starts_with('~') {
        return Err("access_token starts with '~'".into());
    }
    let body = token.trim_end_matches('=');
    if body.is_empty() {
        return Err("access_token is only '=' padding".into());
    }
    match body
        .chars()
        .position(|c| !(c.is_ascii_alphanumeric() || "-._~+/".contains(c)))
    {
        None => Ok(()),
        Some(at) => Err(format!(
            "access_token has a character that RFC 6750 does not allow in a bearer token (at position {at}); refusing it"
        )),
    }
}

fn parse_expires_in(value: &Value) -> Result<u64, String> {
    let seconds = match value {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("expires_in is {n}, not a positive whole number of seconds"))?,
        Value::String(s) => s.trim().parse::<u64>().map_err(|_| {
            format!(
                "expires_in is {:?}, not a positive whole number of seconds",
                quote_remote(s, 40)
            )
        })?,
        _ => return Err("expires_in is neither a number nor a numeric string".into()),
    };
    match seconds {
        0 => Err("expires_in is 0: the token would already be expired".into()),
        s if s > MAX_EXPIRES_IN => Err(format!("expires_in is {s} seconds, more than a year")),
        s => Ok(s),
    }
}

/// A non-success answer from the token endpoint: an OAuth error exits 3; anything else
/// (HTML, an unexpected status) means the endpoint is not usable, exit 5.
fn error_response(response: &Response) -> Error {
    let status = response.status;
    let Some((code, description)) = parse_oauth_error(&response.body) else {
        let body = quote_remote(String::from_utf8_lossy(&response.body).trim(), 300);
        return Error::provider(format!(
            "The token endpoint answered HTTP {status} without an OAuth error: {}. Check that TOKEN_URL is Bitbucket's token endpoint ({}).",
            if body.is_empty() {
                "(empty body)".to_owned()
            } else {
                body
            },
            crate::config::DEFAULT_TOKEN_URL
        ));
    };
    let said = match &description {
        Some(d) => format!("{code}: {d}"),
        None => code.clone(),
    };
    let hint = hint(&code, description.as_deref().unwrap_or(""));
    Error::Credentials(format!(
        "Bitbucket refused the token request (HTTP {status}, {said}).\n{hint}"
    ))
}

/// `error` and `error_description` from an OAuth error body (RFC 6749 §5.2), quoted safely.
pub fn parse_oauth_error(body: &[u8]) -> Option<(String, Option<String>)> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let code = json.get("error")?.as_str()?;
    let description = json
        .get("error_description")
        .and_then(Value::as_str)
        .map(|d| quote_remote(d, 300));
    Some((quote_remote(code, 80), description))
}

/// What to do about an OAuth error, chosen by the description's wording first, since
/// Bitbucket reuses codes across causes, and the code second.
pub fn hint(code: &str, description: &str) -> &'static str {
    let d = description.to_ascii_lowercase();
    if d.contains("callback") {
        "The OAuth consumer has no callback URL. In Workspace settings > OAuth consumers, edit the consumer and set Callback URL to any URL (e.g. https://localhost); client credentials never use it, but Bitbucket requires one."
    } else if d.contains("public") || d.contains("private consumer") {
        "The OAuth consumer is not private. In Workspace settings > OAuth consumers, edit the consumer and tick \"This is a private consumer\"; only private consumers may use the client-credentials grant."
    } else if d.contains("invalid oauth client credentials")
        || d.contains("client credentials missing")
        || d.contains("must be authenticated")
    {
        "The Key or Secret is wrong. Check that CLIENT_ID holds the consumer's Key and CLIENT_SECRET its Secret (Workspace settings > OAuth consumers), with nothing added or cut when they were pasted."
    } else if d.contains("grant type") || code == "unsupported_grant_type" {
        "The endpoint does not accept the client-credentials grant. Check TOKEN_URL; Bitbucket's is https://bitbucket.org/site/oauth2/access_token."
    } else {
        match code {
            "unauthorized_client" | "invalid_client" => {
                "The consumer's credentials or setup were rejected. Check CLIENT_ID and CLIENT_SECRET, that the consumer is marked private, and that it has a callback URL."
            }
            "invalid_scope" => {
                "The consumer is not allowed the requested scopes. Check the consumer's permissions in Workspace settings > OAuth consumers."
            }
            _ => {
                "See Bitbucket's message above; the README's Prerequisites list how the consumer must be set up."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn parses_2026_and_older_forms() {
        let t = parse_success(br#"{"access_token":"a.b-c_d","token_type":"bearer","expires_in":7200,"scope":"repository pullrequest"}"#, now()).unwrap();
        assert_eq!(
            (t.len, t.expires_in, t.scopes.clone()),
            (
                7,
                Some(7200),
                vec!["repository".to_string(), "pullrequest".to_string()]
            )
        );
        assert_eq!(t.expires_at, Some(now() + Duration::from_secs(7200)));
        let t = parse_success(br#"{"access_token":"tok==","token_type":"Bearer","expires_in":"3600","scopes":"account","refresh_token":"r"}"#, now()).unwrap();
        assert_eq!(
            (t.expires_in, t.scopes),
            (Some(3600), vec!["account".to_string()])
        );
        let t = parse_success(br#"{"access_token":"tok","token_type":"BEARER"}"#, now()).unwrap();
        assert_eq!(
            (t.expires_in, t.expires_at, t.scopes.len()),
            (None, None, 0)
        );
    }

    #[test]
    fn refuses_malformed_responses() {
        for (body, why) in [
            (&b"<html>OpenID transaction in progress</html>"[..], "HTML"),
            (b"not json", "not JSON"),
            (b"[]", "not a JSON object"),
            (br#"{"token_type":"bearer"}"#, "no access_token"),
            (
                br#"{"access_token":5,"token_type":"bearer"}"#,
                "not a string",
            ),
            (br#"{"access_token":"t","token_type":"mac"}"#, "not bearer"),
            (br#"{"access_token":"t"}"#, "no token_type"),
            (
                br#"{"access_token":"t","token_type":"bearer","expires_in":0}"#,
                "is 0",
            ),
            (
                br#"{"access_token":"t","token_type":"bearer","expires_in":-5}"#,
                "not a positive",
            ),
            (
                br#"{"access_token":"t","token_type":"bearer","expires_in":72.5}"#,
                "not a positive",
            ),
            (
                br#"{"access_token":"t","token_type":"bearer","expires_in":"soon"}"#,
                "not a positive",
            ),
            (
                br#"{"access_token":"t","token_type":"bearer","expires_in":99999999999}"#,
                "more than a year",
            ),
            (
                br#"{"access_token":"t","token_type":"bearer","scope":["a"]}"#,
                "scope is not a string",
            ),
        ] {
            let err = parse_success(body, now())
                .err()
                .unwrap_or_else(|| panic!("accepted {}", String::from_utf8_lossy(body)));
            assert!(err.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn tokens_must_be_b64token() {
        for ok in [
            "abc",
            "a.b.c",
            "A-Z_a~z+/0",
            "x==",
            "eyJhbGciOi.eyJzdWIi.sig",
        ] {
            assert!(check_token(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "~x", "===", "a b", "a\nb", "a\"b", "a$b", "a'b", "a\0b", "a<<EOF", "a=b", "tök",
        ] {
            assert!(check_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hints_follow_wording_before_code() {
        assert!(
            hint("unauthorized_client", "Invalid OAuth client credentials")
                .contains("Key or Secret is wrong")
        );
        assert!(
            hint(
                "invalid_request",
                "No callback uri defined for the OAuth client."
            )
            .contains("callback URL")
        );
        assert!(hint("unauthorized_client", "Cannot use client_credentials with a consumer marked as \"public\". Calls for auto generated consumers should use urn:bitbucket:oauth2:jwt instead.").contains("private consumer"));
        assert!(hint("invalid_grant", "Unsupported grant type: None").contains("TOKEN_URL"));
        assert!(hint("unauthorized_client", "").contains("CLIENT_ID and CLIENT_SECRET"));
        assert!(hint("server_error", "x").contains("README"));
    }

    #[test]
    fn oauth_errors_are_quoted_safely() {
        let (code, desc) =
            parse_oauth_error(b"{\"error\":\"x\\ny\",\"error_description\":\"\\u001b[31mred\"}")
                .unwrap();
        assert_eq!(
            (code.as_str(), desc.as_deref()),
            ("x\\ny", Some("\\u{1b}[31mred"))
        );
        assert!(parse_oauth_error(b"{\"message\":\"no\"}").is_none());
    }
}
