//! How the pipe reports what the provider answered: refused credentials with Bitbucket's
//! own words and a hint, and validation (skipped, redirected to VALIDATE_URL, required and
//! implied scopes, transient answers). Network faults and malformed answers are rows of
//! the matrix in `faults.rs`.

use crate::support::fake::{self, FakeBitbucket, Reply, Setup};
use crate::support::{pipe, run};

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn wrong_secret_exits_3_quoting_bitbucket_and_hinting_at_the_key() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    run(pipe(&server, work.path()).env("CLIENT_SECRET", "not-the-secret"))
        .expect_code(3)
        .expect_log("✖ Bitbucket refused the token request (HTTP 400 Bad Request, unauthorized_client: Invalid OAuth client credentials).")
        .expect_log("The Key or Secret is wrong. Check that CLIENT_ID holds the consumer's Key");
    assert_eq!(
        server.token_requests(),
        1,
        "a credentials error is not retried"
    );
    assert_eq!(server.api_requests(), 0);
}

#[test]
fn consumer_without_callback_url_gets_the_callback_hint() {
    let server = FakeBitbucket::start(Setup {
        token_replies: vec![Reply::json(400, fake::NO_CALLBACK)],
        ..Setup::default()
    });
    let work = dir();
    run(&mut pipe(&server, work.path()))
        .expect_code(3)
        .expect_log("invalid_request: No callback uri defined for the OAuth client.")
        .expect_log("set Callback URL to any URL (e.g. https://localhost)");
}

#[test]
fn public_consumer_gets_the_private_hint() {
    let server = FakeBitbucket::start(Setup {
        token_replies: vec![Reply::json(400, fake::PUBLIC_CONSUMER)],
        ..Setup::default()
    });
    let work = dir();
    run(&mut pipe(&server, work.path()))
        .expect_code(3)
        .expect_log("Cannot use client_credentials with a consumer marked as \"public\"")
        .expect_log("tick \"This is a private consumer\"");
}

#[test]
fn other_oauth_errors_are_shown_as_bitbucket_wrote_them() {
    let server = FakeBitbucket::start(Setup {
        token_replies: vec![Reply::json(
            400,
            r#"{"error": "invalid_scope", "error_description": "Scope 'wiki' is not allowed"}"#,
        )],
        ..Setup::default()
    });
    let work = dir();
    run(&mut pipe(&server, work.path()))
        .expect_code(3)
        .expect_log("invalid_scope: Scope 'wiki' is not allowed");
}

#[test]
fn validate_false_makes_no_api_call() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    run(pipe(&server, work.path())
        .env_remove("REPOSITORY")
        .env("VALIDATE", "FALSE"))
    .expect_code(0)
    .expect_log("not validated (VALIDATE=false)");
    assert_eq!((server.token_requests(), server.api_requests()), (1, 0));
}

#[test]
fn validate_url_is_called_instead_of_the_repository() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    run(pipe(&server, work.path()).env(
        "VALIDATE_URL",
        format!(
            "{}/repositories/acme/widgets?fields=full_name",
            server.api_url()
        ),
    ))
    .expect_code(0)
    .expect_log("validated (GET https://127.0.0.1");
    assert_eq!(
        server.requests()[1].path,
        "/2.0/repositories/acme/widgets?fields=full_name"
    );
}

#[test]
fn missing_required_scopes_exit_4_naming_them() {
    let server = FakeBitbucket::start_default();
    let work = dir();
    run(pipe(&server, work.path()).env("REQUIRED_SCOPES", "repository:write, pullrequest webhook"))
        .expect_code(4)
        .expect_log("The token lacks required scope(s): repository:write, webhook. Granted: repository, pullrequest.");
    assert_eq!(
        server.api_requests(),
        0,
        "no validation call for a token that lacks scopes"
    );
}

#[test]
fn implied_scopes_satisfy_requirements() {
    let server = FakeBitbucket::start(Setup {
        scopes: "pullrequest:write".into(),
        ..Setup::default()
    });
    let work = dir();
    run(pipe(&server, work.path())
        .env("REQUIRED_SCOPES", "repository,repository:write,pullrequest"))
    .expect_code(0)
    .expect_log("carries every required scope");
}

#[test]
fn validation_429_and_5xx_are_transient_too() {
    let server = FakeBitbucket::start(Setup {
        api_replies: vec![
            Reply::text(429, fake::RATE_LIMITED),
            Reply::text(502, "Bad Gateway"),
        ],
        ..Setup::default()
    });
    let work = dir();
    run(&mut pipe(&server, work.path())).expect_code(0);
    assert_eq!(server.api_requests(), 3);
    let server = FakeBitbucket::start(Setup {
        api_replies: vec![Reply::text(500, "oops")],
        ..Setup::default()
    });
    run(pipe(&server, work.path()).env("RETRIES", "0"))
        .expect_code(5)
        .expect_log("The validation call to 127.0.0.1");
}
