//! Writes the dotenv file that later script lines and steps load, so that a failed run never
//! leaves a half-written or stale file and a later `git add -A` never commits the token.
//!
//! The file holds only `NAME=value` lines whose values need no quoting at all (the token is
//! an RFC 6750 `b64token`, the expiry an RFC 3339 time, the scopes `[a-z:_-]` joined by
//! commas), so it reads back identically through `. ./file` in POSIX sh, `set -a`,
//! `docker run --env-file` and GitLab's dotenv report. It is written to a temporary file in
//! the same folder, fsynced and renamed over the target, mode 0600; an existing target is
//! untouched unless the whole run succeeded.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;

use crate::token::Token;

/// What [`write`] did besides writing the file.
#[derive(Debug, Default)]
pub struct Written {
    /// The git exclude file the path was added to (or already listed in).
    pub excluded_in: Option<PathBuf>,
    /// Why the path could not be excluded from git, when it lies in a work tree.
    pub exclude_failed: Option<String>,
    /// The uid the file was given, when running as root in someone else's folder.
    pub owner: Option<u32>,
}

/// The dotenv lines for `token`, under `variable`, recording the consumer it belongs to
/// (see [`crate::store`]) so a later run can reuse it.
pub fn render(variable: &str, token: &Token, client_id: &str) -> String {
    let mut text = format!("{variable}={}\n", token.secret.expose_secret());
    if let Some(at) = token.expires_at {
        text.push_str(&format!("{variable}_EXPIRES_AT={}\n", format_time(at)));
    }
    text.push_str(&format!("{variable}_SCOPES={}\n", token.scopes.join(",")));
    text.push_str(&format!(
        "{variable}_CLIENT={}\n",
        crate::store::fingerprint(client_id)
    ));
    text
}

/// UTC RFC 3339 to the second, e.g. `2026-11-29T20:07:53Z`.
pub fn format_time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Writes `contents` to `path` atomically with mode 0600, creating parent folders, and adds
/// the path to the enclosing git repository's `info/exclude`.
pub fn write(path: &Path, contents: &str) -> anyhow::Result<Written> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            bail!(
                "{} is a symbolic link; refusing to follow it (it could point at a file that must not be overwritten). Remove it or choose another OUTPUT_FILE",
                path.display()
            )
        }
        Ok(meta) if meta.is_dir() => bail!(
            "{} is a folder: set OUTPUT_FILE to a file path",
            path.display()
        ),
        _ => {}
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| {
        format!(
            "cannot create the folder {} for {}",
            parent.display(),
            path.display()
        )
    })?;

    let mut written = Written::default();
    match exclude_from_git(path, &parent) {
        Ok(excluded) => written.excluded_in = excluded,
        Err(e) => written.exclude_failed = Some(format!("{e:#}")),
    }

    let mut temp = tempfile::Builder::new()
        .prefix(".oauth-token-pipe.")
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(&parent)
        .with_context(|| format!("cannot create a file in {}", parent.display()))?;
    temp.write_all(contents.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    written.owner = give_to_folder_owner(temp.as_file(), &parent)?;
    temp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    // No fsync of the folder: the file's own fsync before the rename is what guarantees a
    // reader (even after a crash) sees the whole new file or the whole old one. Syncing the
    // folder would only make the new name survive a power cut, which a CI step re-run covers,
    // and it cost 0.3–2 ms of a ~4 ms run (BENCHMARKS.md).
    Ok(written)
}

/// Pipe containers run as root, but the user who must `source` the file may not be (a build
/// container with `run-as-user`, GitHub's runner user owning the workspace). As root, give
/// the file to the owner of its folder, so that user (and no one else) can read it.
fn give_to_folder_owner(file: &File, folder: &Path) -> anyhow::Result<Option<u32>> {
    let mine = file
        .metadata()
        .context("cannot inspect the temporary file")?;
    let folder =
        fs::metadata(folder).with_context(|| format!("cannot inspect {}", folder.display()))?;
    if mine.uid() != 0 || folder.uid() == 0 {
        return Ok(None);
    }
    std::os::unix::fs::fchown(file, Some(folder.uid()), Some(folder.gid()))
        .context("cannot give the file to the owner of its folder")?;
    Ok(Some(folder.uid()))
}

/// When `path` lies in a git work tree, lists it in that repository's `info/exclude`
/// (which, unlike `.gitignore`, changes nothing that is committed).
fn exclude_from_git(path: &Path, parent: &Path) -> anyhow::Result<Option<PathBuf>> {
    let parent =
        fs::canonicalize(parent).with_context(|| format!("cannot resolve {}", parent.display()))?;
    let Some(name) = path.file_name() else {
        return Ok(None);
    };
    let file = parent.join(name);
    let Some((work_tree, git_dir)) = find_git(&parent)? else {
        return Ok(None);
    };
    let relative = file
        .strip_prefix(&work_tree)
        .expect("the work tree encloses the file");
    let Some(relative) = relative.to_str() else {
        bail!("{} is not UTF-8", relative.display())
    };
    let pattern = format!("/{}", escape_pattern(relative));

    let common = match fs::read_to_string(git_dir.join("commondir")) {
        Ok(common) => git_dir.join(common.trim()),
        Err(_) => git_dir,
    };
    let info = common.join("info");
    let exclude = info.join("exclude");
    let mut existing = String::new();
    if let Ok(mut f) = File::open(&exclude) {
        f.read_to_string(&mut existing)
            .with_context(|| format!("cannot read {}", exclude.display()))?;
    }
    if existing.lines().any(|line| line == pattern) {
        return Ok(Some(exclude));
    }
    fs::create_dir_all(&info).with_context(|| format!("cannot create {}", info.display()))?;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&exclude)
        .with_context(|| format!("cannot open {}", exclude.display()))?;
    let separator = if existing.is_empty() || existing.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    write!(
        f,
        "{separator}# written by oauth-token-pipe: holds an access token\n{pattern}\n"
    )
    .with_context(|| format!("cannot write {}", exclude.display()))?;
    // As root in someone else's repository (a pipe container), what we created must belong
    // to the repository's owner, or their own git could no longer update it.
    let repo =
        fs::metadata(&common).with_context(|| format!("cannot inspect {}", common.display()))?;
    for path in [&info, &exclude] {
        let meta =
            fs::metadata(path).with_context(|| format!("cannot inspect {}", path.display()))?;
        if meta.uid() == 0 && repo.uid() != 0 {
            std::os::unix::fs::chown(path, Some(repo.uid()), Some(repo.gid())).with_context(
                || format!("cannot give {} to the repository's owner", path.display()),
            )?;
        }
    }
    Ok(Some(exclude))
}

/// The nearest enclosing work tree and its git dir (`.git` folder, or the folder a `.git`
/// file points at, as in worktrees and submodules).
fn find_git(start: &Path) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    for dir in start.ancestors() {
        let dot_git = dir.join(".git");
        let Ok(meta) = fs::metadata(&dot_git) else {
            continue;
        };
        if meta.is_dir() {
            return Ok(Some((dir.to_path_buf(), dot_git)));
        }
        let text = fs::read_to_string(&dot_git)
            .with_context(|| format!("cannot read {}", dot_git.display()))?;
        if let Some(target) = text.trim().strip_prefix("gitdir:") {
            return Ok(Some((dir.to_path_buf(), dir.join(target.trim()))));
        }
    }
    Ok(None)
}

/// Escapes gitignore's special characters so the pattern matches exactly one path.
fn escape_pattern(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '!' | '#' | ' ') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_specials_are_escaped() {
        assert_eq!(escape_pattern("a b/[x]*?.env"), "a\\ b/\\[x\\]\\*\\?.env");
        assert_eq!(escape_pattern("#x/!y"), "\\#x/\\!y");
    }

    #[test]
    fn time_is_utc_rfc3339_seconds() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_796_069_273_500);
        assert_eq!(format_time(at), "2026-11-30T20:07:53Z");
    }
}
