//! `revoke`: end a token's life before it expires, at the end of a job (Bitbucket's
//! `after-script`, a GitHub step with `if: always()`).
//!
//! The token is read from where this program put it — OUTPUT_FILE, and git-credential's
//! cache entry for this configuration — never from an argument (argv is world-readable in
//! /proc). A token that the file says has expired is never sent: revoking it can only fail,
//! and that noise is the official action's most-reported complaint
//! (actions/create-github-app-token#72, #140). After the provider confirms (or says the
//! token was already invalid), the file is removed: it holds only the token's lines, since a
//! file with other lines is never read as ours. A provider without a revocation endpoint
//! (Bitbucket has none) says so and leaves the file alone; that ends with exit 0, because
//! nothing went wrong.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use secrecy::ExposeSecret;

use crate::commands::credential;
use crate::config::Config;
use crate::error::Error;
use crate::http::Http;
use crate::provider::Revoked;
use crate::report::Reporter;
use crate::store::{self, NotReusable};
use crate::token::format_time;

/// Revokes the token in OUTPUT_FILE and in git-credential's cache (`cache` is its folder,
/// when HOME or XDG_CACHE_HOME say where it is).
pub async fn revoke(
    config: &Config,
    cache: Option<&Path>,
    http: &Http,
    log: &mut Reporter,
) -> Result<(), Error> {
    // Each place with the reuse key its token was stored under: the file's is the
    // provider's, git-credential's cache entry's adds GIT_HOST (and names the file).
    let mut places: Vec<(PathBuf, Option<String>)> = config
        .output
        .output_file
        .iter()
        .map(|path| (path.clone(), config.provider.reuse_key()))
        .collect();
    if let (Some(folder), Some(_)) = (cache, config.provider.reuse_key()) {
        let key = credential::key(config);
        places.push((
            folder.join(format!("{}.env", store::fingerprint(&key))),
            Some(key),
        ));
    }
    let mut found = 0;
    for (path, key) in &places {
        if revoke_file(config, path, key.as_deref(), http, log).await? {
            found += 1;
        }
    }
    if found == 0 {
        let looked: Vec<String> = places
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        log.success(format!(
            "Nothing to revoke: no token of ours in {}.",
            if looked.is_empty() {
                "OUTPUT_FILE (not set)".to_owned()
            } else {
                looked.join(" or ")
            }
        ));
    }
    Ok(())
}

/// Revokes the token in `path`, stored under the reuse `key`; `false` when there was none
/// to revoke.
async fn revoke_file(
    config: &Config,
    path: &Path,
    key: Option<&str>,
    http: &Http,
    log: &mut Reporter,
) -> Result<bool, Error> {
    let variable = &config.output.token_variable;
    let stored = match store::read(path, variable) {
        Ok(stored) => stored,
        Err(NotReusable::Missing) => return Ok(false),
        Err(NotReusable::NotOurs(why)) => {
            log.warn(format!(
                "Not revoking anything from {}: it holds no token written by oauth-token-pipe for {variable} ({why}).",
                path.display()
            ));
            return Ok(false);
        }
    };
    let token = stored.token;
    log.mask(token.secret.expose_secret());
    log.mask_basic(
        &config.provider.git().username,
        token.secret.expose_secret(),
    );
    if let Some(key) = key {
        if stored.client != store::fingerprint(key) {
            log.warn(format!(
                "Not revoking the token in {}: it was issued for another configuration (app, installation, repositories, permissions or API URL) than this one, so it is not sent here.",
                path.display()
            ));
            return Ok(false);
        }
    }
    let until = token.expiry.at().map(format_time).unwrap_or_default();
    if token.expiry.left(SystemTime::now()).is_zero() {
        remove(path, log)?;
        log.success(format!(
            "The token in {} already expired at {until}; nothing was sent, and the file is removed.",
            path.display()
        ));
        return Ok(true);
    }
    match config.provider.revoke(&token, http, log).await? {
        Revoked::Revoked => {
            remove(path, log)?;
            log.success(format!(
                "Revoked the token in {} ({} characters, valid until {until}); the file is removed.",
                path.display(),
                token.len
            ));
        }
        Revoked::AlreadyInvalid(said) => {
            remove(path, log)?;
            log.warn(format!(
                "The provider says the token in {} was already expired or revoked ({said}); the file is removed.",
                path.display()
            ));
        }
        Revoked::Unsupported => {
            log.success(format!(
                "PROVIDER={} has no revocation endpoint: the token in {} stays valid until it expires at {until}. Nothing was sent; the file is left as it is.",
                config.provider.id(),
                path.display()
            ));
        }
    }
    Ok(true)
}

fn remove(path: &Path, log: &mut Reporter) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => {
            log.warn(format!(
                "The token is revoked, but {} could not be removed ({e}).",
                path.display()
            ));
            Ok(())
        }
    }
}
