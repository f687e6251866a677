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
pub mod platform;
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
use crate::platform::Platform;
use crate::report::Reporter;
use crate::token::Token;

/// Runs the pipe from the given environment, logging through `log`.
pub fn run(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    log: &mut Reporter,
) -> Result<(), Error> {
    let (raw, problems) = config::read_env(vars);
    let platform = raw.platform();
    if platform == Platform::GitHubActions {
        log.enable_workflow_commands();
    }
    // Masked before anything else is written, even when the configuration is invalid.
    if let Some(secret) = raw.client_secret() {
        log.mask(secret);
    }
    log.info(format!("Running on {}.", platform.name()));
    let config = Config::from_raw(&raw, problems)?;
    log.set_debug(config.debug);
    if config.debug {
        log.info("Enabling debug mode.");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(anyhow::Error::new(e).context("starting the async runtime")))?;
    runtime.block_on(async {
        tokio::select! {
            result = pipe(&config, log) => result,
            signal = stop_signal() => Err(Error::Stopped(signal)),
        }
    })
}

/// Resolves when SIGINT or SIGTERM arrives. Handling them (rather than dying) lets a
/// cancelled pipeline end with the conventional 130/143 and a clear line; and in a FROM
/// scratch container the binary is PID 1, which ignores SIGTERM it does not handle. The file
/// is written synchronously at the very end, so a signal can never leave half of it behind.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        _ => std::future::pending().await,
    }
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

    deliver(config, &token, &validated, log)
}

/// Hands the token on: the dotenv file, and on GitHub Actions the step outputs, `$GITHUB_ENV`
/// and the step summary. Runs only after every check passed.
fn deliver(
    config: &Config,
    token: &Token,
    validated: &str,
    log: &mut Reporter,
) -> Result<(), Error> {
    let variable = &config.token_variable;
    let scopes = if token.scopes.is_empty() {
        "none listed".to_owned()
    } else {
        token.scopes.join(", ")
    };
    let until = token
        .expires_at
        .map(|at| format!(", valid until {}", output::format_time(at)))
        .unwrap_or_default();
    let mut places = Vec::new();
    let mut how = None;

    if let Some(path) = &config.output_file {
        let contents = output::render(variable, token);
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
        places.push(format!("{} (mode 0600) as {variable}", path.display()));
        how = Some(format!(
            "Load it in a later script line with: source {}",
            shell_path(path)
        ));
    }

    if let Some(files) = &config.github {
        platform::write_github_files(files, variable, token, config.export_env)
            .map_err(|e| Error::Output(e.context("could not write the GitHub step outputs")))?;
        places.push("the step outputs token, expires_at and scopes (masked)".to_owned());
        if config.export_env {
            places.push(format!(
                "$GITHUB_ENV as {variable} for later steps (masked)"
            ));
        }
        if let Some(summary) = &files.summary {
            let expiry = token
                .expires_at
                .map(output::format_time)
                .unwrap_or_else(|| "unknown".into());
            let table = format!(
                "### Bitbucket access token\n\n| | |\n| --- | --- |\n| Token | {} characters, masked; never printed |\n| Expires | {expiry} |\n| Scopes | {scopes} |\n| Validation | {validated} |\n\n",
                token.len
            );
            if let Err(e) = platform::write_summary(summary, &table) {
                log.warn(format!(
                    "The step summary could not be written ({e:#}); the outputs are set."
                ));
            }
        }
        how.get_or_insert_with(|| "Use it as ${{ steps.<id>.outputs.token }}".to_owned());
    }

    log.success(format!(
        "Access token written to {}{until}; scopes: {scopes}; {validated}.{}",
        places.join(" and "),
        how.map(|h| format!(" {h}")).unwrap_or_default()
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
