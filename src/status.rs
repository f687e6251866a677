//! Reporting on a token without handing it on: `check` fetches and validates one and writes
//! nothing; `status` reads OUTPUT_FILE and says whether its token is still good.

use std::time::SystemTime;

use crate::acquire;
use crate::config::Config;
use crate::error::Error;
use crate::http::Http;
use crate::output;
use crate::report::Reporter;
use crate::store::{self, NotReusable};

/// `check`: the configuration, the token request and validation; nothing is written.
pub async fn check(config: &Config, http: &Http, log: &mut Reporter) -> Result<(), Error> {
    let acquired = acquire::acquire(config, http, log).await?;
    let token = &acquired.token;
    let until = token
        .expires_at
        .map(|at| format!("valid until {}", output::format_time(at)))
        .unwrap_or_else(|| "expiry unknown".into());
    log.success(format!(
        "The consumer works: a {}-character token, {until}; scopes: {}; {}. Nothing was written.",
        token.len,
        acquire::scope_list(token),
        acquired.validated
    ));
    Ok(())
}

/// `status`: 0 when the token in OUTPUT_FILE has at least MIN_VALIDITY left, 4 when it is
/// expired or below that, 2 when there is no file or it is not one of ours.
pub fn status(config: &Config, log: &mut Reporter) -> Result<(), Error> {
    let Some(path) = &config.output_file else {
        return Err(Error::Config(vec![
            "OUTPUT_FILE is not set: set it to the file to inspect.".into(),
        ]));
    };
    let stored = match store::read(path, &config.token_variable) {
        Ok(stored) => stored,
        Err(NotReusable::Missing) => {
            return Err(Error::Config(vec![format!(
                "{} does not exist: run the pipe first, or set OUTPUT_FILE.",
                path.display()
            )]));
        }
        Err(NotReusable::NotOurs(why)) => {
            return Err(Error::Config(vec![format!(
                "{} holds no token written by oauth-token-pipe for {}: {why}.",
                path.display(),
                config.token_variable
            )]));
        }
    };
    if !config.client_id.is_empty() && stored.client != store::fingerprint(&config.client_id) {
        return Err(Error::Config(vec![format!(
            "The token in {} was issued to another OAuth consumer than CLIENT_ID.",
            path.display()
        )]));
    }
    let left = stored.remaining(SystemTime::now());
    let until = stored
        .token
        .expires_at
        .map(output::format_time)
        .unwrap_or_default();
    let scopes = acquire::scope_list(&stored.token);
    if left.is_zero() {
        return Err(Error::Validation(format!(
            "The token in {} expired at {until}: run the pipe again.",
            path.display()
        )));
    }
    if left < config.min_validity {
        return Err(Error::Validation(format!(
            "The token in {} expires in {} s (at {until}), less than MIN_VALIDITY ({} s): run the pipe again.",
            path.display(),
            left.as_secs(),
            config.min_validity.as_secs()
        )));
    }
    log.success(format!(
        "The token in {} ({} characters) is valid for {} s more, until {until}; scopes: {scopes}.",
        path.display(),
        stored.token.len,
        left.as_secs()
    ));
    Ok(())
}
