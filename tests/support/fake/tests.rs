//! The fake's own guarantee: a test that scripted a reply the program never asked for, or
//! whose handler panicked, fails, and a test already failing is not turned into an abort.

use super::{FakeBitbucket, Fault, Reply, Setup};
use crate::support::{pipe, run};

#[test]
#[should_panic(expected = "scripted API replies never used: 1 (HTTP 500)")]
fn an_unused_scripted_reply_fails_the_test() {
    let server = FakeBitbucket::start(Setup {
        api_replies: vec![Reply::text(500, "never asked for")],
        ..Setup::default()
    });
    let work = tempfile::tempdir().unwrap();
    // VALIDATE=false: the program makes no API call, so the scripted one is left over.
    run(pipe(&server, work.path()).env("VALIDATE", "false")).expect_code(0);
    assert_eq!(server.api_requests(), 0);
}

#[test]
#[should_panic(expected = "a handler panicked: Fault::Panic scripted")]
fn a_handler_panic_fails_the_test_even_when_the_client_recovered() {
    let server = FakeBitbucket::start(Setup {
        token_replies: vec![Reply {
            fault: Fault::Panic,
            ..Reply::default()
        }],
        ..Setup::default()
    });
    let work = tempfile::tempdir().unwrap();
    // The panic closes the connection, the program retries and succeeds: only the drop
    // check can tell.
    run(&mut pipe(&server, work.path())).expect_code(0);
    assert_eq!(server.token_requests(), 2);
}

#[test]
#[should_panic(expected = "the test's own failure")]
fn a_failing_test_keeps_its_own_message() {
    let _server = FakeBitbucket::start(Setup {
        token_replies: vec![Reply::text(503, "never asked for")],
        ..Setup::default()
    });
    // The fake is dropped while this panic unwinds: it reports on stderr instead of
    // panicking again, which would abort the whole test binary.
    panic!("the test's own failure");
}
