//! Opening files in folders other people control, as root, without being steered.
//!
//! The pipe runs as root in containers that mount someone else's clone. Every file it opens
//! there is opened relative to an open folder with `O_NOFOLLOW` (a planted symlink fails
//! instead of being followed), `O_NONBLOCK` (a planted FIFO does not hang the run), checked
//! with `fstat` to be a regular file with one link (not `/dev/zero`, not a hard link to
//! `/etc/passwd`), read with a cap, and changed only through the open descriptor (`fchown`),
//! never by a path that could be swapped in between.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The most any file we read back may hold.
pub const MAX_READ: u64 = 1024 * 1024;

fn c_name(name: &Path) -> io::Result<CString> {
    CString::new(name.as_os_str().as_bytes()).map_err(|_| io::Error::other("a NUL in a path"))
}

fn check(fd: libc::c_int) -> io::Result<File> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by open/openat and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Opens the folder `path`, not following a symlink at its last component.
pub fn open_dir(path: &Path) -> io::Result<File> {
    let name = c_name(path)?;
    // SAFETY: a valid C string; the result is checked.
    let fd = unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    check(fd)
}

/// Opens the folder `name` inside `dir`, not following a symlink.
pub fn open_dir_at(dir: &File, name: &str) -> io::Result<File> {
    let cname = c_name(Path::new(name))?;
    // SAFETY: a valid fd and C string; the result is checked.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            cname.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    check(fd)
}

/// Creates the folder `name` (mode 0755) inside `dir`; `Ok(false)` when it already exists.
pub fn make_dir_at(dir: &File, name: &str) -> io::Result<bool> {
    let cname = c_name(Path::new(name))?;
    // SAFETY: a valid fd and C string.
    let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), 0o755) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::AlreadyExists {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Opens the regular file `name` inside `dir` for appending (creating it, mode 0644, when
/// `create`); returns it and whether it was created.
pub fn open_append_at(dir: &File, name: &str, create: bool) -> io::Result<(File, bool)> {
    let cname = c_name(Path::new(name))?;
    let base =
        libc::O_RDWR | libc::O_APPEND | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    if create {
        // SAFETY: a valid fd and C string; the result is checked.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                cname.as_ptr(),
                base | libc::O_CREAT | libc::O_EXCL,
                0o644,
            )
        };
        if fd >= 0 {
            return Ok((check(fd)?, true));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
    // SAFETY: as above.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), cname.as_ptr(), base) };
    let file = check(fd)?;
    regular(&file)?;
    Ok((file, false))
}

/// Opens the regular file `name` inside `dir` for reading; `Ok(None)` when it is absent.
pub fn open_read_at(dir: &File, name: &str) -> io::Result<Option<File>> {
    open_regular(dir.as_raw_fd(), &c_name(Path::new(name))?)
}

/// Opens `path` for reading, not following a symlink at its last component, refusing
/// anything but a regular file with one link; `Ok(None)` when it is absent.
pub fn open_read(path: &Path) -> io::Result<Option<File>> {
    open_regular(libc::AT_FDCWD, &c_name(path)?)
}

/// `openat(dir, name)` for reading without following a last-component symlink or blocking
/// on a FIFO, then [`regular`]; `Ok(None)` when it is absent.
fn open_regular(dir: libc::c_int, name: &CString) -> io::Result<Option<File>> {
    // SAFETY: `dir` is an open folder's fd or AT_FDCWD, `name` a valid C string; the result
    // is checked.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    match check(fd) {
        Ok(file) => {
            regular(&file)?;
            Ok(Some(file))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            Err(io::Error::other("it is a symbolic link"))
        }
        Err(e) => Err(e),
    }
}

/// A regular file with exactly one link, or an error saying what it is instead.
pub fn regular(file: &File) -> io::Result<()> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    if meta.nlink() != 1 {
        return Err(io::Error::other("it has more than one hard link"));
    }
    Ok(())
}

/// Reads at most [`MAX_READ`] bytes as UTF-8; more is an error, not a truncation.
pub fn read_capped(file: &mut File) -> io::Result<String> {
    let mut bytes = Vec::new();
    file.take(MAX_READ + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_READ {
        return Err(io::Error::other("it is larger than 1 MiB"));
    }
    String::from_utf8(bytes).map_err(|_| io::Error::other("it is not UTF-8"))
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether `uid` is one we may trust a file of: ours, or the owner of the folder it is for.
pub fn trusted_owner(uid: u32, folder_owner: u32) -> bool {
    uid == euid() || uid == folder_owner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_fifos_and_devices_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = open_dir(dir.path()).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).unwrap();
        assert!(open_read_at(&d, "link").is_err());
        assert!(open_read(&dir.path().join("link")).is_err());
        let fifo = c_name(&dir.path().join("fifo")).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(
            open_read_at(&d, "fifo")
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
        assert!(open_read(Path::new("/dev/zero")).is_err());
        std::fs::write(dir.path().join("a"), "x").unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        assert!(
            open_append_at(&d, "a", true)
                .unwrap_err()
                .to_string()
                .contains("hard link")
        );
        assert!(open_read_at(&d, "missing").unwrap().is_none());
    }
}
