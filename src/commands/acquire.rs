//! Getting a token that works: reuse a stored one for the same configuration when enough
//! of its life is left, otherwise fetch a new one; then check its scopes and validate it.
//!
//! Every subcommand that needs a token (the pipe, `exec`, `git-credential`, `check`) goes
//! through [`acquire`], so reuse, the scope check and validation behave the same everywhere
//! and for every provider.

use std::path::Path;

use secrecy::ExposeSecret;

use crate::config::Config;
use crate::error::Error;
use crate::http::Http;
use crate::provider::Fresh;
use crate::report::Reporter;
use crate::store;
use crate::token::{Expiry, Token, Validated};

/// A token ready to hand on.
pub struct Acquired {
    /// The token.
    pub token: Token,
    /// Whether it came from a file instead of the provider.
    pub reused: bool,
    /// What validation did.
    pub validated: Validated,
    /// The reuse fingerprint to record with it.
    pub client: String,
}

/// Reuses the token in `stored_at` (when REUSE allows and it fits `key`) or fetches one,
/// then checks scopes and validates it.
pub async fn acquire(
    config: &Config,
    key: &str,
    stored_at: Option<&Path>,
    http: &Http,
    log: &mut Reporter,
) -> Result<Acquired, Error> {
    let client = store::fingerprint(key);
    // The validation host's connection opens while the token is requested (issue: fewest
    // round trips); unused, it is closed without a request.
    if let Some(url) = config.provider.prewarm() {
        http.prewarm(&url);
    }
    if let Some(path) = stored_at.filter(|_| config.store.reuse) {
        if let Some(reused) = try_reuse(config, path, key, http, log).await? {
            return Ok(reused);
        }
    }
    log.info(config.provider.describe_request());
    let token = config.provider.fetch(http, log).await?;
    mask(config, &token, log);
    if token.expiry == Expiry::Unknown {
        log.warn("The token response has no expires_in, so the expiry time is unknown; no _EXPIRES_AT line will be written.");
    }
    log.info(format!(
        "Received a bearer token ({} characters); {}; scopes: {}.",
        token.len,
        token.expiry,
        token.scope_list()
    ));
    let mut token = token;
    let validated = check(config, &mut token, Fresh::Issued, http, log).await?;
    Ok(Acquired {
        token,
        reused: false,
        validated,
        client,
    })
}

/// A stored token that still passes; `None` means fetch.
async fn try_reuse(
    config: &Config,
    path: &Path,
    key: &str,
    http: &Http,
    log: &mut Reporter,
) -> Result<Option<Acquired>, Error> {
    let stored = match store::reusable(
        path,
        &config.output.token_variable,
        key,
        config.store.min_validity,
    ) {
        Ok(stored) => stored,
        Err(why) => {
            if path.exists() {
                log.info(format!("Not reusing: {why}."));
            }
            return Ok(None);
        }
    };
    let mut token = stored.token;
    mask(config, &token, log);
    log.info(format!(
        "Reusing the token in {} (issued for this configuration; {}); no token request.",
        path.display(),
        token.expiry
    ));
    match check(config, &mut token, Fresh::Reused, http, log).await {
        Ok(validated) => Ok(Some(Acquired {
            token,
            reused: true,
            validated,
            client: stored.client,
        })),
        // Revoked, or the client changed: a new token may well work.
        Err(Error::Validation(why)) => {
            log.info(format!(
                "The stored token did not pass ({}); fetching a new one.",
                why.lines().next().unwrap_or_default()
            ));
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// The token, and the base64 of `username:token` that git's Basic header carries.
fn mask(config: &Config, token: &Token, log: &mut Reporter) {
    log.mask(token.secret.expose_secret());
    log.mask_basic(
        &config.provider.git().username,
        token.secret.expose_secret(),
    );
}

/// The scope check and the validation call; when validation shows the scopes the token
/// response did not name, the token takes them and they are checked again.
async fn check(
    config: &Config,
    token: &mut Token,
    fresh: Fresh,
    http: &Http,
    log: &mut Reporter,
) -> Result<Validated, Error> {
    let required = config.provider.check_scopes(token)?;
    if !required.is_empty() {
        log.info(format!(
            "The token carries every required scope ({}).",
            required.join(", ")
        ));
    }
    let Some(target) = config.provider.validation() else {
        log.info("VALIDATE is false: the token was not tested with an API call.");
        return Ok(Validated::Skipped);
    };
    log.info(format!("Validating the token: {target}"));
    let validated = config.provider.validate(token, fresh, http, log).await?;
    if let Validated::Called {
        what,
        status,
        scopes,
    } = &validated
    {
        let status = reqwest::StatusCode::from_u16(*status)
            .map_or_else(|_| status.to_string(), |s| s.to_string());
        log.info(format!("The token works: {what} answered HTTP {status}."));
        if let Some(scopes) = scopes {
            token.scopes = scopes.clone();
            log.info(format!(
                "Validation shows the granted scopes: {}.",
                token.scope_list()
            ));
            config.provider.check_scopes(token)?;
        }
    }
    Ok(validated)
}
