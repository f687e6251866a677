//! Bitbucket Cloud's behaviour, as the fake plays it when no reply is scripted: the token
//! endpoint checks HTTP Basic credentials and the form body and answers with Bitbucket's exact
//! bodies; `/2.0/repositories/{ws}/{slug}` checks the bearer token and the repository.

use std::sync::Mutex;

use base64::Engine;

use super::reply::Reply;
use super::{Request, Setup, State, git, lock};

/// Path of Bitbucket's token endpoint.
pub const TOKEN_PATH: &str = "/site/oauth2/access_token";
/// Bitbucket's answer to wrong credentials (gist ericchiang/6e82e497ec45ea2aedbf).
pub const BAD_CREDENTIALS: &str =
    r#"{"error_description": "Invalid OAuth client credentials", "error": "unauthorized_client"}"#;
/// Bitbucket's answer when no credentials were sent (laravel/socialite#213).
pub const MISSING_CREDENTIALS: &str = r#"{"error_description": "Client credentials missing; this request needs to be authenticated with the OAuth client id and secret.", "error": "unauthorized_client"}"#;
/// Bitbucket's answer to a body without `grant_type` (BCLOUD-16249).
pub const NO_GRANT_TYPE: &str =
    r#"{"error_description": "Unsupported grant type: None", "error": "invalid_grant"}"#;
/// Bitbucket's answer for a consumer without a callback URL (soba#50, composer#5335).
pub const NO_CALLBACK: &str = r#"{"error": "invalid_request", "error_description": "No callback uri defined for the OAuth client."}"#;
/// Bitbucket's message for a public consumer (bitbucket-build-status-notifier-plugin#47); the
/// code is unconfirmed, `unauthorized_client` is the likeliest.
pub const PUBLIC_CONSUMER: &str = r#"{"error": "unauthorized_client", "error_description": "Cannot use client_credentials with a consumer marked as \"public\". Calls for auto generated consumers should use urn:bitbucket:oauth2:jwt instead."}"#;
/// 401 for an expired token (coveralls-public#1541).
pub const EXPIRED: &str = r#"{"type": "error", "error": {"message": "Access token expired."}}"#;
/// 401 for a token the API does not accept (bitbucket-cli#174, 2026).
pub const INVALID_TOKEN: &str = r#"{"type": "error", "error": {"message": "Token is invalid, expired, or not supported for this endpoint."}}"#;
/// 404 for a repository the token cannot see.
pub const NO_REPOSITORY: &str = r#"{"type": "error", "error": {"message": "You may not have access to this repository or it no longer exists in this workspace. If you think this repository exists and you have access, make sure you are authenticated."}}"#;
/// 410 for removed endpoints such as /2.0/workspaces (go-bitbucket#357).
pub const GONE: &str = r#"{"type": "error", "error": {"message": "CHANGE-2770 - Functionality has been deprecated", "detail": "Please read the changelog entry for more details.", "data": {"announcement_url": "https://developer.atlassian.com/cloud/bitbucket/changelog#CHANGE-2770"}}}"#;
/// 403 for a token without the scope the endpoint needs.
pub const FORBIDDEN: &str = r#"{"type": "error", "error": {"message": "Your credentials lack one or more required privilege scopes.", "detail": {"granted": ["pullrequest"], "required": ["repository"]}}}"#;
/// Bitbucket's 429 body: plain text, no Retry-After (SharpBucket#108, bitbucket-branch-source#414).
pub const RATE_LIMITED: &str = "Rate limit for this resource has been exceeded";

/// A token shaped like Bitbucket's 2026 JWTs: ~1,900 characters of base64url.
pub fn jwt_like(seed: &str) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = engine.encode(r#"{"alg":"RS256","typ":"JWT","kid":"bitbucket-oauth"}"#);
    let claims = engine.encode(format!(r#"{{"sub":"{{app-user}}","iss":"https://bitbucket.org","aud":"api.bitbucket.org","seed":"{seed}","pad":"{}"}}"#, "x".repeat(1000)));
    let signature = engine.encode(seed.repeat(512 / seed.len().max(1) + 1).as_bytes());
    format!("{header}.{claims}.{}", &signature[..342])
}

/// Records `request` and answers it: a scripted reply for its endpoint if one is left, else
/// Bitbucket's behaviour. Git's requests run `git http-backend` outside the lock.
pub(super) fn handle(state: &Mutex<State>, request: &Request) -> Reply {
    let git = {
        let mut state = lock(state);
        state.requests.push(request.clone());
        if request.path == TOKEN_PATH {
            if let Some(reply) = state.token_replies.next() {
                return reply;
            }
            return token_endpoint(&state.setup, request);
        }
        if request.path.starts_with("/2.0/") {
            if let Some(reply) = state.api_replies.next() {
                return reply;
            }
            return api(&state.setup, request);
        }
        match &state.setup.git_root {
            Some(root) if request.path.starts_with("/git/") => {
                Some((root.clone(), state.setup.token.clone()))
            }
            _ => None,
        }
    };
    match git {
        Some((root, token)) => git::http_backend(&root, &token, request),
        None => Reply::json(
            404,
            r#"{"type": "error", "error": {"message": "Resource not found", "detail": "There is no API hosted at this URL."}}"#,
        ),
    }
}

fn token_endpoint(setup: &Setup, request: &Request) -> Reply {
    if request.method != "POST" {
        return Reply::json(
            405,
            r#"{"error": "invalid_request", "error_description": "Method not allowed"}"#,
        );
    }
    let Some(basic) = request
        .header("authorization")
        .and_then(|a| a.strip_prefix("Basic "))
    else {
        return Reply::json(400, MISSING_CREDENTIALS);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic)
        .ok()
        .and_then(|d| String::from_utf8(d).ok());
    if decoded.as_deref() != Some(&format!("{}:{}", setup.client_id, setup.client_secret)) {
        return Reply::json(400, BAD_CREDENTIALS);
    }
    let form = request
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !form || request.body != b"grant_type=client_credentials" {
        return Reply::json(400, NO_GRANT_TYPE);
    }
    let expires = setup
        .expires_in
        .as_ref()
        .map(|e| format!(", \"expires_in\": {e}"))
        .unwrap_or_default();
    Reply::json(
        200,
        &format!(
            r#"{{"access_token": "{}", "{}": "{}"{expires}, "token_type": "bearer", "state": "client_credentials"}}"#,
            setup.token, setup.scope_field, setup.scopes
        ),
    )
}

fn api(setup: &Setup, request: &Request) -> Reply {
    let bearer = request
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "));
    if bearer != Some(setup.token.as_str()) {
        return Reply::json(401, INVALID_TOKEN);
    }
    if request.path.split('?').next() == Some("/2.0/workspaces") {
        return Reply::json(410, GONE);
    }
    let path = request.path.split('?').next().unwrap_or_default();
    let Some(name) = path.strip_prefix("/2.0/repositories/") else {
        return Reply::json(
            404,
            r#"{"type": "error", "error": {"message": "Resource not found"}}"#,
        );
    };
    if !setup.repositories.iter().any(|r| r == name) {
        return Reply::json(404, NO_REPOSITORY);
    }
    Reply::json(
        200,
        &format!(
            r#"{{"type": "repository", "full_name": "{name}", "is_private": true, "scm": "git"}}"#
        ),
    )
    .header("X-OAuth-Scopes", &setup.scopes.replace(' ', ", "))
    .header("X-Accepted-OAuth-Scopes", "repository")
}
