//! The command line: no arguments runs the pipe (how Bitbucket, GitHub and GitLab start it);
//! a few subcommands serve people on their own machines and in custom runners.
//!
//! Configuration stays in environment variables for every subcommand, so that no secret is
//! ever an argument. Parsing uses lexopt, which is small and leaves the help text to us.

use std::ffi::OsString;

use crate::config::table::{self, Owner};
use crate::error::{Error, Exit};

/// What the user asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// No arguments: fetch (or reuse), validate, hand on.
    Pipe,
    /// `exec -- COMMAND [ARGS...]`: run COMMAND with the token in its environment.
    Exec(Vec<OsString>),
    /// `git-credential get|store|erase`: git's credential-helper protocol.
    GitCredential(CredentialAction),
    /// `check`: fetch and validate, write nothing.
    Check,
    /// `status`: report on the token in OUTPUT_FILE.
    Status,
    /// `revoke`: revoke the token in OUTPUT_FILE (and git-credential's cache).
    Revoke,
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// The git credential-helper operations (https://git-scm.com/docs/gitcredentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialAction {
    /// Answer with a username and password.
    Get,
    /// git reports credentials that worked; nothing to do.
    Store,
    /// git reports credentials that were rejected: forget the cached token.
    Erase,
}

/// The `--help` text: the usage, then every variable a user sets, from the one table.
pub fn help() -> String {
    let mut text = format!(
        "oauth-token-pipe {}\n\
         Fetch a short-lived access token, validate it, and hand it on without ever printing it.\n\
         Configuration comes from environment variables (see README.md); no secret is ever an\n\
         argument.\n\n\
         Usage:\n\
         \x20 oauth-token-pipe                      fetch (or reuse), validate, write OUTPUT_FILE\n\
         \x20 oauth-token-pipe exec -- CMD [ARGS]   run CMD with the token in $TOKEN_VARIABLE\n\
         \x20 oauth-token-pipe git-credential get   git credential helper for GIT_HOST\n\
         \x20 oauth-token-pipe check                fetch and validate; write nothing\n\
         \x20 oauth-token-pipe status               is the token in OUTPUT_FILE still good?\n\
         \x20 oauth-token-pipe revoke               revoke the token in OUTPUT_FILE and git's cache\n\
         \x20 oauth-token-pipe --help | --version\n\n\
         Variables (default in brackets):\n",
        env!("CARGO_PKG_VERSION")
    );
    for var in table::VARIABLES
        .iter()
        .filter(|v| v.owner != Owner::Platform)
    {
        let default = if var.default.is_empty() {
            String::new()
        } else {
            format!(" [{}]", var.default)
        };
        let owner = match var.owner {
            Owner::Provider(p) => format!(" ({p})"),
            Owner::Command(c) => format!(" ({c})"),
            Owner::GitHub => " (GitHub)".to_owned(),
            Owner::Common | Owner::Platform => String::new(),
        };
        text.push_str(&format!("  {:<16} {}{owner}{default}\n", var.name, var.doc));
    }
    text.push_str("\nExit codes:");
    for exit in Exit::ALL {
        text.push_str(&format!(" {} {},", exit.code(), exit.meaning()));
    }
    text.pop();
    text.push_str(".\ngit: git config --global credential.https://bitbucket.org.helper '!oauth-token-pipe git-credential'\n");
    text.push_str("     (github-app: credential.https://github.com.helper, or your GHES host)\n");
    text
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, Error> {
    use lexopt::prelude::*;
    let usage = |message: String| {
        Error::Usage(format!(
            "{message}. Run `oauth-token-pipe --help` for usage."
        ))
    };
    let mut parser = lexopt::Parser::from_args(args);
    let first = parser.next().map_err(|e| usage(e.to_string()))?;
    let command = match first {
        None => Command::Pipe,
        Some(Short('h') | Long("help")) => Command::Help,
        Some(Short('V') | Long("version")) => Command::Version,
        Some(Value(word)) => match word.to_str() {
            Some("exec") => {
                let mut command: Vec<OsString> = parser
                    .raw_args()
                    .map_err(|e| usage(e.to_string()))?
                    .collect();
                if command.first().is_some_and(|a| a == "--") {
                    command.remove(0);
                }
                if command.is_empty() {
                    return Err(usage(
                        "exec needs a command: oauth-token-pipe exec -- COMMAND [ARGS...]".into(),
                    ));
                }
                return Ok(Command::Exec(command));
            }
            Some("git-credential") => {
                let action = match parser.next().map_err(|e| usage(e.to_string()))? {
                    Some(Value(a)) if a == "get" => CredentialAction::Get,
                    Some(Value(a)) if a == "store" => CredentialAction::Store,
                    Some(Value(a)) if a == "erase" => CredentialAction::Erase,
                    other => {
                        return Err(usage(format!(
                            "git-credential needs get, store or erase, not {}",
                            describe(other)
                        )));
                    }
                };
                Command::GitCredential(action)
            }
            Some("check") => Command::Check,
            Some("status") => Command::Status,
            Some("revoke") => Command::Revoke,
            _ => {
                return Err(usage(format!(
                    "unknown command {:?}",
                    word.to_string_lossy()
                )));
            }
        },
        Some(other) => return Err(usage(format!("unexpected {}", describe(Some(other))))),
    };
    match parser.next().map_err(|e| usage(e.to_string()))? {
        None => Ok(command),
        Some(extra) => Err(usage(format!("unexpected {}", describe(Some(extra))))),
    }
}

fn describe(arg: Option<lexopt::Arg<'_>>) -> String {
    match arg {
        None => "nothing".into(),
        Some(lexopt::Arg::Short(c)) => format!("option -{c}"),
        Some(lexopt::Arg::Long(l)) => format!("option --{l}"),
        Some(lexopt::Arg::Value(v)) => format!("argument {:?}", v.to_string_lossy()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Command, String> {
        parse(words.iter().map(OsString::from)).map_err(|e| e.to_string())
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse_words(&[]), Ok(Command::Pipe));
        assert_eq!(parse_words(&["--help"]), Ok(Command::Help));
        assert_eq!(parse_words(&["-V"]), Ok(Command::Version));
        assert_eq!(parse_words(&["check"]), Ok(Command::Check));
        assert_eq!(parse_words(&["status"]), Ok(Command::Status));
        assert_eq!(parse_words(&["revoke"]), Ok(Command::Revoke));
        assert_eq!(
            parse_words(&["git-credential", "erase"]),
            Ok(Command::GitCredential(CredentialAction::Erase))
        );
        assert_eq!(
            parse_words(&["exec", "--", "sh", "-c", "x"]),
            Ok(Command::Exec(vec!["sh".into(), "-c".into(), "x".into()]))
        );
        assert_eq!(
            parse_words(&["exec", "env", "--", "-x"]),
            Ok(Command::Exec(vec!["env".into(), "--".into(), "-x".into()]))
        );
    }

    #[test]
    fn mistakes_are_usage_errors() {
        assert!(
            parse_words(&["frobnicate"])
                .unwrap_err()
                .contains("unknown command \"frobnicate\"")
        );
        assert!(
            parse_words(&["exec"])
                .unwrap_err()
                .contains("exec needs a command")
        );
        assert!(
            parse_words(&["exec", "--"])
                .unwrap_err()
                .contains("exec needs a command")
        );
        assert!(
            parse_words(&["git-credential"])
                .unwrap_err()
                .contains("needs get, store or erase")
        );
        assert!(
            parse_words(&["check", "extra"])
                .unwrap_err()
                .contains("unexpected argument \"extra\"")
        );
        assert!(
            parse_words(&["--client-secret=x"])
                .unwrap_err()
                .contains("unexpected option --client-secret")
        );
    }
}
