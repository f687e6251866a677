//! The fewest round trips (issue 15): the validation host's connection is opened while the
//! token request is in flight, used for the validation call, and never used for anything
//! else; when it is not needed, it carries no request at all.
//!
//! The fake serves both endpoints; the token endpoint is reached as `localhost` and the API as
//! `127.0.0.1`, two origins as on Bitbucket (`bitbucket.org`, `api.bitbucket.org`).

use std::time::Duration;

use crate::support::fake::{FakeBitbucket, Fault, Reply, Setup};
use crate::support::{pipe, run};

/// How long the fake's token endpoint takes to answer.
const SLOW: Duration = Duration::from_millis(800);

fn two_origins(server: &FakeBitbucket, dir: &std::path::Path) -> assert_cmd::Command {
    let mut cmd = pipe(server, dir);
    cmd.env(
        "TOKEN_URL",
        server
            .token_url()
            .replacen("https://127.0.0.1:", "https://localhost:", 1),
    );
    cmd
}

fn slow_token(server_setup: &Setup) -> Reply {
    let body = serde_json::json!({
        "access_token": server_setup.token, "token_type": "bearer", "expires_in": 7200, "scope": "repository"
    });
    Reply {
        fault: Fault::Delay(SLOW),
        ..Reply::json(200, &body.to_string())
    }
}

#[test]
fn the_api_connection_opens_while_the_token_is_requested() {
    let base = Setup::default();
    let server = FakeBitbucket::start(Setup {
        token_replies: vec![slow_token(&base)],
        ..base
    });
    let work = tempfile::tempdir().unwrap();
    run(two_origins(&server, work.path()).env("DEBUG", "true"))
        .expect_code(0)
        // The request on the early connection is logged like any other.
        .expect_log("DEBUG: > GET https://127.0.0.1:");
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one token request, one validation call");
    let (token, api) = (&requests[0], &requests[1]);
    assert!(api.path.starts_with("/2.0/repositories/"), "{}", api.path);
    assert_ne!(
        token.connection, api.connection,
        "two origins, two connections"
    );
    assert_eq!(server.connections(), 2, "and no third");
    // The token was answered SLOW after its request arrived; a sequential client would
    // connect to the API only then. This one was connected long before.
    assert!(
        api.connected_at < token.received_at + SLOW / 2,
        "the API connection was set up {:?} after the token request arrived",
        api.connected_at
            .saturating_duration_since(token.received_at)
    );
}

#[test]
fn with_validation_off_no_second_connection_is_opened() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(two_origins(&server, work.path()).env("VALIDATE", "false")).expect_code(0);
    assert_eq!((server.connections(), server.api_requests()), (1, 0));
}

#[test]
fn a_refused_token_request_leaves_the_early_connection_unused() {
    let base = Setup::default();
    let server = FakeBitbucket::start(Setup {
        token_replies: vec![Reply {
            fault: Fault::Delay(Duration::from_millis(300)),
            ..Reply::json(
                400,
                r#"{"error": "unauthorized_client", "error_description": "Invalid OAuth client credentials"}"#,
            )
        }],
        ..base
    });
    let work = tempfile::tempdir().unwrap();
    run(&mut two_origins(&server, work.path())).expect_code(3);
    // The API's connection may have been opened, but nothing was sent on it.
    assert_eq!(server.api_requests(), 0);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn one_host_means_one_connection() {
    let server = FakeBitbucket::start_default();
    let work = tempfile::tempdir().unwrap();
    run(&mut pipe(&server, work.path())).expect_code(0);
    assert_eq!(server.requests().len(), 2);
    assert_eq!(
        server.connections(),
        1,
        "the token request's connection is reused"
    );
}
