//! The pipe itself (no arguments): acquire a token, then hand it on — the dotenv file, and on
//! GitHub Actions the step outputs, `$GITHUB_ENV` and the step summary.

use std::path::Path;

use crate::commands::acquire::{self, Acquired};
use crate::config::Config;
use crate::deliver::{dotenv, file, github};
use crate::error::Error;
use crate::http::Http;
use crate::report::Reporter;
use crate::token::format_time;

/// Runs the pipe.
pub async fn pipe(config: &Config, http: &Http, log: &mut Reporter) -> Result<(), Error> {
    preflight(config)?;
    let acquired = acquire::acquire(
        config,
        &reuse_key(config),
        config.output.output_file.as_deref(),
        http,
        log,
    )
    .await?;
    deliver(config, &acquired, log)
}

/// Refuses, before any request, an OUTPUT_FILE that holds lines this program did not write
/// (the write checks again: the file may change meanwhile).
pub fn preflight(config: &Config) -> Result<(), Error> {
    match &config.output.output_file {
        // A symbolic link is refused when the file is written, with its own message.
        Some(path) if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) => {
            file::refuse_foreign(path, &config.output.token_variable).map_err(|e| {
                Error::Output(
                    e.context(format!("could not write OUTPUT_FILE ({})", path.display())),
                )
            })
        }
        _ => Ok(()),
    }
}

/// The provider's reuse key (empty when it has none, which never matches a stored token's).
pub fn reuse_key(config: &Config) -> String {
    config.provider.reuse_key().unwrap_or_default()
}

/// Writes the dotenv file at `path`, logging what else was done (git exclude, owner).
pub fn write_file(
    path: &Path,
    variable: &str,
    acquired: &Acquired,
    log: &mut Reporter,
) -> Result<(), Error> {
    let (contents, dropped) = dotenv::render(variable, &acquired.token, &acquired.client);
    if !dropped.is_empty() {
        log.warn(format!(
            "Left {} scope(s) out of {variable}_SCOPES because they hold characters a shell would act on; the token still carries them.",
            dropped.len()
        ));
    }
    let written = file::write(path, variable, &contents).map_err(|e| {
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
    if let Some(why) = &written.owner_failed {
        log.warn(format!(
            "Could not give {} to the owner of its folder ({why}; a rootless container?): it stays root's, mode 0600.",
            path.display()
        ));
    }
    Ok(())
}

/// Hands the token on: the dotenv file, and on GitHub Actions the step outputs, `$GITHUB_ENV`
/// and the step summary. Runs only after every check passed.
pub fn deliver(config: &Config, acquired: &Acquired, log: &mut Reporter) -> Result<(), Error> {
    let token = &acquired.token;
    let variable = &config.output.token_variable;
    let until = token
        .expiry
        .at()
        .map(|at| format!(", valid until {}", format_time(at)))
        .unwrap_or_default();
    let mut places = Vec::new();
    let mut how = None;

    if let Some(path) = &config.output.output_file {
        write_file(path, variable, acquired, log)?;
        places.push(format!("{} (mode 0600) as {variable}", path.display()));
        how = Some(format!(
            "Load it in a later script line with: source {}",
            shell_path(path)
        ));
    }

    if let Some(files) = &config.output.github {
        github::write_outputs(files, variable, token, config.output.export_env)
            .map_err(|e| Error::Output(e.context("could not write the GitHub step outputs")))?;
        let mut names: Vec<&str> = github::OUTPUTS.to_vec();
        names.extend(token.outputs.iter().map(|(n, _)| *n));
        let (last, rest) = names.split_last().expect("OUTPUTS is not empty");
        places.push(format!(
            "the step outputs {} and {last} (masked)",
            rest.join(", ")
        ));
        if config.output.export_env {
            places.push(format!(
                "$GITHUB_ENV as {variable} for later steps (masked)"
            ));
        }
        if let Some(summary) = &files.summary {
            if let Err(e) =
                github::write_summary(summary, &github::summary(token, &acquired.validated))
            {
                log.warn(format!(
                    "The step summary could not be written ({e:#}); the outputs are set."
                ));
            }
        }
        how.get_or_insert_with(|| "Use it as ${{ steps.<id>.outputs.token }}".to_owned());
    }

    let what = if acquired.reused {
        "Reused access token written"
    } else {
        "Access token written"
    };
    log.success(format!(
        "{what} to {}{until}; scopes: {}; {}.{}",
        places.join(" and "),
        token.scope_list(),
        acquired.validated,
        how.map(|h| format!(" {h}")).unwrap_or_default()
    ));
    Ok(())
}

/// The path as a user would type it after `source`: relative paths get `./` when they have
/// no folder part, since `source file` searches PATH in some shells.
pub fn shell_path(path: &Path) -> String {
    let text = path.display().to_string();
    if path.is_absolute() || text.contains('/') {
        text
    } else {
        format!("./{text}")
    }
}
