//! `exec -- COMMAND [ARGS...]`: run one command with the token in its environment.
//!
//! For people on their own machines and in custom runners who want the token in one
//! command's environment, not on disk: no file is written unless OUTPUT_FILE is set, the
//! token never appears in any argv, and every credential variable of the table (and its
//! GitHub `INPUT_` form) is taken out of the child's environment — and scrubbed from our own
//! environment block, which the child could otherwise read in `/proc/$PPID/environ`.
//!
//! Signals: the child stays in our process group, so that an interactive child keeps its
//! terminal. A terminal's Ctrl-C, Ctrl-\ and hang-up already reach the whole foreground
//! group, child included, so SIGINT, SIGQUIT and SIGHUP are forwarded only when standard
//! input is not a terminal (then they were sent to us alone, by `kill` or a CI runner);
//! SIGTERM (`docker stop`, a cancelled job) is always forwarded. We exit with the child's
//! exit code, or 128 + the signal that ended it.

use std::ffi::OsString;
use std::io::ErrorKind;

use secrecy::ExposeSecret;
use tokio::signal::unix::{SignalKind, signal};

use crate::commands::{acquire, pipe};
use crate::config::{Config, table};
use crate::deliver::dotenv;
use crate::error::{Error, Exit};
use crate::http::Http;
use crate::report::Reporter;
use crate::token::format_time;

/// Acquires a token and runs `argv` with it; returns the child's exit code.
pub async fn exec(
    config: &Config,
    http: &Http,
    log: &mut Reporter,
    argv: &[OsString],
) -> Result<u8, Error> {
    pipe::preflight(config)?;
    let key = pipe::reuse_key(config);
    let acquired = super::stop_on_signal(acquire::acquire(
        config,
        &key,
        config.output.output_file.as_deref(),
        http,
        log,
    ))
    .await?;
    if config.output.output_file.is_some() {
        pipe::deliver(config, &acquired, log)?;
    }
    let token = &acquired.token;
    let variable = &config.output.token_variable;
    let program = argv[0].to_string_lossy().into_owned();
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env(variable, token.secret.expose_secret())
        .env(format!("{variable}_SCOPES"), token.scopes.join(","));
    // The table's credential variables, and the provider's run-time-named ones.
    let secret_names: Vec<String> = table::secrets()
        .map(str::to_owned)
        .chain(config.provider.secret_variables())
        .collect();
    for name in &secret_names {
        command.env_remove(name).env_remove(format!("INPUT_{name}"));
    }
    match token.expiry.at() {
        Some(at) => command.env(format!("{variable}_EXPIRES_AT"), format_time(at)),
        None => command.env_remove(format!("{variable}_EXPIRES_AT")),
    };
    // A provider's outputs, as the dotenv file has them; none is inherited from this process.
    for name in crate::provider::OUTPUTS {
        let key = format!("{variable}{}", dotenv::output_suffix(name));
        match token.outputs.iter().find(|(n, _)| n == name) {
            Some((_, value)) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    scrub_own_environment(&secret_names);
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
    // SAFETY: isatty only inspects the descriptor.
    let on_terminal = unsafe { libc::isatty(0) } == 1;
    let mut forwarded = Vec::new();
    for (kind, always) in [
        (SignalKind::terminate(), true),
        (SignalKind::interrupt(), false),
        (SignalKind::quit(), false),
        (SignalKind::hangup(), false),
    ] {
        // Handle it either way, so that it does not end us before the child.
        if let Ok(stream) = signal(kind) {
            forwarded.push((kind.as_raw_value(), always || !on_terminal, stream));
        }
    }
    let status = loop {
        let next_signal = first_signal(&mut forwarded);
        tokio::select! {
            status = child.wait() => break status.map_err(|e| Error::Other(anyhow::Error::new(e).context(format!("waiting for {program}"))))?,
            (number, forward) = next_signal => {
                if let (Some(pid), true) = (pid, forward) {
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

/// Resolves with the number of the first of `streams` to receive a signal, and whether to
/// forward it.
async fn first_signal(streams: &mut [(i32, bool, tokio::signal::unix::Signal)]) -> (i32, bool) {
    std::future::poll_fn(|cx| {
        for (number, forward, stream) in streams.iter_mut() {
            if stream.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready((*number, *forward));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

unsafe extern "C" {
    static mut environ: *const *mut libc::c_char;
}

/// Overwrites the values of credential variables in this process's environment block with
/// NUL bytes. `/proc/PID/environ` shows the block the kernel set up at exec, not the C
/// library's list, so removing a variable would not hide it; overwriting its bytes does.
/// The program has already copied the environment it needs.
fn scrub_own_environment(secret_names: &[String]) {
    let names: Vec<String> = secret_names
        .iter()
        .flat_map(|n| [format!("{n}="), format!("INPUT_{n}=")])
        .collect();
    // SAFETY: `environ` is the C library's NULL-terminated array of NUL-terminated strings;
    // only bytes inside each string (before its NUL) are written, and nothing else in this
    // single-threaded moment reads those values (the configuration was copied at start).
    unsafe {
        let mut entry = std::ptr::addr_of!(environ).read();
        if entry.is_null() {
            return;
        }
        while !(*entry).is_null() {
            let text = *entry;
            let bytes = std::ffi::CStr::from_ptr(text).to_bytes();
            if let Some(name) = names.iter().find(|n| bytes.starts_with(n.as_bytes())) {
                std::ptr::write_bytes(text.add(name.len()), 0, bytes.len() - name.len());
            }
            entry = entry.add(1);
        }
    }
}
