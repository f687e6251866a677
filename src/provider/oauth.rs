//! OAuth 2.0 pieces every token endpoint shares: the success response (RFC 6749 §5.1), the
//! error response (§5.2) and the client-authentication encodings (§2.3.1).
//!
//! Each provider keeps what is its own (field fallbacks such as Bitbucket's older `scopes`,
//! its hints, its scope grammar) and calls these for the rest.

use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::report::quote_remote;
use crate::token::{Expiry, check_token};

/// A successful token response, checked.
#[derive(Debug)]
pub struct Issued {
    /// The access token (already checked against the RFC 6750 grammar).
    pub access_token: String,
    /// From `expires_in`.
    pub expiry: Expiry,
    /// The first of the provider's scope fields present, as sent.
    pub scope: Option<String>,
    /// The whole JSON object, for provider-specific fields.
    pub fields: Map<String, Value>,
}

/// Parses a successful token response; `scope_fields` are tried in order. The error says
/// what is wrong without quoting any token-bearing field.
pub fn parse_issued(
    body: &[u8],
    sent_at: SystemTime,
    scope_fields: &[&str],
) -> Result<Issued, String> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        if start.trim_start().starts_with('<') {
            "it is HTML, not JSON".to_owned()
        } else {
            format!("it is not JSON ({e})")
        }
    })?;
    let Value::Object(fields) = json else {
        return Err("it is not a JSON object".into());
    };
    let access_token = match fields.get("access_token") {
        None => return Err("it has no access_token".into()),
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err("access_token is not a string".into()),
    };
    check_token(&access_token)?;
    match fields.get("token_type") {
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
    let expiry = match fields.get("expires_in") {
        None | Some(Value::Null) => Expiry::Unknown,
        Some(value) => Expiry::after(sent_at, parse_seconds(value)?)?,
    };
    let scope = match scope_fields.iter().find_map(|f| fields.get(*f)) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("scope is not a string".into()),
    };
    Ok(Issued {
        access_token,
        expiry,
        scope,
        fields,
    })
}

/// `expires_in` as a number or a numeric string (some servers send `"3600"`).
fn parse_seconds(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("expires_in is {n}, not a positive whole number of seconds")),
        Value::String(s) => s.trim().parse::<u64>().map_err(|_| {
            format!(
                "expires_in is {:?}, not a positive whole number of seconds",
                quote_remote(s, 40)
            )
        }),
        _ => Err("expires_in is neither a number nor a numeric string".into()),
    }
}

/// An OAuth error body (RFC 6749 §5.2), quoted safely for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// `error`.
    pub code: String,
    /// `error_description`, when present.
    pub description: Option<String>,
}

impl OAuthError {
    /// `code: description`, or the code alone.
    pub fn said(&self) -> String {
        match &self.description {
            Some(d) => format!("{}: {d}", self.code),
            None => self.code.clone(),
        }
    }
}

/// `error` and `error_description` from an OAuth error body, quoted safely.
pub fn parse_error(body: &[u8]) -> Option<OAuthError> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let code = json.get("error")?.as_str()?;
    let description = json
        .get("error_description")
        .and_then(Value::as_str)
        .map(|d| quote_remote(d, 300));
    Some(OAuthError {
        code: quote_remote(code, 80),
        description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn parses_success_with_scope_fallbacks() {
        let t = parse_issued(br#"{"access_token":"a.b-c_d","token_type":"bearer","expires_in":7200,"scope":"repository pullrequest"}"#, now(), &["scope", "scopes"]).unwrap();
        assert_eq!(t.expiry, Expiry::At(now() + Duration::from_secs(7200)));
        assert_eq!(t.scope.as_deref(), Some("repository pullrequest"));
        let t = parse_issued(br#"{"access_token":"tok==","token_type":"Bearer","expires_in":"3600","scopes":"account"}"#, now(), &["scope", "scopes"]).unwrap();
        assert_eq!(t.scope.as_deref(), Some("account"));
        let t = parse_issued(
            br#"{"access_token":"tok","token_type":"BEARER"}"#,
            now(),
            &["scope"],
        )
        .unwrap();
        assert_eq!((t.expiry, t.scope), (Expiry::Unknown, None));
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
            let err = parse_issued(body, now(), &["scope"])
                .err()
                .unwrap_or_else(|| panic!("accepted {}", String::from_utf8_lossy(body)));
            assert!(err.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn oauth_errors_are_quoted_safely() {
        let e =
            parse_error(b"{\"error\":\"x\\ny\",\"error_description\":\"\\u001b[31mred\"}").unwrap();
        assert_eq!(
            (e.code.as_str(), e.description.as_deref()),
            ("x\\ny", Some("\\u{1b}[31mred"))
        );
        assert!(parse_error(b"{\"message\":\"no\"}").is_none());
    }
}
