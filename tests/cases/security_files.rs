//! Regression tests for the file findings (6–11) of the security review (issue 10), each
//! written as the attack: the attacker's move (a planted `.git`, a symlink, a FIFO, a
//! poisoned dotenv file, someone else's cache folder) is the setup, and the assertion is on
//! the victim's file — its bytes, its owner, its mode — and on what the binary sent.
//!
//! The pipe runs as root in containers that mount other users' clones, so these tests run
//! as root and play the other users by `chown`ing what they plant to uid 1000 (the clone's
//! owner, trusted) or 1234 (someone else, never trusted).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::support::fake::{FakeBitbucket, Reply, Setup};
use crate::support::{Run, bitbucket_fingerprint, listing, pipe, pipe_std, run};

/// The clone's owner: the user the pipe works for when it runs as root in their folder.
const USER: u32 = 1000;
/// Someone else on the machine: nothing of theirs may be trusted or touched.
const OTHER: u32 = 1234;
/// The variable Bitbucket's token is written under by default.
const VAR: &str = "BITBUCKET_ACCESS_TOKEN";

/// Whether this test can play other users; outside CI a non-root run skips loudly.
fn as_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI runs as root and must run {test}"
    );
    eprintln!("!!! NOT RUN: {test}: needs root to chown files to other users !!!");
    false
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A folder owned by `uid`, as a user's checkout would be.
fn folder_of(path: &Path, uid: u32) {
    fs::create_dir_all(path).unwrap();
    chown(path, uid);
}

fn mkfifo(path: &Path) {
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o666) }, 0, "mkfifo");
}

/// A character device node equal to /dev/zero (1, 5): endless bytes for whoever reads it.
fn mknod_zero(path: &Path) {
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string; makedev has no preconditions.
    let rc = unsafe { libc::mknod(name.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) };
    assert_eq!(rc, 0, "mknod: {}", std::io::Error::last_os_error());
}

/// A file standing in for /etc/passwd: root's, with content the test knows.
struct Victim {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

const VICTIM_TEXT: &str = "root:x:0:0:root:/root:/bin/sh\n";

impl Victim {
    fn new() -> Victim {
        Victim::named("passwd")
    }

    /// A victim called `name`, for a planted symlink to its folder.
    fn named(name: &str) -> Victim {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        fs::write(&path, VICTIM_TEXT).unwrap();
        chmod(&path, 0o644);
        Victim { _dir: dir, path }
    }

    /// The victim still holds exactly its text, belongs to root and has its mode.
    fn assert_intact(&self, case: &str) {
        let meta = fs::metadata(&self.path).unwrap();
        assert_eq!(
            fs::read_to_string(&self.path).unwrap(),
            VICTIM_TEXT,
            "{case}: the victim was written to"
        );
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, 0, 0o644),
            "{case}: the victim was given away"
        );
    }
}

/// Runs `cmd` with at most `limit` of wall time and 2 GiB of address space (a run that
/// reads /dev/zero to the end must fail the test, not take the machine down); kills it and
/// fails when it takes longer.
fn run_within(mut cmd: Command, limit: Duration, case: &str) -> Run {
    use std::os::unix::process::CommandExt;
    let logs = tempfile::tempdir().unwrap();
    let (out, err) = (logs.path().join("out"), logs.path().join("err"));
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 2 << 30,
                rlim_max: 2 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{case}: still running after {limit:?} (a FIFO or device was opened or read); log:\n{}",
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: fs::read_to_string(&out).unwrap(),
        stderr: fs::read_to_string(&err).unwrap(),
    }
}

// ---------------------------------------------------------------------------------------
// Finding 6: root can be made to give away any file through `.git/info/exclude`.
// ---------------------------------------------------------------------------------------

#[test]
fn a_git_dir_planted_by_another_user_is_never_written_or_chowned() {
    if !as_root("a_git_dir_planted_by_another_user_is_never_written_or_chowned") {
        return;
    }
    let server = FakeBitbucket::start_default();
    // The output file in the folder itself (`/tmp/x.env`), and deeper (`/tmp/sub/x.env`):
    // either way the `.git` that is found was planted there by someone else.
    for output in ["x.env", "sub/x.env"] {
        let victim = Victim::new();
        let shared = tempfile::tempdir().unwrap(); // root's, like /tmp
        chmod(shared.path(), 0o1777);
        let git = shared.path().join(".git");
        folder_of(&git.join("info"), OTHER);
        chown(&git, OTHER);
        let exclude = git.join("info/exclude");
        symlink(&victim.path, &exclude).unwrap();
        chown(&exclude, OTHER);

        let file = shared.path().join(output);
        let out = run(pipe(&server, shared.path()).env("OUTPUT_FILE", &file));
        victim.assert_intact(output);
        out.expect_code(0);
        assert!(!out.all().contains("Listed"), "{output}: {}", out.all());
        assert!(fs::symlink_metadata(&exclude).unwrap().is_symlink());
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    }
}

#[test]
fn a_symlinked_exclude_or_info_in_the_users_own_clone_is_not_followed() {
    if !as_root("a_symlinked_exclude_or_info_in_the_users_own_clone_is_not_followed") {
        return;
    }
    let server = FakeBitbucket::start_default();
    for planted in ["info/exclude", "info"] {
        let victim = Victim::named("exclude");
        let work = tempfile::tempdir().unwrap();
        let clone = work.path().join("clone");
        folder_of(&clone.join(".git"), USER);
        chown(&clone, USER);
        let link = clone.join(".git").join(planted);
        if planted == "info" {
            // `info` -> the victim's folder, so `info/exclude` would be the victim itself.
            symlink(victim.path.parent().unwrap(), &link).unwrap();
        } else {
            folder_of(&clone.join(".git/info"), USER);
            symlink(&victim.path, &link).unwrap();
        }
        chown(&link, USER);

        let out = run(pipe(&server, &clone).env("OUTPUT_FILE", "x.env"));
        victim.assert_intact(planted);
        out.expect_code(0)
            .expect_log("could not be added to its exclude file");
        assert!(
            fs::symlink_metadata(&link).unwrap().is_symlink(),
            "{planted}"
        );
    }
}

#[test]
fn a_hard_link_to_a_victim_as_exclude_is_not_appended_to() {
    if !as_root("a_hard_link_to_a_victim_as_exclude_is_not_appended_to") {
        return;
    }
    let server = FakeBitbucket::start_default();
    let victim = Victim::new();
    let work = tempfile::tempdir().unwrap();
    let clone = work.path().join("clone");
    folder_of(&clone.join(".git/info"), USER);
    chown(&clone.join(".git"), USER);
    chown(&clone, USER);
    // Same file system: the victim's folder is a sibling temp dir.
    fs::hard_link(&victim.path, clone.join(".git/info/exclude")).unwrap();

    let out = run(pipe(&server, &clone).env("OUTPUT_FILE", "x.env"));
    victim.assert_intact("hard link");
    out.expect_code(0)
        .expect_log("could not be added to its exclude file");
}

#[test]
fn a_gitdir_or_commondir_pointing_at_a_folder_of_another_owner_is_not_touched() {
    if !as_root("a_gitdir_or_commondir_pointing_at_a_folder_of_another_owner_is_not_touched") {
        return;
    }
    let server = FakeBitbucket::start_default();
    // Whose folder the redirect leads to: someone else's (1234), or root's own (a stand-in
    // for /etc or /root/.ssh: root is "us", but the user who wrote the redirect is not).
    for (via, owner) in [
        ("gitdir", OTHER),
        ("commondir", OTHER),
        ("gitdir", 0),
        ("commondir", 0),
    ] {
        let case = format!("{via} -> folder of uid {owner}");
        let work = tempfile::tempdir().unwrap();
        let target = work.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::create_dir(target.join("info")).unwrap();
        let victim = target.join("info/exclude");
        fs::write(&victim, VICTIM_TEXT).unwrap();
        for path in [&target, &target.join("info"), &victim] {
            chown(path, owner);
        }
        let clone = work.path().join("clone");
        folder_of(&clone, USER);
        if via == "gitdir" {
            fs::write(
                clone.join(".git"),
                format!("gitdir: {}\n", target.display()),
            )
            .unwrap();
            chown(&clone.join(".git"), USER);
        } else {
            // A worktree-shaped `.git` file: its git dir is the user's, its commondir not.
            let git_dir = work.path().join("gitdir");
            folder_of(&git_dir, USER);
            fs::write(git_dir.join("commondir"), format!("{}\n", target.display())).unwrap();
            chown(&git_dir.join("commondir"), USER);
            fs::write(
                clone.join(".git"),
                format!("gitdir: {}\n", git_dir.display()),
            )
            .unwrap();
            chown(&clone.join(".git"), USER);
        }
        let before = listing(&target);

        let out = run(pipe(&server, &clone).env("OUTPUT_FILE", "x.env"));
        assert_eq!(fs::read_to_string(&victim).unwrap(), VICTIM_TEXT, "{case}");
        assert_eq!(fs::metadata(&victim).unwrap().uid(), owner, "{case}");
        assert_eq!(listing(&target), before, "{case}: created in {target:?}");
        assert_eq!(listing(&target.join("info")), ["exclude"], "{case}");
        out.expect_code(0);
        assert!(!out.all().contains("Listed"), "{case}: {}", out.all());
    }
}

#[test]
fn a_users_real_worktree_is_still_excluded_in_its_common_dir() {
    if !as_root("a_users_real_worktree_is_still_excluded_in_its_common_dir") {
        return;
    }
    // The legitimate redirects (`.git` file -> .git/worktrees/wt -> commondir ../..), all
    // the user's: the ownership rule for redirects must not refuse them.
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let main = work.path().join("main");
    git(work.path(), &["init", "-q", "main"]);
    git(
        &main,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
    );
    git(&main, &["worktree", "add", "-q", "../wt"]);
    assert!(
        Command::new("chown")
            .args(["-R", &format!("{USER}:{USER}")])
            .arg(work.path())
            .status()
            .unwrap()
            .success()
    );
    run(pipe(&server, &work.path().join("wt")).env("OUTPUT_FILE", "x.env"))
        .expect_code(0)
        .expect_log("Listed x.env in");
    let exclude = fs::read_to_string(main.join(".git/info/exclude")).unwrap();
    assert!(exclude.lines().any(|l| l == "/x.env"), "{exclude}");
}

#[test]
fn fifos_and_devices_in_the_git_dir_never_hang_or_flood_the_run() {
    if !as_root("fifos_and_devices_in_the_git_dir_never_hang_or_flood_the_run") {
        return;
    }
    let server = FakeBitbucket::start_default();
    // Where the trap is, and what it is; `.git` is the user's folder unless the trap is it.
    let cases: [(&str, &str); 9] = [
        (".git", "fifo"),
        (".git", "device"),
        (".git", "symlink to /dev/zero"),
        (".git/commondir", "fifo"),
        (".git/commondir", "device"),
        (".git/commondir", "symlink to /dev/zero"),
        (".git/info/exclude", "fifo"),
        (".git/info/exclude", "device"),
        (".git/info/exclude", "symlink to /dev/zero"),
    ];
    for (at, what) in cases {
        let case = format!("{what} at {at}");
        let work = tempfile::tempdir().unwrap();
        let clone = work.path().join("clone");
        folder_of(&clone, USER);
        if at != ".git" {
            folder_of(&clone.join(".git/info"), USER);
            chown(&clone.join(".git"), USER);
        }
        let trap = clone.join(at);
        match what {
            "fifo" => mkfifo(&trap),
            "device" => mknod_zero(&trap),
            _ => symlink("/dev/zero", &trap).unwrap(),
        }
        chown(&trap, USER);

        let started = Instant::now();
        let mut cmd = pipe_std(&server, &clone);
        cmd.env("OUTPUT_FILE", "x.env");
        let out = run_within(cmd, Duration::from_secs(20), &case);
        let took = started.elapsed();
        out.expect_code(0);
        assert!(took < Duration::from_secs(5), "{case}: took {took:?}");
        let kind = fs::symlink_metadata(&trap).unwrap().file_type();
        {
            use std::os::unix::fs::FileTypeExt;
            assert!(
                kind.is_fifo() || kind.is_char_device() || kind.is_symlink(),
                "{case}: replaced"
            );
        }
        assert_eq!(fs::metadata(clone.join("x.env")).unwrap().uid(), USER);
    }
    let zero = fs::metadata("/dev/zero").unwrap();
    assert_eq!(
        (zero.uid(), zero.mode() & 0o777),
        (0, 0o666),
        "/dev/zero given away"
    );
}

#[test]
fn in_a_users_clone_the_file_and_its_temp_files_are_excluded_and_all_it_creates_is_theirs() {
    if !as_root("in_a_users_clone_the_file_and_its_temp_files_are_excluded...") {
        return;
    }
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let clone = work.path().join("clone");
    git(work.path(), &["init", "-q", "clone"]);
    // A fresh clone may have no .git/info; the pipe then creates it.
    fs::remove_dir_all(clone.join(".git/info")).unwrap();
    assert!(
        Command::new("chown")
            .args(["-R", &format!("{USER}:{USER}")])
            .arg(&clone)
            .status()
            .unwrap()
            .success()
    );
    run(pipe(&server, &clone).env("OUTPUT_FILE", "x.env"))
        .expect_code(0)
        .expect_log("Listed x.env in");
    let exclude = fs::read_to_string(clone.join(".git/info/exclude")).unwrap();
    let lines: Vec<&str> = exclude.lines().collect();
    assert!(lines.contains(&"/x.env"), "{exclude}");
    assert!(lines.contains(&"/.oauth-token-pipe.*.tmp"), "{exclude}");
    for path in ["x.env", ".git/info", ".git/info/exclude"] {
        let meta = fs::metadata(clone.join(path)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (USER, USER), "{path}");
    }
    assert_eq!(listing(&clone), [".git", "x.env"], "no temp file left");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// ---------------------------------------------------------------------------------------
// Finding 7: a file already in the clone is trusted for reuse and rewritten.
// ---------------------------------------------------------------------------------------

/// The dotenv text a planted file holds: the fake's own token (so validation would pass),
/// the right fingerprint (not a secret: provider, token endpoint and client id), an hour
/// left; `tweak` turns it hostile.
fn planted(server: &FakeBitbucket, tweak: impl Fn(String) -> String) -> String {
    let in_an_hour =
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
    tweak(format!(
        "{VAR}={}\n{VAR}_EXPIRES_AT={in_an_hour}\n{VAR}_SCOPES=repository\n{VAR}_CLIENT={}\n",
        server.setup().token,
        bitbucket_fingerprint(server, "test-client-key")
    ))
}

/// What `set -a; . ./file` prints and leaves in the token variable.
fn source(file: &Path) -> (String, String) {
    let out = Command::new("sh")
        .env_clear()
        .arg("-c")
        .arg(format!("set -a; . \"$1\"; printf '%s' \"${VAR}\""))
        .arg("sh")
        .arg(file)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_planted_file_with_a_command_in_its_scopes_is_not_reused_and_never_runs() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("oauth-token.env");
    // Control: the same file without the payload is reused, so the fingerprint, mode and
    // owner are right and only the payload can be what makes the difference.
    crate::support::write_private(&file, &planted(&server, |t| t));
    run(&mut pipe(&server, work.path()))
        .expect_code(0)
        .expect_log("Reusing the token in oauth-token.env");
    assert_eq!(server.token_requests(), 0);

    // A malicious commit (or a pull_request_target checkout) puts this in the clone.
    crate::support::write_private(
        &file,
        &planted(&server, |t| {
            t.replace(
                "_SCOPES=repository",
                "_SCOPES=repository,$(echo${IFS}PWNED>&2)",
            )
        }),
    );
    let out = run(&mut pipe(&server, work.path()));
    out.expect_code(0)
        .expect_log("Not reusing: oauth-token.env holds no token of ours");
    assert!(!out.all().contains("Reusing"), "{}", out.all());
    assert_eq!(server.token_requests(), 1, "a fresh token was fetched");
    let (value, printed) = source(&file);
    assert!(!printed.contains("PWNED"), "sourcing ran the payload");
    assert!(!fs::read_to_string(&file).unwrap().contains("PWNED"));
    assert_eq!(value, server.setup().token);
}

#[test]
fn planted_files_failing_any_check_of_a_fresh_response_are_not_reused() {
    let server = FakeBitbucket::start_default();
    let fifty_years =
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(50 * 31_557_600));
    let cases: Vec<(&str, String)> = vec![
        (
            "a token with ;",
            planted(&server, |t| {
                t.replacen(&format!("{VAR}="), &format!("{VAR}=x;echo PWNED>&2;"), 1)
            }),
        ),
        (
            "a token with $(...)",
            planted(&server, |t| {
                t.replacen(&format!("{VAR}="), &format!("{VAR}=$(echo PWNED>&2)"), 1)
            }),
        ),
        (
            "an expiry 50 years away",
            planted(&server, |t| {
                let line = t.lines().nth(1).unwrap().to_owned();
                t.replace(&line, &format!("{VAR}_EXPIRES_AT={fifty_years}"))
            }),
        ),
        (
            "a backtick in the scopes",
            planted(&server, |t| {
                t.replace("_SCOPES=repository", "_SCOPES=repository,`echo PWNED>&2`")
            }),
        ),
        (
            "an extra variable",
            planted(&server, |t| format!("{t}BASH_ENV=/tmp/evil\n")),
        ),
        (
            "the token twice",
            planted(&server, |t| format!("{t}{VAR}=second\n")),
        ),
    ];
    let mut fetched = 0;
    for (case, text) in cases {
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("oauth-token.env");
        crate::support::write_private(&file, &text);
        let out = run(&mut pipe(&server, work.path()));
        // A file with foreign lines is not ours to replace either (finding 8), and that is
        // known before any request, so it costs no token.
        let code = if case == "an extra variable" { 6 } else { 0 };
        out.expect_code(code);
        assert!(!out.all().contains("Reusing the token"), "{case}");
        if code == 0 {
            out.expect_log("Not reusing");
            fetched += 1;
        } else {
            out.expect_log("(BASH_ENV)");
        }
        assert_eq!(server.token_requests(), fetched, "{case}: token requests");
        if code == 0 {
            let (value, printed) = source(&file);
            assert!(!printed.contains("PWNED"), "{case}");
            assert_eq!(value, server.setup().token, "{case}");
        } else {
            assert_eq!(fs::read_to_string(&file).unwrap(), text, "{case}");
        }
    }
}

#[test]
fn a_file_with_a_loose_mode_another_owner_or_a_symlink_is_not_reused() {
    if !as_root("a_file_with_a_loose_mode_another_owner_or_a_symlink_is_not_reused") {
        return;
    }
    let server = FakeBitbucket::start_default();
    let text = planted(&server, |t| t);
    let mut fetched = 0;
    for case in ["mode 0644", "owned by another uid", "a symlink"] {
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("oauth-token.env");
        let elsewhere = tempfile::tempdir().unwrap();
        match case {
            "mode 0644" => {
                fs::write(&file, &text).unwrap();
                chmod(&file, 0o644);
            }
            "owned by another uid" => {
                crate::support::write_private(&file, &text);
                chown(&file, OTHER);
            }
            _ => {
                let real = elsewhere.path().join("theirs.env");
                crate::support::write_private(&real, &text);
                symlink(&real, &file).unwrap();
            }
        }
        let out = run(&mut pipe(&server, work.path()));
        out.expect_log("Not reusing");
        assert!(!out.all().contains("Reusing the token"), "{case}");
        fetched += 1;
        assert_eq!(server.token_requests(), fetched, "{case}");
        if case == "a symlink" {
            // Not reused, and not written through either.
            out.expect_code(6).expect_log("is a symbolic link");
            let real = elsewhere.path().join("theirs.env");
            assert_eq!(fs::read_to_string(real).unwrap(), text);
        } else {
            out.expect_code(0);
            let meta = fs::metadata(&file).unwrap();
            assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600), "{case}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Finding 8: a file that is not ours is replaced silently.
// ---------------------------------------------------------------------------------------

/// Runs the pipe with OUTPUT_FILE=build.env holding `text`: refused with exit 6, the file
/// byte-identical, no temp file left, the keys named and no value (`secrets`) shown.
fn assert_refused(text: &str, keys: &[&str], secrets: &[&str]) {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("build.env");
    fs::write(&file, text).unwrap();
    chmod(&file, 0o644);
    let out = run(pipe(&server, work.path()).env("OUTPUT_FILE", "build.env"));
    out.expect_code(6)
        .expect_log("holds lines this program did not write")
        .expect_log("Set OUTPUT_FILE to a file of its own");
    for key in keys {
        out.expect_log(key);
    }
    for secret in secrets {
        assert!(
            !out.all().contains(secret),
            "the log shows {secret:?}:\n{}",
            out.all()
        );
    }
    assert_eq!(fs::read(&file).unwrap(), text.as_bytes(), "file changed");
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o644);
    assert_eq!(listing(work.path()), ["build.env"], "something left behind");
}

#[test]
fn a_users_build_env_is_refused_naming_its_keys_never_their_values() {
    assert_refused("VERSION=1.2.3\n", &["(VERSION)"], &["1.2.3"]);
}

#[test]
fn any_foreign_line_is_refused_and_a_multi_line_secret_is_never_quoted() {
    let ours = format!("{VAR}=abc\n{VAR}_SCOPES=repository\n");
    // Our lines plus one of theirs; lines for another TOKEN_VARIABLE; a comment.
    assert_refused(
        &format!("{ours}DB_PASSWORD=hunter2-s3cret\n"),
        &["DB_PASSWORD"],
        &["hunter2"],
    );
    assert_refused(
        "OTHER_TOKEN=t0ken-of-another-step\nOTHER_TOKEN_CLIENT=0123456789abcdef\n",
        &["OTHER_TOKEN, OTHER_TOKEN_CLIENT"],
        &["t0ken-of-another-step"],
    );
    // A dotenv file with a quoted multi-line value: its continuation lines are value, not
    // keys, even when one looks like `NAME=` (base64's padding).
    let pem = "DEPLOY_KEY=\"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\nMzEfYyjiWA4R4XV9Akq0FBxBIuV8x1y8zR+uTzB1QZ\nsT1kOQhB==\n-----END PRIVATE KEY-----\"\nVERSION=1.2.3\n";
    assert_refused(
        pem,
        &["DEPLOY_KEY", "VERSION"],
        &["MIIEvQ", "MzEfYyji", "sT1kOQ", "1.2.3"],
    );
    // Not a dotenv file at all (a JSON key file): nothing of it is quoted.
    assert_refused(
        "{\n  \"private_key\": \"s3cr3t-material==\"\n}\n",
        &["3 other lines"],
        &["s3cr3t", "private_key"],
    );
}

#[test]
fn an_empty_file_or_one_of_ours_is_replaced() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("build.env");
    fs::write(&file, "").unwrap();
    run(pipe(&server, work.path()).env("OUTPUT_FILE", "build.env")).expect_code(0);
    // What we wrote ourselves (for another consumer, so not reused) is ours to replace.
    let text = fs::read_to_string(&file).unwrap().replace(
        &bitbucket_fingerprint(&server, "test-client-key"),
        "0123456789abcdef",
    );
    crate::support::write_private(&file, &text);
    run(pipe(&server, work.path()).env("OUTPUT_FILE", "build.env")).expect_code(0);
    assert_eq!(server.token_requests(), 2);
}

// ---------------------------------------------------------------------------------------
// Finding 9: a failed chown (root in a user namespace) fails the run.
// ---------------------------------------------------------------------------------------

#[test]
fn root_in_a_user_namespace_warns_about_the_owner_and_keeps_the_file_private() {
    let usable = Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must be able to run unshare --user --map-root-user"
        );
        eprintln!(
            "!!! NOT RUN: root_in_a_user_namespace...: unshare --user --map-root-user is unavailable !!!"
        );
        return;
    }
    if !as_root("root_in_a_user_namespace_warns_about_the_owner...") {
        return;
    }
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    // A folder of a uid the namespace does not map (rootless Docker or Podman mounting a
    // user's workspace), open to everyone so the namespace's root can write in it.
    let folder = work.path().join("workspace");
    folder_of(&folder, OTHER);
    chmod(&folder, 0o777);
    let setup = server.setup();
    let mut cmd = assert_cmd::Command::new("unshare");
    cmd.env_clear()
        .current_dir(&folder)
        .env("NO_COLOR", "1")
        .env("CLIENT_ID", &setup.client_id)
        .env("CLIENT_SECRET", &setup.client_secret)
        .env("TOKEN_URL", server.token_url())
        .env("API_URL", server.api_url())
        .env("CA_BUNDLE", server.ca_file())
        .env("REPOSITORY", "acme/widgets")
        .env("OUTPUT_FILE", folder.join("oauth-token.env"))
        .args(["--user", "--map-root-user", "--"])
        .arg(crate::support::bin());
    let out = run(&mut cmd);
    out.expect_code(0)
        .expect_log("WARNING")
        .expect_log("Could not give")
        .expect_log("to the owner of its folder");
    let meta = fs::metadata(folder.join("oauth-token.env")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), 0, "it stays (the namespace's) root's");
    assert_eq!(server.token_requests(), 1);
}

// ---------------------------------------------------------------------------------------
// Finding 10: control characters in OUTPUT_FILE; temp files not excluded.
// ---------------------------------------------------------------------------------------

#[test]
fn an_output_file_with_a_control_character_is_refused_before_any_request() {
    let server = FakeBitbucket::start_default();
    for name in [
        "x\n.env",
        "x.env\r",
        "sub\n/x.env",
        "x\t.env",
        "\u{1b}[31mx.env",
    ] {
        let work = tempfile::tempdir().unwrap();
        git(work.path(), &["init", "-q"]);
        let out = run(pipe(&server, work.path()).env("OUTPUT_FILE", name));
        out.expect_code(2).expect_log("OUTPUT_FILE");
        assert!(
            out.all().contains("control character"),
            "{name:?}: {}",
            out.all()
        );
        assert_eq!(
            listing(work.path()),
            [".git"],
            "{name:?}: something written"
        );
        assert!(
            !work.path().join(".git/info/exclude").exists()
                || !fs::read_to_string(work.path().join(".git/info/exclude"))
                    .unwrap()
                    .contains("oauth-token-pipe"),
            "{name:?}"
        );
    }
    assert!(server.requests().is_empty(), "a request was sent");
}

#[test]
fn a_temp_file_left_by_a_killed_run_is_ignored_by_git() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "-q"]);
    run(pipe(&server, work.path()).env("OUTPUT_FILE", "sub dir/x.env")).expect_code(0);
    // What a SIGKILL between the temp file's creation and the rename leaves behind.
    let leftover = work.path().join("sub dir/.oauth-token-pipe.Ab12Cd.tmp");
    crate::support::write_private(&leftover, &format!("{VAR}={}\n", server.setup().token));
    let untracked = git(
        work.path(),
        &["status", "--porcelain", "--untracked-files=all"],
    );
    assert_eq!(untracked, "", "git add -A would commit the token");
    let ignored = git(
        work.path(),
        &[
            "status",
            "--porcelain",
            "--ignored",
            "--untracked-files=all",
        ],
    );
    assert!(ignored.contains("sub dir/x.env"), "{ignored}");
    assert!(
        ignored.contains(".oauth-token-pipe.Ab12Cd.tmp"),
        "{ignored}"
    );
}

// ---------------------------------------------------------------------------------------
// Finding 11: the credential cache folder and the reuse keys.
// ---------------------------------------------------------------------------------------

const ASK: &str = "protocol=https\nhost=bitbucket.org\n\n";

/// `git-credential <action>` against `server` with `input` on stdin, HOME in `home`.
fn credential(server: &FakeBitbucket, home: &Path, envs: &[(&str, &str)], input: &str) -> Run {
    let mut cmd = pipe_std(server, home);
    cmd.env_remove("REPOSITORY")
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .args(["git-credential", "get"])
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn password(run: &Run) -> Option<&str> {
    run.stdout
        .lines()
        .find_map(|line| line.strip_prefix("password="))
}

#[test]
fn an_existing_cache_folder_open_to_others_is_made_private() {
    let server = FakeBitbucket::start_default();
    for mode in [0o755, 0o777, 0o710] {
        let home = tempfile::tempdir().unwrap();
        let cache = home.path().join("cache/oauth-token-pipe");
        fs::create_dir_all(&cache).unwrap();
        chmod(&cache, mode);
        credential(&server, home.path(), &[], ASK).expect_code(0);
        assert_eq!(
            fs::metadata(&cache).unwrap().mode() & 0o777,
            0o700,
            "{mode:o}"
        );
    }
}

#[test]
fn a_cache_folder_of_another_user_or_a_symlink_is_refused_before_any_request() {
    if !as_root("a_cache_folder_of_another_user_or_a_symlink_is_refused...") {
        return;
    }
    let server = FakeBitbucket::start_default();
    for case in ["owned by another uid", "a symlink"] {
        let home = tempfile::tempdir().unwrap();
        let cache = home.path().join("cache/oauth-token-pipe");
        let theirs = home.path().join("theirs");
        fs::create_dir_all(home.path().join("cache")).unwrap();
        fs::create_dir(&theirs).unwrap();
        chmod(&theirs, 0o700);
        chown(&theirs, OTHER);
        if case == "a symlink" {
            symlink(&theirs, &cache).unwrap();
        } else {
            fs::rename(&theirs, &cache).unwrap();
        }
        let out = credential(&server, home.path(), &[], ASK);
        out.expect_code(6).expect_log("cache folder");
        assert_eq!(out.stdout, "", "{case}: answered git");
        let folder = if case == "a symlink" { &theirs } else { &cache };
        assert!(listing(folder).is_empty(), "{case}: wrote into it");
        assert_eq!(fs::metadata(folder).unwrap().uid(), OTHER);
    }
    assert!(
        server.requests().is_empty(),
        "a token was minted for nothing"
    );
}

#[test]
fn a_token_from_one_token_endpoint_is_not_reused_at_another() {
    let first = FakeBitbucket::start_default();
    let second = FakeBitbucket::start_default();
    // The git-credential cache.
    let home = tempfile::tempdir().unwrap();
    credential(&first, home.path(), &[], ASK).expect_code(0);
    let out = credential(&second, home.path(), &[], ASK);
    out.expect_code(0);
    assert_eq!(second.token_requests(), 1, "the cached token was reused");
    // The pipe's OUTPUT_FILE.
    let work = tempfile::tempdir().unwrap();
    run(&mut pipe(&first, work.path())).expect_code(0);
    run(&mut pipe(&second, work.path()))
        .expect_code(0)
        .expect_log(
            "Not reusing: the token in oauth-token.env was issued for another configuration",
        );
    assert_eq!(second.token_requests(), 2, "the stored token was reused");
    assert_eq!(first.token_requests(), 2);
}

#[test]
fn a_changed_git_host_is_never_sent_another_hosts_cached_token() {
    let token = |name: &str| {
        Reply::json(
            200,
            &format!(
                r#"{{"access_token": "token-for-{name}", "scope": "repository pullrequest", "expires_in": 7200, "token_type": "bearer", "state": "client_credentials"}}"#
            ),
        )
    };
    let server = FakeBitbucket::start(Setup {
        token_replies: vec![token("bitbucket-org"), token("git-example-test")],
        ..Setup::default()
    });
    let home = tempfile::tempdir().unwrap();
    let first = credential(&server, home.path(), &[], ASK);
    first.expect_code(0);
    assert_eq!(password(&first), Some("token-for-bitbucket-org"));

    let other = [("GIT_HOST", "git.example.test")];
    let ask_other = "protocol=https\nhost=git.example.test\n\n";
    let out = credential(&server, home.path(), &other, ask_other);
    out.expect_code(0);
    assert_eq!(password(&out), Some("token-for-git-example-test"));
    // Each host keeps its own: both answered from the cache, no third request.
    let again = credential(&server, home.path(), &[], ASK);
    assert_eq!(password(&again), Some("token-for-bitbucket-org"));
    let again = credential(&server, home.path(), &other, ask_other);
    assert_eq!(password(&again), Some("token-for-git-example-test"));
    assert_eq!(server.token_requests(), 2);
}
