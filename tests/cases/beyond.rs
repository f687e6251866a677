//! Beyond one token: reuse across runs, `exec`, `git-credential` (with a real git against a
//! git smart-HTTP server behind the fake), `check`, `status`, `--help` and `--version`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::fake::{FakeBitbucket, Reply, Setup};
use crate::support::{bare, git_output, git_through_helper, pipe, pipe_std, run};

fn fingerprint(id: &str) -> String {
    crate::support::fingerprint(id)
}

#[test]
fn a_second_run_reuses_the_stored_token_without_a_token_request() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(&mut pipe(&server, work.path())).expect_code(0);
    let first = fs::read_to_string(work.path().join("oauth-token.env")).unwrap();
    run(&mut pipe(&server, work.path()))
        .expect_code(0)
        .expect_log(
            "Reusing the token in oauth-token.env (issued for this configuration; expires in 7",
        )
        .expect_log("✔ Reused access token written to oauth-token.env");
    assert_eq!(
        (server.token_requests(), server.api_requests()),
        (1, 2),
        "reused, but still validated"
    );
    assert_eq!(
        fs::read_to_string(work.path().join("oauth-token.env"))
            .unwrap()
            .lines()
            .next(),
        first.lines().next()
    );
}

#[test]
fn a_token_below_min_validity_is_replaced() {
    let server = FakeBitbucket::start(Setup {
        expires_in: Some("300".into()),
        ..Setup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(&mut pipe(&server, work.path())).expect_code(0);
    run(&mut pipe(&server, work.path()))
        .expect_code(0)
        .expect_log("Not reusing: the token in oauth-token.env has 29")
        .expect_log("less than MIN_VALIDITY (600 s)");
    assert_eq!(server.token_requests(), 2);
    run(pipe(&server, work.path()).env("MIN_VALIDITY", "60"))
        .expect_code(0)
        .expect_log("Reusing the token");
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn reuse_false_forces_a_fresh_token() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(&mut pipe(&server, work.path())).expect_code(0);
    run(pipe(&server, work.path()).env("REUSE", "false")).expect_code(0);
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn a_token_of_another_consumer_is_not_reused() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let in_an_hour =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(3600));
    let theirs = format!(
        "BITBUCKET_ACCESS_TOKEN=theirs\nBITBUCKET_ACCESS_TOKEN_EXPIRES_AT={in_an_hour}\nBITBUCKET_ACCESS_TOKEN_SCOPES=repository\nBITBUCKET_ACCESS_TOKEN_CLIENT={}\n",
        crate::support::bitbucket_fingerprint(&server, "someone-else")
    );
    crate::support::write_private(&work.path().join("oauth-token.env"), &theirs);
    run(&mut pipe(&server, work.path()))
        .expect_code(0)
        .expect_log(
            "Not reusing: the token in oauth-token.env was issued for another configuration",
        );
    assert_eq!(server.token_requests(), 1);
    assert!(
        !fs::read_to_string(work.path().join("oauth-token.env"))
            .unwrap()
            .contains("theirs")
    );
}

#[test]
fn a_stored_token_that_stopped_working_is_replaced() {
    let work = tempfile::tempdir().unwrap();
    let first = FakeBitbucket::start_default();
    run(&mut pipe(&first, work.path())).expect_code(0);
    // Revoked since: the API refuses it once; no replication-lag retries for an old token.
    let second = FakeBitbucket::start(Setup {
        api_replies: vec![Reply::json(401, crate::support::fake::EXPIRED)],
        ..Setup::default()
    });
    // The same consumer at the second fake's endpoint (its own port): a token it would reuse.
    let file = work.path().join("oauth-token.env");
    let text = fs::read_to_string(&file).unwrap().replace(
        &crate::support::bitbucket_fingerprint(&first, "test-client-key"),
        &crate::support::bitbucket_fingerprint(&second, "test-client-key"),
    );
    crate::support::write_private(&file, &text);
    run(&mut pipe(&second, work.path()))
        .expect_code(0)
        .expect_log("The stored token did not pass (The token failed validation:")
        .expect_log("fetching a new one");
    assert_eq!((second.token_requests(), second.api_requests()), (1, 2));
}

#[test]
fn status_reports_without_printing_the_token_and_needs_no_credentials() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(&mut pipe(&server, work.path())).expect_code(0);
    let token = server.setup().token;
    let out = run(bare(work.path()).arg("status"));
    out.expect_code(0)
        .expect_log("✔ The token in oauth-token.env (")
        .expect_log("is valid for 7")
        .expect_log("scopes: repository, pullrequest.");
    assert!(!out.all().contains(&token));
    run(bare(work.path()).arg("status").env("MIN_VALIDITY", "8000"))
        .expect_code(4)
        .expect_log("less than MIN_VALIDITY (8000 s): run the pipe again.");
    run(bare(work.path())
        .arg("status")
        .env("CLIENT_ID", "someone-else"))
    .expect_code(2)
    .expect_log("holds a token issued for another configuration");
    run(bare(work.path())
        .arg("status")
        .env("OUTPUT_FILE", "nothing.env"))
    .expect_code(2)
    .expect_log("OUTPUT_FILE (nothing.env) does not exist");
    fs::write(work.path().join("other.env"), "FOO=bar\n").unwrap();
    run(bare(work.path())
        .arg("status")
        .env("OUTPUT_FILE", "other.env"))
    .expect_code(2)
    .expect_log("holds no token written by oauth-token-pipe");
    let expired = format!(
        "BITBUCKET_ACCESS_TOKEN=old\nBITBUCKET_ACCESS_TOKEN_EXPIRES_AT=2020-01-01T00:00:00Z\nBITBUCKET_ACCESS_TOKEN_SCOPES=\nBITBUCKET_ACCESS_TOKEN_CLIENT={}\n",
        fingerprint("k")
    );
    crate::support::write_private(&work.path().join("expired.env"), &expired);
    run(bare(work.path())
        .arg("status")
        .env("OUTPUT_FILE", "expired.env"))
    .expect_code(4)
    .expect_log("expired at 2020-01-01T00:00:00Z");
}

#[test]
fn check_fetches_and_validates_but_writes_nothing() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(pipe(&server, work.path()).arg("check"))
        .expect_code(0)
        .expect_log("✔ The client works: a 18")
        .expect_log("Nothing was written.");
    assert_eq!(fs::read_dir(work.path()).unwrap().count(), 0);
    assert_eq!((server.token_requests(), server.api_requests()), (1, 1));
    run(pipe(&server, work.path())
        .arg("check")
        .env("CLIENT_SECRET", "wrong"))
    .expect_code(3);
}

/// A script for `sh -c` that reports what the child sees, then exits 7.
const REPORT: &str = r#"printf '%s|%s|%s|%s' "${#BITBUCKET_ACCESS_TOKEN}" "$BITBUCKET_ACCESS_TOKEN_SCOPES" "${CLIENT_SECRET-unset}" "${BITBUCKET_ACCESS_TOKEN_EXPIRES_AT:+expiry}"; tr '\0' ' ' < /proc/$$/cmdline >&2; tr '\0' ' ' < /proc/$PPID/cmdline >&2; exit 7"#;

#[test]
fn exec_gives_the_token_only_to_the_childs_environment_and_returns_its_code() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let token = server.setup().token;
    let out = run(pipe(&server, work.path()).args(["exec", "--", "sh", "-c", REPORT]));
    out.expect_code(7)
        .expect_log("Running sh with the token in $BITBUCKET_ACCESS_TOKEN.");
    assert_eq!(
        out.stdout,
        format!("{}|repository,pullrequest|unset|expiry", token.len()),
        "the secret is not passed on"
    );
    assert!(
        out.stderr.contains("sh -c printf") && out.stderr.contains(" exec -- sh -c "),
        "argv of child and parent shown: {}",
        out.stderr
    );
    assert!(
        !out.all().contains(&token),
        "no argv (nor log) holds the token"
    );
    assert_eq!(
        fs::read_dir(work.path()).unwrap().count(),
        0,
        "no file unless OUTPUT_FILE is set"
    );
}

#[test]
fn exec_writes_and_reuses_a_file_only_when_output_file_is_set() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(pipe(&server, work.path())
        .env("OUTPUT_FILE", "t.env")
        .args(["exec", "--", "true"]))
    .expect_code(0);
    run(pipe(&server, work.path())
        .env("OUTPUT_FILE", "t.env")
        .args(["exec", "--", "true"]))
    .expect_code(0)
    .expect_log("Running true with the token in $BITBUCKET_ACCESS_TOKEN (reused).");
    assert_eq!(server.token_requests(), 1);
}

#[test]
fn exec_of_a_missing_command_exits_127() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(pipe(&server, work.path()).args(["exec", "--", "no-such-command-here"]))
        .expect_code(127)
        .expect_log("no-such-command-here: command not found");
    run(pipe(&server, work.path()).args(["exec", "--", "/dev/null"]))
        .expect_code(126)
        .expect_log("/dev/null: cannot run it");
}

#[test]
fn exec_passes_signals_on_to_the_child() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    let script = "trap 'echo got-term; exit 42' TERM; touch started; while :; do sleep 0.05; done";
    let mut cmd = pipe_std(&server, work.path());
    cmd.env("PATH", "/usr/bin:/bin")
        .args(["exec", "--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let started = Instant::now();
    while !work.path().join("started").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(42),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got-term\n");
}

fn credential(
    server: &FakeBitbucket,
    home: &Path,
    action: &str,
    input: &str,
) -> crate::support::Run {
    let mut cmd = pipe_std(server, home);
    cmd.env_remove("REPOSITORY")
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .args(["git-credential", action]);
    cmd.stdin(Stdio::piped())
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
    crate::support::Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn git_credential_answers_for_its_host_only_and_caches_per_user() {
    let server = FakeBitbucket::start_default();
    let home = tempfile::tempdir().unwrap();
    let token = server.setup().token;
    let ask = "protocol=https\nhost=bitbucket.org\npath=acme/widgets.git\n\n";
    let out = credential(&server, home.path(), "get", ask);
    out.expect_code(0);
    assert_eq!(
        out.stdout,
        format!("username=x-token-auth\npassword={token}\n\n")
    );
    assert_eq!(
        out.stderr, "",
        "git shows a helper's stderr: a good answer says nothing"
    );
    let cache = home.path().join("cache/oauth-token-pipe");
    // The cache is keyed by the consumer at this token endpoint and the host git asked for.
    let key = format!(
        "bitbucket\n{}\ntest-client-key\nbitbucket.org",
        server.token_url()
    );
    let file = cache.join(format!("{}.env", fingerprint(&key)));
    assert_eq!(
        fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        server.api_requests(),
        0,
        "no validation call unless VALIDATE_URL is set"
    );

    credential(&server, home.path(), "get", ask).expect_code(0);
    assert_eq!(
        server.token_requests(),
        1,
        "the second get reuses the cache"
    );

    for other in [
        "protocol=https\nhost=github.com\n\n",
        "protocol=http\nhost=bitbucket.org\n\n",
        "protocol=https\nhost=bitbucket.org\nusername=alice\n\n",
    ] {
        let out = credential(&server, home.path(), "get", other);
        out.expect_code(0);
        assert_eq!(out.stdout, "", "{other:?} is not ours");
    }
    credential(
        &server,
        home.path(),
        "store",
        &format!("protocol=https\nhost=bitbucket.org\nusername=x-token-auth\npassword={token}\n\n"),
    )
    .expect_code(0);
    assert!(file.exists());
    credential(
        &server,
        home.path(),
        "erase",
        "protocol=https\nhost=bitbucket.org\nusername=x-token-auth\n\n",
    )
    .expect_code(0);
    assert!(!file.exists(), "a rejected token is forgotten");
    credential(&server, home.path(), "get", ask).expect_code(0);
    assert_eq!(server.token_requests(), 2);
}

#[test]
fn real_git_clones_and_pushes_with_the_credential_helper() {
    let repos = tempfile::tempdir().unwrap();
    let server = FakeBitbucket::start(Setup {
        git_root: Some(repos.path().to_path_buf()),
        ..Setup::default()
    });
    let home = tempfile::tempdir().unwrap();
    let git = |dir: &Path, args: &[&str]| {
        git_output(
            git_through_helper(home.path(), server.ca_file(), dir, args)
                .env("XDG_CACHE_HOME", home.path().join("cache"))
                .env("CLIENT_ID", server.setup().client_id)
                .env("CLIENT_SECRET", server.setup().client_secret)
                .env("TOKEN_URL", server.token_url())
                .env("API_URL", server.api_url())
                .env("CA_BUNDLE", server.ca_file())
                .env("GIT_HOST", server.base().trim_start_matches("https://")),
        )
    };
    git(repos.path(), &["init", "-q", "--bare", "widgets.git"]);
    let url = format!("{}/git/widgets.git", server.base());
    let clones = tempfile::tempdir().unwrap();
    git(clones.path(), &["clone", "-q", &url, "widgets"]);
    let clone = clones.path().join("widgets");
    fs::write(clone.join("README"), "hello\n").unwrap();
    git(&clone, &["add", "README"]);
    git(&clone, &["commit", "-q", "-m", "first"]);
    let pushed = git(&clone, &["push", "-q", "origin", "HEAD:main"]);
    assert!(!pushed.contains(&server.setup().token));
    let log = git(
        &repos.path().join("widgets.git"),
        &["log", "--format=%s", "main"],
    );
    assert_eq!(log.trim(), "first");
    assert_eq!(
        server.token_requests(),
        1,
        "clone and push share one cached token"
    );
    let config = fs::read_to_string(clone.join(".git/config")).unwrap();
    assert!(
        !config.contains(&server.setup().token) && !config.contains("x-token-auth"),
        "nothing lands in .git/config"
    );
}

#[test]
fn help_and_version_answer_on_stdout_and_mistakes_exit_2() {
    let work = tempfile::tempdir().unwrap();
    let out = run(bare(work.path()).arg("--help"));
    out.expect_code(0);
    assert!(
        out.stdout.contains("oauth-token-pipe exec -- CMD [ARGS]")
            && out.stdout.contains("git-credential")
    );
    let out = run(bare(work.path()).arg("--version"));
    assert_eq!(
        out.stdout,
        format!("oauth-token-pipe {}\n", env!("CARGO_PKG_VERSION"))
    );
    run(bare(work.path()).arg("frobnicate"))
        .expect_code(2)
        .expect_log("unknown command \"frobnicate\"")
        .expect_log("--help");
}
