//! Tokens this program wrote earlier: finding one that can be reused instead of fetched,
//! and the per-user cache `git-credential` keeps them in.
//!
//! A pipeline that runs the pipe at the top of every step (with the file shared as an
//! artifact), or a developer's git that asks for credentials twice, should not mint a new
//! token each time. The dotenv file records which configuration a token belongs to — the
//! `<TOKEN_VARIABLE>_CLIENT=` line, 16 hex digits of SHA-256 of the provider's reuse key
//! (provider, token endpoint, client, and for git the host) — and a token is reused only
//! under an equal key, under the same variable name, with at least MIN_VALIDITY left.
//!
//! The fingerprint is not a secret, so a file alone proves nothing: it is trusted only when
//! it is a regular file, mode 0600, owned by us or by the owner of its folder (what this
//! program leaves behind), and every field in it passes the checks a fresh token response
//! must pass (`deliver::dotenv::parse`).

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use crate::deliver::dotenv::{self, Stored};
use crate::safe_fs;
use crate::vars::{self, Problems, Raw};

/// A stored token is reused only with at least this many seconds left.
pub const DEFAULT_MIN_VALIDITY_SECS: u64 = 600;

/// Whether and when stored tokens are reused.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Reuse a stored token for the same configuration when enough validity is left.
    pub reuse: bool,
    /// The validity a stored token must have left to be reused.
    pub min_validity: Duration,
    /// The per-user cache folder (`git-credential` only).
    pub cache: Option<PathBuf>,
}

impl Settings {
    /// Reads REUSE and MIN_VALIDITY, and with `cache` XDG_CACHE_HOME or HOME.
    pub fn parse(raw: &Raw, cache: bool, problems: &mut Problems) -> Settings {
        let reuse = vars::boolean(raw, "REUSE", true, problems);
        let min_validity = vars::number(
            raw,
            "MIN_VALIDITY",
            DEFAULT_MIN_VALIDITY_SECS,
            (0, 86_400),
            "seconds",
            problems,
        );
        let cache = cache.then(|| cache_folder(raw, problems)).flatten();
        Settings {
            reuse,
            min_validity: Duration::from_secs(min_validity),
            cache,
        }
    }
}

/// `$XDG_CACHE_HOME/oauth-token-pipe`, else `$HOME/.cache/oauth-token-pipe`: per user, never
/// the current folder (git runs helpers from whatever folder it is in).
fn cache_folder(raw: &Raw, problems: &mut Problems) -> Option<PathBuf> {
    let base = match (raw.get("XDG_CACHE_HOME"), raw.get("HOME")) {
        (Some(xdg), _) if xdg.starts_with('/') => PathBuf::from(xdg),
        (_, Some(home)) => PathBuf::from(home).join(".cache"),
        _ => {
            problems.push("HOME", "is not set (nor XDG_CACHE_HOME), so git-credential has nowhere to cache the token: set HOME.");
            return None;
        }
    };
    Some(base.join("oauth-token-pipe"))
}

/// The first 16 hex digits of SHA-256 of `key`: names the configuration, reveals nothing.
pub fn fingerprint(key: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cache file for `key` in `folder`, after making sure the folder is ours and 0700.
pub fn cache_file(folder: &Path, key: &str) -> anyhow::Result<PathBuf> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)
        .with_context(|| format!("cannot create the cache folder {}", folder.display()))?;
    let meta = std::fs::symlink_metadata(folder)
        .with_context(|| format!("cannot inspect {}", folder.display()))?;
    if !meta.is_dir() {
        bail!(
            "the cache folder {} is not a folder (a symbolic link?); remove it",
            folder.display()
        );
    }
    if meta.uid() != safe_fs::euid() {
        bail!(
            "the cache folder {} belongs to uid {}, not to this user; remove it or set XDG_CACHE_HOME",
            folder.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private (mode 0700)", folder.display()))?;
    }
    Ok(folder.join(format!("{}.env", fingerprint(key))))
}

/// Why a file holds no reusable token.
#[derive(Debug, PartialEq, Eq)]
pub enum NotReusable {
    /// No file there.
    Missing,
    /// The file is not one this program wrote for TOKEN_VARIABLE, or not trustworthy.
    NotOurs(String),
}

/// Reads `path` as a dotenv file this program wrote for `variable`, if it can be trusted.
pub fn read(path: &Path, variable: &str) -> Result<Stored, NotReusable> {
    let not_ours = |why: String| NotReusable::NotOurs(why);
    let mut file = match safe_fs::open_read(path) {
        Ok(Some(file)) => file,
        Ok(None) => return Err(NotReusable::Missing),
        Err(e) => return Err(not_ours(e.to_string())),
    };
    let meta = file.metadata().map_err(|e| not_ours(e.to_string()))?;
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let folder_owner = std::fs::metadata(folder)
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if meta.mode() & 0o077 != 0 {
        return Err(not_ours(format!(
            "its mode is {:04o}, not 0600 as this program writes it",
            meta.mode() & 0o7777
        )));
    }
    if !safe_fs::trusted_owner(meta.uid(), folder_owner) {
        return Err(not_ours(format!(
            "it belongs to uid {}, neither this user nor the folder's owner",
            meta.uid()
        )));
    }
    let text = safe_fs::read_capped(&mut file)
        .map_err(|e| not_ours(format!("it cannot be read ({e})")))?;
    dotenv::parse(&text, variable, SystemTime::now()).map_err(not_ours)
}

/// A stored token for `key` with at least `min_validity` left, or why there is none.
pub fn reusable(
    path: &Path,
    variable: &str,
    key: &str,
    min_validity: Duration,
) -> Result<Stored, String> {
    let stored = match read(path, variable) {
        Ok(stored) => stored,
        Err(NotReusable::Missing) => return Err(format!("{} does not exist yet", path.display())),
        Err(NotReusable::NotOurs(why)) => {
            return Err(format!("{} holds no token of ours: {why}", path.display()));
        }
    };
    if stored.client != fingerprint(key) {
        return Err(format!(
            "the token in {} was issued for another configuration (client, endpoint or provider)",
            path.display()
        ));
    }
    let left = stored.token.expiry.left(SystemTime::now());
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
    use crate::token::{Expiry, Token};

    #[test]
    fn fingerprints_are_16_hex_digits_of_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(fingerprint("abc"), "ba7816bf8f01cfea");
        assert_ne!(fingerprint("key-a"), fingerprint("key-b"));
    }

    fn write(path: &Path, mode: u32) {
        let at = SystemTime::now() + Duration::from_secs(3600);
        let token = Token::new("abc.def", Expiry::At(at), vec!["repository".into()]);
        let (text, _) = dotenv::render("BB", &token, &fingerprint("key"));
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn reuses_only_a_trusted_file_for_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.env");
        write(&path, 0o600);
        let stored = reusable(&path, "BB", "key", Duration::from_secs(600)).unwrap();
        assert_eq!(
            (stored.token.len, stored.token.scopes.clone()),
            (7, vec!["repository".to_string()])
        );
        assert!(
            reusable(&path, "BB", "other-key", Duration::ZERO)
                .unwrap_err()
                .contains("another configuration")
        );
        assert!(
            reusable(&path, "BB", "key", Duration::from_secs(7200))
                .unwrap_err()
                .contains("less than MIN_VALIDITY")
        );
        assert!(
            reusable(&path, "OTHER", "key", Duration::ZERO)
                .unwrap_err()
                .contains("does not write")
        );
        write(&path, 0o644);
        assert!(
            reusable(&path, "BB", "key", Duration::ZERO)
                .unwrap_err()
                .contains("not 0600")
        );
        assert!(
            reusable(&dir.path().join("none"), "BB", "key", Duration::ZERO)
                .unwrap_err()
                .contains("does not exist")
        );
    }

    #[test]
    fn the_cache_folder_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("cache");
        std::fs::create_dir(&folder).unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
        let file = cache_file(&folder, "k").unwrap();
        assert_eq!(std::fs::metadata(&folder).unwrap().mode() & 0o777, 0o700);
        assert_eq!(file, folder.join(format!("{}.env", fingerprint("k"))));
    }
}
