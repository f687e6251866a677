//! Writes the dotenv file so that a failed run never leaves a half-written or stale file,
//! a later `git add -A` never commits the token, and nothing of the user's is lost.
//!
//! The text goes to a temporary file in the same folder (mode 0600, excluded from git by
//! pattern), is fsynced and renamed over the target; an existing target is untouched unless
//! the whole run succeeded, and is replaced only when it is empty or holds nothing but
//! lines this program writes for TOKEN_VARIABLE: a `build.env` with `VERSION=1.2.3` is
//! refused (exit 6), naming its keys, never their values.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{dotenv, git_exclude};
use crate::safe_fs;

/// What [`write`] did besides writing the file.
#[derive(Debug, Default)]
pub struct Written {
    /// The git exclude file the path was added to (or already listed in).
    pub excluded_in: Option<PathBuf>,
    /// Why the path could not be excluded from git, when it lies in a work tree.
    pub exclude_failed: Option<String>,
    /// The uid the file was given, when running as root in someone else's folder.
    pub owner: Option<u32>,
    /// Why that could not be done (root in a user namespace); the file stays 0600.
    pub owner_failed: Option<String>,
}

/// Writes `contents` (the dotenv text for `variable`) to `path` atomically with mode 0600,
/// creating parent folders, and adds the path to the enclosing git repository's exclude.
pub fn write(path: &Path, variable: &str, contents: &str) -> anyhow::Result<Written> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => bail!(
            "{} is a symbolic link; refusing to follow it (it could point at a file that must not be overwritten). Remove it or choose another OUTPUT_FILE",
            path.display()
        ),
        Ok(meta) if meta.is_dir() => bail!(
            "{} is a folder: set OUTPUT_FILE to a file path",
            path.display()
        ),
        Ok(_) => refuse_foreign(path, variable)?,
        Err(_) => {}
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
    let folder = fs::canonicalize(&parent)
        .with_context(|| format!("cannot resolve {}", parent.display()))?;
    let folder_meta =
        fs::metadata(&folder).with_context(|| format!("cannot inspect {}", folder.display()))?;

    let mut written = Written::default();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    match git_exclude::exclude(&folder, name, folder_meta.uid()) {
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
    // Pipe containers run as root, but the user who must `source` the file may not be (a
    // build container with `run-as-user`, GitHub's runner user owning the workspace). As
    // root, give the file to the owner of its folder, so that user (and no one else) can
    // read it. Root in a user namespace (rootless Docker, Podman) may not map that uid: the
    // file then stays root's, mode 0600, and the run goes on with a warning.
    if safe_fs::euid() == 0 && folder_meta.uid() != 0 {
        match std::os::unix::fs::fchown(
            temp.as_file(),
            Some(folder_meta.uid()),
            Some(folder_meta.gid()),
        ) {
            Ok(()) => written.owner = Some(folder_meta.uid()),
            Err(e) => written.owner_failed = Some(e.to_string()),
        }
    }
    temp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    // No fsync of the folder: the file's own fsync before the rename is what guarantees a
    // reader (even after a crash) sees the whole new file or the whole old one. Syncing the
    // folder would only make the new name survive a power cut, which a CI step re-run covers,
    // and it cost 0.3–2 ms of a ~4 ms run (BENCHMARKS.md).
    Ok(written)
}

/// An existing file is replaced only when it holds nothing but our lines for `variable`;
/// checked again before any request, so a foreign file costs no token.
pub fn refuse_foreign(path: &Path, variable: &str) -> anyhow::Result<()> {
    let Some(mut file) =
        safe_fs::open_read(path).with_context(|| format!("cannot read {}", path.display()))?
    else {
        return Ok(());
    };
    let text = safe_fs::read_capped(&mut file)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let foreign = dotenv::foreign_keys(&text, variable);
    if !foreign.is_empty() {
        bail!(
            "{} already exists and holds lines this program did not write ({}); replacing it would lose them. Set OUTPUT_FILE to a file of its own, e.g. oauth-token.env",
            path.display(),
            foreign.join(", ")
        );
    }
    Ok(())
}
