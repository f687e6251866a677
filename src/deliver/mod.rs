//! Handing the token on: the dotenv file (format in [`dotenv`], atomic write in [`file`],
//! git exclusion in [`git_exclude`]) and GitHub's step outputs ([`github`]). These see only
//! a [`crate::token::Token`], never a provider.

pub mod dotenv;
pub mod file;
pub mod git_exclude;
pub mod github;

use std::path::PathBuf;

use crate::platform::Platform;
use crate::vars::{self, Mode, Problems, Raw, shown};

pub use github::GitHubFiles;

/// Where the dotenv file goes unless OUTPUT_FILE says otherwise.
pub const DEFAULT_OUTPUT_FILE: &str = "oauth-token.env";

/// Where and under what name the token is handed on.
#[derive(Debug)]
pub struct Settings {
    /// The dotenv file; on GitHub Actions, and for `exec`, only when OUTPUT_FILE is set.
    pub output_file: Option<PathBuf>,
    /// The variable name used in the dotenv file (and `exec`'s child).
    pub token_variable: String,
    /// The runner's file-command files, on GitHub Actions.
    pub github: Option<GitHubFiles>,
    /// Also export the token to later GitHub steps through `$GITHUB_ENV`.
    pub export_env: bool,
}

impl Settings {
    /// Reads OUTPUT_FILE, TOKEN_VARIABLE (default `default_variable`, the provider's),
    /// EXPORT_ENV and the runner's GITHUB_OUTPUT, GITHUB_ENV, GITHUB_STEP_SUMMARY.
    pub fn parse(
        raw: &Raw,
        platform: Platform,
        mode: Mode,
        default_variable: &str,
        problems: &mut Problems,
    ) -> Settings {
        let output_file = match (raw.get("OUTPUT_FILE"), platform, mode) {
            (_, _, Mode::Check | Mode::GitCredential) => None,
            (Some(file), _, _) => Some(file),
            (None, Platform::GitHubActions, _) | (None, _, Mode::Exec) => None,
            (None, _, _) => Some(DEFAULT_OUTPUT_FILE),
        };
        if let Some(file) = output_file {
            if file.chars().any(char::is_control) {
                problems.push(
                    "OUTPUT_FILE",
                    format!(
                        "({}) has a control character (a line break?): give a plain file path.",
                        shown(file)
                    ),
                );
            } else if file.ends_with('/') {
                problems.push(
                    "OUTPUT_FILE",
                    format!(
                        "({}) names a folder: give a file name, e.g. {file}{DEFAULT_OUTPUT_FILE}.",
                        shown(file)
                    ),
                );
            }
        }
        let export_env = vars::boolean(raw, "EXPORT_ENV", false, problems);
        let github = match platform {
            Platform::GitHubActions => match raw.get("GITHUB_OUTPUT") {
                Some(output) => Some(GitHubFiles {
                    output: PathBuf::from(output),
                    env: raw.get("GITHUB_ENV").map(PathBuf::from),
                    summary: raw.get("GITHUB_STEP_SUMMARY").map(PathBuf::from),
                }),
                None => {
                    problems.push("GITHUB_ACTIONS", "is true but GITHUB_OUTPUT is not set: run the action on a GitHub runner (version 2.297 or later), or unset GITHUB_ACTIONS.");
                    None
                }
            },
            _ => None,
        };
        if export_env && github.as_ref().is_some_and(|g| g.env.is_none()) {
            problems.push("EXPORT_ENV", "is true but GITHUB_ENV is not set: the runner sets it for every step; check the job's environment.");
        }
        if export_env && platform != Platform::GitHubActions {
            problems.push(
                "EXPORT_ENV",
                format!(
                    "is a GitHub Actions option, but this is {}: source OUTPUT_FILE instead.",
                    platform.name()
                ),
            );
        }
        let token_variable = raw.get("TOKEN_VARIABLE").unwrap_or(default_variable);
        if !vars::is_variable_name(token_variable) {
            problems.push("TOKEN_VARIABLE", format!("({}) is not a valid variable name: use letters, digits and '_', not starting with a digit (^[A-Za-z_][A-Za-z0-9_]*$).", shown(token_variable)));
        }
        Settings {
            output_file: output_file.map(PathBuf::from),
            token_variable: token_variable.to_owned(),
            github,
            export_env,
        }
    }
}
