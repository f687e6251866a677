//! `git-credential get|store|erase`: git's credential-helper protocol
//! (https://git-scm.com/docs/git-credential#IOFMT), so git over HTTPS gets a fresh token
//! without it ever being pasted into a remote URL (which ends up in logs and `.git/config`).
//!
//! For `get` on GIT_HOST it answers the provider's git username and `password=<token>`; for
//! any other host it answers nothing, so git asks the next helper. Standard output carries
//! only that answer (the log, and on GitHub the workflow commands, go to standard error).
//! Tokens are cached per user (see [`crate::store`]), keyed by the provider's reuse key and
//! the host, so a clone followed by a push fetches once and a changed GIT_HOST is never sent
//! another host's token. `store` is ignored. `erase`, which git sends when the server
//! rejected the credentials, deletes the cached token so the next `get` fetches a fresh one.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use secrecy::ExposeSecret;

use crate::commands::acquire::{self, Acquired};
use crate::commands::pipe;
use crate::config::Config;
use crate::error::Error;
use crate::http::Http;
use crate::report::{Reporter, quote_remote};
use crate::store;

/// The longest request git sends is a few hundred bytes; more is not git.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

/// git's request: `key=value` lines up to a blank line or the end of input.
pub fn read_request(input: &mut dyn BufRead) -> anyhow::Result<BTreeMap<String, String>> {
    let mut request = BTreeMap::new();
    let mut limited = input.take(MAX_REQUEST_BYTES);
    let mut line = String::new();
    loop {
        line.clear();
        if limited
            .read_line(&mut line)
            .context("reading standard input")?
            == 0
        {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once('=') {
            request.insert(key.to_owned(), value.to_owned());
        }
    }
    Ok(request)
}

/// Whether this request is for us: https, GIT_HOST, and no other username asked for.
pub fn serves(config: &Config, request: &BTreeMap<String, String>) -> bool {
    let username = config.provider.git().username;
    request.get("protocol").map(String::as_str) == Some("https")
        && request
            .get("host")
            .zip(config.git_host.as_ref())
            .is_some_and(|(h, ours)| h.eq_ignore_ascii_case(ours))
        && request.get("username").is_none_or(|u| *u == username)
}

/// A request field for DEBUG, quoted like all remote text.
pub fn field(request: &BTreeMap<String, String>, key: &str) -> String {
    request
        .get(key)
        .map_or_else(|| "-".to_owned(), |v| quote_remote(v, 100))
}

/// The reuse key: the provider's plus the host, so each host has its own cached token.
pub(crate) fn key(config: &Config) -> String {
    format!(
        "{}\n{}",
        pipe::reuse_key(config),
        config.git_host.as_deref().unwrap_or_default()
    )
}

/// The cache file for this configuration and host.
fn cache_file(config: &Config) -> Result<Option<PathBuf>, Error> {
    let Some(folder) = &config.store.cache else {
        return Ok(None);
    };
    store::cache_file(folder, &key(config))
        .map(Some)
        .map_err(|e| Error::Output(e.context("could not use the token cache")))
}

/// Reuses the cached token or fetches one, and caches it.
pub async fn get(config: &Config, http: &Http, log: &mut Reporter) -> Result<Acquired, Error> {
    let path = cache_file(config)?;
    let acquired = acquire::acquire(config, &key(config), path.as_deref(), http, log).await?;
    if let (Some(path), false) = (&path, acquired.reused) {
        pipe::write_file(path, &config.output.token_variable, &acquired, log).map_err(
            |e| match e {
                Error::Output(e) => Error::Output(e.context("could not cache the token")),
                other => other,
            },
        )?;
    }
    Ok(acquired)
}

/// Forgets the cached token after git reported it rejected.
pub fn erase(config: &Config, log: &mut Reporter) {
    let path = match cache_file(config) {
        Ok(Some(path)) => path,
        Ok(None) => return,
        Err(e) => {
            log.warn(e);
            return;
        }
    };
    if let Err(e) = std::fs::remove_file(&path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log.warn(format!(
                "Could not forget the rejected token in {} ({e}).",
                path.display()
            ));
        }
    }
}

/// The answer git reads: username and password, then a blank line.
pub fn answer(config: &Config, output: &mut dyn Write, acquired: &Acquired) -> anyhow::Result<()> {
    let text = format!(
        "username={}\npassword={}\n\n",
        config.provider.git().username,
        acquired.token.secret.expose_secret()
    );
    output.write_all(text.as_bytes())?;
    output.flush()?;
    Ok(())
}
