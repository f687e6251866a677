//! The pipe itself (no arguments): acquire a token, then hand it on — the dotenv file, and on
//! GitHub Actions the step outputs, `$GITHUB_ENV` and the step summary.

use crate::acquire::{self, Acquired};
use crate::config::Config;
use crate::error::Error;
use crate::http::Http;
use crate::output;
use crate::platform;
use crate::report::Reporter;

/// Runs the pipe.
pub async fn pipe(config: &Config, http: &Http, log: &mut Reporter) -> Result<(), Error> {
    let acquired = acquire::acquire(config, http, log).await?;
    deliver(config, &acquired, log)
}

/// Hands the token on: the dotenv file, and on GitHub Actions the step outputs, `$GITHUB_ENV`
/// and the step summary. Runs only after every check passed.
pub fn deliver(config: &Config, acquired: &Acquired, log: &mut Reporter) -> Result<(), Error> {
    let (token, validated) = (&acquired.token, acquired.validated.as_str());
    let variable = &config.token_variable;
    let scopes = acquire::scope_list(token);
    let until = token
        .expires_at
        .map(|at| format!(", valid until {}", output::format_time(at)))
        .unwrap_or_default();
    let mut places = Vec::new();
    let mut how = None;

    if let Some(path) = &config.output_file {
        let contents = output::render(variable, token, &config.client_id);
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

    let what = if acquired.reused {
        "Reused access token written"
    } else {
        "Access token written"
    };
    log.success(format!(
        "{what} to {}{until}; scopes: {scopes}; {validated}.{}",
        places.join(" and "),
        how.map(|h| format!(" {h}")).unwrap_or_default()
    ));
    Ok(())
}

/// The path as a user would type it after `source`: relative paths get `./` when they have
/// no folder part, since `source file` searches PATH in some shells.
pub fn shell_path(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    if path.is_absolute() || text.contains('/') {
        text
    } else {
        format!("./{text}")
    }
}
