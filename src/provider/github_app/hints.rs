//! What to do about GitHub's refusals, chosen by the message GitHub sends (its bodies are
//! `{"message": …, "documentation_url": …}`, and the message is what tells causes apart).
//! Exact wordings and where they were seen: ../shared/research/providers.md §1.1–1.2.

use reqwest::StatusCode;
use serde_json::Value;

use crate::error::Error;
use crate::http::Response;
use crate::report::quote_remote;

use super::GitHubApp;

/// GitHub's `message`, quoted safely.
pub fn message(body: &[u8]) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    Some(quote_remote(json.get("message")?.as_str()?.trim(), 300))
}

/// Whether a 401 says the JWT's `iat`/`exp` are off: the local clock differs from GitHub's
/// (`'Expiration time' claim ('exp') is too far in the future`, `'Issued at' claim ('iat')
/// must be an Integer…`, `'Expiration time' claim ('exp') must be a numeric value…`).
pub fn is_clock_error(message: &str) -> bool {
    message.contains("'Expiration time' claim ('exp')")
        || message.contains("'Issued at' claim ('iat')")
}

/// When `response` is one of GitHub's rate-limit refusals, what to do about it. GitHub
/// answers both limits with 403 or 429: the primary one with `x-ratelimit-remaining: 0`
/// ("API rate limit exceeded for installation ID …"), a secondary one with a message that
/// says so ("You have exceeded a secondary rate limit…") and perhaps `retry-after`; the wait
/// is `retry-after` seconds, else until `x-ratelimit-reset` (epoch seconds), else at least a
/// minute (docs.github.com, "Troubleshooting the REST API" › Rate limit errors;
/// KnpLabs/php-github-api#1070 for both bodies).
pub fn rate_limit(response: &Response) -> Option<String> {
    if !matches!(
        response.status,
        StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    ) {
        return None;
    }
    let said = message(&response.body).unwrap_or_default();
    let primary = response.header("x-ratelimit-remaining") == Some("0");
    if !primary && !said.to_ascii_lowercase().contains("rate limit") {
        return None;
    }
    let seconds = |name: &str| {
        response
            .header(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let wait = match (seconds("retry-after"), seconds("x-ratelimit-reset")) {
        (Some(after), _) => format!("GitHub asks to wait {after} s"),
        (None, Some(reset)) if primary => {
            format!("it resets in {} s", reset.saturating_sub(now))
        }
        _ => "wait at least a minute".to_owned(),
    };
    let which = if primary {
        "rate limit"
    } else {
        "secondary rate limit"
    };
    Some(format!(
        "GitHub's {which} for this app is used up ({wait}): run the job again later, or make fewer calls (REUSE keeps one token across steps; parallel jobs minting at once trip the secondary limit)."
    ))
}

/// The call the app's JWT was refused on.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// `GET /repos/{owner}/{repo}/installation`.
    RepositoryLookup(&'a str, &'a str),
    /// `GET /users/{owner}/installation`.
    OwnerLookup(&'a str),
    /// `POST /app/installations/{id}/access_tokens`.
    Mint(u64),
}

/// The hint that the app's key and ID do not match, for "could not be decoded" and any
/// other refusal of the JWT itself (CGAT#153: the wrong `iss` for the key, or a public key).
const KEY_HINT: &str = "GitHub could not verify the app's JWT. Check that PRIVATE_KEY is a private key of the app APP_ID names (each app has its own keys, and a key deleted on the app's settings page stops working) and that APP_ID is that app's Client ID (Iv23…) or numeric App ID — not an installation ID, the app's name or its slug. Older GHES versions (3.13 and before) accept only the numeric App ID.";

/// An error for a refusal of a call made with the app's JWT. `corrected` is the clock
/// offset already applied, when one was.
pub fn refused(
    app: &GitHubApp,
    step: Step<'_>,
    response: &Response,
    corrected: Option<i64>,
) -> Error {
    let status = response.status;
    let said = message(&response.body).unwrap_or_else(|| response.described_body(200));
    let web = format!("https://{}", app.web_host());
    let what = match step {
        Step::RepositoryLookup(o, r) => format!("The installation lookup for {o}/{r}"),
        Step::OwnerLookup(o) => format!("The installation lookup for {o}"),
        Step::Mint(id) => format!("The token request for installation {id}"),
    };
    let head = format!("{what} was refused (HTTP {status}: {said}).");
    let lower = said.to_ascii_lowercase();
    let hint = match (status, step) {
        (StatusCode::UNAUTHORIZED, _) if is_clock_error(&said) => match corrected {
            Some(offset) => format!("GitHub still refuses the JWT's times after correcting this machine's clock by {offset} s from GitHub's Date header: fix the runner's clock (NTP) and try again."),
            None => "GitHub says the JWT's times are wrong, and its answer had no usable Date header to correct them with: fix the runner's clock (NTP).".to_owned(),
        },
        (StatusCode::UNAUTHORIZED, _) => KEY_HINT.to_owned(),
        (StatusCode::NOT_FOUND, Step::RepositoryLookup(o, r)) => format!("The app is not installed on {o}/{r}, or its installation cannot reach that repository. Install it, or add the repository to its access: {web}/organizations/{o}/settings/installations (for a user account, {web}/settings/installations); or check OWNER and REPOSITORIES (the first repository listed picks the installation)."),
        (StatusCode::NOT_FOUND, Step::OwnerLookup(o)) => format!("The app is not installed on the account {o}. Install it from the app's public page ({web}/apps/<app-slug>), or in {web}/organizations/{o}/settings/installations (for a user account, {web}/settings/installations); or check OWNER."),
        (StatusCode::NOT_FOUND, Step::Mint(id)) => format!("This app has no installation {id}: check INSTALLATION_ID (the number at the end of the installation's settings URL, …/settings/installations/{id}), or leave it unset so the installation is looked up."),
        (StatusCode::UNPROCESSABLE_ENTITY, _) if lower.contains("not accessible to the parent installation") || lower.contains("repository") && lower.contains("not exist") => {
            let listed = if app.repositories.is_empty() { "the repositories".to_owned() } else { app.repositories.join(", ") };
            format!("At least one of {listed} does not exist or is not in the installation's repository access: check the names in REPOSITORIES, or add the repositories to the installation ({web}/settings/installations, or the organisation's settings > GitHub Apps > Configure).")
        }
        (StatusCode::UNPROCESSABLE_ENTITY, _) if lower.contains("permissions requested are not granted") => {
            let asked: Vec<String> = app.permissions.iter().map(|(p, l)| format!("{p}:{l}")).collect();
            format!("PERMISSIONS ({}) asks for more than this installation grants the app: lower PERMISSIONS, or add the permissions in the app's settings (Permissions & events) and have the account's owner accept them on the installation.", asked.join(","))
        }
        (StatusCode::UNPROCESSABLE_ENTITY, _) => "GitHub refused the request's repositories or permissions: check REPOSITORIES (at most 500, names only) and PERMISSIONS (each at most the app's grant).".to_owned(),
        _ if let Some(what) = rate_limit(response) => return Error::provider(format!("{head} {what}")),
        (StatusCode::FORBIDDEN, _) => "GitHub forbids this for the app: the installation may be suspended, or the account's IP allow list may not include this runner. Check the installation in the account's settings > GitHub Apps.".to_owned(),
        _ => return Error::provider(format!("{head} Check that GITHUB_API_URL is GitHub's REST API (https://api.github.com, or https://HOST/api/v3 on GHES).")),
    };
    Error::Credentials(format!("{head}\n{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &str)], message: &str) -> Response {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: serde_json::json!({"message": message})
                .to_string()
                .into_bytes(),
        }
    }

    #[test]
    fn both_rate_limits_are_recognised_with_their_waits() {
        let primary = answer(
            403,
            &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")],
            "API rate limit exceeded for installation ID 31337.",
        );
        let text = rate_limit(&primary).unwrap();
        assert!(
            text.contains("GitHub's rate limit") && text.contains("it resets in 0 s"),
            "{text}"
        );
        let secondary = answer(
            403,
            &[("x-ratelimit-remaining", "14"), ("retry-after", "60")],
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        );
        let text = rate_limit(&secondary).unwrap();
        assert!(
            text.contains("secondary rate limit") && text.contains("wait 60 s"),
            "{text}"
        );
        let plain = answer(403, &[], "You have exceeded a secondary rate limit.");
        assert!(rate_limit(&plain).unwrap().contains("at least a minute"));
        assert!(rate_limit(&answer(403, &[], "Resource not accessible by integration")).is_none());
        assert!(
            rate_limit(&answer(
                401,
                &[("x-ratelimit-remaining", "0")],
                "Bad credentials"
            ))
            .is_none()
        );
    }

    #[test]
    fn clock_errors_are_recognised_by_githubs_words() {
        for m in [
            "'Expiration time' claim ('exp') is too far in the future",
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        ] {
            assert!(is_clock_error(m), "{m}");
        }
        assert!(!is_clock_error("A JSON web token could not be decoded"));
        assert_eq!(
            message(br#"{"message":"Bad\ncredentials","documentation_url":"x"}"#).as_deref(),
            Some("Bad\\ncredentials")
        );
    }
}
