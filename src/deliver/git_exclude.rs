//! Keeps the token file out of git: when it lies in a work tree, its path (and the pattern
//! of the temporary files it is written through) goes into that repository's
//! `info/exclude`, which, unlike `.gitignore`, changes nothing that is committed.
//!
//! This runs as root in folders other users control, so it trusts only the `.git` of the
//! work tree that holds the file (the nearest one), and only when that `.git` (and the git
//! dir and common dir it leads to) belongs to us or to the owner of the file's folder:
//! a `/tmp/.git` planted by another user is ignored. Every file is opened through
//! [`safe_fs`] (no symlink followed, no FIFO or device read, every read capped), and what it
//! creates is given to the repository's owner through the open descriptor.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::safe_fs::{self, trusted_owner};

/// Lists `file` (in the canonical folder `folder`, owned by `folder_owner`) in its work
/// tree's exclude file; `Ok(None)` when it is in no (trusted) work tree.
pub fn exclude(folder: &Path, name: &str, folder_owner: u32) -> anyhow::Result<Option<PathBuf>> {
    let Some((work_tree, git_dir, redirected_by)) = find_git(folder, folder_owner)? else {
        return Ok(None);
    };
    let relative_folder = folder
        .strip_prefix(&work_tree)
        .expect("the work tree encloses the folder");
    let Some(relative_folder) = relative_folder.to_str() else {
        bail!("{} is not UTF-8", relative_folder.display())
    };
    if relative_folder
        .chars()
        .chain(name.chars())
        .any(char::is_control)
    {
        bail!("the path has a control character, which an exclude pattern cannot hold");
    }
    let prefix = if relative_folder.is_empty() {
        String::from("/")
    } else {
        format!("/{}/", escape_pattern(relative_folder))
    };
    let patterns = [
        format!("{prefix}{}", escape_pattern(name)),
        // The temporary files the token is written through (see `file::write_atomic`).
        format!("{prefix}.oauth-token-pipe.*.tmp"),
    ];

    let (common_path, common) = common_dir(&git_dir, folder_owner, redirected_by)?;
    let repo_owner = common.metadata().context("cannot inspect the git dir")?;
    let created_info = safe_fs::make_dir_at(&common, "info")
        .with_context(|| format!("cannot create {}", common_path.join("info").display()))?;
    let info = safe_fs::open_dir_at(&common, "info")
        .with_context(|| format!("cannot open {}", common_path.join("info").display()))?;
    let info_meta = info.metadata()?;
    if created_info {
        give(&info, &repo_owner)?;
    } else if !trusted_owner(info_meta.uid(), folder_owner) {
        bail!(
            "{} belongs to uid {}, neither us nor the folder's owner",
            common_path.join("info").display(),
            info_meta.uid()
        );
    }
    let exclude_path = common_path.join("info").join("exclude");
    let (mut file, created) = safe_fs::open_append_at(&info, "exclude", true)
        .with_context(|| format!("cannot open {}", exclude_path.display()))?;
    if created {
        give(&file, &repo_owner)?;
    } else {
        let uid = file.metadata()?.uid();
        if !trusted_owner(uid, folder_owner) {
            bail!(
                "{} belongs to uid {uid}, neither us nor the folder's owner",
                exclude_path.display()
            );
        }
    }
    let existing = safe_fs::read_capped(&mut file)
        .with_context(|| format!("cannot read {}", exclude_path.display()))?;
    let missing: Vec<&String> = patterns
        .iter()
        .filter(|p| !existing.lines().any(|line| line == p.as_str()))
        .collect();
    if missing.is_empty() {
        return Ok(Some(exclude_path));
    }
    let separator = if existing.is_empty() || existing.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let mut text = format!("{separator}# written by oauth-token-pipe: holds an access token\n");
    for pattern in missing {
        text.push_str(pattern);
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", exclude_path.display()))?;
    Ok(Some(exclude_path))
}

/// As root in someone else's repository (a pipe container), what we create must belong to
/// the repository's owner, or their own git could no longer update it.
fn give(file: &File, owner: &std::fs::Metadata) -> anyhow::Result<()> {
    if safe_fs::euid() == 0 && owner.uid() != 0 {
        // A failure (rootless containers map no such uid) leaves a root-owned file that
        // git can still read; it is not worth failing the run over.
        let _ = std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid()));
    }
    Ok(())
}

/// The nearest `.git` at or above `folder`, if it is one we may trust: the work tree, the
/// git dir it names, and when a `.git` file named it, that file's owner.
fn find_git(
    folder: &Path,
    folder_owner: u32,
) -> anyhow::Result<Option<(PathBuf, PathBuf, Option<u32>)>> {
    for dir in folder.ancestors() {
        let dot_git = dir.join(".git");
        let Ok(meta) = std::fs::symlink_metadata(&dot_git) else {
            continue;
        };
        if !trusted_owner(meta.uid(), folder_owner) {
            // Someone else's `.git` above our folder (a planted /tmp/.git): not ours to edit.
            return Ok(None);
        }
        if meta.is_dir() {
            return Ok(Some((dir.to_path_buf(), dot_git, None)));
        }
        if !meta.is_file() {
            bail!("{} is neither a folder nor a file", dot_git.display());
        }
        let mut file = safe_fs::open_read(&dot_git)
            .with_context(|| format!("cannot read {}", dot_git.display()))?
            .context(".git vanished")?;
        let text = safe_fs::read_capped(&mut file)
            .with_context(|| format!("cannot read {}", dot_git.display()))?;
        let Some(target) = text.trim().strip_prefix("gitdir:") else {
            bail!("{} is a file without a gitdir: line", dot_git.display());
        };
        return Ok(Some((
            dir.to_path_buf(),
            dir.join(target.trim()),
            Some(meta.uid()),
        )));
    }
    Ok(None)
}

/// The git dir's common dir (`commondir` in a worktree's git dir), opened and trusted.
///
/// A redirect (a `.git` file's `gitdir:`, a `commondir`) may only lead to a folder of
/// whoever wrote it: the user owning the clone can point it anywhere, and "ours" (root's)
/// would otherwise let them steer root into `/etc` or `/root/x/.git` (issue 10, finding 6).
fn common_dir(
    git_dir: &Path,
    folder_owner: u32,
    redirected_by: Option<u32>,
) -> anyhow::Result<(PathBuf, File)> {
    let open_trusted = |path: &Path, redirected_by: Option<u32>| -> anyhow::Result<File> {
        let dir =
            safe_fs::open_dir(path).with_context(|| format!("cannot open {}", path.display()))?;
        let uid = dir.metadata()?.uid();
        if let Some(writer) = redirected_by.filter(|writer| *writer != uid) {
            bail!(
                "{} belongs to uid {uid}, not to uid {writer} who pointed at it",
                path.display()
            );
        }
        if !trusted_owner(uid, folder_owner) {
            bail!(
                "{} belongs to uid {uid}, neither us nor the folder's owner",
                path.display()
            );
        }
        Ok(dir)
    };
    let git = open_trusted(git_dir, redirected_by)?;
    let git_owner = git.metadata()?.uid();
    let Some(mut file) = safe_fs::open_read_at(&git, "commondir")
        .with_context(|| format!("cannot read {}", git_dir.join("commondir").display()))?
    else {
        return Ok((git_dir.to_path_buf(), git));
    };
    let common = safe_fs::read_capped(&mut file)
        .with_context(|| format!("cannot read {}", git_dir.join("commondir").display()))?;
    let path = git_dir.join(common.trim());
    let dir = open_trusted(&path, Some(git_owner))?;
    Ok((path, dir))
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
    fn the_file_and_its_temporary_files_are_excluded_once() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(repo.path().join(".git")).unwrap();
        std::fs::create_dir_all(repo.path().join("sub dir")).unwrap();
        let folder = repo.path().canonicalize().unwrap().join("sub dir");
        let owner = safe_fs::euid();
        let at = exclude(&folder, "t.env", owner).unwrap().unwrap();
        exclude(&folder, "t.env", owner).unwrap();
        let text = std::fs::read_to_string(at).unwrap();
        assert_eq!(
            text,
            "# written by oauth-token-pipe: holds an access token\n/sub\\ dir/t.env\n/sub\\ dir/.oauth-token-pipe.*.tmp\n"
        );
    }
}
