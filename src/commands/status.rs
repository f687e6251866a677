//! Reporting on a token without handing it on: `check` fetches and validates one and writes
//! nothing; `status` reads OUTPUT_FILE and says whether its token is still good.

use std::time::SystemTime;

use crate::commands::{acquire, pipe};
use crate::config::Config;
use crate::error::Error;
use crate::http::Http;
use crate::report::Reporter;
use crate::store::{self, NotReusable};
use crate::token::format_time;

/// `check`: the configuration, the token request and validation; nothing is written.
pub async fn check(config: &Config, http: &Http, log: &mut Reporter) -> Result<(), Error> {
    let acquired = acquire::acquire(config, &pipe::reuse_key(config), None, http, log).await?;
    let token = &acquired.token;
    let until = token
        .expiry
        .at()
        .map(|at| format!("valid until {}", format_time(at)))
        .unwrap_or_else(|| "expiry unknown".into());
    log.success(format!(
        "The client works: a {}-character token, {until}; scopes: {}; {}. Nothing was written.",
        token.len,
        token.scope_list(),
        acquired.validated
    ));
    Ok(())
}

/// `status`: 0 when the token in OUTPUT_FILE has at least MIN_VALIDITY left, 4 when it is
/// expired or below that, 2 when there is no file or it is not one of ours.
pub fn status(config: &Config, log: &mut Reporter) -> Result<(), Error> {
    let Some(path) = &config.output.output_file else {
        return Err(Error::config(
            "OUTPUT_FILE",
            "is not set: set it to the file to inspect.",
        ));
    };
    let variable = &config.output.token_variable;
    let stored = match store::read(path, variable) {
        Ok(stored) => stored,
        Err(NotReusable::Missing) => {
            return Err(Error::config(
                "OUTPUT_FILE",
                format!(
                    "({}) does not exist: run the pipe first, or set OUTPUT_FILE.",
                    path.display()
                ),
            ));
        }
        Err(NotReusable::NotOurs(why)) => {
            return Err(Error::config(
                "OUTPUT_FILE",
                format!(
                    "({}) holds no token written by oauth-token-pipe for {variable}: {why}.",
                    path.display()
                ),
            ));
        }
    };
    if let Some(key) = config.provider.reuse_key() {
        if stored.client != store::fingerprint(&key) {
            return Err(Error::config(
                "OUTPUT_FILE",
                format!(
                    "({}) holds a token issued for another configuration (client, endpoint or provider) than this one.",
                    path.display()
                ),
            ));
        }
    }
    let left = stored.token.expiry.left(SystemTime::now());
    let until = stored
        .token
        .expiry
        .at()
        .map(format_time)
        .unwrap_or_default();
    if left.is_zero() {
        return Err(Error::Validation(format!(
            "The token in {} expired at {until}: run the pipe again.",
            path.display()
        )));
    }
    if left < config.store.min_validity {
        return Err(Error::Validation(format!(
            "The token in {} expires in {} s (at {until}), less than MIN_VALIDITY ({} s): run the pipe again.",
            path.display(),
            left.as_secs(),
            config.store.min_validity.as_secs()
        )));
    }
    log.success(format!(
        "The token in {} ({} characters) is valid for {} s more, until {until}; scopes: {}.",
        path.display(),
        stored.token.len,
        left.as_secs(),
        stored.token.scope_list()
    ));
    Ok(())
}
