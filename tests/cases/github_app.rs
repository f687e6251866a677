//! PROVIDER=github-app against the fake GitHub (tests/support/fake_github.rs), which checks
//! the app's JWT as GitHub does: the flow over one connection, every failure of
//! providers.md §1 ending in exit 3 with the hint that names its fix, clock skew, lag,
//! git through the credential helper, revoke, and the leak audit with the mask on and off.

use std::fs;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

use crate::support::fake_github::{self, FakeGitHub, Setup, TokenFormat, script};
use crate::support::{
    Run, bare, bare_std, git_output, git_through_helper, run, run_with_input, write_private,
};

/// The binary configured for the fake's app, OWNER=acme and REPOSITORIES=widgets.
pub(super) fn app(server: &FakeGitHub, dir: &Path) -> assert_cmd::Command {
    let mut cmd = bare(dir);
    cmd.env("PROVIDER", "github-app")
        .env("APP_ID", fake_github::CLIENT_ID)
        .env("PRIVATE_KEY", fake_github::key("app-pkcs1.pem"))
        .env("GITHUB_API_URL", server.api_url())
        .env("CA_BUNDLE", server.ca_file())
        .env("OWNER", "acme")
        .env("REPOSITORIES", "widgets");
    cmd
}

fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn mints_and_validates_over_one_connection_and_writes_githubs_expiry_and_permissions() {
    let server = FakeGitHub::start(Setup::default());
    let work = tempfile::tempdir().unwrap();
    run(&mut app(&server, work.path()))
        .expect_code(0)
        .expect_log("Found installation 31337 of app fake-ci-app.")
        .expect_log("list the installation's repositories, 1 visible");
    assert_eq!(
        server.calls(),
        [
            "GET /repos/acme/widgets/installation",
            "POST /app/installations/31337/access_tokens",
            "GET /installation/repositories?per_page=1",
        ]
    );
    assert_eq!(
        server.connections(),
        1,
        "one kept-alive connection for the whole flow"
    );
    let requests = server.requests();
    for r in &requests {
        let accepts: Vec<_> = r.headers.iter().filter(|(n, _)| n == "accept").collect();
        assert_eq!(accepts.len(), 1, "{r:?}");
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
    }
    let body: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(body, serde_json::json!({"repositories": ["widgets"]}));
    // The JWT: iss a string, iat 60 s back, exp 540 s ahead (never +600).
    let jwts = server.jwts();
    assert_eq!(jwts.len(), 2, "lookup and mint");
    let c = claims(&jwts[0]);
    assert_eq!(c["iss"], Value::String(fake_github::CLIENT_ID.into()));
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 600);
    assert!((now() - 62..=now() - 58).contains(&iat), "iat {iat}");
    let token = &server.tokens()[0];
    assert_eq!((token.len(), &token[..4]), (40, "ghs_"));
    let text = fs::read_to_string(work.path().join("oauth-token.env")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("GITHUB_APP_TOKEN={token}"));
    assert!(
        lines[1].starts_with("GITHUB_APP_TOKEN_EXPIRES_AT=20"),
        "{text}"
    );
    assert_eq!(
        lines[2],
        "GITHUB_APP_TOKEN_SCOPES=contents:write,metadata:read,pull_requests:write"
    );
}

#[test]
fn stateless_tokens_pass_and_github_gets_installation_id_and_app_slug_outputs() {
    let server = FakeGitHub::start(Setup {
        format: TokenFormat::Stateless,
        ..Setup::default()
    });
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    // On GitHub Actions, neither OWNER nor REPOSITORIES: the current repository only.
    run(app(&server, work.path())
        .env_remove("OWNER")
        .env_remove("REPOSITORIES")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &out)
        .env("GITHUB_REPOSITORY", "acme/gadgets")
        .env("PERMISSIONS", "pull_requests:write,contents:read"))
    .expect_code(0);
    let token = &server.tokens()[0];
    assert!(
        token.len() > 500 && token.matches('.').count() == 2,
        "{}",
        token.len()
    );
    let body: Value = serde_json::from_slice(&server.requests()[1].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"repositories": ["gadgets"], "permissions": {"contents": "read", "pull_requests": "write"}})
    );
    let outputs = crate::support::parse_file_commands(&fs::read_to_string(out).unwrap());
    let get = |n: &str| outputs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(get("token").as_ref(), Some(token));
    assert_eq!(get("installation_id").as_deref(), Some("31337"));
    assert_eq!(get("app_slug").as_deref(), Some(fake_github::APP_SLUG));
    assert_eq!(
        get("scopes").as_deref(),
        Some("contents:read,metadata:read,pull_requests:write")
    );
}

/// A refusal: name, fake setup, variables, the hint, how many requests were made.
type Row<'a> = (&'a str, Setup, Vec<(&'a str, &'a str)>, &'a str, usize);
/// A leak-audit scenario: name, fake setup, variables, arguments, exit code.
type Scenario<'a> = (&'a str, Setup, Vec<(&'a str, String)>, Vec<&'a str>, i32);

/// Every failure of providers.md §1: exit 3 and the hint that names the fix.
#[test]
fn each_refusal_exits_3_with_the_hint_that_names_its_fix() {
    let other_key = fake_github::key("other-pkcs1.pem");
    let rows: Vec<Row> = vec![
        (
            "wrong key",
            Setup::default(),
            vec![("PRIVATE_KEY", other_key.as_str())],
            "PRIVATE_KEY is a private key of the app APP_ID names",
            1,
        ),
        (
            "app id of another app",
            Setup::default(),
            vec![("APP_ID", "Iv23liSomeOtherApp")],
            "A JSON web token could not be decoded",
            1,
        ),
        (
            "not installed on the repository",
            Setup::default(),
            vec![("OWNER", "nobody"), ("REPOSITORIES", "x")],
            "The app is not installed on nobody/x",
            1,
        ),
        (
            "not installed on the owner",
            Setup::default(),
            vec![("REPOSITORIES", ""), ("OWNER", "nobody")],
            "The app is not installed on the account nobody",
            1,
        ),
        (
            "repository not accessible",
            Setup::default(),
            vec![("REPOSITORIES", "widgets secret-repo")],
            "widgets, secret-repo does not exist or is not in the installation's repository access",
            2,
        ),
        (
            "permissions not granted",
            Setup::default(),
            vec![("PERMISSIONS", "administration:write")],
            "PERMISSIONS (administration:write) asks for more than this installation grants",
            2,
        ),
        (
            "installation id unknown",
            Setup::default(),
            vec![("INSTALLATION_ID", "999")],
            "This app has no installation 999: check INSTALLATION_ID",
            1,
        ),
        (
            "forbidden",
            Setup {
                scripted: vec![script(
                    "POST /app/installations",
                    403,
                    r#"{"message":"This installation has been suspended","documentation_url":"https://docs.github.com/rest"}"#,
                )],
                ..Setup::default()
            },
            vec![],
            "the installation may be suspended",
            2,
        ),
        (
            "clock refused even after correction",
            Setup {
                scripted: vec![
                    script("GET /repos", 401, fake_github::EXP_TOO_FAR),
                    script("GET /repos", 401, fake_github::EXP_TOO_FAR),
                ],
                ..Setup::default()
            },
            vec![],
            "fix the runner's clock (NTP)",
            2,
        ),
    ];
    std::thread::scope(|threads| {
        for (name, setup, env, hint, requests) in rows {
            threads.spawn(move || {
                let server = FakeGitHub::start(setup);
                let work = tempfile::tempdir().unwrap();
                let mut cmd = app(&server, work.path());
                for (k, v) in env {
                    cmd.env(k, v);
                }
                let out = run(&mut cmd);
                assert_eq!(out.code, Some(3), "{name}:\n{}", out.all());
                assert!(
                    out.all().contains(hint),
                    "{name}: no {hint:?} in\n{}",
                    out.all()
                );
                assert!(
                    out.all().contains("credentials rejected") || out.stderr.contains("✖"),
                    "{name}"
                );
                // 4xx are never retried.
                assert_eq!(
                    server.requests().len(),
                    requests,
                    "{name}: {:?}",
                    server.calls()
                );
                assert!(!work.path().join("oauth-token.env").exists(), "{name}");
            });
        }
    });
}

#[test]
fn key_problems_are_configuration_errors_naming_the_format() {
    let server = FakeGitHub::start(Setup::default());
    let work = tempfile::tempdir().unwrap();
    for (key, want) in [
        (
            fake_github::key("app-public.pem"),
            "is a public key or certificate",
        ),
        (fake_github::key("ec-sec1.pem"), "openssl pkcs8 -topk8"),
        (fake_github::key("app-encrypted.pem"), "encrypted"),
    ] {
        run(app(&server, work.path()).env("PRIVATE_KEY", key))
            .expect_code(2)
            .expect_log(want);
    }
    // Keys stored with \n escapes, CRLF or base64-wrapped work.
    let pem = fake_github::key("app-pkcs1.pem");
    for key in [
        pem.trim().replace('\n', "\\n"),
        pem.replace('\n', "\r\n"),
        STANDARD.encode(&pem),
        fake_github::key("app-pkcs8.pem"),
    ] {
        run(app(&server, work.path())
            .env("PRIVATE_KEY", key)
            .env("REUSE", "false"))
        .expect_code(0);
    }
    assert!(server.requests().len() >= 12);
}

#[test]
fn a_skewed_clock_is_corrected_once_from_githubs_date_header() {
    // GitHub's clock behind ours: our iat is in its future. Ahead: our exp is in its past.
    for (skew, said) in [
        (-120, "'Issued at' claim ('iat')"),
        (700, "must be a numeric value"),
    ] {
        let server = FakeGitHub::start(Setup {
            skew,
            ..Setup::default()
        });
        let work = tempfile::tempdir().unwrap();
        let out = run(&mut app(&server, work.path()));
        out.expect_code(0)
            .expect_log(said)
            .expect_log("Signing a new JWT on GitHub's time");
        let direction = if skew < 0 { "ahead of" } else { "behind" };
        // Whole seconds on both clocks, on a loaded machine: within a few seconds.
        let said_offset: i64 = out
            .all()
            .split("about ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no offset in\n{}", out.all()));
        assert!((said_offset - skew.abs()).abs() <= 3, "{}", out.all());
        out.expect_log(&format!(" s {direction} GitHub's"));
        assert_eq!(server.jwts().len(), 3, "refused, re-signed lookup, mint");
        let fixed = claims(&server.jwts()[1]);
        assert!((fixed["iat"].as_i64().unwrap() - (now() + skew - 60)).abs() <= 5);
    }
}

#[test]
fn server_errors_are_retried_and_a_new_tokens_401_is_lag() {
    let server = FakeGitHub::start(Setup {
        lag: 2,
        scripted: vec![script(
            "POST /app/installations",
            503,
            r#"{"message":"Service Unavailable"}"#,
        )],
        ..Setup::default()
    });
    let work = tempfile::tempdir().unwrap();
    run(&mut app(&server, work.path()))
        .expect_code(0)
        .expect_log("GitHub may not have propagated it yet");
    let calls = server.calls();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("POST")).count(),
        2,
        "{calls:?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("GET /installation/"))
            .count(),
        3
    );
}

#[test]
fn reuse_keys_by_app_installation_repositories_and_permissions() {
    let server = FakeGitHub::start(Setup::default());
    let work = tempfile::tempdir().unwrap();
    run(&mut app(&server, work.path())).expect_code(0);
    run(&mut app(&server, work.path()))
        .expect_code(0)
        .expect_log("Reusing the token");
    assert_eq!(server.tokens().len(), 1);
    run(app(&server, work.path()).env("PERMISSIONS", "contents:read")).expect_code(0);
    run(app(&server, work.path()).env("REPOSITORIES", "gadgets")).expect_code(0);
    assert_eq!(
        server.tokens().len(),
        3,
        "other permissions or repositories get their own token"
    );
}

/// A reused token keeps its installation and slug: the dotenv file records them, a later
/// run's GitHub outputs and an exec child's environment carry them again.
#[test]
fn a_reused_token_keeps_its_installation_id_and_app_slug() {
    let server = FakeGitHub::start(Setup::default());
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("app.env");
    run(app(&server, work.path()).env("OUTPUT_FILE", &file)).expect_code(0);
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.ends_with(&format!(
            "GITHUB_APP_TOKEN_INSTALLATION_ID=31337\nGITHUB_APP_TOKEN_APP_SLUG={}\n",
            fake_github::APP_SLUG
        )),
        "{text}"
    );
    let out = work.path().join("out");
    run(app(&server, work.path())
        .env("OUTPUT_FILE", &file)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &out))
    .expect_code(0)
    .expect_log("Reusing the token");
    let outputs = crate::support::parse_file_commands(&fs::read_to_string(out).unwrap());
    let get = |n: &str| outputs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(get("installation_id").as_deref(), Some("31337"));
    assert_eq!(get("app_slug").as_deref(), Some(fake_github::APP_SLUG));
    // exec, reusing the same file: the child sees both; an inherited value never passes.
    let printed = work.path().join("printed");
    run(app(&server, work.path())
        .env("OUTPUT_FILE", &file)
        .env("GITHUB_APP_TOKEN_APP_SLUG", "inherited")
        .args(["exec", "--", "sh", "-c"])
        .arg(format!(
            "echo \"$GITHUB_APP_TOKEN_INSTALLATION_ID $GITHUB_APP_TOKEN_APP_SLUG\" > {}",
            printed.display()
        )))
    .expect_code(0);
    assert_eq!(
        fs::read_to_string(&printed).unwrap(),
        format!("31337 {}\n", fake_github::APP_SLUG)
    );
    assert_eq!(server.tokens().len(), 1, "both later runs reused the token");
}

fn git(server: &FakeGitHub, home: &Path, dir: &Path, args: &[&str]) -> String {
    git_output(
        git_through_helper(home, server.ca_file(), dir, args)
            .env("PROVIDER", "github-app")
            .env("APP_ID", fake_github::CLIENT_ID)
            .env("PRIVATE_KEY", fake_github::key("app-pkcs1.pem"))
            .env("GITHUB_API_URL", server.api_url())
            .env("CA_BUNDLE", server.ca_file())
            .env("OWNER", "acme")
            .env("REPOSITORIES", "mirror")
            .env("PERMISSIONS", "contents:write"),
    )
}

#[test]
fn real_git_clones_and_pushes_through_the_helper_as_x_access_token() {
    let repos = tempfile::tempdir().unwrap();
    let server = FakeGitHub::start(Setup {
        git_root: Some(repos.path().to_path_buf()),
        ..Setup::default()
    });
    let home = tempfile::tempdir().unwrap();
    git(
        &server,
        home.path(),
        repos.path(),
        &["init", "-q", "--bare", "mirror.git"],
    );
    let clones = tempfile::tempdir().unwrap();
    // GIT_HOST is not set: the helper answers for the API's host (GHES-style /api/v3).
    let url = format!("{}/git/mirror.git", server.base());
    git(
        &server,
        home.path(),
        clones.path(),
        &["clone", "-q", &url, "mirror"],
    );
    let clone = clones.path().join("mirror");
    fs::write(clone.join("README"), "hello\n").unwrap();
    git(&server, home.path(), &clone, &["add", "README"]);
    git(
        &server,
        home.path(),
        &clone,
        &["commit", "-q", "-m", "mirrored"],
    );
    let pushed = git(
        &server,
        home.path(),
        &clone,
        &["push", "-q", "origin", "HEAD:main"],
    );
    assert!(!pushed.contains(&server.tokens()[0]));
    let log = git(
        &server,
        home.path(),
        &repos.path().join("mirror.git"),
        &["log", "--format=%s", "main"],
    );
    assert_eq!(log.trim(), "mirrored");
    assert_eq!(
        server.tokens().len(),
        1,
        "clone and push share one cached token"
    );
    let config = fs::read_to_string(clone.join(".git/config")).unwrap();
    assert!(!config.contains(&server.tokens()[0]) && !config.contains("x-access-token"));
}

#[test]
fn revoke_deletes_the_token_then_removes_the_file_and_never_sends_an_expired_one() {
    let server = FakeGitHub::start(Setup::default());
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("oauth-token.env");
    run(&mut app(&server, work.path())).expect_code(0);
    let token = server.tokens()[0].clone();
    // No credentials needed: the token authenticates its own revocation.
    let revoke = |extra: &[(&str, &str)]| {
        let mut cmd = bare(work.path());
        cmd.env("PROVIDER", "github-app")
            .env("GITHUB_API_URL", server.api_url())
            .env("CA_BUNDLE", server.ca_file())
            .arg("revoke");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };
    revoke(&[])
        .expect_code(0)
        .expect_log("Revoked the token in oauth-token.env");
    assert!(server.revoked(&token));
    assert!(!file.exists());
    let deletes = |s: &FakeGitHub| {
        s.calls()
            .iter()
            .filter(|c| c.starts_with("DELETE /installation/token"))
            .count()
    };
    assert_eq!(deletes(&server), 1);
    revoke(&[]).expect_code(0).expect_log("Nothing to revoke");
    // An already revoked token: GitHub's 401 is a warning, not a failure.
    let file_for = |expires: &str| {
        format!(
            "GITHUB_APP_TOKEN={token}\nGITHUB_APP_TOKEN_EXPIRES_AT={expires}\nGITHUB_APP_TOKEN_SCOPES=\nGITHUB_APP_TOKEN_CLIENT=0123456789abcdef\n"
        )
    };
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3000);
    let text = file_for(&humantime::format_rfc3339_seconds(later).to_string());
    write_private(&file, &text);
    revoke(&[])
        .expect_code(0)
        .expect_log("already expired or revoked (Bad credentials)");
    assert_eq!(deletes(&server), 2);
    assert!(!file.exists());
    // An expired one is never sent.
    write_private(&file, &file_for("2020-01-01T00:00:00Z"));
    revoke(&[])
        .expect_code(0)
        .expect_log("already expired at 2020-01-01T00:00:00Z; nothing was sent");
    assert_eq!(deletes(&server), 2);
    assert!(!file.exists());
}

/// The after-script pattern: git-credential cached a token (its cache key adds GIT_HOST to
/// the provider's), and `revoke` with the same variables finds it, revokes it and removes it.
#[test]
fn revoke_revokes_the_token_git_credential_cached() {
    let server = FakeGitHub::start(Setup::default());
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    fs::create_dir(&home).unwrap();
    let ask = format!("protocol=https\nhost={}\n\n", server.git_host());
    let out = run(app(&server, work.path())
        .env("HOME", &home)
        .args(["git-credential", "get"])
        .write_stdin(ask));
    out.expect_code(0);
    let token = server.tokens()[0].clone();
    assert!(out.stdout.contains(&format!("password={token}\n")));
    let cache = home.join(".cache/oauth-token-pipe");
    assert_eq!(fs::read_dir(&cache).unwrap().count(), 1, "one cache entry");
    run(app(&server, work.path()).env("HOME", &home).arg("revoke"))
        .expect_code(0)
        .expect_log("Revoked the token in");
    assert!(server.revoked(&token));
    assert_eq!(
        fs::read_dir(&cache).unwrap().count(),
        0,
        "the entry is removed"
    );
}

#[test]
fn bitbucket_has_no_revocation_endpoint_and_says_so() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("oauth-token.env");
    let at = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3000),
    );
    write_private(
        &file,
        &format!(
            "BITBUCKET_ACCESS_TOKEN=abc.def\nBITBUCKET_ACCESS_TOKEN_EXPIRES_AT={at}\nBITBUCKET_ACCESS_TOKEN_SCOPES=repository\nBITBUCKET_ACCESS_TOKEN_CLIENT=0123456789abcdef\n"
        ),
    );
    run(bare(work.path()).arg("revoke"))
        .expect_code(0)
        .expect_log("PROVIDER=bitbucket has no revocation endpoint");
    assert!(file.exists(), "left as it is");
}

/// The leak audit: no token, no line of the key, no JWT, and no `x-access-token:TOKEN`
/// base64 in any output, with the log's mask on and (in this debug build) off.
#[test]
fn no_output_shows_the_token_the_key_or_the_jwt() {
    let pem = fake_github::key("app-pkcs1.pem");
    let other = fake_github::key("other-pkcs1.pem");
    let escaped = pem.trim().replace('\n', "\\n");
    let wrapped = STANDARD.encode(&pem);
    let scenarios: Vec<Scenario> = vec![
        ("success", Setup::default(), vec![], vec![], 0),
        (
            "stateless, escaped key",
            Setup {
                format: TokenFormat::Stateless,
                ..Setup::default()
            },
            vec![("PRIVATE_KEY", escaped.clone())],
            vec![],
            0,
        ),
        (
            "base64 key",
            Setup::default(),
            vec![("PRIVATE_KEY", wrapped.clone())],
            vec![],
            0,
        ),
        (
            "wrong key",
            Setup::default(),
            vec![("PRIVATE_KEY", other.clone())],
            vec![],
            3,
        ),
        (
            "public key",
            Setup::default(),
            vec![("PRIVATE_KEY", fake_github::key("app-public.pem"))],
            vec![],
            2,
        ),
        (
            "not installed",
            Setup::default(),
            vec![("OWNER", "nobody".into())],
            vec![],
            3,
        ),
        (
            "422",
            Setup::default(),
            vec![("PERMISSIONS", "administration:write".into())],
            vec![],
            3,
        ),
        (
            "clock",
            Setup {
                skew: -200,
                ..Setup::default()
            },
            vec![],
            vec![],
            0,
        ),
        (
            "403 on validation",
            Setup {
                scripted: vec![script(
                    "GET /installation/repositories",
                    403,
                    r#"{"message":"ECHO"}"#,
                )],
                ..Setup::default()
            },
            vec![],
            vec![],
            4,
        ),
        ("check", Setup::default(), vec![], vec!["check"], 0),
        (
            "exec",
            Setup::default(),
            vec![],
            vec!["exec", "--", "true"],
            0,
        ),
    ];
    let mut checked = 0;
    for (name, setup, env, args, code) in scenarios {
        for (debug, github, no_mask) in [
            (false, false, false),
            (true, false, false),
            (true, true, false),
            (true, false, true),
            (true, true, true),
        ] {
            let server = FakeGitHub::start(setup.clone());
            let work = tempfile::tempdir().unwrap();
            let mut cmd = app(&server, work.path());
            cmd.env("DEBUG", debug.to_string()).args(&args);
            if github {
                cmd.env("GITHUB_ACTIONS", "true")
                    .env("GITHUB_OUTPUT", work.path().join("out"))
                    .env("OUTPUT_FILE", "t.env");
            }
            if no_mask {
                cmd.env("OAUTH_TOKEN_PIPE_TEST_NO_MASK", "1");
            }
            for (k, v) in &env {
                cmd.env(k, v);
            }
            let out = run(&mut cmd);
            let label = format!("{name} (DEBUG={debug}, GitHub={github}, no mask={no_mask})");
            assert_eq!(out.code, Some(code), "{label}:\n{}", out.all());
            audit(&label, &out, &server, github);
            checked += 1;
        }
    }
    assert_eq!(checked, 55);
    // git-credential's answer is the token on stdout by design; its log must stay clean.
    let server = FakeGitHub::start(Setup::default());
    let work = tempfile::tempdir().unwrap();
    let mut cmd = bare_std(work.path());
    cmd.env("PROVIDER", "github-app")
        .env("APP_ID", fake_github::CLIENT_ID)
        .env("PRIVATE_KEY", &escaped)
        .env("GITHUB_API_URL", server.api_url())
        .env("CA_BUNDLE", server.ca_file())
        .env("OWNER", "acme")
        .env("HOME", work.path())
        .env("DEBUG", "true")
        .env("OAUTH_TOKEN_PIPE_TEST_NO_MASK", "1")
        .args(["git-credential", "get"]);
    let ask = format!("protocol=https\nhost={}\n\n", server.git_host());
    let out = run_with_input(&mut cmd, ask.as_bytes());
    assert_eq!(
        out.stdout,
        format!(
            "username=x-access-token\npassword={}\n\n",
            server.tokens()[0]
        )
    );
    // Only the log: the answer on stdout is the token by design.
    let log = Run {
        stdout: String::new(),
        ..out
    };
    audit("git-credential", &log, &server, false);
}

/// Fails when `out` shows any form of the keys, a JWT or a token ([`super::canary::github_leaked`]);
/// on GitHub the `::add-mask::` lines, which exist to carry them to the runner, are skipped.
fn audit(label: &str, out: &Run, server: &FakeGitHub, github: bool) {
    let shown: String = out
        .all()
        .lines()
        .filter(|l| !(github && l.starts_with("::add-mask::")))
        .map(|l| format!("{l}\n"))
        .collect();
    if let Some(leak) = super::canary::github_leaked(&shown, server, &[]) {
        panic!("{label} leaked {leak:?}:\n{shown}");
    }
}
