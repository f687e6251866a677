//! DEBUG's view of requests and responses: everything but the credentials. Secret headers
//! show only their scheme, secret form fields only their name, and a successful response
//! that may carry tokens shows each token field as its length.

use reqwest::header::{self, HeaderValue};

use super::{Body, Call, Response};
use crate::report::{Reporter, quote_remote};

/// How much of a response body DEBUG shows.
const DEBUG_BODY_CHARS: usize = 2000;

/// The request line, headers and body of one attempt.
pub(super) fn log_request(request: &reqwest::Request, call: &Call<'_>, log: &mut Reporter) {
    log.debug(|| {
        let mut lines = vec![
            format!("> {} {}", request.method(), request.url()),
            format!("> user-agent: {}", super::client::USER_AGENT),
        ];
        for (name, value) in request.headers() {
            lines.push(format!("> {name}: {}", shown_header(name, value)));
        }
        match call.body {
            Body::Empty => {}
            Body::Form(fields) => {
                let shown: Vec<String> = fields
                    .iter()
                    .map(|f| {
                        if f.public {
                            use secrecy::ExposeSecret;
                            format!("{}={}", f.name, quote_remote(f.value.expose_secret(), 300))
                        } else {
                            format!("{}=<redacted>", f.name)
                        }
                    })
                    .collect();
                lines.push(format!("> {}", shown.join("&")));
            }
            Body::Json(json) => lines.push(format!(
                "> {}",
                quote_remote(&json.to_string(), DEBUG_BODY_CHARS)
            )),
        }
        lines.join("\n")
    });
}

/// The status, headers and body of a response.
pub(super) fn log_response(response: &Response, body_has_tokens: bool, log: &mut Reporter) {
    log.debug(|| {
        let mut lines = vec![format!("< HTTP {}", response.status)];
        for (name, value) in &response.headers {
            lines.push(format!("< {name}: {}", shown_header(name, value)));
        }
        lines.push(format!(
            "< {}",
            shown_body(
                &response.body,
                body_has_tokens && response.status.is_success()
            )
        ));
        lines.join("\n")
    });
}

fn shown_header(name: &header::HeaderName, value: &HeaderValue) -> String {
    if value.is_sensitive()
        || name == header::AUTHORIZATION
        || name == header::PROXY_AUTHORIZATION
        || name == header::SET_COOKIE
        || name == header::COOKIE
    {
        let scheme = value
            .to_str()
            .ok()
            .and_then(|v| v.split(' ').next())
            .filter(|s| matches!(*s, "Basic" | "Bearer"));
        match scheme {
            Some(scheme) => format!("{scheme} <redacted>"),
            None => "<redacted>".into(),
        }
    } else {
        quote_remote(&String::from_utf8_lossy(value.as_bytes()), 500)
    }
}

/// A body for DEBUG. In a successful token response every token-bearing JSON field is
/// replaced by its length; a non-JSON success body from the token endpoint is not shown at
/// all, since it could carry a token in a form we do not parse.
fn shown_body(body: &[u8], has_tokens: bool) -> String {
    if body.is_empty() {
        return "(empty body)".into();
    }
    if !has_tokens {
        return quote_remote(&String::from_utf8_lossy(body), DEBUG_BODY_CHARS);
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut json) => {
            redact_json(&mut json);
            quote_remote(&json.to_string(), DEBUG_BODY_CHARS)
        }
        Err(_) => format!(
            "({} bytes, not JSON; not shown because it may contain a token)",
            body.len()
        ),
    }
}

/// Fields that carry a credential in any provider's answer (OAuth 2.0 token responses,
/// GitHub's `token`, the identity-token endpoint's `value`, RFC 8693's `issued_token`).
const TOKEN_FIELDS: &[&str] = &[
    "access_token",
    // Google's generateAccessToken answers in camelCase; DEBUG showed the impersonated token
    // whole, before its mask (found by tests/cases/federation.rs).
    "accessToken",
    "refresh_token",
    "id_token",
    "token",
    "value",
    "client_secret",
    "client_assertion",
    "assertion",
    "subject_token",
    "private_key",
];

/// Registers every string in a token-bearing field of `body` as a secret.
pub(super) fn mask_tokens(body: &[u8], log: &mut Reporter) {
    fn walk(value: &serde_json::Value, log: &mut Reporter) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match v {
                        serde_json::Value::String(s) if TOKEN_FIELDS.contains(&key.as_str()) => {
                            log.mask(s)
                        }
                        _ => walk(v, log),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, log)),
            _ => {}
        }
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        walk(&json, log);
    }
}

fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if TOKEN_FIELDS.contains(&key.as_str()) {
                    let len = v.as_str().map_or_else(|| v.to_string().len(), str::len);
                    *v = serde_json::Value::String(format!("<redacted: {len} characters>"));
                } else {
                    redact_json(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_fields_are_redacted_in_debug_bodies() {
        let body = br#"{"access_token":"SECRET-TOKEN","nested":{"refresh_token":"R"},"scope":"repository"}"#;
        let shown = shown_body(body, true);
        assert!(
            !shown.contains("SECRET-TOKEN")
                && shown.contains("<redacted: 12 characters>")
                && shown.contains("repository"),
            "{shown}"
        );
        assert!(shown_body(b"access_token=SECRET", true).starts_with("(19 bytes, not JSON"));
        assert_eq!(shown_body(b"Rate limit", false), "Rate limit");
    }
}
