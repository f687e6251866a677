//! `exec -- COMMAND [ARGS...]`: run one command with the token in its environment.
//!
//! For people on their own machines and in custom runners who want the token in one
//! command's environment, not on disk: no file is written unless OUTPUT_FILE is set, the
//! token never appears in any argv, the consumer's secret is taken out of the child's
//! environment (it needs the token, not the secret), signals sent to us are passed on to the
//! child, and we exit with its exit code.

use std::ffi::OsString;
use std::io::ErrorKind;

use secrecy::ExposeSecret;
use tokio::signal::unix::{SignalKind, signal};

use crate::acquire;
use crate::config::Config;
use crate::error::{Error, Exit};
use crate::http::Http;
use crate::output;
use crate::pipe;
use crate::report::Reporter;

/// Acquires a token and runs `argv` with it; returns the child's exit code.
pub async fn exec(
    config: &Config,
    http: &Http,
    log: &mut Reporter,
    argv: &[OsString],
) -> Result<u8, Error> {
    let acquired = crate::stop_on_signal(acquire::acquire(config, http, log)).await?;
    if config.output_file.is_some() {
        pipe::deliver(config, &acquired, log)?;
    }
    let token = &acquired.token;
    let variable = &config.token_variable;
    let program = argv[0].to_string_lossy().into_owned();
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env(variable, token.secret.expose_secret())
        .env(format!("{variable}_SCOPES"), token.scopes.join(","))
        .env_remove("CLIENT_SECRET")
        .env_remove("INPUT_CLIENT_SECRET");
    match token.expires_at {
        Some(at) => command.env(format!("{variable}_EXPIRES_AT"), output::format_time(at)),
        None => command.env_remove(format!("{variable}_EXPIRES_AT")),
    };
    let mut child = command.spawn().map_err(|e| match e.kind() {
        ErrorKind::NotFound => Error::Spawn(
            Exit::CommandNotFound,
            format!("{program}: command not found (exec runs it without a shell; check PATH)."),
        ),
        _ => Error::Spawn(
            Exit::CannotExecute,
            format!("{program}: cannot run it ({e})."),
        ),
    })?;
    log.info(format!(
        "Running {program} with the token in ${variable}{}.",
        if acquired.reused { " (reused)" } else { "" }
    ));
    let pid = child.id();
    let mut forwarded = Vec::new();
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::quit(),
    ] {
        if let Ok(stream) = signal(kind) {
            forwarded.push((kind.as_raw_value(), stream));
        }
    }
    let status = loop {
        let next_signal = futures_first(&mut forwarded);
        tokio::select! {
            status = child.wait() => break status.map_err(|e| Error::Other(anyhow::Error::new(e).context(format!("waiting for {program}"))))?,
            number = next_signal => {
                if let Some(pid) = pid {
                    // SAFETY: kill(2) on our own child's pid, with a signal number from tokio.
                    unsafe { libc::kill(pid as libc::pid_t, number) };
                }
            }
        }
    };
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => 128u8.saturating_add(u8::try_from(signal).unwrap_or(0)),
        (None, None) => 1,
    })
}

/// Resolves with the number of the first of `streams` to receive a signal.
async fn futures_first(streams: &mut [(i32, tokio::signal::unix::Signal)]) -> i32 {
    std::future::poll_fn(|cx| {
        for (number, stream) in streams.iter_mut() {
            if stream.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready(*number);
            }
        }
        std::task::Poll::Pending
    })
    .await
}
