//! The GitHub Actions side of handing the token on: step outputs in `$GITHUB_OUTPUT`,
//! optional variables in `$GITHUB_ENV` and a summary table, all in the runner's
//! file-command formats
//! (https://docs.github.com/actions/reference/workflow-commands-for-github-actions).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use secrecy::ExposeSecret;

use crate::token::{Token, Validated, format_time};

/// The step outputs every provider sets; a provider may add its own ([`Token::outputs`]).
pub const OUTPUTS: &[&str] = &["token", "expires_at", "scopes"];

/// The runner's file-command files, from `GITHUB_OUTPUT`, `GITHUB_ENV`, `GITHUB_STEP_SUMMARY`.
#[derive(Debug, Clone)]
pub struct GitHubFiles {
    /// Step outputs.
    pub output: PathBuf,
    /// Variables for later steps (used only with EXPORT_ENV).
    pub env: Option<PathBuf>,
    /// The step summary, Markdown.
    pub summary: Option<PathBuf>,
}

/// Appends the step outputs, and with `export_env` the dotenv file's variables to
/// `$GITHUB_ENV`.
pub fn write_outputs(
    files: &GitHubFiles,
    variable: &str,
    token: &Token,
    export_env: bool,
) -> anyhow::Result<()> {
    let expires_at = token.expiry.at().map(format_time).unwrap_or_default();
    let scopes = token.scopes.join(",");
    let secret = token.secret.expose_secret();
    let mut outputs = vec![
        (OUTPUTS[0], secret),
        (OUTPUTS[1], expires_at.as_str()),
        (OUTPUTS[2], scopes.as_str()),
    ];
    outputs.extend(
        token
            .outputs
            .iter()
            .map(|(name, value)| (*name, value.as_str())),
    );
    append(&files.output, "GITHUB_OUTPUT", &file_commands(&outputs)?)?;
    if export_env {
        let Some(env) = &files.env else {
            bail!("EXPORT_ENV is true but GITHUB_ENV is not set")
        };
        let names = [
            variable.to_owned(),
            format!("{variable}_EXPIRES_AT"),
            format!("{variable}_SCOPES"),
        ];
        let values = [
            (names[0].as_str(), secret),
            (names[1].as_str(), expires_at.as_str()),
            (names[2].as_str(), scopes.as_str()),
        ];
        append(env, "GITHUB_ENV", &file_commands(&values)?)?;
    }
    Ok(())
}

/// The step summary table: what the log's final line says, as Markdown.
pub fn summary(token: &Token, validated: &Validated) -> String {
    let expiry = token
        .expiry
        .at()
        .map(format_time)
        .unwrap_or_else(|| "unknown".into());
    format!(
        "### Access token (oauth-token-pipe)\n\n| | |\n| --- | --- |\n| Token | {} characters, masked; never printed |\n| Expires | {expiry} |\n| Scopes | {} |\n| Validation | {validated} |\n\n",
        token.len,
        token.scope_list()
    )
}

/// `name<<DELIM\nvalue\nDELIM\n` for each pair, with a random delimiter checked not to occur
/// in any value (a fixed delimiter is injectable: CVE-2022-35954).
pub fn file_commands(pairs: &[(&str, &str)]) -> anyhow::Result<String> {
    let delimiter = format!(
        "ghadelimiter_{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let mut text = String::new();
    for (name, value) in pairs {
        if name.contains(['\n', '\r', '=', '<']) || name.is_empty() {
            bail!("{name:?} cannot be written as a GitHub file command name");
        }
        if value.contains(&delimiter) || name.contains(&delimiter) {
            bail!("the value of {name} contains the file-command delimiter; refusing to write it");
        }
        // The runner reads lines with .NET's ReadLine, which also ends a line at a bare
        // '\r', and it drops a final newline: such values would not read back as written.
        if value.contains('\r') || value.ends_with('\n') {
            bail!(
                "the value of {name} has a carriage return or a trailing line break; refusing to write it"
            );
        }
        text.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
    }
    Ok(text)
}

/// Appends `text` to the Markdown step summary.
pub fn write_summary(path: &Path, text: &str) -> anyhow::Result<()> {
    append(path, "GITHUB_STEP_SUMMARY", text)
}

fn append(path: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot open {name} ({})", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .with_context(|| format!("cannot write {name} ({})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_commands_use_a_fresh_random_delimiter() {
        let a = file_commands(&[("token", "abc"), ("scopes", "")]).unwrap();
        let delimiter = a.lines().next().unwrap().strip_prefix("token<<").unwrap();
        assert!(
            delimiter.starts_with("ghadelimiter_") && delimiter.len() == 45,
            "{delimiter}"
        );
        assert_eq!(
            a,
            format!("token<<{delimiter}\nabc\n{delimiter}\nscopes<<{delimiter}\n\n{delimiter}\n")
        );
        let b = file_commands(&[("token", "abc")]).unwrap();
        assert_ne!(b.lines().next(), a.lines().next());
    }

    #[test]
    fn hostile_names_are_refused() {
        assert!(file_commands(&[("a\nb", "x")]).is_err());
        assert!(file_commands(&[("a=b", "x")]).is_err());
    }
}
