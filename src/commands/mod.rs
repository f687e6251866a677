//! The subcommands, the only code that sees the whole [`Config`]: the pipe, `exec`,
//! `git-credential`, `check` and `status`, and the runtime they run on.

pub mod acquire;
pub mod credential;
pub mod exec;
pub mod pipe;
pub mod revoke;
pub mod status;

use std::ffi::OsString;
use std::future::Future;
use std::io::{BufRead, Write};
use std::time::Duration;

use crate::cli::{self, Command, CredentialAction};
use crate::config::{self, Config};
use crate::error::Error;
use crate::http::Http;
use crate::platform::Platform;
use crate::report::Reporter;
use crate::vars::Mode;

/// Standard input and output, for the subcommands that use them (git's credential protocol,
/// `--help`). Log lines never go here.
pub struct Io<'a> {
    /// What git (or a user) sends.
    pub input: &'a mut dyn BufRead,
    /// Where answers go.
    pub output: &'a mut dyn Write,
}

/// Runs `command` with the given environment; returns the exit code on success (the child's
/// for `exec`, 0 otherwise).
pub fn run(
    command: Command,
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    log: &mut Reporter,
    io: Io<'_>,
) -> Result<u8, Error> {
    let mode = match &command {
        Command::Help | Command::Version => {
            let text = if command == Command::Help {
                cli::help()
            } else {
                format!("oauth-token-pipe {}\n", env!("CARGO_PKG_VERSION"))
            };
            io.output
                .write_all(text.as_bytes())
                .map_err(|e| Error::Other(e.into()))?;
            return Ok(0);
        }
        Command::Pipe => Mode::Pipe,
        Command::Exec(_) => Mode::Exec,
        Command::Check => Mode::Check,
        Command::Status => Mode::Status,
        // Revoking needs no credentials (the token authenticates itself), as status.
        Command::Revoke => Mode::Status,
        Command::GitCredential(_) => Mode::GitCredential,
    };
    let (raw, problems) = config::read_env(vars);
    let platform = Platform::detect(&raw);
    if platform == Platform::GitHubActions {
        log.enable_workflow_commands();
    }
    // Masked before anything else is written, even when the configuration is invalid.
    config::mask_secrets(&raw, log);
    if mode == Mode::GitCredential {
        log.set_quiet(true);
    } else {
        log.info(format!("Running on {}.", platform.name()));
    }
    let config = &Config::parse(&raw, problems, mode)?;
    config.provider.register_secrets(log);
    log.mask_basic_with(&config.provider.git().username);
    log.set_debug(config.debug);
    if config.debug {
        log.info("Enabling debug mode.");
    }
    match command {
        Command::Status => status::status(config, log).map(|()| 0),
        Command::Revoke => {
            let cache =
                crate::store::Settings::parse(&raw, true, &mut crate::vars::Problems::default())
                    .cache;
            with_runtime(config, |http| async move {
                stop_on_signal(revoke::revoke(config, cache.as_deref(), &http, log)).await
            })
            .map(|()| 0)
        }
        Command::GitCredential(action) => git_credential(config, action, log, io),
        Command::Pipe => with_runtime(config, |http| async move {
            stop_on_signal(pipe::pipe(config, &http, log)).await
        })
        .map(|()| 0),
        Command::Check => with_runtime(config, |http| async move {
            stop_on_signal(status::check(config, &http, log)).await
        })
        .map(|()| 0),
        Command::Exec(argv) => with_runtime(config, |http| async move {
            exec::exec(config, &http, log, &argv).await
        }),
        Command::Help | Command::Version => unreachable!("answered above"),
    }
}

fn git_credential(
    config: &Config,
    action: CredentialAction,
    log: &mut Reporter,
    io: Io<'_>,
) -> Result<u8, Error> {
    let request = credential::read_request(io.input)
        .map_err(|e| Error::Other(e.context("reading git's request")))?;
    // Read before answering even for `store`: git writes the credential to us, and a
    // helper that exits without reading can make that write fail.
    if action == CredentialAction::Store {
        return Ok(0);
    }
    if !credential::serves(config, &request) {
        log.debug(|| {
            format!(
                "Not answering for protocol {} host {} (this helper serves https://{}).",
                credential::field(&request, "protocol"),
                credential::field(&request, "host"),
                config.git_host.as_deref().unwrap_or("-")
            )
        });
        return Ok(0);
    }
    if action == CredentialAction::Erase {
        credential::erase(config, log);
        return Ok(0);
    }
    let acquired = with_runtime(config, |http| async move {
        stop_on_signal(credential::get(config, &http, log)).await
    })?;
    credential::answer(config, io.output, &acquired)
        .map_err(|e| Error::Other(e.context("answering git")))?;
    Ok(0)
}

/// Builds the current-thread runtime and the HTTP side (client, deadline, retries) for one
/// run. The runtime is shut down without waiting for its blocking threads: a name lookup
/// that never answers (getaddrinfo cannot be cancelled) must not keep the process past
/// TIMEOUT once the deadline has ended the run.
fn with_runtime<T, F: Future<Output = Result<T, Error>>>(
    config: &Config,
    body: impl FnOnce(Http) -> F,
) -> Result<T, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(anyhow::Error::new(e).context("starting the async runtime")))?;
    let result = runtime.block_on(async {
        let http = Http::new(&config.http).map_err(Error::Other)?;
        body(http).await
    });
    runtime.shutdown_timeout(Duration::ZERO);
    result
}

/// Runs `work` unless SIGINT or SIGTERM arrives first. Handling them (rather than dying)
/// lets a cancelled pipeline end with the conventional 130/143 and a clear line; and in a
/// FROM scratch container the binary is PID 1, which ignores SIGTERM it does not handle.
/// Files are written synchronously at the very end, so a signal never leaves half of one.
pub(crate) async fn stop_on_signal<T>(
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return work.await;
    };
    tokio::select! {
        result = work => result,
        _ = int.recv() => Err(Error::Stopped("SIGINT")),
        _ = term.recv() => Err(Error::Stopped("SIGTERM")),
    }
}
