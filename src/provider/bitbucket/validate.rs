//! Proves a Bitbucket token works before anyone relies on it: one real API call.
//!
//! The default call is `GET /2.0/repositories/{workspace}/{slug}`, Bitbucket's own example
//! for bearer tokens (https://support.atlassian.com/bitbucket-cloud/docs/using-access-tokens/)
//! and the cheapest read the pipeline's repository allows. `/2.0/workspaces` is never used:
//! Bitbucket removed it in April 2026 (CHANGE-2770, it answers 410). A 401 right after issue
//! can be replication lag (GitHub's app tokens show the same; octokit/auth-app.js#168), so a
//! 401 is retried twice about a second apart, within the deadline and apart from RETRIES.

use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::error::Error;
use crate::http::{Auth, Call, Http, Response};
use crate::provider::{Fresh, lag};
use crate::report::{Reporter, quote_remote};
use crate::token::{Token, Validated};

/// The waits before the extra attempts after a 401 on a new token (replication lag).
const LAG_WAITS: [Duration; 2] = [Duration::from_secs(1); 2];

/// What the token is checked against after it is issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// `GET {API_URL}/repositories/{workspace}/{slug}`.
    Repository {
        /// `workspace/slug`.
        full_name: String,
        /// The URL built from API_URL and the name.
        url: Url,
    },
    /// `GET VALIDATE_URL`.
    Url(Url),
}

impl Validation {
    /// The URL the validation call goes to.
    pub fn url(&self) -> &Url {
        match self {
            Validation::Repository { url, .. } | Validation::Url(url) => url,
        }
    }

    fn what(&self) -> String {
        match self {
            Validation::Repository { full_name, .. } => format!("read repository {full_name}"),
            Validation::Url(url) => format!("GET {url}"),
        }
    }
}

/// Makes the validation call and interprets the answer.
pub async fn call(
    target: &Validation,
    token: &Token,
    fresh: Fresh,
    http: &Http,
    log: &mut Reporter,
) -> Result<Validated, Error> {
    let variable = match target {
        Validation::Repository { .. } => "API_URL",
        Validation::Url(_) => "VALIDATE_URL",
    };
    let call = Call::get(
        "validation call",
        target.url(),
        variable,
        Auth::Bearer(&token.secret),
    );
    let response = lag::send(&call, fresh, &LAG_WAITS, "Bitbucket", http, log).await?;
    if !response.status.is_success() {
        return Err(rejection(target, &response));
    }
    Ok(Validated::Called {
        what: target.what(),
        status: response.status.as_u16(),
        scopes: None,
    })
}

/// A non-success validation answer, worded with the API's own message and a hint.
fn rejection(target: &Validation, response: &Response) -> Error {
    let status = response.status;
    let said = api_message(&response.body)
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    let hint = match status.as_u16() {
        401 => "Bitbucket rejected the token it had just issued. Check that API_URL belongs to the same Bitbucket as TOKEN_URL; if it does, try again later.".to_owned(),
        403 => {
            let needs = response
                .header("x-accepted-oauth-scopes")
                .map(|s| format!(" The endpoint accepts scope(s): {}.", quote_remote(s, 200)))
                .unwrap_or_default();
            format!("The token lacks a scope or permission this call needs.{needs} Give the OAuth consumer that permission (Workspace settings > OAuth consumers > Edit), or set VALIDATE_URL to something the token may read.")
        }
        404 => match target {
            Validation::Repository { .. } => "The repository does not exist, or the consumer's workspace cannot see it (since May 2026, a consumer owned by a personal workspace sees only that workspace). Check REPOSITORY, or set VALIDATE_URL.".to_owned(),
            Validation::Url(_) => "Nothing is there, or the token may not see it. Check VALIDATE_URL.".to_owned(),
        },
        410 => "Bitbucket has removed this endpoint (e.g. /2.0/workspaces, CHANGE-2770). Set VALIDATE_URL to a supported endpoint, or use REPOSITORY.".to_owned(),
        _ => "Check VALIDATE_URL / REPOSITORY and API_URL.".to_owned(),
    };
    let mut first = match target {
        Validation::Repository { full_name, .. } => format!(
            "The token failed validation: GET {} for repository {full_name} answered HTTP {status}{said}",
            target.url()
        ),
        Validation::Url(url) => {
            format!("The token failed validation: GET {url} answered HTTP {status}{said}")
        }
    };
    if !first.ends_with('.') {
        first.push('.');
    }
    Error::Validation(format!("{first}\n{hint}"))
}

/// Bitbucket's error body: `{"type": "error", "error": {"message": ..., "detail": ...}}`.
pub fn api_message(body: &[u8]) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let error = json.get("error")?;
    let message = error.get("message")?.as_str()?;
    let mut text = quote_remote(message.trim(), 300);
    if let Some(detail) = error
        .get("detail")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
    {
        text.push_str(&format!(" ({})", quote_remote(detail.trim(), 300)));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bitbucket_error_bodies() {
        assert_eq!(
            api_message(br#"{"type": "error", "error": {"message": "Access token expired."}}"#)
                .as_deref(),
            Some("Access token expired.")
        );
        assert_eq!(
            api_message(br#"{"type":"error","error":{"message":"CHANGE-2770 - Functionality has been deprecated","detail":"Please read the changelog entry for more details."}}"#).as_deref(),
            Some("CHANGE-2770 - Functionality has been deprecated (Please read the changelog entry for more details.)")
        );
        assert_eq!(
            api_message(b"Rate limit for this resource has been exceeded"),
            None
        );
    }
}
