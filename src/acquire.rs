//! Getting a token that works: reuse a stored one for the same consumer when enough of its
//! life is left, otherwise fetch a new one; then check its scopes and validate it.
//!
//! Every subcommand that needs a token (the pipe, `exec`, `git-credential`, `check`) goes
//! through [`acquire`], so reuse, the scope check and validation behave the same everywhere.

use secrecy::ExposeSecret;

use crate::config::{Config, Validation};
use crate::error::Error;
use crate::http::Http;
use crate::output;
use crate::report::Reporter;
use crate::store;
use crate::token::{self, Token};
use crate::validate::{self, Fresh};

/// A token ready to hand on.
pub struct Acquired {
    /// The token.
    pub token: Token,
    /// Whether it came from OUTPUT_FILE (or the credential cache) instead of Bitbucket.
    pub reused: bool,
    /// What validation did, for the log and the summary.
    pub validated: String,
}

/// Reuses or fetches a token, then checks scopes and validates it.
pub async fn acquire(config: &Config, http: &Http, log: &mut Reporter) -> Result<Acquired, Error> {
    if let Some(reused) = try_reuse(config, http, log).await? {
        return Ok(reused);
    }
    log.info(format!(
        "Requesting an access token from {} (client credentials grant)...",
        config.token_url
    ));
    let token = token::request(config, http, log).await?;
    log.mask(token.secret.expose_secret());
    let expiry = match (token.expires_in, token.expires_at) {
        (Some(seconds), Some(at)) => {
            format!("expires in {seconds} s, at {}", output::format_time(at))
        }
        _ => {
            log.warn("The token response has no expires_in, so the expiry time is unknown; no _EXPIRES_AT line will be written.");
            "expiry unknown".to_owned()
        }
    };
    log.info(format!(
        "Received a bearer token ({} characters); {expiry}; scopes: {}.",
        token.len,
        scope_list(&token)
    ));
    let validated = check(config, &token, Fresh::Issued, http, log).await?;
    Ok(Acquired {
        token,
        reused: false,
        validated,
    })
}

/// A stored token when REUSE allows it and one is good for this consumer; `None` means fetch.
async fn try_reuse(
    config: &Config,
    http: &Http,
    log: &mut Reporter,
) -> Result<Option<Acquired>, Error> {
    let Some(path) = config.output_file.as_ref().filter(|_| config.reuse) else {
        return Ok(None);
    };
    let stored = match store::reusable(
        path,
        &config.token_variable,
        &config.client_id,
        config.min_validity,
    ) {
        Ok(stored) => stored,
        Err(why) => {
            if path.exists() {
                log.info(format!("Not reusing: {why}."));
            }
            return Ok(None);
        }
    };
    let token = stored.token;
    log.mask(token.secret.expose_secret());
    let until = token
        .expires_at
        .map(output::format_time)
        .unwrap_or_default();
    log.info(format!(
        "Reusing the token in {} (issued to this consumer, {} s left, until {until}); no token request.",
        path.display(),
        token.expires_in.unwrap_or(0)
    ));
    match check(config, &token, Fresh::Reused, http, log).await {
        Ok(validated) => Ok(Some(Acquired {
            token,
            reused: true,
            validated,
        })),
        // Revoked, or the consumer changed: a new token may well work.
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

/// The scope check and the validation call.
async fn check(
    config: &Config,
    token: &Token,
    fresh: Fresh,
    http: &Http,
    log: &mut Reporter,
) -> Result<String, Error> {
    validate::check_scopes(token, &config.required_scopes)?;
    if !config.required_scopes.is_empty() {
        log.info(format!(
            "The token carries every required scope ({}).",
            config.required_scopes.join(", ")
        ));
    }
    let Some(target) = &config.validation else {
        log.info("VALIDATE is false: the token was not tested with an API call.");
        return Ok("not validated (VALIDATE=false)".to_owned());
    };
    log.info(format!("Validating the token: GET {}", target.url()));
    let outcome = validate::call(target, token, fresh, http, log).await?;
    let what = match target {
        Validation::Repository { full_name, .. } => format!("read repository {full_name}"),
        Validation::Url(url) => format!("GET {url}"),
    };
    log.info(format!(
        "The token works: {what} answered HTTP {}.",
        outcome.status
    ));
    Ok(format!("validated ({what})"))
}

/// The token's scopes for the log.
pub fn scope_list(token: &Token) -> String {
    if token.scopes.is_empty() {
        "none listed".to_owned()
    } else {
        token.scopes.join(", ")
    }
}
