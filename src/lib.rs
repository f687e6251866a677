//! `oauth-token-pipe`: fetch a Bitbucket Cloud OAuth access token with the client-credentials
//! grant, validate it with a real API call, and write it to a dotenv file for later steps,
//! without ever printing it.
//!
//! The binary is a thin wrapper around [`run`]; everything the user sees goes through a
//! [`report::Reporter`], and every failure is an [`error::Error`] whose kind is the exit code.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod client;
pub mod config;
pub mod error;
pub mod http;
pub mod output;
pub mod report;
pub mod scope;
pub mod token;
pub mod validate;

use std::ffi::OsString;

use secrecy::ExposeSecret;
use tokio::time::Instant;

use crate::config::{Config, Validation};
use crate::error::Error;
use crate::http::Http;
use crate::report::Reporter;

/// Runs the pipe from the given environment, logging through `log`.
pub fn run(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    log: &mut Reporter,
) -> Result<(), Error> {
    let (raw, problems) = config::read_env(vars);
    let config = Config::from_raw(&raw, problems)?;
    log.mask(config.client_secret.expose_secret());
    log.set_debug(config.debug);
    if config.debug {
        log.info("Enabling debug mode.");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(anyhow::Error::new(e).context("starting the async runtime")))?;
    runtime.block_on(pipe(&config, log))
}

/// Whether the log should be coloured: NO_COLOR (https://no-color.org) turns it off.
pub fn color_from_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> bool {
    let (raw, _) = config::read_env(vars);
    config::color_enabled(&raw)
}

async fn pipe(config: &Config, log: &mut Reporter) -> Result<(), Error> {
    let deadline = Instant::now() + config.timeout;
    let client = client::build(config).map_err(Error::Other)?;
    let http = Http::new(client, deadline, config.timeout, config.retries);

    log.info(format!(
        "Requesting an access token from {} (client credentials grant)...",
        config.token_url
    ));
    let token = token::request(config, &http, log).await?;
    log.mask(token.secret.expose_secret());
    let scopes = if token.scopes.is_empty() {
        "none listed".to_owned()
    } else {
        token.scopes.join(", ")
    };
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
        "Received a bearer token ({} characters); {expiry}; scopes: {scopes}.",
        token.len
    ));

    validate::check_scopes(&token, &config.required_scopes)?;
    if !config.required_scopes.is_empty() {
        log.info(format!(
            "The token carries every required scope ({}).",
            config.required_scopes.join(", ")
        ));
    }

    let validated = match &config.validation {
        None => {
            log.info("VALIDATE is false: the token was not tested with an API call.");
            "not validated (VALIDATE=false)".to_owned()
        }
        Some(target) => {
            log.info(format!("Validating the token: GET {}", target.url()));
            let outcome = validate::call(target, &token, &http, log).await?;
            let what = match target {
                Validation::Repository { full_name, .. } => format!("read repository {full_name}"),
                Validation::Url(url) => format!("GET {url}"),
            };
            log.info(format!(
                "The token works: {what} answered HTTP {}.",
                outcome.status
            ));
            format!("validated ({what})")
        }
    };

    let contents = output::render(&config.token_variable, &token);
    let path = &config.output_file;
    let written = output::write(path, &contents).map_err(|e| {
        Error::Output(e.context(format!("could not write OUTPUT_FILE ({})", path.display())))
    })?;
    if let Some(exclude) = &written.excluded_in {
        log.info(format!(
            "Listed {} in {} so that git never commits it.",
            path.display(),
            exclude.display()
        ));
    }
    if let Some(why) = &written.exclude_failed {
        log.warn(format!("{} lies in a git work tree but could not be added to its exclude file ({why}): do not `git add` it.", path.display()));
    }
    if let Some(uid) = written.owner {
        log.info(format!(
            "Gave {} to uid {uid}, the owner of its folder, so that user can read it.",
            path.display()
        ));
    }
    let variable = &config.token_variable;
    let until = token
        .expires_at
        .map(|at| format!(", valid until {}", output::format_time(at)))
        .unwrap_or_default();
    log.success(format!(
        "Access token written to {} (mode 0600) as {variable}{until}; scopes: {scopes}; {validated}. Load it in a later script line with: source {}",
        path.display(),
        shell_path(path)
    ));
    Ok(())
}

/// The path as a user would type it after `source`: relative paths get `./` when they have
/// no folder part, since `source file` searches PATH in some shells.
fn shell_path(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    if path.is_absolute() || text.contains('/') {
        text
    } else {
        format!("./{text}")
    }
}
