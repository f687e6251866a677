//! The one place that decides how a failure ends the process.
//!
//! Callers branch on the kind of a failure only to pick the exit code, so the kinds are
//! exactly the documented exit codes: a pipeline can tell "the credentials are wrong" (3)
//! from "the token does not work here" (4), "Bitbucket could not be reached" (5) and "the
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
    /// The token endpoint rejected the OAuth consumer's credentials or setup.
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
    /// The numeric code handed to the operating system.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A failure of the whole run, already worded for the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One message per configuration problem, each naming its variable.
    #[error("{}", .0.join("\n"))]
    Config(Vec<String>),
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
            Error::Config(_) => Exit::Config,
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
            Error::Config(_) => "invalid configuration",
            Error::Credentials(_) => "credentials rejected",
            Error::Validation(_) => "token failed validation",
            Error::Provider(_) => "Bitbucket unreachable or unusable",
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
}
