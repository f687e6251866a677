//! Tokens this program wrote earlier: finding one that can be reused instead of fetched.
//!
//! A pipeline that runs the pipe at the top of every step (with the file shared as an
//! artifact), or a developer's git that asks for credentials twice, should not mint a new
//! token each time. The dotenv file records which consumer a token belongs to — one more
//! `KEY=VALUE` line, `<TOKEN_VARIABLE>_CLIENT=`, the first 16 hex digits of SHA-256 of
//! CLIENT_ID (no comment lines: GitLab's dotenv parser rejects them) — and a token is reused
//! only for the same consumer, under the same variable name, with at least MIN_VALIDITY left.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use crate::token::{self, Token};

/// The first 16 hex digits of SHA-256 of `client_id`: names the consumer, reveals nothing.
pub fn fingerprint(client_id: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, client_id.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token read back from a file we wrote.
#[derive(Debug)]
pub struct Stored {
    /// The token, with its expiry and scopes.
    pub token: Token,
    /// The consumer fingerprint recorded with it.
    pub client: String,
}

impl Stored {
    /// Time left before it expires (zero when expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.token
            .expires_at
            .and_then(|at| at.duration_since(now).ok())
            .unwrap_or(Duration::ZERO)
    }
}

/// Why a file holds no reusable token.
#[derive(Debug, PartialEq, Eq)]
pub enum NotReusable {
    /// No file there.
    Missing,
    /// The file is not one this program wrote for TOKEN_VARIABLE (the reason says why).
    NotOurs(String),
}

/// Reads `path` as a dotenv file this program wrote for `variable`.
pub fn read(path: &Path, variable: &str) -> Result<Stored, NotReusable> {
    match fs::symlink_metadata(path) {
        Err(_) => return Err(NotReusable::Missing),
        Ok(meta) if !meta.is_file() => {
            return Err(NotReusable::NotOurs("it is not a regular file".into()));
        }
        Ok(_) => {}
    }
    let text = fs::read_to_string(path)
        .map_err(|e| NotReusable::NotOurs(format!("it cannot be read ({e})")))?;
    let value = |suffix: &str| {
        let key = format!("{variable}{suffix}=");
        text.lines()
            .find_map(|line| line.strip_prefix(&key))
            .map(str::to_owned)
    };
    let not_ours = |what: &str| NotReusable::NotOurs(format!("it has no {variable}{what} line"));
    let secret = value("").ok_or_else(|| not_ours(""))?;
    token::check_token(&secret)
        .map_err(|e| NotReusable::NotOurs(format!("its token is unusable: {e}")))?;
    let client = value("_CLIENT").ok_or_else(|| not_ours("_CLIENT"))?;
    let expires = value("_EXPIRES_AT").ok_or_else(|| not_ours("_EXPIRES_AT"))?;
    let expires_at = humantime::parse_rfc3339(&expires).map_err(|_| {
        NotReusable::NotOurs(format!("its expiry {expires:?} is not an RFC 3339 time"))
    })?;
    let scopes = crate::scope::parse_list(&value("_SCOPES").unwrap_or_default());
    let remaining = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Ok(Stored {
        token: Token {
            len: secret.chars().count(),
            secret: SecretString::from(secret),
            expires_in: Some(remaining.as_secs()),
            expires_at: Some(expires_at),
            scopes,
        },
        client,
    })
}

/// A stored token for `client_id` with at least `min_validity` left, or why there is none.
pub fn reusable(
    path: &Path,
    variable: &str,
    client_id: &str,
    min_validity: Duration,
) -> Result<Stored, String> {
    let stored = match read(path, variable) {
        Ok(stored) => stored,
        Err(NotReusable::Missing) => return Err(format!("{} does not exist yet", path.display())),
        Err(NotReusable::NotOurs(why)) => {
            return Err(format!("{} holds no token of ours: {why}", path.display()));
        }
    };
    if stored.client != fingerprint(client_id) {
        return Err(format!(
            "the token in {} was issued to another OAuth consumer",
            path.display()
        ));
    }
    let left = stored.remaining(SystemTime::now());
    if left < min_validity {
        return Err(format!(
            "the token in {} has {} s left, less than MIN_VALIDITY ({} s)",
            path.display(),
            left.as_secs(),
            min_validity.as_secs()
        ));
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_16_hex_digits_of_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(fingerprint("abc"), "ba7816bf8f01cfea");
        assert_ne!(fingerprint("key-a"), fingerprint("key-b"));
    }

    #[test]
    fn reads_back_what_render_writes_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.env");
        let at = SystemTime::now() + Duration::from_secs(3600);
        let token = Token {
            secret: SecretString::from("abc.def"),
            len: 7,
            expires_in: Some(3600),
            expires_at: Some(at),
            scopes: vec!["repository".into()],
        };
        fs::write(&path, crate::output::render("BB", &token, "key")).unwrap();
        let stored = reusable(&path, "BB", "key", Duration::from_secs(600)).unwrap();
        assert_eq!(
            (stored.token.len, stored.token.scopes.clone()),
            (7, vec!["repository".to_string()])
        );
        assert!(
            reusable(&path, "BB", "other-key", Duration::ZERO)
                .unwrap_err()
                .contains("another OAuth consumer")
        );
        assert!(
            reusable(&path, "BB", "key", Duration::from_secs(7200))
                .unwrap_err()
                .contains("less than MIN_VALIDITY")
        );
        assert!(
            reusable(&path, "OTHER", "key", Duration::ZERO)
                .unwrap_err()
                .contains("no OTHER line")
        );
        fs::write(&path, "BB=abc\nBB_EXPIRES_AT=2026-01-01T00:00:00Z\n").unwrap();
        assert!(
            reusable(&path, "BB", "key", Duration::ZERO)
                .unwrap_err()
                .contains("no BB_CLIENT line")
        );
        assert!(
            reusable(&dir.path().join("none"), "BB", "key", Duration::ZERO)
                .unwrap_err()
                .contains("does not exist")
        );
    }
}
