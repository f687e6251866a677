//! The one place that decides how a failure ends the process.
//!
//! Callers branch on the kind of a failure only to pick the exit code, so the kinds are
//! exactly the documented exit codes: a pipeline can tell "the credentials are wrong" (3)
//! from "the token does not work here" (4), "the provider could not be reached" (5) and "the
//! file could not be written" (6). Each variant carries a finished, user-facing message.

use std::fmt;

/// The process exit codes, as documented in the README's "Exit codes" table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// The token was fetched, validated and written.
    Success = 0,
    /// Anything not covered below, including a bug.
    Failure = 1,
    /// The configuration (environment variables) is invalid; nothing was sent.
    Config = 2,
    /// The token endpoint rejected the client's credentials or setup.
    Credentials = 3,
    /// A token was issued but failed validation or lacks a required scope.
    Validation = 4,
    /// The provider was unreachable or unusable after retries.
    Provider = 5,
    /// The output file could not be written.
    Output = 6,
    /// `exec`: the command was found but could not be run, as shells report it.
    CannotExecute = 126,
    /// `exec`: the command was not found, as shells report it.
    CommandNotFound = 127,
    /// Stopped by SIGINT (128 + 2), as shells report it.
    Interrupted = 130,
    /// Stopped by SIGTERM (128 + 15), e.g. a cancelled pipeline or `docker stop`.
    Terminated = 143,
}

impl Exit {
    /// Every exit code, in the order the README documents them.
    pub const ALL: [Exit; 11] = [
        Exit::Success,
        Exit::Failure,
        Exit::Config,
        Exit::Credentials,
        Exit::Validation,
        Exit::Provider,
        Exit::Output,
        Exit::CannotExecute,
        Exit::CommandNotFound,
        Exit::Interrupted,
        Exit::Terminated,
    ];

    /// The numeric code handed to the operating system.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code means, in a few words (the README table and `--help` say the same).
    pub fn meaning(self) -> &'static str {
        // An exhaustive match: a new code cannot be added without its documentation.
        match self {
            Exit::Success => "ok",
            Exit::Failure => "anything else (a bug)",
            Exit::Config => "configuration",
            Exit::Credentials => "credentials rejected",
            Exit::Validation => "validation failed or token expiring",
            Exit::Provider => "provider unreachable or unusable",
            Exit::Output => "output not written",
            Exit::CannotExecute => "exec: command cannot run",
            Exit::CommandNotFound => "exec: command not found",
            Exit::Interrupted => "SIGINT",
            Exit::Terminated => "SIGTERM",
        }
    }
}

/// One configuration problem: the variable it is about and what to do, never its value when
/// the variable holds a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The variable as the user writes it (`CLIENT_ID`).
    pub variable: String,
    /// On GitHub Actions, the action input that sets it (`client_id`).
    pub input: Option<String>,
    /// The rest of the sentence, after the variable's name.
    pub text: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.input {
            Some(input) => write!(f, "{} (the `{input}` input) {}", self.variable, self.text),
            None => write!(f, "{} {}", self.variable, self.text),
        }
    }
}

/// A failure of the whole run, already worded for the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One message per configuration problem, each naming its variable.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Config(Vec<Problem>),
    /// A usage mistake on the command line (exit 2, like a configuration problem).
    #[error("{0}")]
    Usage(String),
    /// The token endpoint answered with an OAuth error.
    #[error("{0}")]
    Credentials(String),
    /// The token is unusable: rejected by the API or missing scopes.
    #[error("{0}")]
    Validation(String),
    /// Network, TLS, timeout, 429/5xx after retries, redirect or malformed response.
    #[error("{0:#}")]
    Provider(anyhow::Error),
    /// The output file (or its folder) could not be written.
    #[error("{0:#}")]
    Output(anyhow::Error),
    /// `exec` could not start its command (126 or 127, as a shell would exit).
    #[error("{1}")]
    Spawn(Exit, String),
    /// SIGINT or SIGTERM arrived before the run finished; nothing was written.
    #[error(
        "Stopped by {0} before the token was handed on; OUTPUT_FILE and the outputs were not changed."
    )]
    Stopped(&'static str),
    /// Anything else.
    #[error("{0:#}")]
    Other(anyhow::Error),
}

impl Error {
    /// The exit code this failure ends the process with.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Config(_) | Error::Usage(_) => Exit::Config,
            Error::Credentials(_) => Exit::Credentials,
            Error::Validation(_) => Exit::Validation,
            Error::Provider(_) => Exit::Provider,
            Error::Output(_) => Exit::Output,
            Error::Spawn(exit, _) => *exit,
            Error::Stopped("SIGINT") => Exit::Interrupted,
            Error::Stopped(_) => Exit::Terminated,
            Error::Other(_) => Exit::Failure,
        }
    }

    /// A short title for the failure, e.g. for a GitHub error annotation.
    pub fn title(&self) -> String {
        let what = match self {
            Error::Config(_) | Error::Usage(_) => "invalid configuration",
            Error::Credentials(_) => "credentials rejected",
            Error::Validation(_) => "token failed validation",
            Error::Provider(_) => "provider unreachable or unusable",
            Error::Output(_) => "output not written",
            Error::Spawn(..) => "command could not be run",
            Error::Stopped(_) => "stopped",
            Error::Other(_) => "failed",
        };
        format!("oauth-token-pipe: {what} (exit {})", self.exit().code())
    }

    /// A provider failure with a plain message.
    pub fn provider(message: impl fmt::Display) -> Self {
        Error::Provider(anyhow::anyhow!("{message}"))
    }

    /// A single configuration problem about `variable`.
    pub fn config(variable: &str, text: impl Into<String>) -> Self {
        Error::Config(vec![Problem {
            variable: variable.to_owned(),
            input: None,
            text: text.into(),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_exit_code_once_in_order() {
        // An exhaustive match: a new variant does not compile until it is placed here, and
        // the loop then fails until ALL lists it in the same place.
        let position = |e: Exit| match e {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Config => 2,
            Exit::Credentials => 3,
            Exit::Validation => 4,
            Exit::Provider => 5,
            Exit::Output => 6,
            Exit::CannotExecute => 7,
            Exit::CommandNotFound => 8,
            Exit::Interrupted => 9,
            Exit::Terminated => 10,
        };
        for (i, exit) in Exit::ALL.iter().enumerate() {
            assert_eq!(position(*exit), i, "{exit:?}");
        }
        let mut codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), Exit::ALL.len());
    }
}
