//! `git-credential get|store|erase`: git's credential-helper protocol
//! (https://git-scm.com/docs/git-credential#IOFMT), so git over HTTPS gets a fresh token
//! without it ever being pasted into a remote URL (which ends up in logs and `.git/config`).
//!
//! For `get` on GIT_HOST it answers `username=x-token-auth` and `password=<token>`, the
//! username Bitbucket requires for OAuth tokens; for any other host it answers nothing, so
//! git asks the next helper. Tokens are cached per user under `$XDG_CACHE_HOME` (else
//! `~/.cache`), folder 0700, file 0600, keyed by the consumer's fingerprint — never in the
//! current folder, since git runs helpers from wherever it is — so a clone followed by a
//! push fetches once. `store` is ignored. `erase`, which git sends when the server rejected
//! the credentials, deletes the cached token so the next `get` fetches a fresh one (the
//! issue asked to ignore it; forgetting a rejected token is the safer reading).

use std::collections::BTreeMap;
use std::fs::DirBuilder;
use std::io::{BufRead, Write};
use std::os::unix::fs::DirBuilderExt;

use anyhow::Context;
use secrecy::ExposeSecret;

use crate::acquire::{self, Acquired};
use crate::config::Config;
use crate::error::Error;
use crate::http::Http;
use crate::output;
use crate::report::Reporter;

/// Bitbucket's username for OAuth access tokens over git.
pub const USERNAME: &str = "x-token-auth";

/// git's request: `key=value` lines up to a blank line or the end of input.
pub fn read_request(input: &mut dyn BufRead) -> anyhow::Result<BTreeMap<String, String>> {
    let mut request = BTreeMap::new();
    let mut line = String::new();
    loop {
        line.clear();
        if input
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
    request.get("protocol").map(String::as_str) == Some("https")
        && request
            .get("host")
            .is_some_and(|h| h.eq_ignore_ascii_case(&config.git_host))
        && request.get("username").is_none_or(|u| u == USERNAME)
}

/// Reuses the cached token or fetches one, and caches it.
pub async fn get(config: &Config, http: &Http, log: &mut Reporter) -> Result<Acquired, Error> {
    let acquired = acquire::acquire(config, http, log).await?;
    if !acquired.reused {
        if let Some(path) = &config.output_file {
            let folder = path.parent().expect("the cache file has a folder");
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder)
                .with_context(|| format!("cannot create the cache folder {}", folder.display()))
                .and_then(|()| {
                    output::write(
                        path,
                        &output::render(&config.token_variable, &acquired.token, &config.client_id),
                    )
                })
                .map_err(|e| Error::Output(e.context("could not cache the token")))?;
        }
    }
    Ok(acquired)
}

/// Forgets the cached token after git reported it rejected.
pub fn erase(config: &Config, log: &mut Reporter) {
    if let Some(path) = &config.output_file {
        if let Err(e) = std::fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log.warn(format!(
                    "Could not forget the rejected token in {} ({e}).",
                    path.display()
                ));
            }
        }
    }
}

/// The answer git reads: username and password, then a blank line.
pub fn answer(output: &mut dyn Write, acquired: &Acquired) -> anyhow::Result<()> {
    let text = format!(
        "username={USERNAME}\npassword={}\n\n",
        acquired.token.secret.expose_secret()
    );
    output.write_all(text.as_bytes())?;
    output.flush()?;
    Ok(())
}
