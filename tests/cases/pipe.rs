//! The pipe end to end: the requests it sends, the file it writes, the configuration it
//! refuses and the log it prints. How it reports the provider's refusals and validation
//! answers is in `pipe_answers.rs`; how it survives the network's and the provider's faults
//! is the matrix in `faults.rs`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::fake::{self, FakeBitbucket, Setup};
use crate::support::{bare, listing, pipe, read_back_with_sh, run};

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn success_writes_a_dotenv_file_that_sh_reads_back() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    let out = run(&mut pipe(&server, work.path()));
    out.expect_code(0)
        .expect_log(
            "✔ Access token written to oauth-token.env (mode 0600) as BITBUCKET_ACCESS_TOKEN",
        )
        .expect_log("source ./oauth-token.env")
        .expect_log("scopes: repository, pullrequest")
        .expect_log("validated (read repository acme/widgets)");
    let token = server.setup().token;
    assert!(token.len() > 1800, "the fake issues JWT-sized tokens");
    out.expect_log(&format!(
        "Received a bearer token ({} characters)",
        token.len()
    ));

    let file = work.path().join("oauth-token.env");
    let text = fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], format!("BITBUCKET_ACCESS_TOKEN={token}"));
    let expires = lines[1]
        .strip_prefix("BITBUCKET_ACCESS_TOKEN_EXPIRES_AT=")
        .expect("expiry line");
    let at = humantime::parse_rfc3339(expires).expect("RFC 3339");
    let left = at
        .duration_since(std::time::SystemTime::now())
        .expect("in the future");
    assert!(
        left > Duration::from_secs(7100) && left <= Duration::from_secs(7200),
        "{left:?}"
    );
    assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");
    assert_eq!(
        lines[2],
        "BITBUCKET_ACCESS_TOKEN_SCOPES=repository,pullrequest"
    );
    // 16 hex digits of SHA-256 of provider, token endpoint and consumer: which
    // configuration, for reuse, revealing none of them.
    assert_eq!(
        lines[3],
        format!(
            "BITBUCKET_ACCESS_TOKEN_CLIENT={}",
            crate::support::bitbucket_fingerprint(&server, "test-client-key")
        )
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let values = read_back_with_sh(
        &file,
        &[
            "BITBUCKET_ACCESS_TOKEN",
            "BITBUCKET_ACCESS_TOKEN_EXPIRES_AT",
            "BITBUCKET_ACCESS_TOKEN_SCOPES",
            "BITBUCKET_ACCESS_TOKEN_CLIENT",
        ],
    );
    assert_eq!(values, lines);
    assert_eq!(
        listing(work.path()),
        ["oauth-token.env"],
        "no temporary file is left behind"
    );
}

#[test]
fn token_request_is_basic_auth_form_post_and_validation_is_bearer() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    run(&mut pipe(&server, work.path())).expect_code(0);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (token, api) = (&requests[0], &requests[1]);
    assert_eq!(
        (token.method.as_str(), token.path.as_str()),
        ("POST", fake::TOKEN_PATH)
    );
    assert_eq!(
        token.header("authorization"),
        Some("Basic dGVzdC1jbGllbnQta2V5OnRlc3QtY2xpZW50LXNlY3JldA==")
    );
    assert_eq!(
        token.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(token.header("accept"), Some("application/json"));
    assert_eq!(
        token.header("user-agent"),
        Some(concat!("oauth-token-pipe/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(token.body, b"grant_type=client_credentials");
    assert_eq!(
        (api.method.as_str(), api.path.as_str()),
        ("GET", "/2.0/repositories/acme/widgets")
    );
    assert_eq!(
        api.header("authorization"),
        Some(format!("Bearer {}", server.setup().token).as_str())
    );
    assert!(
        requests
            .iter()
            .all(|r| !r.path.starts_with("/2.0/workspaces"))
    );
}

#[test]
fn older_scopes_field_is_read() {
    let server = FakeBitbucket::start(Setup {
        scope_field: "scopes".into(),
        scopes: "account repository:write".into(),
        ..Setup::default()
    });
    let work = dir();
    run(pipe(&server, work.path()).env("REQUIRED_SCOPES", "repository"))
        .expect_code(0)
        .expect_log("scopes: account, repository:write");
    assert!(
        fs::read_to_string(work.path().join("oauth-token.env"))
            .unwrap()
            .contains("\nBITBUCKET_ACCESS_TOKEN_SCOPES=account,repository:write\n")
    );
}

#[test]
fn expires_in_as_a_string_is_accepted() {
    let server = FakeBitbucket::start(Setup {
        expires_in: Some("\"3600\"".into()),
        ..Setup::default()
    });
    let work = dir();
    run(&mut pipe(&server, work.path()))
        .expect_code(0)
        .expect_log("expires in 3600 s");
}

#[test]
fn missing_expires_in_warns_and_writes_no_expiry_line() {
    let server = FakeBitbucket::start(Setup {
        expires_in: None,
        ..Setup::default()
    });
    let work = dir();
    run(&mut pipe(&server, work.path()))
        .expect_code(0)
        .expect_log("WARNING: The token response has no expires_in");
    let text = fs::read_to_string(work.path().join("oauth-token.env")).unwrap();
    assert!(!text.contains("EXPIRES_AT"), "{text}");
    assert_eq!(text.lines().count(), 3);
}

#[test]
fn custom_variable_name_and_nested_output_path() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    run(pipe(&server, work.path())
        .env("TOKEN_VARIABLE", "BB_TOKEN")
        .env("OUTPUT_FILE", "out/deep/bb.env"))
    .expect_code(0)
    .expect_log("source out/deep/bb.env");
    let file = work.path().join("out/deep/bb.env");
    let values = read_back_with_sh(&file, &["BB_TOKEN", "BB_TOKEN_SCOPES"]);
    assert_eq!(
        values,
        [
            format!("BB_TOKEN={}", server.setup().token),
            "BB_TOKEN_SCOPES=repository,pullrequest".into()
        ]
    );
}

#[test]
fn missing_credentials_exit_2_naming_both_variables_without_any_request() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    let out = run(pipe(&server, work.path())
        .env_remove("CLIENT_ID")
        .env("CLIENT_SECRET", ""));
    out.expect_code(2)
        .expect_log("✖ CLIENT_ID is not set: set it to the Key")
        .expect_log("  CLIENT_SECRET is not set: set it to the Secret");
    assert_eq!(server.requests().len(), 0);
    assert!(!work.path().join("oauth-token.env").exists());
}

#[test]
fn every_configuration_problem_is_reported_at_once() {
    let work = dir();
    let out = run(bare(work.path())
        .env("CLIENT_ID", "k")
        .env("CLIENT_SECRET", "s")
        .env("TOKEN_VARIABLE", "BAD-NAME")
        .env("TOKEN_URL", "http://bitbucket.org/site/oauth2/access_token")
        .env("API_URL", "not a url")
        .env("TIMEOUT", "forever")
        .env("RETRIES", "-1")
        .env("DEBUG", "verbose")
        .env("CA_BUNDLE", "/no/such/ca.pem"));
    out.expect_code(2)
        .expect_log("TOKEN_VARIABLE (\"BAD-NAME\") is not a valid variable name")
        .expect_log("TOKEN_URL (\"http://bitbucket.org/site/oauth2/access_token\") uses plain http to a host that is not loopback")
        .expect_log("API_URL (\"not a url\") is not a valid URL")
        .expect_log("DEBUG (\"verbose\") is not a boolean")
        .expect_log("VALIDATE is true but there is nothing to validate against: set REPOSITORY")
        .expect_log("TIMEOUT (\"forever\") must be a whole number of seconds")
        .expect_log("RETRIES (\"-1\") must be a whole number")
        .expect_log("CA_BUNDLE (\"/no/such/ca.pem\") cannot be read");
}

#[test]
fn repository_defaults_to_bitbucket_repo_full_name() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    run(pipe(&server, work.path())
        .env_remove("REPOSITORY")
        .env("BITBUCKET_REPO_FULL_NAME", "acme/widgets"))
    .expect_code(0)
    .expect_log("read repository acme/widgets");
}

#[test]
fn existing_output_file_is_left_exactly_as_it_was_on_failure() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    let file = work.path().join("oauth-token.env");
    fs::write(&file, "BITBUCKET_ACCESS_TOKEN=previous\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let before = fs::metadata(&file).unwrap();
    run(pipe(&server, work.path()).env("REPOSITORY", "acme/missing")).expect_code(4);
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "BITBUCKET_ACCESS_TOKEN=previous\n"
    );
    let after = fs::metadata(&file).unwrap();
    assert_eq!(
        (after.permissions().mode(), after.modified().unwrap()),
        (before.permissions().mode(), before.modified().unwrap())
    );
    assert_eq!(listing(work.path()), ["oauth-token.env"]);
}

#[test]
fn an_existing_file_is_replaced_with_mode_0600_on_success() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    let file = work.path().join("oauth-token.env");
    // An expired token of ours, left world-readable: replaced, and the new file is private.
    fs::write(
        &file,
        "BITBUCKET_ACCESS_TOKEN=old\nBITBUCKET_ACCESS_TOKEN_SCOPES=\n",
    )
    .unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    run(&mut pipe(&server, work.path())).expect_code(0);
    assert!(
        fs::read_to_string(&file)
            .unwrap()
            .starts_with("BITBUCKET_ACCESS_TOKEN=ey")
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn an_unwritable_output_path_exits_6_naming_it() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    fs::create_dir(work.path().join("taken.env")).unwrap();
    run(pipe(&server, work.path()).env("OUTPUT_FILE", "taken.env"))
        .expect_code(6)
        .expect_log("could not write OUTPUT_FILE (taken.env)")
        .expect_log("is a folder");
    fs::write(work.path().join("file"), "").unwrap();
    run(pipe(&server, work.path()).env("OUTPUT_FILE", "file/token.env"))
        .expect_code(6)
        .expect_log("could not write OUTPUT_FILE (file/token.env)");
}

#[test]
fn the_file_is_listed_in_git_exclude_once() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(work.path())
            .env_clear()
            .env("HOME", work.path())
            .output()
            .expect("git")
    };
    assert!(git(&["init", "-q"]).status.success());
    run(pipe(&server, work.path()).env("OUTPUT_FILE", "ci/token file.env"))
        .expect_code(0)
        .expect_log("so that git never commits it");
    run(pipe(&server, work.path()).env("OUTPUT_FILE", "ci/token file.env")).expect_code(0);
    let exclude = fs::read_to_string(work.path().join(".git/info/exclude")).unwrap();
    assert_eq!(
        exclude.matches("/ci/token\\ file.env").count(),
        1,
        "{exclude}"
    );
    let status = git(&["status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "",
        "git sees the token file"
    );
}

#[test]
fn the_log_is_coloured_unless_no_color_is_set() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    let out = run(pipe(&server, work.path()).env_remove("NO_COLOR"));
    out.expect_code(0)
        .expect_log("\x1b[32m✔ Access token written")
        .expect_log("\x1b[34mINFO: \x1b[0m");
    let out = run(pipe(&server, work.path())
        .env("CLIENT_SECRET", "wrong")
        .env("REUSE", "false")
        .env_remove("NO_COLOR"));
    out.expect_code(3).expect_log("\x1b[31m✖ Bitbucket refused");
    let out = run(&mut pipe(&server, work.path()));
    assert!(!out.all().contains('\x1b'), "{}", out.all());
}

#[test]
fn debug_shows_the_exchange_with_credentials_redacted() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    run(pipe(&server, work.path()).env("DEBUG", "true"))
        .expect_code(0)
        .expect_log("INFO: Enabling debug mode.")
        .expect_log(&format!("DEBUG: > POST {}", server.token_url()))
        .expect_log("DEBUG: > authorization: Basic <redacted>")
        .expect_log("DEBUG: > grant_type=client_credentials")
        .expect_log("DEBUG: < HTTP 200 OK")
        .expect_log(&format!(
            "\"access_token\":\"<redacted: {} characters>\"",
            server.setup().token.len()
        ))
        .expect_log("DEBUG: > authorization: Bearer <redacted>");
}
